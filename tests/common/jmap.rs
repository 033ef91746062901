//! A small blocking HTTPS client for the JMAP end-to-end tests: plain
//! requests, JMAP API calls, uploads and downloads, an EventSource reader and
//! a minimal WebSocket client (RFC 6455), all over rustls without certificate
//! checks (the server's certificate is self-signed).
//!
//! ```ignore
//! let jmap = server.jmap(USER);                      // Basic auth
//! let r = jmap.call(json!([["Core/echo", {"x": 1}, "c1"]]));
//! assert_eq!(r["methodResponses"][0][0], "Core/echo");
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use serde_json::{Value, json};

use super::{PASSWORD, Server};

/// The capabilities a mail client uses.
pub const USING: [&str; 3] = [
    "urn:ietf:params:jmap:core",
    "urn:ietf:params:jmap:mail",
    "urn:ietf:params:jmap:submission",
];

/// How a request authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    /// No Authorization header.
    None,
    /// `Basic` with a login and password.
    Basic(String, String),
    /// `Bearer` with a token.
    Bearer(String),
}

impl Auth {
    fn header(&self) -> Option<String> {
        match self {
            Auth::None => None,
            Auth::Basic(u, p) => Some(format!("Basic {}", STANDARD.encode(format!("{u}:{p}")))),
            Auth::Bearer(t) => Some(format!("Bearer {t}")),
        }
    }
}

/// A JMAP client for one user of a test server.
#[derive(Debug, Clone)]
pub struct Jmap {
    /// The `http` listener's port.
    pub port: u16,
    /// How requests authenticate.
    pub auth: Auth,
    /// Clear-text HTTP instead of TLS (for `[http] plain = true`).
    pub plain: bool,
}

/// A complete HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lower case, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every header of that (lower-case) name.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                self.text()
            )
        })
    }
}

impl Server {
    /// A JMAP client logging in as `user` with [`PASSWORD`] (HTTP Basic).
    pub fn jmap(&self, user: &str) -> Jmap {
        Jmap {
            port: self.ports.http,
            auth: Auth::Basic(user.to_string(), PASSWORD.to_string()),
            plain: false,
        }
    }

