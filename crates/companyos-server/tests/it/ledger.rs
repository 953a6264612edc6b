//! The verifiable ledger (CONTRACT §7): a tenant proves its event is in a signed checkpoint
//! with nothing but its API key, the verifier key and the ledger crate.

use companyos_domain::event_packing;
use companyos_ledger::encoding::base64_decode;
use companyos_ledger::leaf::UsageLeaf;
use companyos_ledger::merkle::{verify_consistency, verify_inclusion};
use companyos_ledger::{Checkpoint, Hash, NoteVerifier, leaf_hash};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Row as _;

use crate::support::{BACKENDS, START, TestServer, event};

fn hashes(value: &Value) -> Vec<Hash> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_hex(h.as_str().unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn a_tenant_proves_its_event_is_in_a_signed_checkpoint() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let acme_key = server.tenant("acme").await;
        let other_key = server.tenant("other").await;
        let ingest = server.operator("meter", "ingest").await;
        let events: Vec<Value> = (0..37)
            .map(|i| event("acme", &format!("e{i}"), "1", START))
            .collect();
        let (status, _) = ingest.post("/v1/events", json!(events)).await;
        assert_eq!(status, StatusCode::OK);
        let tenant = server.api(&acme_key);
        let (status, key_text) = server.anonymous().text("/v1/ledger/verifier-key").await;
        assert_eq!(status, StatusCode::OK);
        let verifier = NoteVerifier::parse(key_text.trim()).unwrap();
        let (status, proof) = tenant
            .get("/v1/tenants/acme/ledger/proof?event_id=e20")
            .await;
        assert_eq!(status, StatusCode::OK, "{backend:?} {proof}");
        let checkpoint = Checkpoint::open(
            proof["checkpoint"].as_str().unwrap().as_bytes(),
            Some("companyos.local/tenants/acme"),
            &verifier,
        )
        .unwrap();
        assert_eq!(checkpoint.tree_size(), 37);
        let leaf_data = base64_decode(proof["leaf_data"].as_str().unwrap()).unwrap();
        let leaf = UsageLeaf::parse(&leaf_data).unwrap();
        assert_eq!(leaf.event_id, "e20");
        assert_eq!(leaf.leaf_index, proof["leaf_index"].as_u64().unwrap());
        let expected =
            companyos_domain::usage::UsageEvent::parse(&event("acme", "e20", "1", START)).unwrap();
        assert_eq!(
            leaf.digest, expected.digest,
            "the leaf commits to the event as sent"
        );
        verify_inclusion(
            &leaf_hash(&leaf_data),
            leaf.leaf_index,
            checkpoint.tree_size(),
            &hashes(&proof["proof"]),
            checkpoint.root(),
        )
        .unwrap();
        // The tree only grows: a consistency proof links an older size to the checkpoint.
        let (_, old) = tenant
            .get("/v1/tenants/acme/ledger/proof?event_id=e3&tree_size=10")
            .await;
        assert_eq!(old["tree_size"], json!(10));
        let (status, consistency) = tenant
            .get("/v1/tenants/acme/ledger/consistency?from=10&to=37")
            .await;
        assert_eq!(status, StatusCode::OK);
        let old_leaf = base64_decode(old["leaf_data"].as_str().unwrap()).unwrap();
        let old_root = companyos_ledger::merkle::root_from_inclusion_proof(
            &leaf_hash(&old_leaf),
            3,
            10,
            &hashes(&old["proof"]),
        )
        .unwrap();
        verify_consistency(
            10,
            37,
            &old_root,
            checkpoint.root(),
            &hashes(&consistency["proof"]),
        )
        .unwrap();
        // Another tenant's key reads nothing of acme's ledger.
        let (status, _) = server
            .api(&other_key)
            .get("/v1/tenants/acme/ledger/proof?event_id=e20")
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = server
            .api(&other_key)
            .get("/v1/tenants/acme/ledger/checkpoint")
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        server.stop().await;
    }
}

