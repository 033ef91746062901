//! Helpers shared by the fuzz targets: how an input is split into reads, and
//! the framing invariants every protocol's output must keep.
//!
//! Session targets take their input as `[flags, seed, stream...]`: `flags`
//! picks the configuration and the driver's verdicts, `seed` how `stream` is
//! cut into reads (see [`chunks`]). The seed corpora in `corpus/` use the same
//! layout.

#![forbid(unsafe_code)]

/// The layout of a session target's input: `[flags, seed, stream...]`.
pub struct Input<'a> {
    /// Configuration and verdict bits (meaning per target).
    pub flags: u8,
    /// Seed of the read sizes (see [`chunks`]).
    pub seed: u8,
    /// What the peer sends.
    pub stream: &'a [u8],
}

impl<'a> Input<'a> {
    /// Splits `data`; `None` if it is shorter than the two header octets.
    pub fn split(data: &'a [u8]) -> Option<Input<'a>> {
        let (&flags, rest) = data.split_first()?;
        let (&seed, stream) = rest.split_first()?;
        Some(Input {
            flags,
            seed,
            stream,
        })
    }
}

/// Cuts `stream` into reads whose sizes come from `seed`: seed 0 is one read
/// of everything; otherwise a small xorshift generator yields sizes from 1 to
/// 2 × `seed`, so low seeds exercise byte-at-a-time reads and high ones larger
/// TCP-like segments.
pub fn chunks(stream: &[u8], seed: u8) -> Vec<&[u8]> {
    if seed == 0 || stream.is_empty() {
        return vec![stream];
    }
    let mut state = u32::from(seed).wrapping_mul(0x9E37_79B9) | 1;
    let max = usize::from(seed) * 2;
    let mut out = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state as usize % max + 1).min(rest.len());
        let (head, tail) = rest.split_at(n);
        out.push(head);
        rest = tail;
    }
    out
}

/// Splits `out` into lines, asserting that it ends with CRLF and that no line
/// holds a bare CR or LF. Returns the lines without their CRLFs.
pub fn crlf_lines(out: &[u8], what: &str) -> Vec<Vec<u8>> {
    if out.is_empty() {
        return Vec::new();
    }
    assert!(
        out.ends_with(b"\r\n"),
        "{what}: output does not end with CRLF: {:?}",
        String::from_utf8_lossy(&out[out.len().saturating_sub(80)..])
    );
    let body = &out[..out.len() - 2];
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'\r' if body.get(i + 1) == Some(&b'\n') => {
                lines.push(body[start..i].to_vec());
                i += 2;
                start = i;
            }
            b'\r' | b'\n' => panic!(
                "{what}: bare CR or LF in output line {:?}",
                String::from_utf8_lossy(&body[start..(i + 1).min(body.len())])
            ),
            _ => i += 1,
        }
    }
    lines.push(body[start..].to_vec());
    lines
}

/// Checks a batch of SMTP server replies (RFC 5321 §4.2): every line is a
/// 3-digit code from 200 to 599 (or 3xx intermediate), then `-` or space (or
/// nothing), at most 512 octets with its CRLF; the lines of a multi-line reply
/// share one code and the batch never ends in the middle of one.
pub fn check_smtp_replies(out: &[u8]) {
    let lines = crlf_lines(out, "SMTP reply");
    let mut open: Option<[u8; 3]> = None;
    for line in &lines {
        let text = String::from_utf8_lossy(line);
        assert!(line.len() >= 3, "SMTP reply line too short: {text:?}");
        assert!(
            line.len() + 2 <= 512,
            "SMTP reply line over 512 octets ({}): {:?}",
            line.len() + 2,
            &text[..text.len().min(120)]
        );
        let code = [line[0], line[1], line[2]];
        assert!(
            code.iter().all(u8::is_ascii_digit) && (b'2'..=b'5').contains(&code[0]),
            "SMTP reply without a valid code: {text:?}"
        );
        if let Some(prev) = open {
            assert_eq!(prev, code, "multi-line SMTP reply changes code: {text:?}");
        }
        match line.get(3) {
            Some(b'-') => open = Some(code),
            None | Some(b' ') => open = None,
            Some(_) => panic!("SMTP reply code not followed by space or '-': {text:?}"),
        }
    }
    assert!(open.is_none(), "output ends inside a multi-line SMTP reply");
}

