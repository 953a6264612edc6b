//! Published RFC 6962 vectors: the 8-leaf reference tree of the C++ Certificate Transparency
//! tests, transparency-dev/merkle's verifier tests (with every corruption probe they apply), a
//! sample of transparency-dev/merkle's generated probe files, and real proofs from Google's
//! Argon 2020 CT log as stored in golang/mod's tlog tests.

use companyos_ledger::hash::{empty_tree_root, leaf_hash};
use companyos_ledger::merkle::{
    self, MemoryTree, NodeId, NodeReader, consistency_proof, inclusion_plan, inclusion_proof,
    verify_consistency, verify_inclusion,
};
use companyos_ledger::{Frontier, Hash};
use serde_json::Value;

use crate::common::{b64, hash_hex, hex, str_array, u64_field, vector_json};

/// A hash as a byte string, as the published vectors carry them (some deliberately not 32 bytes).
type Bytes = Vec<u8>;

fn to_hash(bytes: &[u8]) -> Result<Hash, String> {
    Hash::from_slice(bytes).ok_or_else(|| format!("not a 32-byte hash: {} bytes", bytes.len()))
}

fn to_hashes(proof: &[Bytes]) -> Result<Vec<Hash>, String> {
    proof.iter().map(|p| to_hash(p)).collect()
}

/// Inclusion verification from raw byte strings: a value that is not a 32-byte hash cannot be
/// decoded into the typed API and so is a rejection, as in any decoder of the JSON proof format.
fn verify_inclusion_bytes(
    leaf: &[u8],
    index: u64,
    size: u64,
    proof: &[Bytes],
    root: &[u8],
) -> Result<(), String> {
    let leaf = to_hash(leaf)?;
    let root = to_hash(root)?;
    let proof = to_hashes(proof)?;
    verify_inclusion(&leaf, index, size, &proof, &root).map_err(|e| e.to_string())
}

fn verify_consistency_bytes(
    size1: u64,
    size2: u64,
    root1: &[u8],
    root2: &[u8],
    proof: &[Bytes],
) -> Result<(), String> {
    let root1 = to_hash(root1)?;
    let root2 = to_hash(root2)?;
    let proof = to_hashes(proof)?;
    verify_consistency(size1, size2, &root1, &root2, &proof).map_err(|e| e.to_string())
}

fn extend(proof: &[Bytes], extra: &[u8]) -> Vec<Bytes> {
    let mut out = proof.to_vec();
    out.push(extra.to_vec());
    out
}

fn prepend(proof: &[Bytes], first: &[&[u8]]) -> Vec<Bytes> {
    let mut out: Vec<Bytes> = first.iter().map(|h| h.to_vec()).collect();
    out.extend_from_slice(proof);
    out
}

fn hex_list(value: &Value, field: &str) -> Vec<Bytes> {
    str_array(value, field).into_iter().map(hex).collect()
}

/// A probe of an inclusion proof: leaf index, tree size, root, leaf hash, proof, description.
type InclusionProbe = (u64, u64, Bytes, Bytes, Vec<Bytes>, String);

