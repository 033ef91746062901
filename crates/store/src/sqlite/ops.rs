//! The SQL behind each store operation. Writers run on the writer thread inside a
//! transaction (see `writer.rs`); readers run on pooled connections.

use std::collections::{HashMap, HashSet};

use pochta_addr::Address;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::writer::WriteCtx;
use crate::*;

/// Alias chains longer than this are treated as loops.
const MAX_ALIAS_DEPTH: usize = 8;
/// Message-ID keys longer than this are not used for threading (garbage headers).
const MAX_THREAD_KEY: usize = 250;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::ConstraintViolation)
    )
}

// ---------------------------------------------------------------- accounts

const ACCOUNT_COLS: &str = "id, display, password_hash, created_at, quota";

fn account_from_row(r: &Row<'_>) -> rusqlite::Result<Account> {
    let display: String = r.get(1)?;
    let address = Address::parse(&display).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(Account {
        id: r.get::<_, i64>(0)? as u64,
        address,
        password_hash: r.get(2)?,
        created_at: r.get(3)?,
        quota: r.get::<_, Option<i64>>(4)?.map(|q| q as u64),
    })
}

pub fn account_by_key(c: &Connection, key: &str) -> Result<Option<Account>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {ACCOUNT_COLS} FROM accounts WHERE address = ?1"
    ))?
    .query_row([key], account_from_row)
    .optional()?)
}

pub fn account_by_id(c: &Connection, id: AccountId) -> Result<Option<Account>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {ACCOUNT_COLS} FROM accounts WHERE id = ?1"
    ))?
    .query_row([id as i64], account_from_row)
    .optional()?)
}

fn alias_exists(c: &Connection, key: &str) -> Result<bool> {
    Ok(
        c.prepare_cached("SELECT 1 FROM aliases WHERE alias = ?1 LIMIT 1")?
            .exists([key])?,
    )
}

pub fn create_account(ctx: &mut WriteCtx<'_>, new: NewAccount) -> Result<Account> {
    let c = ctx.conn;
    let key = new.address.key();
    if alias_exists(c, &key)? {
        return Err(StoreError::AlreadyExists(format!(
            "{} is an alias",
            new.address
        )));
    }
    let created_at = now();
    let res = c.execute(
        "INSERT INTO accounts (address, display, password_hash, created_at, quota, modseq)
         VALUES (?1, ?2, ?3, ?4, ?5, 1)",
        params![
            key,
            new.address.to_string(),
            new.password_hash,
            created_at,
            new.quota.map(|q| q as i64)
        ],
    );
    match res {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::AlreadyExists(format!(
                "account {} exists",
                new.address
            )));
        }
        Err(e) => return Err(e.into()),
    }
    let id = c.last_insert_rowid() as u64;
    for (order, (role, name)) in Role::DEFAULT_MAILBOXES.iter().enumerate() {
        insert_mailbox(c, id, None, name, Some(*role), order as u32, 1)?;
    }
    ctx.publish(id, 1);
    Ok(Account {
        id,
        address: new.address,
        password_hash: new.password_hash,
        created_at,
        quota: new.quota,
    })
}

pub fn delete_account(c: &Connection, address: &Address) -> Result<()> {
    let key = address.key();
    let id: i64 = c
        .query_row("SELECT id FROM accounts WHERE address = ?1", [&key], |r| {
            r.get(0)
        })
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("account {address}")))?;
    // Release this account's references to shared blobs, then drop unreferenced ones.
    c.execute(
        "UPDATE blobs SET refs = refs - (SELECT COUNT(*) FROM messages m
                                         WHERE m.blob_id = blobs.id AND m.account_id = ?1)
         WHERE id IN (SELECT blob_id FROM messages WHERE account_id = ?1)",
        [id],
    )?;
    // Each upload holds one reference on a blob of its own.
    c.execute(
        "UPDATE blobs SET refs = refs - 1 WHERE id IN (SELECT blob_id FROM uploads WHERE account_id = ?1)",
        [id],
    )?;
    c.execute("DELETE FROM blobs WHERE refs <= 0", [])?;
    for table in [
        "messages",
        "mailboxes",
        "thread_keys",
        "changes",
        "uploads",
        "objects",
        "tokens",
        "vacation_sent",
    ] {
        c.execute(&format!("DELETE FROM {table} WHERE account_id = ?1"), [id])?;
    }
    c.execute("DELETE FROM aliases WHERE target = ?1", [&key])?;
    c.execute("DELETE FROM accounts WHERE id = ?1", [id])?;
    Ok(())
}

pub fn set_password(c: &Connection, key: &str, hash: &str) -> Result<()> {
    let n = c.execute(
        "UPDATE accounts SET password_hash = ?2 WHERE address = ?1",
        params![key, hash],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("account {key}")));
    }
    Ok(())
}

pub fn accounts(c: &Connection) -> Result<Vec<AccountUsage>> {
    let mut stmt = c.prepare(
        "SELECT a.id, a.display, a.password_hash, a.created_at, a.quota,
                COALESCE(SUM(m.total), 0), COALESCE(SUM(m.size), 0)
         FROM accounts a LEFT JOIN mailboxes m ON m.account_id = a.id
         GROUP BY a.id ORDER BY a.address",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(AccountUsage {
            account: account_from_row(r)?,
            messages: r.get::<_, i64>(5)? as u64,
            size: r.get::<_, i64>(6)? as u64,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

// ---------------------------------------------------------------- aliases

pub fn add_alias(c: &Connection, alias: &Alias) -> Result<()> {
    let key = alias.address.key();
    if account_by_key(c, &key)?.is_some() {
        return Err(StoreError::AlreadyExists(format!(
            "{} is an account",
            alias.address
        )));
    }
    if alias.targets.is_empty() {
        return Err(StoreError::Invalid(
            "an alias needs at least one target".into(),
        ));
    }
    for t in &alias.targets {
        if t.key() == key {
            return Err(StoreError::Invalid(format!(
                "{} cannot point at itself",
                alias.address
            )));
        }
        c.execute(
            "INSERT OR IGNORE INTO aliases (alias, target, display) VALUES (?1, ?2, ?3)",
            params![key, t.key(), alias.address.to_string()],
        )?;
    }
    Ok(())
}

pub fn delete_alias(c: &Connection, key: &str) -> Result<()> {
    if c.execute("DELETE FROM aliases WHERE alias = ?1", [key])? == 0 {
        return Err(StoreError::NotFound(format!("alias {key}")));
    }
    Ok(())
}

pub fn aliases(c: &Connection) -> Result<Vec<Alias>> {
    let mut stmt = c.prepare("SELECT display, target FROM aliases ORDER BY alias, target")?;
    let mut out: Vec<Alias> = Vec::new();
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let display: String = r.get(0)?;
        let target: String = r.get(1)?;
        let (Ok(address), Ok(target)) = (Address::parse(&display), Address::parse(&target)) else {
            continue;
        };
        match out.last_mut() {
            Some(last) if last.address == address => last.targets.push(target),
            _ => out.push(Alias {
                address,
                targets: vec![target],
            }),
        }
    }
    Ok(out)
}

pub fn resolve(c: &Connection, address: &Address) -> Result<Resolution> {
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    resolve_into(c, &address.key(), 0, &mut found, &mut seen)?;
    if found.is_empty()
        && let Some(base) = address.without_detail()
    {
        resolve_into(c, &base.key(), 0, &mut found, &mut seen)?;
    }
    Ok(if found.is_empty() {
        Resolution::Unknown
    } else {
        Resolution::Accounts(found)
    })
}

fn resolve_into(
    c: &Connection,
    key: &str,
    depth: usize,
    found: &mut Vec<AccountId>,
    seen: &mut HashSet<String>,
) -> Result<()> {
    if depth > MAX_ALIAS_DEPTH || !seen.insert(key.to_string()) {
        return Ok(());
    }
    if let Some(id) = c
        .prepare_cached("SELECT id FROM accounts WHERE address = ?1")?
        .query_row([key], |r| r.get::<_, i64>(0))
        .optional()?
    {
        if !found.contains(&(id as u64)) {
            found.push(id as u64);
        }
        return Ok(());
    }
    let targets: Vec<String> = c
        .prepare_cached("SELECT target FROM aliases WHERE alias = ?1")?
        .query_map([key], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for t in targets {
        resolve_into(c, &t, depth + 1, found, seen)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- mailboxes

const MAILBOX_COLS: &str = "id, account_id, parent_id, name, role, uidvalidity, uidnext, \
     highest_modseq, total, unseen, deleted, size, subscribed, sort_order, keywords";

fn mailbox_from_row(r: &Row<'_>) -> rusqlite::Result<Mailbox> {
    let parent: i64 = r.get(2)?;
    let role: Option<String> = r.get(4)?;
    Ok(Mailbox {
        id: r.get::<_, i64>(0)? as u64,
        account_id: r.get::<_, i64>(1)? as u64,
        parent_id: (parent != 0).then_some(parent as u64),
        name: r.get(3)?,
        role: role.as_deref().and_then(Role::parse),
        uid_validity: r.get::<_, i64>(5)? as u32,
        uid_next: r.get::<_, i64>(6)? as u32,
        highest_modseq: r.get::<_, i64>(7)? as u64,
        total: r.get::<_, i64>(8)? as u32,
        unseen: r.get::<_, i64>(9)? as u32,
        deleted: r.get::<_, i64>(10)? as u32,
        size: r.get::<_, i64>(11)? as u64,
        subscribed: r.get(12)?,
        sort_order: r.get::<_, i64>(13)? as u32,
        keywords: parse_keywords(&r.get::<_, String>(14)?),
    })
}

pub fn mailboxes(c: &Connection, account: AccountId) -> Result<Vec<Mailbox>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {MAILBOX_COLS} FROM mailboxes WHERE account_id = ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map([account as i64], mailbox_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn mailbox_by_id(c: &Connection, account: AccountId, id: MailboxId) -> Result<Option<Mailbox>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {MAILBOX_COLS} FROM mailboxes WHERE id = ?1 AND account_id = ?2"
    ))?
    .query_row(params![id as i64, account as i64], mailbox_from_row)
    .optional()?)
}

/// A fresh UIDVALIDITY: the current time in seconds, but always above every value
/// handed out before, so a mailbox deleted and re-created never repeats one.
fn next_uidvalidity(c: &Connection) -> Result<u32> {
    let last: i64 = c
        .query_row(
            "SELECT value FROM settings WHERE key = 'uidvalidity'",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    let next = (last + 1).max(now()).clamp(1, u32::MAX as i64);
    c.execute(
        "INSERT INTO settings (key, value) VALUES ('uidvalidity', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [next],
    )?;
    Ok(next as u32)
}

fn insert_mailbox(
    c: &Connection,
    account: AccountId,
    parent: Option<MailboxId>,
    name: &str,
    role: Option<Role>,
    sort_order: u32,
    modseq: ModSeq,
) -> Result<Mailbox> {
    let uidvalidity = next_uidvalidity(c)?;
    let res = c.execute(
        "INSERT INTO mailboxes (account_id, parent_id, name, role, uidvalidity, highest_modseq, sort_order)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            account as i64,
            parent.unwrap_or(0) as i64,
            name,
            role.map(Role::as_str),
            uidvalidity,
            modseq as i64,
            sort_order
        ],
    );
    match res {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::AlreadyExists(format!("mailbox {name}")));
        }
        Err(e) => return Err(e.into()),
    }
    let id = c.last_insert_rowid() as u64;
    log_change(
        c,
        account,
        modseq,
        ObjectKind::Mailbox,
        ChangeOp::Created,
        id,
        None,
    )?;
    mailbox_by_id(c, account, id)?
        .ok_or_else(|| StoreError::Backend("inserted mailbox vanished".into()))
}

