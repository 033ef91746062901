//! Receiving a message body: DATA (dot-terminated, RFC 5321 §4.1.4) and BDAT
//! chunks (RFC 3030).
//!
//! Written by hand rather than taken from smtp-proto because the receiver must
//! enforce three things while streaming, before anything is buffered:
//! * the size limit (content past it is discarded, not stored);
//! * the line-length limit;
//! * SMTP smuggling defence: only `<CRLF>.<CRLF>` ends DATA, and a bare CR or LF
//!   anywhere makes the message refused, so `\n.\n`, `\r.\r` or `\n.\r\n` can
//!   neither end a message nor smuggle a second one past another server.

use memchr::memchr2;

/// Why a received body cannot be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BodyFaults {
    /// The body grew past the size limit (the rest was discarded).
    pub too_big: bool,
    /// A CR not followed by LF, or an LF not preceded by CR, was seen.
    pub bare_newline: bool,
    /// A line was longer than the line limit.
    pub long_line: bool,
}

impl BodyFaults {
    /// True when nothing is wrong.
    pub fn is_clean(&self) -> bool {
        !(self.too_big || self.bare_newline || self.long_line)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pos {
    /// At the start of a line (after CRLF, or at the start of the body).
    LineStart,
    /// A `.` at the start of a line.
    Dot,
    /// `.` CR at the start of a line: LF next ends the body.
    DotCr,
    /// Inside a line.
    InLine,
    /// A CR inside a line: LF next ends the line.
    Cr,
}

/// Incremental receiver of a DATA body.
#[derive(Debug)]
pub struct DataReceiver {
    pos: Pos,
    line_len: usize,
    max_size: usize,
    max_line: usize,
    /// The unstuffed body received so far (up to `max_size`).
    pub body: Vec<u8>,
    /// What went wrong so far.
    pub faults: BodyFaults,
}

impl DataReceiver {
    /// A receiver that keeps at most `max_size` octets and flags lines over `max_line`
    /// octets (including CRLF).
    pub fn new(max_size: usize, max_line: usize) -> DataReceiver {
        DataReceiver {
            pos: Pos::LineStart,
            line_len: 0,
            max_size,
            max_line,
            body: Vec::new(),
            faults: BodyFaults::default(),
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.faults.too_big {
            return;
        }
        if self.body.len() + bytes.len() > self.max_size {
            self.faults.too_big = true;
            self.body = Vec::new();
            return;
        }
        self.body.extend_from_slice(bytes);
    }

    fn count(&mut self, n: usize) {
        self.line_len += n;
        if self.max_line > 0 && self.line_len > self.max_line {
            self.faults.long_line = true;
        }
    }

    /// Consumes input; returns how many bytes were used and whether the end
    /// marker was seen (the bytes after it belong to the next command).
    pub fn ingest(&mut self, input: &[u8]) -> (usize, bool) {
        let mut i = 0;
        while i < input.len() {
            match self.pos {
                Pos::LineStart => {
                    self.line_len = 0;
                    if input[i] == b'.' {
                        self.count(1);
                        self.pos = Pos::Dot;
                        i += 1;
                    } else {
                        self.pos = Pos::InLine;
                    }
                }
                Pos::Dot => {
                    if input[i] == b'\r' {
                        self.count(1);
                        self.pos = Pos::DotCr;
                        i += 1;
                    } else {
                        // Transparency (RFC 5321 §4.5.2): drop the leading dot.
                        self.pos = Pos::InLine;
                    }
                }
                Pos::DotCr => {
                    if input[i] == b'\n' {
                        return (i + 1, true);
                    }
                    // ".\r" followed by something else: a bare CR.
                    self.faults.bare_newline = true;
                    self.push(b"\r");
                    self.pos = Pos::InLine;
                }
                Pos::InLine => {
                    let rest = &input[i..];
                    match memchr2(b'\r', b'\n', rest) {
                        None => {
                            self.push(rest);
                            self.count(rest.len());
                            i = input.len();
                        }
                        Some(k) => {
                            self.push(&rest[..k]);
                            self.count(k + 1);
                            if rest[k] == b'\n' {
                                // LF without CR: refused, and never a line start.
                                self.faults.bare_newline = true;
                                self.push(b"\n");
                            } else {
                                self.pos = Pos::Cr;
                            }
                            i += k + 1;
                        }
                    }
                }
                Pos::Cr => {
                    if input[i] == b'\n' {
                        self.count(1);
                        self.push(b"\r\n");
                        self.pos = Pos::LineStart;
                        i += 1;
                    } else {
                        self.faults.bare_newline = true;
                        self.push(b"\r");
                        self.pos = Pos::InLine;
                    }
                }
            }
        }
        (i, false)
    }
}

/// Incremental receiver of BDAT chunks for one message.
///
/// BDAT content is counted, not delimited, so there is nothing to smuggle; bare
/// LFs are turned into CRLF so that what is stored is canonical (RFC 5322 §2.3)
/// and sizes reported by IMAP and POP3 match what they send.
#[derive(Debug)]
pub struct BdatReceiver {
    max_size: usize,
    last_was_cr: bool,
    /// The message so far (up to `max_size`).
    pub body: Vec<u8>,
    /// Set when the message grew past the size limit.
    pub too_big: bool,
}

impl BdatReceiver {
    /// A receiver keeping at most `max_size` octets.
    pub fn new(max_size: usize) -> BdatReceiver {
        BdatReceiver {
            max_size,
            last_was_cr: false,
            body: Vec::new(),
            too_big: false,
        }
    }

    /// Marks the message too big without reading more into it (a chunk announced
    /// past the limit is consumed and discarded).
    pub fn reject_size(&mut self) {
        self.too_big = true;
        self.body = Vec::new();
    }

    /// Adds chunk bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.too_big {
            return;
        }
        let mut start = 0;
        for (k, &b) in bytes.iter().enumerate() {
            if b == b'\n' && !self.last_was_cr_at(bytes, k) {
                self.extend(&bytes[start..k]);
                self.extend(b"\r\n");
                start = k + 1;
            }
        }
        self.extend(&bytes[start..]);
        if let Some(&b) = bytes.last() {
            self.last_was_cr = b == b'\r';
        }
    }

    fn last_was_cr_at(&self, bytes: &[u8], k: usize) -> bool {
        if k == 0 {
            self.last_was_cr
        } else {
            bytes[k - 1] == b'\r'
        }
    }

    fn extend(&mut self, bytes: &[u8]) {
        if self.too_big {
            return;
        }
        if self.body.len() + bytes.len() > self.max_size {
            self.reject_size();
            return;
        }
        self.body.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(chunks: &[&[u8]]) -> (DataReceiver, Option<Vec<u8>>) {
        let mut r = DataReceiver::new(1 << 20, 1000);
        let mut rest = None;
        for c in chunks {
            let (used, done) = r.ingest(c);
            if done {
                rest = Some(c[used..].to_vec());
                break;
            }
            assert_eq!(used, c.len());
        }
        (r, rest)
    }

    #[test]
    fn simple_body_with_dot_stuffing() {
        let (r, rest) = feed_all(&[b"Subject: x\r\n\r\n..hidden\r\n.a\r\n.\r\nQUIT\r\n"]);
        assert_eq!(r.body, b"Subject: x\r\n\r\n.hidden\r\na\r\n");
        assert_eq!(rest.unwrap(), b"QUIT\r\n");
        assert!(r.faults.is_clean());
    }

    #[test]
    fn empty_body() {
        let (r, rest) = feed_all(&[b".\r\n"]);
        assert_eq!(r.body, b"");
        assert_eq!(rest.unwrap(), b"");
    }

    #[test]
    fn end_marker_split_across_every_boundary() {
        let msg = b"a\r\n..b\r\n\r\n.\r\nNEXT";
        for cut in 0..msg.len() {
            let (r, rest) = feed_all(&[&msg[..cut], &msg[cut..]]);
            assert_eq!(r.body, b"a\r\n.b\r\n\r\n", "cut at {cut}");
            if cut < msg.len() - 4 {
                assert_eq!(rest.unwrap(), b"NEXT", "cut at {cut}");
            }
        }
    }

    #[test]
    fn smuggling_markers_never_end_data() {
        for evil in [
            &b"x\n.\nMAIL FROM:<a@b>\r\n"[..],
            b"x\r.\rMAIL FROM:<a@b>\r\n",
            b"x\n.\r\nMAIL FROM:<a@b>\r\n",
            b"x\r\n.\nMAIL FROM:<a@b>\r\n",
            b"x\r\n.\rMAIL FROM:<a@b>\r\n",
        ] {
            let (r, rest) = feed_all(&[evil]);
            assert!(rest.is_none(), "{evil:?} ended DATA");
            assert!(r.faults.bare_newline, "{evil:?} not flagged");
        }
    }

    #[test]
    fn smuggled_marker_is_flagged_then_real_end_works() {
        let (r, rest) = feed_all(&[b"x\n.\nRCPT TO:<v@w>\r\n.\r\n"]);
        assert_eq!(rest.unwrap(), b"");
        assert!(r.faults.bare_newline);
    }

    #[test]
    fn size_limit_discards_but_finds_the_end() {
        let mut r = DataReceiver::new(10, 1000);
        let (_, done) = r.ingest(b"0123456789abc\r\n");
        assert!(!done);
        let (used, done) = r.ingest(b"more\r\n.\r\nX");
        assert!(done);
        assert_eq!(used, 9);
        assert!(r.faults.too_big);
        assert!(r.body.is_empty());
    }

    #[test]
    fn exact_size_limit_is_accepted() {
        let mut r = DataReceiver::new(6, 1000);
        let (_, done) = r.ingest(b"abcd\r\n.\r\n");
        assert!(done);
        assert!(r.faults.is_clean());
        assert_eq!(r.body, b"abcd\r\n");
    }

    #[test]
    fn long_lines_are_flagged() {
        let mut r = DataReceiver::new(1 << 20, 10);
        let (_, done) = r.ingest(b"12345678\r\n.\r\n");
        assert!(
            done && r.faults.is_clean(),
            "10 octets with CRLF is allowed"
        );
        let mut r = DataReceiver::new(1 << 20, 10);
        r.ingest(b"123456789\r\n.\r\n");
        assert!(r.faults.long_line);
    }

    #[test]
    fn bdat_normalises_bare_lf_across_chunks() {
        let mut b = BdatReceiver::new(1 << 20);
        b.push(b"a\nb\r");
        b.push(b"\nc\n");
        b.push(b"\r");
        b.push(b"\n");
        assert_eq!(b.body, b"a\r\nb\r\nc\r\n\r\n");
    }

    #[test]
    fn bdat_size_limit() {
        let mut b = BdatReceiver::new(4);
        b.push(b"abcd");
        assert!(!b.too_big);
        b.push(b"e");
        assert!(b.too_big);
        assert!(b.body.is_empty());
    }
}
