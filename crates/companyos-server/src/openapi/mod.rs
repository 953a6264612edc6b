//! The route table: the one list from which both the router and the OpenAPI 3 document
//! (`GET /openapi.json`) are built, so the document cannot drift from the routes.

use axum::routing::{MethodRouter, get, post, put};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::routes::{
    approvals, audit, billing, evidence, ledger, metering, openmeter, operators, statements,
    system, tenants, usage,
};

/// One documented route.
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub tag: &'static str,
    /// Whether a bearer token is needed.
    pub auth: bool,
    /// The component schema of the JSON body, if any.
    pub body: Option<&'static str>,
    /// The success status.
    pub success: u16,
    pub handler: fn() -> MethodRouter<AppState>,
}

macro_rules! route {
    ($method:literal, $path:literal, $tag:literal, $auth:expr, $body:expr, $success:literal, $summary:literal, $handler:expr) => {
        RouteDoc {
            method: $method,
            path: $path,
            summary: $summary,
            tag: $tag,
            auth: $auth,
            body: $body,
            success: $success,
            handler: $handler,
        }
    };
}

/// Every route of the API.
pub const ROUTES: &[RouteDoc] = &[
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
    // OpenMeter-compatible API (CONTRACT §11, ADR 0014).
    route!(
        "POST",
        "/api/v1/events",
        "openmeter",
        true,
        None,
        204,
        "Ingest CloudEvents (application/cloudevents+json, cloudevents-batch+json or json)",
        || post(openmeter::ingest)
    ),
    route!(
        "POST",
        "/api/v1/meters",
        "openmeter",
        true,
        Some("Meter"),
        201,
        "Create a meter (OpenMeter shape)",
        || post(openmeter::create_meter)
    ),
    route!(
        "GET",
        "/api/v1/meters",
        "openmeter",
        true,
        None,
        200,
        "List meters",
        || get(openmeter::list_meters)
    ),
    route!(
        "GET",
        "/api/v1/meters/{slug}",
        "openmeter",
        true,
        None,
        200,
        "A meter",
        || get(openmeter::get_meter)
    ),
    route!(
        "GET",
        "/api/v1/meters/{slug}/query",
        "openmeter",
        true,
        None,
        200,
        "Query a meter (?from&to&windowSize&windowTimeZone&subject&groupBy&filterGroupBy[k]); CSV on Accept: text/csv",
        || get(openmeter::query_meter)
    ),
    route!(
        "GET",
        "/v1/tenants/{id}/subjects",
        "openmeter",
        true,
        None,
        200,
        "The CloudEvent subjects mapped to a tenant",
        || get(openmeter::get_subjects)
    ),
    route!(
        "PUT",
        "/v1/tenants/{id}/subjects",
        "openmeter",
        true,
        Some("SubjectsBody"),
        200,
        "Replace the CloudEvent subjects mapped to a tenant",
        || put(openmeter::put_subjects)
    ),
    route!(
        "GET",
        "/v1/audit",
        "audit",
        true,
        None,
        200,
        "Audit records (?tenant_id=&action=&from=&to=&format=csv|jsonl)",
        || get(audit::list)
    ),
    route!(
        "GET",
        "/v1/audit/checkpoint",
        "audit",
        true,
        None,
        200,
        "The audit log's latest signed checkpoint",
        || get(ledger::audit_checkpoint)
    ),
    route!(
        "GET",
        "/v1/evidence",
        "evidence",
        true,
        None,
        200,
        "List evidence artifacts (?tenant_id=&kind=)",
        || get(evidence::list)
    ),
    route!(
        "GET",
        "/v1/evidence/public-key",
        "evidence",
        false,
        None,
        200,
        "The minisign public key of every artifact",
        || get(evidence::public_key)
    ),
    route!(
        "GET",
        "/v1/evidence/{id}",
        "evidence",
        true,
        None,
        200,
        "An artifact's bytes",
        || get(evidence::get)
    ),
    route!(
        "GET",
        "/v1/evidence/{id}/signature",
        "evidence",
        true,
        None,
        200,
        "An artifact's minisign signature",
        || get(evidence::signature)
    ),
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

fn schemas() -> Value {
    // The document's maps keep their insertion order (serde_json's `preserve_order`, which a
    // dependency turns on): the parts are merged, and `UsageEvents` added, in the order of the
    // one literal they were cut from, so /openapi.json stays byte for byte the same.
    let mut all = serde_json::Map::new();
    for part in [
        operator_and_tenant_schemas(),
        usage_schemas(),
        billing_and_meter_schemas(),
    ] {
        if let Value::Object(map) = part {
            all.extend(map);
        }
    }
    all.insert(
        "UsageEvents".to_owned(),
        json!({"type": "array", "items": {"$ref": "#/components/schemas/UsageEvent"}, "maxItems": 10000}),
    );
    Value::Object(all)
}

/// Problems, operators, tenants and their lifecycle, approvals, provisioning callbacks.
fn operator_and_tenant_schemas() -> Value {
    let string = json!({"type": "string"});
    let strings = json!({"type": "array", "items": {"type": "string"}});
    json!({
        "Problem": {
            "type": "object",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": string, "title": string, "status": {"type": "integer"}, "detail": string,
                "errors": {"type": "array", "items": {"type": "object", "properties": {"field": string, "message": string}}},
                "current_status": string,
            },
        },
        "CreateOperator": {"type": "object", "required": ["name", "role"], "additionalProperties": false,
            "properties": {"name": string, "role": {"type": "string", "enum": ["viewer", "operator", "approver", "admin", "auditor", "billing", "ingest"]}}},
        "CreateTenant": {"type": "object", "required": ["id", "name"], "additionalProperties": false,
            "properties": {
                "id": {"type": "string", "pattern": "^[a-z][a-z0-9-]{2,62}$"}, "name": string, "plan": string,
                "home_region": string, "allowed_regions": strings, "deploy_regions": strings,
                "audit_webhook_url": string, "tombstone_days": {"type": "integer"},
                "hard_delete_allowed": {"type": "boolean"}, "legal_hold": {"type": "boolean"},
            }},
        "LifecycleBody": {"type": "object", "additionalProperties": false, "required": ["reason"],
            "properties": {"reason": string, "confirm": string}},
        "RegionsBody": {"type": "object", "additionalProperties": false, "properties": {"add": strings, "remove": strings}},
        "WorkloadBody": {"type": "object", "additionalProperties": false, "required": ["replicas"], "properties": {"replicas": {"type": "integer", "minimum": 0}}},
        "RetentionBody": {"type": "object", "additionalProperties": false, "required": ["reason"],
            "properties": {"tombstone_days": {"type": "integer"}, "legal_hold": {"type": "boolean"}, "hard_delete_allowed": {"type": "boolean"}, "reason": string}},
        "IntegrityBody": {"type": "object", "additionalProperties": false, "required": ["from", "to"], "properties": {"from": {"type": "string", "format": "date"}, "to": {"type": "string", "format": "date"}}},
        "DecisionBody": {"type": "object", "additionalProperties": false, "properties": {"comment": string}},
        "ModeBody": {"type": "object", "additionalProperties": false, "properties": {"mode": {"type": ["string", "null"], "enum": ["warn", "enforce", null]}}},
        "CreateSource": {"type": "object", "additionalProperties": false, "required": ["id", "service", "public_key"], "properties": {"id": string, "service": string, "public_key": string}},
        "ProvisioningCallback": {"type": "object", "properties": {"status": {"type": "string", "enum": ["succeeded", "failed"]}, "details": {"type": "object"}}},
    })
}

