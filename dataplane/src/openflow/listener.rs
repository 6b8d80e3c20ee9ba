//! OpenFlow connections: the management socket `RUNDIR/BRIDGE.mgmt` (where ovs-ofctl looks
//! for a bridge), `ptcp:PORT[:IP]`, and `tcp:IP:PORT` out to a controller.
//!
//! The Unix socket admits root and, with `--socket-group`, the group's members (SO_PEERCRED,
//! as the control socket); a refused peer gets a hello and an OFPHFC_EPERM error saying why.
//! Limits as on the control socket: the hello within [`HELLO_TIMEOUT`], a message once
//! started whole within [`MESSAGE_TIMEOUT`], replies read within [`REPLY_TIMEOUT`];
//! garbage gets an OpenFlow error and the connection closed. Messages are at most 64 KiB
//! (the header's length field).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use controlplane::openflow::error::kind;
use controlplane::openflow::{Header, OfError, HEADER_LEN, OFP14};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::sync::mpsc;

use super::msgs;
use super::session::Session;
use crate::counters::{ControlCounters, ControlError};
use crate::server::{Access, HELLO_TIMEOUT, MESSAGE_TIMEOUT, REPLY_TIMEOUT};
use crate::switch::Switch;

fn lock(sw: &Arc<Mutex<Switch>>) -> std::sync::MutexGuard<'_, Switch> {
    sw.lock().unwrap_or_else(|p| p.into_inner())
}

