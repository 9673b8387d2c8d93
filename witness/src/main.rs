//! `witness`: a C2SP tlog-witness for Enclave Approvals audit logs.
//!
//! `witness --listen ADDR --db PATH --key-file FILE --name NAME --log ORIGIN=VKEY...` serves
//! `POST /add-checkpoint`; `witness keygen --name NAME --out FILE` makes its key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use witness::config::{parse_log, FileConfig};
use witness::http::{serve, Limits};
use witness::protocol::Witness;
use witness::store::Store;
use witness::{keyfile, Service};

#[derive(Debug, Parser)]
#[command(
    name = "witness",
    version,
    about = "A C2SP tlog-witness: cosigns Enclave Approvals checkpoints that extend the last one it cosigned",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make a witness key: write its secret key file (mode 0600, never overwritten) and
    /// print its verifier key (`<name>+<key id>+<base64(0x04 || key)>`), which clients pin.
    Keygen {
        /// The witness name, a schema-less URL (for example witness.example.com/w1).
        #[arg(long)]
        name: String,
        /// Where to write the secret key file; it must not exist.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// A TOML file with any of listen, db, key_file, name and log (flags given here win;
    /// --log values add to the file's).
    #[arg(long, env = "WITNESS_CONFIG")]
    config: Option<PathBuf>,
    /// Address and port to serve plain HTTP on (port 0 picks a free one; the address is
    /// printed on stdout as `listening on <addr>`).
    #[arg(long, env = "WITNESS_LISTEN")]
    listen: Option<SocketAddr>,
    /// The state database (SQLite; created if missing). Losing it means retiring the
    /// witness key: a fresh state would cosign a fork of what it cosigned before.
    #[arg(long, env = "WITNESS_DB")]
    db: Option<PathBuf>,
    /// The secret key file `witness keygen` wrote (mode 0600).
    #[arg(long, env = "WITNESS_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// The witness name; must be the key file's.
    #[arg(long, env = "WITNESS_NAME")]
    name: Option<String>,
    /// A log to follow, as ORIGIN=VKEY: its origin and its log key in the note verifier key
    /// form (named after the origin). Repeat for more logs, and for more keys of one log.
    #[arg(long = "log", value_name = "ORIGIN=VKEY")]
    logs: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Keygen { name, out }) => {
            let signer = keyfile::generate(&out, &name)?;
            println!("{}", signer.verifier());
            Ok(())
        }
        None => run(cli.serve),
    }
}

fn run(args: ServeArgs) -> anyhow::Result<()> {
    ea_runtime::init_logging();
    let file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the config file {}", path.display()))?;
            FileConfig::parse(&text)
                .with_context(|| format!("parsing the config file {}", path.display()))?
        }
        None => FileConfig::default(),
    };
    let Some(listen) = args.listen.or(file.listen) else {
        bail!("--listen is required (or listen in the --config file)");
    };
    let Some(db) = args.db.or(file.db) else {
        bail!("--db is required (or db in the --config file)");
    };
    let Some(key_file) = args.key_file.or(file.key_file) else {
        bail!("--key-file is required (or key_file in the --config file)");
    };
    let Some(name) = args.name.or(file.name) else {
        bail!("--name is required (or name in the --config file)");
    };
    let mut log_keys = Vec::new();
    for spec in file.log.iter().chain(&args.logs) {
        log_keys.push(parse_log(spec).with_context(|| format!("--log {spec}"))?);
    }

    let cosigner = keyfile::load(&key_file, &name)?;
    let witness = Witness::new(cosigner, log_keys)?;
    let store = Store::open(&db)?;
    for stored in store.all()? {
        let followed = witness.logs().contains_key(&stored.origin);
        tracing::info!(
            origin = %stored.origin,
            size = stored.state.size,
            followed,
            "stored state"
        );
    }
    let service = Arc::new(Service::new(witness, store));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let bound = listener.local_addr().context("reading the bound address")?;
        tracing::info!(
            witness = %service.witness().cosigner().verifier(),
            logs = service.witness().logs().len(),
            %bound,
            "serving add-checkpoint"
        );
        println!("listening on {bound}");
        serve(
            listener,
            service,
            Limits::default(),
            ea_runtime::shutdown_signal(),
        )
        .await
        .context("serving")
    })
}
