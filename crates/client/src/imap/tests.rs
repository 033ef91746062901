//! The IMAP backend against scripted servers on loopback: every byte the
//! client sends is checked, every reply is canned (tricky literals, unsolicited
//! responses, errors, dropped connections).

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::*;

/// One step of a scripted server.
pub(crate) enum Step {
    /// Send these bytes.
    S(Vec<u8>),
    /// Expect this line from the client (without CRLF).
    C(String),
    /// Expect exactly these bytes from the client (a literal's content).
    Bytes(Vec<u8>),
    /// Expect the client to close the connection without sending anything.
    Eof,
    /// Close the connection now.
    Close,
    /// Check a condition at this point (e.g. a file is on disk before the
    /// client's next command is answered).
    Check(Box<dyn FnOnce() -> std::result::Result<(), String> + Send>),
}

pub(crate) fn s(text: &str) -> Step {
    Step::S(text.as_bytes().to_vec())
}

pub(crate) fn c(text: &str) -> Step {
    Step::C(text.to_string())
}

/// Runs `steps` for one connection on a loopback port; the task's result says
/// whether the client sent exactly what was expected.
pub(crate) async fn fake_server(
    steps: Vec<Step>,
) -> (
    u16,
    tokio::task::JoinHandle<std::result::Result<(), String>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        let wait = Duration::from_secs(10);
        let (sock, _) = tokio::time::timeout(wait, listener.accept())
            .await
            .map_err(|_| "no connection".to_string())?
            .map_err(|e| e.to_string())?;
        let mut sock = BufReader::new(sock);
        for (n, step) in steps.into_iter().enumerate() {
            match step {
                Step::S(bytes) => {
                    // The client may have hung up already (a test of its
                    // error path): that is for the test to judge.
                    let _ = sock.get_mut().write_all(&bytes).await;
                }
                Step::C(want) => {
                    let mut line = Vec::new();
                    tokio::time::timeout(wait, sock.read_until(b'\n', &mut line))
                        .await
                        .map_err(|_| format!("step {n}: timed out waiting for {want:?}"))?
                        .map_err(|e| e.to_string())?;
                    let got = String::from_utf8_lossy(&line);
                    let got = got.trim_end_matches(['\r', '\n']);
                    if got != want {
                        return Err(format!("step {n}: expected {want:?}, got {got:?}"));
                    }
                }
                Step::Bytes(want) => {
                    let mut got = vec![0; want.len()];
                    tokio::time::timeout(wait, sock.read_exact(&mut got))
                        .await
                        .map_err(|_| format!("step {n}: timed out waiting for bytes"))?
                        .map_err(|e| e.to_string())?;
                    if got != want {
                        return Err(format!(
                            "step {n}: expected {:?}, got {:?}",
                            String::from_utf8_lossy(&want),
                            String::from_utf8_lossy(&got)
                        ));
                    }
                }
                Step::Eof => {
                    let mut rest = Vec::new();
                    tokio::time::timeout(wait, sock.read_to_end(&mut rest))
                        .await
                        .map_err(|_| format!("step {n}: the client did not hang up"))?
                        .map_err(|e| e.to_string())?;
                    if !rest.is_empty() {
                        return Err(format!(
                            "step {n}: the client sent {:?}",
                            String::from_utf8_lossy(&rest)
                        ));
                    }
                }
                Step::Close => return Ok(()),
                Step::Check(f) => f().map_err(|e| format!("step {n}: {e}"))?,
            }
        }
        Ok(())
    });
    (port, task)
}

pub(crate) fn plain_endpoint(port: u16) -> Endpoint {
    Endpoint {
        host: "127.0.0.1".into(),
        port,
        security: Security::Plain,
        accept_invalid_certs: false,
    }
}

pub(crate) fn alice() -> Login {
    Login {
        user: "alice".into(),
        password: "s3cret".into(),
    }
}

async fn finish(task: tokio::task::JoinHandle<std::result::Result<(), String>>) {
    let r = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("server task finished")
        .expect("server task did not panic");
    if let Err(e) = r {
        panic!("the client sent something unexpected: {e}");
    }
}

/// A literal announcement and its bytes as a server sends them.
fn lit(s: &str) -> String {
    format!("{{{}}}\r\n{s}", s.len())
}

