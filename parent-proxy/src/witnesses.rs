//! The witness submitter: hands the log's checkpoints to C2SP tlog-witnesses
//! (`POST <url>/add-checkpoint`) and keeps the cosignatures they answer with in the store,
//! where `GET /v1/log/witnessed` serves them (`crate::log_routes`).
//!
//! It runs beside the proxy and never on the append path: appends neither wait for a witness
//! nor fail because of one. It only reads the store, and writes one small transaction per
//! cosignature received.
//!
//! - Every interval, one task reads the store's latest checkpoint and publishes it if it
//!   changed ([`run`]); so the submitter batches in time, whatever the rate of appends.
//! - Each witness has a task of its own, so a slow or dead witness delays no other. When the
//!   published checkpoint is larger than what the witness is known to hold, the task sends
//!   `old <N>`, the consistency proof from size N to the checkpoint's (from the store's leaf
//!   hashes, [`LeafCache`]), and the note ([`request_body`]). Healthy witnesses therefore
//!   cosign the same checkpoints, which is what clients need to find K of them on one note.
//! - What a witness holds starts at 0 after every start of the proxy: its first answer is a
//!   409 with the size it holds (`text/x.tlog.size`), and the task sends again from there at
//!   once. Other failures are logged and retried with exponential backoff ([`Follower`]).
//! - On 200 the lines of the answer are stored with the checkpoint's size
//!   ([`crate::store::LogStore::put_cosignatures`]).
//!
//! The parent knows no witness keys: which witnesses count is each client's decision, by the
//! keys it pins (`govctl audit verify --witness`). It does not check the cosignatures either;
//! a client does, and ignores lines of keys it does not pin.
//!
//! [`Follower`], [`parse_answer`] and [`request_body`] hold the protocol without I/O; [`run`]
//! does the HTTP and the store calls.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ea_audit::hash::Hash;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::log_routes::LeafCache;
use crate::store::{SharedLogStore, StoreError};

/// The path a witness serves `add-checkpoint` on, below its URL.
pub const ADD_CHECKPOINT: &str = "add-checkpoint";
/// The content type of a witness's 409 that states the size it holds.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";
/// The largest answer read from a witness; a cosignature line is about 130 bytes.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Sends at once after 409s stating sizes, for one checkpoint, before backing off: a
/// witness that names another size every time is not converging.
pub const MAX_RESYNCS: u32 = 3;

/// A witness's URL: `https://...`, or `http://` on a loopback address only (a local stack),
/// without query or fragment. `add-checkpoint` is appended to its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessUrl(reqwest::Url);

/// Why a witness URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessUrlError {
    /// Not a URL.
    #[error("{url:?} is not a URL: {reason}")]
    NotAUrl {
        /// What was given.
        url: String,
        /// The parser's complaint.
        reason: String,
    },
    /// Another scheme than https, or http to a host that is not loopback.
    #[error(
        "{url:?}: a witness URL is https://, or http:// on a loopback address (127.0.0.1, ::1, \
         localhost) for a local stack"
    )]
    Insecure {
        /// What was given.
        url: String,
    },
    /// A query, fragment or credentials in the URL.
    #[error("{url:?}: a witness URL has no query, fragment, user or password")]
    Extra {
        /// What was given.
        url: String,
    },
}

impl FromStr for WitnessUrl {
    type Err = WitnessUrlError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let url = reqwest::Url::parse(text).map_err(|e| WitnessUrlError::NotAUrl {
            url: text.to_owned(),
            reason: e.to_string(),
        })?;
        let host = url.host_str().unwrap_or_default();
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let allowed = match url.scheme() {
            "https" => !host.is_empty(),
            "http" => loopback,
            _ => false,
        };
        if !allowed {
            return Err(WitnessUrlError::Insecure {
                url: text.to_owned(),
            });
        }
        if url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(WitnessUrlError::Extra {
                url: text.to_owned(),
            });
        }
        Ok(Self(url))
    }
}

impl WitnessUrl {
    /// Where `add-checkpoint` is posted: the URL's path with `/add-checkpoint` appended.
    pub fn add_checkpoint(&self) -> reqwest::Url {
        let mut url = self.0.clone();
        let path = format!("{}/{ADD_CHECKPOINT}", url.path().trim_end_matches('/'));
        url.set_path(&path);
        url
    }
}