/// Checks a mailbox name (one level): not empty, no control characters, no `/`
/// (the hierarchy delimiter), and not absurdly long.
fn check_mailbox_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 255
        || name.contains('/')
        || name.chars().any(char::is_control)
    {
        return Err(StoreError::Invalid(format!(
            "mailbox name {name:?} is empty, too long, or contains '/' or control characters"
        )));
    }
    Ok(())
}

pub fn create_mailbox(
    ctx: &mut WriteCtx<'_>,
    account: AccountId,
    parent: Option<MailboxId>,
    name: &str,
    role: Option<Role>,
) -> Result<Mailbox> {
    let c = ctx.conn;
    check_mailbox_name(name)?;
    if let Some(p) = parent
        && mailbox_by_id(c, account, p)?.is_none()
    {
        return Err(StoreError::NotFound(format!("parent mailbox {p}")));
    }
    if account_by_id(c, account)?.is_none() {
        return Err(StoreError::NotFound(format!("account {account}")));
    }
    let modseq = bump_modseq(c, account)?;
    let mailbox = insert_mailbox(c, account, parent, name, role, 0, modseq)?;
    ctx.publish(account, modseq);
    Ok(mailbox)
}

// ---------------------------------------------------------------- change log

fn bump_modseq(c: &Connection, account: AccountId) -> Result<ModSeq> {
    c.prepare_cached("UPDATE accounts SET modseq = modseq + 1 WHERE id = ?1 RETURNING modseq")?
        .query_row([account as i64], |r| r.get::<_, i64>(0))
        .optional()?
        .map(|m| m as u64)
        .ok_or_else(|| StoreError::NotFound(format!("account {account}")))
}

fn kind_code(k: ObjectKind) -> i64 {
    match k {
        ObjectKind::Email => 1,
        ObjectKind::Mailbox => 2,
        ObjectKind::Identity => 3,
        ObjectKind::EmailSubmission => 4,
        ObjectKind::VacationResponse => 5,
    }
}

fn kind_from_code(code: i64) -> Option<ObjectKind> {
    Some(match code {
        1 => ObjectKind::Email,
        2 => ObjectKind::Mailbox,
        3 => ObjectKind::Identity,
        4 => ObjectKind::EmailSubmission,
        5 => ObjectKind::VacationResponse,
        _ => return None,
    })
}

fn op_code(o: ChangeOp) -> i64 {
    match o {
        ChangeOp::Created => 1,
        ChangeOp::Updated => 2,
        ChangeOp::Destroyed => 3,
        ChangeOp::LeftMailbox => 4,
    }
}

/// Where a message was when it changed (for IMAP's per-mailbox view of the log).
struct Located {
    mailbox: MailboxId,
    uid: Uid,
    thread: ThreadId,
}

fn log_change(
    c: &Connection,
    account: AccountId,
    modseq: ModSeq,
    kind: ObjectKind,
    op: ChangeOp,
    id: u64,
    at: Option<&Located>,
) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO changes (account_id, modseq, kind, op, object_id, mailbox_id, uid, thread_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        account as i64,
        modseq as i64,
        kind_code(kind),
        op_code(op),
        id as i64,
        at.map(|l| l.mailbox as i64),
        at.map(|l| l.uid as i64),
        at.map(|l| l.thread as i64),
    ])?;
    Ok(())
}

pub fn state(c: &Connection, account: AccountId) -> Result<ModSeq> {
    c.prepare_cached("SELECT modseq FROM accounts WHERE id = ?1")?
        .query_row([account as i64], |r| r.get::<_, i64>(0))
        .optional()?
        .map(|m| m as u64)
        .ok_or_else(|| StoreError::NotFound(format!("account {account}")))
}

pub fn change_log(
    c: &Connection,
    account: AccountId,
    since: ModSeq,
    limit: usize,
) -> Result<Vec<Change>> {
    let mut stmt = c.prepare_cached(
        "SELECT modseq, kind, op, object_id, mailbox_id, uid, thread_id FROM changes
         WHERE account_id = ?1 AND modseq > ?2 ORDER BY modseq, seq LIMIT ?3",
    )?;
    let rows = stmt.query_map(
        params![
            account as i64,
            since as i64,
            limit.min(i64::MAX as usize) as i64
        ],
        |r| {
            let code: i64 = r.get(1)?;
            Ok(Change {
                modseq: r.get::<_, i64>(0)? as u64,
                kind: kind_from_code(code)
                    .ok_or(rusqlite::Error::IntegralValueOutOfRange(1, code))?,
                op: match r.get::<_, i64>(2)? {
                    1 => ChangeOp::Created,
                    3 => ChangeOp::Destroyed,
                    4 => ChangeOp::LeftMailbox,
                    _ => ChangeOp::Updated,
                },
                id: r.get::<_, i64>(3)? as u64,
                mailbox_id: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
                uid: r.get::<_, Option<i64>>(5)?.map(|v| v as u32),
                thread_id: r.get::<_, Option<i64>>(6)?.map(|v| v as u64),
            })
        },
    )?;
    let log = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    // The floor after the log: a prune committed in between then refuses a log
    // that was in fact whole, which is safe; the other order could miss entries.
    ensure_logged(c, account, since)?;
    Ok(log)
}

/// The account's log floor: every change after it is in the log.
fn log_floor(c: &Connection, account: AccountId) -> Result<ModSeq> {
    c.prepare_cached("SELECT log_floor FROM accounts WHERE id = ?1")?
        .query_row([account as i64], |r| r.get::<_, i64>(0))
        .optional()?
        .map(|m| m as u64)
        .ok_or_else(|| StoreError::NotFound(format!("account {account}")))
}

/// [`StoreError::Pruned`] when changes after `since` may be missing from the log.
fn ensure_logged(c: &Connection, account: AccountId, since: ModSeq) -> Result<()> {
    let floor = log_floor(c, account)?;
    if since < floor {
        return Err(StoreError::Pruned { since, floor });
    }
    Ok(())
}

/// The last change of one kind (by code) in the account's log, 0 if none: one
/// descent of the `changes_by_kind` index.
fn last_change(c: &Connection, account: AccountId, code: i64) -> Result<ModSeq> {
    Ok(
        c.prepare_cached("SELECT MAX(modseq) FROM changes WHERE account_id = ?1 AND kind = ?2")?
            .query_row(params![account as i64, code], |r| {
                r.get::<_, Option<i64>>(0)
            })?
            .unwrap_or(0) as u64,
    )
}

pub fn kind_state(c: &Connection, account: AccountId, kind: ObjectKind) -> Result<ModSeq> {
    // Unknown accounts are NotFound, as for state(). A kind whose entries were
    // all pruned has its last change at or below the floor, so the floor stands
    // in for it: a state must never go back.
    let floor = log_floor(c, account)?;
    let own = last_change(c, account, kind_code(kind))?;
    if kind == ObjectKind::Mailbox {
        // A mailbox's counts (RFC 8621 §2 totalEmails, unreadThreads, ...) move with
        // its messages, and a JMAP state must change whenever its objects do.
        let email = last_change(c, account, kind_code(ObjectKind::Email))?;
        return Ok(own.max(email).max(floor));
    }
    Ok(own.max(floor))
}

