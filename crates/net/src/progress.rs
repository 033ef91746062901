//! A deadline per command against slow-loris clients.
//!
//! A timeout per read is reset by every byte, so a client that sends one byte
//! a second holds its connection (and a slot of the connection limits)
//! forever. [`Progress`] measures the limit from the client's last *progress*
//! instead: the server answering something (a command was complete), or a
//! fair amount of input ([`PROGRESS_OCTETS`], so that a message body or a
//! literal keeps its connection however long it takes at a reasonable rate).
//! Postfix's `smtpd_per_record_deadline` has the same aim.

use std::time::{Duration, Instant};

/// Input that counts as progress on its own: more than any command line but
/// the longest, far less than a body or literal sends per read at any usable rate.
pub const PROGRESS_OCTETS: usize = 1024;

/// When the client last made progress. See the module documentation.
#[derive(Debug, Clone)]
pub struct Progress {
    since: Instant,
    octets: usize,
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Progress {
    /// Starts counting now (the greeting).
    pub fn new() -> Progress {
        Progress {
            since: Instant::now(),
            octets: 0,
        }
    }

    /// The server answered: the client's last command was complete.
    pub fn answered(&mut self) {
        self.since = Instant::now();
        self.octets = 0;
    }

    /// `n` octets arrived.
    pub fn received(&mut self, n: usize) {
        self.octets = self.octets.saturating_add(n);
        if self.octets >= PROGRESS_OCTETS {
            self.answered();
        }
    }

    /// How long the next read may wait: `limit` from the last progress, so
    /// zero once the client has trickled for that long without progress.
    pub fn wait(&self, limit: Duration) -> Duration {
        limit.saturating_sub(self.since.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trickling_does_not_extend_the_deadline_but_progress_does() {
        let mut p = Progress::new();
        p.since -= Duration::from_secs(50);
        for _ in 0..PROGRESS_OCTETS - 1 {
            p.received(1);
        }
        let left = p.wait(Duration::from_secs(60));
        assert!(left <= Duration::from_secs(10), "{left:?}");
        p.received(1);
        assert!(p.wait(Duration::from_secs(60)) > Duration::from_secs(59));
        p.since -= Duration::from_secs(61);
        assert_eq!(p.wait(Duration::from_secs(60)), Duration::ZERO);
        p.answered();
        assert!(p.wait(Duration::from_secs(60)) > Duration::from_secs(59));
    }
}
