//! Email/set and Email/copy (RFC 8621 §4.6, §4.7), and what Email/import and
//! EmailSubmission share with them: keywords, mailbox ids, reading blobs
//! (whole or one decoded MIME part) and storing a new message.
//!
//! * **create** builds an RFC 5322 message from a JMAP Email object with
//!   mail-builder and stores it like any delivery (so IMAP sees it at once).
//!   The §4.6 rules on what a creation may contain are enforced: every
//!   violation is an `invalidProperties` naming the properties (body parts by
//!   their path, e.g. `attachments/0/blobId`).
//! * **update** changes `keywords` and `mailboxIds` (whole or by patch path).
//!   This server files a message in exactly one mailbox
//!   (`maxMailboxesPerEmail: 1`), so an update that leaves more is
//!   `tooManyMailboxes` and one that leaves none `invalidProperties`.
//! * **destroy** expunges.
//!
//! Keywords map to IMAP flags as Email/get shows them (`$seen`, `$flagged`,
//! `$answered`, `$draft`, and `$deleted` for `\Deleted`: see `get.rs`); any
//! other keyword is an IMAP keyword, stored lower-case (IMAP compares them
//! case-insensitively, and JMAP returns them lower-case, §4.1.1).

use std::collections::{HashMap, HashSet};

use mail_builder::headers::address::Address as BuilderAddress;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::headers::{Header, HeaderType};
use mail_builder::mime::{BodyPart as MimeBody, MimePart};
use pochta_jmap_proto::{
    CallContext, CopyRequest, Id, MethodError, MethodErrorKind, PatchObject, SetError,
    SetErrorKind, SetRequest, SetResponse, apply_patch, method_response, patch_properties,
};
use pochta_message::{BodyPart, PartKind};
use pochta_store::{
    Delivery, DeliveryTarget, FlagChange, Flags, MailboxId, MailboxTarget, ObjectKind, StoreError,
};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::{Rfc2822, Rfc3339};

use super::get::{decoded_body, keyword_flag, keywords_value, parse_utc_date};
use crate::identity::{check_state, kind_state};
use crate::ids::{self, BlobRef};
use crate::{Ctx, store_error};

/// The most keywords one email may have (`tooManyKeywords` beyond).
pub const MAX_KEYWORDS: usize = 64;

/// Messages bigger than this are parsed on a blocking thread.
const PARSE_INLINE_MAX: usize = 256 * 1024;

/// Deepest body part nesting accepted on create.
const MAX_PART_DEPTH: usize = 16;

// ---------------------------------------------------------------- dates

/// Now, in Unix seconds.
pub(crate) fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

// ---------------------------------------------------------------- keywords

/// RFC 8621 §4.1.1: 1–255 characters of %x21–%x7e, none of `( ) { ] % * " \`.
pub(crate) fn valid_keyword(keyword: &str) -> bool {
    (1..=255).contains(&keyword.len())
        && keyword
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && !b"(){]%*\"\\".contains(&b))
}

/// Why a `keywords` value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeywordError {
    /// Not a `String[Boolean]` of `true`s, or a keyword with bad syntax.
    Invalid,
    /// More than [`MAX_KEYWORDS`].
    TooMany,
}

impl KeywordError {
    /// The SetError for this failure of the property `keywords`.
    pub(crate) fn to_set_error(self) -> SetError {
        match self {
            KeywordError::Invalid => SetError::invalid_properties(["keywords"]),
            KeywordError::TooMany => SetError::new(SetErrorKind::TooManyKeywords)
                .with_description(format!("at most {MAX_KEYWORDS} keywords")),
        }
    }
}

/// A JMAP `keywords` value as IMAP flags and (lower-case) keywords; `null`
/// is the empty set.
pub(crate) fn parse_keywords(value: &Value) -> Result<(Flags, Vec<String>), KeywordError> {
    let map = match value {
        Value::Null => return Ok((Flags::NONE, Vec::new())),
        Value::Object(map) => map,
        _ => return Err(KeywordError::Invalid),
    };
    if map.len() > MAX_KEYWORDS {
        return Err(KeywordError::TooMany);
    }
    let mut flags = Flags::NONE;
    let mut keywords: Vec<String> = Vec::new();
    for (k, v) in map {
        if *v != Value::Bool(true) || !valid_keyword(k) {
            return Err(KeywordError::Invalid);
        }
        let k = k.to_ascii_lowercase();
        match keyword_flag(&k) {
            Some(f) => flags = flags | f,
            None if !keywords.contains(&k) => keywords.push(k),
            None => {}
        }
    }
    Ok((flags, keywords))
}

// ---------------------------------------------------------------- mailboxes

/// The one mailbox a `mailboxIds` value names (keys may be `#creationId`s).
/// `invalidProperties` when it is not a set of existing mailboxes or is
/// empty, `tooManyMailboxes` beyond one.
pub(crate) async fn parse_mailbox_ids(
    ctx: &Ctx<'_>,
    value: Option<&Value>,
    call: &CallContext,
) -> Result<Result<MailboxId, SetError>, MethodError> {
    let invalid = || Ok(Err(SetError::invalid_properties(["mailboxIds"])));
    let Some(Value::Object(map)) = value else {
        return invalid();
    };
    if map.values().any(|v| *v != Value::Bool(true)) || map.is_empty() {
        return invalid();
    }
    let mut wanted: Vec<MailboxId> = Vec::new();
    for key in map.keys() {
        let Some(id) = call
            .resolve_str(key)
            .and_then(|id| ids::parse_mailbox(id.as_str()))
        else {
            return invalid();
        };
        if !wanted.contains(&id) {
            wanted.push(id);
        }
    }
    if wanted.len() > 1 {
        return Ok(Err(SetError::new(SetErrorKind::TooManyMailboxes)
            .with_description("an email is in exactly one mailbox here")));
    }
    let mailboxes = ctx
        .store()
        .mailboxes(ctx.account.id)
        .await
        .map_err(store_error)?;
    match wanted.first() {
        Some(id) if mailboxes.iter().any(|m| m.id == *id) => Ok(Ok(*id)),
        _ => invalid(),
    }
}

// ---------------------------------------------------------------- blobs