#[tokio::test]
async fn ledger_verify_finds_tampering_and_names_tenant_and_leaf() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.tenant("acme").await;
        let ingest = server.operator("meter", "ingest").await;
        let events: Vec<Value> = (0..40)
            .map(|i| event("acme", &format!("e{i}"), "2", START))
            .collect();
        ingest.post("/v1/events", json!(events)).await;
        server
            .admin()
            .text("/v1/tenants/acme/ledger/checkpoint")
            .await;
        assert!(server.app.ledger().verify(None).await.unwrap().is_empty());
        let db = server.app.db().readers();
        // One byte of event 17's stored payload: its quantity "2" becomes "3". The payload is
        // packed (ADR 0009): the entry starts with the id's length and text, and the quantity
        // member's name is one token byte.
        let quantity_member = [event_packing::TOKEN_QUANTITY_STRING, b'2', b'"'];
        let bundles =
            sqlx::query("SELECT id, events FROM usage_event_bundles WHERE tenant_id = 'acme'")
                .fetch_all(db)
                .await
                .unwrap();
        let mut tampered = false;
        for bundle in &bundles {
            let mut bytes: Vec<u8> = bundle.get("events");
            let Some(at) = find_bytes(&bytes, b"\x03e17") else {
                continue;
            };
            let quantity = at + find_bytes(&bytes[at..], &quantity_member).unwrap();
            bytes[quantity + 1] = b'3';
            sqlx::query("UPDATE usage_event_bundles SET events = $1 WHERE id = $2")
                .bind(bytes)
                .bind(bundle.get::<i64, _>("id"))
                .execute(db)
                .await
                .unwrap();
            tampered = true;
        }
        assert!(tampered, "event e17 is stored");
        let problems = server.app.ledger().verify(Some("acme")).await.unwrap();
        assert!(
            problems
                .iter()
                .any(|p| p.log_id == "tenant/acme" && p.leaf_index == Some(17)),
            "{backend:?} {problems:?}"
        );
        server.stop().await;
    }
}

fn find_bytes(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A store written before the packed layouts (ADR 0009) keeps working after the upgrade: its
/// bundles, rewritten here into the old layouts (payloads with ids, digests and canonical forms
/// whole; leaves with ids whole), still verify, still prove, and still dedupe (an identical
/// resend is a duplicate at its original seq, a changed one a conflict), while new events are
/// written packed beside them.
#[tokio::test]
async fn bundles_of_the_layouts_before_packing_are_read_alike() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.tenant("acme").await;
        let ingest = server.operator("meter", "ingest").await;
        let mut events: Vec<Value> = (0..30)
            .map(|i| event("acme", &format!("e{i}"), "2", START))
            .collect();
        events.push(event(
            "acme",
            "8e0c1b2a-3f4d-4e5f-8a9b-0c1d2e3f4a5b",
            "1.5",
            START,
        ));
        let (status, first) = ingest.post("/v1/events", json!(events)).await;
        assert_eq!(status, StatusCode::OK, "{first}");
        let db = server.app.db().readers();
        let rows = sqlx::query(
            "SELECT id, first_seq, event_count, received_at, event_keys, events \
             FROM usage_event_bundles WHERE tenant_id = 'acme'",
        )
        .fetch_all(db)
        .await
        .unwrap();
        for row in &rows {
            let count: i64 = row.get("event_count");
            let stored = companyos_core::bundles::decode_events(
                "acme",
                row.get::<i64, _>("first_seq") as u64,
                count as usize,
                row.get("received_at"),
                &row.get::<Vec<u8>, _>("event_keys"),
                &row.get::<Vec<u8>, _>("events"),
            )
            .unwrap();
            let whole = companyos_store::bundles::earlier_layouts::encode_events(&stored);
            sqlx::query("UPDATE usage_event_bundles SET events = $1 WHERE id = $2")
                .bind(whole)
                .bind(row.get::<i64, _>("id"))
                .execute(db)
                .await
                .unwrap();
        }
        let rows = sqlx::query(
            "SELECT first_index, leaf_count, leaf_hashes, leaf_data FROM ledger_leaf_bundles \
             WHERE log_id = 'tenant/acme'",
        )
        .fetch_all(db)
        .await
        .unwrap();
        for row in &rows {
            let first: i64 = row.get("first_index");
            let leaves = companyos_core::bundles::decode_leaves(
                &companyos_domain::LogId::parse("tenant/acme").expect("a log id"),
                first as u64,
                row.get::<i64, _>("leaf_count") as usize,
                &row.get::<Vec<u8>, _>("leaf_hashes"),
                Some(&row.get::<Vec<u8>, _>("leaf_data")),
            )
            .unwrap();
            let leaves: Vec<UsageLeaf> = leaves
                .iter()
                .map(|stored| UsageLeaf::parse(&stored.data).unwrap())
                .collect();
            let whole_ids = companyos_store::bundles::earlier_layouts::encode_usage_leaves(&leaves);
            sqlx::query(
                "UPDATE ledger_leaf_bundles SET leaf_data = $1 \
                 WHERE log_id = 'tenant/acme' AND first_index = $2",
            )
            .bind(whole_ids)
            .bind(first)
            .execute(db)
            .await
            .unwrap();
        }
        let problems = server.app.ledger().verify(Some("acme")).await.unwrap();
        assert!(problems.is_empty(), "{backend:?} {problems:?}");
        let (status, again) = ingest.post("/v1/events", json!(events)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(again["duplicates"], 31, "{backend:?} {again}");
        for (was, now) in first["results"]
            .as_array()
            .unwrap()
            .iter()
            .zip(again["results"].as_array().unwrap())
        {
            assert_eq!(was["seq"], now["seq"]);
        }
        let changed = event("acme", "8e0c1b2a-3f4d-4e5f-8a9b-0c1d2e3f4a5b", "9", START);
        let (_, conflict) = ingest.post("/v1/events", json!([changed])).await;
        assert_eq!(conflict["results"][0]["status"], "conflict", "{conflict}");
        let newer: Vec<Value> = (30..40)
            .map(|i| event("acme", &format!("e{i}"), "2", START))
            .collect();
        let (_, newer) = ingest.post("/v1/events", json!(newer)).await;
        assert_eq!(newer["accepted"], 10, "{newer}");
        let problems = server.app.ledger().verify(Some("acme")).await.unwrap();
        assert!(
            problems.is_empty(),
            "{backend:?}: old and new bundles verify together: {problems:?}"
        );
        for event_id in ["e3", "8e0c1b2a-3f4d-4e5f-8a9b-0c1d2e3f4a5b", "e35"] {
            let (status, proof) = server
                .admin()
                .get(&format!(
                    "/v1/tenants/acme/ledger/proof?event_id={event_id}"
                ))
                .await;
            assert_eq!(status, StatusCode::OK, "{backend:?} {event_id} {proof}");
        }
        server.stop().await;
    }
}

