//! Checkpoint signatures, verified in batches.
//!
//! A log holds one checkpoint per committed batch of records, so with small batches the
//! checkpoint signatures cost about as much as the client signatures. ed25519-dalek's batch
//! verification checks 64 of them for roughly the price of 23 (measured on this project's
//! machine: 17 us each against 48 us with ring). It is deterministic: its random
//! coefficients come from a transcript of the batch, not from an RNG.
//!
//! What the batch checks. ed25519-dalek's `verify_batch` is *not* cofactored: with
//! `P_i = [S_i]B - R_i - [k_i]A_i` (each `S_i` canonical, `k_i` hashed over `R_i`'s and the
//! key's bytes as given, as ring does) it checks `sum z_i P_i = 0`, the identity itself, for
//! 128-bit coefficients `z_i` derived from a transcript of the whole batch. So:
//! - every signature ring accepts (`P_i = 0`, `R_i` canonical) passes any batch;
//! - if a batch passes, then except with a chance of about 2^-128 every `P_i` is a point of
//!   small order, i.e. each signature satisfies the *cofactored* equation
//!   `[8][S]B = [8]R + [8][k]A`; it need not satisfy ring's (cofactorless, `R` compared as
//!   canonical bytes), nor dalek's own single `verify`: a small-order component in `R` or
//!   `A`, or a non-canonical `R`, can pass a batch whose coefficient for it happens to
//!   cancel it, and fail with other neighbours or alone. Only the key's holder (here the
//!   attested enclave) can make such a signature.
//!
//! Hence: a batch that passes is accepted whole (the difference above is the only one); a
//! batch that fails, and a lone signature, are checked one signature at a time with ring,
//! the rule single verification follows everywhere else (receipts, `open_checkpoint`), and
//! the first that ring refuses is named. Such a one exists: a failing batch has some `P_i != 0`, which ring refuses. (A
//! batch of one would not do: its verdict on a crafted signature depends on its own
//! coefficient, and could clear every member of a batch that failed.)

use ed25519_dalek::{Signature, VerifyingKey};

use super::{LogError, LogErrorKind};
use crate::note::NoteError;

/// How many signatures are verified together.
const BATCH: usize = 64;

/// A signature to check later, with what to report if it fails.
struct Pending {
    checkpoint: usize,
    size: u64,
    batch_start: u64,
    name: String,
    key_id: u32,
    message: Vec<u8>,
    signature: Signature,
    key: VerifyingKey,
}

/// Checkpoint signatures waiting to be verified.
#[derive(Default)]
pub(crate) struct SignatureBatch {
    pending: Vec<Pending>,
}

/// Where a signature comes from: the checkpoint, for the error report.
pub(crate) struct Origin<'a> {
    pub(crate) checkpoint: usize,
    pub(crate) size: u64,
    pub(crate) batch_start: u64,
    pub(crate) name: &'a str,
    pub(crate) key_id: u32,
}

impl SignatureBatch {
    /// Queues a signature; verifies the batch when it is full.
    pub(crate) fn push(
        &mut self,
        origin: Origin<'_>,
        message: &[u8],
        signature: &[u8],
        key: VerifyingKey,
    ) -> Result<(), LogError> {
        let Ok(signature) = Signature::from_slice(signature) else {
            return Err(bad_signature(&origin));
        };
        self.pending.push(Pending {
            checkpoint: origin.checkpoint,
            size: origin.size,
            batch_start: origin.batch_start,
            name: origin.name.to_owned(),
            key_id: origin.key_id,
            message: message.to_vec(),
            signature,
            key,
        });
        if self.pending.len() >= BATCH {
            self.flush()
        } else {
            Ok(())
        }
    }

    /// Verifies everything queued; on failure names the first checkpoint that fails.
    pub(crate) fn flush(&mut self) -> Result<(), LogError> {
        let pending = std::mem::take(&mut self.pending);
        let Some(first) = pending.first() else {
            return Ok(());
        };
        // A lone signature is not batched: ring's verdict, as for a failed batch.
        let batched = pending.len() > 1;
        if batched && verify(&pending) {
            return Ok(());
        }
        let failing = match pending.iter().find(|item| !ring_accepts(item)) {
            Some(failing) => failing,
            None if !batched => return Ok(()),
            // INVARIANT: a batch that fails has a member ring refuses (see the module
            // documentation); were the libraries ever to disagree, refusing (naming the
            // first) is the safe answer.
            None => first,
        };
        Err(bad_signature(&Origin {
            checkpoint: failing.checkpoint,
            size: failing.size,
            batch_start: failing.batch_start,
            name: &failing.name,
            key_id: failing.key_id,
        }))
    }
}

/// ring's verdict on one signature: the rule single verification follows everywhere else
/// (`crate::checkpoint::open_checkpoint`, clients, the enclave's own signing library).
fn ring_accepts(item: &Pending) -> bool {
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, item.key.as_bytes())
        .verify(&item.message, &item.signature.to_bytes())
        .is_ok()
}

/// Whether the batch equation holds for all of `items` (see the module documentation for
/// what that does and does not imply).
fn verify(items: &[Pending]) -> bool {
    let messages: Vec<&[u8]> = items.iter().map(|i| i.message.as_slice()).collect();
    let signatures: Vec<Signature> = items.iter().map(|i| i.signature).collect();
    let keys: Vec<VerifyingKey> = items.iter().map(|i| i.key).collect();
    ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
}

