//! OpenMeter-compatible API (CONTRACT §11): CloudEvents through the native ingestion path,
//! meters, meter queries (every aggregation, windows, groups, subjects, CSV), subject mapping,
//! and every deny case. Both engines.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use time::Duration;
use time::OffsetDateTime;

use crate::support::{Api, BACKENDS, START, TestServer, audit};

fn at(t: OffsetDateTime) -> String {
    companyos_domain::time_util::format_rfc3339(t)
}

fn cloudevent(
    id: &str,
    subject: &str,
    event_type: &str,
    time: OffsetDateTime,
    data: Value,
) -> Value {
    json!({"specversion": "1.0", "id": id, "source": "gateway", "type": event_type,
           "subject": subject, "time": at(time), "data": data})
}

async fn send(api: &Api, content_type: &str, body: &Value) -> (StatusCode, Value) {
    let (status, headers, text) = api
        .raw(
            Method::POST,
            "/api/v1/events",
            Some((content_type, serde_json::to_vec(body).unwrap())),
        )
        .await;
    if status != StatusCode::NO_CONTENT {
        assert_eq!(
            headers.get("content-type").unwrap(),
            "application/problem+json",
            "{text}"
        );
    }
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Creates the meters of these tests (as a `billing` operator).
async fn meters(server: &TestServer) {
    let billing = server.operator("bill", "billing").await;
    for meter in [
        json!({"slug": "tokens", "eventType": "prompt", "aggregation": "SUM",
               "valueProperty": "$.tokens", "groupBy": {"model": "$.model"}, "unit": "token"}),
        json!({"slug": "prompts", "eventType": "prompt", "aggregation": "COUNT"}),
        json!({"slug": "users", "eventType": "prompt", "aggregation": "UNIQUE_COUNT", "valueProperty": "$.user"}),
        json!({"slug": "tokens_avg", "eventType": "prompt", "aggregation": "AVG", "valueProperty": "$.tokens"}),
        json!({"slug": "tokens_min", "eventType": "prompt", "aggregation": "MIN", "valueProperty": "$.tokens"}),
        json!({"slug": "tokens_max", "eventType": "prompt", "aggregation": "MAX", "valueProperty": "$.tokens"}),
        json!({"slug": "tokens_latest", "eventType": "prompt", "aggregation": "LATEST", "valueProperty": "$.tokens"}),
    ] {
        let (status, body) = billing.post("/api/v1/meters", meter).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
}

async fn query(api: &Api, slug: &str, query: &str) -> Value {
    let (status, body) = api
        .get(&format!("/api/v1/meters/{slug}/query?{query}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{slug}?{query}: {body}");
    body
}

fn values(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["value"].to_string())
        .collect()
}

#[tokio::test]
async fn cloudevents_go_through_native_ingestion_and_resends_change_nothing() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.tenant("acme").await;
        meters(&server).await;
        let ingest = server.operator("gateway", "ingest").await;
        let one = cloudevent(
            "e1",
            "acme",
            "prompt",
            START - Duration::hours(2),
            json!({"tokens": 10, "model": "gpt", "user": "u1"}),
        );
        let (status, body) = send(&ingest, "application/cloudevents+json", &one).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{backend:?} {body}");
        let batch = json!([
            cloudevent(
                "e2",
                "acme",
                "prompt",
                START - Duration::hours(1),
                json!({"tokens": "2.5", "model": "gpt", "user": "u2"})
            ),
            cloudevent(
                "e3",
                "acme",
                "prompt",
                START - Duration::minutes(30),
                json!({"tokens": 7, "model": "claude", "user": "u1"})
            ),
        ]);
        let (status, body) = send(&ingest, "application/cloudevents-batch+json", &batch).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        let (status, _) = send(&ingest, "application/json", &batch).await;
        assert_eq!(
            status,
            StatusCode::NO_CONTENT,
            "a resent batch is all duplicates"
        );
        let (status, _) = send(&ingest, "application/json", &one).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let admin = server.admin();
        // Seven meters, three events: 21 usage events, each once in the native reports.
        let (_, days) = admin
            .get("/v1/tenants/acme/usage/daily?from=2026-03-02&to=2026-03-02")
            .await;
        let tokens = days
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["metric"] == "tokens")
            .unwrap();
        assert_eq!(tokens["quantity"], json!("19.5"), "{days}");
        assert_eq!(tokens["events"], json!(3));
        assert_eq!(tokens["service"], json!("cloudevents"));
        let (_, recon) = admin
            .get("/v1/tenants/acme/reconciliation?from=2026-03-02&to=2026-03-02")
            .await;
        assert_eq!(recon[0]["accepted"], json!(21), "{recon}");
        assert_eq!(recon[0]["duplicates"], json!(21), "{recon}");
        // The tenant computes its event's id and proves it in the ledger.
        let event_id = companyos_domain::cloudevent::usage_event_id("gateway", "e1", "tokens");
        let (status, proof) = admin
            .get(&format!(
                "/v1/tenants/acme/ledger/proof?event_id={event_id}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{proof}");
        // The meter is a declared metric: no coverage flag on these events.
        let (_, coverage) = admin.get("/v1/metering/coverage").await;
        assert_eq!(
            coverage["services_without_declaration"],
            json!([]),
            "{coverage}"
        );
        assert_eq!(coverage["undeclared_metrics"], json!([]), "{coverage}");
        server.stop().await;
    }
}

