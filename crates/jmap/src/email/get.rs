//! Email/get and Email/changes (RFC 8621 §4.2, §4.3), and the rendering of
//! Email objects (RFC 8621 §4.1) that Email/parse shares.
//!
//! # Where each property comes from
//!
//! Everything is rendered from the [`MessageMeta`] stored at delivery and,
//! only when a requested property needs it, from the raw message:
//!
//! * metadata (`id`, `blobId`, `threadId`, `mailboxIds`, `keywords`, `size`,
//!   `receivedAt`) from the store's index entry;
//! * the convenience header properties (`messageId`, `from`, `subject`,
//!   `sentAt`, …), `hasAttachment` and `preview` from the meta. Like IMAP's
//!   ENVELOPE they describe the **first** field of each name (the meta keeps
//!   that one); `header:…` properties follow §4.1.3 to the letter (the last
//!   field, or all with `:all`);
//! * `headers`, `header:…` and body parts' `headers` from the raw header
//!   sections; `bodyValues` from the raw bodies; body parts' `size` is the
//!   decoded size (§4.1.4), so base64 and quoted-printable parts are decoded
//!   to measure them. Other body part properties come from the meta's MIME
//!   tree.
//!
//! So a list view asking for the fast properties of §4.2 costs one metadata
//! read per email and never touches the message bytes; when every property
//! asked for is in the light metadata (`MessageMeta::light`: all but
//! `preview`, the body parts, `bodyValues` and the header properties), only
//! that is read, in batches (`Store::light_records_by_ids`).
//!
//! # Body parts
//!
//! `bodyStructure` is the meta's MIME tree without descending into
//! `message/rfc822` parts. A part's `partId` is its IMAP part number
//! (`"1"`, `"2.1"`; multiparts have none) and its `blobId` is
//! [`ids::part_blob`] of the message blob and that path, which the download
//! endpoint decodes. `textBody`, `htmlBody` and `attachments` follow the
//! algorithm of §4.1.4 exactly (see `body_lists`).
//!
//! # Keywords
//!
//! IMAP's system flags map to `$seen`, `$answered`, `$flagged`, `$draft`;
//! other keywords are returned lower-cased (JMAP keywords are
//! case-insensitive). `\Deleted` is exposed as `$deleted` rather than hiding
//! the message: RFC 8621 §4.1.1 says messages with `\Deleted` "MUST NOT be
//! visible via JMAP", but hiding them only here would contradict Thread/get,
//! the Mailbox counts and Email/changes, which all see them; a consistent
//! view with an explicit keyword is the lesser deviation (Stalwart does the
//! same). See `keywords_value` and `keyword_flag`.
//!
//! # Rendering API for Email/parse
//!
//! `import.rs` renders parsed blobs with the same code:
//!
//! 1. `EmailRequest::take` takes `properties` (from the standard
//!    [`GetRequest`] parse) and the body arguments (`bodyProperties`,
//!    `fetch*BodyValues`, `maxBodyValueBytes`) out of the arguments, with
//!    `PARSE_DEFAULT_PROPERTIES` as the default list; it answers
//!    `invalidArguments` for unknown properties and forbidden header forms.
//! 2. For each blob: `let meta = pochta_message::parse(&raw)`, then
//!    `render_email``(Some(&raw), &meta, &EmailMetadata::parsed(blob_id, raw.len()), &PartBlobs { blob, prefix }, &request)`.
//!    `EmailMetadata::parsed` leaves `id`, `mailboxIds`, `keywords`,
//!    `receivedAt` and `threadId` null as §4.9 says. `PartBlobs` says how the
//!    parts' blob ids are formed: for an uploaded blob `B<hex>`,
//!    `{ blob: hex, prefix: [] }`; for a message attached to a stored
//!    message, `P<hex>_2` say, `{ blob: hex, prefix: [2] }`, so that its
//!    parts become `P<hex>_2-1`, … — the outer message's part numbers, which
//!    the download endpoint already resolves through `MessageMeta::part`.

use std::borrow::Cow;
use std::collections::HashSet;

use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::decoders::html::html_to_text;
use mail_parser::parsers::MessageStream;
use mail_parser::{Addr, Address, HeaderValue};
use pochta_jmap_proto::{
    Args, CallContext, ChangesRequest, ChangesResponse, GetRequest, GetResponse, Id, MethodError,
    MethodErrorKind,
};
use pochta_message::{BodyPart, MessageMeta, PartKind};
use pochta_store::{Flags, MessageSummary, ObjectKind, StoreError};
use serde_json::{Map, Value, json};

use crate::{Ctx, ids, store_error};

// ---------------------------------------------------------------- properties

/// The parsed forms of header fields (RFC 8621 §4.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderForm {
    /// The octets after the colon.
    Raw,
    /// Unfolded, RFC 2047-decoded.
    Text,
    /// `EmailAddress[]`.
    Addresses,
    /// `EmailAddressGroup[]`.
    GroupedAddresses,
    /// `String[]|null` of msg-ids.
    MessageIds,
    /// `Date|null`.
    Date,
    /// `String[]|null` of RFC 2369 URLs.
    Urls,
}

impl HeaderForm {
    fn parse(s: &str) -> Option<HeaderForm> {
        Some(match s {
            "asRaw" => HeaderForm::Raw,
            "asText" => HeaderForm::Text,
            "asAddresses" => HeaderForm::Addresses,
            "asGroupedAddresses" => HeaderForm::GroupedAddresses,
            "asMessageIds" => HeaderForm::MessageIds,
            "asDate" => HeaderForm::Date,
            "asURLs" => HeaderForm::Urls,
            _ => return None,
        })
    }

    /// Whether this form may be used on field `name` (lower-case),
    /// RFC 8621 §4.1.2.2–4.1.2.7: each structured form is allowed on the
    /// fields of its kind and on any field RFC 5322 and RFC 2369 do not
    /// define.
    fn allowed_on(self, name: &str) -> bool {
        const ADDRESSES: [&str; 12] = [
            "from",
            "sender",
            "reply-to",
            "to",
            "cc",
            "bcc",
            "resent-from",
            "resent-sender",
            "resent-reply-to",
            "resent-to",
            "resent-cc",
            "resent-bcc",
        ];
        const IDS: [&str; 4] = [
            "message-id",
            "in-reply-to",
            "references",
            "resent-message-id",
        ];
        const DATES: [&str; 2] = ["date", "resent-date"];
        const URLS: [&str; 6] = [
            "list-help",
            "list-unsubscribe",
            "list-subscribe",
            "list-post",
            "list-owner",
            "list-archive",
        ];
        const TEXT: [&str; 4] = ["subject", "comments", "keywords", "list-id"];
        const OTHER_DEFINED: [&str; 2] = ["return-path", "received"];
        let defined = ADDRESSES.contains(&name)
            || IDS.contains(&name)
            || DATES.contains(&name)
            || URLS.contains(&name)
            || TEXT.contains(&name)
            || OTHER_DEFINED.contains(&name);
        let own: &[&str] = match self {
            HeaderForm::Raw => return true,
            HeaderForm::Text => &TEXT,
            HeaderForm::Addresses | HeaderForm::GroupedAddresses => &ADDRESSES,
            HeaderForm::MessageIds => &IDS,
            HeaderForm::Date => &DATES,
            HeaderForm::Urls => &URLS,
        };
        // List-Id is RFC 2919's, so "not defined" there too.
        own.contains(&name) || !defined || name == "list-id"
    }
}

/// A `header:{name}[:as{form}][:all]` property (RFC 8621 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderProperty {
    /// The property exactly as requested (the response uses the same key).
    pub key: String,
    /// The field name, lower-cased for matching.
    pub name: String,
    /// The form.
    pub form: HeaderForm,
    /// `:all`.
    pub all: bool,
}

