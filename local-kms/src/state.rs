//! The keys of the local KMS and the file that keeps them across restarts.
//!
//! The state file is JSON: each key's id, its 32 bytes of AES-256 material (base64), its
//! policy text, description, creation time and whether it is enabled. It holds the key
//! material in the clear: this is a test double on one machine, not a key store. It is
//! written to a temporary file and renamed over the old one, mode 0600.
//!
//! A ciphertext blob is ours: `"EAK1" || len(key id) (1 byte) || key id || nonce (12) ||
//! AES-256-GCM(plaintext)`, the associated data being the bytes before the nonce followed
//! by the encryption context as canonical JSON (keys sorted). So a blob names its key, and
//! opens only with that key and the same context.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ea_kms::policy::KeyPolicy;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom as _, SystemRandom};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

const BLOB_MAGIC: &[u8; 4] = b"EAK1";
/// Largest state file read.
const MAX_STATE_LEN: u64 = 16 * 1024 * 1024;

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Reading or writing it failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not a state file.
    #[error("{path} is not a local-kms state file: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The OS random source failed.
    #[error("the OS random source failed")]
    Random,
}

/// One symmetric key.
pub struct Key {
    /// Its id (a UUID).
    pub key_id: String,
    material: Zeroizing<[u8; 32]>,
    /// Its policy, as given.
    pub policy_text: String,
    /// Its policy, parsed.
    pub policy: KeyPolicy,
    /// Its description.
    pub description: String,
    /// Seconds since the Unix epoch.
    pub creation_date: u64,
    /// Disabled keys refuse cryptographic operations.
    pub enabled: bool,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("key_id", &self.key_id)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    key_id: String,
    material: String,
    policy: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    creation_date: u64,
    #[serde(default = "enabled")]
    enabled: bool,
}

fn enabled() -> bool {
    true
}

#[derive(Serialize, Deserialize, Default)]
struct StateFile {
    keys: Vec<KeyFile>,
}

/// The keys, by id, and where they are saved.
#[derive(Debug)]
pub struct KeyStore {
    path: PathBuf,
    keys: BTreeMap<String, Key>,
    random: SystemRandom,
}

/// A new random UUID (version 4).
pub fn new_key_id(random: &SystemRandom) -> Result<String, StateError> {
    let mut b = [0u8; 16];
    random.fill(&mut b).map_err(|_| StateError::Random)?;
    let [a0, a1, a2, a3, b0, b1, c0, c1, d0, d1, e0, e1, e2, e3, e4, e5] = b;
    // Version 4, RFC 4122 variant.
    let (c0, d0) = ((c0 & 0x0f) | 0x40, (d0 & 0x3f) | 0x80);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        hex::encode([a0, a1, a2, a3]),
        hex::encode([b0, b1]),
        hex::encode([c0, c1]),
        hex::encode([d0, d1]),
        hex::encode([e0, e1, e2, e3, e4, e5])
    ))
}

fn context_aad(header: &[u8], context: &BTreeMap<String, String>) -> Vec<u8> {
    let mut aad = header.to_vec();
    // A BTreeMap serialises with sorted keys: one encoding per context.
    aad.extend_from_slice(
        serde_json::to_string(context)
            .unwrap_or_default()
            .as_bytes(),
    );
    aad
}

impl Key {
    fn cipher(&self) -> Option<LessSafeKey> {
        UnboundKey::new(&AES_256_GCM, self.material.as_ref())
            .ok()
            .map(LessSafeKey::new)
    }

    /// Encrypts `plaintext` into a blob naming this key.
    pub fn encrypt(
        &self,
        plaintext: &[u8],
        context: &BTreeMap<String, String>,
        random: &SystemRandom,
    ) -> Option<Vec<u8>> {
        let id = self.key_id.as_bytes();
        let mut blob = Vec::with_capacity(5 + id.len() + NONCE_LEN + plaintext.len() + 16);
        blob.extend_from_slice(BLOB_MAGIC);
        blob.push(u8::try_from(id.len()).ok()?);
        blob.extend_from_slice(id);
        let aad = context_aad(&blob, context);
        let mut nonce = [0u8; NONCE_LEN];
        random.fill(&mut nonce).ok()?;
        blob.extend_from_slice(&nonce);
        let mut sealed = plaintext.to_vec();
        self.cipher()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut sealed,
            )
            .ok()?;
        blob.extend_from_slice(&sealed);
        Some(blob)
    }

    /// Opens a blob made by [`Key::encrypt`] with the same context.
    pub fn decrypt(
        &self,
        blob: &[u8],
        context: &BTreeMap<String, String>,
    ) -> Option<Zeroizing<Vec<u8>>> {
        let id_len = usize::from(*blob.get(4)?);
        let header = blob.get(..5 + id_len)?;
        let nonce: [u8; NONCE_LEN] = blob
            .get(5 + id_len..5 + id_len + NONCE_LEN)?
            .try_into()
            .ok()?;
        let mut sealed = Zeroizing::new(blob.get(5 + id_len + NONCE_LEN..)?.to_vec());
        let len = self
            .cipher()?
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context_aad(header, context)),
                &mut sealed,
            )
            .ok()?
            .len();
        sealed.truncate(len);
        Some(sealed)
    }
}

