//! C2SP `signed-note`: text signed by one or more named Ed25519 keys, the verifier-key string
//! format and key ids (<https://c2sp.org/signed-note>), compatible with Go's
//! `golang.org/x/mod/sumdb/note`.

use std::fmt;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::encoding::{base64_decode, base64_encode};
use crate::hash::sha256;

/// Signature type byte of Ed25519 keys in C2SP signed notes.
pub const ALGORITHM_ED25519: u8 = 0x01;
/// A note carries at most this many signature lines (the limit Go's implementation applies).
pub const NOTE_SIGNATURES_MAX: usize = 100;
/// Upper bound on the size of a note we parse.
pub const NOTE_BYTES_MAX: usize = 1 << 20;

const SIGNATURE_LINE_PREFIX: &str = "\u{2014} ";

/// Why a note, a key or a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    #[error("invalid key name {0:?}: it must be non-empty, without spaces or '+'")]
    InvalidKeyName(String),
    #[error("malformed verifier key")]
    MalformedVerifierKey,
    #[error("malformed signer key")]
    MalformedSignerKey,
    #[error("key id does not match the key name and public key")]
    KeyIdMismatch,
    #[error("unsupported signature algorithm {0:#04x}")]
    UnsupportedAlgorithm(u8),
    #[error("signature by {name} does not verify")]
    InvalidSignature { name: String },
    #[error("note has no signature by a known key")]
    NoKnownSignature,
}

/// A key name: non-empty, valid UTF-8, no Unicode white space and no `+`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyName(String);

impl KeyName {
    pub fn parse(name: &str) -> Result<Self, NoteError> {
        if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
            return Err(NoteError::InvalidKeyName(name.to_owned()));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The key id: the first four bytes (big-endian) of SHA-256(name || "\n" || type || public key).
pub fn key_id(name: &KeyName, algorithm_and_public_key: &[u8]) -> u32 {
    let mut input = Vec::with_capacity(name.0.len() + 1 + algorithm_and_public_key.len());
    input.extend_from_slice(name.0.as_bytes());
    input.push(b'\n');
    input.extend_from_slice(algorithm_and_public_key);
    let digest = sha256(&input);
    let bytes = digest.as_bytes();
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

fn check_note_text(text: &str) -> Result<(), NoteError> {
    if text.is_empty() || !text.ends_with('\n') {
        return Err(NoteError::Malformed(
            "text must be non-empty and end with a newline",
        ));
    }
    if text.chars().any(|c| c < '\u{20}' && c != '\n') {
        return Err(NoteError::Malformed("text contains a control character"));
    }
    Ok(())
}

/// Holds an Ed25519 private key and signs notes under a key name.
#[derive(Clone)]
pub struct NoteSigner {
    name: KeyName,
    key_id: u32,
    signing_key: SigningKey,
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

fn public_key_bytes(verifying_key: &VerifyingKey) -> Vec<u8> {
    let mut bytes = vec![ALGORITHM_ED25519];
    bytes.extend_from_slice(verifying_key.as_bytes());
    bytes
}

impl NoteSigner {
    pub fn new(name: KeyName, signing_key: SigningKey) -> Self {
        let key_id = key_id(&name, &public_key_bytes(&signing_key.verifying_key()));
        Self {
            name,
            key_id,
            signing_key,
        }
    }

    /// Parses `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || 32-byte seed)>`.
    pub fn from_signer_key(text: &str) -> Result<Self, NoteError> {
        let rest = text
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(NoteError::MalformedSignerKey)?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(NoteError::MalformedSignerKey);
        };
        let name = KeyName::parse(name)?;
        let id = parse_key_id(id_hex).ok_or(NoteError::MalformedSignerKey)?;
        let key = base64_decode(key_b64).ok_or(NoteError::MalformedSignerKey)?;
        let (&algorithm, seed) = key.split_first().ok_or(NoteError::MalformedSignerKey)?;
        if algorithm != ALGORITHM_ED25519 {
            return Err(NoteError::UnsupportedAlgorithm(algorithm));
        }
        let seed: [u8; 32] = seed.try_into().map_err(|_| NoteError::MalformedSignerKey)?;
        let signer = Self::new(name, SigningKey::from_bytes(&seed));
        if signer.key_id != id {
            return Err(NoteError::KeyIdMismatch);
        }
        Ok(signer)
    }

    /// The private key in the `PRIVATE+KEY+...` text form.
    pub fn to_signer_key(&self) -> String {
        let mut key = vec![ALGORITHM_ED25519];
        key.extend_from_slice(&self.signing_key.to_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.key_id,
            base64_encode(&key)
        )
    }

    pub fn name(&self) -> &KeyName {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            verifying_key: self.signing_key.verifying_key(),
        }
    }

    /// Signs `text` and returns the signature line's content.
    pub fn sign(&self, text: &str) -> Result<NoteSignature, NoteError> {
        check_note_text(text)?;
        let signature = self.signing_key.sign(text.as_bytes());
        Ok(NoteSignature {
            name: self.name.0.clone(),
            key_id: self.key_id,
            signature: signature.to_bytes().to_vec(),
        })
    }

    /// Signs `text` and returns the whole signed note.
    pub fn sign_note(&self, text: &str) -> Result<SignedNote, NoteError> {
        let signature = self.sign(text)?;
        Ok(SignedNote {
            text: text.to_owned(),
            signatures: vec![signature],
        })
    }
}

fn parse_key_id(hex: &str) -> Option<u32> {
    if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

/// A public key that verifies notes, with its name and key id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: KeyName,
    key_id: u32,
    verifying_key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses a verifier key `<name>+<hex key id>+<base64(0x01 || 32-byte public key)>`.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(NoteError::MalformedVerifierKey);
        };
        let name = KeyName::parse(name).map_err(|_| NoteError::MalformedVerifierKey)?;
        let id = parse_key_id(id_hex).ok_or(NoteError::MalformedVerifierKey)?;
        let key = base64_decode(key_b64).ok_or(NoteError::MalformedVerifierKey)?;
        if key.is_empty() {
            return Err(NoteError::MalformedVerifierKey);
        }
        if key_id(&name, &key) != id {
            return Err(NoteError::KeyIdMismatch);
        }
        if key[0] != ALGORITHM_ED25519 {
            return Err(NoteError::UnsupportedAlgorithm(key[0]));
        }
        let public: [u8; 32] = key[1..]
            .try_into()
            .map_err(|_| NoteError::MalformedVerifierKey)?;
        let verifying_key =
            VerifyingKey::from_bytes(&public).map_err(|_| NoteError::MalformedVerifierKey)?;
        Ok(Self {
            name,
            key_id: id,
            verifying_key,
        })
    }

