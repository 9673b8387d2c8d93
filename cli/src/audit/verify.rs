//! `govctl audit verify`: streams a fetched log through ea-audit's [`LogVerifier`] with the
//! attestation checker ([`super::attest`]) and the request checker ([`super::requests`]).
//!
//! Records are read one at a time, and each checkpoint is added just before the records it
//! covers (as `ea_audit::verify_log` does), so memory stays bounded by the tree, whatever
//! the size of the log. The first failure is reported with the first record it implicates.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ea_audit::cosignature::{verify_cosignatures, CosignatureError};
use ea_audit::note::NoteVerifier;
use ea_audit::receipt::{verify_receipt, ReceiptError};
use ea_audit::verify::{
    AttestationChecker, LogSummary, LogVerifier, RequestChecker, VerifyOptions,
};
use ea_audit::{LogError, MerkleTree};
use ea_ledger::RecordProof;
use serde::Serialize;

use super::attest::{self, DocumentChecker};
use super::layout::{
    self, Manifest, NoteFileError, NoteReader, RecordFileError, RecordReader, CHECKPOINTS, RECORDS,
    WITNESSED,
};
use super::requests::{LedgerKeys, SignatureChecker, SignatureFloor};
use super::VerifyArgs;
use crate::trust::WitnessPins;

/// Why a log directory does not verify.
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
    /// The log verifies but does not honour a receipt given with `--receipt`.
    #[error(transparent)]
    Receipt(#[from] ReceiptRefusal),
    /// The log verifies but does not extend a checkpoint given with `--since`.
    #[error(transparent)]
    Since(#[from] SinceRefusal),
    /// The log verifies but the witnesses required with `--witness` did not cosign a
    /// checkpoint it extends.
    #[error(transparent)]
    Witnessed(#[from] WitnessRefusal),
}

/// Why the witnesses required with `--witness` are not satisfied.
#[derive(Debug, thiserror::Error)]
pub enum WitnessRefusal {
    /// The directory holds no witnessed checkpoint.
    #[error(
        "{} holds no witnessed checkpoint ({WITNESSED}): the endpoint served none when it was \
         fetched (its parent submits to no witness, or none has cosigned yet), or the fetch \
         predates it; witnesses cannot be required",
        dir.display()
    )]
    Missing {
        /// The directory.
        dir: PathBuf,
    },
    /// The file cannot be read.
    #[error("{WITNESSED} cannot be read: {reason}")]
    Unreadable {
        /// Why.
        reason: String,
    },
    /// The note is not signed by one of the log's attested keys.
    #[error("the witnessed checkpoint is not signed by a log key this log attests: {reason}")]
    NotSignedByLog {
        /// Why.
        reason: String,
    },
    /// Fewer of the required witnesses cosigned it than the threshold.
    #[error("the witnessed checkpoint of size {size} lacks the required cosignatures: {source}")]
    Cosignatures {
        /// Its size.
        size: u64,
        /// What `verify_cosignatures` found.
        source: CosignatureError,
    },
    /// The log does not extend it.
    #[error(
        "the log does not extend the witnessed checkpoint of size {size} (the log holds \
         {records} records{}): the witnesses cosigned another history than this one (a fork), \
         or the log was cut",
        if *records >= *size { ", with another root at that size" } else { "" }
    )]
    NotExtended {
        /// Its size.
        size: u64,
        /// The log's size.
        records: u64,
    },
}

/// The witnessed checkpoint that satisfied `--witness`.
#[derive(Debug, Serialize)]
pub struct WitnessedReport {
    /// Its size.
    size: u64,
    /// Its root (base64).
    root: String,
    /// The threshold required.
    threshold: usize,
    /// Distinct witnesses pinned.
    pinned: usize,
    /// The witnesses whose cosignatures verified, by name.
    witnesses: Vec<CosignerJson>,
}

#[derive(Debug, Serialize)]
struct CosignerJson {
    name: String,
    key: String,
    /// When it cosigned, POSIX seconds (as the witness states).
    timestamp: u64,
    /// The same, RFC 3339.
    time: String,
}

/// Checks the directory's witnessed checkpoint against `pins`: signed by one of the log's
/// attested keys, cosigned by at least `pins.threshold` distinct pinned witnesses, and
/// extended by the verified log (`tree`).
fn check_witnessed(
    dir: &Path,
    pins: &WitnessPins,
    summary: &LogSummary,
    tree: &MerkleTree,
) -> Result<WitnessedReport, WitnessRefusal> {
    let witnessed = layout::read_witnessed(dir)
        .map_err(|e| WitnessRefusal::Unreadable {
            reason: format!("{e:#}"),
        })?
        .ok_or_else(|| WitnessRefusal::Missing {
            dir: dir.to_owned(),
        })?;
    let keys: Vec<NoteVerifier> = summary
        .log_keys
        .iter()
        .map(|k| k.verifier.clone())
        .collect();
    let opened =
        ea_audit::checkpoint::open_checkpoint(&witnessed.checkpoint, &keys, Some(&summary.origin))
            .map_err(|e| WitnessRefusal::NotSignedByLog {
                reason: e.to_string(),
            })?;
    let checkpoint = opened.checkpoint();
    let cosigners = verify_cosignatures(&witnessed.checkpoint, &pins.keys, pins.threshold)
        .map_err(|source| WitnessRefusal::Cosignatures {
            size: checkpoint.size,
            source,
        })?;
    if tree.root_at(checkpoint.size) != Some(checkpoint.root) {
        return Err(WitnessRefusal::NotExtended {
            size: checkpoint.size,
            records: tree.size(),
        });
    }
    let pinned: std::collections::BTreeSet<&str> = pins.keys.iter().map(|k| k.name()).collect();
    Ok(WitnessedReport {
        size: checkpoint.size,
        root: STANDARD.encode(checkpoint.root.as_bytes()),
        threshold: pins.threshold,
        pinned: pinned.len(),
        witnesses: cosigners
            .iter()
            .map(|c| CosignerJson {
                name: c.witness().name().to_owned(),
                key: c.witness().to_string(),
                timestamp: c.timestamp(),
                time: i64::try_from(c.timestamp())
                    .ok()
                    .and_then(|s| jiff::Timestamp::from_second(s).ok())
                    .map_or_else(|| c.timestamp().to_string(), |t| t.to_string()),
            })
            .collect(),
    })
}

