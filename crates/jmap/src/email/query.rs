//! Email/query and Email/queryChanges (RFC 8621 §4.4, §4.5), and the filter
//! SearchSnippet/get shares.
//!
//! # How a query runs
//!
//! 1. The candidates are loaded in one or a few store calls: a filter that
//!    is (or is an `AND` containing) an `inMailbox` condition reads that
//!    mailbox only, any other filter the whole account. They come with their
//!    light metadata from the service's
//!    [`LightCaches`](crate::light::LightCaches): read once, then brought up
//!    to date from the change log, and shared with IMAP SEARCH and SORT, so
//!    that a client sorting a 100 000-message mailbox by date again and
//!    again pays for the sort only.
//! 2. The filter is evaluated on them with three-valued logic: conditions
//!    on flags, dates, sizes, mailboxes, threads and the decoded header
//!    fields of the meta answer yes or no; `body`, `text` (when its terms
//!    are not all in the headers) and `header` answer *maybe*.
//! 3. Only the candidates still at *maybe* are read in full (metadata and
//!    raw bytes, in batches) and evaluated again on their decoded text.
//! 4. The matches are sorted (ties by id in the direction of the last
//!    comparator, so the order is stable and matches IMAP UID order),
//!    collapsed by thread if asked, and windowed.
//!
//! # String matching
//!
//! RFC 8621 §4.4.1 leaves it open; here: case-insensitive (Unicode lower
//! case) substring matching after collapsing white space; the value is
//! split into terms at white space, `"…"` or `'…'` quote a phrase (with
//! `\"`, `\'`, `\\` escapes), and every term must be found. `text` looks
//! in From, To, Cc, Bcc, Subject, the text of every text/* part (HTML
//! reduced to text, encapsulated messages included) and attachment names;
//! `body` in the text parts only; `from`… in the decoded display names and
//! addresses; `header` in the RFC 2047-decoded values of the top-level
//! fields of that name (any one matching).
//!
//! # queryChanges
//!
//! Computed, never refused for a valid state: the query is run again, and
//! the store's change log since `sinceQueryState` says which emails may
//! have entered, left or moved: every email created, updated or destroyed
//! since — only created and destroyed ones when the filter and sort use
//! immutable properties only — and, when the result depends on threads
//! (`collapseThreads`, thread keyword conditions or sorts), every email in
//! a thread one of those belongs to. Those are reported as `removed`
//! (except emails created since, and, for a filter pinned to one mailbox,
//! emails the log never shows in that mailbox: neither can have been in
//! the old results), and those of them in the new results as `added` with their
//! index: RFC 8620 §5.6 allows both extra removals and remove-and-add for
//! an email that may have moved. `cannotCalculateChanges` only for a state
//! that is not ours or is newer than the account, or when more than
//! [`MAX_LOG_ENTRIES`] log entries would have to be read.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use pochta_jmap_proto::{
    AddedItem, Args, CallContext, Comparator, Filter, FilterOperator, MethodError, MethodErrorKind,
    QueryChangesRequest, QueryChangesResponse, QueryRequest, QueryResponse, query_window,
};
use pochta_message::{EmailAddress, MessageMeta};
use pochta_store::{MessageRecord, MessageSummary, ObjectKind, StoreError};
use serde_json::{Map, Value};

use super::get::{
    body_text, changes_error, email_state, has_keyword, header_fields, parse_state, parse_utc_date,
    text_form,
};
use crate::{Ctx, ids, store_error};

/// Most change-log entries queryChanges reads to find the threads of
/// changed emails; beyond that the client is told to query again.
pub const MAX_LOG_ENTRIES: usize = 200_000;

/// Candidates read in full per store call in the second filter pass.
const BATCH: usize = 64;

// ---------------------------------------------------------------- text

/// Lower-cases `s` (Unicode) and collapses each run of white space to one
/// space: the form both haystacks and search terms are compared in.
pub(crate) fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for ch in s.chars() {
        if ch.is_whitespace() {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        if ch.is_ascii() {
            out.push(ch.to_ascii_lowercase());
        } else {
            out.extend(ch.to_lowercase());
        }
    }
    out
}

/// The terms of a search string (RFC 8621 §4.4.1): words, and phrases in
/// matched single or double quotes; folded with [`fold`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Terms(pub Vec<String>);

impl Terms {
    pub(crate) fn parse(s: &str) -> Terms {
        let chars: Vec<char> = s.chars().collect();
        let mut out = Vec::new();
        let mut i = 0;
        while let Some(&c) = chars.get(i) {
            if c.is_whitespace() {
                i += 1;
                continue;
            }
            if c == '"' || c == '\'' {
                let mut phrase = String::new();
                let mut j = i + 1;
                let mut closed = false;
                while let Some(&d) = chars.get(j) {
                    if d == '\\'
                        && let Some(&e @ ('"' | '\'' | '\\')) = chars.get(j + 1)
                    {
                        phrase.push(e);
                        j += 2;
                        continue;
                    }
                    if d == c {
                        closed = true;
                        break;
                    }
                    phrase.push(d);
                    j += 1;
                }
                if closed {
                    let folded = fold(&phrase);
                    if !folded.is_empty() {
                        out.push(folded);
                    }
                    i = j + 1;
                    continue;
                }
            }
            let mut word = String::new();
            while let Some(&d) = chars.get(i) {
                if d.is_whitespace() {
                    break;
                }
                word.push(d);
                i += 1;
            }
            out.push(fold(&word));
        }
        Terms(out)
    }

    /// Every term is in at least one of the (folded) haystacks.
    fn all_in(&self, haystacks: &[&str]) -> bool {
        self.0
            .iter()
            .all(|t| haystacks.iter().any(|h| h.contains(t.as_str())))
    }
}

fn addresses_haystack(list: &[EmailAddress]) -> String {
    let mut out = String::new();
    for a in list {
        if let Some(name) = &a.name {
            out.push_str(&fold(name));
            out.push(' ');
        }
        out.push_str(&fold(&a.email));
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------- filter

/// Which text a string condition searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextField {
    Text,
    From,
    To,
    Cc,
    Bcc,
    Subject,
    Body,
}

/// One property of a FilterCondition (RFC 8621 §4.4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cond {
    /// `inMailbox`; `None` for an id that names no mailbox (matches nothing).
    InMailbox(Option<u64>),
    InMailboxOtherThan(Vec<u64>),
    Before(i64),
    After(i64),
    MinSize(u64),
    MaxSize(u64),
    AllInThreadHaveKeyword(String),
    SomeInThreadHaveKeyword(String),
    NoneInThreadHaveKeyword(String),
    HasKeyword(String),
    NotKeyword(String),
    HasAttachment(bool),
    Text(TextField, Terms),
    /// `header`: the lower-cased name and the terms to find, if any.
    Header(String, Option<Terms>),
}

