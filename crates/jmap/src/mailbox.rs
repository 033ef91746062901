//! Mailbox/get, /changes, /query, /queryChanges, /set (RFC 8621 §2).
//!
//! A JMAP Mailbox is a store mailbox, the same object IMAP lists as a folder:
//! the store keeps a tree (parent id + the name of one level), which is
//! exactly JMAP's `parentId` + `name`. What follows from sharing it with IMAP:
//!
//! * A `name` may not contain `/` (IMAP's hierarchy delimiter), control
//!   characters, or more than 255 octets (`maxSizeMailboxName`); a top-level
//!   mailbox may not be called `INBOX` in any case (IMAP could not tell it
//!   from the INBOX). Sibling names are unique, compared exactly as the store
//!   does. Refusals are `invalidProperties` on `name` (RFC 8621 §2: "There
//!   MUST NOT be two sibling Mailboxes with both the same parent and the same
//!   name"; RFC 8620's `alreadyExists` is for `/copy` and imports).
//! * INBOX cannot be destroyed, renamed or moved (IMAP needs it at the top
//!   level under that name): its `myRights` say `mayRename`/`mayDelete`
//!   false, and trying is `forbidden`.
//! * `role` is settable at creation (unique in the account, §2: "there MUST
//!   NOT be two Mailboxes in the same account with the same role"), but the
//!   store cannot change an existing mailbox's role, so an update may only
//!   repeat the current one. Likewise the store cannot set `sortOrder`: a new
//!   mailbox always has 0, and an update may only repeat the current value.
//!   Anything else is `invalidProperties` with a description saying so.
//! * `isSubscribed` is IMAP's subscription.
//! * Destroying a mailbox with `onDestroyRemoveEmails` destroys its emails
//!   too (an email is in exactly one mailbox here).
//!
//! States are the store's Mailbox state ([`pochta_store::Store::kind_state`]),
//! which also moves with every Email change since the counts do.
//! `/changes` and `/queryChanges` are computed from the change log, one whole
//! change (ModSeq) at a time ([`LogReader`]), so `maxChanges` is honoured
//! exactly and `updatedProperties` can say when only counts changed.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use pochta_jmap_proto::{
    AddedItem, Args, CallContext, ChangesRequest, ChangesResponse, Comparator, Filter, GetRequest,
    GetResponse, Id, MethodError, MethodErrorKind, QueryChangesRequest, QueryChangesResponse,
    QueryRequest, SetError, SetErrorKind, SetRequest, SetResponse, apply_patch, creation_ref,
    is_valid_id, method_response, patch_properties,
};
use pochta_store::{
    Change, ChangeOp, Mailbox, MailboxCounts, MailboxId, ModSeq, ObjectKind, Role, StoreError,
};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::identity::{check_properties, check_state, kind_state};
use crate::{Ctx, ids, store_error};

/// The properties of a Mailbox (RFC 8621 §2).
const PROPERTIES: [&str; 11] = [
    "id",
    "name",
    "parentId",
    "role",
    "sortOrder",
    "totalEmails",
    "unreadEmails",
    "totalThreads",
    "unreadThreads",
    "myRights",
    "isSubscribed",
];

/// The properties only the server sets.
const SERVER_SET: [&str; 6] = [
    "id",
    "totalEmails",
    "unreadEmails",
    "totalThreads",
    "unreadThreads",
    "myRights",
];

/// The count properties, the only ones Email changes move (RFC 8621 §2.2,
/// `updatedProperties`).
const COUNT_PROPERTIES: [&str; 4] = [
    "totalEmails",
    "unreadEmails",
    "totalThreads",
    "unreadThreads",
];

/// Longest name, in octets: the store's limit, advertised as
/// `maxSizeMailboxName`.
const MAX_NAME: usize = 255;

/// Change-log entries read per store call.
const LOG_PAGE: usize = 1000;

/// Deepest mailbox tree followed (a guard against a corrupt, cyclic tree).
const MAX_DEPTH: usize = 256;

fn to_json(response: &impl Serialize) -> Result<Value, MethodError> {
    method_response("", response).map(|(_, v)| v)
}

// ---------------------------------------------------------------- shared helpers

