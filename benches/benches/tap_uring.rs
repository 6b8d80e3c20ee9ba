//! Does io_uring pay for small-frame TAP I/O? One `read()`/`write()` per frame (what vxswitchd
//! does today for frames that are not super-frames) against io_uring batches of 1, 8, 32 and 64
//! read/write SQEs submitted with one `io_uring_enter`, plus a batch of 32 with a registered file
//! and registered buffers (`READ_FIXED`/`WRITE_FIXED`).
//!
//! Run (as root): `cargo bench -p vxswitch-benches --bench tap_uring`. Without `--bench` (e.g.
//! `cargo test --benches`) it does one tiny smoke round. Knobs: `VXURING_ROUNDS` (measured rounds,
//! default 7), `VXURING_FRAMES` (frames per measurement, default 16384), `VXURING_TUNED=1` (rings
//! with SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN). It skips, exiting 0, when
//! not root, when io_uring is unavailable (`kernel.io_uring_disabled`, seccomp, old kernel) or when
//! `ip` is missing.
//!
//! Setup, all inside a network namespace `vxuring-<pid>` created for the run and deleted by a
//! drop guard (also on error, panic of the bench thread, or Ctrl-C between measurements):
//! - the bench thread `setns`es into it and opens the TAP `vxu0` there through
//!   `dataplane::io::tap::Tap::open` exactly like vxswitchd: IFF_TAP | IFF_NO_PI |
//!   IFF_MULTI_QUEUE | IFF_VNET_HDR, a 12-byte virtio-net header (TUNSETVNETHDRSZ), checksum + TSO
//!   offloads, non-blocking queue fd; IPv6 is off in the namespace so no stray ND/MLD frames land
//!   on the TAP; address 10.1.250.1/24, MAC 02:00:00:00:00:01, txqueuelen 4096, and a permanent
//!   neighbour 10.1.250.2 -> 02:00:00:00:00:02 (no ARP traffic either).
//! - TAP writes ("toward the pod"): 12 zero bytes of virtio-net header + an Ethernet/IPv4/UDP
//!   frame, one contiguous buffer per write as in `Worker::write_tap`. Two kinds of frame:
//!   * `otherhost`: destination MAC 02:00:00:00:00:99, not the TAP's, so the stack marks it
//!     PACKET_OTHERHOST and `ip_rcv` drops it right away. This keeps the whole tun_get_user path
//!     (the cost of the write itself) and almost nothing of the stack, and nothing comes back into
//!     the TAP (no ICMP port-unreachable).
//!   * `deliver`: destination MAC = the TAP's, 10.1.250.1:5555 where a UDP socket is bound with a
//!     64 MB receive buffer (SO_RCVBUFFORCE), drained between measurements (untimed). This is the
//!     realistic case: each frame goes through IP and UDP into a socket queue, in the writer's
//!     context (tun without IFF_NAPI receives synchronously inside `write`).
//! - TAP reads ("from the pod"): a UDP socket in the namespace sends to 10.1.250.2:9, each send
//!   gives one frame on the TAP. The TAP ring is filled with up to 4000 frames (untimed), then
//!   the reads that drain it are timed; repeated until the measurement has its frame count.
//!   Frames sit ready, so this is the cost of taking frames off a busy queue, which is the case
//!   where batching can help; an idle queue is a readiness question, not measured here.
//!
//! The TAP fd is O_NONBLOCK (as in vxswitchd), so io_uring issues reads and writes inline in
//! `io_uring_enter` (and tun advertises FMODE_NOWAIT); the bench reports whether any io-wq worker
//! thread (`iou-wrk-*`) appeared, which would mean requests were punted to a thread pool.
//! SQPOLL is not measured: it burns a core, which a 2-core node cannot give.
//!
//! Variants run interleaved (rotated order in every round, one warm-up round discarded); the
//! table shows the median over rounds, with min and max.

