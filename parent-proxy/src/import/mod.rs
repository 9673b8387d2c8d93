//! `parent-proxy import`: a new log store rebuilt from a `govctl audit fetch` directory,
//! written only once the whole directory has verified.
//!
//! The directory is as untrusted as the parent: it is verified with the shared log verifier
//! (`ea_audit`'s [`LogVerifier`]), driven as `govctl audit verify` drives it (each checkpoint
//! added just before the records it covers, records one at a time, so memory grows with the
//! tree, not the log), with the same attestation checker ([`ea_ledger::DocumentChecker`],
//! against the pinned root and PCRs, the image's pinning the log's genesis image) and the
//! same rules for embedded requests and the log's own image admissions ([`requests`]). The first failure refuses the import and names the first record it
//! implicates, as `govctl audit verify` would.
//!
//! The store is written as it is read, under a temporary name ([`StoreBuilder`]), and named
//! only after the verifier's last check: a refused directory leaves nothing behind.
//!
//! An import restores the log, not what the store keeps beside it: `audit fetch` does not
//! export the sealed log key. An enclave that seals its key through KMS (`--log-key kms`)
//! refuses to start on a log without one; [`import`] can take the sealed key from a backup
//! of the same log ([`read_kept_key`]), which is only ciphertext bound to this log's genesis.

pub mod export_dir;
pub mod requests;
pub mod trust;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use ea_audit::verify::{AttestationChecker, RequestChecker, VerifyOptions};
use ea_audit::{LogError, LogSummary, LogVerifier};

use crate::store::{read_kept_key, BuiltStore, KeptKey, StoreBuilder, StoreError, StoreFileError};
use export_dir::{NoteFileError, NoteReader, RecordFileError, RecordReader, CHECKPOINTS, RECORDS};

/// Why a directory does not verify.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The log verifier refused it.
    #[error("{}", .0.kind)]
    Log(#[from] LogError),
    /// The records file is damaged.
    #[error(transparent)]
    Records(#[from] RecordFileError),
    /// The checkpoints file is damaged.
    #[error(transparent)]
    Checkpoints(#[from] NoteFileError),
}

impl Refusal {
    /// The first record the failure implicates, if any.
    pub fn index(&self) -> Option<u64> {
        match self {
            Refusal::Log(error) => error.index,
            Refusal::Records(error) => error.index(),
            Refusal::Checkpoints(_) => None,
        }
    }
}

/// " at record N", or nothing.
fn at_record(index: Option<u64>) -> String {
    index.map(|i| format!(" at record {i}")).unwrap_or_default()
}

/// Why an import did not happen. In every case nothing was written at the store path.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A file of the directory could not be opened.
    #[error(
        "{} cannot be opened ({source}); nothing was written: give a directory written by \
         `govctl audit fetch`",
        path.display()
    )]
    Directory {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The directory does not verify.
    #[error(
        "the log in {} is refused{}: {refusal}; nothing was written",
        dir.display(),
        at_record(refusal.index())
    )]
    Refused {
        /// The directory.
        dir: PathBuf,
        /// What the verifier found.
        refusal: Refusal,
    },
    /// The destination cannot receive a store, or the store could not be written.
    #[error(transparent)]
    Destination(#[from] StoreFileError),
    /// Writing the new store failed.
    #[error("writing the new store failed: {0}; nothing was written")]
    Store(#[from] StoreError),
    /// `--sealed-key-from` names a store without a sealed key.
    #[error(
        "{} holds no sealed log key; nothing was written: give a backup taken after the \
         enclave first started with --log-key kms, or leave --sealed-key-from out",
        path.display()
    )]
    NoSealedKey {
        /// The store given.
        path: PathBuf,
    },
    /// `--sealed-key-from` names a store of another log.
    #[error(
        "{} is a store of another log (its record 0 differs from the directory's): its sealed \
         key would not open for this log; nothing was written",
        path.display()
    )]
    SealedKeyOfAnotherLog {
        /// The store given.
        path: PathBuf,
    },
}

/// What an import wrote.
#[derive(Debug, Clone)]
pub struct ImportSummary {
    /// The store written.
    pub store: BuiltStore,
    /// What the verifier established about the log.
    pub log: LogSummary,
}

