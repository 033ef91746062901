//! A connection that starts in clear text and may switch to TLS.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// What was negotiated, for Received headers and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsDetails {
    /// e.g. `TLSv1.3`.
    pub version: String,
    /// e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
}

/// A client connection, clear or TLS.
pub enum Conn {
    /// Clear text (before STARTTLS, or a listener without TLS).
    Plain(TcpStream),
    /// TLS, from the start (implicit TLS) or after STARTTLS.
    Tls(Box<TlsStream<TcpStream>>),
    /// A failed upgrade left nothing usable.
    Closed,
}

impl Conn {
    /// Runs the server side of a TLS handshake on a clear connection.
    pub async fn upgrade(self, acceptor: &TlsAcceptor) -> io::Result<Conn> {
        match self {
            Conn::Plain(tcp) => Ok(Conn::Tls(Box::new(acceptor.accept(tcp).await?))),
            Conn::Tls(_) | Conn::Closed => Err(io::Error::other("connection is not in clear text")),
        }
    }

    /// Accepts a TLS connection right away (ports 465, 993, 995).
    pub async fn accept_tls(tcp: TcpStream, acceptor: &TlsAcceptor) -> io::Result<Conn> {
        Conn::Plain(tcp).upgrade(acceptor).await
    }

    /// Upgrades this connection in place (STARTTLS, STLS, or implicit TLS right
    /// after accept), giving up after `timeout`. On failure the connection is left
    /// closed.
    pub async fn start_tls(&mut self, acceptor: &TlsAcceptor, timeout: Duration) -> io::Result<()> {
        let plain = std::mem::replace(self, Conn::Closed);
        match tokio::time::timeout(timeout, plain.upgrade(acceptor)).await {
            Ok(Ok(tls)) => {
                *self = tls;
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
        }
    }

    /// Writes `data` and flushes, giving up after `timeout`: a client that never
    /// reads its replies cannot hold the session (or its memory) forever.
    pub async fn send(&mut self, data: &[u8], timeout: Duration) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        let write = async {
            self.write_all(data).await?;
            self.flush().await
        };
        match tokio::time::timeout(timeout, write).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client does not read",
            )),
        }
    }

    /// Negotiated TLS parameters, if this is TLS.
    pub fn tls_details(&self) -> Option<TlsDetails> {
        let Conn::Tls(s) = self else { return None };
        let (_, server) = s.get_ref();
        Some(TlsDetails {
            version: server
                .protocol_version()
                .map(|v| match v {
                    rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
                    rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default(),
            cipher: server
                .negotiated_cipher_suite()
                .map(|c| format!("{:?}", c.suite()))
                .unwrap_or_default(),
        })
    }

    /// True when encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, Conn::Tls(_))
    }
}

/// A TLS acceptor for a server configuration.
pub fn acceptor(config: Arc<rustls::ServerConfig>) -> TlsAcceptor {
    TlsAcceptor::from(config)
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection closed")
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Conn::Closed => Poll::Ready(Err(closed())),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Conn::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Conn::Closed => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Conn::Closed => Poll::Ready(Ok(())),
        }
    }
}
