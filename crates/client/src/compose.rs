//! Building messages with mail-builder: a text body with an optional HTML
//! alternative, attachments with content types guessed from their names
//! (mime_guess) and RFC 2231 file names, RFC 2047 encoded subjects and display
//! names, our own Message-ID and a Date; and replies and forwards that quote
//! the original and thread with In-Reply-To/References (RFC 5322 §3.6.4).
//!
//! Bcc recipients are in the envelope ([`Composed::recipients`]) but never in
//! the header.

use std::path::Path;

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address as BuilderAddress;
use mail_builder::headers::date::Date;
use mail_builder::headers::message_id::MessageId;
use mail_parser::HeaderValue;

use crate::config::valid_address;
use crate::error::{ClientError, Result};
use crate::render;

/// An address with an optional display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// The display name, if any (may be non-ASCII: it is RFC 2047 encoded).
    pub name: Option<String>,
    /// `local@domain`.
    pub address: String,
}

impl Mailbox {
    /// A mailbox without a display name.
    pub fn new(address: impl Into<String>) -> Mailbox {
        Mailbox {
            name: None,
            address: address.into(),
        }
    }

    fn to_builder(&self) -> BuilderAddress<'static> {
        match &self.name {
            Some(n) if !n.is_empty() => BuilderAddress::from((n.clone(), self.address.clone())),
            _ => BuilderAddress::from(self.address.clone()),
        }
    }
}

impl std::fmt::Display for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(n) if !n.is_empty() => write!(f, "{n} <{}>", self.address),
            _ => f.write_str(&self.address),
        }
    }
}

/// Parses one `addr`, `Name <addr>` or `"Last, First" <addr>`.
pub fn parse_mailbox(s: &str) -> Result<Mailbox> {
    let s = s.trim();
    let bad = || ClientError::Usage(format!("{s:?} is not an e-mail address"));
    let (name, address) = match (s.rfind('<'), s.ends_with('>')) {
        (Some(open), true) => {
            let name = s.get(..open).unwrap_or("").trim().trim_matches('"').trim();
            let addr = s.get(open + 1..s.len() - 1).ok_or_else(bad)?.trim();
            (
                (!name.is_empty()).then(|| name.to_string()),
                addr.to_string(),
            )
        }
        (None, false) => (None, s.to_string()),
        _ => return Err(bad()),
    };
    if !valid_address(&address) {
        return Err(bad());
    }
    Ok(Mailbox { name, address })
}

/// Parses a comma-separated list (commas inside quotes or angle brackets do
/// not split). Empty items are skipped.
pub fn parse_address_list(s: &str) -> Result<Vec<Mailbox>> {
    let mut items = Vec::new();
    let (mut quoted, mut angle, mut start) = (false, false, 0);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' | ';' if !quoted && !angle => {
                items.push(s.get(start..i).unwrap_or(""));
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(s.get(start..).unwrap_or(""));
    items
        .into_iter()
        .filter(|i| !i.trim().is_empty())
        .map(parse_mailbox)
        .collect()
}

/// A file to attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The file name shown to the recipient.
    pub name: String,
    /// `type/subtype`.
    pub content_type: String,
    /// The contents.
    pub data: Vec<u8>,
}

impl Attachment {
    /// Reads `path`; the name is its file name, the type guessed from the
    /// extension (`application/octet-stream` when unknown).
    pub fn from_path(path: &Path) -> Result<Attachment> {
        let data = std::fs::read(path).map_err(|e| ClientError::io(path, e))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "attachment".into());
        Ok(Attachment {
            content_type: content_type_for(&name),
            name,
            data,
        })
    }
}

/// The content type for a file name, by its extension.
pub fn content_type_for(name: &str) -> String {
    mime_guess::from_path(name)
        .first_or_octet_stream()
        .essence_str()
        .to_string()
}

