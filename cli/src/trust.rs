//! The trust file: what govctl believes about one deployment's log, so that it can check the
//! receipts of every answer without trusting the proxy that relays them.
//!
//! It pins the log's genesis hash, the attestation trust root and the genesis image's PCRs,
//! and caches the log keys it has seen attested: a log key is learnt by fetching the
//! `enclave_start` record that carries it and verifying that record's attestation document
//! (root, `user_data` = genesis hash, and an image it trusts). An enclave restart brings a
//! new key; the reply names the record that attests it, and govctl learns it the same way.
//!
//! After an upgrade the key is a new image's: govctl then learns that the log admitted that
//! image from the record that did (an `approval_applied` record whose `imageAdmitted` event
//! names it, verified with its own attestation document, made by an image the file already
//! trusts), and keeps the image in the file (`images`). The enclave's description says which
//! record to fetch; nothing it says is believed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, ensure, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ea_attestation::{TrustRoot, VerifyOptions};
use ea_audit::answer::AnswerSignature;
use ea_audit::cosignature::CosignatureVerifier;
use ea_audit::note::{NoteVerifier, PUBLIC_KEY_LEN};
use ea_audit::record::{Record, RecordKind};
use ea_audit::verify::AttestationChecker;
use ea_audit::{log_origin, Hash};
use ea_ledger::DocumentChecker;
use ea_policy::{Event, ImagePcrs};
use serde::{Deserialize, Serialize};

use crate::client::{ApiClient, EndpointArgs};

/// Where the trust file is.
#[derive(Debug, Clone, clap::Args)]
pub struct TrustArgs {
    /// The trust file (govctl trust init); default ~/.config/govctl/trust.json.
    #[arg(long, env = "GOVCTL_TRUST", value_name = "FILE", global = true)]
    pub trust: Option<PathBuf>,
}

impl TrustArgs {
    /// The path in use.
    pub fn path(&self) -> anyhow::Result<PathBuf> {
        if let Some(path) = &self.trust {
            return Ok(path.clone());
        }
        let home = std::env::var_os("HOME").context("no --trust given and HOME is not set")?;
        Ok(PathBuf::from(home).join(".config/govctl/trust.json"))
    }
}

/// A log key govctl has seen attested.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrustedKey {
    /// The `enclave_start` record that attests it.
    index: u64,
    /// Its signed-note verifier key.
    verifier: String,
}

/// An image govctl learnt the log admits, from a verified record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrustedImage {
    /// Its PCRs as admitted (`PCR0`, ... → hex).
    pcrs: ImagePcrs,
    /// The `approval_applied` record that admitted it.
    admitted_by: u64,
}

/// How many admissions deep govctl follows to learn an image (each admitted by an image
/// admitted before it).
const MAX_ADMISSION_CHAIN: usize = 16;

/// How the trust file's attestation documents are checked, when not against a root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum AttestationMode {
    /// QEMU's unsigned documents only (`--insecure-qemu-attestation` at creation): they prove
    /// nothing, and govctl warns whenever it uses such a file.
    #[serde(rename = "insecure-qemu-unsigned")]
    InsecureQemuUnsigned,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TrustFile {
    version: u32,
    /// The log's identity.
    genesis_hash: String,
    /// The attestation root (PEM); absent: the AWS Nitro Enclaves Root-G1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    root_pem: Option<String>,
    /// `"insecure-qemu-unsigned"`: no root, QEMU's unsigned documents (set only by
    /// `--insecure-qemu-attestation` when the file is created). Absent: checked against the
    /// root above, as before this field existed. Older govctl refuse a file that has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attestation: Option<AttestationMode>,
    /// Expected PCRs (index → hex).
    pcrs: BTreeMap<u16, String>,
    /// Accept debug-mode documents (never in production).
    #[serde(default)]
    allow_debug: bool,
    /// Log keys seen attested.
    #[serde(default)]
    log_keys: Vec<TrustedKey>,
    /// Images other than the genesis image (`pcrs`) that the log admits, each learnt from
    /// the verified record that admitted it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    images: Vec<TrustedImage>,
    /// The largest tree this file has seen the enclave sign (in an answer), checked to extend
    /// every smaller one seen before: later answers must extend it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checkpoint: Option<RememberedCheckpoint>,
    /// Witness keys (`<name>+<key id>+<base64(04 || key)>`) whose cosignatures on the log's
    /// checkpoints this file's owner requires (`govctl trust init --witness`). Kept for
    /// checks against witnessed checkpoints; `govctl audit verify --witness` takes them as
    /// flags. Older govctl refuse a file that has them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    witnesses: Vec<String>,
    /// How many distinct witnesses of `witnesses` must cosign (absent: all of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    witness_threshold: Option<usize>,
}

