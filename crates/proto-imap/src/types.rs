//! The IMAP command syntax tree (RFC 9051 §6 and the extensions pochta serves).
//!
//! Strings that are names or texts are kept as bytes where the protocol does
//! (mailbox names arrive as modified UTF-7 from IMAP4rev1 clients, search strings
//! in the given CHARSET); interpretation belongs to the session.

/// A parsed command line (with its literals).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The client's tag (RFC 9051 `tag`: astring characters except `+`).
    pub tag: String,
    /// What to do.
    pub body: CommandBody,
}

/// Bytes that must not appear in logs (passwords, SASL responses): `Debug`
/// prints `***` instead.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Sensitive(pub Vec<u8>);

impl std::fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl From<Vec<u8>> for Sensitive {
    fn from(v: Vec<u8>) -> Sensitive {
        Sensitive(v)
    }
}

/// One message number or UID in a sequence set; `*` is the largest in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeqNum {
    /// A number (never 0).
    Value(u32),
    /// `*`.
    Star,
}

/// A sequence set (RFC 9051 `sequence-set`), or `$`: the saved search result
/// (RFC 5182 SEARCHRES).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceSet {
    /// Ranges as written; `a:b` with `a > b` means `b:a`; a single number is `(n, n)`.
    Ranges(Vec<(SeqNum, SeqNum)>),
    /// `$`.
    Saved,
}

/// A system flag or keyword (RFC 9051 `flag`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Flag {
    /// `\Seen`.
    Seen,
    /// `\Answered`.
    Answered,
    /// `\Flagged`.
    Flagged,
    /// `\Deleted`.
    Deleted,
    /// `\Draft`.
    Draft,
    /// `\Recent` (rev1; never settable).
    Recent,
    /// A keyword (`atom`), spelling as sent, e.g. `$Forwarded`, `NonJunk`.
    Keyword(String),
    /// Another `\Word` (flag-extension), spelling as sent.
    Extension(String),
}

/// A date (RFC 9051 `date`), for SEARCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date {
    /// Year, e.g. 2026.
    pub year: u16,
    /// 1..=12.
    pub month: u8,
    /// 1..=31 (validated against the month).
    pub day: u8,
}

/// A date-time (RFC 9051 `date-time`), for APPEND.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    /// The date.
    pub date: Date,
    /// 0..=23.
    pub hour: u8,
    /// 0..=59.
    pub minute: u8,
    /// 0..=60.
    pub second: u8,
    /// Zone offset in minutes east of UTC (`-0800` is -480).
    pub zone_minutes: i16,
}

impl DateTime {
    /// Seconds since the Unix epoch (UTC).
    pub fn unix(&self) -> i64 {
        let days = days_from_civil(
            i64::from(self.date.year),
            i64::from(self.date.month),
            i64::from(self.date.day),
        );
        days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
            - i64::from(self.zone_minutes) * 60
    }
}

impl Date {
    /// Midnight UTC of this date, in Unix seconds (SEARCH compares dates
    /// disregarding time and zone, RFC 9051 §6.4.4).
    pub fn unix(&self) -> i64 {
        days_from_civil(
            i64::from(self.year),
            i64::from(self.month),
            i64::from(self.day),
        ) * 86_400
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// SELECT/EXAMINE parameters (RFC 7162).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelectParams {
    /// `(CONDSTORE)`.
    pub condstore: bool,
    /// `(QRESYNC (uidvalidity modseq [known-uids [(seq-match)]]))`.
    pub qresync: Option<QResync>,
}

/// The QRESYNC select parameter (RFC 7162 §3.2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QResync {
    /// The UIDVALIDITY the client knows.
    pub uid_validity: u32,
    /// The last MODSEQ the client knows.
    pub modseq: u64,
    /// UIDs the client knows (optional).
    pub known_uids: Option<SequenceSet>,
    /// Message sequence numbers and the matching UIDs (optional).
    pub seq_match: Option<(SequenceSet, SequenceSet)>,
}

