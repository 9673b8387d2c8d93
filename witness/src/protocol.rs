//! The `add-checkpoint` decision, without I/O: what the witness checks before it touches its
//! state ([`Witness::check`]), what it checks against its state ([`Submission::advance`]),
//! and the cosignature it answers with ([`Witness::cosign`]).
//!
//! The checks and their answers, in the order the C2SP tlog-witness spec states them:
//!
//! | check | refusal | HTTP |
//! |---|---|---|
//! | the body, the note and the checkpoint text parse | [`Refusal::Malformed`], [`Refusal::BadCheckpoint`] | 400 |
//! | the origin is a configured log | [`Refusal::UnknownOrigin`] | 404 |
//! | a configured key of that log signed, and no configured key's signature fails | [`Refusal::NotSignedByLog`] | 403 |
//! | `old` is at most the checkpoint's size | [`Refusal::OldBeyondSize`] | 400 |
//! | `old` is the size this witness last cosigned for the log (0 if none) | [`Refusal::OldSizeMismatch`] | 409, body `<stored size>\n` |
//! | for equal sizes, the roots are equal | [`Refusal::RootMismatch`] | 409 |
//! | the consistency proof from the stored tree verifies (empty from size 0 and for equal sizes) | [`Refusal::BadProof`] | 422 |
//!
//! and two this witness adds: a checkpoint of size 0 must carry the empty tree's root (422,
//! as the spec's editor's draft says), and sizes above `2^63 - 1` are refused (400: SQLite
//! stores signed 64-bit integers).

use std::collections::BTreeMap;

use ea_audit::checkpoint::{open_checkpoint, Checkpoint, CheckpointError};
use ea_audit::cosignature::{
    check_public_key, CosignatureError, CosignatureSigner, WeakKey, MAX_TIMESTAMP,
};
use ea_audit::hash::{empty_root, Hash};
use ea_audit::note::{NoteError, NoteVerifier};
use ea_audit::proof::{verify_consistency, ProofError};

use crate::request::{self, RequestError};

/// The largest tree size this witness records.
pub const MAX_SIZE: u64 = i64::MAX as u64;

/// Why a request is refused, and so which HTTP status answers it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The request body is malformed.
    #[error("malformed request: {0}")]
    Malformed(#[from] RequestError),
    /// The checkpoint note or its text is malformed.
    #[error("malformed checkpoint: {0}")]
    BadCheckpoint(CheckpointError),
    /// No log of this origin is configured.
    #[error("unknown log origin {origin:?}")]
    UnknownOrigin {
        /// The checkpoint's origin.
        origin: String,
    },
    /// No configured key of the log signed the checkpoint, or one's signature failed.
    #[error("the checkpoint is not signed by a trusted key of {origin}: {source}")]
    NotSignedByLog {
        /// The checkpoint's origin.
        origin: String,
        /// What the note verification found.
        source: NoteError,
    },
    /// `old` is larger than the checkpoint's size.
    #[error("old size {old} is larger than the checkpoint's size {size}")]
    OldBeyondSize {
        /// The old size sent.
        old: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// A size this witness cannot store.
    #[error("tree sizes above 2^63 - 1 are not supported, got {size}")]
    SizeTooLarge {
        /// The checkpoint's size.
        size: u64,
    },
    /// `old` is not the size this witness last cosigned for the log.
    #[error("old size {old} is not the size of the latest cosigned checkpoint, {stored}")]
    OldSizeMismatch {
        /// The old size sent.
        old: u64,
        /// The size of the latest checkpoint this witness cosigned (0 if none).
        stored: u64,
    },
    /// The checkpoint has the size of the latest cosigned one but another root: a fork.
    #[error("the checkpoint has size {size}, as the latest cosigned one, but another root")]
    RootMismatch {
        /// The size.
        size: u64,
    },
    /// A checkpoint of size 0 whose root is not the empty tree's.
    #[error("a checkpoint of size 0 must carry the root of the empty tree")]
    EmptyTreeRoot,
    /// The consistency proof does not verify from the stored tree to the checkpoint.
    #[error("the consistency proof from size {old} to size {size} does not verify: {source}")]
    BadProof {
        /// The stored (and old) size.
        old: u64,
        /// The checkpoint's size.
        size: u64,
        /// Why the proof failed.
        source: ProofError,
    },
}

impl Refusal {
    /// The HTTP status code the spec gives this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Malformed(_)
            | Refusal::BadCheckpoint(_)
            | Refusal::OldBeyondSize { .. }
            | Refusal::SizeTooLarge { .. } => 400,
            Refusal::NotSignedByLog { .. } => 403,
            Refusal::UnknownOrigin { .. } => 404,
            Refusal::OldSizeMismatch { .. } | Refusal::RootMismatch { .. } => 409,
            Refusal::EmptyTreeRoot | Refusal::BadProof { .. } => 422,
        }
    }
}

/// Why a witness cannot be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A log key that cannot be trusted.
    #[error("the log key {key} is refused: {problem}")]
    WeakLogKey {
        /// The verifier key.
        key: String,
        /// What is wrong with it.
        problem: WeakKey,
    },
    /// No log configured.
    #[error("no log configured: give at least one --log ORIGIN=VKEY")]
    NoLogs,
}