#[tokio::test]
async fn full_featured_server() {
    let cyr = "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-";
    let raw = "Subject: x\r\n\r\n* BYE not really\r\n.\r\n)\r\nA1 OK no\r\n";
    let appended = "Subject: sent\r\n\r\nhi\r\n";
    let caps = "IMAP4rev1 SASL-IR AUTH=PLAIN LITERAL+ ESEARCH UIDPLUS MOVE SPECIAL-USE LIST-STATUS";
    let steps = vec![
        s(&format!("* OK [CAPABILITY {caps}] ready\r\n")),
        // base64("\0alice\0s3cret")
        c("P1 AUTHENTICATE PLAIN AGFsaWNlAHMzY3JldA=="),
        s(&format!("P1 OK [CAPABILITY {caps}] logged in\r\n")),
        c("P2 LIST \"\" \"*\" RETURN (SPECIAL-USE STATUS (MESSAGES UNSEEN))"),
        s("* LIST (\\HasNoChildren) \"/\" INBOX\r\n"),
        s("* STATUS INBOX (MESSAGES 3 UNSEEN 1)\r\n"),
        s("* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent Items\"\r\n"),
        s("* STATUS \"Sent Items\" (MESSAGES 1 UNSEEN 0)\r\n"),
        s("* LIST (\\Noselect \\HasChildren) \"/\" Archive\r\n"),
        s(&format!("* LIST () \"/\" {}\r\n", lit(cyr))),
        s(&format!("* STATUS {cyr} (UNSEEN 2 MESSAGES 5)\r\n")),
        s("* LIST () \"/\" Trash\r\n* STATUS Trash (MESSAGES 0 UNSEEN 0)\r\n"),
        s("* LIST () \"/\" Sent\r\n* STATUS Sent (MESSAGES 0 UNSEEN 0)\r\n"),
        s("P2 OK done\r\n"),
        c("P3 SELECT \"INBOX\""),
        s(
            "* 4 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* FLAGS (\\Seen)\r\nP3 OK [READ-WRITE] done\r\n",
        ),
        c("P4 UID SEARCH RETURN (ALL) CHARSET UTF-8 FROM {6+}"),
        Step::Bytes("Аня".as_bytes().to_vec()),
        c(""),
        s("* ESEARCH (TAG \"P4\") UID ALL 3:5,9\r\nP4 OK done\r\n"),
        c("P5 UID FETCH 5,9 (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)"),
        s(&format!(
            "* 4 FETCH (UID 9 FLAGS (\\Seen $Forwarded \\Recent) RFC822.SIZE 1234 INTERNALDATE \" 7-Feb-2024 10:00:00 +0100\" ENVELOPE (NIL {} ((NIL NIL \"bob\" \"example.test\")) NIL NIL NIL NIL NIL NIL \"<a@b>\"))\r\n",
            lit("a ) b {3}")
        )),
        s("* 2 EXPUNGE\r\n* 9 WEIRD [unparsable (\r\n"),
        s(
            "* 3 FETCH (UID 5 RFC822.SIZE 99 FLAGS () ENVELOPE (\"Mon, 1 Jan 2024 10:00:00 +0300\" \"=?UTF-8?B?0J/RgNC40LLQtdGC?=\" ((\"=?UTF-8?Q?=D0=90=D0=BD=D1=8F?=\" NIL \"anya\" \"example.test\")) NIL NIL NIL NIL NIL NIL NIL) INTERNALDATE \"01-Jan-2024 07:00:00 +0000\")\r\n",
        ),
        s("P5 OK done\r\n"),
        c("P6 UID FETCH 9 (UID BODY.PEEK[])"),
        s(&format!(
            "* 4 FETCH (UID 9 BODY[] {})\r\nP6 OK done\r\n",
            lit(raw)
        )),
        c("P7 UID SEARCH RETURN (ALL) UID 5,9"),
        s("* ESEARCH (TAG \"P7\") UID ALL 5,9\r\nP7 OK done\r\n"),
        c("P8 UID MOVE 5,9 \"Trash\""),
        s("* OK [COPYUID 1 5,9 100:101] moved\r\n* 3 EXPUNGE\r\n* 3 EXPUNGE\r\nP8 OK done\r\n"),
        c("P9 UID SEARCH RETURN (ALL) UID 3"),
        s("* ESEARCH (TAG \"P9\") UID\r\nP9 OK done\r\n"),
        c(&format!(
            "P10 APPEND \"Sent Items\" (\\Seen) {{{}+}}",
            appended.len()
        )),
        Step::Bytes(appended.as_bytes().to_vec()),
        c(""),
        s("P10 OK [APPENDUID 1 2] done\r\n"),
        c("P11 LOGOUT"),
        s("* BYE bye\r\nP11 OK done\r\n"),
        Step::Eof,
    ];
    let (port, task) = fake_server(steps).await;
    let mut be = ImapBackend::connect(&plain_endpoint(port), &alice())
        .await
        .expect("connect");

    let folders = be.folders().await.expect("folders");
    let got: Vec<(&str, Option<&str>, u64, u64)> = folders
        .iter()
        .map(|f| (f.name.as_str(), f.role.as_deref(), f.total, f.unread))
        .collect();
    assert_eq!(
        got,
        [
            ("INBOX", Some("inbox"), 3, 1),
            ("Sent", None, 0, 0),
            ("Sent Items", Some("sent"), 1, 0),
            ("Trash", Some("trash"), 0, 0),
            ("Отправленные", None, 5, 2),
        ]
    );

    let q = Query {
        from: Some("Аня".into()),
        limit: Some(2),
        page: 1,
        ..Query::default()
    };
    let l = be.list(&q).await.expect("list");
    assert_eq!(l.len(), 2);
    assert_eq!(l[0].id, "INBOX/9");
    assert_eq!(l[0].subject, "a ) b {3}");
    assert_eq!(l[0].from, "bob@example.test");
    assert_eq!(l[0].flags, ["\\Seen", "$Forwarded"]);
    assert_eq!(l[0].size, 1234);
    assert_eq!(
        l[0].date.map(|d| d.unix_timestamp()),
        Some(time::macros::datetime!(2024-02-07 9:00 UTC).unix_timestamp())
    );
    assert_eq!(l[1].id, "INBOX/5");
    assert_eq!(l[1].subject, "Привет");
    assert_eq!(l[1].from, "Аня <anya@example.test>");
    assert_eq!(
        l[1].date.map(|d| d.unix_timestamp()),
        Some(time::macros::datetime!(2024-01-01 7:00 UTC).unix_timestamp())
    );

    assert_eq!(be.fetch_raw("INBOX/9").await.expect("raw"), raw.as_bytes());

    let moved = be
        .move_to(&["INBOX/9".into(), "INBOX/5".into()], "Trash")
        .await
        .expect("move");
    assert_eq!(moved, ["Trash/101", "Trash/100"]);

    let err = be
        .flag(
            &["3".into()],
            &[FlagChange {
                add: true,
                flag: "\\seen".into(),
            }],
        )
        .await
        .expect_err("missing");
    assert!(
        matches!(err, ClientError::NoSuchMessage(ref id) if id == "INBOX/3"),
        "{err}"
    );

    be.append(
        "Sent Items",
        appended.as_bytes(),
        &["\\Seen".into(), "\\Recent".into()],
    )
    .await
    .expect("append");
    be.close().await.expect("close");
    finish(task).await;
}