/// A message to build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Draft {
    /// The sender (From, and the envelope sender).
    pub from: Option<Mailbox>,
    /// To.
    pub to: Vec<Mailbox>,
    /// Cc.
    pub cc: Vec<Mailbox>,
    /// Bcc: envelope only.
    pub bcc: Vec<Mailbox>,
    /// The subject (any script).
    pub subject: String,
    /// The text body.
    pub text: String,
    /// An HTML alternative to the text.
    pub html: Option<String>,
    /// Files to attach.
    pub attachments: Vec<Attachment>,
    /// The Message-ID this answers (no angle brackets).
    pub in_reply_to: Option<String>,
    /// The thread's Message-IDs, oldest first (no angle brackets).
    pub references: Vec<String>,
}

/// A built message and its envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    /// The message, CRLF line ends.
    pub raw: Vec<u8>,
    /// Its Message-ID (no angle brackets).
    pub message_id: String,
    /// The envelope sender.
    pub envelope_from: String,
    /// Every recipient: To, Cc and Bcc, without duplicates.
    pub recipients: Vec<String>,
}

/// A new Message-ID `<random.time@domain>` in the sender's domain.
pub fn new_message_id(from: &str) -> String {
    let domain = from
        .rsplit_once('@')
        .map(|(_, d)| d)
        .filter(|d| !d.is_empty() && d.is_ascii() && !d.contains(['<', '>', ' ']))
        .unwrap_or("pochta.invalid");
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{:016x}.{secs:x}@{domain}", rand::random::<u64>())
}

/// Line ends as LF only, so that mail-builder writes CRLF exactly once.
fn lf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

impl Draft {
    /// Builds the message. Needs a sender and at least one recipient.
    pub fn build(&self) -> Result<Composed> {
        let from = self
            .from
            .as_ref()
            .ok_or_else(|| ClientError::Usage("no sender".into()))?;
        let mut recipients: Vec<String> = Vec::new();
        for m in self.to.iter().chain(&self.cc).chain(&self.bcc) {
            if !recipients
                .iter()
                .any(|r| r.eq_ignore_ascii_case(&m.address))
            {
                recipients.push(m.address.clone());
            }
        }
        if recipients.is_empty() {
            return Err(ClientError::Usage(
                "no recipients: give --to (or --cc/--bcc)".into(),
            ));
        }
        let message_id = new_message_id(&from.address);
        let mut b = MessageBuilder::new()
            .from(from.to_builder())
            .subject(self.subject.clone())
            .date(Date::now())
            .message_id(message_id.clone());
        if !self.to.is_empty() {
            b = b.to(BuilderAddress::new_list(
                self.to.iter().map(Mailbox::to_builder).collect(),
            ));
        } else if self.cc.is_empty() {
            // RFC 5322 §3.6.3: Bcc-only mail gets an empty group as To.
            b = b.header(
                "To",
                mail_builder::headers::raw::Raw::new("undisclosed-recipients:;"),
            );
        }
        if !self.cc.is_empty() {
            b = b.cc(BuilderAddress::new_list(
                self.cc.iter().map(Mailbox::to_builder).collect(),
            ));
        }
        if let Some(id) = &self.in_reply_to {
            b = b.in_reply_to(id.clone());
        }
        if !self.references.is_empty() {
            b = b.references(MessageId::new_list(self.references.iter().cloned()));
        }
        b = b.text_body(lf(&self.text));
        if let Some(html) = &self.html {
            b = b.html_body(lf(html));
        }
        for a in &self.attachments {
            b = b.attachment(a.content_type.clone(), a.name.clone(), a.data.clone());
        }
        let raw = b
            .write_to_vec()
            .map_err(|e| ClientError::Usage(format!("cannot build the message: {e}")))?;
        Ok(Composed {
            raw,
            message_id,
            envelope_from: from.address.clone(),
            recipients,
        })
    }
}

