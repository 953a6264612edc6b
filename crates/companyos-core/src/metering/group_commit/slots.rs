//! The group's state in memory: a slot per tenant the group names (status, locked ledger head,
//! closed days, counters, exact rollup totals, the events appended), and what the group writes
//! besides (rejections, conflicts, source ranges, metrics seen).

#[allow(unused_imports)]
use super::*;

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Counters {
    pub(super) accepted: i64,
    pub(super) duplicates: i64,
    pub(super) late: i64,
    pub(super) invalid: i64,
    pub(super) conflicts: i64,
    pub(super) unsigned: i64,
    pub(super) undeclared: i64,
}

impl Counters {
    /// Counts an appended event: accepted or late, and unsigned or undeclared when it is.
    pub(super) fn count_stored(&mut self, checked: &Checked, late: bool) {
        if late {
            self.late += 1;
        } else {
            self.accepted += 1;
        }
        if checked.flags.contains(&"unsigned") {
            self.unsigned += 1;
        }
        if checked.undeclared {
            self.undeclared += 1;
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Rollup {
    pub(super) sum: Decimal,
    pub(super) max: Decimal,
    pub(super) events: i64,
}

impl Rollup {
    const EMPTY: Rollup = Rollup {
        sum: Decimal::ZERO,
        max: Decimal::ZERO,
        events: 0,
    };
}

/// (day, service, metric, unit): one rollup row of a tenant.
pub(super) type Series<'a> = (i64, &'a str, &'a str, &'a str);

/// A rollup row of the group: (tenant, day, service, metric, unit).
pub(super) type RollupKey<'a> = (&'a str, i64, &'a str, &'a str, &'a str);

#[derive(Debug)]
pub(super) struct EventRow<'a> {
    pub(super) checked: &'a Checked,
    pub(super) class: EventClass,
    pub(super) flags: Cow<'a, [&'static str]>,
}

#[derive(Debug)]
pub(super) struct ConflictRow {
    pub(super) tenant_id: String,
    pub(super) event_id: String,
    pub(super) original_seq: u64,
    pub(super) digest: String,
    pub(super) day: i64,
    pub(super) raw: String,
}

#[derive(Debug)]
pub(super) struct RejectionRow {
    pub(super) tenant_id: Option<String>,
    pub(super) event_id: Option<String>,
    pub(super) day: i64,
    pub(super) errors: String,
    pub(super) raw: String,
    pub(super) truncated: bool,
}

/// A map for the few keys a group has per tenant (a day, a metric or two): a scan of a short
/// list, hit first by the key the previous event used, beats hashing strings per event; past
/// [`SHORT_MAP_SCAN_MAX`] entries it indexes them by hash.
#[derive(Debug)]
pub(super) struct ShortMap<K, V> {
    pub(super) entries: Vec<(K, V)>,
    pub(super) last: usize,
    pub(super) index: Option<HashMap<K, usize>>,
}

/// Entries a [`ShortMap`] scans before it builds a hash index.
pub(super) const SHORT_MAP_SCAN_MAX: usize = 8;

impl<K, V> Default for ShortMap<K, V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            last: 0,
            index: None,
        }
    }
}

