//! SEARCH evaluation (RFC 9051 §6.4.4, RFC 7162 MODSEQ, RFC 8474 EMAILID and
//! THREADID, RFC 5032 OLDER/YOUNGER, RFC 5182 `$`) over [`MessageView`]s.
//!
//! A [`Matcher`] is compiled once per command (string keys are case-folded
//! there) and then run on every message. Flags, keywords, dates, sizes,
//! sequence sets and ids are compared without allocating; FROM/TO/CC/BCC and
//! SUBJECT use the decoded addresses and subject of the meta; HEADER, BODY and
//! TEXT read the raw message (see [`needs_raw`]), decoded once per message
//! however many keys use it.
//!
//! String keys are case-insensitive substring matches on decoded UTF-8 text
//! (RFC 2047 words in headers, Content-Transfer-Encoding and charset in bodies,
//! HTML reduced to its text); the case fold is Unicode lower case. The search
//! strings in [`SearchKey`] must already be UTF-8: the session converts them
//! from the command's CHARSET with [`charset_to_utf8`].

use std::borrow::Cow;
use std::cell::OnceCell;

use mail_parser::HeaderValue;
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::decoders::html::html_to_text;
use mail_parser::parsers::MessageStream;
use pochta_message::{BodyPart, EmailAddress, ImapAddress, MessageMeta, PartKind};

use crate::fetch::{
    decode_base64, decode_quoted_printable, header_fields_iter, parse_email_id, parse_thread_id,
};
use crate::types::{Date, SearchKey, SeqNum, SequenceSet};
use crate::view::{MessageView, utc_day};

/// What a search needs to know beyond the message itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct SearchContext<'a> {
    /// The largest message sequence number (what `*` means in a sequence set).
    pub max_msn: u32,
    /// The largest UID in the mailbox (what `*` means in a UID set); not
    /// UIDNEXT - 1, which may belong to an expunged message.
    pub max_uid: u32,
    /// The UIDs saved by SEARCHRES (`$`), sorted ascending; `None` (nothing
    /// saved) makes `$` match nothing.
    pub saved: Option<&'a [u32]>,
    /// The current time in Unix seconds, for OLDER and YOUNGER.
    pub now: i64,
}

/// True if evaluating `key` reads the raw message: BODY, TEXT and HEADER do
/// (except `HEADER SUBJECT`, see [`is_subject`]); every other key
/// (FROM/TO/CC/BCC/SUBJECT included) is answered from the meta. Without the
/// bytes those keys match nothing.
pub fn needs_raw(key: &SearchKey) -> bool {
    match key {
        SearchKey::Header(name, _) => !is_subject(name),
        SearchKey::Body(_) | SearchKey::Text(_) => true,
        SearchKey::And(keys) => keys.iter().any(needs_raw),
        SearchKey::Not(key) => needs_raw(key),
        SearchKey::Or(a, b) => needs_raw(a) || needs_raw(b),
        _ => false,
    }
}

/// `HEADER SUBJECT` is answered from the meta's subject, which is the Subject
/// field decoded from RFC 2047 and unfolded, exactly what matching the raw field
/// compares (RFC 5322 §3.6 allows one Subject field; only a second one, which
/// the meta does not keep, could differ). So a search on the subject header
/// does not read every message of the mailbox.
fn is_subject(name: &str) -> bool {
    name.trim().eq_ignore_ascii_case("subject")
}

/// True if `m` matches `key`. Compiles the key each time: when searching many
/// messages, compile a [`Matcher`] once instead.
pub fn matches(key: &SearchKey, m: &MessageView<'_>, ctx: &SearchContext<'_>) -> bool {
    Matcher::new(key).matches(m, ctx)
}

