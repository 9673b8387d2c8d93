//! `govctl eif`: what an enclave image will measure as, without nitro-cli.
//!
//! - `inspect FILE` prints the image's description in `nitro-cli describe-eif`'s JSON shape.
//! - `pcrs FILE [--out pcrs.json]` prints (and writes) the measurements document that
//!   `kms-policy`, `audit verify` and the mock NSM read.
//! - `compare --expected A --actual B` compares two sets of PCRs, each read from an EIF, a
//!   measurements document, nitro-cli's `build-enclave`/`describe-eif` output, or
//!   `nitro-cli describe-enclaves` output (a list of running enclaves).
//! - `ramdisk --list FILE --out FILE` writes a reproducible cpio ramdisk from a
//!   `gen_init_cpio` list, and `build` assembles kernel, command line and ramdisks into an
//!   EIF: together, the image builder of `scripts/build-eif-local.sh` (no Docker, no nitro-cli).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use ea_eif::ramdisk::Ramdisk;
use ea_eif::writer::EifBuilder;
use ea_eif::{BuildInfo, Description, Eif, Measurements, Metadata, PcrStatus};

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
    /// Write a cpio ramdisk (newc, uncompressed) from a list in the kernel's gen_init_cpio
    /// format: entries sorted by path, owners and modes as listed, one modification time.
    Ramdisk {
        /// The list: `dir PATH MODE UID GID`, `file PATH SOURCE MODE UID GID`,
        /// `nod PATH MODE UID GID c|b MAJOR MINOR`, `slink PATH TARGET MODE UID GID`.
        #[arg(long)]
        list: PathBuf,
        /// Where relative SOURCE paths are taken from (default: the list's directory).
        #[arg(long)]
        from: Option<PathBuf>,
        /// Modification time of every entry, seconds since the epoch.
        #[arg(long, env = "SOURCE_DATE_EPOCH", default_value_t = 0)]
        mtime: u32,
        /// The ramdisk to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Assemble an EIF from a kernel, its command line and ramdisks (the first is the
    /// bootstrap, measured into PCR1; the others are the application, PCR2), then print its
    /// PCRs.
    Build {
        /// The kernel image (bzImage on x86_64).
        #[arg(long)]
        kernel: PathBuf,
        /// The kernel command line (measured).
        #[arg(long)]
        cmdline: String,
        /// A ramdisk, in boot order. Repeat: at least two (bootstrap, application).
        #[arg(long = "ramdisk", required = true)]
        ramdisks: Vec<PathBuf>,
        /// Image name recorded in the (unmeasured) metadata section.
        #[arg(long, default_value = "enclave-approvals")]
        name: String,
        /// Image version recorded in the metadata section (e.g. the commit).
        #[arg(long, default_value = "0")]
        version: String,
        /// The kernel's version, recorded in the metadata section.
        #[arg(long, default_value = "")]
        kernel_version: String,
        /// Build time recorded in the metadata section, seconds since the epoch; fixed so that
        /// the whole file, not only its PCRs, is reproducible.
        #[arg(long, env = "SOURCE_DATE_EPOCH", default_value_t = 0)]
        build_time: i64,
        /// The EIF to write.
        #[arg(long)]
        out: PathBuf,
        /// Also write the measurements document (pcrs.json) here.
        #[arg(long)]
        pcrs_out: Option<PathBuf>,
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
        Command::Ramdisk {
            list,
            from,
            mtime,
            out,
        } => {
            let text = fs::read_to_string(&list)
                .with_context(|| format!("reading the list {}", list.display()))?;
            let base = match from {
                Some(dir) => dir,
                None => list.parent().map(Path::to_path_buf).unwrap_or_default(),
            };
            let ramdisk = Ramdisk::from_list(&text, &base, mtime)
                .with_context(|| format!("in {}", list.display()))?;
            let bytes = ramdisk.to_cpio();
            fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
            eprintln!("govctl: wrote {} ({} bytes)", out.display(), bytes.len());
            Ok(ExitCode::SUCCESS)
        }
        Command::Build {
            kernel,
            cmdline,
            ramdisks,
            name,
            version,
            kernel_version,
            build_time,
            out,
            pcrs_out,
        } => {
            if ramdisks.len() < 2 {
                bail!(
                    "give at least two --ramdisk: the bootstrap (init, PCR1) and the application \
                     (PCR2)"
                );
            }
            let mut builder = EifBuilder::new(read(&kernel)?, cmdline.into_bytes());
            for ramdisk in &ramdisks {
                builder = builder.ramdisk(read(ramdisk)?);
            }
            let build_time = jiff::Timestamp::from_second(build_time)
                .with_context(|| format!("build time {build_time}"))?
                .to_string();
            let bytes = builder
                .metadata(Metadata {
                    image_name: name,
                    image_version: version,
                    build: BuildInfo {
                        build_time,
                        build_tool: "govctl eif build".into(),
                        build_tool_version: env!("CARGO_PKG_VERSION").into(),
                        operating_system: "Linux".into(),
                        kernel_version,
                    },
                    docker_info: serde_json::Value::Null,
                    custom: serde_json::Value::Null,
                })
                .build()
                .context("assembling the image")?;
            // Read back through the parser: what is written is what every verifier will read.
            let json = parse(&out, &bytes)?.measurements().to_json_pretty();
            fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
            if let Some(path) = pcrs_out {
                fs::write(&path, &json)
                    .with_context(|| format!("writing measurements to {}", path.display()))?;
            }
            print!("{json}");
            Ok(ExitCode::SUCCESS)
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
