//! Identity/get, /changes, /set (RFC 8621 §6), and the helpers the other
//! JMAP-only object types ([`crate::submission`], [`crate::vacation`]) share:
//! states, `/changes` and property selection over the store's opaque objects.
//!
//! An Identity is stored as a JSON object (everything but `id`) with
//! [`ObjectKind::Identity`]. Every account has at least one: its **default
//! identity** (its own address, named after the local part) is created the
//! first time anything looks at the account's identities (`identities`), and
//! has `mayDelete: false` (RFC 8621 §6 suggests this for "the user's username
//! or other default address"), so an account never ends up with none. Further
//! identities may use any address the account may send as: its own, an alias
//! that reaches it, or a `+detail` form ([`LocalDelivery::may_send_as`],
//! `forbiddenFrom` otherwise); wildcard `*@domain` identities are not offered.
//!
//! [`LocalDelivery::may_send_as`]: pochta_delivery::LocalDelivery::may_send_as

use std::collections::HashSet;

use pochta_addr::Address;
use pochta_jmap_proto::{
    CallContext, ChangesRequest, ChangesResponse, GetRequest, GetResponse, Id, MethodError,
    MethodErrorKind, SetError, SetRequest, SetResponse, apply_patch, method_response,
};
use pochta_store::{ObjectKind, ObjectOp, StoreError, StoredObject};
use serde_json::{Map, Value, json};

use crate::{Ctx, ids, store_error};

/// The properties of an Identity.
const PROPERTIES: [&str; 8] = [
    "id",
    "name",
    "email",
    "replyTo",
    "bcc",
    "textSignature",
    "htmlSignature",
    "mayDelete",
];

/// Longest name or signature accepted, in octets.
const MAX_TEXT: usize = 64 * 1024;

// ---------------------------------------------------------------- shared helpers

/// The JMAP state string of one kind of object (the store's per-kind state).
pub(crate) async fn kind_state(ctx: &Ctx<'_>, kind: ObjectKind) -> Result<String, MethodError> {
    ctx.store()
        .kind_state(ctx.account.id, kind)
        .await
        .map(|s| s.to_string())
        .map_err(store_error)
}

/// `stateMismatch` unless `if_in_state` (when given) is `state` (RFC 8620 §5.3).
pub(crate) fn check_state(if_in_state: Option<&str>, state: &str) -> Result<(), MethodError> {
    match if_in_state {
        Some(s) if s != state => Err(MethodError::with_description(
            MethodErrorKind::StateMismatch,
            format!("the state is {state}, not {s}"),
        )),
        _ => Ok(()),
    }
}

/// The standard `/changes` (RFC 8620 §5.2) of a kind of object, its ids made
/// by `id`. A state that is not ours (not a number, or in the future) is
/// `cannotCalculateChanges`.
pub(crate) async fn object_changes(
    ctx: &Ctx<'_>,
    args: Map<String, Value>,
    call: &CallContext,
    kind: ObjectKind,
    id: fn(u64) -> Id,
) -> Result<Value, MethodError> {
    let request = ChangesRequest::from_args(args, call)?;
    ctx.check_account(&request.account_id)?;
    let cannot = || {
        MethodError::with_description(
            MethodErrorKind::CannotCalculateChanges,
            format!("unknown state {:?}", request.since_state),
        )
    };
    let since: u64 = request.since_state.parse().map_err(|_| cannot())?;
    let max = request
        .max_changes
        .map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX));
    let changes = match ctx.store().changes(ctx.account.id, kind, since, max).await {
        Ok(c) => c,
        Err(StoreError::Invalid(_)) => return Err(cannot()),
        Err(e) => return Err(store_error(e)),
    };
    let response = ChangesResponse {
        account_id: request.account_id,
        old_state: request.since_state,
        new_state: changes.new_state.to_string(),
        has_more_changes: changes.has_more,
        created: changes.created.into_iter().map(id).collect(),
        updated: changes.updated.into_iter().map(id).collect(),
        destroyed: changes.destroyed.into_iter().map(id).collect(),
        extra: Map::new(),
    };
    method_response("", &response).map(|(_, v)| v)
}

/// `invalidArguments` unless every requested property is one of `known`.
pub(crate) fn check_properties(
    properties: Option<&[String]>,
    known: &[&str],
) -> Result<(), MethodError> {
    for p in properties.unwrap_or_default() {
        if !known.contains(&p.as_str()) {
            return Err(MethodError::invalid_arguments(format!(
                "properties: unknown property {p:?}"
            )));
        }
    }
    Ok(())
}

