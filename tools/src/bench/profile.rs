//! `vxbench profile`: where the CPU goes per 64 KB of TCP payload. For every round and every
//! system in turn, a two-node lab (one pod per node) carries single-stream iperf3 TCP; in the
//! middle of the transfer, for a window of the run (`-t` less a second at each end), we take
//!
//! - `perf record -a -g -F 999 -e cpu-clock` (software clock sampling: a VM has no PMU),
//! - `perf stat -a -e context-switches,raw_syscalls:sys_enter` (machine-wide counts),
//! - the machine's busy time from /proc/stat (user + nice + system + irq + softirq + steal
//!   excluded: total minus idle, iowait and steal), and its context switches (`ctxt`),
//!
//! and iperf3's JSON gives the bytes moved. Everything is then expressed per 64 KB of TCP
//! payload: throughput, busy core-µs (both nodes and their pods share the machine's CPUs),
//! context switches, system calls, and the busy time split by call chain into categories
//! ([`classify`]): the samples' shares of the non-idle samples times the busy time.
//!
//! The machine may run other work; samples of processes outside the lab (found by network
//! namespace when the window opens) are their own category, unless their call chain shows
//! softirq work (the network stack often runs on whichever task it interrupted).
//!
//! Output: profile.md (the table, medians over the rounds), profile.json (every run and the
//! medians), chart.svg (a stacked bar per system), stacks/ROUND-SYSTEM.folded.gz (the call
//! chains folded, `comm;root;...;leaf count`, for flame graphs).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use super::measure::{self, Ctx, Metrics};
use super::proc::{self, Background};
use super::report::fmt_num;
use super::systems::{self, System};
use super::{stats, svg, sys, BenchError};
use crate::lab::{self, Kind, Lab};

/// Bytes of TCP payload the figures are normalised to.
pub const UNIT: f64 = 65_536.0;
const IPERF_PORT: u16 = 5201;
/// Sampling frequency of perf record.
pub const FREQUENCY: u32 = 999;

/// What to profile.
#[derive(Debug, Clone)]
pub struct ProfileOptions {
    pub systems: Vec<System>,
    pub rounds: usize,
    /// iperf3 seconds; the window is this less [`EDGE`] at each end.
    pub duration: Duration,
    pub tso: bool,
    pub underlay_offload: bool,
    pub workers: Option<usize>,
    pub switch_args: Vec<String>,
    pub port: u16,
    pub out: PathBuf,
    pub lab_prefix: String,
    pub command: String,
}

/// Left out of the window at the start (slow start, ARP) and the end of the transfer.
pub const EDGE: Duration = Duration::from_secs(1);

/// The categories of CPU time, in table order: key, label. Sub-categories are `key:sub`.
pub const CATEGORIES: &[(&str, &str)] = &[
    ("copy", "copies to/from user, memcpy"),
    ("copy:tap_read", "TAP read (switch reads a pod's frame)"),
    (
        "copy:tap_write",
        "TAP write (switch writes a frame to a pod)",
    ),
    ("copy:udp_send", "UDP send"),
    ("copy:udp_recv", "UDP receive"),
    ("copy:tcp_send", "TCP send (pods)"),
    ("copy:tcp_recv", "TCP receive (pods)"),
    ("copy:user", "memcpy in userspace"),
    ("copy:other", "elsewhere in the kernel"),
    ("csum", "checksums"),
    ("csum:user", "in userspace (vxswitchd)"),
    ("csum:kernel", "in the kernel"),
    ("user", "userspace packet work (vxswitchd)"),
    ("user:offload", "segmenting and merging (offload)"),
    ("user:pipeline", "pipeline: flows, routes, rewrite"),
    ("user:libc", "libc (wrappers, memcmp)"),
    ("user:other", "worker loop, I/O, other"),
    ("syscall", "syscall entry/exit"),
    ("sched", "wake-ups and scheduling"),
    ("alloc", "skb and page allocation"),
    ("tun", "tun driver"),
    ("net", "UDP/IP stack, veth, GRO/GSO"),
    ("overlay", "kernel vxlan and bridge"),
    ("tcp", "TCP stack"),
    ("other", "other"),
    ("outside", "outside the lab (other processes)"),
];

/// The top-level categories (no `:`), in table order.
pub fn top_categories() -> impl Iterator<Item = (&'static str, &'static str)> {
    CATEGORIES.iter().copied().filter(|(k, _)| !k.contains(':'))
}

/// One frame of a call chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub sym: String,
    /// `[kernel.kallsyms]`, a module `[tun]`, a path, or `[unknown]`.
    pub dso: String,
}

impl Frame {
    fn kernel(&self) -> bool {
        self.dso.starts_with('[') && self.dso != "[unknown]"
    }

    /// The symbol without the compiler's clone suffixes (`.isra.0`, `.constprop.0`, `.part.0`).
    fn name(&self) -> &str {
        match self
            .sym
            .find(".isra.")
            .or_else(|| self.sym.find(".constprop."))
        {
            Some(i) => &self.sym[..i],
            None => self.sym.strip_suffix(".part.0").unwrap_or(&self.sym),
        }
    }
}

/// One sample of `perf script -F comm,pid,tid,ip,sym,dso`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerfSample {
    pub comm: String,
    pub pid: u32,
    /// Leaf first.
    pub frames: Vec<Frame>,
}

/// Parses `perf script -F comm,pid,tid,ip,sym,dso` output: a header line per sample (`comm
/// pid/tid`), then one line per frame (`addr sym (dso)`), samples separated by blank lines.
/// Lines that fit neither are skipped.
pub fn parse_script(text: &str) -> Vec<PerfSample> {
    let mut out = Vec::new();
    let mut cur: Option<PerfSample> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            out.extend(cur.take());
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            if let (Some(s), Some(f)) = (cur.as_mut(), parse_frame(line.trim())) {
                s.frames.push(f);
            }
            continue;
        }
        out.extend(cur.take());
        cur = parse_header(line);
    }
    out.extend(cur);
    out
}

fn parse_header(line: &str) -> Option<PerfSample> {
    let line = line.trim_end();
    let (comm, ids) = line.rsplit_once(char::is_whitespace)?;
    let pid = ids.split('/').next()?.parse().ok()?;
    Some(PerfSample {
        comm: comm.trim().to_string(),
        pid,
        frames: Vec::new(),
    })
}

fn parse_frame(line: &str) -> Option<Frame> {
    let (_addr, rest) = line.split_once(char::is_whitespace)?;
    let rest = rest.trim_start();
    // The dso is in parentheses at the end and starts with '/' or '['; a symbol may hold
    // parentheses of its own, and a dso too ("(deleted)").
    let at = rest.find(" (/").or_else(|| rest.find(" (["));
    let (sym, dso) = match at {
        Some(i) => (
            &rest[..i],
            rest[i + 2..].strip_suffix(')').unwrap_or(&rest[i + 2..]),
        ),
        None => (rest, "[unknown]"),
    };
    let sym = sym.split("+0x").next().unwrap_or(sym);
    Some(Frame {
        sym: sym.to_string(),
        dso: dso.to_string(),
    })
}

