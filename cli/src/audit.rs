//! `govctl audit fetch`: download the audit log from the parent's export routes into a
//! directory; `govctl audit verify`: check such a directory offline, every check of
//! SPEC-trust section 4, and name the first bad record.
//!
//! The parent that serves the log is untrusted; nothing fetched is believed until `verify`
//! has checked it against the expected PCRs and the attestation trust root. The directory
//! layout is in [`layout`] and in `docs/audit-log.md`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::client::EndpointArgs;

mod attest;

pub use attest::{options as pins, pinned_pcrs};
pub use verify::verified_state;
mod fetch;
mod layout;
mod requests;
mod verify;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Download the whole log (records and checkpoints) into a directory; run again to fetch
    /// only what was added since.
    Fetch(FetchArgs),
    /// Verify a fetched log: attestation documents, checkpoint signatures by attested keys,
    /// every record in the tree, consistency between checkpoints, client request signatures.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
struct FetchArgs {
    #[command(flatten)]
    endpoint: EndpointArgs,
    /// The directory to write (created if missing; a previous fetch of the same log in it is
    /// extended).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// A directory written by `govctl audit fetch`.
    dir: PathBuf,
    /// Pin PCR N to HEX (repeatable). PCR0, 1, 2 and 8 pin the genesis image (the log's
    /// first enclave); later images must be the ones the log admitted. Other PCRs (3, 4)
    /// are required of every document.
    #[arg(long = "pcr", value_name = "N=HEX")]
    pcrs: Vec<String>,
    /// Pin the PCRs of this measurements file (`govctl eif pcrs` output, or nitro-cli's): the
    /// genesis image's.
    #[arg(long = "pcrs", value_name = "FILE")]
    pcrs_file: Option<PathBuf>,
    /// Trust this root (PEM) instead of the AWS Nitro Enclaves Root-G1, e.g. a mock NSM's root.
    #[arg(long, value_name = "PEM")]
    root: Option<PathBuf>,
    /// INSECURE: accept only the unsigned attestation documents of QEMU's nitro-enclave
    /// machine, instead of documents chaining to a root. The PCRs are still pinned, but such a
    /// log proves nothing about hardware or the image; for developing under QEMU.
    #[arg(long, conflicts_with = "root")]
    insecure_qemu_attestation: bool,
    /// Accept debug-mode attestation documents (PCR0, 1, 2 all zero). Such an enclave is open
    /// to its parent instance: its log proves nothing; for development only.
    #[arg(long)]
    allow_debug: bool,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// A reply saved from `govctl` (or the API's JSON) whose receipts the log must honour:
    /// each record it proves must be in the log, at its index, under a checkpoint consistent
    /// with the log's tree (repeatable). A log missing an acknowledged record was rolled back
    /// or truncated by whoever kept it.
    #[arg(long = "receipt", value_name = "FILE")]
    receipts: Vec<PathBuf>,
    /// A checkpoint kept earlier that the log must extend (repeatable): a signed checkpoint
    /// note (as `GET /v1/log/checkpoint` serves it, the note alone or that JSON), or a govctl
    /// trust file (the largest tree it remembers). Its signature must verify with one of the
    /// log's attested keys, and the log's tree at that size must have its root; otherwise the
    /// log was rolled back or forked since.
    #[arg(long = "since", value_name = "CHECKPOINT")]
    since: Vec<PathBuf>,
    /// Require witnesses (repeatable): a witness key as `witness keygen` prints it
    /// (<name>+<key id>+<base64>). The directory's witnessed checkpoint (`witnessed.json`,
    /// saved by `audit fetch`) must carry valid cosignatures of at least
    /// --witness-threshold distinct witnesses among these, be signed by one of the log's
    /// attested keys, and be extended by the log (its root at that size).
    #[arg(long = "witness", value_name = "VKEY")]
    witnesses: Vec<String>,
    /// How many distinct witnesses of --witness must have cosigned (default: all of them).
    #[arg(long, value_name = "K", requires = "witnesses")]
    witness_threshold: Option<usize>,
    /// Also measure the signature floor: verify the embedded requests' signatures again,
    /// alone, chunk by chunk in the same run, and report verification's rate as a ratio of
    /// that (about doubles the run time; the floor's checks are not counted in the
    /// verification's time).
    #[arg(long)]
    signature_floor: bool,
    /// Once the log verifies, write the policy state it replays to (a policy document,
    /// docs/policy-state.md), to compare with what the service answers.
    #[arg(long, value_name = "FILE")]
    state_out: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        AuditCommand::Fetch(args) => fetch::run(&args.endpoint, &args.out).await,
        AuditCommand::Verify(args) => verify::run(&args),
    }
}
