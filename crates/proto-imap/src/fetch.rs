//! FETCH responses (RFC 9051 §6.4.5, §7.5.2) rendered from a [`MessageView`].
//!
//! Everything structural (ENVELOPE, BODY, BODYSTRUCTURE, sizes, dates, ids,
//! PREVIEW) comes from the [`MessageMeta`](pochta_message::MessageMeta) stored at
//! delivery; only body sections, RFC822.* and BINARY read the raw bytes, by the
//! absolute offsets the meta records. Nothing here re-parses a message.
//!
//! Where the RFC leaves a choice open the output follows Dovecot, which most
//! clients are tested against: a section that does not exist (`BODY[9]`,
//! `BODY[1.HEADER]` of a part that is not a message) is an empty literal
//! `{0}`, section data is always sent as a literal, `HEADER.FIELDS` names are
//! echoed upper-cased, and `PREVIEW` of a message without text is `""`.

use std::borrow::Cow;
use std::fmt;

/// The transfer decodings, shared with JMAP and the preview (`pochta_message::decode`).
pub use pochta_message::decode::{
    base64 as decode_base64, quoted_printable as decode_quoted_printable,
};
use pochta_message::{BodyPart, Envelope, ImapAddress, PartKind};

use crate::encode::{self, Charset};
use crate::types::{FetchAttr, Section, SectionText};
use crate::view::{MONTHS, MessageView, civil_from_days, utc_day};

/// How to render FETCH responses for this session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchOptions {
    /// Whether strings may carry UTF-8 (IMAP4rev2, or `ENABLE UTF8=ACCEPT`);
    /// with [`Charset::Ascii`] 8-bit strings become literals and non-ASCII
    /// BODYSTRUCTURE parameter values are sent RFC 2231-encoded.
    pub charset: Charset,
    /// Write `UID n` first even if not requested (UID FETCH always returns
    /// the UID, RFC 9051 §6.4.9).
    pub include_uid: bool,
    /// Write `MODSEQ (n)` even if not requested (once CONDSTORE is enabled every
    /// FETCH response carries it, RFC 7162 §3.1.4).
    pub include_modseq: bool,
    /// Write `FLAGS (...)` even if not requested: the session sets this after a
    /// non-PEEK body fetch set `\Seen` (RFC 9051 §6.4.5 says the flag change
    /// is reported in the same response).
    pub include_flags: bool,
}

/// Why a FETCH response could not be written. On error nothing is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// `BINARY[part]` or `BINARY.SIZE[part]` of a part whose
    /// Content-Transfer-Encoding we cannot decode: the session answers
    /// `NO [UNKNOWN-CTE]` (RFC 3516 §4.3).
    UnknownCte {
        /// The part asked for.
        part: Vec<u32>,
        /// Its Content-Transfer-Encoding, upper-cased.
        encoding: String,
    },
    /// An item needs the raw message and the view has none: a caller bug
    /// (see [`needs_raw`]), reported rather than answered with wrong data.
    MissingRaw,
}

impl FetchError {
    /// The response code the session should put in its `NO` answer, if any.
    pub fn response_code(&self) -> Option<&'static str> {
        match self {
            FetchError::UnknownCte { .. } => Some("UNKNOWN-CTE"),
            FetchError::MissingRaw => None,
        }
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::UnknownCte { encoding, .. } => {
                write!(f, "unknown Content-Transfer-Encoding {encoding}")
            }
            FetchError::MissingRaw => f.write_str("message data was not loaded"),
        }
    }
}

impl std::error::Error for FetchError {}

/// True if any of `attrs` reads the raw message (body sections, RFC822*,
/// BINARY, BINARY.SIZE); ENVELOPE, BODY[STRUCTURE], FLAGS, dates, sizes, ids
/// and PREVIEW come from the meta alone, so the session can skip loading the
/// bytes for them.
pub fn needs_raw(attrs: &[FetchAttr]) -> bool {
    attrs.iter().any(|attr| {
        matches!(
            attr,
            FetchAttr::Rfc822
                | FetchAttr::Rfc822Header
                | FetchAttr::Rfc822Text
                | FetchAttr::BodySection { .. }
                | FetchAttr::Binary { .. }
                | FetchAttr::BinarySize { .. }
        )
    })
}

