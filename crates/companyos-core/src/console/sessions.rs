//! Console sessions: created from an operator token at login, stored as the SHA-256 of the
//! cookie value, each with its CSRF token, an absolute expiry, and an end at logout.

use std::net::IpAddr;

use companyos_domain::Role;
use companyos_domain::audit::{AuditChannel, AuditOutcome};
use serde_json::json;
use sqlx::Row as _;
use time::OffsetDateTime;

use crate::app::{Actor, Console};
use crate::authz::{Principal, Resource};
use crate::db::StoreError;
use crate::error::ServiceError;
use crate::util::{new_token, token_hash};
use companyos_domain::Action;

/// How long a console session lasts from login (a working day); then the operator logs in again.
pub const CONSOLE_SESSION_SECONDS: i64 = 8 * 3600;
/// Prefix of session cookie values (never accepted as a bearer token).
pub const SESSION_TOKEN_PREFIX: &str = "cos_cs";
/// Prefix of CSRF tokens.
const CSRF_TOKEN_PREFIX: &str = "cos_csrf";
/// Session cookie values longer than this are not looked up.
const SESSION_TOKEN_CHARS_MAX: usize = 200;

/// A session created at login: the cookie value is shown only here.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    pub cookie_value: String,
    pub csrf_token: String,
    pub expires_at: OffsetDateTime,
}

/// The operator behind a live session.
#[derive(Debug, Clone)]
pub struct SessionActor {
    /// The operator, with channel `console`.
    pub actor: Actor,
    pub csrf_token: String,
    pub expires_at: OffsetDateTime,
}

impl Console<'_> {
    /// Logs an operator in: the token must be a live operator token, and the operator's role
    /// must be allowed `console.login` by policy. Failures are audited with channel `console`.
    pub async fn login(
        &self,
        token: &str,
        request_id: Option<&str>,
        source: Option<IpAddr>,
    ) -> Result<ConsoleSession, ServiceError> {
        let token = Some(token.trim()).filter(|t| !t.is_empty());
        let principal = self
            .authenticate_via(
                token,
                request_id,
                "route:/console/login",
                source,
                Some(AuditChannel::Console),
            )
            .await?;
        let actor = Actor {
            principal,
            request_id: request_id.map(str::to_owned),
            channel: Some(AuditChannel::Console),
        };
        let mut entry = self.entry(&actor, "console.login", "console");
        let mut tx = self.db().begin().await?;
        let result = async {
            self.require(
                &actor,
                Action::ConsoleLogin,
                Resource::Deployment,
                &[],
                &mut entry,
            )?;
            let Some(operator_id) = actor.principal.operator_id() else {
                return Err(ServiceError::Forbidden(
                    "only operators log in to the console".to_owned(),
                ));
            };
            let now = self.now();
            let session = ConsoleSession {
                cookie_value: new_token(SESSION_TOKEN_PREFIX),
                csrf_token: new_token(CSRF_TOKEN_PREFIX),
                expires_at: now + time::Duration::seconds(CONSOLE_SESSION_SECONDS),
            };
            // Sessions past their expiry are never read again: dropping them here keeps the
            // table to the live sessions without a job of its own.
            sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
                .bind(companyos_domain::time_util::to_micros(now))
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO console_sessions \
                 (id_sha256, operator_id, csrf_token, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(token_hash(&session.cookie_value))
            .bind(operator_id)
            .bind(session.csrf_token.as_str())
            .bind(companyos_domain::time_util::to_micros(now))
            .bind(companyos_domain::time_util::to_micros(session.expires_at))
            .execute(&mut *tx)
            .await?;
            Ok(session)
        }
        .await;
        self.finish(tx, entry, result).await
    }

    /// The operator of a live session: not ended, not expired, and the operator not revoked
    /// (read from the store on every request, never cached). `None` otherwise.
    pub async fn session(
        &self,
        cookie_value: &str,
        request_id: Option<&str>,
    ) -> Result<Option<SessionActor>, ServiceError> {
        if cookie_value.len() > SESSION_TOKEN_CHARS_MAX
            || !cookie_value.starts_with(SESSION_TOKEN_PREFIX)
        {
            return Ok(None);
        }
        let mut conn = self.db().readers().acquire().await?;
        let row = sqlx::query(
            "SELECT s.csrf_token, s.expires_at, o.id, o.name, o.role \
             FROM console_sessions s JOIN operators o ON o.id = s.operator_id \
             WHERE s.id_sha256 = $1 AND s.ended_at IS NULL AND s.expires_at > $2 \
             AND o.revoked_at IS NULL",
        )
        .bind(token_hash(cookie_value))
        .bind(self.now_micros())
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let role: String = row.try_get("role")?;
        let role = Role::parse(&role)
            .map_err(|_| StoreError::corrupt(format!("operator role {role:?}")))?;
        Ok(Some(SessionActor {
            actor: Actor {
                principal: Principal::Operator {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    role,
                },
                request_id: request_id.map(str::to_owned),
                channel: Some(AuditChannel::Console),
            },
            csrf_token: row.try_get("csrf_token")?,
            expires_at: companyos_domain::time_util::from_micros(row.try_get("expires_at")?),
        }))
    }

    /// Ends a session (logout); audited as `console.logout`.
    pub async fn logout(&self, actor: &Actor, cookie_value: &str) -> Result<(), ServiceError> {
        let entry = self.entry(actor, "console.logout", "console");
        let mut tx = self.db().begin().await?;
        let result = sqlx::query(
            "UPDATE console_sessions SET ended_at = $1 WHERE id_sha256 = $2 AND ended_at IS NULL",
        )
        .bind(self.now_micros())
        .bind(token_hash(cookie_value))
        .execute(&mut *tx)
        .await
        .map(|_| ())
        .map_err(|e| ServiceError::Store(e.into()));
        self.finish(tx, entry, result).await
    }

    /// Records that `actor` read `target` through the console (the read itself was authorized
    /// by the service call that returned it): least-privilege evidence of who looked at what.
    pub async fn read(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        tenant_id: Option<&str>,
    ) -> Result<(), ServiceError> {
        let mut entry = self
            .entry(actor, action, target)
            .details(json!({"read": true}));
        entry.tenant_id = tenant_id.map(str::to_owned);
        self.audit_alone(entry).await?;
        Ok(())
    }

    /// Audits a console request refused before any service call (a missing or wrong CSRF
    /// token): `denied`, with the target it aimed at. Nothing else is changed.
    pub async fn refused(
        &self,
        actor: &Actor,
        target: &str,
        reason: &str,
    ) -> Result<(), ServiceError> {
        let entry = self
            .entry(actor, "console.csrf", target)
            .outcome(AuditOutcome::Denied)
            .reason(Some(reason));
        self.audit_alone(entry).await?;
        Ok(())
    }
}
