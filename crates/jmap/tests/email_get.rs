//! Email/get and Email/changes (RFC 8621 §4.1–4.3): every property on
//! varied messages, the body part lists of §4.1.4, header forms, body
//! values, and real-world and malformed mail from the shared corpus.

#![allow(clippy::unwrap_used)]

mod common;

use common::World;
use pochta_store::{Delivery, DeliveryTarget, FlagChange, Flags, MailboxTarget, Role, Store};
use serde_json::{Value, json};

/// CRLF line ends, as stored mail has.
fn crlf(s: &str) -> Vec<u8> {
    s.replace("\r\n", "\n").replace('\n', "\r\n").into_bytes()
}

/// A stored message: its JMAP ids and the numbers behind them.
#[allow(dead_code)]
struct Put {
    id: String,
    blob: u64,
    thread: String,
    size: u64,
}

/// Stores `raw` in alice's INBOX received at `date`, with flags and keywords.
async fn put(w: &World, raw: &[u8], date: i64, flags: Flags, keywords: &[&str]) -> Put {
    put_in(
        w,
        raw,
        date,
        MailboxTarget::Role(Role::Inbox),
        flags,
        keywords,
    )
    .await
}

async fn put_in(
    w: &World,
    raw: &[u8],
    date: i64,
    mailbox: MailboxTarget,
    flags: Flags,
    keywords: &[&str],
) -> Put {
    let delivered = w
        .store
        .deliver(Delivery {
            raw: raw.to_vec(),
            meta: pochta_message::parse(raw),
            internal_date: date,
            targets: vec![DeliveryTarget {
                account: w.alice.id,
                mailbox,
                flags,
                keywords: keywords.iter().map(|k| (*k).to_string()).collect(),
            }],
            outbound: None,
        })
        .await
        .unwrap();
    let id = delivered[0].id;
    let record = w.store.records(w.alice.id, &[id]).await.unwrap().remove(0);
    Put {
        id: pochta_jmap::ids::email(id).to_string(),
        blob: record.summary.blob_id,
        thread: pochta_jmap::ids::thread(record.summary.thread_id).to_string(),
        size: record.summary.size,
    }
}

async fn inbox(w: &World) -> String {
    let boxes = w.store.mailboxes(w.alice.id).await.unwrap();
    let inbox = boxes.iter().find(|b| b.role == Some(Role::Inbox)).unwrap();
    pochta_jmap::ids::mailbox(inbox.id).to_string()
}

/// Email/get of one email with extra arguments; returns the object.
async fn get_one(w: &World, id: &str, extra: Value) -> Value {
    let mut args = json!({ "accountId": w.account_id(), "ids": [id] });
    for (k, v) in extra.as_object().unwrap() {
        args[k] = v.clone();
    }
    let r = w.call("Email/get", args).await;
    assert_eq!(r["notFound"], json!([]), "{r}");
    r["list"][0].clone()
}

fn part_ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|p| p["partId"].as_str().unwrap().to_string())
        .collect()
}

const PLAIN: &str = "From: \"Joe Bloggs\" <joe@example.com>
Sender: list-bounces@example.com
Reply-To: replies@example.com
To: alice@example.com, \"Bob B.\" <bob@example.com>
Cc: team: carol@example.com, =?UTF-8?Q?D=C3=A1ve?= <dave@example.com>;
Bcc: secret@example.com
Subject: =?UTF-8?Q?Caf=C3=A9?= meeting
Date: Tue, 1 Jul 2003 10:52:37 +0200
Message-ID: <msg1@example.com>
In-Reply-To: <parent@example.com>
References: <root@example.com>
 <parent@example.com>
X-Custom: first
X-Custom: =?ISO-8859-1?Q?second_caf=E9?=
List-Post: <mailto:list@example.com> (Posting)
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Hello Alice,
caf=C3=A9 at noon.=20
See you=
 there.
";