/// True if fetching `attrs` sets `\Seen` (RFC 9051 §6.4.5): a non-PEEK
/// `BODY[...]` or `BINARY[...]`, `RFC822` or `RFC822.TEXT`. The session sets
/// the flag (in a read-write mailbox) and passes
/// [`FetchOptions::include_flags`].
pub fn sets_seen(attrs: &[FetchAttr]) -> bool {
    attrs.iter().any(|attr| {
        matches!(
            attr,
            FetchAttr::Rfc822
                | FetchAttr::Rfc822Text
                | FetchAttr::BodySection { peek: false, .. }
                | FetchAttr::Binary { peek: false, .. }
        )
    })
}

/// The RFC 8474 EMAILID of a store message id: `M` followed by the id in
/// lower-case hexadecimal (an `objectid`: 1-255 characters of
/// `[A-Za-z0-9_-]`). The same id is stable across COPY-less moves.
pub fn email_id(id: u64) -> String {
    format!("M{id:x}")
}

/// The RFC 8474 THREADID of a store thread id: `T` followed by the id in
/// lower-case hexadecimal.
pub fn thread_id(id: u64) -> String {
    format!("T{id:x}")
}

/// Inverse of [`email_id`] for SEARCH EMAILID: `None` for anything that
/// [`email_id`] never produces (so such a search matches nothing).
pub fn parse_email_id(s: &str) -> Option<u64> {
    parse_object_id(s, 'M')
}

/// Inverse of [`thread_id`] for SEARCH THREADID.
pub fn parse_thread_id(s: &str) -> Option<u64> {
    parse_object_id(s, 'T')
}

