//! The benchmark workload of `ea-policy` (its `generate` module: same states, same checks),
//! decided by `ea-policy` and by Cedar 4, side by side.
//!
//! Each role assignment becomes one Cedar `permit`, each deny assignment (the custom ones, the
//! platform's two per managed group shaped by maintenance mode, protected workloads') one
//! `forbid`; groups and scopes become entity hierarchies, so `in` follows nested groups and
//! ancestor scopes as the engine does. Wildcard patterns are expanded over the workload's
//! operation vocabulary. Before timing, every Cedar decision is compared with ours.
//!
//! Usage: `cargo run --release -- [assignment counts, default 500 5000 50000]`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::error::Error;
use std::fmt::Write as _;
use std::hint::black_box;
use std::str::FromStr;
use std::time::{Duration, Instant};

use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityUid, PolicySet, Request,
    RestrictedExpression,
};
use ea_policy::generate::{generate, Generated, Shape};
use ea_policy::{DenyPrincipals, Operation, PrincipalId, PrincipalType, Scope};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// A Cedar string literal (ids and scopes hold no quotes or backslashes, but be safe).
fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn uid(kind: &str, id: &str) -> Result<EntityUid> {
    Ok(EntityUid::from_str(&format!("{kind}::{}", quote(id)))?)
}

fn principal_kind(state: &ea_policy::PolicyState, id: &PrincipalId) -> &'static str {
    match state.principal(id).map(|p| p.kind) {
        Some(PrincipalType::Group) => "Group",
        _ => "User",
    }
}

/// `principal == User::"u"` or `principal in Group::"g"`.
fn is_principal(state: &ea_policy::PolicyState, id: &PrincipalId) -> String {
    match principal_kind(state, id) {
        "Group" => format!("principal in Group::{}", quote(id.as_str())),
        kind => format!("principal == {kind}::{}", quote(id.as_str())),
    }
}

fn actions(ops: &[&Operation]) -> String {
    let list: Vec<String> = ops
        .iter()
        .map(|op| format!("Action::{}", quote(op.as_lowercase())))
        .collect();
    format!("[{}]", list.join(", "))
}

struct Cedar {
    policies: PolicySet,
    entities: Entities,
    requests: Vec<Request>,
    permits: usize,
    forbids: usize,
}

