//! The single writer: decides requests one after another, commits their records in batches
//! through the parent, and answers only once the records are durable.
//!
//! Why one task: the engine's decisions must follow one order (the log's), and each decision
//! must see the effects of the ones before it, including those still waiting for the disk.
//! Concurrency comes from batching instead (group commit), pipelined: while one batch is
//! being made durable, the next is decided, and it is sent the moment the first is
//! acknowledged. So one fsync serves every request that arrived during the previous one, and
//! deciding never waits for the disk.
//!
//! A state change is visible only after its record is durable: every reply, reads included,
//! leaves after the commit of the batch it was decided in, which comes after the commits of
//! the batches before it. If a commit fails, the state holds effects that are not durable
//! (that batch's and the next one's, decided on top of it); the sequencer then fails both and
//! rebuilds state and tree from the parent's log (the same recovery as at start) before
//! deciding anything else.
//!
//! A rebuilt log is taken up only if it holds, as its prefix, the tree this enclave last
//! acknowledged: the same size and the same root as the checkpoint of that batch. Every
//! enclave of the image holds the same log key (KMS releases it to the image), so a log that
//! verifies need not be this enclave's: a second enclave, run by the parent on a copy of the
//! store, writes another branch with the same key. Taking that branch up would make this
//! enclave sign checkpoints for two different trees, and the receipts it gave would no longer
//! be in the log it goes on with. A shorter log is waited out (the parent may still hand
//! over the records it holds); another branch is final: the sequencer refuses every request
//! from then on and writes nothing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ea_audit::record::Record;
use ea_audit::{Hash, Receipt};
use tokio::sync::{mpsc, oneshot};

use crate::audit_log::{AuditLog, AuditLogError};
use crate::store_client::StoreClient;

/// Unix milliseconds, from whatever clock the enclave trusts.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// What one request may do to the log while it is decided.
pub struct Context<'a> {
    /// The time of this batch's decisions, unix ms.
    pub now: u64,
    log: &'a mut AuditLog,
    appended: Vec<u64>,
}

impl Context<'_> {
    /// Appends a record; its receipt goes to the request's reply.
    pub fn append(&mut self, record: Record) -> Result<u64, AuditLogError> {
        let index = self.log.append(record)?;
        self.appended.push(index);
        Ok(index)
    }

    /// Appends a record carrying an attestation document of its own record hash.
    pub fn append_attested(
        &mut self,
        record: Record,
        attest: impl FnOnce(&[u8]) -> Result<Vec<u8>, String>,
    ) -> Result<u64, AuditLogError> {
        let index = self.log.append_attested(record, attest)?;
        self.appended.push(index);
        Ok(index)
    }

    /// The index the next record gets.
    pub fn next_index(&self) -> u64 {
        self.log.next_index()
    }

    /// The canonical bytes of a record appended in this batch.
    pub fn record(&self, index: u64) -> Option<&[u8]> {
        self.log.pending_record(index)
    }
}

/// The deterministic state the sequencer drives.
pub trait Application: Send + 'static {
    /// A request, already authenticated.
    type Request: Send + 'static;
    /// Its answer (receipts are added by the sequencer).
    type Reply: Send + 'static;

    /// Decides `request` against the current state, applies its effects at once, and
    /// appends its records through `context`.
    fn execute(&mut self, request: Self::Request, context: &mut Context<'_>) -> Self::Reply;

    /// Performs the transitions that are due at `context.now` (expiries), appending their
    /// records. Called before each batch and when [`Application::next_due`] comes.
    fn tick(&mut self, context: &mut Context<'_>);

    /// When the next automatic transition is due, if any.
    fn next_due(&self) -> Option<u64>;

    /// Called after a batch became durable: publish whatever readers outside the sequencer
    /// may see (for example the key directory used to check signatures in parallel).
    fn committed(&mut self);

    /// True when the application's state can no longer be trusted (an invariant broke while
    /// deciding): the rest of the batch is refused, what was decided before is committed,
    /// and the state is rebuilt from the log.
    fn needs_recovery(&self) -> bool {
        false
    }
}

/// Rebuilds the application and the log from the parent's store.
pub type Recover<A> = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = anyhow::Result<(A, AuditLog)>> + Send>> + Send + Sync,
>;

/// A reply whose records are durable.
#[derive(Debug)]
pub struct Committed<R> {
    /// The application's answer.
    pub reply: R,
    /// One receipt per record the request appended, in order.
    pub receipts: Vec<Receipt>,
    /// The durable tree (size, root) the answer was decided at: what its signature names.
    pub head: (u64, Hash),
}

/// Why a request got no committed reply.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SequencerError {
    /// The records could not be made durable; the request had no effect that anyone will see
    /// (unless the parent stored them and lost the acknowledgement: the log tells).
    #[error("the decision could not be made durable: {0}")]
    NotDurable(String),
    /// The enclave is rebuilding its state from the log after a failed commit.
    #[error("the enclave is recovering its state from the log; retry shortly")]
    Recovering,
    /// The sequencer has stopped.
    #[error("the enclave is shutting down")]
    Stopped,
    /// Writing the record failed inside the enclave.
    #[error("{0}")]
    Log(String),
    /// The sequencer stopped for good: the parent's log contradicts what this enclave
    /// acknowledged (see [`RebuildRefused::Forked`]).
    #[error("the enclave stopped serving and writes nothing more: {0}")]
    Failed(String),
}

