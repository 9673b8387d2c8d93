//! The binary's subcommands, `backup` and `import`: their arguments and what they print.
//! The work is the library's ([`parent_proxy::store::backup()`], [`parent_proxy::import`]).
//!
//! Both open the store's file directly, so they run on the instance, as the proxy's user;
//! neither is reachable through the proxy's API.

use std::path::PathBuf;

use ea_ledger::DocumentChecker;
use parent_proxy::import::requests::LogRequests;
use parent_proxy::import::trust::{verify_options, RootChoice};
use parent_proxy::import::{self, ImportSummary, SealedKeySource, Verification};
use parent_proxy::store::BackupSummary;

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The store to copy: the --store-path the proxy runs with. It may be serving: the copy
    /// is of one moment, and the proxy goes on appending.
    #[arg(long, value_name = "PATH")]
    store_path: PathBuf,
    /// The new file. Refused if it exists: a backup never overwrites one. Written under a
    /// temporary name beside it, flushed to disk, then renamed.
    #[arg(long, value_name = "FILE")]
    to: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// A directory written by `govctl audit fetch`.
    #[arg(long, value_name = "DIR")]
    from: PathBuf,
    /// The store to write: the --store-path the proxy will run with. Refused if it holds
    /// anything (records, checkpoints, a sealed key) or a process has it open.
    #[arg(long, value_name = "PATH")]
    store_path: PathBuf,
    /// Pin PCR N to HEX (repeatable), as `govctl audit verify` does: PCR0, 1, 2 and 8 pin the
    /// log's genesis image (later images are the log's to admit, checked as it replays), any
    /// other PCR every attestation document.
    #[arg(long = "pcr", value_name = "N=HEX")]
    pcrs: Vec<String>,
    /// Pin the PCRs of this measurements file (`govctl eif pcrs` output, or nitro-cli's) the
    /// same way: the genesis image's `pcrs.json`.
    #[arg(long = "pcrs", value_name = "FILE")]
    pcrs_file: Option<PathBuf>,
    /// Trust this root (PEM) instead of the AWS Nitro Enclaves Root-G1, e.g. a mock NSM's
    /// root.
    #[arg(long, value_name = "PEM")]
    root: Option<PathBuf>,
    /// INSECURE: accept only the unsigned attestation documents of QEMU's nitro-enclave
    /// machine, instead of documents chaining to a root. The PCRs are still pinned, but such a
    /// log proves nothing about hardware or the image; for developing under QEMU.
    #[arg(long, conflicts_with = "root")]
    insecure_qemu_attestation: bool,
    /// Accept debug-mode attestation documents (PCR0, 1, 2 all zero); for development only.
    #[arg(long)]
    allow_debug: bool,
    /// Copy the sealed log key from this store or backup of the same log (`audit fetch` does
    /// not export it, and an enclave with --log-key kms refuses a log without one). It is
    /// ciphertext only KMS can open for the expected image, bound to this log's genesis.
    #[arg(long, value_name = "STORE")]
    sealed_key_from: Option<PathBuf>,
}

/// Bytes as the largest unit that keeps them above 1.
fn human(bytes: u64) -> String {
    let mut value = bytes as f64;
    for unit in ["B", "KiB", "MiB", "GiB"] {
        if value < 1024.0 {
            return format!("{value:.1} {unit}");
        }
        value /= 1024.0;
    }
    format!("{value:.1} TiB")
}

pub fn backup(args: &BackupArgs) -> anyhow::Result<()> {
    // The errors name the files and what to do; nothing more to add here.
    let summary = parent_proxy::store::backup(&args.store_path, &args.to)?;
    print_backup(&args.store_path, &summary);
    Ok(())
}

fn print_backup(store: &std::path::Path, summary: &BackupSummary) {
    println!(
        "backed up {} into {} ({})",
        store.display(),
        summary.path.display(),
        human(summary.bytes)
    );
    println!("records:        {}", summary.records);
    match summary.last_checkpoint_size {
        Some(size) => println!(
            "checkpoints:    {}, the last of size {size}",
            summary.checkpoints
        ),
        None => println!("checkpoints:    none (no genesis yet)"),
    }
    println!(
        "sealed log key: {}",
        if summary.sealed_key {
            "included"
        } else {
            "none in the store (an enclave with --log-key ephemeral, or none started yet)"
        }
    );
}

pub fn import(args: &ImportArgs) -> anyhow::Result<()> {
    let root = match (&args.root, args.insecure_qemu_attestation) {
        (_, true) => {
            eprintln!(
                "parent-proxy: WARNING: insecure QEMU mode (--insecure-qemu-attestation): \
                 attestation documents are accepted UNSIGNED, as QEMU's nitro-enclave NSM \
                 writes them; they prove nothing about hardware, the enclave image or who \
                 wrote them"
            );
            RootChoice::InsecureQemu
        }
        (Some(path), false) => RootChoice::Pem(path.clone()),
        (None, false) => RootChoice::Aws,
    };
    let pins = verify_options(
        &root,
        &args.pcrs,
        args.pcrs_file.as_deref(),
        args.allow_debug,
    )?;
    let sealed_key = args
        .sealed_key_from
        .as_deref()
        .map(SealedKeySource::read)
        .transpose()?;
    let summary = import::import(
        &args.from,
        &args.store_path,
        Verification {
            attestation: DocumentChecker::new(pins.options),
            requests: LogRequests::new(),
            genesis_image: Some(pins.genesis_image),
        },
        sealed_key.as_ref(),
    )?;
    print_import(args, &summary);
    Ok(())
}

fn print_import(args: &ImportArgs, summary: &ImportSummary) {
    let (store, log) = (&summary.store, &summary.log);
    println!(
        "imported {} records and {} checkpoints from {} into {}, after verifying them",
        store.records,
        store.checkpoints,
        args.from.display(),
        store.path.display()
    );
    println!("checkpoint:     {}", log.checkpoint_size);
    println!("log:            {}", log.origin);
    println!("genesis:        {}", log.genesis_hash.to_hex());
    println!("log keys:       {} attested", log.log_keys.len());
    match &args.sealed_key_from {
        Some(path) => println!("sealed log key: copied from {}", path.display()),
        None => {
            println!("sealed log key: NOT restored (`govctl audit fetch` does not export it)");
            println!(
                "  An enclave with --log-key kms (a deployed image) whose image already \
                 started on this log refuses this store without its sealed key: import again \
                 with --sealed-key-from <a backup of this log taken after that start; the \
                 newest is safest>. With --log-key ephemeral the enclave makes a new key and \
                 attests it in its enclave_start record. Without any copy of the running \
                 image's sealed key, that image cannot sign this log again (the log stays \
                 verifiable)."
            );
        }
    }
}
