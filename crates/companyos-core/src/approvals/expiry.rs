//! When an approval stops being answerable: past its expiry (the `approval-expiry` job and every
//! read), or lapsed because the tenant facts it was requested on have changed since.

use super::*;

impl Approvals<'_> {
    /// Expires every pending approval past its time (the expiry job).
    pub async fn expire(&self) -> Result<usize, ServiceError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM approvals WHERE status = 'pending' AND expires_at <= $1 LIMIT 1000",
        )
        .bind(self.now_micros())
        .fetch_all(self.db().readers())
        .await?;
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
        let updated = sqlx::query(
            "UPDATE approvals SET status = 'expired' WHERE id = $1 AND status = 'pending' \
             AND expires_at <= $2",
        )
        .bind(id)
        .bind(self.now_micros())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated > 0 {
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
        let Some(approval) = load_approval(&mut tx, id, self.db().for_update()).await? else {
            tx.rollback().await?;
            return Ok(());
        };
        let tenant = crate::lifecycle::tenant_named(&mut tx, &approval.tenant_id).await?;
        let changed = match &tenant {
            Some(tenant) => changed_facts(approval.facts.as_ref(), &approval_facts(tenant)),
            None => vec!["tenant".to_owned()],
        };
        if approval.status != "pending" || changed.is_empty() {
            tx.rollback().await?;
            return Ok(());
        }
        sqlx::query("UPDATE approvals SET status = 'lapsed' WHERE id = $1 AND status = 'pending'")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let system = Actor::system("approval-lapse");
        let entry = self
            .entry(&system, "approval.lapse", &format!("approval:{id}"))
            .tenant(&approval.tenant_id)
            .details(json!({"action": approval.action, "changed": changed}));
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
