//! Property tests of ingestion (issue 4) and of the reports derived from it (issue 5): random
//! streams against an independent model, on both engines.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use companyos_core::Actor;
use companyos_core::metering::ingest::RawEvent;
use companyos_core::metering::reports::ReconciliationRow;
use companyos_domain::{LogId, TenantId};
use proptest::test_runner::TestCaseError;
use proptest::{prop_assert, prop_assert_eq};
use rust_decimal::Decimal;
use serde_json::Value;
use time::{Date, Duration};

use crate::model::{DayCounts, Model, SOURCES, Stream, StreamSpec, stream};
use crate::support::{
    BACKENDS, Backend, Node, START, day_of, digest_of, public_key_base64, source_key,
};

/// Cases per engine: enough variety, and the binary stays well under a minute.
const CASES: u32 = 24;

/// What a property run checks after sending a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Property {
    /// Issue 4: one stored entry per key, first content wins, a verifying tree of that size.
    Ledger,
    /// Issue 5: rollups and reconciliation equal a recomputation from the raw events.
    Reports,
}

struct Context {
    node: Node,
    ingest: Actor,
}

impl Context {
    async fn open(backend: Backend) -> Context {
        // A tiny dedupe tail: SQLite merges it into the key index every few events, so the
        // originals of duplicates and conflicts sit in the index, the tail, or both.
        let node = Node::open_with(backend, |s| s.dedupe_tail_rows_max = 5).await;
        let ingest = node.operator("meter", "ingest").await;
        for (id, service, seed) in SOURCES {
            node.app
                .metering()
                .register_source(
                    &node.admin,
                    id,
                    service,
                    &public_key_base64(&source_key(seed)),
                )
                .await
                .expect("register source");
        }
        Context { node, ingest }
    }

    /// Sends the stream batch by batch, checking every result against the model.
    async fn send(&self, stream: &Stream) -> Result<Model, TestCaseError> {
        let app = &self.node.app;
        let mut model = Model::default();
        for (b, batch) in stream.batches.iter().enumerate() {
            let events: Vec<RawEvent> = batch
                .iter()
                .map(|g| crate::support::raw_event(&g.json))
                .collect();
            let outcome = app
                .ingest(&self.ingest, events)
                .await
                .map_err(|e| TestCaseError::fail(format!("batch {b}: {e}")))?;
            prop_assert_eq!(outcome.results.len(), batch.len());
            for (i, (generated, result)) in batch.iter().zip(&outcome.results).enumerate() {
                let expected = model.apply(generated);
                let context = || format!("batch {b} item {i}: {}\n{result:?}", generated.json);
                prop_assert_eq!(result.index, i, "{}", context());
                prop_assert_eq!(result.status.as_str(), expected.status, "{}", context());
                prop_assert_eq!(result.seq, expected.seq, "{}", context());
                if let Some(field) = expected.field {
                    prop_assert!(
                        result.errors.iter().any(|e| e.field == field),
                        "the rejection must name {}: {}",
                        field,
                        context()
                    );
                } else {
                    prop_assert!(result.errors.is_empty(), "{}", context());
                }
                if let Some(event_id) = &expected.event_id {
                    prop_assert_eq!(result.event_id.as_deref(), Some(event_id.as_str()));
                }
            }
        }
        model.finish();
        Ok(model)
    }

    async fn check(
        &self,
        tenant: &str,
        spec: &StreamSpec,
        property: Property,
    ) -> Result<(), TestCaseError> {
        self.node.tenant(tenant).await;
        let stream = spec.build(tenant);
        let model = self.send(&stream).await?;
        match property {
            Property::Ledger => self.check_ledger(tenant, &model).await,
            Property::Reports => self.check_reports(tenant, &model).await,
        }
    }

    async fn check_ledger(&self, tenant: &str, model: &Model) -> Result<(), TestCaseError> {
        let app = &self.node.app;
        let mut conn = app
            .db()
            .readers()
            .acquire()
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let rows = companyos_core::bundles::read_events(&mut conn, tenant, 0, u64::MAX)
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let leaves = companyos_core::bundles::count_leaves(
            &mut conn,
            &LogId::Usage(TenantId::parse(tenant).expect("a tenant id")),
        )
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
        drop(conn);
        let mut stored: BTreeMap<String, (u64, String, Value)> = BTreeMap::new();
        for row in &rows {
            let event_id = row.event_id.clone();
            let content: Value = serde_json::from_str(&row.canonical)
                .map_err(|e| TestCaseError::fail(format!("stored canonical: {e}")))?;
            let previous =
                stored.insert(event_id.clone(), (row.seq, row.digest.to_string(), content));
            prop_assert!(previous.is_none(), "two stored entries for {}", event_id);
        }
        prop_assert_eq!(
            rows.len(),
            model.kept.len(),
            "one stored entry per kept key"
        );
        for (event_id, kept) in &model.kept {
            let Some((seq, digest, content)) = stored.get(event_id) else {
                return Err(TestCaseError::fail(format!("{event_id} is not stored")));
            };
            prop_assert_eq!(*seq, kept.seq, "{}", event_id);
            // The first content wins: later conflicts never replaced it.
            prop_assert_eq!(content, &kept.content, "{}", event_id);
            prop_assert_eq!(digest, &digest_of(&kept.content), "{}", event_id);
        }
        let problems = app
            .ledger()
            .verify(Some(tenant))
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(problems.is_empty(), "{:?}", problems);
        let log_id = LogId::Usage(TenantId::parse(tenant).expect("a tenant id"));
        let size: Option<i64> =
            sqlx::query_scalar("SELECT tree_size FROM ledger_heads WHERE log_id = $1")
                .bind(log_id.to_string())
                .fetch_optional(app.db().readers())
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(size.unwrap_or(0), model.kept.len() as i64, "tree size");
        prop_assert_eq!(leaves, model.kept.len() as i64, "leaves");
        Ok(())
    }

