//! The relay end to end: two pochta servers on loopback with their own domains,
//! a DNS server the test controls, mail from a user of one to a user of the
//! other, DKIM/SPF/DMARC on the way, reports back, and the queue surviving a
//! receiver that is down and a sender that is killed.

#![allow(clippy::unwrap_used)] // helpers assert by unwrapping, like the tests they serve

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::*;
use pochta_store::{Role, SqliteStore, Store};
use pochta_testdns::TestDns;
use serde_json::Value;

const A_HEAD: &str = "hostname = \"mx.a.test\"\ndomains = [\"a.test\"]";
const B_HEAD: &str = "hostname = \"mx.b.test\"\ndomains = [\"b.test\", \"c.test\"]";

/// B: checks everything, also from loopback, and refuses DMARC p=reject failures.
fn b_extra(dns: &TestDns) -> String {
    format!(
        "[relay]\nresolver = [\"{}\"]\n\n[checks]\nskip = []\nreject_dmarc = true\n",
        dns.addr()
    )
}

/// A: routes b.test to B, uses MX lookups (on B's port) for everything else,
/// retries every second.
fn a_extra(dns: &TestDns, b: &Server, queue: &str) -> String {
    format!(
        "[relay]\nresolver = [\"{}\"]\nmx_port = {}\n\n[relay.routes]\n\"b.test\" = \"127.0.0.1:{}\"\n\n[queue]\nretry = \"1s\"\nmax_retry = \"1s\"\n{queue}\n",
        dns.addr(),
        b.ports.smtp,
        b.ports.smtp
    )
}

