//! The log verification core, shared by `govctl audit verify` and by enclave recovery.
//!
//! One pass over the records, in order. For record `i`:
//! 1. it decodes as a canonical record and its `seq` is `i`;
//! 2. record 0 is genesis (its record hash is the genesis hash and names the log's origin),
//!    no other record is;
//! 3. an `enclave_start` record carries an attestation document that the
//!    [`AttestationChecker`] accepts with `user_data` = genesis hash; its 32-byte
//!    `public_key` becomes a log key, valid for checkpoints of size `> i` until the
//!    `enclave_start` of another image supersedes it (see "Images" below); the first one's
//!    image must be the pinned genesis image, if one is pinned;
//! 4. `approval_decision` and `approval_applied` records carry an attestation document
//!    accepted with `user_data` = their own record hash, made by the image of the last
//!    `enclave_start` before them;
//! 5. the [`RequestChecker`] accepts the record (the embedded client request's signature);
//! 6. its leaf hash is appended to the tree, and every checkpoint of size `i + 1` is checked:
//!    origin, signature by a log key attested below its size, root. Consistency with the
//!    previous checkpoint follows, both roots being of the one tree built here. Signatures are
//!    queued and verified in batches (see the `batch` module); a queued failure is reported
//!    before any later error, so the first bad index stays first.
//!
//! Images: each `enclave_start` document shows the image of the enclave that started (its
//! PCR0, 1, 2 and 8). Consecutive starts of one image form an *era*; the first start of
//! another image ends the era before it, and from that record on only keys attested in the
//! new era count: a checkpoint of size `n` must be signed by a key attested below `n` in the
//! era of the last `enclave_start` below `n`. So an older image's key signs nothing past the
//! start of its successor ([`LogErrorKind::SupersededKey`]). Whether an image was *admitted*
//! at that point of the log is the ledger's rule, checked as the records are replayed
//! (`ea_ledger`): this crate knows no policy.
//!
//! At the end, a checkpoint larger than the log means its tail is missing, and records after
//! the last checkpoint are unsigned (refused unless [`VerifyOptions::allow_unsigned_tail`]).
//! The first failure is reported, with the first record index it implicates, and the
//! verifier stays failed.

mod batch;
mod error;

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;

pub use error::{CheckerError, LogError, LogErrorKind};

use crate::checkpoint::{self, log_origin, Checkpoint};
use crate::hash::{leaf_hash, Hash};
use crate::note::{Note, NoteError, NoteVerifier, PUBLIC_KEY_LEN};
use crate::record::{
    record_hash_from, AttestationRule, Record, RecordFields, RecordHeader, RecordKind,
};
use crate::tree::MerkleTree;
use batch::{Origin, SignatureBatch};
use ed25519_dalek::VerifyingKey;

/// What an attestation checker vouches for: the document's `public_key`, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestedKey {
    /// The `public_key` field of the attestation document.
    pub public_key: Option<Vec<u8>>,
}

/// What [`AttestationChecker::check_document`] vouches for: the document's `public_key` and
/// its PCRs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestedDocument {
    /// The `public_key` field of the attestation document.
    pub public_key: Option<Vec<u8>>,
    /// The document's PCRs, by index: the image of the enclave that made it. Empty from a
    /// checker that does not report them (then every document counts as one image).
    pub pcrs: BTreeMap<u16, Vec<u8>>,
}

/// The PCRs that name an enclave image: PCR0, 1, 2 and 8 (the signing certificate).
pub const IMAGE_PCRS: [u16; 4] = [0, 1, 2, 8];

/// An image as the verifier compares them: PCR0, 1, 2 and 8 of a document, as it shows them.
pub type Image = BTreeMap<u16, Vec<u8>>;

/// The image a document's PCRs show.
pub fn image_of(pcrs: &BTreeMap<u16, Vec<u8>>) -> Image {
    pcrs.iter()
        .filter(|(index, _)| IMAGE_PCRS.contains(index))
        .map(|(index, value)| (*index, value.clone()))
        .collect()
}

/// Checks an attestation document (signature, certificate chain, PCRs) and that its
/// `user_data` is `expected_user_data`. The caller implements it with the attestation crate,
/// the expected PCRs and the trust root.
pub trait AttestationChecker {
    /// Why a document is refused.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Checks `document`; on success returns its `public_key`.
    fn check(&self, document: &[u8], expected_user_data: &[u8])
        -> Result<AttestedKey, Self::Error>;

