//! The outbound queue runner: the transfer agent's second job, passing mail on
//! to the transfer agent at the destination, again and again until it works or
//! the message expires.
//!
//! The queue itself lives in the store (durable, in the same transaction as the
//! 250 that accepted the message). This crate decides *when* and *what*: it
//! leases due recipients, groups them by destination domain, runs deliveries
//! through a [`Transport`] (the SMTP client, or a fake in tests) within the
//! concurrency limits, turns each outcome into the next step (delivered, retry
//! later with a doubling interval, failed), and sends the sender a delivery
//! status notification (RFC 3464) when a recipient fails, is delayed long, or
//! is relayed to a server that will not report further.
//!
//! Every outcome is committed as soon as the transport reports it, one message
//! at a time, so a crash loses at most the outcome of the messages in flight:
//! those are attempted again, which may send a message twice only when the
//! crash hit between the remote server's 250 and our commit.

#![forbid(unsafe_code)]

pub mod dsn;
mod runner;

use std::sync::Arc;
use std::time::Duration;

use pochta_addr::{Address, Domain};
use pochta_store::{QueuedMessage, dsn_notify};

pub use runner::Queue;

/// How the runner behaves (from the `[queue]` configuration).
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// Our host name, for reports.
    pub hostname: String,
    /// Domains delivered here: reports to their users go straight to the mailbox.
    pub local_domains: Vec<Domain>,
    /// Wait after the first temporary failure; doubles with each attempt.
    pub retry: Duration,
    /// Longest wait between attempts.
    pub max_retry: Duration,
    /// Send a delay report when a message is still queued this long after it
    /// arrived; zero for never.
    pub delay_warning: Duration,
    /// Deliveries (connections) at once, overall.
    pub concurrency: usize,
    /// Deliveries (connections) at once to one destination domain.
    pub per_domain: usize,
    /// Most messages handed to one delivery (one connection, reused).
    pub messages_per_connection: usize,
    /// How long a leased recipient is reserved for an attempt: longer than any
    /// attempt can take. Leases are released at start-up.
    pub lease: Duration,
    /// Longest sleep between looks at the queue, so that changes made by
    /// another process (the `pochta queue` commands) are seen.
    pub poll: Duration,
}

impl QueueSettings {
    /// The defaults of the configuration, for `hostname`.
    pub fn new(hostname: impl Into<String>, local_domains: Vec<Domain>) -> QueueSettings {
        QueueSettings {
            hostname: hostname.into(),
            local_domains,
            retry: Duration::from_secs(5 * 60),
            max_retry: Duration::from_secs(4 * 3600),
            delay_warning: Duration::from_secs(4 * 3600),
            concurrency: 50,
            per_domain: 5,
            messages_per_connection: 100,
            lease: Duration::from_secs(3600),
            poll: Duration::from_secs(5),
        }
    }

    /// The wait before the next attempt after `attempts` failed ones (at least 1).
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempts.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.retry
            .checked_mul(factor)
            .unwrap_or(self.max_retry)
            .min(self.max_retry)
    }
}

/// One message for one destination domain: the unit a [`Transport`] delivers.
#[derive(Debug, Clone)]
pub struct Job {
    /// The envelope and the recipients at this domain.
    pub message: QueuedMessage,
    /// The message bytes, shared between the jobs of one message.
    pub body: Arc<Vec<u8>>,
}

impl Job {
    /// The `NOTIFY` conditions of a recipient of this job, for passing on.
    pub fn notify_of(&self, recipient: u64) -> u8 {
        self.message
            .recipients
            .iter()
            .find(|r| r.id == recipient)
            .map(|r| r.notify)
            .unwrap_or(0)
    }
}

/// Why a recipient was not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// RFC 3463 status (`4.4.1`, `5.1.1`...).
    pub status: String,
    /// The remote server's reply, when it refused (`550 5.1.1 ...`).
    pub reply: Option<String>,
    /// The remote host's name, when one was reached.
    pub remote: Option<String>,
    /// What happened, for people and `pochta queue list`.
    pub text: String,
}

/// The result of an attempt for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptResult {
    /// The next hop accepted it.
    Delivered {
        /// Who (host name and address).
        remote: String,
        /// Its reply.
        reply: String,
        /// The next hop accepted our DSN parameters, so further reports are its job.
        dsn_passed_on: bool,
    },
    /// Try again later.
    Temporary(Failure),
    /// Will never work.
    Permanent(Failure),
}

/// One job's results: one per recipient id of the job.
pub type JobResults = (Job, Vec<(u64, RcptResult)>);

/// Delivers jobs to a destination. The SMTP client implements it; tests use fakes.
#[async_trait::async_trait]
pub trait Transport: Send + Sync {
    /// Delivers `jobs`, all for `domain`, reusing connections where it can, and
    /// sends each job's results to `done` as soon as they are known. A job not
    /// reported by the time this returns counts as a temporary failure.
    async fn deliver(
        &self,
        domain: &str,
        jobs: Vec<Job>,
        done: tokio::sync::mpsc::UnboundedSender<JobResults>,
    );
}

/// Whether a recipient's `NOTIFY` asks for reports of this kind. Without NOTIFY,
/// failures and delays are reported (RFC 3461 §4.1 leaves delays to the MTA).
fn wants(notify: u8, kind: u8) -> bool {
    if notify & dsn_notify::NEVER != 0 {
        return false;
    }
    if notify == 0 {
        return kind != dsn_notify::SUCCESS;
    }
    notify & kind != 0
}

/// Is `address` in one of our domains?
fn is_local(settings: &QueueSettings, address: &Address) -> bool {
    !address.domain().is_literal() && settings.local_domains.contains(address.domain())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = QueueSettings::new("h", vec![]);
        assert_eq!(s.backoff(1), Duration::from_secs(300));
        assert_eq!(s.backoff(2), Duration::from_secs(600));
        assert_eq!(s.backoff(3), Duration::from_secs(1200));
        assert_eq!(s.backoff(6), Duration::from_secs(9600));
        assert_eq!(s.backoff(7), Duration::from_secs(4 * 3600));
        assert_eq!(s.backoff(200), Duration::from_secs(4 * 3600));
        assert_eq!(s.backoff(0), Duration::from_secs(300));
    }

    #[test]
    fn notify_conditions() {
        use dsn_notify::*;
        assert!(wants(0, FAILURE) && wants(0, DELAY) && !wants(0, SUCCESS));
        assert!(!wants(NEVER, FAILURE));
        assert!(wants(SUCCESS, SUCCESS) && !wants(SUCCESS, FAILURE));
        assert!(wants(FAILURE | DELAY, DELAY));
    }
}