/// What the witness knows about one log: the latest checkpoint it cosigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogState {
    /// Its size (0 before the first).
    pub size: u64,
    /// Its root (the empty tree's before the first).
    pub root: Hash,
    /// When it was cosigned (POSIX seconds; 0 before the first).
    pub cosigned_at: u64,
}

impl LogState {
    /// The state of a log never cosigned: size 0, the empty tree's root.
    pub fn empty() -> Self {
        Self {
            size: 0,
            root: empty_root(),
            cosigned_at: 0,
        }
    }
}

/// A request that passed the checks that need no state: its checkpoint is signed by the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    old: u64,
    proof: Vec<Hash>,
    checkpoint: Checkpoint,
    note: String,
}

impl Submission {
    /// The checkpoint.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The old size the client sent.
    pub fn old(&self) -> u64 {
        self.old
    }

    /// The signed note, as received.
    pub fn note(&self) -> &str {
        &self.note
    }

    /// The checks against what the witness stored for this log: the state to store if the
    /// checkpoint is accepted. Its time is `now`, or the stored time if that is later, so
    /// that the witness's cosignatures of one log never go back in time.
    pub fn advance(&self, stored: &LogState, now: u64) -> Result<LogState, Refusal> {
        let size = self.checkpoint.size;
        if self.old != stored.size {
            return Err(Refusal::OldSizeMismatch {
                old: self.old,
                stored: stored.size,
            });
        }
        if size == stored.size && self.checkpoint.root != stored.root {
            return Err(Refusal::RootMismatch { size });
        }
        verify_consistency(
            stored.size,
            size,
            &stored.root,
            &self.checkpoint.root,
            &self.proof,
        )
        .map_err(|source| Refusal::BadProof {
            old: stored.size,
            size,
            source,
        })?;
        Ok(LogState {
            size,
            root: self.checkpoint.root,
            cosigned_at: now.min(MAX_TIMESTAMP).max(stored.cosigned_at),
        })
    }
}

/// A witness: its key, and the logs it follows with their keys.
#[derive(Debug)]
pub struct Witness {
    cosigner: CosignatureSigner,
    logs: BTreeMap<String, Vec<NoteVerifier>>,
}

impl Witness {
    /// A witness cosigning with `cosigner` for the logs whose keys are `log_keys` (a log is
    /// known by its origin, which is its keys' name; a log may have several keys).
    pub fn new(
        cosigner: CosignatureSigner,
        log_keys: impl IntoIterator<Item = NoteVerifier>,
    ) -> Result<Self, ConfigError> {
        let mut logs: BTreeMap<String, Vec<NoteVerifier>> = BTreeMap::new();
        for key in log_keys {
            check_public_key(key.public_key()).map_err(|problem| ConfigError::WeakLogKey {
                key: key.to_string(),
                problem,
            })?;
            let keys = logs.entry(key.name().to_owned()).or_default();
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        if logs.is_empty() {
            return Err(ConfigError::NoLogs);
        }
        Ok(Self { cosigner, logs })
    }

    /// The witness's key.
    pub fn cosigner(&self) -> &CosignatureSigner {
        &self.cosigner
    }

    /// The logs followed, by origin, with their keys.
    pub fn logs(&self) -> &BTreeMap<String, Vec<NoteVerifier>> {
        &self.logs
    }

    /// The checks that need no state: the body parses, the origin is known, the log signed.
    pub fn check(&self, body: &[u8]) -> Result<Submission, Refusal> {
        let request = request::parse(body)?;
        let (_, checkpoint) = ea_audit::checkpoint::parse_unverified(&request.note)
            .map_err(Refusal::BadCheckpoint)?;
        let Some(keys) = self.logs.get(&checkpoint.origin) else {
            return Err(Refusal::UnknownOrigin {
                origin: checkpoint.origin,
            });
        };
        let verified =
            open_checkpoint(&request.note, keys, Some(&checkpoint.origin)).map_err(|error| {
                match error {
                    CheckpointError::Note(source) => Refusal::NotSignedByLog {
                        origin: checkpoint.origin.clone(),
                        source,
                    },
                    other => Refusal::BadCheckpoint(other),
                }
            })?;
        let checkpoint = verified.checkpoint().clone();
        if request.old > checkpoint.size {
            return Err(Refusal::OldBeyondSize {
                old: request.old,
                size: checkpoint.size,
            });
        }
        if checkpoint.size > MAX_SIZE {
            return Err(Refusal::SizeTooLarge {
                size: checkpoint.size,
            });
        }
        if checkpoint.size == 0 && checkpoint.root != empty_root() {
            return Err(Refusal::EmptyTreeRoot);
        }
        Ok(Submission {
            old: request.old,
            proof: request.proof,
            checkpoint,
            note: request.note,
        })
    }

    /// The cosignature line (newline included) for an accepted submission, at the time of
    /// the state stored for it.
    pub fn cosign(
        &self,
        submission: &Submission,
        state: &LogState,
    ) -> Result<String, CosignatureError> {
        self.cosigner
            .sign(state.cosigned_at, &submission.checkpoint.to_text())
    }
}

#[cfg(test)]
mod tests;
