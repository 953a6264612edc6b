//! Approvals (ADM-2): a lifecycle action that policy says needs a second person waits as a
//! pending approval; an approver other than the requester approves (and the action runs, in the
//! same transaction) or rejects it; unanswered requests expire. All of it is audited.

use companyos_domain::LifecycleAction;
use companyos_domain::time_util::{format_rfc3339, from_micros, to_micros};
use companyos_store::approvals::{self as approval_rows, ApprovalRow, ApprovalStatus};
use companyos_store::operators as operator_rows;
use serde_json::{Value, json};
use sqlx::AnyConnection;

use crate::app::{Actor, App, Approvals};
use crate::audit::NewAudit;
use crate::authz::{Principal, Resource, TenantAttributes};
use crate::db::Tx;
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

impl From<ApprovalRow> for ApprovalView {
    fn from(row: ApprovalRow) -> Self {
        Self {
            id: row.id,
            action: action_name(row.action).to_owned(),
            tenant_id: row.tenant_id.into_string(),
            status: row.status.as_str().to_owned(),
            requested_by: row.requested_by,
            requested_by_name: row.requested_by_name,
            reason: row.requested_reason,
            requested_at: row.requested_at_micros,
            expires_at: row.expires_at_micros,
            decided_by_name: row.decided_by_name,
            decided_at: row.decided_at_micros,
            comment: row.comment,
            warnings: row.warnings,
            result: row.result,
            facts: row.facts,
        }
    }
}

