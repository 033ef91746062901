//! Arguments and responses of the standard methods (RFC 8620 §5.1–5.6):
//! `/get`, `/changes`, `/set`, `/copy`, `/query`, `/queryChanges`.
//!
//! Each request type has `parse(&mut Args, &CallContext)`, which takes the
//! standard arguments and leaves the rest for the method's own, and
//! `from_args`, which also rejects anything left over. Response types
//! serialize to the response arguments; `extra` holds method-specific
//! additions (e.g. `Mailbox/changes`'s `updatedProperties`).

use std::collections::{BTreeMap, HashSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::args::{Args, from_value};
use crate::error::{MethodError, MethodErrorKind, SetError};
use crate::id::{Id, IdOrRef, creation_ref, is_valid_id};
use crate::process::CallContext;
use crate::window::{QueryWindow, query_window};

/// Objects keyed by a creation id or an id, in the order received.
type KeyedObjects = Vec<(String, Map<String, Value>)>;

fn count_exceeds(count: usize, max: u64) -> bool {
    u64::try_from(count).unwrap_or(u64::MAX) > max
}

fn parse_id(name: &str, s: &str) -> Result<Id, MethodError> {
    Id::new(s).map_err(|e| MethodError::invalid_arguments(format!("{name}: {e}")))
}

fn parse_id_or_ref(name: &str, s: &str) -> Result<IdOrRef, MethodError> {
    IdOrRef::parse(s).map_err(|e| MethodError::invalid_arguments(format!("{name}: {e}")))
}

/// Takes an `Id` argument that may be a `#creationId` resolved through the
/// context (an unresolvable reference is an invalid id).
fn take_id(args: &mut Args, ctx: &CallContext, name: &str) -> Result<Option<Id>, MethodError> {
    let Some(s) = args.take::<String>(name)? else {
        return Ok(None);
    };
    if let Some(cid) = creation_ref(&s) {
        return ctx.created_ids.get(cid).cloned().map(Some).ok_or_else(|| {
            MethodError::invalid_arguments(format!("{name}: nothing was created as #{cid}"))
        });
    }
    parse_id(name, &s).map(Some)
}

/// Takes a required account id (never a creation reference).
fn require_account(args: &mut Args, name: &str) -> Result<Id, MethodError> {
    let s = args.require::<String>(name)?;
    parse_id(name, &s)
}

fn take_objects(args: &mut Args, name: &str) -> Result<KeyedObjects, MethodError> {
    let Some(map) = args.take::<Map<String, Value>>(name)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(map.len());
    for (key, value) in map {
        if !is_valid_id(&key) {
            return Err(MethodError::invalid_arguments(format!(
                "{name}: {key:?} is not a valid creation id"
            )));
        }
        match value {
            Value::Object(object) => out.push((key, object)),
            _ => {
                return Err(MethodError::invalid_arguments(format!(
                    "{name}.{key}: expected an object"
                )));
            }
        }
    }
    Ok(out)
}

fn null_if_empty_map<S: Serializer, K: Serialize, V: Serialize>(
    map: &BTreeMap<K, V>,
    s: S,
) -> Result<S::Ok, S::Error> {
    if map.is_empty() {
        s.serialize_none()
    } else {
        map.serialize(s)
    }
}

fn null_if_empty_vec<S: Serializer, T: Serialize>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
    if v.is_empty() {
        s.serialize_none()
    } else {
        v.serialize(s)
    }
}

// ---------------------------------------------------------------- /get

/// `Foo/get` arguments (RFC 8620 §5.1). `P` is the property type: `String`,
/// or an enum whose deserialization rejects unknown properties (the RFC
/// requires `invalidArguments` for an invalid property).
#[derive(Debug, Clone, PartialEq)]
pub struct GetRequest<P = String> {
    /// The account.
    pub account_id: Id,
    /// The ids to fetch, `None` for all; duplicates removed (the RFC says
    /// each appears once in `list` or `notFound`), `#creationId` references
    /// resolved.
    pub ids: Option<Vec<Id>>,
    /// The properties to return (`id` is always returned), `None` for all.
    pub properties: Option<Vec<P>>,
    /// `#creationId` references in `ids` that named nothing created; report
    /// them in `notFound` ([`GetResponse::for_request`] does).
    pub unresolved_refs: Vec<String>,
}