impl HeaderProperty {
    /// Parses `header:…`; `None` if `key` is not a header property at all,
    /// `Some(Err)` if it is one but malformed or uses a forbidden form.
    fn parse(key: &str) -> Option<Result<HeaderProperty, String>> {
        let rest = key.strip_prefix("header:")?;
        let mut pieces = rest.split(':');
        let name = pieces.next().unwrap_or_default();
        if name.is_empty() || !name.bytes().all(|b| (33..=126).contains(&b)) {
            return Some(Err(format!("{key:?}: invalid header field name")));
        }
        let mut form = HeaderForm::Raw;
        let mut all = false;
        let mut next = pieces.next();
        if let Some(f) = next.and_then(HeaderForm::parse) {
            form = f;
            next = pieces.next();
        }
        if next == Some("all") {
            all = true;
            next = pieces.next();
        }
        if next.is_some() {
            return Some(Err(format!("{key:?}: unknown header property suffix")));
        }
        let lower = name.to_ascii_lowercase();
        if !form.allowed_on(&lower) {
            return Some(Err(format!(
                "{key:?}: this form may not be used on this header field"
            )));
        }
        Some(Ok(HeaderProperty {
            key: key.to_string(),
            name: lower,
            form,
            all,
        }))
    }
}

/// An Email property (RFC 8621 §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Property {
    Id,
    BlobId,
    ThreadId,
    MailboxIds,
    Keywords,
    Size,
    ReceivedAt,
    MessageId,
    InReplyTo,
    References,
    Sender,
    From,
    To,
    Cc,
    Bcc,
    ReplyTo,
    Subject,
    SentAt,
    HasAttachment,
    Preview,
    BodyStructure,
    TextBody,
    HtmlBody,
    Attachments,
    BodyValues,
    Headers,
    Header(HeaderProperty),
}

impl Property {
    fn parse(s: &str) -> Result<Property, String> {
        if let Some(h) = HeaderProperty::parse(s) {
            return h.map(Property::Header);
        }
        Ok(match s {
            "id" => Property::Id,
            "blobId" => Property::BlobId,
            "threadId" => Property::ThreadId,
            "mailboxIds" => Property::MailboxIds,
            "keywords" => Property::Keywords,
            "size" => Property::Size,
            "receivedAt" => Property::ReceivedAt,
            "messageId" => Property::MessageId,
            "inReplyTo" => Property::InReplyTo,
            "references" => Property::References,
            "sender" => Property::Sender,
            "from" => Property::From,
            "to" => Property::To,
            "cc" => Property::Cc,
            "bcc" => Property::Bcc,
            "replyTo" => Property::ReplyTo,
            "subject" => Property::Subject,
            "sentAt" => Property::SentAt,
            "hasAttachment" => Property::HasAttachment,
            "preview" => Property::Preview,
            "bodyStructure" => Property::BodyStructure,
            "textBody" => Property::TextBody,
            "htmlBody" => Property::HtmlBody,
            "attachments" => Property::Attachments,
            "bodyValues" => Property::BodyValues,
            "headers" => Property::Headers,
            other => return Err(format!("unknown Email property {other:?}")),
        })
    }

    /// Whether the property renders the same from the light metadata
    /// (`MessageMeta::light`, which drops the preview and the MIME tree) as
    /// from the full one.
    fn in_light(&self) -> bool {
        matches!(
            self,
            Property::Id
                | Property::BlobId
                | Property::ThreadId
                | Property::MailboxIds
                | Property::Keywords
                | Property::Size
                | Property::ReceivedAt
                | Property::MessageId
                | Property::InReplyTo
                | Property::References
                | Property::Sender
                | Property::From
                | Property::To
                | Property::Cc
                | Property::Bcc
                | Property::ReplyTo
                | Property::Subject
                | Property::SentAt
                | Property::HasAttachment
        )
    }

    fn key(&self) -> &str {
        match self {
            Property::Id => "id",
            Property::BlobId => "blobId",
            Property::ThreadId => "threadId",
            Property::MailboxIds => "mailboxIds",
            Property::Keywords => "keywords",
            Property::Size => "size",
            Property::ReceivedAt => "receivedAt",
            Property::MessageId => "messageId",
            Property::InReplyTo => "inReplyTo",
            Property::References => "references",
            Property::Sender => "sender",
            Property::From => "from",
            Property::To => "to",
            Property::Cc => "cc",
            Property::Bcc => "bcc",
            Property::ReplyTo => "replyTo",
            Property::Subject => "subject",
            Property::SentAt => "sentAt",
            Property::HasAttachment => "hasAttachment",
            Property::Preview => "preview",
            Property::BodyStructure => "bodyStructure",
            Property::TextBody => "textBody",
            Property::HtmlBody => "htmlBody",
            Property::Attachments => "attachments",
            Property::BodyValues => "bodyValues",
            Property::Headers => "headers",
            Property::Header(h) => &h.key,
        }
    }
}

/// An EmailBodyPart property (RFC 8621 §4.1.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyProperty {
    PartId,
    BlobId,
    Size,
    Headers,
    Name,
    Type,
    Charset,
    Disposition,
    Cid,
    Language,
    Location,
    SubParts,
    Header(HeaderProperty),
}

impl BodyProperty {
    fn parse(s: &str) -> Result<BodyProperty, String> {
        if let Some(h) = HeaderProperty::parse(s) {
            return h.map(BodyProperty::Header);
        }
        Ok(match s {
            "partId" => BodyProperty::PartId,
            "blobId" => BodyProperty::BlobId,
            "size" => BodyProperty::Size,
            "headers" => BodyProperty::Headers,
            "name" => BodyProperty::Name,
            "type" => BodyProperty::Type,
            "charset" => BodyProperty::Charset,
            "disposition" => BodyProperty::Disposition,
            "cid" => BodyProperty::Cid,
            "language" => BodyProperty::Language,
            "location" => BodyProperty::Location,
            "subParts" => BodyProperty::SubParts,
            other => return Err(format!("unknown EmailBodyPart property {other:?}")),
        })
    }
}

/// The default `properties` of Email/get (RFC 8621 §4.2).
pub(crate) const GET_DEFAULT_PROPERTIES: [&str; 24] = [
    "id",
    "blobId",
    "threadId",
    "mailboxIds",
    "keywords",
    "size",
    "receivedAt",
    "messageId",
    "inReplyTo",
    "references",
    "sender",
    "from",
    "to",
    "cc",
    "bcc",
    "replyTo",
    "subject",
    "sentAt",
    "hasAttachment",
    "preview",
    "bodyValues",
    "textBody",
    "htmlBody",
    "attachments",
];

/// The default `properties` of Email/parse (RFC 8621 §4.9): Email/get's without
/// the seven that only a stored Email has (id, blobId, threadId, mailboxIds,
/// keywords, size, receivedAt).
pub(crate) const PARSE_DEFAULT_PROPERTIES: &[&str] = GET_DEFAULT_PROPERTIES.split_at(7).1;

/// The default `bodyProperties` (RFC 8621 §4.2).
pub(crate) const DEFAULT_BODY_PROPERTIES: [&str; 10] = [
    "partId",
    "blobId",
    "size",
    "name",
    "type",
    "charset",
    "disposition",
    "cid",
    "language",
    "location",
];

/// What to render: the properties and the body arguments of Email/get and
/// Email/parse.
#[derive(Debug, Clone)]
pub(crate) struct EmailRequest {
    /// Email properties, `id` first when rendering for Email/get.
    pub properties: Vec<Property>,
    /// EmailBodyPart properties.
    pub body_properties: Vec<BodyProperty>,
    /// `bodyProperties` was omitted: `bodyStructure` then nests its
    /// `subParts` anyway (the default list does not name it, and a flat
    /// root would be useless).
    pub default_body_properties: bool,
    /// `fetchTextBodyValues`.
    pub fetch_text: bool,
    /// `fetchHTMLBodyValues`.
    pub fetch_html: bool,
    /// `fetchAllBodyValues`.
    pub fetch_all: bool,
    /// `maxBodyValueBytes` (0: no truncation).
    pub max_body_value_bytes: usize,
}

