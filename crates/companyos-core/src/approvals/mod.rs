//! Approvals (ADM-2): a lifecycle action that policy says needs a second person waits as a
//! pending approval; an approver other than the requester approves (and the action runs, in the
//! same transaction) or rejects it; unanswered requests expire. All of it is audited.

use companyos_domain::LifecycleAction;
use companyos_domain::time_util::{format_rfc3339, from_micros, to_micros};
use serde_json::{Value, json};
use sqlx::{AnyConnection, Row as _};

use crate::app::{Actor, App, Approvals};
use crate::audit::NewAudit;
use crate::authz::{Principal, Resource};
use crate::db::{StoreError, Tx};
use crate::error::ServiceError;
use crate::lifecycle::{LifecycleOutcome, TenantRow};
use crate::util::new_id;
use companyos_domain::Action;

mod actions;
mod expiry;

use expiry::lapsed;

pub use actions::{AllowedAction, TenantActions};

/// How many creators back the two-person rule follows from an approver (an admin who creates
/// an admin who creates an approver is still one person).
const CREATOR_CHAIN_DEPTH_MAX: usize = 8;

/// Upper bound on an approval comment.
pub const COMMENT_CHARS_MAX: usize = 1000;

#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalView {
    pub id: String,
    pub action: String,
    pub tenant_id: String,
    pub status: String,
    pub requested_by: String,
    pub requested_by_name: String,
    pub reason: Option<String>,
    pub requested_at: i64,
    pub expires_at: i64,
    pub decided_by_name: Option<String>,
    pub decided_at: Option<i64>,
    pub comment: Option<String>,
    pub warnings: Vec<String>,
    pub result: Option<Value>,
    /// What the requester saw and the approver is asked to approve (see [`approval_facts`]);
    /// `None` for an approval stored before facts were recorded, which can only lapse.
    pub facts: Option<Value>,
}

/// The facts an approval is bound to: the tenant's status and retention, which decide what
/// the action will do and when the purge timer may purge (the warnings the approver reads are
/// written from them). If any of them changes before the decision, the approval lapses.
pub(crate) fn approval_facts(tenant: &TenantRow) -> Value {
    json!({
        "status": tenant.status.as_str(),
        "status_before_delete": tenant.status_before_delete.map(|s| s.as_str()),
        "tombstone_days": tenant.retention.tombstone_days,
        "legal_hold": tenant.retention.legal_hold,
        "hard_delete_allowed": tenant.retention.hard_delete_allowed,
    })
}

/// The names of the facts that differ between `approved` and `now` (all of them when the
/// approval recorded none).
pub(super) fn changed_facts(approved: Option<&Value>, now: &Value) -> Vec<String> {
    let Value::Object(now) = now else {
        return vec!["facts".to_owned()];
    };
    now.iter()
        .filter(|(name, value)| approved.and_then(|a| a.get(name.as_str())) != Some(*value))
        .map(|(name, _)| name.clone())
        .collect()
}

const APPROVAL_COLUMNS: &str = "id, action, tenant_id, params, warnings, status, requested_by, \
    requested_by_name, requested_reason, requested_at, expires_at, decided_by, decided_by_name, \
    decided_at, comment, result";

fn row_to_approval(row: &sqlx::any::AnyRow) -> Result<ApprovalView, StoreError> {
    let warnings: String = row.try_get("warnings")?;
    let result: Option<String> = row.try_get("result")?;
    let params: String = row.try_get("params")?;
    let params: Value = serde_json::from_str(&params)
        .map_err(|e| StoreError::corrupt(format!("approval params: {e}")))?;
    Ok(ApprovalView {
        facts: params.get("facts").cloned(),
        id: row.try_get("id")?,
        action: row.try_get("action")?,
        tenant_id: row.try_get("tenant_id")?,
        status: row.try_get("status")?,
        requested_by: row.try_get("requested_by")?,
        requested_by_name: row.try_get("requested_by_name")?,
        reason: row.try_get("requested_reason")?,
        requested_at: row.try_get("requested_at")?,
        expires_at: row.try_get("expires_at")?,
        decided_by_name: row.try_get("decided_by_name")?,
        decided_at: row.try_get("decided_at")?,
        comment: row.try_get("comment")?,
        warnings: serde_json::from_str(&warnings)
            .map_err(|e| StoreError::corrupt(format!("approval warnings: {e}")))?,
        result: result
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .map_err(|e| StoreError::corrupt(format!("approval result: {e}")))?,
    })
}

async fn load_approval(
    conn: &mut AnyConnection,
    id: &str,
    for_update: &str,
) -> Result<Option<ApprovalView>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = $1{for_update}"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(row_to_approval).transpose()
}