impl<K: Copy + Eq + std::hash::Hash, V> ShortMap<K, V> {
    pub(super) fn entry(&mut self, key: K, new: impl FnOnce() -> V) -> &mut V {
        let found = if self.entries.get(self.last).is_some_and(|(k, _)| *k == key) {
            Some(self.last)
        } else if let Some(index) = &self.index {
            index.get(&key).copied()
        } else {
            self.entries.iter().position(|(k, _)| *k == key)
        };
        let at = match found {
            Some(at) => at,
            None => {
                let at = self.entries.len();
                self.entries.push((key, new()));
                if let Some(index) = &mut self.index {
                    index.insert(key, at);
                } else if self.entries.len() > SHORT_MAP_SCAN_MAX {
                    self.index = Some(
                        self.entries
                            .iter()
                            .enumerate()
                            .map(|(i, (k, _))| (*k, i))
                            .collect(),
                    );
                }
                at
            }
        };
        self.last = at;
        &mut self.entries[at].1
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

/// One tenant the group names, with everything the group does for it.
#[derive(Debug)]
pub(super) struct Slot<'a> {
    pub(super) tenant_id: &'a str,
    /// `None`: there is no such tenant.
    pub(super) status: Option<TenantStatus>,
    /// The locked ledger head of a tenant that takes usage.
    pub(super) head: Option<LogHead>,
    /// Days of this tenant (among the group's) that are closed.
    pub(super) closed_days: Vec<i64>,
    /// Reconciliation counters by day (a tenant's events of one group fall on a day or two).
    pub(super) counters: ShortMap<i64, Counters>,
    /// The totals of the rollup rows the group adds to (the stored total plus the group's
    /// events so far): an event is decided against the real total, so one that would make it
    /// inexact is refused before its leaf is appended.
    pub(super) rollups: ShortMap<Series<'a>, Rollup>,
    pub(super) late_rollups: ShortMap<Series<'a>, Rollup>,
    /// The stored rollup rows of the group's series, read under the ledger head locks.
    pub(super) stored_rollups: HashMap<StoredSeries, Rollup>,
    /// The events appended, in seq order (from the head's size before the group).
    pub(super) events: Vec<EventRow<'a>>,
    pub(super) first_seq: u64,
    pub(super) statuses: StatusCounts,
}

impl<'a> Slot<'a> {
    pub(super) fn counters(&mut self, day: i64) -> &mut Counters {
        self.counters.entry(day, Counters::default)
    }

    pub(super) fn add_to_rollup(&mut self, checked: &'a Checked, late: bool) -> Result<(), String> {
        let event = &checked.event;
        let series = (
            checked.day,
            event.service.as_str(),
            event.metric.as_str(),
            event.unit.as_str(),
        );
        let map = if late {
            &mut self.late_rollups
        } else {
            &mut self.rollups
        };
        let stored = &self.stored_rollups;
        let quantity = event.quantity.as_decimal();
        let entry = map.entry(series, || {
            stored
                .get(&(
                    late,
                    series.0,
                    series.1.to_owned(),
                    series.2.to_owned(),
                    series.3.to_owned(),
                ))
                .cloned()
                .unwrap_or(Rollup::EMPTY)
        });
        let sum = exact_add(entry.sum, quantity).ok_or_else(|| {
            format!(
                "the total of {} {} on this day would exceed what can be summed exactly \
                 (28 significant digits); the event is refused rather than rounded",
                event.service.as_str(),
                event.metric.as_str()
            )
        })?;
        entry.sum = sum;
        entry.max = entry.max.max(quantity);
        entry.events += 1;
        Ok(())
    }
}

/// Everything one group commit writes, accumulated in memory and written in bulk.
#[derive(Debug, Default)]
pub(super) struct GroupState<'a> {
    pub(super) slots: Vec<Slot<'a>>,
    pub(super) slot_of: HashMap<&'a str, usize>,
    pub(super) new_keys: NewKeys<'a>,
    pub(super) conflicts: Vec<ConflictRow>,
    pub(super) rejections: Vec<RejectionRow>,
    /// Events that name no tenant (rejected; for the metrics).
    pub(super) rejected_without_tenant: u64,
    pub(super) source_seqs: BTreeMap<(&'a str, &'a str), Vec<(u64, i64)>>,
    pub(super) seen: ShortMap<(&'a str, &'a str, &'a str), i64>,
}

impl<'a> GroupState<'a> {
    /// Records a rejection for the reconciliation report (and the tenant's counters).
    pub(super) fn reject(&mut self, rejected: &Rejected, raw_max: usize) {
        let at = rejected
            .tenant_id
            .as_deref()
            .and_then(|t| self.slot_of.get(t).copied());
        if let Some(at) = at {
            self.slots[at].counters(rejected.day).invalid += 1;
        }
        let (raw, truncated) = truncate(&rejected.raw, raw_max);
        self.rejections.push(RejectionRow {
            tenant_id: rejected.tenant_id.clone(),
            event_id: rejected.event_id.clone(),
            day: rejected.day,
            errors: json!(rejected.errors).to_string(),
            raw,
            truncated,
        });
    }

    /// Counts an event's status for the metrics, by the tenant it names.
    pub(super) fn count_status(&mut self, tenant_id: Option<&str>, status: EventStatus) {
        match tenant_id.and_then(|t| self.slot_of.get(t).copied()) {
            Some(at) => self.slots[at].statuses.add(status, 1),
            None => self.rejected_without_tenant += 1,
        }
    }
}
