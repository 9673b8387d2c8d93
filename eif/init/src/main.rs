//! `enclave-init`: PID 1 of the enclave image. See the library's documentation.
//!
//! Arguments are ignored: the kernel passes init any command-line words it does not
//! recognise, and under QEMU whoever starts the VM writes the command line.

use std::panic::{catch_unwind, AssertUnwindSafe};

use enclave_init::boot;
use enclave_init::linux::{self, LinuxSystem};

fn main() {
    // Only ever PID 1: anywhere else the mounts would land on the host's /dev, /proc, ...
    // and the reboot would reboot it.
    if std::process::id() != 1 {
        linux::log_line(
            "refusing to run: this is the enclave image's init and must be PID 1 \
             (it mounts /dev, /proc, /sys, /tmp, /run and reboots the machine)",
        );
        std::process::exit(2);
    }

    let mut sys = LinuxSystem::new();
    // Nothing in the sequence should panic (the workspace lints forbid the usual causes),
    // but if something does, PID 1 must still end the machine instead of exiting.
    let error = match catch_unwind(AssertUnwindSafe(|| boot::init(&mut sys))) {
        Ok(failed) => failed.error,
        Err(_) => {
            linux::log_line("fatal: panic during boot; rebooting to end the enclave");
            linux::emergency_reboot()
        }
    };
    linux::log_line(&format!(
        "reboot failed ({error}); halting here, the enclave must be terminated from outside"
    ));
    linux::park();
}
