//! Reading the parent's log back at start (or after a failed commit), verifying all of it,
//! and replaying it into a ledger.
//!
//! The parent is untrusted: every checkpoint must be signed by an attested log key, every
//! record must be in the tree the checkpoints sign, and the first record that does not fit
//! stops the start with its index. Nothing is written until the whole log has verified.
//!
//! Two passes share that contract:
//! - the **fast pass** runs first. It proves the log authentic (the tree over the records
//!   against every attested checkpoint, [`LogVerifier::add_authenticated_record`]) on one
//!   thread while another decodes each record's events straight from its bytes and replays
//!   them, and the store is read ahead of both. It skips what this enclave checked before it
//!   wrote each record (canonical form, client signatures, approval records' own documents);
//!   a record that no checkpoint covers fails it.
//! - the **full pass** runs only when the fast one fails on the log's content. It checks
//!   every record as an auditor does and names the first bad index, which the fast pass,
//!   which finds a changed record only when its checkpoint does not match, cannot always do.
//!
//! Both read the checkpoints as the records reach them ([`CheckpointFeed`]): each page of
//! records travels with the checkpoints listed up to its end, which go to the verifier right
//! after the records they cover, so each is checked as it arrives. What the store can make
//! the enclave hold is bounded: a page of records (at most [`MAX_RECORDS_PER_READ`], within a
//! frame), one page of checkpoints read ahead, and the checkpoints of each page of records
//! (at most one per record, [`MAX_CHECKPOINT_BYTES_PER_PAGE`]). A store that answers what was
//! not asked (pages longer than asked, checkpoints below the size asked for, a size listed
//! twice or out of order, a checkpoint listed at another size than its note's) is refused
//! with [`StoreMisbehaved`]. Every size and index the store gives is used with checked
//! arithmetic.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ea_audit::record::{Record, RecordFields};
use ea_audit::verify::{AttestationChecker, RequestChecker, SkipRequestChecks, VerifyOptions};
use ea_audit::{LogError, LogSummary, LogVerifier, MerkleTree};
use ea_ledger::Ledger;
use ea_protocol::store::{MAX_CHECKPOINTS_PER_READ, MAX_RECORDS_PER_READ};
use tokio::sync::mpsc;

use crate::store_client::{StoreClient, StoreError};

/// Why the log could not be recovered.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// The store could not be read.
    #[error("reading the log from the parent failed: {0}")]
    Store(#[from] StoreError),
    /// The log does not verify; nothing has been changed.
    #[error("the parent's log does not verify: {0}")]
    Invalid(LogError),
    /// The store returned fewer records than its head announced.
    #[error("the parent announced {announced} records but returned only {returned}")]
    Short {
        /// What `Head` said.
        announced: u64,
        /// What the reads returned.
        returned: u64,
    },
    /// A record verified but could not be replayed into the state.
    #[error("record {index} could not be replayed: {reason}")]
    Replay {
        /// The record's index.
        index: u64,
        /// Why.
        reason: String,
    },
    /// The store answered something other than what was asked.
    #[error("the parent's store misbehaved: {0}")]
    Misbehaved(#[from] StoreMisbehaved),
}

/// How the store's answers broke what the store protocol promises: no honest store answers
/// this, whatever it holds, so the log is refused without being read further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreMisbehaved {
    /// A page longer than asked for.
    #[error("the store returned {returned} {what} when at most {asked} were asked for")]
    PageTooLong {
        /// "records" or "checkpoints".
        what: &'static str,
        /// How many came.
        returned: usize,
        /// How many were asked for.
        asked: u32,
    },
    /// A checkpoint below the size asked for: a store that answers the same page again and
    /// again would otherwise be read forever.
    #[error("the store listed a checkpoint of size {size} when asked for sizes from {from_size}")]
    CheckpointBelowRequest {
        /// The size listed.
        size: u64,
        /// The smallest size asked for.
        from_size: u64,
    },
    /// The same size listed twice: a log has one checkpoint per size.
    #[error("the store listed two checkpoints of size {size}: a log has one checkpoint per size")]
    RepeatedCheckpoint {
        /// The size.
        size: u64,
    },
    /// Sizes listed out of order.
    #[error(
        "the store listed a checkpoint of size {size} after one of size {previous}: checkpoints \
         come by increasing size"
    )]
    CheckpointsOutOfOrder {
        /// The size listed.
        size: u64,
        /// The size listed before it.
        previous: u64,
    },
    /// A checkpoint whose note is for a larger tree than the size it is listed at: the
    /// records up to the listed size are all in, and it still waits for more.
    #[error(
        "the store listed a checkpoint at size {listed} whose note is for another size (a \
         larger tree)"
    )]
    CheckpointMislisted {
        /// The size it was listed at.
        listed: u64,
    },
    /// More checkpoint bytes for one page of records than any log of this enclave's has.
    #[error(
        "the store listed {bytes} bytes of checkpoints for the records up to {end}, more than \
         the {limit} held with one page of records"
    )]
    CheckpointsTooLarge {
        /// One past the last record of the page.
        end: u64,
        /// The bytes of the checkpoints listed for it so far.
        bytes: usize,
        /// [`MAX_CHECKPOINT_BYTES_PER_PAGE`].
        limit: usize,
    },
}

