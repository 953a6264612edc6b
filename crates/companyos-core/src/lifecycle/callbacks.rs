//! Provisioning after creation: retry, the signed callback of the webhook driver (one answer per attempt), the step log.

#[allow(unused_imports)]
use super::*;
use companyos_domain::Action;
use companyos_domain::boundary::BoundarySpec;

/// One recorded provisioning run of a tenant; `steps` is its stored step log (without each
/// step's details when the reader is the tenant).
#[derive(Debug, Clone, PartialEq)]
pub struct ProvisioningRun {
    pub id: String,
    pub status: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub steps: Value,
}

impl Lifecycle<'_> {
    /// Retries a failed (or stuck) provisioning.
    pub async fn retry_provisioning(
        &self,
        actor: &Actor,
        tenant_id: &str,
    ) -> Result<CreatedTenant, ServiceError> {
        let now = self.now();
        let mut entry = self.entry(actor, "tenant.retry", &format!("tenant:{tenant_id}"));
        entry = entry.tenant_if_valid(tenant_id);
        let audit_id = new_id("aud", now);
        entry.id = Some(audit_id.clone());
        let mut tx = self.db().begin().await?;
        let result = self
            .retry_in(&mut tx, actor, tenant_id, &audit_id, &mut entry)
            .await;
        if result.is_err() {
            entry.id = None;
        }
        self.finish(tx, entry, result).await
    }

    /// The webhook driver's callback: the external provisioner confirms (or fails) a tenant's
    /// boundary. Authenticated by the HMAC of the driver secret over
    /// `<tenant_id>.<attempt>.<timestamp>.<body>` ([`boundary::callback_signature`]), and
    /// accepted once: the attempt it answers must be this tenant's open attempt, and is closed
    /// in the same transaction.
    pub async fn provisioning_callback(
        &self,
        tenant_id: &str,
        callback: ProvisioningCallback<'_>,
    ) -> Result<TenantRow, ServiceError> {
        let system = Actor::system("webhook-driver");
        let mut entry = self.entry(
            &system,
            "tenant.provision.confirm",
            &format!("tenant:{tenant_id}"),
        );
        let BoundaryDriverSettings::Webhook { secret, .. } = &self.settings().boundary_driver
        else {
            return Err(ServiceError::NotFound(
                "provisioning callbacks (the boundary driver is not webhook)".to_owned(),
            ));
        };
        // Refused callbacks are audited against the tenant they targeted.
        entry = entry.tenant_if_valid(tenant_id);
        if !self.callback_verified(secret, tenant_id, &callback) {
            let error = ServiceError::Unauthenticated(
                "missing, stale or wrong x-companyos-signature (or x-companyos-attempt)".to_owned(),
            );
            self.audit_failure(entry, &error).await?;
            return Err(error);
        }
        let answer = CallbackAnswer::parse(callback.body, callback.attempt.unwrap_or_default())?;
        let audit_id = new_id("aud", self.now());
        entry.id = Some(audit_id.clone());
        let mut tx = self.db().begin().await?;
        let result = self
            .confirm_in(&mut tx, &system, tenant_id, &answer, &audit_id, &mut entry)
            .await;
        self.finish(tx, entry, result).await
    }

    /// The provisioning runs of a tenant, newest first.
    pub async fn provisioning_runs(
        &self,
        actor: &Actor,
        tenant_id: &str,
    ) -> Result<Vec<ProvisioningRun>, ServiceError> {
        let mut conn = self.db().readers().acquire().await?;
        let tenant = self
            .readable_tenant(&mut conn, actor, tenant_id, Action::TenantRead)
            .await?;
        let rows = sqlx::query(
            "SELECT id, status, started_at, finished_at, steps FROM provisioning_runs \
             WHERE tenant_id = $1 ORDER BY started_at DESC, id DESC",
        )
        .bind(tenant.id.as_str())
        .fetch_all(&mut *conn)
        .await?;
        let view = TenantView::of(&actor.principal);
        rows.iter()
            .map(|row| {
                let steps: String = row.try_get("steps")?;
                // A stored step log that does not parse is damage to report, never an empty log.
                let mut steps = serde_json::from_str::<Value>(&steps).map_err(|e| {
                    StoreError::corrupt(format!("the step log of a provisioning run: {e}"))
                })?;
                if view == TenantView::Tenant {
                    // Step details are the server's (paths, database names, errors): a tenant
                    // sees each step's name, result and duration.
                    for step in steps.as_array_mut().into_iter().flatten() {
                        if let Value::Object(map) = step {
                            map.remove("details");
                        }
                    }
                }
                Ok(ProvisioningRun {
                    id: row.try_get("id")?,
                    status: row.try_get("status")?,
                    started_at: row.try_get("started_at")?,
                    finished_at: row.try_get("finished_at")?,
                    steps,
                })
            })
            .collect::<Result<Vec<_>, ServiceError>>()
    }
}

