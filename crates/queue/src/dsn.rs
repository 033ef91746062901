//! Delivery status notifications (RFC 3464): the bounce, the delay warning and
//! the "relayed" report, as complete messages ready for delivery.
//!
//! Built with mail-builder; the `message/delivery-status` body is written here
//! because it is a list of header-like fields that no builder offers.

use std::borrow::Cow;

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address as MbAddress;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use pochta_addr::Address;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

/// Messages up to this size are returned whole in a failure report unless the
/// sender asked for headers only; bigger ones come back as headers.
pub const RETURN_FULL_MAX: usize = 10 << 20;

/// What happened to a recipient (RFC 3464 §2.3.3 `Action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnAction {
    /// Given up: a permanent failure or the message expired.
    Failed,
    /// Not delivered yet; still being retried.
    Delayed,
    /// Handed to a server that does not offer DSN, so no further report comes.
    Relayed,
    /// Put into the recipient's mailbox here (the final delivery).
    Delivered,
}

impl DsnAction {
    fn word(self) -> &'static str {
        match self {
            DsnAction::Failed => "failed",
            DsnAction::Delayed => "delayed",
            DsnAction::Relayed => "relayed",
            DsnAction::Delivered => "delivered",
        }
    }
}

/// One recipient's part of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsnRecipient {
    /// The recipient.
    pub address: Address,
    /// The original recipient (`ORCPT`), if the client gave one.
    pub orcpt: Option<String>,
    /// What happened.
    pub action: DsnAction,
    /// RFC 3463 status, e.g. `5.1.1`.
    pub status: String,
    /// The remote server's reply, if one was the cause (`550 5.1.1 ...`).
    pub diagnostic: Option<String>,
    /// The remote server's host name, if one was reached.
    pub remote: Option<String>,
    /// A sentence for people, e.g. `the server mx.example.net said: ...`.
    pub explanation: String,
}

/// Everything a report needs.
#[derive(Debug, Clone)]
pub struct DsnInput<'a> {
    /// Our host name (Reporting-MTA, the From address's domain).
    pub hostname: &'a str,
    /// The envelope sender of the original message: the report's recipient.
    pub to: &'a Address,
    /// `ENVID` of the original message.
    pub envid: Option<&'a str>,
    /// When the original message arrived (Unix seconds).
    pub arrival: i64,
    /// When attempts end, for delay reports (Unix seconds).
    pub retry_until: Option<i64>,
    /// Now (Unix seconds): the report's Date and Last-Attempt-Date.
    pub now: i64,
    /// The recipients reported on; all with the same action.
    pub recipients: &'a [DsnRecipient],
    /// The original message.
    pub original: &'a [u8],
    /// Return the whole message (`RET=FULL` or unspecified) rather than its header.
    pub ret_full: bool,
}

/// Builds the report as a complete RFC 5322 message.
pub fn build(input: &DsnInput<'_>) -> Vec<u8> {
    let action = input
        .recipients
        .first()
        .map(|r| r.action)
        .unwrap_or(DsnAction::Failed);
    let utf8 = !input.to.is_ascii() || input.recipients.iter().any(|r| !r.address.is_ascii());
    let subject = match action {
        DsnAction::Failed => "Undelivered mail returned to sender",
        DsnAction::Delayed => "Delivery delayed: still trying",
        DsnAction::Relayed => "Delivery status: relayed",
        DsnAction::Delivered => "Delivery status: delivered",
    };
    let human = human_text(input, action);
    let status = status_fields(input, utf8);
    let (returned_type, returned): (&str, Cow<'_, [u8]>) = match action {
        DsnAction::Failed if input.ret_full && input.original.len() <= RETURN_FULL_MAX => (
            if utf8 {
                "message/global"
            } else {
                "message/rfc822"
            },
            Cow::Borrowed(input.original),
        ),
        _ => (
            if utf8 {
                "message/global-headers"
            } else {
                "text/rfc822-headers"
            },
            Cow::Owned(header_section(input.original).to_vec()),
        ),
    };
    let eight_bit = returned.iter().any(|b| *b >= 0x80);
    let mut parts = vec![
        MimePart::new("text/plain", human),
        MimePart::new(
            if utf8 {
                "message/global-delivery-status"
            } else {
                "message/delivery-status"
            },
            MimePartBody::raw(status),
        )
        .transfer_encoding(if utf8 { "8bit" } else { "7bit" }),
    ];
    parts.push(
        MimePart::new(returned_type, MimePartBody::bytes(returned))
            .transfer_encoding(if eight_bit { "8bit" } else { "7bit" }),
    );
    let report = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "delivery-status"),
        parts,
    );
    let date = OffsetDateTime::from_unix_timestamp(input.now)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .unix_timestamp();
    MessageBuilder::new()
        .from(MbAddress::new_address(
            Some("Mail Delivery System"),
            format!("MAILER-DAEMON@{}", input.hostname),
        ))
        .to(MbAddress::new_address(None::<&str>, input.to.to_smtp()))
        .subject(subject)
        .date(date)
        .message_id(format!(
            "{:016x}.{}@{}",
            rand::random::<u64>(),
            input.now,
            input.hostname
        ))
        // RFC 3834: an automatic reply, which vacation responders leave alone.
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .body(report)
        .write_to_vec()
        .unwrap_or_default()
}

