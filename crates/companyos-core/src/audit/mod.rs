//! The audit log (CONTRACT §8): every mutation and every denied or failed attempt, written in the
//! transaction of the change it records, each record a leaf of one verifiable log with signed
//! checkpoints, so any excerpt can be proven and any tampering is found by `audit verify`.

use companyos_domain::LogId;
use companyos_domain::audit::{AuditChannel, AuditOutcome, AuditRecord};
use companyos_domain::time_util::format_rfc3339;
use companyos_ledger::leaf::AuditLeaf;
use companyos_ledger::usage_event::EventDigest;
use serde_json::Value;
use sqlx::AnyConnection;
use std::collections::HashMap;
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

use companyos_store::audit as audit_rows;
pub use companyos_store::audit::{AUDIT_PAGE_MAX, AuditFilter, get, query};

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

    /// The record's tenant when `tenant_id` names one (a valid tenant id): a request about a
    /// malformed id is still audited, against its target only, so the tenant's own audit trail
    /// never holds an id no tenant can have.
    pub fn tenant_if_valid(self, tenant_id: &str) -> Self {
        if companyos_domain::TenantId::parse(tenant_id).is_ok() {
            self.tenant(tenant_id)
        } else {
            self
        }
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

/// Appends records to the audit log inside the caller's transaction: each becomes the next
/// leaf of the locked audit log head, then the records and the leaves are written.
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
    let mut records = Vec::with_capacity(entries.len());
    for entry in entries {
        let record = entry.into_record(head.next_index(), policy_sha256, now);
        let index = head.append(&leaf_of(&record)?.to_bytes());
        assert_eq!(index, record.seq);
        records.push(record);
    }
    let now_micros = companyos_domain::time_util::to_micros(now);
    // One multi-row insert (a group commit appends a record per request it holds).
    audit_rows::insert(conn, &records, now_micros).await?;
    ledger_store::write_appends(conn, &mut head, now_micros).await?;
    Ok(records)
}

impl NewAudit {
    /// The record this entry becomes as leaf `seq` of the audit log, written at `now`.
    fn into_record(self, seq: u64, policy_sha256: &str, now: OffsetDateTime) -> AuditRecord {
        AuditRecord {
            id: self.id.unwrap_or_else(|| new_id("aud", now)),
            seq,
            occurred_at: format_rfc3339(now),
            actor: self.actor,
            role: self.role,
            action: self.action,
            target: self.target,
            tenant_id: self.tenant_id,
            outcome: self.outcome,
            reason: self.reason,
            request_id: self.request_id,
            policy_sha256: policy_sha256.to_owned(),
            details: self.details,
            channel: self.channel,
        }
    }
}

/// The leaf that commits to `record`: its seq, its id and the digest of its canonical form.
fn leaf_of(record: &AuditRecord) -> Result<AuditLeaf, StoreError> {
    let canonical = record
        .canonical()
        .map_err(|e| StoreError::corrupt(format!("audit record has no canonical form: {e}")))?;
    Ok(AuditLeaf {
        leaf_index: record.seq,
        audit_id: record.id.clone(),
        digest: EventDigest::of_canonical(canonical.as_bytes()),
    })
}

/// Verifies the audit log: the tree, its checkpoints, that each leaf commits to the stored
/// record with that seq, and that there are as many records as leaves.
pub async fn verify(
    conn: &mut AnyConnection,
    verifier: &companyos_ledger::NoteVerifier,
    origin: &str,
) -> Result<Vec<LogProblem>, StoreError> {
    let mut leaf_datas: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut problems =
        ledger_store::verify_log(conn, &LogId::Audit, verifier, origin, |index, data| {
            leaf_datas.push((index, data.to_vec()));
            None
        })
        .await?;
    let mut records = RecordPages::new();
    for (index, data) in leaf_datas {
        let record = records.get(conn, index).await?;
        if let Some(message) = leaf_problem(index, &data, record) {
            problems.push(audit_problem(Some(index), message));
        }
    }
    let stored = audit_rows::count(conn).await?;
    let leaves = crate::bundles::count_leaves(conn, &LogId::Audit).await?;
    if stored != leaves {
        let message = format!("{stored} audit records but {leaves} leaves");
        problems.push(audit_problem(None, message));
    }
    Ok(problems)
}

fn audit_problem(leaf_index: Option<u64>, message: String) -> LogProblem {
    LogProblem {
        log_id: LogId::Audit.to_string(),
        leaf_index,
        message,
    }
}

/// What is wrong with leaf `index` (its bytes `data`) against the stored record of that seq.
fn leaf_problem(index: u64, data: &[u8], record: Option<&AuditRecord>) -> Option<String> {
    let leaf = match AuditLeaf::parse(data) {
        Ok(leaf) => leaf,
        Err(e) => return Some(format!("leaf data is not an audit leaf: {e}")),
    };
    let Some(record) = record else {
        return Some("audit record is missing".to_owned());
    };
    let digest = record
        .canonical()
        .map(|c| EventDigest::of_canonical(c.as_bytes()));
    if leaf.leaf_index != index || leaf.audit_id != record.id {
        Some("leaf names a different audit record".to_owned())
    } else if digest.ok() != Some(leaf.digest) {
        Some(format!(
            "audit record {} does not match its leaf digest",
            record.id
        ))
    } else {
        None
    }
}

/// The stored records beside the leaves being verified, read a page at a time so memory stays
/// bounded however long the log.
struct RecordPages {
    records: HashMap<u64, AuditRecord>,
    /// The highest seq read so far (-1 before the first page).
    loaded_through: i64,
}

impl RecordPages {
    fn new() -> Self {
        Self {
            records: HashMap::new(),
            loaded_through: -1,
        }
    }

    /// The record with seq `index`, reading the next page when `index` is past the current one.
    async fn get(
        &mut self,
        conn: &mut AnyConnection,
        index: u64,
    ) -> Result<Option<&AuditRecord>, StoreError> {
        if i64::try_from(index).unwrap_or(i64::MAX) > self.loaded_through {
            self.records.clear();
            let filter = AuditFilter {
                after_seq: Some(self.loaded_through),
                limit: AUDIT_PAGE_MAX,
                ..AuditFilter::default()
            };
            for record in query(conn, &filter).await? {
                let seq = i64::try_from(record.seq).unwrap_or(i64::MAX);
                self.loaded_through = self.loaded_through.max(seq);
                self.records.insert(record.seq, record);
            }
        }
        Ok(self.records.get(&index))
    }
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
