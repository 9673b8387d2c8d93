//! The signed subcommands: every change, approval decision, check, flow question and read,
//! each turned into an `Operation`, signed with the identity, sent, and its receipts checked
//! ([`crate::request`]).
//!
//! Commands are built as JSON and decoded into the engine's own types, so a bad value is
//! refused here with the same message the enclave would give (`10.0.0.0/33 is not a CIDR`).

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Subcommand;
use ea_ledger::{Operation, Query};
use ea_policy::{ApprovalStatus, Command};
use serde_json::{json, Value};

use crate::identity::PublicIdentity;
use crate::request::{self, RequestArgs};

/// Largest JSON file a command reads.
const MAX_FILE_LEN: u64 = 1024 * 1024;

fn read_json(path: &PathBuf) -> anyhow::Result<Value> {
    let mut text = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .take(MAX_FILE_LEN)
            .read_to_end(&mut text)
            .context("reading stdin")?;
    } else {
        std::fs::File::open(path)
            .with_context(|| format!("opening {}", path.display()))?
            .take(MAX_FILE_LEN)
            .read_to_end(&mut text)
            .with_context(|| format!("reading {}", path.display()))?;
    }
    serde_json::from_slice(&text).with_context(|| format!("{} is not JSON", path.display()))
}

fn command(value: Value) -> anyhow::Result<Command> {
    serde_json::from_value(value.clone()).with_context(|| format!("invalid command {value}"))
}

fn submit(value: Value, justification: Option<String>) -> anyhow::Result<Operation> {
    Ok(Operation::Submit {
        command: Box::new(command(value)?),
        justification,
    })
}

/// A fresh id for a new assignment (the client names assignments so retries are idempotent).
fn new_id(prefix: &str) -> anyhow::Result<String> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no randomness for an id"))?;
    Ok(format!("{prefix}-{}", hex::encode(bytes)))
}

/// Why a governed change is asked for.
#[derive(Debug, Clone, clap::Args)]
pub struct Justification {
    /// Why (recorded; copied into the approval when the change is governed).
    #[arg(long)]
    justification: Option<String>,
}

// ----- resources -----------------------------------------------------------------------

#[derive(Debug, Subcommand)]
pub enum CommunityCommand {
    /// Create a community.
    Create {
        /// /communities/{c}
        id: String,
        #[arg(long)]
        address_space: String,
        #[command(flatten)]
        why: Justification,
    },
    /// Change its address space (it must still hold every enclave).
    Update {
        id: String,
        #[arg(long)]
        address_space: String,
        #[command(flatten)]
        why: Justification,
    },
    /// Delete it and everything in it.
    Delete {
        id: String,
        #[command(flatten)]
        why: Justification,
    },
}

#[derive(Debug, Subcommand)]
pub enum EnclaveCommand {
    /// Create an enclave (governed: enclaveCreation).
    Create {
        /// /communities/{c}/virtualEnclaves/{e}
        id: String,
        #[arg(long)]
        address_space: String,
        #[command(flatten)]
        why: Justification,
    },
    /// Change its address space.
    Update {
        id: String,
        #[arg(long)]
        address_space: String,
        #[command(flatten)]
        why: Justification,
    },
    /// Delete it and everything in it.
    Delete {
        id: String,
        #[command(flatten)]
        why: Justification,
    },
}

#[derive(Debug, Subcommand)]
pub enum WorkloadCommand {
    /// Create a workload.
    Create(WorkloadArgs),
    /// Replace a workload's settings.
    Update(WorkloadArgs),
    /// Delete it.
    Delete {
        id: String,
        #[command(flatten)]
        why: Justification,
    },
}

#[derive(Debug, clap::Args)]
pub struct WorkloadArgs {
    /// /communities/{c}/virtualEnclaves/{e}/workloads/{w}
    id: String,
    /// Protect it: a deny assignment lets only its privileged principals change it.
    #[arg(long)]
    protected: bool,
    /// A principal excluded from the protection (repeatable).
    #[arg(long = "privileged", value_name = "PRINCIPAL")]
    privileged: Vec<String>,
    #[command(flatten)]
    why: Justification,
}

