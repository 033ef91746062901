//! Helpers shared by the integration tests: fixture loading, the structural invariants
//! every [`MessageMeta`] must satisfy, and a small deterministic PRNG.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use pochta_message::{
    BodyPart, Envelope, ImapAddress, META_VERSION, MessageMeta, PREVIEW_CHARS, PartKind,
};

/// Directory holding this crate's own fixtures.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Reads one fixture.
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(name)).unwrap()
}

/// All fixtures as (file name, bytes), sorted by name.
pub fn all_fixtures() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    assert!(out.len() >= 10, "fixtures missing");
    out
}

/// Parses `raw` and checks every invariant; returns the meta.
pub fn parse_checked(raw: &[u8], what: &str) -> MessageMeta {
    let meta = pochta_message::parse(raw);
    check(&meta, raw, what);
    meta
}

/// Number of lines as the crate defines it.
/// Line feeds, the way Dovecot counts BODYSTRUCTURE lines.
fn count_lines(body: &[u8]) -> u64 {
    body.iter().filter(|&&b| b == b'\n').count() as u64
}

/// Checks the invariants of a meta produced from `raw`.
pub fn check(meta: &MessageMeta, raw: &[u8], what: &str) {
    let size = raw.len() as u64;
    assert_eq!(meta.version, META_VERSION, "{what}: version");
    assert_eq!(meta.size, size, "{what}: size");
    assert_eq!(meta.body.header_start, 0, "{what}: top header_start");
    assert_eq!(meta.body.body_end, size, "{what}: top body_end");
    assert!(
        meta.preview.chars().count() <= PREVIEW_CHARS,
        "{what}: preview too long"
    );
    assert_eq!(
        meta.preview.trim(),
        meta.preview,
        "{what}: preview not trimmed"
    );
    check_part(&meta.body, raw, 0, size, 0, what);
    check_envelope(&meta.envelope, what);
    for list in [
        &meta.from,
        &meta.sender,
        &meta.reply_to,
        &meta.to,
        &meta.cc,
        &meta.bcc,
    ] {
        for a in list {
            assert!(
                a.name.is_some() || !a.email.is_empty(),
                "{what}: empty address"
            );
        }
    }

    // The top-level body is part 1 of a non-multipart message, and part() of an empty
    // path is the body itself.
    assert_eq!(meta.part(&[]), Some(&meta.body), "{what}: part([])");
    if !meta.body.is_multipart() {
        assert_eq!(meta.part(&[1]), Some(&meta.body), "{what}: part([1])");
    }
    assert_eq!(meta.part(&[0]), None, "{what}: part([0])");

    // Serde round trip, both through the helpers and through serde_json directly.
    let json = meta.to_json();
    let back = MessageMeta::from_json(json.as_bytes())
        .unwrap_or_else(|e| panic!("{what}: JSON round trip failed: {e}"));
    assert_eq!(&back, meta, "{what}: JSON round trip differs");
    // The stored (binary) form, and decode() reading the JSON of older stores.
    let stored = meta.encode();
    assert_eq!(
        stored.first(),
        Some(&0),
        "{what}: stored form starts with its marker"
    );
    let back = MessageMeta::decode(&stored)
        .unwrap_or_else(|e| panic!("{what}: binary round trip failed: {e}"));
    assert_eq!(&back, meta, "{what}: binary round trip differs");
    let back = MessageMeta::decode(json.as_bytes())
        .unwrap_or_else(|e| panic!("{what}: decode of the JSON form failed: {e}"));
    assert_eq!(&back, meta, "{what}: decode of the JSON form differs");
    assert!(
        MessageMeta::decode(&stored[..stored.len() - 1]).is_err(),
        "{what}: a truncated stored form is refused"
    );
}

