//! The boot sequence against a fake [`System`] that records every call.

use super::*;
use std::collections::{BTreeMap, VecDeque};
use std::io::{Cursor, Read, Write};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    Mount(&'static str),
    ReopenConsole,
    WaitRng(Duration),
    ReadFile(String),
    Connect(u32, u32),
    Sleep(Duration),
    Spawn(Launch),
    WaitAny,
    Sync,
    Reboot,
}

/// A stream that replies with fixed bytes and ignores what is written.
struct FakeStream(Cursor<Vec<u8>>);

impl Read for FakeStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for FakeStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Fake {
    calls: Vec<Call>,
    logs: Vec<String>,
    start: Instant,
    /// Virtual time: advanced by `wait_rng` and `sleep`.
    elapsed: Duration,
    mount_errors: BTreeMap<&'static str, Errno>,
    console_error: bool,
    /// The RNG becomes ready on this call of `wait_rng` (0 = the first); `None`: never.
    rng_ready_on_call: Option<usize>,
    rng_calls: usize,
    files: BTreeMap<String, Vec<u8>>,
    /// Connection attempts that fail before one succeeds.
    connect_failures: u32,
    heartbeat_reply: Vec<u8>,
    spawn_pid: io::Result<u32>,
    wait_results: VecDeque<Result<Option<Reaped>, Errno>>,
}

const APP_PID: u32 = 42;

impl Fake {
    /// A system on which everything works and the application exits with status 0.
    fn healthy() -> Self {
        let mut files = BTreeMap::new();
        files.insert(
            "/proc/cmdline".to_owned(),
            b"console=ttyS0 reboot=t ea.parent_cid=2\n".to_vec(),
        );
        files.insert(
            "/etc/enclave/cmd".to_owned(),
            b"/usr/bin/enclave-app\n--vsock-port\n5000\n".to_vec(),
        );
        files.insert("/etc/enclave/env".to_owned(), b"RUST_LOG=info\n".to_vec());
        Fake {
            calls: Vec::new(),
            logs: Vec::new(),
            start: Instant::now(),
            elapsed: Duration::ZERO,
            mount_errors: BTreeMap::new(),
            console_error: false,
            rng_ready_on_call: Some(0),
            rng_calls: 0,
            files,
            connect_failures: 0,
            heartbeat_reply: vec![0xB7],
            spawn_pid: Ok(APP_PID),
            wait_results: VecDeque::from([Ok(Some(Reaped {
                pid: APP_PID,
                status: ChildStatus::Exited(0),
            }))]),
        }
    }

    fn spawned(&self) -> Vec<&Launch> {
        self.calls
            .iter()
            .filter_map(|c| match c {
                Call::Spawn(l) => Some(l),
                _ => None,
            })
            .collect()
    }

    fn logged(&self, needle: &str) -> bool {
        self.logs.iter().any(|l| l.contains(needle))
    }

    /// The calls without the detail of reads, sleeps and RNG polls: the coarse order.
    fn phases(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for call in &self.calls {
            let phase = match call {
                Call::Mount(_) | Call::ReopenConsole => "mount",
                Call::WaitRng(_) => "rng",
                Call::Connect(..) | Call::Sleep(_) => "heartbeat",
                Call::ReadFile(_) => continue,
                Call::Spawn(_) => "spawn",
                Call::WaitAny => "reap",
                Call::Sync => "sync",
                Call::Reboot => "reboot",
            };
            if out.last() != Some(&phase) {
                out.push(phase);
            }
        }
        out
    }

    fn ends_with_reboot(&self) -> bool {
        self.calls.ends_with(&[Call::Sync, Call::Reboot])
    }
}

impl System for Fake {
    type Stream = FakeStream;

    fn log(&mut self, line: &str) {
        self.logs.push(line.to_owned());
    }

