//! `govctl simulate`: offline what-if answers from a policy state file
//! (docs/policy-state.md). Prints the request and the decision with its explanation as JSON;
//! exit code 0 for allow, 3 for deny.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use ea_policy::{
    Address, Operation, OperationKind, PolicyState, PrincipalId, Protocol, Scope, Timestamp,
};
use serde_json::json;

/// Exit code of a denial (0 is an allow, 1 an error).
const DENIED: u8 = 3;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit code: 0 allowed, 3 denied, 1 error (the state file is refused \
                        with the path of the offending field)."
)]
pub struct Args {
    /// The policy state, a JSON file (docs/policy-state.md).
    #[arg(long, value_name = "FILE")]
    state: PathBuf,
    /// Who asks.
    #[arg(
        long,
        value_name = "ID",
        required_unless_present = "flow",
        conflicts_with = "flow"
    )]
    principal: Option<String>,
    /// What: `{Provider}/{resourceType}/.../{verb}`.
    #[arg(
        long = "op",
        value_name = "OPERATION",
        required_unless_present = "flow",
        conflicts_with = "flow"
    )]
    operation: Option<String>,
    /// Where: a scope path, e.g. /communities/c1/virtualEnclaves/e1.
    #[arg(
        long,
        value_name = "PATH",
        required_unless_present = "flow",
        conflicts_with = "flow"
    )]
    scope: Option<String>,
    /// When, in RFC 3339 (default: now).
    #[arg(long, value_name = "TIME", conflicts_with = "flow")]
    at: Option<String>,
    /// The operation is a data action (approve and reject are recognized without this).
    #[arg(long, conflicts_with = "flow")]
    data_action: bool,
    /// Decide a network flow instead: needs --from, --to, --port and --protocol.
    #[arg(
        long,
        requires = "from",
        requires = "to",
        requires = "port",
        requires = "protocol"
    )]
    flow: bool,
    /// The source enclave's scope.
    #[arg(long, value_name = "ENCLAVE", requires = "flow")]
    from: Option<String>,
    /// The destination: an IP address or a host name.
    #[arg(long, value_name = "ADDR", requires = "flow")]
    to: Option<String>,
    /// The destination port.
    #[arg(long, value_name = "N", requires = "flow")]
    port: Option<u16>,
    /// TCP, UDP, ICMP, HTTP or HTTPS.
    #[arg(long, value_name = "P", requires = "flow")]
    protocol: Option<String>,
}

fn required<'a>(value: &'a Option<String>, flag: &str) -> Result<&'a str> {
    value
        .as_deref()
        .ok_or_else(|| anyhow!("{flag} is required"))
}

fn load(path: &PathBuf) -> Result<PolicyState> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the policy state {}", path.display()))?;
    PolicyState::from_json(&text)
        .map_err(|e| anyhow!("{}: invalid policy state:\n{e}", path.display()))
}

fn now() -> Result<Timestamp> {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the clock is before 1970")?;
    let millis = i64::try_from(since_epoch.as_millis()).context("the clock is past year 9999")?;
    Ok(Timestamp::from_unix_millis(millis)?)
}

fn exit_code(allowed: bool) -> ExitCode {
    if allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(DENIED)
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let state = load(&args.state)?;
    let (allowed, output) = if args.flow {
        let from = Scope::parse(required(&args.from, "--from")?)?;
        let to: Address = required(&args.to, "--to")?
            .parse()
            .map_err(|e: String| anyhow!("--to: {e}"))?;
        let port = args.port.ok_or_else(|| anyhow!("--port is required"))?;
        let protocol: Protocol = required(&args.protocol, "--protocol")?
            .parse()
            .map_err(|e: String| anyhow!("--protocol: {e}"))?;
        if protocol == Protocol::Any {
            return Err(anyhow!(
                "--protocol: traffic has one protocol; ANY is for rules"
            ));
        }
        let decision = state.flow(&from, &to, port, protocol);
        let output = json!({
            "request": {"from": from, "to": to, "port": port, "protocol": protocol},
            "decision": decision,
        });
        (decision.allowed, output)
    } else {
        let principal = PrincipalId::new(required(&args.principal, "--principal")?)?;
        let text = required(&args.operation, "--op")?;
        let operation = if args.data_action {
            Operation::new(text, OperationKind::DataAction)?
        } else {
            Operation::parse(text)?
        };
        let scope = Scope::parse(required(&args.scope, "--scope")?)?;
        let at = match &args.at {
            Some(text) => Timestamp::parse_rfc3339(text).context("--at")?,
            None => now()?,
        };
        let decision = state.check(&principal, &operation, &scope, at);
        let output = json!({
            "request": {
                "principal": principal,
                "operation": operation.to_string(),
                "operationKind": operation.kind(),
                "scope": scope,
                "at": at,
            },
            "decision": decision,
        });
        (decision.allowed, output)
    };
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(exit_code(allowed))
}
