//! Provisioning after creation: retry, the signed callback of the webhook driver (one answer per attempt), the step log.

#[allow(unused_imports)]
use super::*;
use companyos_domain::Action;

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
        if TenantId::parse(tenant_id).is_ok() {
            entry.tenant_id = Some(tenant_id.to_owned());
        }
        let audit_id = new_id("aud", now);
        entry.id = Some(audit_id.clone());
        let mut tx = self.db().begin().await?;
        let mut steps = StepLog::default();
        let result = async {
            let mut tenant = self.lock_tenant(&mut tx, tenant_id).await?;
            let attributes = self.attributes_of(&tenant);
            self.require(actor, Action::TenantRetry, Resource::Tenant(&attributes), &[], &mut entry)?;
            if !matches!(
                tenant.status,
                TenantStatus::ProvisioningFailed | TenantStatus::Provisioning
            ) {
                return Err(ServiceError::Conflict {
                    message: format!("tenant {} is {}: nothing to retry", tenant.id, tenant.status),
                    current_status: Some(tenant.status.as_str().to_owned()),
                });
            }
            sqlx::query("UPDATE tenant_keys SET revoked_at = $1 WHERE tenant_id = $2 AND revoked_at IS NULL")
                .bind(to_micros(now))
                .bind(tenant.id.as_str())
                .execute(&mut *tx)
                .await?;
            tenant.status = TenantStatus::Provisioning;
            let output = self.provision(&mut tx, actor, &mut tenant, &mut steps, &audit_id).await?;
            sqlx::query(
                "INSERT INTO provisioning_runs (id, tenant_id, status, started_at, finished_at, steps) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(new_id("prv", now))
            .bind(tenant.id.as_str())
            .bind("succeeded")
            .bind(to_micros(now))
            .bind(self.now_micros())
            .bind(json!(steps).to_string())
            .execute(&mut *tx)
            .await?;
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
        let ProvisioningCallback {
            attempt,
            timestamp,
            signature,
            body,
        } = callback;
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
        if TenantId::parse(tenant_id).is_ok() {
            entry.tenant_id = Some(tenant_id.to_owned());
        }
        let verified = match (
            attempt,
            timestamp.and_then(|t| t.parse::<i64>().ok()),
            signature,
        ) {
            (Some(attempt), Some(ts), Some(sig)) => boundary::verify_callback_signature(
                secret,
                tenant_id,
                attempt,
                ts,
                self.now().unix_timestamp(),
                body,
                sig,
            ),
            _ => false,
        };
        if !verified {
            let error = ServiceError::Unauthenticated(
                "missing, stale or wrong x-companyos-signature (or x-companyos-attempt)".to_owned(),
            );
            self.audit_failure(entry, &error).await?;
            return Err(error);
        }
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
        let audit_id = new_id("aud", self.now());
        entry.id = Some(audit_id.clone());
        let mut tx = self.db().begin().await?;
        let result = async {
            let mut tenant = self.lock_tenant(&mut tx, tenant_id).await?;
            let attributes = self.attributes_of(&tenant);
            self.require(&system, Action::TenantCreate, Resource::Tenant(&attributes), &[], &mut entry)?;
            // Closing the attempt is what makes the callback count once: a replay, a callback of
            // a superseded attempt, or another tenant's attempt finds no open row and is refused.
            let closed = sqlx::query(
                "UPDATE provisioning_attempts SET answered_at = $1, outcome = $2 \
                 WHERE id = $3 AND tenant_id = $4 AND answered_at IS NULL",
            )
            .bind(self.now_micros())
            .bind(if succeeded { "succeeded" } else { "failed" })
            .bind(attempt.unwrap_or_default())
            .bind(tenant.id.as_str())
            .execute(&mut *tx)
            .await?;
            if closed.rows_affected() != 1 {
                return Err(ServiceError::Unauthenticated(format!(
                    "provisioning attempt {:?} of tenant {} is unknown, superseded or already answered",
                    attempt.unwrap_or_default(),
                    tenant.id
                )));
            }
            if tenant.status != TenantStatus::Provisioning {
                return Err(ServiceError::Conflict {
                    message: format!("tenant {} is {}, not provisioning", tenant.id, tenant.status),
                    current_status: Some(tenant.status.as_str().to_owned()),
                });
            }
            let mut steps = StepLog::default();
            steps.steps.push(boundary::Step {
                name: "boundary-confirmed".to_owned(),
                ok: succeeded,
                started_at: self.now(),
                duration_ms: 0.0,
                details: details.clone(),
            });
            if let Value::Object(boundary) = &mut tenant.boundary {
                boundary.insert("state".to_owned(), json!(if succeeded { "ready" } else { "failed" }));
                boundary.insert("provisioner_details".to_owned(), details.clone());
            }
            if succeeded {
                tenant.status = TenantStatus::Active;
                let fingerprint: String = sqlx::query_scalar(
                    "SELECT fingerprint FROM tenant_keys WHERE tenant_id = $1 AND revoked_at IS NULL \
                     ORDER BY created_at DESC LIMIT 1",
                )
                .bind(tenant.id.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .unwrap_or_default();
                let dossier = self
                    .write_dossier(&mut tx, &system, &tenant, &mut steps, &fingerprint, &audit_id)
                    .await?;
                tenant.dossier_evidence_id = Some(dossier.id);
            } else {
                tenant.status = TenantStatus::ProvisioningFailed;
            }
            tenant.updated_at = self.now_micros();
            update_tenant(&mut tx, &tenant).await?;
            sqlx::query(
                "INSERT INTO provisioning_runs (id, tenant_id, status, started_at, finished_at, steps) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(new_id("prv", self.now()))
            .bind(tenant.id.as_str())
            .bind(if succeeded { "succeeded" } else { "failed" })
            .bind(self.now_micros())
            .bind(self.now_micros())
            .bind(json!(steps).to_string())
            .execute(&mut *tx)
            .await?;
            Ok(tenant)
        }
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
                let mut steps = serde_json::from_str::<Value>(&steps).unwrap_or(Value::Null);
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
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(ServiceError::from)
    }
}
