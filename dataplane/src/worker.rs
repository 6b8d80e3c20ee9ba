//! The per-core worker loop: wait for readiness, receive a batch, run it through the pipeline,
//! transmit.
//!
//! A worker owns one queue of every TAP, its own underlay receive socket and its own
//! source-port sockets, its buffers and its counters: nothing on the packet path is shared with
//! another worker except the read side of the tables (`fib`). The control side talks to a worker only
//! through its channel (new ports, removed ports, the underlay socket), waking it with a mio
//! `Waker`.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use controlplane::proto::PORT_TUNNEL;
use crossbeam_channel::{unbounded, Receiver, Sender, TryRecvError};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::buf::{BufPool, PacketBuf};
use crate::capture::CaptureTap;
use crate::counters::{DropReason, Event, WorkerCounters, MAX_PORTS};
use crate::fib::{FibReader, NodeIdx, PortNo, Tables};
use crate::io::tap::TapQueue;
use crate::io::udp::{self, SendMeta, SrcPorts};
use crate::offload::{self, Coalescer, Offer};
use crate::pipeline::{Action, Pipeline, PipelineConfig, Sink};
use crate::pmtu::PathMtus;
use crate::wire::vnet::{self, VnetHdr};

/// Frames handled per source before the worker looks at the next ready source.
pub const BATCH: usize = quinn_udp::BATCH_SIZE;

/// Longest a stopping worker spends forwarding what was already queued.
const DRAIN_LIMIT: Duration = Duration::from_millis(100);
const WAKER: Token = Token(0);
const UNDERLAY: Token = Token(1);
const TAP_BASE: usize = 16;

/// After a failed UDP GSO send, the worker sends one datagram per call for this long, then
/// tries GSO again (a transient failure must not cost GSO for good); the wait doubles while
/// GSO keeps failing, up to [`GSO_RETRY_MAX_MS`].
const GSO_RETRY_MS: u64 = 1000;
const GSO_RETRY_MAX_MS: u64 = 64_000;
/// Most path-MTU reads per worker after EMSGSIZE: one per this many milliseconds.
const PMTU_PROBE_MS: u64 = 100;

/// Settings of a worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub id: usize,
    pub vxlan_port: u16,
    pub pipeline: PipelineConfig,
    /// Never sleep in poll (burns a core, lowest latency).
    pub busy_poll: bool,
    /// Keep polling without sleeping for this long after the last work (microseconds, 0:
    /// sleep at once): lower latency for some CPU.
    pub spin_us: u32,
    /// Pin the thread to this CPU.
    pub pin: Option<usize>,
    /// Receive with UDP GRO.
    pub gro: bool,
    /// Send a zero outer UDP checksum (IPv4 underlay only).
    pub udp_zero_csum: bool,
}

/// A message from the control side.
pub enum Control {
    AddPort { no: PortNo, queue: TapQueue },
    DelPort { no: PortNo },
    Underlay { vtep: IpAddr, socket: UdpSocket },
    Stop,
}

/// The control side's handle on a worker.
pub struct WorkerHandle {
    tx: Sender<Control>,
    waker: Arc<Waker>,
    pub counters: Arc<WorkerCounters>,
    pub capture: Arc<CaptureTap>,
    join: Option<JoinHandle<()>>,
}

impl WorkerHandle {
    /// Sends a message and wakes the worker.
    pub fn send(&self, c: Control) {
        if self.tx.send(c).is_ok() {
            let _ = self.waker.wake();
        }
    }

