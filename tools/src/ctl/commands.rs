//! Carrying out a parsed command against vxswitchd.

use std::collections::HashMap;
use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use controlplane::client::Client;
use controlplane::codec::{read_msg, write_msg};
use controlplane::flow_syntax::{self, FileError, FlowFilter};
use controlplane::proto::{
    CapturedFrame, Change, FlowMod, FlowSpec, FlowStats, Owner, Request, Response, StatsRepr,
    PROTOCOL_VERSION,
};
use serde::Serialize;

use super::cli::{CaptureArgs, Cli, Command, FileArgs, StatsArgs};
use super::pcap::PcapWriter;
use super::render::{self, Previous};
use super::{decode, flows, Error};

/// The flow syntax summary printed by `vxctl help-flows`.
pub const HELP_FLOWS: &str = include_str!("help-flows.txt");

/// How a command that ran to the end came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Done,
    /// diff-flows found differences (exit status 1, nothing on stderr).
    Different,
}

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
pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<Status, Error> {
    let connect = || Client::connect(&cli.socket, CLIENT_NAME);
    let flow_mods = |mods: Vec<FlowMod>, out: &mut dyn Write| -> Result<Status, Error> {
        send_flow_mods(connect()?, mods, cli.json, out).map(|()| Status::Done)
    };
    match &cli.command {
        Command::AddFlow { flow, .. } => flow_mods(
            vec![FlowMod::Add {
                flow: flow.clone(),
                reset_counts: false,
            }],
            out,
        ),
        Command::AddFlows(f) => {
            let flows = read_flows(f)?;
            let mods = flows
                .into_iter()
                .map(|flow| FlowMod::Add {
                    flow,
                    reset_counts: false,
                })
                .collect();
            flow_mods(mods, out)
        }
        Command::ModFlows { strict, flow, .. } => flow_mods(
            vec![FlowMod::Modify {
                flow: flow.clone(),
                strict: *strict,
            }],
            out,
        ),
        Command::DelFlows { strict, filter, .. } => {
            flow_mods(vec![delete(*strict, filter.as_ref())], out)
        }
        Command::ReplaceFlows(f) => {
            let flows = read_flows(f)?;
            flow_mods(vec![FlowMod::Replace { flows }], out)
        }
        Command::Bundle(f) => {
            let (name, text) = read_input(&f.file)?;
            let mods = flow_syntax::parse_bundle(&text).map_err(|e| file_error(&name, &e))?;
            flow_mods(mods, out)
        }
        Command::SetMiss { table, miss, .. } => flow_mods(
            vec![FlowMod::SetMiss {
                table: *table,
                miss: (*miss).into(),
            }],
            out,
        ),
        Command::DiffFlows(f) => {
            let file = read_flows(f)?;
            let (_, have) = dump(&mut connect()?, None)?;
            let switch: Vec<_> = have.into_iter().map(|f| f.spec).collect();
            let lines = flows::diff(&switch, &file);
            emit(out, &flows::render_diff(&lines))?;
            Ok(if lines.is_empty() {
                Status::Done
            } else {
                Status::Different
            })
        }
        Command::DumpFlows {
            no_stats, filter, ..
        } => {
            let (_, mut list) = dump(&mut connect()?, filter.as_ref())?;
            let text = if cli.json {
                flows::sort(&mut list);
                json(&list)
            } else {
                flows::dump_flows(&list, *no_stats)
            };
            emit(out, &text).map(|()| Status::Done)
        }
        Command::DumpPorts { port, .. } => {
            let s = connect()?.stats()?;
            // The text also checks that the port exists.
            let text = flows::dump_ports(&s, port.as_ref()).map_err(Error::Invalid)?;
            let text = if cli.json {
                let ports: Vec<_> = s
                    .ports
                    .iter()
                    .filter(|p| port.as_ref().is_none_or(|want| flows::port_is(p, want)))
                    .collect();
                json(&ports)
            } else {
                text
            };
            emit(out, &text).map(|()| Status::Done)
        }
        Command::DumpTables { .. } => {
            let tables = match connect()?.call(&Request::DumpTables)? {
                Response::Tables { tables } => tables,
                other => return Err(unexpected(other)),
            };
            let text = if cli.json {
                json(&tables)
            } else {
                flows::dump_tables(&tables)
            };
            emit(out, &text).map(|()| Status::Done)
        }
        Command::Trace { frame, .. } => {
            let req = Request::Trace {
                in_port: frame.in_port.clone(),
                matches: frame.matches.clone(),
            };
            let t = match connect()?.call(&req)? {
                Response::Trace(t) => t,
                other => return Err(unexpected(other)),
            };
            let text = if cli.json {
                json(&t)
            } else {
                flows::trace(&frame.in_port, &frame.matches, &t)
            };
            emit(out, &text).map(|()| Status::Done)
        }
        Command::Monitor { .. } => monitor(&cli.socket, cli.json, out).map(|()| Status::Done),
        Command::Capture(args) => capture(&cli.socket, args, cli.json, out).map(|()| Status::Done),
        Command::HelpFlows => emit(out, HELP_FLOWS).map(|()| Status::Done),
        Command::AddGroup { group, .. } => flow_mods(
            vec![FlowMod::AddGroup {
                group: group.clone(),
            }],
            out,
        ),
        Command::ModGroup { group, .. } => flow_mods(
            vec![FlowMod::ModifyGroup {
                group: group.clone(),
            }],
            out,
        ),
        Command::DelGroups { group, .. } => flow_mods(
            vec![FlowMod::DeleteGroup {
                group_id: group.and_then(|g| g.0),
            }],
            out,
        ),
        Command::DumpGroups { group, .. } => {
            let req = Request::DumpGroups {
                group_id: group.and_then(|g| g.0),
            };
            let groups = match connect()?.call(&req)? {
                Response::Groups { groups, .. } => groups,
                other => return Err(unexpected(other)),
            };
            let text = if cli.json {
                json(&groups)
            } else {
                dump_groups(&groups)
            };
            emit(out, &text).map(|()| Status::Done)
        }
        other => run_config(cli, other, out).map(|()| Status::Done),
    }
}

