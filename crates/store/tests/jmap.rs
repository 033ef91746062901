//! What the store keeps for JMAP (RFC 8620, RFC 8621): uploads, opaque objects,
//! per-kind states, threads, mailbox counts, bearer tokens and vacation replies.

#![allow(clippy::unwrap_used)] // helpers assert by unwrapping, like the tests they serve

use pochta_addr::Address;
use pochta_store::*;

fn addr(s: &str) -> Address {
    Address::parse(s).unwrap()
}

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    (dir, store)
}

async fn account(store: &SqliteStore, a: &str) -> Account {
    store
        .create_account(NewAccount {
            address: addr(a),
            password_hash: "$argon2id$dummy".into(),
            quota: None,
        })
        .await
        .unwrap()
}

fn message(subject: &str, extra: &str) -> Vec<u8> {
    format!("From: a@remote.example\r\nSubject: {subject}\r\n{extra}\r\nbody of {subject}\r\n")
        .into_bytes()
}

fn delivery(raw: Vec<u8>, targets: Vec<DeliveryTarget>) -> Delivery {
    Delivery {
        meta: pochta_message::parse(&raw),
        raw,
        internal_date: 1_700_000_000,
        targets,
        outbound: None,
    }
}

async fn deliver_to(store: &SqliteStore, target: DeliveryTarget, raw: Vec<u8>) -> Delivered {
    store.deliver(delivery(raw, vec![target])).await.unwrap()[0]
}

async fn mailbox(store: &SqliteStore, account: AccountId, role: Role) -> Mailbox {
    store
        .mailboxes(account)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.role == Some(role))
        .unwrap()
}

