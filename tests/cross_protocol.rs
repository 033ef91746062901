//! One store, one truth: changes made over IMAP, POP3 and SMTP are seen
//! through JMAP `Email/changes` and `Mailbox/changes` with the right states
//! and ids, and changes made over JMAP are seen by IMAP sessions at once
//! (FETCH FLAGS with a higher MODSEQ, LIST, EXPUNGE and VANISHED).
//!
//! JMAP is `tests/common/jmap.rs` (raw JSON over HTTPS); IMAP and POP3 are
//! Python's `tests/py/imap_tool.py raw` and `tests/py/pop3_tool.py script`.
//! An IMAP session that must see a JMAP change while it is open pauses at a
//! `WAIT` line until the test has made the change.

#![allow(clippy::unwrap_used)] // helpers assert by unwrapping, like the tests they serve

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::jmap::Jmap;
use common::*;
use serde_json::{Value, json};

const USER: &str = "alice@localhost";

fn message(n: u32) -> Vec<u8> {
    format!(
        "From: Bob <bob@example.org>\r\nTo: {USER}\r\nSubject: m{n}\r\nMessage-ID: <x{n}@example.org>\r\n\r\nbody {n}\r\n"
    )
    .into_bytes()
}

/// One IMAP session over TLS running `lines` after LOGIN; the responses of
/// each command (LOGIN first).
fn imap(server: &Server, lines: &[&str]) -> Vec<Vec<String>> {
    let port = server.ports.imaps.to_string();
    let mut args = vec![
        "raw",
        "--port",
        &port,
        "--security",
        "tls",
        "--user",
        USER,
        "--password",
        PASSWORD,
    ];
    for l in lines {
        args.extend(["--line", l]);
    }
    let r = json(&server.imap(&args));
    let responses: Vec<Vec<String>> = serde_json::from_value(r["responses"].clone()).unwrap();
    for (cmd, resp) in std::iter::once(&"LOGIN").chain(lines).zip(&responses) {
        let last = resp.last().unwrap();
        assert!(
            last.split_whitespace().nth(1) == Some("OK"),
            "{cmd}: {resp:?}"
        );
    }
    responses
}

/// An IMAP session in the background that stops at each `WAIT` line until
/// [`Paused::go`].
struct Paused {
    child: Child,
    ready: PathBuf,
    wait: PathBuf,
}

impl Paused {
    fn start(server: &Server, name: &str, lines: &[&str]) -> Paused {
        let ready = server.dir.path().join(format!("{name}.ready"));
        let wait = server.dir.path().join(format!("{name}.go"));
        let mut cmd = Command::new("python3");
        cmd.arg(repo().join("tests/py/imap_tool.py"))
            .args(["raw", "--port", &server.ports.imaps.to_string()])
            .args(["--security", "tls", "--user", USER, "--password", PASSWORD])
            .arg("--ready-file")
            .arg(&ready)
            .arg("--wait-file")
            .arg(&wait);
        for l in lines {
            cmd.args(["--line", l]);
        }
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let p = Paused { child, ready, wait };
        p.until_waiting();
        p
    }

    /// Blocks (up to 20 s) until the session is at a WAIT line.
    fn until_waiting(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.ready.exists() {
            assert!(Instant::now() < deadline, "the IMAP session never paused");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::fs::remove_file(&self.ready).unwrap();
    }

    /// Lets the session go on past its WAIT line.
    fn go(&self) {
        std::fs::write(&self.wait, b"").unwrap();
    }

    /// The session's responses, after it ended (bounded by the tool's own
    /// 30 s timeouts).
    fn finish(self) -> Vec<Vec<String>> {
        let out = self.child.wait_with_output().unwrap();
        let r = json(&out);
        serde_json::from_value(r["responses"].clone()).unwrap()
    }
}

/// `(UID, EMAILID)` of each message in the session's selected mailbox, from
/// the untagged FETCH responses of `UID FETCH 1:* (EMAILID)`.
fn uids_and_ids(responses: &[String]) -> BTreeMap<u32, String> {
    responses
        .iter()
        .filter(|l| l.contains(" FETCH ("))
        .map(|l| {
            let uid = item(l, "UID").parse().unwrap();
            let id = item(l, "EMAILID");
            (uid, id.trim_matches(['(', ')']).to_string())
        })
        .collect()
}

/// The value after `name` in a FETCH response line.
fn item(line: &str, name: &str) -> String {
    let words: Vec<&str> = line
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter(|w| !w.is_empty())
        .collect();
    let i = words
        .iter()
        .position(|w| *w == name)
        .unwrap_or_else(|| panic!("no {name} in {line}"));
    words[i + 1].to_string()
}

/// The flags of a FETCH response line.
fn flags(line: &str) -> Vec<String> {
    let start = line
        .find("FLAGS (")
        .unwrap_or_else(|| panic!("no FLAGS: {line}"))
        + 7;
    let end = start + line[start..].find(')').unwrap();
    let mut f: Vec<String> = line[start..end]
        .split_whitespace()
        .map(str::to_string)
        .collect();
    f.sort();
    f
}

struct Client {
    jmap: Jmap,
    account: String,
}

impl Client {
    fn state(&self, type_: &str) -> String {
        let r = self.jmap.method(
            &format!("{type_}/get"),
            json!({"accountId": self.account, "ids": []}),
        );
        r["state"].as_str().unwrap().to_string()
    }

