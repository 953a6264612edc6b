//! Background jobs: checkpoint signing, day close, the purge timer, approval expiry and outbox
//! delivery. Each run of each job holds a lease row, so with several nodes on one database
//! exactly one node runs a job at a time; a node that dies loses its lease when it expires.

use companyos_domain::LifecycleAction;
use companyos_domain::time_util::to_micros;
use tokio::sync::watch;

use crate::app::{Actor, Jobs};
use crate::error::ServiceError;
use crate::lifecycle::LifecycleRequest;

pub mod outbound;
pub mod outbox;

/// The jobs, in the order a tick runs them.
pub const JOBS: [&str; 9] = [
    "checkpoints",
    "plan-changes",
    "day-close",
    // After day close: a month is final once its last day is closed.
    "month-close",
    "purge-timer",
    "approval-expiry",
    "audit-hooks",
    "outbox",
    "analyze",
];
/// How often the analyze job refreshes PostgreSQL's planner statistics.
pub const ANALYZE_INTERVAL_SECONDS: i64 = 600;
const ANALYZED_AT: &str = "analyzed_at";
/// Audit records looked at per run of the audit-hooks job.
pub const AUDIT_HOOK_RECORDS_PER_RUN_MAX: i64 = 1000;
const AUDIT_HOOKS_CURSOR: &str = "audit_hooks_cursor";
/// Tenants purged per run of the purge timer.
pub const PURGES_PER_RUN_MAX: i64 = 50;

