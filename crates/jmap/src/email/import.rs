//! Email/import and Email/parse (RFC 8621 §4.8, §4.9).
//!
//! Both read RFC 5322 messages from blobs: uploads (`B…`), stored messages,
//! or an attached message inside a stored one (`P…`, the part's content with
//! its transfer encoding undone, see `set::read_blob`). A blob "is a message"
//! when it starts with a header field (an mbox `From ` line before it is
//! tolerated); anything else is `invalidEmail` (import) or `notParsable`
//! (parse). Import stores the bytes unchanged; duplicates are allowed (each
//! import is a new Email, §4.8).

use mail_parser::HeaderValue;
use mail_parser::parsers::MessageStream;
use pochta_jmap_proto::{Args, CallContext, Id, MethodError, SetError, SetErrorKind};
use pochta_store::ObjectKind;
use serde_json::{Map, Value};

use super::get::{EmailMetadata, EmailRequest, PARSE_DEFAULT_PROPERTIES, PartBlobs, render_email};
use super::set::{
    parse_keywords, parse_mailbox_ids, parse_meta, read_blob, store_message, unix_now,
};
use crate::Ctx;
use crate::identity::{check_state, kind_state};
use crate::ids::{self, BlobRef};

/// Whether `raw` looks like an RFC 5322 message: its first line (after an
/// optional mbox `From ` line) is a header field `name: value`.
pub(crate) fn looks_like_message(raw: &[u8]) -> bool {
    let mut rest = raw;
    if rest.starts_with(b"From ") {
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => rest = &rest[i + 1..],
            None => return false,
        }
    }
    let line_end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let line = &rest[..line_end];
    match line.iter().position(|&b| b == b':') {
        Some(colon) if colon > 0 => {
            line[..colon]
                .iter()
                .all(|b| (33..=126).contains(b) || *b == b' ' || *b == b'\t')
                && !line[0].is_ascii_whitespace()
        }
        _ => false,
    }
}

/// The date of the most recent `Received:` field (the topmost), the
/// default `receivedAt` of an import (RFC 8621 §4.8).
fn last_received(raw: &[u8]) -> Option<i64> {
    let value = pochta_message::find_header(raw, "Received")?;
    let semicolon = value.iter().rposition(|&b| b == b';')?;
    let mut date = value[semicolon + 1..].to_vec();
    date.push(b'\n');
    match MessageStream::new(&date).parse_date() {
        HeaderValue::DateTime(dt) if dt.is_valid() => Some(dt.to_timestamp()),
        _ => None,
    }
}

/// Email/import (RFC 8621 §4.8).
pub async fn import(
    ctx: &mut Ctx<'_>,
    args: Map<String, Value>,
    call: &mut CallContext,
) -> Result<Value, MethodError> {
    let mut args = Args::new(args);
    let account_id: Id = args.require("accountId")?;
    let if_in_state = args.take::<String>("ifInState")?;
    let emails = args.require::<Map<String, Value>>("emails")?;
    args.finish()?;
    ctx.check_account(&account_id)?;
    let max_set = call.limits().max_objects_in_set;
    if u64::try_from(emails.len()).unwrap_or(u64::MAX) > max_set {
        return Err(MethodError::request_too_large(format!(
            "{} emails to import; maxObjectsInSet is {max_set}",
            emails.len()
        )));
    }
    let old_state = kind_state(ctx, ObjectKind::Email).await?;
    check_state(if_in_state.as_deref(), &old_state)?;

    let mut created = Map::new();
    let mut not_created = Map::new();
    let mut changed = false;
    for (cid, object) in emails {
        if !pochta_jmap_proto::is_valid_id(&cid) {
            return Err(MethodError::invalid_arguments(format!(
                "emails: {cid:?} is not a valid creation id"
            )));
        }
        let outcome = match import_one(ctx, &object, call).await {
            Ok(o) => o,
            Err(e) if changed => {
                return Err(MethodError::with_description(
                    pochta_jmap_proto::MethodErrorKind::ServerPartialFail,
                    e.description.unwrap_or_default(),
                ));
            }
            Err(e) => return Err(e),
        };
        match outcome {
            Ok((id, value)) => {
                changed = true;
                call.add_created(cid.clone(), id);
                created.insert(cid, value);
            }
            Err(e) => {
                not_created.insert(cid, e.to_json());
            }
        }
    }
    let new_state = kind_state(ctx, ObjectKind::Email).await?;
    let null_if_empty = |m: Map<String, Value>| {
        if m.is_empty() {
            Value::Null
        } else {
            Value::Object(m)
        }
    };
    let mut response = Map::new();
    response.insert("accountId".into(), Value::String(account_id.into_string()));
    response.insert("oldState".into(), Value::String(old_state));
    response.insert("newState".into(), Value::String(new_state));
    response.insert("created".into(), null_if_empty(created));
    response.insert("notCreated".into(), null_if_empty(not_created));
    Ok(Value::Object(response))
}

