//! The TCP request/response test (`vxbench tcp-echo-server` / `tcp-rr`, run inside the pods):
//! one connection, Nagle off, a 1-byte request answered by a 1-byte response, one at a time;
//! every round trip is timed.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::stats;

/// How often the server looks for a connection while waiting.
const ACCEPT_POLL: Duration = Duration::from_millis(10);
/// Longest wait for one response before the client gives up.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// What `tcp-rr` prints (one JSON line); times in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RrReport {
    pub count: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
    pub min_us: f64,
    pub max_us: f64,
}

/// Listens, calls `ready`, serves one connection (echoing every byte) until the client closes
/// it, and returns the bytes echoed. Gives up when nobody connects or talks within `limit`.
pub fn echo_server(listen: SocketAddr, limit: Duration, ready: impl FnOnce()) -> io::Result<u64> {
    let listener = TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    ready();
    let deadline = Instant::now() + limit;
    let mut conn = loop {
        match listener.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no client connected in time",
                    ));
                }
                std::thread::sleep(ACCEPT_POLL);
            }
            Err(e) => return Err(e),
        }
    };
    conn.set_nonblocking(false)?;
    conn.set_nodelay(true)?;
    let mut buf = [0u8; 4096];
    let mut echoed = 0u64;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(echoed);
        }
        conn.set_read_timeout(Some(left))?;
        let n = match conn.read(&mut buf) {
            Ok(0) => return Ok(echoed),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        conn.write_all(&buf[..n])?;
        echoed += n as u64;
    }
}

/// Connects, does `warmup` untimed and then `count` timed 1-byte round trips.
pub fn client(
    to: SocketAddr,
    count: usize,
    warmup: usize,
    connect_timeout: Duration,
) -> io::Result<RrReport> {
    let mut conn = TcpStream::connect_timeout(&to, connect_timeout)?;
    conn.set_nodelay(true)?;
    conn.set_read_timeout(Some(RESPONSE_TIMEOUT))?;
    let mut samples = Vec::with_capacity(count);
    let mut byte = [0u8; 1];
    for i in 0..warmup + count {
        let t = Instant::now();
        conn.write_all(b"x")?;
        conn.read_exact(&mut byte)?;
        if i >= warmup {
            samples.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    let _ = conn.shutdown(std::net::Shutdown::Both);
    if samples.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no round trips asked for",
        ));
    }
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    stats::sort(&mut samples);
    Ok(RrReport {
        count: samples.len(),
        p50_us: stats::percentile_sorted(&samples, 50.0),
        p99_us: stats::percentile_sorted(&samples, 99.0),
        mean_us: mean,
        min_us: samples[0],
        max_us: samples[samples.len() - 1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_over_loopback() {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let (tx, rx) = std::sync::mpsc::channel();
        let server = std::thread::spawn(move || {
            echo_server(addr, Duration::from_secs(10), || tx.send(()).unwrap()).unwrap()
        });
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let r = client(addr, 200, 10, Duration::from_secs(2)).unwrap();
        assert_eq!(r.count, 200);
        assert!(r.min_us <= r.p50_us && r.p50_us <= r.p99_us && r.p99_us <= r.max_us);
        assert_eq!(server.join().unwrap(), 210);
    }
}
