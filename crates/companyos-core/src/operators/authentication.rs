//! Bearer-token authentication: operator tokens and tenant API keys, every failure audited, and
//! a source's repeated failures counted and aggregated (`auth_failures`). Authentication stays an
//! [`App`] method: every adapter (and forward auth) calls it before any capability.

use std::net::IpAddr;

use companyos_domain::audit::{AuditChannel, AuditOutcome};
use companyos_domain::time_util::format_rfc3339;
use companyos_store::operators as operator_rows;
use serde_json::json;

use super::OPERATOR_TOKEN_PREFIX;
use crate::app::{App, Operators, TENANT_KEY_PREFIX};
use crate::audit::auth_failures::Verdict;
use crate::audit::{self, NewAudit};
use crate::authz::Principal;
use crate::error::ServiceError;
use crate::util::token_hash;

impl App {
    /// Resolves a bearer token to a principal. A missing or unknown token is audited and
    /// answered `Unauthenticated`.
    pub async fn authenticate(
        &self,
        token: Option<&str>,
        request_id: Option<&str>,
        route: &str,
    ) -> Result<Principal, ServiceError> {
        self.authenticate_from(token, request_id, route, None).await
    }

    /// Authenticates a request from `source` (the peer address). Every failure is audited, but
    /// a source's repeated failures within a minute are only counted and audited as one
    /// aggregate record, and past the rate answered 429 with no store write (`auth_failures`).
    /// A valid credential is always looked up and accepted, so a legitimate client sharing an
    /// address (NAT, a proxy) with a flood is not locked out. Without a source, every failure
    /// is audited on its own.
    pub async fn authenticate_from(
        &self,
        token: Option<&str>,
        request_id: Option<&str>,
        route: &str,
        source: Option<IpAddr>,
    ) -> Result<Principal, ServiceError> {
        self.authenticate_via(token, request_id, route, source, None)
            .await
    }

    /// [`App::authenticate_from`] for a request of a known adapter, whose failures are audited
    /// with its channel.
    pub async fn authenticate_via(
        &self,
        token: Option<&str>,
        request_id: Option<&str>,
        route: &str,
        source: Option<IpAddr>,
        channel: Option<AuditChannel>,
    ) -> Result<Principal, ServiceError> {
        let found = match token {
            Some(token) => self.lookup_token(token).await?,
            None => None,
        };
        match found {
            Some(principal) => Ok(principal),
            None => {
                let reason = if token.is_some() {
                    "unknown or revoked credential"
                } else {
                    "no credential"
                };
                let verdict = source.map_or(Verdict::Audit, |ip| {
                    self.inner.auth_failures.record(ip, self.now())
                });
                match verdict {
                    Verdict::Audit => {}
                    Verdict::Counted => {
                        return Err(ServiceError::Unauthenticated(reason.to_owned()));
                    }
                    Verdict::Limited {
                        retry_after_seconds,
                    } => {
                        return Err(ServiceError::RateLimited {
                            detail: format!(
                                "too many failed authentications from this address ({reason})"
                            ),
                            retry_after_seconds,
                        });
                    }
                }
                let entry = NewAudit {
                    id: None,
                    actor: "anonymous".to_owned(),
                    role: "none".to_owned(),
                    action: "auth.authenticate".to_owned(),
                    target: route.to_owned(),
                    tenant_id: None,
                    outcome: AuditOutcome::Denied,
                    reason: Some(reason.to_owned()),
                    request_id: request_id.map(str::to_owned),
                    details: source
                        .map_or_else(|| json!({}), |ip| json!({"source": ip.to_string()})),
                    channel,
                };
                self.audit_alone(entry).await?;
                Err(ServiceError::Unauthenticated(reason.to_owned()))
            }
        }
    }

    async fn lookup_token(&self, token: &str) -> Result<Option<Principal>, ServiceError> {
        if token.len() > 200 {
            return Ok(None);
        }
        let hash = token_hash(token);
        let mut conn = self.db().readers().acquire().await?;
        if token.starts_with(OPERATOR_TOKEN_PREFIX) {
            let operator = operator_rows::active_by_token(&mut conn, &hash).await?;
            return Ok(operator.map(|operator| Principal::Operator {
                id: operator.id,
                name: operator.name.into_string(),
                role: operator.role,
            }));
        }
        if token.starts_with(TENANT_KEY_PREFIX) {
            let Some(key) = operator_rows::active_tenant_key_by_token(&mut conn, &hash).await?
            else {
                return Ok(None);
            };
            // The tenant's state is read on every request: suspension takes effect at once,
            // there is no cache to expire.
            let Some(tenant) = self
                .tenant_attributes(&mut conn, key.tenant_id.as_str())
                .await?
            else {
                return Ok(None);
            };
            return Ok(Some(Principal::TenantKey {
                key_id: key.id,
                tenant,
            }));
        }
        Ok(None)
    }
}

impl Operators<'_> {
    /// Writes the aggregate audit record of every failed-authentication window that is over
    /// (of every window when `all`, at shutdown). Runs with the jobs on every node: the counts
    /// are this node's own. Returns the records written.
    pub async fn flush_auth_failures(&self, all: bool) -> Result<usize, ServiceError> {
        let ended = self.inner.auth_failures.take_ended(self.now(), all);
        let written = ended.len();
        if ended.is_empty() {
            return Ok(0);
        }
        let mut entries = Vec::with_capacity(written);
        for aggregate in ended {
            let source = aggregate.source.to_string();
            let entry = NewAudit {
                id: None,
                actor: "anonymous".to_owned(),
                role: "none".to_owned(),
                action: "auth.failed.aggregate".to_owned(),
                target: format!("source:{source}"),
                tenant_id: None,
                outcome: AuditOutcome::Denied,
                reason: Some("repeated failed authentication from one source".to_owned()),
                request_id: None,
                details: json!({
                    "source": source,
                    "count": aggregate.count,
                    "rate_limited": aggregate.limited,
                    "window_start": format_rfc3339(aggregate.window_start),
                    "window_seconds": crate::audit::auth_failures::WINDOW_SECONDS,
                }),
                channel: None,
            };
            entries.push(entry);
        }
        // One transaction for the whole minute, however many sources it saw.
        let mut tx = self.db().begin().await?;
        audit::append(
            self.db(),
            &mut tx,
            self.inner.authz.policy_sha256(),
            self.now(),
            entries,
        )
        .await?;
        tx.commit().await?;
        Ok(written)
    }
}
