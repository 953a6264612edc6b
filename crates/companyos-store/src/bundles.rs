//! Bundled storage of ledger leaves and usage event payloads: the consecutive leaves of one log
//! (or events of one tenant) that one transaction appends are stored as one row of at most
//! [`BUNDLE_ENTRIES_MAX`] entries, not one row each (ADR 0006).
//!
//! Why: a row per event costs the store a B-tree insertion per event in each table and index
//! (measured on SQLite: about 15 µs of the writer's time per event, most of the ingestion
//! path), while a bundle is one insertion of a few kilobytes that the engine writes as whole
//! pages. Readers of one leaf read one bundle (at most 256 entries); range readers (proofs,
//! verification, rollup recomputation) read whole bundles in order.
//!
//! Leaves (`ledger_leaf_bundles`) and payloads (`usage_event_bundles`) are kept apart so a purge
//! deletes the payloads and keeps every tree verifiable.

use companyos_domain::event_packing::{self, PackContext};
use companyos_domain::{LogId, TenantId};
use companyos_ledger::Hash;
use companyos_ledger::leaf::EventClass;
use companyos_ledger::usage_event::EventDigest;
use sqlx::{AnyConnection, Row as _};

use crate::db::{Placeholders, StoreError, list_placeholders, values_placeholders};
use crate::db::{to_i64, to_u64};

mod events;

pub use events::*;

/// Entries per bundle at most: a reader of one leaf or event decodes at most this many.
pub const BUNDLE_ENTRIES_MAX: usize = 256;
/// Bundles per multi-row insert.
const BUNDLES_PER_STATEMENT: usize = 256;
/// Bundle ids per lookup statement.
const IDS_PER_LOOKUP: usize = 256;
/// First byte of every encoded `leaf_data` and `events` column: the layout version.
const FORMAT_VERSION: u8 = 1;

/// A cursor over an encoded bundle column; every read is bounds-checked.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader of bytes after their version byte.
    fn raw(bytes: &'a [u8], what: &'static str) -> Self {
        Self { bytes, what }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.bytes.len() < n {
            return Err(StoreError::corrupt(format!(
                "{}: bundle is truncated",
                self.what
            )));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<usize, StoreError> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    fn u32(&mut self) -> Result<usize, StoreError> {
        let b = self.take(4)?;
        usize::try_from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .map_err(|_| StoreError::corrupt(self.what))
    }

    /// The bytes of an event id packed by [`event_packing::pack_event_id`] (not unpacked).
    fn packed_event_id(&mut self) -> Result<&'a [u8], StoreError> {
        self.take(event_packing::packed_event_id_len(self.bytes))
    }

    fn text(&mut self, len: usize) -> Result<&'a str, StoreError> {
        let what = self.what;
        std::str::from_utf8(self.take(len)?)
            .map_err(|_| StoreError::corrupt(format!("{what}: text is not UTF-8")))
    }

    fn finish(&self) -> Result<(), StoreError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(StoreError::corrupt(format!(
                "{}: bytes after the last entry",
                self.what
            )))
        }
    }
}

fn push_u32_len(out: &mut Vec<u8>, len: usize) {
    let len = u32::try_from(len).expect("an entry is one event or leaf: at most 16 KiB");
    out.extend_from_slice(&len.to_be_bytes());
}

// ------------------------------------------------------------------------------------------
// Leaves
// ------------------------------------------------------------------------------------------

/// First byte of a `leaf_data` column of usage leaves in their compact layout of schema 5
/// (below), with each event id whole; still read.
const USAGE_LEAVES_VERSION: u8 = 2;
/// The same with each event id packed ([`event_packing::pack_event_id`], ADR 0009): what new
/// bundles use.
const USAGE_LEAVES_PACKED_VERSION: u8 = 3;

/// How the leaves of a log are written into `leaf_data` (the first byte of the column says
/// which, so bundles of both layouts are read alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafLayout {
    /// Version 1: each leaf's bytes whole, after a 4-byte big-endian length. The audit log's
    /// leaves, and every bundle written before schema 5.
    Whole,
    /// Version 3 (version 2 before ADR 0009), for tenant usage ledgers (`tenant/<id>`): per
    /// leaf only what varies, the event id (packed: 17 bytes for a UUID; version 2: a 1-byte
    /// length and the text), the digest (32 bytes) and the class (1 byte). The rest of the
    /// leaf text (tag, tenant id, leaf index) follows from the log and the position, so the
    /// reader rebuilds the very bytes that were hashed; 50 bytes a leaf instead of 190.
    Usage,
}

