//! Lifecycle transitions (LIFE-2, LIFE-3): suspend, reactivate, delete, restore and purge,
//! checked against the state machine and the request's rules, sent through an approval when the
//! settings require one, applied to the tenant's boundary, and signed into the tenant's log.

use super::*;
use companyos_domain::boundary::BoundarySpec;

impl Lifecycle<'_> {
    /// Suspend, reactivate, delete, restore or purge a tenant, through an approval when the
    /// settings require one for the action.
    pub async fn transition(
        &self,
        actor: &Actor,
        tenant_id: &str,
        action: LifecycleAction,
        request: LifecycleRequest,
    ) -> Result<LifecycleOutcome, ServiceError> {
        let mut entry = self
            .entry(
                actor,
                action.cedar_action().as_str(),
                &format!("tenant:{tenant_id}"),
            )
            .reason(request.reason.as_deref());
        entry = entry.tenant_if_valid(tenant_id);
        let mut tx = self.db().begin().await?;
        let result = self
            .lifecycle_in(&mut tx, actor, tenant_id, action, &request, &mut entry)
            .await;
        self.finish(tx, entry, result).await
    }
}

impl App {
    async fn lifecycle_in(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        tenant_id: &str,
        action: LifecycleAction,
        request: &LifecycleRequest,
        entry: &mut NewAudit,
    ) -> Result<LifecycleOutcome, ServiceError> {
        let mut tenant = self.lock_tenant(tx, tenant_id).await?;
        let attributes = self.attributes_of(&tenant);
        self.require(
            actor,
            action.cedar_action(),
            Resource::Tenant(&attributes),
            &[],
            entry,
        )?;
        let reason = validate_lifecycle_request(tenant.id.as_str(), action, request)?;
        let transition =
            transition(tenant.status, action, tenant.status_before_delete).map_err(illegal)?;
        if !transition.changes() {
            if let Value::Object(details) = &mut entry.details {
                details.insert("changed".to_owned(), json!(false));
            }
            return Ok(LifecycleOutcome::Done {
                tenant: Box::new(tenant),
                changed: false,
                warnings: Vec::new(),
                evidence: None,
            });
        }
        let system = matches!(actor.principal, Principal::System { .. });
        if self.settings().needs_approval(action) && !system {
            let warnings = self.warnings(tx, &tenant, action).await?;
            let approval = self
                .create_approval(tx, actor, &tenant, action, reason.as_str(), warnings)
                .await?;
            entry.action = "approval.request".to_owned();
            if let Value::Object(details) = &mut entry.details {
                details.insert("action".to_owned(), json!(action.cedar_action().as_str()));
                details.insert("approval_id".to_owned(), json!(approval.id));
                details.insert("warnings".to_owned(), json!(approval.warnings));
            }
            return Ok(LifecycleOutcome::PendingApproval(approval));
        }
        let (warnings, evidence) = self
            .execute_lifecycle(tx, actor, &mut tenant, action, reason.as_str(), None, entry)
            .await?;
        Ok(LifecycleOutcome::Done {
            tenant: Box::new(tenant),
            changed: true,
            warnings,
            evidence,
        })
    }

