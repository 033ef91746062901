//! Behaviour of the embedded store through the `Store` trait.

#![allow(clippy::unwrap_used)] // helpers assert by unwrapping, like the tests they serve

use std::sync::Arc;

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

async fn inbox(store: &SqliteStore, account: AccountId) -> Mailbox {
    store
        .mailboxes(account)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.role == Some(Role::Inbox))
        .unwrap()
}

#[tokio::test]
async fn new_accounts_get_the_special_use_mailboxes() {
    let (_d, store) = open();
    let a = account(&store, "Alice@Example.com").await;
    assert_eq!(a.address.key(), "alice@example.com");
    let boxes = store.mailboxes(a.id).await.unwrap();
    let names: Vec<(&str, Option<Role>)> =
        boxes.iter().map(|m| (m.name.as_str(), m.role)).collect();
    assert_eq!(
        names,
        [
            ("INBOX", Some(Role::Inbox)),
            ("Drafts", Some(Role::Drafts)),
            ("Sent", Some(Role::Sent)),
            ("Archive", Some(Role::Archive)),
            ("Junk", Some(Role::Junk)),
            ("Trash", Some(Role::Trash)),
        ]
    );
    let mut validities: Vec<u32> = boxes.iter().map(|m| m.uid_validity).collect();
    validities.sort();
    validities.dedup();
    assert_eq!(
        validities.len(),
        6,
        "every mailbox gets its own UIDVALIDITY"
    );
    assert!(boxes.iter().all(|m| m.uid_next == 1 && m.total == 0));
}

#[tokio::test]
async fn accounts_and_aliases_do_not_collide() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let dup = store
        .create_account(NewAccount {
            address: addr("ALICE@example.com"),
            password_hash: "x".into(),
            quota: None,
        })
        .await;
    assert!(matches!(dup, Err(StoreError::AlreadyExists(_))));
    store
        .add_alias(Alias {
            address: addr("info@example.com"),
            targets: vec![addr("alice@example.com")],
        })
        .await
        .unwrap();
    let clash = store
        .create_account(NewAccount {
            address: addr("info@example.com"),
            password_hash: "x".into(),
            quota: None,
        })
        .await;
    assert!(matches!(clash, Err(StoreError::AlreadyExists(_))));
    let clash = store
        .add_alias(Alias {
            address: addr("alice@example.com"),
            targets: vec![addr("bob@example.com")],
        })
        .await;
    assert!(matches!(clash, Err(StoreError::AlreadyExists(_))));
    assert_eq!(
        store.resolve(&addr("Info@Example.com")).await.unwrap(),
        Resolution::Accounts(vec![a.id])
    );
}

#[tokio::test]
async fn resolution_follows_aliases_details_and_survives_loops() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let b = account(&store, "bob@example.com").await;
    for (alias, targets) in [
        (
            "team@example.com",
            vec!["alice@example.com", "sales@example.com"],
        ),
        (
            "sales@example.com",
            vec!["bob@example.com", "team@example.com"],
        ),
        ("loop1@example.com", vec!["loop2@example.com"]),
        ("loop2@example.com", vec!["loop1@example.com"]),
    ] {
        store
            .add_alias(Alias {
                address: addr(alias),
                targets: targets.into_iter().map(addr).collect(),
            })
            .await
            .unwrap();
    }
    let team = store.resolve(&addr("team@example.com")).await.unwrap();
    assert_eq!(team, Resolution::Accounts(vec![a.id, b.id]));
    assert_eq!(
        store
            .resolve(&addr("alice+lists@example.com"))
            .await
            .unwrap(),
        Resolution::Accounts(vec![a.id])
    );
    assert_eq!(
        store.resolve(&addr("loop1@example.com")).await.unwrap(),
        Resolution::Unknown
    );
    assert_eq!(
        store.resolve(&addr("nobody@example.com")).await.unwrap(),
        Resolution::Unknown
    );
    let aliases = store.aliases().await.unwrap();
    assert_eq!(aliases.len(), 4);
    assert_eq!(aliases[3].address.key(), "team@example.com");
    assert_eq!(aliases[3].targets.len(), 2);
    store.delete_alias(&addr("team@example.com")).await.unwrap();
    assert!(matches!(
        store.delete_alias(&addr("team@example.com")).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn one_delivery_one_blob_many_mailboxes() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let b = account(&store, "bob@example.com").await;
    let raw = message("hello", "Message-ID: <m1@remote.example>\r\n");
    let out = store
        .deliver(delivery(
            raw.clone(),
            vec![DeliveryTarget::inbox(a.id), DeliveryTarget::inbox(b.id)],
        ))
        .await
        .unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!((out[0].uid, out[1].uid), (1, 1));
    let ma = store.message(a.id, out[0].id).await.unwrap().unwrap();
    let mb = store.message(b.id, out[1].id).await.unwrap().unwrap();
    assert_eq!(ma.summary.blob_id, mb.summary.blob_id, "stored once");
    assert_eq!(
        store.read_blob(a.id, ma.summary.blob_id).await.unwrap(),
        raw
    );
    assert_eq!(ma.meta.subject.as_deref(), Some("hello"));
    assert_eq!(ma.summary.size, raw.len() as u64);
    let ia = inbox(&store, a.id).await;
    assert_eq!(
        (ia.total, ia.unseen, ia.uid_next, ia.size),
        (1, 1, 2, raw.len() as u64)
    );
    assert_eq!(ia.highest_modseq, out[0].modseq);
}

#[tokio::test]
async fn uids_grow_and_ids_are_never_reused() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let mut last = None;
    for i in 0..3 {
        let out = store
            .deliver(delivery(
                message(&format!("m{i}"), ""),
                vec![DeliveryTarget::inbox(a.id)],
            ))
            .await
            .unwrap();
        last = Some(out[0]);
        assert_eq!(out[0].uid, i + 1);
    }
    let last = last.unwrap();
    store.expunge(a.id, &[last.id]).await.unwrap();
    let next = store
        .deliver(delivery(
            message("after", ""),
            vec![DeliveryTarget::inbox(a.id)],
        ))
        .await
        .unwrap()[0];
    assert_eq!(next.uid, 4, "the expunged UID 3 is not reused");
    assert!(next.id > last.id, "message ids are not reused either");
}