fn count(store: &SqliteStore, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn plan(store: &SqliteStore, sql: &str) -> String {
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    rows.join("\n")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

// ---------------------------------------------------------------- uploads

#[tokio::test]
async fn uploads_are_private_readable_and_purged() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let b = account(&store, "bob@example.com").await;
    let up = store
        .upload(a.id, b"hello upload".to_vec(), "text/plain")
        .await
        .unwrap();
    assert_eq!((up.size, up.content_type.as_str()), (12, "text/plain"));
    assert_eq!(
        store.read_blob(a.id, up.blob_id).await.unwrap(),
        b"hello upload"
    );
    assert_eq!(store.blob_size(a.id, up.blob_id).await.unwrap(), Some(12));
    assert!(matches!(
        store.read_blob(b.id, up.blob_id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.blob_size(b.id, up.blob_id).await.unwrap(), None);
    assert_eq!(store.blob_size(a.id, 9999).await.unwrap(), None);
    assert!(
        store.quota(a.id).await.unwrap().used == 0,
        "uploads are not mail"
    );

    // Message blobs keep their rule, and blob_size follows it.
    let raw = message("kept", "");
    let d = deliver_to(&store, DeliveryTarget::inbox(a.id), raw.clone()).await;
    let blob = store
        .message(a.id, d.id)
        .await
        .unwrap()
        .unwrap()
        .summary
        .blob_id;
    assert_eq!(
        store.blob_size(a.id, blob).await.unwrap(),
        Some(raw.len() as u64)
    );
    assert_eq!(store.blob_size(b.id, blob).await.unwrap(), None);

    assert_eq!(
        store.purge_uploads(0).await.unwrap(),
        0,
        "nothing is that old"
    );
    assert_eq!(store.purge_uploads(now() + 10).await.unwrap(), 1);
    assert!(matches!(
        store.read_blob(a.id, up.blob_id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM blobs"),
        1,
        "the upload's bytes are freed, the message's stay"
    );
    assert!(store.read_blob(a.id, blob).await.is_ok());
    assert!(matches!(
        store.upload(999, b"x".to_vec(), "text/plain").await,
        Err(StoreError::NotFound(_))
    ));
}

/// Email/import: the bytes of an upload are delivered as a message of their own;
/// the upload and the message then live and die independently.
#[tokio::test]
async fn importing_an_upload_stores_its_own_copy() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let raw = message("imported", "Message-ID: <imp@x>\r\n");
    let up = store
        .upload(a.id, raw.clone(), "message/rfc822")
        .await
        .unwrap();
    let bytes = store.read_blob(a.id, up.blob_id).await.unwrap();
    let d = deliver_to(&store, DeliveryTarget::inbox(a.id), bytes).await;
    store.purge_uploads(now() + 10).await.unwrap();
    let m = store.message(a.id, d.id).await.unwrap().unwrap();
    assert_ne!(m.summary.blob_id, up.blob_id);
    assert_eq!(store.read_blob(a.id, m.summary.blob_id).await.unwrap(), raw);
}

// ---------------------------------------------------------------- objects

#[tokio::test]
async fn objects_are_set_in_order_in_one_change() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let b = account(&store, "bob@example.com").await;
    let s0 = store.state(a.id).await.unwrap();
    assert_eq!(
        store.kind_state(a.id, ObjectKind::Identity).await.unwrap(),
        0
    );
    let mut rx = store.subscribe(a.id);
    let set = store
        .set_objects(
            a.id,
            ObjectKind::Identity,
            vec![
                ObjectOp::Create(r#"{"name":"Alice"}"#.into()),
                ObjectOp::Create(r#"{"name":"Work"}"#.into()),
                ObjectOp::Update(12345, "{}".into()),
            ],
        )
        .await
        .unwrap();
    let [Ok(i1), Ok(i2), Err(ObjectError::NotFound)] = set.results[..] else {
        panic!("{set:?}");
    };
    assert_eq!(set.state, s0 + 1, "one change for the whole call");
    assert_eq!(store.state(a.id).await.unwrap(), set.state);
    rx.changed().await.unwrap();
    assert_eq!(*rx.borrow_and_update(), set.state, "published after commit");
    assert_eq!(
        store.kind_state(a.id, ObjectKind::Identity).await.unwrap(),
        set.state
    );

    let all = store.objects(a.id, ObjectKind::Identity).await.unwrap();
    assert_eq!(
        all,
        [
            StoredObject {
                id: i1,
                data: r#"{"name":"Alice"}"#.into()
            },
            StoredObject {
                id: i2,
                data: r#"{"name":"Work"}"#.into()
            },
        ]
    );
    let some = store
        .objects_by_id(a.id, ObjectKind::Identity, &[i2, 999, i2, i1])
        .await
        .unwrap();
    assert_eq!(
        some.iter().map(|o| o.id).collect::<Vec<_>>(),
        [i2, i1],
        "in the order asked, each once, missing ones skipped"
    );
    // Kinds and accounts are kept apart.
    assert!(
        store
            .objects(a.id, ObjectKind::VacationResponse)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .objects_by_id(b.id, ObjectKind::Identity, &[i1])
            .await
            .unwrap()
            .is_empty()
    );
    let wrong = store
        .set_objects(b.id, ObjectKind::Identity, vec![ObjectOp::Destroy(i1)])
        .await
        .unwrap();
    assert_eq!(wrong.results, [Err(ObjectError::NotFound)]);
    let wrong = store
        .set_objects(
            a.id,
            ObjectKind::EmailSubmission,
            vec![ObjectOp::Update(i1, "{}".into())],
        )
        .await
        .unwrap();
    assert_eq!(wrong.results, [Err(ObjectError::NotFound)]);
    assert_eq!(wrong.state, 0, "the kind's state, unchanged");
    assert_eq!(
        store.state(a.id).await.unwrap(),
        set.state,
        "failed steps change nothing"
    );

    let s1 = set.state;
    let set = store
        .set_objects(
            a.id,
            ObjectKind::Identity,
            vec![
                ObjectOp::Update(i1, r#"{"name":"Alice A."}"#.into()),
                ObjectOp::Destroy(i2),
                ObjectOp::Destroy(i2),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        set.results,
        [Ok(i1), Ok(i2), Err(ObjectError::NotFound)],
        "steps apply in order"
    );
    assert_eq!(set.state, s1 + 1);
    let ch = store
        .changes(a.id, ObjectKind::Identity, s1, 100)
        .await
        .unwrap();
    assert_eq!(
        (ch.created, ch.updated, ch.destroyed),
        (vec![], vec![i1], vec![i2])
    );
    assert_eq!(ch.new_state, set.state);
    let ch = store
        .changes(a.id, ObjectKind::Identity, s0, 100)
        .await
        .unwrap();
    assert_eq!(
        (ch.created, ch.updated, ch.destroyed),
        (vec![i1], vec![], vec![]),
        "created then destroyed is not reported"
    );
    // The raw log names the kind (IMAP skips what is neither Email nor Mailbox).
    let log = store.change_log(a.id, s1, 100).await.unwrap();
    assert!(
        log.iter()
            .all(|c| c.kind == ObjectKind::Identity && c.mailbox_id.is_none())
    );
    assert_eq!(log.len(), 2);
}

#[tokio::test]
async fn only_jmap_kinds_are_stored_objects() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    for kind in [ObjectKind::Email, ObjectKind::Mailbox] {
        assert!(matches!(
            store
                .set_objects(a.id, kind, vec![ObjectOp::Create("{}".into())])
                .await,
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            store.objects(a.id, kind).await,
            Err(StoreError::Invalid(_))
        ));
    }
    assert!(matches!(
        store
            .set_objects(
                999,
                ObjectKind::Identity,
                vec![ObjectOp::Create("{}".into())]
            )
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(count(&store, "SELECT COUNT(*) FROM objects"), 0);
}

// ---------------------------------------------------------------- states

#[tokio::test]
async fn each_kind_has_its_own_state_and_changes_agree_with_it() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let s0 = store.state(a.id).await.unwrap();
    let d = deliver_to(&store, DeliveryTarget::inbox(a.id), message("one", "")).await;
    let email = store.kind_state(a.id, ObjectKind::Email).await.unwrap();
    assert_eq!(email, d.modseq);
    let set = store
        .set_objects(
            a.id,
            ObjectKind::VacationResponse,
            vec![ObjectOp::Create("{}".into())],
        )
        .await
        .unwrap();
    assert!(set.state > email);
    assert_eq!(
        store.kind_state(a.id, ObjectKind::Email).await.unwrap(),
        email,
        "other kinds leave Email's state alone"
    );
    let ch = store
        .changes(a.id, ObjectKind::Email, s0, 100)
        .await
        .unwrap();
    assert_eq!(ch.created, [d.id]);
    assert_eq!(
        ch.new_state, email,
        "newState is the kind's state, as /get reports it"
    );
    let ch = store
        .changes(a.id, ObjectKind::Email, email, 100)
        .await
        .unwrap();
    assert!(ch.created.is_empty() && ch.updated.is_empty() && ch.destroyed.is_empty());
    assert_eq!(ch.new_state, email);
    // A state past the account's is still refused.
    let past = store.state(a.id).await.unwrap() + 1;
    assert!(matches!(
        store.changes(a.id, ObjectKind::Email, past, 100).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.kind_state(999, ObjectKind::Email).await,
        Err(StoreError::NotFound(_))
    ));
}

/// RFC 8621 §2: a mailbox's counts are properties, so its state moves with every
/// message change and `/changes` reports the mailboxes whose messages changed.
#[tokio::test]
async fn mailbox_state_follows_the_counts() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let inbox = mailbox(&store, a.id, Role::Inbox).await;
    let archive = mailbox(&store, a.id, Role::Archive).await;
    let s0 = store.kind_state(a.id, ObjectKind::Mailbox).await.unwrap();
    let d = deliver_to(&store, DeliveryTarget::inbox(a.id), message("one", "")).await;
    let s1 = store.kind_state(a.id, ObjectKind::Mailbox).await.unwrap();
    assert_eq!(s1, d.modseq);
    let ch = store
        .changes(a.id, ObjectKind::Mailbox, s0, 100)
        .await
        .unwrap();
    assert_eq!((ch.updated, ch.new_state), (vec![inbox.id], s1));

    let s2 = store
        .update_flags(a.id, &[d.id], FlagChange::Add(Flags::SEEN, vec![]))
        .await
        .unwrap();
    let ch = store
        .changes(a.id, ObjectKind::Mailbox, s1, 100)
        .await
        .unwrap();
    assert_eq!((ch.updated, ch.new_state), (vec![inbox.id], s2));

    store
        .move_messages(a.id, &[d.id], archive.id)
        .await
        .unwrap();
    let ch = store
        .changes(a.id, ObjectKind::Mailbox, s2, 100)
        .await
        .unwrap();
    assert_eq!(ch.updated, [inbox.id, archive.id], "both ends of a move");

    let s3 = ch.new_state;
    let made = store
        .create_mailbox(a.id, None, "Lists", None)
        .await
        .unwrap();
    deliver_to(
        &store,
        DeliveryTarget {
            mailbox: MailboxTarget::Id(made.id),
            ..DeliveryTarget::inbox(a.id)
        },
        message("list mail", ""),
    )
    .await;
    let ch = store
        .changes(a.id, ObjectKind::Mailbox, s3, 100)
        .await
        .unwrap();
    assert_eq!(
        (ch.created, ch.updated),
        (vec![made.id], vec![]),
        "created stays created"
    );
    let s4 = ch.new_state;
    store.delete_mailbox(a.id, made.id).await.unwrap();
    let ch = store
        .changes(a.id, ObjectKind::Mailbox, s4, 100)
        .await
        .unwrap();
    assert_eq!(
        (ch.updated, ch.destroyed),
        (vec![], vec![made.id]),
        "its messages went with it"
    );
    assert_eq!(
        store.kind_state(a.id, ObjectKind::Mailbox).await.unwrap(),
        store.kind_state(a.id, ObjectKind::Email).await.unwrap()
    );
}

#[tokio::test]
async fn state_reads_use_the_kind_index() {
    let (_d, store) = open();
    account(&store, "alice@example.com").await;
    let p = plan(
        &store,
        "SELECT MAX(modseq) FROM changes WHERE account_id = 1 AND kind = 3",
    );
    assert!(p.contains("changes_by_kind"), "{p}");
    let p = plan(
        &store,
        "SELECT b.id, COUNT(DISTINCT m.thread_id) FROM mailboxes b
         LEFT JOIN messages m ON m.mailbox_id = b.id WHERE b.account_id = 1 GROUP BY b.id",
    );
    // Through messages_by_uid or messages_summary: both start with mailbox_id.
    assert!(
        p.contains("SEARCH m USING COVERING INDEX messages_") && p.contains("(mailbox_id=?)"),
        "counts read each mailbox once: {p}"
    );
    for sql in [
        "SELECT modseq, kind, op, object_id, mailbox_id FROM changes WHERE account_id = 1 AND kind = 3 AND modseq > 0 AND op != 4 ORDER BY modseq, seq",
        "SELECT modseq, kind, op, object_id, mailbox_id FROM changes INDEXED BY changes_by_account WHERE account_id = 1 AND kind IN (1, 2) AND modseq > 0 ORDER BY modseq, seq",
        "SELECT id, data FROM objects WHERE account_id = 1 AND kind = 3 ORDER BY id",
    ] {
        let p = plan(&store, sql);
        assert!(!p.contains("TEMP B-TREE"), "{sql}: {p}");
    }
}

// ---------------------------------------------------------------- messages for JMAP

#[tokio::test]
async fn threads_list_their_messages_by_date() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let at = |raw: Vec<u8>, date: i64| {
        let mut d = delivery(raw, vec![DeliveryTarget::inbox(a.id)]);
        d.internal_date = date;
        let store = store.clone();
        async move { store.deliver(d).await.unwrap()[0].id }
    };
    let root = at(message("start", "Message-ID: <root@x>\r\n"), 200).await;
    let late = at(
        message(
            "Re: start",
            "Message-ID: <r2@x>\r\nReferences: <root@x>\r\n",
        ),
        300,
    )
    .await;
    let early = at(
        message(
            "Re: start",
            "Message-ID: <r1@x>\r\nReferences: <root@x>\r\n",
        ),
        100,
    )
    .await;
    let other = at(message("other", "Message-ID: <o@x>\r\n"), 50).await;
    let thread = |id| {
        let store = store.clone();
        async move {
            store
                .message(a.id, id)
                .await
                .unwrap()
                .unwrap()
                .summary
                .thread_id
        }
    };
    let (t, t_other) = (thread(root).await, thread(other).await);
    let got = store
        .thread_messages(a.id, &[t_other, 12345, t, t_other])
        .await
        .unwrap();
    assert_eq!(
        got,
        [(t_other, vec![other]), (t, vec![early, root, late])],
        "receivedAt order; unknown threads left out; each thread once"
    );
    let b = account(&store, "bob@example.com").await;
    assert!(store.thread_messages(b.id, &[t]).await.unwrap().is_empty());
}

#[tokio::test]
async fn account_light_records_cover_every_mailbox() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let archive = mailbox(&store, a.id, Role::Archive).await;
    let first = deliver_to(&store, DeliveryTarget::inbox(a.id), message("one", "")).await;
    let second = deliver_to(
        &store,
        DeliveryTarget {
            mailbox: MailboxTarget::Id(archive.id),
            ..DeliveryTarget::inbox(a.id)
        },
        message("two", ""),
    )
    .await;
    let b = account(&store, "bob@example.com").await;
    deliver_to(&store, DeliveryTarget::inbox(b.id), message("bob's", "")).await;
    let all = store.account_light_records(a.id).await.unwrap();
    assert_eq!(
        all.iter()
            .map(|r| (r.summary.id, r.summary.mailbox_id))
            .collect::<Vec<_>>(),
        [(first.id, first.mailbox), (second.id, archive.id)]
    );
    assert_eq!(all[1].meta.subject.as_deref(), Some("two"));
    assert!(all[1].meta.preview.is_empty(), "light: no body");
    // A row whose light metadata was never filled falls back to the full one.
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    conn.execute(
        "UPDATE messages SET light = '' WHERE id = ?1",
        [second.id as i64],
    )
    .unwrap();
    let all = store.account_light_records(a.id).await.unwrap();
    assert_eq!(all[1].meta.subject.as_deref(), Some("two"));
    assert!(all[1].meta.preview.is_empty(), "derived light metadata");
}

#[tokio::test]
async fn mailbox_thread_counts_follow_rfc_8621() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let inbox = mailbox(&store, a.id, Role::Inbox).await;
    let drafts = mailbox(&store, a.id, Role::Drafts).await;
    let to = |flags, raw| {
        let store = store.clone();
        let target = DeliveryTarget {
            flags,
            ..DeliveryTarget::inbox(a.id)
        };
        async move { deliver_to(&store, target, raw).await }
    };
    // Thread 1: two messages, one unread. Thread 2: read. Thread 3: a draft.
    to(Flags::SEEN, message("t1", "Message-ID: <t1@x>\r\n")).await;
    to(
        Flags::NONE,
        message("Re: t1", "Message-ID: <t1r@x>\r\nReferences: <t1@x>\r\n"),
    )
    .await;
    to(Flags::SEEN, message("t2", "Message-ID: <t2@x>\r\n")).await;
    to(Flags::DRAFT, message("t3", "Message-ID: <t3@x>\r\n")).await;
    let counts = store.mailbox_thread_counts(a.id).await.unwrap();
    assert_eq!(counts.len(), 6, "every mailbox, the empty ones too");
    let of = |id| *counts.iter().find(|c| c.mailbox_id == id).unwrap();
    assert_eq!(
        of(inbox.id),
        MailboxCounts {
            mailbox_id: inbox.id,
            total_threads: 3,
            unread_threads: 1,
            unread_emails: 1,
        },
        "a draft is not unread"
    );
    assert_eq!(
        mailbox(&store, a.id, Role::Inbox).await.unseen,
        2,
        "while IMAP's unseen counts the draft"
    );
    assert_eq!(
        of(drafts.id),
        MailboxCounts {
            mailbox_id: drafts.id,
            ..MailboxCounts::default()
        }
    );
}

/// JMAP Email/set create and Email/import file a message with keywords into the
/// mailboxes the client names.
#[tokio::test]
async fn delivering_into_a_named_mailbox_with_keywords() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let drafts = mailbox(&store, a.id, Role::Drafts).await;
    let root = deliver_to(
        &store,
        DeliveryTarget::inbox(a.id),
        message("plan", "Message-ID: <plan@x>\r\n"),
    )
    .await;
    let d = deliver_to(
        &store,
        DeliveryTarget {
            account: a.id,
            mailbox: MailboxTarget::Id(drafts.id),
            flags: Flags::DRAFT | Flags::SEEN,
            keywords: vec!["$Forwarded".into(), "project".into()],
        },
        message(
            "Re: plan",
            "Message-ID: <reply@x>\r\nIn-Reply-To: <plan@x>\r\n",
        ),
    )
    .await;
    assert_eq!(d.mailbox, drafts.id);
    let listed = store.messages(a.id, drafts.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, d.id);
    assert_eq!(listed[0].flags, Flags::DRAFT | Flags::SEEN);
    assert_eq!(listed[0].keywords, ["$Forwarded", "project"]);
    let root_thread = store
        .message(a.id, root.id)
        .await
        .unwrap()
        .unwrap()
        .summary
        .thread_id;
    assert_eq!(listed[0].thread_id, root_thread, "threaded by In-Reply-To");
    assert_eq!(
        mailbox(&store, a.id, Role::Drafts).await.keywords,
        ["$Forwarded", "project"]
    );
    assert!(matches!(
        store
            .deliver(delivery(
                message("x", ""),
                vec![DeliveryTarget {
                    mailbox: MailboxTarget::Id(9999),
                    ..DeliveryTarget::inbox(a.id)
                }],
            ))
            .await,
        Err(StoreError::NotFound(_))
    ));
}

// ---------------------------------------------------------------- tokens

#[tokio::test]
async fn bearer_tokens_by_hash() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let b = account(&store, "bob@example.com").await;
    let t = store
        .create_token(a.id, vec![1, 2, 3], "laptop")
        .await
        .unwrap();
    assert_eq!(
        (t.account_id, t.name.as_str(), t.last_used),
        (a.id, "laptop", None)
    );
    assert!(matches!(
        store.create_token(b.id, vec![1, 2, 3], "clash").await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.create_token(999, vec![4], "nobody").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.create_token(a.id, vec![], "empty").await,
        Err(StoreError::Invalid(_))
    ));
    let tb = store.create_token(b.id, vec![9], "phone").await.unwrap();
    assert_eq!(
        store.token_account(&[1, 2, 3]).await.unwrap(),
        Some(t.clone())
    );
    assert_eq!(store.token_account(&[1, 2]).await.unwrap(), None);

    // Uses are recorded at most once per TOKEN_TOUCH_INTERVAL.
    store.touch_token(t.id, 1_000_000).await.unwrap();
    store
        .touch_token(t.id, 1_000_000 + TOKEN_TOUCH_INTERVAL - 1)
        .await
        .unwrap();
    let seen = store.token_account(&[1, 2, 3]).await.unwrap().unwrap();
    assert_eq!(seen.last_used, Some(1_000_000));
    store
        .touch_token(t.id, 1_000_000 + TOKEN_TOUCH_INTERVAL)
        .await
        .unwrap();
    let seen = store.token_account(&[1, 2, 3]).await.unwrap().unwrap();
    assert_eq!(seen.last_used, Some(1_000_000 + TOKEN_TOUCH_INTERVAL));
    store.touch_token(777, 1).await.unwrap();

    assert_eq!(
        store
            .tokens(None)
            .await
            .unwrap()
            .iter()
            .map(|t| t.id)
            .collect::<Vec<_>>(),
        [t.id, tb.id]
    );
    assert_eq!(store.tokens(Some(b.id)).await.unwrap(), [tb]);
    store.delete_token(t.id).await.unwrap();
    assert!(matches!(
        store.delete_token(t.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.token_account(&[1, 2, 3]).await.unwrap(), None);
}

// ---------------------------------------------------------------- vacation

#[tokio::test]
async fn vacation_replies_once_per_sender_per_period() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let b = account(&store, "bob@example.com").await;
    let carol = addr("carol@remote.example");
    let day = 86_400;
    let t0 = 1_000_000;
    assert!(
        store
            .vacation_should_reply(a.id, &carol, t0, day)
            .await
            .unwrap()
    );
    assert!(
        !store
            .vacation_should_reply(a.id, &addr("Carol@Remote.Example"), t0 + 10, day)
            .await
            .unwrap(),
        "addresses compare by their key"
    );
    assert!(
        store
            .vacation_should_reply(b.id, &carol, t0 + 10, day)
            .await
            .unwrap(),
        "per account"
    );
    assert!(
        store
            .vacation_should_reply(a.id, &addr("dave@remote.example"), t0 + 10, day)
            .await
            .unwrap()
    );
    assert!(
        !store
            .vacation_should_reply(a.id, &carol, t0 + day - 1, day)
            .await
            .unwrap()
    );
    assert!(
        store
            .vacation_should_reply(a.id, &carol, t0 + day, day)
            .await
            .unwrap(),
        "a period later"
    );
    assert!(
        !store
            .vacation_should_reply(a.id, &carol, t0 + day + 5, day)
            .await
            .unwrap(),
        "the new reply restarts the period"
    );
    store.vacation_reset(a.id).await.unwrap();
    assert!(
        store
            .vacation_should_reply(a.id, &carol, t0 + day + 6, day)
            .await
            .unwrap()
    );
    assert!(
        !store
            .vacation_should_reply(b.id, &carol, t0 + 20, day)
            .await
            .unwrap(),
        "the reset was alice's only"
    );
}

// ---------------------------------------------------------------- accounts

#[tokio::test]
async fn deleting_an_account_removes_its_jmap_data() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let b = account(&store, "bob@example.com").await;
    for id in [a.id, b.id] {
        store
            .upload(id, b"up".to_vec(), "text/plain")
            .await
            .unwrap();
        store
            .set_objects(
                id,
                ObjectKind::Identity,
                vec![ObjectOp::Create("{}".into())],
            )
            .await
            .unwrap();
        store.create_token(id, vec![id as u8], "t").await.unwrap();
        store
            .vacation_should_reply(id, &addr("x@remote.example"), 1, 10)
            .await
            .unwrap();
    }
    store
        .delete_account(&addr("alice@example.com"))
        .await
        .unwrap();
    for table in ["uploads", "objects", "tokens", "vacation_sent"] {
        assert_eq!(
            count(&store, &format!("SELECT COUNT(*) FROM {table}")),
            1,
            "{table}: only bob's row is left"
        );
    }
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM blobs"),
        1,
        "alice's upload is freed"
    );
    assert_eq!(store.tokens(None).await.unwrap()[0].account_id, b.id);
}

