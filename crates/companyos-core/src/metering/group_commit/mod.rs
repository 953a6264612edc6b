//! The ingestion writer's group commit: every request the writer took is decided and written in
//! one transaction (dedupe, late window, tenant status, ledger appends, payload bundles,
//! rollups, reconciliation counters, source ranges, one audit record per request).
//!
//! This is the one part of ingestion that runs alone (a single writer per node), so it does per
//! event only what needs the lock and the group's state: a tenant's state is found once per
//! event through its slot, small per-tenant lists replace ordered maps of string tuples, and the
//! result of each event is a compact [`Decision`] that the request's own task turns into the
//! result row (event ids, digest strings, flags) in parallel with the next group.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use companyos_domain::time_util::{day_number, from_micros, to_micros, utc_day};
use companyos_domain::{FieldError, TenantStatus};
use companyos_ledger::leaf::EventClass;
use companyos_ledger::usage_event::EventDigest;
use rust_decimal::Decimal;
use serde_json::json;
use sqlx::{AnyConnection, Row as _};
use time::OffsetDateTime;

use crate::app::App;
use crate::audit::{self, NewAudit};
use crate::bundles;
use crate::db::{Db, Placeholders, StoreError, Tx, list_placeholders, values_placeholders};
use crate::dedupe::{self, EventKeyIndex};
use crate::error::ServiceError;
use crate::ledger_store::{self, LogHead};
use crate::metering::ingest::{Checked, EventStatus, Job, Rejected, truncate};
use crate::util::new_id;
use companyos_domain::{LogId, TenantId};

mod writes;

use writes::*;

/// Rows per multi-row statement.
const ROWS_PER_STATEMENT: usize = 1024;
/// Keys per lookup statement.
const KEYS_PER_LOOKUP: usize = 256;

/// What the writer decided for one checked event of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Appended to the tenant's ledger at `seq`; `late` when after the late window or inside
    /// a closed day; `suspended` when the tenant was suspended (the event is flagged).
    Stored {
        seq: u64,
        late: bool,
        suspended: bool,
    },
    /// The tenant already has this event id, stored at `seq` with `digest`: the same content
    /// (a duplicate) or not (a conflict, recorded; the original stands).
    Existing {
        seq: u64,
        digest: EventDigest,
        conflict: bool,
    },
    /// Refused under the lock (unknown tenant, a tenant that takes no usage, an exact sum that
    /// would overflow).
    Rejected(FieldError),
}

impl Decision {
    pub(crate) fn status(&self) -> EventStatus {
        match self {
            Decision::Stored { late: false, .. } => EventStatus::Accepted,
            Decision::Stored { late: true, .. } => EventStatus::Late,
            Decision::Existing {
                conflict: false, ..
            } => EventStatus::Duplicate,
            Decision::Existing { conflict: true, .. } => EventStatus::Conflict,
            Decision::Rejected(_) => EventStatus::Rejected,
        }
    }
}

/// Per-request counts by status (for the audit record and the metrics).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct StatusCounts([u64; 5]);

impl StatusCounts {
    fn slot(status: EventStatus) -> usize {
        match status {
            EventStatus::Accepted => 0,
            EventStatus::Duplicate => 1,
            EventStatus::Late => 2,
            EventStatus::Rejected => 3,
            EventStatus::Conflict => 4,
        }
    }

    fn add(&mut self, status: EventStatus, n: u64) {
        self.0[Self::slot(status)] += n;
    }

    fn get(&self, status: EventStatus) -> u64 {
        self.0[Self::slot(status)]
    }

    fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

const STATUSES: [EventStatus; 5] = [
    EventStatus::Accepted,
    EventStatus::Duplicate,
    EventStatus::Late,
    EventStatus::Rejected,
    EventStatus::Conflict,
];

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    accepted: i64,
    duplicates: i64,
    late: i64,
    invalid: i64,
    conflicts: i64,
    unsigned: i64,
    undeclared: i64,
}

#[derive(Debug, Clone)]
struct Rollup {
    sum: Decimal,
    max: Decimal,
    events: i64,
}

