//! Property tests: proofs from `MemoryTree` and from the plan/assemble path equal the naive RFC
//! 9162 reference and verify; any single-bit change, wrong index or wrong size is rejected;
//! `Frontier` agrees with the reference and with `MemoryTree`; `CheckpointSigner` never signs a
//! checkpoint that does not extend the last one; signed checkpoints round-trip.

use std::collections::{HashMap, HashSet};

use companyos_ledger::checkpoint::{Checkpoint, CheckpointError, CheckpointSigner};
use companyos_ledger::hash::empty_tree_root;
use companyos_ledger::merkle::{
    self, MemoryTree, NodeId, NodeReader, ProofError, assemble_proof, assemble_root,
    consistency_plan, consistency_proof, inclusion_plan, inclusion_proof, required_nodes,
    root_nodes, verify_consistency, verify_inclusion,
};
use companyos_ledger::{Frontier, Hash};
use proptest::prelude::*;
use proptest::sample::Index;

use crate::common::{flip, signer};
use crate::reference;

fn hashes(raw: &[reference::H]) -> Vec<Hash> {
    raw.iter().map(|h| Hash::from_bytes(*h)).collect()
}

fn tree_of(raw: &[reference::H]) -> MemoryTree {
    MemoryTree::from_leaf_hashes(hashes(raw))
}

fn seeded_leaves(seed: u64, n: usize) -> Vec<reference::H> {
    (0..n)
        .map(|i| reference::leaf(format!("{seed}/{i}").as_bytes()))
        .collect()
}

/// The proof of `plan` through the two-step path async stores use.
fn plan_path_proof(tree: &MemoryTree, plan: &[merkle::LeafRange]) -> Vec<Hash> {
    let nodes: HashMap<NodeId, Hash> = required_nodes(plan)
        .into_iter()
        .map(|id| (id, tree.read_node(id).unwrap()))
        .collect();
    assemble_proof(plan, &nodes).unwrap()
}

fn ref_root(raw: &[reference::H], size: usize) -> Hash {
    Hash::from_bytes(reference::mth(&raw[..size]))
}