/// The key id a blob names, if it looks like one of ours.
pub fn blob_key_id(blob: &[u8]) -> Option<&str> {
    if blob.get(..4)? != BLOB_MAGIC {
        return None;
    }
    let id_len = usize::from(*blob.get(4)?);
    std::str::from_utf8(blob.get(5..5 + id_len)?).ok()
}

impl KeyStore {
    /// Loads `path`, or starts empty when it does not exist yet.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let io = |source| StateError::Io {
            path: path.to_owned(),
            source,
        };
        let invalid = |reason: String| StateError::Invalid {
            path: path.to_owned(),
            reason,
        };
        let file = match std::fs::metadata(path) {
            Ok(meta) if meta.len() > MAX_STATE_LEN => {
                return Err(invalid("larger than 16 MiB".into()))
            }
            Ok(_) => {
                let text = std::fs::read_to_string(path).map_err(io)?;
                serde_json::from_str::<StateFile>(&text).map_err(|e| invalid(e.to_string()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateFile::default(),
            Err(e) => return Err(io(e)),
        };
        let mut keys = BTreeMap::new();
        for key in file.keys {
            let material: [u8; 32] = base64::engine::general_purpose::STANDARD
                .decode(&key.material)
                .ok()
                .and_then(|m| m.try_into().ok())
                .ok_or_else(|| {
                    invalid(format!(
                        "key {}: material is not 32 bytes of base64",
                        key.key_id
                    ))
                })?;
            let policy = KeyPolicy::from_json(&key.policy)
                .map_err(|e| invalid(format!("key {}: policy: {e}", key.key_id)))?;
            keys.insert(
                key.key_id.clone(),
                Key {
                    key_id: key.key_id,
                    material: Zeroizing::new(material),
                    policy_text: key.policy,
                    policy,
                    description: key.description,
                    creation_date: key.creation_date,
                    enabled: key.enabled,
                },
            );
        }
        Ok(Self {
            path: path.to_owned(),
            keys,
            random: SystemRandom::new(),
        })
    }

    /// Writes the state file (temporary file, then rename; mode 0600).
    pub fn save(&self) -> Result<(), StateError> {
        let io = |source| StateError::Io {
            path: self.path.clone(),
            source,
        };
        let file = StateFile {
            keys: self
                .keys
                .values()
                .map(|k| KeyFile {
                    key_id: k.key_id.clone(),
                    material: base64::engine::general_purpose::STANDARD.encode(k.material.as_ref()),
                    policy: k.policy_text.clone(),
                    description: k.description.clone(),
                    creation_date: k.creation_date,
                    enabled: k.enabled,
                })
                .collect(),
        };
        let text = Zeroizing::new(serde_json::to_string_pretty(&file).map_err(|e| io(e.into()))?);
        let temporary = self.path.with_extension("tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut out = options.open(&temporary).map_err(io)?;
        out.write_all(text.as_bytes()).map_err(io)?;
        out.sync_all().map_err(io)?;
        std::fs::rename(&temporary, &self.path).map_err(io)
    }

    /// The random source.
    pub fn random(&self) -> &SystemRandom {
        &self.random
    }

    /// A key by id.
    pub fn get(&self, key_id: &str) -> Option<&Key> {
        self.keys.get(key_id)
    }

    /// A key by id, to change it.
    pub fn get_mut(&mut self, key_id: &str) -> Option<&mut Key> {
        self.keys.get_mut(key_id)
    }

    /// Every key id.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Adds a key with fresh material; `key_id` is generated when `None`. Not saved.
    pub fn create(
        &mut self,
        key_id: Option<String>,
        policy_text: String,
        policy: KeyPolicy,
        description: String,
        now_secs: u64,
    ) -> Result<&Key, StateError> {
        let key_id = match key_id {
            Some(id) => id,
            None => new_key_id(&self.random)?,
        };
        let mut material = Zeroizing::new([0u8; 32]);
        self.random
            .fill(material.as_mut())
            .map_err(|_| StateError::Random)?;
        let key = self.keys.entry(key_id.clone()).or_insert(Key {
            key_id,
            material,
            policy_text,
            policy,
            description,
            creation_date: now_secs,
            enabled: true,
        });
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test")]

    use super::*;

    const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}]}"#;

    #[test]
    fn keys_survive_a_restart_and_blobs_bind_key_and_context() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut store = KeyStore::open(&path).unwrap();
        let id = store
            .create(
                None,
                POLICY.into(),
                KeyPolicy::from_json(POLICY).unwrap(),
                "d".into(),
                7,
            )
            .unwrap()
            .key_id
            .clone();
        store.save().unwrap();
        let context = BTreeMap::from([("purpose".to_owned(), "log key".to_owned())]);
        let blob = store
            .get(&id)
            .unwrap()
            .encrypt(b"data key", &context, store.random())
            .unwrap();
        assert_eq!(blob_key_id(&blob), Some(id.as_str()));

        let reopened = KeyStore::open(&path).unwrap();
        let key = reopened.get(&id).unwrap();
        assert_eq!(
            key.decrypt(&blob, &context).unwrap().as_slice(),
            b"data key"
        );
        assert!(key.decrypt(&blob, &BTreeMap::new()).is_none());
        let mut altered = blob.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(key.decrypt(&altered, &context).is_none());
        assert!(key.decrypt(&blob[..20], &context).is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn key_ids_are_uuids() {
        let id = new_key_id(&SystemRandom::new()).unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }
}
