//! The relay's transport: passes queued mail to the server at the destination.
//!
//! For each destination domain it finds where to go (a static route, the
//! smarthost, or the MX hosts), prepares each message (removes Return-Path,
//! adds DKIM signatures for our domains), and drives the sans-I/O SMTP client
//! ([`pochta_proto_smtp::client`]) over TCP and TLS, several messages per
//! connection, trying the next address when one fails before taking the mail.

#![forbid(unsafe_code)]

pub mod mta_sts;
mod route;
mod tls;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pochta_msgauth::{DkimKeys, Dns};
use pochta_proto_smtp::client::{
    Action, Client, ClientConfig, DsnParams, Notify, OutRcpt, Outgoing, Ret, SessionError, Status,
    Timeouts, TlsPolicy, TransactionResult,
};
use pochta_queue::{Failure, Job, JobResults, RcptResult, Transport};
use pochta_sasl::Credentials;
use pochta_store::{Store, dsn_notify};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedSender;
use tokio_rustls::TlsConnector;

pub use tls::TlsSetupError;

use route::{Routing, Target, Verify};

/// A host and port to send to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextHop {
    /// A host name or an IP address.
    pub host: String,
    /// The port.
    pub port: u16,
}

/// How to talk to the smarthost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmarthostTls {
    /// STARTTLS, required, certificate checked.
    Starttls,
    /// TLS from the first byte (port 465), certificate checked.
    Implicit,
    /// No TLS (a smarthost on a trusted network); credentials are never sent then.
    None,
}

/// A relay host that takes all mail for other domains.
#[derive(Debug, Clone)]
pub struct Smarthost {
    /// Where.
    pub hop: NextHop,
    /// How.
    pub tls: SmarthostTls,
    /// AUTH credentials, if it wants them.
    pub credentials: Option<Credentials>,
    /// CA file to check its certificate with (default: the system bundle).
    pub ca_file: Option<PathBuf>,
}

/// How the transport behaves (from the `[relay]` configuration).
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Our name in EHLO (the host name); an MX host of that name is us.
    pub helo: String,
    /// Port of MX hosts and address literals (25; tests change it).
    pub mx_port: u16,
    /// STARTTLS policy towards MX hosts and static routes.
    pub tls: TlsPolicy,
    /// Longest wait for a TCP connection.
    pub connect_timeout: Duration,
    /// Static routes by destination domain (lower case): these win over all else.
    pub routes: HashMap<String, NextHop>,
    /// Everything not routed statically goes here instead of to the MX hosts.
    pub smarthost: Option<Smarthost>,
    /// Reply timeouts (RFC 5321 §4.5.3.2).
    pub timeouts: Timeouts,
    /// Most addresses tried for one delivery.
    pub max_addresses: usize,
    /// Honour the MTA-STS policies of destination domains (RFC 8461).
    pub mta_sts: bool,
    /// Port of the HTTPS servers MTA-STS policies are fetched from (443;
    /// tests change it).
    pub mta_sts_port: u16,
    /// CA file checking MX hosts and policy servers under MTA-STS (default: the
    /// system bundle; tests use their own).
    pub mta_sts_ca: Option<PathBuf>,
}

impl RelaySettings {
    /// Defaults: port 25, opportunistic TLS, RFC 5321 timeouts.
    pub fn new(helo: impl Into<String>) -> RelaySettings {
        RelaySettings {
            helo: helo.into(),
            mx_port: 25,
            tls: TlsPolicy::Opportunistic,
            connect_timeout: Duration::from_secs(30),
            routes: HashMap::new(),
            smarthost: None,
            timeouts: Timeouts::RFC5321,
            max_addresses: 10,
            mta_sts: true,
            mta_sts_port: 443,
            mta_sts_ca: None,
        }
    }
}

/// The SMTP transport of the queue.
pub struct SmtpTransport {
    settings: RelaySettings,
    dns: Arc<Dns>,
    dkim: Option<Arc<DkimKeys>>,
    tls_any: TlsConnector,
    tls_verified: TlsConnector,
    /// Checks certificates against the public CAs (MTA-STS).
    tls_public: TlsConnector,
    sts: mta_sts::Cache,
    /// Where MTA-STS policies are kept across restarts.
    policies: Option<Arc<dyn Store>>,
}