pub(crate) fn bad_signature(origin: &Origin<'_>) -> LogError {
    LogError::at(
        origin.batch_start,
        LogErrorKind::CheckpointSignature {
            checkpoint: origin.checkpoint,
            size: origin.size,
            source: NoteError::BadSignature {
                name: origin.name.to_owned(),
                key_id: origin.key_id,
            },
        },
    )
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        reason = "test"
    )]

    use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
    use curve25519_dalek::edwards::EdwardsPoint;
    use curve25519_dalek::scalar::Scalar;
    use curve25519_dalek::traits::IsIdentity as _;

    use super::*;

    /// A key whose secret scalar the test holds, so that it can sign with any `R`.
    struct Holder {
        a: Scalar,
        public: [u8; 32],
    }

    fn holder() -> Holder {
        let a = Scalar::from_bytes_mod_order([0x5a; 32]);
        let public = (ED25519_BASEPOINT_POINT * a).compress().to_bytes();
        Holder { a, public }
    }

    impl Holder {
        fn key(&self) -> VerifyingKey {
            VerifyingKey::from_bytes(&self.public).unwrap()
        }

        /// `R = [r]B + torsion`, `S = r + k a`: valid when `torsion` is the identity;
        /// otherwise `[S]B - R - [k]A = -torsion`, which ring refuses and a batch may not
        /// notice, depending on its coefficient.
        fn sign(&self, message: &[u8], nonce: u64, torsion: EdwardsPoint) -> [u8; 64] {
            let r = Scalar::from_bytes_mod_order([0x33; 32]) + Scalar::from(nonce);
            let big_r = (ED25519_BASEPOINT_POINT * r + torsion)
                .compress()
                .to_bytes();
            let mut digest = ring::digest::Context::new(&ring::digest::SHA512);
            digest.update(&big_r);
            digest.update(&self.public);
            digest.update(message);
            let k =
                Scalar::from_bytes_mod_order_wide(&digest.finish().as_ref().try_into().unwrap());
            let s = r + k * self.a;
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&big_r);
            sig[32..].copy_from_slice(s.as_bytes());
            sig
        }
    }

    fn ring_accepts(holder: &Holder, message: &[u8], sig: &[u8]) -> bool {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, holder.public)
            .verify(message, sig)
            .is_ok()
    }

    fn dalek_batch(holder: &Holder, items: &[(&[u8], [u8; 64])]) -> bool {
        let messages: Vec<&[u8]> = items.iter().map(|(m, _)| *m).collect();
        let signatures: Vec<Signature> = items
            .iter()
            .map(|(_, s)| Signature::from_bytes(s))
            .collect();
        let keys = vec![holder.key(); items.len()];
        ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
    }

    /// The point of order 2.
    fn order_two() -> EdwardsPoint {
        let t = EIGHT_TORSION[4];
        assert!(!t.is_identity() && (t + t).is_identity());
        t
    }

    /// A signature with a torsion component in `R` for which `wanted` holds.
    fn crafted(holder: &Holder, message: &[u8], wanted: impl Fn(&[u8; 64]) -> bool) -> [u8; 64] {
        (1..1000)
            .map(|nonce| holder.sign(message, nonce, order_two()))
            .find(|sig| wanted(sig))
            .expect("each try holds with a chance of about 1/4")
    }

    fn push(batch: &mut SignatureBatch, holder: &Holder, checkpoint: usize, m: &[u8], s: &[u8]) {
        let origin = Origin {
            checkpoint,
            size: checkpoint as u64 + 1,
            batch_start: checkpoint as u64,
            name: "test",
            key_id: 7,
        };
        batch.push(origin, m, s, holder.key()).unwrap();
    }

    fn failing_checkpoint(result: Result<(), LogError>) -> usize {
        match result.unwrap_err().kind {
            LogErrorKind::CheckpointSignature { checkpoint, .. } => checkpoint,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failed_batch_names_the_signature_ring_refuses_even_if_it_passes_alone() {
        let holder = holder();
        let (m1, m2): (&[u8], &[u8]) = (b"checkpoint 1", b"checkpoint 2");
        let good = holder.sign(m1, 1, EdwardsPoint::default());
        assert!(ring_accepts(&holder, m1, &good));
        // Fails in the pair, passes in a batch of its own (a coefficient that kills the
        // order-2 component), and ring refuses it.
        let bad = crafted(&holder, m2, |sig| {
            !dalek_batch(&holder, &[(m1, good), (m2, *sig)]) && dalek_batch(&holder, &[(m2, *sig)])
        });
        assert!(!ring_accepts(&holder, m2, &bad));
        let mut batch = SignatureBatch::default();
        push(&mut batch, &holder, 0, m1, &good);
        push(&mut batch, &holder, 1, m2, &bad);
        assert_eq!(failing_checkpoint(batch.flush()), 1);
    }

    #[test]
    fn a_lone_signature_gets_rings_verdict() {
        let holder = holder();
        let m: &[u8] = b"checkpoint";
        let bad = crafted(&holder, m, |sig| dalek_batch(&holder, &[(m, *sig)]));
        assert!(!ring_accepts(&holder, m, &bad));
        let mut batch = SignatureBatch::default();
        push(&mut batch, &holder, 0, m, &bad);
        assert_eq!(failing_checkpoint(batch.flush()), 0);
        // And a valid one passes alone.
        let good = holder.sign(m, 2, EdwardsPoint::default());
        push(&mut batch, &holder, 0, m, &good);
        assert!(batch.flush().is_ok());
    }
}
