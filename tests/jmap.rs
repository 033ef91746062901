//! End-to-end JMAP tests against the real binary over HTTPS: session
//! discovery and authentication (Basic, bearer tokens, refusals), the API
//! endpoint and its request-level errors, upload and download (whole blobs and
//! decoded MIME parts), EventSource push, and JMAP over WebSocket.
//!
//! The client is `tests/common/jmap.rs`. For a mail-method test, start a
//! server, add a user and call methods:
//!
//! ```ignore
//! let server = Server::start();
//! server.add_user(USER);
//! let jmap = server.jmap(USER);
//! let account = jmap.account_id();
//! let got = jmap.method("Mailbox/get", json!({ "accountId": account }));
//! ```

#![allow(clippy::unwrap_used)] // helpers assert by unwrapping, like the tests they serve

mod common;

use std::time::Duration;

use common::jmap::{Auth, Jmap};
use common::*;
use serde_json::{Value, json};

const USER: &str = "alice@localhost";
const OTHER: &str = "bob@localhost";

/// A server with alice (and bob) and a client logged in as alice.
fn setup() -> (Server, Jmap) {
    let server = Server::start();
    server.add_user(USER);
    server.add_user(OTHER);
    let jmap = server.jmap(USER);
    (server, jmap)
}

fn multipart_message() -> Vec<u8> {
    b"From: Bob <bob@example.org>\r\n\
To: alice@localhost\r\n\
Subject: with an attachment\r\n\
Message-ID: <parts@example.org>\r\n\
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

fn simple_message(n: u32) -> Vec<u8> {
    format!(
        "From: bob@example.org\r\nTo: {USER}\r\nSubject: m{n}\r\nMessage-ID: <m{n}@example.org>\r\n\r\nbody {n}\r\n"
    )
    .into_bytes()
}

fn problem_type(r: &common::jmap::HttpResponse) -> String {
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{}",
        r.text()
    );
    r.json()["type"].as_str().unwrap_or_default().to_string()
}

#[test]
fn session_with_basic_auth() {
    let (server, jmap) = setup();
    let session = jmap.session();
    let base = jmap.base();
    assert_eq!(session["username"], USER);
    assert_eq!(session["apiUrl"], format!("{base}/jmap/api/"));
    assert_eq!(
        session["uploadUrl"],
        format!("{base}/jmap/upload/{{accountId}}/")
    );
    assert_eq!(
        session["downloadUrl"],
        format!("{base}/jmap/download/{{accountId}}/{{blobId}}/{{name}}?type={{type}}")
    );
    assert_eq!(
        session["eventSourceUrl"],
        format!("{base}/jmap/eventsource/?types={{types}}&closeafter={{closeafter}}&ping={{ping}}")
    );
    let caps = &session["capabilities"];
    for c in [
        "urn:ietf:params:jmap:core",
        "urn:ietf:params:jmap:mail",
        "urn:ietf:params:jmap:submission",
        "urn:ietf:params:jmap:websocket",
    ] {
        assert!(caps.get(c).is_some(), "{c} missing: {caps}");
    }
    assert_eq!(
        caps["urn:ietf:params:jmap:websocket"]["url"],
        format!("wss://127.0.0.1:{}/jmap/ws", server.ports.http)
    );
    assert_eq!(caps["urn:ietf:params:jmap:websocket"]["supportsPush"], true);
    assert!(caps["urn:ietf:params:jmap:core"]["maxSizeRequest"].is_u64());
    let account = jmap.account_id();
    assert!(account.starts_with('A'), "{account}");
    assert_eq!(session["accounts"][&account]["name"], USER);
    assert_eq!(session["accounts"][&account]["isPersonal"], true);
    // The same at the other session URL.
    let again = jmap.get("/jmap/session");
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["username"], USER);

    // The log has one line per request.
    let log = server.log();
    assert!(
        log.lines().any(|l| l.contains("/.well-known/jmap")
            && l.contains("status=200")
            && l.contains(USER)),
        "{log}"
    );
}