#[tokio::test]
async fn bad_and_conflicting_cloudevents_are_named_and_the_good_ones_kept() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.tenant("acme").await;
        meters(&server).await;
        let ingest = server.operator("gateway", "ingest").await;
        let t = START - Duration::hours(1);
        let original = cloudevent("c1", "acme", "prompt", t, json!({"tokens": 1, "user": "u"}));
        assert_eq!(
            send(&ingest, "application/cloudevents+json", &original)
                .await
                .0,
            StatusCode::NO_CONTENT
        );
        let mut missing_subject =
            cloudevent("c2", "acme", "prompt", t, json!({"tokens": 1, "user": "u"}));
        missing_subject.as_object_mut().unwrap().remove("subject");
        let batch = json!([
            missing_subject,
            cloudevent("c3", "acme", "unknown-type", t, json!({})),
            cloudevent("c4", "acme", "prompt", t, json!({"tokens": 4, "user": "u"})),
            cloudevent(
                "c1",
                "acme",
                "prompt",
                t,
                json!({"tokens": 99, "user": "u"})
            ),
            cloudevent(
                "c5",
                "ghost",
                "prompt",
                t,
                json!({"tokens": 1, "user": "u"})
            ),
            cloudevent(
                "c6",
                "acme",
                "prompt",
                t,
                json!({"tokens": -3, "user": "u"})
            ),
        ]);
        let (status, problem) = send(&ingest, "application/cloudevents-batch+json", &batch).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&"events[0].subject"), "{problem}");
        assert!(fields.contains(&"events[1].type"), "{problem}");
        assert!(
            fields.contains(&"events[3].id"),
            "a conflict names the event: {problem}"
        );
        assert!(fields.contains(&"events[4].subject"), "{problem}");
        assert!(fields.contains(&"events[5].data.tokens"), "{problem}");
        assert!(
            !fields.iter().any(|f| f.starts_with("events[2]")),
            "{problem}"
        );
        let indexes: Vec<u64> = problem["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["index"].as_u64().unwrap())
            .collect();
        assert_eq!(indexes, [0, 1, 3, 4, 5]);
        // The good event is kept; the conflict's original stands.
        let body = query(&server.admin(), "tokens", "").await;
        assert_eq!(values(&body), ["5"], "{body}");
        // Malformed bodies and other media types.
        let (status, _) = send(&ingest, "application/cloudevents+json", &json!([original])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _, _) = ingest
            .raw(
                Method::POST,
                "/api/v1/events",
                Some(("text/plain", b"x".to_vec())),
            )
            .await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        server.stop().await;
    }
}

