//! Browsing mail on an IMAP server (RFC 3501 IMAP4rev1, RFC 9051 IMAP4rev2),
//! pochta or any other: the mail stays on the server.
//!
//! Only the base protocol is assumed. Extensions are used when CAPABILITY
//! offers them, with a fallback otherwise:
//!
//! | extension | used for | without it |
//! |---|---|---|
//! | STARTTLS, AUTH=PLAIN, SASL-IR | logging in | LOGIN (never in clear text unless `plain`) |
//! | LITERAL+ / LITERAL- | sending literals without a round trip | waiting for `+` |
//! | ESEARCH (RFC 4731) | compact UID lists (`RETURN (ALL)`) | `* SEARCH` |
//! | MOVE (RFC 6851) | moving | COPY, `\Deleted`, expunge |
//! | UIDPLUS (RFC 4315) | new ids after a move (COPYUID), `UID EXPUNGE` | searching the Message-ID; EXPUNGE that spares other `\Deleted` messages |
//! | SPECIAL-USE (RFC 6154) | folder roles | well-known names (`Sent`, `Trash`…) |
//! | LIST-STATUS (RFC 5819) | counts in one round trip | STATUS per folder |
//!
//! **Ids** are `FOLDER/UID`, e.g. `INBOX/42` or `Archive/2024/7` (the folder is
//! everything before the last `/`; folder names use `/` as separator whatever
//! the server's delimiter). A bare `42` means `INBOX/42`. UIDs are stable for
//! as long as the folder's UIDVALIDITY is; they are never sequence numbers.
//!
//! **Newest first** means highest UID first (arrival order, the order that
//! JMAP's `receivedAt` gives too), on every server, rather than SORT's Date
//! header order, whose ties and missing dates differ between servers.

pub(crate) mod utf7;
pub(crate) mod wire;

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use mail_parser::MessageParser;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::backend::{FlagChange, Folder, MailBackend, Query, Summary};
use crate::error::{ClientError, Result};
use crate::maildir::{format_addr, page, to_offset_datetime};
use crate::tls::{Endpoint, Login, Security, Stream};
use wire::{Framer, Response, Status, Value};

/// How long the server may stay silent while we wait for a response.
pub const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// How long writing a command may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(120);
/// The most bytes of untagged responses kept for one command (a hostile
/// server streaming `* 1 EXISTS` forever runs into it).
const MAX_COLLECTED: usize = 1 << 30;
/// The most UIDs one search result may expand to.
const MAX_UIDS: usize = 10_000_000;
/// UIDs per `UID FETCH` (keeps command lines short for servers' limits).
const FETCH_BATCH: usize = 500;

/// The folder role (lower case) that a well-known folder name suggests, for
/// servers without SPECIAL-USE and for the local Maildir.
pub(crate) fn role_for_name(name: &str) -> Option<&'static str> {
    let n = name
        .strip_prefix("INBOX/")
        .or_else(|| name.strip_prefix("INBOX."))
        .unwrap_or(name)
        .to_lowercase();
    Some(match n.as_str() {
        "sent" | "sent messages" | "sent items" | "sent mail" | "отправленные" => {
            "sent"
        }
        "trash" | "deleted messages" | "deleted items" | "bin" | "корзина" | "удалённые"
        | "удаленные" => "trash",
        "drafts" | "draft" | "черновики" => "drafts",
        "junk" | "spam" | "junk e-mail" | "junk mail" | "спам" => "junk",
        "archive" | "archives" | "архив" => "archive",
        _ => return None,
    })
}

/// One piece of a command: text as is, or a string sent as a literal.
enum Part {
    Text(String),
    Literal(Vec<u8>),
}

/// Builds command arguments.
#[derive(Default)]
struct Cmd(Vec<Part>);

impl Cmd {
    fn new(text: &str) -> Cmd {
        Cmd(vec![Part::Text(text.to_string())])
    }

    /// Appends ` text` (an atom, a number, a list written by us).
    fn text(mut self, text: &str) -> Cmd {
        self.0.push(Part::Text(format!(" {text}")));
        self
    }

    /// Appends ` string` as a quoted string when it can be one, else a literal.
    fn string(mut self, s: &[u8]) -> Cmd {
        let quotable = s.len() <= 1000
            && s.iter()
                .all(|&b| (0x01..0x80).contains(&b) && b != b'\r' && b != b'\n');
        if quotable {
            let mut q = String::from(" \"");
            for &b in s {
                if b == b'"' || b == b'\\' {
                    q.push('\\');
                }
                q.push(b as char);
            }
            q.push('"');
            self.0.push(Part::Text(q));
        } else {
            self.0.push(Part::Text(" ".into()));
            self.0.push(Part::Literal(s.to_vec()));
        }
        self
    }

    /// Appends ` {n}\r\nbytes`: always a literal (a message for APPEND).
    fn literal(mut self, bytes: &[u8]) -> Cmd {
        self.0.push(Part::Text(" ".into()));
        self.0.push(Part::Literal(bytes.to_vec()));
        self
    }
}

/// A finished command: its tagged status and the untagged responses seen
/// while it ran.
#[derive(Debug)]
struct Done {
    status: Status,
    code: Option<Vec<Value>>,
    text: String,
    untagged: Vec<Response>,
}

impl Done {
    /// Whether the tagged response or an untagged one carries code `name`.
    fn code(&self, name: &str) -> Option<&[Value]> {
        let tagged = self
            .code
            .as_deref()
            .filter(|c| c.first().is_some_and(|v| v.is(name)));
        tagged.or_else(|| {
            self.untagged.iter().find_map(|r| match r {
                Response::Status {
                    status: Status::Ok,
                    code: Some(c),
                    ..
                } if c.first().is_some_and(|v| v.is(name)) => Some(c.as_slice()),
                _ => None,
            })
        })
    }

    /// Untagged data responses whose first (or, for `* 3 FETCH`, second)
    /// value is `name`.
    fn data<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [Value]> + 'a {
        self.untagged.iter().filter_map(move |r| match r {
            Response::Data(v)
                if v.first().is_some_and(|x| x.is(name))
                    || v.get(1).is_some_and(|x| x.is(name)) =>
            {
                Some(v.as_slice())
            }
            _ => None,
        })
    }
}

