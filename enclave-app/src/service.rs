//! The enclave's phases and what each request gets in each of them.
//!
//! | phase | entered when | answers |
//! |---|---|---|
//! | `starting` | the process starts; the parent's log store is not reachable yet | health, describe, attestation |
//! | `awaiting_genesis` | the store holds no log | + the genesis document, once |
//! | `recovering` | the store holds a log: it is read, verified, replayed (health also says `recovering`, with why, while a serving enclave rebuilds its state after a failed commit) | health, describe, attestation |
//! | `serving` | the log verified (or genesis was written) and this start's `enclave_start` record is durable | + signed requests |
//! | `failed` | the log does not verify: the error names the first bad index; or, while serving, the log read back after a failed commit is another branch than the one this enclave acknowledged (a second enclave with the same log key wrote it): the error names the size and both roots. Nothing is written | health, describe, attestation |
//!
//! Signed requests are authenticated on the connection's task against the published key
//! directory, then decided one after another by the sequencer, which answers only once
//! their records are durable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ciborium::Value;
use ea_attestation::{Nsm, TrustRoot, VerifyOptions};
use ea_audit::answer::{AnswerSignature, AnswerStatement};
use ea_audit::record::{record_hash_from, Record, RecordFields, RecordKind, MAX_RECORD_LEN};
use ea_audit::{log_origin, Hash, LogError, LogErrorKind, MerkleTree};
use ea_ledger::{
    request_error_status, DocumentChecker, ErrorReply, Genesis, Ledger, RecordProof, Rejected,
    Reply, PLATFORM_ACTOR,
};
use ea_protocol::key_tables::KeyTables;
use ea_protocol::{
    DescribedImage, Description, EnclaveResponse, HealthReport, NsmMode, PROTOCOL_VERSION,
};
use serde_bytes::ByteBuf;

use crate::app::{AppReply, LedgerApp, SharedDirectory};
use crate::audit_log::AuditLog;
use crate::log_key::LogKey;
pub use crate::log_keys::LogKeySource;
use crate::log_keys::{first_start, LogIdentity, OwnImage};
use crate::recovery::{recover_log, ReplayOptions};
use crate::sequencer::{Clock, Committed, Recover, Sequencer, SequencerConfig, SequencerError};
use crate::store_client::StoreClient;

/// What the service needs.
pub struct ServiceConfig {
    /// The parent's log store.
    pub store: Arc<StoreClient>,
    /// The NSM.
    pub nsm: Arc<dyn Nsm>,
    /// Which NSM it is.
    pub mode: NsmMode,
    /// The root the log's attestation documents must chain to (the AWS root, or the mock
    /// NSM's root off hardware; under QEMU, the insecure QEMU mode, which has none).
    pub trust_root: TrustRoot,
    /// Nonces remembered within the freshness window; more requests are refused.
    pub replay_capacity: usize,
    /// Batching of the sequencer.
    pub sequencer: SequencerConfig,
    /// The enclave's clock, unix ms.
    pub clock: Clock,
    /// Where the log key comes from.
    pub keys: LogKeySource,
}

#[derive(Clone)]
enum Phase {
    Starting(Option<String>),
    AwaitingGenesis,
    Recovering,
    /// The log names a witness set and fewer than its threshold cosigned the recovered head
    /// freshly: nothing is written, the submission is retried.
    AwaitingWitnesses(String),
    Serving(Arc<Serving>),
    Failed(String),
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Phase::Starting(_) => "starting",
            Phase::AwaitingGenesis => "awaiting_genesis",
            Phase::Recovering => "recovering",
            Phase::AwaitingWitnesses(_) => "awaiting_witnesses",
            Phase::Serving(_) => "serving",
            Phase::Failed(_) => "failed",
        }
    }

    fn detail(&self) -> Option<String> {
        match self {
            Phase::Starting(detail) => detail.clone(),
            Phase::AwaitingGenesis => {
                Some("the log is empty: submit the genesis document (govctl genesis submit)".into())
            }
            Phase::Recovering => Some("reading and verifying the log".into()),
            Phase::AwaitingWitnesses(detail) => Some(detail.clone()),
            Phase::Serving(_) => None,
            Phase::Failed(error) => Some(error.clone()),
        }
    }
}

