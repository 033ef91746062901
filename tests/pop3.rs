//! End-to-end POP3 tests: the real binary, Python's poplib (and curl when installed).

#![allow(clippy::unwrap_used)] // helpers assert by unwrapping, like the tests they serve

mod common;

use base64::Engine;
use common::*;
use pochta_store::{Flags, ObjectKind, Store};
use serde_json::Value;

const USER: &str = "alice@localhost";

fn fetch(server: &Server, security: &str, extra: &[&str]) -> Value {
    let port = if security == "tls" {
        server.ports.pop3s
    } else {
        server.ports.pop3
    }
    .to_string();
    let mut args = vec![
        "fetch",
        "--port",
        &port,
        "--security",
        security,
        "--user",
        USER,
        "--password",
        PASSWORD,
    ];
    args.extend(extra);
    json(&server.pop3(&args))
}

fn script(server: &Server, lines: &[&str], extra: &[&str]) -> Vec<String> {
    let port = server.ports.pop3.to_string();
    let mut args = vec![
        "script",
        "--port",
        &port,
        "--user",
        USER,
        "--password",
        PASSWORD,
    ];
    for l in lines {
        args.push("--line");
        args.push(l);
    }
    args.extend(extra);
    let r = json(&server.pop3(&args));
    serde_json::from_value(r["replies"].clone()).unwrap()
}

/// A message with lines starting with dots and a binary attachment.
fn awkward_message(n: usize) -> Vec<u8> {
    let binary: Vec<u8> = (0..3000u32).map(|i| (i * 7 + n as u32) as u8).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&binary);
    let mut m = format!(
        "From: sender@remote.example\r\nTo: {USER}\r\nSubject: message {n}\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\
         .starts with a dot\r\n..two dots\r\n.\r\n. lone dot with space\r\n--b\r\n\
         Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    );
    for chunk in b64.as_bytes().chunks(76) {
        m.push_str(std::str::from_utf8(chunk).unwrap());
        m.push_str("\r\n");
    }
    m.push_str("--b--\r\n");
    m.into_bytes()
}

async fn stored(server: &Server) -> Vec<(pochta_store::MessageRecord, Vec<u8>)> {
    inbox(&server.store(), USER).await
}

#[tokio::test]
async fn poplib_over_stls_retrieves_byte_exact_and_deletes_on_quit() {
    let server = Server::start();
    server.add_user(USER);
    for n in 0..3 {
        server.deliver(USER, &awkward_message(n));
    }
    let before = stored(&server).await;
    let account = server
        .store()
        .account(&pochta_addr::Address::parse(USER).unwrap())
        .await
        .unwrap()
        .unwrap();
    let state = server.store().state(account.id).await.unwrap();

    let r = fetch(&server, "stls", &["--delete"]);
    let capa = r["capa"].as_object().unwrap();
    for c in [
        "TOP",
        "UIDL",
        "USER",
        "SASL",
        "RESP-CODES",
        "AUTH-RESP-CODE",
        "PIPELINING",
        "UTF8",
        "IMPLEMENTATION",
    ] {
        assert!(capa.contains_key(c), "CAPA lacks {c}: {capa:?}");
    }
    assert!(
        !capa.contains_key("STLS"),
        "STLS is not offered once TLS is up"
    );
    assert_eq!(r["stat"][0], 3);
    let total: u64 = before.iter().map(|(_, raw)| raw.len() as u64).sum();
    assert_eq!(
        r["stat"][1], total,
        "STAT octets are the exact stored sizes"
    );
    for (i, (rec, raw)) in before.iter().enumerate() {
        assert_eq!(r["list"][i], format!("{} {}", i + 1, raw.len()));
        assert_eq!(
            r["uidl"][i],
            format!("{} {}", i + 1, pochta_pop3::uidl(rec.summary.id))
        );
        let got = base64::engine::general_purpose::STANDARD
            .decode(r["messages"][i].as_str().unwrap())
            .unwrap();
        assert_eq!(got, *raw, "RETR of message {} is not byte-exact", i + 1);
        assert!(
            r["retr_octets"][i]
                .as_str()
                .unwrap()
                .starts_with(&format!("+OK {} octets", raw.len()))
        );
    }
    assert!(
        r["quit"].as_str().unwrap().contains("3 messages deleted"),
        "{r}"
    );
    assert!(
        stored(&server).await.is_empty(),
        "QUIT removed them from the store"
    );
    // IMAP and JMAP see them as expunged through the change log.
    let changes = server
        .store()
        .changes(account.id, ObjectKind::Email, state, 100)
        .await
        .unwrap();
    assert_eq!(changes.destroyed.len(), 3, "{changes:?}");
    // A second session finds nothing.
    let r = fetch(&server, "stls", &[]);
    assert_eq!(r["stat"][0], 0);
}

