//! Day close (MET-3): once a day's late window has passed it is closed with the tree size and a
//! hash of its rollup; events of a closed day are late adjustments that never change it.

use serde_json::json;
use sqlx::Row as _;
use time::macros::datetime;
use time::{Date, Duration};

use crate::support::{BACKENDS, Node, START, day_of, event, ingest, statuses};

async fn closed_row(node: &Node, tenant: &str, day: Date) -> Option<(i64, String)> {
    let day = companyos_domain::time_util::day_number(day);
    sqlx::query(
        "SELECT tree_size, rollup_sha256 FROM usage_days_closed WHERE tenant_id = $1 AND day = $2",
    )
    .bind(tenant)
    .bind(day)
    .fetch_optional(node.app.db().readers())
    .await
    .unwrap()
    .map(|row| (row.get("tree_size"), row.get("rollup_sha256")))
}

/// The rollup hash of a day, computed here from what was sent: SHA-256 of the RFC 8785 form of
/// `{"tenant_id", "date", "rollups": [{"service", "metric", "unit", "quantity", "events"}]}`.
fn expected_rollup_hash(tenant: &str, date: &str, rollups: serde_json::Value) -> String {
    use sha2::Digest as _;
    let canonical = companyos_ledger::jcs::canonicalize(&json!({
        "tenant_id": tenant,
        "date": date,
        "rollups": rollups,
    }))
    .unwrap();
    crate::support::hex(&sha2::Sha256::digest(canonical.as_bytes()))
}

#[tokio::test]
async fn a_closed_day_keeps_its_rollup_and_later_events_are_late() {
    for backend in BACKENDS {
        let node = Node::open(backend).await;
        node.tenant("acme").await;
        let meter = node.operator("meter", "ingest").await;
        let app = &node.app;
        let day = day_of(START);
        let mut storage = event("acme", "s1", "2.5", START - Duration::hours(2));
        storage["service"] = json!("storage");
        storage["metric"] = json!("gib.hours");
        storage["unit"] = json!("GiB-hours");
        let outcome = ingest(
            app,
            &meter,
            &[
                event("acme", "e1", "12.5", START),
                event("acme", "e2", "0.25", START - Duration::hours(11)),
                event("acme", "e3", "100", START + Duration::minutes(3)),
                storage,
            ],
        )
        .await;
        assert_eq!(statuses(&outcome), ["accepted"; 4]);
        let rollup_before = app
            .metering()
            .daily_usage(&node.admin, "acme", day, day)
            .await
            .unwrap();
        assert_eq!(rollup_before.len(), 2);

        // Nothing closes while the late window of the day is open.
        assert_eq!(app.metering().close_days().await.unwrap(), 0);
        node.clock.set(datetime!(2026-03-04 23:59:59 UTC));
        assert_eq!(app.metering().close_days().await.unwrap(), 0, "{backend:?}");
        assert_eq!(closed_row(&node, "acme", day).await, None);

        // Past the end of the day plus the 48-hour window, it closes once.
        node.clock.set(datetime!(2026-03-05 00:30:00 UTC));
        assert_eq!(app.metering().close_days().await.unwrap(), 1, "{backend:?}");
        assert_eq!(
            app.metering().close_days().await.unwrap(),
            0,
            "closing is idempotent"
        );
        let (tree_size, hash) = closed_row(&node, "acme", day).await.unwrap();
        assert_eq!(tree_size, 4);
        assert_eq!(
            hash,
            expected_rollup_hash(
                "acme",
                "2026-03-02",
                json!([
                    {"service": "api", "metric": "requests", "unit": "request", "quantity": "112.75", "events": 3},
                    {"service": "storage", "metric": "gib.hours", "unit": "GiB-hours", "quantity": "2.5", "events": 1},
                ])
            )
        );
        let reconciliation = app
            .metering()
            .reconciliation(&node.admin, "acme", day, day.next_day().unwrap())
            .await
            .unwrap();
        assert!(reconciliation[0].closed);
        assert_eq!(reconciliation[0].accepted, 4);
        assert!(
            !reconciliation[1].closed,
            "a day without events is not closed"
        );

        // A later event of the closed day is late and does not change its rollup.
        let outcome = ingest(
            app,
            &meter,
            &[
                event("acme", "l1", "7", START + Duration::hours(5)),
                event("acme", "e1", "12.5", START),
                event("acme", "n1", "1", datetime!(2026-03-05 00:10:00 UTC)),
            ],
        )
        .await;
        assert_eq!(
            statuses(&outcome),
            ["late", "duplicate", "accepted"],
            "{backend:?} {outcome:?}"
        );
        assert_eq!(outcome.results[0].seq, Some(4));
        let rollup_after = app
            .metering()
            .daily_usage(&node.admin, "acme", day, day)
            .await
            .unwrap();
        let on_time =
            |rows: &[companyos_core::metering::reports::DailyUsage]| -> Vec<(String, String, String)> {
                rows.iter()
                    .map(|r| {
                        (
                            r.metric.clone(),
                            r.quantity.to_string(),
                            r.events.to_string(),
                        )
                    })
                    .collect()
            };
        assert_eq!(
            on_time(&rollup_after),
            on_time(&rollup_before),
            "a closed day's rollup never changes"
        );
        // The report shows the late usage beside it, on the event's day.
        let requests = rollup_after
            .iter()
            .find(|r| r.metric == "requests")
            .unwrap();
        assert_eq!(
            (requests.late_quantity.to_string(), requests.late_events),
            ("7".to_owned(), 1)
        );
        assert!(rollup_before.iter().all(|r| r.late_events == 0));
        let reconciliation = app
            .metering()
            .reconciliation(&node.admin, "acme", day, day)
            .await
            .unwrap();
        assert_eq!(
            (
                reconciliation[0].accepted,
                reconciliation[0].late,
                reconciliation[0].duplicates
            ),
            (4, 1, 1)
        );
        assert!(reconciliation[0].closed);
        // The late event is an adjustment of its day, kept apart from the rollup.
        let late: (String, i64) = {
            let row = sqlx::query(
                "SELECT quantity_sum, events FROM usage_late WHERE tenant_id = $1 AND day = $2",
            )
            .bind("acme")
            .bind(companyos_domain::time_util::day_number(day))
            .fetch_one(app.db().readers())
            .await
            .unwrap();
            (row.get("quantity_sum"), row.get("events"))
        };
        assert_eq!(late, ("7".to_owned(), 1));
        // The seal is unchanged, and the ledger (with the late leaf) still verifies.
        assert_eq!(
            closed_row(&node, "acme", day).await,
            Some((tree_size, hash))
        );
        assert!(app.ledger().verify(Some("acme")).await.unwrap().is_empty());
        node.close().await;
    }
}