// By hand rather than `#[from]`, which would make the error its source too and print it
// twice in a chain.
impl From<LogError> for RecoveryError {
    fn from(error: LogError) -> Self {
        RecoveryError::Invalid(error)
    }
}

/// Most bytes of records asked for in one read, leaving room in a 1 MiB frame.
const READ_BYTES: u32 = 768 * 1024;

/// Pages read ahead of the slower of the two fast-pass threads.
const PAGES_AHEAD: usize = 4;

/// Most bytes of checkpoint notes held with one page of records. The enclave's notes are
/// about 250 bytes and a page holds at most [`MAX_RECORDS_PER_READ`] records, so even one
/// checkpoint per record (a batch per request) fits four times over; beyond that, the store
/// is filling the enclave's memory.
pub const MAX_CHECKPOINT_BYTES_PER_PAGE: usize = 4 << 20;

/// The verified log: its summary and its tree, ready to be appended to.
pub struct RecoveredLog {
    /// What the verifier established.
    pub summary: LogSummary,
    /// The tree over every record.
    pub tree: MerkleTree,
}

/// How to rebuild the ledger from the log.
#[derive(Debug, Clone, Copy)]
pub struct ReplayOptions {
    /// The capacity of the ledger's replay cache.
    pub replay_capacity: usize,
    /// Now, unix milliseconds: nonces of requests still fresh at this time are remembered.
    pub now_ms: u64,
}

/// Reads, verifies and replays the whole log. Returns `Ok(None)` when the log is empty.
///
/// Every record must be covered by a checkpoint. The parent stores a batch and its
/// checkpoint in one transaction, so records after the last checkpoint were not written by
/// this enclave: they are refused, with the index of the first.
pub async fn recover_log<A>(
    store: &StoreClient,
    attestation: A,
    options: ReplayOptions,
) -> Result<Option<(Ledger, RecoveredLog)>, RecoveryError>
where
    A: AttestationChecker + Clone + Send + 'static,
{
    let (size, _) = store.head().await?;
    if size == 0 {
        return Ok(None);
    }
    let started = Instant::now();
    let fast = fast_pass(store, attestation.clone(), options, size).await;
    match fast {
        Ok(recovered) => Ok(Some(recovered)),
        Err(FastFailure::Store(error)) => Err(error),
        Err(FastFailure::Content(reason)) => {
            tracing::warn!(
                %reason,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "the log failed the fast check; checking every record to find the first bad one"
            );
            full_pass(store, attestation, options, size).await.map(Some)
        }
    }
}