#[tokio::test]
async fn implicit_tls_top_and_seen_flags() {
    let server = Server::start();
    server.add_user(USER);
    server.deliver(
        USER,
        b"Subject: top test\r\nX-A: b\r\n\r\nline 1\r\nline 2\r\nline 3\r\n",
    );
    let r = fetch(&server, "tls", &["--top", "2"]);
    let top = base64::engine::general_purpose::STANDARD
        .decode(r["tops"][0].as_str().unwrap())
        .unwrap();
    let text = String::from_utf8(top).unwrap();
    assert!(
        text.ends_with("X-A: b\r\n\r\nline 1\r\nline 2\r\n"),
        "{text}"
    );
    let msgs = stored(&server).await;
    assert_eq!(msgs.len(), 1, "nothing deleted without DELE");
    assert!(
        msgs[0].0.summary.flags.contains(Flags::SEEN),
        "a retrieved message is marked seen"
    );
}

#[tokio::test]
async fn a_second_session_gets_in_use() {
    let server = Server::start();
    server.add_user(USER);
    let port = server.ports.pop3.to_string();
    let r = json(&server.pop3(&[
        "in-use",
        "--port",
        &port,
        "--user",
        USER,
        "--password",
        PASSWORD,
    ]));
    assert!(
        r["second"].as_str().unwrap().starts_with("-ERR [IN-USE]"),
        "{r}"
    );
    assert_eq!(r["third"], "+OK");
}

#[tokio::test]
async fn dropping_the_connection_or_rset_deletes_nothing() {
    let server = Server::start();
    server.add_user(USER);
    server.deliver(USER, &awkward_message(1));
    server.deliver(USER, &awkward_message(2));
    let replies = script(&server, &["DELE 1", "DELE 2"], &["--drop"]);
    assert!(replies.iter().all(|r| r.starts_with("+OK")), "{replies:?}");
    // The lock is released once the server notices the drop.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = script(&server, &["STAT"], &[]);
        if r[0].starts_with("+OK") {
            let octets: usize = stored(&server).await.iter().map(|(_, raw)| raw.len()).sum();
            assert_eq!(r[0], format!("+OK 2 {octets}"));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "maildrop stays locked: {r:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let replies = script(&server, &["DELE 1", "RSET", "STAT"], &[]);
    assert!(replies[1].starts_with("+OK"), "{replies:?}");
    assert!(replies[2].starts_with("+OK 2 "), "{replies:?}");
    assert_eq!(stored(&server).await.len(), 2);
}

#[tokio::test]
async fn mail_arriving_during_a_session_waits_for_the_next_one() {
    let server = Server::start();
    server.add_user(USER);
    server.deliver(USER, b"Subject: first\r\n\r\n1\r\n");
    let go = server.dir.path().join("go");
    let ready = server.dir.path().join("ready");
    let port = server.ports.pop3.to_string();
    let handle = std::thread::spawn({
        let (go, ready) = (go.clone(), ready.clone());
        move || {
            python_tool(
                "pop3_tool.py",
                &[
                    "script",
                    "--port",
                    &port,
                    "--user",
                    USER,
                    "--password",
                    PASSWORD,
                    "--line",
                    "STAT",
                    "--line",
                    "WAIT",
                    "--line",
                    "STAT",
                    "--line",
                    "LIST 2",
                    "--wait-file",
                    go.to_str().unwrap(),
                    "--ready-file",
                    ready.to_str().unwrap(),
                ],
            )
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !ready.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "POP3 session did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    server.deliver(USER, b"Subject: second\r\n\r\n2\r\n");
    std::fs::write(&go, b"").unwrap();
    let r = json(&handle.join().unwrap());
    let replies: Vec<String> = serde_json::from_value(r["replies"].clone()).unwrap();
    assert_eq!(
        replies[0], replies[1],
        "the maildrop is a snapshot: {replies:?}"
    );
    assert!(replies[2].starts_with("-ERR No message 2"), "{replies:?}");
    assert!(
        script(&server, &["STAT"], &[])[0].starts_with("+OK 2 "),
        "the next session sees it"
    );
}

#[tokio::test]
async fn uidls_survive_a_restart() {
    let mut server = Server::start();
    server.add_user(USER);
    for n in 0..3 {
        server.deliver(USER, &awkward_message(n));
    }
    let before = fetch(&server, "stls", &[])["uidl"].clone();
    server.restart();
    let after = fetch(&server, "stls", &[])["uidl"].clone();
    assert_eq!(before, after);
    let ids: Vec<String> = serde_json::from_value(before).unwrap();
    let mut uniq: Vec<&str> = ids.iter().map(|l| l.split(' ').nth(1).unwrap()).collect();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), 3, "UIDLs are unique");
}

#[tokio::test]
async fn no_login_without_tls_and_bad_input_is_answered() {
    let server = Server::start();
    server.add_user(USER);
    let port = server.ports.pop3.to_string();
    let r = json(&server.pop3(&[
        "login",
        "--port",
        &port,
        "--security",
        "plain",
        "--user",
        USER,
        "--password",
        PASSWORD,
    ]));
    assert!(
        r["result"].as_str().unwrap().starts_with("-ERR [AUTH]"),
        "{r}"
    );
    let r = json(&server.pop3(&[
        "login",
        "--port",
        &port,
        "--user",
        USER,
        "--password",
        "wrong",
    ]));
    assert!(
        r["result"]
            .as_str()
            .unwrap()
            .starts_with("-ERR [AUTH] Authentication failed"),
        "{r}"
    );
    let long = format!("NOOP {}", "x".repeat(400));
    let replies = script(&server, &["RETR 7", "DELE x", "FROB", &long, "NOOP"], &[]);
    assert_eq!(replies[0], "-ERR No message 7");
    assert_eq!(replies[1], "-ERR Invalid message number");
    assert_eq!(replies[2], "-ERR Unknown command FROB");
    assert_eq!(replies[3], "-ERR Line too long");
    assert_eq!(replies[4], "+OK");
}

#[tokio::test]
async fn curl_lists_and_retrieves_over_pop3s() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("curl is not installed: this check runs in CI (.ci/run installs it)");
        return;
    }
    let server = Server::start();
    server.add_user(USER);
    let msg = awkward_message(5);
    server.deliver(USER, &msg);
    let url = format!("pop3s://127.0.0.1:{}/", server.ports.pop3s);
    let creds = format!("{USER}:{PASSWORD}");
    let list = std::process::Command::new("curl")
        .args(["-sk", "--max-time", "20", "-u", &creds, &url])
        .output()
        .unwrap();
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let stored_msgs = stored(&server).await;
    let size = stored_msgs[0].1.len();
    assert_eq!(
        String::from_utf8_lossy(&list.stdout).trim(),
        format!("1 {size}")
    );
    let one = std::process::Command::new("curl")
        .args(["-sk", "--max-time", "20", "-u", &creds, &format!("{url}1")])
        .output()
        .unwrap();
    assert!(one.status.success());
    assert_eq!(one.stdout, stored_msgs[0].1, "curl's RETR is byte-exact");
}

