use super::*;

/// What a session sees: the frames, in order, with the input fed in chunks
/// of the given sizes (cycled); stops after a Fatal.
fn run_chunked(limits: FrameLimits, input: &[u8], sizes: &[usize]) -> Vec<Frame> {
    let mut framer = Framer::new(limits);
    let mut pending: Vec<u8> = Vec::new();
    let mut frames = Vec::new();
    let mut fed = 0;
    let mut k = 0;
    while fed < input.len() {
        let size = sizes[k % sizes.len()].max(1);
        k += 1;
        let end = (fed + size).min(input.len());
        pending.extend_from_slice(&input[fed..end]);
        fed = end;
        loop {
            let (n, frame) = framer.poll(&pending);
            assert!(n <= pending.len());
            pending.drain(..n);
            match frame {
                None => {
                    assert!(pending.is_empty(), "None must mean all was consumed");
                    break;
                }
                Some(Frame::Fatal(why)) => {
                    frames.push(Frame::Fatal(why));
                    let (n, again) = framer.poll(&pending);
                    assert_eq!(n, 0);
                    assert!(matches!(again, Some(Frame::Fatal(_))));
                    return frames;
                }
                Some(f) => frames.push(f),
            }
        }
    }
    frames
}

/// Frames for `input`, checked to be the same however it is chunked.
fn run(limits: FrameLimits, input: &[u8]) -> Vec<Frame> {
    let whole = run_chunked(limits, input, &[input.len().max(1)]);
    for sizes in [&[1][..], &[2], &[3], &[7], &[1, 5, 2, 13], &[64]] {
        assert_eq!(
            run_chunked(limits, input, sizes),
            whole,
            "chunks {sizes:?} of {:?}",
            input.escape_ascii().to_string()
        );
    }
    whole
}

fn cmd(s: &[u8]) -> Frame {
    Frame::Command(s.to_vec())
}

fn small() -> FrameLimits {
    FrameLimits {
        max_line: 20,
        max_command: 100,
        max_literal: 10,
        max_append_literal: 50,
        max_append_total: 80,
        max_literals: 4,
        max_discard: 200,
    }
}

fn refused(tag: Option<&str>, refusal: Refusal) -> Frame {
    Frame::Refused {
        tag: tag.map(str::to_owned),
        refusal,
    }
}

#[test]
fn pipelined_commands() {
    let input = b"a1 NOOP\r\na2 CAPABILITY\r\na3 LOGOUT\n";
    assert_eq!(
        run(FrameLimits::default(), input),
        vec![
            cmd(b"a1 NOOP\r\n"),
            cmd(b"a2 CAPABILITY\r\n"),
            cmd(b"a3 LOGOUT\n")
        ]
    );
}

#[test]
fn poll_stops_after_each_frame() {
    let mut f = Framer::default();
    let input = b"a STARTTLS\r\n\x16\x03\x01garbage";
    let (n, frame) = f.poll(input);
    assert_eq!(n, 12);
    assert_eq!(frame, Some(cmd(b"a STARTTLS\r\n")));
    assert!(f.is_idle(), "nothing pipelined is held by the framer");
    let (n, frame) = f.poll(b"a NO");
    assert_eq!((n, frame), (4, None));
    assert!(!f.is_idle());
    assert_eq!(f.buffered(), 4);
}

#[test]
fn synchronizing_literals_ask_for_continuations() {
    let input = b"a LOGIN {5}\r\nalice {6}\r\nsecret\r\nb NOOP\r\n";
    assert_eq!(
        run(FrameLimits::default(), input),
        vec![
            Frame::Continuation,
            Frame::Continuation,
            cmd(b"a LOGIN {5}\r\nalice {6}\r\nsecret\r\n"),
            cmd(b"b NOOP\r\n"),
        ]
    );
}

#[test]
fn continuation_comes_before_the_literal_is_read() {
    let mut f = Framer::default();
    let (n, frame) = f.poll(b"a LOGIN {5}\r\n");
    assert_eq!((n, frame), (13, Some(Frame::Continuation)));
    let (n, frame) = f.poll(b"alice \"x\"\r\n");
    assert_eq!(n, 11);
    assert_eq!(frame, Some(cmd(b"a LOGIN {5}\r\nalice \"x\"\r\n")));
}

