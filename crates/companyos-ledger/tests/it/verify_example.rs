//! The tenant's verification (`examples/verify.rs`) step by step through the library API, on a
//! proof response built the way the server builds one; and, when the example binary has been
//! built (as `cargo test` does), the binary itself on the same files, exit codes included.

use std::path::{Path, PathBuf};
use std::process::Command;

use companyos_ledger::checkpoint::{Checkpoint, CheckpointSigner};
use companyos_ledger::encoding::{base64_decode, base64_encode};
use companyos_ledger::hash::leaf_hash;
use companyos_ledger::jcs::parse_strict;
use companyos_ledger::leaf::{EventClass, UsageLeaf};
use companyos_ledger::merkle::{
    MemoryTree, consistency_proof, inclusion_proof, verify_consistency, verify_inclusion,
};
use companyos_ledger::note::NoteVerifier;
use companyos_ledger::usage_event::{EventDigest, canonical_form};
use companyos_ledger::{Hash, NoteSigner};
use serde_json::{Value, json};

use crate::common::signer;

const ORIGIN: &str = "companyos.local/tenants/acme";

struct Fixture {
    key: String,
    events: Vec<String>,
    proof_json: String,
    newer_checkpoint: String,
    consistency_json: String,
}

fn event_text(i: usize) -> String {
    // As a tenant might send it: its own member order, whitespace, and a `digest` member that
    // is not part of the canonical form.
    let event = json!({
        "timestamp": format!("2026-03-01T12:0{i}:00Z"),
        "event_id": format!("evt-{i:04}"),
        "tenant_id": "acme",
        "service": "api",
        "metric": "requests",
        "quantity": format!("{}.5", i + 1),
        "unit": "request",
        "request_id": format!("req-{i}"),
    });
    serde_json::to_string_pretty(&event).unwrap()
}

fn usage_leaf(index: u64, event: &str) -> UsageLeaf {
    let value = parse_strict(event.as_bytes()).unwrap();
    let object = value.as_object().unwrap();
    UsageLeaf {
        tenant_id: "acme".to_owned(),
        leaf_index: index,
        event_id: object["event_id"].as_str().unwrap().to_owned(),
        digest: EventDigest::of_canonical(canonical_form(object).unwrap().as_bytes()),
        class: EventClass::OnTime,
    }
}

/// A checkpoint of `origin` at `size` with `root`, signed by `log_key`, as note text.
fn checkpoint_note(log_key: &NoteSigner, origin: &str, size: u64, root: Hash) -> String {
    log_key
        .sign_note(&Checkpoint::new(origin, size, root).unwrap().to_note_text())
        .unwrap()
        .to_string()
}

fn build(log_key: &NoteSigner) -> Fixture {
    let events: Vec<String> = (0..5).map(event_text).collect();
    let leaves: Vec<Vec<u8>> = events
        .iter()
        .enumerate()
        .map(|(i, e)| usage_leaf(i as u64, e).to_bytes())
        .collect();
    let tree = MemoryTree::from_leaf_hashes(leaves.iter().map(|l| leaf_hash(l)));
    let mut log = CheckpointSigner::new(log_key.clone(), ORIGIN, None);
    let head4 = Checkpoint::new(ORIGIN, 4, tree.root_at_size(4)).unwrap();
    let note4 = log.sign(&head4, &[]).unwrap().to_string();
    let proof_4_5 = consistency_proof(&tree, 4, 5).unwrap();
    let head5 = Checkpoint::new(ORIGIN, 5, tree.root_at_size(5)).unwrap();
    let note5 = log.sign(&head5, &proof_4_5).unwrap().to_string();
    let proof = inclusion_proof(&tree, 2, 4).unwrap();
    let response = json!({
        "leaf_index": 2,
        "tree_size": 4,
        "leaf_data": base64_encode(&leaves[2]),
        "proof": proof.iter().map(Hash::to_hex).collect::<Vec<_>>(),
        "checkpoint": note4,
        "event_id": "evt-0002",
        "served_at": "2026-03-01T13:00:00Z",
    });
    Fixture {
        key: format!("{}\n", log_key.verifier()),
        events,
        proof_json: serde_json::to_string_pretty(&response).unwrap(),
        newer_checkpoint: note5,
        consistency_json: json!({
            "from": 4,
            "to": 5,
            "proof": proof_4_5.iter().map(Hash::to_hex).collect::<Vec<_>>(),
        })
        .to_string(),
    }
}

