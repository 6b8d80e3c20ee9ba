//! The UDP rate test's own sender and receiver (`vxbench udp-send` / `udp-recv`, run inside
//! the pods). iperf3 sends one datagram per system call and tops out far below what the
//! switches forward; this sender batches 64 datagrams per `sendmmsg`, the receiver takes up to
//! 64 per `recvmmsg`, so neither end is the limit of the small-packet test.
//!
//! Every datagram starts with its sequence number (big-endian u64). When done, the sender
//! sends a few end markers — sequence number [`FIN`], followed by the count it sent — and the
//! receiver stops at the first one (or after [`RecvOptions::idle`] without data, or at its
//! time limit), and reports what arrived.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::ops::Range;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::sys::{self, Buffer, Mmsg};

/// Bytes of a datagram that hold its sequence number.
const SEQ: Range<usize> = 0..8;
/// Bytes of an end marker that hold the count sent.
const COUNT: Range<usize> = 8..16;
/// The smallest payload: sequence number and count.
pub const MIN_SIZE: usize = COUNT.end;
/// The largest payload over a 1500-byte underlay (IPv4 and UDP headers take 28 bytes).
pub const MAX_SIZE: usize = 1472;
/// The most concurrent senders (and receivers) of one UDP test.
pub const MAX_SENDERS: usize = 16;
/// Sequence number of the end marker.
pub const FIN: u64 = u64::MAX;
/// How many end markers, and how far apart.
const FIN_COPIES: u32 = 5;
const FIN_GAP: Duration = Duration::from_millis(20);
/// The receive buffer: room for a scheduling hiccup of the receiver at a million packets/s.
const RCVBUF: usize = 8 << 20;
/// Longest a receive call blocks, so the receiver notices its limits.
const POLL: Duration = Duration::from_millis(100);
/// Below this much time ahead of schedule, a paced sender spins instead of sleeping.
const SPIN_BELOW: Duration = Duration::from_micros(200);

/// What `udp-send` does.
#[derive(Debug, Clone)]
pub struct SendOptions {
    pub to: SocketAddr,
    /// UDP payload bytes, [`MIN_SIZE`]..=[`MAX_SIZE`].
    pub size: usize,
    pub duration: Duration,
    /// Datagrams per second; `None`: as fast as the sender can.
    pub rate: Option<u64>,
    /// Datagrams per `sendmmsg`.
    pub batch: usize,
}

/// What `udp-send` prints (one JSON line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendReport {
    /// Datagrams the kernel accepted.
    pub sent: u64,
    /// Seconds from the first to the last send call.
    pub secs: f64,
    pub pps: f64,
    /// Send calls that failed (ENOBUFS, ECONNREFUSED from an ICMP error, ...).
    pub errors: u64,
}

/// What `udp-recv` does.
#[derive(Debug, Clone)]
pub struct RecvOptions {
    pub listen: SocketAddr,
    /// Give up after this long in total.
    pub limit: Duration,
    /// Stop once nothing has arrived for this long after the first datagram.
    pub idle: Duration,
    /// Datagrams per `recvmmsg`.
    pub batch: usize,
}

/// What `udp-recv` prints (one JSON line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecvReport {
    /// Datagrams received, end markers not counted.
    pub received: u64,
    /// Payload bytes received.
    pub bytes: u64,
    /// Highest sequence number seen.
    pub max_seq: Option<u64>,
    /// Datagrams with a lower sequence number than one before them.
    pub reordered: u64,
    /// The sender's count, from an end marker (None: no marker arrived).
    pub fin_sent: Option<u64>,
    /// Seconds from the first to the last datagram.
    pub secs: f64,
    /// Why it stopped: "fin", "idle" or "limit".
    pub stopped: String,
}

/// Checks the options the command line cannot.
pub fn check_size(size: usize) -> Result<(), String> {
    if (MIN_SIZE..=MAX_SIZE).contains(&size) {
        Ok(())
    } else {
        Err(format!(
            "payload size {size}: use {MIN_SIZE} to {MAX_SIZE} bytes"
        ))
    }
}

/// Sends for `duration`, then the end markers.
pub fn send(opts: &SendOptions) -> io::Result<SendReport> {
    check_size(opts.size).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let local: SocketAddr = if opts.to.is_ipv4() {
        "0.0.0.0:0".parse().expect("address")
    } else {
        "[::]:0".parse().expect("address")
    };
    let sock = UdpSocket::bind(local)?;
    sock.connect(opts.to)?;
    let batch = opts.batch.max(1);
    let mut bufs = vec![vec![0u8; opts.size]; batch];
    let mut mmsg = Mmsg::default();
    let mut seq: u64 = 0;
    let mut errors: u64 = 0;
    let start = Instant::now();
    let end = start + opts.duration;
    let mut last = start;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let mut n = batch;
        if let Some(rate) = opts.rate {
            let due = (now - start).as_secs_f64() * rate as f64;
            let ahead = (seq as f64 - due) / rate as f64;
            if ahead >= 0.0 {
                let wait = Duration::from_secs_f64(ahead + 1.0 / rate as f64);
                if wait < SPIN_BELOW {
                    std::hint::spin_loop();
                } else {
                    std::thread::sleep(wait.min(end - now));
                }
                continue;
            }
            n = n.min(((due - seq as f64).ceil() as usize).max(1));
        }
        for (i, b) in bufs[..n].iter_mut().enumerate() {
            b[SEQ].copy_from_slice(&(seq + i as u64).to_be_bytes());
        }
        match mmsg.send(&sock, &bufs[..n]) {
            Ok(k) => seq += k as u64,
            Err(_) => {
                errors += 1;
                std::thread::yield_now();
            }
        }
        last = Instant::now();
    }
    let secs = (last - start).as_secs_f64();
    let mut fin = vec![0u8; opts.size];
    fin[SEQ].copy_from_slice(&FIN.to_be_bytes());
    fin[COUNT].copy_from_slice(&seq.to_be_bytes());
    for _ in 0..FIN_COPIES {
        std::thread::sleep(FIN_GAP);
        let _ = sock.send(&fin);
    }
    Ok(SendReport {
        sent: seq,
        secs,
        pps: if secs > 0.0 { seq as f64 / secs } else { 0.0 },
        errors,
    })
}