pub fn changes(
    c: &Connection,
    account: AccountId,
    kind: ObjectKind,
    since: ModSeq,
    max: usize,
) -> Result<Changes> {
    let current = state(c, account)?;
    if since > current {
        return Err(StoreError::Invalid(format!(
            "state {since} is newer than the account's state {current}"
        )));
    }
    // Read before the log: a change committed in between is then in the log read
    // below, and `new_state` is the larger of the two.
    let kind_now = kind_state(c, account, kind)?;
    // For Mailbox the message entries count too: each marks the mailbox it names
    // as updated (its counts changed). A move names both mailboxes: the old one in
    // its "left" entry, the new one in its "updated" entry.
    let with_messages = kind == ObjectKind::Mailbox;
    // INDEXED BY: two kinds in log order come straight from changes_by_account;
    // changes_by_kind would give two runs to merge with a sort.
    let mut stmt = if with_messages {
        c.prepare_cached(
            "SELECT modseq, kind, op, object_id, mailbox_id FROM changes INDEXED BY changes_by_account
             WHERE account_id = ?1 AND kind IN (1, ?2) AND modseq > ?3 ORDER BY modseq, seq",
        )?
    } else {
        c.prepare_cached(
            "SELECT modseq, kind, op, object_id, mailbox_id FROM changes
             WHERE account_id = ?1 AND kind = ?2 AND modseq > ?3 AND op != 4 ORDER BY modseq, seq",
        )?
    };
    let mut rows = stmt.query(params![account as i64, kind_code(kind), since as i64])?;
    // Per object: (first op, last op), in order of first appearance.
    let mut order: Vec<u64> = Vec::new();
    let mut seen: HashMap<u64, (i64, i64)> = HashMap::new();
    let mut has_more = false;
    let mut last_modseq = since;
    while let Some(r) = rows.next()? {
        let modseq = r.get::<_, i64>(0)? as u64;
        let (op, id) = if with_messages && r.get::<_, i64>(1)? == kind_code(ObjectKind::Email) {
            let Some(mailbox) = r.get::<_, Option<i64>>(4)? else {
                continue;
            };
            (op_code(ChangeOp::Updated), mailbox as u64)
        } else {
            (r.get::<_, i64>(2)?, r.get::<_, i64>(3)? as u64)
        };
        if modseq != last_modseq && order.len() >= max.max(1) && !seen.contains_key(&id) {
            // Stop at a change boundary so that no change is split.
            has_more = true;
            break;
        }
        last_modseq = modseq;
        match seen.get_mut(&id) {
            Some(entry) => entry.1 = op,
            None => {
                seen.insert(id, (op, op));
                order.push(id);
            }
        }
    }
    drop(rows);
    ensure_logged(c, account, since)?;
    let mut out = Changes {
        new_state: if has_more {
            last_modseq
        } else {
            kind_now.max(last_modseq)
        },
        has_more,
        ..Changes::default()
    };
    for id in order {
        let Some(&(first, last)) = seen.get(&id) else {
            continue;
        };
        match (first, last) {
            (1, 3) => {} // created and destroyed within the window: never seen
            (1, _) => out.created.push(id),
            (_, 3) => out.destroyed.push(id),
            _ => out.updated.push(id),
        }
    }
    Ok(out)
}

pub fn sts_policy(c: &Connection, domain: &str, now: i64) -> Result<Option<StsPolicy>> {
    Ok(c.prepare_cached(
        "SELECT id, policy, expires FROM mta_sts WHERE domain = ?1 AND expires > ?2",
    )?
    .query_row(params![domain, now], |r| {
        Ok(StsPolicy {
            id: r.get(0)?,
            text: r.get(1)?,
            expires: r.get(2)?,
        })
    })
    .optional()?)
}

pub fn put_sts_policy(c: &Connection, domain: &str, p: &StsPolicy, now: i64) -> Result<()> {
    c.prepare_cached("DELETE FROM mta_sts WHERE expires <= ?1")?
        .execute([now])?;
    c.prepare_cached(
        "INSERT INTO mta_sts (domain, id, policy, expires) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (domain) DO UPDATE SET id = excluded.id, policy = excluded.policy, expires = excluded.expires",
    )?
    .execute(params![domain, p.id, p.text, p.expires])?;
    Ok(())
}

/// Notes that every change-log entry written so far was written at or before
/// `now`. When nothing was logged since the last mark, that older mark stays,
/// being the more exact one.
pub fn mark_change_log(c: &Connection, now: i64) -> Result<()> {
    c.prepare_cached(
        "INSERT OR IGNORE INTO log_marks (seq, at) SELECT COALESCE(MAX(seq), 0), ?1 FROM changes",
    )?
    .execute([now])?;
    Ok(())
}

