//! End-to-end SMTP tests: the real binary, real sockets, Python's smtplib.

#![allow(clippy::unwrap_used)] // helpers assert by unwrapping, like the tests they serve

mod common;

use common::*;
use serde_json::Value;

fn message(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Alice <alice@localhost>\r\nTo: bob@localhost\r\nSubject: {subject}\r\nMessage-ID: <{subject}@client.test>\r\n\r\n{body}"
    )
    .into_bytes()
}

/// One smtplib delivery attempt.
struct Send<'a> {
    port: u16,
    security: &'a str,
    user: Option<&'a str>,
    from: &'a str,
    to: &'a [&'a str],
    extra: &'a [&'a str],
}

impl Send<'_> {
    fn run(&self, server: &Server, file: &std::path::Path) -> Value {
        let port = self.port.to_string();
        let file = file.to_str().unwrap().to_string();
        let mut args = vec![
            "send",
            "--port",
            &port,
            "--security",
            self.security,
            "--from",
            self.from,
            "--file",
            &file,
        ];
        for t in self.to {
            args.push("--to");
            args.push(t);
        }
        if let Some(u) = self.user {
            args.extend(["--user", u, "--password", PASSWORD]);
        }
        args.extend(self.extra);
        json(&server.py(&args))
    }
}

#[allow(clippy::too_many_arguments)] // mirrors the tool's command line, one value per flag
fn send(
    server: &Server,
    port: u16,
    security: &str,
    user: Option<&str>,
    from: &str,
    to: &[&str],
    file: &std::path::Path,
    extra: &[&str],
) -> Value {
    Send {
        port,
        security,
        user,
        from,
        to,
        extra,
    }
    .run(server, file)
}

/// The stored message must be exactly what the client sent, after our trace headers.
fn assert_stored_exactly(raw: &[u8], sent: &[u8]) {
    assert!(
        raw.len() > sent.len(),
        "stored message is shorter than what was sent"
    );
    assert_eq!(
        &raw[raw.len() - sent.len()..],
        sent,
        "the message body was altered"
    );
    let prefix = String::from_utf8_lossy(&raw[..raw.len() - sent.len()]).to_string();
    assert!(prefix.starts_with("Return-Path: <"), "{prefix}");
    assert!(prefix.contains("Received: from "), "{prefix}");
}

#[tokio::test]
async fn submission_starttls_auth_plain_stores_the_message_byte_for_byte() {
    let server = Server::start();
    server.add_user("alice@localhost");
    server.add_user("bob@localhost");
    let body = "Hello Bob,\r\n.a line starting with a dot\r\n..two dots\r\n.\r\nnot the end\r\n\r\n-- \r\nAlice\r\n";
    let sent = message("starttls", body);
    let file = write_file(server.dir.path(), "m1.eml", &sent);
    let r = send(
        &server,
        server.ports.submission,
        "starttls",
        Some("alice@localhost"),
        "alice@localhost",
        &["bob@localhost"],
        &file,
        &[],
    );
    assert_eq!(r["ok"], true, "{r}");
    let features: Vec<String> = serde_json::from_value(r["features"].clone()).unwrap();
    for f in [
        "auth",
        "chunking",
        "8bitmime",
        "smtputf8",
        "pipelining",
        "size",
        "enhancedstatuscodes",
    ] {
        assert!(
            features.contains(&f.to_string()),
            "missing {f}: {features:?}"
        );
    }
    let msgs = inbox(&server.store(), "bob@localhost").await;
    assert_eq!(msgs.len(), 1);
    let (rec, raw) = &msgs[0];
    assert_stored_exactly(raw, &sent);
    let text = String::from_utf8_lossy(raw);
    assert!(text.contains("with ESMTPSA id"), "{text}");
    assert!(text.contains("(version=TLSv1.3"), "{text}");
    assert!(
        text.contains("(authenticated as alice@localhost)"),
        "{text}"
    );
    assert!(text.starts_with("Return-Path: <alice@localhost>\r\n"));
    assert_eq!(rec.meta.subject.as_deref(), Some("starttls"));
    assert_eq!(rec.summary.size as usize, raw.len());
    // The sender kept its own Message-ID.
    assert_eq!(rec.meta.message_id.as_deref(), Some("starttls@client.test"));
}

