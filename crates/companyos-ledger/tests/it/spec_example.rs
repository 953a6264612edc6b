//! The worked example of `docs/spec/ledger.md`, computed with the library: every value printed
//! in the specification's example section must appear there verbatim, so the document cannot
//! drift from the code. Run with `--nocapture` to see the values.

use companyos_ledger::checkpoint::{Checkpoint, CheckpointSigner};
use companyos_ledger::encoding::{base64_encode, hex_encode};
use companyos_ledger::hash::{empty_tree_root, leaf_hash, node_hash};
use companyos_ledger::jcs::{canonicalize, parse_strict};
use companyos_ledger::leaf::{AuditLeaf, EventClass, UsageLeaf};
use companyos_ledger::merkle::{
    MemoryTree, consistency_proof, inclusion_proof, verify_consistency, verify_inclusion,
};
use companyos_ledger::note::{KeyName, NoteSigner, NoteVerifier};
use companyos_ledger::usage_event::{self, EventDigest, canonical_form, signing_message};
use companyos_ledger::{Hash, hash::sha256};
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};

/// Seeds of the example keys (32 repeated bytes each, for readability; never use such keys).
pub const LOG_KEY_SEED: u8 = 0x4c;
pub const SOURCE_KEY_SEED: u8 = 0x53;
pub const LOG_NAME: &str = "companyos.local";
pub const ORIGIN: &str = "companyos.local/tenants/acme";

/// The events of the example, as the source sends them (before signing), as JSON text.
fn event_text(i: u64) -> String {
    let quantity = if i == 1 {
        "12.50".to_owned()
    } else {
        format!("\"{i}\"")
    };
    format!(
        r#"{{"event_id":"evt-000{i}","tenant_id":"acme","service":"api","metric":"requests","quantity":{quantity},"unit":"request","timestamp":"2026-03-01T12:0{i}:00Z","request_id":"req-{i}","source":"edge-1","source_seq":{i}}}"#
    )
}

/// The value with every object's keys in sorted order, so it prints the same whether or not
/// serde_json keeps insertion order (a feature another crate of a workspace may turn on).
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

fn event(i: u64) -> Value {
    parse_strict(event_text(i).as_bytes()).unwrap()
}

struct Entry {
    label: &'static str,
    value: String,
}

