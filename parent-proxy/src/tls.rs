//! TLS server configuration from PEM files.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Loads a certificate chain and its private key and builds a TLS 1.2/1.3 server config.
pub fn server_config(
    cert_path: &Path,
    key_path: &Path,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(cert_path)
        .with_context(|| format!("reading certificates from {}", cert_path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing certificates in {}", cert_path.display()))?;
    if certs.is_empty() {
        return Err(anyhow!("{} holds no certificate", cert_path.display()));
    }
    // The key's bytes are never printed: errors name only the file.
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|_| {
        anyhow!(
            "{} holds no readable private key (PKCS#8, PKCS#1 or SEC1 PEM)",
            key_path.display()
        )
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("the private key does not match the certificate")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