#[test]
fn refused_logins() {
    let (_server, jmap) = setup();
    for (auth, what) in [
        (Auth::None, "no credentials"),
        (
            Auth::Basic(USER.into(), "wrong password".into()),
            "a wrong password",
        ),
        (
            Auth::Basic("nobody@localhost".into(), PASSWORD.into()),
            "an unknown user",
        ),
        (
            Auth::Bearer("pochta_not-a-token".into()),
            "an unknown token",
        ),
    ] {
        let r = jmap.with_auth(auth).get("/.well-known/jmap");
        assert_eq!(r.status, 401, "{what}: {}", r.text());
        let challenges = r.headers_named("www-authenticate");
        assert!(
            challenges
                .iter()
                .any(|c| c.starts_with("Basic realm=\"pochta\"")),
            "{what}: {challenges:?}"
        );
        assert!(
            challenges.iter().any(|c| c.starts_with("Bearer")),
            "{what}: {challenges:?}"
        );
    }
    // Every route needs a login.
    let anonymous = jmap.with_auth(Auth::None);
    assert_eq!(anonymous.api_raw(b"{}").status, 401);
    assert_eq!(anonymous.get("/jmap/eventsource/?types=*").status, 401);
}

#[test]
fn throttled_logins_get_429() {
    let server = Server::start_with("[auth]\ndelay_after = 100\nlockout_after = 2\n");
    server.add_user(USER);
    let wrong = server
        .jmap(USER)
        .with_auth(Auth::Basic(USER.into(), "wrong".into()));
    assert_eq!(wrong.get("/.well-known/jmap").status, 401);
    assert_eq!(wrong.get("/.well-known/jmap").status, 401);
    let r = server.jmap(USER).get("/.well-known/jmap");
    assert_eq!(r.status, 429, "locked out even with the right password");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 0);
}

