//! Each image's log key on a log: made at the image's first start, sealed through KMS into
//! the image's own entry of the store's key set (`ea_kms::keyset`), unsealed at its later
//! starts. A new image never receives an older image's key: it makes its own, which its
//! `enclave_start` record then binds to its PCRs.
//!
//! Which key a start uses is a pure function ([`plan`]) of what the store holds, this
//! image's digest and the log: the log's genesis hash and genesis image (the first
//! `enclave_start`'s), and whether this image started on the log before. The parent is
//! untrusted: an entry opens only for the log, genesis image and image its associated data
//! names (so a swapped entry does not open), and a missing entry for an image that already
//! started is refused rather than taken for a first start (a new key would hide that the
//! parent dropped the old one).
//!
//! Recovery reads the log while KMS is asked: the plan is first made from the genesis hash
//! and genesis image the store *claims* (records 0 and 1, unverified), and its unseal runs
//! beside the verification; once the log verified, the plan is made again from the verified
//! values, and the early result is used only if they are the same.

use std::collections::BTreeMap;

use anyhow::Context as _;
use ea_audit::{Hash, LogSummary};
use ea_kms::{LogKeyBinding, SealedKeySet, SealedLogKey, StoredLogKeys};
use ea_policy::ImagePcrs;

use crate::log_key::{LogKey, SEED_LEN};
use crate::store_client::StoreClient;

/// How the enclave obtains its log key.
pub enum LogKeySource {
    /// A new key at every start, never stored. Each start's `enclave_start` record attests
    /// the new key, so the log stays verifiable; the key just is not the same across starts.
    Ephemeral,
    /// Sealed under a KMS data key that KMS releases only to an enclave whose attestation
    /// document shows the PCRs its key policy names: the same image gets its own key back,
    /// another image gets nothing from it (and makes its own key, if the log admits it).
    Kms(Box<ea_kms::LogKeyRelease>),
}

/// This enclave's image.
#[derive(Debug, Clone)]
pub struct OwnImage {
    /// As the log admits images.
    pub pcrs: ImagePcrs,
    /// PCR0, 1, 2 and 8 as the NSM reports them: as the log verifier reads them from this
    /// image's documents (`ea_audit::verify::image_of`).
    pub measured: BTreeMap<u16, Vec<u8>>,
    /// `ea_kms::image_digest` of those: this image's entry in the key set.
    pub digest: [u8; 32],
}

impl OwnImage {
    /// The image of an enclave whose locked PCRs are `pcrs`.
    pub fn of_pcrs(pcrs: &BTreeMap<u16, Vec<u8>>) -> anyhow::Result<OwnImage> {
        let image = ImagePcrs::from_pcrs(pcrs.iter().map(|(i, v)| (*i, v.as_slice())))
            .context("this enclave's PCRs do not name an image")?;
        let measured = ea_audit::verify::image_of(pcrs);
        let digest = ea_kms::image_digest(measured.iter().map(|(i, v)| (*i, v.as_slice())));
        Ok(OwnImage {
            pcrs: image,
            measured,
            digest,
        })
    }
}

/// The log's identity as the key binding needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogIdentity {
    /// The genesis hash.
    pub genesis_hash: Hash,
    /// `ea_kms::image_digest` of the first `enclave_start`'s image.
    pub genesis_image: [u8; 32],
}

impl LogIdentity {
    /// The identity of a verified log.
    pub fn of_summary(summary: &LogSummary) -> anyhow::Result<LogIdentity> {
        let first = summary
            .log_keys
            .first()
            .context("the verified log has no enclave_start record")?;
        Ok(LogIdentity {
            genesis_hash: summary.genesis_hash,
            genesis_image: ea_kms::image_digest(
                first.image.iter().map(|(i, v)| (*i, v.as_slice())),
            ),
        })
    }

    fn binding(&self, image: &OwnImage) -> LogKeyBinding {
        LogKeyBinding {
            genesis_hash: *self.genesis_hash.as_bytes(),
            genesis_image: self.genesis_image,
            image: image.digest,
        }
    }
}

/// What a start does for its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Unseal this image's entry.
    Unseal(SealedLogKey),
    /// Unseal the genesis image's key as a store written before per-image keys holds it.
    UnsealLegacy(SealedLogKey),
    /// This image started on the log (at this record) but the store has no key for it.
    Missing(u64),
    /// This image's first start on the log: make a key, seal it, add it to the set.
    New,
}

