//! Configuration: the `--log ORIGIN=VKEY` form and the optional TOML file.
//!
//! ```toml
//! listen = "0.0.0.0:7380"
//! db = "/var/lib/witness/witness.db"
//! key_file = "/etc/witness/key"
//! name = "witness.example/w1"
//! log = [
//!     "enclave-approvals/3f1c0a9b27d4e861=enclave-approvals/3f1c0a9b27d4e861+a1b2c3d4+AQID...",
//! ]
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use ea_audit::note::{NoteError, NoteVerifier};
use serde::Deserialize;

/// Why a `--log` value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogSpecError {
    /// No `=` between origin and key.
    #[error("{spec:?} is not ORIGIN=VKEY")]
    NotOriginEqualsKey {
        /// The value given.
        spec: String,
    },
    /// The key is not a note verifier key (`<name>+<key id>+<base64(0x01 || key)>`).
    #[error("the log key {key:?} is refused: {source}")]
    BadKey {
        /// The key given.
        key: String,
        /// Why.
        source: NoteError,
    },
    /// The key's name is not the origin: the log signs its checkpoints under its origin, so
    /// such a key's signatures would never count.
    #[error("the log key {key:?} is named {name:?}, not after the origin {origin:?}")]
    NameIsNotOrigin {
        /// The key given.
        key: String,
        /// The key's name.
        name: String,
        /// The origin given.
        origin: String,
    },
}

/// Parses `ORIGIN=VKEY`, with VKEY a signed-note Ed25519 verifier key named ORIGIN.
pub fn parse_log(spec: &str) -> Result<NoteVerifier, LogSpecError> {
    // Origins contain no '=' (key names may not contain spaces or '+', but may contain '=';
    // the vkey's base64 may too, so split at the first).
    let (origin, key) = spec
        .split_once('=')
        .ok_or_else(|| LogSpecError::NotOriginEqualsKey {
            spec: spec.to_owned(),
        })?;
    let verifier: NoteVerifier = key.parse().map_err(|source| LogSpecError::BadKey {
        key: key.to_owned(),
        source,
    })?;
    if verifier.name() != origin {
        return Err(LogSpecError::NameIsNotOrigin {
            key: key.to_owned(),
            name: verifier.name().to_owned(),
            origin: origin.to_owned(),
        });
    }
    Ok(verifier)
}

/// The `--config` file: every serving flag, each optional (a flag given on the command line
/// wins; `log` entries add to the command line's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// As `--listen`.
    pub listen: Option<SocketAddr>,
    /// As `--db`.
    pub db: Option<PathBuf>,
    /// As `--key-file`.
    pub key_file: Option<PathBuf>,
    /// As `--name`.
    pub name: Option<String>,
    /// As `--log`, each `ORIGIN=VKEY`.
    #[serde(default)]
    pub log: Vec<String>,
}

impl FileConfig {
    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ea_audit::note::NoteSigner;
    use ring::signature::Ed25519KeyPair;

    fn vkey(name: &str) -> String {
        let key = Ed25519KeyPair::from_seed_unchecked(&[4; 32]).unwrap();
        NoteSigner::new(name, Box::new(key))
            .unwrap()
            .verifier()
            .to_string()
    }

    #[test]
    fn log_specs() {
        let origin = "enclave-approvals/3f1c0a9b27d4e861";
        let key = vkey(origin);
        assert_eq!(
            parse_log(&format!("{origin}={key}")).unwrap().to_string(),
            key
        );
        assert!(matches!(
            parse_log(&key),
            Err(LogSpecError::NotOriginEqualsKey { .. })
        ));
        assert!(matches!(
            parse_log(&format!("{origin}={}", key.replace("+A", "+B"))),
            Err(LogSpecError::BadKey { .. })
        ));
        assert!(matches!(
            parse_log(&format!("enclave-approvals/0000000000000000={key}")),
            Err(LogSpecError::NameIsNotOrigin { .. })
        ));
    }

    #[test]
    fn config_file() {
        let text = r#"
            listen = "127.0.0.1:7380"
            db = "/var/lib/witness/witness.db"
            key_file = "/etc/witness/key"
            name = "witness.example/w1"
            log = ["a=b"]
        "#;
        let config = FileConfig::parse(text).unwrap();
        assert_eq!(config.listen, Some("127.0.0.1:7380".parse().unwrap()));
        assert_eq!(config.log, ["a=b"]);
        assert_eq!(FileConfig::parse("").unwrap(), FileConfig::default());
        assert!(FileConfig::parse("lisen = \"x\"").is_err());
        assert!(FileConfig::parse("listen = \"not an address\"").is_err());
    }
}
