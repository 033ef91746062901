//! EmailSubmission (RFC 8621 §7): sending a draft to a local and a remote
//! recipient (the local one gets it at once without Bcc, the remote one is
//! queued), the implicit Email/set that files the draft in Sent, the
//! envelope checks, and get/query/changes of the records.

#![allow(clippy::unwrap_used)]

mod common;

use common::{USING, World};
use pochta_addr::Address;
use pochta_jmap::{Jmap, JmapSettings, ids};
use pochta_store::{Flags, Role, Store};
use serde_json::{Value, json};

async fn mailbox_of(w: &World, account: u64, role: Role) -> u64 {
    let m = w.store.mailboxes(account).await.unwrap();
    m.iter().find(|m| m.role == Some(role)).unwrap().id
}

async fn mailbox(w: &World, role: Role) -> String {
    ids::mailbox(mailbox_of(w, w.alice.id, role).await).to_string()
}

async fn default_identity(w: &World) -> String {
    let r = w
        .call("Identity/get", json!({"accountId": w.account_id()}))
        .await;
    r["list"][0]["id"].as_str().unwrap().to_string()
}

/// A draft in alice's Drafts; returns its id.
async fn draft(w: &World, headers: Value) -> String {
    let mut object = json!({
        "mailboxIds": {mailbox(w, Role::Drafts).await: true},
        "keywords": {"$draft": true, "$seen": true},
        "subject": "Plans",
        "textBody": [{"partId": "t"}],
        "bodyValues": {"t": {"value": "Lunch on Friday?"}}
    });
    for (k, v) in headers.as_object().unwrap() {
        object[k] = v.clone();
    }
    let r = w
        .call(
            "Email/set",
            json!({"accountId": w.account_id(), "create": {"d": object}}),
        )
        .await;
    r["created"]["d"]["id"].as_str().unwrap().to_string()
}

/// Submits and returns the SetError of the creation.
async fn submit_error(w: &World, submission: Value) -> Value {
    let r = w
        .call(
            "EmailSubmission/set",
            json!({"accountId": w.account_id(), "create": {"s": submission}}),
        )
        .await;
    assert!(r["created"].is_null(), "{r}");
    r["notCreated"]["s"].clone()
}

async fn bob(w: &World) -> u64 {
    w.store
        .account(&Address::parse("bob@example.com").unwrap())
        .await
        .unwrap()
        .unwrap()
        .id
}

