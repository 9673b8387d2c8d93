//! The application the sequencer drives: the ledger, with the NSM attesting the records that
//! must carry their own attestation, and the key directory published for signature checks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use ea_attestation::Nsm;
use ea_audit::record::AttestationRule;
use ea_ledger::{Answer, Authenticated, Directory, Draft, Ledger, Rejected};

use crate::sequencer::{Application, Context};

/// The key snapshot that connections check signatures against, replaced after each batch
/// that changed principals or keys.
pub type SharedDirectory = Arc<RwLock<Arc<Directory>>>;

/// What the application answers one request with.
#[derive(Debug)]
pub struct AppReply {
    /// The ledger's answer, or why it refused to decide.
    pub answer: Result<Answer, Rejected>,
    /// The canonical bytes of the records the request wrote, in order.
    pub records: Vec<Vec<u8>>,
}

/// The ledger inside the sequencer.
pub struct LedgerApp {
    ledger: Ledger,
    nsm: Arc<dyn Nsm>,
    directory: SharedDirectory,
    images: crate::service::SharedImages,
    log_size: Arc<AtomicU64>,
    broken: Option<String>,
}

impl LedgerApp {
    /// The application over a ledger rebuilt from the log.
    pub fn new(
        ledger: Ledger,
        nsm: Arc<dyn Nsm>,
        directory: SharedDirectory,
        images: crate::service::SharedImages,
        log_size: Arc<AtomicU64>,
    ) -> Self {
        Self {
            ledger,
            nsm,
            directory,
            images,
            log_size,
            broken: None,
        }
    }

    /// Publishes the key directory now (at start, before the first request).
    pub fn publish_directory(&mut self) {
        self.ledger.take_directory_changed();
        let snapshot = Arc::new(Directory::of(self.ledger.state()));
        match self.directory.write() {
            Ok(mut slot) => *slot = snapshot,
            // A writer panicked while holding it; the snapshot is still replaced.
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
    }

    /// Publishes the admitted images and the witness set (for the enclave's description).
    pub fn publish_images(&mut self) {
        self.ledger.take_images_changed();
        let images: Vec<ea_protocol::DescribedImage> = self
            .ledger
            .images()
            .into_iter()
            .map(|view| ea_protocol::DescribedImage {
                pcrs: crate::service::pcr_names(&view.pcrs),
                record: view.record,
                approval_id: view.approval_id.map(|id| id.to_string()),
                running_since: view.running_since,
            })
            .collect();
        let witnesses = self
            .ledger
            .witnesses()
            .map(|set| ea_protocol::DescribedWitnesses {
                threshold: set.threshold(),
                keys: set.keys().iter().map(ToString::to_string).collect(),
            });
        let view = crate::service::GovernedView { images, witnesses };
        match self.images.write() {
            Ok(mut slot) => *slot = view,
            Err(poisoned) => *poisoned.into_inner() = view,
        }
    }

    /// Appends a draft, attested when its kind requires (approvals, rejections and their
    /// application carry an attestation document of their own record hash).
    fn append(&mut self, draft: Draft, context: &mut Context<'_>) -> Option<u64> {
        let kind = draft.kind;
        let record = draft.into_record(context.now);
        let appended = match kind.attestation() {
            AttestationRule::RecordHash => {
                let nsm = self.nsm.clone();
                context.append_attested(record, move |hash| {
                    nsm.attestation(Some(hash), None, None)
                        .map_err(|e| e.to_string())
                })
            }
            _ => context.append(record),
        };
        match appended {
            Ok(index) => Some(index),
            Err(error) => {
                // The ledger already applied the draft's events: without its record the
                // state is ahead of the log, so it must be rebuilt.
                tracing::error!(%error, "a record could not be appended; rebuilding from the log");
                self.broken = Some(error.to_string());
                None
            }
        }
    }
}

impl Application for LedgerApp {
    type Request = Authenticated;
    type Reply = AppReply;

    fn execute(&mut self, request: Authenticated, context: &mut Context<'_>) -> AppReply {
        let execution = match self.ledger.execute(&request, context.now) {
            Ok(execution) => execution,
            Err(rejected) => {
                return AppReply {
                    answer: Err(rejected),
                    records: Vec::new(),
                }
            }
        };
        let mut records = Vec::new();
        for draft in execution.drafts {
            let Some(index) = self.append(draft, context) else {
                return AppReply {
                    answer: Ok(Answer::error(
                        "internal",
                        "the decision could not be recorded; the enclave is rebuilding its state, retry",
                    )),
                    records: Vec::new(),
                };
            };
            records.extend(context.record(index).map(<[u8]>::to_vec));
        }
        self.log_size.store(context.next_index(), Ordering::Relaxed);
        AppReply {
            answer: Ok(execution.answer),
            records,
        }
    }

    fn tick(&mut self, context: &mut Context<'_>) {
        for draft in self.ledger.tick(context.now) {
            if self.append(draft, context).is_none() {
                return;
            }
        }
    }

    fn next_due(&self) -> Option<u64> {
        self.ledger.next_due()
    }

    fn committed(&mut self) {
        if self.ledger.take_images_changed() {
            self.publish_images();
        }
        if self.ledger.take_directory_changed() {
            let snapshot = Arc::new(Directory::of(self.ledger.state()));
            match self.directory.write() {
                Ok(mut slot) => *slot = snapshot,
                Err(poisoned) => *poisoned.into_inner() = snapshot,
            }
        }
    }

    fn needs_recovery(&self) -> bool {
        self.broken.is_some() || self.ledger.poisoned().is_some()
    }
}
