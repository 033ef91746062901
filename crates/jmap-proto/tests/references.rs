#![allow(clippy::unwrap_used)]
//! Result references (RFC 8620 §3.7), including the RFC's mail example.

use async_trait::async_trait;
use pochta_jmap_proto::{
    CAPABILITY_CORE, CAPABILITY_MAIL, CallContext, CoreCapability, MethodError, MethodErrorKind,
    MethodHandler, Request, evaluate_pointer, process, resolve_references,
};
use serde_json::{Map, Value, json};

fn map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

/// Answers the RFC 8620 §3.7 example with the RFC's responses, recording the
/// arguments each call received after reference resolution.
#[derive(Default)]
struct RfcExample {
    seen: Vec<(String, Map<String, Value>)>,
}

#[async_trait]
impl MethodHandler for RfcExample {
    fn capability(&self, method: &str) -> Option<&'static str> {
        matches!(method, "Email/query" | "Email/get" | "Thread/get").then_some(CAPABILITY_MAIL)
    }

    async fn call(
        &mut self,
        method: &str,
        args: Map<String, Value>,
        ctx: &mut CallContext,
    ) -> Result<Vec<(String, Value)>, MethodError> {
        self.seen.push((method.to_owned(), args));
        let body = match (method, ctx.call_id()) {
            ("Email/query", "t0") => json!({
                "accountId": "A1",
                "queryState": "abcdefg",
                "canCalculateChanges": true,
                "position": 0,
                "total": 101,
                "ids": [ "msg1023", "msg223", "msg110", "msg93", "msg91",
                    "msg38", "msg36", "msg33", "msg11", "msg1" ]
            }),
            ("Email/get", "t1") => json!({
                "accountId": "A1",
                "state": "123456",
                "list": [
                    { "id": "msg1023", "threadId": "trd194" },
                    { "id": "msg223", "threadId": "trd114" }
                ],
                "notFound": []
            }),
            ("Thread/get", "t2") => json!({
                "accountId": "A1",
                "state": "123456",
                "list": [
                    { "id": "trd194", "emailIds": [ "msg1020", "msg1021", "msg1023" ] },
                    { "id": "trd114", "emailIds": [ "msg201", "msg223" ] }
                ],
                "notFound": []
            }),
            _ => json!({ "accountId": "A1", "state": "123456", "list": [], "notFound": [] }),
        };
        Ok(vec![(method.to_owned(), body)])
    }
}

const RFC_EXAMPLE: &str = r##"{
  "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
  "methodCalls": [[ "Email/query", {
      "accountId": "A1",
      "filter": { "inMailbox": "id_of_inbox" },
      "sort": [{ "property": "receivedAt", "isAscending": false }],
      "collapseThreads": true,
      "position": 0,
      "limit": 10,
      "calculateTotal": true
    }, "t0" ],
    [ "Email/get", {
      "accountId": "A1",
      "#ids": { "resultOf": "t0", "name": "Email/query", "path": "/ids" },
      "properties": [ "threadId" ]
    }, "t1" ],
    [ "Thread/get", {
      "accountId": "A1",
      "#ids": { "resultOf": "t1", "name": "Email/get", "path": "/list/*/threadId" }
    }, "t2" ],
    [ "Email/get", {
      "accountId": "A1",
      "#ids": { "resultOf": "t2", "name": "Thread/get", "path": "/list/*/emailIds" },
      "properties": [ "from", "receivedAt", "subject" ]
    }, "t3" ]]
}"##;

#[tokio::test]
async fn rfc_8620_section_3_7_mail_example() {
    let request = Request::parse(RFC_EXAMPLE.as_bytes(), &CoreCapability::default()).unwrap();
    let mut handler = RfcExample::default();
    let response = process(
        request,
        &mut handler,
        &CoreCapability::default(),
        &[CAPABILITY_CORE, CAPABILITY_MAIL],
    )
    .await
    .unwrap();
    assert_eq!(response.method_responses.len(), 4);
    assert!(
        response
            .method_responses
            .iter()
            .all(|(name, _, _)| name != "error")
    );

    let seen = &handler.seen;
    assert_eq!(
        seen[1].1["ids"],
        json!([
            "msg1023", "msg223", "msg110", "msg93", "msg91", "msg38", "msg36", "msg33", "msg11",
            "msg1"
        ])
    );
    assert!(!seen[1].1.contains_key("#ids"));
    assert_eq!(seen[1].1["properties"], json!(["threadId"]));
    assert_eq!(seen[2].1["ids"], json!(["trd194", "trd114"]));
    assert_eq!(
        seen[3].1,
        map(json!({
            "accountId": "A1",
            "ids": [ "msg1020", "msg1021", "msg1023", "msg201", "msg223" ],
            "properties": [ "from", "receivedAt", "subject" ]
        }))
    );
}