impl fmt::Display for WitnessUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// How the submitter runs.
#[derive(Debug, Clone)]
pub struct SubmitterConfig {
    /// The witnesses to submit to.
    pub witnesses: Vec<WitnessUrl>,
    /// How often the store's latest checkpoint is read, and so the most often a witness is
    /// sent a new one; also the first backoff after a failure.
    pub interval: Duration,
    /// The longest backoff after repeated failures.
    pub max_backoff: Duration,
    /// Time a witness has to answer one request.
    pub request_timeout: Duration,
}

impl SubmitterConfig {
    /// The defaults beside these witnesses and this interval: backoff up to 30 s, 10 s per
    /// request.
    pub fn new(witnesses: Vec<WitnessUrl>, interval: Duration) -> Self {
        Self {
            witnesses,
            interval,
            max_backoff: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// The checkpoint to submit: the store's latest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its size.
    pub size: u64,
    /// Its root.
    pub root: Hash,
    /// The signed note, as stored.
    pub note: String,
}

/// What a witness answered, sorted by what the submitter does about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 200: the cosignature line(s), without newlines.
    Cosigned(Vec<String>),
    /// 409 `text/x.tlog.size`: the size of the latest checkpoint it cosigned for this log.
    HoldsSize(u64),
    /// Any other 4xx: the witness refuses this checkpoint (409 another root at the same
    /// size and 422 a proof that does not verify mean the log is not consistent with what
    /// the witness cosigned; 403 and 404 that it does not know the log key or the log).
    Refused {
        /// The status.
        status: u16,
        /// The first line of its body.
        reason: String,
    },
    /// No usable answer: the connection, a 5xx, a malformed 200 or 409.
    Unavailable(String),
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Cosigned(lines) => write!(f, "cosigned ({} lines)", lines.len()),
            Answer::HoldsSize(size) => write!(f, "409: holds size {size}"),
            Answer::Refused { status, reason } => write!(f, "{status}: {reason}"),
            Answer::Unavailable(reason) => f.write_str(reason),
        }
    }
}

/// Reads a witness's HTTP answer.
pub fn parse_answer(status: u16, content_type: Option<&str>, body: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(body);
    match status {
        200 => {
            let lines: Vec<String> = text
                .split('\n')
                .filter(|line| !line.is_empty())
                .map(str::to_owned)
                .collect();
            if lines.is_empty() {
                Answer::Unavailable("200 without a cosignature line".into())
            } else {
                Answer::Cosigned(lines)
            }
        }
        409 if content_type.is_some_and(|t| {
            t.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case(SIZE_CONTENT_TYPE))
        }) =>
        {
            match text.strip_suffix('\n').unwrap_or(&text).parse::<u64>() {
                Ok(size) => Answer::HoldsSize(size),
                Err(_) => Answer::Unavailable(format!("409 {SIZE_CONTENT_TYPE} without a size")),
            }
        }
        400..=499 => Answer::Refused {
            status,
            reason: text
                .lines()
                .next()
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect(),
        },
        _ => Answer::Unavailable(format!(
            "{status}: {}",
            text.lines()
                .next()
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect::<String>()
        )),
    }
}

/// The body of an `add-checkpoint` request: `old <size>`, the proof lines, an empty line,
/// the note.
pub fn request_body(old: u64, proof: &[Hash], note: &str) -> String {
    let mut body = format!("old {old}\n");
    for hash in proof {
        body.push_str(&STANDARD.encode(hash.as_bytes()));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(note);
    body
}

/// What to do after an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Store these cosignature lines with the checkpoint's size; then wait for a newer one.
    Store(Vec<String>),
    /// Send the same checkpoint again now, from the size the witness stated.
    Resend,
    /// The witness holds more than this checkpoint (a store rolled back or restored, or
    /// another copy of the log submitted): wait until the log grows past it.
    Ahead,
    /// Try again after this long (with the latest checkpoint then).
    Wait(Duration),
}

