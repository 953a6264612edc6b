//! Usage ingestion (MET-1, MET-2; CONTRACT §5): validation of every rule, dedupe by
//! (tenant_id, event_id) with no expiry, the late window, signatures, the coverage gate, and the
//! append of each accepted or late event to its tenant's ledger — all in one transaction with
//! the rollups, the reconciliation counters and the audit record.
//!
//! Requests are validated in their own tasks, then handed to one writer task per node that
//! commits many requests in one transaction (group commit): one fsync for many batches.
//! Several nodes on one PostgreSQL database serialise per tenant on the ledger head row lock,
//! so each tenant's tree stays gap-free and duplicate-free.

use crate::dedupe::event_key;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use companyos_domain::metering::{CoverageMode, MeteringDeclaration};
use companyos_domain::time_util::{day_number, utc_day};
use companyos_domain::usage::{InvalidEvent, UsageEvent};
use companyos_domain::{FieldError, TenantId};
use companyos_ledger::usage_event;
use sqlx::{AnyConnection, Row as _};
use tokio::sync::{mpsc, oneshot};

use crate::app::{Actor, App, AppInner};
use crate::authz::Resource;
use crate::db::{Backend, Db, Placeholders, StoreError, list_placeholders};
use crate::dedupe::{self, EventKeyIndex, KeyIndex};
use crate::error::ServiceError;
use crate::metering::group_commit::Decision;
use crate::settings::SignatureRequirement;
use companyos_domain::Action;

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

    /// Parses one event's JSON text, keeping the text itself.
    pub fn from_text(raw: String) -> RawEvent {
        let parsed = UsageEvent::parse_bytes(raw.as_bytes());
        RawEvent { raw, parsed }
    }
}

/// An event that passed every check that needs no lock, ready for the writer.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub(crate) index: usize,
    pub(crate) event: UsageEvent,
    pub(crate) raw: String,
    pub(crate) late_by_age: bool,
    pub(crate) flags: Vec<&'static str>,
    pub(crate) undeclared: bool,
    // Derived here, in the request's task, so the single writer does not spend time on them.
    pub(crate) key: i64,
    pub(crate) day: i64,
}

impl Checked {
    /// This event, rejected under the lock with `error`.
    pub(crate) fn rejected(&self, error: FieldError) -> Rejected {
        Rejected {
            index: self.index,
            tenant_id: Some(self.event.tenant_id.as_str().to_owned()),
            event_id: Some(self.event.event_id.as_str().to_owned()),
            day: self.day,
            errors: vec![error],
            raw: self.raw.clone(),
        }
    }

