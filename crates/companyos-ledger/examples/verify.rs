//! A standalone verifier a tenant runs against a ledger proof, trusting only the log's verifier
//! key:
//!
//! ```text
//! cargo run -p companyos-ledger --example verify -- \
//!     --proof proof.json --verifier-key key.txt [--event event.json] [--checkpoint checkpoint.txt]
//! ```
//!
//! `proof.json` is the body of `GET /v1/tenants/{id}/ledger/proof`; `key.txt` holds the note
//! verifier key of `GET /v1/ledger/verifier-key`; `event.json` is the event as the tenant sent
//! it; `checkpoint.txt` is a separately fetched (possibly newer) checkpoint, and
//! `--consistency consistency.json` (the body of `GET .../ledger/consistency?from=M&to=N`)
//! links the two when their sizes differ. Exit status: 0 verified, 1 a check failed, 2 bad usage.

use std::process::ExitCode;

use companyos_ledger::checkpoint::Checkpoint;
use companyos_ledger::encoding::base64_decode;
use companyos_ledger::hash::{Hash, leaf_hash};
use companyos_ledger::jcs;
use companyos_ledger::leaf::{AuditLeaf, UsageLeaf};
use companyos_ledger::merkle::{verify_consistency, verify_inclusion};
use companyos_ledger::note::NoteVerifier;
use companyos_ledger::usage_event::{EventDigest, canonical_form};
use serde_json::Value;

const USAGE: &str = "usage: verify --proof proof.json --verifier-key key.txt \
[--event event.json] [--checkpoint checkpoint.txt [--consistency consistency.json]]";

#[derive(Default)]
struct Args {
    proof: Option<String>,
    verifier_key: Option<String>,
    event: Option<String>,
    checkpoint: Option<String>,
    consistency: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args::default();
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let slot = match flag.as_str() {
            "--proof" => &mut args.proof,
            "--verifier-key" => &mut args.verifier_key,
            "--event" => &mut args.event,
            "--checkpoint" => &mut args.checkpoint,
            "--consistency" => &mut args.consistency,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        };
        let value = iter.next().ok_or(format!("{flag} needs a file name"))?;
        if slot.replace(value).is_some() {
            return Err(format!("{flag} given twice"));
        }
    }
    if args.proof.is_none() || args.verifier_key.is_none() {
        return Err("--proof and --verifier-key are required".to_owned());
    }
    if args.consistency.is_some() && args.checkpoint.is_none() {
        return Err("--consistency needs --checkpoint".to_owned());
    }
    Ok(args)
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))
}

fn read_json(path: &str) -> Result<Value, String> {
    jcs::parse_strict(&read(path)?).map_err(|e| format!("{path}: {e}"))
}

fn u64_field(object: &Value, field: &str, path: &str) -> Result<u64, String> {
    object[field]
        .as_u64()
        .ok_or(format!("{path}: \"{field}\" must be an unsigned integer"))
}

fn hex_hashes(object: &Value, field: &str, path: &str) -> Result<Vec<Hash>, String> {
    object[field]
        .as_array()
        .ok_or(format!(
            "{path}: \"{field}\" must be an array of hex hashes"
        ))?
        .iter()
        .map(|h| {
            h.as_str()
                .and_then(|h| Hash::from_hex(h).ok())
                .ok_or(format!(
                    "{path}: \"{field}\" has an entry that is not a hex hash"
                ))
        })
        .collect()
}

/// What a leaf names: its index and the digest it commits to, and the id it carries.
struct LeafFacts {
    kind: &'static str,
    /// The origin suffix of the log such a leaf belongs to.
    log: String,
    leaf_index: u64,
    id: String,
    digest: EventDigest,
}

fn parse_leaf(bytes: &[u8]) -> Result<LeafFacts, String> {
    if let Ok(leaf) = UsageLeaf::parse(bytes) {
        return Ok(LeafFacts {
            kind: "usage",
            log: format!("/tenants/{}", leaf.tenant_id),
            leaf_index: leaf.leaf_index,
            id: leaf.event_id,
            digest: leaf.digest,
        });
    }
    if let Ok(leaf) = AuditLeaf::parse(bytes) {
        return Ok(LeafFacts {
            kind: "audit",
            log: "/audit".to_owned(),
            leaf_index: leaf.leaf_index,
            id: leaf.audit_id,
            digest: leaf.digest,
        });
    }
    Err("leaf_data is neither a usage leaf nor an audit leaf".to_owned())
}

