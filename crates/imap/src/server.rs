//! The IMAP connection driver: runs `pochta_proto_imap::session::Session` over a
//! socket and answers its actions with the authenticator and the [`Executor`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pochta_auth::{AuthError, Authenticator};
use pochta_net::{CancellationToken, Conn, ConnGuard, LimitExceeded, Progress};
use pochta_proto_imap::frame::FrameLimits;
use pochta_proto_imap::session::{Action, AuthVerdict, Executed, Session, SessionConfig};
use pochta_store::Store;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

use crate::exec::{Executor, ImapSettings, Output, Sink, Transition};
use crate::transport::Transport;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);
const WRITE_TIMEOUT: Duration = Duration::from_secs(300);
/// RFC 9051 §5.4: at least 30 minutes for logged-in clients.
const MIN_AUTHENTICATED_IDLE: Duration = Duration::from_secs(30 * 60 + 60);

/// Settings from the configuration.
#[derive(Debug, Clone)]
pub struct ImapServerSettings {
    /// Our host name, for the greeting.
    pub hostname: String,
    /// Largest APPEND (the message size limit).
    pub max_message_size: u64,
    /// Idle time allowed before login.
    pub login_timeout: Duration,
    /// BAD responses before the connection is closed.
    pub max_errors: u32,
    /// Where sessions get their shared search caches (the server passes JMAP
    /// the same one).
    pub light: Arc<pochta_store::LightRegistry>,
}

/// Shared state of the IMAP listeners.
pub struct ImapServer {
    settings: ImapServerSettings,
    exec_settings: Arc<ImapSettings>,
    store: Arc<dyn Store>,
    auth: Arc<Authenticator>,
    tls: Option<TlsAcceptor>,
}

/// The reply to connections over the limits (RFC 9051 §7.1.5: BYE and close).
pub fn refusal(limit: LimitExceeded) -> Vec<u8> {
    format!("* BYE [UNAVAILABLE] {limit}, try again later\r\n").into_bytes()
}

struct TransportSink<'a>(&'a mut Transport);

#[async_trait]
impl Sink for TransportSink<'_> {
    async fn send(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.0.send(data, WRITE_TIMEOUT).await
    }
}

impl ImapServer {
    /// An IMAP server on `store`.
    pub fn new(
        settings: ImapServerSettings,
        store: Arc<dyn Store>,
        auth: Arc<Authenticator>,
        tls: Option<TlsAcceptor>,
    ) -> Arc<ImapServer> {
        Arc::new(ImapServer {
            exec_settings: Arc::new(ImapSettings {
                max_append: settings.max_message_size,
                light: settings.light.clone(),
            }),
            settings,
            store,
            auth,
            tls,
        })
    }

    /// Serves one connection; `implicit_tls` for port 993.
    pub async fn handle(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
        implicit_tls: bool,
        shutdown: CancellationToken,
        slot: ConnGuard,
    ) {
        let sid = pochta_net::session_id();
        let listener = if implicit_tls { "imaps" } else { "imap" };
        let span = tracing::info_span!("imap", sid = %sid, peer = %peer, listener);
        self.run(tcp, peer, implicit_tls, shutdown, slot)
            .instrument(span)
            .await;
    }

    async fn run(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        implicit_tls: bool,
        shutdown: CancellationToken,
        slot: ConnGuard,
    ) {
        let mut conn = Conn::Plain(tcp);
        if implicit_tls {
            let Some(acceptor) = &self.tls else { return };
            if let Err(e) = conn.start_tls(acceptor, HANDSHAKE_TIMEOUT).await {
                tracing::info!(error = %e, "TLS handshake failed");
                return;
            }
        }
        let limits = FrameLimits::default().with_append_limit(self.settings.max_message_size);
        let cfg = SessionConfig {
            starttls: self.tls.is_some(),
            limits,
            append_limit: self.settings.max_message_size,
            max_errors: self.settings.max_errors,
            hostname: self.settings.hostname.clone(),
        };
        let mut session = Session::new(cfg, conn.is_tls());
        let mut transport = Transport::new(conn);
        let mut exec: Option<Executor> = None;
        let mut slot = Some(slot);
        let started = std::time::Instant::now();
        let mut commands = 0u64;
        let end = self
            .drive(
                &mut transport,
                &mut session,
                &mut exec,
                peer,
                &shutdown,
                &mut slot,
                &mut commands,
            )
            .await;
        tracing::info!(
            tls = session.tls(),
            compressed = transport.compressed(),
            user = exec
                .as_ref()
                .map(|e| e.account().address.key())
                .unwrap_or_default(),
            commands,
            errors = session.errors(),
            secs = started.elapsed().as_secs_f32(),
            end,
            "connection closed"
        );
    }

