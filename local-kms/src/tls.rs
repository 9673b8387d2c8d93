//! The local KMS's TLS identity: a CA, and a server certificate it signs at every start for
//! `localhost`, `127.0.0.1` and any `--tls-name`. The CA's PEM goes to `--ca-out`, for the
//! enclave's `extra_ca_pem` (or any client) to trust. The CA's key and certificate are kept
//! beside the state file, so that a restarted KMS is the same trust anchor, byte for byte, to
//! clients that read the CA before the restart, as a real endpoint keeps its chain. (An
//! enclave image can bake the CA in: its PCRs then stay the same across KMS restarts.)

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A server configuration and the CA certificate (PEM) that issued its certificate.
pub struct Identity {
    /// For the TLS acceptor.
    pub config: Arc<rustls::ServerConfig>,
    /// What clients must trust.
    pub ca_pem: String,
}

/// The CA to keep between starts: its key and its certificate, both PEM.
pub struct KeptCa {
    /// The CA's private key.
    pub key_pem: String,
    /// The CA's certificate, exactly as clients were given it.
    pub cert_pem: String,
}

/// Makes a server certificate for `names` (DNS names or IP addresses), issued by the CA with
/// key `ca_key` and certificate `ca_cert` (a new key when `None`; a new certificate for the
/// key when `ca_cert` is `None`); returns the CA to keep.
pub fn generate(
    names: &[String],
    ca_key: Option<&str>,
    ca_cert: Option<&str>,
) -> anyhow::Result<(Identity, KeptCa)> {
    let (ca_key, kept_cert) = match ca_key {
        Some(pem) => (KeyPair::from_pem(pem)?, ca_cert.map(str::to_owned)),
        None => (KeyPair::generate()?, None),
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
    // The issuer of the server certificate is the CA's name and key; a kept certificate has
    // both, so clients holding it verify the new server certificate, and they get the very
    // bytes they were given before.
    let server = server_params.signed_by(&server_key, &ca, &ca_key)?;
    let ca_pem = kept_cert.unwrap_or_else(|| ca.pem());
    let ca_der = CertificateDer::from_pem_slice(ca_pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("the kept CA certificate is not PEM: {e}"))?;

    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(server.der().to_vec()), ca_der],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
    )?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((
        Identity {
            config: Arc::new(config),
            ca_pem: ca_pem.clone(),
        },
        KeptCa {
            key_pem: ca_key.serialize_pem(),
            cert_pem: ca_pem,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_ca_is_served_and_written_out_byte_for_byte() {
        let names = ["localhost".to_owned()];
        let (first, kept) = generate(&names, None, None).unwrap();
        let (again, kept_again) =
            generate(&names, Some(&kept.key_pem), Some(&kept.cert_pem)).unwrap();
        assert_eq!(
            again.ca_pem, first.ca_pem,
            "the same CA certificate after a restart"
        );
        assert_eq!(kept_again.cert_pem, kept.cert_pem);
        // Only the key kept (a state from before certificates were kept): a certificate is
        // made for that key, with the same name.
        let (remade, kept_remade) = generate(&names, Some(&kept.key_pem), None).unwrap();
        assert_ne!(remade.ca_pem, first.ca_pem);
        assert_eq!(kept_remade.key_pem, kept.key_pem);
        assert!(generate(&names, Some(&kept.key_pem), Some("not a certificate")).is_err());
    }
}