#[tokio::test]
async fn flags_counters_and_the_change_log_agree() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let s0 = store.state(a.id).await.unwrap();
    let d1 = store
        .deliver(delivery(
            message("one", ""),
            vec![DeliveryTarget::inbox(a.id)],
        ))
        .await
        .unwrap()[0];
    let d2 = store
        .deliver(delivery(
            message("two", ""),
            vec![DeliveryTarget::inbox(a.id)],
        ))
        .await
        .unwrap()[0];
    let s1 = store.state(a.id).await.unwrap();
    let ch = store
        .changes(a.id, ObjectKind::Email, s0, 100)
        .await
        .unwrap();
    assert_eq!(ch.created, vec![d1.id, d2.id]);
    assert!(ch.updated.is_empty() && ch.destroyed.is_empty());
    assert_eq!(ch.new_state, s1);

    let s2 = store
        .update_flags(
            a.id,
            &[d1.id],
            FlagChange::Add(Flags::SEEN | Flags::FLAGGED, vec!["$Forwarded".into()]),
        )
        .await
        .unwrap();
    let unchanged = store
        .update_flags(
            a.id,
            &[d1.id],
            FlagChange::Add(Flags::SEEN, vec!["$forwarded".into()]),
        )
        .await
        .unwrap();
    assert_eq!(s2, unchanged, "a no-op change does not advance the state");
    let m = store.message(a.id, d1.id).await.unwrap().unwrap().summary;
    assert!(m.flags.contains(Flags::SEEN) && m.flags.contains(Flags::FLAGGED));
    assert_eq!(m.keywords, vec!["$Forwarded".to_string()]);
    assert_eq!(m.modseq, s2);
    let ib = inbox(&store, a.id).await;
    assert_eq!((ib.total, ib.unseen), (2, 1));

    store
        .update_flags(a.id, &[d2.id], FlagChange::Set(Flags::DELETED, vec![]))
        .await
        .unwrap();
    assert_eq!(inbox(&store, a.id).await.deleted, 1);
    let s3 = store.expunge(a.id, &[d2.id]).await.unwrap();
    let ib = inbox(&store, a.id).await;
    assert_eq!((ib.total, ib.unseen, ib.deleted), (1, 0, 0));
    assert_eq!(ib.highest_modseq, s3);

    let ch = store
        .changes(a.id, ObjectKind::Email, s1, 100)
        .await
        .unwrap();
    assert_eq!(ch.updated, vec![d1.id]);
    assert_eq!(ch.destroyed, vec![d2.id]);
    let ch = store
        .changes(a.id, ObjectKind::Email, s0, 100)
        .await
        .unwrap();
    assert_eq!(
        ch.created,
        vec![d1.id],
        "created then destroyed is not reported"
    );
    let log = store.change_log(a.id, s1, 100).await.unwrap();
    let gone = log.iter().find(|c| c.op == ChangeOp::Destroyed).unwrap();
    assert_eq!((gone.mailbox_id, gone.uid), (Some(ib.id), Some(d2.uid)));
    let err = store.changes(a.id, ObjectKind::Email, s3 + 10, 100).await;
    assert!(matches!(err, Err(StoreError::Invalid(_))));
}

