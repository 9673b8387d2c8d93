//! The mock NSM's certificate authority: a P-384 root and intermediate, shaped like AWS's
//! (CA certificates with basicConstraints CA + pathLen and keyUsage keyCertSign + cRLSign,
//! leaves with digitalSignature, ecdsa-with-SHA384 throughout).
//!
//! The root and intermediate persist (in three PEM files) so that a verifier pinned to the mock
//! root keeps accepting a restarted mock enclave; leaves are issued by the mock NSM at start
//! and re-issued before they expire, as the Nitro hypervisor does (AWS leaves live ~3 hours).

use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use p384::ecdsa::SigningKey;
use p384::pkcs8::DecodePrivateKey as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SerialNumber, PKCS_ECDSA_P384_SHA384,
};
use ring::rand::{SecureRandom as _, SystemRandom};
use thiserror::Error;
use time::OffsetDateTime;
use x509_cert::der::{DecodePem as _, Encode as _, EncodePem as _};
use x509_cert::Certificate;

use crate::x509::{CertInfo, CertificateError};

/// Lifetime of a mock leaf certificate, like AWS's.
pub const LEAF_LIFETIME: Duration = Duration::from_secs(3 * 60 * 60);
/// How far back certificates are dated, so clocks slightly behind the mock's still accept them.
const BACKDATE: Duration = Duration::from_secs(60);
const ROOT_LIFETIME: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);
const INTERMEDIATE_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// File names inside a mock CA directory.
const ROOT_FILE: &str = "mock-root.pem";
const INTERMEDIATE_FILE: &str = "mock-intermediate.pem";
const INTERMEDIATE_KEY_FILE: &str = "mock-intermediate.key.pem";

/// Why the mock CA could not be created, loaded, saved or used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MockCaError {
    /// Certificate or key generation failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[source] rcgen::Error),
    /// A time outside what certificates can carry.
    #[error("time {0} ms cannot be put in a certificate")]
    Time(u64),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A CA file already exists where a new CA was to be saved.
    #[error("{0} already exists; refusing to overwrite a mock CA")]
    Exists(PathBuf),
    /// A certificate file does not hold an acceptable certificate.
    #[error("{file}: {source}")]
    Certificate {
        /// Which file.
        file: &'static str,
        /// What is wrong.
        source: CertificateError,
    },
    /// A certificate file is not PEM.
    #[error("{file}: not a PEM certificate: {source}")]
    Pem {
        /// Which file.
        file: &'static str,
        /// The decoding problem.
        source: x509_cert::der::Error,
    },
    /// The intermediate key file is not a P-384 PKCS#8 key.
    #[error("intermediate key is not a P-384 PKCS#8 private key")]
    Key,
    /// The three files do not form a chain: root -> intermediate, with the matching key.
    #[error("the intermediate is not issued by the root, or its key does not match")]
    NotAChain,
    /// The OS random number generator failed.
    #[error("the OS random number generator failed")]
    Random,
}

/// A leaf certificate and its signing key.
pub(crate) struct Leaf {
    pub(crate) der: Vec<u8>,
    pub(crate) key: SigningKey,
    pub(crate) not_before_ms: u64,
    pub(crate) not_after_ms: u64,
}

/// A mock root and intermediate; the intermediate's key issues leaves.
pub struct MockCa {
    root_der: Vec<u8>,
    intermediate_der: Vec<u8>,
    intermediate_key: KeyPair,
    /// rcgen 0.13 names an issuer through a `Certificate` value; only its distinguished name
    /// and key-identifier method are used, which match `intermediate_der`'s (checked at load).
    intermediate_issuer: rcgen::Certificate,
}

impl fmt::Debug for MockCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The intermediate key never appears in logs.
        f.debug_struct("MockCa")
            .field("root_der_len", &self.root_der.len())
            .field("intermediate_der_len", &self.intermediate_der.len())
            .finish_non_exhaustive()
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "US");
    dn.push(DnType::OrganizationName, "Enclave Approvals");
    dn.push(DnType::OrganizationalUnitName, "mock-nsm");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn datetime(ms: u64) -> Result<OffsetDateTime, MockCaError> {
    i64::try_from(ms / 1000)
        .ok()
        .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
        .ok_or(MockCaError::Time(ms))
}

