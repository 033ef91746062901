//! Turning a stored message into what a person reads: the headers a person
//! wants (decoded from RFC 2047, the date in local time), the text decoded
//! from its transfer encoding and charset (mail-parser with `full_encoding`:
//! ISO-8859-*, KOI8-R, Windows-125x, the CJK encodings), HTML-only mail as
//! readable text (html2text), and the list of attachments.
//!
//! Everything shown is cleaned of control characters: a message must not be
//! able to send escape sequences to the user's terminal.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use mail_parser::{
    Addr, Address, DateTime, HeaderValue, Message, MessageParser, MimeHeaders, PartType,
};
use time::{OffsetDateTime, UtcOffset};

use crate::error::{ClientError, Result};

/// How to render.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Columns available (text is wrapped to fit).
    pub width: usize,
    /// Use ANSI colours (only when writing to a terminal).
    pub color: bool,
    /// The local time zone's offset for dates.
    pub offset: UtcOffset,
    /// Show every header field instead of the usual few.
    pub all_headers: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            width: 80,
            color: false,
            offset: UtcOffset::UTC,
            all_headers: false,
        }
    }
}

/// One attachment, as listed under a message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AttachmentInfo {
    /// The file name the sender gave (decoded), or a made-up one.
    pub name: String,
    /// `type/subtype`.
    pub content_type: String,
    /// Decoded size in octets.
    pub size: usize,
}

/// Parses a message; mail-parser is best effort and never panics, and only
/// gives up on input that has no message in it at all.
///
/// Unlike mail-parser's default, header fields it does not know (`X-…`) are
/// decoded as text (RFC 2047) too, for `read --headers`.
pub fn parse(raw: &[u8]) -> Option<Message<'_>> {
    use mail_parser::HeaderName;
    // A non-empty header map makes mail-parser use the default function for
    // unknown fields; this one repeats its built-in choices for known ones.
    MessageParser::new()
        .with_mime_headers()
        .with_date_headers()
        .with_address_headers()
        .with_message_ids()
        .header_id(HeaderName::ReturnPath)
        .header_text(HeaderName::Subject)
        .header_text(HeaderName::Comments)
        .header_received(HeaderName::Received)
        .header_comma_separated(HeaderName::Keywords)
        .header_comma_separated(HeaderName::ContentLanguage)
        .header_raw(HeaderName::MimeVersion)
        .default_header_text()
        .parse(raw)
}

const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const CYAN: &str = "\x1b[36m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

/// Removes what could drive a terminal (escape sequences, other control
/// characters) but keeps newlines and tabs.
pub fn clean(s: &str) -> Cow<'_, str> {
    if s.chars().all(|c| !c.is_control() || c == '\n' || c == '\t') {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
            .collect(),
    )
}

/// Header text on one line, cleaned.
fn one_line(s: &str) -> String {
    clean(&s.replace(['\r', '\n', '\t'], " ")).into_owned()
}

/// `Name <addr>` or `addr`.
pub fn format_addr(a: &Addr<'_>) -> String {
    match (a.name(), a.address()) {
        (Some(n), Some(addr)) if !n.is_empty() && n != addr => one_line(&format!("{n} <{addr}>")),
        (_, Some(addr)) => one_line(addr),
        (Some(n), None) => one_line(n),
        (None, None) => String::new(),
    }
}

/// An address list (groups flattened) as `A, B <b@x>`.
pub fn format_addresses(a: Option<&Address<'_>>) -> String {
    a.map(|a| {
        a.iter()
            .map(format_addr)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(", ")
    })
    .unwrap_or_default()
}

/// The bare addresses of a list, lower-cased.
pub fn addresses(a: Option<&Address<'_>>) -> Vec<String> {
    a.map(|a| {
        a.iter()
            .filter_map(|x| x.address())
            .map(|s| s.trim().to_string())
            .filter(|s| s.contains('@'))
            .collect()
    })
    .unwrap_or_default()
}