fn change_rows(store: &SqliteStore) -> i64 {
    rusqlite::Connection::open(store.path())
        .unwrap()
        .query_row("SELECT COUNT(*) FROM changes", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn pruning_the_change_log_keeps_states_and_refuses_older_ones() {
    let (dir, store) = open();
    let a = account(&store, "alice@example.com").await;
    let b = account(&store, "bob@example.com").await;
    let mut old = Vec::new();
    for i in 0..3 {
        let to = DeliveryTarget::inbox(if i == 0 { b.id } else { a.id });
        old.push(
            store
                .deliver(delivery(message("old", ""), vec![to]))
                .await
                .unwrap()[0],
        );
    }
    store
        .update_flags(a.id, &[old[1].id], FlagChange::Add(Flags::SEEN, vec![]))
        .await
        .unwrap();
    let (a_before, b_before) = (
        store.state(a.id).await.unwrap(),
        store.state(b.id).await.unwrap(),
    );
    let mailbox_state = store.kind_state(a.id, ObjectKind::Mailbox).await.unwrap();
    let logged = change_rows(&store);
    let mut cache = LightCache::load(&store, a.id, None).await.unwrap();

    // The first call only marks where the log ends: nothing is known to be old.
    assert_eq!(store.prune_change_log(0, 1_000).await.unwrap(), 0);
    let new = store
        .deliver(delivery(
            message("new", ""),
            vec![DeliveryTarget::inbox(a.id)],
        ))
        .await
        .unwrap()[0];
    // Everything logged before the mark at 1 000 is older than 2 000; the
    // delivery after it is not.
    let removed = store.prune_change_log(2_000, 3_000).await.unwrap();
    assert_eq!(removed as i64, logged, "every entry before the mark");
    assert_eq!(change_rows(&store), logged + 1 - removed as i64);
    assert_eq!(store.prune_change_log(2_000, 3_000).await.unwrap(), 0);

    for since in [0, a_before - 1] {
        let err = store.change_log(a.id, since, 100).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Pruned { since: s, floor } if s == since && floor == a_before),
            "{err}"
        );
        let err = store.changes(a.id, ObjectKind::Email, since, 100).await;
        assert!(matches!(err, Err(StoreError::Pruned { .. })), "{err:?}");
    }
    let log = store.change_log(a.id, a_before, 100).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].id, log[0].op), (new.id, ChangeOp::Created));
    let ch = store
        .changes(a.id, ObjectKind::Email, a_before, 100)
        .await
        .unwrap();
    assert_eq!(ch.created, vec![new.id]);
    assert_eq!(ch.new_state, store.state(a.id).await.unwrap());
    // A cache that knew the state before the floor reads everything again.
    cache.refresh(&store).await.unwrap();
    let ids: Vec<MessageId> = cache.snapshot().iter().map(|r| r.summary.id).collect();
    assert_eq!(ids, vec![old[1].id, old[2].id, new.id]);
    assert_eq!(cache.known(), store.state(a.id).await.unwrap());
    // Bob's floor is his own last change; his log is empty, and whole.
    assert!(
        store
            .change_log(b.id, b_before, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.change_log(b.id, b_before - 1, 100).await.is_err());

    // No state goes back, even for a kind whose entries are all gone.
    let identity = store.kind_state(a.id, ObjectKind::Identity).await.unwrap();
    assert_eq!(
        identity, a_before,
        "the floor stands in for the pruned entries"
    );
    assert!(store.kind_state(a.id, ObjectKind::Mailbox).await.unwrap() > mailbox_state);
    assert_eq!(
        store.kind_state(b.id, ObjectKind::Email).await.unwrap(),
        b_before
    );

    let report = SqliteStore::check(dir.path(), &CheckOptions::default()).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    // Marks older than what was pruned are gone; the log goes on growing.
    store
        .update_flags(a.id, &[new.id], FlagChange::Add(Flags::FLAGGED, vec![]))
        .await
        .unwrap();
    assert_eq!(
        store.change_log(a.id, a_before, 100).await.unwrap().len(),
        2
    );
}

#[tokio::test]
async fn mta_sts_policies_are_kept_until_they_expire() {
    let (dir, store) = open();
    let p = |id: &str, expires| StsPolicy {
        id: id.into(),
        text: format!("policy {id}"),
        expires,
    };
    assert_eq!(store.sts_policy("a.test", 100).await.unwrap(), None);
    store
        .put_sts_policy("A.test", p("1", 200), 100)
        .await
        .unwrap();
    store
        .put_sts_policy("b.test", p("1", 150), 100)
        .await
        .unwrap();
    assert_eq!(
        store.sts_policy("a.TEST", 100).await.unwrap(),
        Some(p("1", 200))
    );
    store
        .put_sts_policy("a.test", p("2", 300), 120)
        .await
        .unwrap();
    assert_eq!(
        store.sts_policy("a.test", 120).await.unwrap(),
        Some(p("2", 300))
    );
    assert_eq!(
        store.sts_policy("b.test", 150).await.unwrap(),
        None,
        "expired"
    );
    drop(store);
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(
        store.sts_policy("a.test", 299).await.unwrap(),
        Some(p("2", 300))
    );
    // Expired ones are dropped at the next keep.
    store
        .put_sts_policy("c.test", p("1", 400), 160)
        .await
        .unwrap();
    let rows: i64 = rusqlite::Connection::open(store.path())
        .unwrap()
        .query_row("SELECT COUNT(*) FROM mta_sts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 2);
}

#[tokio::test]
async fn changes_are_paged_at_change_boundaries() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let s0 = store.state(a.id).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            store
                .deliver(delivery(
                    message(&format!("p{i}"), ""),
                    vec![DeliveryTarget::inbox(a.id)],
                ))
                .await
                .unwrap()[0]
                .id,
        );
    }
    let page = store.changes(a.id, ObjectKind::Email, s0, 2).await.unwrap();
    assert_eq!(page.created, ids[..2]);
    assert!(page.has_more);
    let rest = store
        .changes(a.id, ObjectKind::Email, page.new_state, 10)
        .await
        .unwrap();
    assert_eq!(rest.created, ids[2..]);
    assert!(!rest.has_more);
}