#[tokio::test]
async fn plain_text_default_properties() {
    let w = World::new().await;
    let raw = crlf(PLAIN);
    let m = put(
        &w,
        &raw,
        1_700_000_000,
        Flags::SEEN | Flags::FLAGGED,
        &["Work"],
    )
    .await;
    let inbox = inbox(&w).await;
    let r = w
        .call(
            "Email/get",
            json!({ "accountId": w.account_id(), "ids": [m.id], "fetchTextBodyValues": true }),
        )
        .await;
    let state = w
        .store
        .kind_state(w.alice.id, pochta_store::ObjectKind::Email)
        .await
        .unwrap();
    assert_eq!(r["state"], state.to_string());
    let part = json!({
        "partId": "1",
        "blobId": format!("P{:x}_1", m.blob),
        "size": 47,
        "name": null,
        "type": "text/plain",
        "charset": "utf-8",
        "disposition": null,
        "cid": null,
        "language": null,
        "location": null
    });
    assert_eq!(
        r["list"][0],
        json!({
            "id": m.id,
            "blobId": format!("B{:x}", m.blob),
            "threadId": m.thread,
            "mailboxIds": { inbox: true },
            "keywords": { "$seen": true, "$flagged": true, "work": true },
            "size": raw.len(),
            "receivedAt": "2023-11-14T22:13:20Z",
            "messageId": ["msg1@example.com"],
            "inReplyTo": ["parent@example.com"],
            "references": ["root@example.com", "parent@example.com"],
            "sender": [{ "name": null, "email": "list-bounces@example.com" }],
            "from": [{ "name": "Joe Bloggs", "email": "joe@example.com" }],
            "to": [
                { "name": null, "email": "alice@example.com" },
                { "name": "Bob B.", "email": "bob@example.com" }
            ],
            "cc": [
                { "name": null, "email": "carol@example.com" },
                { "name": "Dáve", "email": "dave@example.com" }
            ],
            "bcc": [{ "name": null, "email": "secret@example.com" }],
            "replyTo": [{ "name": null, "email": "replies@example.com" }],
            "subject": "Café meeting",
            "sentAt": "2003-07-01T10:52:37+02:00",
            "hasAttachment": false,
            "preview": "Hello Alice, café at noon. See you there.",
            "bodyValues": {
                "1": {
                    "value": "Hello Alice,\ncafé at noon. \nSee you there.\n",
                    "isEncodingProblem": false,
                    "isTruncated": false
                }
            },
            "textBody": [part.clone()],
            "htmlBody": [part],
            "attachments": []
        })
    );
    assert_eq!(m.size, raw.len() as u64);
}

#[tokio::test]
async fn header_properties_in_every_form() {
    let w = World::new().await;
    let m = put(&w, &crlf(PLAIN), 1_700_000_000, Flags::NONE, &[]).await;
    let props = [
        "header:X-Custom:all",
        "header:X-Custom:asText:all",
        "header:x-custom",
        "header:SUBJECT:asText",
        "header:Subject",
        "header:From:asAddresses",
        "header:Cc:asGroupedAddresses",
        "header:Cc:asAddresses",
        "header:References:asMessageIds",
        "header:Message-ID:asMessageIds:all",
        "header:Date:asDate",
        "header:List-Post:asURLs",
        "header:X-Missing",
        "header:X-Missing:asText:all",
    ];
    let e = get_one(&w, &m.id, json!({ "properties": props })).await;
    assert_eq!(
        e,
        json!({
            "id": m.id,
            "header:X-Custom:all": [" first", " =?ISO-8859-1?Q?second_caf=E9?="],
            "header:X-Custom:asText:all": ["first", "second café"],
            "header:x-custom": " =?ISO-8859-1?Q?second_caf=E9?=",
            "header:SUBJECT:asText": "Café meeting",
            "header:Subject": " =?UTF-8?Q?Caf=C3=A9?= meeting",
            "header:From:asAddresses": [{ "name": "Joe Bloggs", "email": "joe@example.com" }],
            "header:Cc:asGroupedAddresses": [{
                "name": "team",
                "addresses": [
                    { "name": null, "email": "carol@example.com" },
                    { "name": "Dáve", "email": "dave@example.com" }
                ]
            }],
            "header:Cc:asAddresses": [
                { "name": null, "email": "carol@example.com" },
                { "name": "Dáve", "email": "dave@example.com" }
            ],
            "header:References:asMessageIds": ["root@example.com", "parent@example.com"],
            "header:Message-ID:asMessageIds:all": [["msg1@example.com"]],
            "header:Date:asDate": "2003-07-01T10:52:37+02:00",
            "header:List-Post:asURLs": ["mailto:list@example.com"],
            "header:X-Missing": null,
            "header:X-Missing:asText:all": []
        })
    );

    // The raw header list, folds kept.
    let e = get_one(&w, &m.id, json!({ "properties": ["headers"] })).await;
    let headers = e["headers"].as_array().unwrap();
    assert_eq!(headers.len(), 17);
    assert_eq!(
        headers[0],
        json!({ "name": "From", "value": " \"Joe Bloggs\" <joe@example.com>" })
    );
    assert_eq!(
        headers[10],
        json!({ "name": "References", "value": " <root@example.com>\r\n <parent@example.com>" })
    );

    // Forms forbidden on a field are invalidArguments (RFC 8621 §4.2).
    for bad in [
        "header:From:asDate",
        "header:Subject:asAddresses",
        "header:Date:asURLs",
        "header:To:asText",
        "header:X-A:asText:all:more",
        "header:X-A:asUnknown",
        "nonsense",
    ] {
        let t = w
            .call_error(
                "Email/get",
                json!({ "accountId": w.account_id(), "ids": [m.id], "properties": [bad] }),
            )
            .await;
        assert_eq!(t, "invalidArguments", "{bad}");
    }
    // Any form is allowed on fields RFC 5322 and RFC 2369 do not define.
    let e = get_one(
        &w,
        &m.id,
        json!({ "properties": ["header:X-Custom:asAddresses", "header:X-Custom:asDate", "header:List-Id:asText"] }),
    )
    .await;
    assert_eq!(e["header:X-Custom:asDate"], Value::Null);
    assert_eq!(e["header:List-Id:asText"], Value::Null);
    assert!(e["header:X-Custom:asAddresses"].is_array());
}

