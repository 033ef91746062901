//! The SMTP server: runs [`pochta_proto_smtp::Session`] over a socket.
//!
//! Everything SMTP means lives in the session state machine; this driver only
//! moves bytes, enforces timeouts, performs the TLS handshake, and answers the
//! session's questions from the directory, the authenticator and local delivery.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pochta_addr::Address;
use pochta_auth::{AuthError, Authenticator};
use pochta_delivery::{
    DeliveryError, Incoming, LocalDelivery, RecipientCheck, RecipientDsn, Trace,
};
use pochta_msgauth::Checker;
use pochta_net::{CancellationToken, Conn, ConnGuard, LimitExceeded, Progress};
use pochta_proto_smtp::{
    Action, AuthVerdict, DeliveryVerdict, Mode, RcptVerdict, Reply, SenderVerdict, Session,
    SessionConfig, TlsInfo, Transaction,
};
use pochta_store::StoreError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

/// Bytes read from the socket at a time. Small enough that thousands of idle
/// connections stay cheap; the session buffers whole lines as needed.
const READ_CHUNK: usize = 16 * 1024;
/// Longest TLS handshake we wait for.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// Settings the SMTP server needs from the configuration.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// Our host name.
    pub hostname: String,
    /// Largest message, in octets.
    pub max_message_size: usize,
    /// Most recipients per message.
    pub max_recipients: usize,
    /// Longest line.
    pub max_line_length: usize,
    /// Error replies before the session is closed.
    pub max_errors: u32,
    /// Idle time allowed between commands.
    pub command_timeout: Duration,
    /// Idle time allowed while a message body is arriving.
    pub data_timeout: Duration,
    /// Where `<postmaster>` goes.
    pub postmaster: Address,
}

/// Shared state of all SMTP listeners.
pub struct SmtpServer {
    settings: SmtpSettings,
    delivery: Arc<LocalDelivery>,
    auth: Arc<Authenticator>,
    tls: Option<TlsAcceptor>,
    checker: Option<Arc<Checker>>,
}

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// Port 25 (MX).
    Mx,
    /// Port 587 (submission, STARTTLS).
    Submission,
    /// Port 465 (submission, implicit TLS, RFC 8314).
    Submissions,
}

impl Listener {
    /// Name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Listener::Mx => "smtp",
            Listener::Submission => "submission",
            Listener::Submissions => "submissions",
        }
    }
}

/// The reply written to connections over the limits (RFC 5321 §3.8: 421 and close).
pub fn refusal(limit: LimitExceeded) -> Vec<u8> {
    let text = match limit {
        LimitExceeded::PerIp => "Too many connections from your address, try again later",
        LimitExceeded::Total => "Too many connections, try again later",
    };
    let mut out = Vec::new();
    Reply::new(421, "4.7.0", text).write_to(&mut out);
    out
}

impl SmtpServer {
    /// A server delivering through `delivery`, checking logins with `auth`, and
    /// offering TLS when `tls` is given.
    pub fn new(
        settings: SmtpSettings,
        delivery: Arc<LocalDelivery>,
        auth: Arc<Authenticator>,
        tls: Option<TlsAcceptor>,
    ) -> Arc<SmtpServer> {
        Arc::new(SmtpServer {
            settings,
            delivery,
            auth,
            tls,
            checker: None,
        })
    }

    /// A server that also checks SPF, DKIM and DMARC on the MX listener.
    pub fn with_checker(
        settings: SmtpSettings,
        delivery: Arc<LocalDelivery>,
        auth: Arc<Authenticator>,
        tls: Option<TlsAcceptor>,
        checker: Option<Arc<Checker>>,
    ) -> Arc<SmtpServer> {
        Arc::new(SmtpServer {
            settings,
            delivery,
            auth,
            tls,
            checker,
        })
    }

    /// Serves one connection until it closes.
    pub async fn handle(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
        listener: Listener,
        shutdown: CancellationToken,
        slot: ConnGuard,
    ) {
        let sid = pochta_net::session_id();
        let span =
            tracing::info_span!("smtp", sid = %sid, peer = %peer, listener = listener.name());
        self.run(tcp, peer, listener, shutdown, slot)
            .instrument(span)
            .await;
    }

