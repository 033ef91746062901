//! Transcript tests of the SMTP session state machine, in memory.

#![allow(clippy::unwrap_used)] // helpers assert by unwrapping, like the tests they serve
//!
//! A transcript is a list of lines:
//! * `C: text` — the client sends `text` + CRLF; consecutive C lines go in one
//!   write (that is how pipelining is tested);
//! * `C~ text` — the client sends `text` raw, with `\r`, `\n`, `\\` escapes and no CRLF added;
//! * `S: text` — the next reply line must be exactly `text` (a trailing `*` matches any rest);
//! * `!eof`, `!shutdown` — the client closes / the server begins shutting down;
//! * `!deliver full|temp|reject` — how the mock store answers the next delivery;
//! * `!closed` — the session must have closed by now.
//!
//! Every transcript runs twice: with each C group fed at once, and fed one byte
//! at a time. The replies must be identical.

use std::collections::VecDeque;

use pochta_addr::Address;
use pochta_proto_smtp::client::{Notify, Ret};
use pochta_proto_smtp::*;

const USER: &str = "alice@example.com";
const PASSWORD: &str = "secret";

fn cfg(mode: Mode) -> SessionConfig {
    SessionConfig {
        hostname: "mx.example.com".into(),
        mode,
        max_message_size: 1000,
        max_recipients: 3,
        max_line_length: 100,
        max_errors: 8,
        starttls: true,
        postmaster: Address::parse("postmaster@example.com").unwrap(),
    }
}

fn tls() -> TlsInfo {
    TlsInfo {
        version: "TLSv1.3".into(),
        cipher: "TLS_AES_128_GCM_SHA256".into(),
    }
}

/// Decisions a real driver would take from the store and the directory.
#[derive(Default)]
struct Mock {
    delivered: Vec<Transaction>,
    next_delivery: VecDeque<DeliveryVerdict>,
    queue_ids: u32,
    closed: bool,
    auth_attempts: u32,
}

impl Mock {
    fn answer(&mut self, s: &mut Session, action: Action) -> bool {
        match action {
            Action::NeedInput => return false,
            Action::Close => {
                self.closed = true;
                return false;
            }
            Action::StartTls => s.tls_established(tls()),
            Action::CheckSender { address, user } => {
                let v = match (user, address) {
                    (None, _) => SenderVerdict::Accept,
                    (Some(_), Some(a)) if a.key() == USER || a.key() == "sales@example.com" => {
                        SenderVerdict::Accept
                    }
                    (Some(_), _) => SenderVerdict::NotOwned,
                };
                s.answer_sender(v);
            }
            Action::CheckRecipient { address } => {
                let v = if address.domain().as_str() != "example.com" {
                    RcptVerdict::RelayDenied
                } else {
                    match address.local().to_lowercase().as_str() {
                        "alice" | "bob" | "postmaster" | "карл" => RcptVerdict::Accept,
                        "temp" => RcptVerdict::TempFail,
                        _ => RcptVerdict::UnknownUser,
                    }
                };
                s.answer_recipient(v);
            }
            Action::Authenticate(c) => {
                self.auth_attempts += 1;
                let v = if c.login == "locked@example.com" {
                    AuthVerdict::Throttled
                } else if c.login == USER && c.password.expose() == PASSWORD {
                    AuthVerdict::Accept { user: c.login }
                } else {
                    AuthVerdict::Failed
                };
                s.answer_auth(v);
            }
            Action::Deliver(tx) => {
                let v = self.next_delivery.pop_front().unwrap_or_else(|| {
                    self.queue_ids += 1;
                    DeliveryVerdict::Accepted {
                        id: format!("Q{}", self.queue_ids),
                    }
                });
                if matches!(v, DeliveryVerdict::Accepted { .. }) {
                    self.delivered.push(*tx);
                }
                s.answer_delivery(v);
            }
        }
        true
    }

    fn drive(&mut self, s: &mut Session) {
        loop {
            let action = s.poll();
            if !self.answer(s, action) {
                break;
            }
        }
    }
}

fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('r') => out.push(b'\r'),
                Some('n') => out.push(b'\n'),
                Some('\\') => out.push(b'\\'),
                Some(o) => panic!("bad escape \\{o}"),
                None => panic!("dangling backslash"),
            }
        } else {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    out
}

