//! `govctl health`: is the enclave up?

use std::process::ExitCode;

use crate::client::{ApiClient, EndpointArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    endpoint: EndpointArgs,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = ApiClient::new(&args.endpoint)?;
    let (health, proof) = client.get_json_and_proof("/v1/health").await?;
    say_what_proves(proof);
    println!("{}", serde_json::to_string_pretty(&health)?);
    Ok(ExitCode::SUCCESS)
}

/// `govctl describe`: what the enclave says about itself (version, NSM, phase, genesis hash,
/// log size, log key). Informational: the parent relays it and could alter it; what is
/// binding is checked through attestation and receipts.
pub async fn describe(args: Args) -> anyhow::Result<ExitCode> {
    let client = ApiClient::new(&args.endpoint)?;
    let (description, proof) = client.get_json_and_proof("/v1/enclave").await?;
    say_what_proves(proof);
    if description.get("nsm").and_then(|nsm| nsm.as_str()) == Some("device-insecure-qemu") {
        eprintln!(
            "govctl: WARNING: the enclave runs under QEMU in the insecure mode \
             (--insecure-qemu-attestation): its attestation documents are unsigned and prove \
             nothing about hardware"
        );
    }
    println!("{}", serde_json::to_string_pretty(&description)?);
    Ok(ExitCode::SUCCESS)
}

/// Health and the description are not signed: say so, as the proxy states it.
fn say_what_proves(proof: Option<String>) {
    let proof = proof.unwrap_or_else(|| "none: unsigned, relayed by the parent".to_owned());
    eprintln!("govctl: proven by {proof}");
}
