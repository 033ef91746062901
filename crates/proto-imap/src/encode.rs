//! Wire forms of IMAP data (RFC 9051 §4): atoms, quoted strings, literals,
//! NIL, flag lists, mailbox names (modified UTF-7 for IMAP4rev1 clients,
//! RFC 3501 §5.1.3), and status responses.

/// Strings longer than this are sent as literals even when they could be quoted.
pub const MAX_QUOTED: usize = 1024;

/// Whether the client accepts UTF-8 in quoted strings and mailbox names
/// (IMAP4rev2 or `ENABLE UTF8=ACCEPT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Charset {
    /// IMAP4rev1 without UTF8=ACCEPT: quoted strings are 7-bit; names are mUTF-7.
    #[default]
    Ascii,
    /// UTF-8 allowed.
    Utf8,
}

/// True for `ATOM-CHAR` (RFC 9051 §9).
pub fn is_atom_char(b: u8) -> bool {
    b > 0x20 && b < 0x7f && !b"(){ %*\"\\]".contains(&b)
}

/// True for `ASTRING-CHAR`: atom characters and `]`.
pub fn is_astring_char(b: u8) -> bool {
    is_atom_char(b) || b == b']'
}

fn quotable(s: &[u8], charset: Charset) -> bool {
    s.len() <= MAX_QUOTED
        && s.iter().all(|&b| match b {
            0 | b'\r' | b'\n' => false,
            0x80.. => charset == Charset::Utf8,
            _ => true,
        })
        && (charset == Charset::Ascii || std::str::from_utf8(s).is_ok())
}

/// Writes `s` as a quoted string if it can be, else as a literal.
pub fn string(out: &mut Vec<u8>, s: &[u8], charset: Charset) {
    if quotable(s, charset) {
        quoted(out, s);
    } else {
        literal(out, s);
    }
}

/// Writes a quoted string (the caller checked it is quotable).
pub fn quoted(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &b in s {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// Writes a synchronizing literal as servers send them: `{n}CRLF` then the bytes.
pub fn literal(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
    out.extend_from_slice(s);
}

/// Writes a literal8 (`~{n}`, RFC 3516) for BINARY data that may contain NUL.
pub fn literal8(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(format!("~{{{}}}\r\n", s.len()).as_bytes());
    out.extend_from_slice(s);
}

/// Writes an `nstring`: NIL or a string.
pub fn nstring(out: &mut Vec<u8>, s: Option<&[u8]>, charset: Charset) {
    match s {
        Some(s) => string(out, s, charset),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// Writes an `astring`: an atom when possible (and not `NIL`), else a string.
pub fn astring(out: &mut Vec<u8>, s: &[u8], charset: Charset) {
    if !s.is_empty() && s.iter().all(|&b| is_astring_char(b)) && !s.eq_ignore_ascii_case(b"NIL") {
        out.extend_from_slice(s);
    } else {
        string(out, s, charset);
    }
}

/// Writes a mailbox name: UTF-8 for UTF-8 clients, modified UTF-7 otherwise,
/// as an astring (`INBOX` stays an atom).
pub fn mailbox(out: &mut Vec<u8>, name: &str, charset: Charset) {
    match charset {
        Charset::Utf8 => astring(out, name.as_bytes(), charset),
        Charset::Ascii => astring(out, mutf7_encode(name).as_bytes(), charset),
    }
}

/// Writes a flag list: system flags (in IMAP spelling) then keywords.
pub fn flag_list<'a>(
    out: &mut Vec<u8>,
    system: &[&'a str],
    keywords: impl IntoIterator<Item = &'a str>,
) {
    out.push(b'(');
    let mut first = true;
    for f in system.iter().copied().chain(keywords) {
        if !first {
            out.push(b' ');
        }
        first = false;
        out.extend_from_slice(f.as_bytes());
    }
    out.push(b')');
}

/// Status of a response (RFC 9051 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `OK`.
    Ok,
    /// `NO`.
    No,
    /// `BAD`.
    Bad,
    /// `BYE` (untagged only).
    Bye,
    /// `PREAUTH` (untagged greeting only).
    PreAuth,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::No => "NO",
            Status::Bad => "BAD",
            Status::Bye => "BYE",
            Status::PreAuth => "PREAUTH",
        }
    }
}

/// Writes `tag STATUS [code] text` (tag `*` for untagged). `code` is written
/// inside brackets; `text` must not contain CR or LF (they become spaces).
pub fn status(out: &mut Vec<u8>, tag: &str, status: Status, code: Option<&str>, text: &str) {
    out.extend_from_slice(tag.as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.word().as_bytes());
    if let Some(code) = code {
        out.extend_from_slice(b" [");
        out.extend_from_slice(code.as_bytes());
        out.push(b']');
    }
    out.push(b' ');
    let text = if text.is_empty() { "done" } else { text };
    for b in text.bytes() {
        out.push(if b == b'\r' || b == b'\n' { b' ' } else { b });
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes a continuation request `+ text`.
pub fn continuation(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"+ ");
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Writes a sequence set compactly from sorted, deduplicated numbers
/// (`1:3,7,9:10`), as ESEARCH ALL, VANISHED and COPYUID want.
pub fn sequence_set(out: &mut Vec<u8>, sorted: &[u32]) {
    let mut i = 0;
    let mut first = true;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = sorted[i];
        }
        if !first {
            out.push(b',');
        }
        first = false;
        if start == end {
            out.extend_from_slice(start.to_string().as_bytes());
        } else {
            out.extend_from_slice(format!("{start}:{end}").as_bytes());
        }
        i += 1;
    }
}

/// Writes a sequence set from sorted, disjoint inclusive ranges (`1:3,7`), for
/// sets too large to list one number at a time.
pub fn ranges(out: &mut Vec<u8>, sorted: &[(u32, u32)]) {
    for (i, &(start, end)) in sorted.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if start == end {
            out.extend_from_slice(start.to_string().as_bytes());
        } else {
            out.extend_from_slice(format!("{start}:{end}").as_bytes());
        }
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Encodes a mailbox name in modified UTF-7 (RFC 3501 §5.1.3).
pub fn mutf7_encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |out: &mut String, pending: &mut Vec<u16>| {
        if pending.is_empty() {
            return;
        }
        out.push('&');
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            let chars = chunk.len() + 1;
            for k in 0..chars {
                out.push(B64[((n >> (18 - 6 * k)) & 63) as usize] as char);
            }
        }
        out.push('-');
        pending.clear();
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut out, &mut pending);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut out, &mut pending);
    out
}

