//! Cutting the client's byte stream into whole commands, with every size limit
//! enforced while reading, before anything is buffered.
//!
//! IMAP commands are lines that may carry literals (RFC 9051 §4.3): a line that
//! ends with `{n}` (synchronizing: the client waits for a `+` continuation
//! before sending the n octets), `{n+}` (LITERAL+, RFC 7888: no continuation),
//! or `~{n}` / `~{n+}` (literal8, RFC 3516) is followed by n octets and then the
//! rest of the command, which may announce further literals. A command ends at
//! a CRLF (or a bare LF, which we tolerate) that does not follow a literal
//! announcement.
//!
//! The [`Framer`] is sans-I/O: the session keeps its own input buffer, hands it
//! to [`Framer::poll`], removes the `consumed` octets from its front, and acts on
//! the returned [`Frame`]. The framer copies what it keeps into its own buffer,
//! so its memory is bounded by [`FrameLimits`] however the client behaves, and
//! the result is the same however the input is chunked.
//!
//! What happens to a command that breaks a limit (see [`Refusal`]):
//!
//! * a line (the text between literals) longer than [`FrameLimits::max_line`]:
//!   [`Frame::Refused`] as soon as the limit is crossed, then the rest of the
//!   command is discarded without being stored (to the end of the line, and, if
//!   that line announces a non-synchronizing literal, its octets and the
//!   following lines too);
//! * a synchronizing literal over its limit: refused at once, without the
//!   continuation; the client then does not send the literal, and the command is
//!   over;
//! * a non-synchronizing literal over its limit: refused at once; the client sends
//!   the octets anyway, so they are counted and discarded, then the rest of the
//!   command too; if the literal is absurdly large ([`FrameLimits::max_discard`])
//!   the framer reports [`Frame::Fatal`] instead and the session must close.
//!
//! AUTHENTICATE responses and IDLE's `DONE` are raw lines, read with
//! [`Framer::next_line`].

use crate::encode::Status;

/// The size limits the framer enforces (the defaults suit a server whose message
/// size limit is 50 MiB; see [`FrameLimits::with_append_limit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Longest line, in octets before its CRLF; a line is the text between the
    /// start of the command, its literals, and its end. Default 64 KiB.
    pub max_line: usize,
    /// Largest command, counting its lines (with their CRLFs) and literals other
    /// than APPEND messages. Default 1 MiB.
    pub max_command: u64,
    /// Largest literal outside an APPEND message (strings, mailbox names, search
    /// texts). Default 64 KiB.
    pub max_literal: u64,
    /// Largest APPEND message literal (the server's message size limit);
    /// refused with `NO [TOOBIG]` (RFC 7889). Default 50 MiB.
    pub max_append_literal: u64,
    /// Largest sum of the messages of one APPEND (MULTIAPPEND, RFC 3502 sends
    /// several). Default 100 MiB.
    pub max_append_total: u64,
    /// Most literals in one command. Default 256.
    pub max_literals: usize,
    /// Largest refused non-synchronizing literal the framer reads and throws
    /// away; a larger one is [`Frame::Fatal`], since reading gigabytes to stay in
    /// step is worse than closing. Default 100 MiB (twice the APPEND limit).
    pub max_discard: u64,
}

impl Default for FrameLimits {
    fn default() -> Self {
        FrameLimits {
            max_line: 64 * 1024,
            max_command: 1024 * 1024,
            max_literal: 64 * 1024,
            max_append_literal: 50 * 1024 * 1024,
            max_append_total: 100 * 1024 * 1024,
            max_literals: 256,
            max_discard: 100 * 1024 * 1024,
        }
    }
}

impl FrameLimits {
    /// These limits with the APPEND message limit set to the server's message
    /// size limit `max`, the APPEND total and the discard limit to twice that
    /// (never below the other defaults).
    pub fn with_append_limit(mut self, max: u64) -> Self {
        self.max_append_literal = max;
        self.max_append_total = max.saturating_mul(2);
        self.max_discard = max.saturating_mul(2).max(self.max_literal);
        self
    }
}

