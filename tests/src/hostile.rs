//! A hostile parent: a frame relay between the real parent-proxy and the real enclave-app
//! (the API link), or between the enclave and the parent's log store (the store link), that
//! does to each frame whatever the test's rule says: flip bytes, truncate, duplicate,
//! reorder, replay, delay, withhold, or answer in the other side's place.
//!
//! Everything the parent instance controls is in reach: both links cross it in production
//! (vsock), so a compromised parent can do all of this and nothing more. The tests then
//! check what the enclave does about it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ea_protocol::{decode_message, encode_message, Envelope, WireMessage};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use crate::kms::LocalKms;
use crate::{measurements_json, Deployment, LocalStack};

/// Largest frame relayed: well above any limit of the real processes, so that their own
/// limits are what is tested.
const RELAY_FRAME_LIMIT: usize = 64 << 20;

/// Frames remembered for [`Interposer::seen`]; older ones are forgotten.
const SEEN_LIMIT: usize = 100_000;

/// Who sent a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The side that connected: the proxy on the API link, the enclave on the store link.
    Client,
    /// The side that accepted: the enclave on the API link, the store on the store link.
    Server,
}

/// One frame crossing the relay.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Who sent it.
    pub from: Side,
    /// Which relayed connection it came on (numbered from 1).
    pub connection: u64,
    /// Its body (the CBOR envelope), without the length prefix.
    pub body: Vec<u8>,
}

impl Frame {
    /// The message, if the body decodes as `T`.
    pub fn decode<T: WireMessage>(&self) -> Option<Envelope<T>> {
        decode_message::<T>(&self.body).ok()
    }
}

/// What the relay does with a frame.
#[derive(Debug, Clone)]
pub enum Action {
    /// Pass it on unchanged.
    Forward,
    /// Pass on this body instead.
    Replace(Vec<u8>),
    /// Swallow it.
    Drop,
    /// Pass it on twice.
    Duplicate,
    /// Hold it back and pass it on after the next frame from the same side, on any
    /// connection (reorder).
    HoldUntilNext,
    /// Pass it on after this long; frames behind it overtake it.
    Delay(Duration),
    /// Send its full length prefix but only this many bytes of its body, then close the
    /// connection both ways.
    Truncate(usize),
    /// Swallow it and send this body back to its sender, as if from the other side.
    Answer(Vec<u8>),
}

/// Decides what happens to each frame; called for every frame in both directions.
pub type Rule = Box<dyn FnMut(&Frame) -> Action + Send>;

/// A frame held back, and the way to its destination.
type Held = (mpsc::UnboundedSender<Out>, Vec<u8>);

struct Shared {
    rule: Mutex<Rule>,
    /// Held frames: from the client side, from the server side.
    held: [Mutex<Option<Held>>; 2],
    seen: Mutex<Vec<Frame>>,
    connections: AtomicU64,
}

/// A relay listening on a unix socket and connecting each accepted connection to an
/// upstream unix socket.
pub struct Interposer {
    listen: PathBuf,
    upstream: PathBuf,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

fn faithful_rule() -> Rule {
    Box::new(|_: &Frame| Action::Forward)
}

impl Interposer {
    /// Listens on `listen`; each connection is relayed to `upstream`, which need not exist
    /// yet (a connection accepted before it does is closed).
    pub fn start(listen: &Path, upstream: &Path) -> Interposer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the relay");
        let shared = Arc::new(Shared {
            rule: Mutex::new(faithful_rule()),
            held: [Mutex::new(None), Mutex::new(None)],
            seen: Mutex::new(Vec::new()),
            connections: AtomicU64::new(0),
        });
        let listener = {
            let _entered = runtime.enter();
            UnixListener::bind(listen).expect("binding the relay's socket")
        };
        runtime.spawn(accept(listener, upstream.to_owned(), shared.clone()));
        Interposer {
            listen: listen.to_owned(),
            upstream: upstream.to_owned(),
            shared,
            runtime: Some(runtime),
        }
    }

    /// The address the relayed side should use.
    pub fn address(&self) -> String {
        format!("unix:{}", self.listen.display())
    }

    /// Applies `rule` to every frame from now on.
    pub fn set(&self, rule: impl FnMut(&Frame) -> Action + Send + 'static) {
        *lock(&self.shared.rule) = Box::new(rule);
    }

    /// Relays faithfully from now on.
    pub fn faithful(&self) {
        *lock(&self.shared.rule) = faithful_rule();
    }