/// Why the fast pass stopped.
enum FastFailure {
    /// The store failed or misbehaved: checking the content again would not help.
    Store(RecoveryError),
    /// Something in the log: the full pass finds what.
    Content(String),
}

/// A page of records, the index of its first, and the checkpoints listed up to its end
/// (after those of the pages before it), as `(listed size, note)`.
struct Page {
    first: u64,
    /// One past its last record.
    end: u64,
    records: Vec<Vec<u8>>,
    checkpoints: Vec<(u64, String)>,
}

/// What one fast-pass thread did, and for how long it was busy.
struct Worked<T> {
    result: Result<T, String>,
    busy: Duration,
}

async fn fast_pass<A>(
    store: &StoreClient,
    attestation: A,
    options: ReplayOptions,
    size: u64,
) -> Result<(Ledger, RecoveredLog), FastFailure>
where
    A: AttestationChecker + Send + 'static,
{
    let verifier = LogVerifier::new(attestation, SkipRequestChecks, VerifyOptions::default());
    let (to_verifier, pages_to_verify) = mpsc::channel::<Arc<Page>>(PAGES_AHEAD);
    let (to_replayer, pages_to_replay) = mpsc::channel::<Arc<Page>>(PAGES_AHEAD);
    let verifying = tokio::task::spawn_blocking(move || verify_pages(verifier, pages_to_verify));
    let replaying = tokio::task::spawn_blocking(move || replay_pages(options, pages_to_replay));

    let mut reading = Duration::ZERO;
    let read = read_ahead(store, size, &to_verifier, &to_replayer, &mut reading).await;
    drop((to_verifier, to_replayer));
    let verified = join(verifying).await;
    let replayed = join(replaying).await;
    read.map_err(FastFailure::Store)?;
    tracing::info!(
        reading_ms = reading.as_millis() as u64,
        verifying_ms = verified.busy.as_millis() as u64,
        replaying_ms = replayed.busy.as_millis() as u64,
        "log read back (verified and replayed side by side)"
    );
    let log = verified.result.map_err(FastFailure::Content)?;
    let ledger = replayed.result.map_err(FastFailure::Content)?;
    Ok((ledger, log))
}

/// Reads the log page by page and hands each page to both threads; then the first
/// checkpoint listed past the records, if any, to the verifier (which refuses the log for
/// it: a tail cut off). Stops early, without error, once a thread has stopped: its result
/// says why.
async fn read_ahead(
    store: &StoreClient,
    size: u64,
    to_verifier: &mpsc::Sender<Arc<Page>>,
    to_replayer: &mpsc::Sender<Arc<Page>>,
    reading: &mut Duration,
) -> Result<(), RecoveryError> {
    let mut feed = CheckpointFeed::default();
    let mut next = 0;
    while next < size {
        let started = Instant::now();
        let page = Arc::new(read_page(store, &mut feed, next, size).await?);
        *reading += started.elapsed();
        next = page.end;
        if to_verifier.send(page.clone()).await.is_err() || to_replayer.send(page).await.is_err() {
            return Ok(());
        }
    }
    if let Some(beyond) = feed.next_listed(store).await? {
        let page = Page {
            first: next,
            end: next,
            records: Vec::new(),
            checkpoints: vec![beyond],
        };
        // A verifier that stopped already has its answer.
        let _ = to_verifier.send(Arc::new(page)).await;
    }
    Ok(())
}

/// One page of records from `next` (of a log of `size`), with the checkpoints listed up to
/// its end.
async fn read_page(
    store: &StoreClient,
    feed: &mut CheckpointFeed,
    next: u64,
    size: u64,
) -> Result<Page, RecoveryError> {
    // A whole page even near the end, as before: the store may hold more than its `Head`
    // said (an append that landed since), and those records are verified like the others.
    // The page is bounded all the same: at most this many records, within one frame.
    let asked = MAX_RECORDS_PER_READ;
    let records = store.read_records(next, asked, READ_BYTES).await?;
    if records.is_empty() {
        return Err(RecoveryError::Short {
            announced: size,
            returned: next,
        });
    }
    let end = u32::try_from(records.len())
        .ok()
        .filter(|count| *count <= asked)
        .and_then(|count| next.checked_add(u64::from(count)))
        .ok_or(StoreMisbehaved::PageTooLong {
            what: "records",
            returned: records.len(),
            asked,
        })?;
    let mut checkpoints = Vec::new();
    feed.through(store, end, &mut checkpoints).await?;
    Ok(Page {
        first: next,
        end,
        records,
        checkpoints,
    })
}

