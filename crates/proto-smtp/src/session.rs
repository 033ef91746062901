//! The session state machine.

use pochta_addr::Address;
use pochta_sasl::{Credentials, Mechanism, SaslServer, Step};
use smtp_proto::{Error as ParseError, Request};

use crate::Reply;
use crate::client::Ret;
use crate::data::{BdatReceiver, DataReceiver};

/// Failed AUTH attempts allowed in one session before it is closed.
const MAX_AUTH_FAILURES: u32 = 3;

/// What the session is for; it decides which extensions are offered and what is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Mail exchanger (port 25): mail from other servers for local recipients. No AUTH.
    Mx,
    /// Message submission (RFC 6409, ports 587 and 465): AUTH over TLS required.
    Submission,
}

/// Per-session settings (from the server configuration).
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Our host name, for the greeting and EHLO.
    pub hostname: String,
    /// MX or submission.
    pub mode: Mode,
    /// Largest message accepted, in octets (advertised as SIZE).
    pub max_message_size: usize,
    /// Most recipients per message.
    pub max_recipients: usize,
    /// Longest command or message line, in octets including CRLF.
    pub max_line_length: usize,
    /// Error replies tolerated before the session is closed with 421.
    pub max_errors: u32,
    /// True when STARTTLS can be offered (a certificate is configured).
    pub starttls: bool,
    /// Where `RCPT TO:<postmaster>` (no domain, RFC 5321 §4.5.1) goes.
    pub postmaster: Address,
}

/// Negotiated TLS parameters, for the Received header and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// Protocol version, e.g. `TLSv1.3`.
    pub version: String,
    /// Cipher suite name.
    pub cipher: String,
}

/// The body type declared on MAIL FROM (RFC 6152).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyType {
    /// Not declared.
    #[default]
    Unspecified,
    /// `BODY=7BIT`.
    SevenBit,
    /// `BODY=8BITMIME`.
    EightBitMime,
}

/// A recipient's DSN parameters (RFC 3461 §4.1, §4.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptDsn {
    /// `NOTIFY=`, if given: all false means `NEVER`. Absent: failures and
    /// (at the relay's choice) delays are reported.
    pub notify: Option<crate::client::Notify>,
    /// `ORCPT=rfc822;...`, decoded from xtext: the original recipient.
    pub orcpt: Option<String>,
}

/// A mail transaction: the envelope and, once received, the message.
#[derive(Debug, Clone, Default)]
pub struct Transaction {
    /// The reverse path; `None` is the null sender `<>` (bounces).
    pub mail_from: Option<Address>,
    /// `BODY=` parameter.
    pub body_type: BodyType,
    /// `SMTPUTF8` parameter (RFC 6531).
    pub smtputf8: bool,
    /// `SIZE=` parameter, if given.
    pub declared_size: Option<usize>,
    /// Accepted recipients, in order.
    pub recipients: Vec<Address>,
    /// Their DSN parameters, one per recipient, in the same order.
    pub recipient_dsn: Vec<RcptDsn>,
    /// `ENVID=` (RFC 3461 §4.4), decoded from xtext.
    pub envid: Option<String>,
    /// `RET=`, if given.
    pub ret: Option<Ret>,
    /// The message as received (dot-unstuffed), without anything added by us.
    pub body: Vec<u8>,
    /// True when it arrived with BDAT rather than DATA.
    pub chunked: bool,
}

/// What the session needs from its driver next.
#[derive(Debug)]
pub enum Action {
    /// Write [`Session::output`], then read and [`Session::feed`] more bytes
    /// (or call [`Session::eof`]).
    NeedInput,
    /// Write the output, run the TLS handshake, then call [`Session::tls_established`].
    StartTls,
    /// Decide whether this sender is acceptable; answer with [`Session::answer_sender`].
    CheckSender {
        /// The reverse path (`None` for `<>`).
        address: Option<Address>,
        /// The authenticated user, if any.
        user: Option<String>,
    },
    /// Decide whether this recipient is acceptable; answer with [`Session::answer_recipient`].
    CheckRecipient {
        /// The forward path (`<postmaster>` already mapped to the postmaster address).
        address: Address,
    },
    /// Check credentials; answer with [`Session::answer_auth`].
    Authenticate(Credentials),
    /// Store or queue the message durably; answer with [`Session::answer_delivery`].
    Deliver(Box<Transaction>),
    /// Write the output and close the connection.
    Close,
}

/// The driver's answer to [`Action::CheckSender`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderVerdict {
    /// Accept.
    Accept,
    /// The authenticated user may not send as this address (553 5.7.1).
    NotOwned,
    /// Temporary failure (451 4.3.0).
    TempFail,
    /// Any other refusal, with its reply.
    Reject(Reply),
}

