//! Tenant boundaries (LIFE-1, LIFE-2): the PostgreSQL driver gives each tenant a schema and a
//! login role that reaches nothing else, cut off at suspension and dropped at purge; the webhook
//! driver tells an external provisioner (HMAC-signed) and waits for its signed callback.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::HeaderMap;
use companyos_core::lifecycle::boundary::{
    callback_signature, verify_webhook_signature, webhook_signature,
};
use companyos_core::settings::BoundaryDriverSettings;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection as _;

use crate::checks::{approve, assert_audited, audit_head, request, status_of, verified_evidence};
use crate::support::{BACKENDS, Backend, TestServer, postgres_server_url};

/// `postgres://user:password@host:port/database` on the test PostgreSQL server.
fn login_url(user: &str, password: &str, database: &str) -> String {
    let server = postgres_server_url();
    let rest = server.split_once("://").map_or(server.as_str(), |(_, r)| r);
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = host.split_once('/').map_or(host, |(h, _)| h);
    format!("postgres://{user}:{password}@{host}/{database}")
}

async fn login(tenant: &Value, credentials: &Value) -> Result<sqlx::PgConnection, sqlx::Error> {
    sqlx::PgConnection::connect(&login_url(
        credentials["user"].as_str().unwrap(),
        credentials["password"].as_str().unwrap(),
        tenant["boundary"]["database"].as_str().unwrap(),
    ))
    .await
}

