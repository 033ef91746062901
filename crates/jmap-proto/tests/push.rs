#![allow(clippy::unwrap_used)]
//! StateChange (RFC 8620 §7.1), EventSource (§7.3), JMAP over WebSocket
//! (RFC 8887).

use pochta_jmap_proto::{
    CAPABILITY_CORE, CoreCapability, EventSourceParams, Id, Limit, RequestError, RequestErrorKind,
    Response, StateChange, WsClientMessage, WsServerMessage, event_source_ping, event_source_state,
};
use serde_json::{Value, json};

fn id(s: &str) -> Id {
    Id::new(s).unwrap()
}

fn rfc_example() -> StateChange {
    let mut change = StateChange::new();
    change.add(id("a3123"), "Email", "d35ecb040aab");
    change.add(id("a3123"), "EmailDelivery", "428d565f2440");
    change.add(id("a3123"), "CalendarEvent", "87accfac587a");
    change.add(id("a43461d"), "Mailbox", "0af7a512ce70");
    change.add(id("a43461d"), "CalendarEvent", "7a4297cecd76");
    change
}

#[test]
fn state_change_matches_rfc_8620_section_7_1() {
    let expected = json!({
      "@type": "StateChange",
      "changed": {
        "a3123": {
          "Email": "d35ecb040aab",
          "EmailDelivery": "428d565f2440",
          "CalendarEvent": "87accfac587a"
        },
        "a43461d": {
          "Mailbox": "0af7a512ce70",
          "CalendarEvent": "7a4297cecd76"
        }
      }
    });
    assert_eq!(serde_json::to_value(rfc_example()).unwrap(), expected);
    let back: StateChange = serde_json::from_value(expected).unwrap();
    assert_eq!(back, rfc_example());
    assert!(
        serde_json::from_value::<StateChange>(json!({"@type": "Other", "changed": {}})).is_err()
    );
}

#[test]
fn state_change_type_filter() {
    let only = rfc_example().only_types(Some(&["Mailbox".to_owned()]));
    assert_eq!(
        serde_json::to_value(&only).unwrap(),
        json!({"@type": "StateChange", "changed": {"a43461d": {"Mailbox": "0af7a512ce70"}}})
    );
    assert!(rfc_example().only_types(Some(&[])).is_empty());
    assert_eq!(rfc_example().only_types(None), rfc_example());
}

#[test]
fn event_source_frames() {
    let mut change = StateChange::new();
    change.add(id("a1"), "Email", "s2");
    change.push_state = Some("ws-only".into());
    assert_eq!(
        event_source_state(&change, None),
        "event: state\ndata: {\"@type\":\"StateChange\",\"changed\":{\"a1\":{\"Email\":\"s2\"}}}\n\n"
    );
    assert!(event_source_state(&change, Some("abc")).starts_with("event: state\nid: abc\ndata: {"));
    assert_eq!(
        event_source_ping(300),
        "event: ping\ndata: {\"interval\":300}\n\n"
    );
    let data = event_source_ping(30);
    let json: Value =
        serde_json::from_str(data.lines().nth(1).unwrap().strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(json, json!({"interval": 30}));
}

#[test]
fn event_source_params() {
    let p =
        EventSourceParams::parse([("types", "*"), ("closeafter", "no"), ("ping", "0")]).unwrap();
    assert_eq!(
        p,
        EventSourceParams {
            types: None,
            close_after_state: false,
            ping: 0
        }
    );
    assert_eq!(p.ping_interval(30, 300), None);
    let p = EventSourceParams::parse([
        ("types", "Email,Mailbox"),
        ("closeafter", "state"),
        ("ping", "5"),
    ])
    .unwrap();
    assert_eq!(p.types.as_deref().unwrap(), ["Email", "Mailbox"]);
    assert!(p.close_after_state);
    assert_eq!(p.ping_interval(30, 300), Some(30));
    assert_eq!(
        EventSourceParams::parse([("ping", "1000")])
            .unwrap()
            .ping_interval(30, 300),
        Some(300)
    );
    assert_eq!(
        EventSourceParams::parse([]).unwrap(),
        EventSourceParams::default()
    );
    assert!(EventSourceParams::parse([("closeafter", "maybe")]).is_err());
    assert!(EventSourceParams::parse([("ping", "-1")]).is_err());
}

fn limits() -> CoreCapability {
    CoreCapability::default()
}

#[test]
fn websocket_request_and_response() {
    // RFC 8887 §4.3.6 (the example exchange)
    let msg = br#"{"@type":"Request","id":"R1","using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"hello":true,"high":5},"b3ff"]]}"#;
    let WsClientMessage::Request { id, request } = WsClientMessage::parse(msg, &limits()).unwrap()
    else {
        panic!("not a request")
    };
    assert_eq!(id.as_deref(), Some("R1"));
    assert_eq!(request.using, [CAPABILITY_CORE]);
    assert_eq!(request.method_calls[0].name, "Core/echo");

    let response = Response {
        method_responses: vec![(
            "Core/echo".into(),
            json!({"hello": true, "high": 5}),
            "b3ff".into(),
        )],
        created_ids: None,
        session_state: "75128aab4b1b".into(),
    };
    let text = WsServerMessage::Response {
        request_id: id,
        response,
    }
    .to_text();
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        json,
        json!({
            "@type": "Response",
            "requestId": "R1",
            "methodResponses": [["Core/echo", {"hello": true, "high": 5}, "b3ff"]],
            "sessionState": "75128aab4b1b"
        })
    );

    // Without an id there is no requestId.
    let msg = br#"{"@type":"Request","using":[],"methodCalls":[]}"#;
    let WsClientMessage::Request { id, .. } = WsClientMessage::parse(msg, &limits()).unwrap()
    else {
        panic!("not a request")
    };
    assert_eq!(id, None);
    let text = WsServerMessage::Response {
        request_id: None,
        response: Response {
            method_responses: vec![],
            created_ids: None,
            session_state: "s".into(),
        },
    }
    .to_text();
    assert!(
        serde_json::from_str::<Value>(&text)
            .unwrap()
            .get("requestId")
            .is_none()
    );
}

