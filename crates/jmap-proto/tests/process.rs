#![allow(clippy::unwrap_used)]
//! The processing loop (RFC 8620 §3.3–3.6): capabilities, unknown methods,
//! errors, several responses per call, created ids.

use std::collections::HashMap;

use async_trait::async_trait;
use pochta_jmap_proto::{
    Args, CAPABILITY_CORE, CAPABILITY_MAIL, CAPABILITY_SUBMISSION, CallContext, CoreCapability,
    GetRequest, GetResponse, Id, Limit, MethodError, MethodErrorKind, MethodHandler, Request,
    RequestErrorKind, SetRequest, SetResponse, method_response, process,
};
use serde_json::{Map, Value, json};

const SUPPORTED: &[&str] = &[CAPABILITY_CORE, CAPABILITY_MAIL, CAPABILITY_SUBMISSION];

/// A tiny in-memory Mailbox store with an EmailSubmission that also answers
/// with an implicit Email/set, as RFC 8621 §7.5 describes.
#[derive(Default)]
struct Fake {
    mailboxes: Vec<(Id, Map<String, Value>)>,
    next: u32,
}

#[async_trait]
impl MethodHandler for Fake {
    fn capability(&self, method: &str) -> Option<&'static str> {
        match method {
            "Mailbox/get" | "Mailbox/set" | "Fail/now" => Some(CAPABILITY_MAIL),
            "EmailSubmission/set" => Some(CAPABILITY_SUBMISSION),
            _ => None,
        }
    }

    async fn call(
        &mut self,
        method: &str,
        args: Map<String, Value>,
        ctx: &mut CallContext,
    ) -> Result<Vec<(String, Value)>, MethodError> {
        match method {
            "Mailbox/get" => {
                let request = GetRequest::<String>::from_args(args, ctx)?;
                let mut response = GetResponse::for_request(&request, "s1");
                for id in request.ids.unwrap_or_default() {
                    match self.mailboxes.iter().find(|(m, _)| *m == id) {
                        Some((id, object)) => {
                            let mut object = object.clone();
                            object.insert("id".into(), id.as_str().into());
                            response.list.push(Value::Object(object));
                        }
                        None => response.not_found.push(id.into_string()),
                    }
                }
                Ok(vec![method_response("Mailbox/get", &response)?])
            }
            "Mailbox/set" => {
                let request = SetRequest::from_args(args, ctx)?;
                let mut response =
                    SetResponse::new(request.account_id.clone(), Some("s1".into()), "s2");
                for (cid, object) in request.create {
                    self.next += 1;
                    let id = Id::new(format!("M{}", self.next)).unwrap();
                    self.mailboxes.push((id.clone(), object));
                    ctx.add_created(cid.clone(), id.clone());
                    response.created.insert(cid, json!({"id": id}));
                }
                for target in request.destroy {
                    match ctx.resolve(&target) {
                        Some(id) => {
                            self.mailboxes.retain(|(m, _)| *m != id);
                            response.destroyed.push(id);
                        }
                        None => {
                            response.not_destroyed.insert(
                                target.to_string(),
                                pochta_jmap_proto::SetError::not_found(),
                            );
                        }
                    }
                }
                Ok(vec![method_response("Mailbox/set", &response)?])
            }
            "EmailSubmission/set" => {
                let mut args = Args::new(args);
                let account: String = args.require("accountId")?;
                let _ = args.take_raw("onSuccessUpdateEmail");
                args.finish()?;
                Ok(vec![
                    (
                        "EmailSubmission/set".into(),
                        json!({"accountId": account, "newState": "e2"}),
                    ),
                    (
                        "Email/set".into(),
                        json!({"accountId": account, "newState": "m9", "updated": {"E1": null}}),
                    ),
                ])
            }
            "Fail/now" => Err(MethodError::with_description(
                MethodErrorKind::Forbidden,
                "no",
            )),
            _ => unreachable!("process only calls known methods"),
        }
    }
}

fn request(v: Value) -> Request {
    Request::from_value(v).unwrap()
}