impl App {
    pub(crate) async fn create_approval(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        tenant: &TenantRow,
        action: LifecycleAction,
        reason: &str,
        warnings: Vec<String>,
    ) -> Result<ApprovalView, ServiceError> {
        let Principal::Operator { id, name, .. } = &actor.principal else {
            return Err(ServiceError::Forbidden(
                "only operators can request actions that need approval".to_owned(),
            ));
        };
        let now = self.now();
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT id FROM approvals WHERE tenant_id = $1 AND action = $2 AND status = 'pending' \
             AND expires_at > $3",
        )
        .bind(tenant.id.as_str())
        .bind(action.cedar_action().as_str())
        .bind(to_micros(now))
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(existing) = existing {
            return Err(ServiceError::conflict(format!(
                "approval {existing} for tenant.{action} of {} is already pending",
                tenant.id
            )));
        }
        let approval = ApprovalView {
            id: new_id("apr", now),
            action: action.cedar_action().as_str().to_owned(),
            tenant_id: tenant.id.as_str().to_owned(),
            status: "pending".to_owned(),
            requested_by: id.clone(),
            requested_by_name: name.clone(),
            reason: Some(reason.to_owned()),
            requested_at: to_micros(now),
            expires_at: to_micros(now + self.settings().approval_ttl),
            decided_by_name: None,
            decided_at: None,
            comment: None,
            warnings,
            result: None,
            facts: Some(approval_facts(tenant)),
        };
        sqlx::query(&format!(
            "INSERT INTO approvals ({APPROVAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
             $9, $10, $11, $12, $13, $14, $15, $16)"
        ))
        .bind(approval.id.as_str())
        .bind(approval.action.as_str())
        .bind(approval.tenant_id.as_str())
        .bind(json!({"reason": reason, "facts": approval.facts}).to_string())
        .bind(json!(approval.warnings).to_string())
        .bind("pending")
        .bind(approval.requested_by.as_str())
        .bind(approval.requested_by_name.as_str())
        .bind(reason)
        .bind(approval.requested_at)
        .bind(approval.expires_at)
        .bind(None::<String>)
        .bind(None::<String>)
        .bind(None::<i64>)
        .bind(None::<String>)
        .bind(None::<String>)
        .execute(&mut **tx)
        .await?;
        Ok(approval)
    }

    async fn decide(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        id: &str,
        comment: Option<&str>,
        approve: bool,
        entry: &mut NewAudit,
    ) -> Result<(ApprovalView, Option<LifecycleOutcome>, Option<NewAudit>), ServiceError> {
        if let Some(comment) = comment {
            if comment.chars().count() > COMMENT_CHARS_MAX {
                return Err(ServiceError::invalid(
                    "comment",
                    format!("must be at most {COMMENT_CHARS_MAX} characters"),
                ));
            }
        }
        let mut approval = load_approval(tx, id, self.db().for_update())
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("approval {id}")))?;
        entry.tenant_id = Some(approval.tenant_id.clone());
        if let Value::Object(details) = &mut entry.details {
            details.insert("action".to_owned(), json!(approval.action));
            details.insert("requested_by".to_owned(), json!(approval.requested_by_name));
            details.insert("comment".to_owned(), json!(comment));
        }
        let mut tenant = self.lock_tenant(tx, &approval.tenant_id).await?;
        let attributes = self.attributes_of(&tenant);
        let created_by_requester = self.created_by_requester(tx, &approval, actor).await?;
        let policy_action = if approve {
            Action::ApprovalApprove
        } else {
            Action::ApprovalReject
        };
        self.require(
            actor,
            policy_action,
            Resource::Approval {
                id: &approval.id,
                requester_operator_id: &approval.requested_by,
                created_by_requester: &created_by_requester,
                action: &approval.action,
                tenant: &attributes,
            },
            &[],
            entry,
        )?;
        if approval.status != "pending" {
            return Err(ServiceError::Conflict {
                message: format!("approval {id} is {}, not pending", approval.status),
                current_status: Some(approval.status.clone()),
            });
        }
        let now = self.now_micros();
        if approval.expires_at <= now {
            return Err(ServiceError::Conflict {
                message: format!(
                    "approval {id} expired at {}",
                    format_rfc3339(from_micros(approval.expires_at))
                ),
                current_status: Some("expired".to_owned()),
            });
        }
        let (decider_id, decider_name) = match &actor.principal {
            Principal::Operator { id, name, .. } => (id.clone(), name.clone()),
            other => (other.actor_name(), other.actor_name()),
        };
        approval.decided_by_name = Some(decider_name.clone());
        approval.decided_at = Some(now);
        approval.comment = comment.map(str::to_owned);
        let mut outcome = None;
        let mut execution_entry = None;
        if approve {
            let action = approval
                .action
                .strip_prefix("tenant.")
                .and_then(LifecycleAction::parse)
                .ok_or_else(|| {
                    StoreError::corrupt(format!("approval action {}", approval.action))
                })?;
            // Nothing left to do (e.g. the purge timer purged the tenant while this purge
            // waited): running it again would redo the purge and issue a second certificate.
            if companyos_domain::tenant::transition(
                tenant.status,
                action,
                tenant.status_before_delete,
            )
            .is_ok_and(|t| !t.changes())
            {
                return Err(ServiceError::Conflict {
                    message: format!(
                        "tenant {} is already {}: {} has nothing left to do",
                        tenant.id, tenant.status, approval.action
                    ),
                    current_status: Some(tenant.status.as_str().to_owned()),
                });
            }
            // The requester must still be an active operator allowed to request the action.
            let requester = self.requester_principal(tx, &approval.requested_by).await?;
            let requester_actor = Actor {
                principal: requester,
                request_id: actor.request_id.clone(),
                channel: actor.channel,
            };
            let mut exec = self
                .entry(actor, &approval.action, &tenant.target())
                .tenant(tenant.id.as_str())
                .reason(approval.reason.as_deref());
            // Stored approvals name one of the lifecycle's Cedar actions.
            let approved_action = Action::parse(&approval.action).ok_or_else(|| {
                StoreError::corrupt(format!("approval action {:?}", approval.action))
            })?;
            self.require(
                &requester_actor,
                approved_action,
                crate::authz::Resource::Tenant(&attributes),
                &[],
                &mut exec,
            )?;
            // After policy (a hold set since the request is a denial by policy, as ever):
            // an approval is bound to the facts the approver was shown.
            let changed = changed_facts(approval.facts.as_ref(), &approval_facts(&tenant));
            if !changed.is_empty() {
                return Err(lapsed(&approval.id, tenant.id.as_str(), &changed));
            }
            let (warnings, evidence) = self
                .execute_lifecycle(
                    tx,
                    actor,
                    &mut tenant,
                    action,
                    approval.reason.as_deref().unwrap_or("approved"),
                    Some(&approval.id),
                    &mut exec,
                )
                .await?;
            if let Value::Object(details) = &mut exec.details {
                details.insert("requested_by".to_owned(), json!(approval.requested_by_name));
                details.insert("approved_by".to_owned(), json!(decider_name));
            }
            approval.status = "executed".to_owned();
            approval.result = Some(json!({
                "tenant_status": tenant.status.as_str(),
                "evidence_id": evidence.as_ref().map(|e| e.id.clone()),
            }));
            outcome = Some(LifecycleOutcome::Done {
                tenant: Box::new(tenant),
                changed: true,
                warnings,
                evidence,
            });
            execution_entry = Some(exec);
        } else {
            approval.status = "rejected".to_owned();
        }
        sqlx::query(
            "UPDATE approvals SET status = $1, decided_by = $2, decided_by_name = $3, \
             decided_at = $4, comment = $5, result = $6 WHERE id = $7",
        )
        .bind(approval.status.as_str())
        .bind(decider_id.as_str())
        .bind(decider_name.as_str())
        .bind(now)
        .bind(comment)
        .bind(approval.result.as_ref().map(Value::to_string))
        .bind(approval.id.as_str())
        .execute(&mut **tx)
        .await?;
        Ok((approval, outcome, execution_entry))
    }

    /// Of the operators the requester created (directly, or through operators it created)
    /// from one approval lifetime before the request on, the deciding one if it is among them:
    /// the policy only ever asks about the principal, so the set is that one or empty.
    /// Operators record their creator by name, which is unique and never reused.
    async fn created_by_requester(
        &self,
        conn: &mut AnyConnection,
        approval: &ApprovalView,
        decider: &Actor,
    ) -> Result<Vec<String>, ServiceError> {
        let Principal::Operator { id, name, .. } = &decider.principal else {
            return Ok(Vec::new());
        };
        let lifetime_micros = approval.expires_at - approval.requested_at;
        let since = approval.requested_at - lifetime_micros;
        let mut current = name.clone();
        for _ in 0..CREATOR_CHAIN_DEPTH_MAX {
            let row = sqlx::query("SELECT created_by, created_at FROM operators WHERE name = $1")
                .bind(current.as_str())
                .fetch_optional(&mut *conn)
                .await?;
            let Some(row) = row else { break };
            let created_by: Option<String> = row.try_get("created_by")?;
            let created_at: i64 = row.try_get("created_at")?;
            match created_by {
                Some(creator) if created_at >= since => {
                    if creator == approval.requested_by_name {
                        return Ok(vec![id.clone()]);
                    }
                    current = creator;
                }
                _ => break,
            }
        }
        Ok(Vec::new())
    }

    async fn requester_principal(
        &self,
        conn: &mut AnyConnection,
        operator_id: &str,
    ) -> Result<Principal, ServiceError> {
        let row = sqlx::query(
            "SELECT id, name, role FROM operators WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(operator_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| {
            ServiceError::conflict("the requester is no longer an active operator; request again")
        })?;
        let role: String = row.try_get("role")?;
        Ok(Principal::Operator {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            role: companyos_domain::Role::parse(&role)
                .map_err(|_| StoreError::corrupt(format!("operator role {role:?}")))?,
        })
    }
}