fn run_once(
    mode: Mode,
    tls_on: Option<TlsInfo>,
    transcript: &str,
    bytewise: bool,
) -> (Mock, Vec<String>) {
    let mut session = Session::new(cfg(mode), tls_on);
    let mut mock = Mock::default();
    let mut got: Vec<String> = Vec::new();
    let mut expected: Vec<String> = Vec::new();
    let mut group: Vec<u8> = Vec::new();
    let mut log = Vec::new();

    let flush = |session: &mut Session, mock: &mut Mock, group: &mut Vec<u8>| {
        if group.is_empty() {
            mock.drive(session);
            return;
        }
        if bytewise {
            for b in group.iter() {
                session.feed(std::slice::from_ref(b));
                mock.drive(session);
            }
        } else {
            session.feed(group);
            mock.drive(session);
        }
        group.clear();
    };
    let collect = |session: &mut Session, got: &mut Vec<String>| {
        let out = std::mem::take(&mut session.output);
        let text = String::from_utf8(out).expect("replies are UTF-8");
        for line in text.split_inclusive("\r\n") {
            assert!(line.ends_with("\r\n"), "reply line without CRLF: {line:?}");
            got.push(line.trim_end_matches("\r\n").to_string());
        }
    };

    mock.drive(&mut session);
    for raw in transcript.lines() {
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(c) = line.strip_prefix("C: ").or((line == "C:").then_some("")) {
            group.extend_from_slice(c.as_bytes());
            group.extend_from_slice(b"\r\n");
            continue;
        }
        if let Some(c) = line.strip_prefix("C~ ") {
            group.extend_from_slice(&unescape(c));
            continue;
        }
        flush(&mut session, &mut mock, &mut group);
        collect(&mut session, &mut got);
        if let Some(s) = line.strip_prefix("S: ") {
            expected.push(s.to_string());
        } else if line == "S:" {
            expected.push(String::new());
        } else if line == "!eof" {
            session.eof();
            mock.drive(&mut session);
        } else if line == "!shutdown" {
            session.shutdown();
            mock.drive(&mut session);
            collect(&mut session, &mut got);
        } else if let Some(v) = line.strip_prefix("!deliver ") {
            mock.next_delivery.push_back(match v {
                "full" => DeliveryVerdict::StorageFull,
                "temp" => DeliveryVerdict::TempFail,
                "reject" => DeliveryVerdict::Reject(Reply::new(554, "5.7.1", "Rejected by policy")),
                o => panic!("unknown delivery verdict {o}"),
            });
        } else if line == "!closed" {
            assert!(mock.closed, "session should be closed\n{}", log.join("\n"));
        } else {
            panic!("bad transcript line {line:?}");
        }
        log.push(line.to_string());
    }
    flush(&mut session, &mut mock, &mut group);
    collect(&mut session, &mut got);

    let ok = got.len() == expected.len()
        && got
            .iter()
            .zip(&expected)
            .all(|(g, e)| match e.strip_suffix('*') {
                Some(prefix) => g.starts_with(prefix),
                None => g == e,
            });
    assert!(
        ok,
        "replies differ (bytewise={bytewise})\n--- expected\n{}\n--- got\n{}",
        expected.join("\n"),
        got.join("\n")
    );
    (mock, got)
}

/// Runs a transcript in both feeding modes and returns the mock of the chunked run.
fn run(mode: Mode, tls_on: Option<TlsInfo>, transcript: &str) -> Mock {
    let (_, a) = run_once(mode, tls_on.clone(), transcript, true);
    let (mock, b) = run_once(mode, tls_on, transcript, false);
    assert_eq!(a, b);
    mock
}

fn mx(t: &str) -> Mock {
    run(Mode::Mx, None, t)
}

fn sub_tls(t: &str) -> Mock {
    run(Mode::Submission, Some(tls()), t)
}

const EHLO_MX: &str = "
S: 220 mx.example.com ESMTP pochta
C: EHLO client.example.org
S: 250-mx.example.com
S: 250-PIPELINING
S: 250-SIZE 1000
S: 250-8BITMIME
S: 250-SMTPUTF8
S: 250-ENHANCEDSTATUSCODES
S: 250-CHUNKING
S: 250-DSN
S: 250-STARTTLS
S: 250 HELP
";

fn with_ehlo(rest: &str) -> String {
    format!("{EHLO_MX}{rest}")
}

#[test]
fn ehlo_on_mx_offers_starttls_but_never_auth() {
    mx(EHLO_MX);
}

#[test]
fn ehlo_on_submission_after_tls_offers_auth_not_starttls() {
    sub_tls(
        "
S: 220 mx.example.com ESMTP pochta
C: EHLO client
S: 250-mx.example.com
S: 250-PIPELINING
S: 250-SIZE 1000
S: 250-8BITMIME
S: 250-SMTPUTF8
S: 250-ENHANCEDSTATUSCODES
S: 250-CHUNKING
S: 250-DSN
S: 250-AUTH PLAIN LOGIN
S: 250 HELP
",
    );
}