/// Usage events and metering declarations.
fn usage_schemas() -> Value {
    let string = json!({"type": "string"});
    json!({
        "MeteringDeclaration": {"type": "object", "additionalProperties": false, "required": ["metrics"],
            "properties": {"service": string, "metrics": {"type": "array", "items": {"type": "object", "required": ["name", "unit", "description"],
                "properties": {"name": string, "unit": string, "aggregation": {"type": "string", "enum": ["sum", "count", "max"]}, "description": string}}}}},
        "UsageEvent": {"type": "object", "additionalProperties": false,
            "required": ["event_id", "tenant_id", "service", "metric", "quantity", "unit", "timestamp"],
            "properties": {
                "event_id": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
                "tenant_id": {"type": "string", "pattern": "^[a-z][a-z0-9-]{2,62}$"},
                "service": {"type": "string", "pattern": "^[a-z][a-z0-9-]{0,62}$"},
                "metric": {"type": "string", "pattern": "^[a-z][a-z0-9_.]{0,63}$"},
                "quantity": {"oneOf": [{"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"}, {"type": "number", "minimum": 0}]},
                "unit": {"type": "string", "minLength": 1, "maxLength": 32},
                "timestamp": {"type": "string", "format": "date-time"},
                "request_id": string, "trace_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                "source": string, "source_seq": {"type": "integer", "minimum": 1},
                "source_signature": string, "digest": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
                "attributes": {"type": "object", "additionalProperties": {"type": "string"}},
            }},
    })
}

