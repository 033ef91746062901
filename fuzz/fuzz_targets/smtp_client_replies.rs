//! The SMTP client (`pochta_proto_smtp::client::Client`, the relay's side)
//! fed arbitrary server bytes: greeting, EHLO capabilities, STARTTLS, AUTH
//! challenges, per-recipient replies, DATA/BDAT replies, multi-line replies,
//! garbage and over-long lines.
//!
//! Input: `[flags, seed, stream...]`. Flags: bits 0–1 the TLS policy, bit 2
//! credentials configured, bit 3 AUTH allowed without TLS, bit 4 PIPELINING,
//! bit 5 CHUNKING, bit 6 implicit TLS, bit 7 the TLS handshake fails.
//!
//! Invariants: no panic and no endless poll loop; what the client writes
//! before it waits is whole CRLF-terminated lines; every message handed over
//! with `send` gets exactly one `Finished` with one outcome per recipient,
//! even when the stream ends mid-transaction; "delivered" only ever comes
//! from a 2xx reply; and the result does not depend on how the server's
//! bytes were split into reads (unless a TLS handshake, which drops unread
//! input by design, happened).

#![no_main]

use std::collections::VecDeque;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use pochta_addr::Secret;
use pochta_fuzz::{Input, Steps, chunks, crlf_lines};
use pochta_proto_smtp::client::*;

fn config(flags: u8) -> ClientConfig {
    let mut c = ClientConfig::new("relay.example.org");
    c.tls = match flags & 3 {
        0 => TlsPolicy::Disabled,
        2 => TlsPolicy::Required,
        _ => TlsPolicy::Opportunistic,
    };
    if flags & 4 != 0 {
        c.auth = Some(Credentials {
            authzid: (flags & 1 != 0).then(|| "boss".to_string()),
            login: "alice".into(),
            password: Secret::new("secret"),
        });
    }
    c.auth_without_tls = flags & 8 != 0;
    c.pipelining = flags & 0x10 != 0;
    c.chunking = flags & 0x20 != 0;
    c.max_line = 200;
    c
}

fn messages() -> VecDeque<Outgoing> {
    let mut first = Outgoing::new(
        Some("alice@example.org".into()),
        vec![
            OutRcpt::new("bob@example.net"),
            OutRcpt::new("not an address"),
            OutRcpt::new("carol@example.net"),
        ],
        Arc::new(b"Subject: hi\r\n\r\nHello\r\n.dot\r\n".to_vec()),
    );
    first.recipients[0].notify = Some(Notify {
        success: true,
        failure: true,
        delay: false,
    });
    first.recipients[0].orcpt = Some("rfc822;bob@example.net".into());
    first.dsn = Some(DsnParams {
        ret: Some(Ret::Headers),
        envid: Some("QQ314159".into()),
    });
    let mut second = Outgoing::new(
        None,
        vec![OutRcpt::new("дед@example.net")],
        Arc::new("Subject: привет\r\n\r\nтело\r\n".as_bytes().to_vec()),
    );
    second.needs_smtputf8 = true;
    VecDeque::from([first, second])
}

#[derive(Debug, Default, PartialEq)]
struct Outcome {
    written: Vec<u8>,
    results: Vec<String>,
    closed: Option<String>,
    handshake: bool,
}

struct Driver {
    queue: VecDeque<Outgoing>,
    in_flight: VecDeque<usize>,
    flags: u8,
    out: Outcome,
    steps: Steps,
}

impl Driver {
    /// Polls until the client waits for input or closes; true when closed.
    fn drive(&mut self, c: &mut Client) -> bool {
        loop {
            self.steps.step("smtp client");
            match c.poll() {
                Action::NeedInput => {
                    self.write(c, true);
                    return false;
                }
                Action::Flush => self.write(c, false),
                Action::StartTls => {
                    self.write(c, true);
                    self.out.handshake = true;
                    if self.flags & 0x80 != 0 {
                        c.tls_failed("handshake failure");
                    } else {
                        c.tls_established();
                    }
                }
                Action::NeedMessage => match self.queue.pop_front() {
                    Some(m) => {
                        self.in_flight.push_back(m.recipients.len());
                        c.send(m);
                    }
                    None => c.quit(),
                },
                Action::Finished(r) => {
                    let n = self
                        .in_flight
                        .pop_front()
                        .expect("Finished without a message in flight");
                    assert_eq!(r.recipients.len(), n, "one outcome per recipient");
                    for o in &r.recipients {
                        assert!(
                            (200..=599).contains(&o.reply.code),
                            "outcome with reply code {}",
                            o.reply.code
                        );
                        if o.status == Status::Delivered {
                            assert_eq!(o.reply.code / 100, 2, "delivered by a non-2xx: {o:?}");
                        }
                    }
                    self.out.results.push(format!("{r:?}"));
                }
                Action::Close(e) => {
                    self.write(c, true);
                    assert!(
                        self.in_flight.is_empty(),
                        "closed with a message never finished"
                    );
                    self.out.closed = Some(format!("{e:?}"));
                    return true;
                }
            }
        }
    }

    fn write(&mut self, c: &mut Client, whole_lines: bool) {
        let o = std::mem::take(&mut c.output);
        if whole_lines {
            crlf_lines(&o, "SMTP client output");
        }
        self.out.written.extend_from_slice(&o);
    }
}

fn run(input: &Input<'_>, seed: u8) -> Outcome {
    let mut c = Client::new(
        config(input.flags),
        "mx.example.net",
        input.flags & 0x40 != 0,
    );
    let mut d = Driver {
        queue: messages(),
        in_flight: VecDeque::new(),
        flags: input.flags,
        out: Outcome::default(),
        steps: Steps::new(1_000_000),
    };
    let mut closed = d.drive(&mut c);
    for read in chunks(input.stream, seed) {
        if closed {
            break;
        }
        c.feed(read);
        closed = d.drive(&mut c);
    }
    if !closed {
        c.eof();
        assert!(d.drive(&mut c), "the client did not close after EOF");
    }
    // Closed means closed: more input and calls change nothing.
    c.feed(b"250 OK\r\n");
    c.eof();
    c.timed_out();
    assert!(matches!(c.poll(), Action::Close(_)));
    d.out
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::split(data) else {
        return;
    };
    let split = run(&input, input.seed);
    if input.seed != 0 && !split.handshake {
        let whole = run(&input, 0);
        if !whole.handshake {
            assert_eq!(
                whole, split,
                "the outcome depends on how replies were split"
            );
        }
    }
});