/// Checks that a body as handed to delivery has CRLF line ends only: no LF
/// without a CR before it, and a final CRLF unless it is empty.
pub fn check_crlf_body(body: &[u8], what: &str) {
    if body.is_empty() {
        return;
    }
    assert!(
        body.ends_with(b"\r\n"),
        "{what}: body does not end with CRLF"
    );
    for (i, &b) in body.iter().enumerate() {
        if b == b'\n' {
            assert!(
                i > 0 && body[i - 1] == b'\r',
                "{what}: bare LF at offset {i}"
            );
        }
    }
}

/// A guard against state machines that never ask for input again: panics
/// after `limit` steps without progress.
pub struct Steps {
    left: u32,
}

impl Steps {
    /// Allows `limit` steps.
    pub fn new(limit: u32) -> Steps {
        Steps { left: limit }
    }

    /// Counts one step; panics when the budget is used up.
    pub fn step(&mut self, what: &str) {
        self.left = self
            .left
            .checked_sub(1)
            .unwrap_or_else(|| panic!("{what}: poll loop does not end"));
    }
}

/// What a session target's run produced: the replies, and what the session
/// asked its driver to do (`E`: deliveries, commits, executed commands).
#[derive(Debug, Default, PartialEq)]
pub struct Outcome<E> {
    /// Everything the session wrote, in order.
    pub replies: Vec<u8>,
    /// The target's record of the session's requests.
    pub effects: E,
    /// The session closed.
    pub closed: bool,
    /// The session switched to TLS (STARTTLS, STLS): what follows would be
    /// encrypted, so the split-invariance check does not apply.
    pub upgraded: bool,
}

/// The input side of the server session state machines, as their tokio
/// loops use it.
pub trait SessionInput {
    /// One read from the client.
    fn feed(&mut self, read: &[u8]);
    /// The server is shutting down.
    fn shutdown(&mut self);
    /// The client closed its side.
    fn eof(&mut self);
}

macro_rules! session_input {
    ($($session:ty),*) => {$(
        impl SessionInput for $session {
            fn feed(&mut self, read: &[u8]) {
                <$session>::feed(self, read);
            }
            fn shutdown(&mut self) {
                <$session>::shutdown(self);
            }
            fn eof(&mut self) {
                <$session>::eof(self);
            }
        }
    )*};
}

session_input!(
    pochta_proto_smtp::Session,
    pochta_proto_pop3::Session,
    pochta_proto_imap::session::Session
);

/// Runs a session as its server loop does: `drive` (the target's: poll, check
/// and answer until the session wants input, counting its polls in the
/// [`Steps`]) at the start and after each of the reads `seed` cuts `stream`
/// into; with `shutdown`, a shutdown after the read half-way; then, unless the
/// session closed, EOF, after which it must close. Returns what the run
/// produced.
pub fn feed_session<S: SessionInput, E: Default>(
    mut session: S,
    stream: &[u8],
    seed: u8,
    shutdown: bool,
    mut drive: impl FnMut(&mut S, &mut Outcome<E>, &mut Steps),
) -> Outcome<E> {
    let mut out = Outcome::default();
    let mut steps = Steps::new(1_000_000);
    let mut drive = |s: &mut S, out: &mut Outcome<E>| drive(s, out, &mut steps);
    drive(&mut session, &mut out);
    let reads = chunks(stream, seed);
    let half = reads.len() / 2;
    for (i, read) in reads.into_iter().enumerate() {
        if out.closed {
            break;
        }
        session.feed(read);
        drive(&mut session, &mut out);
        if shutdown && i == half {
            session.shutdown();
            drive(&mut session, &mut out);
        }
    }
    if !out.closed {
        session.eof();
        drive(&mut session, &mut out);
        assert!(out.closed, "the session did not close after EOF");
    }
    out
}