/// What a verified provisioning callback says: the attempt it answers, whether the boundary was
/// created, and the provisioner's details (any JSON; `{}` when it sent none).
struct CallbackAnswer<'a> {
    attempt: &'a str,
    succeeded: bool,
    details: Value,
}

impl<'a> CallbackAnswer<'a> {
    fn parse(body: &[u8], attempt: &'a str) -> Result<Self, ServiceError> {
        let parsed: Value = serde_json::from_slice(body)
            .map_err(|e| ServiceError::invalid("body", format!("is not JSON: {e}")))?;
        let succeeded = match parsed.get("status").and_then(Value::as_str) {
            Some("succeeded") => true,
            Some("failed") => false,
            _ => {
                return Err(ServiceError::invalid(
                    "status",
                    "must be succeeded or failed",
                ));
            }
        };
        let details = parsed.get("details").cloned().unwrap_or(json!({}));
        Ok(Self {
            attempt,
            succeeded,
            details,
        })
    }

    /// The outcome word of the attempt and of the provisioning run.
    fn outcome(&self) -> &'static str {
        if self.succeeded {
            "succeeded"
        } else {
            "failed"
        }
    }
}

impl App {
    async fn retry_in(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        tenant_id: &str,
        audit_id: &str,
        entry: &mut NewAudit,
    ) -> Result<CreatedTenant, ServiceError> {
        let now = self.now();
        let mut steps = StepLog::default();
        let mut tenant = self.lock_tenant(tx, tenant_id).await?;
        let attributes = self.attributes_of(&tenant);
        self.require(
            actor,
            Action::TenantRetry,
            Resource::Tenant(&attributes),
            &[],
            entry,
        )?;
        if !matches!(
            tenant.status,
            TenantStatus::ProvisioningFailed | TenantStatus::Provisioning
        ) {
            return Err(ServiceError::Conflict {
                message: format!(
                    "tenant {} is {}: nothing to retry",
                    tenant.id, tenant.status
                ),
                current_status: Some(tenant.status.as_str().to_owned()),
            });
        }
        sqlx::query(
            "UPDATE tenant_keys SET revoked_at = $1 WHERE tenant_id = $2 AND revoked_at IS NULL",
        )
        .bind(to_micros(now))
        .bind(tenant.id.as_str())
        .execute(&mut **tx)
        .await?;
        tenant.status = TenantStatus::Provisioning;
        let output = self
            .provision(tx, actor, &mut tenant, &mut steps, audit_id)
            .await?;
        let run_id = new_id("prv", now);
        let run = NewProvisioningRun::new(&run_id, &tenant.id, "succeeded", &steps);
        insert_provisioning_run(tx, run.at(to_micros(now), self.now_micros())).await?;
        Ok(CreatedTenant {
            provisioning: ProvisioningOutcome {
                run_id: None,
                steps: steps.clone(),
            },
            tenant,
            api_key: output.api_key,
            dossier: output.dossier,
            boundary_credentials: output.credentials,
        })
    }

    /// Whether the callback carries an attempt, a fresh timestamp and a good signature.
    fn callback_verified(
        &self,
        secret: &str,
        tenant_id: &str,
        callback: &ProvisioningCallback<'_>,
    ) -> bool {
        let timestamp = callback.timestamp.and_then(|t| t.parse::<i64>().ok());
        match (callback.attempt, timestamp, callback.signature) {
            (Some(attempt), Some(timestamp), Some(signature)) => {
                boundary::verify_callback_signature(
                    secret,
                    tenant_id,
                    attempt,
                    timestamp,
                    self.now().unix_timestamp(),
                    callback.body,
                    signature,
                )
            }
            _ => false,
        }
    }