/// A parsed Email filter: each FilterCondition is the AND of its properties.
pub(crate) type EmailFilter = Filter<Vec<Cond>>;

fn unsupported(description: String) -> MethodError {
    MethodError::with_description(MethodErrorKind::UnsupportedFilter, description)
}

fn string_arg(key: &str, value: &Value) -> Result<String, MethodError> {
    value
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| MethodError::invalid_arguments(format!("filter.{key}: expected a string")))
}

fn uint_arg(key: &str, value: &Value) -> Result<u64, MethodError> {
    value.as_u64().ok_or_else(|| {
        MethodError::invalid_arguments(format!("filter.{key}: expected an unsigned integer"))
    })
}

fn date_arg(key: &str, value: &Value) -> Result<i64, MethodError> {
    let s = string_arg(key, value)?;
    parse_utc_date(&s).ok_or_else(|| {
        MethodError::invalid_arguments(format!("filter.{key}: {s:?} is not a UTCDate"))
    })
}

fn mailbox_arg(s: &str, call: &CallContext) -> Option<u64> {
    let id = call.resolve_str(s)?;
    ids::parse_mailbox(id.as_str())
}

fn parse_condition(map: &Map<String, Value>, call: &CallContext) -> Result<Vec<Cond>, MethodError> {
    let mut out = Vec::with_capacity(map.len());
    for (key, value) in map {
        if value.is_null() {
            continue;
        }
        let text = |field| -> Result<Cond, MethodError> {
            Ok(Cond::Text(field, Terms::parse(&string_arg(key, value)?)))
        };
        let keyword = || string_arg(key, value).map(|k| k.to_ascii_lowercase());
        out.push(match key.as_str() {
            "inMailbox" => Cond::InMailbox(mailbox_arg(&string_arg(key, value)?, call)),
            "inMailboxOtherThan" => {
                let list = value.as_array().ok_or_else(|| {
                    MethodError::invalid_arguments("filter.inMailboxOtherThan: expected an array")
                })?;
                let mut ids = Vec::with_capacity(list.len());
                for v in list {
                    if let Some(id) = mailbox_arg(&string_arg(key, v)?, call) {
                        ids.push(id);
                    }
                }
                Cond::InMailboxOtherThan(ids)
            }
            "before" => Cond::Before(date_arg(key, value)?),
            "after" => Cond::After(date_arg(key, value)?),
            "minSize" => Cond::MinSize(uint_arg(key, value)?),
            "maxSize" => Cond::MaxSize(uint_arg(key, value)?),
            "allInThreadHaveKeyword" => Cond::AllInThreadHaveKeyword(keyword()?),
            "someInThreadHaveKeyword" => Cond::SomeInThreadHaveKeyword(keyword()?),
            "noneInThreadHaveKeyword" => Cond::NoneInThreadHaveKeyword(keyword()?),
            "hasKeyword" => Cond::HasKeyword(keyword()?),
            "notKeyword" => Cond::NotKeyword(keyword()?),
            "hasAttachment" => Cond::HasAttachment(value.as_bool().ok_or_else(|| {
                MethodError::invalid_arguments("filter.hasAttachment: expected a boolean")
            })?),
            "text" => text(TextField::Text)?,
            "from" => text(TextField::From)?,
            "to" => text(TextField::To)?,
            "cc" => text(TextField::Cc)?,
            "bcc" => text(TextField::Bcc)?,
            "subject" => text(TextField::Subject)?,
            "body" => text(TextField::Body)?,
            "header" => {
                let bad = || {
                    MethodError::invalid_arguments(
                        "filter.header: expected an array of one or two strings",
                    )
                };
                let list = value.as_array().ok_or_else(bad)?;
                let strings: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
                if strings.len() != list.len() || !(1..=2).contains(&strings.len()) {
                    return Err(bad());
                }
                let name = strings.first().copied().unwrap_or_default();
                if name.is_empty()
                    || name.contains(':')
                    || !name.bytes().all(|b| (33..=126).contains(&b))
                {
                    return Err(MethodError::invalid_arguments(format!(
                        "filter.header: {name:?} is not a header field name"
                    )));
                }
                Cond::Header(
                    name.to_ascii_lowercase(),
                    strings.get(1).map(|s| Terms::parse(s)),
                )
            }
            other => {
                return Err(unsupported(format!(
                    "unknown FilterCondition property {other:?}"
                )));
            }
        });
    }
    Ok(out)
}

/// Parses an Email/query filter (RFC 8621 §4.4.1): `invalidArguments` for
/// malformed values, `unsupportedFilter` for unknown condition properties.
pub(crate) fn parse_filter(value: &Value, call: &CallContext) -> Result<EmailFilter, MethodError> {
    Filter::parse(value, &mut |map: &Map<String, Value>| {
        parse_condition(map, call)
    })
}

fn conditions(filter: &EmailFilter) -> Vec<&Cond> {
    let mut out = Vec::new();
    fn walk<'a>(f: &'a EmailFilter, out: &mut Vec<&'a Cond>) {
        match f {
            Filter::Condition(cs) => out.extend(cs),
            Filter::Operator(_, children) => {
                for c in children {
                    walk(c, out);
                }
            }
        }
    }
    walk(filter, &mut out);
    out
}

/// The terms a search snippet highlights: those of `text` and `subject`
/// conditions for the subject, of `text` and `body` for the body, outside
/// any `NOT`.
pub(crate) fn snippet_terms(filter: &EmailFilter) -> (Vec<String>, Vec<String>) {
    let mut subject = Vec::new();
    let mut body = Vec::new();
    fn walk(f: &EmailFilter, subject: &mut Vec<String>, body: &mut Vec<String>) {
        match f {
            Filter::Condition(cs) => {
                for c in cs {
                    if let Cond::Text(field, terms) = c {
                        if matches!(field, TextField::Text | TextField::Subject) {
                            subject.extend(terms.0.iter().cloned());
                        }
                        if matches!(field, TextField::Text | TextField::Body) {
                            body.extend(terms.0.iter().cloned());
                        }
                    }
                }
            }
            Filter::Operator(FilterOperator::Not, _) => {}
            Filter::Operator(_, children) => {
                for c in children {
                    walk(c, subject, body);
                }
            }
        }
    }
    walk(filter, &mut subject, &mut body);
    for list in [&mut subject, &mut body] {
        list.retain(|t| !t.is_empty());
        list.sort();
        list.dedup();
    }
    (subject, body)
}

