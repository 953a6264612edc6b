//! The CLI's HTTP client: the client subcommands call the same `/v1` API as everyone else, with
//! the operator's token, so they are audited like any other caller.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

/// A failed client call, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the input (400, 413): the caller's usage was wrong (exit 2).
    #[error("{0}")]
    BadInput(String),
    /// Any other failure (exit 1).
    #[error("{0}")]
    Failed(String),
}

impl ClientError {
    pub fn exit_code(&self) -> i32 {
        match self {
            ClientError::BadInput(_) => 2,
            ClientError::Failed(_) => 1,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

/// Renders a problem+json answer as one line: status, detail, and each field error.
fn problem_line(status: u16, body: &str) -> String {
    let Ok(problem) = serde_json::from_str::<Value>(body) else {
        return format!("HTTP {status}: {}", body.trim());
    };
    let detail = problem
        .get("detail")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let title = problem.get("title").and_then(Value::as_str).unwrap_or("");
    let mut line = format!("HTTP {status} {title}: {detail}");
    if let Some(current) = problem.get("current_status").and_then(Value::as_str) {
        line.push_str(&format!(" (current status: {current})"));
    }
    line
}

impl ApiClient {
    pub fn new(base: &str, token: Option<String>) -> anyhow::Result<Self> {
        // Checked here so a URL without a scheme is a usage error naming the setting, not
        // reqwest's "builder error" on the first call.
        let parsed = reqwest::Url::parse(base).ok();
        if !parsed
            .is_some_and(|url| matches!(url.scheme(), "http" | "https") && url.host_str().is_some())
        {
            return Err(crate::commands::UsageError(format!(
                "setting url (--url or COMPANYOS_URL) must be an http:// or https:// URL such \
                 as http://127.0.0.1:8080, got {base:?}"
            ))
            .into());
        }
        let http = reqwest::Client::builder()
            // The server records the CLI as the channel of the audit records it causes.
            .user_agent(concat!("companyos-cli/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(120))
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Calls the API; returns the status and body text of a 2xx answer.
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, String), ClientError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            // reqwest's own text ("error sending request for url (...)") says neither why nor
            // what to do: name the root cause and, when nothing answered, the setting to check.
            let mut cause: &dyn std::error::Error = &e;
            while let Some(source) = cause.source() {
                cause = source;
            }
            let hint = if e.is_connect() || e.is_timeout() {
                "; is `companyos serve` running there? (set --url or COMPANYOS_URL)"
            } else {
                ""
            };
            ClientError::Failed(format!(
                "cannot reach CompanyOS at {}: {cause}{hint}",
                self.base
            ))
        })?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| ClientError::Failed(format!("reading the answer failed: {e}")))?;
        if (200..300).contains(&status) {
            return Ok((status, text));
        }
        let mut line = problem_line(status, &text);
        if status == 401 {
            line.push_str(match self.token {
                None => " (no token was given: set COMPANYOS_TOKEN or pass --token)",
                Some(_) => {
                    " (the token in COMPANYOS_TOKEN or --token is unknown or revoked; on the \
                     server's host, `companyos operator reset-admin` issues a new admin token)"
                }
            });
        }
        if status == 400 || status == 413 {
            Err(ClientError::BadInput(line))
        } else {
            Err(ClientError::Failed(line))
        }
    }

    /// Calls the API and decodes the JSON answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), ClientError> {
        let (status, text) = self.call_raw(method, path, body).await?;
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .map_err(|e| ClientError::Failed(format!("the answer is not JSON: {e}")))?
        };
        Ok((status, value))
    }
}

/// Percent-encodes a path segment or query value.
pub fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

impl ApiClient {
    /// GETs a binary answer (a pack): the bytes of a 2xx answer, else the problem as an error.
    pub async fn get_bytes(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| {
            ClientError::Failed(format!("cannot reach CompanyOS at {}: {e}", self.base))
        })?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Failed(format!("reading the answer failed: {e}")))?;
        if (200..300).contains(&status) {
            return Ok(bytes.to_vec());
        }
        let line = problem_line(status, &String::from_utf8_lossy(&bytes));
        if status == 400 || status == 413 {
            Err(ClientError::BadInput(line))
        } else {
            Err(ClientError::Failed(line))
        }
    }
}