/// The connection: bytes in through the [`Framer`], commands out.
struct Conn {
    stream: Option<Stream>,
    framer: Framer,
    server: String,
    next_tag: u32,
    literal_plus: bool,
    literal_minus: bool,
    bye: Option<String>,
    buf: Vec<u8>,
}

impl Conn {
    fn new(stream: Stream, server: String) -> Conn {
        Conn {
            stream: Some(stream),
            framer: Framer::default(),
            server,
            next_tag: 1,
            literal_plus: false,
            literal_minus: false,
            bye: None,
            buf: vec![0; 64 * 1024],
        }
    }

    fn error(&self, message: impl Into<String>) -> ClientError {
        ClientError::protocol(self.server.clone(), message)
    }

    fn stream(&mut self) -> Result<&mut Stream> {
        match self.stream.as_mut() {
            Some(s) => Ok(s),
            None => Err(ClientError::protocol(
                self.server.clone(),
                "the connection is closed",
            )),
        }
    }

    fn is_tls(&self) -> bool {
        self.stream.as_ref().is_some_and(Stream::is_tls)
    }

    /// The next response and its size on the wire.
    async fn read(&mut self) -> Result<(Response, usize)> {
        loop {
            match self.framer.next() {
                Ok(Some(bytes)) => {
                    return match wire::parse(&bytes) {
                        Ok(r) => {
                            if let Response::Status {
                                status: Status::Bye,
                                text,
                                ..
                            } = &r
                            {
                                self.bye = Some(text.clone());
                            }
                            Ok((r, bytes.len()))
                        }
                        // An untagged response we cannot parse is one we did
                        // not ask for (RFC 9051 §7): skip it.
                        Err(_) if bytes.starts_with(b"* ") => {
                            Ok((Response::Data(Vec::new()), bytes.len()))
                        }
                        Err(e) => {
                            self.stream = None;
                            Err(self.error(e.0))
                        }
                    };
                }
                Ok(None) => {}
                Err(e) => {
                    self.stream = None;
                    return Err(self.error(e.0));
                }
            }
            let mut buf = std::mem::take(&mut self.buf);
            let stream = self.stream()?;
            let read = tokio::time::timeout(READ_TIMEOUT, stream.read(&mut buf)).await;
            let n = match read {
                Ok(Ok(0)) => {
                    self.buf = buf;
                    self.stream = None;
                    let why = match &self.bye {
                        Some(text) => format!("the server closed the connection: {text}"),
                        None => "the server closed the connection unexpectedly".into(),
                    };
                    return Err(self.error(why));
                }
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    self.buf = buf;
                    self.stream = None;
                    return Err(self.error(format!("connection lost: {e}")));
                }
                Err(_) => {
                    self.buf = buf;
                    self.stream = None;
                    return Err(
                        self.error(format!("no answer for {} seconds", READ_TIMEOUT.as_secs()))
                    );
                }
            };
            self.framer.push(&buf[..n]);
            self.buf = buf;
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let stream = self.stream()?;
        let written = tokio::time::timeout(WRITE_TIMEOUT, async {
            stream.write_all(bytes).await?;
            stream.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.stream = None;
                Err(self.error(format!("connection lost: {e}")))
            }
            Err(_) => {
                self.stream = None;
                Err(self.error("the server does not read what we send"))
            }
        }
    }

    fn tag(&mut self) -> String {
        let tag = format!("P{}", self.next_tag);
        self.next_tag = self.next_tag.wrapping_add(1);
        tag
    }

    /// Runs one command to its tagged response.
    async fn run(&mut self, cmd: Cmd) -> Result<Done> {
        let tag = self.tag();
        let mut out = format!("{tag} ").into_bytes();
        let mut untagged = Vec::new();
        let mut collected = 0usize;
        for part in cmd.0 {
            match part {
                Part::Text(t) => out.extend_from_slice(t.as_bytes()),
                Part::Literal(bytes) => {
                    // RFC 7888: LITERAL+ for any size, LITERAL- up to 4096.
                    let nonsync = self.literal_plus || (self.literal_minus && bytes.len() <= 4096);
                    if nonsync {
                        out.extend_from_slice(format!("{{{}+}}\r\n", bytes.len()).as_bytes());
                    } else {
                        out.extend_from_slice(format!("{{{}}}\r\n", bytes.len()).as_bytes());
                        self.write(&out).await?;
                        out.clear();
                        // The server may refuse the literal with its tagged reply.
                        if let Some(done) = self
                            .await_continuation(&tag, &mut untagged, &mut collected)
                            .await?
                        {
                            return Ok(done);
                        }
                    }
                    out.extend_from_slice(&bytes);
                }
            }
        }
        out.extend_from_slice(b"\r\n");
        self.write(&out).await?;
        self.finish(&tag, untagged, collected).await
    }

    /// Reads up to the tagged response of `tag`.
    /// Reads until the server's `+` continuation (`None`), keeping untagged
    /// responses; the command's tagged reply instead means it was refused
    /// (`Some`): a literal the server won't take, or a SASL exchange it ends.
    async fn await_continuation(
        &mut self,
        tag: &str,
        untagged: &mut Vec<Response>,
        collected: &mut usize,
    ) -> Result<Option<Done>> {
        loop {
            let (r, n) = self.read().await?;
            match r {
                Response::Continue(_) => return Ok(None),
                Response::Tagged {
                    tag: t,
                    status,
                    code,
                    text,
                } if t == tag => {
                    return Ok(Some(Done {
                        status,
                        code,
                        text,
                        untagged: std::mem::take(untagged),
                    }));
                }
                other => self.keep(untagged, collected, other, n)?,
            }
        }
    }

    async fn finish(
        &mut self,
        tag: &str,
        mut untagged: Vec<Response>,
        mut collected: usize,
    ) -> Result<Done> {
        loop {
            let (r, n) = self.read().await?;
            match r {
                Response::Tagged {
                    tag: t,
                    status,
                    code,
                    text,
                } if t == tag => {
                    return Ok(Done {
                        status,
                        code,
                        text,
                        untagged,
                    });
                }
                Response::Tagged { .. } => {}
                Response::Continue(_) => {
                    // A continuation we did not ask for: answer nothing more
                    // than an empty line would mean; give up instead.
                    self.stream = None;
                    return Err(self.error("the server asked for data we did not announce"));
                }
                other => self.keep(&mut untagged, &mut collected, other, n)?,
            }
        }
    }

