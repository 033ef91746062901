//! The SQLite schema and connection settings.
//!
//! Why SQLite holds message bodies too (table `blobs`) rather than one file per
//! message: a delivery must be durable before SMTP says 250, and with bodies and
//! metadata in one WAL database a whole batch of deliveries becomes durable with a
//! single fsync (group commit) and can never be half-written (no orphan files, no
//! index entries without bodies). Readers use their own connections and see the
//! last committed snapshot, so a long write (a 50 MiB message) does not stall them.

use rusqlite::Connection;

use crate::Result;

/// Bumped whenever the schema changes; older databases are migrated on open.
pub const SCHEMA_VERSION: i64 = 6;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS settings (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

-- AUTOINCREMENT everywhere an id is visible to clients: ids must never be reused.
CREATE TABLE IF NOT EXISTS accounts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    address       TEXT NOT NULL UNIQUE,     -- lookup key: lower-case local part @ A-label domain
    display       TEXT NOT NULL,            -- the address as first given
    password_hash TEXT NOT NULL,            -- PHC string (argon2id)
    created_at    INTEGER NOT NULL,
    quota         INTEGER,
    modseq        INTEGER NOT NULL DEFAULT 0, -- the account's change counter (state)
    log_floor     INTEGER NOT NULL DEFAULT 0  -- the change log holds every change after this MODSEQ (schema 6)
);

