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

mod rx;
mod tnl;
mod tx;

use tx::{flush_batch, TxBatch};

/// Frames handled per source before the worker looks at the next ready source.
pub const BATCH: usize = quinn_udp::BATCH_SIZE;

/// Longest a stopping worker spends forwarding what was already queued.
const DRAIN_LIMIT: Duration = Duration::from_millis(100);
const WAKER: Token = Token(0);
const UNDERLAY: Token = Token(1);
/// The worker's queue of the underlay's TAP (UDP-tunnel GSO).
const TNL: Token = Token(2);
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
    /// Never sleep in poll (burns a core, lowest latency); the same as [`PollMode::Busy`].
    pub busy_poll: bool,
    /// In [`PollMode::Sleep`]: keep polling without sleeping for this long after the last
    /// work (microseconds, 0: sleep at once): lower latency for some CPU.
    pub spin_us: u32,
    /// How the worker waits for work.
    pub polling: Polling,
    /// Pin the thread to this CPU.
    pub pin: Option<usize>,
    /// Receive with UDP GRO.
    pub gro: bool,
    /// Send a zero outer UDP checksum (IPv4 underlay only).
    pub udp_zero_csum: bool,
}

/// How a worker waits for work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollMode {
    /// Sleep in epoll as soon as a pass finds nothing (after [`WorkerConfig::spin_us`] when
    /// that is set): no CPU between packets, a wake-up (a context switch) per burst.
    Sleep,
    /// After work, keep polling without sleeping for a budget that follows the traffic
    /// (see [`Budget`]), then sleep: the wake-ups of a flow in full swing are saved, an idle
    /// worker sleeps.
    Adaptive,
    /// Never sleep: poll, yielding between empty polls (a core kept busy, shared with
    /// whatever else is runnable).
    Busy,
}

/// The polling settings of a worker. The default sleeps at once: on a machine whose cores the
/// pods and other switches share, every microsecond a worker polls is charged to its fair
/// share, and its wake-ups then wait longer behind the other tasks (measured: ping and
/// request/response latency grew with any polling there; see results/2026-12-08-issue13-poll).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Polling {
    pub mode: PollMode,
    /// In [`PollMode::Adaptive`]: the longest the worker keeps polling after the last work
    /// (microseconds).
    pub budget_us: u32,
    /// In [`PollMode::Adaptive`]: give the CPU to anything else runnable between empty polls
    /// (`sched_yield`), and stop polling (sleep until the next work) once a yield let another
    /// task run.
    pub yield_between: bool,
    /// The worker threads' nice value (`None`: inherited). Below the pods' (0), a worker
    /// that wakes runs sooner on cores the pods keep busy, as the kernel's own path runs
    /// ahead of every task.
    pub nice: Option<i32>,
}

/// A `sched_yield` that took longer than this ran another task: the CPU is wanted.
const YIELD_CONTENDED: Duration = Duration::from_micros(10);

/// The adaptive mode's default budget cap (microseconds).
pub const DEFAULT_POLL_BUDGET_US: u32 = 200;

impl Default for Polling {
    fn default() -> Self {
        Polling {
            mode: PollMode::Adaptive,
            budget_us: DEFAULT_POLL_BUDGET_US,
            yield_between: true,
            nice: None,
        }
    }
}

/// How long a worker in [`PollMode::Adaptive`] keeps polling after its last work.
///
/// The budget follows the gaps between bursts of work: when work turns up within the cap,
/// whether a poll found it (a wake-up saved) or the worker had gone to sleep too early (a
/// wake-up a longer budget would have saved), the budget grows to twice that gap; when the
/// next work comes later than the cap (polling could not have caught it), the budget shrinks
/// by a quarter. A flow in full swing keeps its worker polling; the request/response pattern
/// of a ping or an RPC keeps the budget just above its turnaround; a worker whose traffic
/// stops spends at most one budget polling and then sleeps until the next packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    cur_ns: u64,
    cap_ns: u64,
}

impl Budget {
    /// A budget capped at `cap_us` microseconds, starting at a quarter of it.
    pub fn new(cap_us: u32) -> Budget {
        let cap_ns = u64::from(cap_us) * 1000;
        Budget {
            cur_ns: cap_ns / 4,
            cap_ns,
        }
    }

    /// How long to keep polling after the last work.
    pub fn current(&self) -> Duration {
        Duration::from_nanos(self.cur_ns)
    }

    /// Work turned up `gap` after the last work; `polled`: a poll without sleeping found it
    /// (otherwise the worker had gone to sleep).
    pub fn work(&mut self, gap: Duration, polled: bool) {
        let gap = u64::try_from(gap.as_nanos()).unwrap_or(u64::MAX);
        if polled || gap <= self.cap_ns {
            self.cur_ns = self.cur_ns.max(gap.saturating_mul(2)).min(self.cap_ns);
        } else {
            self.cur_ns -= self.cur_ns / 4;
        }
    }
}

