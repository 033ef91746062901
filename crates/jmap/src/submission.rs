//! EmailSubmission/get, /changes, /query, /queryChanges, /set (RFC 8621 §7).
//!
//! Creating an EmailSubmission sends the email at once, exactly as SMTP
//! submission would: [`LocalDelivery::deliver`] files it for local recipients
//! in the same call and queues remote ones for the relay, with the `Bcc:`
//! header removed (§7.5). There is no delayed sending (`maxDelayedSend: 0`),
//! so every submission is `undoStatus: "final"` from the start and an update
//! to `canceled` is `cannotUnsend`.
//!
//! Submissions are stored as JSON objects of kind
//! [`ObjectKind::EmailSubmission`]. `deliveryStatus` records the outcome at
//! submission time: `yes` for local recipients (delivered to the mailbox),
//! `no` for a local mailbox over quota, `queued` for remote recipients. The
//! relay queue does not report back yet, so a remote recipient stays
//! `queued` (a bounce still reaches the sender as a DSN message).
//!
//! Checks, in order: the identity and email exist (`invalidProperties`), the
//! email fits `maxSize` (`tooLarge`), its `From` addresses are all ones the
//! account may send as (`forbiddenFrom`; none at all is `invalidEmail`), the
//! envelope's `mailFrom` likewise (`forbiddenMailFrom`), and the recipients:
//! none is `noRecipients`, more than the limit `tooManyRecipients`, malformed
//! or unknown local ones `invalidRecipients`.
//!
//! Envelope parameters: `ENVID`, `RET` (mail), `NOTIFY`, `ORCPT` (rcpt) are
//! passed on as DSN requests (RFC 3461); `BODY`, `SIZE` and `SMTPUTF8` are
//! accepted; anything else is `invalidProperties`.
//!
//! [`LocalDelivery::deliver`]: pochta_delivery::LocalDelivery::deliver

use std::cmp::Ordering;
use std::collections::HashMap;

use pochta_addr::Address;
use pochta_delivery::{DeliveryError, Incoming, RecipientCheck, RecipientDsn, Trace};
use pochta_jmap_proto::{
    Args, CallContext, Filter, GetRequest, GetResponse, Id, IdOrRef, MethodError, MethodErrorKind,
    QueryChangesRequest, QueryRequest, SetError, SetErrorKind, SetRequest, SetResponse, from_value,
    method_response,
};
use pochta_store::{ObjectKind, ObjectOp, StoreError, dsn_notify};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::email::get::{parse_utc_date, utc_date};
use crate::email::set::unix_now;
use crate::identity::{
    Identity, check_properties, check_state, decode, identities, kind_state, object_changes, select,
};
use crate::{Ctx, ids, store_error};

/// The properties of an EmailSubmission.
const PROPERTIES: [&str; 10] = [
    "id",
    "identityId",
    "emailId",
    "threadId",
    "envelope",
    "sendAt",
    "undoStatus",
    "deliveryStatus",
    "dsnBlobIds",
    "mdnBlobIds",
];

/// The account's submissions: store id and JSON, ordered by id.
async fn submissions(ctx: &Ctx<'_>) -> Result<Vec<(u64, Map<String, Value>)>, MethodError> {
    ctx.store()
        .objects(ctx.account.id, ObjectKind::EmailSubmission)
        .await
        .map_err(store_error)?
        .iter()
        .map(|o| Ok((o.id, decode(o)?)))
        .collect()
}