impl EmailRequest {
    /// Builds the request from the standard `properties` (`None`: `default`)
    /// and takes the body arguments out of `args`. `invalidArguments` for an
    /// unknown property or a header form forbidden on that field (§4.1.2).
    pub(crate) fn take(
        args: &mut Args,
        properties: Option<Vec<String>>,
        default: &[&str],
    ) -> Result<EmailRequest, MethodError> {
        let names: Vec<String> = match properties {
            Some(p) => p,
            None => default.iter().map(|s| (*s).to_string()).collect(),
        };
        let mut props = Vec::with_capacity(names.len());
        for name in &names {
            let p = Property::parse(name).map_err(MethodError::invalid_arguments)?;
            if !props.contains(&p) {
                props.push(p);
            }
        }
        let given = args.take::<Vec<String>>("bodyProperties")?;
        let default_body_properties = given.is_none();
        let body_names = given.unwrap_or_else(|| {
            DEFAULT_BODY_PROPERTIES
                .iter()
                .map(|s| (*s).to_string())
                .collect()
        });
        let mut body_properties = Vec::with_capacity(body_names.len());
        for name in &body_names {
            let p = BodyProperty::parse(name).map_err(MethodError::invalid_arguments)?;
            if !body_properties.contains(&p) {
                body_properties.push(p);
            }
        }
        let fetch_text = args.take_or_default::<bool>("fetchTextBodyValues")?;
        let fetch_html = args.take_or_default::<bool>("fetchHTMLBodyValues")?;
        let fetch_all = args.take_or_default::<bool>("fetchAllBodyValues")?;
        let max = args.take_or_default::<u64>("maxBodyValueBytes")?;
        Ok(EmailRequest {
            properties: props,
            body_properties,
            default_body_properties,
            fetch_text,
            fetch_html,
            fetch_all,
            max_body_value_bytes: usize::try_from(max).unwrap_or(usize::MAX),
        })
    }

    fn wants(&self, p: &Property) -> bool {
        self.properties.contains(p)
    }

    /// Whether every property asked for renders the same from the light
    /// metadata: then Email/get reads that instead of the full one (no
    /// body property matters, as no body part is asked for).
    pub(crate) fn light_enough(&self) -> bool {
        self.properties.iter().all(Property::in_light)
    }

    fn wants_parts(&self) -> bool {
        self.properties.iter().any(|p| {
            matches!(
                p,
                Property::BodyStructure
                    | Property::TextBody
                    | Property::HtmlBody
                    | Property::Attachments
            )
        })
    }

    /// Whether rendering this message needs its raw bytes: header fields,
    /// body values, part headers, or decoded sizes of transfer-encoded parts.
    pub(crate) fn needs_raw(&self, meta: &MessageMeta) -> bool {
        if self
            .properties
            .iter()
            .any(|p| matches!(p, Property::Headers | Property::Header(_)))
        {
            return true;
        }
        if self.wants(&Property::BodyValues)
            && (self.fetch_text || self.fetch_html || self.fetch_all)
        {
            return true;
        }
        if !self.wants_parts() {
            return false;
        }
        if self
            .body_properties
            .iter()
            .any(|p| matches!(p, BodyProperty::Headers | BodyProperty::Header(_)))
        {
            return true;
        }
        if self.body_properties.contains(&BodyProperty::Size) {
            let mut encoded = false;
            meta.body.walk(&mut |p: &BodyPart| {
                if matches!(p.kind, PartKind::Leaf) && transfer(p) != Transfer::Identity {
                    encoded = true;
                }
            });
            return encoded;
        }
        false
    }
}

/// The metadata of an Email that does not come from its content: from the
/// store for Email/get, mostly null for Email/parse.
#[derive(Debug, Clone)]
pub(crate) struct EmailMetadata {
    /// `id`.
    pub id: Option<Id>,
    /// `blobId`.
    pub blob_id: Option<Id>,
    /// `threadId`.
    pub thread_id: Option<Id>,
    /// `mailboxIds`.
    pub mailbox_ids: Option<Value>,
    /// `keywords`.
    pub keywords: Option<Value>,
    /// `receivedAt` (Unix seconds).
    pub received_at: Option<i64>,
    /// `size`.
    pub size: u64,
}

impl EmailMetadata {
    /// A stored message's metadata.
    pub(crate) fn stored(s: &MessageSummary) -> EmailMetadata {
        EmailMetadata {
            id: Some(ids::email(s.id)),
            blob_id: Some(ids::blob(s.blob_id)),
            thread_id: Some(ids::thread(s.thread_id)),
            mailbox_ids: Some(json!({ ids::mailbox(s.mailbox_id).as_str(): true })),
            keywords: Some(keywords_value(s.flags, &s.keywords)),
            received_at: Some(s.internal_date),
            size: s.size,
        }
    }

    /// The metadata of a parsed blob (Email/parse, RFC 8621 §4.9): only
    /// `blobId` and `size`.
    pub(crate) fn parsed(blob_id: Id, size: usize) -> EmailMetadata {
        EmailMetadata {
            id: None,
            blob_id: Some(blob_id),
            thread_id: None,
            mailbox_ids: None,
            keywords: None,
            received_at: None,
            size: size as u64,
        }
    }
}

/// How the blob ids of a message's parts are formed:
/// [`ids::part_blob`]`(blob, prefix ++ part path)`.
#[derive(Debug, Clone, Default)]
pub(crate) struct PartBlobs {
    /// The stored blob the parts are decoded from.
    pub blob: u64,
    /// The path of the rendered message inside that blob (empty for a whole
    /// message).
    pub prefix: Vec<u32>,
}

impl PartBlobs {
    fn id(&self, path: &[u32]) -> Id {
        let mut full = self.prefix.clone();
        full.extend_from_slice(path);
        ids::part_blob(self.blob, &full)
    }
}

// ---------------------------------------------------------------- keywords

/// The JMAP keyword of a system flag, and back (`\Deleted` is `$deleted`;
/// see the module documentation).
const FLAG_KEYWORDS: [(Flags, &str); 5] = [
    (Flags::SEEN, "$seen"),
    (Flags::ANSWERED, "$answered"),
    (Flags::FLAGGED, "$flagged"),
    (Flags::DRAFT, "$draft"),
    (Flags::DELETED, "$deleted"),
];

/// The system flag a JMAP keyword stands for (`$seen` → `\Seen`, …,
/// `$deleted` → `\Deleted`), matched case-insensitively; `None` for other
/// keywords, which the store keeps as strings.
pub(crate) fn keyword_flag(keyword: &str) -> Option<Flags> {
    FLAG_KEYWORDS
        .iter()
        .find(|(_, k)| k.eq_ignore_ascii_case(keyword))
        .map(|(f, _)| *f)
}

/// The `keywords` object of a message: its flags as `$` keywords and its
/// other keywords lower-cased (RFC 8621 §4.1.1: "servers MUST return
/// keywords in lower-case").
pub(crate) fn keywords_value(flags: Flags, keywords: &[String]) -> Value {
    let mut map = Map::new();
    for (flag, name) in FLAG_KEYWORDS {
        if flags.contains(flag) {
            map.insert(name.to_string(), Value::Bool(true));
        }
    }
    for k in keywords {
        map.insert(k.to_ascii_lowercase(), Value::Bool(true));
    }
    Value::Object(map)
}

/// Whether the message has `keyword` (any case), as a flag or a keyword.
pub(crate) fn has_keyword(s: &MessageSummary, keyword: &str) -> bool {
    if let Some(flag) = keyword_flag(keyword)
        && s.flags.contains(flag)
    {
        return true;
    }
    s.keywords.iter().any(|k| k.eq_ignore_ascii_case(keyword))
}

// ---------------------------------------------------------------- dates

