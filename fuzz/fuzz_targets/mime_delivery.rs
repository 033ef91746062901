//! MIME parsing at delivery: `pochta_message::parse` of arbitrary bytes, and
//! every accessor delivery and the protocols use on the result — the header
//! scanners (`header_end`, `find_header`, `count_headers`), the stored JSON
//! form and its light variant, part lookup, walking, file names, base
//! subject, transfer decoding, and the IMAP renderings built from the meta
//! (ENVELOPE, BODYSTRUCTURE, BODY[section], BINARY[part]).
//!
//! Invariants (those of crates/message/tests/common): offsets nested and
//! within the message, sizes and line counts right, media types lower case
//! and consistent with the part kind, depth bounded, group markers balanced,
//! envelope strings unfolded and trimmed, the JSON form round-trips; the
//! header scanners agree with each other; and the IMAP renderings are valid
//! IMAP syntax.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_fuzz::check_imap_responses;
use pochta_message::{
    BodyPart, Envelope, ImapAddress, MAX_DEPTH, MessageMeta, PREVIEW_CHARS, PartKind, base_subject,
    count_headers, find_header, header_end,
};
use pochta_proto_imap::encode::Charset;
use pochta_proto_imap::fetch::{binary_data, section_data, write_body_structure, write_envelope};
use pochta_proto_imap::types::{Section, SectionText};

/// Line feeds, as Dovecot counts BODYSTRUCTURE lines.
fn count_lines(body: &[u8]) -> u64 {
    body.iter().filter(|&&b| b == b'\n').count() as u64
}

fn check_part(part: &BodyPart, raw: &[u8], lo: u64, hi: u64, depth: usize) {
    assert!(
        lo <= part.header_start
            && part.header_start <= part.body_start
            && part.body_start <= part.body_end
            && part.body_end <= hi
            && hi <= raw.len() as u64,
        "bad offsets {}..{}..{} outside {lo}..{hi}",
        part.header_start,
        part.body_start,
        part.body_end
    );
    assert!(depth <= MAX_DEPTH, "too deep");
    assert_eq!(part.size, part.body_end - part.body_start, "size");
    assert_eq!(part.lines, count_lines(&raw[part.body_range()]), "lines");
    assert!(!part.media_type.is_empty() && !part.media_subtype.is_empty());
    assert_eq!(part.media_type, part.media_type.to_ascii_lowercase());
    assert_eq!(part.media_subtype, part.media_subtype.to_ascii_lowercase());
    assert_eq!(part.encoding, part.encoding.to_ascii_uppercase());
    assert_eq!(
        part.charset.as_deref(),
        part.params
            .iter()
            .find(|(k, _)| k == "charset")
            .map(|(_, v)| v.as_str()),
        "charset"
    );
    let _ = (part.filename(), part.param("name"), part.header_range());
    let message_type =
        part.media_type == "message" && matches!(part.media_subtype.as_str(), "rfc822" | "global");
    match &part.kind {
        PartKind::Leaf => {
            assert_ne!(part.media_type, "multipart", "multipart leaf");
            assert!(!message_type, "message leaf");
        }
        PartKind::Multipart(children) => {
            assert_eq!(part.media_type, "multipart", "children of a non-multipart");
            assert!(!children.is_empty(), "empty multipart");
            let mut cursor = part.body_start;
            for child in children {
                assert!(child.header_start >= cursor, "children out of order");
                check_part(child, raw, cursor, part.body_end, depth + 1);
                cursor = child.body_end;
            }
        }
        PartKind::Message { envelope, body } => {
            assert!(message_type, "message kind of a non-message");
            assert_eq!(body.header_start, part.body_start);
            assert_eq!(body.body_end, part.body_end);
            check_envelope(envelope);
            check_part(body, raw, part.body_start, part.body_end, depth + 1);
        }
    }
}

fn check_envelope(envelope: &Envelope) {
    for list in [
        &envelope.from,
        &envelope.sender,
        &envelope.reply_to,
        &envelope.to,
        &envelope.cc,
        &envelope.bcc,
    ] {
        check_address_list(list);
    }
    if !envelope.from.is_empty() {
        assert!(!envelope.sender.is_empty() && !envelope.reply_to.is_empty());
    }
    for s in [
        &envelope.date,
        &envelope.subject,
        &envelope.in_reply_to,
        &envelope.message_id,
    ]
    .into_iter()
    .flatten()
    {
        assert!(!s.contains(['\r', '\n']), "folded envelope string {s:?}");
        assert_eq!(s.trim(), s, "untrimmed envelope string");
    }
}

fn check_address_list(list: &[ImapAddress]) {
    let mut in_group = false;
    for a in list {
        assert!(a.adl.is_none());
        if a.is_group_end() {
            assert!(in_group, "group end without start");
            in_group = false;
        } else if a.is_group_start() {
            assert!(!in_group, "nested group");
            in_group = true;
        } else {
            assert!(
                a.host.is_some() && a.mailbox.is_some(),
                "member without host"
            );
            if let Some(name) = &a.name {
                assert!(name.is_ascii(), "non-ASCII IMAP name {name:?}");
            }
        }
    }
    assert!(!in_group, "unterminated group");
}