/// EmailSubmission/get (RFC 8621 §7.1).
pub async fn get(
    ctx: &mut Ctx<'_>,
    args: Map<String, Value>,
    call: &mut CallContext,
) -> Result<Value, MethodError> {
    let request = GetRequest::<String>::from_args(args, call)?;
    ctx.check_account(&request.account_id)?;
    check_properties(request.properties.as_deref(), &PROPERTIES)?;
    let state = kind_state(ctx, ObjectKind::EmailSubmission).await?;
    let mut response = GetResponse::<Value>::for_request(&request, state);
    let properties = request.properties.as_deref();
    match &request.ids {
        None => {
            let all = submissions(ctx).await?;
            if u64::try_from(all.len()).unwrap_or(u64::MAX) > call.limits().max_objects_in_get {
                return Err(MethodError::request_too_large(
                    "too many submissions for ids: null; ask for fewer ids",
                ));
            }
            for (id, object) in &all {
                response
                    .list
                    .push(select(ids::submission(*id), object, properties));
            }
        }
        Some(wanted) => {
            let numbers: Vec<u64> = wanted
                .iter()
                .filter_map(|i| ids::parse_submission(i.as_str()))
                .collect();
            let found = ctx
                .store()
                .objects_by_id(ctx.account.id, ObjectKind::EmailSubmission, &numbers)
                .await
                .map_err(store_error)?;
            for id in wanted {
                match ids::parse_submission(id.as_str())
                    .and_then(|n| found.iter().find(|o| o.id == n))
                {
                    Some(o) => {
                        response
                            .list
                            .push(select(ids::submission(o.id), &decode(o)?, properties))
                    }
                    None => response.not_found.push(id.to_string()),
                }
            }
        }
    }
    method_response("EmailSubmission/get", &response).map(|(_, v)| v)
}

/// EmailSubmission/changes (RFC 8621 §7.2).
pub async fn changes(
    ctx: &mut Ctx<'_>,
    args: Map<String, Value>,
    call: &mut CallContext,
) -> Result<Value, MethodError> {
    object_changes(
        ctx,
        args,
        call,
        ObjectKind::EmailSubmission,
        ids::submission,
    )
    .await
}

/// A FilterCondition of EmailSubmission/query (RFC 8621 §7.3).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Condition {
    identity_ids: Option<Vec<String>>,
    email_ids: Option<Vec<String>>,
    thread_ids: Option<Vec<String>>,
    undo_status: Option<String>,
    before: Option<String>,
    after: Option<String>,
    /// Parsed `before`.
    #[serde(skip)]
    before_at: Option<i64>,
    /// Parsed `after`.
    #[serde(skip)]
    after_at: Option<i64>,
}

impl Condition {
    fn matches(&self, o: &Map<String, Value>) -> bool {
        let field = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or_default();
        let within = |list: &Option<Vec<String>>, k: &str| {
            list.as_ref()
                .is_none_or(|l| l.iter().any(|x| x == field(k)))
        };
        let sent = parse_utc_date(field("sendAt")).unwrap_or_default();
        within(&self.identity_ids, "identityId")
            && within(&self.email_ids, "emailId")
            && within(&self.thread_ids, "threadId")
            && self
                .undo_status
                .as_ref()
                .is_none_or(|s| s == field("undoStatus"))
            && self.before_at.is_none_or(|b| sent < b)
            && self.after_at.is_none_or(|a| sent >= a)
    }
}

