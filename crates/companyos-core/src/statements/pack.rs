//! The statement pack (CONTRACT §10, docs/spec/statement-pack.md): a zip of the statement, every
//! counted event with its inclusion proof under the statement's signed checkpoint, the tenant's
//! audit records of the month with proofs under a signed audit checkpoint, the policy texts,
//! the plan versions, a README, and a MANIFEST of SHA-256 lines signed with minisign.

use companyos_domain::Action;
use std::collections::BTreeMap;
use std::io::Write as _;

use companyos_domain::TenantId;
use companyos_domain::audit::AuditRecord;
use companyos_domain::statement::{Statement, StatementMonth};
use companyos_domain::time_util::{day_start, to_micros};
use companyos_ledger::checkpoint::Checkpoint;
use companyos_ledger::encoding::base64_encode;
use companyos_ledger::hash::Hash;
use companyos_ledger::note::SignedNote;
use serde::Serialize;
use serde_json::json;
use sqlx::AnyConnection;

use super::events::events_by_month;
use super::render::{statement_csv, statement_pdf};
use super::{StatementDocument, Statements};
use crate::app::Actor;
use crate::audit::AuditFilter;
use crate::db::StoreError;
use crate::error::ServiceError;
use crate::ledger_store;
use crate::lifecycle::TenantRow;
use companyos_domain::LogId;

/// Events in one pack at most: a bigger month is split by the finance export, not zipped whole.
pub const PACK_EVENTS_MAX: usize = 2_000_000;
/// Audit records in one pack or disclosure pack at most.
pub const PACK_AUDIT_RECORDS_MAX: i64 = 100_000;

const README: &str = include_str!("pack_readme.txt");

/// The files of a pack before zipping, by name (sorted: the MANIFEST's order).
pub type PackFiles = BTreeMap<String, Vec<u8>>;