/// The bytes of a blob id the account may read: a whole stored message or
/// upload (`B…`), or one MIME part of a stored message (`P…`) with its
/// transfer encoding undone (an attached `message/rfc822` part is the
/// encapsulated message). `None` when there is no such blob.
pub(crate) async fn read_blob(ctx: &Ctx<'_>, id: &str) -> Result<Option<Vec<u8>>, MethodError> {
    let (blob, path) = match ids::parse_blob(id) {
        None => return Ok(None),
        Some(BlobRef::Whole(b)) => (b, None),
        Some(BlobRef::Part(b, path)) => (b, Some(path)),
    };
    let raw = match ctx.store().read_blob(ctx.account.id, blob).await {
        Ok(raw) => raw,
        Err(StoreError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(store_error(e)),
    };
    let Some(path) = path else {
        return Ok(Some(raw));
    };
    let (raw, meta) = parse_meta(raw).await?;
    Ok(meta.body.part(&path).and_then(|p| part_content(&raw, p)))
}

/// Parses a message, on a blocking thread when it is big.
pub(crate) async fn parse_meta(
    raw: Vec<u8>,
) -> Result<(Vec<u8>, pochta_message::MessageMeta), MethodError> {
    if raw.len() <= PARSE_INLINE_MAX {
        let meta = pochta_message::parse(&raw);
        return Ok((raw, meta));
    }
    tokio::task::spawn_blocking(move || {
        let meta = pochta_message::parse(&raw);
        (raw, meta)
    })
    .await
    .map_err(|e| MethodError::server_fail(format!("parser task failed: {e}")))
}

/// A part's content with the transfer encoding undone; `None` for a
/// multipart, which has no blob (RFC 8621 §4.1.4).
pub(crate) fn part_content(raw: &[u8], part: &BodyPart) -> Option<Vec<u8>> {
    match &part.kind {
        PartKind::Multipart(_) => None,
        PartKind::Message { .. } => raw.get(part.body_range()).map(<[u8]>::to_vec),
        PartKind::Leaf => Some(decoded_body(raw, part).into_owned()),
    }
}

// ---------------------------------------------------------------- storing

/// Stores `raw` as a new email in `mailbox` and returns what `created`
/// reports of it (RFC 8621 §4.6: `id`, `blobId`, `threadId`, `size`);
/// `overQuota` as a SetError.
pub(crate) async fn store_message(
    ctx: &Ctx<'_>,
    raw: Vec<u8>,
    mailbox: MailboxId,
    flags: Flags,
    keywords: Vec<String>,
    received_at: i64,
) -> Result<Result<(Id, Value), SetError>, MethodError> {
    let (raw, meta) = parse_meta(raw).await?;
    let delivered = ctx
        .store()
        .deliver(Delivery {
            raw,
            meta,
            internal_date: received_at,
            targets: vec![DeliveryTarget {
                account: ctx.account.id,
                mailbox: MailboxTarget::Id(mailbox),
                flags,
                keywords,
            }],
            outbound: None,
        })
        .await;
    let delivered = match delivered {
        Ok(d) => d,
        Err(StoreError::OverQuota) => return Ok(Err(SetError::new(SetErrorKind::OverQuota))),
        Err(StoreError::NotFound(_)) => {
            return Ok(Err(SetError::invalid_properties(["mailboxIds"])));
        }
        Err(e) => return Err(store_error(e)),
    };
    let Some(first) = delivered.first() else {
        return Err(MethodError::server_fail(
            "the store filed the message nowhere",
        ));
    };
    let record = ctx
        .store()
        .message(ctx.account.id, first.id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| MethodError::server_fail("a message vanished right after delivery"))?;
    let id = ids::email(first.id);
    let created = json!({
        "id": id,
        "blobId": ids::blob(record.summary.blob_id),
        "threadId": ids::thread(record.summary.thread_id),
        "size": record.summary.size,
    });
    Ok(Ok((id, created)))
}

// ---------------------------------------------------------------- Email/set

/// Email/set (RFC 8621 §4.6).
pub async fn set(
    ctx: &mut Ctx<'_>,
    args: Map<String, Value>,
    call: &mut CallContext,
) -> Result<Value, MethodError> {
    let request = SetRequest::from_args(args, call)?;
    let response = apply(ctx, request, call).await?;
    method_response("Email/set", &response).map(|(_, v)| v)
}

/// Runs an Email/set request; also the implicit Email/set of
/// EmailSubmission/set (RFC 8621 §7.5).
pub(crate) async fn apply(
    ctx: &mut Ctx<'_>,
    request: SetRequest,
    call: &mut CallContext,
) -> Result<SetResponse, MethodError> {
    ctx.check_account(&request.account_id)?;
    let old_state = kind_state(ctx, ObjectKind::Email).await?;
    check_state(request.if_in_state.as_deref(), &old_state)?;
    let mut response = SetResponse::new(
        request.account_id.clone(),
        Some(old_state.clone()),
        old_state,
    );
    // After a change, a failure must tell the client to resync
    // (RFC 8620 §3.6.2 serverPartialFail) rather than hide what was done.
    let mut changed = false;
    let partial = |changed: bool, e: MethodError| {
        if changed {
            MethodError::with_description(
                MethodErrorKind::ServerPartialFail,
                e.description.unwrap_or_default(),
            )
        } else {
            e
        }
    };

    for (cid, object) in request.create {
        match create(ctx, object, call).await {
            Ok(Ok((id, created))) => {
                changed = true;
                call.add_created(cid.clone(), id);
                response.created.insert(cid, created);
            }
            Ok(Err(e)) => {
                response.not_created.insert(cid, e);
            }
            Err(e) => return Err(partial(changed, e)),
        }
    }

    let destroying: HashSet<Id> = request
        .destroy
        .iter()
        .filter_map(|d| call.resolve(d))
        .collect();
    for (key, patch) in &request.update {
        let shown = key.to_string();
        let Some(id) = call.resolve(key) else {
            response.not_updated.insert(shown, SetError::not_found());
            continue;
        };
        if destroying.contains(&id) {
            response
                .not_updated
                .insert(shown, SetError::new(SetErrorKind::WillDestroy));
            continue;
        }
        match update(ctx, &id, patch, call).await {
            Ok(Ok(())) => {
                changed = true;
                response.updated.insert(id, None);
            }
            Ok(Err(e)) => {
                response.not_updated.insert(shown, e);
            }
            Err(e) => return Err(partial(changed, e)),
        }
    }

    let mut doomed: Vec<(String, Id, u64)> = Vec::new();
    for key in &request.destroy {
        let shown = key.to_string();
        match call
            .resolve(key)
            .and_then(|id| ids::parse_email(id.as_str()).map(|n| (id, n)))
        {
            Some((id, n)) => doomed.push((shown, id, n)),
            None => {
                response.not_destroyed.insert(shown, SetError::not_found());
            }
        }
    }
    if !doomed.is_empty() {
        let numbers: Vec<u64> = doomed.iter().map(|(_, _, n)| *n).collect();
        let existing: HashSet<u64> = ctx
            .store()
            .records(ctx.account.id, &numbers)
            .await
            .map_err(|e| partial(changed, store_error(e)))?
            .into_iter()
            .map(|r| r.summary.id)
            .collect();
        let mut gone = Vec::new();
        for (shown, id, n) in doomed {
            if existing.contains(&n) {
                if !gone.contains(&n) {
                    gone.push(n);
                    response.destroyed.push(id);
                }
            } else {
                response.not_destroyed.insert(shown, SetError::not_found());
            }
        }
        if !gone.is_empty() {
            ctx.store()
                .expunge(ctx.account.id, &gone)
                .await
                .map_err(|e| partial(changed, store_error(e)))?;
        }
    }
    response.new_state = kind_state(ctx, ObjectKind::Email).await?;
    Ok(response)
}

// ---------------------------------------------------------------- update

/// Applies one update: `keywords` and/or `mailboxIds`, whole or by path.
async fn update(
    ctx: &Ctx<'_>,
    id: &Id,
    patch: &PatchObject,
    call: &CallContext,
) -> Result<Result<(), SetError>, MethodError> {
    let Some(n) = ids::parse_email(id.as_str()) else {
        return Ok(Err(SetError::not_found()));
    };
    let record = match ctx.store().message(ctx.account.id, n).await {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(Err(SetError::not_found())),
        Err(e) => return Err(store_error(e)),
    };
    let touched = match patch_properties(patch) {
        Ok(t) => t,
        Err(e) => return Ok(Err(e)),
    };
    let bad: Vec<&String> = touched
        .iter()
        .filter(|p| *p != "keywords" && *p != "mailboxIds")
        .collect();
    if !bad.is_empty() {
        return Ok(Err(SetError::invalid_properties(bad.into_iter().cloned())
            .with_description("only keywords and mailboxIds can change")));
    }
    // Keywords are case-insensitive (lower-case in JMAP), and mailbox keys
    // may be creation references: normalise the paths before patching.
    let mut normal = PatchObject::new();
    for (path, value) in patch {
        let path = if let Some(k) = path.strip_prefix("keywords/") {
            format!("keywords/{}", k.to_ascii_lowercase())
        } else if let Some(m) = path.strip_prefix("mailboxIds/") {
            match call.resolve_str(m) {
                Some(id) => format!("mailboxIds/{id}"),
                None => return Ok(Err(SetError::invalid_properties(["mailboxIds"]))),
            }
        } else {
            path.clone()
        };
        // A member set to `false` is taken as removed, like `null`: RFC 8621
        // allows only `true` as a value, but clients (jmap-client's
        // `keyword(k, false)`, `mailbox_id(m, false)`) send `false` to remove,
        // and there is no other meaning it could have.
        let value = match value {
            Value::Bool(false) if path.contains('/') => Value::Null,
            v => v.clone(),
        };
        normal.insert(path, value);
    }
    let summary = &record.summary;
    let mut current = Map::new();
    current.insert(
        "keywords".into(),
        keywords_value(summary.flags, &summary.keywords),
    );
    current.insert(
        "mailboxIds".into(),
        json!({ ids::mailbox(summary.mailbox_id).as_str(): true }),
    );
    let patched = match apply_patch(current, &normal) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };

    // Validate both before changing anything.
    let mut new_flags = None;
    if touched.contains("keywords") {
        let value = patched.get("keywords").cloned().unwrap_or(Value::Null);
        let (flags, keywords) = match parse_keywords(&value) {
            Ok(k) => k,
            Err(e) => return Ok(Err(e.to_set_error())),
        };
        let old_flags = summary.flags;
        let mut old_sorted: Vec<String> = summary
            .keywords
            .iter()
            .map(|k| k.to_ascii_lowercase())
            .collect();
        old_sorted.sort();
        let mut new_sorted = keywords.clone();
        new_sorted.sort();
        if flags != old_flags || old_sorted != new_sorted {
            // Unchanged keywords keep the spelling IMAP gave them.
            let spelled: Vec<String> = keywords
                .into_iter()
                .map(|k| {
                    summary
                        .keywords
                        .iter()
                        .find(|old| old.eq_ignore_ascii_case(&k))
                        .cloned()
                        .unwrap_or(k)
                })
                .collect();
            new_flags = Some((flags, spelled));
        }
    }
    let mut new_mailbox = None;
    if touched.contains("mailboxIds") {
        let mailbox = match parse_mailbox_ids(ctx, patched.get("mailboxIds"), call).await? {
            Ok(m) => m,
            Err(e) => return Ok(Err(e)),
        };
        if mailbox != summary.mailbox_id {
            new_mailbox = Some(mailbox);
        }
    }
    if let Some((flags, keywords)) = new_flags {
        ctx.store()
            .store_flags(ctx.account.id, &[n], FlagChange::Set(flags, keywords), None)
            .await
            .map_err(store_error)?;
    }
    if let Some(mailbox) = new_mailbox {
        match ctx
            .store()
            .move_messages(ctx.account.id, &[n], mailbox)
            .await
        {
            Ok(_) => {}
            Err(StoreError::NotFound(_)) => {
                return Ok(Err(SetError::invalid_properties(["mailboxIds"])));
            }
            Err(e) => return Err(store_error(e)),
        }
    }
    Ok(Ok(()))
}