/// The store's checkpoints, read one page at a time as the records reach them, each page
/// checked against what was asked: sizes at least the one asked from, strictly increasing
/// (within a page and across pages), no more than asked for.
#[derive(Default)]
struct CheckpointFeed {
    /// The sizes to ask from next; `None` once the store has no more (or the last size
    /// listed was `u64::MAX`, after which there can be none).
    from_size: Option<u64>,
    /// Read and not yet handed on, by increasing listed size: at most one page.
    ahead: VecDeque<(u64, String)>,
    /// The last size listed.
    last: Option<u64>,
    /// Set once the first page has been asked for.
    started: bool,
}

impl CheckpointFeed {
    /// Appends to `into` the checkpoints listed at sizes up to `end`, reading pages as
    /// needed; stops at the first listed past `end` (kept for later).
    async fn through(
        &mut self,
        store: &StoreClient,
        end: u64,
        into: &mut Vec<(u64, String)>,
    ) -> Result<(), RecoveryError> {
        let mut bytes = 0usize;
        loop {
            while self.ahead.front().is_some_and(|(size, _)| *size <= end) {
                if let Some((size, note)) = self.ahead.pop_front() {
                    bytes = bytes.saturating_add(note.len());
                    if bytes > MAX_CHECKPOINT_BYTES_PER_PAGE {
                        return Err(StoreMisbehaved::CheckpointsTooLarge {
                            end,
                            bytes,
                            limit: MAX_CHECKPOINT_BYTES_PER_PAGE,
                        }
                        .into());
                    }
                    into.push((size, note));
                }
            }
            // Something listed past `end` is waiting; or the last size listed reaches `end`,
            // so that none to come can be for this page (sizes increase): the next page is
            // read only when a later page of records needs it.
            let done = !self.ahead.is_empty() || self.last.is_some_and(|last| last >= end);
            if done || !self.read_more(store).await? {
                return Ok(());
            }
        }
    }

    /// The next checkpoint listed, if any: after the last record, one listed past the log.
    async fn next_listed(
        &mut self,
        store: &StoreClient,
    ) -> Result<Option<(u64, String)>, RecoveryError> {
        if self.ahead.is_empty() {
            self.read_more(store).await?;
        }
        Ok(self.ahead.pop_front())
    }

    /// Reads the next page into `ahead`; false when the store has no more.
    async fn read_more(&mut self, store: &StoreClient) -> Result<bool, RecoveryError> {
        let from_size = match (self.started, self.from_size) {
            (false, _) => 0,
            (true, Some(from_size)) => from_size,
            (true, None) => return Ok(false),
        };
        self.started = true;
        let page = store
            .read_checkpoints(from_size, MAX_CHECKPOINTS_PER_READ)
            .await?;
        if page.len() > MAX_CHECKPOINTS_PER_READ as usize {
            return Err(StoreMisbehaved::PageTooLong {
                what: "checkpoints",
                returned: page.len(),
                asked: MAX_CHECKPOINTS_PER_READ,
            }
            .into());
        }
        if page.is_empty() {
            self.from_size = None;
            return Ok(false);
        }
        for (size, note) in page {
            if size < from_size {
                return Err(StoreMisbehaved::CheckpointBelowRequest { size, from_size }.into());
            }
            match self.last {
                Some(previous) if size == previous => {
                    return Err(StoreMisbehaved::RepeatedCheckpoint { size }.into());
                }
                Some(previous) if size < previous => {
                    return Err(StoreMisbehaved::CheckpointsOutOfOrder { size, previous }.into());
                }
                _ => {}
            }
            self.last = Some(size);
            self.ahead.push_back((size, note));
        }
        self.from_size = self.last.and_then(|last| last.checked_add(1));
        Ok(true)
    }
}

