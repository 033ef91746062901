//! The security review, end to end (docs/SECURITY.md names the test behind
//! each defence): no open relay on any listener, no login before TLS, no
//! clear text smuggled behind STARTTLS, TLS 1.2 or later only, accounts
//! isolated over IMAP, POP3 and JMAP, no header or SMTP command injection
//! through the CLI or JMAP, and no password in the logs, even at `trace`.

#![allow(clippy::unwrap_used)] // helpers assert by unwrapping, like the tests they serve

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::jmap::{Auth, Jmap, USING};
use common::*;
use pochta_addr::Address;
use pochta_store::{SqliteStore, Store};
use serde_json::{Value, json};

const ALICE: &str = "alice@localhost";
const BOB: &str = "bob@localhost";

/// Remote mail stays queued (nothing answers DNS on port 9), a session may
/// make many mistakes, and the throttle does not get in the way of tests
/// that fail logins on purpose.
const EXTRA: &str = "[relay]\nresolver = [\"127.0.0.1:9\"]\n\n[limits]\nerrors = 100\n\n\
                     [auth]\ndelay_after = 100\nlockout_after = 200\n";

fn server() -> Server {
    let server = Server::start_with(EXTRA);
    server.add_user(ALICE);
    server.add_user(BOB);
    server
}

fn b64(s: &str) -> String {
    STANDARD.encode(s)
}

/// `AUTH PLAIN`'s initial response: authzid NUL authcid NUL password.
fn plain(authzid: &str, user: &str, password: &str) -> String {
    b64(&format!("{authzid}\0{user}\0{password}"))
}

/// Sends raw SMTP command lines (UTF-8); every reply as (code, text).
fn smtp(port: u16, security: &str, lines: &[&str]) -> Vec<(i64, String)> {
    let port = port.to_string();
    let mut args = vec!["smtp", "--port", &port, "--security", security];
    for l in lines {
        args.extend(["--line", l]);
    }
    let r = probe(&args);
    r["replies"]
        .as_array()
        .unwrap_or_else(|| panic!("no replies: {r}"))
        .iter()
        .map(|x| (x[0].as_i64().unwrap(), x[1].as_str().unwrap().to_string()))
        .collect()
}

/// Runs `tests/py/security_tool.py ARGS`.
fn probe(args: &[&str]) -> Value {
    json(&python_tool("security_tool.py", args))
}

/// Runs raw IMAP command lines (after LOGIN when `user` is given); the
/// responses of each command.
fn imap(server: &Server, security: &str, user: Option<&str>, lines: &[&str]) -> Value {
    let port = match security {
        "tls" => server.ports.imaps,
        _ => server.ports.imap,
    }
    .to_string();
    let mut args = vec!["raw", "--port", &port, "--security", security];
    if let Some(u) = user {
        args.extend(["--user", u, "--password", PASSWORD]);
    }
    for l in lines {
        args.extend(["--line", l]);
    }
    json(&server.imap(&args))
}