/// Parses a state string: the decimal ModSeq this server hands out.
pub(crate) fn parse_state(s: &str) -> Option<ModSeq> {
    let canonical = !s.is_empty()
        && s.len() <= 20
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

/// A `/changes` or `/queryChanges` since-state as a ModSeq:
/// `cannotCalculateChanges` unless it is one of ours, i.e. a number not past
/// the account's state (RFC 8620 §5.2).
pub(crate) async fn since_state(ctx: &Ctx<'_>, s: &str) -> Result<ModSeq, MethodError> {
    let cannot = || {
        MethodError::with_description(
            MethodErrorKind::CannotCalculateChanges,
            format!("unknown state {:?}", s.chars().take(40).collect::<String>()),
        )
    };
    let since = parse_state(s).ok_or_else(cannot)?;
    let now = ctx
        .store()
        .state(ctx.account.id)
        .await
        .map_err(store_error)?;
    if since > now {
        return Err(cannot());
    }
    Ok(since)
}

/// `cannotCalculateChanges` for a single change that touches more objects
/// than `maxChanges` allows: states are ModSeqs, so a change cannot be split,
/// and RFC 8620 §5.2 forbids returning more than `maxChanges` ids.
pub(crate) fn change_too_big(max: usize) -> MethodError {
    MethodError::with_description(
        MethodErrorKind::CannotCalculateChanges,
        format!("a single change touches more than maxChanges ({max}) objects; ask for more"),
    )
}

/// The store's change log after a state, one whole change (all entries of one
/// ModSeq) at a time, read in pages.
pub(crate) struct LogReader {
    cursor: ModSeq,
    page: usize,
    pending: VecDeque<Change>,
    exhausted: bool,
}

impl LogReader {
    /// A reader of the changes after `since`.
    pub(crate) fn new(since: ModSeq) -> LogReader {
        LogReader {
            cursor: since,
            page: LOG_PAGE,
            pending: VecDeque::new(),
            exhausted: false,
        }
    }

    /// The next change: its ModSeq and its entries in log order; `None` at the
    /// end of the log (as it was when the end was reached).
    pub(crate) async fn next(
        &mut self,
        ctx: &Ctx<'_>,
    ) -> Result<Option<(ModSeq, Vec<Change>)>, MethodError> {
        if self.pending.is_empty() && !self.exhausted {
            self.fill(ctx).await?;
        }
        let Some(modseq) = self.pending.front().map(|c| c.modseq) else {
            return Ok(None);
        };
        let mut group = Vec::new();
        while let Some(c) = self.pending.pop_front() {
            if c.modseq != modseq {
                self.pending.push_front(c);
                break;
            }
            group.push(c);
        }
        Ok(Some((modseq, group)))
    }

    /// Reads on past the end reached before (changes committed since).
    pub(crate) fn resume(&mut self) {
        self.exhausted = false;
    }

    /// Adds the next whole changes to `pending`. A full page may end in the
    /// middle of a change, so its last change is left for the next read
    /// (and the page doubled when one change fills it).
    async fn fill(&mut self, ctx: &Ctx<'_>) -> Result<(), MethodError> {
        loop {
            let mut batch = ctx
                .store()
                .change_log(ctx.account.id, self.cursor, self.page)
                .await
                .map_err(store_error)?;
            if batch.len() < self.page {
                self.exhausted = true;
                if let Some(last) = batch.last() {
                    self.cursor = last.modseq;
                }
                self.pending.extend(batch);
                return Ok(());
            }
            let last = batch.last().map_or(self.cursor, |c| c.modseq);
            let keep = batch.iter().take_while(|c| c.modseq < last).count();
            if keep == 0 {
                self.page = self.page.saturating_mul(2);
                continue;
            }
            batch.truncate(keep);
            if let Some(c) = batch.last() {
                self.cursor = c.modseq;
            }
            self.pending.extend(batch);
            return Ok(());
        }
    }
}

/// First and last thing that happened to each object, in order of first
/// appearance, folded as `/changes` reports them (RFC 8620 §5.2).
#[derive(Debug, Default)]
pub(crate) struct Fold {
    order: Vec<u64>,
    ops: HashMap<u64, (ChangeOp, ChangeOp)>,
}

impl Fold {
    /// Records `op` on `id`.
    pub(crate) fn add(&mut self, id: u64, op: ChangeOp) {
        match self.ops.get_mut(&id) {
            Some(entry) => entry.1 = op,
            None => {
                self.ops.insert(id, (op, op));
                self.order.push(id);
            }
        }
    }

    /// Objects seen so far.
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether `id` was seen.
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.ops.contains_key(&id)
    }

    /// `(created, updated, destroyed)`: an object created and destroyed in the
    /// window is left out (RFC 8620 §5.2 "SHOULD NOT be returned").
    pub(crate) fn split(&self) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
        let (mut created, mut updated, mut destroyed) = (Vec::new(), Vec::new(), Vec::new());
        for id in &self.order {
            match self.ops.get(id) {
                Some((ChangeOp::Created, ChangeOp::Destroyed)) | None => {}
                Some((ChangeOp::Created, _)) => created.push(*id),
                Some((_, ChangeOp::Destroyed)) => destroyed.push(*id),
                Some(_) => updated.push(*id),
            }
        }
        (created, updated, destroyed)
    }
}

// ---------------------------------------------------------------- objects

async fn mailbox_state(ctx: &Ctx<'_>) -> Result<ModSeq, MethodError> {
    ctx.store()
        .kind_state(ctx.account.id, ObjectKind::Mailbox)
        .await
        .map_err(store_error)
}

async fn load(ctx: &Ctx<'_>) -> Result<Vec<Mailbox>, MethodError> {
    ctx.store()
        .mailboxes(ctx.account.id)
        .await
        .map_err(store_error)
}

async fn load_counts(ctx: &Ctx<'_>) -> Result<HashMap<MailboxId, MailboxCounts>, MethodError> {
    Ok(ctx
        .store()
        .mailbox_thread_counts(ctx.account.id)
        .await
        .map_err(store_error)?
        .into_iter()
        .map(|c| (c.mailbox_id, c))
        .collect())
}

/// The INBOX: by role, or (should the role be missing) by its IMAP name.
fn is_inbox(m: &Mailbox) -> bool {
    m.role == Some(Role::Inbox) || (m.parent_id.is_none() && m.name.eq_ignore_ascii_case("INBOX"))
}

/// The owner's rights (RFC 8621 §2 MailboxRights): everything, except what the
/// server refuses (renaming or deleting INBOX).
fn my_rights(m: &Mailbox) -> Value {
    let not_inbox = !is_inbox(m);
    json!({
        "mayReadItems": true,
        "mayAddItems": true,
        "mayRemoveItems": true,
        "maySetSeen": true,
        "maySetKeywords": true,
        "mayCreateChild": true,
        "mayRename": not_inbox,
        "mayDelete": not_inbox,
        "maySubmit": true,
    })
}

/// Every property of a mailbox.
fn to_object(m: &Mailbox, counts: Option<&MailboxCounts>) -> Map<String, Value> {
    let c = counts.copied().unwrap_or_default();
    let mut o = Map::new();
    o.insert("id".into(), Value::from(ids::mailbox(m.id).into_string()));
    o.insert("name".into(), Value::from(m.name.as_str()));
    o.insert(
        "parentId".into(),
        m.parent_id
            .map_or(Value::Null, |p| Value::from(ids::mailbox(p).into_string())),
    );
    o.insert(
        "role".into(),
        m.role.map_or(Value::Null, |r| Value::from(r.as_str())),
    );
    o.insert("sortOrder".into(), Value::from(m.sort_order));
    o.insert("totalEmails".into(), Value::from(m.total));
    o.insert("unreadEmails".into(), Value::from(c.unread_emails));
    o.insert("totalThreads".into(), Value::from(c.total_threads));
    o.insert("unreadThreads".into(), Value::from(c.unread_threads));
    o.insert("myRights".into(), my_rights(m));
    o.insert("isSubscribed".into(), Value::from(m.subscribed));
    o
}

/// `object` with only the requested properties (`id` always).
fn select(object: Map<String, Value>, properties: Option<&[String]>) -> Value {
    match properties {
        None => Value::Object(object),
        Some(p) => Value::Object(
            object
                .into_iter()
                .filter(|(k, _)| k == "id" || p.iter().any(|q| q == k))
                .collect(),
        ),
    }
}

/// The ancestors of a mailbox and itself, root first.
fn chain<'m>(by_id: &HashMap<MailboxId, &'m Mailbox>, m: &'m Mailbox) -> Vec<&'m Mailbox> {
    let mut out = vec![m];
    let mut cursor = m.parent_id;
    while let Some(p) = cursor.and_then(|p| by_id.get(&p)) {
        if out.len() > MAX_DEPTH || out.iter().any(|o| o.id == p.id) {
            break;
        }
        out.push(p);
        cursor = p.parent_id;
    }
    out.reverse();
    out
}

// ---------------------------------------------------------------- /get

