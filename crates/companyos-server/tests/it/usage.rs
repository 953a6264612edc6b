//! Usage ingestion (CONTRACT §5) and reports (§6).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use time::Duration;

use crate::support::{BACKENDS, START, TestServer, event};

fn statuses(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn dedupe_conflicts_late_and_rejections_in_one_batch() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.tenant("acme").await;
        let ingest = server.operator("meter", "ingest").await;
        let now = START;
        let mut conflicting = event("acme", "e1", "99", now);
        conflicting["request_id"] = json!("other");
        let batch = json!([
            event("acme", "e1", "12.5", now),
            event("acme", "e1", "12.5", now),
            conflicting,
            event("acme", "e2", "1", now - Duration::hours(49)),
            event("ghost", "e3", "1", now),
            event("acme", "e4", "1", now + Duration::minutes(10)),
            event("acme", "e5", "1", now - Duration::days(36)),
            event("acme", "e6", "-1", now),
        ]);
        let (status, body) = ingest.post("/v1/events", batch.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            statuses(&body),
            [
                "accepted",
                "duplicate",
                "conflict",
                "late",
                "rejected",
                "rejected",
                "rejected",
                "rejected"
            ],
            "{backend:?} {body}"
        );
        assert_eq!(body["accepted"], json!(1));
        assert_eq!(body["duplicates"], json!(1));
        assert_eq!(body["conflicts"], json!(1));
        assert_eq!(body["late"], json!(1));
        assert_eq!(body["rejected"], json!(4));
        let results = body["results"].as_array().unwrap();
        assert_eq!(
            results[1]["seq"], results[0]["seq"],
            "a duplicate answers the original seq"
        );
        assert_eq!(results[2]["seq"], results[0]["seq"]);
        assert_eq!(results[4]["errors"][0]["field"], json!("tenant_id"));
        assert_eq!(results[5]["errors"][0]["field"], json!("timestamp"));
        assert_eq!(results[6]["errors"][0]["field"], json!("timestamp"));
        assert_eq!(results[7]["errors"][0]["field"], json!("quantity"));
        // Resending the whole batch changes nothing: every kept event is a duplicate.
        let (_, again) = ingest.post("/v1/events", batch).await;
        assert_eq!(
            statuses(&again),
            [
                "duplicate",
                "duplicate",
                "conflict",
                "duplicate",
                "rejected",
                "rejected",
                "rejected",
                "rejected"
            ],
            "{again}"
        );
        // The daily rollup counts the on-time event once; the late one is an adjustment, shown
        // beside the rollup on its own day.
        let (status, daily) = server
            .admin()
            .get("/v1/tenants/acme/usage/daily?from=2026-02-28&to=2026-03-02")
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            daily,
            json!([
                {"date": "2026-02-28", "service": "api", "metric": "requests", "unit": "request",
                 "quantity": "0", "events": 0, "late_quantity": "1", "late_events": 1},
                {"date": "2026-03-02", "service": "api", "metric": "requests", "unit": "request",
                 "quantity": "12.5", "events": 1, "late_quantity": "0", "late_events": 0},
            ])
        );
        let (_, reconciliation) = server
            .admin()
            .get("/v1/tenants/acme/reconciliation?from=2026-02-28&to=2026-03-02")
            .await;
        let today = reconciliation
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["date"] == json!("2026-03-02"))
            .unwrap()
            .clone();
        assert_eq!(today["accepted"], json!(1));
        // e1 once in the first batch and twice on resend; the late e2 counts on its own day.
        assert_eq!(today["duplicates"], json!(3), "{today}");
        assert_eq!(today["conflicts"], json!(2));
        // e4 (future) and e6 (negative) in both batches; e5 counts on its own day, ghost on none.
        assert_eq!(today["invalid"], json!(4), "{today}");
        server.stop().await;
    }
}