/// Issue #20, point 7: `ledger verify` and `audit verify` on a live store. While a task sends
/// batches through the API (each one a group commit that appends leaves and an audit record),
/// verification runs again and again and never reports a problem, because each log is read in
/// one snapshot; once ingestion stops, a changed payload byte is still found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_of_a_live_store_raises_no_false_alarm_and_still_finds_tampering() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.tenant("acme").await;
        let ingest = server.operator("meter", "ingest").await;
        let first: Vec<Value> = (0..40)
            .map(|i| event("acme", &format!("e{i}"), "2", START))
            .collect();
        ingest.post("/v1/events", json!(first)).await;
        server
            .admin()
            .text("/v1/tenants/acme/ledger/checkpoint")
            .await;
        let sender = tokio::spawn(async move {
            for batch in 0..60 {
                let events: Vec<Value> = (0..50)
                    .map(|i| event("acme", &format!("live-{batch}-{i}"), "1.5", START))
                    .collect();
                let (status, body) = ingest.post("/v1/events", json!(events)).await;
                assert_eq!(status, StatusCode::OK, "{body}");
            }
        });
        let mut rounds = 0;
        while !sender.is_finished() || rounds < 3 {
            let ledger = server.app.ledger().verify(Some("acme")).await.unwrap();
            assert!(ledger.is_empty(), "{backend:?} round {rounds}: {ledger:?}");
            let audit = server.app.audit().verify().await.unwrap();
            assert!(audit.is_empty(), "{backend:?} round {rounds}: {audit:?}");
            rounds += 1;
        }
        sender.await.unwrap();
        tamper_quantity_of(&server, "e17").await;
        let problems = server.app.ledger().verify(Some("acme")).await.unwrap();
        assert!(
            problems
                .iter()
                .any(|p| p.log_id == "tenant/acme" && p.leaf_index == Some(17)),
            "{backend:?} {problems:?}"
        );
        server.stop().await;
    }
}

/// Changes the quantity `2` of a stored event's packed payload to `3` (the id is 3 bytes long).
async fn tamper_quantity_of(server: &TestServer, event_id: &str) {
    let db = server.app.db().readers();
    let quantity_member = [event_packing::TOKEN_QUANTITY_STRING, b'2', b'"'];
    let mut needle = vec![u8::try_from(event_id.len()).unwrap()];
    needle.extend_from_slice(event_id.as_bytes());
    let bundles =
        sqlx::query("SELECT id, events FROM usage_event_bundles WHERE tenant_id = 'acme'")
            .fetch_all(db)
            .await
            .unwrap();
    for bundle in &bundles {
        let mut bytes: Vec<u8> = bundle.get("events");
        let Some(at) = find_bytes(&bytes, &needle) else {
            continue;
        };
        let quantity = at + find_bytes(&bytes[at..], &quantity_member).unwrap();
        bytes[quantity + 1] = b'3';
        sqlx::query("UPDATE usage_event_bundles SET events = $1 WHERE id = $2")
            .bind(bytes)
            .bind(bundle.get::<i64, _>("id"))
            .execute(db)
            .await
            .unwrap();
        return;
    }
    panic!("event {event_id} is not stored");
}
