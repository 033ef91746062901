//! SORT and THREAD over the thread fixtures, compared with Dovecot 2.3.19's
//! answers for the same messages (user2 in the reference stack).

mod common;

use common::{Fixture, threads, views};
use pochta_proto_imap::sort::{casemap, sort};
use pochta_proto_imap::thread::{ThreadNode, is_reply_or_forward, thread, write_threads};
use pochta_proto_imap::types::{SortCriterion, SortKey, ThreadAlgorithm};
use pochta_proto_imap::view::MessageView;

fn c(key: SortKey) -> SortCriterion {
    SortCriterion {
        reverse: false,
        key,
    }
}

fn r(key: SortKey) -> SortCriterion {
    SortCriterion { reverse: true, key }
}

fn sorted(messages: &[MessageView<'_>], criteria: &[SortCriterion]) -> String {
    sort(messages, criteria)
        .iter()
        .map(|&i| messages[i].msn.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn sort_every_key_like_dovecot() {
    let fixtures = threads();
    let v = views(&fixtures);
    let cases: Vec<(Vec<SortCriterion>, &str)> = vec![
        (
            vec![c(SortKey::Arrival)],
            "18 17 16 15 14 13 12 11 10 9 8 7 6 5 4 3 2 1",
        ),
        // 15 has no Date: its internal date stands in.
        (
            vec![c(SortKey::Date)],
            "7 1 3 2 14 15 4 5 6 8 9 10 11 12 13 16 17 18",
        ),
        (
            vec![r(SortKey::Date)],
            "18 17 16 13 12 11 10 9 8 6 5 4 15 14 2 3 1 7",
        ),
        // 9 and 17 are both "ivan": ties by sequence number.
        (
            vec![c(SortKey::From)],
            "1 2 3 4 5 6 7 8 9 17 10 11 12 13 14 15 16 18",
        ),
        // 18 is "To: Team: anna@example.ru;": sorts as the group name.
        (
            vec![c(SortKey::To)],
            "2 3 7 8 14 15 16 9 4 17 5 6 13 18 11 12 1 10",
        ),
        (
            vec![c(SortKey::Cc)],
            "2 3 5 6 7 8 9 10 11 12 13 14 15 16 17 18 4 1",
        ),
        (
            vec![c(SortKey::Size)],
            "7 1 2 3 8 5 6 11 12 10 4 15 9 13 18 16 14 17",
        ),
        // "Äpfel" sorts among the A's.
        (
            vec![c(SortKey::Subject)],
            "17 8 9 10 5 6 13 1 2 3 4 7 14 15 16 11 12 18",
        ),
        (
            vec![c(SortKey::DisplayFrom)],
            "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 18 17",
        ),
        (
            vec![c(SortKey::DisplayTo)],
            "2 3 7 8 14 15 16 4 17 18 5 6 13 11 12 1 10 9",
        ),
        (
            vec![c(SortKey::Subject), r(SortKey::Date)],
            "17 8 9 10 13 6 5 4 14 2 3 1 7 16 15 18 12 11",
        ),
        (
            vec![r(SortKey::Subject), c(SortKey::Arrival)],
            "18 12 11 16 15 14 7 4 3 2 1 13 6 5 10 9 8 17",
        ),
        // REVERSE does not reverse the final sequence-number tie-break (9, 17).
        (
            vec![c(SortKey::Cc), r(SortKey::From)],
            "18 16 15 14 13 12 11 10 9 17 8 7 6 5 3 2 4 1",
        ),
        (vec![], "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18"),
        (
            vec![r(SortKey::Size), c(SortKey::Arrival)],
            "17 14 16 18 13 9 15 4 10 12 11 6 5 8 3 2 1 7",
        ),
    ];
    for (criteria, expected) in cases {
        assert_eq!(sorted(&v, &criteria), expected, "{criteria:?}");
    }
}

#[test]
fn sort_subset_and_ties() {
    let fixtures = threads();
    let v = views(&fixtures);
    // A subset (what a SORT's search matched), in any order.
    let subset = vec![v[13], v[0], v[6], v[2]];
    assert_eq!(sorted(&subset, &[c(SortKey::Subject)]), "1 3 7 14");
    assert_eq!(sorted(&subset, &[r(SortKey::Subject)]), "1 3 7 14");
    assert_eq!(sorted(&subset, &[c(SortKey::Date)]), "7 1 3 14");
    assert!(sort(&[], &[c(SortKey::Date)]).is_empty());
}

#[test]
fn casemap_collation() {
    assert_eq!(casemap("abc_Z"), "ABC_Z");
    assert_eq!(casemap("äpfel"), "AÄPFEL");
    assert!(casemap("Apfel") < casemap("Äpfel"));
    assert!(casemap("Äpfel") < casemap("Birne"));
    assert_eq!(casemap("жук"), "ЖУК");
}

fn threaded(fixtures: &[Fixture], algorithm: ThreadAlgorithm, uid: bool) -> String {
    let v = views(fixtures);
    let mut out = Vec::new();
    write_threads(&mut out, &thread(&v, algorithm), uid);
    String::from_utf8(out).expect("thread lists are ASCII")
}

#[test]
fn thread_references_like_dovecot() {
    let fixtures = threads();
    // 7 and 1 share a subject without Re: (a dummy joins them); 2, 3, 14 reply
    // to 1 (3 only by In-Reply-To; 14 through two missing messages), 4 to 2;
    // 5 and 6 reply to a missing message, 13 joins them by subject; 8
    // duplicates 1's Message-ID; 9 and 10 reference each other; 11 and 18 are
    // reply/forward of 12 by subject; 15 references itself.
    assert_eq!(
        threaded(&fixtures, ThreadAlgorithm::References, false),
        "((7)(1 (3)(2 4)(14)))(15 16)((5)(6)(13))(8)(10 9)(12 (11)(18))(17)"
    );
    let first_ten: Vec<Fixture> = threads().into_iter().take(10).collect();
    assert_eq!(
        threaded(&first_ten, ThreadAlgorithm::References, false),
        "((7)(1 (3)(2 4)))((5)(6))(8)(10 9)"
    );
}

#[test]
fn thread_ordered_subject_like_dovecot() {
    let fixtures = threads();
    assert_eq!(
        threaded(&fixtures, ThreadAlgorithm::OrderedSubject, false),
        "(7 (1)(3)(2)(14)(4))(15 16)(5 (6)(13))(8)(9)(10)(11 (12)(18))(17)"
    );
}

fn message(subject: &str, id: Option<&str>, refs: &str, date: Option<&str>) -> Fixture {
    let mut raw = String::new();
    if let Some(date) = date {
        raw.push_str(&format!("Date: {date}\r\n"));
    }
    raw.push_str(&format!("From: a@example.com\r\nSubject: {subject}\r\n"));
    if let Some(id) = id {
        raw.push_str(&format!("Message-ID: <{id}>\r\n"));
    }
    if !refs.is_empty() {
        raw.push_str(&format!("References: {refs}\r\n"));
    }
    raw.push_str("\r\nbody\r\n");
    Fixture::from_bytes(raw.into_bytes())
}

/// The example of RFC 5256 §5 cannot be rebuilt (its messages are not given);
/// these cases exercise each step of the algorithm on its own. Every set
/// except the undated one was also delivered to Dovecot, which threads it
/// the same way.
#[test]
fn thread_references_steps() {
    let d = |day: u32| Some(format!("{day} Jan 2026 10:00:00 +0000"));
    let d = |day| d(day);
    // A chain through a missing middle message: the dummy is pruned and 3
    // hangs under 1.
    let set = vec![
        message("a", Some("1@x"), "", d(1).as_deref()),
        message("Re: a", Some("3@x"), "<1@x> <2@x>", d(3).as_deref()),
    ];
    assert_eq!(threaded(&set, ThreadAlgorithm::References, false), "(1 2)");

    // Children are ordered by date, not by arrival.
    let set = vec![
        message("a", Some("1@x"), "", d(1).as_deref()),
        message("Re: a", Some("2@x"), "<1@x>", d(5).as_deref()),
        message("Re: a", Some("3@x"), "<1@x>", d(4).as_deref()),
        message("Re: a", Some("4@x"), "<1@x> <3@x>", d(6).as_deref()),
    ];
    assert_eq!(
        threaded(&set, ThreadAlgorithm::References, false),
        "(1 (3 4)(2))"
    );
    // The UID form uses UIDs (here equal to MSNs, so compare a shifted view).
    let mut v = views(&set);
    for m in &mut v {
        m.uid += 100;
    }
    let mut out = Vec::new();
    write_threads(&mut out, &thread(&v, ThreadAlgorithm::References), true);
    assert_eq!(String::from_utf8(out).unwrap(), "(101 (103 104)(102))");

    // A later message's references do not move an existing link, and a
    // message's own References (step 1.C) override a guessed parent.
    let set = vec![
        message("x", Some("b@x"), "<a@x>", d(2).as_deref()),
        message("y", Some("c@x"), "<z@x> <b@x>", d(3).as_deref()),
    ];
    // b's parent stays the (missing) a; c is b's child; the dummy a with one
    // child is pruned at the top.
    assert_eq!(threaded(&set, ThreadAlgorithm::References, false), "(1 2)");

    // Reference loops: a -> b -> a. The second message's parent would close the
    // loop, so it stays a root.
    let set = vec![
        message("p", Some("a@x"), "<b@x>", d(1).as_deref()),
        message("q", Some("b@x"), "<a@x>", d(2).as_deref()),
    ];
    assert_eq!(threaded(&set, ThreadAlgorithm::References, false), "(2 1)");

    // Longer loop through references only.
    let set = vec![
        message("p", Some("a@x"), "<b@x> <c@x> <a@x> <b@x>", d(1).as_deref()),
        message("q", Some("c@x"), "<a@x> <b@x>", d(2).as_deref()),
    ];
    // b ends up a dummy parent of both.
    assert_eq!(
        threaded(&set, ThreadAlgorithm::References, false),
        "((1)(2))"
    );

    // Duplicate Message-IDs: the second is a message of its own; replies go to
    // the first.
    let set = vec![
        message("one", Some("dup@x"), "", d(1).as_deref()),
        message("two", Some("dup@x"), "", d(2).as_deref()),
        message("Re: one", Some("r@x"), "<dup@x>", d(3).as_deref()),
    ];
    assert_eq!(
        threaded(&set, ThreadAlgorithm::References, false),
        "(1 3)(2)"
    );

    // No Message-ID at all, no references: each alone (different subjects).
    let set = vec![
        message("one", None, "", d(2).as_deref()),
        message("two", None, "", d(1).as_deref()),
    ];
    assert_eq!(threaded(&set, ThreadAlgorithm::References, false), "(2)(1)");

    // Subject merging (step 6): a reply without references joins the
    // original; two replies become siblings under a dummy; empty subjects are
    // never merged.
    let set = vec![
        message("Re: topic", Some("1@x"), "", d(1).as_deref()),
        message("topic", Some("2@x"), "", d(2).as_deref()),
        message("Re: other", Some("3@x"), "", d(3).as_deref()),
        message("RE: Other", Some("4@x"), "", d(4).as_deref()),
        message("", Some("5@x"), "", d(5).as_deref()),
        message("", Some("6@x"), "", d(6).as_deref()),
    ];
    assert_eq!(
        threaded(&set, ThreadAlgorithm::References, false),
        "(2 1)((3)(4))(5)(6)"
    );

    // Messages without a Date sort by their internal date.
    let mut set = vec![
        message("k", Some("1@x"), "", None),
        message("l", Some("2@x"), "", d(1).as_deref()),
    ];
    set[0].internal_date = 0;
    assert_eq!(threaded(&set, ThreadAlgorithm::References, false), "(1)(2)");
    assert_eq!(threaded(&[], ThreadAlgorithm::References, false), "");
}

#[test]
fn deep_thread_does_not_overflow() {
    // A 20,000-message reply chain: threading, writing and dropping the tree
    // must not recurse.
    let n = 20_000;
    let set: Vec<Fixture> = (0..n)
        .map(|i| {
            let refs = if i == 0 {
                String::new()
            } else {
                format!("<{}@x>", i - 1)
            };
            message("chain", Some(&format!("{i}@x")), &refs, None)
        })
        .collect();
    let v = views(&set);
    let tree = thread(&v, ThreadAlgorithm::References);
    let mut out = Vec::new();
    write_threads(&mut out, &tree, false);
    let expected = format!(
        "({})",
        (1..=n).map(|i| i.to_string()).collect::<Vec<_>>().join(" ")
    );
    assert_eq!(String::from_utf8(out).unwrap(), expected);
    drop(tree);
}

#[test]
fn thread_nodes_and_writer() {
    let leaf = |n: u32| ThreadNode {
        message: Some(pochta_proto_imap::thread::ThreadMessage {
            index: n as usize,
            msn: n,
            uid: n * 10,
        }),
        children: Vec::new(),
    };
    let mut root = leaf(3);
    let mut six = leaf(6);
    six.children.push(leaf(23));
    let mut four = leaf(4);
    four.children = vec![six.clone(), leaf(44)];
    root.children = vec![four];
    let dummy = ThreadNode {
        message: None,
        children: vec![leaf(1), leaf(2)],
    };
    let mut out = Vec::new();
    write_threads(&mut out, &[root.clone(), dummy, leaf(9)], false);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "(3 4 (6 23)(44))((1)(2))(9)"
    );
    let mut out = Vec::new();
    write_threads(&mut out, &[root], true);
    assert_eq!(String::from_utf8(out).unwrap(), "(30 40 (60 230)(440))");
}

#[test]
fn reply_or_forward_subjects() {
    for s in [
        "Re: x",
        "RE: x",
        "Fwd: x",
        "fw: x",
        "Re[2]: x",
        "[list] Re: x",
        "x (fwd)",
        "[Fwd: x]",
        "re:x",
    ] {
        assert!(is_reply_or_forward(s), "{s}");
    }
    for s in ["x", "[list] x", "Reply: x", "Refund", "", "Re x"] {
        assert!(!is_reply_or_forward(s), "{s}");
    }
}

/// The response examples of RFC 5256 §4.
#[test]
fn rfc5256_thread_syntax_examples() {
    fn node(n: u32, children: Vec<ThreadNode>) -> ThreadNode {
        ThreadNode {
            message: Some(pochta_proto_imap::thread::ThreadMessage {
                index: 0,
                msn: n,
                uid: n,
            }),
            children,
        }
    }
    // (2)(3 6 (4 23)(44 7 96))
    let threads = vec![
        node(2, vec![]),
        node(
            3,
            vec![node(
                6,
                vec![
                    node(4, vec![node(23, vec![])]),
                    node(44, vec![node(7, vec![node(96, vec![])])]),
                ],
            )],
        ),
    ];
    let mut out = Vec::new();
    write_threads(&mut out, &threads, false);
    assert_eq!(out, b"(2)(3 6 (4 23)(44 7 96))");
    // ((3)(5)): a dummy parent of 3 and 5.
    let threads = vec![ThreadNode {
        message: None,
        children: vec![node(3, vec![]), node(5, vec![])],
    }];
    let mut out = Vec::new();
    write_threads(&mut out, &threads, false);
    assert_eq!(out, b"((3)(5))");
}
