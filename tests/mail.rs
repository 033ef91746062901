//! End-to-end tests of the user agent: the real `pochta mail …` commands
//! against a real `pochta serve` on loopback (submission with STARTTLS, POP3
//! with STLS, IMAP with STARTTLS, JMAP over HTTPS; a self-signed certificate,
//! hence `--accept-invalid-certs`).

#![allow(clippy::unwrap_used)] // helpers assert by unwrapping, like the tests they serve

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::Value;

const ALICE: &str = "alice@localhost";
const BOB: &str = "bob@localhost";
const CAROL: &str = "carol@localhost";

/// A user agent: its own config file, data directory and password.
struct Ua {
    dir: tempfile::TempDir,
}

impl Ua {
    fn new() -> Ua {
        Ua {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("client.toml")
    }

    fn maildir(&self, name: &str) -> PathBuf {
        self.dir.path().join("mail").join(name)
    }

    /// Runs `pochta --client-config … mail ARGS` with `stdin` and
    /// `POCHTA_PASSWORD`; POCHTA_CONFIG points at a file that does not exist,
    /// which `mail` must not read.
    fn run_with(&self, args: &[&str], stdin: Option<&str>, password: &str) -> Output {
        let mut cmd = Command::new(bin());
        cmd.arg("--client-config")
            .arg(self.config())
            .arg("mail")
            .args(args)
            .env("POCHTA_CONFIG", self.dir.path().join("no-such-server.toml"))
            .env("POCHTA_PASSWORD", password)
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg-config"))
            .env("XDG_DATA_HOME", self.dir.path().join("xdg-data"))
            .env("COLUMNS", "200")
            .env_remove("EDITOR")
            .env_remove("VISUAL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run pochta mail");
        if let Some(input) = stdin
            && let Some(mut pipe) = child.stdin.take()
        {
            use std::io::Write;
            let _ = pipe.write_all(input.as_bytes());
        }
        drop(child.stdin.take());
        // Bounded: every command has its own network timeouts, but a test
        // must never hang on one.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("pochta mail {args:?} did not finish in 60 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        self.run_with(args, stdin, PASSWORD)
    }

    /// Runs and asserts success; returns stdout.
    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "pochta mail {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.ok(&a, None);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// Adds an account for `email` on `server` with every protocol.
    fn add(&self, server: &Server, name: &str, email: &str, read_via: &str) {
        let p = server.ports;
        let smtp = format!("127.0.0.1:{}", p.submission);
        let imap = format!("127.0.0.1:{}", p.imap);
        let pop3 = format!("127.0.0.1:{}", p.pop3);
        let jmap = format!("https://127.0.0.1:{}/.well-known/jmap", p.http);
        let maildir = self.maildir(name);
        let out = self.ok(
            &[
                "account",
                "add",
                name,
                "--email",
                email,
                "--smtp",
                &smtp,
                "--imap",
                &imap,
                "--pop3",
                &pop3,
                "--jmap",
                &jmap,
                "--maildir",
                maildir.to_str().unwrap(),
                "--read-via",
                read_via,
                "--accept-invalid-certs",
            ],
            None,
        );
        assert!(out.contains(&format!("added account {name}")), "{out}");
    }
}

fn server_with_users(users: &[&str]) -> Server {
    let server = Server::start();
    for u in users {
        server.add_user(u);
    }
    server
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

fn subjects(list: &Value) -> Vec<String> {
    let mut s: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["subject"].as_str().unwrap().to_string())
        .collect();
    s.sort();
    s
}

fn find_by_subject(list: &Value, subject: &str) -> String {
    list.as_array()
        .unwrap()
        .iter()
        .find(|m| m["subject"] == subject)
        .unwrap_or_else(|| panic!("no {subject:?} in {list}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn header(raw: &str, name: &str) -> Option<String> {
    let head = raw.split("\r\n\r\n").next().unwrap_or("");
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

#[test]
fn account_commands_and_password_never_stored() {
    let ua = Ua::new();
    let out = ua.run(&["list"], None);
    assert_eq!(out.status.code(), Some(2), "no account is a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("account add"));
    ua.ok(
        &[
            "account",
            "add",
            "home",
            "--email",
            "me@example.org",
            "--host",
            "mail.example.org",
            "--password-stdin",
        ],
        Some("s3cret-pw\n"),
    );
    ua.ok(
        &[
            "account",
            "add",
            "work",
            "--email",
            "me@example.com",
            "--host",
            "mx.example.com",
            "--password-command",
            "echo from-command",
        ],
        None,
    );
    let text = std::fs::read_to_string(ua.config()).unwrap();
    assert!(!text.contains("s3cret-pw"), "{text}");
    assert!(
        text.contains("port = 587") && text.contains("port = 993"),
        "{text}"
    );
    let list = ua.ok(&["account", "list"], None);
    assert!(list.contains("* home"), "{list}");
    assert!(list.contains("  work"), "{list}");
    // plain to a remote host is refused, exit 2.
    let out = ua.run(
        &[
            "account",
            "add",
            "bad",
            "--email",
            "x@example.net",
            "--imap",
            "mail.example.net:143",
            "--security-imap",
            "plain",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
    // Explicitly saved: stored, with a warning.
    let out = ua.run(
        &[
            "account",
            "add",
            "saved",
            "--email",
            "s@example.net",
            "--host",
            "h.example.net",
            "--password-stdin",
            "--save-password",
        ],
        Some("kept-pw\n"),
    );
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("clear text"));
    assert!(
        std::fs::read_to_string(ua.config())
            .unwrap()
            .contains("kept-pw")
    );
    ua.ok(&["account", "del", "home"], None);
    let list = ua.ok(&["account", "list"], None);
    assert!(!list.contains("home") && list.contains("* work"), "{list}");
    assert_eq!(
        ua.run(&["account", "del", "home"], None).status.code(),
        Some(2)
    );
    assert_eq!(
        ua.run(&["--account", "nope", "list"], None).status.code(),
        Some(2)
    );
}

#[test]
fn send_with_attachments_and_cyrillic_subject_then_read_decoded() {
    let server = server_with_users(&[ALICE, BOB]);
    let ua = Ua::new();
    ua.add(&server, "alice", ALICE, "imap");
    ua.add(&server, "bob", BOB, "imap");
    let files = ua.dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let pdf = write_file(&files, "отчёт.pdf", b"%PDF-1.4\n\x00\x01\x02binary\xff");
    let txt = write_file(&files, "notes.txt", "заметки\n".as_bytes());
    let subject = "Привет, Боб — тема на русском";

    // --dry-run prints the message, Bcc only in the envelope.
    let dry = ua.ok(
        &[
            "--account",
            "alice",
            "send",
            "--to",
            BOB,
            "--bcc",
            "hidden@localhost",
            "--subject",
            subject,
            "--dry-run",
        ],
        Some("dry\n"),
    );
    assert!(dry.contains("Subject: =?utf-8?"), "{dry}");
    assert!(!dry.contains("hidden@"), "{dry}");

    let out = ua.ok(
        &[
            "send",
            "--to",
            &format!("Боб <{BOB}>"),
            "--subject",
            subject,
            "--attach",
            pdf.to_str().unwrap(),
            "--attach",
            txt.to_str().unwrap(),
        ],
        Some("Здравствуй, Боб!\nВторая строка.\n"),
    );
    assert!(out.contains("sent to bob@localhost"), "{out}");

    let list = ua.json(&["--account", "bob", "list"]);
    let id = find_by_subject(&list, subject);
    let shown = ua.ok(&["--account", "bob", "read", &id], None);
    assert!(shown.contains(&format!("Subject: {subject}")), "{shown}");
    assert!(shown.contains("From: alice@localhost"), "{shown}");
    assert!(shown.contains("To: Боб <bob@localhost>"), "{shown}");
    assert!(
        shown.contains("Здравствуй, Боб!\nВторая строка."),
        "{shown}"
    );
    assert!(shown.contains("отчёт.pdf  application/pdf"), "{shown}");
    assert!(shown.contains("notes.txt  text/plain"), "{shown}");
    assert!(!shown.contains('\x1b'), "colour when piped: {shown:?}");

    // read marked it \Seen.
    let list = ua.json(&["--account", "bob", "list"]);
    let m = list
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id.as_str())
        .unwrap();
    assert!(
        m["flags"].as_array().unwrap().iter().any(|f| f == "\\Seen"),
        "{m}"
    );
    let unread = ua.json(&["--account", "bob", "list", "--unread"]);
    assert!(ids(&unread).is_empty(), "{unread}");

    // --headers shows every field; --raw is the stored message.
    let all = ua.ok(&["--account", "bob", "read", &id, "--headers"], None);
    assert!(
        all.contains("Message-ID:") || all.contains("Message-Id:"),
        "{all}"
    );
    assert!(all.contains("Received:"), "{all}");
    let raw = ua.ok(&["--account", "bob", "read", &id, "--raw"], None);
    assert!(
        raw.starts_with("Return-Path:") || raw.contains("\r\nReceived:"),
        "{raw}"
    );

    // save writes the attachments byte for byte.
    let dir = ua.dir.path().join("saved");
    ua.ok(
        &[
            "--account",
            "bob",
            "save",
            &id,
            "--attachments",
            dir.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(
        std::fs::read(dir.join("отчёт.pdf")).unwrap(),
        b"%PDF-1.4\n\x00\x01\x02binary\xff"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "заметки\n"
    );

    // The copy in alice's Sent.
    let sent = ua.json(&["--account", "alice", "list", "--folder", "Sent"]);
    assert_eq!(subjects(&sent), vec![subject.to_string()], "{sent}");

    // Over JMAP it reads the same.
    let shown_jmap = ua.ok(&["--account", "bob", "--via", "jmap", "list"], None);
    assert!(shown_jmap.contains("Привет, Боб"), "{shown_jmap}");
}

#[test]
fn send_over_jmap_submission_keeps_a_sent_copy() {
    let server = server_with_users(&[ALICE, BOB]);
    let ua = Ua::new();
    ua.add(&server, "alice", ALICE, "jmap");
    ua.add(&server, "bob", BOB, "imap");
    ua.ok(
        &["send", "--to", BOB, "--subject", "через JMAP"],
        Some("body over jmap\n"),
    );
    let got = ua.json(&["--account", "bob", "list"]);
    assert_eq!(subjects(&got), vec!["через JMAP".to_string()], "{got}");
    let sent = ua.json(&["--account", "alice", "list", "--folder", "Sent"]);
    assert_eq!(subjects(&sent), vec!["через JMAP".to_string()], "{sent}");
}

#[tokio::test]
async fn fetch_over_pop3_moves_all_mail_into_the_maildir() {
    let server = server_with_users(&[BOB]);
    for i in 1..=3 {
        let msg = format!(
            "From: sender@remote.example\r\nTo: {BOB}\r\nSubject: pop {i}\r\nMessage-ID: <pop{i}@remote.example>\r\n\r\nbody {i}\r\n"
        );
        server.deliver(BOB, msg.as_bytes());
    }
    let ua = Ua::new();
    ua.add(&server, "bob", BOB, "pop3");

    let out = ua.ok(&["fetch", "--keep"], None);
    assert!(out.contains("fetched 3 new message"), "{out}");
    let out = ua.ok(&["fetch", "bob", "--keep"], None);
    assert!(out.contains("fetched 0 new message"), "{out}");
    assert!(out.contains("skipped 3"), "{out}");
    assert_eq!(
        inbox(&server.store(), BOB).await.len(),
        3,
        "--keep deleted mail"
    );

    let out = ua.ok(&["fetch"], None);
    assert!(out.contains("fetched 0 new message"), "{out}");
    assert!(out.contains("deleted 3 on the server"), "{out}");
    assert!(
        inbox(&server.store(), BOB).await.is_empty(),
        "server INBOX not empty"
    );

    let files = count_files(&ua.maildir("bob"));
    assert_eq!(files, 3, "Maildir holds each message once");
    // Browsing the local copy.
    let local = ua.json(&["list"]);
    assert_eq!(subjects(&local), vec!["pop 1", "pop 2", "pop 3"], "{local}");
    let id = find_by_subject(&local, "pop 2");
    let shown = ua.ok(&["read", &id], None);
    assert!(shown.contains("body 2"), "{shown}");
    // Nothing new on the server now.
    let out = ua.ok(&["fetch"], None);
    assert!(out.contains("fetched 0 new message"), "{out}");
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    for sub in ["new", "cur"] {
        if let Ok(rd) = std::fs::read_dir(dir.join(sub)) {
            n += rd.flatten().filter(|e| e.path().is_file()).count();
        }
    }
    n
}

/// One browsing session's observable results, made comparable across
/// protocols (ids differ; subjects and counts must not).
fn browse_script(ua: &Ua, account: &str) -> Vec<String> {
    macro_rules! a {
        ($($x:expr),* $(,)?) => { &["--account", account, $($x),*] };
    }
    let mut log = Vec::new();
    let all = ua.json(a!["list"]);
    log.push(format!("list: {:?}", subjects(&all)));
    for q in [
        "from:carol",
        "subject:report",
        "квартал",
        "since:2026-02-01",
        "before:2026-02-01",
        "from:dave subject:weekly",
    ] {
        let r = ua.json(a!["search", q]);
        log.push(format!("search {q}: {:?}", subjects(&r)));
    }
    // Newest first.
    let order: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    log.push(format!("order: {order:?}"));
    let page = ua.json(a!["list", "--limit", "2", "--page", "2"]);
    log.push(format!("page 2: {:?}", subjects(&page)));

    let weekly = find_by_subject(&all, "Weekly report");
    ua.ok(a!["flag", &weekly, "+flagged"], None);
    let flagged = ua.json(a!["search", "is:flagged"]);
    log.push(format!("flagged: {:?}", subjects(&flagged)));
    ua.ok(a!["flag", &weekly, "-flagged", "+seen"], None);
    let flagged = ua.json(a!["search", "is:flagged"]);
    log.push(format!("unflagged: {:?}", subjects(&flagged)));
    let unread = ua.json(a!["search", "is:unread"]);
    log.push(format!("unread: {:?}", subjects(&unread)));

    let lunch = find_by_subject(&all, "Lunch?");
    ua.ok(a!["move", &lunch, "Archive"], None);
    let archive = ua.json(a!["list", "--folder", "Archive"]);
    log.push(format!("archive: {:?}", subjects(&archive)));

    let spam = find_by_subject(&all, "Cheap pills");
    ua.ok(a!["delete", &spam], None);
    let trash = ua.json(a!["list", "--folder", "Trash"]);
    log.push(format!("trash: {:?}", subjects(&trash)));
    let trashed = find_by_subject(&trash, "Cheap pills");
    ua.ok(a!["delete", &trashed, "--expunge"], None);
    let trash = ua.json(a!["list", "--folder", "Trash"]);
    log.push(format!("trash after expunge: {:?}", subjects(&trash)));

    let folders = ua.json(a!["folders"]);
    let mut counts: Vec<String> = folders
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| ["INBOX", "Archive", "Trash"].contains(&f["name"].as_str().unwrap()))
        .map(|f| format!("{} {}/{}", f["name"], f["unread"], f["total"]))
        .collect();
    counts.sort();
    log.push(format!("folders: {counts:?}"));

    // Errors a person understands, exit 2.
    let out = ua.run(a!["read", "no-such-id-999"], None);
    assert_ne!(out.status.code(), Some(0), "{account}: unknown id accepted");
    let out = ua.run(a!["move", &weekly, "No Such Folder"], None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{account}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    log
}

#[test]
fn list_search_move_flag_delete_same_over_imap_and_jmap() {
    let server = server_with_users(&[BOB, CAROL]);
    let msgs = [
        (
            "carol@remote.example",
            "Weekly report",
            "Tue, 03 Mar 2026 10:00:00 +0000",
            "numbers inside",
        ),
        (
            "dave@remote.example",
            "Weekly report",
            "Mon, 02 Mar 2026 10:00:00 +0000",
            "older numbers",
        ),
        (
            "erin@remote.example",
            "Отчёт за квартал",
            "Sun, 01 Feb 2026 09:00:00 +0000",
            "квартал закрыт",
        ),
        (
            "carol@remote.example",
            "Lunch?",
            "Sat, 10 Jan 2026 12:00:00 +0000",
            "pizza",
        ),
        (
            "spam@remote.example",
            "Cheap pills",
            "Fri, 09 Jan 2026 12:00:00 +0000",
            "buy",
        ),
    ];
    // One second apart: JMAP's order is receivedAt (seconds), and ties
    // between messages delivered in the same second have no defined order.
    for (from, subject, date, body) in msgs {
        std::thread::sleep(std::time::Duration::from_millis(1100));
        for rcpt in [BOB, CAROL] {
            let m = format!(
                "From: {from}\r\nTo: {rcpt}\r\nSubject: {}\r\nDate: {date}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n",
                encode_subject(subject)
            );
            server.deliver(rcpt, m.as_bytes());
        }
    }
    let ua = Ua::new();
    ua.add(&server, "bob", BOB, "imap");
    ua.add(&server, "carol", CAROL, "jmap");
    let over_imap = browse_script(&ua, "bob");
    let over_jmap = browse_script(&ua, "carol");
    assert_eq!(over_imap, over_jmap);
    // And the results are the right ones, not just equal.
    let joined = over_imap.join("\n");
    assert!(
        joined.contains("search from:carol: [\"Lunch?\", \"Weekly report\"]"),
        "{joined}"
    );
    assert!(
        joined.contains("search квартал: [\"Отчёт за квартал\"]"),
        "{joined}"
    );
    assert!(joined.contains("flagged: [\"Weekly report\"]"), "{joined}");
    assert!(joined.contains("unflagged: []"), "{joined}");
    assert!(joined.contains("archive: [\"Lunch?\"]"), "{joined}");
    assert!(joined.contains("trash: [\"Cheap pills\"]"), "{joined}");
    assert!(joined.contains("trash after expunge: []"), "{joined}");
    assert!(
        joined.contains(
            "order: [\"Weekly report\", \"Weekly report\", \"Отчёт за квартал\", \"Lunch?\", \"Cheap pills\"]"
        ),
        "{joined}"
    );
}

fn encode_subject(s: &str) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    use base64::Engine;
    format!(
        "=?UTF-8?B?{}?=",
        base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
    )
}

#[test]
fn reply_threads_with_in_reply_to_and_references() {
    let server = server_with_users(&[ALICE, BOB]);
    let ua = Ua::new();
    ua.add(&server, "alice", ALICE, "imap");
    ua.add(&server, "bob", BOB, "imap");
    ua.ok(
        &["send", "--to", BOB, "--subject", "План на неделю"],
        Some("Какие планы?\n"),
    );
    let inbox = ua.json(&["--account", "bob", "list"]);
    let id = find_by_subject(&inbox, "План на неделю");
    let original = ua.ok(&["--account", "bob", "read", &id, "--raw"], None);
    let original_id = header(&original, "Message-ID").unwrap();

    let out = ua.ok(&["--account", "bob", "reply", &id], Some("Всё по плану.\n"));
    assert!(out.contains("sent to alice@localhost"), "{out}");
    let alice = ua.json(&["--account", "alice", "list"]);
    let rid = find_by_subject(&alice, "Re: План на неделю");
    let reply = ua.ok(&["--account", "alice", "read", &rid, "--raw"], None);
    assert_eq!(
        header(&reply, "In-Reply-To").as_deref(),
        Some(original_id.as_str())
    );
    assert!(
        header(&reply, "References").unwrap().contains(&original_id),
        "{reply}"
    );
    let shown = ua.ok(&["--account", "alice", "read", &rid], None);
    assert!(shown.contains("Всё по плану."), "{shown}");
    assert!(shown.contains("> Какие планы?"), "{shown}");
    // The original is marked answered.
    let inbox = ua.json(&["--account", "bob", "list"]);
    let m = inbox
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id.as_str())
        .unwrap();
    assert!(
        m["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "\\Answered"),
        "{m}"
    );

    // Replying to the reply: "Re:" not doubled, the chain grows.
    ua.ok(
        &["--account", "alice", "reply", &rid, "--all"],
        Some("ok\n"),
    );
    let inbox = ua.json(&["--account", "bob", "list"]);
    let second = find_by_subject(&inbox, "Re: План на неделю");
    let raw2 = ua.ok(&["--account", "bob", "read", &second, "--raw"], None);
    let refs = header(&raw2, "References").unwrap();
    assert!(refs.contains(&original_id), "{refs}");
    assert!(
        refs.contains(&header(&reply, "Message-ID").unwrap()),
        "{refs}"
    );

    // Forward with the attachment-less original quoted inline.
    let fwd = ua.ok(
        &[
            "--account",
            "bob",
            "forward",
            &id,
            "--to",
            ALICE,
            "--dry-run",
        ],
        Some("FYI\n"),
    );
    assert!(fwd.contains("Subject: =?utf-8?"), "{fwd}");
    assert!(
        fwd.contains("In-Reply-To: ") || fwd.contains("References: "),
        "{fwd}"
    );
}

#[test]
fn errors_a_person_understands() {
    let server = server_with_users(&[ALICE]);
    let ua = Ua::new();
    ua.add(&server, "alice", ALICE, "imap");

    // Wrong password: exit 1, says the login was refused.
    let out = ua.run_with(&["list"], None, "wrong password");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused the login"), "{err}");
    let out = ua.run_with(
        &["send", "--to", ALICE, "--subject", "x"],
        Some("x"),
        "wrong",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused the login"));

    // Certificate rejected without --accept-invalid-certs: the hint.
    let imap = format!("127.0.0.1:{}", server.ports.imap);
    ua.ok(
        &[
            "account", "add", "strict", "--email", ALICE, "--imap", &imap,
        ],
        None,
    );
    let out = ua.run(&["--account", "strict", "folders"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--accept-invalid-certs"), "{err}");

    // Unreachable server.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dead = format!("127.0.0.1:{port}");
    ua.ok(
        &[
            "account", "add", "dead", "--email", ALICE, "--smtp", &dead, "--imap", &dead,
        ],
        None,
    );
    let out = ua.run(
        &["--account", "dead", "send", "--to", ALICE, "--subject", "x"],
        Some("x"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));

    // Usage errors: exit 2.
    let out = ua.run(&["search", "since:yesterday"], None);
    assert_eq!(out.status.code(), Some(2));
    let out = ua.run(&["list", "--folder", "Nonexistent"], None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Nonexistent"));
    let out = ua.run(&["flag"], None);
    assert_eq!(out.status.code(), Some(2));
}
