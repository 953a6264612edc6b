//! Background job leases (issue 3): with several nodes on one PostgreSQL database, one node at a
//! time holds each job; a node that stops renewing loses its lease when it expires.

use std::sync::Arc;

use companyos_core::App;
use companyos_core::clock::ManualClock;
use time::Duration;

use crate::support::{Backend, Node, START, settings_for};

#[tokio::test]
async fn one_node_holds_a_job_until_its_lease_expires() {
    let first = Node::open(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(data_dir.join("keys")).unwrap();
    for entry in std::fs::read_dir(first.data_dir().join("keys")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), data_dir.join("keys").join(entry.file_name())).unwrap();
    }
    let second_clock = Arc::new(ManualClock::new(START));
    let (second, _) = App::open(
        settings_for(&data_dir, first.database_url.as_deref()),
        second_clock.clone(),
    )
    .await
    .unwrap();
    assert!(first.app.jobs().acquire_lease("checkpoints").await.unwrap());
    assert!(
        !second.jobs().acquire_lease("checkpoints").await.unwrap(),
        "held by the first node"
    );
    assert!(
        first.app.jobs().acquire_lease("checkpoints").await.unwrap(),
        "the holder renews"
    );
    assert!(
        second.jobs().acquire_lease("outbox").await.unwrap(),
        "leases are per job"
    );
    assert!(!first.app.jobs().acquire_lease("outbox").await.unwrap());
    // The first node stops renewing; past the lease (30 s) the second one takes the job over.
    first.clock.advance(Duration::seconds(31));
    second_clock.advance(Duration::seconds(31));
    assert!(second.jobs().acquire_lease("checkpoints").await.unwrap());
    assert!(!first.app.jobs().acquire_lease("checkpoints").await.unwrap());
    assert_eq!(
        first.app.jobs().run_job("checkpoints").await.unwrap(),
        None,
        "skipped"
    );
    assert!(
        second
            .jobs()
            .run_job("checkpoints")
            .await
            .unwrap()
            .is_some()
    );
    second.db().close().await;
    first.close().await;
}