    fn keep(
        &mut self,
        untagged: &mut Vec<Response>,
        collected: &mut usize,
        r: Response,
        n: usize,
    ) -> Result<()> {
        *collected += n;
        if *collected > MAX_COLLECTED {
            self.stream = None;
            return Err(self.error("the server sent too much data for one command"));
        }
        untagged.push(r);
        Ok(())
    }

    /// `AUTHENTICATE PLAIN`, with the initial response on the command line
    /// when the server offers SASL-IR (RFC 4959).
    async fn authenticate_plain(&mut self, login: &Login, sasl_ir: bool) -> Result<Done> {
        let mut plain = Vec::new();
        plain.push(0);
        plain.extend_from_slice(login.user.as_bytes());
        plain.push(0);
        plain.extend_from_slice(login.password.as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(plain);
        let tag = self.tag();
        if sasl_ir {
            self.write(format!("{tag} AUTHENTICATE PLAIN {b64}\r\n").as_bytes())
                .await?;
            return self.finish(&tag, Vec::new(), 0).await;
        }
        self.write(format!("{tag} AUTHENTICATE PLAIN\r\n").as_bytes())
            .await?;
        let mut untagged = Vec::new();
        let mut collected = 0;
        if let Some(done) = self
            .await_continuation(&tag, &mut untagged, &mut collected)
            .await?
        {
            return Ok(done);
        }
        self.write(format!("{b64}\r\n").as_bytes()).await?;
        loop {
            let (r, n) = self.read().await?;
            match r {
                Response::Tagged {
                    tag: t,
                    status,
                    code,
                    text,
                } if t == tag => {
                    return Ok(Done {
                        status,
                        code,
                        text,
                        untagged,
                    });
                }
                // PLAIN has one step: a second challenge is answered with the
                // cancel line (RFC 3501 §6.2.2).
                Response::Continue(_) => self.write(b"*\r\n").await?,
                other => self.keep(&mut untagged, &mut collected, other, n)?,
            }
        }
    }

    /// `CAPABILITY`, upper-cased.
    async fn capability(&mut self) -> Result<Vec<String>> {
        let done = self.run(Cmd::new("CAPABILITY")).await?;
        if done.status != Status::Ok {
            return Err(self.error(format!("CAPABILITY failed: {}", done.text)));
        }
        let caps = done
            .data("CAPABILITY")
            .flat_map(|v| v.iter().skip(1))
            .filter_map(Value::atom)
            .map(str::to_ascii_uppercase)
            .collect();
        Ok(caps)
    }
}

/// Capabilities in a `[CAPABILITY …]` response code.
fn caps_from_code(code: Option<&[Value]>) -> Option<Vec<String>> {
    let code = code?;
    if !code.first()?.is("CAPABILITY") {
        return None;
    }
    Some(
        code.iter()
            .skip(1)
            .filter_map(Value::atom)
            .map(str::to_ascii_uppercase)
            .collect(),
    )
}

/// A mailbox as LIST described it.
#[derive(Debug, Clone)]
struct Mailbox {
    /// Decoded, `/`-separated.
    name: String,
    /// As the server spells it.
    wire: Vec<u8>,
    /// Attributes, lower case (`\noselect`, `\sent`).
    attrs: Vec<String>,
}

/// The IMAP backend: one logged-in connection.
pub struct ImapBackend {
    conn: Conn,
    caps: Vec<String>,
    disabled: Vec<String>,
    /// Mailbox names travel as UTF-8 (IMAP4rev2-only server) rather than
    /// modified UTF-7.
    utf8_names: bool,
    /// The last LIST, to map folder names to the server's spelling.
    mailboxes: Vec<Mailbox>,
    /// The hierarchy delimiter (from the last LIST).
    delimiter: Option<u8>,
    /// The wire name of the selected mailbox.
    selected: Option<Vec<u8>>,
}

impl std::fmt::Debug for ImapBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapBackend")
            .field("server", &self.conn.server)
            .field("caps", &self.caps)
            .finish_non_exhaustive()
    }
}

impl ImapBackend {
    /// Connects, secures the connection as `endpoint` says (STARTTLS when
    /// `starttls`; no password is ever sent in clear text unless `plain`) and
    /// logs in with AUTHENTICATE PLAIN or LOGIN.
    pub async fn connect(endpoint: &Endpoint, login: &Login) -> Result<ImapBackend> {
        let stream = Stream::connect(endpoint).await?;
        let mut conn = Conn::new(stream, endpoint.display());
        let (greeting, _) = conn.read().await?;
        let (status, code, text) = match greeting {
            Response::Status { status, code, text } => (status, code, text),
            _ => return Err(conn.error("the server did not greet like an IMAP server")),
        };
        match status {
            Status::Ok | Status::Preauth => {}
            _ => return Err(conn.error(format!("the server refused the connection: {text}"))),
        }
        let preauth = status == Status::Preauth;
        let mut caps = match caps_from_code(code.as_deref()) {
            Some(c) => c,
            None => conn.capability().await?,
        };
        if endpoint.security == Security::Starttls && !conn.is_tls() {
            if preauth {
                return Err(conn.error(
                    "the server logged us in before STARTTLS (PREAUTH): refusing to go on without TLS",
                ));
            }
            if !caps.iter().any(|c| c == "STARTTLS") {
                return Err(conn.error(
                    "the server does not offer STARTTLS; use security `tls` (port 993) instead",
                ));
            }
            let done = conn.run(Cmd::new("STARTTLS")).await?;
            if done.status != Status::Ok {
                return Err(conn.error(format!("STARTTLS refused: {}", done.text)));
            }
            if conn.framer.has_pending() {
                // RFC 3501 §6.2.1 / RFC 2595 §3.1: bytes before the handshake
                // would be trusted as if they came over TLS.
                return Err(conn.error("the server sent data after accepting STARTTLS"));
            }
            let plain = conn.stream.take().ok_or_else(|| conn.error("closed"))?;
            conn.stream = Some(plain.starttls(endpoint).await?);
            // Capabilities from before TLS must be discarded.
            caps = conn.capability().await?;
        }
        if !conn.is_tls() && endpoint.security != Security::Plain {
            return Err(conn.error("refusing to log in without TLS"));
        }
        conn.literal_plus = caps.iter().any(|c| c == "LITERAL+");
        conn.literal_minus = caps.iter().any(|c| c == "LITERAL-");
        if !preauth {
            let done = if caps.iter().any(|c| c == "AUTH=PLAIN") {
                let ir = caps.iter().any(|c| c == "SASL-IR");
                conn.authenticate_plain(login, ir).await?
            } else if caps.iter().any(|c| c == "LOGINDISABLED") {
                return Err(
                    conn.error("the server allows no login here (LOGINDISABLED and no AUTH=PLAIN)")
                );
            } else {
                let cmd = Cmd::new("LOGIN")
                    .string(login.user.as_bytes())
                    .string(login.password.as_bytes());
                conn.run(cmd).await?
            };
            if done.status != Status::Ok {
                return Err(ClientError::Auth {
                    server: conn.server.clone(),
                    user: login.user.clone(),
                    reply: done.text,
                });
            }
            caps = match caps_from_code(done.code.as_deref()) {
                Some(c) => c,
                None => conn.capability().await?,
            };
        }
        conn.literal_plus = caps.iter().any(|c| c == "LITERAL+");
        conn.literal_minus = caps.iter().any(|c| c == "LITERAL-");
        let utf8_names =
            caps.iter().any(|c| c == "IMAP4REV2") && !caps.iter().any(|c| c == "IMAP4REV1");
        Ok(ImapBackend {
            conn,
            caps,
            disabled: Vec::new(),
            utf8_names,
            mailboxes: Vec::new(),
            delimiter: None,
            selected: None,
        })
    }