/// Where the records and checkpoints of a page go, in log order.
trait Sink {
    type Error;
    /// The records taken so far.
    fn records(&self) -> u64;
    fn record(&mut self, bytes: &[u8]) -> Result<(), Self::Error>;
    fn checkpoint(&mut self, listed: u64, note: &str) -> Result<(), Self::Error>;
}

/// Feeds a page in log order: the records up to each checkpoint's listed size, then the
/// checkpoint, which the verifier so checks as soon as it arrives.
fn feed_page<S: Sink>(sink: &mut S, page: &Page) -> Result<(), S::Error> {
    let mut rest = page.records.as_slice();
    for (listed, note) in &page.checkpoints {
        let due = usize::try_from(listed.saturating_sub(sink.records())).unwrap_or(usize::MAX);
        let (now, later) = rest.split_at_checked(due).unwrap_or((rest, &[]));
        for bytes in now {
            sink.record(bytes)?;
        }
        rest = later;
        sink.checkpoint(*listed, note)?;
    }
    for bytes in rest {
        sink.record(bytes)?;
    }
    Ok(())
}

/// Once the records have reached a checkpoint's listed size, the verifier has checked it; if
/// it still waits, its note is for a larger tree than the store listed it at. Left waiting,
/// it would let the store have the enclave read and hold every record up to that size
/// before anything is checked.
fn check_listing<A: AttestationChecker, R: RequestChecker>(
    verifier: &LogVerifier<A, R>,
    listed: u64,
) -> Result<(), StoreMisbehaved> {
    if verifier.records() >= listed && verifier.waiting_checkpoints() > 0 {
        return Err(StoreMisbehaved::CheckpointMislisted { listed });
    }
    Ok(())
}

/// The fast pass's verifier: records taken as authentic once the checkpoints prove them.
struct Authenticated<A: AttestationChecker>(LogVerifier<A, SkipRequestChecks>);

impl<A: AttestationChecker> Sink for Authenticated<A> {
    type Error = String;
    fn records(&self) -> u64 {
        self.0.records()
    }
    fn record(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.0
            .add_authenticated_record(bytes)
            .map_err(|error| error.to_string())
    }
    fn checkpoint(&mut self, listed: u64, note: &str) -> Result<(), String> {
        self.0.add_checkpoint(note).map_err(|e| e.to_string())?;
        check_listing(&self.0, listed).map_err(|e| e.to_string())
    }
}

async fn join<T>(task: tokio::task::JoinHandle<Worked<T>>) -> Worked<T> {
    task.await.unwrap_or_else(|error| Worked {
        result: Err(format!("a recovery thread stopped: {error}")),
        busy: Duration::ZERO,
    })
}

/// The verifying thread: the tree against the checkpoints.
fn verify_pages<A: AttestationChecker>(
    verifier: LogVerifier<A, SkipRequestChecks>,
    mut pages: mpsc::Receiver<Arc<Page>>,
) -> Worked<RecoveredLog> {
    let mut busy = Duration::ZERO;
    let mut verifier = Authenticated(verifier);
    while let Some(page) = pages.blocking_recv() {
        let started = Instant::now();
        if let Err(error) = feed_page(&mut verifier, &page) {
            return Worked {
                result: Err(error),
                busy,
            };
        }
        busy += started.elapsed();
    }
    let started = Instant::now();
    let result = verifier
        .0
        .finish_with_tree()
        .map(|(summary, tree)| RecoveredLog { summary, tree })
        .map_err(|error| error.to_string());
    busy += started.elapsed();
    Worked { result, busy }
}

