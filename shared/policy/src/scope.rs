//! Scopes: paths in the resource tree (SPEC-policy section 1), compared case-insensitively.
//!
//! A parsed [`Scope`] is in canonical form: the structural keywords spelled as the spec spells
//! them (`virtualEnclaves`), every name and every segment below a resource group in lower
//! case, no trailing slash. So two spellings of one scope are equal, hash alike, and print
//! alike, and ancestry is a prefix test on the canonical text.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest scope accepted, in bytes.
pub const MAX_SCOPE_LEN: usize = 1024;
/// Most segments accepted in a scope.
pub const MAX_SCOPE_DEPTH: usize = 40;

/// What a scope designates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ScopeKind {
    /// `/`: above every community.
    Root,
    /// `/communities/{c}`.
    Community,
    /// `/communities/{c}/managed`.
    CommunityManaged,
    /// `/communities/{c}/communityEndpoints/{n}`.
    CommunityEndpoint,
    /// `/communities/{c}/enclaveConnections/{n}`.
    EnclaveConnection,
    /// `/communities/{c}/virtualEnclaves/{e}`.
    VirtualEnclave,
    /// `/communities/{c}/virtualEnclaves/{e}/managed`.
    EnclaveManaged,
    /// `/communities/{c}/virtualEnclaves/{e}/enclaveEndpoints/{n}`.
    EnclaveEndpoint,
    /// `/communities/{c}/virtualEnclaves/{e}/workloads/{w}`.
    Workload,
    /// Anything below a managed or workload resource group.
    Resource,
}

impl ScopeKind {
    /// Whether this kind is one of the two managed resource groups.
    pub fn is_managed_group(self) -> bool {
        matches!(
            self,
            ScopeKind::CommunityManaged | ScopeKind::EnclaveManaged
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Level {
    /// Length of this ancestor's canonical text (1 for the root `/`).
    end: u16,
    kind: ScopeKind,
}

/// A canonical scope path.
#[derive(Clone)]
pub struct Scope {
    text: Arc<str>,
    /// Every ancestor that is itself a scope, root first, this scope last.
    levels: Arc<[Level]>,
}

/// Why a string is not a [`Scope`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a scope: {problem}")]
pub struct ScopeError {
    /// The offending text (at most 96 characters of it).
    pub input: String,
    /// What is wrong with it.
    pub problem: ScopeProblem,
}

/// What is wrong with a scope path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeProblem {
    /// It does not start with `/`.
    #[error("it must start with '/'")]
    NotAbsolute,
    /// Longer than [`MAX_SCOPE_LEN`].
    #[error("it is longer than {MAX_SCOPE_LEN} bytes")]
    TooLong,
    /// More than [`MAX_SCOPE_DEPTH`] segments.
    #[error("it has more than {MAX_SCOPE_DEPTH} segments")]
    TooDeep,
    /// `//` or a trailing `//`.
    #[error("segment {0} is empty")]
    EmptySegment(usize),
    /// A character outside letters, digits and `. _ - ( ) ~`.
    #[error("character {0:?} is not allowed in a scope")]
    BadCharacter(char),
    /// A segment that cannot appear at that place.
    #[error("expected {expected} after {after}, found {found:?}")]
    Unexpected {
        /// What may come there.
        expected: &'static str,
        /// The path so far.
        after: String,
        /// The segment found.
        found: String,
    },
    /// A keyword without the name that must follow it.
    #[error("{0:?} must be followed by a name")]
    MissingName(&'static str),
}

const COMMUNITIES: &str = "communities";
const MANAGED: &str = "managed";
const COMMUNITY_ENDPOINTS: &str = "communityEndpoints";
const ENCLAVE_CONNECTIONS: &str = "enclaveConnections";
const VIRTUAL_ENCLAVES: &str = "virtualEnclaves";
const ENCLAVE_ENDPOINTS: &str = "enclaveEndpoints";
const WORKLOADS: &str = "workloads";

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '(' | ')' | '~')
}

impl Scope {
    /// The root scope `/`.
    pub fn root() -> Scope {
        Scope {
            text: Arc::from("/"),
            levels: Arc::from([Level {
                end: 1,
                kind: ScopeKind::Root,
            }]),
        }
    }

