//! The backend against a scripted JMAP server on loopback (clear-text HTTP,
//! which the client allows only to loopback): what goes on the wire, and how
//! refusals, broken answers and oversized answers become errors.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// One request as the fake server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authorization: Option<String>,
    body: Vec<u8>,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// What the fake server answers: status, content type, body.
type Reply = (u16, &'static str, Vec<u8>);

/// Serves HTTP/1.1 with keep-alive on 127.0.0.1; `answer` decides each
/// reply. Returns the port and the log of requests.
async fn fake_server(
    answer: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
) -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Arc::new(Mutex::new(Vec::new()));
    let answer = Arc::new(answer);
    let seen = log.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let answer = answer.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // Headers.
                    let end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let mut lines = head.lines();
                    let mut first = lines.next().unwrap_or("").split(' ');
                    let method = first.next().unwrap_or("").to_string();
                    let path = first.next().unwrap_or("").to_string();
                    let mut length = 0;
                    let mut authorization = None;
                    for l in lines {
                        if let Some((n, v)) = l.split_once(':') {
                            match n.trim().to_ascii_lowercase().as_str() {
                                "content-length" => length = v.trim().parse().unwrap_or(0),
                                "authorization" => authorization = Some(v.trim().to_string()),
                                _ => {}
                            }
                        }
                    }
                    while buf.len() < end + length {
                        let mut chunk = [0u8; 4096];
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let request = Seen {
                        method,
                        path,
                        authorization,
                        body: buf[end..end + length].to_vec(),
                    };
                    buf.drain(..end + length);
                    let (status, content_type, body) = answer(&request);
                    seen.lock().unwrap().push(request);
                    let head = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    if sock.write_all(head.as_bytes()).await.is_err()
                        || sock.write_all(&body).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (port, log)
}

fn session(port: u16) -> Vec<u8> {
    json!({
        "capabilities": {
            "urn:ietf:params:jmap:core": {"maxSizeUpload": 100, "maxObjectsInGet": 2, "maxObjectsInSet": 2},
            "urn:ietf:params:jmap:mail": {},
            "urn:ietf:params:jmap:submission": {}
        },
        "accounts": {"A": {"name": "u", "isPersonal": true, "isReadOnly": false, "accountCapabilities": {}}},
        "primaryAccounts": {"urn:ietf:params:jmap:mail": "A"},
        "username": "u",
        "apiUrl": "/api/",
        "downloadUrl": format!("http://127.0.0.1:{port}/dl/{{accountId}}/{{blobId}}/{{name}}?type={{type}}"),
        "uploadUrl": "/up/{accountId}/",
        "eventSourceUrl": "/es",
        "state": "1"
    })
    .to_string()
    .into_bytes()
}

fn login() -> Login {
    Login {
        user: "u@x.test".into(),
        password: "pw".into(),
    }
}

fn mailboxes() -> Value {
    json!(["Mailbox/get", {"accountId": "A", "state": "1", "notFound": [], "list": [
        {"id": "M1", "name": "Inbox", "parentId": null, "role": "inbox", "totalEmails": 3, "unreadEmails": 1},
        {"id": "M2", "name": "Sent", "parentId": null, "role": "sent", "totalEmails": 0, "unreadEmails": 0}
    ]}, "m"])
}

fn reply(responses: Vec<Value>) -> Reply {
    (
        200,
        "application/json",
        json!({"methodResponses": responses, "sessionState": "1"})
            .to_string()
            .into_bytes(),
    )
}

/// Emails e0…e4, newest first; the query answers any position/limit.
fn scripted_api(seen: &Seen) -> Reply {
    let request = seen.json();
    let calls = request["methodCalls"].as_array().unwrap();
    match calls[0][0].as_str().unwrap() {
        "Mailbox/get" => reply(vec![mailboxes()]),
        "Email/query" => {
            let args = &calls[0][1];
            let position = args["position"].as_u64().unwrap() as usize;
            let limit = args["limit"].as_u64().unwrap() as usize;
            let ids: Vec<String> = (0..5)
                .skip(position)
                .take(limit)
                .map(|i| format!("e{i}"))
                .collect();
            let list: Vec<Value> = ids
                .iter()
                .map(|id| {
                    json!({"id": id, "receivedAt": "2024-01-01T00:00:00Z", "size": 10,
                                  "keywords": {"$seen": true}, "subject": id})
                })
                .collect();
            reply(vec![
                json!(["Email/query", {"ids": ids, "position": position, "total": 5}, "q"]),
                json!(["Email/get", {"list": list, "notFound": []}, "g"]),
            ])
        }
        "Email/get" => {
            let id = calls[0][1]["ids"][0].as_str().unwrap();
            if id == "e1" {
                reply(vec![
                    json!(["Email/get", {"list": [{"id": "e1", "blobId": "B/1"}], "notFound": []}, "b"]),
                ])
            } else {
                reply(vec![
                    json!(["Email/get", {"list": [], "notFound": [id]}, "b"]),
                ])
            }
        }
        "Email/set" => {
            let args = &calls[0][1];
            let mut not_updated = serde_json::Map::new();
            if let Some(update) = args["update"].as_object() {
                for id in update.keys().filter(|id| id.as_str() == "e9") {
                    not_updated.insert(id.clone(), json!({"type": "notFound"}));
                }
            }
            reply(vec![json!(["Email/set", {"notUpdated": not_updated}, "s"])])
        }
        _ => reply(vec![json!(["error", {"type": "unknownMethod"}, "x"])]),
    }
}

async fn scripted() -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let port_cell = Arc::new(Mutex::new(0u16));
    let port_for = port_cell.clone();
    let (port, log) = fake_server(move |seen| {
        let port = *port_for.lock().unwrap();
        match (seen.method.as_str(), seen.path.as_str()) {
            (_, _) if seen.authorization.as_deref() != Some("Basic dUB4LnRlc3Q6cHc=") => (
                401,
                "application/problem+json",
                br#"{"type": "about:blank", "detail": "bad login"}"#.to_vec(),
            ),
            ("GET", "/.well-known/jmap") => (200, "application/json", session(port)),
            ("POST", "/api/") => scripted_api(seen),
            ("GET", "/dl/A/B%2F1/message.eml?type=message%2Frfc822") => (
                200,
                "message/rfc822",
                b"Subject: hi\r\n\r\nbody\r\n".to_vec(),
            ),
            ("POST", "/up/A/") => (
                201,
                "application/json",
                br#"{"accountId": "A", "blobId": "U1", "type": "message/rfc822", "size": 5}"#
                    .to_vec(),
            ),
            _ => (404, "text/plain", b"no".to_vec()),
        }
    })
    .await;
    *port_cell.lock().unwrap() = port;
    (port, log)
}

