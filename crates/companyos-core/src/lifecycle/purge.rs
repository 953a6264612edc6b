//! Purge (LIFE-3): the boundary, payloads and keys go, a final checkpoint and the signed deletion certificate stay; workloads scaled to zero and back.

#[allow(unused_imports)]
use super::*;
use companyos_domain::LogId;
use time::OffsetDateTime;

use super::boundary::StepError;

/// What a purge's steps deleted, with their step log.
struct Purged {
    steps: StepLog,
    boundary: Value,
    payloads: u64,
    keys: u64,
    workloads: u64,
}

impl App {
    pub(super) async fn purge(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        tenant: &mut TenantRow,
        reason: &str,
        approval_id: Option<&str>,
        warnings: &[String],
    ) -> Result<EvidenceRecord, ServiceError> {
        let now = self.now();
        let purged = self.purge_steps(tx, tenant, now).await?;
        let final_checkpoint = self.final_checkpoint(tx, &tenant.id).await?;
        let approvals = deletion_approvals(tx, &tenant.id, actor, approval_id, now).await?;
        let certificate = json!({
            "kind": "deletion-certificate",
            "version": 1,
            "tenant": {
                "id": tenant.id,
                "name": tenant.name,
                "plan": tenant.plan,
                "created_at": format_rfc3339(from_micros(tenant.created_at)),
                "deleted_at": time_or_null(tenant.deleted_at),
                "purged_at": format_rfc3339(now),
            },
            "reason": reason,
            "purged_by": actor.principal.actor_name(),
            "approval_id": approval_id,
            "approvals": approvals,
            "warnings_given": warnings,
            "deleted": {
                "boundary": purged.boundary,
                "usage_event_payloads": purged.payloads,
                "api_keys_revoked": purged.keys,
                "workloads": purged.workloads,
            },
            "retained": retained_after_purge(),
            "final_checkpoint": final_checkpoint,
            "ledger_verifier_key": self.ledger().verifier_key(),
            "steps": purged.steps,
        });
        let bytes = serde_json::to_vec_pretty(&certificate)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        tenant.purged_at = Some(to_micros(now));
        self.evidence()
            .store_in(
                tx,
                actor,
                NewArtifact {
                    kind: "deletion-certificate",
                    tenant_id: Some(tenant.id.as_str().to_owned()),
                    file_name: format!("deletion-certificate-{}.json", tenant.id),
                    content_type: "application/json",
                    bytes,
                    metadata: json!({"usage_event_payloads_deleted": purged.payloads}),
                },
            )
            .await
    }

    /// The recorded steps of a purge: the boundary removed, the usage payloads (and conflicts
    /// and rejections) deleted, the keys revoked, the workloads deleted.
    async fn purge_steps(
        &self,
        tx: &mut Tx,
        tenant: &TenantRow,
        now: OffsetDateTime,
    ) -> Result<Purged, ServiceError> {
        let mut steps = StepLog::default();
        let db = self.db().clone();
        let data_dir = self.data_dir().to_owned();
        let tenant_id = tenant.id.as_str();
        let boundary = steps
            .run("remove-boundary", now, async {
                let spec = tenant.boundary.as_ref();
                let details =
                    boundary::remove_boundary(spec, &db, tx, &data_dir, tenant_id).await?;
                Ok((details.clone(), details))
            })
            .await?;
        let payloads = steps
            .run("delete-usage-payloads", now, async {
                let deleted =
                    crate::dedupe::delete_tenant_events(tx, db.backend(), tenant_id).await?;
                for table in ["usage_conflicts", "usage_rejections"] {
                    sqlx::query(&format!("DELETE FROM {table} WHERE tenant_id = $1"))
                        .bind(tenant_id)
                        .execute(&mut **tx)
                        .await
                        .map_err(StepError::database)?;
                }
                Ok((deleted, json!({"usage_event_payloads_deleted": deleted})))
            })
            .await?;
        let keys = steps
            .run("revoke-keys", now, async {
                let revoked = sqlx::query(
                    "UPDATE tenant_keys SET revoked_at = $1 WHERE tenant_id = $2 AND revoked_at IS NULL",
                )
                .bind(to_micros(now))
                .bind(tenant_id)
                .execute(&mut **tx)
                .await
                .map_err(StepError::database)?
                .rows_affected();
                Ok((revoked, json!({"api_keys_revoked": revoked})))
            })
            .await?;
        let workloads = steps
            .run("delete-workloads", now, async {
                let deleted = sqlx::query("DELETE FROM workloads WHERE tenant_id = $1")
                    .bind(tenant_id)
                    .execute(&mut **tx)
                    .await
                    .map_err(StepError::database)?
                    .rows_affected();
                Ok((deleted, json!({"workloads_deleted": deleted})))
            })
            .await?;
        Ok(Purged {
            steps,
            boundary,
            payloads,
            keys,
            workloads,
        })
    }

    /// The signed checkpoint of the tenant's whole log, the last one it will have. It is signed
    /// in the purge transaction's view of the tree; signing needs its own transaction on the
    /// head, so it reads the committed head instead.
    async fn final_checkpoint(
        &self,
        tx: &mut Tx,
        tenant_id: &TenantId,
    ) -> Result<Option<String>, ServiceError> {
        let log_id = LogId::Usage(tenant_id.clone());
        let Some((size, root)) = ledger_store::read_head(tx, &log_id).await? else {
            return Ok(None);
        };
        let latest = ledger_store::latest_checkpoint(tx, &log_id).await?;
        if let Some(c) = latest.as_ref().filter(|c| c.tree_size == size) {
            return Ok(Some(c.note.clone()));
        }
        let origin = self.settings().tenant_origin(tenant_id.as_str());
        let note = sign_in_tx(self, tx, &log_id, &origin, size, root, latest).await?;
        Ok(Some(note))
    }

