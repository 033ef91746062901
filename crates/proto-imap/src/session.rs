//! The IMAP connection as a sans-I/O state machine: greeting, framing,
//! CAPABILITY, STARTTLS, LOGIN/AUTHENTICATE, ID, IDLE, COMPRESS, LOGOUT and the
//! state rules of RFC 9051 §3. Commands that work on mail are handed to the
//! driver as [`Action::Execute`]; it runs them on the store and reports the
//! state change back with [`Session::executed`].
//!
//! As with the SMTP and POP3 sessions, the driver feeds bytes, polls for actions,
//! answers them, and writes [`Session::output`] before it reads again.

use pochta_addr::Secret;
use pochta_sasl::{Credentials, Mechanism, SaslServer, Step};

use crate::encode::{self, Status};
use crate::frame::{Frame, FrameLimits, Framer, RawLine};
use crate::parse::parse_command;
use crate::types::{Command, CommandBody};

/// Longest AUTHENTICATE response line.
const MAX_SASL_LINE: usize = 8192;
/// Failed logins tolerated in one connection.
const MAX_AUTH_FAILURES: u32 = 3;

/// Per-connection settings.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// STARTTLS can be offered (a certificate is configured).
    pub starttls: bool,
    /// Framing limits (see [`FrameLimits`]).
    pub limits: FrameLimits,
    /// APPENDLIMIT advertised in CAPABILITY.
    pub append_limit: u64,
    /// BAD responses tolerated before the connection is closed.
    pub max_errors: u32,
    /// The server's name in the greeting.
    pub hostname: String,
}

/// RFC 9051 §3 connection states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Before login.
    NotAuthenticated,
    /// Logged in, no mailbox selected.
    Authenticated,
    /// A mailbox is selected.
    Selected,
    /// Closing.
    Logout,
}

/// What the driver must do next.
#[derive(Debug)]
pub enum Action {
    /// Write the output, then read more input (or call [`Session::eof`]).
    NeedInput,
    /// Write the output, run the TLS handshake, call [`Session::tls_established`].
    StartTls,
    /// Write the output (the OK), then compress both directions (RFC 4978).
    Compress,
    /// Check credentials; answer with [`Session::answer_auth`].
    Authenticate {
        /// The command's tag.
        tag: String,
        /// Login name and password.
        credentials: Credentials,
    },
    /// Write the output, run the command on the store (writing its responses and
    /// tagged completion), then call [`Session::executed`].
    Execute(Command),
    /// Write the output (`+ idling`); until the next poll returns
    /// [`Action::IdleDone`], report changes as untagged responses.
    Idle,
    /// The client sent DONE: write the final updates, then call
    /// [`Session::idle_finished`].
    IdleDone,
    /// Write the output and close.
    Close,
}

/// The driver's answer to [`Action::Authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthVerdict {
    /// Logged in.
    Accept,
    /// Wrong credentials.
    Failed,
    /// Locked out for now.
    Throttled,
    /// The check could not be made.
    TempFail,
}

/// How an executed command changed the state (mirrors the executor's result).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Executed {
    /// No change.
    Same,
    /// Now selected.
    Selected,
    /// Now only authenticated.
    Deselected,
    /// Close (a BYE was written).
    Bye,
}

#[derive(Debug)]
enum Mode {
    /// Reading commands.
    Commands,
    /// Inside AUTHENTICATE.
    Sasl { tag: String, server: SaslServer },
    /// Waiting for the driver (auth, execute, TLS).
    Waiting,
    /// In IDLE, waiting for DONE.
    Idling { tag: String },
    /// Closing.
    Closed,
}

/// One IMAP connection.
pub struct Session {
    cfg: SessionConfig,
    framer: Framer,
    input: Vec<u8>,
    /// Responses waiting to be written.
    pub output: Vec<u8>,
    state: State,
    mode: Mode,
    tls: bool,
    compress: bool,
    auth_failures: u32,
    errors: u32,
    pending_tag: Option<String>,
    shutting_down: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("state", &self.state)
            .field("mode", &self.mode)
            .field("tls", &self.tls)
            .finish()
    }
}