    /// Stops the worker and waits for it.
    pub fn stop(&mut self) {
        self.send(Control::Stop);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

/// Starts a worker thread.
pub fn spawn(cfg: WorkerConfig, fib: FibReader) -> io::Result<WorkerHandle> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let (tx, rx) = unbounded();
    let counters = Arc::new(WorkerCounters::default());
    let capture = Arc::new(CaptureTap::default());
    let mut w = Worker {
        pipeline: Pipeline::new(cfg.pipeline.clone()),
        cfg,
        counters: counters.clone(),
        poll,
        rx,
        taps: (0..MAX_PORTS).map(|_| None).collect(),
        underlay: None,
        bufs: BufPool::new(BATCH, crate::buf::MAX_FRAME),
        ready: Vec::with_capacity(MAX_PORTS + 2),
        capture: capture.clone(),
        gro: Coalescer::default(),
        gso_out: vec![0u8; 65536 + 4096].into_boxed_slice(),
        gso_ok: true,
        gso_retry: GsoRetry::default(),
        batch: TxBatch::new(),
        stop: false,
    };
    let name = format!("vx-worker-{}", w.cfg.id);
    let join = std::thread::Builder::new()
        .name(name)
        .spawn(move || w.run(&fib))?;
    Ok(WorkerHandle {
        tx,
        waker,
        counters,
        capture,
        join: Some(join),
    })
}

struct Underlay {
    /// The VTEP address the socket is bound to.
    local: Option<IpAddr>,
    sock: UdpSocket,
    state: quinn_udp::UdpSocketState,
    src: SrcPorts,
    /// The learned path MTUs (the pipeline reads them; sends that fail with EMSGSIZE update
    /// them).
    pmtu: Arc<PathMtus>,
    /// When this worker last read a path MTU from the kernel (milliseconds).
    last_probe_ms: u64,
}

struct Worker {
    cfg: WorkerConfig,
    counters: Arc<WorkerCounters>,
    poll: Poll,
    rx: Receiver<Control>,
    taps: Vec<Option<TapQueue>>,
    underlay: Option<Underlay>,
    pipeline: Pipeline,
    bufs: BufPool,
    ready: Vec<Token>,
    capture: Arc<CaptureTap>,
    /// Merges TCP segments from the tunnel into super-frames for TAPs (offload on).
    gro: Coalescer,
    /// Segments of a super-frame on their way to one GSO send.
    gso_out: Box<[u8]>,
    /// UDP GSO works (turned off for [`GSO_RETRY_MS`] after a failure).
    gso_ok: bool,
    /// When to try GSO again after a failure.
    gso_retry: GsoRetry,
    /// Encapsulated frames waiting to leave together in one UDP GSO send.
    batch: TxBatch,
    stop: bool,
}

/// When a worker whose GSO send failed tries GSO again: [`GSO_RETRY_MS`] after the failure
/// is first seen, doubling while retries fail again soon, back to the start after GSO has
/// worked for [`GSO_RETRY_MAX_MS`].
#[derive(Debug, Default)]
struct GsoRetry {
    /// When to try again (milliseconds; 0: not scheduled).
    at: u64,
    /// The wait that was used last (0: none yet).
    delay: u64,
    /// When GSO was last turned back on.
    retried: u64,
}

impl GsoRetry {
    /// Called while GSO is off; `true` when it is time to turn it back on.
    fn poll(&mut self, now: u64) -> bool {
        if self.at == 0 {
            // A failure just turned GSO off.
            self.delay = if self.delay == 0 || now.saturating_sub(self.retried) > GSO_RETRY_MAX_MS {
                GSO_RETRY_MS
            } else {
                (self.delay * 2).min(GSO_RETRY_MAX_MS)
            };
            self.at = now + self.delay;
            false
        } else if now >= self.at {
            self.at = 0;
            self.retried = now;
            true
        } else {
            false
        }
    }
}

/// Outcome of servicing one source.
enum Drained {
    /// The source returned WouldBlock: wait for the next readiness event.
    Empty,
    /// The batch limit was reached: service it again after the others.
    More,
}

impl Worker {
    fn run(&mut self, fib: &FibReader) {
        if let Some(cpu) = self.cfg.pin {
            if let Err(e) = crate::io::sys::pin_to_cpu(cpu) {
                eprintln!(
                    "vxswitchd: worker {}: cannot pin to CPU {cpu}: {e}",
                    self.cfg.id
                );
            }
        }
        let mut events = Events::with_capacity(256);
        let spin = Duration::from_micros(self.cfg.spin_us as u64);
        // When the worker last had work: it polls without sleeping for `spin` after that.
        let mut last_work = Instant::now();
        while !self.stop {
            let timeout = if self.cfg.busy_poll || (!spin.is_zero() && last_work.elapsed() < spin) {
                Some(Duration::ZERO)
            } else {
                None
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    eprintln!("vxswitchd: worker {}: poll failed: {e}", self.cfg.id);
                    std::thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
            if events.is_empty() {
                if self.cfg.busy_poll {
                    // Give the CPU to anything else runnable (the pods, the other node's
                    // switch on a small machine) between polls.
                    std::thread::yield_now();
                }
                continue;
            }
            let t0 = Instant::now();
            last_work = t0;
            self.ready.clear();
            for ev in events.iter() {
                if ev.token() == WAKER {
                    self.control();
                } else {
                    self.ready.push(ev.token());
                }
            }
            self.service_ready(fib);
            self.counters.busy_ns.add(t0.elapsed().as_nanos() as u64);
            self.counters.loops.inc();
        }
        self.drain(fib);
    }

    /// On stop: forwards what the kernel has already queued on this worker's TAP queues and
    /// UDP socket, until every one is empty or [`DRAIN_LIMIT`] has passed (a pod that keeps
    /// sending never holds the stop up), so a shutdown loses nothing that reached the switch.
    fn drain(&mut self, fib: &FibReader) {
        let deadline = Instant::now() + DRAIN_LIMIT;
        self.ready.clear();
        if self.underlay.is_some() {
            self.ready.push(UNDERLAY);
        }
        for (no, q) in self.taps.iter().enumerate() {
            if q.is_some() {
                self.ready.push(Token(TAP_BASE + no));
            }
        }
        while !self.ready.is_empty() && Instant::now() < deadline {
            let Some(tables) = fib.load() else {
                return;
            };
            let mut i = 0;
            while i < self.ready.len() {
                self.pipeline.set_now_ms(crate::clock::now_ms());
                let token = self.ready[i];
                let r = if token == UNDERLAY {
                    self.service_underlay(&tables)
                } else {
                    self.service_tap(&tables, (token.0 - TAP_BASE) as PortNo)
                };
                flush_batch(
                    &mut self.batch,
                    self.underlay.as_mut(),
                    &self.counters,
                    &mut self.gso_ok,
                );
                match r {
                    Drained::Empty => {
                        self.ready.swap_remove(i);
                    }
                    Drained::More => i += 1,
                }
            }
        }
    }

    /// Applies control messages.
    fn control(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(Control::AddPort { no, queue }) => {
                    let Some(slot) = self.taps.get_mut(no as usize) else {
                        continue;
                    };
                    if let Some(old) = slot.take() {
                        let _ = self
                            .poll
                            .registry()
                            .deregister(&mut SourceFd(&old.as_raw_fd()));
                    }
                    let fd = queue.as_raw_fd();
                    let token = Token(TAP_BASE + no as usize);
                    match self.poll.registry().register(
                        &mut SourceFd(&fd),
                        token,
                        Interest::READABLE,
                    ) {
                        Ok(()) => {
                            *slot = Some(queue);
                            // Frames may already be queued: service the queue now.
                            self.ready.push(token);
                        }
                        Err(e) => eprintln!(
                            "vxswitchd: worker {}: cannot watch port {no}: {e}",
                            self.cfg.id
                        ),
                    }
                }
                Ok(Control::DelPort { no }) => {
                    if let Some(q) = self.taps.get_mut(no as usize).and_then(Option::take) {
                        let _ = self
                            .poll
                            .registry()
                            .deregister(&mut SourceFd(&q.as_raw_fd()));
                    }
                }
                Ok(Control::Underlay { vtep, socket }) => {
                    if let Some(old) = self.underlay.take() {
                        let _ = self
                            .poll
                            .registry()
                            .deregister(&mut SourceFd(&old.sock.as_raw_fd()));
                    }
                    match self.attach_underlay(vtep, socket) {
                        Ok(u) => {
                            self.underlay = Some(u);
                            self.ready.push(UNDERLAY);
                        }
                        Err(e) => {
                            eprintln!("vxswitchd: worker {}: underlay socket: {e}", self.cfg.id)
                        }
                    }
                }
                Ok(Control::Stop) | Err(TryRecvError::Disconnected) => {
                    self.stop = true;
                    return;
                }
                Err(TryRecvError::Empty) => return,
            }
        }
    }