    fn mount(&mut self, spec: &MountSpec) -> Result<(), Errno> {
        self.calls.push(Call::Mount(spec.target));
        match self.mount_errors.get(spec.target) {
            Some(e) => Err(*e),
            None => Ok(()),
        }
    }

    fn reopen_console(&mut self) -> io::Result<()> {
        self.calls.push(Call::ReopenConsole);
        if self.console_error {
            Err(io::Error::from(io::ErrorKind::NotFound))
        } else {
            Ok(())
        }
    }

    fn now(&self) -> Instant {
        self.start + self.elapsed
    }

    fn wait_rng(&mut self, up_to: Duration) -> io::Result<bool> {
        self.calls.push(Call::WaitRng(up_to));
        let ready = self.rng_ready_on_call.is_some_and(|n| self.rng_calls >= n);
        self.rng_calls += 1;
        if !ready {
            self.elapsed += up_to;
        }
        Ok(ready)
    }

    fn read_file(&mut self, path: &Path, max_len: u64) -> io::Result<Vec<u8>> {
        let path = path.to_str().unwrap().to_owned();
        self.calls.push(Call::ReadFile(path.clone()));
        match self.files.get(&path) {
            Some(bytes) => Ok(bytes
                .iter()
                .copied()
                .take(usize::try_from(max_len).unwrap())
                .collect()),
            None => Err(io::Error::from(io::ErrorKind::NotFound)),
        }
    }

    fn connect_vsock(
        &mut self,
        cid: u32,
        port: u32,
        _connect_timeout: Duration,
        _io_timeout: Duration,
    ) -> io::Result<FakeStream> {
        self.calls.push(Call::Connect(cid, port));
        if self.connect_failures > 0 {
            self.connect_failures -= 1;
            return Err(io::Error::from(io::ErrorKind::ConnectionReset));
        }
        Ok(FakeStream(Cursor::new(self.heartbeat_reply.clone())))
    }

    fn sleep(&mut self, duration: Duration) {
        self.calls.push(Call::Sleep(duration));
        self.elapsed += duration;
    }

    fn spawn(&mut self, launch: &Launch) -> io::Result<u32> {
        self.calls.push(Call::Spawn(launch.clone()));
        match &self.spawn_pid {
            Ok(pid) => Ok(*pid),
            Err(e) => Err(io::Error::from(e.kind())),
        }
    }

    fn wait_any(&mut self) -> Result<Option<Reaped>, Errno> {
        self.calls.push(Call::WaitAny);
        // Running out of scripted results: as if the application had vanished.
        self.wait_results.pop_front().unwrap_or(Err(Errno::ECHILD))
    }

    fn sync(&mut self) {
        self.calls.push(Call::Sync);
    }

    fn reboot(&mut self) -> Errno {
        self.calls.push(Call::Reboot);
        Errno::EPERM
    }
}

#[test]
fn healthy_boot_runs_every_step_in_order() {
    let mut sys = Fake::healthy();
    let done = init(&mut sys);
    assert!(
        matches!(done.ending, Ending::AppExited(ChildStatus::Exited(0))),
        "{:?}",
        done.ending
    );
    assert_eq!(done.error, Errno::EPERM);
    assert_eq!(
        sys.phases(),
        [
            "mount",
            "rng",
            "heartbeat",
            "spawn",
            "reap",
            "sync",
            "reboot"
        ]
    );
    assert_eq!(
        sys.calls[..6],
        [
            Call::Mount("/dev"),
            Call::ReopenConsole,
            Call::Mount("/proc"),
            Call::Mount("/sys"),
            Call::Mount("/tmp"),
            Call::Mount("/run"),
        ]
    );
    assert!(sys.calls.contains(&Call::Connect(2, 9000)));
    assert!(
        sys.logged("enclave-app exited with status 0"),
        "{:?}",
        sys.logs
    );
}

