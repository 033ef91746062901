//! IMAP responses without I/O: a framer that cuts the byte stream into whole
//! responses (a line plus the literals it announces) with the limits enforced
//! *before* anything is buffered past them, and a parser into a small generic
//! tree (atoms, strings, lists, NIL).
//!
//! Why not imap-codec (pinned `=2.0.0-alpha.10`): its client-side response
//! decoder rejects responses it has no type for, and a client must accept
//! what real servers send: ESEARCH (RFC 4731), LIST-STATUS and SPECIAL-USE
//! attributes, `[COPYUID]` in untagged OKs after MOVE, vendor response codes,
//! 8-bit mailbox names. A generic tree parses all of them, and the backend
//! picks out only what it asked for, ignoring the rest (RFC 9051 §7: a client
//! MUST be prepared to accept any response at any time).

use std::fmt;

/// Longest line (between literals) accepted from a server (`* SEARCH` on a
/// server without ESEARCH lists every UID of a big mailbox on one line).
pub const MAX_LINE: usize = 8 << 20;
/// Largest literal accepted (a message body in `BODY[]`).
pub const MAX_LITERAL: usize = 512 << 20;
/// Largest whole response (lines plus literals).
pub const MAX_RESPONSE: usize = MAX_LITERAL + (8 << 20);
/// Deepest nesting of parenthesised lists (BODYSTRUCTURE is the deepest real one).
const MAX_DEPTH: usize = 64;

/// A framing or parsing failure: the connection cannot be trusted afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(pub String);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Cuts the server's byte stream into complete responses.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
    /// Where the next unscanned line of the current response starts.
    scan: usize,
}

impl Framer {
    /// Adds bytes read from the socket.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Whether bytes past the last complete response are waiting (after
    /// STARTTLS's OK there must be none: they would be injected clear text).
    pub fn has_pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The next complete response, `None` when more input is needed.
    pub fn next(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        loop {
            let Some(nl) = memchr(b'\n', &self.buf[self.scan..]).map(|p| self.scan + p) else {
                if self.buf.len() - self.scan > MAX_LINE {
                    return Err(WireError(format!(
                        "a response line is longer than {MAX_LINE} bytes"
                    )));
                }
                return Ok(None);
            };
            if nl - self.scan > MAX_LINE {
                return Err(WireError(format!(
                    "a response line is longer than {MAX_LINE} bytes"
                )));
            }
            let line = &self.buf[self.scan..nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            match literal_at_end(line) {
                Some(Err(e)) => return Err(e),
                Some(Ok(n)) => {
                    let end = nl + 1 + n;
                    if end > MAX_RESPONSE {
                        return Err(WireError(format!(
                            "a response is longer than {MAX_RESPONSE} bytes"
                        )));
                    }
                    if self.buf.len() < end {
                        return Ok(None);
                    }
                    self.scan = end;
                }
                None => {
                    let rest = self.buf.split_off(nl + 1);
                    let response = std::mem::replace(&mut self.buf, rest);
                    self.scan = 0;
                    return Ok(Some(response));
                }
            }
        }
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// If `line` ends with a literal announcement `{N}`, `{N+}` (or `~{N}`), its
/// size, checked against [`MAX_LITERAL`].
fn literal_at_end(line: &[u8]) -> Option<Result<usize, WireError>> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 12 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
    if n > MAX_LITERAL {
        return Some(Err(WireError(format!(
            "the server announced a literal of {n} bytes (limit {MAX_LITERAL})"
        ))));
    }
    Some(Ok(n))
}

/// A value in a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// An atom or a number (`FETCH`, `\Seen`, `42`, `BODY[]`).
    Atom(String),
    /// A quoted string or a literal, as bytes.
    Str(Vec<u8>),
    /// `NIL`.
    Nil,
    /// A parenthesised list.
    List(Vec<Value>),
}

impl Value {
    /// The atom's text, if this is an atom.
    pub fn atom(&self) -> Option<&str> {
        match self {
            Value::Atom(a) => Some(a),
            _ => None,
        }
    }