fn parse_object_id(s: &str, prefix: char) -> Option<u64> {
    let hex = s.strip_prefix(prefix)?;
    let canonical = !hex.is_empty()
        && hex.len() <= 16
        && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && (hex == "0" || !hex.starts_with('0'));
    if !canonical {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Writes an IMAP `date-time` in UTC: `"dd-Mon-yyyy hh:mm:ss +0000"` (with the
/// quotes), as INTERNALDATE and SAVEDATE send it.
pub fn write_date_time(out: &mut Vec<u8>, unix: i64) {
    let (year, month, day) = civil_from_days(utc_day(unix));
    let secs = unix.rem_euclid(86_400);
    let month_name = MONTHS
        .get(month.saturating_sub(1) as usize)
        .copied()
        .unwrap_or("Jan");
    out.extend_from_slice(
        format!(
            "\"{day:02}-{month_name}-{year:04} {:02}:{:02}:{:02} +0000\"",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
        .as_bytes(),
    );
}

/// Writes the whole `* <msn> FETCH (...)\r\n` line for `m`.
///
/// Items come in the order requested (with `UID` first when
/// [`FetchOptions::include_uid`], and `FLAGS`/`MODSEQ` appended when forced and
/// not requested). On error `out` is left as it was.
pub fn write_fetch(
    out: &mut Vec<u8>,
    m: &MessageView<'_>,
    attrs: &[FetchAttr],
    opts: &FetchOptions,
) -> Result<(), FetchError> {
    let start = out.len();
    let result = write_fetch_inner(out, m, attrs, opts);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn write_fetch_inner(
    out: &mut Vec<u8>,
    m: &MessageView<'_>,
    attrs: &[FetchAttr],
    opts: &FetchOptions,
) -> Result<(), FetchError> {
    out.extend_from_slice(format!("* {} FETCH (", m.msn).as_bytes());
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !first {
            out.push(b' ');
        }
        first = false;
    };
    if opts.include_uid {
        sep(out);
        write_attr(out, m, &FetchAttr::Uid, opts)?;
    }
    for attr in attrs {
        if opts.include_uid && *attr == FetchAttr::Uid {
            continue;
        }
        sep(out);
        write_attr(out, m, attr, opts)?;
    }
    if opts.include_flags && !attrs.contains(&FetchAttr::Flags) {
        sep(out);
        write_attr(out, m, &FetchAttr::Flags, opts)?;
    }
    if opts.include_modseq && !attrs.contains(&FetchAttr::ModSeq) {
        sep(out);
        write_attr(out, m, &FetchAttr::ModSeq, opts)?;
    }
    out.extend_from_slice(b")\r\n");
    Ok(())
}

fn raw<'a>(m: &MessageView<'a>) -> Result<&'a [u8], FetchError> {
    m.raw.ok_or(FetchError::MissingRaw)
}

fn write_attr(
    out: &mut Vec<u8>,
    m: &MessageView<'_>,
    attr: &FetchAttr,
    opts: &FetchOptions,
) -> Result<(), FetchError> {
    let cs = opts.charset;
    let meta = m.meta;
    match attr {
        FetchAttr::Envelope => {
            out.extend_from_slice(b"ENVELOPE ");
            write_envelope(out, &meta.envelope, cs);
        }
        FetchAttr::Flags => {
            out.extend_from_slice(b"FLAGS (");
            let mut first = true;
            let system = m.flags.names();
            let keywords = m.keywords.iter().map(String::as_str);
            for name in system.map(|s| -> &str { s }).chain(keywords) {
                if !first {
                    out.push(b' ');
                }
                first = false;
                out.extend_from_slice(name.as_bytes());
            }
            out.push(b')');
        }
        FetchAttr::InternalDate => {
            out.extend_from_slice(b"INTERNALDATE ");
            write_date_time(out, m.internal_date);
        }
        FetchAttr::SaveDate => {
            out.extend_from_slice(b"SAVEDATE ");
            write_date_time(out, m.internal_date);
        }
        FetchAttr::Rfc822Size => {
            out.extend_from_slice(format!("RFC822.SIZE {}", m.size).as_bytes());
        }
        FetchAttr::Uid => out.extend_from_slice(format!("UID {}", m.uid).as_bytes()),
        FetchAttr::ModSeq => out.extend_from_slice(format!("MODSEQ ({})", m.modseq).as_bytes()),
        FetchAttr::EmailId => {
            out.extend_from_slice(format!("EMAILID ({})", email_id(m.email_id)).as_bytes());
        }
        FetchAttr::ThreadId => {
            out.extend_from_slice(format!("THREADID ({})", thread_id(m.thread_id)).as_bytes());
        }
        FetchAttr::Preview { .. } => {
            out.extend_from_slice(b"PREVIEW ");
            let preview = truncate_chars(&meta.preview, pochta_message::PREVIEW_CHARS);
            encode::string(out, preview.as_bytes(), cs);
        }
        FetchAttr::Body => {
            out.extend_from_slice(b"BODY ");
            write_body_structure(out, &meta.body, false, cs);
        }
        FetchAttr::BodyStructure => {
            out.extend_from_slice(b"BODYSTRUCTURE ");
            write_body_structure(out, &meta.body, true, cs);
        }
        FetchAttr::Rfc822 => {
            out.extend_from_slice(b"RFC822 ");
            section_literal(out, raw(m)?);
        }
        FetchAttr::Rfc822Header => {
            out.extend_from_slice(b"RFC822.HEADER ");
            let raw = raw(m)?;
            section_literal(out, slice(raw, meta.body.header_range()));
        }
        FetchAttr::Rfc822Text => {
            out.extend_from_slice(b"RFC822.TEXT ");
            let raw = raw(m)?;
            section_literal(out, slice(raw, meta.body.body_range()));
        }
        FetchAttr::BodySection {
            section, partial, ..
        } => {
            out.extend_from_slice(b"BODY[");
            write_section_spec(out, section);
            out.push(b']');
            let raw = raw(m)?;
            let data = section_data(raw, &meta.body, section);
            let data = apply_partial(out, &data, *partial);
            out.push(b' ');
            section_literal(out, data);
        }
        FetchAttr::Binary { part, partial, .. } => {
            let raw = raw(m)?;
            let data = binary_data(raw, &meta.body, part)?;
            out.extend_from_slice(b"BINARY[");
            write_part_numbers(out, part);
            out.push(b']');
            let data = apply_partial(out, &data, *partial);
            out.push(b' ');
            if memchr::memchr(0, data).is_some() {
                encode::literal8(out, data);
            } else {
                encode::literal(out, data);
            }
        }
        FetchAttr::BinarySize { part } => {
            let size = binary_size(m, part)?;
            out.extend_from_slice(b"BINARY.SIZE[");
            write_part_numbers(out, part);
            out.extend_from_slice(format!("] {size}").as_bytes());
        }
    }
    Ok(())
}

fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((at, _)) => s.get(..at).unwrap_or(s),
        None => s,
    }
}

