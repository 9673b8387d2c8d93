//! The **mock NSM**: an NSM for machines without Nitro hardware.
//!
//! It behaves like the device: 32 SHA-384 PCRs, PCR0..15 set from the boot measurements and
//! locked at start, extend/lock/describe with the device's rules, GetRandom from the OS RNG,
//! and attestation documents of exactly the real shape (untagged COSE_Sign1 ES384, the nine
//! payload keys in the NSM's order, absent optional fields as null, all locked PCRs,
//! `cabundle = [root, intermediate]`, real millisecond timestamps). They are signed by the
//! mock CA, so verifiers accept them only when handed the mock root explicitly.

mod ca;
mod measurements;
mod pcrs;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use aws_nitro_enclaves_cose::header_map::HeaderMap;
use aws_nitro_enclaves_cose::CoseSign1;
use ring::rand::{SecureRandom as _, SystemRandom};

pub use ca::{MockCa, MockCaError, LEAF_LIFETIME};
pub use measurements::{Measurements, MeasurementsError};
pub use pcrs::BOOT_LOCKED_PCRS;

use self::ca::Leaf;
use self::pcrs::PcrBank;
use super::{Clock, Nsm, NsmDescription, NsmError, PcrState, SystemClock, RANDOM_LEN};
use crate::cose_keys::{Es384PrivateKey, Sha2};
use crate::document::{encode_payload, AttestationDocument, Digest};
use crate::limits::{MAX_NONCE_LEN, MAX_PUBLIC_KEY_LEN, MAX_USER_DATA_LEN, PCR_COUNT};
use crate::root::{TrustRoot, TrustRootError};
use crate::verify::{verify, ValidationTime, VerifyOptions};

/// Largest `ExtendPCR` input: the device takes requests of at most 4096 CBOR bytes, and the
/// request's own framing needs a few dozen of them.
pub const MAX_EXTEND_DATA_LEN: usize = 4000;
/// A leaf is replaced when it has less than this left, so no document is signed by a leaf
/// that expires moments later.
const LEAF_RENEW_MARGIN_MS: u64 = 5 * 60 * 1000;

/// Where the mock NSM's CA comes from.
#[derive(Debug)]
pub enum MockCaSource {
    /// A fresh root and intermediate, generated at start and lost at exit.
    Generate,
    /// A CA directory: loaded when present, otherwise generated and saved there.
    Directory(std::path::PathBuf),
    /// A CA the caller already holds.
    Given(Box<MockCa>),
}

/// How to start a [`MockNsm`].
#[derive(Debug)]
pub struct MockNsmConfig {
    measurements: Measurements,
    ca: MockCaSource,
    module_id: Option<String>,
    clock: Arc<dyn Clock>,
}

impl MockNsmConfig {
    /// Boots with these measurements, a generated CA, a random module id and the system
    /// clock.
    pub fn new(measurements: Measurements) -> Self {
        Self {
            measurements,
            ca: MockCaSource::Generate,
            module_id: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Where the CA comes from.
    pub fn ca(mut self, ca: MockCaSource) -> Self {
        self.ca = ca;
        self
    }

    /// The module id documents carry (default: `i-mock000000000000-enc` and 16 random hex
    /// digits, the shape of a real one with "mock" in it).
    pub fn module_id(mut self, module_id: impl Into<String>) -> Self {
        self.module_id = Some(module_id.into());
        self
    }

    /// The clock for document timestamps and certificate validity.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

/// The mock NSM. Thread-safe; PCR operations are atomic with respect to each other.
#[derive(Debug)]
pub struct MockNsm {
    module_id: String,
    pcrs: Mutex<PcrBank>,
    ca: MockCa,
    leaf: Mutex<Leaf>,
    clock: Arc<dyn Clock>,
    random: SystemRandom,
}

impl std::fmt::Debug for Leaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The signing key never appears in logs.
        f.debug_struct("Leaf")
            .field("not_before_ms", &self.not_before_ms)
            .field("not_after_ms", &self.not_after_ms)
            .finish_non_exhaustive()
    }
}

/// A poisoned lock only means another thread panicked; the PCR bank and the leaf are updated
/// in single assignments, so their state is still consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MockNsm {
    /// Boots the mock: sets and locks the boot PCRs, sets up the CA, issues a leaf and checks
    /// that a document it signs verifies against its own root.
    pub fn new(config: MockNsmConfig) -> Result<Self, NsmError> {
        let now = config.clock.now_unix_ms();
        let random = SystemRandom::new();
        let module_id = match config.module_id {
            Some(id) => id,
            None => {
                let mut suffix = [0u8; 8];
                random
                    .fill(&mut suffix)
                    .map_err(|_| NsmError::RandomUnavailable)?;
                format!("i-mock000000000000-enc{}", hex::encode(suffix))
            }
        };
        let ca = match config.ca {
            MockCaSource::Generate => MockCa::generate(now)?,
            MockCaSource::Directory(dir) => MockCa::load_or_generate(&dir, now)?,
            MockCaSource::Given(ca) => *ca,
        };
        let leaf = ca.issue_leaf(&module_id, now)?;
        let nsm = Self {
            pcrs: Mutex::new(PcrBank::boot(config.measurements.pcrs())?),
            module_id,
            ca,
            leaf: Mutex::new(leaf),
            clock: config.clock,
            random,
        };
        nsm.self_check()?;
        Ok(nsm)
    }