    /// Stops using the named extensions (`MOVE`, `UIDPLUS`, `ESEARCH`,
    /// `LIST-STATUS`, `SPECIAL-USE`, `LITERAL+`…) even though the server
    /// offers them: a workaround for servers with broken extensions, and how
    /// the tests exercise the fallbacks against a full-featured server.
    pub fn disable_extensions(&mut self, names: &[&str]) {
        for n in names {
            let n = n.to_ascii_uppercase();
            if n == "LITERAL+" {
                self.conn.literal_plus = false;
            }
            if n == "LITERAL-" {
                self.conn.literal_minus = false;
            }
            self.disabled.push(n);
        }
    }

    /// The server's capabilities (upper case), as last announced.
    pub fn capabilities(&self) -> &[String] {
        &self.caps
    }

    fn has(&self, cap: &str) -> bool {
        self.caps.iter().any(|c| c == cap) && !self.disabled.iter().any(|c| c == cap)
    }

    fn error(&self, message: impl Into<String>) -> ClientError {
        self.conn.error(message)
    }

    /// A folder name as we show it, from the server's spelling.
    fn display_name(&self, wire: &[u8], delimiter: Option<u8>) -> String {
        let s = String::from_utf8_lossy(wire);
        let mut name = if self.utf8_names {
            s.into_owned()
        } else {
            utf7::decode(&s)
        };
        if name.eq_ignore_ascii_case("INBOX") {
            return "INBOX".into();
        }
        if let Some(d) = delimiter.filter(|&d| d != b'/' && d.is_ascii()) {
            name = name.replace(d as char, "/");
        }
        name
    }

    /// Runs LIST (with counts when `status`), refreshing the name map.
    async fn list_mailboxes(&mut self, status: bool) -> Result<Vec<(Mailbox, Option<(u64, u64)>)>> {
        let list_status = status && self.has("LIST-STATUS");
        let mut cmd = Cmd::new("LIST \"\" \"*\"");
        if list_status {
            if self.has("SPECIAL-USE") {
                cmd = cmd.text("RETURN (SPECIAL-USE STATUS (MESSAGES UNSEEN))");
            } else {
                cmd = cmd.text("RETURN (STATUS (MESSAGES UNSEEN))");
            }
        }
        let done = self.conn.run(cmd).await?;
        if done.status != Status::Ok {
            return Err(self.error(format!("LIST failed: {}", done.text)));
        }
        let mut boxes = Vec::new();
        for v in done.data("LIST") {
            // * LIST (attrs) delimiter name [extended data]
            let (Some(attrs), Some(delim), Some(name)) = (
                v.get(1).and_then(Value::list),
                v.get(2),
                v.get(3).and_then(Value::bytes),
            ) else {
                continue;
            };
            let delimiter = delim.bytes().and_then(|d| d.first().copied());
            if self.delimiter.is_none() {
                self.delimiter = delimiter;
            }
            let attrs: Vec<String> = attrs
                .iter()
                .filter_map(Value::atom)
                .map(str::to_ascii_lowercase)
                .collect();
            boxes.push(Mailbox {
                name: self.display_name(name, delimiter),
                wire: name.to_vec(),
                attrs,
            });
        }
        let mut counts = Vec::new();
        for v in done.data("STATUS") {
            if let Some(c) = status_counts(v) {
                counts.push(c);
            }
        }
        self.mailboxes = boxes.clone();
        let mut out = Vec::new();
        for b in boxes {
            let c = counts.iter().find(|(w, _)| *w == b.wire).map(|(_, c)| *c);
            out.push((b, c));
        }
        Ok(out)
    }

    /// The server's spelling of folder `name`, if it exists.
    async fn resolve(&mut self, name: &str) -> Result<Option<Vec<u8>>> {
        let find = |boxes: &[Mailbox]| {
            boxes
                .iter()
                .find(|b| {
                    b.name == name
                        || (name.eq_ignore_ascii_case("INBOX")
                            && b.name.eq_ignore_ascii_case("INBOX"))
                })
                .filter(|b| {
                    !b.attrs
                        .iter()
                        .any(|a| a == "\\noselect" || a == "\\nonexistent")
                })
                .map(|b| b.wire.clone())
        };
        if let Some(w) = find(&self.mailboxes) {
            return Ok(Some(w));
        }
        self.list_mailboxes(false).await?;
        Ok(find(&self.mailboxes))
    }