/// EmailSubmission/query (RFC 8621 §7.3): filters on `identityIds`,
/// `emailIds`, `threadIds`, `undoStatus`, `before`, `after`; sorts on
/// `emailId`, `threadId` and `sentAt` (the RFC's name; `sendAt`, the
/// property's, works too).
pub async fn query(
    ctx: &mut Ctx<'_>,
    args: Map<String, Value>,
    call: &mut CallContext,
) -> Result<Value, MethodError> {
    let request = QueryRequest::from_args(args, call)?;
    ctx.check_account(&request.account_id)?;
    let filter = match &request.filter {
        None => None,
        Some(f) => Some(Filter::parse(f, &mut |map: &Map<String, Value>| {
            let mut c: Condition = from_value("filter", Value::Object(map.clone()))?;
            let date = |s: &Option<String>, name: &str| match s {
                None => Ok(None),
                Some(s) => parse_utc_date(s).map(Some).ok_or_else(|| {
                    MethodError::invalid_arguments(format!("filter: {name} is not a UTCDate"))
                }),
            };
            c.before_at = date(&c.before, "before")?;
            c.after_at = date(&c.after, "after")?;
            Ok(c)
        })?),
    };
    for c in &request.sort {
        if !matches!(
            c.property.as_str(),
            "emailId" | "threadId" | "sentAt" | "sendAt"
        ) {
            return Err(MethodError::with_description(
                MethodErrorKind::UnsupportedSort,
                format!("cannot sort on {:?}", c.property),
            ));
        }
    }
    let state = kind_state(ctx, ObjectKind::EmailSubmission).await?;
    let mut all: Vec<(u64, Map<String, Value>)> = submissions(ctx)
        .await?
        .into_iter()
        .filter(|(_, o)| {
            filter
                .as_ref()
                .is_none_or(|f| f.matches(&mut |c: &Condition| c.matches(o)))
        })
        .collect();
    all.sort_by(|(ia, a), (ib, b)| {
        for c in &request.sort {
            let key = if c.property == "sentAt" {
                "sendAt"
            } else {
                c.property.as_str()
            };
            let field = |o: &Map<String, Value>| {
                o.get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let order = if key == "sendAt" {
                parse_utc_date(&field(a)).cmp(&parse_utc_date(&field(b)))
            } else {
                field(a).cmp(&field(b))
            };
            let order = if c.is_ascending {
                order
            } else {
                order.reverse()
            };
            if order != Ordering::Equal {
                return order;
            }
        }
        ia.cmp(ib)
    });
    let ids: Vec<Id> = all.iter().map(|(n, _)| ids::submission(*n)).collect();
    let response = request.respond(&ids, state, false, None)?;
    method_response("EmailSubmission/query", &response).map(|(_, v)| v)
}

/// EmailSubmission/queryChanges (RFC 8621 §7.4): query results are not
/// tracked, so always `cannotCalculateChanges` (`/query` says
/// `canCalculateChanges: false`); the client queries again.
pub async fn query_changes(
    ctx: &mut Ctx<'_>,
    args: Map<String, Value>,
    call: &mut CallContext,
) -> Result<Value, MethodError> {
    let request = QueryChangesRequest::from_args(args, call)?;
    ctx.check_account(&request.account_id)?;
    Err(MethodError::with_description(
        MethodErrorKind::CannotCalculateChanges,
        "EmailSubmission query changes are not tracked; query again",
    ))
}

/// EmailSubmission/set (RFC 8621 §7.5). Returns its response and, when
/// `onSuccessUpdateEmail` or `onSuccessDestroyEmail` is given, the implicit
/// Email/set's after it.
pub async fn set(
    ctx: &mut Ctx<'_>,
    args: Map<String, Value>,
    call: &mut CallContext,
) -> Result<Vec<(String, Value)>, MethodError> {
    let mut args = Args::new(args);
    let request = SetRequest::parse(&mut args, call)?;
    let on_update = args.take::<Map<String, Value>>("onSuccessUpdateEmail")?;
    let on_destroy = args.take::<Vec<String>>("onSuccessDestroyEmail")?;
    args.finish()?;
    ctx.check_account(&request.account_id)?;
    let old_state = kind_state(ctx, ObjectKind::EmailSubmission).await?;
    check_state(request.if_in_state.as_deref(), &old_state)?;
    let mut response = SetResponse::new(
        request.account_id.clone(),
        Some(old_state.clone()),
        old_state,
    );
    // Submission id → its email id, for every submission created, updated
    // or destroyed successfully (what onSuccess… may refer to).
    let mut succeeded: HashMap<Id, Id> = HashMap::new();

    if !request.create.is_empty() {
        let identities = identities(ctx).await?;
        for (cid, object) in &request.create {
            match create(ctx, &identities, object, call).await? {
                Ok((n, stored)) => {
                    let id = ids::submission(n);
                    call.add_created(cid.clone(), id.clone());
                    if let Some(Ok(email)) =
                        stored.get("emailId").and_then(Value::as_str).map(Id::new)
                    {
                        succeeded.insert(id.clone(), email);
                    }
                    let mut created = stored;
                    created.insert("id".into(), Value::String(id.into_string()));
                    response.created.insert(cid.clone(), Value::Object(created));
                }
                Err(e) => {
                    response.not_created.insert(cid.clone(), e);
                }
            }
        }
    }

    let existing = if request.update.is_empty() && request.destroy.is_empty() {
        Vec::new()
    } else {
        submissions(ctx).await?
    };
    let find = |id: &Id| {
        ids::parse_submission(id.as_str()).and_then(|n| existing.iter().find(|(m, _)| *m == n))
    };
    let email_of = |o: &Map<String, Value>| {
        o.get("emailId")
            .and_then(Value::as_str)
            .and_then(|s| Id::new(s).ok())
    };
    let destroying: Vec<Id> = request
        .destroy
        .iter()
        .filter_map(|d| call.resolve(d))
        .collect();
    for (key, patch) in &request.update {
        let shown = key.to_string();
        let Some((id, object)) = call.resolve(key).and_then(|id| find(&id).map(|f| (id, f))) else {
            response.not_updated.insert(shown, SetError::not_found());
            continue;
        };
        if destroying.contains(&id) {
            response
                .not_updated
                .insert(shown, SetError::new(SetErrorKind::WillDestroy));
            continue;
        }
        match check_update(patch) {
            Ok(()) => {
                if let Some(email) = email_of(&object.1) {
                    succeeded.insert(id.clone(), email);
                }
                response.updated.insert(id, None);
            }
            Err(e) => {
                response.not_updated.insert(shown, e);
            }
        }
    }
    let mut ops = Vec::new();
    for key in &request.destroy {
        let shown = key.to_string();
        let Some((id, (n, object))) = call.resolve(key).and_then(|id| find(&id).map(|f| (id, f)))
        else {
            response.not_destroyed.insert(shown, SetError::not_found());
            continue;
        };
        // Destroying the record does not touch the delivery (§7.5).
        ops.push(ObjectOp::Destroy(*n));
        if let Some(email) = email_of(object) {
            succeeded.insert(id.clone(), email);
        }
        response.destroyed.push(id);
    }
    if !ops.is_empty() {
        ctx.store()
            .set_objects(ctx.account.id, ObjectKind::EmailSubmission, ops)
            .await
            .map_err(store_error)?;
    }
    response.new_state = kind_state(ctx, ObjectKind::EmailSubmission).await?;
    let mut out = vec![method_response("EmailSubmission/set", &response)?];

    // §7.5: one implicit Email/set after all the submissions, answered
    // after EmailSubmission/set's response with the same call id.
    if on_update.is_some() || on_destroy.is_some() {
        let email_for = |key: &str| {
            call.resolve_str(key)
                .and_then(|id| succeeded.get(&id).cloned())
        };
        let mut update = Vec::new();
        for (key, patch) in on_update.unwrap_or_default() {
            let Some(email) = email_for(&key) else {
                continue;
            };
            match patch {
                Value::Object(p) => update.push((IdOrRef::Id(email), p)),
                _ => {
                    return Err(MethodError::invalid_arguments(format!(
                        "onSuccessUpdateEmail.{key}: expected a patch object"
                    )));
                }
            }
        }
        let destroy: Vec<IdOrRef> = on_destroy
            .unwrap_or_default()
            .iter()
            .filter_map(|key| email_for(key))
            .map(IdOrRef::Id)
            .collect();
        let implicit = SetRequest {
            account_id: request.account_id.clone(),
            if_in_state: None,
            create: Vec::new(),
            update,
            destroy,
        };
        out.push(match crate::email::set::apply(ctx, implicit, call).await {
            Ok(r) => method_response("Email/set", &r)?,
            Err(e) => e.to_response(),
        });
    }
    Ok(out)
}

/// An update may only set `undoStatus`, and only to what it is: `final`
/// (`canceled` is `cannotUnsend`: nothing waits to be sent).
fn check_update(patch: &Map<String, Value>) -> Result<(), SetError> {
    let mut bad = Vec::new();
    for (k, v) in patch {
        match (k.as_str(), v.as_str()) {
            ("undoStatus", Some("final")) => {}
            ("undoStatus", Some("canceled")) => {
                return Err(SetError::new(SetErrorKind::CannotUnsend)
                    .with_description("the email was sent at once; it cannot be recalled"));
            }
            _ => bad.push(k.clone()),
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(SetError::invalid_properties(bad))
    }
}

/// An Envelope Address (RFC 8621 §7): an address and its SMTP parameters.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvelopeAddress {
    email: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
}

/// An Envelope (RFC 8621 §7).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Envelope {
    mail_from: EnvelopeAddress,
    rcpt_to: Vec<EnvelopeAddress>,
}