    fn attach_underlay(&mut self, vtep: IpAddr, sock: UdpSocket) -> io::Result<Underlay> {
        let state = quinn_udp::UdpSocketState::new((&sock).into())?;
        // quinn-udp turns GRO on when it can; honour the offload setting.
        let _ = udp::set_gro(&sock, self.cfg.gro);
        // quinn-udp asks for IP_PMTUDISC_PROBE (DF, but the interface MTU rather than the
        // path's): the VTEP wants the path's, so oversize sends fail with EMSGSIZE.
        udp::set_dont_fragment(std::os::fd::AsFd::as_fd(&sock), vtep.is_ipv6())?;
        let fd = sock.as_raw_fd();
        self.poll
            .registry()
            .register(&mut SourceFd(&fd), UNDERLAY, Interest::READABLE)?;
        let p = &self.cfg.pipeline;
        let src = SrcPorts::new(
            vtep,
            p.src_port_min,
            p.src_port_max,
            p.src_ports,
            self.cfg.udp_zero_csum,
            self.counters.clone(),
        );
        Ok(Underlay {
            local: Some(vtep),
            sock,
            state,
            src,
            pmtu: p.pmtu.clone(),
            last_probe_ms: 0,
        })
    }

    /// Services every ready source until all are drained: pass after pass, a batch per
    /// source per pass. The tables are entered once per pass and left between passes, so a
    /// publish from the control side waits one pass at most however long a flood lasts, and
    /// control messages (ports added or removed) are taken between passes too.
    fn service_ready(&mut self, fib: &FibReader) {
        while !self.ready.is_empty() && !self.stop {
            let Some(tables) = fib.load() else {
                // The switch is shutting down: nothing to forward with.
                self.ready.clear();
                return;
            };
            self.retry_gso();
            let mut i = 0;
            while i < self.ready.len() {
                self.pipeline.set_now_ms(crate::clock::now_ms());
                let token = self.ready[i];
                let r = if token == UNDERLAY {
                    self.service_underlay(&tables)
                } else {
                    self.service_tap(&tables, (token.0 - TAP_BASE) as PortNo)
                };
                flush_batch(
                    &mut self.batch,
                    self.underlay.as_mut(),
                    &self.counters,
                    &mut self.gso_ok,
                );
                match r {
                    Drained::Empty => {
                        self.ready.swap_remove(i);
                    }
                    Drained::More => i += 1,
                }
            }
            drop(tables);
            if !self.ready.is_empty() {
                self.control();
            }
        }
    }