fn validity(
    params: &mut CertificateParams,
    now_ms: u64,
    lifetime: Duration,
) -> Result<(), MockCaError> {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    params.not_before = datetime(now_ms.saturating_sub(ms(BACKDATE)))?;
    params.not_after = datetime(now_ms.saturating_add(ms(lifetime)))?;
    Ok(())
}

fn serial() -> Result<SerialNumber, MockCaError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| MockCaError::Random)?;
    // A positive INTEGER with no leading zero byte.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

fn ca_params(common_name: &str, path_len: u8) -> Result<CertificateParams, MockCaError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.serial_number = Some(serial()?);
    Ok(params)
}

const ROOT_CN: &str = "mock.nitro-enclaves";
const INTERMEDIATE_CN: &str = "intermediate.mock.nitro-enclaves";

fn generate_key() -> Result<KeyPair, MockCaError> {
    KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).map_err(MockCaError::Generate)
}

/// The issuer value rcgen needs to sign with `key` under the intermediate's name.
fn intermediate_issuer(key: &KeyPair) -> Result<rcgen::Certificate, MockCaError> {
    ca_params(INTERMEDIATE_CN, 0)?
        .self_signed(key)
        .map_err(MockCaError::Generate)
}

fn pem_of(der: &[u8], file: &'static str) -> Result<String, MockCaError> {
    use x509_cert::der::Decode as _;
    Certificate::from_der(der)
        .and_then(|cert| cert.to_pem(x509_cert::der::pem::LineEnding::LF))
        .map_err(|source| MockCaError::Pem { file, source })
}

impl MockCa {
    /// A new root and intermediate, valid from `now_ms` (minus a minute) for 30 and 10 years.
    pub fn generate(now_ms: u64) -> Result<Self, MockCaError> {
        let root_key = generate_key()?;
        let mut root_params = ca_params(ROOT_CN, 1)?;
        validity(&mut root_params, now_ms, ROOT_LIFETIME)?;
        let root = root_params
            .self_signed(&root_key)
            .map_err(MockCaError::Generate)?;

        let intermediate_key = generate_key()?;
        let mut params = ca_params(INTERMEDIATE_CN, 0)?;
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, now_ms, INTERMEDIATE_LIFETIME)?;
        let intermediate = params
            .signed_by(&intermediate_key, &root, &root_key)
            .map_err(MockCaError::Generate)?;