#[tokio::test]
async fn bare_rfc3501_server_gets_the_fallbacks() {
    let password = "пароль \"x\"";
    let steps = vec![
        s("* OK hi\r\n"),
        c("P1 CAPABILITY"),
        s("* CAPABILITY IMAP4rev1\r\nP1 OK done\r\n"),
        c(&format!("P2 LOGIN \"alice\" {{{}}}", password.len())),
        s("+ go ahead\r\n"),
        Step::Bytes(password.as_bytes().to_vec()),
        c(""),
        s("P2 OK logged in\r\n"),
        c("P3 CAPABILITY"),
        s("* CAPABILITY IMAP4rev1 IDLE\r\nP3 OK done\r\n"),
        // expunge(["Work/7"]): LIST to learn the spelling, "." as delimiter.
        c("P4 LIST \"\" \"*\""),
        s(
            "* LIST () \".\" INBOX\r\n* LIST () \".\" Work\r\n* LIST () \".\" Lists.Rust\r\nP4 OK done\r\n",
        ),
        c("P5 SELECT \"Work\""),
        s("P5 OK done\r\n"),
        c("P6 UID SEARCH UID 7"),
        s("* SEARCH 7\r\nP6 OK done\r\n"),
        c("P7 UID STORE 7 +FLAGS.SILENT (\\Deleted)"),
        s("P7 OK done\r\n"),
        // No UID EXPUNGE: spare the other \Deleted message (UID 3).
        c("P8 UID SEARCH DELETED"),
        s("* SEARCH 3 7\r\nP8 OK done\r\n"),
        c("P9 UID STORE 3 -FLAGS.SILENT (\\Deleted)"),
        s("P9 OK done\r\n"),
        c("P10 EXPUNGE"),
        s("* 2 EXPUNGE\r\nP10 OK done\r\n"),
        c("P11 UID STORE 3 +FLAGS.SILENT (\\Deleted)"),
        s("P11 OK done\r\n"),
        // move_to(["Lists/Rust/12"], "INBOX"): COPY + STORE + EXPUNGE, then the
        // new UID by Message-ID.
        c("P12 SELECT \"Lists.Rust\""),
        s("P12 OK done\r\n"),
        c("P13 UID SEARCH UID 12"),
        s("* SEARCH 12\r\nP13 OK done\r\n"),
        c("P14 UID FETCH 12 (UID ENVELOPE)"),
        s(
            "* 1 FETCH (UID 12 ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL \"<m1@x>\"))\r\nP14 OK done\r\n",
        ),
        c("P15 UID COPY 12 \"INBOX\""),
        s("P15 OK done\r\n"),
        c("P16 UID STORE 12 +FLAGS.SILENT (\\Deleted)"),
        s("P16 OK done\r\n"),
        c("P17 UID SEARCH DELETED"),
        s("* SEARCH 12\r\nP17 OK done\r\n"),
        c("P18 EXPUNGE"),
        s("* 1 EXPUNGE\r\nP18 OK done\r\n"),
        c("P19 SELECT \"INBOX\""),
        s("P19 OK done\r\n"),
        c("P20 UID SEARCH HEADER Message-ID \"<m1@x>\""),
        s("* SEARCH 4 20\r\nP20 OK done\r\n"),
        // A SELECT that fails: no such folder.
        c("P21 SELECT \"Lists\""),
        s("P21 NO [NONEXISTENT] no\r\n"),
        // APPEND with a synchronising literal the server refuses at once.
        c("P22 APPEND \"Work\" () {5}"),
        s("P22 NO [TRYCREATE] gone\r\n"),
        Step::Close,
    ];
    let (port, task) = fake_server(steps).await;
    let login = Login {
        user: "alice".into(),
        password: password.into(),
    };
    let mut be = ImapBackend::connect(&plain_endpoint(port), &login)
        .await
        .expect("connect");
    be.expunge(&["Work/7".into()]).await.expect("expunge");
    let moved = be
        .move_to(&["Lists/Rust/12".into()], "inbox")
        .await
        .expect("move");
    assert_eq!(moved, ["INBOX/20"]);
    // "Lists" is not in the LIST cache: LIST again, then guess the spelling.
    be.mailboxes.push(Mailbox {
        name: "Lists".into(),
        wire: b"Lists".to_vec(),
        attrs: vec![],
    });
    let err = be
        .list(&Query {
            folder: Some("Lists".into()),
            ..Query::default()
        })
        .await
        .expect_err("no folder");
    assert!(matches!(err, ClientError::NoSuchFolder(_)), "{err}");
    let err = be
        .append("Work", b"x\r\n\r\n", &[])
        .await
        .expect_err("refused");
    assert!(matches!(err, ClientError::NoSuchFolder(_)), "{err}");
    finish(task).await;
}