impl Session {
    /// A new connection with the greeting queued; `tls` on an implicit-TLS port.
    pub fn new(cfg: SessionConfig, tls: bool) -> Session {
        let mut s = Session {
            framer: Framer::new(cfg.limits),
            cfg,
            input: Vec::new(),
            output: Vec::with_capacity(512),
            state: State::NotAuthenticated,
            mode: Mode::Commands,
            tls,
            compress: false,
            auth_failures: 0,
            errors: 0,
            pending_tag: None,
            shutting_down: false,
        };
        let caps = s.capabilities();
        let text = format!("{} IMAP4rev2 server ready", s.cfg.hostname);
        encode::status(
            &mut s.output,
            "*",
            Status::Ok,
            Some(&format!("CAPABILITY {caps}")),
            &text,
        );
        s
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// True when encrypted.
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// Commands answered BAD so far (malformed, over a limit): for the
    /// connection's log line, where abuse shows.
    pub fn errors(&self) -> u32 {
        self.errors
    }

    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        if !matches!(self.mode, Mode::Closed) {
            self.input.extend_from_slice(bytes);
        }
    }

    /// The peer closed.
    pub fn eof(&mut self) {
        self.mode = Mode::Closed;
    }

    /// The server is shutting down: the next poll says BYE.
    pub fn shutdown(&mut self) {
        self.shutting_down = true;
    }

    /// The capability list for the current state (RFC 9051 §7.2.2).
    pub fn capabilities(&self) -> String {
        let mut caps = vec![
            "IMAP4rev1",
            "IMAP4rev2",
            "SASL-IR",
            "LITERAL+",
            "ID",
            "ENABLE",
            "IDLE",
        ];
        match self.state {
            State::NotAuthenticated => {
                if self.tls {
                    caps.extend(["AUTH=PLAIN", "AUTH=LOGIN"]);
                } else {
                    if self.cfg.starttls {
                        caps.push("STARTTLS");
                    }
                    caps.push("LOGINDISABLED");
                }
            }
            _ => {
                caps.extend([
                    "NAMESPACE",
                    "UIDPLUS",
                    "MOVE",
                    "UNSELECT",
                    "CHILDREN",
                    "LIST-EXTENDED",
                    "LIST-STATUS",
                    "SPECIAL-USE",
                    "CREATE-SPECIAL-USE",
                    "ESEARCH",
                    "SEARCHRES",
                    "CONDSTORE",
                    "QRESYNC",
                    "SORT",
                    "SORT=DISPLAY",
                    "ESORT",
                    "THREAD=ORDEREDSUBJECT",
                    "THREAD=REFERENCES",
                    "STATUS=SIZE",
                    "OBJECTID",
                    "UTF8=ACCEPT",
                    "QUOTA",
                    "QUOTA=RES-STORAGE",
                    "MULTIAPPEND",
                    "BINARY",
                    "WITHIN",
                    "PREVIEW",
                ]);
                if !self.compress {
                    caps.push("COMPRESS=DEFLATE");
                }
            }
        }
        let mut s = caps.join(" ");
        if self.state != State::NotAuthenticated {
            s.push_str(&format!(" APPENDLIMIT={}", self.cfg.append_limit));
        }
        s
    }

    fn respond(&mut self, tag: &str, status: Status, code: Option<&str>, text: &str) {
        if matches!(status, Status::Bad) {
            self.errors += 1;
        }
        encode::status(&mut self.output, tag, status, code, text);
        if self.errors >= self.cfg.max_errors && !matches!(self.mode, Mode::Closed) {
            encode::status(
                &mut self.output,
                "*",
                Status::Bye,
                None,
                "Too many invalid commands",
            );
            self.mode = Mode::Closed;
        }
    }

    /// The TLS handshake after STARTTLS succeeded.
    pub fn tls_established(&mut self) {
        self.tls = true;
        self.mode = Mode::Commands;
    }

    /// Compression is on in both directions.
    pub fn compress_started(&mut self) {
        self.compress = true;
        self.mode = Mode::Commands;
    }