    /// The frames relayed so far (before any action), oldest first.
    pub fn seen(&self) -> Vec<Frame> {
        lock(&self.shared.seen).clone()
    }

    /// Forgets the frames seen so far.
    pub fn forget(&self) {
        lock(&self.shared.seen).clear();
    }

    /// Sends `body` as one frame on a new connection of its own to the upstream side, and
    /// returns the first frame answered (`None` if the connection closes first or nothing
    /// comes within `timeout`). How a parent replays a frame it recorded.
    pub fn send(&self, body: &[u8], timeout: Duration) -> Option<Vec<u8>> {
        let runtime = self.runtime.as_ref()?;
        let upstream = self.upstream.clone();
        let body = body.to_vec();
        runtime.block_on(async move {
            let exchange = async {
                let mut stream = UnixStream::connect(&upstream).await.ok()?;
                let length = u32::try_from(body.len()).ok()?;
                stream.write_all(&length.to_be_bytes()).await.ok()?;
                stream.write_all(&body).await.ok()?;
                stream.flush().await.ok()?;
                read_frame(&mut stream).await.ok().flatten()
            };
            tokio::time::timeout(timeout, exchange).await.ok().flatten()
        })
    }
}

impl Drop for Interposer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        let _ = std::fs::remove_file(&self.listen);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Encodes a message as a frame body with request id `id`: how the relay forges a reply or
/// a request.
pub fn message<T: Serialize>(id: u64, body: &T) -> Vec<u8> {
    encode_message(id, body).expect("an encodable message")
}

async fn read_frame<R: AsyncReadExt + Unpin>(reader: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    let mut prefix = [0u8; 4];
    match reader.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error),
    }
    let length = usize::try_from(u32::from_be_bytes(prefix)).unwrap_or(usize::MAX);
    if length > RELAY_FRAME_LIMIT {
        return Err(std::io::Error::other("frame over the relay's limit"));
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).await?;
    Ok(Some(body))
}

async fn accept(listener: UnixListener, upstream: PathBuf, shared: Arc<Shared>) {
    while let Ok((client, _)) = listener.accept().await {
        let Ok(server) = UnixStream::connect(&upstream).await else {
            continue;
        };
        let connection = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = server.into_split();
        let to_client = writer(client_write);
        let to_server = writer(server_write);
        tokio::spawn(pump(
            Side::Client,
            connection,
            client_read,
            to_server.clone(),
            to_client.clone(),
            shared.clone(),
        ));
        tokio::spawn(pump(
            Side::Server,
            connection,
            server_read,
            to_client,
            to_server,
            shared.clone(),
        ));
    }
}

enum Out {
    Frame(Vec<u8>),
    Raw(Vec<u8>),
    Close,
}

fn writer(mut half: OwnedWriteHalf) -> mpsc::UnboundedSender<Out> {
    let (sender, mut outgoing) = mpsc::unbounded_channel::<Out>();
    tokio::spawn(async move {
        while let Some(out) = outgoing.recv().await {
            let written = match out {
                Out::Frame(body) => {
                    let length = u32::try_from(body.len()).unwrap_or(u32::MAX);
                    let mut bytes = length.to_be_bytes().to_vec();
                    bytes.extend_from_slice(&body);
                    half.write_all(&bytes).await
                }
                Out::Raw(bytes) => half.write_all(&bytes).await,
                Out::Close => break,
            };
            if written.is_err() {
                break;
            }
        }
        let _ = half.shutdown().await;
    });
    sender
}

