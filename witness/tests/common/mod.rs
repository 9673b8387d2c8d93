//! The real `witness` binary on a loopback port, a log to feed it, and a minimal HTTP client.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    dead_code,
    reason = "test helpers: a failure here is a broken test, reported by the panic"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ea_audit::checkpoint::{log_origin, Checkpoint};
use ea_audit::cosignature::CosignatureVerifier;
use ea_audit::hash::{leaf_hash, Hash};
use ea_audit::note::NoteSigner;
use ea_audit::tree::MerkleTree;
use ring::signature::Ed25519KeyPair;
use witness::request::encode;

pub const WITNESS_NAME: &str = "witness.test/w1";

/// A log as the enclave keeps it: records in a Merkle tree, checkpoints signed by a log key.
pub struct Log {
    pub tree: MerkleTree,
    pub signer: NoteSigner,
}

impl Log {
    /// `size` records of a log whose genesis is `genesis`; `fork` changes the records'
    /// contents (another history under the same origin and key).
    pub fn new(genesis: &str, size: u64, key_seed: u8, fork: &str) -> Self {
        let origin = log_origin(&leaf_hash(genesis.as_bytes()));
        let key = Ed25519KeyPair::from_seed_unchecked(&[key_seed; 32]).unwrap();
        Self {
            tree: MerkleTree::from_leaves(
                (0..size).map(|i| leaf_hash(format!("record {i}{fork}").as_bytes())),
            ),
            signer: NoteSigner::new(&origin, Box::new(key)).unwrap(),
        }
    }

    pub fn origin(&self) -> &str {
        self.signer.name()
    }

    /// The `--log` value for this log.
    pub fn spec(&self) -> String {
        format!("{}={}", self.origin(), self.signer.verifier())
    }

    pub fn checkpoint(&self, size: u64) -> Checkpoint {
        Checkpoint {
            origin: self.origin().to_owned(),
            size,
            root: self.tree.root_at(size).unwrap(),
        }
    }

    pub fn note(&self, size: u64) -> String {
        self.checkpoint(size).sign(&self.signer).unwrap()
    }

    pub fn proof(&self, old: u64, new: u64) -> Vec<Hash> {
        self.tree.consistency_proof(old, new).unwrap().path
    }

    /// The request body from `old` to `new`, with the right proof.
    pub fn request(&self, old: u64, new: u64) -> String {
        encode(old, &self.proof(old, new), &self.note(new))
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
}

/// Sends one request (`Connection: close`) and reads the whole answer.
pub fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let content_type = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-type")
            .then(|| value.trim().to_owned())
    });
    Answer {
        status,
        content_type,
        body: body.to_owned(),
    }
}

/// POST /add-checkpoint.
pub fn add_checkpoint(addr: SocketAddr, body: &str) -> Answer {
    http(addr, "POST", "/add-checkpoint", body.as_bytes())
}

/// A directory with a witness key, and the witness processes started on it.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub verifier: CosignatureVerifier,
}

impl Setup {
    /// Makes a key with `witness keygen`.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_witness"))
            .args(["keygen", "--name", WITNESS_NAME, "--out"])
            .arg(dir.path().join("key"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let vkey = String::from_utf8(out.stdout).unwrap();
        Self {
            verifier: vkey.trim_end().parse().unwrap(),
            dir,
        }
    }

    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("key")
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("witness.db")
    }

    /// Starts the witness following `logs`.
    pub fn start(&self, logs: &[&Log]) -> Running {
        let mut command = Command::new(env!("CARGO_BIN_EXE_witness"));
        command
            .args(["--listen", "127.0.0.1:0", "--name", WITNESS_NAME])
            .arg("--db")
            .arg(self.db())
            .arg("--key-file")
            .arg(self.key_file());
        for log in logs {
            command.arg("--log").arg(log.spec());
        }
        Running::spawn(command, &self.dir.path().join("stderr.log"))
    }
}

/// A running witness.
pub struct Running {
    pub child: Child,
    pub addr: SocketAddr,
    stderr: PathBuf,
}

impl Running {
    /// Spawns `command` and waits for its `listening on <addr>` line.
    pub fn spawn(mut command: Command, stderr: &Path) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(stderr)
            .unwrap();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Some(addr) = line.trim_end().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the witness did not start: {line:?}\n{}",
                std::fs::read_to_string(stderr).unwrap_or_default()
            );
        };
        Self {
            addr: addr.parse().unwrap(),
            child,
            stderr: stderr.to_owned(),
        }
    }

    /// SIGKILL: no chance to flush or clean up anything.
    pub fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
