//! Starts the real `pochta` binary on free loopback ports with a temporary data
//! directory, and runs the real clients (Python's smtplib) against it.

#![allow(dead_code)]

pub mod jmap;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use pochta_addr::Address;
use pochta_store::{MessageRecord, SqliteStore, Store};

pub const PASSWORD: &str = "correct horse battery";

/// The ports a test server listens on.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub smtp: u16,
    pub submission: u16,
    pub submissions: u16,
    pub pop3: u16,
    pub pop3s: u16,
    pub imap: u16,
    pub imaps: u16,
    /// HTTPS: JMAP.
    pub http: u16,
}

/// A running `pochta serve`, killed when dropped.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub ports: Ports,
    child: Option<Child>,
    runs: u32,
    head: String,
    extra: String,
    /// `RUST_LOG` for the server process.
    rust_log: String,
}

/// The host name and domains of the servers most tests run.
pub const DEFAULT_HEAD: &str = r#"hostname = "mx.test.example"
domains = ["localhost", "example.test", "пример.рф"]"#;

fn config_text(head: &str, ports: &Ports, extra: &str) -> String {
    format!(
        r#"{head}
data_dir = "data"

[listen]
smtp = "127.0.0.1:{}"
submission = "127.0.0.1:{}"
submissions = "127.0.0.1:{}"
pop3 = "127.0.0.1:{}"
pop3s = "127.0.0.1:{}"
imap = "127.0.0.1:{}"
imaps = "127.0.0.1:{}"
http = "127.0.0.1:{}"

{extra}
"#,
        ports.smtp,
        ports.submission,
        ports.submissions,
        ports.pop3,
        ports.pop3s,
        ports.imap,
        ports.imaps,
        ports.http
    )
}

