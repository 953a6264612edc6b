//! RFC 6962 / RFC 9162 Merkle tree maths: appends, roots, inclusion and consistency proofs.
//!
//! Proof generation is storage-agnostic. A store keeps the hashes of complete subtrees
//! ([`NodeId`]) and answers [`NodeReader::read_node`]; every proof or root needs only
//! O(log n) such reads, never a scan of the leaves. Async stores use the two-step form instead:
//! [`inclusion_plan`] / [`consistency_plan`] name the subtrees a proof is made of,
//! [`required_nodes`] lists the stored hashes to fetch in one go, and [`assemble_proof`] builds
//! the proof from them.

use std::collections::HashMap;

use crate::hash::{Hash, empty_tree_root, node_hash};

/// The largest tree this crate handles; 2^62 leaves keeps every shift and sum in range.
pub const TREE_SIZE_MAX: u64 = 1 << 62;

/// A complete subtree: the `2^level` leaves starting at leaf `index * 2^level`.
/// Level 0 nodes are the leaves themselves (their leaf hashes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

impl NodeId {
    pub const fn new(level: u8, index: u64) -> Self {
        Self { level, index }
    }

    pub const fn leaf(index: u64) -> Self {
        Self { level: 0, index }
    }

    /// The first leaf the subtree covers.
    pub const fn first_leaf(&self) -> u64 {
        self.index << self.level
    }

    /// One past the last leaf the subtree covers.
    pub const fn end_leaf(&self) -> u64 {
        (self.index + 1) << self.level
    }

    /// The two halves of the subtree; `None` for a leaf.
    pub fn children(&self) -> Option<(NodeId, NodeId)> {
        (self.level > 0).then(|| {
            let level = self.level - 1;
            (
                NodeId::new(level, self.index * 2),
                NodeId::new(level, self.index * 2 + 1),
            )
        })
    }
}

/// A range `[start, end)` of leaves that appears in the RFC 6962 decomposition of some tree:
/// either a complete subtree or the right edge of a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafRange {
    pub start: u64,
    pub end: u64,
}

impl LeafRange {
    /// The complete subtrees that make up the range, left to right (sizes strictly decreasing).
    pub fn nodes(&self) -> Vec<NodeId> {
        assert!(self.start < self.end, "empty leaf range");
        let mut nodes = Vec::new();
        let mut start = self.start;
        let mut remaining = self.end - self.start;
        while remaining > 0 {
            let level = 63 - remaining.leading_zeros();
            let size = 1u64 << level;
            assert!(
                start % size == 0,
                "leaf range {self:?} is not part of an RFC 6962 decomposition"
            );
            nodes.push(NodeId::new(level as u8, start >> level));
            start += size;
            remaining -= size;
        }
        nodes
    }

    /// The RFC 6962 hash of the range, from the hashes of its complete subtrees.
    pub fn hash_from(&self, node_hash_of: impl Fn(NodeId) -> Hash) -> Hash {
        fold_right(self.nodes().into_iter().map(node_hash_of).collect())
    }
}

/// Folds complete-subtree hashes given left to right into the hash of their concatenation.
fn fold_right(hashes: Vec<Hash>) -> Hash {
    let mut iter = hashes.into_iter().rev();
    let Some(mut acc) = iter.next() else {
        return empty_tree_root();
    };
    for left in iter {
        acc = node_hash(&left, &acc);
    }
    acc
}

/// Reads stored complete-subtree hashes by position.
pub trait NodeReader {
    type Error;
    fn read_node(&self, id: NodeId) -> Result<Hash, Self::Error>;
}

/// Errors of proof generation and verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {leaf_index} is not below tree size {tree_size}")]
    LeafIndexOutOfRange { leaf_index: u64, tree_size: u64 },
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    SizesOutOfOrder { old_size: u64, new_size: u64 },
    #[error("tree size {tree_size} exceeds the supported maximum")]
    TreeTooLarge { tree_size: u64 },
    #[error("proof has {actual} hashes, expected {expected}")]
    WrongProofLength { expected: usize, actual: usize },
    #[error("proof does not lead to the expected root hash")]
    RootMismatch,
    #[error("proof does not lead to the expected old root hash")]
    OldRootMismatch,
    #[error("a stored node needed by the proof is missing: level {} index {}", .0.level, .0.index)]
    MissingNode(NodeId),
}

fn largest_power_of_two_below(n: u64) -> u64 {
    assert!(n > 1);
    1u64 << (63 - (n - 1).leading_zeros())
}

fn check_size(tree_size: u64) -> Result<(), ProofError> {
    if tree_size > TREE_SIZE_MAX {
        return Err(ProofError::TreeTooLarge { tree_size });
    }
    Ok(())
}