/// Mailbox/get (RFC 8621 §2.1).
pub async fn get(
    ctx: &mut Ctx<'_>,
    args: Map<String, Value>,
    call: &mut CallContext,
) -> Result<Value, MethodError> {
    let request = GetRequest::<String>::from_args(args, call)?;
    ctx.check_account(&request.account_id)?;
    check_properties(request.properties.as_deref(), &PROPERTIES)?;
    // The state first: data read after it is at least as new, so a client
    // never holds data older than its state.
    let state = kind_state(ctx, ObjectKind::Mailbox).await?;
    let mailboxes = load(ctx).await?;
    let wants_counts = request.properties.as_ref().is_none_or(|p| {
        p.iter()
            .any(|p| COUNT_PROPERTIES[1..].contains(&p.as_str()))
    });
    let counts = if wants_counts {
        load_counts(ctx).await?
    } else {
        HashMap::new()
    };
    let mut response: GetResponse<Value> = GetResponse::for_request(&request, state);
    let selected: Vec<&Mailbox> = match &request.ids {
        None => {
            let max = call.limits().max_objects_in_get;
            if u64::try_from(mailboxes.len()).unwrap_or(u64::MAX) > max {
                return Err(MethodError::request_too_large(format!(
                    "the account has {} mailboxes; maxObjectsInGet is {max}",
                    mailboxes.len()
                )));
            }
            mailboxes.iter().collect()
        }
        Some(wanted) => {
            let mut found = Vec::with_capacity(wanted.len());
            for id in wanted {
                match ids::parse_mailbox(id.as_str())
                    .and_then(|n| mailboxes.iter().find(|m| m.id == n))
                {
                    Some(m) => found.push(m),
                    None => response.not_found.push(id.to_string()),
                }
            }
            found
        }
    };
    for m in selected {
        response.list.push(select(
            to_object(m, counts.get(&m.id)),
            request.properties.as_deref(),
        ));
    }
    to_json(&response)
}

// ---------------------------------------------------------------- /changes

/// The mailboxes a change touches: its own Mailbox entries, and the mailbox of
/// each Email entry (the counts changed). The flag says "a Mailbox entry".
fn mailbox_events(group: &[Change]) -> Vec<(MailboxId, ChangeOp, bool)> {
    group
        .iter()
        .filter_map(|c| match c.kind {
            ObjectKind::Mailbox => Some((
                c.id,
                match c.op {
                    ChangeOp::LeftMailbox => ChangeOp::Updated,
                    op => op,
                },
                true,
            )),
            // A move logs "left" for the old mailbox and "updated" for the new.
            ObjectKind::Email => c.mailbox_id.map(|m| (m, ChangeOp::Updated, false)),
            _ => None,
        })
        .collect()
}

/// Mailbox changes after a state.
#[derive(Debug, Default)]
struct MailboxWindow {
    fold: Fold,
    /// More changes follow `new_state`.
    has_more: bool,
    /// The state the window ends at.
    new_state: ModSeq,
    /// Some change in the window was a Mailbox change (not only counts).
    own: bool,
}

/// Mailbox changes after `since`: at most `max` mailboxes (whole changes
/// only), and none past `until` when given (the caller's snapshot).
async fn mailbox_window(
    ctx: &Ctx<'_>,
    since: ModSeq,
    max: Option<usize>,
    until: Option<ModSeq>,
) -> Result<MailboxWindow, MethodError> {
    let state_now = match until {
        Some(u) => u,
        None => mailbox_state(ctx).await?,
    };
    let mut w = MailboxWindow::default();
    let mut reader = LogReader::new(since);
    let mut last_included = since;
    let mut last_relevant = 0;
    while let Some((modseq, group)) = reader.next(ctx).await? {
        if until.is_some_and(|u| modseq > u) {
            break;
        }
        let events = mailbox_events(&group);
        if let Some(max) = max {
            let fresh: HashSet<MailboxId> = events
                .iter()
                .map(|e| e.0)
                .filter(|id| !w.fold.contains(*id))
                .collect();
            if w.fold.len() + fresh.len() > max {
                if w.fold.len() == 0 {
                    return Err(change_too_big(max));
                }
                w.has_more = true;
                break;
            }
        }
        last_included = modseq;
        if !events.is_empty() {
            last_relevant = modseq;
        }
        for (id, op, own) in events {
            w.own |= own;
            w.fold.add(id, op);
        }
    }
    w.new_state = if w.has_more {
        last_included
    } else {
        state_now.max(last_relevant)
    };
    Ok(w)
}

fn max_changes(max: Option<u64>) -> Option<usize> {
    max.map(|m| usize::try_from(m).unwrap_or(usize::MAX))
}

/// Mailbox/changes (RFC 8621 §2.2). `updatedProperties` lists the count
/// properties when every change in the window was an Email change (so only
/// counts moved), and is null otherwise.
pub async fn changes(
    ctx: &mut Ctx<'_>,
    args: Map<String, Value>,
    call: &mut CallContext,
) -> Result<Value, MethodError> {
    let request = ChangesRequest::from_args(args, call)?;
    ctx.check_account(&request.account_id)?;
    let since = since_state(ctx, &request.since_state).await?;
    let w = mailbox_window(ctx, since, max_changes(request.max_changes), None).await?;
    let (created, updated, destroyed) = w.fold.split();
    let only_counts = !w.own && created.is_empty() && destroyed.is_empty() && !updated.is_empty();
    let mut extra = Map::new();
    extra.insert(
        "updatedProperties".into(),
        if only_counts {
            json!(COUNT_PROPERTIES)
        } else {
            Value::Null
        },
    );
    let response = ChangesResponse {
        account_id: request.account_id,
        old_state: request.since_state,
        new_state: w.new_state.to_string(),
        has_more_changes: w.has_more,
        created: created.into_iter().map(ids::mailbox).collect(),
        updated: updated.into_iter().map(ids::mailbox).collect(),
        destroyed: destroyed.into_iter().map(ids::mailbox).collect(),
        extra,
    };
    to_json(&response)
}

// ---------------------------------------------------------------- /query

/// What a FilterCondition's `parentId` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ParentFilter {
    /// `null`: top-level mailboxes.
    Top,
    /// Children of this mailbox.
    Of(MailboxId),
    /// An id that names no mailbox: nothing matches.
    Nothing,
}

/// A Mailbox FilterCondition (RFC 8621 §2.3); every given property must match.
#[derive(Debug, Clone, Default)]
struct Condition {
    parent_id: Option<ParentFilter>,
    /// Lower-cased.
    name: Option<String>,
    role: Option<Option<String>>,
    has_any_role: Option<bool>,
    is_subscribed: Option<bool>,
}

