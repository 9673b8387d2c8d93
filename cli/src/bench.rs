//! `govctl bench`: drives a running service with concurrent signed clients and reports
//! throughput, latency percentiles, errors by code and the peak memory of the service's
//! processes. The figures in BENCHMARKS.md come from it.
//!
//! Set-up (with the admin identity given): a bench enclave with its own approval setting for
//! connections, an endpoint, and for each client a requester (Community Contributor) and an
//! approver (Enclave Approver), each with a key generated in memory. Then each client loops,
//! picking by weight among:
//! - `check`: an authorization check (recorded as a decision unless the genesis turned
//!   decision logging off);
//! - `change`: a durable state change (a new workload);
//! - `approval`: a governed change (a connection), then its approval by the client's
//!   approver: two requests and three records, timed as one operation.
//!
//! It only ever talks to the endpoint it is given, which must be a loopback address unless
//! `--allow-remote` says otherwise: a load test is not something to point at production by
//! accident.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ea_ledger::Operation;
use ea_protocol::signed::{encode_signed_request, RequestSigner, SignatureAlgorithm};
use serde::Serialize;
use serde_json::{json, Value};

use crate::client::{ApiClient, EndpointArgs};
use crate::identity::{Identity, IdentityArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    endpoint: EndpointArgs,
    /// An identity allowed to create principals, assign roles at the community and create
    /// the bench enclave (an Owner at `/`, such as run-local.sh's admin).
    #[command(flatten)]
    identity: IdentityArgs,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// How long to run (e.g. 10s, 1m); the run stops at whichever of --duration and
    /// --requests comes first.
    #[arg(long, default_value = "10s")]
    duration: String,
    /// Stop after this many operations in all.
    #[arg(long)]
    requests: Option<u64>,
    /// The mix, as weights: check=W,change=W,approval=W.
    #[arg(long, default_value = "check=1,change=1,approval=0")]
    mix: String,
    /// The community the bench works in.
    #[arg(long, default_value = "/communities/c1")]
    community: String,
    /// Names of processes whose peak memory (VmHWM) to report, from /proc (repeatable).
    #[arg(long = "watch", default_values_t = ["enclave-app".to_owned(), "parent-proxy".to_owned()])]
    watch: Vec<String>,
    /// Allow an endpoint that is not on a loopback address.
    #[arg(long)]
    allow_remote: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Check,
    Change,
    Approval,
}

fn parse_mix(text: &str) -> anyhow::Result<Vec<(Kind, u32)>> {
    let mut mix = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) = part
            .split_once('=')
            .with_context(|| format!("--mix {part:?}: expected NAME=WEIGHT"))?;
        let kind = match name.trim() {
            "check" => Kind::Check,
            "change" => Kind::Change,
            "approval" => Kind::Approval,
            other => bail!("--mix: unknown kind {other:?} (check, change, approval)"),
        };
        let weight: u32 = weight
            .trim()
            .parse()
            .with_context(|| format!("--mix {part:?}"))?;
        if weight > 0 {
            mix.push((kind, weight));
        }
    }
    ensure!(!mix.is_empty(), "--mix gives every kind weight 0");
    Ok(mix)
}

/// `10s`, `2m`, `500ms`, or a number of seconds.
fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |at| text.split_at(at));
    let n: u64 = number
        .parse()
        .with_context(|| format!("--duration {text:?}"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        other => bail!("--duration {text:?}: unknown unit {other:?} (ms, s, m)"),
    })
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A signing principal of the bench.
struct Signer {
    principal: String,
    signer: RequestSigner,
}

impl Signer {
    fn new(principal: String) -> anyhow::Result<Signer> {
        let (signer, _) = RequestSigner::generate(SignatureAlgorithm::Ed25519)?;
        Ok(Signer {
            principal,
            signer: signer.with_key_id("bench"),
        })
    }

    fn public_entry(&self) -> Value {
        json!({"keyId": "bench", "algorithm": "Ed25519",
               "publicKey": STANDARD.encode(&self.signer.public_key().bytes)})
    }

    fn sign(&self, operation: &Operation) -> anyhow::Result<Vec<u8>> {
        Ok(encode_signed_request(&self.signer.sign(
            &self.principal,
            operation,
            now_ms(),
        )?))
    }
}

fn submit(command: Value) -> anyhow::Result<Operation> {
    use serde::Deserialize as _;
    Ok(Operation::Submit {
        command: Box::new(
            ea_policy::Command::deserialize(&command)
                .with_context(|| format!("bench command {command}"))?,
        ),
        justification: Some("govctl bench".into()),
    })
}

