//! Golden tests: concrete expected values for each of this crate's own fixtures.

#![allow(clippy::unwrap_used)]

mod common;

use common::{fixture, parse_checked};
use pochta_message::{BodyPart, EmailAddress, ImapAddress, MessageMeta, PartKind};

fn parse(name: &str) -> (Vec<u8>, MessageMeta) {
    let raw = fixture(name);
    let meta = parse_checked(&raw, name);
    (raw, meta)
}

fn body<'a>(raw: &'a [u8], part: &BodyPart) -> &'a [u8] {
    &raw[part.body_range()]
}

fn header<'a>(raw: &'a [u8], part: &BodyPart) -> &'a [u8] {
    &raw[part.header_range()]
}

fn addr(name: Option<&str>, email: &str) -> EmailAddress {
    EmailAddress {
        name: name.map(str::to_string),
        email: email.to_string(),
    }
}

fn imap(name: Option<&str>, mailbox: &str, host: &str) -> ImapAddress {
    ImapAddress {
        name: name.map(str::to_string),
        adl: None,
        mailbox: Some(mailbox.to_string()),
        host: Some(host.to_string()),
    }
}

fn group_start(name: &str) -> ImapAddress {
    ImapAddress {
        mailbox: Some(name.to_string()),
        ..ImapAddress::default()
    }
}