fn run(args: &Args) -> Result<(), String> {
    let (proof_path, key_path) = match (&args.proof, &args.verifier_key) {
        (Some(proof), Some(key)) => (proof.as_str(), key.as_str()),
        _ => return Err("--proof and --verifier-key are required".to_owned()),
    };
    let key_text =
        String::from_utf8(read(key_path)?).map_err(|_| format!("{key_path}: not UTF-8"))?;
    let verifier = NoteVerifier::parse(key_text.trim())
        .map_err(|e| format!("{key_path}: bad verifier key: {e}"))?;
    println!(
        "verifier key: {} (key id {:08x})",
        verifier.name(),
        verifier.key_id()
    );

    let response = read_json(proof_path)?;
    let leaf_index = u64_field(&response, "leaf_index", proof_path)?;
    let tree_size = u64_field(&response, "tree_size", proof_path)?;
    let leaf_data = response["leaf_data"]
        .as_str()
        .and_then(base64_decode)
        .ok_or(format!("{proof_path}: \"leaf_data\" must be base64"))?;
    let proof = hex_hashes(&response, "proof", proof_path)?;
    let note = response["checkpoint"].as_str().ok_or(format!(
        "{proof_path}: \"checkpoint\" must be a signed note"
    ))?;

    // 1. The checkpoint is signed by the log's key.
    let checkpoint = Checkpoint::open(note.as_bytes(), None, &verifier)
        .map_err(|e| format!("checkpoint does not verify: {e}"))?;
    println!(
        "ok: checkpoint signature by {} verifies (origin {:?}, tree size {}, root {})",
        verifier.name(),
        checkpoint.origin(),
        checkpoint.tree_size(),
        checkpoint.root().to_base64()
    );
    // 2. It is the checkpoint of the tree the proof is for.
    if checkpoint.tree_size() != tree_size {
        return Err(format!(
            "checkpoint tree size {} differs from the proof's tree_size {tree_size}",
            checkpoint.tree_size()
        ));
    }
    // 3. The leaf is well formed and at the index the proof claims.
    let leaf = parse_leaf(&leaf_data)?;
    if leaf.leaf_index != leaf_index {
        return Err(format!(
            "leaf_data names leaf index {}, the proof is for {leaf_index}",
            leaf.leaf_index
        ));
    }
    if !checkpoint.origin().ends_with(&leaf.log) {
        return Err(format!(
            "a {} leaf of log \"...{}\" cannot be in the log {:?}",
            leaf.kind,
            leaf.log,
            checkpoint.origin()
        ));
    }
    println!(
        "ok: {} leaf {} names {:?} with digest {}",
        leaf.kind, leaf.leaf_index, leaf.id, leaf.digest
    );
    // 4. The leaf is in the tree whose root the log signed.
    let hash = leaf_hash(&leaf_data);
    verify_inclusion(&hash, leaf_index, tree_size, &proof, checkpoint.root())
        .map_err(|e| format!("inclusion proof does not verify: {e}"))?;
    println!(
        "ok: leaf hash {hash} is included at index {leaf_index} of {tree_size} ({} proof hashes)",
        proof.len()
    );

    // 5. The event the tenant sent is the one the leaf commits to.
    if let Some(event_path) = &args.event {
        let event = read_json(event_path)?;
        let object = event
            .as_object()
            .ok_or(format!("{event_path}: the event must be a JSON object"))?;
        let canonical = canonical_form(object).map_err(|e| format!("{event_path}: {e}"))?;
        let digest = EventDigest::of_canonical(canonical.as_bytes());
        if digest != leaf.digest {
            return Err(format!(
                "event digest {digest} differs from the leaf's digest {}",
                leaf.digest
            ));
        }
        let id_field = if leaf.kind == "usage" {
            "event_id"
        } else {
            "id"
        };
        if let Some(id) = object.get(id_field).and_then(Value::as_str) {
            if id != leaf.id {
                return Err(format!(
                    "event {id_field} {id:?} differs from the leaf's {:?}",
                    leaf.id
                ));
            }
        }
        println!("ok: the event's canonical form has digest {digest}, as the leaf says");
    }

    // 6. A separately fetched checkpoint is signed by the same log and does not contradict it.
    if let Some(other_path) = &args.checkpoint {
        let other = Checkpoint::open(&read(other_path)?, Some(checkpoint.origin()), &verifier)
            .map_err(|e| format!("{other_path}: checkpoint does not verify: {e}"))?;
        println!(
            "ok: {other_path} is signed by {} (tree size {}, root {})",
            verifier.name(),
            other.tree_size(),
            other.root().to_base64()
        );
        let (old, new) = if other.tree_size() >= tree_size {
            (&checkpoint, &other)
        } else {
            (&other, &checkpoint)
        };
        if old.tree_size() == new.tree_size() {
            if old.root() != new.root() {
                return Err(format!(
                    "two signed checkpoints of tree size {} have different roots",
                    old.tree_size()
                ));
            }
            println!("ok: both checkpoints are the same tree head");
        } else if let Some(consistency_path) = &args.consistency {
            let body = read_json(consistency_path)?;
            let from = u64_field(&body, "from", consistency_path)?;
            let to = u64_field(&body, "to", consistency_path)?;
            if (from, to) != (old.tree_size(), new.tree_size()) {
                return Err(format!(
                    "{consistency_path} proves {from} -> {to}, the checkpoints are {} -> {}",
                    old.tree_size(),
                    new.tree_size()
                ));
            }
            let proof = hex_hashes(&body, "proof", consistency_path)?;
            verify_consistency(from, to, old.root(), new.root(), &proof)
                .map_err(|e| format!("consistency proof does not verify: {e}"))?;
            println!("ok: tree {to} is an append-only extension of tree {from}");
        } else {
            println!(
                "note: sizes differ ({} and {}); pass --consistency with \
                 GET /v1/tenants/{{id}}/ledger/consistency?from={}&to={} to link them",
                old.tree_size(),
                new.tree_size(),
                old.tree_size(),
                new.tree_size()
            );
        }
    }
    println!("verified");
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("error: {message}");
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("FAILED: {reason}");
            ExitCode::from(1)
        }
    }
}
