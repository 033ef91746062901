//! The IMAP connection state machine (`pochta_proto_imap::session::Session`)
//! with a client stream of arbitrary bytes, and, in place of the store-backed
//! executor, the sans-I/O parts the executor calls for each command, run on
//! a fixed mailbox of three parsed messages: FETCH rendering, SEARCH matching,
//! SORT, THREAD, and mailbox-name decoding.
//!
//! Input: `[flags, seed, stream...]`. Flags: bit 0 TLS from the start, bit 1
//! STARTTLS offered, bit 2 tiny framing limits, bit 3 UTF-8 strings in
//! FETCH, bit 4 shutdown half-way, bit 5 logins fail, bit 6 raw message bytes
//! not loaded (FETCH/SEARCH from the meta alone).
//!
//! Invariants: no panic, no endless poll loop; the session's output is CRLF
//! lines that start with `*`, `+` or a tag; mail commands reach the executor
//! only in a state that allows them; FETCH responses are valid IMAP syntax
//! (strings, literals, lists); the two SEARCH evaluators (`matches` and the
//! compiled `Matcher`) agree; SORT returns a permutation and THREAD every
//! message exactly once; a decoded mailbox name survives mUTF-7 encoding;
//! the session closes after EOF; and the output does not depend on how the
//! stream was split (unless STARTTLS, COMPRESS or shutdown happened).

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pochta_fuzz::{
    Input, Steps, check_imap_responses, crlf_lines, feed_session, same_replies_however_split,
    thread_members,
};
use pochta_message::MessageMeta;
use pochta_proto_imap::encode::{Charset, mutf7_decode, mutf7_encode};
use pochta_proto_imap::fetch::{FetchOptions, write_fetch};
use pochta_proto_imap::frame::FrameLimits;
use pochta_proto_imap::search::{Matcher, SearchContext, matches};
use pochta_proto_imap::session::*;
use pochta_proto_imap::sort::sort;
use pochta_proto_imap::thread::{thread, write_threads};
use pochta_proto_imap::types::{Command, CommandBody};
use pochta_proto_imap::view::{MessageView, SystemFlags};

const RAW: [&[u8]; 3] = [
    b"From: Bob <bob@example.org>\r\nTo: alice@example.com, \"Q \\\" Name\" <q@example.net>\r\nSubject: first\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\nMessage-ID: <m1@example.org>\r\n\r\nHello one\r\n",
    b"From: =?utf-8?b?0JrQsNGA0Ls=?= <karl@example.org>\r\nTo: alice@example.com\r\nSubject: Re: first\r\nMessage-ID: <m2@example.org>\r\nIn-Reply-To: <m1@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\npre\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nCaf=C3=A9 body\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: x@y\r\n\r\ninner body\r\n--b\r\nContent-Type: application/octet-stream; name=\"a.bin\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename*=utf-8''%C3%A9.bin\r\n\r\nAAECAwQ=\r\n--b--\r\nepilogue\r\n",
    b"From: Dan <dan@example.org>\r\nTo: undisclosed-recipients:;\r\nSubject: [list] Fwd: third\r\nReferences: <m1@example.org> <m2@example.org>\r\nContent-Type: text/html; charset=koi8-r\r\n\r\n<p>\xf0\xd2\xc9\xd7\xc5\xd4</p>\r\n",
];

fn metas() -> &'static [MessageMeta; 3] {
    static METAS: OnceLock<[MessageMeta; 3]> = OnceLock::new();
    METAS.get_or_init(|| RAW.map(pochta_message::parse))
}

fn views(with_raw: bool) -> Vec<MessageView<'static>> {
    let metas = metas();
    (0..3u32)
        .map(|i| {
            let idx = i as usize;
            let mut v = MessageView::new(i + 1, (i + 1) * 10, &metas[idx]);
            v.email_id = u64::from(i) + 100;
            v.thread_id = 7;
            v.flags = SystemFlags {
                seen: i == 0,
                answered: i == 1,
                flagged: i == 2,
                deleted: false,
                draft: false,
                recent: i == 2,
            };
            v.internal_date = 760_000_000 + i64::from(i) * 86_400;
            v.modseq = u64::from(i) + 1;
            if with_raw {
                v.raw = Some(RAW[idx]);
            }
            v
        })
        .collect()
}

