//! Email/set, Email/copy, Email/import and Email/parse (RFC 8621 §4.6–4.9)
//! through the request loop: drafts built from Email objects and checked in
//! the stored bytes, keyword and mailbox changes seen from the store (what
//! IMAP sees), destroys, every creation rule of §4.6, imports and parses of
//! uploaded messages.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{USING, World};
use mail_parser::{MessageParser, MimeHeaders};
use pochta_addr::Address;
use pochta_jmap::{Jmap, JmapSettings, ids};
use pochta_store::{Flags, MessageRecord, Role, Store};
use serde_json::{Value, json};

/// The JMAP id of one of alice's mailboxes.
async fn mailbox(w: &World, role: Role) -> String {
    let m = w.store.mailboxes(w.alice.id).await.unwrap();
    ids::mailbox(m.iter().find(|m| m.role == Some(role)).unwrap().id).to_string()
}

/// The store's record of an email id.
async fn record(w: &World, id: &Value) -> Option<MessageRecord> {
    let n = ids::parse_email(id.as_str().unwrap()).unwrap();
    w.store.message(w.alice.id, n).await.unwrap()
}

/// The stored bytes of an email id.
async fn raw(w: &World, id: &Value) -> Vec<u8> {
    let r = record(w, id).await.unwrap();
    w.store
        .read_blob(w.alice.id, r.summary.blob_id)
        .await
        .unwrap()
}

/// Runs one Email/set with `create: {k: object}` and returns the response.
async fn create(w: &World, object: Value) -> Value {
    w.call(
        "Email/set",
        json!({"accountId": w.account_id(), "create": {"k": object}}),
    )
    .await
}

/// The SetError of a failed single create.
async fn create_error(w: &World, object: Value) -> Value {
    let r = create(w, object).await;
    assert!(r["created"].is_null(), "{r}");
    r["notCreated"]["k"].clone()
}

/// `invalidProperties` with exactly these properties.
async fn assert_invalid(w: &World, object: Value, properties: &[&str]) {
    let e = create_error(w, object).await;
    assert_eq!(e["type"], "invalidProperties", "{e}");
    assert_eq!(e["properties"], json!(properties), "{e}");
}

/// A service over the same store with other limits.
fn jmap_with(w: &World, f: impl FnOnce(&mut JmapSettings)) -> Arc<Jmap> {
    let mut settings = JmapSettings::new("mx.example.com");
    f(&mut settings);
    Jmap::new(w.store.clone(), w.delivery.clone(), settings)
}

/// Runs one call on another service and returns its first response.
async fn call_on(jmap: &Jmap, w: &World, method: &str, args: Value) -> Value {
    let body = json!({"using": USING, "methodCalls": [[method, args, "c"]]});
    let r = jmap
        .handle(&w.alice, body.to_string().as_bytes())
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&r.to_bytes()).unwrap();
    v["methodResponses"][0][1].clone()
}

#[tokio::test]
async fn a_plain_text_draft_is_built_and_stored() {
    let w = World::new().await;
    let drafts = mailbox(&w, Role::Drafts).await;
    let r = create(
        &w,
        json!({
            "mailboxIds": {drafts.clone(): true},
            "keywords": {"$draft": true, "$seen": true, "Project": true},
            "from": [{"name": "Alice Ü", "email": "alice@example.com"}],
            "to": [{"name": null, "email": "bob@example.com"}],
            "subject": "Hello, Bob — a test",
            "sentAt": "2024-03-01T10:00:00+02:00",
            "receivedAt": "2024-03-01T08:00:01Z",
            "inReplyTo": ["orig@example.net"],
            "header:X-Mailer:asText": "pochta tests",
            "textBody": [{"partId": "t", "type": "text/plain"}],
            "bodyValues": {"t": {"value": "Hi Bob,\nsee you.\n"}}
        }),
    )
    .await;
    let created = &r["created"]["k"];
    assert!(created["id"].as_str().unwrap().starts_with('M'), "{r}");
    assert!(created["blobId"].as_str().unwrap().starts_with('B'));
    assert!(created["threadId"].as_str().unwrap().starts_with('T'));
    let rec = record(&w, &created["id"]).await.unwrap();
    assert_eq!(created["size"], rec.summary.size);
    assert_eq!(rec.summary.flags, Flags::DRAFT | Flags::SEEN);
    assert_eq!(rec.summary.keywords, ["project"]);
    assert_eq!(ids::mailbox(rec.summary.mailbox_id).as_str(), drafts);
    assert_eq!(rec.summary.internal_date, 1_709_280_001);

    let bytes = raw(&w, &created["id"]).await;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    assert!(
        text.contains("Date: Fri, 01 Mar 2024 10:00:00 +0200\r\n"),
        "{text}"
    );
    assert!(
        text.contains("In-Reply-To: <orig@example.net>\r\n"),
        "{text}"
    );
    assert!(
        text.contains("@mx.example.com>\r\n"),
        "a Message-ID of ours: {text}"
    );
    assert!(text.contains("MIME-Version: 1.0\r\n"));
    let m = MessageParser::default().parse(&bytes).unwrap();
    assert_eq!(m.subject(), Some("Hello, Bob — a test"));
    let from = m.from().unwrap().first().unwrap();
    assert_eq!(from.name(), Some("Alice Ü"));
    assert_eq!(from.address(), Some("alice@example.com"));
    assert_eq!(
        m.to().unwrap().first().unwrap().address(),
        Some("bob@example.com")
    );
    assert_eq!(m.body_text(0).unwrap(), "Hi Bob,\r\nsee you.\r\n");
    assert_eq!(
        m.header("X-Mailer").unwrap().as_text(),
        Some("pochta tests")
    );

    // Email/get sees what was set.
    let got = w
        .call(
            "Email/get",
            json!({"accountId": w.account_id(), "ids": [created["id"]],
                   "properties": ["subject", "keywords", "mailboxIds", "sentAt", "from"]}),
        )
        .await;
    let e = &got["list"][0];
    assert_eq!(e["subject"], "Hello, Bob — a test");
    assert_eq!(
        e["keywords"],
        json!({"$draft": true, "$seen": true, "project": true})
    );
    assert_eq!(e["mailboxIds"], json!({drafts: true}));
    assert_eq!(e["sentAt"], "2024-03-01T10:00:00+02:00");
}

