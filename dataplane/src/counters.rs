//! Counters: per worker, written only by their worker, summed when read.
//!
//! Each worker owns one [`WorkerCounters`]; it bumps a counter with a relaxed load and store
//! (no read-modify-write instruction, no cache line shared with another writer). The control
//! side reads every worker's counters and adds them up.

use std::sync::atomic::{AtomicU64, Ordering};

/// A counter written by exactly one thread.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        // Single writer: a load and a store are enough, and cheaper than fetch_add.
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }
    #[inline]
    pub fn inc(&self) {
        self.add(1)
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

macro_rules! reasons {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident => $s:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum $name { $($(#[$vm])* $v,)* }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v,)*];
            pub const COUNT: usize = [$($name::$v,)*].len();
            /// The name shown by `vxctl stats` and the metrics endpoint.
            pub fn name(self) -> &'static str {
                match self { $($name::$v => $s,)* }
            }
        }
    };
}

reasons! {
    /// Why a packet was dropped.
    DropReason {
        /// Truncated or malformed headers.
        Malformed => "malformed",
        /// 802.1Q-tagged frame on a port that carries untagged traffic only.
        Vlan => "vlan",
        /// VXLAN header without the I flag (RFC 7348 section 5).
        NoIFlag => "vxlan_no_i_flag",
        /// VNI that no local port belongs to.
        UnknownVni => "unknown_vni",
        /// VXLAN from an address that is no known node's VTEP.
        UnknownVtep => "unknown_source_vtep",
        /// Source and destination belong to different tenants.
        VniMismatch => "vni_mismatch",
        /// No route to the destination address.
        NoRoute => "no_route",
        /// Unicast to a MAC the switch does not know.
        UnknownUnicast => "unknown_unicast",
        /// Broadcast or multicast other than ARP (flooding is off).
        Broadcast => "broadcast",
        /// ARP the switch does not answer (unknown target, replies, gratuitous).
        Arp => "arp_unanswered",
        /// TTL expired in transit (an ICMP time-exceeded was sent unless rate-limited).
        Ttl => "ttl_exceeded",
        /// Larger than the tunnel MTU (an ICMP frag-needed / packet-too-big was sent when DF).
        Mtu => "mtu_exceeded",
        /// Not IPv4 where the switch routes (e.g. IPv6 sent to the gateway).
        Unsupported => "unsupported",
        /// The switch has no local node configuration yet.
        NotConfigured => "not_configured",
        /// The output port has no queue on this worker, or is gone.
        PortDown => "port_down",
        /// The kernel refused the write or send.
        TxError => "tx_error",
        /// A frame that came in on a port and would go out the same port.
        Hairpin => "hairpin",
        /// A flow's drop action (or empty action list).
        FlowDrop => "flow_drop",
        /// No flow matched and the table's miss policy drops.
        TableMiss => "table_miss",
        /// resubmit / goto_table chains deeper than 64.
        ResubmitDepth => "resubmit_depth",
        /// VXLAN whose outer ECN is CE around a Not-ECT inner packet (RFC 6040 section 4.2:
        /// the congestion mark cannot be passed on; Linux counts it as an rx error).
        EcnCeNotEct => "ecn_ce_not_ect",
        /// More than 4,096 table lookups (resubmit, goto_table) for one packet.
        ResubmitLimit => "resubmit_limit",
        /// IPv6 neighbour solicitations the switch does not answer (unknown target, duplicate
        /// address detection, malformed).
        Nd => "nd_unanswered",
        /// Broadcast, unknown-unicast and multicast frames a port sent to `flood` beyond its
        /// budget (`--bum-rate`): not replicated.
        BumRateLimited => "bum_rate_limited",
        /// IPv4 headers whose checksum does not verify (RFC 1812 section 5.2.2: a router
        /// discards them rather than forward them).
        Ipv4Checksum => "ipv4_bad_checksum",
        /// A flow's group action named a group that is not there.
        NoGroup => "group_missing",
    }
}

reasons! {
    /// Things worth counting that are not drops.
    Event {
        /// VXLAN packets whose reserved bits were set (ignored, as RFC 7348 says).
        VxlanReservedBits => "vxlan_reserved_bits",
        /// VXLAN packets with a zero outer UDP checksum (accepted).
        ZeroUdpChecksum => "vxlan_zero_udp_checksum",
        ArpReply => "arp_replies",
        IcmpTimeExceeded => "icmp_time_exceeded_sent",
        IcmpFragNeeded => "icmp_frag_needed_sent",
        IcmpPacketTooBig => "icmpv6_packet_too_big_sent",
        /// Generated ICMP suppressed by the rate limiter.
        IcmpRateLimited => "icmp_rate_limited",
        /// Inner checksums completed in software before encapsulation.
        ChecksumCompleted => "inner_checksum_completed",
        /// A source-port socket could not be bound; the packet left from the VXLAN port.
        SrcPortFallback => "src_port_fallback",
        Encapsulated => "encapsulated",
        Decapsulated => "decapsulated",
        /// Datagrams received coalesced by UDP GRO.
        GroSegments => "udp_gro_segments",
        /// UDP GSO sends.
        GsoSends => "udp_gso_sends",
        /// A GSO send failed; the worker sends one datagram per call for a second, then tries
        /// GSO again.
        GsoFallback => "udp_gso_fallback",
        /// Frames from TAPs (not super-frames) sent together, several per UDP GSO send.
        GsoBatched => "udp_gso_batched_frames",
        /// TCP super-frames from a TAP segmented in software.
        TsoSuperframes => "tso_superframes_segmented",
        /// Merged TCP super-frames written to a TAP with a GSO header.
        TapGsoWrites => "tap_gso_writes",
        /// TCP segments merged into those super-frames.
        TapGsoSegments => "tap_gso_segments",
        /// Flow lookups answered by the exact-match cache.
        FlowCacheHit => "flow_cache_hits",
        /// Flow lookups that went to the classifier.
        FlowCacheMiss => "flow_cache_misses",
        /// Frames copied to a capture.
        Captured => "captured",
        /// Frames a capture could not take (its ring was full).
        CaptureLost => "capture_lost",
        /// An underlay send failed with EMSGSIZE (larger than the path MTU; it was not sent,
        /// nor fragmented): the path MTU is read again and pods get ICMP frag-needed.
        UnderlayMsgSize => "underlay_emsgsize",
        /// The path MTU to a VTEP was read from the kernel after an EMSGSIZE.
        PathMtuLearned => "path_mtu_learned",
        /// UDP GSO turned back on after a failure turned it off for a while.
        GsoRetried => "udp_gso_retries",
        /// TCP segments from the tunnel whose IPv4 or TCP checksum did not verify: not merged,
        /// written to the pod alone and unmarked, so its kernel checks and drops them.
        GroCsumBad => "gro_csum_bad",
        /// Remote nodes a flood did not replicate to (beyond `--flood-max-nodes`).
        FloodNodesSkipped => "flood_nodes_skipped",
        /// A source-port socket could not be opened (no file descriptor left, or the port is
        /// taken); its flows leave from the VXLAN port until a retry succeeds.
        SrcPortOpenFailed => "src_port_open_failed",
        /// IPv6 neighbour advertisements sent in answer to solicitations.
        NdAdvert => "nd_advertisements",
        Icmpv6TimeExceeded => "icmpv6_time_exceeded_sent",
        /// Frames announcing the gateway written into a pod's TAP when its port is attached
        /// (after a restart too): an ARP request from the gateway for the pod's address and
        /// a gratuitous ARP, plus a neighbour solicitation and advertisement on dual-stack
        /// pods, so the pod has its neighbour entry for the gateway again at once.
        GatewayAnnounced => "gateway_announced",
        /// `learn` actions handed to the switch.
        LearnQueued => "learn_queued",
        /// `learn` actions not sent again: the same learn went out within 100 ms.
        LearnRepeat => "learn_repeats_suppressed",
        /// `learn` actions lost because the switch's learn queue was full (the packet went on).
        LearnQueueFull => "learn_queue_full",
        /// TCP super-frames sent to the underlay in one write through its TAP, with
        /// UDP-tunnel GSO (the kernel segments).
        TnlGsoWrites => "tnl_gso_writes",
        /// Super-frames read from the underlay's TAP in one read (never segmented).
        TnlGsoReads => "tnl_gso_reads",
        /// Super-frames that went the UDP-socket way because the remote VTEP's MAC address
        /// was not known yet.
        TnlNeighUnknown => "tnl_neigh_unknown",
        /// Super-frames that went the UDP-socket way for another reason (too large for one
        /// datagram or the path MTU, headers the tunnel header cannot describe, a failed write).
        TnlFallback => "tnl_fallback",
        /// Frames read from the underlay's TAP that were dropped (not VXLAN to this VTEP,
        /// bad outer headers, a GSO frame without a partial checksum).
        TnlRxDropped => "tnl_rx_dropped",
        /// Workers that run without the underlay TAP although it was asked for (the kernel
        /// refused UDP-tunnel GSO, or setting it up failed): one per worker.
        TnlUnavailable => "tnl_unavailable",
        /// Times a worker went to sleep in epoll (each costs a wake-up when work comes).
        PollSleeps => "worker_sleeps",
        /// Polls without sleeping (`--poll adaptive|busy`, `--spin-us`) that found work: a
        /// wake-up saved.
        PollHits => "worker_poll_hits",
        /// Polls without sleeping that found nothing.
        PollEmpty => "worker_polls_empty",
        /// Adaptive polling stopped early because a yield between polls let another task
        /// run (the CPU was wanted): the worker slept until the next work.
        PollYielded => "worker_poll_yields",
        /// Segments of a decapsulated GRO batch that got the verdict of the batch's first
        /// segment replayed instead of being classified (`--rx-classify batch`).
        RxBatchReplayed => "rx_batch_replayed",
        /// Later segments of a GRO batch classified alone: their headers differ from the
        /// first's beyond the per-segment fields, or the first's verdict is not replayable.
        RxBatchClassified => "rx_batch_classified_alone",
    }
}

/// Largest port number the counters track.
pub const MAX_PORTS: usize = 1024;

/// Counters of one port on one worker.
#[derive(Debug, Default)]
pub struct PortCounters {
    pub rx_packets: Counter,
    pub rx_bytes: Counter,
    pub tx_packets: Counter,
    pub tx_bytes: Counter,
    pub tx_errors: Counter,
}

/// Counters of one flow on one worker.
#[derive(Debug, Default)]
pub struct FlowCounters {
    pub packets: Counter,
    pub bytes: Counter,
    /// Milliseconds (on [`crate::clock`]) of the last hit.
    pub last_hit_ms: Counter,
}

/// Counters of one table on one worker.
#[derive(Debug, Default)]
pub struct TableCounters {
    pub lookups: Counter,
    pub matches: Counter,
}

/// All counters of one worker.
#[derive(Debug)]
pub struct WorkerCounters {
    pub drops: [Counter; DropReason::COUNT],
    pub events: [Counter; Event::COUNT],
    pub ports: Box<[PortCounters]>,
    /// Per flow id; sized once for [`crate::flow::MAX_FLOWS`].
    pub flows: Box<[FlowCounters]>,
    pub tables: Box<[TableCounters]>,
    /// Nanoseconds spent processing (not sleeping in poll).
    pub busy_ns: Counter,
    pub loops: Counter,
}

impl Default for WorkerCounters {
    fn default() -> Self {
        WorkerCounters {
            drops: Default::default(),
            events: std::array::from_fn(|_| Counter::default()),
            ports: (0..MAX_PORTS).map(|_| PortCounters::default()).collect(),
            flows: (0..crate::flow::MAX_FLOWS)
                .map(|_| FlowCounters::default())
                .collect(),
            tables: (0..255).map(|_| TableCounters::default()).collect(),
            busy_ns: Counter::default(),
            loops: Counter::default(),
        }
    }
}

impl WorkerCounters {
    #[inline]
    pub fn drop(&self, r: DropReason) {
        self.drops[r as usize].inc()
    }
    #[inline]
    pub fn event(&self, e: Event) {
        self.events[e as usize].inc()
    }
    #[inline]
    pub fn event_n(&self, e: Event, n: u64) {
        self.events[e as usize].add(n)
    }
    #[inline]
    pub fn port(&self, no: u16) -> Option<&PortCounters> {
        self.ports.get(no as usize)
    }
    #[inline]
    pub fn rx(&self, no: u16, bytes: usize) {
        if let Some(p) = self.port(no) {
            p.rx_packets.inc();
            p.rx_bytes.add(bytes as u64);
        }
    }
    #[inline]
    pub fn tx(&self, no: u16, bytes: usize) {
        if let Some(p) = self.port(no) {
            p.tx_packets.inc();
            p.tx_bytes.add(bytes as u64);
        }
    }
    /// Credits a flow with one packet of `bytes` at `now_ms`.
    #[inline]
    pub fn flow_hit(&self, id: u32, bytes: usize, now_ms: u64) {
        if let Some(f) = self.flows.get(id as usize) {
            f.packets.inc();
            f.bytes.add(bytes as u64);
            f.last_hit_ms.0.store(now_ms, Ordering::Relaxed);
        }
    }
    #[inline]
    pub fn table_lookup(&self, table: u8, matched: bool) {
        if let Some(t) = self.tables.get(table as usize) {
            t.lookups.inc();
            if matched {
                t.matches.inc();
            }
        }
    }
    #[inline]
    pub fn tx_error(&self, no: u16) {
        if let Some(p) = self.port(no) {
            p.tx_errors.inc();
        }
    }
}

/// Sum of a counter over workers.
pub fn sum<'a>(
    workers: impl IntoIterator<Item = &'a WorkerCounters>,
    f: impl Fn(&WorkerCounters) -> u64,
) -> u64 {
    workers.into_iter().map(f).sum()
}