/// Bounds every test: a hang is a failure, not a stuck suite.
async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("the test took too long")
}

#[tokio::test]
async fn browses_with_paging_and_result_references() {
    bounded(async {
        let (port, log) = scripted().await;
        let mut b = JmapBackend::connect(&format!("http://127.0.0.1:{port}"), &login(), false)
            .await
            .unwrap();
        let folders = b.folders().await.unwrap();
        assert_eq!(folders[0].name, "INBOX");
        assert_eq!((folders[0].total, folders[0].unread), (3, 1));
        assert_eq!(
            b.folder_with_role("sent").await.unwrap().as_deref(),
            Some("Sent")
        );

        // All five, in pages of maxObjectsInGet = 2.
        let all = b.list(&Query::default()).await.unwrap();
        let ids: Vec<&str> = all.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["e0", "e1", "e2", "e3", "e4"]);
        assert_eq!(all[0].flags, ["\\Seen"]);
        // Page 2 of 2 per page.
        let page = b
            .list(&Query {
                limit: Some(2),
                page: 2,
                unread: true,
                ..Query::default()
            })
            .await
            .unwrap();
        let ids: Vec<&str> = page.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["e2", "e3"]);
        let last = log.lock().unwrap().last().cloned().unwrap().json();
        assert_eq!(
            last["using"],
            json!(["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"])
        );
        let query = &last["methodCalls"][0][1];
        assert_eq!(query["accountId"], "A");
        assert_eq!(query["position"], 2);
        assert_eq!(
            query["filter"],
            json!({"inMailbox": "M1", "notKeyword": "$seen"})
        );

        // The download template is expanded with encoded values.
        let raw = b.fetch_raw("e1").await.unwrap();
        assert_eq!(raw, b"Subject: hi\r\n\r\nbody\r\n");
        assert!(
            matches!(b.fetch_raw("e2").await, Err(ClientError::NoSuchMessage(id)) if id == "e2")
        );
        assert!(matches!(
            b.fetch_raw("INBOX:7").await,
            Err(ClientError::NoSuchMessage(_))
        ));

        // Flags in batches of maxObjectsInSet = 2; an unknown id is named.
        let ids: Vec<String> = ["e0", "e1", "e2"].iter().map(|s| s.to_string()).collect();
        let seen = [FlagChange {
            add: false,
            flag: "\\Seen".into(),
        }];
        b.flag(&ids, &seen).await.unwrap();
        let sets: Vec<Value> = log
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == "/api/" && s.json()["methodCalls"][0][0] == "Email/set")
            .map(Seen::json)
            .collect();
        assert_eq!(sets.len(), 2);
        assert_eq!(
            sets[0]["methodCalls"][0][1]["update"]["e0"],
            json!({"keywords/$seen": null})
        );
        assert_eq!(
            sets[1]["methodCalls"][0][1]["update"]
                .as_object()
                .unwrap()
                .len(),
            1
        );
        let err = b.flag(&["e9".to_string()], &seen).await.unwrap_err();
        assert!(matches!(err, ClientError::NoSuchMessage(id) if id == "e9"));
        let err = b
            .flag(
                &ids,
                &[FlagChange {
                    add: true,
                    flag: "\\Deleted".into(),
                }],
            )
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Usage(_)), "{err}");

        assert_eq!(b.move_to(&ids, "sent").await.unwrap(), ids);
        let moved = log.lock().unwrap().last().cloned().unwrap().json();
        assert_eq!(
            moved["methodCalls"][0][1]["update"]["e2"],
            json!({"mailboxIds": {"M2": true}})
        );
        assert!(matches!(
            b.move_to(&ids, "Nowhere").await,
            Err(ClientError::NoSuchFolder(_))
        ));

        // Larger than maxSizeUpload (100): refused before sending.
        let err = b.append("INBOX", &[b'x'; 101], &[]).await.unwrap_err();
        assert!(
            err.to_string().contains("larger than the server accepts"),
            "{err}"
        );
    })
    .await;
}