#[tokio::test]
async fn meter_queries_aggregate_exactly_by_window_group_and_subject() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.tenant("acme").await;
        server.tenant("beta").await;
        meters(&server).await;
        let ingest = server.operator("gateway", "ingest").await;
        let day1 = START - Duration::days(1);
        let batch = json!([
            cloudevent(
                "q1",
                "acme",
                "prompt",
                day1,
                json!({"tokens": "0.1", "model": "gpt", "user": "u1"})
            ),
            cloudevent(
                "q2",
                "acme",
                "prompt",
                day1 + Duration::minutes(1),
                json!({"tokens": "0.2", "model": "gpt", "user": "u2"})
            ),
            cloudevent(
                "q3",
                "acme",
                "prompt",
                START,
                json!({"tokens": 3, "model": "claude", "user": "u1"})
            ),
            cloudevent(
                "q4",
                "beta",
                "prompt",
                START,
                json!({"tokens": 5, "model": "gpt", "user": "u9"})
            ),
        ]);
        assert_eq!(
            send(&ingest, "application/cloudevents-batch+json", &batch)
                .await
                .0,
            StatusCode::NO_CONTENT
        );
        let admin = server.admin();
        let range = "from=2026-03-01T00:00:00Z&to=2026-03-03T00:00:00Z";
        // Rollups (whole UTC days) and payloads (any other range) agree, exactly.
        let daily = query(
            &admin,
            "tokens",
            &format!("{range}&windowSize=DAY&subject=acme"),
        )
        .await;
        assert_eq!(values(&daily), ["0.3", "3"], "{daily}");
        assert_eq!(
            daily["data"][0]["windowStart"],
            json!("2026-03-01T00:00:00.000000Z")
        );
        assert_eq!(
            daily["data"][0]["windowEnd"],
            json!("2026-03-02T00:00:00.000000Z")
        );
        assert_eq!(daily["data"][0]["subject"], json!("acme"));
        assert_eq!(daily["windowSize"], json!("DAY"));
        let scanned = query(
            &admin,
            "tokens",
            "from=2026-03-01T00:00:01Z&to=2026-03-02T23:00:00Z&windowSize=DAY&subject=acme",
        )
        .await;
        assert_eq!(values(&scanned), ["0.3", "3"], "{scanned}");
        let all = query(&admin, "tokens", range).await;
        assert_eq!(values(&all), ["8.3"], "{all}");
        assert_eq!(all["data"][0]["subject"], Value::Null);
        let by_subject = query(&admin, "tokens", &format!("{range}&groupBy=subject")).await;
        assert_eq!(values(&by_subject), ["3.3", "5"], "{by_subject}");
        let by_model = query(&admin, "tokens", &format!("{range}&groupBy=model")).await;
        assert_eq!(values(&by_model), ["3", "5.3"], "{by_model}");
        assert_eq!(by_model["data"][0]["groupBy"], json!({"model": "claude"}));
        let filtered = query(
            &admin,
            "tokens",
            &format!("{range}&filterGroupBy%5Bmodel%5D=gpt&subject=acme"),
        )
        .await;
        assert_eq!(values(&filtered), ["0.3"], "{filtered}");
        for (slug, expected) in [
            ("prompts", "3"),
            ("users", "2"),
            ("tokens_avg", "1.1"),
            ("tokens_min", "0.1"),
            ("tokens_max", "3"),
            ("tokens_latest", "3"),
        ] {
            let body = query(&admin, slug, &format!("{range}&subject=acme")).await;
            assert_eq!(values(&body), [expected], "{slug}: {body}");
        }
        let hourly = query(
            &admin,
            "prompts",
            &format!("{range}&windowSize=HOUR&windowTimeZone=%2B02:00"),
        )
        .await;
        assert_eq!(hourly["data"].as_array().unwrap().len(), 2, "{hourly}");
        let (status, problem) = admin
            .get(&format!(
                "/api/v1/meters/tokens/query?{range}&windowTimeZone=Mars/Olympus_Mons"
            ))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(problem["errors"][0]["field"], json!("windowTimeZone"));
        let (status, problem) = admin
            .get(&format!(
                "/api/v1/meters/tokens/query?{range}&groupBy=colour"
            ))
            .await;
        assert_eq!(
            (status, problem["errors"][0]["field"].clone()),
            (StatusCode::BAD_REQUEST, json!("groupBy"))
        );
        let (status, _) = admin.get("/api/v1/meters/nothing/query").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // CSV on Accept: text/csv.
        let response = admin
            .http
            .get(format!(
                "{}/api/v1/meters/tokens/query?{range}&groupBy=model",
                admin.url
            ))
            .bearer_auth(admin.token.as_deref().unwrap())
            .header("accept", "text/csv")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let csv = response.text().await.unwrap();
        assert_eq!(
            csv.lines().next(),
            Some("window_start,window_end,subject,model,value")
        );
        assert!(csv.contains(",gpt,5.3"), "{csv}");
        // Meters: list, get, never redefined.
        let (_, list) = admin.get("/api/v1/meters").await;
        assert_eq!(list.as_array().unwrap().len(), 7);
        let (_, meter) = admin.get("/api/v1/meters/tokens").await;
        assert_eq!(meter["groupBy"], json!({"model": "$.model"}));
        let (status, _) = admin
            .post(
                "/api/v1/meters",
                json!({"slug": "tokens", "eventType": "x", "aggregation": "COUNT"}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        let (status, problem) = admin
            .post(
                "/api/v1/meters",
                json!({"slug": "x", "eventType": "x", "aggregation": "SUM"}),
            )
            .await;
        assert_eq!(
            (status, problem["errors"][0]["field"].clone()),
            (StatusCode::BAD_REQUEST, json!("valueProperty"))
        );
        server.stop().await;
    }
}

