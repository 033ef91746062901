//! What became of a transaction and of the session: per-recipient outcomes for
//! DSNs and the queue, and the connection-level error that ends a session.

use super::{EnhancedCode, Outgoing, ServerReply};

/// The fate of one recipient, as the queue needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// The server took responsibility for the message (2xx after the data).
    Delivered,
    /// Failed for now (4xx, or the connection failed): keep it queued and retry.
    TempFail,
    /// Failed for good (5xx): bounce.
    PermFail,
}

impl Status {
    /// TempFail for 4xx, PermFail for 5xx, Delivered for 2xx; anything else
    /// (a reply that makes no sense where it came) is treated as temporary.
    pub fn from_code(code: u16) -> Status {
        match code / 100 {
            2 => Status::Delivered,
            5 => Status::PermFail,
            _ => Status::TempFail,
        }
    }
}

/// Where in the session something happened: the command a reply answered, or
/// what the client was doing. DSNs and logs say "in reply to RCPT TO".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Opening the connection (the driver's business; see [`SessionError::connect_failed`]).
    Connect,
    /// Waiting for the 220 greeting.
    Greeting,
    /// EHLO.
    Ehlo,
    /// HELO, after EHLO was refused.
    Helo,
    /// The STARTTLS command.
    StartTls,
    /// The TLS handshake after STARTTLS.
    TlsHandshake,
    /// AUTH.
    Auth,
    /// RSET before a transaction.
    Rset,
    /// MAIL FROM.
    Mail,
    /// RCPT TO.
    Rcpt,
    /// The DATA command itself (waiting for 354).
    Data,
    /// Writing the message data.
    Body,
    /// The final reply to the message (after the `.` of DATA, or to `BDAT … LAST`).
    DataEnd,
    /// Between transactions, waiting for the relay's next message.
    Idle,
}

impl Stage {
    /// The SMTP command this stage answers, for "in reply to …" texts (RFC 3464
    /// readers expect the command name).
    pub fn command(self) -> Option<&'static str> {
        Some(match self {
            Stage::Ehlo => "EHLO",
            Stage::Helo => "HELO",
            Stage::StartTls => "STARTTLS",
            Stage::Auth => "AUTH",
            Stage::Rset => "RSET",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::DataEnd => "end of data",
            Stage::Connect | Stage::Greeting | Stage::TlsHandshake | Stage::Body | Stage::Idle => {
                return None;
            }
        })
    }

    /// What the client was doing, as a phrase to follow "connection lost" or
    /// "timed out": "while waiting for the reply to MAIL FROM", "while sending
    /// the message".
    pub fn describe(self) -> String {
        match self {
            Stage::Connect => "while connecting".into(),
            Stage::Greeting => "while waiting for the greeting".into(),
            Stage::TlsHandshake => "during the TLS handshake".into(),
            Stage::Body => "while sending the message".into(),
            Stage::Idle => "between messages".into(),
            other => format!(
                "while waiting for the reply to {}",
                other.command().unwrap_or("a command")
            ),
        }
    }
}

/// The outcome for one recipient of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptOutcome {
    /// Delivered, or failed temporarily or permanently.
    pub status: Status,
    /// The reply that decided it: the remote server's words (for a DSN's
    /// `Diagnostic-Code` and `Status`), or ours when [`ServerReply::generated`].
    pub reply: ServerReply,
    /// The command that reply answered.
    pub stage: Stage,
}

impl RcptOutcome {
    /// An outcome decided by `reply` at `stage`, its status from the reply code.
    pub fn from_reply(reply: ServerReply, stage: Stage) -> RcptOutcome {
        RcptOutcome {
            status: Status::from_code(reply.code),
            reply,
            stage,
        }
    }
}

/// The outcome of one [`Outgoing`] message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionResult {
    /// One outcome per recipient, in the order of [`Outgoing::recipients`].
    pub recipients: Vec<RcptOutcome>,
    /// True when the server offers DSN, so NOTIFY, ORCPT, RET and ENVID were
    /// passed on. When false they were dropped, and for a delivered recipient
    /// with `NOTIFY=SUCCESS` the relay sends the "relayed" DSN itself
    /// (RFC 3461 §4.1).
    pub dsn_relayed: bool,
}

impl TransactionResult {
    /// Every recipient of `message` failed with `error`: for messages the relay
    /// meant to send on a connection that failed before they were handed over
    /// (connection refused, greeting refused, TLS required but not offered …).
    pub fn failed(message: &Outgoing, error: &SessionError) -> TransactionResult {
        TransactionResult {
            recipients: vec![error.outcome(); message.recipients.len()],
            dsn_relayed: false,
        }
    }

