//! The log's Merkle tree (RFC 9162 section 2.1), kept in memory and appended to.
//!
//! It stores every leaf hash and the hash of every complete, aligned subtree of 16 leaves or
//! more; subtrees of 2, 4 and 8 leaves are recomputed from the leaves when a proof needs them
//! (at most 11 hashes). That is about 34 bytes per leaf, 36 MB for a million records, and
//! every root or proof for any past size costs O(log n) hashes: in the RFC's recursive
//! definition at most one subtree on each path is incomplete, and only that one is computed.

use crate::hash::{node_hash, Hash};
use crate::proof::{ConsistencyProof, InclusionProof, ProofError};

/// Levels 1 to `FIRST_STORED_LEVEL - 1` are not stored: they would double the memory for
/// little speed.
const FIRST_STORED_LEVEL: usize = 4;

/// An append-only RFC 6962 Merkle tree over leaf hashes.
#[derive(Debug, Clone, Default)]
pub struct MerkleTree {
    /// `levels[0]` holds the leaf hashes; `levels[k]` for `k >= FIRST_STORED_LEVEL` the
    /// complete subtrees of `2^k` leaves, left to right; levels in between stay empty.
    levels: Vec<Vec<Hash>>,
    /// For the unstored levels: the most recent complete node at that level whose index is
    /// even, i.e. the left sibling the next node of that level will be joined with.
    pending_left: [Hash; FIRST_STORED_LEVEL],
}

impl MerkleTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree over these leaf hashes, in order.
    pub fn from_leaves(leaves: impl IntoIterator<Item = Hash>) -> Self {
        let mut tree = Self::new();
        for leaf in leaves {
            tree.push(leaf);
        }
        tree
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |leaves| leaves.len() as u64)
    }

    /// The leaf hash at `index`, if the tree has it.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels
            .first()
            .and_then(|leaves| leaves.get(usize::try_from(index).ok()?))
            .copied()
    }

    /// Appends a leaf hash; returns its index.
    pub fn push(&mut self, leaf: Hash) -> u64 {
        let index = self.size();
        self.store(0, leaf);
        // Walk up while the new node is a right child: each step completes its parent.
        let mut node = leaf;
        let mut position = index;
        let mut level = 0;
        while position & 1 == 1 {
            let left = if level < FIRST_STORED_LEVEL {
                self.pending_slot(level)
            } else {
                self.stored(level, position - 1)
            };
            node = node_hash(&left, &node);
            position >>= 1;
            level += 1;
            self.store(level, node);
        }
        if level < FIRST_STORED_LEVEL {
            if let Some(slot) = self.pending_left.get_mut(level) {
                *slot = node;
            }
        }
        index
    }

    fn pending_slot(&self, level: usize) -> Hash {
        self.pending_left.get(level).copied().unwrap_or_default()
    }

    fn store(&mut self, level: usize, hash: Hash) {
        if level != 0 && level < FIRST_STORED_LEVEL {
            return;
        }
        while self.levels.len() <= level {
            self.levels.push(Vec::new());
        }
        if let Some(row) = self.levels.get_mut(level) {
            row.push(hash);
        }
    }

    fn stored(&self, level: usize, index: u64) -> Hash {
        // INVARIANT: callers ask only for complete nodes inside the tree, which are stored;
        // the default is unreachable.
        self.levels
            .get(level)
            .and_then(|row| row.get(usize::try_from(index).ok()?))
            .copied()
            .unwrap_or_default()
    }

    /// The hash of the complete subtree of `2^level` leaves starting at leaf
    /// `index << level`; the caller guarantees it lies inside the tree.
    fn perfect(&self, level: usize, index: u64) -> Hash {
        if level == 0 || level >= FIRST_STORED_LEVEL {
            self.stored(level, index)
        } else {
            node_hash(
                &self.perfect(level - 1, index << 1),
                &self.perfect(level - 1, (index << 1) | 1),
            )
        }
    }

    /// MTH(D[start:end]) of RFC 9162 for a range the recursion produces: `start` is a
    /// multiple of the largest power of two below `end - start`, and `end <= size`.
    fn range_hash(&self, start: u64, end: u64) -> Hash {
        let n = end - start;
        if n.is_power_of_two() {
            let level = n.trailing_zeros() as usize;
            return self.perfect(level, start >> level);
        }
        // Fold the complete subtrees of the range from the right: the binary digits of `n`.
        let mut acc: Option<Hash> = None;
        let mut remaining = n;
        while remaining != 0 {
            let level = remaining.trailing_zeros() as usize;
            remaining &= remaining - 1;
            let node = self.perfect(level, (start + remaining) >> level);
            acc = Some(match acc {
                None => node,
                Some(right) => node_hash(&node, &right),
            });
        }
        acc.unwrap_or_else(crate::hash::empty_root)
    }

    /// The current root.
    pub fn root(&self) -> Hash {
        self.range_hash(0, self.size())
    }

    /// The root of the tree when it had `size` leaves; `None` beyond the current size.
    pub fn root_at(&self, size: u64) -> Option<Hash> {
        if size > self.size() {
            return None;
        }
        if size == 0 {
            return Some(crate::hash::empty_root());
        }
        Some(self.range_hash(0, size))
    }

    /// The inclusion proof of leaf `index` in the tree of `size` leaves (RFC 9162 2.1.3.1),
    /// siblings from the leaf upwards.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<InclusionProof, ProofError> {
        if size > self.size() {
            return Err(ProofError::SizeBeyondTree {
                size,
                tree_size: self.size(),
            });
        }
        if index >= size {
            return Err(ProofError::IndexOutOfRange { index, size });
        }
        // Top-down, then reversed: each step keeps the half that holds the leaf and records
        // the other half's hash.
        let mut path = Vec::with_capacity(64);
        let (mut start, mut end) = (0, size);
        while end - start > 1 {
            let k = split(end - start);
            if index < start + k {
                path.push(self.range_hash(start + k, end));
                end = start + k;
            } else {
                path.push(self.range_hash(start, start + k));
                start += k;
            }
        }
        path.reverse();
        Ok(InclusionProof { index, size, path })
    }

    /// The consistency proof from size `old` to size `new` (RFC 9162 2.1.4.1), in the
    /// RFC's order.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<ConsistencyProof, ProofError> {
        if new > self.size() {
            return Err(ProofError::SizeBeyondTree {
                size: new,
                tree_size: self.size(),
            });
        }
        if old > new {
            return Err(ProofError::OldLargerThanNew { old, new });
        }
        let mut path = Vec::with_capacity(64);
        if old != 0 && old != new {
            // SUBPROOF(m, D[start:end], b), unrolled; nodes are collected top-down and
            // reversed at the end, as the RFC appends them on the way back up.
            let (mut start, mut end, mut m, mut complete) = (0, new, old, true);
            loop {
                let n = end - start;
                if m == n {
                    if !complete {
                        path.push(self.range_hash(start, end));
                    }
                    break;
                }
                let k = split(n);
                if m <= k {
                    path.push(self.range_hash(start + k, end));
                    end = start + k;
                } else {
                    path.push(self.range_hash(start, start + k));
                    start += k;
                    m -= k;
                    complete = false;
                }
            }
            path.reverse();
        }
        Ok(ConsistencyProof { old, new, path })
    }
}

/// The largest power of two smaller than `n` (for `n >= 2`).
pub(crate) fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

#[cfg(test)]
mod tests;