impl<P: DeserializeOwned> GetRequest<P> {
    /// Takes the standard `/get` arguments. `requestTooLarge` if more ids
    /// than `maxObjectsInGet`; the handler must also refuse `ids: null` on a
    /// type with more records than that.
    pub fn parse(args: &mut Args, ctx: &CallContext) -> Result<Self, MethodError> {
        let account_id = require_account(args, "accountId")?;
        let properties = args.take::<Vec<P>>("properties")?;
        let mut unresolved_refs = Vec::new();
        let ids = match args.take::<Vec<String>>("ids")? {
            None => None,
            Some(raw) => {
                if count_exceeds(raw.len(), ctx.limits().max_objects_in_get) {
                    return Err(MethodError::request_too_large(format!(
                        "{} ids requested; maxObjectsInGet is {}",
                        raw.len(),
                        ctx.limits().max_objects_in_get
                    )));
                }
                let mut seen = HashSet::with_capacity(raw.len());
                let mut ids = Vec::with_capacity(raw.len());
                for s in raw {
                    if let Some(cid) = creation_ref(&s) {
                        match ctx.created_ids.get(cid) {
                            Some(id) => {
                                if seen.insert(id.as_str().to_owned()) {
                                    ids.push(id.clone());
                                }
                            }
                            None => {
                                if !unresolved_refs.contains(&s) {
                                    unresolved_refs.push(s);
                                }
                            }
                        }
                    } else {
                        let id = parse_id("ids", &s)?;
                        if seen.insert(s) {
                            ids.push(id);
                        }
                    }
                }
                Some(ids)
            }
        };
        Ok(GetRequest {
            account_id,
            ids,
            properties,
            unresolved_refs,
        })
    }

    /// [`GetRequest::parse`], rejecting any other argument.
    pub fn from_args(args: Map<String, Value>, ctx: &CallContext) -> Result<Self, MethodError> {
        let mut args = Args::new(args);
        let request = Self::parse(&mut args, ctx)?;
        args.finish()?;
        Ok(request)
    }
}

/// `Foo/get` response (RFC 8620 §5.1).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetResponse<T = Value> {
    /// The account.
    pub account_id: Id,
    /// The state of all Foo data in the account.
    pub state: String,
    /// The objects found.
    pub list: Vec<T>,
    /// Requested ids (or unresolved `#references`) that do not exist.
    pub not_found: Vec<String>,
    /// Method-specific response arguments.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl<T> GetResponse<T> {
    /// An empty response for `request` in `state`, with its unresolved
    /// references already in `notFound`.
    pub fn for_request<P>(request: &GetRequest<P>, state: impl Into<String>) -> Self {
        GetResponse {
            account_id: request.account_id.clone(),
            state: state.into(),
            list: Vec::new(),
            not_found: request.unresolved_refs.clone(),
            extra: Map::new(),
        }
    }
}

// ---------------------------------------------------------------- /changes

/// `Foo/changes` arguments (RFC 8620 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangesRequest {
    /// The account.
    pub account_id: Id,
    /// The client's current state.
    pub since_state: String,
    /// At most this many ids across created/updated/destroyed; positive.
    pub max_changes: Option<u64>,
}

impl ChangesRequest {
    /// Takes the standard `/changes` arguments; `maxChanges` must be > 0.
    pub fn parse(args: &mut Args, _ctx: &CallContext) -> Result<Self, MethodError> {
        let account_id = require_account(args, "accountId")?;
        let since_state = args.require::<String>("sinceState")?;
        let max_changes = args.take::<u64>("maxChanges")?;
        if max_changes == Some(0) {
            return Err(MethodError::invalid_arguments(
                "maxChanges: must be a positive integer",
            ));
        }
        Ok(ChangesRequest {
            account_id,
            since_state,
            max_changes,
        })
    }

    /// [`ChangesRequest::parse`], rejecting any other argument.
    pub fn from_args(args: Map<String, Value>, ctx: &CallContext) -> Result<Self, MethodError> {
        let mut args = Args::new(args);
        let request = Self::parse(&mut args, ctx)?;
        args.finish()?;
        Ok(request)
    }
}