/// Sends a signed request; the status and the JSON body.
async fn send(client: &ApiClient, bytes: Vec<u8>) -> anyhow::Result<(u16, Value)> {
    let (status, body) = client.post_cbor("/v1/requests", bytes).await?;
    Ok((status.as_u16(), body))
}

/// Where the clients send their requests, parsed once.
struct Requests {
    api: Arc<ApiClient>,
    url: reqwest::Url,
}

/// An answer with the expected status, its body not yet parsed: most operations need
/// nothing from it, and parsing JSON the load generator never reads would be load on the
/// same two cores as the service.
struct Answer(Vec<u8>);

impl Answer {
    fn json(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.0).map_err(|_| "answer_not_json".to_owned())
    }
}

/// Sends a set-up request as `signer` and insists on success.
async fn setup(client: &ApiClient, signer: &Signer, command: Value) -> anyhow::Result<Value> {
    let (status, body) = send(client, signer.sign(&submit(command.clone())?)?).await?;
    ensure!(
        (200..300).contains(&status),
        "set-up step {command} failed: {status} {body}"
    );
    Ok(body)
}

/// What one client does.
struct Client {
    requester: Signer,
    approver: Signer,
    enclave: String,
    enclave_cidr: String,
    endpoint: String,
    community: String,
    prefix: String,
}

/// The outcome of one operation: its latency, or the error code that ended it.
type Outcome = Result<Duration, String>;

impl Client {
    async fn run(&self, api: &Requests, kind: Kind, n: u64) -> Outcome {
        let started = Instant::now();
        let result = match kind {
            Kind::Check => self.check(api).await,
            Kind::Change => self.change(api, n).await,
            Kind::Approval => self.approval(api, n).await,
        };
        result.map(|()| started.elapsed())
    }

    async fn expect(
        &self,
        api: &Requests,
        signer: &Signer,
        op: &Operation,
        ok: u16,
    ) -> Result<Answer, String> {
        let bytes = signer.sign(op).map_err(|e| format!("sign: {e}"))?;
        match api.api.post_cbor_raw(&api.url, bytes).await {
            Ok((status, body)) if status.as_u16() == ok => Ok(Answer(body)),
            Ok((_, body)) => {
                let body = Answer(body).json()?;
                Err(body
                    .pointer("/error/code")
                    .or_else(|| body.pointer("/result/code"))
                    .and_then(Value::as_str)
                    .unwrap_or("unexpected_answer")
                    .to_owned())
            }
            Err(_) => Err("transport".into()),
        }
    }

    async fn check(&self, api: &Requests) -> Result<(), String> {
        let op = Operation::Check {
            principal: None,
            operation: "Microsoft.Mission/virtualEnclaves/workloads/write".into(),
            scope: ea_policy::Scope::parse(&format!("{}/workloads/x", self.enclave))
                .map_err(|e| e.to_string())?,
            data_action: false,
        };
        self.expect(api, &self.requester, &op, 200)
            .await
            .map(|_| ())
    }

    async fn change(&self, api: &Requests, n: u64) -> Result<(), String> {
        let op = submit(json!({"createWorkload": {
            "id": format!("{}/workloads/{}-{n}", self.enclave, self.prefix)}}))
        .map_err(|e| e.to_string())?;
        self.expect(api, &self.requester, &op, 200)
            .await
            .map(|_| ())
    }

    async fn approval(&self, api: &Requests, n: u64) -> Result<(), String> {
        let connection = format!("{}/enclaveConnections/{}-{n}", self.community, self.prefix);
        let create = submit(json!({"createConnection": {
            "id": connection, "sourceResourceId": self.enclave,
            "sourceCidr": self.enclave_cidr, "destinationEndpointId": self.endpoint}}))
        .map_err(|e| e.to_string())?;
        let body = self
            .expect(api, &self.requester, &create, 202)
            .await?
            .json()?;
        let id = body
            .pointer("/result/approval/id")
            .and_then(Value::as_str)
            .ok_or("no_approval_id")?
            .to_owned();
        let approve = submit(json!({"approve": {"id": id}})).map_err(|e| e.to_string())?;
        self.expect(api, &self.approver, &approve, 200)
            .await
            .map(|_| ())
    }
}

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    use ring::rand::SecureRandom as _;
    let mut buffer = vec![0u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut buffer)
        .map_err(|_| anyhow::anyhow!("no randomness"))?;
    Ok(hex::encode(buffer))
}

