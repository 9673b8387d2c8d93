//! The Nitro boot heartbeat: the enclave tells its parent that it has booted.
//!
//! `nitro-cli run-enclave` listens on vsock port 9000 of the parent (CID 3) and only reports
//! the enclave as started once the enclave has connected, sent `0xB7`, and read `0xB7`
//! back; without it the launch fails. The QEMU harness plays the same part on CID 2.
//!
//! [`exchange`] is the protocol over any byte stream, so it is tested over Unix socket
//! pairs; connecting (with retries) is the boot sequence's job.

use std::io::{ErrorKind, Read, Write};
use std::time::Duration;

use thiserror::Error;

/// The parent's heartbeat port.
pub const PORT: u32 = 9000;

/// The byte sent and expected back.
pub const BYTE: u8 = 0xB7;

/// How many times to try connecting: the parent's listener may not be up yet.
pub const CONNECT_ATTEMPTS: u32 = 10;

/// The pause between connection attempts.
pub const RETRY_DELAY: Duration = Duration::from_millis(500);

/// How long one connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long sending the byte or waiting for the reply may take once connected.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The heartbeat did not complete.
#[derive(Debug, Error)]
pub enum HeartbeatError {
    /// No connection could be made, even after retrying.
    #[error("could not connect after {attempts} attempts; last error: {last}")]
    Connect {
        /// How many attempts were made.
        attempts: u32,
        /// The last attempt's error.
        last: std::io::Error,
    },
    /// Sending the heartbeat byte failed (including a timeout).
    #[error("sending the heartbeat byte: {0}")]
    Send(#[source] std::io::Error),
    /// The parent did not reply within the stream's read timeout.
    #[error("no reply from the parent within the timeout")]
    ReplyTimeout,
    /// The parent closed the connection without replying.
    #[error("the parent closed the connection without replying")]
    Closed,
    /// The parent replied with another byte: not a Nitro heartbeat listener.
    #[error("the parent replied 0x{got:02x}, expected 0x{BYTE:02x}")]
    WrongReply {
        /// The byte received.
        got: u8,
    },
    /// Reading the reply failed for another reason.
    #[error("reading the reply: {0}")]
    Receive(#[source] std::io::Error),
}

/// Sends [`BYTE`] and requires [`BYTE`] back. Timeouts are the stream's own (its read and
/// write timeouts); a read that times out is reported as [`HeartbeatError::ReplyTimeout`].
pub fn exchange<S: Read + Write>(stream: &mut S) -> Result<(), HeartbeatError> {
    stream.write_all(&[BYTE]).map_err(HeartbeatError::Send)?;
    stream.flush().map_err(HeartbeatError::Send)?;
    let mut reply = [0u8; 1];
    loop {
        match stream.read(&mut reply) {
            Ok(0) => return Err(HeartbeatError::Closed),
            Ok(_) => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // SO_RCVTIMEO expiring surfaces as EAGAIN (WouldBlock) on Linux.
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(HeartbeatError::ReplyTimeout)
            }
            Err(e) => return Err(HeartbeatError::Receive(e)),
        }
    }
    match reply {
        [BYTE] => Ok(()),
        [got] => Err(HeartbeatError::WrongReply { got }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;
    use std::thread;

    /// Runs `parent` on the other end of a socket pair while the enclave side does the
    /// exchange; returns the exchange's result and what the parent received.
    fn with_parent(
        parent: impl FnOnce(&mut UnixStream) -> Vec<u8> + Send + 'static,
    ) -> (Result<(), HeartbeatError>, Vec<u8>) {
        let (mut enclave, mut host) = UnixStream::pair().unwrap();
        enclave
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let parent = thread::spawn(move || parent(&mut host));
        let result = exchange(&mut enclave);
        drop(enclave);
        (result, parent.join().unwrap())
    }

    fn read_one(host: &mut UnixStream) -> Vec<u8> {
        let mut b = [0u8; 1];
        host.read_exact(&mut b).unwrap();
        b.to_vec()
    }

    #[test]
    fn good_reply() {
        let (result, got) = with_parent(|host| {
            let got = read_one(host);
            host.write_all(&[0xB7]).unwrap();
            got
        });
        result.unwrap();
        assert_eq!(got, vec![0xB7]);
    }

    #[test]
    fn wrong_reply() {
        let (result, _) = with_parent(|host| {
            let got = read_one(host);
            host.write_all(&[0x00]).unwrap();
            got
        });
        let err = result.unwrap_err();
        assert!(
            matches!(err, HeartbeatError::WrongReply { got: 0x00 }),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "the parent replied 0x00, expected 0xb7");
    }

    #[test]
    fn parent_closes_without_reply() {
        let (result, got) = with_parent(read_one);
        assert!(matches!(result, Err(HeartbeatError::Closed)), "{result:?}");
        assert_eq!(got, vec![0xB7]);
    }

    #[test]
    fn parent_never_replies() {
        let (result, _) = with_parent(|host| {
            let got = read_one(host);
            // Keep the connection open past the enclave side's 200 ms read timeout.
            thread::sleep(Duration::from_millis(600));
            got
        });
        assert!(
            matches!(result, Err(HeartbeatError::ReplyTimeout)),
            "{result:?}"
        );
    }

    #[test]
    fn send_fails_when_the_parent_is_gone() {
        let (mut enclave, host) = UnixStream::pair().unwrap();
        drop(host);
        let result = exchange(&mut enclave);
        assert!(matches!(result, Err(HeartbeatError::Send(_))), "{result:?}");
    }

    #[test]
    fn only_the_first_reply_byte_counts() {
        // A reply of 0xB7 followed by anything is accepted; the rest is never read.
        let (result, _) = with_parent(|host| {
            let got = read_one(host);
            host.write_all(&[0xB7, 0x01]).unwrap();
            got
        });
        result.unwrap();
    }
}
