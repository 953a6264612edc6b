//! Creating a tenant (LIFE-1): validation, the provisioning steps in one transaction, a failed provisioning kept for retry, the signed dossier.

#[allow(unused_imports)]
use super::*;
use companyos_domain::{Action, LogId, TenantId};

impl App {
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
        let mut tenant = TenantRow {
            id: valid.id.as_str().to_owned(),
            name: valid.name.clone(),
            plan: valid.plan.as_str().to_owned(),
            plan_version: catalog_plan.version,
            entitlements: Some(
                catalog_plan
                    .spec
                    .features
                    .iter()
                    .map(|f| f.as_str().to_owned())
                    .collect(),
            ),
            status: TenantStatus::Provisioning,
            status_before_delete: None,
            home_region: valid.home_region.as_str().to_owned(),
            allowed_regions: valid
                .allowed_regions
                .iter()
                .map(|r| r.to_string())
                .collect(),
            deploy_regions: valid.deploy_regions.iter().map(|r| r.to_string()).collect(),
            boundary_driver: self.settings().boundary_driver.name().to_owned(),
            boundary: json!({}),
            policy_text: String::new(),
            policy_sha256: String::new(),
            retention: valid.retention.clone(),
            audit_webhook_url: valid.audit_webhook_url.clone(),
            dossier_evidence_id: None,
            created_at: to_micros(now),
            updated_at: to_micros(now),
            suspended_at: None,
            deleted_at: None,
            purge_after: None,
            purged_at: None,
        };
        let attributes = self.attributes_of(&tenant);
        self.require(
            actor,
            Action::TenantCreate,
            Resource::Tenant(&attributes),
            &[],
            entry,
        )?;
        let taken: Option<String> = sqlx::query_scalar("SELECT status FROM tenants WHERE id = $1")
            .bind(tenant.id.as_str())
            .fetch_optional(&mut **tx)
            .await?;
        if let Some(status) = taken {
            return Err(ServiceError::Conflict {
                message: format!(
                    "tenant id {} is taken (it is {status}); ids are never reused, not even after purge",
                    tenant.id
                ),
                current_status: Some(status),
            });
        }
        // A concurrent creation of the same id can pass the check above; the loser of the
        // insert race gets the same conflict, not a store error.
        insert_tenant(tx, &tenant).await.map_err(|e| {
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
        })?;
        let output = self
            .provision(tx, actor, &mut tenant, steps, audit_id)
            .await?;
        let run_id = new_id("prv", now);
        sqlx::query(
            "INSERT INTO provisioning_runs (id, tenant_id, status, started_at, finished_at, steps) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(run_id.as_str())
        .bind(tenant.id.as_str())
        .bind("succeeded")
        .bind(to_micros(now))
        .bind(self.now_micros())
        .bind(json!(steps).to_string())
        .execute(&mut **tx)
        .await?;
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
        let tenant = TenantRow {
            id: valid.id.as_str().to_owned(),
            name: valid.name.clone(),
            plan: valid.plan.as_str().to_owned(),
            plan_version: 1,
            entitlements: None,
            status: TenantStatus::ProvisioningFailed,
            status_before_delete: None,
            home_region: valid.home_region.as_str().to_owned(),
            allowed_regions: valid
                .allowed_regions
                .iter()
                .map(|r| r.to_string())
                .collect(),
            deploy_regions: valid.deploy_regions.iter().map(|r| r.to_string()).collect(),
            boundary_driver: self.settings().boundary_driver.name().to_owned(),
            boundary: json!({}),
            policy_text: String::new(),
            policy_sha256: String::new(),
            retention: valid.retention.clone(),
            audit_webhook_url: valid.audit_webhook_url.clone(),
            dossier_evidence_id: None,
            created_at: now,
            updated_at: now,
            suspended_at: None,
            deleted_at: None,
            purge_after: None,
            purged_at: None,
        };
        let mut tx = self.db().begin().await?;
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM tenants WHERE id = $1")
            .bind(tenant.id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            insert_tenant(&mut tx, &tenant).await?;
        }
        sqlx::query(
            "INSERT INTO provisioning_runs (id, tenant_id, status, started_at, finished_at, steps) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(new_id("prv", self.now()))
        .bind(tenant.id.as_str())
        .bind("failed")
        .bind(now)
        .bind(now)
        .bind(json!(steps).to_string())
        .execute(&mut *tx)
        .await?;
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
        let now = self.now();
        let driver = self.settings().boundary_driver.clone();
        let rules = boundary::alert_rules(&tenant.id);
        let db = self.db().clone();
        let data_dir = self.data_dir().to_owned();
        let tenant_id = tenant.id.clone();
        let boundary = steps
            .run("boundary", now, async {
                let details =
                    boundary::create_boundary(&driver, &db, tx, &data_dir, &tenant_id, &rules)
                        .await?;
                // The step log is stored and shown later: never with the credentials.
                let mut logged = details.clone();
                if let Value::Object(map) = &mut logged {
                    map.remove("credentials");
                }
                Ok((details, logged))
            })
            .await
            .map_err(ServiceError::Internal)?;
        let credentials = boundary.get("credentials").cloned();
        let mut stored_boundary = boundary.clone();
        if let Value::Object(map) = &mut stored_boundary {
            // Credentials are shown once, in the creation response, and never stored.
            map.remove("credentials");
        }
        tenant.boundary = stored_boundary;

        let attributes = self.attributes_of(tenant);
        let policy_text = tenant_baseline_policies(&attributes);
        let authz = self.authorizer();
        let policy_hash = steps
            .run("baseline-policies", now, async {
                authz
                    .validate_tenant_policies(&policy_text)
                    .map_err(|e| e.to_string())?;
                let hash = sha256(policy_text.as_bytes()).to_hex();
                Ok((
                    hash.clone(),
                    json!({"tenant_policy_sha256": hash, "global_policy_sha256": authz.policy_sha256()}),
                ))
            })
            .await
            .map_err(ServiceError::Internal)?;
        tenant.policy_text = policy_text;
        tenant.policy_sha256 = policy_hash;

        let labels =
            json!({"tenant": tenant.id, "plan": tenant.plan, "home_region": tenant.home_region});
        let rules_hash = sha256(rules.as_bytes()).to_hex();
        steps
            .run("observability", now, async {
                Ok((
                    (),
                    json!({"metric_labels": labels, "alert_rules_sha256": rules_hash}),
                ))
            })
            .await
            .map_err(ServiceError::Internal)?;

        let stream = format!("/v1/audit?tenant_id={}", tenant.id);
        let webhook = tenant.audit_webhook_url.clone();
        steps
            .run("audit-hooks", now, async {
                Ok(((), json!({"audit_stream": stream, "webhook": webhook})))
            })
            .await
            .map_err(ServiceError::Internal)?;

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
                .map_err(|e| e.to_string())?;
                Ok(((), json!({"key_id": key_id, "fingerprint": fingerprint})))
            })
            .await
            .map_err(ServiceError::Internal)?;