/// The mailbox every result must be in: `Some(None)` for an `inMailbox`
/// naming no mailbox (no results), `None` when the filter does not pin one.
fn scope_mailbox(filter: &EmailFilter) -> Option<Option<u64>> {
    let from_conds = |cs: &Vec<Cond>| {
        cs.iter().find_map(|c| match c {
            Cond::InMailbox(m) => Some(*m),
            _ => None,
        })
    };
    match filter {
        Filter::Condition(cs) => from_conds(cs),
        Filter::Operator(FilterOperator::And, children) => children.iter().find_map(|c| match c {
            Filter::Condition(cs) => from_conds(cs),
            _ => None,
        }),
        Filter::Operator(..) => None,
    }
}

// ---------------------------------------------------------------- evaluation

/// Three-valued truth: `Maybe` until the message's text is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tri {
    No,
    Yes,
    Maybe,
}

impl Tri {
    fn from(b: bool) -> Tri {
        if b { Tri::Yes } else { Tri::No }
    }

    fn not(self) -> Tri {
        match self {
            Tri::No => Tri::Yes,
            Tri::Yes => Tri::No,
            Tri::Maybe => Tri::Maybe,
        }
    }
}

fn all<I: Iterator<Item = Tri>>(items: I) -> Tri {
    let mut out = Tri::Yes;
    for t in items {
        match t {
            Tri::No => return Tri::No,
            Tri::Maybe => out = Tri::Maybe,
            Tri::Yes => {}
        }
    }
    out
}

fn any<I: Iterator<Item = Tri>>(items: I) -> Tri {
    let mut out = Tri::No;
    for t in items {
        match t {
            Tri::Yes => return Tri::Yes,
            Tri::Maybe => out = Tri::Maybe,
            Tri::No => {}
        }
    }
    out
}

/// Per thread: how many emails, and how many have each thread keyword.
#[derive(Debug, Default)]
struct Threads {
    keywords: Vec<String>,
    stats: HashMap<u64, (u32, Vec<u32>)>,
}

impl Threads {
    fn build<'a>(keywords: Vec<String>, all: impl Iterator<Item = &'a MessageSummary>) -> Threads {
        let mut stats: HashMap<u64, (u32, Vec<u32>)> = HashMap::new();
        for s in all {
            let entry = stats
                .entry(s.thread_id)
                .or_insert_with(|| (0, vec![0; keywords.len()]));
            entry.0 += 1;
            for (k, count) in keywords.iter().zip(entry.1.iter_mut()) {
                if has_keyword(s, k) {
                    *count += 1;
                }
            }
        }
        Threads { keywords, stats }
    }

    /// (emails in the thread, those with `keyword`).
    fn count(&self, thread: u64, keyword: &str) -> (u32, u32) {
        let Some((total, with)) = self.stats.get(&thread) else {
            return (0, 0);
        };
        let with = self
            .keywords
            .iter()
            .position(|k| k == keyword)
            .and_then(|i| with.get(i).copied())
            .unwrap_or(0);
        (*total, with)
    }

    fn all_have(&self, thread: u64, keyword: &str) -> bool {
        let (total, with) = self.count(thread, keyword);
        total > 0 && with == total
    }

    fn some_have(&self, thread: u64, keyword: &str) -> bool {
        self.count(thread, keyword).1 > 0
    }
}

/// A message's decoded text, read for the conditions the meta cannot answer.
struct Content {
    /// Top-level header fields: lower-cased name, folded decoded value.
    headers: Vec<(String, String)>,
    /// Folded text of the text/* parts.
    body: String,
    /// Folded attachment names.
    names: String,
}

impl Content {
    fn build(raw: &[u8], meta: &MessageMeta) -> Content {
        let section = raw
            .get(meta.body.header_range())
            .or_else(|| raw.get(..meta.body.header_range().end.min(raw.len())))
            .unwrap_or_default();
        let headers = header_fields(section)
            .iter()
            .map(|f| {
                (
                    String::from_utf8_lossy(f.name).to_ascii_lowercase(),
                    fold(&text_form(f.value)),
                )
            })
            .collect();
        let mut names = String::new();
        meta.body.walk(&mut |p| {
            if let Some(n) = p.filename() {
                names.push_str(&fold(n));
                names.push('\n');
            }
        });
        Content {
            headers,
            body: fold(&body_text(raw, meta)),
            names,
        }
    }
}

/// What a condition is evaluated on.
struct View<'a> {
    summary: &'a MessageSummary,
    meta: Option<&'a MessageMeta>,
    content: Option<&'a Content>,
}

fn eval(filter: &EmailFilter, m: &View<'_>, threads: &Threads) -> Tri {
    match filter {
        Filter::Condition(cs) => all(cs.iter().map(|c| eval_cond(c, m, threads))),
        Filter::Operator(FilterOperator::And, fs) => all(fs.iter().map(|f| eval(f, m, threads))),
        Filter::Operator(FilterOperator::Or, fs) => any(fs.iter().map(|f| eval(f, m, threads))),
        Filter::Operator(FilterOperator::Not, fs) => {
            any(fs.iter().map(|f| eval(f, m, threads))).not()
        }
    }
}

fn eval_cond(c: &Cond, m: &View<'_>, threads: &Threads) -> Tri {
    let s = m.summary;
    match c {
        Cond::InMailbox(id) => Tri::from(*id == Some(s.mailbox_id)),
        Cond::InMailboxOtherThan(list) => Tri::from(!list.contains(&s.mailbox_id)),
        Cond::Before(t) => Tri::from(s.internal_date < *t),
        Cond::After(t) => Tri::from(s.internal_date >= *t),
        Cond::MinSize(n) => Tri::from(s.size >= *n),
        Cond::MaxSize(n) => Tri::from(s.size < *n),
        Cond::AllInThreadHaveKeyword(k) => Tri::from(threads.all_have(s.thread_id, k)),
        Cond::SomeInThreadHaveKeyword(k) => Tri::from(threads.some_have(s.thread_id, k)),
        Cond::NoneInThreadHaveKeyword(k) => Tri::from(!threads.some_have(s.thread_id, k)),
        Cond::HasKeyword(k) => Tri::from(has_keyword(s, k)),
        Cond::NotKeyword(k) => Tri::from(!has_keyword(s, k)),
        Cond::HasAttachment(want) => match m.meta {
            Some(meta) => Tri::from(meta.has_attachment == *want),
            None => Tri::Maybe,
        },
        Cond::Text(field, terms) => eval_text(*field, terms, m),
        Cond::Header(name, terms) => eval_header(name, terms.as_ref(), m),
    }
}