#[tokio::test]
async fn sending_a_draft_delivers_locally_queues_remotely_and_files_it() {
    let w = World::new().await;
    let identity = default_identity(&w).await;
    let drafts = mailbox(&w, Role::Drafts).await;
    let sent = mailbox(&w, Role::Sent).await;
    let r = w
        .request(json!([
            ["Email/set", {"accountId": w.account_id(), "create": {"d": {
                "mailboxIds": {drafts.clone(): true},
                "keywords": {"$draft": true, "$seen": true},
                "from": [{"name": "Alice", "email": "alice@example.com"}],
                "to": [{"email": "carol@remote.example"}],
                "cc": [{"email": "Carol@Remote.Example"}],
                "bcc": [{"email": "bob@example.com"}],
                "subject": "Plans",
                "textBody": [{"partId": "t"}],
                "bodyValues": {"t": {"value": "Lunch on Friday?"}}
            }}}, "c0"],
            ["EmailSubmission/set", {
                "accountId": w.account_id(),
                "create": {"s": {"identityId": identity, "emailId": "#d"}},
                "onSuccessUpdateEmail": {"#s": {
                    format!("mailboxIds/{drafts}"): null,
                    format!("mailboxIds/{sent}"): true,
                    "keywords/$draft": null
                }}
            }, "c1"]
        ]))
        .await;
    let rs = r["methodResponses"].as_array().unwrap();
    assert_eq!(rs.len(), 3, "{r}");
    assert_eq!(rs[1][0], "EmailSubmission/set");
    assert_eq!(rs[2][0], "Email/set", "the implicit call follows");
    assert_eq!(rs[2][2], "c1", "with the same call id");
    let email_id = rs[0][1]["created"]["d"]["id"].as_str().unwrap().to_string();
    let created = &rs[1][1]["created"]["s"];
    let sub_id = created["id"].as_str().unwrap().to_string();
    assert!(sub_id.starts_with('S'), "{r}");
    assert_eq!(created["undoStatus"], "final");
    assert_eq!(created["emailId"], email_id);
    assert_eq!(
        created["envelope"]["mailFrom"],
        json!({"email": "alice@example.com", "parameters": null})
    );
    let rcpts: Vec<&str> = created["envelope"]["rcptTo"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        rcpts,
        ["carol@remote.example", "bob@example.com"],
        "To, Cc and Bcc, deduplicated"
    );
    assert_eq!(
        created["deliveryStatus"]["bob@example.com"]["delivered"],
        "yes"
    );
    assert_eq!(
        created["deliveryStatus"]["carol@remote.example"]["delivered"],
        "queued"
    );
    assert_eq!(rs[2][1]["updated"], json!({email_id.clone(): null}), "{r}");

    // bob has it now, without the Bcc.
    let bob = bob(&w).await;
    let inbox = mailbox_of(&w, bob, Role::Inbox).await;
    let got = w.store.messages(bob, inbox).await.unwrap();
    assert_eq!(got.len(), 1);
    let text = String::from_utf8(w.store.read_blob(bob, got[0].blob_id).await.unwrap()).unwrap();
    assert!(!text.contains("Bcc:"), "{text}");
    assert!(!text.to_lowercase().contains("bcc"), "{text}");
    assert!(text.contains("Subject: Plans\r\n"));
    assert!(
        text.starts_with("Return-Path: <alice@example.com>\r\n"),
        "{text}"
    );
    assert!(
        text.contains("(authenticated as alice@example.com)"),
        "{text}"
    );

    // carol's copy waits in the relay queue.
    let queue = w.store.queue_list().await.unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].recipients.len(), 1);
    assert_eq!(queue[0].recipients[0].address.key(), "carol@remote.example");
    assert_eq!(
        queue[0].mail_from.as_ref().unwrap().key(),
        "alice@example.com"
    );
    assert_eq!(queue[0].account, Some(w.alice.id));
    let queued = String::from_utf8(w.store.queue_blob(queue[0].id).await.unwrap()).unwrap();
    assert!(!queued.contains("Bcc:"), "{queued}");

    // The draft is in Sent, no longer a draft.
    let n = ids::parse_email(&email_id).unwrap();
    let rec = w.store.message(w.alice.id, n).await.unwrap().unwrap();
    assert_eq!(ids::mailbox(rec.summary.mailbox_id).as_str(), sent);
    assert_eq!(rec.summary.flags, Flags::SEEN);

    // The record.
    let got = w
        .call(
            "EmailSubmission/get",
            json!({"accountId": w.account_id(), "ids": [sub_id.clone(), "S999"]}),
        )
        .await;
    let s = &got["list"][0];
    assert_eq!(s["identityId"], identity);
    assert_eq!(s["threadId"], ids::thread(rec.summary.thread_id).as_str());
    assert!(s["sendAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(s["dsnBlobIds"], json!([]));
    assert_eq!(got["notFound"], json!(["S999"]));
    let all = w
        .call(
            "EmailSubmission/get",
            json!({"accountId": w.account_id(), "properties": ["undoStatus"]}),
        )
        .await;
    assert_eq!(
        all["list"],
        json!([{"id": sub_id.clone(), "undoStatus": "final"}])
    );
}

#[tokio::test]
async fn on_success_destroy_and_failed_submissions_leave_the_email_alone() {
    let w = World::new().await;
    let identity = default_identity(&w).await;
    let good = draft(
        &w,
        json!({"from": [{"email": "alice@example.com"}], "to": [{"email": "bob@example.com"}]}),
    )
    .await;
    let bad = draft(
        &w,
        json!({"from": [{"email": "bob@example.com"}], "to": [{"email": "bob@example.com"}]}),
    )
    .await;
    let r = w
        .request(json!([["EmailSubmission/set", {
            "accountId": w.account_id(),
            "create": {
                "ok": {"identityId": identity, "emailId": good},
                "no": {"identityId": identity, "emailId": bad}
            },
            "onSuccessDestroyEmail": ["#ok", "#no"]
        }, "x"]]))
        .await;
    let rs = &r["methodResponses"];
    assert_eq!(rs[0][1]["notCreated"]["no"]["type"], "forbiddenFrom", "{r}");
    assert_eq!(rs[1][0], "Email/set");
    assert_eq!(rs[1][1]["destroyed"], json!([good.clone()]), "{r}");
    let n = ids::parse_email(&bad).unwrap();
    assert!(w.store.message(w.alice.id, n).await.unwrap().is_some());
}

#[tokio::test]
async fn envelope_and_email_checks() {
    let w = World::new().await;
    let identity = default_identity(&w).await;
    let to_bob = draft(
        &w,
        json!({"from": [{"email": "alice@example.com"}], "to": [{"email": "bob@example.com"}]}),
    )
    .await;
    let sub = |email: &str, envelope: Value| json!({"identityId": identity, "emailId": email, "envelope": envelope});
    let env = |from: &str, to: Value| json!({"mailFrom": {"email": from}, "rcptTo": to});

    let e = submit_error(
        &w,
        sub(
            &to_bob,
            env("bob@example.com", json!([{"email": "bob@example.com"}])),
        ),
    )
    .await;
    assert_eq!(e["type"], "forbiddenMailFrom", "{e}");
    let e = submit_error(
        &w,
        sub(&to_bob, env("", json!([{"email": "bob@example.com"}]))),
    )
    .await;
    assert_eq!(e["type"], "forbiddenMailFrom", "{e}");
    let e = submit_error(&w, sub(&to_bob, env("alice@example.com", json!([])))).await;
    assert_eq!(e["type"], "noRecipients", "{e}");
    let e = submit_error(
        &w,
        sub(
            &to_bob,
            env(
                "alice@example.com",
                json!([{"email": "nobody@example.com"}, {"email": "no at sign"}, {"email": "x@[10.0.0.1]"}, {"email": "bob@example.com"}]),
            ),
        ),
    )
    .await;
    assert_eq!(e["type"], "invalidRecipients", "{e}");
    assert_eq!(
        e["invalidRecipients"],
        json!(["nobody@example.com", "no at sign", "x@[10.0.0.1]"])
    );
    let e = submit_error(
        &w,
        sub(
            &to_bob,
            env(
                "alice@example.com",
                json!([{"email": "bob@example.com", "parameters": {"XFOO": "1"}}]),
            ),
        ),
    )
    .await;
    assert_eq!(e["type"], "invalidProperties", "{e}");
    let e = submit_error(&w, sub(&to_bob, json!({"mailFrom": "alice@example.com"}))).await;
    assert_eq!(e["properties"], json!(["envelope"]), "{e}");
    let e = submit_error(
        &w,
        json!({"identityId": "I999", "emailId": "M999999", "undoStatus": "pending"}),
    )
    .await;
    assert_eq!(e["type"], "invalidProperties");
    assert_eq!(
        e["properties"],
        json!(["undoStatus", "identityId", "emailId"])
    );

    // The email itself: a From that is ours, and someone to send to.
    let no_from = draft(&w, json!({"to": [{"email": "bob@example.com"}]})).await;
    let e = submit_error(&w, json!({"identityId": identity, "emailId": no_from})).await;
    assert_eq!(e["type"], "invalidEmail", "{e}");
    assert_eq!(e["properties"], json!(["from"]));
    let nobody = draft(&w, json!({"from": [{"email": "alice@example.com"}]})).await;
    let e = submit_error(&w, json!({"identityId": identity, "emailId": nobody})).await;
    assert_eq!(e["type"], "noRecipients", "{e}");

    // Limits.
    let mut settings = JmapSettings::new("mx.example.com");
    settings.max_recipients = 1;
    settings.max_message_size = 100_000;
    let strict = Jmap::new(w.store.clone(), w.delivery.clone(), settings);
    let many = draft(
        &w,
        json!({"from": [{"email": "alice@example.com"}],
               "to": [{"email": "bob@example.com"}, {"email": "x@remote.example"}]}),
    )
    .await;
    let body = json!({"using": USING, "methodCalls": [["EmailSubmission/set", {
        "accountId": w.account_id(),
        "create": {"s": {"identityId": identity, "emailId": many}}}, "c"]]});
    let r = strict
        .handle(&w.alice, body.to_string().as_bytes())
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&r.to_bytes()).unwrap();
    let e = &v["methodResponses"][0][1]["notCreated"]["s"];
    assert_eq!(e["type"], "tooManyRecipients", "{v}");
    assert_eq!(e["maxRecipients"], 1);
    let mut settings = JmapSettings::new("mx.example.com");
    settings.max_message_size = 100;
    let tiny = Jmap::new(w.store.clone(), w.delivery.clone(), settings);
    let body = json!({"using": USING, "methodCalls": [["EmailSubmission/set", {
        "accountId": w.account_id(),
        "create": {"s": {"identityId": identity, "emailId": to_bob}}}, "c"]]});
    let r = tiny
        .handle(&w.alice, body.to_string().as_bytes())
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&r.to_bytes()).unwrap();
    let e = &v["methodResponses"][0][1]["notCreated"]["s"];
    assert_eq!(e["type"], "tooLarge", "{v}");
    assert_eq!(e["maxSize"], 100);

    // Nothing went anywhere.
    let bob = bob(&w).await;
    let inbox = mailbox_of(&w, bob, Role::Inbox).await;
    assert!(w.store.messages(bob, inbox).await.unwrap().is_empty());
    assert!(w.store.queue_list().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_explicit_envelope_with_dsn_parameters() {
    let w = World::new().await;
    let identity = default_identity(&w).await;
    let email = draft(
        &w,
        json!({"from": [{"email": "alice@example.com"}], "to": [{"email": "bob@example.com"}]}),
    )
    .await;
    let r = w
        .call(
            "EmailSubmission/set",
            json!({"accountId": w.account_id(), "create": {"s": {
                "identityId": identity, "emailId": email,
                "envelope": {
                    "mailFrom": {"email": "alice+lists@example.com", "parameters": {"ENVID": "env-1", "RET": "HDRS"}},
                    "rcptTo": [{"email": "dave@remote.example", "parameters": {"NOTIFY": "FAILURE,DELAY"}}]
                }}}}),
        )
        .await;
    assert!(r["created"]["s"]["id"].is_string(), "{r}");
    let queue = w.store.queue_list().await.unwrap();
    assert_eq!(queue.len(), 1);
    let q = &queue[0];
    assert_eq!(
        q.mail_from.as_ref().unwrap().key(),
        "alice+lists@example.com"
    );
    assert_eq!(q.envid.as_deref(), Some("env-1"));
    assert!(!q.ret_full);
    assert_eq!(q.recipients[0].address.key(), "dave@remote.example");
    assert_eq!(
        q.recipients[0].notify,
        pochta_store::dsn_notify::FAILURE | pochta_store::dsn_notify::DELAY
    );
    // Only the envelope's recipients: bob (in To) got nothing.
    let bob = bob(&w).await;
    let inbox = mailbox_of(&w, bob, Role::Inbox).await;
    assert!(w.store.messages(bob, inbox).await.unwrap().is_empty());
}

#[tokio::test]
async fn records_can_be_queried_but_not_cancelled() {
    let w = World::new().await;
    let identity = default_identity(&w).await;
    let before = w
        .call(
            "EmailSubmission/get",
            json!({"accountId": w.account_id(), "ids": []}),
        )
        .await["state"]
        .clone();
    let mut subs = Vec::new();
    let mut emails = Vec::new();
    for _ in 0..3 {
        let email = draft(
            &w,
            json!({"from": [{"email": "alice@example.com"}], "to": [{"email": "bob@example.com"}]}),
        )
        .await;
        let r = w
            .call(
                "EmailSubmission/set",
                json!({"accountId": w.account_id(), "create": {"s": {"identityId": identity, "emailId": email}}}),
            )
            .await;
        subs.push(r["created"]["s"]["id"].as_str().unwrap().to_string());
        emails.push(email);
    }
    let q = w
        .call(
            "EmailSubmission/query",
            json!({"accountId": w.account_id(), "filter": {"emailIds": [emails[1]], "undoStatus": "final"},
                   "calculateTotal": true}),
        )
        .await;
    assert_eq!(q["ids"], json!([subs[1]]), "{q}");
    assert_eq!(q["total"], 1);
    assert_eq!(q["canCalculateChanges"], false);
    let q = w
        .call(
            "EmailSubmission/query",
            json!({"accountId": w.account_id(), "sort": [{"property": "emailId", "isAscending": false}],
                   "filter": {"operator": "NOT", "conditions": [{"emailIds": [emails[0]]}]}}),
        )
        .await;
    let mut expected = vec![subs[1].clone(), subs[2].clone()];
    let mut by_email: Vec<(String, String)> = emails[1..]
        .iter()
        .cloned()
        .zip(expected.iter().cloned())
        .collect();
    by_email.sort();
    by_email.reverse();
    expected = by_email.into_iter().map(|(_, s)| s).collect();
    assert_eq!(q["ids"], json!(expected), "{q}");
    let q = w
        .call(
            "EmailSubmission/query",
            json!({"accountId": w.account_id(), "filter": {"after": "2000-01-01T00:00:00Z",
                   "before": "2100-01-01T00:00:00Z", "identityIds": [identity]},
                   "sort": [{"property": "sentAt"}], "position": 1, "limit": 1}),
        )
        .await;
    assert_eq!(q["ids"].as_array().unwrap().len(), 1, "{q}");
    assert_eq!(q["position"], 1);
    for (args, kind) in [
        (json!({"sort": [{"property": "size"}]}), "unsupportedSort"),
        (json!({"filter": {"bogus": 1}}), "invalidArguments"),
        (json!({"filter": {"before": "soon"}}), "invalidArguments"),
    ] {
        let mut a = args;
        a["accountId"] = json!(w.account_id());
        assert_eq!(w.call_error("EmailSubmission/query", a).await, kind);
    }
    let e = w
        .call_error(
            "EmailSubmission/queryChanges",
            json!({"accountId": w.account_id(), "sinceQueryState": q["queryState"]}),
        )
        .await;
    assert_eq!(e, "cannotCalculateChanges");

    let c = w
        .call(
            "EmailSubmission/changes",
            json!({"accountId": w.account_id(), "sinceState": before}),
        )
        .await;
    assert_eq!(c["created"].as_array().unwrap().len(), 3, "{c}");

    // No unsending; the record may go (the mail is sent regardless).
    let r = w
        .call(
            "EmailSubmission/set",
            json!({"accountId": w.account_id(), "update": {
                subs[0].clone(): {"undoStatus": "canceled"},
                subs[1].clone(): {"undoStatus": "final"},
                subs[2].clone(): {"emailId": "M1"},
                "S999": {"undoStatus": "final"}
            }}),
        )
        .await;
    assert_eq!(r["notUpdated"][&subs[0]]["type"], "cannotUnsend", "{r}");
    assert_eq!(r["updated"], json!({subs[1].clone(): null}));
    assert_eq!(r["notUpdated"][&subs[2]]["type"], "invalidProperties");
    assert_eq!(r["notUpdated"]["S999"]["type"], "notFound");
    let r = w
        .call(
            "EmailSubmission/set",
            json!({"accountId": w.account_id(), "destroy": [subs[0].clone(), "S999"]}),
        )
        .await;
    assert_eq!(r["destroyed"], json!([subs[0].clone()]), "{r}");
    assert_eq!(r["notDestroyed"]["S999"]["type"], "notFound");
    let c = w
        .call(
            "EmailSubmission/changes",
            json!({"accountId": w.account_id(), "sinceState": r["oldState"]}),
        )
        .await;
    assert_eq!(c["destroyed"], json!([subs[0].clone()]), "{c}");
    let bob = bob(&w).await;
    let inbox = mailbox_of(&w, bob, Role::Inbox).await;
    assert_eq!(w.store.messages(bob, inbox).await.unwrap().len(), 3);
}
