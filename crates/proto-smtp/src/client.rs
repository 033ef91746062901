//! The SMTP client (RFC 5321 client side) as a sans-I/O state machine, for the
//! relay that delivers queued mail to remote servers.
//!
//! One [`Client`] is one connection. The driver owns the socket, TLS and the
//! clock; the client owns the protocol. The driver's loop:
//!
//! 1. Connect. If that fails, no client is made: build the outcome with
//!    [`SessionError::connect_failed`] and [`TransactionResult::failed`].
//! 2. [`Client::new`], then call [`Client::poll`] and act on the [`Action`]:
//!    * [`Action::NeedInput`] — write [`Client::output`] (and clear it), then
//!      read with the deadline [`Client::current_timeout`] and pass what came
//!      to [`Client::feed`]; on end of stream or a socket error call
//!      [`Client::eof`], on the deadline [`Client::timed_out`].
//!    * [`Action::Flush`] — write the output and poll again without reading:
//!      the message body is produced a block ([`BODY_BLOCK`]) at a time, each
//!      write under the data-block timeout.
//!    * [`Action::StartTls`] — write the output, drop any bytes read but not
//!      yet fed (they came in clear text), run the TLS handshake, then call
//!      [`Client::tls_established`] or [`Client::tls_failed`].
//!    * [`Action::NeedMessage`] — the session is ready for a transaction: call
//!      [`Client::send`] with the next [`Outgoing`] message for this
//!      destination, or [`Client::quit`] when there is none.
//!    * [`Action::Finished`] — the outcome of the message last sent, one
//!      [`RcptOutcome`] per recipient; record it and poll again.
//!    * [`Action::Close`] — write the output and close. `None` after a normal
//!      QUIT; `Some(error)` when the session failed: messages the relay meant
//!      for this connection but had not handed over get
//!      [`TransactionResult::failed`] with that error (or go to the next MX).
//! 3. Every transaction handed over with `send` is answered by exactly one
//!    `Finished`, even when the connection fails in the middle of it.
//!
//! What the client does on its own (RFC 5321 §3, §4): greeting, EHLO (HELO
//! when EHLO is refused with 5xx), STARTTLS per [`TlsPolicy`] and EHLO again,
//! AUTH PLAIN or LOGIN when credentials are configured, then for each message
//! MAIL FROM / RCPT TO / DATA or BDAT with the parameters the server offers
//! (SIZE, 8BITMIME, SMTPUTF8, DSN), PIPELINING (RFC 2920) when offered, RSET
//! after a transaction left open, QUIT at the end.
//!
//! It never converts content: a message that needs 8BITMIME or SMTPUTF8 is
//! refused permanently (5.6.3, 5.6.7, 5.6.9) by a server that lacks them, and
//! one bigger than the server's SIZE is refused (5.3.4) without being sent.

mod body;
mod caps;
mod outcome;
mod reply;

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

pub use caps::Capabilities;
pub use outcome::{ErrorKind, RcptOutcome, SessionError, Stage, Status, TransactionResult};
pub use pochta_sasl::Credentials;
pub use reply::{EnhancedCode, MAX_REPLY_LINES, ServerReply};

use body::BodyEncoder;
use reply::{ReadError, ReplyReader};

/// How many octets of message body go into the output per [`Action::Flush`]:
/// large enough for few system calls, small enough that a message is never
/// copied whole and each write finishes well inside the data-block timeout.
pub const BODY_BLOCK: usize = 64 * 1024;

/// Default longest reply line, CRLF included. RFC 5321 §4.5.3.1.5 says 512,
/// but real servers send longer lines (policy URLs in 5xx texts), so the
/// default is lenient; the point is only to bound memory.
pub const DEFAULT_MAX_LINE: usize = 4096;

/// How long to wait for each reply (RFC 5321 §4.5.3.2). The driver applies
/// them; [`Client::current_timeout`] says which one applies at the moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// The 220 greeting (§4.5.3.2.1: 5 minutes).
    pub greeting: Duration,
    /// The reply to MAIL (§4.5.3.2.2: 5 minutes).
    pub mail: Duration,
    /// The reply to each RCPT (§4.5.3.2.3: 5 minutes).
    pub rcpt: Duration,
    /// The 354 reply to DATA (§4.5.3.2.4: 2 minutes).
    pub data_init: Duration,
    /// Each write of message data (§4.5.3.2.5: 3 minutes).
    pub data_block: Duration,
    /// The reply after the final `.` or `BDAT … LAST` (§4.5.3.2.6: 10 minutes;
    /// the server may be delivering or scanning the message meanwhile).
    pub data_term: Duration,
    /// Other commands (EHLO, STARTTLS, AUTH, RSET), which the RFC leaves open:
    /// the MAIL value, 5 minutes.
    pub command: Duration,
}

impl Timeouts {
    /// The values RFC 5321 §4.5.3.2 recommends.
    pub const RFC5321: Timeouts = Timeouts {
        greeting: Duration::from_secs(5 * 60),
        mail: Duration::from_secs(5 * 60),
        rcpt: Duration::from_secs(5 * 60),
        data_init: Duration::from_secs(2 * 60),
        data_block: Duration::from_secs(3 * 60),
        data_term: Duration::from_secs(10 * 60),
        command: Duration::from_secs(5 * 60),
    };
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts::RFC5321
    }
}

/// When to use STARTTLS (RFC 3207).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsPolicy {
    /// Never, even when offered (a retry after a failed handshake).
    Disabled,
    /// When the server offers it; otherwise deliver in clear text. A failed
    /// handshake ends the session with [`SessionError::retry_without_tls`] set.
    Opportunistic,
    /// Always: a server that does not offer STARTTLS, refuses it or fails the
    /// handshake gets nothing, and the mail waits (temporary failure, 4.7.10).
    Required,
}

