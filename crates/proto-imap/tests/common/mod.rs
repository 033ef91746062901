//! Fixture loading shared by the FETCH/SEARCH/SORT/THREAD tests.
//!
//! `tests/fixtures/*.eml` (the "mailbox") and `tests/fixtures/threads/*.eml`
//! were also delivered to Dovecot 2.3.19 (the reference stack); the expected
//! outputs in the tests are Dovecot's unless a comment says why we differ.

#![allow(dead_code)]

use pochta_message::MessageMeta;
use pochta_proto_imap::view::{MessageView, SystemFlags};

/// One stored message.
pub struct Fixture {
    pub raw: Vec<u8>,
    pub meta: MessageMeta,
    pub flags: SystemFlags,
    pub keywords: Vec<String>,
    pub internal_date: i64,
}

impl Fixture {
    pub fn from_bytes(raw: Vec<u8>) -> Self {
        let meta = pochta_message::parse(&raw);
        Fixture {
            raw,
            meta,
            flags: SystemFlags::default(),
            keywords: Vec::new(),
            internal_date: 0,
        }
    }

    /// The view of this message as number `msn` (UID = msn, ids derived from it).
    pub fn view(&self, msn: u32) -> MessageView<'_> {
        MessageView {
            msn,
            uid: msn,
            email_id: u64::from(msn) + 1000,
            thread_id: u64::from(msn) % 3,
            flags: self.flags,
            keywords: &self.keywords,
            internal_date: self.internal_date,
            size: self.raw.len() as u64,
            modseq: u64::from(msn) * 10,
            meta: &self.meta,
            raw: Some(&self.raw),
        }
    }
}

pub fn fixture_path(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

pub fn load(name: &str) -> Fixture {
    let raw = std::fs::read(fixture_path(name)).expect("fixture exists");
    Fixture::from_bytes(raw)
}

/// The messages delivered to user1 in Dovecot, in UID order, with the flags
/// they had there: 1 `\Answered \Flagged $Forwarded Junk`, 2 and 6 `\Seen`.
pub const MAILBOX: [&str; 9] = [
    "simple.eml",
    "alternative.eml",
    "mixed.eml",
    "nested.eml",
    "koi8.eml",
    "minimal.eml",
    "binary.eml",
    "image.eml",
    "empty.eml",
];

pub fn mailbox() -> Vec<Fixture> {
    let mut all: Vec<Fixture> = MAILBOX.iter().map(|name| load(name)).collect();
    all[0].flags.answered = true;
    all[0].flags.flagged = true;
    all[0].keywords = vec!["$Forwarded".to_string(), "Junk".to_string()];
    all[1].flags.seen = true;
    all[5].flags.seen = true;
    // 26-Nov-2026 15:00:29 +0000, as in Dovecot.
    for f in &mut all {
        f.internal_date = 1_795_705_229;
    }
    all
}

/// Unix time of 2026-01-10 12:00:00 UTC, the base of the thread fixtures'
/// dates.
pub const THREAD_BASE: i64 = 1_768_046_400;

/// The 18 thread fixtures (user2 in Dovecot); internal dates as there: message
/// n arrived at base + (51 - n) hours.
pub fn threads() -> Vec<Fixture> {
    (1..=18)
        .map(|n: i64| {
            let mut f = load(&format!("threads/{n:02}.eml"));
            f.internal_date = THREAD_BASE + (51 - n) * 3600;
            f
        })
        .collect()
}

pub fn views(fixtures: &[Fixture]) -> Vec<MessageView<'_>> {
    fixtures
        .iter()
        .enumerate()
        .map(|(i, f)| f.view(i as u32 + 1))
        .collect()
}