impl Condition {
    fn parse(map: &Map<String, Value>, call: &CallContext) -> Result<Condition, MethodError> {
        let wrong = |k: &str, what: &str| {
            MethodError::invalid_arguments(format!("filter.{k}: expected {what}"))
        };
        let mut c = Condition::default();
        for (k, v) in map {
            match k.as_str() {
                "parentId" => {
                    c.parent_id = Some(match v {
                        Value::Null => ParentFilter::Top,
                        Value::String(s) => {
                            if creation_ref(s).is_none() && !is_valid_id(s) {
                                return Err(wrong(k, "an id or null"));
                            }
                            call.resolve_str(s)
                                .and_then(|id| ids::parse_mailbox(id.as_str()))
                                .map_or(ParentFilter::Nothing, ParentFilter::Of)
                        }
                        _ => return Err(wrong(k, "an id or null")),
                    });
                }
                "name" => match v {
                    Value::String(s) => c.name = Some(s.to_lowercase()),
                    _ => return Err(wrong(k, "a string")),
                },
                "role" => match v {
                    Value::Null => c.role = Some(None),
                    Value::String(s) => c.role = Some(Some(s.clone())),
                    _ => return Err(wrong(k, "a string or null")),
                },
                "hasAnyRole" => match v {
                    Value::Bool(b) => c.has_any_role = Some(*b),
                    _ => return Err(wrong(k, "a boolean")),
                },
                "isSubscribed" => match v {
                    Value::Bool(b) => c.is_subscribed = Some(*b),
                    _ => return Err(wrong(k, "a boolean")),
                },
                other => {
                    return Err(MethodError::with_description(
                        MethodErrorKind::UnsupportedFilter,
                        format!("Mailbox filters have no property {other:?}"),
                    ));
                }
            }
        }
        Ok(c)
    }

    fn matches(&self, m: &Mailbox) -> bool {
        let parent_ok = match self.parent_id {
            None => true,
            Some(ParentFilter::Top) => m.parent_id.is_none(),
            Some(ParentFilter::Of(p)) => m.parent_id == Some(p),
            Some(ParentFilter::Nothing) => false,
        };
        parent_ok
            && self
                .name
                .as_ref()
                .is_none_or(|n| m.name.to_lowercase().contains(n.as_str()))
            && self
                .role
                .as_ref()
                .is_none_or(|r| r.as_deref() == m.role.map(Role::as_str))
            && self.has_any_role.is_none_or(|h| h == m.role.is_some())
            && self.is_subscribed.is_none_or(|s| s == m.subscribed)
    }
}

/// A string collation of RFC 4790 (those the session advertises).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Collation {
    /// `i;unicode-casemap` (the default): case-insensitive.
    UnicodeCasemap,
    /// `i;ascii-casemap`: ASCII letters case-insensitive.
    AsciiCasemap,
    /// `i;ascii-numeric`: by the leading number; no number sorts last.
    AsciiNumeric,
}

fn compare_names(a: &str, b: &str, collation: Collation) -> Ordering {
    match collation {
        Collation::UnicodeCasemap => a.to_lowercase().cmp(&b.to_lowercase()),
        Collation::AsciiCasemap => a
            .bytes()
            .map(|c| c.to_ascii_lowercase())
            .cmp(b.bytes().map(|c| c.to_ascii_lowercase())),
        Collation::AsciiNumeric => {
            // RFC 4790 §9.1: the leading digits as a number; a string that
            // does not start with one is greater than every number.
            let number = |s: &str| {
                let digits: &str = &s[..s.bytes().take_while(u8::is_ascii_digit).count()];
                (!digits.is_empty()).then(|| {
                    let d = digits.trim_start_matches('0');
                    (d.len(), d.to_owned())
                })
            };
            match (number(a), number(b)) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            }
        }
    }
}

/// One sort criterion.
#[derive(Debug, Clone, Copy)]
enum SortKey {
    SortOrder,
    Name(Collation),
}

/// The comparators as sort keys: `sortOrder` and `name` (the two RFC 8621
/// §2.3 requires); anything else is `unsupportedSort`.
fn sort_keys(sort: &[Comparator]) -> Result<Vec<(SortKey, bool)>, MethodError> {
    let mut keys = Vec::with_capacity(sort.len());
    for c in sort {
        if let Some(k) = c.extra.keys().next() {
            return Err(MethodError::invalid_arguments(format!(
                "sort: Mailbox comparators have no property {k:?}"
            )));
        }
        let collation = match c.collation.as_deref() {
            None | Some("i;unicode-casemap") => Collation::UnicodeCasemap,
            Some("i;ascii-casemap") => Collation::AsciiCasemap,
            Some("i;ascii-numeric") => Collation::AsciiNumeric,
            Some(other) => {
                return Err(MethodError::with_description(
                    MethodErrorKind::UnsupportedSort,
                    format!("collation {other:?} is not supported"),
                ));
            }
        };
        let key = match c.property.as_str() {
            "sortOrder" => SortKey::SortOrder,
            "name" => SortKey::Name(collation),
            other => {
                return Err(MethodError::with_description(
                    MethodErrorKind::UnsupportedSort,
                    format!("Mailboxes cannot be sorted by {other:?}; use sortOrder or name"),
                ));
            }
        };
        keys.push((key, c.is_ascending));
    }
    Ok(keys)
}

/// Compares two mailboxes by the sort keys, then by id (a total order, so
/// results are stable between calls).
fn compare(a: &Mailbox, b: &Mailbox, keys: &[(SortKey, bool)]) -> Ordering {
    for (key, ascending) in keys {
        let o = match key {
            SortKey::SortOrder => a.sort_order.cmp(&b.sort_order),
            SortKey::Name(c) => compare_names(&a.name, &b.name, *c),
        };
        let o = if *ascending { o } else { o.reverse() };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.id.cmp(&b.id)
}

/// How to run a Mailbox query.
struct Query {
    filter: Option<Filter<Condition>>,
    keys: Vec<(SortKey, bool)>,
    sort_as_tree: bool,
    filter_as_tree: bool,
}

impl Query {
    fn parse(
        filter: Option<&Value>,
        sort: &[Comparator],
        sort_as_tree: bool,
        filter_as_tree: bool,
        call: &CallContext,
    ) -> Result<Query, MethodError> {
        let filter = filter
            .map(|f| {
                Filter::parse(f, &mut |map: &Map<String, Value>| {
                    Condition::parse(map, call)
                })
            })
            .transpose()?;
        Ok(Query {
            filter,
            keys: sort_keys(sort)?,
            sort_as_tree,
            filter_as_tree,
        })
    }

    fn matches(&self, m: &Mailbox) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|f| f.matches(&mut |c: &Condition| c.matches(m)))
    }

    /// The full, filtered and sorted result (RFC 8621 §2.3 with `sortAsTree`
    /// and `filterAsTree`).
    fn run(&self, mailboxes: &[Mailbox]) -> Vec<MailboxId> {
        let by_id: HashMap<MailboxId, &Mailbox> = mailboxes.iter().map(|m| (m.id, m)).collect();
        let chains: HashMap<MailboxId, Vec<&Mailbox>> = if self.sort_as_tree || self.filter_as_tree
        {
            mailboxes.iter().map(|m| (m.id, chain(&by_id, m))).collect()
        } else {
            HashMap::new()
        };
        let mut selected: Vec<&Mailbox> = mailboxes
            .iter()
            .filter(|m| {
                if self.filter_as_tree {
                    // "only included if all its ancestors are also included"
                    chains
                        .get(&m.id)
                        .is_some_and(|c| c.iter().all(|a| self.matches(a)))
                } else {
                    self.matches(m)
                }
            })
            .collect();
        if self.sort_as_tree {
            // An ancestor comes before its descendants; otherwise compare the
            // nearest ancestors that are siblings.
            selected.sort_by(|a, b| {
                let (Some(ca), Some(cb)) = (chains.get(&a.id), chains.get(&b.id)) else {
                    return compare(a, b, &self.keys);
                };
                let common = ca
                    .iter()
                    .zip(cb.iter())
                    .take_while(|(x, y)| x.id == y.id)
                    .count();
                match (ca.get(common), cb.get(common)) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                    (Some(x), Some(y)) => compare(x, y, &self.keys),
                }
            });
        } else {
            selected.sort_by(|a, b| compare(a, b, &self.keys));
        }
        selected.into_iter().map(|m| m.id).collect()
    }
}

