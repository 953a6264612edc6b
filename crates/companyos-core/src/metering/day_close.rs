//! Day close (MET-3): every day of every tenant closes once its late window has passed, with or
//! without usage, sealing its rollup (a hash, and the ledger's tree size at close). Events of a
//! closed day are late adjustments that never change it; a month whose days are all closed can
//! be final.

use companyos_domain::time_util::{day_from_number, day_number, format_day, utc_day};
use serde_json::{Value, json};
use sqlx::{AnyConnection, Row as _};

use crate::app::App;
use crate::app::Metering;
use crate::db::{StoreError, Tx};
use crate::error::ServiceError;
use crate::ledger_store;
use companyos_domain::{LogId, TenantId};

/// Days with usage closed per run of the job (the rest in the next run).
const DAYS_WITH_USAGE_PER_RUN_MAX: i64 = 1000;
/// Tenants whose quiet days are swept per run.
const TENANTS_PER_RUN_MAX: i64 = 100;
/// Days of one tenant closed in one transaction (a tenant created long ago catches up over
/// several runs).
const DAYS_PER_TENANT_PER_RUN_MAX: i64 = 400;
/// Microseconds in a day: `micros / MICROS_PER_DAY` is the Unix day number of an instant.
const MICROS_PER_DAY: i64 = 86_400_000_000;

impl App {
    async fn close_days_with_usage(&self, cutoff: i64) -> Result<usize, ServiceError> {
        let pending = sqlx::query(
            "SELECT c.tenant_id, c.day FROM usage_counters c LEFT JOIN usage_days_closed d \
             ON d.tenant_id = c.tenant_id AND d.day = c.day \
             WHERE d.day IS NULL AND c.day <= $1 ORDER BY c.tenant_id, c.day LIMIT $2",
        )
        .bind(cutoff)
        .bind(DAYS_WITH_USAGE_PER_RUN_MAX)
        .fetch_all(self.db().readers())
        .await?;
        let mut closed = 0;
        for row in &pending {
            let tenant_id: String = row.try_get("tenant_id")?;
            let day: i64 = row.try_get("day")?;
            let (mut tx, tree_size) = self.begin_with_head_locked(&tenant_id).await?;
            closed += self.seal_day(&mut tx, &tenant_id, day, tree_size).await?;
            tx.commit().await?;
        }
        Ok(closed)
    }

    /// Closes the days after each tenant's watermark (`usage_days_closed_through`) up to
    /// `cutoff`, or up to the day of its purge, and moves the watermark.
    async fn close_quiet_days(&self, cutoff: i64) -> Result<usize, ServiceError> {
        let tenants = sqlx::query(
            "SELECT t.id, t.created_at, t.purged_at, w.day AS through FROM tenants t \
             LEFT JOIN usage_days_closed_through w ON w.tenant_id = t.id \
             WHERE (w.day IS NULL OR w.day < $1) \
             AND (t.purged_at IS NULL OR w.day IS NULL OR w.day < t.purged_at / $2) \
             ORDER BY t.id LIMIT $3",
        )
        .bind(cutoff)
        .bind(MICROS_PER_DAY)
        .bind(TENANTS_PER_RUN_MAX)
        .fetch_all(self.db().readers())
        .await?;
        let mut closed = 0;
        for row in &tenants {
            let tenant_id: String = row.try_get("id")?;
            let created_day = row
                .try_get::<i64, _>("created_at")?
                .div_euclid(MICROS_PER_DAY);
            let purged_day = row
                .try_get::<Option<i64>, _>("purged_at")?
                .map(|at| at.div_euclid(MICROS_PER_DAY));
            let through: Option<i64> = row.try_get("through")?;
            let first = through.map_or(created_day, |day| day + 1);
            let last = purged_day.map_or(cutoff, |purged| purged.min(cutoff));
            let last = last.min(first + DAYS_PER_TENANT_PER_RUN_MAX - 1);
            if last < first {
                // Created after the cutoff: the watermark starts the day before creation.
                self.move_watermark(&tenant_id, first - 1, through).await?;
                continue;
            }
            let (mut tx, tree_size) = self.begin_with_head_locked(&tenant_id).await?;
            for day in first..=last {
                closed += self.seal_day(&mut tx, &tenant_id, day, tree_size).await?;
            }
            set_watermark(&mut tx, &tenant_id, last).await?;
            tx.commit().await?;
        }
        Ok(closed)
    }

    /// A transaction holding the tenant's usage ledger head lock, which serialises day close
    /// with the tenant's ingestion, and the ledger's tree size under that lock.
    async fn begin_with_head_locked(&self, tenant_id: &str) -> Result<(Tx, i64), ServiceError> {
        let mut tx = self.db().begin().await?;
        let log_id = LogId::Usage(TenantId::parse(tenant_id)?);
        let head = ledger_store::lock_head(self.db(), &mut tx, &log_id).await?;
        let tree_size = i64::try_from(head.tree_size()).map_err(|_| StoreError::corrupt("size"))?;
        Ok((tx, tree_size))
    }

    async fn move_watermark(
        &self,
        tenant_id: &str,
        day: i64,
        through: Option<i64>,
    ) -> Result<(), ServiceError> {
        if through == Some(day) {
            return Ok(());
        }
        let mut tx = self.db().begin().await?;
        set_watermark(&mut tx, tenant_id, day).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Closes one day of a tenant (idempotent): its rollup's hash and the tree size at close.
    /// Returns 1 when this call closed it.
    async fn seal_day(
        &self,
        tx: &mut Tx,
        tenant_id: &str,
        day: i64,
        tree_size: i64,
    ) -> Result<usize, ServiceError> {
        let rollup = crate::ledger::stored_rollups(tx, tenant_id, Some((day, day))).await?;
        let document: Vec<Value> = rollup
            .iter()
            .map(|((_, service, metric, unit), (sum, events))| {
                json!({"service": service, "metric": metric, "unit": unit,
                       "quantity": sum.to_string(), "events": events})
            })
            .collect();
        let canonical = companyos_ledger::jcs::canonicalize(&json!({
            "tenant_id": tenant_id,
            "date": format_day(day_from_number(day)),
            "rollups": document,
        }))
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let hash = companyos_ledger::hash::sha256(canonical.as_bytes()).to_hex();
        let inserted = sqlx::query(
            "INSERT INTO usage_days_closed (tenant_id, day, closed_at, tree_size, rollup_sha256) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, day) DO NOTHING",
        )
        .bind(tenant_id)
        .bind(day)
        .bind(self.now_micros())
        .bind(tree_size)
        .bind(hash.as_str())
        .execute(&mut **tx)
        .await?;
        Ok(usize::try_from(inserted.rows_affected()).unwrap_or(0))
    }
}

impl Metering<'_> {
    /// Closes every day whose late window has passed: first the days that have usage, then,
    /// for each tenant, every day from its creation on, quiet ones included.
    pub async fn close_days(&self) -> Result<usize, ServiceError> {
        let cutoff = day_number(utc_day(self.now() - self.settings().late_window)) - 1;
        let mut closed = self.close_days_with_usage(cutoff).await?;
        closed += self.close_quiet_days(cutoff).await?;
        Ok(closed)
    }
}

async fn set_watermark(
    conn: &mut AnyConnection,
    tenant_id: &str,
    day: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO usage_days_closed_through (tenant_id, day) VALUES ($1, $2) \
         ON CONFLICT (tenant_id) DO UPDATE SET day = excluded.day",
    )
    .bind(tenant_id)
    .bind(day)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
