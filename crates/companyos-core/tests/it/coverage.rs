//! The coverage gate (MET-4): undeclared usage is flagged in `warn` and rejected in `enforce`,
//! for the deployment or per service; every mode change is audited once, with the previous mode.

use companyos_core::audit::AuditFilter;
use companyos_core::metering::ingest::IngestOutcome;
use companyos_core::{Actor, ServiceError};
use companyos_domain::audit::{AuditOutcome, AuditRecord};
use companyos_domain::metering::{CoverageMode, RawDeclaration, RawMetric};
use serde_json::{Value, json};

use crate::support::{BACKENDS, Node, START, event, ingest, statuses};

fn metric(name: &str, unit: &str) -> RawMetric {
    RawMetric {
        name: Some(name.to_owned()),
        unit: Some(unit.to_owned()),
        aggregation: None,
        description: Some(format!("one {unit} of {name}")),
    }
}

fn declaration(metrics: Vec<RawMetric>) -> RawDeclaration {
    RawDeclaration {
        service: None,
        metrics,
    }
}

/// The five kinds of event each round sends, in this order: declared, undeclared service,
/// undeclared metric of api, unit mismatch of api, undeclared metric of storage.
fn round(prefix: &str) -> Vec<Value> {
    let with = |id: &str, service: &str, metric: &str, unit: &str| {
        let mut e = event("acme", &format!("{prefix}-{id}"), "1", START);
        e["service"] = json!(service);
        e["metric"] = json!(metric);
        e["unit"] = json!(unit);
        e
    };
    vec![
        with("declared", "api", "requests", "request"),
        with("service", "search", "queries", "query"),
        with("metric", "api", "latency", "ms"),
        with("unit", "api", "requests", "call"),
        with("storage", "storage", "iops", "op"),
    ]
}

async fn coverage_updates(node: &Node) -> Vec<AuditRecord> {
    node.app
        .audit()
        .records(
            &node.admin,
            &AuditFilter {
                action: Some("metering.coverage.update".to_owned()),
                limit: 1000,
                ..AuditFilter::default()
            },
        )
        .await
        .unwrap()
}

/// Changes the mode and checks that exactly one success record was written, naming the
/// previous mode.
async fn change_mode(
    node: &Node,
    service: Option<&str>,
    mode: Option<&str>,
    previous: Value,
) -> AuditRecord {
    let before = coverage_updates(node).await;
    node.app
        .metering()
        .set_coverage_mode(&node.admin, service, mode)
        .await
        .unwrap();
    let after = coverage_updates(node).await;
    assert_eq!(after.len(), before.len() + 1, "one audit record per change");
    let record = after.last().unwrap().clone();
    assert_eq!(record.outcome, AuditOutcome::Success);
    assert_eq!(record.details["previous"], previous, "{:?}", record.details);
    assert_eq!(record.details["mode"], json!(mode));
    assert_eq!(record.details["service"], json!(service));
    record
}

fn flags(outcome: &IngestOutcome, index: usize) -> Vec<&'static str> {
    outcome.results[index].flags.clone()
}

fn first_error_field(outcome: &IngestOutcome, index: usize) -> String {
    outcome.results[index].errors[0].field.clone()
}

async fn undeclared_today(node: &Node) -> (i64, i64, i64) {
    let row = node.reconciliation_of_start_day("acme").await;
    (row.accepted, row.invalid, row.undeclared)
}