/// Why a command was refused while framing. The session answers with
/// [`Refusal::status`], [`Refusal::code`] and [`Refusal::text`], tagged if the
/// tag could be read (else untagged `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A line exceeded [`FrameLimits::max_line`].
    LineTooLong {
        /// The limit.
        max: usize,
    },
    /// The command exceeded [`FrameLimits::max_command`].
    CommandTooLong {
        /// The limit.
        max: u64,
    },
    /// A literal outside an APPEND message exceeded [`FrameLimits::max_literal`].
    LiteralTooLarge {
        /// The announced size (`u64::MAX` if it did not even fit).
        size: u64,
        /// The limit.
        max: u64,
    },
    /// An APPEND message exceeded [`FrameLimits::max_append_literal`].
    AppendTooLarge {
        /// The announced size (`u64::MAX` if it did not even fit).
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The messages of one APPEND together exceeded
    /// [`FrameLimits::max_append_total`].
    AppendTotalTooLarge {
        /// The limit.
        max: u64,
    },
    /// More literals than [`FrameLimits::max_literals`].
    TooManyLiterals {
        /// The limit.
        max: usize,
    },
}

impl Refusal {
    /// The response status: `NO` for an APPEND that is too big (the command
    /// was fine, the message is not acceptable, RFC 7889), `BAD` otherwise.
    pub fn status(&self) -> Status {
        match self {
            Refusal::AppendTooLarge { .. } | Refusal::AppendTotalTooLarge { .. } => Status::No,
            _ => Status::Bad,
        }
    }

    /// The response code to put in brackets: `TOOBIG` for APPEND (RFC 7889),
    /// `LIMIT` (RFC 5530) for the other limits.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Refusal::AppendTooLarge { .. } | Refusal::AppendTotalTooLarge { .. } => Some("TOOBIG"),
            Refusal::TooManyLiterals { .. } | Refusal::CommandTooLong { .. } => Some("LIMIT"),
            Refusal::LineTooLong { .. } | Refusal::LiteralTooLarge { .. } => None,
        }
    }

    /// Human-readable text for the response.
    pub fn text(&self) -> String {
        match self {
            Refusal::LineTooLong { max } => format!("Command line too long (max {max} octets)"),
            Refusal::CommandTooLong { max } => format!("Command too long (max {max} octets)"),
            Refusal::LiteralTooLarge { size, max } => {
                format!("Literal of {size} octets too large (max {max})")
            }
            Refusal::AppendTooLarge { max, .. } => {
                format!("Message too large (max {max} octets)")
            }
            Refusal::AppendTotalTooLarge { max } => {
                format!("Messages too large together (max {max} octets)")
            }
            Refusal::TooManyLiterals { max } => format!("Too many literals (max {max})"),
        }
    }
}

/// What [`Framer::poll`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A whole command exactly as received: tag, lines with their CRLFs, literal
    /// announcements and literal octets. Hand it to
    /// [`parse_command`](crate::parse::parse_command).
    Command(Vec<u8>),
    /// The client announced a synchronizing literal within the limits: send a
    /// continuation request (`+ Ready for literal data`) before polling on; the
    /// framer is now reading the literal.
    Continuation,
    /// The command broke a limit. Answer `tag STATUS [CODE] text` (see
    /// [`Refusal`]; untagged `*` when `tag` is `None`), then keep polling: the
    /// framer silently discards the rest of this command first. Never followed
    /// by a `Command` for the same command.
    Refused {
        /// The command's tag, if it was read before the refusal.
        tag: Option<String>,
        /// What went wrong.
        refusal: Refusal,
    },
    /// The client sent something that cannot be skipped sensibly (a refused
    /// non-synchronizing literal over [`FrameLimits::max_discard`]): send
    /// `* BYE` with this text and close. Every later call returns this again
    /// and consumes nothing.
    Fatal(String),
}

/// What [`Framer::next_line`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawLine {
    /// One line, without its CRLF (or LF).
    Line(Vec<u8>),
    /// The line exceeded the limit given to `next_line`: the framer discards the
    /// rest of it (up to its LF) on the following calls to `next_line` or
    /// `poll`. The session answers as the command demands (AUTHENTICATE:
    /// `tag BAD`, ending the exchange).
    TooLong,
    /// The framer had failed before (see [`Frame::Fatal`]): close.
    Fatal(String),
}

/// A literal announced at the end of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Announce {
    /// Octets announced (saturated at `u64::MAX`).
    size: u64,
    /// `{n}` rather than `{n+}`.
    sync: bool,
}

/// Recognises a literal announcement at the end of a line being discarded,
/// octet by octet, without keeping the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// Nothing that could end in an announcement.
    Nothing,
    /// After `{` and `digits` digits of value `n`.
    Open { n: u64, digits: bool },
    /// After `{n+`.
    Plus { n: u64 },
    /// After `{n}` or `{n+}`, possibly followed by CR.
    Closed { a: Announce, cr: bool },
}

