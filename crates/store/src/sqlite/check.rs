//! `pochta check`: verifies an embedded store against the rules the schema keeps
//! (see `docs/ARCHITECTURE.md`, "Rules the schema keeps").
//!
//! The check opens its own read-only connection and reads everything inside one
//! read transaction, so it sees one committed snapshot: it works on a stopped
//! store (also right after `kill -9`, when the WAL has not been checkpointed) and
//! on the store of a running server, whose writer it never blocks.
//!
//! What it verifies:
//! * SQLite's own `PRAGMA integrity_check` (`quick_check` for big stores unless
//!   [`CheckOptions::full`]), the schema version and the unique UID index;
//! * every row's owner exists (messages → mailbox and account, mailboxes →
//!   parent, queue recipients → queued message, uploads, objects, tokens, …);
//! * every message's blob exists with the message's size, and each blob's `refs`
//!   equals the messages, queue entries and uploads pointing at it;
//! * each mailbox's kept counters (`total`, `unseen`, `deleted`, `size`) equal the
//!   recomputed values, UIDs are unique and below `uidnext`, `highest_modseq`
//!   covers every message's MODSEQ, UIDVALIDITY is unique;
//! * the change log: MODSEQs never decrease along the log, the account's counter
//!   is at or above its last entry, every message's MODSEQ has its entry;
//! * threads: every message's thread id is set and not above its own id;
//! * the queue: blobs and sizes, at least one recipient still to try;
//! * stored messages parse (mail-parser) and their metadata decodes, for a
//!   sample of [`CheckOptions::parse_sample`] messages, or all with `full`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::{DB_FILE, SqliteStore, schema};
use crate::{Result, StoreError};

/// Databases larger than this get `PRAGMA quick_check` instead of the full
/// `integrity_check` (which also compares every index with its table), unless
/// [`CheckOptions::full`] is set.
const QUICK_CHECK_ABOVE: u64 = 512 * 1024 * 1024;
/// Problems kept in a report; more are only counted.
const MAX_PROBLEMS: usize = 1000;
/// Rows of `PRAGMA integrity_check` output read at most.
const MAX_SQLITE_ERRORS: i64 = 100;
/// System flag bits (see `Flags`): `\Seen` and `\Deleted`.
const SEEN: i64 = 1;
const DELETED: i64 = 8;

/// How thoroughly to check.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Run the full `integrity_check` however big the database is, and parse
    /// every stored message instead of a sample.
    pub full: bool,
    /// How many messages to parse when not `full` (evenly spread over all).
    pub parse_sample: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            full: false,
            parse_sample: 1000,
        }
    }
}

/// What kind of rule a [`Problem`] breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProblemKind {
    /// SQLite's own integrity check failed (damaged pages or indexes).
    Sqlite,
    /// The schema is not what this version expects (version, a missing index).
    Schema,
    /// A row points at an account, mailbox or queue entry that does not exist.
    Orphan,
    /// A blob is missing, has the wrong size, or its reference count is wrong.
    Blob,
    /// A mailbox's kept counters differ from the recomputed values.
    Counter,
    /// A UID is duplicated, zero, or not below the mailbox's UIDNEXT; or a
    /// UIDVALIDITY is repeated.
    Uid,
    /// A MODSEQ is above the mailbox's HIGHESTMODSEQ or the account's counter.
    ModSeq,
    /// The change log goes backwards, or lacks a message's entry.
    ChangeLog,
    /// A message's thread id, or a thread key, is invalid.
    Thread,
    /// A queue entry or recipient is inconsistent.
    Queue,
    /// A stored message does not parse, or its metadata does not decode.
    Parse,
}

impl ProblemKind {
    /// A short lower-case name, for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Sqlite => "sqlite",
            ProblemKind::Schema => "schema",
            ProblemKind::Orphan => "orphan",
            ProblemKind::Blob => "blob",
            ProblemKind::Counter => "counter",
            ProblemKind::Uid => "uid",
            ProblemKind::ModSeq => "modseq",
            ProblemKind::ChangeLog => "changelog",
            ProblemKind::Thread => "thread",
            ProblemKind::Queue => "queue",
            ProblemKind::Parse => "parse",
        }
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Which rule.
    pub kind: ProblemKind,
    /// What exactly, naming the rows involved.
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.kind, self.detail)
    }
}

/// What was looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckStats {
    /// `"integrity_check"` or `"quick_check"`.
    pub sqlite_check: &'static str,
    /// Accounts.
    pub accounts: u64,
    /// Mailboxes.
    pub mailboxes: u64,
    /// Message rows (one per copy in a mailbox).
    pub messages: u64,
    /// Blobs (stored message bodies and uploads).
    pub blobs: u64,
    /// Octets in blobs.
    pub blob_bytes: u64,
    /// Change-log entries.
    pub changes: u64,
    /// Queued messages (relay).
    pub queued: u64,
    /// Queue recipients.
    pub queue_recipients: u64,
    /// Thread keys.
    pub thread_keys: u64,
    /// JMAP uploads.
    pub uploads: u64,
    /// Messages parsed.
    pub parsed: u64,
    /// Of those, how many failed to parse or to decode their metadata.
    pub parse_failures: u64,
}

/// The outcome of [`SqliteStore::check`].
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// What was looked at.
    pub stats: CheckStats,
    /// Broken rules, at most 1000; see [`CheckReport::more`].
    pub problems: Vec<Problem>,
    /// Problems found beyond those listed.
    pub more: u64,
}