/// The name an approval gives its action: the Cedar action (`tenant.suspend`, ...), as stored
/// and audited.
pub(crate) fn action_name(action: LifecycleAction) -> &'static str {
    action.cedar_action().as_str()
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
        let tenant_id = tenant.id.clone();
        let pending = approval_rows::pending_id(tx, &tenant_id, action, to_micros(now)).await?;
        if let Some(existing) = pending {
            return Err(ServiceError::conflict(format!(
                "approval {existing} for tenant.{action} of {} is already pending",
                tenant.id
            )));
        }
        let approval = ApprovalRow {
            id: new_id("apr", now),
            action,
            tenant_id,
            facts: Some(approval_facts(tenant)),
            warnings,
            status: ApprovalStatus::Pending,
            requested_by: id.clone(),
            requested_by_name: name.clone(),
            requested_reason: Some(reason.to_owned()),
            requested_at_micros: to_micros(now),
            expires_at_micros: to_micros(now + self.settings().approval_ttl),
            decided_by: None,
            decided_by_name: None,
            decided_at_micros: None,
            comment: None,
            result: None,
        };
        approval_rows::insert(tx, &approval).await?;
        Ok(approval.into())
    }

    /// Approves or rejects the approval `id` in `tx`: checks the decider by policy and that the
    /// approval is still answerable, runs the action when approving, and writes the decision.
    /// Returns the decided approval, and when approved the action's outcome and audit entry.
    async fn decide(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        id: &str,
        comment: Option<&str>,
        approve: bool,
        entry: &mut NewAudit,
    ) -> Result<(ApprovalView, Option<LifecycleOutcome>, Option<NewAudit>), ServiceError> {
        check_comment(comment)?;
        let mut approval = approval_rows::lock(self.db(), tx, id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("approval {id}")))?;
        describe_decision(entry, &approval, comment);
        let tenant = self.lock_tenant(tx, approval.tenant_id.as_str()).await?;
        let attributes = self.attributes_of(&tenant);
        self.require_decider(tx, actor, &approval, &attributes, approve, entry)
            .await?;
        let now = self.now_micros();
        check_answerable(&approval, now)?;
        let (decider_id, decider_name) = match &actor.principal {
            Principal::Operator { id, name, .. } => (id.clone(), name.clone()),
            other => (other.actor_name(), other.actor_name()),
        };
        let mut executed = None;
        if approve {
            let run = self
                .run_approved(tx, actor, &approval, tenant, &attributes, &decider_name)
                .await?;
            approval.status = ApprovalStatus::Executed;
            approval.result = Some(run.result);
            executed = Some((run.outcome, run.entry));
        } else {
            approval.status = ApprovalStatus::Rejected;
        }
        approval.decided_by = Some(decider_id);
        approval.decided_by_name = Some(decider_name);
        approval.decided_at_micros = Some(now);
        approval.comment = comment.map(str::to_owned);
        approval_rows::record_decision(tx, &approval).await?;
        let (outcome, execution_entry) = executed.unzip();
        Ok((approval.into(), outcome, execution_entry))
    }

    /// Asks policy whether `actor` may approve (or reject) `approval`, on the tenant described
    /// by `attributes`; a denial is recorded in `entry`.
    async fn require_decider(
        &self,
        conn: &mut AnyConnection,
        actor: &Actor,
        approval: &ApprovalRow,
        attributes: &TenantAttributes,
        approve: bool,
        entry: &mut NewAudit,
    ) -> Result<(), ServiceError> {
        let created_by_requester = self.created_by_requester(conn, approval, actor).await?;
        let policy_action = if approve {
            Action::ApprovalApprove
        } else {
            Action::ApprovalReject
        };
        let resource = Resource::Approval {
            id: &approval.id,
            requester_operator_id: &approval.requested_by,
            created_by_requester: &created_by_requester,
            action: action_name(approval.action),
            tenant: attributes,
        };
        self.require(actor, policy_action, resource, &[], entry)?;
        Ok(())
    }

    /// Runs the approved action on `tenant` as its requester asked for it, after checking that
    /// it still has something to do, that the requester may still request it and that the
    /// facts the approver was shown still hold.
    async fn run_approved(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        approval: &ApprovalRow,
        mut tenant: TenantRow,
        attributes: &TenantAttributes,
        decider_name: &str,
    ) -> Result<ApprovedRun, ServiceError> {
        let action = approval.action;
        check_something_to_do(&tenant, action)?;
        // The requester must still be an active operator allowed to request the action.
        let requester_actor = Actor {
            principal: self.requester_principal(tx, &approval.requested_by).await?,
            request_id: actor.request_id.clone(),
            channel: actor.channel,
        };
        let mut exec = self
            .entry(actor, action_name(action), &tenant.target())
            .tenant(tenant.id.as_str())
            .reason(approval.requested_reason.as_deref());
        let resource = Resource::Tenant(attributes);
        self.require(
            &requester_actor,
            action.cedar_action(),
            resource,
            &[],
            &mut exec,
        )?;
        // After policy (a hold set since the request is a denial by policy, as ever):
        // an approval is bound to the facts the approver was shown.
        let changed = changed_facts(approval.facts.as_ref(), &approval_facts(&tenant));
        if !changed.is_empty() {
            return Err(lapsed(&approval.id, tenant.id.as_str(), &changed));
        }
        let reason = approval.requested_reason.as_deref().unwrap_or("approved");
        let (warnings, evidence) = self
            .execute_lifecycle(
                tx,
                actor,
                &mut tenant,
                action,
                reason,
                Some(&approval.id),
                &mut exec,
            )
            .await?;
        if let Value::Object(details) = &mut exec.details {
            details.insert("requested_by".to_owned(), json!(approval.requested_by_name));
            details.insert("approved_by".to_owned(), json!(decider_name));
        }
        let result = json!({
            "tenant_status": tenant.status.as_str(),
            "evidence_id": evidence.as_ref().map(|e| e.id.clone()),
        });
        let outcome = LifecycleOutcome::Done {
            tenant: Box::new(tenant),
            changed: true,
            warnings,
            evidence,
        };
        Ok(ApprovedRun {
            outcome,
            entry: exec,
            result,
        })
    }

    /// Of the operators the requester created (directly, or through operators it created)
    /// from one approval lifetime before the request on, the deciding one if it is among them:
    /// the policy only ever asks about the principal, so the set is that one or empty.
    /// Operators record their creator by name, which is unique and never reused.
    async fn created_by_requester(
        &self,
        conn: &mut AnyConnection,
        approval: &ApprovalRow,
        decider: &Actor,
    ) -> Result<Vec<String>, ServiceError> {
        let Principal::Operator { id, name, .. } = &decider.principal else {
            return Ok(Vec::new());
        };
        let lifetime_micros = approval.expires_at_micros - approval.requested_at_micros;
        let since = approval.requested_at_micros - lifetime_micros;
        let mut current = name.clone();
        for _ in 0..CREATOR_CHAIN_DEPTH_MAX {
            let Some(origin) = operator_rows::origin_by_name(conn, &current).await? else {
                break;
            };
            match origin.created_by {
                Some(creator) if origin.created_at_micros >= since => {
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
        let requester = operator_rows::active_by_id(conn, operator_id)
            .await?
            .ok_or_else(|| {
                ServiceError::conflict(
                    "the requester is no longer an active operator; request again",
                )
            })?;
        Ok(Principal::Operator {
            id: requester.id,
            name: requester.name.into_string(),
            role: requester.role,
        })
    }
}

/// What running an approved action gave: its outcome, its audit entry, and the result stored
/// on the approval.
struct ApprovedRun {
    outcome: LifecycleOutcome,
    entry: NewAudit,
    result: Value,
}

fn check_comment(comment: Option<&str>) -> Result<(), ServiceError> {
    match comment {
        Some(comment) if comment.chars().count() > COMMENT_CHARS_MAX => Err(ServiceError::invalid(
            "comment",
            format!("must be at most {COMMENT_CHARS_MAX} characters"),
        )),
        _ => Ok(()),
    }
}

/// Names the approval's tenant, action, requester and the comment in the decision's record.
fn describe_decision(entry: &mut NewAudit, approval: &ApprovalRow, comment: Option<&str>) {
    entry.tenant_id = Some(approval.tenant_id.as_str().to_owned());
    if let Value::Object(details) = &mut entry.details {
        details.insert("action".to_owned(), json!(action_name(approval.action)));
        details.insert("requested_by".to_owned(), json!(approval.requested_by_name));
        details.insert("comment".to_owned(), json!(comment));
    }
}

/// Refuses a decision on an approval that is no longer pending or has expired by `now_micros`.
fn check_answerable(approval: &ApprovalRow, now_micros: i64) -> Result<(), ServiceError> {
    let id = &approval.id;
    if approval.status != ApprovalStatus::Pending {
        return Err(ServiceError::Conflict {
            message: format!("approval {id} is {}, not pending", approval.status.as_str()),
            current_status: Some(approval.status.as_str().to_owned()),
        });
    }
    if approval.expires_at_micros <= now_micros {
        return Err(ServiceError::Conflict {
            message: format!(
                "approval {id} expired at {}",
                format_rfc3339(from_micros(approval.expires_at_micros))
            ),
            current_status: Some("expired".to_owned()),
        });
    }
    Ok(())
}

/// Refuses an action with nothing left to do (e.g. the purge timer purged the tenant while
/// this purge waited): running it again would redo the purge and issue a second certificate.
fn check_something_to_do(tenant: &TenantRow, action: LifecycleAction) -> Result<(), ServiceError> {
    let transition =
        companyos_domain::tenant::transition(tenant.status, action, tenant.status_before_delete);
    if transition.is_ok_and(|t| !t.changes()) {
        return Err(ServiceError::Conflict {
            message: format!(
                "tenant {} is already {}: {} has nothing left to do",
                tenant.id,
                tenant.status,
                action_name(action)
            ),
            current_status: Some(tenant.status.as_str().to_owned()),
        });
    }
    Ok(())
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
        let rows = approval_rows::list_newest(&mut conn).await?;
        let mut approvals = Vec::new();
        for row in rows {
            let mut approval = ApprovalView::from(row);
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
        approval_rows::get(&mut conn, id)
            .await?
            .map(ApprovalView::from)
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