/// A UTCDate (RFC 8620 §1.4): `2014-10-30T06:12:00Z`.
pub(crate) fn utc_date(unix: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// Parses an RFC 3339 date-time (a UTCDate, or any offset) to Unix seconds.
pub(crate) fn parse_utc_date(s: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// An RFC 5322 date-time value as a JMAP Date (RFC 3339 with the message's
/// own offset), or `None` if it does not parse.
fn date_value(raw_value: &[u8]) -> Option<String> {
    match MessageStream::new(&with_newline(raw_value)).parse_date() {
        HeaderValue::DateTime(dt) if dt.is_valid() => Some(dt.to_rfc3339()),
        _ => None,
    }
}

// ---------------------------------------------------------------- header fields

/// One header field of a header section.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeaderField<'a> {
    /// The field name as written.
    pub name: &'a [u8],
    /// The value: every octet after the colon up to (not including) the
    /// line ending that terminates the field; folds included.
    pub value: &'a [u8],
}

/// The fields of a header section, in order. Stops at the empty line; a
/// line without a colon (an mbox `From ` line, garbage) is skipped.
pub(crate) fn header_fields(section: &[u8]) -> Vec<HeaderField<'_>> {
    let mut out = Vec::new();
    let mut pos = 0;
    let line_end = |from: usize| {
        section
            .get(from..)
            .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
            .map_or(section.len(), |i| from + i + 1)
    };
    while pos < section.len() {
        let rest = section.get(pos..).unwrap_or_default();
        if rest.starts_with(b"\n") || rest.starts_with(b"\r\n") {
            break;
        }
        let start = pos;
        let mut end = line_end(pos);
        while matches!(section.get(end), Some(b' ' | b'\t')) {
            end = line_end(end);
        }
        pos = end;
        let field = section.get(start..end).unwrap_or_default();
        let field = field.strip_suffix(b"\n").unwrap_or(field);
        let field = field.strip_suffix(b"\r").unwrap_or(field);
        let Some(colon) = field.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = field.get(..colon).unwrap_or_default();
        let name = trim_end(name);
        if name.is_empty() || name.iter().any(|&b| b == b' ' || b == b'\t') {
            continue;
        }
        out.push(HeaderField {
            name,
            value: field.get(colon + 1..).unwrap_or_default(),
        });
    }
    out
}

fn trim_end(b: &[u8]) -> &[u8] {
    let n = b
        .iter()
        .rposition(|&c| c != b' ' && c != b'\t')
        .map_or(0, |i| i + 1);
    b.get(..n).unwrap_or_default()
}

fn with_newline(value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(value.len() + 1);
    v.extend_from_slice(value);
    v.push(b'\n');
    v
}

/// The Raw form: the octets as UTF-8 (invalid sequences replaced), NULs dropped.
fn raw_form(value: &[u8]) -> String {
    let s = String::from_utf8_lossy(value);
    if s.contains('\0') {
        s.replace('\0', "")
    } else {
        s.into_owned()
    }
}

/// The Text form: unfolded, RFC 2047 words decoded, leading space removed.
pub(crate) fn text_form(value: &[u8]) -> String {
    match MessageStream::new(&with_newline(value)).parse_unstructured() {
        HeaderValue::Text(t) => t.trim().replace('\0', ""),
        _ => String::new(),
    }
}

fn address_json(a: &Addr<'_>) -> Option<Value> {
    let name = a.name.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let email = a.address.as_deref().map(str::trim).unwrap_or_default();
    if name.is_none() && email.is_empty() {
        return None;
    }
    Some(json!({ "name": name, "email": email }))
}

fn parse_addresses(value: &[u8]) -> Option<Address<'static>> {
    match MessageStream::new(&with_newline(value)).parse_address() {
        HeaderValue::Address(a) => Some(a.into_owned()),
        _ => None,
    }
}

fn addresses_form(value: &[u8]) -> Value {
    let list: Vec<Value> = match parse_addresses(value) {
        None => Vec::new(),
        Some(Address::List(l)) => l.iter().filter_map(address_json).collect(),
        Some(Address::Group(groups)) => groups
            .iter()
            .flat_map(|g| g.addresses.iter().filter_map(address_json))
            .collect(),
    };
    Value::Array(list)
}

fn grouped_addresses_form(value: &[u8]) -> Value {
    let groups: Vec<Value> = match parse_addresses(value) {
        None => Vec::new(),
        Some(Address::List(l)) => vec![json!({
            "name": null,
            "addresses": l.iter().filter_map(address_json).collect::<Vec<_>>(),
        })],
        Some(Address::Group(groups)) => groups
            .iter()
            .map(|g| {
                json!({
                    "name": g.name.as_deref().map(str::trim).filter(|s| !s.is_empty()),
                    "addresses": g.addresses.iter().filter_map(address_json).collect::<Vec<_>>(),
                })
            })
            .collect(),
    };
    Value::Array(groups)
}

fn message_ids_form(value: &[u8]) -> Value {
    let ids: Vec<String> = match MessageStream::new(&with_newline(value)).parse_id() {
        HeaderValue::Text(id) => vec![id.into_owned()],
        HeaderValue::TextList(ids) => ids.into_iter().map(Cow::into_owned).collect(),
        _ => Vec::new(),
    };
    let ids: Vec<String> = ids
        .into_iter()
        .map(|id| id.trim().to_string())
        .filter(|id| !id.is_empty())
        .collect();
    if ids.is_empty() {
        Value::Null
    } else {
        json!(ids)
    }
}

/// RFC 2369 URLs: the contents of each `<…>`, comments and white space
/// removed; `null` if there is none (e.g. `List-Post: NO`).
fn urls_form(value: &[u8]) -> Value {
    let text = String::from_utf8_lossy(value);
    let mut urls = Vec::new();
    let mut depth = 0usize;
    let mut current: Option<String> = None;
    let mut escaped = false;
    for ch in text.chars() {
        if let Some(url) = current.as_mut() {
            match ch {
                '>' => {
                    let url = current.take().unwrap_or_default();
                    if !url.is_empty() {
                        urls.push(url);
                    }
                }
                c if c.is_whitespace() => {}
                c => url.push(c),
            }
            continue;
        }
        if depth > 0 {
            match ch {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            continue;
        }
        match ch {
            '(' => depth = 1,
            '<' => current = Some(String::new()),
            _ => {}
        }
    }
    if urls.is_empty() {
        Value::Null
    } else {
        json!(urls)
    }
}

fn header_form_value(form: HeaderForm, value: &[u8]) -> Value {
    match form {
        HeaderForm::Raw => Value::String(raw_form(value)),
        HeaderForm::Text => Value::String(text_form(value)),
        HeaderForm::Addresses => addresses_form(value),
        HeaderForm::GroupedAddresses => grouped_addresses_form(value),
        HeaderForm::MessageIds => message_ids_form(value),
        HeaderForm::Date => date_value(value).map_or(Value::Null, Value::String),
        HeaderForm::Urls => urls_form(value),
    }
}

/// The value of a `header:` property over the fields of one header section.
fn header_property_value(h: &HeaderProperty, fields: &[HeaderField<'_>]) -> Value {
    let mut matching = fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case(h.name.as_bytes()));
    if h.all {
        Value::Array(
            matching
                .map(|f| header_form_value(h.form, f.value))
                .collect(),
        )
    } else {
        matching
            .next_back()
            .map_or(Value::Null, |f| header_form_value(h.form, f.value))
    }
}

fn headers_value(fields: &[HeaderField<'_>]) -> Value {
    Value::Array(
        fields
            .iter()
            .map(|f| {
                json!({
                    "name": String::from_utf8_lossy(f.name),
                    "value": raw_form(f.value),
                })
            })
            .collect(),
    )
}

fn slice(raw: &[u8], range: std::ops::Range<usize>) -> &[u8] {
    let end = range.end.min(raw.len());
    raw.get(range.start.min(end)..end).unwrap_or_default()
}

// ---------------------------------------------------------------- decoding

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transfer {
    Identity,
    Base64,
    QuotedPrintable,
}

/// A leaf's Content-Transfer-Encoding; unknown ones count as none
/// (RFC 8621 §4.1.4: "treated as though it had no transfer encoding").
fn transfer(part: &BodyPart) -> Transfer {
    if !matches!(part.kind, PartKind::Leaf) {
        return Transfer::Identity;
    }
    match part.encoding.as_str() {
        "BASE64" => Transfer::Base64,
        "QUOTED-PRINTABLE" => Transfer::QuotedPrintable,
        _ => Transfer::Identity,
    }
}

/// A part's body with its Content-Transfer-Encoding removed (what its
/// `blobId` downloads).
pub(crate) fn decoded_body<'r>(raw: &'r [u8], part: &BodyPart) -> Cow<'r, [u8]> {
    let body = slice(raw, part.body_range());
    match transfer(part) {
        Transfer::Identity => Cow::Borrowed(body),
        Transfer::Base64 => Cow::Owned(pochta_message::decode::base64(body)),
        Transfer::QuotedPrintable => Cow::Owned(pochta_message::decode::quoted_printable(body)),
    }
}

