//! The connection state machine on its own (no store): regression tests for
//! what the fuzzer (`fuzz/`, target `imap_session`) found. Each input is fed
//! whole and one byte at a time; the replies must be the same.

use pochta_proto_imap::frame::FrameLimits;
use pochta_proto_imap::session::{Action, AuthVerdict, Executed, Session, SessionConfig};

fn session() -> Session {
    Session::new(
        SessionConfig {
            starttls: false,
            limits: FrameLimits::default(),
            append_limit: 1024 * 1024,
            max_errors: 10,
            hostname: "imap.example.com".into(),
        },
        true,
    )
}

/// Feeds `input` in reads of `chunk` octets (0: all at once), driving the
/// session like the server does (logins with secret succeed; every executed
/// command leaves the state as it was); returns the session's output after
/// the greeting, plus `EXEC <tag>` for each command handed to the executor.
fn run(input: &[u8], chunk: usize) -> String {
    let mut s = session();
    let mut out = Vec::new();
    let greeting = std::mem::take(&mut s.output);
    assert!(greeting.starts_with(b"* OK"));
    let reads: Vec<&[u8]> = if chunk == 0 {
        vec![input]
    } else {
        input.chunks(chunk).collect()
    };
    for read in reads {
        s.feed(read);
        loop {
            let action = s.poll();
            out.append(&mut s.output);
            match action {
                Action::NeedInput | Action::Close => break,
                Action::Authenticate { credentials, .. } => {
                    s.answer_auth(if credentials.password.expose() == "secret" {
                        AuthVerdict::Accept
                    } else {
                        AuthVerdict::Failed
                    });
                }
                Action::Execute(cmd) => {
                    out.extend_from_slice(format!("EXEC {}\r\n", cmd.tag).as_bytes());
                    s.executed(Executed::Same);
                }
                Action::IdleDone => s.idle_finished(),
                Action::Idle | Action::StartTls | Action::Compress => {}
            }
        }
    }
    String::from_utf8(out).expect("ASCII output")
}

fn run_both(input: &[u8]) -> String {
    let whole = run(input, 0);
    assert_eq!(whole, run(input, 1), "fed whole and byte by byte differ");
    whole
}

/// Found by fuzzing: after sending an AUTHENTICATE challenge the session asked
/// for more input even when the client's answer was already buffered, so a
/// client that sent its LOGIN user name and password together (or anything
/// after the exchange) waited for a reply that never came.
#[test]
fn authenticate_answers_already_received_are_read_without_more_input() {
    let out =
        run_both(b"b AUTHENTICATE LOGIN\r\nYWxpY2VAZXhhbXBsZS5jb20=\r\nc2VjcmV0\r\nc NOOP\r\n");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "+ VXNlcm5hbWU6");
    assert_eq!(lines[1], "+ UGFzc3dvcmQ6");
    assert!(lines[2].starts_with("b OK [CAPABILITY "), "{out}");
    assert_eq!(lines[3], "EXEC c");
    assert_eq!(lines.len(), 4, "{out}");
}

/// Found by fuzzing, the same way: a line other than DONE during IDLE ends
/// IDLE with BAD, and the commands already received after it were left
/// unanswered until more input came.
#[test]
fn commands_after_a_line_that_is_not_done_in_idle_are_answered() {
    let out = run_both(b"l LOGIN alice@example.com secret\r\ni IDLE\r\nNOPE\r\nn NOOP\r\n");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("l OK "), "{out}");
    assert_eq!(lines[1], "+ idling");
    assert_eq!(lines[2], "i BAD Expected DONE to end IDLE");
    assert_eq!(lines[3], "EXEC n");
    assert_eq!(lines.len(), 4, "{out}");
}

/// IDLE ended properly still works, with what follows DONE answered.
#[test]
fn idle_done_then_a_pipelined_command() {
    let out = run_both(b"l LOGIN alice@example.com secret\r\ni IDLE\r\nDONE\r\nn NOOP\r\n");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[1..],
        ["+ idling", "i OK IDLE terminated", "EXEC n"],
        "{out}"
    );
}
