//! C2SP `tlog-checkpoint`: the signed statement of a log's origin, size and root hash
//! (<https://c2sp.org/tlog-checkpoint>), and a signer that only ever signs checkpoints
//! consistent with the last one it signed.

use crate::hash::Hash;
use crate::merkle::{self, ProofError};
use crate::note::{NoteError, NoteSigner, NoteVerifier, SignedNote};

/// Upper bound on an origin line, in bytes.
pub const ORIGIN_BYTES_MAX: usize = 256;
/// Upper bound on the number of extension lines we accept.
pub const EXTENSION_LINES_MAX: usize = 16;

/// Why a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
    #[error(transparent)]
    Note(#[from] NoteError),
    #[error("checkpoint origin is {actual:?}, expected {expected:?}")]
    WrongOrigin { expected: String, actual: String },
    #[error(
        "refusing to sign: tree size {new_size} is smaller than the last signed size {last_size}"
    )]
    Shrinking { last_size: u64, new_size: u64 },
    #[error("refusing to sign: not consistent with the last signed checkpoint: {0}")]
    Inconsistent(ProofError),
}

/// The body of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    origin: String,
    tree_size: u64,
    root: Hash,
    extensions: Vec<String>,
}

fn check_line(line: &str) -> Result<(), CheckpointError> {
    if line.is_empty() {
        return Err(CheckpointError::Malformed("empty line"));
    }
    if line.chars().any(|c| c < '\u{20}') {
        return Err(CheckpointError::Malformed("control character in a line"));
    }
    Ok(())
}

impl Checkpoint {
    pub fn new(origin: &str, tree_size: u64, root: Hash) -> Result<Self, CheckpointError> {
        check_line(origin)?;
        if origin.len() > ORIGIN_BYTES_MAX {
            return Err(CheckpointError::Malformed("origin too long"));
        }
        Ok(Self {
            origin: origin.to_owned(),
            tree_size,
            root,
            extensions: Vec::new(),
        })
    }

    pub fn with_extension(mut self, line: &str) -> Result<Self, CheckpointError> {
        check_line(line)?;
        if self.extensions.len() == EXTENSION_LINES_MAX {
            return Err(CheckpointError::Malformed("too many extension lines"));
        }
        self.extensions.push(line.to_owned());
        Ok(self)
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn tree_size(&self) -> u64 {
        self.tree_size
    }

    pub fn root(&self) -> &Hash {
        &self.root
    }

    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// The note text: origin, decimal size, base64 root, extension lines, each ending in "\n".
    pub fn to_note_text(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.tree_size,
            self.root.to_base64()
        );
        for line in &self.extensions {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// Parses a checkpoint body (the text of its note).
    pub fn parse_note_text(text: &str) -> Result<Self, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::Malformed("text must end with a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .ok_or(CheckpointError::Malformed("missing origin"))?;
        let size = lines
            .next()
            .ok_or(CheckpointError::Malformed("missing tree size"))?;
        let root = lines
            .next()
            .ok_or(CheckpointError::Malformed("missing root hash"))?;
        let valid_size = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (size == "0" || !size.starts_with('0'));
        if !valid_size {
            return Err(CheckpointError::Malformed(
                "tree size must be decimal without leading zeros",
            ));
        }
        let tree_size: u64 = size
            .parse()
            .map_err(|_| CheckpointError::Malformed("tree size out of range"))?;
        let root = Hash::from_base64(root).map_err(|_| CheckpointError::Malformed("root hash"))?;
        let mut checkpoint = Checkpoint::new(origin, tree_size, root)?;
        for line in lines {
            checkpoint = checkpoint.with_extension(line)?;
        }
        Ok(checkpoint)
    }

    /// Parses a signed checkpoint note, checks the origin and verifies it with `verifier`.
    pub fn open(
        note: &[u8],
        expected_origin: Option<&str>,
        verifier: &NoteVerifier,
    ) -> Result<Self, CheckpointError> {
        let note = SignedNote::parse(note)?;
        note.verify(std::slice::from_ref(verifier))?;
        let checkpoint = Self::parse_note_text(note.text())?;
        if let Some(expected) = expected_origin {
            if checkpoint.origin != expected {
                return Err(CheckpointError::WrongOrigin {
                    expected: expected.to_owned(),
                    actual: checkpoint.origin,
                });
            }
        }
        Ok(checkpoint)
    }
}

/// Signs checkpoints of one log, refusing any that is not an extension of the last it signed.
#[derive(Debug)]
pub struct CheckpointSigner {
    signer: NoteSigner,
    origin: String,
    last_signed: Option<(u64, Hash)>,
}

impl CheckpointSigner {
    /// `last_signed` is the last checkpoint signed for this log, if any (a store keeps it).
    pub fn new(signer: NoteSigner, origin: &str, last_signed: Option<(u64, Hash)>) -> Self {
        Self {
            signer,
            origin: origin.to_owned(),
            last_signed,
        }
    }

    pub fn last_signed(&self) -> Option<(u64, Hash)> {
        self.last_signed
    }

    /// Signs `checkpoint` if `consistency_proof` proves it extends the last signed checkpoint.
    pub fn sign(
        &mut self,
        checkpoint: &Checkpoint,
        consistency_proof: &[Hash],
    ) -> Result<SignedNote, CheckpointError> {
        if checkpoint.origin != self.origin {
            return Err(CheckpointError::WrongOrigin {
                expected: self.origin.clone(),
                actual: checkpoint.origin.clone(),
            });
        }
        if let Some((last_size, last_root)) = self.last_signed {
            if checkpoint.tree_size < last_size {
                return Err(CheckpointError::Shrinking {
                    last_size,
                    new_size: checkpoint.tree_size,
                });
            }
            merkle::verify_consistency(
                last_size,
                checkpoint.tree_size,
                &last_root,
                &checkpoint.root,
                consistency_proof,
            )
            .map_err(CheckpointError::Inconsistent)?;
        }
        let note = self.signer.sign_note(&checkpoint.to_note_text())?;
        self.last_signed = Some((checkpoint.tree_size, checkpoint.root));
        Ok(note)
    }
}