fn is_utf8_label(c: &str) -> bool {
    let c = c.trim();
    c.eq_ignore_ascii_case("utf-8") || c.eq_ignore_ascii_case("utf8")
}

fn is_ascii_label(c: &str) -> bool {
    let c = c.trim();
    c.eq_ignore_ascii_case("us-ascii") || c.eq_ignore_ascii_case("ascii")
}

/// Decodes text in `charset` to UTF-8; the flag says whether there was an
/// encoding problem (malformed input, or an unknown charset, RFC 8621
/// §4.1.4 `isEncodingProblem`). Mislabelled 8-bit text under a missing or
/// US-ASCII label is read as UTF-8 if it is valid UTF-8, else as
/// Windows-1252 (the usual culprit), and flagged.
pub(crate) fn decode_charset(bytes: &[u8], charset: Option<&str>) -> (String, bool) {
    let label = charset.map(str::trim).filter(|c| !c.is_empty());
    match label {
        None => match std::str::from_utf8(bytes) {
            Ok(s) => (s.to_string(), false),
            Err(_) => (windows_1252(bytes), true),
        },
        Some(c) if is_ascii_label(c) => match std::str::from_utf8(bytes) {
            Ok(s) => (s.to_string(), !bytes.is_ascii()),
            Err(_) => (windows_1252(bytes), true),
        },
        Some(c) if is_utf8_label(c) => match std::str::from_utf8(bytes) {
            Ok(s) => (s.to_string(), false),
            Err(_) => (String::from_utf8_lossy(bytes).into_owned(), true),
        },
        Some(c) => match charset_decoder(c.as_bytes()) {
            Some(decode) => {
                let s = decode(bytes);
                let problem = s.contains('\u{fffd}');
                (s, problem)
            }
            None => (String::from_utf8_lossy(bytes).into_owned(), true),
        },
    }
}

fn windows_1252(bytes: &[u8]) -> String {
    match charset_decoder(b"windows-1252") {
        Some(decode) => decode(bytes),
        None => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// The text of a text/* leaf: transfer-decoded and charset-decoded, with
/// the encoding-problem flag.
pub(crate) fn part_text(raw: &[u8], part: &BodyPart) -> (String, bool) {
    let bytes = decoded_body(raw, part);
    decode_charset(&bytes, part.charset.as_deref())
}

/// The readable text of every text/* leaf of the message, encapsulated
/// messages included (HTML reduced to its text), in order, one part per
/// paragraph; for body search and search snippets.
pub(crate) fn body_text(raw: &[u8], meta: &MessageMeta) -> String {
    let mut out = String::new();
    meta.body.walk(&mut |part: &BodyPart| {
        if matches!(part.kind, PartKind::Leaf) && part.media_type == "text" {
            let (text, _) = part_text(raw, part);
            if part.media_subtype == "html" {
                out.push_str(&html_to_text(&text));
            } else {
                out.push_str(&text);
            }
            out.push('\n');
        }
    });
    out
}

/// The decoded size of a part (RFC 8621 §4.1.4 `size`): the octets its
/// blob downloads. Without the raw bytes, the encoded size.
fn decoded_size(raw: Option<&[u8]>, part: &BodyPart) -> u64 {
    match (transfer(part), raw) {
        (Transfer::Identity, _) | (_, None) => part.size,
        (_, Some(raw)) => decoded_body(raw, part).len() as u64,
    }
}

// ---------------------------------------------------------------- body parts

/// A part of the JMAP body structure: a MIME part and its IMAP part number.
#[derive(Debug, Clone)]
struct Node<'m> {
    part: &'m BodyPart,
    path: Vec<u32>,
}

impl<'m> Node<'m> {
    /// The root of a message's structure: a multipart has no number; a
    /// single part is part 1 (IMAP numbering, RFC 9051 §6.4.5).
    fn root(meta: &'m MessageMeta) -> Node<'m> {
        let path = if meta.body.is_multipart() {
            Vec::new()
        } else {
            vec![1]
        };
        Node {
            part: &meta.body,
            path,
        }
    }

    /// Children of a multipart (encapsulated messages are leaves here,
    /// RFC 8621 §4.1.4 "without recursing into message/rfc822").
    fn children(&self) -> Vec<Node<'m>> {
        self.part
            .children()
            .iter()
            .zip(1u32..)
            .map(|(part, n)| {
                let mut path = self.path.clone();
                path.push(n);
                Node { part, path }
            })
            .collect()
    }

    fn is_multipart(&self) -> bool {
        self.part.is_multipart()
    }

    fn media_type(&self) -> String {
        format!("{}/{}", self.part.media_type, self.part.media_subtype)
    }

    fn part_id(&self) -> Option<String> {
        if self.is_multipart() {
            return None;
        }
        let pieces: Vec<String> = self.path.iter().map(u32::to_string).collect();
        Some(pieces.join("."))
    }

    fn name(&self) -> Option<&'m str> {
        self.part
            .filename()
            .map(str::trim)
            .filter(|n| !n.is_empty())
    }

    fn disposition(&self) -> Option<&'m str> {
        self.part.disposition.as_ref().map(|(d, _)| d.as_str())
    }

    /// The charset property: the parameter if present, the implicit
    /// `us-ascii` for text/*, else null.
    fn charset(&self) -> Option<String> {
        if let Some(c) = self.part.param("charset") {
            return Some(c.to_string());
        }
        (self.part.media_type == "text").then(|| "us-ascii".to_string())
    }

    fn cid(&self) -> Option<String> {
        let id = self.part.id.as_deref()?.trim();
        let id = id.strip_prefix('<').unwrap_or(id);
        let id = id.strip_suffix('>').unwrap_or(id).trim();
        (!id.is_empty()).then(|| id.to_string())
    }

    /// The raw header section of this part (for the root: the message
    /// header).
    fn header_section<'r>(&self, raw: &'r [u8]) -> &'r [u8] {
        slice(raw, self.part.header_range())
    }
}

fn is_inline_media_type(t: &str) -> bool {
    t.starts_with("image/") || t.starts_with("audio/") || t.starts_with("video/")
}