#[test]
fn submission_without_tls_hides_auth_and_demands_starttls() {
    run(
        Mode::Submission,
        None,
        "
S: 220 mx.example.com ESMTP pochta
C: EHLO client
S: 250-mx.example.com
S: 250-PIPELINING
S: 250-SIZE 1000
S: 250-8BITMIME
S: 250-SMTPUTF8
S: 250-ENHANCEDSTATUSCODES
S: 250-CHUNKING
S: 250-DSN
S: 250-STARTTLS
S: 250 HELP
C: AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA==
S: 538 5.7.11 Encryption required for requested authentication mechanism
C: MAIL FROM:<alice@example.com>
S: 530 5.7.0 Must issue a STARTTLS command first
",
    );
}

#[test]
fn helo_then_simple_message() {
    let m = mx("
S: 220 mx.example.com ESMTP pochta
C: HELO client
S: 250 2.0.0 mx.example.com
C: MAIL FROM:<sender@remote.example>
S: 250 2.1.0 Sender OK
C: RCPT TO:<alice@example.com>
S: 250 2.1.5 Recipient OK
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
C: Subject: hi
C:
C: ..leading dot
C: .
S: 250 2.0.0 Ok: queued as Q1
C: QUIT
S: 221 2.0.0 Bye
!closed
");
    assert_eq!(m.delivered.len(), 1);
    let tx = &m.delivered[0];
    assert_eq!(tx.body, b"Subject: hi\r\n\r\n.leading dot\r\n");
    assert_eq!(
        tx.mail_from.as_ref().unwrap().key(),
        "sender@remote.example"
    );
    assert_eq!(tx.recipients.len(), 1);
    assert!(!tx.chunked);
}

#[test]
fn pipelined_transaction_gets_replies_in_order() {
    let m = mx(&with_ehlo(
        "
C: MAIL FROM:<s@remote.example> BODY=8BITMIME SIZE=100
C: RCPT TO:<alice@example.com>
C: RCPT TO:<nobody@example.com>
C: RCPT TO:<bob@example.com>
C: DATA
S: 250 2.1.0 Sender OK
S: 250 2.1.5 Recipient OK
S: 550 5.1.1 <nobody@example.com>: no such user here
S: 250 2.1.5 Recipient OK
S: 354 End data with <CR><LF>.<CR><LF>
C: body
C: .
C: RSET
C: NOOP
S: 250 2.0.0 Ok: queued as Q1
S: 250 2.0.0 Reset OK
S: 250 2.0.0 OK
",
    ));
    let tx = &m.delivered[0];
    assert_eq!(tx.body_type, BodyType::EightBitMime);
    assert_eq!(tx.declared_size, Some(100));
    let rcpts: Vec<String> = tx.recipients.iter().map(|a| a.key()).collect();
    assert_eq!(rcpts, ["alice@example.com", "bob@example.com"]);
}

#[test]
fn pipelined_failure_makes_data_fail_too() {
    let m = mx(&with_ehlo(
        "
C: MAIL FROM:<s@remote.example>
C: RCPT TO:<nobody@example.com>
C: DATA
S: 250 2.1.0 Sender OK
S: 550 5.1.1 <nobody@example.com>: no such user here
S: 554 5.5.1 No valid recipients
",
    ));
    assert!(m.delivered.is_empty());
}

#[test]
fn sequence_errors() {
    mx("
S: 220 mx.example.com ESMTP pochta
C: MAIL FROM:<a@remote.example>
S: 503 5.5.1 Send EHLO or HELO first
C: EHLO c
S: 250-mx.example.com
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250 HELP
C: RCPT TO:<alice@example.com>
S: 503 5.5.1 Need MAIL before RCPT
C: DATA
S: 503 5.5.1 Need MAIL and RCPT before DATA
C: MAIL FROM:<a@remote.example>
S: 250 2.1.0 Sender OK
C: MAIL FROM:<a@remote.example>
S: 503 5.5.1 Nested MAIL command
C: DATA
S: 554 5.5.1 No valid recipients
");
}

#[test]
fn misc_commands() {
    mx(&with_ehlo(
        "
C: VRFY alice
S: 252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery
C: EXPN staff
S: 502 5.5.1 EXPN not available
C: HELP
S: 214-2.0.0 pochta SMTP: *
S: 214 2.0.0 See RFC 5321
C: NOOP
S: 250 2.0.0 OK
C: ETRN example.com
S: 502 5.5.1 Command not implemented
C: FOO bar
S: 500 5.5.1 Command unrecognized
C: MAIL FROM alice
S: 501 5.5.4 Syntax: MAIL FROM:<reverse-path> [parameters]
C: LHLO x
S: 502 5.5.1 LHLO is for LMTP; this is SMTP
",
    ));
}

#[test]
fn relay_is_denied_and_unknown_users_rejected_on_mx() {
    mx(&with_ehlo(
        "
C: MAIL FROM:<a@remote.example>
S: 250 2.1.0 Sender OK
C: RCPT TO:<victim@elsewhere.example>
S: 550 5.7.1 <victim@elsewhere.example>: relaying denied
C: RCPT TO:<@example.com:victim@elsewhere.example>
S: 550 5.7.1 <victim@elsewhere.example>: relaying denied
C: RCPT TO:<victim%elsewhere.example@example.com>
S: 550 5.1.1 <victim%elsewhere.example@example.com>: no such user here
C: RCPT TO:<alice@[127.0.0.1]>
S: 553 5.1.3 Bad recipient address syntax
C: RCPT TO:<temp@example.com>
S: 451 4.3.0 Temporary failure checking the recipient, try again later
C: RCPT TO:<Postmaster>
S: 250 2.1.5 Recipient OK
C: RCPT TO:<>
S: 553 5.1.3 Null recipient is not allowed
",
    ));
}

#[test]
fn too_many_recipients_is_452() {
    let m = mx(&with_ehlo(
        "
C: MAIL FROM:<a@remote.example>
C: RCPT TO:<alice@example.com>
C: RCPT TO:<bob@example.com>
C: RCPT TO:<postmaster@example.com>
C: RCPT TO:<alice@example.com>
C: DATA
S: 250 2.1.0 Sender OK
S: 250 2.1.5 Recipient OK
S: 250 2.1.5 Recipient OK
S: 250 2.1.5 Recipient OK
S: 452 4.5.3 Too many recipients
S: 354 End data with <CR><LF>.<CR><LF>
C: x
C: .
S: 250 2.0.0 Ok: queued as Q1
",
    ));
    assert_eq!(m.delivered[0].recipients.len(), 3);
}

#[test]
fn declared_and_actual_size_limits() {
    let big = "x".repeat(90);
    let mut body = String::new();
    for _ in 0..12 {
        body.push_str(&format!("C: {big}\n"));
    }
    let m = mx(&with_ehlo(&format!(
        "
C: MAIL FROM:<a@remote.example> SIZE=1001
S: 552 5.3.4 Message size exceeds fixed maximum message size (1000 octets)
C: MAIL FROM:<a@remote.example> SIZE=500
S: 250 2.1.0 Sender OK
C: RCPT TO:<alice@example.com>
S: 250 2.1.5 Recipient OK
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
{body}C: .
S: 552 5.3.4 Message size exceeds fixed maximum message size (1000 octets)
C: MAIL FROM:<a@remote.example>
S: 250 2.1.0 Sender OK
"
    )));
    assert!(m.delivered.is_empty());
}

#[test]
fn long_command_line_is_500_and_the_session_continues() {
    let long = "x".repeat(150);
    mx(&with_ehlo(&format!(
        "
C: NOOP {long}
S: 500 5.5.2 Line too long
C: NOOP
S: 250 2.0.0 OK
"
    )));
}

#[test]
fn long_line_without_newline_is_not_buffered() {
    // The line never ends in this write; the session must answer once and skip it.
    let long = "y".repeat(300);
    mx(&with_ehlo(&format!(
        "
C~ NOOP {long}
S: 500 5.5.2 Line too long
C~ {long}\\r\\nNOOP\\r\\n
S: 250 2.0.0 OK
"
    )));
}

#[test]
fn long_data_line_refuses_the_message() {
    let long = "z".repeat(120);
    let m = mx(&with_ehlo(&format!(
        "
C: MAIL FROM:<a@remote.example>
C: RCPT TO:<alice@example.com>
C: DATA
S: 250 2.1.0 Sender OK
S: 250 2.1.5 Recipient OK
S: 354 End data with <CR><LF>.<CR><LF>
C: {long}
C: .
S: 500 5.5.2 Message refused: line longer than 100 octets
"
    )));
    assert!(m.delivered.is_empty());
}

#[test]
fn smuggling_with_bare_lf_is_refused_and_never_splits() {
    let m = mx(&with_ehlo(
        "
C: MAIL FROM:<a@remote.example>
C: RCPT TO:<alice@example.com>
C: DATA
S: 250 2.1.0 Sender OK
S: 250 2.1.5 Recipient OK
S: 354 End data with <CR><LF>.<CR><LF>
C~ Subject: one\\r\\n\\r\\nbody\\n.\\nMAIL FROM:<evil@remote.example>\\r\\nRCPT TO:<bob@example.com>\\r\\nDATA\\r\\nSubject: smuggled\\r\\n\\r\\n.\\r\\n
S: 550 5.6.0 Message refused: bare CR or LF found; lines must end with CRLF
C: NOOP
S: 250 2.0.0 OK
",
    ));
    assert!(m.delivered.is_empty(), "nothing may be delivered");
}

#[test]
fn smuggling_with_bare_cr_and_mixed_endings_is_refused() {
    for evil in [
        r"x\r.\rMAIL FROM:<e@r.example>\r\n",
        r"x\n.\r\nMAIL FROM:<e@r.example>\r\n",
        r"x\r\n.\nQUIT\r\n",
    ] {
        let m = mx(&with_ehlo(&format!(
            "
C: MAIL FROM:<a@remote.example>
C: RCPT TO:<alice@example.com>
C: DATA
S: 250 2.1.0 Sender OK
S: 250 2.1.5 Recipient OK
S: 354 End data with <CR><LF>.<CR><LF>
C~ {evil}
C: .
S: 550 5.6.0 Message refused: bare CR or LF found; lines must end with CRLF
"
        )));
        assert!(m.delivered.is_empty());
    }
}

#[test]
fn bdat_chunks_build_one_message() {
    let m = mx(&with_ehlo(
        "
C: MAIL FROM:<a@remote.example>
C: RCPT TO:<alice@example.com>
C~ BDAT 12\\r\\nSubject: x\\r\\n
C~ BDAT 6 LAST\\r\\n\\r\\nbody
S: 250 2.1.0 Sender OK
S: 250 2.1.5 Recipient OK
S: 250 2.0.0 12 octets received
S: 250 2.0.0 Ok: queued as Q1
C: MAIL FROM:<a@remote.example>
C: RCPT TO:<bob@example.com>
C: BDAT 0 LAST
S: 250 2.1.0 Sender OK
S: 250 2.1.5 Recipient OK
S: 250 2.0.0 Ok: queued as Q2
",
    ));
    assert_eq!(
        m.delivered[0].body, b"Subject: x\r\n\r\nbody\r\n",
        "a final line end is added"
    );
    assert!(m.delivered[0].chunked);
    assert_eq!(m.delivered[1].body, b"");
}

#[test]
fn bdat_content_is_binary_safe_and_lf_normalised() {
    let m = mx(&with_ehlo(
        "
C: MAIL FROM:<a@remote.example>
C: RCPT TO:<alice@example.com>
C~ BDAT 8 LAST\\r\\n.\\r\\nQUIT\\n
S: 250 2.1.0 Sender OK
S: 250 2.1.5 Recipient OK
S: 250 2.0.0 Ok: queued as Q1
",
    ));
    assert_eq!(m.delivered[0].body, b".\r\nQUIT\r\n");
}

#[test]
fn bdat_out_of_sequence_consumes_its_chunk() {
    mx(&with_ehlo(
        "
C~ BDAT 10\\r\\nQUIT\\r\\nQUIT
S: 503 5.5.1 Need MAIL and RCPT before BDAT
C: NOOP
S: 250 2.0.0 OK
C: MAIL FROM:<a@remote.example>
C~ BDAT 4 LAST\\r\\nRSET
S: 250 2.1.0 Sender OK
S: 554 5.5.1 No valid recipients
",
    ));
}

/// A one-chunk BDAT message refused as over the 1000-octet limit of `mx`,
/// after which the session goes on.
fn assert_bdat_too_big(chunk: &str) {
    let m = mx(&with_ehlo(&format!(
        "
C: MAIL FROM:<a@remote.example>
C: RCPT TO:<alice@example.com>
C~ BDAT {} LAST\\r\\n{chunk}
C: NOOP
S: 250 2.1.0 Sender OK
S: 250 2.1.5 Recipient OK
S: 552 5.3.4 Message size exceeds fixed maximum message size (1000 octets)
S: 250 2.0.0 OK
",
        chunk.len()
    )));
    assert!(m.delivered.is_empty());
}

#[test]
fn bdat_over_the_limit_is_552_after_the_chunk() {
    assert_bdat_too_big(&"a".repeat(1001));
}

/// Regression (fuzz/smtp_session): the CRLF added to a message that does not
/// end with one counts against the size limit; a message of exactly the limit
/// that ends with CRLF is accepted.
#[test]
fn fuzz_bdat_final_line_end_counts_against_the_limit() {
    assert_bdat_too_big(&"a".repeat(1000));
    let chunk = format!("{}\\r\\n", "a".repeat(998));
    let m = mx(&with_ehlo(&format!(
        "
C: MAIL FROM:<a@remote.example>
C: RCPT TO:<alice@example.com>
C~ BDAT 1000 LAST\\r\\n{chunk}
S: 250 2.1.0 Sender OK
S: 250 2.1.5 Recipient OK
S: 250 2.0.0 Ok: queued as Q1
"
    )));
    assert_eq!(m.delivered[0].body.len(), 1000);
}

#[test]
fn absurd_bdat_size_closes_the_connection() {
    mx(&with_ehlo(
        "
C: MAIL FROM:<a@remote.example>
C: RCPT TO:<alice@example.com>
C: BDAT 999999999999 LAST
S: 250 2.1.0 Sender OK
S: 250 2.1.5 Recipient OK
S: 552 5.3.4 Message size exceeds fixed maximum message size
S: 421 4.7.0 Closing connection
!closed
",
    ));
}

#[test]
fn data_after_bdat_is_refused() {
    mx(&with_ehlo(
        "
C: MAIL FROM:<a@remote.example>
C: RCPT TO:<alice@example.com>
C~ BDAT 2\\r\\nab
C: DATA
S: 250 2.1.0 Sender OK
S: 250 2.1.5 Recipient OK
S: 250 2.0.0 2 octets received
S: 503 5.5.1 DATA cannot follow BDAT
",
    ));
}

#[test]
fn too_many_errors_close_with_421() {
    mx("
S: 220 mx.example.com ESMTP pochta
C: A
C: B
C: C
C: D
C: E
C: F
C: G
C: H
C: NOOP
S: 500 5.5.1 Command unrecognized
S: 500 5.5.1 Command unrecognized
S: 500 5.5.1 Command unrecognized
S: 500 5.5.1 Command unrecognized
S: 500 5.5.1 Command unrecognized
S: 500 5.5.1 Command unrecognized
S: 500 5.5.1 Command unrecognized
S: 500 5.5.1 Command unrecognized
S: 421 4.7.0 Too many errors, closing connection
!closed
");
}

#[test]
fn http_on_the_smtp_port_is_dropped() {
    mx("
S: 220 mx.example.com ESMTP pochta
C: GET / HTTP/1.1
S: 554 5.7.0 This is an SMTP server
!closed
");
}

#[test]
fn starttls_discards_pipelined_plaintext() {
    // Chunked only: fed byte by byte, the injected bytes would arrive after the
    // handshake, which is a different (legitimate) conversation.
    let (m, _) = run_once(
        Mode::Mx,
        None,
        &with_ehlo(
            "
C: STARTTLS
C: MAIL FROM:<injected@remote.example>
C: RCPT TO:<alice@example.com>
S: 220 2.0.0 Ready to start TLS
C: MAIL FROM:<a@remote.example>
S: 503 5.5.1 Send EHLO or HELO first
C: EHLO again
S: 250-mx.example.com
S: 250-PIPELINING
S: 250-SIZE 1000
S: 250-8BITMIME
S: 250-SMTPUTF8
S: 250-ENHANCEDSTATUSCODES
S: 250-CHUNKING
S: 250-DSN
S: 250 HELP
C: STARTTLS
S: 503 5.5.1 TLS already active
",
        ),
        false,
    );
    assert!(m.delivered.is_empty());
}

#[test]
fn starttls_with_arguments_is_a_syntax_error() {
    mx(&with_ehlo(
        "
C: STARTTLS now
S: 501 5.5.4 STARTTLS takes no arguments
",
    ));
}

#[test]
fn auth_plain_with_initial_response_then_send() {
    // \0alice@example.com\0secret
    let m = sub_tls(
        "
S: 220 mx.example.com ESMTP pochta
C: EHLO c
S: 250-mx.example.com
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-AUTH PLAIN LOGIN
S: 250 HELP
C: MAIL FROM:<alice@example.com>
S: 530 5.7.0 Authentication required
C: AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA==
S: 235 2.7.0 Authentication successful
C: AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA==
S: 503 5.5.1 Already authenticated
C: MAIL FROM:<bob@example.com>
S: 553 5.7.1 Sender address is not owned by the authenticated user
C: MAIL FROM:<>
S: 553 5.7.1 Sender address is not owned by the authenticated user
C: MAIL FROM:<sales@example.com>
S: 250 2.1.0 Sender OK
C: RCPT TO:<bob@example.com>
S: 250 2.1.5 Recipient OK
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
C: hello
C: .
S: 250 2.0.0 Ok: queued as Q1
",
    );
    assert_eq!(m.delivered.len(), 1);
}

#[test]
fn auth_plain_without_initial_response() {
    sub_tls(
        "
S: 220 mx.example.com ESMTP pochta
C: EHLO c
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250 HELP
C: AUTH PLAIN
S: 334 
C: AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA==
S: 235 2.7.0 Authentication successful
",
    );
}

#[test]
fn auth_login_and_cancel_and_garbage() {
    sub_tls(
        "
S: 220 mx.example.com ESMTP pochta
C: EHLO c
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250 HELP
C: AUTH LOGIN
S: 334 VXNlcm5hbWU6
C: *
S: 501 5.0.0 Authentication cancelled
C: AUTH LOGIN
S: 334 VXNlcm5hbWU6
C: %%%
S: 501 5.5.2 Cannot decode response
C: AUTH CRAM-MD5
S: 504 5.5.4 Unrecognized authentication type
C: AUTH LOGIN YWxpY2VAZXhhbXBsZS5jb20=
S: 334 UGFzc3dvcmQ6
C: c2VjcmV0
S: 235 2.7.0 Authentication successful
",
    );
}

#[test]
fn three_failed_auths_close_the_session() {
    // \0alice@example.com\0wrong
    let m = sub_tls(
        "
S: 220 mx.example.com ESMTP pochta
C: EHLO c
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250 HELP
C: AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHdyb25n
S: 535 5.7.8 Authentication credentials invalid
C: AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHdyb25n
S: 535 5.7.8 Authentication credentials invalid
C: AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHdyb25n
S: 535 5.7.8 Authentication credentials invalid
S: 421 4.7.0 Too many failed authentication attempts, closing connection
!closed
",
    );
    assert_eq!(m.auth_attempts, 3);
}

#[test]
fn throttled_login_closes() {
    // \0locked@example.com\0x
    sub_tls(
        "
S: 220 mx.example.com ESMTP pochta
C: EHLO c
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250 HELP
C: AUTH PLAIN AGxvY2tlZEBleGFtcGxlLmNvbQB4
S: 454 4.7.0 Too many failed logins, try again later
S: 421 4.7.0 Closing connection
!closed
",
    );
}

#[test]
fn auth_is_refused_on_the_mx() {
    run(
        Mode::Mx,
        Some(tls()),
        "
S: 220 mx.example.com ESMTP pochta
C: EHLO c
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250 HELP
C: AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA==
S: 503 5.5.1 AUTH is not available on this port
",
    );
}

#[test]
fn smtputf8_addresses_need_the_parameter() {
    let m = mx(&with_ehlo(
        "
C: MAIL FROM:<пётр@remote.example>
S: 553 5.6.7 Non-ASCII address needs the SMTPUTF8 parameter
C: MAIL FROM:<пётр@пример.рф> SMTPUTF8
S: 250 2.1.0 Sender OK
C: RCPT TO:<карл@example.com>
S: 250 2.1.5 Recipient OK
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
C: Subject: привет
C:
C: тело
C: .
S: 250 2.0.0 Ok: queued as Q1
",
    ));
    let tx = &m.delivered[0];
    assert!(tx.smtputf8);
    assert_eq!(
        tx.mail_from.as_ref().unwrap().domain().as_str(),
        "xn--e1afmkfd.xn--p1ai"
    );
    assert_eq!(tx.body, "Subject: привет\r\n\r\nтело\r\n".as_bytes());
}

#[test]
fn unsupported_parameters_are_555() {
    mx(&with_ehlo(
        "
C: MAIL FROM:<a@remote.example> BY=120;R
S: 555 5.5.4 Unsupported MAIL parameter
C: MAIL FROM:<a@remote.example> BODY=BINARYMIME
S: 555 5.5.4 Unsupported MAIL parameter
C: MAIL FROM:<a@remote.example> FOO=BAR
S: 555 5.5.4 Unsupported parameter FOO=BAR
C: MAIL FROM:<a@remote.example>
S: 250 2.1.0 Sender OK
C: RCPT TO:<alice@example.com> RRVS=2030-01-01T00:00:00Z
S: 555 5.5.4 Unsupported RCPT parameter
",
    ));
}

#[test]
fn dsn_parameters_are_kept_with_the_envelope() {
    let m = mx(&with_ehlo(
        "
C: MAIL FROM:<a@remote.example> RET=HDRS ENVID=QQ314159+2Bx
S: 250 2.1.0 Sender OK
C: RCPT TO:<alice@example.com> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Alice+40Example.COM
S: 250 2.1.5 Recipient OK
C: RCPT TO:<bob@example.com> NOTIFY=NEVER
S: 250 2.1.5 Recipient OK
C: RCPT TO:<postmaster@example.com>
S: 250 2.1.5 Recipient OK
C: RCPT TO:<dan@example.com> NOTIFY=NEVER,FAILURE
S: 501 5.5.4 NOTIFY=NEVER cannot be combined with other values
C: RCPT TO:<dan@example.com> NOTIFY=SOMETIMES
S: 501 5.5.4 Invalid value for parameter NOTIFY
C: DATA
S: 354 *
C: Subject: x
C:
C: body
C: .
S: 250 2.0.0 *
C: MAIL FROM:<> RET=FULL RET=HDRS
S: 501 5.5.4 RET given twice
",
    ));
    let tx = &m.delivered[0];
    assert_eq!(tx.ret, Some(Ret::Headers));
    assert_eq!(tx.envid.as_deref(), Some("QQ314159+x"));
    assert_eq!(tx.recipients.len(), 3);
    assert_eq!(
        tx.recipient_dsn,
        vec![
            RcptDsn {
                notify: Some(Notify {
                    success: true,
                    failure: false,
                    delay: true
                }),
                orcpt: Some("Alice@Example.COM".into()),
            },
            RcptDsn {
                notify: Some(Notify::default()),
                orcpt: None,
            },
            RcptDsn::default(),
        ]
    );
}

#[test]
fn helo_clients_cannot_use_parameters() {
    mx("
S: 220 mx.example.com ESMTP pochta
C: HELO c
S: 250 2.0.0 mx.example.com
C: MAIL FROM:<a@remote.example> BODY=8BITMIME
S: 555 5.5.4 MAIL parameters need EHLO
");
}

#[test]
fn ehlo_resets_the_transaction() {
    mx(&with_ehlo(
        "
C: MAIL FROM:<a@remote.example>
S: 250 2.1.0 Sender OK
C: EHLO again
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250-*
S: 250 HELP
C: RCPT TO:<alice@example.com>
S: 503 5.5.1 Need MAIL before RCPT
",
    ));
}

#[test]
fn delivery_failures_map_to_replies() {
    let m = mx(&with_ehlo(
        "
!deliver full
!deliver temp
!deliver reject
C: MAIL FROM:<a@remote.example>
C: RCPT TO:<alice@example.com>
C: DATA
S: 250 2.1.0 Sender OK
S: 250 2.1.5 Recipient OK
S: 354 End data with <CR><LF>.<CR><LF>
C: .
S: 452 4.3.1 Insufficient system storage, try again later
C: MAIL FROM:<a@remote.example>
C: RCPT TO:<alice@example.com>
C: DATA
S: 250 2.1.0 Sender OK
S: 250 2.1.5 Recipient OK
S: 354 End data with <CR><LF>.<CR><LF>
C: .
S: 451 4.3.0 Local error in processing, try again later
C: MAIL FROM:<a@remote.example>
C: RCPT TO:<alice@example.com>
C: DATA
S: 250 2.1.0 Sender OK
S: 250 2.1.5 Recipient OK
S: 354 End data with <CR><LF>.<CR><LF>
C: .
S: 554 5.7.1 Rejected by policy
",
    ));
    assert!(m.delivered.is_empty());
}

#[test]
fn shutdown_when_idle_is_421() {
    mx(&with_ehlo(
        "
!shutdown
S: 421 4.3.2 Service shutting down, try again later
!closed
",
    ));
}

#[test]
fn shutdown_during_data_lets_the_message_finish() {
    let m = mx(&with_ehlo(
        "
C: MAIL FROM:<a@remote.example>
C: RCPT TO:<alice@example.com>
C: DATA
S: 250 2.1.0 Sender OK
S: 250 2.1.5 Recipient OK
S: 354 End data with <CR><LF>.<CR><LF>
C: first part
!shutdown
C: second part
C: .
S: 250 2.0.0 Ok: queued as Q1
S: 421 4.3.2 Service shutting down, try again later
!closed
",
    ));
    assert_eq!(m.delivered[0].body, b"first part\r\nsecond part\r\n");
}

#[test]
fn eof_in_data_delivers_nothing() {
    let m = mx(&with_ehlo(
        "
C: MAIL FROM:<a@remote.example>
C: RCPT TO:<alice@example.com>
C: DATA
S: 250 2.1.0 Sender OK
S: 250 2.1.5 Recipient OK
S: 354 End data with <CR><LF>.<CR><LF>
C: half a message
!eof
!closed
",
    ));
    assert!(m.delivered.is_empty());
}

#[test]
fn commands_are_case_insensitive_and_lf_terminated_lines_work() {
    mx("
S: 220 mx.example.com ESMTP pochta
C~ helo c\\n
S: 250 2.0.0 mx.example.com
C~ noop\\n
S: 250 2.0.0 OK
C: qUiT
S: 221 2.0.0 Bye
!closed
");
}