/// Converts a search string from the command's CHARSET to UTF-8; `None` for a
/// charset we do not know (the session answers `NO [BADCHARSET]`) or bytes
/// that are not valid in UTF-8 when that is the charset.
pub fn charset_to_utf8(charset: &str, bytes: &[u8]) -> Option<String> {
    if is_utf8_name(charset) {
        return String::from_utf8(bytes.to_vec()).ok();
    }
    if is_ascii_name(charset) {
        return bytes
            .is_ascii()
            .then(|| String::from_utf8_lossy(bytes).into_owned());
    }
    charset_decoder(charset.as_bytes()).map(|decode| decode(bytes))
}

fn is_utf8_name(charset: &str) -> bool {
    let c = charset.trim();
    c.eq_ignore_ascii_case("utf-8") || c.eq_ignore_ascii_case("utf8")
}

fn is_ascii_name(charset: &str) -> bool {
    let c = charset.trim();
    c.eq_ignore_ascii_case("us-ascii") || c.eq_ignore_ascii_case("ascii")
}

/// A compiled search key: needles folded, ids parsed.
#[derive(Debug, Clone)]
pub struct Matcher {
    node: Node,
}

#[derive(Debug, Clone, Copy)]
enum Flag {
    Seen,
    Answered,
    Flagged,
    Deleted,
    Draft,
    Recent,
}

#[derive(Debug, Clone, Copy)]
enum DateOp {
    Before,
    On,
    Since,
}

#[derive(Debug, Clone, Copy)]
enum AddressField {
    From,
    To,
    Cc,
    Bcc,
}

#[derive(Debug, Clone)]
enum Node {
    All,
    None,
    And(Vec<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    /// The flag is set (`true`) or not set (`false`).
    Flag(Flag, bool),
    New,
    Keyword(String, bool),
    InternalDate(DateOp, i64),
    SentDate(DateOp, i64),
    Larger(u64),
    Smaller(u64),
    Address(AddressField, String),
    Subject(String),
    Header(String, String),
    Body(String),
    Text(String),
    Msn(Vec<(SeqNum, SeqNum)>),
    Uid(Vec<(SeqNum, SeqNum)>),
    Saved,
    ModSeq(u64),
    EmailId(u64),
    ThreadId(u64),
    Older(u64),
    Younger(u64),
}

impl Matcher {
    /// Compiles `key`.
    pub fn new(key: &SearchKey) -> Self {
        Matcher { node: compile(key) }
    }

