//! Building a [`MessageMeta`] with mail-parser.
//!
//! # Why mail-parser sees a "neutralised" copy
//!
//! mail-parser parses encapsulated messages (message/rfc822, message/global and the
//! children of multipart/digest) into nested `Message` values. Unencoded ones are parsed
//! inline, so their depth is only bounded by the input size, and dropping the nested
//! values is recursive: a few megabytes of `Content-Type: message/rfc822` headers
//! overflow the stack and abort the process. Base64-encoded ones are decoded and parsed
//! recursively with offsets relative to the *decoded* bytes, which cannot be mapped back
//! to the raw message.
//!
//! So mail-parser is given a copy of the message in which the last letter of every
//! case-insensitive occurrence of "rfc822", "global" and "digest" is replaced by `_`
//! (same length, so every offset is unchanged; the replacement is the same wherever the
//! same bytes occur, so MIME boundaries still match). mail-parser then never nests
//! messages: such parts are plain leaves. This module recognises them from the
//! **original** bytes and parses each encapsulated message itself, as a sub-slice, up to
//! [`MAX_DEPTH`]. Every header value used is re-parsed from the original bytes (at the
//! offsets mail-parser reported), so the substitution never shows in the result.

use std::{borrow::Cow, ops::Range};

use mail_parser::{
    Addr, Address, Attribute, Header, HeaderName, HeaderValue, Message, MessageParser, PartType,
    parsers::MessageStream,
};

use crate::{
    BodyPart, EmailAddress, Envelope, ImapAddress, MAX_DEPTH, META_VERSION, MessageMeta, PartKind,
    base_subject,
    encode::encode_if_non_ascii,
    preview,
    scan::{count_lines, unfold},
};

/// Host placed in an address whose header had no domain (as Dovecot does).
const MISSING_DOMAIN: &str = "MISSING_DOMAIN";
/// Mailbox placed in an address whose header had no local part (as Dovecot does).
const MISSING_MAILBOX: &str = "MISSING_MAILBOX";

pub(crate) fn parse(raw: &[u8]) -> MessageMeta {
    // mail-parser keeps offsets in u32.
    if u32::try_from(raw.len()).is_err() {
        return fallback_meta(raw);
    }
    let neutral = neutralize(raw);
    let ctx = Ctx {
        raw,
        neutral: &neutral,
        parser: MessageParser::default(),
    };
    let Some(parsed) = ctx.parse_message(0, raw.len(), 0) else {
        return fallback_meta(raw);
    };
    let h = &parsed.headers;

    let subject = h.subject.as_ref().map(|r| {
        match MessageStream::new(&ctx.value_bytes(r)).parse_unstructured() {
            HeaderValue::Text(text) => text.trim().to_string(),
            _ => String::new(),
        }
    });
    let message_id = h
        .message_id
        .as_ref()
        .and_then(|r| ctx.ids(r).into_iter().next());
    let sent_at =
        h.date.as_ref().and_then(
            |r| match MessageStream::new(&ctx.value_bytes(r)).parse_date() {
                HeaderValue::DateTime(dt) if dt.is_valid() => Some(dt.to_timestamp()),
                _ => None,
            },
        );
    let envelope = ctx.envelope(h);
    let body = parsed.body;
    MessageMeta {
        version: META_VERSION,
        size: raw.len() as u64,
        message_id,
        in_reply_to: h
            .in_reply_to
            .as_ref()
            .map(|r| ctx.ids(r))
            .unwrap_or_default(),
        references: h
            .references
            .as_ref()
            .map(|r| ctx.ids(r))
            .unwrap_or_default(),
        base_subject: base_subject(subject.as_deref().unwrap_or_default()),
        subject,
        sent_at,
        from: ctx.email_addresses(h.from.as_ref()),
        sender: ctx.email_addresses(h.sender.as_ref()),
        reply_to: ctx.email_addresses(h.reply_to.as_ref()),
        to: ctx.email_addresses(h.to.as_ref()),
        cc: ctx.email_addresses(h.cc.as_ref()),
        bcc: ctx.email_addresses(h.bcc.as_ref()),
        preview: preview::preview(raw, &body),
        has_attachment: preview::has_attachment(&body, None),
        envelope,
        body,
    }
}

