//! VacationResponse/get, /set (RFC 8621 §8), and the automatic reply itself
//! ([`VacationHook`]), sent at delivery time following RFC 3834.
//!
//! The one VacationResponse of an account (id `singleton`) is stored as a
//! JSON object of kind [`ObjectKind::VacationResponse`]; until the first
//! `/set` it reads as disabled with every other property null. Any change
//! forgets whom the account has answered ([`Store::vacation_reset`]), so a new
//! message gets every sender one reply again.
//!
//! The reply is sent by [`VacationHook`], a [`DeliveryHook`] that
//! [`LocalDelivery`] calls after each message it files into a local account.
//! It answers at most once per sender per [`REPLY_PERIOD`], and never to
//! automatic or list mail (RFC 3834 §2, RFC 5230 §4.5).
//!
//! [`Store::vacation_reset`]: pochta_store::Store::vacation_reset

use std::sync::Arc;

use async_trait::async_trait;
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address as BuilderAddress;
use mail_builder::headers::message_id::MessageId;
use pochta_addr::Address;
use pochta_delivery::{DeliveredMessage, DeliveryHook, Incoming, LocalDelivery, Trace};
use pochta_jmap_proto::{
    CallContext, GetRequest, GetResponse, MethodError, SetError, SetErrorKind, SetRequest,
    SetResponse, apply_patch, method_response,
};
use pochta_store::{AccountId, ObjectKind, ObjectOp, Resolution, Store, StoredObject};
use serde_json::{Map, Value, json};

use crate::Ctx;
use crate::email::get::parse_utc_date;
use crate::email::set::unix_now;
use crate::identity::{check_properties, check_state, decode, kind_state, select};
use crate::store_error;

/// The id of the one VacationResponse (RFC 8621 §8).
pub const SINGLETON: &str = "singleton";

/// A sender gets at most one reply in this many seconds (RFC 3834 §2 asks
/// for a period; Sieve's vacation defaults to 7 days, RFC 5230 §4.1).
pub const REPLY_PERIOD: i64 = 7 * 86400;

/// The properties of a VacationResponse.
const PROPERTIES: [&str; 7] = [
    "id",
    "isEnabled",
    "fromDate",
    "toDate",
    "subject",
    "textBody",
    "htmlBody",
];

/// The longest subject or body accepted, in octets.
const MAX_TEXT: usize = 64 * 1024;

/// The settings as they read before the first `/set`.
fn default_object() -> Map<String, Value> {
    let Value::Object(map) = json!({
        "isEnabled": false,
        "fromDate": null,
        "toDate": null,
        "subject": null,
        "textBody": null,
        "htmlBody": null,
    }) else {
        unreachable!("a JSON object literal is an object")
    };
    map
}

/// The stored VacationResponse of an account, if any: its store id and JSON.
async fn load(
    store: &dyn Store,
    account: AccountId,
) -> Result<Option<(u64, Map<String, Value>)>, MethodError> {
    let stored: Vec<StoredObject> = store
        .objects(account, ObjectKind::VacationResponse)
        .await
        .map_err(store_error)?;
    match stored.first() {
        None => Ok(None),
        Some(o) => Ok(Some((o.id, decode(o)?))),
    }
}

/// VacationResponse/get (RFC 8621 §8.1).
pub async fn get(
    ctx: &mut Ctx<'_>,
    args: Map<String, Value>,
    call: &mut CallContext,
) -> Result<Value, MethodError> {
    let request = GetRequest::<String>::from_args(args, call)?;
    ctx.check_account(&request.account_id)?;
    check_properties(request.properties.as_deref(), &PROPERTIES)?;
    let object = load(ctx.store(), ctx.account.id)
        .await?
        .map_or_else(default_object, |(_, o)| o);
    let state = kind_state(ctx, ObjectKind::VacationResponse).await?;
    let mut response = GetResponse::<Value>::for_request(&request, state);
    let singleton = || pochta_jmap_proto::Id::new(SINGLETON).expect("a valid id");
    match &request.ids {
        None => response
            .list
            .push(select(singleton(), &object, request.properties.as_deref())),
        Some(ids) => {
            for id in ids {
                if id.as_str() == SINGLETON {
                    response
                        .list
                        .push(select(singleton(), &object, request.properties.as_deref()));
                } else {
                    response.not_found.push(id.to_string());
                }
            }
        }
    }
    method_response("VacationResponse/get", &response).map(|(_, v)| v)
}

