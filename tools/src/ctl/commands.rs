//! Carrying out a parsed command against vxswitchd.

use std::io::{IsTerminal, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use controlplane::client::Client;
use controlplane::codec::{read_msg, write_msg};
use controlplane::proto::{Change, Owner, Request, Response, StatsRepr, PROTOCOL_VERSION};
use serde::Serialize;

use super::cli::{Cli, Command, StatsArgs};
use super::render::{self, Previous};
use super::Error;

/// Name vxctl gives itself in vxswitchd's log.
const CLIENT_NAME: &str = concat!("vxctl ", env!("CARGO_PKG_VERSION"));

fn emit(out: &mut dyn Write, text: &str) -> Result<(), Error> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(Error::Output)
}

fn json<T: Serialize>(v: &T) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("protocol types serialise");
    s.push('\n');
    s
}

/// Runs one command, writing its output to `out`.
pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<(), Error> {
    let connect = || Client::connect(&cli.socket, CLIENT_NAME);
    match &cli.command {
        Command::Show => {
            let s = connect()?.state()?;
            emit(out, &if cli.json { json(&s) } else { render::show(&s) })
        }
        Command::Fdb => {
            let f = connect()?.fdb()?;
            emit(out, &if cli.json { json(&f) } else { render::fdb(&f) })
        }
        Command::Stats(args) => stats(connect()?, args, cli.json, out),
        Command::AddPort(a) => {
            let spec = a.spec();
            spec.validate().map_err(Error::Invalid)?;
            let what = format!("added port {}", spec.name);
            apply(connect()?, Change::AddPort(spec), &what, cli.json, out)
        }
        Command::DelPort { name } => {
            let what = format!("deleted port {name}");
            apply(
                connect()?,
                Change::DelPort { name: name.clone() },
                &what,
                cli.json,
                out,
            )
        }
        Command::AddNode(a) => {
            let spec = a.spec();
            spec.validate().map_err(Error::Invalid)?;
            let what = format!("added node {}", spec.name);
            apply(connect()?, Change::AddNode(spec), &what, cli.json, out)
        }
        Command::DelNode { name } => {
            let what = format!("deleted node {name}");
            apply(
                connect()?,
                Change::DelNode { name: name.clone() },
                &what,
                cli.json,
                out,
            )
        }
        Command::Version => version(&cli.socket, cli.json, out),
    }
}

/// One change as the admin; prints the new table version.
fn apply(
    mut c: Client,
    change: Change,
    what: &str,
    as_json: bool,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let version = c.apply(Owner::Admin, None, vec![change])?;
    if as_json {
        emit(out, &json(&Response::Applied { version }))
    } else {
        emit(out, &format!("{what}, table version {version}\n"))
    }
}

fn stats(mut c: Client, args: &StatsArgs, as_json: bool, out: &mut dyn Write) -> Result<(), Error> {
    let Some(every) = args.watch else {
        let s = c.stats()?;
        return emit(
            out,
            &if as_json {
                json(&s)
            } else {
                render::stats(&s, None)
            },
        );
    };
    // Clear the screen between redraws only when a person is watching.
    let redraw = !as_json && std::io::stdout().is_terminal();
    let mut prev: Option<(StatsRepr, Instant)> = None;
    let mut n = 0u64;
    loop {
        let s = c.stats()?;
        let now = Instant::now();
        let text = if as_json {
            // One object per line, for `jq` and friends.
            let mut line = serde_json::to_string(&s).expect("protocol types serialise");
            line.push('\n');
            line
        } else {
            let p = prev.as_ref().map(|(stats, at)| Previous {
                stats,
                elapsed: now - *at,
            });
            let body = render::stats(&s, Some(p));
            let head = format!("every {:.1}s, Ctrl-C to stop\n", every.as_secs_f64());
            if redraw {
                format!("\x1b[H\x1b[2J{head}{body}")
            } else if n == 0 {
                format!("{head}{body}")
            } else {
                format!("\n{body}")
            }
        };
        emit(out, &text)?;
        n += 1;
        if args.count.is_some_and(|k| n >= k) {
            return Ok(());
        }
        prev = Some((s, now));
        thread::sleep(every);
    }
}

/// Says hello by hand so that a version mismatch can still be shown in full.
fn version(path: &Path, as_json: bool, out: &mut dyn Write) -> Result<(), Error> {
    let mut stream = UnixStream::connect(path).map_err(|source| controlplane::Error::Connect {
        path: path.to_path_buf(),
        source,
    })?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(controlplane::Error::Io)?;
    write_msg(
        &mut stream,
        &Request::Hello {
            version: PROTOCOL_VERSION,
            client: CLIENT_NAME.to_string(),
        },
    )?;
    let hello: Response = read_msg(&mut stream)?;
    if as_json {
        let v = serde_json::json!({
            "client": { "name": "vxctl", "version": env!("CARGO_PKG_VERSION"), "protocol": PROTOCOL_VERSION },
            "server": hello,
        });
        emit(out, &json(&v))?;
        return match hello {
            Response::Error { code, message } => {
                Err(controlplane::Error::Refused { code, message }.into())
            }
            _ => Ok(()),
        };
    }
    let mut text = format!(
        "vxctl {} protocol {PROTOCOL_VERSION}\n",
        env!("CARGO_PKG_VERSION")
    );
    match hello {
        Response::Hello {
            version,
            server,
            table_version,
        } => {
            text += &format!("server {server} protocol {version} table version {table_version}\n");
            emit(out, &text)
        }
        Response::Error { code, message } => {
            emit(out, &text)?;
            Err(controlplane::Error::Refused { code, message }.into())
        }
        other => Err(controlplane::Error::Unexpected(format!("{other:?}")).into()),
    }
}
