//! Instants: unix milliseconds, written as RFC 3339 in JSON and as an integer in CBOR.
//!
//! The engine never reads a clock; every instant it uses is an argument.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// An instant in unix milliseconds (UTC), between years 0000 and 9999 so that it always has
/// an RFC 3339 spelling.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// `0000-01-01T00:00:00Z`.
const MIN_MILLIS: i64 = -62_167_219_200_000;
/// `9999-12-31T23:59:59.999Z`.
const MAX_MILLIS: i64 = 253_402_300_799_999;

/// Why a value is not a [`Timestamp`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Not RFC 3339 text.
    #[error("{0:?} is not an RFC 3339 time (e.g. 2025-01-31T12:00:00Z)")]
    NotRfc3339(String),
    /// Finer than a millisecond: refused rather than silently rounded.
    #[error("{0:?} is more precise than a millisecond")]
    SubMillisecond(String),
    /// Before year 0 or after year 9999.
    #[error("{0} milliseconds is outside years 0000 to 9999")]
    OutOfRange(i128),
}

impl Timestamp {
    /// The unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// An instant from unix milliseconds.
    pub fn from_unix_millis(millis: i64) -> Result<Self, TimestampError> {
        if (MIN_MILLIS..=MAX_MILLIS).contains(&millis) {
            Ok(Timestamp(millis))
        } else {
            Err(TimestampError::OutOfRange(i128::from(millis)))
        }
    }

    /// Unix milliseconds.
    pub const fn unix_millis(self) -> i64 {
        self.0
    }

    /// Parses RFC 3339 text with any offset; the result is the same instant in UTC.
    pub fn parse_rfc3339(text: &str) -> Result<Self, TimestampError> {
        let parsed = OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|_| TimestampError::NotRfc3339(shorten(text)))?;
        let nanos = parsed.unix_timestamp_nanos();
        if nanos % 1_000_000 != 0 {
            return Err(TimestampError::SubMillisecond(shorten(text)));
        }
        let millis = nanos.div_euclid(1_000_000);
        let millis = i64::try_from(millis).map_err(|_| TimestampError::OutOfRange(millis))?;
        Self::from_unix_millis(millis)
    }

    /// `self + millis`, or `None` outside the supported range.
    pub fn checked_add_millis(self, millis: i64) -> Option<Self> {
        self.0
            .checked_add(millis)
            .and_then(|sum| Self::from_unix_millis(sum).ok())
    }

    /// The canonical RFC 3339 spelling: UTC, `Z`, milliseconds only when not zero.
    pub fn to_rfc3339(self) -> String {
        let seconds = self.0.div_euclid(1000);
        let millis = self.0.rem_euclid(1000);
        match OffsetDateTime::from_unix_timestamp(seconds) {
            Ok(t) => {
                let fraction = if millis == 0 {
                    String::new()
                } else {
                    format!(".{millis:03}")
                };
                format!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{fraction}Z",
                    t.year(),
                    u8::from(t.month()),
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second()
                )
            }
            // INVARIANT: the constructor keeps the value inside years 0000..=9999, which
            // `time` always represents; this arm exists only to avoid a panic path.
            Err(_) => format!("@{}ms", self.0),
        }
    }
}

fn shorten(text: &str) -> String {
    text.chars().take(64).collect()
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.to_rfc3339())
    }
}

impl std::str::FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse_rfc3339(text)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_rfc3339())
        } else {
            serializer.serialize_i64(self.0)
        }
    }
}

struct TimestampVisitor;

impl Visitor<'_> for TimestampVisitor {
    type Value = Timestamp;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an RFC 3339 time or unix milliseconds")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Timestamp, E> {
        Timestamp::parse_rfc3339(text).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, millis: i64) -> Result<Timestamp, E> {
        Timestamp::from_unix_millis(millis).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, millis: u64) -> Result<Timestamp, E> {
        let millis = i64::try_from(millis)
            .map_err(|_| E::custom(TimestampError::OutOfRange(i128::from(millis))))?;
        self.visit_i64(millis)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Buffered content (serde's untagged/flatten machinery) claims to be human-readable
        // whatever the format, so the human-readable path accepts both spellings.
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(TimestampVisitor)
        } else {
            deserializer.deserialize_i64(TimestampVisitor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_and_normalizes_offsets() {
        let t = Timestamp::parse_rfc3339("2025-03-01T12:30:00+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2025-03-01T10:30:00Z");
        let t = Timestamp::parse_rfc3339("2025-03-01T10:30:00.250Z").unwrap();
        assert_eq!(t.unix_millis() % 1000, 250);
        assert_eq!(t.to_rfc3339(), "2025-03-01T10:30:00.250Z");
        assert_eq!(Timestamp::EPOCH.to_rfc3339(), "1970-01-01T00:00:00Z");
        let before = Timestamp::from_unix_millis(-1).unwrap();
        assert_eq!(before.to_rfc3339(), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn refuses_bad_text_precision_and_range() {
        assert!(matches!(
            Timestamp::parse_rfc3339("2025-13-01T00:00:00Z"),
            Err(TimestampError::NotRfc3339(_))
        ));
        assert!(matches!(
            Timestamp::parse_rfc3339("yesterday"),
            Err(TimestampError::NotRfc3339(_))
        ));
        assert!(matches!(
            Timestamp::parse_rfc3339("2025-01-01T00:00:00.0001Z"),
            Err(TimestampError::SubMillisecond(_))
        ));
        assert!(Timestamp::from_unix_millis(MAX_MILLIS + 1).is_err());
        assert!(Timestamp::from_unix_millis(MIN_MILLIS - 1).is_err());
        assert_eq!(
            Timestamp::from_unix_millis(MAX_MILLIS)
                .unwrap()
                .to_rfc3339(),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(
            Timestamp::from_unix_millis(MIN_MILLIS)
                .unwrap()
                .to_rfc3339(),
            "0000-01-01T00:00:00Z"
        );
    }

    #[test]
    fn json_is_text_and_cbor_is_an_integer() {
        let t = Timestamp::from_unix_millis(1_700_000_000_123).unwrap();
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2023-11-14T22:13:20.123Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        let mut cbor = Vec::new();
        ciborium::into_writer(&t, &mut cbor).unwrap();
        let back: Timestamp = ciborium::from_reader(cbor.as_slice()).unwrap();
        assert_eq!(back, t);
        let as_int: i64 = ciborium::from_reader(cbor.as_slice()).unwrap();
        assert_eq!(as_int, 1_700_000_000_123);
    }
}