impl SmtpTransport {
    /// A transport resolving with `dns` and signing with `dkim`.
    pub fn new(
        settings: RelaySettings,
        dns: Arc<Dns>,
        dkim: Option<Arc<DkimKeys>>,
    ) -> Result<SmtpTransport, TlsSetupError> {
        let ca = settings.smarthost.as_ref().and_then(|s| s.ca_file.clone());
        Ok(SmtpTransport {
            tls_any: TlsConnector::from(tls::opportunistic()?),
            tls_verified: TlsConnector::from(tls::verified(ca.as_deref())?),
            tls_public: TlsConnector::from(tls::verified(settings.mta_sts_ca.as_deref())?),
            sts: mta_sts::Cache::default(),
            policies: None,
            settings,
            dns,
            dkim,
        })
    }

    /// Keeps MTA-STS policies in `store` too, so that they outlive a restart
    /// (RFC 8461 §5.1, §10.3); without it they are kept in memory only.
    pub fn with_policy_store(mut self, store: Arc<dyn Store>) -> SmtpTransport {
        self.policies = Some(store);
        self
    }

    /// The message as it goes out: without Return-Path (RFC 5321 §4.4: only the
    /// final delivery adds it), with DKIM signatures when we have a key for the
    /// From domain (or, failing that, the envelope sender's domain).
    fn prepare(&self, job: &Job) -> Outgoing {
        let m = &job.message;
        let mut body: Vec<u8> = pochta_msgauth::strip_header(&job.body, "Return-Path")
            .unwrap_or_else(|| job.body.as_ref().clone());
        if let Some(keys) = &self.dkim {
            let candidates = [
                from_domain(&body),
                m.mail_from
                    .as_ref()
                    .map(|a| a.domain().as_str().to_string()),
            ];
            let domains = keys.domains();
            if let Some(domain) = candidates
                .into_iter()
                .flatten()
                .find(|d| domains.iter().any(|k| k.eq_ignore_ascii_case(d)))
            {
                match keys.sign(&domain, &body) {
                    Ok(headers) if !headers.is_empty() => {
                        let mut signed = Vec::with_capacity(headers.len() + body.len());
                        signed.extend_from_slice(headers.as_bytes());
                        signed.extend_from_slice(&body);
                        body = signed;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(queue_id = m.id, error = %e, "DKIM signing failed; sending unsigned");
                    }
                }
            }
        }
        let recipients = m
            .recipients
            .iter()
            .map(|r| OutRcpt {
                address: r.address.to_smtp(),
                notify: notify_of(r.notify),
                orcpt: r
                    .orcpt
                    .as_deref()
                    .map(|o| o.strip_prefix("rfc822;").unwrap_or(o).to_string()),
            })
            .collect();
        let mut out = Outgoing::new(
            m.mail_from.as_ref().map(|a| a.to_smtp()),
            recipients,
            Arc::new(body),
        );
        out.needs_smtputf8 = m.smtputf8;
        out.needs_8bit = m.eightbit;
        if m.envid.is_some() {
            out.dsn = Some(DsnParams {
                ret: Some(if m.ret_full { Ret::Full } else { Ret::Headers }),
                envid: m.envid.clone(),
            });
        }
        out
    }

