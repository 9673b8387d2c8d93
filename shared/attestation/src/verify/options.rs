use std::collections::BTreeMap;
use std::time::Duration;

use crate::root::TrustRoot;

/// The moment certificates must be valid at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationTime {
    /// The document's own `timestamp`: the right choice for stored documents (leaf
    /// certificates live about three hours). Pair it with [`VerifyOptions::max_age`] when the
    /// document must also be fresh.
    DocumentTime,
    /// A moment the caller gives, in milliseconds since the Unix epoch.
    At(u64),
}

/// How old a document may be, relative to a `now` the caller reads from its own clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxAge {
    /// The largest accepted age.
    pub max: Duration,
    /// The caller's current time, milliseconds since the Unix epoch.
    pub now: u64,
}

/// What [`crate::verify`] checks a document against. Built from a pinned root; every
/// expectation is added with a builder method.
///
/// ```
/// use ea_attestation::{TrustRoot, ValidationTime, VerifyOptions};
/// use std::time::Duration;
///
/// let options = VerifyOptions::new(TrustRoot::aws_nitro_root_g1()?)
///     .at(ValidationTime::DocumentTime)
///     .pcr(0, vec![0xab; 48])
///     .nonce(b"challenge".to_vec())
///     .max_age(Duration::from_secs(300), 1_700_000_000_000);
/// # Ok::<(), ea_attestation::TrustRootError>(())
/// ```
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub(crate) root: TrustRoot,
    pub(crate) at: ValidationTime,
    pub(crate) pcrs: BTreeMap<u16, Vec<u8>>,
    pub(crate) public_key: Option<Vec<u8>>,
    pub(crate) user_data: Option<Vec<u8>>,
    pub(crate) nonce: Option<Vec<u8>>,
    pub(crate) allow_debug: bool,
    pub(crate) max_age: Option<MaxAge>,
}

impl VerifyOptions {
    /// Checks against `root`, certificates valid at the document's own time, no expectations
    /// on PCRs or fields, debug-mode documents refused, no age limit.
    pub fn new(root: TrustRoot) -> Self {
        Self {
            root,
            at: ValidationTime::DocumentTime,
            pcrs: BTreeMap::new(),
            public_key: None,
            user_data: None,
            nonce: None,
            allow_debug: false,
            max_age: None,
        }
    }

    /// Replaces the pinned root.
    pub fn root(mut self, root: TrustRoot) -> Self {
        self.root = root;
        self
    }

    /// The pinned root (or the insecure QEMU mode), e.g. to warn when it is the latter.
    pub fn trust_root(&self) -> &TrustRoot {
        &self.root
    }

    /// When the certificates must be valid.
    pub fn at(mut self, at: ValidationTime) -> Self {
        self.at = at;
        self
    }

    /// Requires PCR `index` to be present and equal to `value`.
    pub fn pcr(mut self, index: u16, value: Vec<u8>) -> Self {
        self.pcrs.insert(index, value);
        self
    }

    /// Requires each of these PCRs to be present and equal.
    pub fn pcrs(mut self, pcrs: impl IntoIterator<Item = (u16, Vec<u8>)>) -> Self {
        self.pcrs.extend(pcrs);
        self
    }

    /// Requires `public_key` to be present and equal.
    pub fn public_key(mut self, public_key: Vec<u8>) -> Self {
        self.public_key = Some(public_key);
        self
    }

    /// Requires `user_data` to be present and equal.
    pub fn user_data(mut self, user_data: Vec<u8>) -> Self {
        self.user_data = Some(user_data);
        self
    }

    /// Requires `nonce` to be present and equal.
    pub fn nonce(mut self, nonce: Vec<u8>) -> Self {
        self.nonce = Some(nonce);
        self
    }

    /// Accepts debug-mode documents (PCR0, 1 and 2 all zero). A debug-mode enclave's memory
    /// and console are open to the parent instance, so such a document proves nothing about
    /// secrets; allow it only for development.
    pub fn dangerous_allow_debug(mut self, allow: bool) -> Self {
        self.allow_debug = allow;
        self
    }

    /// Refuses documents older than `max` at `now` (milliseconds since the Unix epoch, read
    /// by the caller: this library reads no clock).
    pub fn max_age(mut self, max: Duration, now: u64) -> Self {
        self.max_age = Some(MaxAge { max, now });
        self
    }
}