#[tokio::test]
async fn blobs_are_private_to_their_accounts() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let b = account(&store, "bob@example.com").await;
    let d = store
        .deliver(delivery(
            message("secret", ""),
            vec![DeliveryTarget::inbox(a.id)],
        ))
        .await
        .unwrap()[0];
    let m = store.message(a.id, d.id).await.unwrap().unwrap();
    assert!(matches!(
        store.read_blob(b.id, m.summary.blob_id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store.message(b.id, d.id).await.unwrap().is_none());
    assert!(store.messages(b.id, d.mailbox).await.unwrap().is_empty());
}

#[tokio::test]
async fn expunging_the_last_copy_frees_the_blob() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let b = account(&store, "bob@example.com").await;
    let out = store
        .deliver(delivery(
            message("shared", ""),
            vec![DeliveryTarget::inbox(a.id), DeliveryTarget::inbox(b.id)],
        ))
        .await
        .unwrap();
    let blob = store
        .message(a.id, out[0].id)
        .await
        .unwrap()
        .unwrap()
        .summary
        .blob_id;
    store.expunge(a.id, &[out[0].id]).await.unwrap();
    assert!(
        store.read_blob(b.id, blob).await.is_ok(),
        "bob's copy still needs it"
    );
    store
        .delete_account(&addr("bob@example.com"))
        .await
        .unwrap();
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM blobs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn threads_follow_references() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let first = store
        .deliver(delivery(
            message("start", "Message-ID: <root@x>\r\n"),
            vec![DeliveryTarget::inbox(a.id)],
        ))
        .await
        .unwrap()[0];
    let reply = store
        .deliver(delivery(
            message(
                "Re: start",
                "Message-ID: <r1@x>\r\nIn-Reply-To: <root@x>\r\nReferences: <root@x>\r\n",
            ),
            vec![DeliveryTarget::inbox(a.id)],
        ))
        .await
        .unwrap()[0];
    let other = store
        .deliver(delivery(
            message("other", "Message-ID: <o@x>\r\n"),
            vec![DeliveryTarget::inbox(a.id)],
        ))
        .await
        .unwrap()[0];
    let t = |id| {
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
    assert_eq!(t(first.id).await, t(reply.id).await);
    assert_ne!(t(first.id).await, t(other.id).await);
}

#[tokio::test]
async fn subscribers_are_woken_after_commit() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let mut rx = store.subscribe(a.id);
    let d = store
        .deliver(delivery(
            message("ping", ""),
            vec![DeliveryTarget::inbox(a.id)],
        ))
        .await
        .unwrap()[0];
    rx.changed().await.unwrap();
    let seen = *rx.borrow();
    assert_eq!(seen, d.modseq);
    // What the subscriber is told is already readable.
    assert!(store.message(a.id, d.id).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deliveries_all_commit_with_unique_uids() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .deliver(delivery(
                    message(&format!("c{i}"), ""),
                    vec![DeliveryTarget::inbox(a.id)],
                ))
                .await
                .unwrap()[0]
                .uid
        }));
    }
    let mut uids = Vec::new();
    for t in tasks {
        uids.push(t.await.unwrap());
    }
    uids.sort();
    assert_eq!(uids, (1..=200).collect::<Vec<u32>>());
    let ib = inbox(&store, a.id).await;
    assert_eq!(ib.total, 200);
}

#[tokio::test]
async fn a_failing_job_does_not_undo_its_batch_neighbours() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let (ok, bad) = tokio::join!(
        store.deliver(delivery(
            message("good", ""),
            vec![DeliveryTarget::inbox(a.id)]
        )),
        store.deliver(delivery(
            message("bad", ""),
            vec![DeliveryTarget {
                mailbox: MailboxTarget::Id(999_999),
                ..DeliveryTarget::inbox(a.id)
            }]
        )),
    );
    assert!(ok.is_ok());
    assert!(matches!(bad, Err(StoreError::NotFound(_))));
    assert_eq!(inbox(&store, a.id).await.total, 1);
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    let blobs: i64 = conn
        .query_row("SELECT COUNT(*) FROM blobs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(blobs, 1, "the failed delivery's blob was rolled back");
}

#[tokio::test]
async fn data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let (id, raw) = {
        let store = SqliteStore::open(dir.path()).unwrap();
        let a = account(&store, "alice@example.com").await;
        let raw = message("persist", "");
        store
            .deliver(delivery(raw.clone(), vec![DeliveryTarget::inbox(a.id)]))
            .await
            .unwrap();
        (a.id, raw)
    };
    let store = SqliteStore::open(dir.path()).unwrap();
    let ib = inbox(&store, id).await;
    let msgs = store.messages(id, ib.id).await.unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(store.read_blob(id, msgs[0].blob_id).await.unwrap(), raw);
}

#[tokio::test]
async fn readers_are_not_blocked_by_an_open_write_transaction() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    // Another process (or a long delivery) holds the write lock...
    let other = rusqlite::Connection::open(store.path()).unwrap();
    other
        .execute_batch("BEGIN IMMEDIATE; UPDATE accounts SET quota = 1;")
        .unwrap();
    // ...and reads still answer from the last committed snapshot.
    let boxes = tokio::time::timeout(std::time::Duration::from_secs(5), store.mailboxes(a.id))
        .await
        .expect("read was blocked by the writer")
        .unwrap();
    assert_eq!(boxes.len(), 6);
    assert_eq!(
        store.account_by_id(a.id).await.unwrap().unwrap().quota,
        None
    );
    other.execute_batch("ROLLBACK").unwrap();
}

#[tokio::test]
async fn mailbox_names_are_checked() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    for bad in ["", "a/b", "tab\there"] {
        assert!(matches!(
            store.create_mailbox(a.id, None, bad, None).await,
            Err(StoreError::Invalid(_))
        ));
    }
    let p = store
        .create_mailbox(a.id, None, "Projects", None)
        .await
        .unwrap();
    let c = store
        .create_mailbox(a.id, Some(p.id), "pochta", None)
        .await
        .unwrap();
    assert_eq!(c.parent_id, Some(p.id));
    assert!(matches!(
        store.create_mailbox(a.id, None, "Projects", None).await,
        Err(StoreError::AlreadyExists(_))
    ));
    let ch = store
        .changes(a.id, ObjectKind::Mailbox, 0, 100)
        .await
        .unwrap();
    assert_eq!(ch.created.len(), 8);
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

/// Regression: the ownership check of read_blob used the thread index and walked
/// the whole account (40 ms per read at 100 000 messages).
#[tokio::test]
async fn read_blob_ownership_check_uses_the_blob_index() {
    let (_d, store) = open();
    account(&store, "alice@example.com").await;
    let p = plan(
        &store,
        "SELECT 1 FROM messages WHERE blob_id = 1 AND account_id = 1 LIMIT 1",
    );
    assert!(p.contains("messages_by_blob_account"), "{p}");
}

