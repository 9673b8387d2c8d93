//! Identifiers of principals, roles and assignments.
//!
//! Each is an immutable, cheaply cloned string checked once when it is made: decisions copy
//! ids into their explanations, so a clone must not allocate.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest identifier accepted, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {kind}: {problem}")]
pub struct IdError {
    /// Which kind of identifier was expected.
    pub kind: &'static str,
    /// The offending text (at most 64 characters of it).
    pub value: String,
    /// What is wrong with it.
    pub problem: IdProblem,
}

/// What is wrong with an identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdProblem {
    /// Nothing given.
    #[error("it is empty")]
    Empty,
    /// Longer than [`MAX_ID_LEN`] bytes.
    #[error("it is longer than {MAX_ID_LEN} bytes")]
    TooLong,
    /// A character outside the allowed set.
    #[error("character {0:?} is not allowed (letters, digits, '.', '_', '-', '@' only)")]
    BadCharacter(char),
    /// Leading or trailing blank (role names only may contain inner spaces).
    #[error("it starts or ends with a space")]
    OuterSpace,
}

fn check(kind: &'static str, text: &str, allow_space: bool) -> Result<(), IdError> {
    let fail = |problem| IdError {
        kind,
        value: text.chars().take(64).collect(),
        problem,
    };
    if text.is_empty() {
        return Err(fail(IdProblem::Empty));
    }
    if text.len() > MAX_ID_LEN {
        return Err(fail(IdProblem::TooLong));
    }
    if let Some(bad) = text.chars().find(|&c| {
        !(c.is_ascii_alphanumeric()
            || matches!(c, '.' | '_' | '-' | '@')
            || (allow_space && c == ' '))
    }) {
        return Err(fail(IdProblem::BadCharacter(bad)));
    }
    if text.starts_with(' ') || text.ends_with(' ') {
        return Err(fail(IdProblem::OuterSpace));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, spaces: $spaces:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Checks and wraps an identifier.
            pub fn new(text: &str) -> Result<Self, IdError> {
                check($kind, text, $spaces)?;
                Ok(Self(Arc::from(text)))
            }

            /// The identifier's text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Wraps text the crate itself wrote (built-in tables), unchecked.
            #[allow(dead_code, reason = "not every id type has built-in values")]
            pub(crate) fn trusted(text: &str) -> Self {
                Self(Arc::from(text))
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::new(text)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::new(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A user, group or service principal; compared exactly (case-sensitive).
    PrincipalId, "principal id", spaces: false
);
id_type!(
    /// A role definition: a built-in role's name (`Enclave Approver`) or a custom role's id.
    RoleId, "role id", spaces: true
);
id_type!(
    /// A role assignment, eligible assignment, activation or deny assignment, chosen by the
    /// client that creates it (typically a GUID), so that retries are idempotent.
    AssignmentId, "assignment id", spaces: false
);

id_type!(
    /// One of a principal's public keys, named by the principal (e.g. `laptop-2025`).
    KeyId, "key id", spaces: false
);
id_type!(
    /// An approval of a governed operation (section 6), named by the enclave when it opens
    /// one (from the request's nonce), so that the engine draws no random numbers.
    ApprovalId, "approval id", spaces: false
);

impl PrincipalId {
    /// The engine itself. No principal record may carry this id, so no request can claim it.
    pub fn platform() -> PrincipalId {
        PrincipalId(Arc::from(PLATFORM))
    }

    /// Whether this is the reserved `platform` id (case-insensitively: `Platform` is refused
    /// as a principal too, so that nobody can look like the engine in a listing).
    pub fn is_platform(&self) -> bool {
        self.0.eq_ignore_ascii_case(PLATFORM)
    }
}

const PLATFORM: &str = "platform";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_check_their_characters() {
        assert!(PrincipalId::new("alice@contoso.com").is_ok());
        assert!(PrincipalId::new("6f1c-22_ab.x").is_ok());
        assert_eq!(PrincipalId::new("").unwrap_err().problem, IdProblem::Empty);
        assert_eq!(
            PrincipalId::new("a b").unwrap_err().problem,
            IdProblem::BadCharacter(' ')
        );
        assert_eq!(
            PrincipalId::new("a/b").unwrap_err().problem,
            IdProblem::BadCharacter('/')
        );
        assert_eq!(
            PrincipalId::new(&"x".repeat(129)).unwrap_err().problem,
            IdProblem::TooLong
        );
        assert!(RoleId::new("Enclave Approver").is_ok());
        assert_eq!(
            RoleId::new(" Owner").unwrap_err().problem,
            IdProblem::OuterSpace
        );
    }

    #[test]
    fn platform_is_recognized_in_any_case() {
        assert!(PrincipalId::platform().is_platform());
        assert!(PrincipalId::new("PlatForm").unwrap().is_platform());
        assert!(!PrincipalId::new("platforms").unwrap().is_platform());
    }

    #[test]
    fn serde_validates() {
        assert!(serde_json::from_str::<PrincipalId>("\"bob\"").is_ok());
        let err = serde_json::from_str::<PrincipalId>("\"b o b\"").unwrap_err();
        assert!(
            err.to_string().contains("not a valid principal id"),
            "{err}"
        );
    }
}