/// `object` (a stored object's JSON, without `id`) as returned by `/get`:
/// with its `id`, and only the requested properties (`id` always).
pub(crate) fn select(id: Id, object: &Map<String, Value>, properties: Option<&[String]>) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), Value::String(id.into_string()));
    for (k, v) in object {
        if properties.is_none_or(|p| p.iter().any(|q| q == k)) {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

/// A stored object's JSON; a corrupt one is a server failure.
pub(crate) fn decode(object: &StoredObject) -> Result<Map<String, Value>, MethodError> {
    match serde_json::from_str(&object.data) {
        Ok(Value::Object(map)) => Ok(map),
        _ => {
            tracing::warn!(id = object.id, "stored JMAP object is not a JSON object");
            Err(MethodError::server_fail("a stored object is corrupt"))
        }
    }
}

/// Validates an `EmailAddress[]|null` value (RFC 8621 §4.1.2.3): objects with
/// a string `email` and a string or null `name`, nothing else.
pub(crate) fn valid_email_addresses(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.iter().all(|item| {
            let Value::Object(o) = item else { return false };
            o.keys().all(|k| k == "name" || k == "email")
                && o.get("email")
                    .is_some_and(|e| e.as_str().is_some_and(|s| !s.chars().any(char::is_control)))
                && o.get("name").is_none_or(|n| {
                    n.is_null() || n.as_str().is_some_and(|s| !s.chars().any(char::is_control))
                })
        }),
        _ => false,
    }
}

// ---------------------------------------------------------------- identities

/// An identity as stored.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    /// Its store id.
    pub id: u64,
    /// Its JSON (without `id`).
    pub object: Map<String, Value>,
}

