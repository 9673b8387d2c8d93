//! Harness for the end-to-end tests: builds the real binaries once, starts them on unix
//! sockets and loopback ports in a temporary directory, and stops them when dropped.
//!
//! Tests never use vsock: `unix:` stands in for it, exactly as in `scripts/run-local.sh`.
#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test harness: a failed set-up should fail the test loudly (JSON indexing yields Null, never panics)"
)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub mod hostile;
pub mod kms;
pub mod load;

/// `argv` with each flag of the `replacements` flag-value pairs replaced, or added.
fn replace_flags(mut argv: Vec<String>, replacements: &[&str]) -> Vec<String> {
    for pair in replacements.chunks(2) {
        if let [flag, value] = pair {
            match argv.iter().position(|a| a == flag) {
                Some(at) if at + 1 < argv.len() => {
                    if let Some(slot) = argv.get_mut(at + 1) {
                        *slot = (*value).to_owned();
                    }
                }
                _ => argv.extend([(*flag).to_owned(), (*value).to_owned()]),
            }
        }
    }
    argv
}

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Paths of the project's binaries, built on first use.
#[derive(Debug, Clone)]
pub struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    /// A binary's path.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Builds every binary the tests start (once per test process) and returns where they are.
///
/// `cargo test` builds only the binaries of the package under test, so the harness asks
/// cargo for the others; cargo makes this a no-op when they are up to date.
pub fn binaries() -> &'static Binaries {
    static BINARIES: OnceLock<Binaries> = OnceLock::new();
    BINARIES.get_or_init(|| {
        let root = workspace_root();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(&root)
            .args(["build", "--workspace", "--bins"])
            .status()
            .expect("running cargo build");
        assert!(status.success(), "building the binaries failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        Binaries {
            dir: target.join("debug"),
        }
    })
}

/// A child process that is killed (SIGKILL) when dropped, unless it already exited.
#[derive(Debug)]
pub struct Process {
    child: Child,
    name: String,
}

impl Process {
    /// Starts `program` with `args`; stdout is piped, stderr goes to `log`.
    pub fn spawn(program: &Path, args: &[String], log: &Path) -> Process {
        Self::spawn_with_env(program, args, &[], log)
    }