#[tokio::test]
async fn html_with_text_alternative_and_an_uploaded_attachment() {
    let w = World::new().await;
    let drafts = mailbox(&w, Role::Drafts).await;
    let pdf = b"%PDF-1.4 binary \x00\x01\x02 data".to_vec();
    let up = w
        .store
        .upload(w.alice.id, pdf.clone(), "application/pdf")
        .await
        .unwrap();
    let png = w
        .store
        .upload(w.alice.id, b"\x89PNG fake".to_vec(), "image/png")
        .await
        .unwrap();
    let r = create(
        &w,
        json!({
            "mailboxIds": {drafts: true},
            "from": [{"email": "alice@example.com"}],
            "subject": "Report",
            "textBody": [{"partId": "t"}],
            "htmlBody": [{"partId": "h", "type": "text/html"}],
            "attachments": [
                {"blobId": ids::blob(up.blob_id), "type": "application/pdf", "name": "report ü.pdf"},
                {"blobId": ids::blob(png.blob_id), "type": "image/png", "cid": "logo@x",
                 "disposition": "inline"}
            ],
            "bodyValues": {
                "t": {"value": "See the report."},
                "h": {"value": "<p>See the <b>report</b>.<img src=\"cid:logo@x\"></p>",
                      "isTruncated": false}
            }
        }),
    )
    .await;
    let id = r["created"]["k"]["id"].clone();
    assert!(id.is_string(), "{r}");
    let bytes = raw(&w, &id).await;
    let meta = pochta_message::parse(&bytes);
    let types = |p: &pochta_message::BodyPart| format!("{}/{}", p.media_type, p.media_subtype);
    let root = &meta.body;
    assert_eq!(types(root).to_lowercase(), "multipart/mixed");
    let children = root.children();
    assert_eq!(children.len(), 2, "the body and the PDF");
    assert_eq!(types(&children[0]).to_lowercase(), "multipart/alternative");
    let alt = children[0].children();
    assert_eq!(types(&alt[0]).to_lowercase(), "text/plain");
    assert_eq!(types(&alt[1]).to_lowercase(), "multipart/related");
    assert_eq!(types(&alt[1].children()[0]).to_lowercase(), "text/html");
    assert_eq!(types(&alt[1].children()[1]).to_lowercase(), "image/png");
    assert_eq!(children[1].filename(), Some("report ü.pdf"));

    let m = MessageParser::default().parse(&bytes).unwrap();
    let att = m
        .attachments()
        .find(|a| a.attachment_name() == Some("report ü.pdf"))
        .unwrap();
    assert_eq!(att.contents(), pdf.as_slice());

    // Email/get: the lists and values of §4.1.4.
    let got = w
        .call(
            "Email/get",
            json!({"accountId": w.account_id(), "ids": [id],
                   "properties": ["textBody", "htmlBody", "attachments", "bodyValues", "hasAttachment"],
                   "fetchAllBodyValues": true}),
        )
        .await;
    let e = &got["list"][0];
    assert_eq!(e["textBody"][0]["type"], "text/plain");
    assert_eq!(e["htmlBody"][0]["type"], "text/html");
    let text_part = e["textBody"][0]["partId"].as_str().unwrap();
    assert_eq!(e["bodyValues"][text_part]["value"], "See the report.");
    let names: Vec<&str> = e["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, ["report ü.pdf"]);
    assert_eq!(e["hasAttachment"], true);

    // A part of a stored email is a blob too: a new draft reuses it.
    let pdf_part = e["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "report ü.pdf")
        .unwrap()["blobId"]
        .clone();
    assert!(pdf_part.as_str().unwrap().starts_with('P'));
    let r = create(
        &w,
        json!({
            "mailboxIds": {mailbox(&w, Role::Drafts).await: true},
            "subject": "Forwarding the report",
            "bodyStructure": {
                "type": "multipart/mixed",
                "subParts": [
                    {"partId": "1", "type": "text/plain"},
                    {"blobId": pdf_part, "type": "application/pdf", "name": "again.pdf",
                     "header:X-Part:asText": "kept"}
                ]
            },
            "bodyValues": {"1": {"value": "Here it is again."}}
        }),
    )
    .await;
    let bytes = raw(&w, &r["created"]["k"]["id"]).await;
    let m = MessageParser::default().parse(&bytes).unwrap();
    let att = m.attachments().next().unwrap();
    assert_eq!(att.attachment_name(), Some("again.pdf"));
    assert_eq!(att.contents(), pdf.as_slice());
    assert!(String::from_utf8_lossy(&bytes).contains("X-Part: kept\r\n"));
}

#[tokio::test]
async fn keywords_and_mailboxes_change_as_imap_sees_them() {
    let w = World::new().await;
    let drafts = mailbox(&w, Role::Drafts).await;
    let inbox = mailbox(&w, Role::Inbox).await;
    let trash = mailbox(&w, Role::Trash).await;
    let r = create(
        &w,
        json!({"mailboxIds": {drafts.clone(): true}, "keywords": {"$draft": true, "$Forwarded": true},
               "subject": "s", "textBody": [{"partId": "t"}], "bodyValues": {"t": {"value": "x"}}}),
    )
    .await;
    let id = r["created"]["k"]["id"].clone();
    let id_s = id.as_str().unwrap().to_string();

    let r = w
        .call(
            "Email/set",
            json!({"accountId": w.account_id(), "update": {id_s.clone(): {
                "keywords/$flagged": true, "keywords/$Draft": null, "keywords/work": true}}}),
        )
        .await;
    assert_eq!(r["updated"], json!({id_s.clone(): null}), "{r}");
    let rec = record(&w, &id).await.unwrap();
    assert_eq!(rec.summary.flags, Flags::FLAGGED);
    let mut kws = rec.summary.keywords.clone();
    kws.sort();
    assert_eq!(kws, ["$forwarded", "work"]);
    // IMAP's view of the mailbox agrees.
    let summaries = w
        .store
        .messages(w.alice.id, rec.summary.mailbox_id)
        .await
        .unwrap();
    assert_eq!(summaries[0].flags, Flags::FLAGGED);

    // Whole-value replacement, and a move.
    let r = w
        .call(
            "Email/set",
            json!({"accountId": w.account_id(), "update": {id_s.clone(): {
                "keywords": {"$seen": true}, "mailboxIds": {inbox.clone(): true}}}}),
        )
        .await;
    assert!(r["notUpdated"].is_null(), "{r}");
    let rec = record(&w, &id).await.unwrap();
    assert_eq!(rec.summary.flags, Flags::SEEN);
    assert!(rec.summary.keywords.is_empty());
    assert_eq!(ids::mailbox(rec.summary.mailbox_id).as_str(), inbox);

    // By path: to the trash.
    let r = w
        .call(
            "Email/set",
            json!({"accountId": w.account_id(), "update": {id_s.clone(): {
                format!("mailboxIds/{inbox}"): null, format!("mailboxIds/{trash}"): true}}}),
        )
        .await;
    assert!(r["notUpdated"].is_null(), "{r}");
    let rec = record(&w, &id).await.unwrap();
    assert_eq!(ids::mailbox(rec.summary.mailbox_id).as_str(), trash);

    // A path set to `false` removes, like `null`: what jmap-client sends
    // (regression: its `keyword(k, false)` was refused as invalidProperties).
    let r = w
        .call(
            "Email/set",
            json!({"accountId": w.account_id(), "update": {id_s.clone(): {
                "keywords/$seen": false, format!("mailboxIds/{trash}"): false,
                format!("mailboxIds/{inbox}"): true}}}),
        )
        .await;
    assert!(r["notUpdated"].is_null(), "{r}");
    let rec = record(&w, &id).await.unwrap();
    assert_eq!(rec.summary.flags, Flags::NONE);
    assert_eq!(ids::mailbox(rec.summary.mailbox_id).as_str(), inbox);
    let r = w
        .call(
            "Email/set",
            json!({"accountId": w.account_id(), "update": {id_s.clone(): {
                format!("mailboxIds/{inbox}"): null, format!("mailboxIds/{trash}"): true}}}),
        )
        .await;
    assert!(r["notUpdated"].is_null(), "{r}");

    // What cannot change.
    let r = w
        .call(
            "Email/set",
            json!({"accountId": w.account_id(), "update": {
                id_s.clone(): {"mailboxIds": {inbox.clone(): true, drafts.clone(): true}}}}),
        )
        .await;
    assert_eq!(r["notUpdated"][&id_s]["type"], "tooManyMailboxes", "{r}");
    for (patch, kind) in [
        (json!({"mailboxIds": {}}), "invalidProperties"),
        (json!({"mailboxIds": {"F999": true}}), "invalidProperties"),
        (
            json!({format!("mailboxIds/{trash}"): null}),
            "invalidProperties",
        ),
        (json!({"keywords": {"a b": true}}), "invalidProperties"),
        (json!({"keywords/x": "yes"}), "invalidProperties"),
        (json!({"keywords": {"x": false}}), "invalidProperties"),
        (json!({"subject": "new"}), "invalidProperties"),
        (json!({"keywords/a/b": true}), "invalidPatch"),
    ] {
        let r = w
            .call(
                "Email/set",
                json!({"accountId": w.account_id(), "update": {id_s.clone(): patch}}),
            )
            .await;
        assert_eq!(r["notUpdated"][&id_s]["type"], kind, "{patch}: {r}");
    }
    let too_many: serde_json::Map<String, Value> = (0..70)
        .map(|i| (format!("k{i}"), Value::Bool(true)))
        .collect();
    let r = w
        .call(
            "Email/set",
            json!({"accountId": w.account_id(), "update": {id_s.clone(): {"keywords": too_many}}}),
        )
        .await;
    assert_eq!(r["notUpdated"][&id_s]["type"], "tooManyKeywords", "{r}");
    let r = w
        .call(
            "Email/set",
            json!({"accountId": w.account_id(), "update": {"Mffff": {"keywords": {}}}}),
        )
        .await;
    assert_eq!(r["notUpdated"]["Mffff"]["type"], "notFound");

    // Destroy: expunged for good.
    let r = w
        .call(
            "Email/set",
            json!({"accountId": w.account_id(), "update": {id_s.clone(): {"keywords": {}}},
                   "destroy": [id_s.clone(), "Mffff"]}),
        )
        .await;
    assert_eq!(r["destroyed"], json!([id_s.clone()]), "{r}");
    assert_eq!(r["notUpdated"][&id_s]["type"], "willDestroy");
    assert_eq!(r["notDestroyed"]["Mffff"]["type"], "notFound");
    assert!(record(&w, &id).await.is_none());
    let r = w
        .call(
            "Email/set",
            json!({"accountId": w.account_id(), "destroy": [id_s.clone()]}),
        )
        .await;
    assert_eq!(r["notDestroyed"][&id_s]["type"], "notFound");
}

#[tokio::test]
async fn creation_rules_of_section_4_6() {
    let w = World::new().await;
    let drafts = mailbox(&w, Role::Drafts).await;
    let text = json!([{"partId": "t"}]);
    let values = json!({"t": {"value": "x"}});
    let base = |extra: Value| {
        let mut o = json!({"mailboxIds": {drafts.clone(): true}, "textBody": text,
                           "bodyValues": values});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                o.as_object_mut().unwrap().remove(k);
            } else {
                o[k] = v.clone();
            }
        }
        o
    };
    // headers is never given; header fields once each; no Content-* on the Email.
    assert_invalid(&w, base(json!({"headers": []})), &["headers"]).await;
    assert_invalid(
        &w,
        base(json!({"from": [{"email": "a@b"}], "header:From:asAddresses": [{"email": "c@d"}]})),
        &["header:From:asAddresses"],
    )
    .await;
    assert_invalid(
        &w,
        base(json!({"header:X-A": " 1", "header:x-a:asText": "2"})),
        &["header:x-a:asText"],
    )
    .await;
    assert_invalid(
        &w,
        base(json!({"header:Content-Type": " text/plain"})),
        &["header:Content-Type"],
    )
    .await;
    // Forbidden forms and bad values.
    assert_invalid(
        &w,
        base(json!({"header:From:asDate": "2024-01-01T00:00:00Z"})),
        &["header:From:asDate"],
    )
    .await;
    assert_invalid(&w, base(json!({"sentAt": "yesterday"})), &["sentAt"]).await;
    assert_invalid(
        &w,
        base(json!({"to": [{"email": "a@b\r\nBcc: x@y"}]})),
        &["to"],
    )
    .await;
    assert_invalid(
        &w,
        base(json!({"header:X-Raw": " a\r\nInjected: 1"})),
        &["header:X-Raw"],
    )
    .await;
    assert_invalid(&w, base(json!({"id": "M1", "size": 3})), &["id", "size"]).await;
    assert_invalid(
        &w,
        base(json!({"keywords": {"$seen": false}})),
        &["keywords"],
    )
    .await;
    assert_invalid(&w, base(json!({"receivedAt": 5})), &["receivedAt"]).await;
    // The body: one way to give it.
    assert_invalid(
        &w,
        base(json!({"bodyStructure": {"partId": "t"}})),
        &["textBody"],
    )
    .await;
    assert_invalid(
        &w,
        base(json!({"textBody": [{"partId": "t", "type": "text/html"}]})),
        &["textBody/0/type"],
    )
    .await;
    assert_invalid(
        &w,
        base(json!({"textBody": [{"partId": "t"}, {"partId": "t"}]})),
        &["textBody"],
    )
    .await;
    assert_invalid(
        &w,
        base(json!({"htmlBody": [{"partId": "t", "type": "text/plain"}]})),
        &["htmlBody/0/type"],
    )
    .await;
    // Parts: partId xor blobId, partId in bodyValues, no charset or size with
    // a partId, no Content-Transfer-Encoding, no conflicting Content-* fields.
    assert_invalid(
        &w,
        base(json!({"textBody": [{"partId": "nope"}]})),
        &["textBody/0/partId"],
    )
    .await;
    assert_invalid(
        &w,
        base(json!({"textBody": [{"partId": "t", "blobId": "B1"}]})),
        &["textBody/0/blobId", "textBody/0/partId"],
    )
    .await;
    assert_invalid(
        &w,
        base(json!({"textBody": [{"partId": "t", "charset": "latin1", "size": 1}]})),
        &["textBody/0/charset", "textBody/0/size"],
    )
    .await;
    assert_invalid(
        &w,
        base(json!({"textBody": [{"partId": "t", "header:Content-Transfer-Encoding": " base64"}]})),
        &["textBody/0/header:Content-Transfer-Encoding"],
    )
    .await;
    assert_invalid(
        &w,
        base(
            json!({"attachments": [{"blobId": "B1", "cid": "a@b", "header:Content-ID": " <c@d>"}]}),
        ),
        &["attachments/0/header:Content-ID"],
    )
    .await;
    assert_invalid(
        &w,
        base(json!({"attachments": [{"blobId": "B1", "headers": []}]})),
        &["attachments/0/headers"],
    )
    .await;
    assert_invalid(
        &w,
        base(json!({"bodyValues": {"t": {"value": "x", "isTruncated": true}}})),
        &["textBody/0/partId"],
    )
    .await;
    assert_invalid(
        &w,
        base(json!({"subject": "s", "textBody": null,
                    "bodyStructure": {"type": "text/plain", "partId": "t", "header:Subject": " again"}})),
        &["bodyStructure/header:Subject"],
    )
    .await;
    assert_invalid(
        &w,
        base(
            json!({"textBody": null, "bodyStructure": {"type": "multipart/mixed", "subParts": [
            {"partId": "t"}, {"type": "multipart/alternative"}]}}),
        ),
        &["bodyStructure/subParts/1/subParts"],
    )
    .await;
    // Mailboxes: exactly one that exists.
    assert_invalid(&w, base(json!({"mailboxIds": {}})), &["mailboxIds"]).await;
    assert_invalid(
        &w,
        base(json!({"mailboxIds": {"F9999": true}})),
        &["mailboxIds"],
    )
    .await;
    let e = create_error(
        &w,
        base(json!({"mailboxIds": {drafts.clone(): true, mailbox(&w, Role::Inbox).await: true}})),
    )
    .await;
    assert_eq!(e["type"], "tooManyMailboxes", "{e}");
    // Blobs that do not exist (or are not ours) are listed.
    let e = create_error(
        &w,
        base(json!({"attachments": [{"blobId": "B999999"}, {"blobId": "P999999_1"}, {"blobId": "xyz"}]})),
    )
    .await;
    assert_eq!(e["type"], "blobNotFound", "{e}");
    assert_eq!(e["notFound"], json!(["B999999", "P999999_1", "xyz"]));
    let keywords: serde_json::Map<String, Value> = (0..100)
        .map(|i| (format!("k{i}"), Value::Bool(true)))
        .collect();
    let e = create_error(&w, base(json!({"keywords": keywords}))).await;
    assert_eq!(e["type"], "tooManyKeywords", "{e}");

    // Too large for the server.
    let small = jmap_with(&w, |s| s.max_message_size = 300);
    let r = call_on(
        &small,
        &w,
        "Email/set",
        json!({"accountId": w.account_id(), "create": {"k": base(json!({
            "bodyValues": {"t": {"value": "x".repeat(1000)}}}))}}),
    )
    .await;
    assert_eq!(r["notCreated"]["k"]["type"], "tooLarge", "{r}");
    assert_eq!(r["notCreated"]["k"]["maxSize"], 300);

    // Nothing was created by all this.
    for role in [Role::Drafts, Role::Inbox] {
        let m = w.store.mailboxes(w.alice.id).await.unwrap();
        let id = m.iter().find(|m| m.role == Some(role)).unwrap().id;
        assert!(w.store.messages(w.alice.id, id).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn states_creation_references_and_account_checks() {
    let w = World::new().await;
    let drafts = mailbox(&w, Role::Drafts).await;
    let r = w
        .request(json!([
            ["Email/set", {"accountId": w.account_id(), "ifInState": "12345"}, "a"],
            ["Email/set", {"accountId": "Aff", "create": {}}, "b"],
            ["Email/set", {"accountId": w.account_id(), "create": {"d": {
                "mailboxIds": {drafts: true}, "subject": "ref",
                "textBody": [{"partId": "t"}], "bodyValues": {"t": {"value": "x"}}}},
              "update": {"#d": {"keywords/$seen": true}}}, "c"],
            ["Email/get", {"accountId": w.account_id(), "ids": ["#d"],
                           "properties": ["keywords"]}, "d"]
        ]))
        .await;
    let rs = &r["methodResponses"];
    assert_eq!(rs[0][1]["type"], "stateMismatch", "{r}");
    assert_eq!(rs[1][1]["type"], "accountNotFound");
    let set = &rs[2][1];
    let id = set["created"]["d"]["id"].as_str().unwrap();
    assert_eq!(set["updated"], json!({id: null}), "{set}");
    assert_ne!(set["oldState"], set["newState"]);
    assert_eq!(rs[3][1]["list"][0]["keywords"], json!({"$seen": true}));

    // ifInState that matches.
    let state = set["newState"].clone();
    let r = w
        .call(
            "Email/set",
            json!({"accountId": w.account_id(), "ifInState": state, "destroy": [id]}),
        )
        .await;
    assert_eq!(r["oldState"], state);
    assert_eq!(r["destroyed"], json!([id]));
}

#[tokio::test]
async fn copy_needs_another_account_which_nobody_has_here() {
    let w = World::new().await;
    let e = w
        .call_error(
            "Email/copy",
            json!({"fromAccountId": "A99", "accountId": w.account_id(),
                   "create": {"c": {"id": "M1", "mailboxIds": {"F1": true}}}}),
        )
        .await;
    assert_eq!(e, "fromAccountNotFound");
    let e = w
        .call_error(
            "Email/copy",
            json!({"fromAccountId": w.account_id(), "accountId": w.account_id(), "create": {}}),
        )
        .await;
    assert_eq!(e, "invalidArguments");
    let e = w
        .call_error(
            "Email/copy",
            json!({"fromAccountId": w.account_id(), "accountId": "A99", "create": {}}),
        )
        .await;
    assert_eq!(e, "accountNotFound");
}

const EML: &str = "Received: from mx.remote.example by mx.example.com; Tue, 10 Jul 2018 11:05:08 +1000\r\n\
From: Carol <carol@remote.example>\r\n\
To: alice@example.com\r\n\
Subject: Imported\r\n\
Message-ID: <imported@remote.example>\r\n\
Date: Tue, 10 Jul 2018 10:00:00 +1000\r\n\
\r\n\
Hello from the archive.\r\n";

#[tokio::test]
async fn import_stores_uploaded_messages_unchanged() {
    let w = World::new().await;
    let inbox = mailbox(&w, Role::Inbox).await;
    let up = w
        .store
        .upload(w.alice.id, EML.as_bytes().to_vec(), "message/rfc822")
        .await
        .unwrap();
    let png = w
        .store
        .upload(w.alice.id, b"\x89PNG\r\n\x1a\n".to_vec(), "image/png")
        .await
        .unwrap();
    let blob = ids::blob(up.blob_id).to_string();
    let state = w
        .call("Email/get", json!({"accountId": w.account_id(), "ids": []}))
        .await["state"]
        .clone();
    let r = w
        .call(
            "Email/import",
            json!({"accountId": w.account_id(), "ifInState": state, "emails": {
                "a": {"blobId": blob, "mailboxIds": {inbox.clone(): true},
                      "keywords": {"$seen": true}},
                "b": {"blobId": blob, "mailboxIds": {inbox.clone(): true},
                      "receivedAt": "2020-01-01T00:00:00Z"},
                "c": {"blobId": "B999999", "mailboxIds": {inbox.clone(): true}},
                "d": {"blobId": ids::blob(png.blob_id), "mailboxIds": {inbox.clone(): true}},
                "e": {"blobId": blob},
                "f": {"blobId": blob, "mailboxIds": {inbox.clone(): true}, "keywords": {"$seen": 1}},
                "g": {"blobId": blob, "mailboxIds": {inbox.clone(): true}, "bogus": 1},
                "h": {"blobId": "#a", "mailboxIds": {inbox.clone(): true}}
            }}),
        )
        .await;
    assert_eq!(r["oldState"], state);
    let a = &r["created"]["a"];
    let rec = record(&w, &a["id"]).await.unwrap();
    assert_eq!(rec.summary.flags, Flags::SEEN);
    assert_eq!(
        rec.summary.internal_date, 1_531_184_708,
        "receivedAt defaults to the last Received"
    );
    assert_eq!(raw(&w, &a["id"]).await, EML.as_bytes(), "stored unchanged");
    assert_eq!(a["size"], EML.len());
    assert_ne!(a["blobId"], blob.as_str(), "the email has its own blob");
    let b = record(&w, &r["created"]["b"]["id"]).await.unwrap();
    assert_eq!(b.summary.internal_date, 1_577_836_800);
    assert_ne!(
        r["created"]["a"]["id"], r["created"]["b"]["id"],
        "duplicates allowed"
    );
    assert_eq!(r["notCreated"]["c"]["type"], "blobNotFound", "{r}");
    assert_eq!(r["notCreated"]["c"]["notFound"], json!(["B999999"]));
    assert_eq!(r["notCreated"]["d"]["type"], "invalidEmail");
    assert_eq!(r["notCreated"]["e"]["type"], "invalidProperties");
    assert_eq!(r["notCreated"]["e"]["properties"], json!(["mailboxIds"]));
    assert_eq!(r["notCreated"]["f"]["properties"], json!(["keywords"]));
    assert_eq!(r["notCreated"]["g"]["properties"], json!(["bogus"]));
    assert_eq!(
        r["notCreated"]["h"]["properties"],
        json!(["blobId"]),
        "not an Id: {r}"
    );

    // Wrong state; too large; over quota.
    let e = w
        .call_error(
            "Email/import",
            json!({"accountId": w.account_id(), "ifInState": state, "emails": {}}),
        )
        .await;
    assert_eq!(e, "stateMismatch");
    let small = jmap_with(&w, |s| s.max_message_size = 50);
    let r = call_on(
        &small,
        &w,
        "Email/import",
        json!({"accountId": w.account_id(), "emails": {
            "a": {"blobId": blob, "mailboxIds": {inbox.clone(): true}}}}),
    )
    .await;
    assert_eq!(r["notCreated"]["a"]["type"], "tooLarge", "{r}");
    w.store
        .set_quota(&Address::parse("alice@example.com").unwrap(), Some(100))
        .await
        .unwrap();
    let r = w
        .call(
            "Email/import",
            json!({"accountId": w.account_id(), "emails": {
                "a": {"blobId": blob, "mailboxIds": {inbox.clone(): true}}}}),
        )
        .await;
    assert_eq!(r["notCreated"]["a"]["type"], "overQuota", "{r}");
}

#[tokio::test]
async fn parse_reads_uploads_and_attached_messages() {
    let w = World::new().await;
    let up = w
        .store
        .upload(w.alice.id, EML.as_bytes().to_vec(), "message/rfc822")
        .await
        .unwrap();
    let junk = w
        .store
        .upload(w.alice.id, b"not a message at all".to_vec(), "text/plain")
        .await
        .unwrap();
    let blob = ids::blob(up.blob_id).to_string();
    let r = w
        .call(
            "Email/parse",
            json!({"accountId": w.account_id(),
                   "blobIds": [blob, ids::blob(junk.blob_id), "B999999"],
                   "properties": ["subject", "from", "id", "mailboxIds", "textBody", "bodyValues"],
                   "fetchTextBodyValues": true}),
        )
        .await;
    let e = &r["parsed"][&blob];
    assert_eq!(e["subject"], "Imported", "{r}");
    assert_eq!(e["from"][0]["email"], "carol@remote.example");
    assert!(e["id"].is_null() && e["mailboxIds"].is_null());
    let part = e["textBody"][0]["partId"].as_str().unwrap();
    assert_eq!(e["bodyValues"][part]["value"], "Hello from the archive.\n");
    assert_eq!(r["notParsable"], json!([ids::blob(junk.blob_id)]));
    assert_eq!(r["notFound"], json!(["B999999"]));

    // An email carrying the message as an attachment: its part parses too.
    let r = create(
        &w,
        json!({"mailboxIds": {mailbox(&w, Role::Drafts).await: true}, "subject": "Fwd: Imported",
               "textBody": [{"partId": "t"}], "bodyValues": {"t": {"value": "see below"}},
               "attachments": [{"blobId": blob, "type": "message/rfc822", "name": "orig.eml"}]}),
    )
    .await;
    let id = r["created"]["k"]["id"].clone();
    let bytes = raw(&w, &id).await;
    assert!(
        String::from_utf8_lossy(&bytes).contains("Content-Transfer-Encoding: 7bit\r\n"),
        "an attached message is not encoded"
    );
    let got = w
        .call(
            "Email/get",
            json!({"accountId": w.account_id(), "ids": [id], "properties": ["attachments"]}),
        )
        .await;
    let attached = got["list"][0]["attachments"][0]["blobId"].clone();
    assert_eq!(got["list"][0]["attachments"][0]["type"], "message/rfc822");
    let r = w
        .call(
            "Email/parse",
            json!({"accountId": w.account_id(), "blobIds": [attached.clone()],
                   "properties": ["subject", "messageId"]}),
        )
        .await;
    assert_eq!(
        r["parsed"][attached.as_str().unwrap()]["subject"],
        "Imported",
        "{r}"
    );
    assert_eq!(
        r["parsed"][attached.as_str().unwrap()]["messageId"],
        json!(["imported@remote.example"])
    );
    let e = w
        .call_error(
            "Email/parse",
            json!({"accountId": w.account_id(), "blobIds": [blob], "properties": ["header:From:asDate"]}),
        )
        .await;
    assert_eq!(e, "invalidArguments");
}

#[tokio::test]
async fn header_forms_are_written_as_asked() {
    let w = World::new().await;
    let r = create(
        &w,
        json!({
            "mailboxIds": {mailbox(&w, Role::Drafts).await: true},
            "header:To:asGroupedAddresses": [
                {"name": null, "addresses": [{"name": "Bob", "email": "bob@example.com"}]},
                {"name": "Friends", "addresses": [{"email": "carol@remote.example"}]}
            ],
            "header:List-Post:asURLs": ["mailto:list@example.com"],
            "header:X-Tags:asText:all": ["one", "two"],
            "header:X-Raw": " kept\r\n as is",
            "references": ["a@x", "b@x"],
            "bodyStructure": {
                "type": "text/plain", "partId": "b",
                "header:Date:asDate": "2020-02-02T12:00:00-05:00",
                "header:Message-ID:asMessageIds": ["mine@example.com"]
            },
            "bodyValues": {"b": {"value": "body"}}
        }),
    )
    .await;
    let bytes = raw(&w, &r["created"]["k"]["id"]).await;
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert_eq!(
        text.matches("\r\nDate: ").count() + usize::from(text.starts_with("Date: ")),
        1,
        "{text}"
    );
    assert_eq!(text.matches("Message-ID: ").count(), 1, "{text}");
    assert!(
        text.contains("Date: Sun, 02 Feb 2020 12:00:00 -0500\r\n"),
        "{text}"
    );
    assert!(
        text.contains("Message-ID: <mine@example.com>\r\n"),
        "{text}"
    );
    assert!(
        text.contains("List-Post: <mailto:list@example.com>\r\n"),
        "{text}"
    );
    assert!(text.contains("X-Tags: one\r\nX-Tags: two\r\n"), "{text}");
    assert!(text.contains("X-Raw: kept\r\n as is\r\n"), "{text}");
    assert!(text.contains("References: <a@x> <b@x>\r\n"), "{text}");
    let got = w
        .call(
            "Email/get",
            json!({"accountId": w.account_id(), "ids": [r["created"]["k"]["id"]],
                   "properties": ["to", "header:To:asGroupedAddresses", "references"]}),
        )
        .await;
    let e = &got["list"][0];
    assert_eq!(
        e["to"],
        json!([{"name": "Bob", "email": "bob@example.com"},
               {"name": null, "email": "carol@remote.example"}])
    );
    assert_eq!(e["header:To:asGroupedAddresses"][1]["name"], "Friends");
    assert_eq!(e["references"], json!(["a@x", "b@x"]));
}
