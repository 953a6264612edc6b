//! Test support: a real server on port 0 over a real store (a SQLite file in a temp dir, or a
//! fresh PostgreSQL database), a manual clock, and a small JSON client. What the suites share
//! (databases, event builders, opening the store) is `companyos-test-support`.

use std::sync::Arc;

use companyos_core::App;
use companyos_core::clock::ManualClock;
use companyos_core::settings::Settings;
use companyos_test_support::{postgres, store};
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::{Value, json};

pub use companyos_test_support::events::usage_event as event;
pub use companyos_test_support::postgres::server_url as postgres_server_url;
pub use companyos_test_support::store::{BACKENDS, Backend, START, allow_loopback};

/// A running server.
pub struct TestServer {
    pub backend: Backend,
    pub url: String,
    pub admin_token: String,
    pub app: App,
    pub clock: Arc<ManualClock>,
    pub dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
    /// The PostgreSQL database of this server, dropped by `stop`.
    database: Option<String>,
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts a server after `configure` adjusted the settings.
    pub async fn start_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestServer {
        let store::OpenedStore {
            app,
            clock,
            admin_token,
            database_url: database,
            dir,
        } = store::open(backend, "companyos_test", configure).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let url = format!("http://{}", listener.local_addr().expect("bound address"));
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = companyos_server::AppState {
            app: app.clone(),
            body_bytes_max: 1024 * 1024,
        };
        let handle = tokio::spawn(async move {
            companyos_server::serve(state, listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
        });
        TestServer {
            backend,
            url,
            admin_token,
            app,
            clock,
            dir,
            shutdown: Some(shutdown),
            handle: Some(handle),
            database,
        }
    }

    pub fn api(&self, token: &str) -> Api {
        Api {
            http: reqwest::Client::new(),
            url: self.url.clone(),
            token: Some(token.to_owned()),
        }
    }

    /// The PostgreSQL database of this server (`None` on SQLite).
    pub fn database_name(&self) -> Option<&str> {
        self.database.as_deref().and_then(postgres::database_name)
    }

    pub fn admin(&self) -> Api {
        self.api(&self.admin_token)
    }

    pub fn anonymous(&self) -> Api {
        Api {
            http: reqwest::Client::new(),
            url: self.url.clone(),
            token: None,
        }
    }

    /// Creates an operator with `role`; returns a client with its token.
    pub async fn operator(&self, name: &str, role: &str) -> Api {
        let (status, body) = self
            .admin()
            .post("/v1/operators", json!({"name": name, "role": role}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        self.api(body["token"].as_str().expect("token"))
    }

    /// Creates an active tenant as the admin, on the standard plan with residency in the EU;
    /// returns the whole creation answer.
    pub async fn create_tenant(&self, id: &str) -> Value {
        let (status, body) = self
            .admin()
            .post(
                "/v1/tenants",
                json!({"id": id, "name": format!("Tenant {id}"), "plan": "standard",
                       "home_region": "eu-west-1", "allowed_regions": ["eu-west-1", "eu-central-1"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Creates an active tenant; returns its API key.
    pub async fn tenant(&self, id: &str) -> String {
        let body = self.create_tenant(id).await;
        body["api_key"].as_str().expect("api key").to_owned()
    }

    /// Revokes the operator named `name`, as the admin.
    pub async fn revoke_operator(&self, name: &str) {
        let (_, operators) = self.admin().get("/v1/operators").await;
        let id = operators
            .as_array()
            .expect("a list of operators")
            .iter()
            .find(|o| o["name"] == json!(name))
            .and_then(|o| o["id"].as_str())
            .expect("the operator's id")
            .to_owned();
        let (status, body) = self
            .admin()
            .post(&format!("/v1/operators/{id}/revoke"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(handle) = self.handle.take() {
            let _ = handle.await;
        }
        self.app.db().close().await;
        if let Some(url) = &self.database {
            // Clean-up only: a database left behind fails no test.
            let _ = postgres::drop_database(url).await;
        }
    }
}

/// A JSON client of the API.
#[derive(Debug, Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub url: String,
    pub token: Option<String>,
}

impl Api {
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> (StatusCode, HeaderMap, String) {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some((content_type, bytes)) = body {
            request = request.header("content-type", content_type).body(bytes);
        }
        let response = request.send().await.expect("request reaches the server");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        (status, headers, text)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let body = body.map(|b| ("application/json", serde_json::to_vec(&b).expect("json")));
        let (status, headers, text) = self.raw(method, path, body).await;
        if !status.is_success() {
            let content_type = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            assert_eq!(
                content_type, "application/problem+json",
                "every error is problem+json ({status} {path}: {text})"
            );
        }
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn text(&self, path: &str) -> (StatusCode, String) {
        let (status, _, text) = self.raw(Method::GET, path, None).await;
        (status, text)
    }
}

/// Audit records matching a query, read as admin.
pub async fn audit(server: &TestServer, query: &str) -> Vec<Value> {
    let (status, body) = server.admin().get(&format!("/v1/audit?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().cloned().unwrap_or_default()
}
