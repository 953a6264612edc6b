//! Storage of verifiable logs (per-tenant usage ledgers and the audit log) on the store: heads,
//! leaves, complete-subtree hashes and signed checkpoints, over `companyos-ledger`'s maths.
//!
//! A head row holds the tree size, root and frontier, so an append reads nothing but the head.
//! Leaves are stored whole (in bundles, with their hashes); of the interior nodes only levels 8,
//! 12, 16, ... are stored (one row per 256 leaves). A node below level 8 is rebuilt from at most
//! 128 leaf hashes, which one or two bundle reads bring anyway, and any other complete subtree
//! from at most 8 stored hashes, so a proof over 100 million leaves costs O(log n) small range
//! reads. Level 4 was stored until schema 5: its rows were one per 16 leaves, each at its own
//! log's place in the node index, and made up a third of the pages a small group commit wrote
//! (docs/BENCHMARKS.md).

use std::collections::HashMap;

use companyos_ledger::checkpoint::{Checkpoint, CheckpointSigner};
use companyos_ledger::leaf::{EventClass, write_usage_leaf};
use companyos_ledger::merkle::{self, LeafRange, NodeId};
use companyos_ledger::note::NoteSigner;
use companyos_ledger::usage_event::EventDigest;
use companyos_ledger::{Frontier, Hash, leaf_hash, node_hash};
use sqlx::{AnyConnection, Row as _};

use companyos_domain::LogId;

use crate::bundles::{LeafLayout, PendingLeaves};
use crate::db::{Db, Placeholders, StoreError, values_placeholders};
use crate::db::{to_i64, to_u64};

mod verify;

pub use verify::{LogProblem, verify_log};

/// Interior levels that are stored: multiples of this, from [`STORED_LEVEL_MIN`] up.
pub const STORED_LEVEL_STRIDE: u8 = 4;
/// The lowest stored interior level; the levels below are rebuilt from leaf hashes.
pub const STORED_LEVEL_MIN: u8 = 8;

/// Whether the nodes of `level` are stored (`ledger_nodes`); leaves (level 0) are in bundles.
pub fn is_stored_level(level: u8) -> bool {
    level >= STORED_LEVEL_MIN && level % STORED_LEVEL_STRIDE == 0
}

/// The stored level a node of `level` is rebuilt from: 0 (the leaf hashes) below
/// [`STORED_LEVEL_MIN`], else the stored level at or below it.
fn base_level(level: u8) -> u8 {
    if level < STORED_LEVEL_MIN {
        0
    } else {
        level - level % STORED_LEVEL_STRIDE
    }
}
/// Rows per multi-row insert.
const INSERT_ROWS_MAX: usize = 1024;

/// The mutable state of one log, read and locked at the start of an append.
#[derive(Debug, Clone)]
pub struct LogHead {
    pub log_id: LogId,
    /// The stored text of `log_id`, bound in every statement that writes the head.
    text: String,
    pub frontier: Frontier,
    /// Whether the head row exists yet.
    exists: bool,
    pending_leaves: PendingLeaves,
    pending_nodes: Vec<(NodeId, Hash)>,
    /// Reused for the text of each usage leaf, which is hashed but not stored whole.
    scratch: Vec<u8>,
}

impl LogHead {
    fn new(log_id: LogId, frontier: Frontier, exists: bool) -> Self {
        let pending_leaves = PendingLeaves::new(LeafLayout::of_log(&log_id), frontier.tree_size());
        Self {
            text: log_id.to_string(),
            log_id,
            frontier,
            exists,
            pending_leaves,
            pending_nodes: Vec::new(),
            scratch: Vec::new(),
        }
    }

    pub fn tree_size(&self) -> u64 {
        self.frontier.tree_size()
    }

    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// Appends a leaf in memory; [`write_appends`] persists it. Returns its leaf index.
    pub fn append(&mut self, leaf_data: &[u8]) -> u64 {
        let index = self.frontier.tree_size();
        let hash = leaf_hash(leaf_data);
        self.add_to_frontier(hash);
        self.pending_leaves.push_whole(hash, leaf_data);
        index
    }