/// The invalid properties of a whole VacationResponse object.
fn invalid_properties(object: &Map<String, Value>) -> Vec<String> {
    let mut bad = Vec::new();
    for (k, v) in object {
        let ok = match k.as_str() {
            "isEnabled" => v.is_boolean(),
            "fromDate" | "toDate" => v.is_null() || v.as_str().and_then(parse_utc_date).is_some(),
            "subject" => {
                v.is_null()
                    || v.as_str()
                        .is_some_and(|s| s.len() <= 998 && !s.contains(['\r', '\n']))
            }
            "textBody" | "htmlBody" => {
                v.is_null() || v.as_str().is_some_and(|s| s.len() <= MAX_TEXT)
            }
            _ => false,
        };
        if !ok {
            bad.push(k.clone());
        }
    }
    bad
}

/// VacationResponse/set (RFC 8621 §8.2): only `update` of `singleton`;
/// creating or destroying it is a `singleton` error.
pub async fn set(
    ctx: &mut Ctx<'_>,
    args: Map<String, Value>,
    call: &mut CallContext,
) -> Result<Value, MethodError> {
    let request = SetRequest::from_args(args, call)?;
    ctx.check_account(&request.account_id)?;
    let old_state = kind_state(ctx, ObjectKind::VacationResponse).await?;
    check_state(request.if_in_state.as_deref(), &old_state)?;
    let mut response = SetResponse::new(
        request.account_id.clone(),
        Some(old_state.clone()),
        old_state,
    );
    for (cid, _) in request.create {
        response.not_created.insert(
            cid,
            SetError::new(SetErrorKind::Singleton)
                .with_description("there is exactly one VacationResponse, \"singleton\""),
        );
    }
    for id in &request.destroy {
        response.not_destroyed.insert(
            id.to_string(),
            SetError::new(SetErrorKind::Singleton)
                .with_description("the VacationResponse cannot be destroyed"),
        );
    }
    let stored = load(ctx.store(), ctx.account.id).await?;
    let mut current = stored
        .as_ref()
        .map_or_else(default_object, |(_, o)| o.clone());
    let mut changed = false;
    for (key, patch) in request.update {
        let shown = key.to_string();
        if call.resolve(&key).is_none_or(|id| id.as_str() != SINGLETON) {
            response.not_updated.insert(shown, SetError::not_found());
            continue;
        }
        let patched = match apply_patch(current.clone(), &patch) {
            Ok(p) => p,
            Err(e) => {
                response.not_updated.insert(shown, e);
                continue;
            }
        };
        let mut bad = invalid_properties(&patched);
        if patch.keys().any(|k| k == "id" || k.starts_with("id/")) {
            bad.push("id".into());
        }
        // Every property is nullable but isEnabled, which must stay.
        if !patched.contains_key("isEnabled") {
            bad.push("isEnabled".into());
        }
        if !bad.is_empty() {
            response
                .not_updated
                .insert(shown, SetError::invalid_properties(bad));
            continue;
        }
        let mut patched = patched;
        for (k, v) in default_object() {
            patched.entry(k).or_insert(v);
        }
        current = patched;
        changed = true;
        response.updated.insert(
            pochta_jmap_proto::Id::new(SINGLETON).expect("a valid id"),
            None,
        );
    }
    if changed {
        let data = Value::Object(current).to_string();
        let op = match &stored {
            Some((id, _)) => ObjectOp::Update(*id, data),
            None => ObjectOp::Create(data),
        };
        ctx.store()
            .set_objects(ctx.account.id, ObjectKind::VacationResponse, vec![op])
            .await
            .map_err(store_error)?;
        // New settings answer everyone again.
        ctx.store()
            .vacation_reset(ctx.account.id)
            .await
            .map_err(store_error)?;
    }
    response.new_state = kind_state(ctx, ObjectKind::VacationResponse).await?;
    method_response("VacationResponse/set", &response).map(|(_, v)| v)
}

// ---------------------------------------------------------------- the reply

/// Sends vacation replies for local deliveries. Register it on the delivery
/// used for incoming mail:
///
/// ```ignore
/// let delivery = LocalDelivery::new(store.clone(), hostname, domains)
///     .with_hook(VacationHook::new(store.clone()));
/// ```
pub struct VacationHook {
    store: Arc<dyn Store>,
    period: i64,
}

impl VacationHook {
    /// A hook that answers each sender at most once per [`REPLY_PERIOD`].
    pub fn new(store: Arc<dyn Store>) -> Arc<VacationHook> {
        Arc::new(VacationHook {
            store,
            period: REPLY_PERIOD,
        })
    }
}

/// What the hook needs of the VacationResponse: enabled now, and its texts.
struct Active {
    subject: Option<String>,
    text: Option<String>,
    html: Option<String>,
}