// ---------------------------------------------------------------- schema

#[tokio::test]
async fn schema_4_databases_get_the_jmap_tables() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let store = SqliteStore::open(dir.path()).unwrap();
        let a = account(&store, "alice@example.com").await;
        deliver_to(&store, DeliveryTarget::inbox(a.id), message("old", "")).await;
        a.id
    };
    let conn = rusqlite::Connection::open(dir.path().join("store.sqlite3")).unwrap();
    conn.execute_batch(
        "DROP TABLE uploads; DROP TABLE objects; DROP TABLE tokens; DROP TABLE vacation_sent;
         DROP INDEX changes_by_kind; PRAGMA user_version = 4;",
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(
        count(&store, "PRAGMA user_version"),
        6,
        "upgraded to schema 6"
    );
    assert!(
        plan(
            &store,
            "SELECT MAX(modseq) FROM changes WHERE account_id = 1 AND kind = 1"
        )
        .contains("changes_by_kind")
    );
    let email = store.kind_state(id, ObjectKind::Email).await.unwrap();
    assert_eq!(email, store.state(id).await.unwrap(), "the old log counts");
    let set = store
        .set_objects(
            id,
            ObjectKind::Identity,
            vec![ObjectOp::Create("{}".into())],
        )
        .await
        .unwrap();
    assert!(set.results[0].is_ok());
    store.upload(id, b"x".to_vec(), "text/plain").await.unwrap();
    store.create_token(id, vec![1], "t").await.unwrap();
}
