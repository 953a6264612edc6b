//! The dedupe key index (issue 4): duplicates and conflicts are found whether the original sits
//! in the merged on-disk index or in SQLite's in-memory tail, after a restart, when another
//! process wrote to the same SQLite file, and after a purge deleted the newest bundles.

use companyos_core::lifecycle::{LifecycleOutcome, LifecycleRequest};
use companyos_core::{Actor, App};

use companyos_domain::tenant::LifecycleAction;
use serde_json::Value;
use time::Duration;

use crate::support::{
    BACKENDS, Backend, Node, START, actor, event, ingest, settings_for, statuses,
};

fn events(tenant: &str, prefix: &str, count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| {
            event(
                tenant,
                &format!("{prefix}-{i:04}"),
                "2",
                START - Duration::minutes(i as i64 % 50),
            )
        })
        .collect()
}

/// The same events with another quantity: conflicts of the originals.
fn conflicting(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e["quantity"] = Value::from("3");
            e
        })
        .collect()
}

async fn expect_all(app: &App, actor: &Actor, batch: &[Value], status: &str, context: &str) {
    let outcome = ingest(app, actor, batch).await;
    let got = statuses(&outcome);
    assert!(
        got.iter().all(|s| *s == status),
        "{context}: expected every event {status}, got {got:?}"
    );
}

/// With a tail of 7 rows, merges happen every few batches: originals are found in the merged
/// index, in the tail, and across both, on both engines (PostgreSQL ignores the setting).
#[tokio::test]
async fn duplicates_and_conflicts_across_merges() {
    for backend in BACKENDS {
        let node = Node::open_with(backend, |s| s.dedupe_tail_rows_max = 7).await;
        let meter = node.operator("meter", "ingest").await;
        node.tenant("acme").await;
        node.tenant("globex").await;
        let mut sent = Vec::new();
        for round in 0..6 {
            let mut batch = events("acme", &format!("r{round}"), 5);
            batch.extend(events("globex", &format!("r{round}"), 4));
            expect_all(&node.app, &meter, &batch, "accepted", "first send").await;
            // Everything sent so far, some merged and some still in the tail.
            expect_all(&node.app, &meter, &sent, "duplicate", "resend").await;
            expect_all(
                &node.app,
                &meter,
                &conflicting(&sent),
                "conflict",
                "changed resend",
            )
            .await;
            sent.extend(batch);
        }
        if backend == Backend::Sqlite {
            let indexed: i64 =
                sqlx::query_scalar("SELECT indexed_bundle_id FROM usage_key_index WHERE id = 1")
                    .fetch_one(node.app.db().readers())
                    .await
                    .unwrap();
            assert!(indexed > 4, "merges ran: indexed up to bundle {indexed}");
            // Runs of level 0 were compacted into bigger ones (ADR 0007), and the index holds
            // every stored event exactly once.
            let top_level: i64 =
                sqlx::query_scalar("SELECT MAX(level) FROM usage_key_runs WHERE state = 'live'")
                    .fetch_one(node.app.db().readers())
                    .await
                    .unwrap();
            assert!(top_level >= 1, "compactions ran: top level {top_level}");
            let (in_runs, stored): (i64, i64) = (
                sqlx::query_scalar(
                    "SELECT COALESCE(SUM(key_count), 0) FROM usage_key_runs WHERE state = 'live'",
                )
                .fetch_one(node.app.db().readers())
                .await
                .unwrap(),
                sqlx::query_scalar(
                    "SELECT COALESCE(SUM(event_count), 0) FROM usage_event_bundles WHERE id <= \
                     (SELECT indexed_bundle_id FROM usage_key_index WHERE id = 1)",
                )
                .fetch_one(node.app.db().readers())
                .await
                .unwrap(),
            );
            assert_eq!(
                in_runs, stored,
                "every indexed event has one key in the runs"
            );
        }
        let problems = node.app.ledger().verify(None).await.unwrap();
        assert!(problems.is_empty(), "{backend:?}: {problems:?}");
        node.close().await;
    }
}