impl CheckReport {
    /// True when no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty() && self.more == 0
    }

    /// All problems found, listed or not.
    pub fn problem_count(&self) -> u64 {
        self.problems.len() as u64 + self.more
    }

    /// Whether any listed problem is of `kind`.
    pub fn has(&self, kind: ProblemKind) -> bool {
        self.problems.iter().any(|p| p.kind == kind)
    }

    fn add(&mut self, kind: ProblemKind, detail: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem { kind, detail });
        } else {
            self.more += 1;
        }
    }
}

impl SqliteStore {
    /// Verifies the store in `dir` (the data directory) without opening it for
    /// writing: a read-only connection and one read transaction, so this is safe
    /// while a server uses the store. Returns the problems found; an `Err` means
    /// the check itself could not run (no store, unreadable file).
    pub fn check(dir: &Path, options: &CheckOptions) -> Result<CheckReport> {
        let path = dir.join(DB_FILE);
        if !path.is_file() {
            return Err(StoreError::NotFound(format!(
                "no store at {} ({DB_FILE} missing)",
                dir.display()
            )));
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch("PRAGMA query_only = ON; BEGIN DEFERRED")?;
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let quick = !options.full && size > QUICK_CHECK_ABOVE;
        let mut report = CheckReport::default();
        let result = check_conn(&conn, options, quick, &mut report);
        let _ = conn.execute_batch("COMMIT");
        match result {
            Ok(()) => Ok(report),
            // SQLite refused to read on, or a damaged page gave nonsense rows:
            // that is the finding, not a failure to check.
            Err(e) if matches!(e, StoreError::Corrupt(_)) || report.has(ProblemKind::Sqlite) => {
                report.add(
                    ProblemKind::Sqlite,
                    format!("the database is damaged, checking stopped: {e}"),
                );
                Ok(report)
            }
            Err(e) => Err(e),
        }
    }
}

/// An account: its change counter.
struct AccountRow {
    modseq: i64,
    /// Changes at or below it may have been pruned from the log.
    log_floor: i64,
}

struct MailboxRow {
    account: i64,
    parent: i64,
    uidvalidity: i64,
    uidnext: i64,
    highest_modseq: i64,
    total: i64,
    unseen: i64,
    deleted: i64,
    size: i64,
}

/// A mailbox's values recomputed from its messages.
#[derive(Default)]
struct Recount {
    total: i64,
    unseen: i64,
    deleted: i64,
    size: i64,
    max_uid: i64,
    max_modseq: i64,
    max_modseq_id: i64,
}

/// The columns of a message row the checks read.
struct MessageRow {
    id: i64,
    account: i64,
    mailbox: i64,
    uid: i64,
    blob: i64,
    thread: i64,
    flags: i64,
    size: i64,
    modseq: i64,
}

impl MessageRow {
    const COLS: &str = "id, account_id, mailbox_id, uid, blob_id, thread_id, flags, size, modseq";

    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageRow> {
        Ok(MessageRow {
            id: r.get(0)?,
            account: r.get(1)?,
            mailbox: r.get(2)?,
            uid: r.get(3)?,
            blob: r.get(4)?,
            thread: r.get(5)?,
            flags: r.get(6)?,
            size: r.get(7)?,
            modseq: r.get(8)?,
        })
    }
}

struct BlobRow {
    refs: i64,
    size: i64,
    len: i64,
}

/// Runs every check on `c`, which is inside a read transaction.
fn check_conn(
    c: &Connection,
    options: &CheckOptions,
    quick: bool,
    report: &mut CheckReport,
) -> Result<()> {
    sqlite_integrity(c, quick, report)?;
    if !schema_ok(c, report)? {
        // The queries below assume the current schema.
        return Ok(());
    }
    let accounts = load_accounts(c, report)?;
    let mailboxes = check_mailbox_rows(c, &accounts, report)?;
    let blobs = load_blobs(c, report)?;
    let last_email_change = check_change_log(c, &accounts, report)?;
    let mut refs: HashMap<i64, i64> = HashMap::new();
    let ids = check_messages(
        c,
        &accounts,
        &mailboxes,
        &blobs,
        &last_email_change,
        &mut refs,
        report,
    )?;
    check_queue(c, &blobs, &mut refs, report)?;
    check_uploads(c, &accounts, &blobs, &mut refs, report)?;
    let mut blob_ids: Vec<&i64> = blobs.keys().collect();
    blob_ids.sort();
    for &id in blob_ids {
        let Some(b) = blobs.get(&id) else {
            continue;
        };
        let counted = refs.get(&id).copied().unwrap_or(0);
        if b.refs != counted {
            report.add(
                ProblemKind::Blob,
                format!(
                    "blob {id}: refs = {} but {counted} messages, queue entries and uploads point at it",
                    b.refs
                ),
            );
        }
    }
    check_account_tables(c, &accounts, report)?;
    check_thread_keys(c, &accounts, report)?;
    check_parse(c, &ids, options, report)
}

fn sqlite_integrity(c: &Connection, quick: bool, report: &mut CheckReport) -> Result<()> {
    let pragma = if quick {
        "quick_check"
    } else {
        "integrity_check"
    };
    report.stats.sqlite_check = pragma;
    let lines: Vec<String> = c
        .prepare(&format!("PRAGMA {pragma}({MAX_SQLITE_ERRORS})"))?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<_>>()?;
    for line in lines.into_iter().filter(|l| l != "ok") {
        report.add(ProblemKind::Sqlite, line);
    }
    Ok(())
}

/// Checks the schema version and the index that keeps UIDs unique; false when
/// the version is not this binary's (the other checks would not apply).
fn schema_ok(c: &Connection, report: &mut CheckReport) -> Result<bool> {
    let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version != schema::SCHEMA_VERSION {
        report.add(
            ProblemKind::Schema,
            format!(
                "schema version {version}, this pochta checks {} (start the matching `pochta serve` once to migrate)",
                schema::SCHEMA_VERSION
            ),
        );
        return Ok(false);
    }
    let unique_uids: Option<i64> = c
        .query_row(
            "SELECT il.\"unique\" FROM pragma_index_list('messages') il WHERE il.name = 'messages_by_uid'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if unique_uids != Some(1) {
        report.add(
            ProblemKind::Schema,
            "the unique index messages_by_uid (mailbox_id, uid) is missing".into(),
        );
    }
    Ok(true)
}

fn load_accounts(c: &Connection, report: &mut CheckReport) -> Result<HashMap<i64, AccountRow>> {
    let rows: Vec<(i64, i64, i64)> = c
        .prepare("SELECT id, modseq, log_floor FROM accounts")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    report.stats.accounts = rows.len() as u64;
    for &(id, modseq, log_floor) in &rows {
        if log_floor > modseq {
            report.add(
                ProblemKind::ChangeLog,
                format!("account {id}: its log floor {log_floor} is above its counter {modseq}"),
            );
        }
    }
    Ok(rows
        .into_iter()
        .map(|(id, modseq, log_floor)| (id, AccountRow { modseq, log_floor }))
        .collect())
}

/// Loads the mailboxes and checks what each row says on its own: owner, parent,
/// UIDVALIDITY.
fn check_mailbox_rows(
    c: &Connection,
    accounts: &HashMap<i64, AccountRow>,
    report: &mut CheckReport,
) -> Result<HashMap<i64, MailboxRow>> {
    let rows: Vec<(i64, MailboxRow)> = c
        .prepare(
            "SELECT id, account_id, parent_id, uidvalidity, uidnext, highest_modseq,
                    total, unseen, deleted, size FROM mailboxes",
        )?
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                MailboxRow {
                    account: r.get(1)?,
                    parent: r.get(2)?,
                    uidvalidity: r.get(3)?,
                    uidnext: r.get(4)?,
                    highest_modseq: r.get(5)?,
                    total: r.get(6)?,
                    unseen: r.get(7)?,
                    deleted: r.get(8)?,
                    size: r.get(9)?,
                },
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    report.stats.mailboxes = rows.len() as u64;
    let last_uidvalidity: i64 = c
        .query_row(
            "SELECT value FROM settings WHERE key = 'uidvalidity'",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    let mailboxes: HashMap<i64, MailboxRow> = rows.into_iter().collect();
    let mut uidvalidities: HashMap<i64, i64> = HashMap::new();
    let mut ids: Vec<&i64> = mailboxes.keys().collect();
    ids.sort();
    for &id in ids {
        let Some(m) = mailboxes.get(&id) else {
            continue;
        };
        match accounts.get(&m.account) {
            None => report.add(
                ProblemKind::Orphan,
                format!(
                    "mailbox {id} belongs to account {}, which does not exist",
                    m.account
                ),
            ),
            Some(a) if m.highest_modseq > a.modseq => report.add(
                ProblemKind::ModSeq,
                format!(
                    "mailbox {id}: HIGHESTMODSEQ {} is above its account's counter {}",
                    m.highest_modseq, a.modseq
                ),
            ),
            Some(_) => {}
        }
        if m.parent != 0 && mailboxes.get(&m.parent).map(|p| p.account) != Some(m.account) {
            report.add(
                ProblemKind::Orphan,
                format!(
                    "mailbox {id}: parent {} does not exist in account {}",
                    m.parent, m.account
                ),
            );
        }
        if m.uidnext < 1 {
            report.add(
                ProblemKind::Uid,
                format!("mailbox {id}: UIDNEXT {} is below 1", m.uidnext),
            );
        }
        if m.uidvalidity < 1 || m.uidvalidity > last_uidvalidity {
            report.add(
                ProblemKind::Uid,
                format!(
                    "mailbox {id}: UIDVALIDITY {} is not in 1..={last_uidvalidity} (the last one handed out)",
                    m.uidvalidity
                ),
            );
        }
        if let Some(other) = uidvalidities.insert(m.uidvalidity, id) {
            report.add(
                ProblemKind::Uid,
                format!(
                    "mailboxes {other} and {id} share UIDVALIDITY {}",
                    m.uidvalidity
                ),
            );
        }
    }
    Ok(mailboxes)
}

fn load_blobs(c: &Connection, report: &mut CheckReport) -> Result<HashMap<i64, BlobRow>> {
    // length() of a BLOB reads the record header only, not the overflow pages.
    let mut stmt = c.prepare("SELECT id, refs, size, length(data) FROM blobs")?;
    let mut rows = stmt.query([])?;
    let mut blobs = HashMap::new();
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let b = BlobRow {
            refs: r.get(1)?,
            size: r.get(2)?,
            len: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
        };
        if b.size != b.len {
            report.add(
                ProblemKind::Blob,
                format!(
                    "blob {id}: recorded size {} but {} octets stored",
                    b.size, b.len
                ),
            );
        }
        report.stats.blob_bytes += b.len.max(0) as u64;
        blobs.insert(id, b);
    }
    report.stats.blobs = blobs.len() as u64;
    Ok(blobs)
}

/// Walks the change log in order: MODSEQs never decrease within an account, the
/// account's counter is at or above its last entry. Returns, per message id,
/// the MODSEQ of its last "created" or "updated" entry.
fn check_change_log(
    c: &Connection,
    accounts: &HashMap<i64, AccountRow>,
    report: &mut CheckReport,
) -> Result<HashMap<i64, i64>> {
    let mut stmt =
        c.prepare("SELECT seq, account_id, modseq, kind, op, object_id FROM changes ORDER BY seq")?;
    let mut rows = stmt.query([])?;
    let mut last: HashMap<i64, (i64, i64)> = HashMap::new();
    let mut last_email: HashMap<i64, i64> = HashMap::new();
    let mut orphans: HashSet<i64> = HashSet::new();
    let mut count = 0u64;
    while let Some(r) = rows.next()? {
        count += 1;
        let (seq, account, modseq, kind, op, object): (i64, i64, i64, i64, i64, i64) = (
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        );
        if !accounts.contains_key(&account) {
            if orphans.insert(account) {
                report.add(
                    ProblemKind::Orphan,
                    format!("change {seq} belongs to account {account}, which does not exist"),
                );
            }
            continue;
        }
        if !(1..=5).contains(&kind) || !(1..=4).contains(&op) {
            report.add(
                ProblemKind::ChangeLog,
                format!("change {seq}: unknown kind {kind} or op {op}"),
            );
        }
        if let Some(&(prev_seq, prev)) = last.get(&account)
            && modseq < prev
        {
            report.add(
                ProblemKind::ChangeLog,
                format!(
                    "account {account}: change {seq} has MODSEQ {modseq}, below {prev} of the earlier change {prev_seq}"
                ),
            );
        }
        last.insert(account, (seq, modseq));
        if kind == 1 && (op == 1 || op == 2) {
            last_email.insert(object, modseq);
        }
    }
    report.stats.changes = count;
    let mut ids: Vec<&i64> = last.keys().collect();
    ids.sort();
    for account in ids {
        if let (Some(a), Some(&(seq, modseq))) = (accounts.get(account), last.get(account))
            && a.modseq < modseq
        {
            report.add(
                ProblemKind::ChangeLog,
                format!(
                    "account {account}: its counter (state) {} is below its last change {seq}'s MODSEQ {modseq}",
                    a.modseq
                ),
            );
        }
    }
    Ok(last_email)
}

/// One pass over every message row: owners, UIDs, blobs, MODSEQs, thread ids;
/// then each mailbox's counters against the recount. Counts each message's
/// blob reference into `refs`; returns the message ids in id order.
fn check_messages(
    c: &Connection,
    accounts: &HashMap<i64, AccountRow>,
    mailboxes: &HashMap<i64, MailboxRow>,
    blobs: &HashMap<i64, BlobRow>,
    last_email_change: &HashMap<i64, i64>,
    refs: &mut HashMap<i64, i64>,
    report: &mut CheckReport,
) -> Result<Vec<i64>> {
    let mut stmt = c.prepare(&format!(
        "SELECT {} FROM messages ORDER BY id",
        MessageRow::COLS
    ))?;
    let mut rows = stmt.query([])?;
    let mut recount: HashMap<i64, Recount> = HashMap::new();
    let mut uids: HashMap<(i64, i64), i64> = HashMap::new();
    let mut ids = Vec::new();
    while let Some(r) = rows.next()? {
        let MessageRow {
            id,
            account,
            mailbox,
            uid,
            blob,
            thread,
            flags,
            size,
            modseq,
        } = MessageRow::from_row(r)?;
        ids.push(id);
        *refs.entry(blob).or_default() += 1;
        match accounts.get(&account) {
            None => report.add(
                ProblemKind::Orphan,
                format!("message {id} belongs to account {account}, which does not exist"),
            ),
            Some(a) if modseq > a.modseq => report.add(
                ProblemKind::ModSeq,
                format!(
                    "message {id}: MODSEQ {modseq} is above its account's counter {}",
                    a.modseq
                ),
            ),
            Some(_) => {}
        }
        match mailboxes.get(&mailbox) {
            None => report.add(
                ProblemKind::Orphan,
                format!("message {id} is in mailbox {mailbox}, which does not exist"),
            ),
            Some(m) => {
                if m.account != account {
                    report.add(
                        ProblemKind::Orphan,
                        format!(
                            "message {id} of account {account} is in mailbox {mailbox} of account {}",
                            m.account
                        ),
                    );
                }
                if uid < 1 || uid >= m.uidnext {
                    report.add(
                        ProblemKind::Uid,
                        format!(
                            "message {id}: UID {uid} is not in 1..{} (mailbox {mailbox}'s UIDNEXT)",
                            m.uidnext
                        ),
                    );
                }
            }
        }
        if let Some(other) = uids.insert((mailbox, uid), id) {
            report.add(
                ProblemKind::Uid,
                format!("mailbox {mailbox}: UID {uid} is used by messages {other} and {id}"),
            );
        }
        match blobs.get(&blob) {
            None => report.add(
                ProblemKind::Blob,
                format!("message {id}: its blob {blob} does not exist"),
            ),
            Some(b) if b.size != size => report.add(
                ProblemKind::Blob,
                format!(
                    "message {id}: size {size} but its blob {blob} has {}",
                    b.size
                ),
            ),
            Some(_) => {}
        }
        // A message unchanged since before the floor may have lost its entry.
        let pruned = accounts
            .get(&account)
            .is_some_and(|a| modseq <= a.log_floor)
            && last_email_change.get(&id).is_none_or(|&m| m < modseq);
        if last_email_change.get(&id) != Some(&modseq) && !pruned {
            report.add(
                ProblemKind::ChangeLog,
                format!(
                    "message {id}: no change-log entry at its MODSEQ {modseq} (last one: {:?})",
                    last_email_change.get(&id)
                ),
            );
        }
        if thread < 1 || thread > id {
            report.add(
                ProblemKind::Thread,
                format!("message {id}: thread id {thread} is not in 1..={id}"),
            );
        }
        let n = recount.entry(mailbox).or_default();
        n.total += 1;
        n.unseen += i64::from(flags & SEEN == 0);
        n.deleted += i64::from(flags & DELETED != 0);
        n.size += size;
        n.max_uid = n.max_uid.max(uid);
        if modseq > n.max_modseq {
            n.max_modseq = modseq;
            n.max_modseq_id = id;
        }
    }
    report.stats.messages = ids.len() as u64;
    let mut mailbox_ids: Vec<&i64> = mailboxes.keys().collect();
    mailbox_ids.sort();
    let empty = Recount::default();
    for id in mailbox_ids {
        let Some(m) = mailboxes.get(id) else {
            continue;
        };
        let n = recount.get(id).unwrap_or(&empty);
        let kept = (m.total, m.unseen, m.deleted, m.size);
        let counted = (n.total, n.unseen, n.deleted, n.size);
        if kept != counted {
            report.add(
                ProblemKind::Counter,
                format!(
                    "mailbox {id}: counters (total, unseen, deleted, size) are {kept:?} but its messages give {counted:?}"
                ),
            );
        }
        if n.max_modseq > m.highest_modseq {
            report.add(
                ProblemKind::ModSeq,
                format!(
                    "mailbox {id}: HIGHESTMODSEQ {} is below message {}'s MODSEQ {}",
                    m.highest_modseq, n.max_modseq_id, n.max_modseq
                ),
            );
        }
    }
    Ok(ids)
}

fn check_queue(
    c: &Connection,
    blobs: &HashMap<i64, BlobRow>,
    refs: &mut HashMap<i64, i64>,
    report: &mut CheckReport,
) -> Result<()> {
    let queued: Vec<(i64, i64, i64)> = c
        .prepare("SELECT id, blob_id, size FROM queue ORDER BY id")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    report.stats.queued = queued.len() as u64;
    // (all recipients, recipients still to try) per queued message
    let mut rcpts: HashMap<i64, (u64, u64)> = HashMap::new();
    let mut stmt = c.prepare("SELECT id, queue_id, state FROM queue_rcpt ORDER BY id")?;
    let mut rows = stmt.query([])?;
    let ids: HashSet<i64> = queued.iter().map(|q| q.0).collect();
    while let Some(r) = rows.next()? {
        let (id, queue, state): (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        report.stats.queue_recipients += 1;
        if !ids.contains(&queue) {
            report.add(
                ProblemKind::Orphan,
                format!(
                    "queue recipient {id} belongs to queued message {queue}, which does not exist"
                ),
            );
        }
        if !(0..=2).contains(&state) {
            report.add(
                ProblemKind::Queue,
                format!("queue recipient {id}: unknown state {state}"),
            );
        }
        let e = rcpts.entry(queue).or_default();
        e.0 += 1;
        e.1 += u64::from(state == 0);
    }
    for (id, blob, size) in queued {
        *refs.entry(blob).or_default() += 1;
        match blobs.get(&blob) {
            None => report.add(
                ProblemKind::Blob,
                format!("queued message {id}: its blob {blob} does not exist"),
            ),
            Some(b) if b.size != size => report.add(
                ProblemKind::Blob,
                format!(
                    "queued message {id}: size {size} but its blob {blob} has {}",
                    b.size
                ),
            ),
            Some(_) => {}
        }
        match rcpts.get(&id) {
            None => report.add(
                ProblemKind::Queue,
                format!("queued message {id} has no recipients"),
            ),
            // Messages leave the queue when their last recipient is done.
            Some((_, 0)) => report.add(
                ProblemKind::Queue,
                format!("queued message {id} has no recipient left to try but is still queued"),
            ),
            Some(_) => {}
        }
    }
    Ok(())
}

fn check_uploads(
    c: &Connection,
    accounts: &HashMap<i64, AccountRow>,
    blobs: &HashMap<i64, BlobRow>,
    refs: &mut HashMap<i64, i64>,
    report: &mut CheckReport,
) -> Result<()> {
    let uploads: Vec<(i64, i64, i64)> = c
        .prepare("SELECT blob_id, account_id, size FROM uploads ORDER BY blob_id")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    report.stats.uploads = uploads.len() as u64;
    for (blob, account, size) in uploads {
        *refs.entry(blob).or_default() += 1;
        if !accounts.contains_key(&account) {
            report.add(
                ProblemKind::Orphan,
                format!("upload {blob} belongs to account {account}, which does not exist"),
            );
        }
        match blobs.get(&blob) {
            None => report.add(
                ProblemKind::Blob,
                format!("upload {blob}: its blob does not exist"),
            ),
            Some(b) if b.size != size => report.add(
                ProblemKind::Blob,
                format!("upload {blob}: size {size} but the blob has {}", b.size),
            ),
            Some(_) => {}
        }
    }
    Ok(())
}

/// Rows of the smaller per-account tables whose account is gone.
fn check_account_tables(
    c: &Connection,
    accounts: &HashMap<i64, AccountRow>,
    report: &mut CheckReport,
) -> Result<()> {
    for table in ["objects", "tokens", "vacation_sent"] {
        let owners: Vec<(i64, i64)> = c
            .prepare(&format!(
                "SELECT account_id, COUNT(*) FROM {table} GROUP BY account_id"
            ))?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (account, n) in owners {
            if !accounts.contains_key(&account) {
                report.add(
                    ProblemKind::Orphan,
                    format!(
                        "{n} rows of {table} belong to account {account}, which does not exist"
                    ),
                );
            }
        }
    }
    Ok(())
}

fn check_thread_keys(
    c: &Connection,
    accounts: &HashMap<i64, AccountRow>,
    report: &mut CheckReport,
) -> Result<()> {
    // Thread ids are message ids, handed out by AUTOINCREMENT.
    let last_message: i64 = c
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'messages'",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    let rows: Vec<(i64, i64, i64, i64)> = c
        .prepare(
            "SELECT account_id, COUNT(*), MIN(thread_id), MAX(thread_id) FROM thread_keys
             GROUP BY account_id ORDER BY account_id",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (account, n, min, max) in rows {
        report.stats.thread_keys += n as u64;
        if !accounts.contains_key(&account) {
            report.add(
                ProblemKind::Orphan,
                format!("{n} thread keys belong to account {account}, which does not exist"),
            );
        }
        if min < 1 || max > last_message {
            report.add(
                ProblemKind::Thread,
                format!(
                    "account {account}: thread keys point at thread ids {min}..={max}, outside the message ids handed out (1..={last_message})"
                ),
            );
        }
    }
    Ok(())
}

/// Parses stored messages (all, or an even sample) with mail-parser and decodes
/// their metadata.
fn check_parse(
    c: &Connection,
    ids: &[i64],
    options: &CheckOptions,
    report: &mut CheckReport,
) -> Result<()> {
    let step = if options.full || ids.len() <= options.parse_sample {
        1
    } else {
        ids.len().div_ceil(options.parse_sample.max(1))
    };
    let parser = mail_parser::MessageParser::default();
    let mut stmt = c.prepare(
        "SELECT m.meta, b.data FROM messages m JOIN blobs b ON b.id = m.blob_id WHERE m.id = ?1",
    )?;
    for &id in ids.iter().step_by(step) {
        // A missing blob is reported by check_messages already.
        let Some((meta, raw)) = stmt
            .query_row(params![id], |r| {
                // The metadata is a blob, or JSON text in older stores.
                let meta = r.get_ref(0)?.as_bytes().map_err(rusqlite::Error::from)?;
                Ok((meta.to_vec(), r.get::<_, Vec<u8>>(1)?))
            })
            .optional()?
        else {
            continue;
        };
        report.stats.parsed += 1;
        let mut failed = false;
        match pochta_message::MessageMeta::decode(&meta) {
            Err(e) => {
                failed = true;
                report.add(
                    ProblemKind::Parse,
                    format!("message {id}: its metadata does not decode: {e}"),
                );
            }
            Ok(m) if m.size != raw.len() as u64 => {
                failed = true;
                report.add(
                    ProblemKind::Parse,
                    format!(
                        "message {id}: its metadata describes {} octets, the blob has {}",
                        m.size,
                        raw.len()
                    ),
                );
            }
            Ok(_) => {}
        }
        if parser.parse(&raw).is_none() {
            failed = true;
            report.add(
                ProblemKind::Parse,
                format!(
                    "message {id}: mail-parser cannot parse its {} octets",
                    raw.len()
                ),
            );
        }
        report.stats.parse_failures += u64::from(failed);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests assert by unwrapping
mod tests {
    use super::*;
    use crate::*;
    use pochta_addr::Address;

    fn addr(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    fn raw(n: usize) -> Vec<u8> {
        format!(
            "From: a@remote.example\r\nTo: u@example.com\r\nMessage-ID: <m{n}@remote.example>\r\n\
             Subject: message {n}\r\n\r\nbody {n}\r\n"
        )
        .into_bytes()
    }

    fn delivery(n: usize, targets: Vec<DeliveryTarget>, outbound: Option<Outbound>) -> Delivery {
        let raw = raw(n);
        Delivery {
            meta: pochta_message::parse(&raw),
            raw,
            internal_date: 1_700_000_000,
            targets,
            outbound,
        }
    }

    fn outbound() -> Outbound {
        Outbound {
            mail_from: Some(addr("u@example.com")),
            recipients: vec![OutboundRecipient {
                address: addr("far@remote.example"),
                orcpt: None,
                notify: 0,
            }],
            envid: None,
            ret_full: true,
            account: None,
            expires_at: i64::MAX / 2,
            smtputf8: false,
            eightbit: false,
        }
    }

    /// A store with a bit of everything: two accounts, deliveries, a copy, a
    /// move, flag changes, an expunge, a queued message, an upload.
    async fn populated() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let mut accounts = Vec::new();
        for a in ["u@example.com", "v@example.com"] {
            let acc = store
                .create_account(NewAccount {
                    address: addr(a),
                    password_hash: "$argon2id$dummy".into(),
                    quota: None,
                })
                .await
                .unwrap();
            accounts.push(acc.id);
        }
        let (u, v) = (accounts[0], accounts[1]);
        let mut ids = Vec::new();
        for n in 0..6 {
            let d = store
                .deliver(delivery(
                    n,
                    vec![DeliveryTarget::inbox(u), DeliveryTarget::inbox(v)],
                    (n == 5).then(outbound),
                ))
                .await
                .unwrap();
            ids.push(d[0].id);
        }
        let boxes = store.mailboxes(u).await.unwrap();
        let archive = boxes
            .iter()
            .find(|m| m.role == Some(Role::Archive))
            .unwrap()
            .id;
        store
            .update_flags(
                u,
                &ids[0..3],
                FlagChange::Add(Flags::SEEN, vec!["$label".into()]),
            )
            .await
            .unwrap();
        store.copy_messages(u, &ids[1..2], archive).await.unwrap();
        store.move_messages(u, &ids[2..4], archive).await.unwrap();
        store
            .update_flags(u, &ids[4..5], FlagChange::Add(Flags::DELETED, vec![]))
            .await
            .unwrap();
        store.expunge(u, &ids[0..1]).await.unwrap();
        store
            .upload(v, b"uploaded".to_vec(), "text/plain")
            .await
            .unwrap();
        (dir, store)
    }

    /// A writable connection for corrupting the store behind its back.
    fn raw_conn(dir: &tempfile::TempDir) -> Connection {
        Connection::open(dir.path().join(DB_FILE)).unwrap()
    }

    fn check(dir: &tempfile::TempDir) -> CheckReport {
        SqliteStore::check(dir.path(), &CheckOptions::default()).unwrap()
    }

    /// A check that parses every message.
    fn full_check(dir: &tempfile::TempDir) -> CheckReport {
        SqliteStore::check(
            dir.path(),
            &CheckOptions {
                full: true,
                parse_sample: 0,
            },
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_healthy_store_passes_also_while_it_is_open() {
        let (dir, _store) = populated().await;
        let r = check(&dir);
        assert!(r.is_ok(), "{:?}", r.problems);
        assert_eq!(r.stats.accounts, 2);
        assert_eq!(
            r.stats.messages, 12,
            "6 + 6 delivered + 1 copy - 1 expunged"
        );
        assert_eq!(r.stats.queued, 1);
        assert_eq!(r.stats.uploads, 1);
        assert_eq!(r.stats.parsed, 12);
        assert_eq!(r.stats.parse_failures, 0);
        assert_eq!(r.stats.sqlite_check, "integrity_check");
    }

    #[tokio::test]
    async fn a_missing_store_is_an_error_not_a_report() {
        let dir = tempfile::tempdir().unwrap();
        assert!(SqliteStore::check(dir.path(), &CheckOptions::default()).is_err());
    }

    #[tokio::test]
    async fn a_deleted_blob_is_reported() {
        let (dir, _store) = populated().await;
        raw_conn(&dir)
            .execute(
                "DELETE FROM blobs WHERE id = (SELECT MIN(blob_id) FROM messages)",
                [],
            )
            .unwrap();
        let r = check(&dir);
        assert!(r.has(ProblemKind::Blob), "{:?}", r.problems);
        assert!(
            r.problems
                .iter()
                .any(|p| p.detail.contains("does not exist")),
            "{:?}",
            r.problems
        );
    }

    #[tokio::test]
    async fn a_blob_of_the_wrong_size_or_reference_count_is_reported() {
        let (dir, _store) = populated().await;
        let c = raw_conn(&dir);
        c.execute(
            "UPDATE blobs SET data = x'00' WHERE id = (SELECT MAX(blob_id) FROM messages)",
            [],
        )
        .unwrap();
        c.execute(
            "UPDATE blobs SET refs = refs + 1 WHERE id = (SELECT MIN(blob_id) FROM messages)",
            [],
        )
        .unwrap();
        let r = check(&dir);
        let blob: Vec<&Problem> = r
            .problems
            .iter()
            .filter(|p| p.kind == ProblemKind::Blob)
            .collect();
        assert!(
            blob.iter().any(|p| p.detail.contains("octets stored")),
            "{blob:?}"
        );
        assert!(blob.iter().any(|p| p.detail.contains("refs =")), "{blob:?}");
    }

    #[tokio::test]
    async fn a_changed_counter_is_reported() {
        let (dir, _store) = populated().await;
        raw_conn(&dir)
            .execute(
                "UPDATE mailboxes SET unseen = unseen + 1 WHERE id = (SELECT MIN(mailbox_id) FROM messages)",
                [],
            )
            .unwrap();
        let r = check(&dir);
        assert_eq!(r.problem_count(), 1, "{:?}", r.problems);
        assert!(r.has(ProblemKind::Counter));
    }

    #[tokio::test]
    async fn a_duplicated_uid_is_reported() {
        let (dir, _store) = populated().await;
        let c = raw_conn(&dir);
        // The unique index would refuse the duplicate: drop it first, as a
        // damaged or hand-edited database might have.
        c.execute_batch(
            "DROP INDEX messages_by_uid;
             UPDATE messages SET uid = (SELECT MIN(uid) FROM messages m2 WHERE m2.mailbox_id = messages.mailbox_id)
             WHERE id = (SELECT MAX(id) FROM messages WHERE mailbox_id = (SELECT MIN(mailbox_id) FROM messages));",
        )
        .unwrap();
        let r = check(&dir);
        assert!(r.has(ProblemKind::Schema), "{:?}", r.problems);
        assert!(
            r.problems
                .iter()
                .any(|p| p.kind == ProblemKind::Uid && p.detail.contains("is used by messages")),
            "{:?}",
            r.problems
        );
    }

    #[tokio::test]
    async fn a_uid_at_or_above_uidnext_is_reported() {
        let (dir, _store) = populated().await;
        raw_conn(&dir)
            .execute(
                "UPDATE mailboxes SET uidnext = 1 WHERE id = (SELECT MIN(mailbox_id) FROM messages)",
                [],
            )
            .unwrap();
        let r = check(&dir);
        assert!(r.has(ProblemKind::Uid), "{:?}", r.problems);
    }

    #[tokio::test]
    async fn modseq_and_change_log_damage_is_reported() {
        let (dir, _store) = populated().await;
        let c = raw_conn(&dir);
        c.execute(
            "UPDATE mailboxes SET highest_modseq = 0 WHERE id = (SELECT MIN(mailbox_id) FROM messages)",
            [],
        )
        .unwrap();
        let r = check(&dir);
        assert!(r.has(ProblemKind::ModSeq), "{:?}", r.problems);

        // An entry appended with an older MODSEQ: the log goes backwards.
        c.execute(
            "INSERT INTO changes (account_id, modseq, kind, op, object_id) SELECT MIN(id), 1, 2, 2, 1 FROM accounts",
            [],
        )
        .unwrap();
        // And an account whose counter is behind its own log.
        c.execute(
            "UPDATE accounts SET modseq = 1 WHERE id = (SELECT MAX(id) FROM accounts)",
            [],
        )
        .unwrap();
        let r = check(&dir);
        let log: Vec<&String> = r
            .problems
            .iter()
            .filter(|p| p.kind == ProblemKind::ChangeLog)
            .map(|p| &p.detail)
            .collect();
        assert!(log.iter().any(|d| d.contains("below")), "{log:?}");
        assert!(log.iter().any(|d| d.contains("counter")), "{log:?}");
    }

    #[tokio::test]
    async fn a_message_change_missing_from_the_log_is_reported() {
        let (dir, _store) = populated().await;
        raw_conn(&dir)
            .execute(
                "UPDATE messages SET modseq = modseq - 1 WHERE id = (SELECT MAX(id) FROM messages)",
                [],
            )
            .unwrap();
        let r = check(&dir);
        assert!(r.has(ProblemKind::ChangeLog), "{:?}", r.problems);
    }

    #[tokio::test]
    async fn orphans_and_bad_threads_are_reported() {
        let (dir, _store) = populated().await;
        let c = raw_conn(&dir);
        c.execute(
            "UPDATE messages SET mailbox_id = 9999 WHERE id = (SELECT MAX(id) FROM messages)",
            [],
        )
        .unwrap();
        c.execute(
            "UPDATE messages SET thread_id = 0 WHERE id = (SELECT MIN(id) FROM messages)",
            [],
        )
        .unwrap();
        let r = check(&dir);
        assert!(r.has(ProblemKind::Orphan), "{:?}", r.problems);
        assert!(r.has(ProblemKind::Thread), "{:?}", r.problems);
    }

    #[tokio::test]
    async fn queue_damage_is_reported() {
        let (dir, _store) = populated().await;
        let c = raw_conn(&dir);
        c.execute("UPDATE queue_rcpt SET state = 1", []).unwrap();
        let r = check(&dir);
        assert!(r.has(ProblemKind::Queue), "{:?}", r.problems);
        c.execute("UPDATE queue SET size = size + 1", []).unwrap();
        let r = check(&dir);
        assert!(
            r.problems
                .iter()
                .any(|p| p.kind == ProblemKind::Blob && p.detail.starts_with("queued message")),
            "{:?}",
            r.problems
        );
    }

    #[tokio::test]
    async fn unparseable_metadata_is_reported_and_counted() {
        let (dir, _store) = populated().await;
        raw_conn(&dir)
            .execute(
                "UPDATE messages SET meta = '{' WHERE id = (SELECT MAX(id) FROM messages)",
                [],
            )
            .unwrap();
        let r = full_check(&dir);
        assert!(r.has(ProblemKind::Parse), "{:?}", r.problems);
        assert_eq!(r.stats.parse_failures, 1);
        assert_eq!(r.stats.parsed, 12);
    }

    #[tokio::test]
    async fn metadata_stored_as_json_by_older_versions_is_still_read() {
        let (dir, store) = populated().await;
        let u = store
            .account(&addr("u@example.com"))
            .await
            .unwrap()
            .unwrap()
            .id;
        let inbox = store.mailboxes(u).await.unwrap()[0].id;
        let before = store
            .records_by_uid(u, inbox, &[(1, u32::MAX)])
            .await
            .unwrap();
        let light_before = store.light_records(u, inbox).await.unwrap();
        assert!(!before.is_empty());
        // What a store written before the binary form holds: JSON text, and
        // for some rows no light form yet ('').
        let conn = raw_conn(&dir);
        let rows: Vec<(i64, Vec<u8>)> = conn
            .prepare("SELECT id, meta FROM messages")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        for (i, (id, stored)) in rows.iter().enumerate() {
            assert_eq!(stored.first(), Some(&0), "new rows are binary");
            let meta = pochta_message::MessageMeta::decode(stored).unwrap();
            let light = if i % 2 == 0 {
                meta.light().to_json()
            } else {
                String::new()
            };
            conn.execute(
                "UPDATE messages SET meta = ?2, light = ?3 WHERE id = ?1",
                params![id, meta.to_json(), light],
            )
            .unwrap();
        }
        drop(conn);
        let after = store
            .records_by_uid(u, inbox, &[(1, u32::MAX)])
            .await
            .unwrap();
        let light_after = store.light_records(u, inbox).await.unwrap();
        let metas = |r: &[MessageRecord]| r.iter().map(|r| r.meta.clone()).collect::<Vec<_>>();
        assert_eq!(metas(&after), metas(&before));
        assert_eq!(metas(&light_after), metas(&light_before));
        let r = full_check(&dir);
        assert!(r.is_ok(), "{:?}", r.problems);
        assert_eq!(r.stats.parse_failures, 0);
    }

    #[tokio::test]
    async fn parsing_samples_a_large_store_unless_full() {
        let (dir, _store) = populated().await;
        let r = SqliteStore::check(
            dir.path(),
            &CheckOptions {
                full: false,
                parse_sample: 3,
            },
        )
        .unwrap();
        assert!(r.is_ok(), "{:?}", r.problems);
        assert!(
            (3..=4).contains(&r.stats.parsed),
            "parsed {}",
            r.stats.parsed
        );
    }

    #[tokio::test]
    async fn damaged_pages_are_reported_by_sqlite() {
        let (dir, store) = populated().await;
        drop(store);
        let c = raw_conn(&dir);
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        let page = c
            .query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))
            .unwrap() as usize;
        let pages = c
            .query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))
            .unwrap() as usize;
        drop(c);
        // Scribble over the middle of every page after the schema's: the
        // b-tree pages of tables and indexes no longer make sense.
        let path = dir.path().join(DB_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        for p in 2..pages {
            let at = p * page + page / 2;
            bytes[at..at + 64].fill(0xA5);
            bytes[p * page] = 0x0D; // a leaf table page header, mostly wrong
        }
        std::fs::write(&path, bytes).unwrap();
        let r = check(&dir);
        assert!(r.has(ProblemKind::Sqlite), "{:?}", r.problems);
    }
}
