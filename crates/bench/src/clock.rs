//! One monotonic time base for the whole bench process, so the load
//! generator can write a time into a body and the sink can subtract it.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Microseconds since the first call in this process.
pub fn now_us() -> i64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    epoch.elapsed().as_micros() as i64
}

/// The instant `us` microseconds after the epoch.
pub fn instant_at(us: i64) -> Instant {
    let epoch = *EPOCH.get_or_init(Instant::now);
    epoch + std::time::Duration::from_micros(us.max(0) as u64)
}
