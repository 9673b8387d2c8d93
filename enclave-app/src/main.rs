//! `enclave-app`: the binary that runs inside the Nitro Enclave (or off hardware with `--nsm mock`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use ea_attestation::{
    DeviceNsm, Measurements, MockCaSource, MockNsm, MockNsmConfig, Nsm, TrustRoot,
};
use ea_protocol::rpc::ConnectionLimits;
use ea_protocol::{Address, Listener, NsmMode};
use enclave_app::sequencer::{Clock, SequencerConfig};
use enclave_app::store_client::StoreClient;
use enclave_app::{serve, EnclaveHandler, LogKeySource, ServerConfig, Service, ServiceConfig};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum NsmChoice {
    /// The real /dev/nsm of a Nitro Enclave.
    Device,
    /// The mock NSM, for running off hardware. Its documents verify only against its own root.
    Mock,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogKeyChoice {
    /// Sealed under a KMS data key that KMS releases only to this image (production).
    Kms,
    /// A new key at every start, attested and recorded but not kept.
    Ephemeral,
}

#[derive(Debug, Parser)]
#[command(
    name = "enclave-app",
    version,
    about = "The Enclave Approvals enclave application"
)]
struct Args {
    /// Address to listen on: vsock:<cid>:<port> in an enclave (4294967295 = any CID),
    /// unix:<path> off hardware, tcp:<host>:<port> for tests.
    #[arg(long, env = "ENCLAVE_LISTEN", default_value = "vsock:4294967295:5000")]
    listen: Address,
    /// Which NSM to use. There is no fallback: the mock must be asked for by name.
    #[arg(long, value_enum, default_value = "device")]
    nsm: NsmChoice,
    /// INSECURE, --nsm device only: the device is QEMU's nitro-enclave machine, whose
    /// attestation documents are unsigned. The enclave then checks its log's documents in the
    /// insecure QEMU mode (QEMU's unsigned shape only, PCRs still pinned) and describes itself
    /// as `device-insecure-qemu`. Nothing it attests is proven. A flag on purpose: no
    /// environment variable, no default.
    #[arg(long, conflicts_with = "mock_ca_init")]
    insecure_qemu_attestation: bool,
    /// Mock NSM only: directory of the mock CA (root and intermediate). Loaded when present,
    /// generated and saved otherwise; `root.pem` in it is what verifiers must be given. Without
    /// it the CA is generated at start and lost at exit.
    #[arg(long, value_name = "DIR")]
    mock_ca_dir: Option<PathBuf>,
    /// Mock NSM only: create the mock CA in --mock-ca-dir if it is not there (its root in
    /// mock-root.pem, for verifiers and a local KMS), then exit. A set-up step for local
    /// stacks, whose KMS must know the root before the enclave first asks it.
    #[arg(long, requires = "mock_ca_dir")]
    mock_ca_init: bool,
    /// Mock NSM only: PCR0/1/2 from a measurements file (`govctl eif pcrs` output or
    /// `{"PCR0": hex, ...}`) instead of the running binary's own hash.
    #[arg(long, value_name = "FILE")]
    mock_measurements: Option<PathBuf>,
    /// Where the log key comes from. With kms, the same image gets the same key back at
    /// every start, and an image the key policy does not name cannot start.
    #[arg(long, value_enum, default_value = "kms")]
    log_key: LogKeyChoice,
    /// KMS key (id, ARN or alias) whose data key seals the log key.
    #[arg(long, env = "ENCLAVE_KMS_KEY_ID", required_if_eq("log_key", "kms"))]
    kms_key_id: Option<String>,
    /// KMS region.
    #[arg(long, env = "ENCLAVE_KMS_REGION", required_if_eq("log_key", "kms"))]
    kms_region: Option<String>,
    /// Where KMS connections go: the parent's relay (vsock:<parent-cid>:8000, the default with
    /// the device), or tcp:127.0.0.1:<port> for a local KMS (required with --nsm mock).
    #[arg(long)]
    kms_address: Option<Address>,
    /// KMS host name (TLS server name, Host, SigV4); default kms.<region>.amazonaws.com.
    #[arg(long)]
    kms_host: Option<String>,
    /// A CA certificate (PEM) to trust for KMS besides the public roots: a local KMS's.
    #[arg(long, value_name = "PEM")]
    kms_ca: Option<PathBuf>,
    /// Mock NSM only: run the enclave's clock this many milliseconds ahead (or behind) of
    /// the system's, to reach expiries in tests without waiting days. Refused with the device.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    mock_clock_offset_ms: i64,
    /// Largest frame accepted or sent, in bytes.
    #[arg(long, default_value_t = ea_protocol::DEFAULT_MAX_FRAME_LEN)]
    max_frame_bytes: usize,
    /// Requests handled at once on one connection.
    #[arg(long, default_value_t = 256)]
    max_in_flight_per_connection: usize,
    /// Connections served at once.
    #[arg(long, default_value_t = 64)]
    max_connections: usize,
    /// The parent's log store: vsock:<parent-cid>:5001 inside an enclave (the default with
    /// --nsm device), unix:<path> off hardware (required with --nsm mock).
    #[arg(long, env = "ENCLAVE_STORE")]
    store: Option<Address>,
    /// The parent's vsock CID, where the log store and the KMS relay are by default: 3 on
    /// Nitro; 2 under QEMU, whose vhost-device-vsock carries only connections to the host
    /// (CID 2). The image's init sets ENCLAVE_PARENT_CID from the kernel command line.
    #[arg(long, env = "ENCLAVE_PARENT_CID", default_value_t = 3)]
    parent_cid: u32,
    /// How long one call to the log store may take before it counts as failed.
    #[arg(long, default_value_t = 10_000)]
    store_timeout_ms: u64,
    /// Nonces of signed requests remembered within the 5-minute freshness window; when
    /// full, new requests are refused (replay_cache_full) rather than a nonce forgotten.
    /// About 50 bytes each: the default (200 MiB when full) covers 13,000 requests a second
    /// held for the whole window.
    #[arg(long, default_value_t = 4_000_000)]
    replay_cache_capacity: usize,
    /// Most requests decided into one batch (one durable append to the parent's store).
    #[arg(long, default_value_t = 512)]
    max_batch: usize,
    /// Requests waiting for the decision loop; beyond it connections wait.
    #[arg(long, default_value_t = 4096)]
    decision_queue: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ea_runtime::init_logging();
    let args = Args::parse();
    if args.mock_ca_init {
        let dir = args
            .mock_ca_dir
            .as_ref()
            .context("--mock-ca-init needs --mock-ca-dir")?;
        if !matches!(args.nsm, NsmChoice::Mock) {
            bail!("--mock-ca-init applies only to --nsm mock");
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis();
        ea_attestation::MockCa::load_or_generate(dir, u64::try_from(now)?)
            .with_context(|| format!("creating the mock CA in {}", dir.display()))?;
        println!("{}", dir.join("mock-root.pem").display());
        return Ok(());
    }
    let (mode, nsm, trust_root) = open_nsm(&args)?;
    let limits = ConnectionLimits {
        max_frame_len: args.max_frame_bytes,
        max_in_flight: 64,
    };
    let store_address = match (&args.store, args.nsm) {
        (Some(address), _) => address.clone(),
        (None, NsmChoice::Device) => ParentAddresses::on(args.parent_cid).store,
        (None, NsmChoice::Mock) => bail!(
            "with --nsm mock, give the parent's log store explicitly (--store unix:<path>): \
             off hardware there is no vsock"
        ),
    };
    let store = Arc::new(StoreClient::new(
        store_address.clone(),
        limits,
        Duration::from_millis(args.store_timeout_ms),
    ));
    let offset = args.mock_clock_offset_ms;
    if offset != 0 && matches!(args.nsm, NsmChoice::Device) {
        bail!("--mock-clock-offset-ms applies only to --nsm mock");
    }
    let clock: Clock = Arc::new(move || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        now.saturating_add_signed(offset)
    });
    let keys = log_key_source(&args, nsm.clone(), &store_address)?;
    let service = Service::new(ServiceConfig {
        store,
        nsm: nsm.clone(),
        mode,
        trust_root,
        replay_capacity: args.replay_cache_capacity,
        sequencer: SequencerConfig {
            max_batch: args.max_batch.max(1),
            queue: args.decision_queue.max(1),
        },
        clock,
        keys,
    })?;
    tokio::spawn(service.clone().start());
    let config = ServerConfig {
        listen: args.listen.clone(),
        limits: ConnectionLimits {
            max_frame_len: args.max_frame_bytes,
            max_in_flight: args.max_in_flight_per_connection,
        },
        max_connections: args.max_connections,
        shutdown_grace: Duration::from_secs(10),
    };
    let listener = Listener::bind(&config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(listen = %config.listen, ?mode, "enclave-app serving");
    serve(
        listener,
        EnclaveHandler::new(service, nsm),
        &config,
        ea_runtime::shutdown_signal(),
    )
    .await?;
    tracing::info!("stopped");
    Ok(())
}

/// The parent's vsock port of its KMS relay (parent-proxy's --kms-relay-listen on EC2).
const KMS_RELAY_PORT: u32 = 8000;

/// Where the enclave reaches the parent's services when not told otherwise (--nsm device).
#[derive(Debug, PartialEq, Eq)]
struct ParentAddresses {
    /// The log store (and the credentials it hands out).
    store: Address,
    /// The relay of the enclave's TLS connections to KMS.
    kms_relay: Address,
}

impl ParentAddresses {
    /// The parent's services on vsock CID `cid` (--parent-cid: 3 on Nitro, 2 under QEMU).
    fn on(cid: u32) -> Self {
        Self {
            store: Address::Vsock {
                cid,
                port: ea_protocol::store::DEFAULT_STORE_PORT,
            },
            kms_relay: Address::Vsock {
                cid,
                port: KMS_RELAY_PORT,
            },
        }
    }
}

/// The log key's source: KMS (production) or ephemeral.
fn log_key_source(args: &Args, nsm: Arc<dyn Nsm>, store: &Address) -> anyhow::Result<LogKeySource> {
    if matches!(args.log_key, LogKeyChoice::Ephemeral) {
        if args.kms_key_id.is_some() || args.kms_address.is_some() {
            bail!("--kms-* flags apply only to --log-key kms");
        }
        return Ok(LogKeySource::Ephemeral);
    }
    let (Some(key_id), Some(region)) = (&args.kms_key_id, &args.kms_region) else {
        bail!("--log-key kms needs --kms-key-id and --kms-region");
    };
    let address = match (&args.kms_address, args.nsm) {
        (Some(address), _) => address.clone(),
        (None, NsmChoice::Device) => ParentAddresses::on(args.parent_cid).kms_relay,
        (None, NsmChoice::Mock) => bail!(
            "with --nsm mock and --log-key kms, give --kms-address tcp:127.0.0.1:<port> (a local \
             KMS): off hardware there is no vsock"
        ),
    };
    let extra_ca_pem = match &args.kms_ca {
        Some(path) => Some(
            std::fs::read(path).with_context(|| format!("reading --kms-ca {}", path.display()))?,
        ),
        None => None,
    };
    let config = ea_kms::KmsConfig {
        address,
        host: args
            .kms_host
            .clone()
            .unwrap_or_else(|| format!("kms.{region}.amazonaws.com")),
        region: region.clone(),
        key_id: key_id.clone(),
        extra_ca_pem,
    };
    let credentials = ea_kms::credentials::ParentCredentials::new(
        ea_kms::credentials::StoreCredentialsSource::new(store.clone()),
    );
    let release = ea_kms::LogKeyRelease::new(config, nsm, credentials)
        .context("configuring the KMS client")?;
    Ok(LogKeySource::Kms(Box::new(release)))
}

/// Opens the NSM that was asked for by name (there is no fallback from device to mock), with
/// the root its documents chain to.
fn open_nsm(args: &Args) -> anyhow::Result<(NsmMode, Arc<dyn Nsm>, TrustRoot)> {
    match args.nsm {
        NsmChoice::Device => {
            if args.mock_ca_dir.is_some() || args.mock_measurements.is_some() {
                bail!("--mock-ca-dir and --mock-measurements apply only to --nsm mock");
            }
            let nsm =
                DeviceNsm::open().context("opening /dev/nsm (use --nsm mock off hardware)")?;
            if args.insecure_qemu_attestation {
                tracing::warn!(
                    "--insecure-qemu-attestation: the NSM is taken to be QEMU's nitro-enclave \
                     device; attestation documents are UNSIGNED and accepted as such: they \
                     prove nothing about hardware, the image or this enclave's keys"
                );
                return Ok((
                    NsmMode::DeviceInsecureQemu,
                    Arc::new(nsm),
                    TrustRoot::insecure_qemu_unsigned(),
                ));
            }
            Ok((
                NsmMode::Device,
                Arc::new(nsm),
                TrustRoot::aws_nitro_root_g1()?,
            ))
        }
        NsmChoice::Mock => {
            if args.insecure_qemu_attestation {
                bail!(
                    "--insecure-qemu-attestation applies only to --nsm device under QEMU's \
                     nitro-enclave machine: the mock NSM signs its documents"
                );
            }
            let measurements = match &args.mock_measurements {
                Some(path) => Measurements::from_file(path)
                    .with_context(|| format!("reading measurements {}", path.display()))?,
                None => {
                    Measurements::of_running_executable().context("measuring the running binary")?
                }
            };
            let ca = match &args.mock_ca_dir {
                Some(dir) => MockCaSource::Directory(dir.clone()),
                None => MockCaSource::Generate,
            };
            let nsm = MockNsm::new(MockNsmConfig::new(measurements).ca(ca))
                .context("starting the mock NSM")?;
            tracing::warn!(
                "running on the MOCK NSM: attestation documents verify only against the mock root, never the AWS root"
            );
            let root = nsm.trust_root()?;
            Ok((NsmMode::Mock, Arc::new(nsm), root))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]

    use super::*;

    #[test]
    fn the_parent_services_default_to_the_parent_cid() {
        let nitro = ParentAddresses::on(3);
        assert_eq!(nitro.store.to_string(), "vsock:3:5001");
        assert_eq!(nitro.kms_relay.to_string(), "vsock:3:8000");
        let qemu = ParentAddresses::on(2);
        assert_eq!(qemu.store.to_string(), "vsock:2:5001");
        assert_eq!(qemu.kms_relay.to_string(), "vsock:2:8000");
    }

    #[test]
    fn the_parent_cid_flag_defaults_to_the_nitro_parent() {
        // Only when the environment does not set it, as the image's init does.
        if std::env::var_os("ENCLAVE_PARENT_CID").is_none() {
            let args = Args::try_parse_from(["enclave-app", "--log-key", "ephemeral"]).unwrap();
            assert_eq!(args.parent_cid, 3);
        }
        let args =
            Args::try_parse_from(["enclave-app", "--log-key", "ephemeral", "--parent-cid", "2"])
                .unwrap();
        assert_eq!(args.parent_cid, 2);
        assert!(Args::try_parse_from(["enclave-app", "--parent-cid", "-1"]).is_err());
    }

    #[test]
    fn the_qemu_mode_is_refused_with_the_mock_nsm() {
        let args = Args::try_parse_from([
            "enclave-app",
            "--nsm",
            "mock",
            "--insecure-qemu-attestation",
        ])
        .unwrap();
        let error = open_nsm(&args).err().unwrap().to_string();
        assert!(
            error.contains("--insecure-qemu-attestation applies only to --nsm device"),
            "{error}"
        );
        assert!(
            !Args::try_parse_from(["enclave-app"])
                .unwrap()
                .insecure_qemu_attestation
        );
    }
}