#[tokio::test]
async fn failed_logins_lock_the_user_out_of_every_protocol() {
    let server =
        Server::start_with("[auth]\ndelay_after = 10\nlockout_after = 3\nlockout = \"10m\"\n");
    server.add_user(USER);
    let port = server.ports.pop3.to_string();
    for _ in 0..3 {
        let r = json(&server.pop3(&[
            "login",
            "--port",
            &port,
            "--user",
            USER,
            "--password",
            "guess",
        ]));
        assert!(
            r["result"]
                .as_str()
                .unwrap()
                .starts_with("-ERR [AUTH] Authentication failed"),
            "{r}"
        );
    }
    let r = json(&server.pop3(&[
        "login",
        "--port",
        &port,
        "--user",
        USER,
        "--password",
        PASSWORD,
    ]));
    assert!(
        r["result"]
            .as_str()
            .unwrap()
            .contains("Too many failed logins"),
        "POP3 locked: {r}"
    );
    // The same throttle guards SMTP AUTH: 454, then the session is closed.
    let sub = server.ports.submission.to_string();
    // \0alice@localhost\0<PASSWORD>
    let plain = "AUTH PLAIN AGFsaWNlQGxvY2FsaG9zdABjb3JyZWN0IGhvcnNlIGJhdHRlcnk=";
    let r = json(&server.py(&[
        "script",
        "--port",
        &sub,
        "--security",
        "starttls",
        "--line",
        "EHLO c",
        "--line",
        plain,
    ]));
    assert_eq!(r["replies"][1][0], 454, "SMTP AUTH locked too: {r}");
    assert!(
        r["replies"][1][1].as_str().unwrap().starts_with("4.7.0"),
        "{r}"
    );
    assert!(
        server.log().contains("login refused: locked out"),
        "the lockout is logged"
    );
}
