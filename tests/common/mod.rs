//! Starts the real `pochta` binary on free loopback ports with a temporary data
//! directory, and runs the real clients (Python's smtplib) against it.

#![allow(dead_code)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
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
}

/// A running `pochta serve`, killed when dropped.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub ports: Ports,
    child: Option<Child>,
    runs: u32,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
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
    pub fn start_with(extra: &str) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let ports = Ports {
            smtp: free_port(),
            submission: free_port(),
            submissions: free_port(),
        };
        let config = dir.path().join("pochta.toml");
        let text = format!(
            r#"hostname = "mx.test.example"
data_dir = "data"
domains = ["localhost", "example.test", "пример.рф"]

[listen]
smtp = "127.0.0.1:{}"
submission = "127.0.0.1:{}"
submissions = "127.0.0.1:{}"
imap = ""
imaps = ""
pop3 = ""
pop3s = ""
http = ""

{extra}
"#,
            ports.smtp, ports.submission, ports.submissions
        );
        std::fs::write(&config, text).expect("write config");
        let mut s = Server {
            dir,
            config,
            ports,
            child: None,
            runs: 0,
        };
        s.launch();
        s
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

    fn launch(&mut self) {
        self.runs += 1;
        let log = std::fs::File::create(self.log_path()).expect("log file");
        let out = std::fs::File::create(self.dir.path().join(format!("stdout-{}.txt", self.runs)))
            .expect("stdout file");
        let child = Command::new(bin())
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .env("RUST_LOG", "info")
            .stdout(out)
            .stderr(log)
            .spawn()
            .expect("start pochta");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(("127.0.0.1", self.ports.smtp)).is_ok()
                && TcpStream::connect(("127.0.0.1", self.ports.submissions)).is_ok()
            {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("pochta exited early with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "pochta did not start listening:\n{}",
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
    let script = repo().join("tests/py/smtp_tool.py");
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