fn eval_text(field: TextField, terms: &Terms, m: &View<'_>) -> Tri {
    if field == TextField::Body {
        return match m.content {
            Some(c) => Tri::from(terms.all_in(&[&c.body])),
            None => Tri::Maybe,
        };
    }
    let Some(meta) = m.meta else {
        return Tri::Maybe;
    };
    let subject = || fold(meta.subject.as_deref().unwrap_or_default());
    match field {
        TextField::From => Tri::from(terms.all_in(&[&addresses_haystack(&meta.from)])),
        TextField::To => Tri::from(terms.all_in(&[&addresses_haystack(&meta.to)])),
        TextField::Cc => Tri::from(terms.all_in(&[&addresses_haystack(&meta.cc)])),
        TextField::Bcc => Tri::from(terms.all_in(&[&addresses_haystack(&meta.bcc)])),
        TextField::Subject => Tri::from(terms.all_in(&[&subject()])),
        TextField::Text | TextField::Body => {
            let mut hay = vec![
                addresses_haystack(&meta.from),
                addresses_haystack(&meta.to),
                addresses_haystack(&meta.cc),
                addresses_haystack(&meta.bcc),
                subject(),
            ];
            let headers: Vec<&str> = hay.iter().map(String::as_str).collect();
            if terms.all_in(&headers) {
                return Tri::Yes;
            }
            match m.content {
                Some(c) => {
                    hay.push(c.body.clone());
                    hay.push(c.names.clone());
                    let all: Vec<&str> = hay.iter().map(String::as_str).collect();
                    Tri::from(terms.all_in(&all))
                }
                None => Tri::Maybe,
            }
        }
    }
}

/// `header` conditions the meta answers without the raw header: Subject,
/// Message-ID and In-Reply-To (each a single field in sane mail).
fn header_from_meta(name: &str, terms: Option<&Terms>, meta: &MessageMeta) -> Option<bool> {
    let value = match name {
        "subject" => meta.subject.as_deref(),
        "message-id" => meta.envelope.message_id.as_deref(),
        "in-reply-to" => meta.envelope.in_reply_to.as_deref(),
        _ => return None,
    };
    Some(match (value, terms) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(v), Some(t)) => t.all_in(&[&fold(v)]),
    })
}

fn eval_header(name: &str, terms: Option<&Terms>, m: &View<'_>) -> Tri {
    if let Some(c) = m.content {
        return Tri::from(
            c.headers
                .iter()
                .any(|(n, v)| n == name && terms.is_none_or(|t| t.all_in(&[v]))),
        );
    }
    match m.meta.and_then(|meta| header_from_meta(name, terms, meta)) {
        Some(b) => Tri::from(b),
        None => Tri::Maybe,
    }
}