        Ok(Self {
            root_der: root.der().to_vec(),
            intermediate_der: intermediate.der().to_vec(),
            intermediate_issuer: intermediate_issuer(&intermediate_key)?,
            intermediate_key,
        })
    }

    /// A CA from its three PEM texts, checked to form a chain with a matching key.
    pub fn from_pem(
        root_pem: &str,
        intermediate_pem: &str,
        intermediate_key_pem: &str,
    ) -> Result<Self, MockCaError> {
        let root_der = der_of(root_pem, ROOT_FILE)?;
        let intermediate_der = der_of(intermediate_pem, INTERMEDIATE_FILE)?;
        let root = CertInfo::parse(&root_der).map_err(|source| MockCaError::Certificate {
            file: ROOT_FILE,
            source,
        })?;
        let intermediate =
            CertInfo::parse(&intermediate_der).map_err(|source| MockCaError::Certificate {
                file: INTERMEDIATE_FILE,
                source,
            })?;
        let intermediate_key =
            KeyPair::from_pem(intermediate_key_pem).map_err(|_| MockCaError::Key)?;
        if !intermediate_key.is_compatible(&PKCS_ECDSA_P384_SHA384) {
            return Err(MockCaError::Key);
        }
        let issuer = intermediate_issuer(&intermediate_key)?;
        let issuer_info =
            CertInfo::parse(issuer.der()).map_err(|source| MockCaError::Certificate {
                file: INTERMEDIATE_FILE,
                source,
            })?;
        let key_matches = intermediate.point() == intermediate_key.public_key_raw();
        // Leaves will name the issuer as rcgen writes it; it must be the loaded subject.
        let names_match = issuer_info.issued_by_name(&intermediate);
        if !key_matches
            || !names_match
            || !intermediate.issued_by_name(&root)
            || !intermediate.signed_by(&root)
        {
            return Err(MockCaError::NotAChain);
        }
        Ok(Self {
            root_der,
            intermediate_der,
            intermediate_key,
            intermediate_issuer: issuer,
        })
    }

    /// Loads a CA saved by [`MockCa::save_dir`].
    pub fn load_dir(dir: &Path) -> Result<Self, MockCaError> {
        let read = |file: &str| {
            let path = dir.join(file);
            fs::read_to_string(&path).map_err(|source| MockCaError::Io { path, source })
        };
        Self::from_pem(
            &read(ROOT_FILE)?,
            &read(INTERMEDIATE_FILE)?,
            &read(INTERMEDIATE_KEY_FILE)?,
        )
    }

    /// Loads the CA in `dir` when there is one, otherwise generates one and saves it there.
    pub fn load_or_generate(dir: &Path, now_ms: u64) -> Result<Self, MockCaError> {
        if dir.join(ROOT_FILE).exists() {
            return Self::load_dir(dir);
        }
        let ca = Self::generate(now_ms)?;
        ca.save_dir(dir)?;
        Ok(ca)
    }

    /// Writes `mock-root.pem`, `mock-intermediate.pem` and `mock-intermediate.key.pem` (mode
    /// 0600) into `dir`, which is created if needed. Existing files are never overwritten.
    pub fn save_dir(&self, dir: &Path) -> Result<(), MockCaError> {
        fs::create_dir_all(dir).map_err(|source| MockCaError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let files = [
            (ROOT_FILE, self.root_pem()?, 0o644),
            (
                INTERMEDIATE_FILE,
                pem_of(&self.intermediate_der, INTERMEDIATE_FILE)?,
                0o644,
            ),
            (
                INTERMEDIATE_KEY_FILE,
                self.intermediate_key.serialize_pem(),
                0o600,
            ),
        ];
        for (file, contents, mode) in files {
            let path = dir.join(file);
            let mut out = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&path)
                .map_err(|source| match source.kind() {
                    io::ErrorKind::AlreadyExists => MockCaError::Exists(path.clone()),
                    _ => MockCaError::Io {
                        path: path.clone(),
                        source,
                    },
                })?;
            out.write_all(contents.as_bytes())
                .and_then(|()| out.sync_all())
                .map_err(|source| MockCaError::Io { path, source })?;
        }
        Ok(())
    }

    /// The root certificate as PEM, to hand to verifiers (`govctl attestation verify --root`).
    pub fn root_pem(&self) -> Result<String, MockCaError> {
        pem_of(&self.root_der, ROOT_FILE)
    }

    /// The root certificate, DER.
    pub fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    /// The intermediate certificate, DER.
    pub fn intermediate_der(&self) -> &[u8] {
        &self.intermediate_der
    }

    /// Issues a leaf for `module_id`, valid from a minute before `now_ms` for [`LEAF_LIFETIME`].
    pub(crate) fn issue_leaf(&self, module_id: &str, now_ms: u64) -> Result<Leaf, MockCaError> {
        let key = generate_key()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(&format!("{module_id}.mock.nitro-enclaves"));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(serial()?);
        validity(&mut params, now_ms, LEAF_LIFETIME)?;
        let (not_before_ms, not_after_ms) = (
            params.not_before.unix_timestamp(),
            params.not_after.unix_timestamp(),
        );
        let cert = params
            .signed_by(&key, &self.intermediate_issuer, &self.intermediate_key)
            .map_err(MockCaError::Generate)?;
        let signing_key =
            SigningKey::from_pkcs8_der(&key.serialize_der()).map_err(|_| MockCaError::Key)?;
        let to_ms = |secs: i64| u64::try_from(secs).unwrap_or(0).saturating_mul(1000);
        Ok(Leaf {
            der: cert.der().to_vec(),
            key: signing_key,
            not_before_ms: to_ms(not_before_ms),
            not_after_ms: to_ms(not_after_ms),
        })
    }
}

