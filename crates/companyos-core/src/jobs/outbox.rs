//! The transactional outbox: messages to boundary drivers and webhooks are written in the
//! transaction of the change they announce, and delivered afterwards with retries and
//! exponential backoff by the outbox job, so a change is never announced unless committed, and
//! never committed without being announced.

use companyos_domain::time_util::to_micros;
use serde_json::{Value, json};
use sqlx::{AnyConnection, Row as _};
use time::OffsetDateTime;

use crate::app::App;
use crate::app::Jobs;
use crate::db::StoreError;
use crate::error::ServiceError;
use crate::jobs::outbound::OutboundPolicy;
use crate::lifecycle::boundary::{tenant_dir, webhook_signature};
use crate::settings::BoundaryDriverSettings;
use crate::util::new_id;
use companyos_domain::backoff::Backoff;

/// Messages delivered per job run.
pub const DELIVERIES_PER_RUN_MAX: i64 = 100;
/// Upper bound on the backoff between attempts.
pub const BACKOFF_MAX_SECONDS: i64 = 3600;

/// The outbox's retry schedule: 2 s, 4 s, 8 s ... up to [`BACKOFF_MAX_SECONDS`]; no jitter, so
/// a test that moves the clock knows when the next attempt is due.
fn outbox_backoff() -> Backoff {
    Backoff::new(
        std::time::Duration::from_secs(2),
        std::time::Duration::from_secs(BACKOFF_MAX_SECONDS.unsigned_abs()),
    )
}

