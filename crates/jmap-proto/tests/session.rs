#![allow(clippy::unwrap_used)]
//! The Session resource (RFC 8620 §2) and capability objects.

use std::collections::BTreeMap;

use pochta_jmap_proto::{
    Account, CAPABILITY_CORE, CAPABILITY_MAIL, CAPABILITY_WEBSOCKET, CoreCapability, Id, Session,
    SessionUrls, WebSocketCapability,
};
use serde_json::json;

#[test]
fn core_capability_defaults() {
    let core = CoreCapability::default();
    assert_eq!(
        core.to_value(),
        json!({
            "maxSizeUpload": 50_000_000,
            "maxConcurrentUpload": 4,
            "maxSizeRequest": 10_000_000,
            "maxConcurrentRequests": 8,
            "maxCallsInRequest": 64,
            "maxObjectsInGet": 1000,
            "maxObjectsInSet": 1000,
            "collationAlgorithms": ["i;ascii-numeric", "i;ascii-casemap", "i;unicode-casemap"]
        })
    );
    assert_eq!(serde_json::to_value(&core).unwrap(), core.to_value());
}

#[test]
fn session_shape_and_state() {
    let mut session = Session::new(
        "john@example.com",
        SessionUrls::under("https://jmap.example.com/"),
        &CoreCapability::default(),
    );
    let empty_state = session.state.clone();
    session.add_capability(CAPABILITY_MAIL, json!({}));
    session.add_capability(
        CAPABILITY_WEBSOCKET,
        WebSocketCapability {
            url: "wss://jmap.example.com/jmap/ws/".into(),
            supports_push: true,
        }
        .to_value(),
    );
    let mut caps = BTreeMap::new();
    caps.insert(
        CAPABILITY_MAIL.to_owned(),
        json!({"maxMailboxesPerEmail": null}),
    );
    session.add_account(
        Id::new("A13824").unwrap(),
        Account {
            name: "john@example.com".into(),
            is_personal: true,
            is_read_only: false,
            account_capabilities: caps,
        },
        &[CAPABILITY_MAIL],
    );
    session.state = session.compute_state();
    assert_ne!(session.state, empty_state);
    assert_eq!(
        session.state,
        session.compute_state(),
        "state ignores itself"
    );

    let json = serde_json::to_value(&session).unwrap();
    assert_eq!(json["username"], "john@example.com");
    assert_eq!(json["apiUrl"], "https://jmap.example.com/jmap/api/");
    assert_eq!(
        json["downloadUrl"],
        "https://jmap.example.com/jmap/download/{accountId}/{blobId}/{name}?type={type}"
    );
    assert_eq!(
        json["uploadUrl"],
        "https://jmap.example.com/jmap/upload/{accountId}/"
    );
    assert_eq!(
        json["eventSourceUrl"],
        "https://jmap.example.com/jmap/eventsource/?types={types}&closeafter={closeafter}&ping={ping}"
    );
    assert_eq!(
        json["capabilities"][CAPABILITY_CORE]["maxCallsInRequest"],
        64
    );
    assert_eq!(
        json["capabilities"][CAPABILITY_WEBSOCKET],
        json!({"url": "wss://jmap.example.com/jmap/ws/", "supportsPush": true})
    );
    assert_eq!(
        json["accounts"]["A13824"],
        json!({"name": "john@example.com", "isPersonal": true, "isReadOnly": false, "accountCapabilities": {CAPABILITY_MAIL: {"maxMailboxesPerEmail": null}}})
    );
    assert_eq!(json["primaryAccounts"], json!({CAPABILITY_MAIL: "A13824"}));
    let back: Session = serde_json::from_value(json).unwrap();
    assert_eq!(back, session);
}
