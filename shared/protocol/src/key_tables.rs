//! Faster checks of Ed25519 request signatures by keys that sign often.
//!
//! Verifying an Ed25519 signature means computing `[S]B - [k]A` and comparing its encoding
//! with `R`. ring (the rule requests are accepted by, [`PublicKey::verify`]) computes it as
//! a double-scalar multiplication: about 250 point doublings, most of its 45 us here. For
//! the base point `B`, tables of precomputed multiples make a multiplication about 64
//! additions and no doublings; this module builds the same kind of table for `-A`, once per
//! key, and then checks the same equation with two table multiplications (about 30 us).
//!
//! The verdict is ring's, for every input: `S` must be canonical (below the group order),
//! `k` is SHA-512 of `R`, the key's bytes as given and the signed message, reduced modulo
//! the order, and the comparison is of `R`'s bytes with the canonical encoding of the
//! result. A key that does not decode to a point gets no table and goes to ring. The tests
//! compare both on valid, mutated and hostile signatures and keys.
//!
//! Hostile keys (of small order, non-canonically encoded, or no point at all) can no longer
//! be registered: `ea_policy::PublicKey::check_encoding` refuses them in commands, state
//! files and the genesis. Verification still gives ring's verdict for every key, so that a
//! directory built by an older build verifies exactly as it did.
//!
//! A table costs about 1 ms to build and 30 KiB to keep, so a key gets one only once it
//! has signed [`KeyTables::DEFAULT_PROMOTE_AFTER`] requests, and at most
//! [`KeyTables::DEFAULT_CAPACITY`] keys keep one (the least recently used makes way).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use curve25519_dalek::constants::ED25519_BASEPOINT_TABLE;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsBasepointTable};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::BasepointTable as _;

use crate::signed::{PublicKey, SignatureAlgorithm, REQUEST_SIGNING_DOMAIN};

const KEY_LEN: usize = 32;

/// Ed25519 keys with precomputed tables, and how often the others have signed.
pub struct KeyTables {
    capacity: usize,
    promote_after: u32,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    tables: HashMap<[u8; KEY_LEN], Tabled>,
    /// Signatures seen per key without a table; cleared when it grows past its bound, so
    /// a stream of one-off keys cannot grow it.
    uses: HashMap<[u8; KEY_LEN], u32>,
    /// A logical clock for least-recently-used eviction.
    clock: u64,
}

struct Tabled {
    key: Arc<TabledKey>,
    last_used: u64,
}

/// One key and the table of multiples of its negation.
struct TabledKey {
    bytes: [u8; KEY_LEN],
    minus_a: EdwardsBasepointTable,
}

impl TabledKey {
    fn new(bytes: [u8; KEY_LEN]) -> Option<TabledKey> {
        let a = CompressedEdwardsY(bytes).decompress()?;
        Some(TabledKey {
            bytes,
            minus_a: EdwardsBasepointTable::create(&-a),
        })
    }

    /// ring's equation: `encode([S]B + [k](-A)) == R`, with `S` canonical.
    fn verify(&self, body: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = <&[u8; 64]>::try_from(sig) else {
            return false;
        };
        let (r, s) = sig.split_at(32);
        let Ok(s) = <[u8; 32]>::try_from(s) else {
            return false;
        };
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s)) else {
            return false;
        };
        let mut digest = ring::digest::Context::new(&ring::digest::SHA512);
        digest.update(r);
        digest.update(&self.bytes);
        digest.update(REQUEST_SIGNING_DOMAIN);
        digest.update(body);
        let Ok(wide) = <[u8; 64]>::try_from(digest.finish().as_ref()) else {
            return false;
        };
        let k = Scalar::from_bytes_mod_order_wide(&wide);
        let check = ED25519_BASEPOINT_TABLE.mul_base(&s) + self.minus_a.mul_base(&k);
        check.compress().as_bytes() == r
    }
}

impl Default for KeyTables {
    fn default() -> Self {
        KeyTables::new(Self::DEFAULT_CAPACITY, Self::DEFAULT_PROMOTE_AFTER)
    }
}

impl KeyTables {
    /// Keys that keep a table by default: about 7.5 MiB.
    pub const DEFAULT_CAPACITY: usize = 256;
    /// Signatures a key makes before it gets a table, by default: a table costs about as
    /// much as 25 ring verifications and saves about a third of one on each use.
    pub const DEFAULT_PROMOTE_AFTER: u32 = 64;
    /// The most keys whose uses are counted at once.
    const MAX_COUNTED: usize = 16_384;

    /// At most `capacity` tables, each built on a key's `promote_after`-th signature (0 and
    /// 1 both mean the first).
    pub fn new(capacity: usize, promote_after: u32) -> KeyTables {
        KeyTables {
            capacity,
            promote_after,
            inner: Mutex::default(),
        }
    }

    /// Whether `sig` is `key`'s signature over the request signing domain and `body`:
    /// exactly [`PublicKey::verify`]'s verdict.
    pub fn verify(&self, key: &PublicKey, body: &[u8], sig: &[u8]) -> bool {
        match self.table(key) {
            Some(tabled) => tabled.verify(body, sig),
            None => key.verify(body, sig),
        }
    }

    /// Keys holding a table now.
    pub fn len(&self) -> usize {
        self.lock().tables.len()
    }

    /// Whether no key holds a table.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The key's table: the one it has, or a new one if this use earns it.
    fn table(&self, key: &PublicKey) -> Option<Arc<TabledKey>> {
        if key.alg != SignatureAlgorithm::Ed25519 || self.capacity == 0 {
            return None;
        }
        let bytes = <[u8; KEY_LEN]>::try_from(key.bytes.as_slice()).ok()?;
        {
            let mut inner = self.lock();
            inner.clock += 1;
            let now = inner.clock;
            if let Some(tabled) = inner.tables.get_mut(&bytes) {
                tabled.last_used = now;
                return Some(tabled.key.clone());
            }
            if inner.uses.len() >= Self::MAX_COUNTED && !inner.uses.contains_key(&bytes) {
                inner.uses.clear();
            }
            let uses = inner.uses.entry(bytes).or_insert(0);
            *uses += 1;
            if *uses < self.promote_after {
                return None;
            }
            inner.uses.remove(&bytes);
        }
        // Built outside the lock: it takes about a millisecond. Two threads may build the
        // same table at once; the second one replaces the first, which is harmless.
        let built = Arc::new(TabledKey::new(bytes)?);
        let mut inner = self.lock();
        if inner.tables.len() >= self.capacity {
            let oldest = inner
                .tables
                .iter()
                .min_by_key(|(_, tabled)| tabled.last_used)
                .map(|(bytes, _)| *bytes);
            if let Some(oldest) = oldest {
                inner.tables.remove(&oldest);
            }
        }
        let now = inner.clock;
        inner.tables.insert(
            bytes,
            Tabled {
                key: built.clone(),
                last_used: now,
            },
        );
        Some(built)
    }
}

impl std::fmt::Debug for KeyTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyTables")
            .field("capacity", &self.capacity)
            .field("promote_after", &self.promote_after)
            .field("tables", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests;