/// Whose a process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// Runs in one of the lab's namespaces (vxswitchd, vxagent, iperf3).
    Lab,
    /// A kernel thread (softirq, workers, idle).
    Kernel,
    /// Anything else on the machine (and perf itself).
    Outside,
}

/// Who owns which PID, and which PIDs are the lab's userspace switches.
#[derive(Debug, Clone, Default)]
pub struct Owners {
    pub pids: HashMap<u32, Owner>,
    pub switches: HashSet<u32>,
}

impl Owners {
    /// The owner of a sample's process: by PID as found when the window opened, else by name
    /// (kernel threads started since), else outside.
    pub fn of(&self, pid: u32, comm: &str) -> Owner {
        if pid == 0 {
            return Owner::Kernel;
        }
        if let Some(o) = self.pids.get(&pid) {
            return *o;
        }
        const KTHREADS: [&str; 8] = [
            "kworker/",
            "ksoftirqd/",
            "migration/",
            "rcu",
            "swapper",
            "kthreadd",
            "irq/",
            "cpuhp/",
        ];
        if KTHREADS.iter().any(|k| comm.starts_with(k)) {
            Owner::Kernel
        } else {
            Owner::Outside
        }
    }

    /// Every process: in one of `netns` (names under /run/netns), a kernel thread (empty
    /// command line), or outside.
    pub fn scan(netns: &[String], switches: &[u32]) -> Owners {
        let inodes: HashSet<u64> = netns
            .iter()
            .filter_map(|n| std::fs::metadata(Path::new("/run/netns").join(n)).ok())
            .map(|m| m.ino())
            .collect();
        let mut pids = HashMap::new();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Owners::default();
        };
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let base = e.path();
            let ns = std::fs::read_link(base.join("ns/net")).ok().and_then(|l| {
                let l = l.to_string_lossy().into_owned();
                l.strip_prefix("net:[")?
                    .strip_suffix(']')?
                    .parse::<u64>()
                    .ok()
            });
            let owner = if ns.is_some_and(|i| inodes.contains(&i)) {
                Owner::Lab
            } else {
                match std::fs::read(base.join("cmdline")) {
                    Ok(c) if c.is_empty() => Owner::Kernel,
                    Ok(_) => Owner::Outside,
                    Err(_) => continue,
                }
            };
            pids.insert(pid, owner);
        }
        Owners {
            pids,
            switches: switches.iter().copied().collect(),
        }
    }
}

fn any(name: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| name.starts_with(p))
}

const IDLE: &[&str] = &[
    "default_idle",
    "pv_native_safe_halt",
    "native_safe_halt",
    "arch_cpu_idle",
    "cpu_idle_poll",
    "acpi_idle",
    "acpi_safe_halt",
    "intel_idle",
    "mwait_idle",
    "poll_idle",
    "cpuidle_enter",
];
const COPY: &[&str] = &[
    "copy_user",
    "rep_movs",
    "_copy_to_iter",
    "_copy_from_iter",
    "copy_to_user",
    "copy_from_user",
    "_copy_to_user",
    "_copy_from_user",
    "__copy_user",
    "copy_page_to_iter",
    "copy_page_from_iter",
    "memcpy",
    "__memcpy",
    "memmove",
    "__memmove",
    "csum_partial_copy",
    "csum_and_copy",
    "skb_copy_bits",
];
const TUN: &[&str] = &["tun_", "__tun_"];
const ALLOC: &[&str] = &[
    "kmem_cache_",
    "__kmem_cache",
    "kmalloc",
    "__kmalloc",
    "kfree",
    "__kfree",
    "kvfree",
    "kvmalloc",
    "slab_",
    "___slab",
    "__slab",
    "alloc_skb",
    "__alloc_skb",
    "napi_alloc",
    "__napi_alloc",
    "build_skb",
    "__build_skb",
    "napi_build_skb",
    "skb_release",
    "__kfree_skb",
    "kfree_skb",
    "consume_skb",
    "napi_consume_skb",
    "skb_free_head",
    "skb_attempt_defer_free",
    "__alloc_pages",
    "alloc_pages",
    "__folio_alloc",
    "folio_alloc",
    "get_page_from_freelist",
    "rmqueue",
    "free_unref",
    "__free_pages",
    "free_pages",
    "free_frozen_pages",
    "__folio_put",
    "put_page",
    "page_frag",
    "skb_page_frag",
    "sock_alloc_send",
    "alloc_skb_with_frags",
    "page_pool",
    "__page_pool",
    "pskb_expand_head",
    "skb_clone",
    "__skb_clone",
    "__memcg",
    "memcg",
    "mod_objcg",
    "obj_cgroup",
    "refill_obj_stock",
    "__mod_memcg",
];
const SCHED: &[&str] = &[
    "schedule",
    "__schedule",
    "try_to_wake_up",
    "ttwu_",
    "wake_up_",
    "__wake_up",
    "finish_task_switch",
    "pick_next_",
    "enqueue_",
    "dequeue_",
    "__switch_to",
    "switch_mm",
    "context_switch",
    "update_curr",
    "update_load_avg",
    "set_next_entity",
    "put_prev",
    "check_preempt",
    "wakeup_preempt",
    "resched_curr",
    "sched_",
    "__sched",
    "psi_",
    "select_task_rq",
    "ep_",
    "sock_def_readable",
    "autoremove_wake_function",
    "default_wake_function",
    "pollwake",
    "futex_",
    "__futex",
    "hrtimer_wakeup",
    "do_nanosleep",
    "prepare_to_wait",
    "finish_wait",
    "__cond_resched",
    "preempt_schedule",
    "newidle_balance",
    "sched_balance",
    "load_balance",
    "update_rq_clock",
    "activate_task",
    "raw_spin_rq_lock",
    "__task_rq_lock",
    "do_epoll_wait",
];
const SYSCALL: &[&str] = &[
    "entry_SYSCALL",
    "do_syscall_64",
    "syscall_",
    "exit_to_user_mode",
    "__x64_sys_",
    "__ia32_sys_",
    "__sys_",
    "___sys_",
    "____sys_",
    "__se_sys_",
    "ksys_",
    "vfs_read",
    "vfs_write",
    "vfs_writev",
    "vfs_readv",
    "do_iter_",
    "do_readv",
    "do_writev",
    "fdget",
    "__fdget",
    "__fget",
    "fput",
    "security_",
    "apparmor_",
    "rw_verify_area",
    "import_iovec",
    "__import_iovec",
    "copy_msghdr",
    "sockfd_lookup",
    "sock_sendmsg",
    "__sock_sendmsg",
    "sock_recvmsg",
    "sock_write_iter",
    "sock_read_iter",
    "sock_poll",
];
const OVERLAY: &[&str] = &[
    "vxlan_",
    "__vxlan",
    "br_",
    "__br_",
    "nbp_",
    "udp_tunnel",
    "iptunnel",
    "ip_tunnel",
];
const TCP: &[&str] = &["tcp_", "__tcp_", "tcp4_", "tcp6_", "inet_csk", "__inet_csk"];
const NET: &[&str] = &[
    "udp",
    "__udp",
    "ip_",
    "__ip_",
    "ipv4_",
    "ip4_",
    "ip6",
    "__ip6",
    "inet_",
    "__inet",
    "fib_",
    "__fib",
    "dst_",
    "neigh_",
    "__neigh",
    "__dev_",
    "dev_",
    "netif_",
    "__netif",
    "napi_",
    "__napi",
    "net_rx_action",
    "process_backlog",
    "veth_",
    "skb_",
    "__skb_",
    "gro_",
    "__gro",
    "sk_",
    "__sk_",
    "sock_",
    "nf_",
    "__nf",
    "ipt_",
    "nft_",
    "icmp",
    "arp_",
    "eth_",
    "validate_xmit",
    "sch_",
    "__qdisc",
    "qdisc_",
    "pfifo",
    "rps_",
    "enqueue_to_backlog",
    "rt_",
    "__rt",
    "netdev_",
    "__netdev",
    "tc_",
    "tcf_",
    "u32_",
    "__copy_skb_header",
    "__pskb",
    "pskb_",
    "raw_",
];
/// Where a copy happens, from the first of these frames towards the root.
const COPY_CONTEXT: &[(&str, &[&str])] = &[
    (
        "tap_read",
        &["tun_do_read", "tun_put_user", "tun_chr_read_iter"],
    ),
    ("tap_write", &["tun_get_user", "tun_chr_write_iter"]),
    (
        "udp_send",
        &[
            "udp_sendmsg",
            "udpv6_sendmsg",
            "__ip_append_data",
            "ip_make_skb",
        ],
    ),
    ("udp_recv", &["udp_recvmsg", "udpv6_recvmsg"]),
    ("tcp_send", &["tcp_sendmsg"]),
    ("tcp_recv", &["tcp_recvmsg", "tcp_recv"]),
];
/// Markers of softirq work in a chain.
const SOFTIRQ: &[&str] = &[
    "__do_softirq",
    "handle_softirqs",
    "net_rx_action",
    "do_softirq",
    "irq_exit",
];

