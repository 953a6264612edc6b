//! The verifiable ledger's proofs (CONTRACT §7): hashes in hex, leaf bytes in base64.

use companyos_core::ledger::{ConsistencyProof, InclusionProof};
use companyos_ledger::Hash;
use companyos_ledger::encoding::base64_encode;
use serde::Serialize;

fn hex_all(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(Hash::to_hex).collect()
}

/// `GET /v1/tenants/{id}/ledger/proof`.
#[derive(Debug, Serialize)]
pub struct InclusionProofBody<'a> {
    pub log_id: &'a str,
    pub origin: &'a str,
    pub event_id: &'a str,
    pub leaf_index: u64,
    pub tree_size: u64,
    pub leaf_data: String,
    pub leaf_hash: String,
    pub proof: Vec<String>,
    pub checkpoint: Option<&'a str>,
}

impl<'a> InclusionProofBody<'a> {
    pub fn of(proof: &'a InclusionProof) -> Self {
        Self {
            log_id: &proof.log_id,
            origin: &proof.origin,
            event_id: &proof.event_id,
            leaf_index: proof.leaf_index,
            tree_size: proof.tree_size,
            leaf_data: base64_encode(&proof.leaf_data),
            leaf_hash: proof.leaf_hash.to_hex(),
            proof: hex_all(&proof.proof),
            checkpoint: proof.checkpoint.as_deref(),
        }
    }
}

/// `GET /v1/tenants/{id}/ledger/consistency`.
#[derive(Debug, Serialize)]
pub struct ConsistencyProofBody {
    pub from: u64,
    pub to: u64,
    pub proof: Vec<String>,
}

impl ConsistencyProofBody {
    pub fn of(proof: &ConsistencyProof) -> Self {
        Self {
            from: proof.from,
            to: proof.to,
            proof: hex_all(&proof.proof),
        }
    }
}