impl Rollup {
    const EMPTY: Rollup = Rollup {
        sum: Decimal::ZERO,
        max: Decimal::ZERO,
        events: 0,
    };
}

/// (day, service, metric, unit): one rollup row of a tenant.
type Series<'a> = (i64, &'a str, &'a str, &'a str);

/// A rollup row of the group: (tenant, day, service, metric, unit).
type RollupKey<'a> = (&'a str, i64, &'a str, &'a str, &'a str);

#[derive(Debug)]
struct EventRow<'a> {
    checked: &'a Checked,
    class: EventClass,
    flags: Cow<'a, [&'static str]>,
}

#[derive(Debug)]
struct ConflictRow {
    tenant_id: String,
    event_id: String,
    original_seq: u64,
    digest: String,
    day: i64,
    raw: String,
}

#[derive(Debug)]
struct RejectionRow {
    tenant_id: Option<String>,
    event_id: Option<String>,
    day: i64,
    errors: String,
    raw: String,
    truncated: bool,
}

/// A map for the few keys a group has per tenant (a day, a metric or two): a scan of a short
/// list, hit first by the key the previous event used, beats hashing strings per event; past
/// [`SHORT_MAP_SCAN_MAX`] entries it indexes them by hash.
#[derive(Debug)]
struct ShortMap<K, V> {
    entries: Vec<(K, V)>,
    last: usize,
    index: Option<HashMap<K, usize>>,
}

/// Entries a [`ShortMap`] scans before it builds a hash index.
const SHORT_MAP_SCAN_MAX: usize = 8;

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
    fn entry(&mut self, key: K, new: impl FnOnce() -> V) -> &mut V {
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

    fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

/// One tenant the group names, with everything the group does for it.
#[derive(Debug)]
struct Slot<'a> {
    tenant_id: &'a str,
    /// `None`: there is no such tenant.
    status: Option<TenantStatus>,
    /// The locked ledger head of a tenant that takes usage.
    head: Option<LogHead>,
    /// Days of this tenant (among the group's) that are closed.
    closed_days: Vec<i64>,
    /// Reconciliation counters by day (a tenant's events of one group fall on a day or two).
    counters: ShortMap<i64, Counters>,
    /// The totals of the rollup rows the group adds to (the stored total plus the group's
    /// events so far): an event is decided against the real total, so one that would make it
    /// inexact is refused before its leaf is appended.
    rollups: ShortMap<Series<'a>, Rollup>,
    late_rollups: ShortMap<Series<'a>, Rollup>,
    /// The stored rollup rows of the group's series, read under the ledger head locks.
    stored_rollups: HashMap<StoredSeries, Rollup>,
    /// The events appended, in seq order (from the head's size before the group).
    events: Vec<EventRow<'a>>,
    first_seq: u64,
    statuses: StatusCounts,
}

impl<'a> Slot<'a> {
    fn counters(&mut self, day: i64) -> &mut Counters {
        self.counters.entry(day, Counters::default)
    }