/// One witness as the submitter sees it: the size it is believed to hold and its failures,
/// without I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Follower {
    known: u64,
    failures: u32,
    resyncs: u32,
    interval: Duration,
    max_backoff: Duration,
}

impl Follower {
    /// A witness believed to hold nothing (size 0) of the log.
    pub fn new(interval: Duration, max_backoff: Duration) -> Self {
        Self {
            known: 0,
            failures: 0,
            resyncs: 0,
            interval,
            max_backoff,
        }
    }

    /// The size the witness is believed to hold: the `old` of the next request.
    pub fn known(&self) -> u64 {
        self.known
    }

    /// Whether a checkpoint of `size` should be sent: it is larger than what the witness
    /// holds.
    pub fn wants(&self, size: u64) -> bool {
        size > self.known
    }

    /// Failures in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    fn backoff(&mut self) -> Step {
        self.failures = self.failures.saturating_add(1);
        self.resyncs = 0;
        let doublings = self.failures.saturating_sub(1).min(16);
        let wait = self
            .interval
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff);
        Step::Wait(wait)
    }

    /// A failure before an answer (the proof could not be made, the store failed).
    pub fn failed(&mut self) -> Step {
        self.backoff()
    }

    /// The witness's answer to a checkpoint of `size`, sent with `old` = [`Follower::known`].
    pub fn on_answer(&mut self, answer: &Answer, size: u64) -> Step {
        match answer {
            Answer::Cosigned(lines) => {
                self.known = size;
                self.failures = 0;
                self.resyncs = 0;
                Step::Store(lines.clone())
            }
            Answer::HoldsSize(held) => {
                let sent = self.known;
                self.known = *held;
                if *held == sent {
                    // It refused the size it says it holds: it does not converge.
                    return self.backoff();
                }
                if *held > size {
                    self.resyncs = 0;
                    return Step::Ahead;
                }
                self.resyncs += 1;
                if self.resyncs > MAX_RESYNCS {
                    return self.backoff();
                }
                Step::Resend
            }
            Answer::Refused { .. } | Answer::Unavailable(_) => self.backoff(),
        }
    }
}

/// Why a request body could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store holds fewer records than its own checkpoint covers.
    #[error("the store holds {held} records, fewer than its checkpoint of size {size} covers")]
    Short {
        /// Records held.
        held: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// The store's records do not hash to its own checkpoint's root.
    #[error("the store's records do not hash to the root of its checkpoint of size {size}")]
    RootMismatch {
        /// The checkpoint's size.
        size: u64,
    },
}

/// The request body for `target` from `old`, with the proof from the store's leaf hashes
/// (none is needed from 0 or between equal sizes). Blocks on the store.
fn body_for(
    store: &SharedLogStore,
    leaves: &LeafCache,
    old: u64,
    target: &Target,
) -> Result<String, BodyError> {
    if old == 0 || old == target.size {
        return Ok(request_body(old, &[], &target.note));
    }
    let (proof, root) = leaves.consistency_proof(store, old, target.size)?;
    let proof = proof.map_err(|held| BodyError::Short {
        held,
        size: target.size,
    })?;
    if root != Some(target.root) {
        return Err(BodyError::RootMismatch { size: target.size });
    }
    Ok(request_body(old, &proof.path, &target.note))
}

/// What the enclave asks at start ([`ea_protocol::StoreRequest::SubmitToWitnesses`]):
/// `note` submitted to each witness of `witnesses` now, at once, and their answers relayed.
/// Each is sent first from size 0; a witness that holds a size (409) up to the note's is sent
/// it again with the consistency proof from that size, made as the submitter makes it
/// ([`body_for`]). A witness holding a larger tree is reported as it answered. Nothing here
/// is stored: the submitter stores what it gets on its own schedule.
#[derive(Clone)]
pub struct OnDemand {
    witnesses: Vec<WitnessUrl>,
    client: reqwest::Client,
    store: SharedLogStore,
    leaves: LeafCache,
}

impl fmt::Debug for OnDemand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnDemand")
            .field("witnesses", &self.witnesses.len())
            .finish()
    }
}