impl Approvals<'_> {
    /// Approvals, optionally by status.
    pub async fn list(
        &self,
        actor: &Actor,
        status: Option<&str>,
    ) -> Result<Vec<ApprovalView>, ServiceError> {
        if let Some(status) = status {
            if ![
                "pending", "approved", "executed", "rejected", "expired", "lapsed", "failed",
            ]
            .contains(&status)
            {
                return Err(ServiceError::invalid(
                    "status",
                    "must be one of pending, executed, rejected, expired, failed",
                ));
            }
        }
        self.authorize_read(
            actor,
            Action::ApprovalRead,
            Resource::Deployment,
            "approvals",
            None,
        )
        .await?;
        let mut conn = self.db().readers().acquire().await?;
        // Requests past their time read as expired even before the expiry job marks them.
        let now = self.now_micros();
        let rows = sqlx::query(&format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals ORDER BY requested_at DESC LIMIT 1000"
        ))
        .fetch_all(&mut *conn)
        .await?;
        let mut approvals = Vec::new();
        for row in &rows {
            let mut approval = row_to_approval(row)?;
            if approval.status == "pending" && approval.expires_at <= now {
                approval.status = "expired".to_owned();
            }
            if status.is_none_or(|s| s == approval.status) {
                approvals.push(approval);
            }
        }
        Ok(approvals)
    }

    pub async fn get(&self, actor: &Actor, id: &str) -> Result<ApprovalView, ServiceError> {
        self.authorize_read(
            actor,
            Action::ApprovalRead,
            Resource::Deployment,
            &format!("approval:{id}"),
            None,
        )
        .await?;
        let mut conn = self.db().readers().acquire().await?;
        load_approval(&mut conn, id, "")
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("approval {id}")))
    }

    /// Approves a pending request and runs its action, as one audited transaction.
    pub async fn approve(
        &self,
        actor: &Actor,
        id: &str,
        comment: Option<&str>,
    ) -> Result<(ApprovalView, LifecycleOutcome), ServiceError> {
        let mut entry = self.entry(actor, "approval.approve", &format!("approval:{id}"));
        let mut tx = self.db().begin().await?;
        let result = self
            .decide(&mut tx, actor, id, comment, true, &mut entry)
            .await;
        match result {
            Ok((approval, outcome, execution_entry)) => {
                // Two records: the approval decision and the action it ran.
                let records = vec![
                    entry,
                    execution_entry.unwrap_or_else(|| unreachable_entry(actor)),
                ];
                let records = self.append_audit(&mut tx, self.now(), records).await?;
                tx.commit().await?;
                self.committed(&records);
                Ok((
                    approval,
                    outcome
                        .ok_or_else(|| ServiceError::Internal("approval ran nothing".to_owned()))?,
                ))
            }
            Err(error) => {
                tx.rollback().await?;
                self.expire_if_due(id).await?;
                self.lapse_if_stale(id).await?;
                self.audit_failure(entry, &error).await?;
                Err(error)
            }
        }
    }

    /// Rejects a pending request.
    pub async fn reject(
        &self,
        actor: &Actor,
        id: &str,
        comment: Option<&str>,
    ) -> Result<ApprovalView, ServiceError> {
        let mut entry = self.entry(actor, "approval.reject", &format!("approval:{id}"));
        let mut tx = self.db().begin().await?;
        let result = self
            .decide(&mut tx, actor, id, comment, false, &mut entry)
            .await
            .map(|(approval, _, _)| approval);
        if result.is_err() {
            tx.rollback().await?;
            self.expire_if_due(id).await?;
            let Err(error) = result else { unreachable!() };
            self.audit_failure(entry, &error).await?;
            return Err(error);
        }
        self.finish(tx, entry, result).await
    }
}

fn unreachable_entry(actor: &Actor) -> NewAudit {
    NewAudit::new(
        &actor.principal,
        actor.request_id.as_deref(),
        "approval.execute",
        "unknown",
    )
    .channel(actor.channel)
}
