//! `govctl kms-policy`: the key policy of the log key's KMS key, from an image's PCRs or
//! from the images a log admits.
//!
//! The policy (built by [`ea_kms::policy::log_key_policy`], which the local KMS evaluates
//! too) lets `--key-admin` manage the key without using it, lets `--enclave-role` call
//! `kms:Decrypt` and `kms:GenerateDataKey` only with an attestation document whose PCRs are
//! one image's (one statement per image, `StringEqualsIgnoreCase` on
//! `kms:RecipientAttestation:*`, PCR0 as `ImageSha384`), and denies those two actions to
//! everyone when no attestation document comes with the request.
//!
//! - `--from-log DIR` (a log fetched with `govctl audit fetch`) verifies the log (the genesis
//!   image pinned with `--genesis-pcrs`) and admits exactly the images the log admits at its
//!   end, so the key policy follows the log's approved image changes.
//! - `--immutable` writes a policy for one image that no principal can change afterwards (no
//!   `kms:PutKeyPolicy`, no `kms:ReplicateKey`), for a KMS key of that image alone: its
//!   administrator can then never release that image's log key to another image. KMS accepts
//!   it only with `--bypass-policy-lockout-safety-check`. See docs/kms.md.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use ea_eif::Measurements;
use ea_kms::policy::log_key_policy;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image's measurements: the output of `govctl eif pcrs` (pcrs.json), or
    /// nitro-cli's `build-enclave`/`describe-eif` JSON. With `--from-log --immutable`: the
    /// one admitted image the (new) key is for.
    #[arg(long, required_unless_present = "from_log")]
    pcrs: Option<PathBuf>,
    /// Admit exactly the images this log admits (a directory of `govctl audit fetch`),
    /// after verifying it like `govctl audit verify`; one statement per image.
    #[arg(long, value_name = "DIR")]
    from_log: Option<PathBuf>,
    /// With --from-log: the log's genesis image (its first enclave's PCRs), as an auditor
    /// pins it.
    #[arg(long, value_name = "FILE", requires = "from_log")]
    genesis_pcrs: Option<PathBuf>,
    /// With --from-log: the attestation root (PEM) instead of the AWS Nitro Enclaves Root-G1.
    #[arg(long, value_name = "PEM", requires = "from_log")]
    root: Option<PathBuf>,
    /// With --from-log: INSECURE, a log written under QEMU (unsigned documents).
    #[arg(long, requires = "from_log", conflicts_with = "root")]
    insecure_qemu_attestation: bool,
    /// With --from-log: accept debug-mode documents.
    #[arg(long, requires = "from_log")]
    allow_debug: bool,
    /// ARN of the key administrator (a role or user): manages the key and its policy, can
    /// neither decrypt nor generate data keys.
    #[arg(long, value_name = "ARN")]
    key_admin: String,
    /// ARN of the parent instance's role (arn:aws:iam::<account>:role/<name>): the enclave
    /// signs its KMS calls with this role's credentials.
    #[arg(long, value_name = "ARN")]
    enclave_role: String,
    /// The PCRs to pin, comma-separated; PCR0 (the image) is required. (With --from-log
    /// each image is pinned by every PCR it was admitted with.)
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    pcr_indices: Vec<u16>,
    /// A policy no principal can change afterwards, for a KMS key of one image: the key
    /// administrator loses kms:PutKeyPolicy (and kms:ReplicateKey). Put it with
    /// `--bypass-policy-lockout-safety-check`; it cannot be undone.
    #[arg(long)]
    immutable: bool,
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
    let images = match (&args.from_log, &args.pcrs) {
        (Some(dir), pcrs) => from_log(&args, dir, pcrs.as_deref())?,
        (None, Some(pcrs)) => vec![from_measurements(pcrs, &args.pcr_indices)?],
        (None, None) => bail!("give --pcrs FILE or --from-log DIR"),
    };
    if args.immutable && images.len() != 1 {
        bail!(
            "--immutable writes the policy of one image's own KMS key; the log admits {} \
             images: name the one with --pcrs",
            images.len()
        );
    }
    let policy = log_key_policy(&args.key_admin, &args.enclave_role, &images, args.immutable)
        .to_json_pretty();
    if args.immutable {
        eprintln!(
            "govctl: an immutable policy: once put (aws kms put-key-policy \
             --bypass-policy-lockout-safety-check), no principal can ever change it"
        );
    }
    if let Some(out) = &args.out {
        std::fs::write(out, format!("{policy}\n"))
            .with_context(|| format!("writing the policy to {}", out.display()))?;
    }
    println!("{policy}");
    Ok(ExitCode::SUCCESS)
}

/// The PCRs of `path` at `indices`, refusing debug-mode (all-zero) values.
fn from_measurements(
    path: &std::path::Path,
    indices: &[u16],
) -> anyhow::Result<BTreeMap<u16, Vec<u8>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let measurements = Measurements::from_json(&bytes)
        .with_context(|| format!("reading measurements from {}", path.display()))?;
    if !indices.contains(&0) {
        bail!("--pcr-indices must include 0: PCR0 (kms:RecipientAttestation:ImageSha384) is the image");
    }
    let mut pcrs = BTreeMap::new();
    for &index in indices {
        let value = measurements
            .pcr(usize::from(index))
            .with_context(|| format!("{} has no PCR{index}", path.display()))?;
        if value.iter().all(|&b| b == 0) {
            bail!(
                "PCR{index} in {} is all zeros: debug-mode measurements, which any debug \
                 enclave would match; use the PCRs of the production image",
                path.display()
            );
        }
        pcrs.insert(index, value.to_vec());
    }
    Ok(pcrs)
}

/// The images the verified log in `dir` admits at its end (each by every PCR it was
/// admitted with); with `only`, just that one, which the log must admit.
fn from_log(
    args: &Args,
    dir: &std::path::Path,
    only: Option<&std::path::Path>,
) -> anyhow::Result<Vec<BTreeMap<u16, Vec<u8>>>> {
    let genesis = args
        .genesis_pcrs
        .as_deref()
        .context("--from-log needs --genesis-pcrs FILE: the log's first image, as you expect it")?;
    let pins = crate::audit::pins(
        args.root.as_deref(),
        args.insecure_qemu_attestation,
        &[],
        Some(genesis),
        args.allow_debug,
    )?;
    let state = crate::audit::verified_state(dir, pins)?;
    let admitted: Vec<ea_policy::ImagePcrs> = state.images().map(|i| i.pcrs.clone()).collect();
    eprintln!(
        "govctl: the log in {} verifies and admits {} image(s)",
        dir.display(),
        admitted.len()
    );
    let chosen = match only {
        None => admitted,
        Some(path) => {
            let image = crate::image::image_of(&[], Some(path))?;
            let admitted = admitted
                .into_iter()
                .find(|a| a.matches(&image))
                .with_context(|| {
                    format!(
                        "the log does not admit the image of {} ({image}): an image change \
                         must be approved first (govctl image propose)",
                        path.display()
                    )
                })?;
            vec![admitted]
        }
    };
    Ok(chosen
        .iter()
        .map(|image| {
            image
                .by_index()
                .into_iter()
                .map(|(index, value)| (index, value.as_bytes().to_vec()))
                .collect()
        })
        .collect())
}
