//! Disk full (issue 8, item 3): the data directory on a 6 MiB tmpfs, filled with
//! deliveries until the store cannot write. SMTP must answer `452 4.3.1` to DATA
//! and BDAT and keep the connection, IMAP APPEND must get a tagged `NO` that is
//! not `[SERVERBUG]`, JMAP Email/import a temporary error; everything stored
//! before stays readable byte for byte, the server keeps running, and once a
//! filler file is deleted deliveries succeed again without a restart.
//!
//! Mounting needs root. Without it the test is skipped with a message, except
//! under `CI=true`, where it fails.

#![allow(clippy::unwrap_used)] // test helpers assert by unwrapping

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::jmap::{Conn, tls_connect};
use common::*;
use serde_json::{Value, json};

const USER: &str = "alice@localhost";
/// Size of each filling message: large enough that the disk fills in a few
/// dozen deliveries, and the same for APPEND and import so that they cannot fit
/// where a delivery did not.
const BODY_LINES: usize = 600;

/// Unmounts the tmpfs when the test ends, however it ends.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A message of about 47 KiB whose body cannot be mistaken for another's.
fn message(n: u32) -> Vec<u8> {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64 ^ u64::from(n).wrapping_mul(0x2545_f491_4f6c_dd1d);
    let mut out = format!(
        "From: Bob <bob@example.org>\r\nTo: {USER}\r\nSubject: filler {n}\r\nMessage-ID: <fill{n}@example.org>\r\n\r\n"
    );
    for _ in 0..BODY_LINES {
        for _ in 0..5 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            out.push_str(&format!("{seed:016x}"));
        }
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// A plain SMTP session on the MX port.
struct Smtp {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Smtp {
    fn connect(port: u16) -> Smtp {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect smtp");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut c = Smtp {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        };
        let greeting = c.reply();
        assert!(greeting.starts_with("220"), "greeting: {greeting}");
        let ehlo = c.cmd("EHLO client.example");
        assert!(ehlo.starts_with("250"), "EHLO: {ehlo}");
        c
    }

    /// Reads one (possibly multi-line) reply; "" when the connection closed.
    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            match self.r.read_line(&mut line) {
                Ok(0) | Err(_) => return all,
                Ok(_) => {}
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    fn cmd(&mut self, line: &str) -> String {
        self.w.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        self.reply()
    }

    fn envelope(&mut self) {
        let r = self.cmd("MAIL FROM:<sender@remote.example>");
        assert!(r.starts_with("250"), "MAIL: {r}");
        let r = self.cmd(&format!("RCPT TO:<{USER}>"));
        assert!(r.starts_with("250"), "RCPT: {r}");
    }

    /// One message with DATA; the final reply.
    fn data(&mut self, msg: &[u8]) -> String {
        self.envelope();
        let r = self.cmd("DATA");
        assert!(r.starts_with("354"), "DATA: {r}");
        // No line of ours starts with a dot: no stuffing needed.
        self.w.write_all(msg).unwrap();
        self.w.write_all(b".\r\n").unwrap();
        self.reply()
    }

    /// One message in one BDAT LAST chunk; the final reply.
    fn bdat(&mut self, msg: &[u8]) -> String {
        self.envelope();
        self.w
            .write_all(format!("BDAT {} LAST\r\n", msg.len()).as_bytes())
            .unwrap();
        self.w.write_all(msg).unwrap();
        self.reply()
    }
}

/// A logged-in IMAP session over implicit TLS.
struct Imap {
    conn: Conn,
    buf: Vec<u8>,
    n: u32,
}

/// One response line of a command, with the literals it carried.
struct Line {
    text: String,
    literals: Vec<Vec<u8>>,
}

impl Imap {
    fn login(port: u16) -> Imap {
        let mut c = Imap {
            conn: tls_connect(port),
            buf: Vec::new(),
            n: 0,
        };
        c.conn.set_timeout(Duration::from_secs(30));
        let greeting = c.line();
        assert!(greeting.starts_with("* OK"), "greeting: {greeting}");
        let (status, _) = c.cmd(&format!("LOGIN {USER} \"{PASSWORD}\""));
        assert!(status.contains(" OK"), "LOGIN: {status}");
        c
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 65536];
        let n = self.conn.read(&mut chunk).expect("IMAP read");
        assert!(n > 0, "IMAP connection closed");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    fn line(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..i + 2).collect();
                return String::from_utf8_lossy(&line[..i]).into_owned();
            }
            self.fill();
        }
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            self.fill();
        }
        self.buf.drain(..n).collect()
    }

    /// Reads up to the tagged completion of `tag`.
    fn until(&mut self, tag: &str) -> (String, Vec<Line>) {
        let mut lines = Vec::new();
        loop {
            let mut text = self.line();
            let mut literals = Vec::new();
            // A line ending in {n} continues after n octets.
            while let Some(n) = text
                .strip_suffix('}')
                .and_then(|t| t.rsplit_once('{'))
                .and_then(|(_, n)| n.parse::<usize>().ok())
            {
                literals.push(self.bytes(n));
                text.push_str(&self.line());
            }
            if text.starts_with(&format!("{tag} ")) {
                return (text, lines);
            }
            lines.push(Line { text, literals });
        }
    }

    fn cmd(&mut self, command: &str) -> (String, Vec<Line>) {
        self.n += 1;
        let tag = format!("A{}", self.n);
        self.conn
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .unwrap();
        self.until(&tag)
    }

    /// APPEND with a synchronising literal; the tagged completion.
    fn append(&mut self, msg: &[u8]) -> String {
        self.n += 1;
        let tag = format!("A{}", self.n);
        self.conn
            .write_all(format!("{tag} APPEND INBOX {{{}}}\r\n", msg.len()).as_bytes())
            .unwrap();
        let cont = self.line();
        assert!(cont.starts_with('+'), "APPEND continuation: {cont}");
        self.conn.write_all(msg).unwrap();
        self.conn.write_all(b"\r\n").unwrap();
        self.until(&tag).0
    }

    /// Every message of INBOX in UID order, as BODY[] returns it.
    fn all_bodies(&mut self) -> Vec<Vec<u8>> {
        let (status, _) = self.cmd("EXAMINE INBOX");
        assert!(status.contains(" OK"), "EXAMINE: {status}");
        let (status, lines) = self.cmd("UID FETCH 1:* (UID BODY.PEEK[])");
        assert!(status.contains(" OK"), "FETCH: {status}");
        let mut out: Vec<(u32, Vec<u8>)> = lines
            .into_iter()
            .filter(|l| l.text.contains("FETCH"))
            .map(|mut l| {
                let uid = l
                    .text
                    .split("UID ")
                    .nth(1)
                    .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|u| u.parse().ok())
                    .expect("UID in FETCH");
                assert_eq!(l.literals.len(), 1, "one literal per FETCH: {}", l.text);
                (uid, l.literals.remove(0))
            })
            .collect();
        out.sort_by_key(|(uid, _)| *uid);
        out.into_iter().map(|(_, b)| b).collect()
    }
}