/// Regression: reading changes from an old state sorted the whole log tail.
#[tokio::test]
async fn change_log_reads_need_no_sort() {
    let (_d, store) = open();
    account(&store, "alice@example.com").await;
    for sql in [
        "SELECT modseq, op, object_id FROM changes WHERE account_id = 1 AND kind = 1 AND modseq > 0 ORDER BY modseq, seq",
        "SELECT modseq FROM changes WHERE account_id = 1 AND modseq > 0 ORDER BY modseq, seq LIMIT 10",
    ] {
        let p = plan(&store, sql);
        assert!(!p.contains("TEMP B-TREE"), "{sql}: {p}");
    }
}

#[tokio::test]
async fn mailboxes_rename_delete_and_subscribe() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let work = store
        .create_mailbox(a.id, None, "Work", None)
        .await
        .unwrap();
    let proj = store
        .create_mailbox(a.id, Some(work.id), "Projects", None)
        .await
        .unwrap();
    // No cycles.
    let err = store
        .rename_mailbox(a.id, work.id, Some(proj.id), "Work")
        .await;
    assert!(matches!(err, Err(StoreError::Invalid(_))), "{err:?}");
    let moved = store
        .rename_mailbox(a.id, proj.id, None, "Projects 2026")
        .await
        .unwrap();
    assert_eq!(
        (moved.parent_id, moved.name.as_str(), moved.uid_validity),
        (None, "Projects 2026", proj.uid_validity)
    );
    let clash = store.rename_mailbox(a.id, work.id, None, "INBOX").await;
    assert!(matches!(clash, Err(StoreError::AlreadyExists(_))));
    store
        .rename_mailbox(a.id, proj.id, Some(work.id), "Projects")
        .await
        .unwrap();
    assert!(matches!(
        store.delete_mailbox(a.id, work.id).await,
        Err(StoreError::HasChildren)
    ));
    store
        .deliver(delivery(
            message("in projects", ""),
            vec![DeliveryTarget {
                mailbox: MailboxTarget::Id(proj.id),
                ..DeliveryTarget::inbox(a.id)
            }],
        ))
        .await
        .unwrap();
    let s0 = store.state(a.id).await.unwrap();
    store.delete_mailbox(a.id, proj.id).await.unwrap();
    let ch = store
        .changes(a.id, ObjectKind::Email, s0, 10)
        .await
        .unwrap();
    assert_eq!(ch.destroyed.len(), 1, "its messages are gone");
    let ch = store
        .changes(a.id, ObjectKind::Mailbox, s0, 10)
        .await
        .unwrap();
    assert_eq!(ch.destroyed, vec![proj.id]);
    store.delete_mailbox(a.id, work.id).await.unwrap();
    let inbox_box = inbox(&store, a.id).await;
    store
        .set_subscribed(a.id, inbox_box.id, false)
        .await
        .unwrap();
    assert!(!inbox(&store, a.id).await.subscribed);
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    let blobs: i64 = conn
        .query_row("SELECT COUNT(*) FROM blobs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(blobs, 0, "deleting a mailbox frees its messages' blobs");
}

#[tokio::test]
async fn copy_shares_bytes_and_move_keeps_ids() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let archive = store
        .mailboxes(a.id)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.role == Some(Role::Archive))
        .unwrap();
    let d = store
        .deliver(delivery(
            message("copy me", ""),
            vec![DeliveryTarget {
                flags: Flags::SEEN,
                keywords: vec!["$Important".into()],
                ..DeliveryTarget::inbox(a.id)
            }],
        ))
        .await
        .unwrap()[0];
    let copies = store
        .copy_messages(a.id, &[d.id], archive.id)
        .await
        .unwrap();
    assert_eq!(copies.len(), 1);
    assert_ne!(copies[0].id, d.id, "a copy is a new message");
    assert_eq!(copies[0].uid, 1);
    let orig = store.message(a.id, d.id).await.unwrap().unwrap().summary;
    let copy = store
        .message(a.id, copies[0].id)
        .await
        .unwrap()
        .unwrap()
        .summary;
    assert_eq!(orig.blob_id, copy.blob_id, "the bytes are shared");
    assert_eq!(
        (copy.flags, copy.keywords.clone()),
        (Flags::SEEN, vec!["$Important".to_string()])
    );
    // Move the original into the archive too: same id, a new UID.
    let s0 = store.state(a.id).await.unwrap();
    let moved = store
        .move_messages(a.id, &[d.id], archive.id)
        .await
        .unwrap();
    assert_eq!(moved.len(), 1);
    assert_eq!(
        (moved[0].id, moved[0].old_uid, moved[0].new_uid),
        (d.id, d.uid, 2)
    );
    let ib = inbox(&store, a.id).await;
    let ar = store
        .mailboxes(a.id)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.id == archive.id)
        .unwrap();
    assert_eq!((ib.total, ar.total), (0, 2));
    // JMAP sees an update; IMAP on INBOX sees the message leave.
    let ch = store
        .changes(a.id, ObjectKind::Email, s0, 10)
        .await
        .unwrap();
    assert_eq!(
        (ch.updated.clone(), ch.destroyed.clone()),
        (vec![d.id], vec![])
    );
    let log = store.change_log(a.id, s0, 10).await.unwrap();
    assert!(log.iter().any(|c| c.op == ChangeOp::LeftMailbox
        && c.mailbox_id == Some(ib.id)
        && c.uid == Some(d.uid)));
    assert!(log.iter().any(|c| c.op == ChangeOp::Updated
        && c.mailbox_id == Some(archive.id)
        && c.uid == Some(2)));
    // Expunging one copy keeps the other's bytes.
    store.expunge(a.id, &[d.id]).await.unwrap();
    assert!(store.read_blob(a.id, copy.blob_id).await.is_ok());
}

