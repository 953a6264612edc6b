//! This node's cache of forward-auth answers (ADR 0011, "Forward auth at request rate"): the
//! answer to `GET /v1/authz/check` for one (key, feature, metric), kept for a short time so the
//! access path does no store read and no policy evaluation per request, as the peers advise
//! their users to do (OpenMeter's entitlement API is rate-limited and says to cache).
//!
//! What keeps it true:
//! - On this node an answer is never stale: every committed change that can alter it
//!   invalidates the tenant's answers right after its commit (every audited mutation naming the
//!   tenant: suspension, plan change, top-up, key revocation, ...; and every ingestion commit
//!   that adds to the tenant's quota usage). An answer computed from reads that overlap a
//!   commit is not kept: each answer is stamped with the invalidation counter of its start, and
//!   is kept and served only while no invalidation of its tenant came after that stamp.
//! - Another node's (or process's) change reaches this node's answers within `ttl` (wall
//!   time, default one second): the bound a deployment with several nodes accepts.
//! - A period boundary of the injected clock (UTC midnight, where quota periods and
//!   `next_period` plan changes begin) ends every answer computed before it.
//! - Refusals served from the cache are counted per (tenant, answer) and written as one
//!   `authz.check.aggregate` audit record by the jobs (the refusal that filled the entry was
//!   audited on its own), as failed authentications are; so a client hammering a used-up quota
//!   costs no write per request.
//!
//! Bounded: at most `ENTRIES_MAX` answers and `TENANTS_TRACKED_MAX` invalidated tenants; past
//! either, the cache starts again (empty), which is always safe.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration as StdDuration, Instant};

use time::OffsetDateTime;

use super::ForwardAuthGrant;

/// Answers kept at most (each a few hundred bytes).
pub const ENTRIES_MAX: usize = 100_000;
/// Tenants whose last invalidation is remembered at most; past it every answer is dropped.
pub const TENANTS_TRACKED_MAX: usize = 100_000;
/// Distinct refusal counters between two flushes at most; past it, refusals are counted in
/// one overflow counter.
pub const REFUSAL_COUNTERS_MAX: usize = 10_000;

/// The question: a key (by its token's SHA-256) asking for a feature and a metric.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccessQuestion {
    pub token_sha256: String,
    pub feature: Option<String>,
    pub metric: Option<String>,
}

/// A kept answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessAnswer {
    Granted(ForwardAuthGrant),
    /// 403 with this detail.
    Forbidden {
        detail: String,
    },
    /// 429 until `until` (the end of the quota's period) with this detail.
    RateLimited {
        detail: String,
        until: OffsetDateTime,
    },
}

#[derive(Debug, Clone)]
struct Entry {
    tenant_id: String,
    key_id: String,
    answer: AccessAnswer,
    /// The invalidation counter when the reads behind the answer began.
    stamp: u64,
    stored_at: Instant,
    /// The injected clock's instant at which the answer ends (the next UTC midnight).
    valid_until: OffsetDateTime,
}

/// A cache hit: the answer and whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedAccess {
    pub tenant_id: String,
    pub key_id: String,
    pub answer: AccessAnswer,
}

/// Refusals served from the cache since the last flush, for one (tenant, key, answer).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RefusalKey {
    /// `None` for the overflow counter.
    pub tenant_id: Option<String>,
    pub key_id: Option<String>,
    pub status: u16,
    pub feature: Option<String>,
    pub metric: Option<String>,
}

/// A flushed refusal counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalCount {
    pub key: RefusalKey,
    pub count: u64,
    pub first_at: OffsetDateTime,
    pub last_at: OffsetDateTime,
}

#[derive(Debug, Default)]
struct State {
    /// Incremented by every invalidation.
    counter: u64,
    /// The counter value of each tenant's last invalidation.
    invalidated_at: HashMap<String, u64>,
    /// The counter value of the last invalidation of everything.
    all_invalidated_at: u64,
    entries: HashMap<AccessQuestion, Entry>,
    refusals: HashMap<RefusalKey, RefusalCount>,
}

