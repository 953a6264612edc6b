//! The audit log (CONTRACT §8): every mutation and every denied or failed attempt, written in the
//! transaction of the change it records, each record a leaf of one verifiable log with signed
//! checkpoints, so any excerpt can be proven and any tampering is found by `audit verify`.

use companyos_domain::LogId;
use companyos_domain::audit::{AuditChannel, AuditOutcome, AuditRecord};
use companyos_domain::time_util::{format_rfc3339, from_micros};
use companyos_ledger::leaf::AuditLeaf;
use companyos_ledger::usage_event::EventDigest;
use serde_json::Value;
use sqlx::{AnyConnection, Row as _};
use time::OffsetDateTime;

use crate::app::{Actor, Audit};
use crate::authz::Principal;
use crate::authz::Resource;
use crate::db::{Db, StoreError};
use crate::error::ServiceError;
use crate::ledger_store::{self, LogProblem};
use crate::util::new_id;
use companyos_domain::Action;

pub mod auth_failures;

/// Upper bound on one page of audit records.
pub const AUDIT_PAGE_MAX: i64 = 10_000;

/// An audit record to write.
#[derive(Debug, Clone)]
pub struct NewAudit {
    /// A pre-assigned id, when the caller must name the record before it is written.
    pub id: Option<String>,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub target: String,
    pub tenant_id: Option<String>,
    pub outcome: AuditOutcome,
    pub reason: Option<String>,
    pub request_id: Option<String>,
    pub details: Value,
    /// The adapter the request came through (see [`AuditChannel`]).
    pub channel: Option<AuditChannel>,
}

impl NewAudit {
    pub fn new(
        principal: &Principal,
        request_id: Option<&str>,
        action: &str,
        target: &str,
    ) -> Self {
        Self {
            id: None,
            actor: principal.actor_name(),
            role: principal.role_name(),
            action: action.to_owned(),
            target: target.to_owned(),
            tenant_id: None,
            outcome: AuditOutcome::Success,
            reason: None,
            request_id: request_id.map(str::to_owned),
            details: Value::Object(Default::default()),
            channel: None,
        }
    }

    pub fn channel(mut self, channel: Option<AuditChannel>) -> Self {
        self.channel = channel;
        self
    }

    pub fn tenant(mut self, tenant_id: &str) -> Self {
        self.tenant_id = Some(tenant_id.to_owned());
        self
    }

    pub fn outcome(mut self, outcome: AuditOutcome) -> Self {
        self.outcome = outcome;
        self
    }

