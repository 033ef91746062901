//! The SMTP server session (`pochta_proto_smtp::Session`) driven like the
//! smtp-in driver does, with a client stream of arbitrary bytes: commands,
//! DATA, BDAT, AUTH exchanges, pipelining, STARTTLS.
//!
//! Input: `[flags, seed, stream...]` (see `pochta_fuzz::Input`). Flags:
//! bit 0 submission (else MX), bit 1 TLS from the start, bit 2 STARTTLS
//! offered, bit 3 shutdown before the end, bit 4 relaying allowed, bits 5–6
//! the delivery verdict, bit 7 realistic limits (else the tiny ones of the
//! transcript tests).
//!
//! Invariants: no panic; after every step the output is whole SMTP replies
//! (3-digit codes, CRLF, ≤ 512 octets a line, multi-line replies closed); a
//! delivered transaction has a sender, 1..=max recipients, a body within the
//! size limit with CRLF line ends only; the session closes after EOF; and
//! the replies do not depend on how the stream was split into reads (unless
//! STARTTLS, which by design drops what was pipelined after it, or a
//! shutdown happened).

#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_addr::Address;
use pochta_fuzz::{
    Input, Steps, check_crlf_body, check_smtp_replies, feed_session, same_replies_however_split,
};
use pochta_proto_smtp::*;

fn tls() -> TlsInfo {
    TlsInfo {
        version: "TLSv1.3".into(),
        cipher: "TLS_AES_128_GCM_SHA256".into(),
    }
}

fn config(flags: u8) -> Option<SessionConfig> {
    let realistic = flags & 0x80 != 0;
    Some(SessionConfig {
        hostname: "mx.example.com".into(),
        mode: if flags & 1 != 0 {
            Mode::Submission
        } else {
            Mode::Mx
        },
        max_message_size: if realistic { 64 * 1024 } else { 1000 },
        max_recipients: if realistic { 100 } else { 3 },
        max_line_length: if realistic { 1000 } else { 100 },
        max_errors: if realistic { 20 } else { 8 },
        starttls: flags & 4 != 0,
        postmaster: Address::parse("postmaster@example.com").ok()?,
    })
}

/// The effects: the messages delivered (sender, recipients, body).
type Outcome = pochta_fuzz::Outcome<Vec<(Option<String>, Vec<String>, Vec<u8>)>>;

fn run(input: &Input<'_>, seed: u8) -> Outcome {
    let Some(cfg) = config(input.flags) else {
        return Outcome::default();
    };
    let max_size = cfg.max_message_size;
    let max_rcpt = cfg.max_recipients;
    let flags = input.flags;
    let session = Session::new(cfg, (flags & 2 != 0).then(tls));
    feed_session(
        session,
        input.stream,
        seed,
        flags & 8 != 0,
        |s, out, steps| drive(s, out, flags, max_size, max_rcpt, steps),
    )
}

fn drive(
    s: &mut Session,
    out: &mut Outcome,
    flags: u8,
    max_size: usize,
    max_rcpt: usize,
    steps: &mut Steps,
) {
    loop {
        steps.step("smtp session");
        let action = s.poll();
        let done = matches!(action, Action::NeedInput | Action::Close);
        if done {
            let o = std::mem::take(&mut s.output);
            check_smtp_replies(&o);
            out.replies.extend_from_slice(&o);
        }
        match action {
            Action::NeedInput => return,
            Action::Close => {
                out.closed = true;
                return;
            }
            Action::StartTls => {
                let o = std::mem::take(&mut s.output);
                check_smtp_replies(&o);
                out.replies.extend_from_slice(&o);
                out.upgraded = true;
                s.tls_established(tls());
            }
            Action::CheckSender { address, user } => {
                let v = match (user, address) {
                    (_, Some(a)) if a.local().starts_with("temp") => SenderVerdict::TempFail,
                    (_, Some(a)) if a.local().starts_with("reject") => {
                        SenderVerdict::Reject(Reply::new(550, "5.7.1", "sender refused"))
                    }
                    (None, _) => SenderVerdict::Accept,
                    (Some(u), Some(a)) if a.key() == u || a.local() == "sales" => {
                        SenderVerdict::Accept
                    }
                    (Some(_), _) => SenderVerdict::NotOwned,
                };
                s.answer_sender(v);
            }
            Action::CheckRecipient { address } => {
                let local = address.local().to_lowercase();
                let v = if address.domain().as_str() != "example.com" {
                    if flags & 0x10 != 0 {
                        RcptVerdict::Accept
                    } else {
                        RcptVerdict::RelayDenied
                    }
                } else if local.starts_with("temp") {
                    RcptVerdict::TempFail
                } else if local.starts_with("reject") {
                    RcptVerdict::Reject(Reply::new(550, "5.2.1", "mailbox disabled"))
                } else if matches!(local.as_str(), "alice" | "bob" | "postmaster" | "карл") {
                    RcptVerdict::Accept
                } else {
                    RcptVerdict::UnknownUser
                };
                s.answer_recipient(v);
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
            Action::Deliver(tx) => {
                assert!(
                    !tx.recipients.is_empty(),
                    "delivery without recipients: {tx:?}"
                );
                assert!(tx.recipients.len() <= max_rcpt, "too many recipients");
                assert_eq!(tx.recipients.len(), tx.recipient_dsn.len());
                assert!(
                    tx.body.len() <= max_size,
                    "body of {} octets over the limit {max_size}",
                    tx.body.len()
                );
                check_crlf_body(&tx.body, "delivered body");
                out.effects.push((
                    tx.mail_from.as_ref().map(Address::key),
                    tx.recipients.iter().map(Address::key).collect(),
                    tx.body.clone(),
                ));
                let v = match (flags >> 5) & 3 {
                    0 | 1 => DeliveryVerdict::Accepted {
                        id: format!("Q{}", out.effects.len()),
                    },
                    2 => DeliveryVerdict::StorageFull,
                    _ => DeliveryVerdict::Reject(Reply::new(554, "5.7.1", "refused")),
                };
                s.answer_delivery(v);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::split(data) else {
        return;
    };
    same_replies_however_split(&input, input.flags & 8 != 0, |seed| run(&input, seed));
});
