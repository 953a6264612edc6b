//! The edge against hostile input (issue #20): problem types, exact media types, CSV cells that
//! a spreadsheet would run.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{BACKENDS, TestServer};

#[tokio::test]
async fn unknown_problem_types_are_not_found() {
    let server = TestServer::start(crate::support::Backend::Sqlite).await;
    let anonymous = server.anonymous();
    for (slug, _) in companyos_server::error::PROBLEM_TYPES {
        let (status, body) = anonymous.get(&format!("/problems/{slug}")).await;
        assert_eq!(status, StatusCode::OK, "{slug}: {body}");
        assert_eq!(body["type"], json!(format!("/problems/{slug}")));
    }
    for slug in ["anything", "not-found-at-all", "%3Cscript%3E"] {
        let (status, _, text) = anonymous
            .raw(Method::GET, &format!("/problems/{slug}"), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{slug}: {text}");
    }
    server.stop().await;
}

#[tokio::test]
async fn content_types_are_matched_exactly_not_by_prefix() {
    let server = TestServer::start(crate::support::Backend::Sqlite).await;
    server.tenant("acme").await;
    let admin = server.admin();
    let operator = serde_json::to_vec(&json!({"name": "olga", "role": "viewer"})).unwrap();
    for content_type in [
        "application/jsonp",
        "application/json-seq",
        "application/jsonx; charset=utf-8",
        "text/json+x",
        "application/x-www-form-urlencoded",
        "nonsense",
    ] {
        let (status, _, text) = admin
            .raw(
                Method::POST,
                "/v1/operators",
                Some((content_type, operator.clone())),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}: {text}"
        );
        let (status, _, text) = admin
            .raw(
                Method::POST,
                "/v1/events",
                Some((content_type, b"[]".to_vec())),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}: {text}"
        );
    }
    let (status, _, text) = admin
        .raw(
            Method::POST,
            "/v1/events",
            Some(("application/x-ndjsonp", b"{}\n".to_vec())),
        )
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{text}");
    for (i, content_type) in [
        "application/json",
        "Application/JSON; charset=utf-8",
        "application/merge-patch+json",
    ]
    .into_iter()
    .enumerate()
    {
        let body =
            serde_json::to_vec(&json!({"name": format!("op{i}"), "role": "viewer"})).unwrap();
        let (status, _, text) = admin
            .raw(Method::POST, "/v1/operators", Some((content_type, body)))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{content_type}: {text}");
    }
    server.stop().await;
}

#[tokio::test]
async fn csv_cells_padded_before_a_formula_are_neutralised() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.tenant("acme").await;
        let admin = server.admin();
        let reason = "   =HYPERLINK(\"http://evil\")";
        let (status, body) = admin
            .post("/v1/tenants/acme/suspend", json!({"reason": reason}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, _, text) = admin
            .raw(
                Method::GET,
                "/v1/audit?action=tenant.suspend&format=csv",
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert!(
            text.contains("\"'   =HYPERLINK(\"\"http://evil\"\")\""),
            "{backend:?}: {text}"
        );
        server.stop().await;
    }
}
