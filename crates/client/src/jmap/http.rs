//! The little HTTP/1.1 client JMAP needs: `GET` the session and downloads,
//! `POST` API requests and uploads, with HTTP Basic authentication (RFC 7617).
//!
//! Built on hyper's low-level connection (`client::conn::http1`) over
//! [`crate::tls::Stream`], so TLS is rustls with ring exactly as for IMAP and
//! POP3, and a rejected certificate is the same [`ClientError::Certificate`].
//! One keep-alive connection is kept and reused while requests go to the same
//! origin. Every request has a deadline and every response body a size cap: a
//! hostile or broken server can make a request fail, never hang the client or
//! grow its memory without bound.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, Uri, header};
use hyper_util::rt::TokioIo;
use tokio::task::JoinHandle;

use crate::error::{ClientError, Result};
use crate::tls::{Endpoint, Login, Security, Stream};

/// The longest one request may take, body included, before the server counts
/// as unreachable.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// An absolute `http(s)://` URL split into what connecting and asking need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `https` (true) or `http` (false, loopback only).
    pub tls: bool,
    /// The host as written (IPv6 in brackets).
    pub host: String,
    /// The port, explicit or the scheme's default.
    pub port: u16,
    /// Whether the URL gave the port (then the `Host` header repeats it).
    explicit_port: bool,
    /// Path and query (`/` when empty): the request target (origin-form).
    pub path: String,
}

impl Target {
    /// Parses an absolute URL; only `https` and `http` are accepted.
    pub fn parse(url: &str) -> std::result::Result<Target, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("{url:?} is not a valid URL: {e}"))?;
        let tls = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("https") => true,
            Some(s) if s.eq_ignore_ascii_case("http") => false,
            Some(s) => return Err(format!("{url:?}: the scheme {s:?} is not http(s)")),
            None => return Err(format!("{url:?} is not an absolute http(s) URL")),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{url:?} has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!("{url:?}: user names in the URL are not supported"));
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(format!("{url:?} has no host"));
        }
        let path = uri
            .path_and_query()
            .map(|p| p.as_str())
            .filter(|p| !p.is_empty())
            .unwrap_or("/");
        Ok(Target {
            tls,
            host: host.to_string(),
            port: uri.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            explicit_port: uri.port_u16().is_some(),
            path: if path.starts_with('/') {
                path.to_string()
            } else {
                format!("/{path}")
            },
        })
    }

    /// `scheme://host[:port]`: whom a relative URL is resolved against.
    pub fn origin(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.authority()
        )
    }

    /// The whole URL again, for messages.
    pub fn url(&self) -> String {
        format!("{}{}", self.origin(), self.path)
    }

    /// `host[:port]`, the `Host` header.
    fn authority(&self) -> String {
        if self.explicit_port {
            format!("{}:{}", self.host, self.port)
        } else {
            self.host.clone()
        }
    }

    /// Where to connect: implicit TLS for https, clear text for http (which
    /// [`Stream::connect`] refuses unless the host is loopback).
    fn endpoint(&self, accept_invalid_certs: bool) -> Endpoint {
        Endpoint {
            host: self.host.clone(),
            port: self.port,
            security: if self.tls {
                Security::Tls
            } else {
                Security::Plain
            },
            accept_invalid_certs,
        }
    }

    /// The same server: one connection can serve both.
    fn same_origin(&self, other: &Target) -> bool {
        self.tls == other.tls
            && self.host.eq_ignore_ascii_case(&other.host)
            && self.port == other.port
    }
}

/// A response read completely (within its size cap).
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The `Location` header, for redirects.
    pub location: Option<String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The body.
    pub body: Bytes,
}

