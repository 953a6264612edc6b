//! SQLite's on-disk dedupe key index as immutable sorted runs (ADR 0007): each merge of the
//! in-memory tail writes a new run, and runs of one level are compacted into one run of the
//! next, a step at a time between group commits, as a log-structured merge tree does.
//!
//! Why not one B-tree of every key (ADR 0005's merged index): merging a million new keys into
//! it touches nearly every page of it once it holds several million, so each merge cost more
//! as the store grew (1.1 s per million keys with nothing stored, 3.5 s with 10M; the ingestion
//! rate fell with it). A run is written once, in key order, as whole pages; a key is rewritten
//! once per level (log4 of the store size over the tail size), whatever the store holds.
//!
//! A run is `usage_key_runs` (its level, key count, the first key of each block, and a blocked
//! Bloom filter) and its blocks in `usage_key_blocks`, a rowid table whose row id is the run id
//! in the high 32 bits and the block number in the low 32: blocks are appended in order and
//! each fits one 2 KiB page. A block holds up to [`BLOCK_ENTRIES`] entries `(compact key,
//! bundle id, position)` in key order; equal keys (64-bit collisions of two events) are never
//! split across blocks, so a key's entries are in one block of a run. The encoding here is pure.

use crate::db::StoreError;

/// Entries per block: 100 entries of [`ENTRY_BYTES`] after the version byte fill one 2 KiB
/// page of a rowid table without spilling into an overflow page.
pub const BLOCK_ENTRIES: usize = 100;
/// Bytes of one entry: the compact key (8, big-endian), the bundle id (8), the position (2).
pub const ENTRY_BYTES: usize = 18;
/// First byte of every block and filter.
const FORMAT_VERSION: u8 = 1;

// A full block (with its row id and record header) stays on its 2 KiB page: SQLite keeps a
// rowid-table cell of up to the usable size less 35 bytes there.
const _: () = assert!(1 + BLOCK_ENTRIES * ENTRY_BYTES + 16 <= 2048 - 35);

/// Filter bits per key (with [`FILTER_PROBES`] probes in one 512-bit block: about 1.2 %
/// false positives).
const FILTER_BITS_PER_KEY: usize = 10;
const FILTER_PROBES: usize = 7;
/// 64-bit words per filter block: 512 bits, one cache line.
const FILTER_BLOCK_WORDS: usize = 8;

/// One key of the index: the event's compact key and where the event is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyEntry {
    pub key: i64,
    pub bundle_id: i64,
    pub position: i64,
}

/// The row id of block `block` of run `run_id`.
pub fn block_rowid(run_id: i64, block: u32) -> i64 {
    assert!(
        (0..1 << 31).contains(&run_id),
        "run ids fit in 31 bits (AUTOINCREMENT from 1)"
    );
    (run_id << 32) | i64::from(block)
}

/// The row ids of every block of run `run_id`: `from <= rowid < to`.
pub fn run_rowids(run_id: i64) -> (i64, i64) {
    (block_rowid(run_id, 0), block_rowid(run_id + 1, 0))
}

/// Encodes sorted entries as one block.
pub fn encode_block(entries: &[KeyEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + entries.len() * ENTRY_BYTES);
    out.push(FORMAT_VERSION);
    for entry in entries {
        let position = u16::try_from(entry.position).expect("a bundle holds at most 256 events");
        out.extend_from_slice(&entry.key.to_be_bytes());
        out.extend_from_slice(&entry.bundle_id.to_be_bytes());
        out.extend_from_slice(&position.to_be_bytes());
    }
    out
}