fn responses() -> Vec<(String, Value, String)> {
    vec![
        (
            "Foo/changes".into(),
            json!({
                "accountId": "A1", "oldState": "abcdef", "newState": "123456",
                "hasMoreChanges": false, "created": [ "f1", "f4" ], "updated": [], "destroyed": []
            }),
            "t0".into(),
        ),
        (
            "Foo/set".into(),
            json!({"a/b": 1, "m~n": 2, "*": 3, "list": [[1, 2], [3], 4]}),
            "t1".into(),
        ),
        ("Bar/set".into(), json!({"x": 9}), "t1".into()),
    ]
}

#[test]
fn simple_rfc_example() {
    let args = map(json!({
        "accountId": "A1",
        "#ids": { "resultOf": "t0", "name": "Foo/changes", "path": "/created" }
    }));
    let resolved = resolve_references(args, &responses()).unwrap();
    assert_eq!(
        resolved,
        map(json!({ "accountId": "A1", "ids": [ "f1", "f4" ] }))
    );
}

#[test]
fn pointer_escapes_and_star_on_objects() {
    let value = &responses()[1].1;
    assert_eq!(evaluate_pointer(value, "/a~1b").unwrap(), json!(1));
    assert_eq!(evaluate_pointer(value, "/m~0n").unwrap(), json!(2));
    // On an object "*" is an ordinary key.
    assert_eq!(evaluate_pointer(value, "/*").unwrap(), json!(3));
    assert_eq!(evaluate_pointer(value, "").unwrap(), *value);
    assert_eq!(evaluate_pointer(value, "/list/0/1").unwrap(), json!(2));
    assert!(evaluate_pointer(value, "/list/01").is_err());
    assert!(evaluate_pointer(value, "/list/-").is_err());
    assert!(evaluate_pointer(value, "/list/9").is_err());
    assert!(evaluate_pointer(value, "/m~2n").is_err());
    assert!(evaluate_pointer(value, "a~1b").is_err());
    assert!(evaluate_pointer(value, "/a~1b/x").is_err());
}

#[test]
fn star_maps_and_flattens_one_level() {
    let value = json!({"list": [[1, 2], [3], 4]});
    // Items that are arrays are spliced in; scalars are kept.
    assert_eq!(
        evaluate_pointer(&value, "/list/*").unwrap(),
        json!([1, 2, 3, 4])
    );
    let nested = json!({"a": [{"b": [{"c": [1, 2]}, {"c": [3]}]}, {"b": [{"c": [4]}]}]});
    assert_eq!(
        evaluate_pointer(&nested, "/a/*/b/*/c").unwrap(),
        json!([1, 2, 3, 4])
    );
    let deep = json!({"a": [{"b": [[1], [2]]}]});
    // Only the array produced for each item is flattened, not deeper ones.
    assert_eq!(
        evaluate_pointer(&deep, "/a/*/b").unwrap(),
        json!([[1], [2]])
    );
    assert_eq!(
        evaluate_pointer(&json!({"a": []}), "/a/*/b").unwrap(),
        json!([])
    );
    assert!(evaluate_pointer(&json!({"a": [{"b": 1}, {}]}), "/a/*/b").is_err());
}

#[test]
fn reference_reaches_a_later_response_of_the_same_call() {
    let args = map(json!({"#x": {"resultOf": "t1", "name": "Bar/set", "path": "/x"}}));
    assert_eq!(resolve_references(args, &responses()).unwrap()["x"], 9);
}

#[test]
fn failures_are_invalid_result_reference() {
    for reference in [
        json!({"resultOf": "t9", "name": "Foo/changes", "path": "/created"}),
        json!({"resultOf": "t0", "name": "Foo/get", "path": "/created"}),
        json!({"resultOf": "t0", "name": "Foo/changes", "path": "/nothing"}),
        json!({"resultOf": "t0", "name": "Foo/changes", "path": "created"}),
        json!({"resultOf": "t0", "name": "Foo/changes"}),
        json!("t0"),
    ] {
        let args = map(json!({"#ids": reference}));
        let err = resolve_references(args, &responses()).unwrap_err();
        assert_eq!(
            err.kind,
            MethodErrorKind::InvalidResultReference,
            "{reference}"
        );
    }
}

#[test]
fn same_argument_plain_and_referenced_is_invalid_arguments() {
    let args = map(json!({
        "ids": [],
        "#ids": {"resultOf": "t0", "name": "Foo/changes", "path": "/created"}
    }));
    let err = resolve_references(args, &responses()).unwrap_err();
    assert_eq!(err.kind, MethodErrorKind::InvalidArguments);
}