/// A kept-alive connection to one origin, and the task driving it.
struct Conn {
    target: Target,
    sender: SendRequest<Full<Bytes>>,
    task: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An HTTP client logged in as one user.
pub struct HttpClient {
    /// `Basic base64(user:password)`.
    authorization: String,
    accept_invalid_certs: bool,
    conn: Option<Conn>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("accept_invalid_certs", &self.accept_invalid_certs)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client authenticating every request as `login`.
    pub fn new(login: &Login, accept_invalid_certs: bool) -> HttpClient {
        HttpClient {
            authorization: basic_authorization(login),
            accept_invalid_certs,
            conn: None,
        }
    }

    /// Sends one request and reads the response, its body at most `max_body`
    /// octets. Connection problems and timeouts are [`ClientError::Unreachable`]
    /// (or `Certificate`); the status is the caller's to judge.
    pub async fn send(
        &mut self,
        method: Method,
        target: &Target,
        content_type: Option<&str>,
        body: Bytes,
        max_body: usize,
    ) -> Result<Response> {
        let work = self.send_inner(method, target, content_type, body, max_body);
        match tokio::time::timeout(REQUEST_TIMEOUT, work).await {
            Ok(r) => {
                if r.is_err() {
                    // The connection's state is unknown after a failure.
                    self.conn = None;
                }
                r
            }
            Err(_) => {
                self.conn = None;
                Err(ClientError::Unreachable {
                    server: target.origin(),
                    reason: format!("no complete answer within {} s", REQUEST_TIMEOUT.as_secs()),
                })
            }
        }
    }

    async fn send_inner(
        &mut self,
        method: Method,
        target: &Target,
        content_type: Option<&str>,
        body: Bytes,
        max_body: usize,
    ) -> Result<Response> {
        let unreachable = |e: hyper::Error| ClientError::Unreachable {
            server: target.origin(),
            reason: e.to_string(),
        };
        let reused = self.ensure_conn(target).await?;
        let request = self.request(&method, target, content_type, body.clone())?;
        let sender = self.sender()?;
        let response = match sender.try_send_request(request).await {
            Ok(r) => r,
            Err(mut e) => {
                // Not sent at all (the kept-alive connection was closed in the
                // meantime), or a GET, which may be repeated: once more on a
                // new connection. A POST that may have reached the server is
                // not repeated.
                let unsent = e.take_message().is_some();
                if reused && (unsent || method == Method::GET) {
                    self.conn = None;
                    self.ensure_conn(target).await?;
                    let request = self.request(&method, target, content_type, body)?;
                    self.sender()?
                        .send_request(request)
                        .await
                        .map_err(unreachable)?
                } else {
                    return Err(unreachable(e.into_error()));
                }
            }
        };
        let status = response.status().as_u16();
        let text_header = |name: header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let location = text_header(header::LOCATION);
        let content_type = text_header(header::CONTENT_TYPE);
        let body = match Limited::new(response.into_body(), max_body).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(ClientError::protocol(
                    target.origin(),
                    format!(
                        "the answer to {method} {} is larger than {max_body} octets",
                        target.path
                    ),
                ));
            }
            Err(e) => {
                return Err(ClientError::Unreachable {
                    server: target.origin(),
                    reason: format!("reading the answer: {e}"),
                });
            }
        };
        Ok(Response {
            status,
            location,
            content_type,
            body,
        })
    }

    fn sender(&mut self) -> Result<&mut SendRequest<Full<Bytes>>> {
        self.conn
            .as_mut()
            .map(|c| &mut c.sender)
            .ok_or_else(|| ClientError::protocol("http", "no connection"))
    }

    fn request(
        &self,
        method: &Method,
        target: &Target,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>> {
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(target.path.as_str())
            .header(header::HOST, target.authority())
            .header(header::AUTHORIZATION, self.authorization.as_str())
            .header(header::ACCEPT, "application/json, */*;q=0.5")
            .header(
                header::USER_AGENT,
                concat!("pochta/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(t) = content_type {
            builder = builder.header(header::CONTENT_TYPE, t);
        }
        builder
            .body(Full::new(body))
            .map_err(|e| ClientError::Usage(format!("cannot request {}: {e}", target.url())))
    }

    /// Makes sure a usable connection to `target`'s origin is open; says
    /// whether it was kept from before.
    async fn ensure_conn(&mut self, target: &Target) -> Result<bool> {
        if let Some(conn) = self.conn.as_mut()
            && conn.target.same_origin(target)
            && conn.sender.ready().await.is_ok()
        {
            return Ok(true);
        }
        self.conn = None;
        let stream = Stream::connect(&target.endpoint(self.accept_invalid_certs)).await?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Unreachable {
                server: target.origin(),
                reason: e.to_string(),
            })?;
        let task = tokio::spawn(async move {
            // Its errors reach the request that was waiting on it.
            let _ = connection.await;
        });
        self.conn = Some(Conn {
            target: target.clone(),
            sender,
            task,
        });
        Ok(false)
    }
}

