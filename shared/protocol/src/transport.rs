//! One stream type and one listener type over vsock, unix sockets and TCP.
//!
//! Every socket system call of the project goes through this module.
//!
//! A `vsock-uds:` address is no transport of its own: it is a unix socket to a hybrid vsock
//! backend, which after a one-line handshake carries a guest's vsock connection, so it
//! connects as a [`Stream::Unix`].

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio_vsock::{VsockAddr, VsockListener, VsockStream};

use crate::address::Address;

/// A connected byte stream over any supported transport.
#[derive(Debug)]
pub enum Stream {
    /// vsock.
    Vsock(VsockConnection),
    /// Unix domain socket.
    Unix(UnixStream),
    /// TCP.
    Tcp(TcpStream),
}

impl Stream {
    /// Connects to `address`.
    ///
    /// For `vsock-uds:` that includes the backend's handshake, bounded by 10 s; an answer other
    /// than `OK <n>` fails with `ConnectionRefused` (the guest does not listen on the port, or
    /// the backend refused), naming the socket, the port and what the backend said.
    pub async fn connect(address: &Address) -> io::Result<Stream> {
        match address {
            Address::Vsock { cid, port } => Ok(Stream::Vsock(VsockConnection::new(
                VsockStream::connect(VsockAddr::new(*cid, *port)).await?,
            ))),
            Address::VsockUds { path, port } => Ok(Stream::Unix(
                connect_hybrid_vsock(path, *port, HYBRID_HANDSHAKE_TIMEOUT).await?,
            )),
            Address::Unix(path) => Ok(Stream::Unix(UnixStream::connect(path).await?)),
            Address::Tcp { host, port } => {
                let stream = TcpStream::connect((host.as_str(), *port)).await?;
                // Frames are small and latency matters more than packet count.
                stream.set_nodelay(true)?;
                Ok(Stream::Tcp(stream))
            }
        }
    }
}

/// Longest the hybrid vsock backend may take to accept `CONNECT` and answer it (the guest
/// has to accept the connection first, and a guest that is still booting is slow).
const HYBRID_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes read for the backend's answer line, its '\n' included. `OK ` and a 32-bit
/// number take 14; anything longer is not the backend we expect.
const HYBRID_MAX_ANSWER: usize = 64;

/// Connects to the guest's vsock `port` through the hybrid vsock backend listening at `path`
/// (Firecracker's convention, also rust-vmm's `vhost-device-vsock --uds-path`): sends
/// `CONNECT <port>\n`, requires `OK <n>\n` within `timeout`, and returns the stream with
/// nothing read past that line: the guest's bytes may follow it in the same segment.
async fn connect_hybrid_vsock(path: &Path, port: u32, timeout: Duration) -> io::Result<UnixStream> {
    let backend = path.display();
    let handshake = async {
        let mut stream = UnixStream::connect(path).await.map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("connecting to the hybrid vsock backend at {backend}: {error}"),
            )
        })?;
        stream
            .write_all(format!("CONNECT {port}\n").as_bytes())
            .await?;
        let mut answer = Vec::with_capacity(16);
        loop {
            if answer.len() >= HYBRID_MAX_ANSWER {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the hybrid vsock backend at {backend} answered CONNECT {port} with more \
                         than {HYBRID_MAX_ANSWER} bytes and no line end: {:?}",
                        String::from_utf8_lossy(&answer)
                    ),
                ));
            }
            // One byte at a time: the guest's bytes follow the '\n' on the same stream, and a
            // larger read would take them from the caller.
            let mut byte = [0u8; 1];
            if stream.read(&mut byte).await? == 0 {
                let said = if answer.is_empty() {
                    String::from("nothing")
                } else {
                    format!("only {:?}", String::from_utf8_lossy(&answer))
                };
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!(
                        "the hybrid vsock backend at {backend} closed the connection for \
                         CONNECT {port} after answering {said} (is the guest listening on vsock \
                         port {port}?)"
                    ),
                ));
            }
            let [byte] = byte;
            answer.push(byte);
            if byte == b'\n' {
                break;
            }
        }
        if !is_hybrid_ok(&answer) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!(
                    "the hybrid vsock backend at {backend} refused CONNECT {port}: it answered \
                     {:?}, not \"OK <port>\"",
                    String::from_utf8_lossy(&answer)
                ),
            ));
        }
        Ok(stream)
    };
    tokio::time::timeout(timeout, handshake)
        .await
        .unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the hybrid vsock backend at {backend} did not answer CONNECT {port} within \
                     {timeout:?}"
                ),
            ))
        })
}

