#![allow(clippy::unwrap_used)]
//! The SMTP transport through its public API, against scripted SMTP servers on
//! loopback and a [`TestDns`]: routing (static routes, smarthost, MX, implicit
//! MX, null MX, address literals), the message as it goes out (no Return-Path,
//! DKIM), DSN parameters, connection reuse, per-recipient results, STARTTLS
//! with its clear-text fallback, implicit TLS with a verified certificate and
//! AUTH, and connections that break.
//!
//! Each test starts its own servers and DNS, and bounds `deliver` in time.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use pochta_addr::{Address, Secret};
use pochta_msgauth::{CheckSettings, Checker, DkimKeys, Dns, KeyAlgorithm, Nameservers};
use pochta_proto_smtp::client::{Timeouts, TlsPolicy};
use pochta_queue::{Failure, Job, JobResults, RcptResult, Transport};
use pochta_sasl::Credentials;
use pochta_smtp_out::{NextHop, RelaySettings, Smarthost, SmarthostTls, SmtpTransport};
use pochta_store::{QueueState, QueuedMessage, QueuedRecipient, dsn_notify};
use pochta_testdns::TestDns;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// Our host name in EHLO; an MX of this name is us.
const HELO: &str = "relay.pochta.test";

/// The longest a whole delivery may take in a test.
const DELIVERY_LIMIT: Duration = Duration::from_secs(20);

/// The longest the fake server waits for a command line.
const SERVER_READ_LIMIT: Duration = Duration::from_secs(10);

const LOCALHOST2: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

// ---------------------------------------------------------------------------
// The scripted SMTP server
// ---------------------------------------------------------------------------

/// What the fake server does with STARTTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartTls {
    /// Not offered.
    Off,
    /// Offered, and the handshake works.
    Works,
    /// Offered; after `220 ready` the server closes the connection.
    CloseAfterReady,
    /// Offered; after `220 ready` the server sends bytes that are not TLS.
    GarbageAfterReady,
}

/// How the fake server behaves on one connection.
#[derive(Clone)]
struct Script {
    greeting: String,
    extensions: Vec<String>,
    starttls: StartTls,
    implicit_tls: bool,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// Replies to RCPT TO by address; others get 250.
    rcpt_replies: Vec<(String, String)>,
    /// Close the connection after the final dot of DATA, without a reply.
    drop_after_dot: bool,
}

impl Script {
    /// A server that accepts everything: PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES.
    fn new() -> Script {
        Script {
            greeting: "220 fake.test ESMTP ready".into(),
            extensions: vec![
                "PIPELINING".into(),
                "8BITMIME".into(),
                "ENHANCEDSTATUSCODES".into(),
            ],
            starttls: StartTls::Off,
            implicit_tls: false,
            tls: None,
            rcpt_replies: Vec::new(),
            drop_after_dot: false,
        }
    }

    fn greeting(mut self, line: &str) -> Script {
        self.greeting = line.into();
        self
    }

    fn ext(mut self, keyword: &str) -> Script {
        self.extensions.push(keyword.into());
        self
    }

    fn without(mut self, keyword: &str) -> Script {
        self.extensions.retain(|e| e != keyword);
        self
    }

    fn starttls(mut self, mode: StartTls, identity: &Identity) -> Script {
        self.starttls = mode;
        self.tls = Some(identity.config.clone());
        self
    }

    fn implicit_tls(mut self, identity: &Identity) -> Script {
        self.implicit_tls = true;
        self.tls = Some(identity.config.clone());
        self
    }

    fn rcpt(mut self, address: &str, reply: &str) -> Script {
        self.rcpt_replies.push((address.into(), reply.into()));
        self
    }

    fn drop_after_dot(mut self) -> Script {
        self.drop_after_dot = true;
        self
    }
}

/// What the fake server saw on one connection.
#[derive(Debug, Clone, Default)]
struct Session {
    /// Command lines, without CRLF, in order (over TLS too).
    commands: Vec<String>,
    /// Message contents received (dot-unstuffed, or BDAT chunks joined).
    messages: Vec<Vec<u8>>,
    /// A TLS handshake completed (implicit or after STARTTLS).
    tls: bool,
    /// The decoded AUTH PLAIN message: authzid, login, password.
    auth: Option<(String, String, String)>,
}

impl Session {
    /// The first word of each command, upper case.
    fn verbs(&self) -> Vec<String> {
        self.commands
            .iter()
            .map(|c| c.split(' ').next().unwrap_or_default().to_ascii_uppercase())
            .collect()
    }

    fn commands_starting(&self, prefix: &str) -> Vec<String> {
        self.commands
            .iter()
            .filter(|c| c.to_ascii_uppercase().starts_with(prefix))
            .cloned()
            .collect()
    }
}

type Log = Arc<Mutex<Vec<Session>>>;

/// A scripted SMTP server on one loopback address. Connection `i` plays
/// `scripts[i]`, the last script repeating.
struct FakeServer {
    addr: SocketAddr,
    log: Log,
    active: Arc<AtomicUsize>,
    accept: JoinHandle<()>,
}

impl FakeServer {
    /// A server on `127.0.0.1` and a free port.
    fn start(scripts: Vec<Script>) -> FakeServer {
        FakeServer::on(
            std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap(),
            scripts,
        )
    }