#[test]
fn bearer_tokens() {
    let (server, jmap) = setup();
    let token = server.create_token(USER, "phone");
    assert!(token.starts_with("pochta_"), "{token}");
    let by_token = jmap.with_auth(Auth::Bearer(token.clone()));
    let session = by_token.session();
    assert_eq!(session["username"], USER);
    let r = by_token.call(json!([["Core/echo", {"hello": true}, "c"]]));
    assert_eq!(r["methodResponses"][0][1]["hello"], true);

    // Listed without the secret; the use is recorded (on the side).
    let mut listing = String::new();
    for _ in 0..100 {
        let out = server.cli(&["token", "list", USER], None);
        assert!(out.status.success());
        listing = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = listing.lines().find(|l| l.contains("phone")).unwrap();
        if line.split_whitespace().count() >= 7 {
            break; // created date + time, and last-used date + time
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        listing.contains(USER) && listing.contains("phone"),
        "{listing}"
    );
    assert!(!listing.contains(&token), "the secret is never shown again");
    let line = listing.lines().find(|l| l.contains("phone")).unwrap();
    assert_eq!(
        line.split_whitespace().count(),
        7,
        "last use recorded: {listing}"
    );
    let id = line.split_whitespace().next().unwrap().to_string();

    // Bob's token logs in as bob.
    let bobs = server.create_token(OTHER, "");
    assert_eq!(
        jmap.with_auth(Auth::Bearer(bobs)).session()["username"],
        OTHER
    );

    // Revoked: refused at once by the running server.
    let out = server.cli(&["token", "revoke", &id], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(by_token.get("/.well-known/jmap").status, 401);
    let out = server.cli(&["token", "revoke", &id], None);
    assert!(!out.status.success(), "revoking twice is an error");
    let out = server.cli(&["token", "create", "nobody@localhost"], None);
    assert!(!out.status.success(), "no token for an unknown account");
}

#[test]
fn clear_text_http_is_refused() {
    let (server, jmap) = setup();
    let plain = Jmap {
        plain: true,
        ..jmap.clone()
    };
    let r = plain.get("/.well-known/jmap?x=1");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains(&format!(
            "https://127.0.0.1:{}/.well-known/jmap?x=1",
            server.ports.http
        )),
        "{}",
        r.text()
    );
    // The same port still serves TLS.
    assert_eq!(jmap.get("/.well-known/jmap").status, 200);
}

#[test]
fn clear_text_http_behind_a_proxy() {
    let server = Server::start_with("[http]\nplain = true\n");
    server.add_user(USER);
    let plain = Jmap {
        plain: true,
        ..server.jmap(USER)
    };
    let session = plain.session();
    assert_eq!(session["username"], USER);
    // The client reached the proxy over https: the URLs say so.
    assert!(
        session["apiUrl"].as_str().unwrap().starts_with("https://"),
        "{session}"
    );
    assert_eq!(server.jmap(USER).session()["username"], USER, "TLS too");
}

#[test]
fn unknown_paths_and_methods() {
    let (_server, jmap) = setup();
    assert_eq!(jmap.get("/nothing/here").status, 404);
    assert_eq!(jmap.get("/jmap/api").status, 404, "the path is exact");
    let r = jmap.get("/jmap/api/");
    assert_eq!(r.status, 405);
    assert!(r.header("allow").unwrap_or_default().contains("POST"));
    assert_eq!(
        jmap.request("POST", "/.well-known/jmap", &[], b"").status,
        405
    );
}

#[test]
fn api_echo_and_request_errors() {
    let (_server, jmap) = setup();
    let r = jmap.call_using(
        &["urn:ietf:params:jmap:core"],
        json!([["Core/echo", {"hello": "world", "n": [1, 2]}, "c1"]]),
    );
    assert_eq!(
        r["methodResponses"],
        json!([["Core/echo", {"hello": "world", "n": [1, 2]}, "c1"]])
    );
    assert_eq!(
        r["sessionState"],
        jmap.session()["state"],
        "sessionState is the served session's state (RFC 8620 §3.4)"
    );

    let r = jmap.api_raw(b"{not json");
    assert_eq!(r.status, 400);
    assert_eq!(problem_type(&r), "urn:ietf:params:jmap:error:notJSON");

    let r = jmap.api_raw(br#"{"using": [], "methodCalls": 3}"#);
    assert_eq!(r.status, 400);
    assert_eq!(problem_type(&r), "urn:ietf:params:jmap:error:notRequest");

    let r = jmap.api_raw(
        json!({"using": ["urn:example:nope"], "methodCalls": []})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        problem_type(&r),
        "urn:ietf:params:jmap:error:unknownCapability"
    );

    let r = jmap.request(
        "POST",
        "/jmap/api/",
        &[("Content-Type", "text/plain")],
        b"{}",
    );
    assert_eq!(r.status, 400);
    assert_eq!(problem_type(&r), "urn:ietf:params:jmap:error:notRequest");

    // Over maxSizeRequest: refused from the Content-Length, before the body
    // is sent (the client waits for 100 Continue, as curl does).
    let max = jmap.session()["capabilities"]["urn:ietf:params:jmap:core"]["maxSizeRequest"]
        .as_u64()
        .unwrap();
    let len = (max + 1).to_string();
    let r = jmap.request_head_only(
        "POST",
        "/jmap/api/",
        &[
            ("Content-Type", "application/json"),
            ("Content-Length", &len),
            ("Expect", "100-continue"),
        ],
    );
    assert_eq!(r.status, 400);
    assert_eq!(problem_type(&r), "urn:ietf:params:jmap:error:limit");
    assert_eq!(r.json()["limit"], "maxSizeRequest");

    // Too many method calls: a limit too.
    let calls: Vec<Value> = (0..1000)
        .map(|i| json!(["Core/echo", {}, format!("c{i}")]))
        .collect();
    let r = jmap.api_raw(
        json!({"using": ["urn:ietf:params:jmap:core"], "methodCalls": calls})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 400);
    assert_eq!(problem_type(&r), "urn:ietf:params:jmap:error:limit");
    assert_eq!(r.json()["limit"], "maxCallsInRequest");
}

#[test]
fn upload_then_download() {
    let (server, jmap) = setup();
    let account = jmap.account_id();
    let data: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let up = jmap.upload(&account, "application/x-test", &data);
    assert_eq!(up["accountId"], account);
    assert_eq!(up["type"], "application/x-test");
    assert_eq!(up["size"], 70_000);
    let blob = up["blobId"].as_str().unwrap().to_string();
    assert!(blob.starts_with('B'), "{blob}");

    let path = jmap.download_path(&account, &blob, "file ü.bin", "application/x-test");
    let r = jmap.get(&path);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, data);
    assert_eq!(r.header("content-type"), Some("application/x-test"));
    let disposition = r.header("content-disposition").unwrap();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert!(
        disposition.contains("filename*=UTF-8''file%20%C3%BC.bin"),
        "{disposition}"
    );
    let cache = r.header("cache-control").unwrap();
    assert!(
        cache.contains("private") && cache.contains("immutable") && cache.contains("max-age="),
        "{cache}"
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));

    // Unknown blobs, and other accounts' blobs, are not found.
    let missing = jmap.download_path(&account, "Bffffff", "x", "text/plain");
    assert_eq!(jmap.get(&missing).status, 404);
    assert_eq!(jmap.get(&path.replace(&blob, "nonsense")).status, 404);
    let bob = server.jmap(OTHER);
    let bob_account = bob.account_id();
    assert_ne!(bob_account, account);
    assert_eq!(bob.get(&path).status, 404, "alice's account, bob's login");
    let as_bob = bob.download_path(&bob_account, &blob, "x", "text/plain");
    assert_eq!(
        bob.get(&as_bob).status,
        404,
        "alice's blob under bob's account"
    );
    // Nor can bob upload into alice's account.
    let r = bob.request(
        "POST",
        &format!("/jmap/upload/{account}/"),
        &[("Content-Type", "text/plain")],
        b"x",
    );
    assert_eq!(r.status, 404);

    // Over maxSizeUpload: 413 before the body is sent.
    let max = jmap.session()["capabilities"]["urn:ietf:params:jmap:core"]["maxSizeUpload"]
        .as_u64()
        .unwrap();
    let len = (max + 1).to_string();
    let r = jmap.request_head_only(
        "POST",
        &format!("/jmap/upload/{account}/"),
        &[("Content-Length", &len), ("Expect", "100-continue")],
    );
    assert_eq!(r.status, 413);
    assert_eq!(problem_type(&r), "urn:ietf:params:jmap:error:limit");
    assert_eq!(r.json()["limit"], "maxSizeUpload");
}

