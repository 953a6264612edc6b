//! The one authorize -> act -> audit path every capability goes through: `require` asks the
//! policies inside the caller's transaction, `finish` commits the change with its audit record
//! or rolls it back and audits the failure on its own, `authorize_read` audits a denied read.

use companyos_domain::Action;
use companyos_domain::audit::AuditRecord;
use serde_json::{Value, json};

use super::{Actor, App};
use crate::audit::{self, NewAudit};
use crate::authz::{AuthzDecision, Resource};
use crate::db::{StoreError, Tx};
use crate::error::ServiceError;

impl App {
    /// Asks the policies; on a denial returns `Forbidden` (the caller's transaction is rolled back
    /// and the denial audited by [`App::finish`]). The deciding policies go into the audit details.
    pub(crate) fn require(
        &self,
        actor: &Actor,
        action: Action,
        resource: Resource<'_>,
        context: &[(&str, &str)],
        entry: &mut NewAudit,
    ) -> Result<AuthzDecision, ServiceError> {
        let decision = self
            .inner
            .authz
            .authorize(&actor.principal, action, resource, context);
        self.inner.metrics.authorization(decision.allowed);
        if let Value::Object(details) = &mut entry.details {
            details.insert("policies".to_owned(), json!(decision.policy_ids));
        }
        if decision.allowed {
            Ok(decision)
        } else {
            Err(ServiceError::Forbidden(decision.denial_reason(action)))
        }
    }

    /// Commits a mutation with its audit record, or rolls it back and audits the failure.
    pub(crate) async fn finish<T>(
        &self,
        mut tx: Tx,
        entry: NewAudit,
        result: Result<T, ServiceError>,
    ) -> Result<T, ServiceError> {
        match result {
            Ok(value) => {
                let committed = async {
                    let records = self.append_audit(&mut tx, self.now(), vec![entry]).await?;
                    tx.commit().await?;
                    self.committed(&records);
                    Ok(value)
                }
                .await;
                if let Err(error) = &committed {
                    self.observe(error);
                }
                committed
            }
            Err(error) => {
                // A failed audit write of the failure is observed where it is written.
                self.observe(&error);
                tx.rollback().await?;
                self.audit_failure(entry, &error).await?;
                Err(error)
            }
        }
    }

    /// Tells this node's caches that the mutations of these (committed) records happened:
    /// forward-auth answers of the tenants they name are recomputed (`billing::access_cache`).
    pub(crate) fn committed(&self, records: &[AuditRecord]) {
        let tenants = records.iter().filter_map(|record| {
            record
                .tenant_id
                .as_deref()
                .or_else(|| record.target.strip_prefix("tenant:"))
        });
        self.inner.access_cache.invalidate(tenants);
    }

    /// Appends audit records inside the caller's transaction, under the policies in force.
    pub(crate) async fn append_audit(
        &self,
        tx: &mut Tx,
        now: time::OffsetDateTime,
        entries: Vec<NewAudit>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        audit::append(
            self.db(),
            tx,
            self.inner.authz.policy_sha256(),
            now,
            entries,
        )
        .await
    }

    /// Notes a failure for want of the store, which keeps `/readyz` at "not ready" for a while.
    pub(crate) fn observe(&self, error: &ServiceError) {
        if error.is_store_unavailable() {
            self.db().note_write_unavailable();
        }
    }

    /// Audits a denied or failed attempt in a transaction of its own.
    pub(crate) async fn audit_failure(
        &self,
        mut entry: NewAudit,
        error: &ServiceError,
    ) -> Result<(), ServiceError> {
        if let (Some(reason), Value::Object(details)) = (&entry.reason, &mut entry.details) {
            details.insert("requested_reason".to_owned(), json!(reason));
        }
        entry.outcome = error.audit_outcome();
        entry.reason = Some(error.to_string());
        if let (ServiceError::Validation(errors), Value::Object(details)) =
            (error, &mut entry.details)
        {
            details.insert("errors".to_owned(), json!(errors.errors()));
        }
        self.audit_alone(entry).await?;
        Ok(())
    }

    /// Writes one audit record in its own transaction.
    pub(crate) async fn audit_alone(&self, entry: NewAudit) -> Result<AuditRecord, StoreError> {
        let written = self.audit_alone_in_tx(entry).await;
        if written.as_ref().is_err_and(StoreError::is_unavailable) {
            self.db().note_write_unavailable();
        }
        written
    }

    async fn audit_alone_in_tx(&self, entry: NewAudit) -> Result<AuditRecord, StoreError> {
        let mut tx = self.db().begin().await?;
        let mut records = self.append_audit(&mut tx, self.now(), vec![entry]).await?;
        tx.commit().await?;
        records
            .pop()
            .ok_or_else(|| StoreError::corrupt("audit append returned nothing"))
    }

    /// Authorizes a read; a denial is audited.
    pub(crate) async fn authorize_read(
        &self,
        actor: &Actor,
        action: Action,
        resource: Resource<'_>,
        target: &str,
        tenant_id: Option<&str>,
    ) -> Result<(), ServiceError> {
        let decision = self
            .inner
            .authz
            .authorize(&actor.principal, action, resource, &[]);
        self.inner.metrics.authorization(decision.allowed);
        if decision.allowed {
            return Ok(());
        }
        let error = ServiceError::Forbidden(decision.denial_reason(action));
        let mut entry = NewAudit::new(
            &actor.principal,
            actor.request_id.as_deref(),
            action.as_str(),
            target,
        )
        .channel(actor.channel)
        .details(json!({"policies": decision.policy_ids}));
        entry.tenant_id = tenant_id.map(str::to_owned);
        self.audit_failure(entry, &error).await?;
        Err(error)
    }

    pub(crate) fn entry(&self, actor: &Actor, action: &str, target: &str) -> NewAudit {
        NewAudit::new(
            &actor.principal,
            actor.request_id.as_deref(),
            action,
            target,
        )
        .channel(actor.channel)
    }
}
