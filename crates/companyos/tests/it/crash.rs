//! Crash recovery (issue 4): kill -9 the server during a 100,000-event send by the SDK; after a
//! restart every event the server acknowledged is present exactly once, the SDK's retries and
//! spool complete the rest, and every tree verifies.

use std::process::Command;
use std::time::Duration;

use companyos_sdk::{Client, ClientConfig, Emitter, EmitterConfig, EventBuilder};

use crate::support::{Server, binary, free_port, operator, tenant};

const EVENTS: u64 = 100_000;
const TENANTS: [&str; 4] = ["alpha", "bravo", "charlie", "delta"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_mid_send_loses_and_duplicates_nothing_on_sqlite() {
    kill_dash_nine_mid_send(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_mid_send_loses_and_duplicates_nothing_on_postgres() {
    let url = companyos_test_support::postgres::fresh_database("companyos_test").await;
    kill_dash_nine_mid_send(Some(&url)).await;
    let _ = companyos_test_support::postgres::drop_database(&url).await;
}

async fn kill_dash_nine_mid_send(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let listen = format!("127.0.0.1:{}", free_port());
    let env: Vec<(&str, &str)> = database_url
        .map(|url| vec![("COMPANYOS_DATABASE_URL", url)])
        .unwrap_or_default();
    let mut server = Server::start(&data, &listen, &env);
    for id in TENANTS {
        tenant(&server, id);
    }
    let token = operator(&server, "meter", "ingest");
    let admin = server.admin_token.clone().unwrap();

    let mut config = ClientConfig::new(&server.url, &token);
    config.attempts_max = 4;
    config.backoff_max = Duration::from_millis(500);
    let emitter = Emitter::start(
        Client::new(config).unwrap(),
        EmitterConfig {
            batch_events_max: 1000,
            flush_interval: Duration::from_millis(200),
            queue_capacity: 2000,
            spool_dir: Some(dir.path().join("spool")),
            unavailable_pause: Duration::from_millis(200),
            ..EmitterConfig::default()
        },
    )
    .unwrap();
    let url = server.url.clone();
    let counted = |admin: String, url: String| async move {
        let http = reqwest::Client::new();
        let today = companyos_domain::time_util::format_day(time::OffsetDateTime::now_utc().date());
        let mut total = 0;
        for id in TENANTS {
            let rows: serde_json::Value = http
                .get(format!(
                    "{url}/v1/tenants/{id}/reconciliation?from={today}&to={today}"
                ))
                .bearer_auth(&admin)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            total += rows[0]["accepted"].as_u64()?;
        }
        Some(total)
    };
    let producer = tokio::spawn(async move {
        for n in 0..EVENTS {
            let tenant = TENANTS[(n % 4) as usize];
            let event = EventBuilder::new(tenant, "api", "requests", "1", "request")
                .event_id(&format!("crash-{n}"))
                .request_id("r")
                .build()
                .unwrap();
            emitter.emit(event).await.unwrap();
        }
        emitter.shutdown().await.unwrap()
    });
    // Kill the server hard once a good part of the events are committed.
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if counted(admin.clone(), url.clone()).await.unwrap_or(0) >= 20_000 {
            break;
        }
    }
    server.kill_hard();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let restarted = Server::start(&data, &listen, &env);
    let stats = producer.await.unwrap();
    assert!(stats.accepted <= EVENTS, "{stats:?}");
    assert!(
        stats.accepted + stats.duplicates >= EVENTS,
        "every event was confirmed: {stats:?}"
    );
    assert_eq!(stats.rejected + stats.conflicts, 0, "{stats:?}");
    // Exactly once: every event id stored once, the trees hold exactly the events.
    assert_eq!(
        counted(admin.clone(), restarted.url.clone()).await,
        Some(EVENTS)
    );
    drop(restarted);
    let mut verify = Command::new(binary());
    verify.args(["ledger", "verify", "--data-dir"]).arg(&data);
    match database_url {
        Some(url) => verify.env("COMPANYOS_DATABASE_URL", url),
        None => verify.env_remove("COMPANYOS_DATABASE_URL"),
    };
    let output = verify.output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}