/// `OK <digits>\n`, the backend's answer when the guest accepted the connection (the number
/// is the host-side port it allocated, of no use here).
fn is_hybrid_ok(answer: &[u8]) -> bool {
    answer
        .strip_prefix(b"OK ")
        .and_then(|rest| rest.strip_suffix(b"\n"))
        .is_some_and(|digits| !digits.is_empty() && digits.iter().all(u8::is_ascii_digit))
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Vsock(s) => Pin::new(&mut s.stream).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

/// How long a vsock write waits before trying again after `ENOBUFS`.
const VSOCK_TX_FULL_BACKOFF: Duration = Duration::from_millis(1);
/// `ENOBUFS` on Linux.
const ENOBUFS: i32 = 105;

/// A vsock stream that treats a full transmit queue as back-pressure.
///
/// Linux's virtio vsock driver fails a send with `ENOBUFS` when the device's transmit queue
/// is full (the host has not drained it yet), even on a socket that reported itself writable.
/// tokio-vsock passes that up as an error, which would break the connection in the middle of a
/// frame under load. It is a transient condition: wait a little and write again.
#[derive(Debug)]
pub struct VsockConnection {
    stream: VsockStream,
    backoff: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl VsockConnection {
    fn new(stream: VsockStream) -> Self {
        Self {
            stream,
            backoff: None,
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            if let Some(backoff) = self.backoff.as_mut() {
                if std::future::Future::poll(backoff.as_mut(), cx).is_pending() {
                    return Poll::Pending;
                }
                self.backoff = None;
            }
            match Pin::new(&mut self.stream).poll_write(cx, buf) {
                Poll::Ready(Err(error)) if error.raw_os_error() == Some(ENOBUFS) => {
                    self.backoff = Some(Box::pin(tokio::time::sleep(VSOCK_TX_FULL_BACKOFF)));
                }
                other => return other,
            }
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Vsock(s) => s.poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Vsock(s) => Pin::new(&mut s.stream).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Vsock(s) => Pin::new(&mut s.stream).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// A listening socket over any supported transport.
#[derive(Debug)]
pub enum Listener {
    /// vsock.
    Vsock(VsockListener),
    /// Unix domain socket; the path is removed again when the listener is dropped.
    Unix(UnixListener, UnixSocketFile),
    /// TCP.
    Tcp(TcpListener),
}

/// Removes the socket file of a unix listener when dropped.
#[derive(Debug)]
pub struct UnixSocketFile(PathBuf);

impl Drop for UnixSocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Listener {
    /// Binds `address`.
    ///
    /// A unix socket file left behind by a process that died is replaced; one that a live
    /// process still listens on is not, and binding fails with `AddrInUse`.
    ///
    /// A `vsock-uds:` address is refused (`InvalidInput`): the hybrid backend's socket is for
    /// connecting to the guest; the guest's connections to port P arrive at `<path>_P`.
    pub async fn bind(address: &Address) -> io::Result<Listener> {
        match address {
            Address::Vsock { cid, port } => Ok(Listener::Vsock(VsockListener::bind(
                VsockAddr::new(*cid, *port),
            )?)),
            Address::VsockUds { path, port } => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "cannot listen on {address}: that socket is the hybrid vsock backend's, for \
                     connecting to the guest; the guest's connections to port {port} arrive at \
                     {}_{port}, so listen on unix:{}_{port} instead",
                    path.display(),
                    path.display()
                ),
            )),
            Address::Unix(path) => {
                if path.exists() {
                    match UnixStream::connect(path).await {
                        Ok(_) => {
                            return Err(io::Error::new(
                                io::ErrorKind::AddrInUse,
                                format!("{} is in use by a running process", path.display()),
                            ))
                        }
                        Err(_) => std::fs::remove_file(path)?,
                    }
                }
                let listener = UnixListener::bind(path)?;
                Ok(Listener::Unix(listener, UnixSocketFile(path.clone())))
            }
            Address::Tcp { host, port } => Ok(Listener::Tcp(
                TcpListener::bind((host.as_str(), *port)).await?,
            )),
        }
    }

    /// Accepts one connection; returns it with a printable description of the peer.
    pub async fn accept(&self) -> io::Result<(Stream, String)> {
        match self {
            Listener::Vsock(l) => {
                let (s, peer) = l.accept().await?;
                Ok((
                    Stream::Vsock(VsockConnection::new(s)),
                    format!("vsock:{}:{}", peer.cid(), peer.port()),
                ))
            }
            Listener::Unix(l, file) => {
                let (s, _) = l.accept().await?;
                Ok((Stream::Unix(s), format!("unix:{}", file.0.display())))
            }
            Listener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                s.set_nodelay(true)?;
                Ok((Stream::Tcp(s), format!("tcp:{peer}")))
            }
        }
    }

    /// The address actually bound (useful after binding TCP port 0).
    pub fn local_address(&self) -> io::Result<Address> {
        match self {
            Listener::Vsock(l) => {
                let a = l.local_addr()?;
                Ok(Address::Vsock {
                    cid: a.cid(),
                    port: a.port(),
                })
            }
            Listener::Unix(_, file) => Ok(Address::Unix(file.0.clone())),
            Listener::Tcp(l) => {
                let a = l.local_addr()?;
                Ok(Address::Tcp {
                    host: a.ip().to_string(),
                    port: a.port(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn unix_listener_replaces_stale_socket_and_refuses_live_one() {
        let dir = tempfile::tempdir().unwrap();
        let address = Address::Unix(dir.path().join("s.sock"));
        let listener = Listener::bind(&address).await.unwrap();
        let err = Listener::bind(&address).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);

        let server = tokio::spawn(async move {
            // The first connection is the liveness probe of the refused bind: it carries nothing.
            let (mut probe, _) = listener.accept().await.unwrap();
            assert_eq!(probe.read(&mut [0u8; 1]).await.unwrap(), 0);
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
            listener
        });
        let mut client = Stream::connect(&address).await.unwrap();
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        drop(server.await.unwrap());
        assert!(
            !dir.path().join("s.sock").exists(),
            "socket file removed on drop"
        );
    }

    /// A fake hybrid vsock backend at `dir/vhost.sock`: for each connection it checks the
    /// `CONNECT <port>\n` line and hands the stream to `answer`.
    fn fake_backend<F, T>(dir: &Path, port: u32, answer: F) -> Address
    where
        F: Fn(UnixStream) -> T + Send + 'static,
        T: std::future::Future<Output = ()> + Send + 'static,
    {
        let path = dir.join("vhost.sock");
        let listener = UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let expected = format!("CONNECT {port}\n");
                let mut line = vec![0u8; expected.len()];
                stream.read_exact(&mut line).await.unwrap();
                assert_eq!(line, expected.as_bytes());
                tokio::spawn(answer(stream));
            }
        });
        Address::VsockUds { path, port }
    }

    #[tokio::test]
    async fn vsock_uds_connect_keeps_the_guest_bytes_that_follow_ok() {
        let dir = tempfile::tempdir().unwrap();
        let address = fake_backend(dir.path(), 5000, |mut guest| async move {
            // The answer and the guest's first bytes in one write, as a backend may send them.
            guest.write_all(b"OK 1234\nguest-hello").await.unwrap();
            let mut buf = [0u8; 4];
            guest.read_exact(&mut buf).await.unwrap();
            guest.write_all(&buf).await.unwrap();
        });
        let mut stream = Stream::connect(&address).await.unwrap();
        assert!(matches!(stream, Stream::Unix(_)));
        let mut hello = [0u8; 11];
        stream.read_exact(&mut hello).await.unwrap();
        assert_eq!(&hello, b"guest-hello");
        stream.write_all(b"ping").await.unwrap();
        let mut echo = [0u8; 4];
        stream.read_exact(&mut echo).await.unwrap();
        assert_eq!(&echo, b"ping");
    }

    #[tokio::test]
    async fn vsock_uds_connect_refused_when_the_backend_does_not_say_ok() {
        for answer in [
            &b"ERR\n"[..],
            b"ERR no listener on port 5000\n",
            b"OK\n",
            b"OK \n",
            b"OK 12a\n",
            b"ok 1234\n",
            b" OK 1234\n",
        ] {
            let dir = tempfile::tempdir().unwrap();
            let address = fake_backend(dir.path(), 5000, move |mut guest| async move {
                guest.write_all(answer).await.unwrap();
                // Held open: the client must decide on the line alone.
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
            let error = Stream::connect(&address).await.unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused, "{error}");
            let message = error.to_string();
            let path = dir.path().join("vhost.sock");
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains("CONNECT 5000"), "{message}");
            let said = String::from_utf8_lossy(answer);
            assert!(message.contains(said.trim_end()), "{message}");
        }
    }

    #[tokio::test]
    async fn vsock_uds_connect_refused_when_the_backend_closes() {
        let dir = tempfile::tempdir().unwrap();
        let address = fake_backend(dir.path(), 7, |guest| async move { drop(guest) });
        let error = Stream::connect(&address).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused, "{error}");
        let message = error.to_string();
        assert!(message.contains("closed"), "{message}");
        assert!(message.contains("nothing"), "{message}");
        assert!(message.contains("CONNECT 7"), "{message}");

        // Half an answer, then closed.
        let dir = tempfile::tempdir().unwrap();
        let address = fake_backend(dir.path(), 7, |mut guest| async move {
            guest.write_all(b"OK 12").await.unwrap();
        });
        let message = Stream::connect(&address).await.unwrap_err().to_string();
        assert!(
            message.contains("closed") && message.contains("OK 12"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn vsock_uds_connect_times_out_when_the_backend_never_answers() {
        let dir = tempfile::tempdir().unwrap();
        let Address::VsockUds { path, port } = fake_backend(dir.path(), 5000, |guest| async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(guest);
        }) else {
            unreachable!()
        };
        let started = std::time::Instant::now();
        let error = connect_hybrid_vsock(&path, port, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("did not answer CONNECT 5000"), "{message}");
    }

    #[tokio::test]
    async fn vsock_uds_connect_refuses_an_answer_longer_than_the_bound() {
        for answer in [
            // A line end that comes too late...
            format!("OK {}\n", "1".repeat(100)),
            // ...or never, on a connection held open.
            "x".repeat(HYBRID_MAX_ANSWER + 1),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let address = fake_backend(dir.path(), 5000, move |mut guest| {
                let answer = answer.clone();
                async move {
                    guest.write_all(answer.as_bytes()).await.unwrap();
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
            });
            let error = Stream::connect(&address).await.unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
            assert!(error.to_string().contains("more than 64 bytes"), "{error}");
        }
    }

    #[tokio::test]
    async fn vsock_uds_connect_names_a_missing_backend_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.sock");
        let error = Stream::connect(&Address::VsockUds {
            path: path.clone(),
            port: 5000,
        })
        .await
        .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
        assert!(
            error.to_string().contains(&path.display().to_string()),
            "{error}"
        );
    }

    #[tokio::test]
    async fn vsock_uds_listen_is_refused_with_the_socket_to_use() {
        let address: Address = "vsock-uds:/tmp/vm/vhost.sock:9000".parse().unwrap();
        let error = Listener::bind(&address).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(
            error
                .to_string()
                .contains("listen on unix:/tmp/vm/vhost.sock_9000"),
            "{error}"
        );
        assert!(!Path::new("/tmp/vm/vhost.sock").exists());
    }

    #[tokio::test]
    async fn tcp_loopback_with_port_zero() {
        let listener = Listener::bind(&"tcp:127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let address = listener.local_address().unwrap();
        let accept = tokio::spawn(async move { listener.accept().await.map(|_| ()) });
        Stream::connect(&address).await.unwrap();
        accept.await.unwrap().unwrap();
    }
}
