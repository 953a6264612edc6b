//! The ingestion writer: one task per node, on a thread of its own, that takes every queued
//! request (up to the group bound) and commits them in one transaction (group commit), keeps the
//! dedupe key index through [`EventKeyIndex`] (never asking which engine it is), and runs the
//! index's compaction steps between groups.

use std::sync::Weak;

use sqlx::AnyConnection;
use tokio::sync::mpsc;

use super::Job;
use crate::app::{App, AppInner};
use crate::db::{Backend, Db};
use crate::dedupe::{self, EventKeyIndex, event_key};
use crate::error::ServiceError;
use crate::metering::group_commit::Decision;

impl App {
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
pub(super) async fn run_writer(app: Weak<AppInner>, mut receiver: mpsc::Receiver<Job>) {
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
        let db = match app.writer_store(&mut writer_db).await {
            Ok(db) => db,
            Err(error) => {
                first.answer(Err(error));
                continue;
            }
        };
        let concurrent = last_group_jobs > 1 || queued_at_start;
        let jobs = app
            .gather_group(&db, &mut receiver, first, concurrent)
            .await;
        last_group_jobs = jobs.len();
        app.commit_jobs(&db, jobs).await;
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
    /// The writer's store, opened on its first group and kept; an error (logged, and noted for
    /// readiness when the store is unavailable) answers the group's first request.
    async fn writer_store(&self, writer_db: &mut Option<Db>) -> Result<Db, String> {
        if let Some(db) = writer_db {
            return Ok(db.clone());
        }
        match self.db().for_ingest_writer().await {
            Ok(db) => {
                *writer_db = Some(db.clone());
                Ok(db)
            }
            Err(error) => {
                tracing::error!(%error, "could not open the ingestion writer's store");
                if error.is_unavailable() {
                    self.db().note_write_unavailable();
                }
                Err(error.to_string())
            }
        }
    }

    /// The group that starts with `first`: every request already queued, up to the group
    /// bound; on PostgreSQL, a small group of `concurrent` clients waits a little for the next
    /// request (see the setting; ADR 0008); a lone client never waits.
    async fn gather_group(
        &self,
        db: &Db,
        receiver: &mut mpsc::Receiver<Job>,
        first: Job,
        concurrent: bool,
    ) -> Vec<Job> {
        let group_max = self.settings().group_commit_events_max;
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
        let linger = self.settings().group_commit_linger;
        let linger_events = self.settings().group_commit_linger_events.min(group_max);
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
        jobs
    }

    /// Commits a group and answers each request; when a group of several fails, each request
    /// is committed alone so that one cannot fail the others.
    async fn commit_jobs(&self, db: &Db, jobs: Vec<Job>) {
        match self.commit_group(db, &jobs).await {
            Ok(decisions) => {
                for (job, decided) in jobs.into_iter().zip(decisions) {
                    job.answer(Ok(decided));
                }
            }
            Err(error) if jobs.len() > 1 => {
                tracing::warn!(%error, jobs = jobs.len(), "group commit failed; retrying requests one by one");
                for job in jobs {
                    let result = self
                        .commit_group(db, std::slice::from_ref(&job))
                        .await
                        .map(|mut decided| decided.pop().unwrap_or_default())
                        .map_err(|e| {
                            self.observe(&e);
                            e.to_string()
                        });
                    job.answer(result);
                }
            }
            Err(error) => {
                tracing::error!(%error, "ingestion commit failed");
                self.observe(&error);
                for job in jobs {
                    job.answer(Err(error.to_string()));
                }
            }
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
