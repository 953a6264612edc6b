//! The one retry schedule of CompanyOS, shared by the SDK's client and the server's outbox:
//! exponential backoff from an initial delay, doubled per attempt, capped, with optional full
//! jitter (AWS Architecture Blog, "Exponential Backoff And Jitter").

use std::time::Duration;

/// Doublings after which the ceiling is the cap whatever the initial delay (2^30 × 1 ns > 1 s).
const DOUBLINGS_MAX: u32 = 40;

/// An exponential backoff schedule: `initial × 2^(attempt−1)`, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
}

impl Backoff {
    /// `initial` must be positive and at most `max`: a schedule that never waits or whose cap
    /// is below its start is a programming error.
    pub fn new(initial: Duration, max: Duration) -> Self {
        assert!(!initial.is_zero(), "a backoff starts above zero");
        assert!(initial <= max, "a backoff's cap is at least its start");
        Self { initial, max }
    }

    pub fn max(&self) -> Duration {
        self.max
    }

    /// The longest wait before retry number `attempt` (1 for the first retry).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(DOUBLINGS_MAX);
        self.initial
            .checked_mul(1u32 << doublings.min(31))
            .map_or(self.max, |delay| delay.min(self.max))
    }

    /// Full jitter: a delay drawn uniformly from `[0, ceiling(attempt))` by `random`, any
    /// `u64` (from the caller's random source, so this stays free of I/O and testable).
    pub fn with_full_jitter(&self, attempt: u32, random: u64) -> Duration {
        const STEPS: u64 = 10_000;
        let fraction_steps = u32::try_from(random % STEPS).unwrap_or(0);
        self.ceiling(attempt) * fraction_steps / u32::try_from(STEPS).unwrap_or(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_start_up_to_the_cap() {
        let backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(3600));
        assert_eq!(backoff.ceiling(1), Duration::from_secs(2));
        assert_eq!(backoff.ceiling(2), Duration::from_secs(4));
        assert_eq!(backoff.ceiling(11), Duration::from_secs(2048));
        assert_eq!(backoff.ceiling(12), Duration::from_secs(3600));
        assert_eq!(backoff.ceiling(u32::MAX), Duration::from_secs(3600));
    }

    #[test]
    fn jitter_stays_below_the_ceiling() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        for random in [0, 1, 9_999, 10_000, u64::MAX] {
            assert!(backoff.with_full_jitter(3, random) < backoff.ceiling(3));
        }
        assert_eq!(
            backoff.with_full_jitter(1, 5_000),
            Duration::from_millis(50)
        );
    }
}