/// Which key a start of `image` on the log `log` uses, given what the store holds and the
/// record where `image` first started on the log, if it did.
pub fn plan(
    stored: Option<&StoredLogKeys>,
    image: &OwnImage,
    log: &LogIdentity,
    started_at: Option<u64>,
) -> Plan {
    let genesis_image = image.digest == log.genesis_image;
    let entry = match stored {
        Some(StoredLogKeys::Set(set)) => set.get(&image.digest),
        // Before per-image keys the store held the genesis image's key alone.
        Some(StoredLogKeys::Legacy(legacy)) if genesis_image => Some(legacy),
        _ => None,
    };
    match entry {
        // Only the genesis image opens a key sealed before per-image keys, whatever entry
        // the parent filed it under: it is the genesis image's key.
        Some(key) if key.version == ea_kms::LEGACY_LOG_KEY_VERSION => {
            if genesis_image {
                Plan::UnsealLegacy(key.clone())
            } else {
                Plan::Missing(started_at.unwrap_or_default())
            }
        }
        Some(key) => Plan::Unseal(key.clone()),
        None => match started_at {
            Some(index) => Plan::Missing(index),
            None => Plan::New,
        },
    }
}

/// The unseal started before the log was verified, with the identity it assumed.
pub struct Prefetched {
    stored: Option<StoredLogKeys>,
    early: Option<(LogIdentity, anyhow::Result<LogKey>)>,
}

impl LogKeySource {
    /// The key of a new log (at genesis): made, and with KMS sealed for this image as the
    /// log's genesis image, in a key set of one.
    pub async fn new_log(
        &self,
        store: &StoreClient,
        genesis_hash: &Hash,
        image: &OwnImage,
    ) -> anyhow::Result<LogKey> {
        let release = match self {
            LogKeySource::Ephemeral => return Ok(LogKey::generate()?),
            LogKeySource::Kms(release) => release,
        };
        let log = LogIdentity {
            genesis_hash: *genesis_hash,
            genesis_image: image.digest,
        };
        let key = LogKey::generate()?;
        let sealed = release
            .seal(key.seed(), &log.binding(image))
            .await
            .context("sealing the new log key through KMS")?;
        let mut set = SealedKeySet::new();
        set.insert(image.digest, sealed);
        store
            .put_sealed_key(set.to_bytes()?)
            .await
            .context("the parent did not store the sealed log key")?;
        Ok(key)
    }

    /// Reads the store's keys and, when the store's own records 0 and 1 say which log this
    /// is (`claimed`, unverified), unseals this image's key meanwhile.
    pub async fn prefetch(
        &self,
        store: &StoreClient,
        image: &OwnImage,
        claimed: Option<LogIdentity>,
    ) -> anyhow::Result<Prefetched> {
        let release = match self {
            LogKeySource::Ephemeral => {
                return Ok(Prefetched {
                    stored: None,
                    early: None,
                })
            }
            LogKeySource::Kms(release) => release,
        };
        let stored = match store
            .get_sealed_key()
            .await
            .context("reading the sealed log keys from the parent")?
        {
            Some(bytes) => Some(
                StoredLogKeys::from_bytes(&bytes)
                    .context("the sealed log keys the parent returned are malformed")?,
            ),
            None => None,
        };
        let early = match claimed {
            Some(log) => match plan(stored.as_ref(), image, &log, None) {
                Plan::Unseal(key) => Some((log, unseal(release, &key, &log, image).await)),
                Plan::UnsealLegacy(key) => Some((log, unseal_legacy(release, &key, &log).await)),
                Plan::Missing(_) | Plan::New => None,
            },
            None => None,
        };
        Ok(Prefetched { stored, early })
    }

    /// The key of a start on a verified log that admits this image: the prefetched one when
    /// the verified identity is the one it assumed, else unsealed now, or made and sealed
    /// for this image's first start on the log.
    pub async fn existing_log(
        &self,
        store: &StoreClient,
        image: &OwnImage,
        prefetched: Prefetched,
        log: &LogIdentity,
        started_at: Option<u64>,
    ) -> anyhow::Result<LogKey> {
        let release = match self {
            LogKeySource::Ephemeral => return Ok(LogKey::generate()?),
            LogKeySource::Kms(release) => release,
        };
        let Prefetched { stored, early } = prefetched;
        match plan(stored.as_ref(), image, log, started_at) {
            Plan::Unseal(key) => match early {
                Some((assumed, result)) if assumed == *log => result,
                _ => unseal(release, &key, log, image).await,
            },
            Plan::UnsealLegacy(key) => match early {
                Some((assumed, result)) if assumed == *log => result,
                _ => unseal_legacy(release, &key, log).await,
            },
            Plan::Missing(index) => anyhow::bail!(
                "the parent's store holds no sealed log key for this image, which started on \
                 this log at record {index}: the key cannot be recovered (restore the store's \
                 sealed key set from a backup)"
            ),
            Plan::New => {
                let key = LogKey::generate()?;
                let sealed = release
                    .seal(key.seed(), &log.binding(image))
                    .await
                    .context("sealing this image's new log key through KMS")?;
                let mut set = match stored {
                    Some(StoredLogKeys::Set(set)) => set,
                    // An older store: its one key is the genesis image's, kept beside ours.
                    Some(StoredLogKeys::Legacy(legacy)) => {
                        let mut set = SealedKeySet::new();
                        set.insert(log.genesis_image, legacy);
                        set
                    }
                    None => SealedKeySet::new(),
                };
                set.insert(image.digest, sealed);
                store
                    .put_sealed_key(set.to_bytes()?)
                    .await
                    .context("the parent did not store the sealed log keys")?;
                tracing::info!(
                    images = set.len(),
                    "first start of this image on the log: its own log key made and sealed"
                );
                Ok(key)
            }
        }
    }
}