fn slice(raw: &[u8], range: std::ops::Range<usize>) -> &[u8] {
    let end = range.end.min(raw.len());
    raw.get(range.start.min(end)..end).unwrap_or_default()
}

/// Writes section data as a literal (as Dovecot does, whatever the content),
/// with NUL octets, which a literal may not carry (RFC 9051 `CHAR8`), replaced
/// by 0x80.
fn section_literal(out: &mut Vec<u8>, data: &[u8]) {
    if memchr::memchr(0, data).is_some() {
        let cleaned: Vec<u8> = data
            .iter()
            .map(|&b| if b == 0 { 0x80 } else { b })
            .collect();
        encode::literal(out, &cleaned);
    } else {
        encode::literal(out, data);
    }
}

/// Writes `<origin>` if partial and returns the requested window of `data`
/// (empty when the origin is past the end).
fn apply_partial<'d>(out: &mut Vec<u8>, data: &'d [u8], partial: Option<(u64, u64)>) -> &'d [u8] {
    let Some((origin, length)) = partial else {
        return data;
    };
    out.extend_from_slice(format!("<{origin}>").as_bytes());
    let start = usize::try_from(origin)
        .unwrap_or(usize::MAX)
        .min(data.len());
    let end = start
        .saturating_add(usize::try_from(length).unwrap_or(usize::MAX))
        .min(data.len());
    data.get(start..end).unwrap_or_default()
}

/// Writes the response name's section after `BODY[`: `1.2.HEADER.FIELDS (A B)`.
fn write_section_spec(out: &mut Vec<u8>, section: &Section) {
    write_part_numbers(out, &section.part);
    let Some(text) = &section.text else {
        return;
    };
    if !section.part.is_empty() {
        out.push(b'.');
    }
    match text {
        SectionText::Header => out.extend_from_slice(b"HEADER"),
        SectionText::Text => out.extend_from_slice(b"TEXT"),
        SectionText::Mime => out.extend_from_slice(b"MIME"),
        SectionText::HeaderFields(names) => {
            out.extend_from_slice(b"HEADER.FIELDS ");
            write_field_names(out, names);
        }
        SectionText::HeaderFieldsNot(names) => {
            out.extend_from_slice(b"HEADER.FIELDS.NOT ");
            write_field_names(out, names);
        }
    }
}

fn write_field_names(out: &mut Vec<u8>, names: &[String]) {
    out.push(b'(');
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        let name = name.to_ascii_uppercase();
        // An atom when it can be, else quoted, never a literal: the parser
        // let only printable ASCII through, and a literal (what
        // `encode::astring` picks past MAX_QUOTED) would break the section
        // over two lines. `[` is an ATOM-CHAR and `]` an ASTRING-CHAR, so
        // `SUBJE]T` is a valid astring, but inside `BODY[...]` a client's
        // parser (and the fuzz target's checker) takes a bracket for the
        // section's end or a nested one, so those are quoted too.
        let atom = !name.is_empty()
            && name.bytes().all(|b| encode::is_atom_char(b) && b != b'[')
            && !name.eq_ignore_ascii_case("NIL");
        if atom {
            out.extend_from_slice(name.as_bytes());
        } else {
            encode::quoted(out, name.as_bytes());
        }
    }
    out.push(b')');
}