    fn add_to_rollup(&mut self, checked: &'a Checked, late: bool) -> Result<(), String> {
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

/// Exact decimal addition: `None` when the sum would lose digits (never a rounded sum).
pub(crate) use companyos_domain::usage::exact_add;

/// A new event of the group: (tenant_id, event_id, seq, digest).
type NewKey<'a> = (&'a str, &'a str, u64, EventDigest);

/// The events a group appends, by compact key, for duplicates inside the group.
type NewKeys<'a> = dedupe::KeyMultiMap<NewKey<'a>>;

/// (seq, digest) of the group's new event with this tenant and event id.
fn new_event(
    keys: &NewKeys<'_>,
    key: i64,
    tenant_id: &str,
    event_id: &str,
) -> Option<(u64, EventDigest)> {
    keys.get(key)
        .find(|(t, e, _, _)| *t == tenant_id && *e == event_id)
        .map(|(_, _, seq, digest)| (*seq, *digest))
}

/// Whether a tenant in `status` takes usage. A suspended tenant does (usage emitted before the
/// suspension arrives late, and must be billed); a deleted or unprovisioned one does not.
pub(crate) fn accepts_usage(status: TenantStatus) -> bool {
    matches!(status, TenantStatus::Active | TenantStatus::Suspended)
}

/// Everything one group commit writes, accumulated in memory and written in bulk.
#[derive(Debug, Default)]
struct GroupState<'a> {
    slots: Vec<Slot<'a>>,
    slot_of: HashMap<&'a str, usize>,
    new_keys: NewKeys<'a>,
    conflicts: Vec<ConflictRow>,
    rejections: Vec<RejectionRow>,
    /// Events that name no tenant (rejected; for the metrics).
    rejected_without_tenant: u64,
    source_seqs: BTreeMap<(&'a str, &'a str), Vec<(u64, i64)>>,
    seen: ShortMap<(&'a str, &'a str, &'a str), i64>,
}

impl<'a> GroupState<'a> {
    /// Records a rejection for the reconciliation report (and the tenant's counters).
    fn reject(&mut self, rejected: &Rejected, raw_max: usize) {
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
    fn count_status(&mut self, tenant_id: Option<&str>, status: EventStatus) {
        match tenant_id.and_then(|t| self.slot_of.get(t).copied()) {
            Some(at) => self.slots[at].statuses.add(status, 1),
            None => self.rejected_without_tenant += 1,
        }
    }
}

impl App {
    /// Decides and writes every request of a group inside `tx`. Returns each request's
    /// decisions (one per checked event, in order) and `(event_key, bundle_id, position)` of
    /// every event written.
    #[allow(clippy::type_complexity)]
    pub(crate) async fn write_group(
        &self,
        db: &Db,
        tx: &mut Tx,
        jobs: &[Job],
        now: OffsetDateTime,
        key_index: &mut impl EventKeyIndex,
    ) -> Result<(Vec<Vec<Decision>>, Vec<(i64, i64, i64)>), ServiceError> {
        let now_micros = to_micros(now);
        let raw_max = self.settings().rejected_raw_bytes_max;
        let mut state = GroupState::default();
        // One slot per tenant the group names (rejected events name tenants too: their
        // reconciliation counts need to know them), in tenant order; found by a hash per event,
        // not a search of an ordered set.
        let named: HashSet<&str> = jobs
            .iter()
            .flat_map(|job| {
                job.checked
                    .iter()
                    .map(|c| c.event.tenant_id.as_str())
                    .chain(job.rejected.iter().filter_map(|r| r.tenant_id.as_deref()))
            })
            .collect();
        let mut named: Vec<&str> = named.into_iter().collect();
        named.sort_unstable();
        let statuses = tenant_statuses(tx, &named).await?;
        // Lock the ledger heads of the tenants that can take events, in a fixed order.
        // A name that is no tenant id has no status, so every log id here parses.
        let log_ids: BTreeSet<LogId> = named
            .iter()
            .filter(|t| statuses.get(**t).is_some_and(|s| accepts_usage(*s)))
            .filter_map(|t| TenantId::parse(t).ok().map(LogId::Usage))
            .collect();
        let mut heads = ledger_store::lock_heads(db, tx, &log_ids, now_micros).await?;
        for tenant_id in &named {
            let head = TenantId::parse(tenant_id)
                .ok()
                .and_then(|t| heads.remove(&LogId::Usage(t)));
            state.slot_of.insert(tenant_id, state.slots.len());
            state.slots.push(Slot {
                tenant_id,
                status: statuses.get(*tenant_id).copied(),
                first_seq: head.as_ref().map_or(0, LogHead::next_index),
                head,
                closed_days: Vec::new(),
                counters: ShortMap::default(),
                rollups: ShortMap::default(),
                late_rollups: ShortMap::default(),
                stored_rollups: HashMap::new(),
                events: Vec::new(),
                statuses: StatusCounts::default(),
            });
        }
        for (tenant_id, day) in closed_days(tx, jobs, &state).await? {
            if let Some(at) = state.slot_of.get(tenant_id.as_str()) {
                state.slots[*at].closed_days.push(day);
            }
        }
        load_rollups(tx, jobs, &mut state).await?;
        let existing = existing_keys(tx, jobs, &state, key_index).await?;
        let mut decisions = Vec::with_capacity(jobs.len());
        let mut audits = Vec::with_capacity(jobs.len());
        for job in jobs {
            let mut counts = StatusCounts::default();
            for rejected in &job.rejected {
                state.reject(rejected, raw_max);
                state.count_status(rejected.tenant_id.as_deref(), EventStatus::Rejected);
                counts.add(EventStatus::Rejected, 1);
            }
            let mut job_decisions = Vec::with_capacity(job.checked.len());
            for checked in &job.checked {
                let decision = decide(&mut state, &existing, checked, raw_max)?;
                counts.add(decision.status(), 1);
                job_decisions.push(decision);
            }
            audits.push(ingest_audit(job, &counts));
            decisions.push(job_decisions);
        }
        let written = write_state(tx, &mut state, now_micros, key_index).await?;
        // Quota state (billing): one row per (tenant, metric, period) for the whole group.
        let quota_audits = self
            .record_quota_usage(tx, &group_usage(&state), now)
            .await?;
        audits.extend(quota_audits);
        audit::append(db, tx, self.authorizer().policy_sha256(), now, audits).await?;
        // Only tenants that exist get a label of their own: events naming any other tenant are
        // counted together, so made-up names cannot use up the label budget.
        let mut unknown_tenant = state.rejected_without_tenant;
        for slot in &state.slots {
            for status in STATUSES {
                let n = slot.statuses.get(status);
                if n == 0 {
                    continue;
                }
                if slot.status.is_none() {
                    unknown_tenant += n;
                    continue;
                }
                self.inner.metrics.increment(
                    "companyos_usage_events_total",
                    vec![
                        ("tenant", slot.tenant_id.to_owned()),
                        ("status", status.as_str().to_owned()),
                    ],
                    n,
                );
            }
        }
        if unknown_tenant > 0 {
            self.inner.metrics.increment(
                "companyos_usage_events_total",
                vec![
                    ("tenant", crate::metrics::UNKNOWN_TENANT.to_owned()),
                    ("status", EventStatus::Rejected.as_str().to_owned()),
                ],
                unknown_tenant,
            );
        }
        Ok((decisions, written))
    }
}

/// The usage the group stored, per (tenant, metric, day): each rollup total less its stored
/// part, so quota state costs no work per event.
fn group_usage<'a>(state: &GroupState<'a>) -> Vec<crate::billing::GroupUsage<'a>> {
    let mut usage = Vec::new();
    for slot in &state.slots {
        for (late, map) in [(false, &slot.rollups), (true, &slot.late_rollups)] {
            for ((day, service, metric, unit), total) in map.iter() {
                let stored = slot
                    .stored_rollups
                    .get(&(
                        late,
                        *day,
                        (*service).to_owned(),
                        (*metric).to_owned(),
                        (*unit).to_owned(),
                    ))
                    .map_or(Decimal::ZERO, |r| r.sum);
                usage.push(crate::billing::GroupUsage {
                    tenant_id: slot.tenant_id,
                    metric,
                    day: *day,
                    quantity: total.sum - stored,
                });
            }
        }
    }
    usage
}

/// Decides one checked event against the store and the group so far, and counts its status
/// for its tenant.
fn decide<'a>(
    state: &mut GroupState<'a>,
    existing: &StoredKeys,
    checked: &'a Checked,
    raw_max: usize,
) -> Result<Decision, ServiceError> {
    let at = *state
        .slot_of
        .get(checked.event.tenant_id.as_str())
        .ok_or_else(|| ServiceError::Internal("a group tenant has no slot".to_owned()))?;
    let decision = decide_in_slot(state, at, existing, checked, raw_max)?;
    state.slots[at].statuses.add(decision.status(), 1);
    Ok(decision)
}