#[tokio::test]
async fn submission_auth_login_and_implicit_tls_on_465() {
    let server = Server::start();
    server.add_user("alice@localhost");
    let sent = b"Subject: over 465\r\n\r\nno Message-ID or Date here\r\n".to_vec();
    let file = write_file(server.dir.path(), "m.eml", &sent);
    let r = send(
        &server,
        server.ports.submissions,
        "tls",
        Some("alice@localhost"),
        "alice@localhost",
        &["alice@localhost"],
        &file,
        &["--auth-mech", "LOGIN"],
    );
    assert_eq!(r["ok"], true, "{r}");
    let msgs = inbox(&server.store(), "alice@localhost").await;
    let (rec, raw) = &msgs[0];
    assert_stored_exactly(raw, &sent);
    let text = String::from_utf8_lossy(raw);
    assert!(
        text.contains("\r\nMessage-ID: <"),
        "submission adds Message-ID: {text}"
    );
    assert!(text.contains("\r\nDate: "), "submission adds Date: {text}");
    assert!(
        rec.meta
            .message_id
            .as_deref()
            .unwrap()
            .ends_with("@mx.test.example")
    );
}

#[tokio::test]
async fn submission_refuses_strangers_and_foreign_senders() {
    let server = Server::start_with(
        // Remote mail must stay queued: a resolver that answers nothing
        // (nothing listens on port 9) makes every attempt a temporary failure.
        "[relay]\nresolver = [\"127.0.0.1:9\"]\n",
    );
    server.add_user("alice@localhost");
    server.add_user("bob@localhost");
    let file = write_file(server.dir.path(), "m.eml", &message("x", "x\r\n"));
    // No AUTH at all.
    let r = send(
        &server,
        server.ports.submission,
        "starttls",
        None,
        "alice@localhost",
        &["bob@localhost"],
        &file,
        &[],
    );
    assert_eq!(
        (r["ok"].clone(), r["code"].clone()),
        (Value::Bool(false), Value::from(530)),
        "{r}"
    );
    // Wrong password.
    let r = server.submit(
        ("alice@localhost", "wrong"),
        "alice@localhost",
        &["bob@localhost"],
        &file,
    );
    assert_eq!(r["code"], 535, "{r}");
    // Someone else's address as sender.
    let r = send(
        &server,
        server.ports.submission,
        "starttls",
        Some("alice@localhost"),
        "bob@localhost",
        &["bob@localhost"],
        &file,
        &[],
    );
    assert_eq!(r["code"], 553, "{r}");
    assert!(r["message"].as_str().unwrap().starts_with("5.7.1"), "{r}");
    assert!(inbox(&server.store(), "bob@localhost").await.is_empty());
    // Remote recipients of an authenticated user are queued for relay.
    let r = send(
        &server,
        server.ports.submission,
        "starttls",
        Some("alice@localhost"),
        "alice@localhost",
        &["someone@example.org"],
        &file,
        &[],
    );
    assert_eq!(r["ok"], true, "{r}");
    assert!(
        r["refused"].as_object().is_some_and(|m| m.is_empty()),
        "{r}"
    );
    let queued = pochta_store::Store::queue_list(&server.store())
        .await
        .unwrap();
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].recipients[0].address.key(), "someone@example.org");
}

#[tokio::test]
async fn auth_is_never_offered_or_accepted_before_tls() {
    let server = Server::start();
    server.add_user("alice@localhost");
    let port = server.ports.submission.to_string();
    // \0alice@localhost\0<password>
    let plain = "AUTH PLAIN AGFsaWNlQGxvY2FsaG9zdABjb3JyZWN0IGhvcnNlIGJhdHRlcnk=";
    let r = json(&server.py(&[
        "script",
        "--port",
        &port,
        "--line",
        "EHLO c",
        "--line",
        plain,
        "--line",
        "MAIL FROM:<alice@localhost>",
    ]));
    let replies = r["replies"].as_array().unwrap();
    assert!(
        !replies[0][1].as_str().unwrap().contains("AUTH"),
        "AUTH advertised in clear: {r}"
    );
    assert!(replies[0][1].as_str().unwrap().contains("STARTTLS"));
    assert_eq!(replies[1][0], 538, "{r}");
    assert_eq!(replies[2][0], 530, "{r}");
    // And the MX never offers or takes AUTH, even under TLS.
    let mx = server.ports.smtp.to_string();
    let r = json(&server.py(&[
        "script",
        "--port",
        &mx,
        "--security",
        "starttls",
        "--line",
        "EHLO c",
        "--line",
        plain,
    ]));
    let replies = r["replies"].as_array().unwrap();
    assert!(!replies[0][1].as_str().unwrap().contains("AUTH"), "{r}");
    assert_eq!(replies[1][0], 503, "{r}");
}