/// `Basic base64(user ":" password)`, UTF-8 (RFC 7617 §2, §2.1).
pub fn basic_authorization(login: &Login) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", login.user, login.password))
    )
}

/// Expands an RFC 6570 level-1 template: each `{name}` found in `vars` is
/// replaced by its value percent-encoded (everything but unreserved
/// characters, §3.2.2); an unknown `{name}` is left as it is.
pub fn expand_template(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                match vars.iter().find(|(n, _)| *n == name) {
                    Some((_, value)) => out.push_str(&percent_encode(value)),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Percent-encodes all but RFC 3986 unreserved characters.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Resolves a URL from the session (usually absolute) against the URL the
/// session came from: an absolute path keeps the origin.
pub fn resolve(base: &Target, url: &str) -> String {
    if url.starts_with('/') && !url.starts_with("//") {
        format!("{}{url}", base.origin())
    } else {
        url.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = Target::parse("https://mail.example.com/.well-known/jmap").unwrap();
        assert!(t.tls);
        assert_eq!((t.host.as_str(), t.port), ("mail.example.com", 443));
        assert_eq!(t.authority(), "mail.example.com");
        assert_eq!(t.path, "/.well-known/jmap");
        let t = Target::parse("http://127.0.0.1:8080").unwrap();
        assert!(!t.tls);
        assert_eq!(t.authority(), "127.0.0.1:8080");
        assert_eq!(t.path, "/");
        let t = Target::parse("https://[::1]:4443/jmap/api/?x=1").unwrap();
        assert_eq!(t.host, "[::1]");
        assert_eq!(t.path, "/jmap/api/?x=1");
        assert_eq!(t.url(), "https://[::1]:4443/jmap/api/?x=1");
        assert!(t.endpoint(false).is_loopback());
        assert!(Target::parse("ftp://x/").is_err());
        assert!(Target::parse("/relative").is_err());
        assert!(Target::parse("https://user@host/").is_err());
    }

    #[test]
    fn templates_encode_values() {
        let t = "https://h/jmap/download/{accountId}/{blobId}/{name}?type={type}&x={other}";
        assert_eq!(
            expand_template(
                t,
                &[
                    ("accountId", "A1"),
                    ("blobId", "B 2/3"),
                    ("name", "message.eml"),
                    ("type", "message/rfc822"),
                ]
            ),
            "https://h/jmap/download/A1/B%202%2F3/message.eml?type=message%2Frfc822&x={other}"
        );
        assert_eq!(expand_template("a{b", &[("b", "x")]), "a{b");
        assert_eq!(expand_template("{n}", &[("n", "é")]), "%C3%A9");
    }

    #[test]
    fn basic_authorization_is_rfc_7617() {
        let login = Login {
            user: "Aladdin".into(),
            password: "open sesame".into(),
        };
        assert_eq!(
            basic_authorization(&login),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn relative_urls_keep_the_origin() {
        let base = Target::parse("https://h:1/.well-known/jmap").unwrap();
        assert_eq!(resolve(&base, "/jmap/api/"), "https://h:1/jmap/api/");
        assert_eq!(resolve(&base, "https://o/api"), "https://o/api");
    }
}