/// Small adapters from our bytes to mail-builder's part bodies.
struct MimePartBody;

impl MimePartBody {
    /// As binary, so that no charset parameter is added: the fields are ASCII
    /// (or UTF-8 in the `global` variant, which has no charset either).
    fn raw(text: String) -> mail_builder::mime::BodyPart<'static> {
        mail_builder::mime::BodyPart::Binary(Cow::Owned(text.into_bytes()))
    }
    fn bytes(b: Cow<'_, [u8]>) -> mail_builder::mime::BodyPart<'_> {
        mail_builder::mime::BodyPart::Binary(b)
    }
}

fn human_text(input: &DsnInput<'_>, action: DsnAction) -> String {
    let mut t = format!("This is the mail system at {}.\r\n\r\n", input.hostname);
    match action {
        DsnAction::Failed => {
            t.push_str(
                "Your message could not be delivered to the recipients below, and no further\r\n\
                 attempts will be made. ",
            );
            t.push_str(
                if input.ret_full && input.original.len() <= RETURN_FULL_MAX {
                    "The message is attached.\r\n"
                } else {
                    "Its header is attached.\r\n"
                },
            );
        }
        DsnAction::Delayed => {
            t.push_str(
                "Your message has not been delivered to the recipients below yet. Delivery\r\n\
                 is still being attempted; you do not need to send it again.\r\n",
            );
            if let Some(until) = input.retry_until {
                t.push_str(&format!(
                    "Attempts end on {}; you will be told if it fails.\r\n",
                    rfc2822(until)
                ));
            }
        }
        DsnAction::Delivered => {
            t.push_str(
                "Your message was delivered to the mailboxes of the recipients below, as you\r\n\
                 asked.\r\n",
            );
        }
        DsnAction::Relayed => {
            t.push_str(
                "Your message was handed to the recipients' mail servers below. They do not\r\n\
                 send delivery reports, so this is the last report you will get.\r\n",
            );
        }
    }
    t.push_str("\r\n");
    for r in input.recipients {
        // A report may mix actions (failed and relayed); mark the odd ones.
        let tag = if r.action == action {
            String::new()
        } else {
            format!(" [{}]", r.action.word())
        };
        t.push_str(&format!(
            "<{}>{tag}: {}\r\n",
            r.address.to_smtp(),
            one_line(&r.explanation)
        ));
        // The remote's words, unless the explanation already quotes them.
        if let Some(d) = &r.diagnostic
            && !r.explanation.contains(d.as_str())
        {
            t.push_str(&format!("    {}\r\n", one_line(d)));
        }
    }
    t
}

fn status_fields(input: &DsnInput<'_>, utf8: bool) -> String {
    let addr_type = if utf8 { "utf-8" } else { "rfc822" };
    let mut s = format!("Reporting-MTA: dns; {}\r\n", input.hostname);
    if let Some(envid) = input.envid {
        s.push_str(&format!("Original-Envelope-Id: {}\r\n", one_line(envid)));
    }
    s.push_str(&format!("Arrival-Date: {}\r\n", rfc2822(input.arrival)));
    for r in input.recipients {
        s.push_str("\r\n");
        if let Some(o) = &r.orcpt {
            // Stored as given (`rfc822;addr` or a bare address).
            let o = one_line(o);
            if o.contains(';') {
                s.push_str(&format!("Original-Recipient: {o}\r\n"));
            } else {
                s.push_str(&format!("Original-Recipient: rfc822;{o}\r\n"));
            }
        }
        s.push_str(&format!(
            "Final-Recipient: {addr_type}; {}\r\n",
            r.address.to_smtp()
        ));
        s.push_str(&format!("Action: {}\r\n", r.action.word()));
        s.push_str(&format!("Status: {}\r\n", one_line(&r.status)));
        if let Some(remote) = &r.remote {
            s.push_str(&format!("Remote-MTA: dns; {}\r\n", one_line(remote)));
        }
        if let Some(d) = &r.diagnostic {
            s.push_str(&format!("Diagnostic-Code: smtp; {}\r\n", one_line(d)));
        }
        s.push_str(&format!("Last-Attempt-Date: {}\r\n", rfc2822(input.now)));
        if r.action == DsnAction::Delayed
            && let Some(until) = input.retry_until
        {
            s.push_str(&format!("Will-Retry-Until: {}\r\n", rfc2822(until)));
        }
    }
    s
}

/// The header section of a message, with its blank line, or the whole thing
/// when it has no body.
fn header_section(raw: &[u8]) -> &[u8] {
    let mut i = 0;
    while i < raw.len() {
        let end = raw[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|p| i + p + 1)
            .unwrap_or(raw.len());
        let line = &raw[i..end];
        if line == b"\r\n" || line == b"\n" {
            return &raw[..end];
        }
        i = end;
    }
    raw
}