impl OnDemand {
    /// Submissions to the witnesses of `config`, proofs from `store` through `leaves`.
    pub fn new(
        config: &SubmitterConfig,
        store: SharedLogStore,
        leaves: LeafCache,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            witnesses: config.witnesses.clone(),
            client,
            store,
            leaves,
        })
    }

    /// Submits `note` to every witness now; one reply per witness, in their order.
    pub async fn submit(&self, note: &str) -> Vec<ea_protocol::WitnessReply> {
        let target = match ea_audit::checkpoint::parse_unverified(note) {
            Ok((_, checkpoint)) => Arc::new(Target {
                size: checkpoint.size,
                root: checkpoint.root,
                note: note.to_owned(),
            }),
            Err(error) => {
                return self
                    .witnesses
                    .iter()
                    .map(|w| reply(w, 0, format!("the checkpoint does not parse: {error}")))
                    .collect()
            }
        };
        let mut tasks = JoinSet::new();
        for (index, witness) in self.witnesses.iter().enumerate() {
            let this = self.clone();
            let (witness, target) = (witness.clone(), target.clone());
            tasks.spawn(async move { (index, this.submit_one(&witness, &target).await) });
        }
        let mut replies: Vec<Option<ea_protocol::WitnessReply>> = vec![None; self.witnesses.len()];
        while let Some(done) = tasks.join_next().await {
            if let Ok((index, answer)) = done {
                if let Some(slot) = replies.get_mut(index) {
                    *slot = Some(answer);
                }
            }
        }
        replies
            .into_iter()
            .zip(&self.witnesses)
            .map(|(answer, witness)| {
                answer.unwrap_or_else(|| reply(witness, 0, "the submission panicked".into()))
            })
            .collect()
    }

    async fn submit_one(
        &self,
        witness: &WitnessUrl,
        target: &Arc<Target>,
    ) -> ea_protocol::WitnessReply {
        let url = witness.add_checkpoint();
        let mut old = 0;
        loop {
            let (reader, cache, checkpoint) =
                (self.store.clone(), self.leaves.clone(), target.clone());
            let body = match tokio::task::spawn_blocking(move || {
                body_for(&reader, &cache, old, &checkpoint)
            })
            .await
            {
                Ok(Ok(body)) => body,
                Ok(Err(error)) => {
                    return reply(witness, 0, format!("cannot make the request: {error}"))
                }
                Err(error) => {
                    return reply(witness, 0, format!("making the request panicked: {error}"))
                }
            };
            let answer = post(&self.client, &url, body).await;
            tracing::info!(%witness, size = target.size, old, %answer, "witness submission at the enclave's start");
            match answer {
                Answer::HoldsSize(held) if old == 0 && held != 0 && held <= target.size => {
                    old = held;
                }
                Answer::Cosigned(lines) => {
                    let mut body = lines.join("\n");
                    body.push('\n');
                    return reply(witness, 200, body);
                }
                Answer::HoldsSize(held) => return reply(witness, 409, format!("{held}\n")),
                Answer::Refused { status, reason } => return reply(witness, status, reason),
                Answer::Unavailable(reason) => return reply(witness, 0, reason),
            }
        }
    }
}

fn reply(witness: &WitnessUrl, status: u16, body: String) -> ea_protocol::WitnessReply {
    ea_protocol::WitnessReply {
        url: witness.to_string(),
        status,
        body,
    }
}

/// Submits the store's checkpoints to the witnesses of `config` until `shutdown` turns
/// true. Returns at once when there are none.
pub async fn run(
    config: SubmitterConfig,
    store: SharedLogStore,
    leaves: LeafCache,
    shutdown: watch::Receiver<bool>,
) {
    if config.witnesses.is_empty() {
        return;
    }
    let client = match reqwest::Client::builder()
        .timeout(config.request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "witness submitter: no HTTP client; nothing is submitted");
            return;
        }
    };
    let (publish, targets) = watch::channel::<Option<Arc<Target>>>(None);
    let mut tasks = JoinSet::new();
    for witness in &config.witnesses {
        tasks.spawn(follow(
            witness.clone(),
            client.clone(),
            config.clone(),
            targets.clone(),
            store.clone(),
            leaves.clone(),
            shutdown.clone(),
        ));
    }
    tracing::info!(
        witnesses = config.witnesses.len(),
        interval_ms = config.interval.as_millis() as u64,
        "witness submitter started"
    );
    publish_targets(&config, &store, &publish, shutdown).await;
    drop(publish);
    while tasks.join_next().await.is_some() {}
}

