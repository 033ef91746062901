//! The user agent's JMAP backend (`pochta_client::jmap`) against the real
//! binary over HTTPS (self-signed certificate, so `accept_invalid_certs`):
//! folders with counts, listing with paging and every filter, the raw message
//! byte for byte, flags, move, expunge, append, and sending with
//! EmailSubmission to a local user (it arrives in their INBOX; the sender's
//! copy is in Sent). Mail arrives over SMTP through the MX.

#![allow(clippy::unwrap_used)] // tests assert by unwrapping

mod common;

use std::time::Duration;

use common::*;
use pochta_client::ClientError;
use pochta_client::backend::{FlagChange, MailBackend, Query};
use pochta_client::jmap::JmapBackend;
use pochta_client::tls::Login;

const ALICE: &str = "alice@example.test";
const BOB: &str = "bob@example.test";

fn login(user: &str) -> Login {
    Login {
        user: user.to_string(),
        password: PASSWORD.to_string(),
    }
}

fn url(server: &Server) -> String {
    format!("https://127.0.0.1:{}", server.ports.http)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `f` with a deadline: a hang fails the test instead of stalling CI.
fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    runtime().block_on(async {
        tokio::time::timeout(Duration::from_secs(120), f)
            .await
            .expect("the test took longer than 120 s")
    })
}

async fn connect(server: &Server, user: &str) -> JmapBackend {
    JmapBackend::connect(&url(server), &login(user), true)
        .await
        .unwrap()
}

fn message(from: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {ALICE}\r\nSubject: {subject}\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\n\
         Message-ID: <{}@remote.example>\r\n\r\n{body}\r\n",
        subject.replace(' ', ".")
    )
    .into_bytes()
}

/// Five messages to Alice, a second apart so that arrival order is
/// newest-first order: m0 is the oldest.
fn deliver_five(server: &Server) {
    let mail = [
        ("Ann <ann@remote.example>", "m0 quarterly report", "numbers"),
        ("bert@remote.example", "m1 lunch", "pizza needle"),
        (
            "Carla <carla@remote.example>",
            "m2 quarterly plan",
            "haystack",
        ),
        ("dora@remote.example", "m3 hello", "just saying"),
        ("Ann <ann@remote.example>", "m4 weekend", "hiking"),
    ];
    for (i, (from, subject, body)) in mail.iter().enumerate() {
        if i > 0 {
            // receivedAt has one-second resolution.
            std::thread::sleep(Duration::from_millis(1050));
        }
        server.deliver(ALICE, &message(from, subject, body));
    }
}

fn subjects(list: &[pochta_client::backend::Summary]) -> Vec<String> {
    list.iter()
        .map(|s| s.subject.split(' ').next().unwrap_or("").to_string())
        .collect()
}

fn ids_of(list: &[pochta_client::backend::Summary]) -> Vec<String> {
    list.iter().map(|s| s.id.clone()).collect()
}

fn change(add: bool, flag: &str) -> FlagChange {
    FlagChange {
        add,
        flag: flag.to_string(),
    }
}

