//! The boot sequence, over a [`System`] that does the system calls.
//!
//! [`init`] is all of PID 1: [`run`] (mounts, RNG, heartbeat, start the application, reap
//! until it exits), then `sync` and reboot. Every step's failure ends the same way as the
//! application exiting, so the machine never outlives its one job and PID 1 never exits
//! (which would panic the kernel).

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::signal::Signal;
use thiserror::Error;

use crate::cmdline::{self, CmdlineError};
use crate::config::{self, ConfigError, Launch};
use crate::heartbeat::{self, HeartbeatError};

/// One filesystem to mount at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountSpec {
    /// The `source` argument of mount(2) (for these pseudo filesystems, only a label).
    pub source: &'static str,
    /// Where to mount.
    pub target: &'static str,
    /// The filesystem type.
    pub fstype: &'static str,
    /// Mount flags.
    pub flags: MsFlags,
    /// Filesystem options, if any.
    pub data: Option<&'static str>,
    /// Whether `EBUSY` means "already mounted" and is fine.
    pub busy_is_mounted: bool,
}

/// The filesystems PID 1 mounts, in order.
///
/// `/dev` comes first so that the console can be reopened before anything else can fail,
/// and a failure to mount the others is seen. Nothing in the image runs binaries from
/// `/tmp` or `/run` (the application is a static binary in `/usr/bin`), hence `noexec`
/// there as well as on the pseudo filesystems.
pub const MOUNTS: [MountSpec; 5] = [
    MountSpec {
        source: "devtmpfs",
        target: "/dev",
        fstype: "devtmpfs",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
        data: Some("mode=0755"),
        // With CONFIG_DEVTMPFS_MOUNT a kernel may already have put it there.
        busy_is_mounted: true,
    },
    MountSpec {
        source: "proc",
        target: "/proc",
        fstype: "proc",
        flags: MsFlags::MS_NOSUID
            .union(MsFlags::MS_NODEV)
            .union(MsFlags::MS_NOEXEC),
        data: None,
        busy_is_mounted: false,
    },
    MountSpec {
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        flags: MsFlags::MS_NOSUID
            .union(MsFlags::MS_NODEV)
            .union(MsFlags::MS_NOEXEC),
        data: None,
        busy_is_mounted: false,
    },
    MountSpec {
        source: "tmpfs",
        target: "/tmp",
        fstype: "tmpfs",
        flags: MsFlags::MS_NOSUID
            .union(MsFlags::MS_NODEV)
            .union(MsFlags::MS_NOEXEC),
        data: Some("mode=1777"),
        busy_is_mounted: false,
    },
    MountSpec {
        source: "tmpfs",
        target: "/run",
        fstype: "tmpfs",
        flags: MsFlags::MS_NOSUID
            .union(MsFlags::MS_NODEV)
            .union(MsFlags::MS_NOEXEC),
        data: Some("mode=0755"),
        busy_is_mounted: false,
    },
];

/// Where the kernel command line is read from.
pub const CMDLINE_PATH: &str = "/proc/cmdline";

/// How long to wait for the kernel's RNG before giving up. A Nitro enclave seeds it from
/// the NSM's hwrng within moments of boot; a minute means something is broken.
pub const RNG_TIMEOUT: Duration = Duration::from_secs(60);

/// How long one RNG readiness check may wait.
pub const RNG_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildStatus {
    /// It exited with this status.
    Exited(i32),
    /// A signal killed it.
    Signaled {
        /// The signal number.
        signal: i32,
        /// Whether it dumped core.
        core_dumped: bool,
    },
}

impl std::fmt::Display for ChildStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            ChildStatus::Exited(code) => write!(f, "exited with status {code}"),
            ChildStatus::Signaled {
                signal,
                core_dumped,
            } => {
                write!(f, "was killed by signal {signal}")?;
                if let Ok(name) = Signal::try_from(signal) {
                    write!(f, " ({name})")?;
                }
                if core_dumped {
                    write!(f, " (core dumped)")?;
                }
                Ok(())
            }
        }
    }
}

