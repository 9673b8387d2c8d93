//! Counting fresh cosignatures from witness answers, against a clock the caller passes in.
//!
//! This is the check of an enclave restarted on a log that names a witness set
//! (docs/audit-log.md section 9, "Starting on a witnessed log"): it asks the untrusted parent
//! to submit the head's checkpoint to every witness now and relay their raw answers, and
//! trusts none of them. A witness counts only if a line of its 200 answer is a cosignature by
//! a key of the witness set over exactly the checkpoint text asked for, timestamped within
//! [`Freshness`] of the caller's own clock. A witness that cosigned a larger or different
//! tree answers 409 or 422 instead, so a rolled-back or forked log cannot gather the
//! threshold; a cosignature recorded earlier and replayed by the parent is too old to count.

use std::collections::BTreeMap;
use std::fmt;

use super::CosignatureVerifier;

/// Oldest a cosignature may be, in seconds before the caller's clock, to count as fresh: long
/// enough for a slow witness round trip and a retry, short enough that an answer recorded
/// before a rollback is useless soon after.
pub const MAX_COSIGNATURE_AGE_SECS: u64 = 600;

/// Furthest a cosignature's timestamp may be ahead of the caller's clock (clock skew).
pub const MAX_COSIGNATURE_AHEAD_SECS: u64 = 60;

/// How fresh a cosignature must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Seconds it may be older than now.
    pub max_age_secs: u64,
    /// Seconds it may be ahead of now.
    pub max_ahead_secs: u64,
}

impl Default for Freshness {
    fn default() -> Self {
        Freshness {
            max_age_secs: MAX_COSIGNATURE_AGE_SECS,
            max_ahead_secs: MAX_COSIGNATURE_AHEAD_SECS,
        }
    }
}

/// One witness's raw answer, as relayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessAnswer {
    /// Where it was asked (for messages only: the URL is the parent's to choose).
    pub source: String,
    /// The HTTP status, 0 if no answer came.
    pub status: u16,
    /// The body (cosignature lines on 200; the witness's size on 409).
    pub body: String,
}

/// Why an answer, or a line of it, did not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotCounted {
    /// Not a 200: the witness did not cosign (409/422: it holds another tree).
    NotCosigned {
        /// Where it was asked.
        source: String,
        /// The status.
        status: u16,
        /// The body's first line, for the message.
        detail: String,
    },
    /// A 200 whose lines hold no cosignature by a key of the set over the checkpoint.
    NoValidCosignature {
        /// Where it was asked.
        source: String,
    },
    /// A valid cosignature, but too old or too far ahead.
    NotFresh {
        /// The witness.
        witness: String,
        /// Its timestamp.
        timestamp: u64,
        /// The caller's clock.
        now: u64,
    },
}

impl fmt::Display for NotCounted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotCounted::NotCosigned {
                source,
                status: 0,
                detail,
            } => write!(f, "{source}: no answer ({detail})"),
            NotCounted::NotCosigned {
                source,
                status,
                detail,
            } => write!(f, "{source}: {status} {detail}"),
            NotCounted::NoValidCosignature { source } => write!(
                f,
                "{source}: no cosignature by a witness of the set over this checkpoint"
            ),
            NotCounted::NotFresh {
                witness,
                timestamp,
                now,
            } => write!(
                f,
                "{witness}: cosigned at {timestamp}, not within the freshness bound of now \
                 ({now})"
            ),
        }
    }
}

/// The witnesses whose fresh cosignatures counted, and why the rest did not.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FreshTally {
    /// Witness name → timestamp of its latest fresh valid cosignature.
    pub fresh: BTreeMap<String, u64>,
    /// What did not count, in answer order.
    pub not_counted: Vec<NotCounted>,
}

impl FreshTally {
    /// Whether at least `threshold` distinct witnesses counted.
    pub fn meets(&self, threshold: usize) -> bool {
        self.fresh.len() >= threshold
    }

    /// A sentence for a phase detail: `1 of 2 witnesses cosigned ...; w2: 409 ...`.
    pub fn summary(&self, threshold: usize) -> String {
        let mut text = format!(
            "{} of the {threshold} required witness cosignatures are valid and fresh",
            self.fresh.len()
        );
        for reason in &self.not_counted {
            text.push_str("; ");
            text.push_str(&reason.to_string());
        }
        text
    }
}