/// Per-connection settings (from the relay's configuration and the route).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Our host name for EHLO/HELO, in A-labels (IDNA) or an address
    /// literal. Anything but printable ASCII is dropped.
    pub helo: String,
    /// When to use STARTTLS.
    pub tls: TlsPolicy,
    /// Credentials for a smarthost (RFC 4954 AUTH: PLAIN with an initial
    /// response when offered, else LOGIN). `authzid` is sent with PLAIN only.
    pub auth: Option<Credentials>,
    /// Send credentials over a connection without TLS. Off by default: a
    /// password is never sent in clear unless the configuration says so.
    pub auth_without_tls: bool,
    /// Longest reply line accepted, CRLF included; longer is a protocol error.
    pub max_line: usize,
    /// Use PIPELINING when offered (off for servers known to break it).
    pub pipelining: bool,
    /// Use CHUNKING (BDAT) when offered.
    pub chunking: bool,
    /// The reply timeouts the driver applies.
    pub timeouts: Timeouts,
}

impl ClientConfig {
    /// Defaults: opportunistic TLS, no AUTH, pipelining and chunking when
    /// offered, [`DEFAULT_MAX_LINE`], RFC 5321 timeouts.
    pub fn new(helo: impl Into<String>) -> ClientConfig {
        ClientConfig {
            helo: helo.into(),
            tls: TlsPolicy::Opportunistic,
            auth: None,
            auth_without_tls: false,
            max_line: DEFAULT_MAX_LINE,
            pipelining: true,
            chunking: true,
            timeouts: Timeouts::RFC5321,
        }
    }
}

/// When the final server should send DSNs for a recipient (RFC 3461 §4.1,
/// `NOTIFY=`). All false is `NEVER`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Notify {
    /// `SUCCESS`: report delivery.
    pub success: bool,
    /// `FAILURE`: report failure.
    pub failure: bool,
    /// `DELAY`: report delays.
    pub delay: bool,
}

impl Notify {
    /// The parameter value: `NEVER` or a comma list.
    fn param(self) -> String {
        let mut words = Vec::new();
        if self.success {
            words.push("SUCCESS");
        }
        if self.failure {
            words.push("FAILURE");
        }
        if self.delay {
            words.push("DELAY");
        }
        if words.is_empty() {
            "NEVER".into()
        } else {
            words.join(",")
        }
    }
}

/// How much of the message a failure DSN should return (RFC 3461 §4.3, `RET=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    /// `RET=FULL`: the whole message.
    Full,
    /// `RET=HDRS`: the header only.
    Headers,
}

/// Envelope DSN parameters of a message (RFC 3461 §4.3, §4.4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DsnParams {
    /// `RET=`.
    pub ret: Option<Ret>,
    /// `ENVID=`: the sender's envelope id, sent xtext-encoded.
    pub envid: Option<String>,
}

/// One recipient of an [`Outgoing`] message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRcpt {
    /// The forward path without angle brackets (`bob@example.com`; the local
    /// part quoted if it needs to be). Passed on as given.
    pub address: String,
    /// `NOTIFY=`, when the sender asked (sent only if the server offers DSN).
    pub notify: Option<Notify>,
    /// The original recipient for `ORCPT=` (a plain address; the client
    /// encodes it, RFC 3461 §4.2 / RFC 6533 §3). Sent only if DSN is offered.
    pub orcpt: Option<String>,
}

impl OutRcpt {
    /// A recipient without DSN parameters.
    pub fn new(address: impl Into<String>) -> OutRcpt {
        OutRcpt {
            address: address.into(),
            notify: None,
            orcpt: None,
        }
    }
}

/// One message to send on this connection: an envelope and the bytes.
#[derive(Clone)]
pub struct Outgoing {
    /// The reverse path without angle brackets; `None` is the null sender `<>`.
    pub mail_from: Option<String>,
    /// The recipients, all for this destination.
    pub recipients: Vec<OutRcpt>,
    /// The message, CRLF canonical (a bare CR or LF is sent as CRLF anyway),
    /// shared with the queue so several connections need no copies.
    pub body: Arc<Vec<u8>>,
    /// The message needs SMTPUTF8 (UTF-8 header fields). Non-ASCII addresses
    /// need it too; the client notices those itself.
    pub needs_smtputf8: bool,
    /// The body has 8-bit content and needs `BODY=8BITMIME` (RFC 6152). The
    /// client also checks the body for octets above 127 itself.
    pub needs_8bit: bool,
    /// RET and ENVID (sent only if the server offers DSN).
    pub dsn: Option<DsnParams>,
}

impl Outgoing {
    /// A message without DSN parameters; the `needs_*` flags start false.
    pub fn new(
        mail_from: Option<String>,
        recipients: Vec<OutRcpt>,
        body: Arc<Vec<u8>>,
    ) -> Outgoing {
        Outgoing {
            mail_from,
            recipients,
            body,
            needs_smtputf8: false,
            needs_8bit: false,
            dsn: None,
        }
    }
}

impl fmt::Debug for Outgoing {
    /// The body by its length only: a message may be megabytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outgoing")
            .field("mail_from", &self.mail_from)
            .field("recipients", &self.recipients)
            .field("body_len", &self.body.len())
            .field("needs_smtputf8", &self.needs_smtputf8)
            .field("needs_8bit", &self.needs_8bit)
            .field("dsn", &self.dsn)
            .finish()
    }
}

