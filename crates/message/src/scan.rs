//! Hand-written scanners over raw header sections: fast, allocation-free, panic-free.

use memchr::memchr;

/// Offset of the first byte of the body: just after the blank line ending the header
/// section (CRLF CRLF or LF LF), or `raw.len()` if there is no blank line.
///
/// A message that starts with a blank line has an empty header section and a body
/// starting right after it.
pub fn header_end(raw: &[u8]) -> usize {
    let mut pos = 0;
    loop {
        // `pos` is at the start of a line.
        match raw.get(pos..) {
            Some([b'\n', ..]) => return pos + 1,
            Some([b'\r', b'\n', ..]) => return pos + 2,
            Some(rest) if !rest.is_empty() => match memchr(b'\n', rest) {
                Some(i) => pos += i + 1,
                None => return raw.len(),
            },
            _ => return raw.len(),
        }
    }
}

/// How many header fields named `name` the top-level header section has (for
/// counting `Received:` hops, RFC 5321 §6.3).
pub fn count_headers(raw: &[u8], name: &str) -> usize {
    let name = name.as_bytes();
    if name.is_empty() {
        return 0;
    }
    let end = header_end(raw);
    let mut count = 0;
    let mut pos = 0;
    while pos < end {
        let Some(rest) = raw.get(pos..end) else { break };
        if match_name(rest, name).is_some() {
            count += 1;
        }
        match memchr(b'\n', rest) {
            Some(i) => pos += i + 1,
            None => break,
        }
    }
    count
}

/// Raw value of the FIRST header field named `name` (case-insensitive) in the top-level
/// header section, or None.
///
/// The value is everything after the colon (leading white space included) up to, not
/// including, the line ending that ends the field; folded lines are kept as they are.
/// White space between the field name and the colon (obsolete syntax) is accepted.
/// Lines without a colon are skipped. Does no full parse, so it is cheap enough for the
/// SMTP hot path ("does this message have a Message-ID / Date header?").
pub fn find_header<'a>(raw: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let name = name.as_bytes();
    if name.is_empty() {
        return None;
    }
    let mut pos = 0;
    loop {
        let rest = raw.get(pos..)?;
        match rest {
            [] | [b'\n', ..] | [b'\r', b'\n', ..] => return None,
            _ => {}
        }
        let line_len = memchr(b'\n', rest);
        if let Some(value_start) = match_name(rest, name) {
            let start = pos + value_start;
            let end = field_end(raw, pos, line_len);
            return raw.get(start..end.max(start));
        }
        pos += line_len? + 1;
    }
}

/// If `line` starts with `name`, optional WSP and a colon, returns the offset after the colon.
fn match_name(line: &[u8], name: &[u8]) -> Option<usize> {
    let head = line.get(..name.len())?;
    if !head.eq_ignore_ascii_case(name) {
        return None;
    }
    let mut i = name.len();
    while let Some(b' ' | b'\t') = line.get(i) {
        i += 1;
    }
    (line.get(i) == Some(&b':')).then_some(i + 1)
}

/// End of the field starting at `line_start` (whose first line is `first_len` bytes long
/// before its '\n'): the offset of the line ending of the last line of the field (before
/// a CR that precedes the LF), or the end of input.
fn field_end(raw: &[u8], line_start: usize, first_len: Option<usize>) -> usize {
    let mut newline = match first_len {
        Some(len) => line_start + len,
        None => return raw.len(),
    };
    // Continuation lines start with SP or HTAB.
    while let Some(b' ' | b'\t') = raw.get(newline + 1) {
        match raw.get(newline + 1..).and_then(|rest| memchr(b'\n', rest)) {
            Some(i) => newline = newline + 1 + i,
            None => return raw.len(),
        }
    }
    if newline > line_start && raw.get(newline - 1) == Some(&b'\r') {
        newline - 1
    } else {
        newline
    }
}

/// Number of lines in `body` (IMAP BODYSTRUCTURE line counts).
pub(crate) fn count_lines(body: &[u8]) -> u64 {
    // Line feeds, as Dovecot counts: a part's last line, whose CRLF belongs to
    // the next boundary (RFC 2046 §5.1.1), is not counted.
    memchr::memchr_iter(b'\n', body).count() as u64
}

/// Unfolds and trims a raw header value: drops CR and LF, converts it to a String
/// (invalid UTF-8 is replaced) and trims white space.
pub(crate) fn unfold(value: &[u8]) -> String {
    let cleaned: Vec<u8> = value
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    String::from_utf8_lossy(&cleaned).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_fields() {
        let raw = b"Received: a\r\n\tfolded Received: no\r\nreceived : b\r\nX: 1\r\n\r\nReceived: body\r\n";
        assert_eq!(count_headers(raw, "Received"), 2);
        assert_eq!(count_headers(raw, "X"), 1);
        assert_eq!(count_headers(raw, "Y"), 0);
        assert_eq!(count_headers(b"", "Received"), 0);
        assert_eq!(count_headers(b"Received: x", "Received"), 1);
    }

    #[test]
    fn header_end_variants() {
        assert_eq!(header_end(b""), 0);
        assert_eq!(header_end(b"\r\n"), 2);
        assert_eq!(header_end(b"\nbody"), 1);
        assert_eq!(header_end(b"A: b\r\n\r\nbody"), 8);
        assert_eq!(header_end(b"A: b\n\nbody"), 6);
        assert_eq!(header_end(b"A: b\r\n"), 6);
        assert_eq!(header_end(b"A: b"), 4);
        assert_eq!(header_end(b"A: b\r\n c\r\n\r\n"), 12);
        assert_eq!(header_end(b"A: b\n\r\nx"), 7);
        assert_eq!(header_end(b"A: b\r\n \r\nx"), 10);
    }

    #[test]
    fn find_header_variants() {
        let raw =
            b"Subject: hi\r\nmessage-id : <a@b>\r\nX: folded\r\n  more\r\n\r\nSubject: body\r\n";
        assert_eq!(find_header(raw, "subject"), Some(&b" hi"[..]));
        assert_eq!(find_header(raw, "Message-ID"), Some(&b" <a@b>"[..]));
        assert_eq!(find_header(raw, "x"), Some(&b" folded\r\n  more"[..]));
        assert_eq!(find_header(raw, "Date"), None);
        assert_eq!(find_header(raw, ""), None);
        assert_eq!(find_header(b"Date:", "date"), Some(&b""[..]));
        assert_eq!(find_header(b"Date:\r\n", "date"), Some(&b""[..]));
        assert_eq!(find_header(b"Date: x\n", "date"), Some(&b" x"[..]));
        assert_eq!(find_header(b"Date: x\n y", "date"), Some(&b" x\n y"[..]));
        assert_eq!(find_header(b"Dates: x\n", "date"), None);
        assert_eq!(find_header(b"junk\nDate: x\n", "date"), Some(&b" x"[..]));
        assert_eq!(find_header(b" Date: x\n", "date"), None);
        assert_eq!(find_header(b"\r\nDate: x\n", "date"), None);
    }

    #[test]
    fn lines() {
        assert_eq!(count_lines(b""), 0);
        assert_eq!(
            count_lines(b"a"),
            0,
            "a part's last line ends at the boundary"
        );
        assert_eq!(count_lines(b"a\r\n"), 1);
        assert_eq!(count_lines(b"a\r\nb"), 1);
        assert_eq!(count_lines(b"\n\n"), 2);
    }

    #[test]
    fn unfolding() {
        assert_eq!(unfold(b" a\r\n b \r\n"), "a b");
        assert_eq!(unfold(b"\r\n"), "");
    }
}
