//! The POP3 session (`pochta_proto_pop3::Session`) driven like the pop3
//! driver does, with a client stream of arbitrary bytes: USER/PASS, APOP,
//! AUTH PLAIN/LOGIN exchanges, STLS, CAPA, STAT/LIST/UIDL/RETR/TOP/DELE/RSET,
//! QUIT, pipelining.
//!
//! Input: `[flags, seed, stream...]`. Flags: bit 0 TLS from the start, bit 1
//! STLS offered, bit 2 maildrop in use, bit 3 the commit fails, bit 4
//! shutdown half-way, bit 5 message bytes unreadable, bit 6 maildrop
//! temporarily unavailable, bit 7 empty maildrop.
//!
//! Invariants: no panic, no endless poll loop; the output is CRLF lines, each
//! a status (`+OK`, `-ERR`, `+ ` continuation) or inside a multi-line
//! response that is closed by `.` before the next status, with every data
//! line that starts with `.` stuffed; deletions are committed only for
//! messages of the maildrop, never after an unanswered session; the session
//! closes after EOF; the replies do not depend on how the stream was split
//! (unless STLS or shutdown happened).

#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_fuzz::{Input, Steps, crlf_lines, feed_session, same_replies_however_split};
use pochta_proto_pop3::*;

const MESSAGES: [&[u8]; 3] = [
    b"Subject: one\r\n\r\nfirst\r\n",
    b"Subject: two\r\n\r\n.dot line\r\n..two dots\r\n.\r\nend\r\n",
    b"Subject: three\r\nX: y\r\n\r\nl1\r\nl2\r\nl3\r\n",
];

fn maildrop(flags: u8) -> Vec<MaildropEntry> {
    if flags & 0x80 != 0 {
        return Vec::new();
    }
    MESSAGES
        .iter()
        .enumerate()
        .map(|(i, m)| MaildropEntry {
            id: 100 + i as u64,
            size: m.len() as u64,
            uidl: format!("u{}", 100 + i),
        })
        .collect()
}

/// Checks the structure of POP3 output (RFC 1939 §3).
fn check_pop3(out: &[u8]) {
    let mut in_multi = false;
    for line in crlf_lines(out, "POP3 output") {
        let status =
            line.starts_with(b"+OK") || line.starts_with(b"-ERR") || line.starts_with(b"+ ");
        if status && !in_multi {
            if line.starts_with(b"-ERR") || line.starts_with(b"+ ") {
                continue;
            }
            // A +OK may open a multi-line response; the next line tells.
            in_multi = true;
            continue;
        }
        if line == b"." {
            assert!(in_multi, "POP3 terminator outside a multi-line response");
            in_multi = false;
            continue;
        }
        if status {
            // A status while a previous +OK's block could still be open means
            // that +OK was single-line.
            in_multi = !line.starts_with(b"-ERR") && !line.starts_with(b"+ ");
            continue;
        }
        assert!(
            in_multi,
            "POP3 data line outside a multi-line response: {:?}",
            String::from_utf8_lossy(&line)
        );
        if line.first() == Some(&b'.') {
            assert!(
                line.starts_with(b".."),
                "unstuffed dot line in POP3 output: {:?}",
                String::from_utf8_lossy(&line)
            );
        }
    }
}

/// The effects: the deletions and retrievals committed.
type Outcome = pochta_fuzz::Outcome<Option<(Vec<u64>, Vec<u64>)>>;

fn drive(s: &mut Session, out: &mut Outcome, flags: u8, steps: &mut Steps) {
    loop {
        steps.step("pop3 session");
        match s.poll() {
            Action::NeedInput => {
                let o = std::mem::take(&mut s.output);
                check_pop3(&o);
                out.replies.extend_from_slice(&o);
                return;
            }
            Action::Close => {
                let o = std::mem::take(&mut s.output);
                check_pop3(&o);
                out.replies.extend_from_slice(&o);
                out.closed = true;
                return;
            }
            Action::StartTls => {
                out.replies.append(&mut s.output);
                out.upgraded = true;
                s.tls_established();
            }
            Action::Authenticate(c) => {
                let v = match (c.login.as_str(), c.password.expose()) {
                    ("alice@example.com", "secret") => AuthVerdict::Accept {
                        user: c.login.clone(),
                    },
                    ("locked@example.com", _) => AuthVerdict::Throttled,
                    ("temp@example.com", _) => AuthVerdict::TempFail,
                    _ => AuthVerdict::Failed,
                };
                s.answer_auth(v);
            }
            Action::OpenMaildrop => {
                assert!(s.user().is_some(), "maildrop opened without a user");
                let r = if flags & 4 != 0 {
                    Err(MaildropError::InUse)
                } else if flags & 0x40 != 0 {
                    Err(MaildropError::TempFail)
                } else {
                    Ok(maildrop(flags))
                };
                s.answer_maildrop(r);
            }
            Action::Retrieve { id } => {
                let m = id
                    .checked_sub(100)
                    .and_then(|i| MESSAGES.get(usize::try_from(i).ok()?))
                    .copied();
                assert!(m.is_some(), "retrieve of an unknown id {id}");
                s.answer_message(if flags & 0x20 != 0 { None } else { m });
            }
            Action::Commit { delete, retrieved } => {
                let known = maildrop(flags);
                for id in delete.iter().chain(&retrieved) {
                    assert!(
                        known.iter().any(|e| e.id == *id),
                        "commit of unknown id {id}"
                    );
                }
                assert!(
                    delete.iter().all(|d| !retrieved.contains(d)),
                    "a message both deleted and retrieved"
                );
                out.effects = Some((delete, retrieved));
                s.answer_commit(flags & 8 == 0);
            }
        }
    }
}

fn run(input: &Input<'_>, seed: u8) -> Outcome {
    let flags = input.flags;
    let cfg = SessionConfig {
        starttls: flags & 2 != 0,
        max_errors: 6,
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
