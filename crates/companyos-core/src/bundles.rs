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
use companyos_ledger::Hash;
use companyos_ledger::leaf::EventClass;
use companyos_ledger::usage_event::EventDigest;
use sqlx::{AnyConnection, Row as _};

use crate::db::{Placeholders, StoreError, list_placeholders, values_placeholders};
use crate::db::{to_i64, to_u64};

/// Entries per bundle at most: a reader of one leaf or event decodes at most this many.
pub const BUNDLE_ENTRIES_MAX: usize = 256;
/// Bundles per multi-row insert.
const BUNDLES_PER_STATEMENT: usize = 256;
/// Bundle ids per lookup statement.
const IDS_PER_LOOKUP: usize = 256;
/// First byte of every encoded `leaf_data` and `events` column: the layout version.
const FORMAT_VERSION: u8 = 1;

/// A cursor over an encoded bundle column; every read is bounds-checked.
struct Reader<'a> {
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
    pub fn of_log(log_id: &str) -> Self {
        match companyos_domain::log_id::usage_log_tenant(log_id) {
            Some(_) => Self::Usage,
            None => Self::Whole,
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
    log_id: &str,
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
        Some((LeafLayout::Usage, _)) => Some(
            companyos_domain::log_id::usage_log_tenant(log_id).ok_or_else(|| {
                StoreError::corrupt(format!("log {log_id}: usage leaves outside a usage ledger"))
            })?,
        ),
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
    log_id: &str,
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
        .bind(log_id)
        .bind(log_id)
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
pub async fn count_leaves(conn: &mut AnyConnection, log_id: &str) -> Result<i64, StoreError> {
    count_entries(conn, &LEAF_BUNDLES, log_id).await
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
// Usage event payloads
// ------------------------------------------------------------------------------------------

/// An event as the ingestion writer appends it.
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    pub key: i64,
    pub event_id: &'a str,
    pub class: EventClass,
    pub flags: &'a [&'a str],
    pub canonical: &'a str,
    pub source_signature: Option<&'a str>,
}

/// A stored usage event payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub tenant_id: String,
    pub seq: u64,
    pub key: i64,
    pub event_id: String,
    pub digest: EventDigest,
    pub class: EventClass,
    pub flags: Vec<String>,
    pub canonical: String,
    pub source_signature: Option<String>,
    pub received_at_micros: i64,
}

fn class_code(class: EventClass) -> u8 {
    match class {
        EventClass::OnTime => 0,
        EventClass::Late => 1,
    }
}

fn class_of_code(code: u8) -> Result<EventClass, StoreError> {
    match code {
        0 => Ok(EventClass::OnTime),
        1 => Ok(EventClass::Late),
        _ => Err(StoreError::corrupt("event class")),
    }
}

/// First byte of an `events` column in the packed layout (ADR 0009), which every
/// new bundle uses; bundles written before it ([`FORMAT_VERSION`]) are read alike.
const EVENTS_PACKED_VERSION: u8 = 2;

/// Bits of a packed entry's info byte.
const INFO_LATE: u8 = 0x01;
const INFO_SIGNED: u8 = 0x02;
/// Flags follow: their count, then each as a code of [`FLAG_CODES`] or 0, a 1-byte length and
/// the text.
const INFO_FLAGS: u8 = 0x04;
const INFO_KNOWN: u8 = INFO_LATE | INFO_SIGNED | INFO_FLAGS;

/// The flags ingestion sets, by the code a packed entry stores them as.
const FLAG_CODES: [(u8, &str); 5] = [
    (1, "unsigned"),
    (2, "undeclared_service"),
    (3, "undeclared_metric"),
    (4, "unit_mismatch"),
    (5, "tenant_suspended"),
];
/// The code of a flag stored as text.
const FLAG_TEXT: u8 = 0;

