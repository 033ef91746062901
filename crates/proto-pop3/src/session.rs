//! The session state machine.

use pochta_addr::Secret;
use pochta_sasl::{Credentials, Mechanism, SaslServer, Step};

/// Longest command line RFC 2449 §4 allows, CRLF included.
pub const MAX_COMMAND: usize = 255;
/// Longest AUTH line (a SASL initial response or continuation) we accept.
pub const MAX_AUTH_LINE: usize = 8192;

/// Per-session settings.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// True when STLS can be offered (a certificate is configured).
    pub starttls: bool,
    /// Error replies tolerated before the session is closed.
    pub max_errors: u32,
}

/// One message of the maildrop, as the driver loaded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaildropEntry {
    /// The store's id of the message, handed back in [`Action::Retrieve`] and [`Action::Commit`].
    pub id: u64,
    /// Exact size in octets of what RETR sends (before byte-stuffing).
    pub size: u64,
    /// The unique-id listing value: stable across sessions, never reused.
    pub uidl: String,
}

/// What the session needs from its driver next.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Write [`Session::output`], then read more bytes (or call [`Session::eof`]).
    NeedInput,
    /// Write the output, run the TLS handshake, call [`Session::tls_established`].
    StartTls,
    /// Check credentials; answer with [`Session::answer_auth`].
    Authenticate(Credentials),
    /// Lock and load the authenticated user's maildrop; answer with [`Session::answer_maildrop`].
    OpenMaildrop,
    /// Read a message's bytes; answer with [`Session::answer_message`].
    Retrieve {
        /// The store id from [`MaildropEntry::id`].
        id: u64,
    },
    /// QUIT in the TRANSACTION state: remove `delete` for good (in one transaction)
    /// and mark `retrieved` as seen; answer with [`Session::answer_commit`].
    Commit {
        /// Messages marked with DELE.
        delete: Vec<u64>,
        /// Messages sent with RETR (and not deleted).
        retrieved: Vec<u64>,
    },
    /// Write the output and close. If a maildrop was opened, unlock it.
    Close,
}

/// The driver's answer to [`Action::Authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthVerdict {
    /// Valid; the session will ask for the maildrop next.
    Accept {
        /// The account name, for logs.
        user: String,
    },
    /// Wrong credentials.
    Failed,
    /// Too many failures: locked out for a while.
    Throttled,
    /// The check could not be made.
    TempFail,
}

/// Why the maildrop could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaildropError {
    /// Another POP3 session holds it ([IN-USE], RFC 2449 §8.1.1).
    InUse,
    /// The store failed ([SYS/TEMP], RFC 3206).
    TempFail,
}

#[derive(Debug)]
enum State {
    /// AUTHORIZATION: waiting for a command.
    Auth,
    /// AUTHORIZATION, after USER: waiting for PASS.
    User(String),
    /// Inside an AUTH exchange.
    Sasl(SaslServer),
    /// TRANSACTION.
    Transaction,
    /// Waiting for the driver.
    Waiting(Pending),
    /// +OK sent to STLS; waiting for the handshake.
    Tls,
    /// Closing after the output is written.
    Closing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Auth,
    Maildrop,
    Message { index: usize, top: Option<u64> },
    Commit,
}

struct Message {
    entry: MaildropEntry,
    deleted: bool,
    retrieved: bool,
}

/// Counters for the per-session log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Messages sent with RETR.
    pub retrieved: u32,
    /// Messages deleted at QUIT.
    pub deleted: u32,
    /// Error replies.
    pub errors: u32,
}

/// One POP3 server session.
pub struct Session {
    cfg: SessionConfig,
    state: State,
    input: Vec<u8>,
    start: usize,
    /// Replies waiting to be written.
    pub output: Vec<u8>,
    discarding_line: bool,
    tls: bool,
    user: Option<String>,
    maildrop: Vec<Message>,
    opened: bool,
    stats: SessionStats,
    shutting_down: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("state", &self.state)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("messages", &self.maildrop.len())
            .finish()
    }
}

