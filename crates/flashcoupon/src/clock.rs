//! The platform's clock: system time plus an offset that only tests move.
//!
//! Campaign windows and coupon validity are decided against this clock, so
//! a test can step past an opening or an expiry instead of sleeping. Token
//! expiry is not: `jsonwebtoken` checks it against the system time.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::domain::timestamp::Timestamp;

#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    pub fn now(&self) -> Timestamp {
        let system = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Timestamp(system + self.offset_ms.load(Ordering::Relaxed))
    }

    /// How far tests moved this clock from the system's, in ms (0 in
    /// production): what a shared clock elsewhere (Redis, PostgreSQL) adds.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// Move this clock (and every clone of it) forward.
    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as i64, Ordering::Relaxed);
    }
}
