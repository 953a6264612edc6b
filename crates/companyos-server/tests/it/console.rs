//! The operator console (issue 18, CONTRACT §12) over HTTP, on both engines: sessions, CSRF,
//! escaping, revocation, least privilege and the `console` audit channel. The browser flows are
//! in `console_browser`.

use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{BACKENDS, TestServer, audit};

/// A browser-like client of the console: no redirects followed, the session cookie kept.
pub struct Console {
    http: reqwest::Client,
    url: String,
    pub cookie: Option<String>,
}

/// A console response.
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The CSRF token of the page's first form.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf_token\" value=\"";
        let start = self.body.find(marker).expect("a form with a CSRF token") + marker.len();
        let end = self.body[start..].find('"').expect("end of the token");
        self.body[start..start + end].to_owned()
    }
}

impl Console {
    pub fn new(server: &TestServer) -> Console {
        Console {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            url: server.url.clone(),
            cookie: None,
        }
    }

    pub async fn send(&self, method: Method, path: &str, form: Option<&[(&str, &str)]>) -> Page {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", format!("companyos_session={cookie}"));
        }
        if let Some(form) = form {
            let body = serde_urlencoded::to_string(form).expect("form");
            request = request
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
        }
        let response = request.send().await.expect("request reaches the server");
        Page {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.expect("body"),
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(Method::POST, path, Some(form)).await
    }