/// A child process reaped by `waitpid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reaped {
    /// Its process id.
    pub pid: u32,
    /// How it ended.
    pub status: ChildStatus,
}

/// The system calls PID 1 makes, so that the sequence can be tested with a fake.
///
/// [`crate::linux::LinuxSystem`] is the real one.
pub trait System {
    /// A connected vsock stream.
    type Stream: io::Read + io::Write;

    /// Writes one line to the log (the console); best effort, never fails.
    fn log(&mut self, line: &str);

    /// Mounts one filesystem.
    fn mount(&mut self, spec: &MountSpec) -> Result<(), Errno>;

    /// Points stdin, stdout and stderr at `/dev/console`.
    fn reopen_console(&mut self) -> io::Result<()>;

    /// The current time (monotonic).
    fn now(&self) -> Instant;

    /// Waits at most `up_to` for the kernel's RNG to be initialized; returns whether it is.
    fn wait_rng(&mut self, up_to: Duration) -> io::Result<bool>;

    /// Reads at most `max_len` bytes of a file. A missing file is an error of kind
    /// [`io::ErrorKind::NotFound`].
    fn read_file(&mut self, path: &Path, max_len: u64) -> io::Result<Vec<u8>>;

    /// Connects to `(cid, port)` over vsock, giving up after `connect_timeout`; the stream's
    /// reads and writes time out after `io_timeout`.
    fn connect_vsock(
        &mut self,
        cid: u32,
        port: u32,
        connect_timeout: Duration,
        io_timeout: Duration,
    ) -> io::Result<Self::Stream>;

    /// Pauses.
    fn sleep(&mut self, duration: Duration);

    /// Starts the application; returns its process id.
    fn spawn(&mut self, launch: &Launch) -> io::Result<u32>;

    /// Waits for any child to end (`waitpid(-1, 0)`). `Ok(None)` for a status that is not
    /// an end (stopped, continued).
    fn wait_any(&mut self) -> Result<Option<Reaped>, Errno>;

    /// Flushes filesystem buffers.
    fn sync(&mut self);

    /// Reboots, which ends the enclave. Returns only if that failed, with the reason.
    fn reboot(&mut self) -> Errno;
}

