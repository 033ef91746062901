//! The POP3 server: runs [`pochta_proto_pop3::Session`] over a socket, on the
//! account's INBOX in the mail store.
//!
//! POP3 is the mission's "download to the client" protocol: the client takes the
//! messages and usually deletes them. The maildrop is locked for the session
//! (RFC 1939 §8): a second POP3 session for the same account gets `[IN-USE]`.
//! The lock is held in this process; with several nodes on one database it will
//! move into the store.

#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pochta_auth::{AuthError, Authenticator};
use pochta_net::{CancellationToken, Conn, ConnGuard, LimitExceeded, Progress};
use pochta_proto_pop3::{
    Action, AuthVerdict, MaildropEntry, MaildropError, Session, SessionConfig,
};
use pochta_store::{AccountId, FlagChange, Flags, MessageId, Role, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

const READ_CHUNK: usize = 8 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);
/// RFC 1939 §3: the inactivity timer must be at least 10 minutes.
const MIN_IDLE: Duration = Duration::from_secs(600);
/// Longest a write may wait for a client that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(300);
/// Output held before it is written even though more pipelined commands wait:
/// a client that pipelines RETRs and never reads holds at most one message.
const OUTPUT_HIGH_WATER: usize = 64 * 1024;

/// Settings from the configuration.
#[derive(Debug, Clone)]
pub struct Pop3Settings {
    /// Idle time allowed between commands (raised to 10 minutes if lower).
    pub idle_timeout: Duration,
    /// Error replies before the session is closed.
    pub max_errors: u32,
}

/// Shared state of the POP3 listeners.
pub struct Pop3Server {
    settings: Pop3Settings,
    store: Arc<dyn Store>,
    auth: Arc<Authenticator>,
    tls: Option<TlsAcceptor>,
    locked: Mutex<HashSet<AccountId>>,
}

/// The reply written to connections over the limits.
pub fn refusal(limit: LimitExceeded) -> Vec<u8> {
    format!("-ERR [SYS/TEMP] {limit}, try again later\r\n").into_bytes()
}

/// Holds an account's maildrop lock; releases it when dropped, on every exit path.
struct MaildropLock {
    server: Arc<Pop3Server>,
    account: AccountId,
}

impl Drop for MaildropLock {
    fn drop(&mut self) {
        self.server
            .locked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.account);
    }
}

/// What the driver knows about the logged-in session.
struct Open {
    account: AccountId,
    blobs: HashMap<MessageId, u64>,
    _lock: MaildropLock,
}

/// The UIDL of a message: derived from its store id, which is never reused and
/// survives moves, restarts and other sessions (RFC 1939 §7).
pub fn uidl(id: MessageId) -> String {
    format!("{id:012x}")
}

impl Pop3Server {
    /// A POP3 server on `store`, logging in through `auth`, offering TLS when given.
    pub fn new(
        settings: Pop3Settings,
        store: Arc<dyn Store>,
        auth: Arc<Authenticator>,
        tls: Option<TlsAcceptor>,
    ) -> Arc<Pop3Server> {
        Arc::new(Pop3Server {
            settings,
            store,
            auth,
            tls,
            locked: Mutex::new(HashSet::new()),
        })
    }

    /// Serves one connection; `implicit_tls` for port 995.
    pub async fn handle(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
        implicit_tls: bool,
        shutdown: CancellationToken,
        slot: ConnGuard,
    ) {
        let sid = pochta_net::session_id();
        let listener = if implicit_tls { "pop3s" } else { "pop3" };
        let span = tracing::info_span!("pop3", sid = %sid, peer = %peer, listener);
        self.run(tcp, peer, implicit_tls, shutdown, slot)
            .instrument(span)
            .await;
    }

    async fn run(
        self: Arc<Self>,
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
        let cfg = SessionConfig {
            starttls: self.tls.is_some(),
            max_errors: self.settings.max_errors,
        };
        let mut session = Session::new(cfg, conn.is_tls());
        let started = std::time::Instant::now();
        let mut open: Option<Open> = None;
        let mut slot = Some(slot);
        let end = self
            .drive(
                &mut conn,
                &mut session,
                peer,
                &shutdown,
                &mut open,
                &mut slot,
            )
            .await;
        let stats = session.stats();
        tracing::info!(
            tls = session.tls(),
            user = session.user().unwrap_or(""),
            retrieved = stats.retrieved,
            deleted = stats.deleted,
            errors = stats.errors,
            secs = started.elapsed().as_secs_f32(),
            end,
            "connection closed"
        );
    }

