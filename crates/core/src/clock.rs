//! Time is injected so retention, expiry and cooling-off are tested by moving a clock.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use time::OffsetDateTime;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;
    fn now_ms(&self) -> i64 {
        (self.now().unix_timestamp_nanos() / 1_000_000) as i64
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when told to; clones share the same time.
#[derive(Debug, Clone)]
pub struct FakeClock(Arc<AtomicI64>);

impl FakeClock {
    pub fn at_ms(ms: i64) -> FakeClock {
        FakeClock(Arc::new(AtomicI64::new(ms)))
    }
    pub fn advance(&self, d: time::Duration) {
        self.0
            .fetch_add(d.whole_milliseconds() as i64, Ordering::SeqCst);
    }
}

impl Default for FakeClock {
    fn default() -> Self {
        // 2026-01-01T00:00:00Z
        FakeClock::at_ms(1_767_225_600_000)
    }
}

impl Clock for FakeClock {
    fn now(&self) -> OffsetDateTime {
        let ms = self.0.load(Ordering::SeqCst);
        OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// Milliseconds since the epoch to RFC 3339, for receipts and API bodies.
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