/// The driver's answer to [`Action::CheckRecipient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptVerdict {
    /// A local recipient: accept.
    Accept,
    /// Local domain, no such user or alias (550 5.1.1).
    UnknownUser,
    /// Not a local domain, and this session may not relay (550 5.7.1).
    RelayDenied,
    /// Temporary failure (451 4.3.0).
    TempFail,
    /// Any other refusal, with its reply.
    Reject(Reply),
}

/// The driver's answer to [`Action::Authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthVerdict {
    /// Logged in as this user.
    Accept {
        /// The account name, for logs and sender checks.
        user: String,
    },
    /// Wrong credentials (535 5.7.8).
    Failed,
    /// Locked out after too many failures (454 4.7.0).
    Throttled,
    /// The check could not be made (454 4.7.0).
    TempFail,
}

/// The driver's answer to [`Action::Deliver`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryVerdict {
    /// Durably stored or queued; the id goes into the 250 reply.
    Accepted {
        /// Our id of the message, for the client's logs.
        id: String,
    },
    /// The disk is full (452 4.3.1).
    StorageFull,
    /// Some other temporary failure (451 4.3.0).
    TempFail,
    /// Permanently refused, with its reply.
    Reject(Reply),
}

#[derive(Debug)]
enum State {
    /// Reading command lines.
    Command,
    /// Inside an AUTH exchange, reading a response line.
    Auth(SaslServer),
    /// Receiving a DATA body.
    Data(DataReceiver),
    /// Receiving a BDAT chunk: its size, bytes left, whether it is the last.
    Bdat {
        size: usize,
        left: usize,
        last: bool,
    },
    /// Waiting for the driver to answer an action.
    Waiting(Pending),
    /// 220 sent for STARTTLS; waiting for the handshake.
    Tls,
    /// Closing after the output is written.
    Closing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Sender,
    Recipient,
    Auth,
    Delivery,
}

/// Counters for the per-connection log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Messages accepted.
    pub messages: u32,
    /// Recipients accepted.
    pub recipients: u32,
    /// Error replies sent.
    pub errors: u32,
}

/// One SMTP server session.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    state: State,
    input: Vec<u8>,
    start: usize,
    /// Replies waiting to be written.
    pub output: Vec<u8>,
    discarding_line: bool,
    helo: Option<String>,
    esmtp: bool,
    tls: Option<TlsInfo>,
    user: Option<String>,
    tx: Option<Transaction>,
    bdat: Option<BdatReceiver>,
    /// A BDAT chunk being discarded, with the reply to send once it is consumed.
    bdat_error: Option<Reply>,
    /// The transaction a MAIL command opens once the sender is accepted.
    pending_tx: Option<Transaction>,
    /// The recipient being checked.
    pending_rcpt: Option<(Address, RcptDsn)>,
    auth_failures: u32,
    shutting_down: bool,
    stats: SessionStats,
}