    /// Whether this is the atom `word` (case-insensitive).
    pub fn is(&self, word: &str) -> bool {
        self.atom().is_some_and(|a| a.eq_ignore_ascii_case(word))
    }

    /// The number, if this is a numeric atom.
    pub fn number(&self) -> Option<u64> {
        self.atom().and_then(|a| a.parse().ok())
    }

    /// The bytes of a string, an atom's text as bytes, or `None` for NIL/lists.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Str(s) => Some(s),
            Value::Atom(a) => Some(a.as_bytes()),
            _ => None,
        }
    }

    /// The list's items, if this is a list.
    pub fn list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
}

/// The status of a tagged or untagged status response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `OK`.
    Ok,
    /// `NO`: the command failed.
    No,
    /// `BAD`: the command was not understood.
    Bad,
    /// `BYE`: the server is closing the connection.
    Bye,
    /// `PREAUTH`: already logged in (greeting only).
    Preauth,
}

impl Status {
    fn parse(word: &str) -> Option<Status> {
        Some(match word.to_ascii_uppercase().as_str() {
            "OK" => Status::Ok,
            "NO" => Status::No,
            "BAD" => Status::Bad,
            "BYE" => Status::Bye,
            "PREAUTH" => Status::Preauth,
            _ => return None,
        })
    }
}

/// One parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `+ text`: the server waits for a literal or a SASL response.
    Continue(String),
    /// `tag OK|NO|BAD [code] text`.
    Tagged {
        /// The command's tag.
        tag: String,
        /// Its outcome.
        status: Status,
        /// The response code, e.g. `[COPYUID 7 1:2 5:6]` as its values.
        code: Option<Vec<Value>>,
        /// The human-readable text.
        text: String,
    },
    /// `* OK|NO|BAD|BYE|PREAUTH [code] text`.
    Status {
        /// Which.
        status: Status,
        /// The response code.
        code: Option<Vec<Value>>,
        /// The text.
        text: String,
    },
    /// Any other untagged response, as values (`* 3 FETCH (…)` is
    /// `[3, FETCH, (…)]`).
    Data(Vec<Value>),
}