    /// Logs in with `token`; returns the login response.
    pub async fn login(&mut self, token: &str) -> Page {
        let page = self.post("/console/login", &[("token", token)]).await;
        if let Some(cookie) = page
            .headers
            .get(SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .and_then(|v| v.strip_prefix("companyos_session="))
        {
            self.cookie = Some(cookie.to_owned());
        }
        page
    }

    /// Logs in as a new operator of `role`.
    pub async fn operator(server: &TestServer, name: &str, role: &str) -> Console {
        let api = server.operator(name, role).await;
        let mut console = Console::new(server);
        let page = console.login(api.token.as_deref().expect("token")).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        console
    }

    /// Posts `form` with the CSRF token of the page at `from`.
    pub async fn submit(&self, from: &str, action: &str, form: &[(&str, &str)]) -> Page {
        let csrf = self.get(from).await.csrf();
        let mut fields: Vec<(&str, &str)> = vec![("csrf_token", &csrf)];
        fields.extend_from_slice(form);
        self.post(action, &fields).await
    }
}

fn status_of(server: &TestServer, tenant: &str) -> impl std::future::Future<Output = Value> {
    let admin = server.admin();
    let path = format!("/v1/tenants/{tenant}");
    async move { admin.get(&path).await.1["status"].clone() }
}

#[tokio::test]
async fn console_needs_a_session_with_a_strict_cookie_and_a_script_free_policy() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let mut console = Console::new(&server);
        for path in ["/console", "/console/tenants", "/console/audit"] {
            let page = console.get(path).await;
            assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
            assert_eq!(page.location(), "/console/login", "{path}");
        }
        let login = console.get("/console/login").await;
        assert_eq!(login.status, StatusCode::OK);
        let policy = login.headers["content-security-policy"].to_str().unwrap();
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert!(policy.contains("default-src 'none'"), "{policy}");
        assert_eq!(login.headers["x-frame-options"], "DENY");
        let wrong = console.login("cos_op_not-a-token").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert!(console.cookie.is_none());
        let page = console.login(&server.admin_token).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        let cookie = page.headers[SET_COOKIE].to_str().unwrap().to_owned();
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Path=/console",
            "Max-Age=28800",
        ] {
            assert!(cookie.contains(part), "{cookie}");
        }
        assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
        let tenants = console.get("/console/tenants").await;
        assert_eq!(tenants.status, StatusCode::OK, "{}", tenants.body);
        assert!(!tenants.body.contains("<script"), "no script at all");
        // Behind a TLS proxy that says so, the cookie is Secure.
        let secure = Console::new(&server)
            .http
            .post(format!("{}/console/login", server.url))
            .header("x-forwarded-proto", "https")
            .form(&[("token", server.admin_token.as_str())])
            .send()
            .await
            .unwrap();
        let cookie = secure.headers()[SET_COOKIE].to_str().unwrap();
        assert!(cookie.contains("; Secure"), "{cookie}");
        // The API never takes the session cookie as a credential.
        let (status, _, _) = {
            let response = reqwest::Client::new()
                .get(format!("{}/v1/tenants", server.url))
                .header(
                    "cookie",
                    format!("companyos_session={}", console.cookie.clone().unwrap()),
                )
                .send()
                .await
                .unwrap();
            (response.status(), (), ())
        };
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // Logout ends the session in the store.
        let logout = console
            .submit("/console/tenants", "/console/logout", &[])
            .await;
        assert_eq!(logout.status, StatusCode::SEE_OTHER);
        assert_eq!(
            console.get("/console/tenants").await.location(),
            "/console/login"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn a_tenant_named_like_a_script_renders_as_text() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let (status, body) = server
            .admin()
            .post(
                "/v1/tenants",
                json!({"id": "xss-corp", "name": "<script>alert(1)</script>", "plan": "standard",
                       "home_region": "eu-west-1", "allowed_regions": ["eu-west-1"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let mut console = Console::new(&server);
        console.login(&server.admin_token).await;
        for path in [
            "/console/tenants",
            "/console/tenants/xss-corp",
            "/console/tenants?q=%3Cscript%3E",
        ] {
            let page = console.get(path).await;
            assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
            assert!(
                page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
                "{path}"
            );
            assert!(!page.body.contains("<script>"), "{path}");
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn a_post_without_or_with_a_wrong_csrf_token_is_refused_and_changes_nothing() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.tenant("acme").await;
        let console = Console::operator(&server, "olga", "operator").await;
        let action = "/console/tenants/acme/actions/suspend";
        let without = console.post(action, &[("reason", "no token")]).await;
        assert_eq!(without.status, StatusCode::FORBIDDEN, "{}", without.body);
        let wrong = console
            .post(
                action,
                &[("csrf_token", "cos_csrf_forged"), ("reason", "wrong token")],
            )
            .await;
        assert_eq!(wrong.status, StatusCode::FORBIDDEN);
        // Another session's token is wrong too.
        let other = Console::operator(&server, "oskar", "operator").await;
        let theirs = other.get("/console/tenants/acme").await.csrf();
        let crossed = console
            .post(
                action,
                &[("csrf_token", theirs.as_str()), ("reason", "other session")],
            )
            .await;
        assert_eq!(crossed.status, StatusCode::FORBIDDEN);
        assert_eq!(status_of(&server, "acme").await, json!("active"));
        assert!(audit(&server, "action=tenant.suspend").await.is_empty());
        let refused = audit(&server, "action=console.csrf&channel=console").await;
        assert_eq!(refused.len(), 3, "{refused:?}");
        assert!(
            refused
                .iter()
                .all(|r| r["outcome"] == json!("denied") && r["actor"] == json!("olga"))
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn a_revoked_operators_session_stops_on_the_next_request() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.tenant("acme").await;
        let api = server.operator("olga", "operator").await;
        let mut console = Console::new(&server);
        console.login(api.token.as_deref().unwrap()).await;
        assert_eq!(console.get("/console/tenants").await.status, StatusCode::OK);
        let csrf = console.get("/console/tenants/acme").await.csrf();
        server.revoke_operator("olga").await;
        let page = console.get("/console/tenants").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert_eq!(page.location(), "/console/login");
        let post = console
            .post(
                "/console/tenants/acme/actions/suspend",
                &[
                    ("csrf_token", csrf.as_str()),
                    ("reason", "after revocation"),
                ],
            )
            .await;
        assert_eq!(post.location(), "/console/login");
        assert_eq!(status_of(&server, "acme").await, json!("active"));
        server.stop().await;
    }
}

#[tokio::test]
async fn a_viewer_sees_no_action_forms_and_a_forged_post_is_403_and_audited() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.tenant("acme").await;
        let viewer = Console::operator(&server, "vera", "viewer").await;
        let page = viewer.get("/console/tenants/acme").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(!page.body.contains("/actions/"), "{}", page.body);
        assert!(!page.body.contains("integrity-report"));
        let forged = viewer
            .submit(
                "/console/tenants/acme",
                "/console/tenants/acme/actions/suspend",
                &[("reason", "forged")],
            )
            .await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);
        assert_eq!(status_of(&server, "acme").await, json!("active"));
        let denied = audit(&server, "action=tenant.suspend&channel=console").await;
        assert_eq!(denied.len(), 1, "{denied:?}");
        assert_eq!(denied[0]["outcome"], json!("denied"));
        assert_eq!(denied[0]["actor"], json!("vera"));
        assert_eq!(denied[0]["role"], json!("viewer"));
        // A viewer may not read the audit log: the page is refused, and the refusal audited.
        assert_eq!(
            viewer.get("/console/audit").await.status,
            StatusCode::FORBIDDEN
        );
        // A service account never gets a console session.
        let ingest = server.operator("meter", "ingest").await;
        let mut console = Console::new(&server);
        let login = console.login(ingest.token.as_deref().unwrap()).await;
        assert_eq!(login.status, StatusCode::FORBIDDEN);
        assert!(console.cookie.is_none());
        let refused = audit(&server, "action=console.login&outcome=denied").await;
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0]["channel"], json!("console"));
        server.stop().await;
    }
}

