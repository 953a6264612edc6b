//! Creating a tenant (LIFE-1): validation, the provisioning steps in one transaction, a failed provisioning kept for retry, the signed dossier.

#[allow(unused_imports)]
use super::*;
use companyos_domain::boundary::BoundarySpec;
use companyos_domain::{Action, LogId, TenantId};
use time::OffsetDateTime;

use super::boundary::StepError;
use super::record::boundary_value;

impl App {
    /// The tenant row a creation starts from: no boundary yet, no policies, no dossier.
    fn new_tenant_row(
        &self,
        valid: &ValidTenant,
        status: TenantStatus,
        plan: (u32, Option<Vec<String>>),
        now_micros: i64,
    ) -> TenantRow {
        let (plan_version, entitlements) = plan;
        TenantRow {
            id: valid.id.clone(),
            name: valid.name.clone(),
            plan: valid.plan.clone(),
            plan_version,
            entitlements,
            status,
            status_before_delete: None,
            home_region: valid.home_region.clone(),
            allowed_regions: valid.allowed_regions.clone(),
            deploy_regions: valid.deploy_regions.clone(),
            boundary_driver: self.settings().boundary_driver.kind(),
            boundary: None,
            policy_text: String::new(),
            policy_sha256: String::new(),
            retention: valid.retention.clone(),
            audit_webhook_url: valid.audit_webhook_url.clone(),
            dossier_evidence_id: None,
            created_at: now_micros,
            updated_at: now_micros,
            suspended_at: None,
            deleted_at: None,
            purge_after: None,
            purged_at: None,
        }
    }

    pub(super) async fn create_tenant_in(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        input: &NewTenant,
        audit_id: &str,
        steps: &mut StepLog,
        entry: &mut NewAudit,
    ) -> Result<CreatedTenant, ServiceError> {
        // The plan's latest catalog version: its features, retention defaults and number.
        let plan_name = input.plan.as_deref().unwrap_or("standard");
        let catalog_plan = self.billing().latest_plan_version(tx, plan_name).await?;
        let valid = self.validate_new_tenant(input, catalog_plan.as_ref().map(|v| &v.spec))?;
        let Some(catalog_plan) = catalog_plan else {
            return Err(ServiceError::invalid(
                "plan",
                format!("{plan_name} is not a plan of the catalog (GET /v1/plans)"),
            ));
        };
        let now = self.now();
        let features = catalog_plan.spec.features.iter();
        let entitlements = features.map(|f| f.as_str().to_owned()).collect();
        let plan = (catalog_plan.version, Some(entitlements));
        let mut tenant =
            self.new_tenant_row(&valid, TenantStatus::Provisioning, plan, to_micros(now));
        let attributes = self.attributes_of(&tenant);
        self.require(
            actor,
            Action::TenantCreate,
            Resource::Tenant(&attributes),
            &[],
            entry,
        )?;
        insert_new_tenant(tx, &tenant).await?;
        let output = self
            .provision(tx, actor, &mut tenant, steps, audit_id)
            .await?;
        let run_id = new_id("prv", now);
        let finished_micros = self.now_micros();
        let run = NewProvisioningRun::new(&run_id, &tenant.id, "succeeded", steps);
        insert_provisioning_run(tx, run.at(to_micros(now), finished_micros)).await?;
        if let Value::Object(details) = &mut entry.details {
            details.insert("provisioning_run".to_owned(), json!(run_id));
            details.insert("total_ms".to_owned(), json!(steps.total_ms()));
            details.insert(
                "dossier_evidence_id".to_owned(),
                json!(tenant.dossier_evidence_id),
            );
        }
        self.metrics().increment(
            "companyos_lifecycle_transitions_total",
            vec![("action", "create".to_owned())],
            1,
        );
        Ok(CreatedTenant {
            tenant,
            api_key: output.api_key,
            provisioning: ProvisioningOutcome {
                run_id: Some(run_id),
                steps: steps.clone(),
            },
            dossier: output.dossier,
            boundary_credentials: output.credentials,
        })
    }

