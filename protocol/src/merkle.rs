//! Merkle tree hashing for the audit log, as specified by RFC 9162 (Certificate Transparency
//! version 2.0) §2.1.
//!
//! The relay keeps the log's leaf hashes in storage and calls the free functions here to build
//! tree heads and proofs; clients keep the last tree head they saw and call [`verify_inclusion`]
//! and [`verify_consistency`], so a relay that rewrites, truncates or forks the log is caught
//! (docs/design.md §4). Everything is a pure function of its arguments: no I/O, no clock.
//!
//! We follow the RFC byte for byte rather than inventing a tree shape, because a log that no
//! other implementation can check proves nothing to an auditor. Leaves and interior nodes are
//! hashed with different one-byte prefixes so that an interior node can never be passed off as
//! a leaf (a second-preimage attack on the tree):
//!
//! ```text
//! leaf_hash(entry)        = SHA-256(0x00 || entry)
//! node_hash(left, right)  = SHA-256(0x01 || left || right)
//! root([])                = SHA-256("")
//! root([h])               = h
//! root(D[0..n])           = node_hash(root(D[0..k]), root(D[k..n]))
//!                           where k is the largest power of two smaller than n
//! ```
//!
//! Proof generation is O(n) hashes per proof: correctness first, since the relay can cache
//! subtree roots later without changing any output.

use sha2::{Digest, Sha256};
use thiserror::Error;

/// A SHA-256 digest: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// Domain-separation prefix for leaf hashes (RFC 9162 §2.1.1).
const LEAF_PREFIX: u8 = 0x00;

/// Domain-separation prefix for interior node hashes (RFC 9162 §2.1.1).
const NODE_PREFIX: u8 = 0x01;

/// Why a Merkle proof could not be produced or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MerkleError {
    /// A leaf index is not below the size of the tree it is claimed to be in.
    #[error("leaf index {index} is outside a tree of size {tree_size}")]
    IndexOutOfRange {
        /// The offending leaf index.
        index: u64,
        /// The size of the tree.
        tree_size: u64,
    },
    /// A tree size was requested that is larger than the number of leaves held.
    #[error("tree size {requested} exceeds the {available} leaves held")]
    TreeSizeTooLarge {
        /// The tree size asked for.
        requested: u64,
        /// The number of leaves actually held.
        available: u64,
    },
    /// The older tree of a consistency check is larger than the newer one.
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    InvalidSizes {
        /// The size of the older tree.
        old_size: u64,
        /// The size of the newer tree.
        new_size: u64,
    },
    /// The proof does not have the number of hashes the tree sizes call for.
    #[error("proof has {actual} hashes where {expected} are needed")]
    WrongProofLength {
        /// The length the tree sizes (and leaf index) call for.
        expected: usize,
        /// The length of the proof supplied.
        actual: usize,
    },
    /// The proof is well-formed but does not lead to the root (or roots) supplied.
    #[error("proof does not lead to the expected root")]
    RootMismatch,
}

/// Hashes a log entry into a leaf: `SHA-256(0x00 || entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([LEAF_PREFIX]);
    hasher.update(entry);
    hasher.finalize().into()
}

/// Hashes two subtree roots into their parent: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([NODE_PREFIX]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The Merkle Tree Hash (RFC 9162 §2.1.1) of a list of already-hashed leaves.
///
/// The root of the empty tree is SHA-256 of the empty string.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => Sha256::digest([]).into(),
        [only] => *only,
        _ => {
            let (left, right) = leaves.split_at(split_point(leaves.len()));
            node_hash(&root(left), &root(right))
        }
    }
}

/// The inclusion proof (audit path, RFC 9162 §2.1.3.1) for the leaf at `index` in the tree made
/// of all of `leaves`.
///
/// The proof lists sibling subtree roots from the leaf upwards.
///
/// # Errors
///
/// [`MerkleError::IndexOutOfRange`] if `index` is not below `leaves.len()`.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Result<Vec<Hash>, MerkleError> {
    let tree_size = len_u64(leaves);
    let position = usize::try_from(index)
        .ok()
        .filter(|&position| position < leaves.len())
        .ok_or(MerkleError::IndexOutOfRange { index, tree_size })?;
    let mut proof = Vec::with_capacity(inclusion_proof_len(index, tree_size));
    path(position, leaves, &mut proof);
    Ok(proof)
}

