//! `parent-proxy`: runs on the parent EC2 instance, in front of the enclave.
//!
//! With flags only it serves (the API, the relay, the log store); `parent-proxy backup` and
//! `parent-proxy import` work on the store's file, on the instance, and are never reachable
//! through the API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use ea_protocol::rpc::ConnectionLimits;
use ea_protocol::Address;
use parent_proxy::api::{router, AppState};
use parent_proxy::credentials::{CredentialsSource, CredentialsSpec, DEFAULT_IMDS_ENDPOINT};
use parent_proxy::kms_relay::{self, Endpoint};
use parent_proxy::store::{service, LogStore, SqliteLogStore};
use parent_proxy::{heartbeat, listen};
use parent_proxy::{serve, tls, EnclavePool, HttpLimits, PoolConfig, Transport};

mod commands;

// The serving flags stay at the top level, as scripts and units give them
// (`parent-proxy --listen ... --enclave ...`); a subcommand instead runs one job and exits.
#[derive(Debug, Parser)]
#[command(
    name = "parent-proxy",
    version,
    about = "The Enclave Approvals parent-instance proxy",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: Option<Args>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Copy the log store into a new file, consistently, while the proxy serves (run on the
    /// instance, as the proxy's user).
    Backup(commands::BackupArgs),
    /// Rebuild a log store from a `govctl audit fetch` directory, after verifying all of it
    /// (run on the instance, with the proxy stopped).
    Import(commands::ImportArgs),
}

// The serving flags.
#[derive(Debug, clap::Args)]
struct Args {
    /// Address and port of the HTTPS API (port 0 picks a free port; the URL is printed).
    #[arg(long, env = "PROXY_LISTEN", default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// The enclave: vsock:<cid>:5000 on EC2; vsock-uds:<uds-path>:5000 for an enclave booted
    /// under QEMU, whose vsock the host reaches through vhost-device-vsock --uds-path
    /// <uds-path>; unix:<path> for a local stack.
    #[arg(long, env = "PROXY_ENCLAVE")]
    enclave: Address,
    /// PEM certificate chain for TLS.
    #[arg(long, required_unless_present = "insecure_http", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP. Refused unless --listen is a loopback address.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    insecure_http: bool,
    /// Connections kept open to the enclave.
    #[arg(long, default_value_t = 4)]
    pool_size: usize,
    /// Largest request body in bytes; larger bodies get 413.
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// Requests relayed at once; more get 503.
    #[arg(long, default_value_t = 512)]
    max_in_flight: usize,
    /// Client connections open at once.
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
    /// Milliseconds the enclave has to answer one request before the client gets 504.
    #[arg(long, default_value_t = 10_000)]
    request_timeout_ms: u64,
    /// Largest frame to or from the enclave, in bytes (the API relay and the log store).
    #[arg(long, default_value_t = ea_protocol::DEFAULT_MAX_FRAME_LEN)]
    max_frame_bytes: usize,
    /// Where the enclave connects to the log store: vsock:4294967295:5001 (any CID) on EC2,
    /// unix:<path> for a local stack.
    #[arg(
        long,
        env = "PROXY_STORE_LISTEN",
        default_value = "vsock:4294967295:5001"
    )]
    store_listen: Address,
    /// The SQLite file of the log store (created if missing). No default: the audit log is
    /// the one thing the parent must never lose, so its place is always chosen.
    #[arg(long, env = "PROXY_STORE_PATH")]
    store_path: PathBuf,
    /// Largest the log store may grow, in bytes (rounded down to 4 KiB pages). Appends that
    /// would exceed it are refused as on a full disk: nothing is written, the enclave answers
    /// not_durable and rebuilds its state, and the store works again once the limit is raised.
    /// Default: no limit beyond the disk's.
    #[arg(long, env = "PROXY_STORE_MAX_BYTES")]
    store_max_bytes: Option<u64>,
    /// Where the enclave's connections to KMS arrive, to be relayed to
    /// --kms-relay-endpoint: vsock:4294967295:8000 on EC2, unix:<path> for a local stack.
    /// No relay without it. The relay only passes bytes: TLS ends inside the enclave.
    #[arg(long, env = "PROXY_KMS_RELAY_LISTEN", requires = "kms_relay_endpoint")]
    kms_relay_listen: Option<Address>,
    /// The one KMS endpoint (host:port) the relay connects to, e.g.
    /// kms.eu-west-1.amazonaws.com:443. Refused at start unless it is an AWS KMS endpoint
    /// (kms[-fips].<region>.amazonaws.com:443) or given with --kms-relay-allow.
    #[arg(long, env = "PROXY_KMS_RELAY_ENDPOINT", requires = "kms_relay_listen")]
    kms_relay_endpoint: Option<Endpoint>,
    /// Allows one more relay endpoint (host:port), such as a local KMS on loopback.
    /// Repeatable.
    #[arg(long = "kms-relay-allow", value_name = "HOST:PORT")]
    kms_relay_allow: Vec<Endpoint>,
    /// AWS credentials handed to the enclave for its KMS calls: `imds` (the instance
    /// role's, through IMDSv2, refreshed before they expire) or `static:<file>` (a profile
    /// of an AWS credentials file, for local runs). Without it the enclave gets none.
    #[arg(long, env = "PROXY_AWS_CREDENTIALS", value_name = "imds|static:FILE")]
    aws_credentials: Option<CredentialsSpec>,
    /// The profile read from a static credentials file.
    #[arg(long, env = "PROXY_AWS_PROFILE", default_value = "default")]
    aws_profile: String,
    /// The instance metadata service's base URL.
    #[arg(long, default_value = DEFAULT_IMDS_ENDPOINT)]
    imds_endpoint: String,
    /// Answers the enclave's boot heartbeat (one byte 0xB7, echoed) here. Only for an enclave
    /// booted under QEMU: on EC2 nitro-cli answers it on vsock port 9000, but under QEMU the
    /// guest's heartbeat to CID 2 port 9000 arrives, through vhost-device-vsock --uds-path
    /// <uds-path>, at the unix socket <uds-path>_9000: give unix:<uds-path>_9000. Off by
    /// default.
    #[arg(long, env = "PROXY_ENCLAVE_HEARTBEAT", value_name = "unix:PATH")]
    enclave_heartbeat: Option<Address>,
    /// A C2SP tlog-witness to submit the log's checkpoints to (repeatable): https://..., or
    /// http:// on a loopback address. Its cosignatures are stored with the checkpoints and
    /// served at GET /v1/log/witnessed; appends never wait for witnesses. Which witnesses
    /// count is each client's choice (the keys it pins), so none are needed here; but an
    /// enclave whose log names a witness set asks, at start, for the log's head to be
    /// submitted to these now, and serves only once enough of the set cosigned it.
    #[arg(long = "witness", value_name = "URL")]
    witnesses: Vec<parent_proxy::witnesses::WitnessUrl>,
    /// How often the latest checkpoint is read and, when it grew, sent to the witnesses
    /// (milliseconds); also the first backoff after a witness failed (doubling up to 30 s).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    witness_interval_ms: u64,
}