    /// Appends the usage leaf of an event to this tenant usage ledger in memory (stored in the
    /// compact layout, [`LeafLayout::Usage`]). Returns its leaf index.
    pub fn append_usage(&mut self, event_id: &str, digest: &EventDigest, class: EventClass) -> u64 {
        let index = self.frontier.tree_size();
        let tenant_id = self
            .log_id
            .tenant()
            .expect("usage leaves are appended to tenant usage ledgers");
        self.scratch.clear();
        write_usage_leaf(
            &mut self.scratch,
            tenant_id.as_str(),
            index,
            event_id,
            digest,
            class,
        );
        let hash = leaf_hash(&self.scratch);
        self.add_to_frontier(hash);
        self.pending_leaves
            .push_usage(hash, event_id, digest, class);
        index
    }

    fn add_to_frontier(&mut self, hash: Hash) {
        let nodes = &mut self.pending_nodes;
        self.frontier.append_with(hash, |id, node| {
            if is_stored_level(id.level) {
                nodes.push((id, *node));
            }
        });
    }

    /// The leaf index the next append will get.
    pub fn next_index(&self) -> u64 {
        self.frontier.tree_size()
    }

    /// Takes the appended leaves, leaving none pending.
    fn take_pending_leaves(&mut self) -> PendingLeaves {
        let empty = PendingLeaves::new(LeafLayout::of_log(&self.log_id), self.tree_size());
        std::mem::replace(&mut self.pending_leaves, empty)
    }
}

fn hash_of(bytes: &[u8]) -> Result<Hash, StoreError> {
    Hash::from_slice(bytes).ok_or_else(|| StoreError::corrupt("stored hash is not 32 bytes"))
}