struct Serving {
    sequencer: Sequencer<LedgerApp>,
    genesis_hash: Hash,
    log_key_index: u64,
    log_key: String,
    answers: AnswerSigner,
}

/// Signs answers with the log key (ea_audit::answer), naming the record that attests it.
struct AnswerSigner {
    pair: ring::signature::Ed25519KeyPair,
    origin: String,
    key_index: u64,
}

impl AnswerSigner {
    /// Signs an `Api` answer to the request of `request_hash`, decided at `head`; other
    /// responses pass unchanged.
    fn sign(
        &self,
        response: EnclaveResponse,
        request_hash: Hash,
        head: (u64, Hash),
        time_ms: u64,
    ) -> EnclaveResponse {
        let EnclaveResponse::Api { status, body, .. } = response else {
            return response;
        };
        let (size, root) = head;
        let statement = AnswerStatement {
            origin: &self.origin,
            request_hash,
            status,
            body: &body,
            size,
            root,
            time_ms,
        };
        let mut signature = [0u8; ea_audit::note::SIGNATURE_LEN];
        signature.copy_from_slice(self.pair.sign(&statement.message()).as_ref());
        let header = AnswerSignature {
            size,
            root,
            time_ms,
            key_index: self.key_index,
            signature,
        }
        .to_header();
        EnclaveResponse::Api {
            status,
            body,
            signature: Some(header),
        }
    }
}

/// Everything a rebuild from the log needs: at start, and in the sequencer after a failed
/// commit.
struct Rebuilder {
    store: Arc<StoreClient>,
    nsm: Arc<dyn Nsm>,
    options: VerifyOptions,
    replay_capacity: usize,
    clock: Clock,
    directory: SharedDirectory,
    images: SharedImages,
    log_size: Arc<AtomicU64>,
    mode: NsmMode,
}

impl Rebuilder {
    /// Reads the whole log, verifies it (chain, checkpoints, attestation documents against
    /// the trust root, each key's image as the log admitted it at that point) and replays it
    /// into a ledger.
    async fn ledger(&self) -> anyhow::Result<(Ledger, crate::recovery::RecoveredLog)> {
        let options = ReplayOptions {
            replay_capacity: self.replay_capacity,
            now_ms: (self.clock)(),
        };
        if self.mode == NsmMode::DeviceInsecureQemu {
            // At every verification of the log, not only at start.
            tracing::warn!(
                "insecure QEMU mode: the log's attestation documents are checked UNSIGNED; they \
                 prove nothing about hardware (--insecure-qemu-attestation)"
            );
        }
        let checker = DocumentChecker::new(self.options.clone());
        let (ledger, recovered) = recover_log(&self.store, checker, options)
            .await
            .map_err(|error| {
                // A log written under another mock CA or other measurements fails on its
                // attestation documents: say how that happens off hardware.
                let invalid = matches!(
                    &error,
                    crate::recovery::RecoveryError::Invalid(LogError {
                        kind: LogErrorKind::Attestation { .. },
                        ..
                    })
                );
                let error = anyhow::Error::new(error);
                match (self.mode, invalid) {
                    (NsmMode::Mock, true) => error.context(
                        "mock NSM: a log verifies only under the mock CA that wrote it (kept \
                         with --mock-ca-dir)",
                    ),
                    (NsmMode::DeviceInsecureQemu, true) => error.context(
                        "insecure QEMU mode: a log verifies only if QEMU wrote its documents \
                         (unsigned) under the same image; one written on Nitro hardware or the \
                         mock NSM does not",
                    ),
                    _ => error,
                }
            })?
            .context("the store announced a log but returned none")?;
        Ok((ledger, recovered))
    }

    /// The application and log rebuilt around a key this start already attested.
    async fn app(&self, key: &LogKey) -> anyhow::Result<(LedgerApp, AuditLog)> {
        let (ledger, recovered) = self.ledger().await?;
        let summary = &recovered.summary;
        let ours = summary
            .log_keys
            .iter()
            .any(|k| k.verifier.public_key() == &key.public_key());
        anyhow::ensure!(
            ours,
            "the log read back does not attest this enclave's log key: it is not the log this \
             enclave was writing"
        );
        let log = AuditLog::new(
            recovered.tree,
            key.signer(&summary.origin)?,
            summary.origin.clone(),
            summary.genesis_hash,
        );
        Ok((self.application(ledger, &log), log))
    }