/// The check every session target ends with: unless the session was shut
/// down or upgraded to TLS, feeding the stream in one read must give the
/// same replies and effects as the reads `input.seed` picked. `run` runs the
/// session with a seed.
pub fn same_replies_however_split<E: PartialEq + std::fmt::Debug>(
    input: &Input<'_>,
    shutdown: bool,
    run: impl Fn(u8) -> Outcome<E>,
) {
    let split = run(input.seed);
    if input.seed == 0 || shutdown || split.upgraded {
        return;
    }
    let whole = run(0);
    if !whole.upgraded {
        assert_eq!(
            String::from_utf8_lossy(&whole.replies),
            String::from_utf8_lossy(&split.replies),
            "replies depend on how the input was split"
        );
        assert_eq!(whole.effects, split.effects);
    }
}

/// Checks that `out` is a sequence of syntactically valid IMAP responses
/// (RFC 9051 §7): each starts with `*`, `+` or a tag, and its values (atoms,
/// quoted strings, literals and literal8s with exactly the announced octets,
/// balanced parenthesised lists, `[...]` section specifiers) end with CRLF.
/// Quoted strings hold no CR, LF or NUL, and no 8-bit octets unless `utf8`.
/// A section must stay on one line: the grammar would let a `HEADER.FIELDS`
/// name be a literal, but pochta quotes those names so that clients' parsers
/// never meet a literal inside brackets, and this holds it to that.
pub fn check_imap_responses(out: &[u8], utf8: bool) {
    let mut pos = 0;
    while pos < out.len() {
        pos = imap_response(out, pos, utf8);
    }
}

fn imap_fail(out: &[u8], pos: usize, why: &str) -> ! {
    let from = pos.saturating_sub(60);
    let to = (pos + 60).min(out.len());
    panic!(
        "invalid IMAP response ({why}) at {pos}: {:?} ‸ {:?}",
        String::from_utf8_lossy(&out[from..pos.min(out.len())]),
        String::from_utf8_lossy(&out[pos.min(out.len())..to])
    );
}

