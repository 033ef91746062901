//! The accept loop every listener runs.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::limits::{ConnGuard, ConnLimiter, LimitExceeded};

/// How a listener treats connections beyond the limits.
#[derive(Clone)]
pub struct AcceptOptions {
    /// Listener name for logs (`smtp`, `imaps`, ...).
    pub name: &'static str,
    /// Shared connection limits.
    pub limiter: Arc<ConnLimiter>,
    /// The protocol's refusal (e.g. SMTP `421 4.7.0 …`), written before closing a
    /// connection over the limit. Empty for implicit-TLS listeners, which cannot
    /// speak before the handshake.
    pub refusal: fn(LimitExceeded) -> Vec<u8>,
    /// Cancelled when the server shuts down: the loop stops accepting.
    pub shutdown: CancellationToken,
    /// Tracks the session tasks so that shutdown can wait for them.
    pub tracker: TaskTracker,
}

/// Accepts connections until shutdown, spawning `handle` for each one that fits
/// within the limits.
pub async fn accept_loop<F, Fut>(listener: TcpListener, opts: AcceptOptions, handle: F)
where
    F: Fn(TcpStream, SocketAddr, ConnGuard) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let handle = Arc::new(handle);
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = opts.shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(x) => {
                backoff = Duration::from_millis(10);
                x
            }
            Err(e) => {
                // Usually EMFILE: back off instead of spinning (the connections
                // that hold the descriptors will close).
                tracing::warn!(listener = opts.name, error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match opts.limiter.acquire(peer.ip()) {
            Ok(guard) => {
                let handle = handle.clone();
                opts.tracker
                    .spawn(async move { handle(stream, peer, guard).await });
            }
            Err(limit) => {
                tracing::warn!(listener = opts.name, %peer, %limit, "connection refused");
                let msg = (opts.refusal)(limit);
                opts.tracker.spawn(refuse(stream, msg));
            }
        }
    }
    tracing::debug!(listener = opts.name, "listener stopped");
}

async fn refuse(mut stream: TcpStream, msg: Vec<u8>) {
    if !msg.is_empty() {
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(&msg)).await;
    }
    let _ = stream.shutdown().await;
}