#[tokio::test]
async fn each_console_action_is_audited_once_with_channel_console() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.tenant("acme").await;
        let operator = Console::operator(&server, "olga", "operator").await;
        let approver = Console::operator(&server, "anna", "approver").await;
        let page = "/console/tenants/acme";
        let steps: [(&str, &[(&str, &str)]); 3] = [
            ("suspend", &[("reason", "unpaid invoice")]),
            ("reactivate", &[("reason", "paid")]),
            (
                "delete",
                &[("reason", "customer left"), ("confirm", "acme")],
            ),
        ];
        for (action, form) in steps {
            let done = operator
                .submit(page, &format!("{page}/actions/{action}"), form)
                .await;
            assert_eq!(
                done.status,
                StatusCode::SEE_OTHER,
                "{action}: {}",
                done.body
            );
        }
        // Delete went to the approval queue; the second operator approves it there.
        assert_eq!(status_of(&server, "acme").await, json!("active"));
        let (_, approvals) = server.admin().get("/v1/approvals?status=pending").await;
        let id = approvals[0]["id"].as_str().unwrap().to_owned();
        let queue = approver.get("/console/approvals").await;
        assert!(queue.body.contains("customer left"), "{}", queue.body);
        let approved = approver
            .submit(
                "/console/approvals",
                &format!("/console/approvals/{id}/decision"),
                &[("decision", "approve"), ("comment", "confirmed by phone")],
            )
            .await;
        assert_eq!(approved.status, StatusCode::SEE_OTHER, "{}", approved.body);
        assert_eq!(status_of(&server, "acme").await, json!("deleting"));
        for (action, actor, outcome) in [
            ("tenant.suspend", "olga", "success"),
            ("tenant.reactivate", "olga", "success"),
            ("approval.approve", "anna", "success"),
            ("console.login", "olga", "success"),
        ] {
            let query = format!("action={action}&channel=console&actor={actor}");
            let records = audit(&server, &query).await;
            assert_eq!(records.len(), 1, "{action}: {records:?}");
            assert_eq!(records[0]["actor"], json!(actor), "{action}");
            assert_eq!(records[0]["outcome"], json!(outcome), "{action}");
        }
        // The delete request, and its execution on approval, are console records, once each.
        let requests = audit(&server, "action=approval.request&channel=console").await;
        assert_eq!(requests.len(), 1, "{requests:?}");
        assert_eq!(requests[0]["actor"], json!("olga"));
        let deletes = audit(&server, "action=tenant.delete&channel=console").await;
        assert_eq!(deletes.len(), 1, "{deletes:?}");
        assert_eq!(deletes[0]["details"]["requested_by"], json!("olga"));
        // The API's own records say so; the channel filter separates them.
        let (status, _) = server
            .admin()
            .post("/v1/tenants/acme/restore", json!({"reason": "by API"}))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            audit(&server, "action=tenant.restore&channel=api")
                .await
                .len(),
            1
        );
        assert!(
            audit(&server, "action=tenant.restore&channel=console")
                .await
                .is_empty()
        );
        // Reads through the console are evidence too.
        assert!(
            !audit(&server, "action=tenant.read&channel=console&actor=olga")
                .await
                .is_empty()
        );
        let (status, body) = server.admin().get("/v1/audit?channel=telegraph").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        // Every record, with or without a channel, still verifies against its leaf.
        assert!(server.app.audit().verify().await.unwrap().is_empty());
        server.stop().await;
    }
}