    fn application(&self, ledger: Ledger, log: &AuditLog) -> LedgerApp {
        self.log_size.store(log.next_index(), Ordering::Relaxed);
        let mut app = LedgerApp::new(
            ledger,
            self.nsm.clone(),
            self.directory.clone(),
            self.images.clone(),
            self.log_size.clone(),
        );
        app.publish_directory();
        app.publish_images();
        app
    }
}

/// The admitted images and the witness set as the ledger last replayed or changed them, for
/// the description.
pub type SharedImages = Arc<RwLock<GovernedView>>;

/// What the description shows of the log's governed platform state.
#[derive(Debug, Clone, Default)]
pub struct GovernedView {
    /// The admitted images.
    pub images: Vec<DescribedImage>,
    /// The witness set, if the log names one.
    pub witnesses: Option<ea_protocol::DescribedWitnesses>,
}

/// An image as the description shows it: `PCRn` → hex.
pub(crate) fn pcr_names(
    image: &ea_policy::ImagePcrs,
) -> std::collections::BTreeMap<String, String> {
    image
        .by_index()
        .into_iter()
        .map(|(index, value)| (format!("PCR{index}"), value.to_hex()))
        .collect()
}

/// This enclave's image is not admitted by the log (at its end, or by the genesis): final,
/// and nothing is written.
#[derive(Debug, thiserror::Error)]
#[error(
    "this enclave cannot continue the log: {0}. An image is admitted by an approved image \
     change (govctl image propose, then two owners of / approve); a retired image needs a new \
     one"
)]
struct NotAdmitted(String);

/// The enclave's service.
pub struct Service {
    config: ServiceConfig,
    rebuilder: Arc<Rebuilder>,
    /// This enclave's image: it serves a log only if the log admits it.
    image: OwnImage,
    images: SharedImages,
    phase: RwLock<Phase>,
    directory: SharedDirectory,
    /// Precomputed tables of the Ed25519 keys that sign most (ea_protocol::key_tables).
    key_tables: KeyTables,
    log_size: Arc<AtomicU64>,
    started: Instant,
    transition: tokio::sync::Mutex<()>,
}

/// Whether a start-up error is an outage worth waiting out: the parent's store or KMS not
/// answering. Refusals (a log that does not verify, KMS denying this image) are not.
fn transient(error: &anyhow::Error) -> bool {
    use crate::store_client::StoreError;
    error.chain().any(|cause| {
        // A store conflict: the log grew after it was read (a killed run's last append,
        // still in the parent's socket, landed late). Read it again; those records verify
        // like the rest.
        matches!(
            cause.downcast_ref::<StoreError>(),
            Some(
                StoreError::Unreachable { .. }
                    | StoreError::Call(_)
                    | StoreError::Timeout(_)
                    | StoreError::Refused {
                        code: ea_protocol::ErrorCode::StoreConflict,
                        ..
                    }
            )
        ) || matches!(
            cause.downcast_ref::<ea_kms::KmsError>(),
            Some(ea_kms::KmsError::Unreachable { .. })
        )
    })
}

fn api(status: u16, body: &impl serde::Serialize) -> EnclaveResponse {
    // A change's answer (its record, receipt and checkpoint) is about 2 KiB: start there
    // rather than grow the buffer from nothing.
    let mut json = Vec::with_capacity(4096);
    match serde_json::to_writer(&mut json, body) {
        Ok(()) => EnclaveResponse::Api {
            status,
            body: ByteBuf::from(json),
            signature: None,
        },
        Err(error) => EnclaveResponse::Error(ea_protocol::ErrorReply::new(
            ea_protocol::ErrorCode::Internal,
            format!("the reply could not be encoded: {error}"),
        )),
    }
}

fn api_error(status: u16, code: &str, message: impl Into<String>) -> EnclaveResponse {
    api(status, &ErrorReply::new(code, message))
}

