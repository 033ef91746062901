#![allow(clippy::unwrap_used)]
//! The /query window (RFC 8620 §5.5).

use pochta_jmap_proto::{MethodErrorKind, QueryWindow, query_window};

const IDS: [&str; 10] = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];

fn window(
    position: i64,
    anchor: Option<&str>,
    offset: i64,
    limit: Option<u64>,
    max: Option<u64>,
) -> (usize, Vec<&'static str>, Option<u64>) {
    let anchor = anchor.map(|a| IDS.iter().find(|x| **x == a).copied().unwrap_or(a));
    let w: QueryWindow = query_window(&IDS, position, anchor.as_ref(), offset, limit, max).unwrap();
    assert_eq!(w.total, 10);
    (w.position, w.slice(&IDS).to_vec(), w.limit)
}

#[test]
fn positive_position() {
    assert_eq!(window(0, None, 0, None, None), (0, IDS.to_vec(), None));
    assert_eq!(window(3, None, 0, Some(2), None), (3, vec!["d", "e"], None));
    assert_eq!(window(8, None, 0, Some(5), None), (8, vec!["i", "j"], None));
}

#[test]
fn position_at_or_past_the_end_is_empty_not_an_error() {
    assert_eq!(window(10, None, 0, Some(5), None), (10, vec![], None));
    assert_eq!(window(25, None, 0, None, None), (25, vec![], None));
    assert_eq!(
        window(i64::MAX, None, 0, Some(u64::MAX), None),
        (usize::try_from(i64::MAX).unwrap(), vec![], None)
    );
}

#[test]
fn negative_position_counts_from_the_end_and_clamps() {
    assert_eq!(
        window(-3, None, 0, None, None),
        (7, vec!["h", "i", "j"], None)
    );
    assert_eq!(
        window(-3, None, 0, Some(2), None),
        (7, vec!["h", "i"], None)
    );
    assert_eq!(window(-10, None, 0, Some(1), None), (0, vec!["a"], None));
    assert_eq!(window(-11, None, 0, Some(1), None), (0, vec!["a"], None));
    assert_eq!(
        window(i64::MIN, None, 0, Some(1), None),
        (0, vec!["a"], None)
    );
}

#[test]
fn anchor_ignores_position() {
    assert_eq!(
        window(7, Some("c"), 0, Some(2), None),
        (2, vec!["c", "d"], None)
    );
}

#[test]
fn anchor_offset_after() {
    assert_eq!(
        window(0, Some("c"), 2, Some(2), None),
        (4, vec!["e", "f"], None)
    );
    assert_eq!(window(0, Some("j"), 1, Some(2), None), (10, vec![], None));
}

#[test]
fn anchor_offset_before_and_clamped() {
    assert_eq!(
        window(0, Some("e"), -1, Some(3), None),
        (3, vec!["d", "e", "f"], None)
    );
    assert_eq!(
        window(0, Some("b"), -5, Some(3), None),
        (0, vec!["a", "b", "c"], None)
    );
}

#[test]
fn anchor_offset_ignored_without_anchor() {
    assert_eq!(window(1, None, 5, Some(1), None), (1, vec!["b"], None));
}

#[test]
fn anchor_not_found() {
    let err = query_window(&IDS, 0, Some(&"zz"), 0, None, None).unwrap_err();
    assert_eq!(err.kind, MethodErrorKind::AnchorNotFound);
}

#[test]
fn server_limit_clamps_and_is_reported() {
    // A larger limit is clamped and the limit returned.
    assert_eq!(
        window(0, None, 0, Some(50), Some(4)),
        (0, vec!["a", "b", "c", "d"], Some(4))
    );
    // No limit means the server's.
    assert_eq!(
        window(2, None, 0, None, Some(3)),
        (2, vec!["c", "d", "e"], Some(3))
    );
    // A limit within the maximum is used as given, and not reported.
    assert_eq!(
        window(0, None, 0, Some(2), Some(4)),
        (0, vec!["a", "b"], None)
    );
    assert_eq!(
        window(0, None, 0, Some(4), Some(4)),
        (0, vec!["a", "b", "c", "d"], None)
    );
    assert_eq!(window(0, None, 0, Some(0), Some(4)), (0, vec![], None));
}

#[test]
fn empty_results() {
    let none: [&str; 0] = [];
    let w = query_window(&none, -5, None, 0, None, None).unwrap();
    assert_eq!((w.position, w.range.clone(), w.total), (0, 0..0, 0));
    assert!(w.slice(&none).is_empty());
}