impl State {
    fn last_invalidation(&self, tenant_id: &str) -> u64 {
        self.invalidated_at
            .get(tenant_id)
            .copied()
            .unwrap_or(0)
            .max(self.all_invalidated_at)
    }

    fn clear(&mut self) {
        self.counter += 1;
        self.all_invalidated_at = self.counter;
        self.invalidated_at.clear();
        self.entries.clear();
    }
}

/// The per-node cache. `ttl` zero turns it off (every request reads the store).
#[derive(Debug)]
pub struct AccessCache {
    ttl: StdDuration,
    state: Mutex<State>,
}

/// The mark taken before the reads behind an answer (see [`AccessCache::begin`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillStamp(u64);

impl AccessCache {
    pub fn new(ttl: StdDuration) -> Self {
        Self {
            ttl,
            state: Mutex::new(State::default()),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// The kept answer to `question`, if it is still true.
    pub fn get(&self, question: &AccessQuestion, now: OffsetDateTime) -> Option<CachedAccess> {
        if !self.enabled() {
            return None;
        }
        let mut state = self.state.lock().ok()?;
        let entry = state.entries.get(question)?;
        let fresh = entry.stored_at.elapsed() < self.ttl
            && now < entry.valid_until
            && state.last_invalidation(&entry.tenant_id) <= entry.stamp;
        if !fresh {
            state.entries.remove(question);
            return None;
        }
        Some(CachedAccess {
            tenant_id: entry.tenant_id.clone(),
            key_id: entry.key_id.clone(),
            answer: entry.answer.clone(),
        })
    }

    /// Marks the start of the reads behind an answer: an invalidation of its tenant after this
    /// point keeps the answer out of the cache.
    pub fn begin(&self) -> FillStamp {
        FillStamp(self.state.lock().map_or(u64::MAX, |state| state.counter))
    }

    /// Keeps an answer computed from reads that began at `stamp`, unless its tenant was
    /// invalidated since.
    pub fn put(
        &self,
        question: AccessQuestion,
        stamp: FillStamp,
        cached: CachedAccess,
        now: OffsetDateTime,
    ) {
        if !self.enabled() {
            return;
        }
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.last_invalidation(&cached.tenant_id) > stamp.0 || stamp.0 == u64::MAX {
            return;
        }
        if state.entries.len() >= ENTRIES_MAX {
            state.clear();
            return;
        }
        let valid_until = next_utc_midnight(now);
        state.entries.insert(
            question,
            Entry {
                tenant_id: cached.tenant_id,
                key_id: cached.key_id,
                answer: cached.answer,
                stamp: stamp.0,
                stored_at: Instant::now(),
                valid_until,
            },
        );
    }

    /// Ends every kept answer of these tenants (after a committed change to them).
    pub fn invalidate<'a>(&self, tenant_ids: impl IntoIterator<Item = &'a str>) {
        if !self.enabled() {
            return;
        }
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        for tenant_id in tenant_ids {
            if state.invalidated_at.len() >= TENANTS_TRACKED_MAX {
                state.clear();
                continue;
            }
            state.counter += 1;
            let counter = state.counter;
            match state.invalidated_at.get_mut(tenant_id) {
                Some(at) => *at = counter,
                None => {
                    state.invalidated_at.insert(tenant_id.to_owned(), counter);
                }
            }
        }
    }

    /// Ends every kept answer.
    pub fn invalidate_all(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.clear();
        }
    }