#[test]
fn non_synchronizing_literals() {
    let input = b"a LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n";
    assert_eq!(run(FrameLimits::default(), input), vec![cmd(input)]);
    // Zero-length literals, and a literal whose octets look like a command end.
    let input = b"a LOGIN {0+}\r\n {4+}\r\n}\r\n\n\r\n";
    assert_eq!(run(FrameLimits::default(), input), vec![cmd(input)]);
    let input = b"a LOGIN {0}\r\n {0}\r\n\r\n";
    assert_eq!(
        run(FrameLimits::default(), input),
        vec![Frame::Continuation, Frame::Continuation, cmd(input)]
    );
}

#[test]
fn append_with_flags_date_and_literal() {
    let input = b"A003 APPEND saved-messages (\\Seen) \"15-Nov-2023 10:00:00 +0100\" {21}\r\n\
Subject: hi\r\n\r\nbody\r\n\r\n";
    assert_eq!(
        run(FrameLimits::default(), input),
        vec![Frame::Continuation, cmd(input)]
    );
}

#[test]
fn multiappend_and_literal8() {
    let input =
        b"a APPEND INBOX (\\Seen) {5+}\r\nhello (\\Flagged) ~{4+}\r\n\0\x01\r\n {3}\r\nbye\r\n";
    assert_eq!(
        run(FrameLimits::default(), input),
        vec![Frame::Continuation, cmd(input)]
    );
}

#[test]
fn over_long_line_is_refused_and_skipped() {
    let input = b"a1 NOOP xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\na2 NOOP\r\n";
    assert_eq!(
        run(small(), input),
        vec![
            refused(Some("a1"), Refusal::LineTooLong { max: 20 }),
            cmd(b"a2 NOOP\r\n")
        ]
    );
    // No tag readable: untagged.
    let input = b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\na2 NOOP\r\n";
    assert_eq!(
        run(small(), input),
        vec![
            refused(None, Refusal::LineTooLong { max: 20 }),
            cmd(b"a2 NOOP\r\n")
        ]
    );
}

#[test]
fn line_limit_is_exact() {
    // 20 octets before CRLF (or LF) are fine, 21 are not.
    let ok = b"a NOOP 0123456789012\r\n";
    assert_eq!(ok.len(), 22);
    assert_eq!(run(small(), ok), vec![cmd(ok)]);
    let ok = b"a NOOP 0123456789012\n";
    assert_eq!(run(small(), ok), vec![cmd(ok)]);
    let bad = b"a NOOP 01234567890123\r\nb NOOP\r\n";
    assert_eq!(
        run(small(), bad),
        vec![
            refused(Some("a"), Refusal::LineTooLong { max: 20 }),
            cmd(b"b NOOP\r\n")
        ]
    );
    let bad = b"a NOOP 0123456789012\r\r\nb NOOP\r\n";
    assert_eq!(
        run(small(), bad),
        vec![
            refused(Some("a"), Refusal::LineTooLong { max: 20 }),
            cmd(b"b NOOP\r\n")
        ]
    );
}

#[test]
fn over_long_line_is_refused_before_its_end_arrives() {
    let mut f = Framer::new(small());
    let (n, frame) = f.poll(&[b'x'; 1000]);
    assert_eq!(n, 21);
    assert_eq!(frame, Some(refused(None, Refusal::LineTooLong { max: 20 })));
    // The rest is discarded without being stored, however much comes.
    for _ in 0..100 {
        let (n, frame) = f.poll(&[b'y'; 10_000]);
        assert_eq!((n, frame), (10_000, None));
        assert_eq!(f.buffered(), 0);
    }
    let (n, frame) = f.poll(b"\r\nb NOOP\r\n");
    assert_eq!(n, 10);
    assert_eq!(frame, Some(cmd(b"b NOOP\r\n")));
}

