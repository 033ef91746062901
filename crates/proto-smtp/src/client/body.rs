//! The message on the wire: line ends made canonical, dot-stuffing for DATA
//! (RFC 5321 §4.5.2), and the xtext encodings of DSN parameters (RFC 3461 §4,
//! RFC 6533 §3).

use std::sync::Arc;

/// How many octets the body occupies on the wire before dot-stuffing: the
/// value of `SIZE=` (RFC 1870 §3) and exactly the length of a `BDAT … LAST`
/// chunk. Every bare CR or LF counts as a CRLF, and a body that does not end
/// with a line end gets one.
pub(crate) fn wire_len(body: &[u8]) -> u64 {
    let mut len: u64 = 0;
    let mut pos = 0;
    let mut line_start = true;
    while let Some(rest) = body.get(pos..).filter(|r| !r.is_empty()) {
        match memchr::memchr2(b'\r', b'\n', rest) {
            Some(i) => {
                len += i as u64 + 2;
                let crlf = rest.get(i..i + 2) == Some(b"\r\n");
                pos += i + if crlf { 2 } else { 1 };
                line_start = true;
            }
            None => {
                len += rest.len() as u64;
                pos = body.len();
                line_start = false;
            }
        }
    }
    if !line_start {
        len += 2;
    }
    len
}

/// Writes a body into the output a block at a time, so a large message never
/// exists twice in memory and the driver's data-block timeout (RFC 5321
/// §4.5.3.2.5) applies to each block.
///
/// Line ends are made canonical on the way: a bare CR or LF becomes CRLF. The
/// body is meant to be canonical already; doing it here anyway means no body
/// can carry a `<LF>.<LF>`-style end-of-data that a lenient server would take
/// for the real one (SMTP smuggling). With `stuff`, a line starting with `.`
/// gets a second one and the terminating `.` CRLF follows.
#[derive(Debug)]
pub(crate) struct BodyEncoder {
    body: Arc<Vec<u8>>,
    pos: usize,
    stuff: bool,
    line_start: bool,
}

impl BodyEncoder {
    pub(crate) fn new(body: Arc<Vec<u8>>, stuff: bool) -> BodyEncoder {
        BodyEncoder {
            body,
            pos: 0,
            stuff,
            line_start: true,
        }
    }

    /// Appends at least one and about `block` octets; returns true when the
    /// whole body (and the terminator, for DATA) has been written.
    pub(crate) fn fill(&mut self, out: &mut Vec<u8>, block: usize) -> bool {
        let start = out.len();
        let block = block.max(1);
        loop {
            let written = out.len() - start;
            if written >= block {
                return false;
            }
            let body = self.body.as_slice();
            let Some(rest) = body.get(self.pos..).filter(|r| !r.is_empty()) else {
                if !self.line_start {
                    out.extend_from_slice(b"\r\n");
                    self.line_start = true;
                }
                if self.stuff {
                    out.extend_from_slice(b".\r\n");
                }
                return true;
            };
            if self.line_start {
                self.line_start = false;
                if self.stuff && rest.first() == Some(&b'.') {
                    out.push(b'.');
                }
            }
            let budget = block - written;
            match memchr::memchr2(b'\r', b'\n', rest) {
                Some(0) => {
                    let crlf = rest.get(..2) == Some(b"\r\n");
                    self.pos += if crlf { 2 } else { 1 };
                    out.extend_from_slice(b"\r\n");
                    self.line_start = true;
                }
                Some(i) => {
                    let n = i.min(budget);
                    out.extend_from_slice(rest.get(..n).unwrap_or_default());
                    self.pos += n;
                }
                None => {
                    let n = rest.len().min(budget);
                    out.extend_from_slice(rest.get(..n).unwrap_or_default());
                    self.pos += n;
                }
            }
        }
    }
}