/// Remote replies and ids can hold anything; a field must stay one line.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(900)
        .collect::<String>()
        .trim()
        .to_string()
}

fn rfc2822(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc2822).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MimeHeaders;

    fn rcpt(addr: &str, action: DsnAction) -> DsnRecipient {
        DsnRecipient {
            address: Address::parse(addr).unwrap(),
            orcpt: Some("rfc822;Orig@Example.NET".into()),
            action,
            status: "5.1.1".into(),
            diagnostic: Some("550 5.1.1 <x@example.net>: no such user\r\nsecond".into()),
            remote: Some("mx.example.net".into()),
            explanation: "the server mx.example.net [192.0.2.1] refused it".into(),
        }
    }

    const ORIGINAL: &[u8] =
        b"From: alice@example.com\r\nSubject: hello\r\nMessage-ID: <m1@example.com>\r\n\r\nbody line\r\n";

    fn input<'a>(to: &'a Address, rcpts: &'a [DsnRecipient], ret_full: bool) -> DsnInput<'a> {
        DsnInput {
            hostname: "mx.example.com",
            to,
            envid: Some("ENV-1"),
            arrival: 1_700_000_000,
            retry_until: Some(1_700_432_000),
            now: 1_700_000_600,
            recipients: rcpts,
            original: ORIGINAL,
            ret_full,
        }
    }

    #[test]
    fn a_bounce_is_a_multipart_report_with_the_message() {
        let to = Address::parse("alice@example.com").unwrap();
        let rcpts = [rcpt("x@example.net", DsnAction::Failed)];
        let raw = build(&input(&to, &rcpts, true));
        let msg = mail_parser::MessageParser::default().parse(&raw).unwrap();
        let ct = msg.content_type().unwrap();
        assert_eq!(ct.ctype(), "multipart");
        assert_eq!(ct.subtype(), Some("report"));
        assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
        assert_eq!(msg.subject(), Some("Undelivered mail returned to sender"));
        let text = String::from_utf8_lossy(&raw);
        assert!(text.contains("Auto-Submitted: auto-replied\r\n"), "{text}");
        assert!(
            text.contains("From: \"Mail Delivery System\" <MAILER-DAEMON@mx.example.com>"),
            "{text}"
        );
        for field in [
            "Reporting-MTA: dns; mx.example.com\r\n",
            "Original-Envelope-Id: ENV-1\r\n",
            "Original-Recipient: rfc822;Orig@Example.NET\r\n",
            "Final-Recipient: rfc822; x@example.net\r\n",
            "Action: failed\r\n",
            "Status: 5.1.1\r\n",
            "Remote-MTA: dns; mx.example.net\r\n",
            "Diagnostic-Code: smtp; 550 5.1.1 <x@example.net>: no such user  second\r\n",
        ] {
            assert!(text.contains(field), "missing {field:?} in {text}");
        }
        assert!(
            text.contains("Content-Type: message/delivery-status"),
            "{text}"
        );
        assert!(text.contains("Content-Type: message/rfc822"), "{text}");
        assert!(
            text.contains("body line\r\n"),
            "the whole message comes back: {text}"
        );
        assert!(!text.contains("Will-Retry-Until"), "{text}");
    }

    #[test]
    fn headers_only_when_asked_and_for_delays() {
        let to = Address::parse("alice@example.com").unwrap();
        let rcpts = [rcpt("x@example.net", DsnAction::Failed)];
        let text = String::from_utf8(build(&input(&to, &rcpts, false))).unwrap();
        assert!(text.contains("Content-Type: text/rfc822-headers"), "{text}");
        assert!(text.contains("Subject: hello\r\n"), "{text}");
        assert!(!text.contains("body line"), "{text}");

        let rcpts = [rcpt("x@example.net", DsnAction::Delayed)];
        let text = String::from_utf8(build(&input(&to, &rcpts, true))).unwrap();
        assert!(text.contains("Action: delayed\r\n"), "{text}");
        assert!(text.contains("Will-Retry-Until: "), "{text}");
        assert!(
            !text.contains("body line"),
            "a delay report never returns the body"
        );
        assert!(
            text.contains("Subject: Delivery delayed: still trying"),
            "{text}"
        );
    }

    #[test]
    fn international_addresses_use_the_global_types() {
        let to = Address::parse("алиса@example.com").unwrap();
        let rcpts = [rcpt("x@example.net", DsnAction::Failed)];
        let raw = build(&input(&to, &rcpts, true));
        let text = String::from_utf8_lossy(&raw);
        assert!(text.contains("message/global-delivery-status"), "{text}");
        assert!(
            text.contains("Final-Recipient: utf-8; x@example.net"),
            "{text}"
        );
    }

    #[test]
    fn header_section_stops_at_the_blank_line() {
        assert_eq!(header_section(b"A: 1\r\n\r\nbody"), b"A: 1\r\n\r\n");
        assert_eq!(header_section(b"A: 1\r\nB: 2"), b"A: 1\r\nB: 2");
    }
}