#[tokio::test]
async fn delete_and_purge_need_the_typed_tenant_id() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.tenant("acme").await;
        let operator = Console::operator(&server, "olga", "operator").await;
        let page = operator.get("/console/tenants/acme").await;
        assert!(page.body.contains("Type the tenant id"), "{}", page.body);
        for confirm in ["", "acm", "globex"] {
            let refused = operator
                .submit(
                    "/console/tenants/acme",
                    "/console/tenants/acme/actions/delete",
                    &[("reason", "customer left"), ("confirm", confirm)],
                )
                .await;
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{confirm:?}");
            assert!(refused.body.contains("confirm"), "{}", refused.body);
        }
        let without_reason = operator
            .submit(
                "/console/tenants/acme",
                "/console/tenants/acme/actions/suspend",
                &[("reason", "  ")],
            )
            .await;
        assert_eq!(without_reason.status, StatusCode::BAD_REQUEST);
        assert!(without_reason.body.contains("reason"));
        let (_, approvals) = server.admin().get("/v1/approvals").await;
        assert_eq!(approvals, json!([]));
        assert_eq!(status_of(&server, "acme").await, json!("active"));
        // Each refused attempt is audited once, as failed, from the console.
        let failed = audit(&server, "outcome=failed&channel=console").await;
        assert_eq!(failed.len(), 4, "{failed:?}");
        server.stop().await;
    }
}

#[tokio::test]
async fn plan_change_and_statements_go_through_the_console() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.tenant("acme").await;
        let viewer = Console::operator(&server, "vera", "viewer").await;
        let page = viewer.get("/console/tenants/acme").await;
        assert!(page.body.contains("<meter"), "quota gauges: {}", page.body);
        assert!(!page.body.contains("/plan\""), "no plan form for a viewer");
        let billing = Console::operator(&server, "bill", "billing").await;
        let page = billing.get("/console/tenants/acme").await;
        assert!(
            page.body.contains("action=\"/console/tenants/acme/plan\""),
            "{}",
            page.body
        );
        let changed = billing
            .submit(
                "/console/tenants/acme",
                "/console/tenants/acme/plan",
                &[
                    ("plan", "enterprise"),
                    ("effective", "now"),
                    ("reason", "upgrade, order 77"),
                ],
            )
            .await;
        assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.body);
        let (_, plan) = server.admin().get("/v1/tenants/acme/plan").await;
        assert_eq!(plan["plan"], json!("enterprise"), "{plan}");
        let records = audit(&server, "action=tenant.plan_change&channel=console").await;
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(records[0]["actor"], json!("bill"));
        // The month's statement renders, and downloads in every format.
        let statement = billing
            .get("/console/tenants/acme/statements/2026-03")
            .await;
        assert_eq!(statement.status, StatusCode::OK, "{}", statement.body);
        assert!(statement.body.contains("Total"));
        for (path, content_type) in [
            ("download?format=json", "application/json"),
            ("download?format=csv", "text/csv; charset=utf-8"),
            ("download?format=pdf", "application/pdf"),
            ("pack", "application/zip"),
        ] {
            let download = billing
                .get(&format!("/console/tenants/acme/statements/2026-03/{path}"))
                .await;
            assert_eq!(download.status, StatusCode::OK, "{path}: {}", download.body);
            assert_eq!(download.headers["content-type"], content_type, "{path}");
            assert!(
                download.headers["content-disposition"]
                    .to_str()
                    .unwrap()
                    .starts_with("attachment"),
                "{path}"
            );
        }
        let packs = audit(&server, "action=statement.pack&channel=console").await;
        assert_eq!(packs.len(), 1, "{packs:?}");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_session_expires_after_eight_hours() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let mut console = Console::new(&server);
        console.login(&server.admin_token).await;
        server
            .clock
            .advance(time::Duration::hours(8) - time::Duration::seconds(1));
        assert_eq!(console.get("/console/tenants").await.status, StatusCode::OK);
        server.clock.advance(time::Duration::seconds(1));
        assert_eq!(
            console.get("/console/tenants").await.location(),
            "/console/login"
        );
        // A new login works, and drops the expired session's row.
        let mut again = Console::new(&server);
        again.login(&server.admin_token).await;
        assert_eq!(again.get("/console/tenants").await.status, StatusCode::OK);
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM console_sessions")
            .fetch_one(server.app.db().readers())
            .await
            .unwrap();
        assert_eq!(rows, 1);
        server.stop().await;
    }
}
