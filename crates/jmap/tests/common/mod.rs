//! A JMAP world for method tests: a fresh store, one account, and requests run
//! through the real processing loop (result references and all).

#![allow(dead_code)] // each test file uses its own part of the helpers

use std::sync::Arc;

use pochta_addr::Address;
use pochta_delivery::{Incoming, LocalDelivery, Trace};
use pochta_jmap::{Jmap, JmapSettings, ids};
use pochta_store::{Account, NewAccount, SqliteStore, Store};
use serde_json::{Value, json};

/// The capabilities every test request uses.
pub const USING: [&str; 4] = [
    "urn:ietf:params:jmap:core",
    "urn:ietf:params:jmap:mail",
    "urn:ietf:params:jmap:submission",
    "urn:ietf:params:jmap:vacationresponse",
];

pub struct World {
    pub dir: tempfile::TempDir,
    pub store: Arc<SqliteStore>,
    pub jmap: Arc<Jmap>,
    pub delivery: Arc<LocalDelivery>,
    pub alice: Account,
}

impl World {
    /// A store with alice@example.com (and bob@example.com, for mail between them).
    pub async fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let mut alice = None;
        for a in ["alice@example.com", "bob@example.com"] {
            let acc = store
                .create_account(NewAccount {
                    address: Address::parse(a).unwrap(),
                    password_hash: "$argon2id$dummy".into(),
                    quota: None,
                })
                .await
                .unwrap();
            alice.get_or_insert(acc);
        }
        let delivery = Arc::new(LocalDelivery::new(
            store.clone(),
            "mx.example.com".into(),
            vec![pochta_addr::Domain::parse("example.com").unwrap()],
        ));
        let jmap = Jmap::new(
            store.clone(),
            delivery.clone(),
            JmapSettings::new("mx.example.com"),
        );
        World {
            dir,
            store,
            jmap,
            delivery,
            alice: alice.unwrap(),
        }
    }

    /// alice's JMAP account id.
    pub fn account_id(&self) -> String {
        ids::account(self.alice.id).to_string()
    }

    /// Runs one request of `calls` (`[name, args, callId]` triples) as alice and
    /// returns the whole response as JSON.
    pub async fn request(&self, calls: Value) -> Value {
        let body = json!({ "using": USING, "methodCalls": calls });
        let response = self
            .jmap
            .handle(&self.alice, body.to_string().as_bytes())
            .await
            .unwrap_or_else(|e| panic!("request error: {}", e.to_json()));
        serde_json::from_slice(&response.to_bytes()).unwrap()
    }

    /// Runs one method call and returns its (first) response arguments; panics
    /// on an `error` response.
    pub async fn call(&self, method: &str, args: Value) -> Value {
        let r = self.request(json!([[method, args, "c0"]])).await;
        let first = &r["methodResponses"][0];
        assert_eq!(first[0], method, "{first}");
        first[1].clone()
    }

    /// Runs one method call expecting an `error` response; returns its type.
    pub async fn call_error(&self, method: &str, args: Value) -> String {
        let r = self.request(json!([[method, args, "c0"]])).await;
        let first = &r["methodResponses"][0];
        assert_eq!(first[0], "error", "{first}");
        first[1]["type"].as_str().unwrap().to_string()
    }

    /// Delivers a raw message to alice's INBOX through local delivery.
    pub async fn deliver(&self, raw: &str) {
        self.deliver_to("alice@example.com", raw).await;
    }

    /// Delivers a raw message to `to`'s INBOX.
    pub async fn deliver_to(&self, to: &str, raw: &str) {
        let msg = Incoming::new(
            Some(Address::parse("sender@remote.example").unwrap()),
            vec![Address::parse(to).unwrap()],
            raw.replace("\r\n", "\n").replace('\n', "\r\n").into_bytes(),
            Trace::default(),
        );
        self.delivery.deliver(msg).await.unwrap();
    }
}