    /// Counts one refusal served from the cache.
    pub fn count_refusal(&self, key: RefusalKey, now: OffsetDateTime) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let key =
            if state.refusals.len() >= REFUSAL_COUNTERS_MAX && !state.refusals.contains_key(&key) {
                RefusalKey {
                    tenant_id: None,
                    key_id: None,
                    status: key.status,
                    feature: None,
                    metric: None,
                }
            } else {
                key
            };
        let count = state
            .refusals
            .entry(key.clone())
            .or_insert_with(|| RefusalCount {
                key,
                count: 0,
                first_at: now,
                last_at: now,
            });
        count.count += 1;
        count.last_at = now;
    }

    /// Takes the refusal counters to write (all of them).
    pub fn take_refusals(&self) -> Vec<RefusalCount> {
        let Ok(mut state) = self.state.lock() else {
            return Vec::new();
        };
        let mut taken: Vec<RefusalCount> = state.refusals.drain().map(|(_, count)| count).collect();
        taken.sort_by_key(|count| count.first_at);
        taken
    }

    /// Answers kept now.
    pub fn len(&self) -> usize {
        self.state.lock().map_or(0, |state| state.entries.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The next UTC midnight after `now`.
fn next_utc_midnight(now: OffsetDateTime) -> OffsetDateTime {
    let today = now.to_offset(time::UtcOffset::UTC).date();
    let tomorrow = today.next_day().unwrap_or(today);
    tomorrow.midnight().assume_utc()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn question(token: &str) -> AccessQuestion {
        AccessQuestion {
            token_sha256: token.to_owned(),
            feature: Some("api".to_owned()),
            metric: None,
        }
    }

    fn granted(tenant: &str) -> CachedAccess {
        CachedAccess {
            tenant_id: tenant.to_owned(),
            key_id: "key_1".to_owned(),
            answer: AccessAnswer::Granted(ForwardAuthGrant {
                tenant_id: tenant.to_owned(),
                quota_exceeded: None,
            }),
        }
    }

    const NOW: OffsetDateTime = datetime!(2026-12-05 10:00 UTC);

    #[test]
    fn an_answer_is_kept_until_its_tenant_changes() {
        let cache = AccessCache::new(StdDuration::from_secs(60));
        let stamp = cache.begin();
        cache.put(question("a"), stamp, granted("acme"), NOW);
        assert_eq!(cache.get(&question("a"), NOW), Some(granted("acme")));
        cache.invalidate(["other"]);
        assert_eq!(cache.get(&question("a"), NOW), Some(granted("acme")));
        cache.invalidate(["acme"]);
        assert_eq!(cache.get(&question("a"), NOW), None);
    }

    #[test]
    fn an_answer_read_across_a_change_is_not_kept() {
        let cache = AccessCache::new(StdDuration::from_secs(60));
        let stamp = cache.begin();
        cache.invalidate(["acme"]);
        cache.put(question("a"), stamp, granted("acme"), NOW);
        assert_eq!(cache.get(&question("a"), NOW), None);
        // Another tenant's change does not keep it out.
        let stamp = cache.begin();
        cache.invalidate(["other"]);
        cache.put(question("a"), stamp, granted("acme"), NOW);
        assert!(cache.get(&question("a"), NOW).is_some());
    }

    #[test]
    fn midnight_ends_every_answer() {
        let cache = AccessCache::new(StdDuration::from_secs(60));
        cache.put(question("a"), cache.begin(), granted("acme"), NOW);
        assert!(
            cache
                .get(&question("a"), datetime!(2026-12-05 23:59:59 UTC))
                .is_some()
        );
        assert_eq!(
            cache.get(&question("a"), datetime!(2026-12-06 0:00 UTC)),
            None
        );
    }

    #[test]
    fn the_wall_time_bound_ends_answers() {
        let cache = AccessCache::new(StdDuration::from_nanos(1));
        cache.put(question("a"), cache.begin(), granted("acme"), NOW);
        std::thread::sleep(StdDuration::from_millis(2));
        assert_eq!(cache.get(&question("a"), NOW), None);
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let cache = AccessCache::new(StdDuration::ZERO);
        cache.put(question("a"), cache.begin(), granted("acme"), NOW);
        assert!(cache.is_empty());
    }

    #[test]
    fn refusals_are_counted_and_taken_once() {
        let cache = AccessCache::new(StdDuration::from_secs(60));
        let key = RefusalKey {
            tenant_id: Some("acme".to_owned()),
            key_id: Some("key_1".to_owned()),
            status: 429,
            feature: None,
            metric: Some("requests".to_owned()),
        };
        cache.count_refusal(key.clone(), NOW);
        cache.count_refusal(key.clone(), NOW + time::Duration::seconds(3));
        let taken = cache.take_refusals();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].count, 2);
        assert_eq!(taken[0].last_at, NOW + time::Duration::seconds(3));
        assert!(cache.take_refusals().is_empty());
    }
}