    fn self_check(&self) -> Result<(), NsmError> {
        let document = self.attestation(None, None, None)?;
        let root = self.trust_root().map_err(NsmError::MockRoot)?;
        let options = VerifyOptions::new(root)
            .at(ValidationTime::DocumentTime)
            .dangerous_allow_debug(true);
        verify(&document, &options).map_err(|e| NsmError::SelfCheck(Box::new(e)))?;
        Ok(())
    }

    /// The mock root certificate as PEM: give it to verifiers that should accept this mock.
    pub fn mock_root_pem(&self) -> Result<String, MockCaError> {
        self.ca.root_pem()
    }

    /// The mock root as a [`TrustRoot`] for [`crate::verify`].
    pub fn trust_root(&self) -> Result<TrustRoot, TrustRootError> {
        TrustRoot::from_der(self.ca.root_der())
    }

    /// The mock CA (to save it, or to start another mock under the same root).
    pub fn ca(&self) -> &MockCa {
        &self.ca
    }

    /// The locked PCRs and their values: exactly what the next document will carry.
    pub fn pcrs(&self) -> BTreeMap<u16, Vec<u8>> {
        lock(&self.pcrs).locked_values()
    }

    /// The module id documents carry.
    pub fn module_id(&self) -> &str {
        &self.module_id
    }

    fn check_input(field: &'static str, value: Option<&[u8]>, max: usize) -> Result<(), NsmError> {
        match value {
            Some(bytes) if bytes.len() > max => Err(NsmError::InputTooLarge {
                field,
                len: bytes.len(),
                max,
            }),
            _ => Ok(()),
        }
    }

    fn sign(&self, payload: &[u8], leaf: &Leaf) -> Result<Vec<u8>, NsmError> {
        CoseSign1::new::<Sha2>(payload, &HeaderMap::new(), &Es384PrivateKey(&leaf.key))
            .and_then(|cose| cose.as_bytes(false))
            .map_err(NsmError::Signing)
    }
}

impl Nsm for MockNsm {
    fn describe_pcr(&self, index: u16) -> Result<PcrState, NsmError> {
        lock(&self.pcrs).describe(index)
    }

    fn extend_pcr(&self, index: u16, data: &[u8]) -> Result<Vec<u8>, NsmError> {
        Self::check_input("ExtendPCR data", Some(data), MAX_EXTEND_DATA_LEN)?;
        lock(&self.pcrs).extend(index, data)
    }

    fn lock_pcr(&self, index: u16) -> Result<(), NsmError> {
        lock(&self.pcrs).lock(index)
    }

    fn lock_pcrs(&self, range: u16) -> Result<(), NsmError> {
        lock(&self.pcrs).lock_range(range)
    }

    fn describe(&self) -> Result<NsmDescription, NsmError> {
        Ok(NsmDescription {
            version_major: 1,
            version_minor: 0,
            version_patch: 0,
            module_id: self.module_id.clone(),
            max_pcrs: PCR_COUNT,
            locked_pcrs: lock(&self.pcrs).locked(),
            digest: Digest::Sha384,
        })
    }

    fn attestation(
        &self,
        user_data: Option<&[u8]>,
        nonce: Option<&[u8]>,
        public_key: Option<&[u8]>,
    ) -> Result<Vec<u8>, NsmError> {
        // Our verifier's bounds, so the mock never emits a document verifiers refuse.
        Self::check_input("user_data", user_data, MAX_USER_DATA_LEN)?;
        Self::check_input("nonce", nonce, MAX_NONCE_LEN)?;
        Self::check_input("public_key", public_key, MAX_PUBLIC_KEY_LEN)?;
        if public_key.is_some_and(<[u8]>::is_empty) {
            return Err(NsmError::InvalidArgument {
                reason: "public_key is empty (omit it instead)",
            });
        }

        let now = self.clock.now_unix_ms();
        let mut leaf = lock(&self.leaf);
        if now < leaf.not_before_ms || now.saturating_add(LEAF_RENEW_MARGIN_MS) > leaf.not_after_ms
        {
            *leaf = self.ca.issue_leaf(&self.module_id, now)?;
        }
        let doc = AttestationDocument {
            module_id: self.module_id.clone(),
            digest: Digest::Sha384,
            timestamp: now,
            pcrs: self.pcrs(),
            certificate: leaf.der.clone(),
            cabundle: vec![
                self.ca.root_der().to_vec(),
                self.ca.intermediate_der().to_vec(),
            ],
            public_key: public_key.map(<[u8]>::to_vec),
            user_data: user_data.map(<[u8]>::to_vec),
            nonce: nonce.map(<[u8]>::to_vec),
        };
        self.sign(&encode_payload(&doc), &leaf)
    }

    fn get_random(&self) -> Result<Vec<u8>, NsmError> {
        let mut bytes = vec![0u8; RANDOM_LEN];
        self.random
            .fill(&mut bytes)
            .map_err(|_| NsmError::RandomUnavailable)?;
        Ok(bytes)
    }
}
