//! The HTTP listener: JMAP (RFC 8620, RFC 8621) and JMAP over WebSocket
//! (RFC 8887) on the store, over HTTPS.
//!
//! The layers, from the socket inwards:
//!
//! * `conn`: one accepted TCP connection. Its first byte tells a TLS
//!   handshake from clear text; TLS is served with the server's certificate,
//!   clear text gets a `400` naming the `https://` URL (unless `[http] plain`
//!   is set for a TLS-terminating proxy). hyper runs HTTP/1.1 on it, with
//!   upgrades for WebSocket and a graceful close on shutdown.
//! * `router`: the routes of the session's URL templates
//!   ([`pochta_jmap_proto::SessionUrls`]): session, API, upload, download, and a
//!   log line per request.
//! * [`auth`]: who is asking: `Authorization: Basic` through the shared
//!   [`Authenticator`] (the same throttle as SMTP, POP3 and IMAP) or
//!   `Authorization: Bearer` with a token made by `pochta token create`.
//! * [`push`]: EventSource (RFC 8620 §7.3) and the WebSocket session
//!   (RFC 8887), both fed by the store's change notifier.
//! * [`blob`]: reading a blob for download: a whole stored blob, or one MIME
//!   part of a stored message with its transfer encoding undone.
//!
//! The JMAP methods themselves are in `pochta-jmap`; this crate only carries
//! requests to it.

#![forbid(unsafe_code)]

pub mod auth;
pub mod blob;
mod conn;
mod limits;
pub mod push;
mod router;

use std::sync::Arc;
use std::time::Duration;

use pochta_auth::Authenticator;
use pochta_jmap::Jmap;
use pochta_net::{CancellationToken, ConnGuard, LimitExceeded, TaskTracker};
use pochta_store::Store;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

pub use auth::{TOKEN_PREFIX, new_token, token_hash};

/// How the HTTP listener behaves.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Our host name: the session's URLs use it when a request has no usable
    /// `Host` header.
    pub hostname: String,
    /// Serve clear-text HTTP too, logins included (`[http] plain`): only behind
    /// a reverse proxy that terminates TLS.
    pub plain: bool,
}

/// The HTTP server: shared by every connection of the `http` listener.
pub struct HttpServer {
    router: axum::Router,
    acceptor: TlsAcceptor,
    settings: HttpSettings,
}

/// What every request handler can reach.
#[derive(Clone)]
pub(crate) struct App {
    pub(crate) inner: Arc<AppInner>,
}

pub(crate) struct AppInner {
    pub(crate) jmap: Arc<Jmap>,
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) settings: HttpSettings,
    /// `maxConcurrentRequests`, per account (API and WebSocket requests).
    pub(crate) api_limit: Arc<limits::PerAccount>,
    /// `maxConcurrentUpload`, per account.
    pub(crate) upload_limit: Arc<limits::PerAccount>,
}

impl App {
    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.inner.jmap.store
    }
}

impl HttpServer {
    /// A server answering with `jmap`, logging users in with `auth`, and
    /// accepting TLS with `acceptor`.
    pub fn new(
        jmap: Arc<Jmap>,
        auth: Arc<Authenticator>,
        acceptor: TlsAcceptor,
        settings: HttpSettings,
    ) -> Arc<HttpServer> {
        let core = &jmap.settings.core;
        let api_limit = limits::PerAccount::new(core.max_concurrent_requests);
        let upload_limit = limits::PerAccount::new(core.max_concurrent_upload);
        let app = App {
            inner: Arc::new(AppInner {
                jmap,
                auth,
                settings: settings.clone(),
                api_limit,
                upload_limit,
            }),
        };
        Arc::new(HttpServer {
            router: router::router(app),
            acceptor,
            settings,
        })
    }

    /// Serves one accepted connection until it closes or the server shuts
    /// down. `slot` (the connection limit) and a token of `tracker` are held
    /// as long as the connection lives, a WebSocket that outlives the HTTP
    /// exchange included.
    pub async fn handle(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: std::net::SocketAddr,
        shutdown: CancellationToken,
        tracker: TaskTracker,
        slot: ConnGuard,
    ) {
        conn::serve(self, tcp, peer, shutdown, tracker, slot).await;
    }
}

/// What a connection over the limits is told: nothing, since the listener
/// speaks TLS first and clear-text words would only garble the handshake.
pub fn refusal(_limit: LimitExceeded) -> Vec<u8> {
    Vec::new()
}

/// How long an upload is kept for use (RFC 8620 §6.1 asks for at least an hour).
pub const UPLOAD_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// How often old uploads are purged.
pub const UPLOAD_PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// Purges uploads older than [`UPLOAD_LIFETIME`] now and every
/// [`UPLOAD_PURGE_INTERVAL`], until `shutdown`.
pub async fn purge_uploads(store: Arc<dyn Store>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(UPLOAD_PURGE_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let cutoff = unix_now() - UPLOAD_LIFETIME.as_secs() as i64;
        match store.purge_uploads(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "old JMAP uploads purged"),
            Err(e) => tracing::warn!(error = %e, "cannot purge old JMAP uploads"),
        }
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