// ---------------------------------------------------------------- create

/// A header form of RFC 8621 §4.1.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Raw,
    Text,
    Addresses,
    GroupedAddresses,
    MessageIds,
    Date,
    Urls,
}

/// A `header:{name}[:as{Form}][:all]` property (RFC 8621 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
struct HeaderProperty {
    name: String,
    form: Form,
    all: bool,
}

/// Parses a `header:` property name; `None` if it is not a valid one.
fn header_property(property: &str) -> Option<HeaderProperty> {
    let rest = property.strip_prefix("header:")?;
    let mut parts = rest.split(':');
    let name = parts.next()?;
    if name.is_empty() || !name.bytes().all(|b| (33..=126).contains(&b)) {
        return None;
    }
    let mut form = Form::Raw;
    let mut all = false;
    let mut next = parts.next();
    if let Some(f) = next.and_then(|s| s.strip_prefix("as")) {
        form = match f {
            "Raw" => Form::Raw,
            "Text" => Form::Text,
            "Addresses" => Form::Addresses,
            "GroupedAddresses" => Form::GroupedAddresses,
            "MessageIds" => Form::MessageIds,
            "Date" => Form::Date,
            "URLs" => Form::Urls,
            _ => return None,
        };
        next = parts.next();
    }
    if next == Some("all") {
        all = true;
        next = parts.next();
    }
    if next.is_some() {
        return None;
    }
    let property = HeaderProperty {
        name: name.to_string(),
        form,
        all,
    };
    form_allowed(&property.name, form).then_some(property)
}