/// Creates the bench enclave, its endpoint and approval setting, and the clients'
/// principals with their roles.
async fn prepare(api: &ApiClient, admin: &Signer, args: &Args) -> anyhow::Result<Vec<Client>> {
    let run = random_hex(4)?;
    let community = args.community.trim_end_matches('/').to_owned();
    // A free /16 for the bench enclave: try the upper half of 10.0.0.0/8.
    let mut enclave = None;
    for second in (128..=255).rev() {
        let id = format!("{community}/virtualEnclaves/bench-{run}");
        let cidr = format!("10.{second}.0.0/16");
        let op = submit(json!({"createVirtualEnclave": {"id": id, "addressSpace": cidr}}))?;
        let (status, body) = send(api, admin.sign(&op)?).await?;
        match status {
            200 => {
                enclave = Some((id, cidr));
                break;
            }
            202 => bail!(
                "creating the bench enclave needs approval in {community}; give --community \
                 a community without enclaveCreation approvals"
            ),
            _ if body.pointer("/result/code").and_then(Value::as_str)
                == Some("invalid_command") =>
            {
                continue
            }
            _ => bail!("creating the bench enclave failed: {status} {body}"),
        }
    }
    let (enclave, enclave_cidr) =
        enclave.context("no free /16 in 10.128.0.0/9 for the bench enclave")?;
    let endpoint = format!("{community}/communityEndpoints/bench-{run}");
    setup(
        api,
        admin,
        json!({"createEndpoint": {"id": endpoint, "ruleCollection": [{"endpointRuleName": "https",
            "destination": "0.0.0.0/0", "ports": "443", "protocols": ["TCP"]}]}}),
    )
    .await?;
    setup(
        api,
        admin,
        json!({"setApprovalSettings": {"scope": enclave, "settings": {"connectionCreation":
            {"approvalPolicy": "Required", "minimumApproversRequired": 1}}}}),
    )
    .await?;
    let mut clients = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        let requester = Signer::new(format!("bench-{run}-r{i}"))?;
        let approver = Signer::new(format!("bench-{run}-a{i}"))?;
        for (who, role) in [
            (&requester, "Community Contributor"),
            (&approver, "Enclave Approver"),
        ] {
            setup(
                api,
                admin,
                json!({"createPrincipal": {"id": who.principal, "type": "User",
                    "keys": [who.public_entry()]}}),
            )
            .await?;
            setup(
                api,
                admin,
                json!({"assignRole": {"id": format!("ra-{}", who.principal),
                    "principalId": who.principal, "roleDefinitionId": role, "scope": community}}),
            )
            .await?;
        }
        clients.push(Client {
            requester,
            approver,
            enclave: enclave.clone(),
            enclave_cidr: enclave_cidr.clone(),
            endpoint: endpoint.clone(),
            community: community.clone(),
            // Connections live in the community, which outlasts this run: the run in the
            // name keeps a second bench against the same service from colliding.
            prefix: format!("{run}-c{i}"),
        });
    }
    Ok(clients)
}

/// Peak resident memory (VmHWM) of every process whose command is `name`, in KiB.
fn peak_memory(name: &str) -> Vec<(u32, u64)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(command) = std::fs::read_to_string(entry.path().join("comm")) else {
            continue;
        };
        if command.trim() != name {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let peak = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
        if let Some(kib) = peak {
            found.push((pid, kib));
        }
    }
    found
}

#[derive(Debug, Default, Serialize)]
struct KindReport {
    operations: u64,
    errors: u64,
    per_second: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    clients: usize,
    seconds: f64,
    operations: u64,
    per_second: f64,
    by_kind: BTreeMap<Kind, KindReport>,
    errors: BTreeMap<String, u64>,
    peak_memory_kib: BTreeMap<String, Vec<(u32, u64)>>,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let at = rank.clamp(1, sorted.len()) - 1;
    sorted.get(at).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mix = parse_mix(&args.mix)?;
    let duration = parse_duration(&args.duration)?;
    ensure!(args.clients >= 1, "--clients must be at least 1");
    let url = reqwest::Url::parse(&args.endpoint.endpoint).context("--endpoint")?;
    let host = url.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    ensure!(
        loopback || args.allow_remote,
        "--endpoint is not a loopback address; a load test goes there only with --allow-remote"
    );
    let api = Arc::new(ApiClient::new(&args.endpoint)?);
    let identity = Identity::load(&args.identity.identity)?;
    let admin = Signer {
        principal: identity.principal,
        signer: identity.signer,
    };
    eprintln!("govctl bench: setting up {} clients", args.clients);
    let clients = prepare(&api, &admin, &args).await?;