/// Imports one EmailImport object.
async fn import_one(
    ctx: &Ctx<'_>,
    object: &Value,
    call: &CallContext,
) -> Result<Result<(Id, Value), SetError>, MethodError> {
    let Some(o) = object.as_object() else {
        return Ok(Err(SetError::invalid_properties(["blobId"])
            .with_description("an EmailImport must be an object")));
    };
    let mut bad: Vec<String> = o
        .keys()
        .filter(|k| {
            !matches!(
                k.as_str(),
                "blobId" | "mailboxIds" | "keywords" | "receivedAt"
            )
        })
        .cloned()
        .collect();
    // A string that is not an Id (RFC 8620 §1.2), such as a `#` reference
    // to an email created earlier (a creation id names the email, not its
    // blob), is an invalid property: as `blobNotFound` its `notFound` list
    // could not name it.
    let blob_id = o
        .get("blobId")
        .and_then(Value::as_str)
        .and_then(|s| Id::new(s).ok());
    if blob_id.is_none() {
        bad.push("blobId".into());
    }
    let keywords = parse_keywords(o.get("keywords").unwrap_or(&Value::Null));
    if keywords == Err(super::set::KeywordError::Invalid) {
        bad.push("keywords".into());
    }
    let received_at = match o.get("receivedAt") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_str().and_then(super::get::parse_utc_date) {
            Some(t) => Some(t),
            None => {
                bad.push("receivedAt".into());
                None
            }
        },
    };
    let mailbox = parse_mailbox_ids(ctx, o.get("mailboxIds"), call).await?;
    if let Err(e) = &mailbox
        && e.kind == SetErrorKind::InvalidProperties
    {
        bad.push("mailboxIds".into());
    }
    if !bad.is_empty() {
        bad.sort();
        bad.dedup();
        return Ok(Err(SetError::invalid_properties(bad)));
    }
    let mailbox = match mailbox {
        Ok(m) => m,
        Err(e) => return Ok(Err(e)),
    };
    let (flags, keywords) = match keywords {
        Ok(k) => k,
        Err(e) => return Ok(Err(e.to_set_error())),
    };
    // `bad` named a missing blobId above.
    let Some(blob_id) = blob_id else {
        return Ok(Err(SetError::invalid_properties(["blobId"])));
    };
    let Some(raw) = read_blob(ctx, blob_id.as_str()).await? else {
        return Ok(Err(SetError::blob_not_found([&blob_id])));
    };
    let max = ctx.jmap.settings.max_message_size;
    if raw.len() as u64 > max {
        return Ok(Err(SetError::too_large(Some(max))));
    }
    if !looks_like_message(&raw) {
        return Ok(Err(SetError::new(SetErrorKind::InvalidEmail)
            .with_description("the blob is not an RFC 5322 message")));
    }
    let received_at = received_at
        .or_else(|| last_received(&raw))
        .unwrap_or_else(unix_now);
    store_message(ctx, raw, mailbox, flags, keywords, received_at).await
}

