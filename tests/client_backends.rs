//! The user agent's backends (crates/client: IMAP, POP3 into a Maildir, the
//! Maildir itself) against the real `pochta` binary over loopback.

#![allow(clippy::unwrap_used)] // tests assert by unwrapping

mod common;

use std::collections::BTreeSet;

use common::*;
use pochta_client::ClientError;
use pochta_client::backend::{FlagChange, MailBackend, Query, Summary};
use pochta_client::imap::ImapBackend;
use pochta_client::maildir::{Maildir, MaildirBackend};
use pochta_client::pop3::{self, FetchOptions};
use pochta_client::tls::{Endpoint, Login, Security};

const USER: &str = "alice@localhost";

fn login() -> Login {
    Login {
        user: USER.into(),
        password: PASSWORD.into(),
    }
}

fn endpoint(port: u16, security: Security) -> Endpoint {
    Endpoint {
        host: "127.0.0.1".into(),
        port,
        security,
        accept_invalid_certs: true,
    }
}

/// Five messages with distinct senders, recipients, subjects and bodies.
fn message(n: usize) -> Vec<u8> {
    let (from, to, subject, body) = match n {
        1 => (
            "Anna <anna@example.org>",
            USER,
            "=?UTF-8?B?0J/RgNC40LLQtdGC?=",
            "Содержание письма\r\n",
        ),
        2 => (
            "bob@example.org",
            USER,
            "lunch plans",
            ".dot first\r\npizza\r\n",
        ),
        3 => (
            "carol@example.net",
            "team@example.test",
            "quarterly report",
            "numbers inside\r\n",
        ),
        4 => ("bob@example.org", USER, "re: lunch plans", "sushi then\r\n"),
        _ => ("dave@example.com", USER, "misc", "nothing special\r\n"),
    };
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, {n} Jan 2024 10:00:00 +0000\r\n\
         Message-ID: <m{n}@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n{body}"
    )
    .into_bytes()
}

fn subjects(list: &[Summary]) -> Vec<String> {
    list.iter().map(|s| s.subject.clone()).collect()
}

async fn search(be: &mut ImapBackend, f: impl FnOnce(&mut Query)) -> Vec<String> {
    let mut q = Query::default();
    f(&mut q);
    subjects(&be.list(&q).await.unwrap())
}

fn flag(add: bool, flag: &str) -> FlagChange {
    FlagChange {
        add,
        flag: flag.into(),
    }
}