fn address_json(a: &EnvelopeAddress) -> Value {
    json!({
        "email": a.email,
        "parameters": a.parameters.clone().map_or(Value::Null, Value::Object),
    })
}

/// The DSN requests among MAIL FROM parameters: `(envid, ret_full,
/// smtputf8)`, or `None` for a parameter we do not take.
fn mail_parameters(p: Option<&Map<String, Value>>) -> Option<(Option<String>, bool, bool)> {
    let mut envid = None;
    let mut ret_full = true;
    let mut smtputf8 = false;
    for (k, v) in p.into_iter().flatten() {
        let value = v.as_str();
        match k.to_ascii_uppercase().as_str() {
            "ENVID" => {
                let value = value?;
                // RFC 3461 §4.4: printable ASCII without spaces, as the SMTP
                // server demands; a line break must never reach the queue.
                if !value.bytes().all(|b| (0x21..0x7f).contains(&b)) {
                    return None;
                }
                envid = Some(value.to_string()).filter(|s| s.len() <= 100);
            }
            "RET" => match value?.to_ascii_uppercase().as_str() {
                "FULL" => ret_full = true,
                "HDRS" => ret_full = false,
                _ => return None,
            },
            "SMTPUTF8" => smtputf8 = true,
            "BODY" | "SIZE" => {}
            _ => return None,
        }
    }
    Some((envid, ret_full, smtputf8))
}