/// `Foo/changes` response (RFC 8620 §5.2).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangesResponse {
    /// The account.
    pub account_id: Id,
    /// `sinceState`, echoed.
    pub old_state: String,
    /// The state after these changes.
    pub new_state: String,
    /// Whether more changes follow `newState`.
    pub has_more_changes: bool,
    /// Created since `oldState`.
    pub created: Vec<Id>,
    /// Updated since `oldState`.
    pub updated: Vec<Id>,
    /// Destroyed since `oldState`.
    pub destroyed: Vec<Id>,
    /// Method-specific response arguments.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

// ---------------------------------------------------------------- /set

/// A PatchObject: JSON-pointer paths (without the leading `/`) → new value,
/// `null` to remove (RFC 8620 §5.3); apply with
/// [`apply_patch`](crate::apply_patch).
pub type PatchObject = Map<String, Value>;

/// `Foo/set` arguments (RFC 8620 §5.3). Ids in `update` and `destroy` stay
/// unresolved: a `#creationId` there may name a record created by this very
/// call, so resolve them with [`CallContext::resolve`] after the creates.
#[derive(Debug, Clone, PartialEq)]
pub struct SetRequest {
    /// The account.
    pub account_id: Id,
    /// Abort with `stateMismatch` unless the current state is this.
    pub if_in_state: Option<String>,
    /// Creation id → object to create (empty when `null`).
    pub create: Vec<(String, Map<String, Value>)>,
    /// Id → patch (empty when `null`).
    pub update: Vec<(IdOrRef, PatchObject)>,
    /// Ids to destroy (empty when `null`).
    pub destroy: Vec<IdOrRef>,
}

impl SetRequest {
    /// Takes the standard `/set` arguments; `requestTooLarge` when creates +
    /// updates + destroys exceed `maxObjectsInSet`.
    pub fn parse(args: &mut Args, ctx: &CallContext) -> Result<Self, MethodError> {
        let account_id = require_account(args, "accountId")?;
        let if_in_state = args.take::<String>("ifInState")?;
        let create = take_objects(args, "create")?;
        let mut update = Vec::new();
        for (key, patch) in take_objects_any_key(args, "update")? {
            update.push((parse_id_or_ref("update", &key)?, patch));
        }
        let mut destroy = Vec::new();
        for s in args.take::<Vec<String>>("destroy")?.unwrap_or_default() {
            destroy.push(parse_id_or_ref("destroy", &s)?);
        }
        let total = create.len() + update.len() + destroy.len();
        if count_exceeds(total, ctx.limits().max_objects_in_set) {
            return Err(MethodError::request_too_large(format!(
                "{total} objects to create, update or destroy; maxObjectsInSet is {}",
                ctx.limits().max_objects_in_set
            )));
        }
        Ok(SetRequest {
            account_id,
            if_in_state,
            create,
            update,
            destroy,
        })
    }

    /// [`SetRequest::parse`], rejecting any other argument.
    pub fn from_args(args: Map<String, Value>, ctx: &CallContext) -> Result<Self, MethodError> {
        let mut args = Args::new(args);
        let request = Self::parse(&mut args, ctx)?;
        args.finish()?;
        Ok(request)
    }
}

fn take_objects_any_key(args: &mut Args, name: &str) -> Result<KeyedObjects, MethodError> {
    let Some(map) = args.take::<Map<String, Value>>(name)? else {
        return Ok(Vec::new());
    };
    map.into_iter()
        .map(|(key, value)| match value {
            Value::Object(object) => Ok((key, object)),
            _ => Err(MethodError::invalid_arguments(format!(
                "{name}.{key}: expected an object"
            ))),
        })
        .collect()
}

