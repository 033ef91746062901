//! The view of one message that FETCH, SEARCH, SORT and THREAD work on.
//!
//! The session builds a [`MessageView`] from the store's index row (UID, flags,
//! dates, sizes, the stored [`MessageMeta`]) and, only when an operation needs
//! them (see [`crate::fetch::needs_raw`] and [`crate::search::needs_raw`]), the
//! raw message bytes. Everything here borrows, so building views for a whole
//! mailbox costs no copies.

use pochta_message::MessageMeta;

/// System flags of a message as IMAP sees them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemFlags {
    /// `\Seen`.
    pub seen: bool,
    /// `\Answered`.
    pub answered: bool,
    /// `\Flagged`.
    pub flagged: bool,
    /// `\Deleted`.
    pub deleted: bool,
    /// `\Draft`.
    pub draft: bool,
    /// `\Recent` (IMAP4rev1 sessions only; the session decides which messages are
    /// recent for it).
    pub recent: bool,
}

impl SystemFlags {
    /// The set flags in IMAP spelling, in the order Dovecot writes them
    /// (`\Answered \Flagged \Deleted \Seen \Draft \Recent`), so FLAGS responses
    /// look the same as those of the servers clients are tested against.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        [
            (self.answered, "\\Answered"),
            (self.flagged, "\\Flagged"),
            (self.deleted, "\\Deleted"),
            (self.seen, "\\Seen"),
            (self.draft, "\\Draft"),
            (self.recent, "\\Recent"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
    }
}

/// Everything FETCH/SEARCH/SORT/THREAD may need of one message.
///
/// `raw` is `None` unless the caller loaded the bytes (see the `needs_raw`
/// helpers); operations that need the bytes and do not get them answer as if
/// the data were empty (FETCH returns [`crate::fetch::FetchError::MissingRaw`]).
#[derive(Debug, Clone, Copy)]
pub struct MessageView<'a> {
    /// Message sequence number in the session's view of the mailbox (1-based).
    pub msn: u32,
    /// The message's UID.
    pub uid: u32,
    /// The store's message id (JMAP Email id, IMAP EMAILID).
    pub email_id: u64,
    /// The store's thread id (JMAP Thread id, IMAP THREADID).
    pub thread_id: u64,
    /// System flags (and `\Recent`).
    pub flags: SystemFlags,
    /// Keywords, spelled as stored (`$Forwarded`, `NonJunk`, ...).
    pub keywords: &'a [String],
    /// INTERNALDATE in Unix seconds (UTC).
    pub internal_date: i64,
    /// RFC822.SIZE: octets of the stored message.
    pub size: u64,
    /// The message's MODSEQ (RFC 7162).
    pub modseq: u64,
    /// The metadata parsed at delivery.
    pub meta: &'a MessageMeta,
    /// The raw message, when loaded.
    pub raw: Option<&'a [u8]>,
}

impl<'a> MessageView<'a> {
    /// A view with the given identity and meta and everything else empty or zero
    /// (no flags, no keywords, date 0, `size` from the meta, no raw bytes); set the
    /// remaining fields with struct update syntax or assignments.
    pub fn new(msn: u32, uid: u32, meta: &'a MessageMeta) -> Self {
        MessageView {
            msn,
            uid,
            email_id: 0,
            thread_id: 0,
            flags: SystemFlags::default(),
            keywords: &[],
            internal_date: 0,
            size: meta.size,
            modseq: 0,
            meta,
            raw: None,
        }
    }

    /// The sent date (Date header, UTC) or, when it is missing or unparseable, the
    /// internal date, as RFC 5256 §2.2 defines it for SORT and THREAD.
    pub fn sent_date(&self) -> i64 {
        self.meta.sent_at.unwrap_or(self.internal_date)
    }
}

/// Year, month (1..=12) and day of a count of days since 1970-01-01 (proleptic
/// Gregorian; H. Hinnant's `civil_from_days`, the inverse of
/// [`crate::types::days_from_civil`]).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // day is 1..=31 and month 1..=12 by construction.
    (year, month as u32, day as u32)
}

/// The UTC calendar day (days since 1970-01-01) of a Unix time.
pub(crate) fn utc_day(unix: i64) -> i64 {
    unix.div_euclid(86_400)
}

/// English month abbreviations as IMAP dates spell them.
pub(crate) const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
