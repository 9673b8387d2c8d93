//! `local-kms`: a local stand-in for AWS KMS (see the library documentation).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Parser;
use ea_attestation::TrustRoot;
use ea_kms::sigv4::SigV4Verifier;
use ea_protocol::{Address, Listener};
use local_kms::ops::{LocalKms, Settings};
use local_kms::server::{serve, Shared};
use local_kms::state::KeyStore;

#[derive(Debug, Parser)]
#[command(
    name = "local-kms",
    version,
    about = "A local stand-in for AWS KMS: the KMS JSON protocol over HTTPS, SigV4, key \
             policies with kms:RecipientAttestation conditions, CiphertextForRecipient"
)]
struct Args {
    /// Where to listen: tcp:127.0.0.1:<port> (port 0 picks one; the line `listening on
    /// https://...` on stdout names it) or unix:<path>.
    #[arg(long, default_value = "tcp:127.0.0.1:0")]
    listen: Address,
    /// The state file: keys and their policies (created if missing, mode 0600). It holds
    /// key material in the clear: a test double, not a key store.
    #[arg(long)]
    state: PathBuf,
    /// Who may call: a JSON file {"credentials": [{"access_key_id", "secret_access_key",
    /// "session_token" (optional), "principal_arn"}]}. Requests are SigV4-checked against it;
    /// key policies see the principal_arn.
    #[arg(long, required_unless_present = "init_ca")]
    credentials: Option<PathBuf>,
    /// PEM root certificate that Recipient attestation documents must chain to (the mock
    /// NSM's root locally; the AWS Nitro root would make it accept real enclaves). Without
    /// it (or --insecure-qemu-attestation), requests with a Recipient are refused.
    #[arg(long)]
    attestation_root: Option<PathBuf>,
    /// INSECURE: accept the unsigned attestation documents of QEMU's nitro-enclave machine
    /// (and only those) from Recipients, instead of documents chaining to
    /// --attestation-root. The key policies' PCR conditions still apply, but anyone can write
    /// such a document: it proves nothing about hardware. For booting the enclave image
    /// under QEMU only. A flag on purpose: no environment variable, no default.
    #[arg(long, conflicts_with = "attestation_root")]
    insecure_qemu_attestation: bool,
    /// Writes the PEM of the CA that issued the TLS certificate here, for clients to trust.
    /// The CA's key is kept beside the state file (`<state>.ca-key.pem`), so a restart keeps
    /// the same CA.
    #[arg(long)]
    ca_out: PathBuf,
    /// Create the TLS CA (its key beside --state) if it is not there, write its certificate
    /// to --ca-out, and exit. A set-up step for clients that must know the CA before the KMS
    /// first runs: an enclave image that bakes it in, whose PCRs the key policy then names.
    #[arg(long)]
    init_ca: bool,
    /// A name for the TLS certificate besides localhost and 127.0.0.1. Repeatable.
    #[arg(long = "tls-name", value_name = "NAME")]
    tls_names: Vec<String>,
    /// The region of key ARNs and of SigV4 credential scopes.
    #[arg(long, default_value = "eu-west-1")]
    region: String,
    /// The account of key ARNs.
    #[arg(long, default_value = "111122223333")]
    account: String,
    /// Makes sure key ID exists (created with new material if not) and sets its policy
    /// from a JSON file, e.g. the output of `govctl kms-policy`. Repeatable.
    #[arg(long = "key", value_name = "ID=POLICY_FILE")]
    keys: Vec<String>,
}