    /// `TYPE/changes` since `since`: checks `oldState`, that everything fit
    /// in one response, and that the state moved when something changed; the
    /// id lists come sorted.
    fn changes(&self, type_: &str, since: &str) -> Changes {
        let r = self.jmap.method(
            &format!("{type_}/changes"),
            json!({"accountId": self.account, "sinceState": since}),
        );
        assert_eq!(r["oldState"], since, "{r}");
        assert_eq!(r["hasMoreChanges"], false, "{r}");
        let list = |k: &str| {
            let mut v: Vec<String> = serde_json::from_value(r[k].clone()).unwrap();
            v.sort();
            v
        };
        let c = Changes {
            new_state: r["newState"].as_str().unwrap().to_string(),
            created: list("created"),
            updated: list("updated"),
            destroyed: list("destroyed"),
            raw: r.clone(),
        };
        if !(c.created.is_empty() && c.updated.is_empty() && c.destroyed.is_empty()) {
            assert_ne!(c.new_state, since, "changes but the same state: {r}");
        }
        c
    }

    fn email(&self, id: &str, properties: &[&str]) -> Value {
        let r = self.jmap.method(
            "Email/get",
            json!({"accountId": self.account, "ids": [id], "properties": properties}),
        );
        r["list"][0].clone()
    }

    fn mailboxes(&self) -> Vec<Value> {
        let r = self
            .jmap
            .method("Mailbox/get", json!({"accountId": self.account}));
        r["list"].as_array().unwrap().clone()
    }