#[test]
fn the_application_gets_its_command_and_only_the_image_env() {
    let mut sys = Fake::healthy();
    init(&mut sys);
    let spawned = sys.spawned();
    assert_eq!(spawned.len(), 1);
    assert_eq!(
        *spawned[0],
        Launch {
            program: "/usr/bin/enclave-app".into(),
            args: vec!["--vsock-port".into(), "5000".into()],
            env: vec![
                ("RUST_LOG".into(), "info".into()),
                ("ENCLAVE_PARENT_CID".into(), "2".into()),
            ],
        }
    );
}

#[test]
fn default_parent_cid_is_3() {
    let mut sys = Fake::healthy();
    sys.files
        .insert("/proc/cmdline".into(), b"console=ttyS0\n".to_vec());
    init(&mut sys);
    assert!(sys.calls.contains(&Call::Connect(3, 9000)));
    assert_eq!(sys.spawned()[0].env.last().unwrap().1, "3");
}

#[test]
fn missing_env_file_is_fine() {
    let mut sys = Fake::healthy();
    sys.files.remove("/etc/enclave/env");
    let done = init(&mut sys);
    assert!(matches!(done.ending, Ending::AppExited(_)));
    assert_eq!(
        sys.spawned()[0].env,
        vec![("ENCLAVE_PARENT_CID".to_owned(), "2".to_owned())]
    );
}

#[test]
fn heartbeat_failure_reboots_without_spawning() {
    let mut sys = Fake::healthy();
    sys.heartbeat_reply = vec![0x00];
    let done = init(&mut sys);
    assert!(
        matches!(
            done.ending,
            Ending::Failed(BootError::Heartbeat {
                cid: 2,
                source: HeartbeatError::WrongReply { got: 0 }
            })
        ),
        "{:?}",
        done.ending
    );
    assert!(sys.spawned().is_empty());
    assert!(sys.ends_with_reboot());
    assert!(
        sys.logged("fatal: heartbeat to the parent (cid 2, port 9000)"),
        "{:?}",
        sys.logs
    );
}

#[test]
fn heartbeat_connect_is_retried() {
    let mut sys = Fake::healthy();
    sys.connect_failures = 3;
    let done = init(&mut sys);
    assert!(matches!(done.ending, Ending::AppExited(_)));
    let connects = sys
        .calls
        .iter()
        .filter(|c| matches!(c, Call::Connect(..)))
        .count();
    let sleeps = sys
        .calls
        .iter()
        .filter(|c| **c == Call::Sleep(heartbeat::RETRY_DELAY))
        .count();
    assert_eq!((connects, sleeps), (4, 3));
}

#[test]
fn heartbeat_connect_gives_up() {
    let mut sys = Fake::healthy();
    sys.connect_failures = u32::MAX;
    let done = init(&mut sys);
    match done.ending {
        Ending::Failed(BootError::Heartbeat {
            source: HeartbeatError::Connect { attempts, .. },
            ..
        }) => assert_eq!(attempts, heartbeat::CONNECT_ATTEMPTS),
        other => panic!("{other:?}"),
    }
    let connects = sys
        .calls
        .iter()
        .filter(|c| matches!(c, Call::Connect(..)))
        .count();
    assert_eq!(connects, heartbeat::CONNECT_ATTEMPTS as usize);
    assert!(sys.spawned().is_empty());
    assert!(sys.ends_with_reboot());
}

#[test]
fn bad_cmd_file_reboots_with_the_reason() {
    let mut sys = Fake::healthy();
    sys.files
        .insert("/etc/enclave/cmd".into(), b"enclave-app\n".to_vec());
    let done = init(&mut sys);
    assert!(matches!(done.ending, Ending::Failed(BootError::Config(_))));
    assert!(sys.spawned().is_empty());
    assert!(sys.ends_with_reboot());
    assert!(
        sys.logged(
            "fatal: /etc/enclave/cmd, line 1: the program \"enclave-app\" is not an absolute path"
        ),
        "{:?}",
        sys.logs
    );
}

