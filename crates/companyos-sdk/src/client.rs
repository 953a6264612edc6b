//! The HTTP client of `POST /v1/events`: one batch at a time, retried with exponential backoff
//! and full jitter on network errors, 429 and 5xx. Resending is safe: the server answers a
//! repeated event as `duplicate` with its original `seq`.

use std::time::Duration;

use companyos_domain::backoff::Backoff;
use serde_json::Value;

/// What can go wrong while sending.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    #[error("invalid event: {0}")]
    Invalid(String),
    /// The server refused the request itself (4xx other than 429): retrying will not help.
    #[error("the server refused the batch ({status}): {detail}")]
    Refused { status: u16, detail: String },
    /// Network errors or 5xx until the retries ran out.
    #[error("the server is unavailable after {attempts} attempts: {last_error}")]
    Unavailable { attempts: u32, last_error: String },
    #[error("spool: {0}")]
    Spool(String),
    #[error("the emitter has stopped")]
    Stopped,
}

/// Client settings; every bound explicit.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// An operator token of role `ingest`.
    pub token: String,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// Attempts per batch before giving up (the emitter's spool keeps the events then).
    pub attempts_max: u32,
    /// First backoff; each retry doubles it, up to `backoff_max`, with full jitter.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl ClientConfig {
    pub fn new(url: &str, token: &str) -> Self {
        Self {
            url: url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            request_timeout: Duration::from_secs(30),
            attempts_max: 10,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
        }
    }
}

/// The server's answer to one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchResult {
    pub accepted: u64,
    pub duplicates: u64,
    pub late: u64,
    pub rejected: u64,
    pub conflicts: u64,
    /// The per-event results as sent by the server.
    pub results: Vec<Value>,
}

impl BatchResult {
    fn from_json(value: &Value) -> Self {
        let count = |key: &str| value.get(key).and_then(Value::as_u64).unwrap_or(0);
        Self {
            accepted: count("accepted"),
            duplicates: count("duplicates"),
            late: count("late"),
            rejected: count("rejected"),
            conflicts: count("conflicts"),
            results: value
                .get("results")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        }
    }
}

/// Sends batches of events.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    config: ClientConfig,
}

/// A random `u64` for the backoff's jitter; without an entropy source, half the ceiling.
fn jitter_random() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::getrandom(&mut bytes).is_err() {
        return 5_000;
    }
    u64::from_le_bytes(bytes)
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Self, SdkError> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| SdkError::Invalid(format!("HTTP client: {e}")))?;
        Ok(Self { http, config })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Sends one batch (a JSON array body), retrying transient failures.
    pub async fn send_batch(&self, events: &[Value]) -> Result<BatchResult, SdkError> {
        let body = serde_json::to_vec(events).map_err(|e| SdkError::Invalid(e.to_string()))?;
        self.send_body(body).await
    }

    /// Sends a pre-encoded JSON array body.
    pub async fn send_body(&self, body: Vec<u8>) -> Result<BatchResult, SdkError> {
        let url = format!("{}/v1/events", self.config.url);
        let backoff = Backoff::new(
            self.config.backoff_initial.max(Duration::from_millis(1)),
            self.config
                .backoff_max
                .max(self.config.backoff_initial)
                .max(Duration::from_millis(1)),
        );
        let mut last_error = String::new();
        let attempts_max = self.config.attempts_max.max(1);
        for attempt in 1..=attempts_max {
            let response = self
                .http
                .post(&url)
                .bearer_auth(&self.config.token)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await;
            match response {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let text = response.text().await.unwrap_or_default();
                    if (200..300).contains(&status) {
                        let value: Value =
                            serde_json::from_str(&text).map_err(|e| SdkError::Refused {
                                status,
                                detail: format!("unreadable answer: {e}"),
                            })?;
                        return Ok(BatchResult::from_json(&value));
                    }
                    let detail = serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_owned))
                        .unwrap_or(text);
                    if status != 429 && status < 500 {
                        return Err(SdkError::Refused { status, detail });
                    }
                    last_error = format!("status {status}: {detail}");
                }
                Err(error) => last_error = error.to_string(),
            }
            if attempt < attempts_max {
                tokio::time::sleep(backoff.with_full_jitter(attempt, jitter_random())).await;
            }
        }
        Err(SdkError::Unavailable {
            attempts: attempts_max,
            last_error,
        })
    }
}