/// Plans, quotas, plan changes and OpenMeter meters.
fn billing_and_meter_schemas() -> Value {
    let string = json!({"type": "string"});
    let strings = json!({"type": "array", "items": {"type": "string"}});
    json!({
        "PlanSpec": {"type": "object", "additionalProperties": false, "required": ["name", "currency"],
            "properties": {"name": string, "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                "base_fee": {"type": "string"}, "features": strings, "workloads_max": {"type": "integer"},
                "retention": {"type": "object", "properties": {"tombstone_days": {"type": "integer"}, "hard_delete_allowed": {"type": "boolean"}, "legal_hold": {"type": "boolean"}}},
                "quotas": {"type": "array", "items": {"type": "object", "required": ["metric", "included"], "properties": {
                    "metric": string, "period": {"type": "string", "enum": ["day", "month"]}, "included": {"type": "string"},
                    "thresholds_percent": {"type": "array", "items": {"type": "integer"}},
                    "enforcement": {"type": "string", "enum": ["soft", "hard"]}, "overage_unit_price": {"type": "string"}}}}}},
        "QuotaTopUp": {"type": "object", "additionalProperties": false, "required": ["metric", "quantity"],
            "properties": {"metric": string, "period": {"type": "string", "enum": ["day", "month"]},
                "quantity": {"type": "string"}, "reason": string}},
        "PlanChange": {"type": "object", "additionalProperties": false, "required": ["plan"],
            "properties": {"plan": string, "version": {"type": "integer", "minimum": 1},
                "effective": {"type": "string", "enum": ["now", "next_period"]}, "reason": string}},
        "Meter": {"type": "object", "additionalProperties": false, "required": ["slug", "eventType", "aggregation"],
            "properties": {"slug": {"type": "string", "pattern": "^[a-z][a-z0-9_.]{0,63}$"}, "eventType": string,
                "aggregation": {"type": "string", "enum": ["SUM", "COUNT", "UNIQUE_COUNT", "AVG", "MIN", "MAX", "LATEST"]},
                "valueProperty": string, "groupBy": {"type": "object", "additionalProperties": {"type": "string"}},
                "description": string, "service": string, "unit": string, "name": string, "windowSize": string}},
        "SubjectsBody": {"type": "object", "additionalProperties": false, "required": ["subjects"], "properties": {"subjects": strings}},
    })
}

fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect()
}

/// The OpenAPI 3.1 document of every route.
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let mut responses = Map::new();
        responses.insert(route.success.to_string(), json!({"description": "Success"}));
        for (status, description) in [
            ("400", "Invalid input (problem+json naming the field)"),
            ("401", "No or unknown credential"),
            ("403", "Forbidden by policy"),
            ("404", "Not found"),
            ("409", "Conflicts with the current state"),
            ("413", "Body or batch over its limit"),
        ] {
            if route.auth || status == "400" {
                responses.insert(
                    status.to_owned(),
                    json!({"description": description, "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}),
                );
            }
        }
        let mut operation = json!({
            "summary": route.summary,
            "tags": [route.tag],
            "operationId": format!("{}_{}", route.method.to_lowercase(), route.path.trim_matches('/').replace(['/', '{', '}', '-', '.'], "_")),
            "parameters": path_parameters(route.path),
            "responses": responses,
        });
        if route.auth {
            operation["security"] = json!([{"bearer": []}]);
        } else {
            operation["security"] = json!([]);
        }
        if let Some(body) = route.body {
            operation["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{body}")}}},
            });
        }
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        entry[route.method.to_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "CompanyOS",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The tenant control plane: tenants, usage metering with a verifiable ledger, lifecycle, approvals, audit and evidence.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    })
}