/// Eight distinct loopback ports below the ephemeral range that are free now.
fn unused_ports() -> Ports {
    let mut picked: Vec<u16> = Vec::new();
    while picked.len() < 8 {
        // RandomState is seeded randomly per instance: enough randomness for
        // spreading parallel tests over the range without another dependency.
        let draw = std::hash::BuildHasher::hash_one(
            &std::collections::hash_map::RandomState::new(),
            picked.len(),
        );
        let port = 20_000 + (draw % 12_000) as u16;
        if !picked.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            picked.push(port);
        }
    }
    Ports {
        smtp: picked[0],
        submission: picked[1],
        submissions: picked[2],
        pop3: picked[3],
        pop3s: picked[4],
        imap: picked[5],
        imaps: picked[6],
        http: picked[7],
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pochta")
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl Server {
    /// Starts a server with the default limits.
    pub fn start() -> Server {
        Server::start_with("")
    }

    /// Starts a server; `extra` is appended to the config file (e.g. a `[limits]` table).
    ///
    /// The ports stay the same across restarts (see [`Server::start_logging`]).
    pub fn start_with(extra: &str) -> Server {
        Server::start_as(DEFAULT_HEAD, extra)
    }

    /// Starts a server with its own `hostname = …` and `domains = […]` lines.
    pub fn start_as(head: &str, extra: &str) -> Server {
        Server::start_logging(head, extra, "info")
    }

    /// Starts a server whose log (see [`Server::log`]) is filtered by
    /// `rust_log` (`RUST_LOG` syntax, e.g. `trace`) instead of `info`.
    ///
    /// The ports are drawn below the kernel's ephemeral range (32768 and up on
    /// Linux), so that no client socket of a parallel test can sit on them
    /// while the server is down between a kill and a restart; a port another
    /// test took first makes the server exit, and the harness draws again.
    pub fn start_logging(head: &str, extra: &str, rust_log: &str) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("pochta.toml");
        let mut s = Server {
            dir,
            config,
            ports: unused_ports(),
            child: None,
            runs: 0,
            head: head.to_string(),
            extra: extra.to_string(),
            rust_log: rust_log.to_string(),
        };
        for _ in 0..20 {
            s.write_config();
            match s.try_launch() {
                Ok(()) => return s,
                Err(log) if log.contains("Address already in use") => s.ports = unused_ports(),
                Err(log) => panic!("pochta exited early:\n{log}"),
            }
        }
        panic!("no free ports for pochta after 20 draws:\n{}", s.log());
    }

    fn write_config(&self) {
        std::fs::write(
            &self.config,
            config_text(&self.head, &self.ports, &self.extra),
        )
        .expect("rewrite config");
    }

    /// Replaces the appended configuration (takes effect at the next restart).
    pub fn set_extra(&mut self, extra: &str) {
        self.extra = extra.to_string();
        self.write_config();
    }

    /// Starts the server again after [`Server::terminate`] or [`Server::kill9`].
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "still running");
        self.launch();
    }

    fn stdout_path(&self) -> PathBuf {
        self.dir.path().join(format!("stdout-{}.txt", self.runs))
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("server-{}.log", self.runs))
    }

    /// The server's log of the current run (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts the process on the configured ports; a port still held (a
    /// closing connection of the killed run) is waited out for a few seconds.
    fn launch(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match self.try_launch() {
                Ok(()) => return,
                Err(log) if log.contains("Address already in use") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(log) => panic!("pochta exited early:\n{log}"),
            }
        }
    }

    /// One start; `Err` with the server's log if it exited before it was ready.
    fn try_launch(&mut self) -> Result<(), String> {
        self.runs += 1;
        let log = std::fs::File::create(self.log_path()).expect("log file");
        let out = std::fs::File::create(self.stdout_path()).expect("stdout file");
        let child = Command::new(bin())
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .env("RUST_LOG", &self.rust_log)
            .stdout(out)
            .stderr(log)
            .spawn()
            .expect("start pochta");
        self.child = Some(child);
        self.wait_ready()
    }

    /// Waits for the banner's last line, which is printed once every listener is bound.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = std::fs::read_to_string(self.stdout_path()).unwrap_or_default();
            if out.contains("Stop with Ctrl-C.") {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!("{status}: {}", self.log()));
            }
            assert!(
                Instant::now() < deadline,
                "pochta did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for the exit status (bounded).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("server running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("pochta did not exit after SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.launch();
    }

    /// Runs `pochta --config … ARGS` with `stdin`.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Output {
        cli(Some(&self.config), args, stdin)
    }

    pub fn add_user(&self, address: &str) {
        let out = self.cli(
            &["user", "add", address, "--password-stdin"],
            Some(&format!("{PASSWORD}\n")),
        );
        assert!(
            out.status.success(),
            "user add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Opens the store the server writes (SQLite allows a second process).
    pub fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.data_dir()).expect("open store")
    }

    /// Runs `tests/py/smtp_tool.py ARGS` and returns its output.
    pub fn py(&self, args: &[&str]) -> Output {
        python(args)
    }

    /// Submits the message in `file` with smtplib over the submission port
    /// (STARTTLS, AUTH as `user`, MAIL FROM `from`); the tool's JSON result
    /// (`ok`, or `code` and `message` of the refusal).
    pub fn submit(
        &self,
        (user, password): (&str, &str),
        from: &str,
        to: &[&str],
        file: &Path,
    ) -> serde_json::Value {
        let port = self.ports.submission.to_string();
        let file = file.to_string_lossy();
        let mut args = vec![
            "send",
            "--port",
            &port,
            "--security",
            "starttls",
            "--user",
            user,
            "--password",
            password,
            "--from",
            from,
            "--file",
            &file,
        ];
        for t in to {
            args.extend(["--to", t]);
        }
        json(&self.py(&args))
    }

    /// Runs `tests/py/imap_tool.py ARGS` and returns its output.
    pub fn imap(&self, args: &[&str]) -> Output {
        python_tool("imap_tool.py", args)
    }

    /// Runs `tests/py/pop3_tool.py ARGS` and returns its output.
    pub fn pop3(&self, args: &[&str]) -> Output {
        python_tool("pop3_tool.py", args)
    }

    /// Delivers `msg` to `to` through the MX (plain SMTP), asserting success.
    pub fn deliver(&self, to: &str, msg: &[u8]) {
        let file = write_file(self.dir.path(), "deliver.eml", msg);
        let port = self.ports.smtp.to_string();
        let r = json(&self.py(&[
            "send",
            "--port",
            &port,
            "--from",
            "sender@remote.example",
            "--to",
            to,
            "--file",
            file.to_str().expect("utf-8 path"),
        ]));
        assert_eq!(r["ok"], true, "delivery failed: {r}");
    }

    pub fn cert_path(&self) -> PathBuf {
        self.data_dir().join("tls").join("cert.pem")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn cli(config: Option<&Path>, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(bin());
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd.args(args)
        .env_remove("POCHTA_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run pochta");
    if let Some(input) = stdin
        && let Some(mut pipe) = child.stdin.take()
    {
        let _ = pipe.write_all(input.as_bytes());
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("pochta output")
}

pub fn python(args: &[&str]) -> Output {
    python_tool("smtp_tool.py", args)
}

pub fn python_tool(tool: &str, args: &[&str]) -> Output {
    let script = repo().join("tests/py").join(tool);
    Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 must be installed to run the end-to-end tests")
}

/// Parses the JSON line the Python tool prints.
pub fn json(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "tool output is not JSON ({e}): stdout={stdout}\nstderr={}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Every message in an account's INBOX with its bytes.
pub async fn inbox(store: &SqliteStore, address: &str) -> Vec<(MessageRecord, Vec<u8>)> {
    let account = store
        .account(&Address::parse(address).expect("address"))
        .await
        .expect("store")
        .expect("account exists");
    let boxes = store.mailboxes(account.id).await.expect("mailboxes");
    let inbox = boxes.iter().find(|m| m.name == "INBOX").expect("INBOX");
    let mut out = Vec::new();
    for m in store
        .messages(account.id, inbox.id)
        .await
        .expect("messages")
    {
        let rec = store
            .message(account.id, m.id)
            .await
            .expect("message")
            .expect("exists");
        let raw = store.read_blob(account.id, m.blob_id).await.expect("blob");
        out.push((rec, raw));
    }
    out
}

pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write file");
    p
}

/// A slow-loris client: connects to `port` and sends `payload` one byte every
/// 200 ms (reading whatever comes back) until the server's answers contain
/// `until`, it closes the connection, or the payload is sent. Returns what the
/// server sent and how long it took.
#[allow(dead_code)] // not every test binary trickles
pub fn trickle(port: u16, payload: &[u8], until: &[u8]) -> (String, std::time::Duration) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    for &b in payload {
        if stream.write_all(&[b]).is_err() {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if got.windows(until.len()).any(|w| w == until) {
            break;
        }
    }
    (
        String::from_utf8_lossy(&got).into_owned(),
        started.elapsed(),
    )
}
