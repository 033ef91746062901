//! Replies as the client receives them: the remote server's words (RFC 5321
//! §4.2) with their enhanced status codes (RFC 2034, RFC 3463), and the reader
//! that frames them out of the byte stream.
//!
//! The reader is written here rather than taken from smtp-proto's
//! `ResponseReceiver` because the client needs three things it does not give:
//! a per-line limit checked *before* a line is buffered, a refusal of
//! continuation lines that change the reply code (a desynchronised or hostile
//! server), and the text kept line by line for DSNs.

use std::fmt;

/// Most lines one reply may have. Real EHLO replies have a dozen or two; a
/// server that keeps sending `250-` lines is broken or hostile, and without a
/// cap it could grow our memory without bound one short line at a time.
pub const MAX_REPLY_LINES: usize = 256;

/// An RFC 3463 enhanced status code, `class.subject.detail` (`5.1.1`).
///
/// DSNs (RFC 3464 `Status:`) need one for every recipient; see
/// [`ServerReply::status`] for the fallback when the server sent none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedCode {
    /// 2 (success), 4 (persistent transient failure) or 5 (permanent failure).
    pub class: u8,
    /// The subject (RFC 3463 §3): 1 addressing, 2 mailbox, 3 mail system, …
    pub subject: u16,
    /// The detail within the subject.
    pub detail: u16,
}

impl EnhancedCode {
    /// Builds a code; used for the replies the client makes up itself.
    pub const fn new(class: u8, subject: u16, detail: u16) -> EnhancedCode {
        EnhancedCode {
            class,
            subject,
            detail,
        }
    }

    /// Parses `class.subject.detail` (class 2, 4 or 5; the others 1 to 3 digits).
    pub fn parse(s: &str) -> Option<EnhancedCode> {
        let mut parts = s.split('.');
        let (Some(c), Some(sub), Some(det), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let digits =
            |p: &str| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit());
        if c.len() != 1 || !digits(c) || !digits(sub) || !digits(det) {
            return None;
        }
        let class: u8 = c.parse().ok()?;
        if !matches!(class, 2 | 4 | 5) {
            return None;
        }
        Some(EnhancedCode {
            class,
            subject: sub.parse().ok()?,
            detail: det.parse().ok()?,
        })
    }
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// One complete reply from the remote server, or one the client made up in its
/// place (see [`ServerReply::generated`]).
///
/// This is what goes into logs and into DSNs (`Diagnostic-Code: smtp; …`), so
/// the text is kept line by line, minus the code and the enhanced status code
/// that RFC 2034 repeats on every line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReply {
    /// The three-digit reply code.
    pub code: u16,
    /// The enhanced status code from the first line, when the server sent one
    /// whose class matches the reply code.
    pub esc: Option<EnhancedCode>,
    /// The text of each line (at least one, possibly empty). Invalid UTF-8 is
    /// replaced and control characters become `?`, so the text is safe to put
    /// in a header or a log line.
    pub lines: Vec<String>,
    /// True when pochta wrote this reply itself (connection lost, TLS required
    /// but not offered, message too big for the server's SIZE, …) rather than
    /// the remote server: a DSN must not claim the remote said it.
    pub generated: bool,
}

impl ServerReply {
    /// A reply pochta makes up (see [`ServerReply::generated`]).
    pub fn local(code: u16, esc: EnhancedCode, text: impl Into<String>) -> ServerReply {
        ServerReply {
            code,
            esc: Some(esc),
            lines: vec![sanitize(text.into().as_bytes())],
            generated: true,
        }
    }

    /// 2xx: the command succeeded.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 3xx: go on (354 for DATA, 334 for AUTH).
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }

    /// 4xx: failed, try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx: failed, do not retry.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// The enhanced status code for a DSN: the server's, or `class.0.0` from
    /// the reply code when it sent none (RFC 3463 §3.1, "other undefined status").
    pub fn status(&self) -> EnhancedCode {
        self.esc.unwrap_or(EnhancedCode {
            class: u8::try_from(self.code / 100).unwrap_or(4),
            subject: 0,
            detail: 0,
        })
    }

    /// The text lines joined with spaces, for one-line logs.
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }
}

impl fmt::Display for ServerReply {
    /// `550 5.1.1 text…` on one line: the form of a DSN `Diagnostic-Code`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(esc) = self.esc {
            write!(f, " {esc}")?;
        }
        let text = self.text();
        if !text.is_empty() {
            write!(f, " {text}")?;
        }
        Ok(())
    }
}

/// Why the byte stream could not be read as replies. Both end the session:
/// after either, nothing the server says can be matched to our commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// A line (or reply) longer than the limits.
    TooLong,
    /// Not a reply line, or a continuation with another code.
    Garbage(String),
}

/// Frames replies out of received bytes, one line at a time.
#[derive(Debug, Default)]
pub(crate) struct ReplyReader {
    code: Option<u16>,
    esc: Option<EnhancedCode>,
    lines: Vec<String>,
}

impl ReplyReader {
    /// Reads complete lines from `input` until one reply is complete. Returns
    /// how many bytes were consumed (whole lines only; a partial line stays for
    /// the next call) and the reply, if one was completed.
    ///
    /// `max_line` bounds a line including its CRLF; it is checked before the
    /// line is complete, so a server cannot make us buffer an endless line.
    pub(crate) fn read(
        &mut self,
        input: &[u8],
        max_line: usize,
    ) -> (usize, Result<Option<ServerReply>, ReadError>) {
        let mut used = 0;
        loop {
            let rest = input.get(used..).unwrap_or_default();
            let Some(lf) = memchr::memchr(b'\n', rest) else {
                if rest.len() >= max_line {
                    return (used, Err(ReadError::TooLong));
                }
                return (used, Ok(None));
            };
            if lf + 1 > max_line {
                return (used, Err(ReadError::TooLong));
            }
            let line = rest.get(..lf).unwrap_or_default();
            used += lf + 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            match self.line(line) {
                Ok(Some(reply)) => return (used, Ok(Some(reply))),
                Ok(None) => {}
                Err(e) => return (used, Err(e)),
            }
        }
    }

