//! Minisign signatures (<https://jedisct1.github.io/minisign/>) for evidence artifacts, so that
//! `minisign -V -P <key> -m <file>` verifies them without trusting CompanyOS. Signatures use the
//! pre-hashed algorithm (`ED`: Ed25519 over BLAKE2b-512 of the file), minisign's default.

use blake2::{Blake2b512, Digest as _};
use companyos_ledger::encoding::{base64_decode, base64_encode, hex_encode};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::util::random_bytes;

const PUBLIC_KEY_ALGORITHM: &[u8; 2] = b"Ed";
const PREHASHED_ALGORITHM: &[u8; 2] = b"ED";
const SECRET_FILE_HEADER: &str = "companyos-minisign-secret-key-v1";
/// Comments are one line of at most this many bytes.
pub const COMMENT_BYTES_MAX: usize = 1024;

/// Why a minisign key or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MinisignError {
    #[error("malformed minisign secret key file")]
    MalformedSecretKey,
    #[error("malformed minisign public key")]
    MalformedPublicKey,
    #[error("malformed minisign signature")]
    MalformedSignature,
    #[error("signature was made by key {signature_key_id}, not {public_key_id}")]
    WrongKey {
        signature_key_id: String,
        public_key_id: String,
    },
    #[error("signature does not verify")]
    Invalid,
    #[error("trusted comment signature does not verify")]
    InvalidTrustedComment,
}

/// An Ed25519 signing key with its 8-byte minisign key id.
#[derive(Clone)]
pub struct MinisignKey {
    key_id: [u8; 8],
    signing_key: SigningKey,
}

impl std::fmt::Debug for MinisignKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MinisignKey")
            .field("key_id", &self.key_id_hex())
            .finish_non_exhaustive()
    }
}

fn one_line(comment: &str) -> String {
    let mut line: String = comment
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    while line.len() > COMMENT_BYTES_MAX {
        line.pop();
    }
    line
}

impl MinisignKey {
    pub fn generate() -> Self {
        Self {
            key_id: random_bytes(),
            signing_key: SigningKey::from_bytes(&random_bytes()),
        }
    }

    /// The key id as minisign prints it (upper-case hex of the little-endian number).
    pub fn key_id_hex(&self) -> String {
        let mut reversed = self.key_id;
        reversed.reverse();
        hex_encode(&reversed).to_uppercase()
    }

    /// The public key as `minisign -P` takes it.
    pub fn public_key_base64(&self) -> String {
        let mut bytes = Vec::with_capacity(42);
        bytes.extend_from_slice(PUBLIC_KEY_ALGORITHM);
        bytes.extend_from_slice(&self.key_id);
        bytes.extend_from_slice(self.signing_key.verifying_key().as_bytes());
        base64_encode(&bytes)
    }

    /// The public key file (`minisign.pub`) contents.
    pub fn public_key_file(&self) -> String {
        format!(
            "untrusted comment: minisign public key {}\n{}\n",
            self.key_id_hex(),
            self.public_key_base64()
        )
    }

    /// Signs `data`; returns the `.minisig` file contents.
    pub fn sign(&self, data: &[u8], trusted_comment: &str) -> String {
        let trusted_comment = one_line(trusted_comment);
        let digest = Blake2b512::digest(data);
        let signature = self.signing_key.sign(&digest);
        let mut signature_blob = Vec::with_capacity(74);
        signature_blob.extend_from_slice(PREHASHED_ALGORITHM);
        signature_blob.extend_from_slice(&self.key_id);
        signature_blob.extend_from_slice(&signature.to_bytes());
        let mut global = signature.to_bytes().to_vec();
        global.extend_from_slice(trusted_comment.as_bytes());
        let global_signature = self.signing_key.sign(&global);
        format!(
            "untrusted comment: signature from companyos evidence key {}\n{}\ntrusted comment: {}\n{}\n",
            self.key_id_hex(),
            base64_encode(&signature_blob),
            trusted_comment,
            base64_encode(&global_signature.to_bytes())
        )
    }

    /// The secret key file contents (kept with mode 0600).
    pub fn to_secret_file(&self) -> String {
        format!(
            "{SECRET_FILE_HEADER}\n{}\n{}\n",
            hex_encode(&self.key_id),
            base64_encode(&self.signing_key.to_bytes())
        )
    }