impl LeafLayout {
    /// The layout of a log's new bundles.
    pub fn of_log(log_id: &LogId) -> Self {
        match log_id {
            LogId::Usage(_) => Self::Usage,
            LogId::Audit => Self::Whole,
        }
    }
}

/// The leaves one transaction appends to one log, in order, already encoded as bundle entries
/// in the log's layout (one buffer for all of them: no allocation per leaf).
#[derive(Debug, Clone)]
pub struct PendingLeaves {
    layout: LeafLayout,
    first_index: u64,
    hashes: Vec<Hash>,
    /// The entries, concatenated.
    entries: Vec<u8>,
    /// The end of each leaf's entry in `entries`.
    ends: Vec<usize>,
}

impl PendingLeaves {
    /// No leaves yet; the first one appended will have `first_index`.
    pub fn new(layout: LeafLayout, first_index: u64) -> Self {
        Self {
            layout,
            first_index,
            hashes: Vec::new(),
            entries: Vec::new(),
            ends: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// The index of the next leaf.
    pub fn next_index(&self) -> u64 {
        self.first_index + self.hashes.len() as u64
    }

    /// Adds a leaf of a [`LeafLayout::Whole`] log.
    pub fn push_whole(&mut self, hash: Hash, data: &[u8]) {
        assert_eq!(
            self.layout,
            LeafLayout::Whole,
            "a usage ledger stores usage leaves"
        );
        push_u32_len(&mut self.entries, data.len());
        self.entries.extend_from_slice(data);
        self.hashes.push(hash);
        self.ends.push(self.entries.len());
    }

    /// Adds a leaf of a [`LeafLayout::Usage`] log: what the leaf text holds besides the
    /// tenant id and the index.
    pub fn push_usage(
        &mut self,
        hash: Hash,
        event_id: &str,
        digest: &EventDigest,
        class: EventClass,
    ) {
        assert_eq!(
            self.layout,
            LeafLayout::Usage,
            "only usage ledgers store usage leaves"
        );
        event_packing::pack_event_id(event_id, &mut self.entries);
        self.entries.extend_from_slice(digest.hash().as_bytes());
        self.entries.push(class_code(class));
        self.hashes.push(hash);
        self.ends.push(self.entries.len());
    }

    /// The bundle rows: (first index, leaf count, `leaf_hashes`, `leaf_data`), each of at
    /// most [`BUNDLE_ENTRIES_MAX`] leaves.
    fn encode(&self) -> Vec<(u64, usize, Vec<u8>, Vec<u8>)> {
        let version = match self.layout {
            LeafLayout::Whole => FORMAT_VERSION,
            LeafLayout::Usage => USAGE_LEAVES_PACKED_VERSION,
        };
        let mut rows = Vec::with_capacity(self.len().div_ceil(BUNDLE_ENTRIES_MAX));
        let mut start = 0;
        while start < self.len() {
            let end = (start + BUNDLE_ENTRIES_MAX).min(self.len());
            let mut hashes = Vec::with_capacity((end - start) * 32);
            for hash in &self.hashes[start..end] {
                hashes.extend_from_slice(hash.as_bytes());
            }
            let from = if start == 0 { 0 } else { self.ends[start - 1] };
            let to = self.ends[end - 1];
            let mut data = Vec::with_capacity(1 + to - from);
            data.push(version);
            data.extend_from_slice(&self.entries[from..to]);
            rows.push((self.first_index + start as u64, end - start, hashes, data));
            start = end;
        }
        rows
    }
}

/// One encoded bundle row before it is written: (owner, first index, entries, two columns).
type EncodedRow<'a, E> = (&'a str, u64, E, Vec<u8>, Vec<u8>);

/// One stored leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLeaf {
    pub index: u64,
    pub hash: Hash,
    pub data: Vec<u8>,
}

