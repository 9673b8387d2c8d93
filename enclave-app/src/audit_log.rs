//! The enclave's side of the audit log: the Merkle tree over every record, the log key that
//! signs checkpoints, and the records not yet acknowledged as durable by the parent.

use ea_audit::hash::leaf_hash;
use ea_audit::note::{NoteSigner, NoteVerifier};
use ea_audit::record::Record;
use ea_audit::{Checkpoint, Hash, MerkleTree, Receipt};

/// Why a record or checkpoint could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum AuditLogError {
    /// The record could not be encoded.
    #[error("audit record could not be encoded: {0}")]
    Encode(#[from] ea_audit::record::EncodeError),
    /// The checkpoint could not be signed.
    #[error("checkpoint could not be signed: {0}")]
    Checkpoint(#[from] ea_audit::checkpoint::CheckpointError),
    /// A proof could not be built (an index outside the tree: a bug).
    #[error("inclusion proof could not be built: {0}")]
    Proof(#[from] ea_audit::proof::ProofError),
    /// The attestation document for a record could not be obtained.
    #[error("attestation for record {index} failed: {reason}")]
    Attestation {
        /// The record's index.
        index: u64,
        /// Why.
        reason: String,
    },
}

/// The log as the enclave holds it. Records move through three stages: pending (appended,
/// not yet sent), sent (handed to the parent with a checkpoint, not yet acknowledged), and
/// durable (acknowledged). One batch is sent at a time; the next accumulates meanwhile.
pub struct AuditLog {
    tree: MerkleTree,
    signer: NoteSigner,
    origin: String,
    genesis_hash: Hash,
    /// Records below this index are acknowledged as durable.
    durable: u64,
    /// Records below this index have been sent.
    sent: u64,
    /// Records from `sent` on, canonical bytes.
    pending: Vec<Vec<u8>>,
}

impl AuditLog {
    /// A log whose first `tree.size()` records are durable.
    pub fn new(tree: MerkleTree, signer: NoteSigner, origin: String, genesis_hash: Hash) -> Self {
        let durable = tree.size();
        Self {
            tree,
            signer,
            origin,
            genesis_hash,
            durable,
            sent: durable,
            pending: Vec::new(),
        }
    }

    /// The log's identity.
    pub fn genesis_hash(&self) -> Hash {
        self.genesis_hash
    }

    /// The log's origin line.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The verifier key of the log key.
    pub fn verifier(&self) -> NoteVerifier {
        self.signer.verifier().clone()
    }

    /// The index the next record gets.
    pub fn next_index(&self) -> u64 {
        self.tree.size()
    }

    /// Records acknowledged as durable.
    pub fn durable_size(&self) -> u64 {
        self.durable
    }

    /// The size and root of the tree acknowledged as durable: what the checkpoint of the
    /// last acknowledged batch signed, so what this enclave has vouched for.
    pub fn durable_head(&self) -> (u64, Hash) {
        // INVARIANT: durable <= sent <= tree.size(), so `root_at` has the root; the current
        // root stands in only if that ever broke, and then the caller's comparison with a
        // log read back fails safe (it refuses).
        let root = self
            .tree
            .root_at(self.durable)
            .unwrap_or_else(|| self.tree.root());
        (self.durable, root)
    }

    /// Appends a record (its `seq` is set here), returning its index.
    pub fn append(&mut self, mut record: Record) -> Result<u64, AuditLogError> {
        let index = self.tree.size();
        record.seq = index;
        let bytes = record.to_bytes()?;
        self.tree.push(leaf_hash(&bytes));
        self.pending.push(bytes);
        Ok(index)
    }

    /// Appends a record that carries an attestation document of its own record hash,
    /// obtained from `attest(record_hash)`.
    pub fn append_attested(
        &mut self,
        mut record: Record,
        attest: impl FnOnce(&[u8]) -> Result<Vec<u8>, String>,
    ) -> Result<u64, AuditLogError> {
        let index = self.tree.size();
        record.seq = index;
        record.attestation = None;
        let hash = record.record_hash()?;
        let document = attest(hash.as_bytes())
            .map_err(|reason| AuditLogError::Attestation { index, reason })?;
        record.attestation = Some(document);
        self.append(record)
    }

    /// The canonical bytes of record `index` while it waits to be sent.
    pub fn pending_record(&self, index: u64) -> Option<&[u8]> {
        let offset = usize::try_from(index.checked_sub(self.sent)?).ok()?;
        self.pending.get(offset).map(Vec::as_slice)
    }

    /// True when records wait to be sent.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The records not sent yet, with the index of the first, and a checkpoint signed for
    /// the tree that ends with them; they count as sent from now on.
    pub fn take_batch(&mut self) -> Result<(u64, Vec<Vec<u8>>, String), AuditLogError> {
        let checkpoint = self.sign_checkpoint()?;
        let first = self.sent;
        self.sent = self.tree.size();
        Ok((first, std::mem::take(&mut self.pending), checkpoint))
    }

    /// The parent acknowledged every record below `size` as durable.
    pub fn mark_durable(&mut self, size: u64) {
        self.durable = size.min(self.sent);
    }

    /// A checkpoint for the whole tree, signed by the log key.
    pub fn sign_checkpoint(&self) -> Result<String, AuditLogError> {
        let checkpoint = Checkpoint {
            origin: self.origin.clone(),
            size: self.tree.size(),
            root: self.tree.root(),
        };
        Ok(checkpoint.sign(&self.signer)?)
    }

    /// The receipt of record `index` under `checkpoint` (signed for size `size`).
    pub fn receipt(
        &self,
        index: u64,
        size: u64,
        checkpoint: &str,
    ) -> Result<Receipt, AuditLogError> {
        let proof = self.tree.inclusion_proof(index, size)?;
        let leaf = self
            .tree
            .leaf(index)
            .ok_or(ea_audit::proof::ProofError::IndexOutOfRange { index, size })?;
        Ok(Receipt {
            index,
            leaf_hash: leaf,
            inclusion_proof: proof.path,
            checkpoint: checkpoint.to_owned(),
        })
    }

    /// The tree, for proofs.
    pub fn tree(&self) -> &MerkleTree {
        &self.tree
    }
}