/// RFC 8621 §4.1.2: the parsed forms each header field may take. Fields not
/// defined by RFC 5322 or RFC 2369 may take any.
fn form_allowed(name: &str, form: Form) -> bool {
    const DEFINED: [&str; 30] = [
        "date",
        "from",
        "sender",
        "reply-to",
        "to",
        "cc",
        "bcc",
        "message-id",
        "in-reply-to",
        "references",
        "subject",
        "comments",
        "keywords",
        "resent-date",
        "resent-from",
        "resent-sender",
        "resent-reply-to",
        "resent-to",
        "resent-cc",
        "resent-bcc",
        "resent-message-id",
        "return-path",
        "received",
        "list-help",
        "list-unsubscribe",
        "list-subscribe",
        "list-post",
        "list-owner",
        "list-archive",
        "list-id",
    ];
    let n = name.to_ascii_lowercase();
    if !DEFINED.contains(&n.as_str()) {
        return true;
    }
    match form {
        Form::Raw => true,
        Form::Text => matches!(n.as_str(), "subject" | "comments" | "keywords" | "list-id"),
        Form::Addresses | Form::GroupedAddresses => matches!(
            n.as_str(),
            "from"
                | "sender"
                | "reply-to"
                | "to"
                | "cc"
                | "bcc"
                | "resent-from"
                | "resent-sender"
                | "resent-reply-to"
                | "resent-to"
                | "resent-cc"
                | "resent-bcc"
        ),
        Form::MessageIds => matches!(
            n.as_str(),
            "message-id" | "in-reply-to" | "references" | "resent-message-id"
        ),
        Form::Date => matches!(n.as_str(), "date" | "resent-date"),
        Form::Urls => matches!(
            n.as_str(),
            "list-help"
                | "list-unsubscribe"
                | "list-subscribe"
                | "list-post"
                | "list-owner"
                | "list-archive"
        ),
    }
}

/// The Email properties that stand for a header field, in the order their
/// fields are written.
const CONVENIENCE: [(&str, &str, Form); 11] = [
    ("from", "From", Form::Addresses),
    ("sender", "Sender", Form::Addresses),
    ("replyTo", "Reply-To", Form::Addresses),
    ("to", "To", Form::Addresses),
    ("cc", "Cc", Form::Addresses),
    ("bcc", "Bcc", Form::Addresses),
    ("subject", "Subject", Form::Text),
    ("sentAt", "Date", Form::Date),
    ("messageId", "Message-ID", Form::MessageIds),
    ("inReplyTo", "In-Reply-To", Form::MessageIds),
    ("references", "References", Form::MessageIds),
];

/// A header field to write.
#[derive(Debug, Clone)]
enum HeaderOut {
    /// Encoded and folded by mail-builder.
    Typed(HeaderType<'static>),
    /// Written as given after the colon (the Raw form), already validated.
    Raw(String),
}

impl HeaderOut {
    /// As a MIME part header (mail-builder refolds raw values there).
    fn into_part_header(self) -> HeaderType<'static> {
        match self {
            HeaderOut::Typed(t) => t,
            HeaderOut::Raw(r) => HeaderType::Raw(Raw::new(r.trim_start().to_string())),
        }
    }
}

/// A Raw form value: anything but NUL, with line breaks only as folding
/// (CRLF followed by white space) and not at the end.
fn valid_raw(s: &str) -> bool {
    let b = s.as_bytes();
    if b.contains(&0) || s.ends_with('\n') || s.ends_with('\r') {
        return false;
    }
    b.iter().enumerate().all(|(i, &c)| match c {
        b'\r' => b.get(i + 1) == Some(&b'\n') && matches!(b.get(i + 2), Some(b' ' | b'\t')),
        b'\n' => i > 0 && b.get(i - 1) == Some(&b'\r'),
        _ => true,
    })
}

/// Text safe inside an address or id: no controls, no white space, no angle
/// brackets (which would end the field or the bracketed value).
fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && !s
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '<' || c == '>')
}

/// `EmailAddress[]` as mail-builder addresses.
fn addresses(value: &Value) -> Option<Vec<BuilderAddress<'static>>> {
    let items = value.as_array()?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let o = item.as_object()?;
        if o.keys().any(|k| k != "name" && k != "email") {
            return None;
        }
        let email = o.get("email")?.as_str()?;
        if !valid_token(email) {
            return None;
        }
        let name = match o.get("name") {
            None | Some(Value::Null) => None,
            Some(Value::String(n)) if !n.chars().any(char::is_control) => {
                Some(n.trim().to_string()).filter(|n| !n.is_empty())
            }
            _ => return None,
        };
        out.push(BuilderAddress::new_address(name, email.to_string()));
    }
    Some(out)
}