/// Removes up to `batch` of the oldest change-log entries that a mark shows were
/// written at or before `cutoff`, raising each account's floor to the newest
/// MODSEQ removed, in the same transaction (a reader never sees a gap without
/// its floor). Returns how many were removed; fewer than `batch` means done.
pub fn prune_change_log(c: &Connection, cutoff: i64, batch: usize) -> Result<usize> {
    let upto: Option<i64> = c
        .prepare_cached("SELECT MAX(seq) FROM log_marks WHERE at <= ?1")?
        .query_row([cutoff], |r| r.get(0))?;
    let Some(upto) = upto else {
        return Ok(0);
    };
    let batch = batch.clamp(1, i64::MAX as usize) as i64;
    let last: Option<i64> = c
        .prepare_cached(
            "SELECT MAX(seq) FROM (SELECT seq FROM changes WHERE seq <= ?1 ORDER BY seq LIMIT ?2)",
        )?
        .query_row([upto, batch], |r| r.get(0))?;
    let Some(last) = last else {
        c.prepare_cached("DELETE FROM log_marks WHERE seq < ?1")?
            .execute([upto])?;
        return Ok(0);
    };
    let floors: Vec<(i64, i64)> = c
        .prepare_cached(
            "SELECT account_id, MAX(modseq) FROM changes WHERE seq <= ?1 GROUP BY account_id",
        )?
        .query_map([last], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut raise =
        c.prepare_cached("UPDATE accounts SET log_floor = MAX(log_floor, ?2) WHERE id = ?1")?;
    for (account, floor) in floors {
        raise.execute([account, floor])?;
    }
    let removed = c
        .prepare_cached("DELETE FROM changes WHERE seq <= ?1")?
        .execute([last])?;
    Ok(removed)
}

// ---------------------------------------------------------------- messages

/// A delivery with its metadata already serialised, ready for the writer thread.
pub struct PreparedDelivery {
    delivery: Delivery,
    meta_bytes: Vec<u8>,
    light_bytes: Vec<u8>,
    thread_keys: Vec<String>,
}

impl PreparedDelivery {
    /// Serialises the metadata and collects the threading keys.
    pub fn new(delivery: Delivery) -> Result<PreparedDelivery> {
        let meta_bytes = delivery.meta.encode();
        let light_bytes = delivery.meta.light().encode();
        let meta = &delivery.meta;
        let mut thread_keys: Vec<String> = meta
            .message_id
            .iter()
            .chain(meta.in_reply_to.iter())
            .chain(meta.references.iter())
            .filter(|k| !k.is_empty() && k.len() <= MAX_THREAD_KEY)
            .cloned()
            .collect();
        thread_keys.dedup();
        Ok(PreparedDelivery {
            delivery,
            meta_bytes,
            light_bytes,
            thread_keys,
        })
    }
}

fn target_mailbox(c: &Connection, account: AccountId, target: &MailboxTarget) -> Result<MailboxId> {
    let found = match target {
        MailboxTarget::Id(id) => c
            .prepare_cached("SELECT id FROM mailboxes WHERE id = ?1 AND account_id = ?2")?
            .query_row(params![*id as i64, account as i64], |r| r.get::<_, i64>(0))
            .optional()?,
        MailboxTarget::Role(role) => {
            let by_role = c
                .prepare_cached(
                    "SELECT id FROM mailboxes WHERE account_id = ?1 AND role = ?2 ORDER BY id LIMIT 1",
                )?
                .query_row(params![account as i64, role.as_str()], |r| r.get::<_, i64>(0))
                .optional()?;
            match by_role {
                Some(id) => Some(id),
                None => c
                    .prepare_cached(
                        "SELECT id FROM mailboxes WHERE account_id = ?1 AND role = 'inbox' ORDER BY id LIMIT 1",
                    )?
                    .query_row([account as i64], |r| r.get::<_, i64>(0))
                    .optional()?,
            }
        }
    };
    found
        .map(|id| id as u64)
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {target:?} of account {account}")))
}

fn find_thread(c: &Connection, account: AccountId, keys: &[String]) -> Result<Option<ThreadId>> {
    let mut stmt =
        c.prepare_cached("SELECT thread_id FROM thread_keys WHERE account_id = ?1 AND key = ?2")?;
    for k in keys {
        if let Some(t) = stmt
            .query_row(params![account as i64, k], |r| r.get::<_, i64>(0))
            .optional()?
        {
            return Ok(Some(t as u64));
        }
    }
    Ok(None)
}

fn keywords_text(keywords: &[String]) -> String {
    let mut out: Vec<&str> = Vec::new();
    for k in keywords {
        let k = k.trim();
        if !k.is_empty()
            && !k.contains(char::is_whitespace)
            && !out.iter().any(|o| o.eq_ignore_ascii_case(k))
        {
            out.push(k);
        }
    }
    out.join(" ")
}

/// Adds keywords to the mailbox's list of keywords in use. The list only grows, as
/// in Dovecot: a client that saw a keyword in FLAGS may keep offering it.
fn note_keywords(c: &Connection, mailbox: MailboxId, keywords: &[String]) -> Result<()> {
    if keywords.is_empty() {
        return Ok(());
    }
    let known: String = c
        .prepare_cached("SELECT keywords FROM mailboxes WHERE id = ?1")?
        .query_row([mailbox as i64], |r| r.get(0))?;
    let mut list = parse_keywords(&known);
    let before = list.len();
    for k in keywords {
        if !list.iter().any(|o| o.eq_ignore_ascii_case(k)) {
            list.push(k.clone());
        }
    }
    if list.len() != before {
        c.prepare_cached("UPDATE mailboxes SET keywords = ?2 WHERE id = ?1")?
            .execute(params![mailbox as i64, keywords_text(&list)])?;
    }
    Ok(())
}

fn parse_keywords(text: &str) -> Vec<String> {
    text.split(' ')
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect()
}

/// Adds `delta` messages with these flags and total size to a mailbox's counters,
/// and raises its HIGHESTMODSEQ.
fn adjust_counters(
    c: &Connection,
    mailbox: MailboxId,
    delta: i64,
    flags: Flags,
    size: u64,
    modseq: ModSeq,
) -> Result<()> {
    let unseen = if flags.contains(Flags::SEEN) {
        0
    } else {
        delta
    };
    let deleted = if flags.contains(Flags::DELETED) {
        delta
    } else {
        0
    };
    c.prepare_cached(
        "UPDATE mailboxes SET total = total + ?2, unseen = unseen + ?3, deleted = deleted + ?4,
                size = size + ?5, highest_modseq = MAX(highest_modseq, ?6)
         WHERE id = ?1",
    )?
    .execute(params![
        mailbox as i64,
        delta,
        unseen,
        deleted,
        delta * size as i64,
        modseq as i64
    ])?;
    Ok(())
}

pub fn deliver(ctx: &mut WriteCtx<'_>, p: PreparedDelivery) -> Result<Vec<Delivered>> {
    let c = ctx.conn;
    let d = &p.delivery;
    let size = d.raw.len() as u64;
    let refs = d.targets.len() + usize::from(d.outbound.is_some());
    c.prepare_cached("INSERT INTO blobs (refs, size, data) VALUES (?1, ?2, ?3)")?
        .execute(params![refs as i64, size as i64, d.raw])?;
    let blob = c.last_insert_rowid();
    if let Some(o) = &d.outbound {
        let id = enqueue(c, blob, size, o)?;
        ctx.publish(crate::QUEUE_CHANNEL, id);
    }
    let mut out = Vec::with_capacity(d.targets.len());
    for t in &d.targets {
        let mailbox = target_mailbox(c, t.account, &t.mailbox)?;
        check_quota(c, t.account, size)?;
        let modseq = bump_modseq(c, t.account)?;
        let uid: i64 = c
            .prepare_cached(
                "UPDATE mailboxes SET uidnext = uidnext + 1 WHERE id = ?1 RETURNING uidnext - 1",
            )?
            .query_row([mailbox as i64], |r| r.get(0))?;
        if uid >= u32::MAX as i64 {
            return Err(StoreError::Invalid(format!(
                "mailbox {mailbox} has run out of UIDs"
            )));
        }
        adjust_counters(c, mailbox, 1, t.flags, size, modseq)?;
        note_keywords(c, mailbox, &t.keywords)?;
        let thread = find_thread(c, t.account, &p.thread_keys)?;
        c.prepare_cached(
            "INSERT INTO messages (account_id, mailbox_id, uid, blob_id, thread_id, flags, keywords,
                                   internal_date, size, modseq, sent_at, meta, light)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?
        .execute(params![
            t.account as i64,
            mailbox as i64,
            uid,
            blob,
            thread.unwrap_or(0) as i64,
            t.flags.bits(),
            keywords_text(&t.keywords),
            d.internal_date,
            size as i64,
            modseq as i64,
            d.meta.sent_at,
            p.meta_bytes,
            p.light_bytes,
        ])?;
        let id = c.last_insert_rowid() as u64;
        let thread = match thread {
            Some(t) => t,
            None => {
                c.prepare_cached("UPDATE messages SET thread_id = ?1 WHERE id = ?1")?
                    .execute([id as i64])?;
                id
            }
        };
        let mut insert_key = c.prepare_cached(
            "INSERT OR IGNORE INTO thread_keys (account_id, key, thread_id) VALUES (?1, ?2, ?3)",
        )?;
        for k in &p.thread_keys {
            insert_key.execute(params![t.account as i64, k, thread as i64])?;
        }
        let at = Located {
            mailbox,
            uid: uid as u32,
            thread,
        };
        log_change(
            c,
            t.account,
            modseq,
            ObjectKind::Email,
            ChangeOp::Created,
            id,
            Some(&at),
        )?;
        ctx.publish(t.account, modseq);
        out.push(Delivered {
            account: t.account,
            mailbox,
            uid: uid as u32,
            id,
            modseq,
        });
    }
    Ok(out)
}

const SUMMARY_COLS: &str =
    "id, mailbox_id, uid, blob_id, thread_id, flags, keywords, internal_date, size, modseq";

fn summary_from_row(r: &Row<'_>) -> rusqlite::Result<MessageSummary> {
    Ok(MessageSummary {
        id: r.get::<_, i64>(0)? as u64,
        mailbox_id: r.get::<_, i64>(1)? as u64,
        uid: r.get::<_, i64>(2)? as u32,
        blob_id: r.get::<_, i64>(3)? as u64,
        thread_id: r.get::<_, i64>(4)? as u64,
        flags: Flags::from_bits(r.get::<_, i64>(5)? as u8),
        keywords: parse_keywords(&r.get::<_, String>(6)?),
        internal_date: r.get(7)?,
        size: r.get::<_, i64>(8)? as u64,
        modseq: r.get::<_, i64>(9)? as u64,
    })
}

pub fn messages(
    c: &Connection,
    account: AccountId,
    mailbox: MailboxId,
) -> Result<Vec<MessageSummary>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {SUMMARY_COLS} FROM messages WHERE mailbox_id = ?1 AND account_id = ?2 ORDER BY uid"
    ))?;
    let rows = stmt.query_map(params![mailbox as i64, account as i64], summary_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn message(c: &Connection, account: AccountId, id: MessageId) -> Result<Option<MessageRecord>> {
    let row = c
        .prepare_cached(&format!(
            "SELECT {SUMMARY_COLS}, meta FROM messages WHERE id = ?1 AND account_id = ?2"
        ))?
        .query_row(params![id as i64, account as i64], |r| {
            // Decoded straight from SQLite's buffer: no copy of the JSON text.
            let meta = pochta_message::MessageMeta::decode(r.get_ref(10)?.as_bytes()?);
            Ok((summary_from_row(r)?, meta))
        })
        .optional()?;
    match row {
        None => Ok(None),
        Some((summary, meta)) => Ok(Some(MessageRecord {
            summary,
            meta: meta?,
        })),
    }
}

/// Whether the account may read a blob: one of its messages, or one of its
/// uploads, points at it.
fn may_read_blob(c: &Connection, account: AccountId, blob: BlobId) -> Result<bool> {
    // Messages first: nearly every read is a message's, one probe of
    // messages_by_blob_account.
    if c.prepare_cached("SELECT 1 FROM messages WHERE blob_id = ?1 AND account_id = ?2 LIMIT 1")?
        .exists(params![blob as i64, account as i64])?
    {
        return Ok(true);
    }
    Ok(
        c.prepare_cached("SELECT 1 FROM uploads WHERE blob_id = ?1 AND account_id = ?2")?
            .exists(params![blob as i64, account as i64])?,
    )
}

pub fn read_blob(c: &Connection, account: AccountId, blob: BlobId) -> Result<Vec<u8>> {
    if !may_read_blob(c, account, blob)? {
        return Err(StoreError::NotFound(format!("blob {blob}")));
    }
    c.prepare_cached("SELECT data FROM blobs WHERE id = ?1")?
        .query_row([blob as i64], |r| r.get::<_, Vec<u8>>(0))
        .optional()?
        .ok_or_else(|| StoreError::Corrupt(format!("blob {blob} is referenced but missing")))
}

pub fn blob_size(c: &Connection, account: AccountId, blob: BlobId) -> Result<Option<u64>> {
    if !may_read_blob(c, account, blob)? {
        return Ok(None);
    }
    Ok(c.prepare_cached("SELECT size FROM blobs WHERE id = ?1")?
        .query_row([blob as i64], |r| r.get::<_, i64>(0))
        .optional()?
        .map(|n| n as u64))
}

/// Drops one reference on a blob and removes the blob when none is left.
fn release_blob(c: &Connection, blob: i64) -> Result<()> {
    c.prepare_cached("UPDATE blobs SET refs = refs - 1 WHERE id = ?1")?
        .execute([blob])?;
    c.prepare_cached("DELETE FROM blobs WHERE id = ?1 AND refs <= 0")?
        .execute([blob])?;
    Ok(())
}

fn apply_change(flags: Flags, keywords: &[String], change: &FlagChange) -> (Flags, Vec<String>) {
    match change {
        FlagChange::Set(f, k) => (*f, k.clone()),
        FlagChange::Add(f, k) => {
            let mut kw = keywords.to_vec();
            for w in k {
                if !kw.iter().any(|o| o.eq_ignore_ascii_case(w)) {
                    kw.push(w.clone());
                }
            }
            (flags.union(*f), kw)
        }
        FlagChange::Remove(f, k) => {
            let kw = keywords
                .iter()
                .filter(|o| !k.iter().any(|w| w.eq_ignore_ascii_case(o)))
                .cloned()
                .collect();
            (flags.difference(*f), kw)
        }
    }
}

pub fn update_flags(
    ctx: &mut WriteCtx<'_>,
    account: AccountId,
    ids: &[MessageId],
    change: &FlagChange,
) -> Result<ModSeq> {
    store_flags(ctx, account, ids, change, None).map(|u| u.state)
}

pub fn expunge(ctx: &mut WriteCtx<'_>, account: AccountId, ids: &[MessageId]) -> Result<ModSeq> {
    match expunge_in(ctx.conn, account, ids, None)? {
        Some(m) => {
            ctx.publish(account, m);
            Ok(m)
        }
        None => state(ctx.conn, account),
    }
}

/// Deletes messages, releasing their blobs and logging each as destroyed; returns
/// the MODSEQ used (`modseq`, or a fresh one on the first deletion), or `None`
/// when nothing was deleted.
fn expunge_in(
    c: &Connection,
    account: AccountId,
    ids: &[MessageId],
    mut modseq: Option<ModSeq>,
) -> Result<Option<ModSeq>> {
    for &id in ids {
        let row = c
            .prepare_cached(
                "DELETE FROM messages WHERE id = ?1 AND account_id = ?2
                 RETURNING mailbox_id, uid, thread_id, flags, size, blob_id",
            )?
            .query_row(params![id as i64, account as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, i64>(1)? as u32,
                    r.get::<_, i64>(2)? as u64,
                    Flags::from_bits(r.get::<_, i64>(3)? as u8),
                    r.get::<_, i64>(4)? as u64,
                    r.get::<_, i64>(5)?,
                ))
            })
            .optional()?;
        let Some((mailbox, uid, thread, flags, size, blob)) = row else {
            continue;
        };
        let m = match modseq {
            Some(m) => m,
            None => {
                let m = bump_modseq(c, account)?;
                modseq = Some(m);
                m
            }
        };
        adjust_counters(c, mailbox, -1, flags, size, m)?;
        release_blob(c, blob)?;
        let at = Located {
            mailbox,
            uid,
            thread,
        };
        log_change(
            c,
            account,
            m,
            ObjectKind::Email,
            ChangeOp::Destroyed,
            id,
            Some(&at),
        )?;
    }
    Ok(modseq)
}

