//! Usage ingestion (MET-1, MET-2; CONTRACT §5): validation of every rule, dedupe by
//! (tenant_id, event_id) with no expiry, the late window, signatures, the coverage gate, and the
//! append of each accepted or late event to its tenant's ledger — all in one transaction with
//! the rollups, the reconciliation counters and the audit record.
//!
//! Requests are validated in their own tasks, then handed to one writer task per node that
//! commits many requests in one transaction (group commit): one fsync for many batches.
//! Several nodes on one PostgreSQL database serialise per tenant on the ledger head row lock,
//! so each tenant's tree stays gap-free and duplicate-free.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use companyos_domain::metering::{CoverageMode, MeteringDeclaration};
use companyos_domain::time_util::{day_number, to_micros, utc_day};
use companyos_domain::usage::{InvalidEvent, UsageEvent};
use companyos_domain::{FieldError, TenantId, TenantStatus};
use companyos_ledger::leaf::{EventClass, UsageLeaf};
use companyos_ledger::usage_event;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sqlx::{AnyConnection, Row as _};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use crate::app::{Actor, App, AppInner};
use crate::audit::{self, NewAudit};
use crate::authz::Resource;
use crate::bundles;
use crate::db::{
    Backend, Db, Placeholders, StoreError, Tx, list_placeholders, values_placeholders,
};
use crate::dedupe::{self, KeyTail};
use crate::error::ServiceError;
use crate::ledger_store::{self, LogHead};
use crate::settings::SignatureRequirement;
use crate::tenants::usage_log_id;
use crate::util::new_id;

/// Rows per multi-row statement.
const ROWS_PER_STATEMENT: usize = 1024;
/// Keys per dedupe lookup.
const KEYS_PER_LOOKUP: usize = 256;

/// How one event of a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStatus {
    Accepted,
    Duplicate,
    Late,
    Rejected,
    Conflict,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Accepted => "accepted",
            EventStatus::Duplicate => "duplicate",
            EventStatus::Late => "late",
            EventStatus::Rejected => "rejected",
            EventStatus::Conflict => "conflict",
        }
    }
}

/// The result row of one event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventResult {
    pub index: usize,
    pub event_id: Option<String>,
    pub status: EventStatus,
    pub seq: Option<u64>,
    pub digest: Option<String>,
    pub errors: Vec<FieldError>,
    pub flags: Vec<&'static str>,
}

/// The answer to one ingestion request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestOutcome {
    pub results: Vec<EventResult>,
}

impl IngestOutcome {
    pub fn count(&self, status: EventStatus) -> usize {
        self.results.iter().filter(|r| r.status == status).count()
    }
}

/// One event of a request, as read from the body.
#[derive(Debug, Clone)]
pub struct RawEvent {
    /// The event's JSON text (kept, bounded, for rejections and conflicts).
    pub raw: String,
    pub parsed: Result<UsageEvent, InvalidEvent>,
}

impl RawEvent {
    /// Parses one event's JSON text.
    pub fn parse(raw: &str) -> RawEvent {
        RawEvent {
            raw: raw.to_owned(),
            parsed: UsageEvent::parse_bytes(raw.as_bytes()),
        }
    }

    /// Parses an already-parsed JSON value (an element of an array body).
    pub fn from_value(value: &Value) -> RawEvent {
        RawEvent {
            raw: value.to_string(),
            parsed: UsageEvent::parse(value),
        }
    }
}

/// An event that passed every check that needs no lock, ready for the writer.
#[derive(Debug, Clone)]
struct Checked {
    index: usize,
    event: UsageEvent,
    raw: String,
    late_by_age: bool,
    flags: Vec<&'static str>,
    undeclared: bool,
    // Derived here, in the request's task, so the single writer does not spend time on them.
    digest: String,
    key: i64,
    day: i64,
}

impl Checked {
    /// This event, rejected under the lock for `field`.
    fn rejected(&self, day: i64, field: &str, message: impl Into<String>) -> Rejected {
        Rejected {
            index: self.index,
            tenant_id: Some(self.event.tenant_id.as_str().to_owned()),
            event_id: Some(self.event.event_id.as_str().to_owned()),
            day,
            errors: vec![FieldError::new(field, message)],
            raw: self.raw.clone(),
        }
    }
}

#[derive(Debug, Clone)]
struct Rejected {
    index: usize,
    tenant_id: Option<String>,
    event_id: Option<String>,
    day: i64,
    errors: Vec<FieldError>,
    raw: String,
}

/// One request waiting for the writer.
#[derive(Debug)]
struct Job {
    actor: Actor,
    checked: Vec<Checked>,
    rejected: Vec<Rejected>,
    reply: oneshot::Sender<Answer>,
}

/// What the writer sends back: the outcome, and the request's own events, so that they are
/// freed by the request's task rather than by the writer (freeing memory that another thread
/// allocated is slow, and the writer is the one part of ingestion that runs alone).
type Answer = (Result<IngestOutcome, String>, Spent);

#[derive(Debug)]
struct Spent {
    _checked: Vec<Checked>,
    _rejected: Vec<Rejected>,
}

impl Job {
    fn answer(self, result: Result<IngestOutcome, String>) {
        let Job {
            reply,
            checked,
            rejected,
            actor: _,
        } = self;
        let spent = Spent {
            _checked: checked,
            _rejected: rejected,
        };
        // A requester that went away no longer wants the answer.
        let _ = reply.send((result, spent));
    }

    fn len(&self) -> usize {
        self.checked.len() + self.rejected.len()
    }
}

/// The bounded queue in front of the writer task.
#[derive(Debug)]
pub struct IngestQueue {
    /// SQLite's in-memory dedupe tail; held by the writer for a whole group commit.
    key_tail: tokio::sync::Mutex<KeyTail>,
    sender: mpsc::Sender<Job>,
    receiver: Mutex<Option<mpsc::Receiver<Job>>>,
    started: AtomicBool,
}

impl IngestQueue {
    pub fn new(capacity: usize) -> Self {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        Self {
            key_tail: tokio::sync::Mutex::new(KeyTail::default()),
            sender,
            receiver: Mutex::new(Some(receiver)),
            started: AtomicBool::new(false),
        }
    }
}

fn truncate(raw: &str, bytes_max: usize) -> (String, bool) {
    if raw.len() <= bytes_max {
        return (raw.to_owned(), false);
    }
    let mut end = bytes_max;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    (raw[..end].to_owned(), true)
}

