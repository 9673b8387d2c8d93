//! The certificate chain: from the document's leaf, through `cabundle[n-1] ..= cabundle[1]`,
//! to the pinned root. `cabundle[0]` (the document's own claim of a root) is never used:
//! the last intermediate must be issued and signed by the pinned root itself.

use p384::ecdsa::VerifyingKey;

use super::error::{CertPosition, VerifyError};
use crate::document::AttestationDocument;
use crate::timestamp::UnixMillis;
use crate::x509::CertInfo;

/// What the chain check hands on to the signature check and the report.
pub(crate) struct ChainOutcome {
    pub(crate) leaf_key: VerifyingKey,
    pub(crate) len: usize,
}

/// Checks, in order: each certificate on its own; that each is named and signed by the next
/// up to the pinned root; validity at `at` (the root's too); basicConstraints, pathLen and
/// keyUsage for each role. Returns the leaf's key. `root` is the pinned root certificate.
pub(crate) fn check_chain(
    doc: &AttestationDocument,
    root: &CertInfo,
    at: u64,
) -> Result<ChainOutcome, VerifyError> {
    // [leaf, cabundle[n-1], ..., cabundle[1]]; cabundle[0] is skipped on purpose.
    let leaf = parse(CertPosition::Leaf, &doc.certificate)?;
    let leaf_key = leaf.p384_key().map_err(|source| VerifyError::Certificate {
        position: CertPosition::Leaf,
        source,
    })?;
    let mut chain = Vec::with_capacity(doc.cabundle.len());
    chain.push((CertPosition::Leaf, leaf));
    for (index, der) in doc.cabundle.iter().enumerate().skip(1).rev() {
        let position = CertPosition::Cabundle(index);
        chain.push((position, parse(position, der)?));
    }

    // Links between certificates of the document.
    for pair in chain.windows(2) {
        let [(position, child), (_, issuer)] = pair else {
            continue;
        };
        if !child.issued_by_name(issuer) {
            return Err(VerifyError::IssuerMismatch {
                position: *position,
            });
        }
        if !child.signed_by(issuer) {
            return Err(VerifyError::BadCertificateSignature {
                position: *position,
            });
        }
    }
    // The link to the pinned root.
    if let Some((_, top)) = chain.last() {
        if !top.issued_by_name(root) || !top.signed_by(root) {
            return Err(VerifyError::UntrustedRoot {
                issuer: top.issuer.to_string(),
                root: root.subject.to_string(),
            });
        }
    }

    let root_entry = (CertPosition::Root, root.clone());
    for (position, cert) in chain.iter().chain(std::iter::once(&root_entry)) {
        check_validity(*position, cert, at)?;
    }
    check_constraints(&chain, &root_entry)?;

    Ok(ChainOutcome {
        leaf_key,
        len: chain.len() + 1,
    })
}

fn parse(position: CertPosition, der: &[u8]) -> Result<CertInfo, VerifyError> {
    CertInfo::parse(der).map_err(|source| VerifyError::Certificate { position, source })
}

fn check_validity(position: CertPosition, cert: &CertInfo, at: u64) -> Result<(), VerifyError> {
    // Certificates count in seconds; the document in milliseconds.
    let not_before = cert.not_before.saturating_mul(1000);
    let not_after = cert.not_after.saturating_mul(1000);
    if at < not_before {
        return Err(VerifyError::CertificateNotYetValid {
            position,
            not_before: UnixMillis(not_before),
            at: UnixMillis(at),
        });
    }
    // RFC 5280: the validity period includes notAfter itself; allow its whole last second.
    if at > not_after.saturating_add(999) {
        return Err(VerifyError::CertificateExpired {
            position,
            not_after: UnixMillis(not_after),
            at: UnixMillis(at),
        });
    }
    Ok(())
}

/// Roles: the leaf signs data (digitalSignature, not a CA); every other certificate signs
/// certificates (CA, keyCertSign) and has at most `pathLen` CAs between itself and the leaf.
fn check_constraints(
    chain: &[(CertPosition, CertInfo)],
    root: &(CertPosition, CertInfo),
) -> Result<(), VerifyError> {
    for (depth, (position, cert)) in chain.iter().chain(std::iter::once(root)).enumerate() {
        if depth == 0 {
            if cert.is_ca() || cert.path_len().is_some() {
                return Err(VerifyError::LeafIsCa);
            }
            if !cert.can_sign_data() {
                return Err(VerifyError::MissingKeyUsage {
                    position: *position,
                    usage: "digitalSignature",
                });
            }
            continue;
        }
        if !cert.is_ca() {
            return Err(VerifyError::NotACa {
                position: *position,
            });
        }
        if !cert.can_sign_certificates() {
            return Err(VerifyError::MissingKeyUsage {
                position: *position,
                usage: "keyCertSign",
            });
        }
        // CAs strictly between this certificate and the leaf.
        let below = depth - 1;
        if let Some(path_len) = cert.path_len() {
            if usize::from(path_len) < below {
                return Err(VerifyError::PathLenExceeded {
                    position: *position,
                    path_len,
                    below,
                });
            }
        }
    }
    Ok(())
}
