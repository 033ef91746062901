use super::cursor::Cursor;
use super::*;
use crate::types::*;

/// Parses `s` + CRLF, panicking with the error if it fails.
fn ok(s: &str) -> CommandBody {
    okb(format!("{s}\r\n").as_bytes())
}

fn okb(b: &[u8]) -> CommandBody {
    match parse_command(b) {
        Ok(c) => c.body,
        Err(e) => panic!("{:?}: {e}", b.escape_ascii().to_string()),
    }
}

/// Parses `s` + CRLF, expecting an error.
fn err(s: &str) -> ParseError {
    errb(format!("{s}\r\n").as_bytes())
}

fn errb(b: &[u8]) -> ParseError {
    match parse_command(b) {
        Ok(c) => panic!("{:?} parsed as {c:?}", b.escape_ascii().to_string()),
        Err(e) => e,
    }
}

fn msg(s: &str) -> String {
    err(s).message
}

fn v(n: u32) -> SeqNum {
    SeqNum::Value(n)
}

fn set(s: &str) -> SequenceSet {
    let mut c = Cursor::new(s.as_bytes());
    let set = c.sequence_set().expect("a set");
    assert!(c.rest().is_empty());
    set
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn date(year: u16, month: u8, day: u8) -> Date {
    Date { year, month, day }
}

fn and(keys: Vec<SearchKey>) -> SearchKey {
    SearchKey::And(keys)
}

/// Writes a sequence set as IMAP does (for round trips).
fn format_set(s: &SequenceSet) -> String {
    let n = |x: &SeqNum| match x {
        SeqNum::Value(v) => v.to_string(),
        SeqNum::Star => "*".to_owned(),
    };
    match s {
        SequenceSet::Saved => "$".to_owned(),
        SequenceSet::Ranges(r) => r
            .iter()
            .map(|(a, b)| {
                if a == b {
                    n(a)
                } else {
                    format!("{}:{}", n(a), n(b))
                }
            })
            .collect::<Vec<_>>()
            .join(","),
    }
}

// ---- Tags, command names, general strictness ----

#[test]
fn tags_and_names() {
    let c = parse_command(b"a001 capability\r\n").expect("parses");
    assert_eq!(c.tag, "a001");
    assert_eq!(c.body, CommandBody::Capability);
    assert_eq!(ok("A.1-x_y] NoOp"), CommandBody::Noop);
    assert_eq!(okb(b"t LOGOUT\n"), CommandBody::Logout);
    for (s, body) in [
        ("STARTTLS", CommandBody::StartTls),
        ("NAMESPACE", CommandBody::Namespace),
        ("IDLE", CommandBody::Idle),
        ("CHECK", CommandBody::Check),
        ("CLOSE", CommandBody::Close),
        ("UNSELECT", CommandBody::Unselect),
        ("EXPUNGE", CommandBody::Expunge),
    ] {
        assert_eq!(ok(&format!("x {s}")), body);
    }
}

#[test]
fn general_errors() {
    let e = errb(b"\r\n");
    assert_eq!(e.tag, None);
    assert_eq!(e.message, "empty command line");
    let e = errb(b"");
    assert_eq!(e.message, "empty command line");
    let e = err("+tag NOOP");
    assert_eq!(e.tag, None);
    assert_eq!(e.message, "expected a tag, got \"+tag\"");
    let e = err("a+b NOOP");
    assert_eq!(e.tag, None);
    assert_eq!(e.message, "invalid character in the tag, got \"+b\"");
    let e = err("a1");
    assert_eq!(e.tag.as_deref(), Some("a1"));
    assert_eq!(e.message, "expected a space and a command after the tag");
    let e = err("a1 FOO bar");
    assert_eq!(e.tag.as_deref(), Some("a1"));
    assert_eq!(e.message, "unknown command \"FOO\"");
    assert_eq!(
        msg("a1 NOOP extra"),
        "NOOP: expected the end of the command, got \" extra\""
    );
    assert_eq!(msg("a1  NOOP"), "expected a command, got \" NOOP\"");
    assert_eq!(
        msg("a1 NOOP "),
        "NOOP: expected the end of the command, got \" \""
    );
    let e = errb(b"a1 NOOP");
    assert_eq!(
        e.message,
        "NOOP: expected the end of the command, got the end of the command"
    );
    let e = errb(b"a1 NOOP\r\nb2 NOOP\r\n");
    assert_eq!(
        e.message,
        "NOOP: expected the end of the command, got a line break"
    );
    assert_eq!(
        msg("a1 UID LOGIN x y"),
        "UID: expected COPY, MOVE, FETCH, SEARCH, STORE, EXPUNGE, SORT or THREAD, got \"LOGIN\""
    );
    assert_eq!(
        err("a1 FETCH 1 FOO").to_string(),
        "a1: FETCH: expected a fetch attribute, got \"FOO\""
    );
}

// ---- Not authenticated ----

#[test]
fn authenticate() {
    assert_eq!(
        ok("a AUTHENTICATE PLAIN"),
        CommandBody::Authenticate {
            mechanism: "PLAIN".into(),
            initial: None
        }
    );
    // RFC 4959 SASL-IR.
    assert_eq!(
        ok("a AUTHENTICATE PLAIN dGVzdAB0ZXN0AHRlc3Q="),
        CommandBody::Authenticate {
            mechanism: "PLAIN".into(),
            initial: Some(b("dGVzdAB0ZXN0AHRlc3Q=").into())
        }
    );
    assert_eq!(
        ok("a authenticate x-oauth2 ="),
        CommandBody::Authenticate {
            mechanism: "x-oauth2".into(),
            initial: Some(b("=").into())
        }
    );
    assert_eq!(
        msg("a AUTHENTICATE PLAIN dGVzd"),
        "AUTHENTICATE: the initial response must be base64 or \"=\", got \"dGVzd\""
    );
    assert!(msg("a AUTHENTICATE PLAIN ab=c").contains("base64"));
    assert!(msg("a AUTHENTICATE PLAIN ").contains("base64"));
    assert_eq!(
        msg("a AUTHENTICATE"),
        "AUTHENTICATE: expected a space and the SASL mechanism, got the end of the command"
    );
}

#[test]
fn login() {
    // RFC 9051 §6.2.3.
    assert_eq!(
        ok("a001 LOGIN SMITH SESAME"),
        CommandBody::Login {
            user: b("SMITH"),
            password: b("SESAME").into()
        }
    );
    assert_eq!(
        okb(b"a LOGIN {5}\r\nalice \"p\\\"w\\\\d\"\r\n"),
        CommandBody::Login {
            user: b("alice"),
            password: b("p\"w\\d").into()
        }
    );
    assert_eq!(
        okb(b"a LOGIN {5+}\r\nalice {3+}\r\n\xff\x01 \r\n"),
        CommandBody::Login {
            user: b("alice"),
            password: vec![0xff, 1, b' '].into()
        }
    );
    assert_eq!(
        okb("a LOGIN \"Пётр\" \"\"\r\n".as_bytes()),
        CommandBody::Login {
            user: "Пётр".as_bytes().to_vec(),
            password: vec![].into()
        }
    );
    assert_eq!(
        msg("a LOGIN alice"),
        "LOGIN: expected a space and the password, got the end of the command"
    );
    assert_eq!(
        msg("a LOGIN alice (x)"),
        "LOGIN: expected a password, got \"(x\""
    );
    assert_eq!(
        errb(b"a LOGIN \"ab\\x\" y\r\n").message,
        "LOGIN: in a quoted string, \\ may only escape \" or \\, got \"x\\\"\""
    );
    assert_eq!(
        errb(b"a LOGIN \"ab y\r\n").message,
        "LOGIN: unterminated quoted string"
    );
    assert_eq!(
        errb(b"a LOGIN \"\xff\" y\r\n").message,
        "LOGIN: quoted string is not valid UTF-8 (use a literal)"
    );
    assert_eq!(
        errb(b"a LOGIN {9}\r\nabc\r\n").message,
        "LOGIN: literal is shorter than announced"
    );
    assert_eq!(
        errb(b"a LOGIN {3}\r\na\0c x\r\n").message,
        "LOGIN: literal contains a NUL octet (binary data needs literal8 ~{n})"
    );
    assert_eq!(
        errb(b"a LOGIN {3} abc x\r\n").message,
        "LOGIN: expected CRLF after the literal size, got \" abc\""
    );
}

#[test]
fn enable_and_id() {
    assert_eq!(
        ok("a ENABLE condstore UTF8=ACCEPT QRESYNC"),
        CommandBody::Enable(vec![
            "CONDSTORE".into(),
            "UTF8=ACCEPT".into(),
            "QRESYNC".into()
        ])
    );
    assert_eq!(
        msg("a ENABLE"),
        "ENABLE: expected a space and a capability, got the end of the command"
    );
    // RFC 2971 §4.
    assert_eq!(
        ok(r#"a023 ID ("name" "sodr" "version" "19.34" "vendor" "Pink Floyd Music Limited")"#),
        CommandBody::Id(Some(vec![
            ("name".into(), Some("sodr".into())),
            ("version".into(), Some("19.34".into())),
            ("vendor".into(), Some("Pink Floyd Music Limited".into())),
        ]))
    );
    assert_eq!(ok("a ID NIL"), CommandBody::Id(None));
    assert_eq!(ok("a ID ()"), CommandBody::Id(Some(vec![])));
    assert_eq!(
        ok(r#"a ID ("os" NIL)"#),
        CommandBody::Id(Some(vec![("os".into(), None)]))
    );
    assert_eq!(
        msg("a ID (name x)"),
        "ID: expected an ID field name (a string), got \"name\""
    );
}

// ---- Authenticated ----

#[test]
fn select_and_examine() {
    assert_eq!(
        ok("A142 SELECT INBOX"),
        CommandBody::Select {
            mailbox: b("INBOX"),
            params: SelectParams::default()
        }
    );
    for name in ["inbox", "\"InBox\"", "{5+}\r\ninBOX"] {
        assert_eq!(
            ok(&format!("a select {name}")),
            CommandBody::Select {
                mailbox: b("INBOX"),
                params: SelectParams::default()
            },
            "{name}"
        );
    }
    assert_eq!(
        ok("A932 EXAMINE blurdybloop"),
        CommandBody::Examine {
            mailbox: b("blurdybloop"),
            params: SelectParams::default()
        }
    );
    assert_eq!(
        ok("a SELECT \"Entw&APw-rfe\" (CONDSTORE)"),
        CommandBody::Select {
            mailbox: b("Entw&APw-rfe"),
            params: SelectParams {
                condstore: true,
                qresync: None
            }
        }
    );
    // RFC 7162 §3.2.5.2 examples.
    assert_eq!(
        ok("A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))"),
        CommandBody::Select {
            mailbox: b("INBOX"),
            params: SelectParams {
                condstore: false,
                qresync: Some(QResync {
                    uid_validity: 67_890_007,
                    modseq: 20_050_715_194_045_000,
                    known_uids: Some(set("41,43:211,214:541")),
                    seq_match: None,
                })
            }
        }
    );
    assert_eq!(
        ok(
            "B04 SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 \
            (5000,7500,9000,9990:9999 15000,22500,27000,29970,29973,29976,29979,29982,29985,\
            29988,29991,29994,29997)))"
        ),
        CommandBody::Select {
            mailbox: b("INBOX"),
            params: SelectParams {
                condstore: false,
                qresync: Some(QResync {
                    uid_validity: 67_890_007,
                    modseq: 90_060_115_194_045_000,
                    known_uids: Some(set("1:29997")),
                    seq_match: Some((
                        set("5000,7500,9000,9990:9999"),
                        set(
                            "15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,29997"
                        )
                    )),
                })
            }
        }
    );
    assert_eq!(
        ok("a EXAMINE x (QRESYNC (1 2 (1:3 5:7)) CONDSTORE)"),
        CommandBody::Examine {
            mailbox: b("x"),
            params: SelectParams {
                condstore: true,
                qresync: Some(QResync {
                    uid_validity: 1,
                    modseq: 2,
                    known_uids: None,
                    seq_match: Some((set("1:3"), set("5:7"))),
                })
            }
        }
    );
    assert_eq!(
        msg("a SELECT INBOX (QRESYNC (1 2 1:*))"),
        "SELECT: the known UIDs may not contain \"*\" or \"$\""
    );
    assert_eq!(
        msg("a SELECT INBOX (QRESYNC (0 2))"),
        "SELECT: the UIDVALIDITY must be a number from 1, got \"0\""
    );
    assert_eq!(
        msg("a SELECT INBOX (FOO)"),
        "SELECT: expected a select parameter (CONDSTORE or QRESYNC), got \"FOO\""
    );
    assert_eq!(
        msg("a SELECT INBOX ()"),
        "SELECT: expected a select parameter (CONDSTORE or QRESYNC), got \")\""
    );
    assert_eq!(
        msg("a SELECT INBOX (CONDSTORE CONDSTORE)"),
        "SELECT: CONDSTORE given twice"
    );
    assert_eq!(
        msg("a SELECT"),
        "SELECT: expected a space and a mailbox name, got the end of the command"
    );
}

#[test]
fn create_delete_rename_subscribe() {
    assert_eq!(
        ok("A003 CREATE owatagusiam/"),
        CommandBody::Create {
            mailbox: b("owatagusiam/"),
            special_use: vec![]
        }
    );
    // RFC 6154 §5.2.
    assert_eq!(
        ok("t1 CREATE \"Important Messages\" (USE (\\Important))"),
        CommandBody::Create {
            mailbox: b("Important Messages"),
            special_use: vec!["\\Important".into()]
        }
    );
    assert_eq!(
        ok("t1 CREATE Arc (use (\\Archive \\Flagged))"),
        CommandBody::Create {
            mailbox: b("Arc"),
            special_use: vec!["\\Archive".into(), "\\Flagged".into()]
        }
    );
    assert_eq!(
        msg("t1 CREATE Arc (USE (Archive))"),
        "CREATE: expected a special-use attribute (\\Archive, \\Sent, ...), got \"Archive\""
    );
    assert_eq!(
        msg("t1 CREATE Arc (FOO)"),
        "CREATE: expected a create parameter (USE), got \"FOO\""
    );
    assert_eq!(
        ok("A683 DELETE blurdybloop"),
        CommandBody::Delete {
            mailbox: b("blurdybloop")
        }
    );
    assert_eq!(
        ok("A683 RENAME blurdybloop sarasoop"),
        CommandBody::Rename {
            from: b("blurdybloop"),
            to: b("sarasoop")
        }
    );
    assert_eq!(
        ok("A002 SUBSCRIBE #news.comp.mail.mime"),
        CommandBody::Subscribe {
            mailbox: b("#news.comp.mail.mime")
        }
    );
    assert_eq!(
        ok("A002 UNSUBSCRIBE \"#news.comp.mail.mime\""),
        CommandBody::Unsubscribe {
            mailbox: b("#news.comp.mail.mime")
        }
    );
    assert_eq!(
        msg("a RENAME x"),
        "RENAME: expected a space and the new mailbox name, got the end of the command"
    );
    assert_eq!(
        msg("a DELETE %"),
        "DELETE: expected a mailbox name, got \"%\""
    );
}

fn list(select: Vec<ListSelect>, r: &str, p: &[&str], returns: Vec<ListReturn>) -> CommandBody {
    CommandBody::List {
        select,
        reference: b(r),
        patterns: p.iter().map(|p| b(p)).collect(),
        returns,
    }
}

#[test]
fn list_forms() {
    // RFC 9051 §6.3.9.
    assert_eq!(ok("A101 LIST \"\" \"\""), list(vec![], "", &[""], vec![]));
    assert_eq!(
        ok("A102 LIST #news.comp.mail.misc \"\""),
        list(vec![], "#news.comp.mail.misc", &[""], vec![])
    );
    assert_eq!(
        ok("A202 LIST ~/Mail/ %"),
        list(vec![], "~/Mail/", &["%"], vec![])
    );
    assert_eq!(ok("a list \"\" *"), list(vec![], "", &["*"], vec![]));
    assert_eq!(
        ok("a LIST \"\" foo]*%"),
        list(vec![], "", &["foo]*%"], vec![])
    );
    // RFC 5258 §5.
    assert_eq!(
        ok("A02 LIST (SUBSCRIBED) \"\" \"*\""),
        list(vec![ListSelect::Subscribed], "", &["*"], vec![])
    );
    assert_eq!(
        ok("A03 LIST () \"\" \"%\" RETURN (CHILDREN)"),
        list(vec![], "", &["%"], vec![ListReturn::Children])
    );
    assert_eq!(
        ok("A04 LIST (REMOTE) \"\" \"%\" RETURN (CHILDREN)"),
        list(
            vec![ListSelect::Remote],
            "",
            &["%"],
            vec![ListReturn::Children]
        )
    );
    assert_eq!(
        ok("A05 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\" RETURN (CHILDREN)"),
        list(
            vec![ListSelect::Subscribed, ListSelect::RecursiveMatch],
            "",
            &["%"],
            vec![ListReturn::Children]
        )
    );
    assert_eq!(
        ok("A06 LIST \"\" (\"INBOX\" \"Drafts\" \"Sent/%\")"),
        list(vec![], "", &["INBOX", "Drafts", "Sent/%"], vec![])
    );
    assert_eq!(
        ok("A07 LIST \"\" \"*\" RETURN (SUBSCRIBED)"),
        list(vec![], "", &["*"], vec![ListReturn::Subscribed])
    );
    assert_eq!(
        ok("A08 LIST \"\" % RETURN ()"),
        list(vec![], "", &["%"], vec![])
    );
    // RFC 5819 §2.
    assert_eq!(
        ok("A01 LIST \"\" % RETURN (STATUS (MESSAGES UNSEEN))"),
        list(
            vec![],
            "",
            &["%"],
            vec![ListReturn::Status(vec![
                StatusItem::Messages,
                StatusItem::Unseen
            ])]
        )
    );
    // RFC 6154 §5.1.
    assert_eq!(
        ok("t1 LIST (SPECIAL-USE) \"\" *"),
        list(vec![ListSelect::SpecialUse], "", &["*"], vec![])
    );
    assert_eq!(
        ok("t3 LIST \"\" \"%\" RETURN (SPECIAL-USE STATUS (MESSAGES SIZE))"),
        list(
            vec![],
            "",
            &["%"],
            vec![
                ListReturn::SpecialUse,
                ListReturn::Status(vec![StatusItem::Messages, StatusItem::Size])
            ]
        )
    );
    assert_eq!(
        msg("A05 LIST (RECURSIVEMATCH) \"\" \"%\""),
        "LIST: RECURSIVEMATCH needs another selection option"
    );
    assert_eq!(
        msg("A05 LIST (REMOTE RECURSIVEMATCH) \"\" \"%\""),
        "LIST: RECURSIVEMATCH needs another selection option"
    );
    assert_eq!(
        msg("A05 LIST (FOO) \"\" \"%\""),
        "LIST: expected a selection option (SUBSCRIBED, REMOTE, RECURSIVEMATCH or SPECIAL-USE), got \"FOO\""
    );
    assert_eq!(
        msg("A05 LIST \"\" \"%\" RETURN (BAR)"),
        "LIST: expected a return option (SUBSCRIBED, CHILDREN, SPECIAL-USE or STATUS), got \"BAR\""
    );
    assert_eq!(
        msg("A05 LIST \"\" \"%\" FOO"),
        "LIST: expected \"RETURN\", got \"FOO\""
    );
    assert_eq!(
        msg("A05 LIST \"\""),
        "LIST: expected a space and a mailbox pattern, got the end of the command"
    );
    assert_eq!(
        ok("A002 LSUB \"#news.\" \"comp.mail.*\""),
        CommandBody::Lsub {
            reference: b("#news."),
            pattern: b("comp.mail.*")
        }
    );
}

#[test]
fn status() {
    assert_eq!(
        ok("A042 STATUS blurdybloop (UIDNEXT MESSAGES)"),
        CommandBody::Status {
            mailbox: b("blurdybloop"),
            items: vec![StatusItem::UidNext, StatusItem::Messages]
        }
    );
    assert_eq!(
        ok(
            "a status inbox (messages uidnext uidvalidity unseen deleted size recent \
            highestmodseq mailboxid appendlimit)"
        ),
        CommandBody::Status {
            mailbox: b("INBOX"),
            items: vec![
                StatusItem::Messages,
                StatusItem::UidNext,
                StatusItem::UidValidity,
                StatusItem::Unseen,
                StatusItem::Deleted,
                StatusItem::Size,
                StatusItem::Recent,
                StatusItem::HighestModSeq,
                StatusItem::MailboxId,
                StatusItem::AppendLimit,
            ]
        }
    );
    assert_eq!(
        msg("a STATUS x ()"),
        "STATUS: expected a status item, got \")\""
    );
    assert_eq!(
        msg("a STATUS x (MESSAGES FOO)"),
        "STATUS: expected a status item, got \"FOO\""
    );
    assert_eq!(
        msg("a STATUS x (MESSAGES  UNSEEN)"),
        "STATUS: expected a status item, got \" UNSEEN\""
    );
    assert_eq!(
        msg("a STATUS x MESSAGES"),
        "STATUS: expected \"(\" starting the status items, got \"MESSAGES\""
    );
}

#[test]
fn append() {
    let m = "Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\nSubject: afternoon meeting\r\n\r\nHello Joe\r\n";
    let cmd = format!(
        "A003 APPEND saved-messages (\\Seen) {{{}}}\r\n{m}\r\n",
        m.len()
    );
    assert_eq!(
        okb(cmd.as_bytes()),
        CommandBody::Append {
            mailbox: b("saved-messages"),
            messages: vec![AppendMessage {
                flags: vec![Flag::Seen],
                date: None,
                data: b(m),
                binary: false
            }]
        }
    );
    let dt = |day, zone_minutes| DateTime {
        date: date(2023, 4, day),
        hour: 10,
        minute: 0,
        second: 59,
        zone_minutes,
    };
    assert_eq!(
        okb(b"a APPEND inbox \"05-Apr-2023 10:00:59 +0200\" {2+}\r\nhi\r\n"),
        CommandBody::Append {
            mailbox: b("INBOX"),
            messages: vec![AppendMessage {
                flags: vec![],
                date: Some(dt(5, 120)),
                data: b("hi"),
                binary: false
            }]
        }
    );
    for s in [
        "\" 5-apr-2023 10:00:59 -0130\"",
        "\"5-APR-2023 10:00:59 -0130\"",
    ] {
        let cmd = format!("a APPEND x () {s} {{0}}\r\n\r\n");
        assert_eq!(
            okb(cmd.as_bytes()),
            CommandBody::Append {
                mailbox: b("x"),
                messages: vec![AppendMessage {
                    flags: vec![],
                    date: Some(dt(5, -90)),
                    data: vec![],
                    binary: false
                }]
            }
        );
    }
    // RFC 3502 MULTIAPPEND, and RFC 3516 literal8.
    assert_eq!(
        okb(b"A003 APPEND saved-messages (\\Seen) {3}\r\none (\\Seen $Forwarded) \" 1-Aug-2002 22:00:00 -0700\" {3}\r\ntwo ~{3+}\r\nt\0o\r\n"),
        CommandBody::Append {
            mailbox: b("saved-messages"),
            messages: vec![
                AppendMessage {
                    flags: vec![Flag::Seen],
                    date: None,
                    data: b("one"),
                    binary: false
                },
                AppendMessage {
                    flags: vec![Flag::Seen, Flag::Keyword("$Forwarded".into())],
                    date: Some(DateTime {
                        date: date(2002, 8, 1),
                        hour: 22,
                        minute: 0,
                        second: 0,
                        zone_minutes: -420
                    }),
                    data: b("two"),
                    binary: false
                },
                AppendMessage {
                    flags: vec![],
                    date: None,
                    data: vec![b't', 0, b'o'],
                    binary: true
                },
            ]
        }
    );
    assert_eq!(
        msg("a APPEND x (\\Seen)"),
        "APPEND: expected a space and the message literal, got the end of the command"
    );
    assert_eq!(
        msg("a APPEND x \"hello\""),
        "APPEND: expected a date (d-Mon-yyyy), got \"hello\\\"\""
    );
    assert_eq!(
        errb(b"a APPEND x \"31-Apr-2023 10:00:00 +0000\" {1}\r\nx\r\n").message,
        "APPEND: invalid date: day 31 of month 4 of 2023"
    );
    assert_eq!(
        errb(b"a APPEND x \"30-Apr-2023 24:00:00 +0000\" {1}\r\nx\r\n").message,
        "APPEND: invalid time 24:00:00"
    );
    assert_eq!(
        errb(b"a APPEND x \"30-Apr-2023 23:00:00 +0070\" {1}\r\nx\r\n").message,
        "APPEND: invalid zone minutes in 0070"
    );
    assert_eq!(
        errb(b"a APPEND x {1}\r\nx{1}\r\ny\r\n").message,
        "APPEND: expected a space and the message (flags, date or a literal), got \"{1}\""
    );
    assert_eq!(
        errb(b"a APPEND x text\r\n").message,
        "APPEND: expected the message as a literal ({n} or ~{n}), got \"text\""
    );
    assert_eq!(
        errb(b"a APPEND x {3}\r\nt\0o\r\n").message,
        "APPEND: literal contains a NUL octet (binary data needs literal8 ~{n})"
    );
    assert_eq!(
        errb(b"a LOGIN ~{1}\r\nx y\r\n").message,
        "LOGIN: expected a space and the password, got \"{1}\""
    );
}

// ---- Selected ----

#[test]
fn sequence_sets() {
    assert_eq!(set("1"), SequenceSet::Ranges(vec![(v(1), v(1))]));
    assert_eq!(
        set("2:4,7,9:*,*:3,4294967295"),
        SequenceSet::Ranges(vec![
            (v(2), v(4)),
            (v(7), v(7)),
            (v(9), SeqNum::Star),
            (SeqNum::Star, v(3)),
            (v(u32::MAX), v(u32::MAX)),
        ])
    );
    assert_eq!(set("$"), SequenceSet::Saved);
    for s in ["1", "1:2", "*", "1,3:*,5", "$", "4294967295:1"] {
        assert_eq!(format_set(&set(s)), s, "round trip");
    }
    for bad in [
        "0",
        "0:1",
        "1:0",
        "01",
        "4294967296",
        "1,",
        ",1",
        "1:",
        "$,1",
        "1,$",
        "$:1",
        "a",
        "1,,2",
        "1a",
    ] {
        let mut c = Cursor::new(bad.as_bytes());
        assert!(
            c.sequence_set().is_err() || !c.rest().is_empty(),
            "{bad} must not parse"
        );
    }
    assert_eq!(
        msg("a FETCH 0 FLAGS"),
        "FETCH: message numbers and UIDs start at 1, got \"0\""
    );
    assert_eq!(
        msg("a FETCH 1:4294967296 FLAGS"),
        "FETCH: a message number out of range, got \"4294967296\""
    );
    assert_eq!(
        msg("a FETCH 1,$ FLAGS"),
        "FETCH: \"$\" must stand alone, not in a sequence set"
    );
    assert_eq!(
        msg("a COPY 1x y"),
        "COPY: unexpected characters after the sequence set, got \"x\""
    );
}

#[test]
fn sequence_set_round_trip_random() {
    let mut rng = Rng(7);
    for _ in 0..2000 {
        let n = 1 + rng.below(5);
        let mut ranges = Vec::new();
        for _ in 0..n {
            let num = |rng: &mut Rng| {
                if rng.below(6) == 0 {
                    SeqNum::Star
                } else {
                    SeqNum::Value(1 + rng.next() as u32 % u32::MAX)
                }
            };
            let a = num(&mut rng);
            let b = if rng.below(2) == 0 { a } else { num(&mut rng) };
            ranges.push((a, b));
        }
        let s = SequenceSet::Ranges(ranges);
        assert_eq!(set(&format_set(&s)), s);
    }
}

#[test]
fn fetch() {
    let f = |set_: &str, attrs: Vec<FetchAttr>| CommandBody::Fetch {
        uid: false,
        set: set(set_),
        attrs,
        modifiers: FetchModifiers::default(),
    };
    use FetchAttr as A;
    // RFC 9051 §6.4.5.
    assert_eq!(
        ok("A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])"),
        f(
            "2:4",
            vec![
                A::Flags,
                A::BodySection {
                    peek: false,
                    section: Section {
                        part: vec![],
                        text: Some(SectionText::HeaderFields(vec![
                            "DATE".into(),
                            "FROM".into()
                        ]))
                    },
                    partial: None
                }
            ]
        )
    );
    // Macros.
    assert_eq!(
        ok("a003 fetch 12 full"),
        f(
            "12",
            vec![
                A::Flags,
                A::InternalDate,
                A::Rfc822Size,
                A::Envelope,
                A::Body
            ]
        )
    );
    assert_eq!(
        ok("a FETCH 1 ALL"),
        f(
            "1",
            vec![A::Flags, A::InternalDate, A::Rfc822Size, A::Envelope]
        )
    );
    assert_eq!(
        ok("a FETCH 1 FAST"),
        f("1", vec![A::Flags, A::InternalDate, A::Rfc822Size])
    );
    assert_eq!(
        msg("a FETCH 1 (FAST)"),
        "FETCH: expected a fetch attribute, got \"FAST\""
    );
    assert_eq!(
        ok("a004 fetch 12 body[header]"),
        f(
            "12",
            vec![A::BodySection {
                peek: false,
                section: Section {
                    part: vec![],
                    text: Some(SectionText::Header)
                },
                partial: None
            }]
        )
    );
    assert_eq!(
        ok(
            "a FETCH 1:* (ENVELOPE FLAGS INTERNALDATE RFC822 RFC822.HEADER RFC822.SIZE \
            RFC822.TEXT BODY BODYSTRUCTURE UID MODSEQ EMAILID THREADID SAVEDATE PREVIEW \
            PREVIEW (LAZY) preview (lazy))"
        ),
        f(
            "1:*",
            vec![
                A::Envelope,
                A::Flags,
                A::InternalDate,
                A::Rfc822,
                A::Rfc822Header,
                A::Rfc822Size,
                A::Rfc822Text,
                A::Body,
                A::BodyStructure,
                A::Uid,
                A::ModSeq,
                A::EmailId,
                A::ThreadId,
                A::SaveDate,
                A::Preview { lazy: false },
                A::Preview { lazy: true },
                A::Preview { lazy: true },
            ]
        )
    );
    let section = |part: Vec<u32>, text: Option<SectionText>| Section { part, text };
    assert_eq!(
        ok(
            "a FETCH 1 (BODY[] BODY.PEEK[1.2.MIME]<0.100> BODY[3.TEXT] BODY[4.1.HEADER.FIELDS.NOT (X-A \"X-B\")] BODY.PEEK[2]<10.5>)"
        ),
        f(
            "1",
            vec![
                A::BodySection {
                    peek: false,
                    section: section(vec![], None),
                    partial: None
                },
                A::BodySection {
                    peek: true,
                    section: section(vec![1, 2], Some(SectionText::Mime)),
                    partial: Some((0, 100))
                },
                A::BodySection {
                    peek: false,
                    section: section(vec![3], Some(SectionText::Text)),
                    partial: None
                },
                A::BodySection {
                    peek: false,
                    section: section(
                        vec![4, 1],
                        Some(SectionText::HeaderFieldsNot(vec![
                            "X-A".into(),
                            "X-B".into()
                        ]))
                    ),
                    partial: None
                },
                A::BodySection {
                    peek: true,
                    section: section(vec![2], None),
                    partial: Some((10, 5))
                },
            ]
        )
    );
    // RFC 3516 BINARY.
    assert_eq!(
        ok("a FETCH 1 (BINARY[] BINARY.PEEK[1.2]<0.1024> BINARY.SIZE[3])"),
        f(
            "1",
            vec![
                A::Binary {
                    peek: false,
                    part: vec![],
                    partial: None
                },
                A::Binary {
                    peek: true,
                    part: vec![1, 2],
                    partial: Some((0, 1024))
                },
                A::BinarySize { part: vec![3] },
            ]
        )
    );
    assert_eq!(ok("a FETCH $ UID"), f("$", vec![A::Uid]));
    // RFC 7162 §3.1.4.1, §3.2.6.
    assert_eq!(
        ok("s100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)"),
        CommandBody::Fetch {
            uid: true,
            set: set("1:*"),
            attrs: vec![A::Flags],
            modifiers: FetchModifiers {
                changed_since: Some(12345),
                vanished: false
            }
        }
    );
    assert_eq!(
        ok("s100 uid fetch 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)"),
        CommandBody::Fetch {
            uid: true,
            set: set("300:500"),
            attrs: vec![A::Flags],
            modifiers: FetchModifiers {
                changed_since: Some(12345),
                vanished: true
            }
        }
    );
    assert_eq!(
        ok("a FETCH 1 PREVIEW (CHANGEDSINCE 5)"),
        CommandBody::Fetch {
            uid: false,
            set: set("1"),
            attrs: vec![A::Preview { lazy: false }],
            modifiers: FetchModifiers {
                changed_since: Some(5),
                vanished: false
            }
        }
    );
    assert_eq!(
        msg("a FETCH 1 (FLAGS) (VANISHED CHANGEDSINCE 1)"),
        "FETCH: VANISHED is only allowed in UID FETCH"
    );
    assert_eq!(
        msg("a UID FETCH 1 (FLAGS) (VANISHED)"),
        "UID FETCH: VANISHED requires CHANGEDSINCE"
    );
    assert_eq!(
        msg("a UID FETCH 1 (FLAGS) (CHANGEDSINCE 1 CHANGEDSINCE 2)"),
        "UID FETCH: CHANGEDSINCE given twice"
    );
    assert_eq!(
        msg("a UID FETCH 1 (FLAGS) (FOO)"),
        "UID FETCH: expected a fetch modifier (CHANGEDSINCE or VANISHED), got \"FOO\""
    );
    assert_eq!(
        msg("a FETCH 1 FOO"),
        "FETCH: expected a fetch attribute, got \"FOO\""
    );
    assert_eq!(
        msg("a FETCH 1 (FLAGS FOO)"),
        "FETCH: expected a fetch attribute, got \"FOO\""
    );
    assert_eq!(
        msg("a FETCH 1 ()"),
        "FETCH: expected a fetch attribute, got \")\""
    );
    assert_eq!(
        msg("a FETCH 1 BODY[MIME]"),
        "FETCH: MIME needs a part number (e.g. BODY[1.MIME])"
    );
    assert_eq!(
        msg("a FETCH 1 BODY[0]"),
        "FETCH: a part number must be a number from 1, got \"0]\""
    );
    assert_eq!(
        msg("a FETCH 1 BODY[]<0.0>"),
        "FETCH: the partial length must be a number from 1, got \"0>\""
    );
    assert_eq!(
        msg("a FETCH 1 BODY[]<5>"),
        "FETCH: expected \".\" and a length in the partial range (<offset.length>), got \">\""
    );
    assert_eq!(
        msg("a FETCH 1 BODY.PEEK"),
        "FETCH: expected \"[\" starting the section, got the end of the command"
    );
    assert_eq!(
        msg("a FETCH 1 BODY[HEADER.FIELDS ()]"),
        "FETCH: expected a header field name, got \")]\""
    );
    assert_eq!(
        msg("a FETCH 1 BODY[HEADER.FIELDS (FROM \"X Y\")]"),
        "FETCH: \"X Y\" is not a header field name (printable US-ASCII without \":\")"
    );
    assert_eq!(
        msg("a FETCH 1 BODY[1.FOO]"),
        "FETCH: expected a section (HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT or MIME), got \"FOO]\""
    );
    assert_eq!(
        msg("a FETCH 1 BINARY[1.TEXT]"),
        "FETCH: expected \"]\" closing the binary section, got \".TEXT]\""
    );
    assert_eq!(
        msg("a FETCH 1 FLAGS)"),
        "FETCH: expected a space and the fetch modifiers, got \")\""
    );
}

#[test]
fn store() {
    // RFC 9051 §6.4.6.
    assert_eq!(
        ok("A003 STORE 2:4 +FLAGS (\\Deleted)"),
        CommandBody::Store {
            uid: false,
            set: set("2:4"),
            unchanged_since: None,
            mode: StoreMode::Add,
            silent: false,
            flags: vec![Flag::Deleted]
        }
    );
    assert_eq!(
        ok("a store 1 flags.silent \\seen \\FLAGGED $Junk \\Recent \\Custom"),
        CommandBody::Store {
            uid: false,
            set: set("1"),
            unchanged_since: None,
            mode: StoreMode::Replace,
            silent: true,
            flags: vec![
                Flag::Seen,
                Flag::Flagged,
                Flag::Keyword("$Junk".into()),
                Flag::Recent,
                Flag::Extension("\\Custom".into())
            ]
        }
    );
    assert_eq!(
        ok("a UID STORE 1 -FLAGS ()"),
        CommandBody::Store {
            uid: true,
            set: set("1"),
            unchanged_since: None,
            mode: StoreMode::Remove,
            silent: false,
            flags: vec![]
        }
    );
    // RFC 7162 §3.1.3.
    assert_eq!(
        ok("a103 UID STORE 6,4,8 (UNCHANGEDSINCE 12121230045) +FLAGS.SILENT (\\Deleted)"),
        CommandBody::Store {
            uid: true,
            set: set("6,4,8"),
            unchanged_since: Some(12_121_230_045),
            mode: StoreMode::Add,
            silent: true,
            flags: vec![Flag::Deleted]
        }
    );
    assert_eq!(
        ok("a STORE 1 (UNCHANGEDSINCE 0) FLAGS (\\Answered \\Draft)"),
        CommandBody::Store {
            uid: false,
            set: set("1"),
            unchanged_since: Some(0),
            mode: StoreMode::Replace,
            silent: false,
            flags: vec![Flag::Answered, Flag::Draft]
        }
    );
    assert_eq!(
        msg("a STORE 1 +FLAG (\\Seen)"),
        "STORE: expected FLAGS, +FLAGS or -FLAGS (optionally .SILENT), got \"FLAG\""
    );
    assert_eq!(
        msg("a STORE 1 FLAGS"),
        "STORE: expected a space and the flags, got the end of the command"
    );
    assert_eq!(
        msg("a STORE 1 FLAGS (\\Seen"),
        "STORE: expected a space or \")\" in the flag list, got the end of the command"
    );
    assert_eq!(
        msg("a STORE 1 FLAGS (\\)"),
        "STORE: expected a flag name after \"\\\", got \")\""
    );
    assert_eq!(
        msg("a STORE 1 (UNCHANGEDSINCE 9223372036854775808) FLAGS ()"),
        "STORE: a mod-sequence value out of range, got \"9223372036854775808\""
    );
}

#[test]
fn copy_move_expunge() {
    assert_eq!(
        ok("A003 COPY 2:4 MEETING"),
        CommandBody::Copy {
            uid: false,
            set: set("2:4"),
            mailbox: b("MEETING")
        }
    );
    assert_eq!(
        ok("a UID copy 1:* inbox"),
        CommandBody::Copy {
            uid: true,
            set: set("1:*"),
            mailbox: b("INBOX")
        }
    );
    // RFC 6851 §4.
    assert_eq!(
        ok("a UID MOVE 42:69 foo"),
        CommandBody::Move {
            uid: true,
            set: set("42:69"),
            mailbox: b("foo")
        }
    );
    assert_eq!(
        ok("a MOVE $ \"Trash\""),
        CommandBody::Move {
            uid: false,
            set: SequenceSet::Saved,
            mailbox: b("Trash")
        }
    );
    // RFC 4315 §2.1.
    assert_eq!(
        ok("A003 UID EXPUNGE 3000:3002"),
        CommandBody::UidExpunge(set("3000:3002"))
    );
    assert_eq!(
        msg("A003 UID EXPUNGE"),
        "UID EXPUNGE: expected a space and a UID set, got the end of the command"
    );
    assert_eq!(
        msg("A003 COPY 1"),
        "COPY: expected a space and the destination mailbox, got the end of the command"
    );
}

// ---- SEARCH ----

fn search(
    returns: Option<Vec<SearchReturn>>,
    charset: Option<&str>,
    keys: Vec<SearchKey>,
) -> CommandBody {
    CommandBody::Search {
        uid: false,
        returns,
        charset: charset.map(str::to_owned),
        criteria: and(keys),
    }
}

#[test]
fn search_rfc_examples() {
    use SearchKey as K;
    // RFC 9051 §6.4.4.
    assert_eq!(
        ok("A282 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\""),
        search(
            Some(vec![SearchReturn::Min, SearchReturn::Count]),
            None,
            vec![
                K::Flagged,
                K::Since(date(1994, 2, 1)),
                K::Not(Box::new(K::From(b("Smith"))))
            ]
        )
    );
    assert_eq!(
        ok("A283 SEARCH RETURN () FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\""),
        search(
            Some(vec![]),
            None,
            vec![
                K::Flagged,
                K::Since(date(1994, 2, 1)),
                K::Not(Box::new(K::From(b("Smith"))))
            ]
        )
    );
    assert_eq!(
        ok("A284 SEARCH TEXT \"string not in mailbox\""),
        search(None, None, vec![K::Text(b("string not in mailbox"))])
    );
    let mut c = b"A285 SEARCH CHARSET UTF-8 TEXT {12}\r\n".to_vec();
    c.extend_from_slice("тест\u{44}\u{44}\u{44}\u{44}".as_bytes());
    c.extend_from_slice(b"\r\n");
    assert_eq!(
        okb(&c),
        search(
            None,
            Some("UTF-8"),
            vec![K::Text("тестDDDD".as_bytes().to_vec())]
        )
    );
    assert_eq!(
        ok("A286 SEARCH CHARSET INVALID-CHARSET TEXT xyz"),
        search(None, Some("INVALID-CHARSET"), vec![K::Text(b("xyz"))])
    );
    assert_eq!(
        ok("a search charset \"utf-8\" all"),
        search(None, Some("UTF-8"), vec![K::All])
    );
    // RFC 9051 §6.4.4 OR example.
    assert_eq!(
        ok("A283 SEARCH OR SEEN FLAGGED"),
        search(
            None,
            None,
            vec![K::Or(Box::new(K::Seen), Box::new(K::Flagged))]
        )
    );
    // RFC 5182 SEARCHRES.
    assert_eq!(
        ok("A282 SEARCH RETURN (SAVE) FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\""),
        search(
            Some(vec![SearchReturn::Save]),
            None,
            vec![
                K::Flagged,
                K::Since(date(1994, 2, 1)),
                K::Not(Box::new(K::From(b("Smith"))))
            ]
        )
    );
    assert_eq!(
        ok("A283 UID SEARCH RETURN (SAVE MIN MAX ALL) UID $ SMALLER 4096"),
        CommandBody::Search {
            uid: true,
            returns: Some(vec![
                SearchReturn::Save,
                SearchReturn::Min,
                SearchReturn::Max,
                SearchReturn::All
            ]),
            charset: None,
            criteria: and(vec![K::Uid(SequenceSet::Saved), K::Smaller(4096)])
        }
    );
    assert_eq!(
        ok("a SEARCH $ 1:3,5"),
        search(
            None,
            None,
            vec![
                K::SequenceSet(SequenceSet::Saved),
                K::SequenceSet(set("1:3,5"))
            ]
        )
    );
    // RFC 7162 §3.1.5.
    assert_eq!(
        ok("a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338"),
        search(None, None, vec![K::ModSeq(620_162_338)])
    );
    assert_eq!(
        ok("a SEARCH OR NOT MODSEQ 720162338 LARGER 50000"),
        search(
            None,
            None,
            vec![K::Or(
                Box::new(K::Not(Box::new(K::ModSeq(720_162_338)))),
                Box::new(K::Larger(50000))
            )]
        )
    );
    // RFC 8474 §5.3, §5.4; RFC 5032.
    assert_eq!(
        ok("a SEARCH EMAILID Mabc_1-2 THREADID T42 OLDER 3600 YOUNGER 60"),
        search(
            None,
            None,
            vec![
                K::EmailId("Mabc_1-2".into()),
                K::ThreadId("T42".into()),
                K::Older(3600),
                K::Younger(60)
            ]
        )
    );
}

#[test]
fn search_every_key() {
    use SearchKey as K;
    let d = date(2024, 2, 29);
    assert_eq!(
        ok(
            "a SEARCH ALL ANSWERED BCC x BEFORE 29-Feb-2024 BODY y CC z DELETED DRAFT FLAGGED \
            FROM f HEADER X-Spam \"yes\" KEYWORD $Junk LARGER 1 NEW NOT SEEN OLD ON \"29-feb-2024\" \
            OR TO t SUBJECT s RECENT SEEN SENTBEFORE 29-Feb-2024 SENTON 29-Feb-2024 \
            SENTSINCE 29-Feb-2024 SINCE 29-Feb-2024 SMALLER 9 SUBJECT {2+}\r\nhi TEXT t TO t UID 1:* \
            UNANSWERED UNDELETED UNDRAFT UNFLAGGED UNKEYWORD NonJunk UNSEEN 4,7 (SEEN DRAFT)"
        ),
        search(
            None,
            None,
            vec![
                K::All,
                K::Answered,
                K::Bcc(b("x")),
                K::Before(d),
                K::Body(b("y")),
                K::Cc(b("z")),
                K::Deleted,
                K::Draft,
                K::Flagged,
                K::From(b("f")),
                K::Header("X-Spam".into(), b("yes")),
                K::Keyword("$Junk".into()),
                K::Larger(1),
                K::New,
                K::Not(Box::new(K::Seen)),
                K::Old,
                K::On(d),
                K::Or(Box::new(K::To(b("t"))), Box::new(K::Subject(b("s")))),
                K::Recent,
                K::Seen,
                K::SentBefore(d),
                K::SentOn(d),
                K::SentSince(d),
                K::Since(d),
                K::Smaller(9),
                K::Subject(b("hi")),
                K::Text(b("t")),
                K::To(b("t")),
                K::Uid(set("1:*")),
                K::Unanswered,
                K::Undeleted,
                K::Undraft,
                K::Unflagged,
                K::Unkeyword("NonJunk".into()),
                K::Unseen,
                K::SequenceSet(set("4,7")),
                K::And(vec![K::Seen, K::Draft]),
            ]
        )
    );
    assert_eq!(
        ok("a SEARCH HEADER Message-ID \"\" ((SEEN) OR (FROM a TO b) 1)"),
        search(
            None,
            None,
            vec![
                K::Header("Message-ID".into(), b("")),
                K::And(vec![
                    K::And(vec![K::Seen]),
                    K::Or(
                        Box::new(K::And(vec![K::From(b("a")), K::To(b("b"))])),
                        Box::new(K::SequenceSet(set("1")))
                    )
                ])
            ]
        )
    );
}

#[test]
fn search_errors() {
    assert_eq!(
        msg("a SEARCH"),
        "SEARCH: expected a space and the search criteria, got the end of the command"
    );
    assert_eq!(
        msg("a SEARCH FOO"),
        "SEARCH: expected a search key, got \"FOO\""
    );
    assert_eq!(
        msg("a SEARCH SEEN  DRAFT"),
        "SEARCH: expected a search key, got \" DRAFT\""
    );
    assert_eq!(
        msg("a SEARCH SINCE 31-Feb-2024"),
        "SEARCH: invalid date: day 31 of month 2 of 2024"
    );
    assert_eq!(
        msg("a SEARCH SINCE 29-Feb-2023"),
        "SEARCH: invalid date: day 29 of month 2 of 2023"
    );
    assert_eq!(
        msg("a SEARCH SINCE 0-Feb-2023"),
        "SEARCH: invalid date: day 0 of month 2 of 2023"
    );
    assert_eq!(
        msg("a SEARCH SINCE 1-Fee-2023"),
        "SEARCH: expected a month (Jan..Dec), got \"Fee-2023\""
    );
    assert_eq!(
        msg("a SEARCH SINCE 1-Feb-23"),
        "SEARCH: expected a four-digit year, got \"23\""
    );
    assert_eq!(
        msg("a SEARCH SINCE 2024-02-01"),
        "SEARCH: expected \"-\" in the date, got \"24-02-01\""
    );
    assert_eq!(
        msg("a SEARCH SINCE yesterday"),
        "SEARCH: expected a date (d-Mon-yyyy), got \"yesterday\""
    );
    assert_eq!(
        msg("a SEARCH (SEEN"),
        "SEARCH: expected a space or \")\" in the search criteria, got the end of the command"
    );
    assert_eq!(
        msg("a SEARCH ()"),
        "SEARCH: expected a search key, got \")\""
    );
    assert_eq!(
        msg("a SEARCH SEEN)"),
        "SEARCH: expected a space and another search key, got \")\""
    );
    assert_eq!(
        msg("a SEARCH OR SEEN"),
        "SEARCH: expected a space and the second search key of OR, got the end of the command"
    );
    assert_eq!(
        msg("a SEARCH KEYWORD \\Seen"),
        "SEARCH: KEYWORD takes a keyword, not a system flag; got \"\\\\Seen\""
    );
    assert_eq!(
        msg("a SEARCH RETURN (FOO) ALL"),
        "SEARCH: expected a RETURN option (MIN, MAX, ALL, COUNT or SAVE), got \"FOO\""
    );
    assert_eq!(
        msg("a SEARCH RETURN (MIN)"),
        "SEARCH: expected a space and the criteria, got the end of the command"
    );
    assert_eq!(
        msg("a SEARCH CHARSET UTF-8"),
        "SEARCH: expected a space and the search criteria, got the end of the command"
    );
    assert_eq!(
        msg("a SEARCH MODSEQ \"/foo\" all 5"),
        "SEARCH: MODSEQ entry name must be \"/flags/<flag>\", got \"/foo\""
    );
    assert_eq!(
        msg("a SEARCH MODSEQ \"/flags/\\\\Seen\" any 5"),
        "SEARCH: expected a MODSEQ entry type (priv, shared or all), got \"any\""
    );
    assert_eq!(
        msg("a SEARCH EMAILID a.b"),
        "SEARCH: expected a space and another search key, got \".b\""
    );
    assert_eq!(
        msg("a SEARCH OLDER 0"),
        "SEARCH: the OLDER interval in seconds must be a number from 1, got \"0\""
    );
    assert_eq!(
        msg("a SEARCH LARGER -1"),
        "SEARCH: expected the LARGER number, got \"-1\""
    );
    assert_eq!(
        msg("a SEARCH 0"),
        "SEARCH: message numbers and UIDs start at 1, got \"0\""
    );
}

#[test]
fn search_depth_is_limited() {
    let deep = format!("a SEARCH {}SEEN", "NOT ".repeat(MAX_SEARCH_DEPTH - 1));
    assert!(matches!(ok(&deep), CommandBody::Search { .. }));
    let deeper = format!("a SEARCH {}SEEN", "NOT ".repeat(MAX_SEARCH_DEPTH));
    assert_eq!(
        msg(&deeper),
        format!("SEARCH: search criteria nested deeper than {MAX_SEARCH_DEPTH}")
    );
    let parens = format!(
        "a SEARCH {}SEEN{}",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    assert!(msg(&parens).contains("nested deeper"));
    let ors = format!("a SEARCH {}", "OR SEEN ".repeat(100_000));
    assert!(msg(&ors).contains("nested deeper"));
}

// ---- SORT, THREAD ----

#[test]
fn sort_and_thread() {
    use SearchKey as K;
    let crit = |reverse, key| SortCriterion { reverse, key };
    // RFC 5256 §3.
    assert_eq!(
        ok("A282 SORT (SUBJECT) UTF-8 SINCE 1-Feb-1994"),
        CommandBody::Sort {
            uid: false,
            returns: None,
            criteria: vec![crit(false, SortKey::Subject)],
            charset: "UTF-8".into(),
            search: and(vec![K::Since(date(1994, 2, 1))])
        }
    );
    assert_eq!(
        ok("A283 SORT (SUBJECT REVERSE DATE) UTF-8 ALL"),
        CommandBody::Sort {
            uid: false,
            returns: None,
            criteria: vec![crit(false, SortKey::Subject), crit(true, SortKey::Date)],
            charset: "UTF-8".into(),
            search: and(vec![K::All])
        }
    );
    assert_eq!(
        ok(
            "A284 UID SORT (ARRIVAL CC FROM SIZE TO REVERSE DISPLAYFROM DISPLAYTO) US-ASCII TEXT \"not in mailbox\""
        ),
        CommandBody::Sort {
            uid: true,
            returns: None,
            criteria: vec![
                crit(false, SortKey::Arrival),
                crit(false, SortKey::Cc),
                crit(false, SortKey::From),
                crit(false, SortKey::Size),
                crit(false, SortKey::To),
                crit(true, SortKey::DisplayFrom),
                crit(false, SortKey::DisplayTo),
            ],
            charset: "US-ASCII".into(),
            search: and(vec![K::Text(b("not in mailbox"))])
        }
    );
    // RFC 5267 §3.
    assert_eq!(
        ok("A282 SORT RETURN (MIN COUNT) (DATE) UTF-8 SINCE 1-Mar-2006"),
        CommandBody::Sort {
            uid: false,
            returns: Some(vec![SearchReturn::Min, SearchReturn::Count]),
            criteria: vec![crit(false, SortKey::Date)],
            charset: "UTF-8".into(),
            search: and(vec![K::Since(date(2006, 3, 1))])
        }
    );
    assert_eq!(
        msg("a SORT () UTF-8 ALL"),
        "SORT: expected a sort key, got \")\""
    );
    assert_eq!(
        msg("a SORT (REVERSE) UTF-8 ALL"),
        "SORT: expected a sort key, got \"REVERSE\""
    );
    assert_eq!(
        msg("a SORT (DATE) ALL"),
        "SORT: expected a space and the search criteria, got the end of the command"
    );
    assert_eq!(
        msg("a SORT (FOO) UTF-8 ALL"),
        "SORT: expected a sort key, got \"FOO\""
    );
    // RFC 5256 §4.
    assert_eq!(
        ok("A283 THREAD ORDEREDSUBJECT UTF-8 SINCE 5-MAR-2000"),
        CommandBody::Thread {
            uid: false,
            algorithm: ThreadAlgorithm::OrderedSubject,
            charset: "UTF-8".into(),
            search: and(vec![K::Since(date(2000, 3, 5))])
        }
    );
    assert_eq!(
        ok("A284 UID THREAD REFERENCES US-ASCII TEXT \"gewp\""),
        CommandBody::Thread {
            uid: true,
            algorithm: ThreadAlgorithm::References,
            charset: "US-ASCII".into(),
            search: and(vec![K::Text(b("gewp"))])
        }
    );
    assert_eq!(
        msg("A284 THREAD REFS UTF-8 ALL"),
        "THREAD: expected a threading algorithm (ORDEREDSUBJECT or REFERENCES), got \"REFS\""
    );
}

// ---- QUOTA, COMPRESS ----

#[test]
fn quota_and_compress() {
    // RFC 9208 §4.
    assert_eq!(
        ok("G0001 GETQUOTA \"!partition/sda4\""),
        CommandBody::GetQuota {
            root: b("!partition/sda4")
        }
    );
    assert_eq!(
        ok("A003 GETQUOTAROOT INBOX"),
        CommandBody::GetQuotaRoot {
            mailbox: b("INBOX")
        }
    );
    assert_eq!(
        ok("S0000 SETQUOTA \"#user/alice\" (storage 510 MESSAGE 1000)"),
        CommandBody::SetQuota {
            root: b("#user/alice"),
            limits: vec![
                QuotaLimit {
                    resource: "STORAGE".into(),
                    limit: 510
                },
                QuotaLimit {
                    resource: "MESSAGE".into(),
                    limit: 1000
                }
            ]
        }
    );
    assert_eq!(
        ok("S0000 SETQUOTA \"\" ()"),
        CommandBody::SetQuota {
            root: b(""),
            limits: vec![]
        }
    );
    assert_eq!(
        msg("S SETQUOTA x (STORAGE)"),
        "SETQUOTA: expected a space and the resource limit, got \")\""
    );
    // RFC 4978 §3.
    assert_eq!(
        ok("a COMPRESS deflate"),
        CommandBody::Compress("DEFLATE".into())
    );
    assert_eq!(
        msg("a COMPRESS"),
        "COMPRESS: expected a space and the compression mechanism, got the end of the command"
    );
}

// ---- Robustness ----

/// A small deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Tokens for the soup: IMAP syntax, and the imap-codec fuzzing dictionaries
/// when the shared corpus is there.
fn tokens() -> Vec<Vec<u8>> {
    let mut t: Vec<Vec<u8>> = [
        "a1 ",
        "UID ",
        "FETCH ",
        "SEARCH ",
        "APPEND ",
        "LOGIN ",
        "LIST ",
        "SELECT ",
        "STORE ",
        "SORT ",
        "THREAD ",
        "STATUS ",
        "1:*",
        "$",
        "*",
        "0",
        "4294967296",
        " ",
        " ",
        " ",
        "(",
        ")",
        "[",
        "]",
        "<",
        ">",
        ".",
        "{",
        "}",
        "+",
        "~{",
        "{3}\r\n",
        "{0+}\r\n",
        "{5+}\r\n",
        "\r\n",
        "\n",
        "\r",
        "\"",
        "\\",
        "\0",
        "\u{ff}",
        "NIL",
        "INBOX",
        "BODY",
        "PEEK",
        "BODY.PEEK[",
        "HEADER.FIELDS",
        "MIME",
        "OR ",
        "NOT ",
        "SINCE ",
        "1-Feb-1994",
        "+FLAGS ",
        "\\Seen",
        "RETURN ",
        "CHARSET ",
        "UTF-8 ",
        "MODSEQ ",
        "(QRESYNC (",
        "CHANGEDSINCE ",
        "VANISHED",
        "\"05-Apr-2023 10:00:59 +0200\"",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let dir = std::path::Path::new("/work/shared/corpora/imap-dict");
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            if path.extension().is_some_and(|e| e == "dict")
                && let Ok(text) = std::fs::read_to_string(&path)
            {
                t.extend(text.lines().filter_map(dict_token));
            }
        }
    }
    t
}

/// One libFuzzer dictionary entry: `"..."` with `\\`, `\"` and `\xNN`.
fn dict_token(line: &str) -> Option<Vec<u8>> {
    let body = line.trim().strip_prefix('"')?.strip_suffix('"')?;
    let bytes = body.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if bytes.get(i + 1) == Some(&b'x') => {
                let hex = std::str::from_utf8(bytes.get(i + 2..i + 4)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 4;
            }
            b'\\' => {
                out.push(*bytes.get(i + 1)?);
                i += 2;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

fn soup(rng: &mut Rng, tokens: &[Vec<u8>], len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < len {
        match rng.below(10) {
            0 => out.push(rng.next() as u8),
            1 => out.extend_from_slice(b"\r\n"),
            _ => out.extend_from_slice(&tokens[rng.below(tokens.len())]),
        }
    }
    out
}

use crate::frame::{Frame, FrameLimits, Framer};

/// Feeds `input` in random chunks; returns the frames (and parses commands).
fn frame_all(input: &[u8], limits: FrameLimits, rng: &mut Rng, max_chunk: usize) -> Vec<Frame> {
    let mut framer = Framer::new(limits);
    let mut pending = Vec::new();
    let mut frames = Vec::new();
    let mut fed = 0;
    let bound =
        (limits.max_command as usize) + (limits.max_append_total as usize) + limits.max_line + 64;
    while fed < input.len() {
        let end = (fed + 1 + rng.below(max_chunk)).min(input.len());
        pending.extend_from_slice(&input[fed..end]);
        fed = end;
        loop {
            let (n, f) = framer.poll(&pending);
            pending.drain(..n);
            assert!(framer.buffered() <= bound, "framer memory bounded");
            match f {
                None => break,
                Some(Frame::Fatal(w)) => {
                    frames.push(Frame::Fatal(w));
                    return frames;
                }
                Some(Frame::Command(c)) => {
                    let _ = parse_command(&c);
                    frames.push(Frame::Command(c));
                }
                Some(f) => frames.push(f),
            }
        }
    }
    frames
}

#[test]
fn random_soup_never_panics_and_frames_the_same_in_any_chunking() {
    let tokens = tokens();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let limits = FrameLimits {
        max_line: 200,
        max_command: 2000,
        max_literal: 50,
        max_append_literal: 500,
        max_append_total: 1000,
        max_literals: 8,
        max_discard: 1000,
    };
    let mut commands = 0;
    for round in 0..1500 {
        let len = 1 + rng.below(if round % 10 == 0 { 4000 } else { 300 });
        let input = soup(&mut rng, &tokens, len);
        let _ = parse_command(&input);
        let whole = frame_all(&input, limits, &mut rng, input.len());
        let small = frame_all(&input, limits, &mut rng, 3);
        assert_eq!(whole, small, "round {round}");
        commands += whole
            .iter()
            .filter(|f| matches!(f, Frame::Command(_)))
            .count();
    }
    assert!(commands > 1000, "the soup produces commands ({commands})");
}

#[test]
fn mutated_valid_commands_never_panic() {
    let seeds: &[&[u8]] = &[
        b"a1 UID FETCH 1:*,5 (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (A B)]<0.10> BINARY[1]) (CHANGEDSINCE 5 VANISHED)\r\n",
        b"a2 SEARCH RETURN (MIN) CHARSET UTF-8 OR (FROM {3+}\r\nabc NOT SEEN) HEADER X \"y\" SINCE 1-Feb-1994\r\n",
        b"a3 APPEND INBOX (\\Seen) \" 1-Aug-2002 22:00:00 -0700\" {3+}\r\nabc ~{2+}\r\n\0\0\r\n",
        b"a4 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (\"a\" b) RETURN (STATUS (MESSAGES) CHILDREN)\r\n",
        b"a5 SELECT INBOX (QRESYNC (1 2 1:5 (1:2 3:4)) CONDSTORE)\r\n",
        b"a6 UID STORE 1 (UNCHANGEDSINCE 3) +FLAGS.SILENT (\\Deleted $Junk)\r\n",
        b"a7 SORT RETURN (COUNT) (REVERSE DATE) UTF-8 MODSEQ \"/flags/\\\\draft\" all 5\r\n",
        b"a8 ID (\"name\" NIL)\r\n",
        b"a9 CREATE x (USE (\\Archive))\r\n",
    ];
    let mut rng = Rng(99);
    for seed in seeds {
        assert!(parse_command(seed).is_ok(), "{}", seed.escape_ascii());
        for _ in 0..3000 {
            let mut m = seed.to_vec();
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(m.len());
                match rng.below(4) {
                    0 => m[i] = rng.next() as u8,
                    1 => {
                        m.remove(i);
                    }
                    2 => m.insert(i, b"( )\"{}[]<>.0:*\\"[rng.below(15)]),
                    _ => m.truncate(i),
                }
                if m.is_empty() {
                    break;
                }
            }
            let _ = parse_command(&m);
        }
    }
}

#[test]
fn rfc9051_section6_examples() {
    use SearchKey as K;
    let cases: Vec<(&str, CommandBody)> = vec![
        ("abcd CAPABILITY", CommandBody::Capability),
        ("a002 NOOP", CommandBody::Noop),
        ("A023 LOGOUT", CommandBody::Logout),
        ("a001 STARTTLS", CommandBody::StartTls),
        (
            "A001 AUTHENTICATE GSSAPI",
            CommandBody::Authenticate {
                mechanism: "GSSAPI".into(),
                initial: None,
            },
        ),
        (
            "t2 ENABLE CONDSTORE X-GOOD-IDEA",
            CommandBody::Enable(vec!["CONDSTORE".into(), "X-GOOD-IDEA".into()]),
        ),
        (
            "A004 CREATE owatagusiam/blurdybloop",
            CommandBody::Create {
                mailbox: b("owatagusiam/blurdybloop"),
                special_use: vec![],
            },
        ),
        ("A682 LIST \"\" *", list(vec![], "", &["*"], vec![])),
        ("A002 NAMESPACE", CommandBody::Namespace),
        ("A202 EXPUNGE", CommandBody::Expunge),
        ("A341 CLOSE", CommandBody::Close),
        ("A342 UNSELECT", CommandBody::Unselect),
        ("A001 IDLE", CommandBody::Idle),
        (
            "A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"",
            search(
                None,
                None,
                vec![
                    K::Flagged,
                    K::Since(date(1994, 2, 1)),
                    K::Not(Box::new(K::From(b("Smith")))),
                ],
            ),
        ),
        (
            "A999 UID FETCH 4827313:4828442 FLAGS",
            CommandBody::Fetch {
                uid: true,
                set: set("4827313:4828442"),
                attrs: vec![FetchAttr::Flags],
                modifiers: FetchModifiers::default(),
            },
        ),
        (
            "A003 MOVE 2:4 mailbox",
            CommandBody::Move {
                uid: false,
                set: set("2:4"),
                mailbox: b("mailbox"),
            },
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(ok(input), expected, "{input}");
    }
}

#[test]
fn framed_commands_parse() {
    let input = b"a LOGIN {5}\r\nalice {6+}\r\nsecret\r\nb APPEND INBOX (\\Seen) ~{3+}\r\na\0b\r\n";
    let mut framer = Framer::default();
    let mut rest: &[u8] = input;
    let mut commands = Vec::new();
    while !rest.is_empty() {
        let (n, frame) = framer.poll(rest);
        rest = &rest[n..];
        match frame {
            Some(Frame::Command(c)) => commands.push(parse_command(&c).expect("parses")),
            Some(Frame::Continuation) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        commands.iter().map(|c| c.body.clone()).collect::<Vec<_>>(),
        vec![
            CommandBody::Login {
                user: b("alice"),
                password: b("secret").into()
            },
            CommandBody::Append {
                mailbox: b("INBOX"),
                messages: vec![AppendMessage {
                    flags: vec![Flag::Seen],
                    date: None,
                    data: vec![b'a', 0, b'b'],
                    binary: true
                }]
            }
        ]
    );
}

#[test]
fn large_append_in_chunks() {
    let body = vec![b'x'; 5 * 1024 * 1024];
    let mut input = format!("a APPEND INBOX {{{}+}}\r\n", body.len()).into_bytes();
    input.extend_from_slice(&body);
    input.extend_from_slice(b"\r\n");
    let mut framer = Framer::default();
    let mut pending = Vec::new();
    let mut command = None;
    for chunk in input.chunks(16 * 1024) {
        pending.extend_from_slice(chunk);
        let (n, frame) = framer.poll(&pending);
        pending.drain(..n);
        if let Some(Frame::Command(c)) = frame {
            command = Some(c);
        }
    }
    let command = parse_command(&command.expect("framed")).expect("parses");
    let CommandBody::Append { messages, .. } = command.body else {
        panic!("not an APPEND");
    };
    assert_eq!(messages[0].data.len(), body.len());
}

/// Found by the `imap_session` fuzz target: a field name with a space, 8-bit
/// text and `)` (sent as a literal) was echoed as a literal inside the
/// response's `BODY[HEADER.FIELDS (...)]`, which a client's parser takes for
/// the end of the section. Such a name matches no header; it is refused.
#[test]
fn fuzz_header_field_names_that_cannot_match_a_header_are_refused() {
    let name = "THICLOS)) S \u{639}#ERD";
    let cmd = format!(
        "a FETCH 1:3 (BODY.PEEK[HEADER.FIELDS (From {{{}}}\r\n{name})])\r\n",
        name.len()
    );
    let e = errb(cmd.as_bytes());
    assert!(
        e.message.contains("is not a header field name"),
        "{}",
        e.message
    );
    assert!(e.message.is_ascii(), "{}", e.message);
    for bad in ["\"Sub:ject\"", "\"\"", "\"a\tb\"", "\"Sub ject\""] {
        let e = err(&format!("a FETCH 1 BODY[HEADER.FIELDS.NOT ({bad})]"));
        assert!(
            e.message.contains("header field name"),
            "{bad}: {}",
            e.message
        );
    }
    // Every printable name but ':' is still a field name, brackets too.
    let CommandBody::Fetch { attrs, .. } =
        ok("a FETCH 1 BODY[HEADER.FIELDS (x-A \"Subje]t\" ~!$)]")
    else {
        panic!("not a FETCH");
    };
    assert_eq!(
        attrs,
        [FetchAttr::BodySection {
            peek: false,
            section: Section {
                part: vec![],
                text: Some(SectionText::HeaderFields(vec![
                    "x-A".into(),
                    "Subje]t".into(),
                    "~!$".into()
                ])),
            },
            partial: None,
        }]
    );
}