/// `Foo/set` response (RFC 8620 §5.3). Empty maps and lists serialize as
/// `null`, as the RFC describes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SetResponse {
    /// The account.
    pub account_id: Id,
    /// The state before the changes, if known.
    pub old_state: Option<String>,
    /// The state after the changes.
    pub new_state: String,
    /// Creation id → server-set and defaulted properties (at least `id`).
    #[serde(serialize_with = "null_if_empty_map")]
    pub created: BTreeMap<String, Value>,
    /// Id → properties that changed other than as requested, or `null`.
    #[serde(serialize_with = "null_if_empty_map")]
    pub updated: BTreeMap<Id, Option<Value>>,
    /// Ids destroyed.
    #[serde(serialize_with = "null_if_empty_vec")]
    pub destroyed: Vec<Id>,
    /// Creation id → why it was not created.
    #[serde(serialize_with = "null_if_empty_map")]
    pub not_created: BTreeMap<String, SetError>,
    /// Id (as given, possibly `#ref`) → why it was not updated.
    #[serde(serialize_with = "null_if_empty_map")]
    pub not_updated: BTreeMap<String, SetError>,
    /// Id (as given, possibly `#ref`) → why it was not destroyed.
    #[serde(serialize_with = "null_if_empty_map")]
    pub not_destroyed: BTreeMap<String, SetError>,
    /// Method-specific response arguments.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl SetResponse {
    /// An empty response.
    pub fn new(account_id: Id, old_state: Option<String>, new_state: impl Into<String>) -> Self {
        SetResponse {
            account_id,
            old_state,
            new_state: new_state.into(),
            created: BTreeMap::new(),
            updated: BTreeMap::new(),
            destroyed: Vec::new(),
            not_created: BTreeMap::new(),
            not_updated: BTreeMap::new(),
            not_destroyed: BTreeMap::new(),
            extra: Map::new(),
        }
    }
}

// ---------------------------------------------------------------- /copy

/// `Foo/copy` arguments (RFC 8620 §5.4).
#[derive(Debug, Clone, PartialEq)]
pub struct CopyRequest {
    /// The account to copy from.
    pub from_account_id: Id,
    /// Abort with `stateMismatch` unless the from-account is in this state.
    pub if_from_in_state: Option<String>,
    /// The account to copy to; differs from `from_account_id`.
    pub account_id: Id,
    /// Abort with `stateMismatch` unless the account is in this state.
    pub if_in_state: Option<String>,
    /// Creation id → object with the original's `id` and overrides.
    pub create: Vec<(String, Map<String, Value>)>,
    /// Destroy the originals afterwards with an implicit `Foo/set`.
    pub on_success_destroy_original: bool,
    /// `ifInState` for that implicit `Foo/set`.
    pub destroy_from_if_in_state: Option<String>,
}

impl CopyRequest {
    /// Takes the standard `/copy` arguments; `requestTooLarge` past
    /// `maxObjectsInSet` creates.
    pub fn parse(args: &mut Args, ctx: &CallContext) -> Result<Self, MethodError> {
        let from_account_id = require_account(args, "fromAccountId")?;
        let if_from_in_state = args.take::<String>("ifFromInState")?;
        let account_id = require_account(args, "accountId")?;
        let if_in_state = args.take::<String>("ifInState")?;
        if !args.contains("create") {
            return Err(MethodError::invalid_arguments(
                "missing argument \"create\"",
            ));
        }
        let create = take_objects(args, "create")?;
        let on_success_destroy_original =
            args.take_or_default::<bool>("onSuccessDestroyOriginal")?;
        let destroy_from_if_in_state = args.take::<String>("destroyFromIfInState")?;
        if from_account_id == account_id {
            return Err(MethodError::invalid_arguments(
                "accountId: must differ from fromAccountId",
            ));
        }
        if count_exceeds(create.len(), ctx.limits().max_objects_in_set) {
            return Err(MethodError::request_too_large(format!(
                "{} objects to copy; maxObjectsInSet is {}",
                create.len(),
                ctx.limits().max_objects_in_set
            )));
        }
        Ok(CopyRequest {
            from_account_id,
            if_from_in_state,
            account_id,
            if_in_state,
            create,
            on_success_destroy_original,
            destroy_from_if_in_state,
        })
    }

    /// [`CopyRequest::parse`], rejecting any other argument.
    pub fn from_args(args: Map<String, Value>, ctx: &CallContext) -> Result<Self, MethodError> {
        let mut args = Args::new(args);
        let request = Self::parse(&mut args, ctx)?;
        args.finish()?;
        Ok(request)
    }
}

