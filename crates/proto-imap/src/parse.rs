//! The command parser: one framed command (from [`crate::frame`]) to a
//! [`Command`].
//!
//! The grammar is RFC 9051 §9 with the IMAP4rev1 forms of RFC 3501 and the
//! extensions pochta serves (the list is in [`parse_command`]). The parser is
//! strict where the RFCs are (one space between tokens, no trailing garbage,
//! message numbers from 1, valid dates) and tolerant where real clients are
//! not: command names and keywords in any case, a bare LF for CRLF, a one-digit
//! day in APPEND dates. Every rejection is an [`Err`] carrying the tag, if it
//! could be read, and a message naming what was expected; nothing panics,
//! recursion (nested search keys) is limited, and nothing is allocated beyond
//! the size of the input.

mod cursor;
mod fetch_att;
mod search_key;
#[cfg(test)]
mod tests;

use std::fmt;

use cursor::{Cursor, Res};
use fetch_att::{fetch_attrs, fetch_modifiers};
use search_key::{charset, search_keys, search_returns};

use crate::encode::is_astring_char;
use crate::types::{
    AppendMessage, Command, CommandBody, FetchModifiers, ListReturn, ListSelect, QResync,
    QuotaLimit, SearchReturn, SelectParams, SeqNum, SequenceSet, SortCriterion, SortKey,
    StatusItem, StoreMode, ThreadAlgorithm,
};

pub use search_key::MAX_DEPTH as MAX_SEARCH_DEPTH;