/// [`decide`] for the event of the tenant in slot `at`.
fn decide_in_slot<'a>(
    state: &mut GroupState<'a>,
    at: usize,
    existing: &StoredKeys,
    checked: &'a Checked,
    raw_max: usize,
) -> Result<Decision, ServiceError> {
    let event = &checked.event;
    let tenant_id = event.tenant_id.as_str();
    let day = checked.day;
    let status = state.slots[at].status;
    let problem = match status {
        None => Some("is not a known tenant".to_owned()),
        Some(status) if !accepts_usage(status) => {
            Some(format!("tenant is {status}: it does not take usage"))
        }
        Some(_) => None,
    };
    if let Some(message) = problem {
        return Ok(reject_checked(
            state,
            checked,
            "tenant_id",
            message,
            raw_max,
        ));
    }
    let event_id = event.event_id.as_str();
    let original = existing
        .get(&checked.key)
        .and_then(|found| {
            found
                .iter()
                .find(|f| f.tenant_id == tenant_id && f.event_id == event_id)
                .map(|f| (f.seq, f.digest))
        })
        .or_else(|| new_event(&state.new_keys, checked.key, tenant_id, event_id));
    if let Some((seq, digest)) = original {
        let conflict = digest != event.digest;
        let slot = &mut state.slots[at];
        if conflict {
            slot.counters(day).conflicts += 1;
            state.conflicts.push(ConflictRow {
                tenant_id: tenant_id.to_owned(),
                event_id: event_id.to_owned(),
                original_seq: seq,
                digest: event.digest.to_string(),
                day,
                raw: truncate(&checked.raw, raw_max).0,
            });
        } else {
            slot.counters(day).duplicates += 1;
        }
        return Ok(Decision::Existing {
            seq,
            digest,
            conflict,
        });
    }
    let slot = &mut state.slots[at];
    let late = checked.late_by_age || slot.closed_days.contains(&day);
    // The rollup must stay exact; a sum that would lose digits is refused.
    if let Err(message) = slot.add_to_rollup(checked, late) {
        return Ok(reject_checked(state, checked, "quantity", message, raw_max));
    }
    let class = if late {
        EventClass::Late
    } else {
        EventClass::OnTime
    };
    let suspended = status == Some(TenantStatus::Suspended);
    let head = slot
        .head
        .as_mut()
        .ok_or_else(|| ServiceError::Internal("missing ledger head".to_owned()))?;
    let seq = head.append_usage(event_id, &event.digest, class);
    assert_eq!(
        seq,
        slot.first_seq + slot.events.len() as u64,
        "a tenant's events of one group are consecutive"
    );
    let counters = slot.counters(day);
    if late {
        counters.late += 1;
    } else {
        counters.accepted += 1;
    }
    if checked.flags.contains(&"unsigned") {
        counters.unsigned += 1;
    }
    if checked.undeclared {
        counters.undeclared += 1;
    }
    slot.events.push(EventRow {
        checked,
        class,
        flags: checked.stored_flags(suspended),
    });
    if let (Some(source), Some(source_seq)) = (&event.source, event.source_seq) {
        state
            .source_seqs
            .entry((source.as_str(), tenant_id))
            .or_default()
            .push((source_seq, day));
    }
    *state.seen.entry(
        (
            event.service.as_str(),
            event.metric.as_str(),
            event.unit.as_str(),
        ),
        || 0,
    ) += 1;
    state
        .new_keys
        .insert(checked.key, (tenant_id, event_id, seq, event.digest));
    Ok(Decision::Stored {
        seq,
        late,
        suspended,
    })
}