/// Reads the store's latest checkpoint every interval and publishes it when it changed.
async fn publish_targets(
    config: &SubmitterConfig,
    store: &SharedLogStore,
    publish: &watch::Sender<Option<Arc<Target>>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let reader = store.clone();
        let head = match tokio::task::spawn_blocking(move || reader.head()).await {
            Ok(Ok(head)) => head,
            Ok(Err(error)) => {
                tracing::warn!(%error, "witness submitter: reading the latest checkpoint failed");
                continue;
            }
            Err(error) => {
                tracing::error!(%error, "witness submitter: reading the store panicked");
                continue;
            }
        };
        let Some(stored) = head.checkpoint else {
            continue;
        };
        let changed = publish
            .borrow()
            .as_ref()
            .is_none_or(|t| t.size != stored.size || t.note != stored.note);
        if !changed {
            continue;
        }
        match ea_audit::checkpoint::parse_unverified(&stored.note) {
            Ok((_, checkpoint)) => {
                publish.send_replace(Some(Arc::new(Target {
                    size: checkpoint.size,
                    root: checkpoint.root,
                    note: stored.note,
                })));
            }
            Err(error) => {
                tracing::error!(%error, size = stored.size, "witness submitter: the store's latest checkpoint does not parse");
            }
        }
    }
}