/// `Foo/copy` response (RFC 8620 §5.4).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyResponse {
    /// The account copied from.
    pub from_account_id: Id,
    /// The account copied to.
    pub account_id: Id,
    /// The to-account's state before, if known.
    pub old_state: Option<String>,
    /// The to-account's state after.
    pub new_state: String,
    /// Creation id → server-set properties of the copy (at least `id`).
    #[serde(serialize_with = "null_if_empty_map")]
    pub created: BTreeMap<String, Value>,
    /// Creation id → why it was not copied.
    #[serde(serialize_with = "null_if_empty_map")]
    pub not_created: BTreeMap<String, SetError>,
    /// Method-specific response arguments.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

// ---------------------------------------------------------------- /query

fn yes() -> bool {
    true
}

/// One sort criterion (RFC 8620 §5.5). Properties other than the three
/// standard ones (e.g. RFC 8621's `keyword`) are kept in `extra` for the
/// method to interpret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparator {
    /// The property to compare.
    pub property: String,
    /// Ascending unless false.
    #[serde(default = "yes")]
    pub is_ascending: bool,
    /// An RFC 4790 collation for string comparison; server default if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collation: Option<String>,
    /// Type-specific comparator properties.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A FilterOperator's operator (RFC 8620 §5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOperator {
    /// All conditions match.
    And,
    /// At least one condition matches.
    Or,
    /// No condition matches.
    Not,
}

/// A parsed `filter`: operators over type-specific conditions `C`
/// (RFC 8620 §5.5).
#[derive(Debug, Clone, PartialEq)]
pub enum Filter<C> {
    /// `{"operator": …, "conditions": […]}`.
    Operator(FilterOperator, Vec<Filter<C>>),
    /// A FilterCondition (an object without an `operator` property).
    Condition(C),
}

impl<C> Filter<C> {
    /// Parses a filter value, handing each FilterCondition object to
    /// `condition`. A FilterOperator must have exactly `operator` (`AND`,
    /// `OR`, `NOT`) and `conditions`; anything else is `invalidArguments`.
    pub fn parse<F>(value: &Value, condition: &mut F) -> Result<Self, MethodError>
    where
        F: FnMut(&Map<String, Value>) -> Result<C, MethodError>,
    {
        let Value::Object(map) = value else {
            return Err(MethodError::invalid_arguments("filter: expected an object"));
        };
        let Some(op) = map.get("operator") else {
            return condition(map).map(Filter::Condition);
        };
        let op = match op.as_str() {
            Some("AND") => FilterOperator::And,
            Some("OR") => FilterOperator::Or,
            Some("NOT") => FilterOperator::Not,
            _ => {
                return Err(MethodError::invalid_arguments(format!(
                    "filter: operator must be \"AND\", \"OR\" or \"NOT\", not {op}"
                )));
            }
        };
        if let Some(other) = map.keys().find(|k| *k != "operator" && *k != "conditions") {
            return Err(MethodError::invalid_arguments(format!(
                "filter: unknown FilterOperator property {other:?}"
            )));
        }
        let Some(Value::Array(items)) = map.get("conditions") else {
            return Err(MethodError::invalid_arguments(
                "filter: a FilterOperator needs a \"conditions\" array",
            ));
        };
        let conditions = items
            .iter()
            .map(|item| Filter::parse(item, condition))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Filter::Operator(op, conditions))
    }

    /// Evaluates the filter, asking `test` about each condition
    /// (`AND` of nothing is true, `OR` of nothing false, `NOT` of nothing true).
    pub fn matches<F>(&self, test: &mut F) -> bool
    where
        F: FnMut(&C) -> bool,
    {
        match self {
            Filter::Condition(c) => test(c),
            Filter::Operator(FilterOperator::And, cs) => cs.iter().all(|c| c.matches(test)),
            Filter::Operator(FilterOperator::Or, cs) => cs.iter().any(|c| c.matches(test)),
            Filter::Operator(FilterOperator::Not, cs) => !cs.iter().any(|c| c.matches(test)),
        }
    }
}