/// Strips the reply and forward prefixes the subject already has (any case,
/// `Re:`, `RE[2]:`, `Fwd:`, `Fw:`, the Russian `Отв:`) to test for doubling.
fn has_prefix(subject: &str, prefixes: &[&str]) -> bool {
    let s = subject.trim_start().to_lowercase();
    prefixes.iter().any(|p| {
        s.strip_prefix(p).is_some_and(|rest| {
            let rest =
                rest.trim_start_matches(|c: char| c == '[' || c == ']' || c.is_ascii_digit());
            rest.starts_with(':')
        })
    })
}

/// `Re: subject`, unless it already is a reply.
pub fn reply_subject(subject: &str) -> String {
    if has_prefix(subject, &["re", "aw", "sv", "отв", "ответ"]) {
        subject.trim().to_string()
    } else {
        format!("Re: {}", subject.trim())
    }
}

/// `Fwd: subject`, unless it already is a forward.
pub fn forward_subject(subject: &str) -> String {
    if has_prefix(subject, &["fwd", "fw", "wg", "пересл"]) {
        subject.trim().to_string()
    } else {
        format!("Fwd: {}", subject.trim())
    }
}

fn mailboxes(a: Option<&mail_parser::Address<'_>>) -> Vec<Mailbox> {
    a.map(|a| {
        a.iter()
            .filter_map(|x| {
                let addr = x.address()?.trim();
                valid_address(addr).then(|| Mailbox {
                    name: x
                        .name()
                        .map(|n| render::clean(n).trim().to_string())
                        .filter(|n| !n.is_empty()),
                    address: addr.to_string(),
                })
            })
            .collect()
    })
    .unwrap_or_default()
}

fn text_list(v: &HeaderValue<'_>) -> Vec<String> {
    match v {
        HeaderValue::Text(t) => vec![t.to_string()],
        HeaderValue::TextList(l) => l.iter().map(|t| t.to_string()).collect(),
        _ => Vec::new(),
    }
}

fn parse_original(raw: &[u8]) -> Result<mail_parser::Message<'_>> {
    render::parse(raw)
        .ok_or_else(|| ClientError::Usage("the original message could not be parsed".into()))
}

fn threading(msg: &mail_parser::Message<'_>) -> (Option<String>, Vec<String>) {
    let mut refs = text_list(msg.references());
    if refs.is_empty() {
        // RFC 5322 §3.6.4: without References, the parent's In-Reply-To
        // (when it is a single id) starts the chain.
        let irt = text_list(msg.in_reply_to());
        if irt.len() == 1 {
            refs = irt;
        }
    }
    let id = msg.message_id().map(str::to_string);
    if let Some(id) = &id
        && !refs.contains(id)
    {
        refs.push(id.clone());
    }
    (id, refs)
}