fn write_part_numbers(out: &mut Vec<u8>, part: &[u32]) {
    for (i, n) in part.iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        out.extend_from_slice(n.to_string().as_bytes());
    }
}

/// The bytes of `BODY[section]` (before any partial window).
///
/// Part numbers follow RFC 9051 §6.4.5 as [`BodyPart::part`] resolves them;
/// HEADER, HEADER.FIELDS[.NOT] and TEXT after part numbers apply only to a
/// message/rfc822 part (its encapsulated message); anything that does not
/// exist is empty.
pub fn section_data<'r>(raw: &'r [u8], root: &BodyPart, section: &Section) -> Cow<'r, [u8]> {
    let empty = Cow::Borrowed(&[][..]);
    let (header, text) = if section.part.is_empty() {
        (root.header_range(), root.body_range())
    } else {
        let Some(part) = root.part(&section.part) else {
            return empty;
        };
        match &section.text {
            None => return Cow::Borrowed(slice(raw, part.body_range())),
            Some(SectionText::Mime) => return Cow::Borrowed(slice(raw, part.header_range())),
            Some(_) => match &part.kind {
                PartKind::Message { body, .. } => (body.header_range(), body.body_range()),
                _ => return empty,
            },
        }
    };
    match &section.text {
        None => Cow::Borrowed(raw),
        Some(SectionText::Header) => Cow::Borrowed(slice(raw, header)),
        Some(SectionText::Text) => Cow::Borrowed(slice(raw, text)),
        // MIME needs part numbers; the parser refuses it without them.
        Some(SectionText::Mime) => empty,
        Some(SectionText::HeaderFields(names)) => {
            Cow::Owned(header_fields(slice(raw, header), names, true))
        }
        Some(SectionText::HeaderFieldsNot(names)) => {
            Cow::Owned(header_fields(slice(raw, header), names, false))
        }
    }
}

/// Iterates over the fields of a header section: `(name, whole field bytes
/// including its line ending and continuation lines)`. Stops at the blank line.
pub(crate) fn header_fields_iter(header: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let rest = header.get(pos..)?;
        if rest.is_empty() || rest.starts_with(b"\r\n") || rest.starts_with(b"\n") {
            return None;
        }
        // The field runs until a line that does not start with WSP.
        let mut end = 0;
        loop {
            match memchr::memchr(b'\n', rest.get(end..)?) {
                Some(i) => end += i + 1,
                None => {
                    end = rest.len();
                    break;
                }
            }
            if !matches!(rest.get(end), Some(b' ' | b'\t')) {
                break;
            }
        }
        let field = rest.get(..end)?;
        pos += end;
        let name = match memchr::memchr(b':', field) {
            Some(colon) => trim_wsp_end(field.get(..colon).unwrap_or_default()),
            None => field,
        };
        Some((name, field))
    })
}