    fn mailbox(&self, role: &str) -> Value {
        self.mailboxes()
            .into_iter()
            .find(|m| m["role"] == role)
            .unwrap_or_else(|| panic!("no {role} mailbox"))
    }
}

#[derive(Debug)]
struct Changes {
    new_state: String,
    created: Vec<String>,
    updated: Vec<String>,
    destroyed: Vec<String>,
    raw: Value,
}

fn sorted(ids: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn imap_pop3_and_smtp_changes_seen_through_jmap() {
    let server = Server::start();
    server.add_user(USER);
    for n in 1..=4 {
        server.deliver(USER, &message(n));
    }
    let c = Client {
        jmap: server.jmap(USER),
        account: server.jmap(USER).account_id(),
    };
    let inbox = c.mailbox("inbox")["id"].as_str().unwrap().to_string();
    let archive = c.mailbox("archive")["id"].as_str().unwrap().to_string();

    // One set of ids: IMAP's EMAILIDs are JMAP's ids.
    let r = imap(&server, &["SELECT INBOX", "UID FETCH 1:* (EMAILID)"]);
    let by_uid = uids_and_ids(&r[2]);
    let q = c.jmap.method(
        "Email/query",
        json!({"accountId": c.account, "filter": {"inMailbox": inbox}}),
    );
    let mut jmap_ids: Vec<String> = serde_json::from_value(q["ids"].clone()).unwrap();
    jmap_ids.sort();
    let mut imap_ids: Vec<String> = by_uid.values().cloned().collect();
    imap_ids.sort();
    assert_eq!(imap_ids, jmap_ids);
    let uids: Vec<u32> = by_uid.keys().copied().collect();
    let id = |uid: u32| by_uid[&uid].clone();
    assert_eq!(uids.len(), 4);

    let mut email_state = c.state("Email");
    let mut mailbox_state = c.state("Mailbox");
    let unread_before = c.mailbox("inbox")["unreadEmails"].as_u64().unwrap();
    assert_eq!(unread_before, 4);

    // IMAP STORE: one email updated; INBOX updated (one fewer unread); a
    // push StateChange within a second, with the state /changes reports.
    let mut push = c
        .jmap
        .event_source("/jmap/eventsource/?types=Email&closeafter=no&ping=0", &[]);
    assert_eq!(push.status, 200);
    imap(
        &server,
        &[
            "SELECT INBOX",
            &format!("UID STORE {} +FLAGS (\\Seen \\Flagged)", uids[0]),
        ],
    );
    let e = c.changes("Email", &email_state);
    assert_eq!(
        (&e.created, &e.updated, &e.destroyed),
        (&vec![], &sorted(&[&id(uids[0])]), &vec![]),
        "{:?}",
        e.raw
    );
    let event = push
        .next(Duration::from_secs(1))
        .expect("a StateChange within 1 s of the IMAP STORE");
    assert_eq!(
        event.json()["changed"][&c.account]["Email"],
        e.new_state.as_str(),
        "{event:?}"
    );
    drop(push);
    email_state = e.new_state;
    let m = c.changes("Mailbox", &mailbox_state);
    assert_eq!(
        (&m.created, &m.updated, &m.destroyed),
        (&vec![], &sorted(&[&inbox]), &vec![]),
        "{:?}",
        m.raw
    );
    assert!(
        m.raw["updatedProperties"]
            .as_array()
            .is_none_or(|p| p.contains(&json!("unreadEmails"))),
        "{:?}",
        m.raw
    );
    mailbox_state = m.new_state;
    assert_eq!(
        c.email(&id(uids[0]), &["keywords"])["keywords"],
        json!({"$seen": true, "$flagged": true})
    );
    assert_eq!(c.mailbox("inbox")["unreadEmails"], 3);

    // IMAP MOVE: the same email, now in Archive; both mailboxes updated.
    let r = imap(
        &server,
        &["SELECT INBOX", &format!("UID MOVE {} Archive", uids[1])],
    );
    assert!(
        r[2].iter().any(|l| l.contains("COPYUID")),
        "UIDPLUS: {:?}",
        r[2]
    );
    let e = c.changes("Email", &email_state);
    assert_eq!(
        (&e.created, &e.updated, &e.destroyed),
        (&vec![], &sorted(&[&id(uids[1])]), &vec![]),
        "a move keeps the email's id: {:?}",
        e.raw
    );
    email_state = e.new_state;
    let m = c.changes("Mailbox", &mailbox_state);
    assert_eq!(
        (&m.created, &m.updated, &m.destroyed),
        (&vec![], &sorted(&[&inbox, &archive]), &vec![]),
        "{:?}",
        m.raw
    );
    mailbox_state = m.new_state;
    assert_eq!(
        c.email(&id(uids[1]), &["mailboxIds"])["mailboxIds"],
        json!({ archive.clone(): true })
    );

    // IMAP \Deleted is the keyword $deleted; EXPUNGE destroys the email.
    imap(
        &server,
        &[
            "SELECT INBOX",
            &format!("UID STORE {} +FLAGS.SILENT (\\Deleted)", uids[2]),
        ],
    );
    let e = c.changes("Email", &email_state);
    assert_eq!(e.updated, sorted(&[&id(uids[2])]), "{:?}", e.raw);
    email_state = e.new_state;
    assert_eq!(
        c.email(&id(uids[2]), &["keywords"])["keywords"],
        json!({"$deleted": true})
    );
    let r = imap(&server, &["SELECT INBOX", "EXPUNGE"]);
    assert!(r[2].iter().any(|l| l.ends_with(" EXPUNGE")), "{:?}", r[2]);
    let e = c.changes("Email", &email_state);
    assert_eq!(
        (&e.created, &e.updated, &e.destroyed),
        (&vec![], &vec![], &sorted(&[&id(uids[2])])),
        "{:?}",
        e.raw
    );
    email_state = e.new_state;
    let gone = c.jmap.method(
        "Email/get",
        json!({"accountId": c.account, "ids": [id(uids[2])], "properties": ["id"]}),
    );
    assert_eq!(gone["notFound"], json!([id(uids[2])]));
    let m = c.changes("Mailbox", &mailbox_state);
    assert_eq!(m.updated, sorted(&[&inbox]), "{:?}", m.raw);
    mailbox_state = m.new_state;

    // IMAP CREATE: a mailbox created, no email changed.
    imap(&server, &["CREATE Projects"]);
    let m = c.changes("Mailbox", &mailbox_state);
    assert!(
        m.updated.is_empty() && m.destroyed.is_empty(),
        "{:?}",
        m.raw
    );
    assert_eq!(m.created.len(), 1, "{:?}", m.raw);
    mailbox_state = m.new_state;
    let projects = c
        .mailboxes()
        .into_iter()
        .find(|b| b["id"] == m.created[0].as_str())
        .unwrap();
    assert_eq!(projects["name"], "Projects");
    assert_eq!(projects["parentId"], Value::Null);
    let e = c.changes("Email", &email_state);
    assert!(
        e.created.is_empty() && e.updated.is_empty() && e.destroyed.is_empty(),
        "{:?}",
        e.raw
    );
    email_state = e.new_state;

    // SMTP delivery: one email created, in a new thread; INBOX updated.
    let thread_state = c.state("Thread");
    server.deliver(USER, &message(5));
    let e = c.changes("Email", &email_state);
    assert!(
        e.updated.is_empty() && e.destroyed.is_empty(),
        "{:?}",
        e.raw
    );
    assert_eq!(e.created.len(), 1, "{:?}", e.raw);
    email_state = e.new_state;
    let new_id = e.created[0].clone();
    let got = c.email(&new_id, &["subject", "mailboxIds", "threadId"]);
    assert_eq!(got["subject"], "m5");
    assert_eq!(got["mailboxIds"], json!({ inbox.clone(): true }));
    let t = c.changes("Thread", &thread_state);
    assert_eq!(
        t.created,
        vec![got["threadId"].as_str().unwrap().to_string()]
    );
    let m = c.changes("Mailbox", &mailbox_state);
    assert_eq!(m.updated, sorted(&[&inbox]), "{:?}", m.raw);
    mailbox_state = m.new_state;

    // POP3 DELE + QUIT: that email destroyed. Its UIDL is the id in hex.
    let r = json(&server.pop3(&[
        "script",
        "--port",
        &server.ports.pop3.to_string(),
        "--user",
        USER,
        "--password",
        PASSWORD,
        "--line",
        "UIDL 1",
        "--line",
        "DELE 1",
    ]));
    let replies: Vec<String> = serde_json::from_value(r["replies"].clone()).unwrap();
    assert!(replies.iter().all(|l| l.starts_with("+OK")), "{replies:?}");
    let uidl = replies[0].split_whitespace().nth(2).unwrap();
    let deleted = format!("M{:x}", u64::from_str_radix(uidl, 16).unwrap());
    assert!(
        deleted == id(uids[0]) || deleted == id(uids[3]) || deleted == new_id,
        "{deleted} is in INBOX"
    );
    let e = c.changes("Email", &email_state);
    assert_eq!(
        (&e.created, &e.updated, &e.destroyed),
        (&vec![], &vec![], &vec![deleted.clone()]),
        "{:?}",
        e.raw
    );
    let m = c.changes("Mailbox", &mailbox_state);
    assert_eq!(m.updated, sorted(&[&inbox]), "{:?}", m.raw);
    let total = c.mailbox("inbox")["totalEmails"].as_u64().unwrap();
    assert_eq!(total, 2, "m1, m4, m5 less the one POP3 deleted");
}

#[test]
fn jmap_changes_seen_by_open_imap_sessions() {
    let server = Server::start();
    server.add_user(USER);
    for n in 1..=3 {
        server.deliver(USER, &message(n));
    }
    let c = Client {
        jmap: server.jmap(USER),
        account: server.jmap(USER).account_id(),
    };

    // Two sessions on INBOX, paused after reading flags and MODSEQs: one
    // with QRESYNC (expunges come as VANISHED), one with CONDSTORE only.
    let fetch = "UID FETCH 1:* (FLAGS MODSEQ EMAILID)";
    let q = Paused::start(
        &server,
        "qresync",
        &[
            "ENABLE QRESYNC",
            "SELECT INBOX",
            fetch,
            "WAIT",
            "NOOP",
            "LIST \"\" \"*\"",
            fetch,
        ],
    );
    let p = Paused::start(
        &server,
        "condstore",
        &["SELECT INBOX (CONDSTORE)", fetch, "WAIT", "NOOP", fetch],
    );

    // JMAP: flag the first email, create a mailbox, destroy the last email.
    let q_ = c.jmap.method(
        "Email/query",
        json!({"accountId": c.account, "sort": [{"property": "receivedAt"}]}),
    );
    let ids: Vec<String> = serde_json::from_value(q_["ids"].clone()).unwrap();
    assert_eq!(ids.len(), 3);
    let state = c.state("Email");
    let r = c.jmap.method(
        "Email/set",
        json!({"accountId": c.account, "update": {
            ids[0].clone(): {"keywords/$flagged": true, "keywords/$seen": true}}}),
    );
    assert_eq!(r["updated"], json!({ ids[0].clone(): null }), "{r}");
    let e = c.changes("Email", &state);
    assert_eq!(e.updated, vec![ids[0].clone()]);
    let r = c.jmap.method(
        "Mailbox/set",
        json!({"accountId": c.account, "create": {"n": {"name": "FromJmap"}}}),
    );
    assert!(r["created"]["n"]["id"].is_string(), "{r}");
    let r = c.jmap.method(
        "Email/set",
        json!({"accountId": c.account, "destroy": [ids[2].clone()]}),
    );
    assert_eq!(r["destroyed"], json!([ids[2].clone()]), "{r}");

    // A new session lists the mailbox at once.
    let r = imap(&server, &["LIST \"\" \"*\""]);
    assert!(
        r[1].iter().any(|l| l.ends_with(" FromJmap")),
        "LIST: {:?}",
        r[1]
    );

    q.go();
    p.go();
    let qr = q.finish();
    let pr = p.finish();
    for (name, rs) in [("qresync", &qr), ("condstore", &pr)] {
        for r in rs.iter() {
            let last = r.last().unwrap();
            assert!(
                last.split_whitespace().nth(1) == Some("OK"),
                "{name}: {r:?}"
            );
        }
    }

    // What each session saw before the changes.
    let before = |rs: &[Vec<String>], i: usize| -> BTreeMap<String, (u32, Vec<String>, u64)> {
        rs[i]
            .iter()
            .filter(|l| l.contains(" FETCH ("))
            .map(|l| {
                (
                    item(l, "EMAILID"),
                    (
                        item(l, "UID").parse().unwrap(),
                        flags(l),
                        item(l, "MODSEQ").parse().unwrap(),
                    ),
                )
            })
            .collect()
    };
    // qr: LOGIN, ENABLE, SELECT, FETCH, NOOP, LIST, FETCH.
    let q_before = before(&qr, 3);
    let (flagged_uid, flags_before, modseq_before) = q_before[&ids[0]].clone();
    assert!(flags_before.is_empty(), "{flags_before:?}");
    let (destroyed_uid, _, _) = q_before[&ids[2]].clone();

    // NOOP reports the flag change (with the new MODSEQ) and the expunge.
    let noop = &qr[4];
    let fetch_line = noop
        .iter()
        .find(|l| l.contains(" FETCH (") && l.contains(&format!("UID {flagged_uid}")))
        .unwrap_or_else(|| panic!("no FETCH for the flagged email: {noop:?}"));
    assert_eq!(flags(fetch_line), ["\\Flagged", "\\Seen"]);
    let modseq_after: u64 = item(fetch_line, "MODSEQ").parse().unwrap();
    assert!(modseq_after > modseq_before, "{fetch_line}");
    assert!(
        noop.iter()
            .any(|l| l == &format!("* VANISHED {destroyed_uid}")),
        "VANISHED for the destroyed email: {noop:?}"
    );
    assert!(
        qr[5].iter().any(|l| l.ends_with(" FromJmap")),
        "LIST in the open session: {:?}",
        qr[5]
    );
    let q_after = before(&qr, 6);
    assert_eq!(q_after.len(), 2);
    assert_eq!(q_after[&ids[0]].2, modseq_after);
    assert!(!q_after.contains_key(&ids[2]));

    // The CONDSTORE session: FETCH FLAGS with MODSEQ, and an EXPUNGE of the
    // destroyed email's sequence number (3: the last).
    // pr: LOGIN, SELECT, FETCH, NOOP, FETCH.
    let p_before = before(&pr, 2);
    assert_eq!(p_before[&ids[0]].2, modseq_before, "one MODSEQ for both");
    let noop = &pr[3];
    let fetch_line = noop
        .iter()
        .find(|l| l.contains(" FETCH ("))
        .unwrap_or_else(|| panic!("no FETCH: {noop:?}"));
    assert_eq!(flags(fetch_line), ["\\Flagged", "\\Seen"]);
    assert_eq!(
        item(fetch_line, "MODSEQ").parse::<u64>().unwrap(),
        modseq_after
    );
    assert!(
        noop.iter().any(|l| l == "* 3 EXPUNGE"),
        "EXPUNGE for the destroyed email: {noop:?}"
    );
    assert!(
        !noop.iter().any(|l| l.contains("VANISHED")),
        "no VANISHED without QRESYNC: {noop:?}"
    );
    assert_eq!(before(&pr, 4).len(), 2);
}

/// The number after `key` in the first line that has it (`UIDVALIDITY 7`).
fn number_after(lines: &[String], key: &str) -> u64 {
    let line = lines.iter().find(|l| l.contains(key)).unwrap();
    let rest = &line[line.find(key).unwrap() + key.len() + 1..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn clients_from_before_a_pruned_change_log_catch_up() {
    let server = Server::start();
    server.add_user(USER);
    for n in 1..=3 {
        server.deliver(USER, &message(n));
    }
    let c = Client {
        jmap: server.jmap(USER),
        account: server.jmap(USER).account_id(),
    };
    let email_state = c.state("Email");
    // An open session that looks again only after the prune.
    let q = Paused::start(
        &server,
        "behind",
        &[
            "ENABLE QRESYNC",
            "SELECT INBOX",
            "WAIT",
            "NOOP",
            "UID FETCH 1:* (FLAGS)",
        ],
    );
    imap(
        &server,
        &[
            "SELECT INBOX",
            "STORE 1 +FLAGS (\\Deleted)",
            "EXPUNGE",
            "STORE 1 +FLAGS (\\Seen)",
        ],
    );
    server.deliver(USER, &message(4));

    // Nothing is old enough for the default retention; everything for 0.
    let out = server.cli(&["prune-changes"], None);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("0 change-log entries removed"));
    let out = server.cli(&["prune-changes", "--older-than", "0"], None);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    let removed: u64 = text.split(' ').next().unwrap().parse().unwrap();
    assert!(removed >= 8, "{text}");
    let forever = tempfile::tempdir().unwrap();
    let config = forever.path().join("pochta.toml");
    let data = server.data_dir();
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[store]\nchange_log_retention = 0\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let kept = cli(Some(&config), &["prune-changes"], None);
    assert!(kept.status.success());
    assert!(String::from_utf8_lossy(&kept.stdout).contains("nothing removed"));
    let bad = server.cli(&["prune-changes", "--older-than", "soon"], None);
    assert_eq!(bad.status.code(), Some(2));

    // The open session: the expunge, the new message and the flag, as ever.
    q.go();
    let r = q.finish();
    let (select, noop, fetch) = (&r[2], &r[3], &r[4]);
    assert!(noop.contains(&"* VANISHED 1".to_string()), "{noop:?}");
    assert!(noop.contains(&"* 3 EXISTS".to_string()), "{noop:?}");
    assert!(
        noop.iter()
            .any(|l| l.starts_with("* 1 FETCH (UID 2 FLAGS (\\Seen) MODSEQ (")),
        "{noop:?}"
    );
    assert_eq!(fetch.len(), 4, "{fetch:?}");

    // A returning QRESYNC client: every UID it knew that is gone.
    let validity = number_after(select, "UIDVALIDITY");
    let hms = number_after(select, "HIGHESTMODSEQ");
    let again = imap(
        &server,
        &[
            "ENABLE QRESYNC",
            &format!("SELECT INBOX (QRESYNC ({validity} {hms} 1:3))"),
        ],
    );
    assert!(
        again[2].contains(&"* VANISHED (EARLIER) 1".to_string()),
        "{:?}",
        again[2]
    );
    // A returning JMAP client starts over; one that is current goes on.
    let r = c.jmap.call(json!([[
        "Email/changes",
        {"accountId": c.account, "sinceState": email_state},
        "m"
    ]]));
    let first = &r["methodResponses"][0];
    assert_eq!(first[0], "error", "{first}");
    assert_eq!(first[1]["type"], "cannotCalculateChanges", "{first}");
    let now = c.state("Email");
    server.deliver(USER, &message(5));
    let r = c.jmap.method(
        "Email/changes",
        json!({"accountId": c.account, "sinceState": now}),
    );
    assert_eq!(r["created"].as_array().unwrap().len(), 1, "{r}");

    let check = server.cli(&["check"], None);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}