/// transparency-dev/merkle proof/verify_test.go `corruptInclusionProof`, probe for probe.
fn corrupt_inclusion_proof(
    index: u64,
    size: u64,
    proof: &[Bytes],
    root: &[u8],
    leaf: &[u8],
    some_hash: &[u8],
) -> Vec<InclusionProbe> {
    let empty_root = empty_tree_root().as_bytes().to_vec();
    let p = |i: u64, s: u64, r: &[u8], l: &[u8], pr: Vec<Bytes>, d: &str| -> InclusionProbe {
        (i, s, r.to_vec(), l.to_vec(), pr, d.to_owned())
    };
    let mut probes = vec![
        p(
            index.wrapping_sub(1),
            size,
            root,
            leaf,
            proof.to_vec(),
            "leafIndex - 1",
        ),
        p(
            index.wrapping_add(1),
            size,
            root,
            leaf,
            proof.to_vec(),
            "leafIndex + 1",
        ),
        p(index ^ 2, size, root, leaf, proof.to_vec(), "leafIndex ^ 2"),
        p(
            index,
            size.wrapping_mul(2),
            root,
            leaf,
            proof.to_vec(),
            "treeSize * 2",
        ),
        p(index, size / 2, root, leaf, proof.to_vec(), "treeSize / 2"),
        p(
            index,
            size,
            root,
            b"WrongLeaf",
            proof.to_vec(),
            "wrong leaf",
        ),
        p(index, size, &empty_root, leaf, proof.to_vec(), "empty root"),
        p(index, size, some_hash, leaf, proof.to_vec(), "random root"),
        p(
            index,
            size,
            root,
            leaf,
            extend(proof, &[]),
            "trailing garbage",
        ),
        p(
            index,
            size,
            root,
            leaf,
            extend(proof, root),
            "trailing root",
        ),
        p(
            index,
            size,
            root,
            leaf,
            prepend(proof, &[&[]]),
            "preceding garbage",
        ),
        p(
            index,
            size,
            root,
            leaf,
            prepend(proof, &[root]),
            "preceding root",
        ),
    ];
    for i in 0..proof.len() {
        let mut wrong = proof.to_vec();
        wrong[i][0] ^= 8;
        probes.push(p(
            index,
            size,
            root,
            leaf,
            wrong,
            &format!("modified proof[{i}] bit 3"),
        ));
    }
    if !proof.is_empty() {
        let removed = proof[..proof.len() - 1].to_vec();
        probes.push(p(index, size, root, leaf, removed, "removed component"));
    }
    if proof.len() > 1 {
        let inserted = prepend(&proof[1..], &[&proof[0], some_hash]);
        probes.push(p(index, size, root, leaf, inserted, "inserted component"));
    }
    probes
}

/// A probe of a consistency proof: size1, size2, root1, root2, proof, description.
type ConsistencyProbe = (u64, u64, Bytes, Bytes, Vec<Bytes>, String);

/// transparency-dev/merkle proof/verify_test.go `corruptConsistencyProof`, probe for probe.
fn corrupt_consistency_proof(
    size1: u64,
    size2: u64,
    root1: &[u8],
    root2: &[u8],
    proof: &[Bytes],
) -> Vec<ConsistencyProbe> {
    let p = |s1: u64, s2: u64, r1: &[u8], r2: &[u8], pr: Vec<Bytes>, d: &str| -> ConsistencyProbe {
        (s1, s2, r1.to_vec(), r2.to_vec(), pr, d.to_owned())
    };
    let mut probes = vec![
        p(
            size1.wrapping_sub(1),
            size2,
            root1,
            root2,
            proof.to_vec(),
            "size1 - 1",
        ),
        p(size1 + 1, size2, root1, root2, proof.to_vec(), "size1 + 1"),
        p(size1 ^ 2, size2, root1, root2, proof.to_vec(), "size1 ^ 2"),
        p(size1, size2 * 2, root1, root2, proof.to_vec(), "size2 * 2"),
        p(size1, size2 / 2, root1, root2, proof.to_vec(), "size2 / 2"),
        p(
            size1,
            size2,
            b"WrongRoot",
            root2,
            proof.to_vec(),
            "wrong root1",
        ),
        p(
            size1,
            size2,
            root1,
            b"WrongRoot",
            proof.to_vec(),
            "wrong root2",
        ),
        p(size1, size2, root2, root1, proof.to_vec(), "swapped roots"),
        p(size1, size2, root1, root2, Vec::new(), "empty proof"),
        p(
            size1,
            size2,
            root1,
            root2,
            extend(proof, &[]),
            "trailing garbage",
        ),
        p(
            size1,
            size2,
            root1,
            root2,
            extend(proof, root1),
            "trailing root1",
        ),
        p(
            size1,
            size2,
            root1,
            root2,
            extend(proof, root2),
            "trailing root2",
        ),
        p(
            size1,
            size2,
            root1,
            root2,
            prepend(proof, &[&[]]),
            "preceding garbage",
        ),
        p(
            size1,
            size2,
            root1,
            root2,
            prepend(proof, &[root1]),
            "preceding root1",
        ),
        p(
            size1,
            size2,
            root1,
            root2,
            prepend(proof, &[root2]),
            "preceding root2",
        ),
        p(
            size1,
            size2,
            root1,
            root2,
            prepend(proof, &[&proof[0]]),
            "preceding proof[0]",
        ),
    ];
    if !proof.is_empty() {
        let truncated = proof[..proof.len() - 1].to_vec();
        probes.push(p(size1, size2, root1, root2, truncated, "truncated proof"));
    }
    for i in 0..proof.len() {
        let mut wrong = proof.to_vec();
        wrong[i][0] ^= 16;
        probes.push(p(
            size1,
            size2,
            root1,
            root2,
            wrong,
            &format!("modified proof[{i}] bit 4"),
        ));
    }
    probes
}