/// The original's text with every line quoted, under "On DATE, NAME wrote:".
fn quote(msg: &mail_parser::Message<'_>) -> String {
    let who = msg
        .from()
        .and_then(|a| a.first())
        .map(render::format_addr)
        .unwrap_or_else(|| "someone".into());
    let mut out = match msg.date() {
        Some(d) => format!(
            "On {}, {who} wrote:\n",
            render::format_date(d, time::UtcOffset::UTC)
        ),
        None => format!("{who} wrote:\n"),
    };
    let body = render::body_text(msg, 72);
    for line in body.trim_end().lines() {
        if line.is_empty() {
            out.push_str(">\n");
        } else if line.starts_with('>') {
            out.push('>');
            out.push_str(line);
            out.push('\n');
        } else {
            out.push_str("> ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// A reply to `original` from `me`: to its Reply-To (else From); with `all`
/// also to its other To and Cc recipients (as Cc), never to `me`. The text is
/// the quoted original; the caller puts the user's words above it.
pub fn reply(original: &[u8], me: &Mailbox, all: bool) -> Result<Draft> {
    let msg = parse_original(original)?;
    let mut to = mailboxes(msg.reply_to());
    if to.is_empty() {
        to = mailboxes(msg.from());
    }
    let is_me = |m: &Mailbox| m.address.eq_ignore_ascii_case(&me.address);
    // Replying to one's own message goes to its recipients.
    if to.iter().all(is_me) && !to.is_empty() {
        to = mailboxes(msg.to());
    }
    let mut cc = Vec::new();
    if all {
        for m in mailboxes(msg.to()).into_iter().chain(mailboxes(msg.cc())) {
            let seen = to
                .iter()
                .chain(&cc)
                .any(|x: &Mailbox| x.address.eq_ignore_ascii_case(&m.address));
            if !seen && !is_me(&m) {
                cc.push(m);
            }
        }
    }
    if to.iter().any(|m| !is_me(m)) {
        to.retain(|m| !is_me(m));
    }
    let (in_reply_to, references) = threading(&msg);
    Ok(Draft {
        from: Some(me.clone()),
        to,
        cc,
        subject: reply_subject(msg.subject().unwrap_or("")),
        text: quote(&msg),
        in_reply_to,
        references,
        ..Draft::default()
    })
}

/// A forward of `original` from `me` (recipients are the caller's): the
/// original's headers and text inline, its attachments attached again.
pub fn forward(original: &[u8], me: &Mailbox) -> Result<Draft> {
    let msg = parse_original(original)?;
    let mut text = String::from("---------- Forwarded message ----------\n");
    let fields = [
        ("From", render::format_addresses(msg.from())),
        (
            "Date",
            msg.date()
                .map(|d| render::format_date(d, time::UtcOffset::UTC))
                .unwrap_or_default(),
        ),
        (
            "Subject",
            msg.subject()
                .map(|s| render::clean(s).into_owned())
                .unwrap_or_default(),
        ),
        ("To", render::format_addresses(msg.to())),
        ("Cc", render::format_addresses(msg.cc())),
    ];
    for (name, value) in fields {
        if !value.is_empty() {
            text.push_str(&format!("{name}: {value}\n"));
        }
    }
    text.push('\n');
    text.push_str(render::body_text(&msg, 72).trim_end());
    text.push('\n');
    let infos = render::attachments(&msg);
    let attachments = msg
        .attachments()
        .zip(infos)
        .map(|(part, info)| Attachment {
            name: info.name,
            content_type: info.content_type,
            data: part.contents().to_vec(),
        })
        .collect();
    let (in_reply_to, references) = threading(&msg);
    Ok(Draft {
        from: Some(me.clone()),
        subject: forward_subject(msg.subject().unwrap_or("")),
        text,
        attachments,
        in_reply_to,
        references,
        ..Draft::default()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use mail_parser::MimeHeaders;

    fn me() -> Mailbox {
        Mailbox {
            name: Some("Алиса".into()),
            address: "alice@example.org".into(),
        }
    }

    #[test]
    fn address_lists() {
        let l =
            parse_address_list("bob@x.org, \"Doe, John\" <john@x.org>; Пётр <petr@x.ru>,").unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[1].name.as_deref(), Some("Doe, John"));
        assert_eq!(l[1].address, "john@x.org");
        assert_eq!(l[2].name.as_deref(), Some("Пётр"));
        assert!(parse_address_list("not an address").unwrap_err().is_usage());
        assert!(parse_mailbox("<broken").is_err());
    }

    #[test]
    fn built_message_parses_back() {
        let dir = tempfile::tempdir().unwrap();
        let pdf = dir.path().join("отчёт 2024.pdf");
        std::fs::write(&pdf, b"%PDF-1.4 fake").unwrap();
        let png = dir.path().join("image.PNG");
        std::fs::write(&png, [0x89, b'P', b'N', b'G', 0, 1, 2, 255]).unwrap();
        let draft = Draft {
            from: Some(me()),
            to: vec![Mailbox {
                name: Some("Борис".into()),
                address: "boris@example.ru".into(),
            }],
            cc: vec![Mailbox::new("carol@example.com")],
            bcc: vec![Mailbox::new("secret@example.com")],
            subject: "Привет, это тест с длинной темой, которая точно будет перенесена на несколько строк".into(),
            text: "Первая строка\nвторая строка\n.точка\n".into(),
            html: Some("<p>Привет</p>".into()),
            attachments: vec![
                Attachment::from_path(&pdf).unwrap(),
                Attachment::from_path(&png).unwrap(),
            ],
            in_reply_to: Some("parent@example.ru".into()),
            references: vec!["root@example.ru".into(), "parent@example.ru".into()],
        };
        let c = draft.build().unwrap();
        assert!(c.raw.is_ascii(), "8-bit content in the built message");
        let text = String::from_utf8(c.raw.clone()).unwrap();
        assert!(!text.to_ascii_lowercase().contains("bcc"), "{text}");
        assert!(!text.contains("secret@"), "{text}");
        assert!(
            !text.replace("\r\n", "").contains('\n'),
            "bare LF in {text}"
        );
        assert_eq!(
            c.recipients,
            vec![
                "boris@example.ru",
                "carol@example.com",
                "secret@example.com"
            ]
        );
        let msg = render::parse(&c.raw).unwrap();
        assert_eq!(msg.subject(), Some(draft.subject.as_str()));
        assert_eq!(msg.from().unwrap().first().unwrap().name(), Some("Алиса"));
        assert_eq!(msg.to().unwrap().first().unwrap().name(), Some("Борис"));
        assert_eq!(msg.message_id(), Some(c.message_id.as_str()));
        assert!(c.message_id.ends_with("@example.org"));
        assert!(msg.date().is_some());
        assert_eq!(text_list(msg.in_reply_to()), vec!["parent@example.ru"]);
        assert_eq!(
            text_list(msg.references()),
            vec!["root@example.ru", "parent@example.ru"]
        );
        assert_eq!(msg.body_text(0).unwrap().replace("\r\n", "\n"), draft.text);
        assert!(msg.body_html(0).unwrap().contains("Привет"));
        let atts: Vec<_> = msg.attachments().collect();
        assert_eq!(atts.len(), 2);
        assert_eq!(atts[0].attachment_name(), Some("отчёт 2024.pdf"));
        assert_eq!(atts[0].content_type().unwrap().subtype(), Some("pdf"));
        assert_eq!(atts[0].contents(), b"%PDF-1.4 fake");
        assert_eq!(atts[1].content_type().unwrap().ctype(), "image");
        assert_eq!(atts[1].contents(), &[0x89, b'P', b'N', b'G', 0, 1, 2, 255]);
    }

    #[test]
    fn bcc_only_has_undisclosed_recipients() {
        let c = Draft {
            from: Some(Mailbox::new("a@example.org")),
            bcc: vec![Mailbox::new("hidden@example.com")],
            subject: "s".into(),
            text: "t".into(),
            ..Draft::default()
        }
        .build()
        .unwrap();
        let text = String::from_utf8(c.raw).unwrap();
        assert!(text.contains("To: undisclosed-recipients:;"), "{text}");
        assert!(!text.contains("hidden@"));
        assert_eq!(c.recipients, vec!["hidden@example.com"]);
    }

    #[test]
    fn no_recipients_is_a_usage_error() {
        let e = Draft {
            from: Some(me()),
            ..Draft::default()
        }
        .build()
        .unwrap_err();
        assert!(e.is_usage());
    }

    #[test]
    fn subjects_are_not_doubled() {
        assert_eq!(reply_subject("Hello"), "Re: Hello");
        assert_eq!(reply_subject("Re: Hello"), "Re: Hello");
        assert_eq!(reply_subject("RE[2]: Hello"), "RE[2]: Hello");
        assert_eq!(reply_subject("Отв: Привет"), "Отв: Привет");
        assert_eq!(reply_subject("Reply needed"), "Re: Reply needed");
        assert_eq!(forward_subject("Hello"), "Fwd: Hello");
        assert_eq!(forward_subject("FW: Hello"), "FW: Hello");
        assert_eq!(forward_subject("Re: Hello"), "Fwd: Re: Hello");
    }

    const ORIGINAL: &[u8] = b"From: Bob <bob@example.com>\r\nTo: alice@example.org, carol@example.com\r\n\
Cc: dave@example.com, Alice <ALICE@example.org>\r\nSubject: =?UTF-8?B?0J/Qu9Cw0L0=?=\r\n\
Date: Tue, 3 Mar 2026 13:05:00 +0000\r\nMessage-ID: <m2@example.com>\r\n\
References: <m0@example.com> <m1@example.com>\r\nIn-Reply-To: <m1@example.com>\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nline one\r\n\r\n> older quote\r\n--b\r\n\
Content-Type: text/plain\r\nContent-Disposition: attachment; filename=notes.txt\r\n\r\nnotes\r\n--b--\r\n";

    #[test]
    fn reply_threads_and_quotes() {
        let d = reply(ORIGINAL, &me(), false).unwrap();
        assert_eq!(
            d.to,
            vec![Mailbox {
                name: Some("Bob".into()),
                address: "bob@example.com".into()
            }]
        );
        assert!(d.cc.is_empty());
        assert_eq!(d.subject, "Re: План");
        assert_eq!(d.in_reply_to.as_deref(), Some("m2@example.com"));
        assert_eq!(
            d.references,
            vec!["m0@example.com", "m1@example.com", "m2@example.com"]
        );
        assert!(
            d.text
                .starts_with("On Tue, 3 Mar 2026 13:05 +00:00, Bob <bob@example.com> wrote:\n"),
            "{}",
            d.text
        );
        assert!(
            d.text.contains("> line one\n>\n>> older quote\n"),
            "{}",
            d.text
        );
        assert!(!d.text.contains("notes"), "{}", d.text);
        let built = d.build().unwrap();
        let msg = render::parse(&built.raw).unwrap();
        assert_eq!(msg.in_reply_to().as_text(), Some("m2@example.com"));
    }

    #[test]
    fn reply_all_excludes_me_and_duplicates() {
        let d = reply(ORIGINAL, &me(), true).unwrap();
        let cc: Vec<_> = d.cc.iter().map(|m| m.address.as_str()).collect();
        assert_eq!(cc, vec!["carol@example.com", "dave@example.com"]);
        assert_eq!(d.to.len(), 1);
    }

    #[test]
    fn reply_to_header_wins() {
        let raw = b"From: list@example.com\r\nReply-To: answers@example.com\r\nSubject: x\r\n\r\nbody\r\n";
        let d = reply(raw, &me(), false).unwrap();
        assert_eq!(d.to[0].address, "answers@example.com");
        assert!(d.in_reply_to.is_none() && d.references.is_empty());
    }

    #[test]
    fn forward_keeps_text_and_attachments() {
        let d = forward(ORIGINAL, &me()).unwrap();
        assert_eq!(d.subject, "Fwd: План");
        assert!(d.text.contains("From: Bob <bob@example.com>"), "{}", d.text);
        assert!(d.text.contains("Subject: План"), "{}", d.text);
        assert!(d.text.contains("line one"), "{}", d.text);
        assert_eq!(d.attachments.len(), 1);
        assert_eq!(d.attachments[0].name, "notes.txt");
        assert_eq!(d.attachments[0].data, b"notes");
        assert_eq!(
            d.references.last().map(String::as_str),
            Some("m2@example.com")
        );
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(content_type_for("a.pdf"), "application/pdf");
        assert_eq!(content_type_for("a.JPG"), "image/jpeg");
        assert_eq!(content_type_for("a.txt"), "text/plain");
        assert_eq!(content_type_for("noext"), "application/octet-stream");
    }
}
