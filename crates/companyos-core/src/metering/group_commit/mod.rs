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

mod decide;
mod reads;
mod slots;
mod writes;

use decide::*;
use reads::*;
use slots::*;
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

/// Exact decimal addition: `None` when the sum would lose digits (never a rounded sum).
pub(crate) use companyos_domain::usage::exact_add;

/// Whether a tenant in `status` takes usage. A suspended tenant does (usage emitted before the
/// suspension arrives late, and must be billed); a deleted or unprovisioned one does not.
pub(crate) fn accepts_usage(status: TenantStatus) -> bool {
    matches!(status, TenantStatus::Active | TenantStatus::Suspended)
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
        open_slots(db, tx, jobs, now_micros, &mut state).await?;
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
        self.count_events(&state);
        Ok((decisions, written))
    }

    /// Counts the group's events by tenant and status. Only tenants that exist get a label of
    /// their own: events naming any other tenant are counted together, so made-up names cannot
    /// use up the label budget.
    fn count_events(&self, state: &GroupState<'_>) {
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
    }
}

/// One slot per tenant the group names (rejected events name tenants too: their
/// reconciliation counts need to know them), in tenant order; found by a hash per event, not a
/// search of an ordered set. The ledger heads of the tenants that can take events are locked,
/// in a fixed order.
async fn open_slots<'a>(
    db: &Db,
    tx: &mut Tx,
    jobs: &'a [Job],
    now_micros: i64,
    state: &mut GroupState<'a>,
) -> Result<(), ServiceError> {
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
    // A name that is no tenant id has no status, so every log id here parses.
    let log_ids: BTreeSet<LogId> = named
        .iter()
        .filter(|t| statuses.get(**t).is_some_and(|s| accepts_usage(*s)))
        .filter_map(|t| TenantId::parse(t).ok().map(LogId::Usage))
        .collect();
    let mut heads = ledger_store::lock_heads(db, tx, &log_ids, now_micros).await?;
    for tenant_id in named {
        let head = TenantId::parse(tenant_id)
            .ok()
            .and_then(|t| heads.remove(&LogId::Usage(t)));
        state.slot_of.insert(tenant_id, state.slots.len());
        state.slots.push(Slot {
            tenant_id,
            status: statuses.get(tenant_id).copied(),
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
    Ok(())
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