/// A restarted node rebuilds its tail from the table; a second process writing to the same
/// SQLite file is noticed by the first before it relies on its memory.
#[tokio::test]
async fn tail_survives_restarts_and_other_writers() {
    let node = Node::open_with(Backend::Sqlite, |s| s.dedupe_tail_rows_max = 1000).await;
    let token = node.operator_token("meter", "ingest").await;
    let meter = actor(&node.app, &token).await;
    node.tenant("acme").await;
    let first = events("acme", "a", 20);
    expect_all(&node.app, &meter, &first, "accepted", "first node").await;

    // A second service layer on the same file, as a second process would be.
    let settings = settings_for(&node.data_dir(), None);
    let (other, _) = App::open(settings, node.clock.clone()).await.unwrap();
    let other_meter = actor(&other, &token).await;
    expect_all(
        &other,
        &other_meter,
        &first,
        "duplicate",
        "second node, tail",
    )
    .await;
    let second = events("acme", "b", 20);
    expect_all(&other, &other_meter, &second, "accepted", "second node").await;
    // The first node's tail did not see these rows being written: a proof lookup and the
    // next ingestion both catch up with the table.
    if let Err(error) = node
        .app
        .ledger()
        .inclusion_proof(&node.admin, "acme", "b-0003", None)
        .await
    {
        panic!("proof of an event the other node stored: {error}");
    }
    expect_all(&node.app, &meter, &second, "duplicate", "first node again").await;
    expect_all(
        &node.app,
        &meter,
        &conflicting(&second),
        "conflict",
        "first node, changed",
    )
    .await;
    other.db().close().await;

    // Restart: a fresh tail, loaded from the rows above the indexed rowid.
    let data_dir = node.data_dir();
    node.app.db().close().await;
    let (restarted, _) = App::open(settings_for(&data_dir, None), node.clock.clone())
        .await
        .unwrap();
    let meter = actor(&restarted, &token).await;
    let mut all = first.clone();
    all.extend(second);
    expect_all(&restarted, &meter, &all, "duplicate", "after restart").await;
    let problems = restarted.ledger().verify(None).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    restarted.db().close().await;
}