// ---------------------------------------------------------------- sorting

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Collation {
    Octet,
    AsciiCasemap,
    UnicodeCasemap,
    AsciiNumeric,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SortProperty {
    ReceivedAt,
    Size,
    From,
    To,
    Subject,
    SentAt,
    HasKeyword(String),
    AllInThreadHaveKeyword(String),
    SomeInThreadHaveKeyword(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Sorter {
    property: SortProperty,
    ascending: bool,
    collation: Collation,
}

/// A computed sort key; one comparator always yields one variant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Int(i64),
    Bool(bool),
    Text(String),
    /// i;ascii-numeric (RFC 4790 §9.1): numbers by value, then strings
    /// without a leading digit, all equal.
    Numeric(bool, usize, String),
}

fn parse_sort(sort: &[Comparator]) -> Result<Vec<Sorter>, MethodError> {
    let mut out = Vec::with_capacity(sort.len());
    for c in sort {
        let keyword = || -> Result<String, MethodError> {
            match c.extra.get("keyword") {
                Some(Value::String(k)) if !k.is_empty() => Ok(k.to_ascii_lowercase()),
                _ => Err(MethodError::invalid_arguments(format!(
                    "sort: {:?} needs a \"keyword\"",
                    c.property
                ))),
            }
        };
        let property = match c.property.as_str() {
            "receivedAt" => SortProperty::ReceivedAt,
            "size" => SortProperty::Size,
            "from" => SortProperty::From,
            "to" => SortProperty::To,
            "subject" => SortProperty::Subject,
            "sentAt" => SortProperty::SentAt,
            "hasKeyword" => SortProperty::HasKeyword(keyword()?),
            "allInThreadHaveKeyword" => SortProperty::AllInThreadHaveKeyword(keyword()?),
            "someInThreadHaveKeyword" => SortProperty::SomeInThreadHaveKeyword(keyword()?),
            other => {
                return Err(MethodError::with_description(
                    MethodErrorKind::UnsupportedSort,
                    format!("cannot sort by {other:?}"),
                ));
            }
        };
        let takes_keyword = matches!(
            property,
            SortProperty::HasKeyword(_)
                | SortProperty::AllInThreadHaveKeyword(_)
                | SortProperty::SomeInThreadHaveKeyword(_)
        );
        if let Some(other) = c
            .extra
            .keys()
            .find(|k| !(takes_keyword && k.as_str() == "keyword"))
        {
            return Err(MethodError::invalid_arguments(format!(
                "sort: unknown Comparator property {other:?}"
            )));
        }
        let collation = match c.collation.as_deref() {
            None | Some("i;unicode-casemap") => Collation::UnicodeCasemap,
            Some("i;ascii-casemap") => Collation::AsciiCasemap,
            Some("i;ascii-numeric") => Collation::AsciiNumeric,
            Some("i;octet") => Collation::Octet,
            Some(other) => {
                return Err(MethodError::with_description(
                    MethodErrorKind::UnsupportedSort,
                    format!("collation {other:?} is not supported"),
                ));
            }
        };
        out.push(Sorter {
            property,
            ascending: c.is_ascending,
            collation,
        });
    }
    Ok(out)
}

fn collation_key(collation: Collation, s: &str) -> Key {
    match collation {
        Collation::Octet => Key::Text(s.to_string()),
        Collation::AsciiCasemap => Key::Text(s.to_ascii_uppercase()),
        Collation::UnicodeCasemap => Key::Text(pochta_message::collate::casemap(s)),
        Collation::AsciiNumeric => {
            let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
            if digits.is_empty() {
                Key::Numeric(true, 0, String::new())
            } else {
                let trimmed = digits.trim_start_matches('0').to_string();
                Key::Numeric(false, trimmed.len(), trimmed)
            }
        }
    }
}

/// RFC 8621 §4.4.2 `from`/`to`: the name of the first address, or its
/// email if the name is empty; the empty string if there is none.
fn first_address(list: &[EmailAddress]) -> &str {
    match list.first() {
        None => "",
        Some(a) => match a.name.as_deref().map(str::trim) {
            Some(name) if !name.is_empty() => name,
            _ => a.email.as_str(),
        },
    }
}

/// The key of a numeric sort property (`None` for the others).
fn int_key(s: &Sorter, item: &Item<'_>) -> Option<i64> {
    let summary = item.summary;
    match &s.property {
        SortProperty::ReceivedAt => Some(summary.internal_date),
        SortProperty::Size => Some(i64::try_from(summary.size).unwrap_or(i64::MAX)),
        // A message without a usable Date sorts by its arrival, as IMAP
        // SORT does (RFC 5256 §3).
        SortProperty::SentAt => Some(
            item.meta
                .as_deref()
                .and_then(|m| m.sent_at)
                .unwrap_or(summary.internal_date),
        ),
        _ => None,
    }
}

fn sort_key(s: &Sorter, item: &Item<'_>, threads: &Threads) -> Key {
    let summary = item.summary;
    let text = |value: &str| collation_key(s.collation, value);
    let meta = item.meta.as_deref();
    match &s.property {
        SortProperty::From => text(meta.map_or("", |m| first_address(&m.from))),
        SortProperty::To => text(meta.map_or("", |m| first_address(&m.to))),
        SortProperty::Subject => text(meta.map_or("", |m| m.base_subject.as_str())),
        SortProperty::HasKeyword(k) => Key::Bool(has_keyword(summary, k)),
        SortProperty::AllInThreadHaveKeyword(k) => {
            Key::Bool(threads.all_have(summary.thread_id, k))
        }
        SortProperty::SomeInThreadHaveKeyword(k) => {
            Key::Bool(threads.some_have(summary.thread_id, k))
        }
        SortProperty::ReceivedAt | SortProperty::Size | SortProperty::SentAt => {
            Key::Int(int_key(s, item).unwrap_or_default())
        }
    }
}

// ---------------------------------------------------------------- the query

/// A parsed query: filter, sort, thread collapsing.
#[derive(Debug, Clone)]
pub(crate) struct QuerySpec {
    filter: Option<EmailFilter>,
    sort: Vec<Sorter>,
    collapse: bool,
}

impl QuerySpec {
    fn parse(
        filter: Option<&Value>,
        sort: &[Comparator],
        collapse: bool,
        call: &CallContext,
    ) -> Result<QuerySpec, MethodError> {
        Ok(QuerySpec {
            filter: filter.map(|f| parse_filter(f, call)).transpose()?,
            sort: parse_sort(sort)?,
            collapse,
        })
    }

    fn conditions(&self) -> Vec<&Cond> {
        self.filter.as_ref().map(conditions).unwrap_or_default()
    }

    /// The keywords thread conditions and sorts ask about.
    fn thread_keywords(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .conditions()
            .iter()
            .filter_map(|c| match c {
                Cond::AllInThreadHaveKeyword(k)
                | Cond::SomeInThreadHaveKeyword(k)
                | Cond::NoneInThreadHaveKeyword(k) => Some(k.clone()),
                _ => None,
            })
            .chain(self.sort.iter().filter_map(|s| match &s.property {
                SortProperty::AllInThreadHaveKeyword(k)
                | SortProperty::SomeInThreadHaveKeyword(k) => Some(k.clone()),
                _ => None,
            }))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Whether a change to one email can move another in the results.
    fn thread_dependent(&self) -> bool {
        self.collapse || !self.thread_keywords().is_empty()
    }

    /// Whether filter and sort use immutable properties only (no
    /// mailboxes, no keywords): then an update cannot move an email in or
    /// out of the results.
    fn immutable(&self) -> bool {
        let filter = self.conditions().iter().all(|c| {
            !matches!(
                c,
                Cond::InMailbox(_)
                    | Cond::InMailboxOtherThan(_)
                    | Cond::AllInThreadHaveKeyword(_)
                    | Cond::SomeInThreadHaveKeyword(_)
                    | Cond::NoneInThreadHaveKeyword(_)
                    | Cond::HasKeyword(_)
                    | Cond::NotKeyword(_)
            )
        });
        let sort = self.sort.iter().all(|s| {
            !matches!(
                s.property,
                SortProperty::HasKeyword(_)
                    | SortProperty::AllInThreadHaveKeyword(_)
                    | SortProperty::SomeInThreadHaveKeyword(_)
            )
        });
        filter && sort
    }
}

/// A candidate: its index entry and its light (or, after the second pass,
/// full) meta.
struct Item<'a> {
    summary: &'a MessageSummary,
    meta: Option<Meta<'a>>,
}

/// A candidate's meta: the light one of the cache, or the full one read by
/// the second pass. Boxed rather than a `Cow`, which would hold a whole
/// `MessageMeta` inline and make a 100 000-candidate `Vec<Item>` 60 MiB of
/// fresh pages to fault in at every query instead of 2.5 MiB.
enum Meta<'a> {
    Light(&'a MessageMeta),
    Full(Box<MessageMeta>),
}

impl std::ops::Deref for Meta<'_> {
    type Target = MessageMeta;

    fn deref(&self) -> &MessageMeta {
        match self {
            Meta::Light(m) => m,
            Meta::Full(m) => m,
        }
    }
}

/// The candidates with their light meta, a snapshot of the service's
/// [`LightCaches`](crate::light::LightCaches) even when the query needs the
/// index entries only: reading 100 000 index entries from the store at every
/// request costs more (about 60 ms, and as many allocations) than bringing
/// the shared cache up to date from the change log, and clients repeat their
/// queries all the time.
fn items(records: &[MessageRecord]) -> Vec<Item<'_>> {
    records
        .iter()
        .map(|r| Item {
            summary: &r.summary,
            meta: Some(Meta::Light(&r.meta)),
        })
        .collect()
}