use std::fs::File;
use std::io::{self, Write as _};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dataplane::io::netns::run_cmd;
use dataplane::io::sys::setsockopt_int;
use dataplane::io::tap::{Tap, TapOptions, TapQueue};
use io_uring::{opcode, types, IoUring};

const TAP_NAME: &str = "vxu0";
const TAP_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const OTHER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];
const TAP_IP: Ipv4Addr = Ipv4Addr::new(10, 1, 250, 1);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 1, 250, 2);
const SINK_PORT: u16 = 5555;
/// vxswitchd sets TUNSETVNETHDRSZ to 12 (virtio_net_hdr_mrg_rxbuf).
const VNET_HDR_LEN: usize = 12;
/// Ethernet frame sizes (without the virtio-net header).
const FRAME_SIZES: [usize; 2] = [64, 1450];
const TXQUEUELEN: usize = 4096;
/// Frames put in the TAP ring per fill, below TXQUEUELEN.
const FILL: usize = 4000;
const SLOTS: usize = 64;
const SLOT_LEN: usize = 2048;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let cfg = Config {
        tuned: env("VXURING_TUNED", 0) != 0,
        rounds: if full {
            env("VXURING_ROUNDS", 7).max(1)
        } else {
            1
        },
        warmup: full,
        frames: if full {
            env("VXURING_FRAMES", 16_384).max(SLOTS)
        } else {
            512
        },
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("tap_uring: skipped: needs root (network namespace and TAP device)");
        return;
    }
    if let Err(e) = uring_available() {
        println!("tap_uring: skipped: io_uring unavailable: {e}");
        return;
    }
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(e) => {
            println!("tap_uring: skipped: cannot create a network namespace: {e}");
            return;
        }
    };
    let path = ns.path();
    let res = std::thread::Builder::new()
        .name("tap-uring".into())
        .spawn(move || run(&path, cfg))
        .map_err(|e| e.to_string())
        .and_then(|h| {
            h.join()
                .map_err(|_| "bench thread panicked".to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
        });
    drop(ns);
    if let Err(e) = res {
        eprintln!("tap_uring: failed: {e}");
        std::process::exit(1);
    }
}

#[derive(Clone, Copy)]
struct Config {
    /// Rings made with SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN.
    tuned: bool,
    rounds: usize,
    warmup: bool,
    frames: usize,
}

/// A ring for one thread; `tuned`: the flags recommended for a single submitting thread.
fn new_ring(tuned: bool) -> io::Result<IoUring> {
    let mut b = IoUring::builder();
    if tuned {
        b.setup_single_issuer()
            .setup_defer_taskrun()
            .setup_coop_taskrun();
    }
    b.build(2 * SLOTS as u32)
}

fn uring_available() -> io::Result<()> {
    let ring = IoUring::new(8)?;
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    for (name, code) in [
        ("READ", opcode::Read::CODE),
        ("WRITE", opcode::Write::CODE),
        ("READ_FIXED", opcode::ReadFixed::CODE),
        ("WRITE_FIXED", opcode::WriteFixed::CODE),
    ] {
        if !probe.is_supported(code) {
            return Err(io::Error::other(format!("opcode {name} not supported")));
        }
    }
    Ok(())
}

/// A network namespace made for this run; deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn create() -> io::Result<Netns> {
        let name = format!("vxuring-{}", std::process::id());
        run_cmd("ip", &["netns", "add", &name])?;
        Ok(Netns { name })
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run_cmd("ip", &["netns", "del", &self.name]) {
            eprintln!("tap_uring: cannot delete namespace {}: {e}", self.name);
        }
    }
}