    /// True if `m` matches.
    pub fn matches(&self, m: &MessageView<'_>, ctx: &SearchContext<'_>) -> bool {
        let cache = Cache::default();
        eval(&self.node, m, ctx, &cache)
    }
}

fn needle(bytes: &[u8]) -> String {
    fold(&String::from_utf8_lossy(bytes))
}

fn day_of(date: &Date) -> i64 {
    utc_day(date.unix())
}

fn compile(key: &SearchKey) -> Node {
    match key {
        SearchKey::And(keys) => Node::And(keys.iter().map(compile).collect()),
        SearchKey::All => Node::All,
        SearchKey::Answered => Node::Flag(Flag::Answered, true),
        SearchKey::Unanswered => Node::Flag(Flag::Answered, false),
        SearchKey::Deleted => Node::Flag(Flag::Deleted, true),
        SearchKey::Undeleted => Node::Flag(Flag::Deleted, false),
        SearchKey::Draft => Node::Flag(Flag::Draft, true),
        SearchKey::Undraft => Node::Flag(Flag::Draft, false),
        SearchKey::Flagged => Node::Flag(Flag::Flagged, true),
        SearchKey::Unflagged => Node::Flag(Flag::Flagged, false),
        SearchKey::Seen => Node::Flag(Flag::Seen, true),
        SearchKey::Unseen => Node::Flag(Flag::Seen, false),
        SearchKey::Recent => Node::Flag(Flag::Recent, true),
        SearchKey::Old => Node::Flag(Flag::Recent, false),
        SearchKey::New => Node::New,
        SearchKey::Keyword(k) => Node::Keyword(k.clone(), true),
        SearchKey::Unkeyword(k) => Node::Keyword(k.clone(), false),
        SearchKey::Before(d) => Node::InternalDate(DateOp::Before, day_of(d)),
        SearchKey::On(d) => Node::InternalDate(DateOp::On, day_of(d)),
        SearchKey::Since(d) => Node::InternalDate(DateOp::Since, day_of(d)),
        SearchKey::SentBefore(d) => Node::SentDate(DateOp::Before, day_of(d)),
        SearchKey::SentOn(d) => Node::SentDate(DateOp::On, day_of(d)),
        SearchKey::SentSince(d) => Node::SentDate(DateOp::Since, day_of(d)),
        SearchKey::Larger(n) => Node::Larger(*n),
        SearchKey::Smaller(n) => Node::Smaller(*n),
        SearchKey::From(s) => Node::Address(AddressField::From, needle(s)),
        SearchKey::To(s) => Node::Address(AddressField::To, needle(s)),
        SearchKey::Cc(s) => Node::Address(AddressField::Cc, needle(s)),
        SearchKey::Bcc(s) => Node::Address(AddressField::Bcc, needle(s)),
        SearchKey::Subject(s) => Node::Subject(needle(s)),
        SearchKey::Header(name, s) if is_subject(name) => Node::Subject(needle(s)),
        SearchKey::Header(name, s) => Node::Header(name.trim().to_string(), needle(s)),
        SearchKey::Body(s) => Node::Body(needle(s)),
        SearchKey::Text(s) => Node::Text(needle(s)),
        SearchKey::Not(k) => Node::Not(Box::new(compile(k))),
        SearchKey::Or(a, b) => Node::Or(Box::new(compile(a)), Box::new(compile(b))),
        SearchKey::SequenceSet(SequenceSet::Ranges(r)) => Node::Msn(r.clone()),
        SearchKey::Uid(SequenceSet::Ranges(r)) => Node::Uid(r.clone()),
        SearchKey::SequenceSet(SequenceSet::Saved) | SearchKey::Uid(SequenceSet::Saved) => {
            Node::Saved
        }
        SearchKey::ModSeq(n) => Node::ModSeq(*n),
        SearchKey::EmailId(id) => parse_email_id(id).map_or(Node::None, Node::EmailId),
        SearchKey::ThreadId(id) => parse_thread_id(id).map_or(Node::None, Node::ThreadId),
        SearchKey::Older(n) => Node::Older(*n),
        SearchKey::Younger(n) => Node::Younger(*n),
    }
}

/// Texts decoded from the raw message, computed at most once per message.
#[derive(Default)]
struct Cache {
    /// Folded, decoded bodies of the text parts.
    body: OnceCell<String>,
    /// Folded, decoded header fields of the message and of its parts.
    headers: OnceCell<String>,
}

/// UID sets (RFC 9051 §6.4.8): `*` is the largest UID, then `a:b` is the range
/// between them in either order, so `20:*` always includes the last message.
fn in_uid_ranges(ranges: &[(SeqNum, SeqNum)], value: u32, max: u32) -> bool {
    let resolve = |n: SeqNum| match n {
        SeqNum::Value(v) => v,
        SeqNum::Star => max,
    };
    ranges.iter().any(|&(a, b)| {
        let (a, b) = (resolve(a), resolve(b));
        a.min(b) <= value && value <= a.max(b)
    })
}

/// Message sequence number sets, as Dovecot evaluates them: the range is put
/// in order with `*` above every number, then `*` becomes the last message. So
/// `5:*` is 5 to the last and `*` the last, but `20:*` in a mailbox of 9
/// messages names no message (there is no message 20).
fn in_msn_ranges(ranges: &[(SeqNum, SeqNum)], value: u32, max: u32) -> bool {
    let order = |n: SeqNum| match n {
        SeqNum::Value(v) => u64::from(v),
        SeqNum::Star => u64::MAX,
    };
    let value = u64::from(value);
    let max = u64::from(max);
    ranges.iter().any(|&(a, b)| {
        let (lo, hi) = (order(a).min(order(b)), order(a).max(order(b)));
        let lo = if lo == u64::MAX { max } else { lo };
        lo <= value && value <= hi.min(max)
    })
}

fn compare_day(op: DateOp, day: i64, key: i64) -> bool {
    match op {
        DateOp::Before => day < key,
        DateOp::On => day == key,
        DateOp::Since => day >= key,
    }
}

fn eval(node: &Node, m: &MessageView<'_>, ctx: &SearchContext<'_>, cache: &Cache) -> bool {
    match node {
        Node::All => true,
        Node::None => false,
        Node::And(nodes) => nodes.iter().all(|n| eval(n, m, ctx, cache)),
        Node::Or(a, b) => eval(a, m, ctx, cache) || eval(b, m, ctx, cache),
        Node::Not(n) => !eval(n, m, ctx, cache),
        Node::Flag(flag, want) => {
            let f = m.flags;
            let set = match flag {
                Flag::Seen => f.seen,
                Flag::Answered => f.answered,
                Flag::Flagged => f.flagged,
                Flag::Deleted => f.deleted,
                Flag::Draft => f.draft,
                Flag::Recent => f.recent,
            };
            set == *want
        }
        Node::New => m.flags.recent && !m.flags.seen,
        Node::Keyword(k, want) => m.keywords.iter().any(|x| x.eq_ignore_ascii_case(k)) == *want,
        Node::InternalDate(op, key) => compare_day(*op, utc_day(m.internal_date), *key),
        Node::SentDate(op, key) => compare_day(*op, sent_day(m), *key),
        Node::Larger(n) => m.size > *n,
        Node::Smaller(n) => m.size < *n,
        Node::Address(field, needle) => {
            let (meta, envelope) = (m.meta, &m.meta.envelope);
            let (decoded, groups) = match field {
                AddressField::From => (&meta.from, &envelope.from),
                AddressField::To => (&meta.to, &envelope.to),
                AddressField::Cc => (&meta.cc, &envelope.cc),
                AddressField::Bcc => (&meta.bcc, &envelope.bcc),
            };
            addresses_contain(decoded, groups, needle)
        }
        Node::Subject(needle) => m
            .meta
            .subject
            .as_deref()
            .is_some_and(|s| contains_folded(s, needle)),
        Node::Header(name, needle) => header_contains(m, name, needle),
        Node::Body(needle) => m.raw.is_some() && contains(body_text(m, cache), needle),
        Node::Text(needle) => {
            m.raw.is_some()
                && (contains(header_text(m, cache), needle)
                    || contains(body_text(m, cache), needle))
        }
        Node::Msn(ranges) => in_msn_ranges(ranges, m.msn, ctx.max_msn),
        Node::Uid(ranges) => in_uid_ranges(ranges, m.uid, ctx.max_uid),
        Node::Saved => ctx
            .saved
            .is_some_and(|uids| uids.binary_search(&m.uid).is_ok()),
        Node::ModSeq(n) => m.modseq >= *n,
        Node::EmailId(id) => m.email_id == *id,
        Node::ThreadId(id) => m.thread_id == *id,
        Node::Older(n) => age(m, ctx) > i128::from(*n),
        Node::Younger(n) => age(m, ctx) <= i128::from(*n),
    }
}

fn age(m: &MessageView<'_>, ctx: &SearchContext<'_>) -> i128 {
    i128::from(ctx.now) - i128::from(m.internal_date)
}

/// Lower-cases `s` for case-insensitive comparison (ASCII quickly, other
/// characters by their Unicode lower case).
pub(crate) fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    fold_into(&mut out, s);
    out
}