const STRUCTURED: &str = "From: a@example.com
To: alice@example.com
Subject: Report
Date: Wed, 2 Jul 2003 08:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=\"outer\"

This is a preamble.
--outer
Content-Type: multipart/alternative; boundary=\"alt\"

--alt
Content-Type: text/plain; charset=us-ascii
Content-Language: en, de

Plain body
--alt
Content-Type: text/html

<p>HTML <b>body</b></p>
--alt--
--outer
Content-Type: application/pdf; name=\"report.pdf\"
Content-Disposition: attachment; filename=\"report.pdf\"
Content-Transfer-Encoding: base64
Content-ID: <pdf@example.com>
Content-Location: https://example.com/report.pdf

JVBERi0xLjQK
--outer
Content-Type: message/rfc822

From: inner@example.com
Subject: Inner

Inner body
--outer--
";

#[tokio::test]
async fn body_structure_and_lists() {
    let w = World::new().await;
    let m = put(&w, &crlf(STRUCTURED), 1_700_000_000, Flags::NONE, &[]).await;
    let blob = |path: &str| format!("P{:x}_{path}", m.blob);
    let e = get_one(
        &w,
        &m.id,
        json!({
            "properties": ["bodyStructure", "textBody", "htmlBody", "attachments", "hasAttachment", "preview"],
            "bodyProperties": ["partId", "blobId", "type", "charset", "name", "disposition", "cid", "language", "location", "subParts"]
        }),
    )
    .await;
    let leaf = |id: &str, t: &str, charset: Value| {
        json!({
            "partId": id, "blobId": blob(&id.replace('.', "-")), "type": t, "charset": charset,
            "name": null, "disposition": null, "cid": null, "language": null, "location": null,
            "subParts": null
        })
    };
    let mut plain = leaf("1.1", "text/plain", json!("us-ascii"));
    plain["language"] = json!(["en", "de"]);
    let html = leaf("1.2", "text/html", json!("us-ascii"));
    let pdf = json!({
        "partId": "2", "blobId": blob("2"), "type": "application/pdf", "charset": null,
        "name": "report.pdf", "disposition": "attachment", "cid": "pdf@example.com",
        "language": null, "location": "https://example.com/report.pdf", "subParts": null
    });
    let message = leaf("3", "message/rfc822", Value::Null);
    assert_eq!(
        e["bodyStructure"],
        json!({
            "partId": null, "blobId": null, "type": "multipart/mixed", "charset": null,
            "name": null, "disposition": null, "cid": null, "language": null, "location": null,
            "subParts": [
                {
                    "partId": null, "blobId": null, "type": "multipart/alternative",
                    "charset": null, "name": null, "disposition": null, "cid": null,
                    "language": null, "location": null,
                    "subParts": [plain, html]
                },
                pdf,
                message
            ]
        })
    );
    // In the flat lists subParts is null (no part there is a multipart).
    assert_eq!(e["textBody"], json!([plain]));
    assert_eq!(e["htmlBody"], json!([html]));
    assert_eq!(e["attachments"], json!([pdf, message]));
    assert_eq!(e["hasAttachment"], true);
    assert_eq!(e["preview"], "Plain body");

    // Sizes are decoded sizes; the attached message is a leaf with its own size.
    let e = get_one(
        &w,
        &m.id,
        json!({ "properties": ["attachments", "textBody"], "bodyProperties": ["partId", "size"] }),
    )
    .await;
    assert_eq!(
        e["attachments"],
        json!([{ "partId": "2", "size": 9 }, { "partId": "3", "size": 53 }])
    );
    assert_eq!(e["textBody"], json!([{ "partId": "1.1", "size": 10 }]));

    // Omitting bodyProperties still nests the structure.
    let e = get_one(&w, &m.id, json!({ "properties": ["bodyStructure"] })).await;
    assert_eq!(
        e["bodyStructure"]["subParts"][0]["subParts"][1]["partId"],
        "1.2"
    );
    assert_eq!(e["bodyStructure"]["subParts"][1]["size"], 9);
    assert!(e["bodyStructure"]["subParts"][1].get("headers").is_none());

    // Part headers and header properties on parts.
    let e = get_one(
        &w,
        &m.id,
        json!({
            "properties": ["attachments"],
            "bodyProperties": ["partId", "headers", "header:Content-Type:asText", "header:content-id:asMessageIds"]
        }),
    )
    .await;
    assert_eq!(
        e["attachments"][0]["headers"][0],
        json!({ "name": "Content-Type", "value": " application/pdf; name=\"report.pdf\"" })
    );
    assert_eq!(e["attachments"][0]["headers"].as_array().unwrap().len(), 5);
    assert_eq!(
        e["attachments"][0]["header:Content-Type:asText"],
        "application/pdf; name=\"report.pdf\""
    );
    assert_eq!(
        e["attachments"][0]["header:content-id:asMessageIds"],
        json!(["pdf@example.com"])
    );
    assert_eq!(
        e["attachments"][1]["headers"][0]["value"],
        " message/rfc822"
    );

    // All text parts' values; the HTML one verbatim.
    let e = get_one(
        &w,
        &m.id,
        json!({ "properties": ["bodyValues"], "fetchAllBodyValues": true }),
    )
    .await;
    assert_eq!(
        e["bodyValues"],
        json!({
            "1.1": { "value": "Plain body", "isEncodingProblem": false, "isTruncated": false },
            "1.2": { "value": "<p>HTML <b>body</b></p>", "isEncodingProblem": false, "isTruncated": false }
        })
    );
    let e = get_one(
        &w,
        &m.id,
        json!({ "properties": ["bodyValues"], "fetchHTMLBodyValues": true }),
    )
    .await;
    assert_eq!(
        e["bodyValues"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["1.2"]
    );
    // bodyValues without a fetch argument is empty.
    let e = get_one(&w, &m.id, json!({ "properties": ["bodyValues"] })).await;
    assert_eq!(e["bodyValues"], json!({}));
}

/// The example of RFC 8621 §4.1.4 (parts named A to K as there).
#[tokio::test]
async fn rfc_8621_body_part_example() {
    let w = World::new().await;
    let raw = "From: list@example.com
Subject: list mail
Content-Type: multipart/mixed; boundary=\"b0\"

--b0
Content-Type: text/plain
Content-Disposition: inline

A
--b0
Content-Type: multipart/mixed; boundary=\"b1\"

--b1
Content-Type: multipart/alternative; boundary=\"b2\"

--b2
Content-Type: multipart/mixed; boundary=\"b3\"

--b3
Content-Type: text/plain
Content-Disposition: inline

B
--b3
Content-Type: image/jpeg
Content-Disposition: inline

C
--b3
Content-Type: text/plain
Content-Disposition: inline

D
--b3--
--b2
Content-Type: multipart/related; boundary=\"b4\"

--b4
Content-Type: text/html

E
--b4
Content-Type: image/jpeg

F
--b4--
--b2--
--b1
Content-Type: image/jpeg
Content-Disposition: attachment

G
--b1
Content-Type: application/x-excel

H
--b1
Content-Type: message/rfc822

Subject: J

J
--b1--
--b0
Content-Type: text/plain
Content-Disposition: inline

K
--b0--
";
    let m = put(&w, &crlf(raw), 1_700_000_000, Flags::NONE, &[]).await;
    let e = get_one(
        &w,
        &m.id,
        json!({
            "properties": ["textBody", "htmlBody", "attachments", "bodyValues"],
            "bodyProperties": ["partId"],
            "fetchTextBodyValues": true
        }),
    )
    .await;
    // textBody => [A, B, C, D, K], htmlBody => [A, E, K],
    // attachments => [C, F, G, H, J]
    assert_eq!(
        part_ids(&e["textBody"]),
        ["1", "2.1.1.1", "2.1.1.2", "2.1.1.3", "3"]
    );
    assert_eq!(part_ids(&e["htmlBody"]), ["1", "2.1.2.1", "3"]);
    assert_eq!(
        part_ids(&e["attachments"]),
        ["2.1.1.2", "2.1.2.2", "2.2", "2.3", "2.4"]
    );
    // Values only for the text parts of textBody (C is an image).
    let values: Vec<(&String, &str)> = e["bodyValues"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k, v["value"].as_str().unwrap()))
        .collect();
    assert_eq!(
        values,
        vec![
            (&"1".to_string(), "A"),
            (&"2.1.1.1".to_string(), "B"),
            (&"2.1.1.3".to_string(), "D"),
            (&"3".to_string(), "K")
        ]
    );
}