#[test]
fn browse_over_jmap() {
    let server = Server::start();
    server.add_user(ALICE);
    deliver_five(&server);
    let stored = runtime().block_on(inbox(&server.store(), ALICE));
    run(async {
        let mut b = connect(&server, ALICE).await;

        // Folders: INBOX first, roles, counts.
        let folders = b.folders().await.unwrap();
        assert_eq!(folders[0].name, "INBOX");
        assert_eq!(folders[0].role.as_deref(), Some("inbox"));
        assert_eq!((folders[0].total, folders[0].unread), (5, 5));
        for role in ["sent", "drafts", "trash"] {
            assert!(
                folders.iter().any(|f| f.role.as_deref() == Some(role)),
                "no {role} folder in {folders:?}"
            );
        }
        assert_eq!(
            b.folder_with_role("sent").await.unwrap().as_deref(),
            Some("Sent")
        );

        // Newest first, with summaries.
        let all = b.list(&Query::default()).await.unwrap();
        assert_eq!(subjects(&all), ["m4", "m3", "m2", "m1", "m0"]);
        assert_eq!(all[0].from, "Ann <ann@remote.example>");
        assert_eq!(all[0].folder, "INBOX");
        assert!(all[0].flags.is_empty(), "{:?}", all[0].flags);
        assert!(all[0].date.is_some());
        assert!(all.iter().all(|s| s.size > 50));

        // Paging.
        let page = |n: usize| Query {
            limit: Some(2),
            page: n,
            ..Query::default()
        };
        let p1 = b.list(&page(1)).await.unwrap();
        let p2 = b.list(&page(2)).await.unwrap();
        let p3 = b.list(&page(3)).await.unwrap();
        let p4 = b.list(&page(4)).await.unwrap();
        assert_eq!(subjects(&p1), ["m4", "m3"]);
        assert_eq!(subjects(&p2), ["m2", "m1"]);
        assert_eq!(subjects(&p3), ["m0"]);
        assert!(p4.is_empty());

        // Each filter.
        let q = |f: &dyn Fn(&mut Query)| {
            let mut q = Query::default();
            f(&mut q);
            q
        };
        let found = b
            .list(&q(&|q| q.from = Some("ann@remote".into())))
            .await
            .unwrap();
        assert_eq!(subjects(&found), ["m4", "m0"]);
        let found = b
            .list(&q(&|q| q.from = Some("Carla".into())))
            .await
            .unwrap();
        assert_eq!(subjects(&found), ["m2"]);
        let found = b.list(&q(&|q| q.to = Some(ALICE.into()))).await.unwrap();
        assert_eq!(found.len(), 5);
        let found = b
            .list(&q(&|q| q.to = Some("nobody@else".into())))
            .await
            .unwrap();
        assert!(found.is_empty());
        let found = b
            .list(&q(&|q| q.subject = Some("quarterly".into())))
            .await
            .unwrap();
        assert_eq!(subjects(&found), ["m2", "m0"]);
        let found = b
            .list(&q(&|q| q.text = Some("needle".into())))
            .await
            .unwrap();
        assert_eq!(subjects(&found), ["m1"]);
        let today = time::OffsetDateTime::now_utc().date();
        let tomorrow = today.next_day().unwrap();
        let found = b.list(&q(&|q| q.since = Some(today))).await.unwrap();
        assert_eq!(found.len(), 5);
        let found = b.list(&q(&|q| q.since = Some(tomorrow))).await.unwrap();
        assert!(found.is_empty());
        let found = b.list(&q(&|q| q.before = Some(today))).await.unwrap();
        assert!(found.is_empty());
        let found = b.list(&q(&|q| q.before = Some(tomorrow))).await.unwrap();
        assert_eq!(found.len(), 5);

        // The raw message, byte for byte as stored (trace headers included).
        let m0 = all[4].id.clone();
        let raw = b.fetch_raw(&m0).await.unwrap();
        let stored_m0 = stored
            .iter()
            .find(|(_, bytes)| bytes.windows(18).any(|w| w == b"m0 quarterly repor"))
            .map(|(_, bytes)| bytes.clone())
            .unwrap();
        assert_eq!(raw, stored_m0);
        assert!(matches!(
            b.fetch_raw("Mnonexistent").await,
            Err(ClientError::NoSuchMessage(_))
        ));
        // Fetching does not mark it read.
        assert!(b.list(&Query::default()).await.unwrap()[4].flags.is_empty());

        // Flags: +seen +flagged +keyword on two, then -seen on one.
        let two = vec![all[0].id.clone(), all[1].id.clone()];
        b.flag(
            &two,
            &[
                change(true, "\\Seen"),
                change(true, "\\Flagged"),
                change(true, "work"),
            ],
        )
        .await
        .unwrap();
        b.flag(&two[1..], &[change(false, "\\Seen")]).await.unwrap();
        let now = b.list(&Query::default()).await.unwrap();
        assert_eq!(now[0].flags, ["\\Seen", "\\Flagged", "work"]);
        assert_eq!(now[1].flags, ["\\Flagged", "work"]);
        let unread = b.list(&q(&|q| q.unread = true)).await.unwrap();
        assert_eq!(subjects(&unread), ["m3", "m2", "m1", "m0"]);
        let flagged = b.list(&q(&|q| q.flagged = true)).await.unwrap();
        assert_eq!(subjects(&flagged), ["m4", "m3"]);
        let both = b
            .list(&q(&|q| {
                q.flagged = true;
                q.unread = true;
            }))
            .await
            .unwrap();
        assert_eq!(subjects(&both), ["m3"]);
        let folders = b.folders().await.unwrap();
        assert_eq!((folders[0].total, folders[0].unread), (5, 4));
        assert!(matches!(
            b.flag(&["Mnonexistent".to_string()], &[change(true, "\\Seen")])
                .await,
            Err(ClientError::NoSuchMessage(_))
        ));

        // Move two to Archive-less servers' Trash: same ids, other folder.
        let moved = vec![all[2].id.clone(), all[3].id.clone()];
        assert_eq!(b.move_to(&moved, "Trash").await.unwrap(), moved);
        let inbox_now = b.list(&Query::default()).await.unwrap();
        assert_eq!(subjects(&inbox_now), ["m4", "m3", "m0"]);
        let trash = b
            .list(&Query {
                folder: Some("Trash".into()),
                ..Query::default()
            })
            .await
            .unwrap();
        assert_eq!(subjects(&trash), ["m2", "m1"]);
        assert_eq!(trash[0].folder, "Trash");
        assert_eq!(ids_of(&trash), moved);
        assert!(matches!(
            b.move_to(&moved, "No such folder").await,
            Err(ClientError::NoSuchFolder(_))
        ));
        assert!(matches!(
            b.list(&Query {
                folder: Some("Nope".into()),
                ..Query::default()
            })
            .await,
            Err(ClientError::NoSuchFolder(_))
        ));

        // Expunge: gone for good.
        b.expunge(&moved).await.unwrap();
        let trash = b
            .list(&Query {
                folder: Some("Trash".into()),
                ..Query::default()
            })
            .await
            .unwrap();
        assert!(trash.is_empty());
        assert!(matches!(
            b.fetch_raw(&moved[0]).await,
            Err(ClientError::NoSuchMessage(_))
        ));

        // Append: a draft with flags, read back byte for byte.
        let draft = b"From: alice@example.test\r\nTo: x@remote.example\r\nSubject: draft one\r\n\r\nunfinished \xc3\xa9\r\n";
        b.append(
            "Drafts",
            draft,
            &["\\Draft".to_string(), "\\Seen".to_string()],
        )
        .await
        .unwrap();
        let drafts = b
            .list(&Query {
                folder: Some("drafts".into()),
                ..Query::default()
            })
            .await
            .unwrap();
        assert_eq!(drafts.len(), 1);
        assert_eq!(drafts[0].subject, "draft one");
        assert_eq!(drafts[0].flags, ["\\Seen", "\\Draft"]);
        assert_eq!(b.fetch_raw(&drafts[0].id).await.unwrap(), draft);
        assert!(matches!(
            b.append("Nope", draft, &[]).await,
            Err(ClientError::NoSuchFolder(_))
        ));
        b.close().await.unwrap();
    });
}