/// The `prompts` (COUNT) rows of a query: (windowStart, windowEnd, value).
async fn count_windows(api: &Api, query_text: &str) -> Vec<(String, String, String)> {
    let body = query(api, "prompts", query_text).await;
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let text = |name: &str| row[name].as_str().unwrap_or_default().to_owned();
            (
                text("windowStart"),
                text("windowEnd"),
                row["value"].to_string(),
            )
        })
        .collect()
}

fn window(start: &str, end: &str, value: &str) -> (String, String, String) {
    (
        format!("{start}.000000Z"),
        format!("{end}.000000Z"),
        value.to_owned(),
    )
}

#[tokio::test]
async fn iana_zones_cut_local_days_of_23_and_25_hours() {
    use time::macros::datetime;
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.tenant("acme").await;
        meters(&server).await;
        let ingest = server.operator("gateway", "ingest").await;
        let data = json!({"tokens": 1, "model": "gpt", "user": "u1"});
        // Europe/Berlin springs forward on 2026-03-29 (02:00 CET -> 03:00 CEST) and falls back
        // on 2026-10-25 (03:00 CEST -> 02:00 CET); America/New_York springs on 2026-03-08.
        for (clock, times) in [
            (
                datetime!(2026-03-30 12:00 UTC),
                vec![
                    datetime!(2026-03-08 04:30 UTC), // 23:30 EST on the 7th
                    datetime!(2026-03-08 05:30 UTC), // 00:30 EST on the 8th
                    datetime!(2026-03-09 03:30 UTC), // 23:30 EDT on the 8th
                    datetime!(2026-03-28 23:30 UTC), // 00:30 CET on the 29th
                    datetime!(2026-03-29 00:30 UTC), // 01:30 CET
                    datetime!(2026-03-29 01:30 UTC), // 03:30 CEST
                    datetime!(2026-03-29 21:30 UTC), // 23:30 CEST on the 29th
                    datetime!(2026-03-29 22:30 UTC), // 00:30 CEST on the 30th
                ],
            ),
            (
                datetime!(2026-10-26 12:00 UTC),
                vec![
                    datetime!(2026-10-24 22:30 UTC), // 00:30 CEST on the 25th
                    datetime!(2026-10-25 22:30 UTC), // 23:30 CET on the 25th
                ],
            ),
        ] {
            server.clock.set(clock);
            let batch: Vec<Value> = times
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    cloudevent(
                        &format!("dst-{}-{i}", clock.unix_timestamp()),
                        "acme",
                        "prompt",
                        *t,
                        data.clone(),
                    )
                })
                .collect();
            let (status, body) =
                send(&ingest, "application/cloudevents-batch+json", &json!(batch)).await;
            assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        }
        let admin = server.admin();
        let berlin = "windowTimeZone=Europe/Berlin";
        assert_eq!(
            count_windows(
                &admin,
                &format!(
                    "from=2026-03-28T23:00:00Z&to=2026-03-30T22:00:00Z&windowSize=DAY&{berlin}"
                )
            )
            .await,
            [
                window("2026-03-28T23:00:00", "2026-03-29T22:00:00", "4"), // 23 hours
                window("2026-03-29T22:00:00", "2026-03-30T22:00:00", "1"),
            ]
        );
        assert_eq!(
            count_windows(
                &admin,
                &format!(
                    "from=2026-10-24T22:00:00Z&to=2026-10-26T23:00:00Z&windowSize=DAY&{berlin}"
                )
            )
            .await,
            [window("2026-10-24T22:00:00", "2026-10-25T23:00:00", "2")] // 25 hours
        );
        // Hours follow the local clock and stay one hour long across the gap.
        assert_eq!(
            count_windows(
                &admin,
                &format!(
                    "from=2026-03-29T00:00:00Z&to=2026-03-29T02:00:00Z&windowSize=HOUR&{berlin}"
                )
            )
            .await,
            [
                window("2026-03-29T00:00:00", "2026-03-29T01:00:00", "1"),
                window("2026-03-29T01:00:00", "2026-03-29T02:00:00", "1"),
            ]
        );
        assert_eq!(
            count_windows(
                &admin,
                &format!(
                    "from=2026-03-01T00:00:00Z&to=2026-04-01T00:00:00Z&windowSize=MONTH&{berlin}"
                )
            )
            .await,
            [window("2026-02-28T23:00:00", "2026-03-31T22:00:00", "8")]
        );
        assert_eq!(
            count_windows(&admin, "from=2026-03-07T05:00:00Z&to=2026-03-09T04:00:00Z&windowSize=DAY&windowTimeZone=America/New_York").await,
            [
                window("2026-03-07T05:00:00", "2026-03-08T05:00:00", "1"),
                window("2026-03-08T05:00:00", "2026-03-09T04:00:00", "2"), // 23 hours
            ]
        );
        // A fixed offset is the same every day of the year.
        assert_eq!(
            count_windows(&admin, "from=2026-03-28T23:00:00Z&to=2026-03-29T23:00:00Z&windowSize=DAY&windowTimeZone=%2B01:00").await,
            [window("2026-03-28T23:00:00", "2026-03-29T23:00:00", "5")]
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn mapped_subjects_belong_to_their_tenant() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let acme_key = server.tenant("acme").await;
        server.tenant("beta").await;
        meters(&server).await;
        let operator = server.operator("ops", "operator").await;
        let (status, body) = operator
            .put(
                "/v1/tenants/acme/subjects",
                json!({"subjects": ["user-1", "user-2"]}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["subjects"], json!(["user-1", "user-2"]));
        let (status, _) = operator
            .put("/v1/tenants/beta/subjects", json!({"subjects": ["user-1"]}))
            .await;
        assert_eq!(
            status,
            StatusCode::CONFLICT,
            "a subject belongs to one tenant"
        );
        let (status, _) = operator
            .put("/v1/tenants/beta/subjects", json!({"subjects": ["acme"]}))
            .await;
        assert_eq!(
            status,
            StatusCode::CONFLICT,
            "another tenant's id is that tenant's subject"
        );
        let ingest = server.operator("gateway", "ingest").await;
        let batch = json!([
            cloudevent(
                "m1",
                "user-1",
                "prompt",
                START,
                json!({"tokens": 1, "user": "a"})
            ),
            cloudevent(
                "m2",
                "user-2",
                "prompt",
                START,
                json!({"tokens": 2, "user": "b"})
            ),
            cloudevent(
                "m3",
                "acme",
                "prompt",
                START,
                json!({"tokens": 4, "user": "c"})
            ),
        ]);
        assert_eq!(
            send(&ingest, "application/cloudevents-batch+json", &batch)
                .await
                .0,
            StatusCode::NO_CONTENT
        );
        let range = "from=2026-03-02T00:00:00Z&to=2026-03-03T00:00:00Z";
        let by_subject = query(
            &server.admin(),
            "tokens",
            &format!("{range}&groupBy=subject"),
        )
        .await;
        let subjects: Vec<&str> = by_subject["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["subject"].as_str().unwrap())
            .collect();
        assert_eq!(subjects, ["acme", "user-1", "user-2"], "{by_subject}");
        assert_eq!(values(&by_subject), ["4", "1", "2"]);
        // The tenant's own key reads its subjects, never another tenant's.
        let tenant = server.api(&acme_key);
        let own = query(&tenant, "tokens", &format!("{range}&subject=user-2")).await;
        assert_eq!(values(&own), ["2"]);
        let all_own = query(&tenant, "tokens", range).await;
        assert_eq!(values(&all_own), ["7"]);
        let (status, _) = tenant
            .get(&format!("/api/v1/meters/tokens/query?{range}&subject=beta"))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (_, listed) = tenant.get("/v1/tenants/acme/subjects").await;
        assert_eq!(listed["subjects"], json!(["user-1", "user-2"]));
        server.stop().await;
    }
}

#[tokio::test]
async fn every_openmeter_deny_case_is_refused_and_audited() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let acme_key = server.tenant("acme").await;
        meters(&server).await;
        let meter = json!({"slug": "more", "eventType": "x", "aggregation": "COUNT"});
        for role in ["viewer", "operator", "ingest", "auditor", "approver"] {
            let api = server.operator(&format!("{role}-1"), role).await;
            let (status, _) = api.post("/api/v1/meters", meter.clone()).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{role} creates no meter");
        }
        let tenant = server.api(&acme_key);
        assert_eq!(
            tenant.post("/api/v1/meters", meter.clone()).await.0,
            StatusCode::FORBIDDEN
        );
        let event = cloudevent(
            "d1",
            "acme",
            "prompt",
            START,
            json!({"tokens": 1, "user": "u"}),
        );
        assert_eq!(
            send(&tenant, "application/cloudevents+json", &event)
                .await
                .0,
            StatusCode::FORBIDDEN
        );
        let viewer = server.operator("viewer-2", "viewer").await;
        assert_eq!(
            send(&viewer, "application/cloudevents+json", &event)
                .await
                .0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            send(&server.anonymous(), "application/cloudevents+json", &event)
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
        let ingest = server.operator("ingest-2", "ingest").await;
        assert_eq!(
            ingest.get("/api/v1/meters/tokens/query").await.0,
            StatusCode::FORBIDDEN,
            "ingest accounts read no usage"
        );
        assert_eq!(
            viewer
                .put("/v1/tenants/acme/subjects", json!({"subjects": ["x"]}))
                .await
                .0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            tenant
                .put("/v1/tenants/acme/subjects", json!({"subjects": ["x"]}))
                .await
                .0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            server.anonymous().get("/api/v1/meters").await.0,
            StatusCode::UNAUTHORIZED
        );
        let denied = audit(&server, "action=meter.create").await;
        assert_eq!(
            denied.iter().filter(|r| r["outcome"] == "denied").count(),
            6,
            "{denied:?}"
        );
        let denied = audit(&server, "action=tenant.subjects.update").await;
        assert_eq!(
            denied.iter().filter(|r| r["outcome"] == "denied").count(),
            2
        );
        server.stop().await;
    }
}