    /// Parses a scope path, case-insensitively, into canonical form.
    pub fn parse(input: &str) -> Result<Scope, ScopeError> {
        let fail = |problem| ScopeError {
            input: input.chars().take(96).collect(),
            problem,
        };
        if input.len() > MAX_SCOPE_LEN {
            return Err(fail(ScopeProblem::TooLong));
        }
        let body = input
            .strip_prefix('/')
            .ok_or_else(|| fail(ScopeProblem::NotAbsolute))?;
        if body.is_empty() {
            return Ok(Scope::root());
        }
        let body = body.strip_suffix('/').unwrap_or(body);
        // Scopes are parsed for every event a log replays: the segments are walked twice
        // rather than collected, and names are lower-cased straight into the text.
        if body.split('/').nth(MAX_SCOPE_DEPTH).is_some() {
            return Err(fail(ScopeProblem::TooDeep));
        }
        for (i, segment) in body.split('/').enumerate() {
            if segment.is_empty() {
                return Err(fail(ScopeProblem::EmptySegment(i + 1)));
            }
            if let Some(bad) = segment.chars().find(|&c| !allowed(c)) {
                return Err(fail(ScopeProblem::BadCharacter(bad)));
            }
        }
        let mut levels = Vec::with_capacity(8);
        levels.push(Level {
            end: 1,
            kind: ScopeKind::Root,
        });
        let mut builder = Builder {
            text: String::with_capacity(input.len()),
            levels,
        };
        let mut rest = body.split('/');
        let mut kind = ScopeKind::Root;
        while let Some(segment) = rest.next() {
            let mut named = |keyword: &'static str, kind: ScopeKind| {
                let name = rest.next().ok_or(ScopeProblem::MissingName(keyword))?;
                builder.push(keyword);
                builder.push_lowercase(name);
                builder.level(kind);
                Ok(kind)
            };
            let is = |keyword: &str| segment.eq_ignore_ascii_case(keyword);
            let next = match kind {
                ScopeKind::Root if is(COMMUNITIES) => named(COMMUNITIES, ScopeKind::Community),
                ScopeKind::Community if is(MANAGED) => {
                    builder.push(MANAGED);
                    builder.level(ScopeKind::CommunityManaged);
                    Ok(ScopeKind::CommunityManaged)
                }
                ScopeKind::Community if is(COMMUNITY_ENDPOINTS) => {
                    named(COMMUNITY_ENDPOINTS, ScopeKind::CommunityEndpoint)
                }
                ScopeKind::Community if is(ENCLAVE_CONNECTIONS) => {
                    named(ENCLAVE_CONNECTIONS, ScopeKind::EnclaveConnection)
                }
                ScopeKind::Community if is(VIRTUAL_ENCLAVES) => {
                    named(VIRTUAL_ENCLAVES, ScopeKind::VirtualEnclave)
                }
                ScopeKind::VirtualEnclave if is(MANAGED) => {
                    builder.push(MANAGED);
                    builder.level(ScopeKind::EnclaveManaged);
                    Ok(ScopeKind::EnclaveManaged)
                }
                ScopeKind::VirtualEnclave if is(ENCLAVE_ENDPOINTS) => {
                    named(ENCLAVE_ENDPOINTS, ScopeKind::EnclaveEndpoint)
                }
                ScopeKind::VirtualEnclave if is(WORKLOADS) => named(WORKLOADS, ScopeKind::Workload),
                ScopeKind::CommunityManaged
                | ScopeKind::EnclaveManaged
                | ScopeKind::Workload
                | ScopeKind::Resource => {
                    builder.push_lowercase(segment);
                    builder.level(ScopeKind::Resource);
                    Ok(ScopeKind::Resource)
                }
                other => Err(ScopeProblem::Unexpected {
                    expected: expected_after(other),
                    after: builder.text_or_root(),
                    found: segment.chars().take(64).collect(),
                }),
            };
            kind = next.map_err(fail)?;
        }
        Ok(Scope {
            text: Arc::from(builder.text),
            levels: Arc::from(builder.levels),
        })
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// What this scope designates.
    pub fn kind(&self) -> ScopeKind {
        self.levels.last().map_or(ScopeKind::Root, |l| l.kind)
    }

    /// Every ancestor that is a scope, with its kind: root first, this scope last.
    pub fn ancestors(&self) -> impl DoubleEndedIterator<Item = (&str, ScopeKind)> + '_ {
        self.levels
            .iter()
            .filter_map(|level| Some((self.text.get(..usize::from(level.end))?, level.kind)))
    }

    /// How many ancestors (this scope included) the scope has; the root has depth 1.
    pub fn depth(&self) -> usize {
        self.levels.len()
    }