/// The category of a sample: the first frame, from the leaf, that belongs to one; `idle` if the
/// leaf is an idle loop; `outside` for a process outside the lab unless its chain shows softirq
/// work.
pub fn classify(s: &PerfSample, owners: &Owners) -> &'static str {
    let owner = owners.of(s.pid, &s.comm);
    if owner == Owner::Outside
        && !s
            .frames
            .iter()
            .any(|f| f.kernel() && any(f.name(), SOFTIRQ))
    {
        return "outside";
    }
    let switch = owner == Owner::Lab && owners.switches.contains(&s.pid);
    if let Some(leaf) = s.frames.first() {
        if leaf.kernel() && any(leaf.name(), IDLE) {
            return "idle";
        }
    }
    for (i, f) in s.frames.iter().enumerate() {
        let n = f.name();
        if f.kernel() {
            if any(n, COPY) {
                return copy_context(&s.frames[i + 1..]);
            }
            if n.contains("csum") || n.contains("checksum") {
                return "csum:kernel";
            }
            for (cat, list) in [
                ("tun", TUN),
                ("alloc", ALLOC),
                ("sched", SCHED),
                ("syscall", SYSCALL),
                ("overlay", OVERLAY),
                ("tcp", TCP),
                ("net", NET),
            ] {
                if any(n, list) {
                    return cat;
                }
            }
        } else {
            if n.contains("memcpy") || n.contains("memmove") {
                return "copy:user";
            }
            if n.contains("checksum") || n.contains("csum") || n.contains("ones_complement") {
                return "csum:user";
            }
            if switch {
                return user_work(&s.frames[i..]);
            }
        }
    }
    "other"
}

/// Where a kernel copy happens: the first context frame towards the root, unless softirq work
/// comes first (the network stack then runs on top of whatever task it interrupted).
fn copy_context(rootward: &[Frame]) -> &'static str {
    for f in rootward {
        if !f.kernel() {
            return "copy:user";
        }
        if any(f.name(), SOFTIRQ) {
            return "copy:other";
        }
        for (ctx, names) in COPY_CONTEXT {
            if any(f.name(), names) {
                return match *ctx {
                    "tap_read" => "copy:tap_read",
                    "tap_write" => "copy:tap_write",
                    "udp_send" => "copy:udp_send",
                    "udp_recv" => "copy:udp_recv",
                    "tcp_send" => "copy:tcp_send",
                    _ => "copy:tcp_recv",
                };
            }
        }
    }
    "copy:other"
}

/// The sub-category of userspace work in vxswitchd, from the user frames (leaf first).
fn user_work(frames: &[Frame]) -> &'static str {
    for f in frames.iter().filter(|f| !f.kernel()) {
        let n = f.name();
        if f.dso.contains("libc") {
            return "user:libc";
        }
        if ["offload", "segment", "coalesce", "merge", "gro", "gso"]
            .iter()
            .any(|k| n.contains(k))
        {
            return "user:offload";
        }
        if [
            "pipeline", "fib", "flow", "classify", "ingress", "egress", "forward", "rewrite",
        ]
        .iter()
        .any(|k| n.contains(k))
        {
            return "user:pipeline";
        }
    }
    "user:other"
}

/// Samples per category (sub-categories under their own key and added to their parent's),
/// and the folded call chains.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Breakdown {
    pub samples: u64,
    pub idle: u64,
    pub counts: BTreeMap<&'static str, u64>,
    /// `comm;root;...;leaf` → samples.
    pub folded: BTreeMap<String, u64>,
}

impl Breakdown {
    pub fn new(samples: &[PerfSample], owners: &Owners) -> Breakdown {
        let mut b = Breakdown::default();
        for s in samples {
            b.samples += 1;
            let cat = classify(s, owners);
            if cat == "idle" {
                b.idle += 1;
            } else {
                *b.counts.entry(cat).or_default() += 1;
                if let Some((top, _)) = cat.split_once(':') {
                    let top = top_categories()
                        .find(|(k, _)| *k == top)
                        .map_or("other", |(k, _)| k);
                    *b.counts.entry(top).or_default() += 1;
                }
            }
            let mut key = s.comm.replace(';', ":");
            for f in s.frames.iter().rev() {
                key.push(';');
                key.push_str(&f.sym.replace(';', ":"));
            }
            *b.folded.entry(key).or_default() += 1;
        }
        b
    }

    pub fn busy(&self) -> u64 {
        self.samples - self.idle
    }

    /// `comm;root;...;leaf count` lines, most frequent first.
    pub fn folded_text(&self) -> String {
        let mut v: Vec<(&String, &u64)> = self.folded.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let mut s = String::new();
        for (k, n) in v {
            let _ = writeln!(s, "{k} {n}");
        }
        s
    }
}

/// The machine's CPU time and context switches from /proc/stat.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuStat {
    /// Clock ticks, all CPUs.
    pub busy: u64,
    pub total: u64,
    pub ctxt: u64,
}