/// Enters the namespace (this thread only) and sets everything up there.
fn run(ns_path: &str, cfg: Config) -> io::Result<()> {
    let f = File::open(ns_path)?;
    // SAFETY: `f` is an open namespace file; setns only reads the descriptor and changes this
    // thread's network namespace, which no other code shares.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // From here on sockets, the TAP and `ip` children all live in the namespace.
    for p in [
        "/proc/sys/net/ipv6/conf/default/disable_ipv6",
        "/proc/sys/net/ipv6/conf/all/disable_ipv6",
    ] {
        let _ = std::fs::write(p, "1"); // absent without IPv6: nothing to silence then
    }
    run_cmd("ip", &["link", "set", "lo", "up"])?;
    let tap = Tap::open(TAP_NAME, 1, TapOptions { vnet_hdr: true })?;
    let mac = TAP_MAC.map(|b| format!("{b:02x}")).join(":");
    let peer = PEER_MAC.map(|b| format!("{b:02x}")).join(":");
    let qlen = TXQUEUELEN.to_string();
    run_cmd(
        "ip",
        &[
            "link",
            "set",
            "dev",
            TAP_NAME,
            "address",
            &mac,
            "txqueuelen",
            &qlen,
            "up",
        ],
    )?;
    run_cmd("ip", &["addr", "add", "10.1.250.1/24", "dev", TAP_NAME])?;
    run_cmd(
        "ip",
        &[
            "neigh",
            "replace",
            "10.1.250.2",
            "lladdr",
            &peer,
            "dev",
            TAP_NAME,
            "nud",
            "permanent",
        ],
    )?;
    let mut b = Bench::new(&tap.queues[0], cfg)?;
    b.run_all()?;
    drop(tap);
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    Syscall,
    Uring(usize),
    UringFixed(usize),
}

const VARIANTS: [Variant; 6] = [
    Variant::Syscall,
    Variant::Uring(1),
    Variant::Uring(8),
    Variant::Uring(32),
    Variant::Uring(64),
    Variant::UringFixed(32),
];