fn params(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn shape(part: &BodyPart) -> String {
    let t = format!("{}/{}", part.media_type, part.media_subtype);
    match &part.kind {
        PartKind::Leaf => t,
        PartKind::Multipart(children) => {
            let inner: Vec<String> = children.iter().map(shape).collect();
            format!("{t}[{}]", inner.join(","))
        }
        PartKind::Message { body, .. } => format!("{t}{{{}}}", shape(body)),
    }
}

#[test]
fn simple_text() {
    let (raw, m) = parse("simple.eml");
    assert_eq!(m.size, 321);
    assert_eq!(m.subject.as_deref(), Some("Lunch on Friday?"));
    assert_eq!(m.base_subject, "Lunch on Friday?");
    assert_eq!(m.message_id.as_deref(), Some("simple-1@example.org"));
    assert_eq!(m.sent_at, Some(1_715_671_800));
    assert_eq!(
        m.from,
        vec![addr(Some("Alice Example"), "alice@example.org")]
    );
    assert_eq!(m.to, vec![addr(Some("Bob"), "bob@example.net")]);
    assert!(m.sender.is_empty() && m.reply_to.is_empty() && m.cc.is_empty());
    assert_eq!(m.preview, "Hi Bob, Shall we have lunch on Friday? Alice");
    assert!(!m.has_attachment);

    let b = &m.body;
    assert_eq!(shape(b), "text/plain");
    assert_eq!((b.header_start, b.body_start, b.body_end), (0, 269, 321));
    assert_eq!(
        body(&raw, b),
        b"Hi Bob,\r\n\r\nShall we have lunch on Friday?\r\n\r\nAlice\r\n"
    );
    assert!(header(&raw, b).ends_with(b"charset=us-ascii\r\n\r\n"));
    assert_eq!((b.size, b.lines), (52, 5));
    assert_eq!(b.encoding, "7BIT");
    assert_eq!(b.params, params(&[("charset", "us-ascii")]));
    assert_eq!(b.charset.as_deref(), Some("us-ascii"));

    let e = &m.envelope;
    assert_eq!(e.date.as_deref(), Some("Tue, 14 May 2024 10:30:00 +0300"));
    assert_eq!(e.subject.as_deref(), Some("Lunch on Friday?"));
    assert_eq!(e.message_id.as_deref(), Some("<simple-1@example.org>"));
    assert_eq!(e.in_reply_to, None);
    let alice = imap(Some("Alice Example"), "alice", "example.org");
    assert_eq!(e.from, vec![alice.clone()]);
    // RFC 9051: absent Sender / Reply-To repeat From.
    assert_eq!(e.sender, vec![alice.clone()]);
    assert_eq!(e.reply_to, vec![alice]);
    assert_eq!(e.to, vec![imap(Some("Bob"), "bob", "example.net")]);
    assert!(e.cc.is_empty() && e.bcc.is_empty());

    assert_eq!(pochta_message::header_end(&raw), 269);
    assert_eq!(
        pochta_message::find_header(&raw, "message-id"),
        Some(&b" <simple-1@example.org>"[..])
    );
    assert_eq!(pochta_message::find_header(&raw, "Cc"), None);
}

#[test]
fn alternative_text_and_html() {
    let (raw, m) = parse("alternative.eml");
    // The subject and the text mention "global", "rfc822" and "digest": the structural
    // neutralisation inside the parser must not show anywhere.
    assert_eq!(m.subject.as_deref(), Some("Weekly digest of global news"));
    assert_eq!(m.from, vec![addr(Some("Newsletter"), "news@example.com")]);
    assert_eq!(m.preview, "Café news: the global rfc822 digest is here.");
    assert!(!m.has_attachment);
    assert_eq!(
        shape(&m.body),
        "multipart/alternative[text/plain,text/html]"
    );
    assert_eq!(m.body.params, params(&[("boundary", "alt-boundary")]));
    assert!(body(&raw, &m.body).starts_with(b"This is a multi-part message"));

    let plain = m.part(&[1]).unwrap();
    assert_eq!(plain.encoding, "QUOTED-PRINTABLE");
    assert_eq!(
        body(&raw, plain),
        b"Caf=C3=A9 news: the global rfc822 digest is here."
    );
    assert_eq!(
        (plain.size, plain.lines),
        (49, 0),
        "one line, its CRLF belongs to the boundary"
    );
    assert_eq!(plain.charset.as_deref(), Some("utf-8"));
    assert!(header(&raw, plain).starts_with(b"Content-Type: text/plain"));

    let html = m.part(&[2]).unwrap();
    assert_eq!(html.encoding, "7BIT");
    assert!(body(&raw, html).starts_with(b"<html><head>"));
    assert!(body(&raw, html).ends_with(b"</html>"));
    assert_eq!(m.part(&[3]), None);
    assert_eq!(m.part(&[1, 1]), None);
}

#[test]
fn html_only_preview_strips_tags() {
    let raw = b"From: a@example.org\r\nSubject: html\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><head><style>p {color: red}</style><title>T</title></head>\r\n<body><p>Hello   <b>world</b></p><p>second&nbsp;para</p></body></html>\r\n";
    let m = parse_checked(raw, "html-only");
    assert!(m.preview.starts_with("Hello world"), "{:?}", m.preview);
    assert!(m.preview.contains("second"), "{:?}", m.preview);
    assert!(!m.preview.contains('<'), "{:?}", m.preview);
    assert!(!m.preview.contains("color"), "{:?}", m.preview);
}

#[test]
fn mixed_with_base64_attachment_and_rfc2231_name() {
    let (raw, m) = parse("attachment.eml");
    assert_eq!(m.subject.as_deref(), Some("Отчёт за май"));
    assert_eq!(
        m.from,
        vec![addr(Some("Мария Иванова"), "maria@example.ru")]
    );
    assert_eq!(m.sent_at, Some(1_715_870_710));
    assert_eq!(m.preview, "Отчёт во вложении.");
    assert!(m.has_attachment);
    assert_eq!(
        shape(&m.body),
        "multipart/mixed[text/plain,application/pdf]"
    );

    let text = m.part(&[1]).unwrap();
    assert_eq!(text.encoding, "8BIT");
    assert_eq!(body(&raw, text), "Отчёт во вложении.".as_bytes());

    let pdf = m.part(&[2]).unwrap();
    assert_eq!(pdf.encoding, "BASE64");
    assert_eq!((pdf.body_start, pdf.body_end, pdf.size), (713, 1107, 394));
    assert_eq!(pdf.lines, 5, "six lines, the last ends at the boundary");
    assert!(body(&raw, pdf).starts_with(b"JVBERi0xLjQK"));
    assert!(body(&raw, pdf).ends_with(b"vf4+fr7/P3+\r\n/w=="));
    assert_eq!(pdf.params, params(&[("name", "отчёт.pdf")]));
    assert_eq!(
        pdf.disposition,
        Some((
            "attachment".to_string(),
            params(&[("filename", "отчёт.pdf")])
        ))
    );
    assert_eq!(pdf.filename(), Some("отчёт.pdf"));
    assert_eq!(pdf.id.as_deref(), Some("<pdf-1@example.ru>"));
    assert_eq!(pdf.description.as_deref(), Some("Monthly report"));
    assert_eq!(pdf.charset, None);

    // Display names with non-ASCII are RFC 2047 encoded in the IMAP envelope.
    assert_eq!(
        m.envelope.from,
        vec![imap(
            Some("=?utf-8?b?0JzQsNGA0LjRjyDQmNCy0LDQvdC+0LLQsA==?="),
            "maria",
            "example.ru"
        )]
    );
    // The envelope subject is the raw header value, not decoded.
    assert_eq!(
        m.envelope.subject.as_deref(),
        Some("=?utf-8?b?0J7RgtGH0ZHRgiDQt9CwINC80LDQuQ==?=")
    );
}

#[test]
fn forwarded_message_rfc822() {
    let (raw, m) = parse("forwarded.eml");
    assert_eq!(m.subject.as_deref(), Some("Fwd: Meeting notes"));
    assert_eq!(m.base_subject, "Meeting notes");
    assert_eq!(m.sent_at, Some(1_715_950_800));
    assert_eq!(m.preview, "See the forwarded message below.");
    assert!(m.has_attachment);
    assert_eq!(
        shape(&m.body),
        "multipart/mixed[text/plain,message/rfc822{multipart/alternative[text/plain,text/html]}]"
    );

    let fwd = m.part(&[2]).unwrap();
    assert_eq!((fwd.body_start, fwd.body_end), (392, 789));
    assert!(body(&raw, fwd).starts_with(b"From: Erin <erin@example.com>\r\n"));
    assert!(body(&raw, fwd).ends_with(b"--inner--\r\n"));
    assert_eq!(fwd.lines, 17);
    assert_eq!(fwd.disposition, Some(("inline".to_string(), Vec::new())));
    let PartKind::Message {
        envelope,
        body: inner,
    } = &fwd.kind
    else {
        panic!("not a message")
    };
    assert_eq!(envelope.subject.as_deref(), Some("Meeting notes"));
    assert_eq!(
        envelope.message_id.as_deref(),
        Some("<inner-5@example.com>")
    );
    assert_eq!(
        envelope.from,
        vec![imap(Some("Erin"), "erin", "example.com")]
    );
    assert_eq!(envelope.sender, envelope.from);
    // The encapsulated message's header section (BODY[2.HEADER]) and its parts, with
    // absolute offsets.
    assert_eq!(inner.header_start, 392);
    assert!(header(&raw, inner).starts_with(b"From: Erin"));
    assert!(header(&raw, inner).ends_with(b"boundary=\"inner\"\r\n\r\n"));
    let inner_text = m.part(&[2, 1]).unwrap();
    assert_eq!(body(&raw, inner_text), b"Notes: ship it.");
    let inner_html = m.part(&[2, 2]).unwrap();
    assert_eq!(body(&raw, inner_html), b"<p>Notes: ship it.</p>");
    assert!(std::ptr::eq(m.part(&[2, 1]).unwrap(), &inner.children()[0]));
    assert_eq!(m.part(&[2, 3]), None);
    assert_eq!(m.part(&[2, 1, 1]), None);
}

#[test]
fn cyrillic_koi8r_and_cp1251() {
    let (raw, m) = parse("cyrillic.eml");
    assert_eq!(m.subject.as_deref(), Some("Привет, мир!"));
    assert_eq!(m.from, vec![addr(Some("Иван Петров"), "ivan@example.ru")]);
    assert_eq!(m.to, vec![addr(Some("Ольга Смирнова"), "olga@example.ru")]);
    assert_eq!(m.sent_at, Some(1_716_056_100));
    // KOI8-R 8bit body decoded, whitespace collapsed.
    assert_eq!(m.preview, "Здравствуйте, Ольга! Как дела?");
    assert_eq!(m.body.charset.as_deref(), Some("koi8-r"));
    assert_eq!(m.body.encoding, "8BIT");
    // The body is KOI8-R on the wire ("Здравствуйте, Ольга!\r\n\r\nКак   дела?\r\n").
    assert_eq!(
        body(&raw, &m.body),
        b"\xfa\xc4\xd2\xc1\xd7\xd3\xd4\xd7\xd5\xca\xd4\xc5, \xef\xcc\xd8\xc7\xc1!\r\n\r\n\xeb\xc1\xcb   \xc4\xc5\xcc\xc1?\r\n"
    );
    assert_eq!((m.body.size, m.body.lines), (37, 3));
    assert_eq!(
        m.envelope.to,
        vec![imap(
            Some("=?utf-8?b?0J7Qu9GM0LPQsCDQodC80LjRgNC90L7QstCw?="),
            "olga",
            "example.ru"
        )]
    );
    assert_eq!(
        m.envelope.subject.as_deref(),
        Some("=?utf-8?q?=D0=9F=D1=80=D0=B8=D0=B2=D0=B5=D1=82,_=D0=BC=D0=B8=D1=80!?=")
    );
}

#[test]
fn group_syntax() {
    let (_, m) = parse("groups.eml");
    // Groups are flattened for search/JMAP; an empty group contributes nothing.
    assert!(m.to.is_empty());
    assert_eq!(
        m.cc,
        vec![
            addr(Some("Anna"), "anna@example.org"),
            addr(Some("Boris B."), "boris@example.org"),
            addr(None, "chris@example.org"),
        ]
    );
    // IMAP: group start marker, members, end marker.
    assert_eq!(
        m.envelope.to,
        vec![
            group_start("undisclosed-recipients"),
            ImapAddress::default()
        ]
    );
    assert_eq!(
        m.envelope.cc,
        vec![
            group_start("Friends"),
            imap(Some("Anna"), "anna", "example.org"),
            imap(Some("Boris B."), "boris", "example.org"),
            ImapAddress::default(),
            imap(None, "chris", "example.org"),
        ]
    );
}

#[test]
fn missing_content_type_defaults() {
    let (raw, m) = parse("no-content-type.eml");
    let b = &m.body;
    assert_eq!(shape(b), "text/plain");
    assert_eq!(b.params, params(&[("charset", "us-ascii")]));
    assert_eq!(b.charset.as_deref(), Some("us-ascii"));
    assert_eq!(b.encoding, "7BIT");
    assert_eq!(
        body(&raw, b),
        b"Plain old RFC 822 body.\r\nSecond line.\r\n"
    );
    assert_eq!((b.size, b.lines), (39, 2));
    assert_eq!(m.message_id, None);
    assert_eq!(m.envelope.message_id, None);
    assert_eq!(m.sent_at, Some(1_716_185_228));
    assert_eq!(m.preview, "Plain old RFC 822 body. Second line.");
}

#[test]
fn lf_only_line_ends() {
    let (raw, m) = parse("lf-only.eml");
    assert_eq!(m.subject.as_deref(), Some("LF only"));
    assert_eq!(m.sent_at, Some(1_716_285_600));
    assert_eq!(shape(&m.body), "multipart/mixed[text/plain,text/plain]");
    assert_eq!(m.body.params, params(&[("boundary", "lfb")]));
    assert_eq!(pochta_message::header_end(&raw), m.body.body_start as usize);

    // A part without header fields: its header section is just the blank line.
    let first = m.part(&[1]).unwrap();
    assert_eq!(header(&raw, first), b"\n");
    assert_eq!(body(&raw, first), b"first part, no headers");
    assert_eq!(first.params, params(&[("charset", "us-ascii")]));
    let second = m.part(&[2]).unwrap();
    assert_eq!(
        header(&raw, second),
        b"Content-Type: text/plain; charset=us-ascii\n\n"
    );
    // The LF before the delimiter belongs to the delimiter; the blank line before it
    // is part of the body.
    assert_eq!(body(&raw, second), b"second part\n");
    assert_eq!(second.lines, 1);
    assert_eq!(m.preview, "first part, no headers");
}

#[test]
fn folded_headers() {
    let (raw, m) = parse("folded.eml");
    assert_eq!(
        m.subject.as_deref(),
        Some("This subject is folded over three lines")
    );
    assert_eq!(m.base_subject, "This subject is folded over three lines");
    assert_eq!(m.message_id.as_deref(), Some("folded-9@example.org"));
    assert_eq!(m.sent_at, Some(1_716_369_133));
    assert_eq!(
        m.to,
        vec![
            addr(None, "one@example.org"),
            addr(None, "two@example.org"),
            addr(None, "three@example.org"),
        ]
    );
    // Envelope strings: CRLF removed, the folding white space kept, trimmed.
    assert_eq!(
        m.envelope.subject.as_deref(),
        Some("This subject is folded over\tthree lines")
    );
    assert_eq!(
        m.envelope.date.as_deref(),
        Some("Wed, 22 May 2024 11:12:13 +0200")
    );
    assert_eq!(
        m.envelope.message_id.as_deref(),
        Some("<folded-9@example.org>")
    );
    assert_eq!(m.envelope.to.len(), 3);
    // find_header keeps the folds as they are.
    assert_eq!(
        pochta_message::find_header(&raw, "subject"),
        Some(&b" This subject is\r\n folded over\r\n\tthree lines"[..])
    );
    assert_eq!(
        pochta_message::find_header(&raw, "MESSAGE-ID"),
        Some(&b"\r\n <folded-9@example.org>"[..])
    );
}

#[test]
fn headers_without_body() {
    let (raw, m) = parse("no-body.eml");
    assert_eq!(raw.last(), Some(&b'>'), "fixture ends without CRLF");
    assert_eq!(m.subject.as_deref(), Some("Headers only"));
    // The last header has no line ending; it is still read in full.
    assert_eq!(m.message_id.as_deref(), Some("nobody-10@example.org"));
    assert_eq!(m.sent_at, Some(1_716_458_400));
    let b = &m.body;
    assert_eq!((b.header_start, b.body_start, b.body_end), (0, 146, 146));
    assert_eq!((b.size, b.lines), (0, 0));
    assert_eq!(m.preview, "");
    assert_eq!(pochta_message::header_end(&raw), raw.len());
    assert_eq!(
        pochta_message::find_header(&raw, "Message-ID"),
        Some(&b" <nobody-10@example.org>"[..])
    );
}

#[test]
fn reply_subject_and_threading_ids() {
    let (_, m) = parse("re-subject.eml");
    assert_eq!(m.subject.as_deref(), Some("Re: Fwd: [list] Re: subject"));
    assert_eq!(m.base_subject, "subject");
    assert_eq!(m.message_id.as_deref(), Some("re-11@example.org"));
    assert_eq!(m.in_reply_to, vec!["parent-1@example.org".to_string()]);
    assert_eq!(
        m.references,
        vec![
            "root-0@example.org".to_string(),
            "parent-1@example.org".to_string()
        ]
    );
    assert_eq!(
        m.envelope.in_reply_to.as_deref(),
        Some("<parent-1@example.org>")
    );
    assert_eq!(m.sent_at, Some(1_716_562_800));
}

#[test]
fn base64_encoded_message_is_an_opaque_leaf() {
    let (raw, m) = parse("base64-message.eml");
    assert_eq!(
        shape(&m.body),
        "multipart/mixed[text/plain,application/octet-stream]"
    );
    let part = m.part(&[2]).unwrap();
    assert_eq!(part.encoding, "BASE64");
    assert!(body(&raw, part).starts_with(b"RnJvbTog"));
    assert!(header(&raw, part).starts_with(b"Content-Type: message/rfc822"));
    assert!(m.has_attachment);
    assert_eq!(m.preview, "See attached.");
}

#[test]
fn digest_children_default_to_message_rfc822() {
    let (raw, m) = parse("digest.eml");
    assert_eq!(
        shape(&m.body),
        "multipart/digest[message/rfc822{text/plain},message/rfc822{text/plain}]"
    );
    let first = m.part(&[1]).unwrap();
    assert!(first.params.is_empty());
    assert!(body(&raw, first).starts_with(b"From: one@example.org"));
    let PartKind::Message { envelope, .. } = &first.kind else {
        panic!("not a message")
    };
    assert_eq!(envelope.subject.as_deref(), Some("First post"));
    // A non-multipart encapsulated message has one part: its body.
    assert_eq!(body(&raw, m.part(&[1, 1]).unwrap()), b"First body.");
    assert_eq!(body(&raw, m.part(&[2, 1]).unwrap()), b"Second body.");
}

#[test]
fn top_level_message_rfc822() {
    let raw = b"From: a@example.org\r\nSubject: outer\r\nContent-Type: message/rfc822\r\n\r\nFrom: b@example.org\r\nSubject: inner\r\n\r\ninner body\r\n";
    let m = parse_checked(raw, "top-level rfc822");
    assert_eq!(m.subject.as_deref(), Some("outer"));
    assert_eq!(shape(&m.body), "message/rfc822{text/plain}");
    // Part 1 of a message whose body is message/rfc822 is that body; 1.1 the inner body.
    let one = m.part(&[1]).unwrap();
    assert!(std::ptr::eq(one, &m.body));
    assert_eq!(
        &raw[m.part(&[1, 1]).unwrap().body_range()],
        b"inner body\r\n"
    );
}

#[test]
fn unparseable_input_is_one_text_leaf() {
    // mail-parser finds no header field and no blank line in these.
    for raw in [&b""[..], b"garbage\n", b"just words\nmore words\n"] {
        let m = parse_checked(raw, "unparseable");
        assert_eq!(shape(&m.body), "text/plain");
        assert_eq!((m.body.header_start, m.body.body_start), (0, 0));
        assert_eq!(m.body.body_end, raw.len() as u64);
        assert_eq!(m.subject, None);
        assert_eq!(m.envelope, Default::default());
    }
    // A last line without a colon is taken as a header field name (mail-parser), so
    // this is a header-only message.
    let raw = b"no header here";
    let m = parse_checked(raw, "header-like");
    assert_eq!((m.body.body_start, m.body.body_end), (14, 14));
}

#[test]
fn broken_multipart_becomes_text() {
    // Declared multipart, but the boundary never occurs.
    let raw = b"Subject: x\r\nContent-Type: multipart/mixed; boundary=nope\r\n\r\nJust text.\r\n";
    let m = parse_checked(raw, "no boundary");
    assert_eq!(shape(&m.body), "text/plain");
    assert_eq!(&raw[m.body.body_range()], b"Just text.\r\n");
}

#[test]
fn json_field_names_are_stable() {
    let (_, m) = parse("forwarded.eml");
    let v: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["message_id"], "fwd-4@example.org");
    assert_eq!(v["body"]["kind"]["Multipart"][0]["kind"], "Leaf");
    assert!(v["body"]["kind"]["Multipart"][1]["kind"]["Message"]["envelope"].is_object());
}