#[tokio::test]
async fn alternative_with_only_one_kind_and_related() {
    let w = World::new().await;
    // An alternative with HTML only: the HTML part is the text body too.
    let raw = "Subject: html only
Content-Type: multipart/alternative; boundary=x

--x
Content-Type: text/html

<b>hi</b>
--x--
";
    let m = put(&w, &crlf(raw), 1, Flags::NONE, &[]).await;
    let e = get_one(
        &w,
        &m.id,
        json!({ "properties": ["textBody", "htmlBody", "attachments"], "bodyProperties": ["partId"] }),
    )
    .await;
    assert_eq!(part_ids(&e["textBody"]), ["1"]);
    assert_eq!(part_ids(&e["htmlBody"]), ["1"]);
    assert_eq!(e["attachments"], json!([]));

    // Related HTML with an inline image; a named text file after the body is
    // an attachment.
    let raw = "Subject: related
Content-Type: multipart/mixed; boundary=m

--m
Content-Type: multipart/related; boundary=r

--r
Content-Type: text/html

<img src=\"cid:logo\">
--r
Content-Type: image/png
Content-ID: <logo>

PNG
--r--
--m
Content-Type: text/plain; name=notes.txt

notes
--m--
";
    let m = put(&w, &crlf(raw), 1, Flags::NONE, &[]).await;
    let e = get_one(
        &w,
        &m.id,
        json!({ "properties": ["textBody", "htmlBody", "attachments"], "bodyProperties": ["partId", "cid", "name"] }),
    )
    .await;
    assert_eq!(part_ids(&e["textBody"]), ["1.1"]);
    assert_eq!(part_ids(&e["htmlBody"]), ["1.1"]);
    assert_eq!(
        e["attachments"],
        json!([
            { "partId": "1.2", "cid": "logo", "name": null },
            { "partId": "2", "cid": null, "name": "notes.txt" }
        ])
    );
}

