//! Failed authentication, counted per source address and minute, so an anonymous flood costs
//! what it is worth: a source's first failure in a minute is audited on its own as always, the
//! rest of that minute only counted, and written as one `auth.failed.aggregate` audit record when
//! the minute is over (the flush runs with the background jobs on every node, and at shutdown).
//! Past `auth_failures_per_minute_max` a source's failures are answered 429 with no audit write.
//!
//! The counters live in this node's memory and are not shared between nodes: this is a cost
//! limiter, not a correctness matter (every failure is still counted in an audit record of the
//! node that saw it; a crash loses at most the current minute's count of repeated failures).
//! The number of tracked sources is bounded; past it, new sources share one overflow bucket.
//! An IPv6 source is its /64 (one host is usually given a whole /64, so counting single
//! addresses would let it start afresh with every address it picks).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use time::OffsetDateTime;

/// Upper bound on the source addresses tracked at once (each costs well under 100 bytes).
pub const SOURCES_MAX: usize = 10_000;
/// The aggregation window.
pub const WINDOW_SECONDS: i64 = 60;

/// Who failed: an address, or the shared bucket of sources past [`SOURCES_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Address(IpAddr),
    Overflow,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Address(ip @ IpAddr::V4(_)) => write!(f, "{ip}"),
            Source::Address(ip @ IpAddr::V6(_)) => write!(f, "{ip}/64"),
            Source::Overflow => f.write_str("overflow"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    /// Unix seconds of the window's start (a multiple of [`WINDOW_SECONDS`]).
    start: i64,
    /// Failures in the window, the individually audited first one included.
    count: u64,
    /// Of those, answered 429.
    limited: u64,
}

/// What to do with one more failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The source's first failure of the window: audit it on its own.
    Audit,
    /// Counted for the window's aggregate record; answer 401 without writing.
    Counted,
    /// Over the rate: answer 429, retry after this many seconds; nothing is written.
    Limited { retry_after_seconds: u64 },
}

/// A window that is over, to be written as one aggregate audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    pub source: Source,
    pub window_start: OffsetDateTime,
    pub count: u64,
    pub limited: u64,
}

/// The per-node counters.
#[derive(Debug)]
pub struct AuthFailures {
    per_minute_max: u64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    windows: HashMap<Source, Window>,
    /// Windows that ended while their source failed again, waiting for the flush.
    ended: Vec<Aggregate>,
}

fn window_start(now: OffsetDateTime) -> i64 {
    now.unix_timestamp().div_euclid(WINDOW_SECONDS) * WINDOW_SECONDS
}

fn aggregate(source: Source, window: Window) -> Option<Aggregate> {
    // A window with only its first failure has nothing left to tell.
    (window.count > 1).then(|| Aggregate {
        source,
        window_start: OffsetDateTime::from_unix_timestamp(window.start)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        count: window.count,
        limited: window.limited,
    })
}

impl AuthFailures {
    pub fn new(per_minute_max: u64) -> Self {
        Self {
            per_minute_max: per_minute_max.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// Records one failure of `address` and says how to answer it.
    pub fn record(&self, address: IpAddr, now: OffsetDateTime) -> Verdict {
        let address = source_network(address);
        let Ok(mut state) = self.state.lock() else {
            return Verdict::Audit;
        };
        let start = window_start(now);
        let mut source = Source::Address(address);
        if !state.windows.contains_key(&source) && state.windows.len() >= SOURCES_MAX {
            source = Source::Overflow;
        }
        let ended = match state.windows.get_mut(&source) {
            Some(window) if window.start == start => {
                window.count += 1;
                if window.count > self.per_minute_max {
                    window.limited += 1;
                    return Verdict::Limited {
                        retry_after_seconds: retry_after(now),
                    };
                }
                return Verdict::Counted;
            }
            Some(window) => Some(*window),
            None => None,
        };
        if let Some(aggregate) = ended.and_then(|w| aggregate(source, w)) {
            state.ended.push(aggregate);
        }
        state.windows.insert(
            source,
            Window {
                start,
                count: 1,
                limited: 0,
            },
        );
        // The overflow bucket audits only its first failure too.
        Verdict::Audit
    }

    /// Takes the aggregates of every window that is over (every window when `all`, at
    /// shutdown), and forgets those windows, freeing their slots.
    pub fn take_ended(&self, now: OffsetDateTime, all: bool) -> Vec<Aggregate> {
        let Ok(mut state) = self.state.lock() else {
            return Vec::new();
        };
        let start = window_start(now);
        let mut out = std::mem::take(&mut state.ended);
        state.windows.retain(|source, window| {
            if all || window.start < start {
                out.extend(aggregate(*source, *window));
                false
            } else {
                true
            }
        });
        out
    }
}

/// The address failures are counted under: an IPv4 address (also when IPv4-mapped), or the
/// /64 network of an IPv6 address.
pub fn source_network(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

fn retry_after(now: OffsetDateTime) -> u64 {
    let left = window_start(now) + WINDOW_SECONDS - now.unix_timestamp();
    u64::try_from(left.max(1)).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn first_audited_rest_counted_then_limited_then_aggregated() {
        let failures = AuthFailures::new(3);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let t = datetime!(2026-03-02 12:00:10 UTC);
        assert_eq!(failures.record(ip, t), Verdict::Audit);
        assert_eq!(failures.record(ip, t), Verdict::Counted);
        assert_eq!(failures.record(ip, t), Verdict::Counted);
        assert_eq!(
            failures.record(ip, t),
            Verdict::Limited {
                retry_after_seconds: 50
            }
        );
        assert!(failures.take_ended(t, false).is_empty(), "still running");
        let later = datetime!(2026-03-02 12:01:00 UTC);
        let ended = failures.take_ended(later, false);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].count, 4);
        assert_eq!(ended[0].limited, 1);
        assert_eq!(ended[0].window_start, datetime!(2026-03-02 12:00:00 UTC));
        assert_eq!(failures.record(ip, later), Verdict::Audit);
        assert!(
            failures.take_ended(later, true).is_empty(),
            "one failure only"
        );
    }

    #[test]
    fn an_ipv6_source_is_its_64() {
        let failures = AuthFailures::new(100);
        let t = datetime!(2026-03-02 12:00:10 UTC);
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap_or(IpAddr::from([0u8; 16]));
        let other: IpAddr = "2001:db8:1:2:ffff::9"
            .parse()
            .unwrap_or(IpAddr::from([0u8; 16]));
        assert_eq!(failures.record(one, t), Verdict::Audit);
        assert_eq!(failures.record(other, t), Verdict::Counted, "same /64");
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap_or(IpAddr::from([0u8; 16]));
        assert_eq!(source_network(mapped), IpAddr::from([10, 0, 0, 1]));
    }

    #[test]
    fn sources_are_bounded() {
        let failures = AuthFailures::new(100);
        let t = datetime!(2026-03-02 12:00:10 UTC);
        for i in 0..SOURCES_MAX as u32 + 5 {
            failures.record(IpAddr::from(i.to_be_bytes()), t);
        }
        let state = failures.state.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(state.windows.len(), SOURCES_MAX + 1, "the overflow bucket");
        assert_eq!(state.windows[&Source::Overflow].count, 5);
    }
}