    /// One connection to `target`: hands over jobs from `pending` until it is
    /// empty or the session fails. `None` when all were handed over.
    async fn attempt(
        &self,
        target: &Target,
        policy: TlsPolicy,
        pending: &mut VecDeque<(Job, Outgoing)>,
        done: &UnboundedSender<JobResults>,
    ) -> Option<SessionError> {
        let peer = target.display();
        let tcp = match tokio::time::timeout(
            self.settings.connect_timeout,
            TcpStream::connect(target.addr),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Some(SessionError::connect_failed(&peer, &e.to_string())),
            Err(_) => return Some(SessionError::connect_failed(&peer, "connection timed out")),
        };
        let _ = tcp.set_nodelay(true);
        let connector = match target.verify {
            Verify::No => &self.tls_any,
            Verify::Smarthost => &self.tls_verified,
            Verify::Public => &self.tls_public,
        };
        let mut stream = Stream::Plain(tcp);
        let handshake = self.settings.connect_timeout;
        if target.implicit_tls {
            match stream.start_tls(connector, &target.name, handshake).await {
                Ok(s) => stream = s,
                Err(e) => {
                    return Some(SessionError::connect_failed(
                        &peer,
                        &format!("TLS handshake failed: {e}"),
                    ));
                }
            }
        }
        let mut cfg = ClientConfig::new(self.settings.helo.clone());
        cfg.tls = policy;
        cfg.timeouts = self.settings.timeouts;
        if target.authenticate {
            cfg.auth = self
                .settings
                .smarthost
                .as_ref()
                .and_then(|s| s.credentials.clone());
        }
        let mut client = Client::new(cfg, peer.clone(), target.implicit_tls);
        let mut handed: VecDeque<Job> = VecDeque::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match client.poll() {
                Action::NeedInput => {
                    if !write_out(&mut stream, &mut client).await {
                        client.eof();
                        continue;
                    }
                    let wait = client.current_timeout();
                    match tokio::time::timeout(wait, stream.read(&mut buf)).await {
                        Ok(Ok(0)) | Ok(Err(_)) => client.eof(),
                        Ok(Ok(n)) => client.feed(&buf[..n]),
                        Err(_) => client.timed_out(),
                    }
                }
                Action::Flush => {
                    if !write_out(&mut stream, &mut client).await {
                        client.eof();
                    }
                }
                Action::StartTls => {
                    if !write_out(&mut stream, &mut client).await {
                        client.eof();
                        continue;
                    }
                    let plain = std::mem::replace(&mut stream, Stream::Closed);
                    match plain.start_tls(connector, &target.name, handshake).await {
                        Ok(s) => {
                            stream = s;
                            client.tls_established();
                        }
                        Err(e) => client.tls_failed(&e.to_string()),
                    }
                }
                Action::NeedMessage => match pending.pop_front() {
                    Some((job, out)) => {
                        client.send(out);
                        handed.push_back(job);
                    }
                    None => client.quit(),
                },
                Action::Finished(result) => {
                    if let Some(job) = handed.pop_front() {
                        let results = map_result(&job, &result, &peer);
                        let _ = done.send((job, results));
                    }
                }
                Action::Close(err) => {
                    let _ = write_out(&mut stream, &mut client).await;
                    stream.shutdown().await;
                    return err;
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl Transport for SmtpTransport {
    async fn deliver(&self, domain: &str, jobs: Vec<Job>, done: UnboundedSender<JobResults>) {
        let mut pending: VecDeque<(Job, Outgoing)> = jobs
            .into_iter()
            .map(|j| {
                let out = self.prepare(&j);
                (j, out)
            })
            .collect();
        let targets = match self.route(domain).await {
            Routing::Targets(t) => t,
            Routing::Fail(f, permanent) => {
                tracing::info!(domain, error = %f.text, "no route");
                for (job, _) in pending {
                    let results = job
                        .message
                        .recipients
                        .iter()
                        .map(|r| {
                            let res = if permanent {
                                RcptResult::Permanent(f.clone())
                            } else {
                                RcptResult::Temporary(f.clone())
                            };
                            (r.id, res)
                        })
                        .collect();
                    let _ = done.send((job, results));
                }
                return;
            }
        };
        let mut last: Option<(SessionError, String)> = None;
        for target in &targets {
            if pending.is_empty() {
                break;
            }
            let mut policy = target.tls;
            loop {
                let before = pending.len();
                match self.attempt(target, policy, &mut pending, &done).await {
                    None => break,
                    Some(e) if e.retry_without_tls && policy == TlsPolicy::Opportunistic => {
                        tracing::info!(remote = %target.display(), error = %e, "TLS failed; retrying in clear text");
                        policy = TlsPolicy::Disabled;
                    }
                    Some(e) => {
                        tracing::info!(remote = %target.display(), error = %e, "attempt failed");
                        last = Some((e, target.display()));
                        // The host took messages on this connection before it
                        // ended (a limit per connection, a dropped link): the
                        // rest go over a new one. Each round hands over at least
                        // one message, so this ends.
                        if pending.len() < before && !pending.is_empty() {
                            continue;
                        }
                        break;
                    }
                }
            }
        }
        if pending.is_empty() {
            return;
        }
        // Every address failed before taking these messages.
        let (err, remote) = match last {
            Some(l) => l,
            None => (
                SessionError::connect_failed(domain, "no address to try"),
                domain.to_string(),
            ),
        };
        for (job, out) in pending {
            let result = TransactionResult::failed(&out, &err);
            let results = map_result(&job, &result, &remote);
            let _ = done.send((job, results));
        }
    }
}

/// The client's outcome as the queue's results, recipient by recipient.
fn map_result(job: &Job, result: &TransactionResult, remote: &str) -> Vec<(u64, RcptResult)> {
    job.message
        .recipients
        .iter()
        .zip(result.recipients.iter())
        .map(|(r, o)| {
            let reply = o.reply.to_string();
            let res = match o.status {
                Status::Delivered => RcptResult::Delivered {
                    remote: remote.to_string(),
                    reply,
                    dsn_passed_on: result.dsn_relayed,
                },
                Status::TempFail | Status::PermFail => {
                    let text = if o.reply.generated {
                        format!("{remote}: {}", o.reply.text())
                    } else {
                        match o.stage.command() {
                            Some(cmd) => format!("{remote} said: {reply} (in reply to {cmd})"),
                            None => format!("{remote} said: {reply}"),
                        }
                    };
                    let f = Failure {
                        status: o.reply.status().to_string(),
                        reply: (!o.reply.generated).then_some(reply),
                        remote: Some(remote.to_string()),
                        text,
                    };
                    if o.status == Status::TempFail {
                        RcptResult::Temporary(f)
                    } else {
                        RcptResult::Permanent(f)
                    }
                }
            };
            (r.id, res)
        })
        .collect()
}

fn notify_of(bits: u8) -> Option<Notify> {
    if bits == 0 {
        None
    } else if bits & dsn_notify::NEVER != 0 {
        Some(Notify::default())
    } else {
        Some(Notify {
            success: bits & dsn_notify::SUCCESS != 0,
            failure: bits & dsn_notify::FAILURE != 0,
            delay: bits & dsn_notify::DELAY != 0,
        })
    }
}

/// The domain of the first header From address, read by the parser submission
/// checked it with (`pochta_message::from_addresses`): the signature is for the
/// domain the sender was found to own.
fn from_domain(raw: &[u8]) -> Option<String> {
    let from = pochta_message::from_addresses(raw).into_iter().next()?;
    let (_, domain) = from.email.rsplit_once('@')?;
    (!domain.is_empty()).then(|| domain.to_ascii_lowercase())
}

async fn write_out(stream: &mut Stream, client: &mut Client) -> bool {
    if client.output.is_empty() {
        return true;
    }
    let out = std::mem::take(&mut client.output);
    let wait = client.current_timeout();
    matches!(
        tokio::time::timeout(wait, stream.write_all(&out)).await,
        Ok(Ok(()))
    )
}

/// A connection, in clear text or TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Closed,
}

impl Stream {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf).await,
            Stream::Tls(s) => s.read(buf).await,
            Stream::Closed => Ok(0),
        }
    }

    async fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(buf).await,
            Stream::Tls(s) => {
                s.write_all(buf).await?;
                s.flush().await
            }
            Stream::Closed => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    async fn shutdown(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            match self {
                Stream::Plain(s) => {
                    let _ = s.shutdown().await;
                }
                Stream::Tls(s) => {
                    let _ = s.shutdown().await;
                }
                Stream::Closed => {}
            }
        })
        .await;
    }

    async fn start_tls(
        self,
        connector: &TlsConnector,
        host: &str,
        timeout: Duration,
    ) -> std::io::Result<Stream> {
        let Stream::Plain(tcp) = self else {
            return Err(std::io::Error::other(
                "TLS on a connection that is not plain",
            ));
        };
        let name = tls::server_name(host)
            .ok_or_else(|| std::io::Error::other(format!("{host:?} is not a TLS server name")))?;
        let s = tokio::time::timeout(timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        Ok(Stream::Tls(Box::new(s)))
    }
}