// ---------------------------------------------------------------- quota

pub fn quota(c: &Connection, account: AccountId) -> Result<QuotaUsage> {
    let limit: Option<i64> = c
        .prepare_cached("SELECT quota FROM accounts WHERE id = ?1")?
        .query_row([account as i64], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("account {account}")))?;
    let (used, messages): (i64, i64) = c
        .prepare_cached("SELECT COALESCE(SUM(size), 0), COALESCE(SUM(total), 0) FROM mailboxes WHERE account_id = ?1")?
        .query_row([account as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(QuotaUsage {
        used: used as u64,
        messages: messages as u64,
        limit: limit.map(|l| l as u64),
    })
}

/// Refuses `add` more octets for an account already at or over its limit.
fn check_quota(c: &Connection, account: AccountId, add: u64) -> Result<()> {
    let q = quota(c, account)?;
    match q.limit {
        Some(limit) if q.used.saturating_add(add) > limit => Err(StoreError::OverQuota),
        _ => Ok(()),
    }
}

pub fn set_quota(c: &Connection, key: &str, limit: Option<u64>) -> Result<()> {
    let n = c.execute(
        "UPDATE accounts SET quota = ?2 WHERE address = ?1",
        params![key, limit.map(|l| l as i64)],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("account {key}")));
    }
    Ok(())
}

// ---------------------------------------------------------------- mailbox changes

pub fn rename_mailbox(
    ctx: &mut WriteCtx<'_>,
    account: AccountId,
    id: MailboxId,
    parent: Option<MailboxId>,
    name: &str,
) -> Result<Mailbox> {
    let c = ctx.conn;
    check_mailbox_name(name)?;
    if mailbox_by_id(c, account, id)?.is_none() {
        return Err(StoreError::NotFound(format!("mailbox {id}")));
    }
    // Walk up from the new parent: meeting the mailbox itself means a cycle.
    let mut cursor = parent;
    while let Some(p) = cursor {
        if p == id {
            return Err(StoreError::Invalid(
                "a mailbox cannot be moved into itself".into(),
            ));
        }
        cursor = mailbox_by_id(c, account, p)?
            .ok_or_else(|| StoreError::NotFound(format!("parent mailbox {p}")))?
            .parent_id;
    }
    let modseq = bump_modseq(c, account)?;
    let res = c.execute(
        "UPDATE mailboxes SET parent_id = ?3, name = ?4 WHERE id = ?1 AND account_id = ?2",
        params![id as i64, account as i64, parent.unwrap_or(0) as i64, name],
    );
    match res {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::AlreadyExists(format!("mailbox {name}")));
        }
        Err(e) => return Err(e.into()),
    }
    log_change(
        c,
        account,
        modseq,
        ObjectKind::Mailbox,
        ChangeOp::Updated,
        id,
        None,
    )?;
    ctx.publish(account, modseq);
    mailbox_by_id(c, account, id)?
        .ok_or_else(|| StoreError::Backend("renamed mailbox vanished".into()))
}

pub fn delete_mailbox(ctx: &mut WriteCtx<'_>, account: AccountId, id: MailboxId) -> Result<()> {
    let c = ctx.conn;
    if mailbox_by_id(c, account, id)?.is_none() {
        return Err(StoreError::NotFound(format!("mailbox {id}")));
    }
    let children = c
        .prepare_cached("SELECT 1 FROM mailboxes WHERE account_id = ?1 AND parent_id = ?2 LIMIT 1")?
        .exists(params![account as i64, id as i64])?;
    if children {
        return Err(StoreError::HasChildren);
    }
    let ids: Vec<u64> = c
        .prepare_cached("SELECT id FROM messages WHERE mailbox_id = ?1 AND account_id = ?2")?
        .query_map(params![id as i64, account as i64], |r| {
            r.get::<_, i64>(0).map(|v| v as u64)
        })?
        .collect::<rusqlite::Result<_>>()?;
    let modseq = expunge_in(c, account, &ids, None)?.unwrap_or(bump_modseq(c, account)?);
    c.execute(
        "DELETE FROM mailboxes WHERE id = ?1 AND account_id = ?2",
        params![id as i64, account as i64],
    )?;
    log_change(
        c,
        account,
        modseq,
        ObjectKind::Mailbox,
        ChangeOp::Destroyed,
        id,
        None,
    )?;
    ctx.publish(account, modseq);
    Ok(())
}

pub fn set_subscribed(
    ctx: &mut WriteCtx<'_>,
    account: AccountId,
    id: MailboxId,
    on: bool,
) -> Result<()> {
    let c = ctx.conn;
    let current = mailbox_by_id(c, account, id)?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {id}")))?;
    if current.subscribed == on {
        return Ok(());
    }
    let modseq = bump_modseq(c, account)?;
    c.execute(
        "UPDATE mailboxes SET subscribed = ?3 WHERE id = ?1 AND account_id = ?2",
        params![id as i64, account as i64, on],
    )?;
    log_change(
        c,
        account,
        modseq,
        ObjectKind::Mailbox,
        ChangeOp::Updated,
        id,
        None,
    )?;
    ctx.publish(account, modseq);
    Ok(())
}

// ---------------------------------------------------------------- message changes

struct MessageRow {
    id: MessageId,
    mailbox: MailboxId,
    uid: Uid,
    thread: ThreadId,
    flags: Flags,
    keywords: Vec<String>,
    size: u64,
    modseq: ModSeq,
    blob: i64,
}

fn load_row(c: &Connection, account: AccountId, id: MessageId) -> Result<Option<MessageRow>> {
    Ok(c.prepare_cached(
        "SELECT mailbox_id, uid, thread_id, flags, keywords, size, modseq, blob_id FROM messages
         WHERE id = ?1 AND account_id = ?2",
    )?
    .query_row(params![id as i64, account as i64], |r| {
        Ok(MessageRow {
            id,
            mailbox: r.get::<_, i64>(0)? as u64,
            uid: r.get::<_, i64>(1)? as u32,
            thread: r.get::<_, i64>(2)? as u64,
            flags: Flags::from_bits(r.get::<_, i64>(3)? as u8),
            keywords: parse_keywords(&r.get::<_, String>(4)?),
            size: r.get::<_, i64>(5)? as u64,
            modseq: r.get::<_, i64>(6)? as u64,
            blob: r.get(7)?,
        })
    })
    .optional()?)
}

pub fn store_flags(
    ctx: &mut WriteCtx<'_>,
    account: AccountId,
    ids: &[MessageId],
    change: &FlagChange,
    unchanged_since: Option<ModSeq>,
) -> Result<FlagUpdate> {
    let c = ctx.conn;
    let mut out = FlagUpdate::default();
    let mut modseq = None;
    for &id in ids {
        let Some(row) = load_row(c, account, id)? else {
            continue;
        };
        if let Some(limit) = unchanged_since
            && row.modseq > limit
        {
            out.skipped.push(id);
            continue;
        }
        let (new_flags, new_keywords) = apply_change(row.flags, &row.keywords, change);
        let new_text = keywords_text(&new_keywords);
        if new_flags == row.flags && new_text == keywords_text(&row.keywords) {
            continue;
        }
        let m = match modseq {
            Some(m) => m,
            None => {
                let m = bump_modseq(c, account)?;
                modseq = Some(m);
                m
            }
        };
        c.prepare_cached(
            "UPDATE messages SET flags = ?2, keywords = ?3, modseq = ?4 WHERE id = ?1",
        )?
        .execute(params![id as i64, new_flags.bits(), new_text, m as i64])?;
        adjust_counters(c, row.mailbox, -1, row.flags, row.size, m)?;
        adjust_counters(c, row.mailbox, 1, new_flags, row.size, m)?;
        note_keywords(c, row.mailbox, &new_keywords)?;
        let at = Located {
            mailbox: row.mailbox,
            uid: row.uid,
            thread: row.thread,
        };
        log_change(
            c,
            account,
            m,
            ObjectKind::Email,
            ChangeOp::Updated,
            id,
            Some(&at),
        )?;
        out.changed.push(FlagState {
            id,
            mailbox_id: row.mailbox,
            uid: row.uid,
            flags: new_flags,
            keywords: parse_keywords(&new_text),
            modseq: m,
        });
    }
    out.state = match modseq {
        Some(m) => {
            ctx.publish(account, m);
            m
        }
        None => state(c, account)?,
    };
    Ok(out)
}

fn next_uid(c: &Connection, mailbox: MailboxId) -> Result<Uid> {
    let uid: i64 = c
        .prepare_cached(
            "UPDATE mailboxes SET uidnext = uidnext + 1 WHERE id = ?1 RETURNING uidnext - 1",
        )?
        .query_row([mailbox as i64], |r| r.get(0))?;
    if uid >= u32::MAX as i64 {
        return Err(StoreError::Invalid(format!(
            "mailbox {mailbox} has run out of UIDs"
        )));
    }
    Ok(uid as u32)
}

pub fn copy_messages(
    ctx: &mut WriteCtx<'_>,
    account: AccountId,
    ids: &[MessageId],
    dest: MailboxId,
) -> Result<Vec<Delivered>> {
    let c = ctx.conn;
    if mailbox_by_id(c, account, dest)?.is_none() {
        return Err(StoreError::NotFound(format!("mailbox {dest}")));
    }
    let mut rows = Vec::with_capacity(ids.len());
    let mut total = 0u64;
    for &id in ids {
        if let Some(r) = load_row(c, account, id)? {
            total += r.size;
            rows.push(r);
        }
    }
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    check_quota(c, account, total)?;
    let modseq = bump_modseq(c, account)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let uid = next_uid(c, dest)?;
        c.prepare_cached(
            "INSERT INTO messages (account_id, mailbox_id, uid, blob_id, thread_id, flags, keywords,
                                   internal_date, size, modseq, sent_at, meta, light)
             SELECT account_id, ?2, ?3, blob_id, thread_id, flags, keywords, internal_date, size, ?4,
                    sent_at, meta, light
             FROM messages WHERE id = ?1",
        )?
        .execute(params![r.id as i64, dest as i64, uid, modseq as i64])?;
        let new_id = c.last_insert_rowid() as u64;
        c.prepare_cached("UPDATE blobs SET refs = refs + 1 WHERE id = ?1")?
            .execute([r.blob])?;
        adjust_counters(c, dest, 1, r.flags, r.size, modseq)?;
        note_keywords(c, dest, &r.keywords)?;
        let at = Located {
            mailbox: dest,
            uid,
            thread: r.thread,
        };
        log_change(
            c,
            account,
            modseq,
            ObjectKind::Email,
            ChangeOp::Created,
            new_id,
            Some(&at),
        )?;
        out.push(Delivered {
            account,
            mailbox: dest,
            uid,
            id: new_id,
            modseq,
        });
    }
    ctx.publish(account, modseq);
    Ok(out)
}