    async fn run(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        listener: Listener,
        shutdown: CancellationToken,
        slot: ConnGuard,
    ) {
        let mut conn = Conn::Plain(tcp);
        if listener == Listener::Submissions {
            let Some(acceptor) = &self.tls else {
                tracing::error!("submissions listener without TLS");
                return;
            };
            if let Err(e) = conn.start_tls(acceptor, HANDSHAKE_TIMEOUT).await {
                tracing::info!(error = %e, "TLS handshake failed");
                return;
            }
        }
        let cfg = SessionConfig {
            hostname: self.settings.hostname.clone(),
            mode: if listener == Listener::Mx {
                Mode::Mx
            } else {
                Mode::Submission
            },
            max_message_size: self.settings.max_message_size,
            max_recipients: self.settings.max_recipients,
            max_line_length: self.settings.max_line_length,
            max_errors: self.settings.max_errors,
            starttls: self.tls.is_some(),
            postmaster: self.settings.postmaster.clone(),
        };
        let tls_info = conn.tls_details().map(|d| TlsInfo {
            version: d.version,
            cipher: d.cipher,
        });
        let mut session = Session::new(cfg, tls_info);
        let started = std::time::Instant::now();
        let mut slot = Some(slot);
        let end = self
            .drive(
                &mut conn,
                &mut session,
                peer,
                listener,
                &shutdown,
                &mut slot,
            )
            .await;
        let stats = session.stats();
        tracing::info!(
            helo = session.helo().unwrap_or(""),
            tls = session.tls().map(|t| t.version.as_str()).unwrap_or("no"),
            user = session.user().unwrap_or(""),
            messages = stats.messages,
            recipients = stats.recipients,
            errors = stats.errors,
            secs = started.elapsed().as_secs_f32(),
            end,
            "connection closed"
        );
    }