    /// Applies a verified callback: the attempt closed, the boundary's state, and the tenant
    /// active with its dossier, or `provisioning_failed`.
    async fn confirm_in(
        &self,
        tx: &mut Tx,
        system: &Actor,
        tenant_id: &str,
        answer: &CallbackAnswer<'_>,
        audit_id: &str,
        entry: &mut NewAudit,
    ) -> Result<TenantRow, ServiceError> {
        let mut tenant = self.lock_tenant(tx, tenant_id).await?;
        let attributes = self.attributes_of(&tenant);
        self.require(
            system,
            Action::TenantCreate,
            Resource::Tenant(&attributes),
            &[],
            entry,
        )?;
        self.close_attempt(tx, &tenant, answer).await?;
        if tenant.status != TenantStatus::Provisioning {
            return Err(ServiceError::Conflict {
                message: format!(
                    "tenant {} is {}, not provisioning",
                    tenant.id, tenant.status
                ),
                current_status: Some(tenant.status.as_str().to_owned()),
            });
        }
        let mut steps = StepLog::default();
        steps.steps.push(boundary::Step {
            name: "boundary-confirmed".to_owned(),
            ok: answer.succeeded,
            started_at: self.now(),
            duration_ms: 0.0,
            details: answer.details.clone(),
        });
        record_provisioner_answer(&mut tenant, answer);
        if answer.succeeded {
            tenant.status = TenantStatus::Active;
            let fingerprint = current_key_fingerprint(tx, &tenant.id).await?;
            let dossier = self
                .write_dossier(tx, system, &tenant, &mut steps, &fingerprint, audit_id)
                .await?;
            tenant.dossier_evidence_id = Some(dossier.id);
        } else {
            tenant.status = TenantStatus::ProvisioningFailed;
        }
        tenant.updated_at = self.now_micros();
        tenants::update(tx, &tenant).await?;
        let run_id = new_id("prv", self.now());
        let run = NewProvisioningRun::new(&run_id, &tenant.id, answer.outcome(), &steps);
        insert_provisioning_run(tx, run.at(self.now_micros(), self.now_micros())).await?;
        Ok(tenant)
    }

    /// Closes the attempt the callback answers. Closing it is what makes the callback count
    /// once: a replay, a callback of a superseded attempt, or another tenant's attempt finds
    /// no open row and is refused.
    async fn close_attempt(
        &self,
        tx: &mut Tx,
        tenant: &TenantRow,
        answer: &CallbackAnswer<'_>,
    ) -> Result<(), ServiceError> {
        let closed = sqlx::query(
            "UPDATE provisioning_attempts SET answered_at = $1, outcome = $2 \
             WHERE id = $3 AND tenant_id = $4 AND answered_at IS NULL",
        )
        .bind(self.now_micros())
        .bind(answer.outcome())
        .bind(answer.attempt)
        .bind(tenant.id.as_str())
        .execute(&mut **tx)
        .await?;
        if closed.rows_affected() != 1 {
            return Err(ServiceError::Unauthenticated(format!(
                "provisioning attempt {:?} of tenant {} is unknown, superseded or already answered",
                answer.attempt, tenant.id
            )));
        }
        Ok(())
    }
}

/// The webhook boundary takes the provisioner's answer: `state` becomes `ready` or `failed`,
/// and its details are kept beside it. (A callback is only accepted for a tenant still
/// provisioning with an open attempt, which only the webhook driver opens.)
fn record_provisioner_answer(tenant: &mut TenantRow, answer: &CallbackAnswer<'_>) {
    if let Some(BoundarySpec::Webhook {
        state,
        provisioner_details,
        ..
    }) = &mut tenant.boundary
    {
        *state = if answer.succeeded { "ready" } else { "failed" }.to_owned();
        *provisioner_details = Some(answer.details.clone());
    }
}

/// The fingerprint of the tenant's newest unrevoked key (empty when it has none).
async fn current_key_fingerprint(
    tx: &mut Tx,
    tenant_id: &TenantId,
) -> Result<String, ServiceError> {
    let fingerprint: Option<String> = sqlx::query_scalar(
        "SELECT fingerprint FROM tenant_keys WHERE tenant_id = $1 AND revoked_at IS NULL \
         ORDER BY created_at DESC LIMIT 1",
    )
    .bind(tenant_id.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    Ok(fingerprint.unwrap_or_default())
}