#[tokio::test]
async fn mx_delivers_locally_and_relays_nothing() {
    let server = Server::start();
    server.add_user("bob@localhost");
    let cli = server.cli(
        &["alias", "add", "team@example.test", "bob@localhost"],
        None,
    );
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let sent = message("from-outside", "hello from another server\r\n");
    let file = write_file(server.dir.path(), "m.eml", &sent);
    let r = send(
        &server,
        server.ports.smtp,
        "plain",
        None,
        "someone@remote.example",
        &["Bob@LOCALHOST", "team@example.test"],
        &file,
        &[],
    );
    assert_eq!(r["ok"], true, "{r}");
    let msgs = inbox(&server.store(), "bob@localhost").await;
    assert_eq!(
        msgs.len(),
        1,
        "two recipients reaching one account: one copy"
    );
    assert_stored_exactly(&msgs[0].1, &sent);
    let text = String::from_utf8_lossy(&msgs[0].1);
    assert!(text.contains("with ESMTP id"), "{text}");
    assert!(!text.contains("Message-ID: <") || text.contains("<from-outside@client.test>"));

    let port = server.ports.smtp.to_string();
    let r = json(&server.py(&[
        "script",
        "--port",
        &port,
        "--line",
        "EHLO c",
        "--line",
        "MAIL FROM:<a@remote.example>",
        "--line",
        "RCPT TO:<nobody@localhost>",
        "--line",
        "RCPT TO:<victim@example.org>",
        "--line",
        "RCPT TO:<victim%example.org@localhost>",
        "--line",
        "RCPT TO:<@localhost:victim@example.org>",
        "--line",
        "RCPT TO:<victim@example.org.>",
        "--line",
        "RCPT TO:<bob@localhost>",
    ]));
    let codes: Vec<i64> = r["replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x[0].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [250, 250, 550, 550, 550, 550, 550, 250], "{r}");
    let texts: Vec<&str> = r["replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x[1].as_str().unwrap())
        .collect();
    assert!(texts[2].starts_with("5.1.1"), "{r}");
    assert!(texts[3].starts_with("5.7.1"), "{r}");
}

#[tokio::test]
async fn smtputf8_addresses_and_8bit_bodies() {
    let server = Server::start();
    server.add_user("пётр@пример.рф");
    let sent = "From: Алиса <alice@localhost>\r\nSubject: Привет, Пётр\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nЭто письмо в UTF-8.\r\n".as_bytes().to_vec();
    let file = write_file(server.dir.path(), "m.eml", &sent);
    let r = send(
        &server,
        server.ports.smtp,
        "plain",
        None,
        "алиса@пример.рф",
        &["ПЁТР@ПРИМЕР.РФ"],
        &file,
        &["--smtputf8", "--eightbit"],
    );
    assert_eq!(r["ok"], true, "{r}");
    let msgs = inbox(&server.store(), "пётр@xn--e1afmkfd.xn--p1ai").await;
    assert_eq!(msgs.len(), 1);
    assert_stored_exactly(&msgs[0].1, &sent);
    assert_eq!(msgs[0].0.meta.subject.as_deref(), Some("Привет, Пётр"));
    let text = String::from_utf8_lossy(&msgs[0].1);
    assert!(text.contains("with UTF8SMTP id"), "{text}");
}

#[tokio::test]
async fn twenty_mib_message_round_trips() {
    let server = Server::start();
    server.add_user("bob@localhost");
    let mut sent = b"Subject: big\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
    let mut seed: u32 = 7;
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    while sent.len() < 20 * 1024 * 1024 {
        for _ in 0..76 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            sent.push(alphabet[(seed >> 16) as usize % 64]);
        }
        sent.extend_from_slice(b"\r\n");
    }
    let file = write_file(server.dir.path(), "big.eml", &sent);
    let r = send(
        &server,
        server.ports.submission,
        "starttls",
        None,
        "x@remote.example",
        &["bob@localhost"],
        &file,
        &[],
    );
    assert_eq!(r["code"], 530, "submission still wants AUTH: {r}");
    let r = send(
        &server,
        server.ports.smtp,
        "plain",
        None,
        "x@remote.example",
        &["bob@localhost"],
        &file,
        &[],
    );
    assert_eq!(r["ok"], true, "{r}");
    let msgs = inbox(&server.store(), "bob@localhost").await;
    assert_eq!(msgs.len(), 1);
    assert_stored_exactly(&msgs[0].1, &sent);
}

#[tokio::test]
async fn bdat_chunks_are_joined() {
    let server = Server::start();
    server.add_user("bob@localhost");
    let sent = message("chunked", &"0123456789abcdef\r\n".repeat(500));
    let file = write_file(server.dir.path(), "m.eml", &sent);
    let r = send(
        &server,
        server.ports.smtp,
        "plain",
        None,
        "x@remote.example",
        &["bob@localhost"],
        &file,
        &["--bdat", "1000"],
    );
    assert_eq!(r["ok"], true, "{r}");
    let msgs = inbox(&server.store(), "bob@localhost").await;
    assert_stored_exactly(&msgs[0].1, &sent);
}

#[tokio::test]
async fn limits_answer_with_the_proper_codes() {
    let server = Server::start_with(
        "[limits]\nmessage_size = \"64k\"\nrecipients = 2\nconnections_per_ip = 3\n",
    );
    server.add_user("bob@localhost");
    server.add_user("carol@localhost");
    server.add_user("dave@localhost");
    let big = message(
        "big",
        &(0..70)
            .map(|_| {
                "x".repeat(996)
                    + "
"
            })
            .collect::<String>(),
    );
    let file = write_file(server.dir.path(), "big.eml", &big);
    let r = send(
        &server,
        server.ports.smtp,
        "plain",
        None,
        "x@remote.example",
        &["bob@localhost"],
        &file,
        &[],
    );
    assert_eq!(r["code"], 552, "{r}");
    let small = write_file(server.dir.path(), "s.eml", &message("s", "s\r\n"));
    let r = send(
        &server,
        server.ports.smtp,
        "plain",
        None,
        "x@remote.example",
        &["bob@localhost", "carol@localhost", "dave@localhost"],
        &small,
        &[],
    );
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["refused"]["dave@localhost"][0], 452, "{r}");
    let port = server.ports.smtp.to_string();
    let long = format!("NOOP {}", "x".repeat(1200));
    let r = json(&server.py(&["script", "--port", &port, "--line", &long, "--line", "NOOP"]));
    assert_eq!(r["replies"][0][0], 500, "{r}");
    assert!(
        r["replies"][0][1].as_str().unwrap().starts_with("5.5.2"),
        "{r}"
    );
    assert_eq!(r["replies"][1][0], 250, "the session goes on: {r}");

    // Per-IP connection limit: the fourth connection is told 421 and closed.
    use std::io::{BufRead, BufReader};
    let conns: Vec<_> = (0..3)
        .map(|_| {
            let s = std::net::TcpStream::connect(("127.0.0.1", server.ports.smtp)).unwrap();
            let mut line = String::new();
            BufReader::new(s.try_clone().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert!(line.starts_with("220 "), "{line}");
            s
        })
        .collect();
    let extra = std::net::TcpStream::connect(("127.0.0.1", server.ports.smtp)).unwrap();
    let mut line = String::new();
    BufReader::new(extra).read_line(&mut line).unwrap();
    assert!(line.starts_with("421 4.7.0"), "{line}");
    drop(conns);
    // Honest clients are served again once the slots free up.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = send(
            &server,
            server.ports.smtp,
            "plain",
            None,
            "x@remote.example",
            &["bob@localhost"],
            &small,
            &[],
        );
        if r["ok"] == true {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server did not recover: {r}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[tokio::test]
async fn the_certificate_is_reused_and_verifies_for_localhost_and_127_0_0_1() {
    let mut server = Server::start();
    let cert = server.cert_path();
    let first = std::fs::read(&cert).expect("certificate generated on first start");
    server.restart();
    assert_eq!(
        std::fs::read(&cert).unwrap(),
        first,
        "the certificate is reused"
    );
    let port = server.ports.submissions.to_string();
    for host in ["localhost", "127.0.0.1", "mx.test.example"] {
        let r = json(&server.py(&[
            "verify-cert",
            "--port",
            &port,
            "--cafile",
            cert.to_str().unwrap(),
            "--host",
            host,
        ]));
        assert_eq!(r["ok"], true, "{host}: {r}");
        assert!(
            r["banner"]
                .as_str()
                .unwrap()
                .starts_with("220 mx.test.example"),
            "{r}"
        );
    }
    let r = json(&server.py(&[
        "verify-cert",
        "--port",
        &port,
        "--cafile",
        cert.to_str().unwrap(),
        "--host",
        "other.example",
    ]));
    assert_eq!(
        r["ok"], false,
        "a name not in the certificate must fail: {r}"
    );
}

#[tokio::test]
async fn sigterm_lets_a_message_in_transfer_finish() {
    use std::io::{BufRead, BufReader, Write};
    let mut server = Server::start();
    server.add_user("bob@localhost");
    let stream = std::net::TcpStream::connect(("127.0.0.1", server.ports.smtp)).unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    let mut expect = |r: &mut BufReader<std::net::TcpStream>, prefix: &str| {
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                break;
            }
        }
        assert!(line.starts_with(prefix), "expected {prefix}, got {line:?}");
    };
    expect(&mut r, "220");
    w.write_all(b"EHLO c\r\n").unwrap();
    expect(&mut r, "250");
    w.write_all(b"MAIL FROM:<a@remote.example>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n")
        .unwrap();
    expect(&mut r, "250");
    expect(&mut r, "250");
    expect(&mut r, "354");
    w.write_all(b"Subject: in flight\r\n\r\nfirst half\r\n")
        .unwrap();
    // SIGTERM while the body is arriving; the server must wait for it.
    let pid_kill = std::thread::spawn(move || {
        let status = server.terminate();
        (status, server)
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    w.write_all(b"second half\r\n.\r\n").unwrap();
    expect(&mut r, "250 2.0.0");
    expect(&mut r, "421 4.3.2");
    let (status, old) = pid_kill.join().unwrap();
    assert!(status.success(), "exit status {status}");
    let msgs = inbox(&old.store(), "bob@localhost").await;
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].1.ends_with(b"first half\r\nsecond half\r\n"));
    // New connections were refused during shutdown.
    assert!(std::net::TcpStream::connect(("127.0.0.1", old.ports.smtp)).is_err());
}