    /// What an action will do that cannot be undone, named before it happens.
    pub(crate) async fn warnings(
        &self,
        conn: &mut AnyConnection,
        tenant: &TenantRow,
        action: LifecycleAction,
    ) -> Result<Vec<String>, ServiceError> {
        let payloads = crate::bundles::count_events(conn, tenant.id.as_str()).await?;
        let keys: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM tenant_keys WHERE tenant_id = $1 AND revoked_at IS NULL",
        )
        .bind(tenant.id.as_str())
        .fetch_one(&mut *conn)
        .await?;
        let boundary = boundary_summary(tenant.boundary.as_ref());
        Ok(match action {
            LifecycleAction::Delete => {
                let purge_at =
                    self.now() + Duration::days(i64::from(tenant.retention.tombstone_days));
                let mut warnings = vec![format!(
                    "tenant {} becomes inaccessible at once (API keys, forward auth, boundary); it stays restorable until {}",
                    tenant.id,
                    format_rfc3339(purge_at)
                )];
                if tenant.retention.legal_hold {
                    warnings.push(
                        "a legal hold is set: nothing will be purged until it is lifted".to_owned(),
                    );
                } else if tenant.retention.hard_delete_allowed {
                    warnings.push(format!(
                        "IRREVERSIBLE after {}: the purge job deletes {boundary}, {payloads} usage event payloads and {keys} API keys",
                        format_rfc3339(purge_at)
                    ));
                } else {
                    warnings.push("hard delete is not allowed for this tenant: the tombstone is kept for ever".to_owned());
                }
                warnings
            }
            LifecycleAction::Purge => vec![format!(
                "IRREVERSIBLE: purge deletes {boundary}, {payloads} usage event payloads and {keys} API keys of tenant {}; ledger leaves and checkpoints, daily rollups and audit records are retained, and the id is never reused",
                tenant.id
            )],
            _ => Vec::new(),
        })
    }

    /// Blocks (`allowed` false) or restores access at the tenant's boundary, in `tx`; the
    /// step details for the audit record.
    async fn set_tenant_access(
        &self,
        tx: &mut Tx,
        tenant: &TenantRow,
        allowed: bool,
        reason: &str,
    ) -> Result<Value, ServiceError> {
        let details = boundary::set_boundary_access(
            tenant.boundary.as_ref(),
            self.db(),
            tx,
            self.data_dir(),
            tenant.id.as_str(),
            allowed,
            reason,
        )
        .await?;
        Ok(details)
    }

    /// Applies a lifecycle action whose authorization (and approval) is settled.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn execute_lifecycle(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        tenant: &mut TenantRow,
        action: LifecycleAction,
        reason: &str,
        approval_id: Option<&str>,
        entry: &mut NewAudit,
    ) -> Result<(Vec<String>, Option<EvidenceRecord>), ServiceError> {
        let transition =
            transition(tenant.status, action, tenant.status_before_delete).map_err(illegal)?;
        let now = self.now();
        let now_micros = to_micros(now);
        let mut details = json!({"from": transition.from.as_str(), "to": transition.to.as_str()});
        if let Some(id) = approval_id {
            details["approval_id"] = json!(id);
        }
        let step = TransitionStep {
            action,
            to: transition.to,
            reason,
            approval_id,
        };
        let (warnings, evidence) = self.act_on(tx, actor, tenant, &step, &mut details).await?;
        tenant.status = transition.to;
        tenant.updated_at = now_micros;
        tenants::update(tx, tenant).await?;
        crate::jobs::outbox::enqueue(
            tx,
            now,
            action.cedar_action().as_str(),
            Some(tenant.id.as_str()),
            "driver",
            json!({"tenant_id": tenant.id, "status": tenant.status.as_str(), "reason": reason}),
        )
        .await?;
        entry.action = action.cedar_action().as_str().to_owned();
        if let (Value::Object(existing), Value::Object(new)) = (&mut entry.details, details) {
            existing.extend(new);
        }
        self.metrics().increment(
            "companyos_lifecycle_transitions_total",
            vec![("action", action.as_str().to_owned())],
            1,
        );
        Ok((warnings, evidence))
    }

    /// What the action does besides the status change: at the boundary, to the workloads, to
    /// the retention dates, or the purge itself; its audit details go into `details`.
    async fn act_on(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        tenant: &mut TenantRow,
        step: &TransitionStep<'_>,
        details: &mut Value,
    ) -> Result<(Vec<String>, Option<EvidenceRecord>), ServiceError> {
        let now = self.now();
        let now_micros = to_micros(now);
        let reason = step.reason;
        let mut warnings = Vec::new();
        let mut evidence = None;
        match step.action {
            LifecycleAction::Suspend => {
                let boundary = self.set_tenant_access(tx, tenant, false, reason).await?;
                let scaled = self.scale_workloads_to_zero(tx, &tenant.id).await?;
                tenant.suspended_at = Some(now_micros);
                details["boundary"] = boundary;
                details["workloads_scaled_to_zero"] = json!(scaled);
            }
            LifecycleAction::Reactivate => {
                let boundary = self.set_tenant_access(tx, tenant, true, reason).await?;
                let restored = self.restore_workloads(tx, &tenant.id).await?;
                tenant.suspended_at = None;
                details["boundary"] = boundary;
                details["workloads_restored"] = json!(restored);
            }
            LifecycleAction::Delete => {
                warnings = self.warnings(tx, tenant, step.action).await?;
                if tenant.status == TenantStatus::Active {
                    self.set_tenant_access(tx, tenant, false, reason).await?;
                    self.scale_workloads_to_zero(tx, &tenant.id).await?;
                }
                tenant.status_before_delete = Some(tenant.status);
                tenant.deleted_at = Some(now_micros);
                tenant.purge_after = Some(to_micros(
                    now + Duration::days(i64::from(tenant.retention.tombstone_days)),
                ));
                details["purge_after"] = time_or_null(tenant.purge_after);
                details["warnings"] = json!(warnings);
            }
            LifecycleAction::Restore => {
                if step.to == TenantStatus::Active {
                    self.set_tenant_access(tx, tenant, true, reason).await?;
                    self.restore_workloads(tx, &tenant.id).await?;
                }
                tenant.status_before_delete = None;
                tenant.deleted_at = None;
                tenant.purge_after = None;
            }
            LifecycleAction::Purge => {
                warnings = self.warnings(tx, tenant, step.action).await?;
                let record = self
                    .purge(tx, actor, tenant, reason, step.approval_id, &warnings)
                    .await?;
                details["deletion_certificate"] = json!(record.id);
                evidence = Some(record);
            }
        }
        Ok((warnings, evidence))
    }
}