#[tokio::test]
async fn data_injected_after_starttls_is_refused() {
    let steps = vec![
        s("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] hi\r\n"),
        c("P1 STARTTLS"),
        s("P1 OK begin TLS\r\n* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] injected\r\n"),
        Step::Eof,
    ];
    let (port, task) = fake_server(steps).await;
    let mut ep = plain_endpoint(port);
    ep.security = Security::Starttls;
    let err = ImapBackend::connect(&ep, &alice())
        .await
        .expect_err("injection");
    assert!(
        err.to_string().contains("after accepting STARTTLS"),
        "{err}"
    );
    finish(task).await;
}

#[tokio::test]
async fn wrong_password_is_an_auth_error() {
    let steps = vec![
        s("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n"),
        c("P1 AUTHENTICATE PLAIN"),
        s("+ \r\n"),
        c("AGFsaWNlAHMzY3JldA=="),
        s("P1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"),
        Step::Eof,
    ];
    let (port, task) = fake_server(steps).await;
    let err = ImapBackend::connect(&plain_endpoint(port), &alice())
        .await
        .expect_err("refused");
    assert!(
        matches!(err, ClientError::Auth { ref reply, .. } if reply == "Authentication failed."),
        "{err}"
    );
    finish(task).await;
}

#[tokio::test]
async fn starttls_required_but_not_offered_sends_no_password() {
    let steps = vec![
        s("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n"),
        Step::Eof,
    ];
    let (port, task) = fake_server(steps).await;
    let mut ep = plain_endpoint(port);
    ep.security = Security::Starttls;
    let err = ImapBackend::connect(&ep, &alice())
        .await
        .expect_err("no STARTTLS");
    assert!(err.to_string().contains("STARTTLS"), "{err}");
    finish(task).await;
}