/// Decodes a modified UTF-7 mailbox name; `None` if it is not valid mUTF-7.
pub fn mutf7_decode(name: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while i < name.len() {
        let b = name[i];
        if b == b'&' {
            let end = i + 1 + name[i + 1..].iter().position(|&c| c == b'-')?;
            if end == i + 1 {
                out.push('&');
            } else {
                let mut bits: u32 = 0;
                let mut nbits = 0;
                let mut units: Vec<u16> = Vec::new();
                let mut bytes: Vec<u8> = Vec::new();
                for &c in &name[i + 1..end] {
                    let v = B64.iter().position(|&x| x == c)? as u32;
                    bits = (bits << 6) | v;
                    nbits += 6;
                    if nbits >= 8 {
                        nbits -= 8;
                        bytes.push((bits >> nbits) as u8);
                        bits &= (1 << nbits) - 1;
                    }
                }
                if bits != 0 || !bytes.len().is_multiple_of(2) {
                    return None;
                }
                for pair in bytes.chunks(2) {
                    units.push(u16::from_be_bytes([pair[0], pair[1]]));
                }
                let decoded = String::from_utf16(&units).ok()?;
                // Printable ASCII must not be base64-encoded (RFC 3501 §5.1.3).
                if decoded.chars().any(|c| (' '..='~').contains(&c)) {
                    return None;
                }
                out.push_str(&decoded);
            }
            i = end + 1;
        } else if (0x20..0x7f).contains(&b) {
            out.push(b as char);
            i += 1;
        } else {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_quote_or_literal() {
        assert_eq!(
            w(|o| string(o, b"hello world", Charset::Ascii)),
            "\"hello world\""
        );
        assert_eq!(
            w(|o| string(o, b"a\"b\\c", Charset::Ascii)),
            "\"a\\\"b\\\\c\""
        );
        assert_eq!(
            w(|o| string(o, b"two\r\nlines", Charset::Ascii)),
            "{10}\r\ntwo\r\nlines"
        );
        assert_eq!(
            w(|o| string(o, "Пётр".as_bytes(), Charset::Ascii)),
            "{8}\r\nПётр"
        );
        assert_eq!(
            w(|o| string(o, "Пётр".as_bytes(), Charset::Utf8)),
            "\"Пётр\""
        );
        assert_eq!(w(|o| nstring(o, None, Charset::Ascii)), "NIL");
        assert_eq!(w(|o| astring(o, b"INBOX", Charset::Ascii)), "INBOX");
        assert_eq!(w(|o| astring(o, b"nil", Charset::Ascii)), "\"nil\"");
        assert_eq!(w(|o| astring(o, b"", Charset::Ascii)), "\"\"");
        assert_eq!(w(|o| astring(o, b"a b", Charset::Ascii)), "\"a b\"");
    }

    #[test]
    fn mutf7_round_trips() {
        for (utf8, mutf7) in [
            ("INBOX", "INBOX"),
            ("Entwürfe", "Entw&APw-rfe"),
            ("Входящие", "&BBIERQQ+BDQETwRJBDgENQ-"),
            ("A&B", "A&-B"),
            ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
            ("😀", "&2D3eAA-"),
        ] {
            assert_eq!(mutf7_encode(utf8), mutf7, "{utf8}");
            assert_eq!(
                mutf7_decode(mutf7.as_bytes()).as_deref(),
                Some(utf8),
                "{mutf7}"
            );
        }
        assert_eq!(mutf7_decode(b"&Jjo!"), None);
        assert_eq!(mutf7_decode(b"&AGE-"), None, "encoded ASCII is not allowed");
        assert_eq!(mutf7_decode("ü".as_bytes()), None);
    }

    #[test]
    fn status_lines_and_sets() {
        assert_eq!(
            w(|o| status(o, "a1", Status::Ok, Some("READ-WRITE"), "SELECT completed")),
            "a1 OK [READ-WRITE] SELECT completed\r\n"
        );
        assert_eq!(
            w(|o| status(o, "*", Status::Bye, None, "bye\r\nx")),
            "* BYE bye  x\r\n"
        );
        assert_eq!(w(|o| sequence_set(o, &[1, 2, 3, 7, 9, 10])), "1:3,7,9:10");
        assert_eq!(
            w(|o| ranges(o, &[(1, 3), (7, 7), (9, u32::MAX)])),
            "1:3,7,9:4294967295"
        );
        assert_eq!(w(|o| ranges(o, &[])), "");
        assert_eq!(
            w(|o| flag_list(o, &["\\Seen"], ["$Forwarded"])),
            "(\\Seen $Forwarded)"
        );
    }
}