/// The subtrees whose hashes form the inclusion proof of `leaf_index` in a tree of `tree_size`
/// leaves, in proof order (from the leaf upwards), as RFC 9162 §2.1.3.1 defines it.
pub fn inclusion_plan(leaf_index: u64, tree_size: u64) -> Result<Vec<LeafRange>, ProofError> {
    check_size(tree_size)?;
    if leaf_index >= tree_size {
        return Err(ProofError::LeafIndexOutOfRange {
            leaf_index,
            tree_size,
        });
    }
    let (mut low, mut high) = (0u64, tree_size);
    let mut top_down = Vec::new();
    while high - low > 1 {
        let split = largest_power_of_two_below(high - low);
        if leaf_index - low < split {
            top_down.push(LeafRange {
                start: low + split,
                end: high,
            });
            high = low + split;
        } else {
            top_down.push(LeafRange {
                start: low,
                end: low + split,
            });
            low += split;
        }
    }
    top_down.reverse();
    Ok(top_down)
}

/// The subtrees whose hashes form the consistency proof from `old_size` to `new_size`, in proof
/// order, as RFC 9162 §2.1.4.1 defines it. Empty when `old_size` is 0 or equals `new_size`.
pub fn consistency_plan(old_size: u64, new_size: u64) -> Result<Vec<LeafRange>, ProofError> {
    check_size(new_size)?;
    if old_size > new_size {
        return Err(ProofError::SizesOutOfOrder { old_size, new_size });
    }
    if old_size == 0 || old_size == new_size {
        return Ok(Vec::new());
    }
    let (mut low, mut high) = (0u64, new_size);
    let mut old_in_range = old_size;
    let mut old_is_whole_prefix = true;
    let mut top_down = Vec::new();
    loop {
        if old_in_range == high - low {
            if !old_is_whole_prefix {
                top_down.push(LeafRange {
                    start: low,
                    end: high,
                });
            }
            break;
        }
        let split = largest_power_of_two_below(high - low);
        if old_in_range <= split {
            top_down.push(LeafRange {
                start: low + split,
                end: high,
            });
            high = low + split;
        } else {
            top_down.push(LeafRange {
                start: low,
                end: low + split,
            });
            old_in_range -= split;
            low += split;
            old_is_whole_prefix = false;
        }
    }
    top_down.reverse();
    Ok(top_down)
}

/// The complete subtrees to read to assemble a proof from `plan`, without repeats.
pub fn required_nodes(plan: &[LeafRange]) -> Vec<NodeId> {
    let mut nodes: Vec<NodeId> = plan.iter().flat_map(LeafRange::nodes).collect();
    nodes.sort_unstable();
    nodes.dedup();
    nodes
}

