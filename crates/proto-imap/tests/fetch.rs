//! FETCH rendering, compared with what Dovecot 2.3.19 sends for the same
//! messages (the reference stack, user1). Where we differ on purpose the test
//! says so.

mod common;

use common::{Fixture, load, mailbox};
use pochta_proto_imap::encode::Charset;
use pochta_proto_imap::fetch::{
    FetchError, FetchOptions, decode_base64, decode_quoted_printable, email_id, needs_raw,
    parse_email_id, parse_thread_id, sets_seen, thread_id, write_fetch,
};
use pochta_proto_imap::types::{FetchAttr, Section, SectionText};

fn fetch_bytes(f: &Fixture, msn: u32, attrs: &[FetchAttr], opts: &FetchOptions) -> Vec<u8> {
    let mut out = Vec::new();
    write_fetch(&mut out, &f.view(msn), attrs, opts).expect("fetch succeeds");
    out
}

fn fetch(f: &Fixture, msn: u32, attrs: &[FetchAttr]) -> String {
    String::from_utf8(fetch_bytes(f, msn, attrs, &FetchOptions::default())).expect("utf-8")
}

fn body(part: &[u32], text: Option<SectionText>) -> FetchAttr {
    FetchAttr::BodySection {
        peek: true,
        section: Section {
            part: part.to_vec(),
            text,
        },
        partial: None,
    }
}

fn partial(attr: FetchAttr, origin: u64, length: u64) -> FetchAttr {
    match attr {
        FetchAttr::BodySection { peek, section, .. } => FetchAttr::BodySection {
            peek,
            section,
            partial: Some((origin, length)),
        },
        FetchAttr::Binary { peek, part, .. } => FetchAttr::Binary {
            peek,
            part,
            partial: Some((origin, length)),
        },
        other => other,
    }
}

