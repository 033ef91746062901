//! Blob/copy (RFC 8620 §6.3).
//!
//! Every user here has exactly one account, so the only copy that can succeed
//! is from the account to itself: its blobs are already readable there, so
//! each is "copied" to its own id. A `fromAccountId` that is not the user's
//! is `fromAccountNotFound`, an `accountId` that is not theirs
//! `accountNotFound`. A blob id that names nothing the account may read is in
//! `notCopied` with the `notFound` SetError, the type §6.3 names ("the
//! notFound SetError error may be returned if the blobId to be copied cannot
//! be found").

use pochta_jmap_proto::{Args, CallContext, Id, MethodError, MethodErrorKind, SetError};
use pochta_message::PartKind;
use pochta_store::StoreError;
use serde_json::{Map, Value};

use crate::ids::{self, BlobRef};
use crate::{Ctx, store_error};

/// Messages parsed inline up to this size; larger ones on a blocking thread.
const PARSE_INLINE_MAX: usize = 256 * 1024;

/// Blob/copy (RFC 8620 §6.3).
pub async fn copy(
    ctx: &mut Ctx<'_>,
    args: Map<String, Value>,
    call: &mut CallContext,
) -> Result<Value, MethodError> {
    let mut args = Args::new(args);
    let from_account = args.require::<Id>("fromAccountId")?;
    let account = args.require::<Id>("accountId")?;
    let blob_ids = args.require::<Vec<Id>>("blobIds")?;
    args.finish()?;
    if ids::parse_account(from_account.as_str()) != Some(ctx.account.id) {
        return Err(MethodError::with_description(
            MethodErrorKind::FromAccountNotFound,
            format!("no account {from_account} for this user"),
        ));
    }
    ctx.check_account(&account)?;
    let max = call.limits().max_objects_in_set;
    if u64::try_from(blob_ids.len()).unwrap_or(u64::MAX) > max {
        return Err(MethodError::request_too_large(format!(
            "{} blobs to copy; maxObjectsInSet is {max}",
            blob_ids.len()
        )));
    }
    let mut copied = Map::new();
    let mut not_copied = Map::new();
    for id in blob_ids {
        if copied.contains_key(id.as_str()) || not_copied.contains_key(id.as_str()) {
            continue;
        }
        if readable(ctx, id.as_str()).await? {
            copied.insert(id.to_string(), Value::from(id.into_string()));
        } else {
            not_copied.insert(
                id.into_string(),
                SetError::not_found()
                    .with_description("no such blob in the account")
                    .to_json(),
            );
        }
    }
    let or_null = |m: Map<String, Value>| {
        if m.is_empty() {
            Value::Null
        } else {
            Value::Object(m)
        }
    };
    let mut out = Map::new();
    out.insert(
        "fromAccountId".into(),
        Value::from(from_account.into_string()),
    );
    out.insert("accountId".into(), Value::from(account.into_string()));
    out.insert("copied".into(), or_null(copied));
    out.insert("notCopied".into(), or_null(not_copied));
    Ok(Value::Object(out))
}

/// Whether the account may read the blob `id`: a whole stored blob (message
/// or upload), or an existing non-multipart MIME part of a stored message.
async fn readable(ctx: &Ctx<'_>, id: &str) -> Result<bool, MethodError> {
    let (blob, path) = match ids::parse_blob(id) {
        None => return Ok(false),
        Some(BlobRef::Whole(b)) => (b, None),
        Some(BlobRef::Part(b, path)) => (b, Some(path)),
    };
    let size = ctx
        .store()
        .blob_size(ctx.account.id, blob)
        .await
        .map_err(store_error)?;
    let Some(path) = path else {
        return Ok(size.is_some());
    };
    if size.is_none() {
        return Ok(false);
    }
    let raw = match ctx.store().read_blob(ctx.account.id, blob).await {
        Ok(raw) => raw,
        Err(StoreError::NotFound(_)) => return Ok(false),
        Err(e) => return Err(store_error(e)),
    };
    let meta = if raw.len() <= PARSE_INLINE_MAX {
        pochta_message::parse(&raw)
    } else {
        tokio::task::spawn_blocking(move || pochta_message::parse(&raw))
            .await
            .map_err(|e| MethodError::server_fail(format!("parser task failed: {e}")))?
    };
    // A multipart has no blob of its own (RFC 8621 §4.1.4).
    Ok(meta
        .part(&path)
        .is_some_and(|p| !matches!(p.kind, PartKind::Multipart(_))))
}
