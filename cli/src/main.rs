//! `govctl`: the command-line client of Enclave Approvals.
//!
//! Each subcommand lives in its own module; this file only parses arguments and dispatches.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Like std's `println!`, except that a closed stdout (`govctl ... | head`) ends the program
/// quietly instead of panicking; any other write error is reported and ends it with 1.
/// Defined before the modules so that it shadows std's in all of them.
macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(error) = writeln!(std::io::stdout().lock(), $($arg)*) {
            $crate::stdout_failed(error);
        }
    }};
}

/// Ends the program after a failed write to stdout.
fn stdout_failed(error: std::io::Error) -> ! {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("govctl: writing to stdout: {error}");
    std::process::exit(1)
}

mod attestation;
mod audit;
mod bench;
mod client;
mod eif;
mod genesis;
mod governance;
mod health;
mod identity;
mod image;
mod kms_policy;
mod request;
mod simulate;
mod trust;
mod witness;

use governance::*;
use request::RequestArgs;

#[derive(Debug, Parser)]
#[command(
    name = "govctl",
    version,
    about = "Client, simulator and offline verifier for Enclave Approvals"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Attestation documents: verify one offline.
    Attestation(attestation::Args),
    /// The audit log: fetch it from the parent, verify it offline.
    Audit(audit::Args),
    /// Ask the running service whether the enclave is up.
    Health(health::Args),
    /// What the enclave says about itself: version, phase, genesis hash, log size, log key.
    Describe(health::Args),
    /// Enclave images: check an EIF, compute its PCRs, compare PCRs.
    Eif(eif::Args),
    /// Print the KMS key policy that releases the log key only to an image with these
    /// PCRs.
    KmsPolicy(kms_policy::Args),
    /// Decide offline from a policy state file: may a principal do an operation, may a
    /// flow pass (exit code 0 allow, 3 deny).
    Simulate(simulate::Args),
    /// Make a signing identity (a principal's key pair).
    Keygen(identity::KeygenArgs),
    /// Write a genesis document, or give one to an enclave whose log is empty.
    Genesis(genesis::Args),
    /// Pin a deployment's log (genesis hash, root, PCRs) so that receipts can be checked.
    Trust(trust::Args),
    /// Communities.
    Community {
        #[command(flatten)]
        request: RequestArgs,
        #[command(subcommand)]
        command: CommunityCommand,
    },
    /// Virtual enclaves.
    Enclave {
        #[command(flatten)]
        request: RequestArgs,
        #[command(subcommand)]
        command: EnclaveCommand,
    },
    /// Workloads.
    Workload {
        #[command(flatten)]
        request: RequestArgs,
        #[command(subcommand)]
        command: WorkloadCommand,
    },
    /// Enclave and community endpoints.
    Endpoint {
        #[command(flatten)]
        request: RequestArgs,
        #[command(subcommand)]
        command: EndpointCommand,
    },
    /// Connections from an enclave to an endpoint.
    Connection {
        #[command(flatten)]
        request: RequestArgs,
        #[command(subcommand)]
        command: ConnectionCommand,
    },
    /// Maintenance mode of a community or enclave.
    Maintenance {
        #[command(flatten)]
        request: RequestArgs,
        #[command(subcommand)]
        command: MaintenanceCommand,
    },
    /// Approval settings of a community or enclave.
    ApprovalSettings {
        #[command(flatten)]
        request: RequestArgs,
        #[command(subcommand)]
        command: ApprovalSettingsCommand,
    },
    /// Users, groups and service principals, and their keys.
    Principal {
        #[command(flatten)]
        request: RequestArgs,
        #[command(subcommand)]
        command: PrincipalCommand,
    },
    /// Group membership.
    Group {
        #[command(flatten)]
        request: RequestArgs,
        #[command(subcommand)]
        command: GroupCommand,
    },
    /// Role definitions, assignments, eligibility and activation.
    Role {
        #[command(flatten)]
        request: RequestArgs,
        #[command(subcommand)]
        command: RoleCommand,
    },
    /// Custom deny assignments.
    Deny {
        #[command(flatten)]
        request: RequestArgs,
        #[command(subcommand)]
        command: DenyCommand,
    },
    /// Enclave images the log admits: propose or retire one (governed: imageChange, two
    /// owners of / approve), list them.
    Image {
        #[command(flatten)]
        request: RequestArgs,
        #[command(subcommand)]
        command: image::ImageCommand,
    },
    /// The witness set the log requires: propose a new one (governed: witnessChange, two
    /// owners of / approve), list it.
    Witness {
        #[command(flatten)]
        request: RequestArgs,
        #[command(subcommand)]
        command: witness::WitnessCommand,
    },
    /// Approvals: list, show, approve, reject, withdraw.
    Approvals {
        #[command(flatten)]
        request: RequestArgs,
        #[command(subcommand)]
        command: ApprovalsCommand,
    },
    /// Any change, as a command in JSON.
    Submit {
        #[command(flatten)]
        request: RequestArgs,
        #[command(flatten)]
        submit: SubmitArgs,
    },
    /// May a principal do an operation at a scope now? (recorded; exit 0 allow, 3 deny)
    Check {
        #[command(flatten)]
        request: RequestArgs,
        #[command(flatten)]
        check: CheckArgs,
    },
    /// May an enclave send this traffic now? (recorded; exit 0 allow, 3 deny)
    Flow {
        #[command(flatten)]
        request: RequestArgs,
        #[command(flatten)]
        flow: FlowArgs,
    },
    /// Drive a running service with concurrent signed clients; report throughput, latency,
    /// errors and peak memory (loopback endpoints only, unless --allow-remote).
    Bench(bench::Args),
    /// Read the current state (what your roles let you read).
    Read {
        #[command(flatten)]
        request: RequestArgs,
        #[command(subcommand)]
        command: ReadCommand,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Attestation(args) => attestation::run(args).await,
        Command::Audit(args) => audit::run(args).await,
        Command::Health(args) => health::run(args).await,
        Command::Describe(args) => health::describe(args).await,
        Command::Eif(args) => eif::run(args),
        Command::KmsPolicy(args) => kms_policy::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Keygen(args) => identity::keygen(&args),
        Command::Genesis(args) => genesis::run(args).await,
        Command::Trust(args) => trust::run(args).await,
        Command::Community { request, command } => community(&request, command).await,
        Command::Enclave { request, command } => enclave(&request, command).await,
        Command::Workload { request, command } => workload(&request, command).await,
        Command::Endpoint { request, command } => endpoint(&request, command).await,
        Command::Connection { request, command } => connection(&request, command).await,
        Command::Maintenance { request, command } => maintenance(&request, command).await,
        Command::ApprovalSettings { request, command } => {
            approval_settings(&request, command).await
        }
        Command::Principal { request, command } => principal(&request, command).await,
        Command::Group { request, command } => group(&request, command).await,
        Command::Role { request, command } => role(&request, command).await,
        Command::Deny { request, command } => deny(&request, command).await,
        Command::Approvals { request, command } => approvals(&request, command).await,
        Command::Image { request, command } => image::run(&request, command).await,
        Command::Witness { request, command } => witness::run(&request, command).await,
        Command::Submit { request, submit } => submit_any(&request, submit).await,
        Command::Check {
            request,
            check: args,
        } => check(&request, args).await,
        Command::Flow {
            request,
            flow: args,
        } => flow(&request, args).await,
        Command::Read { request, command } => read(&request, command).await,
        Command::Bench(args) => bench::run(args).await,
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("govctl: {error:#}");
            if error.downcast_ref::<trust::RolledBack>().is_some() {
                ExitCode::from(trust::EXIT_ROLLED_BACK)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
