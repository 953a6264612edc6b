//! The route table's system, operator, tenant and lifecycle routes.

use axum::routing::{get, post, put};

use super::RouteDoc;
use crate::routes::{operators, system, tenants};

pub(super) const SYSTEM_AND_TENANT_ROUTES: &[RouteDoc] = &[
    route!(
        "GET",
        "/healthz",
        "system",
        false,
        None,
        200,
        "Liveness",
        || get(system::healthz)
    ),
    route!(
        "GET",
        "/readyz",
        "system",
        false,
        None,
        200,
        "Readiness: the database answers",
        || get(system::readyz)
    ),
    route!(
        "GET",
        "/metrics",
        "system",
        true,
        None,
        200,
        "Prometheus metrics",
        || get(system::metrics)
    ),
    route!(
        "GET",
        "/openapi.json",
        "system",
        false,
        None,
        200,
        "This document",
        || get(system::openapi)
    ),
    route!(
        "GET",
        "/problems/{slug}",
        "system",
        false,
        None,
        200,
        "Describes a problem type",
        || get(system::problem_type)
    ),
    route!(
        "POST",
        "/v1/operators",
        "operators",
        true,
        Some("CreateOperator"),
        201,
        "Create an operator; the token is shown only here",
        || post(operators::create)
    ),
    route!(
        "GET",
        "/v1/operators",
        "operators",
        true,
        None,
        200,
        "List operators",
        || get(operators::list)
    ),
    route!(
        "POST",
        "/v1/operators/{id}/revoke",
        "operators",
        true,
        None,
        200,
        "Revoke an operator's token",
        || post(operators::revoke)
    ),
    route!(
        "GET",
        "/v1/policies",
        "operators",
        true,
        None,
        200,
        "The Cedar policies, their schema and SHA-256",
        || get(operators::policies)
    ),
    route!(
        "POST",
        "/v1/tenants",
        "tenants",
        true,
        Some("CreateTenant"),
        201,
        "Create and provision a tenant; the API key is shown only here",
        || post(tenants::create)
    ),
    route!(
        "GET",
        "/v1/tenants",
        "tenants",
        true,
        None,
        200,
        "List tenants (?status=)",
        || get(tenants::list)
    ),
    route!(
        "GET",
        "/v1/tenants/{id}",
        "tenants",
        true,
        None,
        200,
        "Show a tenant",
        || get(tenants::show)
    ),
    route!(
        "POST",
        "/v1/tenants/{id}/suspend",
        "lifecycle",
        true,
        Some("LifecycleBody"),
        200,
        "Suspend: block every access path, scale workloads to zero",
        || post(tenants::suspend)
    ),
    route!(
        "POST",
        "/v1/tenants/{id}/reactivate",
        "lifecycle",
        true,
        Some("LifecycleBody"),
        200,
        "Reactivate a suspended tenant",
        || post(tenants::reactivate)
    ),
    route!(
        "POST",
        "/v1/tenants/{id}/delete",
        "lifecycle",
        true,
        Some("LifecycleBody"),
        202,
        "Delete (tombstone, restorable); needs confirm and, by default, approval",
        || post(tenants::delete)
    ),
    route!(
        "POST",
        "/v1/tenants/{id}/restore",
        "lifecycle",
        true,
        Some("LifecycleBody"),
        200,
        "Restore a deleted tenant",
        || post(tenants::restore)
    ),
    route!(
        "POST",
        "/v1/tenants/{id}/purge",
        "lifecycle",
        true,
        Some("LifecycleBody"),
        202,
        "Purge (irreversible); needs confirm and, by default, approval",
        || post(tenants::purge)
    ),
    route!(
        "POST",
        "/v1/tenants/{id}/retry",
        "lifecycle",
        true,
        None,
        200,
        "Retry a failed provisioning",
        || post(tenants::retry)
    ),
    route!(
        "GET",
        "/v1/tenants/{id}/provisioning",
        "lifecycle",
        true,
        None,
        200,
        "Provisioning runs with each step's result and duration",
        || get(tenants::provisioning_runs)
    ),
    route!(
        "POST",
        "/v1/tenants/{id}/provisioning/callback",
        "lifecycle",
        false,
        Some("ProvisioningCallback"),
        200,
        "The webhook driver confirms a boundary (HMAC-signed)",
        || post(tenants::provisioning_callback)
    ),
    route!(
        "POST",
        "/v1/tenants/{id}/regions",
        "tenants",
        true,
        Some("RegionsBody"),
        200,
        "Add or remove deploy regions (residency by policy)",
        || post(tenants::regions)
    ),
    route!(
        "GET",
        "/v1/tenants/{id}/workloads",
        "tenants",
        true,
        None,
        200,
        "List a tenant's workloads",
        || get(tenants::workloads)
    ),
    route!(
        "PUT",
        "/v1/tenants/{id}/workloads/{name}",
        "tenants",
        true,
        Some("WorkloadBody"),
        200,
        "Set a workload's replicas",
        || put(tenants::set_workload)
    ),
    route!(
        "PUT",
        "/v1/tenants/{id}/retention",
        "tenants",
        true,
        Some("RetentionBody"),
        200,
        "Change the retention policy (tombstone days, legal hold)",
        || put(tenants::retention)
    ),
];
