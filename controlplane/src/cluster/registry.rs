//! The etcd side: connect (TLS as flannel takes it), wait for `<prefix>/config`, acquire this
//! node's lease in a transaction, keep it alive, and watch every lease into the shared [`View`].
//!
//! One session is one connection; any etcd error ends it, the view stays as it was, and the
//! next session (after a backoff) resumes the watch from the last revision seen.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, Identity,
    KeyValue, PutOptions, TlsOptions, Txn, TxnOp, WatchOptions,
};
use tokio::sync::watch;

use crate::proto::{Ipv4Cidr, Ipv6Cidr};

use super::lease::{self, Lease, LeaseAttrs, SubnetKey};
use super::network::NetworkConfig;
use super::subnet_env::{self, SubnetEnv};
use super::{log, ClusterOptions, View};

/// First delay before reconnecting to etcd; doubled up to [`BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_millis(200);
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often `<prefix>/config` is read again while it is missing or bad.
pub const CONFIG_POLL: Duration = Duration::from_secs(1);
/// Transactions tried before giving up on one acquisition round (lost races re-list).
const ACQUIRE_ATTEMPTS: usize = 32;

type Wake = Box<dyn Fn() + Send>;

/// This node's lease as held in etcd.
#[derive(Debug, Clone, Copy)]
struct Held {
    key: SubnetKey,
    id: i64,
}

/// What survives from one session to the next.
struct State {
    held: Option<Held>,
    /// The last revision the view reflects (0: list before watching).
    revision: i64,
    /// One line per distinct problem, not one per retry.
    last_msg: Option<String>,
    /// Bad leases already reported (key and revision).
    reported: HashSet<(String, i64)>,
    seed: u64,
    /// The endpoint to try first.
    endpoint: usize,
}

impl State {
    fn say(&mut self, msg: String) {
        if self.last_msg.as_deref() != Some(msg.as_str()) {
            log(&msg);
            self.last_msg = Some(msg);
        }
    }
}

/// Why a session ended.
enum End {
    /// Our lease is gone: acquire again right away.
    LeaseLost,
    /// Something failed: wait a backoff, reconnect.
    Failed(String),
    /// Not etcd's fault (no free subnet): said as is, then the same as `Failed`.
    Retry(String),
}

impl From<etcd_client::Error> for End {
    fn from(e: etcd_client::Error) -> End {
        End::Failed(describe(&e))
    }
}

fn describe(e: &etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(s) if format!("{:?}", s.code()) == "Unavailable" => {
            format!("unreachable ({}): is etcd running there?", s.message())
        }
        etcd_client::Error::GRpcStatus(s) => {
            format!("{} ({:?})", s.message(), s.code())
        }
        other => other.to_string(),
    }
}

