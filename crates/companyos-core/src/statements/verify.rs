//! Offline verification of a statement pack (`companyos statement verify`): trusts only the
//! keys it is given, never one inside the pack. Checks, in this order, and stops at the first
//! failure, naming the file: the manifest signature, every file's hash, the checkpoint's
//! signature, every event's digest, leaf and inclusion proof, the statement's lines and totals
//! recomputed from the events and the plans, the policy hashes, and the audit proofs.

use std::collections::BTreeMap;
use std::io::Read as _;

use companyos_domain::PlanName;
use companyos_domain::catalog::{PlanVersion, RawPlanSpec};
use companyos_domain::statement::{PlanInForce, Statement, StatementLine, compute_month, total};
use companyos_domain::time_util::parse_day;
use companyos_ledger::checkpoint::Checkpoint;
use companyos_ledger::encoding::base64_decode;
use companyos_ledger::hash::{Hash, leaf_hash, sha256};
use companyos_ledger::leaf::{AuditLeaf, UsageLeaf};
use companyos_ledger::merkle::verify_inclusion;
use companyos_ledger::note::NoteVerifier;
use companyos_ledger::usage_event::EventDigest;
use serde::Deserialize;
use serde_json::Value;

use super::events::counted_usage;

/// Files in one pack at most, and bytes of one pack once unpacked.
pub const PACK_FILES_MAX: usize = 64;
pub const PACK_UNPACKED_BYTES_MAX: u64 = 4 << 30;

/// The first thing about a pack that does not hold, naming the file (and line) concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {problem}")]
pub struct PackFailure {
    pub file: String,
    pub problem: String,
}

fn fail<T>(file: &str, problem: impl Into<String>) -> Result<T, PackFailure> {
    Err(PackFailure {
        file: file.to_owned(),
        problem: problem.into(),
    })
}

/// The keys a verifier trusts, obtained outside the pack.
#[derive(Debug, Clone)]
pub struct TrustedKeys {
    /// The minisign public key (base64, as in `GET /v1/evidence/public-key`'s second line).
    pub minisign_public_key: String,
    /// The note verifier key (`GET /v1/ledger/verifier-key`).
    pub note_verifier: NoteVerifier,
}

/// What a pack that verifies contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackSummary {
    pub tenant_id: String,
    pub month: String,
    pub status: String,
    pub total: String,
    pub currency: String,
    pub events: usize,
    pub audit_records: usize,
}

#[derive(Debug, Deserialize)]
struct ProofEntry {
    leaf_index: u64,
    tree_size: u64,
    leaf_data: String,
    proof: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct EventLine {
    seq: u64,
    event: Value,
}

#[derive(Debug, Deserialize)]
struct PlanEntry {
    plan: String,
    version: u32,
    sha256: String,
    from: String,
    to: String,
    spec: Value,
}

/// Verifies a pack's bytes with the trusted keys.
pub fn verify_pack(zip_bytes: &[u8], keys: &TrustedKeys) -> Result<PackSummary, PackFailure> {
    let files = unzip(zip_bytes)?;
    check_manifest(&files, keys)?;
    let text = |name: &str| -> Result<&str, PackFailure> {
        match files.get(name) {
            Some(bytes) => std::str::from_utf8(bytes).or_else(|_| fail(name, "is not UTF-8")),
            None => fail(name, "is missing"),
        }
    };
    let statement: Statement = serde_json::from_str(text("statement.json")?)
        .or_else(|e| fail("statement.json", format!("does not parse: {e}")))?;
    let checkpoint = open_checkpoint("checkpoint.txt", text("checkpoint.txt")?, keys)?;
    if text("checkpoint.txt")? != statement.ledger.checkpoint {
        return fail(
            "checkpoint.txt",
            "is not the checkpoint statement.json names",
        );
    }
    let usage = check_events(
        text("events.ndjson")?,
        text("proofs.json")?,
        &checkpoint,
        &statement,
    )?;
    check_money(&statement, text("plan.json")?, &usage)?;
    check_policies(&statement, &files)?;
    let audit_checkpoint =
        open_checkpoint("audit-checkpoint.txt", text("audit-checkpoint.txt")?, keys)?;
    let audit_records = check_audit(
        "audit.ndjson",
        text("audit.ndjson")?,
        &audit_checkpoint,
        Some(statement.tenant_id.as_str()),
    )?;
    Ok(PackSummary {
        tenant_id: statement.tenant_id.to_string(),
        month: statement.month.label(),
        status: statement.status.as_str().to_owned(),
        total: statement.total.to_string(),
        currency: statement.currency.clone(),
        events: usage.len(),
        audit_records,
    })
}

/// The files of a zip, bounded in number and size.
pub fn unzip(zip_bytes: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, PackFailure> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes))
        .or_else(|e| fail("pack", format!("is not a zip: {e}")))?;
    if archive.len() > PACK_FILES_MAX {
        return fail("pack", format!("has more than {PACK_FILES_MAX} files"));
    }
    let mut files = BTreeMap::new();
    let mut unpacked: u64 = 0;
    for index in 0..archive.len() {
        let mut file = archive
            .by_index(index)
            .or_else(|e| fail("pack", format!("entry {index} is unreadable: {e}")))?;
        let name = file.name().to_owned();
        let mut bytes = Vec::new();
        let budget = PACK_UNPACKED_BYTES_MAX.saturating_sub(unpacked);
        (&mut file)
            .take(budget + 1)
            .read_to_end(&mut bytes)
            .or_else(|e| fail(&name, format!("does not unpack: {e}")))?;
        unpacked += bytes.len() as u64;
        if unpacked > PACK_UNPACKED_BYTES_MAX {
            return fail("pack", "unpacks to more than 4 GiB");
        }
        if files.insert(name.clone(), bytes).is_some() {
            return fail(&name, "appears twice");
        }
    }
    Ok(files)
}