#[test]
fn submit_over_jmap() {
    let server = Server::start();
    server.add_user(ALICE);
    server.add_user(BOB);
    run(async {
        let mut alice = connect(&server, ALICE).await;
        let raw = format!(
            "From: Alice <{ALICE}>\r\nTo: {BOB}\r\nSubject: over jmap\r\n\
             Message-ID: <jmap-submit@example.test>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\nHello Bob.\r\n"
        );
        alice
            .submit(ALICE, &[BOB.to_string()], raw.as_bytes())
            .await
            .unwrap();

        // Bob has it in his INBOX.
        let mut bob = connect(&server, BOB).await;
        let inbox = bob.list(&Query::default()).await.unwrap();
        assert_eq!(inbox.len(), 1, "{inbox:?}");
        assert_eq!(inbox[0].subject, "over jmap");
        assert_eq!(inbox[0].from, format!("Alice <{ALICE}>"));
        let got = bob.fetch_raw(&inbox[0].id).await.unwrap();
        assert!(
            String::from_utf8_lossy(&got).contains("Hello Bob."),
            "{}",
            String::from_utf8_lossy(&got)
        );

        // Alice's copy is in Sent, read.
        let sent = alice
            .list(&Query {
                folder: Some("Sent".into()),
                ..Query::default()
            })
            .await
            .unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].subject, "over jmap");
        assert_eq!(sent[0].flags, ["\\Seen"]);

        // A From the account may not use: the server's refusal is the error,
        // and no copy stays in Sent.
        let forged = format!("From: {BOB}\r\nTo: {BOB}\r\nSubject: forged\r\n\r\nx\r\n");
        let err = alice
            .submit(ALICE, &[BOB.to_string()], forged.as_bytes())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ClientError::Protocol { message, .. } if message.contains("forbiddenFrom")),
            "{err}"
        );
        let sent = alice
            .list(&Query {
                folder: Some("Sent".into()),
                ..Query::default()
            })
            .await
            .unwrap();
        assert_eq!(sent.len(), 1, "{sent:?}");
        // An envelope sender without an identity: said before anything is sent.
        let err = alice
            .submit(BOB, &[BOB.to_string()], raw.as_bytes())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no identity"), "{err}");
        assert_eq!(bob.list(&Query::default()).await.unwrap().len(), 1);
    });
}

#[test]
fn login_and_certificate_errors() {
    let server = Server::start();
    server.add_user(ALICE);
    run(async {
        let wrong = Login {
            user: ALICE.into(),
            password: "wrong".into(),
        };
        let err = JmapBackend::connect(&url(&server), &wrong, true)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Auth { .. }), "{err}");
        // The self-signed certificate is refused unless accepted.
        let err = JmapBackend::connect(&url(&server), &login(ALICE), false)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Certificate { .. }), "{err}");
        // The full session URL works as well as the base URL.
        let full = format!("{}/.well-known/jmap", url(&server));
        let mut b = JmapBackend::connect(&full, &login(ALICE), true)
            .await
            .unwrap();
        assert_eq!(b.folders().await.unwrap()[0].name, "INBOX");
    });
}