reasons! {
    /// Control connections and requests that failed, by why. Counted by the control side
    /// (the socket server and batches), shown with the events by `vxctl stats`.
    ControlError {
        /// A peer that is neither root nor in `--socket-group`: told why, then closed.
        Refused => "control_refused",
        /// A message that is not JSON of the protocol, or a request before hello.
        Malformed => "control_malformed",
        /// A length prefix over the message limit: answered, then closed.
        TooLarge => "control_too_large",
        /// No hello, or not the rest of a started message, within the time limit: closed.
        Timeout => "control_timeouts",
        /// A client that left its replies unread past the time limit: closed.
        SlowReader => "control_slow_readers",
        /// `accept` failed (out of file descriptors, ...); retried with back-off.
        AcceptFailed => "control_accept_failed",
        /// A port whose TAP could not be created or attached (out of file descriptors, a
        /// device of that name that is no TAP, ...): its batch was refused and rolled back.
        PortCreateFailed => "port_create_failed",
        /// OpenFlow connections accepted (management socket, ptcp, controller).
        OpenFlowConnections => "openflow_connections",
        /// OpenFlow peers refused (neither root nor in `--socket-group`).
        OpenFlowRefused => "openflow_refused",
        /// OpenFlow error messages sent back (bad requests, refused flow mods, ...).
        OpenFlowErrors => "openflow_errors",
        /// OpenFlow connections closed for garbage, a missing hello, a message that did not
        /// arrive whole in time, or replies left unread.
        OpenFlowClosed => "openflow_closed",
    }
}

/// The control side's counters. Several threads write them (the socket server, blocking
/// tasks), rarely, so they add atomically.
#[derive(Debug, Default)]
pub struct ControlCounters {
    errors: [AtomicU64; ControlError::COUNT],
}

impl ControlCounters {
    pub fn inc(&self, e: ControlError) {
        self.errors[e as usize].fetch_add(1, Ordering::Relaxed);
    }
    pub fn get(&self, e: ControlError) -> u64 {
        self.errors[e as usize].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.extend(Event::ALL.iter().map(|e| e.name()));
        names.extend(ControlError::ALL.iter().map(|e| e.name()));
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
    }

    #[test]
    fn counters_add() {
        let w = WorkerCounters::default();
        w.drop(DropReason::Ttl);
        w.drop(DropReason::Ttl);
        w.rx(3, 100);
        assert_eq!(w.drops[DropReason::Ttl as usize].get(), 2);
        assert_eq!(w.ports[3].rx_bytes.get(), 100);
        w.rx(60000, 1); // out of range: ignored, no panic
    }
}