pub fn move_messages(
    ctx: &mut WriteCtx<'_>,
    account: AccountId,
    ids: &[MessageId],
    dest: MailboxId,
) -> Result<Vec<Moved>> {
    let c = ctx.conn;
    if mailbox_by_id(c, account, dest)?.is_none() {
        return Err(StoreError::NotFound(format!("mailbox {dest}")));
    }
    let mut modseq = None;
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        let Some(r) = load_row(c, account, id)? else {
            continue;
        };
        if r.mailbox == dest {
            continue;
        }
        let m = match modseq {
            Some(m) => m,
            None => {
                let m = bump_modseq(c, account)?;
                modseq = Some(m);
                m
            }
        };
        let uid = next_uid(c, dest)?;
        c.prepare_cached(
            "UPDATE messages SET mailbox_id = ?2, uid = ?3, modseq = ?4 WHERE id = ?1",
        )?
        .execute(params![id as i64, dest as i64, uid, m as i64])?;
        adjust_counters(c, r.mailbox, -1, r.flags, r.size, m)?;
        adjust_counters(c, dest, 1, r.flags, r.size, m)?;
        note_keywords(c, dest, &r.keywords)?;
        let left = Located {
            mailbox: r.mailbox,
            uid: r.uid,
            thread: r.thread,
        };
        log_change(
            c,
            account,
            m,
            ObjectKind::Email,
            ChangeOp::LeftMailbox,
            id,
            Some(&left),
        )?;
        let arrived = Located {
            mailbox: dest,
            uid,
            thread: r.thread,
        };
        log_change(
            c,
            account,
            m,
            ObjectKind::Email,
            ChangeOp::Updated,
            id,
            Some(&arrived),
        )?;
        out.push(Moved {
            id,
            old_uid: r.uid,
            new_uid: uid,
            modseq: m,
        });
    }
    if let Some(m) = modseq {
        ctx.publish(account, m);
    }
    Ok(out)
}

pub fn uid_map(
    c: &Connection,
    account: AccountId,
    mailbox: MailboxId,
) -> Result<Vec<(Uid, MessageId)>> {
    let mut stmt = c.prepare_cached(
        "SELECT uid, id FROM messages WHERE mailbox_id = ?1 AND account_id = ?2 ORDER BY uid",
    )?;
    let rows = stmt.query_map(params![mailbox as i64, account as i64], |r| {
        Ok((r.get::<_, i64>(0)? as u32, r.get::<_, i64>(1)? as u64))
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Sorted, merged copies of inclusive UID ranges, so that no message is
/// returned twice.
fn merge_ranges(ranges: &[(Uid, Uid)]) -> Vec<(Uid, Uid)> {
    let mut sorted: Vec<(Uid, Uid)> = ranges.iter().map(|&(a, b)| (a.min(b), a.max(b))).collect();
    sorted.sort_unstable();
    let mut merged: Vec<(Uid, Uid)> = Vec::with_capacity(sorted.len());
    for (a, b) in sorted {
        match merged.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

pub fn messages_by_uid(
    c: &Connection,
    account: AccountId,
    mailbox: MailboxId,
    ranges: &[(Uid, Uid)],
) -> Result<Vec<MessageSummary>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {SUMMARY_COLS} FROM messages
         WHERE mailbox_id = ?1 AND uid BETWEEN ?2 AND ?3 AND account_id = ?4 ORDER BY uid"
    ))?;
    let mut out = Vec::new();
    for (a, b) in merge_ranges(ranges) {
        let rows = stmt.query_map(
            params![mailbox as i64, a, b, account as i64],
            summary_from_row,
        )?;
        for r in rows {
            out.push(r?);
        }
    }
    Ok(out)
}

pub fn records_by_uid(
    c: &Connection,
    account: AccountId,
    mailbox: MailboxId,
    ranges: &[(Uid, Uid)],
) -> Result<Vec<MessageRecord>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {SUMMARY_COLS}, meta FROM messages
         WHERE mailbox_id = ?1 AND uid BETWEEN ?2 AND ?3 AND account_id = ?4 ORDER BY uid"
    ))?;
    // One read transaction for all ranges: one snapshot, and the file locks
    // taken once rather than per range.
    let tx = c.unchecked_transaction()?;
    let mut out = Vec::new();
    for (a, b) in merge_ranges(ranges) {
        let mut rows = stmt.query(params![mailbox as i64, a, b, account as i64])?;
        while let Some(r) = rows.next()? {
            // Decoded straight from SQLite's buffer: no copy.
            let stored = r.get_ref(10)?.as_bytes().map_err(rusqlite::Error::from)?;
            let meta = pochta_message::MessageMeta::decode(stored)?;
            out.push(MessageRecord {
                summary: summary_from_row(r)?,
                meta,
            });
        }
    }
    drop(stmt);
    tx.finish()?;
    Ok(out)
}

pub fn first_unseen(c: &Connection, account: AccountId, mailbox: MailboxId) -> Result<Option<Uid>> {
    // The scan stays inside SQLite (no rows are built); flags are in the row.
    Ok(c.prepare_cached(
        "SELECT MIN(uid) FROM messages WHERE mailbox_id = ?1 AND account_id = ?2 AND (flags & 1) = 0",
    )?
    .query_row(params![mailbox as i64, account as i64], |r| r.get::<_, Option<i64>>(0))?
    .map(|u| u as u32))
}

pub fn deleted(
    c: &Connection,
    account: AccountId,
    mailbox: MailboxId,
) -> Result<Vec<(Uid, MessageId)>> {
    let mut stmt = c.prepare_cached(
        "SELECT uid, id FROM messages WHERE mailbox_id = ?1 AND account_id = ?2 AND (flags & 8) != 0 ORDER BY uid",
    )?;
    let rows = stmt.query_map(params![mailbox as i64, account as i64], |r| {
        Ok((r.get::<_, i64>(0)? as u32, r.get::<_, i64>(1)? as u64))
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn changed_since(
    c: &Connection,
    account: AccountId,
    mailbox: MailboxId,
    modseq: ModSeq,
) -> Result<Vec<MessageSummary>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {SUMMARY_COLS} FROM messages
         WHERE mailbox_id = ?1 AND account_id = ?2 AND modseq > ?3 ORDER BY uid"
    ))?;
    let rows = stmt.query_map(
        params![mailbox as i64, account as i64, modseq as i64],
        summary_from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn records(
    c: &Connection,
    account: AccountId,
    ids: &[MessageId],
) -> Result<Vec<MessageRecord>> {
    // One read transaction: one snapshot for all of them, and the file locks
    // taken once rather than per message.
    let tx = c.unchecked_transaction()?;
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        if let Some(r) = message(c, account, id)? {
            out.push(r);
        }
    }
    tx.finish()?;
    Ok(out)
}

/// Follows [`SUMMARY_COLS`]: the light metadata, and the full metadata only where
/// the light one is missing (the CASE keeps SQLite from reading every `meta`).
const LIGHT_COLS: &str = "light, CASE WHEN light = '' THEN meta END";

fn light_record_from_row(r: &Row<'_>) -> Result<MessageRecord> {
    let summary = summary_from_row(r)?;
    // Decoded straight from SQLite's buffers: no copy of the JSON text.
    let bytes = |i: usize| -> rusqlite::Result<&[u8]> { Ok(r.get_ref(i)?.as_bytes()?) };
    let light = bytes(10)?;
    let meta = if light.is_empty() {
        // Written before schema 2's backfill could run: derive it now.
        pochta_message::MessageMeta::decode(bytes(11)?)?.light()
    } else {
        pochta_message::MessageMeta::decode(light)?
    };
    Ok(MessageRecord { summary, meta })
}

pub fn light_records(
    c: &Connection,
    account: AccountId,
    mailbox: MailboxId,
) -> Result<Vec<MessageRecord>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {SUMMARY_COLS}, {LIGHT_COLS} FROM messages WHERE mailbox_id = ?1 AND account_id = ?2 ORDER BY uid"
    ))?;
    let mut rows = stmt.query(params![mailbox as i64, account as i64])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(light_record_from_row(r)?);
    }
    Ok(out)
}

pub fn account_light_records(c: &Connection, account: AccountId) -> Result<Vec<MessageRecord>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {SUMMARY_COLS}, {LIGHT_COLS} FROM messages WHERE account_id = ?1 ORDER BY id"
    ))?;
    let mut rows = stmt.query([account as i64])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(light_record_from_row(r)?);
    }
    Ok(out)
}

/// Ids per statement in [`light_records_by_ids`]; a short last batch repeats
/// its last id, so that one cached statement serves every batch.
const LIGHT_BATCH: usize = 200;

pub fn light_records_by_ids(
    c: &Connection,
    account: AccountId,
    ids: &[MessageId],
) -> Result<Vec<MessageRecord>> {
    let mut wanted: Vec<i64> = ids.iter().map(|&id| id as i64).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let placeholders = vec!["?"; LIGHT_BATCH].join(", ");
    // `+account_id`: without it SQLite walks the account's whole thread index
    // (account_id, thread_id) for every batch instead of looking the ids up.
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {SUMMARY_COLS}, {LIGHT_COLS} FROM messages
         WHERE id IN ({placeholders}) AND +account_id = ? ORDER BY id"
    ))?;
    let mut out = Vec::with_capacity(wanted.len());
    for chunk in wanted.chunks(LIGHT_BATCH) {
        let last = chunk.last().copied().unwrap_or_default();
        let values = chunk
            .iter()
            .copied()
            .chain(std::iter::repeat(last))
            .take(LIGHT_BATCH)
            .chain(std::iter::once(account as i64));
        let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
        while let Some(r) = rows.next()? {
            out.push(light_record_from_row(r)?);
        }
    }
    Ok(out)
}