/// One witness's task: sends it each published checkpoint larger than what it holds.
async fn follow(
    witness: WitnessUrl,
    client: reqwest::Client,
    config: SubmitterConfig,
    mut targets: watch::Receiver<Option<Arc<Target>>>,
    store: SharedLogStore,
    leaves: LeafCache,
    mut shutdown: watch::Receiver<bool>,
) {
    let url = witness.add_checkpoint();
    let mut follower = Follower::new(config.interval, config.max_backoff);
    let mut wait: Option<Duration> = None;
    loop {
        if let Some(delay) = wait.take() {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
        // The latest published checkpoint larger than what the witness holds.
        let target = loop {
            let latest = targets.borrow_and_update().clone();
            if let Some(target) = latest.filter(|t| follower.wants(t.size)) {
                break target;
            }
            tokio::select! {
                changed = targets.changed() => if changed.is_err() { return },
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        };
        loop {
            let old = follower.known();
            let (reader, cache, checkpoint) = (store.clone(), leaves.clone(), target.clone());
            let body = match tokio::task::spawn_blocking(move || {
                body_for(&reader, &cache, old, &checkpoint)
            })
            .await
            {
                Ok(Ok(body)) => body,
                Ok(Err(error)) => {
                    tracing::error!(%witness, %error, size = target.size, "witness submitter: cannot make the request");
                    wait = step_wait(follower.failed());
                    break;
                }
                Err(error) => {
                    tracing::error!(%witness, %error, "witness submitter: making the request panicked");
                    wait = step_wait(follower.failed());
                    break;
                }
            };
            let answer = post(&client, &url, body).await;
            let step = follower.on_answer(&answer, target.size);
            report(&witness, &answer, old, &target, &follower, &step);
            match step {
                Step::Store(lines) => {
                    let writer = store.clone();
                    let size = target.size;
                    match tokio::task::spawn_blocking(move || writer.put_cosignatures(size, &lines))
                        .await
                    {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => {
                            tracing::error!(%witness, %error, size, "witness submitter: storing the cosignature failed")
                        }
                        Err(error) => {
                            tracing::error!(%witness, %error, size, "witness submitter: storing the cosignature panicked")
                        }
                    }
                    break;
                }
                Step::Resend => continue,
                Step::Ahead => break,
                Step::Wait(delay) => {
                    wait = Some(delay);
                    break;
                }
            }
        }
    }
}

fn step_wait(step: Step) -> Option<Duration> {
    match step {
        Step::Wait(delay) => Some(delay),
        _ => None,
    }
}

/// Logs what a witness answered, at the level it deserves.
fn report(
    witness: &WitnessUrl,
    answer: &Answer,
    old: u64,
    target: &Target,
    follower: &Follower,
    step: &Step,
) {
    let size = target.size;
    let retry_ms = match step {
        Step::Wait(delay) => delay.as_millis() as u64,
        _ => 0,
    };
    match answer {
        Answer::Cosigned(_) => {
            tracing::debug!(%witness, old, size, "witness cosigned");
        }
        Answer::HoldsSize(held) => match step {
            Step::Ahead => tracing::warn!(
                %witness, held, size,
                "the witness holds a larger checkpoint of this log than the store: the store \
                 was rolled back or restored, or another copy of the log was submitted; waiting \
                 until the log grows past it"
            ),
            Step::Resend => {
                tracing::info!(%witness, held, size, "witness holds another size; sending again from it")
            }
            _ => {
                tracing::warn!(%witness, held, size, retry_ms, "the witness keeps naming other sizes; backing off")
            }
        },
        Answer::Refused {
            status: 409 | 422,
            reason,
        } => tracing::error!(
            %witness, old, size, %reason, retry_ms,
            "the witness refuses this checkpoint as inconsistent with one it cosigned: the log \
             forked or the store was rolled back (keep the checkpoint as evidence)"
        ),
        Answer::Refused {
            status: 403 | 404,
            reason,
        } => tracing::warn!(
            %witness, size, %reason, retry_ms,
            "the witness does not follow this log or this log key: configure it with --log \
             ORIGIN=VKEY for every image's log key"
        ),
        Answer::Refused { status, reason } => {
            tracing::error!(%witness, status, %reason, retry_ms, "the witness refused the request")
        }
        Answer::Unavailable(reason) => tracing::warn!(
            %witness, %reason, failures = follower.failures(), retry_ms,
            "witness unavailable"
        ),
    }
}

/// POSTs one body and reads the answer (at most [`MAX_ANSWER_BYTES`]).
async fn post(client: &reqwest::Client, url: &reqwest::Url, body: String) -> Answer {
    let response = match client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(body)
        .send()
        .await
    {
        Ok(response) => response,
        Err(error) => return Answer::Unavailable(error_chain(&error)),
    };
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut response = response;
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Answer::Unavailable(format!(
                        "{status} with an answer over {MAX_ANSWER_BYTES} bytes"
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(error) => return Answer::Unavailable(error_chain(&error)),
        }
    }
    parse_answer(status, content_type.as_deref(), &body)
}

/// An error with its causes (reqwest's own message rarely says what failed).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn witness_urls_are_https_or_loopback_http() {
        for ok in [
            "https://witness.example.com",
            "https://witness.example.com/w1/",
            "http://127.0.0.1:7380",
            "http://[::1]:7380",
            "http://localhost:7380/base",
        ] {
            let url: WitnessUrl = ok.parse().unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert!(
                url.add_checkpoint().as_str().ends_with("/add-checkpoint"),
                "{url}"
            );
        }
        assert_eq!(
            "https://w.example/w1/"
                .parse::<WitnessUrl>()
                .unwrap()
                .add_checkpoint()
                .as_str(),
            "https://w.example/w1/add-checkpoint"
        );
        for (bad, insecure) in [
            ("http://witness.example.com", true),
            ("http://10.0.0.1:7380", true),
            ("ftp://127.0.0.1", true),
            ("https://w.example/?a=b", false),
            ("https://user:pw@w.example/", false),
        ] {
            let error = bad.parse::<WitnessUrl>().unwrap_err();
            assert_eq!(
                matches!(error, WitnessUrlError::Insecure { .. }),
                insecure,
                "{bad}: {error}"
            );
        }
        assert!(matches!(
            "not a url".parse::<WitnessUrl>(),
            Err(WitnessUrlError::NotAUrl { .. })
        ));
    }

    #[test]
    fn answers_are_read_as_the_spec_states_them() {
        let line = "\u{2014} w.example/w1 AAAA";
        assert_eq!(
            parse_answer(200, Some("text/plain"), format!("{line}\n").as_bytes()),
            Answer::Cosigned(vec![line.to_owned()])
        );
        assert!(matches!(
            parse_answer(200, None, b""),
            Answer::Unavailable(_)
        ));
        assert_eq!(
            parse_answer(409, Some("text/x.tlog.size"), b"1234\n"),
            Answer::HoldsSize(1234)
        );
        assert_eq!(
            parse_answer(409, Some("Text/X.Tlog.Size; charset=utf-8"), b"7\n"),
            Answer::HoldsSize(7)
        );
        assert!(matches!(
            parse_answer(409, Some("text/x.tlog.size"), b"many\n"),
            Answer::Unavailable(_)
        ));
        assert_eq!(
            parse_answer(409, Some("text/plain"), b"another root\nmore"),
            Answer::Refused {
                status: 409,
                reason: "another root".into()
            }
        );
        assert!(matches!(
            parse_answer(422, None, b"bad proof\n"),
            Answer::Refused { status: 422, .. }
        ));
        assert!(matches!(
            parse_answer(503, None, b"down\n"),
            Answer::Unavailable(_)
        ));
    }

    #[test]
    fn request_bodies_are_the_witness_format() {
        let proof = [Hash([1; 32]), Hash([2; 32])];
        let note = "origin\n5\nroot\n\n\u{2014} origin AAAA\n";
        let body = request_body(3, &proof, note);
        assert_eq!(
            body,
            format!(
                "old 3\n{}\n{}\n\n{note}",
                STANDARD.encode([1; 32]),
                STANDARD.encode([2; 32])
            )
        );
        assert_eq!(request_body(0, &[], note), format!("old 0\n\n{note}"));
    }

    fn follower() -> Follower {
        Follower::new(Duration::from_millis(100), Duration::from_millis(1000))
    }

    #[test]
    fn first_contact_learns_the_size_then_cosigns() {
        let mut f = follower();
        assert!(f.wants(10) && !f.wants(0));
        assert_eq!(f.on_answer(&Answer::HoldsSize(4), 10), Step::Resend);
        assert_eq!(f.known(), 4);
        let lines = vec!["\u{2014} w AAAA".to_owned()];
        assert_eq!(
            f.on_answer(&Answer::Cosigned(lines.clone()), 10),
            Step::Store(lines)
        );
        assert_eq!(f.known(), 10);
        assert!(!f.wants(10) && f.wants(11));
    }

    #[test]
    fn failures_back_off_exponentially_up_to_the_cap_and_reset_on_success() {
        let mut f = follower();
        let down = Answer::Unavailable("connection refused".into());
        let waits: Vec<Step> = (0..6).map(|_| f.on_answer(&down, 10)).collect();
        let ms = |ms| Step::Wait(Duration::from_millis(ms));
        assert_eq!(
            waits,
            [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
        assert_eq!(f.known(), 0, "a failure teaches nothing about the witness");
        let refused = Answer::Refused {
            status: 422,
            reason: "bad proof".into(),
        };
        assert_eq!(f.on_answer(&refused, 10), ms(1000));
        f.on_answer(&Answer::Cosigned(vec!["x".into()]), 10);
        assert_eq!(f.failures(), 0);
        assert_eq!(f.on_answer(&down, 11), ms(100));
        assert_eq!(f.failed(), ms(200));
    }

    #[test]
    fn a_witness_ahead_of_the_store_is_waited_for_and_sizes_that_never_settle_back_off() {
        let mut f = follower();
        assert_eq!(f.on_answer(&Answer::HoldsSize(50), 10), Step::Ahead);
        assert_eq!(f.known(), 50);
        assert!(!f.wants(10) && !f.wants(50) && f.wants(51));

        let mut f = follower();
        for size in 1..=MAX_RESYNCS as u64 {
            assert_eq!(f.on_answer(&Answer::HoldsSize(size), 10), Step::Resend);
        }
        assert!(matches!(
            f.on_answer(&Answer::HoldsSize(9), 10),
            Step::Wait(_)
        ));
        // Naming the very size it was sent from does not converge either.
        let mut f = follower();
        f.on_answer(&Answer::HoldsSize(4), 10);
        assert!(matches!(
            f.on_answer(&Answer::HoldsSize(4), 10),
            Step::Wait(_)
        ));
    }
}