/// Runs sessions until `stop` says so.
pub(super) async fn run(
    opts: ClusterOptions,
    view: Arc<Mutex<View>>,
    wake: Wake,
    mut stop: watch::Receiver<bool>,
) {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ (u64::from(u32::from(opts.public_ip)) << 16)
        ^ u64::from(std::process::id());
    let mut st = State {
        held: None,
        revision: 0,
        last_msg: None,
        reported: HashSet::new(),
        seed,
        endpoint: 0,
    };
    let mut backoff = BACKOFF_MIN;
    loop {
        let end = tokio::select! {
            end = session(&opts, &view, &wake, &mut st) => end,
            _ = stop.changed() => return,
        };
        match end {
            End::LeaseLost => {
                backoff = BACKOFF_MIN;
                continue;
            }
            End::Failed(_) | End::Retry(_) => {
                st.say(match end {
                    End::Retry(msg) => format!("{msg}; retrying"),
                    End::Failed(msg) => format!(
                        "etcd at {}: {msg}; vxswitchd keeps its tables, retrying",
                        opts.endpoints.join(",")
                    ),
                    End::LeaseLost => String::new(),
                });
                let sleep = tokio::time::sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                tokio::select! {
                    _ = sleep => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

fn update(view: &Arc<Mutex<View>>, wake: &Wake, f: impl FnOnce(&mut View)) {
    {
        let mut v = match view.lock() {
            Ok(v) => v,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut v);
        v.generation += 1;
    }
    wake();
}

async fn connect(opts: &ClusterOptions, next: &mut usize) -> Result<Client, End> {
    let mut co = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(3))
        .with_keep_alive(Duration::from_secs(5), Duration::from_secs(5));
    if opts.endpoints.iter().any(|e| e.starts_with("https://")) {
        let read = |flag: &str, p: &std::path::Path| {
            std::fs::read(p).map_err(|e| End::Failed(format!("{flag} {}: {e}", p.display())))
        };
        let mut tls = TlsOptions::new();
        if let Some(ca) = &opts.ca_file {
            tls = tls.ca_certificate(Certificate::from_pem(read("--etcd-cafile", ca)?));
        }
        if let (Some(cert), Some(key)) = (&opts.cert_file, &opts.key_file) {
            tls = tls.identity(Identity::from_pem(
                read("--etcd-certfile", cert)?,
                read("--etcd-keyfile", key)?,
            ));
        }
        co = co.with_tls(tls);
    }
    // One endpoint at a time, starting after the last one that failed: a member that is down
    // must not fail every request (as a balanced channel over all of them can).
    let mut errors = Vec::new();
    let n = opts.endpoints.len();
    for k in 0..n {
        let i = (*next + k) % n;
        let ep = &opts.endpoints[i];
        let probe = async {
            let mut c = Client::connect([ep.as_str()], Some(co.clone())).await?;
            c.get(opts.config_key(), Some(GetOptions::new().with_count_only()))
                .await?;
            Ok::<Client, etcd_client::Error>(c)
        };
        match probe.await {
            Ok(c) => {
                *next = i;
                return Ok(c);
            }
            Err(e) => errors.push(if n > 1 {
                format!("{ep}: {}", describe(&e))
            } else {
                describe(&e)
            }),
        }
    }
    *next = (*next + 1) % n.max(1);
    Err(End::Failed(errors.join("; ")))
}

/// One connection's life: config, lease, list, then watch and keep alive until something ends.
async fn session(
    opts: &ClusterOptions,
    view: &Arc<Mutex<View>>,
    wake: &Wake,
    st: &mut State,
) -> End {
    match session_inner(opts, view, wake, st).await {
        Ok(never) => match never {},
        Err(end) => end,
    }
}

enum Never {}

async fn session_inner(
    opts: &ClusterOptions,
    view: &Arc<Mutex<View>>,
    wake: &Wake,
    st: &mut State,
) -> Result<Never, End> {
    let mut client = connect(opts, &mut st.endpoint).await?;
    let net = wait_config(&mut client, opts, view, wake, st).await?;

    // Our lease: still alive after a reconnect, or acquired (again).
    if let Some(h) = st.held {
        let alive = client.lease_time_to_live(h.id, None).await?.ttl() > 0;
        let fits = net.allows(&h.key.subnet);
        if !alive || !fits {
            log(format!(
                "lease {} {}; acquiring one again",
                h.key.to_key(),
                if alive {
                    "no longer fits the network config"
                } else {
                    "expired"
                }
            ));
            st.held = None;
        }
    }
    if st.held.is_none() {
        let (held, leases, rev) = acquire(&mut client, opts, &net, st).await?;
        st.held = Some(held);
        write_files(opts, &net, &held.key);
        log(format!(
            "leased {} (key {}{}, etcd lease {:x}, TTL {}s, PublicIP {})",
            held.key.subnet,
            opts.subnets_prefix(),
            held.key.to_key(),
            held.id,
            opts.lease_ttl.as_secs(),
            opts.public_ip
        ));
        publish_list(view, wake, st, held.key, leases, rev);
    } else if st.revision == 0 {
        let (leases, rev) = list(&mut client, opts).await?;
        let key = st.held.map(|h| h.key);
        if let Some(k) = key {
            publish_list(view, wake, st, k, leases, rev);
        }
    }
    st.last_msg = None;
    let held = st.held.ok_or_else(|| End::Failed("no lease held".into()))?;

    let (mut keeper, mut alive) = client.lease_keep_alive(held.id).await?;
    keeper.keep_alive().await?;
    let period = (opts.lease_ttl / 3).clamp(Duration::from_millis(500), Duration::from_secs(30));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        let mut stream = client
            .watch(
                opts.subnets_prefix(),
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(st.revision + 1)
                        .with_progress_notify(),
                ),
            )
            .await?;
        loop {
            tokio::select! {
                _ = tick.tick() => keeper.keep_alive().await?,
                m = alive.message() => match m? {
                    Some(r) if r.ttl() <= 0 => {
                        log(format!("lease {} expired in etcd; acquiring one again",
                            held.key.to_key()));
                        st.held = None;
                        return Err(End::LeaseLost);
                    }
                    Some(_) => {}
                    None => return Err(End::Failed("the lease keep-alive stream closed".into())),
                },
                m = stream.message() => {
                    let Some(resp) = m? else {
                        return Err(End::Failed("the watch stream closed".into()));
                    };
                    if resp.canceled() {
                        if resp.compact_revision() > 0 {
                            log(format!(
                                "etcd compacted history past revision {} (now {}); listing \
                                 the leases again",
                                st.revision + 1,
                                resp.compact_revision()
                            ));
                            let (leases, rev) = list(&mut client, opts).await?;
                            publish_list(view, wake, st, held.key, leases, rev);
                            break; // watch again from the listed revision
                        }
                        return Err(End::Failed(format!(
                            "the watch was cancelled: {}",
                            resp.cancel_reason()
                        )));
                    }
                    if resp.events().is_empty() {
                        if let Some(h) = resp.header() {
                            if !resp.created() && h.revision() > st.revision {
                                st.revision = h.revision();
                            }
                        }
                        continue;
                    }
                    apply_events(opts, view, wake, st, held, resp.events())?;
                }
            }
        }
    }
}

/// Reads `<prefix>/config` until it is there and good, logging once what it waits for.
async fn wait_config(
    client: &mut Client,
    opts: &ClusterOptions,
    view: &Arc<Mutex<View>>,
    wake: &Wake,
    st: &mut State,
) -> Result<NetworkConfig, End> {
    let key = opts.config_key();
    loop {
        let resp = client.get(key.as_str(), None).await?;
        let msg = match resp.kvs().first() {
            None => format!(
                "waiting for the network config at {key} (write it with: ETCDCTL_API=3 etcdctl \
                 --endpoints {} put {key} '{{\"Network\": \"10.1.0.0/16\", \"SubnetLen\": 24, \
                 \"Backend\": {{\"Type\": \"vxlan\", \"VNI\": 1}}}}')",
                opts.endpoints
                    .get(st.endpoint)
                    .map_or("URL", String::as_str)
            ),
            Some(kv) => match std::str::from_utf8(kv.value())
                .map_err(|_| "not UTF-8 text".to_string())
                .and_then(|t| NetworkConfig::parse(t).map_err(|e| e.to_string()))
            {
                Ok(net) => {
                    let changed = {
                        let v = view
                            .lock()
                            .map_or(true, |v| v.network.as_ref() != Some(&net));
                        v
                    };
                    if changed {
                        let n = net.clone();
                        update(view, wake, move |v| v.network = Some(n));
                    }
                    return Ok(net);
                }
                Err(e) => format!("bad network config at {key}: {e}; waiting for a good one"),
            },
        };
        st.say(msg);
        tokio::time::sleep(CONFIG_POLL).await;
    }
}

/// One lease as listed: parsed, with its etcd metadata.
struct Listed {
    lease: Lease,
    mod_revision: i64,
    lease_id: i64,
}

/// Every lease under `<prefix>/subnets/`, with the revision of the listing. Leases that do not
/// parse are reported once and left out.
async fn list(client: &mut Client, opts: &ClusterOptions) -> Result<(Vec<Listed>, i64), End> {
    let resp = client
        .get(opts.subnets_prefix(), Some(GetOptions::new().with_prefix()))
        .await?;
    let rev = resp.header().map_or(0, |h| h.revision());
    let mut out = Vec::with_capacity(resp.kvs().len());
    for kv in resp.kvs() {
        if let Ok(l) = parse_kv(kv) {
            out.push(Listed {
                lease: l,
                mod_revision: kv.mod_revision(),
                lease_id: kv.lease(),
            });
        }
    }
    Ok((out, rev))
}

fn parse_kv(kv: &KeyValue) -> Result<Lease, String> {
    let key = String::from_utf8_lossy(kv.key());
    Lease::parse(&key, kv.value())
}

/// Replaces the view's leases with a full listing (after acquiring, or after compaction).
fn publish_list(
    view: &Arc<Mutex<View>>,
    wake: &Wake,
    st: &mut State,
    own: SubnetKey,
    leases: Vec<Listed>,
    rev: i64,
) {
    let map: BTreeMap<SubnetKey, Lease> = leases
        .into_iter()
        .filter(|l| l.lease.key.subnet != own.subnet)
        .filter(|l| usable(&l.lease, l.mod_revision, st))
        .map(|l| (l.lease.key, l.lease))
        .collect();
    st.revision = rev;
    update(view, wake, move |v| {
        v.own = Some(own);
        v.leases = map;
        v.listed = true;
        v.revision = rev;
    });
}

/// True if the lease makes a remote node; otherwise reports it once.
fn usable(l: &Lease, rev: i64, st: &mut State) -> bool {
    match l.to_remote() {
        Ok(_) => true,
        Err(e) => {
            if st.reported.insert((l.key.to_key(), rev)) {
                log(format!("ignoring lease {}: {e}", l.key.to_key()));
            }
            false
        }
    }
}

/// Applies one watch response's events to the view as one change.
fn apply_events(
    opts: &ClusterOptions,
    view: &Arc<Mutex<View>>,
    wake: &Wake,
    st: &mut State,
    held: Held,
    events: &[etcd_client::Event],
) -> Result<(), End> {
    let mut puts: Vec<Lease> = Vec::new();
    let mut dels: Vec<SubnetKey> = Vec::new();
    let mut lost = false;
    for ev in events {
        let Some(kv) = ev.kv() else { continue };
        st.revision = st.revision.max(kv.mod_revision());
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        let Some(sk) = SubnetKey::parse(&key) else {
            continue;
        };
        let ours = sk.subnet == held.key.subnet;
        match ev.event_type() {
            EventType::Delete => {
                if ours {
                    lost = true;
                } else {
                    dels.push(sk);
                }
            }
            EventType::Put => match Lease::parse(&key, kv.value()) {
                Ok(l) if ours => {
                    if l.attrs.public_ip != opts.public_ip || kv.lease() != held.id {
                        log(format!(
                            "lease {} was taken over (PublicIP {}); acquiring one again",
                            sk.to_key(),
                            l.attrs.public_ip
                        ));
                        lost = true;
                    }
                }
                Ok(l) => {
                    if usable(&l, kv.mod_revision(), st) {
                        puts.push(l);
                    } else {
                        dels.push(sk);
                    }
                }
                Err(e) => {
                    if st.reported.insert((key.clone(), kv.mod_revision())) {
                        log(format!("ignoring {e}"));
                    }
                    dels.push(sk);
                }
            },
        }
    }
    let rev = st.revision;
    update(view, wake, move |v| {
        for k in dels {
            // A key may change its IPv6 part only by a new key: match on the IPv4 subnet.
            v.leases.retain(|have, _| have.subnet != k.subnet);
        }
        for l in puts {
            v.leases.retain(|have, _| have.subnet != l.key.subnet);
            v.leases.insert(l.key, l);
        }
        v.revision = rev;
    });
    if lost {
        log(format!(
            "lease {} is gone from etcd; acquiring one again",
            held.key.to_key()
        ));
        st.held = None;
        return Err(End::LeaseLost);
    }
    Ok(())
}

/// Acquires this node's lease: takes back the one with our PublicIP, else the requested or
/// previous subnet, else a random free one — each by a transaction that fails if another node
/// got there first (then the leases are listed again and another subnet tried).
async fn acquire(
    client: &mut Client,
    opts: &ClusterOptions,
    net: &NetworkConfig,
    st: &mut State,
) -> Result<(Held, Vec<Listed>, i64), End> {
    let ttl = i64::try_from(opts.lease_ttl.as_secs()).unwrap_or(i64::MAX);
    let previous = opts
        .subnet_lease_file
        .as_deref()
        .and_then(subnet_env::previous_subnet)
        .or_else(|| subnet_env::previous_subnet(&opts.subnet_file));
    for _ in 0..ACQUIRE_ATTEMPTS {
        let (leases, _) = list(client, opts).await?;
        // 1. Ours, still leased: take it back with a fresh etcd lease.
        if let Some(l) = leases
            .iter()
            .find(|l| l.lease.attrs.public_ip == opts.public_ip && net.allows(&l.lease.key.subnet))
        {
            let key = l.lease.key;
            let attrs = attrs_for(opts, net, key.subnet6.is_some());
            let full = format!("{}{}", opts.subnets_prefix(), key.to_key());
            let id = client.lease_grant(ttl, None).await?.id();
            let txn = Txn::new()
                .when([Compare::mod_revision(
                    full.as_str(),
                    CompareOp::Equal,
                    l.mod_revision,
                )])
                .and_then([TxnOp::put(
                    full.as_str(),
                    attrs.to_json(),
                    Some(PutOptions::new().with_lease(id)),
                )]);
            let resp = client.txn(txn).await?;
            if resp.succeeded() {
                let rev = resp.header().map_or(0, |h| h.revision());
                if l.lease_id != 0 && l.lease_id != id {
                    let _ = client.lease_revoke(l.lease_id).await;
                }
                let (leases, rev) = relist_after(client, opts, rev).await?;
                return Ok((Held { key, id }, leases, rev));
            }
            let _ = client.lease_revoke(id).await;
            continue;
        }
        // 2. A subnet to ask for first, then 3. any free one.
        let taken4: HashSet<u128> = leases
            .iter()
            .filter_map(|l| lease::index_of(net, &l.lease.key.subnet))
            .collect();
        let taken6: HashSet<u128> = leases
            .iter()
            .filter_map(|l| l.lease.key.subnet6.as_ref())
            .filter_map(|s| lease::index_of6(net, s))
            .collect();
        let taken_sub: HashSet<Ipv4Cidr> = leases.iter().map(|l| l.lease.key.subnet).collect();
        let wanted = opts
            .requested
            .map(|s| (s, None))
            .into_iter()
            .chain(previous)
            .find(|(s, _)| net.allows(s) && !taken_sub.contains(s));
        let subnet = match wanted {
            Some((s, _)) => s,
            None => {
                let Some(i) = lease::pick(u128::from(net.subnet_count()), &taken4, &mut st.seed)
                else {
                    return Err(End::Retry(format!(
                        "network full: all {} subnets of {} (SubnetMin {} .. SubnetMax {}, /{}) \
                         are leased; widen Network or SubnetMin/SubnetMax in {}",
                        net.subnet_count(),
                        net.network,
                        net.subnet_min,
                        net.subnet_max,
                        net.subnet_len,
                        opts.config_key()
                    )));
                };
                net.subnet(i as u32)
                    .ok_or_else(|| End::Failed("subnet index out of range".into()))?
            }
        };
        let subnet6 = match &net.ipv6 {
            None => None,
            Some(v6) => {
                // The file's subnet6 first, then the one remembered, then any free one.
                let free6 =
                    |s6: &Ipv6Cidr| lease::index_of6(net, s6).is_some_and(|i| !taken6.contains(&i));
                let prev6 = opts
                    .requested6
                    .filter(free6)
                    .or_else(|| previous.and_then(|(_, s6)| s6).filter(free6));
                match prev6 {
                    Some(s6) => Some(s6),
                    None => {
                        let i = lease::pick(v6.subnet_count(), &taken6, &mut st.seed).ok_or_else(
                            || {
                                End::Retry(format!(
                                    "IPv6 network full: every subnet of {} is leased",
                                    v6.network
                                ))
                            },
                        )?;
                        v6.subnet(i)
                    }
                }
            }
        };
        let key = SubnetKey { subnet, subnet6 };
        let attrs = attrs_for(opts, net, subnet6.is_some());
        let full = format!("{}{}", opts.subnets_prefix(), key.to_key());
        let id = client.lease_grant(ttl, None).await?.id();
        let txn = Txn::new()
            .when([Compare::create_revision(full.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                full.as_str(),
                attrs.to_json(),
                Some(PutOptions::new().with_lease(id)),
            )]);
        let resp = client.txn(txn).await?;
        if resp.succeeded() {
            let rev = resp.header().map_or(0, |h| h.revision());
            let (leases, rev) = relist_after(client, opts, rev).await?;
            return Ok((Held { key, id }, leases, rev));
        }
        // Another node won the race for this subnet: drop the unused lease, list again.
        let _ = client.lease_revoke(id).await;
    }
    Err(End::Failed(format!(
        "could not acquire a subnet after {ACQUIRE_ATTEMPTS} attempts (many nodes racing?)"
    )))
}

/// Lists the leases at or after revision `rev` (the one our transaction wrote).
async fn relist_after(
    client: &mut Client,
    opts: &ClusterOptions,
    rev: i64,
) -> Result<(Vec<Listed>, i64), End> {
    let (leases, at) = list(client, opts).await?;
    Ok((leases, at.max(rev)))
}

fn attrs_for(opts: &ClusterOptions, net: &NetworkConfig, _v6: bool) -> LeaseAttrs {
    LeaseAttrs::vxlan(opts.public_ip, net.backend.vni, opts.vtep_mac)
}

/// Writes subnet.env (and the lease file); a failure is logged, the lease is kept.
fn write_files(opts: &ClusterOptions, net: &NetworkConfig, key: &SubnetKey) {
    let env = SubnetEnv {
        network: net.network,
        subnet: key.subnet,
        ipv6: net
            .ipv6
            .as_ref()
            .zip(key.subnet6)
            .map(|(v6, s6): (_, Ipv6Cidr)| (v6.network, s6)),
        mtu: opts.underlay_mtu.saturating_sub(50),
        ipmasq: false,
    };
    let text = env.render();
    let mut files = vec![opts.subnet_file.clone()];
    files.extend(opts.subnet_lease_file.clone());
    for f in files {
        if let Err(e) = subnet_env::write_atomic(&f, &text) {
            log(format!("cannot write {}: {e}", f.display()));
        }
    }
}