/// RFC 8621 §4.1.4's `parseStructure`, as suggested there (JavaScript
/// translated line by line; `None` is the JavaScript `null` a list becomes
/// inside an alternative once a part of the other kind is found).
fn parse_structure<'m>(
    parts: &[Node<'m>],
    multipart_type: &str,
    in_alternative: bool,
    mut html_body: Option<&mut Vec<Node<'m>>>,
    mut text_body: Option<&mut Vec<Node<'m>>>,
    attachments: &mut Vec<Node<'m>>,
) {
    let text_length = text_body.as_ref().map(|t| t.len());
    let html_length = html_body.as_ref().map(|h| h.len());
    for (i, part) in parts.iter().enumerate() {
        let media_type = part.media_type();
        let t = media_type.as_str();
        let is_inline = part.disposition() != Some("attachment")
            && (t == "text/plain" || t == "text/html" || is_inline_media_type(t))
            && (i == 0
                || (multipart_type != "related"
                    && (is_inline_media_type(t) || part.name().is_none())));
        if part.is_multipart() {
            let sub = part.part.media_subtype.as_str();
            parse_structure(
                &part.children(),
                sub,
                in_alternative || sub == "alternative",
                html_body.as_deref_mut(),
                text_body.as_deref_mut(),
                attachments,
            );
        } else if is_inline {
            if multipart_type == "alternative" {
                match t {
                    "text/plain" => {
                        if let Some(b) = text_body.as_deref_mut() {
                            b.push(part.clone());
                        }
                    }
                    "text/html" => {
                        if let Some(b) = html_body.as_deref_mut() {
                            b.push(part.clone());
                        }
                    }
                    _ => attachments.push(part.clone()),
                }
                continue;
            } else if in_alternative {
                if t == "text/plain" {
                    html_body = None;
                }
                if t == "text/html" {
                    text_body = None;
                }
            }
            if let Some(b) = text_body.as_deref_mut() {
                b.push(part.clone());
            }
            if let Some(b) = html_body.as_deref_mut() {
                b.push(part.clone());
            }
            if (text_body.is_none() || html_body.is_none()) && is_inline_media_type(t) {
                attachments.push(part.clone());
            }
        } else {
            attachments.push(part.clone());
        }
    }
    if multipart_type == "alternative"
        && let (Some(text), Some(html)) = (text_body, html_body)
    {
        // Found HTML part only.
        if text_length == Some(text.len()) && html_length != Some(html.len()) {
            let from = html_length.unwrap_or(0);
            text.extend(html.iter().skip(from).cloned());
        }
        // Found plain text part only.
        if html_length == Some(html.len()) && text_length != Some(text.len()) {
            let from = text_length.unwrap_or(0);
            html.extend(text.iter().skip(from).cloned());
        }
    }
}

/// The `textBody`, `htmlBody` and `attachments` lists of a message
/// (RFC 8621 §4.1.4).
struct BodyLists<'m> {
    text: Vec<Node<'m>>,
    html: Vec<Node<'m>>,
    attachments: Vec<Node<'m>>,
}

fn body_lists(meta: &MessageMeta) -> BodyLists<'_> {
    let mut lists = BodyLists {
        text: Vec::new(),
        html: Vec::new(),
        attachments: Vec::new(),
    };
    parse_structure(
        &[Node::root(meta)],
        "mixed",
        false,
        Some(&mut lists.html),
        Some(&mut lists.text),
        &mut lists.attachments,
    );
    lists
}

/// Renders one EmailBodyPart.
fn render_part(
    node: &Node<'_>,
    raw: Option<&[u8]>,
    req: &EmailRequest,
    blobs: &PartBlobs,
    nest: bool,
) -> Value {
    let fields = match raw {
        Some(raw) => header_fields(node.header_section(raw)),
        None => Vec::new(),
    };
    let mut out = Map::new();
    let mut sub_parts_done = false;
    for p in &req.body_properties {
        let (key, value) = match p {
            BodyProperty::PartId => ("partId", json!(node.part_id())),
            BodyProperty::BlobId => (
                "blobId",
                if node.is_multipart() {
                    Value::Null
                } else {
                    json!(blobs.id(&node.path))
                },
            ),
            BodyProperty::Size => ("size", json!(decoded_size(raw, node.part))),
            BodyProperty::Headers => ("headers", headers_value(&fields)),
            BodyProperty::Name => ("name", json!(node.name())),
            BodyProperty::Type => ("type", json!(node.media_type())),
            BodyProperty::Charset => ("charset", json!(node.charset())),
            BodyProperty::Disposition => ("disposition", json!(node.disposition())),
            BodyProperty::Cid => ("cid", json!(node.cid())),
            BodyProperty::Language => (
                "language",
                if node.part.language.is_empty() {
                    Value::Null
                } else {
                    json!(node.part.language)
                },
            ),
            BodyProperty::Location => ("location", json!(node.part.location)),
            BodyProperty::SubParts => {
                sub_parts_done = true;
                ("subParts", sub_parts(node, raw, req, blobs, nest))
            }
            BodyProperty::Header(h) => {
                out.insert(h.key.clone(), header_property_value(h, &fields));
                continue;
            }
        };
        out.insert(key.to_string(), value);
    }
    if nest && !sub_parts_done && req.default_body_properties {
        out.insert(
            "subParts".to_string(),
            sub_parts(node, raw, req, blobs, nest),
        );
    }
    Value::Object(out)
}

fn sub_parts(
    node: &Node<'_>,
    raw: Option<&[u8]>,
    req: &EmailRequest,
    blobs: &PartBlobs,
    nest: bool,
) -> Value {
    if !node.is_multipart() {
        return Value::Null;
    }
    Value::Array(
        node.children()
            .iter()
            .map(|c| render_part(c, raw, req, blobs, nest))
            .collect(),
    )
}

/// Truncates a body value to at most `max` octets on a character boundary,
/// and for HTML not inside a tag (RFC 8621 §4.2 `maxBodyValueBytes`).
fn truncate_value(value: &mut String, max: usize, html: bool) -> bool {
    if max == 0 || value.len() <= max {
        return false;
    }
    let mut end = max;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    if html {
        let head = value.get(..end).unwrap_or_default();
        if let Some(open) = head.rfind('<')
            && head.rfind('>').is_none_or(|close| close < open)
        {
            end = open;
        }
    }
    value.truncate(end);
    true
}

fn body_value(raw: &[u8], node: &Node<'_>, max: usize) -> Value {
    let (text, problem) = part_text(raw, node.part);
    let mut text = if text.contains('\r') {
        text.replace("\r\n", "\n")
    } else {
        text
    };
    let truncated = truncate_value(&mut text, max, node.part.media_subtype == "html");
    json!({
        "value": text,
        "isEncodingProblem": problem,
        "isTruncated": truncated,
    })
}

fn address_list(list: &[pochta_message::EmailAddress]) -> Value {
    if list.is_empty() {
        return Value::Null;
    }
    Value::Array(
        list.iter()
            .map(|a| json!({ "name": a.name, "email": a.email }))
            .collect(),
    )
}

fn id_list(list: &[String]) -> Value {
    if list.is_empty() {
        Value::Null
    } else {
        json!(list)
    }
}

/// At most 255 octets of the preview (RFC 8621 §4.1.4), on a character
/// boundary.
fn preview_value(preview: &str) -> String {
    let mut end = preview.len().min(255);
    while !preview.is_char_boundary(end) {
        end -= 1;
    }
    preview.get(..end).unwrap_or_default().to_string()
}

/// Renders the Email object of a message for `req` (RFC 8621 §4.1).
///
/// `raw` must be given when [`EmailRequest::needs_raw`] says so (and may
/// always be); without it the header and body-value properties come out
/// empty. `meta` must be the full meta (not `MessageMeta::light`) unless
/// only metadata and convenience header properties are asked for. Never
/// fails: malformed messages render as well as the meta describes them.
pub(crate) fn render_email(
    raw: Option<&[u8]>,
    meta: &MessageMeta,
    md: &EmailMetadata,
    blobs: &PartBlobs,
    req: &EmailRequest,
) -> Value {
    let mut out = Map::new();
    let wants_headers = req
        .properties
        .iter()
        .any(|p| matches!(p, Property::Headers | Property::Header(_)));
    let top_fields = match raw {
        Some(raw) if wants_headers => header_fields(slice(raw, meta.body.header_range())),
        _ => Vec::new(),
    };
    let lists = (req.wants_parts() || req.wants(&Property::BodyValues)).then(|| body_lists(meta));
    for p in &req.properties {
        let value = match p {
            Property::Id => json!(md.id),
            Property::BlobId => json!(md.blob_id),
            Property::ThreadId => json!(md.thread_id),
            Property::MailboxIds => md.mailbox_ids.clone().unwrap_or(Value::Null),
            Property::Keywords => md.keywords.clone().unwrap_or(Value::Null),
            Property::Size => json!(md.size),
            Property::ReceivedAt => json!(md.received_at.map(utc_date)),
            Property::MessageId => id_list(meta.message_id.as_slice()),
            Property::InReplyTo => id_list(&meta.in_reply_to),
            Property::References => id_list(&meta.references),
            Property::Sender => address_list(&meta.sender),
            Property::From => address_list(&meta.from),
            Property::To => address_list(&meta.to),
            Property::Cc => address_list(&meta.cc),
            Property::Bcc => address_list(&meta.bcc),
            Property::ReplyTo => address_list(&meta.reply_to),
            Property::Subject => json!(meta.subject),
            Property::SentAt => json!(
                meta.envelope
                    .date
                    .as_deref()
                    .and_then(|d| date_value(d.as_bytes()))
            ),
            Property::HasAttachment => json!(meta.has_attachment),
            Property::Preview => json!(preview_value(&meta.preview)),
            Property::BodyStructure => render_part(&Node::root(meta), raw, req, blobs, true),
            Property::TextBody | Property::HtmlBody | Property::Attachments => {
                let list = match (p, lists.as_ref()) {
                    (Property::TextBody, Some(l)) => l.text.as_slice(),
                    (Property::HtmlBody, Some(l)) => l.html.as_slice(),
                    (_, Some(l)) => l.attachments.as_slice(),
                    (_, None) => &[],
                };
                Value::Array(
                    list.iter()
                        .map(|n| render_part(n, raw, req, blobs, false))
                        .collect(),
                )
            }
            Property::BodyValues => body_values(raw, meta, lists.as_ref(), req),
            Property::Headers => headers_value(&top_fields),
            Property::Header(h) => header_property_value(h, &top_fields),
        };
        out.insert(p.key().to_string(), value);
    }
    Value::Object(out)
}

