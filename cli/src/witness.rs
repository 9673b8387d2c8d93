//! `govctl witness`: the witness set the log requires. Replacing it (`set`) is the governed
//! operation `witnessChange`: it opens an approval that at least two principals holding
//! Owner at `/` must approve (never the requester); only then does the log require the new
//! set. `list` reads the set in force.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use ea_ledger::{Operation, Query};
use ea_policy::{Command, WitnessKey, WitnessSet};

use crate::request::{self, RequestArgs};

#[derive(Debug, Subcommand)]
pub enum WitnessCommand {
    /// Propose replacing the witness set (governed: witnessChange). Once two owners of /
    /// approve, the enclave requires K of these witnesses' cosignatures before it serves.
    Set(SetArgs),
    /// The witness set in force (null for none).
    List,
}

#[derive(Debug, clap::Args)]
pub struct SetArgs {
    /// A witness's verifier key (`<name>+<key id>+<base64>`, as `witness keygen` prints it;
    /// repeatable).
    #[arg(long = "witness", value_name = "VKEY", required = true)]
    witnesses: Vec<String>,
    /// How many distinct witnesses must cosign (1 to the number of --witness).
    #[arg(long)]
    threshold: u32,
    /// Why (recorded, and copied into the approval the approvers see).
    #[arg(long)]
    justification: String,
}

/// The set named by `--witness` and a threshold, checked as the enclave checks it.
pub fn witness_set(keys: &[String], threshold: u32) -> anyhow::Result<WitnessSet> {
    let keys = keys
        .iter()
        .map(|k| k.parse::<WitnessKey>())
        .collect::<Result<Vec<_>, _>>()?;
    WitnessSet::new(threshold, keys).context("the witnesses given are not a witness set")
}

pub async fn run(args: &RequestArgs, command: WitnessCommand) -> anyhow::Result<ExitCode> {
    let operation = match command {
        WitnessCommand::Set(set) => Operation::Submit {
            command: Box::new(Command::SetWitnesses(witness_set(
                &set.witnesses,
                set.threshold,
            )?)),
            justification: Some(set.justification),
        },
        WitnessCommand::List => Operation::Read(Query::Witnesses),
    };
    request::run(args, &operation).await
}