fn der_of(pem: &str, file: &'static str) -> Result<Vec<u8>, MockCaError> {
    Certificate::from_pem(pem.as_bytes())
        .and_then(|cert| cert.to_der())
        .map_err(|source| MockCaError::Pem { file, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    #[test]
    fn generated_chain_looks_like_aws() {
        let ca = MockCa::generate(NOW).unwrap();
        let root = CertInfo::parse(ca.root_der()).unwrap();
        let intermediate = CertInfo::parse(ca.intermediate_der()).unwrap();
        let leaf_parts = ca.issue_leaf("i-mock-enc0001", NOW).unwrap();
        let leaf = CertInfo::parse(&leaf_parts.der).unwrap();

        assert!(root.is_ca() && root.path_len() == Some(1) && root.can_sign_certificates());
        assert!(root.key_usage.unwrap().crl_sign());
        assert!(intermediate.is_ca() && intermediate.path_len() == Some(0));
        assert!(intermediate.can_sign_certificates() && intermediate.key_usage.unwrap().crl_sign());
        assert!(!leaf.is_ca() && leaf.basic_constraints.is_some() && leaf.can_sign_data());

        assert!(intermediate.issued_by_name(&root) && intermediate.signed_by(&root));
        assert!(leaf.issued_by_name(&intermediate) && leaf.signed_by(&intermediate));
        assert_eq!(leaf_parts.key.verifying_key(), &leaf.p384_key().unwrap());
        assert_eq!(leaf.not_before * 1000, leaf_parts.not_before_ms);
        assert_eq!(leaf_parts.not_before_ms, NOW - 60_000);
        assert_eq!(leaf_parts.not_after_ms, NOW + 3 * 3600 * 1000);
    }

    #[test]
    fn saved_ca_loads_back_and_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let ca = MockCa::generate(NOW).unwrap();
        ca.save_dir(dir.path()).unwrap();
        let mode = fs::metadata(dir.path().join(INTERMEDIATE_KEY_FILE))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );

        let loaded = MockCa::load_dir(dir.path()).unwrap();
        assert_eq!(loaded.root_der(), ca.root_der());
        assert_eq!(loaded.intermediate_der(), ca.intermediate_der());
        // The loaded CA issues leaves that chain to the saved intermediate.
        let leaf = CertInfo::parse(&loaded.issue_leaf("m", NOW).unwrap().der).unwrap();
        let intermediate = CertInfo::parse(ca.intermediate_der()).unwrap();
        assert!(leaf.issued_by_name(&intermediate) && leaf.signed_by(&intermediate));

        assert!(matches!(
            ca.save_dir(dir.path()),
            Err(MockCaError::Exists(_))
        ));
        let again = MockCa::load_or_generate(dir.path(), NOW).unwrap();
        assert_eq!(again.root_der(), ca.root_der());
    }

    #[test]
    fn mismatched_files_are_refused() {
        let a = MockCa::generate(NOW).unwrap();
        let b = MockCa::generate(NOW).unwrap();
        let pem = |der: &[u8]| pem_of(der, "x").unwrap();
        // b's intermediate under a's root.
        assert!(matches!(
            MockCa::from_pem(
                &pem(a.root_der()),
                &pem(b.intermediate_der()),
                &b.intermediate_key.serialize_pem()
            ),
            Err(MockCaError::NotAChain)
        ));
        // a's chain with b's key.
        assert!(matches!(
            MockCa::from_pem(
                &pem(a.root_der()),
                &pem(a.intermediate_der()),
                &b.intermediate_key.serialize_pem()
            ),
            Err(MockCaError::NotAChain)
        ));
        assert!(matches!(
            MockCa::from_pem("junk", "junk", "junk"),
            Err(MockCaError::Pem { .. })
        ));
    }
}