    pub fn name(&self) -> &KeyName {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying_key
    }

    /// Whether `signature` (without the key id prefix) is this key's signature of `text`.
    pub fn verify(&self, text: &str, signature: &[u8]) -> bool {
        let Ok(signature) = Signature::from_slice(signature) else {
            return false;
        };
        self.verifying_key
            .verify_strict(text.as_bytes(), &signature)
            .is_ok()
    }
}

impl fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}+{:08x}+{}",
            self.name,
            self.key_id,
            base64_encode(&public_key_bytes(&self.verifying_key))
        )
    }
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: u32,
    /// The signature bytes, without the four key id bytes.
    pub signature: Vec<u8>,
}

impl NoteSignature {
    fn line(&self) -> String {
        let mut bytes = self.key_id.to_be_bytes().to_vec();
        bytes.extend_from_slice(&self.signature);
        format!(
            "{SIGNATURE_LINE_PREFIX}{} {}\n",
            self.name,
            base64_encode(&bytes)
        )
    }
}

/// A note: its text and its signature lines, parsed but not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote {
    text: String,
    signatures: Vec<NoteSignature>,
}

impl SignedNote {
    /// Parses the structure of a signed note (text, blank line, signature lines).
    pub fn parse(message: &[u8]) -> Result<Self, NoteError> {
        if message.len() > NOTE_BYTES_MAX {
            return Err(NoteError::Malformed("note too large"));
        }
        let message = std::str::from_utf8(message)
            .map_err(|_| NoteError::Malformed("note is not valid UTF-8"))?;
        if message.chars().any(|c| c < '\u{20}' && c != '\n') {
            return Err(NoteError::Malformed("note contains a control character"));
        }
        let split = message
            .rfind("\n\n")
            .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
        let (text, mut signature_block) = (&message[..=split], &message[split + 2..]);
        if signature_block.is_empty() || !signature_block.ends_with('\n') {
            return Err(NoteError::Malformed(
                "signature block must end with a newline",
            ));
        }
        let mut signatures = Vec::new();
        while let Some(end) = signature_block.find('\n') {
            let line = &signature_block[..end];
            signature_block = &signature_block[end + 1..];
            let line = line
                .strip_prefix(SIGNATURE_LINE_PREFIX)
                .ok_or(NoteError::Malformed(
                    "signature line must start with an em dash",
                ))?;
            let (name, encoded) = line
                .split_once(' ')
                .ok_or(NoteError::Malformed("signature line has no signature"))?;
            let name = KeyName::parse(name)
                .map_err(|_| NoteError::Malformed("invalid key name in signature line"))?;
            let bytes =
                base64_decode(encoded).ok_or(NoteError::Malformed("signature is not base64"))?;
            if bytes.len() < 5 {
                return Err(NoteError::Malformed("signature too short"));
            }
            if signatures.len() == NOTE_SIGNATURES_MAX {
                return Err(NoteError::Malformed("too many signatures"));
            }
            signatures.push(NoteSignature {
                name: name.0,
                key_id: u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
                signature: bytes[4..].to_vec(),
            });
        }
        Ok(Self {
            text: text.to_owned(),
            signatures,
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Adds a signature (for example a witness cosignature) to the note.
    pub fn add_signature(&mut self, signature: NoteSignature) {
        self.signatures.push(signature);
    }

    /// Verifies the note against known keys. Signatures by unknown keys are ignored; a signature
    /// by a known key that does not verify is an error; at least one known signature must verify.
    /// Returns the names of the keys whose signatures verified.
    pub fn verify(&self, known: &[NoteVerifier]) -> Result<Vec<KeyName>, NoteError> {
        let mut verified: Vec<KeyName> = Vec::new();
        for signature in &self.signatures {
            let Some(verifier) = known
                .iter()
                .find(|v| v.name.0 == signature.name && v.key_id == signature.key_id)
            else {
                continue;
            };
            if !verifier.verify(&self.text, &signature.signature) {
                return Err(NoteError::InvalidSignature {
                    name: signature.name.clone(),
                });
            }
            if !verified.contains(&verifier.name) {
                verified.push(verifier.name.clone());
            }
        }
        if verified.is_empty() {
            return Err(NoteError::NoKnownSignature);
        }
        Ok(verified)
    }
}

impl fmt::Display for SignedNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        f.write_str("\n")?;
        for signature in &self.signatures {
            f.write_str(&signature.line())?;
        }
        Ok(())
    }
}