fn compute() -> Vec<Entry> {
    let mut out = Vec::new();
    let mut put = |label: &'static str, value: String| out.push(Entry { label, value });

    // Keys.
    let log = NoteSigner::new(
        KeyName::parse(LOG_NAME).unwrap(),
        SigningKey::from_bytes(&[LOG_KEY_SEED; 32]),
    );
    let verifier = log.verifier();
    put(
        "log public key (hex)",
        hex_encode(verifier.verifying_key().as_bytes()),
    );
    put("key id input (hex)", {
        let mut input = LOG_NAME.as_bytes().to_vec();
        input.push(b'\n');
        input.push(0x01);
        input.extend_from_slice(verifier.verifying_key().as_bytes());
        hex_encode(&input)
    });
    put("key id", format!("{:08x}", verifier.key_id()));
    put("verifier key", verifier.to_string());
    put("signer key", log.to_signer_key());
    assert_eq!(
        NoteVerifier::parse(&verifier.to_string()).unwrap(),
        verifier
    );

    let source = SigningKey::from_bytes(&[SOURCE_KEY_SEED; 32]);
    put(
        "source public key (base64)",
        base64_encode(source.verifying_key().as_bytes()),
    );

    // Event 1: canonical form, digest, signature.
    put("event 1 as sent", event_text(1));
    let sent = event(1);
    let canonical = canonical_form(sent.as_object().unwrap()).unwrap();
    put("canonical form", canonical.clone());
    let digest = EventDigest::of_canonical(canonical.as_bytes());
    put("digest", digest.to_string());
    put(
        "signing message (hex)",
        hex_encode(&signing_message(canonical.as_bytes())),
    );
    let signature = usage_event::sign(&source, canonical.as_bytes());
    put("source_signature", signature.clone());
    let mut as_sent = sent.as_object().unwrap().clone();
    as_sent.insert("source_signature".into(), json!(signature));
    as_sent.insert("digest".into(), json!(digest.to_string()));
    assert_eq!(canonical_form(&as_sent).unwrap(), canonical);
    usage_event::verify(&source.verifying_key(), canonical.as_bytes(), &signature).unwrap();

    // Four events, four leaves.
    let leaves: Vec<UsageLeaf> = (1..=4)
        .map(|i| {
            let e = event(i);
            UsageLeaf {
                tenant_id: "acme".into(),
                leaf_index: i - 1,
                event_id: format!("evt-000{i}"),
                digest: EventDigest::of_canonical(
                    canonical_form(e.as_object().unwrap()).unwrap().as_bytes(),
                ),
                class: EventClass::OnTime,
            }
        })
        .collect();
    put("leaf 0 leaf_data", leaves[0].to_string());
    put(
        "leaf 0 leaf_data (base64)",
        base64_encode(&leaves[0].to_bytes()),
    );
    let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(&l.to_bytes())).collect();
    for (label, h) in ["leaf hash 0", "leaf hash 1", "leaf hash 2", "leaf hash 3"]
        .into_iter()
        .zip(&hashes)
    {
        put(label, h.to_hex());
    }
    let n01 = node_hash(&hashes[0], &hashes[1]);
    put("node (0,1)", n01.to_hex());
    let root3 = node_hash(&n01, &hashes[2]);
    put("root of 3", root3.to_hex());
    put("root of 3 (base64)", root3.to_base64());
    let n23 = node_hash(&hashes[2], &hashes[3]);
    put("node (2,3)", n23.to_hex());
    let root4 = node_hash(&n01, &n23);
    put("root of 4", root4.to_hex());
    put("root of 4 (base64)", root4.to_base64());
    put("empty tree root", empty_tree_root().to_hex());
    let tree = MemoryTree::from_leaf_hashes(hashes.clone());
    assert_eq!(tree.root_at_size(3), root3);
    assert_eq!(tree.root(), root4);

    // Checkpoints of size 3 and 4, signed in order.
    let mut signer = CheckpointSigner::new(log.clone(), ORIGIN, None);
    let cp3 = Checkpoint::new(ORIGIN, 3, root3).unwrap();
    put("checkpoint 3 text", cp3.to_note_text());
    let note3 = signer.sign(&cp3, &[]).unwrap().to_string();
    put("checkpoint 3 note", note3.clone());
    put(
        "checkpoint 3 signature line",
        note3.lines().last().unwrap().to_owned(),
    );
    let proof34 = consistency_proof(&tree, 3, 4).unwrap();
    let cp4 = Checkpoint::new(ORIGIN, 4, root4).unwrap();
    let note4 = signer.sign(&cp4, &proof34).unwrap().to_string();
    put("checkpoint 4 note", note4.clone());

    // Inclusion proof of evt-0001 in tree 3, as GET .../ledger/proof answers it.
    let proof = inclusion_proof(&tree, 0, 3).unwrap();
    assert_eq!(proof, vec![hashes[1], hashes[2]]);
    verify_inclusion(&hashes[0], 0, 3, &proof, &root3).unwrap();
    let response = json!({
        "leaf_index": 0,
        "tree_size": 3,
        "leaf_data": base64_encode(&leaves[0].to_bytes()),
        "proof": proof.iter().map(Hash::to_hex).collect::<Vec<_>>(),
        "checkpoint": note3,
    });
    put(
        "proof response",
        serde_json::to_string_pretty(&sorted(response.clone())).unwrap(),
    );
    // Consistency proof 3 -> 4, as GET .../ledger/consistency?from=3&to=4 answers it.
    assert_eq!(proof34, vec![hashes[2], hashes[3], n01]);
    verify_consistency(3, 4, &root3, &root4, &proof34).unwrap();
    let consistency = json!({
        "from": 3,
        "to": 4,
        "proof": proof34.iter().map(Hash::to_hex).collect::<Vec<_>>(),
    });
    put(
        "consistency response",
        serde_json::to_string_pretty(&sorted(consistency.clone())).unwrap(),
    );

    // An audit leaf.
    let record = json!({
        "id": "aud-0001",
        "occurred_at": "2026-03-01T12:30:00Z",
        "actor": "admin",
        "role": "admin",
        "action": "tenant.suspend",
        "target": "tenant:acme",
        "tenant_id": "acme",
        "outcome": "success",
        "reason": "unpaid invoice",
        "request_id": "req-99",
    });
    let record_canonical = canonicalize(&record).unwrap();
    put("audit record canonical form", record_canonical.clone());
    let audit = AuditLeaf {
        leaf_index: 0,
        audit_id: "aud-0001".into(),
        digest: EventDigest::from_hash(sha256(record_canonical.as_bytes())),
    };
    put("audit leaf_data", audit.to_string());
    put("audit leaf hash", leaf_hash(&audit.to_bytes()).to_hex());

    // Number handling examples of the canonical form.
    for (label, text) in [
        ("number 12.50", "12.50"),
        ("number 1e21", "1e21"),
        ("number 1e-7", "1e-7"),
        ("number 0.000001", "0.000001"),
        ("number -0", "-0"),
        ("number 123456789012345678901", "123456789012345678901"),
        ("number 1424953923781206.25", "1424953923781206.25"),
    ] {
        put(
            label,
            canonicalize(&parse_strict(text.as_bytes()).unwrap()).unwrap(),
        );
    }
    out
}

#[test]
fn worked_example_in_the_specification_is_current() {
    let values = compute();
    for v in &values {
        eprintln!("=== {}\n{}", v.label, v.value);
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/spec/ledger.md");
    let spec = std::fs::read_to_string(&path).expect("docs/spec/ledger.md");
    let missing: Vec<&str> = values
        .iter()
        .filter(|v| !spec.contains(&v.value))
        .map(|v| v.label)
        .collect();
    assert!(
        missing.is_empty(),
        "docs/spec/ledger.md lacks the current values of: {missing:?} (run with --nocapture)"
    );
}
