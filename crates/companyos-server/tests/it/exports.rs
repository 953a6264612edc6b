//! Exports (CONTRACT §6, §8): the CSV (by `?format=csv` and by `Accept: text/csv`) and JSONL
//! forms of the usage, reconciliation and audit reports parse back — with an RFC 4180 parser
//! written here — to exactly the numbers and values of the JSON form.

use std::str::FromStr as _;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use time::Duration;

use crate::support::{Api, BACKENDS, START, TestServer, event};

/// Parses RFC 4180 CSV strictly: records end with CRLF; fields are quoted when they hold a
/// comma, quote or line break, and quotes inside are doubled.
fn try_parse_csv(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                    if !matches!(chars.peek(), None | Some(',') | Some('\r')) {
                        return Err("a closing quote must end its field".to_owned());
                    }
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' => {
                if !field.is_empty() || was_quoted {
                    return Err("a quote inside an unquoted field".to_owned());
                }
                quoted = true;
                was_quoted = true;
            }
            ',' => {
                record.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            '\r' => {
                if chars.next() != Some('\n') {
                    return Err("records end with CRLF".to_owned());
                }
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
                was_quoted = false;
            }
            '\n' => return Err("a bare LF outside quotes".to_owned()),
            c => field.push(c),
        }
    }
    if quoted {
        return Err("an unterminated quoted field".to_owned());
    }
    if !field.is_empty() || !record.is_empty() || was_quoted {
        return Err("the last record must end with CRLF".to_owned());
    }
    Ok(records)
}

fn parse_csv(text: &str) -> Vec<Vec<String>> {
    try_parse_csv(text).unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

#[test]
fn the_csv_parser_follows_rfc_4180() {
    assert_eq!(
        parse_csv("a,b\r\n\"x,y\",\"say \"\"hi\"\"\"\r\n\"two\r\nlines\",\r\n"),
        vec![
            vec!["a".to_owned(), "b".to_owned()],
            vec!["x,y".to_owned(), "say \"hi\"".to_owned()],
            vec!["two\r\nlines".to_owned(), String::new()],
        ]
    );
    for malformed in ["a\nb\r\n", "\"a\r\n", "a\"b\r\n", "\"a\"b\r\n", "a,b"] {
        assert!(try_parse_csv(malformed).is_err(), "{malformed:?}");
    }
}

/// The cell a text value becomes: the exports prefix what a spreadsheet would run as a formula
/// with a quote (documented in `companyos_server::csv`).
fn cell(text: &str) -> String {
    companyos_server::csv::guard_formula(text)
}

fn text_cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => cell(s),
        other => panic!("not text: {other}"),
    }
}

fn decimal(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap_or_else(|_| panic!("{text:?} is an exact decimal"))
}

fn integer(text: &str) -> i64 {
    text.parse()
        .unwrap_or_else(|_| panic!("{text:?} is an integer"))
}

