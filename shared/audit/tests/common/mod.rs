//! Synthetic logs for the integration tests and the benchmarks: what the enclave would
//! write, with a fake attestation format and requests signed by a real Ed25519 key.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    dead_code,
    reason = "test helpers: a failure here is a broken test, reported by the panic"
)]

use ciborium::Value;
use ea_audit::checkpoint::{log_origin, Checkpoint};
use ea_audit::hash::{leaf_hash, Hash};
use ea_audit::note::{Ed25519Signer, NoteSigner};
use ea_audit::record::{Record, RecordKind};
use ea_audit::tree::MerkleTree;
use ea_audit::verify::{AttestationChecker, AttestedDocument, AttestedKey, RequestChecker};
use ring::signature::{Ed25519KeyPair, UnparsedPublicKey, ED25519};

/// Prefix of the fake attestation documents.
const FAKE: &[u8] = b"FAKE-ATTESTATION";
/// Real Nitro attestation documents are about 4.5 kB; the fake ones are padded to that.
const FAKE_DOCUMENT_LEN: usize = 4400;
/// The domain string client signatures cover (SPEC-trust section 2).
pub const REQUEST_DOMAIN: &[u8] = b"enclave-approvals/request/v1\n";

/// The image of fake documents unless one is named: PCR0, 1 and 2 all bytes of this.
pub const DEFAULT_IMAGE: u8 = 0xee;

/// A fake attestation document: `FAKE || user_data (32) || key flag || public key (32) ||
/// image byte || padding`; its PCR0, 1 and 2 are 48 bytes of the image byte.
pub fn fake_document(user_data: &Hash, public_key: Option<[u8; 32]>) -> Vec<u8> {
    fake_document_of(user_data, public_key, DEFAULT_IMAGE)
}

/// A fake attestation document made by an enclave of image `image`.
pub fn fake_document_of(user_data: &Hash, public_key: Option<[u8; 32]>, image: u8) -> Vec<u8> {
    let mut doc = FAKE.to_vec();
    doc.extend_from_slice(user_data.as_bytes());
    doc.push(u8::from(public_key.is_some()));
    doc.extend_from_slice(&public_key.unwrap_or([0; 32]));
    doc.push(image);
    doc.resize(FAKE_DOCUMENT_LEN, 0xee);
    doc
}

