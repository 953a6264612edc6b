//! `companyos-bench http`: `POST /v1/events` over loopback HTTP from concurrent keep-alive
//! clients, beside the naive INSERT baseline.

use std::time::{Duration as StdDuration, Instant};

use serde_json::{Value, json};

use crate::args::{HttpArgs, HttpLoadArgs};
use crate::baseline::{naive_baseline, record_baseline};
use crate::fixture::{LoopbackServer, batch_bodies, fixture, peak_memory_kib, rate, settle_store};

/// `companyos-bench http`: the batches split over the clients, sent after the store settled.
pub(crate) async fn http(args: &HttpArgs) -> anyhow::Result<u8> {
    let HttpArgs {
        load:
            HttpLoadArgs {
                backend,
                events,
                clients,
                batch,
                tenants,
            },
        no_baseline,
    } = args;
    let (events, clients, batch, tenants) = (*events, *clients, *batch, *tenants);
    let fixture = fixture(backend, None, tenants).await?;
    let created = fixture
        .app
        .operators()
        .create(&fixture.admin, "bench-http", "ingest")
        .await?;
    let server = LoopbackServer::start(&fixture.app).await?;
    let url = format!("http://{}/v1/events", server.address);
    let per_client = client_bodies(events, batch, tenants, clients);
    settle_store(&fixture).await?;
    let (elapsed, accepted) = post_from_clients(&url, &created.token, per_client).await?;
    server.stop().await;
    let mut result = json!({
        "bench": "http", "backend": backend, "events": events, "accepted": accepted,
        "clients": clients, "batch": batch, "seconds": elapsed.as_secs_f64(),
        "events_per_second": rate(events, elapsed).round(),
    });
    if !no_baseline {
        let baseline = naive_baseline(&fixture, events, batch, tenants, 0).await?;
        record_baseline(&mut result, events, elapsed, baseline);
    }
    result["peak_memory_mib"] = json!(peak_memory_kib() / 1024);
    println!("{}", serde_json::to_string(&result)?);
    fixture.close().await?;
    Ok(0)
}

/// The batch bodies of `events` events, dealt to `clients` clients in turn.
fn client_bodies(events: usize, batch: usize, tenants: usize, clients: usize) -> Vec<Vec<Vec<u8>>> {
    let bodies = batch_bodies(events, batch, tenants);
    (0..clients.max(1))
        .map(|c| {
            bodies
                .iter()
                .skip(c)
                .step_by(clients.max(1))
                .cloned()
                .collect()
        })
        .collect()
}

/// Each client posts its bodies in order on one keep-alive connection; the time until the
/// last answer and the events accepted.
async fn post_from_clients(
    url: &str,
    token: &str,
    per_client: Vec<Vec<Vec<u8>>>,
) -> anyhow::Result<(StdDuration, u64)> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client_bodies in per_client {
        let url = url.to_owned();
        let token = token.to_owned();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut accepted = 0u64;
            for body in client_bodies {
                let response = http
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                let value: Value = response.json().await?;
                accepted += value["accepted"].as_u64().unwrap_or(0);
            }
            Ok::<_, reqwest::Error>(accepted)
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        accepted += task.await??;
    }
    Ok((started.elapsed(), accepted))
}