    /// Turns UDP GSO back on a while after a failure turned it off (counted).
    fn retry_gso(&mut self) {
        if self.gso_ok || !self.cfg.gro {
            return;
        }
        if self.gso_retry.poll(crate::clock::now_ms()) {
            self.gso_ok = true;
            self.counters.event(Event::GsoRetried);
        }
    }

    fn service_tap(&mut self, t: &Tables, no: PortNo) -> Drained {
        let Worker {
            cfg,
            counters,
            taps,
            underlay,
            pipeline,
            bufs,
            capture,
            gro,
            gso_out,
            gso_ok,
            batch,
            ..
        } = self;
        let mut tx = Tx {
            cfg,
            c: counters,
            taps,
            underlay: underlay.as_mut(),
            capture,
            gro,
            gso_out,
            gso_ok,
            batch,
            from_tunnel: false,
        };
        for _ in 0..BATCH {
            let Some(q) = tx.taps.get(no as usize).and_then(Option::as_ref) else {
                return Drained::Empty;
            };
            let buf = bufs.get_mut(0);
            let vnet = tx.cfg.gro;
            let area = if vnet {
                buf.receive_area_vnet()
            } else {
                buf.receive_area()
            };
            match q.read(area) {
                Ok(0) => return Drained::Empty,
                Ok(n) if vnet => {
                    if !buf.set_received_vnet(n) {
                        tx.c.drop(DropReason::Malformed);
                        continue;
                    }
                }
                Ok(n) => buf.set_received(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Drained::Empty,
                // EBADFD / EIO when the device went away: wait for the control side.
                Err(_) => return Drained::Empty,
            }
            tx.c.rx(no, buf.len());
            if tx.capture.wants(no) {
                tx.capture.record(tx.c, no, true, buf.frame(), None);
            }
            pipeline.from_port(t, tx.c, no, buf, &mut tx);
        }
        Drained::More
    }

    fn service_underlay(&mut self, t: &Tables) -> Drained {
        let Worker {
            cfg,
            counters,
            taps,
            underlay,
            pipeline,
            bufs,
            capture,
            gro,
            gso_out,
            gso_ok,
            batch,
            ..
        } = self;
        let Some(u) = underlay.as_mut() else {
            return Drained::Empty;
        };
        let mut meta = [quinn_udp::RecvMeta::default(); BATCH];
        let n = {
            let mut it = bufs.bufs_mut().iter_mut();
            let mut iovs: [IoSliceMut<'_>; BATCH] = std::array::from_fn(|_| match it.next() {
                Some(b) => IoSliceMut::new(b.receive_area()),
                None => IoSliceMut::new(&mut []),
            });
            match u.state.recv((&u.sock).into(), &mut iovs, &mut meta) {
                Ok(n) => n,
                Err(_) => return Drained::Empty,
            }
        };
        let local = u.local;
        let mut tx = Tx {
            cfg,
            c: counters,
            taps,
            underlay: underlay.as_mut(),
            capture,
            gro,
            gso_out,
            gso_ok,
            batch,
            from_tunnel: true,
        };
        for (i, m) in meta.iter().enumerate().take(n) {
            if m.len == 0 {
                // An empty datagram carries no VXLAN header: counted, never silently lost.
                tx.c.rx(PORT_TUNNEL, 0);
                tx.c.drop(DropReason::Malformed);
                continue;
            }
            let stride = if m.stride == 0 { m.len } else { m.stride };
            if stride < m.len {
                tx.c.event_n(Event::GroSegments, m.len.div_ceil(stride) as u64);
            }
            let mut off = 0;
            while off < m.len {
                let len = stride.min(m.len - off);
                let buf = bufs.get_mut(i);
                buf.set_received(m.len);
                if !buf.reframe(off as isize, len) {
                    break;
                }
                tx.c.rx(PORT_TUNNEL, len);
                if tx.capture.wants(PORT_TUNNEL) {
                    tx.capture
                        .record(tx.c, PORT_TUNNEL, true, buf.frame(), Some(m.addr));
                }
                let ecn = m.ecn.map_or(0, |e| e as u8);
                pipeline.from_tunnel_ecn(t, tx.c, m.addr, local, ecn, buf, &mut tx);
                off += len;
            }
        }
        tx.flush_gro();
        if n == BATCH {
            Drained::More
        } else {
            Drained::Empty
        }
    }
}

