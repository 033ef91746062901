//! Thread/get, Thread/changes (RFC 8621 §3) and Blob/copy (RFC 8620 §6.3)
//! through the request loop, against a real store.

#![allow(clippy::unwrap_used)]

mod common;

use common::World;
use pochta_addr::Address;
use pochta_jmap::ids;
use pochta_store::{FlagChange, Flags, MessageSummary, Role, Store};
use serde_json::{Value, json};

fn raw(id: &str, parent: Option<&str>) -> String {
    let refs = parent
        .map(|p| format!("In-Reply-To: <{p}@remote.example>\nReferences: <{p}@remote.example>\n"))
        .unwrap_or_default();
    format!(
        "From: bob@remote.example\nTo: alice@example.com\nSubject: talk\nMessage-ID: <{id}@remote.example>\n{refs}\nbody of {id}\n"
    )
}

async fn inbox(w: &World) -> Vec<MessageSummary> {
    let id = w
        .store
        .mailboxes(w.alice.id)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.role == Some(Role::Inbox))
        .unwrap()
        .id;
    w.store.messages(w.alice.id, id).await.unwrap()
}

async fn thread_get(w: &World, ids: Value) -> Value {
    w.call(
        "Thread/get",
        json!({"accountId": w.account_id(), "ids": ids}),
    )
    .await
}

async fn changes(w: &World, since: &str, max: Option<u64>) -> Value {
    w.call(
        "Thread/changes",
        json!({"accountId": w.account_id(), "sinceState": since, "maxChanges": max}),
    )
    .await
}

async fn state(w: &World) -> String {
    thread_get(w, json!([])).await["state"]
        .as_str()
        .unwrap()
        .to_string()
}

fn tid(t: u64) -> String {
    ids::thread(t).to_string()
}

