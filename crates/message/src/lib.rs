//! Message metadata for pochta.
//!
//! When a message is delivered (SMTP, IMAP APPEND, JMAP import) the server parses it
//! **once** with [`parse`] and stores the resulting [`MessageMeta`] (in a compact
//! binary form, see [`MessageMeta::encode`]) next to the raw bytes, which are kept verbatim. IMAP FETCH
//! ENVELOPE / BODYSTRUCTURE / BODY\[section\], SEARCH/SORT, JMAP Email/get and threading
//! then work from the meta and from byte ranges of the raw message, never re-parsing it.
//!
//! [`header_end`] and [`find_header`] are small hand-written scanners for hot paths
//! (the SMTP receiver) that only need to look at the top-level header section.
//!
//! # Rules worth knowing
//!
//! * Every offset in a [`BodyPart`] is absolute in the raw message, also inside
//!   encapsulated `message/rfc822` parts.
//! * [`PartKind`] decides the structure; the media type never contradicts it: a declared
//!   `multipart/*` that could not be split (no boundary found, or deeper than
//!   [`MAX_DEPTH`]) is recorded as a `text/plain` leaf, and a declared
//!   `message/rfc822` / `message/global` that is not parsed as a message (a base64 or
//!   quoted-printable transfer encoding, or deeper than [`MAX_DEPTH`]) is recorded as an
//!   `application/octet-stream` leaf. So an IMAP server can emit BODYSTRUCTURE from
//!   `kind` alone and always produce valid syntax.
//! * Top-level fields (subject, addresses, ids, date, envelope) come from the **first**
//!   header field of each name; `Content-*` fields of a part come from the **last** one
//!   (that is the one mail-parser uses to split the MIME structure, so both agree).
//! * Children of `multipart/digest` without a Content-Type are `message/rfc822`
//!   (RFC 2046) and are parsed as messages.
//!
//! # mail-parser 0.11 behaviour this crate works around or relies on
//!
//! * Encapsulated messages are never handed to mail-parser's own nesting (it recurses
//!   without bound and can overflow the stack; base64 ones get offsets relative to the
//!   decoded bytes). See `build.rs` for how they are parsed here instead.
//! * Part offsets: the body of a part ends before the line ending that precedes the
//!   next delimiter; a multipart's body starts right after its header (preamble
//!   included) and, at top level, runs to the end of the input (epilogue included).
//! * LF-only and mixed line ends are handled the same as CRLF; the blank line ending a
//!   header section may be `\n\n`.
//! * A delimiter is recognised anywhere `--boundary` occurs, even mid-line.
//! * A last line without a colon is read as a header field name (so "hello" alone is a
//!   header-only message); input with no header field at all is not a message (see
//!   [`parse`]).
//! * Offsets are `u32`: inputs of 4 GiB or more get the fallback meta.

mod build;
pub mod collate;
pub mod decode;
mod encode;
mod preview;
mod scan;
mod subject;

use serde::{Deserialize, Serialize};

pub use scan::{count_headers, find_header, header_end};
pub use subject::base_subject;

/// Version of the [`MessageMeta`] layout; a stored meta with another version must be
/// rebuilt by calling [`parse`] on the raw message again.
pub const META_VERSION: u32 = 1;

/// First octet of [`MessageMeta::encode`]'s form (never the first octet of JSON).
const BINARY_MARKER: u8 = 0;
/// Second octet: the layout of the postcard part. Postcard has no field names, so
/// a change of [`MessageMeta`]'s fields must change this too.
const BINARY_LAYOUT: u8 = 1;

/// Why a stored [`MessageMeta`] could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MetaDecodeError {
    /// The JSON form (stores written before the binary one) is damaged.
    #[error("metadata JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The binary form is damaged.
    #[error("binary metadata: {0}")]
    Binary(#[from] postcard::Error),
    /// The binary form has octets after the meta.
    #[error("binary metadata: {0} octets after the end")]
    Trailing(usize),
    /// The binary form is of a layout this build does not know.
    #[error("binary metadata of unknown layout {0}")]
    Layout(u8),
}

/// Maximum nesting depth of [`BodyPart`]s (multipart children and encapsulated messages)
/// kept in the tree; deeper containers become leaves. Bounds recursion everywhere
/// (including serde_json's 128-level limit when reading the meta back).
pub const MAX_DEPTH: usize = 32;

/// Maximum number of characters in [`MessageMeta::preview`].
pub const PREVIEW_CHARS: usize = 256;

/// Parses a raw RFC 5322 message. Never panics, on any input (best effort on broken MIME).
///
/// Input that has no header field and no blank line at all yields a meta whose body is a
/// single `text/plain` leaf covering the whole input.
pub fn parse(raw: &[u8]) -> MessageMeta {
    build::parse(raw)
}