#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// Create an enclave or community endpoint (governed).
    Create(EndpointArgs),
    /// Replace its rules and approvers (governed).
    Update(EndpointArgs),
    /// Delete it (its connections become Disconnected).
    Delete {
        id: String,
        #[command(flatten)]
        why: Justification,
    },
}

#[derive(Debug, clap::Args)]
pub struct EndpointArgs {
    /// .../virtualEnclaves/{e}/enclaveEndpoints/{n} or /communities/{c}/communityEndpoints/{n}
    id: String,
    /// A rule NAME,DESTINATION,PORTS,PROTOCOLS, e.g. https,0.0.0.0/0,443,TCP or
    /// dns,10.0.0.2,53,TCP+UDP (repeatable).
    #[arg(long = "rule", value_name = "RULE")]
    rules: Vec<String>,
    /// A principal or group one of whose approvals every connection to it needs (repeatable).
    #[arg(long = "approver", value_name = "PRINCIPAL")]
    approvers: Vec<String>,
    #[command(flatten)]
    why: Justification,
}

#[derive(Debug, Subcommand)]
pub enum ConnectionCommand {
    /// Create a connection (governed: connectionCreation and endpoint approvers).
    Create(ConnectionArgs),
    /// Change a connection (governed: connectionUpdate and endpoint approvers).
    Update(ConnectionArgs),
    /// Delete it.
    Delete {
        id: String,
        #[command(flatten)]
        why: Justification,
    },
}

#[derive(Debug, clap::Args)]
pub struct ConnectionArgs {
    /// /communities/{c}/enclaveConnections/{n}
    id: String,
    /// The source enclave.
    #[arg(long)]
    source: String,
    /// The addresses of the source enclave it carries.
    #[arg(long)]
    source_cidr: String,
    /// The destination endpoint.
    #[arg(long)]
    endpoint: String,
    #[command(flatten)]
    why: Justification,
}