#[tokio::test]
async fn imap_backend_browses_searches_and_changes_mail() {
    let server = Server::start();
    server.add_user(USER);
    for n in 1..=5 {
        server.deliver(USER, &message(n));
    }
    let stored = inbox(&server.store(), USER).await;
    let mut be = ImapBackend::connect(&endpoint(server.ports.imap, Security::Starttls), &login())
        .await
        .unwrap();

    // Folders with counts and roles.
    let folders = be.folders().await.unwrap();
    assert_eq!(folders[0].name, "INBOX");
    assert_eq!((folders[0].total, folders[0].unread), (5, 5));
    let roles: BTreeSet<_> = folders.iter().filter_map(|f| f.role.clone()).collect();
    for r in ["inbox", "sent", "trash", "drafts", "junk"] {
        assert!(roles.contains(r), "{r} missing in {folders:?}");
    }
    let sent = be.folder_with_role("sent").await.unwrap().unwrap();
    let trash = be.folder_with_role("trash").await.unwrap().unwrap();

    // Newest first, paged.
    let all = be.list(&Query::default()).await.unwrap();
    assert_eq!(
        subjects(&all),
        [
            "misc",
            "re: lunch plans",
            "quarterly report",
            "lunch plans",
            "Привет"
        ]
    );
    assert_eq!(all[4].from, "Anna <anna@example.org>");
    assert!(
        all.iter()
            .all(|s| s.id.starts_with("INBOX/") && s.flags.is_empty())
    );
    let mut paged = Vec::new();
    for page in 1..=3 {
        let p = be
            .list(&Query {
                limit: Some(2),
                page,
                ..Query::default()
            })
            .await
            .unwrap();
        assert_eq!(p.len(), if page < 3 { 2 } else { 1 });
        paged.extend(p);
    }
    assert_eq!(paged, all);

    // Each search key.
    assert_eq!(
        search(&mut be, |q| q.from = Some("bob@".into())).await,
        ["re: lunch plans", "lunch plans"]
    );
    assert_eq!(
        search(&mut be, |q| q.to = Some("team@".into())).await,
        ["quarterly report"]
    );
    assert_eq!(
        search(&mut be, |q| q.subject = Some("LUNCH".into())).await,
        ["re: lunch plans", "lunch plans"]
    );
    assert_eq!(
        search(&mut be, |q| q.text = Some("sushi".into())).await,
        ["re: lunch plans"]
    );
    assert_eq!(
        search(&mut be, |q| q.text = Some("Содержание".into())).await,
        ["Привет"]
    );
    assert_eq!(
        search(&mut be, |q| q.subject = Some("Привет".into())).await,
        ["Привет"]
    );
    let today = time::OffsetDateTime::now_utc().date();
    assert_eq!(
        search(&mut be, |q| q.since = Some(today.previous_day().unwrap()))
            .await
            .len(),
        5
    );
    assert_eq!(
        search(&mut be, |q| q.since =
            Some(today.next_day().unwrap().next_day().unwrap()))
        .await
        .len(),
        0
    );
    assert_eq!(
        search(&mut be, |q| q.before = Some(today.previous_day().unwrap()))
            .await
            .len(),
        0
    );
    assert_eq!(
        search(&mut be, |q| q.before =
            Some(today.next_day().unwrap().next_day().unwrap()))
        .await
        .len(),
        5
    );

    // fetch_raw is byte-exact and leaves \Seen alone.
    let first = all
        .iter()
        .find(|s| s.subject == "Привет")
        .unwrap()
        .id
        .clone();
    let raw = be.fetch_raw(&first).await.unwrap();
    let original = stored
        .iter()
        .find(|(_, b)| b.ends_with("Содержание письма\r\n".as_bytes()))
        .unwrap();
    assert_eq!(raw, original.1);
    assert_eq!(search(&mut be, |q| q.unread = true).await.len(), 5);

    // Flags.
    let lunch: Vec<String> = all
        .iter()
        .filter(|s| s.subject.contains("lunch"))
        .map(|s| s.id.clone())
        .collect();
    be.flag(
        &lunch,
        &[
            flag(true, "\\seen"),
            flag(true, "\\Flagged"),
            flag(true, "$Work"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(search(&mut be, |q| q.unread = true).await.len(), 3);
    assert_eq!(
        search(&mut be, |q| q.flagged = true).await,
        ["re: lunch plans", "lunch plans"]
    );
    let l = be.list(&Query::default()).await.unwrap();
    let flags: BTreeSet<&str> = l[1].flags.iter().map(String::as_str).collect();
    assert_eq!(flags, BTreeSet::from(["\\Seen", "\\Flagged", "$Work"]));
    be.flag(&lunch[..1], &[flag(false, "\\Seen")])
        .await
        .unwrap();
    assert_eq!(search(&mut be, |q| q.unread = true).await.len(), 4);
    let folders = be.folders().await.unwrap();
    assert_eq!((folders[0].total, folders[0].unread), (5, 4));
    let err = be
        .flag(&["INBOX/999".into()], &[flag(true, "\\Seen")])
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::NoSuchMessage(_)), "{err}");
    let err = be.fetch_raw("Nope/1").await.unwrap_err();
    assert!(matches!(err, ClientError::NoSuchFolder(_)), "{err}");
    let err = be.fetch_raw("INBOX/999").await.unwrap_err();
    assert!(matches!(err, ClientError::NoSuchMessage(_)), "{err}");

    // Move with MOVE + UIDPLUS: the new ids work.
    let moved = be.move_to(&lunch, &trash).await.unwrap();
    assert_eq!(moved.len(), 2);
    assert!(
        moved.iter().all(|id| id.starts_with(&format!("{trash}/"))),
        "{moved:?}"
    );
    let in_trash = be
        .list(&Query {
            folder: Some(trash.clone()),
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(
        in_trash
            .iter()
            .map(|s| s.id.clone())
            .collect::<BTreeSet<_>>(),
        moved.iter().cloned().collect::<BTreeSet<_>>()
    );
    assert_eq!(be.list(&Query::default()).await.unwrap().len(), 3);
    assert!(
        be.fetch_raw(&moved[0])
            .await
            .unwrap()
            .ends_with(b".dot first\r\npizza\r\n")
            || be
                .fetch_raw(&moved[0])
                .await
                .unwrap()
                .ends_with(b"sushi then\r\n")
    );

    // Move back without MOVE and UIDPLUS: COPY + \Deleted + EXPUNGE, new id
    // found by Message-ID. Another \Deleted message in Trash must survive.
    let mut old = ImapBackend::connect(&endpoint(server.ports.imap, Security::Starttls), &login())
        .await
        .unwrap();
    old.disable_extensions(&["MOVE", "UIDPLUS", "ESEARCH", "LIST-STATUS", "SPECIAL-USE"]);
    old.flag(&moved[1..], &[flag(true, "\\Deleted")])
        .await
        .unwrap();
    let back = old.move_to(&moved[..1], "INBOX").await.unwrap();
    assert!(
        back[0].starts_with("INBOX/") && !back[0].ends_with('?'),
        "{back:?}"
    );
    let raw_back = old.fetch_raw(&back[0]).await.unwrap();
    assert!(raw_back.ends_with(b"pizza\r\n") || raw_back.ends_with(b"sushi then\r\n"));
    let still: Vec<Summary> = old
        .list(&Query {
            folder: Some(trash.clone()),
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(still.len(), 1, "{still:?}");
    assert!(still[0].flags.iter().any(|f| f == "\\Deleted"));
    // Folders without LIST-STATUS / SPECIAL-USE: the same counts and roles.
    let a = be.folders().await.unwrap();
    let b = old.folders().await.unwrap();
    assert_eq!(a, b);

    // Expunge without UIDPLUS spares other \Deleted messages, then with it.
    let inbox_now = old.list(&Query::default()).await.unwrap();
    let misc = inbox_now
        .iter()
        .find(|s| s.subject == "misc")
        .unwrap()
        .id
        .clone();
    old.expunge(std::slice::from_ref(&misc)).await.unwrap();
    assert_eq!(old.list(&Query::default()).await.unwrap().len(), 3);
    assert_eq!(
        old.list(&Query {
            folder: Some(trash.clone()),
            ..Query::default()
        })
        .await
        .unwrap()
        .len(),
        1
    );
    be.expunge(&[still[0].id.clone()]).await.unwrap();
    assert!(matches!(
        be.fetch_raw(&still[0].id).await,
        Err(ClientError::NoSuchMessage(_))
    ));
    old.close().await.unwrap();

    // Append a sent copy with \Seen.
    let copy = "From: alice@localhost\r\nTo: bob@example.org\r\nSubject: =?UTF-8?Q?=D0=BE=D1=82=D0=B2=D0=B5=D1=82?=\r\n\r\nответ\r\n";
    be.append(&sent, copy.as_bytes(), &["\\Seen".into()])
        .await
        .unwrap();
    let s = be
        .list(&Query {
            folder: Some(sent.clone()),
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(subjects(&s), ["ответ"]);
    assert_eq!(s[0].flags, ["\\Seen"]);
    assert_eq!(be.fetch_raw(&s[0].id).await.unwrap(), copy.as_bytes());
    let err = be
        .append("No Such Folder", b"x\r\n", &[])
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::NoSuchFolder(_)), "{err}");
    be.close().await.unwrap();
}

#[tokio::test]
async fn imap_login_errors_and_implicit_tls() {
    let server = Server::start();
    server.add_user(USER);
    server.deliver(USER, &message(1));

    let mut be = ImapBackend::connect(&endpoint(server.ports.imaps, Security::Tls), &login())
        .await
        .unwrap();
    assert_eq!(be.list(&Query::default()).await.unwrap().len(), 1);
    be.close().await.unwrap();

    let wrong = Login {
        user: USER.into(),
        password: "wrong".into(),
    };
    let err = ImapBackend::connect(&endpoint(server.ports.imap, Security::Starttls), &wrong)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Auth { .. }), "{err}");

    let mut strict = endpoint(server.ports.imaps, Security::Tls);
    strict.accept_invalid_certs = false;
    let err = ImapBackend::connect(&strict, &login()).await.unwrap_err();
    assert!(matches!(err, ClientError::Certificate { .. }), "{err}");

    // `plain` to a server that disables LOGIN without TLS: no password sent.
    let err = ImapBackend::connect(&endpoint(server.ports.imap, Security::Plain), &login())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("LOGINDISABLED"), "{err}");
}

fn maildir_files(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(dir.join("new"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn pop3_fetch_moves_everything_into_the_maildir() {
    let server = Server::start();
    server.add_user(USER);
    for n in 1..=3 {
        server.deliver(USER, &message(n));
    }
    let mut expected: Vec<Vec<u8>> = inbox(&server.store(), USER)
        .await
        .into_iter()
        .map(|(_, raw)| raw)
        .collect();
    expected.sort();
    let dir = tempfile::tempdir().unwrap();
    let md = Maildir::open(&dir.path().join("mail")).unwrap();

    let sum = pop3::fetch(
        &endpoint(server.ports.pop3, Security::Starttls),
        &login(),
        &md,
        &FetchOptions {
            keep: false,
            progress: true,
        },
    )
    .await
    .unwrap();
    assert_eq!((sum.fetched, sum.skipped, sum.deleted), (3, 0, 3));
    assert_eq!(
        sum.bytes,
        expected.iter().map(|m| m.len() as u64).sum::<u64>()
    );
    assert_eq!(maildir_files(md.path()), expected);
    assert!(inbox(&server.store(), USER).await.is_empty());

    // Nothing left: a second fetch (implicit TLS) gets nothing.
    let sum = pop3::fetch(
        &endpoint(server.ports.pop3s, Security::Tls),
        &login(),
        &md,
        &FetchOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!((sum.fetched, sum.deleted), (0, 0));

    // The fetched Maildir browses like a server.
    let mut local = MaildirBackend::open(md.path()).unwrap();
    let l = local.list(&Query::default()).await.unwrap();
    assert_eq!(subjects(&l), ["quarterly report", "lunch plans", "Привет"]);
    let hits = local
        .list(&Query {
            text: Some("pizza".into()),
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(subjects(&hits), ["lunch plans"]);
    local
        .flag(&[l[0].id.clone()], &[flag(true, "\\Seen")])
        .await
        .unwrap();
    local
        .append("Archive", b"Subject: a\r\n\r\n", &[])
        .await
        .unwrap();
    let moved = local.move_to(&[l[0].id.clone()], "Archive").await.unwrap();
    assert_eq!(moved, [l[0].id.clone()]);
    let folders = local.folders().await.unwrap();
    assert_eq!(
        folders
            .iter()
            .map(|f| (f.name.as_str(), f.total, f.unread))
            .collect::<Vec<_>>(),
        [("INBOX", 2, 2), ("Archive", 2, 1)]
    );
    assert!(
        local
            .fetch_raw(&l[0].id)
            .await
            .unwrap()
            .ends_with(b"numbers inside\r\n")
    );
}

#[tokio::test]
async fn pop3_fetch_keep_twice_fetches_nothing_new() {
    let server = Server::start();
    server.add_user(USER);
    server.deliver(USER, &message(1));
    server.deliver(USER, &message(2));
    let dir = tempfile::tempdir().unwrap();
    let md = Maildir::open(dir.path()).unwrap();
    let keep = FetchOptions {
        keep: true,
        progress: false,
    };
    let ep = endpoint(server.ports.pop3, Security::Starttls);

    let sum = pop3::fetch(&ep, &login(), &md, &keep).await.unwrap();
    assert_eq!((sum.fetched, sum.skipped, sum.deleted), (2, 0, 0));
    let sum = pop3::fetch(&ep, &login(), &md, &keep).await.unwrap();
    assert_eq!((sum.fetched, sum.skipped, sum.deleted), (0, 2, 0));
    assert!(sum.warnings.is_empty(), "{:?}", sum.warnings);
    assert_eq!(inbox(&server.store(), USER).await.len(), 2);

    server.deliver(USER, &message(3));
    let sum = pop3::fetch(&ep, &login(), &md, &keep).await.unwrap();
    assert_eq!((sum.fetched, sum.skipped), (1, 2));
    assert_eq!(maildir_files(md.path()).len(), 3);

    // Without --keep now: nothing is downloaded twice, all is deleted.
    let sum = pop3::fetch(&ep, &login(), &md, &FetchOptions::default())
        .await
        .unwrap();
    assert_eq!((sum.fetched, sum.skipped, sum.deleted), (0, 3, 3));
    assert!(inbox(&server.store(), USER).await.is_empty());
    assert_eq!(maildir_files(md.path()).len(), 3);

    let wrong = Login {
        user: USER.into(),
        password: "wrong".into(),
    };
    let err = pop3::fetch(&ep, &wrong, &md, &keep).await.unwrap_err();
    assert!(matches!(err, ClientError::Auth { .. }), "{err}");
}
