//! Connecting to a server: TCP, then TLS at once (implicit, ports 465/993/995) or
//! after the protocol's STARTTLS/STLS, or never (`plain`, loopback only).
//!
//! Certificates are verified against the system's CA bundle unless the account
//! says `accept_invalid_certs` (a self-signed test server); a rejected
//! certificate becomes [`ClientError::Certificate`] with the hint to use that
//! option.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::{ClientError, Result};

/// How long a connection attempt may take before the server counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// How a protocol's connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// TLS from the first byte (SMTPS 465, IMAPS 993, POP3S 995).
    Tls,
    /// Clear text, upgraded with STARTTLS / STLS before anything secret is sent.
    Starttls,
    /// Never encrypted: only allowed to loopback addresses.
    Plain,
}

impl Security {
    /// The usual security for `port`: implicit TLS on 465, 993 and 995,
    /// STARTTLS elsewhere.
    pub fn for_port(port: u16) -> Security {
        match port {
            465 | 993 | 995 => Security::Tls,
            _ => Security::Starttls,
        }
    }
}

/// Where a server is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address (also the TLS server name).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Implicit TLS, STARTTLS or plain.
    pub security: Security,
    /// Accept any certificate (self-signed test servers).
    pub accept_invalid_certs: bool,
}

impl Endpoint {
    /// `host:port`, for messages.
    pub fn display(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Whether the host is a loopback address or `localhost`, where `plain` is
    /// allowed.
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self
                .host
                .trim_matches(['[', ']'])
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

/// A login name and its password.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    /// The login name (usually the address).
    pub user: String,
    /// The password, never printed.
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A connection, in clear text or TLS; protocols read and write through it and
/// upgrade it with [`Stream::starttls`].
pub enum Stream {
    /// Clear text (before STARTTLS, or `plain`).
    Plain(TcpStream),
    /// Encrypted.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// Connects to `endpoint`, with TLS at once when its security is `tls`.
    /// `plain` to a non-loopback host is refused here, before any byte is sent.
    pub async fn connect(endpoint: &Endpoint) -> Result<Stream> {
        if endpoint.security == Security::Plain && !endpoint.is_loopback() {
            return Err(ClientError::Usage(format!(
                "{}: security `plain` is only allowed to loopback addresses; use tls or starttls",
                endpoint.display()
            )));
        }
        let addr = (endpoint.host.trim_matches(['[', ']']), endpoint.port);
        let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => {
                return Err(ClientError::Unreachable {
                    server: endpoint.display(),
                    reason: e.to_string(),
                });
            }
            Err(_) => {
                return Err(ClientError::Unreachable {
                    server: endpoint.display(),
                    reason: "connection timed out".into(),
                });
            }
        };
        let _ = tcp.set_nodelay(true);
        let stream = Stream::Plain(tcp);
        match endpoint.security {
            Security::Tls => stream.starttls(endpoint).await,
            Security::Starttls | Security::Plain => Ok(stream),
        }
    }

    /// Runs the TLS handshake on a clear-text connection (after the protocol's
    /// STARTTLS was accepted, or at once for implicit TLS).
    pub async fn starttls(self, endpoint: &Endpoint) -> Result<Stream> {
        let tcp = match self {
            Stream::Plain(tcp) => tcp,
            tls @ Stream::Tls(_) => return Ok(tls),
        };
        let config = client_config(endpoint.accept_invalid_certs)?;
        let name = pochta_net::client_tls::server_name(endpoint.host.trim_matches(['[', ']']))
            .ok_or_else(|| {
                ClientError::Usage(format!("{:?} is not a valid host name", endpoint.host))
            })?;
        match TlsConnector::from(config).connect(name, tcp).await {
            Ok(tls) => Ok(Stream::Tls(Box::new(tls))),
            Err(e) => {
                let certificate = e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                    .is_some_and(|r| {
                        matches!(
                            r,
                            rustls::Error::InvalidCertificate(_)
                                | rustls::Error::NoCertificatesPresented
                        )
                    });
                if certificate {
                    Err(ClientError::Certificate {
                        server: endpoint.display(),
                        reason: e.to_string(),
                    })
                } else {
                    Err(ClientError::protocol(
                        endpoint.display(),
                        format!("TLS handshake failed: {e}"),
                    ))
                }
            }
        }
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }
}

/// The rustls client configuration: the system's CAs, or any certificate.
pub fn client_config(accept_invalid_certs: bool) -> Result<Arc<rustls::ClientConfig>> {
    let made = if accept_invalid_certs {
        pochta_net::client_tls::opportunistic()
    } else {
        pochta_net::client_tls::verified(None)
    };
    made.map_err(|e| ClientError::Usage(format!("TLS setup: {e}")))
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