#[tokio::test]
async fn conditional_stores_skip_modified_messages() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let one = store
        .deliver(delivery(
            message("one", ""),
            vec![DeliveryTarget::inbox(a.id)],
        ))
        .await
        .unwrap()[0];
    let two = store
        .deliver(delivery(
            message("two", ""),
            vec![DeliveryTarget::inbox(a.id)],
        ))
        .await
        .unwrap()[0];
    let before = store.state(a.id).await.unwrap();
    store
        .update_flags(a.id, &[two.id], FlagChange::Add(Flags::FLAGGED, vec![]))
        .await
        .unwrap();
    let u = store
        .store_flags(
            a.id,
            &[one.id, two.id],
            FlagChange::Add(Flags::SEEN, vec![]),
            Some(before),
        )
        .await
        .unwrap();
    assert_eq!(u.skipped, vec![two.id]);
    assert_eq!(u.changed.len(), 1);
    assert_eq!(
        (u.changed[0].id, u.changed[0].flags, u.changed[0].modseq),
        (one.id, Flags::SEEN, u.state)
    );
    let two_now = store.message(a.id, two.id).await.unwrap().unwrap().summary;
    assert!(!two_now.flags.contains(Flags::SEEN));
}

#[tokio::test]
async fn uid_ranges_light_records_and_uid_maps() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    for i in 1..=6 {
        store
            .deliver(delivery(
                message(
                    &format!("Re: topic {i}"),
                    &format!("Date: Tue, 1 Dec 2026 10:00:0{i} +0000\r\n"),
                ),
                vec![DeliveryTarget::inbox(a.id)],
            ))
            .await
            .unwrap();
    }
    let ib = inbox(&store, a.id).await;
    let got: Vec<u32> = store
        .messages_by_uid(a.id, ib.id, &[(5, 2), (3, 4), (6, 99)])
        .await
        .unwrap()
        .iter()
        .map(|m| m.uid)
        .collect();
    assert_eq!(
        got,
        vec![2, 3, 4, 5, 6],
        "overlapping ranges give each message once"
    );
    let map = store.uid_map(a.id, ib.id).await.unwrap();
    assert_eq!(
        map.iter().map(|(u, _)| *u).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6]
    );
    let light = store.light_records(a.id, ib.id).await.unwrap();
    assert_eq!(light.len(), 6);
    assert_eq!(light[2].meta.base_subject, "topic 3");
    assert!(light[2].meta.sent_at.is_some());
    assert!(
        light[2].meta.body.size == 0 && light[2].meta.preview.is_empty(),
        "light: no MIME tree"
    );
    let full = store.records(a.id, &[map[2].1, 999]).await.unwrap();
    assert_eq!(full.len(), 1);
    assert!(full[0].meta.body.size > 0);
}

/// `light_records_by_ids` gives what `records` gives with the metadata made
/// light, in id order, each id once, across several batches; missing ids and
/// other accounts' messages are skipped.
#[tokio::test]
async fn light_records_by_ids_match_the_full_records() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let b = account(&store, "bob@example.com").await;
    let mut ids = Vec::new();
    for i in 0..450 {
        let d = store
            .deliver(delivery(
                message(&format!("topic {i}"), ""),
                vec![DeliveryTarget::inbox(a.id)],
            ))
            .await
            .unwrap();
        ids.push(d[0].id);
    }
    let bobs = store
        .deliver(delivery(
            message("bob's", ""),
            vec![DeliveryTarget::inbox(b.id)],
        ))
        .await
        .unwrap()[0]
        .id;
    let mut asked: Vec<MessageId> = ids.iter().rev().copied().collect();
    asked.extend([ids[3], ids[3], bobs, 999_999]);
    let light = store.light_records_by_ids(a.id, &asked).await.unwrap();
    let full = store.records(a.id, &ids).await.unwrap();
    assert_eq!(light.len(), 450);
    for (l, f) in light.iter().zip(&full) {
        assert_eq!(l.summary, f.summary);
        assert_eq!(l.meta, f.meta.light());
    }
    assert!(
        store
            .light_records_by_ids(a.id, &[])
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn quotas_limit_delivery_and_copies() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let raw = message("sized", "");
    let size = raw.len() as u64;
    store
        .set_quota(&addr("alice@example.com"), Some(size * 2))
        .await
        .unwrap();
    let d = store
        .deliver(delivery(raw.clone(), vec![DeliveryTarget::inbox(a.id)]))
        .await
        .unwrap()[0];
    store
        .deliver(delivery(raw.clone(), vec![DeliveryTarget::inbox(a.id)]))
        .await
        .unwrap();
    let full = store
        .deliver(delivery(raw.clone(), vec![DeliveryTarget::inbox(a.id)]))
        .await;
    assert!(matches!(full, Err(StoreError::OverQuota)), "{full:?}");
    let ib = inbox(&store, a.id).await;
    assert!(matches!(
        store.copy_messages(a.id, &[d.id], ib.id).await,
        Err(StoreError::OverQuota)
    ));
    let q = store.quota(a.id).await.unwrap();
    assert_eq!((q.used, q.messages, q.limit), (size * 2, 2, Some(size * 2)));
    store
        .set_quota(&addr("alice@example.com"), None)
        .await
        .unwrap();
    assert!(
        store
            .deliver(delivery(raw, vec![DeliveryTarget::inbox(a.id)]))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn schema_1_databases_are_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let store = SqliteStore::open(dir.path()).unwrap();
        let a = account(&store, "alice@example.com").await;
        store
            .deliver(delivery(
                message("old one", ""),
                vec![DeliveryTarget::inbox(a.id)],
            ))
            .await
            .unwrap();
        a.id
    };
    // Make it look like a schema 1 store.
    let conn = rusqlite::Connection::open(dir.path().join("store.sqlite3")).unwrap();
    conn.execute_batch(
        "ALTER TABLE messages DROP COLUMN light; ALTER TABLE mailboxes DROP COLUMN keywords;
         UPDATE messages SET keywords = 'Old $label1'; PRAGMA user_version = 1;",
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(dir.path()).unwrap();
    let ib = inbox(&store, id).await;
    let light = store.light_records(id, ib.id).await.unwrap();
    assert_eq!(light[0].meta.subject.as_deref(), Some("old one"));
    assert_eq!(
        ib.keywords,
        ["Old", "$label1"],
        "schema 4 fills keywords in use"
    );
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 6, "upgraded through every version");
    let queue: i64 = conn
        .query_row("SELECT COUNT(*) FROM queue", [], |r| r.get(0))
        .unwrap();
    assert_eq!(queue, 0, "schema 3's queue tables exist");
    let jmap: i64 = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM uploads) + (SELECT COUNT(*) FROM objects)
                  + (SELECT COUNT(*) FROM tokens) + (SELECT COUNT(*) FROM vacation_sent)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(jmap, 0, "schema 5's JMAP tables exist");
}