fn check_part(part: &BodyPart, raw: &[u8], lo: u64, hi: u64, depth: usize, what: &str) {
    let size = raw.len() as u64;
    assert!(
        lo <= part.header_start
            && part.header_start <= part.body_start
            && part.body_start <= part.body_end
            && part.body_end <= hi
            && hi <= size,
        "{what}: bad offsets {}..{}..{} outside {lo}..{hi}",
        part.header_start,
        part.body_start,
        part.body_end
    );
    assert!(depth <= pochta_message::MAX_DEPTH, "{what}: too deep");
    assert_eq!(part.size, part.body_end - part.body_start, "{what}: size");
    let body = &raw[part.body_range()];
    assert_eq!(part.lines, count_lines(body), "{what}: lines");
    assert!(
        !part.media_type.is_empty() && !part.media_subtype.is_empty(),
        "{what}: type"
    );
    assert_eq!(
        part.media_type,
        part.media_type.to_ascii_lowercase(),
        "{what}: type case"
    );
    assert_eq!(
        part.media_subtype,
        part.media_subtype.to_ascii_lowercase(),
        "{what}: subtype case"
    );
    assert!(!part.encoding.is_empty(), "{what}: encoding");
    assert_eq!(
        part.encoding,
        part.encoding.to_ascii_uppercase(),
        "{what}: encoding case"
    );
    for (name, _) in &part.params {
        assert_eq!(name, &name.to_ascii_lowercase(), "{what}: param name case");
    }
    assert_eq!(
        part.charset.as_deref(),
        part.params
            .iter()
            .find(|(k, _)| k == "charset")
            .map(|(_, v)| v.as_str()),
        "{what}: charset"
    );
    let is_message_type =
        part.media_type == "message" && matches!(part.media_subtype.as_str(), "rfc822" | "global");
    match &part.kind {
        PartKind::Leaf => {
            assert_ne!(part.media_type, "multipart", "{what}: multipart leaf");
            assert!(!is_message_type, "{what}: message leaf");
        }
        PartKind::Multipart(children) => {
            assert_eq!(
                part.media_type, "multipart",
                "{what}: children of non-multipart"
            );
            assert!(!children.is_empty(), "{what}: empty multipart");
            let mut cursor = part.body_start;
            for child in children {
                assert!(
                    child.header_start >= cursor,
                    "{what}: children out of order"
                );
                check_part(child, raw, cursor, part.body_end, depth + 1, what);
                cursor = child.body_end;
            }
        }
        PartKind::Message { envelope, body } => {
            assert!(is_message_type, "{what}: message kind of non-message");
            assert_eq!(
                body.header_start, part.body_start,
                "{what}: inner header_start"
            );
            assert_eq!(body.body_end, part.body_end, "{what}: inner body_end");
            check_envelope(envelope, what);
            check_part(body, raw, part.body_start, part.body_end, depth + 1, what);
        }
    }
}

fn check_envelope(envelope: &Envelope, what: &str) {
    for list in [
        &envelope.from,
        &envelope.sender,
        &envelope.reply_to,
        &envelope.to,
        &envelope.cc,
        &envelope.bcc,
    ] {
        check_address_list(list, what);
    }
    if !envelope.from.is_empty() {
        assert!(!envelope.sender.is_empty(), "{what}: sender not filled");
        assert!(!envelope.reply_to.is_empty(), "{what}: reply_to not filled");
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
        assert!(!s.contains(['\r', '\n']), "{what}: folded envelope string");
        assert_eq!(s.trim(), s, "{what}: untrimmed envelope string");
    }
}

/// Group markers are balanced and members always have a host.
fn check_address_list(list: &[ImapAddress], what: &str) {
    let mut in_group = false;
    for a in list {
        assert!(a.adl.is_none(), "{what}: adl");
        if a.is_group_end() {
            assert!(in_group, "{what}: group end without start");
            assert!(a.name.is_none());
            in_group = false;
        } else if a.is_group_start() {
            assert!(!in_group, "{what}: nested group");
            assert!(a.name.is_none());
            in_group = true;
        } else {
            assert!(a.host.is_some() && a.mailbox.is_some(), "{what}: member");
            if let Some(name) = &a.name {
                assert!(name.is_ascii(), "{what}: non-ASCII IMAP name");
            }
        }
    }
    assert!(!in_group, "{what}: unterminated group");
}

/// xorshift64* — deterministic, good enough to drive input generation.
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (seed 0 is replaced).
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}
