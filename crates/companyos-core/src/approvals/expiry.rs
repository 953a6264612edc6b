//! When an approval stops being answerable: past its expiry (the `approval-expiry` job and every
//! read), or lapsed because the tenant facts it was requested on have changed since.

use super::*;

impl Approvals<'_> {
    /// Expires every pending approval past its time (the expiry job).
    pub async fn expire(&self) -> Result<usize, ServiceError> {
        let mut conn = self.db().readers().acquire().await?;
        let ids = approval_rows::due_for_expiry(&mut conn, self.now_micros()).await?;
        drop(conn);
        for id in &ids {
            self.expire_if_due(id).await?;
        }
        Ok(ids.len())
    }
}

impl App {
    /// Marks one approval expired if its time has passed (audited as `approval.expire`).
    pub(super) async fn expire_if_due(&self, id: &str) -> Result<(), ServiceError> {
        let mut tx = self.db().begin().await?;
        let updated = approval_rows::expire_if_due(&mut tx, id, self.now_micros()).await?;
        if updated {
            let system = Actor::system("approval-expiry");
            let entry = self.entry(&system, "approval.expire", &format!("approval:{id}"));
            self.append_audit(&mut tx, self.now(), vec![entry]).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Marks one pending approval lapsed when the facts it was requested on have changed
    /// (audited as `approval.lapse`, naming what changed): it can never be approved again.
    pub(super) async fn lapse_if_stale(&self, id: &str) -> Result<(), ServiceError> {
        let mut tx = self.db().begin().await?;
        let Some(approval) = approval_rows::lock(self.db(), &mut tx, id).await? else {
            tx.rollback().await?;
            return Ok(());
        };
        let tenant = companyos_store::tenants::load(&mut tx, &approval.tenant_id).await?;
        let changed = match &tenant {
            Some(tenant) => changed_facts(approval.facts.as_ref(), &approval_facts(tenant)),
            None => vec!["tenant".to_owned()],
        };
        if approval.status != ApprovalStatus::Pending || changed.is_empty() {
            tx.rollback().await?;
            return Ok(());
        }
        approval_rows::lapse(&mut tx, id).await?;
        let system = Actor::system("approval-lapse");
        let entry = self
            .entry(&system, "approval.lapse", &format!("approval:{id}"))
            .tenant(approval.tenant_id.as_str())
            .details(json!({"action": action_name(approval.action), "changed": changed}));
        self.append_audit(&mut tx, self.now(), vec![entry]).await?;
        tx.commit().await?;
        Ok(())
    }
}

pub(super) fn lapsed(approval_id: &str, tenant_id: &str, changed: &[String]) -> ServiceError {
    ServiceError::Conflict {
        message: format!(
            "approval {approval_id} has lapsed: tenant {tenant_id} changed since it was \
             requested ({}), so the approver would not approve what they were shown; request \
             the action again",
            changed.join(", ")
        ),
        current_status: Some("lapsed".to_owned()),
    }
}
