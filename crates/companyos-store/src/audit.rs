//! The `audit_events` table: the stored audit records beside the audit log's leaves (which are in
//! `ledger_store` and `bundles`), as the domain's [`AuditRecord`]. Records are written in the
//! caller's transaction, after their leaves were appended to the locked log head; reads filter
//! and page them.

use companyos_domain::audit::{AuditChannel, AuditOutcome, AuditRecord};
use companyos_domain::time_util::{format_rfc3339, from_micros};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use crate::db::{Placeholders, StoreError, statement_chunks, values_placeholders};

/// Upper bound on one page of audit records.
pub const AUDIT_PAGE_MAX: i64 = 10_000;

/// Audit records per insert statement (14 parameters each).
const AUDIT_ROWS_PER_INSERT: usize = 64;

const AUDIT_COLUMNS: &str = "seq, id, occurred_at, actor, role, action, target, tenant_id, \
                             outcome, reason, request_id, policy_sha256, details, channel";

/// Filters of an audit query.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub tenant_id: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub actor: Option<String>,
    pub channel: Option<AuditChannel>,
    pub from_micros: Option<i64>,
    pub to_micros: Option<i64>,
    /// Only records with a larger seq (for paging).
    pub after_seq: Option<i64>,
    /// Only records with a smaller seq (for paging newest first).
    pub before_seq: Option<i64>,
    /// Newest first (the console's pages) instead of log order.
    pub newest_first: bool,
    pub limit: i64,
}

/// Writes `records`, all of which occurred at `occurred_at_micros` (their `occurred_at` text is
/// that instant), in as few statements as the parameter limits allow: a group commit writes a
/// record per request it holds.
pub async fn insert(
    conn: &mut AnyConnection,
    records: &[AuditRecord],
    occurred_at_micros: i64,
) -> Result<(), StoreError> {
    for chunk in statement_chunks(records, AUDIT_ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO audit_events ({AUDIT_COLUMNS}) VALUES {}",
            values_placeholders(Placeholders::of(conn), chunk.len(), 14)
        );
        let mut query = sqlx::query(&sql);
        for record in chunk {
            query = query
                .bind(i64::try_from(record.seq).map_err(|_| StoreError::corrupt("audit seq"))?)
                .bind(record.id.as_str())
                .bind(occurred_at_micros)
                .bind(record.actor.as_str())
                .bind(record.role.as_str())
                .bind(record.action.as_str())
                .bind(record.target.as_str())
                .bind(record.tenant_id.as_deref())
                .bind(record.outcome.as_str())
                .bind(record.reason.as_deref())
                .bind(record.request_id.as_deref())
                .bind(record.policy_sha256.as_str())
                .bind(record.details.to_string())
                .bind(record.channel.map(AuditChannel::as_str));
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

fn record_from_row(row: &AnyRow) -> Result<AuditRecord, StoreError> {
    let outcome: String = row.try_get("outcome")?;
    let details: String = row.try_get("details")?;
    let channel: Option<String> = row.try_get("channel")?;
    Ok(AuditRecord {
        id: row.try_get("id")?,
        seq: u64::try_from(row.try_get::<i64, _>("seq")?)
            .map_err(|_| StoreError::corrupt("negative audit seq"))?,
        occurred_at: format_rfc3339(from_micros(row.try_get("occurred_at")?)),
        actor: row.try_get("actor")?,
        role: row.try_get("role")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        tenant_id: row.try_get("tenant_id")?,
        outcome: AuditOutcome::parse(&outcome)
            .ok_or_else(|| StoreError::corrupt(format!("audit outcome {outcome:?}")))?,
        reason: row.try_get("reason")?,
        request_id: row.try_get("request_id")?,
        policy_sha256: row.try_get("policy_sha256")?,
        details: serde_json::from_str(&details)
            .map_err(|e| StoreError::corrupt(format!("audit details: {e}")))?,
        channel: channel
            .map(|c| {
                AuditChannel::parse(&c)
                    .ok_or_else(|| StoreError::corrupt(format!("audit channel {c:?}")))
            })
            .transpose()?,
    })
}

/// The query of `filter`: a numbered parameter per filter set, text ones first, in the order
/// [`query`] binds them.
fn select_sql(filter: &AuditFilter) -> String {
    let conditions = [
        (filter.tenant_id.is_some(), "tenant_id ="),
        (filter.action.is_some(), "action ="),
        (filter.outcome.is_some(), "outcome ="),
        (filter.actor.is_some(), "actor ="),
        (filter.channel.is_some(), "channel ="),
        (filter.from_micros.is_some(), "occurred_at >="),
        (filter.to_micros.is_some(), "occurred_at <"),
        (filter.after_seq.is_some(), "seq >"),
        (filter.before_seq.is_some(), "seq <"),
    ];
    let mut sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_events WHERE 1 = 1");
    let mut parameters = 0;
    for (_, condition) in conditions.iter().filter(|(set, _)| *set) {
        parameters += 1;
        sql.push_str(&format!(" AND {condition} ${parameters}"));
    }
    let order = if filter.newest_first { "DESC" } else { "ASC" };
    sql.push_str(&format!(" ORDER BY seq {order} LIMIT ${}", parameters + 1));
    sql
}

/// Audit records matching `filter`, in log order (or newest first), at most
/// [`AUDIT_PAGE_MAX`].
pub async fn query(
    conn: &mut AnyConnection,
    filter: &AuditFilter,
) -> Result<Vec<AuditRecord>, StoreError> {
    let sql = select_sql(filter);
    let channel = filter.channel.map(|c| c.as_str().to_owned());
    let mut query = sqlx::query(&sql);
    let texts = [
        &filter.tenant_id,
        &filter.action,
        &filter.outcome,
        &filter.actor,
        &channel,
    ];
    for value in texts.into_iter().flatten() {
        query = query.bind(value.as_str());
    }
    let numbers = [
        filter.from_micros,
        filter.to_micros,
        filter.after_seq,
        filter.before_seq,
    ];
    for value in numbers.into_iter().flatten() {
        query = query.bind(value);
    }
    query = query.bind(filter.limit.clamp(1, AUDIT_PAGE_MAX));
    let rows = query.fetch_all(&mut *conn).await?;
    rows.iter().map(record_from_row).collect()
}

/// One audit record by id.
pub async fn get(conn: &mut AnyConnection, id: &str) -> Result<Option<AuditRecord>, StoreError> {
    let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_events WHERE id = $1");
    let row = sqlx::query(&sql)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(record_from_row).transpose()
}

/// How many audit records are stored.
pub async fn count(conn: &mut AnyConnection) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM audit_events")
        .fetch_one(&mut *conn)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_numbers_only_the_filters_that_are_set() {
        let filter = AuditFilter {
            tenant_id: Some("acme".to_owned()),
            before_seq: Some(9),
            newest_first: true,
            ..AuditFilter::default()
        };
        assert_eq!(
            select_sql(&filter),
            format!(
                "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE 1 = 1 AND tenant_id = $1 \
                 AND seq < $2 ORDER BY seq DESC LIMIT $3"
            )
        );
    }
}