/// Checks that `leaf` is the leaf at `index` in the tree of `tree_size` leaves whose root is
/// `root`, following the verification algorithm of RFC 9162 §2.1.3.2 step by step.
///
/// The proof binds the leaf to `root`; `tree_size` only fixes the shape of the path, and some
/// other sizes share that shape. Take `root` and `tree_size` together from a signed tree head.
///
/// # Errors
///
/// - [`MerkleError::IndexOutOfRange`] if `index >= tree_size` (including every index in an
///   empty tree, which has no leaves to prove);
/// - [`MerkleError::WrongProofLength`] if the proof is longer or shorter than the index and size
///   call for;
/// - [`MerkleError::RootMismatch`] if the proof does not lead to `root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    // Step 1.
    if index >= tree_size {
        return Err(MerkleError::IndexOutOfRange { index, tree_size });
    }
    // The RFC's loop detects a wrong length too, but only after hashing and without saying
    // what it expected; checking first gives a precise error and costs nothing.
    let expected = inclusion_proof_len(index, tree_size);
    let wrong_length = MerkleError::WrongProofLength {
        expected,
        actual: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_length);
    }
    // Steps 2 and 3; `fn_` and `sn` are the RFC's `fn` and `sn`.
    let mut fn_ = index;
    let mut sn = tree_size - 1;
    let mut r = *leaf;
    // Step 4.
    for p in proof {
        if sn == 0 {
            return Err(wrong_length);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 5.
    if sn != 0 {
        return Err(wrong_length);
    }
    if r != *root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// The consistency proof (RFC 9162 §2.1.4.1, `PROOF(m, D[n])`) that the tree of the first
/// `old_size` leaves is a prefix of the tree made of all of `leaves`.
///
/// The proof is empty when `old_size` is 0 (every tree extends the empty one) or equals
/// `leaves.len()` (a tree is consistent with itself).
///
/// # Errors
///
/// [`MerkleError::InvalidSizes`] if `old_size` is larger than `leaves.len()`.
pub fn consistency_proof(leaves: &[Hash], old_size: u64) -> Result<Vec<Hash>, MerkleError> {
    let new_size = len_u64(leaves);
    let old = usize::try_from(old_size)
        .ok()
        .filter(|&old| old <= leaves.len())
        .ok_or(MerkleError::InvalidSizes { old_size, new_size })?;
    if old == 0 || old == leaves.len() {
        return Ok(Vec::new());
    }
    let mut proof = Vec::with_capacity(consistency_proof_len(old_size, new_size));
    subproof(old, leaves, true, &mut proof);
    Ok(proof)
}

/// Checks that the tree of `old_size` leaves with root `old_root` is a prefix of the tree of
/// `new_size` leaves with root `new_root`, following the verification algorithm of RFC 9162
/// §2.1.4.2 step by step.
///
/// The RFC's algorithm covers `0 < old_size < new_size`. The two edge cases are settled the only
/// way that cannot be abused: equal sizes need an empty proof and equal roots, and an empty old
/// tree needs an empty proof and the empty-tree root as `old_root` (any tree extends the empty
/// one, but a client claiming some other root for it is confused, so we say so).
///
/// # Errors
///
/// - [`MerkleError::InvalidSizes`] if `old_size > new_size`: logs only grow;
/// - [`MerkleError::WrongProofLength`] if the proof is longer or shorter than the sizes call for;
/// - [`MerkleError::RootMismatch`] if the proof does not lead to both roots.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), MerkleError> {
    if old_size > new_size {
        return Err(MerkleError::InvalidSizes { old_size, new_size });
    }
    let expected = consistency_proof_len(old_size, new_size);
    let wrong_length = MerkleError::WrongProofLength {
        expected,
        actual: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_length);
    }
    if old_size == 0 && *old_root != root(&[]) {
        return Err(MerkleError::RootMismatch);
    }
    if old_size == new_size && old_root != new_root {
        return Err(MerkleError::RootMismatch);
    }
    if old_size == 0 || old_size == new_size {
        return Ok(());
    }
    // Steps 1 and 2: when the old tree is a complete subtree, its root is the first node of
    // the path and the proof leaves it out.
    let (seed, rest) = if old_size.is_power_of_two() {
        (*old_root, proof)
    } else {
        match proof.split_first() {
            Some((first, rest)) => (*first, rest),
            None => return Err(wrong_length),
        }
    };
    // Step 3; `fn_` and `sn` are the RFC's `fn` and `sn`.
    let mut fn_ = old_size - 1;
    let mut sn = new_size - 1;
    // Step 4.
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 5.
    let mut fr = seed;
    let mut sr = seed;
    // Step 6.
    for c in rest {
        if sn == 0 {
            return Err(wrong_length);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 7.
    if sn != 0 {
        return Err(wrong_length);
    }
    if fr != *old_root || sr != *new_root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// An in-memory log: the leaf hashes in order, with tree heads and proofs for any size.
///
/// A convenience for clients and tests; the relay keeps its leaves in storage and calls the
/// free functions directly.
#[derive(Default, Clone)]
pub struct MerkleTree {
    /// Leaf hashes, in log order.
    leaves: Vec<Hash>,
}

impl MerkleTree {
    /// Appends an entry (hashing it as a leaf) and returns its index.
    pub fn push(&mut self, entry: &[u8]) -> u64 {
        self.leaves.push(leaf_hash(entry));
        len_u64(&self.leaves) - 1
    }

    /// The number of leaves.
    pub fn len(&self) -> u64 {
        len_u64(&self.leaves)
    }

    /// Whether the log has no leaves yet.
    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    /// The root of the whole tree.
    pub fn root(&self) -> Hash {
        root(&self.leaves)
    }

    /// The root the tree had when it held its first `size` leaves.
    ///
    /// # Errors
    ///
    /// [`MerkleError::TreeSizeTooLarge`] if `size` exceeds [`len`](Self::len).
    pub fn root_at(&self, size: u64) -> Result<Hash, MerkleError> {
        Ok(root(self.prefix(size)?))
    }

    /// The inclusion proof of leaf `index` in the tree of the first `size` leaves.
    ///
    /// # Errors
    ///
    /// [`MerkleError::TreeSizeTooLarge`] if `size` exceeds [`len`](Self::len);
    /// [`MerkleError::IndexOutOfRange`] if `index >= size`.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, MerkleError> {
        inclusion_proof(self.prefix(size)?, index)
    }

    /// The consistency proof between the trees of the first `old_size` and `new_size` leaves.
    ///
    /// # Errors
    ///
    /// [`MerkleError::TreeSizeTooLarge`] if `new_size` exceeds [`len`](Self::len);
    /// [`MerkleError::InvalidSizes`] if `old_size > new_size`.
    pub fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<Hash>, MerkleError> {
        consistency_proof(self.prefix(new_size)?, old_size)
    }

    /// The hash of leaf `index`, if the log has that many leaves.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        usize::try_from(index)
            .ok()
            .and_then(|position| self.leaves.get(position))
            .copied()
    }

    /// The first `size` leaves.
    fn prefix(&self, size: u64) -> Result<&[Hash], MerkleError> {
        usize::try_from(size)
            .ok()
            .and_then(|size| self.leaves.get(..size))
            .ok_or(MerkleError::TreeSizeTooLarge {
                requested: size,
                available: self.len(),
            })
    }
}

/// A slice length as a tree size. `usize` is at most 64 bits on every target Rust supports, so
/// the conversion is lossless.
fn len_u64(leaves: &[Hash]) -> u64 {
    leaves.len() as u64
}

/// The largest power of two smaller than `n`: where RFC 9162 splits a tree of `n >= 2` leaves.
fn split_point(n: usize) -> usize {
    // For `n >= 2`, `n - 1 >= 1` so the logarithm exists; `max(1)` keeps the function total
    // (and panic-free) even if misused.
    1 << (n - 1).max(1).ilog2()
}

/// The number of bits needed to write `x`.
fn bit_len(x: u64) -> u32 {
    u64::BITS - x.leading_zeros()
}

/// The length of the inclusion proof of leaf `index` in a tree of `tree_size` leaves
/// (`index < tree_size`).
///
/// Below the level where the paths to `index` and to the last leaf part (`inner` levels) every
/// level contributes a sibling; above it, only the levels where `index` is a right child do,
/// because the tree's right edge is otherwise a lone node that is carried up unhashed.
fn inclusion_proof_len(index: u64, tree_size: u64) -> usize {
    let last = tree_size.saturating_sub(1);
    let inner = bit_len(index ^ last);
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// The length of the consistency proof between trees of `old_size <= new_size` leaves.
///
/// It is the inclusion proof length of the old tree's last leaf in the new tree, minus the
/// levels inside the largest complete subtree that ends the old tree (whose root stands in
/// for them), plus that subtree's root unless it is the whole old tree (which the verifier
/// already has as `old_root`).
fn consistency_proof_len(old_size: u64, new_size: u64) -> usize {
    if old_size == 0 || old_size >= new_size {
        return 0;
    }
    let shift = old_size.trailing_zeros();
    let inner = bit_len((old_size - 1) ^ (new_size - 1));
    let border = (old_size - 1).checked_shr(inner).unwrap_or(0).count_ones();
    let seed = u32::from(!old_size.is_power_of_two());
    // `inner > shift` whenever `old_size < new_size`: the paths must part above the complete
    // subtree, or the new tree's last leaf would lie inside the old tree.
    (seed + inner.saturating_sub(shift) + border) as usize
}

/// `PATH(m, D[n])` of RFC 9162 §2.1.3.1, appended to `out` from the leaf upwards.
fn path(m: usize, leaves: &[Hash], out: &mut Vec<Hash>) {
    if leaves.len() <= 1 {
        return;
    }
    let k = split_point(leaves.len());
    let (left, right) = leaves.split_at(k);
    if m < k {
        path(m, left, out);
        out.push(root(right));
    } else {
        path(m - k, right, out);
        out.push(root(left));
    }
}

/// `SUBPROOF(m, D[n], b)` of RFC 9162 §2.1.4.1 for `1 <= m <= n`, appended to `out`.
///
/// `complete` is the RFC's `b`: whether the subtree `D[0..m]` is the whole old tree, whose root
/// the verifier already holds and so need not be sent.
fn subproof(m: usize, leaves: &[Hash], complete: bool, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if m >= n {
        if !complete {
            out.push(root(leaves));
        }
        return;
    }
    // Here `1 <= m < n`, so `n >= 2` and the tree splits.
    let k = split_point(n);
    let (left, right) = leaves.split_at(k);
    if m <= k {
        subproof(m, left, complete, out);
        out.push(root(right));
    } else {
        subproof(m - k, right, false, out);
        out.push(root(left));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Decodes a hex string in a test vector.
    fn bytes(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Decodes a 32-byte hash in a test vector.
    fn h(hex: &str) -> Hash {
        bytes(hex).try_into().unwrap()
    }

    /// The eight entries of the Certificate Transparency reference tree (certificate-transparency
    /// `merkle_tree_test`, also transparency-dev/merkle `proof/verify_test.go`).
    const CT_ENTRIES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];

    /// The published roots of the reference tree for sizes 0 through 8.
    const CT_ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    /// Published inclusion proofs: (0-based leaf index, tree size, proof).
    const CT_INCLUSION: [(u64, u64, &[&str]); 5] = [
        (0, 1, &[]),
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];

    /// Published consistency proofs: (old size, new size, proof).
    const CT_CONSISTENCY: [(u64, u64, &[&str]); 5] = [
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (
            6,
            7,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];

    fn ct_tree() -> MerkleTree {
        let mut tree = MerkleTree::default();
        for (i, entry) in CT_ENTRIES.iter().enumerate() {
            assert_eq!(tree.push(&bytes(entry)), i as u64);
        }
        tree
    }

    fn hashes(hex: &[&str]) -> Vec<Hash> {
        hex.iter().map(|x| h(x)).collect()
    }

    /// Distinct leaf hashes for generated trees; `salt` makes a fork differ from the original.
    fn leaves(n: usize, salt: u8) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&[&(i as u64).to_be_bytes()[..], &[salt]].concat()))
            .collect()
    }

    #[test]
    fn roots_match_the_published_reference_tree() {
        let tree = ct_tree();
        assert_eq!(tree.len(), 8);
        assert!(!tree.is_empty());
        assert!(MerkleTree::default().is_empty());
        assert_eq!(MerkleTree::default().root(), h(CT_ROOTS[0]));
        for (size, expected) in CT_ROOTS.iter().enumerate() {
            assert_eq!(
                tree.root_at(size as u64).unwrap(),
                h(expected),
                "size {size}"
            );
        }
        assert_eq!(tree.root(), h(CT_ROOTS[8]));
        // A one-leaf tree's root is its leaf hash, so this also checks the 0x00 prefix.
        assert_eq!(tree.leaf(0), Some(h(CT_ROOTS[1])));
        assert_eq!(
            node_hash(&tree.leaf(0).unwrap(), &tree.leaf(1).unwrap()),
            h(CT_ROOTS[2])
        );
        assert_eq!(tree.leaf(8), None);
    }

    #[test]
    fn inclusion_proofs_match_the_published_vectors_and_verify() {
        let tree = ct_tree();
        for (index, size, proof) in CT_INCLUSION {
            let expected = hashes(proof);
            assert_eq!(tree.inclusion_proof(index, size).unwrap(), expected);
            let root = h(CT_ROOTS[size as usize]);
            let leaf = tree.leaf(index).unwrap();
            assert_eq!(
                verify_inclusion(&leaf, index, size, &expected, &root),
                Ok(())
            );
        }
    }

    #[test]
    fn consistency_proofs_match_the_published_vectors_and_verify() {
        let tree = ct_tree();
        for (old, new, proof) in CT_CONSISTENCY {
            let expected = hashes(proof);
            assert_eq!(tree.consistency_proof(old, new).unwrap(), expected);
            let (old_root, new_root) = (h(CT_ROOTS[old as usize]), h(CT_ROOTS[new as usize]));
            assert_eq!(
                verify_consistency(old, new, &old_root, &new_root, &expected),
                Ok(())
            );
        }
    }

    /// The corruptions of transparency-dev/merkle's `corruptInclusionProof`, applied to the
    /// published vectors.
    #[test]
    fn corrupted_published_inclusion_proofs_are_rejected() {
        let tree = ct_tree();
        let some_hash = [0xab; 32];
        for (index, size, proof) in CT_INCLUSION.into_iter().skip(1) {
            let proof = hashes(proof);
            let root = h(CT_ROOTS[size as usize]);
            let leaf = tree.leaf(index).unwrap();
            let mut probes: Vec<(u64, u64, Hash, Vec<Hash>, Hash)> = vec![
                (index.wrapping_sub(1), size, leaf, proof.clone(), root),
                (index + 1, size, leaf, proof.clone(), root),
                (index ^ 2, size, leaf, proof.clone(), root),
                (index, size * 2, leaf, proof.clone(), root),
                (index, size / 2, leaf, proof.clone(), root),
                (index, size, leaf_hash(b"WrongLeaf"), proof.clone(), root),
                (index, size, leaf, proof.clone(), h(CT_ROOTS[0])),
                (index, size, leaf, proof.clone(), some_hash),
                (index, size, leaf, [&proof[..], &[root]].concat(), root),
                (index, size, leaf, [&[root], &proof[..]].concat(), root),
                (index, size, leaf, proof[..proof.len() - 1].to_vec(), root),
            ];
            for i in 0..proof.len() {
                let mut wrong = proof.clone();
                wrong[i][0] ^= 8;
                probes.push((index, size, leaf, wrong, root));
            }
            if proof.len() > 1 {
                let wrong = [&proof[..1], &[some_hash], &proof[1..]].concat();
                probes.push((index, size, leaf, wrong, root));
            }
            for (i, (index, size, leaf, proof, root)) in probes.into_iter().enumerate() {
                assert!(
                    verify_inclusion(&leaf, index, size, &proof, &root).is_err(),
                    "probe {i} for leaf {index} of {size} verified"
                );
            }
        }
    }

    /// The corruptions of transparency-dev/merkle's `corruptConsistencyProof`, applied to the
    /// published vectors.
    #[test]
    fn corrupted_published_consistency_proofs_are_rejected() {
        for (old, new, proof) in CT_CONSISTENCY.into_iter().skip(1) {
            let proof = hashes(proof);
            let (r1, r2) = (h(CT_ROOTS[old as usize]), h(CT_ROOTS[new as usize]));
            let wrong_root = leaf_hash(b"WrongRoot");
            let mut probes: Vec<(u64, u64, Hash, Hash, Vec<Hash>)> = vec![
                (old - 1, new, r1, r2, proof.clone()),
                (old + 1, new, r1, r2, proof.clone()),
                (old ^ 2, new, r1, r2, proof.clone()),
                (old, new * 2, r1, r2, proof.clone()),
                (old, new / 2, r1, r2, proof.clone()),
                (old, new, wrong_root, r2, proof.clone()),
                (old, new, r1, wrong_root, proof.clone()),
                (old, new, r2, r1, proof.clone()),
                (old, new, r1, r2, Vec::new()),
                (old, new, r1, r2, [&proof[..], &[r1]].concat()),
                (old, new, r1, r2, [&proof[..], &[r2]].concat()),
                (old, new, r1, r2, [&[r1], &proof[..]].concat()),
                (old, new, r1, r2, [&[r2], &proof[..]].concat()),
                (old, new, r1, r2, [&proof[..1], &proof[..]].concat()),
                (old, new, r1, r2, proof[..proof.len() - 1].to_vec()),
            ];
            for i in 0..proof.len() {
                let mut wrong = proof.clone();
                wrong[i][0] ^= 16;
                probes.push((old, new, r1, r2, wrong));
            }
            for (i, (old, new, r1, r2, proof)) in probes.into_iter().enumerate() {
                assert!(
                    verify_consistency(old, new, &r1, &r2, &proof).is_err(),
                    "probe {i} for {old} -> {new} verified"
                );
            }
        }
    }

    /// The edge cases of transparency-dev/merkle's `TestVerifyConsistency`, with the stricter
    /// rule that an empty old tree must come with the empty-tree root.
    #[test]
    fn consistency_edge_cases() {
        let empty = root(&[]);
        let (a, b) = ([1; 32], [2; 32]);
        assert_eq!(verify_consistency(0, 0, &empty, &empty, &[]), Ok(()));
        assert_eq!(verify_consistency(0, 5, &empty, &b, &[]), Ok(()));
        assert_eq!(verify_consistency(1, 1, &a, &a, &[]), Ok(()));
        assert_eq!(
            verify_consistency(0, 0, &a, &a, &[]),
            Err(MerkleError::RootMismatch)
        );
        assert_eq!(
            verify_consistency(0, 0, &empty, &b, &[]),
            Err(MerkleError::RootMismatch)
        );
        assert_eq!(
            verify_consistency(0, 3, &a, &b, &[]),
            Err(MerkleError::RootMismatch)
        );
        assert_eq!(
            verify_consistency(1, 1, &a, &b, &[]),
            Err(MerkleError::RootMismatch)
        );
        let backwards = MerkleError::InvalidSizes {
            old_size: 2,
            new_size: 1,
        };
        assert_eq!(verify_consistency(2, 1, &a, &b, &[]), Err(backwards));
        assert!(matches!(
            verify_consistency(1, 0, &a, &b, &[]),
            Err(MerkleError::InvalidSizes { .. })
        ));
        let too_short = MerkleError::WrongProofLength {
            expected: 1,
            actual: 0,
        };
        assert_eq!(verify_consistency(1, 2, &a, &b, &[]), Err(too_short));
        let not_empty = MerkleError::WrongProofLength {
            expected: 0,
            actual: 1,
        };
        assert_eq!(
            verify_consistency(0, 0, &empty, &empty, &[empty]),
            Err(not_empty.clone())
        );
        assert_eq!(
            verify_consistency(0, 1, &empty, &empty, &[empty]),
            Err(not_empty.clone())
        );
        assert_eq!(
            verify_consistency(1, 1, &empty, &empty, &[empty]),
            Err(not_empty)
        );
    }

    #[test]
    fn inclusion_edge_cases() {
        // An inclusion proof pins down the shape of the path, not the tree size: leaf 0's path
        // is the same in trees of 5 and 6 leaves. The signed tree head binds size to root.
        let five = leaves(5, 0);
        let proof = inclusion_proof(&five, 0).unwrap();
        assert_eq!(
            verify_inclusion(&five[0], 0, 6, &proof, &root(&five)),
            Ok(())
        );

        let leaf = leaf_hash(b"data");
        assert_eq!(verify_inclusion(&leaf, 0, 1, &[], &leaf), Ok(()));
        assert_eq!(
            verify_inclusion(&leaf, 0, 1, &[], &[0; 32]),
            Err(MerkleError::RootMismatch)
        );
        for (index, tree_size) in [(0, 0), (1, 0), (1, 1), (2, 1), (u64::MAX, u64::MAX)] {
            assert_eq!(
                verify_inclusion(&leaf, index, tree_size, &[], &leaf),
                Err(MerkleError::IndexOutOfRange { index, tree_size })
            );
        }
        // The largest trees must not overflow the length computation.
        assert!(matches!(
            verify_inclusion(&leaf, 0, u64::MAX, &[], &leaf),
            Err(MerkleError::WrongProofLength { expected: 64, .. })
        ));
        assert!(matches!(
            verify_inclusion(&leaf, u64::MAX - 1, u64::MAX, &[], &leaf),
            Err(MerkleError::WrongProofLength { expected: 63, .. })
        ));
        assert!(matches!(
            verify_consistency(u64::MAX - 1, u64::MAX, &leaf, &leaf, &[]),
            Err(MerkleError::WrongProofLength { .. })
        ));
    }

    #[test]
    fn proof_generation_rejects_impossible_requests() {
        let tree = ct_tree();
        let all = leaves(8, 0);
        assert_eq!(
            inclusion_proof(&all, 8),
            Err(MerkleError::IndexOutOfRange {
                index: 8,
                tree_size: 8
            })
        );
        assert_eq!(
            inclusion_proof(&[], 0),
            Err(MerkleError::IndexOutOfRange {
                index: 0,
                tree_size: 0
            })
        );
        assert_eq!(
            consistency_proof(&all, 9),
            Err(MerkleError::InvalidSizes {
                old_size: 9,
                new_size: 8
            })
        );
        assert_eq!(consistency_proof(&all, 0), Ok(Vec::new()));
        assert_eq!(consistency_proof(&[], 0), Ok(Vec::new()));
        let too_large = MerkleError::TreeSizeTooLarge {
            requested: 9,
            available: 8,
        };
        assert_eq!(tree.root_at(9), Err(too_large.clone()));
        assert_eq!(tree.inclusion_proof(0, 9), Err(too_large.clone()));
        assert_eq!(tree.consistency_proof(1, 9), Err(too_large));
        assert!(matches!(
            tree.inclusion_proof(4, 4),
            Err(MerkleError::IndexOutOfRange { .. })
        ));
        assert!(matches!(
            tree.consistency_proof(5, 4),
            Err(MerkleError::InvalidSizes { .. })
        ));
    }

    /// Every proof for every leaf and every pair of sizes up to 40 verifies; this covers every
    /// shape of the recursion that small trees have, which the property tests only sample.
    #[test]
    fn every_small_proof_verifies() {
        let all = leaves(40, 0);
        for n in 0..=all.len() {
            let tree = &all[..n];
            let new_root = root(tree);
            for i in 0..n {
                let proof = inclusion_proof(tree, i as u64).unwrap();
                assert_eq!(proof.len(), inclusion_proof_len(i as u64, n as u64));
                assert_eq!(
                    verify_inclusion(&tree[i], i as u64, n as u64, &proof, &new_root),
                    Ok(())
                );
            }
            for m in 0..=n {
                let proof = consistency_proof(tree, m as u64).unwrap();
                let old_root = root(&tree[..m]);
                assert_eq!(
                    verify_consistency(m as u64, n as u64, &old_root, &new_root, &proof),
                    Ok(()),
                    "{m} -> {n}"
                );
            }
        }
    }

    /// A tree of `n` leaves and a leaf index in it.
    fn tree_and_index() -> impl Strategy<Value = (usize, usize)> {
        (1usize..200).prop_flat_map(|n| (Just(n), 0..n))
    }

    /// A tree of `n` leaves and an older size of it, `0..=n`.
    fn tree_and_old_size() -> impl Strategy<Value = (usize, usize)> {
        (1usize..200).prop_flat_map(|n| (Just(n), 0..=n))
    }

    proptest! {
        #[test]
        fn generated_inclusion_proofs_verify_and_tampering_fails(
            (n, i) in tree_and_index(),
            salt in any::<u8>(),
            pick in any::<prop::sample::Index>(),
            byte in 0usize..32,
            bit in 0u8..8,
            other in any::<prop::sample::Index>(),
        ) {
            let tree = leaves(n, salt);
            let r = root(&tree);
            let proof = inclusion_proof(&tree, i as u64).unwrap();
            let (index, size) = (i as u64, n as u64);
            prop_assert_eq!(verify_inclusion(&tree[i], index, size, &proof, &r), Ok(()));

            // Any flipped bit anywhere in the proof.
            if !proof.is_empty() {
                let mut wrong = proof.clone();
                wrong[pick.index(proof.len())][byte] ^= 1 << bit;
                prop_assert!(verify_inclusion(&tree[i], index, size, &wrong, &r).is_err());
            }
            // The leaf at any other position, or this leaf claimed at any other position.
            let j = other.index(n);
            if j != i {
                prop_assert!(verify_inclusion(&tree[j], index, size, &proof, &r).is_err());
                prop_assert!(verify_inclusion(&tree[i], j as u64, size, &proof, &r).is_err());
            }
            // Wrong tree sizes. Not every wrong size fails: leaf 0's proof in a tree of 5 also
            // "verifies" for size 6, since the hashing is the same; the signed tree head binds
            // size to root, so that is harmless. Doubling and halving always change the shape.
            prop_assert!(verify_inclusion(&tree[i], index, size * 2, &proof, &r).is_err());
            if size / 2 > index {
                prop_assert!(verify_inclusion(&tree[i], index, size / 2, &proof, &r).is_err());
            }
            // Truncated and extended proofs.
            if let Some((_, shorter)) = proof.split_last() {
                prop_assert!(verify_inclusion(&tree[i], index, size, shorter, &r).is_err());
            }
            let longer = [&proof[..], &[r]].concat();
            prop_assert!(verify_inclusion(&tree[i], index, size, &longer, &r).is_err());
            // The wrong root.
            let other_root = root(&tree[..n - 1]);
            prop_assert!(verify_inclusion(&tree[i], index, size, &proof, &other_root).is_err());
        }

        #[test]
        fn generated_consistency_proofs_verify_and_tampering_fails(
            (n, m) in tree_and_old_size(),
            salt in any::<u8>(),
            pick in any::<prop::sample::Index>(),
            byte in 0usize..32,
            bit in 0u8..8,
        ) {
            let tree = leaves(n, salt);
            let (old_root, new_root) = (root(&tree[..m]), root(&tree));
            let proof = consistency_proof(&tree, m as u64).unwrap();
            let (old, new) = (m as u64, n as u64);
            prop_assert_eq!(verify_consistency(old, new, &old_root, &new_root, &proof), Ok(()));
            if m == 0 || m == n {
                prop_assert!(proof.is_empty());
                return Ok(());
            }

            let mut wrong = proof.clone();
            wrong[pick.index(proof.len())][byte] ^= 1 << bit;
            prop_assert!(verify_consistency(old, new, &old_root, &new_root, &wrong).is_err());
            // Swapped roots.
            prop_assert!(verify_consistency(old, new, &new_root, &old_root, &proof).is_err());
            // Wrong sizes, each paired with the root it should then have had.
            for (o, w) in [(m - 1, n), (m + 1, n), (m ^ 2, n), (m, n * 2), (m, n / 2)] {
                if (o, w) != (m, n) && o <= w && w <= 2 * n {
                    let all = leaves(2 * n, salt);
                    let (ro, rw) = (root(&all[..o]), root(&all[..w]));
                    prop_assert!(
                        verify_consistency(o as u64, w as u64, &ro, &rw, &proof).is_err(),
                        "{} -> {} verified as {} -> {}", m, n, o, w
                    );
                    prop_assert!(
                        verify_consistency(o as u64, w as u64, &old_root, &new_root, &proof)
                            .is_err()
                    );
                }
            }
            // Truncated and extended proofs.
            let shorter = &proof[..proof.len() - 1];
            prop_assert!(verify_consistency(old, new, &old_root, &new_root, shorter).is_err());
            let longer = [&proof[..], &[new_root]].concat();
            prop_assert!(verify_consistency(old, new, &old_root, &new_root, &longer).is_err());
        }

        #[test]
        fn a_forked_log_is_not_consistent(
            (n, m) in (2usize..200).prop_flat_map(|n| (Just(n), 1..n)),
            changed in any::<prop::sample::Index>(),
            salt in any::<u8>(),
        ) {
            // The client saw the honest tree of `m` leaves; the relay then rewrote leaf `j`,
            // which the client had already seen, and kept appending.
            let honest = leaves(n, salt);
            let j = changed.index(m);
            let mut forked = honest.clone();
            forked[j] = leaf_hash(b"rewritten history");
            let (old, new) = (m as u64, n as u64);
            let seen = root(&honest[..m]);
            let forked_root = root(&forked);

            let forked_proof = consistency_proof(&forked, old).unwrap();
            let honest_proof = consistency_proof(&honest, old).unwrap();
            prop_assert!(verify_consistency(old, new, &seen, &forked_root, &forked_proof).is_err());
            prop_assert!(verify_consistency(old, new, &seen, &forked_root, &honest_proof).is_err());
        }
    }
}