    /// Checks `document`; on success returns its `public_key` and its (verified) PCRs. The
    /// verifier calls this one: the PCRs tell which image wrote what. The default reports
    /// no PCRs, for checkers that pin one image anyway.
    fn check_document(
        &self,
        document: &[u8],
        expected_user_data: &[u8],
    ) -> Result<AttestedDocument, Self::Error> {
        self.check(document, expected_user_data)
            .map(|key| AttestedDocument {
                public_key: key.public_key,
                pcrs: BTreeMap::new(),
            })
    }
}

/// Re-checks what a record embeds from clients, chiefly the signature of its request.
pub trait RequestChecker {
    /// Why a record is refused.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Checks one decoded record.
    fn check(&self, record: &Record) -> Result<(), Self::Error>;
    /// Completes the checks that [`RequestChecker::check`] deferred, and returns the first
    /// failure with the index of its record. A checker may queue its signature checks to
    /// run them back to back, which is faster than between decoding and hashing. The
    /// verifier calls this every [`REQUEST_CHECKS_DEFERRED`] records, before it reports any
    /// later failure, and at the end.
    fn flush(&self) -> Result<(), (u64, Self::Error)> {
        Ok(())
    }
}

/// The most records whose deferred request checks may wait (see [`RequestChecker::flush`]).
pub const REQUEST_CHECKS_DEFERRED: u64 = 4096;

/// A [`RequestChecker`] that checks nothing: for recovery inside the enclave, which checked
/// every request before writing it. An auditor should not use it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SkipRequestChecks;

impl RequestChecker for SkipRequestChecks {
    type Error = Infallible;
    fn check(&self, _record: &Record) -> Result<(), Infallible> {
        Ok(())
    }
}

impl<T: AttestationChecker + ?Sized> AttestationChecker for &T {
    type Error = T::Error;
    fn check(&self, document: &[u8], expected: &[u8]) -> Result<AttestedKey, T::Error> {
        (**self).check(document, expected)
    }
    fn check_document(
        &self,
        document: &[u8],
        expected: &[u8],
    ) -> Result<AttestedDocument, T::Error> {
        (**self).check_document(document, expected)
    }
}

impl<T: RequestChecker + ?Sized> RequestChecker for &T {
    type Error = T::Error;
    fn check(&self, record: &Record) -> Result<(), T::Error> {
        (**self).check(record)
    }
    fn flush(&self) -> Result<(), (u64, T::Error)> {
        (**self).flush()
    }
}

/// Choices of the caller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Accept records after the last checkpoint (reported in [`LogSummary::records`] beyond
    /// [`LogSummary::checkpoint_size`]). Recovery needs it: the enclave may stop after the
    /// parent stored a batch and before it signed the checkpoint.
    pub allow_unsigned_tail: bool,
}

/// A log key and the `enclave_start` record that attested it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogKey {
    /// The index of the `enclave_start` record.
    pub index: u64,
    /// The key, named by the log's origin.
    pub verifier: NoteVerifier,
    /// The image of the enclave that started (PCR0, 1, 2 and 8 of its document).
    pub image: Image,
    /// The first `enclave_start` of this image's era: the run of starts of one image this
    /// one belongs to. The key counts for checkpoints until the next era begins.
    pub era: u64,
}

/// What a verified log is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSummary {
    /// The number of records.
    pub records: u64,
    /// The size of the last checkpoint; records beyond it are unsigned.
    pub checkpoint_size: u64,
    /// The root at `checkpoint_size`.
    pub root: Hash,
    /// The number of checkpoints checked.
    pub checkpoints: usize,
    /// The genesis hash.
    pub genesis_hash: Hash,
    /// The log's origin.
    pub origin: String,
    /// Every attested log key, in log order.
    pub log_keys: Vec<LogKey>,
}

/// A checkpoint waiting for the records it covers.
#[derive(Debug)]
struct PendingCheckpoint {
    number: usize,
    note: Note,
    checkpoint: Checkpoint,
}

/// The last checkpoint that verified.
#[derive(Debug, Clone)]
struct Verified {
    size: u64,
    root: Hash,
}

