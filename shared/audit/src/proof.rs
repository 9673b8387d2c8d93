//! Inclusion and consistency proofs and their verification, as RFC 9162 sections 2.1.3.2
//! and 2.1.4.2 describe them.

use serde::{Deserialize, Serialize};

use crate::hash::{node_hash, Hash};

/// Proof that a leaf is in a tree of a given size: the sibling hashes from the leaf up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    /// The leaf's index.
    pub index: u64,
    /// The size of the tree the proof is for.
    pub size: u64,
    /// Sibling hashes, from the leaf upwards.
    pub path: Vec<Hash>,
}

/// Proof that the tree of size `new` extends the tree of size `old`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyProof {
    /// The smaller size.
    pub old: u64,
    /// The larger size.
    pub new: u64,
    /// The proof nodes, in RFC 9162 order.
    pub path: Vec<Hash>,
}

/// Why a proof cannot be made or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// A proof was asked for a size the tree has not reached.
    #[error("tree size {size} asked, but the tree has {tree_size} leaves")]
    SizeBeyondTree {
        /// The size asked for.
        size: u64,
        /// The tree's size.
        tree_size: u64,
    },
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// The index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A consistency proof from a larger tree to a smaller one.
    #[error("consistency from size {old} to the smaller size {new}")]
    OldLargerThanNew {
        /// The first size.
        old: u64,
        /// The second size.
        new: u64,
    },
    /// The proof has the wrong number of nodes for its sizes.
    #[error("the proof has the wrong number of nodes for its tree sizes")]
    WrongLength,
    /// Equal sizes with different roots.
    #[error("two roots for the same tree size differ")]
    SameSizeDifferentRoots,
    /// The proof leads to another root than the one given.
    #[error("the proof does not lead to the expected root")]
    RootMismatch,
}

impl InclusionProof {
    /// The root this proof leads to from `leaf` (RFC 9162 2.1.3.2, steps 1 to 4).
    pub fn root_from(&self, leaf: &Hash) -> Result<Hash, ProofError> {
        root_from_inclusion(self.index, self.size, leaf, &self.path)
    }

    /// Checks that `leaf` is at `index` in the tree of `size` leaves whose root is `root`.
    pub fn verify(&self, leaf: &Hash, root: &Hash) -> Result<(), ProofError> {
        if self.root_from(leaf)? == *root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        }
    }
}

/// The root reached from `leaf` at `index` in a tree of `size` leaves through `path`.
pub fn root_from_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    path: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                // A right edge node with no sibling at these levels: skip them.
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    Ok(r)
}

impl ConsistencyProof {
    /// Checks that the tree of `new` leaves with root `new_root` extends the tree of `old`
    /// leaves with root `old_root` (RFC 9162 2.1.4.2).
    pub fn verify(&self, old_root: &Hash, new_root: &Hash) -> Result<(), ProofError> {
        verify_consistency(self.old, self.new, old_root, new_root, &self.path)
    }
}

/// RFC 9162 2.1.4.2, with the edge cases of equal sizes and of the empty old tree: there the
/// proof must be empty (and, for equal sizes, the roots equal).
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    path: &[Hash],
) -> Result<(), ProofError> {
    if old > new {
        return Err(ProofError::OldLargerThanNew { old, new });
    }
    if old == new {
        if !path.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::SameSizeDifferentRoots)
        };
    }
    if old == 0 {
        // Every tree extends the empty one.
        return if path.is_empty() {
            Ok(())
        } else {
            Err(ProofError::WrongLength)
        };
    }
    let (first, rest) = match path.split_first() {
        Some(split) => split,
        None => return Err(ProofError::WrongLength),
    };
    // Step 2: when the old tree is a complete subtree, its root is the proof's implicit
    // first node.
    let (seed, rest) = if old.is_power_of_two() {
        (old_root, path)
    } else {
        (first, rest)
    };
    let (mut f, mut s) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*seed, *seed);
    for c in rest {
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr == *old_root && sr == *new_root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}
