//! The access path of plans and quotas: forward auth by feature and metric (200, 403 for a
//! feature the plan lacks, 429 with `Retry-After` for a used-up hard quota; decided by Cedar
//! policy over the tenant's entitlements and quota state), and an operator's one-off top-up of
//! a quota's current period (audited as `quota.top_up`) that reopens it without a plan change.

use companyos_domain::catalog::{FeatureName, PLAN_AMOUNT_MAX, QuotaPeriod};
use companyos_domain::time_util::format_day;
use companyos_domain::{MetricName, TenantId};
use rust_decimal::Decimal;
use serde_json::json;
use std::net::IpAddr;
use time::OffsetDateTime;

use super::Billing;
use super::access_cache::{AccessAnswer, AccessQuestion, CachedAccess, RefusalCount, RefusalKey};
use super::quota::{QuotaState, quota_states};
use crate::app::{Actor, TENANT_KEY_PREFIX};
use crate::audit::NewAudit;
use crate::authz::{Principal, Resource, TenantAttributes};
use crate::error::ServiceError;
use crate::util::token_hash;
use companyos_domain::Action;
use companyos_domain::audit::AuditChannel;
use companyos_domain::audit::AuditOutcome;
use companyos_domain::time_util::format_rfc3339;

/// The policy whose denial is a used-up hard quota (429), not a refusal (403).
pub const HARD_QUOTA_POLICY: &str = "forward-auth-hard-quota-used-up";

/// What forward auth admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardAuthGrant {
    pub tenant_id: String,
    /// The metric asked about when one of its quotas is over its allowance (soft quotas
    /// admit; the adapter adds `X-Quota-Exceeded`).
    pub quota_exceeded: Option<MetricName>,
}

/// A top-up of one quota's current period.
#[derive(Debug, Clone)]
pub struct TopUp {
    pub metric: MetricName,
    /// Which quota of the metric, when the plan has a daily and a monthly one.
    pub period: Option<QuotaPeriod>,
    pub quantity: Decimal,
    pub reason: Option<String>,
}

/// A forward-auth request as it arrives: the bearer token and what it asks.
#[derive(Debug, Clone, Copy)]
pub struct ForwardAuthRequest<'a> {
    pub token: Option<&'a str>,
    pub request_id: Option<&'a str>,
    /// The route, for the audit record of a failed authentication.
    pub route: &'a str,
    /// The peer address, for counting failed authentications per source.
    pub source: Option<IpAddr>,
    pub channel: Option<AuditChannel>,
    pub feature: Option<&'a FeatureName>,
    pub metric: Option<&'a MetricName>,
}

