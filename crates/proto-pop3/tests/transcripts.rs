//! Transcript tests of the POP3 session (same conventions as the SMTP ones):
//! `C: ` client line (CRLF added), `C~ ` raw with `\r` `\n` escapes, `S: ` exact
//! reply line (`*` at the end matches any rest), `!eof`, `!closed`. Each runs fed
//! whole and byte by byte.

#![allow(clippy::unwrap_used)] // helpers assert by unwrapping, like the tests they serve

use pochta_proto_pop3::*;

const MSG1: &[u8] = b"Subject: one\r\n\r\nfirst\r\n";
const MSG2: &[u8] = b"Subject: two\r\n\r\n.dot line\r\n..two dots\r\nend\r\n";
const MSG3: &[u8] = b"Subject: three\r\nX: y\r\n\r\nl1\r\nl2\r\nl3\r\n";

fn maildrop() -> Vec<MaildropEntry> {
    [MSG1, MSG2, MSG3]
        .iter()
        .enumerate()
        .map(|(i, m)| MaildropEntry {
            id: 100 + i as u64,
            size: m.len() as u64,
            uidl: format!("u{}", 100 + i),
        })
        .collect()
}

#[derive(Default)]
struct Mock {
    closed: bool,
    committed: Option<(Vec<u64>, Vec<u64>)>,
    commit_fails: bool,
}

impl Mock {
    fn drive(&mut self, s: &mut Session) {
        loop {
            match s.poll() {
                Action::NeedInput => return,
                Action::Close => {
                    self.closed = true;
                    return;
                }
                Action::StartTls => s.tls_established(),
                Action::Authenticate(c) => {
                    s.answer_auth(match (c.login.as_str(), c.password.expose()) {
                        ("alice@example.com" | "busy@example.com", "secret") => {
                            AuthVerdict::Accept {
                                user: c.login.clone(),
                            }
                        }
                        ("locked@example.com", _) => AuthVerdict::Throttled,
                        _ => AuthVerdict::Failed,
                    })
                }
                Action::OpenMaildrop => {
                    let busy = s.user() == Some("busy@example.com");
                    s.answer_maildrop(if busy {
                        Err(MaildropError::InUse)
                    } else {
                        Ok(maildrop())
                    })
                }
                Action::Retrieve { id } => {
                    let m = [MSG1, MSG2, MSG3].get((id - 100) as usize).copied();
                    s.answer_message(m)
                }
                Action::Commit { delete, retrieved } => {
                    self.committed = Some((delete, retrieved));
                    s.answer_commit(!self.commit_fails);
                }
            }
        }
    }
}

fn unescape(s: &str) -> Vec<u8> {
    s.replace("\\r", "\r").replace("\\n", "\n").into_bytes()
}

fn run_once(tls: bool, t: &str, bytewise: bool) -> (Mock, Vec<String>) {
    let cfg = SessionConfig {
        starttls: true,
        max_errors: 6,
    };
    let mut s = Session::new(cfg, tls);
    let mut mock = Mock::default();
    let mut expected = Vec::new();
    let mut got = Vec::new();
    let mut group = Vec::new();
    fn flush(s: &mut Session, mock: &mut Mock, group: &mut Vec<u8>, bytewise: bool) {
        if bytewise {
            for b in group.iter() {
                s.feed(std::slice::from_ref(b));
                mock.drive(s);
            }
        } else {
            s.feed(group);
            mock.drive(s);
        }
        group.clear();
    }
    fn collect(s: &mut Session, got: &mut Vec<String>) {
        let out = std::mem::take(&mut s.output);
        for l in String::from_utf8(out).unwrap().split_inclusive("\r\n") {
            assert!(l.ends_with("\r\n"), "{l:?}");
            got.push(l.trim_end_matches("\r\n").to_string());
        }
    }
    mock.drive(&mut s);
    for line in t
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        if let Some(c) = line.strip_prefix("C: ") {
            group.extend_from_slice(c.as_bytes());
            group.extend_from_slice(b"\r\n");
            continue;
        }
        if let Some(c) = line.strip_prefix("C~ ") {
            group.extend_from_slice(&unescape(c));
            continue;
        }
        flush(&mut s, &mut mock, &mut group, bytewise);
        collect(&mut s, &mut got);
        if let Some(e) = line.strip_prefix("S: ") {
            expected.push(e.to_string());
        } else if line == "S:" {
            expected.push(String::new());
        } else if line == "!eof" {
            s.eof();
            mock.drive(&mut s);
        } else if line == "!closed" {
            assert!(mock.closed, "expected the session to be closed");
        } else if line == "!commit-fails" {
            mock.commit_fails = true;
        } else {
            panic!("bad line {line}");
        }
    }
    flush(&mut s, &mut mock, &mut group, bytewise);
    collect(&mut s, &mut got);
    let ok = got.len() == expected.len()
        && got
            .iter()
            .zip(&expected)
            .all(|(g, e)| match e.strip_suffix('*') {
                Some(p) => g.starts_with(p),
                None => g == e,
            });
    assert!(
        ok,
        "bytewise={bytewise}\n--- expected\n{}\n--- got\n{}",
        expected.join("\n"),
        got.join("\n")
    );
    (mock, got)
}