/// Every day closes once its late window has passed, with or without usage: a quiet tenant's
/// days close too (from the day it was created on), sealed with an empty rollup, and an event
/// that arrives later for a quiet closed day is late. A purged tenant's days close up to the
/// day of its purge.
#[tokio::test]
async fn quiet_days_close_too_from_the_tenants_creation_on() {
    for backend in BACKENDS {
        let node = Node::open(backend).await;
        node.tenant("acme").await;
        node.tenant("quiet").await;
        let meter = node.operator("meter", "ingest").await;
        let app = &node.app;
        let outcome = ingest(app, &meter, &[event("acme", "e1", "1", START)]).await;
        assert_eq!(statuses(&outcome), ["accepted"]);

        // 2026-03-10 00:30: every day up to 03-07 is past its 48-hour window.
        node.clock.set(datetime!(2026-03-10 00:30:00 UTC));
        // acme: 03-02 (usage) and 03-03 to 03-07 (quiet); quiet: 03-02 to 03-07.
        assert_eq!(
            app.metering().close_days().await.unwrap(),
            12,
            "{backend:?}"
        );
        assert_eq!(
            app.metering().close_days().await.unwrap(),
            0,
            "closing is idempotent"
        );
        let first = day_of(START);
        let last = datetime!(2026-03-07 00:00:00 UTC).date();
        let quiet = app
            .metering()
            .reconciliation(&node.admin, "quiet", first, last.next_day().unwrap())
            .await
            .unwrap();
        assert_eq!(quiet.len(), 7);
        assert!(quiet[..6].iter().all(|day| day.closed), "{quiet:?}");
        assert!(!quiet[6].closed, "03-08 is still within its late window");
        let (tree_size, hash) = closed_row(&node, "quiet", last).await.unwrap();
        assert_eq!(tree_size, 0);
        assert_eq!(
            hash,
            expected_rollup_hash("quiet", "2026-03-07", json!([])),
            "a quiet day is sealed with an empty rollup"
        );
        // Nothing before the tenant existed is closed.
        assert_eq!(
            closed_row(&node, "quiet", first.previous_day().unwrap()).await,
            None
        );

        // A late event for a quiet closed day is an adjustment, not a change of the day.
        let outcome = ingest(
            app,
            &meter,
            &[event(
                "quiet",
                "q1",
                "3",
                datetime!(2026-03-04 10:00:00 UTC),
            )],
        )
        .await;
        assert_eq!(statuses(&outcome), ["late"], "{backend:?} {outcome:?}");
        assert_eq!(
            closed_row(&node, "quiet", datetime!(2026-03-04 00:00:00 UTC).date())
                .await
                .map(|(size, _)| size),
            Some(0)
        );

        // The next days close as time passes, one run each.
        node.clock.set(datetime!(2026-03-12 00:30:00 UTC));
        assert_eq!(
            app.metering().close_days().await.unwrap(),
            4,
            "03-08 and 03-09 of both"
        );
        node.close().await;
    }
}