/// Reads the `cpu` and `ctxt` lines: busy = every field but idle, iowait and steal (guest
/// time is already in user).
pub fn parse_proc_stat(text: &str) -> Option<CpuStat> {
    let mut cpu = None;
    let mut ctxt = None;
    for line in text.lines() {
        let mut f = line.split_whitespace();
        match f.next() {
            Some("cpu") => {
                let v: Vec<u64> = f.filter_map(|x| x.parse().ok()).collect();
                if v.len() < 8 {
                    return None;
                }
                let total: u64 = v[..8].iter().sum();
                let busy = total - v[3] - v[4] - v[7];
                cpu = Some((busy, total));
            }
            Some("ctxt") => ctxt = f.next().and_then(|x| x.parse().ok()),
            _ => {}
        }
    }
    let (busy, total) = cpu?;
    Some(CpuStat {
        busy,
        total,
        ctxt: ctxt?,
    })
}

fn read_proc_stat() -> Result<CpuStat, BenchError> {
    let text = std::fs::read_to_string("/proc/stat").map_err(|source| BenchError::Io {
        what: "cannot read",
        path: "/proc/stat".into(),
        source,
    })?;
    parse_proc_stat(&text).ok_or_else(|| BenchError::Bad("/proc/stat has no cpu line".into()))
}

/// Reads `perf stat -x,` output: event name → count (events not counted are left out).
pub fn parse_perf_stat(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 3 {
            continue;
        }
        if let Ok(v) = f[0].trim().parse::<f64>() {
            out.insert(f[2].trim().to_string(), v);
        }
    }
    out
}