impl Billing<'_> {
    /// Forward auth at request rate: the answer of [`Billing::forward_auth`] for a tenant key,
    /// from this node's cache while it is true (`access_cache`), else authenticated, decided
    /// and audited as any request, and kept. A refusal served from the cache is counted for
    /// an aggregate audit record instead of written on its own.
    pub async fn forward_auth_request(
        &self,
        request: ForwardAuthRequest<'_>,
    ) -> Result<ForwardAuthGrant, ServiceError> {
        let app = self.app;
        let cache = &app.inner.access_cache;
        let question = request
            .token
            .filter(|token| cache.enabled() && token.starts_with(TENANT_KEY_PREFIX))
            .map(|token| AccessQuestion {
                token_sha256: token_hash(token),
                feature: request.feature.map(|f| f.as_str().to_owned()),
                metric: request.metric.map(|m| m.as_str().to_owned()),
            });
        let now = app.now();
        if let Some(hit) = question.as_ref().and_then(|q| cache.get(q, now)) {
            app.metrics()
                .increment("companyos_forward_auth_cache_hits_total", Vec::new(), 1);
            return self.answer_from_cache(hit, &request, now);
        }
        let stamp = cache.begin();
        let principal = app
            .authenticate_from(
                request.token,
                request.request_id,
                request.route,
                request.source,
            )
            .await?;
        let actor = Actor {
            principal,
            request_id: request.request_id.map(str::to_owned),
            channel: request.channel,
        };
        let result = self
            .forward_auth(&actor, request.feature, request.metric)
            .await;
        if let (Some(question), Principal::TenantKey { key_id, tenant }) =
            (question, &actor.principal)
        {
            let answer = match &result {
                Ok(grant) => Some(AccessAnswer::Granted(grant.clone())),
                Err(ServiceError::Forbidden(detail)) => Some(AccessAnswer::Forbidden {
                    detail: detail.clone(),
                }),
                Err(ServiceError::RateLimited {
                    detail,
                    retry_after_seconds,
                }) => Some(AccessAnswer::RateLimited {
                    detail: detail.clone(),
                    until: now
                        + time::Duration::seconds(
                            i64::try_from(*retry_after_seconds).unwrap_or(i64::MAX / 2),
                        ),
                }),
                Err(_) => None,
            };
            if let Some(answer) = answer {
                let cached = CachedAccess {
                    tenant_id: tenant.id.clone(),
                    key_id: key_id.clone(),
                    answer,
                };
                cache.put(question, stamp, cached, now);
            }
        }
        result
    }

    /// A kept answer as the service's result; a refusal is counted for its aggregate record.
    fn answer_from_cache(
        &self,
        hit: CachedAccess,
        request: &ForwardAuthRequest<'_>,
        now: OffsetDateTime,
    ) -> Result<ForwardAuthGrant, ServiceError> {
        let app = self.app;
        let (status, error) = match hit.answer {
            AccessAnswer::Granted(grant) => {
                app.metrics().authorization(true);
                return Ok(grant);
            }
            AccessAnswer::Forbidden { detail } => (403, ServiceError::Forbidden(detail)),
            AccessAnswer::RateLimited { detail, until } => {
                let seconds = (until - now).whole_seconds().max(1);
                let error = ServiceError::RateLimited {
                    detail,
                    retry_after_seconds: u64::try_from(seconds).unwrap_or(1),
                };
                (429, error)
            }
        };
        app.metrics().authorization(false);
        let key = RefusalKey {
            tenant_id: Some(hit.tenant_id),
            key_id: Some(hit.key_id),
            status,
            feature: request.feature.map(|f| f.as_str().to_owned()),
            metric: request.metric.map(|m| m.as_str().to_owned()),
        };
        app.inner.access_cache.count_refusal(key, now);
        Err(error)
    }

    /// Forward auth (CONTRACT §4, §9) for a tenant key: the tenant while it is active and, when
    /// asked, entitled to `feature` and not at a used-up hard quota of `metric`.
    pub async fn forward_auth(
        &self,
        actor: &Actor,
        feature: Option<&FeatureName>,
        metric: Option<&MetricName>,
    ) -> Result<ForwardAuthGrant, ServiceError> {
        let app = self.app;
        let mut tenant = match &actor.principal {
            Principal::TenantKey { tenant, .. } => tenant.clone(),
            _ => crate::lifecycle::placeholder_attributes("*"),
        };
        let mut retry_after_seconds = 1;
        let mut quota_exceeded = None;
        if let (Some(metric), Principal::TenantKey { .. }) = (metric, &actor.principal) {
            let states = self.quotas_of_metric(&tenant, metric).await?;
            for state in &states {
                app.metrics().set_quota_ratio(&tenant.id, state);
                if !state.has_access() {
                    tenant.quotas_used_up = vec![metric.as_str().to_owned()];
                    let seconds = state.bounds.seconds_to_end(app.now());
                    retry_after_seconds = retry_after_seconds.max(seconds);
                }
                if state.is_over() {
                    quota_exceeded = Some(metric.clone());
                }
            }
        }
        let principal = match &actor.principal {
            Principal::TenantKey { key_id, .. } => Principal::TenantKey {
                key_id: key_id.clone(),
                tenant: tenant.clone(),
            },
            other => other.clone(),
        };
        let context = [
            ("feature", feature.map_or("", FeatureName::as_str)),
            ("metric", metric.map_or("", MetricName::as_str)),
        ];
        let decision = app.authorizer().authorize(
            &principal,
            Action::AuthzCheck,
            Resource::Tenant(&tenant),
            &context,
        );
        app.metrics().authorization(decision.allowed);
        if decision.allowed {
            return Ok(ForwardAuthGrant {
                tenant_id: tenant.id,
                quota_exceeded,
            });
        }
        Err(self
            .refuse(
                actor,
                &tenant,
                &decision,
                feature,
                metric,
                retry_after_seconds,
            )
            .await)
    }

    /// The error of a denied forward auth (429 for a used-up hard quota alone, 403 otherwise),
    /// audited.
    async fn refuse(
        &self,
        actor: &Actor,
        tenant: &TenantAttributes,
        decision: &crate::authz::AuthzDecision,
        feature: Option<&FeatureName>,
        metric: Option<&MetricName>,
        retry_after_seconds: i64,
    ) -> ServiceError {
        let app = self.app;
        let error = if decision.policy_ids == [HARD_QUOTA_POLICY] {
            ServiceError::RateLimited {
                detail: format!(
                    "the hard quota of {} is used up until the period resets",
                    metric.map_or("", MetricName::as_str)
                ),
                retry_after_seconds: u64::try_from(retry_after_seconds).unwrap_or(1),
            }
        } else {
            ServiceError::Forbidden(decision.denial_reason(Action::AuthzCheck))
        };
        let is_tenant_key = matches!(actor.principal, Principal::TenantKey { .. });
        let target = if is_tenant_key {
            format!("tenant:{}", tenant.id)
        } else {
            "forward-auth".to_owned()
        };
        let mut entry = app.entry(actor, "authz.check", &target).details(json!({
            "policies": decision.policy_ids,
            "feature": feature.map(FeatureName::as_str),
            "metric": metric.map(MetricName::as_str),
        }));
        if is_tenant_key {
            entry.tenant_id = Some(tenant.id.clone());
        }
        match app.audit_failure(entry, &error).await {
            Ok(()) => error,
            Err(audit_error) => audit_error,
        }
    }

    /// The current periods of the tenant's quotas on `metric`, under the version in force
    /// (the tenant row's projection, read with the key: no further read of the history).
    async fn quotas_of_metric(
        &self,
        tenant: &TenantAttributes,
        metric: &MetricName,
    ) -> Result<Vec<QuotaState>, ServiceError> {
        let app = self.app;
        let mut conn = app.db().readers().acquire().await?;
        let Some(version) = app
            .plan_version_cached(&mut conn, &tenant.plan, tenant.plan_version)
            .await?
        else {
            return Ok(Vec::new());
        };
        let quotas: Vec<_> = version
            .spec
            .quotas
            .iter()
            .filter(|q| &q.metric == metric)
            .cloned()
            .collect();
        Ok(quota_states(&mut conn, &tenant.id, &quotas, app.now()).await?)
    }

    /// Grants a one-off top-up of a quota's current period (`POST
    /// /v1/tenants/{id}/quota-top-ups`), without changing the plan. Returns the quota after it.
    pub async fn top_up(
        &self,
        actor: &Actor,
        tenant_id: &TenantId,
        top_up: TopUp,
    ) -> Result<QuotaState, ServiceError> {
        let app = self.app;
        let mut entry = app
            .entry(actor, "quota.top_up", &format!("tenant:{tenant_id}"))
            .reason(top_up.reason.as_deref())
            .details(json!({"metric": top_up.metric.as_str(), "quantity": top_up.quantity.normalize().to_string()}));
        entry.tenant_id = Some(tenant_id.as_str().to_owned());
        let mut tx = app.db().begin().await?;
        let result = async {
            app.lock_and_authorize(&mut tx, actor, tenant_id, Action::QuotaTopUp, &mut entry)
                .await?;
            if top_up.quantity <= Decimal::ZERO || top_up.quantity > PLAN_AMOUNT_MAX {
                return Err(ServiceError::invalid("quantity", "must be a positive decimal, at most 10^15"));
            }
            let version = app.version_in_force(&mut tx, tenant_id.as_str()).await?
                .ok_or_else(|| ServiceError::NotFound(format!("a plan of tenant {tenant_id}")))?;
            let Some(quota) = version.spec.quotas.iter().find(|q| {
                q.metric == top_up.metric && top_up.period.is_none_or(|p| p == q.period)
            }) else {
                return Err(ServiceError::invalid("metric", format!(
                    "plan {} version {} has no such quota on {}", version.plan, version.version, top_up.metric
                )));
            };
            let now = app.now();
            let before = quota_states(&mut tx, tenant_id.as_str(), std::slice::from_ref(quota), now).await?;
            let total = before.first().map_or(Decimal::ZERO, |s| s.top_up) + top_up.quantity;
            let bounds = quota.period.bounds(now);
            sqlx::query(
                "INSERT INTO quota_usage (tenant_id, metric, period, period_start, quantity, top_up, \
                 updated_at) VALUES ($1, $2, $3, $4, '0', $5, $6) \
                 ON CONFLICT (tenant_id, metric, period, period_start) DO UPDATE SET \
                 top_up = excluded.top_up, updated_at = excluded.updated_at",
            )
            .bind(tenant_id.as_str())
            .bind(quota.metric.as_str())
            .bind(quota.period.as_str())
            .bind(format_day(bounds.start))
            .bind(total.normalize().to_string())
            .bind(companyos_domain::time_util::to_micros(now))
            .execute(&mut *tx)
            .await?;
            entry.details["period"] = json!(bounds.label());
            entry.details["period_kind"] = json!(quota.period.as_str());
            entry.details["top_up_total"] = json!(total.normalize().to_string());
            let after = quota_states(&mut tx, tenant_id.as_str(), std::slice::from_ref(quota), now).await?;
            after.into_iter().next().ok_or_else(|| ServiceError::Internal("quota state".to_owned()))
        }
        .await;
        app.finish(tx, entry, result).await
    }
}

