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
        assert!(server.app.verify_ledgers(None).await.unwrap().is_empty());
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
        let problems = server.app.verify_ledgers(Some("acme")).await.unwrap();
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
