//! Thread/get, /changes (RFC 8621 §3).
//!
//! A Thread is the store's conversation: delivery joins a message to the
//! thread of any earlier message its Message-ID, In-Reply-To or References
//! name, and a message never changes thread afterwards. A thread's id is the
//! IMAP THREADID (`T<hex>`), its `emailIds` the store's order (receivedAt,
//! then id, as §3 asks).
//!
//! The Thread state is the Email state (the store keeps one for both), and a
//! Thread changes only when an email joins or leaves it: flags and moves are
//! not Thread properties. Thread/changes reads the change log for Email
//! creations and destructions and, for each thread they touch, compares its
//! number of emails at both ends of the window: none → some is `created`,
//! some → none `destroyed`, some → some `updated`, and none → none (a thread
//! born and gone in between) is left out (RFC 8620 §5.2).

use std::collections::{HashMap, HashSet};

use pochta_jmap_proto::{
    CallContext, ChangesRequest, ChangesResponse, GetRequest, GetResponse, MethodError,
    method_response,
};
use pochta_store::{Change, ChangeOp, ModSeq, ObjectKind, ThreadId};
use serde_json::{Map, Value};

use crate::identity::{check_properties, kind_state};
use crate::mailbox::{LogReader, change_too_big, since_state};
use crate::{Ctx, ids, store_error};

/// The properties of a Thread (RFC 8621 §3).
const PROPERTIES: [&str; 2] = ["id", "emailIds"];

/// Thread/get (RFC 8621 §3.1). `ids: null` lists every thread, unless there
/// are more than `maxObjectsInGet` (`requestTooLarge`, RFC 8620 §5.1).
pub async fn get(
    ctx: &mut Ctx<'_>,
    args: Map<String, Value>,
    call: &mut CallContext,
) -> Result<Value, MethodError> {
    let request = GetRequest::<String>::from_args(args, call)?;
    ctx.check_account(&request.account_id)?;
    check_properties(request.properties.as_deref(), &PROPERTIES)?;
    let state = kind_state(ctx, ObjectKind::Email).await?;
    let mut response: GetResponse<Value> = GetResponse::for_request(&request, state);
    let wanted: Vec<(String, Option<ThreadId>)> = match &request.ids {
        Some(list) => list
            .iter()
            .map(|id| (id.to_string(), ids::parse_thread(id.as_str())))
            .collect(),
        None => {
            let all = all_threads(ctx).await?;
            let max = call.limits().max_objects_in_get;
            if u64::try_from(all.len()).unwrap_or(u64::MAX) > max {
                return Err(MethodError::request_too_large(format!(
                    "the account has {} threads; maxObjectsInGet is {max}",
                    all.len()
                )));
            }
            all.into_iter()
                .map(|t| (ids::thread(t).into_string(), Some(t)))
                .collect()
        }
    };
    let threads: Vec<ThreadId> = wanted.iter().filter_map(|(_, t)| *t).collect();
    let found: HashMap<ThreadId, Vec<u64>> = ctx
        .store()
        .thread_messages(ctx.account.id, &threads)
        .await
        .map_err(store_error)?
        .into_iter()
        .collect();
    let with_emails = request
        .properties
        .as_ref()
        .is_none_or(|p| p.iter().any(|p| p == "emailIds"));
    for (shown, thread) in wanted {
        let Some((thread, emails)) = thread.and_then(|t| found.get(&t).map(|e| (t, e))) else {
            response.not_found.push(shown);
            continue;
        };
        let mut object = Map::new();
        object.insert("id".into(), Value::from(ids::thread(thread).into_string()));
        if with_emails {
            object.insert(
                "emailIds".into(),
                Value::Array(
                    emails
                        .iter()
                        .map(|e| Value::from(ids::email(*e).into_string()))
                        .collect(),
                ),
            );
        }
        response.list.push(Value::Object(object));
    }
    method_response("", &response).map(|(_, v)| v)
}

/// Every thread of the account, ascending.
async fn all_threads(ctx: &Ctx<'_>) -> Result<Vec<ThreadId>, MethodError> {
    let store = ctx.store();
    let mut threads = HashSet::new();
    for m in store.mailboxes(ctx.account.id).await.map_err(store_error)? {
        for s in store
            .messages(ctx.account.id, m.id)
            .await
            .map_err(store_error)?
        {
            threads.insert(s.thread_id);
        }
    }
    let mut out: Vec<ThreadId> = threads.into_iter().collect();
    out.sort_unstable();
    Ok(out)
}

/// The emails a change adds to (+1) or removes from (-1) threads.
fn thread_events(group: &[Change]) -> impl Iterator<Item = (ThreadId, i64)> + '_ {
    group.iter().filter_map(|c| {
        if c.kind != ObjectKind::Email {
            return None;
        }
        let delta = match c.op {
            ChangeOp::Created => 1,
            ChangeOp::Destroyed => -1,
            ChangeOp::Updated | ChangeOp::LeftMailbox => return None,
        };
        c.thread_id.map(|t| (t, delta))
    })
}

