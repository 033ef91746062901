//! End-to-end IMAP tests: the real binary, Python's imaplib (and a raw client
//! for COMPRESS and malformed input).

#![allow(clippy::unwrap_used)] // helpers assert by unwrapping, like the tests they serve

mod common;

use base64::Engine;
use common::*;
use serde_json::Value;

const USER: &str = "alice@localhost";

fn message(n: u32, subject: &str) -> Vec<u8> {
    format!(
        "From: Bob <bob@example.org>\r\nTo: {USER}\r\nSubject: {subject}\r\nMessage-ID: <m{n}@example.org>\r\n\r\n.line with a dot\r\nbody {n}\r\n"
    )
    .into_bytes()
}

fn raw(server: &Server, security: &str, lines: &[&str], login: bool) -> Value {
    let port = if security == "tls" {
        server.ports.imaps
    } else {
        server.ports.imap
    }
    .to_string();
    let mut args = vec!["raw", "--port", &port, "--security", security];
    if login {
        args.extend(["--user", USER, "--password", PASSWORD]);
    }
    for l in lines {
        args.push("--line");
        args.push(l);
    }
    json(&server.imap(&args))
}

async fn flow(security: &str) {
    let server = Server::start();
    server.add_user(USER);
    server.deliver(USER, &message(1, "first"));
    server.deliver(USER, &message(2, "second"));
    let stored = inbox(&server.store(), USER).await;
    let port = if security == "tls" {
        server.ports.imaps
    } else {
        server.ports.imap
    }
    .to_string();
    let r = json(&server.imap(&[
        "flow",
        "--port",
        &port,
        "--security",
        security,
        "--user",
        USER,
        "--password",
        PASSWORD,
    ]));
    let caps_after: Vec<String> = serde_json::from_value(r["caps_after"].clone()).unwrap();
    for c in [
        "IMAP4REV2",
        "IDLE",
        "MOVE",
        "UIDPLUS",
        "CONDSTORE",
        "QRESYNC",
        "ESEARCH",
        "SPECIAL-USE",
        "COMPRESS=DEFLATE",
    ] {
        assert!(
            caps_after.contains(&c.to_string()),
            "{c} missing: {caps_after:?}"
        );
    }
    let list: Vec<String> = serde_json::from_value(r["list"].clone()).unwrap();
    assert!(
        list.contains(&"(\\HasNoChildren \\Sent) \"/\" Sent".to_string()),
        "{list:?}"
    );
    assert_eq!(r["exists"], 2);
    let b64 = |v: &Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    };
    assert_eq!(
        b64(&r["headers"][1]),
        b"From: Bob <bob@example.org>\r\nSubject: second\r\n\r\n"
    );
    for i in 0..2 {
        assert_eq!(
            b64(&r["bodies"][i]),
            stored[i].1,
            "BODY[] is the stored message, byte for byte"
        );
    }
    assert!(
        r["flags_after_read"].as_str().unwrap().contains("\\Seen"),
        "BODY[] sets \\Seen: {r}"
    );
    assert!(
        r["store"]
            .as_str()
            .unwrap()
            .contains("\\Flagged $Forwarded"),
        "{r}"
    );
    assert_eq!(r["search_flagged"], "1");
    assert_eq!(r["search_subject"], "2");
    assert!(r["copy"].as_str().unwrap().starts_with("[COPYUID "), "{r}");
    assert_eq!(r["move"][0], "OK", "{r}");
    assert!(
        r["append"].as_str().unwrap().starts_with("[APPENDUID "),
        "{r}"
    );
    assert_eq!(r["status_sent"], "Sent (MESSAGES 1 UNSEEN 0)");
    assert_eq!(r["exists_after"], 0, "message 1 expunged, message 2 moved");
    let archive = {
        let store = server.store();
        let a = store
            .account(&pochta_addr::Address::parse(USER).unwrap())
            .await
            .unwrap()
            .unwrap();
        use pochta_store::Store;
        store
            .mailboxes(a.id)
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.name == "Archive")
            .unwrap()
    };
    assert_eq!(archive.total, 1, "the copy survived the expunge");
}

#[tokio::test]
async fn a_mail_programs_flow_over_starttls() {
    flow("starttls").await;
}

#[tokio::test]
async fn a_mail_programs_flow_over_imaps() {
    flow("tls").await;
}