/// Encodes the events of one tenant as the `event_keys` column (8-byte big-endian compact keys)
/// and the `events` column in the packed layout: the version byte, then per event the event id
/// packed ([`event_packing::pack_event_id`]), an info byte (class, signature present, flags
/// present), the flags if any (a count, then each as a 1-byte code or as text), the packed
/// canonical form (2-byte length) and the source signature when present (2-byte length). The
/// digest is not stored: it is the SHA-256 of the canonical form, computed when it is read.
pub fn encode_events(tenant_id: &str, events: &[NewEvent<'_>]) -> (Vec<u8>, Vec<u8>) {
    let mut keys = Vec::with_capacity(events.len() * 8);
    // An upper bound (packing never grows a JCS text), so the buffer is allocated once.
    let size: usize = events
        .iter()
        .map(|e| {
            e.event_id.len()
                + e.canonical.len()
                + e.source_signature.map_or(0, str::len)
                + e.flags.iter().map(|f| f.len() + 2).sum::<usize>()
                + 8
        })
        .sum();
    let mut out = Vec::with_capacity(1 + size);
    out.push(EVENTS_PACKED_VERSION);
    for event in events {
        keys.extend_from_slice(&event.key.to_be_bytes());
        event_packing::pack_event_id(event.event_id, &mut out);
        let mut info = match event.class {
            EventClass::OnTime => 0,
            EventClass::Late => INFO_LATE,
        };
        if event.source_signature.is_some() {
            info |= INFO_SIGNED;
        }
        if !event.flags.is_empty() {
            info |= INFO_FLAGS;
        }
        out.push(info);
        if !event.flags.is_empty() {
            out.push(u8::try_from(event.flags.len()).expect("an event carries a few flags"));
            for flag in event.flags {
                match FLAG_CODES.iter().find(|(_, name)| name == flag) {
                    Some((code, _)) => out.push(*code),
                    None => {
                        out.push(FLAG_TEXT);
                        out.push(u8::try_from(flag.len()).expect("flags are short names"));
                        out.extend_from_slice(flag.as_bytes());
                    }
                }
            }
        }
        let length_at = out.len();
        out.extend_from_slice(&[0, 0]);
        event_packing::pack_canonical(
            event.canonical,
            PackContext {
                tenant_id,
                event_id: event.event_id,
            },
            &mut out,
        );
        let packed_len = u16::try_from(out.len() - length_at - 2).expect(
            "a whole event is at most EVENT_BYTES_MAX (16 KiB), and packing halves it at worst",
        );
        out[length_at..length_at + 2].copy_from_slice(&packed_len.to_be_bytes());
        if let Some(signature) = event.source_signature {
            let signature_len = u16::try_from(signature.len())
                .expect("a whole event is at most EVENT_BYTES_MAX (16 KiB)");
            out.extend_from_slice(&signature_len.to_be_bytes());
            out.extend_from_slice(signature.as_bytes());
        }
    }
    (keys, out)
}

/// Decodes the compact keys of an `event_keys` column.
pub fn decode_keys(bytes: &[u8]) -> Result<Vec<i64>, StoreError> {
    if bytes.len() % 8 != 0 {
        return Err(StoreError::corrupt("event key bundle length"));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|b| i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
        .collect())
}

/// Decodes the events of one bundle (pure; the columns of a `usage_event_bundles` row).
pub fn decode_events(
    tenant_id: &str,
    first_seq: u64,
    count: usize,
    received_at_micros: i64,
    keys: &[u8],
    bytes: &[u8],
) -> Result<Vec<StoredEvent>, StoreError> {
    let keys = bundle_keys(tenant_id, first_seq, count, keys)?;
    let mut reader = EventReader::new(bytes)?;
    let mut events = Vec::with_capacity(count);
    for (offset, key) in (0u64..).zip(keys) {
        let entry = reader.next()?;
        let event_id = entry.event_id()?;
        let canonical = entry.canonical(tenant_id, &event_id)?;
        events.push(StoredEvent {
            tenant_id: tenant_id.to_owned(),
            seq: first_seq + offset,
            key,
            digest: entry.digest(&canonical),
            event_id,
            class: entry.class,
            flags: entry.flags()?,
            canonical,
            source_signature: (!entry.signature.is_empty()).then(|| entry.signature.to_owned()),
            received_at_micros,
        });
    }
    reader.finish()?;
    Ok(events)
}

/// The compact keys of an event bundle, checked against its event count.
fn bundle_keys(
    tenant_id: &str,
    first_seq: u64,
    count: usize,
    keys: &[u8],
) -> Result<Vec<i64>, StoreError> {
    let keys = decode_keys(keys)?;
    if keys.len() != count {
        return Err(StoreError::corrupt(format!(
            "event bundle of {tenant_id} at {first_seq}: {} keys for {count} events",
            keys.len()
        )));
    }
    Ok(keys)
}

/// The two layouts of an `events` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventsLayout {
    /// [`FORMAT_VERSION`]: ids, digests and canonical forms whole.
    Whole,
    /// [`EVENTS_PACKED_VERSION`].
    Packed,
}

/// Reads the entries of an `events` column one by one, without unpacking them.
struct EventReader<'a> {
    layout: EventsLayout,
    reader: Reader<'a>,
}