    /// True when every recipient was delivered.
    pub fn all_delivered(&self) -> bool {
        self.recipients
            .iter()
            .all(|r| r.status == Status::Delivered)
    }

    /// How many recipients have `status`.
    pub fn count(&self, status: Status) -> usize {
        self.recipients
            .iter()
            .filter(|r| r.status == status)
            .count()
    }
}

/// Why a session ended abnormally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The driver could not connect (refused, unreachable, DNS): see
    /// [`SessionError::connect_failed`].
    ConnectFailed,
    /// The server refused the session: greeting 4xx/5xx, EHLO and HELO refused
    /// (the status follows the reply code), or RSET refused (always temporary:
    /// the session is confused, the mail is not at fault).
    Rejected,
    /// The server said 421: it is closing the connection (RFC 5321 §3.8).
    Closing,
    /// The connection was closed or broke (the driver called [`super::Client::eof`]).
    ConnectionLost,
    /// A reply did not come in time (the driver called [`super::Client::timed_out`]).
    TimedOut,
    /// The server sent something that is not a valid reply, a line over the
    /// limit, or a reply code that makes no sense where it came.
    Protocol,
    /// TLS is required but the server does not offer STARTTLS or refused it.
    TlsUnavailable,
    /// The TLS handshake failed (the driver called [`super::Client::tls_failed`]).
    TlsFailed,
    /// Credentials are configured but cannot be used: no TLS to protect them,
    /// no AUTH offered, or no mechanism we speak (PLAIN, LOGIN).
    AuthUnavailable,
    /// The server refused our credentials.
    AuthFailed,
    /// The relay gave up on the session (it called [`super::Client::quit`]
    /// while a message was in flight).
    Aborted,
}

/// A session-level failure: it ends the connection, and every recipient not
/// yet decided gets [`SessionError::outcome`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Where it happened.
    pub stage: Stage,
    /// TempFail or PermFail for the affected recipients. Only a 5xx refusal of
    /// the session itself ([`ErrorKind::Rejected`]) is permanent; everything
    /// else, including refused credentials (a configuration problem on our
    /// side, not the recipient's), is temporary.
    pub status: Status,
    /// The server's reply, or ours (generated) when the server said nothing.
    pub reply: ServerReply,
    /// True after a failed TLS handshake under [`super::TlsPolicy::Opportunistic`]:
    /// the relay may open a new connection and deliver in clear text (with
    /// [`super::TlsPolicy::Disabled`]) rather than waiting for a retry.
    pub retry_without_tls: bool,
}

impl SessionError {
    /// The outcome for a recipient affected by this error.
    pub fn outcome(&self) -> RcptOutcome {
        RcptOutcome {
            status: self.status,
            reply: self.reply.clone(),
            stage: self.stage,
        }
    }

    /// For the driver: the connection to `peer` could not be opened (refused,
    /// unreachable, timed out, no address). Temporary, `451 4.4.1`.
    pub fn connect_failed(peer: &str, reason: &str) -> SessionError {
        SessionError {
            kind: ErrorKind::ConnectFailed,
            stage: Stage::Connect,
            status: Status::TempFail,
            reply: ServerReply::local(
                451,
                EnhancedCode::new(4, 4, 1),
                format!("cannot connect to {peer}: {reason}"),
            ),
            retry_without_tls: false,
        }
    }

    /// An error made of a remote reply; permanent only for 5xx.
    pub(crate) fn remote(kind: ErrorKind, stage: Stage, reply: ServerReply) -> SessionError {
        let status = match Status::from_code(reply.code) {
            Status::PermFail if kind == ErrorKind::Rejected => Status::PermFail,
            _ => Status::TempFail,
        };
        SessionError {
            kind,
            stage,
            status,
            reply,
            retry_without_tls: false,
        }
    }

    /// A temporary error in our own words.
    pub(crate) fn local(
        kind: ErrorKind,
        stage: Stage,
        esc: EnhancedCode,
        text: String,
    ) -> SessionError {
        SessionError {
            kind,
            stage,
            status: Status::TempFail,
            reply: ServerReply::local(451, esc, text),
            retry_without_tls: false,
        }
    }
}

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} {}: {}",
            self.kind,
            self.stage.describe(),
            self.reply
        )
    }
}

impl std::error::Error for SessionError {}
