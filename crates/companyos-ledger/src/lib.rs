//! Verifiable ledger maths for CompanyOS: RFC 6962 Merkle trees and proofs, C2SP signed notes and
//! checkpoints, RFC 8785 canonical JSON and the canonical form of usage events.
//!
//! The crate does no I/O and knows no database, so that a tenant or an auditor can use it alone to
//! check that an event is in a signed checkpoint without trusting the operator of the ledger.
//! `docs/spec/ledger.md` in the repository describes every byte layout used here.

pub mod checkpoint;
pub mod encoding;
pub mod hash;
pub mod jcs;
pub mod leaf;
pub mod merkle;
pub mod note;
pub mod usage_event;

pub use checkpoint::{Checkpoint, CheckpointError, CheckpointSigner};
pub use hash::{Hash, leaf_hash, node_hash};
pub use merkle::{Frontier, NodeId, NodeReader, ProofError};
pub use note::{NoteError, NoteSigner, NoteVerifier, SignedNote};
