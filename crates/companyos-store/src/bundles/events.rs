//! Usage event payload bundles: the packed layout, its writers and range readers, the event identities dedupe reads, and the encoders of the earlier layouts.

#[allow(unused_imports)]
use super::*;

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

pub(super) fn class_code(class: EventClass) -> u8 {
    match class {
        EventClass::OnTime => 0,
        EventClass::Late => 1,
    }
}

pub(super) fn class_of_code(code: u8) -> Result<EventClass, StoreError> {
    match code {
        0 => Ok(EventClass::OnTime),
        1 => Ok(EventClass::Late),
        _ => Err(StoreError::corrupt("event class")),
    }
}

/// First byte of an `events` column in the packed layout (ADR 0009), which every
/// new bundle uses; bundles written before it ([`FORMAT_VERSION`]) are read alike.
pub(super) const EVENTS_PACKED_VERSION: u8 = 2;

/// Bits of a packed entry's info byte.
pub(super) const INFO_LATE: u8 = 0x01;
pub(super) const INFO_SIGNED: u8 = 0x02;
/// Flags follow: their count, then each as a code of [`FLAG_CODES`] or 0, a 1-byte length and
/// the text.
pub(super) const INFO_FLAGS: u8 = 0x04;
pub(super) const INFO_KNOWN: u8 = INFO_LATE | INFO_SIGNED | INFO_FLAGS;

/// The flags ingestion sets, by the code a packed entry stores them as.
pub(super) const FLAG_CODES: [(u8, &str); 5] = [
    (1, "unsigned"),
    (2, "undeclared_service"),
    (3, "undeclared_metric"),
    (4, "unit_mismatch"),
    (5, "tenant_suspended"),
];
/// The code of a flag stored as text.
pub(super) const FLAG_TEXT: u8 = 0;

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
pub(super) fn bundle_keys(
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
pub(super) enum EventsLayout {
    /// [`FORMAT_VERSION`]: ids, digests and canonical forms whole.
    Whole,
    /// [`EVENTS_PACKED_VERSION`].
    Packed,
}

/// Reads the entries of an `events` column one by one, without unpacking them.
pub(super) struct EventReader<'a> {
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

pub(super) enum EntryFlags<'a> {
    /// Comma-separated (empty for none): the whole layout.
    Text(&'a str),
    /// Flags as codes or texts ([`read_coded_flag`]; checked when the entry was read): the
    /// packed layout.
    Coded(Reader<'a>),
}

/// One flag of a packed entry: its code, or [`FLAG_TEXT`], a 1-byte length and the text.
pub(super) fn read_coded_flag<'a>(reader: &mut Reader<'a>) -> Result<&'a str, StoreError> {
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
pub(super) struct EventEntry<'a> {
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

pub(super) fn unpack_error(error: event_packing::UnpackError) -> StoreError {
    StoreError::corrupt(format!("event bundle: {error}"))
}

/// The events of a `usage_event_bundles` row of [`EVENT_BUNDLE_COLUMNS`].
pub(super) fn decode_event_bundle(row: &sqlx::any::AnyRow) -> Result<Vec<StoredEvent>, StoreError> {
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

pub(super) const EVENT_BUNDLE_COLUMNS: &str =
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

/// The event bundle rows (these `columns`) that hold a tenant's events with `from <= seq < to`.
async fn bundle_rows(
    conn: &mut AnyConnection,
    tenant_id: &str,
    from: u64,
    to: u64,
    columns: &str,
) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
    if from >= to {
        return Ok(Vec::new());
    }
    let sql = range_sql(&EVENT_BUNDLES, columns);
    Ok(sqlx::query(&sql)
        .bind(tenant_id)
        .bind(tenant_id)
        .bind(to_i64(from)?)
        .bind(to_i64(to)?)
        .fetch_all(&mut *conn)
        .await?)
}

/// The stored events of a tenant with `from <= seq < to`, in order.
pub async fn read_events(
    conn: &mut AnyConnection,
    tenant_id: &str,
    from: u64,
    to: u64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let to = to.min(i64::MAX as u64);
    let rows = bundle_rows(conn, tenant_id, from, to, EVENT_BUNDLE_COLUMNS).await?;
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

/// The sequence number and canonical form of each of a tenant's events with `from <= seq < to`:
/// what a meter query reads, without the digests, keys and flags [`read_events`] also decodes.
pub async fn read_canonical_forms(
    conn: &mut AnyConnection,
    tenant_id: &str,
    from: u64,
    to: u64,
) -> Result<Vec<(u64, String)>, StoreError> {
    let to = to.min(i64::MAX as u64);
    let rows = bundle_rows(conn, tenant_id, from, to, "first_seq, event_count, events").await?;
    let mut events = Vec::new();
    for row in &rows {
        let first_seq = to_u64(row.try_get("first_seq")?)?;
        let count = usize::try_from(row.try_get::<i64, _>("event_count")?)
            .map_err(|_| StoreError::corrupt("event count"))?;
        let bytes: Vec<u8> = row.try_get("events")?;
        let mut reader = EventReader::new(&bytes)?;
        for seq in first_seq..first_seq + count as u64 {
            let entry = reader.next()?;
            if seq >= from && seq < to {
                let event_id = entry.event_id()?;
                events.push((seq, entry.canonical(tenant_id, &event_id)?));
            }
        }
        reader.finish()?;
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
/// as an earlier release left it, so only test builds (and the `earlier-layouts` feature, which
/// the server's tests turn on) have them.
#[cfg(any(test, feature = "earlier-layouts"))]
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