fn trim_wsp_end(s: &[u8]) -> &[u8] {
    let mut end = s.len();
    while end > 0 && matches!(s.get(end - 1), Some(b' ' | b'\t')) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// The fields of `header` whose names are (`keep`) or are not (`!keep`) in
/// `names`, in their original form and order, followed by the blank line.
fn header_fields(header: &[u8], names: &[String], keep: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, field) in header_fields_iter(header) {
        let listed = names
            .iter()
            .any(|n| n.as_bytes().eq_ignore_ascii_case(name));
        if listed == keep {
            out.extend_from_slice(field);
            if !field.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// What BINARY does to a part's body.
enum Transfer {
    /// 7bit / 8bit / binary: the bytes as they are.
    Identity,
    /// Base64.
    Base64,
    /// Quoted-printable.
    QuotedPrintable,
}

fn transfer_of(part: &BodyPart, path: &[u32]) -> Result<Transfer, FetchError> {
    if !matches!(part.kind, PartKind::Leaf) {
        // Containers are sent as they are (their own CTE can only be an
        // identity one for a parsed structure).
        return Ok(Transfer::Identity);
    }
    match part.encoding.as_str() {
        "7BIT" | "8BIT" | "BINARY" | "" => Ok(Transfer::Identity),
        "BASE64" => Ok(Transfer::Base64),
        "QUOTED-PRINTABLE" => Ok(Transfer::QuotedPrintable),
        other => Err(FetchError::UnknownCte {
            part: path.to_vec(),
            encoding: other.to_string(),
        }),
    }
}

/// The content of `BINARY[part]`: the part's body with its
/// Content-Transfer-Encoding removed. An empty `part` is the whole message as
/// stored; a nonexistent part is empty (as Dovecot answers).
pub fn binary_data<'r>(
    raw: &'r [u8],
    root: &BodyPart,
    path: &[u32],
) -> Result<Cow<'r, [u8]>, FetchError> {
    if path.is_empty() {
        return Ok(Cow::Borrowed(raw));
    }
    let Some(part) = root.part(path) else {
        return Ok(Cow::Borrowed(&[]));
    };
    let body = slice(raw, part.body_range());
    Ok(match transfer_of(part, path)? {
        Transfer::Identity => Cow::Borrowed(body),
        Transfer::Base64 => Cow::Owned(decode_base64(body)),
        Transfer::QuotedPrintable => Cow::Owned(decode_quoted_printable(body)),
    })
}

fn binary_size(m: &MessageView<'_>, path: &[u32]) -> Result<u64, FetchError> {
    if path.is_empty() {
        return Ok(m.size);
    }
    let Some(part) = m.meta.body.part(path) else {
        return Ok(0);
    };
    match transfer_of(part, path)? {
        Transfer::Identity => Ok(part.size),
        _ => Ok(binary_data(raw(m)?, &m.meta.body, path)?.len() as u64),
    }
}

/// Writes an ENVELOPE structure (RFC 9051 §7.5.2): date, subject, from,
/// sender, reply-to, to, cc, bcc, in-reply-to, message-id.
pub fn write_envelope(out: &mut Vec<u8>, e: &Envelope, cs: Charset) {
    out.push(b'(');
    encode::nstring(out, e.date.as_deref().map(str::as_bytes), cs);
    out.push(b' ');
    encode::nstring(out, e.subject.as_deref().map(str::as_bytes), cs);
    for list in [&e.from, &e.sender, &e.reply_to, &e.to, &e.cc, &e.bcc] {
        out.push(b' ');
        write_addresses(out, list, cs);
    }
    out.push(b' ');
    encode::nstring(out, e.in_reply_to.as_deref().map(str::as_bytes), cs);
    out.push(b' ');
    encode::nstring(out, e.message_id.as_deref().map(str::as_bytes), cs);
    out.push(b')');
}

fn write_addresses(out: &mut Vec<u8>, list: &[ImapAddress], cs: Charset) {
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for a in list {
        out.push(b'(');
        for (i, field) in [&a.name, &a.adl, &a.mailbox, &a.host]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                out.push(b' ');
            }
            encode::nstring(out, field.as_deref().map(str::as_bytes), cs);
        }
        out.push(b')');
    }
    out.push(b')');
}