#[tokio::test]
async fn a_conversation_is_one_thread() {
    let w = World::new().await;
    w.deliver(&raw("one", None)).await;
    w.deliver(&raw("two", Some("one"))).await;
    // The third names only the second: still the same conversation.
    w.deliver(&raw("three", Some("two"))).await;
    w.deliver(&raw("other", None)).await;
    let msgs = inbox(&w).await;
    assert_eq!(msgs.len(), 4);
    let thread = msgs[0].thread_id;
    assert!(msgs[..3].iter().all(|m| m.thread_id == thread));
    assert_ne!(msgs[3].thread_id, thread);

    let r = thread_get(&w, json!([tid(thread), tid(msgs[3].thread_id)])).await;
    assert_eq!(r["accountId"], w.account_id());
    let email_state = w
        .store
        .kind_state(w.alice.id, pochta_store::ObjectKind::Email)
        .await
        .unwrap();
    assert_eq!(r["state"], email_state.to_string());
    let emails: Vec<String> = msgs[..3]
        .iter()
        .map(|m| ids::email(m.id).to_string())
        .collect();
    assert_eq!(
        r["list"],
        json!([
            {"id": tid(thread), "emailIds": emails},
            {"id": tid(msgs[3].thread_id), "emailIds": [ids::email(msgs[3].id).as_str()]}
        ])
    );
    assert_eq!(r["notFound"], json!([]));

    // Unknown, malformed and foreign ids; properties.
    let bob = w
        .store
        .account(&Address::parse("bob@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    w.deliver_to("bob@example.com", &raw("bobs", None)).await;
    let bob_box = w.store.mailboxes(bob.id).await.unwrap()[0].id;
    let bobs = w.store.messages(bob.id, bob_box).await.unwrap();
    let r = w
        .call(
            "Thread/get",
            json!({
                "accountId": w.account_id(),
                "ids": [tid(thread), "T999999", "Mnope", tid(bobs[0].thread_id)],
                "properties": ["id"]
            }),
        )
        .await;
    assert_eq!(r["list"], json!([{"id": tid(thread)}]));
    assert_eq!(
        r["notFound"],
        json!(["T999999", "Mnope", tid(bobs[0].thread_id)])
    );

    // ids: null lists every thread of the account.
    let r = thread_get(&w, Value::Null).await;
    let mut listed: Vec<String> = r["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    let mut want = vec![tid(thread), tid(msgs[3].thread_id)];
    want.sort();
    assert_eq!(listed, want);

    let e = w
        .call_error(
            "Thread/get",
            json!({"accountId": w.account_id(), "properties": ["subject"]}),
        )
        .await;
    assert_eq!(e, "invalidArguments");
    let e = w
        .call_error("Thread/get", json!({"accountId": "A99"}))
        .await;
    assert_eq!(e, "accountNotFound");
}

#[tokio::test]
async fn changes_report_created_updated_destroyed_threads() {
    let w = World::new().await;
    w.deliver(&raw("a", None)).await;
    let s0 = state(&w).await;
    let c = changes(&w, &s0, None).await;
    assert_eq!(c["oldState"], s0);
    assert_eq!(c["newState"], s0);
    assert_eq!(
        (
            c["created"].clone(),
            c["updated"].clone(),
            c["destroyed"].clone()
        ),
        (json!([]), json!([]), json!([]))
    );

    // A reply joins thread A; a new message starts thread B.
    w.deliver(&raw("a2", Some("a"))).await;
    w.deliver(&raw("b", None)).await;
    let msgs = inbox(&w).await;
    let (ta, tb) = (msgs[0].thread_id, msgs[2].thread_id);
    let c = changes(&w, &s0, None).await;
    assert_eq!(c["updated"], json!([tid(ta)]));
    assert_eq!(c["created"], json!([tid(tb)]));
    assert_eq!(c["destroyed"], json!([]));
    assert_eq!(c["hasMoreChanges"], false);
    let s1 = c["newState"].as_str().unwrap().to_string();
    assert_eq!(s1, state(&w).await);

    // Flags are not Thread properties: the state moves, nothing is reported.
    w.store
        .update_flags(
            w.alice.id,
            &[msgs[0].id],
            FlagChange::Add(Flags::SEEN, vec![]),
        )
        .await
        .unwrap();
    let c = changes(&w, &s1, None).await;
    assert_eq!(c["updated"], json!([]));
    assert_ne!(c["newState"], s1);
    assert_eq!(c["newState"], state(&w).await);
    let s2 = c["newState"].as_str().unwrap().to_string();

    // Removing one email of A updates it; removing all of B destroys it.
    w.store
        .expunge(w.alice.id, &[msgs[1].id, msgs[2].id])
        .await
        .unwrap();
    let c = changes(&w, &s2, None).await;
    assert_eq!(c["updated"], json!([tid(ta)]));
    assert_eq!(c["destroyed"], json!([tid(tb)]));
    assert_eq!(c["created"], json!([]));
    // Since s0, B was born and is gone: not reported.
    let c = changes(&w, &s0, None).await;
    assert_eq!(c["updated"], json!([tid(ta)]));
    assert_eq!(c["created"], json!([]));
    assert_eq!(c["destroyed"], json!([]));
    let s3 = state(&w).await;

    // maxChanges 1 over two changes: one thread at a time, and the counts
    // stay right although later changes touch the same threads.
    w.deliver(&raw("c", None)).await;
    w.deliver(&raw("d", None)).await;
    w.deliver(&raw("c2", Some("c"))).await;
    let msgs = inbox(&w).await;
    let (tc, td) = (msgs[1].thread_id, msgs[2].thread_id);
    let c = changes(&w, &s3, Some(1)).await;
    assert_eq!(c["created"], json!([tid(tc)]));
    assert_eq!(c["hasMoreChanges"], true);
    let mid = c["newState"].as_str().unwrap().to_string();
    let c = changes(&w, &mid, Some(1)).await;
    assert_eq!(c["created"], json!([tid(td)]));
    assert_eq!(c["hasMoreChanges"], true);
    let mid = c["newState"].as_str().unwrap().to_string();
    let c = changes(&w, &mid, Some(1)).await;
    assert_eq!(c["updated"], json!([tid(tc)]));
    assert_eq!(c["created"], json!([]));
    assert_eq!(c["hasMoreChanges"], false);
    assert_eq!(c["newState"], state(&w).await);

    // One change touching two threads does not fit in maxChanges 1.
    let s4 = state(&w).await;
    w.store
        .expunge(w.alice.id, &[msgs[1].id, msgs[2].id])
        .await
        .unwrap();
    let e = w
        .call_error(
            "Thread/changes",
            json!({"accountId": w.account_id(), "sinceState": s4, "maxChanges": 1}),
        )
        .await;
    assert_eq!(e, "cannotCalculateChanges");
    let c = changes(&w, &s4, Some(2)).await;
    assert_eq!(c["updated"], json!([tid(tc)]));
    assert_eq!(c["destroyed"], json!([tid(td)]));

    for bad in ["x", "", "01", "123456789"] {
        let e = w
            .call_error(
                "Thread/changes",
                json!({"accountId": w.account_id(), "sinceState": bad}),
            )
            .await;
        assert_eq!(e, "cannotCalculateChanges", "{bad:?}");
    }
}

// ---------------------------------------------------------------- Blob/copy

#[tokio::test]
async fn blob_copy_within_the_account() {
    let w = World::new().await;
    w.deliver(&raw("m", None)).await;
    let blob = ids::blob(inbox(&w).await[0].blob_id).to_string();
    let upload = w
        .store
        .upload(w.alice.id, b"uploaded".to_vec(), "text/plain")
        .await
        .unwrap();
    let uploaded = ids::blob(upload.blob_id).to_string();
    let part = ids::part_blob(inbox(&w).await[0].blob_id, &[1]).to_string();
    let no_part = ids::part_blob(inbox(&w).await[0].blob_id, &[9]).to_string();
    let acc = w.account_id();
    let r = w
        .call(
            "Blob/copy",
            json!({
                "fromAccountId": acc, "accountId": acc,
                "blobIds": [blob, uploaded, part, "B999999", "nonsense", no_part, blob]
            }),
        )
        .await;
    assert_eq!(r["fromAccountId"], acc);
    assert_eq!(r["accountId"], acc);
    assert_eq!(
        r["copied"],
        json!({blob.clone(): blob, uploaded.clone(): uploaded, part.clone(): part})
    );
    let not = r["notCopied"].as_object().unwrap();
    assert_eq!(not.len(), 3, "{r}");
    for id in ["B999999", "nonsense", no_part.as_str()] {
        assert_eq!(not[id]["type"], "notFound", "{id}");
    }

    // Bob's blobs are not alice's.
    let bob = w
        .store
        .account(&Address::parse("bob@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    w.deliver_to("bob@example.com", &raw("bobs", None)).await;
    let bob_box = w.store.mailboxes(bob.id).await.unwrap()[0].id;
    let bobs_blob = ids::blob(w.store.messages(bob.id, bob_box).await.unwrap()[0].blob_id);
    let r = w
        .call(
            "Blob/copy",
            json!({"fromAccountId": acc, "accountId": acc, "blobIds": [bobs_blob]}),
        )
        .await;
    assert_eq!(r["copied"], Value::Null);
    assert_eq!(r["notCopied"][bobs_blob.as_str()]["type"], "notFound");

    // Other accounts.
    let bob_acc = ids::account(bob.id).to_string();
    let e = w
        .call_error(
            "Blob/copy",
            json!({"fromAccountId": bob_acc, "accountId": acc, "blobIds": [blob]}),
        )
        .await;
    assert_eq!(e, "fromAccountNotFound");
    let e = w
        .call_error(
            "Blob/copy",
            json!({"fromAccountId": acc, "accountId": bob_acc, "blobIds": [blob]}),
        )
        .await;
    assert_eq!(e, "accountNotFound");
    let e = w
        .call_error("Blob/copy", json!({"fromAccountId": acc, "accountId": acc}))
        .await;
    assert_eq!(e, "invalidArguments");
    let e = w
        .call_error(
            "Blob/copy",
            json!({"fromAccountId": acc, "accountId": acc, "blobIds": ["a b"]}),
        )
        .await;
    assert_eq!(e, "invalidArguments");
}