#[test]
fn attachment_flag_rules() {
    let cases: [(&str, &[u8], bool); 5] = [
        (
            "inline image in multipart/related",
            b"Content-Type: multipart/related; boundary=r\r\n\r\n--r\r\nContent-Type: text/html\r\n\r\n<img src=\"cid:i\">\r\n--r\r\nContent-Type: image/png\r\nContent-ID: <i>\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--r--\r\n",
            false,
        ),
        (
            "image with inline disposition",
            b"Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\nContent-Type: text/plain\r\n\r\nhi\r\n--m\r\nContent-Type: image/jpeg\r\nContent-Disposition: inline\r\n\r\nxx\r\n--m--\r\n",
            false,
        ),
        (
            "PGP signed text",
            b"Content-Type: multipart/signed; boundary=s; protocol=\"application/pgp-signature\"\r\n\r\n--s\r\nContent-Type: text/plain\r\n\r\nsigned\r\n--s\r\nContent-Type: application/pgp-signature\r\n\r\nsig\r\n--s--\r\n",
            false,
        ),
        (
            "delivery report without returned message",
            b"Content-Type: multipart/report; report-type=delivery-status; boundary=d\r\n\r\n--d\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--d\r\nContent-Type: message/delivery-status\r\n\r\nStatus: 5.0.0\r\n--d--\r\n",
            false,
        ),
        (
            "text with attachment disposition",
            b"Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\nContent-Type: text/plain\r\n\r\nhi\r\n--m\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename=a.csv\r\n\r\na,b\r\n--m--\r\n",
            true,
        ),
    ];
    for (what, raw, expected) in cases {
        let m = parse_checked(raw, what);
        assert_eq!(m.has_attachment, expected, "{what}");
    }
}