/// The configuration and inspection commands that predate flows.
fn run_config(cli: &Cli, command: &Command, out: &mut dyn Write) -> Result<(), Error> {
    let connect = || Client::connect(&cli.socket, CLIENT_NAME);
    match command {
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
        _ => unreachable!("flow commands are run by run()"),
    }
}

/// Groups as `ovs-ofctl -O OpenFlow13 dump-groups` prints them.
fn dump_groups(groups: &[controlplane::flow::GroupSpec]) -> String {
    let mut out = String::from("OFPST_GROUP_DESC reply (OF1.3):\n");
    for g in groups {
        out.push(' ');
        out.push_str(&flow_syntax::group::format_group(g));
        out.push('\n');
    }
    out
}

fn unexpected(r: Response) -> Error {
    controlplane::Error::Unexpected(format!("{r:?}")).into()
}

/// Sends one bundle (of any size: see [`Client::flow_mods`]). Quiet on success, as ovs-ofctl is; `--json` prints the new version.
fn send_flow_mods(
    mut c: Client,
    mods: Vec<FlowMod>,
    as_json: bool,
    out: &mut dyn Write,
) -> Result<(), Error> {
    // A large program goes in chunks of one bundle, still all or nothing.
    let version = c.flow_mods(mods)?;
    match as_json {
        true => emit(out, &json(&Response::Applied { version })),
        false => Ok(()),
    }
}

/// del-flows: without a filter every flow; with one, as [`FlowFilter::to_delete`] says (a
/// strict delete without a priority means 32768, as in ovs-ofctl).
fn delete(strict: bool, filter: Option<&FlowFilter>) -> FlowMod {
    filter.map_or(
        FlowMod::Delete {
            table: None,
            priority: None,
            matches: Vec::new(),
            strict: false,
            cookie: None,
        },
        |f| f.to_delete(strict),
    )
}