    /// The driver loop. Returns why the connection ended, for the log line.
    async fn drive(
        &self,
        conn: &mut Conn,
        session: &mut Session,
        peer: SocketAddr,
        listener: Listener,
        shutdown: &CancellationToken,
        slot: &mut Option<ConnGuard>,
    ) -> &'static str {
        let mut buf = vec![0u8; READ_CHUNK];
        let mut shutdown_seen = false;
        // The timeouts count from the client's last progress, not its last
        // byte (slow-loris; see pochta_net::Progress).
        let mut progress = Progress::new();
        loop {
            match session.poll() {
                Action::NeedInput => {
                    if !session.output.is_empty() {
                        progress.answered();
                    }
                    if !self.flush(conn, session).await {
                        return "write failed";
                    }
                    let idle = if session.receiving_body() {
                        self.settings.data_timeout
                    } else {
                        self.settings.command_timeout
                    };
                    tokio::select! {
                        r = tokio::time::timeout(progress.wait(idle), conn.read(&mut buf)) => match r {
                            Ok(Ok(0)) => {
                                session.eof();
                                return "client closed";
                            }
                            Ok(Ok(n)) => {
                                progress.received(n);
                                session.feed(&buf[..n]);
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, "read failed");
                                return "read failed";
                            }
                            Err(_) => {
                                let mut out = Vec::new();
                                Reply::new(421, "4.4.2", "Timeout, closing connection").write_to(&mut out);
                                session.output.extend_from_slice(&out);
                                let _ = self.flush(conn, session).await;
                                return "timeout";
                            }
                        },
                        _ = shutdown.cancelled(), if !shutdown_seen => {
                            shutdown_seen = true;
                            session.shutdown();
                        }
                    }
                }
                Action::StartTls => {
                    if !self.flush(conn, session).await {
                        return "write failed";
                    }
                    let Some(acceptor) = &self.tls else {
                        return "no TLS";
                    };
                    if let Err(e) = conn.start_tls(acceptor, HANDSHAKE_TIMEOUT).await {
                        tracing::info!(error = %e, "STARTTLS handshake failed");
                        return "TLS handshake failed";
                    }
                    let d = conn.tls_details();
                    session.tls_established(TlsInfo {
                        version: d.as_ref().map(|d| d.version.clone()).unwrap_or_default(),
                        cipher: d.map(|d| d.cipher).unwrap_or_default(),
                    });
                }
                Action::CheckSender { address, user } => {
                    let verdict = match (listener, user) {
                        (Listener::Mx, _) => SenderVerdict::Accept,
                        (_, None) => SenderVerdict::NotOwned,
                        (_, Some(user)) => {
                            match self.delivery.may_send_as(&user, address.as_ref()).await {
                                Ok(true) => SenderVerdict::Accept,
                                Ok(false) => {
                                    tracing::info!(user, sender = ?address.as_ref().map(|a| a.to_string()), "sender not owned");
                                    SenderVerdict::NotOwned
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "sender check failed");
                                    SenderVerdict::TempFail
                                }
                            }
                        }
                    };
                    session.answer_sender(verdict);
                }
                Action::CheckRecipient { address } => {
                    let verdict = match self.delivery.check_recipient(&address).await {
                        RecipientCheck::Local => RcptVerdict::Accept,
                        RecipientCheck::UnknownUser => RcptVerdict::UnknownUser,
                        // RFC 3463 X.2.2, temporary: the user may make room.
                        RecipientCheck::OverQuota => RcptVerdict::Reject(Reply::new(
                            452,
                            "4.2.2",
                            format!("<{address}>: mailbox full"),
                        )),
                        RecipientCheck::TempFail => RcptVerdict::TempFail,
                        RecipientCheck::NotLocal if listener == Listener::Mx => {
                            RcptVerdict::RelayDenied
                        }
                        // Submission: the session only gets here after AUTH (over
                        // TLS), so the user may send anywhere; the queue relays it.
                        RecipientCheck::NotLocal if session.user().is_some() => RcptVerdict::Accept,
                        RecipientCheck::NotLocal => RcptVerdict::RelayDenied,
                    };
                    session.answer_recipient(verdict);
                }
                Action::Authenticate(creds) => {
                    let verdict = match self.auth.login(peer.ip(), &creds).await {
                        Ok(account) => AuthVerdict::Accept {
                            user: account.address.key(),
                        },
                        Err(AuthError::Failed) => AuthVerdict::Failed,
                        Err(AuthError::Throttled { .. }) => AuthVerdict::Throttled,
                        Err(AuthError::Temporary(_)) => AuthVerdict::TempFail,
                    };
                    session.answer_auth(verdict);
                }
                Action::Deliver(tx) => {
                    let verdict = self.deliver(*tx, session, peer, listener).await;
                    session.answer_delivery(verdict);
                }
                Action::Close => {
                    // Free the connection slot before the last reply: a client may
                    // reconnect the moment it reads 221.
                    slot.take();
                    let _ = self.flush(conn, session).await;
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn.shutdown()).await;
                    return if shutdown_seen { "shutdown" } else { "closed" };
                }
            }
        }
    }

    async fn deliver(
        &self,
        tx: Transaction,
        session: &Session,
        peer: SocketAddr,
        listener: Listener,
    ) -> DeliveryVerdict {
        let protocol = if tx.smtputf8 {
            "UTF8SMTP"
        } else if session.esmtp() {
            "ESMTP"
        } else {
            "SMTP"
        };
        let rcpts = tx.recipients.len();
        let from = tx
            .mail_from
            .as_ref()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let mut body = tx.body;
        if listener != Listener::Mx
            && let Some(user) = session.user()
            && let Some(refusal) = self.check_header_from(user, &body).await
        {
            return refusal;
        }
        let mut extra_headers = String::new();
        if listener == Listener::Mx
            && let Some(checker) = &self.checker
        {
            // RFC 8601 §5: results claiming to be ours did not come from us.
            if let Some(clean) = pochta_msgauth::strip_forged_results(&body, checker.authserv_id())
            {
                body = clean;
            }
            if checker.applies_to(peer.ip()) {
                let mail_from = tx.mail_from.as_ref().map(|a| a.to_smtp());
                let verdict = checker
                    .check(
                        peer.ip(),
                        session.helo().unwrap_or(""),
                        mail_from.as_deref(),
                        &body,
                    )
                    .await;
                tracing::info!(from = %from, checks = %verdict.summary, "sender authentication");
                if let Some(reason) = verdict.reject {
                    return DeliveryVerdict::Reject(Reply::new(550, "5.7.1", reason));
                }
                extra_headers = verdict.header;
            }
        }
        let recipient_dsn = tx
            .recipient_dsn
            .iter()
            .map(|d| RecipientDsn {
                orcpt: d.orcpt.clone(),
                notify: d.notify.map_or(0, |n| {
                    if !(n.success || n.failure || n.delay) {
                        pochta_store::dsn_notify::NEVER
                    } else {
                        (if n.success {
                            pochta_store::dsn_notify::SUCCESS
                        } else {
                            0
                        }) | (if n.failure {
                            pochta_store::dsn_notify::FAILURE
                        } else {
                            0
                        }) | (if n.delay {
                            pochta_store::dsn_notify::DELAY
                        } else {
                            0
                        })
                    }
                }),
            })
            .collect();
        let submission = listener != Listener::Mx;
        let incoming = Incoming {
            mail_from: tx.mail_from,
            recipients: tx.recipients,
            body,
            trace: Trace {
                helo: session.helo().map(str::to_string),
                peer: Some(peer.ip()),
                protocol,
                tls: session.tls().map(|t| (t.version.clone(), t.cipher.clone())),
                user: session.user().map(str::to_string),
            },
            submission,
            relay: submission && session.user().is_some(),
            recipient_dsn,
            envid: tx.envid,
            ret_full: tx.ret != Some(pochta_proto_smtp::client::Ret::Headers),
            smtputf8: tx.smtputf8,
            extra_headers,
        };
        match self.delivery.deliver(incoming).await {
            Ok(d) => {
                tracing::info!(
                    id = %d.id,
                    from = %from,
                    recipients = rcpts,
                    accounts = d.accounts,
                    queued = d.queued,
                    size = d.size,
                    message_id = d.message_id.as_deref().unwrap_or(""),
                    "delivered"
                );
                DeliveryVerdict::Accepted { id: d.id }
            }
            Err(DeliveryError::TooManyHops(n)) => {
                tracing::warn!(hops = n, from = %from, "mail loop refused");
                DeliveryVerdict::Reject(Reply::new(
                    554,
                    "5.4.6",
                    format!("Too many hops ({n}): mail loop"),
                ))
            }
            Err(DeliveryError::NoRecipients) => {
                DeliveryVerdict::Reject(Reply::new(550, "5.1.1", "No recipient exists any more"))
            }
            Err(DeliveryError::Store(StoreError::OverQuota)) => {
                DeliveryVerdict::Reject(Reply::new(452, "4.2.2", "Mailbox full"))
            }
            Err(DeliveryError::Store(StoreError::Full)) => {
                tracing::error!("delivery failed: storage full");
                DeliveryVerdict::StorageFull
            }
            Err(DeliveryError::Store(e)) => {
                tracing::error!(error = %e, "delivery failed");
                DeliveryVerdict::TempFail
            }
        }
    }

    /// Submission: the header From must name addresses the login may send as, as
    /// JMAP's `forbiddenFrom` does. MAIL FROM alone is not enough: readers see the
    /// header, DMARC aligns on it, and the relay DKIM-signs for its domain, so
    /// without this any user could send as any other user of the server. More than
    /// one From field is refused (RFC 5322 §3.6 allows one) because receivers
    /// disagree on which of them counts. A message with no From names nobody and
    /// passes.
    async fn check_header_from(&self, user: &str, body: &[u8]) -> Option<DeliveryVerdict> {
        let fields = pochta_message::count_headers(body, "From");
        if fields > 1 {
            tracing::info!(user, fields, "submission with several From fields refused");
            return Some(DeliveryVerdict::Reject(Reply::new(
                550,
                "5.6.0",
                format!("{fields} From header fields; a message has one"),
            )));
        }
        for from in pochta_message::from_addresses(body) {
            let owned = match Address::parse(&from.email) {
                Ok(a) => self.delivery.may_send_as(user, Some(&a)).await,
                Err(_) => Ok(false),
            };
            match owned {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!(user, from = %from.email, "header From not owned");
                    return Some(DeliveryVerdict::Reject(Reply::new(
                        550,
                        "5.7.1",
                        // Reply::write_to drops line breaks; bound the length.
                        format!(
                            "From: {} is not an address of {user}",
                            from.email.chars().take(200).collect::<String>()
                        ),
                    )));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "header From check failed");
                    return Some(DeliveryVerdict::TempFail);
                }
            }
        }
        None
    }

    /// Writes pending replies. A client that stops reading cannot hold us forever.
    async fn flush(&self, conn: &mut Conn, session: &mut Session) -> bool {
        if session.output.is_empty() {
            return true;
        }
        let out = std::mem::take(&mut session.output);
        match conn.send(&out, self.settings.command_timeout).await {
            Ok(()) => true,
            Err(e) => {
                tracing::info!(error = %e, "cannot write to the client; closing");
                false
            }
        }
    }
}