/// A header date as an instant, if it is a real one.
pub fn to_offset_date_time(d: &DateTime) -> Option<OffsetDateTime> {
    if !d.is_valid() {
        return None;
    }
    OffsetDateTime::from_unix_timestamp(d.to_timestamp()).ok()
}

/// The date in the user's time zone, e.g. `Tue, 3 Mar 2026 14:05 +01:00`.
pub fn format_date(d: &DateTime, offset: UtcOffset) -> String {
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day padding:none] [month repr:short] [year] [hour]:[minute] [offset_hour sign:mandatory]:[offset_minute]"
    );
    to_offset_date_time(d)
        .and_then(|t| t.to_offset(offset).format(fmt).ok())
        .unwrap_or_else(|| d.to_rfc3339())
}

/// A header value of any kind as text (addresses formatted, dates in local time).
fn header_value_text(v: &HeaderValue<'_>, offset: UtcOffset) -> Option<String> {
    Some(match v {
        HeaderValue::Address(a) => format_addresses(Some(a)),
        HeaderValue::Text(t) => one_line(t),
        HeaderValue::TextList(l) => one_line(&l.join(", ")),
        HeaderValue::DateTime(d) => format_date(d, offset),
        HeaderValue::ContentType(ct) => {
            let mut s = ct.ctype().to_string();
            if let Some(sub) = ct.subtype() {
                s.push('/');
                s.push_str(sub);
            }
            for a in ct.attributes().unwrap_or_default() {
                let _ = write!(s, "; {}={}", a.name, a.value);
            }
            one_line(&s)
        }
        HeaderValue::Received(_) | HeaderValue::Empty => return None,
    })
}

/// Every text body part in order, decoded; HTML parts (an HTML-only message)
/// rendered as text `width` columns wide.
pub fn body_text(msg: &Message<'_>, width: usize) -> String {
    let mut out = String::new();
    for &id in &msg.text_body {
        let Some(part) = msg.parts.get(id as usize) else {
            continue;
        };
        let text = match &part.body {
            PartType::Text(t) => clean(t).into_owned(),
            PartType::Html(h) => html_to_text(h, width),
            _ => continue,
        };
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push_str(if out.ends_with('\n') { "\n" } else { "\n\n" });
        }
        out.push_str(&text);
    }
    if out.is_empty() {
        // Nothing marked as body text: try the HTML bodies.
        for i in 0..msg.html_body.len() {
            if let Some(PartType::Html(h)) = msg
                .html_body
                .get(i)
                .and_then(|&id| msg.parts.get(id as usize))
                .map(|p| &p.body)
            {
                out.push_str(&html_to_text(h, width));
            }
        }
    }
    out
}

/// HTML as readable text with html2text (links as footnotes, lists, tables);
/// mail-parser's simpler converter if html2text refuses (too narrow a width).
pub fn html_to_text(html: &str, width: usize) -> String {
    let width = width.clamp(20, 200);
    let text = html2text::from_read(html.as_bytes(), width)
        .unwrap_or_else(|_| mail_parser::decoders::html::html_to_text(html));
    clean(&text).into_owned()
}

/// The attachments of a message (also inline images and attached messages).
pub fn attachments(msg: &Message<'_>) -> Vec<AttachmentInfo> {
    msg.attachments()
        .enumerate()
        .map(|(i, part)| AttachmentInfo {
            name: attachment_name(part, i),
            content_type: part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".into())
                .to_ascii_lowercase(),
            size: part.len(),
        })
        .collect()
}

fn attachment_name(part: &mail_parser::MessagePart<'_>, index: usize) -> String {
    if let Some(n) = part
        .attachment_name()
        .map(one_line)
        .filter(|n| !n.trim().is_empty())
    {
        return n;
    }
    if let Some(sub) = part.message().and_then(|m| m.subject()) {
        return format!("{}.eml", one_line(sub));
    }
    let ext = part
        .content_type()
        .and_then(|ct| {
            mime_guess::get_mime_extensions_str(&format!(
                "{}/{}",
                ct.ctype(),
                ct.subtype().unwrap_or("")
            ))
            .and_then(|e| e.first().copied())
        })
        .unwrap_or("bin");
    format!("attachment-{}.{ext}", index + 1)
}

