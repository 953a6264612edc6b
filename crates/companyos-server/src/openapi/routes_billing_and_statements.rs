//! The route table's plan, entitlement, quota and statement routes.

use axum::routing::{get, post, put};

use super::RouteDoc;
use crate::routes::{billing, statements};

pub(super) const BILLING_AND_STATEMENT_ROUTES: &[RouteDoc] = &[
    // ---- plans, entitlements and quotas (CONTRACT §9) ----
    route!(
        "GET",
        "/v1/plans",
        "billing",
        true,
        None,
        200,
        "The latest version of every plan of the catalog",
        || get(billing::list_plans)
    ),
    route!(
        "GET",
        "/v1/plans/{plan}",
        "billing",
        true,
        None,
        200,
        "The latest version of a plan",
        || get(billing::get_plan)
    ),
    route!(
        "PUT",
        "/v1/plans/{plan}",
        "billing",
        true,
        Some("PlanSpec"),
        200,
        "Write a plan: version n+1 when the body differs from version n, else version n unchanged",
        || put(billing::put_plan)
    ),
    route!(
        "GET",
        "/v1/plans/{plan}/versions/{version}",
        "billing",
        true,
        None,
        200,
        "One version of a plan (versions are immutable)",
        || get(billing::get_plan_version)
    ),
    route!(
        "GET",
        "/v1/tenants/{id}/plan",
        "billing",
        true,
        None,
        200,
        "A tenant's plan in force and its history",
        || get(billing::tenant_plan)
    ),
    route!(
        "PUT",
        "/v1/tenants/{id}/plan",
        "billing",
        true,
        Some("PlanChange"),
        200,
        "Change a tenant's plan now or from the next period (audited as tenant.plan_change)",
        || put(billing::change_tenant_plan)
    ),
    route!(
        "GET",
        "/v1/tenants/{id}/entitlements",
        "billing",
        true,
        None,
        200,
        "A tenant's features and quotas over their current periods (usage, remaining, overage, access)",
        || get(billing::entitlements)
    ),
    route!(
        "GET",
        "/v1/tenants/{id}/quota-events",
        "billing",
        true,
        None,
        200,
        "A tenant's quota threshold events (?period=YYYY-MM or YYYY-MM-DD)",
        || get(billing::quota_events)
    ),
    route!(
        "POST",
        "/v1/tenants/{id}/quota-top-ups",
        "billing",
        true,
        Some("QuotaTopUp"),
        201,
        "A one-off top-up of a quota's current period (audited as quota.top_up)",
        || post(billing::top_up)
    ),
    // ---- monthly statements and packs (CONTRACT §10) ----
    route!(
        "GET",
        "/v1/tenants/{id}/statements",
        "statements",
        true,
        None,
        200,
        "A tenant's months with the status of each statement (open or final)",
        || get(statements::list)
    ),
    route!(
        "GET",
        "/v1/tenants/{id}/statements/{month}",
        "statements",
        true,
        None,
        200,
        "One month's statement (JSON, or ?format=csv or pdf); a final one never changes",
        || get(statements::get)
    ),
    route!(
        "GET",
        "/v1/tenants/{id}/statements/{month}/pack",
        "statements",
        true,
        None,
        200,
        "The signed statement pack (zip) that `companyos statement verify` checks offline",
        || get(statements::pack)
    ),
    route!(
        "GET",
        "/v1/tenants/{id}/disclosure",
        "statements",
        true,
        None,
        200,
        "The signed disclosure pack (zip) of every audit record about a tenant from..=to (auditor, admin)",
        || get(statements::disclosure)
    ),
];
