//! Tenants' plan histories kept in memory between ingestion groups: every group needs the
//! history of each tenant it meters (which quotas cover its rows, which thresholds apply), and
//! reading them per group was the largest part of keeping quota state. An entry is used only at
//! the revision of the shared `plan_history_revision` row it was read at, which every written
//! assignment increments in its own transaction, so a node never acts on a history another node
//! has changed (ADR 0011).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use companyos_domain::catalog::PlanAssignment;

/// Tenants kept in memory at most; past it the cache starts again (tenants that send usage
/// but do not exist are kept too, with an empty history, so they cost no read either).
const HISTORY_CACHE_TENANTS_MAX: usize = 100_000;

/// A tenant's plan history in `seq` order (empty for a tenant without one).
pub(crate) type History = Arc<[PlanAssignment]>;

#[derive(Debug, Default)]
pub(crate) struct HistoryCache {
    state: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    /// The revision every entry was read at.
    revision: i64,
    histories: HashMap<String, History>,
}

impl HistoryCache {
    /// The histories of `tenants` held at `revision`, and the tenants it does not hold. A
    /// newer revision empties the cache; an older one (a slow group that read the counter
    /// before a plan change) is answered from nothing.
    pub(crate) fn lookup<'t>(
        &self,
        revision: i64,
        tenants: &[&'t str],
    ) -> (HashMap<String, History>, Vec<&'t str>) {
        let mut found = HashMap::with_capacity(tenants.len());
        let mut missing = Vec::new();
        let Ok(mut state) = self.state.lock() else {
            return (found, tenants.to_vec());
        };
        if revision > state.revision {
            state.histories.clear();
            state.revision = revision;
        }
        for tenant in tenants {
            match state.histories.get(*tenant) {
                Some(history) if state.revision == revision => {
                    found.insert((*tenant).to_owned(), history.clone());
                }
                _ => missing.push(*tenant),
            }
        }
        (found, missing)
    }

    /// Keeps histories read at `revision`, unless the cache has moved on to another one.
    pub(crate) fn keep(&self, revision: i64, histories: &HashMap<String, History>) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if revision > state.revision {
            state.histories.clear();
            state.revision = revision;
        }
        if revision != state.revision {
            return;
        }
        if state.histories.len() + histories.len() > HISTORY_CACHE_TENANTS_MAX {
            state.histories.clear();
        }
        for (tenant, history) in histories {
            state.histories.insert(tenant.clone(), history.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(tenant: &str) -> HashMap<String, History> {
        HashMap::from([(tenant.to_owned(), History::from(Vec::new()))])
    }

    #[test]
    fn entries_serve_only_their_revision() {
        let cache = HistoryCache::default();
        let (found, missing) = cache.lookup(3, &["acme"]);
        assert!(found.is_empty());
        assert_eq!(missing, ["acme"]);
        cache.keep(3, &one("acme"));
        let (found, missing) = cache.lookup(3, &["acme", "beta"]);
        assert!(found.contains_key("acme"));
        assert_eq!(missing, ["beta"]);
        // A plan change anywhere (revision 4) makes every entry stale.
        let (found, missing) = cache.lookup(4, &["acme"]);
        assert!(found.is_empty());
        assert_eq!(missing, ["acme"]);
        // A slow reader of revision 3 neither uses nor writes the cache at 4.
        cache.keep(3, &one("acme"));
        assert_eq!(cache.lookup(4, &["acme"]).1, ["acme"]);
        cache.keep(4, &one("acme"));
        assert!(cache.lookup(3, &["acme"]).0.is_empty());
        assert!(cache.lookup(4, &["acme"]).0.contains_key("acme"));
    }
}