/// Parses `ptcp:PORT[:IP]` (IP defaults to 127.0.0.1).
pub fn parse_ptcp(s: &str) -> Result<SocketAddr, String> {
    let rest = s
        .strip_prefix("ptcp:")
        .ok_or_else(|| format!("{s:?}: expected ptcp:PORT[:IP], e.g. ptcp:6653"))?;
    let (port, ip) = match rest.split_once(':') {
        Some((p, ip)) => (p, ip.trim_start_matches('[').trim_end_matches(']')),
        None => (rest, "127.0.0.1"),
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{s:?}: {port:?} is not a port number"))?;
    let ip: std::net::IpAddr = ip
        .parse()
        .map_err(|_| format!("{s:?}: {ip:?} is not an IP address"))?;
    Ok(SocketAddr::new(ip, port))
}

/// Parses `tcp:IP:PORT`.
pub fn parse_tcp(s: &str) -> Result<SocketAddr, String> {
    let rest = s
        .strip_prefix("tcp:")
        .ok_or_else(|| format!("{s:?}: expected tcp:IP:PORT, e.g. tcp:127.0.0.1:6653"))?;
    let (ip, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?}: expected tcp:IP:PORT"))?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    let ip: std::net::IpAddr = ip
        .parse()
        .map_err(|_| format!("{s:?}: {ip:?} is not an IP address"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{s:?}: {port:?} is not a port number"))?;
    Ok(SocketAddr::new(ip, port))
}

/// Serves the management socket until the future is dropped.
pub async fn serve_unix(listener: UnixListener, switch: Arc<Mutex<Switch>>, access: Access) {
    let counters = lock(&switch).control_counters();
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                counters.inc(ControlError::AcceptFailed);
                eprintln!("vxswitchd: accepting OpenFlow connections fails: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if let Err(why) = crate::server::admit(&stream, &access) {
            counters.inc(ControlError::OpenFlowRefused);
            eprintln!("vxswitchd: refused an OpenFlow connection: {why}");
            tokio::spawn(refuse(stream, why));
            continue;
        }
        counters.inc(ControlError::OpenFlowConnections);
        tokio::spawn(connection(stream, switch.clone(), counters.clone()));
    }
}

/// Serves `ptcp:` until the future is dropped.
pub async fn serve_tcp(listener: TcpListener, switch: Arc<Mutex<Switch>>) {
    let counters = lock(&switch).control_counters();
    loop {
        match listener.accept().await {
            Ok((s, _)) => {
                counters.inc(ControlError::OpenFlowConnections);
                tokio::spawn(connection(s, switch.clone(), counters.clone()));
            }
            Err(e) => {
                counters.inc(ControlError::AcceptFailed);
                eprintln!("vxswitchd: accepting OpenFlow connections fails: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Keeps a connection to a controller: reconnects with a back-off from 1 s up to 8 s.
pub async fn controller(addr: SocketAddr, switch: Arc<Mutex<Switch>>) {
    let counters = lock(&switch).control_counters();
    let mut pause = Duration::from_secs(1);
    loop {
        match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                eprintln!("vxswitchd: connected to OpenFlow controller {addr}");
                counters.inc(ControlError::OpenFlowConnections);
                pause = Duration::from_secs(1);
                connection(s, switch.clone(), counters.clone()).await;
                eprintln!("vxswitchd: OpenFlow controller {addr} disconnected; reconnecting");
            }
            Ok(Err(e)) => eprintln!("vxswitchd: cannot reach OpenFlow controller {addr}: {e}"),
            Err(_) => eprintln!("vxswitchd: OpenFlow controller {addr}: connect timed out"),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(8));
    }
}

/// Tells a refused peer why (a hello, then OFPHFC_EPERM with the reason as text), then
/// closes.
async fn refuse<S: AsyncWrite + Unpin>(mut stream: S, why: String) {
    // OFPHFC_EPERM; a failed hello's data is an explanation in ASCII, sent whole.
    let mut out = msgs::hello(OFP14, 0);
    let at = controlplane::openflow::header::start(
        &mut out,
        controlplane::openflow::OFP13,
        controlplane::openflow::MsgType::Error,
        0,
    );
    out.extend_from_slice(&kind::HELLO_FAILED.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(why.as_bytes());
    controlplane::openflow::header::finish(&mut out, at);
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&out)).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
}

/// What the reader hands the session.
enum Frame {
    Msg(Vec<u8>),
    /// Garbage, or a limit passed: the error to send, then close.
    Bad(String, Option<Vec<u8>>),
}

/// Reads whole messages; ends at EOF or after a bad one.
async fn reader<R: AsyncRead + Unpin>(mut rd: R, tx: mpsc::Sender<Frame>) {
    let mut greeted = false;
    loop {
        let mut head = [0u8; HEADER_LEN];
        let first = rd.read(&mut head[..1]);
        let n = if greeted {
            first.await
        } else {
            match tokio::time::timeout(HELLO_TIMEOUT, first).await {
                Ok(r) => r,
                Err(_) => {
                    let _ = tx
                        .send(Frame::Bad(
                            format!("no hello within {} s", HELLO_TIMEOUT.as_secs()),
                            None,
                        ))
                        .await;
                    return;
                }
            }
        };
        match n {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let first_message = !greeted;
        greeted = true;
        let rest = async {
            rd.read_exact(&mut head[1..]).await?;
            // Whatever does not start with a hello is not OpenFlow: answer at once rather
            // than wait for a length that was never meant as one.
            if first_message && head[1] != 0 {
                return Ok(Err(head.to_vec()));
            }
            let len = u16::from_be_bytes([head[2], head[3]]) as usize;
            if len < HEADER_LEN {
                return Ok::<_, std::io::Error>(Err(head.to_vec()));
            }
            let mut msg = vec![0u8; len];
            msg[..HEADER_LEN].copy_from_slice(&head);
            rd.read_exact(&mut msg[HEADER_LEN..]).await?;
            Ok(Ok(msg))
        };
        match tokio::time::timeout(MESSAGE_TIMEOUT, rest).await {
            Ok(Ok(Ok(msg))) => {
                if tx.send(Frame::Msg(msg)).await.is_err() {
                    return;
                }
            }
            Ok(Ok(Err(head))) => {
                // Read what else the peer sent (bounded): a Unix socket closed with unread
                // input resets the peer, which would then miss our error and the clean end.
                let mut sink = [0u8; 4096];
                let mut drained = 0;
                while drained < 65_536 {
                    match tokio::time::timeout(Duration::from_millis(50), rd.read(&mut sink)).await
                    {
                        Ok(Ok(n)) if n > 0 => drained += n,
                        _ => break,
                    }
                }
                let _ = tx
                    .send(Frame::Bad(
                        "a header whose length is under 8 bytes".into(),
                        Some(head),
                    ))
                    .await;
                return;
            }
            Ok(Err(_)) => return,
            Err(_) => {
                let _ = tx
                    .send(Frame::Bad(
                        format!(
                            "a message did not arrive whole within {} s",
                            MESSAGE_TIMEOUT.as_secs()
                        ),
                        None,
                    ))
                    .await;
                return;
            }
        }
    }
}

/// One OpenFlow connection: our hello first, then request by request; flow events go out
/// to the connection's flow monitors as they happen.
pub async fn connection<S>(stream: S, switch: Arc<Mutex<Switch>>, counters: Arc<ControlCounters>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, mut wr) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel(4);
    let read_task = tokio::spawn(reader(rd, tx));
    let mut session = Some(Session::new());
    let mut events = lock(&switch).subscribe();
    if write(&mut wr, &msgs::hello(OFP14, 0), &counters)
        .await
        .is_err()
    {
        read_task.abort();
        return;
    }
    loop {
        let monitoring = session.as_ref().is_some_and(Session::monitoring);
        tokio::select! {
            frame = rx.recv() => {
                let Some(frame) = frame else { break };
                let msg = match frame {
                    Frame::Msg(m) => m,
                    Frame::Bad(why, head) => {
                        counters.inc(ControlError::OpenFlowClosed);
                        eprintln!("vxswitchd: OpenFlow connection closed: {why}");
                        if let Some(head) = head {
                            let v = session.as_ref().and_then(Session::version).unwrap_or(OFP14);
                            let xid = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
                            counters.inc(ControlError::OpenFlowErrors);
                            let _ = write(&mut wr, &msgs::error(v, xid, &OfError::bad_len(), &head), &counters).await;
                        }
                        break;
                    }
                };
                debug_assert!(Header::new_checked(&msg[..]).is_ok());
                let sw = switch.clone();
                let mut s = session.take().unwrap_or_default();
                let joined = tokio::task::spawn_blocking(move || {
                    let out = {
                        let mut g = lock(&sw);
                        s.input(&msg, &mut *g)
                    };
                    (s, out)
                })
                .await;
                let Ok((s, out)) = joined else { break };
                session = Some(s);
                for _ in 0..out.errors {
                    counters.inc(ControlError::OpenFlowErrors);
                }
                let mut failed = false;
                for r in &out.replies {
                    if write(&mut wr, r, &counters).await.is_err() {
                        failed = true;
                        break;
                    }
                }
                if failed || out.close {
                    if out.close {
                        counters.inc(ControlError::OpenFlowClosed);
                    }
                    break;
                }
            }
            ev = events.recv(), if monitoring => match ev {
                Ok(ev) => {
                    let updates = session.as_ref().map(|s| s.flow_event(&ev)).unwrap_or_default();
                    let mut failed = false;
                    for u in &updates {
                        if write(&mut wr, u, &counters).await.is_err() {
                            failed = true;
                            break;
                        }
                    }
                    if failed {
                        break;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    eprintln!("vxswitchd: an OpenFlow flow monitor fell {n} updates behind");
                }
                Err(_) => break,
            },
        }
        if !monitoring {
            // Events that came while nobody watched are not owed to anyone.
            events = events.resubscribe();
        }
    }
    read_task.abort();
    let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
}

async fn write<W: AsyncWrite + Unpin>(
    wr: &mut W,
    msg: &[u8],
    counters: &ControlCounters,
) -> Result<(), ()> {
    match tokio::time::timeout(REPLY_TIMEOUT, wr.write_all(msg)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(()),
        Err(_) => {
            counters.inc(ControlError::OpenFlowClosed);
            eprintln!(
                "vxswitchd: closed an OpenFlow connection that left its replies unread for {} s",
                REPLY_TIMEOUT.as_secs()
            );
            Err(())
        }
    }
}