fn ct_tree(inputs: &[Bytes]) -> MemoryTree {
    MemoryTree::from_leaf_hashes(inputs.iter().map(|d| leaf_hash(d)))
}

#[test]
fn ct_cpp_reference_tree_roots() {
    let v = vector_json("rfc6962/ct-cpp-merkle-tree-test.json");
    let inputs = hex_list(&v, "inputs");
    let roots: Vec<Hash> = str_array(&v, "roots").into_iter().map(hash_hex).collect();
    let level_counts: Vec<u64> = v["level_counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect();
    assert_eq!(
        empty_tree_root(),
        hash_hex(v["empty_tree_hash"].as_str().unwrap())
    );
    assert_eq!(MemoryTree::new().root(), empty_tree_root());
    assert_eq!(Frontier::empty().root(), empty_tree_root());

    // Leaf by leaf, as the C++ RootTestVectors test builds tree1.
    let mut tree = MemoryTree::new();
    let mut frontier = Frontier::empty();
    for (i, data) in inputs.iter().enumerate() {
        tree.push(leaf_hash(data));
        frontier.append(leaf_hash(data));
        assert_eq!(
            tree.root(),
            roots[i],
            "MemoryTree root after {} leaves",
            i + 1
        );
        assert_eq!(
            frontier.root(),
            roots[i],
            "Frontier root after {} leaves",
            i + 1
        );
        assert_eq!(tree.root_at_size(0), empty_tree_root());
        for (j, root) in roots.iter().enumerate().take(i + 1) {
            assert_eq!(tree.root_at_size(j as u64 + 1), *root);
        }
        // The tree height (C++ LevelCount) is one more than the audit path of the first leaf.
        let height = inclusion_plan(0, i as u64 + 1).unwrap().len() as u64 + 1;
        assert_eq!(height, level_counts[i]);
    }
    // In two chunks, as tree3: 3 leaves, then 5 more, from a stored frontier.
    let mut first = Frontier::empty();
    for data in &inputs[..3] {
        first.append(leaf_hash(data));
    }
    assert_eq!(first.root(), roots[2]);
    let mut resumed = Frontier::from_bytes(3, &first.to_bytes()).unwrap();
    for data in &inputs[3..] {
        resumed.append(leaf_hash(data));
    }
    assert_eq!(resumed.root(), roots[7]);
}

#[test]
fn ct_cpp_reference_tree_paths() {
    let v = vector_json("rfc6962/ct-cpp-merkle-tree-test.json");
    let inputs = hex_list(&v, "inputs");
    let roots: Vec<Hash> = str_array(&v, "roots").into_iter().map(hash_hex).collect();
    let tree = ct_tree(&inputs);
    let empty = empty_tree_root().as_bytes().to_vec();
    for vector in v["paths"].as_array().unwrap() {
        let leaf = u64_field(vector, "leaf");
        let snapshot = u64_field(vector, "snapshot");
        let path: Vec<Hash> = str_array(vector, "path")
            .into_iter()
            .map(hash_hex)
            .collect();
        if leaf == 0 {
            // The C++ test's invalid path: leaf 0 of an empty tree has no proof.
            assert!(inclusion_plan(0, snapshot).is_err());
            continue;
        }
        let index = leaf - 1;
        let generated = inclusion_proof(&tree, index, snapshot).unwrap();
        assert_eq!(generated, path, "path of leaf {leaf} in tree {snapshot}");

        // MerkleVerifierTest::VerifierCheck, probe for probe.
        let root = roots[snapshot as usize - 1];
        let data = &inputs[index as usize];
        let lh = leaf_hash(data);
        assert_eq!(
            merkle::root_from_inclusion_proof(&lh, index, snapshot, &path).unwrap(),
            root
        );
        verify_inclusion(&lh, index, snapshot, &path, &root).unwrap();
        let bytes: Vec<Bytes> = path.iter().map(|h| h.as_bytes().to_vec()).collect();
        let root_b = root.as_bytes().to_vec();
        let lh_b = lh.as_bytes().to_vec();
        let reject = |i: u64, s: u64, pr: &[Bytes], r: &[u8], l: &[u8], what: &str| {
            assert!(
                verify_inclusion_bytes(l, i, s, pr, r).is_err(),
                "accepted {what} for leaf {leaf} in tree {snapshot}"
            );
        };
        reject(
            index.wrapping_sub(1),
            snapshot,
            &bytes,
            &root_b,
            &lh_b,
            "leaf - 1",
        );
        reject(index + 1, snapshot, &bytes, &root_b, &lh_b, "leaf + 1");
        reject(index ^ 2, snapshot, &bytes, &root_b, &lh_b, "leaf ^ 2");
        reject(index, snapshot * 2, &bytes, &root_b, &lh_b, "size * 2");
        reject(index, snapshot / 2, &bytes, &root_b, &lh_b, "size / 2");
        let wrong_leaf = leaf_hash(b"WrongLeaf").as_bytes().to_vec();
        reject(index, snapshot, &bytes, &root_b, &wrong_leaf, "wrong leaf");
        reject(index, snapshot, &bytes, &empty, &lh_b, "wrong root");
        for j in 0..bytes.len() {
            let mut wrong = bytes.clone();
            wrong[j] = empty.clone();
            reject(index, snapshot, &wrong, &root_b, &lh_b, "modified element");
        }
        reject(
            index,
            snapshot,
            &extend(&bytes, &[]),
            &root_b,
            &lh_b,
            "garbage at end",
        );
        reject(
            index,
            snapshot,
            &extend(&bytes, &root_b),
            &root_b,
            &lh_b,
            "root at end",
        );
        if !bytes.is_empty() {
            let shorter = &bytes[..bytes.len() - 1];
            reject(index, snapshot, shorter, &root_b, &lh_b, "removed last");
        }
        reject(
            index,
            snapshot,
            &prepend(&bytes, &[&[]]),
            &root_b,
            &lh_b,
            "garbage first",
        );
        reject(
            index,
            snapshot,
            &prepend(&bytes, &[&root_b]),
            &root_b,
            &lh_b,
            "root first",
        );
    }
}

#[test]
fn ct_cpp_reference_tree_consistency() {
    let v = vector_json("rfc6962/ct-cpp-merkle-tree-test.json");
    let inputs = hex_list(&v, "inputs");
    let roots: Vec<Hash> = str_array(&v, "roots").into_iter().map(hash_hex).collect();
    let tree = ct_tree(&inputs);
    let empty = empty_tree_root().as_bytes().to_vec();
    for vector in v["consistency_proofs"].as_array().unwrap() {
        let s1 = u64_field(vector, "snapshot1");
        let s2 = u64_field(vector, "snapshot2");
        let proof: Vec<Hash> = str_array(vector, "proof")
            .into_iter()
            .map(hash_hex)
            .collect();
        assert_eq!(
            consistency_proof(&tree, s1, s2).unwrap(),
            proof,
            "{s1} -> {s2}"
        );
        let (r1, r2) = (roots[s1 as usize - 1], roots[s2 as usize - 1]);
        verify_consistency(s1, s2, &r1, &r2, &proof).unwrap();
        if proof.is_empty() {
            continue;
        }
        // MerkleVerifierTest::VerifierConsistencyCheck, probe for probe.
        let bytes: Vec<Bytes> = proof.iter().map(|h| h.as_bytes().to_vec()).collect();
        let (r1b, r2b) = (r1.as_bytes().to_vec(), r2.as_bytes().to_vec());
        let reject = |a: u64, b: u64, x: &[u8], y: &[u8], pr: &[Bytes], what: &str| {
            assert!(
                verify_consistency_bytes(a, b, x, y, pr).is_err(),
                "accepted {what} for {s1} -> {s2}"
            );
        };
        reject(s1 - 1, s2, &r1b, &r2b, &bytes, "snapshot1 - 1");
        reject(s1 + 1, s2, &r1b, &r2b, &bytes, "snapshot1 + 1");
        reject(s1 ^ 2, s2, &r1b, &r2b, &bytes, "snapshot1 ^ 2");
        reject(s1, s2 * 2, &r1b, &r2b, &bytes, "snapshot2 * 2");
        reject(s1, s2 / 2, &r1b, &r2b, &bytes, "snapshot2 / 2");
        reject(s1, s2, &r1b, b"WrongRoot", &bytes, "wrong root2");
        reject(s1, s2, b"WrongRoot", &r2b, &bytes, "wrong root1");
        reject(s1, s2, &r2b, &r1b, &bytes, "swapped roots");
        reject(s1, s2, &r1b, &r2b, &[], "empty proof");
        for j in 0..bytes.len() {
            let mut wrong = bytes.clone();
            wrong[j] = empty.clone();
            reject(s1, s2, &r1b, &r2b, &wrong, "modified element");
        }
        reject(s1, s2, &r1b, &r2b, &extend(&bytes, &[]), "garbage at end");
        let last = bytes.last().unwrap().clone();
        reject(s1, s2, &r1b, &r2b, &extend(&bytes, &last), "last repeated");
        reject(
            s1,
            s2,
            &r1b,
            &r2b,
            &bytes[..bytes.len() - 1],
            "removed last",
        );
        reject(
            s1,
            s2,
            &r1b,
            &r2b,
            &prepend(&bytes, &[&[]]),
            "garbage first",
        );
        let first = bytes[0].clone();
        reject(
            s1,
            s2,
            &r1b,
            &r2b,
            &prepend(&bytes, &[&first]),
            "first repeated",
        );
    }
}

#[test]
fn ct_cpp_invalid_paths_and_trivial_consistency() {
    // MerkleVerifierTest.VerifyPath: empty proofs with impossible index/size never verify.
    let empty = empty_tree_root();
    for (index, size) in [(0u64, 0u64), (0, 1), (1, 0), (2, 1)] {
        let empty_leaf = leaf_hash(b"");
        assert!(verify_inclusion(&empty_leaf, index, size, &[], &empty).is_err());
    }
    // MerkleVerifierTest.VerifyConsistencyProof, for the cases the typed API can express.
    let root = hash_hex("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    verify_consistency(0, 0, &empty, &empty, &[]).unwrap();
    verify_consistency(0, 1, &empty, &root, &[]).unwrap();
    verify_consistency(1, 1, &root, &root, &[]).unwrap();
    assert!(verify_consistency(1, 0, &root, &empty, &[]).is_err());
    assert!(verify_consistency(2, 1, &root, &empty, &[]).is_err());
    assert!(verify_consistency(1, 2, &root, &empty, &[]).is_err());
    assert!(verify_consistency(0, 0, &empty, &root, &[]).is_err());
    assert!(verify_consistency(1, 1, &empty, &root, &[]).is_err());
    assert!(verify_consistency(0, 0, &empty, &empty, &[empty]).is_err());
    assert!(verify_consistency(0, 1, &empty, &empty, &[empty]).is_err());
    assert!(verify_consistency(1, 1, &empty, &empty, &[empty]).is_err());
}

#[test]
fn transparency_dev_inclusion_vectors_and_corruptions() {
    let v = vector_json("rfc6962/transparency-dev-verify-test.json");
    let leaves = hex_list(&v, "leaves");
    let roots = hex_list(&v, "roots");
    let some_hash = hex(v["sha256_some_hash"].as_str().unwrap());
    let tree = ct_tree(&leaves);
    let vectors = v["inclusion_proofs"].as_array().unwrap();
    // i = 0 is the invalid path {0, 0}, as in TestVerifyInclusion.
    assert_eq!(u64_field(&vectors[0], "size"), 0);
    let mut probes_run = 0;
    for vector in &vectors[1..] {
        let leaf = u64_field(vector, "leaf");
        let size = u64_field(vector, "size");
        let proof = hex_list(vector, "proof");
        let index = leaf - 1;
        let root = &roots[size as usize - 1];
        let lh = leaf_hash(&leaves[index as usize]).as_bytes().to_vec();
        let generated: Vec<Bytes> = inclusion_proof(&tree, index, size)
            .unwrap()
            .iter()
            .map(|h| h.as_bytes().to_vec())
            .collect();
        assert_eq!(
            generated, proof,
            "generated proof of leaf {index} in {size}"
        );
        verify_inclusion_bytes(&lh, index, size, &proof, root).unwrap();
        for (i, s, r, l, p, desc) in
            corrupt_inclusion_proof(index, size, &proof, root, &lh, &some_hash)
        {
            probes_run += 1;
            assert!(
                verify_inclusion_bytes(&l, i, s, &p, &r).is_err(),
                "incorrectly verified against {desc} (leaf {index}, size {size})"
            );
        }
    }
    assert!(probes_run > 60, "only {probes_run} probes");

    // TestVerifyInclusion's static probes.
    let empty = hex(v["sha256_empty_tree_hash"].as_str().unwrap());
    for pair in v["static_inclusion_probes"]["index_size"]
        .as_array()
        .unwrap()
    {
        let (index, size) = (pair[0].as_u64().unwrap(), pair[1].as_u64().unwrap());
        assert!(verify_inclusion_bytes(&some_hash, index, size, &[], &[]).is_err());
        assert!(verify_inclusion_bytes(&[], index, size, &[], &empty).is_err());
        assert!(verify_inclusion_bytes(&some_hash, index, size, &[], &empty).is_err());
    }

    // TestVerifyInclusionSingleEntry.
    let hash = leaf_hash(b"data").as_bytes().to_vec();
    verify_inclusion_bytes(&hash, 0, 1, &[], &hash).unwrap();
    assert!(verify_inclusion_bytes(&[], 0, 1, &[], &hash).is_err());
    assert!(verify_inclusion_bytes(&hash, 0, 1, &[], &[]).is_err());
    assert!(verify_inclusion_bytes(&[], 0, 1, &[], &[]).is_err());
}

#[test]
fn transparency_dev_consistency_vectors_and_corruptions() {
    let v = vector_json("rfc6962/transparency-dev-verify-test.json");
    let leaves = hex_list(&v, "leaves");
    let roots = hex_list(&v, "roots");
    let tree = ct_tree(&leaves);
    let mut probes_run = 0;
    for vector in v["consistency_proofs"].as_array().unwrap() {
        let size1 = u64_field(vector, "size1");
        let size2 = u64_field(vector, "size2");
        let proof = hex_list(vector, "proof");
        let (root1, root2) = (&roots[size1 as usize - 1], &roots[size2 as usize - 1]);
        let generated: Vec<Bytes> = consistency_proof(&tree, size1, size2)
            .unwrap()
            .iter()
            .map(|h| h.as_bytes().to_vec())
            .collect();
        assert_eq!(generated, proof, "generated proof {size1} -> {size2}");
        verify_consistency_bytes(size1, size2, root1, root2, &proof).unwrap();
        if proof.is_empty() {
            continue;
        }
        for (s1, s2, r1, r2, p, desc) in
            corrupt_consistency_proof(size1, size2, root1, root2, &proof)
        {
            probes_run += 1;
            assert!(
                verify_consistency_bytes(s1, s2, &r1, &r2, &p).is_err(),
                "incorrectly verified against {desc} ({size1} -> {size2})"
            );
        }
    }
    assert!(probes_run > 70, "only {probes_run} probes");
}

/// A hash field of the static consistency probes: hex, or `text:` for the deliberately invalid
/// non-hash strings of the Go test ("don't care 1").
fn probe_bytes(text: &str) -> Bytes {
    match text.strip_prefix("text:") {
        Some(raw) => raw.as_bytes().to_vec(),
        None => hex(text),
    }
}

#[test]
fn transparency_dev_static_consistency_probes() {
    let v = vector_json("rfc6962/transparency-dev-verify-test.json");
    for probe in v["static_consistency_probes"].as_array().unwrap() {
        let size1 = u64_field(probe, "size1");
        let size2 = u64_field(probe, "size2");
        let root1 = probe_bytes(probe["root1"].as_str().unwrap());
        let root2 = probe_bytes(probe["root2"].as_str().unwrap());
        let proof: Vec<Bytes> = str_array(probe, "proof").into_iter().map(hex).collect();
        let want_err = probe["want_err"].as_bool().unwrap();
        let got = verify_consistency_bytes(size1, size2, &root1, &root2, &proof);
        if want_err {
            assert!(got.is_err(), "accepted {probe}");
            continue;
        }
        // The three "always consistent" probes use 12-byte placeholder roots that no typed
        // 32-byte API can hold. They are checked with real 32-byte stand-ins: equal sizes with
        // equal roots pass; from size 0 this crate additionally requires the old root to be the
        // empty-tree hash (a deliberate tightening, see tests/vectors/README.md).
        assert!(got.is_err(), "placeholder roots are not hashes");
        let r1 = companyos_ledger::hash::sha256(&root1);
        let r2 = companyos_ledger::hash::sha256(&root2);
        if size1 == 0 && size2 != 0 {
            assert!(verify_consistency(size1, size2, &r1, &r2, &[]).is_err());
            verify_consistency(size1, size2, &empty_tree_root(), &r2, &[]).unwrap();
        } else {
            verify_consistency(size1, size2, &r1, &r2, &[]).unwrap();
        }
    }
}

#[test]
fn transparency_dev_generated_probe_files() {
    let dir = crate::common::vector_path("rfc6962/transparency-dev-testdata");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(names.len() >= 15);
    for name in names {
        let probe = vector_json(&format!("rfc6962/transparency-dev-testdata/{name}"));
        let want_err = probe["wantErr"].as_bool().unwrap();
        let proof: Vec<Bytes> = str_array(&probe, "proof").into_iter().map(b64).collect();
        let got = if name.starts_with("inclusion") {
            verify_inclusion_bytes(
                &b64(probe["leafHash"].as_str().unwrap()),
                u64_field(&probe, "leafIdx"),
                u64_field(&probe, "treeSize"),
                &proof,
                &b64(probe["root"].as_str().unwrap()),
            )
        } else {
            verify_consistency_bytes(
                u64_field(&probe, "size1"),
                u64_field(&probe, "size2"),
                &b64(probe["root1"].as_str().unwrap()),
                &b64(probe["root2"].as_str().unwrap()),
                &proof,
            )
        };
        assert_eq!(got.is_err(), want_err, "{name}: {got:?}");
    }
}

#[test]
fn argon2020_ct_log_inclusion_and_consistency() {
    let sth = vector_json("rfc6962/go-sumdb-argon2020/sth.json");
    let entries = vector_json("rfc6962/go-sumdb-argon2020/entries.json");
    let proof_json = vector_json("rfc6962/go-sumdb-argon2020/proof.json");
    let consistency_json = vector_json("rfc6962/go-sumdb-argon2020/consistency.json");

    let tree_size = u64_field(&sth, "tree_size");
    let root = Hash::from_base64(sth["sha256_root_hash"].as_str().unwrap()).unwrap();
    let leaf_input = b64(entries["entries"][0]["leaf_input"].as_str().unwrap());
    let index = u64_field(&proof_json, "leaf_index");
    let audit_path: Vec<Hash> = str_array(&proof_json, "audit_path")
        .into_iter()
        .map(|h| Hash::from_base64(h).unwrap())
        .collect();
    assert_eq!((index, tree_size), (10_000, 961_984_013));
    assert_eq!(
        audit_path.len(),
        inclusion_plan(index, tree_size).unwrap().len()
    );

    let lh = leaf_hash(&leaf_input);
    verify_inclusion(&lh, index, tree_size, &audit_path, &root).unwrap();
    for bit in [0, 77, 255] {
        assert!(
            verify_inclusion(
                &crate::common::flip(&lh, bit),
                index,
                tree_size,
                &audit_path,
                &root
            )
            .is_err()
        );
        assert!(
            verify_inclusion(
                &lh,
                index,
                tree_size,
                &audit_path,
                &crate::common::flip(&root, bit)
            )
            .is_err()
        );
        for i in 0..audit_path.len() {
            let mut wrong = audit_path.clone();
            wrong[i] = crate::common::flip(&wrong[i], bit);
            assert!(verify_inclusion(&lh, index, tree_size, &wrong, &root).is_err());
        }
    }
    assert!(verify_inclusion(&lh, index + 1, tree_size, &audit_path, &root).is_err());
    assert!(verify_inclusion(&lh, index, tree_size * 2, &audit_path, &root).is_err());
    assert!(verify_inclusion(&lh, index, tree_size / 2, &audit_path, &root).is_err());
    // An inclusion proof binds the tree size only through its shape: leaf 10000 has the same
    // path shape in trees of 961984013 and 961984014 leaves, so the same proof and root pass for
    // both. What binds size and root together is the signed checkpoint, which is why a verifier
    // must take both from one verified checkpoint (docs/spec/ledger.md).
    assert!(verify_inclusion(&lh, index, tree_size + 1, &audit_path, &root).is_ok());

    let old_size = 3_654_490;
    let old_root = Hash::from_base64("AuIZ5V6sDUj1vn3Y1K85oOaQ7y+FJJKtyRTl1edIKBQ=").unwrap();
    let proof: Vec<Hash> = str_array(&consistency_json, "consistency")
        .into_iter()
        .map(|h| Hash::from_base64(h).unwrap())
        .collect();
    verify_consistency(old_size, tree_size, &old_root, &root, &proof).unwrap();
    assert!(verify_consistency(old_size, tree_size, &root, &old_root, &proof).is_err());
    assert!(verify_consistency(old_size + 1, tree_size, &old_root, &root, &proof).is_err());
    assert!(verify_consistency(old_size, tree_size / 2, &old_root, &root, &proof).is_err());
    assert!(verify_consistency(old_size, tree_size * 2, &old_root, &root, &proof).is_err());
    // As with inclusion, a neighbouring new size of the same path shape passes with the same
    // roots: sizes are bound to roots by the signed checkpoints, not by the proof.
    assert!(verify_consistency(old_size, tree_size - 1, &old_root, &root, &proof).is_ok());
    for i in 0..proof.len() {
        let mut wrong = proof.clone();
        wrong[i] = crate::common::flip(&wrong[i], 3);
        assert!(verify_consistency(old_size, tree_size, &old_root, &root, &wrong).is_err());
    }
}

#[test]
fn node_ids_address_complete_subtrees() {
    // A sanity check of the NodeId addressing the vectors rely on: level-1 node 1 of the
    // reference tree is the hash of leaves 2 and 3.
    let v = vector_json("rfc6962/ct-cpp-merkle-tree-test.json");
    let tree = ct_tree(&hex_list(&v, "inputs"));
    let expected = companyos_ledger::node_hash(&leaf_hash(&hex("10")), &leaf_hash(&hex("2021")));
    assert_eq!(tree.read_node(NodeId::new(1, 1)).unwrap(), expected);
    assert_eq!(NodeId::new(1, 1).first_leaf(), 2);
    assert_eq!(NodeId::new(1, 1).end_leaf(), 4);
    assert_eq!(
        tree.read_node(NodeId::new(3, 0)).unwrap(),
        hash_hex(v["roots"][7].as_str().unwrap())
    );
}
