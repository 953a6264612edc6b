//! Emits signed usage events with the SDK's batching, retrying, spooling emitter.
//!
//! ```sh
//! COMPANYOS_URL=http://127.0.0.1:8080 COMPANYOS_TOKEN=<ingest operator token> \
//!   cargo run -p companyos-sdk --example emit -- acme 100
//! ```
//! It registers a source (a new Ed25519 key) for service `api`, then emits `COUNT` signed events
//! for `TENANT` with gap-free `source_seq` counters. Events are spooled under `./emit-spool`
//! until the server confirms them, so killing this program loses nothing: run it again and the
//! spool is resent (the server answers the repeats as duplicates).

use std::time::Duration;

use companyos_sdk::{Client, ClientConfig, Emitter, EmitterConfig, EventBuilder, SourceKey};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let tenant = args.next().unwrap_or_else(|| "acme".to_owned());
    let count: u64 = args.next().map_or(Ok(100), |n| n.parse())?;
    let url = std::env::var("COMPANYOS_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".to_owned());
    let token = std::env::var("COMPANYOS_TOKEN")
        .map_err(|_| "set COMPANYOS_TOKEN to an ingest operator token")?;

    let key = SourceKey::generate(&format!(
        "emit-example-{}",
        companyos_sdk::event::random_event_id()
    ));
    let registration = reqwest::Client::new()
        .post(format!("{url}/v1/sources"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"id": key.id(), "service": "api", "public_key": key.public_key_base64()}))
        .send()
        .await?;
    if !registration.status().is_success() {
        return Err(format!(
            "registering the source failed: {}",
            registration.text().await?
        )
        .into());
    }

    let client = Client::new(ClientConfig::new(&url, &token))?;
    let emitter = Emitter::start(
        client,
        EmitterConfig {
            batch_events_max: 500,
            flush_interval: Duration::from_millis(500),
            spool_dir: Some("emit-spool".into()),
            ..EmitterConfig::default()
        },
    )?;
    for seq in 1..=count {
        let event = EventBuilder::new(&tenant, "api", "requests", "1", "request")
            .source(key.id(), seq)
            .attribute("route", "/v1/orders")
            .sign(&key)?;
        emitter.emit(event).await?;
    }
    let stats = emitter.shutdown().await?;
    println!("{stats:?}");
    Ok(())
}
