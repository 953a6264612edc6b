//! Concurrent ingestion (issue 4): two nodes on one PostgreSQL database (on SQLite, where one
//! node owns the file, concurrent requests on that node) ingesting for the same tenants at once,
//! with overlapping event ids, keep one gap-free, duplicate-free tree per tenant. Nodes that
//! share a database must share keys.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use companyos_core::clock::ManualClock;
use companyos_core::metering::ingest::EventResult;
use companyos_core::{Actor, App};
use companyos_domain::{LogId, TenantId};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use time::Duration;

use crate::support::{
    BACKENDS, Backend, Node, START, actor, day_of, digest_of, event, settings_for,
};

const TENANTS: [&str; 3] = ["alpha", "bravo", "charlie"];
const TASKS_PER_NODE: usize = 4;
const ROUNDS: usize = 6;
const EVENTS_PER_BATCH: usize = 30;
/// Event ids per tenant: every task draws from the same pool, so nodes overlap.
const POOL: u64 = 160;

/// The content node `node` sends for id `n`: identical on both nodes, except every 17th id,
/// whose quantity depends on the node (a conflict between nodes: the first one wins).
fn content(tenant: &str, n: u64, node: usize) -> Value {
    let quantity = if n % 17 == 0 {
        format!("{}.{}", n, node + 1)
    } else {
        format!("{n}.5")
    };
    event(
        tenant,
        &format!("c-{n}"),
        &quantity,
        START - Duration::minutes(i64::try_from(n).unwrap()),
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        // std::fs::copy keeps the mode (0600) the key files must have.
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// A second node on the first one's database, with its own data dir.
async fn open_node(first: &Node, dir: &Path, copy_keys: bool) -> Result<App, String> {
    let data_dir = dir.join("data");
    if copy_keys {
        copy_dir(&first.data_dir().join("keys"), &data_dir.join("keys"));
    }
    let url = match first.backend {
        Backend::Postgres => first.database_url.clone().unwrap(),
        Backend::Sqlite => companyos_core::db::sqlite_url_in(&first.data_dir()),
    };
    let settings = settings_for(&data_dir, Some(&url));
    App::open(settings, Arc::new(ManualClock::new(START)))
        .await
        .map(|(app, report)| {
            assert!(report.admin_token.is_none(), "the admin exists already");
            app
        })
        .map_err(|e| e.to_string())
}

/// A task's events: a deterministic walk over the pool of each tenant.
fn batches(node: usize, task: usize) -> Vec<Vec<Value>> {
    let mut state = (node as u64 + 1) * 7919 + task as u64 * 104_729;
    (0..ROUNDS)
        .map(|_| {
            (0..EVENTS_PER_BATCH)
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    let tenant = TENANTS[((state >> 33) % TENANTS.len() as u64) as usize];
                    let n = (state >> 40) % POOL;
                    content(tenant, n, node)
                })
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_on_one_database_keep_one_consistent_tree_per_tenant() {
    for backend in BACKENDS {
        let first = Node::open(backend).await;
        for tenant in TENANTS {
            first.tenant(tenant).await;
        }
        let token = first.operator_token("meter", "ingest").await;
        let second_dir = tempfile::tempdir().unwrap();
        let mut nodes: Vec<(App, Actor)> =
            vec![(first.app.clone(), actor(&first.app, &token).await)];
        if backend == Backend::Postgres {
            let second = open_node(&first, second_dir.path(), true)
                .await
                .expect("a node with the first node's keys opens on its database");
            let second_actor = actor(&second, &token).await;
            nodes.push((second, second_actor));
        }
        // On SQLite the single node takes the other node's requests too.
        let node_count = 2;
        let mut handles = Vec::new();
        for node in 0..node_count {
            let (app, actor) = nodes[node % nodes.len()].clone();
            for task in 0..TASKS_PER_NODE {
                let app = app.clone();
                let actor = actor.clone();
                handles.push(tokio::spawn(async move {
                    let mut sent: Vec<(Value, EventResult)> = Vec::new();
                    for batch in batches(node, task) {
                        let raw = batch.iter().map(crate::support::raw_event).collect();
                        let outcome = app
                            .ingest(&actor, raw)
                            .await
                            .unwrap_or_else(|e| panic!("node {node} task {task}: {e}"));
                        assert_eq!(outcome.results.len(), batch.len());
                        sent.extend(batch.into_iter().zip(outcome.results));
                    }
                    sent
                }));
            }
        }
        let mut sent = Vec::new();
        for handle in handles {
            sent.extend(handle.await.unwrap());
        }

        for tenant in TENANTS {
            // Per event id: the results, and the contents sent.
            let mut by_id: BTreeMap<String, Vec<(&Value, &EventResult)>> = BTreeMap::new();
            for (json, result) in &sent {
                if json["tenant_id"] == json!(tenant) {
                    by_id
                        .entry(json["event_id"].as_str().unwrap().to_owned())
                        .or_default()
                        .push((json, result));
                }
            }
            let mut seqs = BTreeSet::new();
            let mut kept: BTreeMap<String, (u64, String, Decimal)> = BTreeMap::new();
            let mut repeats = 0;
            for (event_id, results) in &by_id {
                let accepted: Vec<_> = results
                    .iter()
                    .filter(|(_, r)| r.status.as_str() == "accepted")
                    .collect();
                assert_eq!(
                    accepted.len(),
                    1,
                    "{backend:?} {tenant}/{event_id}: exactly one acceptance, {results:?}"
                );
                let (json, result) = accepted[0];
                let seq = result.seq.unwrap();
                assert!(seqs.insert(seq), "{tenant}: seq {seq} given twice");
                let digest = result.digest.clone().unwrap();
                assert_eq!(digest, digest_of(json));
                for (other, r) in results {
                    if std::ptr::eq(*r, *result) {
                        continue;
                    }
                    repeats += 1;
                    let expected = if digest_of(other) == digest {
                        "duplicate"
                    } else {
                        "conflict"
                    };
                    assert_eq!(r.status.as_str(), expected, "{tenant}/{event_id}");
                    assert_eq!(r.seq, Some(seq), "a repeat answers the original seq");
                    assert_eq!(r.digest.as_deref(), Some(digest.as_str()));
                }
                let quantity: Decimal = json["quantity"].as_str().unwrap().parse().unwrap();
                kept.insert(event_id.clone(), (seq, digest, quantity));
            }
            let n = by_id.len() as u64;
            assert!(n > POOL / 2, "the walk covers the pool");
            assert_eq!(
                seqs,
                (0..n).collect::<BTreeSet<_>>(),
                "{backend:?} {tenant}: no gap, no duplicate leaf"
            );

            for (app, _) in &nodes {
                assert!(
                    app.ledger().verify(Some(tenant)).await.unwrap().is_empty(),
                    "{backend:?} {tenant}"
                );
            }
            let app = &first.app;
            let log_id = LogId::Usage(TenantId::parse(tenant).expect("a tenant id"));
            let size: i64 =
                sqlx::query_scalar("SELECT tree_size FROM ledger_heads WHERE log_id = $1")
                    .bind(log_id.to_string())
                    .fetch_one(app.db().readers())
                    .await
                    .unwrap();
            let mut conn = app.db().readers().acquire().await.unwrap();
            let leaves = companyos_core::bundles::count_leaves(&mut conn, &log_id)
                .await
                .unwrap();
            assert_eq!((size, leaves), (n as i64, n as i64), "{backend:?} {tenant}");
            let rows = companyos_core::bundles::read_events(&mut conn, tenant, 0, u64::MAX)
                .await
                .unwrap();
            drop(conn);
            assert_eq!(rows.len() as u64, n);
            for row in &rows {
                let (kept_seq, kept_digest, _) = &kept[&row.event_id];
                assert_eq!((row.seq, &row.digest.to_string()), (*kept_seq, kept_digest));
            }
            // The reports agree with what the results said.
            let day = day_of(START);
            let reconciliation = app
                .metering()
                .reconciliation(&first.admin, tenant, day, day)
                .await
                .unwrap();
            assert_eq!(reconciliation[0].accepted, n as i64);
            assert_eq!(
                reconciliation[0].duplicates + reconciliation[0].conflicts,
                repeats
            );
            let daily = app
                .metering()
                .daily_usage(&first.admin, tenant, day, day)
                .await
                .unwrap();
            assert_eq!(daily.len(), 1);
            assert_eq!(daily[0].events, n as i64);
            assert_eq!(
                daily[0].quantity.normalize(),
                kept.values().map(|k| k.2).sum::<Decimal>().normalize()
            );
        }

        // A node with keys of its own is refused by the database, naming the key.
        let stranger_dir = tempfile::tempdir().unwrap();
        let refused = open_node(&first, stranger_dir.path(), false).await;
        match refused {
            Ok(_) => panic!("{backend:?}: a node with other keys opened"),
            Err(message) => assert!(message.contains("key"), "{message}"),
        }
        for (app, _) in nodes.into_iter().skip(1) {
            app.db().close().await;
        }
        first.close().await;
    }
}