    /// Answers [`Action::Authenticate`].
    pub fn answer_auth(&mut self, verdict: AuthVerdict) {
        let Some(tag) = self.pending_tag.take() else {
            return;
        };
        self.mode = Mode::Commands;
        match verdict {
            AuthVerdict::Accept => {
                self.state = State::Authenticated;
                let caps = self.capabilities();
                self.respond(
                    &tag,
                    Status::Ok,
                    Some(&format!("CAPABILITY {caps}")),
                    "Logged in",
                );
            }
            AuthVerdict::Failed => {
                self.auth_failures += 1;
                self.respond(
                    &tag,
                    Status::No,
                    Some("AUTHENTICATIONFAILED"),
                    "Authentication failed",
                );
                if self.auth_failures >= MAX_AUTH_FAILURES {
                    encode::status(
                        &mut self.output,
                        "*",
                        Status::Bye,
                        None,
                        "Too many failed logins",
                    );
                    self.mode = Mode::Closed;
                }
            }
            AuthVerdict::Throttled => {
                self.respond(
                    &tag,
                    Status::No,
                    Some("UNAVAILABLE"),
                    "Too many failed logins, try again later",
                );
                encode::status(&mut self.output, "*", Status::Bye, None, "Closing");
                self.mode = Mode::Closed;
            }
            AuthVerdict::TempFail => self.respond(
                &tag,
                Status::No,
                Some("UNAVAILABLE"),
                "Authentication is temporarily unavailable",
            ),
        }
    }

    /// Reports what [`Action::Execute`] did to the state.
    pub fn executed(&mut self, result: Executed) {
        self.mode = Mode::Commands;
        match result {
            Executed::Same => {}
            Executed::Selected => self.state = State::Selected,
            Executed::Deselected => self.state = State::Authenticated,
            Executed::Bye => self.mode = Mode::Closed,
        }
    }

    /// Writes the end of IDLE (after the driver wrote the final updates).
    pub fn idle_finished(&mut self) {
        if let Some(tag) = self.pending_tag.take() {
            self.respond(&tag, Status::Ok, None, "IDLE terminated");
        }
        self.mode = Mode::Commands;
    }

    /// True while in IDLE.
    pub fn idling(&self) -> bool {
        matches!(self.mode, Mode::Idling { .. })
    }

    /// Runs the machine on the buffered input until it needs the driver.
    pub fn poll(&mut self) -> Action {
        loop {
            if self.shutting_down && matches!(self.mode, Mode::Commands | Mode::Idling { .. }) {
                encode::status(
                    &mut self.output,
                    "*",
                    Status::Bye,
                    None,
                    "Server shutting down",
                );
                self.mode = Mode::Closed;
            }
            match &self.mode {
                Mode::Closed => return Action::Close,
                Mode::Waiting => return Action::NeedInput,
                Mode::Idling { .. } => {
                    if let Some(a) = self.idle_line() {
                        return a;
                    }
                }
                Mode::Sasl { .. } => {
                    if let Some(a) = self.sasl_line() {
                        return a;
                    }
                    // A challenge was sent: go on with the client's next line
                    // if it is already here (the framer only says "need more"
                    // once it has consumed all the input).
                    if matches!(self.mode, Mode::Sasl { .. }) && self.input.is_empty() {
                        return Action::NeedInput;
                    }
                }
                Mode::Commands => {
                    let (consumed, frame) = self.framer.poll(&self.input);
                    self.input.drain(..consumed);
                    let Some(frame) = frame else {
                        return Action::NeedInput;
                    };
                    match frame {
                        Frame::Continuation => {
                            encode::continuation(&mut self.output, "Ready for literal data")
                        }
                        Frame::Refused { tag, refusal } => {
                            let tag = tag.unwrap_or_else(|| "*".into());
                            let text = refusal.text();
                            self.respond(&tag, refusal.status(), refusal.code(), &text);
                        }
                        Frame::Fatal(text) => {
                            encode::status(&mut self.output, "*", Status::Bye, None, &text);
                            self.mode = Mode::Closed;
                        }
                        Frame::Command(bytes) => match parse_command(&bytes) {
                            Ok(cmd) => {
                                if let Some(a) = self.command(cmd) {
                                    return a;
                                }
                            }
                            Err(e) => {
                                let tag = e.tag.clone().unwrap_or_else(|| "*".into());
                                self.respond(&tag, Status::Bad, None, &e.message);
                            }
                        },
                    }
                }
            }
        }
    }