impl Jobs<'_> {
    /// Takes or renews the lease of `job` for this node; false when another node holds it.
    pub async fn acquire_lease(&self, job: &str) -> Result<bool, ServiceError> {
        let now = self.now();
        let expires = to_micros(now + self.settings().job_lease);
        sqlx::query(
            "INSERT INTO job_leases (job, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE job_leases.expires_at < $4 OR job_leases.holder = $2",
        )
        .bind(job)
        .bind(self.node_id())
        .bind(expires)
        .bind(to_micros(now))
        .execute(self.db().writer())
        .await?;
        let holder: String = sqlx::query_scalar("SELECT holder FROM job_leases WHERE job = $1")
            .bind(job)
            .fetch_one(self.db().readers())
            .await?;
        Ok(holder == self.node_id())
    }

    /// Runs one job now if this node holds (or takes) its lease. Returns the work done.
    pub async fn run_job(&self, job: &str) -> Result<Option<usize>, ServiceError> {
        if !self.acquire_lease(job).await? {
            return Ok(None);
        }
        let done = match job {
            "checkpoints" => self.ledger().sign_all_checkpoints().await?,
            "plan-changes" => self.billing().apply_due_plan_changes().await?,
            "day-close" => self.metering().close_days().await?,
            "month-close" => self.statements().close_months().await?,
            "purge-timer" => self.purge_due_tenants().await?,
            "approval-expiry" => self.approvals().expire().await?,
            "audit-hooks" => self.enqueue_audit_hooks().await?,
            "outbox" => self.deliver_outbox().await?,
            "analyze" => self.refresh_statistics().await?,
            other => return Err(ServiceError::Internal(format!("unknown job {other}"))),
        };
        Ok(Some(done))
    }

    /// Runs every job once (a tick), and this node's own housekeeping, which takes no lease.
    pub async fn run_once(&self) {
        if let Err(error) = self.operators().flush_auth_failures(false).await {
            tracing::error!(%error, "cannot write the failed-authentication aggregates");
        }
        if let Err(error) = self.billing().flush_refusals().await {
            tracing::error!(%error, "cannot write the forward-auth refusal aggregates");
        }
        for job in JOBS {
            let outcome = match self.run_job(job).await {
                Ok(Some(_)) => "ok",
                Ok(None) => "skipped",
                Err(error) => {
                    tracing::error!(job, %error, "background job failed");
                    "failed"
                }
            };
            self.metrics().increment(
                "companyos_jobs_runs_total",
                vec![("job", job.to_owned()), ("outcome", outcome.to_owned())],
                1,
            );
        }
    }

    /// Runs the jobs every `job_interval` until `shutdown` turns true.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let mut interval = tokio::time::interval(self.settings().job_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => self.run_once().await,
                _ = shutdown.changed() => {
                    if *shutdown.borrow() { break; }
                }
            }
        }
        // Runs after the server stopped taking requests: every count reaches the audit log.
        if let Err(error) = self.operators().flush_auth_failures(true).await {
            tracing::error!(%error, "cannot write the failed-authentication aggregates");
        }
        if let Err(error) = self.billing().flush_refusals().await {
            tracing::error!(%error, "cannot write the forward-auth refusal aggregates");
        }
    }

    /// Refreshes PostgreSQL's planner statistics of the growing tables every few minutes, so
    /// plans stay index-based even where autovacuum is off or slow (SQLite: nothing to do).
    pub async fn refresh_statistics(&self) -> Result<usize, ServiceError> {
        if self.db().backend() != crate::db::Backend::Postgres {
            return Ok(0);
        }
        let now = self.now_micros();
        let last: i64 =
            sqlx::query_scalar::<_, String>("SELECT value FROM settings WHERE key = $1")
                .bind(ANALYZED_AT)
                .fetch_optional(self.db().readers())
                .await?
                .and_then(|v| v.parse().ok())
                .unwrap_or(i64::MIN);
        if now.saturating_sub(last) < ANALYZE_INTERVAL_SECONDS * 1_000_000 {
            return Ok(0);
        }
        let tables = [
            "usage_event_bundles",
            "usage_event_keys",
            "ledger_leaf_bundles",
            "ledger_nodes",
            "ledger_heads",
            "audit_events",
            "usage_daily",
            "usage_counters",
        ];
        for table in tables {
            sqlx::query(&format!("ANALYZE {table}"))
                .execute(self.db().writer())
                .await?;
        }
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(ANALYZED_AT)
        .bind(now.to_string())
        .bind(now)
        .execute(self.db().writer())
        .await?;
        Ok(tables.len())
    }

    /// Queues each new audit record of a tenant that subscribed an audit webhook (LIFE-1 audit
    /// hooks) in the outbox, which delivers it signed with the tenant's hook secret.
    pub async fn enqueue_audit_hooks(&self) -> Result<usize, ServiceError> {
        let mut tx = self.db().begin().await?;
        let cursor: i64 =
            sqlx::query_scalar::<_, String>("SELECT value FROM settings WHERE key = $1")
                .bind(AUDIT_HOOKS_CURSOR)
                .fetch_optional(&mut *tx)
                .await?
                .and_then(|v| v.parse().ok())
                .unwrap_or(-1);
        let hooks: std::collections::HashMap<String, String> =
            companyos_store::tenants::audit_webhooks(&mut tx)
                .await?
                .into_iter()
                .map(|(id, url)| (id.into_string(), url))
                .collect();
        let records = crate::audit::query(
            &mut tx,
            &crate::audit::AuditFilter {
                after_seq: Some(cursor),
                limit: AUDIT_HOOK_RECORDS_PER_RUN_MAX,
                ..Default::default()
            },
        )
        .await?;
        let mut queued = 0;
        let mut last = cursor;
        for record in &records {
            last = i64::try_from(record.seq).unwrap_or(last);
            let Some(tenant) = &record.tenant_id else {
                continue;
            };
            let Some(url) = hooks.get(tenant) else {
                continue;
            };
            crate::jobs::outbox::enqueue(
                &mut tx,
                self.now(),
                "audit.record",
                Some(tenant),
                url,
                record.to_json(),
            )
            .await?;
            queued += 1;
        }
        if last != cursor {
            sqlx::query(
                "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(AUDIT_HOOKS_CURSOR)
            .bind(last.to_string())
            .bind(self.now_micros())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(queued)
    }

    /// Purges tenants whose tombstone period is over (the purge timer), as the system.
    pub async fn purge_due_tenants(&self) -> Result<usize, ServiceError> {
        let due = {
            let mut conn = self.db().readers().acquire().await?;
            companyos_store::tenants::due_for_purge(
                &mut conn,
                self.now_micros(),
                PURGES_PER_RUN_MAX,
            )
            .await?
        };
        let system = Actor::system("purge-timer");
        let mut purged = 0;
        for id in due {
            let id = id.into_string();
            let request = LifecycleRequest {
                reason: Some("tombstone period over (retention policy)".to_owned()),
                confirm: Some(id.clone()),
            };
            match self
                .lifecycle()
                .transition(&system, &id, LifecycleAction::Purge, request)
                .await
            {
                Ok(_) => purged += 1,
                Err(error) => tracing::error!(tenant = %id, %error, "timed purge failed"),
            }
        }
        Ok(purged)
    }
}