/// Witness keys a client pins and how many of them must cosign a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessPins {
    /// The keys.
    pub keys: Vec<CosignatureVerifier>,
    /// Distinct witnesses (by name) whose valid cosignatures are required, at least 1.
    pub threshold: usize,
}

impl WitnessPins {
    /// Parses `--witness VKEY` values and `--witness-threshold K` (default: every distinct
    /// witness named). `None` without keys; a threshold without keys, of 0, or above the
    /// number of distinct witnesses is refused.
    pub fn parse(vkeys: &[String], threshold: Option<usize>) -> anyhow::Result<Option<Self>> {
        if vkeys.is_empty() {
            ensure!(
                threshold.is_none(),
                "a witness threshold needs witness keys (--witness VKEY)"
            );
            return Ok(None);
        }
        let mut keys: Vec<CosignatureVerifier> = Vec::new();
        for vkey in vkeys {
            let key: CosignatureVerifier = vkey.trim().parse().with_context(|| {
                format!(
                    "witness key {vkey:?} is not a cosignature verifier key                      <name>+<8 hex digits>+<base64(0x04 || key)> (as `witness keygen` prints it)"
                )
            })?;
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        let names: std::collections::BTreeSet<&str> = keys.iter().map(|k| k.name()).collect();
        let threshold = threshold.unwrap_or(names.len());
        ensure!(
            (1..=names.len()).contains(&threshold),
            "a witness threshold of {threshold} cannot be met by {} distinct witnesses (it is \
             between 1 and their number)",
            names.len()
        );
        Ok(Some(Self { keys, threshold }))
    }
}

/// A tree head the enclave signed in an answer, kept with that signature as evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RememberedCheckpoint {
    /// Tree size.
    pub size: u64,
    /// Tree root (hex).
    pub root: String,
    /// The enclave's time when it signed, unix ms.
    pub time_ms: u64,
    /// The whole answer signature (`enclave-answer-signature` header) and what it signed
    /// over, so that a third party can check it: the request hash, status and answer hash.
    pub signature: String,
    /// SHA-256 of the signed request's body (hex).
    pub request_hash: String,
    /// The answer's HTTP status.
    pub status: u16,
    /// SHA-256 of the answer's bytes (hex).
    pub answer_hash: String,
}

/// govctl's exit code when the log an answer comes from does not extend the one the trust
/// file remembers.
pub const EXIT_ROLLED_BACK: u8 = 4;

/// The log behind the endpoint was rolled back or forked: an answer's signed tree does not
/// extend the largest one the trust file remembers.
#[derive(Debug, thiserror::Error)]
#[error(
    "the log was rolled back or forked: {detail}. Both checkpoints, each with the enclave's \
     signature, are kept as evidence in {}; do not send changes to this endpoint until the \
     operators explain it",
    evidence.display()
)]
pub struct RolledBack {
    /// What does not match.
    pub detail: String,
    /// The evidence file.
    pub evidence: PathBuf,
}

/// Writes a trust file pinning `genesis_hash`, the root (or, with `insecure_qemu`, the
/// insecure QEMU mode) and the PCRs, and learns the log key attested by record `index`.
#[allow(clippy::too_many_arguments, reason = "one argument per pinned fact")]
pub async fn init_pinned(
    client: &ApiClient,
    path: PathBuf,
    genesis_hash: Hash,
    root: Option<&std::path::Path>,
    insecure_qemu: bool,
    pins: &[String],
    pcrs_file: Option<&std::path::Path>,
    allow_debug: bool,
    index: u64,
) -> anyhow::Result<()> {
    let pcrs: BTreeMap<u16, String> = crate::audit::pinned_pcrs(pins, pcrs_file)?
        .into_iter()
        .map(|(index, value)| (index, hex::encode(value)))
        .collect();
    // The callers' flags conflict; this keeps a file from ever holding both.
    ensure!(
        !(insecure_qemu && root.is_some()),
        "--insecure-qemu-attestation and --root exclude each other"
    );
    let root_pem = match root {
        Some(path) => Some(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        ),
        None => None,
    };
    let attestation = insecure_qemu.then_some(AttestationMode::InsecureQemuUnsigned);
    if insecure_qemu {
        crate::attestation::warn_insecure_qemu();
    }
    let mut trust = Trust {
        path,
        file: TrustFile {
            version: 1,
            genesis_hash: genesis_hash.to_hex(),
            root_pem,
            attestation,
            pcrs,
            allow_debug,
            log_keys: Vec::new(),
            images: Vec::new(),
            checkpoint: None,
            witnesses: Vec::new(),
            witness_threshold: None,
        },
        genesis_hash,
    };
    trust.learn_key(client, index).await?;
    eprintln!(
        "govctl: trust written to {} (genesis {}, log key of record {index})",
        trust.path.display(),
        genesis_hash.to_hex()
    );
    Ok(())
}