pub fn thread_messages(
    c: &Connection,
    account: AccountId,
    threads: &[ThreadId],
) -> Result<Vec<(ThreadId, Vec<MessageId>)>> {
    // messages_by_thread finds the thread's rows; sorting a thread is cheap.
    let mut stmt = c.prepare_cached(
        "SELECT id FROM messages WHERE account_id = ?1 AND thread_id = ?2 ORDER BY internal_date, id",
    )?;
    let mut done = HashSet::new();
    let mut out = Vec::new();
    for &thread in threads {
        if !done.insert(thread) {
            continue;
        }
        let ids: Vec<MessageId> = stmt
            .query_map(params![account as i64, thread as i64], |r| {
                r.get::<_, i64>(0).map(|v| v as u64)
            })?
            .collect::<rusqlite::Result<_>>()?;
        if !ids.is_empty() {
            out.push((thread, ids));
        }
    }
    Ok(out)
}

pub fn mailbox_thread_counts(c: &Connection, account: AccountId) -> Result<Vec<MailboxCounts>> {
    // RFC 8621 §2: unread is "neither $seen nor $draft"; unreadThreads is the
    // spec's simplest reading (an unread message in this mailbox). The join is on
    // the mailbox alone so that each mailbox's rows come from messages_by_uid
    // (with the account too, SQLite walked the whole account once per mailbox).
    let unread = Flags::SEEN.union(Flags::DRAFT).bits();
    let mut stmt = c.prepare_cached(&format!(
        "SELECT b.id, COUNT(DISTINCT m.thread_id),
                COUNT(DISTINCT CASE WHEN m.flags & {unread} = 0 THEN m.thread_id END),
                COUNT(CASE WHEN m.flags & {unread} = 0 THEN 1 END)
         FROM mailboxes b LEFT JOIN messages m ON m.mailbox_id = b.id
         WHERE b.account_id = ?1 GROUP BY b.id ORDER BY b.id"
    ))?;
    let rows = stmt.query_map([account as i64], |r| {
        Ok(MailboxCounts {
            mailbox_id: r.get::<_, i64>(0)? as u64,
            total_threads: r.get::<_, i64>(1)? as u32,
            unread_threads: r.get::<_, i64>(2)? as u32,
            unread_emails: r.get::<_, i64>(3)? as u32,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

// ---------------------------------------------------------------- outbound queue

/// Queues the outbound part of a delivery; returns the queue id.
fn enqueue(c: &Connection, blob: i64, size: u64, o: &Outbound) -> Result<u64> {
    let now = now();
    c.prepare_cached(
        "INSERT INTO queue (blob_id, mail_from, envid, ret_full, account_id, created_at, expires_at, size, smtputf8, eightbit)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        blob,
        o.mail_from.as_ref().map(|a| a.to_smtp()).unwrap_or_default(),
        o.envid,
        o.ret_full,
        o.account.map(|a| a as i64),
        now,
        o.expires_at,
        size as i64,
        o.smtputf8,
        o.eightbit,
    ])?;
    let queue_id = c.last_insert_rowid();
    let mut insert = c.prepare_cached(
        "INSERT INTO queue_rcpt (queue_id, address, domain, orcpt, notify, next_attempt, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )?;
    for r in &o.recipients {
        insert.execute(params![
            queue_id,
            r.address.to_smtp(),
            r.address.domain().as_str(),
            r.orcpt,
            r.notify,
            now,
        ])?;
    }
    Ok(queue_id as u64)
}

fn queue_state(code: i64) -> QueueState {
    match code {
        1 => QueueState::Delivered,
        2 => QueueState::Failed,
        _ => QueueState::Queued,
    }
}

fn queued_message(r: &Row<'_>) -> rusqlite::Result<QueuedMessage> {
    let from: String = r.get(2)?;
    Ok(QueuedMessage {
        id: r.get::<_, i64>(0)? as u64,
        blob_id: r.get::<_, i64>(1)? as u64,
        mail_from: if from.is_empty() {
            None
        } else {
            Address::parse(&from).ok()
        },
        envid: r.get(3)?,
        ret_full: r.get(4)?,
        account: r.get::<_, Option<i64>>(5)?.map(|a| a as u64),
        created_at: r.get(6)?,
        expires_at: r.get(7)?,
        warned: r.get(8)?,
        size: r.get::<_, i64>(9)? as u64,
        smtputf8: r.get(10)?,
        eightbit: r.get(11)?,
        recipients: Vec::new(),
    })
}

const QUEUE_COLS: &str = "q.id, q.blob_id, q.mail_from, q.envid, q.ret_full, q.account_id, q.created_at, q.expires_at, q.warned, q.size, q.smtputf8, q.eightbit";

fn queued_recipient(r: &Row<'_>, offset: usize) -> rusqlite::Result<Option<QueuedRecipient>> {
    let address: String = r.get(offset + 1)?;
    let Ok(address) = Address::parse(&address) else {
        return Ok(None);
    };
    Ok(Some(QueuedRecipient {
        id: r.get::<_, i64>(offset)? as u64,
        address,
        orcpt: r.get(offset + 2)?,
        notify: r.get::<_, i64>(offset + 3)? as u8,
        state: queue_state(r.get(offset + 4)?),
        attempts: r.get::<_, i64>(offset + 5)? as u32,
        next_attempt: r.get(offset + 6)?,
        last_error: r.get(offset + 7)?,
        remote: r.get(offset + 8)?,
    }))
}

const RCPT_COLS: &str = "r.id, r.address, r.orcpt, r.notify, r.state, r.attempts, r.next_attempt, r.last_error, r.remote";

pub fn queue_due(c: &Connection, now: i64, limit: usize, lease: i64) -> Result<Vec<QueuedMessage>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {QUEUE_COLS}, {RCPT_COLS} FROM queue_rcpt r JOIN queue q ON q.id = r.queue_id
         WHERE r.state = 0 AND r.next_attempt <= ?1 AND r.lease_until <= ?1
         ORDER BY r.next_attempt, r.id LIMIT ?2"
    ))?;
    let mut rows = stmt.query(params![now, limit.min(i64::MAX as usize) as i64])?;
    let mut out: Vec<QueuedMessage> = Vec::new();
    let mut leased = Vec::new();
    while let Some(r) = rows.next()? {
        let Some(rcpt) = queued_recipient(r, 12)? else {
            continue;
        };
        leased.push(rcpt.id);
        let id = r.get::<_, i64>(0)? as u64;
        match out.iter_mut().find(|m| m.id == id) {
            Some(m) => m.recipients.push(rcpt),
            None => {
                let mut m = queued_message(r)?;
                m.recipients.push(rcpt);
                out.push(m);
            }
        }
    }
    drop(rows);
    let mut lease_stmt =
        c.prepare_cached("UPDATE queue_rcpt SET lease_until = ?2 WHERE id = ?1")?;
    for id in leased {
        lease_stmt.execute(params![id as i64, now + lease])?;
    }
    Ok(out)
}

pub fn queue_record(
    ctx: &mut WriteCtx<'_>,
    outcomes: &[(u64, AttemptOutcome)],
    dsn: Option<PreparedDelivery>,
) -> Result<()> {
    let c = ctx.conn;
    let now = now();
    let mut touched = HashSet::new();
    for (id, outcome) in outcomes {
        let (state, next, error, remote): (i64, Option<i64>, Option<&str>, Option<&str>) =
            match outcome {
                AttemptOutcome::Delivered { remote, reply } => {
                    (1, None, Some(reply.as_str()), remote.as_deref())
                }
                AttemptOutcome::Deferred {
                    retry_at,
                    error,
                    remote,
                } => (0, Some(*retry_at), Some(error.as_str()), remote.as_deref()),
                AttemptOutcome::Failed { error, remote } => {
                    (2, None, Some(error.as_str()), remote.as_deref())
                }
            };
        let queue_id: Option<i64> = c
            .prepare_cached(
                "UPDATE queue_rcpt SET state = ?2, attempts = attempts + 1, next_attempt = COALESCE(?3, next_attempt),
                        lease_until = 0, last_error = ?4, remote = COALESCE(?5, remote), updated_at = ?6
                 WHERE id = ?1 RETURNING queue_id",
            )?
            .query_row(params![*id as i64, state, next, error, remote, now], |r| r.get(0))
            .optional()?;
        if let Some(q) = queue_id {
            touched.insert(q);
        }
    }
    // Messages with no recipient left to try leave the queue (and free their blob).
    for q in touched {
        let waiting = c
            .prepare_cached("SELECT 1 FROM queue_rcpt WHERE queue_id = ?1 AND state = 0 LIMIT 1")?
            .exists([q])?;
        if !waiting {
            queue_delete(c, q as u64)?;
        }
    }
    if let Some(p) = dsn {
        deliver(ctx, p)?;
    }
    Ok(())
}

pub fn queue_list(c: &Connection, only: Option<u64>) -> Result<Vec<QueuedMessage>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {QUEUE_COLS}, {RCPT_COLS} FROM queue q JOIN queue_rcpt r ON r.queue_id = q.id
         WHERE ?1 IS NULL OR q.id = ?1 ORDER BY q.id, r.id"
    ))?;
    let mut rows = stmt.query(params![only.map(|i| i as i64)])?;
    let mut out: Vec<QueuedMessage> = Vec::new();
    while let Some(r) = rows.next()? {
        let id = r.get::<_, i64>(0)? as u64;
        if out.last().map(|m| m.id) != Some(id) {
            out.push(queued_message(r)?);
        }
        if let (Some(m), Some(rcpt)) = (out.last_mut(), queued_recipient(r, 12)?) {
            m.recipients.push(rcpt);
        }
    }
    Ok(out)
}