/// A settled transition: the action, the status it leads to, and why.
struct TransitionStep<'a> {
    action: LifecycleAction,
    to: TenantStatus,
    reason: &'a str,
    approval_id: Option<&'a str>,
}

fn validate_lifecycle_request(
    tenant_id: &str,
    action: LifecycleAction,
    request: &LifecycleRequest,
) -> Result<Reason, ServiceError> {
    let mut c = Collector::new();
    let reason = match request.reason.as_deref() {
        Some(text) => c.take(Reason::parse(text)),
        None => {
            c.push(FieldError::new("reason", "is required"));
            None
        }
    };
    if action.needs_confirmation() {
        match request.confirm.as_deref() {
            Some(confirm) if confirm == tenant_id => {}
            Some(_) => c.push(FieldError::new(
                "confirm",
                format!("must equal the tenant id {tenant_id:?}"),
            )),
            None => c.push(FieldError::new(
                "confirm",
                format!("is required: repeat the tenant id {tenant_id:?} to confirm"),
            )),
        }
    }
    c.finish()?;
    reason.ok_or_else(|| ServiceError::invalid("reason", "is required"))
}

fn illegal(error: IllegalTransition) -> ServiceError {
    ServiceError::Conflict {
        message: error.to_string(),
        current_status: Some(error.current.as_str().to_owned()),
    }
}

/// The boundary a purge deletes, as its warnings name it.
fn boundary_summary(boundary: Option<&BoundarySpec>) -> String {
    match boundary {
        Some(BoundarySpec::Directory { path, .. }) => format!("the boundary directory {path}"),
        Some(BoundarySpec::Postgres { schema, role, .. }) => {
            format!("the PostgreSQL schema {schema} and role {role}")
        }
        Some(spec) => format!("the {} boundary", spec.driver()),
        None => "the boundary".to_owned(),
    }
}
