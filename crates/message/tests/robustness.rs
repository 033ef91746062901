//! Robustness: parse() must never panic (nor overflow the stack) on any bytes, and the
//! result must always satisfy the structural invariants (see `common::check`).

#![allow(clippy::unwrap_used)]

mod common;

use common::{Rng, all_fixtures, parse_checked};
use pochta_message::{MAX_DEPTH, PartKind, find_header, header_end};

/// Pieces of MIME syntax that random inputs are assembled from, so that the generator
/// reaches deep into the parser (boundaries that match, nested messages, encodings).
const VOCABULARY: &[&[u8]] = &[
    b"From: ",
    b"To: ",
    b"Cc: ",
    b"Sender: ",
    b"Reply-To: ",
    b"Subject: ",
    b"Date: Tue, 14 May 2024 10:30:00 +0300",
    b"Date: 31 Feb 99 25:61 -9999",
    b"Message-ID: <a@b>",
    b"In-Reply-To: <x@y> <z@w>",
    b"References: <",
    b"MIME-Version: 1.0",
    b"Content-Type: multipart/mixed; boundary=b",
    b"Content-Type: multipart/alternative; boundary=\"c\"",
    b"Content-Type: multipart/related; boundary=b",
    b"Content-Type: multipart/digest; boundary=d",
    b"Content-Type: message/rfc822",
    b"Content-Type: message/global",
    b"Content-Type: MESSAGE/RFC822",
    b"Content-Type: text/plain; charset=koi8-r",
    b"Content-Type: text/html; charset=windows-1251",
    b"Content-Type: image/png; name=\"a.png\"",
    b"Content-Type: application/pdf; name*0*=utf-8''%D0%BE; name*1*=%D1%82",
    b"Content-Type: text/plain; title*=us-ascii'en'x",
    b"Content-Type: ",
    b"Content-Type: multipart",
    b"Content-Transfer-Encoding: base64",
    b"Content-Transfer-Encoding: quoted-printable",
    b"Content-Transfer-Encoding: 8bit",
    b"Content-Disposition: attachment; filename=\"x.bin\"",
    b"Content-Disposition: inline",
    b"Content-ID: <cid@x>",
    b"Content-Language: en, ru",
    b"=?utf-8?b?0JjQstCw0L0=?=",
    b"=?koi8-r?q?=E9=F7=C1=CE?=",
    b"=?windows-1251?Q?=CE=EB=FC=E3=E0?=",
    b"=?utf-8?b?",
    b"\"Quoted \\\" Name\" <q@example.org>",
    b"Group: a@b, \"C\" <c@d>;",
    b"undisclosed-recipients:;",
    b"(comment)",
    b"<id@host>",
    b"user@",
    b"@host",
    b"--b",
    b"--b--",
    b"--c",
    b"--c--",
    b"--d",
    b"--d--",
    b"\r\n",
    b"\r\n",
    b"\r\n",
    b"\n",
    b"\n",
    b"\r",
    b"\r\n\r\n",
    b"\n\n",
    b" ",
    b"\t",
    b"\r\n ",
    b":",
    b";",
    b"=",
    b"\"",
    b"(",
    b")",
    b"<",
    b">",
    b",",
    b"\\",
    b"rfc822",
    b"global",
    b"digest",
    b"aGVsbG8gd29ybGQ=",
    b"=C3=A9=\r\n",
    b"Re: Fwd: [list] ",
    b"[fwd: ",
    b"]",
    b"(fwd)",
    b"plain text words ",
    "Привет".as_bytes(),
    b"\x00",
    b"\xff\xfe",
    b"<html><b>x</b><style>y</style>",
];