/// Why a log does not extend a checkpoint kept earlier (`--since`).
#[derive(Debug, thiserror::Error)]
pub enum SinceRefusal {
    /// The file holds no checkpoint this command reads.
    #[error("{}: not a checkpoint note, a checkpoint JSON or a trust file with a checkpoint: {reason}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Its signature does not verify with any key this log attests.
    #[error("{}: the checkpoint's signature does not verify with any log key this log attests: {reason}", path.display())]
    Unsigned {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The log is smaller, or has another root at that size.
    #[error(
        "{}: the log does not extend the checkpoint of size {size} (the log holds {records} \
         records{}): the log was rolled back or forked since",
        path.display(),
        if *records >= *size { ", with another root at that size" } else { "" }
    )]
    NotExtended {
        /// The file.
        path: PathBuf,
        /// The checkpoint's size.
        size: u64,
        /// The log's size.
        records: u64,
    },
}

/// A kept checkpoint: its size and root, its signature checked.
fn read_since(
    path: &Path,
    summary: &LogSummary,
    keys: &[NoteVerifier],
) -> Result<(u64, ea_audit::Hash), SinceRefusal> {
    let unreadable = |reason: String| SinceRefusal::Unreadable {
        path: path.to_owned(),
        reason,
    };
    let unsigned = |reason: String| SinceRefusal::Unsigned {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))?;
    let json: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    let note = match &json {
        None => Some(text.clone()),
        Some(value) => value
            .get("checkpoint")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned),
    };
    if let Some(note) = note {
        let verified = ea_audit::checkpoint::open_checkpoint(&note, keys, Some(&summary.origin))
            .map_err(|e| unsigned(e.to_string()))?;
        let checkpoint = verified.checkpoint();
        return Ok((checkpoint.size, checkpoint.root));
    }
    // A trust file: the answer signature it keeps, checked from its hashes.
    let kept = json
        .as_ref()
        .and_then(|v| v.get("checkpoint"))
        .ok_or_else(|| unreadable("no checkpoint in it".into()))?;
    let field = |name: &str| {
        kept.get(name)
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| unreadable(format!("its checkpoint has no {name}")))
    };
    let hash = |name: &str| -> Result<ea_audit::Hash, SinceRefusal> {
        field(name)?
            .parse()
            .map_err(|_| unreadable(format!("its checkpoint's {name} is not a hash")))
    };
    let signature = ea_audit::answer::AnswerSignature::from_header(field("signature")?)
        .map_err(|e| unreadable(e.to_string()))?;
    let status = kept
        .get("status")
        .and_then(serde_json::Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .ok_or_else(|| unreadable("its checkpoint has no status".into()))?;
    let (request_hash, answer_hash) = (hash("requestHash")?, hash("answerHash")?);
    let verified = keys.iter().any(|key| {
        signature
            .verify_hashed(key, &summary.origin, request_hash, status, answer_hash)
            .is_ok()
    });
    if !verified {
        return Err(unsigned("the answer signature it keeps".into()));
    }
    Ok((signature.size, signature.root))
}

/// Checks that the verified log extends every checkpoint in `paths`.
fn check_since(
    paths: &[PathBuf],
    summary: &LogSummary,
    tree: &MerkleTree,
) -> Result<(), SinceRefusal> {
    let keys: Vec<NoteVerifier> = summary
        .log_keys
        .iter()
        .map(|k| k.verifier.clone())
        .collect();
    for path in paths {
        let (size, root) = read_since(path, summary, &keys)?;
        if tree.root_at(size) != Some(root) {
            return Err(SinceRefusal::NotExtended {
                path: path.clone(),
                size,
                records: tree.size(),
            });
        }
        eprintln!(
            "govctl: the log extends the checkpoint of size {size} in {}",
            path.display()
        );
    }
    Ok(())
}

impl Refusal {
    /// The first record the failure implicates, if any.
    pub fn index(&self) -> Option<u64> {
        match self {
            Refusal::Log(error) => error.index,
            Refusal::Records(error) => error.index(),
            Refusal::Checkpoints(_) => None,
            Refusal::Receipt(
                ReceiptRefusal::Invalid { index, .. }
                | ReceiptRefusal::Missing { index, .. }
                | ReceiptRefusal::Rewritten { index, .. },
            ) => Some(*index),
            Refusal::Receipt(ReceiptRefusal::Unreadable { .. })
            | Refusal::Since(_)
            | Refusal::Witnessed(_) => None,
        }
    }
}

