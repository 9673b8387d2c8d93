//! Evaluation: explicit Deny wins, then Allow, else the implicit deny; the answer names the
//! statement that decided, or the conditions that kept Allow statements from applying.

use std::collections::BTreeMap;
use std::fmt;

use super::{Condition, Effect, KeyPolicy, Operator, Principal, Statement};

/// What a request is: who asks, for what, on which key, with which condition keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// The caller's ARN (an IAM user or role, or an STS assumed-role session).
    pub principal_arn: String,
    /// The action, e.g. `kms:Decrypt`.
    pub action: String,
    /// The key's ARN.
    pub resource: String,
    /// Condition keys present in the request, by lower-case name (keys compare
    /// case-insensitively).
    values: BTreeMap<String, String>,
}

impl RequestContext {
    /// A request with no condition keys.
    pub fn new(
        principal_arn: impl Into<String>,
        action: impl Into<String>,
        resource: impl Into<String>,
    ) -> Self {
        Self {
            principal_arn: principal_arn.into(),
            action: action.into(),
            resource: resource.into(),
            values: BTreeMap::new(),
        }
    }

    /// Adds condition keys (names as written in policies).
    pub fn with_values(mut self, values: impl IntoIterator<Item = (String, String)>) -> Self {
        self.values
            .extend(values.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)));
        self
    }

    /// A condition key's value, if the request has it.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.values
            .get(&key.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// A statement, named for messages: its `Sid`, else its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementRef {
    /// Position in `Statement`, from 0.
    pub index: usize,
    /// Its `Sid`.
    pub sid: Option<String>,
}

impl fmt::Display for StatementRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sid {
            Some(sid) => write!(f, "statement {sid:?}"),
            None => write!(f, "statement #{}", self.index),
        }
    }
}

/// A condition that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedCondition {
    /// Its operator.
    pub operator: Operator,
    /// Its key, as the policy writes it.
    pub key: String,
    /// The request's value for the key (`None`: the request has no such key).
    pub actual: Option<String>,
}

impl fmt::Display for FailedCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.actual {
            Some(actual) => write!(
                f,
                "{} on {} does not hold for the request's value {actual}",
                self.operator, self.key
            ),
            None => write!(
                f,
                "{} on {} does not hold: the request has no such key",
                self.operator, self.key
            ),
        }
    }
}

/// An Allow statement for this principal, action and key whose condition failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NearMiss {
    /// The statement.
    pub statement: StatementRef,
    /// Its first condition that failed.
    pub failed: FailedCondition,
}

/// The outcome of [`KeyPolicy::evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// An Allow statement applies and no Deny does.
    Allow {
        /// The first Allow statement that applies.
        statement: StatementRef,
    },
    /// A Deny statement applies.
    Deny {
        /// The first Deny statement that applies.
        statement: StatementRef,
    },
    /// Nothing allows the request.
    ImplicitDeny {
        /// Allow statements that matched the principal, action and key but whose
        /// conditions did not hold, in policy order.
        near_misses: Vec<NearMiss>,
    },
}

impl Decision {
    /// True for [`Decision::Allow`].
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Allow { statement } => write!(f, "allowed by {statement}"),
            Decision::Deny { statement } => write!(f, "explicitly denied by {statement}"),
            Decision::ImplicitDeny { near_misses } if near_misses.is_empty() => {
                f.write_str("no statement allows it")
            }
            Decision::ImplicitDeny { near_misses } => {
                f.write_str("no statement allows it")?;
                for miss in near_misses {
                    write!(f, "; {}: {}", miss.statement, miss.failed)?;
                }
                Ok(())
            }
        }
    }
}

/// `*` (any run) and `?` (one character) wildcards, as IAM matches actions and resources.
fn glob(pattern: &[char], text: &[char]) -> bool {
    // Iterative matching with one backtrack point: linear in practice, no recursion.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match (pattern.get(p), text.get(t)) {
            (Some('*'), _) => {
                star = Some((p, t));
                p += 1;
            }
            (Some(&pc), Some(&tc)) if pc == '?' || pc == tc => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .unwrap_or_default()
        .iter()
        .all(|&c| c == '*')
}

fn glob_str(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    glob(&pattern, &text)
}

/// `arn:partition:service:region:account:resource`.
fn arn_parts(arn: &str) -> Option<[&str; 6]> {
    let mut parts = arn.splitn(6, ':');
    let out = [
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    ];
    (out[0] == "arn").then_some(out)
}

/// Whether a `Principal` entry names the caller. Beyond equal ARNs, as IAM does: an account
/// id or `arn:...:iam::<account>:root` names every principal of that account, and a role ARN
/// names that role's assumed-role sessions (`arn:...:sts::<account>:assumed-role/<name>/...`,
/// the role's path left out).
fn principal_names(entry: &str, caller: &str) -> bool {
    if entry == "*" || entry == caller {
        return true;
    }
    let Some(caller_parts) = arn_parts(caller) else {
        return false;
    };
    let [_, caller_partition, caller_service, _, caller_account, caller_resource] = caller_parts;
    if entry.len() == 12 && entry.bytes().all(|b| b.is_ascii_digit()) {
        return entry == caller_account;
    }
    let Some([_, partition, service, _, account, resource]) = arn_parts(entry) else {
        return false;
    };
    if partition != caller_partition || account != caller_account || service != "iam" {
        return false;
    }
    if resource == "root" {
        return true;
    }
    match (resource.strip_prefix("role/"), caller_service) {
        (Some(role_path), "sts") => {
            let role_name = role_path.rsplit('/').next().unwrap_or(role_path);
            caller_resource
                .strip_prefix("assumed-role/")
                .and_then(|rest| rest.split('/').next())
                == Some(role_name)
        }
        _ => false,
    }
}

