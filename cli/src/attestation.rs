//! `govctl attestation verify`: check a Nitro attestation document offline;
//! `govctl attestation fetch`: get a fresh one from a running enclave and check it.
//!
//! The document may be raw CBOR (COSE_Sign1) or base64 of it, from a file or `-` (stdin).
//! Success prints a JSON summary; a failed check exits with code 1 and names the check on
//! stderr.

use std::collections::BTreeMap;
use std::io::{self, Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context as _};
use base64::Engine as _;
use clap::Subcommand;
use ea_attestation::limits::{MAX_DOCUMENT_LEN, PCR_COUNT};
use ea_attestation::{
    verify, AttestationDocument, TrustRoot, ValidationTime, VerificationReport, Verified,
    VerifyOptions,
};
use serde::Serialize;

/// Largest input read: a maximal document in base64, with line breaks.
const MAX_INPUT_LEN: u64 = (MAX_DOCUMENT_LEN as u64) * 4 / 3 + 4096;
/// Largest root PEM file read.
const MAX_PEM_LEN: u64 = 64 * 1024;

/// Printed on stderr by every run that accepts QEMU's unsigned documents, whether through
/// `--insecure-qemu-attestation` or a trust file created with it.
pub fn warn_insecure_qemu() {
    eprintln!(
        "govctl: WARNING: insecure QEMU mode (--insecure-qemu-attestation): attestation \
         documents are accepted UNSIGNED, as QEMU's nitro-enclave NSM writes them; they prove \
         nothing about hardware, the enclave image or who wrote them"
    );
}

/// The QEMU mode's root, after the warning: for the commands whose `--root` it replaces.
pub fn insecure_qemu_root() -> TrustRoot {
    warn_insecure_qemu();
    TrustRoot::insecure_qemu_unsigned()
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: AttestationCommand,
}

#[derive(Debug, Subcommand)]
enum AttestationCommand {
    /// Verify an attestation document: certificate chain to a pinned root, validity,
    /// signature, debug mode, and the expected PCRs and fields.
    Verify(VerifyArgs),
    /// Ask the running enclave for a fresh document with a random nonce, and verify it (the
    /// nonce, an age of at most --max-age, and whatever else is pinned).
    Fetch(FetchArgs),
}

#[derive(Debug, clap::Args)]
struct FetchArgs {
    #[command(flatten)]
    endpoint: crate::client::EndpointArgs,
    #[command(flatten)]
    expect: Expectations,
    /// The nonce to send (hex, at most 512 bytes); by default 32 random bytes.
    #[arg(long, value_name = "HEX")]
    nonce: Option<String>,
    /// Refuse a document older than this (e.g. 5m, 30s).
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    max_age: String,
    /// Also write the document (raw CBOR) to this file.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// The document: raw CBOR or base64; `-` reads stdin.
    file: String,
    #[command(flatten)]
    expect: Expectations,
    /// Check the certificates at this time (RFC 3339) instead of now.
    #[arg(long, value_name = "RFC3339", conflicts_with = "at_document_time")]
    at: Option<String>,
    /// Check the certificates at the document's own timestamp (for stored documents).
    #[arg(long)]
    at_document_time: bool,
    /// Require this nonce (hex).
    #[arg(long, value_name = "HEX")]
    nonce: Option<String>,
    /// Refuse documents older than this at the system clock's now (e.g. 5m, 1h30m, PT10M).
    #[arg(long, value_name = "DURATION")]
    max_age: Option<String>,
}

/// What a document must show, for both `verify` and `fetch`.
#[derive(Debug, clap::Args)]
struct Expectations {
    /// Trust this root (PEM) instead of the AWS Nitro Enclaves Root-G1, e.g. a mock NSM's root.
    #[arg(long, value_name = "PEM")]
    root: Option<PathBuf>,
    /// INSECURE: accept only the unsigned documents of QEMU's nitro-enclave machine, instead
    /// of documents chaining to a root. PCRs, fields and age are still checked, but such a
    /// document proves nothing about hardware. For developing under QEMU.
    #[arg(long, conflicts_with = "root")]
    insecure_qemu_attestation: bool,
    /// Require PCR N to equal HEX (repeatable).
    #[arg(long = "pcr", value_name = "N=HEX")]
    pcrs: Vec<String>,
    /// Require the PCRs of this measurements file (`govctl eif pcrs` output).
    #[arg(long = "pcrs", value_name = "FILE")]
    pcrs_file: Option<PathBuf>,
    /// Require this user data (hex).
    #[arg(long, value_name = "HEX")]
    user_data: Option<String>,
    /// Require this public key (hex).
    #[arg(long, value_name = "HEX")]
    public_key: Option<String>,
    /// Accept a debug-mode document (PCR0, 1, 2 all zero). Such an enclave is not protected
    /// from its parent instance.
    #[arg(long)]
    allow_debug: bool,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        AttestationCommand::Verify(args) => run_verify(&args),
        AttestationCommand::Fetch(args) => run_fetch(&args).await,
    }
}