/// Purging the tenant whose bundles are the newest deletes them and their keys; events stored
/// afterwards must still be found, and so must the other tenant's older ones.
#[tokio::test]
async fn purge_keeps_dedupe_of_later_and_older_events() {
    let node = Node::open_with(Backend::Sqlite, |s| s.dedupe_tail_rows_max = 10).await;
    let meter = node.operator("meter", "ingest").await;
    node.tenant("acme").await;
    node.tenant("globex").await;
    let kept = events("acme", "k", 12);
    expect_all(&node.app, &meter, &kept, "accepted", "kept tenant").await;
    let purged = events("globex", "p", 15);
    expect_all(&node.app, &meter, &purged, "accepted", "tenant to purge").await;

    // Delete and purge, each approved by a second admin (four eyes; neither created the other).
    let first = node.operator("first-admin", "admin").await;
    let second = node.operator("second-admin", "admin").await;
    for action in [LifecycleAction::Delete, LifecycleAction::Purge] {
        let outcome = node
            .app
            .lifecycle()
            .transition(
                &first,
                "globex",
                action,
                LifecycleRequest {
                    reason: Some("dedupe test".to_owned()),
                    confirm: Some("globex".to_owned()),
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{action:?}: {e}"));
        if let LifecycleOutcome::PendingApproval(approval) = outcome {
            node.app
                .approvals()
                .approve(&second, &approval.id, None)
                .await
                .unwrap_or_else(|e| panic!("approve {action:?}: {e}"));
        }
    }
    let status = node
        .app
        .lifecycle()
        .get(&node.admin, "globex")
        .await
        .unwrap();
    assert_eq!(status.status.as_str(), "purged");
    let remaining: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM usage_event_bundles WHERE tenant_id = 'globex'")
            .fetch_one(node.app.db().readers())
            .await
            .unwrap();
    assert_eq!(remaining, 0, "the purged tenant's payloads are gone");
    // Its keys in the immutable runs now point at bundles that no longer exist (a lookup
    // finds no event there); its proofs still come from the leaves, which stay.
    if let Err(error) = node
        .app
        .ledger()
        .inclusion_proof(&node.admin, "globex", "p-0003", None)
        .await
    {
        panic!("proof of a purged tenant's event: {error}");
    }

    // New bundles after the purge are tail bundles, found as such.
    let later = events("acme", "l", 30);
    expect_all(&node.app, &meter, &later, "accepted", "after purge").await;
    expect_all(&node.app, &meter, &later, "duplicate", "resend after purge").await;
    expect_all(
        &node.app,
        &meter,
        &kept,
        "duplicate",
        "resend of older rows",
    )
    .await;
    node.close().await;
}

/// Compactions that take many steps (one block a step here) go on between group commits and
/// across restarts; every key stays findable exactly once (ADR 0007). The crash in the middle
/// of a compaction is tested step by step in `dedupe::tests`.
#[tokio::test]
async fn compactions_take_steps_and_survive_restarts() {
    let configure = |s: &mut companyos_core::Settings| {
        s.dedupe_tail_rows_max = 250;
        s.dedupe_compaction_step_blocks = 1;
    };
    let node = Node::open_with(Backend::Sqlite, configure).await;
    let token = node.operator_token("meter", "ingest").await;
    node.tenant("acme").await;
    node.tenant("globex").await;
    let data_dir = node.data_dir();
    let clock = node.clock.clone();
    let mut app = node.app.clone();
    let mut meter = actor(&app, &token).await;
    let mut sent: Vec<Value> = Vec::new();
    for round in 0..16 {
        let mut batch = events("acme", &format!("c{round}"), 170);
        batch.extend(events("globex", &format!("c{round}"), 130));
        expect_all(&app, &meter, &batch, "accepted", "new events").await;
        if round % 5 == 4 {
            // Restart at once, whatever the compaction was doing.
            app.db().close().await;
            let mut settings = settings_for(&data_dir, None);
            configure(&mut settings);
            app = App::open(settings, clock.clone()).await.unwrap().0;
            meter = actor(&app, &token).await;
        }
        expect_all(&app, &meter, &sent, "duplicate", "resend").await;
        sent.extend(batch);
    }
    // Let the writer finish what is due, then check the runs hold every indexed key once.
    expect_all(&app, &meter, &sent, "duplicate", "final resend").await;
    let readers = app.db().readers();
    let top_level: i64 =
        sqlx::query_scalar("SELECT MAX(level) FROM usage_key_runs WHERE state = 'live'")
            .fetch_one(readers)
            .await
            .unwrap();
    assert!(
        top_level >= 1,
        "compactions finished: top level {top_level}"
    );
    let in_runs: i64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM(key_count), 0) FROM usage_key_runs WHERE state = 'live'",
    )
    .fetch_one(readers)
    .await
    .unwrap();
    let indexed: i64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM(event_count), 0) FROM usage_event_bundles WHERE id <= \
         (SELECT indexed_bundle_id FROM usage_key_index WHERE id = 1)",
    )
    .fetch_one(readers)
    .await
    .unwrap();
    assert_eq!(
        in_runs, indexed,
        "every indexed event has one key in the live runs"
    );
    let blocks: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_key_blocks")
        .fetch_one(readers)
        .await
        .unwrap();
    let live_blocks: i64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM(block_count), 0) FROM usage_key_runs WHERE state = 'live'",
    )
    .fetch_one(readers)
    .await
    .unwrap();
    let unfinished: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM usage_key_runs WHERE state = 'building'")
            .fetch_one(readers)
            .await
            .unwrap();
    assert!(
        blocks >= live_blocks && unfinished <= 1,
        "at most the run of a compaction in progress besides the live ones: {blocks} blocks, \
         {live_blocks} live, {unfinished} unfinished runs"
    );
    let problems = app.ledger().verify(None).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    app.db().close().await;
}