impl Session {
    /// A new session with the greeting queued. `tls` is true on an implicit-TLS port.
    pub fn new(cfg: SessionConfig, tls: bool) -> Session {
        let mut s = Session {
            cfg,
            state: State::Auth,
            input: Vec::new(),
            start: 0,
            output: Vec::with_capacity(256),
            discarding_line: false,
            tls,
            user: None,
            maildrop: Vec::new(),
            opened: false,
            stats: SessionStats::default(),
            shutting_down: false,
        };
        s.ok("pochta POP3 server ready");
        s
    }

    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        if matches!(self.state, State::Closing) {
            return;
        }
        self.input.extend_from_slice(bytes);
    }

    /// The peer went away: nothing is deleted (RFC 1939 §6: no UPDATE without QUIT).
    pub fn eof(&mut self) {
        self.state = State::Closing;
    }

    /// The server is shutting down: the session ends without UPDATE at the next poll
    /// unless a reply is being prepared.
    pub fn shutdown(&mut self) {
        self.shutting_down = true;
    }

    /// The TLS handshake after STLS succeeded.
    pub fn tls_established(&mut self) {
        self.tls = true;
        if matches!(self.state, State::Tls) {
            self.state = State::Auth;
        }
    }

    /// The logged-in user.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// True once the maildrop is open (the driver must unlock it at the end).
    pub fn maildrop_open(&self) -> bool {
        self.opened
    }

    /// True when encrypted.
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// Counters for logging.
    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    fn ok(&mut self, text: &str) {
        self.output.extend_from_slice(b"+OK");
        if !text.is_empty() {
            self.output.push(b' ');
            self.output.extend_from_slice(text.as_bytes());
        }
        self.output.extend_from_slice(b"\r\n");
    }

    fn err(&mut self, text: &str) {
        self.stats.errors += 1;
        self.output.extend_from_slice(b"-ERR ");
        self.output.extend_from_slice(text.as_bytes());
        self.output.extend_from_slice(b"\r\n");
        if self.stats.errors >= self.cfg.max_errors && !matches!(self.state, State::Closing) {
            self.output
                .extend_from_slice(b"-ERR Too many errors, closing connection\r\n");
            self.state = State::Closing;
        }
    }

    fn take_pending(&mut self, want: fn(&Pending) -> bool) -> Option<Pending> {
        match &self.state {
            State::Waiting(p) if want(p) => {
                let p = *p;
                self.state = State::Auth;
                Some(p)
            }
            _ => None,
        }
    }

    /// Answers [`Action::Authenticate`].
    pub fn answer_auth(&mut self, verdict: AuthVerdict) {
        if self.take_pending(|p| *p == Pending::Auth).is_none() {
            return;
        }
        match verdict {
            AuthVerdict::Accept { user } => {
                self.user = Some(user);
                self.state = State::Waiting(Pending::Maildrop);
            }
            AuthVerdict::Failed => self.err("[AUTH] Authentication failed"),
            AuthVerdict::Throttled => {
                self.err("[AUTH] Too many failed logins, try again later");
                self.state = State::Closing;
            }
            AuthVerdict::TempFail => {
                self.err("[SYS/TEMP] Authentication temporarily unavailable, try again later")
            }
        }
    }

    /// Answers [`Action::OpenMaildrop`] with the messages of the maildrop (in order;
    /// message numbers are positions in this list, from 1).
    pub fn answer_maildrop(&mut self, result: Result<Vec<MaildropEntry>, MaildropError>) {
        if self.take_pending(|p| *p == Pending::Maildrop).is_none() {
            return;
        }
        match result {
            Ok(entries) => {
                self.opened = true;
                let count = entries.len();
                let octets: u64 = entries.iter().map(|e| e.size).sum();
                self.maildrop = entries
                    .into_iter()
                    .map(|entry| Message {
                        entry,
                        deleted: false,
                        retrieved: false,
                    })
                    .collect();
                self.state = State::Transaction;
                self.ok(&format!("Logged in, {} ({octets} octets)", messages(count)));
            }
            Err(MaildropError::InUse) => {
                self.user = None;
                self.err("[IN-USE] The mailbox is locked by another POP3 session");
            }
            Err(MaildropError::TempFail) => {
                self.user = None;
                self.err("[SYS/TEMP] Cannot open the mailbox, try again later");
            }
        }
    }

    /// Answers [`Action::Retrieve`] with the message bytes (or `None` if they
    /// could not be read).
    pub fn answer_message(&mut self, bytes: Option<&[u8]>) {
        let Some(Pending::Message { index, top }) =
            self.take_pending(|p| matches!(p, Pending::Message { .. }))
        else {
            return;
        };
        self.state = State::Transaction;
        let Some(bytes) = bytes else {
            self.err("[SYS/TEMP] Cannot read the message, try again later");
            return;
        };
        let body = match top {
            None => {
                if let Some(m) = self.maildrop.get_mut(index) {
                    m.retrieved = true;
                }
                self.stats.retrieved += 1;
                let size = self.maildrop.get(index).map(|m| m.entry.size).unwrap_or(0);
                self.ok(&format!("{size} octets"));
                bytes
            }
            Some(lines) => {
                self.ok("");
                top_of(bytes, lines)
            }
        };
        write_stuffed(&mut self.output, body);
    }

    /// Answers [`Action::Commit`]. The session ends either way.
    pub fn answer_commit(&mut self, ok: bool) {
        if self.take_pending(|p| *p == Pending::Commit).is_none() {
            return;
        }
        let deleted = self.maildrop.iter().filter(|m| m.deleted).count();
        if ok {
            self.stats.deleted = deleted as u32;
            let left = self.maildrop.len() - deleted;
            self.ok(&format!(
                "pochta POP3 server signing off ({} deleted, {left} left)",
                messages(deleted)
            ));
        } else {
            self.err(
                "[SYS/TEMP] Some deleted messages were not removed; they will be back next time",
            );
        }
        self.state = State::Closing;
    }

    /// Runs the machine on the buffered input until it needs the driver.
    pub fn poll(&mut self) -> Action {
        loop {
            if self.shutting_down
                && matches!(
                    self.state,
                    State::Auth | State::User(_) | State::Sasl(_) | State::Transaction
                )
            {
                self.err("[SYS/TEMP] Server shutting down, try again later");
                self.state = State::Closing;
            }
            match &self.state {
                State::Closing => return Action::Close,
                State::Tls => return Action::NeedInput,
                State::Waiting(Pending::Maildrop) => return Action::OpenMaildrop,
                State::Waiting(_) => return Action::NeedInput,
                _ => {}
            }
            let limit = if matches!(self.state, State::Sasl(_)) {
                MAX_AUTH_LINE
            } else {
                MAX_AUTH_LINE.max(MAX_COMMAND)
            };
            let Some(line) = self.next_line(limit) else {
                return Action::NeedInput;
            };
            let action = if matches!(self.state, State::Sasl(_)) {
                self.sasl_line(&line)
            } else {
                self.command(&line)
            };
            if let Some(a) = action {
                return a;
            }
        }
    }

    fn next_line(&mut self, limit: usize) -> Option<Vec<u8>> {
        loop {
            let pending = &self.input[self.start..];
            match memchr::memchr(b'\n', pending) {
                Some(pos) => {
                    let line = pending[..=pos].to_vec();
                    self.start += pos + 1;
                    if self.discarding_line {
                        self.discarding_line = false;
                        continue;
                    }
                    return Some(line);
                }
                None => {
                    if pending.len() > limit && !self.discarding_line {
                        self.discarding_line = true;
                        self.err("Line too long");
                    }
                    if self.discarding_line {
                        self.start = self.input.len();
                    }
                    self.input.drain(..self.start);
                    self.start = 0;
                    return None;
                }
            }
        }
    }

    fn command(&mut self, raw: &[u8]) -> Option<Action> {
        let line = trim_eol(raw);
        let text = String::from_utf8_lossy(line).into_owned();
        let (verb, args) = match text.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.to_string()),
            None => (text.to_ascii_uppercase(), String::new()),
        };
        // RFC 2449 §4: commands are at most 255 octets; only AUTH carries more.
        if raw.len() > MAX_COMMAND && verb != "AUTH" {
            self.err("Line too long");
            return None;
        }
        let transaction = matches!(self.state, State::Transaction);
        match verb.as_str() {
            "CAPA" => self.capa(),
            "QUIT" => return self.quit(),
            "NOOP" if transaction => self.ok(""),
            "STLS" if !transaction => return self.stls(&args),
            "USER" if !transaction => self.user_cmd(&args),
            "PASS" if !transaction => return self.pass(args),
            "AUTH" if !transaction => return self.auth(&args),
            "UTF8" if !transaction => self.ok("UTF8 enabled"),
            "STAT" if transaction => self.stat(),
            "LIST" if transaction => self.list(&args),
            "UIDL" if transaction => self.uidl(&args),
            "RETR" if transaction => return self.retr(&args),
            "TOP" if transaction => return self.top(&args),
            "DELE" if transaction => self.dele(&args),
            "RSET" if transaction => self.rset(),
            "APOP" => self.err("APOP is not supported; use USER/PASS or AUTH over TLS"),
            "STAT" | "LIST" | "UIDL" | "RETR" | "TOP" | "DELE" | "RSET" | "NOOP" => {
                self.err("Not logged in")
            }
            "STLS" | "USER" | "PASS" | "AUTH" | "UTF8" => self.err("Already logged in"),
            "" => self.err("Empty command"),
            _ => {
                let shown: String = verb
                    .chars()
                    .filter(|c| c.is_ascii_graphic())
                    .take(20)
                    .collect();
                self.err(&format!("Unknown command {shown}"));
            }
        }
        None
    }

    fn capa(&mut self) {
        let mut lines = vec![
            "TOP",
            "UIDL",
            "RESP-CODES",
            "AUTH-RESP-CODE",
            "PIPELINING",
            "UTF8",
        ];
        // Before TLS, logging in is impossible: say so by offering only STLS.
        if self.tls {
            lines.push("USER");
            lines.push("SASL PLAIN LOGIN");
        } else if self.cfg.starttls {
            lines.push("STLS");
        }
        lines.push("IMPLEMENTATION pochta");
        self.ok("Capability list follows");
        for l in lines {
            self.output.extend_from_slice(l.as_bytes());
            self.output.extend_from_slice(b"\r\n");
        }
        self.output.extend_from_slice(b".\r\n");
    }

    fn quit(&mut self) -> Option<Action> {
        if matches!(self.state, State::Transaction) {
            let delete: Vec<u64> = self
                .maildrop
                .iter()
                .filter(|m| m.deleted)
                .map(|m| m.entry.id)
                .collect();
            let retrieved: Vec<u64> = self
                .maildrop
                .iter()
                .filter(|m| m.retrieved && !m.deleted)
                .map(|m| m.entry.id)
                .collect();
            if delete.is_empty() && retrieved.is_empty() {
                let n = self.maildrop.len();
                self.ok(&format!(
                    "pochta POP3 server signing off (0 messages deleted, {n} left)"
                ));
                self.state = State::Closing;
                return None;
            }
            self.state = State::Waiting(Pending::Commit);
            return Some(Action::Commit { delete, retrieved });
        }
        self.ok("pochta POP3 server signing off");
        self.state = State::Closing;
        None
    }

    fn stls(&mut self, args: &str) -> Option<Action> {
        if self.tls {
            self.err("Already using TLS");
        } else if !self.cfg.starttls {
            self.err("STLS is not available");
        } else if !args.trim().is_empty() {
            self.err("STLS takes no arguments");
        } else {
            self.ok("Begin TLS negotiation");
            // Clear text pipelined after STLS must not be run after the upgrade.
            self.input.clear();
            self.start = 0;
            self.discarding_line = false;
            self.state = State::Tls;
            return Some(Action::StartTls);
        }
        None
    }

    fn require_tls(&mut self) -> bool {
        if !self.tls {
            self.err("[AUTH] Plain-text authentication is not allowed without TLS; use STLS first");
            return false;
        }
        true
    }

    fn user_cmd(&mut self, args: &str) {
        if !self.require_tls() {
            return;
        }
        let name = args.trim();
        if name.is_empty() {
            self.err("USER needs a name");
            return;
        }
        // Never reveal whether the user exists (RFC 1939 §13).
        self.state = State::User(name.to_string());
        self.ok("Send PASS");
    }

    fn pass(&mut self, args: String) -> Option<Action> {
        if !self.require_tls() {
            return None;
        }
        let State::User(login) = std::mem::replace(&mut self.state, State::Auth) else {
            self.err("Send USER first");
            return None;
        };
        // The password is the rest of the line, spaces included (RFC 1939 §7).
        let password = args;
        if password.is_empty() {
            self.err("PASS needs a password");
            return None;
        }
        self.state = State::Waiting(Pending::Auth);
        Some(Action::Authenticate(Credentials {
            authzid: None,
            login,
            password: Secret::new(password),
        }))
    }

    fn auth(&mut self, args: &str) -> Option<Action> {
        let mut parts = args.split_whitespace();
        let Some(mech_name) = parts.next() else {
            // Bare AUTH lists the mechanisms (a widespread pre-RFC 5034 convention).
            if self.tls {
                self.ok("Methods follow");
                for m in Mechanism::ALL {
                    self.output.extend_from_slice(m.name().as_bytes());
                    self.output.extend_from_slice(b"\r\n");
                }
                self.output.extend_from_slice(b".\r\n");
            } else {
                self.require_tls();
            }
            return None;
        };
        if !self.require_tls() {
            return None;
        }
        let Some(mech) = Mechanism::parse(mech_name) else {
            self.err("Unsupported authentication mechanism");
            return None;
        };
        let mut sasl = SaslServer::new(mech);
        let step = sasl.start_encoded(parts.next().map(str::as_bytes));
        self.sasl_step(sasl, step)
    }

    fn sasl_line(&mut self, line: &[u8]) -> Option<Action> {
        let State::Sasl(mut sasl) = std::mem::replace(&mut self.state, State::Auth) else {
            return None;
        };
        let step = sasl.step_line(line);
        self.sasl_step(sasl, step)
    }

    fn sasl_step(&mut self, sasl: SaslServer, step: Step) -> Option<Action> {
        match step {
            Step::Challenge(c) => {
                self.output.extend_from_slice(b"+ ");
                self.output
                    .extend_from_slice(pochta_sasl::encode_challenge(&c).as_bytes());
                self.output.extend_from_slice(b"\r\n");
                self.state = State::Sasl(sasl);
                None
            }
            Step::Done(c) => {
                self.state = State::Waiting(Pending::Auth);
                Some(Action::Authenticate(c))
            }
            Step::Failed(pochta_sasl::SaslError::Cancelled) => {
                self.err("Authentication cancelled");
                None
            }
            Step::Failed(e) => {
                self.err(&format!("[AUTH] {e}"));
                None
            }
        }
    }

    /// Parses a message number and finds the live message (RFC 1939 §5).
    fn message(&mut self, arg: &str) -> Option<usize> {
        let n = match arg.trim().parse::<usize>() {
            Ok(n) if n >= 1 && arg.trim().bytes().all(|b| b.is_ascii_digit()) => n,
            _ => {
                self.err("Invalid message number");
                return None;
            }
        };
        match self.maildrop.get(n - 1) {
            None => {
                self.err(&format!("No message {n}"));
                None
            }
            Some(m) if m.deleted => {
                self.err(&format!("Message {n} is deleted"));
                None
            }
            Some(_) => Some(n - 1),
        }
    }

    fn stat(&mut self) {
        let live = self.maildrop.iter().filter(|m| !m.deleted);
        let (count, octets) = live.fold((0u64, 0u64), |(c, o), m| (c + 1, o + m.entry.size));
        self.ok(&format!("{count} {octets}"));
    }

    fn list(&mut self, args: &str) {
        if args.trim().is_empty() {
            let count = self.maildrop.iter().filter(|m| !m.deleted).count();
            self.ok(&messages(count));
            let mut out = String::new();
            for (i, m) in self.maildrop.iter().enumerate().filter(|(_, m)| !m.deleted) {
                out.push_str(&format!("{} {}\r\n", i + 1, m.entry.size));
            }
            out.push_str(".\r\n");
            self.output.extend_from_slice(out.as_bytes());
        } else if let Some(i) = self.message(args) {
            let size = self.maildrop[i].entry.size;
            self.ok(&format!("{} {size}", i + 1));
        }
    }

    fn uidl(&mut self, args: &str) {
        if args.trim().is_empty() {
            self.ok("Unique-ID listing follows");
            let mut out = String::new();
            for (i, m) in self.maildrop.iter().enumerate().filter(|(_, m)| !m.deleted) {
                out.push_str(&format!("{} {}\r\n", i + 1, m.entry.uidl));
            }
            out.push_str(".\r\n");
            self.output.extend_from_slice(out.as_bytes());
        } else if let Some(i) = self.message(args) {
            let uidl = self.maildrop[i].entry.uidl.clone();
            self.ok(&format!("{} {uidl}", i + 1));
        }
    }

    fn retr(&mut self, args: &str) -> Option<Action> {
        let i = self.message(args)?;
        self.state = State::Waiting(Pending::Message {
            index: i,
            top: None,
        });
        Some(Action::Retrieve {
            id: self.maildrop[i].entry.id,
        })
    }

    fn top(&mut self, args: &str) -> Option<Action> {
        let mut parts = args.split_whitespace();
        let (Some(msg), Some(lines), None) = (parts.next(), parts.next(), parts.next()) else {
            self.err("Usage: TOP message lines");
            return None;
        };
        let Ok(lines) = lines.parse::<u64>() else {
            self.err("Invalid number of lines");
            return None;
        };
        let i = self.message(msg)?;
        self.state = State::Waiting(Pending::Message {
            index: i,
            top: Some(lines),
        });
        Some(Action::Retrieve {
            id: self.maildrop[i].entry.id,
        })
    }

    fn dele(&mut self, args: &str) {
        if let Some(i) = self.message(args) {
            self.maildrop[i].deleted = true;
            self.ok(&format!("Message {} deleted", i + 1));
        }
    }

    fn rset(&mut self) {
        for m in &mut self.maildrop {
            m.deleted = false;
        }
        let count = self.maildrop.len();
        let octets: u64 = self.maildrop.iter().map(|m| m.entry.size).sum();
        self.ok(&format!("{} ({octets} octets)", messages(count)));
    }
}

