//! The real [`System`]: the system calls, and nothing else.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::mount::mount;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::reboot::{reboot, RebootMode};
use nix::sys::socket::{
    connect, getsockopt, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, VsockAddr,
};
use nix::sys::time::TimeVal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout};

use crate::boot::{ChildStatus, MountSpec, Reaped, System};
use crate::config::Launch;

/// What every log line starts with, so init's lines stand out among the application's.
pub const LOG_PREFIX: &str = "enclave-init: ";

/// Writes one log line to stderr. Never panics (unlike `eprintln!`): a console that fails
/// must not take PID 1 down.
pub fn log_line(line: &str) {
    let mut stderr = io::stderr().lock();
    let _ignored = writeln!(stderr, "{LOG_PREFIX}{line}");
}

/// The system calls of a real PID 1.
#[derive(Debug, Default)]
pub struct LinuxSystem {
    /// `/dev/random`, opened non-blocking on the first RNG check.
    random: Option<File>,
}

impl LinuxSystem {
    /// A system with nothing opened yet.
    pub fn new() -> Self {
        Self::default()
    }
}

impl System for LinuxSystem {
    type Stream = VsockStream;

    fn log(&mut self, line: &str) {
        log_line(line);
    }

    fn mount(&mut self, spec: &MountSpec) -> Result<(), Errno> {
        mount(
            Some(spec.source),
            spec.target,
            Some(spec.fstype),
            spec.flags,
            spec.data,
        )
    }

    fn reopen_console(&mut self) -> io::Result<()> {
        // O_NOCTTY: the console is where output goes, not a controlling terminal whose
        // hang-up or ^C would signal PID 1.
        let console = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(OFlag::O_NOCTTY.bits())
            .open("/dev/console")?;
        // INVARIANT: fds 0-2 are open (Rust's runtime opens /dev/null on any that the
        // kernel left closed, before main), so `console` is fd 3 or above and dropping it
        // below closes only the spare descriptor.
        if console.as_raw_fd() <= 2 {
            return Err(io::Error::other(
                "/dev/console opened as a standard descriptor; leaving stdio as it is",
            ));
        }
        dup2_stdin(&console)?;
        dup2_stdout(&console)?;
        dup2_stderr(&console)?;
        Ok(())
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    /// Why `/dev/random` and not getrandom(2): the `GRND_NONBLOCK` check needs either
    /// `libc::getrandom` (unsafe, forbidden here) or a crate that hides the flag. Since
    /// Linux 5.6 `/dev/random` behaves as getrandom(2) without flags: a non-blocking read
    /// fails with EAGAIN until the CRNG is initialized, and poll(2) reports POLLIN once it
    /// is. So poll to sleep until ready (or `up_to` passes), then confirm with a one-byte
    /// non-blocking read, which is the same test `GRND_NONBLOCK` makes.
    fn wait_rng(&mut self, up_to: Duration) -> io::Result<bool> {
        let random = match &mut self.random {
            Some(file) => file,
            slot @ None => slot.insert(
                OpenOptions::new()
                    .read(true)
                    .custom_flags(OFlag::O_NONBLOCK.bits())
                    .open("/dev/random")?,
            ),
        };
        let timeout = PollTimeout::try_from(up_to).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(random.as_fd(), PollFlags::POLLIN)];
        let polled_ready = match poll(&mut fds, timeout) {
            Ok(n) => n > 0,
            Err(Errno::EINTR) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let mut byte = [0u8; 1];
        match random.read(&mut byte) {
            Ok(1) => {
                // Ready for good (the CRNG never becomes unready): the descriptor is not
                // needed any more.
                self.random = None;
                Ok(true)
            }
            Ok(_) => Ok(false),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                if polled_ready {
                    // Readable yet not ready: a pre-5.6 kernel's poll, which reports the
                    // entropy estimate. Sleep instead, so the caller's loop does not spin.
                    std::thread::sleep(up_to);
                }
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    fn read_file(&mut self, path: &Path, max_len: u64) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        File::open(path)?.take(max_len).read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    fn connect_vsock(
        &mut self,
        cid: u32,
        port: u32,
        connect_timeout: Duration,
        io_timeout: Duration,
    ) -> io::Result<VsockStream> {
        // Non-blocking connect, so that our timeout applies rather than the vsock
        // transport's own (SO_VM_SOCKETS_CONNECT_TIMEOUT, not exposed by nix).
        let fd = socket(
            AddressFamily::Vsock,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )?;
        match connect(fd.as_raw_fd(), &VsockAddr::new(cid, port)) {
            Ok(()) => {}
            Err(Errno::EINPROGRESS) => {
                let timeout = PollTimeout::try_from(connect_timeout).unwrap_or(PollTimeout::MAX);
                let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
                if poll(&mut fds, timeout)? == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("connect timed out after {} ms", connect_timeout.as_millis()),
                    ));
                }
                let pending = getsockopt(&fd, sockopt::SocketError)?;
                if pending != 0 {
                    return Err(io::Error::from_raw_os_error(pending));
                }
            }
            Err(e) => return Err(e.into()),
        }
        // Back to blocking, bounded by SO_RCVTIMEO/SO_SNDTIMEO.
        let flags = OFlag::from_bits_retain(fcntl(&fd, FcntlArg::F_GETFL)?);
        fcntl(&fd, FcntlArg::F_SETFL(flags.difference(OFlag::O_NONBLOCK)))?;
        let timeout = timeval_of(io_timeout);
        setsockopt(&fd, sockopt::ReceiveTimeout, &timeout)?;
        setsockopt(&fd, sockopt::SendTimeout, &timeout)?;
        Ok(VsockStream(fd))
    }

