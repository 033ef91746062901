//! The parser hides the words "rfc822", "global" and "digest" from mail-parser (see
//! `src/build.rs`). These tests check that this never moves a part boundary: where
//! mail-parser does not nest messages, the offsets must equal mail-parser's own.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Rng, all_fixtures, parse_checked};
use mail_parser::{MessageParser, MimeHeaders, PartType};
use pochta_message::{BodyPart, PartKind};

/// (header_start, body_start, body_end) of every part in tree order.
fn ours(part: &BodyPart, out: &mut Vec<(u64, u64, u64)>) {
    out.push((part.header_start, part.body_start, part.body_end));
    if let PartKind::Multipart(children) = &part.kind {
        for child in children {
            ours(child, out);
        }
    }
}

/// The same from mail-parser's flat part list (which is in tree order too).
fn theirs(raw: &[u8]) -> Option<Vec<(u64, u64, u64)>> {
    let message = MessageParser::default().parse(raw)?;
    // Only where mail-parser treats no part as an encapsulated message: there its own
    // offsets differ by design (and are wrong for unparseable ones).
    let nests = message.parts.iter().any(|p| {
        matches!(p.body, PartType::Message(_))
            || p.content_type().is_some_and(|ct| {
                let sub = ct.subtype().unwrap_or_default().to_ascii_lowercase();
                (ct.ctype().eq_ignore_ascii_case("message") && (sub == "rfc822" || sub == "global"))
                    || (ct.ctype().eq_ignore_ascii_case("multipart") && sub == "digest")
            })
    });
    if nests {
        return None;
    }
    Some(
        message
            .parts
            .iter()
            .map(|p| {
                (
                    u64::from(p.offset_header),
                    u64::from(p.offset_body),
                    u64::from(p.offset_end),
                )
            })
            .collect(),
    )
}

/// Compares offsets; returns whether a comparison was possible.
fn compare(raw: &[u8], what: &str) -> bool {
    let meta = parse_checked(raw, what);
    let Some(expected) = theirs(raw) else {
        return false;
    };
    let mut got = Vec::new();
    ours(&meta.body, &mut got);
    if got.len() != expected.len() {
        // A multipart without parts (kept as a text leaf here) or similar repairs.
        return false;
    }
    assert_eq!(got, expected, "{what}");
    true
}

#[test]
fn tokens_inside_base64_bodies_do_not_move_offsets() {
    let mut rng = Rng::new(42);
    let tokens: [&[u8]; 6] = [
        b"global", b"GLOBAL", b"rfc822", b"RfC822", b"digest", b"Digest",
    ];
    for round in 0..200 {
        let mut raw = b"Subject: global digest\r\nContent-Type: multipart/mixed; boundary=\"zz-rfc822\"\r\n\r\npreamble global\r\n".to_vec();
        for _ in 0..1 + rng.below(5) {
            raw.extend_from_slice(
                b"--zz-rfc822\r\nContent-Type: application/octet-stream; name=\"global.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
            );
            for _ in 0..1 + rng.below(6) {
                let mut line: Vec<u8> = (0..76)
                    .map(|_| {
                        *rng.pick(
                            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                        )
                    })
                    .collect();
                if rng.below(2) == 0 {
                    let token = rng.pick(&tokens);
                    let at = rng.below(line.len() - token.len());
                    line[at..at + token.len()].copy_from_slice(token);
                }
                raw.extend_from_slice(&line);
                raw.extend_from_slice(b"\r\n");
            }
        }
        raw.extend_from_slice(b"--zz-rfc822--\r\nepilogue\r\n");
        assert!(
            compare(&raw, &format!("round {round}")),
            "round {round} not compared"
        );
    }
}

#[test]
fn fixtures_and_corpus_offsets_match_mail_parser() {
    let mut compared = 0;
    for (name, raw) in all_fixtures() {
        compared += usize::from(compare(&raw, &name));
    }
    assert!(compared >= 8, "only {compared} fixtures compared");
    let corpus = std::path::Path::new("/work/shared/corpora/eml");
    let dirs = std::env::var_os("POCHTA_EML_CORPUS")
        .map(std::path::PathBuf::from)
        .into_iter()
        .chain([
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora/eml"),
            corpus.to_path_buf(),
        ]);
    let Some(dir) = dirs.into_iter().find(|d| d.is_dir()) else {
        println!("note: no shared e-mail corpus found; checked the fixtures only");
        return;
    };
    for sub in std::fs::read_dir(&dir).unwrap().flatten() {
        let Ok(files) = std::fs::read_dir(sub.path()) else {
            continue;
        };
        for file in files.flatten() {
            let raw = std::fs::read(file.path()).unwrap();
            compared += usize::from(compare(&raw, &file.path().display().to_string()));
        }
    }
    println!("compared the offsets of {compared} messages with mail-parser's");
    assert!(compared >= 50, "only {compared} messages compared");
}
