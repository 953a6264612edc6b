//! The OpenAPI 3.1 document, assembled from the route table and the component schemas.

use serde_json::{Map, Value, json};

use super::ROUTES;
use super::schemas::schemas;

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