/// Where a sealed log key for the new store comes from.
#[derive(Debug, Clone)]
pub struct SealedKeySource {
    /// The store (or backup) it was read from.
    pub path: PathBuf,
    /// What that store keeps.
    pub kept: KeptKey,
}

impl SealedKeySource {
    /// Reads the sealed key and first record of the store (or backup) at `path`.
    pub fn read(path: &Path) -> Result<SealedKeySource, ImportError> {
        let kept = read_kept_key(path)?;
        if kept.sealed.is_none() {
            return Err(ImportError::NoSealedKey {
                path: path.to_owned(),
            });
        }
        Ok(SealedKeySource {
            path: path.to_owned(),
            kept,
        })
    }
}

fn open(dir: &Path, name: &str) -> Result<BufReader<File>, ImportError> {
    let path = dir.join(name);
    File::open(&path)
        .map(BufReader::new)
        .map_err(|source| ImportError::Directory { path, source })
}

/// How the directory is verified: as `govctl audit verify` does it.
pub struct Verification<A, R> {
    /// Checks the attestation documents (root, the PCRs every document must show).
    pub attestation: A,
    /// Checks each record's embedded request, and follows the log's keys and images.
    pub requests: R,
    /// The image PCRs (0, 1, 2, 8) the log's first `enclave_start` must show; later images
    /// are the log's to admit.
    pub genesis_image: Option<BTreeMap<u16, Vec<u8>>>,
}

/// Verifies the export in `dir` as `verification` says, and writes it as a new store at
/// `store_path` (which must not exist, or be an empty store no process has open), with the
/// sealed keys of `sealed_key` if given. See the module documentation.
pub fn import<A: AttestationChecker, R: RequestChecker>(
    dir: &Path,
    store_path: &Path,
    verification: Verification<A, R>,
    sealed_key: Option<&SealedKeySource>,
) -> Result<ImportSummary, ImportError> {
    let Verification {
        attestation,
        requests,
        genesis_image,
    } = verification;
    let records = open(dir, RECORDS)?;
    let notes = open(dir, CHECKPOINTS)?;
    // The destination is checked before the (long) verification, and again at the end.
    let mut builder = StoreBuilder::create(store_path)?;
    let refused = |refusal: Refusal| ImportError::Refused {
        dir: dir.to_owned(),
        refusal,
    };
    let mut verifier = LogVerifier::new(attestation, requests, VerifyOptions::default());
    if let Some(pcrs) = genesis_image {
        verifier = verifier.pin_genesis_image(pcrs);
    }
    let mut records = RecordReader::new(records);
    let mut notes = NoteReader::new(notes);
    let mut first_record = None;
    let mut add = |verifier: &mut LogVerifier<A, R>,
                   builder: &mut StoreBuilder,
                   bytes: Vec<u8>|
     -> Result<(), ImportError> {
        verifier.add_record(&bytes).map_err(|e| refused(e.into()))?;
        builder.push_record(&bytes)?;
        if first_record.is_none() {
            first_record = Some(bytes);
        }
        Ok(())
    };
    while let Some(note) = notes.next_note().map_err(|e| refused(e.into()))? {
        verifier
            .add_checkpoint(&note)
            .map_err(|e| refused(e.into()))?;
        builder.push_checkpoint(&note)?;
        while verifier.waiting_checkpoints() > 0 {
            match records.next_record().map_err(|e| refused(e.into()))? {
                Some(bytes) => add(&mut verifier, &mut builder, bytes)?,
                // The records end before this checkpoint: `finish` names the truncation.
                None => break,
            }
        }
    }
    // Records after the last checkpoint: refused by `finish` (unsigned), named there.
    while let Some(bytes) = records.next_record().map_err(|e| refused(e.into()))? {
        add(&mut verifier, &mut builder, bytes)?;
    }
    let log = verifier.finish().map_err(|e| refused(e.into()))?;
    if let Some(source) = sealed_key {
        if source.kept.first_record != first_record {
            return Err(ImportError::SealedKeyOfAnotherLog {
                path: source.path.clone(),
            });
        }
        if let Some(sealed) = &source.kept.sealed {
            builder.put_sealed_key(sealed)?;
        }
    }
    let store = builder.publish()?;
    Ok(ImportSummary { store, log })
}

#[cfg(test)]
mod tests;
