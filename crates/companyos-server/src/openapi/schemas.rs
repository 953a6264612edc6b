//! The component schemas of the OpenAPI document: the JSON bodies the routes accept.

use serde_json::{Value, json};

pub(super) fn schemas() -> Value {
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