/// The compact dedupe key of an event: the first 8 bytes of SHA-256(tenant_id "\n" event_id).
pub fn event_key(tenant_id: &str, event_id: &str) -> i64 {
    let mut input = Vec::with_capacity(tenant_id.len() + event_id.len() + 1);
    input.extend_from_slice(tenant_id.as_bytes());
    input.push(b'\n');
    input.extend_from_slice(event_id.as_bytes());
    let digest = companyos_ledger::hash::sha256(&input);
    let bytes = digest.as_bytes();
    i64::from_be_bytes([
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
    ])
}

/// Exact decimal addition: `None` when the sum would lose digits.
fn exact_add(a: Decimal, b: Decimal) -> Option<Decimal> {
    let sum = a.checked_add(b)?;
    (sum.checked_sub(b) == Some(a)).then_some(sum)
}

/// A registered source.
#[derive(Debug, Clone)]
struct SourceKey {
    service: String,
    key: ed25519_dalek::VerifyingKey,
}

impl App {
    /// Ingests a batch of events (`POST /v1/events`, `companyos usage send`).
    pub async fn ingest(
        &self,
        actor: &Actor,
        events: Vec<RawEvent>,
    ) -> Result<IngestOutcome, ServiceError> {
        if events.len() > self.settings().batch_events_max {
            return Err(ServiceError::TooLarge(format!(
                "a batch holds at most {} events, this one has {}",
                self.settings().batch_events_max,
                events.len()
            )));
        }
        self.authorize_read(actor, "usage.ingest", Resource::Deployment, "usage", None)
            .await?;
        if events.is_empty() {
            return Ok(IngestOutcome::default());
        }
        let (checked, rejected) = self.check_events(events).await?;
        self.ensure_writer();
        let (reply, answer) = oneshot::channel();
        let job = Job {
            actor: actor.clone(),
            checked,
            rejected,
            reply,
        };
        self.inner.ingest.sender.send(job).await.map_err(|_| {
            ServiceError::Unavailable("the ingestion writer has stopped".to_owned())
        })?;
        let (result, spent) = answer.await.map_err(|_| {
            ServiceError::Unavailable("the ingestion writer has stopped".to_owned())
        })?;
        drop(spent);
        result.map_err(|e| ServiceError::Unavailable(format!("ingestion failed, retry: {e}")))
    }

    /// Checks that need no lock: parsing, windows, sources and signatures, coverage.
    async fn check_events(
        &self,
        events: Vec<RawEvent>,
    ) -> Result<(Vec<Checked>, Vec<Rejected>), ServiceError> {
        let settings = self.settings();
        let now = self.now();
        let received_day = day_number(utc_day(now));
        let sources = self.load_sources(&events).await?;
        let declarations = self.load_declarations(&events).await?;
        let (deployment_mode, service_modes) = self.coverage_modes().await?;
        let mut checked = Vec::with_capacity(events.len());
        let mut rejected = Vec::new();
        for (index, raw_event) in events.into_iter().enumerate() {
            let RawEvent { raw, parsed } = raw_event;
            let event = match parsed {
                Ok(event) => event,
                Err(invalid) => {
                    rejected.push(Rejected {
                        index,
                        tenant_id: invalid.tenant_id.map(TenantId::into_string),
                        event_id: invalid.event_id,
                        day: invalid
                            .timestamp
                            .map_or(received_day, |t| day_number(utc_day(t))),
                        errors: invalid.errors.into_vec(),
                        raw,
                    });
                    continue;
                }
            };
            let mut errors = Vec::new();
            let mut flags = Vec::new();
            if event.timestamp > now + settings.future_tolerance {
                errors.push(FieldError::new(
                    "timestamp",
                    format!(
                        "is more than {} minutes in the future",
                        settings.future_tolerance.whole_minutes()
                    ),
                ));
            }
            if event.timestamp < now - settings.backdate_max {
                errors.push(FieldError::new(
                    "timestamp",
                    format!(
                        "is older than the maximum backdate of {} days",
                        settings.backdate_max.whole_days()
                    ),
                ));
            }
            match (&event.source, &event.source_signature) {
                (Some(source), signature) => match sources.get(source.as_str()) {
                    None => errors.push(FieldError::new("source", "is not a registered source")),
                    Some(registered) => {
                        if registered.service != event.service.as_str() {
                            errors.push(FieldError::new(
                                "source",
                                format!("is registered for service {:?}", registered.service),
                            ));
                        }
                        match signature {
                            Some(signature) => {
                                if let Err(e) = usage_event::verify(
                                    &registered.key,
                                    event.canonical.as_bytes(),
                                    signature,
                                ) {
                                    errors.push(FieldError::new("source_signature", e.to_string()));
                                }
                            }
                            None => flags.push("unsigned"),
                        }
                    }
                },
                (None, _) => flags.push("unsigned"),
            }
            if flags.contains(&"unsigned")
                && settings.require_signature == SignatureRequirement::Enforce
            {
                errors.push(FieldError::new(
                    "source_signature",
                    "is required (require_signature = enforce)",
                ));
            }
            let coverage = companyos_domain::metering::Coverage::of(
                declarations.get(event.service.as_str()),
                &event.metric,
                &event.unit,
            );
            let mode = service_modes
                .get(event.service.as_str())
                .copied()
                .unwrap_or(deployment_mode);
            let mut undeclared = false;
            if let Some(problem) = coverage.problem() {
                match mode {
                    CoverageMode::Enforce => errors.push(FieldError::new(
                        problem.field,
                        format!("{} (coverage mode enforce)", problem.message),
                    )),
                    CoverageMode::Warn => {
                        undeclared = true;
                        if let Some(flag) = coverage.flag() {
                            flags.push(flag);
                        }
                    }
                }
            }
            if errors.is_empty() {
                checked.push(Checked {
                    index,
                    late_by_age: event.timestamp < now - settings.late_window,
                    digest: event.digest.to_string(),
                    key: event_key(event.tenant_id.as_str(), event.event_id.as_str()),
                    day: day_number(utc_day(event.timestamp)),
                    event,
                    raw,
                    flags,
                    undeclared,
                });
            } else {
                rejected.push(Rejected {
                    index,
                    tenant_id: Some(event.tenant_id.as_str().to_owned()),
                    event_id: Some(event.event_id.as_str().to_owned()),
                    day: day_number(utc_day(event.timestamp)),
                    errors,
                    raw,
                });
            }
        }
        Ok((checked, rejected))
    }