impl<'a> EventReader<'a> {
    fn new(bytes: &'a [u8]) -> Result<Self, StoreError> {
        let what = "event bundle";
        match bytes.split_first() {
            Some((&FORMAT_VERSION, rest)) => Ok(Self {
                layout: EventsLayout::Whole,
                reader: Reader::raw(rest, what),
            }),
            Some((&EVENTS_PACKED_VERSION, rest)) => Ok(Self {
                layout: EventsLayout::Packed,
                reader: Reader::raw(rest, what),
            }),
            _ => Err(StoreError::corrupt(format!(
                "{what}: unknown bundle layout"
            ))),
        }
    }

    /// Checks that no bytes follow the last entry.
    fn finish(&self) -> Result<(), StoreError> {
        self.reader.finish()
    }

    fn next(&mut self) -> Result<EventEntry<'a>, StoreError> {
        let reader = &mut self.reader;
        match self.layout {
            EventsLayout::Whole => {
                let id_len = usize::from(reader.u8()?);
                let id = reader.take(id_len)?;
                let digest = EventDigest::from_hash(
                    Hash::from_slice(reader.take(32)?)
                        .ok_or_else(|| StoreError::corrupt("digest"))?,
                );
                let class = class_of_code(reader.u8()?)?;
                let flags_len = usize::from(reader.u8()?);
                let flags = reader.text(flags_len)?;
                let canonical_len = reader.u32()?;
                let canonical = reader.take(canonical_len)?;
                let signature_len = reader.u16()?;
                let signature = reader.text(signature_len)?;
                Ok(EventEntry {
                    layout: EventsLayout::Whole,
                    id,
                    stored_digest: Some(digest),
                    class,
                    flags: EntryFlags::Text(flags),
                    canonical,
                    signature,
                })
            }
            EventsLayout::Packed => {
                let id = reader.packed_event_id()?;
                let info = reader.u8()?;
                if info & !INFO_KNOWN != 0 {
                    return Err(StoreError::corrupt("event bundle: unknown entry info"));
                }
                let flags = if info & INFO_FLAGS != 0 {
                    let count = usize::from(reader.u8()?);
                    let start = reader.bytes;
                    for _ in 0..count {
                        read_coded_flag(reader)?;
                    }
                    EntryFlags::Coded(Reader::raw(
                        &start[..start.len() - reader.bytes.len()],
                        "event flags",
                    ))
                } else {
                    EntryFlags::Text("")
                };
                let canonical_len = reader.u16()?;
                let canonical = reader.take(canonical_len)?;
                let signature = if info & INFO_SIGNED != 0 {
                    let signature_len = reader.u16()?;
                    reader.text(signature_len)?
                } else {
                    ""
                };
                Ok(EventEntry {
                    layout: EventsLayout::Packed,
                    id,
                    stored_digest: None,
                    class: if info & INFO_LATE != 0 {
                        EventClass::Late
                    } else {
                        EventClass::OnTime
                    },
                    flags,
                    canonical,
                    signature,
                })
            }
        }
    }
}

enum EntryFlags<'a> {
    /// Comma-separated (empty for none): the whole layout.
    Text(&'a str),
    /// Flags as codes or texts ([`read_coded_flag`]; checked when the entry was read): the
    /// packed layout.
    Coded(Reader<'a>),
}

/// One flag of a packed entry: its code, or [`FLAG_TEXT`], a 1-byte length and the text.
fn read_coded_flag<'a>(reader: &mut Reader<'a>) -> Result<&'a str, StoreError> {
    match reader.u8()? {
        FLAG_TEXT => {
            let len = usize::from(reader.u8()?);
            reader.text(len)
        }
        code => FLAG_CODES
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, name)| *name)
            .ok_or_else(|| StoreError::corrupt("event bundle: unknown flag")),
    }
}

/// One event of an `events` column, borrowed from it, still in its stored form.
struct EventEntry<'a> {
    layout: EventsLayout,
    /// The id's text (whole layout) or its packed bytes.
    id: &'a [u8],
    /// The whole layout stores the digest; the packed one computes it.
    stored_digest: Option<EventDigest>,
    class: EventClass,
    flags: EntryFlags<'a>,
    /// The canonical text (whole layout) or its packed bytes.
    canonical: &'a [u8],
    signature: &'a str,
}

