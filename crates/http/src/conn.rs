//! One accepted connection: TLS or clear text (told apart by the first byte),
//! then HTTP/1.1 with hyper until the client leaves or the server shuts down.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use pochta_net::{CancellationToken, ConnGuard, TaskTracker};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tower::Service;
use tracing::Instrument;

use crate::HttpServer;

/// Longest wait for the first byte, and for a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a request's headers (also bounds an idle keep-alive
/// connection).
const HEADER_TIMEOUT: Duration = Duration::from_secs(60);
/// The first byte of a TLS record carrying a handshake (ClientHello).
const TLS_HANDSHAKE: u8 = 0x16;

/// The connection a request came on, put into each request's extensions.
#[derive(Clone)]
pub(crate) struct ConnInfo {
    /// The client.
    pub(crate) peer: SocketAddr,
    /// Whether the connection is TLS.
    pub(crate) tls: bool,
    /// Cancelled when the server shuts down (long-lived responses end then).
    pub(crate) shutdown: CancellationToken,
    /// The connection slot and shutdown tracking: held by whatever outlives
    /// the HTTP exchange (a WebSocket), so both last as long as it does.
    pub(crate) _hold: Arc<Hold>,
}

/// Kept alive while anything of a connection is.
pub(crate) struct Hold {
    _slot: ConnGuard,
    _token: TaskTrackerToken,
}

/// Who a request turned out to be, filled in by authentication and read by
/// the request log.
#[derive(Clone, Default)]
pub(crate) struct UserSlot(Arc<Mutex<Option<String>>>);

impl UserSlot {
    pub(crate) fn set(&self, user: String) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(user);
    }

    pub(crate) fn get(&self) -> String {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default()
    }
}

pub(crate) async fn serve(
    server: Arc<HttpServer>,
    tcp: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    slot: ConnGuard,
) {
    let sid = pochta_net::session_id();
    let span = tracing::info_span!("http", sid = %sid, peer = %peer, listener = "http");
    let hold = Arc::new(Hold {
        _slot: slot,
        _token: tracker.token(),
    });
    run(server, tcp, peer, shutdown, hold)
        .instrument(span)
        .await;
}

async fn run(
    server: Arc<HttpServer>,
    tcp: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
    hold: Arc<Hold>,
) {
    let started = Instant::now();
    let mut first = [0u8; 1];
    let peeked = tokio::select! {
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, tcp.peek(&mut first)) => r,
        _ = shutdown.cancelled() => return,
    };
    match peeked {
        Ok(Ok(1)) => {}
        Ok(Ok(_)) => return,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "read failed");
            return;
        }
        Err(_) => {
            tracing::debug!("no request");
            return;
        }
    }
    if first[0] == TLS_HANDSHAKE {
        let accepted = tokio::time::timeout(HANDSHAKE_TIMEOUT, server.acceptor.accept(tcp)).await;
        let tls = match accepted {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::info!(error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::info!("TLS handshake timed out");
                return;
            }
        };
        let info = ConnInfo {
            peer,
            tls: true,
            shutdown: shutdown.clone(),
            _hold: hold,
        };
        http(tls, &server, info, shutdown).await;
    } else if server.settings.plain {
        let info = ConnInfo {
            peer,
            tls: false,
            shutdown: shutdown.clone(),
            _hold: hold,
        };
        http(tcp, &server, info, shutdown).await;
    } else {
        refuse_plain(tcp, &server.settings.hostname, shutdown).await;
    }
    tracing::debug!(secs = started.elapsed().as_secs_f32(), "connection closed");
}

/// Serves HTTP/1.1 (with upgrades) on `io` until the client closes or the
/// server shuts down, when idle keep-alive connections close at once and busy
/// ones after their response.
async fn http<I>(io: I, server: &HttpServer, info: ConnInfo, shutdown: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let router = server.router.clone();
    let span = tracing::Span::current();
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(info.clone());
        let mut router = router.clone();
        router.call(req).instrument(span.clone())
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}

/// A clear-text request on the HTTPS port: `400` with the URL to use. The
/// request's credentials, if any, are not looked at.
async fn refuse_plain(tcp: TcpStream, hostname: &str, shutdown: CancellationToken) {
    let port = tcp.local_addr().map(|a| a.port()).unwrap_or(443);
    let fallback = format!("{hostname}:{port}");
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let host = crate::router::request_host(req.headers()).unwrap_or_else(|| fallback.clone());
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        tracing::info!(method = %req.method(), path = %req.uri().path(), status = 400, "clear-text HTTP refused");
        let text = format!("This port speaks HTTPS only: use https://{host}{path}\n");
        let mut response = Response::new(Body::from(text));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        async move { Ok::<_, Infallible>(response) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        .keep_alive(false)
        .serve_connection(TokioIo::new(tcp), service);
    tokio::select! {
        _ = conn => {}
        _ = shutdown.cancelled() => {}
    }
}
