//! `govctl genesis init`: write a genesis document; `govctl genesis submit`: give it to an
//! enclave whose log is empty, check what it recorded, and pin the new log in a trust file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, ensure, Context};
use ea_audit::receipt::verify_receipt;
use ea_audit::record::{Record, RecordKind};
use ea_ledger::{Genesis, RecordProof};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::client::{ApiClient, EndpointArgs};
use crate::identity::PublicIdentity;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: GenesisCommand,
}

#[derive(Debug, clap::Subcommand)]
enum GenesisCommand {
    /// Write a genesis document: a community, its administrators and members, settings.
    Init(InitArgs),
    /// Give a genesis document to an enclave whose log is empty; print the genesis hash.
    Submit(SubmitArgs),
}

#[derive(Debug, clap::Args)]
struct InitArgs {
    /// A name for the deployment.
    #[arg(long)]
    name: String,
    /// Start from this policy document (docs/policy-state.md) instead of an empty one.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// A community to create: /communities/{c} (with --address-space).
    #[arg(long, requires = "address_space")]
    community: Option<String>,
    /// The community's address space.
    #[arg(long)]
    address_space: Option<String>,
    /// The community's approvalSettings (JSON file).
    #[arg(long, value_name = "FILE", requires = "community")]
    approval_settings: Option<PathBuf>,
    /// A public identity (govctl keygen --public-out) who becomes Owner at `/`: may manage
    /// the directory, roles and resources, but approves nothing (repeatable).
    #[arg(long = "admin", value_name = "FILE")]
    admins: Vec<PathBuf>,
    /// A public identity who becomes a principal without roles (repeatable).
    #[arg(long = "user", value_name = "FILE")]
    users: Vec<PathBuf>,
    /// Turn off the recording of checks and flow decisions.
    #[arg(long)]
    no_decision_logging: bool,
    /// Pending approvals one requester may have at once.
    #[arg(long, default_value_t = ea_ledger::DEFAULT_MAX_PENDING_APPROVALS)]
    max_pending_approvals: u32,
    /// Name the image the log starts with (its measurements file, `govctl eif pcrs`): the
    /// first enclave must be of it. Without it, the image of the first enclave to start is
    /// admitted as it starts (docs/policy-state.md, "Enclave images").
    #[arg(long, value_name = "FILE")]
    image_pcrs: Option<PathBuf>,
    /// The image change setting (imageChange) as JSON: Required, at least 2 approvers who
    /// hold Owner at `/` (the default when absent), optionally mandatory approvers.
    #[arg(long, value_name = "FILE")]
    image_change: Option<PathBuf>,
    /// A witness whose cosignatures the log requires (its verifier key, as `witness keygen`
    /// prints it; repeatable): the enclave serves only once --witness-threshold of them
    /// cosigned its checkpoint. Replaced later only by an approved `govctl witness set`.
    #[arg(long = "witness", value_name = "VKEY", requires = "witness_threshold")]
    witnesses: Vec<String>,
    /// How many distinct witnesses must cosign (1 to the number of --witness).
    #[arg(long, value_name = "K", requires = "witnesses")]
    witness_threshold: Option<u32>,
    /// Where to write the document (default: stdout).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct SubmitArgs {
    /// The genesis document.
    file: PathBuf,
    #[command(flatten)]
    endpoint: EndpointArgs,
    /// Then pin the new log in this trust file (with --root/--pcr/--pcrs), as
    /// `govctl trust init` would.
    #[arg(long, value_name = "FILE")]
    trust_out: Option<PathBuf>,
    /// The attestation root for --trust-out (PEM; default the AWS root).
    #[arg(long, value_name = "PEM")]
    root: Option<PathBuf>,
    /// INSECURE, for --trust-out: pin no root and accept only the unsigned attestation
    /// documents of QEMU's nitro-enclave machine (recorded in the trust file; govctl warns at
    /// every use). For developing under QEMU.
    #[arg(long, conflicts_with = "root", requires = "trust_out")]
    insecure_qemu_attestation: bool,
    /// Expected PCR N for --trust-out (repeatable).
    #[arg(long = "pcr", value_name = "N=HEX")]
    pcrs: Vec<String>,
    /// Expected PCRs for --trust-out (govctl eif pcrs).
    #[arg(long = "pcrs", value_name = "FILE")]
    pcrs_file: Option<PathBuf>,
    /// Accept a debug-mode enclave for --trust-out.
    #[arg(long)]
    allow_debug: bool,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        GenesisCommand::Init(args) => init(&args),
        GenesisCommand::Submit(args) => submit(&args).await,
    }
}