impl Billing<'_> {
    /// Writes one `authz.check.aggregate` audit record per (tenant, key, answer) for the
    /// refusals served from this node's cache since the last flush (runs with the jobs on
    /// every node, and at shutdown). Returns the records written.
    pub async fn flush_refusals(&self) -> Result<usize, ServiceError> {
        let app = self.app;
        let taken = app.inner.access_cache.take_refusals();
        if taken.is_empty() {
            return Ok(0);
        }
        let entries: Vec<NewAudit> = taken.iter().map(refusal_record).collect();
        let written = entries.len();
        // One transaction for all of them, however many tenants they name.
        let mut tx = app.db().begin().await?;
        app.append_audit(&mut tx, app.now(), entries).await?;
        tx.commit().await?;
        Ok(written)
    }
}

fn refusal_record(refusals: &RefusalCount) -> NewAudit {
    let key = &refusals.key;
    let (actor, target) = match &key.tenant_id {
        Some(tenant_id) => (format!("tenant:{tenant_id}"), format!("tenant:{tenant_id}")),
        None => ("tenant:*".to_owned(), "forward-auth".to_owned()),
    };
    NewAudit {
        id: None,
        actor,
        role: "tenant".to_owned(),
        action: "authz.check.aggregate".to_owned(),
        target,
        tenant_id: key.tenant_id.clone(),
        outcome: AuditOutcome::Denied,
        reason: Some("repeated refused forward-auth requests, answered from the cache".to_owned()),
        request_id: None,
        details: json!({
            "count": refusals.count,
            "status": key.status,
            "key_id": key.key_id,
            "feature": key.feature,
            "metric": key.metric,
            "first_at": format_rfc3339(refusals.first_at),
            "last_at": format_rfc3339(refusals.last_at),
        }),
        channel: None,
    }
}