impl Session {
    /// A new session; the greeting is already in [`Session::output`]. Pass `tls`
    /// when the connection is TLS from the start (port 465).
    pub fn new(cfg: SessionConfig, tls: Option<TlsInfo>) -> Session {
        let mut s = Session {
            state: State::Command,
            input: Vec::new(),
            start: 0,
            output: Vec::with_capacity(512),
            discarding_line: false,
            helo: None,
            esmtp: false,
            tls,
            user: None,
            tx: None,
            bdat: None,
            bdat_error: None,
            pending_tx: None,
            pending_rcpt: None,
            auth_failures: 0,
            shutting_down: false,
            stats: SessionStats::default(),
            cfg,
        };
        let greeting = format!("{} ESMTP pochta", s.cfg.hostname);
        s.send(Reply::plain(220, greeting));
        s
    }

    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        if matches!(self.state, State::Closing) {
            return;
        }
        if self.start > 0 && self.start == self.input.len() {
            self.input.clear();
            self.start = 0;
        }
        self.input.extend_from_slice(bytes);
    }

    /// The peer closed its side: whatever was in progress is abandoned.
    pub fn eof(&mut self) {
        self.state = State::Closing;
    }

    /// The server is shutting down: at the next [`Session::poll`] an idle session
    /// gets 421; one receiving or storing a message finishes it first.
    pub fn shutdown(&mut self) {
        self.shutting_down = true;
        if matches!(self.state, State::Auth(_)) {
            self.state = State::Command;
        }
    }

    /// True while a message is being received or stored (shutdown waits for these).
    pub fn in_transaction(&self) -> bool {
        self.tx.is_some() && !matches!(self.state, State::Closing)
    }

    /// True when the peer is sending a message body (the driver uses the data timeout).
    pub fn receiving_body(&self) -> bool {
        matches!(self.state, State::Data(_) | State::Bdat { .. })
    }

    /// The EHLO/HELO name the client gave.
    pub fn helo(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    /// True when the client used EHLO.
    pub fn esmtp(&self) -> bool {
        self.esmtp
    }

    /// TLS parameters, once TLS is up.
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    /// The authenticated user.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Counters for logging.
    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// The TLS handshake after STARTTLS succeeded. The session starts over
    /// (RFC 3207 §4.2): the client must send EHLO again.
    pub fn tls_established(&mut self, info: TlsInfo) {
        self.tls = Some(info);
        self.helo = None;
        self.esmtp = false;
        self.tx = None;
        self.bdat = None;
        if matches!(self.state, State::Tls) {
            self.state = State::Command;
        }
    }

    /// Answers [`Action::CheckSender`].
    pub fn answer_sender(&mut self, verdict: SenderVerdict) {
        if !self.take_pending(Pending::Sender) {
            return;
        }
        let pending = self.pending_tx.take();
        match verdict {
            SenderVerdict::Accept => {
                self.tx = pending;
                self.send(Reply::new(250, "2.1.0", "Sender OK"));
            }
            SenderVerdict::NotOwned => self.send(Reply::new(
                553,
                "5.7.1",
                "Sender address is not owned by the authenticated user",
            )),
            SenderVerdict::TempFail => self.send(Reply::new(
                451,
                "4.3.0",
                "Temporary failure checking the sender, try again later",
            )),
            SenderVerdict::Reject(r) => self.send(r),
        }
    }

    /// Answers [`Action::CheckRecipient`].
    pub fn answer_recipient(&mut self, verdict: RcptVerdict) {
        if !self.take_pending(Pending::Recipient) {
            return;
        }
        let Some((address, dsn)) = self.pending_rcpt.take() else {
            return;
        };
        match verdict {
            RcptVerdict::Accept => {
                if let Some(tx) = self.tx.as_mut() {
                    tx.recipients.push(address);
                    tx.recipient_dsn.push(dsn);
                    self.stats.recipients += 1;
                    self.send(Reply::new(250, "2.1.5", "Recipient OK"));
                }
            }
            RcptVerdict::UnknownUser => self.send(Reply::new(
                550,
                "5.1.1",
                format!("<{address}>: no such user here"),
            )),
            RcptVerdict::RelayDenied => self.send(Reply::new(
                550,
                "5.7.1",
                format!("<{address}>: relaying denied"),
            )),
            RcptVerdict::TempFail => self.send(Reply::new(
                451,
                "4.3.0",
                "Temporary failure checking the recipient, try again later",
            )),
            RcptVerdict::Reject(r) => self.send(r),
        }
    }

    /// Answers [`Action::Authenticate`].
    pub fn answer_auth(&mut self, verdict: AuthVerdict) {
        if !self.take_pending(Pending::Auth) {
            return;
        }
        match verdict {
            AuthVerdict::Accept { user } => {
                self.user = Some(user);
                self.send(Reply::new(235, "2.7.0", "Authentication successful"));
            }
            AuthVerdict::Failed => {
                self.auth_failures += 1;
                self.send(Reply::new(
                    535,
                    "5.7.8",
                    "Authentication credentials invalid",
                ));
                if self.auth_failures >= MAX_AUTH_FAILURES {
                    self.close_with(Reply::new(
                        421,
                        "4.7.0",
                        "Too many failed authentication attempts, closing connection",
                    ));
                }
            }
            AuthVerdict::Throttled => {
                self.send(Reply::new(
                    454,
                    "4.7.0",
                    "Too many failed logins, try again later",
                ));
                self.close_with(Reply::new(421, "4.7.0", "Closing connection"));
            }
            AuthVerdict::TempFail => self.send(Reply::new(
                454,
                "4.7.0",
                "Temporary authentication failure, try again later",
            )),
        }
    }

    /// Answers [`Action::Deliver`]. The transaction ends either way.
    pub fn answer_delivery(&mut self, verdict: DeliveryVerdict) {
        if !self.take_pending(Pending::Delivery) {
            return;
        }
        self.tx = None;
        match verdict {
            DeliveryVerdict::Accepted { id } => {
                self.stats.messages += 1;
                self.send(Reply::new(250, "2.0.0", format!("Ok: queued as {id}")));
            }
            DeliveryVerdict::StorageFull => self.send(Reply::new(
                452,
                "4.3.1",
                "Insufficient system storage, try again later",
            )),
            DeliveryVerdict::TempFail => self.send(Reply::new(
                451,
                "4.3.0",
                "Local error in processing, try again later",
            )),
            DeliveryVerdict::Reject(r) => self.send(r),
        }
    }

    fn take_pending(&mut self, expected: Pending) -> bool {
        match self.state {
            State::Waiting(p) if p == expected => {
                self.state = State::Command;
                true
            }
            _ => false,
        }
    }

    fn send(&mut self, reply: Reply) {
        if reply.is_error() {
            self.stats.errors += 1;
        }
        reply.write_to(&mut self.output);
    }

    /// Sends an error reply that counts towards the error limit.
    fn error(&mut self, reply: Reply) {
        self.send(reply);
        if self.stats.errors >= self.cfg.max_errors && !matches!(self.state, State::Closing) {
            self.close_with(Reply::new(
                421,
                "4.7.0",
                "Too many errors, closing connection",
            ));
        }
    }

    fn close_with(&mut self, reply: Reply) {
        reply.write_to(&mut self.output);
        self.state = State::Closing;
    }

    fn pending_input(&self) -> &[u8] {
        &self.input[self.start..]
    }

    /// Runs the machine on the buffered input until it needs the driver.
    pub fn poll(&mut self) -> Action {
        loop {
            if self.shutting_down && matches!(self.state, State::Command) && self.tx.is_none() {
                self.close_with(Reply::new(
                    421,
                    "4.3.2",
                    "Service shutting down, try again later",
                ));
            }
            match &mut self.state {
                State::Closing => return Action::Close,
                State::Waiting(_) | State::Tls => return Action::NeedInput,
                State::Data(receiver) => {
                    let (used, done) = receiver.ingest(&self.input[self.start..]);
                    self.start += used;
                    if !done {
                        return Action::NeedInput;
                    }
                    let State::Data(receiver) = std::mem::replace(&mut self.state, State::Command)
                    else {
                        continue;
                    };
                    if let Some(action) = self.finish_data(receiver) {
                        return action;
                    }
                }
                State::Bdat { size, left, last } => {
                    let avail = self.input.len() - self.start;
                    let take = (*left).min(avail);
                    let (size, last) = (*size, *last);
                    *left -= take;
                    let chunk_done = *left == 0;
                    let range = self.start..self.start + take;
                    self.start += take;
                    if let Some(rx) = self.bdat.as_mut() {
                        rx.push(&self.input[range]);
                    }
                    if !chunk_done {
                        return Action::NeedInput;
                    }
                    self.state = State::Command;
                    if let Some(action) = self.finish_chunk(size, last) {
                        return action;
                    }
                }
                State::Command | State::Auth(_) => {
                    let Some(line) = self.next_line() else {
                        return Action::NeedInput;
                    };
                    let action = if matches!(self.state, State::Auth(_)) {
                        self.auth_line(&line)
                    } else {
                        self.command(&line)
                    };
                    if let Some(action) = action {
                        return action;
                    }
                }
            }
        }
    }

    /// Takes the next complete line (with its line end) from the input, enforcing
    /// the line limit before buffering: an over-long line is answered and skipped.
    fn next_line(&mut self) -> Option<Vec<u8>> {
        loop {
            let pending = self.pending_input();
            match memchr::memchr(b'\n', pending) {
                Some(pos) => {
                    let line = pending[..=pos].to_vec();
                    self.start += pos + 1;
                    if self.discarding_line {
                        self.discarding_line = false;
                        continue;
                    }
                    if line.len() > self.cfg.max_line_length {
                        self.error(Reply::new(500, "5.5.2", "Line too long"));
                        if matches!(self.state, State::Closing) {
                            return None;
                        }
                        continue;
                    }
                    return Some(line);
                }
                None => {
                    if pending.len() > self.cfg.max_line_length {
                        // Drop what we have; skip the rest of the line when it comes.
                        self.start = self.input.len();
                        if !self.discarding_line {
                            self.discarding_line = true;
                            self.error(Reply::new(500, "5.5.2", "Line too long"));
                        }
                    }
                    self.compact();
                    return None;
                }
            }
        }
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.input.drain(..self.start);
            self.start = 0;
        }
    }

    fn command(&mut self, line: &[u8]) -> Option<Action> {
        let parsed = Request::parse(&mut line.iter());
        let request = match parsed {
            Ok(r) => r.into_owned(),
            Err(e) => {
                self.parse_error(e, line);
                return None;
            }
        };
        match request {
            Request::Ehlo { host } => self.hello(host, true),
            Request::Helo { host } => self.hello(host, false),
            Request::Lhlo { .. } => self.error(Reply::new(
                502,
                "5.5.1",
                "LHLO is for LMTP; this is SMTP",
            )),
            Request::Mail { from } => return self.mail(from),
            Request::Rcpt { to } => return self.rcpt(to, line),
            Request::Data => return self.data(),
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.bdat(chunk_size, is_last),
            Request::Auth {
                mechanism,
                initial_response,
            } => return self.auth(mechanism, &initial_response),
            Request::StartTls => return self.starttls(line),
            Request::Rset => {
                self.tx = None;
                self.bdat = None;
                self.send(Reply::new(250, "2.0.0", "Reset OK"));
            }
            Request::Noop { .. } => self.send(Reply::new(250, "2.0.0", "OK")),
            Request::Quit => {
                self.close_with(Reply::new(221, "2.0.0", "Bye"));
            }
            Request::Vrfy { .. } => self.send(Reply::new(
                252,
                "2.5.0",
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Request::Expn { .. } => self.error(Reply::new(502, "5.5.1", "EXPN not available")),
            Request::Help { .. } => self.send(Reply {
                code: 214,
                esc: Some("2.0.0"),
                lines: vec![
                    "pochta SMTP: commands EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH".into(),
                    "See RFC 5321".into(),
                ],
            }),
            Request::Etrn { .. } | Request::Atrn { .. } | Request::Burl { .. } => {
                self.error(Reply::new(502, "5.5.1", "Command not implemented"))
            }
        }
        None
    }

    fn parse_error(&mut self, e: ParseError, line: &[u8]) {
        let reply = match e {
            ParseError::UnknownCommand => {
                // A client that talks HTTP to an SMTP port is not going to get better.
                if line.starts_with(b"GET ") || line.starts_with(b"POST ") {
                    self.close_with(Reply::new(554, "5.7.0", "This is an SMTP server"));
                    return;
                }
                Reply::new(500, "5.5.1", "Command unrecognized")
            }
            ParseError::InvalidSenderAddress => {
                Reply::new(553, "5.1.7", "Bad sender address syntax")
            }
            ParseError::InvalidRecipientAddress => {
                Reply::new(553, "5.1.3", "Bad recipient address syntax")
            }
            ParseError::SyntaxError { syntax } => {
                Reply::new(501, "5.5.4", format!("Syntax: {syntax}"))
            }
            ParseError::InvalidParameter { param } => {
                Reply::new(501, "5.5.4", format!("Invalid value for parameter {param}"))
            }
            ParseError::UnsupportedParameter { param } => Reply::new(
                555,
                "5.5.4",
                format!(
                    "Unsupported parameter {}",
                    param.chars().take(40).collect::<String>()
                ),
            ),
            ParseError::NeedsMoreData { .. } => {
                Reply::new(500, "5.5.2", "Syntax error, incomplete command")
            }
            ParseError::ResponseTooLong | ParseError::InvalidResponse { .. } => {
                Reply::new(500, "5.5.2", "Syntax error")
            }
        };
        self.error(reply);
    }

    fn hello(&mut self, host: String, esmtp: bool) {
        // EHLO/HELO resets any transaction (RFC 5321 §4.1.4).
        self.tx = None;
        self.bdat = None;
        self.helo = Some(host);
        self.esmtp = esmtp;
        if !esmtp {
            self.send(Reply::new(250, "2.0.0", self.cfg.hostname.clone()));
            return;
        }
        let mut lines = vec![
            self.cfg.hostname.clone(),
            "PIPELINING".into(),
            format!("SIZE {}", self.cfg.max_message_size),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "ENHANCEDSTATUSCODES".into(),
            "CHUNKING".into(),
            "DSN".into(),
        ];
        if self.cfg.starttls && self.tls.is_none() {
            lines.push("STARTTLS".into());
        }
        if self.auth_offered() {
            let names: Vec<&str> = Mechanism::ALL.iter().map(|m| m.name()).collect();
            lines.push(format!("AUTH {}", names.join(" ")));
        }
        lines.push("HELP".into());
        self.send(Reply {
            code: 250,
            esc: None,
            lines,
        });
    }

    /// AUTH is offered on submission, and only under TLS (RFC 4954 §4 with §14).
    fn auth_offered(&self) -> bool {
        self.cfg.mode == Mode::Submission && self.tls.is_some() && self.user.is_none()
    }

    fn mail(&mut self, from: smtp_proto::MailFrom<String>) -> Option<Action> {
        if self.helo.is_none() {
            self.error(Reply::new(503, "5.5.1", "Send EHLO or HELO first"));
            return None;
        }
        if self.tx.is_some() {
            self.error(Reply::new(503, "5.5.1", "Nested MAIL command"));
            return None;
        }
        if self.cfg.mode == Mode::Submission && self.user.is_none() {
            let reply = if self.tls.is_none() {
                Reply::new(530, "5.7.0", "Must issue a STARTTLS command first")
            } else {
                Reply::new(530, "5.7.0", "Authentication required")
            };
            self.error(reply);
            return None;
        }
        let has_params = from.flags != 0 || from.size != 0;
        if has_params && !self.esmtp {
            self.error(Reply::new(555, "5.5.4", "MAIL parameters need EHLO"));
            return None;
        }
        // Only the extensions we advertise may be used (RFC 5321 §4.1.1.11).
        let supported = smtp_proto::MAIL_BODY_7BIT
            | smtp_proto::MAIL_BODY_8BITMIME
            | smtp_proto::MAIL_SMTPUTF8
            | smtp_proto::MAIL_RET_FULL
            | smtp_proto::MAIL_RET_HDRS;
        if from.flags & !supported != 0
            || from.trans_id.is_some()
            || from.by != 0
            || from.solicit.is_some()
            || from.mtrk.is_some()
            || from.hold_for != 0
            || from.hold_until != 0
            || from.mt_priority != 0
        {
            self.error(Reply::new(555, "5.5.4", "Unsupported MAIL parameter"));
            return None;
        }
        if from.size > self.cfg.max_message_size {
            self.error(Reply::new(
                552,
                "5.3.4",
                format!(
                    "Message size exceeds fixed maximum message size ({} octets)",
                    self.cfg.max_message_size
                ),
            ));
            return None;
        }
        let ret = match (
            from.flags & smtp_proto::MAIL_RET_FULL != 0,
            from.flags & smtp_proto::MAIL_RET_HDRS != 0,
        ) {
            (true, true) => {
                self.error(Reply::new(501, "5.5.4", "RET given twice"));
                return None;
            }
            (true, false) => Some(Ret::Full),
            (false, true) => Some(Ret::Headers),
            (false, false) => None,
        };
        if from
            .env_id
            .as_deref()
            .is_some_and(|e| e.bytes().any(|b| !(0x21..0x7f).contains(&b)))
        {
            // RFC 3461 §4.4: printable US-ASCII without spaces once decoded.
            self.error(Reply::new(
                501,
                "5.5.4",
                "Invalid value for parameter ENVID",
            ));
            return None;
        }
        let smtputf8 = from.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
        let address = if from.address.is_empty() {
            None
        } else {
            if !from.address.is_ascii() && !smtputf8 {
                self.error(Reply::new(
                    553,
                    "5.6.7",
                    "Non-ASCII address needs the SMTPUTF8 parameter",
                ));
                return None;
            }
            match Address::parse(&from.address) {
                Ok(a) => Some(a),
                Err(e) => {
                    self.error(Reply::new(553, "5.1.7", format!("Bad sender address: {e}")));
                    return None;
                }
            }
        };
        let body_type = if from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0 {
            BodyType::EightBitMime
        } else if from.flags & smtp_proto::MAIL_BODY_7BIT != 0 {
            BodyType::SevenBit
        } else {
            BodyType::Unspecified
        };
        self.state = State::Waiting(Pending::Sender);
        self.pending_tx = Some(Transaction {
            mail_from: address.clone(),
            body_type,
            smtputf8,
            declared_size: (from.size > 0).then_some(from.size),
            envid: from.env_id,
            ret,
            ..Transaction::default()
        });
        Some(Action::CheckSender {
            address,
            user: self.user.clone(),
        })
    }
}

impl Session {
    fn rcpt(&mut self, to: smtp_proto::RcptTo<String>, line: &[u8]) -> Option<Action> {
        let Some(tx) = self.tx.as_ref() else {
            self.error(Reply::new(503, "5.5.1", "Need MAIL before RCPT"));
            return None;
        };
        let notify_bits = smtp_proto::RCPT_NOTIFY_SUCCESS
            | smtp_proto::RCPT_NOTIFY_FAILURE
            | smtp_proto::RCPT_NOTIFY_DELAY
            | smtp_proto::RCPT_NOTIFY_NEVER;
        if to.flags & !notify_bits != 0 || to.rrvs != 0 {
            self.error(Reply::new(555, "5.5.4", "Unsupported RCPT parameter"));
            return None;
        }
        let notify = if to.flags & notify_bits == 0 {
            None
        } else if to.flags & smtp_proto::RCPT_NOTIFY_NEVER != 0 {
            if to.flags & notify_bits != smtp_proto::RCPT_NOTIFY_NEVER {
                // RFC 3461 §4.1: NEVER stands alone.
                self.error(Reply::new(
                    501,
                    "5.5.4",
                    "NOTIFY=NEVER cannot be combined with other values",
                ));
                return None;
            }
            Some(crate::client::Notify::default())
        } else {
            Some(crate::client::Notify {
                success: to.flags & smtp_proto::RCPT_NOTIFY_SUCCESS != 0,
                failure: to.flags & smtp_proto::RCPT_NOTIFY_FAILURE != 0,
                delay: to.flags & smtp_proto::RCPT_NOTIFY_DELAY != 0,
            })
        };
        if (notify.is_some() || to.orcpt.is_some()) && !self.esmtp {
            self.error(Reply::new(555, "5.5.4", "RCPT parameters need EHLO"));
            return None;
        }
        let dsn = RcptDsn {
            notify,
            orcpt: to.orcpt.clone(),
        };
        if tx.recipients.len() >= self.cfg.max_recipients {
            // 452, not 5xx: the client sends the rest in another transaction
            // (RFC 5321 §4.5.3.1.10).
            self.error(Reply::new(452, "4.5.3", "Too many recipients"));
            return None;
        }
        let smtputf8 = tx.smtputf8;
        let address = if to.address.is_empty() {
            // smtp-proto maps both <postmaster> and <> to "": tell them apart.
            let upper = String::from_utf8_lossy(line).to_ascii_uppercase();
            if upper.contains("<POSTMASTER>") {
                self.cfg.postmaster.clone()
            } else {
                self.error(Reply::new(553, "5.1.3", "Null recipient is not allowed"));
                return None;
            }
        } else {
            if !to.address.is_ascii() && !smtputf8 {
                self.error(Reply::new(
                    553,
                    "5.6.7",
                    "Non-ASCII address needs the SMTPUTF8 parameter on MAIL",
                ));
                return None;
            }
            match Address::parse(&to.address) {
                Ok(a) => a,
                Err(e) => {
                    self.error(Reply::new(
                        553,
                        "5.1.3",
                        format!("Bad recipient address: {e}"),
                    ));
                    return None;
                }
            }
        };
        self.state = State::Waiting(Pending::Recipient);
        self.pending_rcpt = Some((address.clone(), dsn));
        Some(Action::CheckRecipient { address })
    }

    fn data(&mut self) -> Option<Action> {
        let Some(tx) = self.tx.as_ref() else {
            self.error(Reply::new(503, "5.5.1", "Need MAIL and RCPT before DATA"));
            return None;
        };
        if self.bdat.is_some() {
            self.error(Reply::new(503, "5.5.1", "DATA cannot follow BDAT"));
            return None;
        }
        if tx.recipients.is_empty() {
            self.error(Reply::new(554, "5.5.1", "No valid recipients"));
            return None;
        }
        self.send(Reply::plain(354, "End data with <CR><LF>.<CR><LF>"));
        self.state = State::Data(DataReceiver::new(
            self.cfg.max_message_size,
            self.cfg.max_line_length,
        ));
        None
    }

    fn finish_data(&mut self, receiver: DataReceiver) -> Option<Action> {
        let faults = receiver.faults;
        let reply = if faults.too_big {
            Some(Reply::new(
                552,
                "5.3.4",
                format!(
                    "Message size exceeds fixed maximum message size ({} octets)",
                    self.cfg.max_message_size
                ),
            ))
        } else if faults.bare_newline {
            Some(Reply::new(
                550,
                "5.6.0",
                "Message refused: bare CR or LF found; lines must end with CRLF",
            ))
        } else if faults.long_line {
            Some(Reply::new(
                500,
                "5.5.2",
                format!(
                    "Message refused: line longer than {} octets",
                    self.cfg.max_line_length
                ),
            ))
        } else {
            None
        };
        if let Some(reply) = reply {
            self.tx = None;
            self.error(reply);
            return None;
        }
        let mut tx = self.tx.take()?;
        // Keep the envelope (without the body) as the open transaction until the
        // driver answers, so shutdown knows a message is in flight.
        self.tx = Some(tx.clone());
        tx.body = receiver.body;
        tx.chunked = false;
        self.state = State::Waiting(Pending::Delivery);
        Some(Action::Deliver(Box::new(tx)))
    }

    fn bdat(&mut self, size: usize, last: bool) {
        // The chunk follows the command at once and must be consumed whatever we
        // answer (RFC 3030 §3), or the next command would be read from its middle.
        let mut reject = None;
        if !self.esmtp {
            reject = Some(Reply::new(503, "5.5.1", "BDAT needs EHLO"));
        } else if self.tx.is_none() {
            reject = Some(Reply::new(503, "5.5.1", "Need MAIL and RCPT before BDAT"));
        } else if self.tx.as_ref().is_some_and(|t| t.recipients.is_empty()) {
            reject = Some(Reply::new(554, "5.5.1", "No valid recipients"));
        }
        if reject.is_none() {
            let rx = self
                .bdat
                .get_or_insert_with(|| BdatReceiver::new(self.cfg.max_message_size));
            if rx.body.len().saturating_add(size) > self.cfg.max_message_size {
                rx.reject_size();
            }
        }
        if size > self.cfg.max_message_size.saturating_mul(2) && reject.is_none() {
            // Reading gigabytes only to stay in sync is not worth it.
            self.tx = None;
            self.bdat = None;
            self.send(Reply::new(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            ));
            self.close_with(Reply::new(421, "4.7.0", "Closing connection"));
            return;
        }
        self.bdat_error = reject;
        self.state = State::Bdat {
            size,
            left: size,
            last,
        };
    }

    fn finish_chunk(&mut self, size: usize, last: bool) -> Option<Action> {
        if let Some(reply) = self.bdat_error.take() {
            self.bdat = None;
            self.tx = None;
            self.error(reply);
            return None;
        }
        // A BDAT message may stop mid-line; stored messages always end with CRLF
        // (as DATA ones do), so that POP3/IMAP sizes match what they send. That
        // line end counts against the size limit too (found by fuzzing: a
        // message of exactly the limit without a final CRLF was stored 2 octets
        // over it).
        let ending = match self.bdat.as_ref().map(|b| b.body.as_slice()) {
            Some(b) if last && !b.is_empty() && !b.ends_with(b"\r\n") => {
                if b.ends_with(b"\r") {
                    1
                } else {
                    2
                }
            }
            _ => 0,
        };
        let too_big = self.bdat.as_ref().is_some_and(|b| {
            b.too_big || b.body.len().saturating_add(ending) > self.cfg.max_message_size
        });
        if too_big {
            if last {
                self.bdat = None;
                self.tx = None;
            }
            self.error(Reply::new(
                552,
                "5.3.4",
                format!(
                    "Message size exceeds fixed maximum message size ({} octets)",
                    self.cfg.max_message_size
                ),
            ));
            return None;
        }
        if !last {
            self.send(Reply::new(250, "2.0.0", format!("{size} octets received")));
            return None;
        }
        let mut body = self.bdat.take().map(|b| b.body).unwrap_or_default();
        match ending {
            1 => body.push(b'\n'),
            2 => body.extend_from_slice(b"\r\n"),
            _ => {}
        }
        let mut tx = self.tx.take()?;
        self.tx = Some(tx.clone());
        tx.body = body;
        tx.chunked = true;
        self.state = State::Waiting(Pending::Delivery);
        Some(Action::Deliver(Box::new(tx)))
    }

    fn auth(&mut self, mechanism: u64, initial: &str) -> Option<Action> {
        if self.cfg.mode != Mode::Submission {
            self.error(Reply::new(
                503,
                "5.5.1",
                "AUTH is not available on this port",
            ));
            return None;
        }
        if self.tls.is_none() {
            self.error(Reply::new(
                538,
                "5.7.11",
                "Encryption required for requested authentication mechanism",
            ));
            return None;
        }
        if self.helo.is_none() || !self.esmtp {
            self.error(Reply::new(503, "5.5.1", "Send EHLO first"));
            return None;
        }
        if self.user.is_some() {
            self.error(Reply::new(503, "5.5.1", "Already authenticated"));
            return None;
        }
        if self.tx.is_some() {
            self.error(Reply::new(
                503,
                "5.5.1",
                "AUTH not allowed during a mail transaction",
            ));
            return None;
        }
        let mech = match mechanism {
            smtp_proto::AUTH_PLAIN => Mechanism::Plain,
            smtp_proto::AUTH_LOGIN => Mechanism::Login,
            _ => {
                self.error(Reply::new(504, "5.5.4", "Unrecognized authentication type"));
                return None;
            }
        };
        let mut sasl = SaslServer::new(mech);
        let step = sasl.start_encoded((!initial.is_empty()).then_some(initial.as_bytes()));
        self.sasl_step(sasl, step)
    }

    fn auth_line(&mut self, line: &[u8]) -> Option<Action> {
        let State::Auth(mut sasl) = std::mem::replace(&mut self.state, State::Command) else {
            return None;
        };
        let step = sasl.step_line(line);
        self.sasl_step(sasl, step)
    }

    fn sasl_step(&mut self, sasl: SaslServer, step: Step) -> Option<Action> {
        match step {
            Step::Challenge(c) => {
                self.send(Reply::plain(334, pochta_sasl::encode_challenge(&c)));
                self.state = State::Auth(sasl);
                None
            }
            Step::Done(credentials) => {
                self.state = State::Waiting(Pending::Auth);
                Some(Action::Authenticate(credentials))
            }
            Step::Failed(pochta_sasl::SaslError::Cancelled) => {
                self.error(Reply::new(501, "5.0.0", "Authentication cancelled"));
                None
            }
            Step::Failed(pochta_sasl::SaslError::BadBase64) => {
                self.error(Reply::new(501, "5.5.2", "Cannot decode response"));
                None
            }
            Step::Failed(pochta_sasl::SaslError::Malformed(what)) => {
                self.error(Reply::new(
                    501,
                    "5.5.2",
                    format!("Malformed response: {what}"),
                ));
                None
            }
        }
    }

    fn starttls(&mut self, line: &[u8]) -> Option<Action> {
        if self.tls.is_some() {
            self.error(Reply::new(503, "5.5.1", "TLS already active"));
            return None;
        }
        if !self.cfg.starttls {
            self.error(Reply::new(502, "5.5.1", "STARTTLS not available"));
            return None;
        }
        let args = line
            .get(8..)
            .map(|r| r.iter().any(|b| !b.is_ascii_whitespace()))
            .unwrap_or(false);
        if args {
            self.error(Reply::new(501, "5.5.4", "STARTTLS takes no arguments"));
            return None;
        }
        self.send(Reply::new(220, "2.0.0", "Ready to start TLS"));
        // Anything pipelined after STARTTLS arrived in clear text and must not be
        // executed after the upgrade (CVE-2011-0411 and its kin).
        self.input.clear();
        self.start = 0;
        self.discarding_line = false;
        self.state = State::Tls;
        Some(Action::StartTls)
    }
}