/// MANIFEST.minisig verifies MANIFEST with the trusted key, and MANIFEST lists exactly the other
/// files with their SHA-256.
pub fn check_manifest(
    files: &BTreeMap<String, Vec<u8>>,
    keys: &TrustedKeys,
) -> Result<(), PackFailure> {
    let Some(manifest) = files.get("MANIFEST") else {
        return fail("MANIFEST", "is missing");
    };
    let Some(signature) = files.get("MANIFEST.minisig") else {
        return fail("MANIFEST.minisig", "is missing");
    };
    let signature =
        std::str::from_utf8(signature).or_else(|_| fail("MANIFEST.minisig", "is not UTF-8"))?;
    crate::evidence::minisign::verify(&keys.minisign_public_key, manifest, signature).or_else(
        |e| {
            fail(
                "MANIFEST.minisig",
                format!("does not verify MANIFEST with the given key: {e}"),
            )
        },
    )?;
    let manifest = std::str::from_utf8(manifest).or_else(|_| fail("MANIFEST", "is not UTF-8"))?;
    let mut listed = BTreeMap::new();
    for line in manifest.lines() {
        let Some((hash, name)) = line.split_once("  ") else {
            return fail(
                "MANIFEST",
                format!("line {line:?} is not \"<sha256>  <file>\""),
            );
        };
        listed.insert(name.to_owned(), hash.to_owned());
    }
    for (name, bytes) in files {
        if name == "MANIFEST" || name == "MANIFEST.minisig" {
            continue;
        }
        match listed.get(name) {
            None => return fail(name, "is not listed in MANIFEST"),
            Some(hash) if *hash != sha256(bytes).to_hex() => {
                return fail(name, "does not match its SHA-256 in MANIFEST");
            }
            Some(_) => {}
        }
    }
    if let Some(name) = listed.keys().find(|name| !files.contains_key(*name)) {
        return fail(name, "is listed in MANIFEST but missing");
    }
    Ok(())
}

/// Parses a signed checkpoint and verifies its signature with the trusted verifier key.
pub fn open_checkpoint(
    file: &str,
    note: &str,
    keys: &TrustedKeys,
) -> Result<Checkpoint, PackFailure> {
    Checkpoint::open(note.as_bytes(), None, &keys.note_verifier).or_else(|e| {
        fail(
            file,
            format!("does not verify with the given verifier key: {e}"),
        )
    })
}

fn check_proof(
    file: &str,
    entry: &ProofEntry,
    checkpoint: &Checkpoint,
) -> Result<Vec<u8>, PackFailure> {
    let Some(leaf_data) = base64_decode(&entry.leaf_data) else {
        return fail(file, "leaf_data is not base64");
    };
    let proof: Vec<Hash> = entry
        .proof
        .iter()
        .map(|h| Hash::from_hex(h))
        .collect::<Result<_, _>>()
        .or_else(|_| fail(file, "a proof hash is not 64 hex digits"))?;
    if entry.tree_size != checkpoint.tree_size() {
        return fail(file, "the proof is not for the checkpoint's tree size");
    }
    verify_inclusion(
        &leaf_hash(&leaf_data),
        entry.leaf_index,
        entry.tree_size,
        &proof,
        checkpoint.root(),
    )
    .or_else(|e| {
        fail(
            file,
            format!(
                "leaf {} is not in the checkpoint's tree: {e}",
                entry.leaf_index
            ),
        )
    })?;
    Ok(leaf_data)
}