#[test]
fn refused_line_announcing_a_literal_skips_it() {
    // The discarded line ends with a non-synchronizing literal: its octets
    // (which look like a command) belong to the refused command.
    let input = b"a1 LOGIN xxxxxxxxxxxxxxxxxxxxxx {9+}\r\nb2 LOGOUT\r\nc3 NOOP\r\n";
    assert_eq!(
        run(small(), input),
        vec![
            refused(Some("a1"), Refusal::LineTooLong { max: 20 }),
            cmd(b"c3 NOOP\r\n")
        ]
    );
    // A synchronizing one: the client waits, and gets the refusal instead.
    let input = b"a1 LOGIN xxxxxxxxxxxxxxxxxxxxxx {9}\r\nc3 NOOP\r\n";
    assert_eq!(
        run(small(), input),
        vec![
            refused(Some("a1"), Refusal::LineTooLong { max: 20 }),
            cmd(b"c3 NOOP\r\n")
        ]
    );
}

#[test]
fn oversized_synchronizing_literal_gets_no_continuation() {
    let input = b"a LOGIN {11}\r\nb NOOP\r\n";
    let frames = run(small(), input);
    assert_eq!(
        frames,
        vec![
            refused(Some("a"), Refusal::LiteralTooLarge { size: 11, max: 10 }),
            cmd(b"b NOOP\r\n")
        ]
    );
    let Frame::Refused { refusal, .. } = &frames[0] else {
        unreachable!()
    };
    assert_eq!(refusal.status(), Status::Bad);
    assert_eq!(refusal.code(), None);
}

#[test]
fn oversized_non_synchronizing_literal_is_skipped() {
    let mut input = b"a LOGIN {30+}\r\n".to_vec();
    input.extend_from_slice(&[b'z'; 30]);
    input.extend_from_slice(b" pass\r\nb NOOP\r\n");
    assert_eq!(
        run(small(), &input),
        vec![
            refused(Some("a"), Refusal::LiteralTooLarge { size: 30, max: 10 }),
            cmd(b"b NOOP\r\n")
        ]
    );
    // The literal's octets are discarded without being stored.
    let mut f = Framer::new(small());
    let (n, frame) = f.poll(b"a LOGIN {150+}\r\n");
    assert_eq!(n, 16);
    assert!(matches!(frame, Some(Frame::Refused { .. })));
    let (n, frame) = f.poll(&[b'\n'; 149]);
    assert_eq!((n, frame), (149, None));
    assert_eq!(f.buffered(), 0);
    let (n, frame) = f.poll(b"\n\r\nb NOOP\r\n");
    assert_eq!(n, 11);
    assert_eq!(frame, Some(cmd(b"b NOOP\r\n")));
}

#[test]
fn append_too_big_is_toobig() {
    let input = b"a APPEND INBOX {51}\r\nb NOOP\r\n";
    let frames = run(small(), input);
    assert_eq!(
        frames,
        vec![
            refused(Some("a"), Refusal::AppendTooLarge { size: 51, max: 50 }),
            cmd(b"b NOOP\r\n")
        ]
    );
    let Frame::Refused { refusal, .. } = &frames[0] else {
        unreachable!()
    };
    assert_eq!(refusal.status(), Status::No);
    assert_eq!(refusal.code(), Some("TOOBIG"));
    // Within the APPEND limit though over the other literal limit: fine.
    let mut input = b"a append INBOX {50}\r\n".to_vec();
    input.extend_from_slice(&[b'm'; 50]);
    input.extend_from_slice(b"\r\n");
    assert_eq!(run(small(), &input), vec![Frame::Continuation, cmd(&input)]);
    // UID commands are not APPEND.
    let input = b"a UID APPEND {11}\r\n";
    assert_eq!(
        run(small(), input),
        vec![refused(
            Some("a"),
            Refusal::LiteralTooLarge { size: 11, max: 10 }
        )]
    );
}

#[test]
fn append_mailbox_literal_has_the_ordinary_limit() {
    let input = b"a APPEND {11}\r\n";
    assert_eq!(
        run(small(), input),
        vec![refused(
            Some("a"),
            Refusal::LiteralTooLarge { size: 11, max: 10 }
        )]
    );
    let input = b"a APPEND {5}\r\nINBOX {40}\r\n0123456789012345678901234567890123456789\r\n";
    assert_eq!(
        run(small(), input),
        vec![Frame::Continuation, Frame::Continuation, cmd(input)]
    );
}

