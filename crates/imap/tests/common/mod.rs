//! An in-memory IMAP harness: the real session state machine and executor on a
//! temporary store, driven by transcripts, several sessions at once.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;

use pochta_addr::Address;
use pochta_imap::exec::{Executor, ImapSettings, Output, Transition, VecSink};
use pochta_proto_imap::frame::FrameLimits;
use pochta_proto_imap::session::{Action, AuthVerdict, Executed, Session, SessionConfig};
use pochta_store::{Delivery, DeliveryTarget, SqliteStore, Store};

pub const PASSWORD: &str = "secret";

/// A store with one account, alice@example.com.
pub struct World {
    pub _dir: tempfile::TempDir,
    pub store: Arc<dyn Store>,
    /// Shared by every client's sessions, as the server shares it.
    pub settings: Arc<ImapSettings>,
}

impl World {
    pub async fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
        store
            .create_account(pochta_store::NewAccount {
                address: Address::parse("alice@example.com").unwrap(),
                password_hash: "x".into(),
                quota: None,
            })
            .await
            .unwrap();
        World {
            _dir: dir,
            store,
            settings: Arc::new(ImapSettings {
                max_append: 1_000_000,
                light: Arc::new(pochta_store::LightRegistry::new()),
            }),
        }
    }

    pub async fn deliver(&self, raw: &str) {
        let account = self
            .store
            .account(&Address::parse("alice@example.com").unwrap())
            .await
            .unwrap()
            .unwrap();
        let raw = raw.replace('\n', "\r\n").into_bytes();
        self.store
            .deliver(Delivery {
                meta: pochta_message::parse(&raw),
                raw,
                internal_date: 1_790_000_000,
                targets: vec![DeliveryTarget::inbox(account.id)],
                outbound: None,
            })
            .await
            .unwrap();
    }

    /// A session already past TLS (tests of TLS rules use `client_plain`).
    pub fn client(&self) -> Client {
        Client::new(self.store.clone(), self.settings.clone(), true)
    }

    pub fn client_plain(&self) -> Client {
        Client::new(self.store.clone(), self.settings.clone(), false)
    }
}

/// One connection.
pub struct Client {
    store: Arc<dyn Store>,
    settings: Arc<ImapSettings>,
    pub session: Session,
    exec: Option<Executor>,
    pub closed: bool,
    pub compressed: bool,
}

impl Client {
    fn new(store: Arc<dyn Store>, settings: Arc<ImapSettings>, tls: bool) -> Client {
        let cfg = SessionConfig {
            starttls: true,
            limits: FrameLimits::default().with_append_limit(1_000_000),
            append_limit: 1_000_000,
            max_errors: 10,
            hostname: "imap.example.com".into(),
        };
        Client {
            store,
            settings,
            session: Session::new(cfg, tls),
            exec: None,
            closed: false,
            compressed: false,
        }
    }

    /// Sends `input` (CRLF added when missing) and returns the response lines.
    pub async fn send(&mut self, input: &str) -> Vec<String> {
        let mut bytes = input
            .replace("\r\n", "\n")
            .replace('\n', "\r\n")
            .into_bytes();
        if !bytes.ends_with(b"\r\n") {
            bytes.extend_from_slice(b"\r\n");
        }
        self.session.feed(&bytes);
        self.drive().await
    }

    /// Drives until the session needs input; returns what it wrote.
    pub async fn drive(&mut self) -> Vec<String> {
        let mut out: Vec<u8> = Vec::new();
        loop {
            match self.session.poll() {
                Action::NeedInput => break,
                Action::Close => {
                    self.closed = true;
                    break;
                }
                Action::StartTls => self.session.tls_established(),
                Action::Compress => {
                    self.compressed = true;
                    self.session.compress_started();
                }
                Action::Authenticate { credentials, .. } => {
                    let verdict = if credentials.password.expose() == PASSWORD {
                        let a =
                            self.store
                                .account(&Address::parse(&credentials.login).unwrap_or_else(|_| {
                                    Address::parse("nobody@x.example").unwrap()
                                }))
                                .await
                                .unwrap();
                        match a {
                            Some(a) => {
                                self.exec = Some(Executor::new(
                                    self.store.clone(),
                                    a,
                                    self.settings.clone(),
                                ));
                                AuthVerdict::Accept
                            }
                            None => AuthVerdict::Failed,
                        }
                    } else {
                        AuthVerdict::Failed
                    };
                    self.session.answer_auth(verdict);
                }
                Action::Execute(cmd) => {
                    out.append(&mut self.session.output);
                    let mut sink = VecSink::default();
                    let e = self.exec.as_mut().expect("logged in");
                    let t = {
                        let mut o = Output::new(&mut sink);
                        let t = e.execute(&cmd.tag, cmd.body, &mut o).await.unwrap();
                        o.flush().await.unwrap();
                        t
                    };
                    out.extend_from_slice(&sink.0);
                    self.session.executed(match t {
                        Transition::None => Executed::Same,
                        Transition::Selected => Executed::Selected,
                        Transition::Deselected => Executed::Deselected,
                        Transition::Bye => Executed::Bye,
                    });
                }
                Action::Idle => {
                    out.append(&mut self.session.output);
                    self.updates(&mut out).await;
                }
                Action::IdleDone => {
                    self.updates(&mut out).await;
                    self.session.idle_finished();
                }
            }
        }
        out.append(&mut self.session.output);
        split(&out)
    }

    /// What an IDLE wake-up would send now.
    pub async fn idle_wakeup(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        self.updates(&mut out).await;
        split(&out)
    }

    async fn updates(&mut self, out: &mut Vec<u8>) {
        if let Some(e) = self.exec.as_mut() {
            let mut sink = VecSink::default();
            {
                let mut o = Output::new(&mut sink);
                e.updates(true, &mut o).await.unwrap();
                o.flush().await.unwrap();
            }
            out.extend_from_slice(&sink.0);
        }
    }

    pub async fn login(&mut self) {
        self.drive().await;
        let r = self.send("l1 LOGIN alice@example.com secret").await;
        assert!(r.last().unwrap().starts_with("l1 OK"), "{r:?}");
    }
}

/// Splits output into lines; a literal's content stays with its line.
pub fn split(out: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(out);
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut rest: &str = &text;
    while let Some(pos) = rest.find("\r\n") {
        let line = &rest[..pos];
        current.push_str(line);
        rest = &rest[pos + 2..];
        // A line ending in {n} is followed by n octets that belong to it.
        if let Some(n) = literal_len(line) {
            let take = n.min(rest.len());
            current.push_str("\r\n");
            current.push_str(&rest[..take]);
            rest = &rest[take..];
            continue;
        }
        lines.push(std::mem::take(&mut current));
    }
    if !current.is_empty() || !rest.is_empty() {
        current.push_str(rest);
        lines.push(current);
    }
    lines
}

fn literal_len(line: &str) -> Option<usize> {
    let l = line.strip_suffix('}')?;
    let open = l.rfind('{')?;
    l[open + 1..].parse().ok()
}

/// Asserts `got` matches `expected` line by line; `*` in an expected line
/// matches any run of characters.
pub fn expect(got: &[String], expected: &[&str]) {
    let ok = got.len() == expected.len() && got.iter().zip(expected).all(|(g, e)| glob(e, g));
    assert!(
        ok,
        "\n--- expected\n{}\n--- got\n{}",
        expected.join("\n"),
        got.join("\n")
    );
}

fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i + 1 == parts.len() {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(p) => rest = &rest[p + part.len()..],
                None => return false,
            }
        }
    }
    rest.is_empty()
}