#[tokio::test]
async fn wrong_password_is_an_auth_error() {
    bounded(async {
        let (port, _) = scripted().await;
        let bad = Login {
            user: "u@x.test".into(),
            password: "nope".into(),
        };
        let err = JmapBackend::connect(
            &format!("http://127.0.0.1:{port}/.well-known/jmap"),
            &bad,
            false,
        )
        .await
        .unwrap_err();
        match err {
            ClientError::Auth { user, reply, .. } => {
                assert_eq!(user, "u@x.test");
                assert!(reply.contains("bad login"), "{reply}");
            }
            other => panic!("not an auth error: {other}"),
        }
    })
    .await;
}

#[tokio::test]
async fn method_errors_and_bad_answers_are_protocol_errors() {
    bounded(async {
        let (port, _) = fake_server(|seen| match seen.path.as_str() {
            "/.well-known/jmap" => (200, "application/json", session(0)),
            _ => reply(vec![json!(["error", {"type": "serverUnavailable", "description": "later"}, "m"])]),
        })
        .await;
        let mut b = JmapBackend::connect(&format!("http://127.0.0.1:{port}"), &login(), false)
            .await
            .unwrap();
        let err = b.folders().await.unwrap_err();
        assert!(
            matches!(&err, ClientError::Protocol { message, .. } if message == "Mailbox/get: serverUnavailable (later)"),
            "{err}"
        );

        let (port, _) = fake_server(|_| (200, "text/html", b"<html>".to_vec())).await;
        let err = JmapBackend::connect(&format!("http://127.0.0.1:{port}"), &login(), false)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Protocol { .. }), "{err}");

        let (port, _) = fake_server(|_| (404, "text/plain", b"not here".to_vec())).await;
        let err = JmapBackend::connect(&format!("http://127.0.0.1:{port}"), &login(), false)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("HTTP 404"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn oversized_answers_are_refused() {
    bounded(async {
        let (port, _) =
            fake_server(|_| (200, "application/json", vec![b' '; MAX_SESSION + 1])).await;
        let err = JmapBackend::connect(&format!("http://127.0.0.1:{port}"), &login(), false)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn unreachable_and_clear_text_elsewhere() {
    bounded(async {
        // A port nothing listens on (bound, then closed).
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let err = JmapBackend::connect(&format!("https://127.0.0.1:{port}"), &login(), true)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Unreachable { .. }), "{err}");
        // Clear text to a non-loopback host: refused before connecting.
        let err = JmapBackend::connect("http://192.0.2.1/.well-known/jmap", &login(), false)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Usage(_)), "{err}");
        assert!(
            JmapBackend::connect("ftp://h/", &login(), false)
                .await
                .is_err()
        );
    })
    .await;
}

#[test]
fn session_urls() {
    assert_eq!(
        session_url("mail.example.com").unwrap().url(),
        "https://mail.example.com/.well-known/jmap"
    );
    assert_eq!(
        session_url("https://h:8443/").unwrap().url(),
        "https://h:8443/.well-known/jmap"
    );
    assert_eq!(
        session_url("https://h/jmap/session").unwrap().url(),
        "https://h/jmap/session"
    );
}