/// Records between two calls of the `between_chunks` hook of [`verify_files_in_chunks`].
const CHUNK: u64 = 4096;

/// Verifies the records and checkpoints read from `records` and `notes`.
#[cfg(test)]
fn verify_files<A: AttestationChecker, R: RequestChecker>(
    records: impl Read,
    notes: impl BufRead,
    attestation: A,
    requests: R,
) -> Result<(LogSummary, MerkleTree), Refusal> {
    verify_files_in_chunks(records, notes, attestation, requests, None, || {})
}

/// Verifies the records and checkpoints read from `records` and `notes`, calling
/// `between_chunks` after every [`CHUNK`] records and at the end.
fn verify_files_in_chunks<A: AttestationChecker, R: RequestChecker>(
    records: impl Read,
    notes: impl BufRead,
    attestation: A,
    requests: R,
    genesis_image: Option<BTreeMap<u16, Vec<u8>>>,
    mut between_chunks: impl FnMut(),
) -> Result<(LogSummary, MerkleTree), Refusal> {
    let mut verifier = LogVerifier::new(attestation, requests, VerifyOptions::default());
    if let Some(pcrs) = genesis_image {
        verifier = verifier.pin_genesis_image(pcrs);
    }
    let mut records = RecordReader::new(records);
    let mut notes = NoteReader::new(notes);
    let mut add = |verifier: &mut LogVerifier<A, R>, bytes: &[u8]| {
        verifier.add_record(bytes)?;
        if verifier.records() % CHUNK == 0 {
            between_chunks();
        }
        Ok::<(), Refusal>(())
    };
    while let Some(note) = notes.next_note()? {
        verifier.add_checkpoint(&note)?;
        while verifier.waiting_checkpoints() > 0 {
            match records.next_record()? {
                Some(bytes) => add(&mut verifier, &bytes)?,
                // The records end before this checkpoint: `finish` names the truncation.
                None => break,
            }
        }
    }
    while let Some(bytes) = records.next_record()? {
        add(&mut verifier, &bytes)?;
    }
    let verified = verifier.finish_with_tree()?;
    between_chunks();
    Ok(verified)
}

/// Why a receipt is not honoured by the log.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptRefusal {
    /// The file is not a reply with receipts.
    #[error("{}: not a reply with receipts: {reason}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The receipt itself does not verify against the log's attested keys.
    #[error("{}: the receipt of record {index} does not verify against this log's keys: {error}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The record's index.
        index: u64,
        /// Why.
        error: ReceiptError,
    },
    /// The log ends before the receipt's record.
    #[error(
        "{}: the enclave acknowledged record {index} (checkpoint of size {acknowledged}) but the \
         log holds {records} records: acknowledged records are missing (the log was rolled back \
         or truncated)",
        path.display()
    )]
    Missing {
        /// The file.
        path: PathBuf,
        /// The record's index.
        index: u64,
        /// The size of the receipt's checkpoint.
        acknowledged: u64,
        /// The log's size.
        records: u64,
    },
    /// The log holds another record, or another tree, than the receipt proves.
    #[error(
        "{}: the log differs from what the receipt of record {index} proves (checkpoint of size \
         {acknowledged}): the log was rewritten",
        path.display()
    )]
    Rewritten {
        /// The file.
        path: PathBuf,
        /// The record's index.
        index: u64,
        /// The size of the receipt's checkpoint.
        acknowledged: u64,
    },
}

/// The receipts a reply file carries: a whole reply (`records`), or one `{record, receipt}`.
fn read_receipts(path: &Path) -> Result<Vec<RecordProof>, ReceiptRefusal> {
    let unreadable = |reason: String| ReceiptRefusal::Unreadable {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read(path).map_err(|e| unreadable(e.to_string()))?;
    let value: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| unreadable(e.to_string()))?;
    let proofs = match value.get("records") {
        Some(records) => serde_json::from_value::<Vec<RecordProof>>(records.clone()),
        None => serde_json::from_value::<RecordProof>(value).map(|proof| vec![proof]),
    }
    .map_err(|e| unreadable(e.to_string()))?;
    if proofs.is_empty() {
        return Err(unreadable("it carries no records".into()));
    }
    Ok(proofs)
}

/// Checks that the verified log (`summary`, `tree`) holds every record the receipts in
/// `paths` prove, under checkpoints consistent with it.
fn check_receipts(
    paths: &[PathBuf],
    summary: &LogSummary,
    tree: &MerkleTree,
) -> Result<(), ReceiptRefusal> {
    let keys: Vec<NoteVerifier> = summary
        .log_keys
        .iter()
        .map(|k| k.verifier.clone())
        .collect();
    for path in paths {
        for proof in read_receipts(path)? {
            let index = proof.receipt.index;
            let verified =
                verify_receipt(&proof.record, &proof.receipt, &keys).map_err(|error| {
                    ReceiptRefusal::Invalid {
                        path: path.clone(),
                        index,
                        error,
                    }
                })?;
            let acknowledged = verified.checkpoint().size;
            if tree.size() < acknowledged {
                return Err(ReceiptRefusal::Missing {
                    path: path.clone(),
                    index,
                    acknowledged,
                    records: tree.size(),
                });
            }
            if tree.leaf(index) != Some(verified.leaf_hash())
                || tree.root_at(acknowledged) != Some(verified.checkpoint().root)
            {
                return Err(ReceiptRefusal::Rewritten {
                    path: path.clone(),
                    index,
                    acknowledged,
                });
            }
        }
    }
    Ok(())
}

