//! The edge against hostile input (issue #20): problem types, exact media types, CSV cells that
//! a spreadsheet would run, outbound requests to internal addresses.

use reqwest::{Method, StatusCode};
use serde_json::json;

use companyos_core::settings::BoundaryDriverSettings;

use crate::boundaries::{Received, start_provisioner};
use crate::support::{BACKENDS, START, TestServer, allow_loopback, audit, event};

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

#[tokio::test]
async fn webhook_urls_naming_internal_addresses_are_refused_when_set() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let admin = server.admin();
        for (i, url) in [
            "http://169.254.169.254/latest/meta-data/",
            "http://127.0.0.1:5432/",
            "http://10.1.2.3/hook",
            "http://[::1]/hook",
            "http://2130706433/hook",
            "http://0x7f.0.0.1/hook",
            "http://localhost:8080/hook",
            "http://[fd00:ec2::254]/",
        ]
        .into_iter()
        .enumerate()
        {
            let id = format!("bad{i}");
            let (status, body) = admin
                .post(
                    "/v1/tenants",
                    json!({"id": id, "name": "Bad", "audit_webhook_url": url}),
                )
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{backend:?} {url}: {body}");
            assert_eq!(
                body["errors"][0]["field"],
                json!("audit_webhook_url"),
                "{body}"
            );
            let (status, _) = admin.get(&format!("/v1/tenants/{id}")).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "nothing created for {url}");
        }
        server.stop().await;
        // An operator may allow a range explicitly; everything else stays refused.
        let server = TestServer::start_with(backend, allow_loopback).await;
        let (status, body) = server
            .admin()
            .post(
                "/v1/tenants",
                json!({"id": "local", "name": "Local", "audit_webhook_url": "http://127.0.0.1:9/h"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = server
            .admin()
            .post(
                "/v1/tenants",
                json!({"id": "private", "name": "P", "audit_webhook_url": "http://10.0.0.1/h"}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        server.stop().await;
    }
}

/// A receiver that answers every POST with a redirect to `target`.
async fn start_redirector(target: String) -> (String, Received, tokio::task::JoinHandle<()>) {
    let received = Received::default();
    let seen = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let target = target.clone();
            let seen = seen.clone();
            async move {
                seen.0
                    .lock()
                    .unwrap()
                    .push((axum::http::HeaderMap::new(), body.to_vec()));
                (
                    axum::http::StatusCode::TEMPORARY_REDIRECT,
                    [(axum::http::header::LOCATION, target)],
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let handle = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, received, handle)
}

#[tokio::test]
async fn deliveries_refuse_internal_addresses_and_never_follow_redirects() {
    for backend in BACKENDS {
        // The webhook driver's URL is checked again when delivering: a literal loopback
        // address is refused without the allow-list, and nothing reaches it.
        let (url, received, provisioner) = start_provisioner().await;
        let server = TestServer::start_with(backend, |s| {
            s.boundary_driver = BoundaryDriverSettings::Webhook {
                url: url.clone(),
                secret: "the-provisioner-secret".to_owned(),
            };
        })
        .await;
        let (status, body) = server
            .admin()
            .post(
                "/v1/tenants",
                json!({"id": "acme", "name": "Acme", "home_region": "eu-west-1"}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(server.app.jobs().deliver_outbox().await.unwrap(), 0);
        assert!(received.0.lock().unwrap().is_empty(), "{backend:?}");
        assert_eq!(server.app.jobs().outbox_backlog().await.unwrap().pending, 1);
        provisioner.abort();
        server.stop().await;

        // Allowed, but a redirect is not followed (here to a receiver that is itself allowed:
        // a redirect could as well point at an internal address).
        let (target, landed, target_task) = start_provisioner().await;
        let (hook, redirected, hook_task) = start_redirector(target).await;
        let server = TestServer::start_with(backend, allow_loopback).await;
        let (status, body) = server
            .admin()
            .post(
                "/v1/tenants",
                json!({"id": "acme", "name": "Acme", "audit_webhook_url": hook}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert!(server.app.jobs().enqueue_audit_hooks().await.unwrap() > 0);
        assert_eq!(server.app.jobs().deliver_outbox().await.unwrap(), 0);
        assert_eq!(redirected.0.lock().unwrap().len(), 1, "{backend:?}");
        assert!(
            landed.0.lock().unwrap().is_empty(),
            "the redirect was followed"
        );
        hook_task.abort();
        target_task.abort();
        server.stop().await;
    }
}

#[tokio::test]
async fn an_anonymous_flood_is_aggregated_and_rate_limited() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let flood = server.api("cos_op_not-a-real-token");
        let anonymous = server.anonymous();
        let admin = server.admin();
        let (mut unauthorized, mut limited) = (0, 0);
        for i in 0..500 {
            let client = if i % 2 == 0 { &flood } else { &anonymous };
            let (status, headers, text) = client.raw(Method::GET, "/v1/tenants", None).await;
            match status {
                StatusCode::UNAUTHORIZED => unauthorized += 1,
                StatusCode::TOO_MANY_REQUESTS => {
                    limited += 1;
                    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
                    assert!((1..=60).contains(&retry), "{retry}");
                    assert!(text.contains("/problems/too-many-requests"), "{text}");
                }
                other => panic!("{other}: {text}"),
            }
            if i % 100 == 0 {
                // A legitimate client from the same address is never turned away.
                assert_eq!(admin.get("/v1/tenants").await.0, StatusCode::OK);
            }
        }
        let per_minute = server.app.settings().auth_failures_per_minute_max;
        assert_eq!(unauthorized, per_minute, "{backend:?}");
        assert_eq!(limited, 500 - per_minute, "{backend:?}");
        let single = audit(&server, "action=auth.authenticate").await;
        assert_eq!(
            single.len(),
            1,
            "only the first failure of the minute: {single:?}"
        );
        assert_eq!(single[0]["outcome"], json!("denied"));
        assert!(
            audit(&server, "action=auth.failed.aggregate")
                .await
                .is_empty(),
            "written when the minute is over"
        );
        server.clock.advance(time::Duration::seconds(61));
        assert_eq!(
            server
                .app
                .operators()
                .flush_auth_failures(false)
                .await
                .unwrap(),
            1
        );
        let aggregate = audit(&server, "action=auth.failed.aggregate").await;
        assert_eq!(aggregate.len(), 1, "{aggregate:?}");
        assert_eq!(aggregate[0]["outcome"], json!("denied"));
        assert_eq!(aggregate[0]["details"]["source"], json!("127.0.0.1"));
        assert_eq!(aggregate[0]["details"]["count"], json!(500));
        assert_eq!(
            aggregate[0]["details"]["rate_limited"],
            json!(500 - per_minute)
        );
        // A new minute: the source is audited (and answered 401) again.
        let (status, _, _) = anonymous.raw(Method::GET, "/v1/tenants", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(audit(&server, "action=auth.authenticate").await.len(), 2);
        server.stop().await;
    }
}

/// The value of one series in a Prometheus text exposition, 0 when absent.
fn series(text: &str, name_and_labels: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn metrics_need_a_reader_and_label_only_real_tenants() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let (status, _, _) = server.anonymous().raw(Method::GET, "/metrics", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{backend:?}");
        let ingest = server.operator("meter", "ingest").await;
        let (status, _, _) = ingest.raw(Method::GET, "/metrics", None).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "a service account reads no tenant's counts"
        );
        let denied = audit(&server, "action=metrics.read&outcome=denied").await;
        assert_eq!(denied.len(), 1, "{denied:?}");
        let scraper = server.operator("prometheus", "viewer").await;

        // Events naming tenants that do not exist, enough to use up the whole label budget if
        // each took a label: rejected, and counted under one `_unknown` label.
        let ghosts = companyos_core::metrics::LABEL_SETS_MAX;
        for chunk in 0..ghosts / 2_000 {
            let events: Vec<_> = (0..2_000)
                .map(|i| {
                    let n = chunk * 2_000 + i;
                    event(&format!("ghost-{n}"), &format!("g{n}"), "1", START)
                })
                .collect();
            let (status, body) = ingest.post("/v1/events", json!(events)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["rejected"], json!(2_000), "{backend:?}");
        }
        // A tenant created afterwards still gets its own counter.
        server.tenant("acme").await;
        let (status, body) = ingest
            .post("/v1/events", json!([event("acme", "a1", "1", START)]))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, _, text) = scraper.raw(Method::GET, "/metrics", None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!text.contains("ghost-"), "{backend:?}");
        assert_eq!(
            series(
                &text,
                "companyos_usage_events_total{status=\"rejected\",tenant=\"_unknown\"}"
            ) + series(
                &text,
                "companyos_usage_events_total{tenant=\"_unknown\",status=\"rejected\"}"
            ),
            ghosts as u64,
            "{text}"
        );
        assert_eq!(
            series(
                &text,
                "companyos_usage_events_total{tenant=\"acme\",status=\"accepted\"}"
            ),
            1,
            "{text}"
        );
        server.stop().await;
    }
}

/// Reads until the server closes the connection; false if it is still open after `limit`.
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt as _;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

async fn connect(server: &TestServer) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(server.url.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// GET /healthz on a fresh connection, retried while the server sheds load.
async fn healthz_answers(server: &TestServer) -> bool {
    for _ in 0..100 {
        let client = reqwest::Client::new();
        if let Ok(response) = client.get(format!("{}/healthz", server.url)).send().await
            && response.status() == StatusCode::OK
        {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn half_sent_requests_are_closed_and_connections_are_limited() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let limit = 8;
    let server = TestServer::start_with(crate::support::Backend::Sqlite, |s| {
        s.http_header_read_timeout = std::time::Duration::from_millis(1_000);
        s.http_connections_max = limit;
    })
    .await;
    let mut slow = Vec::new();
    for _ in 0..limit {
        let mut stream = connect(&server).await;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(stream);
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // Over the limit: closed without an answer, not queued and not served.
    let mut extra = connect(&server).await;
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    let mut answer = Vec::new();
    let _ = extra.read_to_end(&mut answer).await;
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    // Every half-sent request is closed once its header is overdue...
    for stream in &mut slow {
        assert!(closed_within(stream, std::time::Duration::from_secs(15)).await);
    }
    // ...and the server answers again.
    assert!(healthz_answers(&server).await);
    // More half-sent requests than the limit, at once: the server still recovers.
    let mut flood = Vec::new();
    for _ in 0..limit * 4 {
        let mut stream = connect(&server).await;
        let _ = stream.write_all(b"POST /v1/events HTTP/1.1\r\n").await;
        flood.push(stream);
    }
    assert!(healthz_answers(&server).await);
    server.stop().await;
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    use tokio::io::AsyncWriteExt as _;
    let server = TestServer::start_with(crate::support::Backend::Sqlite, |s| {
        // Far longer than the wait below: only the idle timeout can close the connection.
        s.http_header_read_timeout = std::time::Duration::from_secs(60);
        s.http_idle_timeout = std::time::Duration::from_millis(500);
    })
    .await;
    let mut stream = connect(&server).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(closed_within(&mut stream, std::time::Duration::from_secs(15)).await);
    // A connection that never sends anything is idle too.
    let mut silent = connect(&server).await;
    assert!(closed_within(&mut silent, std::time::Duration::from_secs(15)).await);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_lets_a_request_in_flight_finish() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let server = TestServer::start(crate::support::Backend::Sqlite).await;
    let body = br#"{"name": "late-olga", "role": "viewer"}"#;
    let (first, rest) = body.split_at(10);
    let mut stream = connect(&server).await;
    let head = format!(
        "POST /v1/operators HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        server.admin_token,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(first).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // Shut down while the request is in flight (its body half sent)...
    let url = server.url.clone();
    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!stopping.is_finished(), "waits for the request in flight");
    // ...no new connection is taken...
    assert!(
        reqwest::Client::new()
            .get(format!("{url}/healthz"))
            .send()
            .await
            .is_err()
    );
    // ...and the request in flight is answered.
    stream.write_all(rest).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(15),
        stream.read_to_end(&mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    tokio::time::timeout(std::time::Duration::from_secs(15), stopping)
        .await
        .expect("the server stops once the request is answered")
        .unwrap();
}