    async fn load_sources(
        &self,
        events: &[RawEvent],
    ) -> Result<HashMap<String, SourceKey>, ServiceError> {
        let ids: BTreeSet<&str> = events
            .iter()
            .filter_map(|e| e.parsed.as_ref().ok())
            .filter_map(|e| e.source.as_ref().map(|s| s.as_str()))
            .collect();
        let mut sources = HashMap::new();
        let ids: Vec<&str> = ids.into_iter().collect();
        for chunk in crate::db::statement_chunks(&ids, KEYS_PER_LOOKUP) {
            let sql = format!(
                "SELECT id, service, public_key FROM sources WHERE id IN ({})",
                list_placeholders(
                    Placeholders::for_backend(self.db().backend()),
                    1,
                    chunk.len()
                )
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(self.db().readers()).await? {
                let key: String = row.try_get("public_key")?;
                let key = usage_event::parse_public_key(&key)
                    .ok_or_else(|| StoreError::corrupt("stored source key"))?;
                sources.insert(
                    row.try_get("id")?,
                    SourceKey {
                        service: row.try_get("service")?,
                        key,
                    },
                );
            }
        }
        Ok(sources)
    }

    async fn load_declarations(
        &self,
        events: &[RawEvent],
    ) -> Result<HashMap<String, MeteringDeclaration>, ServiceError> {
        let services: BTreeSet<&str> = events
            .iter()
            .filter_map(|e| e.parsed.as_ref().ok())
            .map(|e| e.service.as_str())
            .collect();
        let mut declarations = HashMap::new();
        for service in services {
            if let Some(declaration) = self.declaration(service).await? {
                declarations.insert(service.to_owned(), declaration);
            }
        }
        Ok(declarations)
    }

    /// Starts the writer on a thread of its own, with a single-threaded runtime: request tasks
    /// parse and check events for milliseconds at a time on the shared runtime's workers, and a
    /// writer queued behind them would hold every group commit (and the store's single SQLite
    /// writer connection) waiting for a worker at each of its statements.
    fn ensure_writer(&self) {
        if self.inner.ingest.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let receiver = self
            .inner
            .ingest
            .receiver
            .lock()
            .ok()
            .and_then(|mut r| r.take());
        let Some(receiver) = receiver else { return };
        // Weak: the writer must not keep the App (and so its own queue) alive.
        let app = Arc::downgrade(&self.inner);
        let spawned = std::thread::Builder::new()
            .name("companyos-ingest-writer".to_owned())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(run_writer(app, receiver)),
                    Err(error) => {
                        tracing::error!(%error, "could not start the ingestion writer's runtime");
                    }
                }
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "could not start the ingestion writer thread");
        }
    }

    async fn commit_group(
        &self,
        db: &Db,
        jobs: &[Job],
    ) -> Result<Vec<IngestOutcome>, ServiceError> {
        let now = self.now();
        // SQLite: the dedupe tail, synced inside the write transaction (which holds SQLite's
        // write lock, so nothing else can append until the commit).
        let mut tail = match self.db().backend() {
            Backend::Sqlite => Some(self.inner.ingest.key_tail.lock().await),
            Backend::Postgres => None,
        };
        let mut tx = db.begin().await?;
        if self.db().backend() == Backend::Postgres {
            // Every lookup of the write path is a point or short-range lookup on an index.
            // Without fresh statistics (a young or fast-growing table, autovacuum off) the
            // planner can pick a sequential scan of all events per batch; forbid it here.
            for setting in [
                "SET LOCAL enable_seqscan = off",
                "SET LOCAL enable_hashjoin = off",
                "SET LOCAL enable_mergejoin = off",
            ] {
                sqlx::query(setting).execute(&mut *tx).await?;
            }
        }
        if let Some(tail) = tail.as_deref_mut() {
            tail.sync(&mut tx).await?;
        }
        let (outcomes, appended) = self
            .write_group(db, &mut tx, jobs, now, tail.as_deref())
            .await?;
        tx.commit().await?;
        self.inner
            .metrics
            .increment("companyos_ingest_commits_total", Vec::new(), 1);
        if let Some(tail) = tail.as_deref_mut() {
            tail.committed(&appended);
            if tail.len() >= self.settings().dedupe_tail_rows_max.max(1) {
                // The events are committed whatever happens here: a failed merge leaves the
                // rows in the tail, to be merged by a later commit.
                if let Err(error) = self.merge_key_tail(tail).await {
                    tracing::warn!(%error, "merging the dedupe tail failed; retrying later");
                    tail.invalidate();
                }
            }
        }
        Ok(outcomes)
    }

    /// Merges SQLite's dedupe tail into the on-disk key index, in its own transaction.
    async fn merge_key_tail(&self, tail: &mut KeyTail) -> Result<(), ServiceError> {
        let started = std::time::Instant::now();
        let rows = tail.len();
        let mut tx = self.db().begin().await?;
        let upto = tail.merge(&mut tx).await?;
        tx.commit().await?;
        tail.merged(upto);
        let metrics = &self.inner.metrics;
        metrics.increment("companyos_dedupe_merges_total", Vec::new(), 1);
        metrics.increment(
            "companyos_dedupe_merged_rows_total",
            Vec::new(),
            rows as u64,
        );
        metrics.increment(
            "companyos_dedupe_merge_milliseconds_total",
            Vec::new(),
            started.elapsed().as_millis() as u64,
        );
        tracing::info!(
            rows,
            upto,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "merged the dedupe tail into the key index"
        );
        Ok(())
    }

    async fn write_group(
        &self,
        db: &Db,
        tx: &mut Tx,
        jobs: &[Job],
        now: OffsetDateTime,
        tail: Option<&KeyTail>,
    ) -> Result<(Vec<IngestOutcome>, Vec<(i64, i64, i64)>), ServiceError> {
        let now_micros = to_micros(now);
        let raw_max = self.settings().rejected_raw_bytes_max;
        // Tenants of every checked event, with their status.
        let tenant_ids: BTreeSet<String> = jobs
            .iter()
            .flat_map(|j| {
                j.checked
                    .iter()
                    .map(|c| c.event.tenant_id.as_str().to_owned())
            })
            .collect();
        // Rejected events name tenants too: their reconciliation counts need to know them.
        let named: BTreeSet<String> = jobs
            .iter()
            .flat_map(|j| j.rejected.iter().filter_map(|r| r.tenant_id.clone()))
            .chain(tenant_ids.iter().cloned())
            .collect();
        let statuses = tenant_statuses(tx, &named).await?;
        // Lock the ledger heads of the tenants that can take events, in a fixed order.
        let log_ids: BTreeSet<String> = tenant_ids
            .iter()
            .filter(|t| statuses.get(*t).is_some_and(|s| accepts_usage(*s)))
            .map(|t| usage_log_id(t))
            .collect();
        let mut heads: BTreeMap<String, LogHead> =
            ledger_store::lock_heads(db, tx, &log_ids, to_micros(now))
                .await?
                .into_iter()
                .filter_map(|(log_id, head)| {
                    log_id
                        .strip_prefix("tenant/")
                        .map(|tenant| (tenant.to_owned(), head))
                })
                .collect();
        let closed = closed_days(tx, jobs, &heads).await?;
        let existing = existing_keys(tx, jobs, &heads, tail).await?;
        let mut state = GroupState::default();
        let mut outcomes = Vec::with_capacity(jobs.len());
        let mut audits = Vec::with_capacity(jobs.len());
        for job in jobs {
            let mut results: Vec<EventResult> = Vec::with_capacity(job.len());
            for rejected in &job.rejected {
                results.push(state.reject(rejected, rejected.tenant_id.as_deref(), raw_max));
            }
            for checked in &job.checked {
                let event = &checked.event;
                let tenant_id = event.tenant_id.as_str();
                let day = checked.day;
                let tenant_problem = match statuses.get(tenant_id) {
                    None => Some("is not a known tenant".to_owned()),
                    Some(status) if !accepts_usage(*status) => {
                        Some(format!("tenant is {status}: it does not take usage"))
                    }
                    Some(_) => None,
                };
                if let Some(message) = tenant_problem {
                    let rejected = checked.rejected(day, "tenant_id", message);
                    results.push(state.reject(&rejected, Some(tenant_id), raw_max));
                    continue;
                }
                let mut flags = checked.flags.clone();
                if statuses.get(tenant_id) == Some(&TenantStatus::Suspended) {
                    flags.push("tenant_suspended");
                }
                let key = (tenant_id, event.event_id.as_str());
                let digest = checked.digest.as_str();
                let original = existing
                    .get(&checked.key)
                    .and_then(|found| {
                        found
                            .iter()
                            .find(|(t, e, _, _)| t == key.0 && e == key.1)
                            .map(|(_, _, seq, digest)| (*seq, digest.as_str()))
                    })
                    .or_else(|| state.new_keys.get(checked.key, key.0, key.1));
                if let Some((seq, original_digest)) = original {
                    let status = if original_digest == digest {
                        state.count(tenant_id, day).duplicates += 1;
                        *state
                            .metric_counts
                            .entry((tenant_id, "duplicate"))
                            .or_default() += 1;
                        EventStatus::Duplicate
                    } else {
                        *state
                            .metric_counts
                            .entry((tenant_id, "conflict"))
                            .or_default() += 1;
                        state.count(tenant_id, day).conflicts += 1;
                        state.conflicts.push(ConflictRow {
                            tenant_id: tenant_id.to_owned(),
                            event_id: event.event_id.as_str().to_owned(),
                            original_seq: seq,
                            digest: digest.to_owned(),
                            day,
                            raw: truncate(&checked.raw, raw_max).0,
                        });
                        EventStatus::Conflict
                    };
                    results.push(EventResult {
                        index: checked.index,
                        event_id: Some(key.1.to_owned()),
                        status,
                        seq: Some(seq),
                        digest: Some(original_digest.to_owned()),
                        errors: Vec::new(),
                        flags: Vec::new(),
                    });
                    continue;
                }
                let late = checked.late_by_age || closed.contains(&(tenant_id.to_owned(), day));
                let class = if late {
                    EventClass::Late
                } else {
                    EventClass::OnTime
                };
                // The rollup must stay exact; a sum that would lose digits is refused.
                if let Err(message) = state.add_to_rollup(tenant_id, day, event, late) {
                    let rejected = checked.rejected(day, "quantity", message);
                    results.push(state.reject(&rejected, Some(tenant_id), raw_max));
                    continue;
                }
                let head = heads
                    .get_mut(tenant_id)
                    .ok_or_else(|| ServiceError::Internal("missing ledger head".to_owned()))?;
                let seq = head.next_index();
                let leaf = UsageLeaf {
                    tenant_id: tenant_id.to_owned(),
                    leaf_index: seq,
                    event_id: event.event_id.as_str().to_owned(),
                    digest: event.digest,
                    class,
                };
                let appended = head.append(leaf.to_bytes());
                assert_eq!(appended, seq);
                {
                    let counters = state.count(tenant_id, day);
                    if late {
                        counters.late += 1;
                    } else {
                        counters.accepted += 1;
                    }
                    if flags.contains(&"unsigned") {
                        counters.unsigned += 1;
                    }
                    if checked.undeclared {
                        counters.undeclared += 1;
                    }
                }
                let status_name = if late { "late" } else { "accepted" };
                *state
                    .metric_counts
                    .entry((tenant_id, status_name))
                    .or_default() += 1;
                if let (Some(source), Some(source_seq)) = (&event.source, event.source_seq) {
                    state
                        .source_seqs
                        .entry((source.as_str().to_owned(), tenant_id.to_owned()))
                        .or_default()
                        .push((source_seq, day));
                }
                *state
                    .seen
                    .entry((
                        event.service.as_str(),
                        event.metric.as_str(),
                        event.unit.as_str(),
                    ))
                    .or_default() += 1;
                state
                    .new_keys
                    .insert(checked.key, (key.0, key.1, seq, digest));
                state.events.push(EventRow {
                    checked,
                    seq,
                    class,
                    flags: flags.clone(),
                });
                results.push(EventResult {
                    index: checked.index,
                    event_id: Some(key.1.to_owned()),
                    status: if late {
                        EventStatus::Late
                    } else {
                        EventStatus::Accepted
                    },
                    seq: Some(seq),
                    digest: Some(digest.to_owned()),
                    errors: Vec::new(),
                    flags,
                });
            }
            results.sort_by_key(|r| r.index);
            let outcome = IngestOutcome { results };
            audits.push(ingest_audit(&job.actor, &outcome));
            outcomes.push(outcome);
        }
        // Reconciliation counts only tenants that exist (an unknown tenant id is still kept in
        // the rejection rows, for the global report).
        state
            .counters
            .retain(|(tenant, _), _| statuses.contains_key(*tenant));
        let appended = state
            .write(tx, &mut heads, now_micros, tail.is_none())
            .await?;
        audit::append(db, tx, self.authorizer().policy_sha256(), now, audits).await?;
        for ((tenant, status), n) in &state.metric_counts {
            self.inner.metrics.increment(
                "companyos_usage_events_total",
                vec![
                    ("tenant", (*tenant).to_owned()),
                    ("status", (*status).to_owned()),
                ],
                *n,
            );
        }
        Ok((outcomes, appended))
    }
}