pub fn queue_blob(c: &Connection, id: u64) -> Result<Vec<u8>> {
    c.prepare_cached("SELECT b.data FROM queue q JOIN blobs b ON b.id = q.blob_id WHERE q.id = ?1")?
        .query_row([id as i64], |r| r.get::<_, Vec<u8>>(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("queued message {id}")))
}

pub fn queue_retry(ctx: &mut WriteCtx<'_>, id: Option<u64>) -> Result<u64> {
    let c = ctx.conn;
    let n = c.execute(
        "UPDATE queue_rcpt SET next_attempt = ?2 WHERE state = 0 AND (?1 IS NULL OR queue_id = ?1)",
        params![id.map(|i| i as i64), now()],
    )?;
    if n == 0
        && let Some(id) = id
        && !c
            .prepare_cached("SELECT 1 FROM queue WHERE id = ?1")?
            .exists([id as i64])?
    {
        return Err(StoreError::NotFound(format!("queued message {id}")));
    }
    if n > 0 {
        // A changing value, so that the watch fires: the current time in ms.
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1);
        ctx.publish(crate::QUEUE_CHANNEL, stamp);
    }
    Ok(n as u64)
}

pub fn queue_delete(c: &Connection, id: u64) -> Result<()> {
    let blob: i64 = c
        .prepare_cached("DELETE FROM queue WHERE id = ?1 RETURNING blob_id")?
        .query_row([id as i64], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("queued message {id}")))?;
    c.prepare_cached("DELETE FROM queue_rcpt WHERE queue_id = ?1")?
        .execute([id as i64])?;
    release_blob(c, blob)
}

// ---------------------------------------------------------------- JMAP uploads

fn check_account(c: &Connection, account: AccountId) -> Result<()> {
    if c.prepare_cached("SELECT 1 FROM accounts WHERE id = ?1")?
        .exists([account as i64])?
    {
        Ok(())
    } else {
        Err(StoreError::NotFound(format!("account {account}")))
    }
}

pub fn upload(
    c: &Connection,
    account: AccountId,
    data: &[u8],
    content_type: &str,
) -> Result<UploadedBlob> {
    check_account(c, account)?;
    let size = data.len() as u64;
    c.prepare_cached("INSERT INTO blobs (refs, size, data) VALUES (1, ?1, ?2)")?
        .execute(params![size as i64, data])?;
    let blob = c.last_insert_rowid();
    c.prepare_cached(
        "INSERT INTO uploads (blob_id, account_id, content_type, size, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        blob,
        account as i64,
        content_type,
        size as i64,
        now()
    ])?;
    Ok(UploadedBlob {
        blob_id: blob as u64,
        size,
        content_type: content_type.to_string(),
    })
}

pub fn purge_uploads(c: &Connection, older_than: i64) -> Result<u64> {
    let blobs: Vec<i64> = c
        .prepare_cached("DELETE FROM uploads WHERE created_at < ?1 RETURNING blob_id")?
        .query_map([older_than], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for &blob in &blobs {
        release_blob(c, blob)?;
    }
    Ok(blobs.len() as u64)
}

// ---------------------------------------------------------------- JMAP objects

/// The kind code of a kind kept in `objects`; Email and Mailbox have tables of
/// their own.
fn object_kind_code(kind: ObjectKind) -> Result<i64> {
    if kind.is_stored_object() {
        Ok(kind_code(kind))
    } else {
        Err(StoreError::Invalid(format!(
            "{kind:?} is not kept as a stored object"
        )))
    }
}

pub fn objects(c: &Connection, account: AccountId, kind: ObjectKind) -> Result<Vec<StoredObject>> {
    let code = object_kind_code(kind)?;
    // objects_by_kind entries end with the id, so the order costs no sort.
    let mut stmt = c.prepare_cached(
        "SELECT id, data FROM objects WHERE account_id = ?1 AND kind = ?2 ORDER BY id",
    )?;
    let rows = stmt.query_map(params![account as i64, code], |r| {
        Ok(StoredObject {
            id: r.get::<_, i64>(0)? as u64,
            data: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn objects_by_id(
    c: &Connection,
    account: AccountId,
    kind: ObjectKind,
    ids: &[u64],
) -> Result<Vec<StoredObject>> {
    let code = object_kind_code(kind)?;
    let mut stmt = c.prepare_cached(
        "SELECT data FROM objects WHERE id = ?1 AND account_id = ?2 AND kind = ?3",
    )?;
    let mut done = HashSet::new();
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        if !done.insert(id) {
            continue;
        }
        if let Some(data) = stmt
            .query_row(params![id as i64, account as i64, code], |r| r.get(0))
            .optional()?
        {
            out.push(StoredObject { id, data });
        }
    }
    Ok(out)
}

pub fn set_objects(
    ctx: &mut WriteCtx<'_>,
    account: AccountId,
    kind: ObjectKind,
    ops: Vec<ObjectOp>,
) -> Result<ObjectSetResult> {
    let c = ctx.conn;
    let code = object_kind_code(kind)?;
    let mut modseq = None;
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        let done = match op {
            ObjectOp::Create(data) => {
                c.prepare_cached(
                    "INSERT INTO objects (account_id, kind, data) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![account as i64, code, data])?;
                Some((ChangeOp::Created, c.last_insert_rowid() as u64))
            }
            ObjectOp::Update(id, data) => {
                let n = c
                    .prepare_cached(
                        "UPDATE objects SET data = ?4 WHERE id = ?1 AND account_id = ?2 AND kind = ?3",
                    )?
                    .execute(params![id as i64, account as i64, code, data])?;
                (n > 0).then_some((ChangeOp::Updated, id))
            }
            ObjectOp::Destroy(id) => {
                let n = c
                    .prepare_cached(
                        "DELETE FROM objects WHERE id = ?1 AND account_id = ?2 AND kind = ?3",
                    )?
                    .execute(params![id as i64, account as i64, code])?;
                (n > 0).then_some((ChangeOp::Destroyed, id))
            }
        };
        let Some((change, id)) = done else {
            results.push(Err(ObjectError::NotFound));
            continue;
        };
        // One MODSEQ for the whole call, taken at the first change. An unknown
        // account fails here, and the job's savepoint undoes the insert.
        let m = match modseq {
            Some(m) => m,
            None => {
                let m = bump_modseq(c, account)?;
                modseq = Some(m);
                m
            }
        };
        log_change(c, account, m, kind, change, id, None)?;
        results.push(Ok(id));
    }
    let state = match modseq {
        Some(m) => {
            ctx.publish(account, m);
            m
        }
        None => kind_state(c, account, kind)?,
    };
    Ok(ObjectSetResult { results, state })
}

// ---------------------------------------------------------------- bearer tokens

const TOKEN_COLS: &str = "id, account_id, name, created_at, last_used";

fn token_from_row(r: &Row<'_>) -> rusqlite::Result<TokenInfo> {
    Ok(TokenInfo {
        id: r.get::<_, i64>(0)? as u64,
        account_id: r.get::<_, i64>(1)? as u64,
        name: r.get(2)?,
        created_at: r.get(3)?,
        last_used: r.get(4)?,
    })
}

pub fn create_token(
    c: &Connection,
    account: AccountId,
    hash: &[u8],
    name: &str,
) -> Result<TokenInfo> {
    if hash.is_empty() {
        return Err(StoreError::Invalid("a token needs a hash".into()));
    }
    check_account(c, account)?;
    let created_at = now();
    let res = c.execute(
        "INSERT INTO tokens (account_id, hash, name, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![account as i64, hash, name, created_at],
    );
    match res {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::AlreadyExists("a token with this hash".into()));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(TokenInfo {
        id: c.last_insert_rowid() as u64,
        account_id: account,
        name: name.to_string(),
        created_at,
        last_used: None,
    })
}

pub fn token_account(c: &Connection, hash: &[u8]) -> Result<Option<TokenInfo>> {
    Ok(
        c.prepare_cached(&format!("SELECT {TOKEN_COLS} FROM tokens WHERE hash = ?1"))?
            .query_row([hash], token_from_row)
            .optional()?,
    )
}

pub fn touch_token(c: &Connection, id: u64, now: i64) -> Result<()> {
    c.prepare_cached(
        "UPDATE tokens SET last_used = ?2
         WHERE id = ?1 AND (last_used IS NULL OR last_used <= ?2 - ?3)",
    )?
    .execute(params![id as i64, now, crate::TOKEN_TOUCH_INTERVAL])?;
    Ok(())
}

pub fn tokens(c: &Connection, account: Option<AccountId>) -> Result<Vec<TokenInfo>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {TOKEN_COLS} FROM tokens WHERE ?1 IS NULL OR account_id = ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map([account.map(|a| a as i64)], token_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn delete_token(c: &Connection, id: u64) -> Result<()> {
    if c.prepare_cached("DELETE FROM tokens WHERE id = ?1")?
        .execute([id as i64])?
        == 0
    {
        return Err(StoreError::NotFound(format!("token {id}")));
    }
    Ok(())
}

// ---------------------------------------------------------------- vacation replies

pub fn vacation_should_reply(
    c: &Connection,
    account: AccountId,
    sender: &str,
    now: i64,
    period: i64,
) -> Result<bool> {
    // One statement checks and records: a new sender is inserted, a known one is
    // updated only when its last reply is at least `period` old. Either way one
    // row changes exactly when a reply is due.
    let changed = c
        .prepare_cached(
            "INSERT INTO vacation_sent (account_id, sender, sent_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (account_id, sender) DO UPDATE SET sent_at = excluded.sent_at
             WHERE vacation_sent.sent_at <= ?3 - ?4",
        )?
        .execute(params![account as i64, sender, now, period.max(0)])?;
    Ok(changed > 0)
}

pub fn vacation_reset(c: &Connection, account: AccountId) -> Result<()> {
    c.prepare_cached("DELETE FROM vacation_sent WHERE account_id = ?1")?
        .execute([account as i64])?;
    Ok(())
}
