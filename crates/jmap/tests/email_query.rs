//! Email/query, Email/queryChanges (RFC 8621 §4.4, §4.5) and
//! SearchSnippet/get (§5): every filter condition and sort property,
//! thread collapsing, windows, and query changes checked by replaying them
//! on the old results.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use common::World;
use pochta_store::{
    Delivery, DeliveryTarget, FlagChange, Flags, MailboxTarget, MessageId, Role, Store,
};
use serde_json::{Value, json};

fn crlf(s: &str) -> Vec<u8> {
    s.replace("\r\n", "\n").replace('\n', "\r\n").into_bytes()
}

/// A store with a handful of messages over three mailboxes and two
/// threads, and their JMAP ids by name.
struct Fixture {
    w: World,
    ids: HashMap<&'static str, String>,
    nums: HashMap<&'static str, MessageId>,
    mailboxes: HashMap<Role, u64>,
}

impl Fixture {
    fn id(&self, name: &str) -> String {
        self.ids[name].clone()
    }

    fn mailbox(&self, role: Role) -> String {
        pochta_jmap::ids::mailbox(self.mailboxes[&role]).to_string()
    }

    /// The names of `ids` (JMAP ids) in order.
    fn names(&self, ids: &Value) -> Vec<&'static str> {
        ids.as_array()
            .unwrap()
            .iter()
            .map(|id| {
                *self
                    .ids
                    .iter()
                    .find(|(_, v)| v.as_str() == id.as_str().unwrap())
                    .map(|(k, _)| k)
                    .unwrap_or_else(|| panic!("unknown id {id}"))
            })
            .collect()
    }

    async fn put(
        &mut self,
        name: &'static str,
        raw: &str,
        date: i64,
        role: Role,
        flags: Flags,
        keywords: &[&str],
    ) {
        let raw = crlf(raw);
        let delivered = self
            .w
            .store
            .deliver(Delivery {
                meta: pochta_message::parse(&raw),
                raw,
                internal_date: date,
                targets: vec![DeliveryTarget {
                    account: self.w.alice.id,
                    mailbox: MailboxTarget::Id(self.mailboxes[&role]),
                    flags,
                    keywords: keywords.iter().map(|k| (*k).to_string()).collect(),
                }],
                outbound: None,
            })
            .await
            .unwrap();
        let id = delivered[0].id;
        self.ids
            .insert(name, pochta_jmap::ids::email(id).to_string());
        self.nums.insert(name, id);
    }

    /// Email/query with `args` merged in; returns the whole response.
    async fn query(&self, args: Value) -> Value {
        let mut full = json!({ "accountId": self.w.account_id() });
        for (k, v) in args.as_object().unwrap() {
            full[k] = v.clone();
        }
        self.w.call("Email/query", full).await
    }

    /// The names an Email/query with `filter` and `sort` returns.
    async fn find(&self, filter: Value, sort: Value) -> Vec<&'static str> {
        let r = self.query(json!({ "filter": filter, "sort": sort })).await;
        self.names(&r["ids"])
    }

    async fn error(&self, method: &str, args: Value) -> String {
        let mut full = json!({ "accountId": self.w.account_id() });
        for (k, v) in args.as_object().unwrap() {
            full[k] = v.clone();
        }
        self.w.call_error(method, full).await
    }
}

const T: i64 = 1_700_000_000;

async fn fixture() -> Fixture {
    let w = World::new().await;
    let boxes = w.store.mailboxes(w.alice.id).await.unwrap();
    let mailboxes = boxes
        .iter()
        .filter_map(|b| b.role.map(|r| (r, b.id)))
        .collect();
    let mut f = Fixture {
        w,
        ids: HashMap::new(),
        nums: HashMap::new(),
        mailboxes,
    };
    f.put(
        "apple",
        "From: Alice Anders <alice@a.example>
To: Bob <bob@b.example>
Subject: Apple pie recipe
Date: Mon, 13 Nov 2023 10:00:00 +0000
Message-ID: <t1@x>

Bake the apples slowly.
",
        T + 10,
        Role::Inbox,
        Flags::SEEN,
        &[],
    )
    .await;
    f.put(
        "reply",
        "From: Bob <bob@b.example>
To: Alice Anders <alice@a.example>
Subject: Re: Apple pie recipe
Date: Mon, 13 Nov 2023 12:00:00 +0000
Message-ID: <t2@x>
In-Reply-To: <t1@x>
References: <t1@x>

Thanks, the crust was great.
",
        T + 20,
        Role::Inbox,
        Flags::SEEN | Flags::FLAGGED,
        &[],
    )
    .await;
    f.put(
        "zebra",
        "From: Carol <carol@c.example>
To: alice@example.com
Cc: Dave <dave@d.example>
Bcc: eve@e.example
Subject: Zebra report
Date: Sun, 12 Nov 2023 09:00:00 +0000
Message-ID: <t3@x>
Content-Type: multipart/mixed; boundary=z

--z
Content-Type: text/html

<html><head><style>.numbers { color: red }</style></head><p>The <b>zebra</b> numbers &amp; more</p></html>
--z
Content-Type: application/pdf; name=figures.pdf
Content-Disposition: attachment; filename=figures.pdf
Content-Transfer-Encoding: base64

JVBERi0xLjQK
--z--
",
        T + 30,
        Role::Archive,
        Flags::SEEN,
        &["Work"],
    )
    .await;
    f.put(
        "eclair",
        "From: =?UTF-8?Q?=C3=89mile?= <emile@e.example>
To: alice@example.com
Subject: =?UTF-8?Q?=C3=89clairs?=

Pastry is lovely.
",
        T,
        Role::Inbox,
        Flags::NONE,
        &["$Junk"],
    )
    .await;
    f.put(
        "zebra2",
        "From: Dave <dave@d.example>
To: Carol <carol@c.example>
Subject: Re: Zebra report
Date: Tue, 14 Nov 2023 09:00:00 +0000
Message-ID: <t5@x>
References: <t3@x>
X-Priority: 1 (Highest)

Numbers look fine.
",
        T + 40,
        Role::Trash,
        Flags::NONE,
        &[],
    )
    .await;
    f
}

