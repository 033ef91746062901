//! One error type for the user agent, sorted so that the binary can print what a
//! person understands and pick an exit code (usage error vs. server error).

use thiserror::Error;

/// What went wrong, in the terms the user can act on.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The command or the configuration is wrong (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The server could not be reached at all.
    #[error("cannot reach {server}: {reason}")]
    Unreachable {
        /// `host:port` or URL.
        server: String,
        /// The system's reason (refused, timed out, no such host…).
        reason: String,
    },
    /// The server's TLS certificate was not accepted.
    #[error(
        "the TLS certificate of {server} was rejected: {reason} (for a self-signed test server, add the account with --accept-invalid-certs)"
    )]
    Certificate {
        /// `host:port` or URL.
        server: String,
        /// rustls's reason.
        reason: String,
    },
    /// The server refused the login.
    #[error("{server} refused the login for {user}: {reply}")]
    Auth {
        /// `host:port` or URL.
        server: String,
        /// The login name used.
        user: String,
        /// The server's reply text.
        reply: String,
    },
    /// A folder (mailbox) that does not exist.
    #[error("no folder named {0:?}")]
    NoSuchFolder(String),
    /// A message id that does not exist (any more).
    #[error("no message with id {0:?}")]
    NoSuchMessage(String),
    /// The server answered with an error or broke the protocol.
    #[error("{server}: {message}")]
    Protocol {
        /// `host:port` or URL.
        server: String,
        /// What it said or did.
        message: String,
    },
    /// A local file or directory problem (Maildir, attachments, config).
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
}

impl ClientError {
    /// Whether this is the user's mistake (wrong arguments or configuration)
    /// rather than the server's or the network's.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ClientError::Usage(_) | ClientError::NoSuchFolder(_) | ClientError::NoSuchMessage(_)
        )
    }

    /// A protocol error from `server` with `message`.
    pub fn protocol(server: impl Into<String>, message: impl Into<String>) -> ClientError {
        ClientError::Protocol {
            server: server.into(),
            message: message.into(),
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> ClientError {
        ClientError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

/// Results of the user agent.
pub type Result<T> = std::result::Result<T, ClientError>;