/// The worker's transmit side: carries out the pipeline's outputs.
struct Tx<'a> {
    cfg: &'a WorkerConfig,
    c: &'a WorkerCounters,
    taps: &'a [Option<TapQueue>],
    underlay: Option<&'a mut Underlay>,
    capture: &'a CaptureTap,
    gro: &'a mut Coalescer,
    gso_out: &'a mut [u8],
    gso_ok: &'a mut bool,
    batch: &'a mut TxBatch,
    /// Frames come from the tunnel (candidates for merging into TAP super-frames).
    from_tunnel: bool,
}

impl Tx<'_> {
    /// Writes the pending merged super-frame, if any.
    fn flush_gro(&mut self) {
        let Some((port, bytes, segs)) = self.gro.take() else {
            return;
        };
        let c = self.c;
        let Some(q) = self.taps.get(port as usize).and_then(Option::as_ref) else {
            c.drop(DropReason::PortDown);
            return;
        };
        match q.write(bytes) {
            Ok(_) => {
                c.tx(port, bytes.len() - vnet::HEADER_LEN);
                if segs > 1 {
                    c.event(Event::TapGsoWrites);
                    c.event_n(Event::TapGsoSegments, segs as u64);
                }
            }
            Err(_) => {
                c.tx_error(port);
                c.drop(DropReason::TxError);
            }
        }
    }

    /// Writes one frame to a TAP queue, with a virtio-net header when offloads are on.
    fn write_tap(&mut self, no: PortNo, q_hdr: VnetHdr, buf: &mut PacketBuf) {
        let c = self.c;
        let Some(q) = self.taps.get(no as usize).and_then(Option::as_ref) else {
            c.drop(DropReason::PortDown);
            return;
        };
        let len = buf.len();
        let r = if self.cfg.gro {
            match buf.prepend(vnet::HEADER_LEN) {
                Some(h) => {
                    q_hdr.emit(h);
                    let r = q.write(buf.frame());
                    buf.advance(vnet::HEADER_LEN);
                    r
                }
                None => {
                    let mut h = [0u8; vnet::HEADER_LEN];
                    q_hdr.emit(&mut h);
                    q.writev(&[io::IoSlice::new(&h), io::IoSlice::new(buf.frame())])
                }
            }
        } else {
            q.write(buf.frame())
        };
        match r {
            Ok(_) => c.tx(no, len),
            Err(_) => {
                c.tx_error(no);
                c.drop(DropReason::TxError);
            }
        }
    }
}