    /// Reads the line that should be IDLE's `DONE`; `None` when IDLE ended
    /// with BAD and the session goes on with the commands after it.
    fn idle_line(&mut self) -> Option<Action> {
        let (consumed, line) = self.framer.next_line(&self.input, 64);
        self.input.drain(..consumed);
        match line {
            None => Some(Action::NeedInput),
            Some(RawLine::Line(l)) if l.eq_ignore_ascii_case(b"DONE") => {
                if let Mode::Idling { tag } = std::mem::replace(&mut self.mode, Mode::Waiting) {
                    self.pending_tag = Some(tag);
                }
                Some(Action::IdleDone)
            }
            Some(RawLine::Fatal(text)) => {
                encode::status(&mut self.output, "*", Status::Bye, None, &text);
                self.mode = Mode::Closed;
                Some(Action::Close)
            }
            Some(_) => {
                if let Mode::Idling { tag } = std::mem::replace(&mut self.mode, Mode::Commands) {
                    self.respond(&tag, Status::Bad, None, "Expected DONE to end IDLE");
                }
                None
            }
        }
    }

    fn sasl_line(&mut self) -> Option<Action> {
        let (consumed, line) = self.framer.next_line(&self.input, MAX_SASL_LINE);
        self.input.drain(..consumed);
        let line = line?;
        let Mode::Sasl { tag, mut server } = std::mem::replace(&mut self.mode, Mode::Commands)
        else {
            return None;
        };
        match line {
            RawLine::Line(l) => {
                let step = server.step_line(&l);
                self.sasl_step(tag, server, step)
            }
            RawLine::TooLong => {
                self.respond(&tag, Status::Bad, None, "Authentication response too long");
                None
            }
            RawLine::Fatal(text) => {
                encode::status(&mut self.output, "*", Status::Bye, None, &text);
                self.mode = Mode::Closed;
                Some(Action::Close)
            }
        }
    }

    fn sasl_step(&mut self, tag: String, server: SaslServer, step: Step) -> Option<Action> {
        match step {
            Step::Challenge(c) => {
                encode::continuation(&mut self.output, &pochta_sasl::encode_challenge(&c));
                self.mode = Mode::Sasl { tag, server };
                None
            }
            Step::Done(credentials) => {
                self.mode = Mode::Waiting;
                self.pending_tag = Some(tag.clone());
                Some(Action::Authenticate { tag, credentials })
            }
            Step::Failed(pochta_sasl::SaslError::Cancelled) => {
                self.respond(&tag, Status::Bad, None, "Authentication cancelled");
                None
            }
            Step::Failed(e) => {
                self.respond(&tag, Status::Bad, None, &e.to_string());
                None
            }
        }
    }