/// "1 message", "2 messages".
fn messages(n: usize) -> String {
    if n == 1 {
        "1 message".into()
    } else {
        format!("{n} messages")
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let mut l = line;
    while let [rest @ .., b'\r' | b'\n'] = l {
        l = rest;
    }
    l
}

/// The header and the first `lines` lines of the body (RFC 1939 TOP).
fn top_of(msg: &[u8], lines: u64) -> &[u8] {
    let header_end = memchr::memmem::find(msg, b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(msg.len());
    let mut end = header_end;
    for _ in 0..lines {
        if end >= msg.len() {
            break;
        }
        end = match memchr::memchr(b'\n', &msg[end..]) {
            Some(p) => end + p + 1,
            None => msg.len(),
        };
    }
    &msg[..end]
}

/// Writes a multi-line response body: lines starting with `.` get another one
/// (RFC 1939 §3), the text ends with CRLF, then the terminating `.` line.
pub fn write_stuffed(out: &mut Vec<u8>, body: &[u8]) {
    out.reserve(body.len() + body.len() / 64 + 5);
    let mut at_line_start = true;
    let mut rest = body;
    while !rest.is_empty() {
        if at_line_start && rest[0] == b'.' {
            out.push(b'.');
        }
        match memchr::memchr(b'\n', rest) {
            Some(p) => {
                out.extend_from_slice(&rest[..=p]);
                rest = &rest[p + 1..];
                at_line_start = true;
            }
            None => {
                out.extend_from_slice(rest);
                rest = &[];
                at_line_start = false;
            }
        }
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}