impl Sink for Tx<'_> {
    #[inline]
    fn emit(&mut self, t: &Tables, action: Action, buf: &mut PacketBuf) {
        let c = self.c;
        match action {
            Action::Drop(_) => {}
            Action::Output(no) => {
                if self.capture.wants(no) {
                    self.capture.record(c, no, false, buf.frame(), None);
                }
                if self.cfg.gro
                    && self.from_tunnel
                    && buf.vnet == VnetHdr::default()
                    && no != PORT_TUNNEL
                {
                    let mut offer = self.gro.offer(no, buf.frame());
                    if offer == Offer::Flush {
                        self.flush_gro();
                        offer = self.gro.offer(no, buf.frame());
                    }
                    match offer {
                        Offer::Taken => return,
                        Offer::Refused | Offer::Bad | Offer::Flush => {
                            if offer == Offer::Bad {
                                // Written alone and unmarked: the pod's kernel verifies it.
                                c.event(Event::GroCsumBad);
                            }
                            // Keep the order of whatever the port has pending.
                            if self.gro.port() == no {
                                self.flush_gro();
                            }
                        }
                    }
                }
                let hdr = buf.vnet;
                self.write_tap(no, hdr, buf);
            }
            Action::Encap {
                node,
                src_port,
                tos,
                ttl,
            } => {
                let (Some(u), Some(n)) = (self.underlay.as_deref_mut(), t.node(node)) else {
                    c.drop(DropReason::NotConfigured);
                    return;
                };
                let dst = SocketAddr::new(n.vtep, self.cfg.vxlan_port);
                let to = Dest {
                    dst,
                    node,
                    src_port,
                    tos,
                    ttl,
                };
                if self.capture.wants(PORT_TUNNEL) {
                    self.capture
                        .record(c, PORT_TUNNEL, false, buf.frame(), Some(dst));
                }
                let super_frame = buf.vnet.is_tcp_gso() && buf.vnet.gso_size > 0;
                // Completed in place and marked complete: later copies (a flood's next node,
                // a flow's next output) carry this checksum as it is.
                if offload::complete_partial(buf, VXLAN_HDR) {
                    c.event(Event::ChecksumCompleted);
                }
                // Frames with offloads on join the pending GSO batch when they can; anything
                // else first sends what is pending, so a flow's frames keep their order.
                if self.cfg.gro && *self.gso_ok && !super_frame {
                    if self.batch.add(to, buf.frame()) {
                        return;
                    }
                    flush_batch(self.batch, Some(&mut *u), c, self.gso_ok);
                    if *self.gso_ok && self.batch.add(to, buf.frame()) {
                        return;
                    }
                } else {
                    flush_batch(self.batch, Some(&mut *u), c, self.gso_ok);
                }
                let sock = match u.src.get(src_port) {
                    Some(s) => s,
                    None => {
                        c.event(Event::SrcPortFallback);
                        &u.sock
                    }
                };
                if super_frame {
                    let failed = send_segmented(c, sock, to, buf, self.gso_out, self.gso_ok);
                    if failed {
                        learn_path_mtu(c, u, to);
                    }
                    return;
                }
                let meta = to.meta(None);
                match udp::send_meta(sock, buf.frame(), dst, meta) {
                    Ok(_) => {
                        c.tx(PORT_TUNNEL, buf.len());
                        c.event(Event::Encapsulated);
                    }
                    Err(e) => {
                        if send_failed(c, &e) {
                            learn_path_mtu(c, u, to);
                        }
                    }
                }
            }
        }
    }
}

const VXLAN_HDR: usize = 8;

/// Most payload one UDP send carries (64 KiB minus the IPv4 and UDP headers).
const MAX_UDP_PAYLOAD: usize = 65_507;
/// Most segments per UDP GSO send (the kernel's UDP_MAX_SEGMENTS).
const MAX_GSO_SEGMENTS: usize = 64;

/// Encapsulated frames bound for one VTEP from one source port, back to back, all of one
/// size but the last (which may be shorter): what one UDP GSO send carries. A worker fills it
/// while it drains a TAP queue and sends it when a frame does not fit, when another
/// destination comes, and after each batch — one system call for up to 64 small frames.
struct TxBatch {
    bytes: Box<[u8]>,
    len: usize,
    seg: usize,
    count: usize,
    /// Where the frames go and how (all of a batch leave with one outer TOS and TTL).
    to: Option<Dest>,
    /// A shorter frame ended the batch.
    closed: bool,
}

impl TxBatch {
    fn new() -> TxBatch {
        TxBatch {
            bytes: vec![0u8; MAX_UDP_PAYLOAD].into_boxed_slice(),
            len: 0,
            seg: 0,
            count: 0,
            to: None,
            closed: false,
        }
    }

    /// Appends `frame` (a VXLAN header and the inner frame) if it can leave in the same send
    /// as what is pending; `false` when it cannot.
    fn add(&mut self, to: Dest, frame: &[u8]) -> bool {
        let n = frame.len();
        if n == 0 || n > self.bytes.len() - self.len {
            return false;
        }
        if self.count == 0 {
            self.to = Some(to);
            self.seg = n;
            self.closed = false;
        } else if self.closed
            || self.count == MAX_GSO_SEGMENTS
            || self.to != Some(to)
            || n > self.seg
        {
            return false;
        }
        self.bytes[self.len..self.len + n].copy_from_slice(frame);
        self.len += n;
        self.count += 1;
        self.closed = n < self.seg;
        true
    }

    fn clear(&mut self) {
        self.len = 0;
        self.count = 0;
        self.to = None;
    }
}

/// Where an encapsulated frame goes and how: the VTEP (address and node index), the outer
/// source port, TOS and TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dest {
    dst: SocketAddr,
    node: NodeIdx,
    src_port: u16,
    tos: u8,
    ttl: u8,
}

impl Dest {
    fn meta(self, segment: Option<u16>) -> SendMeta {
        SendMeta {
            tos: self.tos,
            ttl: self.ttl,
            segment,
        }
    }
}

