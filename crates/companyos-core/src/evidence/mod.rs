//! The evidence depot (CONTRACT §8): content-addressed (SHA-256) artifacts, each signed with the
//! minisign key, indexed in the store. Bytes live behind the [`BlobStore`] trait: the file system
//! under the data dir by default, the database for several nodes without a shared disk, an
//! object store later.

use std::fmt;
use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::pin::Pin;

use companyos_domain::time_util::{format_rfc3339, from_micros, to_micros};
use companyos_ledger::hash::sha256;
use serde_json::Value;
use sqlx::{AnyConnection, Row as _};
use time::OffsetDateTime;

use crate::app::{Actor, Evidence};
use crate::authz::Resource;
use crate::db::Tx;
use crate::db::{Db, StoreError};
use crate::error::ServiceError;
use crate::evidence::minisign::MinisignKey;
use crate::util::new_id;
use companyos_domain::Action;

pub mod keys;
pub mod minisign;
pub mod secret_files;

/// Upper bound on one artifact, in bytes.
pub const ARTIFACT_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The kinds of evidence.
pub const KINDS: [&str; 7] = [
    "tenant-dossier",
    "deletion-certificate",
    "integrity-report",
    "usage-rollup",
    "lifecycle-log",
    "statement-pack",
    "metering-coverage",
];

pub type BlobFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where artifact bytes are kept, by their hex SHA-256.
pub trait BlobStore: Send + Sync + fmt::Debug {
    /// Stores `bytes` under `sha256`; storing the same content twice is a no-op.
    fn put<'a>(&'a self, sha256_hex: &'a str, bytes: &'a [u8]) -> BlobFuture<'a, ()>;
    /// The bytes stored under `sha256`, checked against it.
    fn get<'a>(&'a self, sha256_hex: &'a str) -> BlobFuture<'a, Option<Vec<u8>>>;
}

/// Blobs as files `<root>/<first two hex digits>/<hex>`, written atomically and synced.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn path(&self, sha256_hex: &str) -> Result<PathBuf, StoreError> {
        let valid = sha256_hex.len() == 64 && sha256_hex.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid {
            return Err(StoreError::corrupt("blob name is not a sha256"));
        }
        Ok(self.root.join(&sha256_hex[..2]).join(sha256_hex))
    }
}

fn io_error(error: std::io::Error) -> StoreError {
    StoreError::corrupt(format!("evidence file system: {error}"))
}

impl BlobStore for FsBlobStore {
    fn put<'a>(&'a self, sha256_hex: &'a str, bytes: &'a [u8]) -> BlobFuture<'a, ()> {
        Box::pin(async move {
            let path = self.path(sha256_hex)?;
            let bytes = bytes.to_vec();
            tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
                if path.exists() {
                    return Ok(());
                }
                let dir = path
                    .parent()
                    .ok_or_else(|| StoreError::corrupt("blob path has no parent"))?;
                std::fs::create_dir_all(dir).map_err(io_error)?;
                let temp = dir.join(format!(
                    ".tmp-{}",
                    new_id("blob", OffsetDateTime::now_utc())
                ));
                let mut file = std::fs::File::create(&temp).map_err(io_error)?;
                file.write_all(&bytes).map_err(io_error)?;
                file.sync_all().map_err(io_error)?;
                std::fs::rename(&temp, &path).map_err(io_error)?;
                if let Ok(dir_handle) = std::fs::File::open(dir) {
                    let _ = dir_handle.sync_all();
                }
                Ok(())
            })
            .await
            .map_err(|e| StoreError::corrupt(format!("blob writer: {e}")))?
        })
    }

    fn get<'a>(&'a self, sha256_hex: &'a str) -> BlobFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let path = self.path(sha256_hex)?;
            let bytes = match tokio::fs::read(&path).await {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io_error(e)),
            };
            if sha256(&bytes).to_hex() != sha256_hex {
                return Err(StoreError::corrupt(format!(
                    "evidence blob {sha256_hex} does not match its hash"
                )));
            }
            Ok(Some(bytes))
        })
    }
}