impl Variant {
    fn label(self) -> String {
        match self {
            Variant::Syscall => "read/write per frame".into(),
            Variant::Uring(n) => format!("io_uring batch {n}"),
            Variant::UringFixed(n) => format!("io_uring batch {n} fixed"),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Test {
    Write { deliver: bool, size: usize },
    Read { size: usize },
}

impl Test {
    fn label(self) -> String {
        match self {
            Test::Write { deliver, size } => format!(
                "TAP write, {size} B frames, {}",
                if deliver {
                    "delivered to a UDP socket"
                } else {
                    "dropped as PACKET_OTHERHOST"
                }
            ),
            Test::Read { size } => format!("TAP read, {size} B frames (queue pre-filled)"),
        }
    }
}

/// Fixed-address buffers: leaked, so they outlive every request the kernel may hold.
struct Arena {
    base: *mut u8,
}

impl Arena {
    fn new() -> Arena {
        let v: &'static mut [u8] = Box::leak(vec![0u8; SLOTS * SLOT_LEN].into_boxed_slice());
        Arena {
            base: v.as_mut_ptr(),
        }
    }

    fn slot(&self, i: usize) -> *mut u8 {
        assert!(i < SLOTS);
        // SAFETY: i < SLOTS, so the offset stays inside the SLOTS * SLOT_LEN allocation.
        unsafe { self.base.add(i * SLOT_LEN) }
    }

    fn iovec(&self) -> libc::iovec {
        libc::iovec {
            iov_base: self.base.cast(),
            iov_len: SLOTS * SLOT_LEN,
        }
    }
}

struct Bench<'a> {
    cfg: Config,
    q: &'a TapQueue,
    /// Plain ring: SQEs name the TAP by fd.
    ring: IoUring,
    /// Ring with the TAP registered as file 0 and the arenas as buffers 0 (write) and 1 (read).
    fixed: IoUring,
    wbuf: Arena,
    rbuf: Arena,
    /// Length of the frame (with virtio-net header) currently in every write slot.
    wlen: usize,
    sink: UdpSocket,
    source: UdpSocket,
    strays: usize,
}

impl<'a> Bench<'a> {
    fn new(q: &'a TapQueue, cfg: Config) -> io::Result<Bench<'a>> {
        let ring = new_ring(cfg.tuned)?;
        let fixed = new_ring(cfg.tuned)?;
        let wbuf = Arena::new();
        let rbuf = Arena::new();
        fixed.submitter().register_files(&[q.as_raw_fd()])?;
        // SAFETY: both arenas are leaked allocations that are never freed, so they stay valid
        // for as long as the ring may use them.
        unsafe {
            fixed
                .submitter()
                .register_buffers(&[wbuf.iovec(), rbuf.iovec()])?
        };
        let sink = UdpSocket::bind(SocketAddrV4::new(TAP_IP, SINK_PORT))?;
        setsockopt_int(
            sink.as_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            64 << 20,
        )?;
        sink.set_nonblocking(true)?;
        let source = UdpSocket::bind(SocketAddrV4::new(TAP_IP, 0))?;
        source.connect(SocketAddrV4::new(PEER_IP, 9))?;
        Ok(Bench {
            cfg,
            q,
            ring,
            fixed,
            wbuf,
            rbuf,
            wlen: 0,
            sink,
            source,
            strays: 0,
        })
    }

    fn run_all(&mut self) -> io::Result<()> {
        let mut tests = Vec::new();
        for size in FRAME_SIZES {
            tests.push(Test::Write {
                deliver: false,
                size,
            });
            tests.push(Test::Write {
                deliver: true,
                size,
            });
            tests.push(Test::Read { size });
        }
        println!(
            "tap_uring: kernel {}, {} rounds (+{} warm-up) x {} frames per measurement, variants interleaved{}",
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim(),
            self.cfg.rounds,
            usize::from(self.cfg.warmup),
            self.cfg.frames,
            if self.cfg.tuned {
                ", rings SINGLE_ISSUER|DEFER_TASKRUN|COOP_TASKRUN"
            } else {
                ""
            }
        );
        let started = Instant::now();
        for t in tests {
            if STOP.load(Ordering::Relaxed) {
                break;
            }
            self.run_test(t)?;
        }
        let wrk = io_wq_threads();
        println!(
            "\nio-wq worker threads seen: {wrk} ({})",
            if wrk == 0 {
                "all requests ran inline in io_uring_enter"
            } else {
                "some requests were punted to io-wq"
            }
        );
        if self.strays > 0 {
            println!(
                "stray frames read from the TAP (not ours, ignored): {}",
                self.strays
            );
        }
        println!("total {:.1} s", started.elapsed().as_secs_f64());
        Ok(())
    }

    fn run_test(&mut self, t: Test) -> io::Result<()> {
        if let Test::Write { deliver, size } = t {
            let frame = frame(size, deliver);
            for i in 0..SLOTS {
                // SAFETY: every slot holds SLOT_LEN >= frame.len() bytes and no request is in
                // flight (all were reaped), so nothing else accesses the slot.
                unsafe {
                    std::ptr::copy_nonoverlapping(frame.as_ptr(), self.wbuf.slot(i), frame.len())
                };
            }
            self.wlen = frame.len();
        }
        let mut ns: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
        let rounds = self.cfg.rounds + usize::from(self.cfg.warmup);
        for round in 0..rounds {
            for k in 0..VARIANTS.len() {
                if STOP.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let vi = (k + round) % VARIANTS.len();
                let v = VARIANTS[vi];
                let (elapsed, n) = match t {
                    Test::Write { deliver, .. } => {
                        let r = self.measure_write(v, self.cfg.frames)?;
                        if deliver {
                            self.drain_sink();
                        }
                        r
                    }
                    Test::Read { size } => self.measure_read(v, size, self.cfg.frames)?,
                };
                if n == 0 {
                    return Err(io::Error::other(format!("{}: no frame moved", v.label())));
                }
                if round > 0 || !self.cfg.warmup {
                    ns[vi].push(elapsed.as_nanos() as f64 / n as f64);
                }
            }
        }
        println!("\n{}", t.label());
        println!(
            "  {:<26} {:>10} {:>8} {:>8} {:>12} {:>9}",
            "variant", "ns/frame", "min", "max", "frames/s", "vs read/write"
        );
        let base = median(&mut ns[0].clone());
        for (vi, v) in VARIANTS.iter().enumerate() {
            let m = median(&mut ns[vi]);
            let min = ns[vi].iter().copied().fold(f64::INFINITY, f64::min);
            let max = ns[vi].iter().copied().fold(0.0, f64::max);
            println!(
                "  {:<26} {:>10.0} {:>8.0} {:>8.0} {:>12.0} {:>+8.1}%",
                v.label(),
                m,
                min,
                max,
                1e9 / m,
                (m / base - 1.0) * 100.0
            );
        }
        let _ = io::stdout().flush();
        Ok(())
    }

    /// Writes `total` frames from the write slots; returns the time and the frames written.
    fn measure_write(&mut self, v: Variant, total: usize) -> io::Result<(Duration, usize)> {
        let len = self.wlen;
        let mut ok = 0;
        let t0 = Instant::now();
        match v {
            Variant::Syscall => {
                for i in 0..total {
                    // SAFETY: the slot holds `len` initialized bytes and no request is in flight.
                    let f = unsafe { std::slice::from_raw_parts(self.wbuf.slot(i % SLOTS), len) };
                    if self.q.write(f)? == len {
                        ok += 1;
                    }
                }
            }
            Variant::Uring(batch) | Variant::UringFixed(batch) => {
                let fixed = matches!(v, Variant::UringFixed(_));
                let mut done = 0;
                while done < total {
                    let n = batch.min(total - done);
                    let ring = if fixed {
                        &mut self.fixed
                    } else {
                        &mut self.ring
                    };
                    {
                        let mut sq = ring.submission();
                        for i in 0..n {
                            let buf = self.wbuf.slot(i);
                            let e = if fixed {
                                opcode::WriteFixed::new(types::Fixed(0), buf, len as u32, 0).build()
                            } else {
                                opcode::Write::new(types::Fd(self.q.as_raw_fd()), buf, len as u32)
                                    .build()
                            };
                            // SAFETY: the slot is a leaked (never freed) buffer holding `len`
                            // bytes, and the batch is reaped before the slot is reused.
                            unsafe { sq.push(&e.user_data(i as u64)) }
                                .map_err(|_| io::Error::other("submission queue full"))?;
                        }
                    }
                    ok += complete(ring, n, |r| r == len as i32)?;
                    done += n;
                }
            }
        }
        Ok((t0.elapsed(), ok))
    }

    /// Reads `total` frames of `size` bytes, filling the TAP ring (untimed) as needed.
    fn measure_read(
        &mut self,
        v: Variant,
        size: usize,
        total: usize,
    ) -> io::Result<(Duration, usize)> {
        let payload = vec![0x5au8; size - 42];
        let want = VNET_HDR_LEN + size;
        let mut elapsed = Duration::ZERO;
        let mut got = 0;
        while got < total {
            self.drain_tap()?;
            let fill = FILL.min(total - got);
            for _ in 0..fill {
                self.source.send(&payload)?;
            }
            let t0 = Instant::now();
            let mut read = 0;
            match v {
                Variant::Syscall => {
                    while read < fill {
                        // SAFETY: the slot is SLOT_LEN bytes, no request is in flight.
                        let b = unsafe {
                            std::slice::from_raw_parts_mut(self.rbuf.slot(read % SLOTS), SLOT_LEN)
                        };
                        match self.q.read(b) {
                            Ok(n) if n == want => read += 1,
                            Ok(_) => self.strays += 1,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) => return Err(e),
                        }
                    }
                }
                Variant::Uring(batch) | Variant::UringFixed(batch) => {
                    let fixed = matches!(v, Variant::UringFixed(_));
                    let mut again = false;
                    while read < fill && !again {
                        let n = batch.min(fill - read);
                        let ring = if fixed {
                            &mut self.fixed
                        } else {
                            &mut self.ring
                        };
                        {
                            let mut sq = ring.submission();
                            for i in 0..n {
                                let buf = self.rbuf.slot(i);
                                let e = if fixed {
                                    opcode::ReadFixed::new(types::Fixed(0), buf, SLOT_LEN as u32, 1)
                                        .build()
                                } else {
                                    opcode::Read::new(
                                        types::Fd(self.q.as_raw_fd()),
                                        buf,
                                        SLOT_LEN as u32,
                                    )
                                    .build()
                                };
                                // SAFETY: the slot is a leaked (never freed) SLOT_LEN-byte
                                // buffer, and the batch is reaped before the slot is reused.
                                unsafe { sq.push(&e.user_data(i as u64)) }
                                    .map_err(|_| io::Error::other("submission queue full"))?;
                            }
                        }
                        let mut other = 0;
                        let ok = complete(ring, n, |r| {
                            if r == -libc::EAGAIN {
                                again = true;
                            } else if r >= 0 && r as usize != want {
                                other += 1;
                            }
                            r as usize == want
                        })?;
                        self.strays += other;
                        read += ok;
                    }
                }
            }
            elapsed += t0.elapsed();
            if read == 0 {
                break; // the kernel dropped everything: reported as "no frame moved"
            }
            got += read;
        }
        Ok((elapsed, got))
    }

    /// Empties the TAP queue (untimed) so each fill starts from nothing.
    fn drain_tap(&mut self) -> io::Result<()> {
        let b = vec![0u8; SLOT_LEN];
        let mut b = b;
        loop {
            match self.q.read(&mut b) {
                Ok(_) => self.strays += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    fn drain_sink(&self) {
        let mut b = [0u8; SLOT_LEN];
        while self.sink.recv(&mut b).is_ok() {}
    }
}

/// Submits what is queued, waits for `n` completions and counts those `ok` accepts. Returns
/// only once all `n` have completed, so the buffers they used are free again.
fn complete(ring: &mut IoUring, n: usize, mut ok: impl FnMut(i32) -> bool) -> io::Result<usize> {
    let mut seen = 0;
    let mut good = 0;
    let mut first = true;
    while seen < n {
        // Reads and writes on the non-blocking TAP complete inline, so the first enter only
        // submits (no IORING_ENTER_GETEVENTS); it waits only if something is still pending.
        let r = if first {
            ring.submit()
        } else {
            ring.submit_and_wait(n - seen)
        };
        first = false;
        match r {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // Requests may still be in flight; their buffers are leaked arenas, so nothing
                // dangles, but the run cannot go on.
                return Err(e);
            }
        }
        for cqe in ring.completion() {
            seen += 1;
            if ok(cqe.result()) {
                good += 1;
            }
        }
    }
    Ok(good)
}

/// virtio-net header (zero: no offload) + Ethernet + IPv4 + UDP, `size` bytes without the
/// header. `deliver`: to the TAP's own MAC and a bound port; else to a foreign MAC.
fn frame(size: usize, deliver: bool) -> Vec<u8> {
    let mut f = vec![0u8; VNET_HDR_LEN];
    f.extend_from_slice(if deliver { &TAP_MAC } else { &OTHER_MAC });
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    let ip_len = size - 14;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&PEER_IP.octets());
    ip[16..20].copy_from_slice(&TAP_IP.octets());
    let sum = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum::<u32>();
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    let udp_len = ip_len - 20;
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&SINK_PORT.to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]); // no UDP checksum (allowed on IPv4)
    f.resize(VNET_HDR_LEN + size, 0x5a);
    f
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Threads of this process named iou-wrk-* (io_uring's io-wq workers).
fn io_wq_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    std::fs::read_to_string(e.path().join("comm"))
                        .map(|c| c.starts_with("iou-wrk"))
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0)
}