#[tokio::test]
async fn download_a_message_and_its_parts() {
    let (server, jmap) = setup();
    let raw_in = multipart_message();
    server.deliver(USER, &raw_in);
    let stored = inbox(&server.store(), USER).await;
    let (record, raw) = &stored[0];
    let blob = record.summary.blob_id;
    let account = jmap.account_id();

    let whole = pochta_jmap::ids::blob(blob);
    let r = jmap.get(&jmap.download_path(&account, whole.as_str(), "m.eml", "message/rfc822"));
    assert_eq!(r.status, 200);
    assert_eq!(&r.body, raw, "the stored message, trace headers and all");

    let attachment = pochta_jmap::ids::part_blob(blob, &[2]);
    let r = jmap.get(&jmap.download_path(
        &account,
        attachment.as_str(),
        "data.bin",
        "application/octet-stream",
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.body,
        [0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 255, 254, 253, 252, 251, 250],
        "base64 undone"
    );

    let text = pochta_jmap::ids::part_blob(blob, &[1]);
    let r = jmap.get(&jmap.download_path(&account, text.as_str(), "t.txt", "text/plain"));
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "Voilà the file.", "quoted-printable undone");

    for missing in [&[3u32][..], &[1, 1], &[9, 9, 9]] {
        let id = pochta_jmap::ids::part_blob(blob, missing);
        let r = jmap.get(&jmap.download_path(&account, id.as_str(), "x", "text/plain"));
        assert_eq!(r.status, 404, "part {missing:?}");
    }
    // Bob may not read alice's message parts.
    let bob = server.jmap(OTHER);
    let bob_account = bob.account_id();
    let r = bob.get(&bob.download_path(&bob_account, attachment.as_str(), "x", "text/plain"));
    assert_eq!(r.status, 404);
}

