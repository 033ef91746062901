//! Mailbox/get, /changes, /query, /queryChanges, /set (RFC 8621 §2) through
//! the request loop, against a real store.

#![allow(clippy::unwrap_used)]

mod common;

use common::World;
use pochta_jmap::ids;
use pochta_store::{FlagChange, Flags, MailboxId, Role, Store};
use serde_json::{Value, json};

const RAW: &str = "From: bob@remote.example\nTo: alice@example.com\nSubject: hi\nMessage-ID: <{id}@remote.example>\n{extra}\nhello\n";

fn raw(id: &str, extra: &str) -> String {
    RAW.replace("{id}", id).replace("{extra}", extra)
}

async fn all(w: &World) -> Value {
    w.call(
        "Mailbox/get",
        json!({"accountId": w.account_id(), "ids": null}),
    )
    .await
}

fn find<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m[key] == value)
        .unwrap_or_else(|| panic!("no mailbox with {key} {value} in {list}"))
}

async fn state(w: &World) -> String {
    all(w).await["state"].as_str().unwrap().to_string()
}

async fn set(w: &World, args: Value) -> Value {
    let mut args = args;
    args["accountId"] = json!(w.account_id());
    w.call("Mailbox/set", args).await
}

async fn create(w: &World, name: &str, parent: Option<&str>) -> String {
    let r = set(
        w,
        json!({"create": {"new": {"name": name, "parentId": parent}}}),
    )
    .await;
    r["created"]["new"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("not created: {r}"))
        .to_string()
}

async fn store_id(w: &World, role: Role) -> MailboxId {
    w.store
        .mailboxes(w.alice.id)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.role == Some(role))
        .unwrap()
        .id
}

async fn changes(w: &World, since: &str, max: Option<u64>) -> Value {
    w.call(
        "Mailbox/changes",
        json!({"accountId": w.account_id(), "sinceState": since, "maxChanges": max}),
    )
    .await
}