/// The record where an enclave of `image` first started on the verified log, if any.
pub fn first_start(summary: &LogSummary, image: &OwnImage) -> Option<u64> {
    summary
        .log_keys
        .iter()
        .find(|key| key.image == image.measured)
        .map(|key| key.index)
}

async fn unseal(
    release: &ea_kms::LogKeyRelease,
    key: &SealedLogKey,
    log: &LogIdentity,
    image: &OwnImage,
) -> anyhow::Result<LogKey> {
    let seed = release
        .unseal(key, &log.binding(image))
        .await
        .context("unsealing this image's log key through KMS")?;
    from_seed(&seed)
}

async fn unseal_legacy(
    release: &ea_kms::LogKeyRelease,
    key: &SealedLogKey,
    log: &LogIdentity,
) -> anyhow::Result<LogKey> {
    let seed = release
        .unseal_legacy(key, log.genesis_hash.as_bytes())
        .await
        .context(
            "unsealing the genesis image's log key (sealed before per-image keys) through KMS",
        )?;
    from_seed(&seed)
}

fn from_seed(seed: &[u8; SEED_LEN]) -> anyhow::Result<LogKey> {
    let mut bytes = zeroize::Zeroizing::new([0u8; SEED_LEN]);
    bytes.copy_from_slice(seed);
    Ok(LogKey::from_seed(bytes)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test")]

    use super::*;
    use ea_kms::seal::seal_legacy_log_key_for_tests;

    fn image(byte: u8) -> OwnImage {
        let pcrs: BTreeMap<u16, Vec<u8>> = [
            (0, vec![byte; 48]),
            (1, vec![byte; 48]),
            (2, vec![byte; 48]),
            (8, vec![0; 48]),
        ]
        .into_iter()
        .collect();
        OwnImage::of_pcrs(&pcrs).unwrap()
    }

    fn log(genesis: &OwnImage) -> LogIdentity {
        LogIdentity {
            genesis_hash: Hash::from([1; 32]),
            genesis_image: genesis.digest,
        }
    }

    fn sealed(log: &LogIdentity, image: &OwnImage) -> SealedLogKey {
        ea_kms::seal_log_key(
            &[3; 32],
            &[4; 32],
            &log.binding(image),
            "arn:k".into(),
            vec![5; 9],
        )
        .unwrap()
    }

    #[test]
    fn each_image_opens_its_own_entry_and_a_new_one_makes_its_own() {
        let (a, b) = (image(0xaa), image(0xbb));
        let log = log(&a);
        let mut set = SealedKeySet::new();
        set.insert(a.digest, sealed(&log, &a));
        let stored = StoredLogKeys::Set(set.clone());
        assert!(matches!(
            plan(Some(&stored), &a, &log, Some(1)),
            Plan::Unseal(_)
        ));
        // b has never started: a new key of its own, never a's.
        assert_eq!(plan(Some(&stored), &b, &log, None), Plan::New);
        // b started at 40 and its entry is gone: refused, not a new key.
        assert_eq!(plan(Some(&stored), &b, &log, Some(40)), Plan::Missing(40));
        // An entry the parent filed under b's digest opens only if it is b's (the seal
        // checks the binding); a legacy blob filed there never opens for b.
        let legacy =
            seal_legacy_log_key_for_tests(&[3; 32], &[4; 32], &[1; 32], "arn:k".into(), vec![5; 9])
                .unwrap();
        let mut swapped = set;
        swapped.insert(b.digest, legacy.clone());
        assert_eq!(
            plan(Some(&StoredLogKeys::Set(swapped)), &b, &log, Some(40)),
            Plan::Missing(40)
        );
        // A store from before per-image keys: the genesis image opens its key, b makes its own.
        let old = StoredLogKeys::Legacy(legacy.clone());
        assert_eq!(
            plan(Some(&old), &a, &log, Some(1)),
            Plan::UnsealLegacy(legacy)
        );
        assert_eq!(plan(Some(&old), &b, &log, None), Plan::New);
        assert_eq!(plan(None, &a, &log, Some(1)), Plan::Missing(1));
    }
}