/// One header field instance of `form` from its JSON value; `Some(None)` for
/// null (no field), `None` if the value is invalid.
fn header_instance(form: Form, value: &Value) -> Option<Option<HeaderOut>> {
    if value.is_null() {
        return Some(None);
    }
    let out = match form {
        Form::Raw => {
            let s = value.as_str()?;
            if !valid_raw(s) {
                return None;
            }
            HeaderOut::Raw(s.to_string())
        }
        Form::Text => {
            let s = value.as_str()?;
            if s.contains('\0') {
                return None;
            }
            let one_line: String = s
                .chars()
                .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
                .collect();
            HeaderOut::Typed(HeaderType::Text(Text::new(one_line.trim().to_string())))
        }
        Form::Addresses => {
            let list = addresses(value)?;
            if list.is_empty() {
                return Some(None);
            }
            HeaderOut::Typed(HeaderType::Address(BuilderAddress::new_list(list)))
        }
        Form::GroupedAddresses => {
            let groups = value.as_array()?;
            let mut list = Vec::new();
            for g in groups {
                let o = g.as_object()?;
                if o.keys().any(|k| k != "name" && k != "addresses") {
                    return None;
                }
                let members = addresses(o.get("addresses")?)?;
                match o.get("name") {
                    None | Some(Value::Null) => list.extend(members),
                    Some(Value::String(n)) if !n.chars().any(char::is_control) => {
                        list.push(BuilderAddress::new_group(Some(n.clone()), members));
                    }
                    _ => return None,
                }
            }
            if list.is_empty() {
                return Some(None);
            }
            HeaderOut::Typed(HeaderType::Address(BuilderAddress::new_list(list)))
        }
        Form::MessageIds => {
            let items = value.as_array()?;
            let mut list = Vec::with_capacity(items.len());
            for i in items {
                let s = i.as_str()?;
                if !valid_token(s) {
                    return None;
                }
                list.push(s.to_string());
            }
            if list.is_empty() {
                return Some(None);
            }
            HeaderOut::Typed(HeaderType::MessageId(MessageId::new_list(list.into_iter())))
        }
        Form::Date => {
            // RFC 8620 §1.4 Date: RFC 3339 with its offset, kept in the field.
            let date = OffsetDateTime::parse(value.as_str()?, &Rfc3339).ok()?;
            HeaderOut::Raw(format!(" {}", date.format(&Rfc2822).ok()?))
        }
        Form::Urls => {
            let items = value.as_array()?;
            let mut list = Vec::with_capacity(items.len());
            for i in items {
                let s = i.as_str()?;
                if !valid_token(s) {
                    return None;
                }
                list.push(format!("<{s}>"));
            }
            if list.is_empty() {
                return Some(None);
            }
            HeaderOut::Raw(format!(" {}", list.join(", ")))
        }
    };
    Some(Some(out))
}

/// The header field instances a property value stands for (`:all` takes an
/// array of values); `None` if invalid.
fn header_instances(form: Form, all: bool, value: &Value) -> Option<Vec<HeaderOut>> {
    if all {
        let items = match value {
            Value::Null => return Some(Vec::new()),
            Value::Array(items) => items,
            _ => return None,
        };
        let mut out = Vec::new();
        for item in items {
            out.extend(header_instance(form, item)?);
        }
        Some(out)
    } else {
        Some(header_instance(form, value)?.into_iter().collect())
    }
}

/// A body part to create.
#[derive(Debug)]
struct PartSpec {
    /// Whether `type` was given (otherwise a `header:Content-Type` may be).
    explicit_type: bool,
    media_type: String,
    charset: Option<String>,
    disposition: Option<String>,
    name: Option<String>,
    cid: Option<String>,
    language: Vec<String>,
    location: Option<String>,
    headers: Vec<(String, HeaderOut)>,
    content: Content,
}

/// Where a part's content comes from.
#[derive(Debug)]
enum Content {
    /// A `bodyValues` value.
    Text(String),
    /// A blob (an upload, a stored message or a part of one).
    Blob(String),
    /// Children of a multipart.
    Multipart(Vec<PartSpec>),
}

/// What parsing body parts needs to know.
struct PartScope<'a> {
    body_values: &'a Map<String, Value>,
    /// Lower-case names of the header fields set on the Email itself (the
    /// root of `bodyStructure` may not repeat them).
    top_headers: &'a HashSet<String>,
}

/// A MIME media type `type/subtype` of token characters, lower-cased.
fn media_type(s: &str) -> Option<String> {
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    let (a, b) = s.split_once('/')?;
    (token(a) && token(b)).then(|| s.to_ascii_lowercase())
}