    /// The nearest ancestor of the given kind (this scope included).
    pub fn ancestor_of_kind(&self, kind: ScopeKind) -> Option<Scope> {
        let at = self.levels.iter().rposition(|l| l.kind == kind)?;
        self.truncated(at)
    }

    /// The parent scope; `None` for the root.
    pub fn parent(&self) -> Option<Scope> {
        self.truncated(self.levels.len().checked_sub(2)?)
    }

    fn truncated(&self, last: usize) -> Option<Scope> {
        let levels = self.levels.get(..=last)?;
        let end = usize::from(levels.last()?.end);
        Some(Scope {
            text: Arc::from(self.text.get(..end)?),
            levels: Arc::from(levels),
        })
    }

    /// The community this scope lies in, if any.
    pub fn community(&self) -> Option<Scope> {
        self.ancestor_of_kind(ScopeKind::Community)
    }

    /// The enclave this scope lies in, if any.
    pub fn enclave(&self) -> Option<Scope> {
        self.ancestor_of_kind(ScopeKind::VirtualEnclave)
    }

    /// The last segment (a resource's name); `/` for the root.
    pub fn name(&self) -> &str {
        self.text
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or("/")
    }

    /// Whether `self` is `other` or one of its ancestors.
    pub fn contains(&self, other: &Scope) -> bool {
        if self.kind() == ScopeKind::Root {
            return true;
        }
        match other.text.strip_prefix(&*self.text) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }

    /// A child scope: `self` + `/` + `segments`, parsed again so the result is canonical.
    pub fn join(&self, segments: &str) -> Result<Scope, ScopeError> {
        let base = if self.kind() == ScopeKind::Root {
            ""
        } else {
            self.as_str()
        };
        Scope::parse(&format!("{base}/{segments}"))
    }
}

fn expected_after(kind: ScopeKind) -> &'static str {
    match kind {
        ScopeKind::Root => "\"communities\"",
        ScopeKind::Community => {
            "\"managed\", \"virtualEnclaves\", \"communityEndpoints\" or \"enclaveConnections\""
        }
        ScopeKind::VirtualEnclave => "\"managed\", \"workloads\" or \"enclaveEndpoints\"",
        _ => "nothing",
    }
}

struct Builder {
    text: String,
    levels: Vec<Level>,
}

impl Builder {
    fn push(&mut self, segment: &str) {
        self.text.push('/');
        self.text.push_str(segment);
    }

    fn push_lowercase(&mut self, segment: &str) {
        self.text.push('/');
        let start = self.text.len();
        self.text.push_str(segment);
        if let Some(pushed) = self.text.get_mut(start..) {
            pushed.make_ascii_lowercase();
        }
    }

    fn level(&mut self, kind: ScopeKind) {
        // INVARIANT: the text is at most MAX_SCOPE_LEN (1024) bytes, so it fits in a u16.
        let end = u16::try_from(self.text.len()).unwrap_or(u16::MAX);
        self.levels.push(Level { end, kind });
    }

    fn text_or_root(&self) -> String {
        if self.text.is_empty() {
            "/".to_owned()
        } else {
            self.text.clone()
        }
    }
}

impl PartialEq for Scope {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Scope {}

impl PartialOrd for Scope {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Ordered by canonical text, so an ancestor sorts before its descendants.
impl Ord for Scope {
    fn cmp(&self, other: &Self) -> Ordering {
        self.text.cmp(&other.text)
    }
}

impl Hash for Scope {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Same as `str`'s hash, as `Borrow<str>` requires.
        self.text.hash(state);
    }
}

impl Borrow<str> for Scope {
    fn borrow(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scope({:?})", &*self.text)
    }
}

impl FromStr for Scope {
    type Err = ScopeError;
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Scope::parse(input)
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Scope::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Scope {
        Scope::parse(text).unwrap()
    }

    #[test]
    fn canonical_form_ignores_case_and_trailing_slash() {
        let a = s("/Communities/C1/VIRTUALENCLAVES/E1/Workloads/W1/");
        assert_eq!(
            a.as_str(),
            "/communities/c1/virtualEnclaves/e1/workloads/w1"
        );
        assert_eq!(a, s("/communities/c1/virtualEnclaves/e1/workloads/w1"));
        assert_eq!(a.kind(), ScopeKind::Workload);
        assert_eq!(s("/").kind(), ScopeKind::Root);
        assert_eq!(s("/").as_str(), "/");
        let r = s("/communities/c1/virtualEnclaves/e1/managed/providers/Microsoft.Network/virtualNetworks/VNet");
        assert_eq!(
            r.as_str(),
            "/communities/c1/virtualEnclaves/e1/managed/providers/microsoft.network/virtualnetworks/vnet"
        );
        assert_eq!(r.kind(), ScopeKind::Resource);
    }