/// Blobs in the `evidence_blobs` table, for nodes that share a database but no disk.
#[derive(Debug, Clone)]
pub struct DbBlobStore {
    db: Db,
}

impl DbBlobStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

impl BlobStore for DbBlobStore {
    fn put<'a>(&'a self, sha256_hex: &'a str, bytes: &'a [u8]) -> BlobFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO evidence_blobs (sha256, content) VALUES ($1, $2) \
                 ON CONFLICT (sha256) DO NOTHING",
            )
            .bind(sha256_hex)
            .bind(bytes.to_vec())
            .execute(self.db.readers())
            .await?;
            Ok(())
        })
    }

    fn get<'a>(&'a self, sha256_hex: &'a str) -> BlobFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let bytes: Option<Vec<u8>> =
                sqlx::query_scalar("SELECT content FROM evidence_blobs WHERE sha256 = $1")
                    .bind(sha256_hex)
                    .fetch_optional(self.db.readers())
                    .await?;
            if let Some(bytes) = &bytes {
                if sha256(bytes).to_hex() != sha256_hex {
                    return Err(StoreError::corrupt(format!(
                        "evidence blob {sha256_hex} does not match its hash"
                    )));
                }
            }
            Ok(bytes)
        })
    }
}

/// An artifact to store.
#[derive(Debug, Clone)]
pub struct NewArtifact {
    pub kind: &'static str,
    pub tenant_id: Option<String>,
    pub file_name: String,
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
    pub metadata: Value,
}

/// The index entry of a stored artifact.
#[derive(Debug, Clone, PartialEq)]
pub struct EvidenceRecord {
    pub id: String,
    pub kind: String,
    pub tenant_id: Option<String>,
    pub sha256: String,
    pub size_bytes: i64,
    pub content_type: String,
    pub file_name: String,
    pub signature: String,
    pub created_at: OffsetDateTime,
    pub created_by: String,
    pub metadata: Value,
}