impl EventEntry<'_> {
    fn event_id(&self) -> Result<String, StoreError> {
        let mut text = String::with_capacity(40);
        match self.layout {
            EventsLayout::Whole => text.push_str(
                std::str::from_utf8(self.id)
                    .map_err(|_| StoreError::corrupt("event bundle: event id is not UTF-8"))?,
            ),
            EventsLayout::Packed => {
                event_packing::unpack_event_id(self.id, &mut text).map_err(unpack_error)?;
            }
        }
        Ok(text)
    }

    fn canonical(&self, tenant_id: &str, event_id: &str) -> Result<String, StoreError> {
        match self.layout {
            EventsLayout::Whole => std::str::from_utf8(self.canonical)
                .map(str::to_owned)
                .map_err(|_| StoreError::corrupt("event bundle: canonical form is not UTF-8")),
            EventsLayout::Packed => event_packing::unpack_canonical(
                self.canonical,
                PackContext {
                    tenant_id,
                    event_id,
                },
            )
            .map_err(unpack_error),
        }
    }

    /// The digest: as stored, or the SHA-256 of the canonical form.
    fn digest(&self, canonical: &str) -> EventDigest {
        self.stored_digest
            .unwrap_or_else(|| EventDigest::of_canonical(canonical.as_bytes()))
    }

    fn flags(&self) -> Result<Vec<String>, StoreError> {
        Ok(match &self.flags {
            EntryFlags::Text("") => Vec::new(),
            EntryFlags::Text(text) => text.split(',').map(str::to_owned).collect(),
            EntryFlags::Coded(flags) => {
                let mut reader = Reader::raw(flags.bytes, flags.what);
                let mut names = Vec::new();
                while !reader.bytes.is_empty() {
                    names.push(read_coded_flag(&mut reader)?.to_owned());
                }
                names
            }
        })
    }
}

fn unpack_error(error: event_packing::UnpackError) -> StoreError {
    StoreError::corrupt(format!("event bundle: {error}"))
}

/// The events of a `usage_event_bundles` row of [`EVENT_BUNDLE_COLUMNS`].
fn decode_event_bundle(row: &sqlx::any::AnyRow) -> Result<Vec<StoredEvent>, StoreError> {
    let tenant_id: String = row.try_get("tenant_id")?;
    let first_seq = to_u64(row.try_get("first_seq")?)?;
    let count = usize::try_from(row.try_get::<i64, _>("event_count")?)
        .map_err(|_| StoreError::corrupt("event count"))?;
    let received_at_micros: i64 = row.try_get("received_at")?;
    let keys: Vec<u8> = row.try_get("event_keys")?;
    let bytes: Vec<u8> = row.try_get("events")?;
    decode_events(
        &tenant_id,
        first_seq,
        count,
        received_at_micros,
        &keys,
        &bytes,
    )
}

const EVENT_BUNDLE_COLUMNS: &str =
    "tenant_id, first_seq, event_count, received_at, event_keys, events";

/// Appends event bundles: `(tenant_id, first_seq, events)` with each tenant's events
/// consecutive from `first_seq`, split into bundles of at most [`BUNDLE_ENTRIES_MAX`]. Returns
/// `(event_key, bundle_id, position)` of every event written, in the order given.
pub async fn write_events(
    conn: &mut AnyConnection,
    tenants: &[(&str, u64, Vec<NewEvent<'_>>)],
    received_at_micros: i64,
) -> Result<Vec<(i64, i64, i64)>, StoreError> {
    let mut rows: Vec<EncodedRow<'_, &[NewEvent<'_>]>> = Vec::new();
    for (tenant_id, first_seq, events) in tenants {
        for (chunk_index, chunk) in (0u64..).zip(events.chunks(BUNDLE_ENTRIES_MAX)) {
            let first = first_seq + chunk_index * BUNDLE_ENTRIES_MAX as u64;
            let (keys, bytes) = encode_events(tenant_id, chunk);
            rows.push((tenant_id, first, chunk, keys, bytes));
        }
    }
    let mut written = Vec::with_capacity(rows.iter().map(|r| r.2.len()).sum());
    for chunk in crate::db::statement_chunks(&rows, BUNDLES_PER_STATEMENT) {
        let sql = format!(
            "{} usage_event_bundles (tenant_id, first_seq, event_count, received_at, event_keys, \
             events) VALUES {} RETURNING id, tenant_id, first_seq",
            Placeholders::of(conn).bulk_insert(),
            values_placeholders(Placeholders::of(conn), chunk.len(), 6)
        );
        let mut query = sqlx::query(&sql);
        for (tenant_id, first, events, keys, bytes) in chunk {
            query = query
                .bind(*tenant_id)
                .bind(to_i64(*first)?)
                .bind(i64::try_from(events.len()).unwrap_or(i64::MAX))
                .bind(received_at_micros)
                .bind(keys.as_slice())
                .bind(bytes.as_slice());
        }
        let returned = query.fetch_all(&mut *conn).await?;
        if returned.len() != chunk.len() {
            return Err(StoreError::corrupt("an event bundle insert returned no id"));
        }
        let mut ids = std::collections::HashMap::with_capacity(returned.len());
        for row in &returned {
            let tenant_id: String = row.try_get(1)?;
            let first: i64 = row.try_get(2)?;
            ids.insert((tenant_id, first), row.try_get::<i64, _>(0)?);
        }
        for (tenant_id, first, events, _, _) in chunk {
            let id = ids
                .get(&((*tenant_id).to_owned(), to_i64(*first)?))
                .copied()
                .ok_or_else(|| StoreError::corrupt("an event bundle insert returned no id"))?;
            for (position, event) in (0i64..).zip(events.iter()) {
                written.push((event.key, id, position));
            }
        }
    }
    Ok(written)
}

/// The stored events of a tenant with `from <= seq < to`, in order.
pub async fn read_events(
    conn: &mut AnyConnection,
    tenant_id: &str,
    from: u64,
    to: u64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let to = to.min(i64::MAX as u64);
    if from >= to {
        return Ok(Vec::new());
    }
    let sql = range_sql(&EVENT_BUNDLES, EVENT_BUNDLE_COLUMNS);
    let rows = sqlx::query(&sql)
        .bind(tenant_id)
        .bind(tenant_id)
        .bind(to_i64(from)?)
        .bind(to_i64(to)?)
        .fetch_all(&mut *conn)
        .await?;
    let mut events = Vec::new();
    for row in &rows {
        for event in decode_event_bundle(row)? {
            if event.seq >= from && event.seq < to {
                events.push(event);
            }
        }
    }
    Ok(events)
}

/// What a dedupe lookup needs of a stored event: who and what it is, not its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventIdentity {
    pub key: i64,
    pub tenant_id: String,
    pub event_id: String,
    pub seq: u64,
    pub digest: EventDigest,
}