    async fn check_reports(&self, tenant: &str, model: &Model) -> Result<(), TestCaseError> {
        let app = &self.node.app;
        let admin = &self.node.admin;
        let (from, to) = report_range();
        let rows = app
            .metering()
            .daily_usage(admin, tenant, from, to)
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut actual: BTreeMap<(Date, String, String, String), (Decimal, i64)> = BTreeMap::new();
        // Rows with late usage only carry no on-time usage; late usage is checked apart.
        for row in rows.into_iter().filter(|row| row.events > 0) {
            let date = companyos_domain::time_util::parse_day(&row.date, "date")
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let previous = actual.insert(
                (date, row.service, row.metric, row.unit),
                (row.quantity.normalize(), row.events),
            );
            prop_assert!(
                previous.is_none(),
                "one rollup row per day/service/metric/unit"
            );
        }
        let expected: BTreeMap<_, _> = model
            .rollups
            .iter()
            .map(|(k, (sum, events))| (k.clone(), (sum.normalize(), *events)))
            .collect();
        prop_assert_eq!(actual, expected, "daily rollups (on-time events only)");

        let days = app
            .metering()
            .reconciliation(admin, tenant, from, to)
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(days.len() as i64, (to - from).whole_days() + 1);
        let mut day = from;
        for row in &days {
            let expected = model.days.get(&day).cloned().unwrap_or_default();
            prop_assert_eq!(&row.date, &companyos_domain::time_util::format_day(day));
            let mut gaps: Vec<(String, u64, u64)> = row
                .gaps
                .iter()
                .map(|g| (g.source.clone(), g.from_seq, g.to_seq))
                .collect();
            gaps.sort();
            let actual = DayCounts {
                accepted: row.accepted,
                duplicates: row.duplicates,
                late: row.late,
                invalid: row.invalid,
                conflicts: row.conflicts,
                missing: row.missing,
                unsigned: row.unsigned,
                undeclared: row.undeclared,
                gaps,
            };
            prop_assert_eq!(&actual, &expected, "reconciliation of {}", row.date);
            prop_assert_eq!(
                row.missing_ratio(),
                expected.missing_ratio(),
                "missing ratio of {}",
                row.date
            );
            let json = serde_json::to_value(ReconciliationRow::of(row)).unwrap();
            prop_assert_eq!(
                json["missing_ratio"].to_string().parse::<Decimal>().ok(),
                Some(expected.missing_ratio()),
                "missing_ratio as served on {}",
                row.date
            );
            prop_assert!(!row.closed);
            day = day.next_day().unwrap();
        }
        Ok(())
    }
}

/// A range of days that covers every event the streams send (36 days back, 1 ahead).
fn report_range() -> (Date, Date) {
    (
        day_of(START - Duration::days(40)),
        day_of(START + Duration::days(2)),
    )
}

fn run(backend: Backend, property: Property) {
    let runtime = crate::support::runtime();
    let context = runtime.block_on(Context::open(backend));
    let counter = AtomicUsize::new(0);
    let mut runner = crate::support::test_runner(CASES, 256);
    let result = runner.run(&stream(), |spec| {
        let tenant = format!("prop-{}", counter.fetch_add(1, Ordering::SeqCst));
        runtime.block_on(context.check(&tenant, &spec, property))
    });
    if let Err(error) = result {
        panic!("{backend:?}: {error}");
    }
    runtime.block_on(context.node.close());
}

#[test]
fn every_key_is_stored_once_with_its_first_content_in_a_verifying_tree() {
    for backend in BACKENDS {
        run(backend, Property::Ledger);
    }
}

#[test]
fn rollups_and_reconciliation_equal_a_recomputation_from_the_raw_events() {
    for backend in BACKENDS {
        run(backend, Property::Reports);
    }
}