    /// Makes a bearer token for `user` with `pochta token create`.
    pub fn create_token(&self, user: &str, name: &str) -> String {
        let out = self.cli(&["token", "create", user, "--name", name], None);
        assert!(
            out.status.success(),
            "token create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Jmap {
    /// The same client with other credentials.
    pub fn with_auth(&self, auth: Auth) -> Jmap {
        Jmap {
            auth,
            ..self.clone()
        }
    }

    /// `https://127.0.0.1:PORT`, as the session's URLs start.
    pub fn base(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Opens a connection (TLS unless `plain`) with a 10 s read timeout.
    pub fn connect(&self) -> Conn {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to the http port");
        tcp.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        if self.plain {
            return Conn::Plain(tcp);
        }
        let name = ServerName::try_from("localhost").expect("name");
        let tls = ClientConnection::new(tls_config(), name).expect("TLS client");
        Conn::Tls(Box::new(StreamOwned::new(tls, tcp)))
    }

    /// The request head with Host, Authorization and `Connection: close`.
    fn head(&self, method: &str, path: &str, extra: &[(&str, &str)]) -> String {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
            self.port
        );
        if let Some(a) = self.auth.header() {
            head.push_str(&format!("Authorization: {a}\r\n"));
        }
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head
    }

    /// Sends one request and reads the whole response.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        let mut head = self.head(method, path, headers);
        if !body.is_empty() || method == "POST" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut conn = self.connect();
        conn.write_all(head.as_bytes()).expect("write request");
        conn.write_all(body).expect("write body");
        conn.flush().expect("flush");
        let mut reader = Reader::new(conn);
        let (status, headers) = reader.head();
        let body = reader.body(&headers);
        HttpResponse {
            status,
            headers,
            body,
        }
    }

    /// Sends only a request head (e.g. with `Expect: 100-continue` and a
    /// Content-Length) and reads the response that comes without the body.
    pub fn request_head_only(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> HttpResponse {
        let mut head = self.head(method, path, headers);
        head.push_str("\r\n");
        let mut conn = self.connect();
        conn.write_all(head.as_bytes()).expect("write request");
        conn.flush().expect("flush");
        let mut reader = Reader::new(conn);
        let (status, headers) = reader.head();
        let body = reader.body(&headers);
        HttpResponse {
            status,
            headers,
            body,
        }
    }

    pub fn get(&self, path: &str) -> HttpResponse {
        self.request("GET", path, &[], b"")
    }

    /// `GET /.well-known/jmap`, expecting 200.
    pub fn session(&self) -> Value {
        let r = self.get("/.well-known/jmap");
        assert_eq!(r.status, 200, "session: {}", r.text());
        r.json()
    }

    /// The primary mail account's id.
    pub fn account_id(&self) -> String {
        self.session()["primaryAccounts"]["urn:ietf:params:jmap:mail"]
            .as_str()
            .expect("a primary mail account")
            .to_string()
    }

    /// POSTs a raw API request body.
    pub fn api_raw(&self, body: &[u8]) -> HttpResponse {
        self.request(
            "POST",
            "/jmap/api/",
            &[("Content-Type", "application/json")],
            body,
        )
    }

    /// One API request with [`USING`]; expects 200 and returns the Response
    /// object.
    pub fn call(&self, method_calls: Value) -> Value {
        self.call_using(&USING, method_calls)
    }

    /// One API request; expects 200 and returns the Response object.
    pub fn call_using(&self, using: &[&str], method_calls: Value) -> Value {
        let body = json!({ "using": using, "methodCalls": method_calls });
        let r = self.api_raw(body.to_string().as_bytes());
        assert_eq!(r.status, 200, "API request failed: {}", r.text());
        r.json()
    }

    /// One method call; returns its arguments (panics on an `error` response
    /// or a name other than the method's).
    pub fn method(&self, name: &str, args: Value) -> Value {
        let r = self.call(json!([[name, args, "m"]]));
        let first = &r["methodResponses"][0];
        assert_eq!(first[0], name, "{name} failed: {first}");
        first[1].clone()
    }

    /// Uploads `data`; expects 201 and returns the JSON answer.
    pub fn upload(&self, account_id: &str, content_type: &str, data: &[u8]) -> Value {
        let r = self.request(
            "POST",
            &format!("/jmap/upload/{account_id}/"),
            &[("Content-Type", content_type)],
            data,
        );
        assert_eq!(r.status, 201, "upload failed: {}", r.text());
        r.json()
    }

    /// The download URL path for a blob, from the session's template.
    pub fn download_path(
        &self,
        account_id: &str,
        blob_id: &str,
        name: &str,
        type_: &str,
    ) -> String {
        let template = self.session()["downloadUrl"]
            .as_str()
            .expect("downloadUrl")
            .to_string();
        let url = template
            .replace("{accountId}", &encode(account_id))
            .replace("{blobId}", &encode(blob_id))
            .replace("{name}", &encode(name))
            .replace("{type}", &encode(type_));
        url.strip_prefix(&self.base())
            .unwrap_or_else(|| panic!("{url} is not under {}", self.base()))
            .to_string()
    }

    /// Opens an EventSource stream at `path`; waits for the response head.
    pub fn event_source(&self, path: &str, headers: &[(&str, &str)]) -> EventStream {
        let mut head = self.head("GET", path, headers);
        head.push_str("Accept: text/event-stream\r\n\r\n");
        let mut conn = self.connect();
        conn.write_all(head.as_bytes()).expect("write request");
        conn.flush().expect("flush");
        let mut reader = Reader::new(conn);
        let (status, headers) = reader.head();
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
        EventStream {
            status,
            headers,
            reader,
            chunked,
            text: String::new(),
            ended: false,
        }
    }

    /// Opens a WebSocket to `path` offering the `protocols`; the response head
    /// and, on 101, the socket.
    pub fn websocket(
        &self,
        path: &str,
        protocols: Option<&str>,
    ) -> (HttpResponse, Option<WebSocket>) {
        let key = STANDARD.encode(b"pochta-test-key!");
        let mut extra = vec![
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", key.as_str()),
        ];
        if let Some(p) = protocols {
            extra.push(("Sec-WebSocket-Protocol", p));
        }
        let head = self
            .head("GET", path, &extra)
            .replace("Connection: close", "Connection: Upgrade")
            + "\r\n";
        let mut conn = self.connect();
        conn.write_all(head.as_bytes()).expect("write request");
        conn.flush().expect("flush");
        let mut reader = Reader::new(conn);
        let (status, headers) = reader.head();
        if status != 101 {
            let body = reader.body(&headers);
            return (
                HttpResponse {
                    status,
                    headers,
                    body,
                },
                None,
            );
        }
        let accept = headers
            .iter()
            .find(|(n, _)| n == "sec-websocket-accept")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let digest = ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes(),
        );
        assert_eq!(
            accept,
            STANDARD.encode(digest.as_ref()),
            "Sec-WebSocket-Accept"
        );
        let response = HttpResponse {
            status,
            headers,
            body: Vec::new(),
        };
        (response, Some(WebSocket { reader }))
    }
}

/// Percent-encoding for URL template values (RFC 6570 simple expansion).
pub fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A TCP or TLS connection.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => &s.sock,
        }
    }

    /// Sets how long a read may wait.
    pub fn set_timeout(&self, t: Duration) {
        self.tcp()
            .set_read_timeout(Some(t.max(Duration::from_millis(1))))
            .expect("timeout");
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let r = match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        };
        match r {
            // A peer that closes without close_notify: the end all the same.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
            other => other,
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

/// Buffered reading of HTTP/1.1 responses.
pub struct Reader {
    pub conn: Conn,
    buf: Vec<u8>,
}

impl Reader {
    fn new(conn: Conn) -> Reader {
        Reader {
            conn,
            buf: Vec::new(),
        }
    }

    /// Reads more bytes; false at the end of the stream. Panics on errors
    /// (timeouts included), so a hanging server fails the test.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match self.conn.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) => panic!("read failed: {e}"),
        }
    }

    /// Like `fill`, but a timeout is `None` instead of a panic.
    fn try_fill(&mut self) -> Option<bool> {
        let mut chunk = [0u8; 16 * 1024];
        match self.conn.read(&mut chunk) {
            Ok(0) => Some(false),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Some(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("read failed: {e}"),
        }
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill(), "connection closed early");
        }
        self.buf.drain(..n).collect()
    }

    fn line(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..i + 2).collect();
                return String::from_utf8_lossy(&line[..i]).into_owned();
            }
            assert!(self.fill(), "connection closed in a line");
        }
    }

    /// Status line and headers (skipping `100 Continue`).
    fn head(&mut self) -> (u16, Vec<(String, String)>) {
        loop {
            let status_line = self.line();
            let status: u16 = status_line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
            let mut headers = Vec::new();
            loop {
                let line = self.line();
                if line.is_empty() {
                    break;
                }
                if let Some((n, v)) = line.split_once(':') {
                    headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            if status != 100 {
                return (status, headers);
            }
        }
    }

    fn body(&mut self, headers: &[(String, String)]) -> Vec<u8> {
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            let mut body = Vec::new();
            while let Some(chunk) = self.chunk() {
                body.extend_from_slice(&chunk);
            }
            body
        } else if let Some(n) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
            self.take(n)
        } else {
            while self.fill() {}
            std::mem::take(&mut self.buf)
        }
    }

    /// The next chunk of a chunked body; `None` after the last.
    fn chunk(&mut self) -> Option<Vec<u8>> {
        let size_line = self.line();
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size {size_line:?}"));
        if size == 0 {
            // Trailers, then the empty line.
            while !self.line().is_empty() {}
            return None;
        }
        let data = self.take(size);
        let crlf = self.take(2);
        assert_eq!(crlf, b"\r\n");
        Some(data)
    }
}