    /// The flags an event is stored and answered with: its own, and `tenant_suspended` when
    /// the writer found its tenant suspended.
    pub(crate) fn stored_flags(&self, suspended: bool) -> std::borrow::Cow<'_, [&'static str]> {
        if suspended {
            let mut flags = self.flags.clone();
            flags.push("tenant_suspended");
            std::borrow::Cow::Owned(flags)
        } else {
            std::borrow::Cow::Borrowed(&self.flags)
        }
    }

    /// The result row of this event, as the writer decided.
    fn result(&self, decision: Decision) -> EventResult {
        let status = decision.status();
        let (seq, digest, errors, flags) = match decision {
            Decision::Stored { seq, suspended, .. } => (
                Some(seq),
                Some(self.event.digest),
                Vec::new(),
                self.stored_flags(suspended).into_owned(),
            ),
            Decision::Existing { seq, digest, .. } => {
                (Some(seq), Some(digest), Vec::new(), Vec::new())
            }
            Decision::Rejected(error) => (None, None, vec![error], Vec::new()),
        };
        EventResult {
            index: self.index,
            event_id: Some(self.event.event_id.as_str().to_owned()),
            status,
            seq,
            digest: digest.map(|d| d.to_string()),
            errors,
            flags,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Rejected {
    pub(crate) index: usize,
    pub(crate) tenant_id: Option<String>,
    pub(crate) event_id: Option<String>,
    pub(crate) day: i64,
    pub(crate) errors: Vec<FieldError>,
    pub(crate) raw: String,
}

impl Rejected {
    fn result(&self) -> EventResult {
        EventResult {
            index: self.index,
            event_id: self.event_id.clone(),
            status: EventStatus::Rejected,
            seq: None,
            digest: None,
            errors: self.errors.clone(),
            flags: Vec::new(),
        }
    }
}

/// One request waiting for the writer.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) actor: Actor,
    pub(crate) checked: Vec<Checked>,
    pub(crate) rejected: Vec<Rejected>,
    reply: oneshot::Sender<Answer>,
}

/// What the writer sends back: its decision for each checked event, and the request's own
/// events, from which the request's task builds the result rows (in parallel with the
/// writer's next group) and which it frees (freeing memory that another thread allocated is
/// slow, and the writer is the one part of ingestion that runs alone).
type Answer = (Result<Vec<Decision>, String>, Spent);

#[derive(Debug)]
struct Spent {
    checked: Vec<Checked>,
    rejected: Vec<Rejected>,
}

impl Spent {
    /// The request's outcome: a result row per event, in request order.
    fn outcome(&self, decisions: Vec<Decision>) -> IngestOutcome {
        assert_eq!(
            decisions.len(),
            self.checked.len(),
            "the writer decides every checked event"
        );
        let mut results: Vec<EventResult> =
            Vec::with_capacity(self.checked.len() + self.rejected.len());
        results.extend(self.rejected.iter().map(Rejected::result));
        results.extend(
            self.checked
                .iter()
                .zip(decisions)
                .map(|(checked, decision)| checked.result(decision)),
        );
        results.sort_by_key(|r| r.index);
        IngestOutcome { results }
    }
}

impl Job {
    fn answer(self, result: Result<Vec<Decision>, String>) {
        let Job {
            reply,
            checked,
            rejected,
            actor: _,
        } = self;
        let spent = Spent { checked, rejected };
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
    /// The store's dedupe key index (on SQLite: tail, runs, compaction, held by the writer for
    /// a whole group commit).
    key_index: KeyIndex,
    sender: mpsc::Sender<Job>,
    receiver: Mutex<Option<mpsc::Receiver<Job>>>,
    started: AtomicBool,
}

impl IngestQueue {
    pub fn new(capacity: usize, key_index: KeyIndex) -> Self {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        Self {
            key_index,
            sender,
            receiver: Mutex::new(Some(receiver)),
            started: AtomicBool::new(false),
        }
    }
}

/// `raw` cut to at most `bytes_max` bytes (on a character boundary), and whether it was cut.
pub(crate) fn truncate(raw: &str, bytes_max: usize) -> (String, bool) {
    if raw.len() <= bytes_max {
        return (raw.to_owned(), false);
    }
    let mut end = bytes_max;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    (raw[..end].to_owned(), true)
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
        self.authorize_read(
            actor,
            Action::UsageIngest,
            Resource::Deployment,
            "usage",
            None,
        )
        .await?;
        self.ingest_authorized(actor, events).await
    }

    /// [`Self::ingest`] for a caller that has authorized `usage.ingest` for this request and
    /// checked the batch's size.
    pub(crate) async fn ingest_authorized(
        &self,
        actor: &Actor,
        events: Vec<RawEvent>,
    ) -> Result<IngestOutcome, ServiceError> {
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
        // The writer noted a failure for want of the store (readiness), where it knew the cause.
        let decisions = result
            .map_err(|e| ServiceError::Unavailable(format!("ingestion failed, retry: {e}")))?;
        Ok(spent.outcome(decisions))
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
    ) -> Result<Vec<Vec<Decision>>, ServiceError> {
        let now = self.now();
        // The dedupe key index, readied inside the write transaction (on SQLite that holds the
        // write lock, so nothing else can append until the commit).
        let mut index = self.inner.ingest.key_index.for_write().await;
        let mut tx = db.begin().await?;
        index.begin_write(&mut tx).await?;
        let (decisions, appended) = self.write_group(db, &mut tx, jobs, now, &mut index).await?;
        tx.commit().await?;
        // The group's usage is in the tenants' quota state now: their forward-auth answers
        // are recomputed (a used-up hard quota answers 429 from the next request on).
        self.inner.access_cache.invalidate(
            jobs.iter()
                .flat_map(|job| job.checked.iter())
                .map(|checked| checked.event.tenant_id.as_str()),
        );
        self.inner
            .metrics
            .increment("companyos_ingest_commits_total", Vec::new(), 1);
        index.committed(&appended);
        if index.tail_len() >= self.settings().dedupe_tail_rows_max.max(1) {
            // The events are committed whatever happens here: a failed merge leaves the
            // rows in the tail, to be merged by a later commit.
            if let Err(error) = self.merge_key_tail(&mut index).await {
                tracing::warn!(%error, "merging the dedupe tail failed; retrying later");
                index.invalidate();
            }
        }
        Ok(decisions)
    }

    /// Writes SQLite's dedupe tail out as a new run of the key index, in its own transaction.
    async fn merge_key_tail(&self, index: &mut impl EventKeyIndex) -> Result<(), ServiceError> {
        let started = std::time::Instant::now();
        let rows = index.tail_len();
        let mut tx = self.db().begin().await?;
        let change = index.merge(&mut tx).await?;
        tx.commit().await?;
        index.apply(change);
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
            runs = index.run_count(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "wrote the dedupe tail out as a run of the key index"
        );
        Ok(())
    }

    /// One step of the key index's compaction (SQLite's runs; never due on PostgreSQL), in its
    /// own short transaction, when one is due. Returns whether more steps are due. A failed
    /// step abandons the compaction (it starts over later); the events are not affected.
    async fn compaction_step(&self, db: &Db) -> bool {
        let mut index = self.inner.ingest.key_index.for_write().await;
        if !index.wants_compaction() {
            return false;
        }
        let started = std::time::Instant::now();
        let result = async {
            let mut tx = db.begin().await?;
            let step_blocks = self.settings().dedupe_compaction_step_blocks.max(1);
            let change = index.compaction_step(&mut tx, step_blocks).await?;
            tx.commit().await?;
            Ok::<_, ServiceError>(change)
        }
        .await;
        let metrics = &self.inner.metrics;
        metrics.increment(
            "companyos_dedupe_compaction_milliseconds_total",
            Vec::new(),
            started.elapsed().as_millis() as u64,
        );
        match result {
            Ok(change) => {
                let finished =
                    matches!(change, dedupe::IndexChange::Compacted { finished: Some(_) });
                index.apply(change);
                if finished {
                    metrics.increment("companyos_dedupe_compactions_total", Vec::new(), 1);
                    tracing::info!(runs = index.run_count(), "compacted dedupe key runs");
                }
                index.wants_compaction()
            }
            Err(error) => {
                tracing::warn!(%error, "a dedupe key compaction step failed; it starts over later");
                index.abandon_compaction();
                false
            }
        }
    }
}

/// The writer loop: takes every queued request (up to the group bound) and commits them in one
/// transaction; between groups, and while no request waits, it runs the steps of a dedupe key
/// compaction that is due (SQLite). Ends when the App is gone.
async fn run_writer(app: Weak<AppInner>, mut receiver: mpsc::Receiver<Job>) {
    let mut writer_db: Option<Db> = None;
    let mut compaction_due = false;
    // Whether requests are arriving concurrently: the last group held more than one, or a
    // request was already waiting when this group began. Only then does a small group linger.
    let mut last_group_jobs = 0usize;
    loop {
        let queued_at_start = !receiver.is_empty();
        let first = if compaction_due {
            match receiver.try_recv() {
                Ok(job) => job,
                Err(mpsc::error::TryRecvError::Empty) => {
                    let (Some(inner), Some(db)) = (app.upgrade(), writer_db.as_ref()) else {
                        return;
                    };
                    compaction_due = App { inner }.compaction_step(db).await;
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            }
        } else {
            match receiver.recv().await {
                Some(job) => job,
                None => break,
            }
        };
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
                    if error.is_unavailable() {
                        app.db().note_write_unavailable();
                    }
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
        // PostgreSQL: a small group of concurrent clients waits a little for the next request
        // (see the setting); a lone client never waits.
        let linger = app.settings().group_commit_linger;
        let linger_events = app.settings().group_commit_linger_events.min(group_max);
        let concurrent = last_group_jobs > 1 || queued_at_start;
        if db.backend() == Backend::Postgres
            && concurrent
            && !linger.is_zero()
            && total < linger_events
        {
            let deadline = tokio::time::Instant::now() + linger;
            while total < linger_events {
                match tokio::time::timeout_at(deadline, receiver.recv()).await {
                    Ok(Some(job)) => {
                        total += job.len();
                        jobs.push(job);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
        last_group_jobs = jobs.len();
        match app.commit_group(&db, &jobs).await {
            Ok(decisions) => {
                for (job, decided) in jobs.into_iter().zip(decisions) {
                    job.answer(Ok(decided));
                }
            }
            Err(error) if jobs.len() > 1 => {
                // Isolate: commit each request alone so one cannot fail the others.
                tracing::warn!(%error, jobs = jobs.len(), "group commit failed; retrying requests one by one");
                for job in jobs {
                    let result = app
                        .commit_group(&db, std::slice::from_ref(&job))
                        .await
                        .map(|mut decided| decided.pop().unwrap_or_default())
                        .map_err(|e| {
                            app.observe(&e);
                            e.to_string()
                        });
                    job.answer(result);
                }
            }
            Err(error) => {
                tracing::error!(%error, "ingestion commit failed");
                app.observe(&error);
                for job in jobs {
                    job.answer(Err(error.to_string()));
                }
            }
        }
        // One compaction step per group: the work of a compaction is spread over the groups
        // that made it due.
        compaction_due = app.compaction_step(&db).await;
    }
    if let Some(db) = writer_db {
        if db.backend() == Backend::Postgres {
            db.writer().close().await;
        }
    }
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
        // As of the latest commit, on a snapshot the index was brought up to (see within).
        let found = self
            .inner
            .ingest
            .key_index
            .lookup_latest(self.db(), conn, &[key])
            .await?;
        for found in found {
            if found.tenant_id == tenant_id && found.event_id == event_id {
                return Ok(Some(i64::try_from(found.seq).map_err(|_| {
                    ServiceError::Internal("seq out of range".to_owned())
                })?));
            }
        }
        Ok(None)
    }
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