    /// A server on a socket already bound.
    fn on(listener: std::net::TcpListener, scripts: Vec<Script>) -> FakeServer {
        assert!(!scripts.is_empty());
        listener.set_nonblocking(true).unwrap();
        let listener = TcpListener::from_std(listener).unwrap();
        let addr = listener.local_addr().unwrap();
        let log: Log = Arc::default();
        let active = Arc::new(AtomicUsize::new(0));
        let accept = tokio::spawn({
            let (log, active) = (log.clone(), active.clone());
            async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let index = {
                        let mut log = log.lock().unwrap();
                        log.push(Session::default());
                        log.len() - 1
                    };
                    let script = scripts.get(index).or(scripts.last()).cloned().unwrap();
                    active.fetch_add(1, Ordering::SeqCst);
                    let recorder = Recorder {
                        log: log.clone(),
                        index,
                    };
                    let active = active.clone();
                    tokio::spawn(async move {
                        let _ = serve(tcp, script, recorder).await;
                        active.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            }
        });
        FakeServer {
            addr,
            log,
            active,
            accept,
        }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn hop(&self) -> NextHop {
        NextHop {
            host: self.addr.ip().to_string(),
            port: self.addr.port(),
        }
    }

    /// What the server saw, once every connection has ended (or after a bound).
    async fn sessions(&self) -> Vec<Session> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.active.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.log.lock().unwrap().clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Writes into one connection's [`Session`].
struct Recorder {
    log: Log,
    index: usize,
}

impl Recorder {
    fn with(&self, f: impl FnOnce(&mut Session)) {
        let mut log = self.log.lock().unwrap();
        f(&mut log[self.index]);
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Conn = BufReader<Box<dyn Io>>;

async fn send(conn: &mut Conn, line: &str) -> std::io::Result<()> {
    let w = conn.get_mut();
    w.write_all(format!("{line}\r\n").as_bytes()).await?;
    w.flush().await
}

/// One line with its CRLF; `None` at the end of the stream or after a long silence.
async fn read_line(conn: &mut Conn) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    match tokio::time::timeout(SERVER_READ_LIMIT, conn.read_until(b'\n', &mut buf)).await {
        Ok(Ok(0)) | Err(_) => Ok(None),
        Ok(Ok(_)) => Ok(Some(buf)),
        Ok(Err(e)) => Err(e),
    }
}

/// The DATA content up to the final dot, dot-unstuffed (RFC 5321 §4.5.2).
async fn read_data(conn: &mut Conn) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let Some(line) = read_line(conn).await? else {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        };
        if line == b".\r\n" {
            return Ok(body);
        }
        let line = line.strip_prefix(b".").unwrap_or(&line);
        body.extend_from_slice(line);
    }
}

/// Plays `script` on one connection.
async fn serve(tcp: TcpStream, script: Script, rec: Recorder) -> std::io::Result<()> {
    let mut tls_active = false;
    let mut conn: Conn = if script.implicit_tls {
        let acceptor = TlsAcceptor::from(script.tls.clone().unwrap());
        let tls = acceptor.accept(tcp).await?;
        tls_active = true;
        rec.with(|s| s.tls = true);
        BufReader::new(Box::new(tls))
    } else {
        BufReader::new(Box::new(tcp))
    };
    send(&mut conn, &script.greeting).await?;
    if script.greeting.starts_with("421") {
        return Ok(());
    }
    // RFC 5321 §3.1: after a refusing greeting, wait for QUIT.
    let refusing = !script.greeting.starts_with('2');
    let mut accepted = 0;
    let mut chunks = Vec::new();
    loop {
        let Some(raw) = read_line(&mut conn).await? else {
            return Ok(());
        };
        let line = String::from_utf8_lossy(&raw)
            .trim_end_matches(['\r', '\n'])
            .to_string();
        rec.with(|s| s.commands.push(line.clone()));
        let mut words = line.split(' ');
        let verb = words.next().unwrap_or_default().to_ascii_uppercase();
        if refusing {
            if verb == "QUIT" {
                send(&mut conn, "221 2.0.0 bye").await?;
                return Ok(());
            }
            send(&mut conn, "503 5.5.1 go away").await?;
            continue;
        }
        match verb.as_str() {
            "EHLO" => {
                let mut lines = vec!["fake.test greets you".to_string()];
                lines.extend(script.extensions.iter().cloned());
                if script.starttls != StartTls::Off && !tls_active {
                    lines.push("STARTTLS".into());
                }
                let last = lines.len() - 1;
                let mut reply = String::new();
                for (i, l) in lines.iter().enumerate() {
                    let sep = if i == last { ' ' } else { '-' };
                    reply.push_str(&format!("250{sep}{l}\r\n"));
                }
                let w = conn.get_mut();
                w.write_all(reply.as_bytes()).await?;
                w.flush().await?;
            }
            "HELO" => send(&mut conn, "250 fake.test").await?,
            "STARTTLS" if tls_active || script.starttls == StartTls::Off => {
                send(&mut conn, "502 5.5.1 not here").await?;
            }
            "STARTTLS" => {
                send(&mut conn, "220 2.0.0 ready to start TLS").await?;
                match script.starttls {
                    StartTls::Works => {
                        let acceptor = TlsAcceptor::from(script.tls.clone().unwrap());
                        let tls = acceptor.accept(conn.into_inner()).await?;
                        conn = BufReader::new(Box::new(tls));
                        tls_active = true;
                        rec.with(|s| s.tls = true);
                    }
                    StartTls::CloseAfterReady | StartTls::Off => return Ok(()),
                    StartTls::GarbageAfterReady => {
                        let w = conn.get_mut();
                        w.write_all(b"this is not a TLS record\r\n").await?;
                        w.flush().await?;
                        // Wait for the client to give up, then close.
                        let mut sink = [0u8; 1024];
                        while let Ok(Ok(n)) =
                            tokio::time::timeout(SERVER_READ_LIMIT, conn.read(&mut sink)).await
                        {
                            if n == 0 {
                                break;
                            }
                        }
                        return Ok(());
                    }
                }
            }
            "AUTH" => {
                let mech = words.next().unwrap_or_default().to_ascii_uppercase();
                let decoded = words
                    .next()
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
                match decoded {
                    Some(msg) if mech == "PLAIN" => {
                        let parts: Vec<String> = msg
                            .split(|b| *b == 0)
                            .map(|p| String::from_utf8_lossy(p).into_owned())
                            .collect();
                        assert_eq!(parts.len(), 3, "AUTH PLAIN message: {parts:?}");
                        rec.with(|s| {
                            s.auth = Some((parts[0].clone(), parts[1].clone(), parts[2].clone()));
                        });
                        send(&mut conn, "235 2.7.0 welcome").await?;
                    }
                    _ => send(&mut conn, "504 5.5.4 PLAIN with a response only").await?,
                }
            }
            "MAIL" => {
                accepted = 0;
                chunks.clear();
                send(&mut conn, "250 2.1.0 sender ok").await?;
            }
            "RCPT" => {
                let address = line
                    .split_once('<')
                    .and_then(|(_, rest)| rest.split_once('>'))
                    .map(|(a, _)| a.to_string())
                    .unwrap_or_default();
                let reply = script
                    .rcpt_replies
                    .iter()
                    .find(|(a, _)| a.eq_ignore_ascii_case(&address))
                    .map(|(_, r)| r.clone())
                    .unwrap_or_else(|| "250 2.1.5 recipient ok".into());
                if reply.starts_with('2') {
                    accepted += 1;
                }
                send(&mut conn, &reply).await?;
            }
            "DATA" => {
                if accepted == 0 {
                    send(&mut conn, "554 5.5.1 no valid recipients").await?;
                    continue;
                }
                send(&mut conn, "354 go ahead").await?;
                let body = read_data(&mut conn).await?;
                rec.with(|s| s.messages.push(body));
                if script.drop_after_dot {
                    return Ok(());
                }
                send(&mut conn, "250 2.0.0 queued as 1234").await?;
            }
            "BDAT" => {
                let size: usize = words.next().unwrap_or_default().parse().unwrap();
                let last = words.next().is_some_and(|w| w.eq_ignore_ascii_case("LAST"));
                let mut chunk = vec![0u8; size];
                conn.read_exact(&mut chunk).await?;
                chunks.extend_from_slice(&chunk);
                if last {
                    let body = std::mem::take(&mut chunks);
                    rec.with(|s| s.messages.push(body));
                    if script.drop_after_dot {
                        return Ok(());
                    }
                    send(&mut conn, "250 2.0.0 queued as 1234").await?;
                } else {
                    send(&mut conn, "250 2.0.0 chunk ok").await?;
                }
            }
            "RSET" => {
                accepted = 0;
                chunks.clear();
                send(&mut conn, "250 2.0.0 reset").await?;
            }
            "NOOP" => send(&mut conn, "250 2.0.0 ok").await?,
            "QUIT" => {
                send(&mut conn, "221 2.0.0 bye").await?;
                return Ok(());
            }
            _ => send(&mut conn, "500 5.5.2 unknown command").await?,
        }
    }
}

/// A self-signed certificate for `name` and the server configuration using it.
struct Identity {
    config: Arc<rustls::ServerConfig>,
    /// The certificate, PEM: the CA file that verifies it.
    pem: String,
}

fn identity(name: &str) -> Identity {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .unwrap();
    Identity {
        config: Arc::new(config),
        pem: cert.pem(),
    }
}

/// Binds every address of `open` and `closed` on one port, then lets the
/// `closed` ones go, so that connecting to them is refused. Returns the port
/// and the listeners of `open`, in order.
fn same_port(open: &[Ipv4Addr], closed: &[Ipv4Addr]) -> (u16, Vec<std::net::TcpListener>) {
    let all: Vec<Ipv4Addr> = open.iter().chain(closed).copied().collect();
    'retry: for _ in 0..100 {
        let first = std::net::TcpListener::bind((all[0], 0)).unwrap();
        let port = first.local_addr().unwrap().port();
        let mut bound = vec![first];
        for ip in &all[1..] {
            match std::net::TcpListener::bind((*ip, port)) {
                Ok(l) => bound.push(l),
                Err(_) => continue 'retry,
            }
        }
        bound.truncate(open.len());
        return (port, bound);
    }
    panic!("no port free on all of {all:?}");
}

// ---------------------------------------------------------------------------
// The transport and its jobs
// ---------------------------------------------------------------------------

/// Settings with short timeouts: every wait in a test is seconds at most.
fn settings() -> RelaySettings {
    let mut s = RelaySettings::new(HELO);
    s.connect_timeout = Duration::from_secs(3);
    let t = Duration::from_secs(5);
    s.timeouts = Timeouts {
        greeting: t,
        mail: t,
        rcpt: t,
        data_init: t,
        data_block: t,
        data_term: t,
        command: t,
    };
    s
}

fn dns(server: &TestDns) -> Arc<Dns> {
    Arc::new(
        Dns::new(
            &Nameservers::Given(vec![server.addr()]),
            Duration::from_secs(2),
        )
        .unwrap(),
    )
}

fn transport(settings: RelaySettings, dns_server: &TestDns) -> SmtpTransport {
    SmtpTransport::new(settings, dns(dns_server), None).unwrap()
}

/// A transport with a static route for `domain` to `server`.
fn routed(domain: &str, server: &FakeServer, dns_server: &TestDns) -> SmtpTransport {
    let mut s = settings();
    s.routes.insert(domain.into(), server.hop());
    transport(s, dns_server)
}

fn recipient(id: u64, address: &str) -> QueuedRecipient {
    QueuedRecipient {
        id,
        address: Address::parse(address).unwrap(),
        orcpt: None,
        notify: 0,
        state: QueueState::Queued,
        attempts: 0,
        next_attempt: 0,
        last_error: None,
        remote: None,
    }
}

fn job(id: u64, from: Option<&str>, recipients: Vec<QueuedRecipient>, body: &str) -> Job {
    Job {
        message: QueuedMessage {
            id,
            blob_id: id,
            mail_from: from.map(|f| Address::parse(f).unwrap()),
            envid: None,
            ret_full: false,
            account: None,
            created_at: 0,
            expires_at: i64::MAX,
            warned: false,
            size: body.len() as u64,
            smtputf8: false,
            eightbit: false,
            recipients,
        },
        body: Arc::new(body.as_bytes().to_vec()),
    }
}

/// A simple message from `from` to `to`.
fn message(from: &str, to: &str) -> String {
    format!("From: {from}\r\nTo: {to}\r\nSubject: test\r\n\r\nHello.\r\n")
}

/// Runs one delivery (bounded in time) and returns what it reported, checking
/// that every job was reported exactly once and with one result per recipient.
async fn deliver(t: &SmtpTransport, domain: &str, jobs: Vec<Job>) -> Vec<JobResults> {
    let mut expected: Vec<(u64, Vec<u64>)> = jobs
        .iter()
        .map(|j| {
            (
                j.message.id,
                j.message.recipients.iter().map(|r| r.id).collect(),
            )
        })
        .collect();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::time::timeout(DELIVERY_LIMIT, t.deliver(domain, jobs, tx))
        .await
        .expect("deliver took too long");
    let mut out = Vec::new();
    while let Ok(r) = rx.try_recv() {
        out.push(r);
    }
    let mut reported: Vec<(u64, Vec<u64>)> = out
        .iter()
        .map(|(j, r)| (j.message.id, r.iter().map(|(id, _)| *id).collect()))
        .collect();
    expected.sort();
    reported.sort();
    assert_eq!(
        reported, expected,
        "each job reported once, every recipient"
    );
    out
}

/// The result of recipient `rcpt` of job `job`.
fn result(results: &[JobResults], job: u64, rcpt: u64) -> RcptResult {
    results
        .iter()
        .find(|(j, _)| j.message.id == job)
        .and_then(|(_, r)| r.iter().find(|(id, _)| *id == rcpt))
        .map(|(_, r)| r.clone())
        .unwrap_or_else(|| panic!("no result for job {job} recipient {rcpt}"))
}

#[track_caller]
fn assert_delivered(r: &RcptResult, remote_expected: &str, dsn: bool) {
    match r {
        RcptResult::Delivered {
            remote,
            reply,
            dsn_passed_on,
        } => {
            assert_eq!(remote, remote_expected);
            assert!(reply.starts_with("250"), "{reply}");
            assert_eq!(*dsn_passed_on, dsn, "dsn_passed_on");
        }
        other => panic!("not delivered: {other:?}"),
    }
}

#[track_caller]
fn temporary(r: &RcptResult) -> Failure {
    match r {
        RcptResult::Temporary(f) => f.clone(),
        other => panic!("not a temporary failure: {other:?}"),
    }
}

#[track_caller]
fn permanent(r: &RcptResult) -> Failure {
    match r {
        RcptResult::Permanent(f) => f.clone(),
        other => panic!("not a permanent failure: {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// 1. Static route: envelope, body, DSN parameters
// ---------------------------------------------------------------------------

/// A message with a Return-Path and lines that need dot-stuffing.
const DOTTED: &str = "Return-Path: <s@a.test>\r\n\
    From: s@a.test\r\n\
    To: r1@b.test\r\n\
    Subject: dots\r\n\
    \r\n\
    .leading dot\r\n\
    ..two dots\r\n\
    .\r\n\
    end\r\n";

fn dsn_job() -> Job {
    let mut r1 = recipient(1, "r1@b.test");
    r1.notify = dsn_notify::SUCCESS | dsn_notify::FAILURE;
    r1.orcpt = Some("rfc822;orig@b.test".into());
    let mut r2 = recipient(2, "r2@b.test");
    r2.notify = dsn_notify::NEVER;
    let mut j = job(7, Some("s@a.test"), vec![r1, r2], DOTTED);
    j.message.envid = Some("env+1".into());
    j.message.ret_full = true;
    j
}

fn without_return_path() -> Vec<u8> {
    DOTTED
        .strip_prefix("Return-Path: <s@a.test>\r\n")
        .unwrap()
        .as_bytes()
        .to_vec()
}

#[tokio::test]
async fn static_route_delivers_without_return_path_and_passes_dsn_on() {
    let dns_server = TestDns::start().unwrap();
    let server = FakeServer::start(vec![Script::new().ext("DSN")]);
    let t = routed("b.test", &server, &dns_server);

    let results = deliver(&t, "b.test", vec![dsn_job()]).await;
    assert_delivered(&result(&results, 7, 1), "[127.0.0.1]", true);
    assert_delivered(&result(&results, 7, 2), "[127.0.0.1]", true);

    let sessions = server.sessions().await;
    assert_eq!(sessions.len(), 1);
    let s = &sessions[0];
    assert_eq!(
        s.commands_starting("MAIL"),
        ["MAIL FROM:<s@a.test> RET=FULL ENVID=env+2B1"]
    );
    assert_eq!(
        s.commands_starting("RCPT"),
        [
            "RCPT TO:<r1@b.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;orig@b.test",
            "RCPT TO:<r2@b.test> NOTIFY=NEVER",
        ]
    );
    assert_eq!(s.messages, [without_return_path()]);
    assert_eq!(s.commands[0], format!("EHLO {HELO}"));
    assert_eq!(s.verbs().last().map(String::as_str), Some("QUIT"));
}

#[tokio::test]
async fn static_route_without_dsn_drops_the_dsn_parameters() {
    let dns_server = TestDns::start().unwrap();
    let server = FakeServer::start(vec![Script::new()]);
    let t = routed("b.test", &server, &dns_server);

    let results = deliver(&t, "b.test", vec![dsn_job()]).await;
    assert_delivered(&result(&results, 7, 1), "[127.0.0.1]", false);
    assert_delivered(&result(&results, 7, 2), "[127.0.0.1]", false);

    let s = &server.sessions().await[0];
    assert_eq!(s.commands_starting("MAIL"), ["MAIL FROM:<s@a.test>"]);
    assert_eq!(
        s.commands_starting("RCPT"),
        ["RCPT TO:<r1@b.test>", "RCPT TO:<r2@b.test>"]
    );
    assert_eq!(s.messages, [without_return_path()]);
}

#[tokio::test]
async fn static_route_with_chunking_sends_the_body_unstuffed_with_bdat() {
    let dns_server = TestDns::start().unwrap();
    let server = FakeServer::start(vec![Script::new().ext("CHUNKING").ext("SIZE 1000000")]);
    let t = routed("b.test", &server, &dns_server);

    let results = deliver(&t, "b.test", vec![dsn_job()]).await;
    assert_delivered(&result(&results, 7, 1), "[127.0.0.1]", false);

    let s = &server.sessions().await[0];
    let expected = without_return_path();
    assert_eq!(
        s.commands_starting("MAIL"),
        [format!("MAIL FROM:<s@a.test> SIZE={}", expected.len())]
    );
    assert_eq!(
        s.commands_starting("BDAT"),
        [format!("BDAT {} LAST", expected.len())]
    );
    assert!(s.commands_starting("DATA").is_empty());
    assert_eq!(s.messages, [expected]);
}

// ---------------------------------------------------------------------------
// 2. Connection reuse
// ---------------------------------------------------------------------------

#[tokio::test]
async fn several_jobs_share_one_connection() {
    let dns_server = TestDns::start().unwrap();
    let server = FakeServer::start(vec![
        Script::new().rcpt("refused@b.test", "550 5.1.1 no such user"),
    ]);
    let t = routed("b.test", &server, &dns_server);

    let jobs = vec![
        job(
            1,
            Some("s@a.test"),
            vec![recipient(10, "one@b.test")],
            &message("s@a.test", "one@b.test"),
        ),
        // Refused at RCPT: the transaction stays open, so RSET comes next.
        job(
            2,
            Some("s@a.test"),
            vec![recipient(20, "refused@b.test")],
            &message("s@a.test", "refused@b.test"),
        ),
        job(
            3,
            None,
            vec![recipient(30, "three@b.test")],
            &message("s@a.test", "three@b.test"),
        ),
    ];
    let results = deliver(&t, "b.test", jobs).await;
    assert_delivered(&result(&results, 1, 10), "[127.0.0.1]", false);
    let f = permanent(&result(&results, 2, 20));
    assert_eq!(f.status, "5.1.1");
    assert_delivered(&result(&results, 3, 30), "[127.0.0.1]", false);

    let sessions = server.sessions().await;
    assert_eq!(sessions.len(), 1, "one connection for all jobs");
    let s = &sessions[0];
    assert_eq!(
        s.verbs(),
        [
            "EHLO", "MAIL", "RCPT", "DATA", "MAIL", "RCPT", "DATA", "RSET", "MAIL", "RCPT", "DATA",
            "QUIT"
        ]
    );
    assert_eq!(
        s.commands_starting("MAIL"),
        [
            "MAIL FROM:<s@a.test>",
            "MAIL FROM:<s@a.test>",
            "MAIL FROM:<>"
        ]
    );
    assert_eq!(
        s.messages,
        [
            message("s@a.test", "one@b.test").into_bytes(),
            message("s@a.test", "three@b.test").into_bytes()
        ]
    );
}

// ---------------------------------------------------------------------------
// 3. MX routing
// ---------------------------------------------------------------------------

/// A transport sending to MX hosts on `port`.
fn mx_transport(port: u16, dns_server: &TestDns) -> SmtpTransport {
    let mut s = settings();
    s.mx_port = port;
    transport(s, dns_server)
}

fn mx_job(domain: &str) -> Job {
    let to = format!("rcpt@{domain}");
    job(
        1,
        Some("s@a.test"),
        vec![recipient(1, &to)],
        &message("s@a.test", &to),
    )
}

#[tokio::test]
async fn mx_best_host_refusing_connections_falls_back_to_the_next() {
    let dns_server = TestDns::start().unwrap();
    let (port, mut listeners) = same_port(&[LOCALHOST2], &[Ipv4Addr::LOCALHOST]);
    let server = FakeServer::on(listeners.remove(0), vec![Script::new()]);
    dns_server.add_mx("c.test", 10, "mx1.c.test");
    dns_server.add_mx("c.test", 20, "mx2.c.test");
    dns_server.add_a("mx1.c.test", Ipv4Addr::LOCALHOST);
    dns_server.add_a("mx2.c.test", LOCALHOST2);
    let t = mx_transport(port, &dns_server);

    let results = deliver(&t, "c.test", vec![mx_job("c.test")]).await;
    assert_delivered(&result(&results, 1, 1), "mx2.c.test [127.0.0.2]", false);
    let sessions = server.sessions().await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].messages.len(), 1);
}

#[tokio::test]
async fn mx_best_host_greeting_421_falls_back_to_the_next() {
    let dns_server = TestDns::start().unwrap();
    let (port, mut listeners) = same_port(&[Ipv4Addr::LOCALHOST, LOCALHOST2], &[]);
    let busy = FakeServer::on(
        listeners.remove(0),
        vec![Script::new().greeting("421 4.3.2 too busy, try later")],
    );
    let good = FakeServer::on(listeners.remove(0), vec![Script::new()]);
    dns_server.add_mx("c.test", 5, "busy.c.test");
    dns_server.add_mx("c.test", 50, "good.c.test");
    dns_server.add_a("busy.c.test", Ipv4Addr::LOCALHOST);
    dns_server.add_a("good.c.test", LOCALHOST2);
    let t = mx_transport(port, &dns_server);

    let results = deliver(&t, "c.test", vec![mx_job("c.test")]).await;
    assert_delivered(&result(&results, 1, 1), "good.c.test [127.0.0.2]", false);
    let busy_sessions = busy.sessions().await;
    assert_eq!(busy_sessions.len(), 1, "the best MX was tried first");
    assert!(busy_sessions[0].commands.is_empty(), "{busy_sessions:?}");
    assert_eq!(good.sessions().await[0].messages.len(), 1);
}

#[tokio::test]
async fn mx_greeting_554_everywhere_is_a_permanent_failure() {
    let dns_server = TestDns::start().unwrap();
    let (port, mut listeners) = same_port(&[Ipv4Addr::LOCALHOST, LOCALHOST2], &[]);
    let refusing = Script::new().greeting("554 5.7.1 no mail from you");
    let a = FakeServer::on(listeners.remove(0), vec![refusing.clone()]);
    let b = FakeServer::on(listeners.remove(0), vec![refusing]);
    dns_server.add_mx("e.test", 10, "mx1.e.test");
    dns_server.add_mx("e.test", 20, "mx2.e.test");
    dns_server.add_a("mx1.e.test", Ipv4Addr::LOCALHOST);
    dns_server.add_a("mx2.e.test", LOCALHOST2);
    let t = mx_transport(port, &dns_server);

    let results = deliver(&t, "e.test", vec![mx_job("e.test")]).await;
    let f = permanent(&result(&results, 1, 1));
    assert_eq!(f.status, "5.7.1");
    assert_eq!(f.reply.as_deref(), Some("554 5.7.1 no mail from you"));
    assert_eq!(f.remote.as_deref(), Some("mx2.e.test [127.0.0.2]"));
    for server in [&a, &b] {
        let sessions = server.sessions().await;
        assert_eq!(sessions.len(), 1);
        // RFC 5321 §3.1: after a 554 greeting the client says QUIT, nothing else.
        assert_eq!(sessions[0].verbs(), ["QUIT"]);
    }
}

#[tokio::test]
async fn mx_all_hosts_refusing_connections_is_temporary_and_names_the_host() {
    let dns_server = TestDns::start().unwrap();
    let (port, _) = same_port(&[], &[Ipv4Addr::LOCALHOST, LOCALHOST2]);
    dns_server.add_mx("d.test", 10, "mx1.d.test");
    dns_server.add_mx("d.test", 20, "mx2.d.test");
    dns_server.add_a("mx1.d.test", Ipv4Addr::LOCALHOST);
    dns_server.add_a("mx2.d.test", LOCALHOST2);
    let t = mx_transport(port, &dns_server);

    let results = deliver(&t, "d.test", vec![mx_job("d.test")]).await;
    let f = temporary(&result(&results, 1, 1));
    assert_eq!(f.status, "4.4.1");
    assert_eq!(f.reply, None, "no server said anything");
    assert!(f.text.contains("mx2.d.test"), "{}", f.text);
    assert!(f.text.contains("cannot connect"), "{}", f.text);
}

#[tokio::test]
async fn address_literal_goes_to_the_address_on_the_mx_port() {
    let dns_server = TestDns::start().unwrap();
    let server = FakeServer::start(vec![Script::new()]);
    let t = mx_transport(server.port(), &dns_server);

    let results = deliver(&t, "[127.0.0.1]", vec![mx_job("[127.0.0.1]")]).await;
    assert_delivered(&result(&results, 1, 1), "[127.0.0.1]", false);
    let s = &server.sessions().await[0];
    assert_eq!(s.commands_starting("RCPT"), ["RCPT TO:<rcpt@[127.0.0.1]>"]);
}

// ---------------------------------------------------------------------------
// 4. Implicit MX, null MX, DNS failures, loops
// ---------------------------------------------------------------------------

#[tokio::test]
async fn implicit_mx_uses_the_domains_own_address() {
    let dns_server = TestDns::start().unwrap();
    let server = FakeServer::start(vec![Script::new()]);
    dns_server.add_a("implicit.test", Ipv4Addr::LOCALHOST);
    let t = mx_transport(server.port(), &dns_server);

    let results = deliver(&t, "implicit.test", vec![mx_job("implicit.test")]).await;
    assert_delivered(&result(&results, 1, 1), "implicit.test [127.0.0.1]", false);
    assert_eq!(server.sessions().await[0].messages.len(), 1);
}

/// The result of delivering to `domain` with DNS set up by `setup`, when no
/// server should ever be reached.
async fn routing_result(setup: impl FnOnce(&TestDns), domain: &str) -> RcptResult {
    let dns_server = TestDns::start().unwrap();
    setup(&dns_server);
    // A port nothing listens on: reaching it would fail the test's expectations.
    let (port, _) = same_port(&[], &[Ipv4Addr::LOCALHOST]);
    let t = mx_transport(port, &dns_server);
    let results = deliver(&t, domain, vec![mx_job(domain)]).await;
    result(&results, 1, 1)
}

#[tokio::test]
async fn null_mx_is_a_permanent_failure() {
    let r = routing_result(|d| d.add_mx("nullmx.test", 0, "."), "nullmx.test").await;
    let f = permanent(&r);
    assert_eq!(f.status, "5.1.10");
    assert!(f.text.contains("null MX"), "{}", f.text);
    assert_eq!((f.reply, f.remote), (None, None));
}

#[tokio::test]
async fn nxdomain_is_a_permanent_failure() {
    let r = routing_result(|_| {}, "nxdomain.test").await;
    let f = permanent(&r);
    assert_eq!(f.status, "5.1.2");
    assert!(f.text.contains("nxdomain.test"), "{}", f.text);
}

#[tokio::test]
async fn servfail_is_a_temporary_failure() {
    let r = routing_result(|d| d.fail("servfail.test"), "servfail.test").await;
    let f = temporary(&r);
    assert_eq!(f.status, "4.4.3");
    assert!(f.text.contains("servfail.test"), "{}", f.text);
}

#[tokio::test]
async fn mx_host_without_address_is_a_temporary_failure() {
    // The MX names a host that does not exist.
    let r = routing_result(
        |d| d.add_mx("noaddr.test", 10, "ghost.noaddr.test"),
        "noaddr.test",
    )
    .await;
    let f = temporary(&r);
    assert_eq!(f.status, "4.4.3");
    assert!(f.text.contains("noaddr.test"), "{}", f.text);
}

#[tokio::test]
async fn mx_pointing_at_ourselves_is_a_loop() {
    let r = routing_result(|d| d.add_mx("loop.test", 10, HELO), "loop.test").await;
    let f = permanent(&r);
    assert_eq!(f.status, "5.4.6");
    assert!(f.text.contains("loops back"), "{}", f.text);
}

#[tokio::test]
async fn mx_hosts_at_or_after_ourselves_are_never_tried() {
    let dns_server = TestDns::start().unwrap();
    let (port, mut listeners) = same_port(&[LOCALHOST2], &[Ipv4Addr::LOCALHOST]);
    // Behind us (and on our own name): never to be reached.
    let beyond = FakeServer::on(listeners.remove(0), vec![Script::new()]);
    dns_server.add_mx("backup.test", 10, "primary.backup.test");
    dns_server.add_mx("backup.test", 20, HELO);
    dns_server.add_mx("backup.test", 30, "worse.backup.test");
    dns_server.add_a("primary.backup.test", Ipv4Addr::LOCALHOST);
    dns_server.add_a(HELO, LOCALHOST2);
    dns_server.add_a("worse.backup.test", LOCALHOST2);
    let t = mx_transport(port, &dns_server);

    let results = deliver(&t, "backup.test", vec![mx_job("backup.test")]).await;
    // The primary is down: we keep the mail (we are its backup MX).
    let f = temporary(&result(&results, 1, 1));
    assert!(f.text.contains("primary.backup.test"), "{}", f.text);
    assert!(beyond.sessions().await.is_empty());
}

/// RFC 5321 §5.1: when our own name is among the MX hosts, every host of an
/// equal or greater preference goes too, not only those after us in the list
/// (equal preferences are tried in random order, so a peer of our preference
/// used to be tried about every other time).
#[tokio::test]
async fn regression_mx_peer_of_our_own_preference_is_dropped() {
    let dns_server = TestDns::start().unwrap();
    let peer = FakeServer::start(vec![Script::new()]);
    dns_server.add_mx("peer.test", 10, HELO);
    dns_server.add_mx("peer.test", 10, "peer.peer.test");
    dns_server.add_a("peer.peer.test", Ipv4Addr::LOCALHOST);
    let t = mx_transport(peer.port(), &dns_server);
    // The order of equal preferences is random: try often enough to see both.
    for _ in 0..12 {
        let results = deliver(&t, "peer.test", vec![mx_job("peer.test")]).await;
        let f = permanent(&result(&results, 1, 1));
        assert_eq!(f.status, "5.4.6", "{f:?}");
    }
    assert!(peer.sessions().await.is_empty(), "the peer was tried");
}

/// A backup MX whose primary has no address for now keeps the mail: that is a
/// temporary DNS problem, not a loop (it used to bounce with 5.4.6).
#[tokio::test]
async fn regression_backup_mx_with_unresolvable_primary_is_not_a_loop() {
    let r = routing_result(
        |d| {
            d.add_mx("backup.test", 10, "primary.backup.test");
            d.add_mx("backup.test", 20, HELO);
            d.fail("primary.backup.test");
        },
        "backup.test",
    )
    .await;
    let f = temporary(&r);
    assert_eq!(f.status, "4.4.3");
    assert!(f.text.contains("primary.backup.test"), "{}", f.text);
}

// ---------------------------------------------------------------------------
// 5. Per-recipient results
// ---------------------------------------------------------------------------

#[tokio::test]
async fn each_recipient_gets_its_own_result() {
    let dns_server = TestDns::start().unwrap();
    let server = FakeServer::start(vec![
        Script::new()
            .rcpt("bad@b.test", "550 5.1.1 <bad@b.test>: no such user")
            .rcpt("later@b.test", "450 4.2.1 mailbox busy"),
    ]);
    let t = routed("b.test", &server, &dns_server);

    let j = job(
        1,
        Some("s@a.test"),
        vec![
            recipient(1, "bad@b.test"),
            recipient(2, "later@b.test"),
            recipient(3, "good@b.test"),
        ],
        &message("s@a.test", "good@b.test"),
    );
    let results = deliver(&t, "b.test", vec![j]).await;

    let bad = permanent(&result(&results, 1, 1));
    assert_eq!(bad.status, "5.1.1");
    assert_eq!(
        bad.reply.as_deref(),
        Some("550 5.1.1 <bad@b.test>: no such user")
    );
    assert_eq!(bad.remote.as_deref(), Some("[127.0.0.1]"));
    assert!(bad.text.contains("in reply to RCPT TO"), "{}", bad.text);
    assert!(bad.text.contains("no such user"), "{}", bad.text);

    let later = temporary(&result(&results, 1, 2));
    assert_eq!(later.status, "4.2.1");
    assert_eq!(later.reply.as_deref(), Some("450 4.2.1 mailbox busy"));
    assert!(later.text.contains("in reply to RCPT TO"), "{}", later.text);

    assert_delivered(&result(&results, 1, 3), "[127.0.0.1]", false);
    let s = &server.sessions().await[0];
    assert_eq!(s.messages.len(), 1);
}

// ---------------------------------------------------------------------------
// 6. STARTTLS
// ---------------------------------------------------------------------------

#[tokio::test]
async fn starttls_is_used_when_offered() {
    let dns_server = TestDns::start().unwrap();
    let id = identity("mx.b.test");
    let server = FakeServer::start(vec![Script::new().starttls(StartTls::Works, &id)]);
    let t = routed("b.test", &server, &dns_server);

    let j = job(
        1,
        Some("s@a.test"),
        vec![recipient(1, "r@b.test")],
        &message("s@a.test", "r@b.test"),
    );
    let results = deliver(&t, "b.test", vec![j]).await;
    assert_delivered(&result(&results, 1, 1), "[127.0.0.1]", false);

    let sessions = server.sessions().await;
    assert_eq!(sessions.len(), 1);
    let s = &sessions[0];
    assert!(s.tls, "the server saw TLS");
    assert_eq!(
        s.verbs(),
        ["EHLO", "STARTTLS", "EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    );
    assert_eq!(s.messages, [message("s@a.test", "r@b.test").into_bytes()]);
}

#[tokio::test]
async fn failed_starttls_handshake_is_retried_in_clear_text() {
    for mode in [StartTls::CloseAfterReady, StartTls::GarbageAfterReady] {
        let dns_server = TestDns::start().unwrap();
        let id = identity("mx.b.test");
        let server = FakeServer::start(vec![Script::new().starttls(mode, &id)]);
        let t = routed("b.test", &server, &dns_server);

        let j = job(
            1,
            Some("s@a.test"),
            vec![recipient(1, "r@b.test")],
            &message("s@a.test", "r@b.test"),
        );
        let results = deliver(&t, "b.test", vec![j]).await;
        assert_delivered(&result(&results, 1, 1), "[127.0.0.1]", false);

        let sessions = server.sessions().await;
        assert_eq!(sessions.len(), 2, "{mode:?}: {sessions:?}");
        assert!(!sessions[0].tls && !sessions[1].tls);
        assert_eq!(sessions[0].verbs(), ["EHLO", "STARTTLS"], "{mode:?}");
        assert!(sessions[0].messages.is_empty());
        // The retry does not even try STARTTLS though it is offered again.
        assert_eq!(
            sessions[1].verbs(),
            ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"],
            "{mode:?}"
        );
        assert_eq!(sessions[1].messages.len(), 1);
    }
}

#[tokio::test]
async fn required_tls_without_starttls_is_a_temporary_failure() {
    let dns_server = TestDns::start().unwrap();
    let server = FakeServer::start(vec![Script::new()]);
    let mut s = settings();
    s.tls = TlsPolicy::Required;
    s.routes.insert("b.test".into(), server.hop());
    let t = transport(s, &dns_server);

    let j = job(
        1,
        Some("s@a.test"),
        vec![recipient(1, "r@b.test")],
        &message("s@a.test", "r@b.test"),
    );
    let results = deliver(&t, "b.test", vec![j]).await;
    let f = temporary(&result(&results, 1, 1));
    assert_eq!(f.status, "4.7.10");
    assert!(f.text.contains("STARTTLS"), "{}", f.text);

    let sessions = server.sessions().await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].verbs(), ["EHLO", "QUIT"]);
}

#[tokio::test]
async fn required_tls_with_a_failed_handshake_is_not_retried_in_clear_text() {
    let dns_server = TestDns::start().unwrap();
    let id = identity("mx.b.test");
    let server = FakeServer::start(vec![Script::new().starttls(StartTls::CloseAfterReady, &id)]);
    let mut s = settings();
    s.tls = TlsPolicy::Required;
    s.routes.insert("b.test".into(), server.hop());
    let t = transport(s, &dns_server);

    let j = job(
        1,
        Some("s@a.test"),
        vec![recipient(1, "r@b.test")],
        &message("s@a.test", "r@b.test"),
    );
    let results = deliver(&t, "b.test", vec![j]).await;
    let f = temporary(&result(&results, 1, 1));
    assert!(f.text.contains("TLS"), "{}", f.text);
    let sessions = server.sessions().await;
    assert_eq!(sessions.len(), 1, "no clear-text retry: {sessions:?}");
    assert!(sessions[0].messages.is_empty());
}

// ---------------------------------------------------------------------------
// 7. Smarthost: verified TLS and AUTH
// ---------------------------------------------------------------------------

const SMARTHOST: &str = "smarthost.test";

fn credentials() -> Credentials {
    Credentials {
        authzid: None,
        login: "relay@a.test".into(),
        password: Secret::new("s3cret pass"),
    }
}

/// A transport sending everything to `server` as the smarthost, its
/// certificate checked against `ca_pem` (written into `dir`).
fn smarthost_transport(
    server: &FakeServer,
    tls: SmarthostTls,
    ca_pem: &str,
    dir: &std::path::Path,
    dns_server: &TestDns,
) -> SmtpTransport {
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    dns_server.add_a(SMARTHOST, Ipv4Addr::LOCALHOST);
    let mut s = settings();
    s.smarthost = Some(Smarthost {
        hop: NextHop {
            host: SMARTHOST.into(),
            port: server.port(),
        },
        tls,
        credentials: Some(credentials()),
        ca_file: Some(ca_file),
    });
    transport(s, dns_server)
}

fn far_job() -> Job {
    job(
        1,
        Some("s@a.test"),
        vec![recipient(1, "r@far.test")],
        &message("s@a.test", "r@far.test"),
    )
}

#[tokio::test]
async fn smarthost_with_implicit_tls_verifies_and_authenticates() {
    let dns_server = TestDns::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let id = identity(SMARTHOST);
    let server = FakeServer::start(vec![
        Script::new().implicit_tls(&id).ext("AUTH PLAIN LOGIN"),
    ]);
    let t = smarthost_transport(
        &server,
        SmarthostTls::Implicit,
        &id.pem,
        dir.path(),
        &dns_server,
    );

    let results = deliver(&t, "far.test", vec![far_job()]).await;
    assert_delivered(&result(&results, 1, 1), "smarthost.test [127.0.0.1]", false);
    let sessions = server.sessions().await;
    assert_eq!(sessions.len(), 1);
    let s = &sessions[0];
    assert!(s.tls);
    assert_eq!(
        s.auth,
        Some((String::new(), "relay@a.test".into(), "s3cret pass".into()))
    );
    assert_eq!(s.verbs(), ["EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"]);
    assert_eq!(s.messages.len(), 1);
}

#[tokio::test]
async fn smarthost_with_starttls_authenticates_only_after_tls() {
    let dns_server = TestDns::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let id = identity(SMARTHOST);
    let server = FakeServer::start(vec![
        Script::new()
            .starttls(StartTls::Works, &id)
            .ext("AUTH PLAIN"),
    ]);
    let t = smarthost_transport(
        &server,
        SmarthostTls::Starttls,
        &id.pem,
        dir.path(),
        &dns_server,
    );

    let results = deliver(&t, "far.test", vec![far_job()]).await;
    assert_delivered(&result(&results, 1, 1), "smarthost.test [127.0.0.1]", false);
    let s = &server.sessions().await[0];
    assert!(s.tls);
    assert_eq!(
        s.verbs(),
        [
            "EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"
        ]
    );
    assert_eq!(s.auth.as_ref().map(|a| a.1.as_str()), Some("relay@a.test"));
}

#[tokio::test]
async fn smarthost_with_an_unverifiable_certificate_gets_nothing() {
    // A certificate from another CA, and one from the right CA for another name.
    let cases = [(identity(SMARTHOST), identity(SMARTHOST).pem), {
        let other = identity("other.test");
        let pem = other.pem.clone();
        (other, pem)
    }];
    for (i, (id, ca_pem)) in cases.into_iter().enumerate() {
        for tls in [SmarthostTls::Implicit, SmarthostTls::Starttls] {
            let dns_server = TestDns::start().unwrap();
            let dir = tempfile::tempdir().unwrap();
            let script = match tls {
                SmarthostTls::Implicit => Script::new().implicit_tls(&id),
                _ => Script::new().starttls(StartTls::Works, &id),
            }
            .ext("AUTH PLAIN");
            let server = FakeServer::start(vec![script]);
            let t = smarthost_transport(&server, tls, &ca_pem, dir.path(), &dns_server);

            let results = deliver(&t, "far.test", vec![far_job()]).await;
            let f = temporary(&result(&results, 1, 1));
            assert!(f.text.contains("TLS"), "case {i} {tls:?}: {}", f.text);

            let sessions = server.sessions().await;
            assert_eq!(
                sessions.len(),
                1,
                "case {i} {tls:?}: no retry in clear text"
            );
            let s = &sessions[0];
            assert!(!s.tls, "case {i} {tls:?}");
            assert_eq!(s.auth, None, "case {i} {tls:?}: credentials never sent");
            assert!(
                !s.verbs().iter().any(|v| v == "AUTH" || v == "MAIL"),
                "case {i} {tls:?}: {s:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// 8. DKIM
// ---------------------------------------------------------------------------

#[tokio::test]
async fn messages_from_our_domains_are_dkim_signed() {
    let dns_server = TestDns::start().unwrap();
    let keys_dir = tempfile::tempdir().unwrap();
    let key =
        pochta_msgauth::generate(keys_dir.path(), "a.test", "sel", KeyAlgorithm::Ed25519).unwrap();
    dns_server.add_txt(&key.dns_name, &key.dns_txt);
    let keys = Arc::new(DkimKeys::open(keys_dir.path()));

    let server = FakeServer::start(vec![Script::new()]);
    let mut s = settings();
    s.routes.insert("b.test".into(), server.hop());
    let t = SmtpTransport::new(s, dns(&dns_server), Some(keys)).unwrap();

    let ours = "Return-Path: <x@a.test>\r\n\
        From: X <x@a.test>\r\n\
        To: r@b.test\r\n\
        Subject: signed\r\n\
        \r\n\
        .a line with a leading dot\r\n\
        Bye.\r\n";
    let theirs = message("y@other.test", "r@b.test");
    let jobs = vec![
        job(1, Some("x@a.test"), vec![recipient(1, "r@b.test")], ours),
        job(
            2,
            Some("y@other.test"),
            vec![recipient(2, "r@b.test")],
            &theirs,
        ),
    ];
    let results = deliver(&t, "b.test", jobs).await;
    assert_delivered(&result(&results, 1, 1), "[127.0.0.1]", false);
    assert_delivered(&result(&results, 2, 2), "[127.0.0.1]", false);

    let s = &server.sessions().await[0];
    assert_eq!(s.messages.len(), 2);
    let signed = String::from_utf8(s.messages[0].clone()).unwrap();
    assert!(signed.starts_with("DKIM-Signature:"), "{signed}");
    let original = ours.strip_prefix("Return-Path: <x@a.test>\r\n").unwrap();
    let header = signed
        .strip_suffix(original)
        .expect("the message follows the signature");
    let tags: String = header.split_whitespace().collect();
    assert!(tags.contains("d=a.test;"), "{header}");
    assert!(tags.contains("s=sel;"), "{header}");
    assert_eq!(
        s.messages[1],
        theirs.as_bytes(),
        "other domains are not signed"
    );

    // The signature verifies over what the server received.
    let checker = Checker::new(
        dns(&dns_server),
        CheckSettings {
            authserv_id: "fake.test".into(),
            reject_dmarc: false,
            skip: Vec::new(),
        },
    );
    let verdict = checker
        .check(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            HELO,
            Some("x@a.test"),
            signed.as_bytes(),
        )
        .await;
    assert!(verdict.summary.contains("dkim=pass"), "{}", verdict.summary);
}

// ---------------------------------------------------------------------------
// 9. A connection lost after the data
// ---------------------------------------------------------------------------

#[tokio::test]
async fn connection_dropped_after_the_final_dot_is_a_temporary_failure() {
    for chunking in [false, true] {
        let dns_server = TestDns::start().unwrap();
        let mut first = Script::new().drop_after_dot();
        let mut rest = Script::new();
        if chunking {
            first = first.ext("CHUNKING");
            rest = rest.ext("CHUNKING");
        } else {
            first = first.without("PIPELINING");
        }
        let server = FakeServer::start(vec![first, rest]);
        let t = routed("b.test", &server, &dns_server);

        let jobs = vec![
            job(
                1,
                Some("s@a.test"),
                vec![recipient(1, "r1@b.test")],
                &message("s@a.test", "r1@b.test"),
            ),
            job(
                2,
                Some("s@a.test"),
                vec![recipient(2, "r2@b.test")],
                &message("s@a.test", "r2@b.test"),
            ),
        ];
        // `deliver` checks that each job is reported exactly once.
        let results = deliver(&t, "b.test", jobs).await;
        let f = temporary(&result(&results, 1, 1));
        assert_eq!(f.status, "4.4.2", "chunking {chunking}");
        assert!(f.text.contains("lost"), "chunking {chunking}: {}", f.text);

        let sessions = server.sessions().await;
        assert_eq!(
            sessions[0].messages.len(),
            1,
            "the server had the data when it hung up"
        );
        match result(&results, 2, 2) {
            RcptResult::Delivered { .. } => {
                assert_eq!(sessions.len(), 2, "delivered on a new connection");
                assert_eq!(sessions[1].messages.len(), 1);
            }
            RcptResult::Temporary(_) => {
                let sent: usize = sessions.iter().map(|s| s.messages.len()).sum();
                assert_eq!(sent, 1, "job 2 was never sent");
            }
            other => panic!("chunking {chunking}: job 2: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// MTA-STS (RFC 8461)
// ---------------------------------------------------------------------------

/// The domain publishing a policy; its MX host and policy host.
const STS: &str = "sts.test";
const STS_MX: &str = "mx.sts.test";
const STS_WEB: &str = "mta-sts.sts.test";

/// An HTTPS server answering every request with `status` and `body` as
/// text/plain; counts the requests.
struct PolicyServer {
    port: u16,
    requests: Arc<AtomicUsize>,
    accept: JoinHandle<()>,
}

impl PolicyServer {
    fn start(identity: &Identity, status: &'static str, body: &str) -> PolicyServer {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let listener = TcpListener::from_std(listener).unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = TlsAcceptor::from(identity.config.clone());
        let requests = Arc::new(AtomicUsize::new(0));
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let accept = tokio::spawn({
            let requests = requests.clone();
            async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    let (acceptor, response, requests) =
                        (acceptor.clone(), response.clone(), requests.clone());
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let mut head = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            match tokio::time::timeout(SERVER_READ_LIMIT, tls.read(&mut buf)).await
                            {
                                Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
                                _ => return,
                            }
                        }
                        let head = String::from_utf8_lossy(&head);
                        assert!(
                            head.starts_with("GET /.well-known/mta-sts.txt HTTP/1.1\r\n"),
                            "{head}"
                        );
                        assert!(
                            head.to_ascii_lowercase()
                                .contains("host: mta-sts.sts.test\r\n")
                        );
                        requests.fetch_add(1, Ordering::SeqCst);
                        let _ = tls.write_all(response.as_bytes()).await;
                        let _ = tls.shutdown().await;
                    });
                }
            }
        });
        PolicyServer {
            port,
            requests,
            accept,
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for PolicyServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn policy(mode: &str, mx: &str) -> String {
    format!("version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: 86400\r\n")
}

/// DNS for [`STS`] (MX, policy record with `id`, both hosts on 127.0.0.1) and a
/// transport that fetches policies from `web` and trusts `cas`.
fn sts_setup(
    dns_server: &TestDns,
    id: &str,
    mx_port: u16,
    web: &PolicyServer,
    cas: &[&Identity],
    dir: &std::path::Path,
) -> SmtpTransport {
    dns_server.add_mx(STS, 10, STS_MX);
    dns_server.add_a(STS_MX, Ipv4Addr::LOCALHOST);
    dns_server.add_a(STS_WEB, Ipv4Addr::LOCALHOST);
    dns_server.add_txt(&format!("_mta-sts.{STS}"), &format!("v=STSv1; id={id}"));
    transport(sts_settings(mx_port, web.port, cas, dir), dns_server)
}

/// Settings sending to MX hosts on `mx_port`, fetching policies from
/// `web_port` and trusting `cas`.
fn sts_settings(
    mx_port: u16,
    web_port: u16,
    cas: &[&Identity],
    dir: &std::path::Path,
) -> RelaySettings {
    let ca = dir.join("sts-ca.pem");
    let pems: Vec<&str> = cas.iter().map(|i| i.pem.as_str()).collect();
    std::fs::write(&ca, pems.concat()).unwrap();
    let mut s = settings();
    s.mx_port = mx_port;
    s.mta_sts_port = web_port;
    s.mta_sts_ca = Some(ca);
    s
}

#[tokio::test]
async fn mta_sts_policies_kept_in_the_store_outlive_a_restart() {
    let (dns_server, dir) = (TestDns::start().unwrap(), tempfile::tempdir().unwrap());
    let store: Arc<dyn pochta_store::Store> =
        Arc::new(pochta_store::SqliteStore::open(&dir.path().join("store")).unwrap());
    let (mx_id, web_id) = (identity(STS_MX), identity(STS_WEB));
    let web = PolicyServer::start(&web_id, "200 OK", &policy("enforce", "*.sts.test"));
    // Clear text only: what the policy forbids.
    let server = FakeServer::start(vec![Script::new()]);
    let cas = [&mx_id, &web_id];
    let first = sts_setup(&dns_server, "7", server.port(), &web, &cas, dir.path())
        .with_policy_store(store.clone());
    temporary(&result(
        &deliver(&first, STS, vec![mx_job(STS)]).await,
        1,
        1,
    ));
    assert_eq!(web.requests(), 1);
    // "Restart" while the policy server cannot be reached (an attacker blocks it).
    let web_port = web.port;
    drop((first, web));
    let settings = || sts_settings(server.port(), web_port, &cas, dir.path());
    let kept = transport(settings(), &dns_server).with_policy_store(store.clone());
    temporary(&result(&deliver(&kept, STS, vec![mx_job(STS)]).await, 1, 1));
    assert!(
        server
            .sessions()
            .await
            .iter()
            .all(|s| s.messages.is_empty())
    );
    // Without the store the policy would have been lost: delivered in clear.
    let forgetful = transport(settings(), &dns_server);
    let r = deliver(&forgetful, STS, vec![mx_job(STS)]).await;
    assert_delivered(&result(&r, 1, 1), "mx.sts.test [127.0.0.1]", false);
}

#[tokio::test]
async fn mta_sts_enforce_delivers_over_verified_tls_and_caches_the_policy() {
    let (dns_server, dir) = (TestDns::start().unwrap(), tempfile::tempdir().unwrap());
    let (mx_id, web_id) = (identity(STS_MX), identity(STS_WEB));
    let web = PolicyServer::start(&web_id, "200 OK", &policy("enforce", "*.sts.test"));
    let server = FakeServer::start(vec![Script::new().starttls(StartTls::Works, &mx_id)]);
    let t = sts_setup(
        &dns_server,
        "1",
        server.port(),
        &web,
        &[&mx_id, &web_id],
        dir.path(),
    );

    for _ in 0..2 {
        let results = deliver(&t, STS, vec![mx_job(STS)]).await;
        assert_delivered(&result(&results, 1, 1), "mx.sts.test [127.0.0.1]", false);
    }
    let sessions = server.sessions().await;
    assert_eq!(sessions.len(), 2);
    assert!(sessions.iter().all(|s| s.tls && s.messages.len() == 1));
    assert_eq!(
        web.requests(),
        1,
        "the policy is cached while its id stands"
    );
    // A new id: fetched again.
    dns_server.remove(&format!("_mta-sts.{STS}"));
    dns_server.add_txt(&format!("_mta-sts.{STS}"), "v=STSv1; id=2");
    deliver(&t, STS, vec![mx_job(STS)]).await;
    assert_eq!(web.requests(), 2);
}

#[tokio::test]
async fn mta_sts_enforce_refuses_clear_text_unverified_and_unnamed_hosts() {
    let (mx_id, web_id) = (identity(STS_MX), identity(STS_WEB));
    let cases: [(&str, Script, &str, &str); 3] = [
        // The MX offers no STARTTLS: no clear-text fallback.
        ("no STARTTLS", Script::new(), "*.sts.test", ""),
        // Its certificate is for another name (and trusted): refused.
        (
            "wrong name",
            Script::new().starttls(StartTls::Works, &identity("other.test")),
            "mx.sts.test",
            "",
        ),
        // The policy names other hosts: not even a connection.
        ("not named", Script::new(), "mail.sts.test", "4.7.5"),
    ];
    for (what, script, mx, status) in cases {
        let (dns_server, dir) = (TestDns::start().unwrap(), tempfile::tempdir().unwrap());
        let web = PolicyServer::start(&web_id, "200 OK", &policy("enforce", mx));
        let server = FakeServer::start(vec![script.clone()]);
        let other = identity("other.test");
        let t = sts_setup(
            &dns_server,
            "1",
            server.port(),
            &web,
            &[&mx_id, &web_id, &other],
            dir.path(),
        );
        let results = deliver(&t, STS, vec![mx_job(STS)]).await;
        let f = temporary(&result(&results, 1, 1));
        if !status.is_empty() {
            assert_eq!(f.status, status, "{what}: {f:?}");
            assert!(f.text.contains("MTA-STS"), "{what}: {}", f.text);
        }
        let sessions = server.sessions().await;
        assert!(
            sessions.iter().all(|s| s.messages.is_empty()),
            "{what}: delivered anyway"
        );
        if status == "4.7.5" {
            assert!(sessions.is_empty(), "{what}: connected");
        }
    }
}

#[tokio::test]
async fn mta_sts_testing_mode_and_unusable_policies_deliver_as_before() {
    let (mx_id, web_id) = (identity(STS_MX), identity(STS_WEB));
    let untrusted = identity(STS_WEB);
    let cases: [(&str, &Identity, &'static str, String); 4] = [
        (
            "testing",
            &web_id,
            "200 OK",
            policy("testing", "mail.sts.test"),
        ),
        (
            "404",
            &web_id,
            "404 Not Found",
            policy("enforce", "mail.sts.test"),
        ),
        (
            "bad policy",
            &web_id,
            "200 OK",
            "version: STSv1\r\nmode: enforce\r\n".into(),
        ),
        // A policy server whose certificate we do not trust is no policy.
        (
            "untrusted",
            &untrusted,
            "200 OK",
            policy("enforce", "mail.sts.test"),
        ),
    ];
    for (what, web_identity, status, body) in cases {
        let (dns_server, dir) = (TestDns::start().unwrap(), tempfile::tempdir().unwrap());
        let web = PolicyServer::start(web_identity, status, &body);
        // Clear text only: what enforce would refuse.
        let server = FakeServer::start(vec![Script::new()]);
        let t = sts_setup(
            &dns_server,
            "1",
            server.port(),
            &web,
            &[&mx_id, &web_id],
            dir.path(),
        );
        let results = deliver(&t, STS, vec![mx_job(STS)]).await;
        assert_delivered(&result(&results, 1, 1), "mx.sts.test [127.0.0.1]", false);
        assert_eq!(server.sessions().await[0].messages.len(), 1, "{what}");
        let asked = usize::from(what != "untrusted");
        assert_eq!(web.requests(), asked, "{what}: the policy was asked for");
    }
}