/// Parses one EmailBodyPart of a creation; invalid properties are added to
/// `bad` as paths below `path`.
fn parse_part(
    value: &Value,
    path: &str,
    scope: &PartScope<'_>,
    is_root: bool,
    depth: usize,
    bad: &mut Vec<String>,
) -> Option<PartSpec> {
    let at = |p: &str| format!("{path}/{p}");
    let Some(o) = value.as_object() else {
        bad.push(path.to_string());
        return None;
    };
    if depth > MAX_PART_DEPTH {
        bad.push(path.to_string());
        return None;
    }
    let before = bad.len();
    let string = |k: &str, bad: &mut Vec<String>| -> Option<String> {
        match o.get(k) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.chars().any(char::is_control) => Some(s.clone()),
            Some(_) => {
                bad.push(at(k));
                None
            }
        }
    };
    let given_type = string("type", bad);
    let charset = string("charset", bad);
    let disposition = string("disposition", bad);
    let name = string("name", bad);
    let cid = string("cid", bad);
    let location = string("location", bad);
    let part_id = string("partId", bad);
    let blob_id = string("blobId", bad);
    let language = match o.get("language") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let langs: Option<Vec<String>> = items
                .iter()
                .map(|i| i.as_str().filter(|s| valid_token(s)).map(str::to_string))
                .collect();
            langs.unwrap_or_else(|| {
                bad.push(at("language"));
                Vec::new()
            })
        }
        Some(_) => {
            bad.push(at("language"));
            Vec::new()
        }
    };
    if let Some(d) = &disposition
        && !valid_token(d)
    {
        bad.push(at("disposition"));
    }
    if let Some(c) = &cid
        && !valid_token(c)
    {
        bad.push(at("cid"));
    }
    if let Some(l) = &location
        && !valid_token(l)
    {
        bad.push(at("location"));
    }
    let media = match &given_type {
        Some(t) => media_type(t).or_else(|| {
            bad.push(at("type"));
            None
        }),
        None => None,
    };

    // Header properties, with the §4.6 conflicts.
    let mut headers: Vec<(String, HeaderOut)> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for (k, v) in o {
        match k.as_str() {
            "partId" | "blobId" | "size" | "name" | "type" | "charset" | "disposition" | "cid"
            | "language" | "location" | "subParts" => continue,
            _ => {}
        }
        let Some(h) = header_property(k) else {
            // Includes `headers`, which a creation may not use.
            bad.push(at(k));
            continue;
        };
        let lower = h.name.to_ascii_lowercase();
        let conflicts = match lower.as_str() {
            "content-transfer-encoding" => true,
            "content-type" => given_type.is_some() || charset.is_some(),
            "content-disposition" => disposition.is_some() || name.is_some(),
            "content-id" => cid.is_some(),
            "content-language" => !language.is_empty(),
            "content-location" => location.is_some(),
            _ => false,
        };
        if conflicts
            || !seen.insert(lower.clone())
            || (is_root && scope.top_headers.contains(&lower))
        {
            bad.push(at(k));
            continue;
        }
        match header_instances(h.form, h.all, v) {
            Some(list) => headers.extend(list.into_iter().map(|x| (h.name.clone(), x))),
            None => bad.push(at(k)),
        }
    }

    let is_multipart = media
        .as_deref()
        .is_some_and(|t| t.starts_with("multipart/"))
        || (media.is_none() && o.contains_key("subParts"));
    let content = if is_multipart {
        for k in ["partId", "blobId", "charset", "size"] {
            if o.get(k).is_some_and(|v| !v.is_null()) {
                bad.push(at(k));
            }
        }
        let Some(Value::Array(children)) = o.get("subParts") else {
            bad.push(at("subParts"));
            return None;
        };
        let mut parts = Vec::with_capacity(children.len());
        for (i, child) in children.iter().enumerate() {
            if let Some(p) = parse_part(
                child,
                &format!("{path}/subParts/{i}"),
                scope,
                false,
                depth + 1,
                bad,
            ) {
                parts.push(p);
            }
        }
        Content::Multipart(parts)
    } else {
        if o.get("subParts").is_some_and(|v| !v.is_null()) {
            bad.push(at("subParts"));
        }
        match (part_id, blob_id) {
            (Some(pid), None) => {
                // §4.6: the content is in bodyValues; charset and size must
                // be left to the server.
                for k in ["charset", "size"] {
                    if o.get(k).is_some_and(|v| !v.is_null()) {
                        bad.push(at(k));
                    }
                }
                match body_value(scope.body_values.get(&pid)) {
                    Some(text) => Content::Text(text),
                    None => {
                        bad.push(at("partId"));
                        Content::Text(String::new())
                    }
                }
            }
            (None, Some(bid)) => Content::Blob(bid),
            _ => {
                bad.push(at("partId"));
                bad.push(at("blobId"));
                Content::Text(String::new())
            }
        }
    };
    if bad.len() > before {
        return None;
    }
    let media_type = media.unwrap_or_else(|| {
        match &content {
            Content::Multipart(_) => "multipart/mixed",
            Content::Text(_) => "text/plain",
            Content::Blob(_) => "application/octet-stream",
        }
        .to_string()
    });
    Some(PartSpec {
        explicit_type: given_type.is_some(),
        media_type,
        charset,
        disposition,
        name,
        cid,
        language,
        location,
        headers,
        content,
    })
}

/// The text of an EmailBodyValue (RFC 8621 §4.1.4); `isEncodingProblem` and
/// `isTruncated` must be false if given (§4.6).
fn body_value(value: Option<&Value>) -> Option<String> {
    let o = value?.as_object()?;
    for (k, v) in o {
        match k.as_str() {
            "value" => {}
            "isEncodingProblem" | "isTruncated" if *v == Value::Bool(false) => {}
            _ => return None,
        }
    }
    let text = o.get("value")?.as_str()?;
    (!text.contains('\0')).then(|| text.to_string())
}

/// The blob ids a part tree refers to.
fn blob_ids<'a>(part: &'a PartSpec, out: &mut Vec<&'a str>) {
    match &part.content {
        Content::Blob(id) => out.push(id),
        Content::Multipart(children) => {
            for c in children {
                blob_ids(c, out);
            }
        }
        Content::Text(_) => {}
    }
}

/// Builds a mail-builder part from a spec, with the blobs' bytes.
fn mime_part(spec: PartSpec, blobs: &HashMap<String, Vec<u8>>) -> MimePart<'static> {
    let mut headers: Vec<(std::borrow::Cow<'static, str>, HeaderType<'static>)> = Vec::new();
    let has_content_type = spec
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
    if spec.explicit_type || !has_content_type {
        let mut ct = ContentType::new(spec.media_type.clone());
        match (&spec.content, &spec.charset) {
            (Content::Text(_), _) => ct = ct.attribute("charset", "utf-8"),
            (Content::Blob(_), Some(cs)) => ct = ct.attribute("charset", cs.clone()),
            _ => {}
        }
        if let Some(name) = &spec.name
            && !matches!(spec.content, Content::Multipart(_))
        {
            ct = ct.attribute("name", name.clone());
        }
        headers.push(("Content-Type".into(), ct.into()));
    }
    if spec.disposition.is_some() || spec.name.is_some() {
        let mut cd = ContentType::new(
            spec.disposition
                .clone()
                .unwrap_or_else(|| "attachment".into()),
        );
        if let Some(name) = &spec.name {
            cd = cd.attribute("filename", name.clone());
        }
        headers.push(("Content-Disposition".into(), cd.into()));
    }
    if let Some(cid) = &spec.cid {
        headers.push(("Content-ID".into(), MessageId::new(cid.clone()).into()));
    }
    if !spec.language.is_empty() {
        headers.push((
            "Content-Language".into(),
            Text::new(spec.language.join(", ")).into(),
        ));
    }
    if let Some(location) = &spec.location {
        headers.push(("Content-Location".into(), Raw::new(location.clone()).into()));
    }
    for (name, h) in spec.headers {
        headers.push((name.into(), h.into_part_header()));
    }
    let contents = match spec.content {
        Content::Text(text) => MimeBody::Text(text.into()),
        Content::Multipart(children) => {
            MimeBody::Multipart(children.into_iter().map(|c| mime_part(c, blobs)).collect())
        }
        Content::Blob(id) => {
            let bytes = blobs.get(&id).cloned().unwrap_or_default();
            if matches!(
                spec.media_type.as_str(),
                "message/rfc822" | "message/global"
            ) {
                // RFC 2046 §5.2.1: an encapsulated message is never encoded.
                let cte = if bytes.is_ascii() { "7bit" } else { "8bit" };
                headers.push(("Content-Transfer-Encoding".into(), Raw::new(cte).into()));
            }
            MimeBody::Binary(bytes.into())
        }
    };
    MimePart { headers, contents }
}