/// The checks of `examples/verify.rs`, in the same order, through the library API.
fn verify_steps(
    proof_json: &str,
    key: &str,
    event: Option<&str>,
    newer: Option<&str>,
    consistency: Option<&str>,
) -> Result<(), String> {
    let verifier = NoteVerifier::parse(key.trim()).map_err(|e| e.to_string())?;
    let response = parse_strict(proof_json.as_bytes()).map_err(|e| e.to_string())?;
    let leaf_index = response["leaf_index"].as_u64().ok_or("leaf_index")?;
    let tree_size = response["tree_size"].as_u64().ok_or("tree_size")?;
    let leaf_data = response["leaf_data"]
        .as_str()
        .and_then(base64_decode)
        .ok_or("leaf_data")?;
    let proof: Vec<Hash> = response["proof"]
        .as_array()
        .ok_or("proof")?
        .iter()
        .map(|h| {
            h.as_str()
                .and_then(|h| Hash::from_hex(h).ok())
                .ok_or("proof hash")
        })
        .collect::<Result<_, _>>()?;
    let note = response["checkpoint"].as_str().ok_or("checkpoint")?;
    let checkpoint =
        Checkpoint::open(note.as_bytes(), None, &verifier).map_err(|e| e.to_string())?;
    if checkpoint.tree_size() != tree_size {
        return Err("checkpoint size differs from tree_size".into());
    }
    let leaf = UsageLeaf::parse(&leaf_data).map_err(|e| e.to_string())?;
    if leaf.leaf_index != leaf_index {
        return Err("leaf index differs".into());
    }
    if !checkpoint
        .origin()
        .ends_with(&format!("/tenants/{}", leaf.tenant_id))
    {
        return Err("the leaf is another tenant's".into());
    }
    verify_inclusion(
        &leaf_hash(&leaf_data),
        leaf_index,
        tree_size,
        &proof,
        checkpoint.root(),
    )
    .map_err(|e| e.to_string())?;
    if let Some(event) = event {
        let value = parse_strict(event.as_bytes()).map_err(|e| e.to_string())?;
        let object = value.as_object().ok_or("event is not an object")?;
        let canonical = canonical_form(object).map_err(|e| e.to_string())?;
        if EventDigest::of_canonical(canonical.as_bytes()) != leaf.digest {
            return Err("event digest differs from the leaf's".into());
        }
    }
    if let Some(newer) = newer {
        let other = Checkpoint::open(newer.as_bytes(), Some(checkpoint.origin()), &verifier)
            .map_err(|e| e.to_string())?;
        if other.tree_size() == checkpoint.tree_size() {
            if other.root() != checkpoint.root() {
                return Err("same size, different roots".into());
            }
        } else if let Some(consistency) = consistency {
            let body: Value = parse_strict(consistency.as_bytes()).map_err(|e| e.to_string())?;
            let proof: Vec<Hash> = body["proof"]
                .as_array()
                .ok_or("proof")?
                .iter()
                .map(|h| Hash::from_hex(h.as_str().unwrap_or_default()).map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?;
            verify_consistency(
                checkpoint.tree_size(),
                other.tree_size(),
                checkpoint.root(),
                other.root(),
                &proof,
            )
            .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

fn edit(json_text: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut value: Value = serde_json::from_str(json_text).unwrap();
    edit(&mut value);
    value.to_string()
}

#[test]
fn a_genuine_proof_verifies() {
    let f = build(&signer("companyos.local", 7));
    verify_steps(
        &f.proof_json,
        &f.key,
        Some(&f.events[2]),
        Some(&f.newer_checkpoint),
        Some(&f.consistency_json),
    )
    .unwrap();
    verify_steps(&f.proof_json, &f.key, None, None, None).unwrap();
    // The event in another member order and spacing has the same canonical form.
    let value: Value = serde_json::from_str(&f.events[2]).unwrap();
    verify_steps(&f.proof_json, &f.key, Some(&value.to_string()), None, None).unwrap();
    // A `digest` and `source_signature` the tenant sent along are not part of the digest.
    let with_extras = edit(&f.events[2], |v| {
        v["digest"] =
            json!("sha256:0000000000000000000000000000000000000000000000000000000000000000");
        v["source_signature"] = json!("AAAA");
    });
    verify_steps(&f.proof_json, &f.key, Some(&with_extras), None, None).unwrap();
}

#[test]
fn every_tampering_is_caught() {
    let log_key = signer("companyos.local", 7);
    let f = build(&log_key);
    let reject = |proof: &str, key: &str, event: Option<&str>, newer: Option<&str>, what: &str| {
        assert!(
            verify_steps(proof, key, event, newer, Some(&f.consistency_json)).is_err(),
            "accepted {what}"
        );
    };
    // Another log key (same name), or a key of another name.
    let other_key = format!("{}\n", signer("companyos.local", 8).verifier());
    reject(&f.proof_json, &other_key, None, None, "another key");
    let other_name = format!("{}\n", signer("evil.example", 7).verifier());
    reject(&f.proof_json, &other_name, None, None, "another key name");
    // A different tree size, leaf index, proof hash, leaf data or checkpoint text.
    reject(
        &edit(&f.proof_json, |v| v["tree_size"] = json!(5)),
        &f.key,
        None,
        None,
        "tree_size 5",
    );
    reject(
        &edit(&f.proof_json, |v| v["leaf_index"] = json!(1)),
        &f.key,
        None,
        None,
        "leaf_index 1",
    );
    let flipped = edit(&f.proof_json, |v| {
        let h = v["proof"][0].as_str().unwrap().to_owned();
        let c = if h.starts_with('0') { "1" } else { "0" };
        v["proof"][0] = json!(format!("{c}{}", &h[1..]));
    });
    reject(&flipped, &f.key, None, None, "a flipped proof hash");
    let truncated = edit(&f.proof_json, |v| {
        v["proof"].as_array_mut().unwrap().pop();
    });
    reject(&truncated, &f.key, None, None, "a truncated proof");
    let other_leaf = usage_leaf(2, &f.events[3]).to_bytes();
    reject(
        &edit(&f.proof_json, |v| {
            v["leaf_data"] = json!(base64_encode(&other_leaf))
        }),
        &f.key,
        None,
        None,
        "another event's leaf",
    );
    // Another tenant's leaf (even with a valid proof in a tree the log signed) is not this
    // tenant's.
    let foreign = UsageLeaf {
        tenant_id: "other".into(),
        ..usage_leaf(2, &f.events[2])
    };
    let foreign_tree = MemoryTree::from_leaf_hashes((0..4).map(|i| {
        if i == 2 {
            leaf_hash(&foreign.to_bytes())
        } else {
            leaf_hash(format!("x{i}").as_bytes())
        }
    }));
    let foreign_note = checkpoint_note(&log_key, ORIGIN, 4, foreign_tree.root());
    let foreign_proof = edit(&f.proof_json, |v| {
        v["leaf_data"] = json!(base64_encode(&foreign.to_bytes()));
        let proof = inclusion_proof(&foreign_tree, 2, 4).unwrap();
        v["proof"] = json!(proof.iter().map(Hash::to_hex).collect::<Vec<_>>());
        v["checkpoint"] = json!(foreign_note);
    });
    assert!(
        verify_steps(&foreign_proof, &f.key, None, None, None)
            .unwrap_err()
            .contains("another tenant")
    );
    let late = UsageLeaf {
        class: EventClass::Late,
        ..usage_leaf(2, &f.events[2])
    }
    .to_bytes();
    reject(
        &edit(&f.proof_json, |v| {
            v["leaf_data"] = json!(base64_encode(&late))
        }),
        &f.key,
        None,
        None,
        "a reclassified leaf",
    );
    let re_signed = edit(&f.proof_json, |v| {
        let text = v["checkpoint"].as_str().unwrap().replace("\n4\n", "\n3\n");
        v["checkpoint"] = json!(text);
    });
    reject(&re_signed, &f.key, None, None, "an edited checkpoint");
    // The event as sent does not match: changed quantity, another event, a duplicate member.
    let changed = edit(&f.events[2], |v| v["quantity"] = json!("3.50"));
    reject(
        &f.proof_json,
        &f.key,
        Some(&changed),
        None,
        "a changed quantity",
    );
    reject(
        &f.proof_json,
        &f.key,
        Some(&f.events[1]),
        None,
        "another event",
    );
    let duplicate = f.events[2].replacen('{', "{\"unit\": \"request\",", 1);
    reject(
        &f.proof_json,
        &f.key,
        Some(&duplicate),
        None,
        "a duplicate member",
    );
    // A newer checkpoint from a fork of the log, or of another tenant's log.
    let forked_tree =
        MemoryTree::from_leaf_hashes((0..5).map(|i| leaf_hash(format!("fork-{i}").as_bytes())));
    let forked = checkpoint_note(&log_key, ORIGIN, 5, forked_tree.root());
    reject(
        &f.proof_json,
        &f.key,
        None,
        Some(&forked),
        "a forked newer checkpoint",
    );
    let other_tenant = checkpoint_note(
        &log_key,
        "companyos.local/tenants/other",
        5,
        forked_tree.root(),
    );
    reject(
        &f.proof_json,
        &f.key,
        None,
        Some(&other_tenant),
        "another tenant's checkpoint",
    );
    let same_size_fork = checkpoint_note(&log_key, ORIGIN, 4, forked_tree.root_at_size(4));
    reject(
        &f.proof_json,
        &f.key,
        None,
        Some(&same_size_fork),
        "a second head of the same size",
    );
}

/// `<target>/debug/examples/verify`, when `cargo test` has built it.
fn example_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    let path = profile_dir
        .join("examples")
        .join(format!("verify{}", std::env::consts::EXE_SUFFIX));
    path.exists().then_some(path)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn the_example_binary_verifies_and_fails_with_the_right_exit_codes() {
    let f = build(&signer("companyos.local", 7));
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("verify-example");
    std::fs::create_dir_all(&dir).unwrap();
    let proof = write(&dir, "proof.json", &f.proof_json);
    let key = write(&dir, "key.txt", &f.key);
    let event = write(&dir, "event.json", &f.events[2]);
    let wrong_event = write(&dir, "wrong-event.json", &f.events[1]);
    let newer = write(&dir, "checkpoint.txt", &f.newer_checkpoint);
    let consistency = write(&dir, "consistency.json", &f.consistency_json);
    let Some(binary) = example_binary() else {
        eprintln!(
            "examples/verify is not built (run the whole `cargo test -p companyos-ledger`); skipped"
        );
        return;
    };
    let run = |args: &[&str]| {
        let out = Command::new(&binary).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = run(&[
        "--proof",
        &proof,
        "--verifier-key",
        &key,
        "--event",
        &event,
        "--checkpoint",
        &newer,
        "--consistency",
        &consistency,
    ]);
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("is included at index 2 of 4"), "{stdout}");
    assert!(stdout.contains("append-only extension"), "{stdout}");
    assert!(stdout.trim_end().ends_with("verified"), "{stdout}");

    let (code, _, stderr) = run(&[
        "--proof",
        &proof,
        "--verifier-key",
        &key,
        "--event",
        &wrong_event,
    ]);
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with("FAILED: event digest"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let other_key = write(
        &dir,
        "other-key.txt",
        &signer("companyos.local", 8).verifier().to_string(),
    );
    let (code, _, stderr) = run(&["--proof", &proof, "--verifier-key", &other_key]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with("FAILED: checkpoint does not verify"),
        "{stderr}"
    );

    assert_eq!(run(&["--proof", &proof]).0, Some(2));
    assert_eq!(
        run(&["--proof", &proof, "--verifier-key", &key, "--bogus", "x"]).0,
        Some(2)
    );
    assert_eq!(run(&["--proof"]).0, Some(2));
    assert_eq!(
        run(&["--proof", "/nonexistent/proof.json", "--verifier-key", &key]).0,
        Some(1)
    );
}