    /// Like [`Process::spawn`], with extra environment variables.
    pub fn spawn_with_env(
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
        log: &Path,
    ) -> Process {
        let log_file = std::fs::File::create(log).expect("creating log file");
        let child = Command::new(program)
            .args(args)
            // Its own process group, so that dropping it also stops whatever it started.
            .process_group(0)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
        Process {
            child,
            name: program
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads stdout lines until one starts with `prefix`; returns the rest of that line.
    pub fn wait_for_stdout_line(&mut self, prefix: &str) -> String {
        match self.try_wait_for_stdout_line(prefix) {
            Some(rest) => rest,
            None => panic!("{} exited before printing {prefix:?}", self.name),
        }
    }

    /// Like [`Process::wait_for_stdout_line`], but `None` when stdout ends first (the
    /// process exited), for tests that expect a start to fail.
    pub fn try_wait_for_stdout_line(&mut self, prefix: &str) -> Option<String> {
        let stdout = self.child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let line = line.expect("reading stdout");
            if let Some(rest) = line.strip_prefix(prefix) {
                // Keep draining stdout so the child never blocks on a full pipe.
                std::thread::spawn(move || for _ in lines {});
                return Some(rest.trim().to_owned());
            }
        }
        None
    }

    /// Sends a signal.
    pub fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits"));
        let _ = kill(pid, signal);
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL and reap.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit, up to `timeout`; returns its exit code.
    pub fn wait_exit(mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(-pid), Signal::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `path` exists (a unix socket being bound), up to `timeout`.
pub fn wait_for_path(path: &Path, timeout: Duration) {
    use std::os::unix::fs::FileTypeExt as _;
    let deadline = Instant::now() + timeout;
    // A unix socket exists from its bind(), before its listen(): a connection in between is
    // refused. Wait until one is accepted.
    let ready = |path: &Path| match std::fs::metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            std::os::unix::net::UnixStream::connect(path).is_ok()
        }
        Ok(_) => true,
        Err(_) => false,
    };
    while !ready(path) {
        assert!(
            Instant::now() < deadline,
            "{} did not appear (or accept connections) within {timeout:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `args` for parent-proxy plus a log store of its own in `dir`: a unix socket for the
/// enclave's store connections and a SQLite file (never vsock, never the working directory).
pub fn with_store_args(dir: &Path, args: &[String]) -> Vec<String> {
    let mut argv = args.to_vec();
    argv.extend([
        "--store-listen".to_owned(),
        format!("unix:{}", dir.join("store.sock").display()),
        "--store-path".to_owned(),
        dir.join("log.sqlite").display().to_string(),
    ]);
    argv
}

/// One enclave-app and one parent-proxy, on a unix socket and a loopback port.
pub struct LocalStack {
    /// Scratch directory holding sockets and logs.
    pub dir: tempfile::TempDir,
    /// The enclave process, if running.
    pub enclave: Option<Process>,
    /// The proxy process (absent while killed).
    pub proxy: Option<Process>,
    /// The proxy's base URL.
    pub url: String,
    enclave_args: Vec<String>,
    enclave_starts: u32,
    proxy_args: Vec<String>,
    proxy_starts: u32,
}

impl LocalStack {
    /// The enclave's socket path.
    pub fn enclave_socket(&self) -> PathBuf {
        self.dir.path().join("enclave.sock")
    }

    /// The mock NSM's CA directory (kept across enclave restarts, as in run-local.sh).
    pub fn mock_ca_dir(&self) -> PathBuf {
        self.dir.path().join("mock-ca")
    }

    /// The mock root certificate that verifiers of this stack's documents must be given.
    pub fn mock_root(&self) -> PathBuf {
        self.mock_ca_dir().join("mock-root.pem")
    }

    /// Starts both, with extra arguments for each.
    pub fn start(enclave_args: &[&str], proxy_args: &[&str]) -> LocalStack {
        Self::start_in(
            tempfile::tempdir().expect("temp dir"),
            enclave_args,
            proxy_args,
        )
    }

    /// Starts both in `dir`, which the caller may have prepared (a mock CA in `mock-ca/`,
    /// a local KMS), with extra arguments for each.
    pub fn start_in(
        dir: tempfile::TempDir,
        enclave_args: &[&str],
        proxy_args: &[&str],
    ) -> LocalStack {
        let bins = binaries();
        let socket = dir.path().join("enclave.sock");
        let mut proxy_argv = vec![
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--insecure-http".to_owned(),
        ];
        // A test may put something between the proxy and the enclave (tests/src/hostile.rs).
        if !proxy_args.contains(&"--enclave") {
            proxy_argv.extend(["--enclave".to_owned(), format!("unix:{}", socket.display())]);
        }
        proxy_argv.extend(proxy_args.iter().map(|s| (*s).to_owned()));
        let proxy_argv = with_store_args(dir.path(), &proxy_argv);
        let mut proxy = Process::spawn(
            &bins.path("parent-proxy"),
            &proxy_argv,
            &dir.path().join("proxy.log"),
        );
        let url = proxy.wait_for_stdout_line("listening on ");
        let mut stack = LocalStack {
            dir,
            enclave: None,
            proxy: Some(proxy),
            url,
            enclave_args: enclave_args.iter().map(|s| (*s).to_owned()).collect(),
            enclave_starts: 0,
            proxy_args: proxy_argv,
            proxy_starts: 1,
        };
        stack.start_enclave();
        stack
    }

    /// SIGKILLs the proxy (its store stays on disk, as after a crash).
    pub fn kill_proxy(&mut self) {
        if let Some(proxy) = self.proxy.take() {
            proxy.kill();
        }
    }

    /// Restarts the proxy on the same address and store.
    pub fn restart_proxy(&mut self) {
        self.restart_proxy_with(&[]);
    }

    /// Restarts the proxy on the same address and store, with `replacements` (flag-value
    /// pairs) replacing its flags.
    pub fn restart_proxy_with(&mut self, replacements: &[&str]) {
        assert!(self.proxy.is_none(), "proxy already running");
        let address = self
            .url
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_owned();
        let argv = replace_flags(self.proxy_args.clone(), replacements);
        let argv = replace_flags(argv, &["--listen", &address]);
        self.proxy_starts += 1;
        let log = self
            .dir
            .path()
            .join(format!("proxy-{}.log", self.proxy_starts));
        let mut proxy = Process::spawn(&binaries().path("parent-proxy"), &argv, &log);
        proxy.wait_for_stdout_line("listening on ");
        self.proxy = Some(proxy);
    }

    /// (Re)starts the enclave and waits for its socket.
    pub fn start_enclave(&mut self) {
        self.start_enclave_with(&[]);
    }

    /// (Re)starts the enclave with `extra` flag-value pairs, which replace the same flags
    /// of the usual arguments, and waits for its socket.
    pub fn start_enclave_with(&mut self, extra: &[&str]) {
        assert!(self.enclave.is_none(), "enclave already running");
        let socket = self.enclave_socket();
        let mut argv = vec![
            "--listen".to_owned(),
            format!("unix:{}", socket.display()),
            "--nsm".to_owned(),
            "mock".to_owned(),
            "--mock-ca-dir".to_owned(),
            self.mock_ca_dir().display().to_string(),
        ];
        // A test may put something between the enclave and the store (tests/src/hostile.rs).
        if !self.enclave_args.iter().any(|a| a == "--store") {
            argv.extend([
                "--store".to_owned(),
                format!("unix:{}", self.dir.path().join("store.sock").display()),
            ]);
        }
        // Tests that exercise KMS pass their own --log-key kms and --kms-* flags.
        if !self.enclave_args.iter().any(|a| a == "--log-key") {
            argv.extend(["--log-key".to_owned(), "ephemeral".to_owned()]);
        }
        argv.extend(self.enclave_args.iter().cloned());
        let argv = replace_flags(argv, extra);
        self.enclave_starts += 1;
        let log = self
            .dir
            .path()
            .join(format!("enclave-{}.log", self.enclave_starts));
        self.enclave = Some(Process::spawn(&binaries().path("enclave-app"), &argv, &log));
        wait_for_path(&socket, Duration::from_secs(20));
    }

    /// SIGKILLs the enclave (its socket file stays behind, as after a crash).
    pub fn kill_enclave(&mut self) {
        if let Some(enclave) = self.enclave.take() {
            enclave.kill();
        }
    }

    /// The logs of every process, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for path in paths
                .into_iter()
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
            {
                out.push_str(&format!("==> {} <==\n", path.display()));
                out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
        out
    }
}

/// GETs `url` and returns the status and JSON body.
pub async fn get_json(client: &reqwest::Client, url: &str) -> (u16, serde_json::Value) {
    let response = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

/// Polls `url` until it answers `status`, up to `timeout`.
pub async fn wait_for_status(client: &reqwest::Client, url: &str, status: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let (got, body) = get_json(client, url).await;
        if got == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} still answers {got} {body} after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// PCR0, 1 and 2 of the mock enclave of a [`Deployment`]: fixed, so that restarts and
/// rebuilds keep the same image identity.
pub fn measurements_json(pcr0_byte: &str) -> serde_json::Value {
    serde_json::json!({
        "HashAlgorithm": "Sha384 { ... }",
        "PCR0": pcr0_byte.repeat(48),
        "PCR1": "bb".repeat(48),
        "PCR2": "cc".repeat(48),
    })
}

/// What a govctl run printed.
#[derive(Debug)]
pub struct Gov {
    /// Its exit code.
    pub code: Option<i32>,
    /// Its stdout as JSON (`Null` when it is not JSON).
    pub json: serde_json::Value,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

impl Gov {
    /// Panics unless it exited with `code`.
    pub fn expect(self, code: i32) -> Gov {
        assert_eq!(
            self.code,
            Some(code),
            "govctl exited {:?}, expected {code}\nstdout: {}\nstderr: {}",
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// The `code` of a refusal (`Denied` or `Error` answers) or of an error reply on stderr.
    pub fn error_code(&self) -> String {
        if let Some(code) = self.json.get("code").and_then(|c| c.as_str()) {
            return code.to_owned();
        }
        // "govctl: 401 Unauthorized: unknown_key: ..."
        self.stderr
            .lines()
            .find_map(|line| {
                let rest = line.strip_prefix("govctl: ")?;
                let mut parts = rest.splitn(3, ": ");
                parts.next()?;
                parts.next().map(str::to_owned)
            })
            .unwrap_or_default()
    }
}

/// A local stack with a genesis: identities for named users (made with `govctl keygen`),
/// a genesis submitted with `govctl genesis submit`, and a trust file pinning the mock
/// root and the fixed PCRs, so that every govctl call checks its receipts.
pub struct Deployment {
    /// The stack.
    pub stack: LocalStack,
    /// The trust file.
    pub trust: PathBuf,
    /// The genesis hash.
    pub genesis_hash: String,
    /// Holds the measurements file the enclave's arguments name, across restarts.
    _scratch: tempfile::TempDir,
}

impl Deployment {
    /// Starts a stack and submits a genesis whose policy is `policy` (a policy document),
    /// with a User principal and key for each of `users` that the policy does not list.
    pub fn start(users: &[&str], policy: serde_json::Value) -> Deployment {
        Self::start_with(users, policy, serde_json::json!({}), &[])
    }

    /// Like [`Deployment::start`], with genesis `settings` and extra enclave arguments.
    pub fn start_with(
        users: &[&str],
        policy: serde_json::Value,
        settings: serde_json::Value,
        enclave_args: &[&str],
    ) -> Deployment {
        Self::start_with_proxy(users, policy, settings, enclave_args, &[])
    }

    /// Like [`Deployment::start_with`], with extra proxy arguments too.
    pub fn start_with_proxy(
        users: &[&str],
        policy: serde_json::Value,
        settings: serde_json::Value,
        enclave_args: &[&str],
        proxy_args: &[&str],
    ) -> Deployment {
        let scratch = tempfile::tempdir().expect("temp dir");
        let measurements = scratch.path().join("pcrs.json");
        std::fs::write(&measurements, measurements_json("aa").to_string()).expect("write pcrs");
        let measurements_arg = measurements.display().to_string();
        let mut args = vec!["--mock-measurements", measurements_arg.as_str()];
        args.extend_from_slice(enclave_args);
        let stack = LocalStack::start(&args, proxy_args);
        // Keep the measurements beside the stack's other files.
        std::fs::copy(&measurements, stack.dir.path().join("pcrs.json")).expect("copy pcrs");
        Self::on(stack, scratch, users, policy, settings)
    }

    /// Submits a genesis to a stack already started (whose measurements are in its
    /// directory's `pcrs.json`), as [`Deployment::start_with`] does.
    pub fn on(
        stack: LocalStack,
        scratch: tempfile::TempDir,
        users: &[&str],
        mut policy: serde_json::Value,
        settings: serde_json::Value,
    ) -> Deployment {
        let kept = stack.dir.path().join("pcrs.json");

        let principals = policy
            .get_mut("principals")
            .and_then(|p| p.as_array_mut().map(std::mem::take))
            .unwrap_or_default();
        let mut principals: Vec<serde_json::Value> = principals;
        for user in users {
            let identity = stack.dir.path().join(format!("{user}.identity.json"));
            let public = stack.dir.path().join(format!("{user}.public.json"));
            let output = Command::new(binaries().path("govctl"))
                .args(["keygen", "--principal", user, "--key-id", "k1", "--out"])
                .arg(&identity)
                .arg("--public-out")
                .arg(&public)
                .output()
                .expect("running govctl keygen");
            assert!(output.status.success(), "keygen: {output:?}");
            let public: serde_json::Value = serde_json::from_slice(
                &std::fs::read(&public).expect("reading the public identity"),
            )
            .expect("public identity JSON");
            let key = serde_json::json!({"keyId": public["keyId"], "algorithm": public["algorithm"],
                                         "publicKey": public["publicKey"]});
            match principals.iter_mut().find(|p| p["id"] == *user) {
                Some(p) => p["keys"] = serde_json::json!([key]),
                None => {
                    principals.push(serde_json::json!({"id": user, "type": "User", "keys": [key]}))
                }
            }
        }
        policy["principals"] = serde_json::Value::Array(principals);
        let genesis = serde_json::json!({
            "version": 1, "name": "e2e", "createdAt": "2026-01-01T00:00:00Z",
            "settings": settings, "policy": policy,
        });
        let genesis_path = stack.dir.path().join("genesis.json");
        std::fs::write(&genesis_path, genesis.to_string()).expect("write genesis");
        let trust = stack.dir.path().join("trust.json");
        let root = stack.mock_root();
        wait_for_path(&root, Duration::from_secs(20));
        let output = Command::new(binaries().path("govctl"))
            .arg("genesis")
            .arg("submit")
            .arg(&genesis_path)
            .args(["--endpoint", &stack.url])
            .arg("--trust-out")
            .arg(&trust)
            .arg("--root")
            .arg(&root)
            .arg("--pcrs")
            .arg(&kept)
            .output()
            .expect("running govctl genesis submit");
        assert!(
            output.status.success(),
            "genesis submit failed: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            stack.logs()
        );
        let answer: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("genesis answer JSON");
        Deployment {
            genesis_hash: answer["genesisHash"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            stack,
            trust,
            _scratch: scratch,
        }
    }

    /// The identity file of `user`.
    pub fn identity(&self, user: &str) -> PathBuf {
        self.stack.dir.path().join(format!("{user}.identity.json"))
    }

    /// The measurements file the enclave runs with.
    pub fn measurements(&self) -> PathBuf {
        self.stack.dir.path().join("pcrs.json")
    }

    /// Runs govctl as `user` (identity, endpoint and trust file set), and parses stdout.
    pub fn govctl(&self, user: &str, args: &[&str]) -> Gov {
        let output = Command::new(binaries().path("govctl"))
            .args(args)
            .env("GOVCTL_ENDPOINT", &self.stack.url)
            .env("GOVCTL_IDENTITY", self.identity(user))
            .env("GOVCTL_TRUST", &self.trust)
            .output()
            .expect("running govctl");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        Gov {
            code: output.status.code(),
            json: serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null),
            stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Waits until the enclave serves again (after a restart), up to `timeout`.
    pub fn wait_serving(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let output = Command::new(binaries().path("govctl"))
                .args(["health", "--endpoint", &self.stack.url])
                .output()
                .expect("running govctl health");
            if output.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the enclave did not serve within {timeout:?}: {}\n{}",
                String::from_utf8_lossy(&output.stderr),
                self.stack.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Deployment {
    /// A new stack whose proxy runs on a copy of `store` (a backup, an imported store), with
    /// this deployment's mock CA, measurements, identities and trust file, as an operator
    /// restoring on another instance would keep them: the enclave recovers the log and
    /// serves it. Returns once it serves.
    pub fn restore_on(&self, store: &Path) -> Deployment {
        let dir = tempfile::tempdir().expect("temp dir");
        let from = self.stack.dir.path();
        let ca = dir.path().join("mock-ca");
        std::fs::create_dir(&ca).expect("mock-ca dir");
        for entry in std::fs::read_dir(self.stack.mock_ca_dir()).expect("the mock CA") {
            let path = entry.expect("a mock CA file").path();
            if path.is_file() {
                std::fs::copy(&path, ca.join(path.file_name().expect("a name")))
                    .expect("copying the mock CA");
            }
        }
        for entry in std::fs::read_dir(from).expect("the stack's directory") {
            let path = entry.expect("a file").path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let keep = name.as_deref().is_some_and(|name| {
                name == "pcrs.json" || name == "trust.json" || name.ends_with(".identity.json")
            });
            if keep && path.is_file() {
                std::fs::copy(&path, dir.path().join(path.file_name().expect("a name")))
                    .expect("copying the deployment's files");
            }
        }
        std::fs::copy(store, dir.path().join("log.sqlite")).expect("copying the store");
        let measurements = dir.path().join("pcrs.json").display().to_string();
        let trust = dir.path().join("trust.json");
        let stack = LocalStack::start_in(dir, &["--mock-measurements", &measurements], &[]);
        let restored = Deployment {
            stack,
            trust,
            genesis_hash: self.genesis_hash.clone(),
            _scratch: tempfile::tempdir().expect("temp dir"),
        };
        restored.wait_serving(Duration::from_secs(60));
        restored
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Deployment {
    /// `user`'s signer, loaded from its identity file (for requests the test crafts itself).
    pub fn signer(&self, user: &str) -> ea_protocol::signed::RequestSigner {
        use base64::Engine as _;
        let file: serde_json::Value = serde_json::from_slice(
            &std::fs::read(self.identity(user)).expect("reading the identity"),
        )
        .expect("identity JSON");
        let alg = match file["algorithm"].as_str() {
            Some("ES256") => ea_protocol::signed::SignatureAlgorithm::ES256,
            _ => ea_protocol::signed::SignatureAlgorithm::Ed25519,
        };
        let der = base64::engine::general_purpose::STANDARD
            .decode(file["privateKey"].as_str().expect("privateKey"))
            .expect("base64 key");
        ea_protocol::signed::RequestSigner::from_pkcs8(alg, &der)
            .expect("the identity's key")
            .with_key_id(file["keyId"].as_str().expect("keyId"))
    }

    /// Signs `operation` as `user`, dated `issued_at`, and returns the envelope's bytes.
    pub fn sign(&self, user: &str, operation: &ea_ledger::Operation, issued_at: u64) -> Vec<u8> {
        ea_protocol::signed::encode_signed_request(
            &self
                .signer(user)
                .sign(user, operation, issued_at)
                .expect("signing"),
        )
    }

    /// POSTs signed bytes to `/v1/requests` and returns the status and JSON body.
    pub async fn post_signed(&self, bytes: Vec<u8>) -> (u16, serde_json::Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/v1/requests", self.stack.url))
            .header("content-type", "application/cbor")
            .body(bytes)
            .send()
            .await
            .expect("POST /v1/requests");
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }
}

/// Makes an `admin` identity in `dir` and submits a minimal genesis (one community, admin
/// Owner at `/`) to the service at `url`, with `govctl genesis submit` (which checks the
/// recorded genesis and its receipts). For tests that need a serving enclave and nothing more.
pub fn submit_minimal_genesis(url: &str, dir: &Path, ca_cert: Option<&Path>) {
    let identity = dir.join("genesis-admin.identity.json");
    let public = dir.join("genesis-admin.public.json");
    if !identity.exists() {
        let output = Command::new(binaries().path("govctl"))
            .args(["keygen", "--principal", "admin", "--out"])
            .arg(&identity)
            .arg("--public-out")
            .arg(&public)
            .output()
            .expect("running govctl keygen");
        assert!(output.status.success(), "keygen: {output:?}");
    }
    let genesis = dir.join("minimal-genesis.json");
    let output = Command::new(binaries().path("govctl"))
        .args([
            "genesis",
            "init",
            "--name",
            "test",
            "--community",
            "/communities/c1",
        ])
        .args(["--address-space", "10.0.0.0/8", "--admin"])
        .arg(&public)
        .arg("--out")
        .arg(&genesis)
        .output()
        .expect("running govctl genesis init");
    assert!(output.status.success(), "genesis init: {output:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut command = Command::new(binaries().path("govctl"));
        command
            .args(["genesis", "submit"])
            .arg(&genesis)
            .args(["--endpoint", url]);
        if let Some(ca) = ca_cert {
            command.arg("--ca-cert").arg(ca);
        }
        let output = command.output().expect("running govctl genesis submit");
        if output.status.success() {
            return;
        }
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        // The enclave may still be starting, or the proxy not yet connected to it.
        let retry = stderr.contains("enclave_starting") || stderr.contains("enclave_unavailable");
        assert!(
            retry && Instant::now() < deadline,
            "genesis submit failed: {stderr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl LocalStack {
    /// A stack whose enclave serves: started, then given a minimal genesis.
    pub fn serving(enclave_args: &[&str], proxy_args: &[&str]) -> LocalStack {
        let stack = LocalStack::start(enclave_args, proxy_args);
        submit_minimal_genesis(&stack.url, stack.dir.path(), None);
        stack
    }
}
