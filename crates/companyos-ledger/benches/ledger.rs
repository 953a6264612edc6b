//! Benchmarks of the ledger core, each beside a baseline of raw SHA-256 over the same bytes in
//! the same run: leaf hashing, the root of 1,000,000 leaves (Frontier appends and MemoryTree),
//! inclusion and consistency proof generation and verification in a 1,000,000-leaf tree.
//!
//! `cargo bench -p companyos-ledger` (results in docs/BENCHMARKS.md).

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use companyos_ledger::Frontier;
use companyos_ledger::hash::{Hash, leaf_hash};
use companyos_ledger::leaf::{EventClass, UsageLeaf};
use companyos_ledger::merkle::{
    MemoryTree, NodeId, NodeReader, assemble_proof, consistency_plan, consistency_proof,
    inclusion_plan, inclusion_proof, required_nodes, verify_consistency, verify_inclusion,
};
use companyos_ledger::usage_event::EventDigest;
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use sha2::{Digest, Sha256};

const LEAVES: u64 = 1_000_000;
/// Bytes hashed per interior node: 0x01 || left || right.
const NODE_INPUT: usize = 65;

fn usage_leaf(i: u64) -> Vec<u8> {
    UsageLeaf {
        tenant_id: "acme-corporation".to_owned(),
        leaf_index: i,
        event_id: format!("evt-{i:012}"),
        digest: EventDigest::of_canonical(format!("event {i}").as_bytes()),
        class: EventClass::OnTime,
    }
    .to_bytes()
}

fn leaf_hashes(n: u64) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect()
}

/// Raw SHA-256 over `count` distinct 65-byte inputs: the work of `count` node hashes.
fn sha256_nodes(count: usize) -> [u8; 32] {
    let mut block = [0x5au8; NODE_INPUT];
    let mut acc = [0u8; 32];
    for i in 0..count {
        block[1..9].copy_from_slice(&(i as u64).to_le_bytes());
        let digest: [u8; 32] = Sha256::digest(block).into();
        acc[0] ^= digest[0];
    }
    acc
}

/// The number of node hashes `verify_consistency` computes for a proof from `m` to `n`
/// (RFC 9162 §2.1.4.2: two per left sibling, one per right sibling).
fn consistency_hash_count(m: u64, n: u64, proof_len: usize) -> usize {
    let mut path_len = proof_len;
    if m.is_power_of_two() {
        path_len += 1;
    }
    let (mut fnode, mut snode) = (m - 1, n - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let mut count = 0;
    for _ in 1..path_len {
        if fnode & 1 == 1 || fnode == snode {
            count += 2;
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            count += 1;
        }
        fnode >>= 1;
        snode >>= 1;
    }
    count
}

fn plan_and_assemble(tree: &MemoryTree, plan: &[companyos_ledger::merkle::LeafRange]) -> Vec<Hash> {
    let nodes: HashMap<NodeId, Hash> = required_nodes(plan)
        .into_iter()
        .map(|id| (id, tree.read_node(id).expect("stored node")))
        .collect();
    assemble_proof(plan, &nodes).expect("all nodes fetched")
}

fn bench_leaf_hash(c: &mut Criterion) {
    let data = usage_leaf(123_456);
    let mut prefixed = vec![0x00];
    prefixed.extend_from_slice(&data);
    let mut group = c.benchmark_group("leaf_hash");
    group.throughput(Throughput::Bytes(prefixed.len() as u64));
    group.bench_function("usage_leaf", |b| b.iter(|| leaf_hash(black_box(&data))));
    group.bench_function("sha256_baseline", |b| {
        b.iter(|| Sha256::digest(black_box(&prefixed)))
    });
    group.finish();
}

fn bench_root(c: &mut Criterion) {
    let leaves = leaf_hashes(LEAVES);
    let nodes = (LEAVES - 1) as usize;
    let mut group = c.benchmark_group("root_1m_leaves");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Bytes((nodes * NODE_INPUT) as u64));
    group.bench_function("frontier_append", |b| {
        b.iter(|| {
            let mut frontier = Frontier::empty();
            for leaf in &leaves {
                black_box(frontier.append(*leaf));
            }
            frontier.root()
        })
    });
    group.bench_function("memory_tree", |b| {
        b.iter(|| MemoryTree::from_leaf_hashes(leaves.iter().copied()).root())
    });
    group.bench_function("sha256_baseline", |b| b.iter(|| sha256_nodes(nodes)));
    group.finish();
}

fn bench_inclusion(c: &mut Criterion) {
    let tree = MemoryTree::from_leaf_hashes(leaf_hashes(LEAVES));
    let root = tree.root();
    let index = 123_457;
    let leaf = tree.read_node(NodeId::leaf(index)).expect("leaf");
    let proof = inclusion_proof(&tree, index, LEAVES).expect("proof");
    let mut group = c.benchmark_group("inclusion_1m_leaves");
    group.throughput(Throughput::Bytes((proof.len() * NODE_INPUT) as u64));
    // Proof generation for varying leaves.
    let mut next = 1u64;
    group.bench_function("generate_memory_tree", |b| {
        b.iter(|| {
            next = next
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            inclusion_proof(&tree, (next >> 20) % LEAVES, LEAVES).expect("proof")
        })
    });
    group.bench_function("generate_plan_assemble", |b| {
        b.iter(|| {
            next = next
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let plan = inclusion_plan((next >> 20) % LEAVES, LEAVES).expect("plan");
            plan_and_assemble(&tree, &plan)
        })
    });
    group.bench_function("verify", |b| {
        b.iter(|| {
            verify_inclusion(black_box(&leaf), index, LEAVES, black_box(&proof), &root)
                .expect("verifies")
        })
    });
    group.bench_with_input(
        BenchmarkId::new("sha256_baseline", format!("{}x65B", proof.len())),
        &proof.len(),
        |b, &count| b.iter(|| sha256_nodes(count)),
    );
    group.finish();
}

fn bench_consistency(c: &mut Criterion) {
    let tree = MemoryTree::from_leaf_hashes(leaf_hashes(LEAVES));
    let old_size = 700_001;
    let (old_root, new_root) = (tree.root_at_size(old_size), tree.root());
    let proof = consistency_proof(&tree, old_size, LEAVES).expect("proof");
    let hashes = consistency_hash_count(old_size, LEAVES, proof.len());
    let mut group = c.benchmark_group("consistency_1m_leaves");
    group.throughput(Throughput::Bytes((hashes * NODE_INPUT) as u64));
    let mut next = 7u64;
    group.bench_function("generate_memory_tree", |b| {
        b.iter(|| {
            next = next
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let old = 1 + (next >> 20) % (LEAVES - 1);
            consistency_proof(&tree, old, LEAVES).expect("proof")
        })
    });
    group.bench_function("generate_plan_assemble", |b| {
        b.iter(|| {
            next = next
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let old = 1 + (next >> 20) % (LEAVES - 1);
            plan_and_assemble(&tree, &consistency_plan(old, LEAVES).expect("plan"))
        })
    });
    group.bench_function("verify", |b| {
        b.iter(|| {
            verify_consistency(old_size, LEAVES, &old_root, &new_root, black_box(&proof))
                .expect("verifies")
        })
    });
    group.bench_with_input(
        BenchmarkId::new("sha256_baseline", format!("{hashes}x65B")),
        &hashes,
        |b, &count| b.iter(|| sha256_nodes(count)),
    );
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_leaf_hash, bench_root, bench_inclusion, bench_consistency
}
criterion_main!(benches);
