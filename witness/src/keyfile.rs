//! The witness's secret key file: one line,
//!
//! ```text
//! PRIVATE+KEY+<witness name>+<8 hex digits key id>+<base64(0x04 || 32-byte Ed25519 seed)>
//! ```
//!
//! the signed-note private key layout (as Go's `note` package writes it) with the cosignature
//! type 0x04 and the cosignature key id. The name is in the file because a witness key must
//! never serve two names (the cosigned message does not include the name): the witness
//! refuses to start under another name than its key file's.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ea_audit::cosignature::{CosignatureError, CosignatureSigner, COSIGNATURE_TYPE};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// Why a key file cannot be written or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading or writing the file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Group or others may read the file.
    #[error("key file {path}: mode {mode:04o} lets others read the witness key; chmod 600 it")]
    Readable {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Not a key file of the form above.
    #[error("key file {path}: not PRIVATE+KEY+<name>+<key id>+<base64(0x04 || seed)>")]
    Malformed {
        /// The file.
        path: PathBuf,
    },
    /// The name, key id or key does not check out.
    #[error("key file {path}: {source}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: CosignatureError,
    },
    /// The key file is for another witness name.
    #[error("key file {path} holds the key of {found:?}, not of {expected:?}")]
    WrongName {
        /// The file.
        path: PathBuf,
        /// The name in the file.
        found: String,
        /// The name asked for.
        expected: String,
    },
    /// The system RNG failed.
    #[error("the system random number generator failed")]
    Random,
}

/// Writes a new key for witness `name` to `path` (which must not exist), readable by its owner
/// only, and returns its signer.
pub fn generate(path: &Path, name: &str) -> Result<CosignatureSigner, KeyFileError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    SystemRandom::new()
        .fill(seed.as_mut())
        .map_err(|_| KeyFileError::Random)?;
    let signer = CosignatureSigner::from_seed(name, &seed).map_err(|source| KeyFileError::Key {
        path: path.to_owned(),
        source,
    })?;
    let mut typed = Zeroizing::new(Vec::with_capacity(33));
    typed.push(COSIGNATURE_TYPE);
    typed.extend_from_slice(seed.as_ref());
    let line = Zeroizing::new(format!(
        "PRIVATE+KEY+{name}+{:08x}+{}\n",
        signer.verifier().key_id(),
        STANDARD.encode(typed.as_slice())
    ));
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(line.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(signer)
}

/// Reads the key file at `path` for witness `name`.
pub fn load(path: &Path, name: &str) -> Result<CosignatureSigner, KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Readable {
            path: path.to_owned(),
            mode,
        });
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
    let malformed = || KeyFileError::Malformed {
        path: path.to_owned(),
    };
    let line = text.strip_suffix('\n').unwrap_or(&text);
    let rest = line.strip_prefix("PRIVATE+KEY+").ok_or_else(malformed)?;
    // The name has no '+'; base64 may.
    let mut parts = rest.splitn(3, '+');
    let (Some(found), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(malformed());
    };
    if id.len() != 8 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(malformed());
    }
    let id = u32::from_str_radix(id, 16).map_err(|_| malformed())?;
    let typed = Zeroizing::new(STANDARD.decode(key).map_err(|_| malformed())?);
    let Some((&COSIGNATURE_TYPE, seed)) = typed.split_first() else {
        return Err(malformed());
    };
    let seed = Zeroizing::new(<[u8; 32]>::try_from(seed).map_err(|_| malformed())?);
    let signer =
        CosignatureSigner::from_seed(found, &seed).map_err(|source| KeyFileError::Key {
            path: path.to_owned(),
            source,
        })?;
    if signer.verifier().key_id() != id {
        return Err(KeyFileError::Key {
            path: path.to_owned(),
            source: CosignatureError::VerifierKeyIdMismatch,
        });
    }
    if found != name {
        return Err(KeyFileError::WrongName {
            path: path.to_owned(),
            found: found.to_owned(),
            expected: name.to_owned(),
        });
    }
    Ok(signer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_then_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let signer = generate(&path, "witness.example/w1").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(&format!(
            "PRIVATE+KEY+witness.example/w1+{:08x}+B",
            signer.verifier().key_id()
        )));
        let loaded = load(&path, "witness.example/w1").unwrap();
        assert_eq!(loaded.verifier(), signer.verifier());
        // Never overwritten.
        assert!(matches!(
            generate(&path, "witness.example/w1"),
            Err(KeyFileError::Io { .. })
        ));
        // Another name: refused.
        assert!(matches!(
            load(&path, "witness.example/w2"),
            Err(KeyFileError::WrongName { .. })
        ));
        // Readable by others: refused.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load(&path, "witness.example/w1"),
            Err(KeyFileError::Readable { mode: 0o644, .. })
        ));
    }

    #[test]
    fn malformed_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        generate(&path, "w").unwrap();
        let good = std::fs::read_to_string(&path).unwrap();
        let id = good.split('+').nth(3).unwrap().to_owned();
        let wrong_id = if id == "00000000" {
            "00000001"
        } else {
            "00000000"
        };
        for (bad, expect_key_error) in [
            (good.replacen("PRIVATE", "PUBLIC", 1), false),
            (good.replacen(&id, &id.to_uppercase(), 1), false),
            (good.replacen(&id, wrong_id, 1), true),
            (good.replacen("+B", "+A", 1), false),
            ("PRIVATE+KEY+w\n".to_owned(), false),
        ] {
            if bad == good {
                continue; // an id without letters has no upper-case spelling
            }
            std::fs::remove_file(&path).unwrap();
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .unwrap()
                .write_all(bad.as_bytes())
                .unwrap();
            let error = load(&path, "w").unwrap_err();
            if expect_key_error {
                assert!(
                    matches!(error, KeyFileError::Key { .. }),
                    "{bad:?}: {error}"
                );
            } else {
                assert!(
                    matches!(error, KeyFileError::Malformed { .. }),
                    "{bad:?}: {error}"
                );
            }
        }
    }
}