/// Counts a failed underlay send (the frame is dropped); `true` when it failed for being
/// larger than the path MTU (EMSGSIZE: with DF set nothing is fragmented).
fn send_failed(c: &WorkerCounters, e: &io::Error) -> bool {
    c.tx_error(PORT_TUNNEL);
    if e.raw_os_error() == Some(libc::EMSGSIZE) {
        c.event(Event::UnderlayMsgSize);
        c.drop(DropReason::Mtu);
        true
    } else {
        c.drop(DropReason::TxError);
        false
    }
}

/// After an EMSGSIZE toward `to`: reads the path MTU to that VTEP from the kernel (at most
/// once per [`PMTU_PROBE_MS`] per worker) and records it, so the pipeline answers the pods
/// with ICMP frag-needed from the next packet on.
fn learn_path_mtu(c: &WorkerCounters, u: &mut Underlay, to: Dest) {
    let now = crate::clock::now_ms();
    if u.last_probe_ms != 0 && now < u.last_probe_ms + PMTU_PROBE_MS {
        return;
    }
    u.last_probe_ms = now.max(1);
    if let Ok(mtu) = udp::path_mtu(u.local, to.dst) {
        u.pmtu.set(to.node, to.dst.ip(), mtu);
        c.event(Event::PathMtuLearned);
    }
}

