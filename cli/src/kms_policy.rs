//! `govctl kms-policy`: the key policy of the log key's KMS key, from an image's PCRs.
//!
//! The policy (built by [`ea_kms::policy::enclave_key_policy`], which the local KMS
//! evaluates too) lets `--key-admin` manage the key without using it, lets `--enclave-role`
//! call `kms:Decrypt` and `kms:GenerateDataKey` only with an attestation document whose
//! PCRs are the chosen ones (`StringEqualsIgnoreCase` on `kms:RecipientAttestation:*`,
//! PCR0 as `ImageSha384`), and denies those two actions to everyone when no attestation
//! document comes with the request. See docs/kms.md.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use ea_eif::Measurements;
use ea_kms::policy::enclave_key_policy;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image's measurements: the output of `govctl eif pcrs` (pcrs.json), or
    /// nitro-cli's `build-enclave`/`describe-eif` JSON.
    #[arg(long)]
    pcrs: PathBuf,
    /// ARN of the key administrator (a role or user): manages the key and its policy, can
    /// neither decrypt nor generate data keys.
    #[arg(long, value_name = "ARN")]
    key_admin: String,
    /// ARN of the parent instance's role (arn:aws:iam::<account>:role/<name>): the enclave
    /// signs its KMS calls with this role's credentials.
    #[arg(long, value_name = "ARN")]
    enclave_role: String,
    /// The PCRs to pin, comma-separated; PCR0 (the image) is required.
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    pcr_indices: Vec<u16>,
    /// Also write the policy to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `arn:<partition>:iam::<12-digit account>:<role|user|root>...`.
fn check_principal_arn(flag: &str, arn: &str) -> anyhow::Result<()> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = match parts.as_slice() {
        ["arn", partition, "iam", "", account, resource] => {
            !partition.is_empty()
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && (resource.starts_with("role/")
                    || resource.starts_with("user/")
                    || *resource == "root")
        }
        _ => false,
    };
    if !ok {
        bail!(
            "{flag} {arn:?} is not an IAM principal ARN \
             (arn:aws:iam::<account>:role/<name>, :user/<name> or :root)"
        );
    }
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    check_principal_arn("--key-admin", &args.key_admin)?;
    check_principal_arn("--enclave-role", &args.enclave_role)?;
    if args.key_admin == args.enclave_role {
        bail!(
            "--key-admin and --enclave-role are the same principal: the enclave's role must \
             not be able to change the policy that binds the key to the image"
        );
    }
    let bytes =
        std::fs::read(&args.pcrs).with_context(|| format!("reading {}", args.pcrs.display()))?;
    let measurements = Measurements::from_json(&bytes)
        .with_context(|| format!("reading measurements from {}", args.pcrs.display()))?;
    if !args.pcr_indices.contains(&0) {
        bail!("--pcr-indices must include 0: PCR0 (kms:RecipientAttestation:ImageSha384) is the image");
    }
    let mut pcrs = BTreeMap::new();
    for &index in &args.pcr_indices {
        let value = measurements
            .pcr(usize::from(index))
            .with_context(|| format!("{} has no PCR{index}", args.pcrs.display()))?;
        if value.iter().all(|&b| b == 0) {
            bail!(
                "PCR{index} in {} is all zeros: debug-mode measurements, which any debug \
                 enclave would match; use the PCRs of the production image",
                args.pcrs.display()
            );
        }
        pcrs.insert(index, value.to_vec());
    }
    let policy = enclave_key_policy(&args.key_admin, &args.enclave_role, &pcrs).to_json_pretty();
    if let Some(out) = &args.out {
        std::fs::write(out, format!("{policy}\n"))
            .with_context(|| format!("writing the policy to {}", out.display()))?;
    }
    println!("{policy}");
    Ok(ExitCode::SUCCESS)
}