    pub(super) async fn record_failed_provisioning(
        &self,
        valid: &ValidTenant,
        steps: &StepLog,
    ) -> Result<(), ServiceError> {
        let now = self.now_micros();
        let status = TenantStatus::ProvisioningFailed;
        let tenant = self.new_tenant_row(valid, status, (1, None), now);
        let mut tx = self.db().begin().await?;
        if tenants::status_of(&mut tx, &tenant.id).await?.is_none() {
            tenants::insert(&mut tx, &tenant).await?;
        }
        let run_id = new_id("prv", self.now());
        let run = NewProvisioningRun::new(&run_id, &tenant.id, "failed", steps);
        insert_provisioning_run(&mut tx, run.at(now, now)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The provisioning steps proper (boundary, policies, observability, audit hooks, key,
    /// dossier), on a tenant row already inserted in `tx`.
    pub(super) async fn provision(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        tenant: &mut TenantRow,
        steps: &mut StepLog,
        audit_id: &str,
    ) -> Result<ProvisionOutput, ServiceError> {
        // The plan history starts with the tenant (billing; statements prorate by it).
        self.billing()
            .assign_initial_plan(tx, actor, tenant)
            .await?;
        // Every step is recorded as started at the provisioning's start.
        let now = self.now();
        let credentials = self.boundary_step(tx, tenant, steps, now).await?;
        self.policies_step(tenant, steps, now).await?;
        announce_steps(tenant, steps, now).await?;
        let key = self.api_key_step(tx, &tenant.id, steps, now).await?;
        let confirmed_by_driver = !matches!(
            self.settings().boundary_driver,
            BoundaryDriverSettings::Webhook { .. }
        );
        if confirmed_by_driver {
            tenant.status = TenantStatus::Active;
        } else {
            self.request_boundary(tx, tenant).await?;
        }
        tenant.updated_at = self.now_micros();
        tenants::update(tx, tenant).await?;
        let mut dossier = None;
        if confirmed_by_driver {
            let record = self
                .write_dossier(tx, actor, tenant, steps, &key.fingerprint, audit_id)
                .await?;
            tenant.dossier_evidence_id = Some(record.id.clone());
            tenants::update(tx, tenant).await?;
            dossier = Some(record);
        }
        Ok(ProvisionOutput {
            api_key: key.api_key,
            dossier,
            credentials,
        })
    }

    /// The `boundary` step: the configured driver creates the tenant's boundary, which the row
    /// stores; its credentials (a `postgres` login) are returned to be shown once, and are
    /// neither stored nor logged.
    async fn boundary_step(
        &self,
        tx: &mut Tx,
        tenant: &mut TenantRow,
        steps: &mut StepLog,
        now: OffsetDateTime,
    ) -> Result<Option<Value>, ServiceError> {
        let driver = self.settings().boundary_driver.clone();
        let rules = boundary::alert_rules(tenant.id.as_str());
        let db = self.db().clone();
        let data_dir = self.data_dir().to_owned();
        let tenant_id = tenant.id.as_str().to_owned();
        let mut spec = steps
            .run("boundary", now, async {
                let spec =
                    boundary::create_boundary(&driver, &db, tx, &data_dir, &tenant_id, &rules)
                        .await?;
                let logged = boundary_value(Some(&without_credentials(&spec)));
                Ok((spec, logged))
            })
            .await?;
        let credentials = spec.take_credentials().map(|c| json!(c));
        tenant.boundary = Some(spec);
        Ok(credentials)
    }

    /// The `baseline-policies` step: the tenant's baseline Cedar policies, validated and hashed.
    async fn policies_step(
        &self,
        tenant: &mut TenantRow,
        steps: &mut StepLog,
        now: OffsetDateTime,
    ) -> Result<(), ServiceError> {
        let attributes = self.attributes_of(tenant);
        let policy_text = tenant_baseline_policies(&attributes);
        let authz = self.authorizer();
        let policy_hash = steps
            .run("baseline-policies", now, async {
                authz
                    .validate_tenant_policies(&policy_text)
                    .map_err(|e| StepError::Failed(e.to_string()))?;
                let hash = sha256(policy_text.as_bytes()).to_hex();
                Ok((
                    hash.clone(),
                    json!({"tenant_policy_sha256": hash, "global_policy_sha256": authz.policy_sha256()}),
                ))
            })
            .await?;
        tenant.policy_text = policy_text;
        tenant.policy_sha256 = policy_hash;
        Ok(())
    }

    /// The `api-key` step: the tenant's first API key, stored as its hash.
    async fn api_key_step(
        &self,
        tx: &mut Tx,
        tenant_id: &TenantId,
        steps: &mut StepLog,
        now: OffsetDateTime,
    ) -> Result<NewTenantKey, ServiceError> {
        let api_key = new_token(TENANT_KEY_PREFIX);
        let key_id = new_id("tk", now);
        let fingerprint = token_fingerprint(&api_key);
        steps
            .run("api-key", now, async {
                sqlx::query(
                    "INSERT INTO tenant_keys (id, tenant_id, token_sha256, fingerprint, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(key_id.as_str())
                .bind(tenant_id.as_str())
                .bind(token_hash(&api_key))
                .bind(fingerprint.as_str())
                .bind(to_micros(now))
                .execute(&mut **tx)
                .await
                .map_err(StepError::database)?;
                Ok(((), json!({"key_id": key_id, "fingerprint": fingerprint})))
            })
            .await?;
        Ok(NewTenantKey {
            api_key,
            fingerprint,
        })
    }

    /// The webhook driver's boundary is only requested: a new attempt, and the outbox tells
    /// the provisioner, which calls back.
    async fn request_boundary(&self, tx: &mut Tx, tenant: &TenantRow) -> Result<(), ServiceError> {
        let attempt = open_provisioning_attempt(tx, tenant.id.as_str(), self.now()).await?;
        crate::jobs::outbox::enqueue(
            tx,
            self.now(),
            "boundary.create",
            Some(tenant.id.as_str()),
            "driver",
            json!({"tenant_id": tenant.id, "plan": tenant.plan, "home_region": tenant.home_region,
                   "attempt": attempt,
                   "callback": format!("/v1/tenants/{}/provisioning/callback", tenant.id)}),
        )
        .await?;
        Ok(())
    }

    /// Writes the tenant's signed dossier (LIFE-1) with the `dossier` step appended to its
    /// provisioning run.
    pub(super) async fn write_dossier(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        tenant: &TenantRow,
        steps: &mut StepLog,
        key_fingerprint: &str,
        audit_id: &str,
    ) -> Result<EvidenceRecord, ServiceError> {
        let now = self.now();
        let started = std::time::Instant::now();
        let earlier_audit: Vec<String> =
            sqlx::query_scalar("SELECT id FROM audit_events WHERE tenant_id = $1 ORDER BY seq")
                .bind(tenant.id.as_str())
                .fetch_all(&mut **tx)
                .await?;
        let mut audit_ids = earlier_audit;
        audit_ids.push(audit_id.to_owned());
        let mut document = self.dossier_document(actor, tenant, key_fingerprint, audit_ids);
        let dossier_ms = started.elapsed().as_secs_f64() * 1000.0;
        steps.steps.push(boundary::Step {
            name: "dossier".to_owned(),
            ok: true,
            started_at: now,
            duration_ms: dossier_ms,
            details: json!({}),
        });
        if let Value::Object(map) = &mut document {
            map.insert(
                "provisioning_run".to_owned(),
                json!({"steps": steps, "total_ms": steps.total_ms()}),
            );
        }
        let bytes = serde_json::to_vec_pretty(&document)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        self.evidence()
            .store_in(
                tx,
                actor,
                NewArtifact {
                    kind: "tenant-dossier",
                    tenant_id: Some(tenant.id.as_str().to_owned()),
                    file_name: format!("tenant-dossier-{}.json", tenant.id),
                    content_type: "application/json",
                    bytes,
                    metadata: json!({"tenant_status": tenant.status.as_str()}),
                },
            )
            .await
    }

    /// The dossier's document, but for its provisioning run.
    fn dossier_document(
        &self,
        actor: &Actor,
        tenant: &TenantRow,
        key_fingerprint: &str,
        audit_ids: Vec<String>,
    ) -> Value {
        let plan = self.settings().plan(&tenant.plan).cloned();
        let rules = boundary::alert_rules(tenant.id.as_str());
        json!({
            "kind": "tenant-dossier",
            "version": 1,
            "generated_at": format_rfc3339(self.now()),
            "generated_by": actor.principal.actor_name(),
            "tenant": TenantRecord::of(tenant, TenantView::Operator),
            "plan": plan.map(|p| json!({
                "name": p.name,
                "entitlements": p.entitlements,
                "monthly_quotas": p.monthly_quotas,
                "retention": p.retention,
                "workloads_max": p.workloads_max,
            })),
            "boundary": boundary_value(tenant.boundary.as_ref()),
            "policies": {
                "global_policy_sha256": self.authorizer().policy_sha256(),
                "tenant_policy_sha256": tenant.policy_sha256,
                "tenant_policy_text": tenant.policy_text,
            },
            "keys": {
                "api_key_fingerprint": key_fingerprint,
                "ledger_verifier_key": self.ledger().verifier_key(),
                "evidence_public_key": self.evidence().public_key(),
            },
            "observability": {
                "metric_labels": {"tenant": tenant.id, "plan": tenant.plan, "home_region": tenant.home_region},
                "alert_rules": rules,
                "alert_rules_sha256": sha256(rules.as_bytes()).to_hex(),
            },
            "audit_hooks": {
                "audit_stream": format!("/v1/audit?tenant_id={}", tenant.id),
                "webhook": tenant.audit_webhook_url,
            },
            "ledger": {
                "log_id": LogId::Usage(tenant.id.clone()).to_string(),
                "origin": self.settings().tenant_origin(tenant.id.as_str()),
            },
            "audit_event_ids": audit_ids,
        })
    }
}

/// A tenant's first API key: the key (shown once) and its fingerprint (in the dossier).
struct NewTenantKey {
    api_key: String,
    fingerprint: String,
}

/// A boundary as the step log records it: without credentials.
fn without_credentials(spec: &BoundarySpec) -> BoundarySpec {
    let mut logged = spec.clone();
    logged.take_credentials();
    logged
}

/// The `observability` and `audit-hooks` steps: what the tenant's metrics are labelled with and
/// where its audit records go (nothing to create; recorded so the dossier names them).
async fn announce_steps(
    tenant: &TenantRow,
    steps: &mut StepLog,
    now: OffsetDateTime,
) -> Result<(), ServiceError> {
    let labels =
        json!({"tenant": tenant.id, "plan": tenant.plan, "home_region": tenant.home_region});
    let rules_hash = sha256(boundary::alert_rules(tenant.id.as_str()).as_bytes()).to_hex();
    steps
        .run("observability", now, async {
            Ok((
                (),
                json!({"metric_labels": labels, "alert_rules_sha256": rules_hash}),
            ))
        })
        .await?;
    let stream = format!("/v1/audit?tenant_id={}", tenant.id);
    let webhook = tenant.audit_webhook_url.clone();
    steps
        .run("audit-hooks", now, async {
            Ok(((), json!({"audit_stream": stream, "webhook": webhook})))
        })
        .await?;
    Ok(())
}

/// Inserts a new tenant row; its id must never have been used (not even by a purged tenant).
async fn insert_new_tenant(tx: &mut Tx, tenant: &TenantRow) -> Result<(), ServiceError> {
    if let Some(status) = tenants::status_of(tx, &tenant.id).await? {
        return Err(ServiceError::Conflict {
            message: format!(
                "tenant id {} is taken (it is {status}); ids are never reused, not even after purge",
                tenant.id
            ),
            current_status: Some(status.as_str().to_owned()),
        });
    }
    // A concurrent creation of the same id can pass the check above; the loser of the
    // insert race gets the same conflict, not a store error.
    tenants::insert(tx, tenant).await.map_err(|e| {
        if e.is_unique_violation() {
            ServiceError::Conflict {
                message: format!(
                    "tenant id {} is taken; ids are never reused, not even after purge",
                    tenant.id
                ),
                current_status: None,
            }
        } else {
            e.into()
        }
    })
}

impl Lifecycle<'_> {
    /// Creates and provisions a tenant (LIFE-1). The steps run in one transaction with the
    /// tenant row and its audit record; when a step fails, nothing of it stays but the tenant
    /// row in `provisioning_failed` with the step log, so the id is reserved and `retry` works.
    pub async fn create(
        &self,
        actor: &Actor,
        input: NewTenant,
    ) -> Result<CreatedTenant, ServiceError> {
        let now = self.now();
        let mut entry = self
            .entry(actor, "tenant.create", &format!("tenant:{}", input.id))
            .details(json!({"plan": input.plan, "home_region": input.home_region}));
        if TenantId::parse(&input.id).is_ok() {
            entry.tenant_id = Some(input.id.clone());
        }
        let audit_id = new_id("aud", now);
        entry.id = Some(audit_id.clone());
        let mut tx = self.db().begin().await?;
        let mut steps = StepLog::default();
        let result = self
            .create_tenant_in(&mut tx, actor, &input, &audit_id, &mut steps, &mut entry)
            .await;
        match result {
            Ok(created) => self.finish(tx, entry, Ok(created)).await,
            Err(error) => {
                tx.rollback().await?;
                self.provisioning_failed(&input, &steps, &error).await?;
                entry.id = None;
                if let Value::Object(details) = &mut entry.details {
                    details.insert("steps".to_owned(), json!(steps));
                }
                self.audit_failure(entry, &error).await?;
                Err(error)
            }
        }
    }
}

impl App {
    /// After a failed creation: when provisioning had started, its leftovers outside the
    /// transaction are removed and, unless the failure was only for now, the id is reserved
    /// in `provisioning_failed` with the step log, so that `retry` works. A temporary failure
    /// (503) reserves nothing: the same request may simply be sent again.
    async fn provisioning_failed(
        &self,
        input: &NewTenant,
        steps: &StepLog,
        error: &ServiceError,
    ) -> Result<(), ServiceError> {
        if steps.steps.is_empty() {
            return Ok(());
        }
        let Ok(valid) = self.validate_new_tenant(input, None) else {
            return Ok(());
        };
        // Best effort: the provisioning failed already, and its step log is recorded
        // whatever happens here; a leftover is named in the log for an operator to remove.
        if let Err(error) = boundary::remove_failed_boundary(
            self.settings().boundary_driver.kind(),
            self.db(),
            &mut *self.db().readers().acquire().await?,
            self.data_dir(),
            valid.id.as_str(),
        )
        .await
        {
            tracing::warn!(tenant = %valid.id, %error, "could not remove the boundary of a failed provisioning");
        }
        if error.is_store_unavailable() {
            return Ok(());
        }
        self.record_failed_provisioning(&valid, steps).await
    }
}