#[test]
fn multiappend_total_is_limited() {
    let mut input = b"a APPEND INBOX {45+}\r\n".to_vec();
    input.extend_from_slice(&[b'm'; 45]);
    input.extend_from_slice(b" {45}\r\nb NOOP\r\n");
    assert_eq!(
        run(small(), &input),
        vec![
            refused(Some("a"), Refusal::AppendTotalTooLarge { max: 80 }),
            cmd(b"b NOOP\r\n")
        ]
    );
}

#[test]
fn absurd_non_synchronizing_literal_is_fatal() {
    let input = b"a APPEND X {201+}\r\nxxxx";
    let frames = run(small(), input);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert!(matches!(&frames[0], Frame::Fatal(_)));
    let input = b"a APPEND INBOX {99999999999999999999999999+}\r\n";
    assert!(matches!(
        run(FrameLimits::default(), input).as_slice(),
        [Frame::Fatal(_)]
    ));
    // Also when the line announcing it was already refused.
    let input = b"a APPEND INBOX {201+}\r\nxxxx";
    assert!(matches!(
        run(small(), input).as_slice(),
        [Frame::Refused { .. }, Frame::Fatal(_)]
    ));
    // With the default limits: over twice the APPEND limit.
    let input = b"a APPEND INBOX {1000000000+}\r\n";
    assert!(matches!(
        run(FrameLimits::default(), input).as_slice(),
        [Frame::Fatal(_)]
    ));
    // But a synchronizing one is merely refused: the client will not send it.
    let input = b"a APPEND INBOX {1000000000}\r\nb NOOP\r\n";
    assert_eq!(
        run(FrameLimits::default(), input),
        vec![
            refused(
                Some("a"),
                Refusal::AppendTooLarge {
                    size: 1_000_000_000,
                    max: 50 * 1024 * 1024
                }
            ),
            cmd(b"b NOOP\r\n")
        ]
    );
}

#[test]
fn too_many_literals() {
    let input = b"a X {1+}\r\n1 {1+}\r\n2 {1+}\r\n3 {1+}\r\n4 {1+}\r\n5\r\nb NOOP\r\n";
    assert_eq!(
        run(small(), input),
        vec![
            refused(Some("a"), Refusal::TooManyLiterals { max: 4 }),
            cmd(b"b NOOP\r\n")
        ]
    );
}

#[test]
fn command_size_is_limited() {
    let limits = FrameLimits {
        max_command: 60,
        ..small()
    };
    // Refused in the middle of a line: the rest is discarded, literal too.
    let input = b"a X {10+}\r\n0123456789 {10+}\r\n0123456789 {10+}\r\n0123456789 {10+}\r\n0123456789 tail-of-it\r\nb NOOP\r\n";
    assert_eq!(
        run(limits, input),
        vec![
            refused(Some("a"), Refusal::CommandTooLong { max: 60 }),
            cmd(b"b NOOP\r\n")
        ]
    );
    // Refused at a literal announcement that would pass the limit.
    let input = b"a X {10}\r\n0123456789 {10}\r\n0123456789 {10}\r\n0123456789 {10}\r\nb NOOP\r\n";
    let frames = run(limits, input);
    assert_eq!(
        frames,
        vec![
            Frame::Continuation,
            Frame::Continuation,
            Frame::Continuation,
            refused(Some("a"), Refusal::CommandTooLong { max: 60 }),
            cmd(b"b NOOP\r\n")
        ]
    );
}

#[test]
fn empty_lines_are_commands_for_the_parser_to_reject() {
    assert_eq!(
        run(small(), b"\r\na NOOP\r\n"),
        vec![cmd(b"\r\n"), cmd(b"a NOOP\r\n")]
    );
}

