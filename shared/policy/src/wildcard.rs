//! Wildcard patterns for operations and host names: `*` matches any run of characters,
//! `/` and `.` included; everything else matches itself, ignoring ASCII case.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest pattern accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 256;

/// A compiled wildcard pattern; it keeps the text it was written as.
#[derive(Clone)]
pub struct Pattern {
    text: Box<str>,
    shape: Shape,
}

/// The pattern split at its stars, lower-cased; most patterns need no search at all.
#[derive(Clone)]
enum Shape {
    /// No star.
    Exact(Box<str>),
    /// `abc*`.
    Prefix(Box<str>),
    /// `*abc`.
    Suffix(Box<str>),
    /// Everything else: `first*middle*...*last`.
    General {
        first: Box<str>,
        middle: Box<[Box<str>]>,
        last: Box<str>,
    },
}

/// Why a string is not a [`Pattern`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a valid pattern: {problem}")]
pub struct PatternError {
    /// The offending text (at most 64 characters of it).
    pub input: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl Pattern {
    /// Checks and compiles a pattern: printable ASCII without spaces, at most
    /// [`MAX_PATTERN_LEN`] bytes.
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let fail = |problem| PatternError {
            input: text.chars().take(64).collect(),
            problem,
        };
        if text.is_empty() {
            return Err(fail("it is empty"));
        }
        if text.len() > MAX_PATTERN_LEN {
            return Err(fail("it is longer than 256 bytes"));
        }
        if !text.chars().all(|c| c.is_ascii_graphic()) {
            return Err(fail("only printable ASCII without spaces is allowed"));
        }
        Ok(Pattern::compile(text))
    }

    /// Compiles text known to be valid (the built-in tables).
    pub(crate) fn compile(text: &str) -> Pattern {
        let lower = text.to_ascii_lowercase();
        let mut parts: Vec<Box<str>> = lower.split('*').map(Box::from).collect();
        let shape = match parts.len() {
            0 | 1 => Shape::Exact(lower.into()),
            2 if parts.first().is_some_and(|p| p.is_empty()) => {
                Shape::Suffix(parts.pop().unwrap_or_default())
            }
            2 if parts.last().is_some_and(|p| p.is_empty()) => Shape::Prefix(parts.swap_remove(0)),
            _ => {
                let last = parts.pop().unwrap_or_default();
                let first = if parts.is_empty() {
                    Box::from("")
                } else {
                    parts.remove(0)
                };
                parts.retain(|p| !p.is_empty());
                Shape::General {
                    first,
                    middle: parts.into_boxed_slice(),
                    last,
                }
            }
        };
        Pattern {
            text: text.into(),
            shape,
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern has a `*`.
    pub fn has_wildcard(&self) -> bool {
        !matches!(self.shape, Shape::Exact(_))
    }

    /// Whether `lower`, which the caller has already lower-cased, matches the pattern.
    pub fn matches_lowercase(&self, lower: &str) -> bool {
        match &self.shape {
            Shape::Exact(exact) => **exact == *lower,
            Shape::Prefix(prefix) => lower.starts_with(&**prefix),
            Shape::Suffix(suffix) => lower.ends_with(&**suffix),
            Shape::General {
                first,
                middle,
                last,
            } => {
                let Some(rest) = lower.strip_prefix(&**first) else {
                    return false;
                };
                let Some(mut rest) = rest.strip_suffix(&**last) else {
                    return false;
                };
                // `first` and `last` must not overlap: the suffix is cut from what remains
                // after the prefix. Leftmost matching of the middle parts is then exact for
                // star-only patterns.
                for part in middle.iter() {
                    match rest.find(&**part) {
                        Some(at) => rest = rest.get(at + part.len()..).unwrap_or(""),
                        None => return false,
                    }
                }
                true
            }
        }
    }

    /// Whether `text` matches, ignoring ASCII case.
    pub fn matches(&self, text: &str) -> bool {
        self.matches_lowercase(&text.to_ascii_lowercase())
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Pattern {}

impl PartialOrd for Pattern {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pattern {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", &*self.text)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Pattern::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Pattern::parse(pattern).unwrap().matches(text)
    }

    #[test]
    fn star_matches_any_run_including_slashes() {
        assert!(m("*", "Microsoft.Mission/virtualEnclaves/write"));
        assert!(m("*", ""));
        assert!(m(
            "*/read",
            "Microsoft.Network/virtualNetworks/subnets/read"
        ));
        assert!(!m("*/read", "Microsoft.Network/virtualNetworks/write"));
        assert!(m(
            "Microsoft.Mission/*",
            "Microsoft.Mission/virtualEnclaves/write"
        ));
        assert!(!m("Microsoft.Mission/*", "Microsoft.Missionary/x/write"));
        assert!(m(
            "Microsoft.Authorization/*/write",
            "Microsoft.Authorization/roleAssignments/write"
        ));
        assert!(m(
            "Microsoft.Mission/*/maintenanceMode/write",
            "Microsoft.Mission/virtualEnclaves/maintenanceMode/write"
        ));
        assert!(!m(
            "Microsoft.Mission/*/maintenanceMode/write",
            "Microsoft.Mission/maintenanceMode/write"
        ));
        assert!(m("a*b*c", "abc"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "acb"));
        assert!(m("a**c", "ac"));
        assert!(!m("ab*ba", "aba"), "prefix and suffix must not overlap");
        assert!(m("*.contoso.com", "api.eu.contoso.com"));
        assert!(!m("*.contoso.com", "contoso.com"));
    }

    #[test]
    fn matching_ignores_case() {
        assert!(m("MICROSOFT.MISSION/*", "microsoft.mission/x/write"));
        assert!(m("*/READ", "a/b/read"));
        assert!(m(
            "Microsoft.Network/virtualNetworks/read",
            "microsoft.network/VIRTUALNETWORKS/read"
        ));
    }

    #[test]
    fn exact_patterns_match_only_themselves() {
        assert!(m("a/b/read", "a/b/read"));
        assert!(!m("a/b/read", "a/b/read/x"));
        assert!(!m("a/b/read", "a/b/rea"));
        assert!(!Pattern::parse("a/b/read").unwrap().has_wildcard());
    }

    #[test]
    fn refuses_bad_patterns() {
        assert!(Pattern::parse("").is_err());
        assert!(Pattern::parse("a b").is_err());
        assert!(Pattern::parse("é").is_err());
        assert!(Pattern::parse(&"a".repeat(257)).is_err());
    }
}