/// Every event's digest and leaf, and its inclusion under the checkpoint; the events' range is
/// the statement's. Returns the usage of the events.
fn check_events(
    events: &str,
    proofs: &str,
    checkpoint: &Checkpoint,
    statement: &Statement,
) -> Result<Vec<companyos_domain::statement::DayUsage>, PackFailure> {
    let proofs: Vec<ProofEntry> = serde_json::from_str(proofs)
        .or_else(|e| fail("proofs.json", format!("does not parse: {e}")))?;
    let lines: Vec<&str> = events.lines().collect();
    if lines.len() != proofs.len() {
        return fail(
            "events.ndjson",
            format!("has {} events, proofs.json {}", lines.len(), proofs.len()),
        );
    }
    let mut usage = Vec::with_capacity(lines.len());
    for (number, (line, entry)) in lines.iter().zip(&proofs).enumerate() {
        let file = format!("events.ndjson line {}", number + 1);
        let parsed: EventLine =
            serde_json::from_str(line).or_else(|e| fail(&file, format!("does not parse: {e}")))?;
        let canonical = companyos_ledger::jcs::canonicalize(&parsed.event)
            .or_else(|e| fail(&file, format!("has no canonical form: {e}")))?;
        let leaf_data = check_proof(
            &format!("proofs.json entry {}", number + 1),
            entry,
            checkpoint,
        )?;
        let leaf = UsageLeaf::parse(&leaf_data).or_else(|e| fail(&file, format!("leaf: {e}")))?;
        let event_id = parsed
            .event
            .get("event_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if leaf.leaf_index != parsed.seq || entry.leaf_index != parsed.seq {
            return fail(&file, format!("seq {} is not its leaf's index", parsed.seq));
        }
        if leaf.event_id != event_id {
            return fail(
                &file,
                format!("event {event_id} is not the event its leaf names"),
            );
        }
        if leaf.digest != EventDigest::of_canonical(canonical.as_bytes()) {
            return fail(
                &file,
                format!("event {event_id} does not match its leaf's digest"),
            );
        }
        let counted = counted_usage(&canonical).or_else(|e| fail(&file, e.to_string()))?;
        if companyos_domain::statement::StatementMonth::of(counted.day) != statement.month {
            return fail(
                &file,
                format!("event {event_id} is not of {}", statement.month),
            );
        }
        usage.push((parsed.seq, counted));
    }
    let first = usage.iter().map(|(seq, _)| *seq).min();
    let last = usage.iter().map(|(seq, _)| *seq).max();
    if first != statement.ledger.from_seq || last != statement.ledger.to_seq {
        return fail(
            "events.ndjson",
            "does not span the statement's ledger range",
        );
    }
    Ok(usage.into_iter().map(|(_, u)| u).collect())
}

/// The plans' hashes, and the lines, base fee and total recomputed from the events.
fn check_money(
    statement: &Statement,
    plans: &str,
    usage: &[companyos_domain::statement::DayUsage],
) -> Result<(), PackFailure> {
    let in_force = plans_in_force(statement, plans)?;
    let money = compute_month(statement.month, &in_force, usage)
        .or_else(|e| fail("statement.json", format!("cannot be recomputed: {e}")))?;
    let recomputed: Vec<StatementLine> = money
        .lines
        .iter()
        .map(|line| StatementLine::of(line, &in_force))
        .collect();
    if recomputed != statement.lines {
        return fail(
            "statement.json",
            "lines do not match the lines recomputed from the events and plans",
        );
    }
    if money.base_fee != statement.base_fee {
        return fail(
            "statement.json",
            format!(
                "base fee {} is not the recomputed {}",
                statement.base_fee, money.base_fee
            ),
        );
    }
    let expected_total = total(&money, &statement.computed_adjustments());
    if expected_total != statement.total {
        return fail(
            "statement.json",
            format!(
                "total {} is not the recomputed {expected_total}",
                statement.total
            ),
        );
    }
    Ok(())
}

/// The plan versions of `plan.json`, each matching its SHA-256, and together the versions
/// `statement.json` names.
fn plans_in_force(statement: &Statement, plans: &str) -> Result<Vec<PlanInForce>, PackFailure> {
    let entries: Vec<PlanEntry> = serde_json::from_str(plans)
        .or_else(|e| fail("plan.json", format!("does not parse: {e}")))?;
    let mut in_force = Vec::new();
    for entry in entries {
        let raw: RawPlanSpec = serde_json::from_value(entry.spec)
            .or_else(|e| fail("plan.json", format!("plan {} spec: {e}", entry.plan)))?;
        let spec = raw
            .parse(&|_| true)
            .or_else(|e| fail("plan.json", format!("plan {} spec: {e}", entry.plan)))?;
        let name = PlanName::parse(&entry.plan).or_else(|e| fail("plan.json", e.message))?;
        let version = PlanVersion::new(name, entry.version.max(1), spec);
        if version.sha256_hex() != entry.sha256 {
            return fail(
                "plan.json",
                format!(
                    "plan {} v{} does not match its SHA-256",
                    entry.plan, entry.version
                ),
            );
        }
        let from = parse_day(&entry.from, "from").or_else(|e| fail("plan.json", e.message))?;
        let to = parse_day(&entry.to, "to").or_else(|e| fail("plan.json", e.message))?;
        in_force.push(PlanInForce { version, from, to });
    }
    let listed: Vec<(&str, u32, String)> = statement
        .plans
        .iter()
        .map(|p| (p.plan.as_str(), p.version, p.sha256.clone()))
        .collect();
    let packed: Vec<(&str, u32, String)> = in_force
        .iter()
        .map(|p| {
            let version = &p.version;
            (version.plan.as_str(), version.version, version.sha256_hex())
        })
        .collect();
    if listed != packed {
        return fail("plan.json", "is not the plan versions statement.json names");
    }
    Ok(in_force)
}