/// A file name safe to create in a chosen directory: no directories, no
/// leading dots, no control or reserved characters, not empty, not too long.
pub fn sanitize_filename(name: &str) -> String {
    // Only the last path component, for either separator.
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let mut s: String = base
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*') {
                '_'
            } else {
                c
            }
        })
        .collect();
    s = s.trim().trim_start_matches('.').trim().to_string();
    if s.chars().count() > 200 {
        // Keep the extension.
        let ext: String = match s.rsplit_once('.') {
            Some((_, e)) if e.chars().count() <= 10 => format!(".{e}"),
            _ => String::new(),
        };
        s = s
            .chars()
            .take(200 - ext.chars().count())
            .collect::<String>()
            + &ext;
    }
    if s.is_empty() {
        "attachment".to_string()
    } else {
        s
    }
}

/// Writes every attachment of `raw` into `dir` (created if needed) under its
/// sanitised name, never overwriting: `name (2).ext` when taken. Returns the
/// paths written.
pub fn save_attachments(raw: &[u8], dir: &Path) -> Result<Vec<PathBuf>> {
    let msg =
        parse(raw).ok_or_else(|| ClientError::Usage("the message could not be parsed".into()))?;
    std::fs::create_dir_all(dir).map_err(|e| ClientError::io(dir, e))?;
    let mut written = Vec::new();
    for (i, part) in msg.attachments().enumerate() {
        let name = sanitize_filename(&attachment_name(part, i));
        let (stem, ext) = match name.rsplit_once('.') {
            Some((s, e)) if !s.is_empty() => (s.to_string(), format!(".{e}")),
            _ => (name.clone(), String::new()),
        };
        let mut n = 1;
        loop {
            let candidate = if n == 1 {
                dir.join(&name)
            } else {
                dir.join(format!("{stem} ({n}){ext}"))
            };
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&candidate)
            {
                Ok(mut f) => {
                    use std::io::Write;
                    f.write_all(part.contents())
                        .map_err(|e| ClientError::io(&candidate, e))?;
                    written.push(candidate);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => return Err(ClientError::io(&candidate, e)),
            }
        }
    }
    Ok(written)
}

/// Human-readable size: `512 B`, `1.5 KiB`, `3.2 MiB`.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in UNITS.iter().skip(1) {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    if v < 10.0 {
        format!("{v:.1} {unit}")
    } else {
        format!("{v:.0} {unit}")
    }
}

/// Wraps lines longer than `width` at spaces (a word longer than the line is
/// cut). Quoted lines keep their `> ` prefix on continuation lines.
pub fn wrap(text: &str, width: usize) -> String {
    let width = width.max(20);
    let mut out = String::with_capacity(text.len());
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.chars().count() <= width {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let prefix_len = line
            .chars()
            .take_while(|c| *c == '>' || *c == ' ')
            .count()
            .min(width / 2);
        let prefix: String = line.chars().take(prefix_len).collect();
        let prefix = if prefix.contains('>') {
            prefix
        } else {
            String::new()
        };
        let mut rest: Vec<char> = line.chars().collect();
        let mut first = true;
        while !rest.is_empty() {
            let lead = if first { String::new() } else { prefix.clone() };
            let room = width.saturating_sub(lead.chars().count()).max(10);
            if rest.len() <= room {
                out.push_str(&lead);
                out.extend(rest.iter());
                out.push('\n');
                break;
            }
            let cut = rest
                .get(..=room)
                .and_then(|w| w.iter().rposition(|c| *c == ' '))
                .filter(|&p| p > 0)
                .unwrap_or(room);
            out.push_str(&lead);
            out.extend(rest.get(..cut).unwrap_or_default().iter());
            out.push('\n');
            let skip = rest.iter().skip(cut).take_while(|c| **c == ' ').count();
            rest.drain(..(cut + skip).min(rest.len()));
            first = false;
        }
    }
    if !text.ends_with('\n') {
        out.pop();
    }
    out
}

