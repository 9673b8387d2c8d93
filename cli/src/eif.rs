//! `govctl eif`: what an enclave image will measure as, without nitro-cli.
//!
//! - `inspect FILE` prints the image's description in `nitro-cli describe-eif`'s JSON shape.
//! - `pcrs FILE [--out pcrs.json]` prints (and writes) the measurements document that
//!   `kms-policy`, `audit verify` and the mock NSM read.
//! - `compare --expected A --actual B` compares two sets of PCRs, each read from an EIF, a
//!   measurements document, nitro-cli's `build-enclave`/`describe-eif` output, or
//!   `nitro-cli describe-enclaves` output (a list of running enclaves).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use ea_eif::{Description, Eif, Measurements, PcrStatus};

/// Exit status of `compare` when the PCRs differ (1 is left for errors).
const EXIT_MISMATCH: u8 = 2;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Check an EIF (layout, CRC) and describe it as `nitro-cli describe-eif` does.
    Inspect {
        /// The enclave image file.
        file: PathBuf,
    },
    /// Compute an EIF's PCRs and print them as a measurements document.
    Pcrs {
        /// The enclave image file.
        file: PathBuf,
        /// Also write the document to this file (e.g. eif/out/pcrs.json).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Compare expected PCRs with actual ones; exits 0 when every expected PCR matches and
    /// 2 when any differs or is missing.
    Compare {
        /// Expected PCRs: an EIF, pcrs.json, or nitro-cli JSON output.
        #[arg(long)]
        expected: PathBuf,
        /// Actual PCRs: an EIF, pcrs.json, or nitro-cli JSON output (`-` reads stdin), such
        /// as `nitro-cli describe-enclaves`.
        #[arg(long)]
        actual: PathBuf,
        /// Which running enclave to take from a `describe-enclaves` list (needed when it
        /// lists more than one).
        #[arg(long)]
        enclave_name: Option<String>,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Inspect { file } => {
            let bytes = read(&file)?;
            let eif = parse(&file, &bytes)?;
            println!("{}", serde_json::to_string_pretty(&Description::of(&eif))?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Pcrs { file, out } => {
            let bytes = read(&file)?;
            let json = parse(&file, &bytes)?.measurements().to_json_pretty();
            if let Some(out) = out {
                fs::write(&out, &json)
                    .with_context(|| format!("writing measurements to {}", out.display()))?;
            }
            print!("{json}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Compare {
            expected,
            actual,
            enclave_name,
        } => {
            let expected = load_measurements(&expected, enclave_name.as_deref())?;
            let actual = load_measurements(&actual, enclave_name.as_deref())?;
            Ok(report(&expected, &actual))
        }
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes).context("reading stdin")?;
        return Ok(bytes);
    }
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> anyhow::Result<Eif<'a>> {
    Eif::parse(bytes).with_context(|| format!("{} is not a valid EIF", path.display()))
}

/// PCRs from an EIF (recognised by its magic) or from one of the JSON documents.
fn load_measurements(path: &Path, enclave_name: Option<&str>) -> anyhow::Result<Measurements> {
    let bytes = read(path)?;
    if bytes.starts_with(&ea_eif::format::MAGIC) {
        return Ok(parse(path, &bytes)?.measurements());
    }
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is neither an EIF nor JSON", path.display()))?;
    let document = match value {
        serde_json::Value::Array(enclaves) => {
            serde_json::to_vec(&pick_enclave(path, enclaves, enclave_name)?)?
        }
        _ => bytes,
    };
    Measurements::from_json(&document)
        .with_context(|| format!("reading measurements from {}", path.display()))
}

/// Chooses one entry of `nitro-cli describe-enclaves` output.
fn pick_enclave(
    path: &Path,
    enclaves: Vec<serde_json::Value>,
    name: Option<&str>,
) -> anyhow::Result<serde_json::Value> {
    let total = enclaves.len();
    let mut matching: Vec<serde_json::Value> = enclaves
        .into_iter()
        .filter(|enclave| {
            name.is_none_or(|name| {
                enclave.get("EnclaveName").and_then(|v| v.as_str()) == Some(name)
            })
        })
        .collect();
    match (matching.len(), name) {
        (1, _) => Ok(matching.remove(0)),
        (0, None) => bail!("{} lists no running enclave", path.display()),
        (0, Some(name)) => bail!(
            "{} lists {total} enclave(s), none named {name:?}",
            path.display()
        ),
        (n, _) => bail!(
            "{} lists {n} matching enclaves; choose one with --enclave-name",
            path.display()
        ),
    }
}

/// Prints the comparison and returns the exit status.
fn report(expected: &Measurements, actual: &Measurements) -> ExitCode {
    let hex = |value: Option<[u8; 48]>| value.map_or_else(|| "(absent)".to_owned(), hex::encode);
    let mut failed = Vec::new();
    for line in expected.compare(actual) {
        let verdict = match line.status {
            PcrStatus::Match => "match",
            PcrStatus::Mismatch => "MISMATCH",
            PcrStatus::Missing => "MISSING",
            PcrStatus::Unchecked => "not expected, not checked",
        };
        if matches!(line.status, PcrStatus::Mismatch | PcrStatus::Missing) {
            failed.push(format!("PCR{}", line.index));
        }
        println!("PCR{:<2} {verdict}", line.index);
        println!("  expected {}", hex(line.expected));
        println!("  actual   {}", hex(line.actual));
    }
    let zero = Some([0u8; 48]);
    if [0, 1, 2].iter().all(|index| actual.pcr(*index) == zero) {
        println!(
            "note: the actual PCR0, PCR1 and PCR2 are all zero: the enclave runs in debug mode, \
             which attests nothing"
        );
    }
    if failed.is_empty() {
        println!("OK: every expected PCR matches");
        ExitCode::SUCCESS
    } else {
        println!(
            "FAILED: {} differ from the expected values",
            failed.join(", ")
        );
        ExitCode::from(EXIT_MISMATCH)
    }
}