/// Reads (and on PostgreSQL locks, until the transaction ends) the head of `log_id`.
pub async fn lock_head(
    db: &Db,
    conn: &mut AnyConnection,
    log_id: &LogId,
) -> Result<LogHead, StoreError> {
    let text = log_id.to_string();
    let sql = format!(
        "SELECT tree_size, frontier FROM ledger_heads WHERE log_id = $1{}",
        db.for_update()
    );
    let mut row = sqlx::query(&sql)
        .bind(text.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    if row.is_none() && db.backend() == crate::db::Backend::Postgres {
        // No head row to lock yet: two nodes appending the first leaf at once would both start
        // from the empty tree and one would fail on the leaf's key. Serialise the first append
        // on a transaction-scoped advisory lock of the log, then read again: a node that waited
        // sees (and locks) the head the other one committed.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(text.as_str())
            .execute(&mut *conn)
            .await?;
        row = sqlx::query(&sql)
            .bind(text.as_str())
            .fetch_optional(&mut *conn)
            .await?;
    }
    let (frontier, exists) = match row {
        Some(row) => {
            let size = to_u64(row.try_get::<i64, _>(0)?)?;
            let bytes: Vec<u8> = row.try_get(1)?;
            let frontier = Frontier::from_bytes(size, &bytes)
                .map_err(|e| StoreError::corrupt(format!("log {log_id}: {e}")))?;
            (frontier, true)
        }
        None => (Frontier::empty(), false),
    };
    Ok(LogHead::new(log_id.clone(), frontier, exists))
}

/// Reads a head without locking (for reads and proofs).
pub async fn read_head(
    conn: &mut AnyConnection,
    log_id: &LogId,
) -> Result<Option<(u64, Hash)>, StoreError> {
    let row = sqlx::query("SELECT tree_size, root FROM ledger_heads WHERE log_id = $1")
        .bind(log_id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => Ok(Some((
            to_u64(row.try_get::<i64, _>(0)?)?,
            hash_of(&row.try_get::<Vec<u8>, _>(1)?)?,
        ))),
        None => Ok(None),
    }
}

/// Persists the leaves and nodes appended to `head` and its new frontier.
pub async fn write_appends(
    conn: &mut AnyConnection,
    head: &mut LogHead,
    now_micros: i64,
) -> Result<(), StoreError> {
    if head.pending_leaves.is_empty() {
        return Ok(());
    }
    let leaves = head.take_pending_leaves();
    crate::bundles::write_leaves(conn, &[(&head.log_id, &leaves)]).await?;
    let nodes = std::mem::take(&mut head.pending_nodes);
    for chunk in crate::db::statement_chunks(&nodes, INSERT_ROWS_MAX) {
        let sql = format!(
            "{} ledger_nodes (log_id, level, node_index, hash) VALUES {}",
            Placeholders::of(conn).bulk_insert(),
            values_placeholders(Placeholders::of(conn), chunk.len(), 4)
        );
        let mut query = sqlx::query(&sql);
        for (id, hash) in chunk {
            query = query
                .bind(head.text.as_str())
                .bind(i64::from(id.level))
                .bind(to_i64(id.index)?)
                .bind(hash.as_bytes().to_vec());
        }
        query.execute(&mut *conn).await?;
    }
    let size = to_i64(head.frontier.tree_size())?;
    let root = head.frontier.root().as_bytes().to_vec();
    let frontier = head.frontier.to_bytes();
    if head.exists {
        sqlx::query(
            "UPDATE ledger_heads SET tree_size = $1, root = $2, frontier = $3, updated_at = $4 \
             WHERE log_id = $5",
        )
        .bind(size)
        .bind(root)
        .bind(frontier)
        .bind(now_micros)
        .bind(head.text.as_str())
        .execute(&mut *conn)
        .await?;
    } else {
        sqlx::query(
            "INSERT INTO ledger_heads (log_id, tree_size, root, frontier, updated_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(head.text.as_str())
        .bind(size)
        .bind(root)
        .bind(frontier)
        .bind(now_micros)
        .execute(&mut *conn)
        .await?;
        head.exists = true;
    }
    Ok(())
}

/// Reads the hashes of `count` consecutive stored nodes at a stored level (0 = leaves).
async fn read_stored_range(
    conn: &mut AnyConnection,
    log_id: &LogId,
    level: u8,
    first: u64,
    count: u64,
) -> Result<Vec<Hash>, StoreError> {
    if level == 0 {
        let leaves = crate::bundles::read_leaves(conn, log_id, first, first + count, false).await?;
        if leaves.len() as u64 != count {
            return Err(StoreError::corrupt(format!(
                "log {log_id}: {} of {count} stored leaves from {first}",
                leaves.len()
            )));
        }
        return Ok(leaves.into_iter().map(|leaf| leaf.hash).collect());
    }
    let rows = {
        sqlx::query(
            "SELECT hash FROM ledger_nodes WHERE log_id = $1 AND level = $2 \
             AND node_index >= $3 AND node_index < $4 ORDER BY node_index",
        )
        .bind(log_id.to_string())
        .bind(i64::from(level))
        .bind(to_i64(first)?)
        .bind(to_i64(first + count)?)
        .fetch_all(&mut *conn)
        .await?
    };
    if rows.len() as u64 != count {
        return Err(StoreError::corrupt(format!(
            "log {log_id}: {} of {count} stored hashes at level {level} from {first}",
            rows.len()
        )));
    }
    rows.iter()
        .map(|row| hash_of(&row.try_get::<Vec<u8>, _>(0)?))
        .collect()
}

/// Reads the hash of any complete subtree, rebuilding it from the nearest stored level.
pub async fn read_node(
    conn: &mut AnyConnection,
    log_id: &LogId,
    id: NodeId,
) -> Result<Hash, StoreError> {
    let base = base_level(id.level);
    let span = id.level - base;
    let mut hashes = read_stored_range(conn, log_id, base, id.index << span, 1 << span).await?;
    while hashes.len() > 1 {
        hashes = hashes
            .chunks_exact(2)
            .map(|pair| node_hash(&pair[0], &pair[1]))
            .collect();
    }
    hashes
        .pop()
        .ok_or_else(|| StoreError::corrupt("empty node range"))
}

async fn read_nodes(
    conn: &mut AnyConnection,
    log_id: &LogId,
    ids: &[NodeId],
) -> Result<HashMap<NodeId, Hash>, StoreError> {
    let mut nodes = HashMap::with_capacity(ids.len());
    for id in ids {
        nodes.insert(*id, read_node(conn, log_id, *id).await?);
    }
    Ok(nodes)
}

async fn read_plan(
    conn: &mut AnyConnection,
    log_id: &LogId,
    plan: &[LeafRange],
) -> Result<Vec<Hash>, StoreError> {
    let nodes = read_nodes(conn, log_id, &merkle::required_nodes(plan)).await?;
    merkle::assemble_proof(plan, &nodes).map_err(|e| StoreError::corrupt(e.to_string()))
}

/// The inclusion proof of `leaf_index` in the tree of `tree_size` leaves.
pub async fn inclusion_proof(
    conn: &mut AnyConnection,
    log_id: &LogId,
    leaf_index: u64,
    tree_size: u64,
) -> Result<Vec<Hash>, StoreError> {
    let plan = merkle::inclusion_plan(leaf_index, tree_size)
        .map_err(|e| StoreError::corrupt(e.to_string()))?;
    read_plan(conn, log_id, &plan).await
}

/// The consistency proof between two sizes of a log.
pub async fn consistency_proof(
    conn: &mut AnyConnection,
    log_id: &LogId,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, StoreError> {
    let plan = merkle::consistency_plan(old_size, new_size)
        .map_err(|e| StoreError::corrupt(e.to_string()))?;
    read_plan(conn, log_id, &plan).await
}

/// The root of the first `tree_size` leaves of a log.
pub async fn root_at(
    conn: &mut AnyConnection,
    log_id: &LogId,
    tree_size: u64,
) -> Result<Hash, StoreError> {
    let ids = merkle::root_nodes(tree_size);
    let nodes = read_nodes(conn, log_id, &ids).await?;
    merkle::assemble_root(tree_size, &nodes).map_err(|e| StoreError::corrupt(e.to_string()))
}

/// A leaf's data and hash.
pub async fn read_leaf(
    conn: &mut AnyConnection,
    log_id: &LogId,
    leaf_index: u64,
) -> Result<Option<(Hash, Vec<u8>)>, StoreError> {
    let leaf = crate::bundles::read_leaves(conn, log_id, leaf_index, leaf_index + 1, true)
        .await?
        .pop();
    Ok(leaf.map(|leaf| (leaf.hash, leaf.data)))
}

/// A signed checkpoint as stored.
#[derive(Debug, Clone)]
pub struct StoredCheckpoint {
    pub tree_size: u64,
    pub root: Hash,
    pub note: String,
    pub signed_at_micros: i64,
}

fn checkpoint_from_row(row: &sqlx::any::AnyRow) -> Result<StoredCheckpoint, StoreError> {
    Ok(StoredCheckpoint {
        tree_size: to_u64(row.try_get(0)?)?,
        root: hash_of(&row.try_get::<Vec<u8>, _>(1)?)?,
        note: row.try_get(2)?,
        signed_at_micros: row.try_get(3)?,
    })
}

/// The latest signed checkpoint of a log.
pub async fn latest_checkpoint(
    conn: &mut AnyConnection,
    log_id: &LogId,
) -> Result<Option<StoredCheckpoint>, StoreError> {
    let row = sqlx::query(
        "SELECT tree_size, root, note, signed_at FROM ledger_checkpoints WHERE log_id = $1 \
         ORDER BY tree_size DESC LIMIT 1",
    )
    .bind(log_id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(checkpoint_from_row).transpose()
}

/// The checkpoint signed at exactly `tree_size`, if any.
pub async fn checkpoint_at(
    conn: &mut AnyConnection,
    log_id: &LogId,
    tree_size: u64,
) -> Result<Option<StoredCheckpoint>, StoreError> {
    let row = sqlx::query(
        "SELECT tree_size, root, note, signed_at FROM ledger_checkpoints \
         WHERE log_id = $1 AND tree_size = $2",
    )
    .bind(log_id.to_string())
    .bind(to_i64(tree_size)?)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(checkpoint_from_row).transpose()
}

/// Every checkpoint of a log, oldest first.
pub async fn all_checkpoints(
    conn: &mut AnyConnection,
    log_id: &LogId,
) -> Result<Vec<StoredCheckpoint>, StoreError> {
    let rows = sqlx::query(
        "SELECT tree_size, root, note, signed_at FROM ledger_checkpoints WHERE log_id = $1 \
         ORDER BY tree_size",
    )
    .bind(log_id.to_string())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(checkpoint_from_row).collect()
}

/// Why a checkpoint could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("refusing to sign log {log_id}: {source}")]
    Refused {
        log_id: String,
        #[source]
        source: companyos_ledger::CheckpointError,
    },
}

/// Signs a checkpoint of the current head of `log_id` unless the latest one already covers it,
/// and returns the latest checkpoint. The signer checks a consistency proof from the last signed
/// checkpoint (read from the store) first, so a tampered tree is never signed.
pub async fn sign_checkpoint(
    db: &Db,
    signer: &NoteSigner,
    log_id: &LogId,
    origin: &str,
    now_micros: i64,
) -> Result<Option<StoredCheckpoint>, SignError> {
    let mut tx = db.begin().await?;
    let head = lock_head(db, &mut tx, log_id).await?;
    let latest = latest_checkpoint(&mut tx, log_id).await?;
    let size = head.tree_size();
    if size == 0 || latest.as_ref().is_some_and(|c| c.tree_size >= size) {
        tx.commit().await.map_err(StoreError::from)?;
        return Ok(latest);
    }
    let root = head.root();
    let proof = match &latest {
        Some(last) => consistency_proof(&mut tx, log_id, last.tree_size, size).await?,
        None => Vec::new(),
    };
    let mut checkpoint_signer = CheckpointSigner::new(
        signer.clone(),
        origin,
        latest.as_ref().map(|c| (c.tree_size, c.root)),
    );
    let checkpoint = Checkpoint::new(origin, size, root).map_err(|source| SignError::Refused {
        log_id: log_id.to_string(),
        source,
    })?;
    let note = checkpoint_signer
        .sign(&checkpoint, &proof)
        .map_err(|source| SignError::Refused {
            log_id: log_id.to_string(),
            source,
        })?
        .to_string();
    sqlx::query(
        "INSERT INTO ledger_checkpoints (log_id, tree_size, root, note, signed_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(log_id.to_string())
    .bind(to_i64(size)?)
    .bind(root.as_bytes().to_vec())
    .bind(note.as_str())
    .bind(now_micros)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::from)?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(Some(StoredCheckpoint {
        tree_size: size,
        root,
        note,
        signed_at_micros: now_micros,
    }))
}

/// Log ids with a head, for jobs that visit every log.
pub async fn log_ids(conn: &mut AnyConnection) -> Result<Vec<LogId>, StoreError> {
    let texts: Vec<String> = sqlx::query_scalar("SELECT log_id FROM ledger_heads ORDER BY log_id")
        .fetch_all(&mut *conn)
        .await?;
    texts.iter().map(|text| parse_log_id(text)).collect()
}

/// A log id read back from the store; one that does not parse is corruption.
fn parse_log_id(text: &str) -> Result<LogId, StoreError> {
    LogId::parse(text).map_err(|e| StoreError::corrupt(format!("log id {text:?}: {}", e.message)))
}

/// Locks the heads of several logs at once, in log id order (so two transactions never wait on
/// each other in a cycle), creating the heads that do not exist yet: a created head row is what
/// later appenders of that log lock, on every node.
///
/// The heads are read (and locked) first; only when some are missing are all of them inserted
/// if absent and read again. A transaction that waits in the second step holds only rows every
/// other writer reads in the same order, so it still never waits in a cycle.
pub async fn lock_heads(
    db: &Db,
    conn: &mut AnyConnection,
    log_ids: &std::collections::BTreeSet<LogId>,
    now_micros: i64,
) -> Result<std::collections::BTreeMap<LogId, LogHead>, StoreError> {
    let ids: Vec<String> = log_ids.iter().map(LogId::to_string).collect();
    let heads = select_heads(db, conn, &ids).await?;
    if heads.len() == log_ids.len() {
        return Ok(heads);
    }
    let missing: Vec<&String> = log_ids
        .iter()
        .zip(&ids)
        .filter(|(id, _)| !heads.contains_key(*id))
        .map(|(_, text)| text)
        .collect();
    let empty_root = companyos_ledger::hash::empty_tree_root()
        .as_bytes()
        .to_vec();
    for chunk in crate::db::statement_chunks(&ids, INSERT_ROWS_MAX) {
        let sql = format!(
            "{} ledger_heads (log_id, tree_size, root, frontier, updated_at) VALUES {} \
             ON CONFLICT (log_id) DO NOTHING",
            Placeholders::of(conn).bulk_insert(),
            values_placeholders(Placeholders::of(conn), chunk.len(), 5)
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query
                .bind(id.as_str())
                .bind(0_i64)
                .bind(empty_root.clone())
                .bind(Vec::<u8>::new())
                .bind(now_micros);
        }
        query.execute(&mut *conn).await?;
    }
    lock_first_appends(db, conn, &missing).await?;
    let heads = select_heads(db, conn, &ids).await?;
    if heads.len() != log_ids.len() {
        return Err(StoreError::corrupt(
            "a ledger head vanished while being locked",
        ));
    }
    Ok(heads)
}

/// On PostgreSQL, takes the advisory lock [`lock_head`] takes for a log without a head, for
/// each log whose head this transaction is creating. A transaction that found no head to lock
/// (a plan change seeding quota rows from the rollups, `billing::quota_seed`) then either runs
/// wholly before this first append or sees its rows: the head row being inserted is invisible
/// to it and would not make it wait. Taken after every insert of the group, so a transaction
/// holding one never waits on another's head insert: two first appends of one log meet on the
/// insert, the later one takes the lock after the earlier one committed.
async fn lock_first_appends(
    db: &Db,
    conn: &mut AnyConnection,
    missing: &[&String],
) -> Result<(), StoreError> {
    if db.backend() != crate::db::Backend::Postgres {
        return Ok(());
    }
    for chunk in crate::db::statement_chunks(missing, INSERT_ROWS_MAX) {
        let sql = format!(
            "SELECT pg_advisory_xact_lock(hashtextextended(v.log_id, 0)) \
             FROM (VALUES {}) AS v(log_id)",
            values_placeholders(Placeholders::of(conn), chunk.len(), 1)
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(id.as_str());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Reads (and on PostgreSQL locks, in log id order) the heads that exist among `ids`.
async fn select_heads(
    db: &Db,
    conn: &mut AnyConnection,
    ids: &[String],
) -> Result<std::collections::BTreeMap<LogId, LogHead>, StoreError> {
    let mut heads = std::collections::BTreeMap::new();
    for chunk in crate::db::statement_chunks(ids, INSERT_ROWS_MAX) {
        let sql = format!(
            "SELECT log_id, tree_size, frontier FROM ledger_heads WHERE log_id IN ({}) \
             ORDER BY log_id{}",
            crate::db::list_placeholders(Placeholders::of(conn), 1, chunk.len()),
            db.for_update()
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(id.as_str());
        }
        for row in query.fetch_all(&mut *conn).await? {
            let log_id = parse_log_id(&row.try_get::<String, _>(0)?)?;
            let size = to_u64(row.try_get::<i64, _>(1)?)?;
            let bytes: Vec<u8> = row.try_get(2)?;
            let frontier = Frontier::from_bytes(size, &bytes)
                .map_err(|e| StoreError::corrupt(format!("log {log_id}: {e}")))?;
            heads.insert(log_id.clone(), LogHead::new(log_id, frontier, true));
        }
    }
    Ok(heads)
}

/// Persists the appends of many heads in a few multi-row statements.
pub async fn write_many_appends<'a>(
    conn: &mut AnyConnection,
    heads: impl IntoIterator<Item = &'a mut LogHead>,
    now_micros: i64,
) -> Result<(), StoreError> {
    let mut leaves: Vec<(LogId, PendingLeaves)> = Vec::new();
    let mut nodes: Vec<(String, NodeId, Hash)> = Vec::new();
    let mut changed: Vec<(String, i64, Vec<u8>, Vec<u8>)> = Vec::new();
    for head in heads {
        if head.pending_leaves.is_empty() {
            continue;
        }
        assert!(
            head.exists,
            "write_many_appends needs heads from lock_heads"
        );
        leaves.push((head.log_id.clone(), head.take_pending_leaves()));
        for (id, hash) in std::mem::take(&mut head.pending_nodes) {
            nodes.push((head.text.clone(), id, hash));
        }
        changed.push((
            head.text.clone(),
            to_i64(head.frontier.tree_size())?,
            head.frontier.root().as_bytes().to_vec(),
            head.frontier.to_bytes(),
        ));
    }
    let logs: Vec<(&LogId, &PendingLeaves)> = leaves
        .iter()
        .map(|(log_id, leaves)| (log_id, leaves))
        .collect();
    crate::bundles::write_leaves(conn, &logs).await?;
    for chunk in crate::db::statement_chunks(&nodes, INSERT_ROWS_MAX) {
        let sql = format!(
            "{} ledger_nodes (log_id, level, node_index, hash) VALUES {}",
            Placeholders::of(conn).bulk_insert(),
            values_placeholders(Placeholders::of(conn), chunk.len(), 4)
        );
        let mut query = sqlx::query(&sql);
        for (log_id, id, hash) in chunk {
            query = query
                .bind(log_id.as_str())
                .bind(i64::from(id.level))
                .bind(to_i64(id.index)?)
                .bind(hash.as_bytes().to_vec());
        }
        query.execute(&mut *conn).await?;
    }
    for chunk in crate::db::statement_chunks(&changed, INSERT_ROWS_MAX) {
        let sql = format!(
            "{} ledger_heads (log_id, tree_size, root, frontier, updated_at) VALUES {} \
             ON CONFLICT (log_id) DO UPDATE SET tree_size = excluded.tree_size, \
             root = excluded.root, frontier = excluded.frontier, updated_at = excluded.updated_at",
            Placeholders::of(conn).bulk_insert(),
            values_placeholders(Placeholders::of(conn), chunk.len(), 5)
        );
        let mut query = sqlx::query(&sql);
        for (log_id, size, root, frontier) in chunk {
            query = query
                .bind(log_id.as_str())
                .bind(*size)
                .bind(root.clone())
                .bind(frontier.clone())
                .bind(now_micros);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}