/// Email/parse (RFC 8621 §4.9), rendered by Email/get's code.
pub async fn parse(
    ctx: &mut Ctx<'_>,
    args: Map<String, Value>,
    call: &mut CallContext,
) -> Result<Value, MethodError> {
    let mut args = Args::new(args);
    let account_id: Id = args.require("accountId")?;
    let blob_ids: Vec<String> = args.require("blobIds")?;
    let properties = args.take::<Vec<String>>("properties")?;
    let request = EmailRequest::take(&mut args, properties, PARSE_DEFAULT_PROPERTIES)?;
    args.finish()?;
    ctx.check_account(&account_id)?;
    let max_get = call.limits().max_objects_in_get;
    if u64::try_from(blob_ids.len()).unwrap_or(u64::MAX) > max_get {
        return Err(MethodError::request_too_large(format!(
            "{} blobs to parse; maxObjectsInGet is {max_get}",
            blob_ids.len()
        )));
    }
    let mut parsed = Map::new();
    let mut not_parsable: Vec<Value> = Vec::new();
    let mut not_found: Vec<Value> = Vec::new();
    for blob_id in blob_ids {
        if parsed.contains_key(&blob_id)
            || not_parsable
                .iter()
                .chain(&not_found)
                .any(|v| *v == *blob_id)
        {
            continue;
        }
        let Some(id) = Id::new(blob_id.clone()).ok() else {
            not_found.push(Value::String(blob_id));
            continue;
        };
        // Which stored blob the parts' ids point into, and where.
        let blobs = match ids::parse_blob(&blob_id) {
            Some(BlobRef::Whole(b)) => PartBlobs {
                blob: b,
                prefix: Vec::new(),
            },
            // A part that is not an encapsulated message (say a base64
            // message/rfc822) parses too, but its parts' ids then name
            // nothing the download endpoint can find.
            Some(BlobRef::Part(b, path)) => PartBlobs {
                blob: b,
                prefix: path,
            },
            None => {
                not_found.push(Value::String(blob_id));
                continue;
            }
        };
        let Some(raw) = read_blob(ctx, &blob_id).await? else {
            not_found.push(Value::String(blob_id));
            continue;
        };
        if !looks_like_message(&raw) {
            not_parsable.push(Value::String(blob_id));
            continue;
        }
        let size = raw.len();
        let (raw, meta) = parse_meta(raw).await?;
        let email = render_email(
            Some(&raw),
            &meta,
            &EmailMetadata::parsed(id, size),
            &blobs,
            &request,
        );
        parsed.insert(blob_id, email);
    }
    let mut response = Map::new();
    response.insert("accountId".into(), Value::String(account_id.into_string()));
    response.insert(
        "parsed".into(),
        if parsed.is_empty() {
            Value::Null
        } else {
            Value::Object(parsed)
        },
    );
    for (name, list) in [("notParsable", not_parsable), ("notFound", not_found)] {
        response.insert(
            name.into(),
            if list.is_empty() {
                Value::Null
            } else {
                Value::Array(list)
            },
        );
    }
    Ok(Value::Object(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_recognised() {
        assert!(looks_like_message(b"Subject: hi\r\n\r\nbody"));
        assert!(looks_like_message(
            b"From alice@example.com Mon Jan 1 00:00:00 2024\nSubject: x\n\nbody"
        ));
        assert!(!looks_like_message(b""));
        assert!(!looks_like_message(b"\x89PNG\r\n\x1a\n"));
        assert!(!looks_like_message(b"just some text\nwith lines"));
        assert!(!looks_like_message(b" Subject: folded?\r\n"));
    }

    #[test]
    fn received_dates() {
        let raw = b"Received: from a by b; Tue, 10 Jul 2018 11:05:08 +1000\r\nSubject: x\r\n\r\n";
        assert_eq!(last_received(raw), Some(1_531_184_708));
        assert_eq!(last_received(b"Subject: x\r\n\r\n"), None);
    }
}