#[test]
fn non_ascii_group_and_long_names_are_encoded_for_imap() {
    let raw = "To: Друзья: \"Очень длинное имя получателя для проверки разбиения\" <a@example.org>;\r\nFrom: plain@example.org\r\n\r\nx\r\n";
    let m = parse_checked(raw.as_bytes(), "non-ASCII group");
    let to = &m.envelope.to;
    assert_eq!(to.len(), 3);
    let start = to[0].mailbox.as_deref().unwrap();
    assert!(
        start.starts_with("=?utf-8?b?") && start.is_ascii(),
        "{start}"
    );
    let name = to[1].name.as_deref().unwrap();
    // Long names are split into several encoded words of at most 75 characters.
    let words: Vec<&str> = name.split(' ').collect();
    assert!(words.len() > 1, "{name}");
    assert!(
        words
            .iter()
            .all(|w| w.len() <= 75 && w.starts_with("=?utf-8?b?"))
    );
    assert_eq!(
        m.to,
        vec![addr(
            Some("Очень длинное имя получателя для проверки разбиения"),
            "a@example.org"
        )]
    );
}

/// `from_addresses` reads the header alone and sees what the full parse sees:
/// comments and quoted display names that hold something like an address do not
/// count, a From in the body does not count, groups are flattened.
#[test]
fn from_addresses_reads_the_header_as_the_full_parse_does() {
    let cases: [(&str, Vec<EmailAddress>); 5] = [
        (
            "From: \"ceo@other.test\" <alice@example.test>\r\nTo: x@y\r\n\r\nFrom: mallory@evil.test\r\n",
            vec![addr(Some("ceo@other.test"), "alice@example.test")],
        ),
        (
            "From: alice@example.test (<ceo@other.test>)\r\n\r\nbody\r\n",
            vec![addr(Some("<ceo@other.test>"), "alice@example.test")],
        ),
        (
            "From: a@one.test, B <b@two.test>\r\n\r\n",
            vec![addr(None, "a@one.test"), addr(Some("B"), "b@two.test")],
        ),
        ("Subject: none\r\n\r\nFrom: a@one.test\r\n", vec![]),
        (
            "From: team: a@one.test, b@two.test;\r\n\r\n",
            vec![addr(None, "a@one.test"), addr(None, "b@two.test")],
        ),
    ];
    for (raw, want) in cases {
        let got = pochta_message::from_addresses(raw.as_bytes());
        assert_eq!(got, want, "{raw:?}");
        assert_eq!(got, pochta_message::parse(raw.as_bytes()).from, "{raw:?}");
    }
}