    /// Selects folder `name` (unless it is selected already).
    async fn select(&mut self, name: &str) -> Result<()> {
        let wire = match self.resolve(name).await? {
            Some(w) => w,
            None => return Err(ClientError::NoSuchFolder(name.to_string())),
        };
        if self.selected.as_ref() == Some(&wire) {
            return Ok(());
        }
        // A failed SELECT leaves no mailbox selected (RFC 3501 §6.3.1).
        self.selected = None;
        let done = self.conn.run(Cmd::new("SELECT").string(&wire)).await?;
        if done.status != Status::Ok {
            return Err(ClientError::NoSuchFolder(name.to_string()));
        }
        self.selected = Some(wire);
        Ok(())
    }

    /// `UID SEARCH` with `keys`, the UIDs found (ESEARCH or SEARCH answer).
    async fn search(&mut self, keys: Cmd, non_ascii: bool) -> Result<Vec<u32>> {
        let mut cmd = Cmd::new("UID SEARCH");
        if self.has("ESEARCH") {
            cmd = cmd.text("RETURN (ALL)");
        }
        if non_ascii {
            cmd = cmd.text("CHARSET UTF-8");
        }
        cmd.0.extend(keys.0);
        let done = self.conn.run(cmd).await?;
        if done.status != Status::Ok {
            if done.code("BADCHARSET").is_some() {
                return Err(self.error(format!(
                    "the server cannot search for non-ASCII text: {}",
                    done.text
                )));
            }
            return Err(self.error(format!("SEARCH failed: {}", done.text)));
        }
        let mut uids = Vec::new();
        for v in done.data("SEARCH") {
            uids.extend(
                v.iter()
                    .skip(1)
                    .filter_map(Value::number)
                    .filter_map(|n| u32::try_from(n).ok()),
            );
            if uids.len() > MAX_UIDS {
                return Err(self.error("too many search results"));
            }
        }
        for v in done.data("ESEARCH") {
            // * ESEARCH (TAG "x") UID ALL 1:3,5 COUNT 4
            let mut it = v.iter().skip(1).peekable();
            while let Some(item) = it.next() {
                if item.is("ALL")
                    && let Some(set) = it.next().and_then(Value::atom)
                {
                    let more = wire::parse_uid_set(set, MAX_UIDS.saturating_sub(uids.len()))
                        .map_err(|e| self.error(e.0))?;
                    uids.extend(more);
                }
            }
        }
        uids.sort_unstable();
        uids.dedup();
        Ok(uids)
    }

    /// Which of `uids` exist in the selected folder; the first missing one is
    /// an error naming `ids[i]`.
    async fn check_exist(&mut self, folder: &str, uids: &[u32]) -> Result<()> {
        let found = self
            .search(
                Cmd::default().text(&format!("UID {}", wire::uid_set(uids))),
                false,
            )
            .await?;
        if let Some(missing) = uids.iter().find(|u| found.binary_search(u).is_err()) {
            return Err(ClientError::NoSuchMessage(format!("{folder}/{missing}")));
        }
        Ok(())
    }

    /// Removes `uids` (already `\Deleted`) from the selected folder, sparing
    /// other messages marked `\Deleted` when there is no `UID EXPUNGE`.
    async fn expunge_uids(&mut self, uids: &[u32]) -> Result<()> {
        let set = wire::uid_set(uids);
        if self.has("UIDPLUS") {
            let done = self.conn.run(Cmd::new("UID EXPUNGE").text(&set)).await?;
            return self.ok(done, "UID EXPUNGE");
        }
        let deleted = self.search(Cmd::default().text("DELETED"), false).await?;
        let others: Vec<u32> = deleted.into_iter().filter(|u| !uids.contains(u)).collect();
        if !others.is_empty() {
            let done = self
                .conn
                .run(
                    Cmd::new("UID STORE")
                        .text(&wire::uid_set(&others))
                        .text("-FLAGS.SILENT (\\Deleted)"),
                )
                .await?;
            self.ok(done, "STORE")?;
        }
        let done = self.conn.run(Cmd::new("EXPUNGE")).await?;
        let result = self.ok(done, "EXPUNGE");
        if !others.is_empty() {
            let done = self
                .conn
                .run(
                    Cmd::new("UID STORE")
                        .text(&wire::uid_set(&others))
                        .text("+FLAGS.SILENT (\\Deleted)"),
                )
                .await?;
            self.ok(done, "STORE")?;
        }
        result
    }

    fn ok(&self, done: Done, what: &str) -> Result<()> {
        if done.status == Status::Ok {
            Ok(())
        } else {
            Err(self.error(format!("{what} failed: {}", done.text)))
        }
    }

    /// The Message-IDs of `uids` in the selected folder.
    async fn message_ids(&mut self, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>> {
        let done = self
            .conn
            .run(
                Cmd::new("UID FETCH")
                    .text(&wire::uid_set(uids))
                    .text("(UID ENVELOPE)"),
            )
            .await?;
        let mut out = Vec::new();
        for v in done.data("FETCH") {
            let Some(items) = v.get(2).and_then(Value::list) else {
                continue;
            };
            let uid = fetch_item(items, "UID").and_then(Value::number);
            let mid = fetch_item(items, "ENVELOPE")
                .and_then(Value::list)
                .and_then(|e| e.get(9))
                .and_then(Value::bytes);
            if let (Some(uid), Some(mid)) = (uid, mid)
                && let Ok(uid) = u32::try_from(uid)
            {
                out.push((uid, mid.to_vec()));
            }
        }
        Ok(out)
    }
}

/// `(wire name, (messages, unseen))` from `* STATUS name (MESSAGES n UNSEEN m)`.
fn status_counts(v: &[Value]) -> Option<(Vec<u8>, (u64, u64))> {
    let name = v.get(1)?.bytes()?.to_vec();
    let items = v.get(2)?.list()?;
    let mut messages = 0;
    let mut unseen = 0;
    for pair in items.chunks(2) {
        if let [k, val] = pair {
            if k.is("MESSAGES") {
                messages = val.number().unwrap_or(0);
            } else if k.is("UNSEEN") {
                unseen = val.number().unwrap_or(0);
            }
        }
    }
    Some((name, (messages, unseen)))
}

/// The value of item `name` in a FETCH response's list.
fn fetch_item<'a>(items: &'a [Value], name: &str) -> Option<&'a Value> {
    items.chunks(2).find_map(|pair| match pair {
        [k, v] if k.atom().is_some_and(|a| a.eq_ignore_ascii_case(name)) => Some(v),
        _ => None,
    })
}