/// Rejects a checked event under the lock, naming `field`.
fn reject_checked(
    state: &mut GroupState<'_>,
    checked: &Checked,
    field: &str,
    message: String,
    raw_max: usize,
) -> Decision {
    let error = FieldError::new(field, message);
    state.reject(&checked.rejected(error.clone()), raw_max);
    Decision::Rejected(error)
}

/// The audit record of one request: its counts by status.
fn ingest_audit(job: &Job, counts: &StatusCounts) -> NewAudit {
    let mut entry = NewAudit::new(
        &job.actor.principal,
        job.actor.request_id.as_deref(),
        "usage.ingest",
        "usage",
    )
    .channel(job.actor.channel)
    .details(json!({
        "accepted": counts.get(EventStatus::Accepted),
        "duplicates": counts.get(EventStatus::Duplicate),
        "late": counts.get(EventStatus::Late),
        "rejected": counts.get(EventStatus::Rejected),
        "conflicts": counts.get(EventStatus::Conflict),
    }));
    let total = counts.total();
    if total > 0 && counts.get(EventStatus::Rejected) == total {
        entry.outcome = companyos_domain::audit::AuditOutcome::Failed;
        entry.reason = Some("every event was rejected".to_owned());
    }
    entry
}

async fn tenant_statuses(
    conn: &mut AnyConnection,
    tenant_ids: &[&str],
) -> Result<HashMap<String, TenantStatus>, StoreError> {
    let mut statuses = HashMap::new();
    for chunk in crate::db::statement_chunks(tenant_ids, KEYS_PER_LOOKUP) {
        let sql = format!(
            "SELECT id, status FROM tenants WHERE id IN ({})",
            list_placeholders(Placeholders::of(conn), 1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            let status: String = row.try_get("status")?;
            statuses.insert(
                row.try_get("id")?,
                TenantStatus::parse(&status)
                    .ok_or_else(|| StoreError::corrupt(format!("tenant status {status:?}")))?,
            );
        }
    }
    Ok(statuses)
}

/// The closed (tenant, day) pairs among the days of the group's events, for tenants that take
/// usage.
async fn closed_days(
    conn: &mut AnyConnection,
    jobs: &[Job],
    state: &GroupState<'_>,
) -> Result<Vec<(String, i64)>, StoreError> {
    let days: BTreeSet<i64> = jobs
        .iter()
        .flat_map(|j| &j.checked)
        .map(|c| day_number(utc_day(c.event.timestamp)))
        .collect();
    let tenants: Vec<&str> = state
        .slots
        .iter()
        .filter(|s| s.head.is_some())
        .map(|s| s.tenant_id)
        .collect();
    let mut closed = Vec::new();
    if tenants.is_empty() || days.is_empty() {
        return Ok(closed);
    }
    let days: Vec<i64> = days.into_iter().collect();
    for tenant_chunk in crate::db::statement_chunks(&tenants, KEYS_PER_LOOKUP) {
        for day_chunk in crate::db::statement_chunks(&days, KEYS_PER_LOOKUP) {
            let sql = format!(
                "SELECT tenant_id, day FROM usage_days_closed WHERE tenant_id IN ({}) AND day IN ({})",
                list_placeholders(Placeholders::of(conn), 1, tenant_chunk.len()),
                list_placeholders(
                    Placeholders::of(conn),
                    1 + tenant_chunk.len(),
                    day_chunk.len()
                )
            );
            let mut query = sqlx::query(&sql);
            for tenant in tenant_chunk {
                query = query.bind(*tenant);
            }
            for day in day_chunk {
                query = query.bind(*day);
            }
            for row in query.fetch_all(&mut *conn).await? {
                closed.push((row.try_get("tenant_id")?, row.try_get("day")?));
            }
        }
    }
    Ok(closed)
}

/// Stored events of a group's keys, by compact key.
type StoredKeys = dedupe::KeyMap<Vec<bundles::EventIdentity>>;

async fn existing_keys(
    conn: &mut AnyConnection,
    jobs: &[Job],
    state: &GroupState<'_>,
    key_index: &mut impl EventKeyIndex,
) -> Result<StoredKeys, StoreError> {
    // Compact keys computed when each request was checked, of tenants that take events.
    let takes_usage = |tenant_id: &str| {
        state
            .slot_of
            .get(tenant_id)
            .is_some_and(|at| state.slots[*at].head.is_some())
    };
    let mut keys: Vec<i64> = jobs
        .iter()
        .flat_map(|j| &j.checked)
        .filter(|c| takes_usage(c.event.tenant_id.as_str()))
        .map(|c| c.key)
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let mut existing = StoredKeys::default();
    // Indexed lookups of the compact keys; a key match is only a candidate until its tenant and
    // event id match too (compared by the caller).
    for found in dedupe::lookup(conn, key_index, &keys).await? {
        existing.entry(found.key).or_default().push(found);
    }
    Ok(existing)
}