/// The From addresses of a message, decoded as [`MessageMeta::from`], reading only
/// the header section: submission checks them against the login before anything is
/// stored, and the DKIM signer signs for the domain that check saw, so the two must
/// read the field alike (a hand-written scan and a real parser can disagree on
/// comments and quoted strings).
pub fn from_addresses(raw: &[u8]) -> Vec<EmailAddress> {
    let head = raw.get(..header_end(raw)).unwrap_or(raw);
    build::parse(head).from
}

/// Everything the server needs to know about a stored message without re-parsing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageMeta {
    /// Layout version, [`META_VERSION`] when produced by this crate.
    pub version: u32,
    /// Length of the raw message in octets (RFC822.SIZE).
    pub size: u64,
    /// Message-ID without angle brackets.
    pub message_id: Option<String>,
    /// In-Reply-To ids without angle brackets.
    pub in_reply_to: Vec<String>,
    /// References ids without angle brackets.
    pub references: Vec<String>,
    /// Subject decoded from RFC 2047 to UTF-8; `Some("")` if the header is present but empty.
    pub subject: Option<String>,
    /// RFC 5256 §2.1 base subject (for SORT SUBJECT and THREAD=ORDEREDSUBJECT); not lowercased.
    pub base_subject: String,
    /// Date header as Unix seconds (UTC); None if missing or unparseable.
    pub sent_at: Option<i64>,
    /// From, decoded, groups flattened.
    pub from: Vec<EmailAddress>,
    /// Sender, decoded, groups flattened.
    pub sender: Vec<EmailAddress>,
    /// Reply-To, decoded, groups flattened.
    pub reply_to: Vec<EmailAddress>,
    /// To, decoded, groups flattened.
    pub to: Vec<EmailAddress>,
    /// Cc, decoded, groups flattened.
    pub cc: Vec<EmailAddress>,
    /// Bcc, decoded, groups flattened.
    pub bcc: Vec<EmailAddress>,
    /// Up to [`PREVIEW_CHARS`] characters of the first text/plain part (or text rendered
    /// from the first text/html part), decoded, whitespace collapsed.
    pub preview: String,
    /// Whether the message has a part a user would call an attachment.
    pub has_attachment: bool,
    /// IMAP ENVELOPE of the top-level message.
    pub envelope: Envelope,
    /// MIME structure of the message with absolute byte offsets.
    pub body: BodyPart,
}

impl MessageMeta {
    /// The fields SEARCH, SORT and THREAD read over whole mailboxes: ids and
    /// references, subjects, decoded addresses, the IMAP envelope (its raw Date
    /// and address structures), dates, size, attachment flag. The MIME tree is
    /// reduced to one empty leaf and the preview dropped, so the stored form is a
    /// few hundred bytes and decodes fast for 100 000 messages.
    pub fn light(&self) -> MessageMeta {
        MessageMeta {
            version: self.version,
            size: self.size,
            message_id: self.message_id.clone(),
            in_reply_to: self.in_reply_to.clone(),
            references: self.references.clone(),
            subject: self.subject.clone(),
            base_subject: self.base_subject.clone(),
            sent_at: self.sent_at,
            from: self.from.clone(),
            sender: self.sender.clone(),
            reply_to: self.reply_to.clone(),
            to: self.to.clone(),
            cc: self.cc.clone(),
            bcc: self.bcc.clone(),
            preview: String::new(),
            has_attachment: self.has_attachment,
            envelope: self.envelope.clone(),
            body: BodyPart {
                header_start: 0,
                body_start: 0,
                body_end: 0,
                media_type: "text".into(),
                media_subtype: "plain".into(),
                params: Vec::new(),
                id: None,
                description: None,
                encoding: "7BIT".into(),
                size: 0,
                lines: 0,
                md5: None,
                disposition: None,
                language: Vec::new(),
                location: None,
                charset: None,
                kind: PartKind::Leaf,
            },
        }
    }

