//! SMTP replies (RFC 5321 §4.2) with enhanced status codes (RFC 3463).

use std::fmt::Write;

/// One SMTP reply: a code, an optional enhanced status code, and text lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code.
    pub code: u16,
    /// The RFC 3463 enhanced status code (`"2.1.0"`), sent before the text.
    pub esc: Option<&'static str>,
    /// Text lines; a reply has at least one (possibly empty).
    pub lines: Vec<String>,
}

impl Reply {
    /// A single-line reply with an enhanced status code.
    pub fn new(code: u16, esc: &'static str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            esc: Some(esc),
            lines: vec![text.into()],
        }
    }

    /// A reply without an enhanced status code (220 greeting, 354, 334).
    pub fn plain(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            esc: None,
            lines: vec![text.into()],
        }
    }

    /// True for 4xx and 5xx replies.
    pub fn is_error(&self) -> bool {
        self.code >= 400
    }

    /// Appends the wire form to `out`: `code-text` continuation lines, `code text` last.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut s = String::new();
        let n = self.lines.len().max(1);
        for i in 0..n {
            let text = self.lines.get(i).map(String::as_str).unwrap_or("");
            // Reply text must not carry line breaks of its own.
            let text = text.replace(['\r', '\n'], " ");
            let sep = if i + 1 == n { ' ' } else { '-' };
            let _ = write!(s, "{}{}", self.code, sep);
            if let Some(esc) = self.esc {
                let _ = write!(s, "{esc} ");
            }
            s.push_str(&text);
            s.push_str("\r\n");
        }
        out.extend_from_slice(s.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_multi_line() {
        let mut out = Vec::new();
        Reply::new(250, "2.1.0", "Ok").write_to(&mut out);
        Reply {
            code: 214,
            esc: None,
            lines: vec!["a".into(), "b".into()],
        }
        .write_to(&mut out);
        Reply::plain(334, "").write_to(&mut out);
        assert_eq!(out, b"250 2.1.0 Ok\r\n214-a\r\n214 b\r\n334 \r\n");
    }

    #[test]
    fn text_cannot_inject_lines() {
        let mut out = Vec::new();
        Reply::new(550, "5.1.1", "a\r\n250 ok").write_to(&mut out);
        assert_eq!(out, b"550 5.1.1 a  250 ok\r\n");
    }
}