/// Splits an id into folder and UID (`INBOX/42`; a bare `42` is INBOX's).
fn parse_id(id: &str) -> Result<(String, u32)> {
    let (folder, uid) = match id.rsplit_once('/') {
        Some((f, u)) if !f.is_empty() => (f.to_string(), u),
        Some(_) => return Err(ClientError::NoSuchMessage(id.to_string())),
        None => ("INBOX".to_string(), id),
    };
    match uid.parse::<u32>() {
        Ok(u) if u > 0 => Ok((folder, u)),
        _ => Err(ClientError::NoSuchMessage(id.to_string())),
    }
}

/// Ids grouped by folder: each folder with `(index in the request, UID)`.
type Groups = Vec<(String, Vec<(usize, u32)>)>;

/// Groups ids by folder, keeping the order of first appearance.
fn group_ids(ids: &[String]) -> Result<Groups> {
    let mut groups: Groups = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let (folder, uid) = parse_id(id)?;
        match groups.iter_mut().find(|(f, _)| *f == folder) {
            Some((_, v)) => v.push((i, uid)),
            None => groups.push((folder, vec![(i, uid)])),
        }
    }
    Ok(groups)
}

/// A flag for STORE/APPEND: a system flag in its usual spelling, or a keyword
/// (atom characters only).
fn flag_atom(flag: &str) -> Result<String> {
    let system = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"];
    if let Some(s) = system.iter().find(|s| s.eq_ignore_ascii_case(flag)) {
        return Ok((*s).to_string());
    }
    let ok = !flag.is_empty()
        && !flag.starts_with('\\')
        && flag.bytes().all(|b| {
            b.is_ascii_graphic()
                && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
        });
    if ok {
        Ok(flag.to_string())
    } else {
        Err(ClientError::Usage(format!(
            "{flag:?} is not a valid IMAP flag or keyword"
        )))
    }
}

/// Decodes a header value (RFC 2047 encoded words) with mail-parser.
fn decode_header(raw: &[u8]) -> String {
    let mut hdr = b"Subject: ".to_vec();
    hdr.extend(
        raw.iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    hdr.extend_from_slice(b"\r\n\r\n");
    MessageParser::new()
        .parse_headers(&hdr)
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(raw).trim().to_string())
}

/// Formats an envelope address list (`((name adl mailbox host) …)`).
fn envelope_addresses(v: Option<&Value>) -> String {
    let Some(list) = v.and_then(Value::list) else {
        return String::new();
    };
    let mut out = Vec::new();
    for a in list {
        let Some(parts) = a.list() else { continue };
        let name = parts.first().and_then(Value::bytes).map(decode_header);
        let mailbox = parts.get(2).and_then(Value::bytes);
        let host = parts.get(3).and_then(Value::bytes);
        // Group start (host NIL) and end (mailbox NIL) markers: RFC 3501 §7.4.2.
        let (Some(mailbox), Some(host)) = (mailbox, host) else {
            continue;
        };
        let addr = format!(
            "{}@{}",
            String::from_utf8_lossy(mailbox),
            String::from_utf8_lossy(host)
        );
        out.push(format_addr(name.as_deref(), Some(&addr)));
    }
    out.join(", ")
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A date for SEARCH (`1-Feb-2024`).
fn search_date(d: time::Date) -> String {
    format!(
        "{}-{}-{}",
        d.day(),
        MONTHS[d.month() as usize - 1],
        d.year()
    )
}

/// Parses INTERNALDATE (`17-Jul-1996 02:44:25 -0700`).
fn parse_internal_date(s: &str) -> Option<OffsetDateTime> {
    let mut words = s.split_whitespace();
    let date = words.next()?;
    let clock = words.next()?;
    let zone = words.next()?;
    let mut d = date.split('-');
    let day: u8 = d.next()?.parse().ok()?;
    let mon = d.next()?;
    let year: i32 = d.next()?.parse().ok()?;
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(mon))? as u8 + 1;
    let mut c = clock.split(':');
    let h: u8 = c.next()?.parse().ok()?;
    let m: u8 = c.next()?.parse().ok()?;
    let sec: u8 = c.next()?.parse().ok()?;
    let (sign, hhmm) = zone.split_at_checked(1)?;
    let hhmm: i32 = hhmm.parse().ok().filter(|z| (0..=9999).contains(z))?;
    let secs = (hhmm / 100 * 3600 + hhmm % 100 * 60) * if sign == "-" { -1 } else { 1 };
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
    let clock = time::Time::from_hms(h, m, sec).ok()?;
    let off = time::UtcOffset::from_whole_seconds(secs).ok()?;
    Some(time::PrimitiveDateTime::new(date, clock).assume_offset(off))
}