/// The full result of a query.
#[derive(Debug, Default)]
struct Outcome {
    /// The matching email ids, sorted (and collapsed).
    ids: Vec<u64>,
    /// `(email, thread)` of every candidate loaded (for queryChanges).
    loaded: Vec<(u64, u64)>,
}

async fn all_summaries(ctx: &Ctx<'_>) -> Result<Vec<MessageSummary>, MethodError> {
    let account = ctx.account.id;
    let mut out = Vec::new();
    for mailbox in ctx.store().mailboxes(account).await.map_err(store_error)? {
        out.extend(
            ctx.store()
                .messages(account, mailbox.id)
                .await
                .map_err(store_error)?,
        );
    }
    Ok(out)
}

async fn load(ctx: &Ctx<'_>, spec: &QuerySpec) -> Result<Arc<Vec<MessageRecord>>, MethodError> {
    match spec.filter.as_ref().and_then(scope_mailbox) {
        // A mailbox that does not exist: nothing.
        Some(None) => Ok(Arc::default()),
        // A mailbox, or (`None`) the whole account.
        scope => ctx
            .jmap
            .light
            .records(ctx.store(), ctx.account.id, scope.flatten())
            .await
            .map_err(store_error),
    }
}

/// Reads the candidates the first pass could not decide and decides them
/// on their text (a candidate gone meanwhile does not match).
async fn second_pass(
    ctx: &Ctx<'_>,
    filter: &EmailFilter,
    items: &mut [Item<'_>],
    verdicts: &mut [Tri],
    threads: &Threads,
) -> Result<(), MethodError> {
    let account = ctx.account.id;
    let undecided: Vec<usize> = verdicts
        .iter()
        .enumerate()
        .filter(|(_, v)| **v == Tri::Maybe)
        .map(|(i, _)| i)
        .collect();
    for chunk in undecided.chunks(BATCH) {
        let wanted: Vec<u64> = chunk
            .iter()
            .filter_map(|&i| items.get(i).map(|it| it.summary.id))
            .collect();
        let mut full: HashMap<u64, pochta_store::MessageRecord> = ctx
            .store()
            .records(account, &wanted)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(|r| (r.summary.id, r))
            .collect();
        for &i in chunk {
            let (Some(item), Some(verdict)) = (items.get_mut(i), verdicts.get_mut(i)) else {
                continue;
            };
            *verdict = Tri::No;
            let Some(record) = full.remove(&item.summary.id) else {
                continue;
            };
            let raw = match ctx.store().read_blob(account, record.summary.blob_id).await {
                Ok(raw) => raw,
                Err(StoreError::NotFound(_)) => continue,
                Err(e) => return Err(store_error(e)),
            };
            let content = Content::build(&raw, &record.meta);
            let view = View {
                summary: item.summary,
                meta: Some(&record.meta),
                content: Some(&content),
            };
            if eval(filter, &view, threads) == Tri::Yes {
                *verdict = Tri::Yes;
                // Keep the full meta: sorting may need it (it is a superset
                // of the light one).
                item.meta = Some(Meta::Full(Box::new(record.meta)));
            }
        }
    }
    Ok(())
}

async fn run(ctx: &Ctx<'_>, spec: &QuerySpec) -> Result<Outcome, MethodError> {
    let candidates = load(ctx, spec).await?;
    let mut items = items(&candidates);
    let thread_keywords = spec.thread_keywords();
    let threads = if thread_keywords.is_empty() {
        Threads::default()
    } else if spec.filter.as_ref().and_then(scope_mailbox).is_some() {
        let all = all_summaries(ctx).await?;
        Threads::build(thread_keywords, all.iter())
    } else {
        Threads::build(thread_keywords, items.iter().map(|i| i.summary))
    };

    let mut verdicts: Vec<Tri> = match &spec.filter {
        None => vec![Tri::Yes; items.len()],
        Some(filter) => items
            .iter()
            .map(|item| {
                eval(
                    filter,
                    &View {
                        summary: item.summary,
                        meta: item.meta.as_deref(),
                        content: None,
                    },
                    &threads,
                )
            })
            .collect(),
    };
    if let Some(filter) = &spec.filter
        && verdicts.contains(&Tri::Maybe)
    {
        second_pass(ctx, filter, &mut items, &mut verdicts, &threads).await?;
    }

    let loaded = items
        .iter()
        .map(|i| (i.summary.id, i.summary.thread_id))
        .collect();
    let matched: Vec<&Item<'_>> = items
        .iter()
        .zip(&verdicts)
        .filter(|(_, v)| **v == Tri::Yes)
        .map(|(i, _)| i)
        .collect();
    let order = sort_order(&spec.sort, &matched, &threads);
    let mut seen_threads = HashSet::new();
    let ids = order
        .into_iter()
        .filter(|&(_, thread)| !spec.collapse || seen_threads.insert(thread))
        .map(|(id, _)| id)
        .collect();
    Ok(Outcome { ids, loaded })
}

/// The order of `matched` under `sort` (ties by id in the direction of the
/// last comparator, so that `receivedAt` descending lists mail that arrived
/// in the same second newest first, as IMAP's UID order does), as `(email,
/// thread)` pairs: what the caller needs, without going back to the
/// candidates (scattered in memory) in the new order.
fn sort_order(sort: &[Sorter], matched: &[&Item<'_>], threads: &Threads) -> Vec<(u64, u64)> {
    // One comparator on a number (receivedAt, size, sentAt: what clients
    // sort by nearly always): plain integer tuples, several times faster to
    // sort than [`Key`]s when a mailbox holds 100 000 messages. `!` turns
    // both the key and the id tie-break around for a descending sort.
    if let [s] = sort
        && let Some(keyed) = matched
            .iter()
            .map(|m| {
                let key = int_key(s, m)?;
                let (id, thread) = (m.summary.id, m.summary.thread_id);
                Some(if s.ascending {
                    (key, id, thread)
                } else {
                    (!key, !id, thread)
                })
            })
            .collect::<Option<Vec<_>>>()
    {
        let mut keyed = keyed;
        keyed.sort_unstable();
        return keyed
            .into_iter()
            .map(|(_, id, thread)| (if s.ascending { id } else { !id }, thread))
            .collect();
    }
    sort_general(sort, matched, threads)
}

/// [`sort_order`] for any comparators, on [`Key`]s.
fn sort_general(sort: &[Sorter], matched: &[&Item<'_>], threads: &Threads) -> Vec<(u64, u64)> {
    // The keys of candidate `i` are `keys[i * width..][..width]`: one
    // allocation rather than one per candidate.
    let width = sort.len();
    let keys: Vec<Key> = matched
        .iter()
        .flat_map(|item| sort.iter().map(|s| sort_key(s, item, threads)))
        .collect();
    let mut order: Vec<usize> = (0..matched.len()).collect();
    // Unstable is enough: ids break every tie, so the order is total.
    order.sort_unstable_by(|&a, &b| {
        for (i, s) in sort.iter().enumerate() {
            let ka = keys.get(a * width + i);
            let kb = keys.get(b * width + i);
            let ord = ka.cmp(&kb);
            let ord = if s.ascending { ord } else { ord.reverse() };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        let id = |i: usize| matched.get(i).map_or(0, |m| m.summary.id);
        let tie = id(a).cmp(&id(b));
        if sort.last().is_some_and(|s| !s.ascending) {
            tie.reverse()
        } else {
            tie
        }
    });
    order
        .into_iter()
        .filter_map(|i| matched.get(i))
        .map(|m| (m.summary.id, m.summary.thread_id))
        .collect()
}

/// Email/query (RFC 8621 §4.4).
pub async fn query(
    ctx: &mut Ctx<'_>,
    args: Map<String, Value>,
    call: &mut CallContext,
) -> Result<Value, MethodError> {
    let mut args = Args::new(args);
    let request = QueryRequest::parse(&mut args, call)?;
    let collapse = args.take_or_default::<bool>("collapseThreads")?;
    args.finish()?;
    ctx.check_account(&request.account_id)?;
    request.check_collations(&call.limits().collation_algorithms)?;
    let spec = QuerySpec::parse(request.filter.as_ref(), &request.sort, collapse, call)?;
    // Read before the data: a change in between shows up again in the next
    // queryChanges rather than being missed.
    let state = email_state(ctx).await?;
    let outcome = run(ctx, &spec).await?;
    let anchor = match &request.anchor {
        None => None,
        Some(a) => Some(ids::parse_email(a.as_str()).ok_or_else(|| {
            MethodError::with_description(
                MethodErrorKind::AnchorNotFound,
                "the anchor is not in the query results",
            )
        })?),
    };
    let window = query_window(
        &outcome.ids,
        request.position,
        anchor.as_ref(),
        request.anchor_offset,
        request.limit,
        None,
    )?;
    let response = QueryResponse {
        account_id: request.account_id,
        query_state: state.to_string(),
        can_calculate_changes: true,
        position: u64::try_from(window.position).unwrap_or(u64::MAX),
        ids: window
            .slice(&outcome.ids)
            .iter()
            .map(|&n| ids::email(n))
            .collect(),
        total: request
            .calculate_total
            .then(|| u64::try_from(outcome.ids.len()).unwrap_or(u64::MAX)),
        limit: window.limit,
        extra: Map::new(),
    };
    serde_json::to_value(&response)
        .map_err(|e| MethodError::server_fail(format!("cannot serialize Email/query: {e}")))
}

fn cannot_calculate(description: impl Into<String>) -> MethodError {
    MethodError::with_description(MethodErrorKind::CannotCalculateChanges, description)
}

/// Email/queryChanges (RFC 8621 §4.5, RFC 8620 §5.6); see the module
/// documentation for how the changes are found.
pub async fn query_changes(
    ctx: &mut Ctx<'_>,
    args: Map<String, Value>,
    call: &mut CallContext,
) -> Result<Value, MethodError> {
    let mut args = Args::new(args);
    let request = QueryChangesRequest::parse(&mut args, call)?;
    let collapse = args.take_or_default::<bool>("collapseThreads")?;
    args.finish()?;
    ctx.check_account(&request.account_id)?;
    request.check_collations(&call.limits().collation_algorithms)?;
    let spec = QuerySpec::parse(request.filter.as_ref(), &request.sort, collapse, call)?;
    let since = parse_state(&request.since_query_state)?;
    let account = ctx.account.id;
    let changes = ctx
        .store()
        .changes(account, ObjectKind::Email, since, usize::MAX)
        .await
        .map_err(changes_error)?;
    let created: HashSet<u64> = changes.created.iter().copied().collect();
    let mut affected: HashSet<u64> = if spec.immutable() {
        changes
            .created
            .iter()
            .chain(&changes.destroyed)
            .copied()
            .collect()
    } else {
        changes
            .created
            .iter()
            .chain(&changes.updated)
            .chain(&changes.destroyed)
            .copied()
            .collect()
    };
    let nothing_changed = affected.is_empty();
    let outcome = if nothing_changed && !request.calculate_total {
        Outcome::default()
    } else {
        run(ctx, &spec).await?
    };
    // With a filter pinned to one mailbox, an email can only have been in
    // the old results if it was in that mailbox then: it is there now, or
    // the log shows it there (updated, destroyed, or left it) since.
    let scope = spec.filter.as_ref().and_then(scope_mailbox).flatten();
    let mut was_in_scope: Option<HashSet<u64>> = None;
    if (spec.thread_dependent() || scope.is_some()) && !nothing_changed {
        let log = ctx
            .store()
            .change_log(account, since, MAX_LOG_ENTRIES + 1)
            .await
            .map_err(changes_error)?;
        if log.len() > MAX_LOG_ENTRIES {
            return Err(cannot_calculate(
                "too many changes since that state: query again",
            ));
        }
        let emails = || log.iter().filter(|c| c.kind == ObjectKind::Email);
        if spec.thread_dependent() {
            let touched: HashSet<u64> = emails()
                .filter(|c| affected.contains(&c.id))
                .filter_map(|c| c.thread_id)
                .collect();
            affected.extend(
                outcome
                    .loaded
                    .iter()
                    .filter(|(_, thread)| touched.contains(thread))
                    .map(|(id, _)| *id),
            );
        }
        if let Some(mailbox) = scope {
            was_in_scope = Some(
                emails()
                    .filter(|c| c.mailbox_id == Some(mailbox))
                    .map(|c| c.id)
                    .chain(outcome.loaded.iter().map(|(id, _)| *id))
                    .collect(),
            );
        }
    }
    let mut added: Vec<AddedItem> = outcome
        .ids
        .iter()
        .enumerate()
        .filter(|(_, id)| affected.contains(id))
        .map(|(index, &id)| AddedItem {
            id: ids::email(id),
            index: u64::try_from(index).unwrap_or(u64::MAX),
        })
        .collect();
    // RFC 8620 §5.6: with immutable filter and sort, changes after the
    // client's last cached id may be left out.
    if spec.immutable()
        && let Some(up_to) = request
            .up_to_id
            .as_ref()
            .and_then(|i| ids::parse_email(i.as_str()))
        && let Some(limit) = outcome.ids.iter().position(|&id| id == up_to)
    {
        let limit = u64::try_from(limit).unwrap_or(u64::MAX);
        added.retain(|a| a.index <= limit);
    }
    let mut removed: Vec<u64> = affected
        .iter()
        .filter(|id| !created.contains(id))
        .filter(|id| was_in_scope.as_ref().is_none_or(|s| s.contains(id)))
        .copied()
        .collect();
    removed.sort_unstable();
    if let Some(max) = request.max_changes
        && u64::try_from(removed.len() + added.len()).unwrap_or(u64::MAX) > max
    {
        return Err(MethodError::with_description(
            MethodErrorKind::TooManyChanges,
            format!(
                "{} changes; maxChanges is {max}",
                removed.len() + added.len()
            ),
        ));
    }
    let response = QueryChangesResponse {
        account_id: request.account_id,
        old_query_state: request.since_query_state,
        new_query_state: changes.new_state.to_string(),
        total: request
            .calculate_total
            .then(|| u64::try_from(outcome.ids.len()).unwrap_or(u64::MAX)),
        removed: removed.into_iter().map(ids::email).collect(),
        added,
        extra: Map::new(),
    };
    serde_json::to_value(&response)
        .map_err(|e| MethodError::server_fail(format!("cannot serialize Email/queryChanges: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Candidates stay small: a query allocates one per message.
    #[test]
    fn a_candidate_is_three_words() {
        assert!(std::mem::size_of::<Item<'_>>() <= 3 * std::mem::size_of::<usize>());
    }

    /// The integer fast path orders exactly as the general one, ties
    /// (equal dates, equal sizes) included, in both directions.
    #[test]
    fn integer_sorts_order_as_the_general_sort() {
        let summaries: Vec<MessageSummary> = (1..=60u64)
            .map(|id| MessageSummary {
                id,
                mailbox_id: 1,
                uid: u32::try_from(id).unwrap_or_default(),
                blob_id: id,
                thread_id: id % 7,
                flags: Default::default(),
                keywords: Vec::new(),
                // Few distinct values, out of id order: many ties.
                internal_date: i64::try_from((id * 13) % 5).unwrap_or_default() - 2,
                size: (id * 7) % 4,
                modseq: id,
            })
            .collect();
        let items: Vec<Item<'_>> = summaries
            .iter()
            .map(|summary| Item {
                summary,
                meta: None,
            })
            .collect();
        let matched: Vec<&Item<'_>> = items.iter().collect();
        let threads = Threads::default();
        for property in [
            SortProperty::ReceivedAt,
            SortProperty::Size,
            SortProperty::SentAt,
        ] {
            for ascending in [true, false] {
                let sort = [Sorter {
                    property: property.clone(),
                    ascending,
                    collation: Collation::UnicodeCasemap,
                }];
                let fast = sort_order(&sort, &matched, &threads);
                assert_eq!(
                    fast,
                    sort_general(&sort, &matched, &threads),
                    "{property:?} ascending={ascending}"
                );
                assert_eq!(fast.len(), summaries.len());
            }
        }
    }

    #[test]
    fn terms() {
        assert_eq!(
            Terms::parse(r#"  Foo "big  Bar" don't 'it\'s' "open"#).0,
            vec!["foo", "big bar", "don't", "it's", "\"open"]
        );
        assert_eq!(Terms::parse("").0, Vec::<String>::new());
        assert!(Terms::parse("ÄPFEL").all_in(&["grüne äpfel"]));
    }

    #[test]
    fn collation_keys() {
        let k = |s| collation_key(Collation::UnicodeCasemap, s);
        assert!(k("apfel") < k("Äpfel"));
        assert!(k("Äpfel") < k("birne"));
        let n = |s| collation_key(Collation::AsciiNumeric, s);
        assert!(n("9") < n("10"));
        assert!(n("010") == n("10"));
        assert!(n("10") < n("abc"));
        assert!(n("abc") == n("xyz"));
        let a = |s| collation_key(Collation::AsciiCasemap, s);
        assert_eq!(a("abc"), a("ABC"));
    }

    #[test]
    fn three_valued_logic() {
        assert_eq!(all([Tri::Yes, Tri::Maybe].into_iter()), Tri::Maybe);
        assert_eq!(all([Tri::Maybe, Tri::No].into_iter()), Tri::No);
        assert_eq!(any([Tri::No, Tri::Maybe].into_iter()), Tri::Maybe);
        assert_eq!(any([Tri::Maybe, Tri::Yes].into_iter()), Tri::Yes);
        assert_eq!(Tri::Maybe.not(), Tri::Maybe);
    }

    #[test]
    fn filters_parse() {
        let call = CallContext::default();
        let f = parse_filter(
            &serde_json::json!({"operator": "AND", "conditions": [
                {"inMailbox": "F3", "hasKeyword": "$Seen"},
                {"operator": "NOT", "conditions": [{"text": "x"}]}
            ]}),
            &call,
        );
        let f = f.ok();
        assert!(
            f.as_ref()
                .is_some_and(|f| scope_mailbox(f) == Some(Some(3)))
        );
        let err = parse_filter(&serde_json::json!({"nope": 1}), &call).err();
        assert_eq!(
            err.map(|e| e.kind),
            Some(MethodErrorKind::UnsupportedFilter)
        );
        let err = parse_filter(&serde_json::json!({"header": []}), &call).err();
        assert_eq!(err.map(|e| e.kind), Some(MethodErrorKind::InvalidArguments));
        let err = parse_filter(&serde_json::json!({"before": "soon"}), &call).err();
        assert_eq!(err.map(|e| e.kind), Some(MethodErrorKind::InvalidArguments));
        let f = parse_filter(
            &serde_json::json!({"operator": "OR", "conditions": [
                {"subject": "hello world"},
                {"operator": "NOT", "conditions": [{"body": "hidden"}]},
                {"text": "both"}
            ]}),
            &call,
        );
        let (subject, body) = f.map(|f| snippet_terms(&f)).unwrap_or_default();
        assert_eq!(subject, vec!["both", "hello", "world"]);
        assert_eq!(body, vec!["both"]);
    }
}