impl Identity {
    /// Its `email`.
    pub fn email(&self) -> &str {
        self.object
            .get("email")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// The JSON of the account's default identity.
fn default_identity(ctx: &Ctx<'_>) -> Map<String, Value> {
    let address = &ctx.account.address;
    let Value::Object(map) = json!({
        "name": address.local(),
        "email": address.to_string(),
        "replyTo": null,
        "bcc": null,
        "textSignature": "",
        "htmlSignature": "",
        "mayDelete": false,
    }) else {
        unreachable!("a JSON object literal is an object")
    };
    map
}

/// The account's identities, ordered by id; the default identity is created
/// here when the account has none (the one place every path goes through).
pub(crate) async fn identities(ctx: &Ctx<'_>) -> Result<Vec<Identity>, MethodError> {
    let store = ctx.store();
    let mut stored = store
        .objects(ctx.account.id, ObjectKind::Identity)
        .await
        .map_err(store_error)?;
    if stored.is_empty() {
        let data = Value::Object(default_identity(ctx)).to_string();
        store
            .set_objects(
                ctx.account.id,
                ObjectKind::Identity,
                vec![ObjectOp::Create(data)],
            )
            .await
            .map_err(store_error)?;
        stored = store
            .objects(ctx.account.id, ObjectKind::Identity)
            .await
            .map_err(store_error)?;
    }
    stored
        .iter()
        .map(|o| {
            Ok(Identity {
                id: o.id,
                object: decode(o)?,
            })
        })
        .collect()
}

/// Identity/get (RFC 8621 §6.1).
pub async fn get(
    ctx: &mut Ctx<'_>,
    args: Map<String, Value>,
    call: &mut CallContext,
) -> Result<Value, MethodError> {
    let request = GetRequest::<String>::from_args(args, call)?;
    ctx.check_account(&request.account_id)?;
    check_properties(request.properties.as_deref(), &PROPERTIES)?;
    let all = identities(ctx).await?;
    let state = kind_state(ctx, ObjectKind::Identity).await?;
    let mut response = GetResponse::<Value>::for_request(&request, state);
    let properties = request.properties.as_deref();
    match &request.ids {
        None => {
            for identity in &all {
                response.list.push(select(
                    ids::identity(identity.id),
                    &identity.object,
                    properties,
                ));
            }
        }
        Some(wanted) => {
            for id in wanted {
                match ids::parse_identity(id.as_str()).and_then(|n| all.iter().find(|i| i.id == n))
                {
                    Some(identity) => response.list.push(select(
                        ids::identity(identity.id),
                        &identity.object,
                        properties,
                    )),
                    None => response.not_found.push(id.to_string()),
                }
            }
        }
    }
    method_response("Identity/get", &response).map(|(_, v)| v)
}

/// Identity/changes (RFC 8621 §6.2).
pub async fn changes(
    ctx: &mut Ctx<'_>,
    args: Map<String, Value>,
    call: &mut CallContext,
) -> Result<Value, MethodError> {
    // The default identity's creation is a change like any other.
    identities(ctx).await?;
    object_changes(ctx, args, call, ObjectKind::Identity, ids::identity).await
}

/// Validates an identity's JSON as a whole (after defaults or a patch);
/// returns the invalid property names.
fn invalid_identity_properties(object: &Map<String, Value>) -> Vec<String> {
    let mut bad = Vec::new();
    for (k, v) in object {
        let ok = match k.as_str() {
            "name" | "textSignature" | "htmlSignature" => v
                .as_str()
                .is_some_and(|s| s.len() <= MAX_TEXT && (k != "name" || !s.contains(['\r', '\n']))),
            "email" => v.as_str().is_some(),
            "replyTo" | "bcc" => valid_email_addresses(v),
            "mayDelete" => v.is_boolean(),
            _ => false,
        };
        if !ok {
            bad.push(k.clone());
        }
    }
    bad
}

/// Identity/set (RFC 8621 §6.3).
pub async fn set(
    ctx: &mut Ctx<'_>,
    args: Map<String, Value>,
    call: &mut CallContext,
) -> Result<Value, MethodError> {
    let request = SetRequest::from_args(args, call)?;
    ctx.check_account(&request.account_id)?;
    let existing = identities(ctx).await?;
    let old_state = kind_state(ctx, ObjectKind::Identity).await?;
    check_state(request.if_in_state.as_deref(), &old_state)?;
    let mut response = SetResponse::new(
        request.account_id.clone(),
        Some(old_state.clone()),
        old_state,
    );

    // Creates: validated here, then written one at a time so that each gets
    // its id for `#creationId` references.
    for (cid, object) in request.create {
        match create_object(ctx, object).await? {
            Err(e) => {
                response.not_created.insert(cid, e);
            }
            Ok(object) => {
                let data = Value::Object(object.clone()).to_string();
                let result = ctx
                    .store()
                    .set_objects(
                        ctx.account.id,
                        ObjectKind::Identity,
                        vec![ObjectOp::Create(data)],
                    )
                    .await
                    .map_err(store_error)?;
                let Some(Ok(n)) = result.results.first().copied() else {
                    return Err(MethodError::server_fail("the store created nothing"));
                };
                let id = ids::identity(n);
                call.add_created(cid.clone(), id.clone());
                let mut created = object;
                created.insert("id".into(), Value::String(id.into_string()));
                response.created.insert(cid, Value::Object(created));
            }
        }
    }

    let destroying: HashSet<Id> = request
        .destroy
        .iter()
        .filter_map(|d| call.resolve(d))
        .collect();
    let mut ops = Vec::new();
    let mut op_keys = Vec::new();
    for (key, patch) in request.update {
        let shown = key.to_string();
        let Some(id) = call.resolve(&key) else {
            response.not_updated.insert(shown, SetError::not_found());
            continue;
        };
        if destroying.contains(&id) {
            response.not_updated.insert(
                shown,
                SetError::new(pochta_jmap_proto::SetErrorKind::WillDestroy),
            );
            continue;
        }
        let Some(current) =
            ids::parse_identity(id.as_str()).and_then(|n| existing.iter().find(|i| i.id == n))
        else {
            response.not_updated.insert(shown, SetError::not_found());
            continue;
        };
        match update_object(&current.object, &patch) {
            Ok(object) => {
                ops.push(ObjectOp::Update(
                    current.id,
                    Value::Object(object).to_string(),
                ));
                op_keys.push((shown, id, true));
            }
            Err(e) => {
                response.not_updated.insert(shown, e);
            }
        }
    }
    for key in &request.destroy {
        let shown = key.to_string();
        let found = call.resolve(key).and_then(|id| {
            ids::parse_identity(id.as_str())
                .and_then(|n| existing.iter().find(|i| i.id == n))
                .map(|i| (id, i))
        });
        let Some((id, identity)) = found else {
            response.not_destroyed.insert(shown, SetError::not_found());
            continue;
        };
        if identity.object.get("mayDelete") == Some(&Value::Bool(false)) {
            response.not_destroyed.insert(
                shown,
                SetError::forbidden().with_description("this identity may not be deleted"),
            );
            continue;
        }
        ops.push(ObjectOp::Destroy(identity.id));
        op_keys.push((shown, id, false));
    }
    if !ops.is_empty() {
        let result = ctx
            .store()
            .set_objects(ctx.account.id, ObjectKind::Identity, ops)
            .await
            .map_err(store_error)?;
        for ((shown, id, is_update), outcome) in op_keys.into_iter().zip(result.results) {
            match (is_update, outcome) {
                (true, Ok(_)) => {
                    response.updated.insert(id, None);
                }
                (true, Err(_)) => {
                    response.not_updated.insert(shown, SetError::not_found());
                }
                (false, Ok(_)) => response.destroyed.push(id),
                (false, Err(_)) => {
                    response.not_destroyed.insert(shown, SetError::not_found());
                }
            }
        }
    }
    response.new_state = kind_state(ctx, ObjectKind::Identity).await?;
    method_response("Identity/set", &response).map(|(_, v)| v)
}

/// A new identity's JSON with defaults filled in, or why it cannot be
/// created. `Err` only for store failures.
async fn create_object(
    ctx: &Ctx<'_>,
    object: Map<String, Value>,
) -> Result<Result<Map<String, Value>, SetError>, MethodError> {
    let mut bad: Vec<String> = Vec::new();
    for (k, v) in &object {
        match k.as_str() {
            "id" => bad.push(k.clone()),
            // Server-set: accepted only with the value the server would set.
            "mayDelete" if *v != Value::Bool(true) => bad.push(k.clone()),
            _ => {}
        }
    }
    let mut full = Map::new();
    for (k, default) in [
        ("name", json!("")),
        ("replyTo", Value::Null),
        ("bcc", Value::Null),
        ("textSignature", json!("")),
        ("htmlSignature", json!("")),
    ] {
        full.insert(k.into(), object.get(k).cloned().unwrap_or(default));
    }
    full.insert("mayDelete".into(), Value::Bool(true));
    for (k, v) in &object {
        if !full.contains_key(k) && k != "id" {
            full.insert(k.clone(), v.clone());
        }
    }
    bad.extend(invalid_identity_properties(&full));
    let email = object.get("email").and_then(Value::as_str);
    if email.is_none() && !bad.iter().any(|b| b == "email") {
        bad.push("email".into());
    }
    if !bad.is_empty() {
        bad.sort();
        bad.dedup();
        return Ok(Err(SetError::invalid_properties(bad)));
    }
    let email = email.unwrap_or_default();
    let Ok(address) = Address::parse(email) else {
        return Ok(Err(
            SetError::invalid_properties(["email"]).with_description("not an email address")
        ));
    };
    // RFC 8621 §6.3: forbiddenFrom when the user may not send from it.
    let allowed = ctx
        .jmap
        .delivery
        .may_send_as(&ctx.account.address.to_string(), Some(&address))
        .await
        .map_err(store_error)?;
    if !allowed {
        return Ok(Err(SetError::new(
            pochta_jmap_proto::SetErrorKind::ForbiddenFrom,
        )
        .with_description(format!(
            "{email} is not one of this account's addresses"
        ))));
    }
    full.insert("email".into(), Value::String(address.to_string()));
    Ok(Ok(full))
}

/// An identity's JSON after `patch`, validated: `email` is immutable and
/// `mayDelete` server-set, so both must keep their values.
fn update_object(
    current: &Map<String, Value>,
    patch: &Map<String, Value>,
) -> Result<Map<String, Value>, SetError> {
    let patched = apply_patch(current.clone(), patch)?;
    let mut bad = invalid_identity_properties(&patched);
    for fixed in ["email", "mayDelete"] {
        if patched.get(fixed) != current.get(fixed) {
            bad.push(fixed.into());
        }
    }
    if patch.keys().any(|k| k == "id" || k.starts_with("id/")) {
        bad.push("id".into());
    }
    // A reset to null means "default" for the properties that have one.
    let mut patched = patched;
    for (k, default) in [
        ("name", json!("")),
        ("textSignature", json!("")),
        ("htmlSignature", json!("")),
        ("replyTo", Value::Null),
        ("bcc", Value::Null),
    ] {
        if !patched.contains_key(k) {
            patched.insert(k.into(), default);
        }
    }
    if bad.is_empty() {
        Ok(patched)
    } else {
        bad.sort();
        bad.dedup();
        Err(SetError::invalid_properties(bad))
    }
}
