//! Transcript tests of the SMTP client state machine against scripted servers.

#![allow(clippy::unwrap_used)] // helpers assert by unwrapping, like the tests they serve
//!
//! A transcript is a list of lines, seen from the client:
//! * `S: text` — the server sends `text` + CRLF; consecutive S lines go in one
//!   write (that is how a server answering a pipelined group is scripted);
//! * `S~ text` — the server sends `text` raw, with `\r`, `\n`, `\\` escapes;
//! * `C: text` — the client must have written exactly this line (a trailing
//!   `*` matches any rest). What the client wrote is checked before every new
//!   S group, so a C line listed before an S line must have been written
//!   *before* that reply arrived: that is how PIPELINING is checked;
//! * `!eof`, `!timeout` — the server closes / the driver's deadline passes;
//! * `!tls-fail` — the next TLS handshake fails;
//! * `!hold` / `!release` — the driver holds back its next message (the
//!   connection idles at NeedMessage) / hands it over;
//! * `!closed`, `!open` — the client must have closed / must not have;
//! * `!timeout-is N` — the timeout that applies now is N seconds.
//!
//! The driver mock answers NeedMessage with the next queued message, or QUIT
//! when there is none. Every transcript runs twice: with each S group fed at
//! once and fed one byte at a time; output, results and errors must be identical.

use std::collections::VecDeque;
use std::sync::Arc;

use pochta_addr::Secret;
use pochta_proto_smtp::client::*;

const PEER: &str = "mx.example.net";

fn cfg() -> ClientConfig {
    let mut c = ClientConfig::new("relay.example.org");
    c.max_line = 200;
    c
}

fn creds() -> Credentials {
    Credentials {
        authzid: None,
        login: "alice".into(),
        password: Secret::new("secret"),
    }
}

fn msg(from: &str, rcpts: &[&str], body: &str) -> Outgoing {
    Outgoing::new(
        (!from.is_empty()).then(|| from.to_string()),
        rcpts.iter().map(|r| OutRcpt::new(*r)).collect(),
        Arc::new(body.as_bytes().to_vec()),
    )
}

/// 22 octets on the wire.
const BODY: &str = "Subject: hi\r\n\r\nHello\r\n";

fn simple() -> Outgoing {
    msg("alice@example.org", &["bob@example.net"], BODY)
}

/// The relay's side of the loop, minus the network.
#[derive(Default)]
struct Mock {
    messages: VecDeque<Outgoing>,
    sent: usize,
    results: Vec<TransactionResult>,
    closed: Option<Option<SessionError>>,
    tls_fail: bool,
    handshakes: u32,
    flushes: u32,
    hold: bool,
    /// Set at StartTls and Close: the rest of the bytes read must not be fed.
    drop_rest: bool,
}

