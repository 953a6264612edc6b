//! Operators (CONTRACT §3): the bootstrap admin, its reset from the store, and the audited
//! creation, listing and revocation of operators and their tokens. Bearer-token authentication
//! is in [`authentication`].

use companyos_domain::audit::AuditOutcome;
use companyos_domain::time_util::{from_micros, to_micros};
use companyos_domain::{Action, OperatorName, Role};
use companyos_store::operators::{self as operator_rows, NewOperator, OnNameTaken};
use serde_json::json;
use time::OffsetDateTime;

use crate::app::{Actor, Operators};
use crate::audit::NewAudit;
use crate::authz::{Principal, Resource};
use crate::db::StoreError;
use crate::error::ServiceError;
use crate::util::{new_id, new_token, token_hash};

pub mod authentication;

/// Prefix of operator tokens.
pub const OPERATOR_TOKEN_PREFIX: &str = "cos_op";
/// Name of the operator created by `init`.
pub const BOOTSTRAP_ADMIN: &str = "admin";
/// The audit actor of `companyos operator reset-admin`.
pub const RESET_ADMIN_ACTOR: &str = "local:reset-admin";

/// A created operator, with its token (shown once).
#[derive(Debug, Clone)]
pub struct CreatedOperator {
    pub operator: OperatorView,
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorView {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_at: OffsetDateTime,
    pub revoked: bool,
}

/// The bootstrap admin's name as a parsed [`OperatorName`].
fn bootstrap_admin_name() -> Result<OperatorName, StoreError> {
    OperatorName::parse(BOOTSTRAP_ADMIN)
        .map_err(|e| StoreError::corrupt(format!("bootstrap admin name: {}", e.message)))
}

impl Operators<'_> {
    /// Writes a new operator with a fresh id and token, created at `now` by `created_by`:
    /// its id and token (the token is shown once, only its hash is stored), or `None` when
    /// the name is taken and `on_name_taken` skips.
    async fn insert_operator(
        &self,
        conn: &mut sqlx::AnyConnection,
        name: &OperatorName,
        role: Role,
        created_by: &str,
        now: OffsetDateTime,
        on_name_taken: OnNameTaken,
    ) -> Result<Option<(String, String)>, StoreError> {
        let id = new_id("op", now);
        let token = new_token(OPERATOR_TOKEN_PREFIX);
        let operator = NewOperator {
            id: &id,
            name,
            role,
            token_sha256: &token_hash(&token),
            created_at_micros: to_micros(now),
            created_by,
        };
        let inserted = operator_rows::insert(conn, &operator, on_name_taken).await?;
        Ok(inserted.then_some((id, token)))
    }

    /// Creates the `admin` operator if no operator exists yet; returns its token once.
    pub(crate) async fn bootstrap_admin(&self) -> Result<Option<String>, StoreError> {
        let mut tx = self.db().begin().await?;
        if operator_rows::count(&mut tx).await? > 0 {
            tx.commit().await?;
            return Ok(None);
        }
        let now = self.now();
        let admin_name = bootstrap_admin_name()?;
        let inserted = self
            .insert_operator(
                &mut tx,
                &admin_name,
                Role::Admin,
                "system:init",
                now,
                OnNameTaken::Skip,
            )
            .await?;
        let Some((id, token)) = inserted else {
            tx.commit().await?;
            return Ok(None);
        };
        let entry = NewAudit::new(
            &Principal::System {
                job: "init".to_owned(),
            },
            None,
            "operator.create",
            &format!("operator:{id}"),
        )
        .details(json!({"name": BOOTSTRAP_ADMIN, "role": "admin", "bootstrap": true}));
        self.append_audit(&mut tx, now, vec![entry]).await?;
        tx.commit().await?;
        Ok(Some(token))
    }