/// The writer loop: takes every queued request (up to the group bound) and commits them in one
/// transaction; ends when the App is gone.
async fn run_writer(app: Weak<AppInner>, mut receiver: mpsc::Receiver<Job>) {
    let mut writer_db: Option<Db> = None;
    while let Some(first) = receiver.recv().await {
        let Some(inner) = app.upgrade() else { return };
        let app = App { inner };
        let db = match &writer_db {
            Some(db) => db.clone(),
            None => match app.db().for_ingest_writer().await {
                Ok(db) => {
                    writer_db = Some(db.clone());
                    db
                }
                Err(error) => {
                    tracing::error!(%error, "could not open the ingestion writer's store");
                    first.answer(Err(error.to_string()));
                    continue;
                }
            },
        };
        let group_max = app.settings().group_commit_events_max;
        let mut total = first.len();
        let mut jobs = vec![first];
        while total < group_max {
            match receiver.try_recv() {
                Ok(job) => {
                    total += job.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        match app.commit_group(&db, &jobs).await {
            Ok(outcomes) => {
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    job.answer(Ok(outcome));
                }
            }
            Err(error) if jobs.len() > 1 => {
                // Isolate: commit each request alone so one cannot fail the others.
                tracing::warn!(%error, jobs = jobs.len(), "group commit failed; retrying requests one by one");
                for job in jobs {
                    let result = app
                        .commit_group(&db, std::slice::from_ref(&job))
                        .await
                        .map(|mut o| o.pop().unwrap_or_default())
                        .map_err(|e| e.to_string());
                    job.answer(result);
                }
            }
            Err(error) => {
                tracing::error!(%error, "ingestion commit failed");
                for job in jobs {
                    job.answer(Err(error.to_string()));
                }
            }
        }
    }
    if let Some(db) = writer_db {
        if db.backend() == Backend::Postgres {
            db.writer().close().await;
        }
    }
}

fn ingest_audit(actor: &Actor, outcome: &IngestOutcome) -> NewAudit {
    let mut entry = NewAudit::new(
        &actor.principal,
        actor.request_id.as_deref(),
        "usage.ingest",
        "usage",
    )
    .details(json!({
        "accepted": outcome.count(EventStatus::Accepted),
        "duplicates": outcome.count(EventStatus::Duplicate),
        "late": outcome.count(EventStatus::Late),
        "rejected": outcome.count(EventStatus::Rejected),
        "conflicts": outcome.count(EventStatus::Conflict),
    }));
    if outcome.results.is_empty() {
        return entry;
    }
    let rejected = outcome.count(EventStatus::Rejected);
    if rejected == outcome.results.len() {
        entry.outcome = companyos_domain::audit::AuditOutcome::Failed;
        entry.reason = Some("every event was rejected".to_owned());
    }
    entry
}

/// Whether a tenant in `status` takes usage. A suspended tenant does (usage emitted before the
/// suspension arrives late, and must be billed); a deleted or unprovisioned one does not.
fn accepts_usage(status: TenantStatus) -> bool {
    matches!(status, TenantStatus::Active | TenantStatus::Suspended)
}

async fn tenant_statuses(
    conn: &mut AnyConnection,
    tenant_ids: &BTreeSet<String>,
) -> Result<HashMap<String, TenantStatus>, StoreError> {
    let mut statuses = HashMap::new();
    let ids: Vec<&String> = tenant_ids.iter().collect();
    for chunk in crate::db::statement_chunks(&ids, KEYS_PER_LOOKUP) {
        let sql = format!(
            "SELECT id, status FROM tenants WHERE id IN ({})",
            list_placeholders(Placeholders::of(conn), 1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(id.as_str());
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

async fn closed_days(
    conn: &mut AnyConnection,
    jobs: &[Job],
    heads: &BTreeMap<String, LogHead>,
) -> Result<BTreeSet<(String, i64)>, StoreError> {
    let days: BTreeSet<i64> = jobs
        .iter()
        .flat_map(|j| &j.checked)
        .map(|c| day_number(utc_day(c.event.timestamp)))
        .collect();
    let mut closed = BTreeSet::new();
    if heads.is_empty() || days.is_empty() {
        return Ok(closed);
    }
    let tenants: Vec<&String> = heads.keys().collect();
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
                query = query.bind(tenant.as_str());
            }
            for day in day_chunk {
                query = query.bind(*day);
            }
            for row in query.fetch_all(&mut *conn).await? {
                closed.insert((row.try_get("tenant_id")?, row.try_get("day")?));
            }
        }
    }
    Ok(closed)
}

/// Stored events of a group's keys, by compact key: (tenant_id, event_id, seq, digest).
type StoredKeys = dedupe::KeyMap<Vec<(String, String, u64, String)>>;

async fn existing_keys(
    conn: &mut AnyConnection,
    jobs: &[Job],
    heads: &BTreeMap<String, LogHead>,
    tail: Option<&KeyTail>,
) -> Result<StoredKeys, StoreError> {
    // Compact keys computed when each request was checked, of tenants that take events.
    let mut keys: Vec<i64> = jobs
        .iter()
        .flat_map(|j| &j.checked)
        .filter(|c| heads.contains_key(c.event.tenant_id.as_str()))
        .map(|c| c.key)
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let mut existing = StoredKeys::default();
    // Indexed lookups of the compact keys; a key match is only a candidate until its tenant and
    // event id match too (compared by the caller).
    for found in dedupe::lookup(conn, tail, &keys).await? {
        existing.entry(found.key).or_default().push((
            found.tenant_id,
            found.event_id,
            found.seq,
            found.digest.to_string(),
        ));
    }
    Ok(existing)
}

impl App {
    /// The leaf index (`seq`) of a stored event, by its tenant and event id.
    pub(crate) async fn find_event_seq(
        &self,
        conn: &mut AnyConnection,
        tenant_id: &str,
        event_id: &str,
    ) -> Result<Option<i64>, ServiceError> {
        let key = event_key(tenant_id, event_id);
        let found = match self.db().backend() {
            Backend::Sqlite => {
                let mut tail = self.inner.ingest.key_tail.lock().await;
                // Bring the tail up to the latest commit (it may not be loaded yet, or another
                // process may have written): two small reads on a consistent snapshot; the
                // writer checks the tail again before it relies on it.
                let mut snapshot = self.db().readers().begin().await?;
                tail.sync(&mut snapshot).await?;
                snapshot.commit().await?;
                dedupe::lookup(conn, Some(&tail), &[key]).await?
            }
            Backend::Postgres => dedupe::lookup(conn, None, &[key]).await?,
        };
        for found in found {
            if found.tenant_id == tenant_id && found.event_id == event_id {
                return Ok(Some(to_i64(found.seq)?));
            }
        }
        Ok(None)
    }
}

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

#[derive(Debug)]
struct EventRow<'a> {
    checked: &'a Checked,
    seq: u64,
    class: EventClass,
    flags: Vec<&'static str>,
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

type RollupKey = (String, i64, String, String, String);
/// A rollup key borrowed from the group's events (no allocation per event).
type BorrowedRollupKey<'a> = (&'a str, i64, &'a str, &'a str, &'a str);

fn owned_rollups(deltas: &BTreeMap<BorrowedRollupKey<'_>, Rollup>) -> BTreeMap<RollupKey, Rollup> {
    deltas
        .iter()
        .map(|((tenant, day, service, metric, unit), rollup)| {
            (
                (
                    (*tenant).to_owned(),
                    *day,
                    (*service).to_owned(),
                    (*metric).to_owned(),
                    (*unit).to_owned(),
                ),
                rollup.clone(),
            )
        })
        .collect()
}

/// A new event of the group: (tenant_id, event_id, seq, digest).
type NewKey<'a> = (&'a str, &'a str, u64, &'a str);

/// The events a group appends, by compact key, for duplicates inside the group.
#[derive(Debug, Default)]
struct NewKeys<'a> {
    first: dedupe::KeyMap<NewKey<'a>>,
    /// Events whose compact key another event of the group already has (a collision: rare).
    more: Vec<(i64, NewKey<'a>)>,
}

impl<'a> NewKeys<'a> {
    fn insert(&mut self, key: i64, value: NewKey<'a>) {
        match self.first.entry(key) {
            std::collections::hash_map::Entry::Vacant(vacant) => {
                vacant.insert(value);
            }
            std::collections::hash_map::Entry::Occupied(_) => self.more.push((key, value)),
        }
    }

    /// (seq, digest) of the group's event with this tenant and event id.
    fn get(&self, key: i64, tenant_id: &str, event_id: &str) -> Option<(u64, &'a str)> {
        self.first
            .get(&key)
            .into_iter()
            .chain(self.more.iter().filter(|(k, _)| *k == key).map(|(_, v)| v))
            .find(|(t, e, _, _)| *t == tenant_id && *e == event_id)
            .map(|(_, _, seq, digest)| (*seq, *digest))
    }
}

/// Everything one group commit writes, accumulated in memory and written in bulk.
#[derive(Debug, Default)]
struct GroupState<'a> {
    /// Keys appended by this group: (tenant_id, event_id) -> (seq, digest).
    new_keys: NewKeys<'a>,
    events: Vec<EventRow<'a>>,
    conflicts: Vec<ConflictRow>,
    rejections: Vec<RejectionRow>,
    counters: BTreeMap<(&'a str, i64), Counters>,
    /// Deltas of this group: (sum, max, events) per key, on-time and late apart.
    rollups: BTreeMap<BorrowedRollupKey<'a>, Rollup>,
    late_rollups: BTreeMap<BorrowedRollupKey<'a>, Rollup>,
    source_seqs: BTreeMap<(String, String), Vec<(u64, i64)>>,
    seen: BTreeMap<(&'a str, &'a str, &'a str), i64>,
    metric_counts: BTreeMap<(&'a str, &'static str), u64>,
}

impl<'a> GroupState<'a> {
    fn count(&mut self, tenant_id: &'a str, day: i64) -> &mut Counters {
        self.counters.entry((tenant_id, day)).or_default()
    }

    /// Records a rejection of an event of `tenant_id` (as the rejection names it) for the
    /// reconciliation report; returns its result row.
    fn reject(
        &mut self,
        rejected: &Rejected,
        tenant_id: Option<&'a str>,
        raw_max: usize,
    ) -> EventResult {
        if let Some(tenant_id) = tenant_id {
            self.count(tenant_id, rejected.day).invalid += 1;
        }
        *self
            .metric_counts
            .entry((tenant_id.unwrap_or("unknown"), "rejected"))
            .or_default() += 1;
        let (raw, truncated) = truncate(&rejected.raw, raw_max);
        self.rejections.push(RejectionRow {
            tenant_id: rejected.tenant_id.clone(),
            event_id: rejected.event_id.clone(),
            day: rejected.day,
            errors: json!(rejected.errors).to_string(),
            raw,
            truncated,
        });
        EventResult {
            index: rejected.index,
            event_id: rejected.event_id.clone(),
            status: EventStatus::Rejected,
            seq: None,
            digest: None,
            errors: rejected.errors.clone(),
            flags: Vec::new(),
        }
    }

    fn add_to_rollup(
        &mut self,
        tenant_id: &'a str,
        day: i64,
        event: &'a UsageEvent,
        late: bool,
    ) -> Result<(), String> {
        let key = (
            tenant_id,
            day,
            event.service.as_str(),
            event.metric.as_str(),
            event.unit.as_str(),
        );
        let map = if late {
            &mut self.late_rollups
        } else {
            &mut self.rollups
        };
        let quantity = event.quantity.as_decimal();
        let entry = map.entry(key).or_insert(Rollup {
            sum: Decimal::ZERO,
            max: Decimal::ZERO,
            events: 0,
        });
        let sum = exact_add(entry.sum, quantity)
            .ok_or("the day's total would exceed the exact decimal range")?;
        entry.sum = sum;
        entry.max = entry.max.max(quantity);
        entry.events += 1;
        Ok(())
    }

    /// Writes the group's rows: leaves, event bundles, and (when `keys_in_store`, PostgreSQL)
    /// the dedupe key rows. Returns `(event_key, bundle_id, position)` of every event written.
    async fn write(
        &mut self,
        tx: &mut Tx,
        heads: &mut BTreeMap<String, LogHead>,
        now_micros: i64,
        keys_in_store: bool,
    ) -> Result<Vec<(i64, i64, i64)>, ServiceError> {
        ledger_store::write_many_appends(tx, heads.values_mut(), now_micros).await?;
        // Each tenant's new events, in seq order (the group appended them in that order).
        let mut by_tenant: BTreeMap<&str, (u64, Vec<bundles::NewEvent<'_>>)> = BTreeMap::new();
        for row in &self.events {
            let event = &row.checked.event;
            let (first, events) = by_tenant
                .entry(event.tenant_id.as_str())
                .or_insert_with(|| (row.seq, Vec::new()));
            assert_eq!(
                *first + events.len() as u64,
                row.seq,
                "a tenant's events of one group are consecutive"
            );
            events.push(bundles::NewEvent {
                key: row.checked.key,
                event_id: event.event_id.as_str(),
                digest: &event.digest,
                class: row.class,
                flags: &row.flags,
                canonical: event.canonical.as_str(),
                source_signature: event.source_signature.as_deref(),
            });
        }
        let tenants: Vec<(&str, u64, Vec<bundles::NewEvent<'_>>)> = by_tenant
            .into_iter()
            .map(|(tenant, (first, events))| (tenant, first, events))
            .collect();
        let written = bundles::write_events(tx, &tenants, now_micros).await?;
        if keys_in_store {
            bundles::insert_keys(tx, &written).await?;
        }
        let now = companyos_domain::time_util::from_micros(now_micros);
        for chunk in crate::db::statement_chunks(&self.rejections, ROWS_PER_STATEMENT) {
            let sql = format!(
                "{} usage_rejections (id, tenant_id, event_id, event_day, received_at, \
                 errors, raw, raw_truncated) VALUES {}",
                Placeholders::of(tx).bulk_insert(),
                values_placeholders(Placeholders::of(tx), chunk.len(), 8)
            );
            let mut query = sqlx::query(&sql);
            for row in chunk {
                query = query
                    .bind(new_id("rej", now))
                    .bind(row.tenant_id.as_deref())
                    .bind(row.event_id.as_deref())
                    .bind(row.day)
                    .bind(now_micros)
                    .bind(row.errors.as_str())
                    .bind(row.raw.as_str())
                    .bind(i64::from(row.truncated));
            }
            query.execute(&mut **tx).await?;
        }
        for chunk in crate::db::statement_chunks(&self.conflicts, ROWS_PER_STATEMENT) {
            let sql = format!(
                "{} usage_conflicts (id, tenant_id, event_id, original_seq, digest, \
                 event_day, received_at, raw) VALUES {}",
                Placeholders::of(tx).bulk_insert(),
                values_placeholders(Placeholders::of(tx), chunk.len(), 8)
            );
            let mut query = sqlx::query(&sql);
            for row in chunk {
                query = query
                    .bind(new_id("cfl", now))
                    .bind(row.tenant_id.as_str())
                    .bind(row.event_id.as_str())
                    .bind(to_i64(row.original_seq)?)
                    .bind(row.digest.as_str())
                    .bind(row.day)
                    .bind(now_micros)
                    .bind(row.raw.as_str());
            }
            query.execute(&mut **tx).await?;
        }
        let counters: Vec<(&(&str, i64), &Counters)> = self.counters.iter().collect();
        for chunk in crate::db::statement_chunks(&counters, ROWS_PER_STATEMENT) {
            let sql = format!(
                "{} usage_counters (tenant_id, day, accepted, duplicates, late, invalid, \
                 conflicts, unsigned_events, undeclared) VALUES {} \
                 ON CONFLICT (tenant_id, day) DO UPDATE SET \
                 accepted = usage_counters.accepted + excluded.accepted, \
                 duplicates = usage_counters.duplicates + excluded.duplicates, \
                 late = usage_counters.late + excluded.late, \
                 invalid = usage_counters.invalid + excluded.invalid, \
                 conflicts = usage_counters.conflicts + excluded.conflicts, \
                 unsigned_events = usage_counters.unsigned_events + excluded.unsigned_events, \
                 undeclared = usage_counters.undeclared + excluded.undeclared",
                Placeholders::of(tx).bulk_insert(),
                values_placeholders(Placeholders::of(tx), chunk.len(), 9)
            );
            let mut query = sqlx::query(&sql);
            for ((tenant_id, day), c) in chunk {
                query = query
                    .bind(*tenant_id)
                    .bind(*day)
                    .bind(c.accepted)
                    .bind(c.duplicates)
                    .bind(c.late)
                    .bind(c.invalid)
                    .bind(c.conflicts)
                    .bind(c.unsigned)
                    .bind(c.undeclared);
            }
            query.execute(&mut **tx).await?;
        }
        write_rollups(tx, "usage_daily", &owned_rollups(&self.rollups)).await?;
        write_rollups(tx, "usage_late", &owned_rollups(&self.late_rollups)).await?;
        for ((source, tenant_id), seqs) in &self.source_seqs {
            merge_source_ranges(tx, source, tenant_id, seqs).await?;
        }
        let seen: Vec<(&(&str, &str, &str), &i64)> = self.seen.iter().collect();
        for chunk in crate::db::statement_chunks(&seen, ROWS_PER_STATEMENT) {
            let sql = format!(
                "{} metering_seen (service, metric, unit, first_seen, last_seen, events) \
                 VALUES {} ON CONFLICT (service, metric, unit) DO UPDATE SET \
                 last_seen = excluded.last_seen, events = metering_seen.events + excluded.events",
                Placeholders::of(tx).bulk_insert(),
                values_placeholders(Placeholders::of(tx), chunk.len(), 6)
            );
            let mut query = sqlx::query(&sql);
            for ((service, metric, unit), events) in chunk {
                query = query
                    .bind(*service)
                    .bind(*metric)
                    .bind(*unit)
                    .bind(now_micros)
                    .bind(now_micros)
                    .bind(**events);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(written)
    }
}

fn to_i64(value: u64) -> Result<i64, ServiceError> {
    i64::try_from(value).map_err(|_| ServiceError::Internal("value out of range".to_owned()))
}

/// Adds a group's rollup deltas to the stored rows: one read of the affected rows, exact sums
/// in Rust (decimals are TEXT on both engines), one multi-row upsert.
async fn write_rollups(
    tx: &mut Tx,
    table: &str,
    deltas: &BTreeMap<RollupKey, Rollup>,
) -> Result<(), ServiceError> {
    let keys: Vec<&RollupKey> = deltas.keys().collect();
    let mut stored: HashMap<RollupKey, Rollup> = HashMap::with_capacity(keys.len());
    for chunk in crate::db::statement_chunks(&keys, ROWS_PER_STATEMENT) {
        let sql = format!(
            "WITH k (t, d, s, m, u) AS (VALUES {}) SELECT r.tenant_id, r.day, r.service, \
             r.metric, r.unit, r.quantity_sum, r.quantity_max, r.events FROM k JOIN {table} r \
             ON r.tenant_id = k.t AND r.day = k.d AND r.service = k.s AND r.metric = k.m \
             AND r.unit = k.u",
            values_placeholders(Placeholders::of(tx), chunk.len(), 5)
        );
        let mut query = sqlx::query(&sql);
        for (tenant_id, day, service, metric, unit) in chunk {
            query = query
                .bind(tenant_id.as_str())
                .bind(*day)
                .bind(service.as_str())
                .bind(metric.as_str())
                .bind(unit.as_str());
        }
        for row in query.fetch_all(&mut **tx).await? {
            let sum: String = row.try_get("quantity_sum")?;
            let max: String = row.try_get("quantity_max")?;
            stored.insert(
                (
                    row.try_get("tenant_id")?,
                    row.try_get("day")?,
                    row.try_get("service")?,
                    row.try_get("metric")?,
                    row.try_get("unit")?,
                ),
                Rollup {
                    sum: sum
                        .parse()
                        .map_err(|_| StoreError::corrupt("rollup quantity"))?,
                    max: max
                        .parse()
                        .map_err(|_| StoreError::corrupt("rollup quantity"))?,
                    events: row.try_get("events")?,
                },
            );
        }
    }
    let mut merged: Vec<(&RollupKey, Rollup)> = Vec::with_capacity(keys.len());
    for (key, delta) in deltas {
        let total = match stored.get(key) {
            Some(old) => Rollup {
                sum: exact_add(old.sum, delta.sum).ok_or_else(|| {
                    ServiceError::Internal(
                        "rollup total exceeds the exact decimal range".to_owned(),
                    )
                })?,
                max: old.max.max(delta.max),
                events: old.events + delta.events,
            },
            None => delta.clone(),
        };
        merged.push((key, total));
    }
    for chunk in crate::db::statement_chunks(&merged, ROWS_PER_STATEMENT) {
        let sql = format!(
            "{} {table} (tenant_id, day, service, metric, unit, quantity_sum, \
             quantity_max, events) VALUES {} \
             ON CONFLICT (tenant_id, day, service, metric, unit) DO UPDATE SET \
             quantity_sum = excluded.quantity_sum, quantity_max = excluded.quantity_max, \
             events = excluded.events",
            Placeholders::of(tx).bulk_insert(),
            values_placeholders(Placeholders::of(tx), chunk.len(), 8)
        );
        let mut query = sqlx::query(&sql);
        for ((tenant_id, day, service, metric, unit), total) in chunk {
            query = query
                .bind(tenant_id.as_str())
                .bind(*day)
                .bind(service.as_str())
                .bind(metric.as_str())
                .bind(unit.as_str())
                .bind(total.sum.normalize().to_string())
                .bind(total.max.normalize().to_string())
                .bind(total.events);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Merges received `source_seq` values into the stored disjoint ranges of a (source, tenant).
async fn merge_source_ranges(
    tx: &mut Tx,
    source: &str,
    tenant_id: &str,
    seqs: &[(u64, i64)],
) -> Result<(), ServiceError> {
    let (Some(low), Some(high)) = (
        seqs.iter().map(|(s, _)| *s).min(),
        seqs.iter().map(|(s, _)| *s).max(),
    ) else {
        return Ok(());
    };
    let rows = sqlx::query(
        "SELECT from_seq, to_seq, first_day FROM source_seq_ranges WHERE source = $1 \
         AND tenant_id = $2 AND to_seq >= $3 AND from_seq <= $4",
    )
    .bind(source)
    .bind(tenant_id)
    .bind(to_i64(low.saturating_sub(1))?)
    .bind(to_i64(high + 1)?)
    .fetch_all(&mut **tx)
    .await?;
    let mut ranges: Vec<(u64, u64, i64)> = Vec::with_capacity(rows.len() + seqs.len());
    for row in &rows {
        ranges.push((
            u64::try_from(row.try_get::<i64, _>("from_seq")?)
                .map_err(|_| StoreError::corrupt("seq"))?,
            u64::try_from(row.try_get::<i64, _>("to_seq")?)
                .map_err(|_| StoreError::corrupt("seq"))?,
            row.try_get("first_day")?,
        ));
    }
    for (seq, day) in seqs {
        ranges.push((*seq, *seq, *day));
    }
    ranges.sort_by_key(|r| (r.0, std::cmp::Reverse(r.1)));
    let mut merged: Vec<(u64, u64, i64)> = Vec::new();
    for (from, to, day) in ranges {
        match merged.last_mut() {
            Some(last) if from <= last.1.saturating_add(1) => {
                last.1 = last.1.max(to);
            }
            _ => merged.push((from, to, day)),
        }
    }
    sqlx::query(
        "DELETE FROM source_seq_ranges WHERE source = $1 AND tenant_id = $2 \
         AND to_seq >= $3 AND from_seq <= $4",
    )
    .bind(source)
    .bind(tenant_id)
    .bind(to_i64(low.saturating_sub(1))?)
    .bind(to_i64(high + 1)?)
    .execute(&mut **tx)
    .await?;
    for (from, to, day) in merged {
        sqlx::query(
            "INSERT INTO source_seq_ranges (source, tenant_id, from_seq, to_seq, first_day) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(source)
        .bind(tenant_id)
        .bind(to_i64(from)?)
        .bind(to_i64(to)?)
        .bind(day)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Splits a request body into events: a JSON array, or NDJSON (one object per line).
pub fn split_body(
    body: &[u8],
    ndjson: bool,
    events_max: usize,
) -> Result<Vec<RawEvent>, ServiceError> {
    if ndjson {
        let text =
            std::str::from_utf8(body).map_err(|_| ServiceError::invalid("body", "is not UTF-8"))?;
        let mut events = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if events.len() == events_max {
                return Err(ServiceError::TooLarge(format!(
                    "a batch holds at most {events_max} events"
                )));
            }
            events.push(RawEvent::parse(line));
        }
        return Ok(events);
    }
    // Split the array into each element's own text first (no re-serialisation), then parse each
    // element strictly: duplicate keys are refused per event, like every other event rule.
    let items: Vec<&serde_json::value::RawValue> = serde_json::from_slice(body).map_err(|e| {
        if e.classify() == serde_json::error::Category::Data {
            ServiceError::invalid(
                "body",
                "must be a JSON array of events (or application/x-ndjson)",
            )
        } else {
            ServiceError::invalid("body", format!("is not valid JSON: {e}"))
        }
    })?;
    if items.len() > events_max {
        return Err(ServiceError::TooLarge(format!(
            "a batch holds at most {events_max} events, this one has {}",
            items.len()
        )));
    }
    Ok(items
        .iter()
        .map(|item| RawEvent::parse(item.get()))
        .collect())
}
