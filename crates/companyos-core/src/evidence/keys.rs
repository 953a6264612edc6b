//! The signing keys: the Ed25519 checkpoint key (C2SP signed notes) and the minisign evidence
//! key. `init` creates them under `<data-dir>/keys` with mode 0600; nodes that share a
//! PostgreSQL database must hold the same keys, which the store's `signing_keys` table checks.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use companyos_ledger::note::{KeyName, NoteSigner, NoteVerifier};
use ed25519_dalek::SigningKey;

use crate::db::{Db, StoreError};
use crate::evidence::minisign::MinisignKey;
use crate::util::random_bytes;

/// Why the keys could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("failed to {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("key file {path} is malformed: {message}")]
    Malformed { path: PathBuf, message: String },
    #[error(
        "key file {path} is readable by others (mode {mode:o}); it must be 0600: chmod 600 {path}"
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error(
        "this node's {purpose} key differs from the one the database was initialised with; copy \
         <data-dir>/keys from the first node (see docs/runbooks/multi-node.md)"
    )]
    Mismatch { purpose: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The loaded keys.
#[derive(Debug, Clone)]
pub struct Keys {
    pub checkpoint: NoteSigner,
    pub minisign: MinisignKey,
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> KeyError + 'a {
    move |source| KeyError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Writes a new secret file with mode 0600; fails if anything (a file, a link) exists.
fn write_secret(path: &Path, contents: &str) -> Result<(), KeyError> {
    crate::evidence::secret_files::create_secret_file(path, contents.as_bytes())
        .map_err(io("create", path))
}

fn read_secret(path: &Path) -> Result<String, KeyError> {
    let metadata = fs::metadata(path).map_err(io("read", path))?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    fs::read_to_string(path).map_err(io("read", path))
}

impl Keys {
    pub fn keys_dir(data_dir: &Path) -> PathBuf {
        data_dir.join("keys")
    }

    /// Loads the keys from `<data_dir>/keys`, creating any that is missing. Returns whether any
    /// key was created.
    pub fn load_or_create(data_dir: &Path, log_name: &str) -> Result<(Keys, bool), KeyError> {
        let dir = Self::keys_dir(data_dir);
        crate::evidence::secret_files::create_private_dir(&dir).map_err(io("create", &dir))?;
        let mut created = false;

        let checkpoint_path = dir.join("checkpoint.key");
        if !checkpoint_path.exists() {
            let name = KeyName::parse(log_name).map_err(|e| KeyError::Malformed {
                path: checkpoint_path.clone(),
                message: e.to_string(),
            })?;
            let signer = NoteSigner::new(name, SigningKey::from_bytes(&random_bytes()));
            write_secret(&checkpoint_path, &format!("{}\n", signer.to_signer_key()))?;
            created = true;
        }
        let checkpoint = NoteSigner::from_signer_key(read_secret(&checkpoint_path)?.trim())
            .map_err(|e| KeyError::Malformed {
                path: checkpoint_path.clone(),
                message: e.to_string(),
            })?;
        if checkpoint.name().as_str() != log_name {
            return Err(KeyError::Malformed {
                path: checkpoint_path,
                // The usual cause is a store made with another log name (the demo's is
                // demo.companyos.local): say which setting opens it.
                message: format!(
                    "the key is named {:?} but the log name setting is {log_name:?}; open this store with --log-name {} (or COMPANYOS_LOG_NAME)",
                    checkpoint.name().as_str(),
                    checkpoint.name().as_str()
                ),
            });
        }

        let minisign_path = dir.join("minisign.key");
        if !minisign_path.exists() {
            let key = MinisignKey::generate();
            write_secret(&minisign_path, &key.to_secret_file())?;
            let public_path = dir.join("minisign.pub");
            fs::write(&public_path, key.public_key_file()).map_err(io("write", &public_path))?;
            created = true;
        }
        let minisign =
            MinisignKey::from_secret_file(&read_secret(&minisign_path)?).map_err(|e| {
                KeyError::Malformed {
                    path: minisign_path.clone(),
                    message: e.to_string(),
                }
            })?;
        Ok((
            Keys {
                checkpoint,
                minisign,
            },
            created,
        ))
    }

    pub fn checkpoint_verifier(&self) -> NoteVerifier {
        self.checkpoint.verifier()
    }

    /// Records the public keys in the store on first use, and refuses keys that differ from the
    /// recorded ones (another node's data dir, or a replaced key).
    pub async fn register(&self, db: &Db, now_micros: i64) -> Result<(), KeyError> {
        let entries = [
            ("checkpoint", self.checkpoint_verifier().to_string()),
            ("minisign", self.minisign.public_key_base64()),
        ];
        let mut tx = db.begin().await?;
        for (purpose, public_key) in entries {
            sqlx::query(
                "INSERT INTO signing_keys (purpose, public_key, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (purpose) DO NOTHING",
            )
            .bind(purpose)
            .bind(public_key.as_str())
            .bind(now_micros)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
            let stored: String =
                sqlx::query_scalar("SELECT public_key FROM signing_keys WHERE purpose = $1")
                    .bind(purpose)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(StoreError::from)?;
            if stored != public_key {
                return Err(KeyError::Mismatch {
                    purpose: purpose.to_owned(),
                });
            }
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }
}