#[tokio::test]
async fn warn_flags_enforce_rejects_per_deployment_and_per_service() {
    for backend in BACKENDS {
        let node = Node::open(backend).await;
        node.tenant("acme").await;
        let meter = node.operator("meter", "ingest").await;
        let viewer: Actor = node.operator("watcher", "viewer").await;
        let app = &node.app;
        app.metering()
            .declare(
                &meter,
                "api",
                &declaration(vec![
                    metric("requests", "request"),
                    metric("bytes_out", "byte"),
                ]),
            )
            .await
            .unwrap();
        app.metering()
            .declare(
                &meter,
                "storage",
                &declaration(vec![
                    metric("gib.hours", "GiB-hours"),
                    metric("snapshots", "snapshot"),
                ]),
            )
            .await
            .unwrap();

        // warn (the default): everything is kept, flagged and counted as undeclared.
        let outcome = ingest(app, &meter, &round("w1")).await;
        assert_eq!(
            statuses(&outcome),
            ["accepted"; 5],
            "{backend:?} {outcome:?}"
        );
        assert!(
            !flags(&outcome, 0)
                .iter()
                .any(|f| f.starts_with("undeclared") || *f == "unit_mismatch"),
            "{outcome:?}"
        );
        assert!(flags(&outcome, 1).contains(&"undeclared_service"));
        assert!(flags(&outcome, 2).contains(&"undeclared_metric"));
        assert!(flags(&outcome, 3).contains(&"unit_mismatch"));
        assert!(flags(&outcome, 4).contains(&"undeclared_metric"));
        assert_eq!(undeclared_today(&node).await, (5, 0, 4));

        let report = app.metering().coverage_report(&node.admin).await.unwrap();
        assert_eq!(report.mode, CoverageMode::Warn);
        let undeclared_services: Vec<(&str, i64)> = report
            .services_without_declaration
            .iter()
            .map(|s| (s.service.as_str(), s.events))
            .collect();
        assert_eq!(undeclared_services, [("search", 1)], "{report:?}");
        let undeclared_metrics: Vec<(&str, &str, i64)> = report
            .undeclared_metrics
            .iter()
            .map(|m| (m.service.as_str(), m.metric.as_str(), m.events))
            .collect();
        assert_eq!(
            undeclared_metrics,
            [("api", "latency", 1), ("storage", "iops", 1)],
            "{report:?}"
        );
        assert_eq!(report.unit_mismatches[0].unit, "call", "{report:?}");
        assert_eq!(report.unit_mismatches[0].declared_unit.as_str(), "request");
        let never_seen: Vec<(&str, &str)> = report
            .declared_metrics_never_seen
            .iter()
            .map(|m| (m.service.as_str(), m.metric.as_str()))
            .collect();
        assert_eq!(
            never_seen,
            [
                ("api", "bytes_out"),
                ("storage", "gib.hours"),
                ("storage", "snapshots"),
            ],
            "{report:?}"
        );

        // enforce for the deployment: each kind is rejected naming its field.
        change_mode(&node, None, Some("enforce"), json!("warn")).await;
        let outcome = ingest(app, &meter, &round("e1")).await;
        assert_eq!(
            statuses(&outcome),
            ["accepted", "rejected", "rejected", "rejected", "rejected"],
            "{backend:?} {outcome:?}"
        );
        assert_eq!(first_error_field(&outcome, 1), "service");
        assert_eq!(first_error_field(&outcome, 2), "metric");
        assert_eq!(first_error_field(&outcome, 3), "unit");
        assert_eq!(first_error_field(&outcome, 4), "metric");
        assert_eq!(undeclared_today(&node).await, (6, 4, 4));

        // A per-service override to warn lets that service through; the others stay enforced.
        let record = change_mode(&node, Some("api"), Some("warn"), Value::Null).await;
        assert_eq!(record.target, "service:api");
        let outcome = ingest(app, &meter, &round("o1")).await;
        assert_eq!(
            statuses(&outcome),
            ["accepted", "rejected", "accepted", "accepted", "rejected"],
            "{outcome:?}"
        );
        assert!(flags(&outcome, 2).contains(&"undeclared_metric"));
        assert!(flags(&outcome, 3).contains(&"unit_mismatch"));
        assert_eq!(undeclared_today(&node).await, (9, 6, 6));
        let services = app.metering().list_services(&node.admin).await.unwrap();
        assert_eq!(services.deployment_mode, CoverageMode::Enforce);
        assert_eq!(services.services[0].declaration.service.as_str(), "api");
        assert_eq!(services.mode_of(&services.services[0]), CoverageMode::Warn);
        assert_eq!(
            services.mode_of(&services.services[1]),
            CoverageMode::Enforce
        );
        // An override needs a declaration.
        assert!(matches!(
            app.metering()
                .set_coverage_mode(&node.admin, Some("search"), Some("warn"))
                .await,
            Err(ServiceError::NotFound(_))
        ));

        // Removing the override restores the deployment's mode.
        change_mode(&node, Some("api"), None, json!("warn")).await;
        let outcome = ingest(app, &meter, &round("r1")).await;
        assert_eq!(
            statuses(&outcome),
            ["accepted", "rejected", "rejected", "rejected", "rejected"],
            "{outcome:?}"
        );
        assert_eq!(first_error_field(&outcome, 2), "metric");

        // A viewer may not change the mode: denied, audited, nothing changes.
        let before = coverage_updates(&node).await;
        for (service, mode) in [(None, Some("warn")), (Some("api"), Some("warn"))] {
            let denied = app
                .metering()
                .set_coverage_mode(&viewer, service, mode)
                .await;
            assert!(
                matches!(denied, Err(ServiceError::Forbidden(_))),
                "{denied:?}"
            );
        }
        let after = coverage_updates(&node).await;
        assert_eq!(after.len(), before.len() + 2);
        for record in &after[before.len()..] {
            assert_eq!(record.outcome, AuditOutcome::Denied);
            assert_eq!(record.actor, "watcher");
            assert_eq!(record.role, "viewer");
        }
        // A mode that does not exist is refused naming the field, and changes nothing.
        match app
            .metering()
            .set_coverage_mode(&node.admin, None, Some("strict"))
            .await
        {
            Err(ServiceError::Validation(errors)) => {
                assert_eq!(errors.errors()[0].field, "mode");
            }
            other => panic!("{other:?}"),
        }
        let latest = coverage_updates(&node).await;
        assert_eq!(latest.last().unwrap().outcome, AuditOutcome::Failed);
        let report = app.metering().coverage_report(&node.admin).await.unwrap();
        assert_eq!(report.mode, CoverageMode::Enforce);
        let outcome = ingest(app, &meter, &round("v1")).await;
        assert_eq!(statuses(&outcome)[1], "rejected");

        // Back to warn for the deployment.
        change_mode(&node, None, Some("warn"), json!("enforce")).await;
        let outcome = ingest(app, &meter, &round("w2")).await;
        assert_eq!(statuses(&outcome), ["accepted"; 5], "{outcome:?}");
        let successes = coverage_updates(&node)
            .await
            .iter()
            .filter(|r| r.outcome == AuditOutcome::Success)
            .count();
        assert_eq!(successes, 4, "four mode changes, four records");
        node.close().await;
    }
}
