//! SORT (RFC 5256 §3, with RFC 5957 DISPLAYFROM/DISPLAYTO).
//!
//! Keys are computed once per message from the meta (no raw bytes needed),
//! then the messages are ordered by the criteria in turn, each possibly
//! reversed, and finally by sequence number ascending (RFC 5256: "if two
//! messages are equal under all criteria, sort by sequence number"; REVERSE
//! does not apply to that last rule).
//!
//! String keys compare with the i;ascii-casemap collation (ASCII letters
//! upper-cased, then octet order), extended towards i;unicode-casemap (which
//! Dovecot uses): other characters are upper-cased too, and accented Latin
//! letters sort right after their base letter (`Äpfel` between `Apfel` and
//! `Birne`), as the decomposition in i;unicode-casemap makes them.
//!
//! FROM, TO and CC use the first address of the ENVELOPE list as Dovecot does,
//! so a group (`Team: a@x;`) sorts by its group name.

use std::cmp::Ordering;

use mail_parser::HeaderValue;
use mail_parser::parsers::MessageStream;
use pochta_message::{EmailAddress, ImapAddress};

use crate::types::{SortCriterion, SortKey};
use crate::view::MessageView;

/// The computed value of one sort key for one message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    Int(i64),
    Size(u64),
    Text(String),
}

/// Orders `messages` by `criteria`; returns indices into `messages`, the first
/// to be listed first. With no criteria the order is by sequence number.
pub fn sort(messages: &[MessageView<'_>], criteria: &[SortCriterion]) -> Vec<usize> {
    // One flat vector, `width` keys per message: no allocation per message for
    // numeric keys (a big mailbox has 100 000 of them).
    let width = criteria.len();
    let keys: Vec<Value> = messages
        .iter()
        .flat_map(|m| criteria.iter().map(move |c| sort_value(m, c.key)))
        .collect();
    let mut order: Vec<usize> = (0..messages.len()).collect();
    order.sort_by(|&a, &b| {
        for (i, criterion) in criteria.iter().enumerate() {
            let ord = match (keys.get(a * width + i), keys.get(b * width + i)) {
                (Some(x), Some(y)) => x.cmp(y),
                _ => Ordering::Equal,
            };
            let ord = if criterion.reverse {
                ord.reverse()
            } else {
                ord
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        let msn = |i: usize| messages.get(i).map_or(0, |m| m.msn);
        msn(a).cmp(&msn(b))
    });
    order
}

/// The key `key` of `m` as SORT compares it.
fn sort_value(m: &MessageView<'_>, key: SortKey) -> Value {
    let meta = m.meta;
    match key {
        SortKey::Arrival => Value::Int(m.internal_date),
        SortKey::Date => Value::Int(m.sent_date()),
        SortKey::Size => Value::Size(m.size),
        SortKey::Subject => Value::Text(casemap(&meta.base_subject)),
        SortKey::From => Value::Text(first_mailbox(&meta.envelope.from)),
        SortKey::To => Value::Text(first_mailbox(&meta.envelope.to)),
        SortKey::Cc => Value::Text(first_mailbox(&meta.envelope.cc)),
        SortKey::DisplayFrom => Value::Text(display(&meta.envelope.from, &meta.from)),
        SortKey::DisplayTo => Value::Text(display(&meta.envelope.to, &meta.to)),
    }
}

/// The comparison form of i;unicode-casemap, shared with JMAP's sorting.
pub use pochta_message::collate::casemap;

/// RFC 5256 FROM/TO/CC: the addr-mailbox of the first address (the group name
/// when the list starts with a group); empty when there is none.
fn first_mailbox(list: &[ImapAddress]) -> String {
    list.first()
        .and_then(|a| a.mailbox.as_deref())
        .map(casemap)
        .unwrap_or_default()
}

/// RFC 5957 DISPLAYFROM/DISPLAYTO: the decoded display name of the first
/// address if it has a non-empty one, else its addr-spec; a list starting with
/// a group sorts by the group name.
fn display(envelope: &[ImapAddress], decoded: &[EmailAddress]) -> String {
    if let Some(group) = envelope.first().filter(|a| a.is_group_start()) {
        let name = group.mailbox.as_deref().unwrap_or_default();
        return casemap(&decode_words(name));
    }
    let Some(first) = decoded.first() else {
        return String::new();
    };
    match first.name.as_deref().map(str::trim) {
        Some(name) if !name.is_empty() => casemap(name),
        _ => casemap(&first.email),
    }
}

/// Decodes RFC 2047 encoded words (the meta encodes non-ASCII group names).
fn decode_words(text: &str) -> String {
    if !text.contains("=?") {
        return text.to_string();
    }
    let mut bytes = text.as_bytes().to_vec();
    bytes.push(b'\n');
    match MessageStream::new(&bytes).parse_unstructured() {
        HeaderValue::Text(decoded) => decoded.trim().to_string(),
        _ => text.to_string(),
    }
}