    pub fn reason(mut self, reason: Option<&str>) -> Self {
        self.reason = reason.map(str::to_owned);
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// Audit records per insert statement (14 parameters each).
const AUDIT_ROWS_PER_INSERT: usize = 64;

/// Appends records to the audit log inside the caller's transaction.
pub async fn append(
    db: &Db,
    conn: &mut AnyConnection,
    policy_sha256: &str,
    now: OffsetDateTime,
    entries: Vec<NewAudit>,
) -> Result<Vec<AuditRecord>, StoreError> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let mut head = ledger_store::lock_head(db, conn, &LogId::Audit).await?;
    let now_micros = companyos_domain::time_util::to_micros(now);
    let mut records = Vec::with_capacity(entries.len());
    for entry in entries {
        let seq = head.next_index();
        let record = AuditRecord {
            id: entry.id.unwrap_or_else(|| new_id("aud", now)),
            seq,
            occurred_at: format_rfc3339(now),
            actor: entry.actor,
            role: entry.role,
            action: entry.action,
            target: entry.target,
            tenant_id: entry.tenant_id,
            outcome: entry.outcome,
            reason: entry.reason,
            request_id: entry.request_id,
            policy_sha256: policy_sha256.to_owned(),
            details: entry.details,
            channel: entry.channel,
        };
        let canonical = record
            .canonical()
            .map_err(|e| StoreError::corrupt(format!("audit record has no canonical form: {e}")))?;
        let leaf = AuditLeaf {
            leaf_index: seq,
            audit_id: record.id.clone(),
            digest: EventDigest::of_canonical(canonical.as_bytes()),
        };
        let index = head.append(&leaf.to_bytes());
        assert_eq!(index, seq);
        records.push(record);
    }
    // One multi-row insert (a group commit appends a record per request it holds).
    for chunk in crate::db::statement_chunks(&records, AUDIT_ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO audit_events (seq, id, occurred_at, actor, role, action, target, \
             tenant_id, outcome, reason, request_id, policy_sha256, details, channel) VALUES {}",
            crate::db::values_placeholders(crate::db::Placeholders::of(conn), chunk.len(), 14)
        );
        let mut query = sqlx::query(&sql);
        for record in chunk {
            query = query
                .bind(i64::try_from(record.seq).map_err(|_| StoreError::corrupt("audit seq"))?)
                .bind(record.id.as_str())
                .bind(now_micros)
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
    ledger_store::write_appends(conn, &mut head, now_micros).await?;
    Ok(records)
}

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

fn record_from_row(row: &sqlx::any::AnyRow) -> Result<AuditRecord, StoreError> {
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

const AUDIT_COLUMNS: &str = "seq, id, occurred_at, actor, role, action, target, tenant_id, \
                             outcome, reason, request_id, policy_sha256, details, channel";

/// Audit records matching `filter`, in log order.
pub async fn query(
    conn: &mut AnyConnection,
    filter: &AuditFilter,
) -> Result<Vec<AuditRecord>, StoreError> {
    let mut sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_events WHERE 1 = 1");
    let mut n = 0;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    if filter.tenant_id.is_some() {
        sql.push_str(&format!(" AND tenant_id = {}", next()));
    }
    if filter.action.is_some() {
        sql.push_str(&format!(" AND action = {}", next()));
    }
    if filter.outcome.is_some() {
        sql.push_str(&format!(" AND outcome = {}", next()));
    }
    if filter.actor.is_some() {
        sql.push_str(&format!(" AND actor = {}", next()));
    }
    if filter.channel.is_some() {
        sql.push_str(&format!(" AND channel = {}", next()));
    }
    if filter.from_micros.is_some() {
        sql.push_str(&format!(" AND occurred_at >= {}", next()));
    }
    if filter.to_micros.is_some() {
        sql.push_str(&format!(" AND occurred_at < {}", next()));
    }
    if filter.after_seq.is_some() {
        sql.push_str(&format!(" AND seq > {}", next()));
    }
    if filter.before_seq.is_some() {
        sql.push_str(&format!(" AND seq < {}", next()));
    }
    let order = if filter.newest_first { "DESC" } else { "ASC" };
    sql.push_str(&format!(" ORDER BY seq {order} LIMIT {}", next()));
    let channel = filter.channel.map(|c| c.as_str().to_owned());
    let mut query = sqlx::query(&sql);
    for value in [
        &filter.tenant_id,
        &filter.action,
        &filter.outcome,
        &filter.actor,
        &channel,
    ]
    .into_iter()
    .flatten()
    {
        query = query.bind(value.as_str());
    }
    for value in [
        filter.from_micros,
        filter.to_micros,
        filter.after_seq,
        filter.before_seq,
    ]
    .into_iter()
    .flatten()
    {
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

/// Verifies the audit log: the tree, its checkpoints, and that each leaf commits to the stored
/// record with that seq.
pub async fn verify(
    conn: &mut AnyConnection,
    verifier: &companyos_ledger::NoteVerifier,
    origin: &str,
) -> Result<Vec<LogProblem>, StoreError> {
    // Records are read page by page beside the leaves, so memory stays bounded.
    let mut records: std::collections::HashMap<u64, AuditRecord> = Default::default();
    let mut loaded_through: i64 = -1;
    let mut leaf_datas: Vec<(u64, Vec<u8>)> = Vec::new();
    let problems =
        ledger_store::verify_log(conn, &LogId::Audit, verifier, origin, |index, data| {
            leaf_datas.push((index, data.to_vec()));
            None
        })
        .await?;
    let mut all = problems;
    for (index, data) in leaf_datas {
        if i64::try_from(index).unwrap_or(i64::MAX) > loaded_through {
            records.clear();
            let page = query(
                conn,
                &AuditFilter {
                    after_seq: Some(loaded_through),
                    limit: AUDIT_PAGE_MAX,
                    ..AuditFilter::default()
                },
            )
            .await?;
            for record in page {
                loaded_through = loaded_through.max(i64::try_from(record.seq).unwrap_or(i64::MAX));
                records.insert(record.seq, record);
            }
        }
        let problem = |message: String| LogProblem {
            log_id: LogId::Audit.to_string(),
            leaf_index: Some(index),
            message,
        };
        let leaf = match AuditLeaf::parse(&data) {
            Ok(leaf) => leaf,
            Err(e) => {
                all.push(problem(format!("leaf data is not an audit leaf: {e}")));
                continue;
            }
        };
        match records.get(&index) {
            None => all.push(problem("audit record is missing".to_owned())),
            Some(record) => {
                let digest = record
                    .canonical()
                    .map(|c| EventDigest::of_canonical(c.as_bytes()));
                if leaf.leaf_index != index || leaf.audit_id != record.id {
                    all.push(problem("leaf names a different audit record".to_owned()));
                } else if digest.ok() != Some(leaf.digest) {
                    all.push(problem(format!(
                        "audit record {} does not match its leaf digest",
                        record.id
                    )));
                }
            }
        }
    }
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events")
        .fetch_one(&mut *conn)
        .await?;
    let leaves = crate::bundles::count_leaves(conn, &LogId::Audit).await?;
    if stored != leaves {
        all.push(LogProblem {
            log_id: LogId::Audit.to_string(),
            leaf_index: None,
            message: format!("{stored} audit records but {leaves} leaves"),
        });
    }
    Ok(all)
}

impl Audit<'_> {
    /// Audit records matching `filter`.
    pub async fn records(
        &self,
        actor: &Actor,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditRecord>, ServiceError> {
        self.authorize_read(
            actor,
            Action::AuditRead,
            Resource::Deployment,
            "audit",
            filter.tenant_id.as_deref(),
        )
        .await?;
        let mut conn = self.db().readers().acquire().await?;
        Ok(query(&mut conn, filter).await?)
    }

    /// Verifies the audit log (for `companyos audit verify` and the integrity job).
    pub async fn verify(&self) -> Result<Vec<crate::ledger_store::LogProblem>, ServiceError> {
        // One snapshot: the head, the leaves and the records as they were committed together.
        let mut snapshot = self.db().begin_snapshot().await?;
        let problems = verify(
            &mut snapshot,
            &self.inner.keys.checkpoint_verifier(),
            &self.settings().audit_origin(),
        )
        .await?;
        snapshot.rollback().await.map_err(StoreError::from)?;
        Ok(problems)
    }
}