CREATE TABLE IF NOT EXISTS aliases (
    alias   TEXT NOT NULL,                  -- lookup key
    target  TEXT NOT NULL,                  -- lookup key of an account or another alias
    display TEXT NOT NULL,
    PRIMARY KEY (alias, target)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS mailboxes (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id     INTEGER NOT NULL,
    parent_id      INTEGER NOT NULL DEFAULT 0,   -- 0: top level
    name           TEXT NOT NULL,
    role           TEXT,
    uidvalidity    INTEGER NOT NULL,
    uidnext        INTEGER NOT NULL DEFAULT 1,
    highest_modseq INTEGER NOT NULL DEFAULT 0,
    total          INTEGER NOT NULL DEFAULT 0,
    unseen         INTEGER NOT NULL DEFAULT 0,
    deleted        INTEGER NOT NULL DEFAULT 0,
    size           INTEGER NOT NULL DEFAULT 0,
    subscribed     INTEGER NOT NULL DEFAULT 1,
    sort_order     INTEGER NOT NULL DEFAULT 0,
    keywords       TEXT NOT NULL DEFAULT '',     -- every keyword ever set here, space separated
    UNIQUE (account_id, parent_id, name)
);

CREATE TABLE IF NOT EXISTS blobs (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    refs INTEGER NOT NULL,                  -- messages, queue entries and uploads pointing here; 0 = removable
    size INTEGER NOT NULL,
    data BLOB NOT NULL
);

CREATE TABLE IF NOT EXISTS messages (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id    INTEGER NOT NULL,
    mailbox_id    INTEGER NOT NULL,
    uid           INTEGER NOT NULL,
    blob_id       INTEGER NOT NULL,
    thread_id     INTEGER NOT NULL,
    flags         INTEGER NOT NULL DEFAULT 0,
    keywords      TEXT NOT NULL DEFAULT '',  -- space separated
    internal_date INTEGER NOT NULL,
    size          INTEGER NOT NULL,
    modseq        INTEGER NOT NULL,
    sent_at       INTEGER,
    meta          BLOB NOT NULL,             -- MessageMeta::encode() (JSON text in stores before it)
    light         BLOB NOT NULL DEFAULT ''   -- MessageMeta::light().encode() (SEARCH, SORT, THREAD); '' until derived
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_by_uid ON messages (mailbox_id, uid);
-- (blob_id, account_id): read_blob checks ownership with both; with blob_id alone
-- SQLite preferred the thread index and scanned the whole account.
DROP INDEX IF EXISTS messages_by_blob;
CREATE INDEX IF NOT EXISTS messages_by_blob_account ON messages (blob_id, account_id);
CREATE INDEX IF NOT EXISTS messages_by_thread ON messages (account_id, thread_id);
-- Every column of a message's index entry (ops::SUMMARY_COLS) in UID order, so that
-- listing a mailbox (UID FETCH 1:* FLAGS, SELECT, JMAP queries by date) reads this
-- index alone and not the table, whose rows are mostly metadata (about 3 KiB each
-- for 4 KiB messages): 4x less time in SQLite for 20 000 messages. Older binaries
-- keep it up to date like any index, so it needs no new schema version.
CREATE INDEX IF NOT EXISTS messages_summary ON messages
    (mailbox_id, uid, account_id, id, blob_id, thread_id, flags, keywords, internal_date, size, modseq);

-- Message-ID / References keys of each account's threads (JMAP Thread, IMAP THREADID).
CREATE TABLE IF NOT EXISTS thread_keys (
    account_id INTEGER NOT NULL,
    key        TEXT NOT NULL,
    thread_id  INTEGER NOT NULL,
    PRIMARY KEY (account_id, key)
) WITHOUT ROWID;

-- The change log read by IMAP CONDSTORE/QRESYNC and JMAP /changes. `seq` is
-- never reused (AUTOINCREMENT, schema 6), so a log mark stays true.
CREATE TABLE IF NOT EXISTS changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL,
    modseq     INTEGER NOT NULL,
    kind       INTEGER NOT NULL,             -- 1 email, 2 mailbox, 3 identity, 4 email submission, 5 vacation response
    op         INTEGER NOT NULL,             -- 1 created, 2 updated, 3 destroyed, 4 left a mailbox (moved; IMAP only)
    object_id  INTEGER NOT NULL,
    mailbox_id INTEGER,
    uid        INTEGER,
    thread_id  INTEGER
);
-- Index entries end with the rowid (seq), so "ORDER BY modseq, seq" reads the
-- log in order straight from this index, without sorting.
CREATE INDEX IF NOT EXISTS changes_by_account ON changes (account_id, modseq);
-- Per-kind states (JMAP /get state) are one descent of this index, and
-- /changes of one kind reads only that kind's entries (schema 5).
CREATE INDEX IF NOT EXISTS changes_by_kind ON changes (account_id, kind, modseq);

-- Where the change log ended at a moment: every entry up to `seq` was written
-- at or before `at` (Unix time). Pruning by age reads these instead of a time in
-- every entry (schema 6).
CREATE TABLE IF NOT EXISTS log_marks (
    seq INTEGER PRIMARY KEY,
    at  INTEGER NOT NULL
);

-- The outbound queue (schema 3). A queued message holds a reference on its blob.
CREATE TABLE IF NOT EXISTS queue (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    blob_id    INTEGER NOT NULL,
    mail_from  TEXT NOT NULL,               -- '' for the null sender
    envid      TEXT,                        -- RFC 3461 ENVID
    ret_full   INTEGER NOT NULL DEFAULT 1,  -- RET=FULL (1) or HDRS (0)
    account_id INTEGER,                     -- the submitting account, if local
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    warned     INTEGER NOT NULL DEFAULT 0,  -- a delay warning was sent
    size       INTEGER NOT NULL,
    smtputf8   INTEGER NOT NULL DEFAULT 0,
    eightbit   INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS queue_rcpt (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    queue_id     INTEGER NOT NULL,
    address      TEXT NOT NULL,
    domain       TEXT NOT NULL,
    orcpt        TEXT,                      -- RFC 3461 ORCPT
    notify       INTEGER NOT NULL DEFAULT 0,-- bits: 1 success, 2 failure, 4 delay, 8 never; 0: not given
    state        INTEGER NOT NULL DEFAULT 0,-- 0 queued, 1 delivered, 2 failed
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    lease_until  INTEGER NOT NULL DEFAULT 0,-- a delivery attempt holds it until then
    last_error   TEXT,
    remote       TEXT,                      -- the remote MTA of the last attempt
    updated_at   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_rcpt_due ON queue_rcpt (state, next_attempt);
CREATE INDEX IF NOT EXISTS queue_rcpt_by_message ON queue_rcpt (queue_id);

-- JMAP uploads (schema 5, RFC 8620 §6.1). Each holds one reference on its blob
-- until purged; the account may read the blob meanwhile.
CREATE TABLE IF NOT EXISTS uploads (
    blob_id      INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
);

-- JMAP objects the store does not look into (schema 5): Identity,
-- EmailSubmission, VacationResponse. `data` is the JMAP layer's JSON.
CREATE TABLE IF NOT EXISTS objects (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL,
    kind       INTEGER NOT NULL,            -- the change log's kind code
    data       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS objects_by_kind ON objects (account_id, kind);

-- HTTP bearer tokens (schema 5): only a hash of the secret is kept.
CREATE TABLE IF NOT EXISTS tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL,
    hash       BLOB NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used  INTEGER                      -- recorded at most once an hour
);

-- Whom each account's vacation response has answered, and when (schema 5,
-- RFC 5230 §4.1: one reply per sender per period).
CREATE TABLE IF NOT EXISTS vacation_sent (
    account_id INTEGER NOT NULL,
    sender     TEXT NOT NULL,               -- lookup key of the address
    sent_at    INTEGER NOT NULL,
    PRIMARY KEY (account_id, sender)
) WITHOUT ROWID;

-- MTA-STS policies of destination domains, kept across restarts (RFC 8461
-- §5.1; schema 6). The policy is the file as fetched: the relay parses it.
CREATE TABLE IF NOT EXISTS mta_sts (
    domain  TEXT PRIMARY KEY,               -- lower case
    id      TEXT NOT NULL,                  -- the TXT record's id it was fetched under
    policy  TEXT NOT NULL,
    expires INTEGER NOT NULL                -- Unix time
) WITHOUT ROWID;
"#;

/// Settings every connection gets. `synchronous=FULL` makes each COMMIT fsync the
/// WAL: that fsync is what "durable" means for SMTP's 250.
pub fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // Plans must not depend on bound values: otherwise SQLite 3.54 re-prepares
    // every cached join statement on each use (rusqlite clears the bindings when
    // a statement goes back to its cache, which expires such plans). That was
    // 6 % of the relay's CPU; our queries have one obvious plan anyway.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    // 16 KiB pages: message bodies span 4x fewer overflow pages (one read each)
    // than with the 4 KiB default. Only takes effect when the file is created.
    conn.execute_batch(
        "PRAGMA page_size = 16384;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = OFF;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -16384;",
    )?;
    Ok(())
}

/// Creates or migrates the schema. Runs on the writer connection at open.
pub fn migrate(conn: &Connection) -> Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(crate::StoreError::Invalid(format!(
            "the store was written by a newer pochta (schema {version}, this one knows {SCHEMA_VERSION})"
        )));
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let res = (|| -> rusqlite::Result<()> {
        let old_log = (1..6).contains(&version) && set_aside_change_log(conn)?;
        conn.execute_batch(SCHEMA)?;
        if (1..6).contains(&version) {
            upgrade_5_to_6(conn, old_log)?;
        }
        if version == 1 {
            upgrade_1_to_2(conn)?;
        }
        if (1..4).contains(&version) {
            upgrade_3_to_4(conn)?;
        }
        // Schema 5 only added tables and an index, which SCHEMA has just created.
        conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
    })();
    match res {
        Ok(()) => conn.execute_batch("COMMIT")?,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e.into());
        }
    }
    Ok(())
}

