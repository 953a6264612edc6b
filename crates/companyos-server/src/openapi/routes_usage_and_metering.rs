//! The route table's usage, ledger, approval and metering routes.

use axum::routing::{get, post, put};

use super::RouteDoc;
use crate::routes::{approvals, billing, ledger, metering, usage};

pub(super) const USAGE_AND_METERING_ROUTES: &[RouteDoc] = &[
    route!(
        "GET",
        "/v1/tenants/{id}/usage/daily",
        "usage",
        true,
        None,
        200,
        "Daily usage rollups (?from=&to=&format=csv)",
        || get(usage::daily)
    ),
    route!(
        "GET",
        "/v1/tenants/{id}/reconciliation",
        "usage",
        true,
        None,
        200,
        "Reconciliation report (?from=&to=&format=csv)",
        || get(usage::reconciliation)
    ),
    route!(
        "POST",
        "/v1/tenants/{id}/integrity-report",
        "usage",
        true,
        Some("IntegrityBody"),
        201,
        "Build and sign the integrity report of a period",
        || post(usage::integrity_report)
    ),
    route!(
        "GET",
        "/v1/tenants/{id}/ledger/checkpoint",
        "ledger",
        true,
        None,
        200,
        "The latest signed checkpoint (C2SP tlog-checkpoint)",
        || get(ledger::checkpoint)
    ),
    route!(
        "GET",
        "/v1/tenants/{id}/ledger/proof",
        "ledger",
        true,
        None,
        200,
        "Inclusion proof of an event (?event_id=&tree_size=)",
        || get(ledger::proof)
    ),
    route!(
        "GET",
        "/v1/tenants/{id}/ledger/consistency",
        "ledger",
        true,
        None,
        200,
        "Consistency proof (?from=&to=)",
        || get(ledger::consistency)
    ),
    route!(
        "GET",
        "/v1/ledger/verifier-key",
        "ledger",
        false,
        None,
        200,
        "The note verifier key of every checkpoint",
        || get(ledger::verifier_key)
    ),
    route!(
        "GET",
        "/v1/approvals",
        "approvals",
        true,
        None,
        200,
        "List approvals (?status=pending)",
        || get(approvals::list)
    ),
    route!(
        "GET",
        "/v1/approvals/{id}",
        "approvals",
        true,
        None,
        200,
        "Show an approval",
        || get(approvals::show)
    ),
    route!(
        "POST",
        "/v1/approvals/{id}/approve",
        "approvals",
        true,
        Some("DecisionBody"),
        200,
        "Approve (and run) a pending action; never by its requester",
        || post(approvals::approve)
    ),
    route!(
        "POST",
        "/v1/approvals/{id}/reject",
        "approvals",
        true,
        Some("DecisionBody"),
        200,
        "Reject a pending action",
        || post(approvals::reject)
    ),
    route!(
        "GET",
        "/v1/authz/check",
        "tenants",
        true,
        None,
        200,
        "Forward auth (?feature=&metric=): 200 with X-Tenant-Id (and X-Quota-Exceeded over a soft quota), 403, or 429 with Retry-After at a used-up hard quota",
        || get(billing::forward_auth)
    ),
    route!(
        "POST",
        "/v1/events",
        "usage",
        true,
        Some("UsageEvents"),
        200,
        "Ingest usage events (JSON array or NDJSON)",
        || post(usage::ingest)
    ),
    route!(
        "POST",
        "/v1/sources",
        "usage",
        true,
        Some("CreateSource"),
        201,
        "Register a usage source and its Ed25519 key",
        || post(usage::create_source)
    ),
    route!(
        "GET",
        "/v1/sources",
        "usage",
        true,
        None,
        200,
        "List usage sources",
        || get(usage::list_sources)
    ),
    route!(
        "GET",
        "/v1/services",
        "metering",
        true,
        None,
        200,
        "Metering declarations and coverage modes",
        || get(metering::list)
    ),
    route!(
        "PUT",
        "/v1/services/{service}/metering",
        "metering",
        true,
        Some("MeteringDeclaration"),
        200,
        "Declare what a service meters",
        || put(metering::declare)
    ),
    route!(
        "PUT",
        "/v1/services/{service}/coverage",
        "metering",
        true,
        Some("ModeBody"),
        200,
        "Override the coverage mode of one service (null removes it)",
        || put(metering::set_service_mode)
    ),
    route!(
        "GET",
        "/v1/metering/coverage",
        "metering",
        true,
        None,
        200,
        "Coverage report: undeclared services, metrics never seen",
        || get(metering::coverage_report)
    ),
    route!(
        "PUT",
        "/v1/metering/coverage",
        "metering",
        true,
        Some("ModeBody"),
        200,
        "Set the deployment's coverage mode (warn or enforce)",
        || put(metering::set_deployment_mode)
    ),
];
