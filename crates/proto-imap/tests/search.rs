//! SEARCH over the fixture mailbox, compared with Dovecot 2.3.19's answers
//! to the same commands (user1 in the reference stack, same flags).

mod common;

use common::{Fixture, load, mailbox};
use pochta_proto_imap::search::{Matcher, SearchContext, charset_to_utf8, matches, needs_raw};
use pochta_proto_imap::types::{Date, SearchKey, SeqNum, SequenceSet};
use pochta_proto_imap::view::MessageView;

use SearchKey as K;

fn s(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

fn date(day: u8, month: u8, year: u16) -> Date {
    Date { year, month, day }
}

fn set(ranges: &[(SeqNum, SeqNum)]) -> SequenceSet {
    SequenceSet::Ranges(ranges.to_vec())
}

use SeqNum::{Star, Value as N};

fn ctx(max: u32) -> SearchContext<'static> {
    SearchContext {
        max_msn: max,
        max_uid: max,
        saved: None,
        now: 0,
    }
}

fn search(views: &[MessageView<'_>], key: &SearchKey, ctx: &SearchContext<'_>) -> String {
    let matcher = Matcher::new(key);
    let found: Vec<String> = views
        .iter()
        .filter(|m| matcher.matches(m, ctx))
        .map(|m| m.msn.to_string())
        .collect();
    // The one-shot form agrees.
    let again: Vec<String> = views
        .iter()
        .filter(|m| matches(key, m, ctx))
        .map(|m| m.msn.to_string())
        .collect();
    assert_eq!(found, again);
    found.join(" ")
}

#[test]
fn search_like_dovecot() {
    let mb = mailbox();
    let v = common::views(&mb);
    let all = "1 2 3 4 5 6 7 8 9";
    let cases: Vec<(SearchKey, &str)> = vec![
        (K::From(s("alice")), "1"),
        (K::From(s("Alice Example")), "1"),
        (K::From(s("example.org")), "1"),
        (K::From(s("juergen")), "2"),
        (K::From(s("Müller")), "2"),
        (K::From(s("Иван")), "5"),
        // Name and address are matched separately.
        (K::From(s("e <alice")), ""),
        (K::From(s("")), "1 2 3 4 5 7 8 9"),
        (K::To(s("carol")), "1"),
        // Group names count ("To: undisclosed-recipients:;").
        (K::To(s("undisclosed")), "5"),
        (K::To(s("")), "1 2 3 4 5"),
        (K::Cc(s("anna")), "5"),
        (K::Cc(s("анна")), "5"),
        (K::Cc(s("team")), "5"),
        (K::Bcc(s("audit")), "3"),
        (K::Subject(s("lunch")), "1"),
        (K::Subject(s("grüße")), "2"),
        (K::Subject(s("ОТЧЁТ")), "5"),
        // An empty string matches every message that has a Subject.
        (K::Subject(s("")), "1 2 3 4 5 7 8 9"),
        (K::Header("X-Folded".into(), s("second")), "1"),
        (K::Header("X-Folded".into(), s("part second")), "1"),
        (K::Header("X-Folded".into(), s("")), "1"),
        (K::Header("Message-ID".into(), s("simple-1")), "1"),
        (K::Header("Content-Type".into(), s("multipart")), "2 3 4 7"),
        (K::Header("Subject".into(), s("Grüße")), "2"),
        (K::Header("X-NOTE".into(), s("nothing")), "6"),
        (K::Body(s("free for lunch")), "1"),
        // Quoted-printable UTF-8, quoted-printable Latin-1, 8-bit KOI8-R.
        (K::Body(s("schöne")), "2"),
        (K::Body(s("café")), "3"),
        (K::Body(s("тело")), "5"),
        (K::Body(s("original")), "4"),
        // Part headers are not body text; TEXT includes them.
        (K::Body(s("report.pdf")), ""),
        (K::Text(s("report.pdf")), "3"),
        (K::Text(s("alice")), "1"),
        (K::Body(s("alice")), "1"),
        // Dovecot also finds 2, whose HTML part has an <html> tag: we search
        // the text of HTML parts, not their markup.
        (K::Body(s("html")), "4"),
        (K::Body(s("Date: Mon")), ""),
        (K::Text(s("Date: Mon")), "4"),
        // Non-text parts are not searched.
        (K::Body(s("iVBOR")), ""),
        (K::Text(s("us-ascii")), "1 4 7"),
        (K::Text(s("X-Note")), "6"),
        (K::Body(s("")), all),
        (K::Larger(700), "2 3 4"),
        (K::Smaller(100), "6 9"),
        // Without a Date header a message counts as sent on 1 Jan 1970.
        (K::SentBefore(date(5, 3, 2026)), "1 2 6 7 8 9"),
        // 5 was sent 7 Mar 23:30 -0300, 8 Mar in UTC: the header's own date counts.
        (K::SentOn(date(7, 3, 2026)), "5"),
        (K::SentOn(date(8, 3, 2026)), ""),
        (K::SentSince(date(6, 3, 2026)), "4 5"),
        (K::SentBefore(date(1, 1, 2000)), "6 7 8 9"),
        (K::Keyword("junk".into()), "1"),
        (K::Keyword("$forwarded".into()), "1"),
        (K::Unkeyword("junk".into()), "2 3 4 5 6 7 8 9"),
        (K::Answered, "1"),
        (K::Unseen, "1 3 4 5 7 8 9"),
        (K::Not(Box::new(K::From(s("alice")))), "2 3 4 5 6 7 8 9"),
        (
            K::Or(Box::new(K::From(s("alice"))), Box::new(K::To(s("team")))),
            "1 2",
        ),
        (K::SequenceSet(set(&[(N(2), N(4))])), "2 3 4"),
        (K::Uid(set(&[(N(3), Star)])), "3 4 5 6 7 8 9"),
        (K::SequenceSet(set(&[(Star, Star)])), "9"),
        // A message number past the end names nothing; a UID range with *
        // always includes the last message.
        (K::SequenceSet(set(&[(N(20), Star)])), ""),
        (K::Uid(set(&[(N(20), Star)])), "9"),
        (K::New, ""),
        (K::Old, all),
        (K::Recent, ""),
        (
            K::And(vec![K::Subject(s("binary")), K::Body(s("text"))]),
            "7",
        ),
        (
            K::And(vec![
                K::Or(
                    Box::new(K::Subject(s("binary"))),
                    Box::new(K::Subject(s("image"))),
                ),
                K::Not(Box::new(K::Larger(200))),
            ]),
            "8",
        ),
        (K::All, all),
        (K::And(vec![]), all),
    ];
    for (key, expected) in cases {
        assert_eq!(search(&v, &key, &ctx(9)), expected, "{key:?}");
    }
}

#[test]
fn flags_and_keywords() {
    let mut f = load("simple.eml");
    let check = |f: &Fixture, key: SearchKey| matches(&key, &f.view(1), &ctx(1));
    for key in [
        K::Seen,
        K::Answered,
        K::Flagged,
        K::Deleted,
        K::Draft,
        K::Recent,
        K::New,
    ] {
        assert!(!check(&f, key.clone()), "{key:?}");
    }
    for key in [
        K::Unseen,
        K::Unanswered,
        K::Unflagged,
        K::Undeleted,
        K::Undraft,
        K::Old,
    ] {
        assert!(check(&f, key.clone()), "{key:?}");
    }
    f.flags.recent = true;
    assert!(check(&f, K::New) && check(&f, K::Recent) && !check(&f, K::Old));
    f.flags.seen = true;
    assert!(!check(&f, K::New));
    f.flags.deleted = true;
    f.flags.draft = true;
    f.flags.flagged = true;
    for key in [K::Seen, K::Flagged, K::Deleted, K::Draft] {
        assert!(check(&f, key.clone()), "{key:?}");
    }
    assert!(!check(&f, K::Keyword("$Junk".into())));
    f.keywords = vec!["$Junk".into()];
    assert!(check(&f, K::Keyword("$JUNK".into())));
    assert!(!check(&f, K::Unkeyword("$junk".into())));
}

#[test]
fn internal_dates_ids_and_modseq() {
    let mut f = load("simple.eml");
    // 2026-03-03 23:30:00 UTC.
    f.internal_date = 1_772_580_600;
    let v = f.view(5);
    let yes = |key: SearchKey| assert!(matches(&key, &v, &ctx(5)), "{key:?}");
    let no = |key: SearchKey| assert!(!matches(&key, &v, &ctx(5)), "{key:?}");
    yes(K::On(date(3, 3, 2026)));
    no(K::On(date(4, 3, 2026)));
    yes(K::Before(date(4, 3, 2026)));
    no(K::Before(date(3, 3, 2026)));
    yes(K::Since(date(3, 3, 2026)));
    no(K::Since(date(4, 3, 2026)));
    // The Date header (09:59:58 -0800, the 3rd) and the internal date differ.
    yes(K::SentOn(date(3, 3, 2026)));
    // MODSEQ n: at least n (the view's modseq is 50).
    yes(K::ModSeq(50));
    no(K::ModSeq(51));
    yes(K::EmailId("M3ed".into())); // 1005
    no(K::EmailId("M3ee".into()));
    no(K::EmailId("not-an-id".into()));
    yes(K::ThreadId("T2".into())); // 5 % 3
    no(K::ThreadId("T02".into()));
    let at = |now: i64| SearchContext { now, ..ctx(5) };
    let now = f.internal_date + 100;
    assert!(matches(&K::Younger(100), &v, &at(now)));
    assert!(!matches(&K::Younger(99), &v, &at(now)));
    assert!(matches(&K::Older(99), &v, &at(now)));
    assert!(!matches(&K::Older(100), &v, &at(now)));
}

#[test]
fn saved_results() {
    let mb = mailbox();
    let v = common::views(&mb);
    let saved = [2, 5, 9];
    let with_saved = SearchContext {
        saved: Some(&saved),
        ..ctx(9)
    };
    assert_eq!(
        search(&v, &K::SequenceSet(SequenceSet::Saved), &with_saved),
        "2 5 9"
    );
    assert_eq!(
        search(&v, &K::Uid(SequenceSet::Saved), &with_saved),
        "2 5 9"
    );
    assert_eq!(search(&v, &K::Uid(SequenceSet::Saved), &ctx(9)), "");
    // Several ranges, reversed bounds.
    let key = K::SequenceSet(set(&[(N(3), N(1)), (N(7), N(7)), (Star, N(8))]));
    assert_eq!(search(&v, &key, &ctx(9)), "1 2 3 7 8 9");
}

#[test]
fn raw_bytes_are_needed_for_header_body_text() {
    assert!(needs_raw(&K::Body(s("x"))));
    assert!(needs_raw(&K::Text(s("x"))));
    assert!(needs_raw(&K::Header("X".into(), s(""))));
    assert!(needs_raw(&K::Not(Box::new(K::Body(s("x"))))));
    assert!(needs_raw(&K::Or(
        Box::new(K::All),
        Box::new(K::Text(s("x")))
    )));
    assert!(needs_raw(&K::And(vec![
        K::Seen,
        K::Header("X".into(), s(""))
    ])));
    for key in [
        K::From(s("x")),
        K::To(s("x")),
        K::Cc(s("x")),
        K::Bcc(s("x")),
        K::Subject(s("x")),
        K::SentOn(date(1, 1, 2026)),
        K::And(vec![K::Seen, K::Larger(3)]),
    ] {
        assert!(!needs_raw(&key), "{key:?}");
    }
    // Without the bytes those keys match nothing, the others still work.
    let f = load("simple.eml");
    let mut v = f.view(1);
    v.raw = None;
    assert!(!matches(&K::Body(s("lunch")), &v, &ctx(1)));
    assert!(!matches(&K::Header("From".into(), s("")), &v, &ctx(1)));
    assert!(matches(&K::Subject(s("LUNCH")), &v, &ctx(1)));
}

#[test]
fn header_subject_is_answered_from_the_meta() {
    // The decoded Subject of the meta is what the raw field would give, so a
    // search on it does not read every message.
    for name in ["Subject", "SUBJECT", " subject "] {
        assert!(!needs_raw(&K::Header(name.into(), s("x"))), "{name}");
    }
    let f = load("simple.eml");
    let with_raw = f.view(1);
    let mut v = f.view(1);
    v.raw = None;
    for view in [&with_raw, &v] {
        assert!(matches(
            &K::Header("subject".into(), s("LUNCH")),
            view,
            &ctx(1)
        ));
        assert!(matches(&K::Header("Subject".into(), s("")), view, &ctx(1)));
        assert!(!matches(
            &K::Header("Subject".into(), s("dinner")),
            view,
            &ctx(1)
        ));
    }
}

#[test]
fn encoded_bodies() {
    // Base64 KOI8-R text and an HTML part with entities.
    let raw = "From: a@b.c\r\nSubject: t\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/alternative; boundary=X\r\n\r\n--X\r\n\
        Content-Type: text/plain; charset=koi8-r\r\nContent-Transfer-Encoding: base64\r\n\r\n\
        8NLJ18XULCDNydI=\r\n--X\r\nContent-Type: text/html\r\n\r\n\
        <p>caf&eacute; &amp; <b>cr&egrave;me</b></p>\r\n--X--\r\n";
    let f = Fixture::from_bytes(raw.as_bytes().to_vec());
    let v = f.view(1);
    for needle in ["привет, мир", "ПРИВЕТ", "café & crème"] {
        assert!(matches(&K::Body(s(needle)), &v, &ctx(1)), "{needle}");
    }
    assert!(!matches(&K::Body(s("8NLJ")), &v, &ctx(1)));
    assert!(!matches(&K::Body(s("<b>")), &v, &ctx(1)));
    // RFC 2047 in an arbitrary header.
    let f =
        Fixture::from_bytes(b"X-Thing: =?utf-8?q?Gr=C3=BC=C3=9Fe?= und mehr\r\n\r\n.\r\n".to_vec());
    assert!(!matches(
        &K::Header("x-thing".into(), s("GRÜSSE")),
        &f.view(1),
        &ctx(1)
    ));
    assert!(matches(
        &K::Header("x-thing".into(), s("grüße und")),
        &f.view(1),
        &ctx(1)
    ));
    assert!(matches(&K::Text(s("x-thing: grüße")), &f.view(1), &ctx(1)));
}

#[test]
fn search_charsets() {
    assert_eq!(
        charset_to_utf8("UTF-8", "Grüße".as_bytes()).as_deref(),
        Some("Grüße")
    );
    assert_eq!(charset_to_utf8("utf-8", b"\xff"), None);
    assert_eq!(charset_to_utf8("US-ASCII", b"abc").as_deref(), Some("abc"));
    assert_eq!(charset_to_utf8("US-ASCII", b"\xe9"), None);
    assert_eq!(
        charset_to_utf8("ISO-8859-1", b"caf\xe9").as_deref(),
        Some("café")
    );
    assert_eq!(
        charset_to_utf8("KOI8-R", b"\xf0\xd2\xc9").as_deref(),
        Some("При")
    );
    assert_eq!(charset_to_utf8("X-NO-SUCH", b"abc"), None);
}