fn fold_into(out: &mut String, s: &str) {
    for ch in s.chars() {
        if ch.is_ascii() {
            out.push(ch.to_ascii_lowercase());
        } else {
            out.extend(ch.to_lowercase());
        }
    }
}

fn contains(haystack: &str, needle: &str) -> bool {
    memchr::memmem::find(haystack.as_bytes(), needle.as_bytes()).is_some()
}

/// Case-insensitive substring test of an unfolded haystack; folds only when it
/// has to (non-ASCII or upper-case characters).
fn contains_folded(haystack: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    if haystack.is_ascii() && needle.is_ascii() {
        let (h, n) = (haystack.as_bytes(), needle.as_bytes());
        return h.len() >= n.len() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n));
    }
    contains(&fold(haystack), needle)
}

/// FROM/TO/CC/BCC: the needle is part of an address's decoded display name,
/// of its `local@domain`, or of a group name (`undisclosed-recipients:;`), as
/// in Dovecot. An absent or empty field matches nothing.
fn addresses_contain(decoded: &[EmailAddress], envelope: &[ImapAddress], needle: &str) -> bool {
    decoded.iter().any(|a| {
        a.name
            .as_deref()
            .is_some_and(|name| contains_folded(name, needle))
            || contains_folded(&a.email, needle)
    }) || envelope.iter().any(|a| {
        a.is_group_start()
            && a.mailbox
                .as_deref()
                .is_some_and(|group| contains_folded(&decode_words(group), needle))
    })
}

