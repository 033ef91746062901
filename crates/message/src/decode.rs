//! Undoing content transfer encodings (RFC 2045 §6.7, §6.8), leniently: mail in the
//! wild has stray characters in base64 and broken escapes in quoted-printable, and
//! a reader should show what can be shown rather than nothing. Written here, once,
//! because IMAP (BINARY, SEARCH BODY), JMAP (bodyValues, blob parts) and the
//! delivery-time preview all need the same decoding of one stored part.

/// Decodes base64 leniently: characters outside the alphabet (line breaks,
/// stray spaces) are skipped and decoding stops at the first `=`.
pub fn base64(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in input {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Decodes quoted-printable (RFC 2045 §6.7): `=XX` escapes, soft line breaks
/// (`=` at the end of a line) removed, white space at the end of a line
/// dropped; anything malformed is kept as it is.
pub fn quoted_printable(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        match b {
            b'=' => {
                let (h, l) = (input.get(i + 1).copied(), input.get(i + 2).copied());
                match (h, l) {
                    (Some(b'\r'), Some(b'\n')) => {
                        i += 3;
                        continue;
                    }
                    (Some(b'\n'), _) => {
                        i += 2;
                        continue;
                    }
                    (Some(h), Some(l)) => {
                        if let (Some(h), Some(l)) = (hex_value(h), hex_value(l)) {
                            out.push((h << 4) | l);
                            i += 3;
                            continue;
                        }
                    }
                    _ => {}
                }
                // "=" followed only by white space up to the line end is also a
                // soft line break (the white space being transport padding).
                let mut j = i + 1;
                while matches!(input.get(j), Some(b' ' | b'\t')) {
                    j += 1;
                }
                match (input.get(j), input.get(j + 1)) {
                    (Some(b'\r'), Some(b'\n')) => {
                        i = j + 2;
                        continue;
                    }
                    (Some(b'\n'), _) | (None, _) => {
                        i = j + usize::from(input.get(j).is_some());
                        continue;
                    }
                    _ => {}
                }
                out.push(b);
                i += 1;
            }
            b' ' | b'\t' => {
                // Trailing white space on a line is padding (RFC 2045 rule 3).
                let mut j = i;
                while matches!(input.get(j), Some(b' ' | b'\t')) {
                    j += 1;
                }
                let at_line_end = matches!(
                    (input.get(j), input.get(j + 1)),
                    (Some(b'\r'), Some(b'\n')) | (Some(b'\n'), _) | (None, _)
                );
                if !at_line_end {
                    out.extend_from_slice(input.get(i..j).unwrap_or_default());
                }
                i = j;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_skips_noise_and_stops_at_padding() {
        assert_eq!(base64(b"aGVs\r\nbG8="), b"hello");
        assert_eq!(base64(b"aGVsbG8"), b"hello");
        assert_eq!(base64(b"aG Vs*bG8=\r\nZZZZ"), b"hello");
        assert_eq!(base64(b""), b"");
    }

    #[test]
    fn quoted_printable_escapes_soft_breaks_and_padding() {
        assert_eq!(
            quoted_printable(b"caf=C3=A9 =\r\nx=\ny =ZZ="),
            "café xy =ZZ".as_bytes()
        );
        assert_eq!(quoted_printable(b"a  \r\nb\t\nc =  \r\nd"), b"a\r\nb\nc d");
        assert_eq!(quoted_printable(b"x = y"), b"x = y");
        assert_eq!(quoted_printable(b"=4"), b"=4");
    }
}
