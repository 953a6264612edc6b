//! The injected clock: every time the service layer reads comes from here, so tests can move
//! time (late windows, day close, tombstones, approval expiry) without sleeping.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use time::{Duration, OffsetDateTime};

/// A source of the current UTC time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> OffsetDateTime;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock {
    micros: AtomicI64,
    lock: Mutex<()>,
}

impl ManualClock {
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            micros: AtomicI64::new(companyos_domain::time_util::to_micros(start)),
            lock: Mutex::new(()),
        }
    }

    pub fn set(&self, at: OffsetDateTime) {
        let _guard = self.lock.lock();
        self.micros
            .store(companyos_domain::time_util::to_micros(at), Ordering::SeqCst);
    }

    pub fn advance(&self, by: Duration) {
        let _guard = self.lock.lock();
        let micros = i64::try_from(by.whole_microseconds()).unwrap_or(i64::MAX);
        self.micros.fetch_add(micros, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        companyos_domain::time_util::from_micros(self.micros.load(Ordering::SeqCst))
    }
}

/// A clock that runs with the system clock, shifted by a fixed offset
/// (`COMPANYOS_CLOCK_OFFSET_SECONDS`, for game days and acceptance checks of time rules).
#[derive(Debug, Clone, Copy)]
pub struct OffsetClock {
    pub offset: Duration,
}

impl Clock for OffsetClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.offset
    }
}