impl Service {
    /// A service in the `starting` phase; call [`Service::start`] to bring it up.
    pub fn new(config: ServiceConfig) -> anyhow::Result<Arc<Service>> {
        let pcrs = ea_attestation::locked_pcrs(config.nsm.as_ref())
            .context("reading this enclave's PCRs")?;
        let pcrs: std::collections::BTreeMap<u16, Vec<u8>> = pcrs.into_iter().collect();
        let image = OwnImage::of_pcrs(&pcrs)?;
        let debug = image.pcrs.is_debug_mode();
        if debug {
            tracing::warn!(
                "PCR0-2 are zero: a debug-mode enclave; its log proves nothing about the image"
            );
        }
        // No PCRs are pinned on the documents: which images wrote the log is the log's own
        // history (the genesis image, then the images approved changes admitted), checked
        // record by record as it is replayed; this enclave serves only if the log admits its
        // image at the end.
        let options = VerifyOptions::new(config.trust_root.clone()).dangerous_allow_debug(debug);
        let directory: SharedDirectory = Arc::default();
        let images: SharedImages = Arc::default();
        let log_size = Arc::new(AtomicU64::new(0));
        let rebuilder = Arc::new(Rebuilder {
            store: config.store.clone(),
            nsm: config.nsm.clone(),
            options,
            replay_capacity: config.replay_capacity,
            clock: config.clock.clone(),
            directory: directory.clone(),
            images: images.clone(),
            log_size: log_size.clone(),
            mode: config.mode,
        });
        Ok(Arc::new(Service {
            config,
            rebuilder,
            image,
            images,
            phase: RwLock::new(Phase::Starting(None)),
            directory,
            key_tables: KeyTables::default(),
            log_size,
            started: Instant::now(),
            transition: tokio::sync::Mutex::new(()),
        }))
    }

