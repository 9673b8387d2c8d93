//! Reading policy JSON into the model, with the path of whatever is refused.

use serde_json::{Map, Value};

use super::{Condition, Effect, KeyPolicy, Operator, Principal, Statement, MAX_POLICY_LEN};

/// Why a policy document was refused (KMS answers `MalformedPolicyDocumentException`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Longer than KMS accepts.
    #[error("the policy is {len} bytes; key policies are at most {max}")]
    TooLarge {
        /// Bytes given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not JSON.
    #[error("the policy is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// An element is missing, of the wrong type or has a value the model refuses.
    #[error("{path}: {reason}")]
    Invalid {
        /// Where, e.g. `Statement[1].Condition.StringEquals`.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// An element or operator this model does not evaluate.
    #[error("{path}: {what} is not supported by this policy model")]
    Unsupported {
        /// Where.
        path: String,
        /// The element or operator.
        what: String,
    },
}

fn invalid(path: impl Into<String>, reason: impl Into<String>) -> PolicyError {
    PolicyError::Invalid {
        path: path.into(),
        reason: reason.into(),
    }
}

/// A string or a non-empty list of strings.
fn strings(value: &Value, path: &str) -> Result<Vec<String>, PolicyError> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| invalid(format!("{path}[{i}]"), "expected a string"))
            })
            .collect(),
        _ => Err(invalid(
            path,
            "expected a string or a non-empty list of strings",
        )),
    }
}

/// Condition values may be strings, booleans or numbers, alone or in a list.
fn condition_values(value: &Value, path: &str) -> Result<Vec<String>, PolicyError> {
    let scalar = |v: &Value, path: String| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(invalid(path, "expected a string, boolean or number")),
    };
    match value {
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, item)| scalar(item, format!("{path}[{i}]")))
            .collect(),
        Value::Array(_) => Err(invalid(path, "an empty list of values")),
        other => Ok(vec![scalar(other, path.to_owned())?]),
    }
}

fn principal(value: &Value, path: &str) -> Result<Principal, PolicyError> {
    match value {
        Value::String(s) if s == "*" => Ok(Principal::Any),
        Value::Object(map) => {
            let mut aws = None;
            for (kind, arns) in map {
                match kind.as_str() {
                    "AWS" => aws = Some(strings(arns, &format!("{path}.AWS"))?),
                    other => {
                        return Err(PolicyError::Unsupported {
                            path: path.to_owned(),
                            what: format!("principal type {other:?}"),
                        })
                    }
                }
            }
            match aws {
                Some(arns) if arns.iter().any(|a| a == "*") => Ok(Principal::Any),
                Some(arns) => Ok(Principal::Aws(arns)),
                None => Err(invalid(path, "expected {\"AWS\": ...}")),
            }
        }
        _ => Err(invalid(path, "expected \"*\" or {\"AWS\": arn or [arns]}")),
    }
}

fn conditions(value: &Value, path: &str) -> Result<Vec<Condition>, PolicyError> {
    let block = value
        .as_object()
        .ok_or_else(|| invalid(path, "expected an object of operators"))?;
    let mut out = Vec::new();
    for (name, keys) in block {
        let op_path = format!("{path}.{name}");
        let operator = Operator::from_name(name).ok_or_else(|| PolicyError::Unsupported {
            path: path.to_owned(),
            what: format!("condition operator {name:?}"),
        })?;
        let keys = keys
            .as_object()
            .ok_or_else(|| invalid(&op_path, "expected an object of condition keys"))?;
        if keys.is_empty() {
            return Err(invalid(&op_path, "no condition keys"));
        }
        for (key, values) in keys {
            let values = condition_values(values, &format!("{op_path}.{key}"))?;
            if matches!(operator, Operator::Null | Operator::Bool)
                && values
                    .iter()
                    .any(|v| !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false"))
            {
                return Err(invalid(
                    format!("{op_path}.{key}"),
                    format!("{operator} takes \"true\" or \"false\""),
                ));
            }
            out.push(Condition {
                operator,
                key: key.clone(),
                values,
            });
        }
    }
    Ok(out)
}

fn statement(value: &Value, path: &str) -> Result<Statement, PolicyError> {
    let map: &Map<String, Value> = value
        .as_object()
        .ok_or_else(|| invalid(path, "expected an object"))?;
    for key in map.keys() {
        match key.as_str() {
            "Sid" | "Effect" | "Principal" | "Action" | "Resource" | "Condition" => {}
            "NotPrincipal" | "NotAction" | "NotResource" => {
                return Err(PolicyError::Unsupported {
                    path: path.to_owned(),
                    what: key.clone(),
                })
            }
            other => return Err(invalid(path, format!("unknown element {other:?}"))),
        }
    }
    let field = |name: &str| {
        map.get(name)
            .ok_or_else(|| invalid(path, format!("{name} is missing")))
    };
    let sid = match map.get("Sid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(invalid(format!("{path}.Sid"), "expected a string")),
    };
    let effect = match field("Effect")?.as_str() {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        _ => {
            return Err(invalid(
                format!("{path}.Effect"),
                "expected \"Allow\" or \"Deny\"",
            ))
        }
    };
    Ok(Statement {
        sid,
        effect,
        principal: principal(field("Principal")?, &format!("{path}.Principal"))?,
        actions: strings(field("Action")?, &format!("{path}.Action"))?,
        resources: strings(field("Resource")?, &format!("{path}.Resource"))?,
        conditions: match map.get("Condition") {
            Some(block) => conditions(block, &format!("{path}.Condition"))?,
            None => Vec::new(),
        },
    })
}

pub(super) fn parse(text: &str) -> Result<KeyPolicy, PolicyError> {
    if text.len() > MAX_POLICY_LEN {
        return Err(PolicyError::TooLarge {
            len: text.len(),
            max: MAX_POLICY_LEN,
        });
    }
    let value: Value = serde_json::from_str(text)?;
    let map = value
        .as_object()
        .ok_or_else(|| invalid("policy", "expected a JSON object"))?;
    for key in map.keys() {
        if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
            return Err(invalid("policy", format!("unknown element {key:?}")));
        }
    }
    let version = match map.get("Version").and_then(Value::as_str) {
        Some(v @ ("2012-10-17" | "2008-10-17")) => v.to_owned(),
        _ => {
            return Err(invalid(
                "Version",
                "expected \"2012-10-17\" (or the legacy \"2008-10-17\")",
            ))
        }
    };
    let id = match map.get("Id") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(invalid("Id", "expected a string")),
    };
    let statements = match map.get("Statement") {
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, s)| statement(s, &format!("Statement[{i}]")))
            .collect::<Result<Vec<_>, _>>()?,
        // A single statement may be written without the list.
        Some(single @ Value::Object(_)) => vec![statement(single, "Statement")?],
        _ => {
            return Err(invalid(
                "Statement",
                "expected a non-empty list of statements",
            ))
        }
    };
    Ok(KeyPolicy {
        version,
        id,
        statements,
    })
}