/// Every part path of the tree (IMAP section numbers), depth first.
fn paths(part: &BodyPart, prefix: &mut Vec<u32>, out: &mut Vec<Vec<u32>>) {
    let children: Vec<&BodyPart> = match &part.kind {
        PartKind::Multipart(children) => children.iter().collect(),
        PartKind::Message { body, .. } if body.is_multipart() => body.children().iter().collect(),
        PartKind::Message { body, .. } => vec![body.as_ref()],
        PartKind::Leaf => Vec::new(),
    };
    for (i, child) in children.into_iter().enumerate() {
        prefix.push(i as u32 + 1);
        out.push(prefix.clone());
        if out.len() < 200 {
            paths(child, prefix, out);
        }
        prefix.pop();
    }
}

fn check_imap_renderings(meta: &MessageMeta, raw: &[u8]) {
    for (cs, utf8) in [(Charset::Ascii, false), (Charset::Utf8, true)] {
        let mut out = b"* 1 FETCH (ENVELOPE ".to_vec();
        write_envelope(&mut out, &meta.envelope, cs);
        out.extend_from_slice(b" BODY ");
        write_body_structure(&mut out, &meta.body, false, cs);
        out.extend_from_slice(b" BODYSTRUCTURE ");
        write_body_structure(&mut out, &meta.body, true, cs);
        out.extend_from_slice(b")\r\n");
        check_imap_responses(&out, utf8);
    }
    let mut all = vec![Vec::new()];
    paths(&meta.body, &mut Vec::new(), &mut all);
    all.push(vec![0]);
    all.push(vec![1, 99]);
    for path in &all {
        let found = meta.part(path);
        if path.first() == Some(&0) {
            assert!(found.is_none(), "part 0 exists");
        }
        for text in [
            None,
            Some(SectionText::Header),
            Some(SectionText::Text),
            Some(SectionText::Mime),
            Some(SectionText::HeaderFields(vec![
                "Subject".into(),
                "FROM".into(),
            ])),
            Some(SectionText::HeaderFieldsNot(vec!["to".into()])),
        ] {
            let section = Section {
                part: path.clone(),
                text,
            };
            let data = section_data(raw, &meta.body, &section);
            // HEADER.FIELDS ends every field and the section with CRLF, so
            // an LF-only or unterminated header can grow, but never beyond
            // doubling.
            assert!(
                data.len() <= 2 * raw.len() + 4,
                "BODY[{section:?}] of {} octets from a {}-octet message",
                data.len(),
                raw.len()
            );
        }
        let _ = binary_data(raw, &meta.body, path);
    }
}

fn check(raw: &[u8]) {
    let meta = pochta_message::parse(raw);
    let size = raw.len() as u64;
    assert_eq!(meta.size, size);
    assert_eq!(meta.body.header_start, 0);
    assert_eq!(meta.body.body_end, size);
    assert!(meta.preview.chars().count() <= PREVIEW_CHARS);
    assert_eq!(meta.preview.trim(), meta.preview);
    check_part(&meta.body, raw, 0, size, 0);
    check_envelope(&meta.envelope);
    assert_eq!(meta.part(&[]), Some(&meta.body));
    if !meta.body.is_multipart() {
        assert_eq!(meta.part(&[1]), Some(&meta.body));
    }
    let mut walked = 0;
    meta.body.walk(&mut |_| walked += 1);
    assert!(walked >= 1);
    if let Some(subject) = &meta.subject {
        let base = base_subject(subject);
        assert_eq!(base_subject(&base), base, "base subject not idempotent");
    }

    // The stored forms.
    let json = meta.to_json();
    let back = MessageMeta::from_json(json.as_bytes()).expect("the stored JSON reads back");
    assert_eq!(back, meta, "JSON round trip differs");
    let light = meta.light();
    let back = MessageMeta::from_json(light.to_json().as_bytes()).expect("light JSON reads back");
    assert_eq!(back, light);
    let back = MessageMeta::decode(&meta.encode()).expect("the stored form reads back");
    assert_eq!(back, meta, "binary round trip differs");
    let back = MessageMeta::decode(&light.encode()).expect("the light stored form reads back");
    assert_eq!(back, light, "light binary round trip differs");
    // Damaged stored forms are refused or read as something, never a panic.
    let stored = meta.encode();
    let _ = MessageMeta::decode(&stored[..stored.len() / 2]);
    let _ = MessageMeta::decode(&raw[..raw.len().min(4096)]);

    // The scanners delivery runs before the full parse.
    let end = header_end(raw);
    assert!(end <= raw.len());
    for name in ["Received", "Message-ID", "Date", "From", "Subject"] {
        let n = count_headers(raw, name);
        let found = find_header(raw, name);
        assert_eq!(
            n > 0,
            found.is_some(),
            "count_headers and find_header disagree on {name}"
        );
        if let Some(v) = found {
            let offset = v.as_ptr() as usize - raw.as_ptr() as usize;
            assert!(offset + v.len() <= end, "{name} value outside the header");
        }
    }

    // Transfer decoding of every leaf, as BINARY and JMAP downloads do.
    meta.body.walk(&mut |p| {
        if matches!(p.kind, PartKind::Leaf) {
            let body = &raw[p.body_range()];
            let _ = pochta_message::decode::base64(body);
            let _ = pochta_message::decode::quoted_printable(body);
        }
    });
    if let Ok(text) = std::str::from_utf8(raw) {
        let _ = pochta_message::collate::casemap(text);
    }

    check_imap_renderings(&meta, raw);
}

fuzz_target!(|data: &[u8]| {
    check(data);
});