/// The replaying thread: each record's events into the ledger, in order.
fn replay_pages(options: ReplayOptions, mut pages: mpsc::Receiver<Arc<Page>>) -> Worked<Ledger> {
    let mut busy = Duration::ZERO;
    let mut ledger: Option<Ledger> = None;
    while let Some(page) = pages.blocking_recv() {
        let started = Instant::now();
        // Records first: the indexes stop with them, never past the page's end.
        for (bytes, index) in page.records.iter().zip(page.first..) {
            if let Err(reason) = replay_one(&mut ledger, options, bytes) {
                return Worked {
                    result: Err(format!("record {index} could not be replayed: {reason}")),
                    busy,
                };
            }
        }
        busy += started.elapsed();
    }
    let result = ledger.ok_or_else(|| "the log has no genesis record".to_owned());
    Worked { result, busy }
}

fn replay_one(
    ledger: &mut Option<Ledger>,
    options: ReplayOptions,
    bytes: &[u8],
) -> Result<(), String> {
    match ledger {
        // The genesis document is a value tree by nature: decode record 0 in full.
        None => {
            let record = Record::from_bytes(bytes).map_err(|e| e.to_string())?;
            let genesis = Ledger::from_genesis_record(&record, options.replay_capacity)
                .map_err(|e| e.to_string())?;
            *ledger = Some(genesis);
            Ok(())
        }
        Some(ledger) => {
            let fields = RecordFields::parse(bytes).map_err(|e| e.to_string())?;
            ledger
                .replay_fields(&fields, options.now_ms)
                .map_err(|e| e.to_string())
        }
    }
}

/// The full pass: every check an auditor makes, and the replay, record by record.
struct Full<A: AttestationChecker> {
    verifier: LogVerifier<A, SkipRequestChecks>,
    ledger: Option<Ledger>,
    options: ReplayOptions,
}

impl<A: AttestationChecker> Sink for Full<A> {
    type Error = RecoveryError;
    fn records(&self) -> u64 {
        self.verifier.records()
    }
    fn record(&mut self, bytes: &[u8]) -> Result<(), RecoveryError> {
        let index = self.verifier.records();
        let record = self.verifier.add_record(bytes)?;
        let replayed = match &mut self.ledger {
            None => Ledger::from_genesis_record(&record, self.options.replay_capacity)
                .map(|genesis| self.ledger = Some(genesis)),
            Some(ledger) => ledger.replay(&record, self.options.now_ms),
        };
        replayed.map_err(|error| RecoveryError::Replay {
            index,
            reason: error.to_string(),
        })
    }
    fn checkpoint(&mut self, listed: u64, note: &str) -> Result<(), RecoveryError> {
        self.verifier.add_checkpoint(note)?;
        Ok(check_listing(&self.verifier, listed)?)
    }
}

/// Every check an auditor makes, record by record in one thread, so that the error names
/// the first bad index.
async fn full_pass<A: AttestationChecker>(
    store: &StoreClient,
    attestation: A,
    options: ReplayOptions,
    size: u64,
) -> Result<(Ledger, RecoveredLog), RecoveryError> {
    let mut full = Full {
        verifier: LogVerifier::new(attestation, SkipRequestChecks, VerifyOptions::default()),
        ledger: None,
        options,
    };
    let mut feed = CheckpointFeed::default();
    let mut next = 0;
    while next < size {
        let page = read_page(store, &mut feed, next, size).await?;
        feed_page(&mut full, &page)?;
        next = page.end;
    }
    // The first checkpoint listed past the records: `finish` names the missing tail.
    if let Some((listed, note)) = feed.next_listed(store).await? {
        full.checkpoint(listed, &note)?;
    }
    let (summary, tree) = full.verifier.finish_with_tree()?;
    // INVARIANT: the verifier accepted record 0 as genesis, which made the ledger.
    let ledger = full.ledger.ok_or(RecoveryError::Short {
        announced: size,
        returned: 0,
    })?;
    Ok((ledger, RecoveredLog { summary, tree }))
}