impl Statements<'_> {
    /// The statement pack of a month, audited as `statement.pack` (a download the disclosure
    /// pack lists).
    pub async fn pack(
        &self,
        actor: &Actor,
        tenant_id: &TenantId,
        month: StatementMonth,
    ) -> Result<Vec<u8>, ServiceError> {
        let app = self.app;
        let mut conn = app.db().readers().acquire().await?;
        let tenant = app
            .readable_tenant(&mut conn, actor, tenant_id.as_str(), Action::StatementRead)
            .await?;
        let document = self.document(&mut conn, &tenant, month).await?;
        let mut files = self.pack_files(&mut conn, &tenant, &document).await?;
        drop(conn);
        let zip = sign_and_zip(
            app,
            &mut files,
            &format!("statement pack {tenant_id} {month}"),
        )?;
        let entry = app
            .entry(actor, "statement.pack", &tenant.target())
            .tenant(tenant.id.as_str())
            .details(json!({
                "month": month.label(),
                "statement_sha256": document.sha256,
                "pack_sha256": companyos_ledger::hash::sha256(&zip).to_hex(),
            }));
        let tx = app.db().begin().await?;
        app.finish(tx, entry, Ok(zip)).await
    }

    async fn pack_files(
        &self,
        conn: &mut AnyConnection,
        tenant: &TenantRow,
        document: &StatementDocument,
    ) -> Result<PackFiles, ServiceError> {
        let app = self.app;
        let statement = &document.statement;
        let mut files = PackFiles::new();
        files.insert(
            "statement.json".into(),
            document.canonical.clone().into_bytes(),
        );
        files.insert(
            "statement.csv".into(),
            statement_csv(statement).into_bytes(),
        );
        files.insert("statement.pdf".into(), statement_pdf(statement));
        let note = statement.ledger.checkpoint.clone();
        let tree_size = checkpoint_size(&note)?;
        files.insert("checkpoint.txt".into(), note.into_bytes());
        let month = statement.month;
        let (events, proofs) = self
            .events_with_proofs(conn, tenant, statement, tree_size)
            .await?;
        files.insert("events.ndjson".into(), events.into_bytes());
        files.insert("proofs.json".into(), proofs);
        let (audit_lines, audit_note) = self.audit_excerpt(conn, tenant.id.as_str(), month).await?;
        files.insert("audit.ndjson".into(), audit_lines.into_bytes());
        files.insert("audit-checkpoint.txt".into(), audit_note.into_bytes());
        files.insert(
            "policies/global.cedar".into(),
            app.authorizer().policy_text().as_bytes().to_vec(),
        );
        files.insert(
            "policies/tenant.cedar".into(),
            tenant.policy_text.clone().into_bytes(),
        );
        files.insert("plan.json".into(), self.plan_json(&tenant.id, month).await?);
        files.insert("README.txt".into(), README.as_bytes().to_vec());
        Ok(files)
    }

    /// The month's events as `events.ndjson` lines, and their inclusion proofs under the
    /// statement's checkpoint (`tree_size` leaves) as `proofs.json`.
    async fn events_with_proofs(
        &self,
        conn: &mut AnyConnection,
        tenant: &TenantRow,
        statement: &Statement,
        tree_size: u64,
    ) -> Result<(String, Vec<u8>), ServiceError> {
        let month = statement.month;
        let mut events =
            events_by_month(conn, tenant.id.as_str(), tree_size, &|m| m == month).await?;
        let events = events.remove(&month).unwrap_or_default();
        if events.is_empty() && statement.ledger.to_seq.is_some() {
            // Purge deletes the payloads; the leaves stay, but they cannot prove quantities.
            return Err(ServiceError::Conflict {
                message: format!(
                    "the events of tenant {} were purged: its statement of {month} can no longer \
                     be proved by a pack",
                    tenant.id
                ),
                current_status: Some(tenant.status.as_str().to_owned()),
            });
        }
        if events.len() > PACK_EVENTS_MAX {
            return Err(ServiceError::invalid(
                "month",
                format!("has more than {PACK_EVENTS_MAX} events: export it in parts"),
            ));
        }
        let log_id = LogId::Usage(tenant.id.clone());
        let mut lines = String::new();
        let mut proofs = Vec::with_capacity(events.len());
        for event in &events {
            lines.push_str(&format!(
                "{{\"seq\":{},\"event\":{}}}\n",
                event.seq, event.canonical
            ));
            proofs.push(leaf_proof(conn, &log_id, event.seq, tree_size).await?);
        }
        Ok((lines, serde_json::to_vec(&proofs).map_err(internal)?))
    }

    /// `plan.json`: the plan versions in force in the month, with their specs.
    async fn plan_json(
        &self,
        tenant_id: &TenantId,
        month: StatementMonth,
    ) -> Result<Vec<u8>, ServiceError> {
        let plans = self.plans_for_month(tenant_id, month).await?;
        let plan_json: Vec<serde_json::Value> = plans
            .iter()
            .map(|p| {
                let spec: serde_json::Value =
                    serde_json::from_str(&p.version.spec.canonical_json()).unwrap_or_default();
                json!({"plan": p.version.plan.as_str(), "version": p.version.version,
                       "sha256": p.version.sha256_hex(),
                       "from": companyos_domain::time_util::format_day(p.from),
                       "to": companyos_domain::time_util::format_day(p.to), "spec": spec})
            })
            .collect();
        serde_json::to_vec_pretty(&plan_json).map_err(internal)
    }

    /// The tenant's audit records of the month with proofs under a fresh audit checkpoint.
    async fn audit_excerpt(
        &self,
        conn: &mut AnyConnection,
        tenant_id: &str,
        month: StatementMonth,
    ) -> Result<(String, String), ServiceError> {
        let from = to_micros(day_start(month.first_day()));
        let to = to_micros(day_start(month.end()));
        self.app.audit_lines(conn, tenant_id, from, to).await
    }
}