/// Why a log rebuilt after a failed commit is not taken up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RebuildRefused {
    /// The log read back is shorter than what this enclave acknowledged: the parent lost
    /// records it acknowledged, or forged the acknowledgement. Retried, since the records
    /// may come back; going on from the shorter log would fork it.
    #[error(
        "the parent's log has {found} records, fewer than the {acknowledged} this enclave has \
         acknowledged: the parent lost acknowledged records or forged an acknowledgement; the \
         enclave will not fork its log"
    )]
    Shorter {
        /// The records read back.
        found: u64,
        /// The size this enclave acknowledged.
        acknowledged: u64,
    },
    /// The log read back is another branch: its tree at the size this enclave acknowledged
    /// has another root than the checkpoint this enclave signed for that size. It verifies,
    /// so it was signed with the same log key: a second enclave of the image writing on a
    /// copy of the store. Final.
    #[error(
        "the parent's log is another branch than the one this enclave acknowledged: at size \
         {size} this enclave signed root {acknowledged}, the log read back has root {found}; \
         another enclave with the same log key wrote it (on a copy of the store), and going on \
         would sign checkpoints for two different trees"
    )]
    Forked {
        /// The size this enclave acknowledged.
        size: u64,
        /// The root this enclave signed for it.
        acknowledged: Hash,
        /// The root of the log read back at that size.
        found: Hash,
    },
}

/// The tree this enclave vouches for: the size and root of the checkpoint of the last batch
/// the parent acknowledged (or of the log taken up at start or in a rebuild).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Acknowledged {
    size: u64,
    root: Hash,
}

impl Acknowledged {
    fn of(log: &AuditLog) -> Self {
        let (size, root) = log.durable_head();
        Self { size, root }
    }

    /// Moves on to what `log` has durable, if that is further.
    fn advance(&mut self, log: &AuditLog) {
        // Only on growth: the root costs O(log n) hashes, and most batches of reads do not
        // move the log.
        if log.durable_size() > self.size {
            *self = Self::of(log);
        }
    }

    /// Whether a rebuilt `log` holds this tree as its prefix.
    fn check(&self, log: &AuditLog) -> Result<(), RebuildRefused> {
        match log.tree().root_at(self.size) {
            None => Err(RebuildRefused::Shorter {
                found: log.durable_size(),
                acknowledged: self.size,
            }),
            Some(found) if found != self.root => Err(RebuildRefused::Forked {
                size: self.size,
                acknowledged: self.root,
                found,
            }),
            Some(_) => Ok(()),
        }
    }
}

struct Job<A: Application> {
    request: A::Request,
    reply: oneshot::Sender<Result<Committed<A::Reply>, SequencerError>>,
}

/// The handle requests are submitted through.
pub struct Sequencer<A: Application> {
    jobs: mpsc::Sender<Job<A>>,
    condition: Shared,
    head: DurableHead,
}

/// The last tree acknowledged as durable, for answers given outside the sequencer
/// (refusals before a request reaches it).
type DurableHead = Arc<std::sync::RwLock<(u64, Hash)>>;

fn set_head(slot: &DurableHead, head: (u64, Hash)) {
    match slot.write() {
        Ok(mut current) => *current = head,
        Err(poisoned) => *poisoned.into_inner() = head,
    }
}

impl<A: Application> Clone for Sequencer<A> {
    fn clone(&self) -> Self {
        Self {
            jobs: self.jobs.clone(),
            condition: self.condition.clone(),
            head: self.head.clone(),
        }
    }
}

