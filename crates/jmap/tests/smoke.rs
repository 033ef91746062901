//! The request loop reaches the handler: capabilities, accounts, echo.

#![allow(clippy::unwrap_used)]

mod common;

use common::World;
use serde_json::json;

#[tokio::test]
async fn echo_and_unknown_methods_and_accounts() {
    let w = World::new().await;
    let r = w
        .request(json!([
            ["Core/echo", {"hello": true}, "a"],
            ["Nope/get", {}, "b"]
        ]))
        .await;
    assert_eq!(
        r["methodResponses"][0],
        json!(["Core/echo", {"hello": true}, "a"])
    );
    assert_eq!(r["methodResponses"][1][0], "error");
    assert_eq!(r["methodResponses"][1][1]["type"], "unknownMethod");
    assert!(r["sessionState"].as_str().is_some_and(|s| !s.is_empty()));
    let session = w.jmap.session(&w.alice, "https://mx.example.com", None);
    let v = serde_json::to_value(&session).unwrap();
    assert_eq!(
        v["primaryAccounts"]["urn:ietf:params:jmap:mail"],
        w.account_id()
    );
    assert_eq!(v["username"], "alice@example.com");
}