/// Checks one line of session output: `*`, `+` or a tag, then text.
fn check_session_output(out: &[u8]) {
    for line in crlf_lines(out, "IMAP session output") {
        let ok = line.starts_with(b"* ") || line.starts_with(b"+ ") || line == b"+" || {
            let tag_len = line.iter().position(|&b| b == b' ').unwrap_or(0);
            tag_len > 0
                && line[..tag_len]
                    .iter()
                    .all(|&b| b.is_ascii_graphic() && b != b'(')
                && [&b" OK"[..], b" NO", b" BAD"]
                    .iter()
                    .any(|s| line[tag_len..].starts_with(s))
        };
        assert!(
            ok,
            "bad IMAP session line {:?}",
            String::from_utf8_lossy(&line)
        );
    }
}

fn check_mailbox_name(name: &[u8]) {
    if let Some(decoded) = mutf7_decode(name) {
        let encoded = mutf7_encode(&decoded);
        assert_eq!(
            mutf7_decode(encoded.as_bytes()).as_deref(),
            Some(decoded.as_str()),
            "mUTF-7 round trip of {decoded:?} via {encoded:?}"
        );
    }
}

/// What the store-backed executor would compute, without the store.
fn execute(cmd: &Command, state: State, flags: u8, log: &mut Vec<u8>) -> Executed {
    let utf8 = flags & 8 != 0;
    let views = views(flags & 0x40 == 0);
    let saved = [10u32, 30];
    let ctx = SearchContext {
        max_msn: 3,
        max_uid: 30,
        saved: Some(&saved),
        now: 800_000_000,
    };
    assert_ne!(
        state,
        State::NotAuthenticated,
        "{cmd:?} executed before login"
    );
    match &cmd.body {
        CommandBody::Select { mailbox, .. } | CommandBody::Examine { mailbox, .. } => {
            check_mailbox_name(mailbox);
            return if mailbox.eq_ignore_ascii_case(b"missing") {
                Executed::Same
            } else {
                Executed::Selected
            };
        }
        CommandBody::Create { mailbox, .. }
        | CommandBody::Delete { mailbox }
        | CommandBody::Copy { mailbox, .. }
        | CommandBody::Move { mailbox, .. } => check_mailbox_name(mailbox),
        CommandBody::Rename { from, to } => {
            check_mailbox_name(from);
            check_mailbox_name(to);
        }
        CommandBody::Close | CommandBody::Unselect => {
            assert_eq!(state, State::Selected);
            return Executed::Deselected;
        }
        CommandBody::Fetch { uid, attrs, .. } => {
            assert_eq!(state, State::Selected);
            let opts = FetchOptions {
                charset: if utf8 { Charset::Utf8 } else { Charset::Ascii },
                include_uid: *uid,
                include_modseq: flags & 0x20 != 0,
                include_flags: flags & 0x10 != 0,
            };
            for v in &views {
                let mut out = Vec::new();
                if write_fetch(&mut out, v, attrs, &opts).is_ok() {
                    assert!(
                        out.starts_with(format!("* {} FETCH (", v.msn).as_bytes()),
                        "FETCH response head: {:?}",
                        String::from_utf8_lossy(&out[..out.len().min(40)])
                    );
                    check_imap_responses(&out, utf8);
                    log.extend_from_slice(&out);
                } else {
                    assert!(out.is_empty(), "a failed FETCH wrote output");
                }
            }
        }
        CommandBody::Search { criteria, .. } => {
            assert_eq!(state, State::Selected);
            let compiled = Matcher::new(criteria);
            for v in &views {
                let a = matches(criteria, v, &ctx);
                let b = compiled.matches(v, &ctx);
                assert_eq!(a, b, "SEARCH evaluators disagree on message {}", v.msn);
                log.push(u8::from(a));
            }
        }
        CommandBody::Sort {
            criteria, search, ..
        } => {
            assert_eq!(state, State::Selected);
            let matched: Vec<MessageView<'_>> = views
                .iter()
                .filter(|v| matches(search, v, &ctx))
                .copied()
                .collect();
            let mut order = sort(&matched, criteria);
            log.extend(order.iter().map(|&i| i as u8));
            order.sort_unstable();
            assert_eq!(
                order,
                (0..matched.len()).collect::<Vec<_>>(),
                "SORT is not a permutation"
            );
        }
        CommandBody::Thread {
            uid,
            algorithm,
            search,
            ..
        } => {
            assert_eq!(state, State::Selected);
            let matched: Vec<MessageView<'_>> = views
                .iter()
                .filter(|v| matches(search, v, &ctx))
                .copied()
                .collect();
            let threads = thread(&matched, *algorithm);
            let mut seen: Vec<u32> = thread_members(&threads)
                .iter()
                .map(|&(msn, _, _)| msn)
                .collect();
            seen.sort_unstable();
            let mut want: Vec<u32> = matched.iter().map(|v| v.msn).collect();
            want.sort_unstable();
            assert_eq!(seen, want, "THREAD lost or repeated messages");
            let mut out = b"* THREAD ".to_vec();
            write_threads(&mut out, &threads, *uid);
            out.extend_from_slice(b"\r\n");
            check_imap_responses(&out, false);
            log.extend_from_slice(&out);
        }
        CommandBody::Check
        | CommandBody::Expunge
        | CommandBody::UidExpunge(_)
        | CommandBody::Store { .. } => assert_eq!(state, State::Selected),
        _ => {}
    }
    Executed::Same
}