impl Mock {
    fn drive(&mut self, c: &mut Client) {
        loop {
            match c.poll() {
                Action::NeedInput => return,
                Action::Flush => self.flushes += 1,
                Action::StartTls => {
                    self.drop_rest = true;
                    self.handshakes += 1;
                    if self.tls_fail {
                        c.tls_failed("handshake failure");
                    } else {
                        c.tls_established();
                    }
                }
                Action::NeedMessage => {
                    if self.hold {
                        return;
                    }
                    match self.messages.pop_front() {
                        Some(m) => {
                            self.sent += 1;
                            c.send(m);
                        }
                        None => c.quit(),
                    }
                }
                Action::Finished(r) => self.results.push(r),
                Action::Close(e) => {
                    self.drop_rest = true;
                    self.closed = Some(e);
                    return;
                }
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

struct Run {
    mock: Mock,
    client: Client,
    lines: Vec<String>,
}

fn run_once(config: ClientConfig, messages: &[Outgoing], transcript: &str, bytewise: bool) -> Run {
    let mut client = Client::new(config, PEER, false);
    let mut mock = Mock {
        messages: messages.iter().cloned().collect(),
        ..Mock::default()
    };
    let mut got: Vec<String> = Vec::new();
    let mut expected: Vec<String> = Vec::new();
    let mut group: Vec<u8> = Vec::new();
    let mut log: Vec<String> = Vec::new();

    let flush = |client: &mut Client, mock: &mut Mock, group: &mut Vec<u8>| {
        if group.is_empty() {
            mock.drive(client);
            return;
        }
        mock.drop_rest = false;
        if bytewise {
            for b in group.iter() {
                if mock.drop_rest {
                    break;
                }
                client.feed(std::slice::from_ref(b));
                mock.drive(client);
            }
        } else {
            client.feed(group);
            mock.drive(client);
        }
        group.clear();
    };
    let collect = |client: &mut Client, got: &mut Vec<String>| {
        let out = std::mem::take(&mut client.output);
        let text = String::from_utf8(out).expect("client output is UTF-8 in these tests");
        for line in text.split_inclusive("\r\n") {
            assert!(line.ends_with("\r\n"), "line without CRLF: {line:?}");
            got.push(line.trim_end_matches("\r\n").to_string());
        }
    };
    let check = |got: &[String], expected: &[String], log: &[String]| {
        let ok = got.len() == expected.len()
            && got
                .iter()
                .zip(expected)
                .all(|(g, e)| match e.strip_suffix('*') {
                    Some(prefix) => g.starts_with(prefix),
                    None => g == e,
                });
        assert!(
            ok,
            "client output differs (bytewise={bytewise}) after:\n{}\n--- expected\n{}\n--- got\n{}",
            log.join("\n"),
            expected.join("\n"),
            got.join("\n")
        );
    };

    mock.drive(&mut client);
    let mut in_s_group = false;
    for raw in transcript.lines() {
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        log.push(line.to_string());
        let s_line = line
            .strip_prefix("S: ")
            .or((line == "S:").then_some(""))
            .map(|s| {
                let mut v = s.as_bytes().to_vec();
                v.extend_from_slice(b"\r\n");
                v
            })
            .or_else(|| line.strip_prefix("S~ ").map(unescape));
        if let Some(bytes) = s_line {
            if !in_s_group {
                collect(&mut client, &mut got);
                check(&got, &expected, &log);
                in_s_group = true;
            }
            group.extend_from_slice(&bytes);
            continue;
        }
        in_s_group = false;
        if let Some(c) = line.strip_prefix("C: ").or((line == "C:").then_some("")) {
            flush(&mut client, &mut mock, &mut group);
            collect(&mut client, &mut got);
            expected.push(c.to_string());
            continue;
        }
        flush(&mut client, &mut mock, &mut group);
        collect(&mut client, &mut got);
        check(&got, &expected, &log);
        match line {
            "!eof" => {
                client.eof();
                mock.drive(&mut client);
            }
            "!timeout" => {
                client.timed_out();
                mock.drive(&mut client);
            }
            "!tls-fail" => mock.tls_fail = true,
            "!hold" => mock.hold = true,
            "!release" => {
                mock.hold = false;
                mock.drive(&mut client);
            }
            "!closed" => assert!(
                mock.closed.is_some(),
                "client should have closed\n{}",
                log.join("\n")
            ),
            "!open" => assert!(mock.closed.is_none(), "client closed: {:?}", mock.closed),
            other => {
                if let Some(secs) = other.strip_prefix("!timeout-is ") {
                    assert_eq!(
                        client.current_timeout().as_secs(),
                        secs.parse::<u64>().unwrap(),
                        "timeout at:\n{}",
                        log.join("\n")
                    );
                } else {
                    panic!("bad transcript line {other:?}");
                }
            }
        }
    }
    flush(&mut client, &mut mock, &mut group);
    collect(&mut client, &mut got);
    check(&got, &expected, &log);
    Run {
        mock,
        client,
        lines: got,
    }
}

/// Runs a transcript fed whole and byte by byte; returns the whole-fed run.
fn run_with(config: ClientConfig, messages: &[Outgoing], transcript: &str) -> Run {
    let a = run_once(config.clone(), messages, transcript, true);
    let b = run_once(config, messages, transcript, false);
    assert_eq!(a.lines, b.lines);
    assert_eq!(a.mock.results, b.mock.results);
    assert_eq!(a.mock.closed, b.mock.closed);
    assert_eq!(a.mock.sent, b.mock.sent);
    // The contract: one Finished for every message handed over.
    assert_eq!(b.mock.results.len(), b.mock.sent, "one Finished per send");
    b
}

fn run(messages: &[Outgoing], transcript: &str) -> Run {
    run_with(cfg(), messages, transcript)
}

fn statuses(r: &TransactionResult) -> Vec<Status> {
    r.recipients.iter().map(|o| o.status).collect()
}

fn replies(r: &TransactionResult) -> Vec<String> {
    r.recipients.iter().map(|o| o.reply.to_string()).collect()
}

fn close_error(run: &Run) -> &SessionError {
    run.mock
        .closed
        .as_ref()
        .expect("closed")
        .as_ref()
        .expect("closed with an error")
}

use Status::{Delivered, PermFail, TempFail};

/// A server with PIPELINING and the usual extensions, but no STARTTLS or CHUNKING.
const EHLO_PIPE: &str = "
S: 220 mx.example.net ESMTP
C: EHLO relay.example.org
S: 250-mx.example.net hello
S: 250-PIPELINING
S: 250-SIZE 10000
S: 250-8BITMIME
S: 250 ENHANCEDSTATUSCODES
";

/// A server with no extensions at all (but EHLO).
const EHLO_PLAIN: &str = "
S: 220 mx.example.net ESMTP
C: EHLO relay.example.org
S: 250 mx.example.net
";

fn pipe(rest: &str) -> String {
    format!("{EHLO_PIPE}{rest}")
}

fn plain(rest: &str) -> String {
    format!("{EHLO_PLAIN}{rest}")
}

// ---------------------------------------------------------------- happy paths

#[test]
fn happy_path_with_pipelining() {
    let m = msg(
        "alice@example.org",
        &["bob@example.net", "carol@example.net"],
        BODY,
    );
    let r = run(
        &[m],
        &pipe(
            "
C: MAIL FROM:<alice@example.org> SIZE=22
C: RCPT TO:<bob@example.net>
C: RCPT TO:<carol@example.net>
C: DATA
!timeout-is 300
S: 250 2.1.0 Sender OK
S: 250 2.1.5 Recipient OK
S: 250 2.1.5 Recipient OK
S: 354 Go ahead
C: Subject: hi
C:
C: Hello
C: .
!timeout-is 600
S: 250 2.0.0 Ok: queued as ABC
C: QUIT
!closed
",
        ),
    );
    assert_eq!(r.mock.closed, Some(None));
    let res = &r.mock.results[0];
    assert_eq!(statuses(res), [Delivered, Delivered]);
    assert_eq!(replies(res)[0], "250 2.0.0 Ok: queued as ABC");
    assert_eq!(res.recipients[0].stage, Stage::DataEnd);
    assert!(!res.recipients[0].reply.generated);
    assert!(!res.dsn_relayed);
    assert!(r.client.esmtp());
    assert_eq!(r.client.remote_name(), Some("mx.example.net"));
}

#[test]
fn happy_path_without_pipelining_one_command_at_a_time() {
    let m = msg(
        "alice@example.org",
        &["bob@example.net", "carol@example.net"],
        BODY,
    );
    let r = run(
        &[m],
        &plain(
            "
C: MAIL FROM:<alice@example.org>
!timeout-is 300
S: 250 OK
C: RCPT TO:<bob@example.net>
S: 250 OK
C: RCPT TO:<carol@example.net>
S: 550 5.1.1 <carol@example.net>: no such user
C: DATA
!timeout-is 120
S: 354 go
C: Subject: hi
C:
C: Hello
C: .
!timeout-is 600
S: 250 queued
C: QUIT
",
        ),
    );
    let res = &r.mock.results[0];
    assert_eq!(statuses(res), [Delivered, PermFail]);
    assert_eq!(res.recipients[1].stage, Stage::Rcpt);
    assert_eq!(
        res.recipients[1].reply.esc,
        Some(EnhancedCode::new(5, 1, 1))
    );
    assert_eq!(replies(res)[0], "250 queued");
}

#[test]
fn pipelining_can_be_turned_off() {
    let mut c = cfg();
    c.pipelining = false;
    run_with(
        c,
        &[simple()],
        &pipe(
            "
C: MAIL FROM:<alice@example.org> SIZE=22
S: 250 OK
C: RCPT TO:<bob@example.net>
S: 250 OK
C: DATA
S: 354 go
C: Subject: hi
C:
C: Hello
C: .
S: 250 queued
C: QUIT
",
        ),
    );
}

#[test]
fn null_sender_and_multi_line_greeting() {
    let m = msg("", &["bob@example.net"], "x\r\n");
    run(
        &[m],
        "
S: 220-mx.example.net ESMTP
S: 220-we are a friendly server
S: 220 really
C: EHLO relay.example.org
S: 250-mx.example.net
S: 250 PIPELINING
C: MAIL FROM:<>
C: RCPT TO:<bob@example.net>
C: DATA
S: 250 OK
S: 250 OK
S: 354 go
C: x
C: .
S: 250 OK
C: QUIT
",
    );
}

// ---------------------------------------------------------- greeting and hello

#[test]
fn greeting_554_is_permanent_and_quits() {
    let r = run(
        &[],
        "
!timeout-is 300
S: 554 5.7.1 No SMTP service here
C: QUIT
!closed
",
    );
    let e = close_error(&r);
    assert_eq!(e.kind, ErrorKind::Rejected);
    assert_eq!(e.stage, Stage::Greeting);
    assert_eq!(e.status, PermFail);
    assert_eq!(e.reply.to_string(), "554 5.7.1 No SMTP service here");
    // The relay applies it to the messages it meant for this connection.
    let res = TransactionResult::failed(&simple(), e);
    assert_eq!(statuses(&res), [PermFail]);
}

#[test]
fn greeting_421_is_temporary_without_quit() {
    let r = run(
        &[],
        "
S: 421 4.3.2 too busy
!closed
",
    );
    let e = close_error(&r);
    assert_eq!((e.kind, e.status), (ErrorKind::Closing, TempFail));
}

#[test]
fn greeting_450_is_temporary_and_quits() {
    let r = run(
        &[],
        "
S: 450 come back later
C: QUIT
!closed
",
    );
    assert_eq!(close_error(&r).status, TempFail);
}

#[test]
fn ehlo_refused_falls_back_to_helo_without_extensions() {
    let r = run(
        &[simple()],
        "
S: 220 old.example.net
C: EHLO relay.example.org
S: 502 5.5.1 command not implemented
C: HELO relay.example.org
S: 250 old.example.net
C: MAIL FROM:<alice@example.org>
S: 250 OK
C: RCPT TO:<bob@example.net>
S: 250 OK
C: DATA
S: 354 go
C: Subject: hi
C:
C: Hello
C: .
S: 250 OK
C: QUIT
",
    );
    assert!(!r.client.esmtp());
    assert_eq!(r.client.remote_name(), Some("old.example.net"));
    assert_eq!(statuses(&r.mock.results[0]), [Delivered]);
}

#[test]
fn ehlo_and_helo_refused_is_permanent() {
    let r = run(
        &[],
        "
S: 220 mx
C: EHLO relay.example.org
S: 550 go away
C: HELO relay.example.org
S: 550 5.7.1 really, go away
C: QUIT
!closed
",
    );
    let e = close_error(&r);
    assert_eq!(
        (e.kind, e.stage, e.status),
        (ErrorKind::Rejected, Stage::Helo, PermFail)
    );
}

#[test]
fn ehlo_4xx_is_temporary() {
    let r = run(
        &[],
        "
S: 220 mx
C: EHLO relay.example.org
S: 451 4.3.0 try later
C: QUIT
!closed
",
    );
    let e = close_error(&r);
    assert_eq!((e.stage, e.status), (Stage::Ehlo, TempFail));
}

#[test]
fn helo_fallback_cannot_carry_8bit_content() {
    let m = msg("alice@example.org", &["bob@example.net"], "caf\u{e9}\r\n");
    let r = run(
        &[m],
        "
S: 220 mx
C: EHLO relay.example.org
S: 500 what
C: HELO relay.example.org
S: 250 mx
C: QUIT
",
    );
    let res = &r.mock.results[0];
    assert_eq!(statuses(res), [PermFail]);
    assert!(res.recipients[0].reply.generated);
    assert!(replies(res)[0].starts_with("554 5.6.3 mx.example.net does not support 8-bit content"));
}

// ------------------------------------------------------------------- STARTTLS

const EHLO_TLS: &str = "
S: 220 mx.example.net ESMTP
C: EHLO relay.example.org
S: 250-mx.example.net
S: 250-SIZE 100
S: 250 STARTTLS
";

#[test]
fn starttls_when_offered_then_ehlo_again_with_new_capabilities() {
    let r = run(
        &[simple()],
        &format!(
            "{EHLO_TLS}
C: STARTTLS
S: 220 2.0.0 Ready to start TLS
C: EHLO relay.example.org
S: 250-mx.example.net
S: 250-PIPELINING
S: 250 SIZE 1000
C: MAIL FROM:<alice@example.org> SIZE=22
C: RCPT TO:<bob@example.net>
C: DATA
S: 250 OK
S: 250 OK
S: 354 go
C: Subject: hi
C:
C: Hello
C: .
S: 250 OK
C: QUIT
"
        ),
    );
    assert_eq!(r.mock.handshakes, 1);
    assert!(r.client.tls_active());
    assert!(!r.client.capabilities().starttls);
    assert_eq!(r.client.capabilities().size, Some(1000));
}

#[test]
fn starttls_discards_replies_injected_in_clear_text() {
    let r = run(
        &[],
        &format!(
            "{EHLO_TLS}
C: STARTTLS
S: 220 2.0.0 Ready to start TLS
S: 250-injected.example
S: 250 AUTH PLAIN
C: EHLO relay.example.org
S: 250-mx.example.net
S: 250 8BITMIME
C: QUIT
"
        ),
    );
    assert_eq!(r.client.remote_name(), Some("mx.example.net"));
    assert!(r.client.capabilities().eight_bit_mime);
    assert!(r.client.capabilities().auth.is_empty());
}

#[test]
fn opportunistic_tls_not_offered_goes_on_in_clear() {
    let r = run(
        &[simple()],
        &plain(
            "
C: MAIL FROM:<alice@example.org>
S: 250 OK
C: RCPT TO:<bob@example.net>
S: 250 OK
C: DATA
S: 354 go
C: Subject: hi
C:
C: Hello
C: .
S: 250 OK
C: QUIT
",
        ),
    );
    assert!(!r.client.tls_active());
    assert_eq!(r.mock.handshakes, 0);
}

#[test]
fn required_tls_not_offered_fails_temporarily() {
    let mut c = cfg();
    c.tls = TlsPolicy::Required;
    let r = run_with(
        c,
        &[],
        &plain(
            "
C: QUIT
!closed
",
        ),
    );
    let e = close_error(&r);
    assert_eq!(e.kind, ErrorKind::TlsUnavailable);
    assert_eq!(e.status, TempFail);
    assert_eq!(
        e.reply.to_string(),
        "451 4.7.10 TLS required but mx.example.net does not offer STARTTLS"
    );
    assert!(e.reply.generated);
}

#[test]
fn starttls_refused_opportunistic_goes_on_required_fails() {
    let script = format!(
        "{EHLO_TLS}
C: STARTTLS
S: 454 4.7.0 TLS not available due to temporary reason
"
    );
    // Opportunistic: on in clear, no second EHLO, no second STARTTLS.
    let r = run(&[], &format!("{script}C: QUIT\n"));
    assert_eq!(r.mock.closed, Some(None));
    assert!(!r.client.tls_active());

    let mut c = cfg();
    c.tls = TlsPolicy::Required;
    let r = run_with(c, &[], &format!("{script}C: QUIT\n!closed\n"));
    let e = close_error(&r);
    assert_eq!(e.kind, ErrorKind::TlsUnavailable);
    assert_eq!(
        e.reply.text(),
        "TLS required but mx.example.net refused STARTTLS: 454 4.7.0 TLS not available due to temporary reason"
    );
}

#[test]
fn tls_handshake_failure_says_whether_to_retry_in_clear() {
    let script = format!(
        "!tls-fail
{EHLO_TLS}
C: STARTTLS
S: 220 go ahead
!closed
"
    );
    let r = run(&[simple()], &script);
    let e = close_error(&r);
    assert_eq!(
        (e.kind, e.stage, e.status),
        (ErrorKind::TlsFailed, Stage::TlsHandshake, TempFail)
    );
    assert!(e.retry_without_tls);
    assert_eq!(r.mock.sent, 0);

    let mut c = cfg();
    c.tls = TlsPolicy::Required;
    let r = run_with(c, &[], &script);
    assert!(!close_error(&r).retry_without_tls);
}

#[test]
fn tls_disabled_ignores_starttls() {
    let mut c = cfg();
    c.tls = TlsPolicy::Disabled;
    run_with(
        c,
        &[],
        &format!(
            "{EHLO_TLS}
C: QUIT
"
        ),
    );
}

// ----------------------------------------------------------------------- AUTH

fn auth_cfg() -> ClientConfig {
    let mut c = cfg();
    c.auth = Some(creds());
    c
}

fn tls_then(ehlo_after: &str, rest: &str) -> String {
    format!(
        "{EHLO_TLS}
C: STARTTLS
S: 220 go ahead
C: EHLO relay.example.org
{ehlo_after}
{rest}"
    )
}

#[test]
fn auth_plain_with_initial_response_after_tls() {
    let r = run_with(
        auth_cfg(),
        &[simple()],
        &tls_then(
            "S: 250-mx.example.net\nS: 250-AUTH LOGIN PLAIN\nS: 250 PIPELINING",
            "
C: AUTH PLAIN AGFsaWNlAHNlY3JldA==
S: 235 2.7.0 Authentication successful
C: MAIL FROM:<alice@example.org>
C: RCPT TO:<bob@example.net>
C: DATA
S: 250 OK
S: 250 OK
S: 354 go
C: Subject: hi
C:
C: Hello
C: .
S: 250 OK
C: QUIT
",
        ),
    );
    assert!(r.client.authenticated());
}

#[test]
fn auth_login_when_plain_is_not_offered() {
    let r = run_with(
        auth_cfg(),
        &[],
        &tls_then(
            "S: 250-mx.example.net\nS: 250 AUTH=LOGIN",
            "
C: AUTH LOGIN
S: 334 VXNlcm5hbWU6
C: YWxpY2U=
S: 334 UGFzc3dvcmQ6
C: c2VjcmV0
S: 235 2.7.0 Authentication successful
C: QUIT
",
        ),
    );
    assert!(r.client.authenticated());
}

#[test]
fn auth_refused_is_a_temporary_session_error() {
    let r = run_with(
        auth_cfg(),
        &[simple()],
        &tls_then(
            "S: 250-mx.example.net\nS: 250 AUTH PLAIN",
            "
C: AUTH PLAIN AGFsaWNlAHNlY3JldA==
S: 535 5.7.8 Authentication credentials invalid
C: QUIT
!closed
",
        ),
    );
    let e = close_error(&r);
    assert_eq!(
        (e.kind, e.stage, e.status),
        (ErrorKind::AuthFailed, Stage::Auth, TempFail)
    );
    assert_eq!(
        e.reply.to_string(),
        "535 5.7.8 Authentication credentials invalid"
    );
    assert_eq!(r.mock.sent, 0);
}

#[test]
fn credentials_are_never_sent_in_clear_unless_allowed() {
    let script = "
S: 220 mx
C: EHLO relay.example.org
S: 250-mx
S: 250 AUTH PLAIN
";
    let r = run_with(auth_cfg(), &[], &format!("{script}C: QUIT\n!closed\n"));
    let e = close_error(&r);
    assert_eq!(e.kind, ErrorKind::AuthUnavailable);
    assert_eq!(
        e.reply.to_string(),
        "451 4.7.10 not sending credentials to mx.example.net without TLS"
    );

    let mut c = auth_cfg();
    c.auth_without_tls = true;
    run_with(
        c,
        &[],
        &format!("{script}C: AUTH PLAIN AGFsaWNlAHNlY3JldA==\nS: 235 ok\nC: QUIT\n"),
    );
}

#[test]
fn auth_not_offered_or_no_known_mechanism() {
    let r = run_with(
        auth_cfg(),
        &[],
        &tls_then("S: 250 mx.example.net", "C: QUIT\n!closed\n"),
    );
    assert_eq!(close_error(&r).kind, ErrorKind::AuthUnavailable);
    let r = run_with(
        auth_cfg(),
        &[],
        &tls_then(
            "S: 250-mx.example.net\nS: 250 AUTH CRAM-MD5 XOAUTH2",
            "C: QUIT\n",
        ),
    );
    assert!(close_error(&r).reply.text().contains("CRAM-MD5 XOAUTH2"));
}

// ------------------------------------------------------------ MAIL and RCPT

#[test]
fn mail_refused_fails_every_recipient_and_pipelined_replies_are_consumed() {
    let m = msg(
        "alice@example.org",
        &["bob@example.net", "carol@example.net"],
        BODY,
    );
    let r = run(
        &[m, simple()],
        &pipe(
            "
C: MAIL FROM:<alice@example.org> SIZE=22
C: RCPT TO:<bob@example.net>
C: RCPT TO:<carol@example.net>
C: DATA
S: 550 5.7.1 sender rejected
S: 503 5.5.1 need MAIL first
S: 503 5.5.1 need MAIL first
S: 503 5.5.1 need MAIL first
# No transaction is open on the server: no RSET.
C: MAIL FROM:<alice@example.org> SIZE=22
C: RCPT TO:<bob@example.net>
C: DATA
S: 451 4.3.0 try later
S: 503 5.5.1 need MAIL first
S: 503 5.5.1 need MAIL first
C: QUIT
",
        ),
    );
    let first = &r.mock.results[0];
    assert_eq!(statuses(first), [PermFail, PermFail]);
    assert_eq!(first.recipients[0].stage, Stage::Mail);
    assert_eq!(replies(first)[1], "550 5.7.1 sender rejected");
    let second = &r.mock.results[1];
    assert_eq!(statuses(second), [TempFail]);
}

#[test]
fn some_recipients_refused_the_rest_delivered() {
    let m = msg(
        "alice@example.org",
        &["a@example.net", "b@example.net", "c@example.net"],
        BODY,
    );
    let r = run(
        &[m],
        &pipe(
            "
C: MAIL FROM:<alice@example.org> SIZE=22
C: RCPT TO:<a@example.net>
C: RCPT TO:<b@example.net>
C: RCPT TO:<c@example.net>
C: DATA
S: 250 2.1.0 OK
S: 550 5.1.1 no such user
S: 452 4.5.3 too many recipients
S: 250 2.1.5 OK
S: 354 go
C: Subject: hi
C:
C: Hello
C: .
S: 250 2.0.0 queued
C: QUIT
",
        ),
    );
    let res = &r.mock.results[0];
    assert_eq!(statuses(res), [PermFail, TempFail, Delivered]);
    assert_eq!(res.count(Delivered), 1);
    assert_eq!(replies(res)[1], "452 4.5.3 too many recipients");
}

#[test]
fn all_recipients_refused_and_pipelined_data_refused_then_rset_before_next() {
    let r = run(
        &[simple(), simple()],
        &pipe(
            "
C: MAIL FROM:<alice@example.org> SIZE=22
C: RCPT TO:<bob@example.net>
C: DATA
S: 250 OK
S: 550 5.1.1 no such user
S: 554 5.5.1 No valid recipients
# RFC 2920: no body after a refused DATA; the open transaction is reset.
C: RSET
C: MAIL FROM:<alice@example.org> SIZE=22
C: RCPT TO:<bob@example.net>
C: DATA
S: 250 reset
S: 250 OK
S: 250 OK
S: 354 go
C: Subject: hi
C:
C: Hello
C: .
S: 250 OK
C: QUIT
",
        ),
    );
    assert_eq!(statuses(&r.mock.results[0]), [PermFail]);
    assert_eq!(r.mock.results[0].recipients[0].stage, Stage::Rcpt);
    assert_eq!(statuses(&r.mock.results[1]), [Delivered]);
}

#[test]
fn all_recipients_refused_but_data_accepted_sends_a_single_dot() {
    let r = run(
        &[simple(), simple()],
        &pipe(
            "
C: MAIL FROM:<alice@example.org> SIZE=22
C: RCPT TO:<bob@example.net>
C: DATA
S: 250 OK
S: 550 5.1.1 no such user
S: 354 go ahead anyway
C: .
S: 554 5.5.1 no recipients
# The dot closed the transaction: no RSET.
C: MAIL FROM:<alice@example.org> SIZE=22
C: RCPT TO:<bob@example.net>
C: DATA
S: 250 OK
S: 550 5.1.1 no such user
S: 354 go ahead anyway
C: .
!timeout-is 600
S: 250 OK (with nothing?)
C: QUIT
",
        ),
    );
    assert_eq!(statuses(&r.mock.results[0]), [PermFail]);
    assert_eq!(replies(&r.mock.results[1]), ["550 5.1.1 no such user"]);
}

#[test]
fn all_recipients_refused_without_pipelining_sends_no_data() {
    let r = run(
        &[simple(), simple()],
        &plain(
            "
C: MAIL FROM:<alice@example.org>
S: 250 OK
C: RCPT TO:<bob@example.net>
S: 450 4.2.1 mailbox busy
C: RSET
S: 250 OK
C: MAIL FROM:<alice@example.org>
S: 250 OK
C: RCPT TO:<bob@example.net>
S: 250 OK
C: DATA
S: 354 go
C: Subject: hi
C:
C: Hello
C: .
S: 250 OK
C: QUIT
",
        ),
    );
    assert_eq!(statuses(&r.mock.results[0]), [TempFail]);
    assert_eq!(statuses(&r.mock.results[1]), [Delivered]);
}

#[test]
fn data_refused_fails_accepted_recipients_and_rsets() {
    let m = msg(
        "alice@example.org",
        &["bob@example.net", "nobody@example.net"],
        BODY,
    );
    let r = run(
        &[m, simple()],
        &plain(
            "
C: MAIL FROM:<alice@example.org>
S: 250 OK
C: RCPT TO:<bob@example.net>
S: 250 OK
C: RCPT TO:<nobody@example.net>
S: 550 5.1.1 no
C: DATA
S: 451 4.3.0 local problem
C: RSET
S: 250 OK
C: MAIL FROM:<alice@example.org>
S: 250 OK
C: RCPT TO:<bob@example.net>
S: 250 OK
C: DATA
S: 554 5.7.0 no
C: QUIT
",
        ),
    );
    let first = &r.mock.results[0];
    assert_eq!(statuses(first), [TempFail, PermFail]);
    assert_eq!(first.recipients[0].stage, Stage::Data);
    assert_eq!(statuses(&r.mock.results[1]), [PermFail]);
}

#[test]
fn end_of_data_failures_decide_and_need_no_rset() {
    let r = run(
        &[simple(), simple(), simple()],
        &plain(
            "
C: MAIL FROM:<alice@example.org>
S: 250 OK
C: RCPT TO:<bob@example.net>
S: 250 OK
C: DATA
S: 354 go
C: Subject: hi
C:
C: Hello
C: .
S: 554 5.7.1 spam
C: MAIL FROM:<alice@example.org>
S: 250 OK
C: RCPT TO:<bob@example.net>
S: 250 OK
C: DATA
S: 354 go
C: Subject: hi
C:
C: Hello
C: .
S: 452 4.3.1 disk full
C: MAIL FROM:<alice@example.org>
S: 250 OK
C: RCPT TO:<bob@example.net>
S: 250 OK
C: DATA
S: 354 go
C: Subject: hi
C:
C: Hello
C: .
S: 250-2.0.0 queued
S: 250 2.0.0 as XYZ
C: QUIT
",
        ),
    );
    let res = &r.mock.results;
    assert_eq!(statuses(&res[0]), [PermFail]);
    assert_eq!(res[0].recipients[0].stage, Stage::DataEnd);
    assert_eq!(statuses(&res[1]), [TempFail]);
    assert_eq!(statuses(&res[2]), [Delivered]);
    assert_eq!(res[2].recipients[0].reply.lines, ["queued", "as XYZ"]);
}

#[test]
fn a_421_anywhere_fails_what_is_open_and_closes_without_quit() {
    let m = msg(
        "alice@example.org",
        &["a@example.net", "b@example.net", "c@example.net"],
        BODY,
    );
    let r = run(
        &[m],
        &pipe(
            "
C: MAIL FROM:<alice@example.org> SIZE=22
C: RCPT TO:<a@example.net>
C: RCPT TO:<b@example.net>
C: RCPT TO:<c@example.net>
C: DATA
S: 250 OK
S: 550 5.1.1 no such user
S: 421 4.4.2 mx.example.net closing, too many errors
!closed
",
        ),
    );
    let res = &r.mock.results[0];
    assert_eq!(statuses(res), [PermFail, TempFail, TempFail]);
    assert_eq!(
        replies(res)[2],
        "421 4.4.2 mx.example.net closing, too many errors"
    );
    assert_eq!(res.recipients[1].stage, Stage::Rcpt);
    assert_eq!(close_error(&r).kind, ErrorKind::Closing);
}

#[test]
fn multi_line_replies_keep_their_lines_without_codes() {
    let m = msg("alice@example.org", &["bob@example.net"], BODY);
    let r = run(
        &[m],
        &plain(
            "
C: MAIL FROM:<alice@example.org>
S: 250-2.1.0 first
S: 250 2.1.0 second
C: RCPT TO:<bob@example.net>
S: 550-5.7.1 Your mail was rejected
S: 550-5.7.1 because we do not like it.
S: 550 5.7.1 See https://example.net/why
C: QUIT
",
        ),
    );
    let o = &r.mock.results[0].recipients[0];
    assert_eq!(o.reply.code, 550);
    assert_eq!(o.reply.esc, Some(EnhancedCode::new(5, 7, 1)));
    assert_eq!(
        o.reply.lines,
        [
            "Your mail was rejected",
            "because we do not like it.",
            "See https://example.net/why"
        ]
    );
    assert_eq!(
        o.reply.to_string(),
        "550 5.7.1 Your mail was rejected because we do not like it. See https://example.net/why"
    );
}

// ---------------------------------------------------------- connection loss

/// Drops the connection at each step of a non-pipelined session; whatever was
/// open fails temporarily with a generated reply naming the step.
#[test]
fn eof_at_every_step() {
    let steps: &[(&str, Stage, Option<&str>)] = &[
        ("", Stage::Greeting, None),
        ("S: 220 mx\nC: EHLO relay.example.org\n", Stage::Ehlo, None),
        (
            "S: 220 mx\nC: EHLO relay.example.org\nS: 250-mx\nS: 250 STARTTLS\nC: STARTTLS\n",
            Stage::StartTls,
            None,
        ),
        (
            "S: 220 mx\nC: EHLO relay.example.org\nS: 250 mx\nC: MAIL FROM:<alice@example.org>\n",
            Stage::Mail,
            Some(
                "451 4.4.2 connection to mx.example.net lost while waiting for the reply to MAIL FROM",
            ),
        ),
        (
            "S: 220 mx\nC: EHLO relay.example.org\nS: 250 mx\nC: MAIL FROM:<alice@example.org>\n\
             S: 250 ok\nC: RCPT TO:<bob@example.net>\n",
            Stage::Rcpt,
            Some(
                "451 4.4.2 connection to mx.example.net lost while waiting for the reply to RCPT TO",
            ),
        ),
        (
            "S: 220 mx\nC: EHLO relay.example.org\nS: 250 mx\nC: MAIL FROM:<alice@example.org>\n\
             S: 250 ok\nC: RCPT TO:<bob@example.net>\nS: 250 ok\nC: DATA\n",
            Stage::Data,
            Some("451 4.4.2 connection to mx.example.net lost while waiting for the reply to DATA"),
        ),
        (
            "S: 220 mx\nC: EHLO relay.example.org\nS: 250 mx\nC: MAIL FROM:<alice@example.org>\n\
             S: 250 ok\nC: RCPT TO:<bob@example.net>\nS: 250 ok\nC: DATA\nS: 354 go\n\
             C: Subject: hi\nC:\nC: Hello\nC: .\n",
            Stage::DataEnd,
            Some(
                "451 4.4.2 connection to mx.example.net lost while waiting for the reply to end of data",
            ),
        ),
    ];
    for (prefix, stage, text) in steps {
        let r = run(&[simple()], &format!("{prefix}!eof\n!closed\n"));
        let e = close_error(&r);
        assert_eq!(
            (e.kind, e.stage, e.status),
            (ErrorKind::ConnectionLost, *stage, TempFail)
        );
        assert!(e.reply.generated);
        match text {
            Some(t) => {
                let res = &r.mock.results[0];
                assert_eq!(statuses(res), [TempFail]);
                assert_eq!(replies(res)[0], *t);
            }
            None => assert!(r.mock.results.is_empty()),
        }
    }
}

#[test]
fn eof_while_idle_between_messages() {
    let r = run(
        &[simple()],
        &format!(
            "!hold
{EHLO_PLAIN}
!eof
!closed
"
        ),
    );
    let e = close_error(&r);
    assert_eq!(e.stage, Stage::Idle);
    assert_eq!(r.mock.sent, 0);
}

#[test]
fn eof_after_a_pipelined_group_fails_only_the_open_recipients() {
    let m = msg(
        "alice@example.org",
        &["a@example.net", "b@example.net"],
        BODY,
    );
    let r = run(
        &[m],
        &pipe(
            "
C: MAIL FROM:<alice@example.org> SIZE=22
C: RCPT TO:<a@example.net>
C: RCPT TO:<b@example.net>
C: DATA
S: 250 OK
S: 550 5.1.1 no
!eof
",
        ),
    );
    let res = &r.mock.results[0];
    assert_eq!(statuses(res), [PermFail, TempFail]);
    assert_eq!(res.recipients[1].stage, Stage::Rcpt);
}

#[test]
fn timeout_mid_transaction() {
    let r = run(
        &[simple()],
        &plain(
            "
C: MAIL FROM:<alice@example.org>
S: 250 OK
C: RCPT TO:<bob@example.net>
S: 250 OK
C: DATA
!timeout-is 120
!timeout
!closed
",
        ),
    );
    let e = close_error(&r);
    assert_eq!(e.kind, ErrorKind::TimedOut);
    assert_eq!(
        replies(&r.mock.results[0]),
        [
            "451 4.4.2 conversation with mx.example.net timed out while waiting for the reply to DATA"
        ]
    );
}

#[test]
fn unsolicited_421_while_idle_is_read_as_the_reply_to_mail() {
    let r = run(
        &[simple()],
        &format!(
            "!hold
{EHLO_PIPE}
S: 421 4.4.2 idle too long
!release
C: MAIL FROM:<alice@example.org> SIZE=22
C: RCPT TO:<bob@example.net>
C: DATA
!closed
"
        ),
    );
    assert_eq!(statuses(&r.mock.results[0]), [TempFail]);
    assert_eq!(close_error(&r).kind, ErrorKind::Closing);
}

// ------------------------------------------------- garbage and long lines

#[test]
fn garbage_replies_end_the_session_temporarily() {
    for bad in [
        "S: hello there",
        "S: 25",
        "S: 250x ok",
        "S: 099 odd",
        "S: 650 out of range",
        "S: 250-first\nS: 251 second",
    ] {
        let r = run(
            &[simple()],
            &plain(&format!(
                "
C: MAIL FROM:<alice@example.org>
{bad}
!closed
"
            )),
        );
        let res = &r.mock.results;
        let e = close_error(&r);
        assert_eq!(
            (e.kind, e.stage),
            (ErrorKind::Protocol, Stage::Mail),
            "{bad}"
        );
        assert_eq!(statuses(&res[0]), [TempFail], "{bad}");
        assert!(replies(&res[0])[0].starts_with("451 4.5.0 invalid reply from mx.example.net"));
    }
}

#[test]
fn unexpected_reply_codes_end_the_session() {
    let r = run(
        &[simple()],
        &plain(
            "
C: MAIL FROM:<alice@example.org>
S: 354 what?
!closed
",
        ),
    );
    assert_eq!(close_error(&r).kind, ErrorKind::Protocol);
    assert_eq!(
        replies(&r.mock.results[0])[0],
        "451 4.5.0 unexpected reply from mx.example.net while waiting for the reply to MAIL FROM: 354 what?"
    );
}

#[test]
fn over_long_reply_lines_end_the_session() {
    let long = "x".repeat(250);
    // Complete but too long, and too long without ever ending.
    for script in [format!("S: 250 {long}\n"), format!("S~ 250-{long}")] {
        let r = run(
            &[simple()],
            &plain(&format!(
                "C: MAIL FROM:<alice@example.org>\n{script}!closed\n"
            )),
        );
        let e = close_error(&r);
        assert_eq!(e.kind, ErrorKind::Protocol);
        assert!(
            e.reply.text().contains("exceeds the line limits"),
            "{}",
            e.reply
        );
        assert_eq!(statuses(&r.mock.results[0]), [TempFail]);
    }
}

#[test]
fn endless_multi_line_reply_is_cut_off() {
    let mut script = String::from("S: 220 mx\nC: EHLO relay.example.org\n");
    for _ in 0..=MAX_REPLY_LINES {
        script.push_str("S: 250-X-FILLER\n");
    }
    script.push_str("!closed\n");
    let r = run(&[], &script);
    assert_eq!(close_error(&r).kind, ErrorKind::Protocol);
}

#[test]
fn bare_lf_replies_are_accepted() {
    run(
        &[],
        "
S~ 220 mx\\n
C: EHLO relay.example.org
S~ 250-mx\\n250 8BITMIME\\n
C: QUIT
",
    );
}

// ------------------------------------------------------------- parameters

#[test]
fn size_over_the_servers_limit_is_refused_without_sending() {
    let big = msg(
        "alice@example.org",
        &["bob@example.net", "carol@example.net"],
        &"x".repeat(100),
    );
    let r = run(
        &[big, simple()],
        "
S: 220 mx
C: EHLO relay.example.org
S: 250-mx
S: 250 SIZE 50
C: MAIL FROM:<alice@example.org> SIZE=22
S: 250 OK
C: RCPT TO:<bob@example.net>
S: 250 OK
C: DATA
S: 354 go
C: Subject: hi
C:
C: Hello
C: .
S: 250 OK
C: QUIT
",
    );
    let first = &r.mock.results[0];
    assert_eq!(statuses(first), [PermFail, PermFail]);
    assert_eq!(
        replies(first)[0],
        "552 5.3.4 message too big for mx.example.net (102 octets, its limit is 50)"
    );
    assert!(first.recipients[0].reply.generated);
    assert_eq!(statuses(&r.mock.results[1]), [Delivered]);
}

#[test]
fn smtputf8_needed_but_not_offered() {
    let utf8_rcpt = msg("alice@example.org", &["пётр@example.net"], BODY);
    let mut utf8_header = simple();
    utf8_header.needs_smtputf8 = true;
    let r = run(&[utf8_rcpt, utf8_header], &plain("C: QUIT\n"));
    assert_eq!(
        replies(&r.mock.results[0]),
        ["553 5.6.7 mx.example.net does not support SMTPUTF8, needed for non-ASCII addresses"]
    );
    assert_eq!(
        replies(&r.mock.results[1]),
        ["554 5.6.9 mx.example.net does not support SMTPUTF8, needed for UTF-8 header fields"]
    );
}

#[test]
fn smtputf8_and_8bitmime_are_declared_when_offered() {
    let mut m = msg(
        "алиса@example.org",
        &["пётр@example.net"],
        "Subject: привет\r\n\r\nтекст\r\n",
    );
    m.needs_smtputf8 = true;
    run(
        &[m],
        "
S: 220 mx
C: EHLO relay.example.org
S: 250-mx
S: 250-8BITMIME
S: 250 SMTPUTF8
C: MAIL FROM:<алиса@example.org> BODY=8BITMIME SMTPUTF8
S: 250 OK
C: RCPT TO:<пётр@example.net>
S: 250 OK
C: DATA
S: 354 go
C: Subject: привет
C:
C: текст
C: .
S: 250 OK
C: QUIT
",
    );
}

#[test]
fn eight_bit_content_without_8bitmime_is_refused() {
    let mut m = simple();
    m.needs_8bit = true;
    let r = run(&[m], &plain("C: QUIT\n"));
    assert_eq!(
        r.mock.results[0].recipients[0].reply.status(),
        EnhancedCode::new(5, 6, 3)
    );
}

fn dsn_message() -> Outgoing {
    let mut m = simple();
    m.dsn = Some(DsnParams {
        ret: Some(Ret::Headers),
        envid: Some("Q1+x=y".into()),
    });
    m.recipients[0].notify = Some(Notify {
        success: true,
        failure: true,
        delay: false,
    });
    m.recipients[0].orcpt = Some("Bob+list@example.net".into());
    m.recipients.push(OutRcpt {
        address: "carol@example.net".into(),
        notify: Some(Notify::default()),
        orcpt: None,
    });
    m
}

#[test]
fn dsn_parameters_sent_when_offered() {
    let r = run(
        &[dsn_message()],
        "
S: 220 mx
C: EHLO relay.example.org
S: 250-mx
S: 250-PIPELINING
S: 250 DSN
C: MAIL FROM:<alice@example.org> RET=HDRS ENVID=Q1+2Bx+3Dy
C: RCPT TO:<bob@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob+2Blist@example.net
C: RCPT TO:<carol@example.net> NOTIFY=NEVER
C: DATA
S: 250 OK
S: 250 OK
S: 250 OK
S: 354 go
C: Subject: hi
C:
C: Hello
C: .
S: 250 OK
C: QUIT
",
    );
    assert!(r.mock.results[0].dsn_relayed);
    // What we send must parse with a real server-side parser.
    for line in r
        .lines
        .iter()
        .filter(|l| l.starts_with("MAIL") || l.starts_with("RCPT"))
    {
        let bytes = format!("{line}\r\n").into_bytes();
        let parsed = smtp_proto::Request::parse(&mut bytes.iter());
        assert!(parsed.is_ok(), "{line}: {parsed:?}");
        match parsed.unwrap() {
            smtp_proto::Request::Mail { from } => {
                assert_eq!(from.env_id.as_deref(), Some("Q1+x=y"));
                assert_ne!(from.flags & smtp_proto::MAIL_RET_HDRS, 0);
            }
            smtp_proto::Request::Rcpt { to } if to.address == "bob@example.net" => {
                assert_eq!(to.orcpt.as_deref(), Some("Bob+list@example.net"));
                assert_ne!(to.flags & smtp_proto::RCPT_NOTIFY_SUCCESS, 0);
                assert_ne!(to.flags & smtp_proto::RCPT_NOTIFY_FAILURE, 0);
            }
            smtp_proto::Request::Rcpt { to } => {
                assert_ne!(to.flags & smtp_proto::RCPT_NOTIFY_NEVER, 0);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn dsn_parameters_dropped_when_not_offered() {
    let r = run(
        &[dsn_message()],
        "
S: 220 mx
C: EHLO relay.example.org
S: 250-mx
S: 250 PIPELINING
C: MAIL FROM:<alice@example.org>
C: RCPT TO:<bob@example.net>
C: RCPT TO:<carol@example.net>
C: DATA
S: 250 OK
S: 250 OK
S: 250 OK
S: 354 go
C: Subject: hi
C:
C: Hello
C: .
S: 250 OK
C: QUIT
",
    );
    assert!(!r.mock.results[0].dsn_relayed);
}

#[test]
fn addresses_that_could_inject_commands_are_refused_locally() {
    let m = msg(
        "alice@example.org",
        &["bob@example.net>\r\nRSET", "carol@example.net", ""],
        BODY,
    );
    let bad_sender = msg("alice@example.org\r\nQUIT", &["bob@example.net"], BODY);
    let r = run(
        &[bad_sender, m],
        &plain(
            "
C: MAIL FROM:<alice@example.org>
S: 250 OK
C: RCPT TO:<carol@example.net>
S: 250 OK
C: DATA
S: 354 go
C: Subject: hi
C:
C: Hello
C: .
S: 250 OK
C: QUIT
",
        ),
    );
    assert_eq!(statuses(&r.mock.results[0]), [PermFail]);
    assert!(replies(&r.mock.results[0])[0].starts_with("553 5.1.7 invalid sender address"));
    let second = &r.mock.results[1];
    assert_eq!(statuses(second), [PermFail, Delivered, PermFail]);
    assert!(replies(second)[0].starts_with("553 5.1.3 invalid recipient address"));
}

#[test]
fn a_message_without_recipients_is_finished_at_once() {
    let r = run(&[msg("alice@example.org", &[], BODY)], &plain("C: QUIT\n"));
    assert!(r.mock.results[0].recipients.is_empty());
}

// ------------------------------------------------------------ body transfer

#[test]
fn chunking_sends_bdat_with_the_raw_message() {
    let m = msg(
        "alice@example.org",
        &["bob@example.net"],
        "Subject: hi\r\n\r\n.Hello\r\n",
    );
    let r = run(
        &[m, simple()],
        "
S: 220 mx
C: EHLO relay.example.org
S: 250-mx
S: 250-PIPELINING
S: 250 CHUNKING
C: MAIL FROM:<alice@example.org>
C: RCPT TO:<bob@example.net>
C: BDAT 23 LAST
C: Subject: hi
C:
C: .Hello
!timeout-is 300
S: 250 OK
S: 250 OK
S: 250 2.0.0 queued
C: MAIL FROM:<alice@example.org>
C: RCPT TO:<bob@example.net>
C: BDAT 22 LAST
C: Subject: hi
C:
C: Hello
S: 250 OK
S: 250 OK
!timeout-is 600
S: 554 5.7.1 rejected
C: QUIT
",
    );
    assert_eq!(statuses(&r.mock.results[0]), [Delivered]);
    assert_eq!(statuses(&r.mock.results[1]), [PermFail]);
    assert_eq!(r.mock.results[1].recipients[0].stage, Stage::DataEnd);
}

#[test]
fn failed_bdat_is_followed_by_rset() {
    let r = run(
        &[simple(), simple()],
        "
S: 220 mx
C: EHLO relay.example.org
S: 250-mx
S: 250 CHUNKING
C: MAIL FROM:<alice@example.org>
S: 250 OK
C: RCPT TO:<bob@example.net>
S: 250 OK
C: BDAT 22 LAST
C: Subject: hi
C:
C: Hello
S: 451 4.3.0 try later
C: RSET
S: 250 OK
C: MAIL FROM:<alice@example.org>
S: 250 OK
C: RCPT TO:<bob@example.net>
S: 550 5.1.1 gone
C: QUIT
",
    );
    assert_eq!(statuses(&r.mock.results[0]), [TempFail]);
    assert_eq!(statuses(&r.mock.results[1]), [PermFail]);
}

#[test]
fn chunking_can_be_turned_off() {
    let mut c = cfg();
    c.chunking = false;
    run_with(
        c,
        &[simple()],
        "
S: 220 mx
C: EHLO relay.example.org
S: 250-mx
S: 250 CHUNKING
C: MAIL FROM:<alice@example.org>
S: 250 OK
C: RCPT TO:<bob@example.net>
S: 250 OK
C: DATA
S: 354 go
C: Subject: hi
C:
C: Hello
C: .
S: 250 OK
C: QUIT
",
    );
}

#[test]
fn dot_stuffing_and_line_ends() {
    let m = msg(
        "alice@example.org",
        &["bob@example.net"],
        ".\r\n..two\r\n.three\r\nfour.\r\n\r\n.\nbare lf\rbare cr\r\nno final line end",
    );
    run(
        &[m],
        &plain(
            "
C: MAIL FROM:<alice@example.org>
S: 250 OK
C: RCPT TO:<bob@example.net>
S: 250 OK
C: DATA
S: 354 go
C: ..
C: ...two
C: ..three
C: four.
C:
C: ..
C: bare lf
C: bare cr
C: no final line end
C: .
S: 250 OK
C: QUIT
",
        ),
    );
}

#[test]
fn large_bodies_are_written_a_block_at_a_time() {
    let line = "a line of text that is long enough to fill blocks quickly............\r\n";
    let mut body = String::new();
    while body.len() < 3 * BODY_BLOCK + 100 {
        body.push_str(line);
        body.push_str(".dot\r\n");
    }
    let m = msg("alice@example.org", &["bob@example.net"], &body);
    let mut c = Client::new(cfg(), PEER, false);
    let mut mock = Mock {
        messages: VecDeque::from([m]),
        ..Mock::default()
    };
    mock.drive(&mut c);
    c.feed(b"220 mx\r\n250 mx\r\n");
    mock.drive(&mut c);
    c.feed(b"250 ok\r\n250 ok\r\n354 go\r\n");
    let mut out = Vec::new();
    let mut flushes = 0;
    loop {
        match c.poll() {
            Action::Flush => {
                assert!(c.output.len() <= BODY_BLOCK + 1000);
                assert_eq!(c.current_timeout().as_secs(), 180);
                flushes += 1;
                out.append(&mut c.output);
            }
            Action::NeedInput => break,
            other => panic!("{other:?}"),
        }
    }
    out.append(&mut c.output);
    assert!(flushes >= 3, "{flushes}");
    let text = String::from_utf8(out).unwrap();
    let expected_body = body.replace(".dot", "..dot");
    let expected = format!(
        "EHLO relay.example.org\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n{expected_body}.\r\n"
    );
    assert!(text == expected, "body differs");
}

// ------------------------------------------------------- connection reuse

#[test]
fn several_messages_on_one_connection() {
    let a = msg("alice@example.org", &["bob@example.net"], "one\r\n");
    let b = msg("alice@example.org", &["bob@example.net"], "two\r\n");
    let c = msg("alice@example.org", &["carol@example.net"], "three\r\n");
    let r = run(
        &[a, b, c],
        &pipe(
            "
C: MAIL FROM:<alice@example.org> SIZE=5
C: RCPT TO:<bob@example.net>
C: DATA
S: 250 OK
S: 250 OK
S: 354 go
C: one
C: .
S: 250 OK
C: MAIL FROM:<alice@example.org> SIZE=5
C: RCPT TO:<bob@example.net>
C: DATA
S: 250 OK
S: 250 OK
S: 451 4.3.0 no
C: RSET
C: MAIL FROM:<alice@example.org> SIZE=7
C: RCPT TO:<carol@example.net>
C: DATA
S: 250 OK
S: 250 OK
S: 250 OK
S: 354 go
C: three
C: .
S: 250 OK
C: QUIT
!closed
",
        ),
    );
    let st: Vec<Vec<Status>> = r.mock.results.iter().map(statuses).collect();
    assert_eq!(st, [vec![Delivered], vec![TempFail], vec![Delivered]]);
    assert_eq!(r.mock.closed, Some(None));
}

#[test]
fn a_failed_rset_ends_the_session() {
    let r = run(
        &[simple(), simple()],
        &plain(
            "
C: MAIL FROM:<alice@example.org>
S: 250 OK
C: RCPT TO:<bob@example.net>
S: 550 no
C: RSET
S: 500 5.5.1 what?
C: QUIT
!closed
",
        ),
    );
    assert_eq!(statuses(&r.mock.results[1]), [TempFail]);
    assert_eq!(r.mock.results[1].recipients[0].stage, Stage::Rset);
}

#[test]
fn quit_during_a_transaction_abandons_it() {
    let mut c = Client::new(cfg(), PEER, false);
    c.feed(b"220 mx\r\n250 mx\r\n");
    assert!(matches!(c.poll(), Action::NeedMessage));
    c.send(simple());
    assert!(matches!(c.poll(), Action::NeedInput));
    c.output.clear();
    c.quit();
    let Action::Finished(r) = c.poll() else {
        panic!("a Finished first");
    };
    assert_eq!(statuses(&r), [TempFail]);
    assert!(matches!(c.poll(), Action::Close(Some(e)) if e.kind == ErrorKind::Aborted));
    assert!(
        c.output.is_empty(),
        "no QUIT in the middle of a transaction"
    );
}

#[test]
fn send_when_not_ready_still_answers() {
    let mut c = Client::new(cfg(), PEER, false);
    c.send(simple());
    let Action::Finished(r) = c.poll() else {
        panic!("the message must be answered");
    };
    assert_eq!(statuses(&r), [TempFail]);
    assert!(matches!(c.poll(), Action::NeedInput));
}

#[test]
fn implicit_tls_skips_starttls() {
    let mut c = cfg();
    c.tls = TlsPolicy::Required;
    c.auth = Some(creds());
    let mut client = Client::new(c, PEER, true);
    client.feed(b"220 mx\r\n250-mx\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n");
    assert!(matches!(client.poll(), Action::NeedInput));
    assert_eq!(
        String::from_utf8(std::mem::take(&mut client.output)).unwrap(),
        "EHLO relay.example.org\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"
    );
}

#[test]
fn connect_failure_helper() {
    let e = SessionError::connect_failed("mx.example.net[192.0.2.1]", "connection refused");
    let res = TransactionResult::failed(&simple(), &e);
    assert_eq!(statuses(&res), [TempFail]);
    assert_eq!(
        replies(&res),
        ["451 4.4.1 cannot connect to mx.example.net[192.0.2.1]: connection refused"]
    );
    assert_eq!(res.recipients[0].stage, Stage::Connect);
}

#[test]
fn default_timeouts_are_rfc5321s() {
    let t = Timeouts::default();
    let mins = |d: std::time::Duration| d.as_secs() / 60;
    assert_eq!(
        [
            mins(t.greeting),
            mins(t.mail),
            mins(t.rcpt),
            mins(t.data_init),
            mins(t.data_block),
            mins(t.data_term)
        ],
        [5, 5, 5, 2, 3, 10]
    );
}

// ---------------------------------------------------- against our own server

mod interop {
    use super::*;
    use pochta_addr::Address;
    use pochta_proto_smtp::{
        Action as SAction, DeliveryVerdict, Mode, RcptVerdict, SenderVerdict, Session,
        SessionConfig, TlsInfo, Transaction,
    };

    fn server() -> Session {
        Session::new(
            SessionConfig {
                hostname: "mx.example.net".into(),
                mode: Mode::Mx,
                max_message_size: 100_000,
                max_recipients: 10,
                max_line_length: 1000,
                max_errors: 20,
                starttls: true,
                postmaster: Address::parse("postmaster@example.net").unwrap(),
            },
            None,
        )
    }

    /// Runs our client against our server in memory until both are done.
    fn converse(
        config: ClientConfig,
        messages: Vec<Outgoing>,
    ) -> (Vec<TransactionResult>, Vec<Transaction>) {
        let mut s = server();
        let mut c = Client::new(config, PEER, false);
        let mut queue: VecDeque<Outgoing> = messages.into();
        let mut results = Vec::new();
        let mut delivered = Vec::new();
        let mut n = 0;
        let mut client_closed = false;
        let mut server_closed = false;
        for _ in 0..10_000 {
            // Server turn.
            loop {
                match s.poll() {
                    SAction::NeedInput => break,
                    SAction::Close => {
                        server_closed = true;
                        break;
                    }
                    SAction::StartTls => s.tls_established(TlsInfo {
                        version: "TLSv1.3".into(),
                        cipher: "TEST".into(),
                    }),
                    SAction::CheckSender { .. } => s.answer_sender(SenderVerdict::Accept),
                    SAction::CheckRecipient { address } => {
                        s.answer_recipient(if address.local().starts_with("nobody") {
                            RcptVerdict::UnknownUser
                        } else {
                            RcptVerdict::Accept
                        })
                    }
                    SAction::Authenticate(_) => unreachable!("no AUTH on MX"),
                    SAction::Deliver(tx) => {
                        n += 1;
                        delivered.push(*tx);
                        s.answer_delivery(DeliveryVerdict::Accepted {
                            id: format!("Q{n}"),
                        });
                    }
                }
            }
            let to_client = std::mem::take(&mut s.output);
            if !to_client.is_empty() {
                c.feed(&to_client);
            }
            // Client turn.
            loop {
                match c.poll() {
                    Action::NeedInput => break,
                    Action::Flush => {}
                    Action::StartTls => c.tls_established(),
                    Action::NeedMessage => match queue.pop_front() {
                        Some(m) => c.send(m),
                        None => c.quit(),
                    },
                    Action::Finished(r) => results.push(r),
                    Action::Close(e) => {
                        assert_eq!(e, None);
                        client_closed = true;
                        break;
                    }
                }
            }
            let to_server = std::mem::take(&mut c.output);
            if !to_server.is_empty() {
                s.feed(&to_server);
            } else if to_client.is_empty() && client_closed {
                break;
            }
        }
        assert!(client_closed);
        // The server saw QUIT and said goodbye.
        while !server_closed {
            match s.poll() {
                SAction::Close => server_closed = true,
                other => panic!("{other:?}"),
            }
        }
        assert!(c.tls_active());
        (results, delivered)
    }

    fn body() -> Vec<u8> {
        let mut b = Vec::new();
        for i in 0..500 {
            b.extend_from_slice(format!("line {i}\r\n").as_bytes());
            b.extend_from_slice(b".\r\n..\r\n.starts with a dot\r\n");
        }
        b.extend_from_slice("ünïcödé body\r\n".as_bytes());
        b
    }

    #[test]
    fn our_client_delivers_to_our_server_in_every_mode() {
        for (pipelining, chunking) in [(true, true), (true, false), (false, true), (false, false)] {
            let mut config = ClientConfig::new("relay.example.org");
            config.pipelining = pipelining;
            config.chunking = chunking;
            let body = Arc::new(body());
            let one = Outgoing::new(
                Some("alice@example.org".into()),
                vec![
                    OutRcpt::new("bob@example.net"),
                    OutRcpt::new("nobody@example.net"),
                    OutRcpt::new("carol@example.net"),
                ],
                body.clone(),
            );
            let two = Outgoing::new(
                None,
                vec![OutRcpt::new("nobody2@example.net")],
                body.clone(),
            );
            let three = Outgoing::new(
                Some("x@example.org".into()),
                vec![OutRcpt::new("dave@example.net")],
                body.clone(),
            );
            let (results, delivered) = converse(config, vec![one, two, three]);
            let st: Vec<Vec<Status>> = results.iter().map(statuses).collect();
            assert_eq!(
                st,
                [
                    vec![Delivered, PermFail, Delivered],
                    vec![PermFail],
                    vec![Delivered]
                ],
                "pipelining={pipelining} chunking={chunking}"
            );
            assert_eq!(delivered.len(), 2);
            for tx in &delivered {
                assert_eq!(
                    tx.body, *body,
                    "pipelining={pipelining} chunking={chunking}"
                );
                assert_eq!(tx.chunked, chunking);
                assert_eq!(tx.body_type, pochta_proto_smtp::BodyType::EightBitMime);
            }
            assert_eq!(delivered[0].recipients.len(), 2);
            assert_eq!(delivered[0].declared_size, Some(body.len()));
        }
    }
}

// ------------------------------------------------------------ robustness

/// A small deterministic generator, so failures reproduce.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// What a random server says: mostly well-formed replies with codes that may
/// or may not fit, sometimes multi-line, sometimes garbage or cut short.
fn random_server(rng: &mut Lcg) -> Vec<Vec<u8>> {
    const CODES: &[&str] = &[
        "220", "235", "250", "250", "250", "250", "250", "250", "250", "251", "334", "354", "354",
        "354", "421", "450", "451", "452", "500", "502", "535", "550", "554",
    ];
    const TEXTS: &[&str] = &[
        "ok",
        "2.1.5 ok",
        "5.1.1 no",
        "4.3.0 later",
        "PIPELINING",
        "CHUNKING",
        "SIZE 30",
        "SIZE 100000",
        "STARTTLS",
        "AUTH PLAIN LOGIN",
        "AUTH LOGIN",
        "8BITMIME",
        "SMTPUTF8",
        "DSN",
        "VXNlcm5hbWU6",
        "",
    ];
    const GARBAGE: &[&[u8]] = &[b"\xff\x00", b"x", b"25", b"\r", b"999 no", b"250x"];
    let mut chunks = Vec::new();
    // A greeting and an EHLO reply with random extensions, so transactions happen.
    let mut hello = b"220 mx\r\n250-mx\r\n".to_vec();
    for _ in 0..rng.below(6) {
        hello.extend_from_slice(b"250-");
        hello.extend_from_slice(rng.pick(&TEXTS[4..14]).as_bytes());
        hello.extend_from_slice(b"\r\n");
    }
    hello.extend_from_slice(b"250 HELP\r\n");
    chunks.push(hello);
    for _ in 0..rng.below(30) {
        let mut chunk = Vec::new();
        for _ in 0..=rng.below(5) {
            if rng.below(25) == 0 {
                let garbage: &&[u8] = rng.pick(GARBAGE);
                chunk.extend_from_slice(garbage);
            }
            let code = rng.pick(CODES);
            for _ in 0..rng.below(3) {
                chunk.extend_from_slice(format!("{code}-{}\r\n", rng.pick(TEXTS)).as_bytes());
            }
            chunk.extend_from_slice(format!("{code} {}", rng.pick(TEXTS)).as_bytes());
            if rng.below(30) != 0 {
                chunk.extend_from_slice(b"\r\n");
            }
        }
        chunks.push(chunk);
    }
    chunks
}

/// Plays a random server to a client, fed whole or byte by byte, with the
/// driver's events (timeout, handshake failure) at chunk boundaries.
fn play(round: u64, chunks: &[Vec<u8>], bytewise: bool) -> (Mock, Vec<u8>) {
    let mut config = cfg();
    config.max_line = 64;
    if round.is_multiple_of(3) {
        config.auth = Some(creds());
        config.auth_without_tls = round.is_multiple_of(2);
    }
    if round.is_multiple_of(5) {
        config.tls = TlsPolicy::Required;
    }
    config.pipelining = round % 4 != 1;
    let mut c = Client::new(config, PEER, false);
    let mut big = dsn_message();
    big.body = Arc::new(vec![b'.'; 40]);
    let mut mock = Mock {
        messages: VecDeque::from([dsn_message(), big, dsn_message()]),
        tls_fail: round.is_multiple_of(7),
        ..Mock::default()
    };
    let mut written = Vec::new();
    mock.drive(&mut c);
    for (i, chunk) in chunks.iter().enumerate() {
        if mock.closed.is_some() {
            break;
        }
        mock.drop_rest = false;
        if bytewise {
            for b in chunk {
                if mock.drop_rest {
                    break;
                }
                c.feed(std::slice::from_ref(b));
                mock.drive(&mut c);
            }
        } else {
            c.feed(chunk);
            mock.drive(&mut c);
        }
        written.append(&mut c.output);
        if (round as usize + i).is_multiple_of(23) {
            c.timed_out();
            mock.drive(&mut c);
        }
    }
    c.eof();
    mock.drive(&mut c);
    written.append(&mut c.output);
    (mock, written)
}

/// Random servers never panic the client; every message handed over is
/// answered by exactly one Finished with one outcome per recipient; feeding
/// whole or byte by byte makes no difference.
#[test]
fn random_servers_never_panic_and_every_message_is_answered() {
    let mut rng = Lcg(0x5eed);
    let (mut sent, mut delivered, mut perm) = (0, 0, 0);
    for round in 0..2000 {
        let chunks = random_server(&mut rng);
        let (a, out_a) = play(round, &chunks, false);
        let (b, out_b) = play(round, &chunks, true);
        assert_eq!(out_a, out_b, "round {round}");
        assert_eq!(a.results, b.results, "round {round}");
        assert_eq!(a.closed, b.closed, "round {round}");
        assert!(a.closed.is_some());
        assert_eq!(a.results.len(), a.sent, "round {round}");
        for r in &a.results {
            assert_eq!(r.recipients.len(), 2);
        }
        sent += a.sent;
        delivered += a.results.iter().map(|r| r.count(Delivered)).sum::<usize>();
        perm += a.results.iter().map(|r| r.count(PermFail)).sum::<usize>();
    }
    // The generator must reach transactions, not just die at EHLO.
    eprintln!("random servers: {sent} messages, {delivered} delivered, {perm} refused");
    assert!(
        sent > 1000 && delivered > 20 && perm > 500,
        "{sent} {delivered} {perm}"
    );
}