/// The DSN requests among RCPT TO parameters, or `None` for a parameter we
/// do not take.
fn rcpt_parameters(p: Option<&Map<String, Value>>) -> Option<RecipientDsn> {
    let mut dsn = RecipientDsn::default();
    for (k, v) in p.into_iter().flatten() {
        match k.to_ascii_uppercase().as_str() {
            "NOTIFY" => {
                for word in v.as_str()?.split(',') {
                    dsn.notify |= match word.trim().to_ascii_uppercase().as_str() {
                        "NEVER" => dsn_notify::NEVER,
                        "SUCCESS" => dsn_notify::SUCCESS,
                        "FAILURE" => dsn_notify::FAILURE,
                        "DELAY" => dsn_notify::DELAY,
                        _ => return None,
                    };
                }
                if dsn.notify & dsn_notify::NEVER != 0 && dsn.notify != dsn_notify::NEVER {
                    return None;
                }
            }
            "ORCPT" => {
                let value = v.as_str()?;
                let addr = match value.split_once(';') {
                    Some((kind, a)) if kind.eq_ignore_ascii_case("rfc822") => a,
                    Some(_) => return None,
                    None => value,
                };
                if addr.is_empty() || addr.chars().any(char::is_control) {
                    return None;
                }
                dsn.orcpt = Some(addr.to_string());
            }
            _ => return None,
        }
    }
    Some(dsn)
}

/// The message without its top-level `Bcc:` fields (§7.5: "The server MUST
/// remove any Bcc header") and `Return-Path:` fields (the transport adds the
/// one that counts).
fn strip_fields(raw: &[u8]) -> Vec<u8> {
    let end = pochta_message::header_end(raw);
    let mut out = Vec::with_capacity(raw.len());
    let mut pos = 0;
    let mut skipping = false;
    while pos < end {
        let line_end = raw[pos..end]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(end, |i| pos + i + 1);
        let line = &raw[pos..line_end];
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation {
            let name = line.split(|&b| b == b':').next().unwrap_or_default();
            let name = String::from_utf8_lossy(name);
            let name = name.trim();
            skipping = name.eq_ignore_ascii_case("bcc") || name.eq_ignore_ascii_case("return-path");
        }
        if !skipping {
            out.extend_from_slice(line);
        }
        pos = line_end;
    }
    out.extend_from_slice(&raw[end..]);
    out
}

/// The outcome of one recipient, for `deliveryStatus`.
fn status(reply: &str, delivered: &str) -> Value {
    json!({ "smtpReply": reply, "delivered": delivered, "displayed": "unknown" })
}

