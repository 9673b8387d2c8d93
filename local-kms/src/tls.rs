//! The local KMS's TLS identity: a CA, and a server certificate it signs at every start for
//! `localhost`, `127.0.0.1` and any `--tls-name`. The CA's PEM goes to `--ca-out`, for the
//! enclave's `extra_ca_pem` (or any client) to trust. The CA's key is kept beside the state
//! file, so that a restarted KMS is the same trust anchor (same name, same key) to clients
//! that read the CA before the restart, as a real endpoint keeps its chain.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A server configuration and the CA certificate (PEM) that issued its certificate.
pub struct Identity {
    /// For the TLS acceptor.
    pub config: Arc<rustls::ServerConfig>,
    /// What clients must trust.
    pub ca_pem: String,
}

/// Makes a server certificate for `names` (DNS names or IP addresses), issued by a CA with
/// `ca_key` (a new key when `None`); returns the CA key's PEM too, to keep.
pub fn generate(names: &[String], ca_key: Option<&str>) -> anyhow::Result<(Identity, String)> {
    let ca_key = match ca_key {
        Some(pem) => KeyPair::from_pem(pem)?,
        None => KeyPair::generate()?,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    let mut ca_name = DistinguishedName::new();
    ca_name.push(DnType::CommonName, "local-kms test CA");
    ca_params.distinguished_name = ca_name;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key)?;

    let server_key = KeyPair::generate()?;
    let mut server_params = CertificateParams::new(names.to_vec())?;
    let mut server_name = DistinguishedName::new();
    server_name.push(DnType::CommonName, "local-kms");
    server_params.distinguished_name = server_name;
    server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = server_params.signed_by(&server_key, &ca, &ca_key)?;

    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(
        vec![
            CertificateDer::from(server.der().to_vec()),
            CertificateDer::from(ca.der().to_vec()),
        ],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
    )?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((
        Identity {
            config: Arc::new(config),
            ca_pem: ca.pem(),
        },
        ca_key.serialize_pem(),
    ))
}