/// Stores an artifact: its bytes in the blob store, its signature and index row in `conn`'s
/// transaction.
pub async fn store(
    conn: &mut AnyConnection,
    blobs: &dyn BlobStore,
    key: &MinisignKey,
    now: OffsetDateTime,
    created_by: &str,
    artifact: NewArtifact,
) -> Result<EvidenceRecord, StoreError> {
    assert!(KINDS.contains(&artifact.kind), "unknown evidence kind");
    if artifact.bytes.len() > ARTIFACT_BYTES_MAX {
        return Err(StoreError::corrupt("artifact exceeds the size limit"));
    }
    let id = new_id("evd", now);
    let digest = sha256(&artifact.bytes).to_hex();
    blobs.put(&digest, &artifact.bytes).await?;
    let trusted_comment = format!(
        "companyos evidence id:{id} kind:{} tenant:{} sha256:{digest} created:{} file:{}",
        artifact.kind,
        artifact.tenant_id.as_deref().unwrap_or("-"),
        format_rfc3339(now),
        artifact.file_name
    );
    let signature = key.sign(&artifact.bytes, &trusted_comment);
    let size = i64::try_from(artifact.bytes.len()).map_err(|_| StoreError::corrupt("size"))?;
    sqlx::query(
        "INSERT INTO evidence (id, kind, tenant_id, sha256, size_bytes, content_type, file_name, \
         signature, created_at, created_by, metadata) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(id.as_str())
    .bind(artifact.kind)
    .bind(artifact.tenant_id.as_deref())
    .bind(digest.as_str())
    .bind(size)
    .bind(artifact.content_type)
    .bind(artifact.file_name.as_str())
    .bind(signature.as_str())
    .bind(to_micros(now))
    .bind(created_by)
    .bind(artifact.metadata.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(EvidenceRecord {
        id,
        kind: artifact.kind.to_owned(),
        tenant_id: artifact.tenant_id,
        sha256: digest,
        size_bytes: size,
        content_type: artifact.content_type.to_owned(),
        file_name: artifact.file_name,
        signature,
        created_at: now,
        created_by: created_by.to_owned(),
        metadata: artifact.metadata,
    })
}

const EVIDENCE_COLUMNS: &str = "id, kind, tenant_id, sha256, size_bytes, content_type, file_name, \
                                signature, created_at, created_by, metadata";

fn record_from_row(row: &sqlx::any::AnyRow) -> Result<EvidenceRecord, StoreError> {
    let metadata: String = row.try_get("metadata")?;
    Ok(EvidenceRecord {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        tenant_id: row.try_get("tenant_id")?,
        sha256: row.try_get("sha256")?,
        size_bytes: row.try_get("size_bytes")?,
        content_type: row.try_get("content_type")?,
        file_name: row.try_get("file_name")?,
        signature: row.try_get("signature")?,
        created_at: from_micros(row.try_get("created_at")?),
        created_by: row.try_get("created_by")?,
        metadata: serde_json::from_str(&metadata)
            .map_err(|e| StoreError::corrupt(format!("evidence metadata: {e}")))?,
    })
}

/// Lists artifacts, newest first.
pub async fn list(
    conn: &mut AnyConnection,
    tenant_id: Option<&str>,
    kind: Option<&str>,
    limit: i64,
) -> Result<Vec<EvidenceRecord>, StoreError> {
    let mut sql = format!("SELECT {EVIDENCE_COLUMNS} FROM evidence WHERE 1 = 1");
    let mut n = 0;
    if tenant_id.is_some() {
        n += 1;
        sql.push_str(&format!(" AND tenant_id = ${n}"));
    }
    if kind.is_some() {
        n += 1;
        sql.push_str(&format!(" AND kind = ${n}"));
    }
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", n + 1));
    let mut query = sqlx::query(&sql);
    for value in [tenant_id, kind].into_iter().flatten() {
        query = query.bind(value);
    }
    let rows = query
        .bind(limit.clamp(1, 10_000))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(record_from_row).collect()
}

pub async fn get(conn: &mut AnyConnection, id: &str) -> Result<Option<EvidenceRecord>, StoreError> {
    let sql = format!("SELECT {EVIDENCE_COLUMNS} FROM evidence WHERE id = $1");
    let row = sqlx::query(&sql)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(record_from_row).transpose()
}

impl Evidence<'_> {
    pub async fn list(
        &self,
        actor: &Actor,
        tenant_id: Option<&str>,
        kind: Option<&str>,
    ) -> Result<Vec<EvidenceRecord>, ServiceError> {
        self.authorize_read(
            actor,
            Action::EvidenceRead,
            Resource::Deployment,
            "evidence",
            tenant_id,
        )
        .await?;
        let mut conn = self.db().readers().acquire().await?;
        Ok(list(&mut conn, tenant_id, kind, 1000).await?)
    }

    /// An artifact's index entry and bytes.
    pub async fn get(
        &self,
        actor: &Actor,
        id: &str,
    ) -> Result<(EvidenceRecord, Vec<u8>), ServiceError> {
        self.authorize_read(
            actor,
            Action::EvidenceRead,
            Resource::Deployment,
            &format!("evidence:{id}"),
            None,
        )
        .await?;
        let mut conn = self.db().readers().acquire().await?;
        let record = get(&mut conn, id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("evidence {id}")))?;
        let bytes = self.blobs().get(&record.sha256).await?.ok_or_else(|| {
            ServiceError::Store(StoreError::corrupt(format!(
                "evidence {id}: its bytes are missing from the evidence store"
            )))
        })?;
        Ok((record, bytes))
    }

    /// The minisign public key that verifies every artifact (public).
    pub fn public_key(&self) -> String {
        self.inner.keys.minisign.public_key_base64()
    }

    /// Stores an artifact in its own audited transaction (for reports generated on request).
    pub(crate) async fn store_in(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        artifact: NewArtifact,
    ) -> Result<EvidenceRecord, ServiceError> {
        Ok(store(
            tx,
            self.blobs(),
            &self.inner.keys.minisign,
            self.now(),
            &actor.principal.actor_name(),
            artifact,
        )
        .await?)
    }
}