    async fn drive(
        self: &Arc<Self>,
        conn: &mut Conn,
        session: &mut Session,
        peer: SocketAddr,
        shutdown: &CancellationToken,
        open: &mut Option<Open>,
        slot: &mut Option<ConnGuard>,
    ) -> &'static str {
        let mut buf = vec![0u8; READ_CHUNK];
        let mut account: Option<AccountId> = None;
        let idle = self.settings.idle_timeout.max(MIN_IDLE);
        let mut shutdown_seen = false;
        // The timeout counts from the client's last progress, not its last
        // byte (slow-loris; see pochta_net::Progress).
        let mut progress = Progress::new();
        loop {
            match session.poll() {
                Action::NeedInput => {
                    if !session.output.is_empty() {
                        progress.answered();
                    }
                    if !flush(conn, session).await {
                        return "write failed";
                    }
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
                            Ok(Err(_)) => return "read failed",
                            Err(_) => {
                                session.output.extend_from_slice(b"-ERR Autologout; idle for too long\r\n");
                                let _ = flush(conn, session).await;
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
                    if !flush(conn, session).await {
                        return "write failed";
                    }
                    let Some(acceptor) = &self.tls else {
                        return "no TLS";
                    };
                    if let Err(e) = conn.start_tls(acceptor, HANDSHAKE_TIMEOUT).await {
                        tracing::info!(error = %e, "STLS handshake failed");
                        return "TLS handshake failed";
                    }
                    session.tls_established();
                }
                Action::Authenticate(creds) => {
                    let verdict = match self.auth.login(peer.ip(), &creds).await {
                        Ok(a) => {
                            account = Some(a.id);
                            AuthVerdict::Accept {
                                user: a.address.key(),
                            }
                        }
                        Err(AuthError::Failed) => AuthVerdict::Failed,
                        Err(AuthError::Throttled { .. }) => AuthVerdict::Throttled,
                        Err(AuthError::Temporary(_)) => AuthVerdict::TempFail,
                    };
                    session.answer_auth(verdict);
                }
                Action::OpenMaildrop => {
                    let result = match account {
                        Some(a) => self.open_maildrop(a).await,
                        None => Err(MaildropError::TempFail),
                    };
                    match result {
                        Ok((entries, state)) => {
                            tracing::info!(
                                user = session.user().unwrap_or(""),
                                messages = entries.len(),
                                "maildrop opened"
                            );
                            *open = Some(state);
                            session.answer_maildrop(Ok(entries));
                        }
                        Err(e) => session.answer_maildrop(Err(e)),
                    }
                }
                Action::Retrieve { id } => {
                    let bytes = match open.as_ref() {
                        Some(o) => match o.blobs.get(&id) {
                            Some(&blob) => match self.store.read_blob(o.account, blob).await {
                                Ok(b) => Some(b),
                                Err(e) => {
                                    // Expunged over IMAP meanwhile, or a store failure.
                                    tracing::warn!(error = %e, id, "cannot read message");
                                    None
                                }
                            },
                            None => None,
                        },
                        None => None,
                    };
                    session.answer_message(bytes.as_deref());
                    if session.output.len() >= OUTPUT_HIGH_WATER && !flush(conn, session).await {
                        return "write failed";
                    }
                }
                Action::Commit { delete, retrieved } => {
                    let ok = match open.as_ref() {
                        Some(o) => self.commit(o.account, &delete, &retrieved).await,
                        None => false,
                    };
                    session.answer_commit(ok);
                }
                Action::Close => {
                    // Unlock the maildrop and free the slot before the last reply:
                    // the client may reconnect the moment it reads +OK.
                    open.take();
                    slot.take();
                    let _ = flush(conn, session).await;
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn.shutdown()).await;
                    return if shutdown_seen { "shutdown" } else { "closed" };
                }
            }
        }
    }

    async fn open_maildrop(
        self: &Arc<Self>,
        account: AccountId,
    ) -> Result<(Vec<MaildropEntry>, Open), MaildropError> {
        let lock = {
            let mut locked = self.locked.lock().unwrap_or_else(|p| p.into_inner());
            if !locked.insert(account) {
                return Err(MaildropError::InUse);
            }
            MaildropLock {
                server: self.clone(),
                account,
            }
        };
        let temp = |e: pochta_store::StoreError| {
            tracing::warn!(error = %e, "cannot load the maildrop");
            MaildropError::TempFail
        };
        let mailboxes = self.store.mailboxes(account).await.map_err(temp)?;
        let Some(inbox) = mailboxes.iter().find(|m| m.role == Some(Role::Inbox)) else {
            return Err(MaildropError::TempFail);
        };
        let messages = self.store.messages(account, inbox.id).await.map_err(temp)?;
        let mut blobs = HashMap::with_capacity(messages.len());
        let entries = messages
            .into_iter()
            .map(|m| {
                blobs.insert(m.id, m.blob_id);
                MaildropEntry {
                    id: m.id,
                    size: m.size,
                    uidl: uidl(m.id),
                }
            })
            .collect();
        Ok((
            entries,
            Open {
                account,
                blobs,
                _lock: lock,
            },
        ))
    }

    /// UPDATE state: retrieved messages become \Seen, deleted ones are expunged
    /// together in one transaction.
    async fn commit(
        &self,
        account: AccountId,
        delete: &[MessageId],
        retrieved: &[MessageId],
    ) -> bool {
        if !retrieved.is_empty()
            && let Err(e) = self
                .store
                .update_flags(account, retrieved, FlagChange::Add(Flags::SEEN, Vec::new()))
                .await
        {
            tracing::warn!(error = %e, "cannot mark retrieved messages seen");
        }
        if delete.is_empty() {
            return true;
        }
        match self.store.expunge(account, delete).await {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(error = %e, "UPDATE failed; nothing was deleted");
                false
            }
        }
    }
}

async fn flush(conn: &mut Conn, session: &mut Session) -> bool {
    if session.output.is_empty() {
        return true;
    }
    let out = std::mem::take(&mut session.output);
    conn.send(&out, WRITE_TIMEOUT).await.is_ok()
}
