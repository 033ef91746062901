//! End-to-end JMAP mail with a real JMAP client: the `jmap-client` crate
//! against the real binary over HTTPS (self-signed certificate). One server
//! and one flow, in the order a mail program works: the session, the mailbox
//! list and its roles, the newest mail with its bodies and attachment, a
//! keyword, the attachment downloaded byte for byte, push (EventSource and
//! WebSocket) for mail arriving over SMTP, and a draft sent with
//! EmailSubmission to a local user (it arrives in their INBOX) and to a remote
//! one (it waits in the relay queue: the route points to a closed port).
//!
//! The cross-protocol checks (IMAP, POP3 and SMTP changes seen through
//! /changes, and the other way round) are in `tests/cross_protocol.rs`.

#![allow(clippy::unwrap_used)] // helpers assert by unwrapping, like the tests they serve

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use jmap_client::client::{Client, Credentials};
use jmap_client::client_ws::WebSocketMessage;
use jmap_client::core::set::SetObject;
use jmap_client::email::{self, EmailBodyPart};
use jmap_client::event_source::PushNotification;
use jmap_client::mailbox::Role;
use jmap_client::{DataType, PushObject, URI};

const USER: &str = "alice@localhost";
const LOCAL: &str = "bob@localhost";
const REMOTE: &str = "carol@remote.test";

/// The attachment's bytes: not text, so a transfer-decoding slip shows.
const ATTACHMENT: [u8; 16] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa,
];

fn multipart_message() -> Vec<u8> {
    b"From: Bob <bob@example.org>\r\n\
To: alice@localhost\r\n\
Subject: with an attachment\r\n\
Message-ID: <parts@example.org>\r\n\
Date: Mon, 2 Mar 2026 10:00:00 +0000\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Voil=C3=A0 the file.\r\n\
--b1\r\n\
Content-Type: application/octet-stream; name=\"data.bin\"\r\n\
Content-Disposition: attachment; filename=\"data.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
AAECAwQFBgcICf/+/fz7+g==\r\n\
--b1--\r\n"
        .to_vec()
}

fn simple_message(subject: &str) -> Vec<u8> {
    format!(
        "From: Dave <dave@example.org>\r\nTo: {USER}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@example.org>\r\n\r\nhello\r\n"
    )
    .into_bytes()
}

/// A port nothing listens on: the relay's connections are refused, so remote
/// mail stays in the queue.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

async fn connect(server: &Server, user: &str) -> Client {
    Client::new()
        .credentials(Credentials::basic(user, PASSWORD))
        .accept_invalid_certs(true)
        .timeout(Duration::from_secs(10))
        .connect(&format!("https://127.0.0.1:{}", server.ports.http))
        .await
        .unwrap_or_else(|e| panic!("jmap-client connect as {user}: {e}"))
}

/// Delivers over SMTP from a blocking thread (the harness drives Python).
async fn deliver_smtp(server: &Server, to: &str, msg: Vec<u8>) {
    let port = server.ports.smtp;
    let dir = server.dir.path().to_path_buf();
    let to = to.to_string();
    tokio::task::spawn_blocking(move || {
        let file = write_file(&dir, &format!("push-{}.eml", std::process::id()), &msg);
        let r = json(&python(&[
            "send",
            "--port",
            &port.to_string(),
            "--from",
            "sender@remote.example",
            "--to",
            &to,
            "--file",
            file.to_str().unwrap(),
        ]));
        assert_eq!(r["ok"], true, "delivery failed: {r}");
    })
    .await
    .unwrap();
}

/// The ids of the mailboxes with each role, by name.
async fn mailbox_roles(client: &Client) -> Vec<(Role, String, String)> {
    let mut request = client.build();
    request.get_mailbox();
    let mut boxes = request.send_get_mailbox().await.unwrap();
    boxes
        .take_list()
        .into_iter()
        .map(|m| {
            (
                m.role(),
                m.name().unwrap_or_default().to_string(),
                m.id().unwrap().to_string(),
            )
        })
        .collect()
}

fn role_id(boxes: &[(Role, String, String)], role: Role) -> String {
    boxes
        .iter()
        .find(|(r, _, _)| *r == role)
        .unwrap_or_else(|| panic!("no mailbox with role {role:?}: {boxes:?}"))
        .2
        .clone()
}