/// What the sequencer is doing, with why when it is not serving: health reports it, so that
/// an operator sees a store that keeps failing (or lying) rather than a silent stall.
#[derive(Debug, Clone, Default)]
enum Condition {
    #[default]
    Serving,
    /// Rebuilding the state from the log after a failed commit.
    Rebuilding(String),
    /// Stopped for good; every request is refused.
    Failed(String),
}

type Shared = Arc<std::sync::RwLock<Condition>>;

fn set_condition(slot: &Shared, condition: Condition) {
    match slot.write() {
        Ok(mut current) => *current = condition,
        Err(poisoned) => *poisoned.into_inner() = condition,
    }
}

fn condition(slot: &Shared) -> Condition {
    match slot.read() {
        Ok(condition) => condition.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

/// Tuning of the sequencer.
#[derive(Debug, Clone, Copy)]
pub struct SequencerConfig {
    /// Most requests decided into one batch.
    pub max_batch: usize,
    /// Requests waiting for the sequencer; more wait in their connections.
    pub queue: usize,
}

impl Default for SequencerConfig {
    fn default() -> Self {
        Self {
            max_batch: 512,
            queue: 4096,
        }
    }
}

impl<A: Application> Sequencer<A> {
    /// Starts the sequencer task over a recovered application and log.
    pub fn start(
        app: A,
        log: AuditLog,
        store: Arc<StoreClient>,
        clock: Clock,
        recover: Recover<A>,
        config: SequencerConfig,
    ) -> Self {
        let (jobs, queue) = mpsc::channel(config.queue.max(1));
        let acknowledged = Acknowledged::of(&log);
        let shared = Shared::default();
        let head: DurableHead = Arc::new(std::sync::RwLock::new(log.durable_head()));
        let worker = Worker {
            app,
            log,
            store,
            clock,
            recover,
            config,
            acknowledged,
            condition: shared.clone(),
            head: head.clone(),
        };
        tokio::spawn(worker.run(queue));
        Self {
            jobs,
            condition: shared,
            head,
        }
    }

    /// `Some(why)` while the state is being rebuilt from the log after a failed commit:
    /// requests are refused as `recovering` meanwhile.
    pub fn rebuilding(&self) -> Option<String> {
        match condition(&self.condition) {
            Condition::Rebuilding(why) => Some(why),
            Condition::Serving | Condition::Failed(_) => None,
        }
    }

    /// `Some(why)` once the sequencer has stopped for good (the parent's log is another
    /// branch than the one this enclave acknowledged): every request is refused, nothing is
    /// written.
    pub fn failed(&self) -> Option<String> {
        match condition(&self.condition) {
            Condition::Failed(why) => Some(why),
            Condition::Serving | Condition::Rebuilding(_) => None,
        }
    }

    /// The last tree acknowledged as durable (size, root).
    pub fn durable_head(&self) -> (u64, Hash) {
        match self.head.read() {
            Ok(head) => *head,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    /// Submits a request and waits for its committed reply.
    pub async fn submit(&self, request: A::Request) -> Result<Committed<A::Reply>, SequencerError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { request, reply })
            .await
            .map_err(|_| SequencerError::Stopped)?;
        answer.await.map_err(|_| SequencerError::Stopped)?
    }
}

struct Worker<A: Application> {
    app: A,
    log: AuditLog,
    store: Arc<StoreClient>,
    clock: Clock,
    recover: Recover<A>,
    config: SequencerConfig,
    /// The tree acknowledged as durable in this run (or taken up in a rebuild).
    acknowledged: Acknowledged,
    condition: Shared,
    head: DurableHead,
}

/// How a rebuild ended.
enum Rebuilt {
    /// The state and log are the parent's log's, which extends what was acknowledged.
    Done,
    /// The parent's log contradicts what was acknowledged: stop for good.
    Refused(String),
}

/// A decided request waiting for its batch to be durable.
struct Decided<A: Application> {
    reply: oneshot::Sender<Result<Committed<A::Reply>, SequencerError>>,
    answer: A::Reply,
    appended: Vec<u64>,
}

/// The batch being made durable.
struct InFlight<A: Application> {
    commit: tokio::task::JoinHandle<Result<u64, crate::store_client::StoreError>>,
    decided: Vec<Decided<A>>,
    checkpoint: String,
}

/// Waits for the batch in flight, or forever when there is none.
async fn acknowledged<A: Application>(
    flight: &mut Option<InFlight<A>>,
) -> Result<u64, SequencerError> {
    match flight {
        Some(flight) => match (&mut flight.commit).await {
            Ok(Ok(size)) => Ok(size),
            Ok(Err(error)) => Err(SequencerError::NotDurable(error.to_string())),
            Err(_) => Err(SequencerError::NotDurable(
                "the commit task stopped before the parent answered".into(),
            )),
        },
        None => std::future::pending().await,
    }
}

/// Sleeps until `due` (unix ms on `clock`), or forever when nothing is due.
async fn until_due(due: Option<u64>, clock: &Clock) {
    match due {
        Some(due) => {
            let wait = Duration::from_millis(due.saturating_sub(clock()));
            tokio::time::sleep(wait).await;
        }
        None => std::future::pending().await,
    }
}

impl<A: Application> Worker<A> {
    async fn run(mut self, mut queue: mpsc::Receiver<Job<A>>) {
        // The batch being decided; it is sent when nothing is in flight.
        let mut open: Vec<Decided<A>> = Vec::new();
        let mut in_flight: Option<InFlight<A>> = None;
        let mut poisoned = false;
        let mut closed = false;
        loop {
            if in_flight.is_none() && (!open.is_empty() || self.log.has_pending()) {
                let batch = std::mem::take(&mut open);
                match self.send(batch) {
                    Ok(flight) => in_flight = flight,
                    Err(error) => {
                        tracing::error!(%error, "a batch could not be sent; rebuilding state from the log");
                        if let Rebuilt::Refused(why) = self.recover_until_done(&mut queue).await {
                            return refuse_all(queue, why).await;
                        }
                        poisoned = false;
                        continue;
                    }
                }
            }
            if in_flight.is_none() && open.is_empty() {
                if poisoned {
                    if let Rebuilt::Refused(why) = self.recover_until_done(&mut queue).await {
                        return refuse_all(queue, why).await;
                    }
                    poisoned = false;
                    continue;
                }
                if closed {
                    return;
                }
            }
            let room = !poisoned && !closed && open.len() < self.config.max_batch;
            let due = self.app.next_due();
            tokio::select! {
                // Acknowledgements first: they free the way for the next batch.
                biased;
                acknowledged = acknowledged(&mut in_flight) => {
                    let flight = in_flight.take();
                    match acknowledged {
                        Ok(size) => {
                            if let Some(flight) = flight {
                                self.finish(flight.decided, &flight.checkpoint, size, poisoned);
                            }
                        }
                        Err(error) => {
                            tracing::error!(%error, "commit failed; rebuilding state from the log");
                            for d in flight.into_iter().flat_map(|f| f.decided).chain(open.drain(..)) {
                                let _ = d.reply.send(Err(error.clone()));
                            }
                            if let Rebuilt::Refused(why) = self.recover_until_done(&mut queue).await {
                                return refuse_all(queue, why).await;
                            }
                            poisoned = false;
                        }
                    }
                }
                job = queue.recv(), if room => match job {
                    Some(job) => {
                        if open.is_empty() {
                            self.tick();
                        }
                        self.decide(job, &mut open);
                        while open.len() < self.config.max_batch && !self.app.needs_recovery() {
                            match queue.try_recv() {
                                Ok(job) => self.decide(job, &mut open),
                                Err(_) => break,
                            }
                        }
                        poisoned = self.app.needs_recovery();
                    }
                    None => closed = true,
                },
                () = until_due(due, &self.clock), if room => self.tick(),
            }
        }
    }

    /// Performs the transitions due now; their records join the open batch.
    fn tick(&mut self) {
        let mut context = Context {
            now: (self.clock)(),
            log: &mut self.log,
            appended: Vec::new(),
        };
        self.app.tick(&mut context);
    }

    /// Decides one request into the open batch.
    fn decide(&mut self, job: Job<A>, open: &mut Vec<Decided<A>>) {
        let mut context = Context {
            now: (self.clock)(),
            log: &mut self.log,
            appended: Vec::new(),
        };
        let answer = self.app.execute(job.request, &mut context);
        open.push(Decided {
            reply: job.reply,
            answer,
            appended: context.appended,
        });
    }

    /// Sends the open batch to the parent, or answers it at once when it wrote nothing (it
    /// waited for the previous batch, so what it read is durable).
    fn send(&mut self, batch: Vec<Decided<A>>) -> Result<Option<InFlight<A>>, SequencerError> {
        if !self.log.has_pending() {
            let size = self.log.durable_size();
            let poisoned = self.app.needs_recovery();
            self.finish(batch, "", size, poisoned);
            return Ok(None);
        }
        let (first, records, checkpoint) = match self.log.take_batch() {
            Ok(batch) => batch,
            Err(error) => {
                let error = SequencerError::Log(error.to_string());
                for d in batch {
                    let _ = d.reply.send(Err(error.clone()));
                }
                return Err(error);
            }
        };
        let count = records.len();
        let store = self.store.clone();
        let note = checkpoint.clone();
        let commit = tokio::spawn(async move {
            let size = store.append(first, records, note).await?;
            tracing::debug!(first, count, size, "batch durable");
            Ok(size)
        });
        Ok(Some(InFlight {
            commit,
            decided: batch,
            checkpoint,
        }))
    }

    /// The batch is durable up to `size` under `checkpoint`: publish, and answer with
    /// receipts.
    fn finish(&mut self, decided: Vec<Decided<A>>, checkpoint: &str, size: u64, poisoned: bool) {
        self.log.mark_durable(size);
        self.acknowledged.advance(&self.log);
        let head = self.log.durable_head();
        set_head(&self.head, head);
        if !poisoned {
            self.app.committed();
        }
        for d in decided {
            let receipts: Result<Vec<_>, _> = d
                .appended
                .iter()
                .map(|&index| self.log.receipt(index, size, checkpoint))
                .collect();
            let outcome = receipts
                .map(|receipts| Committed {
                    reply: d.answer,
                    receipts,
                    head,
                })
                .map_err(|e| SequencerError::Log(e.to_string()));
            let _ = d.reply.send(outcome);
        }
    }

    /// Rebuilds from the log, refusing requests meanwhile, until it succeeds or finds the
    /// parent's log to be another branch.
    async fn recover_until_done(&mut self, queue: &mut mpsc::Receiver<Job<A>>) -> Rebuilt {
        let mut delay = Duration::from_millis(50);
        set_condition(
            &self.condition,
            Condition::Rebuilding("rebuilding the state from the log after a failed commit".into()),
        );
        loop {
            let rebuilt = match (self.recover)().await {
                // Within one run the enclave knows which tree it has vouched for: the log
                // read back must extend it (see the module documentation).
                Ok((app, log)) => match self.acknowledged.check(&log) {
                    Ok(()) => Ok((app, log)),
                    Err(refused @ RebuildRefused::Forked { .. }) => {
                        let why = refused.to_string();
                        tracing::error!(error = %why, "the parent's log is another branch; refusing every request from now on");
                        set_condition(&self.condition, Condition::Failed(why.clone()));
                        return Rebuilt::Refused(why);
                    }
                    Err(refused @ RebuildRefused::Shorter { .. }) => {
                        Err(anyhow::Error::new(refused))
                    }
                },
                Err(error) => Err(error),
            };
            match rebuilt {
                Ok((app, log)) => {
                    self.app = app;
                    self.log = log;
                    // The enclave goes on from this log, and signs checkpoints that extend it:
                    // from now on it vouches for all of it.
                    self.acknowledged = Acknowledged::of(&self.log);
                    set_head(&self.head, self.log.durable_head());
                    self.app.committed();
                    set_condition(&self.condition, Condition::Serving);
                    tracing::info!(
                        records = self.log.durable_size(),
                        "state rebuilt from the log"
                    );
                    return Rebuilt::Done;
                }
                Err(error) => {
                    let error = format!("{error:#}");
                    tracing::error!(%error, "recovery failed; retrying");
                    set_condition(
                        &self.condition,
                        Condition::Rebuilding(format!(
                            "rebuilding the state from the log: {error}"
                        )),
                    );
                    let deadline = tokio::time::Instant::now() + delay;
                    while let Ok(Some(job)) = tokio::time::timeout_at(deadline, queue.recv()).await
                    {
                        let _ = job.reply.send(Err(SequencerError::Recovering));
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// Refuses every request until the last handle is dropped: what a sequencer does once it has
/// stopped for good. It decides nothing and writes nothing.
async fn refuse_all<A: Application>(mut queue: mpsc::Receiver<Job<A>>, why: String) {
    while let Some(job) = queue.recv().await {
        let _ = job.reply.send(Err(SequencerError::Failed(why.clone())));
    }
}