/// Decodes the events at `positions` of one bundle (pure): every entry is walked, but only the
/// wanted ones are copied out, without their canonical form (a resend of a whole batch looks up
/// thousands of events at once).
pub fn decode_event_identities(
    tenant_id: &str,
    first_seq: u64,
    count: usize,
    keys: &[u8],
    bytes: &[u8],
    positions: &[i64],
) -> Result<Vec<EventIdentity>, StoreError> {
    let keys = bundle_keys(tenant_id, first_seq, count, keys)?;
    let mut wanted: Vec<usize> = Vec::with_capacity(positions.len());
    for position in positions {
        let position = usize::try_from(*position)
            .ok()
            .filter(|p| *p < count)
            .ok_or_else(|| {
                StoreError::corrupt(format!(
                    "dedupe key points past the end of the event bundle of {tenant_id} at \
                     {first_seq}"
                ))
            })?;
        wanted.push(position);
    }
    wanted.sort_unstable();
    wanted.dedup();
    let mut reader = EventReader::new(bytes)?;
    let mut found = Vec::with_capacity(wanted.len());
    let mut next = wanted.iter().peekable();
    for (offset, key) in keys.iter().enumerate() {
        let Some(&&want) = next.peek() else { break };
        // Every entry is read (and its lengths checked); only the wanted ones are unpacked.
        let entry = reader.next()?;
        if offset == want {
            next.next();
            let event_id = entry.event_id()?;
            let digest = entry.digest(&entry.canonical(tenant_id, &event_id)?);
            found.push(EventIdentity {
                key: *key,
                tenant_id: tenant_id.to_owned(),
                event_id,
                seq: first_seq + offset as u64,
                digest,
            });
        }
    }
    Ok(found)
}