/// Decodes RFC 2047 encoded words (the meta keeps non-ASCII group names and
/// ENVELOPE names encoded).
fn decode_words(text: &str) -> Cow<'_, str> {
    if !text.contains("=?") {
        return Cow::Borrowed(text);
    }
    let mut bytes = text.as_bytes().to_vec();
    bytes.push(b'\n');
    match MessageStream::new(&bytes).parse_unstructured() {
        HeaderValue::Text(decoded) => Cow::Owned(decoded.trim().to_string()),
        _ => Cow::Borrowed(text),
    }
}

/// The header section of the top-level message in `raw`.
fn top_header<'r>(raw: &'r [u8], meta: &MessageMeta) -> &'r [u8] {
    let range = meta.body.header_range();
    let end = range.end.min(raw.len());
    raw.get(range.start.min(end)..end).unwrap_or_default()
}

/// A header field's value (after the colon), unfolded and RFC 2047-decoded.
fn decode_field_value(field: &[u8]) -> String {
    let value = match memchr::memchr(b':', field) {
        Some(colon) => field.get(colon + 1..).unwrap_or_default(),
        None => return String::new(),
    };
    let mut bytes: Vec<u8> = value
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    // mail-parser's field parsers expect the line ending.
    bytes.push(b'\n');
    match MessageStream::new(&bytes).parse_unstructured() {
        HeaderValue::Text(text) => text.trim().to_string(),
        _ => String::new(),
    }
}

/// HEADER name string: some field `name` of the top-level header contains the
/// string; an empty string matches any message that has the field.
fn header_contains(m: &MessageView<'_>, name: &str, needle: &str) -> bool {
    let Some(raw) = m.raw else {
        return false;
    };
    header_fields_iter(top_header(raw, m.meta)).any(|(field_name, field)| {
        field_name.eq_ignore_ascii_case(name.as_bytes())
            && (needle.is_empty() || contains_folded(&decode_field_value(field), needle))
    })
}

/// Header text for TEXT: every field of the message header and of the part
/// headers (attachment names are found this way), decoded, folded.
fn header_text<'c>(m: &MessageView<'_>, cache: &'c Cache) -> &'c str {
    cache.headers.get_or_init(|| {
        let raw = m.raw.unwrap_or_default();
        let mut out = String::new();
        let mut add_header = |header: &[u8]| {
            for (name, field) in header_fields_iter(header) {
                fold_into(&mut out, &String::from_utf8_lossy(name));
                out.push_str(": ");
                fold_into(&mut out, &decode_field_value(field));
                out.push('\n');
            }
        };
        add_header(top_header(raw, m.meta));
        m.meta.body.walk(&mut |part: &BodyPart| {
            if part.header_start != m.meta.body.header_start {
                add_header(slice(raw, part.header_range()));
            }
        });
        out
    })
}

fn slice(raw: &[u8], range: std::ops::Range<usize>) -> &[u8] {
    let end = range.end.min(raw.len());
    raw.get(range.start.min(end)..end).unwrap_or_default()
}