/// Creates (and sends) one submission; returns its store id and JSON.
async fn create(
    ctx: &Ctx<'_>,
    identities: &[Identity],
    object: &Map<String, Value>,
    call: &CallContext,
) -> Result<Result<(u64, Map<String, Value>), SetError>, MethodError> {
    let mut bad: Vec<String> = Vec::new();
    for (k, v) in object {
        match k.as_str() {
            "identityId" | "emailId" | "envelope" => {}
            "undoStatus" if v.as_str() == Some("final") => {}
            _ => bad.push(k.clone()),
        }
    }
    let identity = object
        .get("identityId")
        .and_then(Value::as_str)
        .and_then(|s| call.resolve_str(s))
        .and_then(|id| ids::parse_identity(id.as_str()))
        .and_then(|n| identities.iter().find(|i| i.id == n));
    if identity.is_none() {
        bad.push("identityId".into());
    }
    let email = match object
        .get("emailId")
        .and_then(Value::as_str)
        .and_then(|s| call.resolve_str(s))
        .and_then(|id| ids::parse_email(id.as_str()))
    {
        Some(n) => ctx
            .store()
            .message(ctx.account.id, n)
            .await
            .map_err(store_error)?,
        None => None,
    };
    if email.is_none() {
        bad.push("emailId".into());
    }
    let envelope: Option<Envelope> = match object.get("envelope") {
        None | Some(Value::Null) => None,
        Some(v) => match serde_json::from_value(v.clone()) {
            Ok(e) => Some(e),
            Err(_) => {
                bad.push("envelope".into());
                None
            }
        },
    };
    let (Some(identity), Some(email)) = (identity, email) else {
        return Ok(Err(SetError::invalid_properties(bad)));
    };
    if !bad.is_empty() {
        return Ok(Err(SetError::invalid_properties(bad)));
    }

    let max = ctx.jmap.settings.max_message_size;
    if email.summary.size > max {
        return Ok(Err(SetError::too_large(Some(max))));
    }
    let user = ctx.account.address.to_string();
    let user = user.as_str();
    let delivery = &ctx.jmap.delivery;
    let may_send = |a: Address| async move {
        delivery
            .may_send_as(user, Some(&a))
            .await
            .map_err(store_error)
    };

    // §7.5 forbiddenFrom: every From address must be one of ours.
    let meta = &email.meta;
    if meta.from.is_empty() {
        return Ok(Err(
            SetError::invalid_email(["from"]).with_description("the email has no From address")
        ));
    }
    for from in &meta.from {
        let Ok(address) = Address::parse(&from.email) else {
            return Ok(Err(SetError::invalid_email(["from"])));
        };
        if !may_send(address).await? {
            return Ok(Err(SetError::new(SetErrorKind::ForbiddenFrom)
                .with_description(format!(
                    "{} is not one of this account's addresses",
                    from.email
                ))));
        }
    }
    let identity_address = match Address::parse(identity.email()) {
        Ok(a) => a,
        Err(_) => return Ok(Err(SetError::invalid_properties(["identityId"]))),
    };

    // The envelope: given, or made from the email (§7, "envelope").
    let (mail_from, mail_params, rcpts): (Address, _, Vec<EnvelopeAddress>) = match &envelope {
        Some(e) => {
            let Ok(address) = Address::parse(&e.mail_from.email) else {
                return Ok(Err(SetError::new(SetErrorKind::ForbiddenMailFrom)
                    .with_description(
                        "mailFrom is not an address this account may use",
                    )));
            };
            if !may_send(address.clone()).await? {
                return Ok(Err(SetError::new(SetErrorKind::ForbiddenMailFrom)
                    .with_description(format!(
                        "{} is not one of this account's addresses",
                        e.mail_from.email
                    ))));
            }
            (address, e.mail_from.parameters.clone(), e.rcpt_to.clone())
        }
        None => {
            // The Sender, else the From; the identity's address if that is
            // not ours.
            let first = meta.sender.first().or(meta.from.first());
            let candidate = first.and_then(|a| Address::parse(&a.email).ok());
            let from = match candidate {
                Some(a) if may_send(a.clone()).await? => a,
                _ => identity_address.clone(),
            };
            let mut rcpts: Vec<EnvelopeAddress> = Vec::new();
            let mut seen: Vec<String> = Vec::new();
            for a in meta.to.iter().chain(&meta.cc).chain(&meta.bcc) {
                let key = Address::parse(&a.email)
                    .map(|x| x.key())
                    .unwrap_or_else(|_| a.email.to_ascii_lowercase());
                if !seen.contains(&key) {
                    seen.push(key);
                    rcpts.push(EnvelopeAddress {
                        email: a.email.clone(),
                        parameters: None,
                    });
                }
            }
            (from, None, rcpts)
        }
    };
    let Some((envid, ret_full, utf8_param)) = mail_parameters(mail_params.as_ref()) else {
        return Ok(Err(SetError::invalid_properties(["envelope"])
            .with_description("unsupported MAIL FROM parameter")));
    };

    // Recipients (§7.5 noRecipients, tooManyRecipients, invalidRecipients).
    if rcpts.is_empty() {
        return Ok(Err(SetError::new(SetErrorKind::NoRecipients)));
    }
    let max_rcpts = ctx.jmap.settings.max_recipients;
    if rcpts.len() > max_rcpts {
        return Ok(Err(SetError::too_many_recipients(max_rcpts as u64)));
    }
    let mut invalid: Vec<String> = Vec::new();
    let mut recipients: Vec<Address> = Vec::new();
    let mut dsns: Vec<RecipientDsn> = Vec::new();
    let mut delivery_status = Map::new();
    for r in &rcpts {
        let Some(dsn) = rcpt_parameters(r.parameters.as_ref()) else {
            return Ok(Err(SetError::invalid_properties(["envelope"])
                .with_description("unsupported RCPT TO parameter")));
        };
        let Ok(address) = Address::parse(&r.email) else {
            invalid.push(r.email.clone());
            continue;
        };
        // Address literals are refused as SMTP submission refuses them: the
        // relay would otherwise connect wherever a user points it (internal
        // hosts included).
        if address.domain().is_literal() {
            invalid.push(r.email.clone());
            continue;
        }
        if !delivery.is_local_domain(address.domain()) {
            delivery_status.insert(
                r.email.clone(),
                status("250 2.0.0 queued for relay", "queued"),
            );
            recipients.push(address);
            dsns.push(dsn);
            continue;
        }
        match delivery.check_recipient(&address).await {
            RecipientCheck::Local => {
                delivery_status.insert(
                    r.email.clone(),
                    status("250 2.1.5 delivered to the mailbox", "yes"),
                );
                recipients.push(address);
                dsns.push(dsn);
            }
            RecipientCheck::OverQuota => {
                // The one recipient fails, as it would after SMTP's RCPT.
                delivery_status.insert(r.email.clone(), status("552 5.2.2 mailbox full", "no"));
            }
            RecipientCheck::UnknownUser | RecipientCheck::NotLocal => {
                invalid.push(r.email.clone());
            }
            RecipientCheck::TempFail => {
                return Ok(Err(SetError::new(SetErrorKind::ForbiddenToSend)
                    .with_description(
                        "recipients cannot be checked now; try again later",
                    )));
            }
        }
    }
    if !invalid.is_empty() {
        return Ok(Err(SetError::invalid_recipients(invalid)));
    }

    // Send: Bcc removed, completed like any submission.
    if !recipients.is_empty() {
        let raw = ctx
            .store()
            .read_blob(ctx.account.id, email.summary.blob_id)
            .await
            .map_err(store_error)?;
        let body = strip_fields(&raw);
        // As SMTP submission: receivers disagree on which of several From
        // fields counts, so the check above could be read past.
        if pochta_message::count_headers(&body, "From") > 1 {
            return Ok(Err(SetError::invalid_email(["from"]).with_description(
                "the email has more than one From header field",
            )));
        }
        let header_end = pochta_message::header_end(&body);
        let smtputf8 = utf8_param
            || !body[..header_end].is_ascii()
            || !mail_from.is_ascii()
            || recipients.iter().any(|r| !r.is_ascii());
        let mut incoming = Incoming::new(
            Some(mail_from.clone()),
            recipients,
            body,
            Trace {
                protocol: "HTTP",
                user: Some(ctx.account.address.to_string()),
                ..Trace::default()
            },
        );
        incoming.submission = true;
        incoming.relay = true;
        incoming.recipient_dsn = dsns;
        incoming.envid = envid;
        incoming.ret_full = ret_full;
        incoming.smtputf8 = smtputf8;
        match delivery.deliver(incoming).await {
            Ok(d) => {
                tracing::info!(
                    id = %d.id,
                    account = ctx.account.id,
                    accounts = d.accounts,
                    queued = d.queued,
                    "JMAP submission sent"
                );
            }
            Err(DeliveryError::TooManyHops(n)) => {
                return Ok(Err(SetError::invalid_email(["headers"])
                    .with_description(format!("{n} Received fields: a mail loop"))));
            }
            Err(DeliveryError::NoRecipients) => {
                return Ok(Err(SetError::new(SetErrorKind::NoRecipients)
                    .with_description("no recipient exists any more")));
            }
            Err(DeliveryError::Store(StoreError::OverQuota)) => {
                return Ok(Err(SetError::new(SetErrorKind::ForbiddenToSend)
                    .with_description("a recipient's mailbox is full")));
            }
            Err(DeliveryError::Store(e)) => return Err(store_error(e)),
        }
    }

    let mut stored = Map::new();
    stored.insert(
        "identityId".into(),
        Value::String(ids::identity(identity.id).into_string()),
    );
    stored.insert(
        "emailId".into(),
        Value::String(ids::email(email.summary.id).into_string()),
    );
    stored.insert(
        "threadId".into(),
        Value::String(ids::thread(email.summary.thread_id).into_string()),
    );
    stored.insert(
        "envelope".into(),
        json!({
            "mailFrom": address_json(&EnvelopeAddress {
                email: mail_from.to_string(),
                parameters: mail_params,
            }),
            "rcptTo": rcpts.iter().map(address_json).collect::<Vec<_>>(),
        }),
    );
    stored.insert("sendAt".into(), Value::String(utc_date(unix_now())));
    stored.insert("undoStatus".into(), Value::String("final".into()));
    stored.insert("deliveryStatus".into(), Value::Object(delivery_status));
    stored.insert("dsnBlobIds".into(), json!([]));
    stored.insert("mdnBlobIds".into(), json!([]));
    let result = ctx
        .store()
        .set_objects(
            ctx.account.id,
            ObjectKind::EmailSubmission,
            vec![ObjectOp::Create(Value::Object(stored.clone()).to_string())],
        )
        .await
        .map_err(|e| {
            // The mail is out; only the record is missing.
            tracing::warn!(error = %e, "sent, but the EmailSubmission was not recorded");
            store_error(e)
        })?;
    match result.results.first() {
        Some(Ok(n)) => Ok(Ok((*n, stored))),
        _ => Err(MethodError::server_fail("the store created nothing")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcc_and_return_path_are_removed() {
        let raw = b"Return-Path: <x@y>\r\nFrom: a@example.com\r\nBcc: secret@example.com,\r\n  other@example.com\r\nTo: b@example.com\r\n\r\nBcc: in the body stays\r\n";
        let out = String::from_utf8(strip_fields(raw)).expect("utf-8");
        assert_eq!(
            out,
            "From: a@example.com\r\nTo: b@example.com\r\n\r\nBcc: in the body stays\r\n"
        );
    }

    #[test]
    fn envelope_parameters() {
        let p = |v: Value| v.as_object().cloned();
        assert_eq!(
            mail_parameters(p(json!({"ENVID": "e1", "RET": "HDRS"})).as_ref()),
            Some((Some("e1".into()), false, false))
        );
        assert_eq!(mail_parameters(p(json!({"XFOO": null})).as_ref()), None);
        let dsn = rcpt_parameters(
            p(json!({"NOTIFY": "SUCCESS,FAILURE", "ORCPT": "rfc822;a@b"})).as_ref(),
        )
        .expect("valid");
        assert_eq!(dsn.notify, dsn_notify::SUCCESS | dsn_notify::FAILURE);
        assert_eq!(dsn.orcpt.as_deref(), Some("a@b"));
        assert!(rcpt_parameters(p(json!({"NOTIFY": "NEVER,SUCCESS"})).as_ref()).is_none());
        // Line breaks (and other controls) are refused, not queued.
        for envid in ["a\r\nRSET", "a b", "é"] {
            assert_eq!(mail_parameters(p(json!({"ENVID": envid})).as_ref()), None);
        }
        for orcpt in ["rfc822;a@b\r\nRSET", "a@b\n", "rfc822;"] {
            assert!(rcpt_parameters(p(json!({"ORCPT": orcpt})).as_ref()).is_none());
        }
    }

    #[test]
    fn canceling_is_refused() {
        let patch = |v: Value| v.as_object().cloned().expect("an object");
        assert_eq!(
            check_update(&patch(json!({"undoStatus": "canceled"})))
                .expect_err("refused")
                .kind,
            SetErrorKind::CannotUnsend
        );
        assert!(check_update(&patch(json!({"undoStatus": "final"}))).is_ok());
        assert_eq!(
            check_update(&patch(json!({"emailId": "M1"})))
                .expect_err("refused")
                .kind,
            SetErrorKind::InvalidProperties
        );
    }
}
