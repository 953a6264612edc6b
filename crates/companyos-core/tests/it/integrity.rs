//! The signed integrity report (MET-3): it passes on a clean store and fails when the missing
//! ratio reaches 1% or a stored rollup no longer equals the ledger; its evidence verifies with
//! nothing but the minisign public key.

use companyos_core::Actor;
use companyos_core::evidence::minisign;
use companyos_core::metering::reports::ReconciliationRow;
use serde_json::{Value, json};
use time::Duration;

use crate::model::SOURCES;
use crate::support::{
    BACKENDS, Node, START, day_of, event, execute, ingest, public_key_base64, source_key, statuses,
};

/// `count` events of source gw-api with seqs 1..=count+skipped, leaving out `skip`.
fn sourced(tenant: &str, count: u64, skip: Option<u64>) -> Vec<Value> {
    let last = count + u64::from(skip.is_some());
    (1..=last)
        .filter(|seq| Some(*seq) != skip)
        .map(|seq| {
            let mut e = event(
                tenant,
                &format!("s{seq}"),
                "1.5",
                START - Duration::minutes(seq as i64),
            );
            e["source"] = json!("gw-api");
            e["source_seq"] = json!(seq);
            e
        })
        .collect()
}

async fn report(node: &Node, actor: &Actor, tenant: &str) -> Value {
    let day = day_of(START);
    let (report, record) = node
        .app
        .metering()
        .integrity_report(actor, tenant, day - Duration::days(2), day)
        .await
        .unwrap();
    let report = serde_json::to_value(&report).unwrap();
    // The stored artifact is the report, signed: it verifies with the public key alone.
    let (stored, bytes) = node
        .app
        .evidence()
        .get(&node.admin, &record.id)
        .await
        .unwrap();
    assert_eq!(stored.kind, "integrity-report");
    assert_eq!(stored.tenant_id.as_deref(), Some(tenant));
    let parsed: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(parsed, report);
    minisign::verify(&node.app.evidence().public_key(), &bytes, &record.signature)
        .expect("the evidence verifies with the minisign public key");
    let mut tampered = bytes.clone();
    let at = tampered.len() / 2;
    tampered[at] ^= 1;
    assert!(
        minisign::verify(
            &node.app.evidence().public_key(),
            &tampered,
            &record.signature
        )
        .is_err(),
        "a changed byte breaks the signature"
    );
    report
}

/// Registers the model's first usage source, as `meter`.
async fn register_first_source(node: &Node, meter: &Actor) {
    let (id, service, seed) = SOURCES[0];
    let key = public_key_base64(&source_key(seed));
    let metering = node.app.metering();
    metering
        .register_source(meter, id, service, &key)
        .await
        .unwrap();
}