    fn command(&mut self, cmd: Command) -> Option<Action> {
        let tag = cmd.tag;
        match cmd.body {
            CommandBody::Capability => {
                let caps = self.capabilities();
                self.output
                    .extend_from_slice(format!("* CAPABILITY {caps}\r\n").as_bytes());
                self.respond(&tag, Status::Ok, None, "CAPABILITY completed");
            }
            CommandBody::Logout => {
                encode::status(&mut self.output, "*", Status::Bye, None, "Logging out");
                self.respond(&tag, Status::Ok, None, "LOGOUT completed");
                self.state = State::Logout;
                self.mode = Mode::Closed;
            }
            CommandBody::Id(_) => {
                self.output.extend_from_slice(
                    format!(
                        "* ID (\"name\" \"pochta\" \"version\" \"{}\")\r\n",
                        env!("CARGO_PKG_VERSION")
                    )
                    .as_bytes(),
                );
                self.respond(&tag, Status::Ok, None, "ID completed");
            }
            CommandBody::StartTls => {
                if self.tls {
                    self.respond(&tag, Status::Bad, None, "TLS is already active");
                } else if !self.cfg.starttls {
                    self.respond(&tag, Status::No, None, "STARTTLS is not available");
                } else if self.state != State::NotAuthenticated {
                    self.respond(&tag, Status::Bad, None, "STARTTLS only before login");
                } else {
                    self.respond(&tag, Status::Ok, None, "Begin TLS negotiation now");
                    // Clear text pipelined after STARTTLS must not survive the upgrade.
                    self.input.clear();
                    self.framer = Framer::new(self.cfg.limits);
                    self.mode = Mode::Waiting;
                    return Some(Action::StartTls);
                }
            }
            CommandBody::Login { user, password } => {
                if self.state != State::NotAuthenticated {
                    self.respond(&tag, Status::Bad, None, "Already logged in");
                } else if !self.tls {
                    self.respond(
                        &tag,
                        Status::No,
                        Some("PRIVACYREQUIRED"),
                        "LOGIN is disabled without TLS; use STARTTLS",
                    );
                } else {
                    let (Ok(login), Ok(password)) =
                        (String::from_utf8(user), String::from_utf8(password.0))
                    else {
                        self.respond(
                            &tag,
                            Status::Bad,
                            None,
                            "User name and password must be UTF-8",
                        );
                        return None;
                    };
                    self.mode = Mode::Waiting;
                    self.pending_tag = Some(tag.clone());
                    return Some(Action::Authenticate {
                        tag,
                        credentials: Credentials {
                            authzid: None,
                            login,
                            password: Secret::new(password),
                        },
                    });
                }
            }
            CommandBody::Authenticate { mechanism, initial } => {
                if self.state != State::NotAuthenticated {
                    self.respond(&tag, Status::Bad, None, "Already logged in");
                } else if !self.tls {
                    self.respond(
                        &tag,
                        Status::No,
                        Some("PRIVACYREQUIRED"),
                        "Authentication is disabled without TLS; use STARTTLS",
                    );
                } else if let Some(mech) = Mechanism::parse(&mechanism) {
                    let mut server = SaslServer::new(mech);
                    let step = server.start_encoded(initial.as_ref().map(|s| s.0.as_slice()));
                    return self.sasl_step(tag, server, step);
                } else {
                    self.respond(
                        &tag,
                        Status::No,
                        Some("CANNOT"),
                        "Unsupported authentication mechanism",
                    );
                }
            }
            CommandBody::Compress(mech) => {
                if self.state == State::NotAuthenticated {
                    self.respond(&tag, Status::Bad, None, "Log in first");
                } else if self.compress {
                    self.respond(
                        &tag,
                        Status::No,
                        Some("COMPRESSIONACTIVE"),
                        "Compression is already active",
                    );
                } else if !mech.eq_ignore_ascii_case("DEFLATE") {
                    self.respond(&tag, Status::Bad, None, "Only DEFLATE is supported");
                } else {
                    self.respond(&tag, Status::Ok, None, "DEFLATE active");
                    self.mode = Mode::Waiting;
                    return Some(Action::Compress);
                }
            }
            CommandBody::Idle => {
                if self.state == State::NotAuthenticated {
                    self.respond(&tag, Status::Bad, None, "Log in first");
                } else {
                    encode::continuation(&mut self.output, "idling");
                    self.mode = Mode::Idling { tag };
                    return Some(Action::Idle);
                }
            }
            CommandBody::Noop if self.state == State::NotAuthenticated => {
                self.respond(&tag, Status::Ok, None, "NOOP completed");
            }
            body => {
                let selected_only = matches!(
                    body,
                    CommandBody::Check
                        | CommandBody::Close
                        | CommandBody::Unselect
                        | CommandBody::Expunge
                        | CommandBody::UidExpunge(_)
                        | CommandBody::Search { .. }
                        | CommandBody::Fetch { .. }
                        | CommandBody::Store { .. }
                        | CommandBody::Copy { .. }
                        | CommandBody::Move { .. }
                        | CommandBody::Sort { .. }
                        | CommandBody::Thread { .. }
                );
                if self.state == State::NotAuthenticated {
                    self.respond(&tag, Status::Bad, None, "Log in first");
                } else if selected_only && self.state != State::Selected {
                    self.respond(&tag, Status::Bad, None, "No mailbox selected");
                } else {
                    self.mode = Mode::Waiting;
                    return Some(Action::Execute(Command { tag, body }));
                }
            }
        }
        None
    }
}
