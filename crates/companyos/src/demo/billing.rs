//! The demo's billing part (issue 16): a versioned plan, a tenant's plan change, a soft-quota
//! overage with its threshold events, and a used-up hard quota answered 429 by forward auth
//! until an operator's top-up reopens it.

use anyhow::{Context as _, ensure};
use companyos_core::clock::Clock as _;
use reqwest::Method;
use serde_json::{Value, json};

use super::Demo;
use crate::client::ApiClient;

fn usage_event(
    tenant: &str,
    id: &str,
    service: &str,
    metric: &str,
    unit: &str,
    quantity: u64,
    at: &str,
) -> Value {
    json!({
        "event_id": id, "tenant_id": tenant, "service": service, "metric": metric,
        "unit": unit, "quantity": quantity.to_string(), "timestamp": at,
        "request_id": format!("req-{id}"),
    })
}

/// Forward auth for `query` with a tenant key: the status and its `Retry-After`, if any.
async fn forward_auth(
    demo: &Demo,
    key: &str,
    query: &str,
) -> anyhow::Result<(u16, Option<String>)> {
    let response = reqwest::Client::new()
        .get(format!("{}/v1/authz/check?{query}", demo.url))
        .bearer_auth(key)
        .send()
        .await?;
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((response.status().as_u16(), retry_after))
}

/// Runs the billing steps on a tenant of its own (`initech`).
pub(super) async fn billing_day(demo: &mut Demo) -> anyhow::Result<()> {
    let bill = demo.operator("bill", "billing").await?;
    let meter = demo.operator("meter-billing", "ingest").await?;
    write_plan(demo, &bill).await?;
    let key = create_initech_on_the_plan(demo, &bill).await?;
    let at = companyos_domain::time_util::format_rfc3339(demo.clock.now());
    let entitlements = soft_quota_overage(demo, &bill, &meter, &key, &at).await?;
    let events = hard_quota_and_top_up(demo, &bill, &meter, &key, &at).await?;
    std::fs::create_dir_all(demo.out.join("billing"))?;
    std::fs::write(
        demo.out.join("billing/entitlements-initech.json"),
        serde_json::to_string_pretty(&entitlements)?,
    )?;
    std::fs::write(
        demo.out.join("billing/quota-events-initech.json"),
        serde_json::to_string_pretty(&events)?,
    )?;
    Ok(())
}

/// The `metered` plan: a soft monthly quota of requests and a hard daily quota of vCPU seconds.
async fn write_plan(demo: &mut Demo, bill: &ApiClient) -> anyhow::Result<()> {
    let plan = json!({
        "name": "Metered", "currency": "EUR", "base_fee": "49.00", "features": ["api", "webhooks"],
        "quotas": [
            {"metric": "requests", "period": "month", "included": "500", "thresholds_percent": [80, 100],
             "enforcement": "soft", "overage_unit_price": "0.002"},
            {"metric": "vcpu_seconds", "period": "day", "included": "100", "thresholds_percent": [100],
             "enforcement": "hard", "overage_unit_price": "0.01"}
        ]
    });
    let (_, written) = bill
        .call(Method::PUT, "/v1/plans/metered", Some(&plan))
        .await?;
    demo.log.step(
        &demo.clock,
        "plan written",
        &format!(
            "`metered` version {} (sha256 {}): soft monthly requests, hard daily vCPU seconds",
            written["version"],
            written["sha256"].as_str().unwrap_or("")
        ),
    );
    Ok(())
}

