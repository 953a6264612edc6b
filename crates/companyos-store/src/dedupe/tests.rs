//! Unit tests of the key index: the multimap, runs, compaction steps and restarts.

use super::sqlite::TailKeys;
use super::*;
use companyos_ledger::leaf::EventClass;

/// Writes `count` events of `tenant` as one bundle and takes their keys into the tail, as
/// the ingestion writer does; returns the keys.
async fn append(
    db: &crate::db::Db,
    index: &mut SqliteKeyIndex,
    tenant: &str,
    first: u64,
    count: u64,
) -> Vec<i64> {
    let ids: Vec<String> = (first..first + count).map(|i| format!("e-{i}")).collect();
    let keys: Vec<i64> = ids
        .iter()
        .map(|id| crate::dedupe::event_key(tenant, id))
        .collect();
    let events: Vec<bundles::NewEvent<'_>> = ids
        .iter()
        .zip(&keys)
        .map(|(id, key)| bundles::NewEvent {
            key: *key,
            event_id: id,
            class: EventClass::OnTime,
            flags: &[],
            canonical: "{}",
            source_signature: None,
        })
        .collect();
    let mut tx = db.begin().await.expect("begin");
    index.sync(&mut tx).await.expect("sync");
    let written = bundles::write_events(&mut tx, &[(tenant, first, events)], 0)
        .await
        .expect("write");
    tx.commit().await.expect("commit");
    index.committed(&written);
    keys
}

async fn merge(db: &crate::db::Db, index: &mut SqliteKeyIndex) {
    let mut tx = db.begin().await.expect("begin");
    let change = index.merge(&mut tx).await.expect("merge");
    tx.commit().await.expect("commit");
    index.apply(change);
}

async fn step(db: &crate::db::Db, index: &mut SqliteKeyIndex) -> bool {
    let mut tx = db.begin().await.expect("begin");
    let change = index.compaction_step(&mut tx, 1).await.expect("step");
    let finished = matches!(change, IndexChange::Compacted { finished: Some(_) });
    tx.commit().await.expect("commit");
    index.apply(change);
    finished
}

async fn found_keys(db: &crate::db::Db, index: &mut SqliteKeyIndex, keys: &[i64]) -> usize {
    let mut conn = db.readers().acquire().await.expect("connection");
    index.sync(&mut conn).await.expect("sync");
    let mut sorted = keys.to_vec();
    sorted.sort_unstable();
    lookup(&mut conn, index, &sorted)
        .await
        .expect("lookup")
        .len()
}

/// Runs are written, found, compacted a block at a time; a process that stops half-way
/// through a compaction leaves an unfinished run that no lookup reads, and the next
/// process's compaction deletes it first and finishes with every key exactly once.
#[tokio::test]
async fn compaction_survives_a_crash_half_way() {
    let temp = tempfile::tempdir().expect("temp dir");
    let url = crate::db::sqlite_url_in(temp.path());
    let db = crate::db::Db::connect(&url, crate::db::PoolOptions::default())
        .await
        .expect("store");
    let mut index = SqliteKeyIndex::default();
    let mut all = Vec::new();
    for run in 0..RUNS_PER_LEVEL_MAX as u64 {
        for tenant in ["acme", "globex"] {
            all.extend(append(&db, &mut index, tenant, run * 300, 300).await);
        }
        merge(&db, &mut index).await;
    }
    assert_eq!(index.run_count(), RUNS_PER_LEVEL_MAX);
    assert!(index.wants_compaction());
    // Two steps of a compaction of 24 blocks, then the process is gone.
    assert!(!step(&db, &mut index).await);
    assert!(!step(&db, &mut index).await);
    assert!(index.compacting());
    drop(index);
    let building: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM usage_key_runs WHERE state = 'building'")
            .fetch_one(db.readers())
            .await
            .expect("count");
    assert_eq!(building, 1, "the unfinished run is left behind");

    // A new process: the unfinished run is never read, every key is found once.
    let mut index = SqliteKeyIndex::default();
    assert_eq!(found_keys(&db, &mut index, &all).await, all.len());
    all.extend(append(&db, &mut index, "acme", 5_000, 50).await);
    assert_eq!(found_keys(&db, &mut index, &all).await, all.len());
    let mut steps = 0;
    while !step(&db, &mut index).await {
        steps += 1;
        assert!(steps < 100, "the compaction finishes");
    }
    assert!(steps > 10, "one block a step: {steps} steps");
    assert_eq!(index.run_count(), 1);
    assert!(!index.wants_compaction());
    let (building, blocks): (i64, i64) = (
        sqlx::query_scalar("SELECT COUNT(*) FROM usage_key_runs WHERE state = 'building'")
            .fetch_one(db.readers())
            .await
            .expect("count"),
        sqlx::query_scalar("SELECT COUNT(*) FROM usage_key_blocks")
            .fetch_one(db.readers())
            .await
            .expect("count"),
    );
    assert_eq!(building, 0, "the unfinished run was deleted");
    assert_eq!(blocks, 24, "only the compacted run's blocks are left");
    // The tail's 50 keys and the run's 2,400 are all found, by this process and a new one.
    assert_eq!(found_keys(&db, &mut index, &all).await, all.len());
    let mut fresh = SqliteKeyIndex::default();
    assert_eq!(found_keys(&db, &mut fresh, &all).await, all.len());
    db.close().await;
}

/// Two events whose compact keys collide both stay findable, and sort for the merge.
#[test]
fn colliding_keys_keep_every_place() {
    let mut keys = TailKeys::default();
    keys.insert(42, (1, 0));
    keys.insert(7, (2, 0));
    keys.insert(42, (3, 5));
    keys.insert(42, (4, 1));
    assert_eq!(keys.len(), 4);
    assert_eq!(
        keys.get(42).copied().collect::<Vec<_>>(),
        vec![(1, 0), (3, 5), (4, 1)]
    );
    assert_eq!(
        keys.sorted(),
        vec![(7, 2, 0), (42, 1, 0), (42, 3, 5), (42, 4, 1)]
    );
    assert_eq!(keys.get(8).count(), 0);
}