/// The ids in a mailbox, newest first.
async fn ids_in(client: &Client, mailbox: &str) -> Vec<String> {
    client
        .email_query(
            Some(email::query::Filter::in_mailbox(mailbox)),
            Some([email::query::Comparator::received_at().descending()]),
        )
        .await
        .unwrap()
        .take_ids()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_client_mail_flow() {
    let extra = format!(
        "[relay.routes]\n\"remote.test\" = \"127.0.0.1:{}\"\n\n[queue]\nretry = \"1h\"\n",
        closed_port()
    );
    let server = Server::start_with(&extra);
    server.add_user(USER);
    server.add_user(LOCAL);
    server.deliver(USER, &simple_message("older"));
    server.deliver(USER, &multipart_message());

    // The session, as jmap-client reads it.
    let client = connect(&server, USER).await;
    let session = client.session();
    assert_eq!(session.username(), USER);
    for uri in [URI::Core, URI::Mail, URI::Submission, URI::WebSocket] {
        assert!(
            session.capabilities().any(|c| c == uri.as_ref()),
            "{uri:?} missing"
        );
    }
    let account = client.default_account_id().to_string();
    assert!(account.starts_with('A'), "{account}");

    // The mailbox list: the special-use mailboxes have their roles.
    let boxes = mailbox_roles(&client).await;
    let inbox = role_id(&boxes, Role::Inbox);
    let drafts = role_id(&boxes, Role::Drafts);
    let sent = role_id(&boxes, Role::Sent);
    let trash = role_id(&boxes, Role::Trash);
    let junk = role_id(&boxes, Role::Junk);
    assert_eq!(
        [&inbox, &drafts, &sent, &trash, &junk]
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        5,
        "distinct mailboxes: {boxes:?}"
    );
    let inbox_name = &boxes.iter().find(|b| b.2 == inbox).unwrap().1;
    assert_eq!(inbox_name, "INBOX", "the IMAP name");

    // Email/query + Email/get with the bodies. Both arrived within the same
    // second: equal receivedAt, so the query's order between them is the
    // tie-break's (by id), not the arrival's; pick the multipart by subject.
    let ids = ids_in(&client, &inbox).await;
    assert_eq!(ids.len(), 2, "{ids:?}");
    let subject = client.email_query(
        Some(email::query::Filter::subject("attachment")),
        None::<Vec<_>>,
    );
    let ids = subject.await.unwrap().take_ids();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let mut request = client.build();
    let get = request.get_email().ids([ids[0].as_str()]).properties([
        email::Property::Subject,
        email::Property::From,
        email::Property::TextBody,
        email::Property::Attachments,
        email::Property::BodyValues,
        email::Property::HasAttachment,
        email::Property::Keywords,
        email::Property::Preview,
        email::Property::Size,
    ]);
    get.arguments().fetch_text_body_values(true);
    let mut got = request.send_get_email().await.unwrap();
    let newest = got.take_list().pop().expect("the newest email");
    assert_eq!(newest.subject(), Some("with an attachment"));
    assert_eq!(newest.from().unwrap()[0].email(), "bob@example.org");
    assert_eq!(newest.from().unwrap()[0].name(), Some("Bob"));
    assert!(newest.has_attachment());
    assert_eq!(newest.preview(), Some("Voilà the file."));
    let text = &newest.text_body().unwrap()[0];
    assert_eq!(text.content_type(), Some("text/plain"));
    let value = newest.body_value(text.part_id().unwrap()).unwrap();
    assert_eq!(value.value().trim_end(), "Voilà the file.");
    assert!(!value.is_truncated() && !value.is_encoding_problem());
    let attachments = newest.attachments().unwrap();
    assert_eq!(attachments.len(), 1);
    let attachment = &attachments[0];
    assert_eq!(attachment.name(), Some("data.bin"));
    assert_eq!(attachment.content_type(), Some("application/octet-stream"));
    assert_eq!(attachment.size(), ATTACHMENT.len(), "the decoded size");
    assert!(newest.keywords().is_empty(), "{:?}", newest.keywords());

    // The attachment blob, byte for byte (transfer encoding undone).
    let bytes = client
        .download(attachment.blob_id().unwrap())
        .await
        .unwrap();
    assert_eq!(bytes, ATTACHMENT);

    // Keywords: set two, clear one.
    client
        .email_set_keyword(&ids[0], "$flagged", true)
        .await
        .unwrap();
    client
        .email_set_keyword(&ids[0], "$seen", true)
        .await
        .unwrap();
    client
        .email_set_keyword(&ids[0], "$flagged", false)
        .await
        .unwrap();
    let e = client
        .email_get(&ids[0], Some([email::Property::Keywords]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.keywords(), ["$seen"]);

    push_for_new_mail(&server, &client).await;
    send_a_draft(&server, &client, &drafts, &sent).await;
}

/// A StateChange for Email within two seconds of an SMTP delivery: over
/// EventSource, then over a WebSocket.
async fn push_for_new_mail(server: &Server, client: &Client) {
    let account = client.default_account_id().to_string();
    let mut request = client.build();
    request.get_email().ids(Vec::<String>::new());
    let state = request.send_get_email().await.unwrap().state().to_string();

    let mut events = client
        .event_source(
            Some([DataType::Email, DataType::Mailbox]),
            false,
            None,
            None,
        )
        .await
        .unwrap();
    deliver_smtp(server, USER, simple_message("pushed")).await;
    let deadline = Instant::now() + Duration::from_secs(2);
    let changed = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let next = tokio::time::timeout(left, events.next())
            .await
            .expect("an EventSource StateChange for Email within 2 s of the delivery")
            .expect("the stream is open")
            .unwrap();
        let PushNotification::StateChange(mut changes) = next else {
            continue;
        };
        if let Some(c) = changes.account_changes(&account)
            && let Some(s) = c.get(&DataType::Email)
            && *s != state
        {
            break s.clone();
        }
    };
    // The pushed state is the one Email/changes reports, with the new mail.
    let changes = client.email_changes(&state, None).await.unwrap();
    assert_eq!(changes.new_state(), changed);
    assert_eq!(changes.created().len(), 1, "{:?}", changes.created());
    let pushed_id = changes.created()[0].clone();
    let e = client
        .email_get(&pushed_id, Some([email::Property::Subject]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.subject(), Some("pushed"));
    drop(events);

    // The same over a WebSocket (RFC 8887).
    let mut ws = client.connect_ws().await.unwrap();
    client
        .enable_push_ws(Some([DataType::Email]), None::<String>)
        .await
        .unwrap();
    // The enable must be processed before the delivery: a round trip on the
    // same socket orders it.
    let mut echo = client.build();
    echo.get_mailbox().ids(["none"]);
    echo.send_ws().await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(answer, WebSocketMessage::Response(_)));
    deliver_smtp(server, USER, simple_message("pushed-ws")).await;
    let next = tokio::time::timeout(Duration::from_secs(2), ws.next())
        .await
        .expect("a WebSocket StateChange within 2 s of the delivery")
        .unwrap()
        .unwrap();
    let WebSocketMessage::PushNotification(PushObject::StateChange { changed }) = next else {
        panic!("not a StateChange: {next:?}");
    };
    let new_state = changed[&account][&DataType::Email].clone();
    assert_ne!(new_state, changes.new_state());
    assert!(
        !changed[&account].contains_key(&DataType::Identity),
        "only the types that moved: {changed:?}"
    );
    let changes = client
        .email_changes(changes.new_state(), None)
        .await
        .unwrap();
    assert_eq!(changes.new_state(), new_state);
    assert_eq!(changes.created().len(), 1);
}

/// A draft with an uploaded attachment, sent to a local and a remote
/// recipient with `onSuccessUpdateEmail` moving it from Drafts to Sent.
async fn send_a_draft(server: &Server, client: &Client, drafts: &str, sent: &str) {
    let upload = client
        .upload(None, ATTACHMENT.to_vec(), Some("application/octet-stream"))
        .await
        .unwrap();

    let mut request = client.build();
    request.add_capability(URI::Submission);
    request.get_identity();
    let identities = request.send_get_identity().await.unwrap();
    let identity = identities
        .list()
        .iter()
        .find(|i| i.email() == Some(USER))
        .unwrap_or_else(|| panic!("an identity for {USER}: {:?}", identities.list()))
        .id()
        .unwrap()
        .to_string();

    let mut request = client.build();
    let draft = request.set_email().create();
    draft
        .mailbox_ids([drafts])
        .keywords(["$draft", "$seen"])
        .from([USER])
        .to([LOCAL, REMOTE])
        .subject("a draft, then sent")
        .text_body(EmailBodyPart::new().part_id("t").content_type("text/plain"))
        .body_value("t".to_string(), "Hello Bob and Carol.\r\nAttached.\r\n")
        .attachment(
            EmailBodyPart::new()
                .blob_id(upload.blob_id())
                .name("data.bin")
                .content_type("application/octet-stream"),
        );
    let draft_ref = draft.create_id().unwrap();
    let mut created = request.send_set_email().await.unwrap();
    let draft_id = created.created(&draft_ref).unwrap().take_id();

    let mut request = client.build();
    let submission = request.set_email_submission();
    let sub_ref = submission
        .create()
        .email_id(&draft_id)
        .identity_id(&identity)
        .create_id()
        .unwrap();
    submission
        .arguments()
        .on_success_update_email(&sub_ref)
        .mailbox_id(drafts, false)
        .mailbox_id(sent, true)
        .keyword("$draft", false);
    let response = request.send().await.unwrap();
    let mut responses = response.unwrap_method_responses();
    assert_eq!(
        responses.len(),
        2,
        "EmailSubmission/set and the implicit Email/set"
    );
    let mut email_set = responses.pop().unwrap().unwrap_set_email().unwrap();
    let mut submission_set = responses
        .pop()
        .unwrap()
        .unwrap_set_email_submission()
        .unwrap();
    let submitted = submission_set.created(&sub_ref).unwrap();
    let submission_id = submitted.id().unwrap().to_string();
    email_set.unwrap_update_errors().unwrap();
    assert!(
        email_set.updated(&draft_id).is_ok(),
        "the draft was updated"
    );

    // The sent copy: in Sent only, no longer a draft.
    let e = client
        .email_get(
            &draft_id,
            Some([email::Property::MailboxIds, email::Property::Keywords]),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.mailbox_ids(), [sent]);
    assert_eq!(e.keywords(), ["$seen"]);

    // The submission: delivered to Bob, queued for Carol.
    let s = client
        .email_submission_get(&submission_id, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.email_id(), Some(draft_id.as_str()));
    let status = s.delivery_status().unwrap();
    assert_eq!(
        status[LOCAL].delivered(),
        &jmap_client::email_submission::Delivered::Yes,
        "{status:?}"
    );
    assert_eq!(
        status[REMOTE].delivered(),
        &jmap_client::email_submission::Delivered::Queued,
        "{status:?}"
    );

    // Bob has it in his INBOX, with the attachment intact.
    let bob = connect(server, LOCAL).await;
    let bob_inbox = role_id(&mailbox_roles(&bob).await, Role::Inbox);
    let ids = ids_in(&bob, &bob_inbox).await;
    assert_eq!(ids.len(), 1, "{ids:?}");
    let mut request = bob.build();
    let get = request.get_email().ids([ids[0].as_str()]).properties([
        email::Property::Subject,
        email::Property::From,
        email::Property::To,
        email::Property::Keywords,
        email::Property::Attachments,
        email::Property::TextBody,
        email::Property::BodyValues,
    ]);
    get.arguments().fetch_text_body_values(true);
    let mut got = request.send_get_email().await.unwrap();
    let received = got.take_list().pop().unwrap();
    assert_eq!(received.subject(), Some("a draft, then sent"));
    assert_eq!(received.from().unwrap()[0].email(), USER);
    assert_eq!(received.to().unwrap().len(), 2);
    assert!(
        received.keywords().is_empty(),
        "the sender's keywords stay with the sender: {:?}",
        received.keywords()
    );
    let text = &received.text_body().unwrap()[0];
    assert_eq!(
        received
            .body_value(text.part_id().unwrap())
            .unwrap()
            .value(),
        "Hello Bob and Carol.\nAttached.\n",
        "RFC 8621 §4.1.4: CRLF becomes LF in body values"
    );
    let attachment = &received.attachments().unwrap()[0];
    assert_eq!(attachment.name(), Some("data.bin"));
    assert_eq!(
        bob.download(attachment.blob_id().unwrap()).await.unwrap(),
        ATTACHMENT
    );

    // Carol's copy waits in the relay queue.
    let out = server.cli(&["queue", "list"], None);
    assert!(out.status.success());
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(list.contains(REMOTE), "{list}");
    assert!(
        !list.contains(LOCAL),
        "the local recipient is not queued: {list}"
    );
    assert!(list.contains(USER), "the sender: {list}");
}