/// The tagged (last) line of each IMAP command's responses.
fn tagged(r: &Value) -> Vec<String> {
    r["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|lines| {
            lines
                .as_array()
                .unwrap()
                .last()
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// POP3 commands, one reply line each (with `--no-login` unless `login`).
fn pop3(
    server: &Server,
    security: &str,
    login: Option<(&str, &str)>,
    lines: &[&str],
) -> Vec<String> {
    let port = server.ports.pop3.to_string();
    let mut args = vec!["script", "--port", &port, "--security", security];
    match login {
        Some((u, p)) => args.extend(["--user", u, "--password", p]),
        None => args.push("--no-login"),
    }
    for l in lines {
        args.extend(["--line", l]);
    }
    let r = json(&server.pop3(&args));
    r["replies"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

async fn queue_len(store: &SqliteStore) -> usize {
    store.queue_list().await.unwrap().len()
}

/// Every message of every mailbox of an account, as text.
async fn all_mail(store: &SqliteStore, address: &str) -> Vec<String> {
    let account = store
        .account(&Address::parse(address).unwrap())
        .await
        .unwrap()
        .unwrap();
    let mut out = Vec::new();
    for mb in store.mailboxes(account.id).await.unwrap() {
        for m in store.messages(account.id, mb.id).await.unwrap() {
            let raw = store.read_blob(account.id, m.blob_id).await.unwrap();
            out.push(String::from_utf8_lossy(&raw).into_owned());
        }
    }
    out
}

async fn mailbox_names(store: &SqliteStore, address: &str) -> Vec<String> {
    let account = store
        .account(&Address::parse(address).unwrap())
        .await
        .unwrap()
        .unwrap();
    let mut names: Vec<String> = store
        .mailboxes(account.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    names.sort();
    names
}

/// The header section of a message, one unfolded-or-not line each.
fn header_lines(raw: &str) -> Vec<&str> {
    let end = raw.find("\r\n\r\n").unwrap_or(raw.len());
    raw[..end].split("\r\n").collect()
}

/// No header line of `raw` starts with one of `names` (case-insensitive).
fn assert_no_header(raw: &str, names: &[&str]) {
    for line in header_lines(raw) {
        for n in names {
            assert!(
                !line
                    .to_ascii_lowercase()
                    .starts_with(&n.to_ascii_lowercase()),
                "injected header line {line:?} in:\n{raw}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Open relay
// ---------------------------------------------------------------------------

/// RCPT paths that try to get mail out through a local name, with the reply
/// the MX must give: 5.7.1 (not ours, relaying denied) or 5.1.1 (one of our
/// domains, no such user).
const RELAY_TRICKS: &[(&str, i64, &str)] = &[
    ("<user@remote.example>", 550, "5.7.1"),
    ("<@a.example:user@remote.example>", 550, "5.7.1"),
    ("<@localhost:user@remote.example>", 550, "5.7.1"),
    ("<@a.example,@localhost:user@remote.example>", 550, "5.7.1"),
    ("<user%remote.example@localhost>", 550, "5.1.1"),
    ("<user%remote.example@LocalHost>", 550, "5.1.1"),
    ("<remote.example!user@localhost>", 550, "5.1.1"),
    ("<\"user@remote.example\"@localhost>", 550, "5.1.1"),
    ("<\"user%remote.example\"@localhost>", 550, "5.1.1"),
    ("<\"bob@remote.example\"@example.test>", 550, "5.1.1"),
    // The command parser (smtp-proto) takes no address literals at all.
    ("<user@[127.0.0.1]>", 553, "5.1.3"),
    ("<bob@[127.0.0.1]>", 553, "5.1.3"),
    ("<user@[192.0.2.1]>", 553, "5.1.3"),
    ("<user@[IPv6:::1]>", 553, "5.1.3"),
    ("<user@remote.example.>", 550, "5.7.1"),
    ("<user@REMOTE.Example>", 550, "5.7.1"),
    ("<user@localhost.remote.example>", 550, "5.7.1"),
    ("<user@remote.example.localhost>", 550, "5.7.1"),
    ("<user@xn--mller-kva.example>", 550, "5.7.1"),
    ("<nobody@xn--e1afmkfd.xn--p1ai>", 550, "5.1.1"),
    ("<nobody@LOCALHOST.>", 550, "5.1.1"),
];

/// The same with UTF-8 (MAIL … SMTPUTF8): IDN domains are compared as
/// A-labels, and look-alikes of local names are other domains.
const RELAY_TRICKS_UTF8: &[(&str, i64, &str)] = &[
    ("<user@müller.example>", 550, "5.7.1"),
    ("<юзер@remote.example>", 550, "5.7.1"),
    ("<nobody@пример.рф>", 550, "5.1.1"),
    ("<nobody@ПРИМЕР.РФ>", 550, "5.1.1"),
    // Cyrillic о and с: not "localhost".
    ("<bob@lосalhost>", 550, "5.7.1"),
    // Full-width letters and the ideographic full stop map to remote.example.
    ("<user@ｒｅｍｏｔｅ.example>", 550, "5.7.1"),
    ("<user@remote。example>", 550, "5.7.1"),
];

/// Local names in unusual spellings stay local (accepted for bob, nobody
/// else): source routes are ignored (RFC 5321 §4.1.1.3), case and a trailing
/// dot do not matter.
const LOCAL_SPELLINGS: &[&str] = &[
    "<BOB@LocalHost>",
    "<bob@localhost.>",
    "<@remote.example:bob@localhost>",
    "<\"bob\"@localhost>",
];

fn assert_codes(replies: &[(i64, String)], expected: &[(&str, i64, &str)], context: &str) {
    assert_eq!(replies.len(), expected.len(), "{context}: {replies:?}");
    for ((rcpt, code, status), (got, text)) in expected.iter().zip(replies) {
        assert_eq!(
            (*got, text.split_whitespace().next().unwrap_or("")),
            (*code, *status),
            "{context}: RCPT TO:{rcpt} got {got} {text}"
        );
    }
}

#[tokio::test]
async fn no_listener_relays_for_a_stranger() {
    let server = server();
    let store = server.store();
    let rcpts = |tricks: &[(&str, i64, &str)]| -> Vec<String> {
        tricks
            .iter()
            .map(|(r, _, _)| format!("RCPT TO:{r}"))
            .collect()
    };

    // The MX (port 25): every trick is refused with the exact code, in
    // clear text and under STARTTLS alike.
    for security in ["plain", "starttls"] {
        let mut lines = vec!["EHLO c".to_string(), "MAIL FROM:<x@remote.example>".into()];
        lines.extend(rcpts(RELAY_TRICKS));
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let replies = smtp(server.ports.smtp, security, &lines);
        assert_eq!(replies[1].0, 250, "{replies:?}");
        assert_codes(&replies[2..], RELAY_TRICKS, &format!("MX, {security}"));

        let mut lines = vec![
            "EHLO c".to_string(),
            "MAIL FROM:<x@remote.example> SMTPUTF8".into(),
        ];
        lines.extend(rcpts(RELAY_TRICKS_UTF8));
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let replies = smtp(server.ports.smtp, security, &lines);
        assert_eq!(replies[1].0, 250, "{replies:?}");
        assert_codes(
            &replies[2..],
            RELAY_TRICKS_UTF8,
            &format!("MX UTF-8, {security}"),
        );
    }
    // Without SMTPUTF8, a UTF-8 address is refused before it is looked at.
    let replies = smtp(
        server.ports.smtp,
        "plain",
        &[
            "EHLO c",
            "MAIL FROM:<x@remote.example>",
            "RCPT TO:<user@müller.example>",
        ],
    );
    assert_eq!(replies[2].0, 553, "{replies:?}");
    assert!(replies[2].1.starts_with("5.6.7"), "{replies:?}");
    // Malformed paths are syntax errors, not relays.
    let replies = smtp(
        server.ports.smtp,
        "plain",
        &[
            "EHLO c",
            "MAIL FROM:<x@remote.example>",
            "RCPT TO:<user@remote.example@localhost>",
            "RCPT TO:<user@[127.0.0.1].>",
            "RCPT TO:<user@remote.example> <bob@localhost>",
            "RCPT TO:user@remote.example",
        ],
    );
    for (code, text) in &replies[2..] {
        assert!((500..=555).contains(code) && *code != 550, "{code} {text}");
    }
    // Local names in other spellings stay local.
    let mut lines = vec!["EHLO c".to_string(), "MAIL FROM:<x@remote.example>".into()];
    lines.extend(LOCAL_SPELLINGS.iter().map(|r| format!("RCPT TO:{r}")));
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let replies = smtp(server.ports.smtp, "plain", &lines);
    for (r, (code, text)) in LOCAL_SPELLINGS.iter().zip(&replies[2..]) {
        assert_eq!(*code, 250, "RCPT TO:{r}: {code} {text}");
    }

    // A whole message to a local and two remote recipients: bob gets it,
    // the queue gets nothing.
    let file = write_file(
        server.dir.path(),
        "m.eml",
        b"From: x@remote.example\r\nSubject: relay attempt\r\n\r\nhi\r\n",
    );
    let port = server.ports.smtp.to_string();
    let r = json(&server.py(&[
        "send",
        "--port",
        &port,
        "--from",
        "x@remote.example",
        "--to",
        BOB,
        "--to",
        "victim@remote.example",
        "--to",
        "victim@[127.0.0.1]",
        "--file",
        file.to_str().unwrap(),
    ]));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["refused"].as_object().unwrap().len(), 2, "{r}");
    assert_eq!(inbox(&store, BOB).await.len(), 1);

    // Submission without AUTH refuses everything: in clear text, under
    // STARTTLS, and on the implicit-TLS port.
    let mut lines = vec!["EHLO c".to_string(), "MAIL FROM:<alice@localhost>".into()];
    lines.extend(rcpts(RELAY_TRICKS));
    lines.push("RCPT TO:<bob@localhost>".into());
    lines.push("DATA".into());
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    for (port, security) in [
        (server.ports.submission, "plain"),
        (server.ports.submission, "starttls"),
        (server.ports.submissions, "tls"),
    ] {
        let replies = smtp(port, security, &lines);
        assert_eq!(replies[1].0, 530, "MAIL on {security}: {replies:?}");
        // 503 (no MAIL), or 553 for a path the parser refuses first.
        for (code, text) in &replies[2..] {
            assert!(*code == 503 || *code == 553, "{security}: {code} {text}");
        }
    }

    // After AUTH, only the user's own addresses may be the sender.
    let auth = format!("AUTH PLAIN {}", plain("", ALICE, PASSWORD));
    // 5.7.1: not hers; 5.1.7: a path the parser refuses.
    let foreign_senders = [
        ("<bob@localhost>", "5.7.1"),
        ("<BOB@LOCALHOST.>", "5.7.1"),
        ("<alice@remote.example>", "5.7.1"),
        ("<alice@[127.0.0.1]>", "5.1.7"),
        ("<alice%remote.example@localhost>", "5.7.1"),
        ("<\"alice@remote.example\"@localhost>", "5.7.1"),
        ("<@localhost:bob@localhost>", "5.7.1"),
        ("<>", "5.7.1"),
    ];
    for (port, security) in [
        (server.ports.submission, "starttls"),
        (server.ports.submissions, "tls"),
    ] {
        let mut lines = vec!["EHLO c".to_string(), auth.clone()];
        for (s, _) in foreign_senders {
            lines.push(format!("MAIL FROM:{s}"));
            lines.push("RCPT TO:<someone@remote.example>".into());
        }
        // Her own address in any spelling; recipients that look remote but
        // are local names are looked up locally.
        lines.push("MAIL FROM:<ALICE@LocalHost.>".into());
        lines.push("RCPT TO:<\"bob@remote.example\"@localhost>".into());
        lines.push("RCPT TO:<bob%remote.example@localhost>".into());
        lines.push("RSET".into());
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let replies = smtp(port, security, &lines);
        assert_eq!(replies[1].0, 235, "{security}: {replies:?}");
        for (i, (s, status)) in foreign_senders.iter().enumerate() {
            let (code, text) = &replies[2 + 2 * i];
            assert_eq!(*code, 553, "{security}: MAIL FROM:{s}: {text}");
            assert!(
                text.starts_with(status),
                "{security}: MAIL FROM:{s}: {text}"
            );
            assert_eq!(replies[3 + 2 * i].0, 503, "{security}: RCPT after {s}");
        }
        let n = 2 + 2 * foreign_senders.len();
        assert_eq!(replies[n].0, 250, "{security}: {:?}", replies[n]);
        for (code, text) in &replies[n + 1..n + 3] {
            assert_eq!((*code, &text[..5]), (550, "5.1.1"), "{security}: {text}");
        }
    }

    // Nothing of all that reached the queue ...
    assert_eq!(queue_len(&store).await, 0);
    let listed = server.cli(&["queue", "list"], None);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("The queue is empty"),
        "{listed:?}"
    );
    // ... which does hold what an authenticated user sends elsewhere, so the
    // checks above can fail.
    let file = write_file(
        server.dir.path(),
        "mine.eml",
        b"From: alice@localhost\r\nSubject: to a friend\r\n\r\nhi\r\n",
    );
    let r = server.submit((ALICE, PASSWORD), ALICE, &["friend@remote.example"], &file);
    assert_eq!(r["ok"], true, "{r}");
    let queued = store.queue_list().await.unwrap();
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].mail_from.as_ref().unwrap().key(), ALICE);
    assert_eq!(
        queued[0].recipients[0].address.key(),
        "friend@remote.example"
    );
}

// ---------------------------------------------------------------------------
// No login before TLS (tests/smtp.rs, pop3.rs, imap.rs and jmap.rs hold the
// basic cases; these are the remaining mechanisms and the side effects)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn no_login_of_any_kind_before_tls() {
    let server = server();
    // SMTP: AUTH LOGIN in clear text (PLAIN is in tests/smtp.rs); the
    // password never gets asked for.
    let replies = smtp(
        server.ports.submission,
        "plain",
        &[
            "EHLO c",
            &format!("AUTH LOGIN {}", b64(ALICE)),
            "AUTH LOGIN",
            &b64(PASSWORD),
            "MAIL FROM:<alice@localhost>",
        ],
    );
    assert!(!replies[0].1.contains("AUTH"), "{replies:?}");
    assert_eq!(replies[1].0, 538, "{replies:?}");
    assert_eq!(replies[2].0, 538, "{replies:?}");
    assert_ne!(replies[3].0, 334, "{replies:?}");
    assert_eq!(replies[4].0, 530, "{replies:?}");

    // POP3: CAPA in clear offers no login; SASL with an initial response
    // and with a continuation is refused before the credentials are read.
    let r = pop3(
        &server,
        "plain",
        None,
        &[
            &format!("AUTH PLAIN {}", plain("", ALICE, PASSWORD)),
            "AUTH PLAIN",
            &format!("USER {ALICE}"),
            &format!("PASS {PASSWORD}"),
            "STAT",
        ],
    );
    for reply in &r[..4] {
        assert!(reply.starts_with("-ERR [AUTH]"), "{r:?}");
    }
    assert!(r[4].starts_with("-ERR"), "{r:?}");

    // IMAP: AUTHENTICATE in clear text, with SASL-IR and without, is
    // refused like LOGIN (in tests/imap.rs); CAPABILITY offers no AUTH=.
    let r = imap(
        &server,
        "plain",
        None,
        &[
            "CAPABILITY",
            &format!("AUTHENTICATE PLAIN {}", plain("", ALICE, PASSWORD)),
            "AUTHENTICATE PLAIN",
            "SELECT INBOX",
        ],
    );
    let caps = r["responses"][0][0].as_str().unwrap();
    assert!(
        caps.contains("LOGINDISABLED") && !caps.contains("AUTH="),
        "{r}"
    );
    let t = tagged(&r);
    assert!(t[1].contains("NO [PRIVACYREQUIRED]"), "{r}");
    assert!(t[2].contains("NO [PRIVACYREQUIRED]"), "{r}");
    assert!(t[3].contains("BAD") || t[3].contains("NO"), "{r}");

    // JMAP: clear-text requests are answered 400 whatever credentials they
    // carry, and those credentials are not even checked: many wrong ones do
    // not lock the user out (the throttle would after 10 with defaults).
    let jmap = server.jmap(ALICE);
    let clear = Jmap {
        plain: true,
        ..jmap.clone()
    };
    let r = clear.api_raw(
        json!({"using": USING, "methodCalls": []})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let wrong = clear.with_auth(Auth::Basic(ALICE.into(), "wrong".into()));
    for _ in 0..12 {
        assert_eq!(wrong.get("/.well-known/jmap").status, 400);
    }
    let token = server.create_token(ALICE, "t");
    let bearer = clear.with_auth(Auth::Bearer(token));
    assert_eq!(bearer.get("/.well-known/jmap").status, 400);
    assert_eq!(jmap.get("/.well-known/jmap").status, 200);
    assert!(
        !server.log().contains("authentication failed"),
        "clear-text credentials were checked:\n{}",
        server.log()
    );
}

/// Commands pipelined behind STARTTLS/STLS arrived in clear text: a
/// man in the middle could have put them there (CVE-2011-0411). They must
/// be dropped, not run once TLS is up.
#[test]
fn nothing_sent_in_clear_runs_after_starttls() {
    let server = Server::start();
    let cases = [
        (server.ports.smtp, "smtp", "NOOP"),
        (
            server.ports.submission,
            "smtp",
            "AUTH PLAIN AGFsaWNlQGxvY2FsaG9zdAB4",
        ),
        (server.ports.pop3, "pop3", "CAPA"),
        (server.ports.imap, "imap", "t9 CAPABILITY"),
    ];
    for (port, proto, inject) in cases {
        let r = probe(&[
            "starttls-inject",
            "--port",
            &port.to_string(),
            "--proto",
            proto,
            "--inject",
            inject,
        ]);
        assert_eq!(r["unsolicited"], "", "{proto} ran {inject:?}: {r}");
        assert!(r["closed"].is_null(), "{proto}: {r}");
        // The TLS session itself works: the next command gets its answer.
        let after = r["after"].as_str().unwrap();
        assert!(
            after.starts_with("250")
                || after.starts_with("-ERR Not logged in")
                || after.starts_with("t2 OK"),
            "{proto}: {r}"
        );
    }
}

/// rustls speaks TLS 1.2 and 1.3 only: a client offering only TLS 1.0 or
/// 1.1 gets an alert on every TLS port and after every STARTTLS.
#[test]
fn tls_before_1_2_is_refused_everywhere() {
    let server = Server::start();
    let p = server.ports;
    let implicit = [p.submissions, p.pop3s, p.imaps, p.http];
    let upgrades = [
        (p.smtp, "smtp"),
        (p.submission, "smtp"),
        (p.pop3, "pop3"),
        (p.imap, "imap"),
    ];
    for version in ["1.0", "1.1"] {
        let mut attempts: Vec<(String, Value)> = Vec::new();
        for port in implicit {
            let port = port.to_string();
            let r = probe(&["tls-version", "--port", &port, "--version", version]);
            attempts.push((format!("port {port}"), r));
        }
        for (port, proto) in upgrades {
            let port = port.to_string();
            let r = probe(&[
                "tls-version",
                "--port",
                &port,
                "--version",
                version,
                "--starttls",
                proto,
            ]);
            attempts.push((format!("{proto} STARTTLS on {port}"), r));
        }
        for (what, r) in attempts {
            if r["tried"] == false {
                // The local OpenSSL cannot even build such a ClientHello:
                // nothing to learn from this client.
                eprintln!("SKIPPED TLS {version} on {what}: {}", r["error"]);
                continue;
            }
            assert_eq!(r["client_hello"], true, "{what}: {r}");
            assert_eq!(r["ok"], false, "TLS {version} accepted on {what}: {r}");
            assert!(
                r["alert"].is_number(),
                "{what}: refused without an alert: {r}"
            );
        }
    }
    // The same client with TLS 1.2 and 1.3 gets through, so the refusals
    // above are about the version.
    for version in ["1.2", "1.3"] {
        let r = probe(&[
            "tls-version",
            "--port",
            &p.imaps.to_string(),
            "--version",
            version,
        ]);
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["negotiated"], format!("TLSv{version}"), "{r}");
    }
}

// ---------------------------------------------------------------------------
// Account isolation
// ---------------------------------------------------------------------------

const BOB_SECRET: &str = "bob-only-secret-7f3a";

/// Alice tries every way an IMAP mailbox name could lead out of her account:
/// relative paths, absolute paths, other users' names and the namespaces
/// other servers use for them. Whatever the server answers, bob's mailboxes
/// and mail stay as they were and nothing of his shows up in her session.
#[tokio::test]
async fn imap_mailbox_names_never_leave_the_account() {
    let server = server();
    server.deliver(
        BOB,
        format!("Subject: {BOB_SECRET}\r\n\r\n{BOB_SECRET}\r\n").as_bytes(),
    );
    server.deliver(ALICE, b"Subject: for alice\r\n\r\nalice's own\r\n");
    let store = server.store();
    let bob_boxes = mailbox_names(&store, BOB).await;
    let bob_mail = all_mail(&store, BOB).await;

    let appended = "Subject: appended\r\n\r\nalice-was-here\r\n";
    let append = |name: &str| format!("APPEND \"{name}\" {{{}+}}\r\n{appended}", appended.len());
    let others = [
        "../bob@localhost/INBOX",
        "..",
        "../..",
        "/INBOX",
        "//bob@localhost/INBOX",
        "bob@localhost/INBOX",
        "~bob",
        "~bob/INBOX",
        "~bob@localhost/INBOX",
        "#shared/bob@localhost/INBOX",
        "#user/bob@localhost/INBOX",
        "#public/INBOX",
        "Other Users/bob@localhost/INBOX",
        "Other Users/bob/INBOX",
        "Shared Folders/bob@localhost/INBOX",
        "INBOX/../../bob@localhost/INBOX",
        "%",
        "*",
        "INBOX%",
    ];
    let mut lines: Vec<String> = vec!["NAMESPACE".into(), "LIST \"\" \"*\"".into()];
    for name in others {
        lines.push(format!("SELECT \"{name}\""));
        lines.push(format!("STATUS \"{name}\" (MESSAGES UNSEEN)"));
        lines.push(format!("LIST \"{name}\" \"*\""));
        lines.push(format!("LIST \"\" \"{name}/*\""));
    }
    for name in others {
        lines.push(format!("CREATE \"{name}/evil\""));
        lines.push(append(name));
    }
    lines.push("CREATE \"Box\"".into());
    lines.push("SELECT INBOX".into());
    for name in others {
        lines.push(format!("COPY 1:* \"{name}\""));
        lines.push(format!("UID MOVE 999 \"{name}\""));
        lines.push(format!("RENAME \"Box\" \"{name}/Box\""));
        lines.push(format!("DELETE \"{name}\""));
    }
    lines.push("LIST \"\" \"*\"".into());
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let r = imap(&server, "starttls", Some(ALICE), &lines);
    let text = r.to_string();
    assert!(
        !text.contains(BOB_SECRET),
        "bob's mail reached alice: {text}"
    );
    assert!(!text.contains("closed:"), "the session broke: {text}");
    // Before alice creates them, none of these names opens anything.
    let t = tagged(&r);
    for (k, name) in others.iter().enumerate() {
        // [0] is LOGIN, then NAMESPACE and LIST, then four per name.
        assert!(
            t[3 + 4 * k].contains(" NO "),
            "SELECT {name}: {}",
            t[3 + 4 * k]
        );
        assert!(
            t[4 + 4 * k].contains(" NO "),
            "STATUS {name}: {}",
            t[4 + 4 * k]
        );
    }
    // Only alice's own namespace is offered.
    let ns = r["responses"][1][0].as_str().unwrap();
    assert!(ns.contains("NAMESPACE ((\"\" \"/\")) NIL NIL"), "{ns}");

    // Bob's account is untouched: same mailboxes, same mail.
    assert_eq!(mailbox_names(&store, BOB).await, bob_boxes);
    assert_eq!(all_mail(&store, BOB).await, bob_mail);
    // Whatever alice did went into her own account (her INBOX was never
    // emptied into bob's, her appends are hers).
    let alice_mail = all_mail(&store, ALICE).await;
    assert!(
        alice_mail.iter().any(|m| m.contains("alice's own")),
        "{alice_mail:?}"
    );
    assert!(alice_mail.iter().all(|m| !m.contains(BOB_SECRET)));
}

/// POP3 shows a user his own INBOX only; logging in as someone else needs
/// their password, and SASL proxy authorization (authzid) is not offered on
/// any protocol.
#[tokio::test]
async fn no_login_as_another_user() {
    let server = server();
    server.deliver(
        BOB,
        format!("Subject: {BOB_SECRET}\r\n\r\n{BOB_SECRET}\r\n").as_bytes(),
    );
    server.deliver(ALICE, b"Subject: for alice\r\n\r\nalice's own\r\n");

    // POP3: bob's name with alice's password; alice asking to act as bob.
    let r = pop3(
        &server,
        "stls",
        None,
        &[&format!("USER {BOB}"), &format!("PASS {PASSWORD}x")],
    );
    assert!(r[1].starts_with("-ERR [AUTH]"), "{r:?}");
    let proxy = plain(BOB, ALICE, PASSWORD);
    let r = pop3(
        &server,
        "stls",
        None,
        &[&format!("AUTH PLAIN {proxy}"), "STAT"],
    );
    assert!(r[0].starts_with("-ERR"), "{r:?}");
    assert!(r[1].starts_with("-ERR"), "{r:?}");
    // Alice sees one message, hers.
    let port = server.ports.pop3.to_string();
    let f = json(&server.pop3(&[
        "fetch",
        "--port",
        &port,
        "--user",
        ALICE,
        "--password",
        PASSWORD,
    ]));
    assert_eq!(f["stat"][0], 1, "{f}");
    let msg =
        String::from_utf8(STANDARD.decode(f["messages"][0].as_str().unwrap()).unwrap()).unwrap();
    assert!(
        msg.contains("alice's own") && !msg.contains(BOB_SECRET),
        "{msg}"
    );

    // IMAP and SMTP refuse the same authzid.
    let r = imap(
        &server,
        "starttls",
        None,
        &[&format!("AUTHENTICATE PLAIN {proxy}"), "SELECT INBOX"],
    );
    let t = tagged(&r);
    assert!(t[0].contains(" NO "), "{r}");
    assert!(!r.to_string().contains(BOB_SECRET), "{r}");
    let replies = smtp(
        server.ports.submission,
        "starttls",
        &["EHLO c", &format!("AUTH PLAIN {proxy}")],
    );
    assert_eq!(replies[1].0, 535, "{replies:?}");
}

/// JMAP: another user's accountId is not found for every method; another
/// account's ids (emails, mailboxes, threads, identities, blobs) are not
/// found in one's own; nothing of bob's changes.
#[tokio::test]
async fn jmap_never_reaches_another_account() {
    let server = server();
    server.deliver(
        BOB,
        format!("Subject: {BOB_SECRET}\r\n\r\n{BOB_SECRET}\r\n").as_bytes(),
    );
    server.deliver(
        ALICE,
        b"From: alice@localhost\r\nSubject: for alice\r\n\r\nalice's own\r\n",
    );
    let alice = server.jmap(ALICE);
    let bob = server.jmap(BOB);
    let a = alice.account_id();
    let b = bob.account_id();
    assert_ne!(a, b);

    // Bob's objects, as bob sees them.
    let q = bob.method("Email/query", json!({"accountId": b}));
    let bob_email = q["ids"][0].as_str().unwrap().to_string();
    let g = bob.method(
        "Email/get",
        json!({"accountId": b, "ids": [bob_email], "properties": ["blobId", "threadId", "keywords", "mailboxIds"]}),
    );
    let bob_msg = g["list"][0].clone();
    let bob_blob = bob_msg["blobId"].as_str().unwrap().to_string();
    let bob_thread = bob_msg["threadId"].as_str().unwrap().to_string();
    let bob_inbox = bob_msg["mailboxIds"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let bob_upload = bob.upload(&b, "text/plain", BOB_SECRET.as_bytes())["blobId"]
        .as_str()
        .unwrap()
        .to_string();
    let ident = bob.method("Identity/get", json!({"accountId": b}));
    let bob_identity = ident["list"][0]["id"].as_str().unwrap().to_string();
    let bob_mailboxes = bob.method("Mailbox/get", json!({"accountId": b}));

    // Alice names bob's account in every method.
    let calls = json!([
        ["Blob/copy", {"fromAccountId": b, "accountId": a, "blobIds": [bob_upload]}, "0"],
        ["Blob/copy", {"fromAccountId": a, "accountId": b, "blobIds": []}, "1"],
        ["Mailbox/get", {"accountId": b, "ids": null}, "2"],
        ["Mailbox/changes", {"accountId": b, "sinceState": "0"}, "3"],
        ["Mailbox/query", {"accountId": b}, "4"],
        ["Mailbox/queryChanges", {"accountId": b, "sinceQueryState": "0"}, "5"],
        ["Mailbox/set", {"accountId": b, "update": {bob_inbox.clone(): {"name": "pwned"}}}, "6"],
        ["Thread/get", {"accountId": b, "ids": [bob_thread]}, "7"],
        ["Thread/changes", {"accountId": b, "sinceState": "0"}, "8"],
        ["Email/get", {"accountId": b, "ids": [bob_email]}, "9"],
        ["Email/changes", {"accountId": b, "sinceState": "0"}, "10"],
        ["Email/query", {"accountId": b}, "11"],
        ["Email/queryChanges", {"accountId": b, "sinceQueryState": "0"}, "12"],
        ["Email/set", {"accountId": b, "destroy": [bob_email]}, "13"],
        ["Email/copy", {"fromAccountId": b, "accountId": a, "create": {"c": {"id": bob_email, "mailboxIds": {"F1": true}}}}, "14"],
        ["Email/import", {"accountId": b, "emails": {"i": {"blobId": bob_upload, "mailboxIds": {bob_inbox.clone(): true}}}}, "15"],
        ["Email/parse", {"accountId": b, "blobIds": [bob_blob]}, "16"],
        ["SearchSnippet/get", {"accountId": b, "emailIds": [bob_email], "filter": {"text": "secret"}}, "17"],
        ["Identity/get", {"accountId": b}, "18"],
        ["Identity/changes", {"accountId": b, "sinceState": "0"}, "19"],
        ["Identity/set", {"accountId": b, "destroy": [bob_identity]}, "20"],
        ["EmailSubmission/get", {"accountId": b}, "21"],
        ["EmailSubmission/changes", {"accountId": b, "sinceState": "0"}, "22"],
        ["EmailSubmission/query", {"accountId": b}, "23"],
        ["EmailSubmission/queryChanges", {"accountId": b, "sinceQueryState": "0"}, "24"],
        ["EmailSubmission/set", {"accountId": b, "create": {"s": {"identityId": bob_identity, "emailId": bob_email}}}, "25"],
        ["VacationResponse/get", {"accountId": b}, "26"],
        ["VacationResponse/set", {"accountId": b, "update": {"singleton": {"isEnabled": true}}}, "27"],
        ["Mailbox/get", {"accountId": "A7fffffff", "ids": null}, "28"],
    ]);
    let using = [
        "urn:ietf:params:jmap:core",
        "urn:ietf:params:jmap:mail",
        "urn:ietf:params:jmap:submission",
        "urn:ietf:params:jmap:vacationresponse",
    ];
    let r = alice.call_using(&using, calls.clone());
    let responses = r["methodResponses"].as_array().unwrap();
    assert_eq!(responses.len(), calls.as_array().unwrap().len(), "{r}");
    for (call, resp) in calls.as_array().unwrap().iter().zip(responses) {
        let expected = if call[1]["fromAccountId"] == json!(b) {
            "fromAccountNotFound"
        } else {
            "accountNotFound"
        };
        assert_eq!(
            (resp[0].as_str(), resp[1]["type"].as_str()),
            (Some("error"), Some(expected)),
            "{} with bob's account: {resp}",
            call[0]
        );
    }

    // Alice's own account, bob's ids: not found, whatever the method.
    let alice_inbox = alice.method(
        "Mailbox/query",
        json!({"accountId": a, "filter": {"role": "inbox"}}),
    )["ids"][0]
        .as_str()
        .unwrap()
        .to_string();
    let alice_email = alice.method("Email/query", json!({"accountId": a}))["ids"][0]
        .as_str()
        .unwrap()
        .to_string();
    let alice_identity = alice.method("Identity/get", json!({"accountId": a}))["list"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = alice.call(json!([
        ["Email/get", {"accountId": a, "ids": [bob_email]}, "0"],
        ["Mailbox/get", {"accountId": a, "ids": [bob_inbox]}, "1"],
        ["Thread/get", {"accountId": a, "ids": [bob_thread]}, "2"],
        ["Email/parse", {"accountId": a, "blobIds": [bob_blob, bob_upload]}, "3"],
        ["SearchSnippet/get", {"accountId": a, "emailIds": [bob_email], "filter": {"text": "secret"}}, "4"],
        ["Identity/get", {"accountId": a, "ids": [bob_identity]}, "5"],
    ]));
    let m = &r["methodResponses"];
    for i in 0..6 {
        assert_eq!(
            m[i][0].as_str().map(|s| s.contains('/')),
            Some(true),
            "{}",
            m[i]
        );
    }
    assert_eq!(m[0][1]["notFound"], json!([bob_email]), "{r}");
    assert_eq!(m[0][1]["list"], json!([]), "{r}");
    assert_eq!(m[1][1]["notFound"], json!([bob_inbox]), "{r}");
    assert_eq!(m[2][1]["notFound"], json!([bob_thread]), "{r}");
    assert_eq!(m[3][1]["notFound"], json!([bob_blob, bob_upload]), "{r}");
    assert_eq!(m[4][1]["notFound"], json!([bob_email]), "{r}");
    assert_eq!(m[5][1]["notFound"], json!([bob_identity]), "{r}");

    let r = alice.call(json!([
        ["Email/set", {"accountId": a,
            "update": {bob_email.clone(): {"keywords/$flagged": true}},
            "create": {"c": {"mailboxIds": {bob_inbox.clone(): true}, "subject": "into bob's inbox",
                             "bodyValues": {"1": {"value": "x"}}, "textBody": [{"partId": "1", "type": "text/plain"}]}}}, "0"],
        ["Email/set", {"accountId": a, "destroy": [bob_email]}, "1"],
        ["Mailbox/set", {"accountId": a,
            "update": {bob_inbox.clone(): {"name": "pwned"}},
            "create": {"m": {"name": "under bob", "parentId": bob_inbox}}}, "2"],
        ["Mailbox/set", {"accountId": a, "destroy": [bob_inbox]}, "3"],
        ["Email/import", {"accountId": a, "emails": {
            "i1": {"blobId": bob_upload, "mailboxIds": {alice_inbox.clone(): true}},
            "i2": {"blobId": bob_blob, "mailboxIds": {alice_inbox.clone(): true}}}}, "4"],
        ["Email/set", {"accountId": a, "update": {alice_email.clone(): {"mailboxIds": {bob_inbox.clone(): true}}}}, "5"],
        ["EmailSubmission/set", {"accountId": a, "create": {
            "s1": {"identityId": bob_identity, "emailId": alice_email},
            "s2": {"identityId": alice_identity, "emailId": bob_email}}}, "6"],
        ["Identity/set", {"accountId": a, "update": {bob_identity.clone(): {"name": "pwned"}}}, "7"],
        ["Identity/set", {"accountId": a, "destroy": [bob_identity]}, "8"],
    ]));
    let m = &r["methodResponses"];
    let set_error = |i: usize, kind: &str, id: &str| -> String {
        m[i][1][kind][id]["type"]
            .as_str()
            .unwrap_or_else(|| panic!("{kind} {id} in {}", m[i]))
            .to_string()
    };
    assert_eq!(set_error(0, "notUpdated", &bob_email), "notFound");
    assert!(m[0][1]["notCreated"]["c"].is_object(), "{}", m[0]);
    assert_eq!(set_error(1, "notDestroyed", &bob_email), "notFound");
    assert_eq!(set_error(2, "notUpdated", &bob_inbox), "notFound");
    assert!(m[2][1]["notCreated"]["m"].is_object(), "{}", m[2]);
    assert_eq!(set_error(3, "notDestroyed", &bob_inbox), "notFound");
    for i in ["i1", "i2"] {
        let kind = set_error(4, "notCreated", i);
        assert!(
            kind == "blobNotFound" || kind == "notFound",
            "{kind}: {}",
            m[4]
        );
    }
    assert!(m[5][1]["notUpdated"][&alice_email].is_object(), "{}", m[5]);
    assert!(m[6][1]["notCreated"]["s1"].is_object(), "{}", m[6]);
    assert!(m[6][1]["notCreated"]["s2"].is_object(), "{}", m[6]);
    assert_eq!(set_error(7, "notUpdated", &bob_identity), "notFound");
    assert_eq!(set_error(8, "notDestroyed", &bob_identity), "notFound");
    assert!(!r.to_string().contains(BOB_SECRET), "{r}");

    // Bob's blobs cannot be downloaded through alice's account either
    // (uploads: tests/jmap.rs upload_then_download).
    let path = alice.download_path(&a, &bob_blob, "m.eml", "message/rfc822");
    assert_eq!(alice.get(&path).status, 404);
    let path = alice.download_path(&b, &bob_blob, "m.eml", "message/rfc822");
    assert_eq!(alice.get(&path).status, 404);

    // Nothing of bob's moved.
    let after = bob.method(
        "Email/get",
        json!({"accountId": b, "ids": [bob_email], "properties": ["blobId", "threadId", "keywords", "mailboxIds"]}),
    );
    assert_eq!(after["list"][0], bob_msg);
    assert_eq!(
        bob.method("Mailbox/get", json!({"accountId": b}))["list"],
        bob_mailboxes["list"]
    );
    assert_eq!(
        bob.method("Identity/get", json!({"accountId": b}))["list"],
        ident["list"]
    );
    assert_eq!(queue_len(&server.store()).await, 0);
    let alice_mail = all_mail(&server.store(), ALICE).await;
    assert!(
        alice_mail.iter().all(|m| !m.contains(BOB_SECRET)),
        "{alice_mail:?}"
    );
}

// ---------------------------------------------------------------------------
// Sending as another user
// ---------------------------------------------------------------------------

/// Submits `raw` as alice (login and MAIL FROM alice) to bob over port 587.
fn submit_as_alice(server: &Server, raw: &str) -> Value {
    let file = write_file(server.dir.path(), "from.eml", raw.as_bytes());
    server.submit((ALICE, PASSWORD), ALICE, &[BOB], &file)
}

/// The header From of submitted mail must be the login's address or one of
/// its aliases, over SMTP as over JMAP (`forbiddenFrom`): the relay DKIM-signs
/// for the From domain, so otherwise any user could send mail that passes
/// DMARC as any other user. Several From fields are refused on both, as
/// receivers disagree on which one counts. Display names, case and a missing
/// From do not matter.
#[tokio::test]
async fn no_sending_as_another_user() {
    let server = server();
    let cli = server.cli(&["alias", "add", "team@localhost", ALICE], None);
    assert!(cli.status.success(), "{cli:?}");

    let refused = [
        ("From: Bob <bob@localhost>\r\n", "5.7.1"),
        ("From: alice@localhost, bob@localhost\r\n", "5.7.1"),
        ("From: boss@example.org\r\n", "5.7.1"),
        ("From: Alice (not really)\r\n", "5.7.1"),
        ("From: alice@localhost\r\nFrom: bob@localhost\r\n", "5.6.0"),
    ];
    for (from, code) in refused {
        let raw = format!("{from}To: {BOB}\r\nSubject: spoof\r\n\r\nhi\r\n");
        let r = submit_as_alice(&server, &raw);
        assert_eq!(r["code"], 550, "{from:?}: {r}");
        let message = r["message"].as_str().unwrap();
        assert!(message.starts_with(code), "{from:?}: {r}");
    }
    assert!(all_mail(&server.store(), BOB).await.is_empty());

    let accepted = [
        "From: Alice <alice@localhost>\r\n",
        "From: \"bob@localhost\" <alice@localhost>\r\n",
        "From: ALICE@LOCALHOST\r\n",
        "From: Team <team@localhost>, alice@localhost\r\n",
        "",
    ];
    for from in accepted {
        let raw = format!("{from}To: {BOB}\r\nSubject: mine\r\n\r\nhi\r\n");
        let r = submit_as_alice(&server, &raw);
        assert_eq!(r["ok"], true, "{from:?}: {r}");
    }
    assert_eq!(all_mail(&server.store(), BOB).await.len(), accepted.len());

    // JMAP: imported messages with bob's From, or a second From field.
    let alice = server.jmap(ALICE);
    let a = alice.account_id();
    let identity = alice.method("Identity/get", json!({"accountId": a}))["list"][0]["id"].clone();
    let inbox = alice.method(
        "Mailbox/query",
        json!({"accountId": a, "filter": {"role": "inbox"}}),
    )["ids"][0]
        .clone();
    let mut calls = Vec::new();
    let cases = [
        (
            "bob",
            format!("From: {BOB}\r\nTo: {BOB}\r\n\r\nx\r\n"),
            "forbiddenFrom",
        ),
        (
            "two",
            format!("From: {ALICE}\r\nFrom: {BOB}\r\nTo: {BOB}\r\n\r\nx\r\n"),
            "invalidEmail",
        ),
    ];
    for (name, raw, _) in &cases {
        let blob = alice.upload(&a, "message/rfc822", raw.as_bytes())["blobId"].clone();
        calls.push(json!(["Email/import", {"accountId": a, "emails": {
            (*name): {"blobId": blob, "mailboxIds": {inbox.as_str().unwrap(): true}}}}, name]));
        calls.push(json!(["EmailSubmission/set", {"accountId": a, "create": {
            (*name): {"identityId": identity, "emailId": format!("#{name}")}}}, name]));
    }
    let r = alice.call(Value::Array(calls));
    let m = &r["methodResponses"];
    for (i, (name, _, kind)) in cases.iter().enumerate() {
        assert!(m[2 * i][1]["created"][name].is_object(), "{r}");
        assert_eq!(m[2 * i + 1][1]["notCreated"][name]["type"], *kind, "{r}");
    }
    assert_eq!(all_mail(&server.store(), BOB).await.len(), accepted.len());
    assert_eq!(queue_len(&server.store()).await, 0);
}

// ---------------------------------------------------------------------------
// Header and SMTP command injection
// ---------------------------------------------------------------------------

/// A user agent for `pochta mail`, with alice's account on `server`.
fn user_agent(
    server: &Server,
    dir: &std::path::Path,
) -> impl Fn(&[&str], &str) -> std::process::Output {
    let config = dir.join("client.toml");
    let home = dir.to_path_buf();
    let run = move |args: &[&str], stdin: &str| {
        let mut cmd = std::process::Command::new(bin());
        cmd.arg("--client-config")
            .arg(&config)
            .arg("mail")
            .args(args)
            .env("POCHTA_CONFIG", home.join("no-such-server.toml"))
            .env("POCHTA_PASSWORD", PASSWORD)
            .env("XDG_CONFIG_HOME", home.join("xdg-config"))
            .env("XDG_DATA_HOME", home.join("xdg-data"))
            .env_remove("EDITOR")
            .env_remove("VISUAL")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        {
            use std::io::Write;
            let mut pipe = child.stdin.take().unwrap();
            let _ = pipe.write_all(stdin.as_bytes());
        }
        child.wait_with_output().unwrap()
    };
    let p = server.ports;
    let out = run(
        &[
            "account",
            "add",
            "alice",
            "--email",
            ALICE,
            "--smtp",
            &format!("127.0.0.1:{}", p.submission),
            "--imap",
            &format!("127.0.0.1:{}", p.imap),
            "--pop3",
            &format!("127.0.0.1:{}", p.pop3),
            "--jmap",
            &format!("https://127.0.0.1:{}/.well-known/jmap", p.http),
            "--maildir",
            dir.join("maildir").to_str().unwrap(),
            "--read-via",
            "imap",
            "--accept-invalid-certs",
        ],
        "",
    );
    assert!(out.status.success(), "{out:?}");
    run
}

const INJECTED: &[&str] = &["Bcc:", "X-Injected", "RCPT TO", "Cc: evil"];

#[tokio::test]
async fn no_header_or_command_injection_through_the_cli() {
    let server = server();
    let store = server.store();
    // Administration: addresses with line breaks or angle brackets are not
    // addresses.
    for bad in [
        "evil@localhost\r\nBcc: x@remote.example",
        "evil@localhost\nX-Injected: 1",
        "evil\r\n@localhost",
        "evil@localhost>",
        "<evil@localhost>",
    ] {
        let out = server.cli(
            &["user", "add", bad, "--password-stdin"],
            Some("pw-pw-pw-pw\n"),
        );
        assert!(!out.status.success(), "user add {bad:?} succeeded");
        let out = server.cli(&["alias", "add", bad, BOB], None);
        assert!(!out.status.success(), "alias add {bad:?} succeeded");
        let out = server.cli(&["alias", "add", "team@localhost", bad], None);
        assert!(!out.status.success(), "alias target {bad:?} accepted");
    }
    assert!(
        store
            .account(&Address::parse("evil@localhost").unwrap())
            .await
            .unwrap()
            .is_none()
    );

    // The user agent: a subject or a display name with CR LF stays one
    // header field; an address with CR LF is refused.
    let dir = tempfile::tempdir().unwrap();
    let ua = user_agent(&server, dir.path());
    let subject = "hi\r\nBcc: evil@remote.example\r\nX-Injected: subject";
    let out = ua(
        &["send", "--to", BOB, "--subject", subject, "--dry-run"],
        "body\n",
    );
    assert!(out.status.success(), "{out:?}");
    assert_no_header(&String::from_utf8_lossy(&out.stdout), INJECTED);
    let out = ua(
        &[
            "send",
            "--to",
            &format!("Bob\r\nX-Injected: name <{BOB}>"),
            "--cc",
            "Carol\nCc: evil@remote.example <carol@localhost>",
            "--subject",
            "s",
            "--dry-run",
        ],
        "body\n",
    );
    if out.status.success() {
        assert_no_header(&String::from_utf8_lossy(&out.stdout), INJECTED);
    }
    for to in [
        format!("{BOB}\r\nBcc: evil@remote.example"),
        format!("{BOB}>\r\nRCPT TO:<evil@remote.example"),
    ] {
        let out = ua(&["send", "--to", &to, "--subject", "s"], "body\n");
        assert!(!out.status.success(), "--to {to:?} was sent: {out:?}");
    }
    // A bare LF in a display name is folded like any white space (`To:
    // "bob@localhost RCPT TO:" <evil@remote.example>`): one address, one line.
    let out = ua(
        &[
            "send",
            "--to",
            &format!("{BOB}\nRCPT TO:<evil@remote.example>"),
            "--subject",
            "s",
            "--dry-run",
        ],
        "body\n",
    );
    if out.status.success() {
        assert_no_header(&String::from_utf8_lossy(&out.stdout), INJECTED);
    }
    // Sent for real over submission: bob's copy has one Subject and no
    // injected field; nobody else got anything.
    let out = ua(&["send", "--to", BOB, "--subject", subject], "body\n");
    assert!(out.status.success(), "{out:?}");
    let mail = inbox(&store, BOB).await;
    assert_eq!(mail.len(), 1);
    let raw = String::from_utf8_lossy(&mail[0].1).into_owned();
    assert_no_header(&raw, INJECTED);
    assert_eq!(
        header_lines(&raw)
            .iter()
            .filter(|l| l.starts_with("Subject:"))
            .count(),
        1,
        "{raw}"
    );
    assert_eq!(queue_len(&store).await, 0, "something was relayed");
}

#[tokio::test]
async fn no_header_or_command_injection_through_jmap() {
    let server = server();
    let store = server.store();
    let alice = server.jmap(ALICE);
    let a = alice.account_id();
    let drafts = alice.method(
        "Mailbox/query",
        json!({"accountId": a, "filter": {"role": "drafts"}}),
    )["ids"][0]
        .as_str()
        .unwrap()
        .to_string();
    let identity = alice.method("Identity/get", json!({"accountId": a}))["list"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let email = |extra: Value| -> Value {
        let mut e = json!({
            "mailboxIds": {drafts.clone(): true},
            "from": [{"name": "Alice", "email": ALICE}],
            "to": [{"name": "Bob", "email": BOB}],
            "subject": "plain",
            "bodyValues": {"1": {"value": "body"}},
            "textBody": [{"partId": "1", "type": "text/plain"}],
        });
        for (k, v) in extra.as_object().unwrap() {
            e[k] = v.clone();
        }
        e
    };
    let r = alice.method(
        "Email/set",
        json!({"accountId": a, "create": {
            "subject": email(json!({"subject": "hi\r\nBcc: evil@remote.example\r\nX-Injected: subject"})),
            "fromName": email(json!({"from": [{"name": "Alice\r\nX-Injected: name", "email": ALICE}]})),
            "toEmail": email(json!({"to": [{"email": "bob@localhost>\r\nBcc: evil@remote.example"}]})),
            "text": email(json!({"header:X-Note:asText": "a\r\nX-Injected: text"})),
            "raw": email(json!({"header:X-Note": " a\r\nX-Injected: raw"})),
            "name": email(json!({"header:X-Note\r\nX-Injected": " a"})),
            "group": email(json!({"header:To:asGroupedAddresses": [{"name": "G\r\nX-Injected: group", "addresses": [{"email": BOB}]}]})),
            "msgid": email(json!({"header:Message-ID:asMessageIds": ["a@b>\r\nX-Injected: id"]})),
            "url": email(json!({"header:List-Post:asURLs": ["mailto:x\r\nX-Injected: url"]})),
        }}),
    );
    let created = r["created"].as_object().cloned().unwrap_or_default();
    let refused = r["notCreated"].as_object().cloned().unwrap_or_default();
    assert_eq!(created.len() + refused.len(), 9, "{r}");
    // Addresses, ids, raw fields and field names that would break a line
    // are refused outright; text is kept on one line.
    for k in [
        "toEmail", "raw", "name", "msgid", "url", "fromName", "group",
    ] {
        assert!(refused.contains_key(k), "{k} was accepted: {r}");
    }
    assert!(
        created.contains_key("subject") && created.contains_key("text"),
        "{r}"
    );
    for (k, e) in &created {
        let blob = e["blobId"].as_str().unwrap();
        let body = alice.get(&alice.download_path(&a, blob, "m.eml", "message/rfc822"));
        assert_eq!(body.status, 200);
        let raw = body.text();
        assert_no_header(&raw, INJECTED);
        assert!(
            raw.contains("X-Injected"),
            "{k}: the text was dropped, not kept: {raw}"
        );
    }

    // Identities: no line breaks in a name.
    let r = alice.method(
        "Identity/set",
        json!({"accountId": a, "create": {"i": {"email": ALICE, "name": "Alice\r\nBcc: evil@remote.example"}}}),
    );
    assert_eq!(r["notCreated"]["i"]["type"], "invalidProperties", "{r}");

    // EmailSubmission envelopes: addresses and DSN parameters with line
    // breaks or '>' never become SMTP commands.
    let subject_email = created["subject"]["id"].as_str().unwrap().to_string();
    let submit = |envelope: Value| -> Value {
        alice.method(
            "EmailSubmission/set",
            json!({"accountId": a, "create": {"s": {
                "identityId": identity, "emailId": subject_email, "envelope": envelope}}}),
        )
    };
    let cases = [
        json!({"mailFrom": {"email": "alice@localhost>\r\nRCPT TO:<evil@remote.example>"},
               "rcptTo": [{"email": BOB}]}),
        json!({"mailFrom": {"email": ALICE},
               "rcptTo": [{"email": "bob@localhost>\r\nRCPT TO:<evil@remote.example"}]}),
        json!({"mailFrom": {"email": ALICE},
               "rcptTo": [{"email": "evil@remote.example\r\nDATA"}]}),
        json!({"mailFrom": {"email": ALICE, "parameters": {"ENVID": "x\r\nRCPT TO:<evil@remote.example>"}},
               "rcptTo": [{"email": "friend@remote.example"}]}),
        json!({"mailFrom": {"email": ALICE},
               "rcptTo": [{"email": "friend@remote.example",
                           "parameters": {"ORCPT": "rfc822;x\r\nRCPT TO:<evil@remote.example>"}}]}),
        json!({"mailFrom": {"email": ALICE},
               "rcptTo": [{"email": "friend@remote.example", "parameters": {"NOTIFY": "SUCCESS\r\nRSET"}}]}),
    ];
    for envelope in cases {
        let r = submit(envelope.clone());
        assert!(r["notCreated"]["s"].is_object(), "accepted {envelope}: {r}");
    }
    assert_eq!(queue_len(&store).await, 0, "something was queued");
    assert!(inbox(&store, BOB).await.is_empty());
    // The same submission with a clean envelope goes through, and bob's copy
    // carries the sanitised subject only.
    let r = submit(json!({"mailFrom": {"email": ALICE}, "rcptTo": [{"email": BOB}]}));
    assert!(r["created"]["s"].is_object(), "{r}");
    let mail = inbox(&store, BOB).await;
    assert_eq!(mail.len(), 1);
    assert_no_header(&String::from_utf8_lossy(&mail[0].1), INJECTED);
}

// ---------------------------------------------------------------------------
// Secrets in logs
// ---------------------------------------------------------------------------

/// Logs in (and fails to) over every protocol and mechanism with the server
/// logging at `trace`: neither password, nor any encoding of it a client
/// sends (SASL PLAIN, LOGIN, HTTP Basic), nor a bearer token appears in the
/// log.
#[tokio::test]
async fn passwords_never_reach_the_log() {
    let server = Server::start_logging(DEFAULT_HEAD, EXTRA, "trace");
    let user = "carol@localhost";
    let good = "Gd-4c1e9f-never-logged";
    let bad = "Bd-77a0e2-never-logged";
    let out = server.cli(
        &["user", "add", user, "--password-stdin"],
        Some(&format!("{good}\n")),
    );
    assert!(out.status.success(), "{out:?}");
    let file = write_file(server.dir.path(), "m.eml", b"Subject: x\r\n\r\nx\r\n");

    for password in [good, bad] {
        let ok = password == good;
        // SMTP AUTH PLAIN and LOGIN (smtplib), under STARTTLS and implicit TLS.
        for (port, security, mech) in [
            (server.ports.submission, "starttls", "PLAIN"),
            (server.ports.submissions, "tls", "LOGIN"),
        ] {
            let r = json(&server.py(&[
                "send",
                "--port",
                &port.to_string(),
                "--security",
                security,
                "--auth-mech",
                mech,
                "--user",
                user,
                "--password",
                password,
                "--from",
                user,
                "--to",
                user,
                "--file",
                file.to_str().unwrap(),
            ]));
            assert_eq!(r["ok"], ok, "SMTP AUTH {mech}: {r}");
        }
        // POP3 USER/PASS (poplib) and AUTH PLAIN.
        let r = json(&server.pop3(&[
            "login",
            "--port",
            &server.ports.pop3.to_string(),
            "--user",
            user,
            "--password",
            password,
        ]));
        assert_eq!(r["result"] == "+OK", ok, "POP3 USER/PASS: {r}");
        let r = pop3(
            &server,
            "stls",
            None,
            &[&format!("AUTH PLAIN {}", plain("", user, password))],
        );
        assert_eq!(r[0].starts_with("+OK"), ok, "POP3 AUTH: {r:?}");
        // IMAP LOGIN and AUTHENTICATE PLAIN (SASL-IR).
        let r = imap(
            &server,
            "starttls",
            None,
            &[&format!("LOGIN \"{user}\" \"{password}\""), "LOGOUT"],
        );
        assert_eq!(tagged(&r)[0].contains(" OK "), ok, "IMAP LOGIN: {r}");
        let r = imap(
            &server,
            "tls",
            None,
            &[&format!("AUTHENTICATE PLAIN {}", plain("", user, password))],
        );
        assert_eq!(tagged(&r)[0].contains(" OK "), ok, "IMAP AUTHENTICATE: {r}");
        // JMAP with HTTP Basic.
        let jmap = server
            .jmap(user)
            .with_auth(Auth::Basic(user.into(), password.into()));
        let status = jmap.get("/.well-known/jmap").status;
        assert_eq!(status == 200, ok, "JMAP Basic: {status}");
    }
    let token = server.create_token(user, "log-test");
    let jmap = server.jmap(user).with_auth(Auth::Bearer(token.clone()));
    assert_eq!(jmap.get("/.well-known/jmap").status, 200);
    let wrong = server
        .jmap(user)
        .with_auth(Auth::Bearer(format!("{token}x")));
    assert_eq!(wrong.get("/.well-known/jmap").status, 401);

    // A login name is the client's text: line breaks in it must not forge
    // log lines (a fail2ban-style reader would trust them).
    let forged = "x\nFORGED authentication failed peer=192.0.2.99";
    let r = smtp(
        server.ports.submission,
        "starttls",
        &["EHLO c", &format!("AUTH PLAIN {}", plain("", forged, bad))],
    );
    assert_eq!(r[1].0, 535, "{r:?}");
    let r = pop3(
        &server,
        "stls",
        None,
        &[&format!("AUTH PLAIN {}", plain("", forged, bad))],
    );
    assert!(r[0].starts_with("-ERR"), "{r:?}");
    let r = imap(
        &server,
        "tls",
        None,
        &[&format!("AUTHENTICATE PLAIN {}", plain("", forged, bad))],
    );
    assert!(tagged(&r)[0].contains(" NO "), "{r}");
    let jmap = server
        .jmap(user)
        .with_auth(Auth::Basic(forged.into(), bad.into()));
    assert_eq!(jmap.get("/.well-known/jmap").status, 401);

    // Give the server a moment to write its last lines.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log = server.log();
    assert!(log.contains("TRACE"), "the log is not at trace level");
    assert!(
        log.contains("authentication failed") && log.contains("authenticated"),
        "{log}"
    );
    let mut secrets = vec![token.clone()];
    for p in [good, bad] {
        secrets.extend([
            p.to_string(),
            b64(p),
            plain("", user, p),
            b64(&format!("{user}:{p}")),
            // Each half of the password, in case something logs it split.
            p[..p.len() / 2].to_string(),
            p[p.len() / 2..].to_string(),
        ]);
    }
    for s in &secrets {
        assert!(!log.contains(s.as_str()), "{s:?} is in the log");
    }
    // The user name does appear: the log is about these logins.
    assert!(log.contains(user));
    assert_eq!(log.matches("FORGED").count(), 4, "{log}");
    assert!(
        !log.lines().any(|l| l.starts_with("FORGED")),
        "a client forged a log line:\n{log}"
    );
}
