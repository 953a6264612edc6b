//! Verification of a stored log from its leaves up: each leaf hash against its data, each
//! stored node against its children, every checkpoint's root and signature, and the head's root
//! and frontier, in one walk over the leaves a page at a time.

use std::collections::HashMap;

use companyos_ledger::checkpoint::Checkpoint;
use companyos_ledger::merkle::NodeId;
use companyos_ledger::{Frontier, Hash, leaf_hash};
use sqlx::{AnyConnection, Row as _};

use super::{
    STORED_LEVEL_MIN, STORED_LEVEL_STRIDE, StoredCheckpoint, all_checkpoints, hash_of,
    is_stored_level, read_head,
};
use companyos_domain::LogId;

use crate::db::{StoreError, to_i64, to_u64};

/// A problem found while verifying a stored log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogProblem {
    pub log_id: String,
    pub leaf_index: Option<u64>,
    pub message: String,
}

/// Verifies a stored log from its leaves up: each leaf hash against its data, each stored node
/// against its children, the head's root and frontier, and every checkpoint's root and signature.
/// Calls `check_leaf` on each leaf so callers can also check what the leaf commits to.
pub async fn verify_log(
    conn: &mut AnyConnection,
    log_id: &LogId,
    verifier: &companyos_ledger::NoteVerifier,
    origin: &str,
    mut check_leaf: impl FnMut(u64, &[u8]) -> Option<String>,
) -> Result<Vec<LogProblem>, StoreError> {
    let text = log_id.to_string();
    let head = read_head(conn, log_id).await?;
    let head_frontier = read_head_frontier(conn, &text).await?;
    let checkpoints = all_checkpoints(conn, log_id).await?;
    let mut walk = LogWalk {
        verifier,
        origin,
        problems: Problems {
            log_id: &text,
            found: Vec::new(),
        },
        checkpoints: checkpoints.iter().peekable(),
        frontier: Frontier::empty(),
        expected_index: 0,
    };
    let page = 10_000u64;
    loop {
        let first = walk.expected_index;
        let rows =
            crate::bundles::read_leaves(conn, log_id, first, first.saturating_add(page), true)
                .await?;
        if rows.is_empty() {
            break;
        }
        let last = first + rows.len() as u64;
        let stored_nodes = stored_nodes_completed(conn, &text, first, last).await?;
        if walk.check_leaves(&rows, &stored_nodes, &mut check_leaf) == Walked::LeafMissing {
            return Ok(walk.problems.found);
        }
    }
    walk.check_checkpoints_beyond_leaves();
    walk.check_head(head, head_frontier);
    Ok(walk.problems.found)
}

/// The head's tree size and stored frontier, if the log has a head.
async fn read_head_frontier(
    conn: &mut AnyConnection,
    log_id: &str,
) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
    let row = sqlx::query("SELECT tree_size, frontier FROM ledger_heads WHERE log_id = $1")
        .bind(log_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match row {
        Some(row) => Some((to_u64(row.try_get(0)?)?, row.try_get(1)?)),
        None => None,
    })
}

/// The stored nodes completed by the leaves `first..last`, to compare with the recomputed ones.
async fn stored_nodes_completed(
    conn: &mut AnyConnection,
    log_id: &str,
    first: u64,
    last: u64,
) -> Result<HashMap<NodeId, Hash>, StoreError> {
    let mut stored_nodes = HashMap::new();
    for level in (STORED_LEVEL_MIN..64).step_by(usize::from(STORED_LEVEL_STRIDE)) {
        let (low, high) = (first >> level, last >> level);
        if high == 0 {
            break;
        }
        let node_rows = sqlx::query(
            "SELECT node_index, hash FROM ledger_nodes WHERE log_id = $1 AND level = $2 \
             AND node_index >= $3 AND node_index < $4",
        )
        .bind(log_id)
        .bind(i64::from(level))
        .bind(to_i64(low)?)
        .bind(to_i64(high)?)
        .fetch_all(&mut *conn)
        .await?;
        for row in &node_rows {
            let id = NodeId::new(level, to_u64(row.try_get(0)?)?);
            if id.end_leaf() > first {
                stored_nodes.insert(id, hash_of(&row.try_get::<Vec<u8>, _>(1)?)?);
            }
        }
    }
    Ok(stored_nodes)
}

/// How a page of leaves ended: all checked, or a missing leaf that ends the verification.
#[derive(PartialEq, Eq)]
enum Walked {
    Page,
    LeafMissing,
}

/// The problems found in one log.
struct Problems<'a> {
    log_id: &'a str,
    found: Vec<LogProblem>,
}

impl Problems<'_> {
    fn push(&mut self, leaf_index: Option<u64>, message: String) {
        self.found.push(LogProblem {
            log_id: self.log_id.to_owned(),
            leaf_index,
            message,
        });
    }
}