/// A listing line from a FETCH response's items.
fn summary_from_fetch(folder: &str, items: &[Value]) -> Option<(u32, Summary)> {
    let uid = u32::try_from(fetch_item(items, "UID")?.number()?).ok()?;
    let flags = fetch_item(items, "FLAGS")
        .and_then(Value::list)
        .map(|l| {
            l.iter()
                .filter_map(Value::atom)
                .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let size = fetch_item(items, "RFC822.SIZE")
        .and_then(Value::number)
        .unwrap_or(0);
    let internal = fetch_item(items, "INTERNALDATE")
        .and_then(Value::bytes)
        .and_then(|b| parse_internal_date(&String::from_utf8_lossy(b)));
    let env = fetch_item(items, "ENVELOPE").and_then(Value::list);
    let field = |i: usize| env.and_then(|e| e.get(i));
    let date = field(0)
        .and_then(Value::bytes)
        .and_then(|d| mail_parser::DateTime::parse_rfc822(&String::from_utf8_lossy(d)))
        .and_then(|d| to_offset_datetime(&d))
        .or(internal);
    let subject = field(1)
        .and_then(Value::bytes)
        .map(decode_header)
        .unwrap_or_default();
    let from = envelope_addresses(field(2));
    Some((
        uid,
        Summary {
            id: format!("{folder}/{uid}"),
            folder: folder.to_string(),
            date,
            from,
            subject,
            flags,
            size,
        },
    ))
}

/// The SEARCH keys for `query`, and whether any is non-ASCII.
fn search_keys(query: &Query) -> (Cmd, bool) {
    let mut cmd = Cmd::default();
    let mut non_ascii = false;
    let mut any = false;
    if query.unread {
        cmd = cmd.text("UNSEEN");
        any = true;
    }
    if query.flagged {
        cmd = cmd.text("FLAGGED");
        any = true;
    }
    for (key, value) in [
        ("FROM", &query.from),
        ("TO", &query.to),
        ("SUBJECT", &query.subject),
        ("TEXT", &query.text),
    ] {
        if let Some(v) = value {
            non_ascii |= !v.is_ascii();
            cmd = cmd.text(key).string(v.as_bytes());
            any = true;
        }
    }
    if let Some(d) = query.since {
        cmd = cmd.text(&format!("SINCE {}", search_date(d)));
        any = true;
    }
    if let Some(d) = query.before {
        cmd = cmd.text(&format!("BEFORE {}", search_date(d)));
        any = true;
    }
    if !any {
        cmd = cmd.text("ALL");
    }
    (cmd, non_ascii)
}

#[async_trait]
impl MailBackend for ImapBackend {
    async fn folders(&mut self) -> Result<Vec<Folder>> {
        let boxes = self.list_mailboxes(true).await?;
        let mut out: Vec<(Folder, bool)> = Vec::new();
        for (b, counts) in boxes {
            if b.attrs
                .iter()
                .any(|a| a == "\\noselect" || a == "\\nonexistent")
            {
                continue;
            }
            let (total, unread) = match counts {
                Some(c) => c,
                None => {
                    let done = self
                        .conn
                        .run(Cmd::new("STATUS").string(&b.wire).text("(MESSAGES UNSEEN)"))
                        .await?;
                    done.data("STATUS")
                        .filter_map(status_counts)
                        .find(|(w, _)| *w == b.wire)
                        .map(|(_, c)| c)
                        .unwrap_or((0, 0))
                }
            };
            let special = b.attrs.iter().find_map(|a| {
                Some(match a.as_str() {
                    "\\sent" => "sent",
                    "\\trash" => "trash",
                    "\\drafts" => "drafts",
                    "\\junk" => "junk",
                    "\\archive" => "archive",
                    "\\all" => "all",
                    "\\flagged" => "flagged",
                    _ => return None,
                })
            });
            let role = if b.name == "INBOX" {
                Some("inbox")
            } else {
                special
            };
            out.push((
                Folder {
                    name: b.name,
                    role: role.map(str::to_string),
                    total,
                    unread,
                },
                special.is_some(),
            ));
        }
        // Well-known names for roles that no folder has from SPECIAL-USE.
        let taken: BTreeSet<String> = out.iter().filter_map(|(f, _)| f.role.clone()).collect();
        let mut guessed = BTreeSet::new();
        for (f, _) in out.iter_mut() {
            if f.role.is_none()
                && let Some(r) = role_for_name(&f.name)
                && !taken.contains(r)
                && guessed.insert(r)
            {
                f.role = Some(r.to_string());
            }
        }
        let mut folders: Vec<Folder> = out.into_iter().map(|(f, _)| f).collect();
        folders.sort_by(|a, b| (a.name != "INBOX", &a.name).cmp(&(b.name != "INBOX", &b.name)));
        Ok(folders)
    }

    async fn list(&mut self, query: &Query) -> Result<Vec<Summary>> {
        let folder = query.folder.clone().unwrap_or_else(|| "INBOX".into());
        let folder = if folder.eq_ignore_ascii_case("INBOX") {
            "INBOX".to_string()
        } else {
            folder
        };
        self.select(&folder).await?;
        let (keys, non_ascii) = search_keys(query);
        let mut uids = self.search(keys, non_ascii).await?;
        uids.reverse();
        let uids = page(uids, query);
        let mut found = Vec::new();
        for batch in uids.chunks(FETCH_BATCH) {
            let done = self
                .conn
                .run(
                    Cmd::new("UID FETCH")
                        .text(&wire::uid_set(batch))
                        .text("(UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)"),
                )
                .await?;
            self.ok_ref(&done, "FETCH")?;
            for v in done.data("FETCH") {
                if let Some(items) = v.get(2).and_then(Value::list)
                    && let Some(s) = summary_from_fetch(&folder, items)
                {
                    found.push(s);
                }
            }
        }
        // In the page's order; messages expunged meanwhile are left out.
        let mut out = Vec::new();
        for uid in uids {
            if let Some(pos) = found.iter().position(|(u, _)| *u == uid) {
                out.push(found.swap_remove(pos).1);
            }
        }
        Ok(out)
    }

    async fn fetch_raw(&mut self, id: &str) -> Result<Vec<u8>> {
        let (folder, uid) = parse_id(id)?;
        self.select(&folder).await?;
        let done = self
            .conn
            .run(
                Cmd::new("UID FETCH")
                    .text(&uid.to_string())
                    .text("(UID BODY.PEEK[])"),
            )
            .await?;
        self.ok_ref(&done, "FETCH")?;
        for v in done.data("FETCH") {
            let Some(items) = v.get(2).and_then(Value::list) else {
                continue;
            };
            if fetch_item(items, "UID").and_then(Value::number) != Some(u64::from(uid)) {
                continue;
            }
            let body = items.chunks(2).find_map(|pair| match pair {
                [k, v] if k.atom().is_some_and(|a| a.eq_ignore_ascii_case("BODY[]")) => Some(v),
                _ => None,
            });
            match body {
                Some(Value::Str(b)) => return Ok(b.clone()),
                Some(Value::Nil) => return Ok(Vec::new()),
                _ => {}
            }
        }
        Err(ClientError::NoSuchMessage(id.to_string()))
    }

    async fn flag(&mut self, ids: &[String], changes: &[FlagChange]) -> Result<()> {
        let mut add = Vec::new();
        let mut remove = Vec::new();
        for c in changes {
            let f = flag_atom(&c.flag)?;
            if c.add {
                add.push(f);
            } else {
                remove.push(f);
            }
        }
        for (folder, uids) in group_ids(ids)? {
            let uids: Vec<u32> = uids.into_iter().map(|(_, u)| u).collect();
            self.select(&folder).await?;
            self.check_exist(&folder, &uids).await?;
            let set = wire::uid_set(&uids);
            for (sign, flags) in [("+", &add), ("-", &remove)] {
                if flags.is_empty() {
                    continue;
                }
                let done = self
                    .conn
                    .run(
                        Cmd::new("UID STORE")
                            .text(&set)
                            .text(&format!("{sign}FLAGS.SILENT ({})", flags.join(" "))),
                    )
                    .await?;
                self.ok(done, "STORE")?;
            }
        }
        Ok(())
    }

    async fn move_to(&mut self, ids: &[String], folder: &str) -> Result<Vec<String>> {
        let dest_name = if folder.eq_ignore_ascii_case("INBOX") {
            "INBOX"
        } else {
            folder
        };
        let dest = self
            .resolve(dest_name)
            .await?
            .ok_or_else(|| ClientError::NoSuchFolder(folder.to_string()))?;
        let mut new_ids: Vec<Option<String>> = vec![None; ids.len()];
        let mut by_message_id: Vec<(usize, Vec<u8>)> = Vec::new();
        for (src, entries) in group_ids(ids)? {
            let uids: Vec<u32> = entries.iter().map(|(_, u)| *u).collect();
            self.select(&src).await?;
            self.check_exist(&src, &uids).await?;
            if self.resolve(&src).await? == Some(dest.clone()) {
                for (i, u) in &entries {
                    new_ids[*i] = Some(format!("{dest_name}/{u}"));
                }
                continue;
            }
            let uidplus = self.has("UIDPLUS");
            let mids = if uidplus {
                Vec::new()
            } else {
                self.message_ids(&uids).await?
            };
            let set = wire::uid_set(&uids);
            let done = if self.has("MOVE") {
                let done = self
                    .conn
                    .run(Cmd::new("UID MOVE").text(&set).string(&dest))
                    .await?;
                if done.status != Status::Ok && done.code("TRYCREATE").is_some() {
                    return Err(ClientError::NoSuchFolder(folder.to_string()));
                }
                self.ok_ref(&done, "MOVE")?;
                done
            } else {
                let done = self
                    .conn
                    .run(Cmd::new("UID COPY").text(&set).string(&dest))
                    .await?;
                if done.status != Status::Ok && done.code("TRYCREATE").is_some() {
                    return Err(ClientError::NoSuchFolder(folder.to_string()));
                }
                self.ok_ref(&done, "COPY")?;
                let stored = self
                    .conn
                    .run(
                        Cmd::new("UID STORE")
                            .text(&set)
                            .text("+FLAGS.SILENT (\\Deleted)"),
                    )
                    .await?;
                self.ok(stored, "STORE")?;
                self.expunge_uids(&uids).await?;
                done
            };
            // RFC 4315 §3: [COPYUID validity source-set dest-set], in order.
            if let Some(code) = done.code("COPYUID")
                && let (Some(from), Some(to)) = (
                    code.get(2).and_then(Value::atom),
                    code.get(3).and_then(Value::atom),
                )
                && let (Ok(from), Ok(to)) = (
                    wire::parse_uid_set(from, MAX_UIDS),
                    wire::parse_uid_set(to, MAX_UIDS),
                )
            {
                for (s, d) in from.iter().zip(to.iter()) {
                    for (i, u) in &entries {
                        if u == s {
                            new_ids[*i] = Some(format!("{dest_name}/{d}"));
                        }
                    }
                }
            }
            for (i, u) in &entries {
                if new_ids[*i].is_none()
                    && let Some((_, mid)) = mids.iter().find(|(m, _)| m == u)
                {
                    by_message_id.push((*i, mid.clone()));
                }
            }
        }
        if !by_message_id.is_empty() {
            // No UIDPLUS: find the copies by Message-ID (the highest UID is
            // the one just added).
            self.select(dest_name).await?;
            for (i, mid) in by_message_id {
                let found = self
                    .search(
                        Cmd::default().text("HEADER Message-ID").string(&mid),
                        !mid.is_ascii(),
                    )
                    .await?;
                if let Some(u) = found.last() {
                    new_ids[i] = Some(format!("{dest_name}/{u}"));
                }
            }
        }
        // Without UIDPLUS and without a Message-ID the new UID is unknown.
        Ok(new_ids
            .into_iter()
            .map(|n| n.unwrap_or_else(|| format!("{dest_name}/?")))
            .collect())
    }

    async fn expunge(&mut self, ids: &[String]) -> Result<()> {
        for (folder, entries) in group_ids(ids)? {
            let uids: Vec<u32> = entries.into_iter().map(|(_, u)| u).collect();
            self.select(&folder).await?;
            self.check_exist(&folder, &uids).await?;
            let done = self
                .conn
                .run(
                    Cmd::new("UID STORE")
                        .text(&wire::uid_set(&uids))
                        .text("+FLAGS.SILENT (\\Deleted)"),
                )
                .await?;
            self.ok(done, "STORE")?;
            self.expunge_uids(&uids).await?;
        }
        Ok(())
    }

    async fn append(&mut self, folder: &str, raw: &[u8], flags: &[String]) -> Result<()> {
        let wire = match self.resolve(folder).await? {
            Some(w) => w,
            None => return Err(ClientError::NoSuchFolder(folder.to_string())),
        };
        let flags: Vec<String> = flags
            .iter()
            .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
            .map(|f| flag_atom(f))
            .collect::<Result<_>>()?;
        let done = self
            .conn
            .run(
                Cmd::new("APPEND")
                    .string(&wire)
                    .text(&format!("({})", flags.join(" ")))
                    .literal(raw),
            )
            .await?;
        if done.status != Status::Ok && done.code("TRYCREATE").is_some() {
            return Err(ClientError::NoSuchFolder(folder.to_string()));
        }
        self.ok(done, "APPEND")
    }

    async fn close(&mut self) -> Result<()> {
        if self.conn.stream.is_some() {
            let _ = self.conn.run(Cmd::new("LOGOUT")).await;
        }
        if let Some(mut s) = self.conn.stream.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), s.shutdown()).await;
        }
        Ok(())
    }
}

impl ImapBackend {
    fn ok_ref(&self, done: &Done, what: &str) -> Result<()> {
        if done.status == Status::Ok {
            Ok(())
        } else {
            Err(self.error(format!("{what} failed: {}", done.text)))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