/// Mailbox/query (RFC 8621 §2.3).
pub async fn query(
    ctx: &mut Ctx<'_>,
    args: Map<String, Value>,
    call: &mut CallContext,
) -> Result<Value, MethodError> {
    let mut args = Args::new(args);
    let request = QueryRequest::parse(&mut args, call)?;
    let sort_as_tree = args.take_or_default::<bool>("sortAsTree")?;
    let filter_as_tree = args.take_or_default::<bool>("filterAsTree")?;
    args.finish()?;
    ctx.check_account(&request.account_id)?;
    let query = Query::parse(
        request.filter.as_ref(),
        &request.sort,
        sort_as_tree,
        filter_as_tree,
        call,
    )?;
    let state = kind_state(ctx, ObjectKind::Mailbox).await?;
    let mailboxes = load(ctx).await?;
    let ids: Vec<Id> = query
        .run(&mailboxes)
        .into_iter()
        .map(ids::mailbox)
        .collect();
    to_json(&request.respond(&ids, state, true, None)?)
}

// ---------------------------------------------------------------- /queryChanges

/// Mailboxes and the Mailbox state they are at, read so that no change falls
/// between the two (retried while changes keep arriving).
async fn snapshot(ctx: &Ctx<'_>) -> Result<(ModSeq, Vec<Mailbox>), MethodError> {
    let mut before = mailbox_state(ctx).await?;
    for _ in 0..5 {
        let mailboxes = load(ctx).await?;
        let after = mailbox_state(ctx).await?;
        if after == before {
            return Ok((before, mailboxes));
        }
        before = after;
    }
    // Still moving: report the older state, so the next call sees the rest again.
    let mailboxes = load(ctx).await?;
    Ok((before, mailboxes))
}

/// Mailbox/queryChanges (RFC 8621 §2.4, RFC 8620 §5.6).
///
/// Every property a Mailbox query filters or sorts on is mutable, so this is
/// the RFC's "mutable properties" case: every mailbox created, changed or
/// destroyed since the old state is in `removed` (except those created since,
/// which the client never had), and those in the results now are in `added`
/// at their index. With `sortAsTree` or `filterAsTree` a mailbox's place also
/// depends on its ancestors, so the descendants of every changed mailbox count
/// as changed too. `upToId` is accepted and not used (the RFC's shortcut is
/// for immutable properties only). `tooManyChanges` past `maxChanges`.
pub async fn query_changes(
    ctx: &mut Ctx<'_>,
    args: Map<String, Value>,
    call: &mut CallContext,
) -> Result<Value, MethodError> {
    let mut args = Args::new(args);
    let request = QueryChangesRequest::parse(&mut args, call)?;
    // Not standard /queryChanges arguments, but the query's own: a client
    // passes the same arguments it gave Mailbox/query.
    let sort_as_tree = args.take_or_default::<bool>("sortAsTree")?;
    let filter_as_tree = args.take_or_default::<bool>("filterAsTree")?;
    args.finish()?;
    ctx.check_account(&request.account_id)?;
    let query = Query::parse(
        request.filter.as_ref(),
        &request.sort,
        sort_as_tree,
        filter_as_tree,
        call,
    )?;
    let since = since_state(ctx, &request.since_query_state).await?;
    let (state, mailboxes) = snapshot(ctx).await?;
    let w = mailbox_window(ctx, since, None, Some(state)).await?;
    let (created, updated, destroyed) = w.fold.split();
    let created: HashSet<MailboxId> = created.into_iter().collect();
    let mut touched: HashSet<MailboxId> = updated.iter().copied().collect();
    if sort_as_tree || filter_as_tree {
        let by_id: HashMap<MailboxId, &Mailbox> = mailboxes.iter().map(|m| (m.id, m)).collect();
        for m in &mailboxes {
            let c = chain(&by_id, m);
            if c.iter()
                .any(|a| touched.contains(&a.id) || created.contains(&a.id))
                && !created.contains(&m.id)
            {
                touched.insert(m.id);
            }
        }
    }
    let results = query.run(&mailboxes);
    let mut removed: Vec<MailboxId> = touched.iter().copied().chain(destroyed).collect();
    removed.sort_unstable();
    removed.dedup();
    let added: Vec<AddedItem> = results
        .iter()
        .enumerate()
        .filter(|(_, id)| touched.contains(id) || created.contains(id))
        .map(|(i, id)| AddedItem {
            id: ids::mailbox(*id),
            index: u64::try_from(i).unwrap_or(u64::MAX),
        })
        .collect();
    if let Some(max) = request.max_changes {
        let n = removed.len() + added.len();
        if u64::try_from(n).unwrap_or(u64::MAX) > max {
            return Err(MethodError::with_description(
                MethodErrorKind::TooManyChanges,
                format!("{n} changes; maxChanges is {max}"),
            ));
        }
    }
    let response = QueryChangesResponse {
        account_id: request.account_id,
        old_query_state: request.since_query_state,
        new_query_state: state.to_string(),
        total: request
            .calculate_total
            .then(|| u64::try_from(results.len()).unwrap_or(u64::MAX)),
        removed: removed.into_iter().map(ids::mailbox).collect(),
        added,
        extra: Map::new(),
    };
    to_json(&response)
}

// ---------------------------------------------------------------- /set

/// Invalid properties of one create or update, with the reasons.
#[derive(Debug, Default)]
struct Invalid {
    properties: BTreeSet<String>,
    reasons: Vec<String>,
}