impl Scan {
    fn feed(self, b: u8) -> Scan {
        match (self, b) {
            (_, b'{') => Scan::Open {
                n: 0,
                digits: false,
            },
            (Scan::Open { n, .. }, b'0'..=b'9') => Scan::Open {
                n: n.saturating_mul(10).saturating_add(u64::from(b - b'0')),
                digits: true,
            },
            (Scan::Open { n, digits: true }, b'+') => Scan::Plus { n },
            (Scan::Open { n, digits: true }, b'}') => Scan::Closed {
                a: Announce {
                    size: n,
                    sync: true,
                },
                cr: false,
            },
            (Scan::Plus { n }, b'}') => Scan::Closed {
                a: Announce {
                    size: n,
                    sync: false,
                },
                cr: false,
            },
            (Scan::Closed { a, cr: false }, b'\r') => Scan::Closed { a, cr: true },
            _ => Scan::Nothing,
        }
    }

    /// The announcement, if the line ends here.
    fn announced(self) -> Option<Announce> {
        match self {
            Scan::Closed { a, .. } => Some(a),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Reading a line of a command (or the start of the next one).
    Line,
    /// Copying `remaining` literal octets into the command.
    Literal { remaining: u64 },
    /// Discarding `remaining` octets of a refused command's literal, then the
    /// rest of it.
    SkipLiteral { remaining: u64 },
    /// Discarding up to the next LF; with `literals`, a line that announces a
    /// non-synchronizing literal continues the (refused) command.
    SkipLine { scan: Scan, literals: bool },
    /// Failed; every call reports this.
    Dead(String),
}

/// The sans-I/O command framer. One per connection; see the module docs.
#[derive(Debug)]
pub struct Framer {
    limits: FrameLimits,
    state: State,
    /// The command so far.
    buf: Vec<u8>,
    /// Where the current line starts in `buf`.
    line_start: usize,
    /// Octets of the current line before its LF.
    line_len: usize,
    /// The command's size as counted against `max_command`.
    size: u64,
    /// The sum of its APPEND message literals.
    append_size: u64,
    /// Literals announced so far.
    literals: usize,
    /// The end of the first line in `buf`, once read.
    first_line_end: Option<usize>,
    /// The command is an APPEND (known at the end of the first line).
    append: bool,
    /// A raw line being read by `next_line`.
    raw: Vec<u8>,
}

impl Default for Framer {
    fn default() -> Self {
        Framer::new(FrameLimits::default())
    }
}

/// Finds a literal announcement (`{n}`, `{n+}`, `~{n}`, `~{n+}`) at the end of
/// `line` (without CRLF): its size, whether it is synchronizing, and where it
/// starts.
fn announced(line: &[u8]) -> Option<(Announce, usize)> {
    let rest = line.strip_suffix(b"}")?;
    let (rest, sync) = match rest.strip_suffix(b"+") {
        Some(r) => (r, false),
        None => (rest, true),
    };
    let digits = rest.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let open = rest.len() - digits;
    let rest = rest.get(..open)?.strip_suffix(b"{")?;
    let size = line.get(open..open + digits)?.iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    let start = match rest.strip_suffix(b"~") {
        Some(r) => r.len(),
        None => rest.len(),
    };
    Some((Announce { size, sync }, start))
}

/// The tag at the start of `line`, if it is a valid one followed by a space.
fn tag_of(line: &[u8]) -> Option<String> {
    let end = memchr::memchr(b' ', line)?;
    let tag = line.get(..end)?;
    (!tag.is_empty()
        && tag
            .iter()
            .all(|&b| crate::encode::is_astring_char(b) && b != b'+'))
    .then(|| String::from_utf8_lossy(tag).into_owned())
}

impl Framer {
    /// A framer with these limits.
    pub fn new(limits: FrameLimits) -> Self {
        Framer {
            limits,
            state: State::Line,
            buf: Vec::new(),
            line_start: 0,
            line_len: 0,
            size: 0,
            append_size: 0,
            literals: 0,
            first_line_end: None,
            append: false,
            raw: Vec::new(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &FrameLimits {
        &self.limits
    }

    /// Changes the limits, e.g. the APPEND limit once the user is known; they
    /// apply from the next literal or line on.
    pub fn set_limits(&mut self, limits: FrameLimits) {
        self.limits = limits;
    }

    /// True when no command is partly read or being discarded: the input seen
    /// so far ended exactly at a command boundary. The session uses it to
    /// check that nothing was pipelined after STARTTLS or COMPRESS.
    pub fn is_idle(&self) -> bool {
        self.state == State::Line && self.buf.is_empty() && self.raw.is_empty()
    }

    /// Octets the framer holds (the command read so far), for accounting.
    pub fn buffered(&self) -> usize {
        self.buf.len() + self.raw.len()
    }

    /// Reads from `input` (the front of the session's input buffer) until a
    /// frame is found or the input is used up.
    ///
    /// Returns `(consumed, frame)`: the framer has taken the first `consumed`
    /// octets of `input` (copied into its own buffer or discarded) and the
    /// caller must remove exactly those from its buffer before calling again
    /// with what remains plus anything read since. With `None`, all of `input`
    /// was consumed and more is needed. With `Some`, the octets after the frame
    /// are untouched, so the session can act (send a continuation, answer,
    /// start TLS or compression) before framing on. The result does not depend
    /// on how the input was split across calls.
    pub fn poll(&mut self, input: &[u8]) -> (usize, Option<Frame>) {
        let mut pos = 0;
        loop {
            let rest = input.get(pos..).unwrap_or_default();
            match self.state {
                State::Dead(ref why) => return (pos, Some(Frame::Fatal(why.clone()))),
                State::SkipLiteral { .. } | State::SkipLine { .. } => {
                    let (n, fatal) = self.skip(rest);
                    pos += n;
                    if let Some(why) = fatal {
                        return (pos, Some(Frame::Fatal(why)));
                    }
                    if matches!(
                        self.state,
                        State::SkipLiteral { .. } | State::SkipLine { .. }
                    ) {
                        return (pos, None);
                    }
                }
                State::Literal { remaining } => {
                    let take = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(rest.len());
                    self.buf
                        .extend_from_slice(rest.get(..take).unwrap_or_default());
                    pos += take;
                    let remaining = remaining - take as u64;
                    if remaining == 0 {
                        self.state = State::Line;
                        self.line_start = self.buf.len();
                        self.line_len = 0;
                    } else {
                        self.state = State::Literal { remaining };
                        return (pos, None);
                    }
                }
                State::Line => {
                    if rest.is_empty() {
                        return (pos, None);
                    }
                    let (n, frame) = self.line(rest);
                    pos += n;
                    if frame.is_some() {
                        return (pos, frame);
                    }
                }
            }
        }
    }

    /// Reads one line of a command: returns the octets consumed and a frame if
    /// one was found; with `None`, either all of `rest` was taken or the state
    /// changed (a literal follows).
    fn line(&mut self, rest: &[u8]) -> (usize, Option<Frame>) {
        // Octets that cannot cross a limit: line positions below `max_line`
        // and command octets up to `max_command`.
        let safe_line = self.limits.max_line.saturating_sub(self.line_len);
        let safe_size = usize::try_from(self.limits.max_command.saturating_sub(self.size))
            .unwrap_or(usize::MAX);
        let window = rest.get(..safe_line.min(safe_size)).unwrap_or(rest);
        if let Some(i) = memchr::memchr(b'\n', window) {
            let line = window.get(..i).unwrap_or_default();
            self.push_line(line);
            return (i + 1, self.end_of_line());
        }
        self.push_line(window);
        let Some(&b) = rest.get(window.len()) else {
            return (window.len(), None);
        };
        // The next octet is at a limit: look at it alone.
        let n = window.len() + 1;
        if b == b'\n' {
            return (n, self.end_of_line());
        }
        self.push_line(&[b]);
        // A line may hold `max_line` octets and then CR LF, so position
        // `max_line` may only be a CR, and the one after only the LF.
        let too_long = self.line_len > self.limits.max_line + 1
            || (self.line_len == self.limits.max_line + 1 && b != b'\r');
        if too_long {
            let refusal = Refusal::LineTooLong {
                max: self.limits.max_line,
            };
            return (n, Some(self.refuse_in_line(refusal)));
        }
        if self.size > self.limits.max_command {
            let refusal = Refusal::CommandTooLong {
                max: self.limits.max_command,
            };
            return (n, Some(self.refuse_in_line(refusal)));
        }
        (n, None)
    }

    fn push_line(&mut self, octets: &[u8]) {
        self.buf.extend_from_slice(octets);
        self.line_len += octets.len();
        self.size += octets.len() as u64;
    }

    /// The tag of the command being read, if known.
    fn tag(&self) -> Option<String> {
        let end = self.first_line_end.unwrap_or(self.buf.len());
        tag_of(self.buf.get(..end).unwrap_or_default())
    }

    /// Forgets the command being read.
    fn reset(&mut self) {
        self.buf.clear();
        if self.buf.capacity() > self.limits.max_line.saturating_mul(2) {
            self.buf = Vec::new();
        }
        self.line_start = 0;
        self.line_len = 0;
        self.size = 0;
        self.append_size = 0;
        self.literals = 0;
        self.first_line_end = None;
        self.append = false;
    }

    /// Refuses the command in the middle of a line and discards the rest.
    fn refuse_in_line(&mut self, refusal: Refusal) -> Frame {
        let tag = self.tag();
        let line = self.buf.get(self.line_start..).unwrap_or_default();
        let scan = line.iter().fold(Scan::Nothing, |s, &b| s.feed(b));
        self.reset();
        self.state = State::SkipLine {
            scan,
            literals: true,
        };
        Frame::Refused { tag, refusal }
    }

    /// The LF of a line was read (the line is in `buf` from `line_start`):
    /// ends the command or starts a literal.
    fn end_of_line(&mut self) -> Option<Frame> {
        self.buf.push(b'\n');
        self.size += 1;
        let end = self.buf.len();
        let line = self.buf.get(self.line_start..end - 1).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let announce = announced(line);
        let mut mailbox_literal = false;
        if self.first_line_end.is_none() {
            self.first_line_end = Some(end);
            let mut words = line.splitn(3, |&b| b == b' ');
            let _tag = words.next();
            self.append = words
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case(b"APPEND"));
            // `tag APPEND {n}`: the literal is the mailbox name, not a message.
            if let (true, Some((_, start))) = (self.append, announce) {
                mailbox_literal = words
                    .next()
                    .is_some_and(|w| line.len() - w.len() == start && w.first() == Some(&b'{'));
            }
        }
        self.line_start = end;
        self.line_len = 0;
        let Some((a, _)) = announce else {
            let command = std::mem::take(&mut self.buf);
            self.reset();
            return Some(Frame::Command(command));
        };
        self.literals += 1;
        let message = self.append && !mailbox_literal;
        let refusal = if self.literals > self.limits.max_literals {
            Some(Refusal::TooManyLiterals {
                max: self.limits.max_literals,
            })
        } else if message && a.size > self.limits.max_append_literal {
            Some(Refusal::AppendTooLarge {
                size: a.size,
                max: self.limits.max_append_literal,
            })
        } else if message && self.append_size.saturating_add(a.size) > self.limits.max_append_total
        {
            Some(Refusal::AppendTotalTooLarge {
                max: self.limits.max_append_total,
            })
        } else if !message && a.size > self.limits.max_literal {
            Some(Refusal::LiteralTooLarge {
                size: a.size,
                max: self.limits.max_literal,
            })
        } else if !message && self.size.saturating_add(a.size) > self.limits.max_command {
            Some(Refusal::CommandTooLong {
                max: self.limits.max_command,
            })
        } else {
            None
        };
        if let Some(refusal) = refusal {
            let tag = self.tag();
            self.reset();
            if a.sync {
                // The client waits for a continuation it will not get: the
                // command ends here.
                self.state = State::Line;
            } else if a.size > self.limits.max_discard {
                let why = format!("Literal of {} octets far too large, closing", a.size);
                self.state = State::Dead(why.clone());
                return Some(Frame::Fatal(why));
            } else {
                self.state = State::SkipLiteral { remaining: a.size };
            }
            return Some(Frame::Refused { tag, refusal });
        }
        if message {
            self.append_size += a.size;
        } else {
            self.size += a.size;
        }
        self.buf
            .reserve(usize::try_from(a.size.min(64 * 1024)).unwrap_or(0));
        self.state = State::Literal { remaining: a.size };
        a.sync.then_some(Frame::Continuation)
    }

    /// Discards input in the skipping states: returns the octets consumed and,
    /// if the discarded command turned out absurd, the fatal error.
    fn skip(&mut self, mut rest: &[u8]) -> (usize, Option<String>) {
        let mut pos = 0;
        loop {
            match self.state {
                State::SkipLiteral { remaining } => {
                    let take = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(rest.len());
                    pos += take;
                    rest = rest.get(take..).unwrap_or_default();
                    let remaining = remaining - take as u64;
                    if remaining > 0 {
                        self.state = State::SkipLiteral { remaining };
                        return (pos, None);
                    }
                    self.state = State::SkipLine {
                        scan: Scan::Nothing,
                        literals: true,
                    };
                }
                State::SkipLine { scan, literals } => {
                    let lf = memchr::memchr(b'\n', rest);
                    let upto = lf.unwrap_or(rest.len());
                    let line = rest.get(..upto).unwrap_or_default();
                    let scan = if literals {
                        line.iter().fold(scan, |s, &b| s.feed(b))
                    } else {
                        scan
                    };
                    let Some(lf) = lf else {
                        self.state = State::SkipLine { scan, literals };
                        return (pos + rest.len(), None);
                    };
                    pos += lf + 1;
                    rest = rest.get(lf + 1..).unwrap_or_default();
                    match scan.announced() {
                        Some(a) if literals && !a.sync => {
                            if a.size > self.limits.max_discard {
                                let why =
                                    format!("Literal of {} octets far too large, closing", a.size);
                                self.state = State::Dead(why.clone());
                                return (pos, Some(why));
                            }
                            self.state = State::SkipLiteral { remaining: a.size };
                        }
                        _ => {
                            self.state = State::Line;
                            return (pos, None);
                        }
                    }
                }
                _ => return (pos, None),
            }
        }
    }

    /// Reads one raw line of at most `max` octets before its CRLF (an
    /// AUTHENTICATE response, IDLE's `DONE`). Call it only between commands,
    /// after the command that expects the line was returned by
    /// [`poll`](Self::poll). `consumed` means what it means for `poll`; with
    /// `None` all input was consumed and more is needed.
    ///
    /// Over `max`, [`RawLine::TooLong`] is returned as soon as the limit is
    /// crossed, and the rest of the line is discarded by the next calls.
    pub fn next_line(&mut self, input: &[u8], max: usize) -> (usize, Option<RawLine>) {
        let mut pos = 0;
        loop {
            let rest = input.get(pos..).unwrap_or_default();
            match self.state {
                State::Dead(ref why) => return (pos, Some(RawLine::Fatal(why.clone()))),
                State::SkipLiteral { .. } | State::SkipLine { .. } => {
                    let (n, fatal) = self.skip(rest);
                    pos += n;
                    if let Some(why) = fatal {
                        return (pos, Some(RawLine::Fatal(why)));
                    }
                    if self.state != State::Line {
                        return (pos, None);
                    }
                }
                // Not expected between commands; a literal belongs to a command
                // and is read by `poll`.
                State::Literal { .. } => return self.poll_as_raw(input, pos),
                State::Line => {
                    if rest.is_empty() {
                        return (pos, None);
                    }
                    // Positions below `max` are always fine; the LF may come at
                    // `max`, or after a CR there.
                    let safe = max.saturating_sub(self.raw.len());
                    let window = rest.get(..safe).unwrap_or(rest);
                    let lf = memchr::memchr(b'\n', window).or_else(|| {
                        (rest.get(window.len()) == Some(&b'\n')).then_some(window.len())
                    });
                    if let Some(i) = lf {
                        self.raw
                            .extend_from_slice(rest.get(..i).unwrap_or_default());
                        pos += i + 1;
                        let mut line = std::mem::take(&mut self.raw);
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                        return (pos, Some(RawLine::Line(line)));
                    }
                    self.raw.extend_from_slice(window);
                    pos += window.len();
                    let Some(&b) = rest.get(window.len()) else {
                        return (pos, None);
                    };
                    self.raw.push(b);
                    pos += 1;
                    let over =
                        self.raw.len() > max + 1 || (self.raw.len() == max + 1 && b != b'\r');
                    if over {
                        self.raw = Vec::new();
                        self.state = State::SkipLine {
                            scan: Scan::Nothing,
                            literals: false,
                        };
                        return (pos, Some(RawLine::TooLong));
                    }
                }
            }
        }
    }

    /// `next_line` called in the middle of a literal: finish it through
    /// `poll` (a contract violation, handled without panicking).
    fn poll_as_raw(&mut self, input: &[u8], pos: usize) -> (usize, Option<RawLine>) {
        let (n, frame) = self.poll(input.get(pos..).unwrap_or_default());
        let raw = match frame {
            Some(Frame::Command(c)) => Some(RawLine::Line(c)),
            Some(Frame::Fatal(why)) => Some(RawLine::Fatal(why)),
            Some(Frame::Refused { .. }) => Some(RawLine::TooLong),
            Some(Frame::Continuation) | None => None,
        };
        (pos + n, raw)
    }
}

#[cfg(test)]
mod tests;