/// Sends what the batch holds: one UDP GSO send, or (one frame, or GSO refused) one datagram
/// per call.
fn flush_batch(b: &mut TxBatch, u: Option<&mut Underlay>, c: &WorkerCounters, gso_ok: &mut bool) {
    if b.count == 0 {
        return;
    }
    let (Some(to), Some(u)) = (b.to, u) else {
        // The underlay went away with frames pending.
        for _ in 0..b.count {
            c.drop(DropReason::NotConfigured);
        }
        b.clear();
        return;
    };
    let dst = to.dst;
    let sock = match u.src.get(to.src_port) {
        Some(s) => s,
        None => {
            c.event(Event::SrcPortFallback);
            &u.sock
        }
    };
    let bytes = &b.bytes[..b.len];
    let mut sent = false;
    let mut too_big = false;
    if *gso_ok && b.count > 1 {
        match udp::send_meta(sock, bytes, dst, to.meta(Some(b.seg as u16))) {
            Ok(_) => {
                c.event(Event::GsoSends);
                c.event_n(Event::GsoBatched, b.count as u64);
                sent = true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => {
                *gso_ok = false;
                c.event(Event::GsoFallback);
            }
        }
    }
    if sent {
        for seg in bytes.chunks(b.seg) {
            c.tx(PORT_TUNNEL, seg.len());
        }
        c.event_n(Event::Encapsulated, b.count as u64);
    } else {
        for seg in bytes.chunks(b.seg) {
            match udp::send_meta(sock, seg, dst, to.meta(None)) {
                Ok(_) => {
                    c.tx(PORT_TUNNEL, seg.len());
                    c.event(Event::Encapsulated);
                }
                Err(e) => too_big |= send_failed(c, &e),
            }
        }
    }
    b.clear();
    if too_big {
        learn_path_mtu(c, u, to);
    }
}

/// A TCP super-frame from a TAP, encapsulated: cut into MSS-sized segments with complete
/// checksums, each behind a copy of the VXLAN header, and sent in as few UDP GSO sends as the
/// limits allow (64 segments, 65,507 bytes of payload per send). Returns `true` when a send
/// failed with EMSGSIZE (segments larger than the path MTU).
fn send_segmented(
    c: &WorkerCounters,
    sock: &UdpSocket,
    to: Dest,
    buf: &PacketBuf,
    out: &mut [u8],
    gso_ok: &mut bool,
) -> bool {
    let dst = to.dst;
    let mut too_big = false;
    let f = buf.frame();
    if f.len() < VXLAN_HDR {
        c.drop(DropReason::Malformed);
        return false;
    }
    let (prefix, frame) = f.split_at(VXLAN_HDR);
    let mss = buf.vnet.gso_size as usize;
    let Some(lay) = offload::tcp_layout(frame) else {
        c.drop(DropReason::Malformed);
        return false;
    };
    let unit = VXLAN_HDR + lay.hdr_len + mss;
    let per_send = (65_507 / unit).clamp(1, 64);
    let total = offload::segment_count(frame.len(), lay.hdr_len, mss);
    c.event(Event::TsoSuperframes);
    let mut k = 0;
    while k < total {
        let Some(w) = offload::segment_tcp(frame, mss, prefix, k, per_send, out) else {
            c.drop(DropReason::Malformed);
            return too_big;
        };
        let n = per_send.min(total - k);
        let mut sent = false;
        if *gso_ok && n > 1 {
            match udp::send_meta(sock, &out[..w], dst, to.meta(Some(unit as u16))) {
                Ok(_) => {
                    c.event(Event::GsoSends);
                    sent = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    // No GSO here (or not with this socket's settings, or segments larger
                    // than the path MTU): one by one until the worker tries GSO again.
                    *gso_ok = false;
                    c.event(Event::GsoFallback);
                }
            }
        }
        if sent {
            for i in 0..n {
                c.tx(PORT_TUNNEL, unit.min(w - i * unit));
            }
        } else {
            for i in 0..n {
                let seg = &out[i * unit..((i + 1) * unit).min(w)];
                match udp::send_meta(sock, seg, dst, to.meta(None)) {
                    Ok(_) => c.tx(PORT_TUNNEL, seg.len()),
                    Err(e) => too_big |= send_failed(c, &e),
                }
            }
        }
        c.event_n(Event::Encapsulated, n as u64);
        k += n;
    }
    too_big
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dst(last: u8, src_port: u16) -> Dest {
        Dest {
            dst: SocketAddr::from(([198, 51, 100, last], 4789)),
            node: last as NodeIdx,
            src_port,
            tos: 0,
            ttl: 64,
        }
    }

    #[test]
    fn a_batch_takes_equal_frames_for_one_destination_and_one_shorter_last() {
        let mut b = TxBatch::new();
        assert!(b.add(dst(2, 50000), &[1; 100]));
        assert!(b.add(dst(2, 50000), &[2; 100]));
        assert!(!b.add(dst(3, 50000), &[3; 100]), "another VTEP");
        assert!(!b.add(dst(2, 50001), &[3; 100]), "another source port");
        assert!(
            !b.add(dst(2, 50000), &[3; 101]),
            "longer than the segment size"
        );
        assert!(
            b.add(dst(2, 50000), &[4; 60]),
            "a shorter frame ends the batch"
        );
        assert!(
            !b.add(dst(2, 50000), &[5; 60]),
            "nothing after a shorter frame"
        );
        assert_eq!((b.count, b.seg, b.len), (3, 100, 260));
        // Segments as the kernel cuts them: every `seg` bytes.
        let segs: Vec<&[u8]> = b.bytes[..b.len].chunks(b.seg).collect();
        assert_eq!(segs.len(), 3);
        assert!(segs[0].iter().all(|&x| x == 1) && segs[1].iter().all(|&x| x == 2));
        assert_eq!(segs[2], &[4; 60][..]);
        b.clear();
        assert!(
            b.add(dst(3, 50001), &[6; 80]),
            "an empty batch takes anything"
        );
    }

    #[test]
    fn gso_is_tried_again_after_a_failure_later_each_time_it_fails_again() {
        let mut r = GsoRetry::default();
        // GSO failed at t=10 s: off for a second.
        assert!(!r.poll(10_000));
        assert!(!r.poll(10_999));
        assert!(r.poll(11_000));
        // It fails again at once: two seconds, then four.
        assert!(!r.poll(11_001));
        assert!(!r.poll(13_000));
        assert!(r.poll(13_001));
        assert!(!r.poll(13_002));
        assert!(r.poll(17_002));
        // It worked for longer than the longest wait: back to one second.
        assert!(!r.poll(100_000));
        assert!(r.poll(101_000));
    }

    #[test]
    fn a_batch_leaves_with_one_outer_tos_and_ttl() {
        let mut b = TxBatch::new();
        assert!(b.add(dst(2, 50000), &[1; 100]));
        let ect0 = Dest {
            tos: 0x02,
            ..dst(2, 50000)
        };
        assert!(!b.add(ect0, &[2; 100]), "another outer TOS (ECN) ends it");
        let ttl = Dest {
            ttl: 63,
            ..dst(2, 50000)
        };
        assert!(!b.add(ttl, &[2; 100]), "another outer TTL ends it");
        assert!(b.add(dst(2, 50000), &[3; 100]));
        assert_eq!(b.count, 2);
    }

    #[test]
    fn a_batch_stops_at_64_segments_and_at_the_udp_size_limit() {
        let mut b = TxBatch::new();
        for _ in 0..MAX_GSO_SEGMENTS {
            assert!(b.add(dst(2, 50000), &[0; 64]));
        }
        assert!(!b.add(dst(2, 50000), &[0; 64]));
        let mut b = TxBatch::new();
        let mut n = 0;
        while b.add(dst(2, 50000), &[0; 9000]) {
            n += 1;
        }
        assert_eq!(n, MAX_UDP_PAYLOAD / 9000);
        assert!(
            !TxBatch::new().add(dst(2, 50000), &[]),
            "empty frames are not sent"
        );
    }
}