fn principal_matches(principal: &Principal, caller: &str) -> bool {
    match principal {
        Principal::Any => true,
        Principal::Aws(entries) => entries.iter().any(|e| principal_names(e, caller)),
    }
}

fn action_matches(actions: &[String], action: &str) -> bool {
    // Action names compare case-insensitively.
    let action = action.to_ascii_lowercase();
    actions
        .iter()
        .any(|pattern| glob_str(&pattern.to_ascii_lowercase(), &action))
}

fn resource_matches(resources: &[String], resource: &str) -> bool {
    resources.iter().any(|pattern| glob_str(pattern, resource))
}

fn holds(condition: &Condition, request: &RequestContext) -> bool {
    let actual = request.value(&condition.key);
    let any_value = |matches: &dyn Fn(&str, &str) -> bool| match actual {
        Some(actual) => condition.values.iter().any(|v| matches(v, actual)),
        None => false,
    };
    match condition.operator {
        Operator::StringEquals => any_value(&|v, a| v == a),
        Operator::StringEqualsIgnoreCase => any_value(&|v, a| v.to_lowercase() == a.to_lowercase()),
        // Negated operators hold when the key is absent (IAM's rule).
        Operator::StringNotEquals => !any_value(&|v, a| v == a),
        Operator::StringNotEqualsIgnoreCase => {
            !any_value(&|v, a| v.to_lowercase() == a.to_lowercase())
        }
        Operator::Null => condition.values.iter().any(|v| {
            let wants_absent = v.eq_ignore_ascii_case("true");
            wants_absent == actual.is_none()
        }),
        Operator::Bool => any_value(&|v, a| v.eq_ignore_ascii_case(a)),
    }
}

fn first_failed(statement: &Statement, request: &RequestContext) -> Option<FailedCondition> {
    statement
        .conditions
        .iter()
        .find(|c| !holds(c, request))
        .map(|c| FailedCondition {
            operator: c.operator,
            key: c.key.clone(),
            actual: request.value(&c.key).map(str::to_owned),
        })
}

pub(super) fn evaluate(policy: &KeyPolicy, request: &RequestContext) -> Decision {
    let mut allow = None;
    let mut near_misses = Vec::new();
    for (index, statement) in policy.statements.iter().enumerate() {
        if !principal_matches(&statement.principal, &request.principal_arn)
            || !action_matches(&statement.actions, &request.action)
            || !resource_matches(&statement.resources, &request.resource)
        {
            continue;
        }
        let reference = || StatementRef {
            index,
            sid: statement.sid.clone(),
        };
        match (statement.effect, first_failed(statement, request)) {
            // A Deny that applies decides at once: nothing can override it.
            (Effect::Deny, None) => {
                return Decision::Deny {
                    statement: reference(),
                }
            }
            // A Deny whose condition fails does not apply.
            (Effect::Deny, Some(_)) => {}
            // The first Allow that applies is the reason, unless a later Deny applies.
            (Effect::Allow, None) => {
                allow.get_or_insert_with(reference);
            }
            // Kept to explain an implicit deny.
            (Effect::Allow, Some(failed)) => near_misses.push(NearMiss {
                statement: reference(),
                failed,
            }),
        }
    }
    match allow {
        Some(statement) => Decision::Allow { statement },
        None => Decision::ImplicitDeny { near_misses },
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::panic,
        clippy::indexing_slicing,
        reason = "test"
    )]

    use super::*;

    #[test]
    fn wildcards() {
        for (pattern, text, expected) in [
            ("kms:*", "kms:decrypt", true),
            ("kms:generate*", "kms:generatedatakey", true),
            ("kms:generate*", "kms:decrypt", false),
            ("kms:?ecrypt", "kms:decrypt", true),
            ("*", "", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("kms:Decrypt", "kms:Decrypt", true),
            ("kms:Decrypt", "kms:DecryptX", false),
        ] {
            assert_eq!(glob_str(pattern, text), expected, "{pattern} ~ {text}");
        }
        assert!(action_matches(&["KMS:Decrypt".into()], "kms:decrypt"));
    }

    #[test]
    fn principals() {
        let session = "arn:aws:sts::111122223333:assumed-role/Enclave/i-0abc";
        for (entry, expected) in [
            ("arn:aws:iam::111122223333:role/Enclave", true),
            ("arn:aws:iam::111122223333:role/service/Enclave", true),
            ("arn:aws:iam::111122223333:role/Other", false),
            ("arn:aws:iam::444455556666:role/Enclave", false),
            ("arn:aws:iam::111122223333:root", true),
            ("111122223333", true),
            ("444455556666", false),
            ("arn:aws-cn:iam::111122223333:role/Enclave", false),
            ("*", true),
            (session, true),
        ] {
            assert_eq!(principal_names(entry, session), expected, "{entry}");
        }
        let user = "arn:aws:iam::111122223333:user/alice";
        assert!(principal_names(user, user));
        assert!(!principal_names("arn:aws:iam::111122223333:user/bob", user));
        assert!(!principal_names(
            "arn:aws:iam::111122223333:role/alice",
            user
        ));
    }
}