/// Body text for BODY and TEXT: the text/* leaves anywhere in the structure
/// (encapsulated messages included), transfer-decoded, converted to UTF-8,
/// HTML reduced to text, folded. Other leaves (images, archives) are not text
/// and are not searched, as in Dovecot.
fn body_text<'c>(m: &MessageView<'_>, cache: &'c Cache) -> &'c str {
    cache.body.get_or_init(|| {
        let raw = m.raw.unwrap_or_default();
        let mut out = String::new();
        m.meta.body.walk(&mut |part: &BodyPart| {
            if matches!(part.kind, PartKind::Leaf) && part.media_type == "text" {
                let text = part_text(raw, part);
                fold_into(&mut out, &text);
                out.push('\n');
            }
        });
        out
    })
}

/// The decoded text of a text/* leaf.
pub(crate) fn part_text(raw: &[u8], part: &BodyPart) -> String {
    let body = slice(raw, part.body_range());
    let decoded: Cow<'_, [u8]> = match part.encoding.as_str() {
        "BASE64" => Cow::Owned(decode_base64(body)),
        "QUOTED-PRINTABLE" => Cow::Owned(decode_quoted_printable(body)),
        _ => Cow::Borrowed(body),
    };
    let text = bytes_to_utf8(&decoded, part.charset.as_deref());
    if part.media_subtype == "html" {
        html_to_text(&text)
    } else {
        text.into_owned()
    }
}

/// Text in `charset` as UTF-8. Bytes that are valid UTF-8 under a missing,
/// US-ASCII or UTF-8 label are taken as UTF-8 (mislabelled 8-bit mail is
/// common); unknown charsets are read as UTF-8 with replacement characters.
fn bytes_to_utf8<'b>(bytes: &'b [u8], charset: Option<&str>) -> Cow<'b, str> {
    let lenient = charset.is_none_or(|c| is_utf8_name(c) || is_ascii_name(c));
    if lenient && let Ok(s) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(s);
    }
    match charset
        .filter(|c| !is_utf8_name(c))
        .and_then(|c| charset_decoder(c.trim().as_bytes()))
    {
        Some(decode) => Cow::Owned(decode(bytes)),
        None => String::from_utf8_lossy(bytes),
    }
}

/// The calendar day of the Date header in the header's own time zone
/// (SENTBEFORE/SENTON/SENTSINCE disregard time and zone, RFC 9051 §6.4.4), read
/// from the raw Date value; else the UTC day of the parsed date; else, when
/// the message has no usable Date, 1 January 1970, as Dovecot does (so such
/// messages are "sent before" any date).
fn sent_day(m: &MessageView<'_>) -> i64 {
    if let Some(day) = m.meta.envelope.date.as_deref().and_then(date_header_day) {
        return day;
    }
    utc_day(m.meta.sent_at.unwrap_or(0))
}

/// Parses the date part of an RFC 5322 date (`[Www,] d Mon yyyy ...`) to a day
/// number, without looking at the time or zone.
fn date_header_day(value: &str) -> Option<i64> {
    let rest = match value.find(',') {
        Some(comma) => value.get(comma + 1..)?,
        None => value,
    };
    let mut words = rest
        .split(|c: char| c.is_whitespace() || c == '-')
        .filter(|w| !w.is_empty());
    let day: i64 = words.next()?.parse().ok()?;
    let month_word = words.next()?;
    let month_prefix = month_word.get(..3)?;
    let month = crate::view::MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(month_prefix))?;
    let year_word = words.next()?;
    if !year_word.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut year: i64 = year_word.parse().ok()?;
    // RFC 5322 §4.3 obsolete years.
    year = match year_word.len() {
        2 if year < 50 => year + 2000,
        2 | 3 => year + 1900,
        _ => year,
    };
    let month = i64::try_from(month).ok()? + 1;
    if !(1..=31).contains(&day) {
        return None;
    }
    Some(crate::types::days_from_civil(year, month, day))
}