        let confirmed_by_driver = !matches!(driver, BoundaryDriverSettings::Webhook { .. });
        if confirmed_by_driver {
            tenant.status = TenantStatus::Active;
        } else {
            let attempt = open_provisioning_attempt(tx, &tenant.id, self.now()).await?;
            crate::jobs::outbox::enqueue(
                tx,
                self.now(),
                "boundary.create",
                Some(&tenant.id),
                "driver",
                json!({"tenant_id": tenant.id, "plan": tenant.plan, "home_region": tenant.home_region,
                       "attempt": attempt,
                       "callback": format!("/v1/tenants/{}/provisioning/callback", tenant.id)}),
            )
            .await?;
        }
        tenant.updated_at = self.now_micros();
        update_tenant(tx, tenant).await?;

        let mut dossier = None;
        if confirmed_by_driver {
            let record = self
                .write_dossier(tx, actor, tenant, steps, &fingerprint, audit_id)
                .await?;
            tenant.dossier_evidence_id = Some(record.id.clone());
            update_tenant(tx, tenant).await?;
            dossier = Some(record);
        }
        Ok(ProvisionOutput {
            api_key,
            dossier,
            credentials,
        })
    }

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
        let plan = PlanName::parse(&tenant.plan)
            .ok()
            .and_then(|p| self.settings().plan(&p).cloned());
        let rules = boundary::alert_rules(&tenant.id);
        let mut document = json!({
            "kind": "tenant-dossier",
            "version": 1,
            "generated_at": format_rfc3339(now),
            "generated_by": actor.principal.actor_name(),
            "tenant": TenantRecord::of(tenant, TenantView::Operator),
            "plan": plan.map(|p| json!({
                "name": p.name,
                "entitlements": p.entitlements,
                "monthly_quotas": p.monthly_quotas,
                "retention": p.retention,
                "workloads_max": p.workloads_max,
            })),
            "boundary": tenant.boundary,
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
                "log_id": LogId::Usage(TenantId::parse(&tenant.id)?).to_string(),
                "origin": self.settings().tenant_origin(&tenant.id),
            },
            "audit_event_ids": audit_ids,
        });
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
                    tenant_id: Some(tenant.id.clone()),
                    file_name: format!("tenant-dossier-{}.json", tenant.id),
                    content_type: "application/json",
                    bytes,
                    metadata: json!({"tenant_status": tenant.status.as_str()}),
                },
            )
            .await
    }
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
                let provisioning_failed = !steps.steps.is_empty();
                if provisioning_failed {
                    if let Ok(valid) = self.validate_new_tenant(&input, None) {
                        // Best effort: the provisioning failed already, and its step log
                        // is recorded below whatever happens here; a leftover is named in the
                        // log for an operator to remove.
                        if let Err(error) = boundary::remove_boundary(
                            &json!({"driver": self.settings().boundary_driver.name()}),
                            self.db(),
                            &mut *self.db().readers().acquire().await?,
                            self.data_dir(),
                            valid.id.as_str(),
                        )
                        .await
                        {
                            tracing::warn!(tenant = %valid.id, %error, "could not remove the boundary of a failed provisioning");
                        }
                        self.record_failed_provisioning(&valid, &steps).await?;
                    }
                }
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