/// Parses one complete response as cut by the [`Framer`].
pub fn parse(bytes: &[u8]) -> Result<Response, WireError> {
    let mut c = Cursor { b: bytes, i: 0 };
    match c.peek() {
        Some(b'+') => {
            c.i += 1;
            c.skip_spaces();
            Ok(Response::Continue(c.rest_of_line()))
        }
        Some(b'*') => {
            c.i += 1;
            c.expect_space()?;
            let save = c.i;
            let word = c.word();
            if let Some(status) = Status::parse(&word) {
                let (code, text) = c.resp_text()?;
                return Ok(Response::Status { status, code, text });
            }
            c.i = save;
            Ok(Response::Data(c.values_to_eol()?))
        }
        Some(_) => {
            let tag = c.word();
            if tag.is_empty() {
                return Err(WireError("a response without a tag".into()));
            }
            c.expect_space()?;
            let word = c.word();
            let status = Status::parse(&word)
                .filter(|s| matches!(s, Status::Ok | Status::No | Status::Bad))
                .ok_or_else(|| WireError(format!("unexpected tagged response {word:?}")))?;
            let (code, text) = c.resp_text()?;
            Ok(Response::Tagged {
                tag,
                status,
                code,
                text,
            })
        }
        None => Err(WireError("an empty response".into())),
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn at_eol(&self) -> bool {
        matches!(self.peek(), None | Some(b'\r') | Some(b'\n'))
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    fn expect_space(&mut self) -> Result<(), WireError> {
        if self.peek() == Some(b' ') {
            self.i += 1;
            Ok(())
        } else {
            Err(self.error("expected a space"))
        }
    }

    fn error(&self, what: &str) -> WireError {
        let line_start = self.b[..self.i.min(self.b.len())]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        let end = (self.i + 40).min(self.b.len());
        let start = line_start.max(self.i.saturating_sub(40));
        WireError(format!(
            "bad response from the server: {what} near {:?}",
            String::from_utf8_lossy(&self.b[start..end])
        ))
    }

    /// Bytes up to a space or the end of the line.
    fn word(&mut self) -> String {
        let start = self.i;
        while let Some(b) = self.peek() {
            if b == b' ' || b == b'\r' || b == b'\n' {
                break;
            }
            self.i += 1;
        }
        String::from_utf8_lossy(&self.b[start..self.i]).into_owned()
    }

    fn rest_of_line(&mut self) -> String {
        let start = self.i;
        while !self.at_eol() {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.b[start..self.i]).into_owned()
    }

    /// `[code args] text` after a status word.
    fn resp_text(&mut self) -> Result<(Option<Vec<Value>>, String), WireError> {
        self.skip_spaces();
        let mut code = None;
        if self.peek() == Some(b'[') {
            self.i += 1;
            let mut values = Vec::new();
            loop {
                self.skip_spaces();
                match self.peek() {
                    Some(b']') => {
                        self.i += 1;
                        break;
                    }
                    None | Some(b'\r') | Some(b'\n') => {
                        return Err(self.error("an unterminated response code"));
                    }
                    _ => values.push(self.value(0, true)?),
                }
            }
            code = Some(values);
            self.skip_spaces();
        }
        Ok((code, self.rest_of_line()))
    }

    fn values_to_eol(&mut self) -> Result<Vec<Value>, WireError> {
        let mut out = Vec::new();
        loop {
            self.skip_spaces();
            if self.at_eol() {
                return Ok(out);
            }
            out.push(self.value(0, false)?);
        }
    }

    fn value(&mut self, depth: usize, in_code: bool) -> Result<Value, WireError> {
        match self.peek() {
            Some(b'(') => {
                if depth >= MAX_DEPTH {
                    return Err(self.error("lists nested too deeply"));
                }
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_spaces();
                    match self.peek() {
                        Some(b')') => {
                            self.i += 1;
                            return Ok(Value::List(items));
                        }
                        None | Some(b'\r') | Some(b'\n') => {
                            return Err(self.error("an unterminated list"));
                        }
                        _ => items.push(self.value(depth + 1, in_code)?),
                    }
                }
            }
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(),
            Some(b'~') if self.b.get(self.i + 1) == Some(&b'{') => {
                self.i += 1;
                self.literal()
            }
            Some(b')') => Err(self.error("an unexpected ')'")),
            _ => {
                let a = self.atom(in_code)?;
                if a.eq_ignore_ascii_case("NIL") {
                    Ok(Value::Nil)
                } else {
                    Ok(Value::Atom(a))
                }
            }
        }
    }

    fn quoted(&mut self) -> Result<Value, WireError> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(Value::Str(out));
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(b) if b != b'\r' && b != b'\n' => {
                            out.push(b);
                            self.i += 1;
                        }
                        _ => return Err(self.error("a bad escape in a quoted string")),
                    }
                }
                None | Some(b'\r') | Some(b'\n') => {
                    return Err(self.error("an unterminated quoted string"));
                }
                Some(b) => {
                    out.push(b);
                    self.i += 1;
                }
            }
        }
    }

    fn literal(&mut self) -> Result<Value, WireError> {
        self.i += 1;
        let start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.i += 1;
        }
        let n: usize = std::str::from_utf8(&self.b[start..self.i])
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| self.error("a bad literal length"))?;
        if self.peek() == Some(b'+') {
            self.i += 1;
        }
        if self.peek() != Some(b'}') {
            return Err(self.error("a bad literal"));
        }
        self.i += 1;
        if self.peek() == Some(b'\r') {
            self.i += 1;
        }
        if self.peek() != Some(b'\n') {
            return Err(self.error("a literal not at the end of a line"));
        }
        self.i += 1;
        let end = self
            .i
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| self.error("a truncated literal"))?;
        let out = self.b[self.i..end].to_vec();
        self.i = end;
        Ok(Value::Str(out))
    }

    /// An atom; `[…]` inside it (as in `BODY[HEADER.FIELDS (FROM)]<0>`) is
    /// taken whole, spaces and parentheses included.
    fn atom(&mut self, in_code: bool) -> Result<String, WireError> {
        let start = self.i;
        while let Some(b) = self.peek() {
            match b {
                b' ' | b'(' | b')' | b'"' | b'\r' | b'\n' | b'{' => break,
                b']' if in_code => break,
                b'[' => {
                    let close = memchr(b']', &self.b[self.i..])
                        .filter(|&p| !self.b[self.i..self.i + p].contains(&b'\n'))
                        .ok_or_else(|| self.error("an unterminated '['"))?;
                    self.i += close + 1;
                }
                _ => self.i += 1,
            }
        }
        if self.i == start {
            return Err(self.error("expected a value"));
        }
        Ok(String::from_utf8_lossy(&self.b[start..self.i]).into_owned())
    }
}