fn run(tls: bool, t: &str) -> Mock {
    let (_, a) = run_once(tls, t, true);
    let (m, b) = run_once(tls, t, false);
    assert_eq!(a, b);
    m
}

const LOGIN: &str = "
S: +OK pochta POP3 server ready
C: USER alice@example.com
S: +OK Send PASS
C: PASS secret
S: +OK Logged in, 3 messages (103 octets)
";

#[test]
fn capa_before_and_after_tls() {
    run(
        false,
        "
S: +OK pochta POP3 server ready
C: CAPA
S: +OK Capability list follows
S: TOP
S: UIDL
S: RESP-CODES
S: AUTH-RESP-CODE
S: PIPELINING
S: UTF8
S: STLS
S: IMPLEMENTATION pochta
S: .
C: STLS
S: +OK Begin TLS negotiation
C: CAPA
S: +OK Capability list follows
S: TOP
S: UIDL
S: RESP-CODES
S: AUTH-RESP-CODE
S: PIPELINING
S: UTF8
S: USER
S: SASL PLAIN LOGIN
S: IMPLEMENTATION pochta
S: .
C: STLS
S: -ERR Already using TLS
",
    );
}

#[test]
fn no_login_before_tls() {
    run(
        false,
        "
S: +OK pochta POP3 server ready
C: USER alice@example.com
S: -ERR [AUTH] Plain-text authentication is not allowed without TLS; use STLS first
C: PASS secret
S: -ERR [AUTH] Plain-text authentication is not allowed without TLS; use STLS first
C: AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA==
S: -ERR [AUTH] Plain-text authentication is not allowed without TLS; use STLS first
C: APOP alice 0123456789abcdef0123456789abcdef
S: -ERR APOP is not supported; use USER/PASS or AUTH over TLS
C: STAT
S: -ERR Not logged in
",
    );
}

#[test]
fn the_whole_transaction() {
    let m = run(
        true,
        &format!(
            "{LOGIN}
C: STAT
S: +OK 3 103
C: LIST
S: +OK 3 messages
S: 1 23
S: 2 44
S: 3 36
S: .
C: LIST 2
S: +OK 2 44
C: UIDL
S: +OK Unique-ID listing follows
S: 1 u100
S: 2 u101
S: 3 u102
S: .
C: UIDL 3
S: +OK 3 u102
C: RETR 2
S: +OK 44 octets
S: Subject: two
S:
S: ..dot line
S: ...two dots
S: end
S: .
C: TOP 3 1
S: +OK
S: Subject: three
S: X: y
S:
S: l1
S: .
C: TOP 3 0
S: +OK
S: Subject: three
S: X: y
S:
S: .
C: DELE 1
S: +OK Message 1 deleted
C: DELE 1
S: -ERR Message 1 is deleted
C: RETR 1
S: -ERR Message 1 is deleted
C: LIST
S: +OK 2 messages
S: 2 44
S: 3 36
S: .
C: STAT
S: +OK 2 80
C: NOOP
S: +OK
C: QUIT
S: +OK pochta POP3 server signing off (1 message deleted, 2 left)
!closed
"
        ),
    );
    assert_eq!(m.committed, Some((vec![100], vec![101])));
}

#[test]
fn rset_undeletes_and_quit_without_changes_commits_nothing() {
    let m = run(
        true,
        &format!(
            "{LOGIN}
C: DELE 1
S: +OK Message 1 deleted
C: DELE 3
S: +OK Message 3 deleted
C: RSET
S: +OK 3 messages (103 octets)
C: STAT
S: +OK 3 103
C: QUIT
S: +OK pochta POP3 server signing off (0 messages deleted, 3 left)
!closed
"
        ),
    );
    assert_eq!(m.committed, None);
}