/// Checks that INBOX holds exactly `expected`, in order, each stored message
/// being the sent bytes after the trace headers the server added.
fn verify(imap: &mut Imap, expected: &[Vec<u8>], when: &str) {
    let bodies = imap.all_bodies();
    assert_eq!(
        bodies.len(),
        expected.len(),
        "{when}: INBOX holds {} messages, {} were accepted",
        bodies.len(),
        expected.len()
    );
    for (i, (got, want)) in bodies.iter().zip(expected).enumerate() {
        assert!(
            got.ends_with(want),
            "{when}: message {} differs from what was accepted ({} bytes stored, {} sent)",
            i + 1,
            got.len(),
            want.len()
        );
    }
}

/// `pochta check`, when the binary has it: must report no problem.
fn check(server: &Server, when: &str) {
    let help = server.cli(&["check", "--help"], None);
    if !help.status.success() {
        eprintln!("pochta check not available; skipped ({when})");
        return;
    }
    let out = server.cli(&["check"], None);
    assert!(
        out.status.success(),
        "{when}: pochta check failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The store's lines of the server log.
fn store_log(server: &Server) -> String {
    server
        .log()
        .lines()
        .filter(|l| l.contains("store"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The files of the data directory and their sizes, for the test's output.
fn usage(dir: &Path) -> String {
    let mut out = String::from("data directory:");
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
        out.push_str(&format!(
            " {}={}K",
            entry.file_name().to_string_lossy(),
            len / 1024
        ));
    }
    out
}

fn import(jmap: &common::jmap::Jmap, account: &str, blob: &str, inbox: &str) -> Value {
    jmap.call(json!([["Email/import", {
        "accountId": account,
        "emails": {"i1": {"blobId": blob, "mailboxIds": {inbox: true}}}
    }, "c1"]]))["methodResponses"][0]
        .clone()
}

#[test]
fn disk_full_is_temporary_and_harmless() {
    if !is_root() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "tests/diskfull.rs needs root (mount -t tmpfs) and CI=true is set"
        );
        eprintln!("SKIPPED: tests/diskfull.rs needs root to mount a tmpfs");
        return;
    }
    let mut server = Server::start();
    server.add_user(USER);

    // JMAP ids and an uploaded blob for Email/import, while there is room.
    let jmap = server.jmap(USER);
    let account = jmap.account_id();
    let boxes = jmap.method("Mailbox/get", json!({"accountId": account}));
    let inbox = boxes["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "inbox")
        .expect("inbox")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let import_msg = message(100_000);
    let blob = jmap.upload(&account, "message/rfc822", &import_msg)["blobId"]
        .as_str()
        .unwrap()
        .to_string();

    // Move the data directory onto a 6 MiB tmpfs.
    server.terminate();
    let data = server.data_dir();
    let saved = server.dir.path().join("data.saved");
    std::fs::rename(&data, &saved).unwrap();
    std::fs::create_dir(&data).unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=6m", "tmpfs"])
        .arg(&data)
        .status()
        .expect("run mount");
    assert!(status.success(), "mount -t tmpfs failed");
    let _mount = Mount(data.clone());
    copy_dir(&saved, &data);
    // The space freed later: 2 MiB, enough for the checkpoint that lets the
    // WAL be reused (it must take the latest version of every page the WAL
    // holds; see WalRecovery in crates/store/src/sqlite/writer.rs).
    let filler = data.join("filler");
    std::fs::write(&filler, vec![0x5a; 2 << 20]).unwrap();
    server.start_again();

    // Fill the disk.
    let started = Instant::now();
    let mut accepted: Vec<Vec<u8>> = Vec::new();
    let mut smtp = Smtp::connect(server.ports.smtp);
    let refused = loop {
        assert!(
            accepted.len() < 200 && started.elapsed() < Duration::from_secs(120),
            "the 6 MiB disk did not fill after {} deliveries",
            accepted.len()
        );
        let msg = message(u32::try_from(accepted.len()).unwrap());
        let r = smtp.data(&msg);
        if r.starts_with("250") {
            accepted.push(msg);
        } else {
            break r;
        }
    };
    eprintln!(
        "disk full after {} deliveries of {} bytes: {}",
        accepted.len(),
        message(0).len(),
        refused.trim()
    );
    eprintln!("{}", usage(&data));
    assert!(
        refused.starts_with("452 4.3.1"),
        "DATA on a full disk: want 452 4.3.1, got {refused:?}"
    );
    // The connection stays usable: a new transaction, this time with BDAT.
    let r = smtp.cmd("RSET");
    assert!(r.starts_with("250"), "RSET after 452: {r:?}");
    let r = smtp.bdat(&message(90_000));
    assert!(
        r.starts_with("452 4.3.1"),
        "BDAT on a full disk: want 452 4.3.1, got {r:?}"
    );
    let r = smtp.cmd("NOOP");
    assert!(r.starts_with("250"), "NOOP after BDAT 452: {r:?}");
    // A fresh connection too (the server is alive and still accepts).
    let mut smtp2 = Smtp::connect(server.ports.smtp);
    let r = smtp2.data(&message(90_001));
    assert!(r.starts_with("452 4.3.1"), "second connection: {r:?}");

    // IMAP APPEND: a tagged NO, not [SERVERBUG]; the session goes on.
    let mut imap = Imap::login(server.ports.imaps);
    let r = imap.append(&message(90_002));
    eprintln!("APPEND on a full disk: {r}");
    assert!(
        r.starts_with("A2 NO") && !r.contains("SERVERBUG"),
        "APPEND on a full disk: {r:?}"
    );
    // Nothing stored was damaged, and reading works on a full disk.
    verify(&mut imap, &accepted, "disk full");
    check(&server, "disk full");

    // JMAP Email/import: a temporary error, nothing created.
    let r = import(&jmap, &account, &blob, &inbox);
    eprintln!("Email/import on a full disk: {r}");
    if r[0] == "error" {
        assert_eq!(r[1]["type"], "serverUnavailable", "Email/import: {r}");
    } else {
        assert_eq!(r[0], "Email/import", "{r}");
        assert!(r[1]["created"].is_null(), "imported on a full disk: {r}");
        assert!(!r[1]["notCreated"]["i1"].is_null(), "{r}");
    }

    // Free space; everything works again without a restart.
    std::fs::remove_file(&filler).unwrap();
    for i in 0..3 {
        let msg = message(1000 + i);
        let r = smtp.data(&msg);
        assert!(
            r.starts_with("250"),
            "delivery {i} after space was freed: {r:?}\n{}\n{}",
            usage(&data),
            store_log(&server)
        );
        accepted.push(msg);
    }
    let bdat_msg = message(2000);
    let r = smtp2.bdat(&bdat_msg);
    assert!(r.starts_with("250"), "BDAT after space was freed: {r:?}");
    accepted.push(bdat_msg);
    let appended = message(3000);
    let r = imap.append(&appended);
    assert!(r.contains(" OK"), "APPEND after space was freed: {r:?}");
    accepted.push(appended);
    let r = import(&jmap, &account, &blob, &inbox);
    assert_eq!(r[0], "Email/import", "{r}");
    assert!(
        !r[1]["created"]["i1"].is_null(),
        "Email/import after space was freed: {r}"
    );
    accepted.push(import_msg);
    // How much more fits now (the WAL is reused once checkpointed).
    let mut more = 0;
    while more < 60 {
        let msg = message(4000 + more);
        let r = smtp.data(&msg);
        if !r.starts_with("250") {
            assert!(r.starts_with("452 4.3.1"), "full again: {r:?}");
            break;
        }
        accepted.push(msg);
        more += 1;
    }
    eprintln!(
        "after freeing 2 MiB: 3 deliveries, BDAT, APPEND and Email/import, then {more} more deliveries"
    );
    assert_eq!(smtp.cmd("QUIT").get(..3), Some("221"));
    assert_eq!(smtp2.cmd("QUIT").get(..3), Some("221"));

    eprintln!("after recovery: {}", usage(&data));
    verify(&mut imap, &accepted, "after space was freed");
    check(&server, "after space was freed");
    let log = server.log();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
    assert!(
        log.contains("storage full"),
        "the log does not say the storage is full"
    );
    server.kill9();
}
