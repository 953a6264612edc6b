//! The foundation: operators, roles, denials audited, problem+json, limits, health, OpenAPI.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{BACKENDS, TestServer, audit};

#[tokio::test]
async fn a_viewer_cannot_create_a_tenant_and_the_denial_is_audited() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let viewer = server.operator("vera", "viewer").await;
        let (status, body) = viewer
            .post("/v1/tenants", json!({"id": "acme", "name": "Acme"}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{backend:?} {body}");
        assert_eq!(body["status"], json!(403));
        let denied = audit(&server, "outcome=denied&action=tenant.create").await;
        assert_eq!(denied.len(), 1, "{backend:?} {denied:?}");
        assert_eq!(denied[0]["actor"], json!("vera"));
        assert_eq!(denied[0]["role"], json!("viewer"));
        assert_eq!(denied[0]["target"], json!("tenant:acme"));
        assert!(denied[0]["policy_sha256"].as_str().unwrap().len() == 64);
        let (status, _) = viewer.get("/v1/tenants").await;
        assert_eq!(status, StatusCode::OK);
        server.stop().await;
    }
}

#[tokio::test]
async fn missing_or_unknown_tokens_get_401_and_are_audited() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let (status, body) = server.anonymous().get("/v1/tenants").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        // In another minute: a source's repeated failures within one are aggregated (edge.rs).
        server.clock.advance(time::Duration::seconds(60));
        let (status, _) = server
            .api("cos_op_not-a-real-token")
            .get("/v1/tenants")
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let denied = audit(&server, "action=auth.authenticate").await;
        assert_eq!(denied.len(), 2, "{denied:?}");
        assert!(denied.iter().all(|r| r["outcome"] == json!("denied")));
        server.stop().await;
    }
}

#[tokio::test]
async fn bad_bodies_get_problem_json_naming_the_field() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let admin = server.admin();
        let (status, _, text) = admin
            .raw(
                Method::POST,
                "/v1/operators",
                Some(("application/json", b"{not json".to_vec())),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
        let (status, body) = admin
            .post("/v1/operators", json!({"name": 7, "role": "viewer"}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["errors"][0]["field"], json!("name"), "{body}");
        let (status, body) = admin
            .post(
                "/v1/operators",
                json!({"name": "x1", "role": "viewer", "colour": "red"}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["errors"][0]["field"], json!("colour"), "{body}");
        let (status, body) = admin
            .post("/v1/operators", json!({"name": "x1", "role": "king"}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["errors"][0]["field"], json!("role"), "{body}");
        let (status, body) = admin
            .post(
                "/v1/tenants",
                json!({"id": "Bad_Id", "name": "x", "home_region": "mars-1"}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let fields: Vec<&str> = body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(
            fields.contains(&"id") && fields.contains(&"home_region"),
            "{body}"
        );
        let big = vec![b' '; 2 * 1024 * 1024];
        let (status, headers, _) = admin
            .raw(
                Method::POST,
                "/v1/operators",
                Some(("application/json", big)),
            )
            .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(headers["content-type"], "application/problem+json");
        server.stop().await;
    }
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi() {
    let server = TestServer::start(crate::support::Backend::Sqlite).await;
    let anonymous = server.anonymous();
    assert_eq!(anonymous.get("/healthz").await.0, StatusCode::OK);
    assert_eq!(anonymous.get("/readyz").await.0, StatusCode::OK);
    assert_eq!(anonymous.text("/metrics").await.0, StatusCode::UNAUTHORIZED);
    let (status, text) = server.admin().text("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("companyos_http_requests_total"), "{text}");
    let (status, document) = anonymous.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/v1/tenants",
        "/v1/events",
        "/v1/audit",
        "/v1/approvals/{id}/approve",
    ] {
        assert!(document["paths"][path].is_object(), "{path} documented");
    }
    // Every documented route is served (no 404 or 405 from the router).
    for route in companyos_server::openapi::ROUTES {
        let path = route
            .path
            .replace("{id}", "acme")
            .replace("{name}", "web")
            .replace("{service}", "api")
            .replace("{slug}", "conflict");
        let method = Method::from_bytes(route.method.as_bytes()).unwrap();
        let (status, _, _) = server.admin().raw(method, &path, None).await;
        assert!(
            status != StatusCode::METHOD_NOT_ALLOWED,
            "{} {}",
            route.method,
            route.path
        );
        if status == StatusCode::NOT_FOUND {
            // A 404 must come from the handler (a problem about the resource), not the router.
            let (_, _, text) = server
                .admin()
                .raw(
                    Method::from_bytes(route.method.as_bytes()).unwrap(),
                    &path,
                    None,
                )
                .await;
            assert!(
                !text.contains("no such route"),
                "{} {} is not routed",
                route.method,
                route.path
            );
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn policies_are_served_with_their_hash_and_operators_can_be_revoked() {
    let server = TestServer::start(crate::support::Backend::Sqlite).await;
    let (status, body) = server.admin().get("/v1/policies").await;
    assert_eq!(status, StatusCode::OK);
    let text = body["policies"].as_str().unwrap();
    assert_eq!(
        body["sha256"].as_str().unwrap(),
        companyos_ledger::hash::sha256(text.as_bytes()).to_hex()
    );
    let viewer = server.operator("vera", "viewer").await;
    server.revoke_operator("vera").await;
    assert_eq!(viewer.get("/v1/tenants").await.0, StatusCode::UNAUTHORIZED);
    server.stop().await;
}