/// The types a delivery changes, as a StateChange reports them for `account`.
fn changed_types(change: &Value, account: &str) -> Vec<String> {
    assert_eq!(change["@type"], "StateChange", "{change}");
    change["changed"][account]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn event_source_pushes_state_changes() {
    let (server, jmap) = setup();
    let account = jmap.account_id();
    let mut stream = jmap.event_source("/jmap/eventsource/?types=*&closeafter=no&ping=0", &[]);
    assert_eq!(stream.status, 200);
    assert_eq!(stream.header("content-type"), Some("text/event-stream"));
    assert!(
        stream.next(Duration::from_millis(300)).is_none(),
        "nothing changed yet"
    );

    server.deliver(USER, &simple_message(1));
    let event = stream
        .next(Duration::from_secs(2))
        .expect("a state event within 2 s of the delivery");
    assert_eq!(event.event, "state");
    let types = changed_types(&event.json(), &account);
    for t in ["Email", "Mailbox", "Thread"] {
        assert!(types.contains(&t.to_string()), "{t} missing: {types:?}");
    }
    let seen = event.id.clone().expect("an event id to resume from");
    assert!(!stream.ended());

    // Bob's mail is not alice's business.
    server.deliver(OTHER, &simple_message(2));
    assert!(stream.next(Duration::from_millis(500)).is_none());

    // Only the types asked for; closeafter=state ends the response.
    let mut once = jmap.event_source(
        "/jmap/eventsource/?types=Mailbox&closeafter=state&ping=0",
        &[],
    );
    assert_eq!(once.status, 200);
    server.deliver(USER, &simple_message(3));
    let event = once.next(Duration::from_secs(2)).expect("a state event");
    assert_eq!(changed_types(&event.json(), &account), ["Mailbox"]);
    assert!(once.next(Duration::from_secs(2)).is_none());
    assert!(once.ended(), "closeafter=state ends the response");

    // A client coming back with the last event id hears at once what it
    // missed (message 3 arrived since).
    let mut back = jmap.event_source(
        "/jmap/eventsource/?types=Email&closeafter=no&ping=0",
        &[("Last-Event-ID", &seen)],
    );
    let event = back
        .next(Duration::from_secs(2))
        .expect("the missed change");
    assert_eq!(changed_types(&event.json(), &account), ["Email"]);

    // Bad parameters.
    let mut bad = jmap.event_source("/jmap/eventsource/?closeafter=maybe", &[]);
    assert_eq!(bad.status, 400);
    assert!(bad.next(Duration::from_millis(100)).is_none());
}

#[test]
fn event_source_pings() {
    let (_server, jmap) = setup();
    let mut stream = jmap.event_source("/jmap/eventsource/?types=*&closeafter=no&ping=1", &[]);
    assert_eq!(stream.status, 200);
    // 1 s is below the server's minimum of 5 s, which the ping reports.
    let ping = stream.next(Duration::from_secs(8)).expect("a ping");
    assert_eq!(ping.event, "ping");
    assert_eq!(ping.json(), json!({"interval": 5}));
}

#[test]
fn websocket_requests_and_push() {
    let (server, jmap) = setup();
    let account = jmap.account_id();

    let (r, ws) = jmap.websocket("/jmap/ws", None);
    assert!(ws.is_none());
    assert_eq!(r.status, 400, "the jmap subprotocol is required");
    let (r, ws) = jmap
        .with_auth(Auth::None)
        .websocket("/jmap/ws", Some("jmap"));
    assert!(ws.is_none());
    assert_eq!(r.status, 401);

    let (r, ws) = jmap.websocket("/jmap/ws", Some("jmap"));
    assert_eq!(r.status, 101);
    assert_eq!(r.header("sec-websocket-protocol"), Some("jmap"));
    let mut ws = ws.unwrap();
    let wait = Duration::from_secs(5);

    ws.send_json(&json!({
        "@type": "Request",
        "id": "r1",
        "using": ["urn:ietf:params:jmap:core"],
        "methodCalls": [["Core/echo", {"ping": 1}, "c"]]
    }));
    let m = ws.recv_json(wait).expect("a response");
    assert_eq!(m["@type"], "Response", "{m}");
    assert_eq!(m["requestId"], "r1");
    assert_eq!(m["sessionState"], jmap.session()["state"]);
    assert_eq!(
        m["methodResponses"][0],
        json!(["Core/echo", {"ping": 1}, "c"])
    );

    ws.send_text("{not json");
    let m = ws.recv_json(wait).expect("an error");
    assert_eq!(m["@type"], "RequestError", "{m}");
    assert_eq!(m["type"], "urn:ietf:params:jmap:error:notJSON");

    ws.send_json(&json!({
        "@type": "Request",
        "id": "r2",
        "using": ["urn:example:nope"],
        "methodCalls": []
    }));
    let m = ws.recv_json(wait).expect("an error");
    assert_eq!(m["@type"], "RequestError", "{m}");
    assert_eq!(m["requestId"], "r2");
    assert_eq!(m["type"], "urn:ietf:params:jmap:error:unknownCapability");

    // Push: nothing before it is enabled.
    server.deliver(USER, &simple_message(1));
    assert!(ws.recv_json(Duration::from_millis(500)).is_none());
    ws.send_json(&json!({"@type": "WebSocketPushEnable", "dataTypes": null}));
    assert!(
        ws.recv_json(Duration::from_millis(300)).is_none(),
        "no pushState given: nothing to catch up"
    );
    server.deliver(USER, &simple_message(2));
    let m = ws.recv_json(Duration::from_secs(2)).expect("a StateChange");
    let types = changed_types(&m, &account);
    for t in ["Email", "Mailbox", "Thread"] {
        assert!(types.contains(&t.to_string()), "{t} missing: {m}");
    }
    let push_state = m["pushState"].as_str().expect("pushState").to_string();

    // Requests still work with push on.
    ws.send_json(&json!({
        "@type": "Request",
        "id": "r3",
        "using": ["urn:ietf:params:jmap:core"],
        "methodCalls": [["Core/echo", {}, "c"]]
    }));
    assert_eq!(ws.recv_json(wait).expect("a response")["requestId"], "r3");

    // Disabled: quiet again.
    ws.send_json(&json!({"@type": "WebSocketPushDisable"}));
    server.deliver(USER, &simple_message(3));
    assert!(ws.recv_json(Duration::from_millis(500)).is_none());

    // Enabled again from the last pushState: the missed change comes at once,
    // limited to the types asked for.
    ws.send_json(&json!({
        "@type": "WebSocketPushEnable",
        "dataTypes": ["Mailbox"],
        "pushState": push_state
    }));
    let m = ws
        .recv_json(Duration::from_secs(2))
        .expect("the missed change");
    assert_eq!(changed_types(&m, &account), ["Mailbox"]);
    assert!(m["pushState"].is_string());
}