async fn run(v: Value) -> pochta_jmap_proto::Response {
    process(
        request(v),
        &mut Fake::default(),
        &CoreCapability::default(),
        SUPPORTED,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn unknown_capability_rejects_the_request() {
    let r = request(json!({
        "using": [CAPABILITY_CORE, "https://example.com/apis/foobar"],
        "methodCalls": []
    }));
    let err = process(
        r,
        &mut Fake::default(),
        &CoreCapability::default(),
        SUPPORTED,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind, RequestErrorKind::UnknownCapability);
    assert_eq!(
        err.to_json()["type"],
        "urn:ietf:params:jmap:error:unknownCapability"
    );
    assert_eq!(err.status(), 400);
    assert!(err.detail.contains("https://example.com/apis/foobar"));
}

#[tokio::test]
async fn too_many_calls_is_a_limit_error() {
    let limits = CoreCapability {
        max_calls_in_request: 2,
        ..CoreCapability::default()
    };
    let calls: Vec<Value> = (0..3)
        .map(|i| json!(["Core/echo", {}, i.to_string()]))
        .collect();
    let r = request(json!({"using": [CAPABILITY_CORE], "methodCalls": calls}));
    let err = process(r, &mut Fake::default(), &limits, SUPPORTED)
        .await
        .unwrap_err();
    assert_eq!(err.kind, RequestErrorKind::Limit(Limit::MaxCallsInRequest));
    assert_eq!(err.to_json()["limit"], "maxCallsInRequest");
}

#[tokio::test]
async fn core_echo() {
    // RFC 8620 §4.1
    let response = run(json!({
        "using": [CAPABILITY_CORE],
        "methodCalls": [["Core/echo", {"hello": true, "high": 5}, "b3ff"]]
    }))
    .await;
    assert_eq!(
        response.method_responses,
        vec![(
            "Core/echo".to_owned(),
            json!({"hello": true, "high": 5}),
            "b3ff".to_owned()
        )]
    );
    assert_eq!(response.created_ids, None);
}

#[tokio::test]
async fn unknown_method_and_missing_capability() {
    let response = run(json!({
        "using": [CAPABILITY_CORE],
        "methodCalls": [
            ["Nope/get", {}, "a"],
            ["Mailbox/get", {"accountId": "A1", "ids": []}, "b"],
            ["Core/echo", {"x": 1}, "c"]
        ]
    }))
    .await;
    let r = &response.method_responses;
    assert_eq!(r.len(), 3);
    assert_eq!(
        (r[0].0.as_str(), r[0].1["type"].as_str(), r[0].2.as_str()),
        ("error", Some("unknownMethod"), "a")
    );
    // Mailbox/get exists, but the mail capability is not in "using".
    assert_eq!(
        (r[1].0.as_str(), r[1].1["type"].as_str(), r[1].2.as_str()),
        ("error", Some("unknownMethod"), "b")
    );
    // Processing goes on after method errors.
    assert_eq!(
        r[2],
        ("Core/echo".to_owned(), json!({"x": 1}), "c".to_owned())
    );
}

#[tokio::test]
async fn handler_errors_keep_the_call_id() {
    let response = run(json!({
        "using": [CAPABILITY_CORE, CAPABILITY_MAIL],
        "methodCalls": [
            ["Fail/now", {}, "x1"],
            ["Mailbox/get", {"accountId": "A1", "ids": [], "bogus": 1}, "x2"],
            ["Mailbox/get", {"accountId": "A1", "#ids": {"resultOf": "zz", "name": "Mailbox/get", "path": "/ids"}}, "x3"]
        ]
    }))
    .await;
    let r = &response.method_responses;
    assert_eq!(
        r[0],
        (
            "error".to_owned(),
            json!({"type": "forbidden", "description": "no"}),
            "x1".to_owned()
        )
    );
    assert_eq!(r[1].1["type"], "invalidArguments");
    assert_eq!(r[1].2, "x2");
    assert_eq!(r[2].1["type"], "invalidResultReference");
    assert_eq!(r[2].2, "x3");
}

#[tokio::test]
async fn several_responses_for_one_call() {
    let response = run(json!({
        "using": [CAPABILITY_CORE, CAPABILITY_MAIL, CAPABILITY_SUBMISSION],
        "methodCalls": [
            ["EmailSubmission/set", {"accountId": "A1", "onSuccessUpdateEmail": {"#k": {"keywords/$draft": null}}}, "0"],
            ["Core/echo", {"#v": {"resultOf": "0", "name": "Email/set", "path": "/newState"}}, "1"]
        ]
    }))
    .await;
    let r = &response.method_responses;
    assert_eq!(r.len(), 3);
    assert_eq!(
        (r[0].0.as_str(), r[0].2.as_str()),
        ("EmailSubmission/set", "0")
    );
    assert_eq!((r[1].0.as_str(), r[1].2.as_str()), ("Email/set", "0"));
    // A reference can read the implicit response.
    assert_eq!(
        r[2],
        ("Core/echo".to_owned(), json!({"v": "m9"}), "1".to_owned())
    );
}

#[tokio::test]
async fn created_ids_flow_between_calls_and_round_trip() {
    let response = run(json!({
        "using": [CAPABILITY_CORE, CAPABILITY_MAIL],
        "methodCalls": [
            ["Mailbox/set", {"accountId": "A1", "create": {"k1": {"name": "Inbox"}, "k2": {"name": "Junk"}}}, "0"],
            ["Mailbox/get", {"accountId": "A1", "ids": ["#k1", "#k2", "#k1", "#nope", "M1"]}, "1"],
            ["Mailbox/set", {"accountId": "A1", "destroy": ["#k2", "#old", "#nope"]}, "2"]
        ],
        "createdIds": {"old": "M77"}
    }))
    .await;
    let r = &response.method_responses;
    assert_eq!(
        r[0].1["created"],
        json!({"k1": {"id": "M1"}, "k2": {"id": "M2"}})
    );
    assert_eq!(r[0].1["notCreated"], Value::Null);
    let list: Vec<&str> = r[1].1["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(list, ["M1", "M2"]);
    assert_eq!(r[1].1["notFound"], json!(["#nope"]));
    assert_eq!(r[2].1["destroyed"], json!(["M2", "M77"]));
    assert_eq!(
        r[2].1["notDestroyed"],
        json!({"#nope": {"type": "notFound"}})
    );

    let created = response.created_ids.clone().unwrap();
    let expected: HashMap<String, Id> = [("old", "M77"), ("k1", "M1"), ("k2", "M2")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Id::new(v).unwrap()))
        .collect();
    assert_eq!(created, expected);
    let json = serde_json::to_value(&response).unwrap();
    assert_eq!(
        json["createdIds"],
        json!({"old": "M77", "k1": "M1", "k2": "M2"})
    );
}

#[tokio::test]
async fn no_created_ids_in_response_unless_requested() {
    let response = run(json!({
        "using": [CAPABILITY_CORE, CAPABILITY_MAIL],
        "methodCalls": [["Mailbox/set", {"accountId": "A1", "create": {"k1": {}}}, "0"]]
    }))
    .await;
    assert_eq!(response.created_ids, None);
    assert!(
        serde_json::to_value(&response)
            .unwrap()
            .get("createdIds")
            .is_none()
    );
}