#[tokio::test]
async fn charsets_and_encoding_problems() {
    let w = World::new().await;
    let mut raw = crlf(
        "From: =?Shift_JIS?B?k/qWe4zq?= <jp@example.jp>
Subject: =?ISO-8859-1?Q?Gr=FC=DFe?= =?Shift_JIS?B?k/qWe4zq?=
X-Latin: caf\u{0}
Content-Type: multipart/mixed; boundary=cs

--cs
Content-Type: text/plain; charset=ISO-8859-1
Content-Transfer-Encoding: quoted-printable

caf=E9 cr=E8me
--cs
Content-Type: text/plain; charset=Shift_JIS
Content-Transfer-Encoding: base64

k/qWe4zqgsyDZYNMg1iDZw==
--cs
Content-Type: text/plain; charset=x-no-such-charset

hello
--cs
Content-Type: text/plain; charset=utf-8

bad \u{1}
--cs
Content-Type: text/plain

unlabelled \u{2}
--cs--
",
    );
    // Raw 8-bit octets where the test text has placeholders: a Latin-1 é in
    // a header, an invalid UTF-8 octet, and Latin-1 in an unlabelled part.
    for (placeholder, byte) in [(0u8, 0xe9u8), (1, 0xff), (2, 0xe9)] {
        let at = raw.iter().position(|&b| b == placeholder).unwrap();
        raw[at] = byte;
    }
    let m = put(&w, &raw, 1, Flags::NONE, &[]).await;
    let mut e = get_one(
        &w,
        &m.id,
        json!({
            "properties": ["from", "subject", "header:X-Latin", "bodyValues", "textBody"],
            "bodyProperties": ["partId", "charset", "size"],
            "fetchAllBodyValues": true
        }),
    )
    .await;
    // Multi-byte charsets: the workspace turns on mail-parser's `full_encoding`.
    assert_eq!(
        e["from"],
        json!([{ "name": "日本語", "email": "jp@example.jp" }])
    );
    assert_eq!(e["subject"], "Grüße日本語");
    assert_eq!(
        e["bodyValues"]["2"],
        json!({ "value": "日本語のテキスト", "isEncodingProblem": false, "isTruncated": false })
    );
    assert_eq!(e["header:X-Latin"], " caf\u{fffd}");
    e["bodyValues"]["2"] = Value::Null;
    assert_eq!(
        e["bodyValues"],
        json!({
            "1": { "value": "café crème", "isEncodingProblem": false, "isTruncated": false },
            "2": null,
            "3": { "value": "hello", "isEncodingProblem": true, "isTruncated": false },
            "4": { "value": "bad \u{fffd}", "isEncodingProblem": true, "isTruncated": false },
            "5": { "value": "unlabelled é", "isEncodingProblem": true, "isTruncated": false }
        })
    );
    assert_eq!(
        e["textBody"],
        json!([
            { "partId": "1", "charset": "ISO-8859-1", "size": 10 },
            { "partId": "2", "charset": "Shift_JIS", "size": 16 },
            { "partId": "3", "charset": "x-no-such-charset", "size": 5 },
            { "partId": "4", "charset": "utf-8", "size": 5 },
            { "partId": "5", "charset": "us-ascii", "size": 12 }
        ])
    );
}

#[tokio::test]
async fn body_value_truncation() {
    let w = World::new().await;
    let raw = "Subject: long
Content-Type: multipart/alternative; boundary=t

--t
Content-Type: text/plain; charset=utf-8

ab\u{e9}cd
--t
Content-Type: text/html; charset=utf-8

<p>one</p><a href=\"https://example.com\">link</a>
--t--
";
    let m = put(&w, &crlf(raw), 1, Flags::NONE, &[]).await;
    let values = |max: u64| {
        let w = &w;
        let id = m.id.clone();
        async move {
            get_one(
                w,
                &id,
                json!({
                    "properties": ["bodyValues"],
                    "fetchAllBodyValues": true,
                    "maxBodyValueBytes": max
                }),
            )
            .await["bodyValues"]
                .clone()
        }
    };
    // "é" is two octets: a limit of 3 cuts before it, 4 after it.
    let v = values(3).await;
    assert_eq!(
        v["1"],
        json!({ "value": "ab", "isEncodingProblem": false, "isTruncated": true })
    );
    assert_eq!(values(4).await["1"]["value"], "ab\u{e9}");
    assert_eq!(values(6).await["1"]["isTruncated"], false);
    // HTML is not cut inside a tag.
    assert_eq!(
        values(20).await["2"],
        json!({ "value": "<p>one</p>", "isEncodingProblem": false, "isTruncated": true })
    );
    assert_eq!(values(0).await["2"]["isTruncated"], false);
}