/// LIST selection options (RFC 5258 §3.1, RFC 6154 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListSelect {
    /// `SUBSCRIBED`.
    Subscribed,
    /// `REMOTE`.
    Remote,
    /// `RECURSIVEMATCH`.
    RecursiveMatch,
    /// `SPECIAL-USE`.
    SpecialUse,
}

/// LIST return options (RFC 5258 §3.2, RFC 5819, RFC 6154).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListReturn {
    /// `SUBSCRIBED`.
    Subscribed,
    /// `CHILDREN`.
    Children,
    /// `SPECIAL-USE`.
    SpecialUse,
    /// `STATUS (items)` (LIST-STATUS, RFC 5819).
    Status(Vec<StatusItem>),
}

/// STATUS data items (RFC 9051 §6.3.11, RFC 7162, RFC 8438, RFC 8474).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusItem {
    /// `MESSAGES`.
    Messages,
    /// `UIDNEXT`.
    UidNext,
    /// `UIDVALIDITY`.
    UidValidity,
    /// `UNSEEN`.
    Unseen,
    /// `DELETED`.
    Deleted,
    /// `SIZE` (RFC 8438).
    Size,
    /// `RECENT` (rev1).
    Recent,
    /// `HIGHESTMODSEQ` (RFC 7162).
    HighestModSeq,
    /// `MAILBOXID` (RFC 8474).
    MailboxId,
    /// `APPENDLIMIT` (RFC 7889).
    AppendLimit,
}

/// One message of an APPEND (several with MULTIAPPEND, RFC 3502).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendMessage {
    /// Initial flags.
    pub flags: Vec<Flag>,
    /// Internal date, if given.
    pub date: Option<DateTime>,
    /// The message.
    pub data: Vec<u8>,
    /// True for `~{n}` literal8 (RFC 3516 BINARY): may contain NUL.
    pub binary: bool,
}

/// Search return options (RFC 4731 ESEARCH, RFC 5182 SEARCHRES).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchReturn {
    /// `MIN`.
    Min,
    /// `MAX`.
    Max,
    /// `ALL`.
    All,
    /// `COUNT`.
    Count,
    /// `SAVE`.
    Save,
}

/// A search key (RFC 9051 §6.4.4 and extensions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    /// Several keys that must all match (the top level, and parenthesised lists).
    And(Vec<SearchKey>),
    /// `ALL`.
    All,
    /// `ANSWERED`.
    Answered,
    /// `BCC string`.
    Bcc(Vec<u8>),
    /// `BEFORE date` (internal date).
    Before(Date),
    /// `BODY string`.
    Body(Vec<u8>),
    /// `CC string`.
    Cc(Vec<u8>),
    /// `DELETED`.
    Deleted,
    /// `DRAFT`.
    Draft,
    /// `FLAGGED`.
    Flagged,
    /// `FROM string`.
    From(Vec<u8>),
    /// `HEADER field-name string`.
    Header(String, Vec<u8>),
    /// `KEYWORD flag-keyword`.
    Keyword(String),
    /// `LARGER n`.
    Larger(u64),
    /// `NEW` (rev1: recent and unseen).
    New,
    /// `NOT key`.
    Not(Box<SearchKey>),
    /// `OLD` (rev1).
    Old,
    /// `ON date`.
    On(Date),
    /// `OR key key`.
    Or(Box<SearchKey>, Box<SearchKey>),
    /// `RECENT` (rev1).
    Recent,
    /// `SEEN`.
    Seen,
    /// `SENTBEFORE date`.
    SentBefore(Date),
    /// `SENTON date`.
    SentOn(Date),
    /// `SENTSINCE date`.
    SentSince(Date),
    /// `SINCE date`.
    Since(Date),
    /// `SMALLER n`.
    Smaller(u64),
    /// `SUBJECT string`.
    Subject(Vec<u8>),
    /// `TEXT string` (header and body).
    Text(Vec<u8>),
    /// `TO string`.
    To(Vec<u8>),
    /// `UID sequence-set` (or `UID $`).
    Uid(SequenceSet),
    /// `UNANSWERED`.
    Unanswered,
    /// `UNDELETED`.
    Undeleted,
    /// `UNDRAFT`.
    Undraft,
    /// `UNFLAGGED`.
    Unflagged,
    /// `UNKEYWORD flag-keyword`.
    Unkeyword(String),
    /// `UNSEEN`.
    Unseen,
    /// A bare sequence set of message numbers (or `$`).
    SequenceSet(SequenceSet),
    /// `MODSEQ [entry-name entry-type] n` (RFC 7162 §3.1.5; the entry is ignored).
    ModSeq(u64),
    /// `EMAILID id` (RFC 8474).
    EmailId(String),
    /// `THREADID id` (RFC 8474).
    ThreadId(String),
    /// `OLDER n` seconds (RFC 5032 WITHIN).
    Older(u64),
    /// `YOUNGER n` seconds (RFC 5032 WITHIN).
    Younger(u64),
}