fn check_policies(
    statement: &Statement,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<(), PackFailure> {
    for policy in &statement.policies {
        let name = format!("policies/{}.cedar", policy.scope);
        match files.get(&name) {
            None => return fail(&name, "is missing"),
            Some(bytes) if sha256(bytes).to_hex() != policy.sha256 => {
                return fail(&name, "does not match the SHA-256 statement.json names");
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Every audit line's record digest, leaf and inclusion under the audit checkpoint (and, when
/// given, that it is about `tenant_id`). Returns the number of records.
pub fn check_audit(
    file: &str,
    lines: &str,
    checkpoint: &Checkpoint,
    tenant_id: Option<&str>,
) -> Result<usize, PackFailure> {
    let mut count = 0;
    for (number, line) in lines.lines().enumerate() {
        let here = format!("{file} line {}", number + 1);
        let value: Value =
            serde_json::from_str(line).or_else(|e| fail(&here, format!("does not parse: {e}")))?;
        let entry = ProofEntry {
            leaf_index: value["leaf_index"].as_u64().unwrap_or(u64::MAX),
            tree_size: checkpoint.tree_size(),
            leaf_data: value["leaf_data"].as_str().unwrap_or_default().to_owned(),
            proof: serde_json::from_value(value["proof"].clone()).unwrap_or_default(),
        };
        let leaf_data = check_proof(&here, &entry, checkpoint)?;
        let leaf = AuditLeaf::parse(&leaf_data).or_else(|e| fail(&here, format!("leaf: {e}")))?;
        let record = &value["record"];
        let canonical = companyos_ledger::jcs::canonicalize(record)
            .or_else(|e| fail(&here, format!("record has no canonical form: {e}")))?;
        let id = record["id"].as_str().unwrap_or_default();
        if leaf.audit_id != id || record["seq"].as_u64() != Some(leaf.leaf_index) {
            return fail(
                &here,
                format!("record {id} is not the record its leaf names"),
            );
        }
        if leaf.digest != EventDigest::of_canonical(canonical.as_bytes()) {
            return fail(
                &here,
                format!("record {id} does not match its leaf's digest"),
            );
        }
        if let Some(tenant) = tenant_id {
            if record["tenant_id"].as_str() != Some(tenant) {
                return fail(&here, format!("record {id} is not about tenant {tenant}"));
            }
        }
        count += 1;
    }
    Ok(count)
}

/// What a disclosure pack that verifies contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisclosureSummary {
    pub audit_records: usize,
    /// The ids of the records, in log order.
    pub record_ids: Vec<String>,
}

/// Verifies a disclosure pack: the manifest signature and hashes, the audit checkpoint's
/// signature and every record's proof.
pub fn verify_disclosure(
    zip_bytes: &[u8],
    keys: &TrustedKeys,
) -> Result<DisclosureSummary, PackFailure> {
    let files = unzip(zip_bytes)?;
    check_manifest(&files, keys)?;
    let text = |name: &str| -> Result<&str, PackFailure> {
        match files.get(name) {
            Some(bytes) => std::str::from_utf8(bytes).or_else(|_| fail(name, "is not UTF-8")),
            None => fail(name, "is missing"),
        }
    };
    let checkpoint = open_checkpoint("audit-checkpoint.txt", text("audit-checkpoint.txt")?, keys)?;
    let lines = text("audit.ndjson")?;
    let audit_records = check_audit("audit.ndjson", lines, &checkpoint, None)?;
    let record_ids = lines
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["record"]["id"].as_str().map(str::to_owned))
        .collect();
    Ok(DisclosureSummary {
        audit_records,
        record_ids,
    })
}

/// Whether the zip is a statement pack (it has a `statement.json`) rather than a disclosure.
pub fn is_statement_pack(zip_bytes: &[u8]) -> bool {
    zip::ZipArchive::new(std::io::Cursor::new(zip_bytes))
        .map(|archive| archive.file_names().any(|n| n == "statement.json"))
        .unwrap_or(false)
}