#[tokio::test]
async fn missing_fields_groups_and_deleted() {
    let w = World::new().await;
    let raw = "From: Group: ;
To: undisclosed-recipients:;
Subject:
X-Note: no date and no Message-ID

Body.
";
    let m = put(
        &w,
        &crlf(raw),
        1,
        Flags::DELETED | Flags::DRAFT,
        &["$Forwarded"],
    )
    .await;
    let e = get_one(
        &w,
        &m.id,
        json!({
            "properties": [
                "messageId", "inReplyTo", "references", "from", "to", "cc", "subject",
                "sentAt", "keywords", "header:To:asGroupedAddresses", "header:To:asAddresses",
                "textBody"
            ],
            "bodyProperties": ["partId", "type", "charset"]
        }),
    )
    .await;
    assert_eq!(
        e,
        json!({
            "id": m.id,
            "messageId": null,
            "inReplyTo": null,
            "references": null,
            "from": null,
            "to": null,
            "cc": null,
            "subject": "",
            "sentAt": null,
            // \Deleted is exposed as $deleted (see email/get.rs).
            "keywords": { "$draft": true, "$deleted": true, "$forwarded": true },
            "header:To:asGroupedAddresses": [{ "name": "undisclosed-recipients", "addresses": [] }],
            "header:To:asAddresses": [],
            "textBody": [{ "partId": "1", "type": "text/plain", "charset": "us-ascii" }]
        })
    );
}

#[tokio::test]
async fn ids_properties_and_errors() {
    let w = World::new().await;
    let a = put(&w, &crlf("Subject: a\n\nA\n"), 1, Flags::NONE, &[]).await;
    let b = put(&w, &crlf("Subject: b\n\nB\n"), 2, Flags::NONE, &[]).await;
    // ids null: every email; properties []: id only.
    let r = w
        .call(
            "Email/get",
            json!({ "accountId": w.account_id(), "ids": null, "properties": [] }),
        )
        .await;
    assert_eq!(r["list"], json!([{ "id": a.id }, { "id": b.id }]));
    // Unknown and malformed ids are notFound; duplicates are answered once.
    let r = w
        .call(
            "Email/get",
            json!({
                "accountId": w.account_id(),
                "ids": [b.id, "M999", "not-an-email", b.id],
                "properties": ["subject", "id"]
            }),
        )
        .await;
    assert_eq!(r["list"], json!([{ "id": b.id, "subject": "b" }]));
    assert_eq!(r["notFound"], json!(["M999", "not-an-email"]));

    for (args, error) in [
        (
            json!({ "ids": [a.id], "properties": ["nope"] }),
            "invalidArguments",
        ),
        (
            json!({ "ids": [a.id], "bodyProperties": ["nope"] }),
            "invalidArguments",
        ),
        (
            json!({ "ids": [a.id], "fetchAllBodyValue": true }),
            "invalidArguments",
        ),
        (
            json!({ "ids": [a.id], "maxBodyValueBytes": -1 }),
            "invalidArguments",
        ),
        (
            json!({ "ids": [a.id], "accountId": "A999" }),
            "accountNotFound",
        ),
    ] {
        let mut full = json!({ "accountId": w.account_id() });
        for (k, v) in args.as_object().unwrap() {
            full[k] = v.clone();
        }
        assert_eq!(w.call_error("Email/get", full).await, error, "{args}");
    }
}

#[tokio::test]
async fn delivered_mail_has_trace_headers() {
    let w = World::new().await;
    w.deliver("From: Bob <bob@remote.example>\nTo: alice@example.com\nSubject: via SMTP\nDate: Thu, 3 Jul 2003 12:00:00 -0500\n\nHi Alice\n")
        .await;
    let r = w
        .call(
            "Email/get",
            json!({
                "accountId": w.account_id(),
                "ids": null,
                "properties": ["subject", "sentAt", "header:Return-Path", "header:Received:all", "preview", "size", "blobId"]
            }),
        )
        .await;
    let e = &r["list"][0];
    assert_eq!(e["subject"], "via SMTP");
    assert_eq!(e["sentAt"], "2003-07-03T12:00:00-05:00");
    assert_eq!(e["header:Return-Path"], " <sender@remote.example>");
    assert_eq!(e["header:Received:all"].as_array().unwrap().len(), 1);
    assert_eq!(e["preview"], "Hi Alice");
    let blob = e["blobId"].as_str().unwrap();
    let blob = u64::from_str_radix(blob.strip_prefix('B').unwrap(), 16).unwrap();
    let raw = w.store.read_blob(w.alice.id, blob).await.unwrap();
    assert_eq!(e["size"], raw.len());
}