/// Parses a sequence set of UIDs (`1:3,7,9:*` without `*`), refusing ranges
/// larger than `limit` in total (a hostile `1:4294967295` must not allocate).
pub fn parse_uid_set(s: &str, limit: usize) -> Result<Vec<u32>, WireError> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let (a, b) = part.split_once(':').unwrap_or((part, part));
        let a: u32 = a
            .parse()
            .map_err(|_| WireError(format!("a bad UID set {s:?}")))?;
        let b: u32 = b
            .parse()
            .map_err(|_| WireError(format!("a bad UID set {s:?}")))?;
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        if out.len() + (hi - lo) as usize >= limit {
            return Err(WireError(format!("a UID set larger than {limit}")));
        }
        // RFC 4315 §4.3: COPYUID pairs the sets in order, so keep a:b's
        // direction as given.
        if a <= b {
            out.extend(lo..=hi);
        } else {
            out.extend((lo..=hi).rev());
        }
    }
    Ok(out)
}

/// Formats UIDs as a sequence set (`1:3,7`), compressing runs.
pub fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut f = Framer::default();
        let mut out = Vec::new();
        for chunk in input {
            f.push(chunk);
            while let Some(r) = f.next().expect("frame") {
                out.push(r);
            }
        }
        out
    }

    #[test]
    fn framer_waits_for_literals_split_anywhere() {
        let all: &[u8] =
            b"* 1 FETCH (UID 5 BODY[] {10}\r\nab\r\n{3}\r\n) x)\r\nA1 OK done\r\n* 2 EXISTS\r\n";
        // Every split point gives the same three responses.
        for cut in 0..all.len() {
            let got = frames(&[&all[..cut], &all[cut..]]);
            assert_eq!(got.len(), 3, "cut at {cut}");
            assert_eq!(got[1], b"A1 OK done\r\n");
        }
        let got = frames(&[all]);
        let Response::Data(v) = parse(&got[0]).expect("parse") else {
            panic!("not data")
        };
        assert_eq!(v[1], Value::Atom("FETCH".into()));
        let items = v[2].list().expect("list");
        assert_eq!(items[3], Value::Str(b"ab\r\n{3}\r\n)".to_vec()));
        assert_eq!(items[4], Value::Atom("x".into()));
    }

    #[test]
    fn framer_limits() {
        let mut f = Framer::default();
        f.push(&vec![b'a'; MAX_LINE + 2]);
        assert!(f.next().is_err());
        let mut f = Framer::default();
        f.push(b"* 1 FETCH (BODY[] {99999999999}\r\n");
        assert!(f.next().is_err());
        // A literal within limits but not yet there: no allocation, just wait.
        let mut f = Framer::default();
        f.push(b"* 1 FETCH (BODY[] {1000000}\r\n");
        assert_eq!(f.next(), Ok(None));
    }

    #[test]
    fn parses_the_responses_servers_send() {
        let r = parse(b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] Dovecot ready.\r\n")
            .expect("greeting");
        let Response::Status {
            status: Status::Ok,
            code: Some(code),
            text,
        } = r
        else {
            panic!("{r:?}")
        };
        assert_eq!(code.len(), 4);
        assert_eq!(text, "Dovecot ready.");

        let r = parse(b"A3 OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n").expect("copyuid");
        let Response::Tagged {
            status: Status::Ok,
            code: Some(code),
            ..
        } = r
        else {
            panic!("{r:?}")
        };
        assert_eq!(code[3], Value::Atom("3956:3958".into()));

        let r =
            parse(b"* LIST (\\HasNoChildren \\Sent) \".\" \"Sent \\\"x\\\"\"\r\n").expect("list");
        assert_eq!(
            r,
            Response::Data(vec![
                Value::Atom("LIST".into()),
                Value::List(vec![
                    Value::Atom("\\HasNoChildren".into()),
                    Value::Atom("\\Sent".into())
                ]),
                Value::Str(b".".to_vec()),
                Value::Str(b"Sent \"x\"".to_vec()),
            ])
        );
        let r = parse(b"* LIST () NIL [Gmail]/Spam\r\n").expect("atom with brackets");
        assert_eq!(
            r,
            Response::Data(vec![
                Value::Atom("LIST".into()),
                Value::List(vec![]),
                Value::Nil,
                Value::Atom("[Gmail]/Spam".into()),
            ])
        );
        let r = parse(b"* ESEARCH (TAG \"A5\") UID ALL 1:3,5\r\n").expect("esearch");
        assert!(matches!(r, Response::Data(ref v) if v.len() == 5));
        let r = parse(b"* 1 FETCH (BODY[HEADER.FIELDS (FROM)]<0> NIL)\r\n").expect("section");
        let Response::Data(v) = r else { panic!() };
        assert_eq!(
            v[2].list().expect("list")[0],
            Value::Atom("BODY[HEADER.FIELDS (FROM)]<0>".into())
        );
        assert_eq!(
            parse(b"+ \r\n").expect("continue"),
            Response::Continue(String::new())
        );
        assert!(matches!(
            parse(b"* BYE going\r\n"),
            Ok(Response::Status {
                status: Status::Bye,
                ..
            })
        ));
    }

    #[test]
    fn rejects_broken_responses_without_panicking() {
        for bad in [
            &b"* 1 FETCH (UID 1\r\n"[..],
            b"* 1 FETCH (BODY[] {10}\r\nabc",
            b"* LIST (\\X) \"/\" \"unterminated\r\n",
            b"A1 MAYBE\r\n",
            b"* X [unterminated\r\n",
            b"",
            b"* 1 FETCH )\r\n",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let deep = format!("* X {}{}\r\n", "(".repeat(200), ")".repeat(200));
        assert!(parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn random_input_never_panics() {
        // A small xorshift generator over tokens that matter to the grammar.
        let tokens: [&[u8]; 16] = [
            b"* ",
            b"(",
            b")",
            b"\"",
            b"\\",
            b"{3}\r\n",
            b"{0}\r\n",
            b"{99}",
            b"[",
            b"]",
            b"NIL",
            b" ",
            b"\r\n",
            b"A1 OK ",
            b"~{2}\r\n",
            b"\xff",
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            let mut buf = Vec::new();
            for _ in 0..(x % 24) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.extend_from_slice(tokens[(x % tokens.len() as u64) as usize]);
            }
            let _ = parse(&buf);
            let mut f = Framer::default();
            f.push(&buf);
            while let Ok(Some(r)) = f.next() {
                let _ = parse(&r);
            }
            x = x.wrapping_add(1);
        }
    }

    #[test]
    fn uid_sets() {
        assert_eq!(uid_set(&[7, 1, 2, 3, 9, 10]), "1:3,7,9:10");
        assert_eq!(
            parse_uid_set("304,319:320", 100).expect("set"),
            [304, 319, 320]
        );
        assert_eq!(parse_uid_set("5:3", 100).expect("set"), [5, 4, 3]);
        assert!(parse_uid_set("1:4294967295", 1000).is_err());
        assert!(parse_uid_set("1:*", 1000).is_err());
    }
}