    pub(super) async fn scale_workloads_to_zero(
        &self,
        tx: &mut Tx,
        tenant_id: &TenantId,
    ) -> Result<i64, ServiceError> {
        let updated = sqlx::query(
            "UPDATE workloads SET suspended_replicas = replicas, replicas = 0, updated_at = $1 \
             WHERE tenant_id = $2 AND suspended_replicas IS NULL",
        )
        .bind(self.now_micros())
        .bind(tenant_id.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        self.notify_workloads(tx, tenant_id).await?;
        Ok(i64::try_from(updated).unwrap_or(i64::MAX))
    }

    pub(super) async fn restore_workloads(
        &self,
        tx: &mut Tx,
        tenant_id: &TenantId,
    ) -> Result<i64, ServiceError> {
        let updated = sqlx::query(
            "UPDATE workloads SET replicas = suspended_replicas, suspended_replicas = NULL, \
             updated_at = $1 WHERE tenant_id = $2 AND suspended_replicas IS NOT NULL",
        )
        .bind(self.now_micros())
        .bind(tenant_id.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        self.notify_workloads(tx, tenant_id).await?;
        Ok(i64::try_from(updated).unwrap_or(i64::MAX))
    }

    pub(super) async fn notify_workloads(
        &self,
        tx: &mut Tx,
        tenant_id: &TenantId,
    ) -> Result<(), ServiceError> {
        let workloads = workloads_of(tx, tenant_id).await?;
        if workloads.is_empty() {
            return Ok(());
        }
        crate::jobs::outbox::enqueue(
            tx,
            self.now(),
            "workloads.scale",
            Some(tenant_id.as_str()),
            "driver",
            json!({"tenant_id": tenant_id, "workloads": workloads}),
        )
        .await?;
        Ok(())
    }
}

async fn sign_in_tx(
    app: &App,
    tx: &mut Tx,
    log_id: &LogId,
    origin: &str,
    size: u64,
    root: companyos_ledger::Hash,
    latest: Option<ledger_store::StoredCheckpoint>,
) -> Result<String, ServiceError> {
    let proof = match &latest {
        Some(last) => ledger_store::consistency_proof(tx, log_id, last.tree_size, size).await?,
        None => Vec::new(),
    };
    let mut signer = companyos_ledger::CheckpointSigner::new(
        app.keys().checkpoint.clone(),
        origin,
        latest.as_ref().map(|c| (c.tree_size, c.root)),
    );
    let checkpoint = companyos_ledger::Checkpoint::new(origin, size, root)
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    let note = signer
        .sign(&checkpoint, &proof)
        .map_err(|e| ServiceError::Internal(e.to_string()))?
        .to_string();
    sqlx::query(
        "INSERT INTO ledger_checkpoints (log_id, tree_size, root, note, signed_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(log_id.to_string())
    .bind(i64::try_from(size).map_err(|_| ServiceError::Internal("size".to_owned()))?)
    .bind(root.as_bytes().to_vec())
    .bind(note.as_str())
    .bind(app.now_micros())
    .execute(&mut **tx)
    .await?;
    Ok(note)
}

/// The approvals behind a deletion: the executed ones, and the one running now (decided by the
/// purging actor, now).
async fn deletion_approvals(
    tx: &mut Tx,
    tenant_id: &TenantId,
    actor: &Actor,
    approval_id: Option<&str>,
    now: OffsetDateTime,
) -> Result<Vec<Value>, ServiceError> {
    let rows = sqlx::query(
        "SELECT id, action, requested_by_name, requested_at, decided_by_name, decided_at, comment \
         FROM approvals WHERE tenant_id = $1 AND (status = 'executed' OR id = $2) \
         ORDER BY requested_at, id",
    )
    .bind(tenant_id.as_str())
    .bind(approval_id.unwrap_or(""))
    .fetch_all(&mut **tx)
    .await?;
    let approvals = rows
        .iter()
        .map(|row| -> Result<Value, sqlx::Error> {
            let id: String = row.try_get("id")?;
            let running = Some(id.as_str()) == approval_id;
            Ok(json!({
                "action": row.try_get::<String, _>("action")?,
                "requested_by": row.try_get::<String, _>("requested_by_name")?,
                "requested_at": format_rfc3339(from_micros(row.try_get("requested_at")?)),
                "approved_by": if running { json!(actor.principal.actor_name()) } else { json!(row.try_get::<Option<String>, _>("decided_by_name")?) },
                "approved_at": if running { json!(format_rfc3339(now)) } else { time_or_null(row.try_get("decided_at")?) },
                "comment": row.try_get::<Option<String>, _>("comment")?,
                "id": id,
            }))
        })
        .collect::<Result<_, _>>()?;
    Ok(approvals)
}

/// What a purge keeps, and why (the certificate's `retained`).
fn retained_after_purge() -> Value {
    json!([
        {"what": "ledger leaves (event ids and digests) and signed checkpoints",
         "why": "every past checkpoint and inclusion proof given to the tenant stays verifiable"},
        {"what": "daily usage rollups and reconciliation counters",
         "why": "financial records retention for issued statements"},
        {"what": "audit records", "why": "the audit log is append-only and verifiable"},
        {"what": "the tenant id and its tombstone row", "why": "ids are never reused"},
    ])
}