/// A walk over a log's leaves in order, rebuilding its tree and collecting the problems found.
struct LogWalk<'a> {
    verifier: &'a companyos_ledger::NoteVerifier,
    origin: &'a str,
    problems: Problems<'a>,
    /// The checkpoints not reached yet, by tree size.
    checkpoints: std::iter::Peekable<std::slice::Iter<'a, StoredCheckpoint>>,
    frontier: Frontier,
    expected_index: u64,
}

impl LogWalk<'_> {
    /// Checks a page of leaves: each hash against its data, what it commits to, the stored
    /// nodes it completes and the checkpoints it reaches.
    fn check_leaves(
        &mut self,
        rows: &[crate::bundles::StoredLeaf],
        stored_nodes: &HashMap<NodeId, Hash>,
        check_leaf: &mut impl FnMut(u64, &[u8]) -> Option<String>,
    ) -> Walked {
        for row in rows {
            let index = row.index;
            let expected_index = self.expected_index;
            if index != expected_index {
                self.problems.push(
                    Some(expected_index),
                    format!("leaf {expected_index} is missing (next stored leaf is {index})"),
                );
                return Walked::LeafMissing;
            }
            let computed = leaf_hash(&row.data);
            if computed != row.hash {
                self.problems.push(
                    Some(index),
                    "stored leaf hash does not match the leaf data".to_owned(),
                );
            }
            if let Some(message) = check_leaf(index, &row.data) {
                self.problems.push(Some(index), message);
            }
            for (id, hash) in self.frontier.append(computed) {
                if is_stored_level(id.level) {
                    self.check_stored_node(id, hash, stored_nodes.get(&id));
                }
            }
            self.expected_index += 1;
            self.check_checkpoints_reached();
        }
        Walked::Page
    }

    /// A node of a stored level, recomputed from the leaves, against the stored one.
    fn check_stored_node(&mut self, id: NodeId, hash: Hash, stored: Option<&Hash>) {
        let message = match stored {
            Some(stored) if *stored == hash => return,
            Some(_) => format!(
                "stored node at level {} index {} does not match its leaves",
                id.level, id.index
            ),
            None => format!(
                "stored node at level {} index {} is missing",
                id.level, id.index
            ),
        };
        self.problems.push(Some(id.first_leaf()), message);
    }

    /// Checks the checkpoints whose tree size the walk has just reached.
    fn check_checkpoints_reached(&mut self) {
        while let Some(checkpoint) = self
            .checkpoints
            .next_if(|checkpoint| checkpoint.tree_size == self.frontier.tree_size())
        {
            if let Some(message) =
                check_checkpoint(checkpoint, &self.frontier, self.verifier, self.origin)
            {
                self.problems.push(Some(checkpoint.tree_size - 1), message);
            }
        }
    }

    /// Every checkpoint left is beyond the stored leaves.
    fn check_checkpoints_beyond_leaves(&mut self) {
        for checkpoint in self.checkpoints.by_ref() {
            self.problems.push(
                Some(checkpoint.tree_size.saturating_sub(1)),
                format!(
                    "checkpoint at tree size {} is beyond the {} stored leaves",
                    checkpoint.tree_size,
                    self.frontier.tree_size()
                ),
            );
        }
    }

    /// The head's size, root and frontier against the leaves walked.
    fn check_head(&mut self, head: Option<(u64, Hash)>, head_frontier: Option<(u64, Vec<u8>)>) {
        let frontier = &self.frontier;
        match (head, head_frontier) {
            (Some((size, root)), Some((_, frontier_bytes))) => {
                if size != frontier.tree_size() {
                    self.problems.push(
                        Some(size.min(frontier.tree_size())),
                        format!(
                            "head says {size} leaves but {} are stored",
                            frontier.tree_size()
                        ),
                    );
                } else {
                    if root != frontier.root() {
                        self.problems.push(
                            size.checked_sub(1),
                            "stored root does not match the leaves".to_owned(),
                        );
                    }
                    if frontier_bytes != frontier.to_bytes() {
                        self.problems.push(
                            size.checked_sub(1),
                            "stored frontier does not match the leaves".to_owned(),
                        );
                    }
                }
            }
            _ if frontier.tree_size() > 0 => self
                .problems
                .push(None, "log has leaves but no head".to_owned()),
            _ => {}
        }
    }
}

fn check_checkpoint(
    checkpoint: &StoredCheckpoint,
    frontier: &Frontier,
    verifier: &companyos_ledger::NoteVerifier,
    origin: &str,
) -> Option<String> {
    if checkpoint.root != frontier.root() {
        return Some(format!(
            "checkpoint at tree size {} has a root that does not match the leaves",
            checkpoint.tree_size
        ));
    }
    match Checkpoint::open(checkpoint.note.as_bytes(), Some(origin), verifier) {
        Ok(opened)
            if opened.tree_size() == checkpoint.tree_size && *opened.root() == checkpoint.root =>
        {
            None
        }
        Ok(_) => Some(format!(
            "checkpoint note at tree size {} does not state the stored size and root",
            checkpoint.tree_size
        )),
        Err(e) => Some(format!(
            "checkpoint note at tree size {} does not verify: {e}",
            checkpoint.tree_size
        )),
    }
}