/// Sets the kernel's perf and symbol settings for the run and puts them back when dropped.
struct Sysctls(Vec<(&'static str, String)>);

impl Sysctls {
    fn permissive() -> Sysctls {
        let mut saved = Vec::new();
        for (path, value) in [
            ("/proc/sys/kernel/perf_event_paranoid", "-1"),
            ("/proc/sys/kernel/kptr_restrict", "0"),
        ] {
            if let Ok(old) = std::fs::read_to_string(path) {
                if old.trim() != value && std::fs::write(path, value).is_ok() {
                    saved.push((path, old.trim().to_string()));
                }
            }
        }
        Sysctls(saved)
    }
}

impl Drop for Sysctls {
    fn drop(&mut self) {
        for (path, old) in &self.0 {
            if let Err(e) = std::fs::write(path, old) {
                eprintln!("vxbench profile: cannot restore {path} to {old}: {e}");
            }
        }
    }
}

/// Tears a lab down when dropped.
struct Down(String);

impl Drop for Down {
    fn drop(&mut self) {
        if let Err(e) = Lab::teardown(&self.0) {
            eprintln!("vxbench profile: {e}");
        }
    }
}

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One profiled run's figures (per 64 KB unless named otherwise), and its breakdown.
pub struct Run {
    pub round: usize,
    pub system: String,
    pub metrics: Metrics,
    pub breakdown: Breakdown,
}

/// Runs every round and writes the outputs; returns the markdown table.
pub fn run(opts: &ProfileOptions) -> Result<String, BenchError> {
    if !lab::is_root() {
        return Err(BenchError::Bad(
            "vxbench profile must run as root (labs and perf); try sudo".into(),
        ));
    }
    if opts.systems.is_empty() || opts.rounds == 0 {
        return Err(BenchError::Bad(
            "give at least one system and one round".into(),
        ));
    }
    if opts.duration < EDGE * 3 {
        return Err(BenchError::Bad(format!(
            "--duration {} s: give at least {} s (the window leaves out {} s at each end)",
            opts.duration.as_secs(),
            (EDGE * 3).as_secs(),
            EDGE.as_secs()
        )));
    }
    if opts.systems.iter().any(|s| s.kind == Kind::Vxswitch) {
        lab::vxswitch::Bins::find()?;
    }
    let labs = systems::lab_names(&opts.lab_prefix, &opts.systems);
    for name in &labs {
        lab::topo::validate_name(name)?;
        if Lab::list()?.iter().any(|l| &l.name == name) {
            return Err(BenchError::Bad(format!(
                "lab {name} is already up; remove it with vxlab down --name {name}"
            )));
        }
    }
    check_perf()?;
    let stacks = opts.out.join("stacks");
    std::fs::create_dir_all(&stacks).map_err(|source| BenchError::Io {
        what: "cannot create",
        path: stacks.clone(),
        source,
    })?;
    sys::install_interrupt_handler().map_err(|source| BenchError::Io {
        what: "cannot install the Ctrl-C handler",
        path: "-".into(),
        source,
    })?;
    let exe = std::env::current_exe().map_err(|source| BenchError::Io {
        what: "cannot find this program",
        path: "/proc/self/exe".into(),
        source,
    })?;
    let _sysctls = Sysctls::permissive();
    let started = SystemTime::now();
    let mut runs: Vec<Run> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    'rounds: for round in 1..=opts.rounds {
        for (system, name) in opts.systems.iter().zip(&labs) {
            if sys::interrupted() {
                break 'rounds;
            }
            let tag = format!("[{round}/{} {system}]", opts.rounds);
            match profile_one(opts, &exe, system, name) {
                Ok((metrics, breakdown)) => {
                    eprintln!("{tag:<20} {}", describe(&metrics));
                    let file = stacks.join(format!(
                        "{round}-{}.folded.gz",
                        system.name().replace(':', "-")
                    ));
                    if let Err(e) = write_gzip(&file, &breakdown.folded_text()) {
                        eprintln!("{tag:<20} {e}");
                    }
                    runs.push(Run {
                        round,
                        system: system.name(),
                        metrics,
                        breakdown,
                    });
                }
                Err(BenchError::Interrupted) => break 'rounds,
                Err(e) => {
                    eprintln!("{tag:<20} FAILED: {e}");
                    errors.push(format!("{tag} {e}"));
                }
            }
        }
    }
    let names: Vec<String> = opts.systems.iter().map(System::name).collect();
    let medians = medians(&names, &runs);
    let md = markdown(opts, &names, &medians, &runs, &errors, started);
    write(&opts.out.join("profile.md"), &md)?;
    let j = json!({
        "command": opts.command,
        "started": super::timestamp(started),
        "git_commit": git_commit(),
        "systems": names,
        "variants": opts.systems.iter().filter(|s| s.variant.is_some())
            .map(|s| (s.name(), json!(s.args))).collect::<serde_json::Map<_, _>>(),
        "rounds": opts.rounds,
        "duration_s": opts.duration.as_secs_f64(),
        "window_s": window(opts.duration).as_secs_f64(),
        "underlay_offload": opts.underlay_offload,
        "tso": opts.tso,
        "unit_bytes": UNIT,
        "medians": medians,
        "runs": runs.iter().map(|r| json!({
            "round": r.round,
            "system": r.system,
            "metrics": r.metrics,
            "samples": r.breakdown.samples,
            "idle_samples": r.breakdown.idle,
            "category_samples": r.breakdown.counts,
        })).collect::<Vec<_>>(),
        "errors": errors,
    });
    write(
        &opts.out.join("profile.json"),
        &(serde_json::to_string_pretty(&j).expect("JSON") + "\n"),
    )?;
    let bars: Vec<svg::StackedBar> = names
        .iter()
        .filter_map(|n| {
            let m = medians.get(n)?;
            Some(svg::StackedBar {
                label: n.clone(),
                segments: top_categories()
                    .filter(|(k, _)| *k != "outside")
                    .map(|(k, l)| {
                        (
                            l.to_string(),
                            m.get(&format!("us.{k}")).copied().unwrap_or(0.0),
                        )
                    })
                    .collect(),
                note: format!(
                    "{} Gb/s; {} more outside the lab",
                    fmt_num(m.get("gbps").copied().unwrap_or(0.0)),
                    fmt_num(m.get("us.outside").copied().unwrap_or(0.0))
                ),
            })
        })
        .collect();
    let title = format!(
        "The lab's CPU per 64 KB of TCP payload, by call chain: medians of {} round{}",
        opts.rounds,
        if opts.rounds == 1 { "" } else { "s" }
    );
    let sub = format!(
        "single-stream iperf3 across two nodes, underlay offload {}, both nodes and pods on \
         the same CPUs; perf record -a -g -F {FREQUENCY} -e cpu-clock; $ {}",
        if opts.underlay_offload { "on" } else { "off" },
        opts.command
    );
    write(
        &opts.out.join("chart.svg"),
        &svg::stacked(&title, &sub, "core-µs per 64 KB", &bars),
    )?;
    if runs.is_empty() {
        return Err(BenchError::Bad(format!(
            "no run succeeded: {}",
            errors.join("; ")
        )));
    }
    Ok(md)
}

fn git_commit() -> String {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(env!("CARGO_MANIFEST_DIR"))
        .args(["rev-parse", "--short=12", "HEAD"]);
    proc::run(&mut cmd, Duration::from_secs(5))
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(|| "-".into(), |o| o.stdout.trim().to_string())
}

fn window(duration: Duration) -> Duration {
    duration.saturating_sub(EDGE * 2).max(EDGE)
}

/// perf is installed, and the syscall tracepoint exists (else /proc/stat's context switches
/// stand alone and syscalls are not counted).
fn check_perf() -> Result<(), BenchError> {
    let out = proc::run(
        Command::new("perf").arg("--version"),
        Duration::from_secs(10),
    )
    .map_err(|_| BenchError::Bad("perf is not installed (linux-perf / linux-tools)".into()))?;
    if !out.status.success() {
        return Err(BenchError::Bad("perf --version failed".into()));
    }
    Ok(())
}

fn describe(m: &Metrics) -> String {
    let g = |k: &str| m.get(k).copied().map_or("-".into(), fmt_num);
    format!(
        "{} Gb/s; per 64 KB: {} core-µs busy ({} outside the lab), the lab's processes {} \
         context switches and {} syscalls; {} samples",
        g("gbps"),
        g("busy_us"),
        g("us.outside"),
        g("lab_ctxsw"),
        g("lab_syscalls"),
        g("samples")
    )
}

/// One lab: up, warm-up, iperf3 with the window measured in its middle, down.
fn profile_one(
    opts: &ProfileOptions,
    exe: &Path,
    system: &System,
    name: &str,
) -> Result<(Metrics, Breakdown), BenchError> {
    let spec = super::systems::two_node_lab(
        name.to_string(),
        system,
        opts.port,
        opts.workers,
        &opts.switch_args,
        opts.tso,
        opts.underlay_offload,
    );
    let lab = Lab::up(&spec)?;
    let _down = Down(name.to_string());
    let (Some(client), Some(server)) = (lab.pod("n1p1"), lab.pod("n2p1")) else {
        return Err(BenchError::Bad("the lab has no pods n1p1 and n2p1".into()));
    };
    let ctx = Ctx {
        lab: &lab,
        client_ns: client.netns.clone(),
        server_ns: server.netns.clone(),
        server_ip: server.ip,
        exe: exe.to_path_buf(),
        duration: opts.duration,
        udp_duration: opts.duration,
        udp_rate: None,
        udp_senders: 1,
        udp_trial: opts.duration,
        udp_search: Default::default(),
        pings: 1,
        rr_count: 1,
    };
    measure::warmup(&ctx)?;
    let scratch =
        std::env::temp_dir().join(format!("vxbench-profile-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|source| BenchError::Io {
        what: "cannot create",
        path: scratch.clone(),
        source,
    })?;
    let scratch = Scratch(scratch);
    let data = scratch.0.join("perf.data");
    let stat_file = scratch.0.join("stat.csv");

    let ip = server.ip.to_string();
    let port = IPERF_PORT.to_string();
    let mut srv = proc::in_netns(&server.netns, "iperf3");
    srv.args(["-s", "-1", "-B", &ip, "-p", &port]);
    let mut srv = Background::spawn(&mut srv)?;
    proc::wait_listening(&server.netns, IPERF_PORT, Duration::from_secs(5))?;
    let secs = opts.duration.as_secs().to_string();
    let mut cli = proc::in_netns(&client.netns, "iperf3");
    cli.args([
        "-c",
        &ip,
        "-p",
        &port,
        "-t",
        &secs,
        "-J",
        "--connect-timeout",
        "3000",
    ]);
    let cli_line = proc::cmdline(&cli);
    let t0 = Instant::now();
    let mut cli = Background::spawn(&mut cli)?;
    sleep_checked(EDGE)?;

    let mut netns: Vec<String> = lab.nodes().iter().map(|n| n.netns.clone()).collect();
    netns.extend(
        lab.nodes()
            .iter()
            .flat_map(|n| n.pods.iter().map(|p| p.netns.clone())),
    );
    let switches: Vec<u32> = proc::switch_pids(&lab);
    let owners = Owners::scan(&netns, &switches);
    let w = window(opts.duration);
    let wsecs = format!("{:.3}", w.as_secs_f64());
    let freq = FREQUENCY.to_string();
    let mut rec = Command::new("perf");
    rec.args([
        "record",
        "-a",
        "-g",
        "-F",
        &freq,
        "-e",
        "cpu-clock",
        "-B",
        "-q",
        "-o",
    ])
    .arg(&data)
    .args(["--", "sleep", &wsecs]);
    let mut stat = Command::new("perf");
    stat.args([
        "stat",
        "-a",
        "-x,",
        "-e",
        "context-switches,raw_syscalls:sys_enter",
        "-o",
    ])
    .arg(&stat_file)
    .args(["--", "sleep", &wsecs]);
    // The same counts for the lab's processes only (every thread of each): on a busy machine
    // the machine-wide ones count other work too.
    let lab_pids: Vec<String> = {
        let mut v: Vec<u32> = owners
            .pids
            .iter()
            .filter(|(_, o)| **o == Owner::Lab)
            .map(|(p, _)| *p)
            .collect();
        v.sort_unstable();
        v.iter().map(u32::to_string).collect()
    };
    let lab_stat_file = scratch.0.join("stat-lab.csv");
    let mut lab_stat = Command::new("perf");
    lab_stat
        .args([
            "stat",
            "-x,",
            "-e",
            "context-switches,raw_syscalls:sys_enter",
            "-p",
            &lab_pids.join(","),
            "-o",
        ])
        .arg(&lab_stat_file)
        .args(["--", "sleep", &wsecs]);
    let a = read_proc_stat()?;
    let ta = Instant::now();
    let mut rec = Background::spawn(&mut rec)?;
    let mut stat = Background::spawn(&mut stat)?;
    let mut lab_stat = (!lab_pids.is_empty())
        .then(|| Background::spawn(&mut lab_stat))
        .transpose()?;
    let stat_out = stat.finish(w + Duration::from_secs(20));
    let b = read_proc_stat()?;
    let wall = ta.elapsed().as_secs_f64();
    let rec_line = rec.cmdline().to_string();
    rec.finish(w + Duration::from_secs(60))?.ok(&rec_line)?;
    let lab_stat_out = lab_stat.as_mut().map(|l| {
        l.finish(Duration::from_secs(20))
            .and_then(|f| f.ok("perf stat -p"))
    });
    let left = (opts.duration + Duration::from_secs(20)).saturating_sub(t0.elapsed());
    let out = cli.finish(left)?;
    let _ = srv.finish(Duration::from_secs(3));
    let iperf = measure::parse_iperf(&out.stdout).map_err(|reason| BenchError::Command {
        cmdline: cli_line.clone(),
        reason,
    })?;
    out.ok(&cli_line)?;

    let mut script = Command::new("perf");
    script
        .args(["script", "-F", "comm,pid,tid,ip,sym,dso", "-i"])
        .arg(&data);
    let script_line = proc::cmdline(&script);
    let text = proc::run(&mut script, Duration::from_secs(300))?.ok(&script_line)?;
    let samples = parse_script(&text);
    drop(text);
    let breakdown = Breakdown::new(&samples, &owners);

    let units_per_s = iperf.bits_per_second / 8.0 / UNIT;
    if units_per_s <= 0.0 || breakdown.samples == 0 {
        return Err(BenchError::Bad(format!(
            "nothing to divide by: {} Gb/s, {} samples",
            iperf.bits_per_second / 1e9,
            breakdown.samples
        )));
    }
    let ticks = sys::clock_ticks();
    let busy_core_s_per_s = (b.busy - a.busy) as f64 / ticks / wall;
    let busy_us = busy_core_s_per_s * 1e6 / units_per_s;
    let mut m = Metrics::from([
        ("gbps".to_string(), iperf.bits_per_second / 1e9),
        ("busy_us".to_string(), busy_us),
        ("cpus_busy".to_string(), busy_core_s_per_s),
        (
            "ctxsw_proc".to_string(),
            (b.ctxt - a.ctxt) as f64 / wall / units_per_s,
        ),
        ("samples".to_string(), breakdown.samples as f64),
        ("idle_samples".to_string(), breakdown.idle as f64),
        ("window_s".to_string(), wall),
    ]);
    if let Err(e) = stat_out.and_then(|f| f.ok("perf stat")) {
        eprintln!(
            "vxbench profile: {e}; context switches come from /proc/stat, syscalls are not counted"
        );
    }
    let counts = std::fs::read_to_string(&stat_file)
        .map(|t| parse_perf_stat(&t))
        .unwrap_or_default();
    let ws = w.as_secs_f64();
    match counts.get("context-switches") {
        Some(c) => m.insert("ctxsw".into(), c / ws / units_per_s),
        None => m.insert(
            "ctxsw".into(),
            (b.ctxt - a.ctxt) as f64 / wall / units_per_s,
        ),
    };
    if let Some(c) = counts.get("raw_syscalls:sys_enter") {
        m.insert("syscalls".into(), c / ws / units_per_s);
    }
    match lab_stat_out {
        Some(Ok(_)) => {
            let lab = std::fs::read_to_string(&lab_stat_file)
                .map(|t| parse_perf_stat(&t))
                .unwrap_or_default();
            if let Some(c) = lab.get("context-switches") {
                m.insert("lab_ctxsw".into(), c / ws / units_per_s);
            }
            if let Some(c) = lab.get("raw_syscalls:sys_enter") {
                m.insert("lab_syscalls".into(), c / ws / units_per_s);
            }
        }
        Some(Err(e)) => eprintln!("vxbench profile: {e}; no per-lab counts"),
        None => {}
    }
    let busy_samples = breakdown.busy().max(1) as f64;
    for (k, _) in CATEGORIES {
        let n = breakdown.counts.get(k).copied().unwrap_or(0) as f64;
        m.insert(format!("us.{k}"), busy_us * n / busy_samples);
    }
    m.insert(
        "lab_us".into(),
        busy_us - m.get("us.outside").copied().unwrap_or(0.0),
    );
    Ok((m, breakdown))
}

fn sleep_checked(d: Duration) -> Result<(), BenchError> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if sys::interrupted() {
            return Err(BenchError::Interrupted);
        }
        std::thread::sleep(Duration::from_millis(20).min(end - Instant::now()));
    }
    Ok(())
}