#[test]
fn websocket_errors() {
    // RFC 8887 §4.3.6: a message that is not JSON.
    let err = WsClientMessage::parse(b"The quick brown fox jumps over the lazy dog.", &limits())
        .unwrap_err();
    assert_eq!(err.error.kind, RequestErrorKind::NotJson);
    let json = WsServerMessage::from(err).to_json();
    assert_eq!(json["@type"], "RequestError");
    assert_eq!(json["requestId"], Value::Null);
    assert_eq!(json["type"], "urn:ietf:params:jmap:error:notJSON");
    assert_eq!(json["status"], 400);

    // A bad Request keeps its id.
    let err = WsClientMessage::parse(br#"{"@type":"Request","id":"R7","using":[]}"#, &limits())
        .unwrap_err();
    assert_eq!(err.request_id.as_deref(), Some("R7"));
    assert_eq!(err.error.kind, RequestErrorKind::NotRequest);
    assert_eq!(WsServerMessage::from(err).to_json()["requestId"], "R7");

    for bad in [
        &br#"{"using":[],"methodCalls":[]}"#[..],
        br#"{"@type":"Nope"}"#,
        br#"[1]"#,
        br#"{"@type":"WebSocketPushEnable","dataTypes":"Email"}"#,
    ] {
        let err = WsClientMessage::parse(bad, &limits()).unwrap_err();
        assert_eq!(
            err.error.kind,
            RequestErrorKind::NotRequest,
            "{}",
            String::from_utf8_lossy(bad)
        );
    }

    let small = CoreCapability {
        max_size_request: 5,
        ..CoreCapability::default()
    };
    let err = WsClientMessage::parse(br#"{"@type":"WebSocketPushDisable"}"#, &small).unwrap_err();
    assert_eq!(
        err.error.kind,
        RequestErrorKind::Limit(Limit::MaxSizeRequest)
    );
    let msg = WsServerMessage::RequestError {
        request_id: Some("R2".into()),
        error: RequestError::limit(Limit::MaxSizeRequest, "too big"),
    };
    assert_eq!(msg.to_json()["limit"], "maxSizeRequest");
}

#[test]
fn websocket_push_messages() {
    let msg =
        br#"{"@type":"WebSocketPushEnable","dataTypes":["Mailbox","Email"],"pushState":"aaa"}"#;
    assert_eq!(
        WsClientMessage::parse(msg, &limits()).unwrap(),
        WsClientMessage::PushEnable {
            data_types: Some(vec!["Mailbox".into(), "Email".into()]),
            push_state: Some("aaa".into())
        }
    );
    assert_eq!(
        WsClientMessage::parse(
            br#"{"@type":"WebSocketPushEnable","dataTypes":null}"#,
            &limits()
        )
        .unwrap(),
        WsClientMessage::PushEnable {
            data_types: None,
            push_state: None
        }
    );
    assert_eq!(
        WsClientMessage::parse(br#"{"@type":"WebSocketPushDisable"}"#, &limits()).unwrap(),
        WsClientMessage::PushDisable
    );

    let mut change = StateChange::new();
    change.add(id("a456"), "Mailbox", "d35ecb040aab");
    change.push_state = Some("bbb".into());
    assert_eq!(
        serde_json::from_str::<Value>(&WsServerMessage::StateChange(change).to_text()).unwrap(),
        json!({"@type": "StateChange", "changed": {"a456": {"Mailbox": "d35ecb040aab"}}, "pushState": "bbb"})
    );
}