/// The TLS identity: a server certificate issued by the CA kept beside the state file
/// (created on first use), the CA's certificate written to --ca-out.
fn tls_identity(args: &Args) -> anyhow::Result<local_kms::tls::Identity> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    names.extend(args.tls_names.iter().cloned());
    // The CA's key and certificate, kept beside the state (which holds key material in the
    // clear already). A state from before the certificate was kept has only the key: the
    // certificate is made for it once, and kept from then on.
    let ca_key_path = args.state.with_extension("ca-key.pem");
    let ca_cert_path = args.state.with_extension("ca-cert.pem");
    let kept_key = std::fs::read_to_string(&ca_key_path).ok();
    let kept_cert = kept_key
        .as_ref()
        .and_then(|_| std::fs::read_to_string(&ca_cert_path).ok());
    let (identity, ca) =
        local_kms::tls::generate(&names, kept_key.as_deref(), kept_cert.as_deref())
            .context("making the TLS certificate")?;
    if kept_key.is_none() {
        write_private(&ca_key_path, &ca.key_pem)?;
    }
    if kept_cert.is_none() {
        std::fs::write(&ca_cert_path, &ca.cert_pem)
            .with_context(|| format!("writing {}", ca_cert_path.display()))?;
    }
    std::fs::write(&args.ca_out, &identity.ca_pem)
        .with_context(|| format!("writing the CA certificate to {}", args.ca_out.display()))?;
    Ok(identity)
}

/// Creates `path` (mode 0600, never replacing a file) with `contents`.
fn write_private(path: &std::path::Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(contents.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ea_runtime::init_logging();
    let args = Args::parse();
    let now_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);

    let identity = tls_identity(&args)?;
    if args.init_ca {
        println!("{}", args.ca_out.display());
        return Ok(());
    }
    let attestation_root = if args.insecure_qemu_attestation {
        tracing::warn!(
            "--insecure-qemu-attestation: Recipient attestation documents are accepted UNSIGNED, \
             as QEMU's nitro-enclave machine writes them; they prove nothing about hardware, and \
             anyone who can reach this KMS can meet the key policies' PCR conditions"
        );
        Some(TrustRoot::insecure_qemu_unsigned())
    } else {
        args.attestation_root
            .as_ref()
            .map(|path| -> anyhow::Result<TrustRoot> {
                let pem =
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                TrustRoot::from_pem(&pem)
                    .with_context(|| format!("{} is not a root certificate", path.display()))
            })
            .transpose()?
    };
    let credentials_path = args
        .credentials
        .as_ref()
        .context("--credentials is required to serve")?;
    let credentials = local_kms::config::read_credentials(credentials_path)?;
    let keys = KeyStore::open(&args.state)?;
    let kms = Arc::new(LocalKms::new(
        Settings {
            region: args.region.clone(),
            account: args.account.clone(),
            attestation_root,
        },
        keys,
    ));
    for spec in &args.keys {
        let (id, policy_file) = spec
            .split_once('=')
            .with_context(|| format!("--key {spec:?}: expected ID=POLICY_FILE"))?;
        let policy = std::fs::read_to_string(policy_file)
            .with_context(|| format!("reading the policy file {policy_file}"))?;
        kms.ensure_key(id, policy, now_secs)?;
        tracing::info!(key = %kms.key_arn(id), policy = policy_file, "key ready");
    }

    let listener = Listener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let url = match listener.local_address()? {
        Address::Tcp { host, port } => format!("https://{host}:{port}"),
        other => format!("https+{other}"),
    };
    let shared = Arc::new(Shared {
        kms,
        verifier: SigV4Verifier::new(args.region.clone(), "kms", credentials),
    });
    // Scripts and tests read this line to learn the address.
    println!("listening on {url}");
    tracing::info!(%url, region = %args.region, account = %args.account, "local KMS serving");
    serve(
        listener,
        identity.config,
        shared,
        ea_runtime::shutdown_signal(),
    )
    .await;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUIRED: [&str; 5] = ["local-kms", "--state", "s", "--credentials", "c"];

    fn parse(extra: &[&str]) -> Result<Args, clap::Error> {
        let mut argv = REQUIRED.to_vec();
        argv.extend_from_slice(&["--ca-out", "ca.pem"]);
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv)
    }

    #[test]
    fn the_qemu_mode_is_a_flag_exclusive_with_a_root() {
        assert!(!parse(&[]).unwrap().insecure_qemu_attestation);
        assert!(
            parse(&["--insecure-qemu-attestation"])
                .unwrap()
                .insecure_qemu_attestation
        );
        let error = parse(&[
            "--insecure-qemu-attestation",
            "--attestation-root",
            "root.pem",
        ])
        .unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::ArgumentConflict);
    }
}