/// DumpFlows narrowed by a filter: table and match by the switch, the cookie here (the
/// request has no cookie field).
fn dump(c: &mut Client, filter: Option<&FlowFilter>) -> Result<(u64, Vec<FlowStats>), Error> {
    let req = Request::DumpFlows {
        table: filter.and_then(|f| f.table),
        matches: filter.map(|f| f.matches.clone()).unwrap_or_default(),
    };
    match c.call(&req)? {
        Response::Flows {
            table_version,
            mut flows,
        } => {
            let cookie = filter.and_then(|f| f.cookie);
            flows.retain(|f| flows::cookie_selects(&f.spec, cookie));
            Ok((table_version, flows))
        }
        other => Err(unexpected(other)),
    }
}

/// The text of FILE (`-`: stdin) and the name errors call it by.
fn read_input(path: &Path) -> Result<(String, String), Error> {
    let (name, r) = if path == Path::new("-") {
        let mut text = String::new();
        let r = std::io::stdin().read_to_string(&mut text).map(|_| text);
        ("<stdin>".to_string(), r)
    } else {
        (path.display().to_string(), std::fs::read_to_string(path))
    };
    let text = r.map_err(|source| Error::Read {
        path: name.clone(),
        source,
    })?;
    Ok((name, text))
}

fn read_flows(f: &FileArgs) -> Result<Vec<FlowSpec>, Error> {
    let (name, text) = read_input(&f.file)?;
    flow_syntax::parse_flows_file(&text).map_err(|e| file_error(&name, &e))
}

/// `FILE:LINE: column C: reason`, then the line and a caret under the column.
pub fn file_error(name: &str, e: &FileError) -> Error {
    Error::Syntax(format!("{name}:{}: {}", e.line, e.error))
}

/// A streaming request on a connection of its own (no read timeout: a monitor may wait for
/// hours); returns the stream once vxswitchd answered `Streaming`.
fn open_stream(path: &Path, req: &Request) -> Result<UnixStream, Error> {
    use controlplane::client::{connect_within, CONNECT_TIMEOUT};
    let mut stream = connect_within(path, CONNECT_TIMEOUT)?;
    // The daemon answers hello and the request at once; only then may the stream be quiet.
    stream
        .set_read_timeout(Some(CONNECT_TIMEOUT))
        .map_err(controlplane::Error::Io)?;
    let no_answer = |e: controlplane::Error| match e {
        controlplane::Error::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            controlplane::Error::NoAnswer {
                path: path.to_path_buf(),
                what: "answer",
                secs: CONNECT_TIMEOUT.as_secs(),
            }
        }
        e => e,
    };
    let hello = Request::Hello {
        version: PROTOCOL_VERSION,
        client: CLIENT_NAME.to_string(),
    };
    for r in [&hello, req] {
        write_msg(&mut stream, r)?;
        match read_msg::<_, Response>(&mut stream).map_err(no_answer)? {
            Response::Hello { .. } | Response::Streaming { .. } => {}
            Response::Error { code, message } => {
                return Err(controlplane::Error::Refused { code, message }.into())
            }
            other => return Err(unexpected(other)),
        }
    }
    stream
        .set_read_timeout(None)
        .map_err(controlplane::Error::Io)?;
    Ok(stream)
}

/// `vxctl monitor`: one line (or JSON object) per flow event until Ctrl-C; vxswitchd going
/// away is an error (exit 1).
fn monitor(path: &Path, as_json: bool, out: &mut dyn Write) -> Result<(), Error> {
    let mut stream = open_stream(path, &Request::Monitor)?;
    loop {
        match read_msg::<_, Response>(&mut stream)? {
            Response::FlowEvent(e) => {
                let line = if as_json {
                    serde_json::to_string(&e).expect("protocol types serialise")
                } else {
                    flows::flow_event(&e)
                };
                emit(out, &format!("{line}\n"))?;
            }
            Response::StreamEnd { .. } => return Ok(()),
            Response::Error { code, message } => {
                return Err(controlplane::Error::Refused { code, message }.into())
            }
            other => return Err(unexpected(other)),
        }
    }
}