/// Medians per system of every figure over its runs.
pub fn medians(names: &[String], runs: &[Run]) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    for n in names {
        let mine: Vec<&Run> = runs.iter().filter(|r| &r.system == n).collect();
        let keys: HashSet<&String> = mine.iter().flat_map(|r| r.metrics.keys()).collect();
        let mut m = BTreeMap::new();
        for k in keys {
            let v: Vec<f64> = mine
                .iter()
                .filter_map(|r| r.metrics.get(k).copied())
                .collect();
            if let Some(x) = stats::median(&v) {
                m.insert(k.clone(), x);
            }
        }
        if !m.is_empty() {
            out.insert(n.clone(), m);
        }
    }
    out
}

/// The rows of the table: label, key, and how the difference to the kernel reads.
fn rows() -> Vec<(String, String, bool)> {
    let mut r = vec![
        ("throughput, Gb/s".to_string(), "gbps".to_string(), true),
        (
            "CPU busy, machine-wide (both nodes, pods, everything), core-µs".into(),
            "busy_us".into(),
            false,
        ),
        (
            "CPU of the lab (busy less outside processes), core-µs".into(),
            "lab_us".into(),
            false,
        ),
        (
            "context switches, machine-wide".into(),
            "ctxsw".into(),
            false,
        ),
        ("syscalls, machine-wide".into(), "syscalls".into(), false),
        (
            "context switches of the lab's processes".into(),
            "lab_ctxsw".into(),
            false,
        ),
        (
            "syscalls of the lab's processes".into(),
            "lab_syscalls".into(),
            false,
        ),
    ];
    for (k, l) in CATEGORIES {
        let label = if k.contains(':') {
            format!("&nbsp;&nbsp;{l}")
        } else {
            format!("**{l}**, core-µs")
        };
        r.push((label, format!("us.{k}"), false));
    }
    r
}