impl crate::App {
    /// Audit records of a tenant with `from <= occurred_at < to` as pack lines (`{"leaf_index",
    /// "record", "leaf_data", "proof"}`) and the signed audit checkpoint they are proved
    /// against. Records appended after the checkpoint are left for a later pack.
    pub(crate) async fn audit_lines(
        &self,
        conn: &mut AnyConnection,
        tenant_id: &str,
        from_micros: i64,
        to_micros: i64,
    ) -> Result<(String, String), ServiceError> {
        let origin = self.origin_of(&LogId::Audit);
        let checkpoint = self
            .ledger()
            .sign_checkpoint(&LogId::Audit, &origin)
            .await?;
        let (tree_size, note) = match checkpoint {
            Some(c) => (c.tree_size, c.note),
            None => (0, String::new()),
        };
        let records: Vec<AuditRecord> = crate::audit::query(
            conn,
            &AuditFilter {
                tenant_id: Some(tenant_id.to_owned()),
                from_micros: Some(from_micros),
                to_micros: Some(to_micros),
                limit: PACK_AUDIT_RECORDS_MAX,
                ..Default::default()
            },
        )
        .await?;
        let mut lines = String::new();
        for record in records.iter().filter(|r| r.seq < tree_size) {
            let proof = leaf_proof(conn, &LogId::Audit, record.seq, tree_size).await?;
            let line = AuditLine {
                leaf_index: proof.leaf_index,
                record: record.to_json(),
                leaf_data: proof.leaf_data,
                proof: proof.proof,
            };
            lines.push_str(&serde_json::to_string(&line).map_err(internal)?);
            lines.push('\n');
        }
        Ok((lines, note))
    }
}

/// The tree size a signed checkpoint note commits to.
fn checkpoint_size(note: &str) -> Result<u64, ServiceError> {
    if note.is_empty() {
        return Ok(0);
    }
    let parsed = SignedNote::parse(note.as_bytes()).map_err(internal)?;
    Ok(Checkpoint::parse_note_text(parsed.text())
        .map_err(internal)?
        .tree_size())
}

/// One entry of `proofs.json`: a leaf, base64, and its inclusion proof, hex hashes.
#[derive(Debug, Serialize)]
struct LeafProof {
    leaf_index: u64,
    tree_size: u64,
    leaf_data: String,
    proof: Vec<String>,
}

/// One line of `audit.ndjson`. The members keep the order packs have always written: the line
/// was once a [`LeafProof`] whose `tree_size` member was swapped out for `record`.
#[derive(Debug, Serialize)]
struct AuditLine {
    leaf_index: u64,
    record: serde_json::Value,
    leaf_data: String,
    proof: Vec<String>,
}

async fn leaf_proof(
    conn: &mut AnyConnection,
    log_id: &LogId,
    leaf_index: u64,
    tree_size: u64,
) -> Result<LeafProof, ServiceError> {
    let (_, leaf_data) = ledger_store::read_leaf(conn, log_id, leaf_index)
        .await?
        .ok_or_else(|| StoreError::corrupt(format!("leaf {leaf_index} of {log_id} is missing")))?;
    let proof = ledger_store::inclusion_proof(conn, log_id, leaf_index, tree_size).await?;
    Ok(LeafProof {
        leaf_index,
        tree_size,
        leaf_data: base64_encode(&leaf_data),
        proof: proof.iter().map(Hash::to_hex).collect(),
    })
}

fn internal(error: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(error.to_string())
}

/// Adds `MANIFEST` (`<sha256 hex>  <name>` per file, sorted by name) and `MANIFEST.minisig`
/// (signed with the evidence key), then zips every file (deflate).
pub(crate) fn sign_and_zip(
    app: &crate::App,
    files: &mut PackFiles,
    trusted_comment: &str,
) -> Result<Vec<u8>, ServiceError> {
    let manifest: String = files
        .iter()
        .map(|(name, bytes)| {
            format!(
                "{}  {name}\n",
                companyos_ledger::hash::sha256(bytes).to_hex()
            )
        })
        .collect();
    let signature = app
        .keys()
        .minisign
        .sign(manifest.as_bytes(), trusted_comment);
    files.insert("MANIFEST".into(), manifest.into_bytes());
    files.insert("MANIFEST.minisig".into(), signature.into_bytes());
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default());
    for (name, bytes) in files.iter() {
        writer
            .start_file(name.as_str(), options)
            .map_err(internal)?;
        writer.write_all(bytes).map_err(internal)?;
    }
    Ok(writer.finish().map_err(internal)?.into_inner())
}