#[tokio::test]
async fn hostile_and_dying_servers_are_errors_not_panics() {
    let greet = "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] hi\r\n";
    let login = "P1 AUTHENTICATE PLAIN AGFsaWNlAHMzY3JldA==";
    let cases: Vec<(Vec<Step>, &str)> = vec![
        // Drops the connection in the middle of a literal.
        (
            vec![
                s(greet),
                c(login),
                s("P1 OK [CAPABILITY IMAP4rev1] in\r\n"),
                c("P2 SELECT \"INBOX\""),
                s("P2 OK done\r\n"),
                c("P3 UID FETCH 1 (UID BODY.PEEK[])"),
                s("* 1 FETCH (UID 1 BODY[] {100}\r\nonly a part"),
                Step::Close,
            ],
            "closed the connection",
        ),
        // Announces a literal larger than the limit.
        (
            vec![
                s(greet),
                c(login),
                s("P1 OK [CAPABILITY IMAP4rev1] in\r\n"),
                c("P2 SELECT \"INBOX\""),
                s("P2 OK done\r\n"),
                c("P3 UID FETCH 1 (UID BODY.PEEK[])"),
                s("* 1 FETCH (UID 1 BODY[] {99999999999}\r\n"),
            ],
            "literal",
        ),
        // Says BYE and hangs up.
        (
            vec![
                s(greet),
                c(login),
                s("P1 OK [CAPABILITY IMAP4rev1] in\r\n"),
                c("P2 SELECT \"INBOX\""),
                s("* BYE shutting down\r\n"),
                Step::Close,
            ],
            "shutting down",
        ),
        // Garbage as a tagged response.
        (
            vec![
                s(greet),
                c(login),
                s("P1 OK [CAPABILITY IMAP4rev1] in\r\n"),
                c("P2 SELECT \"INBOX\""),
                s("P2 MAYBE\r\n"),
            ],
            "unexpected tagged response",
        ),
    ];
    for (steps, want) in cases {
        let (port, task) = fake_server(steps).await;
        let mut be = ImapBackend::connect(&plain_endpoint(port), &alice())
            .await
            .expect("connect");
        be.mailboxes.push(Mailbox {
            name: "INBOX".into(),
            wire: b"INBOX".to_vec(),
            attrs: vec![],
        });
        let err = be.fetch_raw("INBOX/1").await.expect_err("must fail");
        assert!(err.to_string().contains(want), "{want}: {err}");
        // Later calls fail cleanly too.
        assert!(be.fetch_raw("INBOX/1").await.is_err());
        task.abort();
    }
}

#[test]
fn ids_and_flags() {
    assert_eq!(parse_id("INBOX/42").expect("id"), ("INBOX".into(), 42));
    assert_eq!(
        parse_id("Archive/2024/7").expect("id"),
        ("Archive/2024".into(), 7)
    );
    assert_eq!(parse_id("42").expect("id"), ("INBOX".into(), 42));
    for bad in ["", "/4", "INBOX/", "INBOX/x", "INBOX/0", "INBOX/-1", "abc"] {
        assert!(parse_id(bad).is_err(), "{bad}");
    }
    assert_eq!(flag_atom("\\seen").expect("flag"), "\\Seen");
    assert_eq!(flag_atom("$Junk").expect("flag"), "$Junk");
    for bad in ["", "a b", "x)", "\\Recent2", "\"q\""] {
        assert!(flag_atom(bad).is_err(), "{bad}");
    }
    assert_eq!(role_for_name("Sent Messages"), Some("sent"));
    assert_eq!(role_for_name("INBOX.Trash"), Some("trash"));
    assert_eq!(role_for_name("Work"), None);
    assert_eq!(
        parse_internal_date(" 7-Feb-2024 10:00:00 +0100").map(|d| d.unix_timestamp()),
        Some(1707296400)
    );
    assert_eq!(
        search_date(time::macros::date!(2024 - 02 - 07)),
        "7-Feb-2024"
    );
}
