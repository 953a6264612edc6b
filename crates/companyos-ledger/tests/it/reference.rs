//! A naive reference implementation of RFC 9162 §2.1, written straight from the recursive
//! definitions (MTH, PATH, PROOF/SUBPROOF) and the verification algorithms, with no shared code
//! with the crate under test beyond SHA-256 itself.

use sha2::{Digest, Sha256};

pub type H = [u8; 32];

fn sha256(parts: &[&[u8]]) -> H {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// SHA-256(0x00 || data).
pub fn leaf(data: &[u8]) -> H {
    sha256(&[&[0u8], data])
}

/// SHA-256(0x01 || left || right).
pub fn node(left: &H, right: &H) -> H {
    sha256(&[&[1u8], left, right])
}

/// The largest power of two strictly smaller than `n` (n > 1).
fn split(n: usize) -> usize {
    assert!(n > 1);
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH(D[n]) over leaf hashes.
pub fn mth(leaves: &[H]) -> H {
    match leaves.len() {
        0 => sha256(&[]),
        1 => leaves[0],
        n => {
            let k = split(n);
            node(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// PATH(m, D[n]): the audit path of leaf `m`.
pub fn path(m: usize, leaves: &[H]) -> Vec<H> {
    let n = leaves.len();
    assert!(m < n);
    if n == 1 {
        return Vec::new();
    }
    let k = split(n);
    if m < k {
        let mut p = path(m, &leaves[..k]);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = path(m - k, &leaves[k..]);
        p.push(mth(&leaves[..k]));
        p
    }
}

/// PROOF(m, D[n]): the consistency proof from the first `m` leaves to all of them.
pub fn proof(m: usize, leaves: &[H]) -> Vec<H> {
    assert!(m <= leaves.len());
    if m == 0 {
        return Vec::new();
    }
    subproof(m, leaves, true)
}

fn subproof(m: usize, leaves: &[H], b: bool) -> Vec<H> {
    let n = leaves.len();
    if m == n {
        return if b { Vec::new() } else { vec![mth(leaves)] };
    }
    let k = split(n);
    if m <= k {
        let mut p = subproof(m, &leaves[..k], b);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = subproof(m - k, &leaves[k..], false);
        p.push(mth(&leaves[..k]));
        p
    }
}

/// Recomputes the root from an audit path by descending the recursive definition (not the
/// bit-twiddling algorithm the crate uses): `None` if the path has the wrong length.
pub fn root_from_path(m: usize, n: usize, leaf_hash: &H, path: &[H]) -> Option<H> {
    fn go(m: usize, n: usize, leaf_hash: &H, path: &[H]) -> Option<H> {
        if n == 1 {
            return path.is_empty().then_some(*leaf_hash);
        }
        let (sibling, rest) = path.split_last()?;
        let k = split(n);
        if m < k {
            Some(node(&go(m, k, leaf_hash, rest)?, sibling))
        } else {
            Some(node(sibling, &go(m - k, n - k, leaf_hash, rest)?))
        }
    }
    if m >= n {
        return None;
    }
    go(m, n, leaf_hash, path)
}

/// Exhaustive pairs: every (m, n) with 1 <= n <= max_n and 0 <= m <= n.
pub fn all_pairs(max_n: usize) -> impl Iterator<Item = (usize, usize)> {
    (1..=max_n).flat_map(|n| (0..=n).map(move |m| (m, n)))
}

/// Deterministic distinct leaf data for tests: "leaf-<i>".
pub fn leaf_hashes(n: usize) -> Vec<H> {
    (0..n)
        .map(|i| leaf(format!("leaf-{i}").as_bytes()))
        .collect()
}