#[test]
fn raw_lines() {
    let mut f = Framer::default();
    let (n, frame) = f.poll(b"a IDLE\r\nDONE\r\nb NOOP\r\n");
    assert_eq!((n, frame), (8, Some(cmd(b"a IDLE\r\n"))));
    let (n, line) = f.next_line(b"DONE\r\nb NOOP\r\n", 100);
    assert_eq!((n, line), (6, Some(RawLine::Line(b"DONE".to_vec()))));
    let (n, frame) = f.poll(b"b NOOP\r\n");
    assert_eq!((n, frame), (8, Some(cmd(b"b NOOP\r\n"))));
    // Byte by byte.
    let mut f = Framer::default();
    for &b in b"dGVzdA=" {
        assert_eq!(f.next_line(&[b], 10), (1, None));
    }
    assert_eq!(
        f.next_line(b"=\r\n", 10),
        (3, Some(RawLine::Line(b"dGVzdA==".to_vec())))
    );
    // Exactly the limit, with CRLF or LF.
    let mut f = Framer::default();
    assert_eq!(
        f.next_line(b"0123456789\r\n", 10),
        (12, Some(RawLine::Line(b"0123456789".to_vec())))
    );
    assert_eq!(
        f.next_line(b"0123456789\n", 10),
        (11, Some(RawLine::Line(b"0123456789".to_vec())))
    );
    assert_eq!(
        f.next_line(b"*\n", 10),
        (2, Some(RawLine::Line(b"*".to_vec())))
    );
}

#[test]
fn raw_line_too_long_is_discarded() {
    for chunk in [1, 3, 100] {
        let mut f = Framer::default();
        let input = b"0123456789abc\r\nb NOOP\r\n";
        let mut pending = input.to_vec();
        let mut out = Vec::new();
        let mut fed = 0;
        let mut buf = Vec::new();
        // Raw line first, then commands.
        while fed < pending.len() || !buf.is_empty() {
            let end = (fed + chunk).min(pending.len());
            buf.extend_from_slice(&pending[fed..end]);
            fed = end;
            loop {
                let got = if out.is_empty() {
                    let (n, l) = f.next_line(&buf, 10);
                    buf.drain(..n);
                    l.map(|l| format!("{l:?}"))
                } else {
                    let (n, fr) = f.poll(&buf);
                    buf.drain(..n);
                    fr.map(|fr| format!("{fr:?}"))
                };
                match got {
                    Some(g) => out.push(g),
                    None => break,
                }
            }
            if fed == pending.len() && buf.is_empty() {
                break;
            }
        }
        pending.clear();
        assert_eq!(
            out,
            vec![
                format!("{:?}", RawLine::TooLong),
                format!("{:?}", cmd(b"b NOOP\r\n"))
            ],
            "chunk {chunk}"
        );
    }
}

#[test]
fn limits_with_append_limit() {
    let l = FrameLimits::default().with_append_limit(10 * 1024 * 1024);
    assert_eq!(l.max_append_literal, 10 * 1024 * 1024);
    assert_eq!(l.max_append_total, 20 * 1024 * 1024);
    assert_eq!(l.max_discard, 20 * 1024 * 1024);
    assert_eq!(l.max_line, 64 * 1024);
}

#[test]
fn refusal_texts() {
    let r = Refusal::AppendTooLarge { size: 9, max: 5 };
    assert_eq!(r.text(), "Message too large (max 5 octets)");
    assert_eq!(
        Refusal::LineTooLong { max: 3 }.text(),
        "Command line too long (max 3 octets)"
    );
    assert_eq!(Refusal::TooManyLiterals { max: 1 }.code(), Some("LIMIT"));
}

#[test]
fn announcement_recognition() {
    assert_eq!(
        announced(b"a LOGIN {5}"),
        Some((
            Announce {
                size: 5,
                sync: true
            },
            8
        ))
    );
    assert_eq!(
        announced(b"a APPEND x ~{12+}"),
        Some((
            Announce {
                size: 12,
                sync: false
            },
            11
        ))
    );
    assert_eq!(announced(b"a LOGIN {}"), None);
    assert_eq!(announced(b"a LOGIN {+}"), None);
    assert_eq!(announced(b"a LOGIN {5-}"), None);
    assert_eq!(announced(b"a LOGIN 5}"), None);
    assert_eq!(announced(b"}"), None);
    assert_eq!(
        announced(b"{99999999999999999999999}"),
        Some((
            Announce {
                size: u64::MAX,
                sync: true
            },
            0
        ))
    );
    let scan = b"x {007+}\r".iter().fold(Scan::Nothing, |s, &b| s.feed(b));
    assert_eq!(
        scan.announced(),
        Some(Announce {
            size: 7,
            sync: false
        })
    );
    let scan = b"x {7+} \r".iter().fold(Scan::Nothing, |s, &b| s.feed(b));
    assert_eq!(scan.announced(), None);
}