fn translate(g: &Generated) -> Result<Cedar> {
    let state = &g.state;
    let vocabulary: Vec<Operation> = g
        .vocabulary
        .iter()
        .map(|op| Operation::parse(op))
        .collect::<std::result::Result<_, _>>()?;
    if state.activations().next().is_some() {
        return Err("activations are not translated".into());
    }

    // Principals, with their direct groups as parents.
    let mut groups_of: BTreeMap<&PrincipalId, BTreeSet<&PrincipalId>> = BTreeMap::new();
    for group in state
        .principals()
        .filter(|p| p.kind == PrincipalType::Group)
    {
        for member in &group.members {
            groups_of.entry(member).or_default().insert(&group.id);
        }
    }
    let mut entities = Vec::new();
    for principal in state.principals() {
        let parents = groups_of
            .get(&principal.id)
            .into_iter()
            .flatten()
            .map(|g| uid("Group", g.as_str()))
            .collect::<Result<HashSet<_>>>()?;
        let kind = principal_kind(state, &principal.id);
        entities.push(Entity::new_no_attrs(
            uid(kind, principal.id.as_str())?,
            parents,
        ));
    }

    // Scopes, with their parent scope as parent.
    let denies = state.effective_deny_assignments(g.at);
    let mut scopes: BTreeSet<String> = BTreeSet::new();
    let mut add = |scope: &Scope| {
        for (prefix, _) in scope.ancestors() {
            scopes.insert(prefix.to_owned());
        }
    };
    state.role_assignments().for_each(|a| add(&a.scope));
    denies.iter().for_each(|d| add(&d.scope));
    g.requests.iter().for_each(|r| add(&r.scope));
    for scope in &scopes {
        let parents = match Scope::parse(scope)?.parent() {
            Some(parent) => HashSet::from([uid("Scope", parent.as_str())?]),
            None => HashSet::new(),
        };
        entities.push(Entity::new_no_attrs(uid("Scope", scope)?, parents));
    }

    let mut text = String::new();
    let (mut permits, mut forbids) = (0, 0);
    for a in state.role_assignments() {
        let role = state.role(&a.role_definition_id).ok_or("unknown role")?;
        let ops: Vec<&Operation> = vocabulary.iter().filter(|op| role.grants(op)).collect();
        if ops.is_empty() {
            continue;
        }
        let mut when = Vec::new();
        if let Some(t) = a.not_before {
            when.push(format!("context.now >= {}", t.unix_millis()));
        }
        if let Some(t) = a.not_after {
            when.push(format!("context.now < {}", t.unix_millis()));
        }
        let when = if when.is_empty() {
            String::new()
        } else {
            format!(" when {{ {} }}", when.join(" && "))
        };
        writeln!(
            text,
            "permit({}, action in {}, resource in Scope::{}){when};",
            is_principal(state, &a.principal_id),
            actions(&ops),
            quote(a.scope.as_str())
        )?;
        permits += 1;
    }
    for d in &denies {
        let ops: Vec<&Operation> = vocabulary
            .iter()
            .filter(|op| d.permissions.covers(op))
            .collect();
        if ops.is_empty() {
            continue;
        }
        let resource = if d.do_not_apply_to_child_scopes {
            format!("resource == Scope::{}", quote(d.scope.as_str()))
        } else {
            format!("resource in Scope::{}", quote(d.scope.as_str()))
        };
        let when = match &d.principals {
            DenyPrincipals::Everyone => String::new(),
            DenyPrincipals::Listed(list) => {
                let any: Vec<String> = list.iter().map(|p| is_principal(state, p)).collect();
                format!(" when {{ {} }}", any.join(" || "))
            }
        };
        let excluded: Vec<String> = d
            .exclude_principals
            .iter()
            .filter(|p| !p.is_platform())
            .map(|p| is_principal(state, p))
            .collect();
        let unless = if excluded.is_empty() {
            String::new()
        } else {
            format!(" unless {{ {} }}", excluded.join(" || "))
        };
        writeln!(
            text,
            "forbid(principal, action in {}, {resource}){when}{unless};",
            actions(&ops)
        )?;
        forbids += 1;
    }
    let policies = PolicySet::from_str(&text)?;
    let entities = Entities::from_entities(entities, None)?;

    let now = g.at.unix_millis();
    let requests = g
        .requests
        .iter()
        .map(|r| {
            let context =
                Context::from_pairs([("now".to_owned(), RestrictedExpression::new_long(now))])?;
            Ok(Request::new(
                uid(principal_kind(state, &r.principal), r.principal.as_str())?,
                uid("Action", r.operation.as_lowercase())?,
                uid("Scope", r.scope.as_str())?,
                context,
                None,
            )?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Cedar {
        policies,
        entities,
        requests,
        permits,
        forbids,
    })
}

struct Stats {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

/// Times every decision alone (for the percentiles) and all of them in a row (for the
/// rate), repeating the row until `budget` is spent.
fn measure(count: usize, budget: Duration, mut decide: impl FnMut(usize) -> bool) -> Stats {
    let mut samples: Vec<Duration> = (0..count)
        .map(|i| {
            let start = Instant::now();
            black_box(decide(i));
            start.elapsed()
        })
        .collect();
    samples.sort();
    let pick = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    let start = Instant::now();
    let mut done = 0usize;
    while start.elapsed() < budget || done == 0 {
        for i in 0..count {
            black_box(decide(i));
        }
        done += count;
    }
    Stats {
        per_second: done as f64 / start.elapsed().as_secs_f64(),
        p50: pick(0.50),
        p99: pick(0.99),
    }
}

fn main() -> Result<()> {
    let sizes: Vec<usize> = match std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<std::result::Result<Vec<_>, _>>()?
    {
        sizes if sizes.is_empty() => vec![500, 5_000, 50_000],
        sizes => sizes,
    };
    println!(
        "| assignments | Cedar policies (permit + forbid) | ea-policy decisions/s | p50 | p99 | Cedar decisions/s | p50 | p99 | time per decision, ours/Cedar |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for size in sizes {
        let generated = generate(&Shape::realistic(size), 20_000)?;
        let cedar = translate(&generated)?;
        let authorizer = Authorizer::new();
        let cedar_decide = |i: usize| {
            cedar
                .requests
                .get(i)
                .map(|r| {
                    authorizer
                        .is_authorized(r, &cedar.policies, &cedar.entities)
                        .decision()
                        == Decision::Allow
                })
                .unwrap_or(false)
        };
        let ours_decide = |i: usize| {
            generated
                .requests
                .get(i)
                .map(|r| {
                    generated
                        .state
                        .check(&r.principal, &r.operation, &r.scope, generated.at)
                        .allowed
                })
                .unwrap_or(false)
        };
        // Cedar takes milliseconds per decision: it decides a prefix of the same checks.
        let cedar_count = (2_000_000 / size.max(1)).clamp(20, 2_000);
        let mut allowed = 0;
        for i in 0..cedar_count {
            let (ours, theirs) = (ours_decide(i), cedar_decide(i));
            if ours != theirs {
                let r = &generated.requests[i];
                return Err(format!(
                    "decisions differ at {size} assignments on check {i} ({} {} {}): ours {ours}, Cedar {theirs}",
                    r.principal, r.operation, r.scope
                )
                .into());
            }
            allowed += usize::from(ours);
        }
        let ours = measure(
            generated.requests.len(),
            Duration::from_secs(3),
            ours_decide,
        );
        let theirs = measure(cedar_count, Duration::from_secs(3), cedar_decide);
        println!(
            "| {size} | {} + {} | {:.0} | {:.2?} | {:.2?} | {:.1} | {:.2?} | {:.2?} | {:.6} (Cedar/ours = {:.0}x) |",
            cedar.permits,
            cedar.forbids,
            ours.per_second,
            ours.p50,
            ours.p99,
            theirs.per_second,
            theirs.p50,
            theirs.p99,
            theirs.per_second / ours.per_second,
            ours.per_second / theirs.per_second,
        );
        eprintln!("  {size}: {cedar_count} checks agree ({allowed} allowed)");
    }
    Ok(())
}
