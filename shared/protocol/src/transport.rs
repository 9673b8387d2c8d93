//! One stream type and one listener type over vsock, unix sockets and TCP.
//!
//! Every socket system call of the project goes through this module.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio_vsock::{VsockAddr, VsockListener, VsockStream};

use crate::address::Address;

/// A connected byte stream over any supported transport.
#[derive(Debug)]
pub enum Stream {
    /// vsock.
    Vsock(VsockStream),
    /// Unix domain socket.
    Unix(UnixStream),
    /// TCP.
    Tcp(TcpStream),
}

impl Stream {
    /// Connects to `address`.
    pub async fn connect(address: &Address) -> io::Result<Stream> {
        match address {
            Address::Vsock { cid, port } => Ok(Stream::Vsock(
                VsockStream::connect(VsockAddr::new(*cid, *port)).await?,
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

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Vsock(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
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
            Stream::Vsock(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Vsock(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Vsock(s) => Pin::new(s).poll_shutdown(cx),
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
    pub async fn bind(address: &Address) -> io::Result<Listener> {
        match address {
            Address::Vsock { cid, port } => Ok(Listener::Vsock(VsockListener::bind(
                VsockAddr::new(*cid, *port),
            )?)),
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
                    Stream::Vsock(s),
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