/// Counts the distinct witnesses of `witnesses` that cosigned exactly `text` (a checkpoint's
/// note text, final newline included) within `freshness` of `now` (POSIX seconds), from the
/// relayed `answers`. Lines by unknown keys and lines that do not verify are ignored (the
/// relay could add any); witnesses are counted once, by name.
pub fn count_fresh_cosignatures(
    text: &str,
    answers: &[WitnessAnswer],
    witnesses: &[CosignatureVerifier],
    now: u64,
    freshness: Freshness,
) -> FreshTally {
    let mut tally = FreshTally::default();
    let oldest = now.saturating_sub(freshness.max_age_secs);
    let newest = now.saturating_add(freshness.max_ahead_secs);
    for answer in answers {
        if answer.status != 200 {
            tally.not_counted.push(NotCounted::NotCosigned {
                source: answer.source.clone(),
                status: answer.status,
                detail: answer
                    .body
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect(),
            });
            continue;
        }
        let mut any = false;
        for line in answer.body.lines() {
            for witness in witnesses {
                let Ok(timestamp) = witness.verify_line(text, line) else {
                    continue;
                };
                any = true;
                if timestamp < oldest || timestamp > newest {
                    tally.not_counted.push(NotCounted::NotFresh {
                        witness: witness.name().to_owned(),
                        timestamp,
                        now,
                    });
                    continue;
                }
                let entry = tally
                    .fresh
                    .entry(witness.name().to_owned())
                    .or_insert(timestamp);
                *entry = (*entry).max(timestamp);
            }
        }
        if !any {
            tally.not_counted.push(NotCounted::NoValidCosignature {
                source: answer.source.clone(),
            });
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test")]

    use super::*;
    use crate::cosignature::CosignatureSigner;

    const TEXT: &str = "example.com/log\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    const OTHER: &str = "example.com/log\n6\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    const NOW: u64 = 1_800_000_000;

    fn witness(n: u8) -> CosignatureSigner {
        CosignatureSigner::from_seed(&format!("w{n}"), &[n; 32]).unwrap()
    }

    fn ok(source: &str, body: String) -> WitnessAnswer {
        WitnessAnswer {
            source: source.into(),
            status: 200,
            body,
        }
    }

    fn set() -> Vec<CosignatureVerifier> {
        vec![witness(1).verifier().clone(), witness(2).verifier().clone()]
    }

    #[test]
    fn fresh_valid_cosignatures_of_distinct_witnesses_count() {
        let answers = [
            ok("a", witness(1).sign(NOW - 5, TEXT).unwrap()),
            ok("b", witness(2).sign(NOW + 30, TEXT).unwrap()),
            // The same witness through another URL counts once.
            ok("c", witness(1).sign(NOW, TEXT).unwrap()),
        ];
        let tally = count_fresh_cosignatures(TEXT, &answers, &set(), NOW, Freshness::default());
        assert!(tally.meets(2), "{}", tally.summary(2));
        assert_eq!(tally.fresh.len(), 2);
        assert_eq!(tally.fresh["w1"], NOW);
        assert!(!tally.meets(3));
    }

    #[test]
    fn refusals_stale_future_foreign_and_other_text_do_not_count() {
        let answers = [
            WitnessAnswer {
                source: "a".into(),
                status: 409,
                body: "7\n".into(),
            },
            ok("b", witness(2).sign(NOW - 601, TEXT).unwrap()),
            ok("c", witness(2).sign(NOW + 61, TEXT).unwrap()),
            ok("d", witness(3).sign(NOW, TEXT).unwrap()),
            ok("e", witness(1).sign(NOW, OTHER).unwrap()),
        ];
        let tally = count_fresh_cosignatures(TEXT, &answers, &set(), NOW, Freshness::default());
        assert!(tally.fresh.is_empty(), "{tally:?}");
        assert!(!tally.meets(1));
        let summary = tally.summary(2);
        assert!(summary.starts_with("0 of the 2 required"), "{summary}");
        assert!(summary.contains("a: 409 7"), "{summary}");
        assert!(summary.contains("w2: cosigned at"), "{summary}");
        assert!(
            summary.contains("d: no cosignature by a witness of the set"),
            "{summary}"
        );
        assert!(
            summary.contains("e: no cosignature by a witness of the set"),
            "{summary}"
        );
        assert_eq!(tally.not_counted.len(), 5);
    }
}
