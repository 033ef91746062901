//! Network plumbing shared by every protocol server: TLS, the stream type that
//! switches from clear text to TLS (STARTTLS), connection limits, and the accept
//! loop with graceful shutdown.

#![forbid(unsafe_code)]

pub mod client_tls;
mod conn;
mod limits;
mod listen;
mod progress;
pub mod tls;

pub use conn::{Conn, TlsDetails, acceptor};
pub use limits::{ConnGuard, ConnLimiter, LimitExceeded};
pub use listen::{AcceptOptions, accept_loop};
pub use progress::{PROGRESS_OCTETS, Progress};
pub use tokio_util::sync::CancellationToken;
pub use tokio_util::task::TaskTracker;

/// A random id for a connection, put on every log line of its session.
pub fn session_id() -> String {
    format!("{:016X}", rand::random::<u64>())
}