#[test]
fn exhaustive_small_trees_match_reference() {
    const MAX: usize = 40;
    let raw = reference::leaf_hashes(MAX);
    let tree = tree_of(&raw);
    for (m, n) in reference::all_pairs(MAX) {
        let root_n = ref_root(&raw, n);
        assert_eq!(tree.root_at_size(n as u64), root_n);
        if m < n {
            let want = hashes(&reference::path(m, &raw[..n]));
            let got = inclusion_proof(&tree, m as u64, n as u64).unwrap();
            assert_eq!(got, want, "PATH({m}, D[{n}])");
            let plan = inclusion_plan(m as u64, n as u64).unwrap();
            assert_eq!(plan_path_proof(&tree, &plan), want);
            let leaf = Hash::from_bytes(raw[m]);
            verify_inclusion(&leaf, m as u64, n as u64, &got, &root_n).unwrap();
            for (i, element) in got.iter().enumerate() {
                let mut wrong = got.clone();
                wrong[i] = flip(element, (m * 31 + n * 7 + i) % 256);
                assert!(verify_inclusion(&leaf, m as u64, n as u64, &wrong, &root_n).is_err());
            }
        }
        let want = hashes(&reference::proof(m, &raw[..n]));
        let got = consistency_proof(&tree, m as u64, n as u64).unwrap();
        assert_eq!(got, want, "PROOF({m}, D[{n}])");
        let plan = consistency_plan(m as u64, n as u64).unwrap();
        assert_eq!(plan_path_proof(&tree, &plan), want);
        let root_m = ref_root(&raw, m);
        verify_consistency(m as u64, n as u64, &root_m, &root_n, &got).unwrap();
        for (i, element) in got.iter().enumerate() {
            let mut wrong = got.clone();
            wrong[i] = flip(element, (m * 13 + n + i) % 256);
            assert!(verify_consistency(m as u64, n as u64, &root_m, &root_n, &wrong).is_err());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn inclusion_proofs_match_reference_and_resist_tampering(
        n in 1usize..=300,
        seed in any::<u64>(),
        pick in any::<Index>(),
        element in any::<Index>(),
        bit in 0usize..256,
        other in any::<Index>(),
    ) {
        const EXTRA: usize = 8;
        let raw = seeded_leaves(seed, n + EXTRA);
        let tree = tree_of(&raw);
        let m = pick.index(n);
        let (m64, n64) = (m as u64, n as u64);
        let root = ref_root(&raw, n);
        prop_assert_eq!(tree.root_at_size(n64), root);
        prop_assert_eq!(merkle::root_at(&tree, n64).unwrap(), root);

        let want = hashes(&reference::path(m, &raw[..n]));
        let got = inclusion_proof(&tree, m64, n64).unwrap();
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(&plan_path_proof(&tree, &inclusion_plan(m64, n64).unwrap()), &want);

        let leaf = Hash::from_bytes(raw[m]);
        prop_assert!(verify_inclusion(&leaf, m64, n64, &got, &root).is_ok());
        // The reference's own recursive verifier agrees.
        let raw_path: Vec<reference::H> = got.iter().map(|h| *h.as_bytes()).collect();
        prop_assert_eq!(reference::root_from_path(m, n, &raw[m], &raw_path), Some(*root.as_bytes()));

        // Single-bit flips anywhere.
        if !got.is_empty() {
            let i = element.index(got.len());
            let mut wrong = got.clone();
            wrong[i] = flip(&wrong[i], bit);
            prop_assert!(verify_inclusion(&leaf, m64, n64, &wrong, &root).is_err());
        }
        prop_assert!(verify_inclusion(&flip(&leaf, bit), m64, n64, &got, &root).is_err());
        prop_assert!(verify_inclusion(&leaf, m64, n64, &got, &flip(&root, bit)).is_err());

        // Any other index of the same tree.
        if n > 1 {
            let wrong_index = (m + 1 + other.index(n - 1)) % n;
            prop_assert_ne!(wrong_index, m);
            prop_assert!(verify_inclusion(&leaf, wrong_index as u64, n64, &got, &root).is_err());
        }
        prop_assert!(verify_inclusion(&leaf, n64, n64, &got, &root).is_err());
        // Any other size, against that size's true root.
        for wrong_size in (m + 1..=n + EXTRA).filter(|&s| s != n) {
            let wrong_root = ref_root(&raw, wrong_size);
            prop_assert!(
                verify_inclusion(&leaf, m64, wrong_size as u64, &got, &wrong_root).is_err(),
                "size {} accepted for a proof in size {}", wrong_size, n
            );
        }
        // Truncated and padded proofs.
        if !got.is_empty() {
            prop_assert!(verify_inclusion(&leaf, m64, n64, &got[..got.len() - 1], &root).is_err());
            prop_assert!(verify_inclusion(&leaf, m64, n64, &got[1..], &root).is_err());
        }
        let mut padded = got.clone();
        padded.push(root);
        prop_assert!(verify_inclusion(&leaf, m64, n64, &padded, &root).is_err());
        let mut front_padded = vec![leaf];
        front_padded.extend_from_slice(&got);
        prop_assert!(verify_inclusion(&leaf, m64, n64, &front_padded, &root).is_err());
    }

    #[test]
    fn consistency_proofs_match_reference_and_resist_tampering(
        n in 1usize..=300,
        seed in any::<u64>(),
        pick in any::<Index>(),
        element in any::<Index>(),
        bit in 0usize..256,
    ) {
        const EXTRA: usize = 6;
        let raw = seeded_leaves(seed, n + EXTRA);
        let tree = tree_of(&raw);
        let m = pick.index(n + 1);
        let (m64, n64) = (m as u64, n as u64);
        let (root_m, root_n) = (ref_root(&raw, m), ref_root(&raw, n));
        prop_assert_eq!(tree.root_at_size(m64), root_m);

        let want = hashes(&reference::proof(m, &raw[..n]));
        let got = consistency_proof(&tree, m64, n64).unwrap();
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(&plan_path_proof(&tree, &consistency_plan(m64, n64).unwrap()), &want);
        prop_assert!(verify_consistency(m64, n64, &root_m, &root_n, &got).is_ok());

        if !got.is_empty() {
            let i = element.index(got.len());
            let mut wrong = got.clone();
            wrong[i] = flip(&wrong[i], bit);
            prop_assert!(verify_consistency(m64, n64, &root_m, &root_n, &wrong).is_err());
            prop_assert!(verify_consistency(m64, n64, &root_m, &root_n, &got[..got.len() - 1]).is_err());
            prop_assert!(verify_consistency(m64, n64, &root_m, &root_n, &got[1..]).is_err());
        }
        prop_assert!(verify_consistency(m64, n64, &flip(&root_m, bit), &root_n, &got).is_err());
        // From the empty tree there is nothing to check: every new root is consistent with it.
        prop_assert_eq!(
            verify_consistency(m64, n64, &root_m, &flip(&root_n, bit), &got).is_ok(),
            m == 0
        );
        if root_m != root_n {
            prop_assert!(verify_consistency(m64, n64, &root_n, &root_m, &got).is_err());
        }
        let mut padded = got.clone();
        padded.push(root_n);
        prop_assert!(verify_consistency(m64, n64, &root_m, &root_n, &padded).is_err());

        // Other sizes, each against its own true roots: accepted only where this very proof is
        // also the reference proof of those sizes (e.g. the empty proof of equal sizes).
        for m2 in m.saturating_sub(3)..=(m + 3) {
            for n2 in n.saturating_sub(3)..=(n + EXTRA) {
                if m2 > n2 || (m2, n2) == (m, n) {
                    continue;
                }
                let accepted = verify_consistency(
                    m2 as u64,
                    n2 as u64,
                    &ref_root(&raw, m2),
                    &ref_root(&raw, n2),
                    &got,
                )
                .is_ok();
                let same_proof = hashes(&reference::proof(m2, &raw[..n2])) == got;
                prop_assert_eq!(accepted, same_proof, "sizes {} -> {} for a proof {} -> {}", m2, n2, m, n);
            }
        }
    }

    #[test]
    fn frontier_agrees_with_reference_and_memory_tree(
        n in 0usize..=600,
        seed in any::<u64>(),
        checks in proptest::collection::vec(any::<Index>(), 8),
    ) {
        let raw = seeded_leaves(seed, n);
        let mut tree = MemoryTree::new();
        let mut frontier = Frontier::empty();
        let mut completed: HashSet<NodeId> = HashSet::new();
        let check_sizes: HashSet<usize> = checks.iter().map(|i| i.index(n + 1)).collect();
        prop_assert_eq!(frontier.root(), empty_tree_root());
        for (i, leaf) in hashes(&raw).into_iter().enumerate() {
            let nodes = frontier.append(leaf);
            tree.push(leaf);
            prop_assert_eq!(nodes[0], (NodeId::leaf(i as u64), leaf));
            for (id, hash) in &nodes {
                prop_assert_eq!(tree.read_node(*id).unwrap(), *hash);
                prop_assert!(completed.insert(*id), "node {:?} completed twice", id);
            }
            // Each completed node is the parent of the one before it.
            for pair in nodes.windows(2) {
                prop_assert_eq!(pair[1].0.level, pair[0].0.level + 1);
                prop_assert_eq!(pair[1].0.index, pair[0].0.index / 2);
            }
            let size = i + 1;
            prop_assert_eq!(frontier.tree_size(), size as u64);
            prop_assert_eq!(frontier.root(), tree.root());
            if size <= 64 || check_sizes.contains(&size) {
                prop_assert_eq!(frontier.root(), ref_root(&raw, size));
            }
        }
        // Every complete subtree of the final tree was reported exactly once.
        let expected_nodes: usize = (0..64).map(|level| n >> level).sum();
        prop_assert_eq!(completed.len(), expected_nodes);
        // The frontier is the root decomposition, and survives storage.
        prop_assert_eq!(frontier.node_ids(), root_nodes(n as u64));
        for (id, hash) in frontier.node_ids().iter().zip(frontier.hashes()) {
            prop_assert_eq!(tree.read_node(*id).unwrap(), *hash);
        }
        let stored: HashMap<NodeId, Hash> = frontier
            .node_ids()
            .into_iter()
            .zip(frontier.hashes().iter().copied())
            .collect();
        prop_assert_eq!(assemble_root(n as u64, &stored).unwrap(), ref_root(&raw, n));
        let restored = Frontier::from_bytes(n as u64, &frontier.to_bytes()).unwrap();
        prop_assert_eq!(&restored, &frontier);
        prop_assert!(Frontier::from_bytes(n as u64 + 1, &frontier.to_bytes()).is_err()
            || (n as u64 + 1).count_ones() == (n as u64).count_ones());
        if n > 0 {
            let mut short = frontier.to_bytes();
            short.pop();
            prop_assert!(Frontier::from_bytes(n as u64, &short).is_err());
        }
    }

    #[test]
    fn checkpoint_signer_only_signs_extensions(
        n1 in 0usize..=120,
        extra in 0usize..=60,
        fork in any::<Index>(),
        seed in any::<u64>(),
        bit in 0usize..256,
    ) {
        let n2 = n1 + extra;
        let a = seeded_leaves(seed, n2 + 10);
        let tree_a = tree_of(&a);
        let origin = "companyos.local/tenants/acme";
        let root = |t: &MemoryTree, s: usize| t.root_at_size(s as u64);
        let cp = |t: &MemoryTree, s: usize| Checkpoint::new(origin, s as u64, root(t, s)).unwrap();
        let last = Some((n1 as u64, root(&tree_a, n1)));
        let mut signer = CheckpointSigner::new(crate::common::signer("companyos.local", 3), origin, last);
        let verifier = crate::common::signer("companyos.local", 3).verifier();

        // Wrong origin, shrinking, a changed root at the same size: refused, state unchanged.
        let other_origin = Checkpoint::new("companyos.local/audit", n2 as u64, root(&tree_a, n2)).unwrap();
        let proof = consistency_proof(&tree_a, n1 as u64, n2 as u64).unwrap();
        let refused = matches!(signer.sign(&other_origin, &proof), Err(CheckpointError::WrongOrigin { .. }));
        prop_assert!(refused);
        if n1 > 0 {
            let smaller = cp(&tree_a, n1 - 1);
            let refused = matches!(signer.sign(&smaller, &[]), Err(CheckpointError::Shrinking { .. }));
            prop_assert!(refused);
            let same_size_other_root = Checkpoint::new(origin, n1 as u64, flip(&root(&tree_a, n1), bit)).unwrap();
            let refused = matches!(signer.sign(&same_size_other_root, &[]), Err(CheckpointError::Inconsistent(_)));
            prop_assert!(refused);
        }
        // Any head extends the empty tree, so a changed root is only detectable from size 1 on.
        if n1 > 0 {
            let tampered = Checkpoint::new(origin, n2 as u64, flip(&root(&tree_a, n2), bit)).unwrap();
            let refused = matches!(signer.sign(&tampered, &proof), Err(CheckpointError::Inconsistent(_)));
            prop_assert!(refused);
        }
        if !proof.is_empty() {
            let mut wrong = proof.clone();
            wrong[0] = flip(&wrong[0], bit);
            prop_assert!(signer.sign(&cp(&tree_a, n2), &wrong).is_err());
        }
        prop_assert_eq!(signer.last_signed(), last);

        // The honest extension is signed, and opens with the verifier key.
        let note = signer.sign(&cp(&tree_a, n2), &proof).unwrap();
        let opened = Checkpoint::open(note.to_string().as_bytes(), Some(origin), &verifier).unwrap();
        prop_assert_eq!(&opened, &cp(&tree_a, n2));
        prop_assert_eq!(signer.last_signed(), Some((n2 as u64, root(&tree_a, n2))));
        // Re-signing the same head needs no proof.
        prop_assert!(signer.sign(&cp(&tree_a, n2), &[]).is_ok());

        // A fork: same first k < n2 leaves, then different ones; never signed, whatever proof.
        if n2 > 0 {
            let k = fork.index(n2);
            let mut b = a[..k].to_vec();
            b.extend(seeded_leaves(seed.wrapping_add(1), n2 + 10 - k));
            let tree_b = tree_of(&b);
            for size in [n2, n2 + 1, n2 + 10] {
                let fork_cp = cp(&tree_b, size);
                let fork_proof = consistency_proof(&tree_b, n2 as u64, size as u64).unwrap();
                prop_assert!(signer.sign(&fork_cp, &fork_proof).is_err(), "signed a fork at {} of size {}", k, size);
                if size >= n2 {
                    let honest_proof = consistency_proof(&tree_a, n2 as u64, size as u64).unwrap();
                    prop_assert!(signer.sign(&fork_cp, &honest_proof).is_err());
                }
            }
            prop_assert_eq!(signer.last_signed(), Some((n2 as u64, root(&tree_a, n2))));
        }
    }

    #[test]
    fn signed_checkpoints_round_trip(
        origin in "[a-z0-9][a-z0-9./_-]{0,40}",
        size in any::<u64>(),
        root in any::<[u8; 32]>(),
        extensions in proptest::collection::vec("[ -~]{1,30}", 0..4),
        seed in any::<u8>(),
        position in any::<Index>(),
        xor in 1u8..=255,
    ) {
        let mut checkpoint = Checkpoint::new(&origin, size, Hash::from_bytes(root)).unwrap();
        for line in &extensions {
            checkpoint = checkpoint.with_extension(line).unwrap();
        }
        let text = checkpoint.to_note_text();
        prop_assert_eq!(&Checkpoint::parse_note_text(&text).unwrap(), &checkpoint);
        let key = signer("companyos.local", seed);
        let note = key.sign_note(&text).unwrap().to_string();
        let opened = Checkpoint::open(note.as_bytes(), Some(&origin), &key.verifier()).unwrap();
        prop_assert_eq!(&opened, &checkpoint);
        // Another key, even under the same name, does not open it.
        let other = signer("companyos.local", seed.wrapping_add(1)).verifier();
        prop_assert!(Checkpoint::open(note.as_bytes(), Some(&origin), &other).is_err());
        // Any single-byte change of the signed note is refused.
        let mut bytes = note.into_bytes();
        let i = position.index(bytes.len());
        bytes[i] ^= xor;
        prop_assert!(Checkpoint::open(&bytes, None, &key.verifier()).is_err());
    }
}

#[test]
fn proof_errors_are_specific() {
    let raw = reference::leaf_hashes(10);
    let tree = tree_of(&raw);
    let leaf = Hash::from_bytes(raw[3]);
    let root = tree.root();
    let proof = inclusion_proof(&tree, 3, 10).unwrap();
    assert_eq!(
        verify_inclusion(&leaf, 10, 10, &proof, &root),
        Err(ProofError::LeafIndexOutOfRange {
            leaf_index: 10,
            tree_size: 10
        })
    );
    assert_eq!(
        verify_inclusion(&leaf, 3, 10, &proof[1..], &root),
        Err(ProofError::WrongProofLength {
            expected: proof.len(),
            actual: proof.len() - 1
        })
    );
    assert_eq!(
        verify_inclusion(&leaf, 3, 10, &proof, &flip(&root, 0)),
        Err(ProofError::RootMismatch)
    );
    assert_eq!(
        verify_inclusion(&leaf, 3, merkle::TREE_SIZE_MAX + 1, &proof, &root),
        Err(ProofError::TreeTooLarge {
            tree_size: merkle::TREE_SIZE_MAX + 1
        })
    );
    assert_eq!(
        verify_consistency(5, 4, &root, &root, &[]),
        Err(ProofError::SizesOutOfOrder {
            old_size: 5,
            new_size: 4
        })
    );
    let cproof = consistency_proof(&tree, 6, 10).unwrap();
    assert_eq!(
        verify_consistency(6, 10, &flip(&tree.root_at_size(6), 9), &root, &cproof),
        Err(ProofError::OldRootMismatch)
    );
    assert!(
        inclusion_proof(&tree, 3, 11).is_err(),
        "reading past the stored tree"
    );
    let missing = assemble_proof(&inclusion_plan(3, 10).unwrap(), &HashMap::new());
    assert!(matches!(missing, Err(ProofError::MissingNode(_))));
    // Largest supported trees are handled without overflow.
    let big = merkle::TREE_SIZE_MAX;
    assert_eq!(inclusion_plan(big - 1, big).unwrap().len(), 62);
    // From 2^62 - 1 to 2^62: the 2 leaves at the bottom, then one subtree per level above.
    assert_eq!(consistency_plan(big - 1, big).unwrap().len(), 63);
    assert_eq!(consistency_plan(3, 4).unwrap().len(), 3);
    assert!(inclusion_plan(0, big + 1).is_err());
}