#[test]
fn missing_cmd_file_reboots() {
    let mut sys = Fake::healthy();
    sys.files.remove("/etc/enclave/cmd");
    let done = init(&mut sys);
    assert!(matches!(
        done.ending,
        Ending::Failed(BootError::Config(ConfigError::Read { .. }))
    ));
    assert!(sys.spawned().is_empty());
    assert!(sys.ends_with_reboot());
    assert!(sys.logged("fatal: /etc/enclave/cmd:"), "{:?}", sys.logs);
}

#[test]
fn oversized_files_are_refused() {
    let mut sys = Fake::healthy();
    let mut big = b"A=".to_vec();
    big.resize(config::MAX_FILE_LEN + 1, b'x');
    sys.files.insert("/etc/enclave/env".into(), big);
    let done = init(&mut sys);
    assert!(
        matches!(
            done.ending,
            Ending::Failed(BootError::Config(ConfigError::TooLarge { .. }))
        ),
        "{:?}",
        done.ending
    );
    assert!(sys.spawned().is_empty());

    // Exactly at the limit is accepted.
    let mut sys = Fake::healthy();
    let mut full = b"A=".to_vec();
    full.resize(config::MAX_FILE_LEN, b'x');
    sys.files.insert("/etc/enclave/env".into(), full);
    assert!(matches!(init(&mut sys).ending, Ending::AppExited(_)));
}

#[test]
fn bad_parent_cid_reboots_before_the_heartbeat() {
    let mut sys = Fake::healthy();
    sys.files
        .insert("/proc/cmdline".into(), b"ea.parent_cid=two\n".to_vec());
    let done = init(&mut sys);
    assert!(matches!(done.ending, Ending::Failed(BootError::Cmdline(_))));
    assert!(!sys.calls.iter().any(|c| matches!(c, Call::Connect(..))));
    assert!(sys.ends_with_reboot());
}

#[test]
fn mount_failure_stops_everything_after_it() {
    let mut sys = Fake::healthy();
    sys.mount_errors.insert("/sys", Errno::ENODEV);
    let done = init(&mut sys);
    assert!(matches!(
        done.ending,
        Ending::Failed(BootError::Mount {
            target: "/sys",
            source: Errno::ENODEV,
            ..
        })
    ));
    assert_eq!(
        sys.calls,
        [
            Call::Mount("/dev"),
            Call::ReopenConsole,
            Call::Mount("/proc"),
            Call::Mount("/sys"),
            Call::Sync,
            Call::Reboot,
        ]
    );
    assert!(
        sys.logged("fatal: mounting sysfs on /sys: ENODEV"),
        "{:?}",
        sys.logs
    );
}

#[test]
fn devtmpfs_already_mounted_is_fine_but_busy_proc_is_not() {
    let mut sys = Fake::healthy();
    sys.mount_errors.insert("/dev", Errno::EBUSY);
    assert!(matches!(init(&mut sys).ending, Ending::AppExited(_)));
    assert!(sys.logged("/dev already mounted"));

    let mut sys = Fake::healthy();
    sys.mount_errors.insert("/proc", Errno::EBUSY);
    assert!(matches!(
        init(&mut sys).ending,
        Ending::Failed(BootError::Mount {
            target: "/proc",
            ..
        })
    ));
}

#[test]
fn console_failure_is_logged_and_boot_continues() {
    let mut sys = Fake::healthy();
    sys.console_error = true;
    assert!(matches!(init(&mut sys).ending, Ending::AppExited(_)));
    assert!(sys.logged("could not reopen stdio on /dev/console"));
}