fn run_verify(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let document = decode_document(&read_input(&args.file)?)?;
    let at = match (&args.at, args.at_document_time) {
        (_, true) => ValidationTime::DocumentTime,
        (Some(text), false) => ValidationTime::At(parse_rfc3339_ms(text)?),
        (None, false) => ValidationTime::At(now_ms()?),
    };
    let mut options = options(&args.expect, at)?;
    if let Some(nonce) = &args.nonce {
        options = options.nonce(parse_hex("--nonce", nonce)?);
    }
    if let Some(max_age) = &args.max_age {
        options = options.max_age(parse_duration(max_age)?, now_ms()?);
    }
    report(&document, &options)
}

async fn run_fetch(args: &FetchArgs) -> anyhow::Result<ExitCode> {
    let nonce = match &args.nonce {
        Some(text) => parse_hex("--nonce", text)?,
        None => {
            let mut nonce = vec![0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
                .map_err(|_| anyhow::anyhow!("no randomness for the nonce"))?;
            nonce
        }
    };
    let client = crate::client::ApiClient::new(&args.endpoint)?;
    let reply = client
        .get_json(&format!("/v1/attestation?nonce={}", hex::encode(&nonce)))
        .await?;
    let encoded = reply
        .get("document")
        .and_then(|d| d.as_str())
        .context("the answer has no document")?;
    let document = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .context("the document is not base64")?;
    if let Some(path) = &args.out {
        std::fs::write(path, &document).with_context(|| format!("writing {}", path.display()))?;
    }
    let options = options(&args.expect, ValidationTime::At(now_ms()?))?
        .nonce(nonce)
        .max_age(parse_duration(&args.max_age)?, now_ms()?);
    report(&document, &options)
}

/// Verifies and prints the summary, or names the failed check and exits 1.
fn report(document: &[u8], options: &VerifyOptions) -> anyhow::Result<ExitCode> {
    match verify(document, options) {
        Ok(verified) => {
            let summary = Summary::new(&verified);
            let mut stdout = io::stdout().lock();
            serde_json::to_writer_pretty(&mut stdout, &summary)?;
            writeln!(stdout)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!(
                "govctl: attestation refused: check {} failed: {error}",
                error.failed_check()
            );
            Ok(ExitCode::from(1))
        }
    }
}

fn now_ms() -> anyhow::Result<u64> {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?;
    Ok(u64::try_from(since_epoch.as_millis())?)
}

fn options(args: &Expectations, at: ValidationTime) -> anyhow::Result<VerifyOptions> {
    let root = match &args.root {
        _ if args.insecure_qemu_attestation => insecure_qemu_root(),
        Some(path) => {
            let pem = read_bounded(
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
                MAX_PEM_LEN,
            )
            .with_context(|| format!("reading {}", path.display()))?;
            TrustRoot::from_pem(&pem).with_context(|| format!("root {}", path.display()))?
        }
        None => TrustRoot::aws_nitro_root_g1()?,
    };
    let mut options = VerifyOptions::new(root)
        .at(at)
        .dangerous_allow_debug(args.allow_debug);
    if let Some(path) = &args.pcrs_file {
        let json = read_bounded(
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
            MAX_PEM_LEN,
        )?;
        let measurements = ea_eif::Measurements::from_json(&json)
            .with_context(|| format!("reading PCRs from {}", path.display()))?;
        for (index, value) in measurements.iter() {
            options = options.pcr(u16::try_from(index)?, value.to_vec());
        }
    }
    for pin in &args.pcrs {
        let (index, value) = parse_pcr(pin)?;
        options = options.pcr(index, value);
    }
    if let Some(user_data) = &args.user_data {
        options = options.user_data(parse_hex("--user-data", user_data)?);
    }
    if let Some(public_key) = &args.public_key {
        options = options.public_key(parse_hex("--public-key", public_key)?);
    }
    Ok(options)
}

fn read_bounded(mut reader: impl io::Read, limit: u64) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader.by_ref().take(limit + 1).read_to_end(&mut bytes)?;
    ensure!(
        bytes.len() as u64 <= limit,
        "input is larger than {limit} bytes"
    );
    Ok(bytes)
}

fn read_input(file: &str) -> anyhow::Result<Vec<u8>> {
    if file == "-" {
        return read_bounded(io::stdin().lock(), MAX_INPUT_LEN).context("reading stdin");
    }
    let handle = std::fs::File::open(file).with_context(|| format!("opening {file}"))?;
    read_bounded(handle, MAX_INPUT_LEN).with_context(|| format!("reading {file}"))
}

/// Raw COSE_Sign1 starts with 0x84 (array of 4) or 0xd2 (tag 18), neither an ASCII byte; text
/// made only of base64 characters and whitespace is decoded as base64.
fn decode_document(input: &[u8]) -> anyhow::Result<Vec<u8>> {
    let is_base64_text = !input.is_empty()
        && input.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_')
                || b.is_ascii_whitespace()
        });
    if !is_base64_text {
        return Ok(input.to_vec());
    }
    let text: Vec<u8> = input
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    engines
        .iter()
        .find_map(|engine| engine.decode(&text).ok())
        .context("the input is text but not base64 of a document")
}