/// A message from the control side.
pub enum Control {
    AddPort {
        no: PortNo,
        queue: TapQueue,
    },
    DelPort {
        no: PortNo,
    },
    Underlay {
        vtep: IpAddr,
        socket: UdpSocket,
    },
    /// The worker's queue of the underlay's TAP (after `Underlay`), or `None`: the switch
    /// asked for it and could not set it up (counted).
    Tunnel {
        port: Option<crate::io::tnl::TunnelPort>,
    },
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
    /// The worker's queue of the underlay's TAP, when super-frames go that way.
    tnl: Option<crate::io::tnl::TunnelPort>,
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
        if let Some(nice) = self.cfg.polling.nice {
            if let Err(e) = crate::io::sys::set_thread_nice(nice) {
                eprintln!(
                    "vxswitchd: worker {}: cannot set nice {nice}: {e}",
                    self.cfg.id
                );
            }
        }
        let mut events = Events::with_capacity(256);
        let polling = self.cfg.polling;
        let mode = if self.cfg.busy_poll {
            PollMode::Busy
        } else {
            polling.mode
        };
        let spin = Duration::from_micros(self.cfg.spin_us as u64);
        let mut budget = Budget::new(polling.budget_us);
        // When the worker last finished a pass with work.
        let mut last_work = Instant::now();
        // Adaptive: a yield between polls gave the CPU to another task, so polling takes CPU
        // that something else wants: sleep until the next work.
        let mut contended = false;
        while !self.stop {
            let polled = match mode {
                PollMode::Busy => true,
                PollMode::Sleep => !spin.is_zero() && last_work.elapsed() < spin,
                PollMode::Adaptive => !contended && last_work.elapsed() < budget.current(),
            };
            let timeout = if polled {
                Some(Duration::ZERO)
            } else {
                self.counters.event(Event::PollSleeps);
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
                if polled {
                    self.counters.event(Event::PollEmpty);
                    if mode == PollMode::Busy {
                        // Give the CPU to anything else runnable (the pods, the other node's
                        // switch on a small machine) between polls.
                        std::thread::yield_now();
                    } else if mode == PollMode::Adaptive && polling.yield_between {
                        // The same, and when another task did run (the yield took longer
                        // than a bare system call), stop polling and sleep.
                        let y = Instant::now();
                        std::thread::yield_now();
                        if y.elapsed() > YIELD_CONTENDED {
                            contended = true;
                            self.counters.event(Event::PollYielded);
                        }
                    }
                }
                continue;
            }
            let t0 = Instant::now();
            if polled {
                self.counters.event(Event::PollHits);
            }
            if mode == PollMode::Adaptive {
                budget.work(t0.saturating_duration_since(last_work), polled);
                contended = false;
            }
            self.ready.clear();
            for ev in events.iter() {
                if ev.token() == WAKER {
                    self.control();
                } else {
                    self.ready.push(ev.token());
                }
            }
            self.service_ready(fib);
            last_work = Instant::now();
            self.counters
                .busy_ns
                .add(last_work.saturating_duration_since(t0).as_nanos() as u64);
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
        if let Some(u) = &self.underlay {
            self.ready.push(UNDERLAY);
            if u.tnl.is_some() {
                self.ready.push(TNL);
            }
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
            self.pass(&tables);
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
                        if let Some(t) = &old.tnl {
                            let _ = self
                                .poll
                                .registry()
                                .deregister(&mut SourceFd(&t.queue.as_raw_fd()));
                        }
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
                Ok(Control::Tunnel { port }) => self.attach_tunnel(port),
                Ok(Control::Stop) | Err(TryRecvError::Disconnected) => {
                    self.stop = true;
                    return;
                }
                Err(TryRecvError::Empty) => return,
            }
        }
    }

    /// Takes (or replaces) the worker's queue of the underlay's TAP.
    fn attach_tunnel(&mut self, port: Option<crate::io::tnl::TunnelPort>) {
        let Some(u) = self.underlay.as_mut() else {
            return;
        };
        if let Some(old) = u.tnl.take() {
            let _ = self
                .poll
                .registry()
                .deregister(&mut SourceFd(&old.queue.as_raw_fd()));
        }
        let Some(port) = port else {
            self.counters.event(Event::TnlUnavailable);
            return;
        };
        let fd = port.queue.as_raw_fd();
        match self
            .poll
            .registry()
            .register(&mut SourceFd(&fd), TNL, Interest::READABLE)
        {
            Ok(()) => {
                u.tnl = Some(port);
                self.ready.push(TNL);
            }
            Err(e) => {
                self.counters.event(Event::TnlUnavailable);
                eprintln!(
                    "vxswitchd: worker {}: cannot watch the underlay's TAP: {e}",
                    self.cfg.id
                );
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
            tnl: None,
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
            self.pass(&tables);
            drop(tables);
            if !self.ready.is_empty() {
                self.control();
            }
        }
    }

    /// One pass over the ready sources: a batch from each, what it left pending for the
    /// underlay sent; a source found empty leaves the ready list.
    fn pass(&mut self, tables: &Tables) {
        let mut i = 0;
        while i < self.ready.len() {
            self.pipeline.set_now_ms(crate::clock::now_ms());
            let token = self.ready[i];
            let r = if token == UNDERLAY {
                self.service_underlay(tables)
            } else if token == TNL {
                self.service_tnl(tables)
            } else {
                self.service_tap(tables, (token.0 - TAP_BASE) as PortNo)
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::Counter;

    const US: Duration = Duration::from_micros(1);

    #[test]
    fn the_budget_grows_to_twice_a_gap_within_the_cap() {
        let mut b = Budget::new(200);
        assert_eq!(b.current(), 50 * US);
        // Work 80 µs after the last: a longer poll would have saved that wake-up.
        b.work(80 * US, false);
        assert_eq!(b.current(), 160 * US);
        // Found by polling: kept, never above the cap.
        b.work(150 * US, true);
        assert_eq!(b.current(), 200 * US);
        b.work(10 * US, true);
        assert_eq!(b.current(), 200 * US);
    }

    #[test]
    fn the_budget_shrinks_when_the_next_work_is_beyond_the_cap() {
        let mut b = Budget::new(200);
        b.work(100 * US, false);
        assert_eq!(b.current(), 200 * US);
        b.work(Duration::from_millis(10), false);
        assert_eq!(b.current(), 150 * US);
        for _ in 0..100 {
            b.work(Duration::from_secs(1), false);
        }
        assert!(b.current() < US, "{:?}", b.current());
        // Traffic again: back at once.
        b.work(30 * US, false);
        assert_eq!(b.current(), 60 * US);
    }

    #[test]
    fn a_ping_pattern_keeps_its_turnaround_covered() {
        // A request, its reply 120 µs later, the next request 10 ms after that.
        let mut b = Budget::new(200);
        for _ in 0..50 {
            b.work(Duration::from_millis(10), false);
            let polled = b.current() >= 120 * US;
            b.work(120 * US, polled);
        }
        // The shrink after the long gap still leaves the turnaround covered.
        b.work(Duration::from_millis(10), false);
        assert!(b.current() >= 120 * US, "{:?}", b.current());
    }

    /// Polls without sleeping that found nothing, over a window of `ms`.
    fn empty_polls_in(c: &WorkerCounters, ms: u64) -> u64 {
        let before = c.events[Event::PollEmpty as usize].get();
        std::thread::sleep(Duration::from_millis(ms));
        c.events[Event::PollEmpty as usize].get() - before
    }

    fn wait_until(mut f: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// A worker on an empty table with an underlay socket on the loopback, sent a few
    /// datagrams (work: each is read and dropped).
    fn worker_with_work(mode: PollMode) -> (WorkerHandle, crate::fib::FibWriter) {
        let (fib, readers) = crate::fib::new();
        let cfg = WorkerConfig {
            id: 0,
            vxlan_port: 4789,
            pipeline: PipelineConfig::default(),
            busy_poll: false,
            spin_us: 0,
            polling: Polling {
                mode,
                budget_us: 1000,
                yield_between: true,
                nice: None,
            },
            pin: None,
            gro: false,
            udp_zero_csum: false,
        };
        let w = spawn(cfg, readers.reader()).expect("a worker");
        let sock = UdpSocket::bind("127.0.0.1:0").expect("a loopback socket");
        let to = sock.local_addr().expect("its address");
        w.send(Control::Underlay {
            vtep: to.ip(),
            socket: sock,
        });
        let tx = UdpSocket::bind("127.0.0.1:0").expect("a sender");
        for _ in 0..3 {
            tx.send_to(b"not vxlan", to).expect("send");
            assert!(
                wait_until(|| w.counters.drops.iter().map(Counter::get).sum::<u64>() > 0),
                "the datagram is read and dropped"
            );
        }
        assert!(w.counters.loops.get() > 0);
        (w, fib)
    }

    #[test]
    fn an_idle_adaptive_worker_sleeps() {
        let (mut w, _fib) = worker_with_work(PollMode::Adaptive);
        assert!(
            wait_until(|| empty_polls_in(&w.counters, 50) == 0),
            "the worker stops polling once idle"
        );
        let loops = w.counters.loops.get();
        let sleeps = w.counters.events[Event::PollSleeps as usize].get();
        assert_eq!(empty_polls_in(&w.counters, 100), 0, "still asleep");
        assert_eq!(w.counters.loops.get(), loops, "no pass without work");
        assert_eq!(
            w.counters.events[Event::PollSleeps as usize].get(),
            sleeps,
            "no wake-up without work"
        );
        w.stop();
    }

    #[test]
    fn a_busy_worker_keeps_polling_while_idle() {
        let (mut w, _fib) = worker_with_work(PollMode::Busy);
        assert!(empty_polls_in(&w.counters, 50) > 0);
        assert_eq!(w.counters.events[Event::PollSleeps as usize].get(), 0);
        w.stop();
    }
}