#[tokio::test]
async fn changes_follow_the_store() {
    let w = World::new().await;
    let state0 = w
        .call(
            "Email/get",
            json!({ "accountId": w.account_id(), "ids": [] }),
        )
        .await["state"]
        .as_str()
        .unwrap()
        .to_string();
    let a = put(&w, &crlf("Subject: a\n\nA\n"), 1, Flags::NONE, &[]).await;
    let b = put(&w, &crlf("Subject: b\n\nB\n"), 2, Flags::NONE, &[]).await;
    let changes = |since: String, max: Option<u64>| {
        let w = &w;
        async move {
            let mut args = json!({ "accountId": w.account_id(), "sinceState": since });
            if let Some(max) = max {
                args["maxChanges"] = json!(max);
            }
            w.call("Email/changes", args).await
        }
    };
    let r = changes(state0.clone(), None).await;
    assert_eq!(r["created"], json!([a.id, b.id]));
    assert_eq!(r["updated"], json!([]));
    assert_eq!(r["destroyed"], json!([]));
    assert_eq!(r["hasMoreChanges"], false);
    assert_eq!(r["oldState"], state0);
    let state1 = r["newState"].as_str().unwrap().to_string();

    // Paged.
    let r = changes(state0.clone(), Some(1)).await;
    assert_eq!(r["created"], json!([a.id]));
    assert_eq!(r["hasMoreChanges"], true);
    let r = changes(r["newState"].as_str().unwrap().to_string(), Some(1)).await;
    assert_eq!(r["created"], json!([b.id]));
    assert_eq!(r["newState"], state1);

    // A flag change and an expunge.
    let num = |id: &str| u64::from_str_radix(id.strip_prefix('M').unwrap(), 16).unwrap();
    w.store
        .update_flags(
            w.alice.id,
            &[num(&a.id)],
            FlagChange::Add(Flags::SEEN, vec![]),
        )
        .await
        .unwrap();
    w.store.expunge(w.alice.id, &[num(&b.id)]).await.unwrap();
    let r = changes(state1.clone(), None).await;
    assert_eq!(r["created"], json!([]));
    assert_eq!(r["updated"], json!([a.id]));
    assert_eq!(r["destroyed"], json!([b.id]));
    let r = w
        .call(
            "Email/get",
            json!({ "accountId": w.account_id(), "ids": [a.id, b.id], "properties": ["keywords"] }),
        )
        .await;
    assert_eq!(
        r["list"],
        json!([{ "id": a.id, "keywords": { "$seen": true } }])
    );
    assert_eq!(r["notFound"], json!([b.id]));

    // States that are not ours.
    for bad in ["x", "99999999", "-1"] {
        let t = w
            .call_error(
                "Email/changes",
                json!({ "accountId": w.account_id(), "sinceState": bad }),
            )
            .await;
        assert_eq!(t, "cannotCalculateChanges", "{bad}");
    }
    let t = w
        .call_error(
            "Email/changes",
            json!({ "accountId": w.account_id(), "sinceState": state0, "maxChanges": 0 }),
        )
        .await;
    assert_eq!(t, "invalidArguments");

    // Once the log is pruned, older states cannot be followed; the current one can.
    let now = w
        .call(
            "Email/get",
            json!({ "accountId": w.account_id(), "ids": [] }),
        )
        .await["state"]
        .as_str()
        .unwrap()
        .to_string();
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(w.store.prune_change_log(at, at).await.unwrap() > 0);
    for (method, old) in [
        ("Email/changes", state1.clone()),
        ("Mailbox/changes", state1.clone()),
        ("Thread/changes", state1.clone()),
        ("Identity/changes", "0".to_string()),
    ] {
        let t = w
            .call_error(
                method,
                json!({ "accountId": w.account_id(), "sinceState": old }),
            )
            .await;
        assert_eq!(t, "cannotCalculateChanges", "{method}");
    }
    let t = w
        .call_error(
            "Email/queryChanges",
            json!({ "accountId": w.account_id(), "sinceQueryState": state1 }),
        )
        .await;
    assert_eq!(t, "cannotCalculateChanges");
    let r = changes(now.clone(), None).await;
    assert_eq!(r["created"], json!([]));
    assert_eq!(r["newState"], now);
    w.deliver(MSG_NEW).await;
    let r = changes(now, None).await;
    assert_eq!(r["created"].as_array().unwrap().len(), 1, "{r}");
}

const MSG_NEW: &str = "From: x@example.org\r\nSubject: after the prune\r\n\r\nnew\r\n";