/// Decodes a leaf bundle of `log_id`; `data` is `None` when only the hashes were read (the
/// leaves then have empty data). Usage leaves are rebuilt into their whole text.
pub fn decode_leaves(
    log_id: &LogId,
    first_index: u64,
    count: usize,
    hashes: &[u8],
    data: Option<&[u8]>,
) -> Result<Vec<StoredLeaf>, StoreError> {
    if hashes.len() != count * 32 {
        return Err(StoreError::corrupt(format!(
            "leaf bundle at {first_index}: {} hash bytes for {count} leaves",
            hashes.len()
        )));
    }
    let packed_ids = data.and_then(<[u8]>::first) == Some(&USAGE_LEAVES_PACKED_VERSION);
    let mut reader = match data {
        None => None,
        Some(bytes) => Some(match bytes.split_first() {
            Some((&FORMAT_VERSION, rest)) => (LeafLayout::Whole, Reader::raw(rest, "leaf bundle")),
            Some((&USAGE_LEAVES_VERSION, rest)) | Some((&USAGE_LEAVES_PACKED_VERSION, rest)) => {
                (LeafLayout::Usage, Reader::raw(rest, "leaf bundle"))
            }
            _ => return Err(StoreError::corrupt("leaf bundle: unknown bundle layout")),
        }),
    };
    let tenant_id = match &reader {
        Some((LeafLayout::Usage, _)) => {
            Some(log_id.tenant().map(TenantId::as_str).ok_or_else(|| {
                StoreError::corrupt(format!("log {log_id}: usage leaves outside a usage ledger"))
            })?)
        }
        _ => None,
    };
    let mut leaves = Vec::with_capacity(count);
    let mut event_id = String::new();
    for (offset, hash) in (0u64..).zip(hashes.chunks_exact(32)) {
        let index = first_index + offset;
        let data = match &mut reader {
            Some((LeafLayout::Whole, reader)) => {
                let len = reader.u32()?;
                reader.take(len)?.to_vec()
            }
            Some((LeafLayout::Usage, reader)) => {
                event_id.clear();
                if packed_ids {
                    event_packing::unpack_event_id(reader.packed_event_id()?, &mut event_id)
                        .map_err(|e| StoreError::corrupt(format!("leaf bundle: {e}")))?;
                } else {
                    let id_len = usize::from(reader.u8()?);
                    event_id.push_str(reader.text(id_len)?);
                }
                let digest = EventDigest::from_hash(
                    Hash::from_slice(reader.take(32)?)
                        .ok_or_else(|| StoreError::corrupt("leaf digest"))?,
                );
                let class = class_of_code(reader.u8()?)?;
                let tenant_id = tenant_id.unwrap_or_default();
                let mut text = Vec::with_capacity(
                    companyos_ledger::leaf::USAGE_LEAF_BYTES_BASE
                        + tenant_id.len()
                        + event_id.len()
                        + 20,
                );
                companyos_ledger::leaf::write_usage_leaf(
                    &mut text, tenant_id, index, &event_id, &digest, class,
                );
                text
            }
            None => Vec::new(),
        };
        leaves.push(StoredLeaf {
            index,
            hash: Hash::from_slice(hash).ok_or_else(|| StoreError::corrupt("leaf hash"))?,
            data,
        });
    }
    if let Some((_, reader)) = &reader {
        reader.finish()?;
    }
    Ok(leaves)
}

/// Appends leaf bundles: `(log_id, leaves)`, split into bundles of at most
/// [`BUNDLE_ENTRIES_MAX`].
pub async fn write_leaves(
    conn: &mut AnyConnection,
    logs: &[(&LogId, &PendingLeaves)],
) -> Result<(), StoreError> {
    let texts: Vec<String> = logs.iter().map(|(log_id, _)| log_id.to_string()).collect();
    let logs: Vec<(&str, &PendingLeaves)> = texts
        .iter()
        .zip(logs)
        .map(|(text, (_, leaves))| (text.as_str(), *leaves))
        .collect();
    write_leaf_rows(conn, &logs).await
}