fn init(args: &InitArgs) -> anyhow::Result<ExitCode> {
    let mut policy: serde_json::Map<String, Value> = match &args.policy {
        Some(path) => {
            let value: Value = serde_json::from_str(
                &std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?,
            )
            .with_context(|| format!("{} is not JSON", path.display()))?;
            match value {
                Value::Object(map) => map,
                _ => bail!(
                    "{} must hold a policy document (a JSON object)",
                    path.display()
                ),
            }
        }
        None => serde_json::Map::new(),
    };
    let list = |policy: &serde_json::Map<String, Value>, key: &str| -> anyhow::Result<Vec<Value>> {
        match policy.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => Ok(items.clone()),
            Some(_) => bail!("the policy's {key} is not a list"),
        }
    };
    let mut principals = list(&policy, "principals")?;
    let mut assignments = list(&policy, "roleAssignments")?;
    let mut communities = list(&policy, "communities")?;
    for (path, admin) in args
        .admins
        .iter()
        .map(|p| (p, true))
        .chain(args.users.iter().map(|p| (p, false)))
    {
        let identity = PublicIdentity::load(path)?;
        principals.push(json!({"id": identity.principal, "type": "User",
                               "keys": [identity.key_entry()]}));
        if admin {
            assignments.push(
                json!({"id": format!("genesis-owner-{}", identity.principal),
                "principalId": identity.principal, "roleDefinitionId": "Owner", "scope": "/"}),
            );
        }
    }
    if let (Some(id), Some(space)) = (&args.community, &args.address_space) {
        let mut community = serde_json::Map::new();
        community.insert("id".into(), json!(id));
        community.insert("addressSpace".into(), json!(space));
        if let Some(path) = &args.approval_settings {
            let settings: Value = serde_json::from_str(
                &std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?,
            )
            .with_context(|| format!("{} is not JSON", path.display()))?;
            community.insert("approvalSettings".into(), settings);
        }
        communities.push(Value::Object(community));
    }
    if let Some(path) = &args.image_pcrs {
        let image = crate::image::image_of(&[], Some(path))?;
        let mut images = list(&policy, "images")?;
        images.push(json!({ "pcrs": image }));
        policy.insert("images".into(), Value::Array(images));
    }
    if let Some(path) = &args.image_change {
        let setting: Value = serde_json::from_str(
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{} is not JSON", path.display()))?;
        policy.insert("approvalSettings".into(), json!({ "imageChange": setting }));
    }
    if let Some(threshold) = args.witness_threshold {
        let set = crate::witness::witness_set(&args.witnesses, threshold)?;
        policy.insert("witnesses".into(), serde_json::to_value(set)?);
    }
    policy.insert("principals".into(), Value::Array(principals));
    policy.insert("roleAssignments".into(), Value::Array(assignments));
    policy.insert("communities".into(), Value::Array(communities));
    let now = time_now()?;
    let document = json!({
        "version": ea_ledger::GENESIS_VERSION,
        "name": args.name,
        "createdAt": now,
        "settings": {"decisionLogging": !args.no_decision_logging,
                     "maxPendingApprovalsPerRequester": args.max_pending_approvals},
        "policy": policy,
    });
    let text = serde_json::to_string_pretty(&document)?;
    // Checked as the enclave will check it.
    Genesis::from_json(&text).context("the genesis document would be refused")?;
    match &args.out {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?
        }
        None => println!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn time_now() -> anyhow::Result<String> {
    let millis = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis(),
    )?;
    Ok(ea_policy::Timestamp::from_unix_millis(millis)?.to_rfc3339())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Submitted {
    genesis_hash: String,
    log_key_index: u64,
    log_key: String,
    records: Vec<RecordProof>,
}

async fn submit(args: &SubmitArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let genesis = Genesis::from_json(&text).context("the genesis document is not valid")?;
    let client = ApiClient::new(&args.endpoint)?;
    let (status, body) = client
        .post_bytes("/v1/genesis", "application/json", text.into_bytes())
        .await?;
    if !status.is_success() {
        let code = body
            .pointer("/error/code")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        let message = body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("no message");
        bail!("{status}: {code}: {message}");
    }
    let submitted: Submitted = serde_json::from_value(body)
        .context("the answer to the genesis is not what was expected")?;
    // Record 0 must hold exactly this document, and both records must be in the log under
    // a checkpoint signed by the key the enclave_start record names.
    let first = submitted
        .records
        .first()
        .context("the answer carries no genesis record")?;
    let record = Record::from_bytes(&first.record).context("the genesis record does not decode")?;
    ensure!(
        record.kind == RecordKind::Genesis && record.seq == 0,
        "record 0 is not a genesis record"
    );
    ensure!(
        Genesis::from_value(&record.changes).ok().as_ref() == Some(&genesis),
        "the enclave recorded another genesis document than the one submitted"
    );
    ensure!(
        record.record_hash()?.to_hex() == submitted.genesis_hash,
        "the genesis hash in the answer is not record 0's"
    );
    let key: ea_audit::note::NoteVerifier = submitted
        .log_key
        .parse()
        .context("the answer's log key is not a verifier key")?;
    for proof in &submitted.records {
        verify_receipt(&proof.record, &proof.receipt, std::slice::from_ref(&key))
            .context("a receipt of the genesis does not verify")?;
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "genesisHash": submitted.genesis_hash,
            "logKeyIndex": submitted.log_key_index,
            "logKey": submitted.log_key,
        }))?
    );
    if let Some(trust) = &args.trust_out {
        crate::trust::init_pinned(
            &client,
            trust.clone(),
            submitted
                .genesis_hash
                .parse()
                .map_err(|_| anyhow::anyhow!("bad genesis hash"))?,
            args.root.as_deref(),
            args.insecure_qemu_attestation,
            &args.pcrs,
            args.pcrs_file.as_deref(),
            args.allow_debug,
            submitted.log_key_index,
        )
        .await?;
    }
    Ok(ExitCode::SUCCESS)
}