fn body_values(
    raw: Option<&[u8]>,
    meta: &MessageMeta,
    lists: Option<&BodyLists<'_>>,
    req: &EmailRequest,
) -> Value {
    let mut out = Map::new();
    let (Some(raw), Some(lists)) = (raw, lists) else {
        return Value::Object(out);
    };
    let mut wanted: Vec<Node<'_>> = Vec::new();
    if req.fetch_all {
        let mut stack = vec![Node::root(meta)];
        let mut leaves = Vec::new();
        while let Some(n) = stack.pop() {
            if n.is_multipart() {
                let mut children = n.children();
                children.reverse();
                stack.extend(children);
            } else {
                leaves.push(n);
            }
        }
        wanted.extend(leaves);
    }
    if req.fetch_text {
        wanted.extend(lists.text.iter().cloned());
    }
    if req.fetch_html {
        wanted.extend(lists.html.iter().cloned());
    }
    let mut done = HashSet::new();
    for node in wanted {
        if node.part.media_type != "text" {
            continue;
        }
        let Some(part_id) = node.part_id() else {
            continue;
        };
        if !done.insert(part_id.clone()) {
            continue;
        }
        out.insert(part_id, body_value(raw, &node, req.max_body_value_bytes));
    }
    Value::Object(out)
}

// ---------------------------------------------------------------- methods

/// The Email state: the store's change-log state of emails.
pub(crate) async fn email_state(ctx: &Ctx<'_>) -> Result<u64, MethodError> {
    ctx.store()
        .kind_state(ctx.account.id, ObjectKind::Email)
        .await
        .map_err(store_error)
}

/// Every message id of the account (for `ids: null`), in id order.
async fn all_message_ids(ctx: &Ctx<'_>) -> Result<Vec<u64>, MethodError> {
    let account = ctx.account.id;
    let mut out = Vec::new();
    for mailbox in ctx.store().mailboxes(account).await.map_err(store_error)? {
        let messages = ctx
            .store()
            .messages(account, mailbox.id)
            .await
            .map_err(store_error)?;
        out.extend(messages.iter().map(|m| m.id));
    }
    out.sort_unstable();
    Ok(out)
}

/// Email/get (RFC 8621 §4.2).
pub async fn get(
    ctx: &mut Ctx<'_>,
    args: Map<String, Value>,
    call: &mut CallContext,
) -> Result<Value, MethodError> {
    let mut args = Args::new(args);
    let request = GetRequest::<String>::parse(&mut args, call)?;
    ctx.check_account(&request.account_id)?;
    let mut email = EmailRequest::take(
        &mut args,
        request.properties.clone(),
        &GET_DEFAULT_PROPERTIES,
    )?;
    args.finish()?;
    // RFC 8620 §5.1: "id" is always returned.
    email.properties.retain(|p| *p != Property::Id);
    email.properties.insert(0, Property::Id);

    // The state is read before the records: a change in between makes the
    // client fetch again, never miss something.
    let state = email_state(ctx).await?;
    let mut response = GetResponse::<Value>::for_request(&request, state.to_string());
    // In the order asked; `None` for ids that cannot be ours.
    let mut wanted: Vec<(Id, Option<u64>)> = Vec::new();
    match &request.ids {
        Some(list) => {
            wanted.extend(
                list.iter()
                    .map(|id| (id.clone(), ids::parse_email(id.as_str()))),
            );
        }
        None => {
            let all = all_message_ids(ctx).await?;
            let max = call.limits().max_objects_in_get;
            if u64::try_from(all.len()).unwrap_or(u64::MAX) > max {
                return Err(MethodError::request_too_large(format!(
                    "the account has {} emails; maxObjectsInGet is {max}: ask for ids",
                    all.len()
                )));
            }
            wanted.extend(all.into_iter().map(|n| (ids::email(n), Some(n))));
        }
    }
    let numbers: Vec<u64> = wanted.iter().filter_map(|(_, n)| *n).collect();
    // A list view or a sync asks for properties the light metadata holds:
    // reading it is a few hundred bytes of JSON per email, not the MIME tree.
    let records = if email.light_enough() {
        ctx.store()
            .light_records_by_ids(ctx.account.id, &numbers)
            .await
    } else {
        ctx.store().records(ctx.account.id, &numbers).await
    }
    .map_err(store_error)?;
    let mut by_id: std::collections::HashMap<u64, pochta_store::MessageRecord> =
        records.into_iter().map(|r| (r.summary.id, r)).collect();
    for (id, n) in wanted {
        let Some(record) = n.and_then(|n| by_id.remove(&n)) else {
            response.not_found.push(id.to_string());
            continue;
        };
        let raw = if email.needs_raw(&record.meta) {
            match ctx
                .store()
                .read_blob(ctx.account.id, record.summary.blob_id)
                .await
            {
                Ok(raw) => Some(raw),
                // Expunged between the two reads.
                Err(StoreError::NotFound(_)) => {
                    response.not_found.push(id.to_string());
                    continue;
                }
                Err(e) => return Err(store_error(e)),
            }
        } else {
            None
        };
        let blobs = PartBlobs {
            blob: record.summary.blob_id,
            prefix: Vec::new(),
        };
        response.list.push(render_email(
            raw.as_deref(),
            &record.meta,
            &EmailMetadata::stored(&record.summary),
            &blobs,
            &email,
        ));
    }
    serde_json::to_value(&response)
        .map_err(|e| MethodError::server_fail(format!("cannot serialize Email/get: {e}")))
}

/// Parses a state string the store gave out; `cannotCalculateChanges` for
/// anything else.
pub(crate) fn parse_state(s: &str) -> Result<u64, MethodError> {
    s.parse::<u64>().map_err(|_| {
        MethodError::with_description(
            MethodErrorKind::CannotCalculateChanges,
            format!("{s:?} is not a state this server gave out"),
        )
    })
}

/// A store error of `changes` as a method error: a state from the future
/// is one the client cannot have had from us.
pub(crate) fn changes_error(e: StoreError) -> MethodError {
    match e {
        StoreError::Invalid(d) => {
            MethodError::with_description(MethodErrorKind::CannotCalculateChanges, d)
        }
        e => store_error(e),
    }
}

