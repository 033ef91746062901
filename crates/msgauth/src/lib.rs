//! Authentication of mail between servers.
//!
//! On arrival at the MX: SPF (RFC 7208), DKIM (RFC 6376) and DMARC (RFC 7489)
//! through the `mail-auth` crate, summed up in an `Authentication-Results:` header
//! (RFC 8601). On relay: DKIM signatures for our own domains, with keys that
//! `pochta dkim generate` creates. Both need DNS; [`Dns`] is the one resolver the
//! relay's MX lookups use as well, so a test can point everything at one server.

#![forbid(unsafe_code)]

mod dns;
mod headers;
mod keys;
mod verify;

pub use dns::{Dns, DnsFailure, Nameservers};
pub use headers::{strip_forged_results, strip_header};
pub use keys::{DkimKeys, GeneratedKey, KeyAlgorithm, generate};
pub use verify::{CheckSettings, Checker, IpNet, Verdict};

/// Why a DKIM key could not be made, loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing a key file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The key file is not a key we understand.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Generating or signing failed.
    #[error("{0}")]
    Crypto(String),
}

/// Why the resolver could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("DNS resolver: {0}")]
pub struct DnsSetupError(pub String);