/// Refuses a `vsock-uds:` address given where the proxy listens, before anything is bound:
/// binding it could never succeed, and the background retries would hide that. That socket
/// is for connecting to the guest; the guest's connections to port P arrive at `<path>_P`.
fn check_listen_address(flag: &str, address: &Address) -> anyhow::Result<()> {
    match address {
        Address::VsockUds { path, port } => bail!(
            "{flag} {address}: the hybrid vsock socket is for connecting to the enclave; the \
             enclave's connections to port {port} arrive at {path}_{port}, so give \
             unix:{path}_{port}",
            path = path.display()
        ),
        Address::Vsock { .. } | Address::Unix(_) | Address::Tcp { .. } => Ok(()),
    }
}

fn main() -> anyhow::Result<()> {
    ea_runtime::init_logging();
    let cli = Cli::parse();
    match (cli.command, cli.serve) {
        (Some(Command::Backup(args)), _) => commands::backup(&args),
        (Some(Command::Import(args)), _) => commands::import(&args),
        (None, Some(args)) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?
            .block_on(run(args)),
        // clap requires the serving flags when no subcommand is given.
        (None, None) => bail!("give the serving flags (--enclave, --store-path, ...) or a command"),
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let transport = match (&args.tls_cert, &args.tls_key, args.insecure_http) {
        (Some(cert), Some(key), false) => Transport::Tls(tls::server_config(cert, key)?),
        (None, None, true) if args.listen.ip().is_loopback() => Transport::InsecureHttp,
        (None, None, true) => bail!(
            "--insecure-http is only accepted with a loopback --listen address, not {}",
            args.listen
        ),
        _ => bail!("give --tls-cert and --tls-key, or --insecure-http on a loopback address"),
    };
    check_listen_address("--store-listen", &args.store_listen)?;
    if let Some(address) = &args.kms_relay_listen {
        check_listen_address("--kms-relay-listen", address)?;
    }
    if let Some(address) = &args.enclave_heartbeat {
        check_listen_address("--enclave-heartbeat", address)?;
    }
    let pool = EnclavePool::new(PoolConfig {
        enclave: args.enclave.clone(),
        size: args.pool_size,
        limits: ConnectionLimits {
            max_frame_len: args.max_frame_bytes,
            max_in_flight: 1024,
        },
        connect_timeout: Duration::from_secs(2),
        retry_after: Duration::from_millis(200),
    });
    let relay = match (&args.kms_relay_listen, &args.kms_relay_endpoint) {
        (Some(listen), Some(endpoint)) => {
            kms_relay::check_allowed(endpoint, &args.kms_relay_allow)?;
            Some((listen.clone(), endpoint.clone()))
        }
        _ => None,
    };
    let credentials = args
        .aws_credentials
        .as_ref()
        .map(|spec| CredentialsSource::open(spec, &args.aws_profile, &args.imds_endpoint))
        .transpose()
        .context("setting up --aws-credentials")?;
    let options = parent_proxy::store::SqliteOptions {
        max_page_count: args
            .store_max_bytes
            .map(|bytes| u32::try_from(bytes / 4096).unwrap_or(u32::MAX).max(1)),
    };
    let store = SqliteLogStore::open_with(&args.store_path, &options)
        .with_context(|| format!("opening the log store {}", args.store_path.display()))?;
    let log: Arc<dyn LogStore> = Arc::new(store);
    let (stop_store, store_stopped) = tokio::sync::watch::channel(false);
    let witnesses_stopped = store_stopped.clone();
    // One cache of leaf hashes for the consistency route and the witness submissions.
    let leaves = parent_proxy::log_routes::LeafCache::default();
    let witness_config = parent_proxy::witnesses::SubmitterConfig::new(
        args.witnesses.clone(),
        Duration::from_millis(args.witness_interval_ms),
    );
    let mut store_service = service::StoreService::new(log.clone(), args.max_frame_bytes);
    if !args.witnesses.is_empty() {
        let on_demand =
            parent_proxy::witnesses::OnDemand::new(&witness_config, log.clone(), leaves.clone())
                .context("making the HTTP client for the witnesses")?;
        store_service = store_service.with_witnesses(on_demand);
    }
    if let Some(credentials) = credentials {
        store_service = store_service.with_credentials(Arc::new(credentials));
    }
    // Bound before "listening on" is printed, so an enclave started on that line finds them.
    let store_listener = listen::bind_at_start(&args.store_listen, "log store").await;
    let relay_task = match relay {
        Some((listen, endpoint)) => {
            let bound = listen::bind_at_start(&listen, "KMS relay").await;
            Some(tokio::spawn(kms_relay::run(
                listen,
                bound,
                endpoint,
                store_stopped.clone(),
            )))
        }
        None => None,
    };
    let heartbeat_task = match &args.enclave_heartbeat {
        Some(listen) => {
            let bound = listen::bind_at_start(listen, "enclave heartbeat").await;
            Some(tokio::spawn(heartbeat::run(
                listen.clone(),
                bound,
                store_stopped.clone(),
            )))
        }
        None => None,
    };
    let store_service = tokio::spawn(service::run(
        args.store_listen.clone(),
        store_listener,
        store_service,
        ConnectionLimits {
            max_frame_len: args.max_frame_bytes,
            max_in_flight: 64,
        },
        store_stopped,
    ));
    let witness_task = (!args.witnesses.is_empty()).then(|| {
        tokio::spawn(parent_proxy::witnesses::run(
            witness_config,
            log.clone(),
            leaves.clone(),
            witnesses_stopped,
        ))
    });
    let state = AppState {
        pool: Arc::new(pool),
        request_timeout: Duration::from_millis(args.request_timeout_ms),
        log,
        leaves,
    };
    let limits = HttpLimits {
        max_body_bytes: args.max_body_bytes,
        max_in_flight: args.max_in_flight,
        max_connections: args.max_connections,
        ..HttpLimits::default()
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let bound = listener.local_addr()?;
    let scheme = match transport {
        Transport::Tls(_) => "https",
        Transport::InsecureHttp => "http",
    };
    // Scripts and tests read this line to learn the port.
    println!("listening on {scheme}://{bound}");
    tracing::info!(%bound, enclave = %args.enclave, store = %args.store_path.display(), "parent-proxy serving");
    let shutdown = async move {
        ea_runtime::shutdown_signal().await;
        let _ = stop_store.send(true);
    };
    serve(listener, transport, router(state), limits, shutdown).await?;
    // The store answers the appends in flight before it stops.
    if tokio::time::timeout(limits.shutdown_grace, store_service)
        .await
        .is_err()
    {
        tracing::warn!("the log store service did not stop within the grace period");
    }
    if let Some(relay) = relay_task {
        let _ = tokio::time::timeout(limits.shutdown_grace, relay).await;
    }
    if let Some(heartbeat) = heartbeat_task {
        let _ = tokio::time::timeout(limits.shutdown_grace, heartbeat).await;
    }
    if let Some(witnesses) = witness_task {
        // A submission in flight is abandoned: the witness's state is its own, and the next
        // start sends again.
        let _ = tokio::time::timeout(Duration::from_secs(1), witnesses).await;
    }
    tracing::info!("stopped");
    Ok(())
}