impl<C: DeserializeOwned> Filter<C> {
    /// Parses a filter whose conditions deserialize as `C` (give `C`
    /// `#[serde(deny_unknown_fields)]` to reject unknown condition properties).
    pub fn parse_typed(value: &Value) -> Result<Self, MethodError> {
        Filter::parse(value, &mut |map: &Map<String, Value>| {
            from_value("filter", Value::Object(map.clone()))
        })
    }
}

fn take_filter(args: &mut Args) -> Result<Option<Value>, MethodError> {
    match args.take_raw("filter") {
        None => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v)),
        Some(_) => Err(MethodError::invalid_arguments(
            "filter: expected an object or null",
        )),
    }
}

fn check_collations(sort: &[Comparator], supported: &[String]) -> Result<(), MethodError> {
    for c in sort {
        if let Some(collation) = &c.collation
            && !supported.contains(collation)
        {
            return Err(MethodError::with_description(
                MethodErrorKind::UnsupportedSort,
                format!("collation {collation:?} is not supported"),
            ));
        }
    }
    Ok(())
}

/// `Foo/query` arguments (RFC 8620 §5.5).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryRequest {
    /// The account.
    pub account_id: Id,
    /// The raw filter object, `None` for all records; interpret it with
    /// [`Filter::parse`] or [`Filter::parse_typed`].
    pub filter: Option<Value>,
    /// Sort criteria, most significant first (empty when `null`).
    pub sort: Vec<Comparator>,
    /// Index of the first result; negative counts from the end.
    pub position: i64,
    /// Start relative to this id instead of `position`.
    pub anchor: Option<Id>,
    /// Offset from the anchor's index (ignored without an anchor).
    pub anchor_offset: i64,
    /// Most results to return, `None` for no client limit.
    pub limit: Option<u64>,
    /// Whether to include `total`.
    pub calculate_total: bool,
}

impl QueryRequest {
    /// Takes the standard `/query` arguments (`limit` must be unsigned).
    /// A method with its own arguments (e.g. `collapseThreads`) takes them
    /// from `args` afterwards.
    pub fn parse(args: &mut Args, ctx: &CallContext) -> Result<Self, MethodError> {
        let account_id = require_account(args, "accountId")?;
        let filter = take_filter(args)?;
        let sort = args.take_or_default::<Vec<Comparator>>("sort")?;
        let position = args.take_or_default::<i64>("position")?;
        let anchor = match args.take::<String>("anchor")? {
            None => None,
            Some(s) => match creation_ref(&s) {
                // An anchor that names nothing created cannot be in the results.
                Some(cid) => Some(ctx.created_ids.get(cid).cloned().ok_or_else(|| {
                    MethodError::with_description(
                        MethodErrorKind::AnchorNotFound,
                        format!("anchor: nothing was created as #{cid}"),
                    )
                })?),
                None => Some(parse_id("anchor", &s)?),
            },
        };
        let anchor_offset = args.take_or_default::<i64>("anchorOffset")?;
        let limit = args.take::<u64>("limit")?;
        let calculate_total = args.take_or_default::<bool>("calculateTotal")?;
        Ok(QueryRequest {
            account_id,
            filter,
            sort,
            position,
            anchor,
            anchor_offset,
            limit,
            calculate_total,
        })
    }

    /// [`QueryRequest::parse`], rejecting any other argument.
    pub fn from_args(args: Map<String, Value>, ctx: &CallContext) -> Result<Self, MethodError> {
        let mut args = Args::new(args);
        let request = Self::parse(&mut args, ctx)?;
        args.finish()?;
        Ok(request)
    }

    /// `unsupportedSort` if a comparator names a collation not in
    /// `supported` (normally `collationAlgorithms`).
    pub fn check_collations(&self, supported: &[String]) -> Result<(), MethodError> {
        check_collations(&self.sort, supported)
    }

    /// The window of `ids` (the full filtered, sorted result) this request
    /// asks for; see [`query_window`].
    pub fn window(&self, ids: &[Id], max_limit: Option<u64>) -> Result<QueryWindow, MethodError> {
        query_window(
            ids,
            self.position,
            self.anchor.as_ref(),
            self.anchor_offset,
            self.limit,
            max_limit,
        )
    }