/// A body section specifier (RFC 9051 `section`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Part numbers (`1.2.3`); empty for the whole message.
    pub part: Vec<u32>,
    /// What of that part.
    pub text: Option<SectionText>,
}

/// The text part of a section specifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    /// `HEADER`.
    Header,
    /// `HEADER.FIELDS (names)`; names as sent.
    HeaderFields(Vec<String>),
    /// `HEADER.FIELDS.NOT (names)`.
    HeaderFieldsNot(Vec<String>),
    /// `TEXT`.
    Text,
    /// `MIME` (only after part numbers).
    Mime,
}

/// A FETCH data item (RFC 9051 §6.4.5 and extensions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAttr {
    /// `ENVELOPE`.
    Envelope,
    /// `FLAGS`.
    Flags,
    /// `INTERNALDATE`.
    InternalDate,
    /// `RFC822.SIZE`.
    Rfc822Size,
    /// `RFC822` (= `BODY[]`, sets \Seen).
    Rfc822,
    /// `RFC822.HEADER` (= `BODY.PEEK[HEADER]`).
    Rfc822Header,
    /// `RFC822.TEXT` (= `BODY[TEXT]`, sets \Seen).
    Rfc822Text,
    /// `BODY` (non-extensible BODYSTRUCTURE).
    Body,
    /// `BODYSTRUCTURE`.
    BodyStructure,
    /// `UID`.
    Uid,
    /// `BODY[section]<partial>` or `BODY.PEEK[...]`.
    BodySection {
        /// `.PEEK`: do not set \Seen.
        peek: bool,
        /// The section.
        section: Section,
        /// `<offset.length>`.
        partial: Option<(u64, u64)>,
    },
    /// `BINARY[part]<partial>` or `BINARY.PEEK[...]` (RFC 3516).
    Binary {
        /// `.PEEK`.
        peek: bool,
        /// Part numbers.
        part: Vec<u32>,
        /// `<offset.length>`.
        partial: Option<(u64, u64)>,
    },
    /// `BINARY.SIZE[part]`.
    BinarySize {
        /// Part numbers.
        part: Vec<u32>,
    },
    /// `MODSEQ` (RFC 7162).
    ModSeq,
    /// `EMAILID` (RFC 8474).
    EmailId,
    /// `THREADID` (RFC 8474).
    ThreadId,
    /// `PREVIEW` or `PREVIEW (LAZY)` (RFC 8970).
    Preview {
        /// `LAZY` modifier.
        lazy: bool,
    },
    /// `SAVEDATE` (RFC 8514).
    SaveDate,
}

/// FETCH modifiers (RFC 7162).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchModifiers {
    /// `CHANGEDSINCE n`.
    pub changed_since: Option<u64>,
    /// `VANISHED` (only with UID FETCH and CHANGEDSINCE).
    pub vanished: bool,
}

/// How STORE changes flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    /// `FLAGS`.
    Replace,
    /// `+FLAGS`.
    Add,
    /// `-FLAGS`.
    Remove,
}

/// A SORT criterion (RFC 5256, RFC 5957).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortCriterion {
    /// `REVERSE` before the key.
    pub reverse: bool,
    /// The key.
    pub key: SortKey,
}