/// Creates `initech` on the standard plan and moves it to `metered`; returns its API key.
async fn create_initech_on_the_plan(demo: &mut Demo, bill: &ApiClient) -> anyhow::Result<String> {
    let (_, created) = demo
        .admin
        .call(
            Method::POST,
            "/v1/tenants",
            Some(&json!({"id": "initech", "name": "Initech", "plan": "standard"})),
        )
        .await?;
    let key = created["api_key"]
        .as_str()
        .context("an api key")?
        .to_owned();
    let (_, change) = bill
        .call(Method::PUT, "/v1/tenants/initech/plan",
              Some(&json!({"plan": "metered", "effective": "now", "reason": "upgrade to metered billing"})))
        .await?;
    demo.log.step(
        &demo.clock,
        "plan change",
        &format!(
            "initech: standard v1 → metered v{} from {} (audited as tenant.plan_change)",
            change["version"],
            change["effective_from"].as_str().unwrap_or("")
        ),
    );
    Ok(key)
}

/// Sends `events` as the metering service, then asks forward auth about `metric` with the
/// tenant's `key`: its status and `Retry-After`.
async fn send_then_check(
    demo: &Demo,
    meter: &ApiClient,
    key: &str,
    events: &[Value],
    metric: &str,
) -> anyhow::Result<(u16, Option<String>)> {
    meter
        .call(Method::POST, "/v1/events", Some(&json!(events)))
        .await?;
    forward_auth(demo, key, &format!("metric={metric}")).await
}

/// 600 requests of 500 included: an overage that forward auth still lets through; returns
/// initech's entitlements.
async fn soft_quota_overage(
    demo: &mut Demo,
    bill: &ApiClient,
    meter: &ApiClient,
    key: &str,
    at: &str,
) -> anyhow::Result<Value> {
    let requests: Vec<Value> = (0..6)
        .map(|i| {
            usage_event(
                "initech",
                &format!("bill-r{i}"),
                "api",
                "requests",
                "request",
                100,
                at,
            )
        })
        .collect();
    let (status, _) = send_then_check(demo, meter, key, &requests, "requests").await?;
    let (_, entitlements) = bill
        .call(Method::GET, "/v1/tenants/initech/entitlements", None)
        .await?;
    let quota = entitlements["quotas"]
        .as_array()
        .and_then(|q| q.first())
        .cloned()
        .unwrap_or_default();
    demo.log.step(&demo.clock, "soft-quota overage", &format!(
        "600 requests of 500 included: usage {}, overage {}, forward auth still {status} (X-Quota-Exceeded)",
        quota["usage"], quota["overage"]));
    Ok(entitlements)
}

/// 120 vCPU seconds of 100 included today: forward auth answers 429 until a top-up reopens
/// the quota; returns initech's quota events.
async fn hard_quota_and_top_up(
    demo: &mut Demo,
    bill: &ApiClient,
    meter: &ApiClient,
    key: &str,
    at: &str,
) -> anyhow::Result<Value> {
    let vcpu = vec![usage_event(
        "initech",
        "bill-c1",
        "compute",
        "vcpu_seconds",
        "vCPU-second",
        120,
        at,
    )];
    let (status, retry_after) = send_then_check(demo, meter, key, &vcpu, "vcpu_seconds").await?;
    ensure!(
        status == 429,
        "a used-up hard quota answers 429, got {status}"
    );
    demo.log.step(&demo.clock, "hard-quota 429", &format!(
        "120 vCPU seconds of 100 included today: forward auth answers {status}, Retry-After {} s (usage is still recorded)",
        retry_after.unwrap_or_default()));
    bill.call(
        Method::POST,
        "/v1/tenants/initech/quota-top-ups",
        Some(&json!({"metric": "vcpu_seconds", "quantity": "50", "reason": "incident credit"})),
    )
    .await?;
    let (status, _) = forward_auth(demo, key, "metric=vcpu_seconds").await?;
    let (_, events) = bill
        .call(Method::GET, "/v1/tenants/initech/quota-events", None)
        .await?;
    demo.log.step(&demo.clock, "top-up", &format!(
        "50 vCPU seconds for today (audited quota.top_up): forward auth {status}; quota events so far: {}",
        events.as_array().map_or(0, Vec::len)));
    Ok(events)
}