/// Email/changes (RFC 8621 §4.3, RFC 8620 §5.2).
pub async fn changes(
    ctx: &mut Ctx<'_>,
    args: Map<String, Value>,
    call: &mut CallContext,
) -> Result<Value, MethodError> {
    let request = ChangesRequest::from_args(args, call)?;
    ctx.check_account(&request.account_id)?;
    let since = parse_state(&request.since_state)?;
    let max = request
        .max_changes
        .map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX));
    let changes = ctx
        .store()
        .changes(ctx.account.id, ObjectKind::Email, since, max)
        .await
        .map_err(changes_error)?;
    let response = ChangesResponse {
        account_id: request.account_id,
        old_state: request.since_state,
        new_state: changes.new_state.to_string(),
        has_more_changes: changes.has_more,
        created: changes.created.into_iter().map(ids::email).collect(),
        updated: changes.updated.into_iter().map(ids::email).collect(),
        destroyed: changes.destroyed.into_iter().map(ids::email).collect(),
        extra: Map::new(),
    };
    serde_json::to_value(&response)
        .map_err(|e| MethodError::server_fail(format!("cannot serialize Email/changes: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_property_syntax() {
        let p = |s: &str| HeaderProperty::parse(s);
        let h = p("header:Resent-To:asAddresses:all").and_then(Result::ok);
        assert_eq!(
            h,
            Some(HeaderProperty {
                key: "header:Resent-To:asAddresses:all".into(),
                name: "resent-to".into(),
                form: HeaderForm::Addresses,
                all: true,
            })
        );
        assert!(p("subject").is_none());
        assert!(matches!(p("header:From:asDate"), Some(Err(_))));
        assert!(matches!(p("header:Subject:asAddresses"), Some(Err(_))));
        assert!(matches!(p("header:X-Foo:asDate"), Some(Ok(_))));
        assert!(matches!(p("header:List-Id:asText"), Some(Ok(_))));
        assert!(matches!(p("header:List-Post:asURLs"), Some(Ok(_))));
        assert!(matches!(p("header:Subject:all:asText"), Some(Err(_))));
        assert!(matches!(p("header::all"), Some(Err(_))));
        assert!(matches!(p("header:X:asNothing"), Some(Err(_))));
        let raw = p("header:subject").and_then(Result::ok);
        assert_eq!(raw.map(|h| (h.form, h.all)), Some((HeaderForm::Raw, false)));
    }

    #[test]
    fn header_field_splitting() {
        let section =
            b"From: a@b\r\nSubject: one\r\n  two\r\nbogus line\r\nX-Empty:\r\n\r\nbody: no\r\n";
        let fields = header_fields(section);
        let got: Vec<(String, String)> = fields
            .iter()
            .map(|f| {
                (
                    String::from_utf8_lossy(f.name).into_owned(),
                    String::from_utf8_lossy(f.value).into_owned(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("From".into(), " a@b".into()),
                ("Subject".into(), " one\r\n  two".into()),
                ("X-Empty".into(), String::new()),
            ]
        );
        assert_eq!(text_form(b" one\r\n  two"), "one two");
    }

    #[test]
    fn parsed_forms() {
        let list = br#" "  James Smythe" <james@example.com>, Friends: jane@example.com, =?UTF-8?Q?John_Sm=C3=AEth?= <john@example.com>;"#;
        assert_eq!(
            addresses_form(list),
            json!([
                { "name": "James Smythe", "email": "james@example.com" },
                { "name": null, "email": "jane@example.com" },
                { "name": "John Smîth", "email": "john@example.com" }
            ])
        );
        assert_eq!(
            grouped_addresses_form(list),
            json!([
                { "name": null, "addresses": [
                    { "name": "James Smythe", "email": "james@example.com" }
                ]},
                { "name": "Friends", "addresses": [
                    { "name": null, "email": "jane@example.com" },
                    { "name": "John Smîth", "email": "john@example.com" }
                ]}
            ])
        );
        assert_eq!(
            urls_form(b" <mailto:list@host.com?subject=help> (List Instructions),\r\n <https://example.com/help>"),
            json!(["mailto:list@host.com?subject=help", "https://example.com/help"])
        );
        assert_eq!(urls_form(b" NO (posting not allowed)"), Value::Null);
        assert_eq!(
            message_ids_form(b" <a@b> (comment)\r\n <c@d>"),
            json!(["a@b", "c@d"])
        );
        assert_eq!(message_ids_form(b" "), Value::Null);
        assert_eq!(
            date_value(b" Tue, 1 Jul 2003 10:52:37 +0200").as_deref(),
            Some("2003-07-01T10:52:37+02:00")
        );
        assert_eq!(date_value(b" not a date"), None);
        assert_eq!(raw_form(b" a\0b \xff"), " ab \u{fffd}");
    }

    #[test]
    fn transfer_decoding() {
        assert_eq!(
            pochta_message::decode::base64(b"aGVs\r\nbG8=\r\n"),
            b"hello"
        );
        assert_eq!(
            pochta_message::decode::quoted_printable(b"caf=C3=A9 =\r\nau lait  \r\nnext=3D=ZZ"),
            "café au lait\r\nnext==ZZ".as_bytes()
        );
        assert_eq!(
            decode_charset(b"caf\xe9", Some("ISO-8859-1")),
            ("café".to_string(), false)
        );
        assert_eq!(decode_charset(b"caf\xe9", None), ("café".to_string(), true));
        assert!(decode_charset(b"x", Some("x-unknown-charset")).1);
    }

    #[test]
    fn truncation() {
        let mut s = "héllo".to_string();
        assert!(truncate_value(&mut s, 2, false));
        assert_eq!(s, "h");
        let mut h = "<p>hi</p><a href=\"x\">".to_string();
        assert!(truncate_value(&mut h, 15, true));
        assert_eq!(h, "<p>hi</p>");
        let mut short = "ok".to_string();
        assert!(!truncate_value(&mut short, 0, false));
        assert!(!truncate_value(&mut short, 2, false));
    }

    #[test]
    fn keywords() {
        let v = keywords_value(
            Flags::SEEN | Flags::DELETED,
            &["$Forwarded".to_string(), "Work".to_string()],
        );
        assert_eq!(
            v,
            json!({"$seen": true, "$deleted": true, "$forwarded": true, "work": true})
        );
        assert_eq!(keyword_flag("$Flagged"), Some(Flags::FLAGGED));
        assert_eq!(keyword_flag("$junk"), None);
    }

    fn request(properties: Value, extra: Value) -> EmailRequest {
        let mut args = Args::new(extra.as_object().cloned().unwrap_or_default());
        let properties: Vec<String> = serde_json::from_value(properties).expect("strings");
        EmailRequest::take(&mut args, Some(properties), &GET_DEFAULT_PROPERTIES)
            .expect("valid request")
    }

    #[test]
    fn raw_is_read_only_when_needed() {
        let plain = pochta_message::parse(b"Subject: x\r\n\r\nhello\r\n");
        let base64 = pochta_message::parse(
            b"Subject: x\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n",
        );
        let fast = request(
            json!([
                "id",
                "subject",
                "from",
                "keywords",
                "preview",
                "hasAttachment",
                "sentAt"
            ]),
            json!({}),
        );
        assert!(!fast.needs_raw(&plain));
        // Decoded sizes of encoded parts need the bytes; identity ones not.
        let bodies = request(json!(["textBody", "bodyStructure"]), json!({}));
        assert!(!bodies.needs_raw(&plain));
        assert!(bodies.needs_raw(&base64));
        let no_size = request(
            json!(["attachments"]),
            json!({ "bodyProperties": ["partId", "type"] }),
        );
        assert!(!no_size.needs_raw(&base64));
        let values = request(
            json!(["bodyValues"]),
            json!({ "fetchTextBodyValues": true }),
        );
        assert!(values.needs_raw(&plain));
        assert!(!request(json!(["bodyValues"]), json!({})).needs_raw(&plain));
        assert!(request(json!(["header:X-A"]), json!({})).needs_raw(&plain));
        assert!(request(json!(["headers"]), json!({})).needs_raw(&plain));
        let part_headers = request(
            json!(["attachments"]),
            json!({ "bodyProperties": ["partId", "header:Content-Type"] }),
        );
        assert!(part_headers.needs_raw(&plain));
    }

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_utc_date("2014-10-30T06:12:00Z"), Some(1_414_649_520));
        assert_eq!(parse_utc_date("yesterday"), None);
    }
}