#[tokio::test]
async fn ndjson_bodies_and_body_errors() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.tenant("acme").await;
        let ingest = server.operator("meter", "ingest").await;
        let lines = [
            event("acme", "n1", "1", START),
            event("acme", "n2", "2", START),
        ]
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n");
        let (status, _, text) = ingest
            .raw(
                Method::POST,
                "/v1/events",
                Some(("application/x-ndjson", lines.into_bytes())),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["accepted"], json!(2));
        let (status, _, text) = ingest
            .raw(
                Method::POST,
                "/v1/events",
                Some(("application/json", br#"{"event_id": "x"}"#.to_vec())),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
        let (status, _, _) = ingest
            .raw(
                Method::POST,
                "/v1/events",
                Some(("application/json", b"[{".to_vec())),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let too_many: Vec<Value> = (0..10_001)
            .map(|i| json!({"event_id": format!("x{i}")}))
            .collect();
        let (status, body) = ingest.post("/v1/events", json!(too_many)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        // Nothing of the refused bodies was kept.
        let (_, reconciliation) = server
            .admin()
            .get("/v1/tenants/acme/reconciliation?from=2026-03-02&to=2026-03-02")
            .await;
        assert_eq!(reconciliation[0]["accepted"], json!(2));
        assert_eq!(reconciliation[0]["invalid"], json!(0));
        server.stop().await;
    }
}

#[tokio::test]
async fn source_gaps_are_missing_events_and_signatures_are_checked() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.tenant("acme").await;
        let ingest = server.operator("meter", "ingest").await;
        let key = companyos_sdk::SourceKey::generate("gw-1");
        let (status, body) = ingest
            .post(
                "/v1/sources",
                json!({"id": "gw-1", "service": "api", "public_key": key.public_key_base64()}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let signed = |seq: u64| {
            companyos_sdk::EventBuilder::new("acme", "api", "requests", "1", "request")
                .event_id(&format!("s{seq}"))
                .timestamp(START)
                .request_id("r")
                .source("gw-1", seq)
                .sign(&key)
                .unwrap()
                .into_value()
        };
        // Without the digest, a changed field is caught by the signature itself.
        let mut tampered = signed(9);
        tampered["quantity"] = json!("1000");
        tampered.as_object_mut().unwrap().remove("digest");
        let mut unknown_source = signed(10);
        unknown_source["source"] = json!("gw-2");
        unknown_source.as_object_mut().unwrap().remove("digest");
        let mut with_digest = signed(11);
        with_digest["quantity"] = json!("5");
        let (status, body) = ingest
            .post(
                "/v1/events",
                json!([
                    signed(1),
                    signed(2),
                    signed(5),
                    signed(6),
                    tampered,
                    unknown_source,
                    with_digest
                ]),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            statuses(&body),
            [
                "accepted", "accepted", "accepted", "accepted", "rejected", "rejected", "rejected"
            ],
            "{body}"
        );
        assert_eq!(
            body["results"][4]["errors"][0]["field"],
            json!("source_signature"),
            "{body}"
        );
        assert_eq!(
            body["results"][5]["errors"][0]["field"],
            json!("source"),
            "{body}"
        );
        assert_eq!(
            body["results"][6]["errors"][0]["field"],
            json!("digest"),
            "{body}"
        );
        let (_, reconciliation) = server
            .admin()
            .get("/v1/tenants/acme/reconciliation?from=2026-03-02&to=2026-03-02")
            .await;
        let day = &reconciliation[0];
        assert_eq!(day["missing"], json!(2), "{day}");
        assert_eq!(
            day["gaps"],
            json!([{"source": "gw-1", "from_seq": 3, "to_seq": 4}])
        );
        assert_eq!(day["missing_ratio"], json!(0.333333));
        // The gap closes when the missing events arrive.
        ingest
            .post("/v1/events", json!([signed(3), signed(4)]))
            .await;
        let (_, reconciliation) = server
            .admin()
            .get("/v1/tenants/acme/reconciliation?from=2026-03-02&to=2026-03-02&format=json")
            .await;
        assert_eq!(reconciliation[0]["missing"], json!(0));
        let (status, csv) = server
            .admin()
            .text("/v1/tenants/acme/reconciliation?from=2026-03-02&to=2026-03-02&format=csv")
            .await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            csv.starts_with(
                "date,accepted,duplicates,late,invalid,conflicts,missing,missing_ratio"
            ),
            "{csv}"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn a_suspended_tenant_keeps_its_usage_and_a_deleted_one_refuses_it() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.tenant("acme").await;
        let ingest = server.operator("meter", "ingest").await;
        let (status, _) = server
            .admin()
            .post("/v1/tenants/acme/suspend", json!({"reason": "unpaid"}))
            .await;
        assert_eq!(status, StatusCode::OK);
        // ADR 0002: usage emitted before the suspension still arrives and is billable.
        let (_, body) = ingest
            .post("/v1/events", json!([event("acme", "s1", "4", START)]))
            .await;
        assert_eq!(statuses(&body), ["accepted"], "{backend:?} {body}");
        assert!(
            body["results"][0]["flags"]
                .as_array()
                .unwrap()
                .contains(&json!("tenant_suspended")),
            "{body}"
        );
        let approver = server.operator("anna", "approver").await;
        let requester = server.operator("olga", "operator").await;
        let (_, body) = requester
            .post(
                "/v1/tenants/acme/delete",
                json!({"reason": "gone", "confirm": "acme"}),
            )
            .await;
        let approval = body["approval"]["id"].as_str().unwrap().to_owned();
        approver
            .post(&format!("/v1/approvals/{approval}/approve"), json!({}))
            .await;
        // A tombstoned tenant's ledger is frozen: its usage is refused, with the reason kept.
        let (_, body) = ingest
            .post("/v1/events", json!([event("acme", "s2", "4", START)]))
            .await;
        assert_eq!(statuses(&body), ["rejected"], "{body}");
        assert_eq!(body["results"][0]["errors"][0]["field"], json!("tenant_id"));
        assert!(
            body["results"][0]["error"]
                .as_str()
                .unwrap()
                .contains("deleting"),
            "{body}"
        );
        let (_, reconciliation) = server
            .admin()
            .get("/v1/tenants/acme/reconciliation?from=2026-03-02&to=2026-03-02")
            .await;
        assert_eq!(reconciliation[0]["accepted"], json!(1));
        assert_eq!(reconciliation[0]["invalid"], json!(1));
        server.stop().await;
    }
}

/// Issue #20, point 8: 81 events of `999999999999999.999999999999` on one day. The total of 80
/// is exact (`79999999999999999.99999999992`: its last fractional digit is a zero), the total
/// of 81 no longer fits a decimal's 96-bit mantissa and rust_decimal would round it. The
/// writer refuses the event that would make the day's total inexact (field `quantity`), so
/// the rollup is the exact sum of the accepted ones and `ledger verify` agrees. Sent as one
/// batch (the group's own total) and again one event per request (the stored total).
#[tokio::test]
async fn a_day_total_that_would_round_refuses_the_event_instead() {
    let big = "999999999999999.999999999999";
    for backend in BACKENDS {
        for per_request in [81, 1] {
            let server = TestServer::start(backend).await;
            server.tenant("acme").await;
            let ingest = server.operator("meter", "ingest").await;
            let mut statuses_seen = Vec::new();
            let mut errors = Vec::new();
            let events: Vec<Value> = (0..81)
                .map(|i| event("acme", &format!("big-{i}"), big, START))
                .collect();
            for batch in events.chunks(per_request) {
                let (status, body) = ingest.post("/v1/events", json!(batch)).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                statuses_seen.extend(statuses(&body));
                for result in body["results"].as_array().unwrap() {
                    if result["status"] == json!("rejected") {
                        errors.push(result["errors"][0].clone());
                    }
                }
            }
            let accepted = statuses_seen.iter().filter(|s| *s == "accepted").count();
            assert_eq!(accepted, 80, "{backend:?} {statuses_seen:?}");
            assert_eq!(errors.len(), 1, "{errors:?}");
            for error in &errors {
                assert_eq!(error["field"], json!("quantity"), "{error}");
                assert!(
                    error["message"].as_str().unwrap().contains("exactly"),
                    "{error}"
                );
            }
            let (_, daily) = server
                .admin()
                .get("/v1/tenants/acme/usage/daily?from=2026-03-02&to=2026-03-02")
                .await;
            assert_eq!(
                daily[0]["quantity"],
                json!("79999999999999999.99999999992"),
                "{backend:?} {daily}"
            );
            assert_eq!(daily[0]["events"], json!(80));
            let (_, reconciliation) = server
                .admin()
                .get("/v1/tenants/acme/reconciliation?from=2026-03-02&to=2026-03-02")
                .await;
            assert_eq!(reconciliation[0]["invalid"], json!(1), "{reconciliation}");
            let problems = server.app.ledger().verify(Some("acme")).await.unwrap();
            assert!(problems.is_empty(), "{backend:?}: {problems:?}");
            server.stop().await;
        }
    }
}