#[tokio::test]
async fn schema_5_change_logs_are_kept_and_become_prunable() {
    let dir = tempfile::tempdir().unwrap();
    let (id, state) = {
        let store = SqliteStore::open(dir.path()).unwrap();
        let a = account(&store, "alice@example.com").await;
        for s in ["one", "two"] {
            store
                .deliver(delivery(message(s, ""), vec![DeliveryTarget::inbox(a.id)]))
                .await
                .unwrap();
        }
        (a.id, store.state(a.id).await.unwrap())
    };
    // Make it look like a schema 5 store: no floor, no marks, seq reusable.
    let conn = rusqlite::Connection::open(dir.path().join("store.sqlite3")).unwrap();
    conn.execute_batch(
        "ALTER TABLE accounts DROP COLUMN log_floor; DROP TABLE log_marks;
         CREATE TABLE old (seq INTEGER PRIMARY KEY, account_id INTEGER NOT NULL,
             modseq INTEGER NOT NULL, kind INTEGER NOT NULL, op INTEGER NOT NULL,
             object_id INTEGER NOT NULL, mailbox_id INTEGER, uid INTEGER, thread_id INTEGER);
         INSERT INTO old SELECT * FROM changes; DROP TABLE changes;
         ALTER TABLE old RENAME TO changes;
         CREATE INDEX changes_by_account ON changes (account_id, modseq);
         CREATE INDEX changes_by_kind ON changes (account_id, kind, modseq);
         PRAGMA user_version = 5;",
    )
    .unwrap();
    let before: Vec<(i64, i64)> = conn
        .prepare("SELECT seq, modseq FROM changes ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    drop(conn);
    let store = SqliteStore::open(dir.path()).unwrap();
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    let after: Vec<(i64, i64)> = conn
        .prepare("SELECT seq, modseq FROM changes ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(after, before, "the log is copied as it was");
    let sql: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'changes'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(sql.contains("AUTOINCREMENT"), "{sql}");
    assert!(
        plan(
            &store,
            "SELECT MAX(modseq) FROM changes WHERE account_id = 1 AND kind = 1"
        )
        .contains("changes_by_kind")
    );
    assert_eq!(
        store
            .changes(id, ObjectKind::Email, 0, 10)
            .await
            .unwrap()
            .created
            .len(),
        2
    );
    store.prune_change_log(-1, 0).await.unwrap();
    assert_eq!(
        store.prune_change_log(1, 1).await.unwrap() as usize,
        before.len()
    );
    assert!(store.change_log(id, state, 10).await.unwrap().is_empty());
    let report = SqliteStore::check(dir.path(), &CheckOptions::default()).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[tokio::test]
async fn targeted_queries_for_unseen_deleted_and_changed() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            store
                .deliver(delivery(
                    message(&format!("q{i}"), ""),
                    vec![DeliveryTarget::inbox(a.id)],
                ))
                .await
                .unwrap()[0]
                .id,
        );
    }
    let ib = inbox(&store, a.id).await;
    store
        .update_flags(a.id, &ids[..2], FlagChange::Add(Flags::SEEN, vec![]))
        .await
        .unwrap();
    assert_eq!(store.first_unseen(a.id, ib.id).await.unwrap(), Some(3));
    let before = store.state(a.id).await.unwrap();
    store
        .update_flags(
            a.id,
            &[ids[1], ids[3]],
            FlagChange::Add(Flags::DELETED, vec![]),
        )
        .await
        .unwrap();
    assert_eq!(
        store.deleted(a.id, ib.id).await.unwrap(),
        vec![(2, ids[1]), (4, ids[3])]
    );
    let changed: Vec<u32> = store
        .changed_since(a.id, ib.id, before)
        .await
        .unwrap()
        .iter()
        .map(|m| m.uid)
        .collect();
    assert_eq!(changed, vec![2, 4]);
    store
        .update_flags(a.id, &ids, FlagChange::Add(Flags::SEEN, vec![]))
        .await
        .unwrap();
    assert_eq!(store.first_unseen(a.id, ib.id).await.unwrap(), None);
}

fn outbound(rcpts: &[&str]) -> Outbound {
    Outbound {
        mail_from: Some(addr("alice@example.com")),
        recipients: rcpts
            .iter()
            .map(|r| OutboundRecipient {
                address: addr(r),
                orcpt: None,
                notify: 0,
            })
            .collect(),
        envid: Some("ENV1".into()),
        ret_full: true,
        account: None,
        expires_at: i64::MAX,
        smtputf8: false,
        eightbit: false,
    }
}