/// [`write_leaves`] by the logs' stored text: the conversion of legacy rows copies log ids as
/// they were stored.
async fn write_leaf_rows(
    conn: &mut AnyConnection,
    logs: &[(&str, &PendingLeaves)],
) -> Result<(), StoreError> {
    let mut rows: Vec<EncodedRow<'_, usize>> = Vec::new();
    for (log_id, leaves) in logs {
        for (first, count, hashes, data) in leaves.encode() {
            rows.push((log_id, first, count, hashes, data));
        }
    }
    for chunk in crate::db::statement_chunks(&rows, BUNDLES_PER_STATEMENT) {
        let sql = format!(
            "{} ledger_leaf_bundles (log_id, first_index, leaf_count, leaf_hashes, leaf_data) \
             VALUES {}",
            Placeholders::of(conn).bulk_insert(),
            values_placeholders(Placeholders::of(conn), chunk.len(), 5)
        );
        let mut query = sqlx::query(&sql);
        for (log_id, first, count, hashes, data) in chunk {
            query = query
                .bind(*log_id)
                .bind(to_i64(*first)?)
                .bind(i64::try_from(*count).unwrap_or(i64::MAX))
                .bind(hashes.as_slice())
                .bind(data.as_slice());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The stored leaves of `log_id` with `from <= index < to`, in order (with their data when
/// `with_data`). Fewer than asked when the log is shorter or leaves are missing.
pub async fn read_leaves(
    conn: &mut AnyConnection,
    log_id: &LogId,
    from: u64,
    to: u64,
    with_data: bool,
) -> Result<Vec<StoredLeaf>, StoreError> {
    let to = to.min(i64::MAX as u64);
    if from >= to {
        return Ok(Vec::new());
    }
    let sql = range_sql(
        &LEAF_BUNDLES,
        if with_data {
            "first_index, leaf_count, leaf_hashes, leaf_data"
        } else {
            "first_index, leaf_count, leaf_hashes"
        },
    );
    let rows = sqlx::query(&sql)
        .bind(log_id.to_string())
        .bind(log_id.to_string())
        .bind(to_i64(from)?)
        .bind(to_i64(to)?)
        .fetch_all(&mut *conn)
        .await?;
    let mut leaves = Vec::new();
    for row in &rows {
        let first = to_u64(row.try_get(0)?)?;
        let count = usize::try_from(row.try_get::<i64, _>(1)?)
            .map_err(|_| StoreError::corrupt("leaf count"))?;
        let hashes: Vec<u8> = row.try_get(2)?;
        let data: Option<Vec<u8>> = if with_data {
            Some(row.try_get(3)?)
        } else {
            None
        };
        for leaf in decode_leaves(log_id, first, count, &hashes, data.as_deref())? {
            if leaf.index >= from && leaf.index < to {
                leaves.push(leaf);
            }
        }
    }
    Ok(leaves)
}

/// How many leaves a log has stored.
pub async fn count_leaves(conn: &mut AnyConnection, log_id: &LogId) -> Result<i64, StoreError> {
    count_entries(conn, &LEAF_BUNDLES, &log_id.to_string()).await
}

/// Where one kind of bundle is stored: its table and the columns that place a bundle.
#[derive(Debug)]
struct BundleTable {
    table: &'static str,
    /// The log or tenant the bundle belongs to.
    owner: &'static str,
    /// The index (or seq) of its first entry.
    first: &'static str,
    /// How many entries it holds.
    count: &'static str,
}

const LEAF_BUNDLES: BundleTable = BundleTable {
    table: "ledger_leaf_bundles",
    owner: "log_id",
    first: "first_index",
    count: "leaf_count",
};

const EVENT_BUNDLES: BundleTable = BundleTable {
    table: "usage_event_bundles",
    owner: "tenant_id",
    first: "first_seq",
    count: "event_count",
};

/// The entries an owner has stored, over all its bundles.
async fn count_entries(
    conn: &mut AnyConnection,
    bundles: &BundleTable,
    owner: &str,
) -> Result<i64, StoreError> {
    let BundleTable {
        table,
        owner: owner_column,
        count,
        ..
    } = bundles;
    let sql = format!(
        "SELECT CAST(COALESCE(SUM({count}), 0) AS BIGINT) FROM {table} WHERE {owner_column} = $1"
    );
    Ok(sqlx::query_scalar(&sql)
        .bind(owner)
        .fetch_one(&mut *conn)
        .await?)
}

/// The bundles of an owner that hold entries `from <= index < to`, in order: those starting
/// in the range, and the one before it (which may reach into it). Binds: owner, owner, from, to.
fn range_sql(bundles: &BundleTable, columns: &str) -> String {
    let BundleTable {
        table,
        owner,
        first,
        ..
    } = bundles;
    format!(
        "SELECT {columns} FROM {table} WHERE {owner} = $1 AND {first} >= COALESCE((SELECT \
         MAX({first}) FROM {table} WHERE {owner} = $2 AND {first} <= $3), 0) AND {first} < $4 \
         ORDER BY {first}"
    )
}

// ------------------------------------------------------------------------------------------
// Migration from the per-entry tables
// ------------------------------------------------------------------------------------------

/// Rows read per page while converting.
const LEGACY_PAGE_ROWS: i64 = 10_000;

/// Converts the rows of the per-entry tables (`ledger_leaves`, `usage_events`, and SQLite's old
/// key index) into bundles and key rows, then drops those tables; inside the migration's
/// transaction, so a store is either wholly converted or untouched.
pub(crate) async fn convert_legacy_rows(
    conn: &mut AnyConnection,
    backend: crate::db::Backend,
) -> Result<(), StoreError> {
    convert_legacy_leaves(conn).await?;
    convert_legacy_events(conn).await?;
    if backend == crate::db::Backend::Sqlite {
        sqlx::query(
            "UPDATE usage_key_index SET indexed_bundle_id = \
             (SELECT COALESCE(MAX(id), 0) FROM usage_event_bundles) WHERE id = 1",
        )
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("DROP TABLE usage_events")
        .execute(&mut *conn)
        .await?;
    sqlx::query("DROP TABLE ledger_leaves")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Leaves, log by log, in index order, a page at a time.
async fn convert_legacy_leaves(conn: &mut AnyConnection) -> Result<(), StoreError> {
    let mut after: (String, i64) = (String::new(), -1);
    // Leaves of every log are converted whole (layout version 1), as they were stored.
    let mut pending: Vec<(String, PendingLeaves)> = Vec::new();
    loop {
        let rows = legacy_page(
            conn,
            "SELECT log_id, leaf_index, leaf_hash, leaf_data FROM ledger_leaves \
             WHERE log_id > $1 OR (log_id = $2 AND leaf_index > $3) \
             ORDER BY log_id, leaf_index LIMIT $4",
            &after,
        )
        .await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let log_id: String = row.try_get(0)?;
            let index: i64 = row.try_get(1)?;
            let hash: Vec<u8> = row.try_get(2)?;
            let hash = Hash::from_slice(&hash).ok_or_else(|| StoreError::corrupt("leaf hash"))?;
            let leaf_index = to_u64(index)?;
            let data: Vec<u8> = row.try_get(3)?;
            match pending.last_mut() {
                Some((last_log, leaves))
                    if *last_log == log_id && leaves.next_index() == leaf_index =>
                {
                    leaves.push_whole(hash, &data);
                }
                _ => {
                    let mut leaves = PendingLeaves::new(LeafLayout::Whole, leaf_index);
                    leaves.push_whole(hash, &data);
                    pending.push((log_id.clone(), leaves));
                }
            }
            after = (log_id, index);
        }
        let logs: Vec<(&str, &PendingLeaves)> = pending
            .iter()
            .map(|(log_id, leaves)| (log_id.as_str(), leaves))
            .collect();
        write_leaf_rows(conn, &logs).await?;
        pending.clear();
    }
    Ok(())
}

/// Event payloads, tenant by tenant, in seq order, with their keys page by page (so the
/// memory used is bounded by a page, whatever the store's size).
async fn convert_legacy_events(conn: &mut AnyConnection) -> Result<(), StoreError> {
    let mut after: (String, i64) = (String::new(), -1);
    loop {
        let rows = legacy_page(
            conn,
            "SELECT tenant_id, seq, event_key, event_id, digest, class, flags, received_at, \
             canonical, source_signature FROM usage_events \
             WHERE tenant_id > $1 OR (tenant_id = $2 AND seq > $3) \
             ORDER BY tenant_id, seq LIMIT $4",
            &after,
        )
        .await?;
        if rows.is_empty() {
            break;
        }
        let legacy = legacy_events(&rows)?;
        if let Some(last) = legacy.last() {
            after = (last.tenant_id.clone(), to_i64(last.seq)?);
        }
        let mut keys = write_legacy_bundles(conn, &legacy).await?;
        keys.sort_unstable();
        insert_keys(conn, &keys).await?;
    }
    Ok(())
}

/// One row of the per-entry `usage_events` table.
struct LegacyEvent {
    tenant_id: String,
    seq: u64,
    key: i64,
    event_id: String,
    class: EventClass,
    flags: Vec<String>,
    received_at: i64,
    canonical: String,
    source_signature: Option<String>,
}

/// Decodes a page of `usage_events` rows.
fn legacy_events(rows: &[sqlx::any::AnyRow]) -> Result<Vec<LegacyEvent>, StoreError> {
    let mut legacy = Vec::with_capacity(rows.len());
    for row in rows {
        // Column 4, the digest, is not kept: it is the SHA-256 of the canonical form, and
        // the leaf holds it to check the payload against.
        let class: String = row.try_get(5)?;
        let flags: String = row.try_get(6)?;
        legacy.push(LegacyEvent {
            tenant_id: row.try_get(0)?,
            seq: to_u64(row.try_get(1)?)?,
            key: row.try_get(2)?,
            event_id: row.try_get(3)?,
            class: EventClass::parse(&class).ok_or_else(|| StoreError::corrupt("class"))?,
            flags: serde_json::from_str(&flags).map_err(|_| StoreError::corrupt("event flags"))?,
            received_at: row.try_get(7)?,
            canonical: row.try_get(8)?,
            source_signature: row.try_get(9)?,
        });
    }
    Ok(legacy)
}

/// Writes a page of events as payload bundles; returns their key rows `(event_key, bundle_id,
/// position)`. Runs of one tenant, consecutive seqs and one receive time make one bundle each.
async fn write_legacy_bundles(
    conn: &mut AnyConnection,
    legacy: &[LegacyEvent],
) -> Result<Vec<(i64, i64, i64)>, StoreError> {
    let mut keys: Vec<(i64, i64, i64)> = Vec::with_capacity(legacy.len());
    let mut start = 0;
    while start < legacy.len() {
        let first = &legacy[start];
        let mut end = start + 1;
        while end < legacy.len()
            && end - start < BUNDLE_ENTRIES_MAX
            && legacy[end].tenant_id == first.tenant_id
            && legacy[end].seq == legacy[end - 1].seq + 1
            && legacy[end].received_at == first.received_at
        {
            end += 1;
        }
        let flags: Vec<Vec<&str>> = legacy[start..end]
            .iter()
            .map(|e| e.flags.iter().map(String::as_str).collect())
            .collect();
        let events: Vec<NewEvent<'_>> = legacy[start..end]
            .iter()
            .zip(&flags)
            .map(|(e, flags)| NewEvent {
                key: e.key,
                event_id: &e.event_id,
                class: e.class,
                flags,
                canonical: &e.canonical,
                source_signature: e.source_signature.as_deref(),
            })
            .collect();
        keys.extend(
            write_events(
                conn,
                &[(first.tenant_id.as_str(), first.seq, events)],
                first.received_at,
            )
            .await?,
        );
        start = end;
    }
    Ok(keys)
}

/// One page of a per-entry table in (owner, index) order after `after`; `sql` binds the owner
/// twice, the index and the page size.
async fn legacy_page(
    conn: &mut AnyConnection,
    sql: &str,
    after: &(String, i64),
) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
    Ok(sqlx::query(sql)
        .bind(after.0.as_str())
        .bind(after.0.as_str())
        .bind(after.1)
        .bind(LEGACY_PAGE_ROWS)
        .fetch_all(&mut *conn)
        .await?)
}

/// Key rows per insert statement.
const KEYS_PER_STATEMENT: usize = 2048;

/// Key rows per insert statement on PostgreSQL (three array parameters).
const POSTGRES_KEYS_PER_STATEMENT: usize = 65_536;

/// Inserts `(event_key, bundle_id, position)` rows into `usage_event_keys`.
pub async fn insert_keys(
    conn: &mut AnyConnection,
    keys: &[(i64, i64, i64)],
) -> Result<(), StoreError> {
    if Placeholders::of(conn) == Placeholders::Numbered {
        // PostgreSQL: the rows as three arrays, one statement (see `postgres_bigint_array`).
        // The statement text is the same for any number of rows: plain chunks.
        for chunk in keys.chunks(POSTGRES_KEYS_PER_STATEMENT) {
            sqlx::query(
                "INSERT INTO usage_event_keys (event_key, bundle_id, position) \
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[])",
            )
            .bind(crate::db::postgres_bigint_array(chunk.iter().map(|k| k.0)))
            .bind(crate::db::postgres_bigint_array(chunk.iter().map(|k| k.1)))
            .bind(crate::db::postgres_bigint_array(chunk.iter().map(|k| k.2)))
            .execute(&mut *conn)
            .await?;
        }
        return Ok(());
    }
    for chunk in crate::db::statement_chunks(keys, KEYS_PER_STATEMENT) {
        let sql = format!(
            "{} usage_event_keys (event_key, bundle_id, position) VALUES {}",
            Placeholders::of(conn).bulk_insert(),
            values_placeholders(Placeholders::of(conn), chunk.len(), 3)
        );
        let mut query = sqlx::query(&sql);
        for (key, bundle, position) in chunk {
            query = query.bind(*key).bind(*bundle).bind(*position);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