/// A loaded trust file.
pub struct Trust {
    path: PathBuf,
    file: TrustFile,
    genesis_hash: Hash,
}

#[derive(Debug, Deserialize)]
struct RecordsPage {
    records: Vec<String>,
}

/// Fetches the record at `index` from the export routes.
pub async fn fetch_record(client: &ApiClient, index: u64) -> anyhow::Result<Vec<u8>> {
    let page: RecordsPage = serde_json::from_value(
        client
            .get_json(&format!("/v1/log/records?from={index}&to={}", index + 1))
            .await
            .with_context(|| format!("fetching record {index}"))?,
    )
    .context("a records page is not {from, records}")?;
    let encoded = page
        .records
        .first()
        .with_context(|| format!("the proxy returned no record {index}"))?;
    STANDARD
        .decode(encoded)
        .with_context(|| format!("record {index} is not base64"))
}

impl Trust {
    /// Loads the trust file.
    pub fn load(args: &TrustArgs) -> anyhow::Result<Trust> {
        let path = args.path()?;
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading the trust file {} (create it with govctl trust init)",
                path.display()
            )
        })?;
        let file: TrustFile = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a govctl trust file", path.display()))?;
        ensure!(
            file.version == 1,
            "trust file version {} is not supported",
            file.version
        );
        let genesis_hash: Hash = file
            .genesis_hash
            .parse()
            .map_err(|_| anyhow::anyhow!("{}: genesisHash is not 64 hex digits", path.display()))?;
        WitnessPins::parse(&file.witnesses, file.witness_threshold)
            .with_context(|| format!("{}: its witnesses", path.display()))?;
        if file.attestation == Some(AttestationMode::InsecureQemuUnsigned) {
            ensure!(
                file.root_pem.is_none(),
                "{}: a trust file in the insecure QEMU mode has no rootPem",
                path.display()
            );
            crate::attestation::warn_insecure_qemu();
        }
        Ok(Trust {
            path,
            file,
            genesis_hash,
        })
    }

    /// Pins these witnesses (replacing any pinned before) and writes the file.
    pub fn pin_witnesses(&mut self, pins: &WitnessPins) -> anyhow::Result<()> {
        self.file.witnesses = pins.keys.iter().map(ToString::to_string).collect();
        self.file.witness_threshold = Some(pins.threshold);
        self.save()
    }

    fn save(&mut self) -> anyhow::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        // Another govctl may have remembered a larger tree meanwhile: keep the larger one.
        if let Some(on_disk) = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|text| serde_json::from_str::<TrustFile>(&text).ok())
            .and_then(|file| file.checkpoint)
        {
            if self
                .file
                .checkpoint
                .as_ref()
                .is_none_or(|ours| ours.size < on_disk.size)
            {
                self.file.checkpoint = Some(on_disk);
            }
        }
        self.write()
    }

    /// Writes the file as it is in memory (atomically: a temporary file, then a rename).
    fn write(&self) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(&self.file)?;
        let temporary = self
            .path
            .with_extension(format!("json.{}.tmp", std::process::id()));
        std::fs::write(&temporary, text)
            .with_context(|| format!("writing {}", temporary.display()))?;
        std::fs::rename(&temporary, &self.path)
            .with_context(|| format!("replacing {}", self.path.display()))
    }

    /// Every log key seen attested.
    pub fn verifiers(&self) -> Vec<NoteVerifier> {
        self.file
            .log_keys
            .iter()
            .filter_map(|k| k.verifier.parse().ok())
            .collect()
    }

    /// The options documents are checked with: the root, the debug policy, and the pinned
    /// PCRs that are not an image's (PCR3, PCR4): every document must show those. Which
    /// image made a document is checked apart ([`Trust::trusts_image`]).
    fn options(&self) -> anyhow::Result<VerifyOptions> {
        let root = match &self.file.root_pem {
            // The warning was printed when the file was loaded.
            _ if self.file.attestation == Some(AttestationMode::InsecureQemuUnsigned) => {
                TrustRoot::insecure_qemu_unsigned()
            }
            Some(pem) => TrustRoot::from_pem(pem.as_bytes()).context("the trust file's root")?,
            None => TrustRoot::aws_nitro_root_g1()?,
        };
        let mut options = VerifyOptions::new(root).dangerous_allow_debug(self.file.allow_debug);
        for (index, value) in &self.file.pcrs {
            if ea_audit::verify::IMAGE_PCRS.contains(index) {
                continue;
            }
            options = options.pcr(
                *index,
                hex::decode(value).context("a PCR in the trust file")?,
            );
        }
        Ok(options)
    }

    /// Whether a document showing `pcrs` was made by an image this file trusts: the pinned
    /// genesis image (every pinned PCR0, 1, 2, 8 equal), or an image it learnt the log
    /// admits.
    fn trusts_image(&self, pcrs: &BTreeMap<u16, Vec<u8>>) -> anyhow::Result<bool> {
        let mut genesis = true;
        for (index, value) in &self.file.pcrs {
            if ea_audit::verify::IMAGE_PCRS.contains(index) {
                let pinned = hex::decode(value).context("a PCR in the trust file")?;
                genesis &= pcrs.get(index) == Some(&pinned);
            }
        }
        if genesis {
            return Ok(true);
        }
        let Ok(image) = ImagePcrs::from_pcrs(pcrs.iter().map(|(i, v)| (*i, v.as_slice()))) else {
            return Ok(false);
        };
        Ok(self.file.images.iter().any(|i| i.pcrs.matches(&image)))
    }

    /// Learns the log key attested by the `enclave_start` record at `index`, after checking
    /// that the log's genesis record is the pinned one, the record's attestation document
    /// verifies (root, `user_data` = genesis hash), and its image is the pinned genesis
    /// image or one the log admitted ([`Trust::learn_image`]).
    pub async fn learn_key(&mut self, client: &ApiClient, index: u64) -> anyhow::Result<()> {
        if self.file.log_keys.iter().any(|k| k.index == index) {
            return Ok(());
        }
        let genesis = Record::from_bytes(&fetch_record(client, 0).await?)
            .context("record 0 is not a record")?;
        let hash = genesis.record_hash()?;
        ensure!(
            genesis.kind == RecordKind::Genesis && hash == self.genesis_hash,
            "the log behind this endpoint is not the pinned one: its genesis hash is {}, the \
             trust file pins {}",
            hash.to_hex(),
            self.genesis_hash.to_hex()
        );
        let record = Record::from_bytes(&fetch_record(client, index).await?)
            .with_context(|| format!("record {index} is not a record"))?;
        ensure!(
            record.kind == RecordKind::EnclaveStart,
            "record {index} is a {} record, not the enclave_start record of a log key",
            record.kind
        );
        let document = record
            .attestation
            .as_deref()
            .with_context(|| format!("record {index} carries no attestation document"))?;
        let attested = DocumentChecker::new(self.options()?)
            .check_document(document, self.genesis_hash.as_bytes())
            .with_context(|| {
                format!("the attestation document of record {index} does not verify")
            })?;
        if !self.trusts_image(&attested.pcrs)? {
            let image = ImagePcrs::from_pcrs(attested.pcrs.iter().map(|(i, v)| (*i, v.as_slice())))
                .with_context(|| format!("record {index}'s document names no image"))?;
            self.learn_image(client, &image, index)
                .await
                .with_context(|| {
                    format!(
                        "record {index} attests a log key of image {image}, which is neither the \
                     pinned genesis image nor one this trust file knows the log admitted"
                    )
                })?;
        }
        let key = attested
            .public_key
            .with_context(|| format!("record {index}'s attestation document has no public key"))?;
        let key: [u8; PUBLIC_KEY_LEN] = key
            .as_slice()
            .try_into()
            .map_err(|_| anyhow::anyhow!("record {index}'s log key is not 32 bytes"))?;
        let verifier = NoteVerifier::new(&log_origin(&self.genesis_hash), key)?;
        self.file.log_keys.push(TrustedKey {
            index,
            verifier: verifier.to_string(),
        });
        self.save()
    }

    /// Checks the enclave's signature on an answer to the request whose body hashes to
    /// `request_hash` (learning the signing key from its attested record if need be), then
    /// that the signed tree extends the one this file remembers, and remembers it if larger.
    pub async fn check_answer(
        &mut self,
        client: &ApiClient,
        request_hash: Hash,
        status: u16,
        body: &[u8],
        header: &str,
    ) -> anyhow::Result<AnswerSignature> {
        let signature = AnswerSignature::from_header(header)?;
        self.learn_key(client, signature.key_index).await?;
        let key = self
            .file
            .log_keys
            .iter()
            .find(|k| k.index == signature.key_index)
            .and_then(|k| k.verifier.parse::<NoteVerifier>().ok())
            .with_context(|| format!("no log key of record {}", signature.key_index))?;
        let origin = log_origin(&self.genesis_hash);
        signature.verify(&key, &origin, request_hash, status, body)?;
        let seen = RememberedCheckpoint {
            size: signature.size,
            root: signature.root.to_hex(),
            time_ms: signature.time_ms,
            signature: header.to_owned(),
            request_hash: request_hash.to_hex(),
            status,
            answer_hash: ea_audit::hash::sha256(&[body]).to_hex(),
        };
        self.remember(client, seen).await?;
        Ok(signature)
    }

    /// Before a request is sent: the log's latest checkpoint, as the proxy serves it, must
    /// extend the remembered tree, so that a change is not sent to a log that was rolled back
    /// or forked (the answer's own tree is checked again afterwards). A checkpoint signed by a
    /// key this file does not know yet (a restarted enclave) is left to that later check.
    pub async fn check_before_sending(&mut self, client: &ApiClient) -> anyhow::Result<()> {
        let Some(kept) = self.file.checkpoint.clone() else {
            return Ok(());
        };
        let latest = client
            .get_json("/v1/log/checkpoint")
            .await
            .context("reading the log's latest checkpoint")?;
        let note = latest
            .get("checkpoint")
            .and_then(serde_json::Value::as_str)
            .context("the latest checkpoint is not {size, checkpoint}")?;
        let origin = log_origin(&self.genesis_hash);
        let mut verified =
            ea_audit::checkpoint::open_checkpoint(note, &self.verifiers(), Some(&origin));
        if verified.is_err() {
            // Perhaps a key this file has not seen (the enclave restarted): the description
            // names the record that attests the current key; that record is checked.
            let index = client
                .get_json("/v1/enclave")
                .await
                .ok()
                .and_then(|d| d.get("log_key_index").and_then(serde_json::Value::as_u64));
            if let Some(index) = index {
                if self.learn_key(client, index).await.is_ok() {
                    verified = ea_audit::checkpoint::open_checkpoint(
                        note,
                        &self.verifiers(),
                        Some(&origin),
                    );
                }
            }
        }
        let Ok(verified) = verified else {
            return Ok(());
        };
        let checkpoint = verified.checkpoint();
        let kept_root: Hash = kept
            .root
            .parse()
            .map_err(|_| anyhow::anyhow!("the trust file's checkpoint root is not a hash"))?;
        let consistent = if checkpoint.size < kept.size {
            false
        } else if checkpoint.size == kept.size {
            checkpoint.root == kept_root
        } else {
            let proof = consistency_proof(client, kept.size, checkpoint.size).await?;
            ea_audit::proof::verify_consistency(
                kept.size,
                checkpoint.size,
                &kept_root,
                &checkpoint.root,
                &proof,
            )
            .is_ok()
        };
        if consistent {
            return Ok(());
        }
        let seen = RememberedCheckpoint {
            size: checkpoint.size,
            root: checkpoint.root.to_hex(),
            time_ms: 0,
            signature: note.to_owned(),
            request_hash: String::new(),
            status: 0,
            answer_hash: String::new(),
        };
        Err(self.rolled_back(
            format!(
                "the log's latest signed checkpoint ({} records) does not extend the tree of {} \
                 records this file remembers; nothing was sent",
                checkpoint.size, kept.size
            ),
            &kept,
            &seen,
        ))
    }

    /// Holds a signed tree against the remembered one (see [`Trust::check_answer`]).
    async fn remember(
        &mut self,
        client: &ApiClient,
        seen: RememberedCheckpoint,
    ) -> anyhow::Result<()> {
        let Some(kept) = self.file.checkpoint.clone() else {
            self.file.checkpoint = Some(seen);
            return self.save();
        };
        let kept_root: Hash = kept
            .root
            .parse()
            .map_err(|_| anyhow::anyhow!("the trust file's checkpoint root is not a hash"))?;
        let seen_root: Hash = seen
            .root
            .parse()
            .map_err(|_| anyhow::anyhow!("an answer's root is not a hash"))?;
        let (old, new, old_root, new_root) = if seen.size >= kept.size {
            (kept.size, seen.size, kept_root, seen_root)
        } else {
            (seen.size, kept.size, seen_root, kept_root)
        };
        if seen.size < kept.size && seen.time_ms > kept.time_ms {
            // Signed later, yet smaller: the enclave now serves a shorter log.
            return Err(self.rolled_back(
                format!(
                    "the enclave signed a tree of {} records after it had signed one of {}",
                    seen.size, kept.size
                ),
                &kept,
                &seen,
            ));
        }
        let consistent = if old == new {
            old_root == new_root
        } else {
            let proof = consistency_proof(client, old, new).await?;
            ea_audit::proof::verify_consistency(old, new, &old_root, &new_root, &proof).is_ok()
        };
        if !consistent {
            return Err(self.rolled_back(
                format!(
                    "the tree of {} records does not extend the tree of {} records",
                    new, old
                ),
                &kept,
                &seen,
            ));
        }
        if seen.size > kept.size {
            self.file.checkpoint = Some(seen);
            self.save()?;
        }
        Ok(())
    }

    /// Writes both checkpoints beside the trust file and returns the error that names it.
    fn rolled_back(
        &self,
        detail: String,
        kept: &RememberedCheckpoint,
        seen: &RememberedCheckpoint,
    ) -> anyhow::Error {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let evidence = self.path.with_extension(format!("rollback-{stamp}.json"));
        let text = serde_json::json!({
            "log": log_origin(&self.genesis_hash),
            "genesisHash": self.genesis_hash.to_hex(),
            "detail": detail,
            "remembered": kept,
            "answer": seen,
            "logKeys": self.file.log_keys,
        });
        if let Err(error) = serde_json::to_string_pretty(&text)
            .map_err(anyhow::Error::from)
            .and_then(|text| Ok(std::fs::write(&evidence, text)?))
        {
            eprintln!(
                "govctl: could not write the evidence to {}: {error}",
                evidence.display()
            );
        }
        anyhow::Error::new(RolledBack { detail, evidence })
    }

    /// Learns that the log admitted `image` before record `before`, from the record that
    /// admitted it: an `approval_applied` record whose `ImageAdmitted` event names the image,
    /// whose own attestation document (`user_data` = its record hash) verifies and was made
    /// by an image this file trusts (learnt the same way, if need be). Where to look comes
    /// from the enclave's description, which the parent relays: it is only a hint, every
    /// fact is checked on the records.
    async fn learn_image(
        &mut self,
        client: &ApiClient,
        image: &ImagePcrs,
        before: u64,
    ) -> anyhow::Result<()> {
        let described: DescribedImages =
            serde_json::from_value(client.get_json("/v1/enclave").await?)
                .context("the enclave's description")?;
        let mut wanted = vec![(image.clone(), before)];
        let mut learnt = Vec::new();
        while let Some((image, before)) = wanted.pop() {
            ensure!(
                learnt.len() < MAX_ADMISSION_CHAIN,
                "more than {MAX_ADMISSION_CHAIN} admissions to follow"
            );
            let record_index = described
                .images
                .iter()
                .filter(|d| d.matches(&image))
                .find_map(|d| d.record)
                .filter(|r| *r < before)
                .with_context(|| {
                    format!("the enclave names no record before {before} that admitted it")
                })?;
            let record = Record::from_bytes(&fetch_record(client, record_index).await?)
                .with_context(|| format!("record {record_index} is not a record"))?;
            ensure!(
                record.kind == RecordKind::ApprovalApplied,
                "record {record_index} is a {} record, not the approval_applied record of an \
                 image change",
                record.kind
            );
            let admits = ea_ledger::events_of(&record)
                .with_context(|| format!("record {record_index}'s events"))?
                .iter()
                .any(|event| matches!(event, Event::ImageAdmitted(a) if a.pcrs.matches(&image)));
            ensure!(admits, "record {record_index} does not admit this image");
            let own = record.record_hash()?;
            let document = record.attestation.as_deref().with_context(|| {
                format!("record {record_index} carries no attestation document")
            })?;
            let attested = DocumentChecker::new(self.options()?)
                .check_document(document, own.as_bytes())
                .with_context(|| {
                    format!("the attestation document of record {record_index} does not verify")
                })?;
            learnt.push(TrustedImage {
                pcrs: image.clone(),
                admitted_by: record_index,
            });
            if !self.trusts_image(&attested.pcrs)?
                && !learnt.iter().any(|t| {
                    ImagePcrs::from_pcrs(attested.pcrs.iter().map(|(i, v)| (*i, v.as_slice())))
                        .is_ok_and(|writer| t.pcrs.matches(&writer))
                })
            {
                // Admitted by an image not known yet: learn that one first.
                let writer =
                    ImagePcrs::from_pcrs(attested.pcrs.iter().map(|(i, v)| (*i, v.as_slice())))
                        .with_context(|| {
                            format!("record {record_index}'s document names no image")
                        })?;
                wanted.push((writer, record_index));
            }
        }
        self.file.images.extend(learnt);
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
struct ConsistencyJson {
    from: u64,
    to: u64,
    proof: Vec<String>,
}

/// The consistency proof between the trees of `old` and `new` records, from the proxy
/// (checked by the caller against roots the enclave signed).
async fn consistency_proof(client: &ApiClient, old: u64, new: u64) -> anyhow::Result<Vec<Hash>> {
    let answer: ConsistencyJson = serde_json::from_value(
        client
            .get_json(&format!("/v1/log/consistency?from={old}&to={new}"))
            .await
            .with_context(|| format!("fetching the consistency proof from {old} to {new}"))?,
    )
    .context("a consistency proof is not {from, to, proof}")?;
    ensure!(
        answer.from == old && answer.to == new,
        "asked for the proof from {old} to {new}, got one from {} to {}",
        answer.from,
        answer.to
    );
    answer
        .proof
        .iter()
        .map(|node| {
            let bytes: [u8; 32] = STANDARD
                .decode(node)
                .ok()
                .and_then(|b| b.try_into().ok())
                .context("a proof node is not the base64 of 32 bytes")?;
            Ok(Hash(bytes))
        })
        .collect()
}

/// What the description says about images: only where to look.
#[derive(Debug, Default, Deserialize)]
struct DescribedImages {
    #[serde(default)]
    images: Vec<ea_protocol::DescribedImage>,
}

trait Matches {
    fn matches(&self, image: &ImagePcrs) -> bool;
}

impl Matches for ea_protocol::DescribedImage {
    fn matches(&self, image: &ImagePcrs) -> bool {
        self.pcrs.get("PCR0").map(String::as_str) == Some(image.pcr0.to_hex().as_str())
            && self.pcrs.get("PCR1").map(String::as_str) == Some(image.pcr1.to_hex().as_str())
            && self.pcrs.get("PCR2").map(String::as_str) == Some(image.pcr2.to_hex().as_str())
    }
}

/// `govctl trust`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: TrustCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TrustCommand {
    /// Pin a deployment's log: genesis hash, attestation root and PCRs; learn its current
    /// log key from its attested enclave_start record.
    Init(InitArgs),
    /// Print the trust file.
    Show(TrustArgs),
    /// Forget the largest checkpoint this file remembers, once the operators have explained
    /// why the log no longer extends it (a backup restored: the changes made after it are
    /// lost). The evidence files written beside the trust file stay.
    ForgetCheckpoint(TrustArgs),
}