    /// Issues a new token for the `admin` operator, revoking its old one (or creates the
    /// operator if it is gone), and audits it as `operator.reset_admin` by `local:reset-admin`.
    /// This is the recovery path for a lost admin token: it runs on the store directly, so
    /// holding the data dir (or the database URL) is the authority, as for `init`; no bearer
    /// token exists to authorize it by policy.
    pub async fn reset_admin(&self) -> Result<String, StoreError> {
        let mut tx = self.db().begin().await?;
        let now = self.now();
        let admin_name = bootstrap_admin_name()?;
        let existing = operator_rows::id_by_name(&mut tx, &admin_name).await?;
        // The operator row holds its one token hash: replacing it revokes the old token.
        let (id, token, created) = match existing {
            Some(id) => {
                let token = new_token(OPERATOR_TOKEN_PREFIX);
                operator_rows::replace_token(&mut tx, &id, &token_hash(&token), Role::Admin)
                    .await?;
                (id, token, false)
            }
            None => {
                let inserted = self
                    .insert_operator(
                        &mut tx,
                        &admin_name,
                        Role::Admin,
                        RESET_ADMIN_ACTOR,
                        now,
                        OnNameTaken::Fail,
                    )
                    .await?;
                let (id, token) = inserted.ok_or_else(|| {
                    StoreError::corrupt("the admin operator was neither found nor written")
                })?;
                (id, token, true)
            }
        };
        let entry = NewAudit {
            id: None,
            actor: RESET_ADMIN_ACTOR.to_owned(),
            role: "system".to_owned(),
            action: "operator.reset_admin".to_owned(),
            target: format!("operator:{id}"),
            tenant_id: None,
            outcome: AuditOutcome::Success,
            reason: Some("admin token reset from the store".to_owned()),
            request_id: None,
            details: json!({"name": BOOTSTRAP_ADMIN, "created": created, "old_token_revoked": !created}),
            channel: None,
        };
        self.append_audit(&mut tx, now, vec![entry]).await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Creates an operator (CONTRACT §3); the token is returned only here.
    pub async fn create(
        &self,
        actor: &Actor,
        name: &str,
        role: &str,
    ) -> Result<CreatedOperator, ServiceError> {
        let mut entry = self
            .entry(actor, "operator.create", "operators")
            .details(json!({"name": name, "role": role}));
        let mut tx = self.db().begin().await?;
        let result = async {
            self.require(
                actor,
                Action::OperatorCreate,
                Resource::Deployment,
                &[],
                &mut entry,
            )?;
            let mut collector = companyos_domain::error::Collector::new();
            let name = collector.take(OperatorName::parse(name));
            let role = collector.take(Role::parse(role));
            collector.finish()?;
            let (Some(name), Some(role)) = (name, role) else {
                return Err(ServiceError::Internal("validated operator".to_owned()));
            };
            let now = self.now();
            let created_by = actor.principal.actor_name();
            let inserted = self
                .insert_operator(&mut tx, &name, role, &created_by, now, OnNameTaken::Skip)
                .await?;
            let Some((id, token)) = inserted else {
                return Err(ServiceError::conflict(format!(
                    "an operator named {name} already exists"
                )));
            };
            entry.target = format!("operator:{id}");
            Ok(CreatedOperator {
                operator: OperatorView {
                    id,
                    name: name.into_string(),
                    role,
                    created_at: now,
                    revoked: false,
                },
                token,
            })
        }
        .await;
        self.finish(tx, entry, result).await
    }

    pub async fn list(&self, actor: &Actor) -> Result<Vec<OperatorView>, ServiceError> {
        self.authorize_read(
            actor,
            Action::OperatorRead,
            Resource::Deployment,
            "operators",
            None,
        )
        .await?;
        let mut conn = self.db().readers().acquire().await?;
        let rows = operator_rows::list(&mut conn).await?;
        Ok(rows
            .into_iter()
            .map(|row| OperatorView {
                id: row.id,
                name: row.name.into_string(),
                role: row.role,
                created_at: from_micros(row.created_at_micros),
                revoked: row.revoked_at_micros.is_some(),
            })
            .collect())
    }

    /// Revokes an operator's token; it stops working at once.
    pub async fn revoke(&self, actor: &Actor, id: &str) -> Result<(), ServiceError> {
        let mut entry = self.entry(actor, "operator.revoke", &format!("operator:{id}"));
        let mut tx = self.db().begin().await?;
        let result = async {
            self.require(
                actor,
                Action::OperatorRevoke,
                Resource::Deployment,
                &[],
                &mut entry,
            )?;
            if actor.principal.operator_id() == Some(id) {
                return Err(ServiceError::conflict("an operator cannot revoke itself"));
            }
            if !operator_rows::revoke(&mut tx, id, self.now_micros()).await? {
                return Err(ServiceError::NotFound(format!("active operator {id}")));
            }
            Ok(())
        }
        .await;
        self.finish(tx, entry, result).await
    }
}
