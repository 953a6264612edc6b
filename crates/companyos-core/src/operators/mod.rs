//! Operators (CONTRACT §3): the bootstrap admin, its reset from the store, and the audited
//! creation, listing and revocation of operators and their tokens. Bearer-token authentication
//! is in [`authentication`].

use companyos_domain::audit::AuditOutcome;
use companyos_domain::{Action, OperatorName, Role};
use serde_json::json;
use sqlx::Row as _;
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

impl Operators<'_> {
    /// Creates the `admin` operator if no operator exists yet; returns its token once.
    pub(crate) async fn bootstrap_admin(&self) -> Result<Option<String>, StoreError> {
        let mut tx = self.db().begin().await?;
        let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM operators")
            .fetch_one(&mut *tx)
            .await?;
        if existing > 0 {
            tx.commit().await?;
            return Ok(None);
        }
        let now = self.now();
        let token = new_token(OPERATOR_TOKEN_PREFIX);
        let id = new_id("op", now);
        let inserted = sqlx::query(
            "INSERT INTO operators (id, name, role, token_sha256, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING",
        )
        .bind(id.as_str())
        .bind(BOOTSTRAP_ADMIN)
        .bind(Role::Admin.as_str())
        .bind(token_hash(&token))
        .bind(companyos_domain::time_util::to_micros(now))
        .bind("system:init")
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            tx.commit().await?;
            return Ok(None);
        }
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
        let now_micros = companyos_domain::time_util::to_micros(now);
        let token = new_token(OPERATOR_TOKEN_PREFIX);
        let existing: Option<String> =
            sqlx::query_scalar("SELECT id FROM operators WHERE name = $1")
                .bind(BOOTSTRAP_ADMIN)
                .fetch_optional(&mut *tx)
                .await?;
        // The operator row holds its one token hash: replacing it revokes the old token.
        let (id, created) = match existing {
            Some(id) => {
                sqlx::query(
                    "UPDATE operators SET token_sha256 = $1, role = $2, revoked_at = NULL \
                     WHERE id = $3",
                )
                .bind(token_hash(&token))
                .bind(Role::Admin.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
                (id, false)
            }
            None => {
                let id = new_id("op", now);
                sqlx::query(
                    "INSERT INTO operators (id, name, role, token_sha256, created_at, created_by) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(id.as_str())
                .bind(BOOTSTRAP_ADMIN)
                .bind(Role::Admin.as_str())
                .bind(token_hash(&token))
                .bind(now_micros)
                .bind(RESET_ADMIN_ACTOR)
                .execute(&mut *tx)
                .await?;
                (id, true)
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
            let id = new_id("op", now);
            let token = new_token(OPERATOR_TOKEN_PREFIX);
            let inserted = sqlx::query(
                "INSERT INTO operators (id, name, role, token_sha256, created_at, created_by) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING",
            )
            .bind(id.as_str())
            .bind(name.as_str())
            .bind(role.as_str())
            .bind(token_hash(&token))
            .bind(companyos_domain::time_util::to_micros(now))
            .bind(actor.principal.actor_name())
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 0 {
                return Err(ServiceError::conflict(format!(
                    "an operator named {name} already exists"
                )));
            }
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
        let rows = sqlx::query(
            "SELECT id, name, role, created_at, revoked_at FROM operators ORDER BY created_at",
        )
        .fetch_all(self.db().readers())
        .await?;
        rows.iter()
            .map(|row| {
                let role: String = row.try_get("role")?;
                Ok(OperatorView {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    role: Role::parse(&role)
                        .map_err(|_| StoreError::corrupt(format!("operator role {role:?}")))?,
                    created_at: companyos_domain::time_util::from_micros(
                        row.try_get("created_at")?,
                    ),
                    revoked: row.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
                })
            })
            .collect()
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
            let updated = sqlx::query(
                "UPDATE operators SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            )
            .bind(self.now_micros())
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() == 0 {
                return Err(ServiceError::NotFound(format!("active operator {id}")));
            }
            Ok(())
        }
        .await;
        self.finish(tx, entry, result).await
    }
}