/// The settings, if they ask for a reply at `now` (RFC 8621 §8: on or after
/// `fromDate`, before `toDate`).
fn active(object: &Map<String, Value>, now: i64) -> Option<Active> {
    if object.get("isEnabled") != Some(&Value::Bool(true)) {
        return None;
    }
    let date = |k: &str| {
        object
            .get(k)
            .and_then(Value::as_str)
            .and_then(parse_utc_date)
    };
    if date("fromDate").is_some_and(|from| now < from) || date("toDate").is_some_and(|to| now >= to)
    {
        return None;
    }
    let text = |k: &str| object.get(k).and_then(Value::as_str).map(str::to_string);
    Some(Active {
        subject: text("subject").filter(|s| !s.trim().is_empty()),
        text: text("textBody"),
        html: text("htmlBody"),
    })
}

/// Senders that are robots or lists by name (RFC 3834 §2, RFC 5230 §4.5).
fn is_robot_sender(sender: &Address) -> bool {
    let local = sender.local().to_ascii_lowercase();
    local == "mailer-daemon"
        || local == "listserv"
        || local == "majordomo"
        || local.starts_with("owner-")
        || local.ends_with("-request")
}

/// RFC 3834 §2 and §3.1.7: no reply to automatic messages, to list or bulk
/// mail. `header` is the message's header section.
fn is_automatic(header: &[u8]) -> bool {
    let value = |name: &str| {
        pochta_message::find_header(header, name)
            .map(|v| String::from_utf8_lossy(v).trim().to_ascii_lowercase())
    };
    if value("Auto-Submitted").is_some_and(|v| !v.starts_with("no")) {
        return true;
    }
    if value("Precedence").is_some_and(|v| matches!(v.as_str(), "bulk" | "list" | "junk")) {
        return true;
    }
    [
        "List-Id",
        "List-Unsubscribe",
        "List-Post",
        "List-Help",
        "List-Subscribe",
        "List-Owner",
        "List-Archive",
    ]
    .iter()
    .any(|h| pochta_message::find_header(header, h).is_some())
        // Other responders' markers of automatic mail.
        || value("X-Auto-Response-Suppress").is_some_and(|v| v.contains("all") || v.contains("oof"))
}

#[async_trait]
impl DeliveryHook for VacationHook {
    async fn delivered(&self, delivery: &LocalDelivery, m: DeliveredMessage<'_>) {
        if let Err(e) = self.answer(delivery, m).await {
            tracing::warn!(account = m.account, error = %e, "vacation reply not sent");
        }
    }
}

impl VacationHook {
    /// Replies to `m` if the account's VacationResponse asks for it and RFC 3834
    /// allows it.
    async fn answer(
        &self,
        delivery: &LocalDelivery,
        m: DeliveredMessage<'_>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let now = unix_now();
        // Cheap checks first: most deliveries stop at the first.
        let Some((_, object)) = load(self.store.as_ref(), m.account)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        let Some(settings) = active(&object, now) else {
            return Ok(());
        };
        let Some(sender) = m.mail_from else {
            return Ok(()); // RFC 3834 §2: never to a null return path
        };
        if is_robot_sender(sender) || is_automatic(m.header) {
            return Ok(());
        }
        let Some(account) = self.store.account_by_id(m.account).await? else {
            return Ok(());
        };
        // Not to ourselves (RFC 5230 §4.5), however we are addressed.
        if *sender == account.address || m.recipients.contains(sender) {
            return Ok(());
        }
        if let Resolution::Accounts(ids) = self.store.resolve(sender).await?
            && delivery.is_local_domain(sender.domain())
            && ids.contains(&m.account)
        {
            return Ok(());
        }
        let meta = pochta_message::parse(m.header);
        // RFC 3834 §2: only when one of our addresses is an explicit recipient
        // (not for Bcc copies or list expansions we were not named in).
        if !self.named(delivery, &meta, &account.address, m).await {
            return Ok(());
        }
        if !self
            .store
            .vacation_should_reply(m.account, sender, now, self.period)
            .await?
        {
            return Ok(());
        }
        let raw = build_reply(
            delivery.hostname(),
            &account.address,
            sender,
            &meta,
            &settings,
        )?;
        let mut reply = Incoming::new(
            None, // RFC 3834 §3.3: a null return path, so nothing answers back
            vec![sender.clone()],
            raw,
            Trace {
                protocol: "LOCAL",
                ..Trace::default()
            },
        );
        reply.submission = true;
        reply.relay = true;
        reply.smtputf8 = !sender.is_ascii() || !account.address.is_ascii();
        delivery.deliver(reply).await?;
        tracing::info!(account = m.account, to = %sender, "vacation reply sent");
        Ok(())
    }