#[tokio::test]
async fn every_filter_condition() {
    let f = fixture().await;
    let by_date = json!([{ "property": "receivedAt" }]);
    let find = |filter: Value| {
        let f = &f;
        let sort = by_date.clone();
        async move { f.find(filter, sort).await }
    };
    let inbox = f.mailbox(Role::Inbox);
    let trash = f.mailbox(Role::Trash);
    let archive = f.mailbox(Role::Archive);
    let all = vec!["eclair", "apple", "reply", "zebra", "zebra2"];
    assert_eq!(find(Value::Null).await, all);
    assert_eq!(find(json!({})).await, all);
    assert_eq!(
        find(json!({ "inMailbox": inbox })).await,
        ["eclair", "apple", "reply"]
    );
    assert_eq!(
        find(json!({ "inMailbox": "F999" })).await,
        Vec::<&str>::new()
    );
    assert_eq!(
        find(json!({ "inMailbox": "nonsense" })).await,
        Vec::<&str>::new()
    );
    assert_eq!(
        find(json!({ "inMailboxOtherThan": [trash, archive] })).await,
        ["eclair", "apple", "reply"]
    );
    assert_eq!(find(json!({ "inMailboxOtherThan": [] })).await, all);
    let date = |d: i64| {
        time::OffsetDateTime::from_unix_timestamp(d)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    assert_eq!(
        find(json!({ "before": date(T + 20) })).await,
        ["eclair", "apple"]
    );
    assert_eq!(
        find(json!({ "after": date(T + 20) })).await,
        ["reply", "zebra", "zebra2"]
    );
    assert_eq!(
        find(json!({ "after": date(T + 10), "before": date(T + 30) })).await,
        ["apple", "reply"]
    );
    // Sizes: the smallest and largest message.
    let sizes = {
        let mut s = Vec::new();
        for name in &all {
            let r =
                f.w.store
                    .records(f.w.alice.id, &[f.nums[name]])
                    .await
                    .unwrap();
            s.push((r[0].summary.size, *name));
        }
        s.sort();
        s
    };
    let (small, small_name) = sizes[0];
    let (large, large_name) = sizes[4];
    assert_eq!(find(json!({ "maxSize": small + 1 })).await, [small_name]);
    assert_eq!(find(json!({ "maxSize": small })).await, Vec::<&str>::new());
    assert_eq!(find(json!({ "minSize": large })).await, [large_name]);
    // Keywords, case-insensitively; flags are keywords.
    assert_eq!(
        find(json!({ "hasKeyword": "$seen" })).await,
        ["apple", "reply", "zebra"]
    );
    assert_eq!(
        find(json!({ "notKeyword": "$seen" })).await,
        ["eclair", "zebra2"]
    );
    assert_eq!(find(json!({ "hasKeyword": "$JUNK" })).await, ["eclair"]);
    assert_eq!(find(json!({ "hasKeyword": "work" })).await, ["zebra"]);
    // Threads: apple+reply, zebra+zebra2, eclair alone.
    assert_eq!(
        find(json!({ "allInThreadHaveKeyword": "$seen" })).await,
        ["apple", "reply"]
    );
    assert_eq!(
        find(json!({ "someInThreadHaveKeyword": "$flagged" })).await,
        ["apple", "reply"]
    );
    assert_eq!(
        find(json!({ "noneInThreadHaveKeyword": "$flagged" })).await,
        ["eclair", "zebra", "zebra2"]
    );
    assert_eq!(
        find(json!({ "someInThreadHaveKeyword": "work" })).await,
        ["zebra", "zebra2"]
    );
    // Thread conditions look beyond the mailbox filtered on.
    assert_eq!(
        find(json!({ "inMailbox": archive, "allInThreadHaveKeyword": "$seen" })).await,
        Vec::<&str>::new()
    );
    assert_eq!(find(json!({ "hasAttachment": true })).await, ["zebra"]);
    assert_eq!(
        find(json!({ "hasAttachment": false })).await,
        ["eclair", "apple", "reply", "zebra2"]
    );
    // Text: headers, bodies (HTML as text, not markup), attachment names.
    assert_eq!(find(json!({ "text": "zebra" })).await, ["zebra", "zebra2"]);
    assert_eq!(find(json!({ "text": "crust" })).await, ["reply"]);
    assert_eq!(find(json!({ "text": "CRUST great" })).await, ["reply"]);
    assert_eq!(
        find(json!({ "text": "crust nowhere" })).await,
        Vec::<&str>::new()
    );
    assert_eq!(find(json!({ "text": "\"the crust\"" })).await, ["reply"]);
    assert_eq!(
        find(json!({ "text": "\"crust the\"" })).await,
        Vec::<&str>::new()
    );
    assert_eq!(find(json!({ "text": "figures.pdf" })).await, ["zebra"]);
    assert_eq!(
        find(json!({ "text": "dave numbers" })).await,
        ["zebra", "zebra2"]
    );
    assert_eq!(
        find(json!({ "body": "numbers" })).await,
        ["zebra", "zebra2"]
    );
    assert_eq!(find(json!({ "body": "color" })).await, Vec::<&str>::new());
    assert_eq!(
        find(json!({ "body": "zebra report" })).await,
        Vec::<&str>::new()
    );
    assert_eq!(find(json!({ "body": "& more" })).await, ["zebra"]);
    // Address fields: display names and addresses, decoded.
    assert_eq!(find(json!({ "from": "bob" })).await, ["reply"]);
    assert_eq!(find(json!({ "from": "émile" })).await, ["eclair"]);
    assert_eq!(find(json!({ "from": "ANDERS" })).await, ["apple"]);
    assert_eq!(
        find(json!({ "to": "alice@example.com" })).await,
        ["eclair", "zebra"]
    );
    assert_eq!(find(json!({ "to": "carol" })).await, ["zebra2"]);
    assert_eq!(find(json!({ "cc": "dave" })).await, ["zebra"]);
    assert_eq!(find(json!({ "bcc": "eve@" })).await, ["zebra"]);
    assert_eq!(
        find(json!({ "subject": "apple" })).await,
        ["apple", "reply"]
    );
    assert_eq!(find(json!({ "subject": "éclairs" })).await, ["eclair"]);
    assert_eq!(
        find(json!({ "subject": "pie crust" })).await,
        Vec::<&str>::new()
    );
    // Header: presence, value (decoded, case-insensitive), fast paths.
    assert_eq!(find(json!({ "header": ["X-Priority"] })).await, ["zebra2"]);
    assert_eq!(
        find(json!({ "header": ["x-priority", "highest"] })).await,
        ["zebra2"]
    );
    assert_eq!(
        find(json!({ "header": ["X-Priority", "low"] })).await,
        Vec::<&str>::new()
    );
    assert_eq!(
        find(json!({ "header": ["Message-ID", "<t1@x>"] })).await,
        ["apple"]
    );
    assert_eq!(find(json!({ "header": ["In-Reply-To"] })).await, ["reply"]);
    assert_eq!(
        find(json!({ "header": ["References", "t3@x"] })).await,
        ["zebra2"]
    );
    assert_eq!(
        find(json!({ "header": ["Subject", "Éclairs"] })).await,
        ["eclair"]
    );
    assert_eq!(
        find(json!({ "header": ["Date"] })).await,
        ["apple", "reply", "zebra", "zebra2"]
    );
}

#[tokio::test]
async fn operators_combine_conditions() {
    let f = fixture().await;
    let sort = json!([{ "property": "receivedAt" }]);
    let inbox = f.mailbox(Role::Inbox);
    let cases = [
        (
            json!({ "operator": "AND", "conditions": [{ "inMailbox": inbox }, { "hasKeyword": "$seen" }] }),
            vec!["apple", "reply"],
        ),
        (
            json!({ "operator": "OR", "conditions": [{ "from": "bob" }, { "text": "zebra" }] }),
            vec!["reply", "zebra", "zebra2"],
        ),
        (
            json!({ "operator": "NOT", "conditions": [{ "text": "crust" }, { "inMailbox": inbox }] }),
            vec!["zebra", "zebra2"],
        ),
        (
            json!({ "operator": "AND", "conditions": [
                { "operator": "NOT", "conditions": [{ "body": "numbers" }] },
                { "operator": "OR", "conditions": [{ "subject": "zebra" }, { "subject": "apple" }] }
            ] }),
            vec!["apple", "reply"],
        ),
        // Several properties in one condition: all must hold.
        (json!({ "from": "bob", "subject": "apple" }), vec!["reply"]),
        (json!({ "from": "bob", "subject": "zebra" }), vec![]),
        (
            json!({ "operator": "AND", "conditions": [] }),
            vec!["eclair", "apple", "reply", "zebra", "zebra2"],
        ),
        (json!({ "operator": "OR", "conditions": [] }), vec![]),
    ];
    for (filter, want) in cases {
        assert_eq!(f.find(filter.clone(), sort.clone()).await, want, "{filter}");
    }
}

#[tokio::test]
async fn every_sort_property() {
    let f = fixture().await;
    let sort = |s: Value| {
        let f = &f;
        async move { f.find(Value::Null, s).await }
    };
    assert_eq!(
        sort(json!([{ "property": "receivedAt", "isAscending": false }])).await,
        ["zebra2", "zebra", "reply", "apple", "eclair"]
    );
    // Subject: the base subject ("Re: " stripped), ties by id.
    assert_eq!(
        sort(json!([{ "property": "subject" }])).await,
        ["apple", "reply", "eclair", "zebra", "zebra2"]
    );
    // The ASCII collation puts "É" after every ASCII letter.
    assert_eq!(
        sort(json!([{ "property": "subject", "collation": "i;ascii-casemap" }])).await,
        ["apple", "reply", "zebra", "zebra2", "eclair"]
    );
    // From: display name, else the address.
    assert_eq!(
        sort(json!([{ "property": "from" }])).await,
        ["apple", "reply", "zebra", "zebra2", "eclair"]
    );
    assert_eq!(
        sort(json!([{ "property": "to" }, { "property": "receivedAt", "isAscending": false }]))
            .await,
        ["reply", "zebra", "eclair", "apple", "zebra2"]
    );
    // sentAt: the Date header; without one, the arrival.
    assert_eq!(
        sort(json!([{ "property": "sentAt" }])).await,
        ["zebra", "apple", "reply", "zebra2", "eclair"]
    );
    let sizes = {
        let r = f
            .query(json!({ "sort": [{ "property": "size" }, { "property": "receivedAt" }] }))
            .await;
        f.names(&r["ids"])
    };
    let mut by_size = Vec::new();
    for name in ["eclair", "apple", "reply", "zebra", "zebra2"] {
        let r =
            f.w.store
                .records(f.w.alice.id, &[f.nums[name]])
                .await
                .unwrap();
        by_size.push((r[0].summary.size, r[0].summary.internal_date, name));
    }
    by_size.sort();
    assert_eq!(sizes, by_size.iter().map(|s| s.2).collect::<Vec<_>>());
    // Keyword sorts: true after false ascending.
    assert_eq!(
        sort(json!([
            { "property": "hasKeyword", "keyword": "$seen", "isAscending": false },
            { "property": "receivedAt" }
        ]))
        .await,
        ["apple", "reply", "zebra", "eclair", "zebra2"]
    );
    assert_eq!(
        sort(json!([
            { "property": "allInThreadHaveKeyword", "keyword": "$seen", "isAscending": false },
            { "property": "receivedAt", "isAscending": false }
        ]))
        .await,
        ["reply", "apple", "zebra2", "zebra", "eclair"]
    );
    assert_eq!(
        sort(json!([
            { "property": "someInThreadHaveKeyword", "keyword": "$SEEN", "isAscending": false },
            { "property": "receivedAt" }
        ]))
        .await,
        ["apple", "reply", "zebra", "zebra2", "eclair"]
    );
    // No sort: stable, by id.
    assert_eq!(
        sort(json!([])).await,
        ["apple", "reply", "zebra", "eclair", "zebra2"]
    );

    for (sort, error) in [
        (json!([{ "property": "color" }]), "unsupportedSort"),
        (
            json!([{ "property": "subject", "collation": "i;klingon" }]),
            "unsupportedSort",
        ),
        (json!([{ "property": "hasKeyword" }]), "invalidArguments"),
        (
            json!([{ "property": "subject", "keyword": "x" }]),
            "invalidArguments",
        ),
    ] {
        assert_eq!(
            f.error("Email/query", json!({ "sort": sort })).await,
            error,
            "{sort}"
        );
    }
    for (filter, error) in [
        (json!({ "color": "red" }), "unsupportedFilter"),
        (json!({ "header": ["A", "b", "c"] }), "invalidArguments"),
        (json!({ "after": "yesterday" }), "invalidArguments"),
        (json!({ "minSize": -3 }), "invalidArguments"),
        (
            json!({ "operator": "XOR", "conditions": [] }),
            "invalidArguments",
        ),
    ] {
        assert_eq!(
            f.error("Email/query", json!({ "filter": filter })).await,
            error,
            "{filter}"
        );
    }
    assert_eq!(
        f.error("Email/query", json!({ "collapse": true })).await,
        "invalidArguments"
    );
}

#[tokio::test]
async fn collapse_threads_and_windows() {
    let f = fixture().await;
    let newest = json!([{ "property": "receivedAt", "isAscending": false }]);
    let r = f
        .query(json!({ "sort": newest, "collapseThreads": true, "calculateTotal": true }))
        .await;
    assert_eq!(f.names(&r["ids"]), ["zebra2", "reply", "eclair"]);
    assert_eq!(r["total"], 3);
    assert_eq!(r["position"], 0);
    assert_eq!(r["canCalculateChanges"], true);
    let state =
        f.w.store
            .kind_state(f.w.alice.id, pochta_store::ObjectKind::Email)
            .await
            .unwrap();
    assert_eq!(r["queryState"], state.to_string());
    assert!(r.get("limit").is_none());

    // Windows over [zebra2, zebra, reply, apple, eclair].
    let window = |args: Value| {
        let f = &f;
        let mut args = args;
        args["sort"] = json!([{ "property": "receivedAt", "isAscending": false }]);
        async move {
            let r = f.query(args).await;
            (
                f.names(&r["ids"]),
                r["position"].as_u64().unwrap(),
                r.get("total").cloned(),
            )
        }
    };
    assert_eq!(
        window(json!({ "position": 1, "limit": 2 })).await,
        (vec!["zebra", "reply"], 1, None)
    );
    assert_eq!(
        window(json!({ "position": -2, "calculateTotal": true })).await,
        (vec!["apple", "eclair"], 3, Some(json!(5)))
    );
    assert_eq!(window(json!({ "position": 9 })).await, (vec![], 9, None));
    assert_eq!(
        window(json!({ "anchor": f.id("reply"), "anchorOffset": -1, "limit": 2 })).await,
        (vec!["zebra", "reply"], 1, None)
    );
    assert_eq!(
        window(json!({ "anchor": f.id("reply"), "anchorOffset": 1 })).await,
        (vec!["apple", "eclair"], 3, None)
    );
    assert_eq!(
        window(json!({ "anchor": f.id("zebra2"), "anchorOffset": -5, "limit": 1 })).await,
        (vec!["zebra2"], 0, None)
    );
    // An anchor filtered out, unknown, or not an email id.
    let inbox = f.mailbox(Role::Inbox);
    for anchor in [f.id("zebra"), "M999".to_string(), "X1".to_string()] {
        assert_eq!(
            f.error(
                "Email/query",
                json!({ "filter": { "inMailbox": inbox }, "anchor": anchor })
            )
            .await,
            "anchorNotFound"
        );
    }
}

/// Replays a queryChanges response on the old result list (RFC 8620 §5.6:
/// remove every removed id, then insert the added ones by index).
fn replay(old: &[String], r: &Value) -> Vec<String> {
    let removed: Vec<&str> = r["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let mut list: Vec<String> = old
        .iter()
        .filter(|id| !removed.contains(&id.as_str()))
        .cloned()
        .collect();
    let mut last = None;
    for a in r["added"].as_array().unwrap() {
        let index = a["index"].as_u64().unwrap() as usize;
        assert!(last < Some(index), "added not in index order: {r}");
        last = Some(index);
        list.retain(|id| id != a["id"].as_str().unwrap());
        list.insert(index.min(list.len()), a["id"].as_str().unwrap().to_string());
    }
    list
}

fn id_list(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Runs `args` as a query, applies `change`, and checks that the
/// queryChanges response replayed on the old results gives the new ones.
async fn check_query_changes<'f, F, Fut>(f: &'f Fixture, args: Value, change: F) -> Value
where
    F: FnOnce(&'f Fixture) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let before = f.query(args.clone()).await;
    change(f).await;
    let after = f.query(args.clone()).await;
    let mut qc = json!({ "sinceQueryState": before["queryState"], "calculateTotal": true });
    for key in ["filter", "sort", "collapseThreads"] {
        if let Some(v) = args.get(key) {
            qc[key] = v.clone();
        }
    }
    let mut full = json!({ "accountId": f.w.account_id() });
    for (k, v) in qc.as_object().unwrap() {
        full[k] = v.clone();
    }
    let r = f.w.call("Email/queryChanges", full).await;
    assert_eq!(r["oldQueryState"], before["queryState"]);
    assert_eq!(r["newQueryState"], after["queryState"], "{r}");
    assert_eq!(r["total"], json!(after["ids"].as_array().unwrap().len()));
    assert_eq!(
        replay(&id_list(&before["ids"]), &r),
        id_list(&after["ids"]),
        "args {args}\nresponse {r}"
    );
    r
}

async fn deliver_named(f: &mut Fixture, name: &'static str, raw: &str, date: i64, role: Role) {
    f.put(name, raw, date, role, Flags::NONE, &[]).await;
}

/// Delivers without naming the message (inside a change closure).
async fn deliver_raw(f: &Fixture, raw: &str, date: i64, role: Role) {
    let raw = crlf(raw);
    f.w.store
        .deliver(Delivery {
            meta: pochta_message::parse(&raw),
            raw,
            internal_date: date,
            targets: vec![DeliveryTarget {
                account: f.w.alice.id,
                mailbox: MailboxTarget::Id(f.mailboxes[&role]),
                flags: if role == Role::Inbox {
                    Flags::NONE
                } else {
                    Flags::SEEN
                },
                keywords: Vec::new(),
            }],
            outbound: None,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn query_changes_replay_to_the_new_results() {
    let newest = json!([{ "property": "receivedAt", "isAscending": false }]);
    let flagged_first = json!([
        { "property": "hasKeyword", "keyword": "$flagged", "isAscending": false },
        { "property": "receivedAt" }
    ]);
    let queries = |inbox: &str| {
        [
            json!({ "sort": newest }),
            json!({ "filter": { "inMailbox": inbox }, "sort": flagged_first }),
            json!({ "filter": { "text": "zebra" }, "sort": newest }),
            json!({ "sort": newest, "collapseThreads": true }),
            json!({ "filter": { "inMailbox": inbox }, "sort": newest, "collapseThreads": true }),
            json!({ "filter": { "allInThreadHaveKeyword": "$seen" }, "sort": newest }),
            json!({ "filter": { "notKeyword": "$seen" }, "sort": [{ "property": "subject" }], "collapseThreads": true }),
            json!({ "sort": [{ "property": "someInThreadHaveKeyword", "keyword": "$flagged" }, { "property": "receivedAt" }] }),
            json!({ "filter": { "operator": "NOT", "conditions": [{ "hasKeyword": "$seen" }] }, "sort": [{ "property": "from" }] }),
        ]
    };
    let count = queries("F1").len();
    for i in 0..count {
        // Nothing changed.
        let f = fixture().await;
        let q = queries(&f.mailbox(Role::Inbox))[i].clone();
        let r = check_query_changes(&f, q.clone(), |_| async {}).await;
        assert_eq!(
            (&r["removed"], &r["added"]),
            (&json!([]), &json!([])),
            "{q}"
        );

        // New mail: one in the zebra thread (the newest of it), one alone.
        check_query_changes(&f, q.clone(), |f| async move {
            deliver_raw(
                f,
                "Subject: Re: Zebra report\nReferences: <t3@x>\nMessage-ID: <t6@x>\n\nzebra again\n",
                T + 50,
                Role::Inbox,
            )
            .await;
            deliver_raw(f, "Subject: alone\n\nquiet\n", T + 5, Role::Archive).await;
        })
        .await;

        // Flag changes, also on messages in other mailboxes.
        let f = fixture().await;
        let account = f.w.alice.id;
        let (eclair, reply, zebra2) = (f.nums["eclair"], f.nums["reply"], f.nums["zebra2"]);
        check_query_changes(&f, q.clone(), |f| async move {
            let store = &f.w.store;
            store
                .update_flags(account, &[eclair], FlagChange::Add(Flags::FLAGGED, vec![]))
                .await
                .unwrap();
            store
                .update_flags(
                    account,
                    &[reply],
                    FlagChange::Remove(Flags::FLAGGED, vec![]),
                )
                .await
                .unwrap();
            store
                .update_flags(account, &[zebra2], FlagChange::Add(Flags::SEEN, vec![]))
                .await
                .unwrap();
        })
        .await;

        // A move out of the inbox and one into it.
        let f = fixture().await;
        let (apple, zebra) = (f.nums["apple"], f.nums["zebra"]);
        let (archive, inbox) = (f.mailboxes[&Role::Archive], f.mailboxes[&Role::Inbox]);
        check_query_changes(&f, q.clone(), |f| async move {
            let store = &f.w.store;
            store
                .move_messages(account, &[apple], archive)
                .await
                .unwrap();
            store.move_messages(account, &[zebra], inbox).await.unwrap();
        })
        .await;

        // Expunges, one of them a thread's newest.
        let f = fixture().await;
        let (zebra2, apple) = (f.nums["zebra2"], f.nums["apple"]);
        check_query_changes(&f, q.clone(), |f| async move {
            f.w.store.expunge(account, &[zebra2, apple]).await.unwrap();
        })
        .await;
    }
}

#[tokio::test]
async fn query_changes_details() {
    let mut f = fixture().await;
    let newest = json!([{ "property": "receivedAt", "isAscending": false }]);
    let before = f.query(json!({ "sort": newest })).await;
    let state = before["queryState"].clone();
    deliver_named(&mut f, "new1", "Subject: one\n\n1\n", T + 60, Role::Inbox).await;
    deliver_named(&mut f, "new2", "Subject: two\n\n2\n", T + 5, Role::Inbox).await;
    let call = |args: Value| {
        let f = &f;
        async move {
            let mut full = json!({ "accountId": f.w.account_id(), "sort": [{ "property": "receivedAt", "isAscending": false }] });
            for (k, v) in args.as_object().unwrap() {
                full[k] = v.clone();
            }
            f.w.call("Email/queryChanges", full).await
        }
    };
    let r = call(json!({ "sinceQueryState": state })).await;
    assert_eq!(r["removed"], json!([]));
    assert_eq!(
        r["added"],
        json!([{ "id": f.id("new1"), "index": 0 }, { "id": f.id("new2"), "index": 5 }])
    );
    assert!(r.get("total").is_none());
    // upToId: with an immutable sort, additions after the last cached id
    // are left out.
    let r = call(json!({ "sinceQueryState": state, "upToId": f.id("zebra") })).await;
    assert_eq!(r["added"], json!([{ "id": f.id("new1"), "index": 0 }]));
    // maxChanges.
    let mut full = json!({ "sinceQueryState": state, "maxChanges": 1, "sort": newest });
    full["accountId"] = json!(f.w.account_id());
    assert_eq!(
        f.w.call_error("Email/queryChanges", full).await,
        "tooManyChanges"
    );
    // A flag change outside the mailbox filtered on is no change to it;
    // one inside is reported as removed and added again.
    let inbox = f.mailbox(Role::Inbox);
    let q = json!({ "filter": { "inMailbox": inbox }, "sort": newest });
    let state = f.query(q.clone()).await["queryState"].clone();
    let account = f.w.alice.id;
    for name in ["zebra", "apple"] {
        f.w.store
            .update_flags(
                account,
                &[f.nums[name]],
                FlagChange::Add(Flags::FLAGGED, vec![]),
            )
            .await
            .unwrap();
    }
    let r = call(json!({ "sinceQueryState": state, "filter": { "inMailbox": inbox } })).await;
    assert_eq!(r["removed"], json!([f.id("apple")]));
    assert_eq!(r["added"], json!([{ "id": f.id("apple"), "index": 2 }]));

    // States that are not ours.
    for bad in ["nope", "99999999"] {
        let mut full = json!({ "sinceQueryState": bad });
        full["accountId"] = json!(f.w.account_id());
        assert_eq!(
            f.w.call_error("Email/queryChanges", full).await,
            "cannotCalculateChanges"
        );
    }
}

#[tokio::test]
async fn search_snippets() {
    let f = fixture().await;
    let snippets = |filter: Value, ids: Vec<String>| {
        let f = &f;
        async move {
            f.w.call(
                "SearchSnippet/get",
                json!({ "accountId": f.w.account_id(), "filter": filter, "emailIds": ids }),
            )
            .await
        }
    };
    let r = snippets(
        json!({ "text": "zebra" }),
        vec![f.id("zebra"), f.id("apple"), "M999".into(), "bogus".into()],
    )
    .await;
    assert_eq!(r["accountId"], f.w.account_id());
    assert_eq!(r["filter"], json!({ "text": "zebra" }));
    assert_eq!(
        r["list"],
        json!([
            {
                "emailId": f.id("zebra"),
                "subject": "<mark>Zebra</mark> report",
                "preview": "The <mark>zebra</mark> numbers &amp; more"
            },
            { "emailId": f.id("apple"), "subject": null, "preview": null }
        ])
    );
    assert_eq!(r["notFound"], json!(["bogus", "M999"]));

    // Subject terms only mark the subject, body terms only the body; NOT
    // terms mark nothing.
    let r = snippets(
        json!({ "operator": "AND", "conditions": [
            { "subject": "apple" },
            { "body": "crust" },
            { "operator": "NOT", "conditions": [{ "text": "thanks" }] }
        ]}),
        vec![f.id("reply")],
    )
    .await;
    assert_eq!(
        r["list"],
        json!([{
            "emailId": f.id("reply"),
            "subject": "Re: <mark>Apple</mark> pie recipe",
            "preview": "Thanks, the <mark>crust</mark> was great."
        }])
    );
    assert_eq!(r["notFound"], Value::Null);
    // No filter: nothing to highlight.
    let r = snippets(Value::Null, vec![f.id("reply")]).await;
    assert_eq!(r["list"][0]["subject"], Value::Null);
    assert_eq!(r["list"][0]["preview"], Value::Null);
    // Phrases, and the original case kept inside the mark.
    let r = snippets(json!({ "text": "\"BAKE the\"" }), vec![f.id("apple")]).await;
    assert_eq!(
        r["list"][0]["preview"],
        "<mark>Bake the</mark> apples slowly."
    );
    let e =
        f.w.call_error(
            "SearchSnippet/get",
            json!({ "accountId": f.w.account_id(), "filter": { "nope": 1 }, "emailIds": [] }),
        )
        .await;
    assert_eq!(e, "unsupportedFilter");
    let e =
        f.w.call_error(
            "SearchSnippet/get",
            json!({ "accountId": f.w.account_id(), "filter": null }),
        )
        .await;
    assert_eq!(e, "invalidArguments");
}

/// Queries that need the light metadata read it from the service's cache
/// (`pochta_jmap::light`), which must follow every change: arrivals, flag
/// changes, moves and expunges, in a mailbox scope and the account scope;
/// concurrent queries agree; the number of cached scopes stays bounded.
#[tokio::test]
async fn light_cache_follows_changes() {
    let mut f = fixture().await;
    let inbox = f.mailbox(Role::Inbox);
    let sort = json!([{ "property": "receivedAt" }]);
    let in_inbox = json!({ "inMailbox": inbox, "subject": "apple" });
    let anywhere = json!({ "subject": "apple" });
    let flagged = json!({ "inMailbox": inbox, "subject": "apple", "hasKeyword": "$flagged" });
    assert_eq!(
        f.find(in_inbox.clone(), sort.clone()).await,
        ["apple", "reply"]
    );
    assert_eq!(
        f.find(anywhere.clone(), sort.clone()).await,
        ["apple", "reply"]
    );
    assert_eq!(f.find(flagged.clone(), sort.clone()).await, ["reply"]);
    assert_eq!(f.w.jmap.light.scopes(), 2);

    // An arrival.
    f.put(
        "crumble",
        "From: Bob <bob@b.example>\nSubject: Apple crumble\n\nYes.\n",
        T + 50,
        Role::Inbox,
        Flags::NONE,
        &[],
    )
    .await;
    assert_eq!(
        f.find(in_inbox.clone(), sort.clone()).await,
        ["apple", "reply", "crumble"]
    );
    assert_eq!(
        f.find(anywhere.clone(), sort.clone()).await,
        ["apple", "reply", "crumble"]
    );

    // A flag change.
    let store = f.w.store.clone();
    let account = f.w.alice.id;
    store
        .update_flags(
            account,
            &[f.nums["apple"]],
            FlagChange::Add(Flags::FLAGGED, Vec::new()),
        )
        .await
        .unwrap();
    assert_eq!(
        f.find(flagged.clone(), sort.clone()).await,
        ["apple", "reply"]
    );

    // A move out of the inbox: gone from its scope, still in the account's.
    store
        .move_messages(account, &[f.nums["reply"]], f.mailboxes[&Role::Archive])
        .await
        .unwrap();
    assert_eq!(
        f.find(in_inbox.clone(), sort.clone()).await,
        ["apple", "crumble"]
    );
    assert_eq!(
        f.find(anywhere.clone(), sort.clone()).await,
        ["apple", "reply", "crumble"]
    );

    // An expunge.
    store.expunge(account, &[f.nums["apple"]]).await.unwrap();
    assert_eq!(f.find(in_inbox.clone(), sort.clone()).await, ["crumble"]);
    assert_eq!(
        f.find(anywhere.clone(), sort.clone()).await,
        ["reply", "crumble"]
    );

    // Concurrent queries on one scope agree.
    let (a, b, c) = tokio::join!(
        f.find(anywhere.clone(), sort.clone()),
        f.find(anywhere.clone(), sort.clone()),
        f.find(in_inbox.clone(), sort.clone()),
    );
    assert_eq!(a, ["reply", "crumble"]);
    assert_eq!(a, b);
    assert_eq!(c, ["crumble"]);

    // Every mailbox queried: the cache keeps at most MAX_SCOPES of them.
    for i in 0..4 {
        store
            .create_mailbox(account, None, &format!("extra {i}"), None)
            .await
            .unwrap();
    }
    for mailbox in store.mailboxes(account).await.unwrap() {
        let id = pochta_jmap::ids::mailbox(mailbox.id).to_string();
        f.find(json!({ "inMailbox": id, "subject": "x" }), sort.clone())
            .await;
    }
    assert_eq!(f.w.jmap.light.scopes(), pochta_jmap::light::MAX_SCOPES);
}