/// Decodes a block, checking that its entries are in key order.
pub fn decode_block(bytes: &[u8]) -> Result<Vec<KeyEntry>, StoreError> {
    let body = match bytes.split_first() {
        Some((&FORMAT_VERSION, body)) if body.len() % ENTRY_BYTES == 0 => body,
        _ => return Err(StoreError::corrupt("dedupe key block: unknown layout")),
    };
    let mut entries = Vec::with_capacity(body.len() / ENTRY_BYTES);
    for chunk in body.chunks_exact(ENTRY_BYTES) {
        let mut key = [0u8; 8];
        key.copy_from_slice(&chunk[0..8]);
        let mut bundle = [0u8; 8];
        bundle.copy_from_slice(&chunk[8..16]);
        let entry = KeyEntry {
            key: i64::from_be_bytes(key),
            bundle_id: i64::from_be_bytes(bundle),
            position: i64::from(u16::from_be_bytes([chunk[16], chunk[17]])),
        };
        if entries.last().is_some_and(|last: &KeyEntry| *last > entry) {
            return Err(StoreError::corrupt(
                "dedupe key block: entries out of order",
            ));
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// Cuts a sorted stream of entries into blocks of at most [`BLOCK_ENTRIES`], never between two
/// entries of the same key (a block then holds more, rarely: 64-bit key collisions).
#[derive(Debug, Default)]
pub struct BlockCutter {
    current: Vec<KeyEntry>,
}

impl BlockCutter {
    /// Adds the next entry (not below the previous one); returns a finished block, if any.
    pub fn push(&mut self, entry: KeyEntry) -> Option<Vec<KeyEntry>> {
        if let Some(last) = self.current.last() {
            assert!(*last <= entry, "run entries arrive in key order");
        }
        let finished = if self.current.len() >= BLOCK_ENTRIES
            && self
                .current
                .last()
                .is_some_and(|last| last.key != entry.key)
        {
            Some(std::mem::take(&mut self.current))
        } else {
            None
        };
        self.current.push(entry);
        finished
    }

    /// The last, partial block.
    pub fn finish(&mut self) -> Option<Vec<KeyEntry>> {
        (!self.current.is_empty()).then(|| std::mem::take(&mut self.current))
    }
}

/// A blocked Bloom filter over a run's keys (one 64-byte cache line per key, as in RocksDB):
/// "no" for a key that is not in the run, "maybe" otherwise. A plain filter costs a cache miss
/// per probe; this one costs one per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFilter {
    words: Vec<u64>,
}

impl RunFilter {
    /// An empty filter sized for `keys` keys.
    pub fn with_capacity(keys: usize) -> Self {
        let blocks = (keys.max(1) * FILTER_BITS_PER_KEY).div_ceil(FILTER_BLOCK_WORDS * 64);
        Self {
            words: vec![0; blocks * FILTER_BLOCK_WORDS],
        }
    }

    /// The first word of a key's block and its probe positions (0..512) in the block. Compact
    /// keys are uniform already (a SHA-256 prefix): the block comes from the key by
    /// multiply-shift range reduction, the positions from a multiplied copy of it.
    fn probes(&self, key: i64) -> (usize, [u16; FILTER_PROBES]) {
        let blocks = (self.words.len() / FILTER_BLOCK_WORDS) as u128;
        let block = ((u128::from(key as u64) * blocks) >> 64) as usize;
        let mixed = (key as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut positions = [0u16; FILTER_PROBES];
        for (i, position) in positions.iter_mut().enumerate() {
            *position = ((mixed >> (9 * i)) & 511) as u16;
        }
        (block * FILTER_BLOCK_WORDS, positions)
    }

    pub fn insert(&mut self, key: i64) {
        let (first, positions) = self.probes(key);
        for position in positions {
            let position = usize::from(position);
            self.words[first + position / 64] |= 1 << (position % 64);
        }
    }

    pub fn may_contain(&self, key: i64) -> bool {
        let (first, positions) = self.probes(key);
        positions.iter().all(|position| {
            let position = usize::from(*position);
            self.words[first + position / 64] & (1 << (position % 64)) != 0
        })
    }

    /// The stored form: the version byte, then the words little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.words.len() * 8);
        out.push(FORMAT_VERSION);
        for word in &self.words {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        let body = match bytes.split_first() {
            Some((&FORMAT_VERSION, body))
                if !body.is_empty() && body.len() % (FILTER_BLOCK_WORDS * 8) == 0 =>
            {
                body
            }
            _ => return Err(StoreError::corrupt("dedupe key filter: unknown layout")),
        };
        let words = body
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect();
        Ok(Self { words })
    }

    /// Bytes of memory the filter holds.
    pub fn memory_bytes(&self) -> usize {
        self.words.len() * 8
    }
}

/// The first key of each block of a run, stored as 8-byte big-endian keys.
pub fn encode_fences(fences: &[i64]) -> Vec<u8> {
    fences.iter().flat_map(|f| f.to_be_bytes()).collect()
}

pub fn decode_fences(bytes: &[u8]) -> Result<Vec<i64>, StoreError> {
    if bytes.len() % 8 != 0 {
        return Err(StoreError::corrupt("dedupe key fences: length"));
    }
    let fences: Vec<i64> = bytes
        .chunks_exact(8)
        .map(|b| i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
        .collect();
    if fences.windows(2).any(|w| w[0] >= w[1]) {
        return Err(StoreError::corrupt("dedupe key fences: out of order"));
    }
    Ok(fences)
}

/// The block of a run (by its fences) that holds `key`'s entries, if the key can be in it.
pub fn block_of(fences: &[i64], key: i64) -> Option<u32> {
    // The last block whose first key is at or below the key.
    let after = fences.partition_point(|first| *first <= key);
    let block = after.checked_sub(1)?;
    u32::try_from(block).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: i64, bundle_id: i64, position: i64) -> KeyEntry {
        KeyEntry {
            key,
            bundle_id,
            position,
        }
    }

    #[test]
    fn blocks_round_trip_and_refuse_disorder() {
        let entries = vec![entry(-9, 4, 255), entry(3, 1, 0), entry(3, 2, 7)];
        let bytes = encode_block(&entries);
        assert_eq!(bytes.len(), 1 + 3 * ENTRY_BYTES);
        assert_eq!(decode_block(&bytes).expect("decodes"), entries);
        let disordered = encode_block(&[entry(5, 0, 0), entry(4, 0, 0)]);
        assert!(decode_block(&disordered).is_err());
        assert!(decode_block(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_block(&[2]).is_err());
    }

    #[test]
    fn blocks_are_never_cut_between_equal_keys() {
        let mut cutter = BlockCutter::default();
        let mut blocks = Vec::new();
        for i in 0..BLOCK_ENTRIES as i64 - 1 {
            blocks.extend(cutter.push(entry(i, i, 0)));
        }
        // Three entries of one key straddle the block boundary: they stay together.
        for bundle in 0..3 {
            blocks.extend(cutter.push(entry(1000, bundle, 0)));
        }
        blocks.extend(cutter.push(entry(1001, 0, 0)));
        blocks.extend(cutter.finish());
        assert_eq!(
            blocks.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![BLOCK_ENTRIES + 2, 1]
        );
        let fences: Vec<i64> = blocks.iter().map(|b| b[0].key).collect();
        assert_eq!(block_of(&fences, 1000), Some(0));
        assert_eq!(block_of(&fences, 1001), Some(1));
        assert_eq!(block_of(&fences, 5000), Some(1));
        assert_eq!(block_of(&fences, -1), None);
    }

    #[test]
    fn filters_have_no_false_negatives_few_false_positives_and_round_trip() {
        let key = |i: i64| i.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let keys = 200_000;
        let mut filter = RunFilter::with_capacity(keys as usize);
        for i in 0..keys {
            filter.insert(key(i));
        }
        assert!((0..keys).all(|i| filter.may_contain(key(i))));
        let false_positives = (keys..keys + 100_000)
            .filter(|i| filter.may_contain(key(*i)))
            .count();
        assert!(
            false_positives < 1_600,
            "{false_positives} false positives in 100,000"
        );
        let restored = RunFilter::from_bytes(&filter.to_bytes()).expect("decodes");
        assert_eq!(restored, filter);
        assert!(RunFilter::from_bytes(&[1, 0, 0]).is_err());
    }

    #[test]
    fn fences_round_trip_and_refuse_disorder() {
        let fences = vec![i64::MIN, -3, 0, 77];
        assert_eq!(
            decode_fences(&encode_fences(&fences)).expect("decodes"),
            fences
        );
        assert!(decode_fences(&encode_fences(&[5, 5])).is_err());
        assert!(decode_fences(&[0; 7]).is_err());
    }

    #[test]
    fn rowids_keep_runs_apart() {
        assert_eq!(block_rowid(1, 0), 1 << 32);
        assert_eq!(run_rowids(1), (1 << 32, 2 << 32));
        assert!(block_rowid(1, u32::MAX) < run_rowids(1).1);
    }
}