/// The root part for `textBody`/`htmlBody`/`attachments`: the text and HTML
/// as `multipart/alternative`, the HTML with its inline (`cid`) parts as
/// `multipart/related`, and the other attachments in `multipart/mixed`.
fn flat_body(
    text: Option<PartSpec>,
    html: Option<PartSpec>,
    attachments: Vec<PartSpec>,
) -> PartSpec {
    let multipart = |kind: &str, children: Vec<PartSpec>| PartSpec {
        explicit_type: true,
        media_type: format!("multipart/{kind}"),
        charset: None,
        disposition: None,
        name: None,
        cid: None,
        language: Vec::new(),
        location: None,
        headers: Vec::new(),
        content: Content::Multipart(children),
    };
    let (inline, attached): (Vec<PartSpec>, Vec<PartSpec>) =
        attachments.into_iter().partition(|a| {
            html.is_some() && a.cid.is_some() && a.disposition.as_deref() != Some("attachment")
        });
    let html = html.map(|h| {
        if inline.is_empty() {
            h
        } else {
            let mut parts = vec![h];
            parts.extend(inline);
            multipart("related", parts)
        }
    });
    let body = match (text, html) {
        (Some(t), Some(h)) => Some(multipart("alternative", vec![t, h])),
        (Some(t), None) => Some(t),
        (None, Some(h)) => Some(h),
        (None, None) => None,
    };
    match (body, attached.is_empty()) {
        (Some(b), true) => b,
        (None, true) => PartSpec {
            explicit_type: true,
            media_type: "text/plain".into(),
            charset: None,
            disposition: None,
            name: None,
            cid: None,
            language: Vec::new(),
            location: None,
            headers: Vec::new(),
            content: Content::Text(String::new()),
        },
        (body, false) => {
            let mut parts: Vec<PartSpec> = body.into_iter().collect();
            parts.extend(attached);
            multipart("mixed", parts)
        }
    }
}

/// A creation, validated: where it goes and what to build.
struct Draft {
    mailbox: MailboxId,
    flags: Flags,
    keywords: Vec<String>,
    received_at: Option<i64>,
    headers: Vec<(String, HeaderOut)>,
    root: PartSpec,
}

/// Validates a creation (RFC 8621 §4.6); the SetError lists every invalid
/// property it found.
async fn parse_draft(
    ctx: &Ctx<'_>,
    object: &Map<String, Value>,
    call: &CallContext,
) -> Result<Result<Draft, SetError>, MethodError> {
    let mut bad: Vec<String> = Vec::new();
    let mut headers: Vec<(String, HeaderOut)> = Vec::new();
    let mut top: HashSet<String> = HashSet::new();

    for (property, field, form) in CONVENIENCE {
        if let Some(v) = object.get(property) {
            top.insert(field.to_ascii_lowercase());
            match header_instances(form, false, v) {
                Some(list) => headers.extend(list.into_iter().map(|h| (field.to_string(), h))),
                None => bad.push(property.into()),
            }
        }
    }
    for (k, v) in object {
        match k.as_str() {
            "mailboxIds" | "keywords" | "receivedAt" | "bodyStructure" | "textBody"
            | "htmlBody" | "attachments" | "bodyValues" => continue,
            p if CONVENIENCE.iter().any(|(c, _, _)| *c == p) => continue,
            _ => {}
        }
        // Server-set and immutable properties (id, blobId, threadId, size,
        // hasAttachment, preview), `headers`, and anything unknown.
        let Some(h) = header_property(k) else {
            bad.push(k.clone());
            continue;
        };
        let lower = h.name.to_ascii_lowercase();
        if lower.starts_with("content-") || !top.insert(lower) {
            bad.push(k.clone());
            continue;
        }
        match header_instances(h.form, h.all, v) {
            Some(list) => headers.extend(list.into_iter().map(|x| (h.name.clone(), x))),
            None => bad.push(k.clone()),
        }
    }

    let (flags, keywords) = match parse_keywords(object.get("keywords").unwrap_or(&Value::Null)) {
        Ok(k) => k,
        Err(KeywordError::TooMany) => return Ok(Err(KeywordError::TooMany.to_set_error())),
        Err(KeywordError::Invalid) => {
            bad.push("keywords".into());
            (Flags::NONE, Vec::new())
        }
    };
    let received_at = match object.get("receivedAt") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_str().and_then(parse_utc_date) {
            Some(t) => Some(t),
            None => {
                bad.push("receivedAt".into());
                None
            }
        },
    };

    let empty = Map::new();
    let body_values = match object.get("bodyValues") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => {
            bad.push("bodyValues".into());
            &empty
        }
    };
    let scope = PartScope {
        body_values,
        top_headers: &top,
    };
    let given = |k: &str| object.get(k).is_some_and(|v| !v.is_null());
    let root = if given("bodyStructure") {
        for k in ["textBody", "htmlBody", "attachments"] {
            if given(k) {
                bad.push(k.into());
            }
        }
        parse_part(
            &object["bodyStructure"],
            "bodyStructure",
            &scope,
            true,
            0,
            &mut bad,
        )
    } else {
        let single = |k: &str, want: &str, bad: &mut Vec<String>| -> Option<PartSpec> {
            let v = object.get(k).filter(|v| !v.is_null())?;
            // §4.6: exactly one part, of the given type.
            let Some([one]) = v.as_array().map(Vec::as_slice) else {
                bad.push(k.into());
                return None;
            };
            let part = parse_part(one, &format!("{k}/0"), &scope, false, 0, bad)?;
            if part.media_type != want && part.explicit_type {
                bad.push(format!("{k}/0/type"));
                return None;
            }
            let mut part = part;
            part.media_type = want.into();
            part.explicit_type = true;
            Some(part)
        };
        let text = single("textBody", "text/plain", &mut bad);
        let html = single("htmlBody", "text/html", &mut bad);
        let mut attachments = Vec::new();
        match object.get("attachments") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(p) = parse_part(
                        item,
                        &format!("attachments/{i}"),
                        &scope,
                        false,
                        0,
                        &mut bad,
                    ) {
                        attachments.push(p);
                    }
                }
            }
            Some(_) => bad.push("attachments".into()),
        }
        Some(flat_body(text, html, attachments))
    };

    let mailbox = parse_mailbox_ids(ctx, object.get("mailboxIds"), call).await?;
    if !bad.is_empty() {
        if let Err(e) = &mailbox
            && e.kind == SetErrorKind::InvalidProperties
        {
            bad.push("mailboxIds".into());
        }
        bad.sort();
        bad.dedup();
        return Ok(Err(SetError::invalid_properties(bad)));
    }
    let mailbox = match mailbox {
        Ok(m) => m,
        Err(e) => return Ok(Err(e)),
    };
    let Some(root) = root else {
        return Ok(Err(SetError::invalid_properties(["bodyStructure"])));
    };
    Ok(Ok(Draft {
        mailbox,
        flags,
        keywords,
        received_at,
        headers,
        root,
    }))
}