    /// Whether one of the account's addresses is in To, Cc or Bcc: the account
    /// address, an envelope recipient that reached it, or any local address
    /// that resolves to it (an alias).
    async fn named(
        &self,
        delivery: &LocalDelivery,
        meta: &pochta_message::MessageMeta,
        own: &Address,
        m: DeliveredMessage<'_>,
    ) -> bool {
        let listed = meta.to.iter().chain(&meta.cc).chain(&meta.bcc).take(100);
        for a in listed {
            let Ok(address) = Address::parse(&a.email) else {
                continue;
            };
            if address == *own || m.recipients.contains(&address) {
                return true;
            }
            if delivery.is_local_domain(address.domain())
                && let Ok(Resolution::Accounts(ids)) = self.store.resolve(&address).await
                && ids.contains(&m.account)
            {
                return true;
            }
        }
        false
    }
}

/// The reply (RFC 3834 §3): from the account, to the sender, `Auto-Submitted:
/// auto-replied`, threaded to the original.
fn build_reply(
    hostname: &str,
    from: &Address,
    to: &Address,
    original: &pochta_message::MessageMeta,
    settings: &Active,
) -> Result<Vec<u8>, std::io::Error> {
    let subject = settings.subject.clone().unwrap_or_else(|| {
        // RFC 3834 §3.1.5: "Auto:" and the original subject.
        match original.subject.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => format!("Auto: {s}"),
            _ => "Auto: away from my mail".to_string(),
        }
    });
    let mut builder = MessageBuilder::new()
        .from(BuilderAddress::new_address(
            None::<String>,
            from.to_string(),
        ))
        .to(BuilderAddress::new_address(None::<String>, to.to_string()))
        .subject(subject)
        .message_id(format!(
            "{}.{}@{hostname}",
            pochta_delivery::new_id(),
            unix_now()
        ))
        .header(
            "Auto-Submitted",
            mail_builder::headers::raw::Raw::new("auto-replied"),
        );
    // RFC 3834 §3.1.4/§3.1.5: In-Reply-To and References name the original.
    if let Some(id) = &original.message_id {
        let mut references: Vec<String> = original.references.clone();
        references.push(id.clone());
        let keep = references.len().saturating_sub(20);
        builder = builder
            .in_reply_to(MessageId::new(id.clone()))
            .references(MessageId::new_list(references.into_iter().skip(keep)));
    }
    builder = match (&settings.text, &settings.html) {
        (None, None) => {
            builder.text_body("I am away and will read your message when I am back.\n".to_string())
        }
        (text, html) => {
            let mut b = builder;
            if let Some(t) = text {
                let mut t = t.clone();
                if !t.ends_with('\n') {
                    t.push('\n');
                }
                b = b.text_body(t);
            }
            if let Some(h) = html {
                b = b.html_body(h.clone());
            }
            b
        }
    };
    builder.write_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_mail_is_recognised() {
        assert!(is_automatic(b"Auto-Submitted: auto-generated\r\n\r\n"));
        assert!(!is_automatic(b"Auto-Submitted: no\r\n\r\n"));
        assert!(is_automatic(b"Precedence: bulk\r\n\r\n"));
        assert!(is_automatic(b"List-Id: <x.example.com>\r\n\r\n"));
        assert!(!is_automatic(b"Subject: hello\r\n\r\n"));
        let robot = |s: &str| is_robot_sender(&Address::parse(s).expect("an address"));
        assert!(robot("MAILER-DAEMON@example.com"));
        assert!(robot("owner-list@example.com"));
        assert!(robot("list-request@example.com"));
        assert!(!robot("bob@example.com"));
    }

    #[test]
    fn dates_bound_the_period() {
        let object = |from: Value, to: Value| {
            let Value::Object(m) = json!({"isEnabled": true, "fromDate": from, "toDate": to})
            else {
                unreachable!()
            };
            m
        };
        let t = parse_utc_date("2030-01-10T00:00:00Z").expect("a date");
        let o = object(json!("2030-01-01T00:00:00Z"), json!("2030-02-01T00:00:00Z"));
        assert!(active(&o, t).is_some());
        assert!(active(&o, t - 30 * 86400).is_none(), "before fromDate");
        assert!(active(&o, t + 30 * 86400).is_none(), "after toDate");
        assert!(active(&object(Value::Null, Value::Null), t).is_some());
        let mut off = object(Value::Null, Value::Null);
        off.insert("isEnabled".into(), Value::Bool(false));
        assert!(active(&off, t).is_none());
    }
}
