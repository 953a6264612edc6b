//! Forward auth's per-node answer cache (issue 16, ADR 0011): an answer is served from memory
//! until a committed change of its tenant (suspension, reactivation, usage) ends it on this
//! node at once; another node's change reaches it within the cache's time bound; a refusal
//! served from the cache is counted into one aggregate audit record; both engines.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use companyos_core::billing::ForwardAuthRequest;
use companyos_core::clock::ManualClock;
use companyos_core::lifecycle::LifecycleRequest;
use companyos_core::{App, ServiceError};
use companyos_domain::tenant::LifecycleAction;
use sqlx::Row as _;

use crate::support::{BACKENDS, Backend, Node, START, event, ingest, settings_for};

/// Asks forward auth with no feature or metric; the status it would answer.
async fn check(app: &App, key: &str) -> u16 {
    let answer = app
        .billing()
        .forward_auth_request(ForwardAuthRequest {
            token: Some(key),
            request_id: None,
            route: "route:/v1/authz/check",
            source: None,
            channel: None,
            feature: None,
            metric: None,
        })
        .await;
    match answer {
        Ok(_) => 200,
        Err(ServiceError::Forbidden(_)) => 403,
        Err(ServiceError::RateLimited { .. }) => 429,
        Err(ServiceError::Unauthenticated(_)) => 401,
        Err(other) => panic!("unexpected answer {other:?}"),
    }
}

async fn lifecycle(node: &Node, tenant: &str, action: LifecycleAction) {
    node.app
        .lifecycle()
        .transition(
            &node.admin,
            tenant,
            action,
            LifecycleRequest {
                reason: Some("test".to_owned()),
                confirm: None,
            },
        )
        .await
        .expect("lifecycle action");
}

async fn audit_count(app: &App, action: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE action = $1")
        .bind(action)
        .fetch_one(app.db().readers())
        .await
        .expect("count audit records")
}

#[tokio::test]
async fn this_nodes_changes_end_cached_answers_at_once() {
    for backend in BACKENDS {
        let node = Node::open(backend).await;
        let key = node.tenant("acme").await;
        let hits = || {
            node.app
                .metrics()
                .total("companyos_forward_auth_cache_hits_total")
        };
        assert_eq!(check(&node.app, &key).await, 200);
        assert_eq!(check(&node.app, &key).await, 200);
        assert_eq!(
            hits(),
            1,
            "{backend:?}: the second answer comes from the cache"
        );

        // Suspension is seen by the very next request, not after the cache's time bound.
        lifecycle(&node, "acme", LifecycleAction::Suspend).await;
        assert_eq!(check(&node.app, &key).await, 403, "{backend:?}");
        // The refusal was decided and audited once; the same question again is answered from
        // the cache and only counted.
        assert_eq!(check(&node.app, &key).await, 403);
        assert_eq!(check(&node.app, &key).await, 403);
        assert_eq!(hits(), 3);
        assert_eq!(
            audit_count(&node.app, "authz.check").await,
            1,
            "{backend:?}"
        );
        assert_eq!(node.app.billing().flush_refusals().await.unwrap(), 1);
        assert_eq!(node.app.billing().flush_refusals().await.unwrap(), 0);
        let row = sqlx::query(
            "SELECT tenant_id, outcome, details FROM audit_events \
             WHERE action = 'authz.check.aggregate'",
        )
        .fetch_one(node.app.db().readers())
        .await
        .unwrap();
        assert_eq!(row.get::<String, _>("tenant_id"), "acme");
        assert_eq!(row.get::<String, _>("outcome"), "denied");
        let details: serde_json::Value =
            serde_json::from_str(&row.get::<String, _>("details")).unwrap();
        assert_eq!(details["count"], 2, "{details}");
        assert_eq!(details["status"], 403);

        lifecycle(&node, "acme", LifecycleAction::Reactivate).await;
        assert_eq!(check(&node.app, &key).await, 200, "{backend:?}");
        // Ingestion for the tenant ends its answers too (its quota state moved).
        let before = hits();
        let ingest_actor = node.operator("meter", "ingest").await;
        ingest(&node.app, &ingest_actor, &[event("acme", "e1", "1", START)]).await;
        assert_eq!(check(&node.app, &key).await, 200);
        assert_eq!(
            hits(),
            before,
            "{backend:?}: recomputed after the usage commit"
        );
        node.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_nodes_change_is_seen_within_the_time_bound() {
    let ttl = StdDuration::from_millis(300);
    let node = Node::open_with(Backend::Postgres, |settings| {
        settings.forward_auth_cache = ttl;
    })
    .await;
    let key = node.tenant("acme").await;
    let second_dir = tempfile::tempdir().unwrap();
    let data_dir = second_dir.path().join("data");
    std::fs::create_dir_all(data_dir.join("keys")).unwrap();
    for entry in std::fs::read_dir(node.data_dir().join("keys")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), data_dir.join("keys").join(entry.file_name())).unwrap();
    }
    let mut settings = settings_for(&data_dir, node.database_url.as_deref());
    settings.forward_auth_cache = ttl;
    let (second, _) = App::open(settings, Arc::new(ManualClock::new(START)))
        .await
        .unwrap();
    assert_eq!(check(&second, &key).await, 200);
    // Suspended through the first node: the second sees it once its answer is older than the
    // bound (it may or may not before; it must after).
    lifecycle(&node, "acme", LifecycleAction::Suspend).await;
    tokio::time::sleep(ttl + StdDuration::from_millis(50)).await;
    assert_eq!(check(&second, &key).await, 403);
    second.db().close().await;
    node.close().await;
}

#[tokio::test]
async fn a_zero_bound_reads_the_store_every_time() {
    let node = Node::open_with(Backend::Sqlite, |settings| {
        settings.forward_auth_cache = StdDuration::ZERO;
    })
    .await;
    let key = node.tenant("acme").await;
    for _ in 0..3 {
        assert_eq!(check(&node.app, &key).await, 200);
    }
    assert_eq!(
        node.app
            .metrics()
            .total("companyos_forward_auth_cache_hits_total"),
        0
    );
    node.close().await;
}