/// One EventSource event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

impl Event {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{e}: {}", self.data))
    }
}

/// An open `text/event-stream` response.
pub struct EventStream {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    reader: Reader,
    chunked: bool,
    text: String,
    ended: bool,
}

impl EventStream {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The next event within `timeout` (comments skipped); `None` on timeout
    /// or at the end of the stream ([`EventStream::ended`] tells which).
    pub fn next(&mut self, timeout: Duration) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(i) = self.text.find("\n\n") {
                let block: String = self.text.drain(..i + 2).collect();
                let mut event = Event::default();
                let mut any = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event.event = v.trim().to_string();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("data:") {
                        if !event.data.is_empty() {
                            event.data.push('\n');
                        }
                        event.data.push_str(v.trim_start());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("id:") {
                        event.id = Some(v.trim().to_string());
                    }
                }
                if any {
                    return Some(event);
                }
            }
            if self.ended {
                return None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.reader.conn.set_timeout(left);
            if !self.read_some() {
                return None;
            }
        }
    }

    /// Whether the server ended the response.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Moves body bytes into `text`; false on timeout.
    fn read_some(&mut self) -> bool {
        if self.chunked {
            // Whole chunks only: wait until the size line and data are here.
            loop {
                if let Some(i) = self.reader.buf.windows(2).position(|w| w == b"\r\n") {
                    let size_line = String::from_utf8_lossy(&self.reader.buf[..i]).into_owned();
                    let size = usize::from_str_radix(size_line.trim(), 16)
                        .unwrap_or_else(|_| panic!("bad chunk size {size_line:?}"));
                    if size == 0 {
                        self.ended = true;
                        return true;
                    }
                    if self.reader.buf.len() >= i + 2 + size + 2 {
                        let chunk: Vec<u8> = self.reader.buf.drain(..i + 2 + size + 2).collect();
                        self.text
                            .push_str(&String::from_utf8_lossy(&chunk[i + 2..i + 2 + size]));
                        return true;
                    }
                }
                match self.reader.try_fill() {
                    Some(true) => {}
                    Some(false) => {
                        self.ended = true;
                        return true;
                    }
                    None => return false,
                }
            }
        } else {
            if !self.reader.buf.is_empty() {
                let bytes = std::mem::take(&mut self.reader.buf);
                self.text.push_str(&String::from_utf8_lossy(&bytes));
                return true;
            }
            match self.reader.try_fill() {
                Some(true) => {
                    let bytes = std::mem::take(&mut self.reader.buf);
                    self.text.push_str(&String::from_utf8_lossy(&bytes));
                    true
                }
                Some(false) => {
                    self.ended = true;
                    true
                }
                None => false,
            }
        }
    }
}