/// The effects: the commands handed to the executor.
type Outcome = pochta_fuzz::Outcome<Vec<u8>>;

fn drive(s: &mut Session, out: &mut Outcome, flags: u8, steps: &mut Steps) {
    loop {
        steps.step("imap session");
        let action = s.poll();
        let o = std::mem::take(&mut s.output);
        check_session_output(&o);
        out.replies.extend_from_slice(&o);
        match action {
            Action::NeedInput => return,
            Action::Close => {
                out.closed = true;
                return;
            }
            Action::StartTls => {
                out.upgraded = true;
                s.tls_established();
            }
            Action::Compress => {
                out.upgraded = true;
                s.compress_started();
            }
            Action::Authenticate { credentials, .. } => {
                let v = if flags & 0x20 != 0 {
                    AuthVerdict::Failed
                } else {
                    match (credentials.login.as_str(), credentials.password.expose()) {
                        ("alice@example.com", "secret") => AuthVerdict::Accept,
                        ("locked@example.com", _) => AuthVerdict::Throttled,
                        ("temp@example.com", _) => AuthVerdict::TempFail,
                        _ => AuthVerdict::Failed,
                    }
                };
                s.answer_auth(v);
            }
            Action::Execute(cmd) => {
                let r = execute(&cmd, s.state(), flags, &mut out.effects);
                s.executed(r);
            }
            Action::Idle => assert!(s.idling(), "Idle without idling"),
            Action::IdleDone => s.idle_finished(),
        }
    }
}

fn run(input: &Input<'_>, seed: u8) -> Outcome {
    let flags = input.flags;
    let limits = if flags & 4 != 0 {
        FrameLimits {
            max_line: 200,
            max_command: 1000,
            max_literal: 100,
            max_append_literal: 500,
            max_append_total: 800,
            max_literals: 4,
            max_discard: 2000,
        }
    } else {
        FrameLimits::default()
    };
    let cfg = SessionConfig {
        starttls: flags & 2 != 0,
        limits,
        append_limit: limits.max_append_literal,
        max_errors: 10,
        hostname: "imap.example.com".into(),
    };
    let session = Session::new(cfg, flags & 1 != 0);
    feed_session(
        session,
        input.stream,
        seed,
        flags & 0x10 != 0,
        |s, out, steps| drive(s, out, flags, steps),
    )
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::split(data) else {
        return;
    };
    same_replies_however_split(&input, input.flags & 0x10 != 0, |seed| run(&input, seed));
});