    /// Serialises the meta as compact JSON, the form it is stored in.
    pub fn to_json(&self) -> String {
        // Serialising plain owned data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a meta written by [`MessageMeta::to_json`].
    pub fn from_json(json: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(json)
    }

    /// The stored form: a marker octet, the layout version, then postcard.
    ///
    /// IMAP FETCH of ENVELOPE/BODYSTRUCTURE and JMAP Email/get decode one meta per
    /// message; from JSON that was a third of FETCH's CPU (every key and string
    /// scanned for escapes), this form decodes several times faster and is about
    /// half the size. The marker (0, which no JSON text starts with) lets
    /// [`MessageMeta::decode`] also read the JSON of stores written before it.
    pub fn encode(&self) -> Vec<u8> {
        let out = vec![BINARY_MARKER, BINARY_LAYOUT];
        // Writing plain owned data into a Vec cannot fail; an empty result would
        // be reported by decode rather than lost silently.
        postcard::to_extend(self, out).unwrap_or_default()
    }

    /// Reads a meta stored by [`MessageMeta::encode`] or, from older stores, by
    /// [`MessageMeta::to_json`]. Callers should compare `version` with
    /// [`META_VERSION`] and re-parse the raw message on mismatch.
    pub fn decode(stored: &[u8]) -> Result<Self, MetaDecodeError> {
        match stored {
            [BINARY_MARKER, BINARY_LAYOUT, rest @ ..] => {
                let (meta, left) = postcard::take_from_bytes(rest)?;
                if left.is_empty() {
                    Ok(meta)
                } else {
                    Err(MetaDecodeError::Trailing(left.len()))
                }
            }
            [BINARY_MARKER, layout, ..] => Err(MetaDecodeError::Layout(*layout)),
            _ => Ok(serde_json::from_slice(stored)?),
        }
    }

    /// Resolves an IMAP section part number ("1.2.3" as `[1, 2, 3]`) against this
    /// message's structure; see [`BodyPart::part`].
    pub fn part(&self, path: &[u32]) -> Option<&BodyPart> {
        self.body.part(path)
    }
}

/// A decoded address for search, sort and JMAP.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EmailAddress {
    /// Decoded display name (comments included by mail-parser), None if absent.
    pub name: Option<String>,
    /// The address `local@domain`; empty if the header held only a name.
    pub email: String,
}

/// IMAP ENVELOPE fields (RFC 9051 §7.5.2).
///
/// Strings are the header values as IMAP servers send them: unfolded (CRLF+WSP → WSP),
/// trimmed, NOT RFC 2047-decoded for date/subject/message_id/in_reply_to. Sender and
/// Reply-To are already filled in from From when absent or empty, as RFC 9051 requires.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Envelope {
    /// Raw Date value.
    pub date: Option<String>,
    /// Raw Subject value.
    pub subject: Option<String>,
    /// From addresses.
    pub from: Vec<ImapAddress>,
    /// Sender addresses (From if absent).
    pub sender: Vec<ImapAddress>,
    /// Reply-To addresses (From if absent).
    pub reply_to: Vec<ImapAddress>,
    /// To addresses.
    pub to: Vec<ImapAddress>,
    /// Cc addresses.
    pub cc: Vec<ImapAddress>,
    /// Bcc addresses.
    pub bcc: Vec<ImapAddress>,
    /// Raw In-Reply-To value.
    pub in_reply_to: Option<String>,
    /// Raw Message-ID value (with brackets, as in the header).
    pub message_id: Option<String>,
}

/// One IMAP address structure.
///
/// Groups are represented the RFC 9051 way: a start marker
/// `{name: None, adl: None, mailbox: Some(group name), host: None}`, the members, then an
/// end marker with all fields None. A member address always has a host (`"MISSING_DOMAIN"`
/// if the header had none, and `"MISSING_MAILBOX"` for a missing local part, as Dovecot
/// does), so it can never be mistaken for a group marker.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ImapAddress {
    /// Display name: decoded if pure ASCII, otherwise RFC 2047 `=?utf-8?b?...?=` words.
    pub name: Option<String>,
    /// Source route (obsolete); always None.
    pub adl: Option<String>,
    /// Local part, or the group name in a group start marker.
    pub mailbox: Option<String>,
    /// Domain; None only in group markers.
    pub host: Option<String>,
}

impl ImapAddress {
    /// True for a group start marker (mailbox holds the group name, host is None).
    pub fn is_group_start(&self) -> bool {
        self.host.is_none() && self.mailbox.is_some()
    }

    /// True for a group end marker (all fields None).
    pub fn is_group_end(&self) -> bool {
        self.host.is_none() && self.mailbox.is_none()
    }
}