#[test]
fn idle_clients_are_timed_out_with_421() {
    use std::io::{BufRead, BufReader, Write};
    let server = Server::start_with("[limits]\ncommand_timeout = \"1s\"\ndata_timeout = \"1s\"\n");
    for partial in [&b""[..], b"EHLO c\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<postmaster@localhost>\r\nDATA\r\nhalf a mess"] {
        let stream = std::net::TcpStream::connect(("127.0.0.1", server.ports.smtp)).unwrap();
        stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let mut w = stream.try_clone().unwrap();
        w.write_all(partial).unwrap();
        let mut last = String::new();
        for line in BufReader::new(stream).lines() {
            match line {
                Ok(l) => last = l,
                Err(_) => break,
            }
        }
        assert!(last.starts_with("421 4.4.2"), "last line was {last:?}");
    }
}

/// Slow-loris: a client that trickles a command a byte at a time is cut off
/// when the command timeout has passed since its last progress, though no
/// single read waited that long.
#[test]
fn trickling_clients_are_cut_off_at_the_command_timeout() {
    let server = Server::start_with("[limits]\ncommand_timeout = \"2s\"\n");
    // A command that never ends, a byte every 200 ms for at most 12 s.
    let payload = [&b"EHLO "[..], &[b'a'; 55]].concat();
    let (text, elapsed) = trickle(server.ports.smtp, &payload, b"421 ");
    assert!(text.starts_with("220 "), "{text:?}");
    assert!(
        text.contains("421 4.4.2"),
        "no 421 after {elapsed:?}: {text:?}"
    );
    assert!(
        elapsed < std::time::Duration::from_secs(8),
        "cut off only after {elapsed:?}"
    );
}

/// Regression: a client reconnecting the moment it read 221 was sometimes refused
/// with 421 because its old connection still held the per-IP slot. Eight clients
/// that each reconnect at once use all eight slots of their IP all the time.
#[test]
fn reconnecting_right_after_quit_is_never_refused() {
    use std::io::{BufRead, BufReader, Write};
    let server = Server::start_with("[limits]\nconnections_per_ip = 8\n");
    let port = server.ports.smtp;
    let clients: Vec<_> = (0..8)
        .map(|c| {
            std::thread::spawn(move || {
                for i in 0..60 {
                    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                    let mut w = stream.try_clone().unwrap();
                    let mut r = BufReader::new(stream);
                    let mut line = String::new();
                    r.read_line(&mut line).unwrap();
                    assert!(
                        line.starts_with("220 "),
                        "client {c}, connection {i}: {line:?}"
                    );
                    w.write_all(b"QUIT\r\n").unwrap();
                    line.clear();
                    r.read_line(&mut line).unwrap();
                    assert!(
                        line.starts_with("221 "),
                        "client {c}, connection {i}: {line:?}"
                    );
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
}