/// The PCRs of image `image` in fake documents.
pub fn fake_pcrs(image: u8) -> std::collections::BTreeMap<u16, Vec<u8>> {
    (0..3).map(|i| (i, vec![image; 48])).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum FakeAttestationError {
    #[error("not a fake attestation document")]
    NotADocument,
    #[error("user_data differs from the expected value")]
    WrongUserData,
    #[error("the document was made for other PCRs")]
    OtherPcrs,
}

/// Accepts fake documents whose user_data is the expected one.
pub struct FakeAttestation;

impl AttestationChecker for FakeAttestation {
    type Error = FakeAttestationError;
    fn check(&self, document: &[u8], expected: &[u8]) -> Result<AttestedKey, Self::Error> {
        self.check_document(document, expected)
            .map(|document| AttestedKey {
                public_key: document.public_key,
            })
    }

    fn check_document(
        &self,
        document: &[u8],
        expected: &[u8],
    ) -> Result<AttestedDocument, Self::Error> {
        let rest = document
            .strip_prefix(FAKE)
            .ok_or(FakeAttestationError::NotADocument)?;
        if rest.len() < 66 {
            return Err(FakeAttestationError::NotADocument);
        }
        if &rest[..32] != expected {
            return Err(FakeAttestationError::WrongUserData);
        }
        let public_key = (rest[32] == 1).then(|| rest[33..65].to_vec());
        Ok(AttestedDocument {
            public_key,
            pcrs: fake_pcrs(rest[65]),
        })
    }
}

/// Stands in for "an attestation document for other PCRs": refuses every document.
pub struct OtherPcrs;

impl AttestationChecker for OtherPcrs {
    type Error = FakeAttestationError;
    fn check(&self, _: &[u8], _: &[u8]) -> Result<AttestedKey, Self::Error> {
        Err(FakeAttestationError::OtherPcrs)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("the request is too short to hold a signature")]
    Short,
    #[error("the request signature does not verify")]
    BadSignature,
}

/// Checks requests of the form `signature (64) || body`, signed by one client key over
/// the request domain string and the body.
pub struct SignedRequests {
    pub client_public_key: Vec<u8>,
}

impl SignedRequests {
    pub fn check_bytes(&self, request: &[u8]) -> Result<(), RequestError> {
        if request.len() < 64 {
            return Err(RequestError::Short);
        }
        let (signature, body) = request.split_at(64);
        let mut message = Vec::with_capacity(REQUEST_DOMAIN.len() + body.len());
        message.extend_from_slice(REQUEST_DOMAIN);
        message.extend_from_slice(body);
        UnparsedPublicKey::new(&ED25519, &self.client_public_key)
            .verify(&message, signature)
            .map_err(|_| RequestError::BadSignature)
    }
}

impl RequestChecker for SignedRequests {
    type Error = RequestError;
    fn check(&self, record: &Record) -> Result<(), RequestError> {
        match &record.request {
            None => Ok(()),
            Some(request) => self.check_bytes(request),
        }
    }
}

pub fn key_pair(seed: u8) -> Ed25519KeyPair {
    Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap()
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

/// Builds a log the way the enclave would.
pub struct LogBuilder {
    pub records: Vec<Vec<u8>>,
    pub checkpoints: Vec<String>,
    pub tree: MerkleTree,
    pub genesis: Hash,
    pub origin: String,
    pub signer: NoteSigner,
    client: Ed25519KeyPair,
    time: u64,
    /// The image of the enclave writing now (its approval records' documents show it).
    pub image: u8,
}

impl LogBuilder {
    /// Genesis and a first enclave start whose log key has this seed.
    pub fn new(key_seed: u8) -> Self {
        let genesis = Record {
            seq: 0,
            time: 1_700_000_000_000,
            kind: RecordKind::Genesis,
            actor: "enclave".into(),
            request: None,
            decision: Value::Null,
            changes: Value::Map(vec![
                (
                    text("directory"),
                    Value::Array(vec![text("alice"), text("bob")]),
                ),
                (text("version"), Value::Integer(1.into())),
            ]),
            attestation: None,
        };
        let genesis_hash = genesis.record_hash().unwrap();
        let origin = log_origin(&genesis_hash);
        let mut builder = Self {
            records: Vec::new(),
            checkpoints: Vec::new(),
            tree: MerkleTree::new(),
            genesis: genesis_hash,
            origin: origin.clone(),
            signer: NoteSigner::new(&origin, Box::new(key_pair(key_seed))).unwrap(),
            client: key_pair(200),
            time: 1_700_000_000_000,
            image: DEFAULT_IMAGE,
        };
        builder.append(genesis);
        builder.restart(key_seed);
        builder
    }

    pub fn request_checker(&self) -> SignedRequests {
        SignedRequests {
            client_public_key: Ed25519Signer::public_key(&self.client).to_vec(),
        }
    }

    fn append(&mut self, record: Record) {
        let bytes = record.to_bytes().unwrap();
        self.tree.push(leaf_hash(&bytes));
        self.records.push(bytes);
    }

    fn next_seq(&self) -> u64 {
        self.records.len() as u64
    }

    /// An enclave start with a new log key; later checkpoints are signed with it.
    pub fn restart(&mut self, key_seed: u8) {
        let image = self.image;
        self.restart_image(key_seed, image);
    }

    /// An enclave of image `image` starts with a new log key; later checkpoints are signed
    /// with it, and later approval records attested by that image.
    pub fn restart_image(&mut self, key_seed: u8, image: u8) {
        self.image = image;
        let key = key_pair(key_seed);
        let record = Record {
            seq: self.next_seq(),
            time: self.tick(),
            kind: RecordKind::EnclaveStart,
            actor: "enclave".into(),
            request: None,
            decision: Value::Null,
            changes: Value::Null,
            attestation: Some(fake_document_of(
                &self.genesis,
                Some(Ed25519Signer::public_key(&key)),
                image,
            )),
        };
        self.append(record);
        self.signer = NoteSigner::new(&self.origin, Box::new(key)).unwrap();
    }

    fn tick(&mut self) -> u64 {
        self.time += 17;
        self.time
    }

    /// A signed client request: `signature || body`.
    pub fn signed_request(&self, n: u64) -> Vec<u8> {
        let body = Value::Map(vec![
            (text("v"), Value::Integer(1.into())),
            (text("nonce"), Value::Bytes(n.to_be_bytes().repeat(2))),
            (text("principal"), text("alice@example.com")),
            (text("issued_at"), Value::Integer(self.time.into())),
            (
                text("operation"),
                Value::Map(vec![
                    (text("op"), text("assignRole")),
                    (text("scope"), text("/communities/c1/enclaves/e7")),
                    (text("role"), text("Enclave Reader")),
                    (text("principal"), text("bob@example.com")),
                ]),
            ),
        ]);
        let mut body_bytes = Vec::new();
        ciborium::into_writer(&body, &mut body_bytes).unwrap();
        let mut message = REQUEST_DOMAIN.to_vec();
        message.extend_from_slice(&body_bytes);
        let mut request = self.client.sign(&message).as_ref().to_vec();
        request.extend_from_slice(&body_bytes);
        request
    }

    /// Appends a typical record of `kind` (with a request, and the attestation its kind
    /// requires).
    pub fn push(&mut self, kind: RecordKind) {
        let seq = self.next_seq();
        let mut record = Record {
            seq,
            time: self.tick(),
            kind,
            actor: "alice@example.com".into(),
            request: Some(self.signed_request(seq)),
            decision: Value::Map(vec![
                (text("effect"), text("allow")),
                (
                    text("reasons"),
                    Value::Array(vec![text("roleAssignment:ra-17 Owner at /communities/c1")]),
                ),
            ]),
            changes: Value::Array(vec![Value::Map(vec![
                (text("event"), text("roleAssigned")),
                (text("id"), text(&format!("ra-{seq}"))),
            ])]),
            attestation: None,
        };
        if kind.attestation() == ea_audit::record::AttestationRule::RecordHash {
            let own = record.record_hash().unwrap();
            record.attestation = Some(fake_document_of(&own, None, self.image));
        }
        self.append(record);
    }

    /// Appends `n` records, every `approval_every`-th an approval decision.
    pub fn push_many(&mut self, n: usize, approval_every: usize) {
        for i in 0..n {
            let kind = if approval_every != 0 && i % approval_every == approval_every - 1 {
                RecordKind::ApprovalDecision
            } else {
                RecordKind::StateChange
            };
            self.push(kind);
        }
    }

    /// Signs a checkpoint for the current size.
    pub fn checkpoint(&mut self) {
        let note = self.checkpoint_note(self.tree.size());
        self.checkpoints.push(note);
    }

    pub fn checkpoint_note(&self, size: u64) -> String {
        Checkpoint {
            origin: self.origin.clone(),
            size,
            root: self.tree.root_at(size).unwrap(),
        }
        .sign(&self.signer)
        .unwrap()
    }

    /// A log of `batches` batches of `batch` records, a checkpoint after each.
    pub fn batched(key_seed: u8, batches: usize, batch: usize, approval_every: usize) -> Self {
        let mut log = Self::new(key_seed);
        log.checkpoint();
        for _ in 0..batches {
            log.push_many(batch, approval_every);
            log.checkpoint();
        }
        log
    }
}