#[derive(Debug, clap::Args)]
struct InitArgs {
    #[command(flatten)]
    endpoint: EndpointArgs,
    #[command(flatten)]
    trust: TrustArgs,
    /// The genesis hash the operator published (hex). Without it, the log's own genesis is
    /// trusted on first use, and printed so that you can compare it.
    #[arg(long, value_name = "HEX")]
    genesis_hash: Option<String>,
    /// Trust this root (PEM) instead of the AWS Nitro Enclaves Root-G1 (a mock NSM's root).
    #[arg(long, value_name = "PEM")]
    root: Option<PathBuf>,
    /// INSECURE: pin no root; accept only the unsigned attestation documents of QEMU's
    /// nitro-enclave machine. Recorded in the trust file ("attestation":
    /// "insecure-qemu-unsigned"), and govctl warns at every use of it. For developing under
    /// QEMU: such a log proves nothing about hardware.
    #[arg(long, conflicts_with = "root")]
    insecure_qemu_attestation: bool,
    /// Require PCR N to equal HEX (repeatable).
    #[arg(long = "pcr", value_name = "N=HEX")]
    pcrs: Vec<String>,
    /// Require the PCRs of this measurements file (govctl eif pcrs).
    #[arg(long = "pcrs", value_name = "FILE")]
    pcrs_file: Option<PathBuf>,
    /// Accept debug-mode enclaves (their PCRs are zero: they prove nothing about the image).
    #[arg(long)]
    allow_debug: bool,
    /// Pin a witness key (repeatable), as `witness keygen` prints it
    /// (<name>+<key id>+<base64>): the witnesses whose cosignatures this file requires on the
    /// log's checkpoints (stored as `witnesses`; `govctl audit verify --witness` checks them).
    #[arg(long = "witness", value_name = "VKEY")]
    witnesses: Vec<String>,
    /// How many distinct pinned witnesses must cosign (default: all of them).
    #[arg(long, value_name = "K", requires = "witnesses")]
    witness_threshold: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct Description {
    #[serde(default)]
    phase: String,
    genesis_hash: Option<String>,
    log_key_index: Option<u64>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        TrustCommand::Init(args) => init(&args).await,
        TrustCommand::Show(args) => {
            let path = args.path()?;
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let file = serde_json::from_str::<TrustFile>(&text).ok();
            if file.and_then(|file| file.attestation) == Some(AttestationMode::InsecureQemuUnsigned)
            {
                crate::attestation::warn_insecure_qemu();
            }
            println!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        TrustCommand::ForgetCheckpoint(args) => {
            let mut trust = Trust::load(&args)?;
            match trust.file.checkpoint.take() {
                Some(kept) => {
                    trust.write()?;
                    eprintln!(
                        "govctl: forgot the checkpoint of size {} (root {}); the next answer's \
                         tree is remembered instead",
                        kept.size, kept.root
                    );
                }
                None => eprintln!("govctl: {} remembers no checkpoint", trust.path.display()),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn init(args: &InitArgs) -> anyhow::Result<ExitCode> {
    // Checked before anything is asked or written.
    let witnesses = WitnessPins::parse(&args.witnesses, args.witness_threshold)?;
    let client = ApiClient::new(&args.endpoint)?;
    let description: Description = serde_json::from_value(client.get_json("/v1/enclave").await?)
        .context("the enclave's description")?;
    let index = description.log_key_index.with_context(|| {
        format!(
            "the enclave is {} and names no log key yet (submit the genesis first)",
            description.phase
        )
    })?;
    let genesis =
        Record::from_bytes(&fetch_record(&client, 0).await?).context("record 0 is not a record")?;
    let found = genesis.record_hash()?;
    let pinned = match &args.genesis_hash {
        Some(text) => {
            let pinned: Hash = text
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("--genesis-hash is not 64 hex digits"))?;
            if pinned != found {
                bail!(
                    "the log's genesis hash is {}, not the pinned {}",
                    found.to_hex(),
                    pinned.to_hex()
                );
            }
            pinned
        }
        None => {
            eprintln!(
                "govctl: trusting genesis {} on first use; compare it with the hash the operator published",
                found.to_hex()
            );
            found
        }
    };
    if description.genesis_hash.as_deref() != Some(&found.to_hex()) {
        eprintln!(
            "govctl: warning: the enclave describes another genesis hash than its log's record 0"
        );
    }
    init_pinned(
        &client,
        args.trust.path()?,
        pinned,
        args.root.as_deref(),
        args.insecure_qemu_attestation,
        &args.pcrs,
        args.pcrs_file.as_deref(),
        args.allow_debug,
        index,
    )
    .await?;
    if let Some(pins) = &witnesses {
        let mut trust = Trust::load(&args.trust)?;
        trust.pin_witnesses(pins)?;
        eprintln!(
            "govctl: pinned {} witness keys, {} of them required",
            pins.keys.len(),
            pins.threshold
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GENESIS: &str = "6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e6e";

    fn load(text: &str) -> anyhow::Result<Trust> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("trust.json");
        std::fs::write(&path, text)?;
        Trust::load(&TrustArgs { trust: Some(path) })
    }

    fn file(attestation: Option<&str>, root_pem: Option<&str>) -> String {
        let mut value = serde_json::json!({
            "version": 1,
            "genesisHash": GENESIS,
            "pcrs": {"0": "00".repeat(48)},
        });
        if let Some(mode) = attestation {
            value["attestation"] = mode.into();
        }
        if let Some(pem) = root_pem {
            value["rootPem"] = pem.into();
        }
        value.to_string()
    }

    #[test]
    fn a_trust_file_without_the_mode_keeps_its_meaning() {
        let trust = load(&file(None, None)).unwrap();
        assert_eq!(trust.file.attestation, None);
        assert_eq!(
            trust.options().unwrap().trust_root().kind(),
            ea_attestation::RootKind::AwsNitroRootG1
        );
        // And it is written back without the field.
        let text = serde_json::to_string(&trust.file).unwrap();
        assert!(!text.contains("attestation"), "{text}");
    }

    #[test]
    fn the_insecure_qemu_mode_is_recorded_by_name() {
        let trust = load(&file(Some("insecure-qemu-unsigned"), None)).unwrap();
        assert_eq!(
            trust.file.attestation,
            Some(AttestationMode::InsecureQemuUnsigned)
        );
        assert_eq!(
            trust.options().unwrap().trust_root().kind(),
            ea_attestation::RootKind::InsecureQemuUnsigned
        );
        let text = serde_json::to_string(&trust.file).unwrap();
        assert!(
            text.contains(r#""attestation":"insecure-qemu-unsigned""#),
            "{text}"
        );
    }

    #[test]
    fn pinned_witnesses_are_kept_and_checked_when_the_file_is_read() {
        let key = ea_audit::cosignature::CosignatureSigner::from_seed("w.example/w1", &[1; 32])
            .unwrap()
            .verifier()
            .to_string();
        let with = |witnesses: serde_json::Value, threshold: Option<usize>| {
            let mut value: serde_json::Value = serde_json::from_str(&file(None, None)).unwrap();
            value["witnesses"] = witnesses;
            if let Some(k) = threshold {
                value["witnessThreshold"] = k.into();
            }
            value.to_string()
        };
        let trust = load(&with(serde_json::json!([key]), Some(1))).unwrap();
        assert_eq!(trust.file.witnesses, std::slice::from_ref(&key));
        let text = serde_json::to_string(&trust.file).unwrap();
        assert!(text.contains(r#""witnessThreshold":1"#), "{text}");
        assert!(load(&with(serde_json::json!([key]), Some(2))).is_err());
        assert!(load(&with(
            serde_json::json!(["w.example/w1+00000000+AAAA"]),
            None
        ))
        .is_err());
        assert!(load(&with(serde_json::json!([]), Some(1))).is_err());
        // A file without witnesses is written without the fields (older govctl read it).
        let plain = load(&file(None, None)).unwrap();
        let text = serde_json::to_string(&plain.file).unwrap();
        assert!(!text.contains("witness"), "{text}");
    }

    #[test]
    fn other_modes_and_a_root_beside_the_mode_are_refused() {
        assert!(load(&file(Some("insecure"), None)).is_err());
        assert!(load(&file(Some("aws"), None)).is_err());
        let error = load(&file(Some("insecure-qemu-unsigned"), Some("PEM")))
            .err()
            .unwrap();
        assert!(error.to_string().contains("has no rootPem"), "{error}");
    }
}