/// Writes the message: the Email's header fields (with `Date`, `Message-ID`
/// and `MIME-Version` added when missing, RFC 8621 §4.6), then the root part.
fn write_message(
    hostname: &str,
    headers: Vec<(String, HeaderOut)>,
    root: MimePart<'static>,
) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    // The root part's own fields (from `bodyStructure`) count too: they are
    // in the same header section.
    let has = |name: &str| {
        headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
            || root
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    let (has_date, has_id, has_version) = (has("Date"), has("Message-ID"), has("MIME-Version"));
    for (name, h) in &headers {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        match h {
            HeaderOut::Typed(t) => {
                out.push(b' ');
                t.write_header(&mut out, name.len() + 2);
            }
            HeaderOut::Raw(r) => {
                if !r.starts_with([' ', '\t']) {
                    out.push(b' ');
                }
                out.extend_from_slice(r.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    let now = OffsetDateTime::now_utc();
    if !has_date {
        let date = now.format(&Rfc2822).unwrap_or_default();
        out.extend_from_slice(format!("Date: {date}\r\n").as_bytes());
    }
    if !has_id {
        out.extend_from_slice(
            format!(
                "Message-ID: <{}.{}@{hostname}>\r\n",
                pochta_delivery::new_id(),
                now.unix_timestamp()
            )
            .as_bytes(),
        );
    }
    if !has_version {
        out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    }
    root.write_part(&mut out);
    out
}

/// Creates one email (RFC 8621 §4.6).
async fn create(
    ctx: &Ctx<'_>,
    object: Map<String, Value>,
    call: &CallContext,
) -> Result<Result<(Id, Value), SetError>, MethodError> {
    let draft = match parse_draft(ctx, &object, call).await? {
        Ok(d) => d,
        Err(e) => return Ok(Err(e)),
    };
    let mut wanted = Vec::new();
    blob_ids(&draft.root, &mut wanted);
    let mut blobs: HashMap<String, Vec<u8>> = HashMap::new();
    let mut missing: Vec<Id> = Vec::new();
    let max = ctx.jmap.settings.max_message_size;
    let mut total: u64 = 0;
    for id in wanted {
        if blobs.contains_key(id) {
            continue;
        }
        match read_blob(ctx, id).await? {
            Some(bytes) => {
                total = total.saturating_add(bytes.len() as u64);
                if total > max {
                    return Ok(Err(SetError::too_large(Some(max))));
                }
                blobs.insert(id.to_string(), bytes);
            }
            None => {
                if let Ok(i) = Id::new(id)
                    && !missing.contains(&i)
                {
                    missing.push(i);
                }
            }
        }
    }
    if !missing.is_empty() {
        return Ok(Err(SetError::blob_not_found(&missing)));
    }
    let Draft {
        mailbox,
        flags,
        keywords,
        received_at,
        headers,
        root,
    } = draft;
    let raw = write_message(
        &ctx.jmap.settings.hostname,
        headers,
        mime_part(root, &blobs),
    );
    if raw.len() as u64 > max {
        return Ok(Err(SetError::too_large(Some(max))));
    }
    store_message(
        ctx,
        raw,
        mailbox,
        flags,
        keywords,
        received_at.unwrap_or_else(unix_now),
    )
    .await
}

// ---------------------------------------------------------------- Email/copy

/// Email/copy (RFC 8621 §4.7). `/copy` is between two different accounts
/// (RFC 8620 §5.4: `accountId` "MUST be different to the fromAccountId", an
/// `invalidArguments` here), and a user of this server has exactly one
/// account, so any other `fromAccountId` is one the user cannot see:
/// `fromAccountNotFound`.
pub async fn copy(
    ctx: &mut Ctx<'_>,
    args: Map<String, Value>,
    call: &mut CallContext,
) -> Result<Value, MethodError> {
    let request = CopyRequest::from_args(args, call)?;
    ctx.check_account(&request.account_id)?;
    Err(MethodError::with_description(
        MethodErrorKind::FromAccountNotFound,
        format!(
            "no account {} for this user (each user has one account)",
            request.from_account_id
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_map_to_flags_and_validate() {
        let (f, k) =
            parse_keywords(&json!({"$Seen": true, "$draft": true, "Work": true})).expect("valid");
        assert_eq!(f, Flags::SEEN | Flags::DRAFT);
        assert_eq!(k, ["work"]);
        assert_eq!(
            parse_keywords(&json!({"a b": true})),
            Err(KeywordError::Invalid)
        );
        assert_eq!(
            parse_keywords(&json!({"x": false})),
            Err(KeywordError::Invalid)
        );
        assert_eq!(
            parse_keywords(&json!({"x]": true})),
            Err(KeywordError::Invalid)
        );
        assert!(valid_keyword("$Forwarded"));
        assert!(!valid_keyword(""));
    }

    #[test]
    fn header_properties_and_forms() {
        assert_eq!(
            header_property("header:X-Foo:asText:all"),
            Some(HeaderProperty {
                name: "X-Foo".into(),
                form: Form::Text,
                all: true
            })
        );
        assert!(header_property("header:From:asDate").is_none());
        assert!(header_property("header:Subject:asText").is_some());
        assert!(header_property("header:List-Post:asURLs").is_some());
        assert!(header_property("header:To:asAddresses:bogus").is_none());
        assert!(header_property("header::asRaw").is_none());
        assert!(valid_raw(" a\r\n b"));
        assert!(!valid_raw(" a\r\nb"));
        assert!(!valid_raw(" a\nb"));
        assert!(!valid_raw(" a\r\n"));
    }
}