    #[test]
    fn every_kind_parses() {
        for (text, kind) in [
            ("/communities/c", ScopeKind::Community),
            ("/communities/c/managed", ScopeKind::CommunityManaged),
            (
                "/communities/c/communityEndpoints/n",
                ScopeKind::CommunityEndpoint,
            ),
            (
                "/communities/c/enclaveConnections/n",
                ScopeKind::EnclaveConnection,
            ),
            (
                "/communities/c/virtualEnclaves/e",
                ScopeKind::VirtualEnclave,
            ),
            (
                "/communities/c/virtualEnclaves/e/managed",
                ScopeKind::EnclaveManaged,
            ),
            (
                "/communities/c/virtualEnclaves/e/enclaveEndpoints/n",
                ScopeKind::EnclaveEndpoint,
            ),
            (
                "/communities/c/virtualEnclaves/e/workloads/w",
                ScopeKind::Workload,
            ),
            ("/communities/c/managed/x", ScopeKind::Resource),
            (
                "/communities/c/virtualEnclaves/e/workloads/w/x/y",
                ScopeKind::Resource,
            ),
        ] {
            assert_eq!(s(text).kind(), kind, "{text}");
            assert_eq!(s(text).as_str(), text);
        }
    }

    #[test]
    fn refuses_malformed_paths() {
        let problem = |text: &str| Scope::parse(text).unwrap_err().problem;
        assert_eq!(problem("communities/c"), ScopeProblem::NotAbsolute);
        assert_eq!(problem(""), ScopeProblem::NotAbsolute);
        assert_eq!(problem("/communities//c"), ScopeProblem::EmptySegment(2));
        assert_eq!(
            problem("/communities"),
            ScopeProblem::MissingName("communities")
        );
        assert_eq!(problem("/communities/c d"), ScopeProblem::BadCharacter(' '));
        assert!(matches!(
            problem("/subscriptions/x"),
            ScopeProblem::Unexpected { .. }
        ));
        assert!(matches!(
            problem("/communities/c/workloads/w"),
            ScopeProblem::Unexpected { .. }
        ));
        assert!(matches!(
            problem("/communities/c/enclaveConnections/n/x"),
            ScopeProblem::Unexpected { .. }
        ));
        assert_eq!(
            problem(&format!("/{}", "a".repeat(1100))),
            ScopeProblem::TooLong
        );
        let deep = format!("/communities/c/managed{}", "/x".repeat(40));
        assert_eq!(problem(&deep), ScopeProblem::TooDeep);
    }

    #[test]
    fn ancestors_and_containment() {
        let w = s("/communities/c1/virtualEnclaves/e1/workloads/w1/x");
        let chain: Vec<_> = w.ancestors().map(|(t, _)| t.to_owned()).collect();
        assert_eq!(
            chain,
            [
                "/",
                "/communities/c1",
                "/communities/c1/virtualEnclaves/e1",
                "/communities/c1/virtualEnclaves/e1/workloads/w1",
                "/communities/c1/virtualEnclaves/e1/workloads/w1/x",
            ]
        );
        assert!(s("/").contains(&w));
        assert!(s("/communities/C1").contains(&w));
        assert!(w.contains(&w));
        assert!(!s("/communities/c").contains(&s("/communities/c1")));
        assert!(!w.contains(&s("/communities/c1")));
        assert_eq!(
            w.enclave().unwrap(),
            s("/communities/c1/virtualEnclaves/e1")
        );
        assert_eq!(w.community().unwrap(), s("/communities/c1"));
        assert_eq!(
            w.ancestor_of_kind(ScopeKind::Workload).unwrap().name(),
            "w1"
        );
        assert_eq!(s("/communities/c1").parent().unwrap(), Scope::root());
        assert!(Scope::root().parent().is_none());
        assert_eq!(
            s("/communities/c1")
                .join("virtualEnclaves/E2")
                .unwrap()
                .as_str(),
            "/communities/c1/virtualEnclaves/e2"
        );
    }
}