/// What the client needs from its driver next (see the module documentation
/// for the loop).
#[derive(Debug)]
pub enum Action {
    /// Write [`Client::output`], then read reply bytes and [`Client::feed`]
    /// them (or call [`Client::eof`] / [`Client::timed_out`]).
    NeedInput,
    /// Write [`Client::output`] and poll again without reading: more of the
    /// message body is coming.
    Flush,
    /// Write the output, discard unread input, do the TLS handshake, then call
    /// [`Client::tls_established`] or [`Client::tls_failed`].
    StartTls,
    /// Ready for a transaction: call [`Client::send`] or [`Client::quit`].
    NeedMessage,
    /// The outcome of the last message sent.
    Finished(TransactionResult),
    /// Write the output and close the connection; `Some` when the session
    /// failed, with the reason.
    Close(Option<SessionError>),
}

#[derive(Debug)]
enum Phase {
    /// Waiting for the replies in `expect`.
    Waiting,
    /// `Action::StartTls` returned; waiting for the handshake's result.
    Handshake,
    /// Between transactions.
    Ready,
    /// Writing a message body.
    Body(BodyEncoder),
    /// Done; nothing more is read or written.
    Closed,
}

/// A reply the client waits for, in the order the commands were sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    AuthPlain,
    AuthLoginUser,
    AuthLoginPassword,
    AuthDone,
    Rset,
    Mail,
    Rcpt(usize),
    Data,
    Bdat,
    DataEnd,
    /// The `.` sent after a 354 that came although no recipient was accepted
    /// (RFC 2920 §3.1).
    LoneDot,
}

impl Expect {
    fn stage(self) -> Stage {
        match self {
            Expect::Greeting => Stage::Greeting,
            Expect::Ehlo => Stage::Ehlo,
            Expect::Helo => Stage::Helo,
            Expect::StartTls => Stage::StartTls,
            Expect::AuthPlain
            | Expect::AuthLoginUser
            | Expect::AuthLoginPassword
            | Expect::AuthDone => Stage::Auth,
            Expect::Rset => Stage::Rset,
            Expect::Mail => Stage::Mail,
            Expect::Rcpt(_) => Stage::Rcpt,
            Expect::Data => Stage::Data,
            Expect::Bdat | Expect::DataEnd | Expect::LoneDot => Stage::DataEnd,
        }
    }
}

/// The transaction in flight.
#[derive(Debug)]
struct Tx {
    msg: Outgoing,
    /// Decided outcomes, by recipient index.
    outcomes: Vec<Option<RcptOutcome>>,
    /// Recipients the server accepted at RCPT (2xx), waiting for the final reply.
    accepted: Vec<bool>,
    /// Indices of the recipients RCPT is sent for (valid addresses), in order.
    sendable: Vec<usize>,
    smtputf8: bool,
    eight_bit: bool,
    size: u64,
    pipelined: bool,
    chunking: bool,
    mail_sent: bool,
    next_rcpt: usize,
    data_sent: bool,
    mail_failed: bool,
    dsn: bool,
}

impl Tx {
    fn any_accepted(&self) -> bool {
        self.accepted
            .iter()
            .zip(&self.outcomes)
            .any(|(a, o)| *a && o.is_none())
    }

    /// Decides every accepted recipient still open by a reply.
    fn decide_accepted(&mut self, reply: &ServerReply, stage: Stage) {
        for (accepted, outcome) in self.accepted.iter().zip(self.outcomes.iter_mut()) {
            if *accepted && outcome.is_none() {
                *outcome = Some(RcptOutcome::from_reply(reply.clone(), stage));
            }
        }
    }

    /// Decides every recipient still open by a reply.
    fn decide_all(&mut self, reply: &ServerReply, stage: Stage) {
        for outcome in self.outcomes.iter_mut().filter(|o| o.is_none()) {
            *outcome = Some(RcptOutcome::from_reply(reply.clone(), stage));
        }
    }

    fn into_result(self, error: Option<&SessionError>) -> TransactionResult {
        let dsn = self.dsn;
        let recipients = self
            .outcomes
            .into_iter()
            .map(|o| match (o, error) {
                (Some(o), _) => o,
                (None, Some(e)) => e.outcome(),
                // Unreachable by construction; temporary, so nothing is lost.
                (None, None) => RcptOutcome {
                    status: Status::TempFail,
                    reply: ServerReply::local(
                        451,
                        EnhancedCode::new(4, 3, 0),
                        "no final reply for this recipient",
                    ),
                    stage: Stage::DataEnd,
                },
            })
            .collect();
        TransactionResult {
            recipients,
            dsn_relayed: dsn,
        }
    }
}

/// One SMTP client connection (see the module documentation for the driver's
/// contract).
pub struct Client {
    cfg: ClientConfig,
    helo: String,
    peer: String,
    /// Commands and message data waiting to be written.
    pub output: Vec<u8>,
    input: Vec<u8>,
    start: usize,
    reader: ReplyReader,
    phase: Phase,
    expect: VecDeque<Expect>,
    caps: Capabilities,
    esmtp: bool,
    remote_name: Option<String>,
    tls: bool,
    starttls_refused: bool,
    authenticated: bool,
    tx: Option<Tx>,
    /// A MAIL was accepted and its transaction not closed by a final reply:
    /// the next transaction starts with RSET (RFC 5321 §4.1.1.5).
    rset_needed: bool,
    pending: VecDeque<Action>,
    error: Option<SessionError>,
}

