//! JMAP ids of store objects. They are the IMAP OBJECTID values (RFC 8474) of
//! the same objects, so a client speaking both protocols sees one identity:
//! mailboxes `F<decimal>`, emails `M<hex>`, threads `T<hex>`; and for what IMAP
//! has no id for: accounts `A<hex>`, whole-message or uploaded blobs `B<hex>`,
//! MIME parts `P<hex>_<part path with '-'>`, identities `I<hex>`, submissions
//! `S<hex>`.

use pochta_jmap_proto::Id;

fn id(s: String) -> Id {
    // Every id built here is a letter followed by [0-9a-f_-] (at most ~60
    // characters), always a valid JMAP id: an invariant, not input.
    Id::new(s).expect("ids built from numbers are valid JMAP ids")
}

fn hex(prefix: char, s: &str) -> Option<u64> {
    let h = s.strip_prefix(prefix)?;
    let canonical = !h.is_empty()
        && h.len() <= 16
        && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && (h == "0" || !h.starts_with('0'));
    if !canonical {
        return None;
    }
    u64::from_str_radix(h, 16).ok()
}

/// The account's JMAP id.
pub fn account(id_: u64) -> Id {
    id(format!("A{id_:x}"))
}
/// Parses [`account`].
pub fn parse_account(s: &str) -> Option<u64> {
    hex('A', s)
}

/// A mailbox's id (IMAP MAILBOXID).
pub fn mailbox(id_: u64) -> Id {
    id(format!("F{id_}"))
}
/// Parses [`mailbox`].
pub fn parse_mailbox(s: &str) -> Option<u64> {
    let d = s.strip_prefix('F')?;
    if d.is_empty() || d.len() > 20 || !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if d.len() > 1 && d.starts_with('0') {
        return None;
    }
    d.parse().ok()
}

/// An email's id (IMAP EMAILID).
pub fn email(id_: u64) -> Id {
    id(format!("M{id_:x}"))
}
/// Parses [`email`].
pub fn parse_email(s: &str) -> Option<u64> {
    hex('M', s)
}

/// A thread's id (IMAP THREADID).
pub fn thread(id_: u64) -> Id {
    id(format!("T{id_:x}"))
}
/// Parses [`thread`].
pub fn parse_thread(s: &str) -> Option<u64> {
    hex('T', s)
}

/// A stored blob (a whole message, or an upload).
pub fn blob(id_: u64) -> Id {
    id(format!("B{id_:x}"))
}

/// An identity.
pub fn identity(id_: u64) -> Id {
    id(format!("I{id_:x}"))
}
/// Parses [`identity`].
pub fn parse_identity(s: &str) -> Option<u64> {
    hex('I', s)
}

/// An email submission.
pub fn submission(id_: u64) -> Id {
    id(format!("S{id_:x}"))
}
/// Parses [`submission`].
pub fn parse_submission(s: &str) -> Option<u64> {
    hex('S', s)
}

/// A blob id as the download endpoint and Email/get understand it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobRef {
    /// A whole stored blob.
    Whole(u64),
    /// One MIME part of a stored message, decoded: the part path as in
    /// `MessageMeta::part` (1-based, e.g. `[2, 1]`).
    Part(u64, Vec<u32>),
}

/// The blob id of a MIME part of the message stored in `blob`.
pub fn part_blob(blob_id: u64, path: &[u32]) -> Id {
    let path: Vec<String> = path.iter().map(u32::to_string).collect();
    id(format!("P{blob_id:x}_{}", path.join("-")))
}

/// Parses [`blob`] and [`part_blob`] ids.
pub fn parse_blob(s: &str) -> Option<BlobRef> {
    if let Some(b) = hex('B', s) {
        return Some(BlobRef::Whole(b));
    }
    let rest = s.strip_prefix('P')?;
    let (h, path) = rest.split_once('_')?;
    let blob = hex('B', &format!("B{h}"))?;
    let mut parts = Vec::new();
    for p in path.split('-') {
        if p.is_empty() || p.len() > 9 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        parts.push(p.parse().ok()?);
    }
    if parts.is_empty() {
        return None;
    }
    Some(BlobRef::Part(blob, parts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(parse_account(account(26).as_str()), Some(26));
        assert_eq!(parse_mailbox(mailbox(12).as_str()), Some(12));
        assert_eq!(mailbox(12).as_str(), "F12");
        assert_eq!(email(255).as_str(), "Mff");
        assert_eq!(parse_email("Mff"), Some(255));
        assert_eq!(parse_email("M0ff"), None);
        assert_eq!(parse_email("MFF"), None);
        assert_eq!(parse_thread(thread(1).as_str()), Some(1));
        assert_eq!(parse_mailbox("F012"), None);
        assert_eq!(parse_blob("B1a"), Some(BlobRef::Whole(26)));
        assert_eq!(
            parse_blob(part_blob(26, &[2, 1]).as_str()),
            Some(BlobRef::Part(26, vec![2, 1]))
        );
        assert_eq!(part_blob(26, &[2, 1]).as_str(), "P1a_2-1");
        assert_eq!(parse_blob("P1a_"), None);
        assert_eq!(parse_blob("P1a_2--1"), None);
        assert_eq!(parse_identity(identity(3).as_str()), Some(3));
        assert_eq!(parse_submission(submission(3).as_str()), Some(3));
    }
}