#[test]
fn rng_not_ready_at_first_is_waited_for_and_timed() {
    let mut sys = Fake::healthy();
    sys.rng_ready_on_call = Some(5);
    assert!(matches!(init(&mut sys).ending, Ending::AppExited(_)));
    assert_eq!(
        sys.logs
            .iter()
            .filter(|l| l.contains("waiting for the kernel RNG"))
            .count(),
        1
    );
    // The first check does not wait; each later one waits one interval.
    assert!(sys.logged("kernel RNG ready after 40 ms"), "{:?}", sys.logs);
    assert_eq!(sys.calls[6], Call::WaitRng(Duration::ZERO));
    assert_eq!(sys.calls[7], Call::WaitRng(RNG_POLL_INTERVAL));
}

#[test]
fn rng_never_ready_times_out_and_reboots() {
    let mut sys = Fake::healthy();
    sys.rng_ready_on_call = None;
    let done = init(&mut sys);
    match done.ending {
        Ending::Failed(BootError::RngTimeout { waited }) => assert_eq!(waited, RNG_TIMEOUT),
        other => panic!("{other:?}"),
    }
    assert_eq!(sys.phases(), ["mount", "rng", "sync", "reboot"]);
    assert!(sys.logged("fatal: the kernel's RNG was not ready after 60 s"));
}

#[test]
fn spawn_failure_reboots() {
    let mut sys = Fake::healthy();
    sys.spawn_pid = Err(io::Error::from(io::ErrorKind::NotFound));
    let done = init(&mut sys);
    assert!(matches!(
        done.ending,
        Ending::Failed(BootError::Spawn { .. })
    ));
    assert!(!sys.calls.contains(&Call::WaitAny));
    assert!(sys.ends_with_reboot());
    assert!(
        sys.logged("fatal: starting /usr/bin/enclave-app:"),
        "{:?}",
        sys.logs
    );
}

#[test]
fn orphans_are_reaped_until_the_application_exits() {
    let mut sys = Fake::healthy();
    sys.wait_results = VecDeque::from([
        Ok(Some(Reaped {
            pid: 100,
            status: ChildStatus::Exited(1),
        })),
        Err(Errno::EINTR),
        Ok(None),
        Ok(Some(Reaped {
            pid: 101,
            status: ChildStatus::Signaled {
                signal: 15,
                core_dumped: false,
            },
        })),
        Ok(Some(Reaped {
            pid: APP_PID,
            status: ChildStatus::Signaled {
                signal: 9,
                core_dumped: false,
            },
        })),
        // Never reached: init stops reaping when the application is gone.
        Ok(Some(Reaped {
            pid: 102,
            status: ChildStatus::Exited(0),
        })),
    ]);
    let done = init(&mut sys);
    assert!(matches!(
        done.ending,
        Ending::AppExited(ChildStatus::Signaled { signal: 9, .. })
    ));
    assert_eq!(sys.calls.iter().filter(|c| **c == Call::WaitAny).count(), 5);
    assert!(sys.logged("reaped orphan pid 100: exited with status 1"));
    assert!(
        sys.logged("enclave-app was killed by signal 9 (SIGKILL)"),
        "{:?}",
        sys.logs
    );
    assert_eq!(sys.spawned().len(), 1, "the application is never restarted");
    assert!(sys.ends_with_reboot());
}

#[test]
fn losing_the_application_while_waiting_reboots() {
    let mut sys = Fake::healthy();
    sys.wait_results = VecDeque::from([Err(Errno::ECHILD)]);
    let done = init(&mut sys);
    assert!(matches!(
        done.ending,
        Ending::Failed(BootError::Wait {
            pid: APP_PID,
            source: Errno::ECHILD
        })
    ));
    assert!(sys.ends_with_reboot());
}

#[test]
fn status_display() {
    assert_eq!(ChildStatus::Exited(3).to_string(), "exited with status 3");
    assert_eq!(
        ChildStatus::Signaled {
            signal: 11,
            core_dumped: true
        }
        .to_string(),
        "was killed by signal 11 (SIGSEGV) (core dumped)"
    );
    assert_eq!(
        ChildStatus::Signaled {
            signal: 200,
            core_dumped: false
        }
        .to_string(),
        "was killed by signal 200"
    );
}