/// The meta of input mail-parser finds no header in: one text/plain leaf over everything.
fn fallback_meta(raw: &[u8]) -> MessageMeta {
    let body = fallback_part(raw, 0, raw.len());
    MessageMeta {
        version: META_VERSION,
        size: raw.len() as u64,
        message_id: None,
        in_reply_to: Vec::new(),
        references: Vec::new(),
        subject: None,
        base_subject: String::new(),
        sent_at: None,
        from: Vec::new(),
        sender: Vec::new(),
        reply_to: Vec::new(),
        to: Vec::new(),
        cc: Vec::new(),
        bcc: Vec::new(),
        preview: preview::preview(raw, &body),
        has_attachment: false,
        envelope: Envelope::default(),
        body,
    }
}

/// A text/plain leaf covering `start..end`, header and body starting at `start`.
fn fallback_part(raw: &[u8], start: usize, end: usize) -> BodyPart {
    let mut part = BodyPart {
        header_start: start as u64,
        body_start: start as u64,
        body_end: end as u64,
        media_type: String::new(),
        media_subtype: String::new(),
        params: Vec::new(),
        id: None,
        description: None,
        encoding: "7BIT".to_string(),
        size: 0,
        lines: 0,
        md5: None,
        disposition: None,
        language: Vec::new(),
        location: None,
        charset: None,
        kind: PartKind::Leaf,
    };
    set_text_plain(&mut part);
    set_sizes(&mut part, raw);
    part
}

fn set_text_plain(part: &mut BodyPart) {
    part.media_type = "text".to_string();
    part.media_subtype = "plain".to_string();
    part.params = vec![("charset".to_string(), "us-ascii".to_string())];
    part.charset = Some("us-ascii".to_string());
}

fn set_sizes(part: &mut BodyPart, raw: &[u8]) {
    part.size = part.body_end.saturating_sub(part.body_start);
    let range = part.body_range();
    part.lines = count_lines(raw.get(range).unwrap_or_default());
}

/// Replaces the last letter of each case-insensitive "rfc822", "global" and "digest" by
/// `_` (see the module documentation). Borrows when there is none.
fn neutralize(raw: &[u8]) -> Cow<'_, [u8]> {
    let mut marks = Vec::new();
    for pos in memchr::memmem::find_iter(raw, b"822") {
        if pos >= 3
            && raw
                .get(pos - 3..pos)
                .is_some_and(|w| w.eq_ignore_ascii_case(b"rfc"))
        {
            marks.push(pos + 2);
        }
    }
    for pos in memchr::memchr2_iter(b'g', b'G', raw) {
        if raw
            .get(pos..pos + 6)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"global"))
        {
            marks.push(pos + 5);
        }
        if pos >= 2
            && raw
                .get(pos - 2..pos + 4)
                .is_some_and(|w| w.eq_ignore_ascii_case(b"digest"))
        {
            marks.push(pos + 3);
        }
    }
    if marks.is_empty() {
        return Cow::Borrowed(raw);
    }
    let mut copy = raw.to_vec();
    for mark in marks {
        if let Some(b) = copy.get_mut(mark) {
            *b = b'_';
        }
    }
    Cow::Owned(copy)
}

struct Ctx<'a> {
    /// The message as delivered: all values are read from here.
    raw: &'a [u8],
    /// Same length as `raw`, given to mail-parser for the structure.
    neutral: &'a [u8],
    parser: MessageParser,
}

/// A parsed (top-level or encapsulated) message.
struct ParsedMessage {
    headers: MessageHeaders,
    body: BodyPart,
}

/// Absolute ranges of the values (after the colon, through the line ending) of the first
/// occurrence of each header field used for the meta and the envelope.
#[derive(Default)]
struct MessageHeaders {
    date: Option<Range<usize>>,
    subject: Option<Range<usize>>,
    from: Option<Range<usize>>,
    sender: Option<Range<usize>>,
    reply_to: Option<Range<usize>>,
    to: Option<Range<usize>>,
    cc: Option<Range<usize>>,
    bcc: Option<Range<usize>>,
    in_reply_to: Option<Range<usize>>,
    message_id: Option<Range<usize>>,
    references: Option<Range<usize>>,
}

/// MIME header fields of one part, read from the original bytes.
struct Mime {
    media_type: String,
    media_subtype: String,
    params: Vec<(String, String)>,
    id: Option<String>,
    description: Option<String>,
    encoding: String,
    md5: Option<String>,
    disposition: Option<(String, Vec<(String, String)>)>,
    language: Vec<String>,
    location: Option<String>,
}

fn value_range(h: &Header<'_>, base: usize) -> Range<usize> {
    base + h.offset_start as usize..base + h.offset_end as usize
}