async fn create(server: &TestServer, id: &str) -> Value {
    let (status, body) = server
        .admin()
        .post(
            "/v1/tenants",
            json!({"id": id, "name": id, "plan": "standard", "home_region": "eu-west-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn count(server: &TestServer, sql: &str, name: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .bind(name)
        .fetch_one(server.app.db().readers())
        .await
        .unwrap()
}

#[tokio::test]
async fn the_postgres_driver_isolates_tenants_and_follows_the_lifecycle() {
    let server = TestServer::start_with(Backend::Postgres, |s| {
        s.boundary_driver = BoundaryDriverSettings::Postgres;
    })
    .await;
    let alpha = create(&server, "alpha").await;
    let bravo = create(&server, "bravo").await;
    let alpha_login = alpha["boundary_credentials"].clone();
    let bravo_login = bravo["boundary_credentials"].clone();
    assert!(alpha_login["user"].is_string() && alpha_login["password"].is_string());
    assert_eq!(alpha["boundary"]["driver"], json!("postgres"));
    assert_eq!(alpha["boundary"]["schema"], json!("tenant_alpha"));
    assert_eq!(alpha["boundary"]["role"], alpha_login["user"]);
    assert_ne!(alpha_login["user"], bravo_login["user"]);
    // The password is shown once and never stored.
    let (_, shown) = server.admin().get("/v1/tenants/alpha").await;
    assert!(shown["boundary"].get("credentials").is_none(), "{shown}");
    assert!(shown.get("boundary_credentials").is_none());
    let role = alpha_login["user"].as_str().unwrap().to_owned();

    // Tenant A uses its own schema...
    let mut a = login(&alpha, &alpha_login).await.expect("alpha logs in");
    let own: String = sqlx::query_scalar("SELECT tenant_id FROM boundary")
        .fetch_one(&mut a)
        .await
        .unwrap();
    assert_eq!(own, "alpha");
    sqlx::query("CREATE TABLE notes (body TEXT)")
        .execute(&mut a)
        .await
        .expect("alpha creates tables in its schema");
    sqlx::query("INSERT INTO tenant_alpha.notes VALUES ('mine')")
        .execute(&mut a)
        .await
        .unwrap();
    // ...and nothing else: not tenant B's schema, not the control plane's tables.
    for sql in [
        "SELECT * FROM tenant_bravo.boundary",
        "SELECT * FROM public.tenants",
        "SELECT * FROM public.audit_events",
        "SELECT * FROM public.tenant_keys",
        "CREATE TABLE public.intruder (x INT)",
        "CREATE SCHEMA intruder",
    ] {
        let error = sqlx::query(sql)
            .execute(&mut a)
            .await
            .expect_err(sql)
            .to_string();
        assert!(error.contains("permission denied"), "{sql}: {error}");
    }
    let mut b = login(&bravo, &bravo_login).await.expect("bravo logs in");
    let error = sqlx::query("SELECT * FROM tenant_alpha.notes")
        .execute(&mut b)
        .await
        .expect_err("bravo reads alpha")
        .to_string();
    assert!(error.contains("permission denied"), "{error}");
    // Suspend: the open session ends, new logins are refused.
    let olga = server.operator("olga", "operator").await;
    let (status, body) = olga
        .post("/v1/tenants/alpha/suspend", json!({"reason": "unpaid"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        sqlx::query("SELECT 1").execute(&mut a).await.is_err(),
        "the open session of a suspended tenant is terminated"
    );
    let error = login(&alpha, &alpha_login)
        .await
        .expect_err("a suspended tenant cannot log in")
        .to_string();
    assert!(error.contains("not permitted to log in"), "{error}");
    let records = crate::support::audit(&server, "action=tenant.suspend").await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["details"]["boundary"]["login"], json!(false));
    assert!(
        records[0]["details"]["boundary"]["sessions_terminated"]
            .as_i64()
            .unwrap()
            >= 1,
        "{:#}",
        records[0]
    );
    // B is untouched.
    sqlx::query("SELECT 1").execute(&mut b).await.unwrap();

    // Reactivate: logins work again, the data is still there.
    let (status, _) = olga
        .post("/v1/tenants/alpha/reactivate", json!({"reason": "paid"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut a = login(&alpha, &alpha_login)
        .await
        .expect("alpha logs in again");
    let note: String = sqlx::query_scalar("SELECT body FROM notes")
        .fetch_one(&mut a)
        .await
        .unwrap();
    assert_eq!(note, "mine");
    a.close().await.unwrap();

    // Purge drops the schema and the role.
    let anna = server.operator("anna", "approver").await;
    approve(&anna, &request(&olga, "alpha", "delete").await).await;
    assert!(
        login(&alpha, &alpha_login).await.is_err(),
        "deleting: no login"
    );
    let body = approve(&anna, &request(&olga, "alpha", "purge").await).await;
    assert_eq!(body["tenant"]["status"], json!("purged"));
    let schemas = "SELECT COUNT(*) FROM pg_namespace WHERE nspname = $1";
    let roles = "SELECT COUNT(*) FROM pg_roles WHERE rolname = $1";
    assert_eq!(count(&server, schemas, "tenant_alpha").await, 0);
    assert_eq!(count(&server, roles, &role).await, 0);
    assert_eq!(count(&server, schemas, "tenant_bravo").await, 1);
    let certificate = verified_evidence(
        &server,
        &server.admin(),
        body["evidence_id"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        certificate["deleted"]["boundary"]["dropped_schema"],
        json!("tenant_alpha")
    );
    assert_eq!(
        certificate["deleted"]["boundary"]["dropped_role"],
        json!(role)
    );
    assert!(login(&alpha, &alpha_login).await.is_err());
    // B still works; then it goes too (roles are cluster-wide: leave none behind).
    sqlx::query("SELECT * FROM boundary")
        .execute(&mut b)
        .await
        .unwrap();
    b.close().await.unwrap();
    approve(&anna, &request(&olga, "bravo", "delete").await).await;
    approve(&anna, &request(&olga, "bravo", "purge").await).await;
    assert_eq!(
        count(&server, roles, bravo_login["user"].as_str().unwrap()).await,
        0
    );
    server.stop().await;
}

/// What the external provisioner received.
#[derive(Debug, Clone, Default)]
pub struct Received(pub Arc<Mutex<Vec<Delivery>>>);

/// One request: its headers and body.
pub type Delivery = (HeaderMap, Vec<u8>);

async fn provisioner(
    State(received): State<Received>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    received.0.lock().unwrap().push((headers, body.to_vec()));
    StatusCode::OK
}

/// Runs the external provisioner on port 0; returns its URL and what it receives.
pub async fn start_provisioner() -> (String, Received, tokio::task::JoinHandle<()>) {
    let received = Received::default();
    let app = axum::Router::new()
        .route("/provision", axum::routing::post(provisioner))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/provision", listener.local_addr().unwrap());
    let handle = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, received, handle)
}

/// A test server whose boundary driver is the webhook driver, pointed at a provisioner started
/// here: the server, what the provisioner receives, and its task.
async fn start_with_provisioner(
    backend: Backend,
    secret: &str,
) -> (TestServer, Received, tokio::task::JoinHandle<()>) {
    let (url, received, provisioner) = start_provisioner().await;
    let server = TestServer::start_with(backend, |s| {
        crate::support::allow_loopback(s);
        s.boundary_driver = BoundaryDriverSettings::Webhook {
            url,
            secret: secret.to_owned(),
        };
    })
    .await;
    (server, received, provisioner)
}

/// Creates tenant `id` with its audit webhook at a receiver started here: what the receiver
/// gets, its task, and the tenant's hook secret (shown only in the creation answer).
pub async fn tenant_with_audit_webhook(
    server: &TestServer,
    id: &str,
) -> (Received, tokio::task::JoinHandle<()>, String) {
    let (url, received, receiver) = start_provisioner().await;
    let (status, body) = server
        .admin()
        .post(
            "/v1/tenants",
            json!({"id": id, "name": id, "audit_webhook_url": url}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let secret = body["audit_webhook_secret"].as_str().unwrap().to_owned();
    (received, receiver, secret)
}

/// The timestamp and signature headers of a signed delivery.
pub fn signature_headers(headers: &HeaderMap) -> (i64, &str) {
    let timestamp = headers["x-companyos-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    (
        timestamp,
        headers["x-companyos-signature"].to_str().unwrap(),
    )
}

async fn callback(
    server: &TestServer,
    tenant: &str,
    attempt: Option<&str>,
    timestamp: Option<i64>,
    signature: Option<&str>,
    body: &[u8],
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .post(format!(
            "{}/v1/tenants/{tenant}/provisioning/callback",
            server.url
        ))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(attempt) = attempt {
        request = request.header("x-companyos-attempt", attempt);
    }
    if let Some(timestamp) = timestamp {
        request = request.header("x-companyos-timestamp", timestamp.to_string());
    }
    if let Some(signature) = signature {
        request = request.header("x-companyos-signature", signature);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_webhook_driver_asks_a_signed_provisioner_and_waits_for_its_signed_callback() {
    for backend in BACKENDS {
        let secret = "the-provisioner-secret";
        let (server, received, provisioner) = start_with_provisioner(backend, secret).await;
        let (status, created) = server
            .admin()
            .post(
                "/v1/tenants",
                json!({"id": "acme", "name": "Acme", "home_region": "eu-west-1"}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{backend:?} {created}");
        assert_eq!(created["status"], json!("provisioning"));
        assert!(created["dossier_evidence_id"].is_null());
        let key = server.api(created["api_key"].as_str().unwrap());
        let (status, _, _) = key.raw(Method::GET, "/v1/authz/check", None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "not active yet");

        // The outbox tells the provisioner, signed.
        assert!(
            received.0.lock().unwrap().is_empty(),
            "nothing before delivery"
        );
        let delivered = server.app.jobs().deliver_outbox().await.unwrap();
        assert_eq!(delivered, 1);
        let messages = received.0.lock().unwrap().clone();
        assert_eq!(messages.len(), 1, "{messages:?}");
        let (headers, body) = &messages[0];
        let (timestamp, signature) = signature_headers(headers);
        let now = server.app.now().unix_timestamp();
        assert!(verify_webhook_signature(
            secret, timestamp, now, body, signature
        ));
        assert!(!verify_webhook_signature(
            "other", timestamp, now, body, signature
        ));
        let mut changed = body.clone();
        changed.push(b' ');
        assert!(!verify_webhook_signature(
            secret, timestamp, now, &changed, signature
        ));
        let message: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(message["topic"], json!("boundary.create"), "{message}");
        assert_eq!(message["tenant_id"], json!("acme"));
        assert_eq!(
            message["payload"]["callback"],
            json!("/v1/tenants/acme/provisioning/callback")
        );
        let attempt = message["payload"]["attempt"].as_str().unwrap().to_owned();
        let sign = |tenant: &str, attempt: &str, ts: i64, body: &[u8]| {
            callback_signature(secret, tenant, attempt, ts, body)
        };
        // Delivered once: a second run sends nothing.
        assert_eq!(server.app.jobs().deliver_outbox().await.unwrap(), 0);

        // A callback without a valid signature is refused (and audited).
        let confirm = json!({"status": "succeeded", "details": {"cluster": "eu-1"}})
            .to_string()
            .into_bytes();
        let before = audit_head(&server).await;
        for (attempt, ts, signature) in [
            (Some(attempt.as_str()), Some(now), Some("v2=00".to_owned())),
            (
                Some(attempt.as_str()),
                Some(now),
                Some(callback_signature("wrong", "acme", &attempt, now, &confirm)),
            ),
            (
                Some(attempt.as_str()),
                Some(now - 600),
                Some(sign("acme", &attempt, now - 600, &confirm)),
            ),
            (
                Some(attempt.as_str()),
                None,
                Some(sign("acme", &attempt, now, &confirm)),
            ),
            (Some(attempt.as_str()), Some(now), None),
            // The signature of the old scheme (timestamp and body only) no longer counts.
            (
                Some(attempt.as_str()),
                Some(now),
                Some(webhook_signature(secret, now, &confirm)),
            ),
            (None, Some(now), Some(sign("acme", &attempt, now, &confirm))),
        ] {
            let (status, body) =
                callback(&server, "acme", attempt, ts, signature.as_deref(), &confirm).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{backend:?} {body}");
        }
        let records = assert_audited(
            &server,
            before,
            &[("tenant.provision.confirm", "denied"); 7],
            "bad callbacks",
        )
        .await;
        assert_eq!(records[0]["actor"], json!("system:webhook-driver"));
        assert_eq!(status_of(&server, "acme").await, "provisioning");

        // The signed callback makes the tenant active, with its dossier.
        let before = audit_head(&server).await;
        let (status, body) = callback(
            &server,
            "acme",
            Some(&attempt),
            Some(now),
            Some(&sign("acme", &attempt, now, &confirm)),
            &confirm,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{backend:?} {body}");
        assert_eq!(body["status"], json!("active"), "{body}");
        assert_eq!(body["boundary"]["state"], json!("ready"));
        assert_audited(
            &server,
            before,
            &[("tenant.provision.confirm", "success")],
            "callback",
        )
        .await;
        let dossier = verified_evidence(
            &server,
            &server.admin(),
            body["dossier_evidence_id"].as_str().unwrap(),
        )
        .await;
        assert_eq!(dossier["kind"], json!("tenant-dossier"));
        assert_eq!(dossier["tenant"]["status"], json!("active"));
        let (status, headers, _) = key.raw(Method::GET, "/v1/authz/check", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["x-tenant-id"], "acme");
        // A replayed callback is refused (its attempt is answered) and audited.
        let before = audit_head(&server).await;
        let (status, body) = callback(
            &server,
            "acme",
            Some(&attempt),
            Some(now),
            Some(&sign("acme", &attempt, now, &confirm)),
            &confirm,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_audited(
            &server,
            before,
            &[("tenant.provision.confirm", "denied")],
            "replayed callback",
        )
        .await;

        // A provisioner that reports failure leaves the tenant provisioning_failed.
        let (status, _) = server
            .admin()
            .post("/v1/tenants", json!({"id": "beta", "name": "Beta"}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let failed = json!({"status": "failed", "details": {"error": "no capacity"}})
            .to_string()
            .into_bytes();
        server.app.jobs().deliver_outbox().await.unwrap();
        let beta_attempt = attempt_of(&received, "beta");
        let (status, body) = callback(
            &server,
            "beta",
            Some(&beta_attempt),
            Some(now),
            Some(&sign("beta", &beta_attempt, now, &failed)),
            &failed,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], json!("provisioning_failed"));
        server.stop().await;
        provisioner.abort();
    }
}

/// The attempt id of the latest `boundary.create` request the provisioner received for `tenant`.
fn attempt_of(received: &Received, tenant: &str) -> String {
    received
        .0
        .lock()
        .unwrap()
        .iter()
        .rev()
        .map(|(_, body)| serde_json::from_slice::<Value>(body).unwrap())
        .find(|m| m["topic"] == json!("boundary.create") && m["tenant_id"] == json!(tenant))
        .and_then(|m| m["payload"]["attempt"].as_str().map(str::to_owned))
        .unwrap()
}

/// Issue #20, point 4: tenant A's genuine `succeeded` callback, posted to tenant B's callback
/// URL within the timestamp window (with A's attempt or B's), does not activate B; it is
/// refused and audited as denied. B's own callback still works, once; a retry supersedes the
/// earlier attempt, whose genuine callback is then refused too.
#[tokio::test]
async fn a_provisioning_callback_counts_for_its_own_tenant_and_attempt_once() {
    for backend in BACKENDS {
        let secret = "the-provisioner-secret";
        let (server, received, provisioner) = start_with_provisioner(backend, secret).await;
        for id in ["alpha", "bravo"] {
            let (status, body) = server
                .admin()
                .post("/v1/tenants", json!({"id": id, "name": id}))
                .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        }
        server.app.jobs().deliver_outbox().await.unwrap();
        let (alpha, bravo) = (
            attempt_of(&received, "alpha"),
            attempt_of(&received, "bravo"),
        );
        assert_ne!(alpha, bravo);
        let now = server.app.now().unix_timestamp();
        let ok = json!({"status": "succeeded"}).to_string().into_bytes();
        let alpha_signature = callback_signature(secret, "alpha", &alpha, now, &ok);

        // A's genuine callback, replayed to B's URL: with A's attempt, and with B's.
        let before = audit_head(&server).await;
        for attempt in [&alpha, &bravo] {
            let (status, body) = callback(
                &server,
                "bravo",
                Some(attempt),
                Some(now),
                Some(&alpha_signature),
                &ok,
            )
            .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{backend:?} {body}");
        }
        let records = assert_audited(
            &server,
            before,
            &[("tenant.provision.confirm", "denied"); 2],
            "A's callback posted to B",
        )
        .await;
        assert_eq!(records[0]["tenant_id"], json!("bravo"));
        assert_eq!(status_of(&server, "bravo").await, "provisioning");
        // Even signed for B's URL, A's attempt is not B's to answer.
        let (status, body) = callback(
            &server,
            "bravo",
            Some(&alpha),
            Some(now),
            Some(&callback_signature(secret, "bravo", &alpha, now, &ok)),
            &ok,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{backend:?} {body}");
        assert_eq!(status_of(&server, "bravo").await, "provisioning");

        // A's own callback works, once.
        let (status, body) = callback(
            &server,
            "alpha",
            Some(&alpha),
            Some(now),
            Some(&alpha_signature),
            &ok,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{backend:?} {body}");
        assert_eq!(body["status"], json!("active"));
        let (status, _) = callback(
            &server,
            "alpha",
            Some(&alpha),
            Some(now),
            Some(&alpha_signature),
            &ok,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "a replay is refused");

        // B retried: its first attempt is superseded, only the new one is answered.
        let (status, body) = server
            .admin()
            .post("/v1/tenants/bravo/retry", json!({}))
            .await;
        assert!(status.is_success(), "{backend:?} {body}");
        server.app.jobs().deliver_outbox().await.unwrap();
        let retried = attempt_of(&received, "bravo");
        assert_ne!(retried, bravo);
        let old = callback_signature(secret, "bravo", &bravo, now, &ok);
        let (status, _) =
            callback(&server, "bravo", Some(&bravo), Some(now), Some(&old), &ok).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "a superseded attempt is refused"
        );
        let new = callback_signature(secret, "bravo", &retried, now, &ok);
        let (status, body) =
            callback(&server, "bravo", Some(&retried), Some(now), Some(&new), &ok).await;
        assert_eq!(status, StatusCode::OK, "{backend:?} {body}");
        assert_eq!(body["status"], json!("active"));
        server.stop().await;
        provisioner.abort();
    }
}

/// Every string anywhere in `value`.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// A tenant reading itself with its API key sees its boundary's driver and names, never the
/// server's paths or database names; operators still see them (issue #20, point 10).
#[tokio::test]
async fn a_tenant_never_sees_server_paths_or_database_names_in_its_own_view() {
    for backend in BACKENDS {
        for driver in [
            BoundaryDriverSettings::Directory,
            BoundaryDriverSettings::Postgres,
        ] {
            if backend == Backend::Sqlite && driver == BoundaryDriverSettings::Postgres {
                continue;
            }
            let server =
                TestServer::start_with(backend, |s| s.boundary_driver = driver.clone()).await;
            let (status, created) = server
                .admin()
                .post(
                    "/v1/tenants",
                    json!({"id": "acme", "name": "Acme", "plan": "standard", "home_region": "eu-west-1"}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{created}");
            let key = created["api_key"].as_str().unwrap().to_owned();
            let (status, operator_view) = server.admin().get("/v1/tenants/acme").await;
            assert_eq!(status, StatusCode::OK, "{operator_view}");
            let internal = match driver {
                BoundaryDriverSettings::Directory => "path",
                _ => "database",
            };
            assert!(
                operator_view["boundary"][internal].is_string(),
                "operators see the boundary's {internal}: {operator_view}"
            );
            let (status, own) = server.api(&key).get("/v1/tenants/acme").await;
            assert_eq!(status, StatusCode::OK, "{own}");
            assert_eq!(
                own["boundary"]["driver"],
                operator_view["boundary"]["driver"]
            );
            for hidden in [
                "path",
                "database",
                "provisioner",
                "provisioner_details",
                "credentials",
            ] {
                assert!(own["boundary"].get(hidden).is_none(), "{backend:?}: {own}");
            }
            let data_dir = server.dir.path().display().to_string();
            let database = operator_view["boundary"]["database"]
                .as_str()
                .map(str::to_owned);
            let (status, runs) = server.api(&key).get("/v1/tenants/acme/provisioning").await;
            assert_eq!(status, StatusCode::OK, "{runs}");
            let mut seen = Vec::new();
            strings(&own, &mut seen);
            strings(&runs, &mut seen);
            for text in seen {
                assert!(
                    !text.contains(&data_dir),
                    "{backend:?}: {text} names the data dir"
                );
                if let Some(database) = &database {
                    assert_ne!(&text, database, "{backend:?}: the database name is shown");
                }
            }
            // The boundary's password is shown once, at creation, and stored nowhere: not in
            // the step log operators read, not in the audit log.
            if let Some(password) = created["boundary_credentials"]["password"].as_str() {
                let (_, runs) = server.admin().get("/v1/tenants/acme/provisioning").await;
                let (_, audit) = server.admin().get("/v1/audit?tenant_id=acme").await;
                for text in [runs.to_string(), audit.to_string()] {
                    assert!(
                        !text.contains(password),
                        "{backend:?}: the password is stored"
                    );
                }
            }
            server.stop().await;
        }
    }
}