fn blob_count(store: &SqliteStore) -> i64 {
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    conn.query_row("SELECT COUNT(*) FROM blobs", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn local_and_remote_recipients_in_one_transaction() {
    let (_d, store) = open();
    let a = account(&store, "alice@example.com").await;
    let mut d = delivery(message("mixed", ""), vec![DeliveryTarget::inbox(a.id)]);
    d.outbound = Some(outbound(&[
        "x@remote.example",
        "y@remote.example",
        "z@other.example",
    ]));
    store.deliver(d).await.unwrap();
    assert_eq!(inbox(&store, a.id).await.total, 1);
    let q = store.queue_list().await.unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].recipients.len(), 3);
    assert_eq!(q[0].envid.as_deref(), Some("ENV1"));
    assert_eq!(
        blob_count(&store),
        1,
        "one copy of the bytes for the mailbox and the queue"
    );
    assert!(
        store
            .queue_blob(q[0].id)
            .await
            .unwrap()
            .ends_with(b"body of mixed\r\n")
    );
}

#[tokio::test]
async fn queueing_and_retrying_wake_the_queue_runner() {
    let (_d, store) = open();
    let mut rx = store.subscribe_queue();
    rx.borrow_and_update();
    let mut d = delivery(message("wake", ""), vec![]);
    d.outbound = Some(outbound(&["x@remote.example"]));
    store.deliver(d).await.unwrap();
    assert!(rx.has_changed().unwrap(), "enqueue notifies");
    rx.borrow_and_update();
    // Local-only deliveries do not.
    let a = account(&store, "alice@example.com").await;
    store
        .deliver(delivery(
            message("local", ""),
            vec![DeliveryTarget::inbox(a.id)],
        ))
        .await
        .unwrap();
    assert!(!rx.has_changed().unwrap());
    assert_eq!(store.queue_retry(None).await.unwrap(), 1);
    assert!(rx.has_changed().unwrap(), "retry notifies");
}

#[tokio::test]
async fn leases_outcomes_and_leaving_the_queue() {
    let (_d, store) = open();
    let mut d = delivery(message("out", ""), vec![]);
    d.outbound = Some(outbound(&["x@remote.example", "y@remote.example"]));
    store.deliver(d).await.unwrap();
    let now = 2_000_000_000;
    let due = store.queue_due(now, 10, 600).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].recipients.len(), 2);
    assert!(
        store.queue_due(now, 10, 600).await.unwrap().is_empty(),
        "leased: not handed out twice"
    );
    let (x, y) = (due[0].recipients[0].id, due[0].recipients[1].id);
    store
        .queue_record(
            vec![
                (
                    x,
                    AttemptOutcome::Delivered {
                        remote: Some("mx.remote.example".into()),
                        reply: "250 ok".into(),
                    },
                ),
                (
                    y,
                    AttemptOutcome::Deferred {
                        retry_at: now + 300,
                        error: "451 try later".into(),
                        remote: None,
                    },
                ),
            ],
            None,
        )
        .await
        .unwrap();
    let q = store.queue_get(due[0].id).await.unwrap().unwrap();
    let ystate = q.recipients.iter().find(|r| r.id == y).unwrap();
    assert_eq!(
        (ystate.state, ystate.attempts, ystate.next_attempt),
        (QueueState::Queued, 1, now + 300)
    );
    assert_eq!(store.queue_next_due().await.unwrap(), Some(now + 300));
    assert!(
        store
            .queue_due(now + 299, 10, 600)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.queue_retry(Some(due[0].id)).await.unwrap(), 1);
    let again = store.queue_due(now + 10_000_000, 10, 600).await.unwrap();
    assert_eq!(again[0].recipients.len(), 1);
    // The last recipient fails for good, with a bounce to Alice in the same transaction.
    let a = account(&store, "alice@example.com").await;
    let mut bounce = delivery(
        message("Undelivered Mail", ""),
        vec![DeliveryTarget::inbox(a.id)],
    );
    bounce.outbound = None;
    store
        .queue_record(
            vec![(
                y,
                AttemptOutcome::Failed {
                    error: "550 no such user".into(),
                    remote: None,
                },
            )],
            Some(bounce),
        )
        .await
        .unwrap();
    assert!(
        store.queue_list().await.unwrap().is_empty(),
        "all final: the message left the queue"
    );
    assert_eq!(
        inbox(&store, a.id).await.total,
        1,
        "the bounce was delivered"
    );
    assert_eq!(blob_count(&store), 1, "only the bounce's bytes remain");
}

#[tokio::test]
async fn leases_are_released_and_messages_deleted() {
    let (_d, store) = open();
    let mut d = delivery(message("out", ""), vec![]);
    d.outbound = Some(outbound(&["x@remote.example"]));
    store.deliver(d).await.unwrap();
    let due = store.queue_due(i64::MAX / 2, 10, 600).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(store.queue_release_leases().await.unwrap(), 1);
    assert_eq!(
        store.queue_due(i64::MAX / 2, 10, 600).await.unwrap().len(),
        1,
        "a crashed attempt is retried"
    );
    store.queue_delete(due[0].id).await.unwrap();
    assert!(store.queue_list().await.unwrap().is_empty());
    assert_eq!(blob_count(&store), 0);
    assert!(matches!(
        store.queue_delete(due[0].id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.queue_retry(Some(99)).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn new_stores_use_16_kib_pages() {
    let (_d, store) = open();
    account(&store, "alice@example.com").await;
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    let size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    assert_eq!(size, 16384);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}