/// One response from `pos`; returns the position after its CRLF.
fn imap_response(out: &[u8], mut pos: usize, utf8: bool) -> usize {
    let start = pos;
    while pos < out.len() && out[pos] != b' ' && out[pos] != b'\r' {
        let b = out[pos];
        if !(b.is_ascii_graphic()) || b == b'(' || b == b')' || b == b'{' || b == b'"' {
            imap_fail(out, pos, "bad tag character");
        }
        pos += 1;
    }
    if pos == start {
        imap_fail(out, pos, "empty tag");
    }
    let continuation = &out[start..pos] == b"+";
    if continuation {
        // `+ text`: free text to CRLF (or base64).
        while pos < out.len() && out[pos] != b'\r' && out[pos] != b'\n' {
            pos += 1;
        }
        return imap_crlf(out, pos);
    }
    // Status responses (`OK`, `NO`, `BAD`, `BYE`, `PREAUTH`) end in free text.
    let word_start = pos + 1;
    let word_end = out[word_start.min(out.len())..]
        .iter()
        .position(|&c| c == b' ' || c == b'\r')
        .map_or(out.len(), |n| word_start + n);
    if matches!(
        out.get(word_start..word_end),
        Some(b"OK" | b"NO" | b"BAD" | b"BYE" | b"PREAUTH")
    ) {
        pos = word_end;
        while pos < out.len() && out[pos] != b'\r' && out[pos] != b'\n' {
            if out[pos] == 0 {
                imap_fail(out, pos, "NUL in response text");
            }
            pos += 1;
        }
        return imap_crlf(out, pos);
    }
    let mut depth = 0usize;
    loop {
        let Some(&b) = out.get(pos) else {
            imap_fail(out, pos, "response does not end with CRLF");
        };
        match b {
            b'\r' | b'\n' => {
                if depth != 0 {
                    imap_fail(out, pos, "unbalanced parentheses");
                }
                return imap_crlf(out, pos);
            }
            b'(' => {
                depth += 1;
                pos += 1;
            }
            b')' => {
                if depth == 0 {
                    imap_fail(out, pos, "')' without '('");
                }
                depth -= 1;
                pos += 1;
            }
            b'"' => {
                pos += 1;
                loop {
                    match out.get(pos) {
                        None => imap_fail(out, pos, "unterminated quoted string"),
                        Some(b'"') => break,
                        Some(b'\\') => match out.get(pos + 1) {
                            Some(b'"' | b'\\') => pos += 2,
                            _ => imap_fail(out, pos, "bad escape in quoted string"),
                        },
                        Some(b'\r' | b'\n' | 0) => {
                            imap_fail(out, pos, "CR, LF or NUL in quoted string")
                        }
                        Some(&c) if c >= 0x80 && !utf8 => {
                            imap_fail(out, pos, "8-bit octet in a quoted string")
                        }
                        Some(_) => pos += 1,
                    }
                }
                pos += 1;
            }
            b'{' | b'~' if b == b'{' || out.get(pos + 1) == Some(&b'{') => {
                if b == b'~' {
                    pos += 1;
                }
                pos += 1;
                let digits = pos;
                while out.get(pos).is_some_and(u8::is_ascii_digit) {
                    pos += 1;
                }
                let n: usize = std::str::from_utf8(&out[digits..pos])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| imap_fail(out, pos, "bad literal length"));
                if out.get(pos..pos + 3) != Some(b"}\r\n") {
                    imap_fail(out, pos, "literal announcement not followed by CRLF");
                }
                pos += 3 + n;
                if pos > out.len() {
                    imap_fail(out, out.len(), "literal shorter than announced");
                }
            }
            b'[' => {
                // A response code or section specifier: to the matching `]`.
                let mut inner = 0usize;
                loop {
                    match out.get(pos) {
                        None | Some(b'\r' | b'\n') => imap_fail(out, pos, "unterminated '['"),
                        Some(b'[') => inner += 1,
                        Some(b']') => {
                            inner -= 1;
                            if inner == 0 {
                                break;
                            }
                        }
                        Some(b'"') => {
                            pos += 1;
                            while out.get(pos).is_some_and(|&c| c != b'"' && c != b'\r') {
                                pos += if out[pos] == b'\\' { 2 } else { 1 };
                            }
                        }
                        Some(_) => {}
                    }
                    pos += 1;
                }
                pos += 1;
            }
            0 => imap_fail(out, pos, "NUL outside a literal"),
            _ => pos += 1,
        }
    }
}

fn imap_crlf(out: &[u8], pos: usize) -> usize {
    if out.get(pos..pos + 2) != Some(b"\r\n") {
        imap_fail(out, pos, "bare CR or LF");
    }
    pos + 2
}

/// Every message of THREAD's trees as (sequence number, depth, index of its
/// top-level thread), walked without recursion: a chain of replies may be as
/// deep as the mailbox. Shared by the two targets that check THREAD.
pub fn thread_members(
    threads: &[pochta_proto_imap::thread::ThreadNode],
) -> Vec<(u32, usize, usize)> {
    let mut found = Vec::new();
    let mut stack: Vec<(&pochta_proto_imap::thread::ThreadNode, usize, usize)> =
        threads.iter().enumerate().map(|(i, t)| (t, 0, i)).collect();
    while let Some((node, depth, top)) = stack.pop() {
        if let Some(m) = &node.message {
            found.push((m.msn, depth, top));
        }
        stack.extend(node.children.iter().map(|c| (c, depth + 1, top)));
    }
    found
}