fn parse_hex(flag: &str, text: &str) -> anyhow::Result<Vec<u8>> {
    hex::decode(text.trim()).with_context(|| format!("{flag}: not hex"))
}

fn parse_pcr(pin: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    let (index, value) = pin
        .split_once('=')
        .with_context(|| format!("--pcr {pin:?}: expected N=HEX"))?;
    let index: u16 = index
        .trim()
        .trim_start_matches("PCR")
        .parse()
        .with_context(|| format!("--pcr {pin:?}: {index:?} is not a PCR index"))?;
    if index >= PCR_COUNT {
        bail!("--pcr {pin:?}: PCR index must be below {PCR_COUNT}");
    }
    Ok((index, parse_hex("--pcr", value)?))
}

fn parse_rfc3339_ms(text: &str) -> anyhow::Result<u64> {
    let timestamp = jiff::Timestamp::from_str(text)
        .with_context(|| format!("--at {text:?}: not an RFC 3339 time"))?;
    u64::try_from(timestamp.as_millisecond()).with_context(|| format!("--at {text:?}: before 1970"))
}

fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let duration = jiff::SignedDuration::from_str(text)
        .with_context(|| format!("--max-age {text:?}: not a duration (e.g. 5m, 1h30m, PT10M)"))?;
    Duration::try_from(duration).with_context(|| format!("--max-age {text:?}: negative"))
}

fn hex_field(value: &Option<Vec<u8>>) -> Option<String> {
    value.as_ref().map(hex::encode)
}

fn rfc3339(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(|| ms.to_string(), |t| t.to_string())
}

#[derive(Serialize)]
struct RootSummary {
    kind: &'static str,
    sha256: String,
}

#[derive(Serialize)]
struct Summary {
    verified: bool,
    module_id: String,
    timestamp: String,
    timestamp_ms: u64,
    digest: &'static str,
    pcrs: BTreeMap<u16, String>,
    public_key: Option<String>,
    user_data: Option<String>,
    nonce: Option<String>,
    debug_mode: bool,
    validated_at: String,
    root: RootSummary,
    chain_len: usize,
    checks: Vec<&'static str>,
    pinned_pcrs: Vec<u16>,
    age_ms: Option<u64>,
}

impl Summary {
    fn new(verified: &Verified<AttestationDocument>) -> Self {
        let report: &VerificationReport = verified.report();
        Self {
            verified: true,
            module_id: verified.module_id.clone(),
            timestamp: rfc3339(verified.timestamp),
            timestamp_ms: verified.timestamp,
            digest: verified.digest.as_str(),
            pcrs: verified
                .pcrs
                .iter()
                .map(|(index, value)| (*index, hex::encode(value)))
                .collect(),
            public_key: hex_field(&verified.public_key),
            user_data: hex_field(&verified.user_data),
            nonce: hex_field(&verified.nonce),
            debug_mode: report.debug_mode,
            validated_at: report.validated_at.to_string(),
            root: RootSummary {
                kind: report.root.name(),
                sha256: hex::encode(report.root_sha256),
            },
            chain_len: report.chain_len,
            checks: report.checks.iter().map(|check| check.name()).collect(),
            pinned_pcrs: report.pinned_pcrs.clone(),
            age_ms: report
                .age
                .map(|age| u64::try_from(age.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcr_pins_parse() {
        assert_eq!(parse_pcr("0=00ff").unwrap(), (0, vec![0, 255]));
        assert_eq!(parse_pcr("PCR8=01").unwrap(), (8, vec![1]));
        assert!(parse_pcr("32=00").is_err());
        assert!(parse_pcr("0:00").is_err());
        assert!(parse_pcr("0=zz").is_err());
    }

    #[test]
    fn raw_and_base64_documents_are_told_apart() {
        assert_eq!(decode_document(&[0x84, 0x44]).unwrap(), vec![0x84, 0x44]);
        assert_eq!(decode_document(b"hEQ=\n").unwrap(), vec![0x84, 0x44]);
        assert_eq!(decode_document(b"hEQ").unwrap(), vec![0x84, 0x44]);
        assert!(decode_document(b"h").is_err());
    }

    #[test]
    fn times_and_durations_parse() {
        assert_eq!(
            parse_rfc3339_ms("2022-10-13T08:58:02.136Z").unwrap(),
            1_665_651_482_136
        );
        assert!(parse_rfc3339_ms("1960-01-01T00:00:00Z").is_err());
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("PT1H").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("-5m").is_err());
        assert_eq!(rfc3339(1_665_651_482_136), "2022-10-13T08:58:02.136Z");
    }

    #[test]
    fn oversized_input_is_refused() {
        assert!(read_bounded(&[0u8; 11][..], 10).is_err());
        assert_eq!(read_bounded(&[0u8; 10][..], 10).unwrap().len(), 10);
    }
}
