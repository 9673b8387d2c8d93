//! The relay for the enclave's connections to KMS (`--kms-relay-listen`): every connection
//! accepted on an [`Address`] (vsock from the enclave) is piped, byte for byte, to one
//! configured upstream `host:port`.
//!
//! The enclave speaks TLS to KMS through it (rustls inside the enclave, certificate checked
//! for the KMS host name), so the relay carries only TLS records: it can drop or delay them,
//! never read or change them unnoticed. It connects to nothing but the one endpoint it was
//! started with, and that endpoint must be on the allow-list: a KMS endpoint of AWS
//! (`kms.<region>.amazonaws.com:443`, `kms-fips.<region>.amazonaws.com:443`, also under
//! `amazonaws.com.cn`) or one given explicitly with `--kms-relay-allow` (a local KMS).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ea_protocol::{Address, Listener, Stream};
use tokio::sync::watch;

use crate::listen::{accept_until_shutdown, bound_or_retry};

/// Connections relayed at once; the enclave opens one per KMS call.
const MAX_CONNECTIONS: usize = 32;
/// Time to reach the upstream.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a relayed connection stays open (a KMS exchange takes well under a second).
const MAX_CONNECTION_LIFETIME: Duration = Duration::from_secs(300);

/// A `host:port` the relay may connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP literal (without brackets), lower case.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// Why the relay cannot run as configured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// Not `host:port`.
    #[error("{input:?} is not host:port ({reason})")]
    Endpoint {
        /// What was given.
        input: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The endpoint is neither an AWS KMS endpoint nor explicitly allowed.
    #[error(
        "KMS relay endpoint {0} is not allowed: expected kms.<region>.amazonaws.com:443 or \
         kms-fips.<region>.amazonaws.com:443, or an endpoint given with --kms-relay-allow"
    )]
    NotAllowed(Endpoint),
}

impl FromStr for Endpoint {
    type Err = RelayError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let bad = |reason| RelayError::Endpoint {
            input: input.to_owned(),
            reason,
        };
        let (host, port) = input.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if host.contains('/') || host.contains('@') || host.chars().any(char::is_whitespace) {
            return Err(bad("not a host name"));
        }
        let port = port
            .parse()
            .map_err(|_| bad("the port is not 0 to 65535"))?;
        Ok(Endpoint {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// `us-east-1`, `eu-west-3`, `us-gov-west-1`, `ap-southeast-4`, `cn-north-1`, ...
fn is_region(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    match parts.as_slice() {
        [area, middle @ .., number] if !middle.is_empty() => {
            area.len() == 2
                && area.bytes().all(|b| b.is_ascii_lowercase())
                && middle
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
                && !number.is_empty()
                && number.bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    }
}

/// An AWS KMS endpoint: `kms[-fips].<region>.amazonaws.com[.cn]` on port 443.
pub fn is_aws_kms_endpoint(endpoint: &Endpoint) -> bool {
    if endpoint.port != 443 {
        return false;
    }
    let host = endpoint.host.as_str();
    let rest = host
        .strip_prefix("kms-fips.")
        .or_else(|| host.strip_prefix("kms."));
    let region = rest.and_then(|r| {
        r.strip_suffix(".amazonaws.com")
            .or_else(|| r.strip_suffix(".amazonaws.com.cn"))
    });
    region.is_some_and(is_region)
}

/// Refuses an upstream that is neither an AWS KMS endpoint nor in `allowed`.
pub fn check_allowed(upstream: &Endpoint, allowed: &[Endpoint]) -> Result<(), RelayError> {
    if is_aws_kms_endpoint(upstream) || allowed.contains(upstream) {
        Ok(())
    } else {
        Err(RelayError::NotAllowed(upstream.clone()))
    }
}

/// Pipes one accepted connection to the upstream.
async fn relay(mut client: Stream, peer: String, upstream: Arc<Endpoint>) {
    let address = Address::Tcp {
        host: upstream.host.clone(),
        port: upstream.port,
    };
    let mut server = match tokio::time::timeout(CONNECT_TIMEOUT, Stream::connect(&address)).await {
        Ok(Ok(server)) => server,
        Ok(Err(error)) => {
            tracing::warn!(%peer, %upstream, %error, "KMS relay: cannot reach the upstream");
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, %upstream, "KMS relay: the upstream did not answer in time");
            return;
        }
    };
    let piped = tokio::time::timeout(
        MAX_CONNECTION_LIFETIME,
        tokio::io::copy_bidirectional(&mut client, &mut server),
    )
    .await;
    match piped {
        Ok(Ok((to_upstream, to_enclave))) => {
            tracing::debug!(%peer, %upstream, to_upstream, to_enclave, "KMS relay connection done");
        }
        Ok(Err(error)) => tracing::info!(%peer, %upstream, %error, "KMS relay connection broke"),
        Err(_) => {
            tracing::warn!(%peer, %upstream, "KMS relay connection closed after its maximum lifetime")
        }
    }
}

/// Relays every connection accepted on `listener` to `upstream` until `shutdown` turns
/// true; connections still open then are cut.
pub async fn serve(listener: Listener, upstream: Endpoint, shutdown: watch::Receiver<bool>) {
    let upstream = Arc::new(upstream);
    let connections = accept_until_shutdown(
        &listener,
        MAX_CONNECTIONS,
        "KMS relay",
        &shutdown,
        |stream, peer| relay(stream, peer, upstream.clone()),
    )
    .await;
    drop(connections);
}

/// Relays to `upstream` until `shutdown`, on `bound` if the start-up bind succeeded, else on
/// `listen` once it can be bound (retrying, as the store service does).
pub async fn run(
    listen: Address,
    bound: Option<Listener>,
    upstream: Endpoint,
    shutdown: watch::Receiver<bool>,
) {
    let Some(listener) = bound_or_retry(bound, &listen, "KMS relay", &shutdown).await else {
        return;
    };
    tracing::info!(%listen, %upstream, "KMS relay listening");
    serve(listener, upstream, shutdown).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]

    use super::*;

    #[test]
    fn aws_kms_endpoints_are_allowed_and_nothing_else() {
        for (text, allowed) in [
            ("kms.eu-west-1.amazonaws.com:443", true),
            ("KMS.EU-WEST-1.amazonaws.com:443", true),
            ("kms-fips.us-east-1.amazonaws.com:443", true),
            ("kms.us-gov-west-1.amazonaws.com:443", true),
            ("kms.cn-north-1.amazonaws.com.cn:443", true),
            ("kms.eu-west-1.amazonaws.com:80", false),
            ("kms.eu-west-1.amazonaws.com.evil.example:443", false),
            ("kms.eu-west.amazonaws.com:443", false),
            ("s3.eu-west-1.amazonaws.com:443", false),
            ("kms.eu-west-1.example.com:443", false),
            ("127.0.0.1:443", false),
            ("kms..amazonaws.com:443", false),
        ] {
            let endpoint: Endpoint = text.parse().unwrap();
            assert_eq!(is_aws_kms_endpoint(&endpoint), allowed, "{text}");
        }
        let local: Endpoint = "127.0.0.1:4430".parse().unwrap();
        assert!(check_allowed(&local, std::slice::from_ref(&local)).is_ok());
        let error = check_allowed(&local, &[]).unwrap_err().to_string();
        assert!(error.contains("127.0.0.1:4430 is not allowed"), "{error}");
    }

    #[test]
    fn endpoints_parse_and_print() {
        let v6: Endpoint = "[::1]:8443".parse().unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.to_string(), "[::1]:8443");
        for bad in ["nohost", ":443", "host:99999", "a/b:443", "user@h:443"] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
    }
}