/// The client side of a WebSocket (RFC 6455): masked text frames out,
/// messages in; pings are answered.
pub struct WebSocket {
    reader: Reader,
}

impl WebSocket {
    fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        let mut frame = vec![0x80 | opcode];
        let len = payload.len();
        if len < 126 {
            frame.push(0x80 | len as u8);
        } else if len <= 0xffff {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.reader.conn.write_all(&frame).expect("WebSocket write");
        self.reader.conn.flush().expect("flush");
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) {
        self.send_frame(0x1, text.as_bytes());
    }

    /// Sends a JSON message.
    pub fn send_json(&mut self, value: &Value) {
        self.send_text(&value.to_string());
    }

    /// The next text message within `timeout`, as JSON; `None` on timeout
    /// or when the server closed.
    pub fn recv_json(&mut self, timeout: Duration) -> Option<Value> {
        let text = self.recv_text(timeout)?;
        Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")))
    }

    /// The next text message within `timeout`.
    pub fn recv_text(&mut self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut message = Vec::new();
        loop {
            let (fin, opcode, payload) = self.frame(deadline)?;
            match opcode {
                0x9 => self.send_frame(0xA, &payload),
                0xA => {}
                0x8 => return None,
                _ => {
                    message.extend_from_slice(&payload);
                    if fin {
                        return Some(String::from_utf8(message).expect("UTF-8 text"));
                    }
                }
            }
        }
    }

    fn frame(&mut self, deadline: Instant) -> Option<(bool, u8, Vec<u8>)> {
        let need = |r: &mut Reader, n: usize| -> Option<()> {
            while r.buf.len() < n {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return None;
                }
                r.conn.set_timeout(left);
                match r.try_fill() {
                    Some(true) => {}
                    Some(false) | None => return None,
                }
            }
            Some(())
        };
        need(&mut self.reader, 2)?;
        let b0 = self.reader.buf[0];
        let b1 = self.reader.buf[1];
        assert_eq!(b1 & 0x80, 0, "server frames are not masked");
        let (len, header) = match b1 & 0x7f {
            126 => {
                need(&mut self.reader, 4)?;
                (
                    u16::from_be_bytes([self.reader.buf[2], self.reader.buf[3]]) as usize,
                    4,
                )
            }
            127 => {
                need(&mut self.reader, 10)?;
                let mut n = [0u8; 8];
                n.copy_from_slice(&self.reader.buf[2..10]);
                (u64::from_be_bytes(n) as usize, 10)
            }
            n => (n as usize, 2),
        };
        need(&mut self.reader, header + len)?;
        let frame: Vec<u8> = self.reader.buf.drain(..header + len).collect();
        Some((b0 & 0x80 != 0, b0 & 0x0f, frame[header..].to_vec()))
    }
}

/// A TLS connection to `port` on loopback (any certificate accepted), with a
/// 10 s read timeout: for the other protocols' implicit-TLS ports (IMAPS, POP3S).
pub fn tls_connect(port: u16) -> Conn {
    let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let name = ServerName::try_from("localhost").expect("name");
    let tls = ClientConnection::new(tls_config(), name).expect("TLS client");
    Conn::Tls(Box::new(StreamOwned::new(tls, tcp)))
}

fn tls_config() -> Arc<ClientConfig> {
    // Any certificate: the test servers' are self-signed.
    pochta_net::client_tls::opportunistic().expect("TLS client config")
}