    /// The whole response for the full result `ids`: windowed, with
    /// `total` if requested and `limit` if the server capped it.
    pub fn respond(
        &self,
        ids: &[Id],
        query_state: impl Into<String>,
        can_calculate_changes: bool,
        max_limit: Option<u64>,
    ) -> Result<QueryResponse, MethodError> {
        let window = self.window(ids, max_limit)?;
        Ok(QueryResponse {
            account_id: self.account_id.clone(),
            query_state: query_state.into(),
            can_calculate_changes,
            position: u64::try_from(window.position).unwrap_or(u64::MAX),
            ids: window.slice(ids).to_vec(),
            total: self
                .calculate_total
                .then(|| u64::try_from(window.total).unwrap_or(u64::MAX)),
            limit: window.limit,
            extra: Map::new(),
        })
    }
}

/// `Foo/query` response (RFC 8620 §5.5).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryResponse {
    /// The account.
    pub account_id: Id,
    /// The state of this query's results.
    pub query_state: String,
    /// Whether `/queryChanges` works for this filter and sort.
    pub can_calculate_changes: bool,
    /// Index of the first id returned.
    pub position: u64,
    /// The window of results.
    pub ids: Vec<Id>,
    /// Total results, only when `calculateTotal` was true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// The limit the server applied, when it set or lowered it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Method-specific response arguments.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

// ---------------------------------------------------------------- /queryChanges

/// `Foo/queryChanges` arguments (RFC 8620 §5.6).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryChangesRequest {
    /// The account.
    pub account_id: Id,
    /// The filter used with `/query`.
    pub filter: Option<Value>,
    /// The sort used with `/query`.
    pub sort: Vec<Comparator>,
    /// The client's `queryState`.
    pub since_query_state: String,
    /// `tooManyChanges` beyond this many added + removed.
    pub max_changes: Option<u64>,
    /// The last id the client has cached.
    pub up_to_id: Option<Id>,
    /// Whether to include `total`.
    pub calculate_total: bool,
}

impl QueryChangesRequest {
    /// Takes the standard `/queryChanges` arguments.
    pub fn parse(args: &mut Args, ctx: &CallContext) -> Result<Self, MethodError> {
        let account_id = require_account(args, "accountId")?;
        let filter = take_filter(args)?;
        let sort = args.take_or_default::<Vec<Comparator>>("sort")?;
        let since_query_state = args.require::<String>("sinceQueryState")?;
        let max_changes = args.take::<u64>("maxChanges")?;
        let up_to_id = take_id(args, ctx, "upToId")?;
        let calculate_total = args.take_or_default::<bool>("calculateTotal")?;
        Ok(QueryChangesRequest {
            account_id,
            filter,
            sort,
            since_query_state,
            max_changes,
            up_to_id,
            calculate_total,
        })
    }

    /// [`QueryChangesRequest::parse`], rejecting any other argument.
    pub fn from_args(args: Map<String, Value>, ctx: &CallContext) -> Result<Self, MethodError> {
        let mut args = Args::new(args);
        let request = Self::parse(&mut args, ctx)?;
        args.finish()?;
        Ok(request)
    }

    /// `unsupportedSort` for a collation not in `supported`.
    pub fn check_collations(&self, supported: &[String]) -> Result<(), MethodError> {
        check_collations(&self.sort, supported)
    }
}

/// An id added to query results, at its new index (RFC 8620 §5.6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddedItem {
    /// The id.
    pub id: Id,
    /// Its index in the new results.
    pub index: u64,
}

/// `Foo/queryChanges` response (RFC 8620 §5.6).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryChangesResponse {
    /// The account.
    pub account_id: Id,
    /// `sinceQueryState`, echoed.
    pub old_query_state: String,
    /// The query's state now.
    pub new_query_state: String,
    /// Total results, only when `calculateTotal` was true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Ids no longer in the results (or possibly moved).
    pub removed: Vec<Id>,
    /// Ids added (or moved), lowest index first.
    pub added: Vec<AddedItem>,
    /// Method-specific response arguments.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