/// A step of the boot failed; the machine is ended without starting (or after losing) the
/// application.
#[derive(Debug, Error)]
pub enum BootError {
    /// A filesystem could not be mounted.
    #[error("mounting {fstype} on {target}: {source}")]
    Mount {
        /// Where.
        target: &'static str,
        /// What.
        fstype: &'static str,
        /// Why not.
        source: Errno,
    },
    /// Checking the RNG failed.
    #[error("checking whether the kernel's RNG is ready: {0}")]
    RngCheck(#[source] io::Error),
    /// The RNG was not ready in time.
    #[error("the kernel's RNG was not ready after {} s", waited.as_secs())]
    RngTimeout {
        /// How long init waited.
        waited: Duration,
    },
    /// `/proc/cmdline` could not be read.
    #[error("reading {CMDLINE_PATH}: {0}")]
    ReadCmdline(#[source] io::Error),
    /// The command line names an unusable parent CID.
    #[error(transparent)]
    Cmdline(#[from] CmdlineError),
    /// The heartbeat to the parent failed.
    #[error("heartbeat to the parent (cid {cid}, port {port}): {source}", port = heartbeat::PORT)]
    Heartbeat {
        /// The parent's CID.
        cid: u32,
        /// What went wrong.
        source: HeartbeatError,
    },
    /// The `cmd` or `env` file cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The application could not be started.
    #[error("starting {}: {source}", program.display())]
    Spawn {
        /// The program.
        program: std::path::PathBuf,
        /// Why not.
        source: io::Error,
    },
    /// Waiting for children failed while the application was running.
    #[error("waiting for enclave-app (pid {pid}): {source}")]
    Wait {
        /// The application's pid.
        pid: u32,
        /// Why waiting failed.
        source: Errno,
    },
}

/// Why the machine is being ended.
#[derive(Debug)]
pub enum Ending {
    /// The application ran and ended.
    AppExited(ChildStatus),
    /// A step failed.
    Failed(BootError),
}

/// [`init`] came back: the reboot failed.
#[derive(Debug)]
pub struct RebootFailed {
    /// Why the machine was being ended.
    pub ending: Ending,
    /// Why the reboot failed.
    pub error: Errno,
}

/// All of PID 1: [`run`], then log why the machine ends, `sync`, and reboot. Returns only if
/// the reboot fails; the caller must then stay alive (PID 1 may not exit).
pub fn init<S: System>(sys: &mut S) -> RebootFailed {
    sys.log(concat!("starting, version ", env!("CARGO_PKG_VERSION")));
    let ending = run(sys);
    match &ending {
        Ending::AppExited(_) => sys.log("rebooting to end the enclave"),
        Ending::Failed(err) => sys.log(&format!("fatal: {err}; rebooting to end the enclave")),
    }
    sys.sync();
    let error = sys.reboot();
    RebootFailed { ending, error }
}

/// The boot sequence up to the point where the machine must end: mounts, RNG, heartbeat,
/// start the application, reap until it exits. Never restarts the application.
pub fn run<S: System>(sys: &mut S) -> Ending {
    match boot_and_supervise(sys) {
        Ok(status) => Ending::AppExited(status),
        Err(err) => Ending::Failed(err),
    }
}

fn boot_and_supervise<S: System>(sys: &mut S) -> Result<ChildStatus, BootError> {
    mount_all(sys)?;
    sys.log("mounted /dev, /proc, /sys, /tmp, /run");
    wait_for_rng(sys)?;
    let cid = parent_cid(sys)?;
    send_heartbeat(sys, cid).map_err(|source| BootError::Heartbeat { cid, source })?;
    sys.log(&format!("heartbeat to the parent (cid {cid}) acknowledged"));
    let launch = load_launch(sys, cid)?;
    let pid = sys.spawn(&launch).map_err(|source| BootError::Spawn {
        program: launch.program.clone(),
        source,
    })?;
    sys.log(&format!("started {} (pid {pid})", launch.program.display()));
    reap_until(sys, pid)
}

fn mount_all<S: System>(sys: &mut S) -> Result<(), BootError> {
    for spec in &MOUNTS {
        match sys.mount(spec) {
            Ok(()) => {}
            Err(Errno::EBUSY) if spec.busy_is_mounted => {
                sys.log(&format!("{} already mounted", spec.target));
            }
            Err(source) => {
                return Err(BootError::Mount {
                    target: spec.target,
                    fstype: spec.fstype,
                    source,
                })
            }
        }
        if spec.target == "/dev" {
            // Best effort: without it the log may go nowhere, but the enclave can still do
            // its job, and the heartbeat tells the parent it booted.
            if let Err(err) = sys.reopen_console() {
                sys.log(&format!(
                    "could not reopen stdio on /dev/console: {err}; continuing"
                ));
            }
        }
    }
    Ok(())
}

fn wait_for_rng<S: System>(sys: &mut S) -> Result<(), BootError> {
    let start = sys.now();
    if sys.wait_rng(Duration::ZERO).map_err(BootError::RngCheck)? {
        sys.log("kernel RNG ready");
        return Ok(());
    }
    sys.log("waiting for the kernel RNG to be initialized");
    loop {
        let waited = sys.now().saturating_duration_since(start);
        let Some(left) = RNG_TIMEOUT.checked_sub(waited).filter(|d| !d.is_zero()) else {
            return Err(BootError::RngTimeout { waited });
        };
        if sys
            .wait_rng(left.min(RNG_POLL_INTERVAL))
            .map_err(BootError::RngCheck)?
        {
            let waited = sys.now().saturating_duration_since(start);
            sys.log(&format!("kernel RNG ready after {} ms", waited.as_millis()));
            return Ok(());
        }
    }
}

fn parent_cid<S: System>(sys: &mut S) -> Result<u32, BootError> {
    // COMMAND_LINE_SIZE is 2 KiB on x86-64; 64 KiB leaves room for any architecture.
    let bytes = sys
        .read_file(Path::new(CMDLINE_PATH), 64 * 1024)
        .map_err(BootError::ReadCmdline)?;
    // Only an ASCII parameter is looked for, so replacing stray bytes loses nothing.
    Ok(cmdline::parent_cid(&String::from_utf8_lossy(&bytes))?)
}

fn send_heartbeat<S: System>(sys: &mut S, cid: u32) -> Result<(), HeartbeatError> {
    let mut attempt = 1;
    loop {
        match sys.connect_vsock(
            cid,
            heartbeat::PORT,
            heartbeat::CONNECT_TIMEOUT,
            heartbeat::IO_TIMEOUT,
        ) {
            // Only connecting is retried: a parent that accepted and then answered wrongly
            // is not a listener that was still starting.
            Ok(mut stream) => return heartbeat::exchange(&mut stream),
            Err(last) if attempt >= heartbeat::CONNECT_ATTEMPTS => {
                return Err(HeartbeatError::Connect {
                    attempts: attempt,
                    last,
                })
            }
            Err(err) => {
                sys.log(&format!(
                    "heartbeat: connecting to cid {cid} port {} failed ({err}); retrying",
                    heartbeat::PORT
                ));
                sys.sleep(heartbeat::RETRY_DELAY);
                attempt += 1;
            }
        }
    }
}

fn load_launch<S: System>(sys: &mut S, cid: u32) -> Result<Launch, BootError> {
    let cmd_path = Path::new(config::CMD_PATH);
    let env_path = Path::new(config::ENV_PATH);
    let cmd = read_bounded(sys, cmd_path)?;
    let env = match read_bounded(sys, env_path) {
        Ok(bytes) => bytes,
        // No env file: the application gets only ENCLAVE_PARENT_CID.
        Err(ConfigError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            Vec::new()
        }
        Err(err) => return Err(err.into()),
    };
    let command = config::parse_cmd(cmd_path, &cmd)?;
    let env = config::parse_env(env_path, &env)?;
    Ok(Launch::new(command, env, cid))
}

fn read_bounded<S: System>(sys: &mut S, file: &Path) -> Result<Vec<u8>, ConfigError> {
    let limit = config::MAX_FILE_LEN;
    // One byte more than the limit tells "exactly at the limit" from "over it".
    let max_len = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let bytes = sys
        .read_file(file, max_len)
        .map_err(|source| ConfigError::Read {
            file: file.to_owned(),
            source,
        })?;
    if bytes.len() > limit {
        return Err(ConfigError::TooLarge {
            file: file.to_owned(),
            limit,
        });
    }
    Ok(bytes)
}

/// Reaps every child (orphans re-parented to PID 1 included) until the application ends.
fn reap_until<S: System>(sys: &mut S, app: u32) -> Result<ChildStatus, BootError> {
    loop {
        match sys.wait_any() {
            Ok(Some(Reaped { pid, status })) if pid == app => {
                sys.log(&format!("enclave-app {status}"));
                return Ok(status);
            }
            Ok(Some(Reaped { pid, status })) => {
                sys.log(&format!("reaped orphan pid {pid}: {status}"));
            }
            Ok(None) | Err(Errno::EINTR) => {}
            // ECHILD here would mean the application vanished without being reaped.
            Err(source) => return Err(BootError::Wait { pid: app, source }),
        }
    }
}

#[cfg(test)]
mod tests;