/// Renames the change log of a schema 5 store (or older) out of the way, so that
/// [`SCHEMA`] creates the new one; true when there was one.
fn set_aside_change_log(conn: &Connection) -> rusqlite::Result<bool> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'changes')",
        [],
        |r| r.get(0),
    )?;
    if exists {
        conn.execute_batch(
            "ALTER TABLE changes RENAME TO changes_v5;
             DROP INDEX IF EXISTS changes_by_account;
             DROP INDEX IF EXISTS changes_by_kind;",
        )?;
    }
    Ok(exists)
}

/// Schema 6 makes the change log prunable: `accounts.log_floor`, the table
/// `log_marks`, and `changes.seq` never reused (the table is copied into the
/// new one [`SCHEMA`] has just created).
fn upgrade_5_to_6(conn: &Connection, old_log: bool) -> rusqlite::Result<()> {
    let has_floor: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('accounts') WHERE name = 'log_floor')",
        [],
        |r| r.get(0),
    )?;
    if !has_floor {
        conn.execute_batch("ALTER TABLE accounts ADD COLUMN log_floor INTEGER NOT NULL DEFAULT 0")?;
    }
    if old_log {
        conn.execute_batch(
            "INSERT INTO changes (seq, account_id, modseq, kind, op, object_id, mailbox_id, uid, thread_id)
             SELECT seq, account_id, modseq, kind, op, object_id, mailbox_id, uid, thread_id FROM changes_v5;
             DROP TABLE changes_v5;",
        )?;
    }
    Ok(())
}

/// Schema 4 adds `mailboxes.keywords`, the keywords in use in each mailbox (IMAP's
/// FLAGS response lists them), filled from the messages.
fn upgrade_3_to_4(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("ALTER TABLE mailboxes ADD COLUMN keywords TEXT NOT NULL DEFAULT ''")?;
    let rows: Vec<(i64, String)> = conn
        .prepare("SELECT DISTINCT mailbox_id, keywords FROM messages WHERE keywords != ''")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut by_mailbox: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
    for (mailbox, text) in rows {
        let list = by_mailbox.entry(mailbox).or_default();
        for k in text.split(' ').filter(|k| !k.is_empty()) {
            if !list.iter().any(|o| o.eq_ignore_ascii_case(k)) {
                list.push(k.to_string());
            }
        }
    }
    let mut update = conn.prepare("UPDATE mailboxes SET keywords = ?2 WHERE id = ?1")?;
    for (mailbox, list) in by_mailbox {
        update.execute(rusqlite::params![mailbox, list.join(" ")])?;
    }
    Ok(())
}

/// Schema 2 adds `messages.light`, filled from the stored metadata.
fn upgrade_1_to_2(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("ALTER TABLE messages ADD COLUMN light TEXT NOT NULL DEFAULT ''")?;
    let rows: Vec<(i64, Vec<u8>)> = conn
        .prepare("SELECT id, meta FROM messages")?
        .query_map([], |r| {
            let meta = r.get_ref(1)?.as_bytes().map_err(rusqlite::Error::from)?;
            Ok((r.get(0)?, meta.to_vec()))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut update = conn.prepare("UPDATE messages SET light = ?2 WHERE id = ?1")?;
    for (id, meta) in rows {
        // Left '' (read as "derive from meta") when the meta does not decode.
        let light = match pochta_message::MessageMeta::decode(&meta) {
            Ok(m) => rusqlite::types::Value::Blob(m.light().encode()),
            Err(_) => rusqlite::types::Value::Text(String::new()),
        };
        update.execute(rusqlite::params![id, light])?;
    }
    Ok(())
}