fn markdown(
    opts: &ProfileOptions,
    names: &[String],
    med: &BTreeMap<String, BTreeMap<String, f64>>,
    runs: &[Run],
    errors: &[String],
    started: SystemTime,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# vxbench profile: CPU per 64 KB of TCP payload, {} on {}\n",
        super::date(started),
        super::hostname()
    );
    let _ = writeln!(s, "- Command: `{}`", opts.command);
    let _ = writeln!(
        s,
        "- Commit {}; {} round{}, systems interleaved ({}); iperf3 -t {} single stream, window \
         of {} s in its middle; underlay offload {}, TSO {} in the pods",
        git_commit(),
        opts.rounds,
        if opts.rounds == 1 { "" } else { "s" },
        names.join(" "),
        opts.duration.as_secs(),
        window(opts.duration).as_secs_f64(),
        if opts.underlay_offload { "on" } else { "off" },
        if opts.tso { "on" } else { "off" },
    );
    for sys in &opts.systems {
        if sys.variant.is_some() {
            let _ = writeln!(s, "- {}: vxswitchd `{}`", sys.name(), sys.args.join(" "));
        }
    }
    let _ = writeln!(
        s,
        "\nEvery figure is per 64 KB of TCP payload received (the median over the rounds; a \
         category's median is taken on its own, so they need not add up exactly). CPU: the \
         machine's busy time from /proc/stat over the window; its split: the share of perf's \
         non-idle samples whose call chain falls in the category (the first frame from the leaf \
         that belongs to one).\n"
    );
    let kernel = names.iter().any(|n| n == "kernel");
    let others: Vec<&String> = names.iter().filter(|n| *n != "kernel").collect();
    let mut header = vec!["per 64 KB".to_string()];
    header.extend(names.iter().cloned());
    if kernel {
        header.extend(others.iter().map(|n| format!("{n} − kernel")));
    }
    let _ = writeln!(s, "| {} |", header.join(" | "));
    let _ = writeln!(s, "|---|{}", "---:|".repeat(header.len() - 1));
    let get = |n: &str, k: &str| med.get(n).and_then(|m| m.get(k)).copied();
    for (label, key, ratio) in rows() {
        if names.iter().all(|n| get(n, &key).is_none()) {
            continue;
        }
        let mut cells = vec![label];
        for n in names {
            cells.push(get(n, &key).map_or("-".into(), fmt_num));
        }
        if kernel {
            for n in &others {
                cells.push(match (get(n, &key), get("kernel", &key)) {
                    (Some(a), Some(k)) if ratio && k != 0.0 => format!("{}×", fmt_num(a / k)),
                    (Some(a), Some(k)) if !ratio => {
                        let d = a - k;
                        format!("{}{}", if d >= 0.0 { "+" } else { "" }, fmt_num(d))
                    }
                    _ => "-".into(),
                });
            }
        }
        let _ = writeln!(s, "| {} |", cells.join(" | "));
    }
    s.push_str("\n![CPU per 64 KB by category](chart.svg)\n");
    let _ = writeln!(s, "\n## Every run\n");
    for r in runs {
        let g = |k: &str| r.metrics.get(k).copied().map_or("-".into(), fmt_num);
        let _ = writeln!(
            s,
            "- round {} {}: {} Gb/s, {} core-µs busy, {} of the lab, {} context switches ({} \
             of the lab), {} syscalls ({} of the lab), {} samples ({} idle), {} CPUs busy on \
             average",
            r.round,
            r.system,
            g("gbps"),
            g("busy_us"),
            g("lab_us"),
            g("ctxsw"),
            g("lab_ctxsw"),
            g("syscalls"),
            g("lab_syscalls"),
            g("samples"),
            g("idle_samples"),
            g("cpus_busy"),
        );
    }
    if !errors.is_empty() {
        let _ = writeln!(s, "\n## Failed runs\n");
        for e in errors {
            let _ = writeln!(s, "- {e}");
        }
    }
    s.push_str(METHOD);
    s
}

const METHOD: &str = "
## Method

- Lab: two nodes (network namespaces on a veth underlay), one pod each, built and torn down
  once per round and system; `iperf3 -c` from pod n1p1 to n2p1, one stream.