/// Verifies a log record by record; see the module documentation for what it checks.
pub struct LogVerifier<A: AttestationChecker, R: RequestChecker> {
    attestation: A,
    requests: R,
    options: VerifyOptions,
    tree: MerkleTree,
    genesis: Option<(Hash, String)>,
    log_keys: Vec<LogKey>,
    /// The log keys decoded for verification, aligned with `log_keys`; `None` for a key that
    /// is not a valid curve point (every signature by it fails).
    decoded_keys: Vec<Option<VerifyingKey>>,
    signatures: SignatureBatch,
    pending: VecDeque<PendingCheckpoint>,
    added: usize,
    /// The size of the last checkpoint added; each must be larger.
    last_added_size: Option<u64>,
    last_verified: Option<Verified>,
    checked: usize,
    failed: Option<LogError>,
    /// Set once a record was added by [`LogVerifier::add_authenticated_record`].
    authenticated_only: bool,
    /// PCRs the log's first `enclave_start` must show (the genesis image), if pinned.
    genesis_image: Option<BTreeMap<u16, Vec<u8>>>,
}

/// Whether the documents of approval records are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecordHashDocuments {
    Check,
    Skip,
}

impl<A: AttestationChecker, R: RequestChecker> LogVerifier<A, R> {
    /// A verifier that uses these checkers.
    pub fn new(attestation: A, requests: R, options: VerifyOptions) -> Self {
        Self {
            attestation,
            requests,
            options,
            tree: MerkleTree::new(),
            genesis: None,
            log_keys: Vec::new(),
            decoded_keys: Vec::new(),
            signatures: SignatureBatch::default(),
            pending: VecDeque::new(),
            added: 0,
            last_added_size: None,
            last_verified: None,
            checked: 0,
            failed: None,
            authenticated_only: false,
            genesis_image: None,
        }
    }

    /// Requires the log's first `enclave_start` document to show these PCRs (each present
    /// and equal): the genesis image an auditor expects (`govctl audit verify --pcrs`).
    /// Later images are admitted by the log itself, which the ledger checks.
    pub fn pin_genesis_image(mut self, pcrs: BTreeMap<u16, Vec<u8>>) -> Self {
        self.genesis_image = Some(pcrs);
        self
    }

    /// The number of records accepted so far.
    pub fn records(&self) -> u64 {
        self.tree.size()
    }

    /// The number of checkpoints added whose records have not all been added yet.
    pub fn waiting_checkpoints(&self) -> usize {
        self.pending.len()
    }

    /// Adds the next checkpoint, in the order they were signed: each larger than the one
    /// before (a log has one per size). It is checked as soon as the records it covers have
    /// been added (at once if they already have).
    pub fn add_checkpoint(&mut self, note: &str) -> Result<(), LogError> {
        self.guard(|this| this.add_checkpoint_inner(note))
    }

    /// Adds the next record (its canonical bytes, as stored) and returns it decoded. The
    /// record is individually checked; the log as a whole is verified only once
    /// [`LogVerifier::finish`] succeeds.
    pub fn add_record(&mut self, bytes: &[u8]) -> Result<Record, LogError> {
        self.guard(|this| this.add_record_inner(bytes))
    }

    /// Adds the next record of a log whose records the caller wrote itself and takes as
    /// authentic once the checkpoints prove it: the enclave recovering its own log. Only what
    /// authenticity cannot replace is checked: the index, genesis, and the attestation
    /// documents of `enclave_start` records, which make log keys. Skipped, because the
    /// writer checked them before writing: the canonical form, the embedded requests, and
    /// the documents of approval records. To keep that sound, [`LogVerifier::finish`] then
    /// refuses any record no checkpoint covers, whatever [`VerifyOptions`] says.
    ///
    /// A failure here is reported as found, without the exact diagnosis [`Self::add_record`]
    /// gives; a caller that must name the first bad record runs that on failure.
    pub fn add_authenticated_record(&mut self, bytes: &[u8]) -> Result<(), LogError> {
        self.guard(|this| this.add_authenticated_record_inner(bytes))
    }

    /// Ends verification.
    pub fn finish(self) -> Result<LogSummary, LogError> {
        self.finish_with_tree().map(|(summary, _)| summary)
    }

