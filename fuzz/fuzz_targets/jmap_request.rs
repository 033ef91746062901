//! JMAP request handling without a store: `Request::parse` of an arbitrary
//! body, then `process` (capabilities, limits, result references,
//! `Core/echo`, created ids) against a handler that takes every method's
//! arguments apart with the standard request types (`/get`, `/changes`,
//! `/set` with patches applied, `/copy`, `/query` with its window,
//! `/queryChanges`), and answers with responses shaped like real ones (ids,
//! lists of objects, created and updated ids, added items) so that result
//! references have paths to resolve. The same bytes also go through the
//! WebSocket message parser and the EventSource parameter parser.
//!
//! Invariants: no panic; a refused request has a problem-details JSON with
//! an HTTP status of 4xx; a processed request's response is valid JSON with
//! one or more responses per call, each carrying that call's id; a query
//! window lies inside the results.

#![no_main]

use std::collections::HashMap;

use async_trait::async_trait;
use libfuzzer_sys::fuzz_target;
use pochta_jmap_proto::*;
use serde_json::{Map, Value, json};

const SUPPORTED: &[&str] = &[CAPABILITY_CORE, CAPABILITY_MAIL, CAPABILITY_SUBMISSION];

struct Fake {
    next: u32,
}

fn sample() -> Map<String, Value> {
    let Value::Object(m) = json!({
        "name": "Inbox",
        "keywords": {"$seen": true},
        "mailboxIds": {"m1": true},
        "nested": {"a": {"b": [1, 2]}}
    }) else {
        return Map::new();
    };
    m
}

/// A found object of any type: enough properties for result-reference paths
/// (`/list/*/threadId`, `/list/0/mailboxIds`, `/list/*/emailIds`).
fn object(id: &str) -> Value {
    json!({
        "id": id,
        "threadId": format!("t{id}"),
        "mailboxIds": {"m1": true},
        "emailIds": [id, "a1"],
        "keywords": {"$seen": true},
        "nested": {"a~b": {"c/d": [1, [2, 3]]}}
    })
}

#[async_trait]
impl MethodHandler for Fake {
    fn capability(&self, method: &str) -> Option<&'static str> {
        let (_, op) = method.split_once('/')?;
        match op {
            "get" | "changes" | "set" | "copy" | "query" | "queryChanges" => {
                Some(if method.starts_with("EmailSubmission") {
                    CAPABILITY_SUBMISSION
                } else {
                    CAPABILITY_MAIL
                })
            }
            _ => None,
        }
    }

    async fn call(
        &mut self,
        method: &str,
        args: Map<String, Value>,
        ctx: &mut CallContext,
    ) -> Result<Vec<(String, Value)>, MethodError> {
        let op = method.split_once('/').map_or("", |(_, op)| op);
        let ids: Vec<Id> = ["a1", "b2", "c3", "d4"]
            .iter()
            .filter_map(|s| Id::new(*s).ok())
            .collect();
        let response = match op {
            "get" => {
                let r = GetRequest::<String>::from_args(args, ctx)?;
                let mut response: GetResponse = GetResponse::for_request(&r, "s1");
                let wanted = r
                    .ids
                    .unwrap_or_else(|| ids.clone())
                    .into_iter()
                    .map(Id::into_string);
                for id in wanted {
                    if ids.iter().any(|i| i.as_str() == id) {
                        response.list.push(object(&id));
                    } else {
                        response.not_found.push(id);
                    }
                }
                method_response(method, &response)?
            }
            "changes" => {
                let r = ChangesRequest::from_args(args, ctx)?;
                (
                    method.to_owned(),
                    json!({"oldState": r.since_state, "newState": "s2", "hasMoreChanges": false,
                           "created": ["a1", "b2"], "updated": ["c3"], "destroyed": []}),
                )
            }
            "set" => {
                let r = SetRequest::from_args(args, ctx)?;
                let mut response = SetResponse::new(r.account_id.clone(), Some("s1".into()), "s2");
                for (cid, _) in &r.create {
                    self.next += 1;
                    let id = Id::new(format!("n{}", self.next))
                        .map_err(|e| MethodError::server_fail(e.0))?;
                    ctx.add_created(cid.clone(), id);
                }
                for (id, patch) in &r.update {
                    let _ = ctx.resolve(id);
                    let _ = patch_properties(patch);
                    if let Ok(patched) = apply_patch(sample(), patch) {
                        let _ = serde_json::to_string(&patched);
                    }
                }
                for id in &r.destroy {
                    if ctx.resolve(id).is_none() {
                        response
                            .not_destroyed
                            .insert(format!("{id:?}"), SetError::not_found());
                    }
                }
                method_response(method, &response)?
            }
            "copy" => {
                let r = CopyRequest::from_args(args, ctx)?;
                (method.to_owned(), json!({"n": r.create.len()}))
            }
            "query" => {
                let r = QueryRequest::from_args(args, ctx)?;
                let w = query_window(
                    &ids,
                    r.position,
                    r.anchor.as_ref(),
                    r.anchor_offset,
                    r.limit,
                    Some(3),
                )?;
                assert!(w.range.start <= w.range.end && w.range.end <= ids.len());
                (
                    method.to_owned(),
                    json!({"queryState": "q1", "canCalculateChanges": true,
                           "position": w.position, "ids": w.slice(&ids), "total": ids.len()}),
                )
            }
            "queryChanges" => {
                let r = QueryChangesRequest::from_args(args, ctx)?;
                (
                    method.to_owned(),
                    json!({"oldQueryState": r.since_query_state, "newQueryState": "q2",
                           "removed": ["d4"], "added": [{"id": "a1", "index": 0}, {"id": "c3", "index": 2}]}),
                )
            }
            _ => return Err(MethodError::unknown_method(method.to_owned())),
        };
        Ok(vec![response])
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = CoreCapability::default();
    let _ = WsClientMessage::parse(data, &limits).map_err(|e| format!("{e:?}"));
    if let Ok(text) = std::str::from_utf8(data) {
        let pairs: Vec<(&str, &str)> = text
            .split('&')
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .collect();
        if let Ok(p) = EventSourceParams::parse(pairs) {
            let _ = p.ping_interval(1, 60);
        }
        let _ = pointer_tokens(text);
    }
    let request = match Request::parse(data, &limits) {
        Ok(r) => r,
        Err(e) => {
            assert!((400..500).contains(&e.status()), "status {}", e.status());
            let _ = e.to_json();
            return;
        }
    };
    let call_ids: Vec<String> = request
        .method_calls
        .iter()
        .map(|c| c.call_id.clone())
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let mut handler = Fake { next: 0 };
    match rt.block_on(process(request, &mut handler, &limits, SUPPORTED)) {
        Err(e) => {
            assert!((400..500).contains(&e.status()));
            let _ = e.to_json();
        }
        Ok(response) => {
            let bytes = response.to_bytes();
            let v: Value = serde_json::from_slice(&bytes).expect("the response is JSON");
            let responses = v["methodResponses"].as_array().expect("methodResponses");
            assert!(
                responses.len() >= call_ids.len(),
                "a call without a response"
            );
            let mut left: HashMap<&str, usize> = HashMap::new();
            for id in &call_ids {
                *left.entry(id.as_str()).or_default() += 1;
            }
            for r in responses {
                let id = r[2].as_str().expect("a call id");
                assert!(
                    left.contains_key(id),
                    "response with an unknown call id {id:?}"
                );
            }
        }
    }
});
