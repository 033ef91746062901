#![allow(clippy::unwrap_used)]
//! Request parsing and request-level errors (RFC 8620 §3.3, §3.6.1), Ids.

use pochta_jmap_proto::{
    CoreCapability, Id, IdOrRef, Limit, Request, RequestErrorKind, Response, is_valid_id,
};
use serde_json::json;

fn limits() -> CoreCapability {
    CoreCapability::default()
}

#[test]
fn parses_the_rfc_example_request() {
    // RFC 8620 §3.3.1
    let body = br#"{
      "using": [ "urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail" ],
      "methodCalls": [
        [ "method1", { "arg1": "arg1data", "arg2": "arg2data" }, "c1" ],
        [ "method2", { "arg1": "arg1data" }, "c2" ],
        [ "method3", {}, "c3" ]
      ]
    }"#;
    let request = Request::parse(body, &limits()).unwrap();
    assert_eq!(request.using.len(), 2);
    assert_eq!(request.method_calls.len(), 3);
    assert_eq!(request.method_calls[0].name, "method1");
    assert_eq!(request.method_calls[0].arguments["arg2"], "arg2data");
    assert_eq!(request.method_calls[2].call_id, "c3");
    assert!(request.method_calls[2].arguments.is_empty());
    assert_eq!(request.created_ids, None);
}

#[test]
fn unknown_request_properties_are_ignored() {
    let body = br#"{"using":[],"methodCalls":[],"future":1,"@type":"Request"}"#;
    assert!(Request::parse(body, &limits()).is_ok());
}

#[test]
fn created_ids_are_parsed() {
    let body = br#"{"using":[],"methodCalls":[],"createdIds":{"k1":"M12"}}"#;
    let request = Request::parse(body, &limits()).unwrap();
    let created = request.created_ids.unwrap();
    assert_eq!(created["k1"], Id::new("M12").unwrap());
}

#[test]
fn request_round_trips() {
    let body = br#"{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"a":1},"0"]],"createdIds":{}}"#;
    let request = Request::parse(body, &limits()).unwrap();
    let again = serde_json::to_vec(&request).unwrap();
    assert_eq!(Request::parse(&again, &limits()).unwrap(), request);
}

#[test]
fn not_json() {
    let err = Request::parse(b"{\"using\": [", &limits()).unwrap_err();
    assert_eq!(err.kind, RequestErrorKind::NotJson);
    assert_eq!(err.status(), 400);
    let body = err.to_json();
    assert_eq!(body["type"], "urn:ietf:params:jmap:error:notJSON");
    assert_eq!(body["status"], 400);
    assert!(body["detail"].is_string());
    assert!(body.get("limit").is_none());

    // Invalid UTF-8 is not I-JSON either.
    let err = Request::parse(b"{\"using\":[\"\xff\"],\"methodCalls\":[]}", &limits()).unwrap_err();
    assert_eq!(err.kind, RequestErrorKind::NotJson);
}

#[test]
fn not_request() {
    for body in [
        &br#"[]"#[..],
        br#"{"methodCalls":[]}"#,
        br#"{"using":"urn:ietf:params:jmap:core","methodCalls":[]}"#,
        br#"{"using":[],"methodCalls":[["a",{},"c", 4]]}"#,
        br#"{"using":[],"methodCalls":[["a",[],"c"]]}"#,
        br#"{"using":[],"methodCalls":[["a",{}]]}"#,
        br#"{"using":[],"methodCalls":[],"createdIds":{"k1":"not valid!"}}"#,
    ] {
        let err = Request::parse(body, &limits()).unwrap_err();
        assert_eq!(
            err.kind,
            RequestErrorKind::NotRequest,
            "{}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(
            err.to_json()["type"],
            "urn:ietf:params:jmap:error:notRequest"
        );
    }
}

#[test]
fn too_large_request_is_a_limit_error() {
    let limits = CoreCapability {
        max_size_request: 10,
        ..CoreCapability::default()
    };
    let err = Request::parse(br#"{"using":[],"methodCalls":[]}"#, &limits).unwrap_err();
    assert_eq!(err.kind, RequestErrorKind::Limit(Limit::MaxSizeRequest));
    let body = err.to_json();
    assert_eq!(body["type"], "urn:ietf:params:jmap:error:limit");
    assert_eq!(body["limit"], "maxSizeRequest");
    assert_eq!(body["status"], 400);
}

#[test]
fn response_serializes_per_rfc() {
    let response = Response {
        method_responses: vec![
            (
                "method1".into(),
                json!({"arg1": 3, "arg2": "foo"}),
                "c1".into(),
            ),
            (
                "error".into(),
                json!({"type": "unknownMethod"}),
                "c3".into(),
            ),
        ],
        created_ids: None,
        session_state: String::new(),
    }
    .with_session_state("75128aab4b1b");
    let value: serde_json::Value = serde_json::from_slice(&response.to_bytes()).unwrap();
    assert_eq!(
        value,
        json!({
            "methodResponses": [
                ["method1", {"arg1": 3, "arg2": "foo"}, "c1"],
                ["error", {"type": "unknownMethod"}, "c3"]
            ],
            "sessionState": "75128aab4b1b"
        })
    );
}

#[test]
fn ids() {
    assert!(is_valid_id("a"));
    assert!(is_valid_id("Az09-_"));
    assert!(is_valid_id(&"x".repeat(255)));
    assert!(!is_valid_id(""));
    assert!(!is_valid_id(&"x".repeat(256)));
    assert!(!is_valid_id("a b"));
    assert!(!is_valid_id("a=b"));
    assert!(!is_valid_id("#k1"));
    assert!(!is_valid_id("é"));
    assert!(Id::new("a/b").is_err());
    let id: Id = serde_json::from_value(json!("M1")).unwrap();
    assert_eq!(id, "M1");
    assert!(serde_json::from_value::<Id>(json!("M 1")).is_err());
    assert_eq!(serde_json::to_value(&id).unwrap(), json!("M1"));
}

#[test]
fn id_or_ref() {
    assert_eq!(IdOrRef::parse("#k1").unwrap(), IdOrRef::Ref("k1".into()));
    assert_eq!(
        IdOrRef::parse("M1").unwrap(),
        IdOrRef::Id(Id::new("M1").unwrap())
    );
    assert!(IdOrRef::parse("#").is_err());
    assert!(IdOrRef::parse("##k").is_err());
    assert_eq!(IdOrRef::Ref("k1".into()).to_string(), "#k1");
}