/// Binds, calls `ready` (which tells the caller it may start the sender), and counts until an
/// end marker, `idle` without data, or `limit`.
pub fn recv(opts: &RecvOptions, ready: impl FnOnce()) -> io::Result<RecvReport> {
    let sock = UdpSocket::bind(opts.listen)?;
    // Best effort: without it the default buffer holds a few hundred datagrams.
    let _ = sys::force_buffer(&sock, Buffer::Receive, RCVBUF);
    sock.set_read_timeout(Some(POLL))?;
    ready();
    let batch = opts.batch.max(1);
    let mut bufs = vec![vec![0u8; MAX_SIZE + 1]; batch];
    let mut lens = vec![0usize; batch];
    let mut mmsg = Mmsg::default();
    let mut tally = Tally::default();
    let start = Instant::now();
    let mut first: Option<Instant> = None;
    let mut last = start;
    let stopped = loop {
        let now = Instant::now();
        if now - start >= opts.limit {
            break "limit";
        }
        if first.is_some() && now - last >= opts.idle {
            break "idle";
        }
        let n = match mmsg.recv(&sock, &mut bufs, &mut lens) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        let mut fin = false;
        for (b, &len) in bufs[..n].iter().zip(&lens[..n]) {
            fin |= tally.add(&b[..len.min(b.len())]);
        }
        if tally.received > 0 {
            last = Instant::now();
            first.get_or_insert(last);
        }
        if fin {
            break "fin";
        }
    };
    Ok(RecvReport {
        received: tally.received,
        bytes: tally.bytes,
        max_seq: tally.max_seq,
        reordered: tally.reordered,
        fin_sent: tally.fin_sent,
        secs: first.map_or(0.0, |f| (last - f).as_secs_f64()),
        stopped: stopped.to_string(),
    })
}

/// The receiver's counts.
#[derive(Debug, Default)]
struct Tally {
    received: u64,
    bytes: u64,
    max_seq: Option<u64>,
    reordered: u64,
    fin_sent: Option<u64>,
}

impl Tally {
    /// Counts one datagram; true if it was an end marker.
    fn add(&mut self, d: &[u8]) -> bool {
        let Some(seq) = d
            .get(SEQ)
            .map(|s| u64::from_be_bytes(s.try_into().expect("8 bytes")))
        else {
            return false; // not ours
        };
        if seq == FIN {
            if let Some(c) = d.get(COUNT) {
                self.fin_sent = Some(u64::from_be_bytes(c.try_into().expect("8 bytes")));
            }
            return true;
        }
        self.received += 1;
        self.bytes += d.len() as u64;
        match self.max_seq {
            Some(m) if seq < m => self.reordered += 1,
            _ => self.max_seq = Some(seq),
        }
        false
    }
}

/// Loss in percent: 1 - received/sent, never below 0.
pub fn loss_pct(sent: u64, received: u64) -> f64 {
    if sent == 0 {
        return 100.0;
    }
    (100.0 * (1.0 - received as f64 / sent as f64)).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tally_counts_datagrams_and_reads_the_end_marker() {
        let mut t = Tally::default();
        let d = |seq: u64| {
            let mut b = vec![0u8; 64];
            b[SEQ].copy_from_slice(&seq.to_be_bytes());
            b
        };
        assert!(!t.add(&d(0)));
        assert!(!t.add(&d(2)));
        assert!(!t.add(&d(1)));
        assert!(!t.add(&[1, 2, 3]));
        let mut fin = d(FIN);
        fin[COUNT].copy_from_slice(&3u64.to_be_bytes());
        assert!(t.add(&fin));
        assert_eq!(
            (t.received, t.bytes, t.max_seq, t.reordered, t.fin_sent),
            (3, 192, Some(2), 1, Some(3))
        );
        assert_eq!(loss_pct(4, 3), 25.0);
        assert_eq!(loss_pct(3, 4), 0.0);
        assert_eq!(loss_pct(0, 0), 100.0);
        assert!(check_size(15).is_err() && check_size(1473).is_err());
        check_size(64).unwrap();
    }

    #[test]
    fn sender_and_receiver_agree_over_loopback() {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let (tx, rx) = std::sync::mpsc::channel();
        let receiver = std::thread::spawn(move || {
            recv(
                &RecvOptions {
                    listen: addr,
                    limit: Duration::from_secs(10),
                    idle: Duration::from_secs(2),
                    batch: 64,
                },
                || tx.send(()).unwrap(),
            )
            .unwrap()
        });
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let sent = send(&SendOptions {
            to: addr,
            size: 64,
            duration: Duration::from_millis(300),
            rate: Some(20_000),
            batch: 16,
        })
        .unwrap();
        let got = receiver.join().unwrap();
        assert_eq!(got.stopped, "fin");
        assert_eq!(got.fin_sent, Some(sent.sent));
        // Paced at 20 kpps for 0.3 s: about 6000, and loopback loses nothing at that rate.
        assert!((4000..=8000).contains(&sent.sent), "{sent:?}");
        assert_eq!(got.received, sent.sent, "{got:?}");
        assert_eq!(got.bytes, 64 * sent.sent);
    }
}