/// Iteration multiplier for the random tests: `POCHTA_FUZZ_SCALE=100 cargo test --release
/// -p pochta-message --test robustness` runs a long fuzzing session.
fn scale() -> usize {
    std::env::var("POCHTA_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

/// Seed offset, so long runs can explore other inputs: `POCHTA_FUZZ_SEED=7`.
fn seed(base: u64) -> u64 {
    let extra: u64 = std::env::var("POCHTA_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    base.wrapping_add(extra.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

fn structured(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    let pieces = rng.below(80);
    for _ in 0..pieces {
        if rng.below(20) == 0 {
            for _ in 0..rng.below(8) {
                out.push(rng.next_u64() as u8);
            }
        } else {
            let piece: &&[u8] = rng.pick(VOCABULARY);
            out.extend_from_slice(piece);
        }
    }
    out
}

fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(300);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(6) {
        let at = if out.is_empty() {
            0
        } else {
            rng.below(out.len() + 1)
        };
        match rng.below(5) {
            0 => {
                if let Some(b) = out.get_mut(at) {
                    *b = rng.next_u64() as u8;
                }
            }
            1 => {
                let piece: &&[u8] = rng.pick(VOCABULARY);
                out.splice(at..at, piece.iter().copied());
            }
            2 => {
                let end = (at + rng.below(40)).min(out.len());
                out.drain(at..end);
            }
            3 => {
                let end = (at + rng.below(200)).min(out.len());
                let copy: Vec<u8> = out[at..end].to_vec();
                let to = rng.below(out.len() + 1);
                out.splice(to..to, copy);
            }
            _ => {
                // Swap line endings to LF only or CR only from here on.
                let tail: Vec<u8> = out[at..].iter().copied().filter(|&b| b != b'\r').collect();
                out.truncate(at);
                out.extend(tail);
            }
        }
    }
    out
}

/// The scanners are total functions too, and agree with simple definitions.
fn check_scanners(raw: &[u8]) {
    let end = header_end(raw);
    assert!(end <= raw.len());
    if end < raw.len() || raw.ends_with(b"\n\n") || raw.ends_with(b"\n\r\n") {
        assert!(raw[..end].ends_with(b"\n"));
    }
    for name in ["Subject", "message-id", "X", "content-type"] {
        if let Some(value) = find_header(raw, name) {
            let start = value.as_ptr() as usize - raw.as_ptr() as usize;
            assert!(start + value.len() <= end);
            let line_start = raw[..start]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            let head = &raw[line_start..start];
            assert!(head.ends_with(b":"));
            assert!(
                head[..head.len() - 1]
                    .trim_ascii_end()
                    .eq_ignore_ascii_case(name.as_bytes())
            );
        }
    }
}

#[test]
fn every_truncation_of_every_fixture() {
    for (name, raw) in all_fixtures() {
        for cut in 0..=raw.len() {
            let input = &raw[..cut];
            parse_checked(input, &format!("{name} cut at {cut}"));
            check_scanners(input);
        }
        // Also with the front cut away (starts mid-header, mid-part).
        for cut in (0..raw.len()).step_by(7) {
            parse_checked(&raw[cut..], &format!("{name} from {cut}"));
        }
    }
}

#[test]
fn every_fixture_with_lf_only_and_cr_only_line_ends() {
    for (name, raw) in all_fixtures() {
        let lf: Vec<u8> = raw.iter().copied().filter(|&b| b != b'\r').collect();
        let lf_meta = parse_checked(&lf, &format!("{name} LF"));
        let crlf_meta = parse_checked(&raw, &name);
        // Same structure and decoded data whatever the line ends.
        assert_eq!(lf_meta.subject, crlf_meta.subject, "{name}");
        assert_eq!(lf_meta.from, crlf_meta.from, "{name}");
        assert_eq!(lf_meta.sent_at, crlf_meta.sent_at, "{name}");
        assert_eq!(lf_meta.preview, crlf_meta.preview, "{name}");
        assert_eq!(
            lf_meta.body.children().len(),
            crlf_meta.body.children().len(),
            "{name}"
        );
        let cr: Vec<u8> = lf
            .iter()
            .map(|&b| if b == b'\n' { b'\r' } else { b })
            .collect();
        parse_checked(&cr, &format!("{name} CR"));
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng::new(seed(0x5eed_0001));
    for i in 0..3000 * scale() {
        let input = random_bytes(&mut rng);
        parse_checked(&input, &format!("random #{i}: {input:?}"));
        check_scanners(&input);
    }
}

#[test]
fn structured_random_mime_never_panics() {
    let mut rng = Rng::new(seed(0x5eed_0002));
    for i in 0..4000 * scale() {
        let input = structured(&mut rng);
        parse_checked(
            &input,
            &format!("structured #{i}: {:?}", String::from_utf8_lossy(&input)),
        );
        check_scanners(&input);
    }
}

#[test]
fn mutated_fixtures_never_panic() {
    let mut rng = Rng::new(seed(0x5eed_0003));
    let fixtures = all_fixtures();
    for i in 0..3000 * scale() {
        let (name, raw) = rng.pick(&fixtures);
        let input = mutate(&mut rng, raw);
        parse_checked(
            &input,
            &format!("mutated {name} #{i}: {:?}", String::from_utf8_lossy(&input)),
        );
        check_scanners(&input);
    }
}

fn depth_of(part: &pochta_message::BodyPart) -> usize {
    match &part.kind {
        PartKind::Leaf => 0,
        PartKind::Multipart(children) => 1 + children.iter().map(depth_of).max().unwrap_or(0),
        PartKind::Message { body, .. } => 1 + depth_of(body),
    }
}

#[test]
fn deeply_nested_messages_do_not_overflow_the_stack() {
    // mail-parser alone aborts with a stack overflow on this input (its nested Message
    // values are built and dropped recursively); parse() must cap the depth instead.
    let mut raw = Vec::new();
    for _ in 0..100_000 {
        raw.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
    }
    raw.extend_from_slice(b"Subject: bottom\r\n\r\nbody\r\n");
    let meta = parse_checked(&raw, "nested messages");
    assert_eq!(depth_of(&meta.body), MAX_DEPTH);
}

#[test]
fn deeply_nested_multiparts_are_capped() {
    let mut raw = Vec::new();
    for i in 0..20_000 {
        raw.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n")
                .as_bytes(),
        );
    }
    raw.extend_from_slice(b"Content-Type: text/plain\r\n\r\nbottom\r\n");
    let meta = parse_checked(&raw, "nested multiparts");
    assert_eq!(depth_of(&meta.body), MAX_DEPTH);
}

#[test]
fn deeply_nested_digests_are_capped() {
    let mut raw = Vec::new();
    for i in 0..5_000 {
        raw.extend_from_slice(
            format!("Content-Type: multipart/digest; boundary=\"d{i}\"\r\n\r\n--d{i}\r\n\r\n")
                .as_bytes(),
        );
    }
    raw.extend_from_slice(b"Subject: bottom\r\n\r\nbottom\r\n");
    let meta = parse_checked(&raw, "nested digests");
    assert!(depth_of(&meta.body) <= MAX_DEPTH);
}

#[test]
fn encoded_deep_chain_is_not_parsed() {
    // A base64 message/rfc822 hiding a deep chain: mail-parser would decode and recurse
    // into it; here it stays an opaque leaf.
    let mut inner = Vec::new();
    for _ in 0..50_000 {
        inner.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
    }
    inner.extend_from_slice(b"Subject: x\r\n\r\nx\r\n");
    let encoded = base64(&inner);
    let mut raw = b"Subject: outer\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
    for line in encoded.as_bytes().chunks(76) {
        raw.extend_from_slice(line);
        raw.extend_from_slice(b"\r\n");
    }
    let meta = parse_checked(&raw, "encoded chain");
    assert!(matches!(meta.body.kind, PartKind::Leaf));
    assert_eq!(meta.body.media_type, "application");
    assert_eq!(meta.body.encoding, "BASE64");
}

#[test]
fn many_siblings() {
    let mut raw = b"Content-Type: multipart/mixed; boundary=s\r\n\r\n".to_vec();
    for i in 0..5_000 {
        raw.extend_from_slice(
            format!("--s\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n").as_bytes(),
        );
    }
    raw.extend_from_slice(b"--s--\r\n");
    let meta = parse_checked(&raw, "siblings");
    assert_eq!(meta.body.children().len(), 5_000);
    let last = meta.part(&[5_000]).unwrap();
    assert_eq!(&raw[last.body_range()], b"part 4999");
}

fn base64(input: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