/// GETs `path` with an Accept header.
async fn get_accepting(api: &Api, path: &str, accept: &str) -> (StatusCode, HeaderMap, String) {
    let response = api
        .http
        .get(format!("{}{path}", api.url))
        .bearer_auth(api.token.as_deref().unwrap())
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// The JSON form and the two CSV forms (query and Accept) of a report, the CSV parsed.
async fn forms(api: &Api, path: &str) -> (Vec<Value>, Vec<Vec<String>>) {
    let separator = if path.contains('?') { '&' } else { '?' };
    let (status, json) = api.get(path).await;
    assert_eq!(status, StatusCode::OK, "{path}: {json}");
    let (status, headers, by_query) = api
        .raw(
            reqwest::Method::GET,
            &format!("{path}{separator}format=csv"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{by_query}");
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    let (status, headers, by_accept) = get_accepting(api, path, "text/csv").await;
    assert_eq!(status, StatusCode::OK, "{by_accept}");
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(by_query, by_accept, "both ways of asking give the same CSV");
    (json.as_array().unwrap().clone(), parse_csv(&by_query))
}

fn header(csv: &[Vec<String>]) -> Vec<&str> {
    csv[0].iter().map(String::as_str).collect()
}

/// Usage on two days: units that need quoting or a formula guard, exact decimals, late events,
/// duplicates, conflicts, rejections and a source gap.
async fn meter(server: &TestServer) {
    let ingest = server.operator("meter", "ingest").await;
    let key = companyos_sdk::SourceKey::generate("gw-1");
    let (status, body) = ingest
        .post(
            "/v1/sources",
            json!({"id": "gw-1", "service": "api", "public_key": key.public_key_base64()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let yesterday = START - Duration::hours(20);
    let with = |id: &str, quantity: Value, unit: &str, at| {
        let mut e = event("acme", id, "1", at);
        e["quantity"] = quantity;
        e["unit"] = json!(unit);
        e
    };
    let sourced = |id: &str, seq: u64, at| {
        let mut e = event("acme", id, "2.25", at);
        e["source"] = json!("gw-1");
        e["source_seq"] = json!(seq);
        e
    };
    let mut conflict = event("acme", "a1", "99", START);
    conflict["request_id"] = json!("another");
    let batch = json!([
        with("a1", json!("12.500"), "req, \"x\"", START),
        with("a2", json!("0.000000000001"), "req, \"x\"", START),
        with("a3", json!("999999999.999999999999"), "req, \"x\"", START),
        with("a4", json!(7), "=cells", START),
        with("a5", json!("3"), "-h", yesterday),
        with("a6", json!("0.5"), "-h", yesterday),
        with("late", json!("4"), "=cells", START - Duration::hours(50)),
        with("a1", json!("12.500"), "req, \"x\"", START),
        conflict,
        event("acme", "bad", "-1", START),
        event("acme", "bad2", "1", START + Duration::hours(2)),
        sourced("s1", 1, yesterday),
        sourced("s2", 2, yesterday),
        sourced("s5", 5, START),
        sourced("s9", 9, START),
    ]);
    let (status, body) = ingest.post("/v1/events", batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rejected"], json!(2), "{body}");
    assert_eq!(body["conflicts"], json!(1), "{body}");
}

#[tokio::test]
async fn usage_and_reconciliation_csv_equal_the_json() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.tenant("acme").await;
        meter(&server).await;
        let admin = server.admin();
        let range = "from=2026-02-27&to=2026-03-03";

        let (json, csv) = forms(&admin, &format!("/v1/tenants/acme/usage/daily?{range}")).await;
        assert_eq!(
            header(&csv),
            [
                "date",
                "service",
                "metric",
                "unit",
                "quantity",
                "events",
                "late_quantity",
                "late_events"
            ]
        );
        assert_eq!(csv.len() - 1, json.len(), "{backend:?} {csv:?}");
        assert!(json.len() >= 4, "{json:?}");
        for (row, cells) in json.iter().zip(&csv[1..]) {
            assert_eq!(cells.len(), 8);
            assert_eq!(cells[0], row["date"].as_str().unwrap());
            assert_eq!(cells[1], text_cell(&row["service"]));
            assert_eq!(cells[2], text_cell(&row["metric"]));
            assert_eq!(cells[3], text_cell(&row["unit"]), "{cells:?}");
            let quantity = row["quantity"].as_str().unwrap();
            assert_eq!(decimal(&cells[4]), decimal(quantity));
            assert_eq!(cells[4], quantity, "the same digits");
            assert_eq!(integer(&cells[5]), row["events"].as_i64().unwrap());
            assert_eq!(cells[6], row["late_quantity"].as_str().unwrap());
            assert_eq!(integer(&cells[7]), row["late_events"].as_i64().unwrap());
        }
        // The exact sums survive both forms.
        let quoted = json
            .iter()
            .find(|r| r["unit"] == json!("req, \"x\""))
            .unwrap();
        assert_eq!(quoted["quantity"], json!("1000000012.5"));
        assert_eq!(quoted["events"], json!(3));
        // `?format=jsonl` means NDJSON here as on the audit route: a JSON object a line.
        for path in ["usage/daily", "reconciliation"] {
            let (status, headers, text) = admin
                .raw(
                    Method::GET,
                    &format!("/v1/tenants/acme/{path}?{range}&format=jsonl"),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(headers["content-type"], "application/x-ndjson");
            let lines: Vec<Value> = text
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect();
            let (_, as_json) = admin.get(&format!("/v1/tenants/acme/{path}?{range}")).await;
            assert_eq!(Value::Array(lines), as_json, "{path}");
        }

        let (json, csv) = forms(&admin, &format!("/v1/tenants/acme/reconciliation?{range}")).await;
        assert_eq!(
            header(&csv),
            [
                "date",
                "accepted",
                "duplicates",
                "late",
                "invalid",
                "conflicts",
                "missing",
                "missing_ratio",
                "unsigned",
                "undeclared",
                "closed",
                "gaps"
            ]
        );
        assert_eq!(csv.len() - 1, json.len());
        assert_eq!(json.len(), 5, "a row a day, to inclusive");
        for (row, cells) in json.iter().zip(&csv[1..]) {
            assert_eq!(cells.len(), 12);
            assert_eq!(cells[0], row["date"].as_str().unwrap());
            for (i, column) in [
                "accepted",
                "duplicates",
                "late",
                "invalid",
                "conflicts",
                "missing",
            ]
            .iter()
            .enumerate()
            {
                assert_eq!(
                    integer(&cells[i + 1]),
                    row[*column].as_i64().unwrap(),
                    "{column} of {}",
                    cells[0]
                );
            }
            assert_eq!(
                decimal(&cells[7]),
                decimal(&row["missing_ratio"].to_string()),
                "missing_ratio of {}",
                cells[0]
            );
            assert_eq!(integer(&cells[8]), row["unsigned"].as_i64().unwrap());
            assert_eq!(integer(&cells[9]), row["undeclared"].as_i64().unwrap());
            assert_eq!(cells[10], row["closed"].as_bool().unwrap().to_string());
            let gaps: Vec<Value> = cells[11]
                .split(' ')
                .filter(|g| !g.is_empty())
                .map(|g| {
                    let (source, range) = g.rsplit_once(':').unwrap();
                    let (from, to) = range.split_once('-').unwrap();
                    json!({"source": source, "from_seq": integer(from), "to_seq": integer(to)})
                })
                .collect();
            assert_eq!(Value::Array(gaps), row["gaps"], "gaps of {}", cells[0]);
        }
        // The numbers compared are not all zero: the day with the gaps, as sent.
        let today = json
            .iter()
            .find(|d| d["date"] == json!("2026-03-02"))
            .unwrap();
        assert_eq!(today["missing"], json!(5), "{today}");
        assert_eq!(today["duplicates"], json!(1));
        assert_eq!(today["conflicts"], json!(1));
        assert_eq!(today["invalid"], json!(2));
        assert_eq!(
            today["missing_ratio"],
            json!(0.454545),
            "5 missing of 11 expected"
        );
        assert_eq!(
            today["gaps"],
            json!([{"source": "gw-1", "from_seq": 3, "to_seq": 4}, {"source": "gw-1", "from_seq": 6, "to_seq": 8}])
        );
        let before = json
            .iter()
            .find(|d| d["date"] == json!("2026-02-28"))
            .unwrap();
        assert_eq!(before["late"], json!(1));
        server.stop().await;
    }
}

#[tokio::test]
async fn audit_csv_and_jsonl_equal_the_json() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.tenant("acme").await;
        meter(&server).await;
        let admin = server.admin();
        // A reason with a comma, quotes and a line break; and a denied attempt.
        let (status, body) = admin
            .post(
                "/v1/tenants/acme/suspend",
                json!({"reason": "unpaid, \"final\" notice\nsecond line"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let viewer = server.operator("watcher", "viewer").await;
        let (status, _) = viewer
            .post("/v1/tenants/acme/reactivate", json!({"reason": "nope"}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        for query in [
            "",
            "?tenant_id=acme",
            "?action=usage.ingest&outcome=success",
        ] {
            let path = format!("/v1/audit{query}");
            let (json, csv) = forms(&admin, &path).await;
            assert_eq!(
                header(&csv),
                [
                    "id",
                    "seq",
                    "occurred_at",
                    "actor",
                    "role",
                    "action",
                    "target",
                    "tenant_id",
                    "outcome",
                    "reason",
                    "request_id",
                    "policy_sha256",
                    "details",
                    "channel"
                ]
            );
            assert!(!json.is_empty(), "{path}");
            assert_eq!(csv.len() - 1, json.len(), "{backend:?} {path}");
            for (record, cells) in json.iter().zip(&csv[1..]) {
                assert_eq!(cells.len(), 14);
                assert_eq!(cells[0], text_cell(&record["id"]));
                assert_eq!(integer(&cells[1]), record["seq"].as_i64().unwrap());
                for (i, column) in [
                    "occurred_at",
                    "actor",
                    "role",
                    "action",
                    "target",
                    "tenant_id",
                    "outcome",
                    "reason",
                    "request_id",
                    "policy_sha256",
                ]
                .iter()
                .enumerate()
                {
                    assert_eq!(
                        cells[i + 2],
                        text_cell(&record[*column]),
                        "{column} of record {}",
                        record["seq"]
                    );
                }
                let details: Value = serde_json::from_str(&cells[12]).unwrap();
                assert_eq!(details, record["details"]);
                assert_eq!(cells[13], text_cell(&record["channel"]), "channel");
            }

            let separator = if query.is_empty() { '?' } else { '&' };
            let (status, headers, jsonl) = admin
                .raw(
                    reqwest::Method::GET,
                    &format!("{path}{separator}format=jsonl"),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(headers["content-type"], "application/x-ndjson");
            let (_, _, by_accept) = get_accepting(&admin, &path, "application/x-ndjson").await;
            assert_eq!(jsonl, by_accept);
            assert!(jsonl.ends_with('\n'));
            let lines: Vec<Value> = jsonl
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect();
            assert_eq!(lines, json, "{path}");
        }

        let (json, csv) = forms(&admin, "/v1/audit?tenant_id=acme").await;
        let suspended = json
            .iter()
            .position(|r| r["action"] == json!("tenant.suspend"))
            .unwrap();
        assert_eq!(
            csv[suspended + 1][9],
            "unpaid, \"final\" notice\nsecond line",
            "the reason survives quoting"
        );
        assert!(
            json.iter()
                .any(|r| r["outcome"] == json!("denied") && r["actor"] == json!("watcher")),
            "{json:?}"
        );
        server.stop().await;
    }
}