#[derive(Debug, Serialize)]
struct LogKeyJson {
    /// The `enclave_start` record that attested it.
    index: u64,
    /// The key in signed-note verifier key format.
    key: String,
}

#[derive(Debug, Serialize)]
struct Verified<'a> {
    verified: bool,
    records: u64,
    checkpoint_size: u64,
    root: String,
    checkpoints: usize,
    origin: String,
    genesis_hash: String,
    log_keys: Vec<LogKeyJson>,
    /// Which records were written under which image.
    images: &'a [Era],
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fetched_at: Option<String>,
    /// With `--witness`: the witnessed checkpoint the log extends and who cosigned it.
    #[serde(skip_serializing_if = "Option::is_none")]
    witnessed: Option<&'a WitnessedReport>,
    timing: &'a Timing,
}

#[derive(Debug, Serialize)]
struct Refused {
    verified: bool,
    index: Option<u64>,
    error: String,
}

fn open(dir: &std::path::Path, name: &str) -> anyhow::Result<File> {
    let path = dir.join(name);
    File::open(&path).with_context(|| format!("opening {}", path.display()))
}

pub fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    // Checked before the (long) verification.
    let witness_pins = WitnessPins::parse(&args.witnesses, args.witness_threshold)?;
    let pins = attest::options(
        args.root.as_deref(),
        args.insecure_qemu_attestation,
        &args.pcrs,
        args.pcrs_file.as_deref(),
        args.allow_debug,
    )?;
    // Informational only: the verdict rests on the records and checkpoints alone.
    let manifest = layout::read_manifest(&args.dir)?;
    let records = BufReader::new(open(&args.dir, RECORDS)?);
    let notes = BufReader::new(open(&args.dir, CHECKPOINTS)?);
    let floor = SignatureFloor::default();
    let requests = match args.signature_floor {
        true => SignatureChecker::measuring(LedgerKeys::default(), &floor),
        false => SignatureChecker::new(LedgerKeys::default()),
    };
    let started = Instant::now();
    let outcome = verify_files_in_chunks(
        records,
        notes,
        DocumentChecker::new(pins.options),
        &requests,
        Some(pins.genesis_image),
        || floor.measure(),
    );
    // The floor's own checks ran in between; they are not the verification's time.
    let elapsed = started.elapsed().saturating_sub(floor.total().1);
    let outcome = outcome.and_then(|(summary, tree)| {
        check_receipts(&args.receipts, &summary, &tree)?;
        check_since(&args.since, &summary, &tree)?;
        let witnessed = witness_pins
            .as_ref()
            .map(|pins| check_witnessed(&args.dir, pins, &summary, &tree))
            .transpose()?;
        Ok((summary, witnessed))
    });
    match outcome {
        Ok((summary, witnessed)) => {
            let history = image_history(&summary, &requests.directory().image_history());
            if let Some(path) = &args.state_out {
                let state = requests
                    .into_directory()
                    .into_state()
                    .context("the verified log has no genesis")?;
                std::fs::write(path, state.to_json_pretty())
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            let timing = Timing::new(
                summary.records,
                elapsed,
                args.signature_floor.then(|| floor.total()),
            );
            print_verified(
                &summary,
                &history,
                manifest.as_ref(),
                witnessed.as_ref(),
                &timing,
                args.json,
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Err(refusal) => {
            print_refused(&refusal, args.json)?;
            Ok(ExitCode::from(1))
        }
    }
}

/// Verifies a fetched log as `govctl audit verify` does (the genesis image and other pins
/// in `pins`) and returns the policy state it replays to: for commands that act on what the
/// log says (`govctl kms-policy --from-log`).
pub fn verified_state(dir: &Path, pins: attest::Pins) -> anyhow::Result<ea_policy::PolicyState> {
    let records = BufReader::new(open(dir, RECORDS)?);
    let notes = BufReader::new(open(dir, CHECKPOINTS)?);
    let requests = SignatureChecker::new(LedgerKeys::default());
    let outcome = verify_files_in_chunks(
        records,
        notes,
        DocumentChecker::new(pins.options),
        &requests,
        Some(pins.genesis_image),
        || {},
    );
    if let Err(refusal) = outcome {
        match refusal.index() {
            Some(index) => anyhow::bail!(
                "the log in {} is refused at record {index}: {refusal}",
                dir.display()
            ),
            None => anyhow::bail!("the log in {} is refused: {refusal}", dir.display()),
        }
    }
    requests
        .into_directory()
        .into_state()
        .context("the verified log has no genesis")
}

/// How long verification took and, with `--signature-floor`, how that compares with the
/// embedded requests' signature checks alone.
#[derive(Debug, Serialize)]
struct Timing {
    seconds: f64,
    records_per_second: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    signature_floor: Option<Floor>,
}

#[derive(Debug, Serialize)]
struct Floor {
    /// Signatures verified alone.
    signatures: u64,
    /// The time they took.
    seconds: f64,
    /// The log's records over that time: the rate verification could reach if checking the
    /// signatures were all it did.
    records_per_second: f64,
    /// Verification's rate as a percentage of that floor.
    ratio_percent: f64,
}

impl Timing {
    fn new(records: u64, elapsed: Duration, floor: Option<(u64, Duration)>) -> Self {
        let rate = |time: Duration| records as f64 / time.as_secs_f64().max(1e-9);
        let records_per_second = rate(elapsed);
        Timing {
            seconds: elapsed.as_secs_f64(),
            records_per_second,
            signature_floor: floor.map(|(signatures, time)| Floor {
                signatures,
                seconds: time.as_secs_f64(),
                records_per_second: rate(time),
                ratio_percent: 100.0 * records_per_second / rate(time),
            }),
        }
    }
}

/// Which records were written under which image: one era per run of `enclave_start`
/// records of one image, with the records that admitted (and retired) it.
#[derive(Debug, Serialize)]
struct Era {
    /// The image's PCRs, `PCRn` → hex.
    pcrs: BTreeMap<String, String>,
    /// Its first `enclave_start` of the era.
    from: u64,
    /// The last record written under it.
    to: u64,
    /// The `enclave_start` records of the era (each attests a log key).
    starts: Vec<u64>,
    /// The record that admitted the image: the first `enclave_start` for the genesis image,
    /// 0 when the genesis document named it.
    #[serde(skip_serializing_if = "Option::is_none")]
    admitted_by: Option<u64>,
    /// The approval that admitted it.
    #[serde(skip_serializing_if = "Option::is_none")]
    approval_id: Option<String>,
    /// The record that retired it, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    retired_by: Option<u64>,
}

/// The eras of a verified log, from its log keys and the ledger's admissions.
fn image_history(summary: &LogSummary, admissions: &[ea_ledger::ImageAdmission]) -> Vec<Era> {
    let mut eras: Vec<Era> = Vec::new();
    for key in &summary.log_keys {
        match eras.last_mut() {
            Some(era) if era.from == key.era => era.starts.push(key.index),
            _ => {
                let image = ea_policy::ImagePcrs::from_pcrs(
                    key.image.iter().map(|(i, v)| (*i, v.as_slice())),
                )
                .ok();
                // The admission in force at this start: the last one before it.
                let admission = image.as_ref().and_then(|image| {
                    admissions
                        .iter()
                        .rev()
                        .find(|a| a.admitted_by <= key.index && a.pcrs.matches(image))
                });
                eras.push(Era {
                    pcrs: key
                        .image
                        .iter()
                        .map(|(i, v)| (format!("PCR{i}"), hex::encode(v)))
                        .collect(),
                    from: key.era,
                    to: key.era,
                    starts: vec![key.index],
                    admitted_by: admission.map(|a| a.admitted_by),
                    approval_id: admission
                        .and_then(|a| a.approval_id.as_ref())
                        .map(ToString::to_string),
                    retired_by: admission.and_then(|a| a.retired_by),
                });
            }
        }
    }
    let ends: Vec<u64> = eras
        .iter()
        .skip(1)
        .map(|era| era.from.saturating_sub(1))
        .chain([summary.records.saturating_sub(1)])
        .collect();
    for (era, to) in eras.iter_mut().zip(ends) {
        era.to = to;
    }
    eras
}

fn print_verified(
    summary: &LogSummary,
    history: &[Era],
    manifest: Option<&Manifest>,
    witnessed: Option<&WitnessedReport>,
    timing: &Timing,
    json: bool,
) -> io::Result<()> {
    let mut out = io::stdout().lock();
    if json {
        let report = Verified {
            verified: true,
            records: summary.records,
            checkpoint_size: summary.checkpoint_size,
            root: STANDARD.encode(summary.root.as_bytes()),
            checkpoints: summary.checkpoints,
            origin: summary.origin.clone(),
            genesis_hash: summary.genesis_hash.to_hex(),
            log_keys: summary
                .log_keys
                .iter()
                .map(|key| LogKeyJson {
                    index: key.index,
                    key: key.verifier.to_string(),
                })
                .collect(),
            images: history,
            endpoint: manifest.map(|m| m.endpoint.clone()),
            fetched_at: manifest.map(|m| m.fetched_at.clone()),
            witnessed,
            timing,
        };
        serde_json::to_writer_pretty(&mut out, &report)?;
        return writeln!(out);
    }
    writeln!(
        out,
        "verified {} records up to checkpoint {} (root {})",
        summary.records,
        summary.checkpoint_size,
        STANDARD.encode(summary.root.as_bytes())
    )?;
    writeln!(out, "log:         {}", summary.origin)?;
    writeln!(out, "genesis:     {}", summary.genesis_hash.to_hex())?;
    writeln!(out, "checkpoints: {}", summary.checkpoints)?;
    for key in &summary.log_keys {
        writeln!(
            out,
            "log key:     {} (attested by record {})",
            key.verifier, key.index
        )?;
    }
    for (number, era) in history.iter().enumerate() {
        let pcr0 = era.pcrs.get("PCR0").map_or("?", String::as_str);
        let admitted = match (era.admitted_by, &era.approval_id) {
            (Some(0), _) => "named by the genesis document".to_owned(),
            (Some(record), Some(approval)) => {
                format!("admitted by record {record}, approval {approval}")
            }
            (Some(record), None) => format!("the genesis image, admitted by record {record}"),
            (None, _) => "its admission was not found".to_owned(),
        };
        let retired = era
            .retired_by
            .map(|r| format!(", retired by record {r}"))
            .unwrap_or_default();
        writeln!(
            out,
            "image {}:     PCR0 {pcr0} ({admitted}{retired}): records {} to {}, enclave starts {}",
            number + 1,
            era.from,
            era.to,
            era.starts
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )?;
    }
    if let Some(witnessed) = witnessed {
        writeln!(
            out,
            "witnessed:   checkpoint {} (root {}) cosigned by {} of the {} pinned witnesses \
             ({} required), which the log extends",
            witnessed.size,
            witnessed.root,
            witnessed.witnesses.len(),
            witnessed.pinned,
            witnessed.threshold
        )?;
        for cosigner in &witnessed.witnesses {
            writeln!(
                out,
                "witness:     {} cosigned at {}",
                cosigner.name, cosigner.time
            )?;
        }
    }
    if let Some(manifest) = manifest {
        writeln!(
            out,
            "fetched:     {} from {}",
            manifest.fetched_at, manifest.endpoint
        )?;
    }
    writeln!(
        out,
        "checked in:  {:.1} s ({:.0} records/s)",
        timing.seconds, timing.records_per_second
    )?;
    if let Some(floor) = &timing.signature_floor {
        writeln!(
            out,
            "floor:       the {} request signatures alone took {:.1} s ({:.0} records/s); \
             verification ran at {:.1}% of that",
            floor.signatures, floor.seconds, floor.records_per_second, floor.ratio_percent
        )?;
    }
    Ok(())
}

fn print_refused(refusal: &Refusal, json: bool) -> io::Result<()> {
    if json {
        let mut out = io::stdout().lock();
        let report = Refused {
            verified: false,
            index: refusal.index(),
            error: refusal.to_string(),
        };
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    }
    match refusal.index() {
        Some(index) => eprintln!("govctl: audit log refused at record {index}: {refusal}"),
        None => eprintln!("govctl: audit log refused: {refusal}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use ciborium::Value;
    use ea_audit::hash::leaf_hash;
    use ea_audit::note::NoteSigner;
    use ea_audit::verify::AttestedKey;
    use ea_audit::{log_origin, Checkpoint, MerkleTree, Record, RecordKind};
    use ea_protocol::signed::{RequestSigner, SignatureAlgorithm};
    use ring::signature::{Ed25519KeyPair, KeyPair as _};

    use super::*;
    use crate::audit::requests::tests::{add, signed_by, TestDirectory};

    /// Takes a document to be the bare log key it attests (the attestation checks
    /// themselves are tested with real documents in tests/audit.rs).
    struct KeyIsTheDocument;

    #[derive(Debug, thiserror::Error)]
    #[error("never")]
    struct Never;

    impl AttestationChecker for KeyIsTheDocument {
        type Error = Never;
        fn check(&self, document: &[u8], _: &[u8]) -> Result<AttestedKey, Never> {
            Ok(AttestedKey {
                public_key: Some(document.to_vec()),
            })
        }
    }

    /// Genesis gives alice her key, record 1 attests the log key, records 2 and 3 embed
    /// alice's requests (`third` is record 3's); one checkpoint per record after the first
    /// two.
    fn files(alice: &RequestSigner, third: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
        let log_key = Ed25519KeyPair::from_seed_unchecked(&[8; 32]).unwrap();
        let record = |seq, kind, actor: &str, request, changes| Record {
            seq,
            time: 1_700_000_000_000,
            kind,
            actor: actor.into(),
            request,
            decision: Value::Null,
            changes,
            attestation: None,
        };
        let genesis = record(
            0,
            RecordKind::Genesis,
            "platform",
            None,
            add("alice", alice),
        );
        let origin = log_origin(&genesis.record_hash().unwrap());
        let mut start = record(1, RecordKind::EnclaveStart, "enclave", None, Value::Null);
        start.attestation = Some(log_key.public_key().as_ref().to_vec());
        let records = [
            genesis,
            start,
            record(
                2,
                RecordKind::StateChange,
                "alice",
                Some(signed_by(alice, "alice")),
                Value::Null,
            ),
            record(
                3,
                RecordKind::StateChange,
                "alice",
                Some(third),
                Value::Null,
            ),
        ];
        let signer = NoteSigner::new(&origin, Box::new(log_key)).unwrap();
        let (mut record_file, mut note_file) = (Vec::new(), Vec::new());
        let mut tree = MerkleTree::new();
        for record in &records {
            let bytes = record.to_bytes().unwrap();
            layout::write_record(&mut record_file, &bytes).unwrap();
            tree.push(leaf_hash(&bytes));
            if tree.size() >= 2 {
                let checkpoint = Checkpoint {
                    origin: origin.clone(),
                    size: tree.size(),
                    root: tree.root(),
                };
                layout::write_note(&mut note_file, &checkpoint.sign(&signer).unwrap()).unwrap();
            }
        }
        (record_file, note_file)
    }

    #[test]
    fn embedded_requests_are_checked_in_log_order_and_a_bad_one_is_named() {
        let (alice, _) = RequestSigner::generate(SignatureAlgorithm::ES256).unwrap();
        let (records, notes) = files(&alice, signed_by(&alice, "alice"));
        let summary = verify_files(
            records.as_slice(),
            notes.as_slice(),
            KeyIsTheDocument,
            SignatureChecker::new(TestDirectory::default()),
        )
        .unwrap()
        .0;
        assert_eq!((summary.records, summary.checkpoint_size), (4, 4));

        // Record 3 signed by a key the log never gave alice.
        let (mallory, _) = RequestSigner::generate(SignatureAlgorithm::ES256).unwrap();
        let (records, notes) = files(&alice, signed_by(&mallory, "alice"));
        let refusal = verify_files(
            records.as_slice(),
            notes.as_slice(),
            KeyIsTheDocument,
            SignatureChecker::new(TestDirectory::default()),
        )
        .unwrap_err();
        assert_eq!(refusal.index(), Some(3));
        assert!(
            refusal.to_string().contains("is not a key of principal"),
            "{refusal}"
        );
    }

    /// A reply file proving `index` under a checkpoint of `size`, signed by `files`'s log
    /// key, from the records in `record_file`.
    fn reply_file(dir: &Path, record_file: &[u8], index: u64, size: u64) -> PathBuf {
        let mut reader = layout::RecordReader::new(record_file);
        let mut all = Vec::new();
        while let Some(bytes) = reader.next_record().unwrap() {
            all.push(bytes);
        }
        let tree = MerkleTree::from_leaves(all.iter().map(|b| leaf_hash(b)));
        let genesis = Record::from_bytes(&all[0]).unwrap();
        let origin = log_origin(&genesis.record_hash().unwrap());
        let key = Ed25519KeyPair::from_seed_unchecked(&[8; 32]).unwrap();
        let signer = NoteSigner::new(&origin, Box::new(key)).unwrap();
        let checkpoint = Checkpoint {
            origin,
            size,
            root: tree.root_at(size).unwrap(),
        };
        let proof = RecordProof {
            record: all[usize::try_from(index).unwrap()].clone(),
            receipt: ea_audit::Receipt {
                index,
                leaf_hash: tree.leaf(index).unwrap(),
                inclusion_proof: tree.inclusion_proof(index, size).unwrap().path,
                checkpoint: checkpoint.sign(&signer).unwrap(),
            },
        };
        let path = dir.join(format!("reply-{index}-{size}.json"));
        let reply = serde_json::json!({"result": {}, "records": [proof]});
        std::fs::write(&path, reply.to_string()).unwrap();
        path
    }

    fn witness(seed: u8) -> ea_audit::cosignature::CosignatureSigner {
        ea_audit::cosignature::CosignatureSigner::from_seed(
            &format!("witness.example/w{seed}"),
            &[seed; 32],
        )
        .unwrap()
    }

    /// A directory holding `witnessed.json`: the checkpoint of `size` of the log in
    /// `record_file` (or with `root` instead), signed by the log key of seed `log_seed`,
    /// cosigned by `witnesses`.
    fn witnessed_dir(
        record_file: &[u8],
        size: u64,
        root: Option<ea_audit::Hash>,
        log_seed: u8,
        witnesses: &[u8],
    ) -> tempfile::TempDir {
        let mut reader = layout::RecordReader::new(record_file);
        let mut all = Vec::new();
        while let Some(bytes) = reader.next_record().unwrap() {
            all.push(bytes);
        }
        let tree = MerkleTree::from_leaves(all.iter().map(|b| leaf_hash(b)));
        let origin = log_origin(&Record::from_bytes(&all[0]).unwrap().record_hash().unwrap());
        let key = Ed25519KeyPair::from_seed_unchecked(&[log_seed; 32]).unwrap();
        let checkpoint = Checkpoint {
            origin: origin.clone(),
            size,
            root: root.unwrap_or_else(|| tree.root_at(size).unwrap()),
        };
        let mut note = checkpoint
            .sign(&NoteSigner::new(&origin, Box::new(key)).unwrap())
            .unwrap();
        for &w in witnesses {
            note.push_str(
                &witness(w)
                    .sign(1_700_000_000 + u64::from(w), &checkpoint.to_text())
                    .unwrap(),
            );
        }
        let dir = tempfile::tempdir().unwrap();
        layout::write_witnessed(
            dir.path(),
            &layout::Witnessed {
                size,
                checkpoint: note,
                fetched_at: "2026-01-01T00:00:00Z".into(),
            },
        )
        .unwrap();
        dir
    }

    fn pins(witnesses: &[u8], threshold: Option<usize>) -> anyhow::Result<Option<WitnessPins>> {
        let keys: Vec<String> = witnesses
            .iter()
            .map(|&w| witness(w).verifier().to_string())
            .collect();
        WitnessPins::parse(&keys, threshold)
    }

    #[test]
    fn the_witnessed_checkpoint_needs_the_threshold_of_pinned_cosignatures_and_the_log_extending_it(
    ) {
        let (alice, _) = RequestSigner::generate(SignatureAlgorithm::ES256).unwrap();
        let (records, notes) = files(&alice, signed_by(&alice, "alice"));
        let (summary, tree) = verify_files(
            records.as_slice(),
            notes.as_slice(),
            KeyIsTheDocument,
            SignatureChecker::new(TestDirectory::default()),
        )
        .unwrap();
        let both = pins(&[1, 2], None).unwrap().unwrap();
        assert_eq!(both.threshold, 2);

        let dir = witnessed_dir(&records, 3, None, 8, &[1, 2]);
        let report = check_witnessed(dir.path(), &both, &summary, &tree).unwrap();
        assert_eq!((report.size, report.threshold, report.pinned), (3, 2, 2));
        assert_eq!(
            report
                .witnesses
                .iter()
                .map(|w| (w.name.as_str(), w.timestamp))
                .collect::<Vec<_>>(),
            [
                ("witness.example/w1", 1_700_000_001),
                ("witness.example/w2", 1_700_000_002)
            ]
        );
        // One of two is enough when one is asked for; a key that did not cosign counts for
        // nothing.
        let one_of = pins(&[1, 3], Some(1)).unwrap().unwrap();
        assert_eq!(
            check_witnessed(dir.path(), &one_of, &summary, &tree)
                .unwrap()
                .witnesses
                .len(),
            1
        );
        let wrong = pins(&[1, 3], None).unwrap().unwrap();
        let refusal = check_witnessed(dir.path(), &wrong, &summary, &tree).unwrap_err();
        assert!(
            matches!(
                refusal,
                WitnessRefusal::Cosignatures {
                    size: 3,
                    source: CosignatureError::BelowThreshold {
                        threshold: 2,
                        verified: 1,
                        ..
                    }
                }
            ),
            "{refusal}"
        );
        // Thresholds beyond the pinned witnesses, or of none, are refused up front.
        assert!(pins(&[1, 2], Some(3)).is_err());
        assert!(pins(&[1, 2], Some(0)).is_err());
        assert!(WitnessPins::parse(&[], Some(1)).is_err());
        assert!(WitnessPins::parse(&["not a key".into()], None).is_err());
        // The same key twice is one witness.
        assert_eq!(pins(&[1, 1], None).unwrap().unwrap().threshold, 1);

        // No witnessed checkpoint at all.
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            check_witnessed(empty.path(), &both, &summary, &tree),
            Err(WitnessRefusal::Missing { .. })
        ));
        // Cosigned, but of another history (a fork): the log does not extend it.
        let fork = witnessed_dir(&records, 3, Some(leaf_hash(b"fork")), 8, &[1, 2]);
        assert!(matches!(
            check_witnessed(fork.path(), &both, &summary, &tree),
            Err(WitnessRefusal::NotExtended {
                size: 3,
                records: 4
            })
        ));
        // Beyond the log.
        let beyond = witnessed_dir(&records, 5, Some(leaf_hash(b"later")), 8, &[1, 2]);
        assert!(matches!(
            check_witnessed(beyond.path(), &both, &summary, &tree),
            Err(WitnessRefusal::NotExtended {
                size: 5,
                records: 4
            })
        ));
        // Not signed by the log's key.
        let other_key = witnessed_dir(&records, 3, None, 9, &[1, 2]);
        assert!(matches!(
            check_witnessed(other_key.path(), &both, &summary, &tree),
            Err(WitnessRefusal::NotSignedByLog { .. })
        ));
    }

    #[test]
    fn receipts_must_be_honoured_by_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, _) = RequestSigner::generate(SignatureAlgorithm::ES256).unwrap();
        let (records, notes) = files(&alice, signed_by(&alice, "alice"));
        let verify = |records: &[u8], notes: &[u8]| {
            verify_files(
                records,
                notes,
                KeyIsTheDocument,
                SignatureChecker::new(TestDirectory::default()),
            )
            .unwrap()
        };
        let (summary, tree) = verify(&records, &notes);
        let honoured = reply_file(dir.path(), &records, 3, 4);
        check_receipts(std::slice::from_ref(&honoured), &summary, &tree).unwrap();

        // The same log without its last record (and checkpoint): the receipt names what is
        // missing.
        let mut reader = layout::RecordReader::new(records.as_slice());
        let mut shorter = Vec::new();
        for _ in 0..3 {
            let bytes = reader.next_record().unwrap().unwrap();
            layout::write_record(&mut shorter, &bytes).unwrap();
        }
        let mut notes_reader = layout::NoteReader::new(notes.as_slice());
        let mut fewer_notes = Vec::new();
        for _ in 0..2 {
            let note = notes_reader.next_note().unwrap().unwrap();
            layout::write_note(&mut fewer_notes, &note).unwrap();
        }
        let (summary, tree) = verify(&shorter, &fewer_notes);
        let refusal = check_receipts(std::slice::from_ref(&honoured), &summary, &tree).unwrap_err();
        assert!(
            matches!(
                refusal,
                ReceiptRefusal::Missing {
                    index: 3,
                    acknowledged: 4,
                    records: 3,
                    ..
                }
            ),
            "{refusal}"
        );

        // Another record 3 (alice signed something else): the log was rewritten.
        let (other_records, other_notes) = files(&alice, signed_by(&alice, "alice"));
        let (summary, tree) = verify(&other_records, &other_notes);
        let refusal = check_receipts(std::slice::from_ref(&honoured), &summary, &tree).unwrap_err();
        assert!(
            matches!(refusal, ReceiptRefusal::Rewritten { index: 3, .. }),
            "{refusal}"
        );

        // Not a reply.
        let junk = dir.path().join("junk.json");
        std::fs::write(&junk, "{}").unwrap();
        assert!(matches!(
            check_receipts(&[junk], &summary, &tree).unwrap_err(),
            ReceiptRefusal::Unreadable { .. }
        ));
    }
}