/// Why a command could not be parsed. The session answers
/// `tag BAD <message>` (untagged `* BAD` when `tag` is `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The command's tag, if it could be read.
    pub tag: Option<String>,
    /// What was wrong, naming the command and what was expected, e.g.
    /// `FETCH: expected a fetch attribute, got "FOO"`.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tag {
            Some(tag) => write!(f, "{tag}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses one command as returned by [`Frame::Command`](crate::frame::Frame):
/// the tag, the command, its arguments with their literals, and the final
/// CRLF (or LF), with nothing after it.
///
/// Supported: CAPABILITY, NOOP, LOGOUT, STARTTLS, AUTHENTICATE (with SASL-IR,
/// RFC 4959), LOGIN, ENABLE (RFC 5161), ID (RFC 2971), SELECT/EXAMINE (with
/// CONDSTORE/QRESYNC, RFC 7162), CREATE (with USE, RFC 6154), DELETE, RENAME,
/// SUBSCRIBE, UNSUBSCRIBE, LIST (LIST-EXTENDED RFC 5258, LIST-STATUS RFC 5819,
/// SPECIAL-USE RFC 6154), LSUB, NAMESPACE, STATUS (with SIZE RFC 8438,
/// MAILBOXID RFC 8474, APPENDLIMIT RFC 7889, HIGHESTMODSEQ), APPEND (with
/// MULTIAPPEND RFC 3502 and literal8 RFC 3516), IDLE (RFC 2177), CHECK, CLOSE,
/// UNSELECT (RFC 3691), EXPUNGE, UID EXPUNGE (RFC 4315), SEARCH (with ESEARCH
/// RFC 4731, SEARCHRES RFC 5182, MODSEQ, EMAILID/THREADID, OLDER/YOUNGER
/// RFC 5032), FETCH (with BINARY, CHANGEDSINCE/VANISHED, EMAILID/THREADID,
/// PREVIEW RFC 8970, SAVEDATE RFC 8514), STORE (with UNCHANGEDSINCE), COPY,
/// MOVE (RFC 6851), SORT (RFC 5256, ESORT RFC 5267, DISPLAYFROM/DISPLAYTO
/// RFC 5957), THREAD (RFC 5256), GETQUOTA, GETQUOTAROOT, SETQUOTA (RFC 9208),
/// COMPRESS (RFC 4978), and the UID forms of COPY, MOVE, FETCH, SEARCH, STORE,
/// EXPUNGE, SORT and THREAD.
pub fn parse_command(bytes: &[u8]) -> Result<Command, ParseError> {
    let mut c = Cursor::new(bytes);
    let tag = c.take_while(|b| is_astring_char(b) && b != b'+');
    if tag.is_empty() {
        let message = if c.rest().is_empty() || c.at_eol() {
            "empty command line".to_owned()
        } else {
            format!("expected a tag, got {}", c.got())
        };
        return Err(ParseError { tag: None, message });
    }
    let tag = String::from_utf8_lossy(tag).into_owned();
    if !c.eat(b' ') {
        if c.rest().is_empty() || c.at_eol() {
            return Err(ParseError {
                tag: Some(tag),
                message: "expected a space and a command after the tag".to_owned(),
            });
        }
        return Err(ParseError {
            tag: None,
            message: format!("invalid character in the tag, got {}", c.got()),
        });
    }
    let fail = |message: String| ParseError {
        tag: Some(tag.clone()),
        message,
    };
    let name = c.word();
    if name.is_empty() {
        return Err(fail(format!("expected a command, got {}", c.got())));
    }
    let (label, result) = if name == "UID" {
        if !c.eat(b' ') {
            return Err(fail(format!(
                "UID: expected a space and a command, got {}",
                c.got()
            )));
        }
        let sub = c.word();
        let result = match sub.as_str() {
            "COPY" | "MOVE" | "FETCH" | "SEARCH" | "STORE" | "EXPUNGE" | "SORT" | "THREAD" => {
                command(&mut c, &sub, true)
            }
            _ => {
                return Err(fail(format!(
                    "UID: expected COPY, MOVE, FETCH, SEARCH, STORE, EXPUNGE, SORT or \
                     THREAD, got \"{}\"",
                    sub.escape_default()
                )));
            }
        };
        (format!("UID {sub}"), result)
    } else {
        let result = command(&mut c, &name, false);
        (name, result)
    };
    match result {
        Ok(Some(body)) => match c.eol() {
            Ok(()) => Ok(Command { tag, body }),
            Err(m) => Err(fail(format!("{label}: {m}"))),
        },
        Ok(None) => Err(fail(format!(
            "unknown command \"{}\"",
            label.escape_default()
        ))),
        Err(m) => Err(fail(format!("{label}: {m}"))),
    }
}

/// The arguments of command `name` (upper case); `None` if it is unknown.
fn command(c: &mut Cursor<'_>, name: &str, uid: bool) -> Res<Option<CommandBody>> {
    use CommandBody as B;
    Ok(Some(match name {
        "CAPABILITY" => B::Capability,
        "NOOP" => B::Noop,
        "LOGOUT" => B::Logout,
        "STARTTLS" => B::StartTls,
        "NAMESPACE" => B::Namespace,
        "IDLE" => B::Idle,
        "CHECK" => B::Check,
        "CLOSE" => B::Close,
        "UNSELECT" => B::Unselect,
        "EXPUNGE" if uid => {
            c.sp_then("a UID set")?;
            B::UidExpunge(c.sequence_set()?)
        }
        "EXPUNGE" => B::Expunge,
        "ID" => id(c)?,
        "AUTHENTICATE" => authenticate(c)?,
        "LOGIN" => {
            c.sp_then("the user name")?;
            let user = c.astring("a user name")?;
            c.sp_then("the password")?;
            let password = c.astring("a password")?;
            B::Login {
                user,
                password: password.into(),
            }
        }
        "ENABLE" => {
            let mut caps = Vec::new();
            loop {
                c.sp_then("a capability")?;
                caps.push(c.atom_upper("a capability")?);
                if c.at_eol() {
                    break;
                }
            }
            B::Enable(caps)
        }
        "SELECT" | "EXAMINE" => {
            c.sp_then("a mailbox name")?;
            let mailbox = c.mailbox()?;
            let params = select_params(c)?;
            if name == "SELECT" {
                B::Select { mailbox, params }
            } else {
                B::Examine { mailbox, params }
            }
        }
        "CREATE" => create(c)?,
        "DELETE" => B::Delete {
            mailbox: mailbox_arg(c)?,
        },
        "SUBSCRIBE" => B::Subscribe {
            mailbox: mailbox_arg(c)?,
        },
        "UNSUBSCRIBE" => B::Unsubscribe {
            mailbox: mailbox_arg(c)?,
        },
        "RENAME" => {
            let from = mailbox_arg(c)?;
            c.sp_then("the new mailbox name")?;
            let to = c.mailbox()?;
            B::Rename { from, to }
        }
        "LIST" => list(c)?,
        "LSUB" => {
            c.sp_then("the reference name")?;
            let reference = c.astring("a reference name")?;
            c.sp_then("a mailbox pattern")?;
            let pattern = c.list_mailbox()?;
            B::Lsub { reference, pattern }
        }
        "STATUS" => {
            let mailbox = mailbox_arg(c)?;
            c.sp_then("the status items")?;
            let items = c.list_of("the status items", status_item)?;
            B::Status { mailbox, items }
        }
        "APPEND" => append(c)?,
        "SEARCH" => search(c, uid)?,
        "FETCH" => fetch(c, uid)?,
        "STORE" => store(c, uid)?,
        "COPY" | "MOVE" => {
            c.sp_then("a sequence set")?;
            let set = c.sequence_set()?;
            c.sp_then("the destination mailbox")?;
            let mailbox = c.mailbox()?;
            if name == "COPY" {
                B::Copy { uid, set, mailbox }
            } else {
                B::Move { uid, set, mailbox }
            }
        }
        "SORT" => sort(c, uid)?,
        "THREAD" => {
            c.sp_then("the threading algorithm")?;
            let start = c.save();
            let algorithm = match c.word().as_str() {
                "ORDEREDSUBJECT" => ThreadAlgorithm::OrderedSubject,
                "REFERENCES" => ThreadAlgorithm::References,
                _ => {
                    c.restore(start);
                    return c.expected("a threading algorithm (ORDEREDSUBJECT or REFERENCES)");
                }
            };
            c.sp_then("the charset")?;
            let charset = charset(c)?;
            c.sp_then("the search criteria")?;
            let search = search_keys(c)?;
            B::Thread {
                uid,
                algorithm,
                charset,
                search,
            }
        }
        "GETQUOTA" => {
            c.sp_then("the quota root")?;
            B::GetQuota {
                root: c.astring("a quota root")?,
            }
        }
        "GETQUOTAROOT" => B::GetQuotaRoot {
            mailbox: mailbox_arg(c)?,
        },
        "SETQUOTA" => {
            c.sp_then("the quota root")?;
            let root = c.astring("a quota root")?;
            c.sp_then("the list of resource limits")?;
            let limits = c.list_of_maybe_empty("the resource limits", |c| {
                let resource = c.atom_upper("a resource name")?;
                c.sp_then("the resource limit")?;
                let limit = c.number64("a resource limit")?;
                Ok(QuotaLimit { resource, limit })
            })?;
            B::SetQuota { root, limits }
        }
        "COMPRESS" => {
            c.sp_then("the compression mechanism")?;
            B::Compress(c.atom_upper("a compression mechanism")?)
        }
        _ => return Ok(None),
    }))
}

/// ` mailbox`.
fn mailbox_arg(c: &mut Cursor<'_>) -> Res<Vec<u8>> {
    c.sp_then("a mailbox name")?;
    c.mailbox()
}

/// `ID (field value ...)` or `ID NIL` (RFC 2971).
fn id(c: &mut Cursor<'_>) -> Res<CommandBody> {
    c.sp_then("the ID parameter list or NIL")?;
    if c.is_nil() {
        c.skip(3);
        return Ok(CommandBody::Id(None));
    }
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    let pairs = c.list_of_maybe_empty("the ID parameter list", |c| {
        let field = c.string("an ID field name (a string)")?;
        c.sp_then("the ID field value")?;
        let value = c.nstring("an ID field value (a string or NIL)")?;
        Ok((text(field), value.map(text)))
    })?;
    Ok(CommandBody::Id(Some(pairs)))
}

/// `AUTHENTICATE mechanism [SP (base64 / "=")]`.
fn authenticate(c: &mut Cursor<'_>) -> Res<CommandBody> {
    c.sp_then("the SASL mechanism")?;
    let mechanism = String::from_utf8_lossy(c.atom("a SASL mechanism name")?).into_owned();
    let initial = if c.eat(b' ') {
        let ir = c.take_while(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=');
        if !is_base64(ir) {
            return Err(format!(
                "the initial response must be base64 or \"=\", got \"{}\"",
                ir.escape_ascii()
            ));
        }
        Some(ir.to_vec().into())
    } else {
        None
    };
    Ok(CommandBody::Authenticate { mechanism, initial })
}

/// `base64` (RFC 9051): groups of four, `=` padding only at the end; or `=`
/// alone (an empty initial response, RFC 4959).
fn is_base64(s: &[u8]) -> bool {
    if s == b"=" {
        return true;
    }
    if s.is_empty() || !s.len().is_multiple_of(4) {
        return false;
    }
    let body = s
        .strip_suffix(b"==")
        .or_else(|| s.strip_suffix(b"="))
        .unwrap_or(s);
    body.iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// A sequence set of UIDs for QRESYNC, where `*` and `$` are not allowed
/// (RFC 7162 §3.2.5.1).
fn known_set(c: &mut Cursor<'_>, what: &str) -> Res<SequenceSet> {
    let set = c.sequence_set()?;
    match &set {
        SequenceSet::Ranges(r)
            if r.iter()
                .all(|(a, b)| *a != SeqNum::Star && *b != SeqNum::Star) =>
        {
            Ok(set)
        }
        _ => Err(format!("{what} may not contain \"*\" or \"$\"")),
    }
}

/// `[SP "(" select-param *(SP select-param) ")"]` (RFC 7162 §3.1.8, §3.2.5).
fn select_params(c: &mut Cursor<'_>) -> Res<SelectParams> {
    let mut params = SelectParams::default();
    if c.at_eol() {
        return Ok(params);
    }
    c.sp_then("the select parameters")?;
    let items = c.list_of("the select parameters", |c| {
        let start = c.save();
        match c.word().as_str() {
            "CONDSTORE" => Ok(None),
            "QRESYNC" => {
                c.sp_then("the QRESYNC parameters")?;
                c.open()?;
                let uid_validity = c.nz_number("the UIDVALIDITY")?;
                c.sp_then("the mod-sequence")?;
                let modseq = c.number64("a mod-sequence value")?;
                let mut q = QResync {
                    uid_validity,
                    modseq,
                    known_uids: None,
                    seq_match: None,
                };
                if c.eat(b' ') {
                    if c.peek() != Some(b'(') {
                        q.known_uids = Some(known_set(c, "the known UIDs")?);
                        if c.eat(b' ') {
                            q.seq_match = Some(seq_match(c)?);
                        }
                    } else {
                        q.seq_match = Some(seq_match(c)?);
                    }
                }
                c.expect(b')', "\")\" closing the QRESYNC parameters")?;
                Ok(Some(q))
            }
            _ => {
                c.restore(start);
                c.expected("a select parameter (CONDSTORE or QRESYNC)")
            }
        }
    })?;
    let mut condstore = false;
    for item in items {
        match item {
            None if condstore => return Err("CONDSTORE given twice".to_owned()),
            None => condstore = true,
            Some(_) if params.qresync.is_some() => {
                return Err("QRESYNC given twice".to_owned());
            }
            Some(q) => params.qresync = Some(q),
        }
    }
    params.condstore = condstore;
    Ok(params)
}

/// `seq-match-data`: `(` known-sequence-set SP known-uid-set `)`.
fn seq_match(c: &mut Cursor<'_>) -> Res<(SequenceSet, SequenceSet)> {
    c.open()?;
    let seqs = known_set(c, "the known sequence numbers")?;
    c.sp_then("the matching UIDs")?;
    let uids = known_set(c, "the matching UIDs")?;
    c.expect(b')', "\")\" closing the sequence match data")?;
    Ok((seqs, uids))
}

/// `CREATE mailbox [SP "(" USE SP "(" attrs ")" ")"]` (RFC 6154 §3).
fn create(c: &mut Cursor<'_>) -> Res<CommandBody> {
    let mailbox = mailbox_arg(c)?;
    let mut special_use = Vec::new();
    if !c.at_eol() {
        c.sp_then("the create parameters")?;
        let params = c.list_of("the create parameters", |c| {
            let start = c.save();
            if c.word() != "USE" {
                c.restore(start);
                return c.expected("a create parameter (USE)");
            }
            c.sp_then("the special-use attributes")?;
            c.list_of_maybe_empty("the special-use attributes", |c| {
                c.expect(b'\\', "a special-use attribute (\\Archive, \\Sent, ...)")?;
                let name = c.atom("a special-use attribute name")?;
                Ok(format!("\\{}", String::from_utf8_lossy(name)))
            })
        })?;
        if params.len() > 1 {
            return Err("USE given twice".to_owned());
        }
        special_use = params.into_iter().flatten().collect();
    }
    Ok(CommandBody::Create {
        mailbox,
        special_use,
    })
}

/// A `status-att`.
fn status_item(c: &mut Cursor<'_>) -> Res<StatusItem> {
    let start = c.save();
    Ok(match c.word().as_str() {
        "MESSAGES" => StatusItem::Messages,
        "UIDNEXT" => StatusItem::UidNext,
        "UIDVALIDITY" => StatusItem::UidValidity,
        "UNSEEN" => StatusItem::Unseen,
        "DELETED" => StatusItem::Deleted,
        "SIZE" => StatusItem::Size,
        "RECENT" => StatusItem::Recent,
        "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
        "MAILBOXID" => StatusItem::MailboxId,
        "APPENDLIMIT" => StatusItem::AppendLimit,
        _ => {
            c.restore(start);
            return c.expected("a status item");
        }
    })
}

/// `LIST [SP (select-opts)] SP reference SP (pattern / (patterns))
/// [SP RETURN SP (return-opts)]` (RFC 5258 §6).
fn list(c: &mut Cursor<'_>) -> Res<CommandBody> {
    c.sp_then("the reference name")?;
    let mut select = Vec::new();
    if c.peek() == Some(b'(') {
        select = c.list_of_maybe_empty("the selection options", |c| {
            let start = c.save();
            Ok(match c.word().as_str() {
                "SUBSCRIBED" => ListSelect::Subscribed,
                "REMOTE" => ListSelect::Remote,
                "RECURSIVEMATCH" => ListSelect::RecursiveMatch,
                "SPECIAL-USE" => ListSelect::SpecialUse,
                _ => {
                    c.restore(start);
                    return c.expected(
                        "a selection option (SUBSCRIBED, REMOTE, RECURSIVEMATCH or SPECIAL-USE)",
                    );
                }
            })
        })?;
        // RFC 5258 §3.1: RECURSIVEMATCH alone (or with REMOTE only) is BAD.
        if select.contains(&ListSelect::RecursiveMatch)
            && select
                .iter()
                .all(|o| matches!(o, ListSelect::RecursiveMatch | ListSelect::Remote))
        {
            return Err("RECURSIVEMATCH needs another selection option".to_owned());
        }
        c.sp_then("the reference name")?;
    }
    let reference = c.astring("a reference name")?;
    c.sp_then("a mailbox pattern")?;
    let patterns = if c.peek() == Some(b'(') {
        c.list_of("the mailbox patterns", |c| c.list_mailbox())?
    } else {
        vec![c.list_mailbox()?]
    };
    let mut returns = Vec::new();
    if !c.at_eol() {
        c.sp_then("RETURN")?;
        c.keyword("RETURN")?;
        c.sp_then("the return options")?;
        returns = c.list_of_maybe_empty("the return options", |c| {
            let start = c.save();
            Ok(match c.word().as_str() {
                "SUBSCRIBED" => ListReturn::Subscribed,
                "CHILDREN" => ListReturn::Children,
                "SPECIAL-USE" => ListReturn::SpecialUse,
                "STATUS" => {
                    c.sp_then("the status items")?;
                    ListReturn::Status(c.list_of("the status items", status_item)?)
                }
                _ => {
                    c.restore(start);
                    return c
                        .expected("a return option (SUBSCRIBED, CHILDREN, SPECIAL-USE or STATUS)");
                }
            })
        })?;
    }
    Ok(CommandBody::List {
        select,
        reference,
        patterns,
        returns,
    })
}

/// `APPEND mailbox 1*([SP flag-list] [SP date-time] SP (literal / literal8))`
/// (RFC 9051, MULTIAPPEND RFC 3502, BINARY RFC 3516).
fn append(c: &mut Cursor<'_>) -> Res<CommandBody> {
    let mailbox = mailbox_arg(c)?;
    let mut messages = Vec::new();
    loop {
        c.sp_then("the message (flags, date or a literal)")?;
        let mut flags = Vec::new();
        let mut date = None;
        if c.peek() == Some(b'(') {
            flags = c.flag_list()?;
            c.sp_then("the message literal")?;
        }
        if c.peek() == Some(b'"') {
            date = Some(c.date_time()?);
            c.sp_then("the message literal")?;
        }
        if !c.at_literal() {
            return c.expected("the message as a literal ({n} or ~{n})");
        }
        let (data, binary) = c.literal(true)?;
        messages.push(AppendMessage {
            flags,
            date,
            data,
            binary,
        });
        if c.at_eol() {
            break;
        }
    }
    Ok(CommandBody::Append { mailbox, messages })
}

/// `[SP RETURN SP "(" opts ")"]` of SEARCH and SORT: `None` when absent.
fn returns(c: &mut Cursor<'_>) -> Res<Option<Vec<SearchReturn>>> {
    let start = c.save();
    if c.word() == "RETURN" {
        c.sp_then("the RETURN options")?;
        let r = search_returns(c)?;
        c.sp_then("the criteria")?;
        Ok(Some(r))
    } else {
        c.restore(start);
        Ok(None)
    }
}

/// `SEARCH [RETURN (opts)] [CHARSET charset] keys`.
fn search(c: &mut Cursor<'_>, uid: bool) -> Res<CommandBody> {
    c.sp_then("the search criteria")?;
    let returns = returns(c)?;
    let start = c.save();
    let charset = if c.word() == "CHARSET" {
        c.sp_then("the charset")?;
        let cs = charset(c)?;
        c.sp_then("the search criteria")?;
        Some(cs)
    } else {
        c.restore(start);
        None
    };
    let criteria = search_keys(c)?;
    Ok(CommandBody::Search {
        uid,
        returns,
        charset,
        criteria,
    })
}

/// `FETCH set attrs [SP (modifiers)]`.
fn fetch(c: &mut Cursor<'_>, uid: bool) -> Res<CommandBody> {
    c.sp_then("a sequence set")?;
    let set = c.sequence_set()?;
    c.sp_then("the fetch attributes")?;
    let attrs = fetch_attrs(c)?;
    let mut modifiers = FetchModifiers::default();
    if !c.at_eol() {
        c.sp_then("the fetch modifiers")?;
        modifiers = fetch_modifiers(c)?;
        // RFC 7162 §3.2.6: VANISHED only with UID FETCH and CHANGEDSINCE.
        if modifiers.vanished && !uid {
            return Err("VANISHED is only allowed in UID FETCH".to_owned());
        }
        if modifiers.vanished && modifiers.changed_since.is_none() {
            return Err("VANISHED requires CHANGEDSINCE".to_owned());
        }
    }
    Ok(CommandBody::Fetch {
        uid,
        set,
        attrs,
        modifiers,
    })
}

/// `STORE set [SP (UNCHANGEDSINCE n)] SP [+|-]FLAGS[.SILENT] SP flags`.
fn store(c: &mut Cursor<'_>, uid: bool) -> Res<CommandBody> {
    c.sp_then("a sequence set")?;
    let set = c.sequence_set()?;
    c.sp_then("FLAGS, +FLAGS or -FLAGS")?;
    let mut unchanged_since = None;
    if c.peek() == Some(b'(') {
        let mods = c.list_of("the store modifiers", |c| {
            let start = c.save();
            if c.word() != "UNCHANGEDSINCE" {
                c.restore(start);
                return c.expected("a store modifier (UNCHANGEDSINCE)");
            }
            c.sp_then("the UNCHANGEDSINCE mod-sequence")?;
            c.number64("a mod-sequence value")
        })?;
        if mods.len() > 1 {
            return Err("UNCHANGEDSINCE given twice".to_owned());
        }
        unchanged_since = mods.first().copied();
        c.sp_then("FLAGS, +FLAGS or -FLAGS")?;
    }
    let mode = if c.eat(b'+') {
        StoreMode::Add
    } else if c.eat(b'-') {
        StoreMode::Remove
    } else {
        StoreMode::Replace
    };
    let start = c.save();
    let silent = match c.word().as_str() {
        "FLAGS" => false,
        "FLAGS.SILENT" => true,
        _ => {
            c.restore(start);
            return c.expected("FLAGS, +FLAGS or -FLAGS (optionally .SILENT)");
        }
    };
    c.sp_then("the flags")?;
    let flags = if c.peek() == Some(b'(') {
        c.flag_list()?
    } else {
        let mut flags = vec![c.flag()?];
        while c.eat(b' ') {
            flags.push(c.flag()?);
        }
        flags
    };
    Ok(CommandBody::Store {
        uid,
        set,
        unchanged_since,
        mode,
        silent,
        flags,
    })
}

/// `SORT [RETURN (opts)] (criteria) charset keys` (RFC 5256, RFC 5267).
fn sort(c: &mut Cursor<'_>, uid: bool) -> Res<CommandBody> {
    c.sp_then("the sort criteria")?;
    let returns = returns(c)?;
    let criteria = c.list_of("the sort criteria", |c| {
        let mut start = c.save();
        let mut reverse = false;
        if c.word() == "REVERSE" && c.eat(b' ') {
            reverse = true;
            start = c.save();
        } else {
            c.restore(start);
        }
        let key = match c.word().as_str() {
            "ARRIVAL" => SortKey::Arrival,
            "CC" => SortKey::Cc,
            "DATE" => SortKey::Date,
            "FROM" => SortKey::From,
            "SIZE" => SortKey::Size,
            "SUBJECT" => SortKey::Subject,
            "TO" => SortKey::To,
            "DISPLAYFROM" => SortKey::DisplayFrom,
            "DISPLAYTO" => SortKey::DisplayTo,
            _ => {
                c.restore(start);
                return c.expected("a sort key");
            }
        };
        Ok(SortCriterion { reverse, key })
    })?;
    c.sp_then("the charset")?;
    let charset = charset(c)?;
    c.sp_then("the search criteria")?;
    let search = search_keys(c)?;
    Ok(CommandBody::Sort {
        uid,
        returns,
        criteria,
        charset,
        search,
    })
}
