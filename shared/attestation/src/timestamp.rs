//! Points in time as the NSM writes them: milliseconds since the Unix epoch, UTC.

use std::fmt;

/// Milliseconds since the Unix epoch (UTC). Displays as RFC 3339 with milliseconds, e.g.
/// `2022-10-13T08:58:02.136Z`, so error messages are readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    /// Seconds since the epoch, rounded down.
    pub fn as_secs(self) -> u64 {
        self.0 / 1000
    }
}

impl fmt::Display for UnixMillis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = i128::from(self.0) * 1_000_000;
        let formatted = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            });
        match formatted {
            Some(text) => f.write_str(&text),
            // Beyond year 9999: print the raw number rather than fail.
            None => write!(f, "{} ms since the Unix epoch", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_rfc3339_with_millis() {
        assert_eq!(
            UnixMillis(1_665_651_482_136).to_string(),
            "2022-10-13T08:58:02.136Z"
        );
        assert_eq!(UnixMillis(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(
            UnixMillis(u64::MAX).to_string(),
            "18446744073709551615 ms since the Unix epoch"
        );
    }
}