/// Builds the proof hashes of `plan` from already fetched node hashes.
pub fn assemble_proof(
    plan: &[LeafRange],
    nodes: &HashMap<NodeId, Hash>,
) -> Result<Vec<Hash>, ProofError> {
    plan.iter()
        .map(|range| {
            let hashes = range
                .nodes()
                .into_iter()
                .map(|id| nodes.get(&id).copied().ok_or(ProofError::MissingNode(id)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(fold_right(hashes))
        })
        .collect()
}

/// The subtrees that make up the whole tree of `tree_size` leaves (its root decomposition).
pub fn root_nodes(tree_size: u64) -> Vec<NodeId> {
    if tree_size == 0 {
        return Vec::new();
    }
    LeafRange {
        start: 0,
        end: tree_size,
    }
    .nodes()
}

/// The root of the tree of `tree_size` leaves from fetched node hashes.
pub fn assemble_root(tree_size: u64, nodes: &HashMap<NodeId, Hash>) -> Result<Hash, ProofError> {
    let hashes = root_nodes(tree_size)
        .into_iter()
        .map(|id| nodes.get(&id).copied().ok_or(ProofError::MissingNode(id)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(fold_right(hashes))
}

/// Error of generating a proof through a [`NodeReader`].
#[derive(Debug, thiserror::Error)]
pub enum ProofGenerationError<E> {
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("reading a stored node failed")]
    Store(#[source] E),
}

fn read_plan<R: NodeReader>(
    reader: &R,
    plan: &[LeafRange],
) -> Result<Vec<Hash>, ProofGenerationError<R::Error>> {
    let mut nodes = HashMap::new();
    for id in required_nodes(plan) {
        nodes.insert(
            id,
            reader.read_node(id).map_err(ProofGenerationError::Store)?,
        );
    }
    Ok(assemble_proof(plan, &nodes)?)
}

/// The inclusion proof of `leaf_index` in the tree of `tree_size` leaves.
pub fn inclusion_proof<R: NodeReader>(
    reader: &R,
    leaf_index: u64,
    tree_size: u64,
) -> Result<Vec<Hash>, ProofGenerationError<R::Error>> {
    read_plan(reader, &inclusion_plan(leaf_index, tree_size)?)
}

/// The consistency proof between the trees of `old_size` and `new_size` leaves.
pub fn consistency_proof<R: NodeReader>(
    reader: &R,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, ProofGenerationError<R::Error>> {
    read_plan(reader, &consistency_plan(old_size, new_size)?)
}

/// The root of the tree of `tree_size` leaves.
pub fn root_at<R: NodeReader>(
    reader: &R,
    tree_size: u64,
) -> Result<Hash, ProofGenerationError<R::Error>> {
    check_size(tree_size)?;
    let mut hashes = Vec::new();
    for id in root_nodes(tree_size) {
        hashes.push(reader.read_node(id).map_err(ProofGenerationError::Store)?);
    }
    Ok(fold_right(hashes))
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf_hash: &Hash,
    leaf_index: u64,
    tree_size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    let computed = root_from_inclusion_proof(leaf_hash, leaf_index, tree_size, proof)?;
    if computed != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The root an inclusion proof leads to, after checking its shape.
pub fn root_from_inclusion_proof(
    leaf_hash: &Hash,
    leaf_index: u64,
    tree_size: u64,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    let expected = inclusion_plan(leaf_index, tree_size)?.len();
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    let mut acc = *leaf_hash;
    let lengths = (expected, proof.len());
    walk_audit_path(
        leaf_index,
        tree_size - 1,
        proof,
        lengths,
        |sibling, side| {
            acc = match side {
                Side::Left => node_hash(sibling, &acc),
                Side::Right => node_hash(&acc, sibling),
            };
        },
    )?;
    Ok(acc)
}

/// Which side of the running hash a sibling of an audit path stands on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

/// Walks an audit path the way RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency) both
/// do: from `node_index` in a tree whose last node is `last_index`, handing `fold` each
/// sibling and its side. A path too long or too short for the tree is `WrongProofLength`
/// (`lengths`: the proof's expected and actual lengths, for the error).
fn walk_audit_path(
    mut node_index: u64,
    mut last_index: u64,
    path: &[Hash],
    (expected, actual): (usize, usize),
    mut fold: impl FnMut(&Hash, Side),
) -> Result<(), ProofError> {
    let wrong_length = || ProofError::WrongProofLength { expected, actual };
    for sibling in path {
        if last_index == 0 {
            return Err(wrong_length());
        }
        if node_index & 1 == 1 || node_index == last_index {
            fold(sibling, Side::Left);
            if node_index & 1 == 0 {
                while node_index & 1 == 0 && node_index != 0 {
                    node_index >>= 1;
                    last_index >>= 1;
                }
            }
        } else {
            fold(sibling, Side::Right);
        }
        node_index >>= 1;
        last_index >>= 1;
    }
    if last_index != 0 {
        return Err(wrong_length());
    }
    Ok(())
}

/// Verifies a consistency proof between two tree heads (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    let expected = consistency_plan(old_size, new_size)?.len();
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    if old_size == new_size {
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    if old_size == 0 {
        // Every tree is consistent with the empty tree; its root is fixed.
        return if *old_root == empty_tree_root() {
            Ok(())
        } else {
            Err(ProofError::OldRootMismatch)
        };
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);

    let mut node_index = old_size - 1;
    let mut last_index = new_size - 1;
    while node_index & 1 == 1 {
        node_index >>= 1;
        last_index >>= 1;
    }
    let mut old_acc = path[0];
    let mut new_acc = path[0];
    let lengths = (expected, proof.len());
    walk_audit_path(
        node_index,
        last_index,
        &path[1..],
        lengths,
        |sibling, side| {
            if side == Side::Left {
                old_acc = node_hash(sibling, &old_acc);
                new_acc = node_hash(sibling, &new_acc);
            } else {
                new_acc = node_hash(&new_acc, sibling);
            }
        },
    )?;
    if old_acc != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if new_acc != *new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The right edge of a tree: the roots of the complete subtrees of its binary decomposition,
/// largest first. It is all an appender needs: the new complete subtrees and the new root
/// follow from it and the appended leaf hash, with no reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontier {
    tree_size: u64,
    hashes: Vec<Hash>,
}

/// A stored frontier did not have one hash per set bit of its tree size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("frontier of tree size {tree_size} needs {expected} hashes, has {actual}")]
pub struct FrontierError {
    tree_size: u64,
    expected: usize,
    actual: usize,
}

impl Default for Frontier {
    fn default() -> Self {
        Self::empty()
    }
}

impl Frontier {
    pub const fn empty() -> Self {
        Self {
            tree_size: 0,
            hashes: Vec::new(),
        }
    }

    pub fn from_parts(tree_size: u64, hashes: Vec<Hash>) -> Result<Self, FrontierError> {
        let expected = tree_size.count_ones() as usize;
        if hashes.len() != expected || tree_size > TREE_SIZE_MAX {
            return Err(FrontierError {
                tree_size,
                expected,
                actual: hashes.len(),
            });
        }
        Ok(Self { tree_size, hashes })
    }

    /// Decodes the concatenated hashes written by [`Frontier::to_bytes`].
    pub fn from_bytes(tree_size: u64, bytes: &[u8]) -> Result<Self, FrontierError> {
        let expected = tree_size.count_ones() as usize;
        if bytes.len() != expected * Hash::LEN {
            return Err(FrontierError {
                tree_size,
                expected,
                actual: bytes.len() / Hash::LEN,
            });
        }
        let hashes = bytes
            .chunks_exact(Hash::LEN)
            .filter_map(Hash::from_slice)
            .collect();
        Self::from_parts(tree_size, hashes)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.hashes.iter().flat_map(|h| *h.as_bytes()).collect()
    }

    pub const fn tree_size(&self) -> u64 {
        self.tree_size
    }

    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The node ids of the frontier hashes, largest subtree first.
    pub fn node_ids(&self) -> Vec<NodeId> {
        root_nodes(self.tree_size)
    }

    pub fn root(&self) -> Hash {
        fold_right(self.hashes.clone())
    }

    /// Appends a leaf and returns every complete subtree it completes, the leaf itself first and
    /// the largest last: exactly the node hashes a store must persist.
    pub fn append(&mut self, leaf_hash: Hash) -> Vec<(NodeId, Hash)> {
        let mut completed = Vec::with_capacity(2);
        self.append_with(leaf_hash, |id, hash| completed.push((id, *hash)));
        completed
    }

    /// Appends a leaf and calls `completed` with every complete subtree it completes, in the
    /// order of [`Frontier::append`], without allocating (a store appends one leaf per event).
    pub fn append_with(&mut self, leaf_hash: Hash, mut completed: impl FnMut(NodeId, &Hash)) {
        assert!(self.tree_size < TREE_SIZE_MAX, "tree is full");
        let index = self.tree_size;
        completed(NodeId::leaf(index), &leaf_hash);
        let mut carry = leaf_hash;
        let mut level = 0u8;
        while (index >> level) & 1 == 1 {
            let left = self
                .hashes
                .pop()
                .expect("a set bit of the tree size always has a frontier hash");
            carry = node_hash(&left, &carry);
            level += 1;
            completed(NodeId::new(level, index >> level), &carry);
        }
        self.hashes.push(carry);
        self.tree_size += 1;
        assert_eq!(self.hashes.len(), self.tree_size.count_ones() as usize);
    }
}

/// A whole tree held in memory, every level kept: for tests, tools and tenants who fetched
/// their leaves. Stores use [`Frontier`] and their own node tables instead.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_leaf_hashes(leaves: impl IntoIterator<Item = Hash>) -> Self {
        let mut tree = Self::new();
        for leaf in leaves {
            tree.push(leaf);
        }
        tree
    }

    pub fn push(&mut self, leaf_hash: Hash) {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(leaf_hash);
        let mut level = 0;
        while self.levels[level].len() % 2 == 0 {
            let row = &self.levels[level];
            let parent = node_hash(&row[row.len() - 2], &row[row.len() - 1]);
            if self.levels.len() == level + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[level + 1].push(parent);
            level += 1;
        }
    }

    pub fn tree_size(&self) -> u64 {
        self.levels.first().map_or(0, |leaves| leaves.len() as u64)
    }

    pub fn root(&self) -> Hash {
        self.root_at_size(self.tree_size())
    }

    /// The root of the prefix of `tree_size` leaves.
    pub fn root_at_size(&self, tree_size: u64) -> Hash {
        assert!(tree_size <= self.tree_size());
        match root_at(self, tree_size) {
            Ok(root) => root,
            Err(error) => unreachable!("in-memory tree misses a node: {error}"),
        }
    }
}

/// A node the in-memory tree does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no node at level {} index {}", .0.level, .0.index)]
pub struct NoSuchNode(pub NodeId);

impl NodeReader for MemoryTree {
    type Error = NoSuchNode;

    fn read_node(&self, id: NodeId) -> Result<Hash, NoSuchNode> {
        self.levels
            .get(usize::from(id.level))
            .and_then(|row| row.get(usize::try_from(id.index).ok()?))
            .copied()
            .ok_or(NoSuchNode(id))
    }
}