/// One MIME part with absolute byte offsets into the raw message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyPart {
    /// Offset of this part's header section (0 for the top level).
    pub header_start: u64,
    /// Offset of the part's body (after the blank line).
    pub body_start: u64,
    /// Offset just past the body (excluding the CRLF that precedes a boundary delimiter).
    pub body_end: u64,
    /// Lower-case media type, e.g. "text" (default "text").
    pub media_type: String,
    /// Lower-case media subtype, e.g. "plain" (default "plain").
    pub media_subtype: String,
    /// Content-Type parameters, names lower-case, values decoded (RFC 2231/2047);
    /// `[("charset", "us-ascii")]` for a defaulted text/plain.
    pub params: Vec<(String, String)>,
    /// Content-ID, raw (unfolded, trimmed).
    pub id: Option<String>,
    /// Content-Description, raw (unfolded, trimmed).
    pub description: Option<String>,
    /// Content-Transfer-Encoding upper-cased as IMAP sends it ("7BIT" by default).
    pub encoding: String,
    /// Octets of the encoded body: `body_end - body_start`.
    pub size: u64,
    /// Lines of the encoded body: its line feeds, as Dovecot counts them (a last
    /// line without one, whose CRLF belongs to the next boundary, is not counted);
    /// IMAP uses it for text/* and message/rfc822 parts.
    pub lines: u64,
    /// Content-MD5, raw.
    pub md5: Option<String>,
    /// Lower-case disposition type and its parameters (decoded like `params`).
    pub disposition: Option<(String, Vec<(String, String)>)>,
    /// Content-Language values.
    pub language: Vec<String>,
    /// Content-Location, raw.
    pub location: Option<String>,
    /// The charset parameter, if any (convenience copy from `params`).
    pub charset: Option<String>,
    /// Leaf, multipart children, or encapsulated message.
    pub kind: PartKind,
}

/// What a [`BodyPart`] contains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartKind {
    /// A part with no structure below it.
    Leaf,
    /// multipart/*: children in order; params include "boundary".
    Multipart(Vec<BodyPart>),
    /// message/rfc822 or message/global: the encapsulated message's envelope and
    /// structure. Offsets stay absolute in the outer raw message; `body.header_start`
    /// equals this part's `body_start`.
    Message {
        /// ENVELOPE of the encapsulated message.
        envelope: Box<Envelope>,
        /// Root part of the encapsulated message.
        body: Box<BodyPart>,
    },
}

impl BodyPart {
    /// True if this part has multipart children.
    pub fn is_multipart(&self) -> bool {
        matches!(self.kind, PartKind::Multipart(_))
    }

    /// True if this part is an encapsulated message.
    pub fn is_message(&self) -> bool {
        matches!(self.kind, PartKind::Message { .. })
    }

    /// Multipart children (empty for other kinds).
    pub fn children(&self) -> &[BodyPart] {
        match &self.kind {
            PartKind::Multipart(children) => children,
            _ => &[],
        }
    }

    /// Byte range of this part's MIME header section (IMAP `BODY[n.MIME]`; for the top
    /// level, the message header).
    pub fn header_range(&self) -> std::ops::Range<usize> {
        to_usize(self.header_start)..to_usize(self.body_start)
    }

    /// Byte range of this part's body (IMAP `BODY[n]`).
    pub fn body_range(&self) -> std::ops::Range<usize> {
        to_usize(self.body_start)..to_usize(self.body_end)
    }

    /// Looks up a parameter of the Content-Type (name is matched case-insensitively).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The attachment file name: disposition `filename`, else Content-Type `name`.
    pub fn filename(&self) -> Option<&str> {
        self.disposition
            .as_ref()
            .and_then(|(_, params)| {
                params
                    .iter()
                    .find(|(k, _)| k == "filename")
                    .map(|(_, v)| v.as_str())
            })
            .or_else(|| self.param("name"))
    }

    /// Resolves IMAP section part numbers (RFC 9051 §6.4.5), `self` being the top-level
    /// body of a message.
    ///
    /// The children of a multipart are numbered from 1; a non-multipart message body
    /// (top level or encapsulated) has a single part 1, the body itself; the numbers after
    /// a message/rfc822 part address the parts of the encapsulated message. An empty path
    /// returns `self`. Returns None for 0 or out-of-range numbers.
    pub fn part(&self, path: &[u32]) -> Option<&BodyPart> {
        let mut found = self;
        // The node whose parts the next number selects, and whether it is the root
        // body of a (top-level or encapsulated) message.
        let mut context = self;
        let mut context_is_message_root = true;
        for &number in path {
            let index = usize::try_from(number.checked_sub(1)?).ok()?;
            let child = match &context.kind {
                PartKind::Multipart(children) => children.get(index)?,
                _ if context_is_message_root && index == 0 => context,
                _ => return None,
            };
            found = child;
            match &child.kind {
                PartKind::Message { body, .. } => {
                    context = body;
                    context_is_message_root = true;
                }
                _ => {
                    context = child;
                    context_is_message_root = false;
                }
            }
        }
        Some(found)
    }

    /// Calls `f` on this part and every part below it (depth first, in order), including
    /// the parts of encapsulated messages.
    pub fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a BodyPart)) {
        f(self);
        match &self.kind {
            PartKind::Leaf => {}
            PartKind::Multipart(children) => {
                for child in children {
                    child.walk(f);
                }
            }
            PartKind::Message { body, .. } => body.walk(f),
        }
    }
}

fn to_usize(offset: u64) -> usize {
    usize::try_from(offset).unwrap_or(usize::MAX)
}