/// Where captured frames go.
enum Sink<'a> {
    /// One line (or JSON object) per frame; `names` maps port numbers to names.
    Lines {
        out: &'a mut dyn Write,
        json: bool,
        names: HashMap<u16, String>,
    },
    /// A pcap stream; `file` names it in errors (`None`: stdout).
    Pcap {
        w: PcapWriter<Box<dyn Write + 'a>>,
        file: Option<String>,
    },
}

impl Sink<'_> {
    fn frame(&mut self, f: &CapturedFrame) -> Result<(), Error> {
        match self {
            Sink::Lines { out, json, names } => {
                let line = if *json {
                    serde_json::to_string(f).expect("protocol types serialise")
                } else {
                    let name = names
                        .get(&f.port)
                        .cloned()
                        .unwrap_or_else(|| f.port.to_string());
                    decode::line(f, &name)
                };
                emit(*out, &format!("{line}\n"))
            }
            Sink::Pcap { w, file } => w.frame(f).map_err(|e| write_error(file.as_deref(), e)),
        }
    }
}

fn write_error(file: Option<&str>, source: std::io::Error) -> Error {
    match file {
        Some(path) => Error::Write {
            path: path.to_string(),
            source,
        },
        None => Error::Output(source),
    }
}

/// `vxctl capture`: lines (or JSON objects) on `out`, or a pcap file (`-w -`: on `out`).
fn capture(
    path: &Path,
    args: &CaptureArgs,
    as_json: bool,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let req = Request::Capture {
        port: args.port.clone(),
        count: args.count,
        filter: args.filter.clone().map(|m| m.0).unwrap_or_default(),
    };
    let mut sink = match &args.write {
        None => {
            // Port names for the lines (the capture itself names the port as given).
            let names = if as_json {
                HashMap::new()
            } else {
                let state = Client::connect(path, CLIENT_NAME)?.state()?;
                state.ports.into_iter().map(|p| (p.no, p.name)).collect()
            };
            Sink::Lines {
                out,
                json: as_json,
                names,
            }
        }
        Some(p) => {
            let (w, file): (Box<dyn Write + '_>, Option<String>) = if p == Path::new("-") {
                (Box::new(out), None)
            } else {
                let name = p.display().to_string();
                let f = File::create(p).map_err(|e| write_error(Some(&name), e))?;
                (Box::new(f), Some(name))
            };
            let w = PcapWriter::new(w).map_err(|e| write_error(file.as_deref(), e))?;
            Sink::Pcap { w, file }
        }
    };
    let mut stream = open_stream(path, &req)?;
    if let Some(p) = &args.write {
        let count = args
            .count
            .map_or(String::new(), |n| format!(", {n} frames"));
        eprintln!(
            "vxctl: capturing port {} to {}{count}; Ctrl-C to stop",
            args.port,
            if p == Path::new("-") {
                "stdout".to_string()
            } else {
                p.display().to_string()
            }
        );
    }
    let mut n = 0u64;
    loop {
        match read_msg::<_, Response>(&mut stream)? {
            Response::Frame(f) => {
                n += 1;
                sink.frame(&f)?;
            }
            Response::StreamEnd { frames, lost } => {
                let lost = if lost > 0 {
                    format!(", {lost} lost (the capture could not keep up)")
                } else {
                    String::new()
                };
                eprintln!("vxctl: {} frames captured{lost}", frames.max(n));
                return Ok(());
            }
            Response::Error { code, message } => {
                return Err(controlplane::Error::Refused { code, message }.into())
            }
            other => return Err(unexpected(other)),
        }
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
    let mut stream =
        controlplane::client::connect_within(path, controlplane::client::CONNECT_TIMEOUT)?;
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