- Window: from 1 s after iperf3 starts to 1 s before it ends. During it, `perf record -a -g -F
  999 -e cpu-clock` (software clock: the VM has no PMU) and `perf stat -a -e
  context-switches,raw_syscalls:sys_enter`, the same counts for the lab's processes alone
  (`perf stat -p`, every process in the lab's namespaces: vxswitchd, vxagent, iperf3; kernel
  threads' switches not included), and /proc/stat at both ends. Throughput: iperf3's
  received bytes over its run.
- Categories, from the leaf of each call chain to its root, the first frame that belongs to one:
  copies (copy_user*, rep_movs*, _copy_to/from_iter, memcpy/memmove, the copying checksums;
  split by the first of tun_do_read/tun_get_user/udp_sendmsg/udp_recvmsg/tcp_sendmsg/
  tcp_recvmsg above it, or userspace), checksums (csum*, *checksum*), userspace packet work
  (vxswitchd's own frames: offload = segmenting/merging, pipeline = flows/routes/rewrite, libc),
  tun_*, skb/page/slab allocation and freeing, scheduling and wake-ups (schedule, try_to_wake_up,
  epoll, futex...), syscall entry/exit and the generic syscall layers, the kernel's vxlan and
  bridge, tcp_*, and the rest of the network stack (IP, UDP, veth, GRO/GSO, qdisc, netfilter).
  Samples whose leaf is an idle loop are idle. Samples of processes outside the lab's
  namespaces (found when the window opens; perf itself included) are `outside` unless the chain
  runs softirq work.
- stacks/ROUND-SYSTEM.folded.gz: every sample's chain, `comm;root;...;leaf count`, for
  flamegraph.pl or inferno.
";

fn write(path: &Path, text: &str) -> Result<(), BenchError> {
    std::fs::write(path, text).map_err(|source| BenchError::Io {
        what: "cannot write",
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `text` gzipped (through gzip -9).
fn write_gzip(path: &Path, text: &str) -> Result<(), BenchError> {
    let file = std::fs::File::create(path).map_err(|source| BenchError::Io {
        what: "cannot write",
        path: path.to_path_buf(),
        source,
    })?;
    let mut child = Command::new("gzip")
        .arg("-9")
        .stdin(Stdio::piped())
        .stdout(file)
        .spawn()
        .map_err(|e| BenchError::Command {
            cmdline: "gzip -9".into(),
            reason: format!("cannot start: {e}"),
        })?;
    let fed = child.stdin.take().map(|mut i| i.write_all(text.as_bytes()));
    let status = child.wait();
    match (fed, status) {
        (Some(Ok(())), Ok(s)) if s.success() => Ok(()),
        (_, s) => Err(BenchError::Command {
            cmdline: "gzip -9".into(),
            reason: format!("failed: {s:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Five samples as `perf script -F comm,pid,tid,ip,sym,dso` prints them.
    const SCRIPT: &str = "\
vxswitchd   100/101  
\tffffffff81a0 rep_movs_alternative ([kernel.kallsyms])
\tffffffff81a1 _copy_to_iter ([kernel.kallsyms])
\tffffffff81a2 tun_put_user.isra.0 ([kernel.kallsyms])
\tffffffff81a3 tun_do_read ([kernel.kallsyms])
\tffffffff81a4 do_syscall_64 ([kernel.kallsyms])
\t    55aa01 vxswitch_dataplane::io::tap::Tap::read (/work/target/release/vxswitchd)

vxswitchd   100/101  
\t    55aa02 vxswitch_dataplane::offload::segment_tcp (/work/target/release/vxswitchd)
\t    55aa03 vxswitch_dataplane::worker::tx::flush (/work/target/release/vxswitchd)

vxswitchd   100/102  
\t    55aa04 vxswitch_dataplane::wire::checksum::sum+0x10 (/work/target/release/vxswitchd)

swapper     0/0  
\tffffffff8200 pv_native_safe_halt ([kernel.kallsyms])
\tffffffff8201 default_idle ([kernel.kallsyms])
\tffffffff8202 do_idle ([kernel.kallsyms])

lto cgu.0  900/901  
\t   8a5390b llvm::LivePhysRegs::addPristines (/usr/lib/libLLVM.so)

rustc  902/902  
\tffffffff81b0 _raw_spin_unlock_irqrestore ([kernel.kallsyms])
\tffffffff81b1 skb_release_data ([kernel.kallsyms])
\tffffffff81b2 net_rx_action ([kernel.kallsyms])
\tffffffff81b3 handle_softirqs ([kernel.kallsyms])
\t    7f0001 [unknown] (/memfd:sealed-91 (deleted))

iperf3  200/200  
\tffffffff81c0 finish_task_switch.isra.0 ([kernel.kallsyms])
\tffffffff81c1 __schedule ([kernel.kallsyms])
\tffffffff81c2 tcp_recvmsg ([kernel.kallsyms])
\tffffffff81c3 do_syscall_64 ([kernel.kallsyms])

iperf3  200/200  
\tffffffff81d0 rep_movs_alternative ([kernel.kallsyms])
\tffffffff81d1 _copy_from_iter ([kernel.kallsyms])
\tffffffff81d2 tcp_sendmsg_locked ([kernel.kallsyms])

iperf3  200/200  
\tffffffff81e0 memcpy_orig ([kernel.kallsyms])
\tffffffff81e1 skb_segment ([kernel.kallsyms])
\tffffffff81e2 net_rx_action ([kernel.kallsyms])
\tffffffff81e3 __local_bh_enable_ip ([kernel.kallsyms])
\tffffffff81e4 tcp_sendmsg ([kernel.kallsyms])
";

    fn owners() -> Owners {
        Owners {
            pids: HashMap::from([
                (100, Owner::Lab),
                (200, Owner::Lab),
                (900, Owner::Outside),
                (902, Owner::Outside),
            ]),
            switches: HashSet::from([100]),
        }
    }

    #[test]
    fn perf_script_output_parses_into_samples() {
        let s = parse_script(SCRIPT);
        assert_eq!(s.len(), 9);
        assert_eq!((s[0].comm.as_str(), s[0].pid), ("vxswitchd", 100));
        assert_eq!(s[0].frames.len(), 6);
        assert_eq!(
            s[0].frames[2],
            Frame {
                sym: "tun_put_user.isra.0".into(),
                dso: "[kernel.kallsyms]".into()
            }
        );
        assert_eq!(s[0].frames[2].name(), "tun_put_user");
        assert_eq!(
            s[2].frames[0].sym,
            "vxswitch_dataplane::wire::checksum::sum"
        );
        assert_eq!((s[4].comm.as_str(), s[4].pid), ("lto cgu.0", 900));
        assert_eq!(s[5].frames[4].dso, "/memfd:sealed-91 (deleted)");
        assert!(parse_script("garbage\n\n\tnot a frame\n").is_empty());
    }

    #[test]
    fn call_chains_fall_into_their_categories() {
        let s = parse_script(SCRIPT);
        let o = owners();
        let cats: Vec<&str> = s.iter().map(|x| classify(x, &o)).collect();
        assert_eq!(
            cats,
            [
                "copy:tap_read",
                "user:offload",
                "csum:user",
                "idle",
                "outside",
                "alloc",
                "sched",
                "copy:tcp_send",
                "copy:other"
            ]
        );
        let b = Breakdown::new(&s, &o);
        assert_eq!((b.samples, b.idle, b.busy()), (9, 1, 8));
        assert_eq!(b.counts["copy"], 3);
        assert_eq!(b.counts["copy:tap_read"], 1);
        assert_eq!(b.counts["user"], 1);
        assert_eq!(b.counts["csum"], 1);
        assert_eq!(b.counts["outside"], 1);
        let folded = b.folded_text();
        assert!(
            folded.contains(
                "vxswitchd;vxswitch_dataplane::io::tap::Tap::read;do_syscall_64;tun_do_read;\
                 tun_put_user.isra.0;_copy_to_iter;rep_movs_alternative 1\n"
            ),
            "{folded}"
        );
        assert!(folded.contains("lto cgu.0;llvm::LivePhysRegs::addPristines 1\n"));
        // Names the lab did not have when the window opened: kernel threads by name.
        assert_eq!(o.of(0, "swapper/1"), Owner::Kernel);
        assert_eq!(o.of(4242, "kworker/1:2-events"), Owner::Kernel);
        assert_eq!(o.of(4243, "perf"), Owner::Outside);
    }

    #[test]
    fn counters_parse() {
        let stat = "cpu  100 5 50 800 10 3 7 20 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nctxt 12345\n";
        assert_eq!(
            parse_proc_stat(stat),
            Some(CpuStat {
                busy: 165,
                total: 995,
                ctxt: 12345
            })
        );
        assert_eq!(parse_proc_stat("cpu 1 2\nctxt 3\n"), None);
        let perf = "# started on Tue Dec  8 02:00:00 2026\n\n\
                    81234,,context-switches,8001234567,100.00,,\n\
                    654321,,raw_syscalls:sys_enter,8001234567,100.00,,\n\
                    <not counted>,,cycles,0,0.00,,\n";
        let c = parse_perf_stat(perf);
        assert_eq!(c.get("context-switches"), Some(&81234.0));
        assert_eq!(c.get("raw_syscalls:sys_enter"), Some(&654321.0));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn medians_and_the_table() {
        let run = |round, system: &str, gbps: f64, busy: f64| Run {
            round,
            system: system.into(),
            metrics: Metrics::from([
                ("gbps".to_string(), gbps),
                ("busy_us".to_string(), busy),
                ("us.copy".to_string(), busy / 4.0),
            ]),
            breakdown: Breakdown::default(),
        };
        let runs = vec![
            run(1, "vxswitch", 7.0, 120.0),
            run(1, "kernel", 11.0, 70.0),
            run(2, "vxswitch", 7.2, 122.0),
            run(2, "kernel", 11.0, 68.0),
        ];
        let names = vec!["vxswitch".to_string(), "kernel".to_string()];
        let med = medians(&names, &runs);
        assert_eq!(med["vxswitch"]["busy_us"], 121.0);
        let opts = ProfileOptions {
            systems: vec![System::plain(Kind::Vxswitch), System::plain(Kind::Kernel)],
            rounds: 2,
            duration: Duration::from_secs(10),
            tso: true,
            underlay_offload: true,
            workers: None,
            switch_args: vec![],
            port: 4789,
            out: "x".into(),
            lab_prefix: "pf".into(),
            command: "vxbench profile".into(),
        };
        let md = markdown(&opts, &names, &med, &runs, &[], SystemTime::now());
        assert!(
            md.contains("| per 64 KB | vxswitch | kernel | vxswitch − kernel |"),
            "{md}"
        );
        assert!(
            md.contains("| throughput, Gb/s | 7.10 | 11.0 | 0.645× |"),
            "{md}"
        );
        assert!(md.contains("| 121 | 69.0 | +52.0 |"), "{md}");
        assert!(
            md.contains("| **copies to/from user, memcpy**, core-µs | 30.2 | 17.2 | +13.0 |"),
            "{md}"
        );
    }
}