    fn phase(&self) -> Phase {
        let phase = match self.phase.read() {
            Ok(phase) => phase.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        // A sequencer that stopped for good stops the service: health, describe and every
        // request say so, with why.
        if let Phase::Serving(serving) = &phase {
            if let Some(why) = serving.sequencer.failed() {
                return Phase::Failed(format!(
                    "the enclave stopped serving and writes nothing more: {why}"
                ));
            }
        }
        phase
    }

    fn set_phase(&self, phase: Phase) {
        tracing::info!(phase = phase.name(), detail = ?phase.detail(), "phase");
        match self.phase.write() {
            Ok(mut slot) => *slot = phase,
            Err(poisoned) => *poisoned.into_inner() = phase,
        }
    }

    /// Brings the service up: waits for the store, then waits for a genesis document (empty
    /// log) or recovers the log and starts serving.
    pub async fn start(self: Arc<Self>) {
        let _transition = self.transition.lock().await;
        let mut delay = Duration::from_millis(100);
        let size = loop {
            match self.config.store.head().await {
                Ok((size, _)) => break size,
                Err(error) => {
                    self.set_phase(Phase::Starting(Some(format!(
                        "waiting for the parent's log store: {error}"
                    ))));
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        };
        if size == 0 {
            self.set_phase(Phase::AwaitingGenesis);
            return;
        }
        let mut delay = Duration::from_millis(200);
        loop {
            self.set_phase(Phase::Recovering);
            let started = Instant::now();
            match self.resume().await {
                Ok(serving) => {
                    tracing::info!(
                        records = self.log_size.load(Ordering::Relaxed),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "log recovered"
                    );
                    self.set_phase(Phase::Serving(serving));
                    return;
                }
                // An outage (KMS or the parent's store unreachable) is waited out; a log that
                // does not verify, or a KMS that refuses this image, is final.
                Err(error) if transient(&error) => {
                    self.set_phase(Phase::Starting(Some(format!(
                        "waiting to recover the log: {error:#}"
                    ))));
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
                Err(error) => {
                    let error = format!("the enclave cannot start; nothing was written: {error:#}");
                    tracing::error!(%error, "start failed");
                    self.set_phase(Phase::Failed(error));
                    return;
                }
            }
        }
    }

    /// Recovers an existing log and appends this start's `enclave_start` record, if the log
    /// admits this enclave's image.
    async fn resume(&self) -> anyhow::Result<Arc<Serving>> {
        // The log key is released (a KMS round trip) while the log is read and verified. It
        // needs the log's genesis hash and genesis image: taken here from records 0 and 1 as
        // the parent serves them, and held to the verified log's below. Wrong ones cannot
        // unseal the key anyway, since its associated data binds both.
        let claimed = self.claimed_log().await?;
        let keys = &self.config.keys;
        let store = &self.config.store;
        let (recovered, prefetched) = tokio::join!(
            self.rebuilder.ledger(),
            keys.prefetch(store, &self.image, claimed)
        );
        let (mut ledger, recovered) = recovered?;
        let summary = &recovered.summary;
        let log = LogIdentity::of_summary(summary)?;
        if let Some(claimed) = claimed {
            anyhow::ensure!(
                claimed.genesis_hash == log.genesis_hash,
                "the parent served two different genesis records: {} first, {} in the log \
                 that verified",
                claimed.genesis_hash.to_hex(),
                log.genesis_hash.to_hex()
            );
        }
        // Only an image the log admits at its end may continue it: checked before any key is
        // made or used, and before anything is written.
        ledger
            .check_start(&self.image.pcrs)
            .map_err(|error| anyhow::Error::new(NotAdmitted(error.to_string())))?;
        let key = keys
            .existing_log(
                store,
                &self.image,
                prefetched?,
                &log,
                first_start(summary, &self.image),
            )
            .await?;
        let genesis_hash = log.genesis_hash;
        let origin = summary.origin.clone();
        let mut log = AuditLog::new(recovered.tree, key.signer(&origin)?, origin, genesis_hash);
        // A log that names witnesses is served only once they vouch that this is the latest
        // tree they saw: checked before anything is written.
        if let Some(witnesses) = ledger.witnesses() {
            self.await_witnesses(&log, witnesses).await?;
        }
        let start_index = self.append_start(&mut log, &mut ledger, &key, &genesis_hash)?;
        self.commit(&mut log).await?;
        let app = self.rebuilder.application(ledger, &log);
        self.serve(app, log, key, genesis_hash, start_index)
    }

    /// Waits until at least the threshold of `witnesses` freshly cosigned the head of `log`
    /// (docs/audit-log.md section 9, "Starting on a witnessed log"). The checkpoint is the
    /// head's, signed now with this enclave's log key: its text is the recovered tree's
    /// size and root whatever checkpoint the store held last, and the key is one the
    /// witnesses are configured with. The parent relays the witnesses' answers; only
    /// cosignatures that verify under the set's keys, over exactly that text, within the
    /// freshness bound of this enclave's clock count. Until enough do, the phase is
    /// `awaiting_witnesses`, naming how many counted and why the others did not, and the
    /// submission is retried with backoff (1 s doubling to 30 s).
    async fn await_witnesses(
        &self,
        log: &AuditLog,
        witnesses: &ea_policy::WitnessSet,
    ) -> anyhow::Result<()> {
        use ea_audit::cosignature::{count_fresh_cosignatures, Freshness, WitnessAnswer};
        let note = log.sign_checkpoint()?;
        let text = ea_audit::note::Note::parse(&note)?
            .unverified_text()
            .to_owned();
        let verifiers = witnesses.verifiers();
        let threshold = witnesses.threshold() as usize;
        let mut delay = Duration::from_secs(1);
        loop {
            let answers = match self.config.store.submit_to_witnesses(note.clone()).await {
                Ok(replies) => replies
                    .into_iter()
                    .map(|r| WitnessAnswer {
                        source: r.url,
                        status: r.status,
                        body: r.body,
                    })
                    .collect(),
                Err(error) => vec![WitnessAnswer {
                    source: "the parent".into(),
                    status: 0,
                    body: error.to_string(),
                }],
            };
            let now = (self.config.clock)() / 1000;
            let tally =
                count_fresh_cosignatures(&text, &answers, &verifiers, now, Freshness::default());
            if tally.meets(threshold) {
                tracing::info!(
                    cosigned = tally.fresh.len(),
                    threshold,
                    size = log.next_index(),
                    "witnesses cosigned the recovered log"
                );
                return Ok(());
            }
            let detail = format!(
                "the log requires {threshold} of its {} witnesses to cosign its head (size {}) \
                 before the enclave serves; {}; nothing is written; retrying in {} s",
                verifiers.len(),
                log.next_index(),
                tally.summary(threshold),
                delay.as_secs()
            );
            tracing::warn!(%detail, "awaiting witnesses");
            self.set_phase(Phase::AwaitingWitnesses(detail));
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(30));
        }
    }

    /// Appends this start's `enclave_start` record and replays it into the ledger (which
    /// admits the genesis image at the log's first start, and refuses an image the log does
    /// not admit).
    fn append_start(
        &self,
        log: &mut AuditLog,
        ledger: &mut Ledger,
        key: &LogKey,
        genesis_hash: &Hash,
    ) -> anyhow::Result<u64> {
        let mut record = self.start_record(key, genesis_hash)?;
        record.seq = log.next_index();
        ledger
            .replay(&record, (self.config.clock)())
            .map_err(|error| anyhow::Error::new(NotAdmitted(error.to_string())))?;
        Ok(log.append(record)?)
    }

    /// The genesis hash and genesis image as the store serves records 0 and 1, not yet
    /// verified; `None` if they do not come back as a genesis and an enclave start.
    async fn claimed_log(&self) -> anyhow::Result<Option<LogIdentity>> {
        let records = self
            .config
            .store
            .read_records(0, 2, 2 * MAX_RECORD_LEN as u32)
            .await?;
        let genesis = records.first().and_then(|first| {
            let fields = RecordFields::parse(first).ok()?;
            Some(record_hash_from(first, fields.attestation))
        });
        let genesis_image = records.get(1).and_then(|second| {
            let fields = RecordFields::parse(second).ok()?;
            let document = ea_attestation::parse_unverified(fields.attestation?).ok()?;
            let image = ea_audit::verify::image_of(&document.pcrs);
            Some(ea_kms::image_digest(
                image.iter().map(|(i, v)| (*i, v.as_slice())),
            ))
        });
        Ok(genesis
            .zip(genesis_image)
            .map(|(genesis_hash, genesis_image)| LogIdentity {
                genesis_hash,
                genesis_image,
            }))
    }

    /// The `enclave_start` record: an attestation document binding the log key
    /// (`public_key`) to this log (`user_data` = genesis hash) and to this image (PCRs).
    fn start_record(&self, key: &LogKey, genesis_hash: &Hash) -> anyhow::Result<Record> {
        let document = self
            .config
            .nsm
            .attestation(Some(genesis_hash.as_bytes()), None, Some(&key.public_key()))
            .context("the NSM could not attest the log key")?;
        // Recorded in the log, so that an auditor sees which NSM (and whether an unsigned
        // one) attested this start.
        let mode = self.config.mode.name();
        Ok(Record {
            seq: 0,
            time: (self.config.clock)(),
            kind: RecordKind::EnclaveStart,
            actor: PLATFORM_ACTOR.to_owned(),
            request: None,
            decision: Value::Null,
            changes: Value::Map(vec![
                (
                    Value::Text("version".into()),
                    Value::Text(env!("CARGO_PKG_VERSION").into()),
                ),
                (Value::Text("nsm".into()), Value::Text(mode.into())),
            ]),
            attestation: Some(document),
        })
    }

    /// Makes the log's pending records durable before anything is served; returns the
    /// checkpoint that covers them.
    async fn commit(&self, log: &mut AuditLog) -> anyhow::Result<String> {
        let (first, records, checkpoint) = log.take_batch()?;
        let size = self
            .config
            .store
            .append(first, records, checkpoint.clone())
            .await
            .context("the parent did not make the start records durable")?;
        log.mark_durable(size);
        Ok(checkpoint)
    }

    fn serve(
        &self,
        app: LedgerApp,
        log: AuditLog,
        key: LogKey,
        genesis_hash: Hash,
        log_key_index: u64,
    ) -> anyhow::Result<Arc<Serving>> {
        let log_key = log.verifier().to_string();
        let answers = AnswerSigner {
            pair: key.answer_signer()?,
            origin: log.origin().to_owned(),
            key_index: log_key_index,
        };
        let key = Arc::new(key);
        let rebuilder = self.rebuilder.clone();
        let recover: Recover<LedgerApp> = Arc::new(move || {
            let rebuilder = rebuilder.clone();
            let key = key.clone();
            Box::pin(async move { rebuilder.app(&key).await })
        });
        let sequencer = Sequencer::start(
            app,
            log,
            self.config.store.clone(),
            self.config.clock.clone(),
            recover,
            self.config.sequencer,
        );
        Ok(Arc::new(Serving {
            sequencer,
            genesis_hash,
            log_key_index,
            log_key,
            answers,
        }))
    }

    /// Health: `ok` only when serving.
    pub fn health(&self) -> HealthReport {
        match self.phase() {
            Phase::Serving(serving) => match serving.sequencer.rebuilding() {
                None => HealthReport::ok(),
                Some(why) => HealthReport {
                    status: Phase::Recovering.name().to_owned(),
                    detail: Some(why),
                },
            },
            phase => HealthReport {
                status: phase.name().to_owned(),
                detail: phase.detail(),
            },
        }
    }

    /// What the enclave says about itself.
    pub fn describe(&self) -> Description {
        let phase = self.phase();
        let serving = match &phase {
            Phase::Serving(serving) => Some(serving.clone()),
            _ => None,
        };
        let governed = match self.images.read() {
            Ok(view) => view.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        Description {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            protocol_version: PROTOCOL_VERSION,
            uptime_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            nsm: self.config.mode,
            phase: phase.name().to_owned(),
            error: match &phase {
                Phase::Failed(error) | Phase::AwaitingWitnesses(error) => Some(error.clone()),
                _ => None,
            },
            genesis_hash: serving.as_ref().map(|s| s.genesis_hash.to_hex()),
            log_size: self.log_size.load(Ordering::Relaxed),
            log_key_index: serving.as_ref().map(|s| s.log_key_index),
            log_key: serving.as_ref().map(|s| s.log_key.clone()),
            image: pcr_names(&self.image.pcrs),
            images: governed.images,
            witnesses: governed.witnesses,
        }
    }

    /// The genesis document, accepted once, while the log is empty.
    pub async fn genesis(&self, document: &[u8]) -> EnclaveResponse {
        let _transition = self.transition.lock().await;
        match self.phase() {
            Phase::AwaitingGenesis => {}
            Phase::Starting(_) => {
                return api_error(
                    503,
                    "enclave_starting",
                    "the enclave is still starting; retry",
                )
            }
            _ => {
                return api_error(
                    409,
                    "genesis_exists",
                    "this enclave's log already has a genesis document",
                )
            }
        }
        let genesis = match std::str::from_utf8(document)
            .map_err(|_| "the genesis document is not UTF-8 JSON".to_owned())
            .and_then(|text| Genesis::from_json(text).map_err(|e| e.to_string()))
        {
            Ok(genesis) => genesis,
            Err(message) => return api_error(400, "invalid_genesis", message),
        };
        match self.write_genesis(&genesis).await {
            Ok((serving, proofs)) => {
                let body = serde_json::json!({
                    "genesisHash": serving.genesis_hash.to_hex(),
                    "logKeyIndex": serving.log_key_index,
                    "logKey": serving.log_key,
                    "records": proofs,
                });
                self.set_phase(Phase::Serving(serving));
                api(201, &body)
            }
            Err(error) => api_error(
                503,
                "genesis_not_written",
                format!("the genesis could not be made durable; nothing was written: {error:#}"),
            ),
        }
    }

    async fn write_genesis(
        &self,
        genesis: &Genesis,
    ) -> anyhow::Result<(Arc<Serving>, Vec<RecordProof>)> {
        let (mut ledger, draft) = Ledger::from_genesis(genesis, self.config.replay_capacity)?;
        // A genesis that names its images must name this one: checked before a key is made.
        ledger
            .check_start(&self.image.pcrs)
            .map_err(|error| anyhow::Error::new(NotAdmitted(error.to_string())))?;
        let record = draft.into_record((self.config.clock)());
        let genesis_hash = record.record_hash()?;
        let origin = log_origin(&genesis_hash);
        let key = self
            .config
            .keys
            .new_log(&self.config.store, &genesis_hash, &self.image)
            .await?;
        let mut log = AuditLog::new(
            MerkleTree::new(),
            key.signer(&origin)?,
            origin,
            genesis_hash,
        );
        let genesis_index = log.append(record)?;
        let start_index = self.append_start(&mut log, &mut ledger, &key, &genesis_hash)?;
        let records: Vec<Vec<u8>> = [genesis_index, start_index]
            .iter()
            .filter_map(|&i| log.pending_record(i).map(<[u8]>::to_vec))
            .collect();
        let checkpoint = self.commit(&mut log).await?;
        let size = log.next_index();
        let proofs = [genesis_index, start_index]
            .iter()
            .zip(records)
            .map(|(&index, record)| {
                Ok(RecordProof {
                    record,
                    receipt: log.receipt(index, size, &checkpoint)?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let app = self.rebuilder.application(ledger, &log);
        Ok((
            self.serve(app, log, key, genesis_hash, start_index)?,
            proofs,
        ))
    }

    /// A client's signed request: authenticated here, decided in log order, answered once
    /// its records are durable.
    pub async fn signed(&self, bytes: &[u8]) -> EnclaveResponse {
        let serving = match self.phase() {
            Phase::Serving(serving) => serving,
            phase => return self.answer_unserved(&phase),
        };
        // What the principal signed names the request, whatever the envelope around it.
        let request_hash = match ea_protocol::signed::decode_signed_request(bytes) {
            Ok(request) => ea_audit::answer::request_hash(&request.body),
            Err(_) => ea_audit::answer::request_hash(bytes),
        };
        let (response, head) = self.answer_signed(&serving, bytes).await;
        let head = head.unwrap_or_else(|| serving.sequencer.durable_head());
        serving
            .answers
            .sign(response, request_hash, head, (self.config.clock)())
    }

    /// The 503 of a request that came before the enclave serves: nothing can sign it yet.
    fn answer_unserved(&self, phase: &Phase) -> EnclaveResponse {
        api_error(
            503,
            "enclave_not_ready",
            format!(
                "the enclave is {}: {}",
                phase.name(),
                phase.detail().unwrap_or_default()
            ),
        )
    }

    /// The answer to a signed request, and the tree it was decided at when the sequencer
    /// decided it (otherwise the caller takes the durable tree of the moment).
    async fn answer_signed(
        &self,
        serving: &Serving,
        bytes: &[u8],
    ) -> (EnclaveResponse, Option<(u64, Hash)>) {
        let directory = match self.directory.read() {
            Ok(directory) => directory.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let now = (self.config.clock)();
        let request = match directory.authenticate_with(bytes, now, Some(&self.key_tables)) {
            Ok(request) => request,
            Err(error) => {
                let status = request_error_status(error.code());
                return (api_error(status, error.code(), error.to_string()), None);
            }
        };
        match serving.sequencer.submit(request).await {
            Err(error) => {
                let code = match error {
                    SequencerError::NotDurable(_) => "not_durable",
                    SequencerError::Recovering => "recovering",
                    SequencerError::Stopped => "shutting_down",
                    SequencerError::Log(_) => "internal",
                    SequencerError::Failed(_) => "enclave_not_ready",
                };
                (api_error(503, code, error.to_string()), None)
            }
            Ok(Committed {
                reply:
                    AppReply {
                        answer: Err(Rejected::Request(error)),
                        ..
                    },
                head,
                ..
            }) => (
                api_error(
                    request_error_status(error.code()),
                    error.code(),
                    error.to_string(),
                ),
                Some(head),
            ),
            Ok(Committed {
                reply:
                    AppReply {
                        answer: Err(error @ Rejected::Clock(_)),
                        ..
                    },
                head,
                ..
            }) => (api_error(503, "clock", error.to_string()), Some(head)),
            Ok(Committed {
                reply:
                    AppReply {
                        answer: Ok(answer),
                        records,
                    },
                receipts,
                head,
            }) => {
                let status = answer.status();
                let records: Vec<RecordProof> = records
                    .into_iter()
                    .zip(receipts)
                    .map(|(record, receipt)| RecordProof { record, receipt })
                    .collect();
                let reply = Reply {
                    result: answer,
                    log_key_index: (!records.is_empty()).then_some(serving.log_key_index),
                    records,
                };
                (api(status, &reply), Some(head))
            }
        }
    }
}