/// The wanted events of bundles: `positions` by bundle id (ids that do not exist, such as
/// purged bundles, are left out).
pub async fn read_event_identities(
    conn: &mut AnyConnection,
    positions: &std::collections::BTreeMap<i64, Vec<i64>>,
) -> Result<Vec<EventIdentity>, StoreError> {
    let ids: Vec<i64> = positions.keys().copied().collect();
    let mut found = Vec::new();
    for chunk in crate::db::statement_chunks(&ids, IDS_PER_LOOKUP) {
        let sql = format!(
            "SELECT id, tenant_id, first_seq, event_count, event_keys, events \
             FROM usage_event_bundles WHERE id IN ({})",
            list_placeholders(Placeholders::of(conn), 1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            let id: i64 = row.try_get(0)?;
            let tenant_id: String = row.try_get(1)?;
            let first_seq = to_u64(row.try_get(2)?)?;
            let count = usize::try_from(row.try_get::<i64, _>(3)?)
                .map_err(|_| StoreError::corrupt("event count"))?;
            let keys: Vec<u8> = row.try_get(4)?;
            let bytes: Vec<u8> = row.try_get(5)?;
            let wanted = positions.get(&id).map(Vec::as_slice).unwrap_or_default();
            found.extend(decode_event_identities(
                &tenant_id, first_seq, count, &keys, &bytes, wanted,
            )?);
        }
    }
    Ok(found)
}

/// How many event payloads a tenant has stored.
pub async fn count_events(conn: &mut AnyConnection, tenant_id: &str) -> Result<i64, StoreError> {
    count_entries(conn, &EVENT_BUNDLES, tenant_id).await
}

/// The layouts written before ADR 0009: payload entries with the id, digest and canonical form
/// whole (`events` version 1), and usage leaves with the id whole (`leaf_data` version 2).
/// Nothing writes them any more and readers still read them; tests use these to build a store
/// as an earlier release left it.
pub mod earlier_layouts {
    use super::{FORMAT_VERSION, StoredEvent, USAGE_LEAVES_VERSION, class_code, push_u32_len};
    use companyos_ledger::leaf::UsageLeaf;

    /// An `events` column of version 1.
    pub fn encode_events(events: &[StoredEvent]) -> Vec<u8> {
        let mut out = vec![FORMAT_VERSION];
        for event in events {
            push_short_text(&mut out, &event.event_id);
            out.extend_from_slice(event.digest.hash().as_bytes());
            out.push(class_code(event.class));
            push_short_text(&mut out, &event.flags.join(","));
            push_u32_len(&mut out, event.canonical.len());
            out.extend_from_slice(event.canonical.as_bytes());
            let signature = event.source_signature.as_deref().unwrap_or("");
            let signature_len =
                u16::try_from(signature.len()).expect("a signature is 88 characters");
            out.extend_from_slice(&signature_len.to_be_bytes());
            out.extend_from_slice(signature.as_bytes());
        }
        out
    }

    /// A `leaf_data` column of version 2 for usage leaves.
    pub fn encode_usage_leaves(leaves: &[UsageLeaf]) -> Vec<u8> {
        let mut out = vec![USAGE_LEAVES_VERSION];
        for leaf in leaves {
            push_short_text(&mut out, &leaf.event_id);
            out.extend_from_slice(leaf.digest.hash().as_bytes());
            out.push(class_code(leaf.class));
        }
        out
    }

    fn push_short_text(out: &mut Vec<u8>, text: &str) {
        out.push(u8::try_from(text.len()).expect("ids and flags are short"));
        out.extend_from_slice(text.as_bytes());
    }
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
    // Leaves, log by log, in index order.
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
        write_leaves(conn, &logs).await?;
        pending.clear();
    }
    // Event payloads, tenant by tenant, in seq order, with their keys page by page (so the
    // memory used is bounded by a page, whatever the store's size).
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
        struct Legacy {
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
        let mut legacy = Vec::with_capacity(rows.len());
        for row in &rows {
            // Column 4, the digest, is not kept: it is the SHA-256 of the canonical form, and
            // the leaf holds it to check the payload against.
            let class: String = row.try_get(5)?;
            let flags: String = row.try_get(6)?;
            legacy.push(Legacy {
                tenant_id: row.try_get(0)?,
                seq: to_u64(row.try_get(1)?)?,
                key: row.try_get(2)?,
                event_id: row.try_get(3)?,
                class: EventClass::parse(&class).ok_or_else(|| StoreError::corrupt("class"))?,
                flags: serde_json::from_str(&flags)
                    .map_err(|_| StoreError::corrupt("event flags"))?,
                received_at: row.try_get(7)?,
                canonical: row.try_get(8)?,
                source_signature: row.try_get(9)?,
            });
        }
        if let Some(last) = legacy.last() {
            after = (last.tenant_id.clone(), to_i64(last.seq)?);
        }
        // Runs of one tenant, consecutive seqs and one receive time make one bundle each.
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
        keys.sort_unstable();
        insert_keys(conn, &keys).await?;
    }
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
mod tests {
    use super::*;

    #[test]
    fn leaves_round_trip() {
        let a = companyos_ledger::leaf_hash(b"a");
        let b = companyos_ledger::leaf_hash(b"bb");
        let mut pending = PendingLeaves::new(LeafLayout::Whole, 7);
        pending.push_whole(a, b"a");
        pending.push_whole(b, b"bb");
        let rows = pending.encode();
        assert_eq!(rows.len(), 1);
        let (first, count, hashes, data) = &rows[0];
        assert_eq!((*first, *count), (7, 2));
        let leaves = decode_leaves("audit", 7, 2, hashes, Some(data)).expect("decodes");
        assert_eq!(leaves[0].index, 7);
        assert_eq!(leaves[1].index, 8);
        assert_eq!(leaves[1].hash, b);
        assert_eq!(leaves[1].data, b"bb");
        assert!(decode_leaves("audit", 7, 3, hashes, Some(data)).is_err());
        assert!(decode_leaves("audit", 7, 2, hashes, Some(&data[..data.len() - 1])).is_err());
    }

    /// Usage leaves are stored by what varies and read back as the exact text that was hashed;
    /// more than a bundle's worth splits into bundles of at most 256.
    #[test]
    fn usage_leaves_are_stored_compactly_and_rebuilt_whole() {
        let digest = EventDigest::of_canonical(b"{}");
        let mut pending = PendingLeaves::new(LeafLayout::Usage, 250);
        let mut texts = Vec::new();
        for i in 250..520u64 {
            let leaf = companyos_ledger::leaf::UsageLeaf {
                tenant_id: "acme".to_owned(),
                leaf_index: i,
                event_id: format!("e-{i}"),
                digest,
                class: if i % 3 == 0 {
                    EventClass::Late
                } else {
                    EventClass::OnTime
                },
            };
            let text = leaf.to_bytes();
            pending.push_usage(
                companyos_ledger::leaf_hash(&text),
                &leaf.event_id,
                &digest,
                leaf.class,
            );
            texts.push(text);
        }
        let rows = pending.encode();
        assert_eq!(
            rows.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(),
            vec![(250, 256), (506, 14)]
        );
        let mut decoded = Vec::new();
        for (first, count, hashes, data) in &rows {
            assert_eq!(data[0], USAGE_LEAVES_PACKED_VERSION);
            assert!(data.len() < count * 80, "compact: {} bytes", data.len());
            decoded.extend(
                decode_leaves("tenant/acme", *first, *count, hashes, Some(data)).expect("decodes"),
            );
        }
        for (leaf, text) in decoded.iter().zip(&texts) {
            assert_eq!(&leaf.data, text);
            assert_eq!(leaf.hash, companyos_ledger::leaf_hash(text));
        }
        assert_eq!(decoded.len(), texts.len());
        // Bundles of version 2 (event ids whole, before ADR 0009) are read alike.
        let whole_ids = earlier_layouts::encode_usage_leaves(
            &texts[..2]
                .iter()
                .map(|leaf| companyos_ledger::leaf::UsageLeaf::parse(leaf).expect("parses"))
                .collect::<Vec<_>>(),
        );
        assert_eq!(whole_ids[0], USAGE_LEAVES_VERSION);
        let two = decode_leaves("tenant/acme", 250, 2, &rows[0].2[..64], Some(&whole_ids))
            .expect("decodes");
        assert_eq!(two[1].data, texts[1]);
        let (first, count, hashes, data) = &rows[1];
        assert!(decode_leaves("audit", *first, *count, hashes, Some(data)).is_err());
        assert!(
            decode_leaves(
                "tenant/acme",
                *first,
                *count,
                hashes,
                Some(&data[..data.len() - 1])
            )
            .is_err()
        );
    }

    #[test]
    fn events_round_trip_and_refuse_truncation() {
        let canonical = "{\"event_id\":\"8e0c1b2a-3f4d-4e5f-8a9b-0c1d2e3f4a5b\",\"quantity\":\"2\",\
                         \"tenant_id\":\"acme\",\"timestamp\":\"2026-12-03T10:20:05Z\"}";
        let events = [
            NewEvent {
                key: -5,
                event_id: "e-1",
                class: EventClass::Late,
                flags: &["unsigned", "tenant_suspended"],
                canonical: "{}",
                source_signature: Some("c2ln"),
            },
            NewEvent {
                key: 9,
                event_id: "8e0c1b2a-3f4d-4e5f-8a9b-0c1d2e3f4a5b",
                class: EventClass::OnTime,
                flags: &["unsigned"],
                canonical,
                source_signature: None,
            },
            NewEvent {
                key: 11,
                event_id: "e-3",
                class: EventClass::OnTime,
                flags: &["unsigned", "not_a_known_flag"],
                canonical: "{\"a\":1}",
                source_signature: None,
            },
        ];
        let (keys, bytes) = encode_events("acme", &events);
        assert!(
            bytes.len() < 1 + 13 + 2 + 5 + 6 + 17 + 1 + 2 + canonical.len() / 3 + 5 + 10,
            "packed: {} bytes",
            bytes.len()
        );
        assert_eq!(decode_keys(&keys).expect("keys"), vec![-5, 9, 11]);
        let decoded = decode_events("acme", 40, 3, 77, &keys, &bytes).expect("decodes");
        assert_eq!(decoded[0].seq, 40);
        assert_eq!(decoded[0].event_id, "e-1");
        assert_eq!(decoded[0].class, EventClass::Late);
        assert_eq!(decoded[0].flags, vec!["unsigned", "tenant_suspended"]);
        assert_eq!(decoded[0].source_signature.as_deref(), Some("c2ln"));
        assert_eq!(decoded[1].seq, 41);
        assert_eq!(decoded[1].key, 9);
        assert_eq!(decoded[1].event_id, "8e0c1b2a-3f4d-4e5f-8a9b-0c1d2e3f4a5b");
        assert_eq!(decoded[1].canonical, canonical);
        assert_eq!(decoded[1].flags, vec!["unsigned"]);
        assert_eq!(decoded[1].source_signature, None);
        assert_eq!(
            decoded[1].digest,
            EventDigest::of_canonical(canonical.as_bytes())
        );
        assert_eq!(decoded[2].canonical, "{\"a\":1}");
        assert_eq!(decoded[2].flags, vec!["unsigned", "not_a_known_flag"]);
        let identities =
            decode_event_identities("acme", 40, 3, &keys, &bytes, &[1, 1]).expect("decodes");
        assert_eq!(
            identities,
            vec![EventIdentity {
                key: 9,
                tenant_id: "acme".to_owned(),
                event_id: "8e0c1b2a-3f4d-4e5f-8a9b-0c1d2e3f4a5b".to_owned(),
                seq: 41,
                digest: EventDigest::of_canonical(canonical.as_bytes()),
            }]
        );
        assert!(decode_event_identities("acme", 40, 3, &keys, &bytes, &[3]).is_err());
        assert!(decode_events("acme", 40, 3, 77, &keys, &bytes[..bytes.len() - 1]).is_err());
        assert!(decode_events("acme", 40, 4, 77, &keys, &bytes).is_err());
        assert!(decode_events("acme", 40, 0, 77, &[], &[9]).is_err());
        assert!(decode_keys(&keys[..7]).is_err());
        // An unknown info bit or flag code is damage, not a default.
        let info_at = 1 + 1 + "e-1".len();
        let mut damaged = bytes.clone();
        damaged[info_at] |= 0x80;
        assert!(decode_events("acme", 40, 3, 77, &keys, &damaged).is_err());
        let mut damaged = bytes.clone();
        damaged[info_at + 2] = 77;
        assert!(decode_events("acme", 40, 3, 77, &keys, &damaged).is_err());
        // The packed canonical form refers to the bundle's tenant: read as another tenant's,
        // it is another text (and its digest no longer matches the leaf).
        let other = decode_events("globex", 40, 3, 77, &keys, &bytes).expect("decodes");
        assert_ne!(other[1].canonical, canonical);
    }

    /// Bundles written before the packed layout (version 1: ids, digests and canonical forms
    /// whole) are still read, digest as stored.
    #[test]
    fn whole_layout_events_are_still_read() {
        let digest = EventDigest::of_canonical(b"{}");
        let stored = |event_id: &str, flags: &[&str], canonical: &str, signature: Option<&str>| {
            StoredEvent {
                tenant_id: "acme".to_owned(),
                seq: 0,
                key: 0,
                event_id: event_id.to_owned(),
                digest,
                class: EventClass::Late,
                flags: flags.iter().map(|f| (*f).to_owned()).collect(),
                canonical: canonical.to_owned(),
                source_signature: signature.map(str::to_owned),
                received_at_micros: 0,
            }
        };
        let bytes = earlier_layouts::encode_events(&[
            stored("e-1", &["unsigned"], "{}", Some("c2ln")),
            stored("e-2", &[], "{\"a\":1}", None),
        ]);
        assert_eq!(bytes[0], FORMAT_VERSION);
        let keys: Vec<u8> = [3i64, 4].iter().flat_map(|k| k.to_be_bytes()).collect();
        let decoded = decode_events("acme", 0, 2, 5, &keys, &bytes).expect("decodes");
        assert_eq!(decoded[0].flags, vec!["unsigned"]);
        assert_eq!(decoded[0].source_signature.as_deref(), Some("c2ln"));
        assert_eq!(decoded[1].canonical, "{\"a\":1}");
        assert_eq!(
            decoded[1].digest, digest,
            "the whole layout's digest is as stored"
        );
        assert_eq!(decoded[1].class, EventClass::Late);
        let identities =
            decode_event_identities("acme", 0, 2, &keys, &bytes, &[1]).expect("decodes");
        assert_eq!(identities[0].event_id, "e-2");
    }
}