    #[allow(clippy::too_many_arguments)] // the connection's parts, owned by run()
    async fn drive(
        &self,
        t: &mut Transport,
        session: &mut Session,
        exec: &mut Option<Executor>,
        peer: SocketAddr,
        shutdown: &CancellationToken,
        slot: &mut Option<ConnGuard>,
        commands: &mut u64,
    ) -> &'static str {
        let mut input = Vec::with_capacity(8 * 1024);
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
                    if !flush(t, session).await {
                        return "write failed";
                    }
                    let idle = if exec.is_some() {
                        MIN_AUTHENTICATED_IDLE
                    } else {
                        self.settings.login_timeout
                    };
                    input.clear();
                    tokio::select! {
                        r = tokio::time::timeout(progress.wait(idle), t.read(&mut input)) => match r {
                            Ok(Ok(0)) => {
                                session.eof();
                                return "client closed";
                            }
                            Ok(Ok(_)) => {
                                progress.received(input.len());
                                session.feed(&input);
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, "read failed");
                                return "read failed";
                            }
                            Err(_) => {
                                session.output.extend_from_slice(b"* BYE Autologout; idle for too long\r\n");
                                let _ = flush(t, session).await;
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
                    if !flush(t, session).await {
                        return "write failed";
                    }
                    let Some(acceptor) = &self.tls else {
                        return "no TLS";
                    };
                    if let Err(e) = t.conn.start_tls(acceptor, HANDSHAKE_TIMEOUT).await {
                        tracing::info!(error = %e, "STARTTLS handshake failed");
                        return "TLS handshake failed";
                    }
                    session.tls_established();
                }
                Action::Compress => {
                    if !flush(t, session).await {
                        return "write failed";
                    }
                    t.start_deflate();
                    session.compress_started();
                }
                Action::Authenticate { credentials, .. } => {
                    let verdict = match self.auth.login(peer.ip(), &credentials).await {
                        Ok(account) => {
                            *exec = Some(Executor::new(
                                self.store.clone(),
                                account,
                                self.exec_settings.clone(),
                            ));
                            AuthVerdict::Accept
                        }
                        Err(AuthError::Failed) => AuthVerdict::Failed,
                        Err(AuthError::Throttled { .. }) => AuthVerdict::Throttled,
                        Err(AuthError::Temporary(_)) => AuthVerdict::TempFail,
                    };
                    session.answer_auth(verdict);
                }
                Action::Execute(cmd) => {
                    *commands += 1;
                    if !flush(t, session).await {
                        return "write failed";
                    }
                    let Some(e) = exec.as_mut() else {
                        return "no executor";
                    };
                    let mut sink = TransportSink(t);
                    let mut out = Output::new(&mut sink);
                    let transition = match e.execute(&cmd.tag, cmd.body, &mut out).await {
                        Ok(tr) => tr,
                        Err(_) => return "write failed",
                    };
                    // What is left of the untagged responses goes out together with
                    // the tagged one (flushed above, session.output was empty): one
                    // TLS record and one write per command instead of two.
                    let mut rest = std::mem::take(&mut out.buf);
                    rest.append(&mut session.output);
                    session.output = rest;
                    session.executed(match transition {
                        Transition::None => Executed::Same,
                        Transition::Selected => Executed::Selected,
                        Transition::Deselected => Executed::Deselected,
                        Transition::Bye => Executed::Bye,
                    });
                }
                Action::Idle => {
                    if !flush(t, session).await {
                        return "write failed";
                    }
                    let Some(e) = exec.as_mut() else {
                        return "no executor";
                    };
                    match idle(t, session, e, shutdown, &mut input).await {
                        Ok(()) => {}
                        Err(end) => return end,
                    }
                }
                Action::IdleDone => {
                    if let Some(e) = exec.as_mut() {
                        let mut sink = TransportSink(t);
                        let mut out = Output::new(&mut sink);
                        let _ = e.updates(true, &mut out).await;
                        if out.flush().await.is_err() {
                            return "write failed";
                        }
                    }
                    session.idle_finished();
                }
                Action::Close => {
                    slot.take();
                    let _ = flush(t, session).await;
                    let _ = tokio::time::timeout(
                        Duration::from_secs(5),
                        tokio::io::AsyncWriteExt::shutdown(&mut t.conn),
                    )
                    .await;
                    return if shutdown_seen { "shutdown" } else { "closed" };
                }
            }
        }
    }
}

/// IDLE (RFC 2177): wake on the account's change notifications and report
/// updates at once; return when the client's input needs the session (DONE).
async fn idle(
    t: &mut Transport,
    session: &mut Session,
    exec: &mut Executor,
    shutdown: &CancellationToken,
    input: &mut Vec<u8>,
) -> Result<(), &'static str> {
    let mut changes = exec.changes();
    // Anything that happened before IDLE began.
    send_updates(t, exec).await?;
    loop {
        input.clear();
        tokio::select! {
            r = tokio::time::timeout(MIN_AUTHENTICATED_IDLE, t.read(input)) => match r {
                Ok(Ok(0)) => {
                    session.eof();
                    return Err("client closed");
                }
                Ok(Ok(_)) => {
                    session.feed(input);
                    return Ok(());
                }
                Ok(Err(_)) => return Err("read failed"),
                Err(_) => return Err("timeout"),
            },
            changed = changes.changed() => {
                if changed.is_err() {
                    // The notifier went away: fall back to the client's pace.
                    changes = exec.changes();
                }
                send_updates(t, exec).await?;
            }
            _ = shutdown.cancelled() => {
                session.shutdown();
                return Ok(());
            }
        }
    }
}

async fn send_updates(t: &mut Transport, exec: &mut Executor) -> Result<(), &'static str> {
    let mut sink = TransportSink(t);
    let mut out = Output::new(&mut sink);
    if let Err(e) = exec.updates(true, &mut out).await {
        tracing::warn!(error = %e, "cannot read the change log");
    }
    out.flush().await.map_err(|_| "write failed")
}

async fn flush(t: &mut Transport, session: &mut Session) -> bool {
    if session.output.is_empty() {
        return true;
    }
    let out = std::mem::take(&mut session.output);
    t.send(&out, WRITE_TIMEOUT).await.is_ok()
}