impl Invalid {
    fn add(&mut self, property: &str, reason: impl Into<String>) {
        self.properties.insert(property.to_owned());
        self.reasons.push(reason.into());
    }

    /// `invalidProperties` listing them all (RFC 8620 §5.3), if any.
    fn into_error(self) -> Option<SetError> {
        (!self.properties.is_empty()).then(|| {
            SetError::invalid_properties(self.properties).with_description(self.reasons.join("; "))
        })
    }
}

/// What is wrong with `name` as the name of a mailbox under `parent`, if
/// anything (RFC 8621 §2 `name`, and what IMAP needs of it).
fn name_problem(name: &str, parent: Option<MailboxId>) -> Option<String> {
    if name.is_empty() {
        Some("name: may not be empty".into())
    } else if name.len() > MAX_NAME {
        Some(format!("name: longer than {MAX_NAME} octets"))
    } else if name.contains('/') {
        Some("name: may not contain \"/\" (the IMAP hierarchy delimiter)".into())
    } else if name.chars().any(char::is_control) {
        Some("name: may not contain control characters".into())
    } else if parent.is_none() && name.eq_ignore_ascii_case("INBOX") {
        Some("name: INBOX is reserved for the inbox at the top level".into())
    } else {
        None
    }
}

/// Whether a sibling of `id` (under `parent`) already has `name`.
fn name_taken(
    tree: &[Mailbox],
    id: Option<MailboxId>,
    parent: Option<MailboxId>,
    name: &str,
) -> bool {
    tree.iter()
        .any(|m| Some(m.id) != id && m.parent_id == parent && m.name == name)
}

/// A `parentId` value (an id or `#creationId`) as an existing mailbox.
fn resolve_parent(call: &CallContext, tree: &[Mailbox], s: &str) -> Option<MailboxId> {
    let id = call.resolve_str(s)?;
    let n = ids::parse_mailbox(id.as_str())?;
    tree.iter().any(|m| m.id == n).then_some(n)
}

/// `serverPartialFail` when a store failure comes after changes were made in
/// this call (the client must resync), the store failure otherwise.
fn partial(e: MethodError, wrote: bool) -> MethodError {
    if wrote && e.kind != MethodErrorKind::ServerPartialFail {
        MethodError::with_description(
            MethodErrorKind::ServerPartialFail,
            format!("some changes were made before a failure: {e}"),
        )
    } else {
        e
    }
}

/// Creates one mailbox; returns it and the `created` entry.
async fn create(
    ctx: &Ctx<'_>,
    call: &CallContext,
    tree: &mut Vec<Mailbox>,
    object: &Map<String, Value>,
) -> Result<Result<(Mailbox, Value), SetError>, MethodError> {
    let mut bad = Invalid::default();
    for k in object.keys() {
        if !PROPERTIES.contains(&k.as_str()) {
            bad.add(k, format!("{k}: not a Mailbox property"));
        } else if SERVER_SET.contains(&k.as_str()) {
            bad.add(k, format!("{k}: set by the server"));
        }
    }
    let name = match object.get("name") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => {
            bad.add("name", "name: a string is required");
            None
        }
    };
    let parent = match object.get("parentId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match resolve_parent(call, tree, s) {
            Some(p) => Some(p),
            None => {
                bad.add("parentId", "parentId: no such mailbox");
                None
            }
        },
        Some(_) => {
            bad.add("parentId", "parentId: expected an id or null");
            None
        }
    };
    let role = match object.get("role") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match Role::parse(s) {
            Some(r) if tree.iter().any(|m| m.role == Some(r)) => {
                bad.add("role", format!("role: another mailbox is the {s} mailbox"));
                None
            }
            Some(r) => Some(r),
            None => {
                bad.add(
                    "role",
                    format!("role: {s:?} is not a role this server knows"),
                );
                None
            }
        },
        Some(_) => {
            bad.add("role", "role: expected a string or null");
            None
        }
    };
    match object.get("sortOrder") {
        None | Some(Value::Null) => {}
        Some(v) if v.as_u64() == Some(0) => {}
        Some(_) => bad.add(
            "sortOrder",
            "sortOrder: this server cannot set it; new mailboxes have 0",
        ),
    }
    let subscribed = match object.get("isSubscribed") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            bad.add("isSubscribed", "isSubscribed: expected a boolean");
            true
        }
    };
    if let Some(name) = &name {
        if let Some(problem) = name_problem(name, parent) {
            bad.add("name", problem);
        } else if name_taken(tree, None, parent, name) {
            bad.add("name", "name: a sibling mailbox has this name");
        }
    }
    if let Some(e) = bad.into_error() {
        return Ok(Err(e));
    }
    let Some(name) = name else {
        return Ok(Err(SetError::invalid_properties(["name"])));
    };
    let mut mailbox = match ctx
        .store()
        .create_mailbox(ctx.account.id, parent, &name, role)
        .await
    {
        Ok(m) => m,
        Err(StoreError::AlreadyExists(_)) => {
            return Ok(Err(SetError::invalid_properties(["name"])
                .with_description("name: a sibling mailbox has this name")));
        }
        Err(StoreError::Invalid(why)) => {
            return Ok(Err(
                SetError::invalid_properties(["name"]).with_description(why)
            ));
        }
        Err(StoreError::NotFound(_)) => {
            return Ok(Err(SetError::invalid_properties(["parentId"])
                .with_description("parentId: no such mailbox")));
        }
        Err(e) => return Err(store_error(e)),
    };
    if !subscribed {
        ctx.store()
            .set_subscribed(ctx.account.id, mailbox.id, false)
            .await
            .map_err(store_error)?;
        mailbox.subscribed = false;
    }
    // RFC 8620 §5.3: the server-set properties, and the defaults of those the
    // client left out.
    let mut created = to_object(&mailbox, None);
    created.retain(|k, _| SERVER_SET.contains(&k.as_str()) || !object.contains_key(k));
    tree.push(mailbox.clone());
    Ok(Ok((mailbox, Value::Object(created))))
}

