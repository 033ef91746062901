#![allow(clippy::unwrap_used)]
//! PatchObject application (RFC 8620 §5.3).

use pochta_jmap_proto::{SetErrorKind, apply_patch, patch_properties};
use serde_json::{Map, Value, json};

fn map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

fn todo() -> Map<String, Value> {
    // The Todo of RFC 8620 §5.8.
    map(json!({
        "id": "a",
        "title": "Practise Piano",
        "keywords": { "music": true, "beethoven": true, "mozart": true, "liszt": true, "rachmaninov": true },
        "neuralNetworkTimeEstimation": 3600,
        "alerts": [{"offset": 1}],
        "subTodoIds": null
    }))
}

#[test]
fn minimal_patch_equals_whole_object() {
    // RFC 8620 §5.8: the two updates have exactly the same effect.
    let minimal = map(json!({ "keywords/chopin": true, "keywords/mozart": null }));
    let whole = map(json!({
        "id": "a",
        "title": "Practise Piano",
        "keywords": { "music": true, "beethoven": true, "chopin": true, "liszt": true, "rachmaninov": true }
    }));
    let a = apply_patch(todo(), &minimal).unwrap();
    let b = apply_patch(todo(), &whole).unwrap();
    assert_eq!(a, b);
    assert_eq!(a["keywords"]["chopin"], true);
    assert!(a["keywords"].get("mozart").is_none());
}

#[test]
fn null_removes_and_absent_removal_is_a_no_op() {
    let patched = apply_patch(
        todo(),
        &map(json!({"title": null, "nothing": null, "keywords/nope": null})),
    )
    .unwrap();
    assert!(!patched.contains_key("title"));
    assert!(!patched.contains_key("nothing"));
    assert_eq!(patched["keywords"], todo()["keywords"]);
}

#[test]
fn adds_and_replaces() {
    let patched = apply_patch(
        todo(),
        &map(json!({"new": [1], "alerts": [], "keywords/a~1b~0c": true})),
    )
    .unwrap();
    assert_eq!(patched["new"], json!([1]));
    assert_eq!(patched["alerts"], json!([]));
    assert_eq!(patched["keywords"]["a/b~c"], true);
}

fn invalid(patch: Value) {
    let err = apply_patch(todo(), &map(patch.clone())).unwrap_err();
    assert_eq!(err.kind, SetErrorKind::InvalidPatch, "{patch}");
    assert!(err.description.is_some());
}

#[test]
fn missing_parent_is_invalid() {
    invalid(json!({"nope/x": 1}));
    invalid(json!({"keywords/music/deeper": true}));
    invalid(json!({"subTodoIds/x": 1}));
}

#[test]
fn inside_an_array_is_invalid() {
    invalid(json!({"alerts/0/offset": 2}));
    invalid(json!({"alerts/0": {}}));
}

#[test]
fn overlapping_paths_are_invalid() {
    invalid(json!({"alerts": [], "alerts/1/offset": 3}));
    invalid(json!({"keywords": {}, "keywords/music": true}));
    // Sharing a parent is fine; so is a longer name with the same start.
    apply_patch(
        todo(),
        &map(json!({"keywords/a": true, "keywords/b": true})),
    )
    .unwrap();
    apply_patch(todo(), &map(json!({"title": "x", "titles": "y"}))).unwrap();
}

#[test]
fn malformed_paths_are_invalid() {
    invalid(json!({"keywords/a~2": true}));
    invalid(json!({"keywords/": true}));
    invalid(json!({"": 1}));
    invalid(json!({"a~": 1}));
}

#[test]
fn touched_properties() {
    let props = patch_properties(&map(
        json!({"keywords/a": true, "keywords/b": null, "title": "t"}),
    ))
    .unwrap();
    assert_eq!(props.into_iter().collect::<Vec<_>>(), ["keywords", "title"]);
    assert!(patch_properties(&map(json!({"a": 1, "a/b": 2}))).is_err());
}
