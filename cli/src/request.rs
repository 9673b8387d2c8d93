//! Signing a request, sending it, and checking the answer before reporting success.
//!
//! For an answer that wrote records, govctl checks, without trusting the proxy: that the
//! first record carries its own signed request (the same body bytes and signature,
//! [`same_signed_request`]: the parent may re-encode the envelope, which the enclave still
//! accepts, and reporting failure for an applied change would invite a second one); that each record is in the log
//! (inclusion proof to its checkpoint); and that the checkpoint is signed by a log key the
//! trust file has seen attested (learning a new one from its attested `enclave_start` record
//! if the enclave restarted). Only then is the answer printed.
//!
//! Exit codes: 0 done (or pending approval), 3 refused or denied by policy, 1 any other error.

use std::process::ExitCode;

use anyhow::{ensure, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ea_audit::answer::request_hash;
use ea_audit::receipt::{verify_receipt, ReceiptError};
use ea_audit::record::Record;
use ea_ledger::{check_answer_against_records, Answer, ErrorReply, Operation, Reply};
use ea_protocol::signed::{decode_signed_request, encode_signed_request, same_signed_request};

use crate::client::{ApiClient, EndpointArgs};
use crate::identity::{Identity, IdentityArgs};
use crate::trust::{Trust, TrustArgs};

/// What every signed subcommand takes.
#[derive(Debug, Clone, clap::Args)]
pub struct RequestArgs {
    #[command(flatten)]
    pub endpoint: EndpointArgs,
    #[command(flatten)]
    pub identity: IdentityArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Print the signed request (base64, for `curl -H "X-Signed-Request: ..."` or
    /// `{"signedRequest": ...}`) instead of sending it. It is valid for 5 minutes, once.
    #[arg(long, global = true)]
    pub print_signed: bool,
    /// Also write the whole reply, records and receipts included, to FILE: the client's
    /// proof that the enclave recorded its request, for `govctl audit verify --receipt`.
    #[arg(long, value_name = "FILE", global = true)]
    pub receipt_out: Option<std::path::PathBuf>,
    /// Skip the receipt checks (no trust file needed). The answer is then only as
    /// trustworthy as the proxy that relayed it.
    #[arg(long, global = true)]
    pub dangerous_skip_receipts: bool,
}

fn now_ms() -> anyhow::Result<u64> {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    Ok(u64::try_from(since.as_millis())?)
}

/// Signs `operation` with the identity and returns the envelope's bytes.
pub fn sign(args: &RequestArgs, operation: &Operation) -> anyhow::Result<Vec<u8>> {
    let identity = Identity::load(&args.identity.identity)?;
    let signed = identity
        .signer
        .sign(&identity.principal, operation, now_ms()?)
        .context("signing the request")?;
    Ok(encode_signed_request(&signed))
}

/// Signs, sends, checks and prints; returns the exit code.
pub async fn run(args: &RequestArgs, operation: &Operation) -> anyhow::Result<ExitCode> {
    let bytes = sign(args, operation)?;
    if args.print_signed {
        println!("{}", STANDARD.encode(&bytes));
        return Ok(ExitCode::SUCCESS);
    }
    // The trust file first: a change sent without one could not be checked, and its answer
    // would be lost.
    let mut trust = if args.dangerous_skip_receipts {
        None
    } else {
        Some(Trust::load(&args.trust)?)
    };
    let client = ApiClient::new(&args.endpoint)?;
    let Sent {
        status,
        body,
        unproven,
    } = send(&client, trust.as_mut(), &bytes).await?;
    if let Ok(error) = serde_json::from_value::<ErrorReply>(body.clone()) {
        eprintln!(
            "govctl: {status}: {}: {}",
            error.error.code, error.error.message
        );
        if unproven {
            eprintln!(
                "govctl: this answer carries no enclave signature (the proxy's own, or given \
                 before the enclave serves), so nothing proves it"
            );
        }
        return Ok(ExitCode::FAILURE);
    }
    let reply: Reply = serde_json::from_value(body).with_context(|| {
        format!("the service answered {status} with something that is not a reply")
    })?;
    match trust.as_mut() {
        None => {
            if !reply.records.is_empty() {
                eprintln!("govctl: receipts NOT checked (--dangerous-skip-receipts)");
            }
        }
        Some(trust) => check(&client, trust, &bytes, &reply).await?,
    }
    if let Some(path) = &args.receipt_out {
        std::fs::write(path, serde_json::to_string_pretty(&reply)?)
            .with_context(|| format!("writing the receipt to {}", path.display()))?;
    }
    println!("{}", serde_json::to_string_pretty(&reply.result)?);
    Ok(exit_code(&reply.result))
}

/// Sends a signed request and returns the answer's status and JSON, after checking the
/// enclave's signature on it and that its tree extends the one the trust file remembers
/// (skipped without a trust file: `--dangerous-skip-receipts`). An error answer without a
/// signature (the proxy's own, or the enclave's before it serves) is returned, marked as
/// unproven; any other answer without one is refused.
pub async fn send(
    client: &ApiClient,
    mut trust: Option<&mut Trust>,
    request: &[u8],
) -> anyhow::Result<Sent> {
    if let Some(trust) = trust.as_deref_mut() {
        trust.check_before_sending(client).await?;
    }
    let (status, signature, body) = client.post_signed(request.to_vec()).await?;
    let Some(trust) = trust else {
        return parse_json(status, &body, false);
    };
    let request_hash = match decode_signed_request(request) {
        Ok(envelope) => request_hash(&envelope.body),
        Err(_) => request_hash(request),
    };
    match signature {
        Some(header) => {
            trust
                .check_answer(client, request_hash, status.as_u16(), &body, &header)
                .await
                .map_err(|error| {
                    if error.downcast_ref::<crate::trust::RolledBack>().is_some() {
                        error
                    } else {
                        error.context(format!(
                            "govctl refuses the answer ({status}): it is not the enclave's \
                             answer to this request"
                        ))
                    }
                })?;
            parse_json(status, &body, false)
        }
        None if !status.is_success() => parse_json(status, &body, true),
        None => anyhow::bail!(
            "the answer ({status}) carries no enclave signature: the proxy, or something between, \
             made it; govctl refuses it"
        ),
    }
}

/// An answer to a signed request, its signature checked (unless no trust file was given).
pub struct Sent {
    /// The HTTP status.
    pub status: reqwest::StatusCode,
    /// The JSON body.
    pub body: serde_json::Value,
    /// An error answer without the enclave's signature: nothing proves it.
    pub unproven: bool,
}

fn parse_json(status: reqwest::StatusCode, body: &[u8], unproven: bool) -> anyhow::Result<Sent> {
    let body = serde_json::from_slice(body)
        .with_context(|| format!("the service answered {status} without a JSON body"))?;
    Ok(Sent {
        status,
        body,
        unproven,
    })
}

/// 3 for a refusal or a deny, 1 for an error answer, 0 otherwise.
pub fn exit_code(answer: &Answer) -> ExitCode {
    match answer {
        Answer::Denied { .. } => ExitCode::from(3),
        Answer::Decision { decision, .. } if !decision.allowed => ExitCode::from(3),
        Answer::Flow { decision, .. } if !decision.allowed => ExitCode::from(3),
        Answer::Error { code, message } => {
            eprintln!("govctl: {code}: {message}");
            ExitCode::FAILURE
        }
        _ => ExitCode::SUCCESS,
    }
}

/// Checks the records of a reply against the trust file (see the module documentation).
pub async fn check(
    client: &ApiClient,
    trust: &mut Trust,
    request: &[u8],
    reply: &Reply,
) -> anyhow::Result<()> {
    if let Some(first) = reply.records.first() {
        let record =
            Record::from_bytes(&first.record).context("the reply's record does not decode")?;
        ensure!(
            record
                .request
                .as_deref()
                .is_some_and(|recorded| same_signed_request(recorded, request)),
            "the reply's record {} does not carry this request: the answer is not for it",
            record.seq
        );
    }
    let mut records = Vec::with_capacity(reply.records.len());
    for proof in &reply.records {
        let record =
            Record::from_bytes(&proof.record).context("a record of the reply does not decode")?;
        ensure!(
            record.seq == proof.receipt.index,
            "record {} comes with a receipt for index {}",
            record.seq,
            proof.receipt.index
        );
        let mut verified = verify_receipt(&proof.record, &proof.receipt, &trust.verifiers());
        if matches!(verified, Err(ReceiptError::Checkpoint(_))) {
            // Perhaps a log key this trust file has not seen: the enclave restarted.
            if let Some(index) = reply.log_key_index {
                trust.learn_key(client, index).await?;
                verified = verify_receipt(&proof.record, &proof.receipt, &trust.verifiers());
            }
        }
        let verified = verified
            .with_context(|| format!("the receipt of record {} does not verify", record.seq))?;
        eprintln!(
            "govctl: recorded as {} {} in the log of checkpoint size {} (receipt verified)",
            record.kind,
            record.seq,
            verified.checkpoint().size
        );
        records.push(record);
    }
    // The receipts prove the records; the answer around them came through the proxy as
    // it is, so it must say what they say.
    check_answer_against_records(&reply.result, &records).context(
        "the answer is not the one the enclave recorded: the proxy altered it, or it is not \
         the answer to this request",
    )?;
    if records.is_empty() && matches!(reply.result, Answer::Decision { .. } | Answer::Flow { .. }) {
        eprintln!(
            "govctl: this answer carries no record, so nothing proves it came from the \
             enclave (expected only if the genesis turned decision logging off)"
        );
    }
    Ok(())
}
