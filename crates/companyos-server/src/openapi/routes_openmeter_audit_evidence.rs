//! The route table's OpenMeter-compatible, audit and evidence routes.

use axum::routing::{get, post, put};

use super::RouteDoc;
use crate::routes::{audit, evidence, ledger, openmeter};

pub(super) const OPENMETER_AUDIT_AND_EVIDENCE_ROUTES: &[RouteDoc] = &[
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
];