/// Applies one patch to `current`.
async fn update(
    ctx: &Ctx<'_>,
    call: &CallContext,
    tree: &mut [Mailbox],
    current: &Mailbox,
    patch: &Map<String, Value>,
    counts: &HashMap<MailboxId, MailboxCounts>,
) -> Result<Result<(), SetError>, MethodError> {
    let touched = match patch_properties(patch) {
        Ok(t) => t,
        Err(e) => return Ok(Err(e)),
    };
    let before = to_object(current, counts.get(&current.id));
    let after = match apply_patch(before.clone(), patch) {
        Ok(a) => a,
        Err(e) => return Ok(Err(e)),
    };
    let mut bad = Invalid::default();
    for p in &touched {
        if !PROPERTIES.contains(&p.as_str()) {
            bad.add(p, format!("{p}: not a Mailbox property"));
        } else if SERVER_SET.contains(&p.as_str()) && after.get(p) != before.get(p) {
            // RFC 8620 §5.3: allowed only with the current value.
            bad.add(p, format!("{p}: set by the server"));
        }
    }
    let mut name = current.name.clone();
    if touched.contains("name") {
        match after.get("name") {
            Some(Value::String(s)) => name.clone_from(s),
            _ => bad.add("name", "name: a string is required"),
        }
    }
    let mut parent = current.parent_id;
    if touched.contains("parentId") {
        match after.get("parentId") {
            None | Some(Value::Null) => parent = None,
            Some(Value::String(s)) => match resolve_parent(call, tree, s) {
                Some(p) => parent = Some(p),
                None => bad.add("parentId", "parentId: no such mailbox"),
            },
            Some(_) => bad.add("parentId", "parentId: expected an id or null"),
        }
    }
    if touched.contains("role") {
        let wanted = match after.get("role") {
            None | Some(Value::Null) => Some(None),
            Some(Value::String(s)) => Role::parse(s).map(Some),
            Some(_) => None,
        };
        if wanted != Some(current.role) {
            bad.add(
                "role",
                "role: this server cannot change the role of an existing mailbox",
            );
        }
    }
    if touched.contains("sortOrder") {
        let wanted = match after.get("sortOrder") {
            None | Some(Value::Null) => Some(0),
            Some(v) => v.as_u64(),
        };
        if wanted != Some(u64::from(current.sort_order)) {
            bad.add("sortOrder", "sortOrder: this server cannot change it");
        }
    }
    let mut subscribed = current.subscribed;
    if touched.contains("isSubscribed") {
        match after.get("isSubscribed") {
            Some(Value::Bool(b)) => subscribed = *b,
            _ => bad.add("isSubscribed", "isSubscribed: expected a boolean"),
        }
    }
    let moves = name != current.name || parent != current.parent_id;
    if moves {
        if let Some(problem) = name_problem(&name, parent) {
            bad.add("name", problem);
        } else if name_taken(tree, Some(current.id), parent, &name) {
            bad.add("name", "name: a sibling mailbox has this name");
        }
        // RFC 8621 §2: "There MUST NOT be a loop."
        let by_id: HashMap<MailboxId, &Mailbox> = tree.iter().map(|m| (m.id, m)).collect();
        let mut cursor = parent;
        let mut depth = 0;
        while let Some(p) = cursor {
            if p == current.id {
                bad.add(
                    "parentId",
                    "parentId: a mailbox cannot move under itself or a descendant",
                );
                break;
            }
            depth += 1;
            cursor = by_id.get(&p).and_then(|m| m.parent_id);
            if depth > MAX_DEPTH {
                break;
            }
        }
    }
    if let Some(e) = bad.into_error() {
        return Ok(Err(e));
    }
    if moves && is_inbox(current) {
        return Ok(Err(SetError::forbidden().with_description(
            "INBOX cannot be renamed or moved (myRights.mayRename is false)",
        )));
    }
    let mut updated = current.clone();
    if moves {
        updated = match ctx
            .store()
            .rename_mailbox(ctx.account.id, current.id, parent, &name)
            .await
        {
            Ok(m) => m,
            Err(StoreError::AlreadyExists(_)) => {
                return Ok(Err(SetError::invalid_properties(["name"])
                    .with_description("name: a sibling mailbox has this name")));
            }
            Err(StoreError::Invalid(why)) => {
                return Ok(Err(
                    SetError::invalid_properties(["name", "parentId"]).with_description(why)
                ));
            }
            Err(StoreError::NotFound(_)) => return Ok(Err(SetError::not_found())),
            Err(e) => return Err(store_error(e)),
        };
    }
    if subscribed != current.subscribed {
        ctx.store()
            .set_subscribed(ctx.account.id, current.id, subscribed)
            .await
            .map_err(store_error)?;
    }
    updated.subscribed = subscribed;
    if let Some(slot) = tree.iter_mut().find(|m| m.id == current.id) {
        *slot = updated;
    }
    Ok(Ok(()))
}

/// Destroys one mailbox (RFC 8621 §2.5).
async fn destroy(
    ctx: &Ctx<'_>,
    tree: &mut Vec<Mailbox>,
    id: MailboxId,
    remove_emails: bool,
) -> Result<Result<(), SetError>, MethodError> {
    let Some(m) = tree.iter().find(|m| m.id == id) else {
        return Ok(Err(SetError::not_found()));
    };
    if is_inbox(m) {
        return Ok(Err(SetError::forbidden().with_description(
            "INBOX cannot be destroyed (myRights.mayDelete is false)",
        )));
    }
    if tree.iter().any(|c| c.parent_id == Some(id)) {
        return Ok(Err(SetError::new(SetErrorKind::MailboxHasChild)));
    }
    if m.total > 0 && !remove_emails {
        return Ok(Err(SetError::new(SetErrorKind::MailboxHasEmail)
            .with_description(match m.total {
                1 => "the mailbox has 1 email".to_owned(),
                n => format!("the mailbox has {n} emails"),
            })));
    }
    match ctx.store().delete_mailbox(ctx.account.id, id).await {
        Ok(()) => {}
        Err(StoreError::HasChildren) => {
            return Ok(Err(SetError::new(SetErrorKind::MailboxHasChild)));
        }
        Err(StoreError::NotFound(_)) => return Ok(Err(SetError::not_found())),
        Err(e) => return Err(store_error(e)),
    }
    tree.retain(|m| m.id != id);
    Ok(Ok(()))
}

/// Whether the create `object` names, as its parent, a creation id still in
/// `pending` (which must be created first, RFC 8620 §5.3).
fn waits_for(object: &Map<String, Value>, pending: &[(String, Map<String, Value>)]) -> bool {
    object
        .get("parentId")
        .and_then(Value::as_str)
        .and_then(creation_ref)
        .is_some_and(|cid| pending.iter().any(|(c, _)| c == cid))
}