/// Every property of every message of the shared corpus (real-world and
/// malformed mail): Email/get never fails and every property is there.
#[tokio::test]
async fn corpus_messages_render() {
    let root = std::path::Path::new("/work/shared/corpora/eml");
    if !root.exists() {
        eprintln!("skipped: no corpus at {}", root.display());
        return;
    }
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(files.len() > 50);
    let w = World::new().await;
    let mut ids = Vec::new();
    for file in &files {
        let raw = std::fs::read(file).unwrap();
        ids.push((put(&w, &raw, 1, Flags::NONE, &[]).await.id, file.clone()));
    }
    let properties = [
        "id",
        "blobId",
        "threadId",
        "mailboxIds",
        "keywords",
        "size",
        "receivedAt",
        "messageId",
        "inReplyTo",
        "references",
        "sender",
        "from",
        "to",
        "cc",
        "bcc",
        "replyTo",
        "subject",
        "sentAt",
        "hasAttachment",
        "preview",
        "bodyStructure",
        "textBody",
        "htmlBody",
        "attachments",
        "bodyValues",
        "headers",
        "header:Subject:asText",
        "header:From:asGroupedAddresses",
        "header:Date:asDate",
        "header:Message-ID:asMessageIds",
        "header:List-Unsubscribe:asURLs:all",
    ];
    let body_properties = [
        "partId",
        "blobId",
        "size",
        "headers",
        "name",
        "type",
        "charset",
        "disposition",
        "cid",
        "language",
        "location",
        "subParts",
        "header:Content-Type:asText",
    ];
    for chunk in ids.chunks(20) {
        let list: Vec<&str> = chunk.iter().map(|(id, _)| id.as_str()).collect();
        let r = w
            .call(
                "Email/get",
                json!({
                    "accountId": w.account_id(),
                    "ids": list,
                    "properties": properties,
                    "bodyProperties": body_properties,
                    "fetchAllBodyValues": true,
                    "maxBodyValueBytes": 1000
                }),
            )
            .await;
        assert_eq!(r["notFound"], json!([]));
        for (e, (_, file)) in r["list"].as_array().unwrap().iter().zip(chunk) {
            for p in properties {
                assert!(e.get(p).is_some(), "{}: {p} missing", file.display());
            }
            assert!(e["preview"].as_str().unwrap().len() <= 255);
            assert!(e["bodyStructure"]["type"].is_string(), "{}", file.display());
            for v in e["bodyValues"].as_object().unwrap().values() {
                assert!(
                    v["value"].as_str().unwrap().len() <= 1000,
                    "{}",
                    file.display()
                );
            }
        }
    }
}

/// The light path (Email/get of properties `MessageMeta::light` holds reads
/// the light metadata only) renders exactly what the full path does: the
/// same request plus `preview`, which forces the full metadata, gives the
/// same bytes for every other property, on varied messages (encoded words,
/// groups, missing fields, attachments, a message id asked twice, one
/// unknown).
#[tokio::test]
async fn light_path_renders_as_the_full_one() {
    let w = World::new().await;
    let attachment = "From: a@example.com
To: b@example.com
Subject: with attachment
Date: Wed, 2 Jul 2003 01:02:03 -0700
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=b

--b
Content-Type: text/plain

See attached.
--b
Content-Type: application/pdf; name=x.pdf
Content-Disposition: attachment; filename=x.pdf
Content-Transfer-Encoding: base64

JVBERi0=
--b--
";
    let missing = "From: Group: ;
To: undisclosed-recipients:;
Subject:

Body.
";
    let mut ids = Vec::new();
    for (raw, flags, keywords) in [
        (PLAIN, Flags::SEEN | Flags::FLAGGED, &["Work"][..]),
        (attachment, Flags::NONE, &[][..]),
        (missing, Flags::DELETED | Flags::DRAFT, &["$Forwarded"][..]),
        ("Subject: plain\n\nA\n", Flags::ANSWERED, &[][..]),
    ] {
        ids.push(put(&w, &crlf(raw), 1_700_000_000, flags, keywords).await.id);
    }
    ids.push(ids[0].clone());
    ids.push("Mffffffff".to_string());
    let light = [
        "id",
        "blobId",
        "threadId",
        "mailboxIds",
        "keywords",
        "size",
        "receivedAt",
        "messageId",
        "inReplyTo",
        "references",
        "sender",
        "from",
        "to",
        "cc",
        "bcc",
        "replyTo",
        "subject",
        "sentAt",
        "hasAttachment",
    ];
    let mut full: Vec<&str> = light.to_vec();
    full.push("preview");
    let get = |properties: Vec<&'static str>| {
        let args = json!({ "accountId": w.account_id(), "ids": ids, "properties": properties });
        let w = &w;
        async move { w.call("Email/get", args).await }
    };
    let by_light = get(light.to_vec()).await;
    let mut by_full = get(full).await;
    for e in by_full["list"].as_array_mut().unwrap() {
        assert!(e["preview"].is_string(), "{e}");
        e.as_object_mut().unwrap().remove("preview");
    }
    assert_eq!(by_light["list"].as_array().unwrap().len(), 4, "{by_light}");
    assert_eq!(
        serde_json::to_string(&by_light).unwrap(),
        serde_json::to_string(&by_full).unwrap()
    );
    assert_eq!(by_light["list"][1]["hasAttachment"], true);
    assert_eq!(by_light["list"][0]["subject"], "Café meeting");
}