    fn sleep(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }

    fn spawn(&mut self, launch: &Launch) -> io::Result<u32> {
        // The `Child` is dropped without waiting: its exit is collected by `wait_any`
        // along with every orphan's.
        launch.command().spawn().map(|child| child.id())
    }

    fn wait_any(&mut self) -> Result<Option<Reaped>, Errno> {
        let reaped = match waitpid(None, None)? {
            WaitStatus::Exited(pid, code) => (pid, ChildStatus::Exited(code)),
            WaitStatus::Signaled(pid, signal, core_dumped) => (
                pid,
                ChildStatus::Signaled {
                    signal: signal as i32,
                    core_dumped,
                },
            ),
            _ => return Ok(None),
        };
        let (pid, status) = reaped;
        Ok(u32::try_from(pid.as_raw())
            .ok()
            .map(|pid| Reaped { pid, status }))
    }

    fn sync(&mut self) {
        nix::unistd::sync();
    }

    fn reboot(&mut self) -> Errno {
        match reboot(RebootMode::RB_AUTOBOOT) {
            Err(e) => e,
            Ok(never) => match never {},
        }
    }
}

/// A socket timeout of `duration`, saturating rather than wrapping.
fn timeval_of(duration: Duration) -> TimeVal {
    use nix::libc::{suseconds_t, time_t};
    TimeVal::new(
        time_t::try_from(duration.as_secs()).unwrap_or(time_t::MAX),
        suseconds_t::from(duration.subsec_micros()),
    )
}

/// A connected AF_VSOCK stream socket.
#[derive(Debug)]
pub struct VsockStream(OwnedFd);

impl Read for VsockStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(nix::unistd::read(&self.0, buf)?)
    }
}

impl Write for VsockStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(nix::unistd::write(&self.0, buf)?)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// After a failed reboot: PID 1 may not exit, so it stays, reaping any children so they do
/// not pile up as zombies, and otherwise sleeping.
pub fn park() -> ! {
    loop {
        if waitpid(None, None).is_err() {
            std::thread::sleep(Duration::from_secs(60));
        }
    }
}

/// `sync` and reboot, for when the orderly path is unavailable (after a panic in it).
/// Returns only if the reboot failed.
pub fn emergency_reboot() -> Errno {
    let mut sys = LinuxSystem::new();
    sys.sync();
    sys.reboot()
}