/// The emails of `threads` now, with the account state they are at (read so
/// that no change falls between; after a few tries, the last reading).
async fn thread_sizes(
    ctx: &Ctx<'_>,
    threads: &[ThreadId],
) -> Result<(ModSeq, HashMap<ThreadId, i64>), MethodError> {
    let store = ctx.store();
    let mut before = store.state(ctx.account.id).await.map_err(store_error)?;
    let mut tries = 0;
    loop {
        let sizes: HashMap<ThreadId, i64> = store
            .thread_messages(ctx.account.id, threads)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(|(t, emails)| (t, i64::try_from(emails.len()).unwrap_or(i64::MAX)))
            .collect();
        let after = store.state(ctx.account.id).await.map_err(store_error)?;
        tries += 1;
        if after == before || tries >= 5 {
            return Ok((after, sizes));
        }
        before = after;
    }
}

/// Thread/changes (RFC 8621 §3.2), from the Email change log. `maxChanges`
/// counts threads; a single change touching more threads than that is
/// `cannotCalculateChanges` (states cannot split a change).
pub async fn changes(
    ctx: &mut Ctx<'_>,
    args: Map<String, Value>,
    call: &mut CallContext,
) -> Result<Value, MethodError> {
    let request = ChangesRequest::from_args(args, call)?;
    ctx.check_account(&request.account_id)?;
    let since = since_state(ctx, &request.since_state).await?;
    let max = request
        .max_changes
        .map(|m| usize::try_from(m).unwrap_or(usize::MAX));
    let state_now = ctx
        .store()
        .kind_state(ctx.account.id, ObjectKind::Email)
        .await
        .map_err(store_error)?;

    // The window: whole changes, while they fit in maxChanges.
    let mut order: Vec<ThreadId> = Vec::new();
    let mut in_window: HashMap<ThreadId, i64> = HashMap::new();
    let mut after_window: HashMap<ThreadId, i64> = HashMap::new();
    let mut has_more = false;
    let mut last_included = since;
    let mut last_email = 0;
    let mut reader = LogReader::new(since);
    while let Some((modseq, group)) = reader.next(ctx).await? {
        if !has_more && let Some(max) = max {
            let fresh: HashSet<ThreadId> = thread_events(&group)
                .map(|(t, _)| t)
                .filter(|t| !in_window.contains_key(t))
                .collect();
            if order.len() + fresh.len() > max {
                if order.is_empty() {
                    return Err(change_too_big(max));
                }
                has_more = true;
            }
        }
        if has_more {
            for (t, d) in thread_events(&group) {
                if in_window.contains_key(&t) {
                    *after_window.entry(t).or_default() += d;
                }
            }
            continue;
        }
        last_included = modseq;
        if group.iter().any(|c| c.kind == ObjectKind::Email) {
            last_email = modseq;
        }
        for (t, d) in thread_events(&group) {
            match in_window.get_mut(&t) {
                Some(n) => *n += d,
                None => {
                    in_window.insert(t, d);
                    order.push(t);
                }
            }
        }
    }

    // How many emails each thread has now, and what changed it after the
    // window up to that reading: the difference is its size at the window's
    // end, and the window's own changes give its size at the start.
    let (snapshot, now) = thread_sizes(ctx, &order).await?;
    reader.resume();
    while let Some((modseq, group)) = reader.next(ctx).await? {
        if modseq > snapshot {
            break;
        }
        for (t, d) in thread_events(&group) {
            if in_window.contains_key(&t) {
                *after_window.entry(t).or_default() += d;
            }
        }
    }
    let (mut created, mut updated, mut destroyed) = (Vec::new(), Vec::new(), Vec::new());
    for t in order {
        let at_end = now.get(&t).copied().unwrap_or(0) - after_window.get(&t).copied().unwrap_or(0);
        let at_start = at_end - in_window.get(&t).copied().unwrap_or(0);
        match (at_start > 0, at_end > 0) {
            (false, true) => created.push(ids::thread(t)),
            (true, false) => destroyed.push(ids::thread(t)),
            (true, true) => updated.push(ids::thread(t)),
            (false, false) => {}
        }
    }
    let new_state = if has_more {
        last_included
    } else {
        state_now.max(last_email)
    };
    let response = ChangesResponse {
        account_id: request.account_id,
        old_state: request.since_state,
        new_state: new_state.to_string(),
        has_more_changes: has_more,
        created,
        updated,
        destroyed,
        extra: Map::new(),
    };
    method_response("", &response).map(|(_, v)| v)
}