/// DNS for a.test: SPF allowing loopback, DMARC p=reject, and the DKIM keys
/// `pochta dkim generate` printed.
fn publish_a(dns: &TestDns, a: &Server) {
    let out = a.cli(&["dkim", "generate", "a.test"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut keys = 0;
    for line in text.lines().filter(|l| l.contains("._domainkey.")) {
        let (name, rest) = line.split_once(". IN TXT ").unwrap();
        // Join the zone-file strings: "a" "b" -> ab.
        let value: String = rest.split('"').skip(1).step_by(2).collect();
        dns.add_txt(name, &value);
        keys += 1;
    }
    assert_eq!(keys, 2, "an Ed25519 and an RSA key: {text}");
    dns.add_txt("a.test", "v=spf1 ip4:127.0.0.1 -all");
    dns.add_txt("_dmarc.a.test", "v=DMARC1; p=reject");
}

struct Pair {
    dns: TestDns,
    a: Server,
    b: Server,
}

fn pair(queue: &str) -> Pair {
    let dns = TestDns::start().unwrap();
    let b = Server::start_as(B_HEAD, &b_extra(&dns));
    b.add_user("bob@b.test");
    b.add_user("carol@c.test");
    let a = Server::start_as(A_HEAD, &a_extra(&dns, &b, queue));
    a.add_user("alice@a.test");
    publish_a(&dns, &a);
    Pair { dns, a, b }
}

/// Submits a message as alice through A's submission port (STARTTLS, AUTH).
fn submit(a: &Server, to: &[&str], subject: &str, extra_headers: &str) -> Value {
    let msg = format!(
        "From: Alice <alice@a.test>\r\nTo: {}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@a.test>\r\n{extra_headers}\r\nHello from A: {subject}\r\n",
        to.join(", ")
    );
    let file = write_file(a.dir.path(), &format!("{subject}.eml"), msg.as_bytes());
    a.submit(("alice@a.test", PASSWORD), "alice@a.test", to, &file)
}

async fn inbox_messages(store: &SqliteStore, address: &str) -> Vec<String> {
    let Some(account) = store
        .account(&pochta_addr::Address::parse(address).unwrap())
        .await
        .unwrap()
    else {
        return Vec::new();
    };
    let inbox = store
        .mailboxes(account.id)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.role == Some(Role::Inbox))
        .unwrap();
    let mut out = Vec::new();
    for m in store.messages(account.id, inbox.id).await.unwrap() {
        let raw = store.read_blob(account.id, m.blob_id).await.unwrap();
        out.push(String::from_utf8_lossy(&raw).into_owned());
    }
    out
}

/// Waits (bounded) until `address`'s INBOX holds a message containing `needle`.
async fn wait_for(server: &Server, address: &str, needle: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let store = server.store();
        if let Some(m) = inbox_messages(&store, address)
            .await
            .into_iter()
            .find(|m| m.contains(needle))
        {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "no message with {needle:?} for {address} after {secs}s; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn queue_len(server: &Server) -> usize {
    server.store().queue_list().await.unwrap().len()
}

#[tokio::test]
async fn mail_crosses_to_the_other_server_signed_and_checked() {
    let p = pair("");
    let r = submit(&p.a, &["bob@b.test"], "hello-b", "");
    assert_eq!(r["ok"], true, "{r}");
    let m = wait_for(&p.b, "bob@b.test", "Hello from A: hello-b", 20).await;
    // A signed with both keys; B verified both, and SPF and DMARC.
    assert!(m.contains("a=ed25519-sha256;"), "{m}");
    assert!(m.contains("a=rsa-sha256;"), "{m}");
    let ar = m
        .split("\r\n")
        .skip_while(|l| !l.starts_with("Authentication-Results: mx.b.test"))
        .take_while(|l| !l.starts_with("Received:"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(ar.contains("dkim=pass"), "{ar}");
    assert!(!ar.contains("dkim=fail"), "both signatures pass: {ar}");
    assert!(ar.contains("spf=pass"), "{ar}");
    assert!(ar.contains("dmarc=pass"), "{ar}");
    // One Return-Path, B's: A does not pass its own on.
    assert_eq!(m.matches("Return-Path:").count(), 1, "{m}");
    assert!(m.starts_with("Return-Path: <alice@a.test>\r\n"), "{m}");
    // Received headers of both hops.
    assert!(m.contains("by mx.a.test (pochta)"), "{m}");
    assert!(m.contains("by mx.b.test (pochta)"), "{m}");
    // The queue is empty again, and the DNS server was asked.
    for _ in 0..50 {
        if queue_len(&p.a).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(queue_len(&p.a).await, 0);
    assert!(p.dns.queries() > 0);
}

#[tokio::test]
async fn an_unknown_user_bounces_back_to_the_sender() {
    let p = pair("");
    let r = submit(&p.a, &["nobody@b.test", "bob@b.test"], "mixed", "");
    assert_eq!(r["ok"], true, "{r}");
    wait_for(&p.b, "bob@b.test", "Hello from A: mixed", 20).await;
    let dsn = wait_for(
        &p.a,
        "alice@a.test",
        "Final-Recipient: rfc822; nobody@b.test",
        20,
    )
    .await;
    assert!(dsn.contains("Action: failed"), "{dsn}");
    assert!(dsn.contains("Status: 5.1.1"), "{dsn}");
    assert!(dsn.contains("Diagnostic-Code: smtp; 550 5.1.1"), "{dsn}");
    assert!(dsn.contains("Remote-MTA: dns; 127.0.0.1"), "{dsn}");
    assert!(
        dsn.contains("From: \"Mail Delivery System\" <MAILER-DAEMON@mx.a.test>"),
        "{dsn}"
    );
    assert!(
        !dsn.contains("Final-Recipient: rfc822; bob@b.test"),
        "{dsn}"
    );
    assert!(
        dsn.contains("Hello from A: mixed"),
        "the message comes back: {dsn}"
    );
}

#[tokio::test]
async fn mail_waits_while_the_receiver_is_down() {
    let mut p = pair("");
    p.b.terminate();
    let r = submit(&p.a, &["bob@b.test"], "patience", "");
    assert_eq!(r["ok"], true, "{r}");
    // Queued, attempted, and failing with a connection error.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let q = p.a.store().queue_list().await.unwrap();
        if let Some(r) = q.first().map(|m| &m.recipients[0])
            && r.attempts >= 1
        {
            let e = r.last_error.clone().unwrap_or_default();
            assert!(e.contains("127.0.0.1"), "{e}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no attempt: {q:?}\n{}",
            p.a.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let list = p.a.cli(&["queue", "list"], None);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("<bob@b.test>") && text.contains("queued"),
        "{text}"
    );
    p.b.start_again();
    wait_for(&p.b, "bob@b.test", "Hello from A: patience", 20).await;
}

#[tokio::test]
async fn expired_mail_bounces() {
    let mut p = pair("expire = \"2s\"\n");
    p.b.terminate();
    submit(&p.a, &["bob@b.test"], "too-late", "");
    let dsn = wait_for(
        &p.a,
        "alice@a.test",
        "Final-Recipient: rfc822; bob@b.test",
        20,
    )
    .await;
    assert!(dsn.contains("Action: failed"), "{dsn}");
    assert!(
        dsn.contains("Status: 4."),
        "the last temporary status: {dsn}"
    );
    assert!(dsn.contains("given up"), "{dsn}");
    assert_eq!(queue_len(&p.a).await, 0);
}

#[tokio::test]
async fn mx_records_null_mx_and_missing_domains() {
    let p = pair("");
    // c.test is hosted on B, found through its MX.
    p.dns.add_mx("c.test", 10, "mx.c.test");
    p.dns.add_a("mx.c.test", Ipv4Addr::LOCALHOST);
    p.dns.add_mx("nullmx.test", 0, ".");
    let r = submit(
        &p.a,
        &["carol@c.test", "x@nullmx.test", "y@nosuch.test"],
        "routing",
        "",
    );
    assert_eq!(r["ok"], true, "{r}");
    wait_for(&p.b, "carol@c.test", "Hello from A: routing", 20).await;
    let null = wait_for(
        &p.a,
        "alice@a.test",
        "Final-Recipient: rfc822; x@nullmx.test",
        20,
    )
    .await;
    assert!(null.contains("Status: 5.1.10"), "{null}");
    let nx = wait_for(
        &p.a,
        "alice@a.test",
        "Final-Recipient: rfc822; y@nosuch.test",
        20,
    )
    .await;
    assert!(nx.contains("Status: 5.1.2"), "{nx}");
}

#[tokio::test]
async fn forged_mail_fails_dmarc_and_is_refused() {
    let p = pair("");
    // Claims to be from a.test, sent straight to B's MX from another envelope
    // domain, unsigned: DMARC fails and a.test says p=reject.
    let msg = b"From: alice@a.test\r\nSubject: forged\r\nMessage-ID: <forged@evil.test>\r\n\r\nPay me.\r\n";
    let file = write_file(p.b.dir.path(), "forged.eml", msg);
    let port = p.b.ports.smtp.to_string();
    let r = json(&p.b.py(&[
        "send",
        "--port",
        &port,
        "--from",
        "x@evil.test",
        "--to",
        "bob@b.test",
        "--file",
        file.to_str().unwrap(),
    ]));
    assert_eq!(r["code"], 550, "{r}");
    assert!(r["message"].as_str().unwrap().contains("5.7.1"), "{r}");
    assert!(r["message"].as_str().unwrap().contains("DMARC"), "{r}");
    // A forged Authentication-Results claiming B's name is removed.
    let msg = b"Authentication-Results: mx.b.test; dkim=pass header.d=a.test\r\nFrom: x@evil.test\r\nSubject: sneaky\r\n\r\nhi\r\n";
    let file = write_file(p.b.dir.path(), "sneaky.eml", msg);
    let r = json(&p.b.py(&[
        "send",
        "--port",
        &port,
        "--from",
        "x@evil.test",
        "--to",
        "bob@b.test",
        "--file",
        file.to_str().unwrap(),
    ]));
    assert_eq!(r["ok"], true, "{r}");
    let m = wait_for(&p.b, "bob@b.test", "Subject: sneaky", 10).await;
    assert!(!m.contains("dkim=pass header.d=a.test"), "{m}");
    assert_eq!(
        m.matches("Authentication-Results: mx.b.test").count(),
        1,
        "{m}"
    );
}

#[tokio::test]
async fn a_killed_sender_delivers_its_queue_exactly_once_after_restart() {
    let mut p = pair("");
    p.b.terminate();
    let n = 30;
    for i in 0..n {
        let r = submit(&p.a, &["bob@b.test"], &format!("crash-{i}"), "");
        assert_eq!(r["ok"], true, "{r}");
    }
    // Everything acknowledged is in the queue, attempts failing meanwhile.
    assert_eq!(queue_len(&p.a).await, n);
    p.a.kill9();
    p.b.start_again();
    p.a.start_again();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if queue_len(&p.a).await == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "queue not drained:\n{}",
            p.a.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let got = inbox_messages(&p.b.store(), "bob@b.test").await;
    for i in 0..n {
        let id = format!("Message-ID: <crash-{i}@a.test>");
        let count = got.iter().filter(|m| m.contains(&id)).count();
        assert_eq!(count, 1, "{id} arrived {count} times");
    }
    assert_eq!(got.len(), n);
}
