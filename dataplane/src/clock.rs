//! A process-wide monotonic millisecond clock (flow idle timers, ICMP rate limits).

use std::sync::OnceLock;
use std::time::Instant;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds since the process's clock started.
#[inline]
pub fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}
