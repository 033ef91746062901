#![allow(clippy::unwrap_used)]
//! Standard method arguments (RFC 8620 §5.1–5.6) and errors (§3.6.2, §5.3).

use std::collections::HashMap;

use pochta_jmap_proto::{
    Args, CAPABILITY_CORE, CallContext, ChangesRequest, Comparator, CopyRequest, CoreCapability,
    Filter, FilterOperator, GetRequest, Id, IdOrRef, MethodError, MethodErrorKind,
    QueryChangesRequest, QueryRequest, SetError, SetErrorKind, SetRequest, SetResponse,
    method_response,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

fn map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

fn ctx() -> CallContext {
    let mut ctx = CallContext::new(
        vec![CAPABILITY_CORE.to_owned()],
        CoreCapability {
            max_objects_in_get: 5,
            max_objects_in_set: 3,
            ..CoreCapability::default()
        },
        HashMap::new(),
    );
    ctx.add_created("k1", Id::new("M1").unwrap());
    ctx
}

fn invalid(err: MethodError, mentions: &str) {
    assert_eq!(err.kind, MethodErrorKind::InvalidArguments, "{err}");
    let d = err.description.unwrap();
    assert!(d.contains(mentions), "{d:?} should mention {mentions:?}");
}

#[test]
fn get_arguments() {
    let r: GetRequest = GetRequest::from_args(
        map(json!({"accountId": "A1", "ids": ["x", "#k1", "x", "#k9", "M1"], "properties": ["name"]})),
        &ctx(),
    )
    .unwrap();
    assert_eq!(r.account_id, "A1");
    assert_eq!(
        r.ids.unwrap(),
        vec![Id::new("x").unwrap(), Id::new("M1").unwrap()]
    );
    assert_eq!(r.unresolved_refs, ["#k9"]);
    assert_eq!(r.properties.unwrap(), ["name"]);

    let r: GetRequest =
        GetRequest::from_args(map(json!({"accountId": "A1", "ids": null})), &ctx()).unwrap();
    assert_eq!((r.ids, r.properties), (None, None));
}

#[test]
fn get_argument_errors() {
    let get = |v: Value| GetRequest::<String>::from_args(map(v), &ctx()).unwrap_err();
    invalid(get(json!({"ids": []})), "accountId");
    invalid(get(json!({"accountId": null})), "accountId");
    invalid(get(json!({"accountId": 5})), "accountId");
    invalid(get(json!({"accountId": "A 1"})), "accountId");
    invalid(get(json!({"accountId": "A1", "ids": "x"})), "ids");
    invalid(
        get(json!({"accountId": "A1", "ids": ["ok", "bad id"]})),
        "ids",
    );
    invalid(
        get(json!({"accountId": "A1", "properties": [1]})),
        "properties",
    );
    invalid(get(json!({"accountId": "A1", "unknown": true})), "unknown");
    let err = get(json!({"accountId": "A1", "ids": ["a", "b", "c", "d", "e", "f"]}));
    assert_eq!(err.kind, MethodErrorKind::RequestTooLarge);
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
enum MailboxProperty {
    Id,
    Name,
    ParentId,
}

#[test]
fn typed_properties_reject_unknown_ones() {
    let r = GetRequest::<MailboxProperty>::from_args(
        map(json!({"accountId": "A1", "properties": ["name", "parentId"]})),
        &ctx(),
    )
    .unwrap();
    assert_eq!(
        r.properties.unwrap(),
        [MailboxProperty::Name, MailboxProperty::ParentId]
    );
    let err = GetRequest::<MailboxProperty>::from_args(
        map(json!({"accountId": "A1", "properties": ["name", "colour"]})),
        &ctx(),
    )
    .unwrap_err();
    invalid(err, "colour");
}

#[test]
fn extra_arguments_via_args() {
    // Email/get style: standard arguments plus the method's own.
    let mut args = Args::new(map(
        json!({"accountId": "A1", "fetchTextBodyValues": true, "bogus": 1}),
    ));
    let r: GetRequest = GetRequest::parse(&mut args, &ctx()).unwrap();
    assert_eq!(r.account_id, "A1");
    let fetch: bool = args.take_or_default("fetchTextBodyValues").unwrap();
    assert!(fetch);
    invalid(args.finish().unwrap_err(), "bogus");
}

#[test]
fn changes_arguments() {
    let r = ChangesRequest::from_args(
        map(json!({"accountId": "A1", "sinceState": "s1", "maxChanges": 50})),
        &ctx(),
    )
    .unwrap();
    assert_eq!((r.since_state.as_str(), r.max_changes), ("s1", Some(50)));
    let bad = |v: Value| ChangesRequest::from_args(map(v), &ctx()).unwrap_err();
    invalid(bad(json!({"accountId": "A1"})), "sinceState");
    invalid(
        bad(json!({"accountId": "A1", "sinceState": "s", "maxChanges": 0})),
        "maxChanges",
    );
    invalid(
        bad(json!({"accountId": "A1", "sinceState": "s", "maxChanges": -1})),
        "maxChanges",
    );
    invalid(
        bad(json!({"accountId": "A1", "sinceState": "s", "maxChanges": 1.5})),
        "maxChanges",
    );
}

#[test]
fn set_arguments() {
    let r = SetRequest::from_args(
        map(json!({
            "accountId": "A1",
            "ifInState": "s1",
            "create": {"k2": {"name": "x", "parentId": "#k1"}},
            "update": {"#k2": {"name": "y"}},
            "destroy": ["M1"]
        })),
        &ctx(),
    )
    .unwrap();
    assert_eq!(r.if_in_state.as_deref(), Some("s1"));
    assert_eq!(r.create[0].0, "k2");
    assert_eq!(r.create[0].1["name"], "x");
    assert_eq!(r.update[0].0, IdOrRef::Ref("k2".into()));
    assert_eq!(r.destroy, [IdOrRef::Id(Id::new("M1").unwrap())]);
    // The reference in create resolves through the context.
    let c = ctx();
    assert_eq!(c.resolve_str("#k1").unwrap(), "M1");
    assert_eq!(c.resolve_str("#k2"), None);
    assert_eq!(c.resolve(&r.update[0].0), None);

    let r = SetRequest::from_args(
        map(json!({"accountId": "A1", "create": null, "update": null, "destroy": null})),
        &ctx(),
    )
    .unwrap();
    assert!(r.create.is_empty() && r.update.is_empty() && r.destroy.is_empty());
}

#[test]
fn set_argument_errors() {
    let bad = |v: Value| SetRequest::from_args(map(v), &ctx()).unwrap_err();
    invalid(bad(json!({"create": {}})), "accountId");
    invalid(bad(json!({"accountId": "A1", "create": []})), "create");
    invalid(
        bad(json!({"accountId": "A1", "create": {"k1": 5}})),
        "create.k1",
    );
    invalid(
        bad(json!({"accountId": "A1", "create": {"bad id": {}}})),
        "create",
    );
    invalid(
        bad(json!({"accountId": "A1", "update": {"M1": "x"}})),
        "update.M1",
    );
    invalid(
        bad(json!({"accountId": "A1", "update": {"a b": {}}})),
        "update",
    );
    invalid(bad(json!({"accountId": "A1", "destroy": "M1"})), "destroy");
    invalid(bad(json!({"accountId": "A1", "destroy": ["#"]})), "destroy");
    invalid(bad(json!({"accountId": "A1", "ifInState": 3})), "ifInState");
    invalid(
        bad(json!({"accountId": "A1", "onDestroyRemoveEmails": true})),
        "onDestroyRemoveEmails",
    );
    let err = bad(
        json!({"accountId": "A1", "create": {"a": {}, "b": {}}, "update": {"M1": {}}, "destroy": ["M2"]}),
    );
    assert_eq!(err.kind, MethodErrorKind::RequestTooLarge);
}

#[test]
fn set_response_serialization() {
    let mut r = SetResponse::new(Id::new("A1").unwrap(), None, "s2");
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(
        json,
        json!({
            "accountId": "A1", "oldState": null, "newState": "s2",
            "created": null, "updated": null, "destroyed": null,
            "notCreated": null, "notUpdated": null, "notDestroyed": null
        })
    );
    r.created.insert("k1".into(), json!({"id": "M9"}));
    r.updated.insert(Id::new("M1").unwrap(), None);
    r.not_updated.insert(
        "M2".into(),
        SetError::invalid_properties(["name"]).with_description("too long"),
    );
    r.not_destroyed
        .insert("M3".into(), SetError::new(SetErrorKind::MailboxHasEmail));
    r.extra.insert("x".into(), json!(1));
    let (name, json) = method_response("Mailbox/set", &r).unwrap();
    assert_eq!(name, "Mailbox/set");
    assert_eq!(json["created"], json!({"k1": {"id": "M9"}}));
    assert_eq!(json["updated"], json!({"M1": null}));
    assert_eq!(
        json["notUpdated"],
        json!({"M2": {"type": "invalidProperties", "description": "too long", "properties": ["name"]}})
    );
    assert_eq!(
        json["notDestroyed"],
        json!({"M3": {"type": "mailboxHasEmail"}})
    );
    assert_eq!(json["x"], 1);
}

#[test]
fn set_errors_with_extra_properties() {
    let m = Id::new("M1").unwrap();
    assert_eq!(
        SetError::already_exists(&m).to_json(),
        json!({"type": "alreadyExists", "existingId": "M1"})
    );
    assert_eq!(
        SetError::blob_not_found([&m]).to_json(),
        json!({"type": "blobNotFound", "notFound": ["M1"]})
    );
    assert_eq!(
        SetError::too_many_recipients(50).to_json(),
        json!({"type": "tooManyRecipients", "maxRecipients": 50})
    );
    assert_eq!(
        SetError::invalid_recipients(["x@"]).to_json(),
        json!({"type": "invalidRecipients", "invalidRecipients": ["x@"]})
    );
    assert_eq!(
        SetError::invalid_email(["to"]).to_json(),
        json!({"type": "invalidEmail", "properties": ["to"]})
    );
    assert_eq!(
        SetError::too_large(Some(10)).to_json(),
        json!({"type": "tooLarge", "maxSize": 10})
    );
    for (kind, text) in [
        (SetErrorKind::Forbidden, "forbidden"),
        (SetErrorKind::OverQuota, "overQuota"),
        (SetErrorKind::RateLimit, "rateLimit"),
        (SetErrorKind::NotFound, "notFound"),
        (SetErrorKind::WillDestroy, "willDestroy"),
        (SetErrorKind::Singleton, "singleton"),
        (SetErrorKind::MailboxHasChild, "mailboxHasChild"),
        (SetErrorKind::TooManyKeywords, "tooManyKeywords"),
        (SetErrorKind::TooManyMailboxes, "tooManyMailboxes"),
        (SetErrorKind::NoRecipients, "noRecipients"),
        (SetErrorKind::ForbiddenMailFrom, "forbiddenMailFrom"),
        (SetErrorKind::ForbiddenFrom, "forbiddenFrom"),
        (SetErrorKind::ForbiddenToSend, "forbiddenToSend"),
        (SetErrorKind::CannotUnsend, "cannotUnsend"),
    ] {
        assert_eq!(
            serde_json::to_value(SetError::new(kind)).unwrap(),
            json!({"type": text})
        );
        assert_eq!(SetErrorKind::parse(text), Some(kind));
    }
}

#[test]
fn method_error_serialization() {
    let e = MethodError::invalid_arguments("ids: bad");
    assert_eq!(
        e.to_json(),
        json!({"type": "invalidArguments", "description": "ids: bad"})
    );
    assert_eq!(
        MethodError::new(MethodErrorKind::StateMismatch).to_json(),
        json!({"type": "stateMismatch"})
    );
    for text in [
        "serverUnavailable",
        "serverFail",
        "serverPartialFail",
        "unknownMethod",
        "invalidArguments",
        "invalidResultReference",
        "forbidden",
        "accountNotFound",
        "accountNotSupportedByMethod",
        "accountReadOnly",
        "requestTooLarge",
        "cannotCalculateChanges",
        "stateMismatch",
        "anchorNotFound",
        "unsupportedSort",
        "unsupportedFilter",
        "tooManyChanges",
        "fromAccountNotFound",
        "fromAccountNotSupportedByMethod",
    ] {
        assert_eq!(MethodErrorKind::parse(text).unwrap().as_str(), text);
    }
}

#[test]
fn copy_arguments() {
    let r = CopyRequest::from_args(
        map(json!({"fromAccountId": "A1", "accountId": "A2", "create": {"k5": {"id": "a"}}, "onSuccessDestroyOriginal": true})),
        &ctx(),
    )
    .unwrap();
    assert!(r.on_success_destroy_original);
    assert_eq!(r.create[0].0, "k5");
    let bad = |v: Value| CopyRequest::from_args(map(v), &ctx()).unwrap_err();
    invalid(
        bad(json!({"fromAccountId": "A1", "accountId": "A1", "create": {}})),
        "accountId",
    );
    invalid(
        bad(json!({"fromAccountId": "A1", "accountId": "A2"})),
        "create",
    );
}

#[test]
fn query_arguments() {
    let r = QueryRequest::from_args(
        map(json!({
            "accountId": "A1",
            "filter": {"operator": "OR", "conditions": [{"hasKeyword": "music"}, {"hasKeyword": "video"}]},
            "sort": [{"property": "title"}, {"property": "hasKeyword", "keyword": "$seen", "isAscending": false, "collation": "i;ascii-casemap"}],
            "position": -5,
            "limit": 10,
            "calculateTotal": true
        })),
        &ctx(),
    )
    .unwrap();
    assert_eq!(r.position, -5);
    assert_eq!(r.limit, Some(10));
    assert!(r.calculate_total);
    assert_eq!(r.anchor_offset, 0);
    assert_eq!(
        r.sort[0],
        Comparator {
            property: "title".into(),
            is_ascending: true,
            collation: None,
            extra: Map::new()
        }
    );
    assert!(!r.sort[1].is_ascending);
    assert_eq!(r.sort[1].extra["keyword"], "$seen");
    r.check_collations(&CoreCapability::default().collation_algorithms)
        .unwrap();

    let defaults = QueryRequest::from_args(map(json!({"accountId": "A1"})), &ctx()).unwrap();
    assert_eq!(
        (
            defaults.position,
            defaults.anchor.clone(),
            defaults.limit,
            defaults.calculate_total
        ),
        (0, None, None, false)
    );
    assert!(defaults.sort.is_empty() && defaults.filter.is_none());

    let bad = |v: Value| QueryRequest::from_args(map(v), &ctx()).unwrap_err();
    invalid(bad(json!({"accountId": "A1", "limit": -1})), "limit");
    invalid(bad(json!({"accountId": "A1", "position": "0"})), "position");
    invalid(bad(json!({"accountId": "A1", "filter": []})), "filter");
    invalid(
        bad(json!({"accountId": "A1", "sort": [{"isAscending": true}]})),
        "sort",
    );
    invalid(
        bad(json!({"accountId": "A1", "sort": [{"property": "x", "isAscending": "no"}]})),
        "isAscending",
    );
    invalid(
        bad(json!({"accountId": "A1", "collapseThreads": true})),
        "collapseThreads",
    );

    let sort = QueryRequest::from_args(
        map(
            json!({"accountId": "A1", "sort": [{"property": "subject", "collation": "i;klingon"}]}),
        ),
        &ctx(),
    )
    .unwrap();
    let err = sort
        .check_collations(&CoreCapability::default().collation_algorithms)
        .unwrap_err();
    assert_eq!(err.kind, MethodErrorKind::UnsupportedSort);
}

#[test]
fn query_respond() {
    let ids: Vec<Id> = ["a", "b", "c", "d"]
        .into_iter()
        .map(|s| Id::new(s).unwrap())
        .collect();
    let r = QueryRequest::from_args(
        map(json!({"accountId": "A1", "anchor": "c", "anchorOffset": -1, "calculateTotal": true})),
        &ctx(),
    )
    .unwrap();
    let response = r.respond(&ids, "q1", true, Some(2)).unwrap();
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        json!({"accountId": "A1", "queryState": "q1", "canCalculateChanges": true, "position": 1, "ids": ["b", "c"], "total": 4, "limit": 2})
    );
    let r = QueryRequest::from_args(map(json!({"accountId": "A1", "limit": 1})), &ctx()).unwrap();
    let json = serde_json::to_value(r.respond(&ids, "q1", false, Some(2)).unwrap()).unwrap();
    assert!(json.get("total").is_none() && json.get("limit").is_none());
    let r =
        QueryRequest::from_args(map(json!({"accountId": "A1", "anchor": "zz"})), &ctx()).unwrap();
    assert_eq!(
        r.respond(&ids, "q", true, None).unwrap_err().kind,
        MethodErrorKind::AnchorNotFound
    );
    // An anchor naming a creation id resolves through the context.
    let r =
        QueryRequest::from_args(map(json!({"accountId": "A1", "anchor": "#k1"})), &ctx()).unwrap();
    assert_eq!(r.anchor.unwrap(), "M1");
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Cond {
    has_keyword: String,
}

#[test]
fn filters() {
    let value = json!({"operator": "AND", "conditions": [
        {"hasKeyword": "a"},
        {"operator": "NOT", "conditions": [{"hasKeyword": "b"}]}
    ]});
    let f: Filter<Cond> = Filter::parse_typed(&value).unwrap();
    let Filter::Operator(FilterOperator::And, parts) = &f else {
        panic!("{f:?}")
    };
    assert_eq!(parts.len(), 2);
    let has = |kw: &[&str]| f.matches(&mut |c: &Cond| kw.contains(&c.has_keyword.as_str()));
    assert!(has(&["a"]));
    assert!(!has(&["a", "b"]));
    assert!(!has(&[]));

    for bad in [
        json!({"operator": "XOR", "conditions": []}),
        json!({"operator": "AND"}),
        json!({"operator": "AND", "conditions": {}}),
        json!({"operator": "AND", "conditions": [], "extra": 1}),
        json!({"operator": "AND", "conditions": [{"hasKeyword": 1}]}),
        json!({"unknownCondition": 1}),
        json!([1]),
    ] {
        let err = Filter::<Cond>::parse_typed(&bad).unwrap_err();
        assert_eq!(err.kind, MethodErrorKind::InvalidArguments, "{bad}");
    }

    // A custom condition parser sees each FilterCondition object.
    let mut seen = 0;
    let f = Filter::parse(
        &json!({"operator": "OR", "conditions": [{"x": 1}, {"y": 2}]}),
        &mut |m| {
            seen += 1;
            Ok(m.len())
        },
    )
    .unwrap();
    assert_eq!(seen, 2);
    assert!(f.matches(&mut |n| *n == 1));
}

#[test]
fn query_changes_arguments() {
    let r = QueryChangesRequest::from_args(
        map(json!({"accountId": "A1", "sinceQueryState": "q1", "maxChanges": 50, "upToId": "#k1", "filter": null, "sort": null})),
        &ctx(),
    )
    .unwrap();
    assert_eq!(
        (r.since_query_state.as_str(), r.max_changes),
        ("q1", Some(50))
    );
    assert_eq!(r.up_to_id.unwrap(), "M1");
    let bad = |v: Value| QueryChangesRequest::from_args(map(v), &ctx()).unwrap_err();
    invalid(bad(json!({"accountId": "A1"})), "sinceQueryState");
    invalid(
        bad(json!({"accountId": "A1", "sinceQueryState": "q", "upToId": "bad id"})),
        "upToId",
    );
}