/// Writes `BODY` (`extensible == false`) or `BODYSTRUCTURE` data for `part`
/// (RFC 9051 §7.5.2 `body`).
pub fn write_body_structure(out: &mut Vec<u8>, part: &BodyPart, extensible: bool, cs: Charset) {
    out.push(b'(');
    match &part.kind {
        PartKind::Multipart(children) if !children.is_empty() => {
            for child in children {
                write_body_structure(out, child, extensible, cs);
            }
            out.push(b' ');
            encode::string(out, part.media_subtype.as_bytes(), cs);
            if extensible {
                out.push(b' ');
                write_params(out, &part.params, cs);
                write_extension_tail(out, part, cs);
            }
        }
        kind => {
            let (media_type, media_subtype) = if part.is_multipart() {
                // A multipart without children cannot be written as one (the
                // grammar wants at least one body); the meta never has one.
                ("text", "plain")
            } else {
                (part.media_type.as_str(), part.media_subtype.as_str())
            };
            encode::string(out, media_type.as_bytes(), cs);
            out.push(b' ');
            encode::string(out, media_subtype.as_bytes(), cs);
            out.push(b' ');
            // A text part without a charset is US-ASCII (RFC 2045 §5.2); say so,
            // as Dovecot does.
            let default_charset =
                media_type.eq_ignore_ascii_case("text") && part.param("charset").is_none();
            write_params_with(out, &part.params, default_charset, cs);
            out.push(b' ');
            encode::nstring(out, part.id.as_deref().map(str::as_bytes), cs);
            out.push(b' ');
            encode::nstring(out, part.description.as_deref().map(str::as_bytes), cs);
            out.push(b' ');
            let encoding = if part.encoding.is_empty() {
                "7BIT"
            } else {
                part.encoding.as_str()
            };
            encode::string(out, encoding.as_bytes(), cs);
            out.extend_from_slice(format!(" {}", part.size).as_bytes());
            match kind {
                PartKind::Message { envelope, body } => {
                    out.push(b' ');
                    write_envelope(out, envelope, cs);
                    out.push(b' ');
                    write_body_structure(out, body, extensible, cs);
                    out.extend_from_slice(format!(" {}", part.lines).as_bytes());
                }
                _ if media_type.eq_ignore_ascii_case("text") => {
                    out.extend_from_slice(format!(" {}", part.lines).as_bytes());
                }
                _ => {}
            }
            if extensible {
                out.push(b' ');
                encode::nstring(out, part.md5.as_deref().map(str::as_bytes), cs);
                write_extension_tail(out, part, cs);
            }
        }
    }
    out.push(b')');
}

/// ` disposition language location`, shared by single parts and multiparts.
fn write_extension_tail(out: &mut Vec<u8>, part: &BodyPart, cs: Charset) {
    out.push(b' ');
    match &part.disposition {
        Some((kind, params)) => {
            out.push(b'(');
            encode::string(out, kind.as_bytes(), cs);
            out.push(b' ');
            write_params(out, params, cs);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    if part.language.is_empty() {
        out.extend_from_slice(b"NIL");
    } else {
        out.push(b'(');
        for (i, lang) in part.language.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            encode::string(out, lang.as_bytes(), cs);
        }
        out.push(b')');
    }
    out.push(b' ');
    encode::nstring(out, part.location.as_deref().map(str::as_bytes), cs);
}

/// Writes a `body-fld-param` list, or NIL when empty. Values are decoded in the
/// meta; for an ASCII-only client a non-ASCII value is sent the RFC 2231 way
/// (`"name*" "utf-8''%D0%BE..."`), which is also how it usually arrived and how
/// Dovecot passes it on.
fn write_params(out: &mut Vec<u8>, params: &[(String, String)], cs: Charset) {
    write_params_with(out, params, false, cs);
}

/// [`write_params`], adding `"charset" "us-ascii"` at the end when
/// `default_charset`.
fn write_params_with(
    out: &mut Vec<u8>,
    params: &[(String, String)],
    default_charset: bool,
    cs: Charset,
) {
    if params.is_empty() && !default_charset {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        if cs == Charset::Ascii && !value.is_ascii() {
            encode::string(out, format!("{name}*").as_bytes(), cs);
            out.push(b' ');
            encode::string(out, rfc2231_encode(value).as_bytes(), cs);
        } else {
            encode::string(out, name.as_bytes(), cs);
            out.push(b' ');
            encode::string(out, value.as_bytes(), cs);
        }
    }
    if default_charset {
        if !params.is_empty() {
            out.push(b' ');
        }
        out.extend_from_slice(b"\"charset\" \"us-ascii\"");
    }
    out.push(b')');
}

/// `utf-8''` followed by the value with everything but RFC 2231
/// `attribute-char`s percent-encoded.
fn rfc2231_encode(value: &str) -> String {
    let mut out = String::from("utf-8''");
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