#[tokio::test]
async fn idle_is_woken_by_an_smtp_delivery() {
    let server = Server::start();
    server.add_user(USER);
    let ready = server.dir.path().join("idle-ready");
    let port = server.ports.imap.to_string();
    let handle = std::thread::spawn({
        let ready = ready.clone();
        move || {
            python_tool(
                "imap_tool.py",
                &[
                    "idle",
                    "--port",
                    &port,
                    "--user",
                    USER,
                    "--password",
                    PASSWORD,
                    "--ready-file",
                    ready.to_str().unwrap(),
                ],
            )
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !ready.exists() {
        assert!(std::time::Instant::now() < deadline, "IDLE did not start");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    server.deliver(USER, &message(1, "wake up"));
    let r = json(&handle.join().unwrap());
    assert_eq!(r["line"], "* 1 EXISTS", "{r}");
    // RFC 2177 leaves timing open; the issue asks for under a second. The
    // notification is pushed at commit, so this is milliseconds in practice.
    assert!(
        r["elapsed"].as_f64().unwrap() < 1.0,
        "IDLE took {}s",
        r["elapsed"]
    );
    assert!(
        r["done"].as_str().unwrap().ends_with("OK IDLE terminated"),
        "{r}"
    );
}

#[tokio::test]
async fn pop3_deletions_are_expunges_for_imap() {
    let server = Server::start();
    server.add_user(USER);
    server.deliver(USER, &message(1, "one"));
    server.deliver(USER, &message(2, "two"));
    let pop = server.ports.pop3.to_string();
    let r = json(&server.pop3(&[
        "script",
        "--port",
        &pop,
        "--user",
        USER,
        "--password",
        PASSWORD,
        "--line",
        "DELE 1",
    ]));
    assert!(r["replies"][0].as_str().unwrap().starts_with("+OK"), "{r}");
    let r = raw(
        &server,
        "starttls",
        &["SELECT INBOX", "UID FETCH 1:* (FLAGS)"],
        true,
    );
    let select = r["responses"][1].as_array().unwrap();
    assert!(select.iter().any(|l| l == "* 1 EXISTS"), "{r}");
    let fetch = r["responses"][2].as_array().unwrap();
    assert_eq!(fetch[0], "* 1 FETCH (UID 2 FLAGS ())", "{r}");
}

#[tokio::test]
async fn uidvalidity_and_uids_survive_a_restart() {
    let mut server = Server::start();
    server.add_user(USER);
    server.deliver(USER, &message(1, "one"));
    let before = raw(
        &server,
        "tls",
        &[
            "STATUS INBOX (UIDVALIDITY UIDNEXT)",
            "SELECT INBOX",
            "UID FETCH 1:* (UID)",
        ],
        true,
    );
    server.restart();
    let after = raw(
        &server,
        "tls",
        &[
            "STATUS INBOX (UIDVALIDITY UIDNEXT)",
            "SELECT INBOX",
            "UID FETCH 1:* (UID)",
        ],
        true,
    );
    assert_eq!(before["responses"][1][0], after["responses"][1][0]);
    assert_eq!(before["responses"][3], after["responses"][3]);
}

#[tokio::test]
async fn login_is_disabled_before_tls() {
    let server = Server::start();
    server.add_user(USER);
    let r = raw(
        &server,
        "plain",
        &["CAPABILITY", &format!("LOGIN {USER} \"{PASSWORD}\"")],
        false,
    );
    assert!(
        r["greeting"].as_str().unwrap().contains("LOGINDISABLED"),
        "{r}"
    );
    assert!(
        r["responses"][1][0]
            .as_str()
            .unwrap()
            .contains("NO [PRIVACYREQUIRED]"),
        "{r}"
    );
    let r = raw(&server, "starttls", &["CAPABILITY"], false);
    assert!(
        r["responses"][0][0]
            .as_str()
            .unwrap()
            .contains("AUTH=PLAIN"),
        "{r}"
    );
}

#[tokio::test]
async fn compress_deflate_works_with_zlib() {
    let server = Server::start();
    server.add_user(USER);
    server.deliver(USER, &message(1, "compressed"));
    let r = raw(
        &server,
        "tls",
        &[
            "COMPRESS",
            "SELECT INBOX",
            "FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])",
            "LOGOUT",
        ],
        true,
    );
    let fetch = r["responses"][3].as_array().unwrap();
    assert_eq!(
        fetch[0], "* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {23}\r\nSubject: compressed\r\n\r\n)",
        "{r}"
    );
}

#[tokio::test]
async fn malformed_commands_and_oversized_literals_are_refused() {
    let server = Server::start_with("[limits]\nmessage_size = \"64k\"\n");
    server.add_user(USER);
    let r = raw(
        &server,
        "tls",
        &[
            "FROBNICATE",
            "FETCH 1 FLAGS",
            "APPEND INBOX {100000}",
            "NOOP",
        ],
        true,
    );
    assert!(
        r["responses"][1][0].as_str().unwrap().contains(" BAD "),
        "{r}"
    );
    assert!(
        r["responses"][2][0]
            .as_str()
            .unwrap()
            .contains(" BAD No mailbox selected"),
        "{r}"
    );
    assert!(
        r["responses"][3][0]
            .as_str()
            .unwrap()
            .contains(" NO [TOOBIG]"),
        "{r}"
    );
    assert!(
        r["responses"][4][0].as_str().unwrap().contains(" OK NOOP"),
        "the connection goes on: {r}"
    );
}

/// Slow-loris before login: a client trickling a command a byte at a time is
/// sent BYE once the login timeout has passed since its last progress.
#[test]
fn trickling_clients_are_logged_out_at_the_login_timeout() {
    let server = Server::start_with("[limits]\ncommand_timeout = \"2s\"\n");
    let payload = [&b"a1 CAPABILITY"[..], &[b'Y'; 47]].concat();
    let (text, elapsed) = trickle(server.ports.imap, &payload, b"* BYE");
    assert!(text.starts_with("* OK"), "{text:?}");
    assert!(text.contains("* BYE"), "no BYE after {elapsed:?}: {text:?}");
    assert!(
        elapsed < std::time::Duration::from_secs(8),
        "logged out only after {elapsed:?}"
    );
}