impl Ctx<'_> {
    /// Parses the message in `start..end` (absolute), whose root sits at `depth`.
    fn parse_message(&self, start: usize, end: usize, depth: usize) -> Option<ParsedMessage> {
        let slice = self.neutral.get(start..end)?;
        let message = self.parser.parse(slice)?;
        let root = message.parts.first()?;

        let mut headers = MessageHeaders::default();
        for h in &root.headers {
            let slot = match h.name {
                HeaderName::Date => &mut headers.date,
                HeaderName::Subject => &mut headers.subject,
                HeaderName::From => &mut headers.from,
                HeaderName::Sender => &mut headers.sender,
                HeaderName::ReplyTo => &mut headers.reply_to,
                HeaderName::To => &mut headers.to,
                HeaderName::Cc => &mut headers.cc,
                HeaderName::Bcc => &mut headers.bcc,
                HeaderName::InReplyTo => &mut headers.in_reply_to,
                HeaderName::MessageId => &mut headers.message_id,
                HeaderName::References => &mut headers.references,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value_range(h, start));
            }
        }

        let mut body = self.build_part(&message, 0, start, depth, false, start..end);
        body.header_start = start as u64;
        body.body_start = body.body_start.max(body.header_start);
        body.body_end = (end as u64).max(body.body_start);
        set_sizes(&mut body, self.raw);
        Some(ParsedMessage { headers, body })
    }

    /// Converts part `index` of a mail-parser message parsed from the slice starting at
    /// `base`, clamping its offsets into `bounds`.
    fn build_part(
        &self,
        message: &Message<'_>,
        index: usize,
        base: usize,
        depth: usize,
        in_digest: bool,
        bounds: Range<usize>,
    ) -> BodyPart {
        let Some(p) = message.parts.get(index) else {
            return fallback_part(self.raw, bounds.start, bounds.start);
        };
        // (max then min rather than Ord::clamp, which panics if lo > end.)
        let clamp = |offset: u32, lo: usize| (base + offset as usize).max(lo).min(bounds.end);
        let header_start = clamp(p.offset_header, bounds.start);
        let body_start = clamp(p.offset_body, header_start);
        let body_end = clamp(p.offset_end, body_start);

        let mime = self.mime(&p.headers, base, in_digest);
        let mut part = BodyPart {
            header_start: header_start as u64,
            body_start: body_start as u64,
            body_end: body_end as u64,
            charset: mime
                .params
                .iter()
                .find(|(k, _)| k == "charset")
                .map(|(_, v)| v.clone()),
            media_type: mime.media_type,
            media_subtype: mime.media_subtype,
            params: mime.params,
            id: mime.id,
            description: mime.description,
            encoding: mime.encoding,
            size: 0,
            lines: 0,
            md5: mime.md5,
            disposition: mime.disposition,
            language: mime.language,
            location: mime.location,
            kind: PartKind::Leaf,
        };
        set_sizes(&mut part, self.raw);

        if let PartType::Multipart(ids) = &p.body
            && depth < MAX_DEPTH
        {
            if part.media_type != "multipart" {
                // Cannot happen (the type token is never altered); keep the tree coherent.
                part.media_type = "multipart".to_string();
                part.media_subtype = "mixed".to_string();
            }
            let is_digest = part.media_subtype == "digest";
            let mut children = Vec::with_capacity(ids.len());
            let mut cursor = body_start;
            for &id in ids {
                let id = id as usize;
                // Children always come after their parent in mail-parser's flat list;
                // checking it rules out cycles.
                if id <= index {
                    continue;
                }
                let child =
                    self.build_part(message, id, base, depth + 1, is_digest, cursor..body_end);
                cursor = child.body_end as usize;
                children.push(child);
            }
            if !children.is_empty() {
                part.kind = PartKind::Multipart(children);
                return part;
            }
        }

        if part.media_type == "multipart" {
            // No boundary found, no children, or too deep: present as text.
            set_text_plain(&mut part);
        } else if part.media_type == "message"
            && matches!(part.media_subtype.as_str(), "rfc822" | "global")
        {
            let identity = matches!(part.encoding.as_str(), "7BIT" | "8BIT" | "BINARY");
            if identity && depth < MAX_DEPTH {
                let (envelope, body) = match self.parse_message(body_start, body_end, depth + 1) {
                    Some(parsed) => (self.envelope(&parsed.headers), parsed.body),
                    None => (
                        Envelope::default(),
                        fallback_part(self.raw, body_start, body_end),
                    ),
                };
                part.kind = PartKind::Message {
                    envelope: Box::new(envelope),
                    body: Box::new(body),
                };
            } else {
                part.media_type = "application".to_string();
                part.media_subtype = "octet-stream".to_string();
            }
        }
        part
    }

    /// The raw bytes of a header value, ending with a line feed (added if the header was
    /// cut by the end of input, so mail-parser's field parsers see a complete field).
    fn value_bytes(&self, range: &Range<usize>) -> Cow<'_, [u8]> {
        let bytes = self.raw.get(range.clone()).unwrap_or_default();
        if bytes.last() == Some(&b'\n') {
            Cow::Borrowed(bytes)
        } else {
            let mut owned = bytes.to_vec();
            owned.push(b'\n');
            Cow::Owned(owned)
        }
    }

    fn raw_value(&self, range: &Range<usize>) -> String {
        unfold(self.raw.get(range.clone()).unwrap_or_default())
    }

    fn ids(&self, range: &Range<usize>) -> Vec<String> {
        let ids = match MessageStream::new(&self.value_bytes(range)).parse_id() {
            HeaderValue::Text(id) => vec![id.into_owned()],
            HeaderValue::TextList(ids) => ids.into_iter().map(Cow::into_owned).collect(),
            _ => Vec::new(),
        };
        ids.into_iter()
            .map(|id| id.trim().to_string())
            .filter(|id| !id.is_empty())
            .collect()
    }

    fn address(&self, range: Option<&Range<usize>>) -> Option<Address<'static>> {
        match MessageStream::new(&self.value_bytes(range?)).parse_address() {
            HeaderValue::Address(address) => Some(address.into_owned()),
            _ => None,
        }
    }

    fn email_addresses(&self, range: Option<&Range<usize>>) -> Vec<EmailAddress> {
        let Some(address) = self.address(range) else {
            return Vec::new();
        };
        address
            .iter()
            .filter_map(|a| {
                let name = non_empty(a.name.as_deref());
                let email = non_empty(a.address.as_deref());
                if name.is_none() && email.is_none() {
                    return None;
                }
                Some(EmailAddress {
                    name,
                    email: email.unwrap_or_default(),
                })
            })
            .collect()
    }

    fn imap_addresses(&self, range: Option<&Range<usize>>) -> Vec<ImapAddress> {
        let Some(address) = self.address(range) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        match &address {
            Address::List(list) => out.extend(list.iter().filter_map(imap_address)),
            Address::Group(groups) => {
                for group in groups {
                    match &group.name {
                        None => out.extend(group.addresses.iter().filter_map(imap_address)),
                        Some(name) => {
                            out.push(ImapAddress {
                                mailbox: Some(encode_if_non_ascii(name.trim())),
                                ..ImapAddress::default()
                            });
                            out.extend(group.addresses.iter().filter_map(imap_address));
                            out.push(ImapAddress::default());
                        }
                    }
                }
            }
        }
        out
    }

    fn envelope(&self, h: &MessageHeaders) -> Envelope {
        let from = self.imap_addresses(h.from.as_ref());
        let mut sender = self.imap_addresses(h.sender.as_ref());
        if sender.is_empty() {
            sender = from.clone();
        }
        let mut reply_to = self.imap_addresses(h.reply_to.as_ref());
        if reply_to.is_empty() {
            reply_to = from.clone();
        }
        Envelope {
            date: h.date.as_ref().map(|r| self.raw_value(r)),
            subject: h.subject.as_ref().map(|r| self.raw_value(r)),
            from,
            sender,
            reply_to,
            to: self.imap_addresses(h.to.as_ref()),
            cc: self.imap_addresses(h.cc.as_ref()),
            bcc: self.imap_addresses(h.bcc.as_ref()),
            in_reply_to: h.in_reply_to.as_ref().map(|r| self.raw_value(r)),
            message_id: h.message_id.as_ref().map(|r| self.raw_value(r)),
        }
    }

    /// Reads the MIME fields of a part (last occurrence of each, as mail-parser does).
    fn mime(&self, headers: &[Header<'_>], base: usize, in_digest: bool) -> Mime {
        let mut content_type = None;
        let mut encoding = None;
        let mut disposition = None;
        let mut id = None;
        let mut description = None;
        let mut md5 = None;
        let mut language = None;
        let mut location = None;
        for h in headers {
            let slot = match h.name {
                HeaderName::ContentType => &mut content_type,
                HeaderName::ContentTransferEncoding => &mut encoding,
                HeaderName::ContentDisposition => &mut disposition,
                HeaderName::ContentId => &mut id,
                HeaderName::ContentDescription => &mut description,
                HeaderName::ContentMd5 => &mut md5,
                HeaderName::ContentLanguage => &mut language,
                HeaderName::ContentLocation => &mut location,
                _ => continue,
            };
            *slot = Some(value_range(h, base));
        }

        let mut mime = Mime {
            media_type: "text".to_string(),
            media_subtype: "plain".to_string(),
            params: vec![("charset".to_string(), "us-ascii".to_string())],
            id: id.map(|r| self.raw_value(&r)),
            description: description.map(|r| self.raw_value(&r)),
            encoding: encoding
                .map(|r| {
                    let value = self.raw_value(&r);
                    value
                        .split(|c: char| c.is_ascii_whitespace() || c == '(' || c == ';')
                        .next()
                        .unwrap_or_default()
                        .to_ascii_uppercase()
                })
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "7BIT".to_string()),
            md5: md5.map(|r| self.raw_value(&r)),
            disposition: None,
            language: language
                .map(|r| {
                    self.raw_value(&r)
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            location: location.map(|r| self.raw_value(&r)),
        };

        match content_type {
            None if in_digest => {
                mime.media_type = "message".to_string();
                mime.media_subtype = "rfc822".to_string();
                mime.params = Vec::new();
            }
            None => {}
            Some(range) => {
                let bytes = self.value_bytes(&range);
                if let HeaderValue::ContentType(ct) =
                    MessageStream::new(&bytes).parse_content_type()
                {
                    let media_type = ct.c_type.trim().to_ascii_lowercase();
                    let subtype = ct
                        .c_subtype
                        .as_deref()
                        .map(|s| s.trim().to_ascii_lowercase())
                        .filter(|s| !s.is_empty());
                    let subtype = match subtype {
                        Some(subtype) => Some(subtype),
                        None if media_type == "multipart" => Some("mixed".to_string()),
                        None => None,
                    };
                    // Without a subtype the field is invalid: keep the text/plain default
                    // (RFC 2045 §5.2).
                    if let (false, Some(subtype)) = (media_type.is_empty(), subtype) {
                        mime.media_type = media_type;
                        mime.media_subtype = subtype;
                        mime.params = params(ct.attributes.as_deref(), &bytes);
                    }
                }
            }
        }

        if let Some(range) = disposition {
            let bytes = self.value_bytes(&range);
            if let HeaderValue::ContentType(cd) = MessageStream::new(&bytes).parse_content_type() {
                let kind = cd.c_type.trim().to_ascii_lowercase();
                if !kind.is_empty() {
                    mime.disposition = Some((kind, params(cd.attributes.as_deref(), &bytes)));
                }
            }
        }
        mime
    }
}

/// Converts mail-parser attributes, dropping the `NAME-language` attributes it invents
/// for RFC 2231 language tags (kept only if the field really has such a parameter).
fn params(attributes: Option<&[Attribute<'_>]>, raw_field: &[u8]) -> Vec<(String, String)> {
    let Some(attributes) = attributes else {
        return Vec::new();
    };
    attributes
        .iter()
        .filter(|a| {
            let Some(base) = a.name.strip_suffix("-language") else {
                return true;
            };
            let invented = attributes.iter().any(|other| other.name == base)
                && !contains_ignore_case(raw_field, a.name.as_bytes());
            !invented
        })
        .map(|a| (a.name.to_ascii_lowercase(), a.value.to_string()))
        .collect()
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn imap_address(a: &Addr<'_>) -> Option<ImapAddress> {
    let name = non_empty(a.name.as_deref());
    let email = non_empty(a.address.as_deref());
    if name.is_none() && email.is_none() {
        return None;
    }
    let (mailbox, host) = match &email {
        Some(email) => match email.rsplit_once('@') {
            Some((local, domain)) => (
                if local.is_empty() {
                    MISSING_MAILBOX
                } else {
                    local
                },
                if domain.is_empty() {
                    MISSING_DOMAIN
                } else {
                    domain
                },
            ),
            None => (email.as_str(), MISSING_DOMAIN),
        },
        None => (MISSING_MAILBOX, MISSING_DOMAIN),
    };
    Some(ImapAddress {
        name: name.as_deref().map(encode_if_non_ascii),
        adl: None,
        mailbox: Some(mailbox.to_string()),
        host: Some(host.to_string()),
    })
}