    /// Ends verification and hands over the tree, for recovery to go on appending.
    pub fn finish_with_tree(mut self) -> Result<(LogSummary, MerkleTree), LogError> {
        if let Some(error) = self.failed.take() {
            return Err(error);
        }
        if let Some(error) = self.flush_queued() {
            return Err(error);
        }
        let records = self.tree.size();
        let Some((genesis_hash, origin)) = self.genesis.take() else {
            return Err(LogError::at(0, LogErrorKind::EmptyLog));
        };
        if let Some(first) = self.pending.front() {
            return Err(LogError::at(
                records,
                LogErrorKind::Truncated {
                    checkpoint: first.number,
                    size: first.checkpoint.size,
                    records,
                },
            ));
        }
        let (checkpoint_size, root) = match &self.last_verified {
            Some(v) => (v.size, v.root),
            None => (0, crate::hash::empty_root()),
        };
        let unsigned_allowed = self.options.allow_unsigned_tail && !self.authenticated_only;
        if checkpoint_size < records && !unsigned_allowed {
            return Err(LogError::at(
                checkpoint_size,
                LogErrorKind::UnsignedRecords {
                    from: checkpoint_size,
                    records,
                },
            ));
        }
        let summary = LogSummary {
            records,
            checkpoint_size,
            root,
            checkpoints: self.checked,
            genesis_hash,
            origin,
            log_keys: self.log_keys,
        };
        Ok((summary, self.tree))
    }