/// The message as a person reads it: headers, text, attachments.
pub fn render(raw: &[u8], opts: &Options) -> String {
    let Some(msg) = parse(raw) else {
        return wrap(&clean(&String::from_utf8_lossy(raw)), opts.width);
    };
    let (b, c, y, d, r) = if opts.color {
        (BOLD, CYAN, YELLOW, DIM, RESET)
    } else {
        ("", "", "", "", "")
    };
    let mut out = String::new();
    let field = |out: &mut String, name: &str, value: &str| {
        if !value.is_empty() {
            let line = format!("{name}: {value}");
            let wrapped = wrap(&line, opts.width);
            let value_part = wrapped.get(name.len() + 1..).unwrap_or("");
            let _ = writeln!(out, "{b}{c}{name}:{r}{value_part}");
        }
    };
    if opts.all_headers {
        for h in msg.headers() {
            let name = one_line(h.name());
            let value = header_value_text(h.value(), opts.offset).unwrap_or_else(|| {
                let start = h.offset_start() as usize;
                let end = h.offset_end() as usize;
                raw.get(start..end)
                    .map(|v| one_line(String::from_utf8_lossy(v).trim()))
                    .unwrap_or_default()
            });
            field(&mut out, &name, &value);
        }
    } else {
        field(&mut out, "From", &format_addresses(msg.from()));
        field(&mut out, "To", &format_addresses(msg.to()));
        field(&mut out, "Cc", &format_addresses(msg.cc()));
        if let Some(date) = msg.date() {
            field(&mut out, "Date", &format_date(date, opts.offset));
        }
        let subject = msg.subject().map(one_line).unwrap_or_default();
        if opts.color && !subject.is_empty() {
            let _ = writeln!(out, "{b}{c}Subject:{r} {b}{subject}{r}");
        } else {
            field(&mut out, "Subject", &subject);
        }
    }
    out.push('\n');
    let text = body_text(&msg, opts.width);
    for line in wrap(text.trim_end(), opts.width).lines() {
        if opts.color && line.starts_with('>') {
            let _ = writeln!(out, "{d}{line}{r}");
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    let atts = attachments(&msg);
    if !atts.is_empty() {
        let _ = writeln!(out, "\n{b}{y}Attachments:{r}");
        for (i, a) in atts.iter().enumerate() {
            let _ = writeln!(
                out,
                "  [{}] {}  {}  {}",
                i + 1,
                a.name,
                a.content_type,
                human_size(a.size as u64)
            );
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn plain(raw: &[u8]) -> String {
        render(raw, &Options::default())
    }

    #[test]
    fn quoted_printable_utf8_and_encoded_subject() {
        let raw = b"From: =?UTF-8?B?0JjQstCw0L0g0J/QtdGC0YDQvtCy?= <ivan@example.ru>\r\n\
To: bob@example.com\r\nSubject: =?UTF-8?Q?=D0=9F=D1=80=D0=B8=D0=B2=D0=B5=D1=82?=\r\n\
Date: Tue, 3 Mar 2026 13:05:00 +0000\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
caf=C3=A9 soft=\r\nbreak\r\n";
        let out = plain(raw);
        assert!(out.contains("From: Иван Петров <ivan@example.ru>"), "{out}");
        assert!(out.contains("Subject: Привет"), "{out}");
        assert!(out.contains("café softbreak"), "{out}");
        assert!(out.contains("Date: Tue, 3 Mar 2026 13:05 +00:00"), "{out}");
    }

    #[test]
    fn date_in_the_given_offset() {
        let raw = b"From: a@b.c\r\nDate: Tue, 3 Mar 2026 23:30:00 +0000\r\n\r\nx\r\n";
        let opts = Options {
            offset: UtcOffset::from_hms(3, 0, 0).unwrap(),
            ..Options::default()
        };
        let out = render(raw, &opts);
        assert!(out.contains("Date: Wed, 4 Mar 2026 02:30 +03:00"), "{out}");
    }

    #[test]
    fn base64_koi8r_body_and_subject() {
        let mut raw = b"From: a@example.ru\r\nSubject: =?koi8-r?B?9MXNwSDQydPYzcE=?=\r\n\
MIME-Version: 1.0\r\nContent-Type: text/plain; charset=koi8-r\r\n\
Content-Transfer-Encoding: 8bit\r\n\r\n"
            .to_vec();
        raw.extend_from_slice(b"\xf0\xd2\xc9\xd7\xc5\xd4, \xcd\xc9\xd2!\r\n");
        let out = plain(&raw);
        assert!(out.contains("Subject: Тема письма"), "{out}");
        assert!(out.contains("Привет, мир!"), "{out}");
    }

    #[test]
    fn windows_1251_quoted_printable() {
        let raw = b"From: a@example.ru\r\nSubject: test\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=windows-1251\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\n=D1=FA=E5=F8=FC =E6=E5 =E5=F9=B8\r\n";
        assert!(plain(raw).contains("Съешь же ещё"), "{}", plain(raw));
    }

    #[test]
    fn iso_8859_1_and_base64() {
        let raw =
            b"From: a@example.de\r\nSubject: =?ISO-8859-1?Q?Gr=FC=DFe?=\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=ISO-8859-1\r\nContent-Transfer-Encoding: base64\r\n\r\n\
R3L832UgYXVzIEv2bG4sIGNhZuk=\r\n";
        let out = plain(raw);
        assert!(out.contains("Subject: Grüße"), "{out}");
        assert!(out.contains("Grüße aus Köln, café"), "{out}");
    }

    #[test]
    fn html_only_becomes_readable_text() {
        let raw = b"From: a@b.c\r\nSubject: h\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
<html><head><style>p{color:red}</style></head><body><h1>Hello</h1><p>First <b>bold</b> para.</p>\
<ul><li>one</li><li>two</li></ul><script>alert(1)</script></body></html>\r\n";
        let out = plain(raw);
        assert!(out.contains("Hello"), "{out}");
        assert!(out.contains("First"), "{out}");
        assert!(out.contains("one") && out.contains("two"), "{out}");
        assert!(!out.contains("<p>") && !out.contains("color:red"), "{out}");
        assert!(!out.contains("alert"), "{out}");
    }

    #[test]
    fn nested_multipart_prefers_text_and_lists_attachments() {
        let raw = b"From: a@b.c\r\nSubject: n\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\n\
Content-Type: multipart/alternative; boundary=inner\r\n\r\n--inner\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nthe plain text\r\n--inner\r\n\
Content-Type: text/html; charset=utf-8\r\n\r\n<p>the html</p>\r\n--inner--\r\n--outer\r\n\
Content-Type: application/pdf; name=\"r.pdf\"\r\nContent-Disposition: attachment; filename*=UTF-8''%D0%BE%D1%82%D1%87%D1%91%D1%82.pdf\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--outer\r\n\
Content-Type: message/rfc822\r\n\r\nSubject: inner mail\r\nFrom: x@y.z\r\n\r\nhi\r\n--outer--\r\n";
        let out = plain(raw);
        assert!(out.contains("the plain text"), "{out}");
        assert!(!out.contains("the html"), "{out}");
        assert!(out.contains("отчёт.pdf  application/pdf  9 B"), "{out}");
        assert!(out.contains("inner mail.eml  message/rfc822"), "{out}");
    }

    #[test]
    fn all_headers_are_shown_decoded() {
        let raw = b"From: a@b.c\r\nX-Custom: =?UTF-8?Q?caf=C3=A9?=\r\nReceived: from x by y; Tue, 3 Mar 2026 13:05:00 +0000\r\nSubject: s\r\n\r\nbody\r\n";
        let out = render(
            raw,
            &Options {
                all_headers: true,
                ..Options::default()
            },
        );
        assert!(out.contains("X-Custom: café"), "{out}");
        assert!(out.contains("Received: from x by y"), "{out}");
    }

    #[test]
    fn escape_sequences_never_reach_the_terminal() {
        let raw = b"From: a@b.c\r\nSubject: \x1b[2Jevil\r\n\r\nbody \x1b]0;title\x07 text\r\n";
        let out = plain(raw);
        assert!(!out.contains('\x1b') && !out.contains('\x07'), "{out:?}");
        assert!(out.contains("evil"));
    }

    #[test]
    fn colour_only_when_asked() {
        let raw = b"From: a@b.c\r\nSubject: s\r\n\r\n> quoted\r\n";
        assert!(!plain(raw).contains('\x1b'));
        let out = render(
            raw,
            &Options {
                color: true,
                ..Options::default()
            },
        );
        assert!(out.contains(BOLD) && out.contains(DIM), "{out:?}");
    }

    #[test]
    fn wrapping_fits_the_width() {
        let long = "word ".repeat(40);
        let out = wrap(&long, 30);
        assert!(out.lines().all(|l| l.chars().count() <= 30), "{out}");
        let quoted = format!("> {}", "слово ".repeat(20));
        let out = wrap(&quoted, 30);
        assert!(out.lines().all(|l| l.starts_with("> ")), "{out}");
        let unbroken = "x".repeat(70);
        assert!(wrap(&unbroken, 30).lines().all(|l| l.chars().count() <= 30));
    }

    #[test]
    fn broken_mime_does_not_crash() {
        let cases: Vec<&[u8]> = vec![
            b"",
            b"\r\n\r\n",
            b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n--",
            b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain; charset=nonsense\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64\r\n",
            b"Subject: =?UTF-8?B?####?=\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ=\r\n=",
            b"From: <<<@@@>>>\r\nDate: 99 Foo 99999 99:99:99 +9999\r\n\r\n\xff\xfe\x00",
        ];
        for raw in cases {
            let _ = plain(raw);
            let _ = render(
                raw,
                &Options {
                    all_headers: true,
                    width: 5,
                    ..Options::default()
                },
            );
        }
    }

    /// Every message of the shared corpus (real-world and malformed mail)
    /// renders without a panic; skipped where the corpus is absent.
    #[test]
    fn corpus_renders_without_panicking() {
        let root = Path::new("/work/shared/corpora/eml");
        let Ok(dirs) = std::fs::read_dir(root) else {
            return;
        };
        let mut n = 0;
        for dir in dirs.flatten() {
            for f in std::fs::read_dir(dir.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if let Ok(raw) = std::fs::read(f.path()) {
                    let _ = plain(&raw);
                    n += 1;
                }
            }
        }
        assert!(n > 0);
    }

    #[test]
    fn file_names_are_sanitised() {
        assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_filename("..\\..\\win.ini"), "win.ini");
        assert_eq!(sanitize_filename(".bashrc"), "bashrc");
        assert_eq!(sanitize_filename("a\x1b[1mb?.txt"), "a_[1mb_.txt");
        assert_eq!(sanitize_filename("/"), "attachment");
        assert_eq!(sanitize_filename(".."), "attachment");
        let long = format!("{}.pdf", "я".repeat(300));
        let s = sanitize_filename(&long);
        assert!(s.ends_with(".pdf") && s.chars().count() == 200);
    }

    #[test]
    fn saving_attachments_stays_in_the_directory() {
        let raw = b"From: a@b.c\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n\
--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=\"../../escape.txt\"\r\n\r\none\r\n\
--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=\"escape.txt\"\r\n\r\ntwo\r\n--b--\r\n";
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let paths = save_attachments(raw, &out).unwrap();
        assert_eq!(paths.len(), 2);
        assert!(
            paths.iter().all(|p| p.parent() == Some(out.as_path())),
            "{paths:?}"
        );
        assert_eq!(std::fs::read(out.join("escape.txt")).unwrap(), b"one");
        assert_eq!(std::fs::read(out.join("escape (2).txt")).unwrap(), b"two");
        assert!(!dir.path().join("escape.txt").exists());
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(10), "10 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(50 * 1024 * 1024), "50 MiB");
    }
}
