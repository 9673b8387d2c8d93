//! Receipts: what the enclave hands a client with its reply, so the client can later prove
//! that its record is in the log.

use serde::{Deserialize, Serialize};

use crate::checkpoint::{open_checkpoint, Checkpoint, CheckpointError};
use crate::hash::{leaf_hash, Hash};
use crate::note::NoteVerifier;
use crate::proof::{root_from_inclusion, ProofError};

/// Proof that one record is in the log: its leaf hash, an inclusion proof, and the signed
/// checkpoint the proof leads to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    /// The record's index (its `seq`).
    pub index: u64,
    /// The record's leaf hash.
    pub leaf_hash: Hash,
    /// Sibling hashes from the leaf up to the root of the checkpoint's tree.
    pub inclusion_proof: Vec<Hash>,
    /// The signed checkpoint note.
    pub checkpoint: String,
}

/// A receipt that checked out: the record is at `index` in the tree of the checkpoint,
/// which a known log key signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedReceipt {
    index: u64,
    leaf_hash: Hash,
    checkpoint: Checkpoint,
    signed_by: Vec<NoteVerifier>,
}

impl VerifiedReceipt {
    /// The record's index.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The record's leaf hash.
    pub fn leaf_hash(&self) -> Hash {
        self.leaf_hash
    }

    /// The checkpoint the record is included in.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The log keys whose signatures on the checkpoint verified.
    pub fn signed_by(&self) -> &[NoteVerifier] {
        &self.signed_by
    }
}

/// Why a receipt does not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// The record bytes do not hash to the receipt's leaf hash.
    #[error("the record does not match the receipt's leaf hash")]
    LeafHashMismatch,
    /// The checkpoint is malformed or not signed by a known log key.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The inclusion proof is malformed for the index and the checkpoint's size.
    #[error("inclusion proof: {0}")]
    Proof(#[from] ProofError),
    /// The inclusion proof leads to another root than the checkpoint's.
    #[error("the inclusion proof does not lead to the checkpoint's root")]
    RootMismatch,
}

/// Checks a receipt for `record_bytes` (the record's canonical encoding, as stored):
/// the leaf hash matches, the checkpoint is signed by one of `known_log_keys` under its
/// origin, and the proof leads from the leaf to the checkpoint's root.
pub fn verify_receipt(
    record_bytes: &[u8],
    receipt: &Receipt,
    known_log_keys: &[NoteVerifier],
) -> Result<VerifiedReceipt, ReceiptError> {
    if leaf_hash(record_bytes) != receipt.leaf_hash {
        return Err(ReceiptError::LeafHashMismatch);
    }
    let opened = open_checkpoint(&receipt.checkpoint, known_log_keys, None)?;
    let checkpoint = opened.checkpoint();
    let root = root_from_inclusion(
        receipt.index,
        checkpoint.size,
        &receipt.leaf_hash,
        &receipt.inclusion_proof,
    )?;
    if root != checkpoint.root {
        return Err(ReceiptError::RootMismatch);
    }
    Ok(VerifiedReceipt {
        index: receipt.index,
        leaf_hash: receipt.leaf_hash,
        checkpoint: checkpoint.clone(),
        signed_by: opened.signed_by().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::log_origin;
    use crate::note::tests::signer;
    use crate::tree::MerkleTree;

    fn setup() -> (Vec<Vec<u8>>, MerkleTree, crate::note::NoteSigner) {
        let records: Vec<Vec<u8>> = (0..11u8).map(|i| vec![i; 10 + usize::from(i)]).collect();
        let tree = MerkleTree::from_leaves(records.iter().map(|r| leaf_hash(r)));
        let origin = log_origin(&leaf_hash(b"genesis"));
        (records, tree, signer(&origin, 4))
    }

    fn receipt(tree: &MerkleTree, s: &crate::note::NoteSigner, index: u64, size: u64) -> Receipt {
        let checkpoint = Checkpoint {
            origin: s.name().to_owned(),
            size,
            root: tree.root_at(size).unwrap(),
        };
        Receipt {
            index,
            leaf_hash: tree.leaf(index).unwrap(),
            inclusion_proof: tree.inclusion_proof(index, size).unwrap().path,
            checkpoint: checkpoint.sign(s).unwrap(),
        }
    }

    #[test]
    fn good_receipts_verify() {
        let (records, tree, s) = setup();
        let known = [s.verifier().clone()];
        for size in 1..=records.len() as u64 {
            for index in 0..size {
                let r = receipt(&tree, &s, index, size);
                let v = verify_receipt(&records[index as usize], &r, &known).unwrap();
                assert_eq!((v.index(), v.checkpoint().size), (index, size));
            }
        }
    }

    #[test]
    fn bad_receipts_fail() {
        let (records, tree, s) = setup();
        let known = [s.verifier().clone()];
        let r = receipt(&tree, &s, 3, 11);
        assert_eq!(
            verify_receipt(&records[4], &r, &known),
            Err(ReceiptError::LeafHashMismatch)
        );
        let mut moved = receipt(&tree, &s, 4, 11);
        moved.leaf_hash = r.leaf_hash;
        assert!(verify_receipt(&records[3], &moved, &known).is_err());
        let mut bad_proof = r.clone();
        bad_proof.inclusion_proof[1].0[0] ^= 1;
        assert_eq!(
            verify_receipt(&records[3], &bad_proof, &known),
            Err(ReceiptError::RootMismatch)
        );
        let stranger = signer(s.name(), 5);
        assert!(matches!(
            verify_receipt(&records[3], &r, &[stranger.verifier().clone()]),
            Err(ReceiptError::Checkpoint(_))
        ));
        let mut short = r.clone();
        short.inclusion_proof.pop();
        assert!(matches!(
            verify_receipt(&records[3], &short, &known),
            Err(ReceiptError::Proof(_))
        ));
    }

    #[test]
    fn cbor_round_trip() {
        let (_, tree, s) = setup();
        let r = receipt(&tree, &s, 2, 7);
        let mut bytes = Vec::new();
        ciborium::into_writer(&r, &mut bytes).unwrap();
        assert_eq!(
            ciborium::from_reader::<Receipt, _>(bytes.as_slice()).unwrap(),
            r
        );
    }
}