async fn query(w: &World, args: Value) -> Vec<String> {
    let mut args = args;
    args["accountId"] = json!(w.account_id());
    let r = w.call("Mailbox/query", args).await;
    r["ids"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn names(list: &Value, ids: &[String]) -> Vec<String> {
    ids.iter()
        .map(|id| find(list, "id", id)["name"].as_str().unwrap().to_string())
        .collect()
}

fn error_type(r: &Value, map: &str, key: &str) -> String {
    r[map][key]["type"]
        .as_str()
        .unwrap_or_else(|| panic!("no {map}.{key} in {r}"))
        .to_string()
}

#[tokio::test]
async fn get_lists_the_default_mailboxes_with_every_property() {
    let w = World::new().await;
    let r = all(&w).await;
    assert_eq!(r["accountId"], w.account_id());
    let expected_state = w
        .store
        .kind_state(w.alice.id, pochta_store::ObjectKind::Mailbox)
        .await
        .unwrap();
    assert_eq!(r["state"], expected_state.to_string());
    assert_eq!(r["notFound"], json!([]));
    let list = r["list"].as_array().unwrap();
    assert_eq!(list.len(), 6);
    for (order, (role, name)) in [
        ("inbox", "INBOX"),
        ("drafts", "Drafts"),
        ("sent", "Sent"),
        ("archive", "Archive"),
        ("junk", "Junk"),
        ("trash", "Trash"),
    ]
    .into_iter()
    .enumerate()
    {
        let m = find(&r, "role", role);
        assert_eq!(m["name"], name);
        assert_eq!(m["parentId"], Value::Null);
        assert_eq!(m["sortOrder"], order);
        assert_eq!(m["isSubscribed"], true);
        for count in [
            "totalEmails",
            "unreadEmails",
            "totalThreads",
            "unreadThreads",
        ] {
            assert_eq!(m[count], 0, "{count} of {name}");
        }
        assert!(m["id"].as_str().unwrap().starts_with('F'));
        assert_eq!(m.as_object().unwrap().len(), 11, "{m}");
        let inbox = role == "inbox";
        assert_eq!(
            m["myRights"],
            json!({
                "mayReadItems": true, "mayAddItems": true, "mayRemoveItems": true,
                "maySetSeen": true, "maySetKeywords": true, "mayCreateChild": true,
                "mayRename": !inbox, "mayDelete": !inbox, "maySubmit": true
            })
        );
    }
    let inbox = store_id(&w, Role::Inbox).await;
    assert_eq!(
        find(&r, "role", "inbox")["id"],
        ids::mailbox(inbox).as_str()
    );
}

#[tokio::test]
async fn get_by_ids_with_properties_and_not_found() {
    let w = World::new().await;
    let inbox = ids::mailbox(store_id(&w, Role::Inbox).await).to_string();
    let r = w
        .call(
            "Mailbox/get",
            json!({
                "accountId": w.account_id(),
                "ids": [inbox, "F999999", "Mzz", inbox],
                "properties": ["name", "role"]
            }),
        )
        .await;
    assert_eq!(
        r["list"],
        json!([{"id": inbox, "name": "INBOX", "role": "inbox"}])
    );
    assert_eq!(r["notFound"], json!(["F999999", "Mzz"]));
    let e = w
        .call_error(
            "Mailbox/get",
            json!({"accountId": w.account_id(), "properties": ["colour"]}),
        )
        .await;
    assert_eq!(e, "invalidArguments");
    let e = w
        .call_error("Mailbox/get", json!({"accountId": "A999"}))
        .await;
    assert_eq!(e, "accountNotFound");
    // ids: omitted means all.
    let r = w
        .call(
            "Mailbox/get",
            json!({"accountId": w.account_id(), "properties": ["totalEmails"]}),
        )
        .await;
    assert_eq!(r["list"].as_array().unwrap().len(), 6);
    assert_eq!(r["list"][0].as_object().unwrap().len(), 2);
}

#[tokio::test]
async fn counts_follow_deliveries_and_flags() {
    let w = World::new().await;
    w.deliver(&raw("a1", "")).await;
    w.deliver(&raw(
        "a2",
        "In-Reply-To: <a1@remote.example>\nReferences: <a1@remote.example>",
    ))
    .await;
    w.deliver(&raw("b1", "")).await;
    let r = all(&w).await;
    let inbox = find(&r, "role", "inbox");
    assert_eq!(inbox["totalEmails"], 3);
    assert_eq!(inbox["unreadEmails"], 3);
    assert_eq!(inbox["totalThreads"], 2);
    assert_eq!(inbox["unreadThreads"], 2);
    let before = r["state"].as_str().unwrap().to_string();

    // Read the whole first conversation.
    let inbox_id = store_id(&w, Role::Inbox).await;
    let msgs = w.store.messages(w.alice.id, inbox_id).await.unwrap();
    let first: Vec<u64> = msgs
        .iter()
        .filter(|m| m.thread_id == msgs[0].thread_id)
        .map(|m| m.id)
        .collect();
    assert_eq!(first.len(), 2);
    w.store
        .update_flags(w.alice.id, &first, FlagChange::Add(Flags::SEEN, vec![]))
        .await
        .unwrap();
    let r = all(&w).await;
    let inbox = find(&r, "role", "inbox");
    assert_eq!(inbox["totalEmails"], 3);
    assert_eq!(inbox["unreadEmails"], 1);
    assert_eq!(inbox["totalThreads"], 2);
    assert_eq!(inbox["unreadThreads"], 1);
    // A draft is not unread (RFC 8621 §2: neither $seen nor $draft).
    w.store
        .update_flags(
            w.alice.id,
            &[msgs[2].id],
            FlagChange::Add(Flags::DRAFT, vec![]),
        )
        .await
        .unwrap();
    let r = all(&w).await;
    assert_eq!(find(&r, "role", "inbox")["unreadEmails"], 0);
    assert_eq!(find(&r, "role", "inbox")["unreadThreads"], 0);

    // Only counts changed: updatedProperties says so.
    let c = changes(&w, &before, None).await;
    assert_eq!(c["updated"], json!([ids::mailbox(inbox_id).as_str()]));
    assert_eq!(c["created"], json!([]));
    assert_eq!(c["destroyed"], json!([]));
    assert_eq!(
        c["updatedProperties"],
        json!([
            "totalEmails",
            "unreadEmails",
            "totalThreads",
            "unreadThreads"
        ])
    );
    assert_eq!(c["newState"], r["state"]);
    assert_eq!(c["hasMoreChanges"], false);
}

#[tokio::test]
async fn create_with_creation_id_parents_rename_move_subscribe_destroy() {
    let w = World::new().await;
    // The child comes first in the map: the server must create the parent first.
    let r = set(
        &w,
        json!({"create": {
            "c1": {"name": "2024", "parentId": "#p1"},
            "p1": {"name": "Projects", "isSubscribed": false},
            "p2": {"name": "Old", "sortOrder": 0, "role": null}
        }}),
    )
    .await;
    let parent = r["created"]["p1"]["id"].as_str().unwrap().to_string();
    let child = r["created"]["c1"]["id"].as_str().unwrap().to_string();
    let old = r["created"]["p2"]["id"].as_str().unwrap().to_string();
    // Server-set properties and the defaults of what was left out.
    assert_eq!(
        r["created"]["p1"],
        json!({
            "id": parent, "parentId": null, "role": null, "sortOrder": 0,
            "totalEmails": 0, "unreadEmails": 0, "totalThreads": 0, "unreadThreads": 0,
            "myRights": {
                "mayReadItems": true, "mayAddItems": true, "mayRemoveItems": true,
                "maySetSeen": true, "maySetKeywords": true, "mayCreateChild": true,
                "mayRename": true, "mayDelete": true, "maySubmit": true
            }
        })
    );
    assert!(r["created"]["c1"].get("parentId").is_none());
    assert_eq!(r["created"]["c1"]["isSubscribed"], true);
    assert!(r["created"]["p2"].get("sortOrder").is_none());
    assert_ne!(r["oldState"], r["newState"]);
    assert_eq!(r["newState"], state(&w).await);

    // IMAP sees the same tree.
    let store_boxes = w.store.mailboxes(w.alice.id).await.unwrap();
    let p = store_boxes
        .iter()
        .find(|m| ids::mailbox(m.id).as_str() == parent)
        .unwrap();
    let c = store_boxes
        .iter()
        .find(|m| ids::mailbox(m.id).as_str() == child)
        .unwrap();
    assert_eq!(
        (p.name.as_str(), p.parent_id, p.subscribed),
        ("Projects", None, false)
    );
    assert_eq!((c.name.as_str(), c.parent_id), ("2024", Some(p.id)));

    // Rename, move to the top, subscribe.
    let r = set(
        &w,
        json!({"update": {
            child.clone(): {"name": "Archive 2024", "parentId": null},
            parent.clone(): {"isSubscribed": true}
        }}),
    )
    .await;
    assert_eq!(
        r["updated"],
        json!({child.clone(): null, parent.clone(): null}),
        "{r}"
    );
    let got = all(&w).await;
    assert_eq!(find(&got, "id", &child)["name"], "Archive 2024");
    assert_eq!(find(&got, "id", &child)["parentId"], Value::Null);
    assert_eq!(find(&got, "id", &parent)["isSubscribed"], true);
    let store_boxes = w.store.mailboxes(w.alice.id).await.unwrap();
    let c = store_boxes
        .iter()
        .find(|m| ids::mailbox(m.id).as_str() == child)
        .unwrap();
    assert_eq!((c.name.as_str(), c.parent_id), ("Archive 2024", None));

    // Move it back under Projects, through a JSON-pointer patch.
    let r = set(&w, json!({"update": {child.clone(): {"parentId": parent}}})).await;
    assert!(
        r["updated"][&child].is_null() && r["notUpdated"].is_null(),
        "{r}"
    );

    // Destroying parent and child in one call works in either order.
    let r = set(&w, json!({"destroy": [parent, child, old]})).await;
    let mut destroyed: Vec<&str> = r["destroyed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    destroyed.sort_unstable();
    let mut want = vec![parent.as_str(), child.as_str(), old.as_str()];
    want.sort_unstable();
    assert_eq!(destroyed, want, "{r}");
    assert_eq!(all(&w).await["list"].as_array().unwrap().len(), 6);
    assert_eq!(w.store.mailboxes(w.alice.id).await.unwrap().len(), 6);
}

#[tokio::test]
async fn created_ids_work_across_calls_and_in_update_and_destroy() {
    let w = World::new().await;
    let acc = w.account_id();
    let r = w
        .request(json!([
            ["Mailbox/set", {"accountId": acc, "create": {"x": {"name": "X"}}}, "0"],
            ["Mailbox/set", {"accountId": acc,
                "create": {"y": {"name": "Y", "parentId": "#x"}},
                "update": {"#x": {"name": "X2"}}}, "1"],
            ["Mailbox/get", {"accountId": acc, "ids": ["#x", "#y", "#nope"], "properties": ["name", "parentId"]}, "2"],
            ["Mailbox/set", {"accountId": acc, "destroy": ["#y"]}, "3"]
        ]))
        .await;
    let x = r["methodResponses"][0][1]["created"]["x"]["id"].clone();
    let y = r["methodResponses"][1][1]["created"]["y"]["id"].clone();
    assert_eq!(
        r["methodResponses"][1][1]["updated"],
        json!({x.as_str().unwrap(): null})
    );
    assert_eq!(
        r["methodResponses"][2][1]["list"],
        json!([{"id": x, "name": "X2", "parentId": null}, {"id": y, "name": "Y", "parentId": x}])
    );
    assert_eq!(r["methodResponses"][2][1]["notFound"], json!(["#nope"]));
    assert_eq!(r["methodResponses"][3][1]["destroyed"], json!([y]));
}

#[tokio::test]
async fn create_errors() {
    let w = World::new().await;
    let r = set(
        &w,
        json!({"create": {
            "clash": {"name": "Drafts"},
            "slash": {"name": "a/b"},
            "empty": {"name": ""},
            "missing": {"parentId": null},
            "inbox": {"name": "inbox"},
            "unknown": {"name": "U", "colour": "red"},
            "serverSet": {"name": "S", "totalEmails": 0},
            "roleTaken": {"name": "Bin", "role": "trash"},
            "roleBogus": {"name": "Bogus", "role": "bogus"},
            "sortOrder": {"name": "Sorted", "sortOrder": 5},
            "noParent": {"name": "Orphan", "parentId": "F999999"},
            "badParentRef": {"name": "Orphan", "parentId": "#nothing"},
            "loopA": {"name": "A", "parentId": "#loopB"},
            "loopB": {"name": "B", "parentId": "#loopA"},
            "subscribed": {"name": "Sub", "isSubscribed": "yes"}
        }}),
    )
    .await;
    assert!(r["created"].is_null(), "{r}");
    for (key, property) in [
        ("clash", "name"),
        ("slash", "name"),
        ("empty", "name"),
        ("missing", "name"),
        ("inbox", "name"),
        ("unknown", "colour"),
        ("serverSet", "totalEmails"),
        ("roleTaken", "role"),
        ("roleBogus", "role"),
        ("sortOrder", "sortOrder"),
        ("noParent", "parentId"),
        ("badParentRef", "parentId"),
        ("loopA", "parentId"),
        ("loopB", "parentId"),
        ("subscribed", "isSubscribed"),
    ] {
        assert_eq!(
            error_type(&r, "notCreated", key),
            "invalidProperties",
            "{key}"
        );
        assert_eq!(
            r["notCreated"][key]["properties"],
            json!([property]),
            "{key}: {r}"
        );
    }
    assert_eq!(r["oldState"], r["newState"]);
    assert_eq!(w.store.mailboxes(w.alice.id).await.unwrap().len(), 6);

    // A name clash only matters between siblings; a role can be given once.
    let parent = create(&w, "Parent", None).await;
    create(&w, "Drafts", Some(&parent)).await;
    let r = set(&w, json!({"create": {"a": {"name": "All", "role": "all"}}})).await;
    assert_eq!(r["created"]["a"]["myRights"]["mayDelete"], true);
    assert_eq!(find(&all(&w).await, "role", "all")["name"], "All");
    let all_id = w
        .store
        .mailboxes(w.alice.id)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.role == Some(Role::All))
        .unwrap();
    assert_eq!(all_id.name, "All");
}

#[tokio::test]
async fn update_errors() {
    let w = World::new().await;
    let a = create(&w, "A", None).await;
    let b = create(&w, "B", Some(&a)).await;
    let c = create(&w, "C", Some(&b)).await;
    create(&w, "Taken", None).await;
    let inbox = ids::mailbox(store_id(&w, Role::Inbox).await).to_string();
    let trash = ids::mailbox(store_id(&w, Role::Trash).await).to_string();
    let r = set(
        &w,
        json!({"update": {
            a.clone(): {"parentId": c},
            b.clone(): {"name": "Taken", "parentId": null},
            c.clone(): {"totalEmails": 5, "colour": "red"},
            trash.clone(): {"role": "junk"},
            inbox.clone(): {"name": "Inbox2"},
            "F999999": {"name": "Z"},
        }}),
    )
    .await;
    assert_eq!(error_type(&r, "notUpdated", &a), "invalidProperties");
    assert_eq!(r["notUpdated"][&a]["properties"], json!(["parentId"]));
    assert_eq!(r["notUpdated"][&b]["properties"], json!(["name"]));
    assert_eq!(
        r["notUpdated"][&c]["properties"],
        json!(["colour", "totalEmails"])
    );
    assert_eq!(r["notUpdated"][&trash]["properties"], json!(["role"]));
    assert_eq!(error_type(&r, "notUpdated", &inbox), "forbidden");
    assert_eq!(error_type(&r, "notUpdated", "F999999"), "notFound");
    assert!(r["updated"].is_null(), "{r}");

    // Server-set properties may be repeated with their current values, and
    // patches reach inside objects.
    let r = set(
        &w,
        json!({"update": {
            c.clone(): {"totalEmails": 0, "myRights/mayDelete": true, "role": null, "sortOrder": 0},
            trash.clone(): {"role": "trash", "isSubscribed": false},
        }}),
    )
    .await;
    assert_eq!(
        r["updated"],
        json!({c.clone(): null, trash.clone(): null}),
        "{r}"
    );
    let r = set(
        &w,
        json!({"update": {c.clone(): {"myRights/mayDelete": false}}}),
    )
    .await;
    assert_eq!(r["notUpdated"][&c]["properties"], json!(["myRights"]));
    let r = set(&w, json!({"update": {c.clone(): {"name/x": "y"}}})).await;
    assert_eq!(error_type(&r, "notUpdated", &c), "invalidPatch");

    // Updating and destroying the same mailbox: the update is not done.
    let r = set(
        &w,
        json!({"update": {c.clone(): {"name": "C2"}}, "destroy": [c.clone()]}),
    )
    .await;
    assert_eq!(error_type(&r, "notUpdated", &c), "willDestroy");
    assert_eq!(r["destroyed"], json!([c]));

    // ifInState.
    let e = w
        .call_error(
            "Mailbox/set",
            json!({"accountId": w.account_id(), "ifInState": "1", "update": {a.clone(): {"name": "A2"}}}),
        )
        .await;
    assert_eq!(e, "stateMismatch");
    let s = state(&w).await;
    let r = set(
        &w,
        json!({"ifInState": s, "update": {a.clone(): {"name": "A2"}}}),
    )
    .await;
    assert_eq!(r["oldState"], s);
    assert!(r["updated"].get(&a).is_some(), "{r}");
    // An unknown argument.
    let e = w
        .call_error(
            "Mailbox/set",
            json!({"accountId": w.account_id(), "removeEmails": true}),
        )
        .await;
    assert_eq!(e, "invalidArguments");
}

#[tokio::test]
async fn destroy_rules() {
    let w = World::new().await;
    let parent = create(&w, "Parent", None).await;
    let child = create(&w, "Child", Some(&parent)).await;
    let inbox_id = store_id(&w, Role::Inbox).await;
    let inbox = ids::mailbox(inbox_id).to_string();
    let r = set(
        &w,
        json!({"destroy": [parent.clone(), inbox.clone(), "F999999"]}),
    )
    .await;
    assert_eq!(error_type(&r, "notDestroyed", &parent), "mailboxHasChild");
    assert_eq!(error_type(&r, "notDestroyed", &inbox), "forbidden");
    assert_eq!(error_type(&r, "notDestroyed", "F999999"), "notFound");

    // A mailbox with mail: only with onDestroyRemoveEmails.
    w.deliver(&raw("m1", "")).await;
    w.deliver(&raw("m2", "")).await;
    let ids_in_inbox: Vec<u64> = w
        .store
        .messages(w.alice.id, inbox_id)
        .await
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    let child_id = ids::parse_mailbox(&child).unwrap();
    for (moved, said) in [
        (1, "the mailbox has 1 email"),
        (2, "the mailbox has 2 emails"),
    ] {
        w.store
            .move_messages(w.alice.id, &ids_in_inbox[moved - 1..moved], child_id)
            .await
            .unwrap();
        let r = set(&w, json!({"destroy": [child.clone()]})).await;
        assert_eq!(error_type(&r, "notDestroyed", &child), "mailboxHasEmail");
        assert_eq!(r["notDestroyed"][&child]["description"], said);
    }
    let r = set(
        &w,
        json!({"destroy": [child.clone()], "onDestroyRemoveEmails": true}),
    )
    .await;
    assert_eq!(r["destroyed"], json!([child]));
    for id in ids_in_inbox {
        assert!(w.store.message(w.alice.id, id).await.unwrap().is_none());
    }
    let r = set(&w, json!({"destroy": [parent.clone()]})).await;
    assert_eq!(r["destroyed"], json!([parent]));
}

#[tokio::test]
async fn changes_after_each_kind_of_change() {
    let w = World::new().await;
    let s0 = state(&w).await;
    let c = changes(&w, &s0, None).await;
    assert_eq!(c["oldState"], s0);
    assert_eq!(c["newState"], s0);
    assert_eq!(c["created"], json!([]));
    assert_eq!(c["updatedProperties"], Value::Null);

    let a = create(&w, "A", None).await;
    let c = changes(&w, &s0, None).await;
    assert_eq!(c["created"], json!([a]));
    assert_eq!(c["updatedProperties"], Value::Null);
    let s1 = c["newState"].as_str().unwrap().to_string();
    assert_eq!(s1, state(&w).await);

    set(&w, json!({"update": {a.clone(): {"name": "A2"}}})).await;
    let c = changes(&w, &s1, None).await;
    assert_eq!(c["updated"], json!([a]));
    assert_eq!(c["created"], json!([]));
    assert_eq!(c["updatedProperties"], Value::Null);
    // Created then updated since s0: reported as created only.
    let c0 = changes(&w, &s0, None).await;
    assert_eq!(c0["created"], json!([a]));
    assert_eq!(c0["updated"], json!([]));
    let s2 = c["newState"].as_str().unwrap().to_string();

    set(&w, json!({"destroy": [a.clone()]})).await;
    let c = changes(&w, &s2, None).await;
    assert_eq!(c["destroyed"], json!([a]));
    // Created and destroyed since s0: not reported at all.
    let c0 = changes(&w, &s0, None).await;
    assert_eq!(c0["created"], json!([]));
    assert_eq!(c0["destroyed"], json!([]));
    let s3 = c["newState"].as_str().unwrap().to_string();

    // maxChanges 1 over two separate creations.
    let x = create(&w, "X", None).await;
    let y = create(&w, "Y", None).await;
    let c = changes(&w, &s3, Some(1)).await;
    assert_eq!(c["created"], json!([x]));
    assert_eq!(c["hasMoreChanges"], true);
    let mid = c["newState"].as_str().unwrap().to_string();
    let c = changes(&w, &mid, Some(1)).await;
    assert_eq!(c["created"], json!([y]));
    assert_eq!(c["hasMoreChanges"], false);
    assert_eq!(c["newState"], state(&w).await);

    // A mailbox created through the store (IMAP CREATE) shows up too.
    let s4 = state(&w).await;
    let m = w
        .store
        .create_mailbox(w.alice.id, None, "From IMAP", None)
        .await
        .unwrap();
    let c = changes(&w, &s4, None).await;
    assert_eq!(c["created"], json!([ids::mailbox(m.id).as_str()]));
    assert_eq!(
        find(&all(&w).await, "id", ids::mailbox(m.id).as_str())["name"],
        "From IMAP"
    );

    // A move touches two mailboxes in one change: more than maxChanges 1.
    w.deliver(&raw("mv", "")).await;
    let s5 = state(&w).await;
    let inbox = store_id(&w, Role::Inbox).await;
    let msgs = w.store.messages(w.alice.id, inbox).await.unwrap();
    w.store
        .move_messages(w.alice.id, &[msgs[0].id], m.id)
        .await
        .unwrap();
    let e = w
        .call_error(
            "Mailbox/changes",
            json!({"accountId": w.account_id(), "sinceState": s5, "maxChanges": 1}),
        )
        .await;
    assert_eq!(e, "cannotCalculateChanges");
    let c = changes(&w, &s5, Some(2)).await;
    assert_eq!(c["updated"].as_array().unwrap().len(), 2);

    for bad in ["abc", "-1", "0012", "99999999"] {
        let e = w
            .call_error(
                "Mailbox/changes",
                json!({"accountId": w.account_id(), "sinceState": bad}),
            )
            .await;
        assert_eq!(e, "cannotCalculateChanges", "{bad}");
    }
    let e = w
        .call_error(
            "Mailbox/changes",
            json!({"accountId": w.account_id(), "sinceState": s0, "maxChanges": 0}),
        )
        .await;
    assert_eq!(e, "invalidArguments");
}

/// A tree for the query tests:
/// INBOX, Drafts, Sent, Archive, Junk, Trash (sortOrder 0-5), and
/// `Work` (unsubscribed) > `beta`, `Alpha` > `Deep`; `zeta`.
async fn query_world() -> (World, Value) {
    let w = World::new().await;
    let r = set(
        &w,
        json!({"create": {
            "work": {"name": "Work", "isSubscribed": false},
            "beta": {"name": "beta", "parentId": "#work"},
            "alpha": {"name": "Alpha", "parentId": "#work"},
            "deep": {"name": "Deep", "parentId": "#alpha"},
            "zeta": {"name": "zeta"}
        }}),
    )
    .await;
    assert!(r["notCreated"].is_null(), "{r}");
    let list = all(&w).await;
    (w, list)
}

#[tokio::test]
async fn query_filters() {
    let (w, list) = query_world().await;
    let work = find(&list, "name", "Work")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let q = |filter: Value| {
        let w = &w;
        let list = &list;
        async move {
            let ids = query(w, json!({"filter": filter, "sort": [{"property": "name"}]})).await;
            names(list, &ids)
        }
    };
    assert_eq!(
        q(json!({"parentId": null})).await,
        [
            "Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash", "Work", "zeta"
        ]
    );
    assert_eq!(q(json!({"parentId": work})).await, ["Alpha", "beta"]);
    assert_eq!(
        q(json!({"parentId": "F999999"})).await,
        Vec::<String>::new()
    );
    assert_eq!(
        q(json!({"name": "A"})).await,
        ["Alpha", "Archive", "beta", "Drafts", "Trash", "zeta"]
    );
    assert_eq!(q(json!({"name": "ARCH"})).await, ["Archive"]);
    assert_eq!(q(json!({"role": "trash"})).await, ["Trash"]);
    assert_eq!(
        q(json!({"role": null})).await,
        ["Alpha", "beta", "Deep", "Work", "zeta"]
    );
    assert_eq!(
        q(json!({"hasAnyRole": false})).await,
        q(json!({"role": null})).await
    );
    assert_eq!(
        q(json!({"hasAnyRole": true})).await,
        ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"]
    );
    assert_eq!(q(json!({"isSubscribed": false})).await, ["Work"]);
    assert_eq!(
        q(json!({"operator": "AND", "conditions": [{"hasAnyRole": false}, {"name": "e"}]})).await,
        ["beta", "Deep", "zeta"]
    );
    assert_eq!(
        q(json!({"operator": "OR", "conditions": [{"role": "inbox"}, {"name": "deep"}]})).await,
        ["Deep", "INBOX"]
    );
    assert_eq!(
        q(json!({"operator": "NOT", "conditions": [{"parentId": null}]})).await,
        ["Alpha", "beta", "Deep"]
    );
    // Two properties in one condition: both must match.
    assert_eq!(q(json!({"parentId": null, "name": "w"})).await, ["Work"]);

    let err = |args: Value| {
        let w = &w;
        async move {
            let mut args = args;
            args["accountId"] = json!(w.account_id());
            w.call_error("Mailbox/query", args).await
        }
    };
    assert_eq!(
        err(json!({"filter": {"colour": "red"}})).await,
        "unsupportedFilter"
    );
    assert_eq!(
        err(json!({"filter": {"name": 3}})).await,
        "invalidArguments"
    );
    assert_eq!(
        err(json!({"sort": [{"property": "totalEmails"}]})).await,
        "unsupportedSort"
    );
    assert_eq!(
        err(json!({"sort": [{"property": "name", "collation": "i;klingon"}]})).await,
        "unsupportedSort"
    );
    assert_eq!(err(json!({"sortAsTree": "yes"})).await, "invalidArguments");
}

#[tokio::test]
async fn query_sorts_trees_and_windows() {
    let (w, list) = query_world().await;
    let q = |args: Value| {
        let w = &w;
        let list = &list;
        async move { names(list, &query(w, args).await) }
    };
    // No sort: a stable, server-chosen order (by id: creation order).
    let unsorted = q(json!({})).await;
    assert_eq!(
        unsorted[..6],
        ["INBOX", "Drafts", "Sent", "Archive", "Junk", "Trash"]
    );
    assert_eq!(unsorted.len(), 11);
    assert_eq!(q(json!({"sort": []})).await, unsorted);
    assert_eq!(
        q(json!({"sort": [{"property": "sortOrder"}, {"property": "name", "isAscending": false}]}))
            .await,
        [
            "zeta", "Work", "INBOX", "Deep", "beta", "Alpha", "Drafts", "Sent", "Archive", "Junk",
            "Trash"
        ]
    );
    assert_eq!(
        q(json!({"sort": [{"property": "name", "collation": "i;ascii-casemap"}]})).await,
        [
            "Alpha", "Archive", "beta", "Deep", "Drafts", "INBOX", "Junk", "Sent", "Trash", "Work",
            "zeta"
        ]
    );
    // sortAsTree: parents before children, siblings by the sort.
    assert_eq!(
        q(json!({"sort": [{"property": "name"}], "sortAsTree": true})).await,
        [
            "Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash", "Work", "Alpha", "Deep", "beta",
            "zeta"
        ]
    );
    assert_eq!(
        q(json!({"sort": [{"property": "name", "isAscending": false}], "sortAsTree": true})).await,
        [
            "zeta", "Work", "beta", "Alpha", "Deep", "Trash", "Sent", "Junk", "INBOX", "Drafts",
            "Archive"
        ]
    );
    // filterAsTree: a match whose ancestor does not match is left out.
    assert_eq!(
        q(json!({"filter": {"name": "e"}, "sort": [{"property": "name"}]})).await,
        ["Archive", "beta", "Deep", "Sent", "zeta"]
    );
    assert_eq!(
        q(json!({"filter": {"name": "e"}, "sort": [{"property": "name"}], "filterAsTree": true}))
            .await,
        ["Archive", "Sent", "zeta"]
    );
    assert_eq!(
        q(json!({"filter": {"hasAnyRole": false}, "sort": [{"property": "name"}], "filterAsTree": true})).await,
        ["Alpha", "beta", "Deep", "Work", "zeta"]
    );
    assert_eq!(
        q(json!({"filter": {"isSubscribed": true}, "sort": [{"property": "name"}], "filterAsTree": true, "sortAsTree": true}))
            .await,
        ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash", "zeta"]
    );

    // Windows: position, anchor, limit, total.
    let sorted = json!([{"property": "name"}]);
    let r = w
        .call(
            "Mailbox/query",
            json!({"accountId": w.account_id(), "sort": sorted, "position": 2, "limit": 3, "calculateTotal": true}),
        )
        .await;
    assert_eq!(
        names(&list, &strings(&r["ids"])),
        ["beta", "Deep", "Drafts"]
    );
    assert_eq!(r["position"], 2);
    assert_eq!(r["total"], 11);
    assert_eq!(r["canCalculateChanges"], true);
    assert_eq!(r["queryState"], state(&w).await);
    let deep = find(&list, "name", "Deep")["id"].clone();
    let r = w
        .call(
            "Mailbox/query",
            json!({"accountId": w.account_id(), "sort": sorted, "anchor": deep, "anchorOffset": -1, "limit": 2}),
        )
        .await;
    assert_eq!(names(&list, &strings(&r["ids"])), ["beta", "Deep"]);
    assert_eq!(r["position"], 2);
    let r = w
        .call(
            "Mailbox/query",
            json!({"accountId": w.account_id(), "sort": sorted, "position": -2}),
        )
        .await;
    assert_eq!(names(&list, &strings(&r["ids"])), ["Work", "zeta"]);
    let e = w
        .call_error(
            "Mailbox/query",
            json!({"accountId": w.account_id(), "anchor": "F999999"}),
        )
        .await;
    assert_eq!(e, "anchorNotFound");
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn query_changes() {
    let (w, list) = query_world().await;
    let sort = json!([{"property": "name"}]);
    let r = w
        .call(
            "Mailbox/query",
            json!({"accountId": w.account_id(), "sort": sort, "filter": {"hasAnyRole": false}}),
        )
        .await;
    let old = r["queryState"].as_str().unwrap().to_string();
    // Nothing changed.
    let qc = |since: String, extra: Value| {
        let w = &w;
        let sort = sort.clone();
        async move {
            let mut args = json!({
                "accountId": w.account_id(), "sort": sort, "filter": {"hasAnyRole": false},
                "sinceQueryState": since, "calculateTotal": true
            });
            for (k, v) in extra.as_object().unwrap() {
                args[k] = v.clone();
            }
            w.call("Mailbox/queryChanges", args).await
        }
    };
    let r = qc(old.clone(), json!({})).await;
    assert_eq!(r["oldQueryState"], old);
    assert_eq!(r["newQueryState"], old);
    assert_eq!(r["removed"], json!([]));
    assert_eq!(r["added"], json!([]));
    assert_eq!(r["total"], 5);

    // Create "Gamma", rename "zeta" to "Aardvark", destroy "Deep".
    let zeta = find(&list, "name", "zeta")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deep = find(&list, "name", "Deep")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let gamma = create(&w, "Gamma", None).await;
    set(
        &w,
        json!({"update": {zeta.clone(): {"name": "Aardvark"}}, "destroy": [deep.clone()]}),
    )
    .await;
    let r = qc(old.clone(), json!({})).await;
    assert_eq!(r["newQueryState"], state(&w).await);
    let mut removed = strings(&r["removed"]);
    removed.sort();
    let mut want = vec![zeta.clone(), deep.clone()];
    want.sort();
    assert_eq!(removed, want);
    // New results: Aardvark, Alpha, beta, Gamma, Work.
    assert_eq!(
        r["added"],
        json!([{"id": zeta, "index": 0}, {"id": gamma, "index": 3}])
    );
    assert_eq!(r["total"], 5);
    let e = w
        .call_error(
            "Mailbox/queryChanges",
            json!({"accountId": w.account_id(), "sort": sort, "filter": {"hasAnyRole": false},
                   "sinceQueryState": old, "maxChanges": 3}),
        )
        .await;
    assert_eq!(e, "tooManyChanges");
    let e = w
        .call_error(
            "Mailbox/queryChanges",
            json!({"accountId": w.account_id(), "sinceQueryState": "nope"}),
        )
        .await;
    assert_eq!(e, "cannotCalculateChanges");

    // As a tree, renaming a parent moves its children too.
    let work = find(&list, "name", "Work")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let alpha = find(&list, "name", "Alpha")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let beta = find(&list, "name", "beta")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let s = state(&w).await;
    set(&w, json!({"update": {work.clone(): {"name": "Zzz"}}})).await;
    let r = qc(s, json!({"sortAsTree": true})).await;
    let mut removed = strings(&r["removed"]);
    removed.sort();
    let mut want = vec![work.clone(), alpha.clone(), beta.clone()];
    want.sort();
    assert_eq!(removed, want);
    // Tree order now: Aardvark, Gamma, Zzz, Alpha, beta.
    assert_eq!(
        r["added"],
        json!([{"id": work, "index": 2}, {"id": alpha, "index": 3}, {"id": beta, "index": 4}])
    );
}