    let total: u32 = mix.iter().map(|(_, w)| w).sum();
    let stop = Arc::new(AtomicBool::new(false));
    let issued = Arc::new(AtomicU64::new(0));
    let results: Arc<Mutex<Vec<(Kind, Outcome)>>> = Arc::default();
    let limit = args.requests.unwrap_or(u64::MAX);
    eprintln!("govctl bench: running for {duration:?}");
    let requests = Arc::new(Requests {
        url: api.url("/v1/requests")?,
        api: api.clone(),
    });
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, client) in clients.into_iter().enumerate() {
        let (requests, stop, issued, results, mix) = (
            requests.clone(),
            stop.clone(),
            issued.clone(),
            results.clone(),
            mix.clone(),
        );
        tasks.spawn(async move {
            let mut local = Vec::new();
            let mut n: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                if issued.fetch_add(1, Ordering::Relaxed) >= limit {
                    break;
                }
                // A deterministic spread over the mix: client i's n-th pick.
                let mut pick =
                    ((n.wrapping_mul(2_654_435_761) + i as u64) % u64::from(total)) as u32;
                let kind = mix
                    .iter()
                    .find(|(_, w)| {
                        if pick < *w {
                            true
                        } else {
                            pick -= w;
                            false
                        }
                    })
                    .map_or(Kind::Check, |(k, _)| *k);
                local.push((kind, client.run(&requests, kind, n).await));
                n += 1;
            }
            if let Ok(mut all) = results.lock() {
                all.extend(local);
            }
        });
    }
    let timer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            stop.store(true, Ordering::Relaxed);
        })
    };
    while tasks.join_next().await.is_some() {}
    timer.abort();
    let seconds = started.elapsed().as_secs_f64();

    let results = std::mem::take(&mut *results.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_kind: BTreeMap<Kind, (Vec<Duration>, u64)> = BTreeMap::new();
    for (kind, outcome) in &results {
        let entry = by_kind.entry(*kind).or_default();
        match outcome {
            Ok(latency) => entry.0.push(*latency),
            Err(code) => {
                entry.1 += 1;
                *errors.entry(code.clone()).or_default() += 1;
            }
        }
    }
    let mut report = Report {
        clients: args.clients,
        seconds,
        operations: 0,
        per_second: 0.0,
        by_kind: BTreeMap::new(),
        errors,
        peak_memory_kib: args
            .watch
            .iter()
            .map(|name| (name.clone(), peak_memory(name)))
            .collect(),
    };
    for (kind, (mut latencies, errors)) in by_kind {
        latencies.sort_unstable();
        let operations = latencies.len() as u64;
        report.operations += operations;
        report.by_kind.insert(
            kind,
            KindReport {
                operations,
                errors,
                per_second: operations as f64 / seconds,
                p50_ms: percentile(&latencies, 50.0),
                p95_ms: percentile(&latencies, 95.0),
                p99_ms: percentile(&latencies, 99.0),
                max_ms: percentile(&latencies, 100.0),
            },
        );
    }
    report.per_second = report.operations as f64 / seconds;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(report: &Report) {
    println!(
        "{} clients, {:.1} s: {} operations, {:.0}/s",
        report.clients, report.seconds, report.operations, report.per_second
    );
    println!(
        "{:<9} {:>10} {:>8} {:>10} {:>9} {:>9} {:>9} {:>9}",
        "kind", "ops", "errors", "ops/s", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    for (kind, k) in &report.by_kind {
        println!(
            "{:<9} {:>10} {:>8} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            format!("{kind:?}").to_lowercase(),
            k.operations,
            k.errors,
            k.per_second,
            k.p50_ms,
            k.p95_ms,
            k.p99_ms,
            k.max_ms
        );
    }
    if !report.errors.is_empty() {
        println!("errors by code: {:?}", report.errors);
    }
    for (name, processes) in &report.peak_memory_kib {
        for (pid, kib) in processes {
            println!(
                "peak memory {name} (pid {pid}): {:.1} MiB",
                *kib as f64 / 1024.0
            );
        }
    }
}