/// SORT keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// `ARRIVAL` (internal date).
    Arrival,
    /// `CC`.
    Cc,
    /// `DATE` (sent date, falling back to internal date).
    Date,
    /// `FROM`.
    From,
    /// `SIZE`.
    Size,
    /// `SUBJECT` (base subject).
    Subject,
    /// `TO`.
    To,
    /// `DISPLAYFROM` (RFC 5957).
    DisplayFrom,
    /// `DISPLAYTO` (RFC 5957).
    DisplayTo,
}

/// THREAD algorithms (RFC 5256).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadAlgorithm {
    /// `ORDEREDSUBJECT`.
    OrderedSubject,
    /// `REFERENCES`.
    References,
}

/// QUOTA resource limits for SETQUOTA (RFC 9208).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaLimit {
    /// Resource name, upper-cased (`STORAGE`, `MESSAGE`, ...).
    pub resource: String,
    /// The limit.
    pub limit: u64,
}

/// Every command pochta understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandBody {
    /// `CAPABILITY`.
    Capability,
    /// `NOOP`.
    Noop,
    /// `LOGOUT`.
    Logout,
    /// `ID (k v ...)` or `ID NIL` (RFC 2971); values may be NIL.
    Id(Option<Vec<(String, Option<String>)>>),
    /// `STARTTLS`.
    StartTls,
    /// `AUTHENTICATE mechanism [initial-response]` (RFC 4959 SASL-IR); the initial
    /// response is the raw base64 text (`=` for empty).
    Authenticate {
        /// Mechanism name as sent.
        mechanism: String,
        /// Base64 initial response as sent (it carries the password for PLAIN).
        initial: Option<Sensitive>,
    },
    /// `LOGIN user password`.
    Login {
        /// User name (astring).
        user: Vec<u8>,
        /// Password (astring).
        password: Sensitive,
    },
    /// `ENABLE capability...` (RFC 5161), upper-cased.
    Enable(Vec<String>),
    /// `SELECT mailbox [(params)]`.
    Select {
        /// Mailbox name as sent (mailbox = "INBOX" / astring).
        mailbox: Vec<u8>,
        /// CONDSTORE/QRESYNC.
        params: SelectParams,
    },
    /// `EXAMINE mailbox [(params)]`.
    Examine {
        /// Mailbox name as sent.
        mailbox: Vec<u8>,
        /// CONDSTORE/QRESYNC.
        params: SelectParams,
    },
    /// `CREATE mailbox [(USE (attrs))]` (RFC 6154 CREATE-SPECIAL-USE).
    Create {
        /// Mailbox name as sent.
        mailbox: Vec<u8>,
        /// Special-use attributes requested, as sent (e.g. `\Archive`).
        special_use: Vec<String>,
    },
    /// `DELETE mailbox`.
    Delete {
        /// Mailbox name as sent.
        mailbox: Vec<u8>,
    },
    /// `RENAME from to`.
    Rename {
        /// Existing name.
        from: Vec<u8>,
        /// New name.
        to: Vec<u8>,
    },
    /// `SUBSCRIBE mailbox`.
    Subscribe {
        /// Mailbox name as sent.
        mailbox: Vec<u8>,
    },
    /// `UNSUBSCRIBE mailbox`.
    Unsubscribe {
        /// Mailbox name as sent.
        mailbox: Vec<u8>,
    },
    /// `LIST [(select-opts)] reference (pattern | (patterns)) [RETURN (opts)]`.
    List {
        /// Selection options (LIST-EXTENDED).
        select: Vec<ListSelect>,
        /// Reference name as sent.
        reference: Vec<u8>,
        /// One or more patterns as sent (list-mailbox: may contain `*` and `%`).
        patterns: Vec<Vec<u8>>,
        /// Return options.
        returns: Vec<ListReturn>,
    },
    /// `LSUB reference pattern` (rev1).
    Lsub {
        /// Reference name as sent.
        reference: Vec<u8>,
        /// Pattern as sent.
        pattern: Vec<u8>,
    },
    /// `NAMESPACE`.
    Namespace,
    /// `STATUS mailbox (items)`.
    Status {
        /// Mailbox name as sent.
        mailbox: Vec<u8>,
        /// Requested items.
        items: Vec<StatusItem>,
    },
    /// `APPEND mailbox [flags] [date] literal [...]` (MULTIAPPEND: several).
    Append {
        /// Mailbox name as sent.
        mailbox: Vec<u8>,
        /// One or more messages.
        messages: Vec<AppendMessage>,
    },
    /// `IDLE` (RFC 2177); the session then waits for `DONE`.
    Idle,
    /// `CHECK` (rev1).
    Check,
    /// `CLOSE`.
    Close,
    /// `UNSELECT` (RFC 3691).
    Unselect,
    /// `EXPUNGE`.
    Expunge,
    /// `UID EXPUNGE set` (RFC 4315).
    UidExpunge(SequenceSet),
    /// `[UID] SEARCH [RETURN (opts)] [CHARSET c] keys`.
    Search {
        /// UID SEARCH.
        uid: bool,
        /// `RETURN (...)`: `None` when absent (plain SEARCH response), `Some(vec![])`
        /// for `RETURN ()` (same as `RETURN (ALL)`).
        returns: Option<Vec<SearchReturn>>,
        /// `CHARSET`, upper-cased.
        charset: Option<String>,
        /// The criteria (an `And` of the top-level keys).
        criteria: SearchKey,
    },
    /// `[UID] FETCH set items [(modifiers)]`.
    Fetch {
        /// UID FETCH.
        uid: bool,
        /// Which messages.
        set: SequenceSet,
        /// Requested items (macros ALL/FAST/FULL expanded).
        attrs: Vec<FetchAttr>,
        /// CHANGEDSINCE / VANISHED.
        modifiers: FetchModifiers,
    },
    /// `[UID] STORE set [(UNCHANGEDSINCE n)] [+|-]FLAGS[.SILENT] flags`.
    Store {
        /// UID STORE.
        uid: bool,
        /// Which messages.
        set: SequenceSet,
        /// `UNCHANGEDSINCE` (RFC 7162).
        unchanged_since: Option<u64>,
        /// Replace, add or remove.
        mode: StoreMode,
        /// `.SILENT`.
        silent: bool,
        /// The flags.
        flags: Vec<Flag>,
    },
    /// `[UID] COPY set mailbox`.
    Copy {
        /// UID COPY.
        uid: bool,
        /// Which messages.
        set: SequenceSet,
        /// Destination as sent.
        mailbox: Vec<u8>,
    },
    /// `[UID] MOVE set mailbox` (RFC 6851).
    Move {
        /// UID MOVE.
        uid: bool,
        /// Which messages.
        set: SequenceSet,
        /// Destination as sent.
        mailbox: Vec<u8>,
    },
    /// `[UID] SORT [RETURN (opts)] (criteria) charset keys` (RFC 5256, ESORT RFC 5267).
    Sort {
        /// UID SORT.
        uid: bool,
        /// ESORT return options, if given.
        returns: Option<Vec<SearchReturn>>,
        /// Sort criteria.
        criteria: Vec<SortCriterion>,
        /// Charset, upper-cased.
        charset: String,
        /// Search keys.
        search: SearchKey,
    },
    /// `[UID] THREAD algorithm charset keys` (RFC 5256).
    Thread {
        /// UID THREAD.
        uid: bool,
        /// Algorithm.
        algorithm: ThreadAlgorithm,
        /// Charset, upper-cased.
        charset: String,
        /// Search keys.
        search: SearchKey,
    },
    /// `GETQUOTA root` (RFC 9208).
    GetQuota {
        /// Quota root name as sent.
        root: Vec<u8>,
    },
    /// `GETQUOTAROOT mailbox`.
    GetQuotaRoot {
        /// Mailbox name as sent.
        mailbox: Vec<u8>,
    },
    /// `SETQUOTA root (limits)`.
    SetQuota {
        /// Quota root as sent.
        root: Vec<u8>,
        /// Limits.
        limits: Vec<QuotaLimit>,
    },
    /// `COMPRESS mechanism` (RFC 4978), upper-cased.
    Compress(String),
}