    /// Runs `step` unless a previous step failed; remembers its failure.
    fn guard<T>(
        &mut self,
        step: impl FnOnce(&mut Self) -> Result<T, LogError>,
    ) -> Result<T, LogError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        step(self).map_err(|error| {
            // Checks still queued belong to earlier records: a failure among them comes
            // first.
            let first = match self.flush_queued() {
                Some(queued) if queued.index <= error.index || error.index.is_none() => queued,
                _ => error,
            };
            self.failed = Some(first.clone());
            first
        })
    }

    /// Runs every queued check (checkpoint signatures, deferred request checks) and
    /// returns the failure with the lowest index, if any.
    fn flush_queued(&mut self) -> Option<LogError> {
        let signatures = self.signatures.flush().err();
        let requests = self.flush_requests().err();
        match (signatures, requests) {
            (Some(a), Some(b)) => Some(if b.index < a.index { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    fn flush_requests(&self) -> Result<(), LogError> {
        self.requests.flush().map_err(|(index, source)| {
            LogError::at(
                index,
                LogErrorKind::Request {
                    source: Arc::new(source),
                },
            )
        })
    }

    fn add_checkpoint_inner(&mut self, text: &str) -> Result<(), LogError> {
        let number = self.added;
        self.added += 1;
        let (note, checkpoint) = checkpoint::parse_unverified(text).map_err(|source| {
            LogError::unplaced(LogErrorKind::CheckpointMalformed {
                checkpoint: number,
                source,
            })
        })?;
        match self.last_added_size {
            Some(previous) if checkpoint.size == previous => {
                return Err(LogError::unplaced(LogErrorKind::CheckpointRepeated {
                    checkpoint: number,
                    size: checkpoint.size,
                }));
            }
            Some(previous) if checkpoint.size < previous => {
                return Err(LogError::unplaced(LogErrorKind::CheckpointOrder {
                    checkpoint: number,
                    size: checkpoint.size,
                    previous,
                }));
            }
            _ => {}
        }
        self.last_added_size = Some(checkpoint.size);
        self.pending.push_back(PendingCheckpoint {
            number,
            note,
            checkpoint,
        });
        self.check_reached_checkpoints()
    }

    fn add_record_inner(&mut self, bytes: &[u8]) -> Result<Record, LogError> {
        let index = self.tree.size();
        let at = |kind| LogError::at(index, kind);
        let record = Record::from_bytes(bytes).map_err(|e| at(LogErrorKind::Record(e)))?;
        self.check_placement(
            bytes,
            record.seq,
            record.kind,
            record.attestation.as_deref(),
            RecordHashDocuments::Check,
        )?;
        self.requests.check(&record).map_err(|source| {
            at(LogErrorKind::Request {
                source: Arc::new(source),
            })
        })?;
        self.tree.push(leaf_hash(bytes));
        self.check_reached_checkpoints()?;
        if self.tree.size() % REQUEST_CHECKS_DEFERRED == 0 {
            self.flush_requests()?;
        }
        Ok(record)
    }

    fn add_authenticated_record_inner(&mut self, bytes: &[u8]) -> Result<(), LogError> {
        let index = self.tree.size();
        let at = |e| LogError::at(index, LogErrorKind::Record(e));
        let header = RecordHeader::parse(bytes).map_err(at)?;
        // Only genesis (its record hash) and the documents that make log keys need the
        // attestation field; the header places every other record.
        let document =
            if self.genesis.is_none() || header.kind.attestation() == AttestationRule::LogKey {
                RecordFields::parse(bytes).map_err(at)?.attestation
            } else {
                None
            };
        self.authenticated_only = true;
        self.check_placement(
            bytes,
            header.seq,
            header.kind,
            document,
            RecordHashDocuments::Skip,
        )?;
        self.tree.push(leaf_hash(bytes));
        self.check_reached_checkpoints()
    }

    /// What every record is checked for, whoever reads it: its index, its place relative
    /// to genesis, and the attestation documents its kind requires.
    fn check_placement(
        &mut self,
        bytes: &[u8],
        seq: u64,
        kind: RecordKind,
        document: Option<&[u8]>,
        record_hash_documents: RecordHashDocuments,
    ) -> Result<(), LogError> {
        let index = self.tree.size();
        let at = |kind| LogError::at(index, kind);
        if seq != index {
            return Err(at(LogErrorKind::SeqMismatch { found: seq }));
        }
        let (genesis_hash, origin) = match (&self.genesis, kind) {
            (None, RecordKind::Genesis) => {
                let hash = record_hash_from(bytes, document);
                self.genesis.insert((hash, log_origin(&hash))).clone()
            }
            (None, found) => return Err(at(LogErrorKind::NotGenesis { found })),
            (Some(_), RecordKind::Genesis) => return Err(at(LogErrorKind::GenesisAgain)),
            (Some(genesis), _) => genesis.clone(),
        };
        match (kind.attestation(), record_hash_documents) {
            (AttestationRule::None, _)
            | (AttestationRule::RecordHash, RecordHashDocuments::Skip) => {}
            (AttestationRule::LogKey, _) => {
                let attested = self
                    .attest(kind, document, genesis_hash.as_bytes())
                    .map_err(at)?;
                let image = image_of(&attested.pcrs);
                if self.log_keys.is_empty() {
                    self.check_genesis_image(&attested.pcrs).map_err(at)?;
                }
                let era = match self.log_keys.last() {
                    Some(last) if last.image == image => last.era,
                    _ => index,
                };
                let key = attested
                    .public_key
                    .ok_or_else(|| at(LogErrorKind::NoLogKey))?;
                let key = <[u8; PUBLIC_KEY_LEN]>::try_from(key.as_slice())
                    .map_err(|_| at(LogErrorKind::BadLogKey { len: key.len() }))?;
                // INVARIANT: the origin is a valid key name by construction.
                let verifier = NoteVerifier::new(&origin, key)
                    .map_err(|_| at(LogErrorKind::BadLogKey { len: key.len() }))?;
                self.decoded_keys.push(VerifyingKey::from_bytes(&key).ok());
                self.log_keys.push(LogKey {
                    index,
                    verifier,
                    image,
                    era,
                });
            }
            (AttestationRule::RecordHash, RecordHashDocuments::Check) => {
                let own = record_hash_from(bytes, document);
                let attested = self.attest(kind, document, own.as_bytes()).map_err(at)?;
                if let Some(writer) = self.log_keys.last() {
                    let image = image_of(&attested.pcrs);
                    if image != writer.image {
                        let pcr0 = |image: &Image| {
                            image
                                .get(&0)
                                .map_or_else(|| "absent".to_owned(), hex::encode)
                        };
                        return Err(at(LogErrorKind::ForeignImage {
                            kind,
                            start: writer.index,
                            found: pcr0(&image),
                            expected: pcr0(&writer.image),
                        }));
                    }
                }
            }
        }
        Ok(())
    }

    /// The first `enclave_start` must show the pinned genesis image, if any.
    fn check_genesis_image(&self, pcrs: &BTreeMap<u16, Vec<u8>>) -> Result<(), LogErrorKind> {
        let Some(pinned) = &self.genesis_image else {
            return Ok(());
        };
        for (index, expected) in pinned {
            let found = pcrs.get(index);
            if found != Some(expected) {
                return Err(LogErrorKind::GenesisImage {
                    pcr: *index,
                    expected: hex::encode(expected),
                    found: found.map_or_else(|| "absent".to_owned(), hex::encode),
                });
            }
        }
        Ok(())
    }

    fn attest(
        &self,
        kind: RecordKind,
        document: Option<&[u8]>,
        expected: &[u8],
    ) -> Result<AttestedDocument, LogErrorKind> {
        let document = document.ok_or(LogErrorKind::MissingAttestation { kind })?;
        self.attestation
            .check_document(document, expected)
            .map_err(|source| LogErrorKind::Attestation {
                kind,
                source: Arc::new(source),
            })
    }

    /// Checks every pending checkpoint the records have reached.
    fn check_reached_checkpoints(&mut self) -> Result<(), LogError> {
        while self
            .pending
            .front()
            .is_some_and(|p| p.checkpoint.size <= self.tree.size())
        {
            if let Some(pending) = self.pending.pop_front() {
                self.check_checkpoint(pending)?;
            }
        }
        Ok(())
    }

    fn check_checkpoint(&mut self, pending: PendingCheckpoint) -> Result<(), LogError> {
        let PendingCheckpoint {
            number,
            note,
            checkpoint,
        } = pending;
        let size = checkpoint.size;
        // The records this checkpoint adds to the previous one: the first is the index to
        // name when it fails.
        let batch_start = self.last_verified.as_ref().map_or(0, |v| v.size);
        let fail = |kind| Err(LogError::at(batch_start, kind));

        let origin = self.genesis.as_ref().map(|(_, origin)| origin.as_str());
        if let Some(expected) = origin {
            if checkpoint.origin != expected {
                return fail(LogErrorKind::CheckpointOrigin {
                    checkpoint: number,
                    found: checkpoint.origin,
                    expected: expected.to_owned(),
                });
            }
        }
        // Every signature line by a log key attested below `size` is queued for batch
        // verification; lines by other keys are ignored, as signed-note verifiers must.
        let text = note.unverified_text().as_bytes();
        // The era of the last enclave_start inside this checkpoint: only its keys count.
        let era = self
            .log_keys
            .iter()
            .rev()
            .find(|key| key.index < size)
            .map(|key| key.era);
        let mut known = 0usize;
        let mut superseded = None;
        for sig in note.signatures() {
            let keys = self.log_keys.iter().zip(&self.decoded_keys);
            for (key, decoded) in keys.filter(|(key, _)| key.index < size) {
                if key.verifier.key_id() != sig.key_id || key.verifier.name() != sig.name {
                    continue;
                }
                if Some(key.era) != era {
                    // A key of an image another image's start superseded: it signs nothing
                    // past that start. Ignored, as an unknown key is; named if it is all.
                    superseded.get_or_insert(key.index);
                    continue;
                }
                known += 1;
                let origin = Origin {
                    checkpoint: number,
                    size,
                    batch_start,
                    name: &sig.name,
                    key_id: sig.key_id,
                };
                match decoded {
                    Some(decoded) => {
                        self.signatures
                            .push(origin, text, &sig.signature, *decoded)?;
                    }
                    None => return Err(batch::bad_signature(&origin)),
                }
            }
        }
        if let (0, Some(key_index), Some(superseded_by)) = (known, superseded, era) {
            return fail(LogErrorKind::SupersededKey {
                checkpoint: number,
                size,
                key_index,
                superseded_by,
            });
        }
        if known == 0 {
            return fail(LogErrorKind::CheckpointSignature {
                checkpoint: number,
                size,
                source: NoteError::NoKnownSignature,
            });
        }
        let root = self.tree.root_at(size);
        if root != Some(checkpoint.root) {
            return fail(LogErrorKind::RootMismatch {
                checkpoint: number,
                size,
            });
        }
        // Consistency with the previous checkpoint needs no proof here: both roots were
        // checked against the one append-only tree this verifier builds from the records, so
        // the older tree is a prefix of the newer one. (Generating and checking a proof from
        // that same tree could only agree; it cost a tenth of recovering a long log.)
        self.last_verified = Some(Verified {
            size,
            root: checkpoint.root,
        });
        self.checked += 1;
        Ok(())
    }
}

/// Verifies a whole log. Each checkpoint is added before the records it covers, so errors
/// come in record order, and at most one checkpoint waits in memory at a time.
pub fn verify_log<A, R, I, B, C, S>(
    records: I,
    checkpoints: C,
    attestation: A,
    requests: R,
    options: VerifyOptions,
) -> Result<LogSummary, LogError>
where
    A: AttestationChecker,
    R: RequestChecker,
    I: IntoIterator<Item = B>,
    B: AsRef<[u8]>,
    C: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut verifier = LogVerifier::new(attestation, requests, options);
    let mut records = records.into_iter();
    for note in checkpoints {
        verifier.add_checkpoint(note.as_ref())?;
        while verifier.waiting_checkpoints() > 0 {
            match records.next() {
                Some(record) => {
                    verifier.add_record(record.as_ref())?;
                }
                // The log ends before this checkpoint: `finish` reports the truncation.
                None => break,
            }
        }
    }
    for record in records {
        verifier.add_record(record.as_ref())?;
    }
    verifier.finish()
}