/// RFC 3461 §4: printable ASCII except `+` and `=` as is, every other octet
/// as `+HH`. Used for ENVID and for ASCII ORCPT addresses.
pub(crate) fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// The value of `ORCPT=` for an original recipient address: `rfc822;` with
/// xtext for an ASCII address (RFC 3461 §4.2), `utf-8;` with the RFC 6533 §3
/// encoding otherwise — raw UTF-8 allowed when the transaction uses SMTPUTF8
/// (utf-8-addr-unitext), `\x{HEX}` escapes when it does not (utf-8-addr-xtext).
pub(crate) fn orcpt(address: &str, smtputf8: bool) -> String {
    if address.is_ascii() {
        return format!("rfc822;{}", xtext(address));
    }
    let mut out = String::from("utf-8;");
    for c in address.chars() {
        // QCHAR: printable ASCII except "+", "=" and "\".
        let qchar = c.is_ascii_graphic() && !matches!(c, '+' | '=' | '\\');
        if qchar || (smtputf8 && !c.is_ascii()) {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{{{:02X}}}", u32::from(c)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(body: &[u8], stuff: bool, block: usize) -> Vec<u8> {
        let mut enc = BodyEncoder::new(Arc::new(body.to_vec()), stuff);
        let mut out = Vec::new();
        let mut rounds = 0;
        while !enc.fill(&mut out, block) {
            rounds += 1;
            assert!(rounds < 100_000, "encoder makes no progress");
        }
        out
    }

    #[test]
    fn stuffing_and_terminator() {
        assert_eq!(encode(b"", true, 64), b".\r\n");
        assert_eq!(encode(b"a", true, 64), b"a\r\n.\r\n");
        assert_eq!(
            encode(b".\r\n..x\r\nmid.dle\r\n.", true, 64),
            b"..\r\n...x\r\nmid.dle\r\n..\r\n.\r\n"
        );
        assert_eq!(encode(b".\r\n..x\r\n", false, 64), b".\r\n..x\r\n");
    }

    #[test]
    fn bare_line_ends_become_crlf() {
        assert_eq!(
            encode(b"a\n.\nb\r.\rc\r", true, 64),
            b"a\r\n..\r\nb\r\n..\r\nc\r\n.\r\n"
        );
        assert_eq!(encode(b"a\n.\n", false, 64), b"a\r\n.\r\n");
    }

    #[test]
    fn wire_len_matches_the_unstuffed_encoding_for_any_block_size() {
        // A small deterministic generator over the bytes that matter.
        let alphabet = b".\r\na ";
        let mut seed: u32 = 7;
        for _ in 0..2000 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let len = (seed >> 16) % 12;
            let mut body = Vec::new();
            for _ in 0..len {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                body.push(alphabet[((seed >> 16) as usize) % alphabet.len()]);
            }
            let whole = encode(&body, false, 1 << 20);
            assert_eq!(whole.len() as u64, wire_len(&body), "{body:?}");
            for block in [1, 2, 3, 5] {
                assert_eq!(encode(&body, false, block), whole);
                assert_eq!(encode(&body, true, block), encode(&body, true, 1 << 20));
            }
            // Stuffed output never contains an early terminator.
            let stuffed = encode(&body, true, 64);
            let early = stuffed
                .windows(5)
                .position(|w| w == b"\r\n.\r\n")
                .map(|p| p + 5);
            assert!(
                early.is_none() || early == Some(stuffed.len()),
                "{body:?} -> {stuffed:?}"
            );
            assert!(!stuffed.starts_with(b".\r\n") || stuffed.len() == 3);
        }
    }

    #[test]
    fn xtext_and_orcpt() {
        assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
        assert_eq!(orcpt("Bob@example.com", false), "rfc822;Bob@example.com");
        assert_eq!(orcpt("a+b@example.com", false), "rfc822;a+2Bb@example.com");
        assert_eq!(orcpt("пётр@пример.рф", true), "utf-8;пётр@пример.рф");
        assert_eq!(orcpt("é+@x", false), "utf-8;\\x{E9}\\x{2B}@x");
    }

    /// ENVID and ORCPT values come decoded from clients (`+0D+0A` is a CR LF
    /// after xtext decoding) and are stored as such: on the way out they
    /// must never break the command line.
    #[test]
    fn dsn_parameters_cannot_carry_a_command() {
        let evil = "a\r\nRCPT TO:<evil@remote.example> \n";
        for out in [
            xtext(evil),
            orcpt(evil, false),
            orcpt(&format!("é{evil}"), false),
            orcpt(&format!("é{evil}"), true),
        ] {
            assert!(!out.contains(['\r', '\n', ' ']), "{out:?}");
        }
    }
}