/// Relays the frames `from` sends: onward to the other side, or back.
async fn pump(
    from: Side,
    connection: u64,
    mut reader: OwnedReadHalf,
    onward: mpsc::UnboundedSender<Out>,
    back: mpsc::UnboundedSender<Out>,
    shared: Arc<Shared>,
) {
    let held = &shared.held[from as usize];
    while let Ok(Some(body)) = read_frame(&mut reader).await {
        let frame = Frame {
            from,
            connection,
            body,
        };
        {
            let mut seen = lock(&shared.seen);
            if seen.len() >= SEEN_LIMIT {
                seen.remove(0);
            }
            seen.push(frame.clone());
        }
        let action = (lock(&shared.rule))(&frame);
        let mut release = true;
        match action {
            Action::Forward => {
                let _ = onward.send(Out::Frame(frame.body));
            }
            Action::Replace(body) => {
                let _ = onward.send(Out::Frame(body));
            }
            Action::Drop => release = false,
            Action::Duplicate => {
                let _ = onward.send(Out::Frame(frame.body.clone()));
                let _ = onward.send(Out::Frame(frame.body));
            }
            Action::HoldUntilNext => {
                if let Some((to, earlier)) = lock(held).replace((onward.clone(), frame.body)) {
                    let _ = to.send(Out::Frame(earlier));
                }
                release = false;
            }
            Action::Delay(delay) => {
                let onward = onward.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = onward.send(Out::Frame(frame.body));
                });
                release = false;
            }
            Action::Truncate(keep) => {
                let length = u32::try_from(frame.body.len()).unwrap_or(u32::MAX);
                let mut bytes = length.to_be_bytes().to_vec();
                bytes.extend_from_slice(&frame.body[..keep.min(frame.body.len())]);
                let _ = onward.send(Out::Raw(bytes));
                let _ = onward.send(Out::Close);
                let _ = back.send(Out::Close);
                return;
            }
            Action::Answer(body) => {
                let _ = back.send(Out::Frame(body));
                release = false;
            }
        }
        if release {
            if let Some((to, earlier)) = lock(held).take() {
                let _ = to.send(Out::Frame(earlier));
            }
        }
    }
    // The sender closed (or sent something unreadable): so does the relay, onward.
    let _ = onward.send(Out::Close);
}

/// A deployment whose parent is hostile: the proxy reaches the enclave through `api`, and
/// the enclave reaches the log store through `store`. Both relay faithfully until told
/// otherwise.
pub struct HostileDeployment {
    /// The deployment (genesis submitted through the relays).
    pub deployment: Deployment,
    /// Between the proxy and the enclave.
    pub api: Interposer,
    /// Between the enclave and the parent's log store.
    pub store: Interposer,
}

impl HostileDeployment {
    /// Starts a stack behind relays and submits a genesis, as [`Deployment::start_with`].
    pub fn start(
        users: &[&str],
        policy: serde_json::Value,
        enclave_args: &[&str],
        proxy_args: &[&str],
    ) -> HostileDeployment {
        let dir = tempfile::tempdir().expect("temp dir");
        let measurements = dir.path().join("pcrs.json");
        std::fs::write(&measurements, measurements_json("aa").to_string()).expect("write pcrs");
        let measurements = measurements.display().to_string();
        let mut enclave = vec!["--mock-measurements", measurements.as_str()];
        enclave.extend_from_slice(enclave_args);
        Self::start_in(dir, users, policy, &enclave, proxy_args)
    }

    /// Like [`HostileDeployment::start`], with the log key sealed through a local KMS
    /// (`--log-key kms`): every enclave of this image started on this stack's store gets
    /// the same log key back, as on AWS. The KMS runs as long as the returned handle lives.
    pub fn start_with_kms(
        users: &[&str],
        policy: serde_json::Value,
    ) -> (HostileDeployment, LocalKms) {
        let dir = tempfile::tempdir().expect("temp dir");
        let kms = LocalKms::prepare(dir.path());
        let enclave = kms.enclave_args();
        let proxy = kms.proxy_args();
        let deployment = Self::start_in(
            dir,
            users,
            policy,
            &enclave.iter().map(String::as_str).collect::<Vec<_>>(),
            &proxy.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        (deployment, kms)
    }

    /// Starts the relays and the stack in `dir` (whose `pcrs.json` the enclave's arguments
    /// name), and submits a genesis.
    fn start_in(
        dir: tempfile::TempDir,
        users: &[&str],
        policy: serde_json::Value,
        enclave_args: &[&str],
        proxy_args: &[&str],
    ) -> HostileDeployment {
        let api = Interposer::start(
            &dir.path().join("hostile-api.sock"),
            &dir.path().join("enclave.sock"),
        );
        let store = Interposer::start(
            &dir.path().join("hostile-store.sock"),
            &dir.path().join("store.sock"),
        );
        let scratch = tempfile::tempdir().expect("temp dir");
        let store_address = store.address();
        let mut enclave = vec!["--store", store_address.as_str()];
        enclave.extend_from_slice(enclave_args);
        let api_address = api.address();
        let mut proxy = vec!["--enclave", api_address.as_str()];
        proxy.extend_from_slice(proxy_args);
        let stack = LocalStack::start_in(dir, &enclave, &proxy);
        let deployment = Deployment::on(stack, scratch, users, policy, serde_json::json!({}));
        HostileDeployment {
            deployment,
            api,
            store,
        }
    }
}