#[tokio::test]
async fn integrity_reports_pass_clean_and_fail_on_gaps_or_tampered_rollups() {
    for backend in BACKENDS {
        let node = Node::open(backend).await;
        let meter = node.operator("meter", "ingest").await;
        let auditor = node.operator("inspector", "auditor").await;
        register_first_source(&node, &meter).await;
        for tenant in ["clean", "tampered", "gappy", "edge"] {
            node.tenant(tenant).await;
        }

        // Clean: 100 sourced events without a gap, plus a late one.
        let mut events = sourced("clean", 100, None);
        events.push(event("clean", "late-1", "4", START - Duration::hours(50)));
        let outcome = ingest(&node.app, &meter, &events).await;
        assert_eq!(
            outcome
                .results
                .iter()
                .filter(|r| r.status.as_str() == "accepted")
                .count(),
            100
        );
        assert_eq!(statuses(&outcome)[100], "late");
        let clean = report(&node, &auditor, "clean").await;
        assert_eq!(clean["result"], json!("pass"), "{backend:?} {clean:#}");
        assert_eq!(clean["checks"]["rollups_equal_ledger"]["pass"], json!(true));
        assert_eq!(
            clean["checks"]["tree_verifies_against_checkpoint"]["pass"],
            json!(true)
        );
        assert_eq!(
            clean["checks"]["missing_ratio_below_target"]["pass"],
            json!(true)
        );
        assert_eq!(
            clean["checks"]["missing_ratio_below_target"]["missing_ratio"],
            json!(0)
        );
        assert_eq!(clean["totals"]["accepted"], json!(100));
        assert_eq!(clean["totals"]["late"], json!(1));
        assert_eq!(clean["rollups"][0]["quantity"], json!("150"));
        assert_eq!(clean["rollups"][0]["events"], json!(100));

        // Just below 1% missing passes: 100 received, 1 missing of 101.
        ingest(&node.app, &meter, &sourced("edge", 100, Some(37))).await;
        let edge = report(&node, &auditor, "edge").await;
        assert_eq!(
            edge["checks"]["missing_ratio_below_target"]["missing_ratio"],
            json!(0.009901)
        );
        assert_eq!(edge["result"], json!("pass"), "{edge:#}");

        // Exactly 1% missing fails: 99 received, 1 missing of 100.
        ingest(&node.app, &meter, &sourced("gappy", 99, Some(50))).await;
        let gappy = report(&node, &auditor, "gappy").await;
        assert_eq!(gappy["result"], json!("fail"), "{backend:?} {gappy:#}");
        assert_eq!(
            gappy["checks"]["missing_ratio_below_target"]["pass"],
            json!(false)
        );
        assert_eq!(
            gappy["checks"]["missing_ratio_below_target"]["missing_ratio"],
            json!(0.01)
        );
        assert_eq!(gappy["checks"]["rollups_equal_ledger"]["pass"], json!(true));
        assert_eq!(gappy["totals"]["missing"], json!(1));

        // A stored rollup changed behind the service's back fails the report.
        ingest(&node.app, &meter, &sourced("tampered", 20, None)).await;
        assert_eq!(
            report(&node, &auditor, "tampered").await["result"],
            json!("pass")
        );
        let changed = execute(
            &node.app,
            "UPDATE usage_daily SET quantity_sum = $1 WHERE tenant_id = $2",
            &["31", "tampered"],
        )
        .await;
        assert_eq!(changed, 1);
        let tampered = report(&node, &auditor, "tampered").await;
        assert_eq!(
            tampered["result"],
            json!("fail"),
            "{backend:?} {tampered:#}"
        );
        let rollups = &tampered["checks"]["rollups_equal_ledger"];
        assert_eq!(rollups["pass"], json!(false));
        assert_eq!(rollups["mismatches"][0]["stored"]["quantity"], json!("31"));
        assert_eq!(
            rollups["mismatches"][0]["recomputed"]["quantity"],
            json!("30")
        );
        // The tree itself is intact; the ledger verifier names the rollup too.
        assert_eq!(
            tampered["checks"]["tree_verifies_against_checkpoint"]["pass"],
            json!(true)
        );
        let problems = node.app.ledger().verify(Some("tampered")).await.unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].message.contains("stored rollup"),
            "{problems:?}"
        );
        // The other tenants are unaffected.
        assert!(
            node.app
                .ledger()
                .verify(Some("clean"))
                .await
                .unwrap()
                .is_empty()
        );
        node.close().await;
    }
}

#[tokio::test]
async fn the_missing_ratio_is_rounded_half_away_from_zero() {
    for backend in BACKENDS {
        let node = Node::open(backend).await;
        let meter = node.operator("meter", "ingest").await;
        register_first_source(&node, &meter).await;
        node.tenant("acme").await;
        // 127 received and 1 missing: 1/128 = 0.0078125, exactly halfway at the 7th place.
        ingest(&node.app, &meter, &sourced("acme", 127, Some(64))).await;
        let row = node.reconciliation_of_start_day("acme").await;
        assert_eq!((row.accepted, row.missing), (127, 1));
        assert_eq!(row.missing_ratio().to_string(), "0.007813", "{backend:?}");
        let served = serde_json::to_value(ReconciliationRow::of(&row)).unwrap();
        assert_eq!(served["missing_ratio"], json!(0.007813));
        node.close().await;
    }
}
