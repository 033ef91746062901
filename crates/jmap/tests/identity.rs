//! Identity/get, /changes, /set (RFC 8621 §6): the default identity every
//! account has, identities for the account's other addresses, and what may
//! not be done.

#![allow(clippy::unwrap_used)]

mod common;

use common::World;
use pochta_addr::Address;
use pochta_store::{Alias, Store};
use serde_json::{Value, json};

#[tokio::test]
async fn every_account_has_a_default_identity() {
    let w = World::new().await;
    let r = w
        .call("Identity/get", json!({"accountId": w.account_id()}))
        .await;
    let list = r["list"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{r}");
    let default = &list[0];
    assert!(default["id"].as_str().unwrap().starts_with('I'));
    assert_eq!(default["email"], "alice@example.com");
    assert_eq!(default["name"], "alice");
    assert_eq!(default["mayDelete"], false);
    assert_eq!(default["replyTo"], Value::Null);
    assert_eq!(default["textSignature"], "");
    // Asking again does not make another.
    let again = w
        .call(
            "Identity/get",
            json!({"accountId": w.account_id(), "ids": [default["id"], "I999"],
                   "properties": ["email"]}),
        )
        .await;
    assert_eq!(
        again["list"],
        json!([{"id": default["id"], "email": "alice@example.com"}])
    );
    assert_eq!(again["notFound"], json!(["I999"]));
    assert_eq!(again["state"], r["state"]);
    let e = w
        .call_error(
            "Identity/get",
            json!({"accountId": w.account_id(), "properties": ["nope"]}),
        )
        .await;
    assert_eq!(e, "invalidArguments");
}

#[tokio::test]
async fn identities_for_the_accounts_own_addresses_only() {
    let w = World::new().await;
    w.store
        .add_alias(Alias {
            address: Address::parse("team@example.com").unwrap(),
            targets: vec![Address::parse("alice@example.com").unwrap()],
        })
        .await
        .unwrap();
    let first = w
        .call("Identity/get", json!({"accountId": w.account_id()}))
        .await;
    let state = first["state"].clone();
    let default_id = first["list"][0]["id"].as_str().unwrap().to_string();
    let r = w
        .call(
            "Identity/set",
            json!({"accountId": w.account_id(), "ifInState": state, "create": {
                "work": {"email": "alice+work@example.com", "name": "Alice at work",
                         "textSignature": "-- \nAlice", "bcc": [{"email": "archive@example.com"}]},
                "team": {"email": "team@example.com"},
                "bob": {"email": "bob@example.com"},
                "remote": {"email": "alice@elsewhere.example"},
                "wild": {"email": "*@example.com"},
                "bad": {"email": "not an address"},
                "none": {"name": "no email"},
                "typed": {"email": "alice@example.com", "replyTo": "x", "mayDelete": false, "id": "I1"}
            }}),
        )
        .await;
    let work = &r["created"]["work"];
    assert!(work["id"].as_str().unwrap().starts_with('I'), "{r}");
    assert_eq!(work["mayDelete"], true);
    assert_eq!(work["htmlSignature"], "", "defaults are reported");
    assert!(
        r["created"]["team"]["id"].is_string(),
        "an alias reaching alice"
    );
    for k in ["bob", "remote", "wild"] {
        assert_eq!(r["notCreated"][k]["type"], "forbiddenFrom", "{k}: {r}");
    }
    assert_eq!(r["notCreated"]["bad"]["type"], "invalidProperties");
    assert_eq!(r["notCreated"]["none"]["properties"], json!(["email"]));
    assert_eq!(
        r["notCreated"]["typed"]["properties"],
        json!(["id", "mayDelete", "replyTo"])
    );
    let work_id = work["id"].as_str().unwrap().to_string();

    // Changes since before the creates.
    let c = w
        .call(
            "Identity/changes",
            json!({"accountId": w.account_id(), "sinceState": state}),
        )
        .await;
    assert_eq!(c["created"].as_array().unwrap().len(), 2, "{c}");
    assert!(c["created"].as_array().unwrap().contains(&json!(work_id)));
    assert_eq!(c["newState"], r["newState"]);
    let e = w
        .call_error(
            "Identity/changes",
            json!({"accountId": w.account_id(), "sinceState": "garbage"}),
        )
        .await;
    assert_eq!(e, "cannotCalculateChanges");

    // Updates: the mutable properties only.
    let r = w
        .call(
            "Identity/set",
            json!({"accountId": w.account_id(), "update": {
                work_id.clone(): {"name": "Alice (work)", "replyTo": [{"name": null, "email": "x@example.com"}]},
                default_id.clone(): {"email": "team@example.com"},
                "I999": {"name": "x"}
            }}),
        )
        .await;
    assert_eq!(r["updated"], json!({work_id.clone(): null}), "{r}");
    assert_eq!(r["notUpdated"][&default_id]["properties"], json!(["email"]));
    assert_eq!(r["notUpdated"]["I999"]["type"], "notFound");
    let got = w
        .call(
            "Identity/get",
            json!({"accountId": w.account_id(), "ids": [work_id.clone()]}),
        )
        .await;
    assert_eq!(got["list"][0]["name"], "Alice (work)");
    assert_eq!(got["list"][0]["replyTo"][0]["email"], "x@example.com");
    assert_eq!(got["list"][0]["textSignature"], "-- \nAlice");

    // The default one stays; others go.
    let r = w
        .call(
            "Identity/set",
            json!({"accountId": w.account_id(), "destroy": [default_id.clone(), work_id.clone(), "I999"]}),
        )
        .await;
    assert_eq!(r["destroyed"], json!([work_id.clone()]), "{r}");
    assert_eq!(r["notDestroyed"][&default_id]["type"], "forbidden");
    assert_eq!(r["notDestroyed"]["I999"]["type"], "notFound");
    let all = w
        .call("Identity/get", json!({"accountId": w.account_id()}))
        .await;
    assert_eq!(all["list"].as_array().unwrap().len(), 2, "default and team");

    let e = w
        .call_error(
            "Identity/set",
            json!({"accountId": w.account_id(), "ifInState": "0", "destroy": []}),
        )
        .await;
    assert_eq!(e, "stateMismatch");
}