#[test]
fn a_dropped_connection_deletes_nothing() {
    let m = run(
        true,
        &format!(
            "{LOGIN}
C: DELE 1
S: +OK Message 1 deleted
!eof
!closed
"
        ),
    );
    assert_eq!(m.committed, None);
}

#[test]
fn bad_message_numbers_and_arguments() {
    run(
        true,
        &format!(
            "{LOGIN}
C: RETR 0
S: -ERR Invalid message number
C: RETR 4
S: -ERR No message 4
C: RETR -1
S: -ERR Invalid message number
C: LIST x
S: -ERR Invalid message number
C: TOP 1
S: -ERR Usage: TOP message lines
C: RETR 99999999999999999999999
S: -ERR Invalid message number
S: -ERR Too many errors, closing connection
!closed
"
        ),
    );
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    run(
        true,
        "
S: +OK pochta POP3 server ready
C: USER alice@example.com
C: PASS secret
C: STAT
C: UIDL 1
C: DELE 2
C: QUIT
S: +OK Send PASS
S: +OK Logged in, 3 messages (103 octets)
S: +OK 3 103
S: +OK 1 u100
S: +OK Message 2 deleted
S: +OK pochta POP3 server signing off (1 message deleted, 2 left)
!closed
",
    );
}

#[test]
fn auth_plain_and_login() {
    run(
        true,
        "
S: +OK pochta POP3 server ready
C: AUTH
S: +OK Methods follow
S: PLAIN
S: LOGIN
S: .
C: AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA==
S: +OK Logged in, 3 messages (103 octets)
",
    );
    run(
        true,
        "
S: +OK pochta POP3 server ready
C: AUTH LOGIN
S: + VXNlcm5hbWU6
C: YWxpY2VAZXhhbXBsZS5jb20=
S: + UGFzc3dvcmQ6
C: c2VjcmV0
S: +OK Logged in, 3 messages (103 octets)
",
    );
    run(
        true,
        "
S: +OK pochta POP3 server ready
C: AUTH PLAIN
S: + 
C: *
S: -ERR Authentication cancelled
C: AUTH CRAM-MD5
S: -ERR Unsupported authentication mechanism
C: AUTH PLAIN !!!
S: -ERR [AUTH] invalid base64 in authentication response
",
    );
}

#[test]
fn wrong_password_locked_mailbox_and_lockout() {
    run(
        true,
        "
S: +OK pochta POP3 server ready
C: USER alice@example.com
S: +OK Send PASS
C: PASS wrong
S: -ERR [AUTH] Authentication failed
C: PASS secret
S: -ERR Send USER first
C: USER busy@example.com
S: +OK Send PASS
C: PASS secret
S: -ERR [IN-USE] The mailbox is locked by another POP3 session
C: USER locked@example.com
S: +OK Send PASS
C: PASS anything
S: -ERR [AUTH] Too many failed logins, try again later
!closed
",
    );
}

#[test]
fn long_lines_and_unknown_commands() {
    let long = "X".repeat(300);
    let longer = "Y".repeat(9000);
    run(
        true,
        &format!(
            "
S: +OK pochta POP3 server ready
C: {long}
S: -ERR Line too long
C~ {longer}
S: -ERR Line too long
C~ \\r\\nFROB\\r\\n
S: -ERR Unknown command FROB
C: CAPA
S: +OK Capability list follows
S: *
S: *
S: *
S: *
S: *
S: *
S: *
S: *
S: *
S: .
"
        ),
    );
}

#[test]
fn stls_discards_pipelined_clear_text() {
    let (m, _) = run_once(
        false,
        "
S: +OK pochta POP3 server ready
C: STLS
C: USER alice@example.com
C: PASS secret
S: +OK Begin TLS negotiation
C: STAT
S: -ERR Not logged in
",
        false,
    );
    assert!(!m.closed);
}

#[test]
fn commit_failure_is_reported() {
    run(
        true,
        &format!(
            "{LOGIN}
!commit-fails
C: DELE 2
S: +OK Message 2 deleted
C: QUIT
S: -ERR [SYS/TEMP] Some deleted messages were not removed; they will be back next time
!closed
"
        ),
    );
}

#[test]
fn stuffing_handles_a_message_without_final_newline() {
    let mut out = Vec::new();
    write_stuffed(&mut out, b".a\r\nb");
    assert_eq!(out, b"..a\r\nb\r\n.\r\n");
    let mut out = Vec::new();
    write_stuffed(&mut out, b"");
    assert_eq!(out, b".\r\n");
}