#[derive(Debug, Subcommand)]
pub enum MaintenanceCommand {
    /// Set a community's or enclave's maintenance mode (governed).
    Set {
        /// The community or enclave.
        scope: String,
        /// Off, General or Advanced.
        #[arg(long)]
        mode: String,
        /// A maintenance principal (repeatable; at least one unless Off).
        #[arg(long = "principal", value_name = "PRINCIPAL")]
        principals: Vec<String>,
        /// The configuration's justification: Off, Networking or Governance.
        #[arg(long, default_value = "Off")]
        reason: String,
        /// When it turns Off by itself (RFC 3339).
        #[arg(long)]
        expires_at: Option<String>,
        #[command(flatten)]
        why: Justification,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApprovalSettingsCommand {
    /// Set a community's or enclave's approvalSettings from a JSON file (`-` for stdin).
    Set {
        /// The community or enclave.
        scope: String,
        /// The settings: {"enclaveCreation": {"approvalPolicy": "Required", ...}, ...}
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        why: Justification,
    },
}

// ----- directory, roles, deny assignments ----------------------------------------------

#[derive(Debug, Subcommand)]
pub enum PrincipalCommand {
    /// Create a user, group or service principal.
    Create {
        id: String,
        /// User, Group or ServicePrincipal.
        #[arg(long = "type", default_value = "User")]
        kind: String,
        #[arg(long)]
        display_name: Option<String>,
        /// A public identity file (govctl keygen --public-out) whose key it gets (repeatable).
        #[arg(long = "key", value_name = "FILE")]
        keys: Vec<PathBuf>,
        #[command(flatten)]
        why: Justification,
    },
    /// Replace a principal's record (name and keys) from a JSON file.
    Update {
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        why: Justification,
    },
    /// Add a key to a principal (reads its record, then updates it).
    AddKey {
        id: String,
        /// A public identity file.
        #[arg(long = "key", value_name = "FILE")]
        key: PathBuf,
        #[command(flatten)]
        why: Justification,
    },
    /// Revoke one of a principal's keys, for good (reads its record, then updates it).
    RevokeKey {
        id: String,
        key_id: String,
        #[command(flatten)]
        why: Justification,
    },
    /// Delete a principal nothing refers to any more.
    Delete {
        id: String,
        #[command(flatten)]
        why: Justification,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Add a member (cycles are refused).
    AddMember {
        group: String,
        member: String,
        #[command(flatten)]
        why: Justification,
    },
    /// Remove a member.
    RemoveMember {
        group: String,
        member: String,
        #[command(flatten)]
        why: Justification,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Define or redefine a custom role from a JSON file.
    Define {
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        why: Justification,
    },
    /// Delete a custom role no assignment uses.
    Delete {
        id: String,
        #[command(flatten)]
        why: Justification,
    },
    /// Assign a role at a scope.
    Assign {
        #[arg(long)]
        principal: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        scope: String,
        /// The assignment's id (default: a new random one).
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        not_before: Option<String>,
        #[arg(long)]
        not_after: Option<String>,
        #[command(flatten)]
        why: Justification,
    },
    /// Remove a role assignment.
    Unassign {
        id: String,
        #[command(flatten)]
        why: Justification,
    },
    /// Make a role eligible (just-in-time).
    Eligible {
        #[arg(long)]
        principal: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        scope: String,
        #[arg(long)]
        id: Option<String>,
        /// Longest activation, 1 to 24 hours.
        #[arg(long, default_value_t = 8)]
        max_activation_hours: u8,
        #[command(flatten)]
        why: Justification,
    },
    /// Remove an eligible assignment (ending its activations).
    RemoveEligible {
        id: String,
        #[command(flatten)]
        why: Justification,
    },
    /// Activate one of your eligible assignments (governed: roleActivation).
    Activate {
        /// The eligible assignment.
        eligible: String,
        #[arg(long)]
        duration_minutes: u32,
        /// Why (required by the activation itself).
        #[arg(long)]
        justification: String,
        /// The activation's id (default: a new random one).
        #[arg(long)]
        id: Option<String>,
    },
    /// End an activation early.
    Deactivate {
        id: String,
        #[command(flatten)]
        why: Justification,
    },
}

#[derive(Debug, Subcommand)]
pub enum DenyCommand {
    /// Create a deny assignment from a JSON file.
    Create {
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        why: Justification,
    },
    /// Delete a deny assignment.
    Delete {
        id: String,
        #[command(flatten)]
        why: Justification,
    },
}

// ----- approvals ------------------------------------------------------------------------

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// Approvals you may read, optionally filtered.
    List {
        /// Pending, Approved, Rejected, Expired, Deleted or Failed.
        #[arg(long)]
        state: Option<String>,
        /// Only those whose target is at or below this scope.
        #[arg(long)]
        scope: Option<String>,
        /// Only those of this requester.
        #[arg(long)]
        requester: Option<String>,
    },
    /// One approval.
    Show { id: String },
    /// Approve (needs the Enclave Approver role or the approve data action at its target;
    /// an image change needs Owner at `/` instead; never your own request).
    Approve {
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject: one valid rejection ends it, and nothing is created.
    Reject {
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Withdraw a pending approval (its requester, or an owner of its target).
    Delete { id: String },
}

fn scope(text: &str) -> anyhow::Result<ea_policy::Scope> {
    ea_policy::Scope::parse(text).with_context(|| format!("{text:?} is not a scope"))
}

fn rule(text: &str) -> anyhow::Result<Value> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let [name, destination, ports, protocols] = parts.as_slice() else {
        bail!("--rule {text:?}: expected NAME,DESTINATION,PORTS,PROTOCOLS");
    };
    let protocols: Vec<&str> = protocols.split('+').map(str::trim).collect();
    Ok(
        json!({"endpointRuleName": name, "destination": destination, "ports": ports,
              "protocols": protocols}),
    )
}

fn maybe(value: Option<&String>) -> Value {
    value.map_or(Value::Null, |v| Value::String(v.clone()))
}

/// Sets a field of a JSON object (a no-op on anything else: the objects here are built by
/// `json!` or read from the service, and the enclave refuses a malformed one anyway).
fn set(object: &mut Value, key: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        map.insert(key.to_owned(), value);
    }
}

/// Drops null fields, so optional flags left out are absent rather than null.
fn compact(mut value: Value) -> Value {
    if let Value::Object(map) = &mut value {
        map.retain(|_, v| !v.is_null());
    }
    value
}

pub async fn community(args: &RequestArgs, command: CommunityCommand) -> anyhow::Result<ExitCode> {
    let op = match command {
        CommunityCommand::Create {
            id,
            address_space,
            why,
        } => submit(
            json!({"createCommunity": {"id": id, "addressSpace": address_space}}),
            why.justification,
        )?,
        CommunityCommand::Update {
            id,
            address_space,
            why,
        } => submit(
            json!({"updateCommunity": {"id": id, "addressSpace": address_space}}),
            why.justification,
        )?,
        CommunityCommand::Delete { id, why } => {
            submit(json!({"deleteCommunity": {"id": id}}), why.justification)?
        }
    };
    request::run(args, &op).await
}

pub async fn enclave(args: &RequestArgs, command: EnclaveCommand) -> anyhow::Result<ExitCode> {
    let op = match command {
        EnclaveCommand::Create {
            id,
            address_space,
            why,
        } => submit(
            json!({"createVirtualEnclave": {"id": id, "addressSpace": address_space}}),
            why.justification,
        )?,
        EnclaveCommand::Update {
            id,
            address_space,
            why,
        } => submit(
            json!({"updateVirtualEnclave": {"id": id, "addressSpace": address_space}}),
            why.justification,
        )?,
        EnclaveCommand::Delete { id, why } => submit(
            json!({"deleteVirtualEnclave": {"id": id}}),
            why.justification,
        )?,
    };
    request::run(args, &op).await
}

fn workload_json(args: WorkloadArgs) -> (Value, Option<String>) {
    let mut workload = json!({"id": args.id});
    if args.protected {
        set(&mut workload, "protected", Value::Bool(true));
    }
    if !args.privileged.is_empty() {
        set(
            &mut workload,
            "privilegedPrincipals",
            json!(args.privileged),
        );
    }
    (workload, args.why.justification)
}

pub async fn workload(args: &RequestArgs, command: WorkloadCommand) -> anyhow::Result<ExitCode> {
    let op = match command {
        WorkloadCommand::Create(w) => {
            let (w, why) = workload_json(w);
            submit(json!({ "createWorkload": w }), why)?
        }
        WorkloadCommand::Update(w) => {
            let (w, why) = workload_json(w);
            submit(json!({ "updateWorkload": w }), why)?
        }
        WorkloadCommand::Delete { id, why } => {
            submit(json!({"deleteWorkload": {"id": id}}), why.justification)?
        }
    };
    request::run(args, &op).await
}

fn endpoint_json(args: EndpointArgs) -> anyhow::Result<(Value, Option<String>)> {
    let rules = args
        .rules
        .iter()
        .map(|r| rule(r))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut endpoint = json!({"id": args.id, "ruleCollection": rules});
    if !args.approvers.is_empty() {
        set(&mut endpoint, "approvers", json!(args.approvers));
    }
    Ok((endpoint, args.why.justification))
}

pub async fn endpoint(args: &RequestArgs, command: EndpointCommand) -> anyhow::Result<ExitCode> {
    let op = match command {
        EndpointCommand::Create(e) => {
            let (e, why) = endpoint_json(e)?;
            submit(json!({ "createEndpoint": e }), why)?
        }
        EndpointCommand::Update(e) => {
            let (e, why) = endpoint_json(e)?;
            submit(json!({ "updateEndpoint": e }), why)?
        }
        EndpointCommand::Delete { id, why } => {
            submit(json!({"deleteEndpoint": {"id": id}}), why.justification)?
        }
    };
    request::run(args, &op).await
}

fn connection_json(args: &ConnectionArgs) -> Value {
    json!({"id": args.id, "sourceResourceId": args.source, "sourceCidr": args.source_cidr,
           "destinationEndpointId": args.endpoint})
}

pub async fn connection(
    args: &RequestArgs,
    command: ConnectionCommand,
) -> anyhow::Result<ExitCode> {
    let op = match command {
        ConnectionCommand::Create(c) => submit(
            json!({ "createConnection": connection_json(&c) }),
            c.why.justification,
        )?,
        ConnectionCommand::Update(c) => submit(
            json!({ "updateConnection": connection_json(&c) }),
            c.why.justification,
        )?,
        ConnectionCommand::Delete { id, why } => {
            submit(json!({"deleteConnection": {"id": id}}), why.justification)?
        }
    };
    request::run(args, &op).await
}

pub async fn maintenance(
    args: &RequestArgs,
    command: MaintenanceCommand,
) -> anyhow::Result<ExitCode> {
    let MaintenanceCommand::Set {
        scope,
        mode,
        principals,
        reason,
        expires_at,
        why,
    } = command;
    let configuration = compact(json!({"mode": mode, "principals": principals,
        "justification": reason, "expiresAt": maybe(expires_at.as_ref())}));
    let op = submit(
        json!({"setMaintenanceMode": {"scope": scope, "configuration": configuration}}),
        why.justification,
    )?;
    request::run(args, &op).await
}

pub async fn approval_settings(
    args: &RequestArgs,
    command: ApprovalSettingsCommand,
) -> anyhow::Result<ExitCode> {
    let ApprovalSettingsCommand::Set { scope, file, why } = command;
    let settings = read_json(&file)?;
    let op = submit(
        json!({"setApprovalSettings": {"scope": scope, "settings": settings}}),
        why.justification,
    )?;
    request::run(args, &op).await
}

/// Reads a principal's record with a signed read (for key changes).
async fn current_principal(args: &RequestArgs, id: &str) -> anyhow::Result<Value> {
    let read = Operation::Read(Query::Principals {
        id: Some(
            id.parse()
                .with_context(|| format!("{id:?} is not a principal id"))?,
        ),
    });
    let bytes = request::sign(args, &read)?;
    let mut trust = if args.dangerous_skip_receipts {
        None
    } else {
        Some(crate::trust::Trust::load(&args.trust)?)
    };
    let client = crate::client::ApiClient::new(&args.endpoint)?;
    let request::Sent { status, body, .. } = request::send(&client, trust.as_mut(), &bytes).await?;
    let principal = body
        .pointer("/result/result/principals/0")
        .cloned()
        .with_context(|| format!("reading principal {id} failed ({status}): {body}"))?;
    Ok(principal)
}

pub async fn principal(args: &RequestArgs, command: PrincipalCommand) -> anyhow::Result<ExitCode> {
    let op = match command {
        PrincipalCommand::Create {
            id,
            kind,
            display_name,
            keys,
            why,
        } => {
            let keys = keys
                .iter()
                .map(|path| Ok(PublicIdentity::load(path)?.key_entry()))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut principal = json!({"id": id, "type": kind});
            if let Some(name) = display_name {
                set(&mut principal, "displayName", Value::String(name));
            }
            if !keys.is_empty() {
                set(&mut principal, "keys", Value::Array(keys));
            }
            submit(json!({ "createPrincipal": principal }), why.justification)?
        }
        PrincipalCommand::Update { file, why } => submit(
            json!({ "updatePrincipal": read_json(&file)? }),
            why.justification,
        )?,
        PrincipalCommand::AddKey { id, key, why } => {
            let mut principal = current_principal(args, &id).await?;
            let entry = PublicIdentity::load(&key)?.key_entry();
            match principal.get_mut("keys").and_then(Value::as_array_mut) {
                Some(keys) => keys.push(entry),
                None => set(&mut principal, "keys", json!([entry])),
            }
            submit(json!({ "updatePrincipal": principal }), why.justification)?
        }
        PrincipalCommand::RevokeKey { id, key_id, why } => {
            let mut principal = current_principal(args, &id).await?;
            let key = principal
                .get_mut("keys")
                .and_then(Value::as_array_mut)
                .and_then(|keys| keys.iter_mut().find(|k| k["keyId"] == key_id.as_str()))
                .with_context(|| format!("{id} has no key {key_id}"))?;
            key["revoked"] = Value::Bool(true);
            submit(json!({ "updatePrincipal": principal }), why.justification)?
        }
        PrincipalCommand::Delete { id, why } => {
            submit(json!({"deletePrincipal": {"id": id}}), why.justification)?
        }
    };
    request::run(args, &op).await
}

pub async fn group(args: &RequestArgs, command: GroupCommand) -> anyhow::Result<ExitCode> {
    let op = match command {
        GroupCommand::AddMember { group, member, why } => submit(
            json!({"addGroupMember": {"group": group, "member": member}}),
            why.justification,
        )?,
        GroupCommand::RemoveMember { group, member, why } => submit(
            json!({"removeGroupMember": {"group": group, "member": member}}),
            why.justification,
        )?,
    };
    request::run(args, &op).await
}

pub async fn role(args: &RequestArgs, command: RoleCommand) -> anyhow::Result<ExitCode> {
    let op = match command {
        RoleCommand::Define { file, why } => submit(
            json!({ "defineRole": read_json(&file)? }),
            why.justification,
        )?,
        RoleCommand::Delete { id, why } => submit(
            json!({"deleteRoleDefinition": {"id": id}}),
            why.justification,
        )?,
        RoleCommand::Assign {
            principal,
            role,
            scope,
            id,
            not_before,
            not_after,
            why,
        } => {
            let id = match id {
                Some(id) => id,
                None => new_id("ra")?,
            };
            let assignment = compact(json!({"id": id, "principalId": principal,
                "roleDefinitionId": role, "scope": scope,
                "notBefore": maybe(not_before.as_ref()), "notAfter": maybe(not_after.as_ref())}));
            submit(json!({ "assignRole": assignment }), why.justification)?
        }
        RoleCommand::Unassign { id, why } => submit(
            json!({"removeRoleAssignment": {"id": id}}),
            why.justification,
        )?,
        RoleCommand::Eligible {
            principal,
            role,
            scope,
            id,
            max_activation_hours,
            why,
        } => {
            let id = match id {
                Some(id) => id,
                None => new_id("el")?,
            };
            submit(
                json!({"assignEligibleRole": {"id": id, "principalId": principal,
                    "roleDefinitionId": role, "scope": scope,
                    "maxActivationHours": max_activation_hours}}),
                why.justification,
            )?
        }
        RoleCommand::RemoveEligible { id, why } => {
            submit(json!({"removeEligibleRole": {"id": id}}), why.justification)?
        }
        RoleCommand::Activate {
            eligible,
            duration_minutes,
            justification,
            id,
        } => {
            let id = match id {
                Some(id) => id,
                None => new_id("act")?,
            };
            submit(
                json!({"activateRole": {"id": id, "eligibleAssignmentId": eligible,
                    "justification": justification, "durationMinutes": duration_minutes}}),
                Some(justification.clone()),
            )?
        }
        RoleCommand::Deactivate { id, why } => {
            submit(json!({"deactivateRole": {"id": id}}), why.justification)?
        }
    };
    request::run(args, &op).await
}

pub async fn deny(args: &RequestArgs, command: DenyCommand) -> anyhow::Result<ExitCode> {
    let op = match command {
        DenyCommand::Create { file, why } => submit(
            json!({ "createDenyAssignment": read_json(&file)? }),
            why.justification,
        )?,
        DenyCommand::Delete { id, why } => submit(
            json!({"deleteDenyAssignment": {"id": id}}),
            why.justification,
        )?,
    };
    request::run(args, &op).await
}

pub async fn approvals(args: &RequestArgs, command: ApprovalsCommand) -> anyhow::Result<ExitCode> {
    let op = match command {
        ApprovalsCommand::List {
            state,
            scope: under,
            requester,
        } => Operation::Read(Query::Approvals {
            status: state
                .map(|s| s.parse::<ApprovalStatus>().map_err(anyhow::Error::msg))
                .transpose()?,
            scope: under.as_deref().map(scope).transpose()?,
            requester: requester
                .map(|r| {
                    r.parse()
                        .with_context(|| format!("{r:?} is not a principal id"))
                })
                .transpose()?,
        }),
        ApprovalsCommand::Show { id } => Operation::Read(Query::Approval {
            id: id
                .parse()
                .with_context(|| format!("{id:?} is not an approval id"))?,
        }),
        ApprovalsCommand::Approve { id, comment } => {
            submit(compact_comment("approve", &id, comment), None)?
        }
        ApprovalsCommand::Reject { id, comment } => {
            submit(compact_comment("reject", &id, comment), None)?
        }
        ApprovalsCommand::Delete { id } => submit(json!({"deleteApproval": {"id": id}}), None)?,
    };
    request::run(args, &op).await
}

fn compact_comment(verb: &str, id: &str, comment: Option<String>) -> Value {
    let mut body = json!({ "id": id });
    if let Some(comment) = comment {
        set(&mut body, "comment", Value::String(comment));
    }
    json!({ verb: body })
}

// ----- generic change, questions and reads ---------------------------------------------

/// `govctl submit`: any command, as JSON (the enclave's command format).
#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// The command as JSON, e.g. {"createVirtualEnclave": {"id": ..., "addressSpace": ...}}
    /// (`-` reads stdin).
    #[arg(long, value_name = "FILE")]
    command: PathBuf,
    #[command(flatten)]
    why: Justification,
}

pub async fn submit_any(args: &RequestArgs, submit_args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let op = submit(
        read_json(&submit_args.command)?,
        submit_args.why.justification,
    )?;
    request::run(args, &op).await
}

/// `govctl check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The operation, e.g. Microsoft.Network/virtualNetworks/write.
    #[arg(long = "op")]
    operation: String,
    /// Where.
    #[arg(long)]
    scope: String,
    /// Whose permission (default: yours; someone else's needs roleAssignments/read there).
    #[arg(long)]
    principal: Option<String>,
    /// Match the operation as a data action.
    #[arg(long)]
    data_action: bool,
}

pub async fn check(args: &RequestArgs, check: CheckArgs) -> anyhow::Result<ExitCode> {
    let op = Operation::Check {
        principal: check
            .principal
            .map(|p| {
                p.parse()
                    .with_context(|| format!("{p:?} is not a principal id"))
            })
            .transpose()?,
        operation: check.operation,
        scope: scope(&check.scope)?,
        data_action: check.data_action,
    };
    request::run(args, &op).await
}

/// `govctl flow`.
#[derive(Debug, clap::Args)]
pub struct FlowArgs {
    /// The source enclave.
    #[arg(long = "from")]
    source: String,
    /// An IP address or host name.
    #[arg(long = "to")]
    destination: String,
    #[arg(long)]
    port: u16,
    /// TCP, UDP, ICMP, HTTP or HTTPS.
    #[arg(long)]
    protocol: String,
}

pub async fn flow(args: &RequestArgs, flow: FlowArgs) -> anyhow::Result<ExitCode> {
    let protocol = serde_json::from_value(Value::String(flow.protocol.to_uppercase()))
        .with_context(|| format!("{:?} is not a protocol", flow.protocol))?;
    let op = Operation::Flow {
        source: scope(&flow.source)?,
        destination: flow.destination,
        port: flow.port,
        protocol,
    };
    request::run(args, &op).await
}

/// The reads.
#[derive(Debug, Subcommand)]
pub enum ReadCommand {
    /// One resource.
    Get { scope: String },
    /// Resources at or below a scope that you may read.
    List {
        #[arg(default_value = "/")]
        scope: String,
    },
    /// Role assignments, eligible assignments and activations you may read.
    RoleAssignments {
        #[arg(long)]
        scope: Option<String>,
        #[arg(long)]
        principal: Option<String>,
    },
    /// Custom deny assignments you may read.
    DenyAssignments {
        #[arg(long)]
        scope: Option<String>,
    },
    /// Principals (all needs principals/read at /; yourself always).
    Principals { id: Option<String> },
    /// Built-in and custom role definitions.
    RoleDefinitions,
    /// The whole policy state, as a policy document (needs read at `/`).
    State,
}

pub async fn read(args: &RequestArgs, command: ReadCommand) -> anyhow::Result<ExitCode> {
    let principal = |p: String| {
        p.parse::<ea_policy::PrincipalId>()
            .with_context(|| format!("{p:?} is not a principal id"))
    };
    let query = match command {
        ReadCommand::Get { scope: s } => Query::Resource { scope: scope(&s)? },
        ReadCommand::List { scope: s } => Query::Resources { scope: scope(&s)? },
        ReadCommand::RoleAssignments {
            scope: s,
            principal: p,
        } => Query::RoleAssignments {
            scope: s.as_deref().map(scope).transpose()?,
            principal: p.map(principal).transpose()?,
        },
        ReadCommand::DenyAssignments { scope: s } => Query::DenyAssignments {
            scope: s.as_deref().map(scope).transpose()?,
        },
        ReadCommand::Principals { id } => Query::Principals {
            id: id.map(principal).transpose()?,
        },
        ReadCommand::RoleDefinitions => Query::RoleDefinitions,
        ReadCommand::State => Query::State,
    };
    request::run(args, &Operation::Read(query)).await
}