fn binary(part: &[u32]) -> FetchAttr {
    FetchAttr::Binary {
        peek: true,
        part: part.to_vec(),
        partial: None,
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// ENVELOPE of every fixture. Identical to Dovecot's except display names
/// with non-ASCII characters: the meta stores them decoded and re-encodes
/// them as UTF-8 encoded words, where Dovecot passes the header's bytes on
/// (`=?KOI8-R?B?...?=`, or raw UTF-8 in a literal).
#[test]
fn envelope() {
    let mb = mailbox();
    let expected = [
        r#"* 1 FETCH (ENVELOPE ("Tue, 3 Mar 2026 09:59:58 -0800" "Lunch on Friday?" (("Alice Example" NIL "alice" "example.org")) (("Alice Example" NIL "alice" "example.org")) (("Alice Example" NIL "alice" "example.org")) (("Bob" NIL "bob" "example.com")(NIL NIL "carol" "example.com")) NIL NIL NIL "<simple-1@example.org>"))"#,
        r#"* 2 FETCH (ENVELOPE ("Wed, 4 Mar 2026 12:00:00 +0100" "=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen?=" (("=?utf-8?b?TcO8bGxlciwgSsO8cmdlbg==?=" NIL "juergen" "example.de")) (("=?utf-8?b?TcO8bGxlciwgSsO8cmdlbg==?=" NIL "juergen" "example.de")) (("=?utf-8?b?TcO8bGxlciwgSsO8cmdlbg==?=" NIL "juergen" "example.de")) ((NIL NIL "team" "example.com")) NIL NIL NIL "<alt-1@example.de>"))"#,
        r#"* 3 FETCH (ENVELOPE ("Thu, 5 Mar 2026 08:30:00 +0000" "Monthly report" ((NIL NIL "reports" "example.net")) ((NIL NIL "robot" "example.net")) (("Support Team" NIL "support" "example.net")) (("Dana" NIL "dana" "example.com")) (("Eve" NIL "eve" "example.com")(NIL NIL "frank" "example.com")) ((NIL NIL "audit" "example.com")) "<req-7@example.com>" "<mixed-1@example.net>"))"#,
        r#"* 4 FETCH (ENVELOPE ("Fri, 6 Mar 2026 17:45:00 +0200" "Fwd: The original" (("Grace" NIL "grace" "example.com")) (("Grace" NIL "grace" "example.com")) (("Grace" NIL "grace" "example.com")) (("Heidi" NIL "heidi" "example.com")) NIL NIL NIL "<nested-1@example.com>"))"#,
        // Group syntax: start marker, members, end marker.
        r#"* 5 FETCH (ENVELOPE ("Sat, 7 Mar 2026 23:30:00 -0300" "=?KOI8-R?B?79Teo9Qg2sEgzcHS1A==?=" (("=?utf-8?b?0JjQstCw0L0g0J/QtdGC0YDQvtCy?=" NIL "ivan" "example.ru")) (("=?utf-8?b?0JjQstCw0L0g0J/QtdGC0YDQvtCy?=" NIL "ivan" "example.ru")) (("=?utf-8?b?0JjQstCw0L0g0J/QtdGC0YDQvtCy?=" NIL "ivan" "example.ru")) ((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) ((NIL NIL "Team" NIL)("=?utf-8?b?0JDQvdC90LA=?=" NIL "anna" "example.ru")(NIL NIL "boris" "example.ru")(NIL NIL NIL NIL)(NIL NIL "solo" "example.ru")) NIL NIL "<koi-1@example.ru>"))"#,
        r#"* 6 FETCH (ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL))"#,
        r#"* 7 FETCH (ENVELOPE (NIL "binary data" ((NIL NIL "bin" "example.com")) ((NIL NIL "bin" "example.com")) ((NIL NIL "bin" "example.com")) NIL NIL NIL NIL "<bin-1@example.com>"))"#,
        r#"* 8 FETCH (ENVELOPE (NIL "only image" ((NIL NIL "x" "example.com")) ((NIL NIL "x" "example.com")) ((NIL NIL "x" "example.com")) NIL NIL NIL NIL NIL))"#,
        r#"* 9 FETCH (ENVELOPE (NIL "empty body" ((NIL NIL "y" "example.com")) ((NIL NIL "y" "example.com")) ((NIL NIL "y" "example.com")) NIL NIL NIL NIL NIL))"#,
    ];
    for (i, (f, expected)) in mb.iter().zip(expected).enumerate() {
        assert_eq!(
            fetch(f, i as u32 + 1, &[FetchAttr::Envelope]),
            format!("{expected}\r\n"),
            "{}",
            common::MAILBOX[i]
        );
    }
}

/// BODYSTRUCTURE and BODY of every fixture. Dovecot's output is the same but
/// for two things that come from the meta: the transfer encoding is upper
/// case ("7BIT", as in RFC 9051's examples; Dovecot echoes the header's
/// "7bit"), and the message/rfc822 part of nested.eml is
/// 407 octets, ending before the CRLF that belongs to the next boundary
/// (Dovecot says 409).
#[test]
fn body_structure() {
    let mb = mailbox();
    let expected = [
        (
            r#"("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 55 5 NIL NIL NIL NIL)"#,
            r#"("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 55 5)"#,
        ),
        (
            r#"(("text" "plain" ("charset" "utf-8") NIL NIL "QUOTED-PRINTABLE" 97 1 NIL NIL NIL NIL)("text" "html" ("charset" "utf-8") NIL NIL "QUOTED-PRINTABLE" 84 0 NIL NIL NIL NIL) "alternative" ("boundary" "ALT-BOUNDARY") NIL NIL NIL)"#,
            r#"(("text" "plain" ("charset" "utf-8") NIL NIL "QUOTED-PRINTABLE" 97 1)("text" "html" ("charset" "utf-8") NIL NIL "QUOTED-PRINTABLE" 84 0) "alternative")"#,
        ),
        (
            // md5, disposition with parameters, two languages, location; an
            // RFC 2231 parameter sent back encoded; the default charset added.
            r#"(("text" "plain" ("charset" "iso-8859-1") NIL NIL "QUOTED-PRINTABLE" 40 0 NIL NIL NIL NIL)("application" "pdf" ("name" "report.pdf") "<part2@example.net>" "The report" "BASE64" 1050 "Q2hlY2sgSW50ZWdyaXR5IQ==" ("attachment" ("filename" "report.pdf" "size" "768")) ("en" "de") "http://example.net/report.pdf")("text" "plain" ("name*" "utf-8''%D0%BE%D1%82%D1%87%D1%91%D1%82.txt" "charset" "us-ascii") NIL NIL "7BIT" 17 0 NIL ("inline" NIL) NIL NIL) "mixed" ("boundary" "MIX") NIL ("en") NIL)"#,
            r#"(("text" "plain" ("charset" "iso-8859-1") NIL NIL "QUOTED-PRINTABLE" 40 0)("application" "pdf" ("name" "report.pdf") "<part2@example.net>" "The report" "BASE64" 1050)("text" "plain" ("name*" "utf-8''%D0%BE%D1%82%D1%87%D1%91%D1%82.txt" "charset" "us-ascii") NIL NIL "7BIT" 17 0) "mixed")"#,
        ),
        (
            r#"(("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 26 0 NIL NIL NIL NIL)("message" "rfc822" NIL NIL NIL "7BIT" 407 ("Mon, 2 Mar 2026 11:00:00 -0500" "The original" (("Ivan" NIL "ivan" "example.org")) (("Ivan" NIL "ivan" "example.org")) (("Ivan" NIL "ivan" "example.org")) (("Grace" NIL "grace" "example.com")) NIL NIL NIL "<orig-1@example.org>") (("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 19 0 NIL NIL NIL NIL)("text" "html" ("charset" "us-ascii") NIL NIL "7BIT" 33 0 NIL NIL NIL NIL) "alternative" ("boundary" "INNER") NIL NIL NIL) 16 NIL ("inline" NIL) NIL NIL)("message" "rfc822" NIL NIL NIL "7BIT" 91 (NIL "Single part inner" (("Judy" NIL "judy" "example.org")) (("Judy" NIL "judy" "example.org")) (("Judy" NIL "judy" "example.org")) NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 30 0 NIL NIL NIL NIL) 3 NIL NIL NIL NIL) "mixed" ("boundary" "OUTER") NIL NIL NIL)"#,
            r#"(("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 26 0)("message" "rfc822" NIL NIL NIL "7BIT" 407 ("Mon, 2 Mar 2026 11:00:00 -0500" "The original" (("Ivan" NIL "ivan" "example.org")) (("Ivan" NIL "ivan" "example.org")) (("Ivan" NIL "ivan" "example.org")) (("Grace" NIL "grace" "example.com")) NIL NIL NIL "<orig-1@example.org>") (("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 19 0)("text" "html" ("charset" "us-ascii") NIL NIL "7BIT" 33 0) "alternative") 16)("message" "rfc822" NIL NIL NIL "7BIT" 91 (NIL "Single part inner" (("Judy" NIL "judy" "example.org")) (("Judy" NIL "judy" "example.org")) (("Judy" NIL "judy" "example.org")) NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 30 0) 3) "mixed")"#,
        ),
        (
            r#"("text" "plain" ("charset" "koi8-r") NIL NIL "8BIT" 33 1 NIL NIL NIL NIL)"#,
            r#"("text" "plain" ("charset" "koi8-r") NIL NIL "8BIT" 33 1)"#,
        ),
        (
            r#"("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 40 1 NIL NIL NIL NIL)"#,
            r#"("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 40 1)"#,
        ),
        (
            r#"(("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 4 0 NIL NIL NIL NIL)("application" "octet-stream" NIL NIL NIL "BASE64" 16 NIL NIL NIL NIL)("application" "octet-stream" NIL NIL NIL "X-UUENCODE" 11 NIL NIL NIL NIL) "mixed" ("boundary" "B") NIL NIL NIL)"#,
            r#"(("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 4 0)("application" "octet-stream" NIL NIL NIL "BASE64" 16)("application" "octet-stream" NIL NIL NIL "X-UUENCODE" 11) "mixed")"#,
        ),
        (
            r#"("image" "png" NIL NIL NIL "BASE64" 14 NIL NIL NIL NIL)"#,
            r#"("image" "png" NIL NIL NIL "BASE64" 14)"#,
        ),
        (
            r#"("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 0 0 NIL NIL NIL NIL)"#,
            r#"("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 0 0)"#,
        ),
    ];
    for (i, (f, (structure, body))) in mb.iter().zip(expected).enumerate() {
        let msn = i as u32 + 1;
        assert_eq!(
            fetch(f, msn, &[FetchAttr::BodyStructure]),
            format!("* {msn} FETCH (BODYSTRUCTURE {structure})\r\n"),
            "{}",
            common::MAILBOX[i]
        );
        assert_eq!(
            fetch(f, msn, &[FetchAttr::Body]),
            format!("* {msn} FETCH (BODY {body})\r\n"),
            "{}",
            common::MAILBOX[i]
        );
    }
}

#[test]
fn utf8_clients_get_utf8_strings() {
    let f = load("mixed.eml");
    let opts = FetchOptions {
        charset: Charset::Utf8,
        ..FetchOptions::default()
    };
    let out = String::from_utf8(fetch_bytes(&f, 1, &[FetchAttr::BodyStructure], &opts)).unwrap();
    assert!(
        out.contains(r#"("name" "отчёт.txt" "charset" "us-ascii")"#),
        "{out}"
    );

    // An 8-bit subject is a literal for ASCII clients, quoted for UTF-8 ones.
    let f = Fixture::from_bytes(
        "Subject: Привет\r\nFrom: a@b.c\r\n\r\nx\r\n"
            .as_bytes()
            .to_vec(),
    );
    let ascii = fetch(&f, 1, &[FetchAttr::Envelope]);
    assert!(ascii.contains("(NIL {12}\r\nПривет ((NIL"), "{ascii}");
    let utf8 = String::from_utf8(fetch_bytes(&f, 1, &[FetchAttr::Envelope], &opts)).unwrap();
    assert!(utf8.contains("(NIL \"Привет\" ((NIL"), "{utf8}");
}

/// Sections of simple.eml, byte for byte as Dovecot sends them.
#[test]
fn sections_of_a_simple_message() {
    let f = load("simple.eml");
    let out = fetch(
        &f,
        1,
        &[
            body(
                &[],
                Some(SectionText::HeaderFields(names(&["x-folded", "Date"]))),
            ),
            body(
                &[],
                Some(SectionText::HeaderFieldsNot(names(&[
                    "received",
                    "return-path",
                    "x-folded",
                    "Message-Id",
                ]))),
            ),
            body(&[], Some(SectionText::HeaderFields(names(&["nothing"])))),
            body(&[1], None),
            body(&[1], Some(SectionText::Mime)),
            body(&[2], None),
            partial(body(&[], Some(SectionText::Text)), 5, 10),
            partial(body(&[], Some(SectionText::Text)), 500, 10),
            partial(body(&[], None), 0, 10),
            partial(binary(&[1]), 0, 3),
            body(&[1], Some(SectionText::Text)),
        ],
    );
    let header = "Return-Path: <alice@example.org>\r\n\
        Received: from mx.example.org by mail.example.com; Tue, 3 Mar 2026 10:00:00 +0000\r\n\
        Date: Tue, 3 Mar 2026 09:59:58 -0800\r\n\
        From: Alice Example <alice@example.org>\r\n\
        To: Bob <bob@example.com>, carol@example.com\r\n\
        Subject: Lunch on Friday?\r\n\
        Message-ID: <simple-1@example.org>\r\n\
        X-Folded: first part\r\n second part\r\n\
        MIME-Version: 1.0\r\n\
        Content-Type: text/plain; charset=us-ascii\r\n\r\n";
    let expected = format!(
        "* 1 FETCH (\
        BODY[HEADER.FIELDS (X-FOLDED DATE)] {{76}}\r\n\
        Date: Tue, 3 Mar 2026 09:59:58 -0800\r\nX-Folded: first part\r\n second part\r\n\r\n \
        BODY[HEADER.FIELDS.NOT (RECEIVED RETURN-PATH X-FOLDED MESSAGE-ID)] {{217}}\r\n\
        Date: Tue, 3 Mar 2026 09:59:58 -0800\r\n\
        From: Alice Example <alice@example.org>\r\n\
        To: Bob <bob@example.com>, carol@example.com\r\n\
        Subject: Lunch on Friday?\r\n\
        MIME-Version: 1.0\r\n\
        Content-Type: text/plain; charset=us-ascii\r\n\r\n \
        BODY[HEADER.FIELDS (NOTHING)] {{2}}\r\n\r\n \
        BODY[1] {{55}}\r\nHi Bob,\r\n\r\nare you free for lunch on Friday?\r\n\r\nAlice\r\n \
        BODY[1.MIME] {{406}}\r\n{header} \
        BODY[2] {{0}}\r\n \
        BODY[TEXT]<5> {{10}}\r\nb,\r\n\r\nare  \
        BODY[TEXT]<500> {{0}}\r\n \
        BODY[]<0> {{10}}\r\nReturn-Pat \
        BINARY[1]<0> {{3}}\r\nHi  \
        BODY[1.TEXT] {{0}}\r\n)\r\n"
    );
    assert_eq!(out, expected);

    // RFC822.* and BODY[HEADER]/BODY[TEXT]/BODY[] are the same bytes.
    let raw = String::from_utf8(f.raw.clone()).unwrap();
    let text = &raw[header.len()..];
    assert_eq!(
        fetch(&f, 1, &[FetchAttr::Rfc822Header, FetchAttr::Rfc822Text]),
        format!("* 1 FETCH (RFC822.HEADER {{406}}\r\n{header} RFC822.TEXT {{55}}\r\n{text})\r\n")
    );
    assert_eq!(
        fetch(
            &f,
            1,
            &[FetchAttr::Rfc822, body(&[], Some(SectionText::Header))]
        ),
        format!("* 1 FETCH (RFC822 {{461}}\r\n{raw} BODY[HEADER] {{406}}\r\n{header})\r\n")
    );
    assert_eq!(
        fetch(
            &f,
            1,
            &[body(&[], Some(SectionText::Text)), body(&[], None)]
        ),
        format!("* 1 FETCH (BODY[TEXT] {{55}}\r\n{text} BODY[] {{461}}\r\n{raw})\r\n")
    );
    // A partial whose window runs past the end is cut; one of length 0 is empty.
    assert_eq!(
        fetch(
            &f,
            1,
            &[
                partial(body(&[1], None), 50, 100),
                partial(body(&[1], None), 0, 0)
            ]
        ),
        "* 1 FETCH (BODY[1]<50> {5}\r\nice\r\n BODY[1]<0> {0}\r\n)\r\n"
    );
}

/// Sections inside nested.eml: part numbers through message/rfc822 parts,
/// MIME of parts, HEADER/TEXT/HEADER.FIELDS of encapsulated messages, as
/// Dovecot answers them (including empty literals for what does not exist).
#[test]
fn sections_of_nested_messages() {
    let f = load("nested.eml");
    let out = fetch(
        &f,
        4,
        &[
            body(&[9], None),
            body(&[1, 2], None),
            body(&[2, 9], None),
            body(&[1], Some(SectionText::Header)),
            body(&[1], Some(SectionText::Mime)),
            body(&[2], Some(SectionText::Mime)),
            body(&[2], Some(SectionText::Header)),
            body(&[2], Some(SectionText::Text)),
            body(&[3, 1], None),
            body(&[3, 1], Some(SectionText::Mime)),
            body(&[2, 1], Some(SectionText::Mime)),
            body(&[2, 1], None),
            body(
                &[2],
                Some(SectionText::HeaderFields(names(&["subject", "from"]))),
            ),
        ],
    );
    let inner_header = "Date: Mon, 2 Mar 2026 11:00:00 -0500\r\n\
        From: Ivan <ivan@example.org>\r\n\
        To: Grace <grace@example.com>\r\n\
        Subject: The original\r\n\
        Message-ID: <orig-1@example.org>\r\n\
        MIME-Version: 1.0\r\n\
        Content-Type: multipart/alternative; boundary=\"INNER\"\r\n\r\n";
    let inner_text = "--INNER\r\n\
        Content-Type: text/plain; charset=us-ascii\r\n\r\n\
        Original text body.\r\n\
        --INNER\r\n\
        Content-Type: text/html; charset=us-ascii\r\n\r\n\
        <p>Original <i>html</i> body.</p>\r\n\
        --INNER--";
    // Dovecot's BODY[2.TEXT] is 176 octets: it keeps the CRLF after
    // "--INNER--", which belongs to the outer boundary; ours is 174.
    let expected = format!(
        "* 4 FETCH (BODY[9] {{0}}\r\n BODY[1.2] {{0}}\r\n BODY[2.9] {{0}}\r\n \
        BODY[1.HEADER] {{0}}\r\n \
        BODY[1.MIME] {{28}}\r\nContent-Type: text/plain\r\n\r\n \
        BODY[2.MIME] {{61}}\r\nContent-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n \
        BODY[2.HEADER] {{233}}\r\n{inner_header} \
        BODY[2.TEXT] {{174}}\r\n{inner_text} \
        BODY[3.1] {{30}}\r\nJust text in a nested message. \
        BODY[3.1.MIME] {{61}}\r\nFrom: Judy <judy@example.org>\r\nSubject: Single part inner\r\n\r\n \
        BODY[2.1.MIME] {{46}}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n \
        BODY[2.1] {{19}}\r\nOriginal text body. \
        BODY[2.HEADER.FIELDS (SUBJECT FROM)] {{56}}\r\n\
        From: Ivan <ivan@example.org>\r\nSubject: The original\r\n\r\n)\r\n"
    );
    assert_eq!(out, expected);
    // BODY[2] is the whole encapsulated message.
    assert_eq!(
        fetch(&f, 4, &[body(&[2], None)]),
        format!("* 4 FETCH (BODY[2] {{407}}\r\n{inner_header}{inner_text})\r\n")
    );
}

#[test]
fn binary_decoding() {
    let alt = load("alternative.eml");
    let schoene = "Schöne Grüße aus München, mit einer sehr langen Zeile die umbrochen wurde.";
    // Dovecot sends this (QP-decoded, 8-bit, no NUL) as literal8; a plain
    // literal is what RFC 3516 asks for when there is no NUL.
    let out = fetch_bytes(
        &alt,
        2,
        &[
            binary(&[1]),
            FetchAttr::BinarySize { part: vec![1] },
            // Octets, not characters: this cuts "ü" in half, as in Dovecot.
            partial(binary(&[1]), 5, 6),
        ],
        &FetchOptions::default(),
    );
    let mut expected = format!(
        "* 2 FETCH (BINARY[1] {{78}}\r\n{schoene} BINARY.SIZE[1] 78 BINARY[1]<5> {{6}}\r\nne Gr"
    )
    .into_bytes();
    expected.extend_from_slice(b"\xc3)\r\n");
    assert_eq!(out, expected);

    // Base64 with NUL octets: literal8.
    let bin = load("binary.eml");
    let out = fetch_bytes(
        &bin,
        7,
        &[
            binary(&[2]),
            FetchAttr::BinarySize { part: vec![2] },
            FetchAttr::BinarySize { part: vec![1] },
        ],
        &FetchOptions::default(),
    );
    assert_eq!(
        out,
        b"* 7 FETCH (BINARY[2] ~{12}\r\nab\0cd\0\xff\r\nxyz BINARY.SIZE[2] 12 BINARY.SIZE[1] 4)\r\n"
    );

    // Nonexistent parts: empty, size 0 (as Dovecot).
    assert_eq!(
        fetch(
            &bin,
            7,
            &[binary(&[9]), FetchAttr::BinarySize { part: vec![9] }]
        ),
        "* 7 FETCH (BINARY[9] {0}\r\n BINARY.SIZE[9] 0)\r\n"
    );

    // An unknown Content-Transfer-Encoding: an error, nothing written.
    for attr in [binary(&[3]), FetchAttr::BinarySize { part: vec![3] }] {
        let mut out = b"before".to_vec();
        let err = write_fetch(
            &mut out,
            &bin.view(7),
            &[FetchAttr::Uid, attr],
            &FetchOptions::default(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            FetchError::UnknownCte {
                part: vec![3],
                encoding: "X-UUENCODE".to_string()
            }
        );
        assert_eq!(err.response_code(), Some("UNKNOWN-CTE"));
        assert_eq!(out, b"before");
    }

    // A message/rfc822 part and the whole message are sent as they are.
    let nested = load("nested.eml");
    let out = fetch(
        &nested,
        4,
        &[
            binary(&[2, 1]),
            binary(&[3, 1]),
            FetchAttr::BinarySize { part: vec![2] },
        ],
    );
    assert_eq!(
        out,
        "* 4 FETCH (BINARY[2.1] {19}\r\nOriginal text body. BINARY[3.1] {30}\r\nJust text in a nested message. BINARY.SIZE[2] 407)\r\n"
    );
    let mixed = load("mixed.eml");
    let out = fetch_bytes(
        &mixed,
        3,
        &[
            FetchAttr::BinarySize { part: vec![2] },
            binary(&[1]),
            FetchAttr::BinarySize { part: vec![] },
        ],
        &FetchOptions::default(),
    );
    // Dovecot decodes every part of the whole message for BINARY[] (1855
    // octets here); we send the message as stored.
    assert_eq!(
        out,
        b"* 3 FETCH (BINARY.SIZE[2] 768 BINARY[1] {38}\r\nHere is the report. Caf\xe9 costs are up. BINARY.SIZE[] 2149)\r\n"
    );
    let out = fetch_bytes(&mixed, 3, &[binary(&[2])], &FetchOptions::default());
    let pdf: Vec<u8> = (0..=255u8).cycle().take(768).collect();
    let mut expected = b"* 3 FETCH (BINARY[2] ~{768}\r\n".to_vec();
    expected.extend_from_slice(&pdf);
    expected.extend_from_slice(b")\r\n");
    assert_eq!(out, expected);
}

#[test]
fn flags_dates_sizes_and_ids() {
    let mb = mailbox();
    // Dovecot: FLAGS (\Answered \Flagged $Forwarded Junk) INTERNALDATE
    // "26-Nov-2026 15:00:29 +0000" RFC822.SIZE 461 MODSEQ (5) PREVIEW "..."
    assert_eq!(
        fetch(
            &mb[0],
            1,
            &[
                FetchAttr::Flags,
                FetchAttr::InternalDate,
                FetchAttr::Rfc822Size,
                FetchAttr::ModSeq,
                FetchAttr::Preview { lazy: false },
                FetchAttr::SaveDate,
                FetchAttr::Uid,
                FetchAttr::EmailId,
                FetchAttr::ThreadId,
            ]
        ),
        "* 1 FETCH (FLAGS (\\Answered \\Flagged $Forwarded Junk) \
         INTERNALDATE \"26-Nov-2026 15:00:29 +0000\" RFC822.SIZE 461 MODSEQ (10) \
         PREVIEW \"Hi Bob, are you free for lunch on Friday? Alice\" \
         SAVEDATE \"26-Nov-2026 15:00:29 +0000\" UID 1 EMAILID (M3e9) THREADID (T1))\r\n"
    );
    // All flags, in Dovecot's order, \Recent last; no flags is "()".
    let mut f = load("empty.eml");
    assert_eq!(
        fetch(&f, 9, &[FetchAttr::Flags]),
        "* 9 FETCH (FLAGS ())\r\n"
    );
    f.flags = pochta_proto_imap::view::SystemFlags {
        seen: true,
        answered: true,
        flagged: true,
        deleted: true,
        draft: true,
        recent: true,
    };
    assert_eq!(
        fetch(&f, 9, &[FetchAttr::Flags]),
        "* 9 FETCH (FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\Recent))\r\n"
    );
    // Dates: zero-padded day, before 1970 too.
    f.internal_date = 0;
    assert_eq!(
        fetch(&f, 9, &[FetchAttr::InternalDate]),
        "* 9 FETCH (INTERNALDATE \"01-Jan-1970 00:00:00 +0000\")\r\n"
    );
    f.internal_date = 951_782_400 - 1; // 2000-02-28 23:59:59
    assert_eq!(
        fetch(&f, 9, &[FetchAttr::InternalDate]),
        "* 9 FETCH (INTERNALDATE \"28-Feb-2000 23:59:59 +0000\")\r\n"
    );
    f.internal_date = 951_868_800; // 2000-03-01, after a leap day
    assert_eq!(
        fetch(&f, 9, &[FetchAttr::InternalDate]),
        "* 9 FETCH (INTERNALDATE \"01-Mar-2000 00:00:00 +0000\")\r\n"
    );
    f.internal_date = -86_400 - 3600;
    assert_eq!(
        fetch(&f, 9, &[FetchAttr::InternalDate]),
        "* 9 FETCH (INTERNALDATE \"30-Dec-1969 23:00:00 +0000\")\r\n"
    );
}

#[test]
fn preview() {
    let mb = mailbox();
    // A message without text has an empty preview (Dovecot: PREVIEW "").
    assert_eq!(
        fetch(&mb[7], 8, &[FetchAttr::Preview { lazy: true }]),
        "* 8 FETCH (PREVIEW \"\")\r\n"
    );
    // Non-ASCII preview: a literal for ASCII clients (as Dovecot), quoted
    // for UTF-8 ones.
    let out = fetch_bytes(
        &mb[2],
        3,
        &[FetchAttr::Preview { lazy: false }],
        &FetchOptions::default(),
    );
    assert_eq!(
        out,
        "* 3 FETCH (PREVIEW {39}\r\nHere is the report. Café costs are up.)\r\n".as_bytes()
    );
    let out = fetch_bytes(
        &mb[2],
        3,
        &[FetchAttr::Preview { lazy: false }],
        &FetchOptions {
            charset: Charset::Utf8,
            ..FetchOptions::default()
        },
    );
    assert_eq!(
        out,
        "* 3 FETCH (PREVIEW \"Here is the report. Café costs are up.\")\r\n".as_bytes()
    );
}

#[test]
fn forced_items() {
    let f = load("simple.eml");
    let opts = FetchOptions {
        include_uid: true,
        include_modseq: true,
        include_flags: true,
        ..FetchOptions::default()
    };
    // UID first, FLAGS and MODSEQ appended when not requested.
    assert_eq!(
        String::from_utf8(fetch_bytes(&f, 3, &[FetchAttr::Rfc822Size], &opts)).unwrap(),
        "* 3 FETCH (UID 3 RFC822.SIZE 461 FLAGS () MODSEQ (30))\r\n"
    );
    // Requested ones are not repeated.
    assert_eq!(
        String::from_utf8(fetch_bytes(
            &f,
            3,
            &[FetchAttr::ModSeq, FetchAttr::Uid, FetchAttr::Flags],
            &opts
        ))
        .unwrap(),
        "* 3 FETCH (UID 3 MODSEQ (30) FLAGS ())\r\n"
    );
    // Several lines append to the same buffer.
    let mut out = Vec::new();
    let v = f.view(1);
    write_fetch(&mut out, &v, &[FetchAttr::Uid], &FetchOptions::default()).unwrap();
    write_fetch(&mut out, &v, &[FetchAttr::Uid], &FetchOptions::default()).unwrap();
    assert_eq!(out, b"* 1 FETCH (UID 1)\r\n* 1 FETCH (UID 1)\r\n");
}

#[test]
fn raw_is_needed_only_for_bytes() {
    let f = load("simple.eml");
    let mut v = f.view(1);
    v.raw = None;
    let meta_only = [
        FetchAttr::Envelope,
        FetchAttr::Flags,
        FetchAttr::InternalDate,
        FetchAttr::Rfc822Size,
        FetchAttr::Body,
        FetchAttr::BodyStructure,
        FetchAttr::Uid,
        FetchAttr::ModSeq,
        FetchAttr::EmailId,
        FetchAttr::ThreadId,
        FetchAttr::Preview { lazy: false },
        FetchAttr::SaveDate,
    ];
    assert!(!needs_raw(&meta_only));
    let mut out = Vec::new();
    write_fetch(&mut out, &v, &meta_only, &FetchOptions::default()).unwrap();

    for attr in [
        FetchAttr::Rfc822,
        FetchAttr::Rfc822Header,
        FetchAttr::Rfc822Text,
        body(&[], None),
        binary(&[1]),
        FetchAttr::BinarySize { part: vec![1] },
    ] {
        let attrs = [FetchAttr::Uid, attr];
        assert!(needs_raw(&attrs), "{attrs:?}");
        if matches!(attrs[1], FetchAttr::BinarySize { .. }) {
            // A 7bit part's decoded size is its size: no bytes needed.
            continue;
        }
        let mut out = b"x".to_vec();
        assert_eq!(
            write_fetch(&mut out, &v, &attrs, &FetchOptions::default()),
            Err(FetchError::MissingRaw)
        );
        assert_eq!(out, b"x");
    }
}

#[test]
fn seen_flag_rules() {
    let peek = body(&[], None);
    let no_peek = FetchAttr::BodySection {
        peek: false,
        section: Section {
            part: vec![],
            text: None,
        },
        partial: None,
    };
    assert!(!sets_seen(&[
        peek,
        FetchAttr::Rfc822Header,
        binary(&[1]),
        FetchAttr::Envelope
    ]));
    assert!(sets_seen(&[no_peek]));
    assert!(sets_seen(&[FetchAttr::Rfc822]));
    assert!(sets_seen(&[FetchAttr::Rfc822Text]));
    assert!(sets_seen(&[FetchAttr::Binary {
        peek: false,
        part: vec![1],
        partial: None
    }]));
    assert!(!sets_seen(&[FetchAttr::BinarySize { part: vec![1] }]));
}

#[test]
fn object_ids() {
    assert_eq!(email_id(0), "M0");
    assert_eq!(email_id(0x1234abcd), "M1234abcd");
    assert_eq!(thread_id(u64::MAX), "Tffffffffffffffff");
    for id in [0, 1, 255, 1 << 40, u64::MAX] {
        assert_eq!(parse_email_id(&email_id(id)), Some(id));
        assert_eq!(parse_thread_id(&thread_id(id)), Some(id));
    }
    for bad in [
        "",
        "M",
        "T1",
        "m1",
        "M01",
        "M1A",
        "M-1",
        "M10000000000000000",
        "Mx",
    ] {
        assert_eq!(parse_email_id(bad), None, "{bad}");
    }
    assert_eq!(parse_thread_id("M1"), None);
}

#[test]
fn nul_octets_in_body_sections() {
    let f = Fixture::from_bytes(b"Subject: x\r\n\r\na\0b\r\n".to_vec());
    // A literal may not carry NUL: BODY[] sends 0x80 instead; BINARY uses
    // literal8 and keeps it.
    assert_eq!(
        fetch_bytes(
            &f,
            1,
            &[body(&[], Some(SectionText::Text)), binary(&[1])],
            &FetchOptions::default()
        ),
        b"* 1 FETCH (BODY[TEXT] {5}\r\na\x80b\r\n BINARY[1] ~{5}\r\na\0b\r\n)\r\n"
    );
}

#[test]
fn header_fields_edge_cases() {
    // LF-only line ends, a header without a body, field names with spaces
    // before the colon, and repeated fields.
    let f = Fixture::from_bytes(b"A: 1\nB : 2\n  cont\nA: 3\n".to_vec());
    assert_eq!(
        fetch(
            &f,
            1,
            &[
                body(&[], Some(SectionText::HeaderFields(names(&["a"])))),
                body(&[], Some(SectionText::HeaderFields(names(&["b"])))),
                body(&[], Some(SectionText::HeaderFieldsNot(names(&["A"])))),
            ]
        ),
        "* 1 FETCH (BODY[HEADER.FIELDS (A)] {12}\r\nA: 1\nA: 3\n\r\n \
         BODY[HEADER.FIELDS (B)] {15}\r\nB : 2\n  cont\n\r\n \
         BODY[HEADER.FIELDS.NOT (A)] {15}\r\nB : 2\n  cont\n\r\n)\r\n"
    );
}

/// Found by the `imap_session` fuzz target: a field name with `]` or `[` (a
/// valid atom) was echoed bare inside `BODY[...]`, where a client's parser
/// ends the section at it or opens another.
#[test]
fn fuzz_field_names_with_a_bracket_are_quoted_in_the_section() {
    let f = Fixture::from_bytes(b"Subject: hi\r\n\r\nbody\r\n".to_vec());
    assert_eq!(
        fetch(
            &f,
            1,
            &[body(
                &[],
                Some(SectionText::HeaderFields(names(&["Subje]t", "From", "T["])))
            )]
        ),
        "* 1 FETCH (BODY[HEADER.FIELDS (\"SUBJE]T\" FROM \"T[\")] {2}\r\n\r\n)\r\n"
    );
}

/// Found by the `imap_session` fuzz target after the fix above: a bracketed
/// name longer than `MAX_QUOTED` (1024) went out as a literal, splitting
/// `BODY[...]` over two lines. It is quoted at any length.
#[test]
fn fuzz_long_field_names_with_a_bracket_stay_quoted_in_the_section() {
    let f = Fixture::from_bytes(b"Subject: hi\r\n\r\nbody\r\n".to_vec());
    let long = format!("Messa{}", "]".repeat(1300));
    assert_eq!(
        fetch(
            &f,
            1,
            &[body(
                &[],
                Some(SectionText::HeaderFields(names(&["subject", &long])))
            )]
        ),
        format!(
            "* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT \"{}\")] {{15}}\r\nSubject: hi\r\n\r\n)\r\n",
            long.to_ascii_uppercase()
        )
    );
}

#[test]
fn transfer_decoders() {
    assert_eq!(decode_base64(b"aGVs\r\nbG8="), b"hello");
    assert_eq!(decode_base64(b"aGVsbG8"), b"hello");
    assert_eq!(decode_base64(b""), b"");
    assert_eq!(
        decode_quoted_printable(b"caf=C3=A9 =\r\nx=\ny =ZZ="),
        "café xy =ZZ".as_bytes()
    );
    // Trailing white space is padding; "=" then spaces is a soft break.
    assert_eq!(
        decode_quoted_printable(b"a  \r\nb\t\nc =  \r\nd"),
        b"a\r\nb\nc d"
    );
    assert_eq!(decode_quoted_printable(b"x = y"), b"x = y");
    assert_eq!(decode_quoted_printable(b"=4"), b"=4");
}
