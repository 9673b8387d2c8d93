//! The one address type: `vsock:<cid>:<port>`, `vsock-uds:<path>:<port>`, `unix:<path>` or
//! `tcp:<host>:<port>`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where a service listens or a client connects.
///
/// vsock is what production uses between the parent instance and its enclave; `vsock-uds:`
/// reaches an enclave booted under QEMU from the host; `unix:` runs the same binaries on one
/// machine; `tcp:` exists for tests and local tools only.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// An AF_VSOCK address: context id and port.
    Vsock {
        /// Context id (3 is the parent instance; enclaves get the CID they were started with).
        cid: u32,
        /// Port.
        port: u32,
    },
    /// A guest's vsock port reached from the host through a hybrid vsock backend (Firecracker's
    /// convention, used by rust-vmm's `vhost-device-vsock --uds-path`, as under QEMU's
    /// `nitro-enclave` machine): connect to the unix socket `path`, send `CONNECT <port>\n`,
    /// and after the backend's `OK <n>\n` the stream is the guest connection.
    ///
    /// Only for connecting: the guest's connections to the host's port P arrive at the unix
    /// socket `<path>_P`, so a host listens on `unix:<path>_P`, never here.
    VsockUds {
        /// The backend's unix socket (may itself contain ':').
        path: PathBuf,
        /// The guest's vsock port.
        port: u32,
    },
    /// A unix domain socket path.
    Unix(PathBuf),
    /// A TCP host (name or IP literal; IPv6 in brackets) and port.
    Tcp {
        /// Host name or IP literal without brackets.
        host: String,
        /// Port.
        port: u16,
    },
}

/// Why a string is not an [`Address`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// No known scheme in front.
    #[error("address {0:?} must start with vsock:, vsock-uds:, unix: or tcp:")]
    UnknownScheme(String),
    /// The part after the scheme does not have the required shape.
    #[error("address {input:?} is malformed: {reason}")]
    Malformed {
        /// What was given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let malformed = |reason| AddressError::Malformed {
            input: input.to_owned(),
            reason,
        };
        if let Some(rest) = input.strip_prefix("vsock:") {
            let (cid, port) = rest
                .split_once(':')
                .ok_or_else(|| malformed("expected vsock:<cid>:<port>"))?;
            let cid = cid
                .parse()
                .map_err(|_| malformed("cid must be a 32-bit unsigned number"))?;
            let port = port
                .parse()
                .map_err(|_| malformed("port must be a 32-bit unsigned number"))?;
            Ok(Address::Vsock { cid, port })
        } else if let Some(rest) = input.strip_prefix("vsock-uds:") {
            // The path may contain ':' itself; the port is what follows the last one.
            let (path, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| malformed("expected vsock-uds:<path>:<port>"))?;
            if path.is_empty() {
                return Err(malformed("path is empty"));
            }
            let port = port
                .parse()
                .map_err(|_| malformed("port must be a 32-bit unsigned number"))?;
            Ok(Address::VsockUds {
                path: PathBuf::from(path),
                port,
            })
        } else if let Some(path) = input.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(malformed("expected unix:<path>"));
            }
            Ok(Address::Unix(PathBuf::from(path)))
        } else if let Some(rest) = input.strip_prefix("tcp:") {
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| malformed("expected tcp:<host>:<port>"))?;
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            if host.is_empty() {
                return Err(malformed("host is empty"));
            }
            let port = port
                .parse()
                .map_err(|_| malformed("port must be a number from 0 to 65535"))?;
            Ok(Address::Tcp {
                host: host.to_owned(),
                port,
            })
        } else {
            Err(AddressError::UnknownScheme(input.to_owned()))
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Vsock { cid, port } => write!(f, "vsock:{cid}:{port}"),
            Address::VsockUds { path, port } => {
                write!(f, "vsock-uds:{}:{port}", path.display())
            }
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
            Address::Tcp { host, port } if host.contains(':') => write!(f, "tcp:[{host}]:{port}"),
            Address::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_scheme_and_prints_it_back() {
        for (text, address) in [
            (
                "vsock:16:5000",
                Address::Vsock {
                    cid: 16,
                    port: 5000,
                },
            ),
            (
                "vsock-uds:/tmp/vm/vhost4.socket:5000",
                Address::VsockUds {
                    path: "/tmp/vm/vhost4.socket".into(),
                    port: 5000,
                },
            ),
            (
                // The port is after the last ':'; earlier ones belong to the path.
                "vsock-uds:/run/a:b/v.sock:4294967295",
                Address::VsockUds {
                    path: "/run/a:b/v.sock".into(),
                    port: u32::MAX,
                },
            ),
            (
                "vsock-uds:relative.sock:0",
                Address::VsockUds {
                    path: "relative.sock".into(),
                    port: 0,
                },
            ),
            (
                "unix:/tmp/enclave.sock",
                Address::Unix("/tmp/enclave.sock".into()),
            ),
            (
                "tcp:127.0.0.1:8000",
                Address::Tcp {
                    host: "127.0.0.1".into(),
                    port: 8000,
                },
            ),
            (
                "tcp:[::1]:8000",
                Address::Tcp {
                    host: "::1".into(),
                    port: 8000,
                },
            ),
        ] {
            assert_eq!(text.parse::<Address>().unwrap(), address);
            assert_eq!(address.to_string(), text);
        }
    }

    #[test]
    fn unknown_scheme_error_lists_every_scheme() {
        let error = "vsockuds:/x:1".parse::<Address>().unwrap_err().to_string();
        for scheme in ["vsock:", "vsock-uds:", "unix:", "tcp:"] {
            assert!(error.contains(scheme), "{error} should name {scheme}");
        }
    }

    #[test]
    fn refuses_malformed_addresses() {
        assert!(matches!(
            "http://x".parse::<Address>(),
            Err(AddressError::UnknownScheme(_))
        ));
        for bad in [
            "vsock:16",
            "vsock:x:1",
            "vsock:1:-1",
            "unix:",
            "tcp:host",
            "tcp::80",
            "tcp:h:99999",
            "vsock-uds:",
            "vsock-uds:/tmp/v.sock",
            "vsock-uds::5000",
            "vsock-uds:/tmp/v.sock:",
            "vsock-uds:/tmp/v.sock:x",
            "vsock-uds:/tmp/v.sock:-1",
            "vsock-uds:/tmp/v.sock:4294967296",
            "vsock-uds:/a:b",
        ] {
            assert!(
                matches!(bad.parse::<Address>(), Err(AddressError::Malformed { .. })),
                "{bad} should be malformed"
            );
        }
    }
}
