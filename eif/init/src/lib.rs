//! PID 1 of the Enclave Approvals enclave image: it prepares the machine, tells the Nitro
//! parent that the enclave booted, runs `enclave-app`, and ends the machine when the
//! application ends.
//!
//! An enclave has no init system and no shell; this is the whole of it. In order:
//!
//! 1. mount `/dev` (devtmpfs; reopen stdio on `/dev/console`), `/proc`, `/sys`, `/tmp`,
//!    `/run`;
//! 2. wait until the kernel's RNG is initialized, so that the application's first random
//!    bytes (key generation, TLS) are never drawn from an unseeded pool;
//! 3. send the Nitro heartbeat (vsock, parent CID from `ea.parent_cid=` on the kernel command
//!    line, default 3, port 9000), without which `nitro-cli` reports the launch failed;
//! 4. start the program named in `/etc/enclave/cmd` with exactly the environment in
//!    `/etc/enclave/env` plus `ENCLAVE_PARENT_CID`;
//! 5. reap every child until the application ends, logging how it ended;
//! 6. `sync` and reboot. On Nitro a reboot terminates the enclave; under QEMU, with
//!    `-no-reboot`, it ends QEMU. Power-off is not used: the machine has no ACPI, so it
//!    would halt forever.
//!
//! Any failure in steps 1-4 is logged and ends the machine the same way; PID 1 never exits
//! (that would panic the kernel) and never restarts the application.
//!
//! The sequence is [`boot::init`] over the [`boot::System`] trait, so it is tested with a
//! fake; [`linux::LinuxSystem`] makes the real system calls. The pure parts are reusable:
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::path::Path;
//! use enclave_init::{cmdline, config};
//!
//! let cid = cmdline::parent_cid("console=ttyS0 reboot=t ea.parent_cid=2\n")?;
//! let cmd = config::parse_cmd(Path::new(config::CMD_PATH), b"/usr/bin/enclave-app\n--verbose\n")?;
//! let env = config::parse_env(Path::new(config::ENV_PATH), b"RUST_LOG=info\n")?;
//! let launch = config::Launch::new(cmd, env, cid);
//! assert_eq!(launch.env.last(), Some(&("ENCLAVE_PARENT_CID".to_owned(), "2".to_owned())));
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod boot;
pub mod cmdline;
pub mod config;
pub mod heartbeat;
pub mod linux;
