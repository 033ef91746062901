//! THREAD and SORT (RFC 5256) over a mailbox the input makes up. The
//! `imap_session` target runs them on its three fixed messages only, which
//! leaves most of REFERENCES (dummies, duplicate Message-IDs, loops in
//! References, subject merging of thread roots) and any sort of more than a
//! handful of messages unreached; here the input is the messages.
//!
//! Input: `[flags, c1, c2, c3, message, 0, message, 0, ...]`: up to 300
//! messages (headers are enough) separated by NUL octets. Flags: bit 0 the
//! raw bytes are loaded, bits 1–2 how many of `c1..c3` are sort criteria
//! (low nibble the key, bit 4 REVERSE), bits 3–5 how internal dates repeat.
//!
//! Invariants: no panic and no quadratic blow-up beyond the timeout; THREAD
//! lists every message exactly once, in valid `thread-list` syntax, with
//! ORDEREDSUBJECT threads one level deep and one per base subject; SORT is a
//! permutation; and neither result depends on the order the messages are
//! handed over in (SEARCH gives them in sequence order, but both commands
//! define their result by the messages alone: RFC 5256 breaks every tie by
//! sequence number).

#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use pochta_fuzz::{check_imap_responses, thread_members};
use pochta_message::MessageMeta;
use pochta_proto_imap::sort::sort;
use pochta_proto_imap::thread::{ThreadNode, thread, write_threads};
use pochta_proto_imap::types::{SortCriterion, SortKey, ThreadAlgorithm};
use pochta_proto_imap::view::MessageView;

const MAX_MESSAGES: usize = 300;

const KEYS: [SortKey; 9] = [
    SortKey::Arrival,
    SortKey::Cc,
    SortKey::Date,
    SortKey::From,
    SortKey::Size,
    SortKey::Subject,
    SortKey::To,
    SortKey::DisplayFrom,
    SortKey::DisplayTo,
];

fn thread_text(threads: &[ThreadNode], uid: bool) -> Vec<u8> {
    let mut out = b"* THREAD ".to_vec();
    write_threads(&mut out, threads, uid);
    out.extend_from_slice(b"\r\n");
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((head, body)) = data.split_at_checked(4) else {
        return;
    };
    let flags = head[0];
    let criteria: Vec<SortCriterion> = head[1..]
        .iter()
        .take(usize::from((flags >> 1) & 3))
        .map(|&c| SortCriterion {
            reverse: c & 0x10 != 0,
            key: KEYS[usize::from(c & 0x0f) % KEYS.len()],
        })
        .collect();
    let metas: Vec<(&[u8], MessageMeta)> = body
        .split(|&b| b == 0)
        .take(MAX_MESSAGES)
        .map(|raw| (raw, pochta_message::parse(raw)))
        .collect();
    let period = i64::from((flags >> 3) & 7) + 1;
    let views: Vec<MessageView<'_>> = metas
        .iter()
        .enumerate()
        .map(|(i, (raw, meta))| {
            let n = u32::try_from(i).unwrap_or(u32::MAX - 1) + 1;
            let mut v = MessageView::new(n, n * 3, meta);
            // Internal dates that repeat and go backwards, so that messages
            // without a Date header tie and sort against sequence order.
            v.internal_date = 1_000_000 - (i as i64 % period) * 3600;
            if flags & 1 != 0 {
                v.raw = Some(raw);
            }
            v
        })
        .collect();
    let reversed: Vec<MessageView<'_>> = views.iter().rev().copied().collect();
    let mut msns: Vec<u32> = views.iter().map(|v| v.msn).collect();
    msns.sort_unstable();

    for algorithm in [ThreadAlgorithm::OrderedSubject, ThreadAlgorithm::References] {
        let threads = thread(&views, algorithm);
        let found = thread_members(&threads);
        let mut seen: Vec<u32> = found.iter().map(|&(msn, _, _)| msn).collect();
        seen.sort_unstable();
        assert_eq!(seen, msns, "{algorithm:?} lost or repeated messages");
        let text = thread_text(&threads, false);
        check_imap_responses(&text, false);
        check_imap_responses(&thread_text(&threads, true), false);
        if algorithm == ThreadAlgorithm::OrderedSubject {
            let mut thread_of: HashMap<&str, usize> = HashMap::new();
            for &(msn, depth, top) in &found {
                assert!(depth <= 1, "ORDEREDSUBJECT nested message {msn}");
                let subject = metas
                    .get(msn as usize - 1)
                    .map_or("", |(_, m)| m.base_subject.as_str());
                let first = *thread_of.entry(subject).or_insert(top);
                assert_eq!(first, top, "ORDEREDSUBJECT split base subject {subject:?}");
            }
        }
        let again = thread(&reversed, algorithm);
        assert_eq!(
            String::from_utf8_lossy(&thread_text(&again, false)),
            String::from_utf8_lossy(&text),
            "{algorithm:?} depends on the order of its input"
        );
    }

    let order = sort(&views, &criteria);
    let mut check = order.clone();
    check.sort_unstable();
    assert_eq!(
        check,
        (0..views.len()).collect::<Vec<_>>(),
        "SORT is not a permutation"
    );
    let by_msn = |order: &[usize], list: &[MessageView<'_>]| -> Vec<u32> {
        order
            .iter()
            .filter_map(|&i| list.get(i).map(|v| v.msn))
            .collect()
    };
    assert_eq!(
        by_msn(&sort(&reversed, &criteria), &reversed),
        by_msn(&order, &views),
        "SORT {criteria:?} depends on the order of its input"
    );
});