impl fmt::Debug for Client {
    /// The state without the buffers: the output may hold an AUTH PLAIN
    /// response (the password, base64) and the body a whole message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.peer)
            .field("stage", &self.stage())
            .field("expect", &self.expect)
            .field("tls", &self.tls)
            .field("esmtp", &self.esmtp)
            .field("authenticated", &self.authenticated)
            .field("caps", &self.caps)
            .field("rset_needed", &self.rset_needed)
            .field("output_len", &self.output.len())
            .field(
                "input_len",
                &(self.input.len() - self.start.min(self.input.len())),
            )
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for a connection just opened to `peer` (the name used in the
    /// texts of generated replies: "message too big for mx.example.com").
    /// `implicit_tls` is true when the connection is TLS from the start (a
    /// smarthost on port 465): no STARTTLS then. The first poll asks for the
    /// greeting.
    pub fn new(config: ClientConfig, peer: impl Into<String>, implicit_tls: bool) -> Client {
        let helo: String = config
            .helo
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .collect();
        let helo = if helo.is_empty() {
            "localhost".to_string()
        } else {
            helo
        };
        Client {
            cfg: config,
            helo,
            peer: peer.into(),
            output: Vec::with_capacity(512),
            input: Vec::new(),
            start: 0,
            reader: ReplyReader::default(),
            phase: Phase::Waiting,
            expect: VecDeque::from([Expect::Greeting]),
            caps: Capabilities::default(),
            esmtp: false,
            remote_name: None,
            tls: implicit_tls,
            starttls_refused: false,
            authenticated: false,
            tx: None,
            rset_needed: false,
            pending: VecDeque::new(),
            error: None,
        }
    }

    /// Appends bytes read from the server.
    pub fn feed(&mut self, bytes: &[u8]) {
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        if self.start > 0 {
            self.input.drain(..self.start.min(self.input.len()));
            self.start = 0;
        }
        self.input.extend_from_slice(bytes);
    }

    /// The server closed the connection, or reading or writing failed. The
    /// message in flight, if any, is finished with temporary failures
    /// ("connection lost …", 4.4.2) and the session closes.
    pub fn eof(&mut self) {
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        let stage = self.stage();
        let err = SessionError::local(
            ErrorKind::ConnectionLost,
            stage,
            EnhancedCode::new(4, 4, 2),
            format!("connection to {} lost {}", self.peer, stage.describe()),
        );
        self.output.clear();
        self.fail(err, false);
    }

    /// The deadline of [`Client::current_timeout`] passed. Like [`Client::eof`]
    /// with "timed out …" (4.4.2).
    pub fn timed_out(&mut self) {
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        let stage = self.stage();
        let err = SessionError::local(
            ErrorKind::TimedOut,
            stage,
            EnhancedCode::new(4, 4, 2),
            format!(
                "conversation with {} timed out {}",
                self.peer,
                stage.describe()
            ),
        );
        self.output.clear();
        self.fail(err, false);
    }

    /// The TLS handshake after STARTTLS succeeded: the session starts over
    /// (RFC 3207 §4.2) with a new EHLO, and what the server said before is forgotten.
    pub fn tls_established(&mut self) {
        if !matches!(self.phase, Phase::Handshake) {
            return;
        }
        self.tls = true;
        self.caps = Capabilities::default();
        self.esmtp = false;
        self.input.clear();
        self.start = 0;
        self.reader = ReplyReader::default();
        self.command(&format!("EHLO {}", self.helo));
        self.expect.push_back(Expect::Ehlo);
        self.phase = Phase::Waiting;
    }

    /// The TLS handshake failed (`reason` goes into the error text). The
    /// session ends; under [`TlsPolicy::Opportunistic`] the error says the
    /// relay may retry without TLS.
    pub fn tls_failed(&mut self, reason: &str) {
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        let mut err = SessionError::local(
            ErrorKind::TlsFailed,
            Stage::TlsHandshake,
            EnhancedCode::new(4, 7, 5),
            format!("TLS handshake with {} failed: {reason}", self.peer),
        );
        err.retry_without_tls = self.cfg.tls == TlsPolicy::Opportunistic;
        self.output.clear();
        self.fail(err, false);
    }

    /// Starts a transaction; call it after [`Action::NeedMessage`]. It ends with
    /// one [`Action::Finished`]: at once if the message cannot go to this
    /// server (invalid addresses, too big for its SIZE, 8BITMIME or SMTPUTF8
    /// needed but not offered), else after the server's replies.
    pub fn send(&mut self, msg: Outgoing) {
        if !matches!(self.phase, Phase::Ready) {
            // Not the contract; answer anyway so the message is not lost.
            let err = SessionError::local(
                ErrorKind::Aborted,
                self.stage(),
                EnhancedCode::new(4, 3, 0),
                "message handed to the SMTP client while it was not ready".into(),
            );
            let result = TransactionResult::failed(&msg, &err);
            self.pending.push_back(Action::Finished(result));
            return;
        }
        let n = msg.recipients.len();
        let mut outcomes: Vec<Option<RcptOutcome>> = vec![None; n];

        let perm = |code: u16, esc: EnhancedCode, text: String| {
            RcptOutcome::from_reply(ServerReply::local(code, esc, text), Stage::Mail)
        };
        let mut refuse_all = None;
        if let Some(from) = msg.mail_from.as_deref().filter(|f| !valid_path(f)) {
            refuse_all = Some(perm(
                553,
                EnhancedCode::new(5, 1, 7),
                format!("invalid sender address {:?}", shorten(from)),
            ));
        }
        let mut sendable = Vec::with_capacity(n);
        for (i, rcpt) in msg.recipients.iter().enumerate() {
            if rcpt.address.is_empty() || !valid_path(&rcpt.address) {
                if let Some(o) = outcomes.get_mut(i) {
                    *o = Some(RcptOutcome::from_reply(
                        ServerReply::local(
                            553,
                            EnhancedCode::new(5, 1, 3),
                            format!("invalid recipient address {:?}", shorten(&rcpt.address)),
                        ),
                        Stage::Rcpt,
                    ));
                }
            } else {
                sendable.push(i);
            }
        }
        let non_ascii_address = msg.mail_from.as_deref().is_some_and(|f| !f.is_ascii())
            || sendable
                .iter()
                .filter_map(|&i| msg.recipients.get(i))
                .any(|r| !r.address.is_ascii());
        let smtputf8 = msg.needs_smtputf8 || non_ascii_address;
        let eight_bit = msg.needs_8bit || msg.body.iter().any(|b| *b >= 0x80);
        let size = body::wire_len(&msg.body);
        let peer = self.peer.clone();
        if refuse_all.is_none() && smtputf8 && !self.caps.smtputf8 {
            // RFC 6531 §3.2: no downgrade; X.6.7 for addresses, X.6.9 for headers.
            refuse_all = Some(if non_ascii_address {
                perm(
                    553,
                    EnhancedCode::new(5, 6, 7),
                    format!("{peer} does not support SMTPUTF8, needed for non-ASCII addresses"),
                )
            } else {
                perm(
                    554,
                    EnhancedCode::new(5, 6, 9),
                    format!("{peer} does not support SMTPUTF8, needed for UTF-8 header fields"),
                )
            });
        }
        if refuse_all.is_none() && eight_bit && !self.caps.eight_bit_mime {
            // RFC 6152 §3 allows converting to 7 bit; pochta does not convert.
            refuse_all = Some(perm(
                554,
                EnhancedCode::new(5, 6, 3),
                format!(
                    "{peer} does not support 8-bit content (no 8BITMIME), and pochta does not convert"
                ),
            ));
        }
        if refuse_all.is_none()
            && let Some(max) = self.caps.size.filter(|m| *m > 0 && size > *m)
        {
            refuse_all = Some(perm(
                552,
                EnhancedCode::new(5, 3, 4),
                format!("message too big for {peer} ({size} octets, its limit is {max})"),
            ));
        }
        if let Some(outcome) = refuse_all {
            for o in outcomes.iter_mut().filter(|o| o.is_none()) {
                *o = Some(outcome.clone());
            }
            sendable.clear();
        }
        let dsn = self.caps.dsn;
        let mut tx = Tx {
            outcomes,
            accepted: vec![false; n],
            sendable,
            smtputf8,
            eight_bit,
            size,
            pipelined: self.caps.pipelining && self.cfg.pipelining,
            chunking: self.caps.chunking && self.cfg.chunking,
            mail_sent: false,
            next_rcpt: 0,
            data_sent: false,
            mail_failed: false,
            dsn,
            msg,
        };
        if tx.sendable.is_empty() {
            tx.dsn = false;
            let result = tx.into_result(None);
            self.pending.push_back(Action::Finished(result));
            return;
        }
        self.phase = Phase::Waiting;
        if self.rset_needed {
            self.command("RSET");
            self.expect.push_back(Expect::Rset);
            if !tx.pipelined {
                self.tx = Some(tx);
                return;
            }
        }
        if tx.pipelined {
            // RFC 2920 §3.1: MAIL, the RCPTs and DATA (or BDAT with its chunk,
            // RFC 3030 §4.2) go in one group; replies are checked in order.
            self.send_mail(&mut tx);
            while tx.next_rcpt < tx.sendable.len() {
                self.send_rcpt(&mut tx);
            }
            self.send_data(&mut tx);
            self.tx = Some(tx);
        } else {
            self.tx = Some(tx);
            self.step_tx();
        }
    }

    /// Ends the session: QUIT when idle. During a transaction (shutdown, say)
    /// the connection is dropped without QUIT, which might land inside the
    /// message data, and the message gets temporary failures.
    pub fn quit(&mut self) {
        match self.phase {
            Phase::Closed => {}
            Phase::Ready => {
                self.command("QUIT");
                self.phase = Phase::Closed;
            }
            _ => {
                let stage = self.stage();
                let err = SessionError::local(
                    ErrorKind::Aborted,
                    stage,
                    EnhancedCode::new(4, 3, 0),
                    format!("delivery to {} abandoned {}", self.peer, stage.describe()),
                );
                self.fail(err, false);
            }
        }
    }

    /// Runs the machine on the buffered input until it needs the driver.
    pub fn poll(&mut self) -> Action {
        loop {
            if let Some(action) = self.pending.pop_front() {
                return action;
            }
            match &mut self.phase {
                Phase::Closed => return Action::Close(self.error.clone()),
                Phase::Handshake => return Action::StartTls,
                Phase::Ready => return Action::NeedMessage,
                Phase::Body(encoder) => {
                    if !encoder.fill(&mut self.output, BODY_BLOCK) {
                        return Action::Flush;
                    }
                    self.phase = Phase::Waiting;
                }
                Phase::Waiting => {
                    if self.expect.is_empty() {
                        // Nothing outstanding: the transaction (if any) is complete.
                        if self.tx.is_some() {
                            self.finish_tx();
                        } else {
                            self.phase = Phase::Ready;
                        }
                        continue;
                    }
                    let pending = self.input.get(self.start..).unwrap_or_default();
                    let (used, result) = self.reader.read(pending, self.cfg.max_line);
                    self.start += used;
                    match result {
                        Ok(Some(reply)) => self.on_reply(reply),
                        Ok(None) => return Action::NeedInput,
                        Err(e) => self.read_error(e),
                    }
                }
            }
        }
    }

    /// The timeout for what the client waits for now (RFC 5321 §4.5.3.2): the
    /// reply to the oldest outstanding command, or the data-block timeout
    /// while the body is being written.
    pub fn current_timeout(&self) -> Duration {
        let t = &self.cfg.timeouts;
        match self.phase {
            Phase::Body(_) => t.data_block,
            Phase::Waiting => match self.expect.front() {
                Some(Expect::Greeting) => t.greeting,
                Some(Expect::Mail) => t.mail,
                Some(Expect::Rcpt(_)) => t.rcpt,
                Some(Expect::Data) => t.data_init,
                Some(Expect::Bdat | Expect::DataEnd | Expect::LoneDot) => t.data_term,
                _ => t.command,
            },
            _ => t.command,
        }
    }

    /// Where the session is: what the oldest outstanding reply answers, or
    /// what the client is doing.
    pub fn stage(&self) -> Stage {
        match self.phase {
            Phase::Waiting => self.expect.front().map_or(Stage::Idle, |e| e.stage()),
            Phase::Handshake => Stage::TlsHandshake,
            Phase::Body(_) => Stage::Body,
            Phase::Ready | Phase::Closed => Stage::Idle,
        }
    }

    /// What the server offered in its last EHLO (empty after HELO).
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// True when the server answered EHLO (not HELO).
    pub fn esmtp(&self) -> bool {
        self.esmtp
    }

    /// True once the connection is encrypted (STARTTLS done, or implicit TLS).
    pub fn tls_active(&self) -> bool {
        self.tls
    }

    /// True after a successful AUTH.
    pub fn authenticated(&self) -> bool {
        self.authenticated
    }

    /// The name the server gave in its EHLO/HELO reply, for Received-style logs.
    pub fn remote_name(&self) -> Option<&str> {
        self.remote_name.as_deref()
    }

    /// The peer name given to [`Client::new`].
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// The error that ended the session, once it has.
    pub fn error(&self) -> Option<&SessionError> {
        self.error.as_ref()
    }

    fn command(&mut self, line: &str) {
        self.output.extend_from_slice(line.as_bytes());
        self.output.extend_from_slice(b"\r\n");
    }

    fn read_error(&mut self, e: ReadError) {
        let stage = self.stage();
        let text = match e {
            ReadError::TooLong => format!(
                "reply from {} {} exceeds the line limits",
                self.peer,
                stage.describe()
            ),
            ReadError::Garbage(line) => format!(
                "invalid reply from {} {}: {line:?}",
                self.peer,
                stage.describe()
            ),
        };
        let err = SessionError::local(ErrorKind::Protocol, stage, EnhancedCode::new(4, 5, 0), text);
        self.fail(err, false);
    }

    /// A reply that makes no sense where it came (354 to MAIL, 250 to DATA):
    /// the server and we no longer agree on the state, so the session ends.
    fn unexpected(&mut self, stage: Stage, reply: &ServerReply) {
        let err = SessionError::local(
            ErrorKind::Protocol,
            stage,
            EnhancedCode::new(4, 5, 0),
            format!(
                "unexpected reply from {} {}: {reply}",
                self.peer,
                stage.describe()
            ),
        );
        self.fail(err, false);
    }

    /// Ends the session: the message in flight is finished (recipients not yet
    /// decided get the error), then Close. `quit` when the connection is still
    /// in a state where QUIT is meaningful (RFC 5321 §3.1 after a 554 greeting).
    fn fail(&mut self, err: SessionError, quit: bool) {
        if let Some(tx) = self.tx.take() {
            let result = tx.into_result(Some(&err));
            self.pending.push_back(Action::Finished(result));
        }
        self.expect.clear();
        if quit {
            self.command("QUIT");
        }
        self.phase = Phase::Closed;
        self.error = Some(err);
    }

    fn on_reply(&mut self, reply: ServerReply) {
        let Some(expect) = self.expect.pop_front() else {
            return;
        };
        let stage = expect.stage();
        if reply.code == 421 {
            // RFC 5321 §3.8: the server is closing the channel; no QUIT.
            self.fail(
                SessionError::remote(ErrorKind::Closing, stage, reply),
                false,
            );
            return;
        }
        let class = reply.code / 100;
        match expect {
            Expect::Greeting => match class {
                2 => {
                    self.command(&format!("EHLO {}", self.helo));
                    self.expect.push_back(Expect::Ehlo);
                }
                4 | 5 => self.fail(
                    SessionError::remote(ErrorKind::Rejected, stage, reply),
                    true,
                ),
                _ => self.unexpected(stage, &reply),
            },
            Expect::Ehlo => match class {
                2 => {
                    self.caps = Capabilities::from_ehlo(&reply);
                    self.esmtp = true;
                    self.remote_name = first_word(&reply);
                    self.after_hello();
                }
                5 => {
                    // RFC 5321 §3.2: an old server; HELO, and no extensions.
                    self.command(&format!("HELO {}", self.helo));
                    self.expect.push_back(Expect::Helo);
                }
                4 => self.fail(
                    SessionError::remote(ErrorKind::Rejected, stage, reply),
                    true,
                ),
                _ => self.unexpected(stage, &reply),
            },
            Expect::Helo => match class {
                2 => {
                    self.caps = Capabilities::default();
                    self.esmtp = false;
                    self.remote_name = first_word(&reply);
                    self.after_hello();
                }
                4 | 5 => self.fail(
                    SessionError::remote(ErrorKind::Rejected, stage, reply),
                    true,
                ),
                _ => self.unexpected(stage, &reply),
            },
            Expect::StartTls => match class {
                2 => {
                    // Anything after the 220 came in clear text and must not be
                    // taken for a reply over TLS (response injection).
                    self.input.clear();
                    self.start = 0;
                    self.phase = Phase::Handshake;
                }
                4 | 5 if self.cfg.tls == TlsPolicy::Required => {
                    let err = SessionError::local(
                        ErrorKind::TlsUnavailable,
                        stage,
                        EnhancedCode::new(4, 7, 10),
                        format!("TLS required but {} refused STARTTLS: {reply}", self.peer),
                    );
                    self.fail(err, true);
                }
                4 | 5 => {
                    // RFC 3207 §4.1: the client may go on without TLS.
                    self.starttls_refused = true;
                    self.after_hello();
                }
                _ => self.unexpected(stage, &reply),
            },
            // A 334 after PLAIN's initial response (a server that wants the
            // response on its own line) counts as a refusal too: the QUIT
            // that follows ends the exchange.
            Expect::AuthPlain | Expect::AuthDone => match class {
                2 => {
                    self.authenticated = true;
                    self.phase = Phase::Ready;
                }
                _ => self.auth_failed(reply),
            },
            Expect::AuthLoginUser | Expect::AuthLoginPassword => match class {
                3 => {
                    let Some(creds) = self.cfg.auth.as_ref() else {
                        self.auth_failed(reply);
                        return;
                    };
                    let (line, next) = if expect == Expect::AuthLoginUser {
                        (STANDARD.encode(&creds.login), Expect::AuthLoginPassword)
                    } else {
                        (STANDARD.encode(creds.password.expose()), Expect::AuthDone)
                    };
                    self.command(&line);
                    self.expect.push_back(next);
                }
                _ => self.auth_failed(reply),
            },
            Expect::Rset => match class {
                2 => {
                    self.rset_needed = false;
                    self.step_tx();
                }
                _ => {
                    // The server's transaction state is unknown: give up on it.
                    let mut err = SessionError::remote(ErrorKind::Rejected, stage, reply);
                    err.status = Status::TempFail;
                    self.fail(err, true);
                }
            },
            Expect::Mail => {
                let Some(tx) = self.tx.as_mut() else {
                    return self.unexpected(stage, &reply);
                };
                match class {
                    2 => self.rset_needed = true,
                    4 | 5 => {
                        tx.mail_failed = true;
                        tx.decide_all(&reply, stage);
                    }
                    _ => return self.unexpected(stage, &reply),
                }
                self.step_tx();
            }
            Expect::Rcpt(i) => {
                let Some(tx) = self.tx.as_mut() else {
                    return self.unexpected(stage, &reply);
                };
                if !tx.mail_failed {
                    match class {
                        2 => {
                            if let Some(a) = tx.accepted.get_mut(i) {
                                *a = true;
                            }
                        }
                        4 | 5 => {
                            if let Some(o) = tx.outcomes.get_mut(i) {
                                *o = Some(RcptOutcome::from_reply(reply, stage));
                            }
                        }
                        _ => return self.unexpected(stage, &reply),
                    }
                }
                self.step_tx();
            }
            Expect::Data => {
                let Some(tx) = self.tx.as_mut() else {
                    return self.unexpected(stage, &reply);
                };
                match class {
                    3 if !tx.mail_failed && tx.any_accepted() => {
                        self.phase = Phase::Body(BodyEncoder::new(tx.msg.body.clone(), true));
                        self.expect.push_back(Expect::DataEnd);
                    }
                    3 => {
                        // RFC 2920 §3.1: DATA accepted although no recipient
                        // was: end the (empty) data at once with a single dot.
                        self.command(".");
                        self.expect.push_back(Expect::LoneDot);
                    }
                    4 | 5 => {
                        // The transaction stays open on the server: RSET next time.
                        if !tx.mail_failed {
                            tx.decide_accepted(&reply, stage);
                        }
                        self.step_tx();
                    }
                    _ => self.unexpected(stage, &reply),
                }
            }
            Expect::Bdat | Expect::DataEnd => {
                let Some(tx) = self.tx.as_mut() else {
                    return self.unexpected(stage, &reply);
                };
                match class {
                    2 | 4 | 5 => {
                        if !tx.mail_failed {
                            tx.decide_accepted(&reply, stage);
                        }
                        // After a final reply to the data the server's
                        // transaction is over (RFC 5321 §4.1.1.4). A failed BDAT
                        // leaves it to RSET (RFC 3030 §2).
                        if class == 2 || expect == Expect::DataEnd {
                            self.rset_needed = false;
                        }
                        self.step_tx();
                    }
                    _ => self.unexpected(stage, &reply),
                }
            }
            Expect::LoneDot => {
                self.rset_needed = false;
                self.step_tx();
            }
        }
    }

    fn auth_failed(&mut self, reply: ServerReply) {
        // Temporary whatever the code: wrong smarthost credentials are our
        // configuration error, and the mail should wait for it to be fixed
        // (what Postfix calls smtp_sasl_auth_soft_bounce).
        let err = SessionError::remote(ErrorKind::AuthFailed, Stage::Auth, reply);
        self.fail(err, true);
    }

    /// After EHLO/HELO: STARTTLS, then AUTH, then ready.
    fn after_hello(&mut self) {
        if !self.tls {
            let offered = self.caps.starttls && !self.starttls_refused;
            if self.cfg.tls != TlsPolicy::Disabled && offered {
                self.command("STARTTLS");
                self.expect.push_back(Expect::StartTls);
                return;
            }
            if self.cfg.tls == TlsPolicy::Required {
                let err = SessionError::local(
                    ErrorKind::TlsUnavailable,
                    Stage::StartTls,
                    EnhancedCode::new(4, 7, 10),
                    format!("TLS required but {} does not offer STARTTLS", self.peer),
                );
                self.fail(err, true);
                return;
            }
        }
        if self.cfg.auth.is_some() && !self.authenticated {
            self.start_auth();
            return;
        }
        self.phase = Phase::Ready;
    }

    fn start_auth(&mut self) {
        let Some(creds) = self.cfg.auth.clone() else {
            self.phase = Phase::Ready;
            return;
        };
        let unavailable = |text: String| {
            SessionError::local(
                ErrorKind::AuthUnavailable,
                Stage::Auth,
                EnhancedCode::new(4, 7, 0),
                text,
            )
        };
        if !self.tls && !self.cfg.auth_without_tls {
            // RFC 4954 §4 with §14: PLAIN and LOGIN send the password in clear.
            let mut err = unavailable(format!(
                "not sending credentials to {} without TLS",
                self.peer
            ));
            err.reply.esc = Some(EnhancedCode::new(4, 7, 10));
            self.fail(err, true);
        } else if self.caps.offers_auth("PLAIN") {
            // RFC 4616 §2 message, as an RFC 4954 §4 initial response.
            let mut msg = Vec::new();
            msg.extend_from_slice(creds.authzid.as_deref().unwrap_or("").as_bytes());
            msg.push(0);
            msg.extend_from_slice(creds.login.as_bytes());
            msg.push(0);
            msg.extend_from_slice(creds.password.expose().as_bytes());
            self.command(&format!("AUTH PLAIN {}", STANDARD.encode(&msg)));
            self.expect.push_back(Expect::AuthPlain);
        } else if self.caps.offers_auth("LOGIN") {
            self.command("AUTH LOGIN");
            self.expect.push_back(Expect::AuthLoginUser);
        } else if self.caps.auth.is_empty() {
            let err = unavailable(format!("{} does not offer AUTH", self.peer));
            self.fail(err, true);
        } else {
            let err = unavailable(format!(
                "{} offers no AUTH mechanism pochta supports (PLAIN, LOGIN): {}",
                self.peer,
                self.caps.auth.join(" ")
            ));
            self.fail(err, true);
        }
    }

    fn send_mail(&mut self, tx: &mut Tx) {
        let mut line = format!("MAIL FROM:<{}>", tx.msg.mail_from.as_deref().unwrap_or(""));
        if self.caps.size.is_some() {
            line.push_str(&format!(" SIZE={}", tx.size));
        }
        if tx.eight_bit {
            line.push_str(" BODY=8BITMIME");
        }
        if tx.smtputf8 {
            line.push_str(" SMTPUTF8");
        }
        if tx.dsn
            && let Some(dsn) = tx.msg.dsn.as_ref()
        {
            match dsn.ret {
                Some(Ret::Full) => line.push_str(" RET=FULL"),
                Some(Ret::Headers) => line.push_str(" RET=HDRS"),
                None => {}
            }
            if let Some(envid) = dsn.envid.as_deref() {
                line.push_str(&format!(" ENVID={}", body::xtext(envid)));
            }
        }
        self.command(&line);
        self.expect.push_back(Expect::Mail);
        tx.mail_sent = true;
    }

    fn send_rcpt(&mut self, tx: &mut Tx) {
        let Some(&i) = tx.sendable.get(tx.next_rcpt) else {
            return;
        };
        tx.next_rcpt += 1;
        let Some(rcpt) = tx.msg.recipients.get(i) else {
            return;
        };
        let mut line = format!("RCPT TO:<{}>", rcpt.address);
        if tx.dsn {
            if let Some(notify) = rcpt.notify {
                line.push_str(&format!(" NOTIFY={}", notify.param()));
            }
            if let Some(orcpt) = rcpt
                .orcpt
                .as_deref()
                .filter(|o| valid_path(o) && !o.is_empty())
            {
                line.push_str(&format!(" ORCPT={}", body::orcpt(orcpt, tx.smtputf8)));
            }
        }
        self.command(&line);
        self.expect.push_back(Expect::Rcpt(i));
    }

    fn send_data(&mut self, tx: &mut Tx) {
        tx.data_sent = true;
        if tx.chunking {
            // RFC 3030 §2: the chunk follows the command; no dot-stuffing.
            self.command(&format!("BDAT {} LAST", tx.size));
            self.expect.push_back(Expect::Bdat);
            self.phase = Phase::Body(BodyEncoder::new(tx.msg.body.clone(), false));
        } else {
            self.command("DATA");
            self.expect.push_back(Expect::Data);
        }
    }

    /// After each transaction reply: without pipelining, send the next
    /// command; when nothing is outstanding any more, finish.
    fn step_tx(&mut self) {
        if !matches!(self.phase, Phase::Waiting) || !self.expect.is_empty() {
            return;
        }
        let Some(mut tx) = self.tx.take() else {
            return;
        };
        let done = tx.pipelined || tx.mail_failed || tx.data_sent;
        if !done {
            if !tx.mail_sent {
                self.send_mail(&mut tx);
            } else if tx.next_rcpt < tx.sendable.len() {
                self.send_rcpt(&mut tx);
            } else if tx.any_accepted() {
                // RFC 5321 §3.3: DATA only when a recipient was accepted.
                self.send_data(&mut tx);
            } else {
                // Nobody accepted: the transaction stays open on the server
                // (rset_needed) and this message is done.
                self.tx = Some(tx);
                self.finish_tx();
                return;
            }
            self.tx = Some(tx);
            return;
        }
        self.tx = Some(tx);
        self.finish_tx();
    }

    fn finish_tx(&mut self) {
        if let Some(tx) = self.tx.take() {
            let result = tx.into_result(None);
            self.pending.push_back(Action::Finished(result));
        }
        self.expect.clear();
        self.phase = Phase::Ready;
    }
}

/// A path safe to put between angle brackets: no control characters (which
/// could end the command line and inject another), no angle brackets, no
/// white space outside a quoted local part, and not absurdly long.
fn valid_path(path: &str) -> bool {
    path.len() <= 512
        && !path.chars().any(|c| c.is_control() || c == '<' || c == '>')
        && (!path.contains(char::is_whitespace) || path.starts_with('"'))
}

/// At most 80 characters of an address, for error texts.
fn shorten(s: &str) -> String {
    s.chars().take(80).collect()
}

/// The first word of a reply's first line: the name in an EHLO/HELO reply.
fn first_word(reply: &ServerReply) -> Option<String> {
    reply
        .lines
        .first()
        .and_then(|l| l.split_ascii_whitespace().next())
        .map(str::to_string)
}