/// Queues a message in the caller's transaction.
pub async fn enqueue(
    conn: &mut AnyConnection,
    now: OffsetDateTime,
    topic: &str,
    tenant_id: Option<&str>,
    destination: &str,
    payload: Value,
) -> Result<String, StoreError> {
    let id = new_id("obx", now);
    sqlx::query(
        "INSERT INTO outbox (id, topic, tenant_id, destination, payload, created_at, attempts, \
         next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7)",
    )
    .bind(id.as_str())
    .bind(topic)
    .bind(tenant_id)
    .bind(destination)
    .bind(payload.to_string())
    .bind(to_micros(now))
    .bind(to_micros(now))
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

struct Message {
    id: String,
    topic: String,
    tenant_id: Option<String>,
    destination: String,
    payload: String,
    attempts: i64,
}

impl App {
    async fn deliver(&self, message: &Message) -> Result<(), String> {
        let http = &self.inner.outbound_http;
        let policy = &self.settings().outbound;
        match message.destination.as_str() {
            "driver" => match &self.settings().boundary_driver {
                BoundaryDriverSettings::Webhook { url, secret } => {
                    post_signed(http, policy, url, secret, message, self.now()).await
                }
                BoundaryDriverSettings::Directory => {
                    // The directory driver's workloads read their desired state from a file.
                    let Some(tenant_id) = &message.tenant_id else {
                        return Ok(());
                    };
                    let dir = tenant_dir(self.data_dir(), tenant_id);
                    if !dir.exists() {
                        return Ok(());
                    }
                    let file = dir.join(format!("{}.json", message.topic));
                    tokio::fs::write(&file, &message.payload)
                        .await
                        .map_err(|e| format!("write {}: {e}", file.display()))
                }
                BoundaryDriverSettings::Postgres => Ok(()),
            },
            url if url.starts_with("http://") || url.starts_with("https://") => {
                let secret = message
                    .tenant_id
                    .as_deref()
                    .map(|t| self.jobs().audit_hook_secret(t))
                    .unwrap_or_default();
                post_signed(http, policy, url, &secret, message, self.now()).await
            }
            other => Err(format!("unknown destination {other:?}")),
        }
    }
}

impl Jobs<'_> {
    /// Delivers due outbox messages (the outbox job). Returns how many were delivered.
    /// Every delivery goes through the App's guarded client (`outbound`): internal addresses
    /// are refused unless allowed, and redirects are not followed.
    pub async fn deliver_outbox(&self) -> Result<usize, ServiceError> {
        let now = self.now();
        let rows = sqlx::query(
            "SELECT id, topic, tenant_id, destination, payload, attempts FROM outbox \
             WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $1 \
             ORDER BY id LIMIT $2",
        )
        .bind(to_micros(now))
        .bind(DELIVERIES_PER_RUN_MAX)
        .fetch_all(self.db().readers())
        .await?;
        let mut delivered = 0;
        for row in rows {
            let message = Message {
                id: row.try_get("id")?,
                topic: row.try_get("topic")?,
                tenant_id: row.try_get("tenant_id")?,
                destination: row.try_get("destination")?,
                payload: row.try_get("payload")?,
                attempts: row.try_get("attempts")?,
            };
            let result = self.deliver(&message).await;
            let now = self.now();
            match result {
                Ok(()) => {
                    sqlx::query("UPDATE outbox SET delivered_at = $1, attempts = $2 WHERE id = $3")
                        .bind(to_micros(now))
                        .bind(message.attempts + 1)
                        .bind(message.id.as_str())
                        .execute(self.db().writer())
                        .await?;
                    delivered += 1;
                }
                Err(error) => {
                    let attempts = message.attempts + 1;
                    let exhausted = attempts >= i64::from(self.settings().outbox_attempts_max);
                    let backoff =
                        outbox_backoff().ceiling(u32::try_from(attempts).unwrap_or(u32::MAX));
                    sqlx::query(
                        "UPDATE outbox SET attempts = $1, next_attempt_at = $2, last_error = $3, \
                         failed_at = $4 WHERE id = $5",
                    )
                    .bind(attempts)
                    .bind(to_micros(now + backoff))
                    .bind(error.as_str())
                    .bind(exhausted.then(|| to_micros(now)))
                    .bind(message.id.as_str())
                    .execute(self.db().writer())
                    .await?;
                    tracing::warn!(outbox_id = %message.id, topic = %message.topic, attempts, %error, "outbox delivery failed");
                }
            }
        }
        Ok(delivered)
    }

    /// The HMAC key of a tenant's audit webhook: not stored anywhere, derived from the tenant id
    /// and the checkpoint key, so the tenant gets it once in its dossier and we can recompute it.
    pub fn audit_hook_secret(&self, tenant_id: &str) -> String {
        let seed = self.keys().checkpoint.to_signer_key();
        companyos_ledger::hash::sha256(format!("audit-hook\n{tenant_id}\n{seed}").as_bytes())
            .to_hex()
    }

    /// Pending and failed outbox messages, for operators.
    pub async fn outbox_backlog(&self) -> Result<OutboxBacklog, ServiceError> {
        let pending: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL AND failed_at IS NULL",
        )
        .fetch_one(self.db().readers())
        .await?;
        let failed: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE failed_at IS NOT NULL")
                .fetch_one(self.db().readers())
                .await?;
        Ok(OutboxBacklog { pending, failed })
    }
}

/// How many outbox messages wait for delivery and how many failed for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxBacklog {
    pub pending: i64,
    pub failed: i64,
}

async fn post_signed(
    http: &reqwest::Client,
    policy: &OutboundPolicy,
    url: &str,
    secret: &str,
    message: &Message,
    now: OffsetDateTime,
) -> Result<(), String> {
    // Checked again at delivery: the resolver sees names only, never an IP literal, and the
    // allow-list may have narrowed since the URL was stored.
    let url = policy
        .check_url(url)
        .map_err(|why| format!("refused {url}: {why}"))?;
    let body = json!({
        "id": message.id,
        "topic": message.topic,
        "tenant_id": message.tenant_id,
        "payload": serde_json::from_str::<Value>(&message.payload).unwrap_or(Value::Null),
    })
    .to_string();
    let timestamp = now.unix_timestamp();
    let response = http
        .post(url.clone())
        .header("content-type", "application/json")
        .header("x-companyos-id", message.id.as_str())
        .header("x-companyos-timestamp", timestamp.to_string())
        .header(
            "x-companyos-signature",
            webhook_signature(secret, timestamp, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("POST {url}: status {}", response.status()))
    }
}