    pub fn from_secret_file(text: &str) -> Result<Self, MinisignError> {
        let mut lines = text.lines();
        if lines.next() != Some(SECRET_FILE_HEADER) {
            return Err(MinisignError::MalformedSecretKey);
        }
        let key_id: [u8; 8] = lines
            .next()
            .and_then(companyos_ledger::encoding::hex_decode)
            .and_then(|b| b.try_into().ok())
            .ok_or(MinisignError::MalformedSecretKey)?;
        let seed: [u8; 32] = lines
            .next()
            .and_then(base64_decode)
            .and_then(|b| b.try_into().ok())
            .ok_or(MinisignError::MalformedSecretKey)?;
        Ok(Self {
            key_id,
            signing_key: SigningKey::from_bytes(&seed),
        })
    }
}

/// Verifies a `.minisig` signature of `data` with a base64 public key, as `minisign -V` does.
/// Returns the trusted comment.
pub fn verify(
    public_key_base64: &str,
    data: &[u8],
    signature_file: &str,
) -> Result<String, MinisignError> {
    let public =
        base64_decode(public_key_base64.trim()).ok_or(MinisignError::MalformedPublicKey)?;
    if public.len() != 42 || &public[..2] != PUBLIC_KEY_ALGORITHM {
        return Err(MinisignError::MalformedPublicKey);
    }
    let key: [u8; 32] = public[10..]
        .try_into()
        .map_err(|_| MinisignError::MalformedPublicKey)?;
    let verifying_key =
        VerifyingKey::from_bytes(&key).map_err(|_| MinisignError::MalformedPublicKey)?;
    let mut lines = signature_file.lines();
    let _untrusted = lines.next().ok_or(MinisignError::MalformedSignature)?;
    let blob = lines
        .next()
        .and_then(base64_decode)
        .ok_or(MinisignError::MalformedSignature)?;
    let trusted = lines
        .next()
        .and_then(|l| l.strip_prefix("trusted comment: "))
        .ok_or(MinisignError::MalformedSignature)?;
    let global = lines
        .next()
        .and_then(base64_decode)
        .ok_or(MinisignError::MalformedSignature)?;
    if blob.len() != 74 {
        return Err(MinisignError::MalformedSignature);
    }
    if blob[2..10] != public[2..10] {
        let hex = |b: &[u8]| {
            let mut r = b.to_vec();
            r.reverse();
            hex_encode(&r).to_uppercase()
        };
        return Err(MinisignError::WrongKey {
            signature_key_id: hex(&blob[2..10]),
            public_key_id: hex(&public[2..10]),
        });
    }
    let signature =
        Signature::from_slice(&blob[10..]).map_err(|_| MinisignError::MalformedSignature)?;
    let message = match &blob[..2] {
        b"ED" => Blake2b512::digest(data).to_vec(),
        b"Ed" => data.to_vec(),
        _ => return Err(MinisignError::MalformedSignature),
    };
    verifying_key
        .verify_strict(&message, &signature)
        .map_err(|_| MinisignError::Invalid)?;
    let mut global_message = blob[10..].to_vec();
    global_message.extend_from_slice(trusted.as_bytes());
    let global_signature =
        Signature::from_slice(&global).map_err(|_| MinisignError::MalformedSignature)?;
    verifying_key
        .verify_strict(&global_message, &global_signature)
        .map_err(|_| MinisignError::InvalidTrustedComment)?;
    Ok(trusted.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_round_trip() {
        let key = MinisignKey::generate();
        let signature = key.sign(b"hello", "file:hello.txt");
        assert_eq!(
            verify(&key.public_key_base64(), b"hello", &signature),
            Ok("file:hello.txt".to_owned())
        );
        assert_eq!(
            verify(&key.public_key_base64(), b"hellO", &signature),
            Err(MinisignError::Invalid)
        );
        let tampered = signature.replace("file:hello.txt", "file:other.txt");
        assert_eq!(
            verify(&key.public_key_base64(), b"hello", &tampered),
            Err(MinisignError::InvalidTrustedComment)
        );
        let reloaded = MinisignKey::from_secret_file(&key.to_secret_file()).expect("reload");
        assert_eq!(reloaded.public_key_base64(), key.public_key_base64());
    }
}
