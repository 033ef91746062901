//! VacationResponse (RFC 8621 §8): the singleton's get and set, and the
//! automatic reply sent at delivery (RFC 3834) through the delivery hook.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::World;
use pochta_addr::{Address, Domain};
use pochta_delivery::{Incoming, LocalDelivery, Trace};
use pochta_jmap::vacation::VacationHook;
use pochta_store::{Role, Store};
use serde_json::json;

/// Local delivery over the world's store with the vacation hook, as `serve`
/// wires it.
fn hooked(w: &World) -> LocalDelivery {
    let store: Arc<dyn Store> = w.store.clone();
    LocalDelivery::new(
        store.clone(),
        "mx.example.com".into(),
        vec![Domain::parse("example.com").unwrap()],
    )
    .with_hook(VacationHook::new(store))
}

async fn deliver(d: &LocalDelivery, from: Option<&str>, to: &str, raw: &str) {
    let msg = Incoming::new(
        from.map(|f| Address::parse(f).unwrap()),
        vec![Address::parse(to).unwrap()],
        raw.replace('\n', "\r\n").into_bytes(),
        Trace::default(),
    );
    d.deliver(msg).await.unwrap();
}

/// The raw messages in `address`'s INBOX.
async fn inbox(w: &World, address: &str) -> Vec<String> {
    let account = w
        .store
        .account(&Address::parse(address).unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;
    let m = w.store.mailboxes(account).await.unwrap();
    let inbox = m.iter().find(|m| m.role == Some(Role::Inbox)).unwrap().id;
    let mut out = Vec::new();
    for s in w.store.messages(account, inbox).await.unwrap() {
        let raw = w.store.read_blob(account, s.blob_id).await.unwrap();
        out.push(String::from_utf8(raw).unwrap());
    }
    out
}

async fn enable(w: &World, extra: serde_json::Value) {
    let mut patch =
        json!({"isEnabled": true, "subject": null, "textBody": "I am away until Monday."});
    for (k, v) in extra.as_object().unwrap() {
        patch[k] = v.clone();
    }
    let r = w
        .call(
            "VacationResponse/set",
            json!({"accountId": w.account_id(), "update": {"singleton": patch}}),
        )
        .await;
    assert_eq!(r["updated"], json!({"singleton": null}), "{r}");
}

#[tokio::test]
async fn the_singleton_reads_and_changes() {
    let w = World::new().await;
    let r = w
        .call("VacationResponse/get", json!({"accountId": w.account_id()}))
        .await;
    assert_eq!(
        r["list"],
        json!([{"id": "singleton", "isEnabled": false, "fromDate": null, "toDate": null,
                "subject": null, "textBody": null, "htmlBody": null}])
    );
    let state = r["state"].clone();
    let r = w
        .call(
            "VacationResponse/set",
            json!({"accountId": w.account_id(), "ifInState": state, "update": {"singleton": {
                "isEnabled": true, "fromDate": "2030-01-01T00:00:00Z", "subject": "Away"}}}),
        )
        .await;
    assert_eq!(r["updated"], json!({"singleton": null}), "{r}");
    assert_ne!(r["newState"], state);
    let r = w
        .call(
            "VacationResponse/get",
            json!({"accountId": w.account_id(), "ids": ["singleton", "other"],
                   "properties": ["isEnabled", "fromDate", "subject"]}),
        )
        .await;
    assert_eq!(
        r["list"],
        json!([{"id": "singleton", "isEnabled": true, "fromDate": "2030-01-01T00:00:00Z",
                "subject": "Away"}])
    );
    assert_eq!(r["notFound"], json!(["other"]));

    let r = w
        .call(
            "VacationResponse/set",
            json!({"accountId": w.account_id(),
            "create": {"x": {"isEnabled": true}},
            "destroy": ["singleton"],
            "update": {
                "other": {"isEnabled": false},
                "singleton": {"toDate": "tomorrow", "isEnabled": "yes", "bogus": 1}
            }}),
        )
        .await;
    assert_eq!(r["notCreated"]["x"]["type"], "singleton", "{r}");
    assert_eq!(r["notDestroyed"]["singleton"]["type"], "singleton");
    assert_eq!(r["notUpdated"]["other"]["type"], "notFound");
    assert_eq!(r["notUpdated"]["singleton"]["type"], "invalidProperties");
    let mut props: Vec<String> = r["notUpdated"]["singleton"]["properties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    props.sort();
    assert_eq!(props, ["bogus", "isEnabled", "toDate"]);
    let r = w
        .call(
            "VacationResponse/set",
            json!({"accountId": w.account_id(), "update": {"singleton": {"isEnabled": null}}}),
        )
        .await;
    assert_eq!(
        r["notUpdated"]["singleton"]["properties"],
        json!(["isEnabled"])
    );
    let e = w
        .call_error(
            "VacationResponse/set",
            json!({"accountId": w.account_id(), "ifInState": "0", "update": {}}),
        )
        .await;
    assert_eq!(e, "stateMismatch");
}

#[tokio::test]
async fn a_sender_gets_one_reply_per_period_and_lists_get_none() {
    let w = World::new().await;
    let d = hooked(&w);
    enable(&w, json!({})).await;

    deliver(
        &d,
        Some("bob@example.com"),
        "alice@example.com",
        "From: Bob <bob@example.com>\nTo: alice@example.com\nSubject: Lunch?\nMessage-ID: <q1@example.com>\n\nFriday?\n",
    )
    .await;
    let replies = inbox(&w, "bob@example.com").await;
    assert_eq!(replies.len(), 1, "one reply");
    let reply = &replies[0];
    assert!(
        reply.starts_with("Return-Path: <>\r\n"),
        "a null sender: {reply}"
    );
    assert!(
        reply.contains("Auto-Submitted: auto-replied\r\n"),
        "{reply}"
    );
    assert!(reply.contains("Subject: Auto: Lunch?\r\n"), "{reply}");
    assert!(
        reply.contains("In-Reply-To: <q1@example.com>\r\n"),
        "{reply}"
    );
    assert!(
        reply.contains("References: <q1@example.com>\r\n"),
        "{reply}"
    );
    assert!(reply.contains("From: <alice@example.com>\r\n"), "{reply}");
    assert!(reply.contains("I am away until Monday."), "{reply}");
    assert_eq!(inbox(&w, "alice@example.com").await.len(), 1);

    // Once per period.
    deliver(
        &d,
        Some("bob@example.com"),
        "alice@example.com",
        "From: bob@example.com\nTo: alice@example.com\nSubject: Again\n\nHello?\n",
    )
    .await;
    assert_eq!(
        inbox(&w, "bob@example.com").await.len(),
        1,
        "no second reply"
    );

    // Not to lists, bulk, automatic mail, robots, null senders, or when
    // alice is not named.
    for (from, raw) in [
        (
            Some("list@remote.example"),
            "From: list@remote.example\nTo: alice@example.com\nList-Id: <l.remote.example>\nSubject: digest\n\nx\n",
        ),
        (
            Some("news@remote.example"),
            "From: news@remote.example\nTo: alice@example.com\nPrecedence: bulk\nSubject: news\n\nx\n",
        ),
        (
            Some("robot@remote.example"),
            "From: robot@remote.example\nTo: alice@example.com\nAuto-Submitted: auto-generated\nSubject: alert\n\nx\n",
        ),
        (
            Some("MAILER-DAEMON@remote.example"),
            "From: MAILER-DAEMON@remote.example\nTo: alice@example.com\nSubject: failure\n\nx\n",
        ),
        (
            Some("owner-list@remote.example"),
            "From: owner-list@remote.example\nTo: alice@example.com\nSubject: x\n\nx\n",
        ),
        (
            None,
            "From: someone@remote.example\nTo: alice@example.com\nSubject: bounce\n\nx\n",
        ),
        (
            Some("carol@remote.example"),
            "From: carol@remote.example\nTo: someone@remote.example\nSubject: bcc'd\n\nx\n",
        ),
        (
            Some("alice@example.com"),
            "From: alice@example.com\nTo: alice@example.com\nSubject: note to self\n\nx\n",
        ),
    ] {
        deliver(&d, from, "alice@example.com", raw).await;
    }
    assert!(
        w.store.queue_list().await.unwrap().is_empty(),
        "no reply queued for any of them"
    );
    assert_eq!(inbox(&w, "alice@example.com").await.len(), 10);
    assert_eq!(inbox(&w, "bob@example.com").await.len(), 1);

    // A remote sender's reply goes out through the queue, with <>.
    deliver(
        &d,
        Some("dave@remote.example"),
        "alice@example.com",
        "From: dave@remote.example\nCc: Alice <ALICE@example.com>\nSubject: hi\n\nx\n",
    )
    .await;
    let queue = w.store.queue_list().await.unwrap();
    assert_eq!(queue.len(), 1);
    assert!(queue[0].mail_from.is_none(), "null reverse path");
    assert_eq!(queue[0].recipients[0].address.key(), "dave@remote.example");

    // New settings answer everyone again, with their subject.
    enable(
        &w,
        json!({"subject": "Out of office", "htmlBody": "<p>Away</p>"}),
    )
    .await;
    deliver(
        &d,
        Some("bob@example.com"),
        "alice@example.com",
        "From: bob@example.com\nTo: alice@example.com\nSubject: Third\n\nx\n",
    )
    .await;
    let replies = inbox(&w, "bob@example.com").await;
    assert_eq!(replies.len(), 2);
    assert!(
        replies[1].contains("Subject: Out of office\r\n"),
        "{}",
        replies[1]
    );
    assert!(
        replies[1].contains("multipart/alternative"),
        "{}",
        replies[1]
    );
}

#[tokio::test]
async fn dates_and_the_switch_bound_the_replies() {
    let w = World::new().await;
    let d = hooked(&w);
    let raw = "From: bob@example.com\nTo: alice@example.com\nSubject: s\n\nx\n";
    // Off: nothing.
    deliver(&d, Some("bob@example.com"), "alice@example.com", raw).await;
    assert!(inbox(&w, "bob@example.com").await.is_empty());
    // Not yet, and no longer.
    enable(&w, json!({"fromDate": "2999-01-01T00:00:00Z"})).await;
    deliver(&d, Some("bob@example.com"), "alice@example.com", raw).await;
    enable(&w, json!({"toDate": "2001-01-01T00:00:00Z"})).await;
    deliver(&d, Some("bob@example.com"), "alice@example.com", raw).await;
    assert!(inbox(&w, "bob@example.com").await.is_empty());
    // Within the dates.
    enable(
        &w,
        json!({"fromDate": "2001-01-01T00:00:00Z", "toDate": "2999-01-01T00:00:00Z"}),
    )
    .await;
    deliver(&d, Some("bob@example.com"), "alice@example.com", raw).await;
    assert_eq!(inbox(&w, "bob@example.com").await.len(), 1);
}