/// Mailbox/set (RFC 8621 §2.5), with `onDestroyRemoveEmails`.
///
/// Creates come first, ordered so that a mailbox whose `parentId` is the
/// `#creationId` of another create is made after it (RFC 8620 §5.3: "the
/// server MUST order the creates and updates within a single method call so
/// that creates happen before their creation ids are referenced"); then
/// updates; then destroys, children before their parents so that a subtree
/// can go in one call.
pub async fn set(
    ctx: &mut Ctx<'_>,
    args: Map<String, Value>,
    call: &mut CallContext,
) -> Result<Value, MethodError> {
    let mut args = Args::new(args);
    let request = SetRequest::parse(&mut args, call)?;
    let remove_emails = args.take_or_default::<bool>("onDestroyRemoveEmails")?;
    args.finish()?;
    ctx.check_account(&request.account_id)?;
    let old_state = kind_state(ctx, ObjectKind::Mailbox).await?;
    check_state(request.if_in_state.as_deref(), &old_state)?;
    let mut tree = load(ctx).await?;
    let mut response = SetResponse::new(request.account_id.clone(), Some(old_state), "");
    let mut wrote = false;

    let mut pending = request.create;
    while !pending.is_empty() {
        let Some(i) = pending
            .iter()
            .position(|(_, object)| !waits_for(object, &pending))
        else {
            // Every remaining create waits for another: the references loop.
            for (cid, _) in pending.drain(..) {
                response.not_created.insert(
                    cid,
                    SetError::invalid_properties(["parentId"])
                        .with_description("parentId: the creation references form a loop"),
                );
            }
            break;
        };
        let (cid, object) = pending.remove(i);
        match create(ctx, call, &mut tree, &object).await {
            Ok(Ok((mailbox, created))) => {
                wrote = true;
                call.add_created(cid.clone(), ids::mailbox(mailbox.id));
                response.created.insert(cid, created);
            }
            Ok(Err(e)) => {
                response.not_created.insert(cid, e);
            }
            Err(e) => return Err(partial(e, wrote)),
        }
    }

    let to_destroy: HashSet<MailboxId> = request
        .destroy
        .iter()
        .filter_map(|d| call.resolve(d))
        .filter_map(|id| ids::parse_mailbox(id.as_str()))
        .collect();
    let mut counts: Option<HashMap<MailboxId, MailboxCounts>> = None;
    for (key, patch) in &request.update {
        let shown = key.to_string();
        let found = call
            .resolve(key)
            .and_then(|id| ids::parse_mailbox(id.as_str()))
            .and_then(|n| tree.iter().find(|m| m.id == n).cloned());
        let Some(current) = found else {
            response.not_updated.insert(shown, SetError::not_found());
            continue;
        };
        if to_destroy.contains(&current.id) {
            response.not_updated.insert(
                shown,
                SetError::new(SetErrorKind::WillDestroy)
                    .with_description("the mailbox is destroyed in this call"),
            );
            continue;
        }
        // The thread counts cost a pass over the messages: only for a patch
        // that mentions them (to check it repeats the current values).
        let touches_counts = patch_properties(patch).is_ok_and(|t| {
            t.iter()
                .any(|p| COUNT_PROPERTIES[1..].contains(&p.as_str()))
        });
        if touches_counts && counts.is_none() {
            counts = Some(load_counts(ctx).await.map_err(|e| partial(e, wrote))?);
        }
        let empty = HashMap::new();
        match update(
            ctx,
            call,
            &mut tree,
            &current,
            patch,
            counts.as_ref().unwrap_or(&empty),
        )
        .await
        {
            Ok(Ok(())) => {
                wrote = true;
                response.updated.insert(ids::mailbox(current.id), None);
            }
            Ok(Err(e)) => {
                response.not_updated.insert(shown, e);
            }
            Err(e) => return Err(partial(e, wrote)),
        }
    }

    if !request.destroy.is_empty() {
        // Fresh counts of emails, for mailboxHasEmail.
        tree = load(ctx).await.map_err(|e| partial(e, wrote))?;
        let by_id: HashMap<MailboxId, &Mailbox> = tree.iter().map(|m| (m.id, m)).collect();
        let mut order: Vec<(String, Option<MailboxId>, usize)> = request
            .destroy
            .iter()
            .map(|d| {
                let id = call
                    .resolve(d)
                    .and_then(|id| ids::parse_mailbox(id.as_str()));
                let depth = id
                    .and_then(|n| by_id.get(&n))
                    .map_or(0, |m| chain(&by_id, m).len());
                (d.to_string(), id, depth)
            })
            .collect();
        order.sort_by_key(|d| std::cmp::Reverse(d.2));
        for (shown, id, _) in order {
            let Some(id) = id else {
                response.not_destroyed.insert(shown, SetError::not_found());
                continue;
            };
            match destroy(ctx, &mut tree, id, remove_emails).await {
                Ok(Ok(())) => {
                    wrote = true;
                    response.destroyed.push(ids::mailbox(id));
                }
                Ok(Err(e)) => {
                    response.not_destroyed.insert(shown, e);
                }
                Err(e) => return Err(partial(e, wrote)),
            }
        }
    }

    response.new_state = kind_state(ctx, ObjectKind::Mailbox)
        .await
        .map_err(|e| partial(e, wrote))?;
    to_json(&response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_canonically() {
        assert_eq!(parse_state("0"), Some(0));
        assert_eq!(parse_state("42"), Some(42));
        assert_eq!(parse_state("042"), None);
        assert_eq!(parse_state(""), None);
        assert_eq!(parse_state("-1"), None);
        assert_eq!(parse_state("1e3"), None);
        assert_eq!(parse_state("99999999999999999999999"), None);
    }

    #[test]
    fn names_follow_imap_rules() {
        assert!(name_problem("Work", None).is_none());
        assert!(name_problem("", None).is_some());
        assert!(name_problem("a/b", None).is_some());
        assert!(name_problem("a\tb", None).is_some());
        assert!(name_problem("inbox", None).is_some());
        assert!(name_problem("inbox", Some(3)).is_none());
        assert!(name_problem(&"x".repeat(256), None).is_some());
    }

    #[test]
    fn collations() {
        use Collation::*;
        assert_eq!(compare_names("abc", "ABD", UnicodeCasemap), Ordering::Less);
        assert_eq!(
            compare_names("Ärger", "ärger", UnicodeCasemap),
            Ordering::Equal
        );
        assert_eq!(compare_names("b", "A", AsciiCasemap), Ordering::Greater);
        assert_eq!(
            compare_names("10 x", "9 y", AsciiNumeric),
            Ordering::Greater
        );
        assert_eq!(compare_names("007", "7", AsciiNumeric), Ordering::Equal);
        assert_eq!(compare_names("x", "123", AsciiNumeric), Ordering::Greater);
    }

    #[test]
    fn folding() {
        let mut f = Fold::default();
        f.add(1, ChangeOp::Created);
        f.add(2, ChangeOp::Updated);
        f.add(3, ChangeOp::Created);
        f.add(3, ChangeOp::Destroyed);
        f.add(4, ChangeOp::Updated);
        f.add(4, ChangeOp::Destroyed);
        f.add(1, ChangeOp::Updated);
        assert_eq!(f.split(), (vec![1], vec![2], vec![4]));
    }
}