    /// Takes one line without its line end.
    fn line(&mut self, line: &[u8]) -> Result<Option<ServerReply>, ReadError> {
        let garbage = || ReadError::Garbage(sanitize(line.get(..80).unwrap_or(line)));
        let (code, sep, text) = match line {
            [a, b, c, rest @ ..]
                if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() =>
            {
                let code =
                    u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
                match rest {
                    [] => (code, b' ', &[][..]),
                    [sep @ (b' ' | b'-'), text @ ..] => (code, *sep, text),
                    _ => return Err(garbage()),
                }
            }
            _ => return Err(garbage()),
        };
        // RFC 5321 §4.2: the first digit is 2 to 5 (1yz is unused in SMTP).
        if !(200..600).contains(&code) {
            return Err(garbage());
        }
        if self.code.is_some_and(|c| c != code) {
            // RFC 5321 §4.2.1: every line of a multi-line reply has the same code.
            return Err(garbage());
        }
        if self.lines.len() >= MAX_REPLY_LINES {
            return Err(ReadError::TooLong);
        }
        let mut text = sanitize(text);
        // RFC 2034 §4: the enhanced code starts the text of every line.
        if let Some((esc, len)) = leading_esc(&text, code) {
            if self.lines.is_empty() {
                self.esc = Some(esc);
            }
            if self.esc == Some(esc) {
                text.drain(..len);
            }
        }
        self.code = Some(code);
        self.lines.push(text);
        if sep == b'-' {
            return Ok(None);
        }
        let reply = ServerReply {
            code,
            esc: self.esc.take(),
            lines: std::mem::take(&mut self.lines),
            generated: false,
        };
        self.code = None;
        Ok(Some(reply))
    }
}

/// An enhanced status code at the start of `text` whose class matches `code`,
/// and how many bytes to strip (the code and one following space).
fn leading_esc(text: &str, code: u16) -> Option<(EnhancedCode, usize)> {
    let end = text.find(' ').unwrap_or(text.len());
    let esc = EnhancedCode::parse(text.get(..end)?)?;
    if u16::from(esc.class) != code / 100 {
        return None;
    }
    Some((esc, (end + 1).min(text.len())))
}

/// Reply text made safe for logs and headers: lossy UTF-8, control characters
/// (tab aside) replaced, trailing white space removed.
fn sanitize(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
        .collect();
    clean.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8]) -> Vec<Result<ServerReply, ReadError>> {
        let mut r = ReplyReader::default();
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            let (used, res) = r.read(&input[pos..], 100);
            pos += used;
            match res {
                Ok(Some(reply)) => out.push(Ok(reply)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e));
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn single_multi_and_esc() {
        let got = read_all(b"220 mx ESMTP\r\n250-2.1.5 a\r\n250 2.1.5 b\r\n550 5.1.1\r\n250\r\n");
        let replies: Vec<ServerReply> = got.into_iter().map(|r| r.expect("reply")).collect();
        assert_eq!(replies[0].code, 220);
        assert_eq!(replies[0].esc, None);
        assert_eq!(replies[0].lines, ["mx ESMTP"]);
        assert_eq!(replies[1].esc, Some(EnhancedCode::new(2, 1, 5)));
        assert_eq!(replies[1].lines, ["a", "b"]);
        assert_eq!(replies[2].esc, Some(EnhancedCode::new(5, 1, 1)));
        assert_eq!(replies[2].lines, [""]);
        assert_eq!(replies[3].lines, [""]);
        assert_eq!(replies[2].to_string(), "550 5.1.1");
    }

    #[test]
    fn esc_must_match_the_class() {
        let got = read_all(b"250 5.1.1 odd\r\n250 1.2.3.4 is you\r\n");
        let r0 = got[0].clone().expect("reply");
        assert_eq!(r0.esc, None);
        assert_eq!(r0.lines, ["5.1.1 odd"]);
        let r1 = got[1].clone().expect("reply");
        assert_eq!(r1.esc, None);
        assert_eq!(r1.status(), EnhancedCode::new(2, 0, 0));
    }

    #[test]
    fn garbage_and_limits() {
        assert!(matches!(
            read_all(b"hello\r\n")[0],
            Err(ReadError::Garbage(_))
        ));
        assert!(matches!(
            read_all(b"250x\r\n")[0],
            Err(ReadError::Garbage(_))
        ));
        assert!(matches!(
            read_all(b"150 x\r\n")[0],
            Err(ReadError::Garbage(_))
        ));
        assert!(matches!(
            read_all(b"250-a\r\n251 b\r\n")[0],
            Err(ReadError::Garbage(_))
        ));
        let long = [b'2'; 150];
        assert_eq!(read_all(&long)[0], Err(ReadError::TooLong));
        let mut many = Vec::new();
        for _ in 0..=MAX_REPLY_LINES {
            many.extend_from_slice(b"250-x\r\n");
        }
        assert_eq!(read_all(&many)[0], Err(ReadError::TooLong));
    }

    #[test]
    fn control_characters_are_neutralised() {
        let got = read_all(b"550 5.7.1 a\x1bb\xff\r\n");
        let r = got[0].clone().expect("reply");
        assert_eq!(r.lines, ["a?b\u{fffd}"]);
    }
}
