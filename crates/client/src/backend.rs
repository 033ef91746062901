//! Browsing mail where it is kept: one trait for IMAP, JMAP and the local Maildir,
//! so that `folders`, `list`, `search`, `read`, `move`, `delete`, `flag` and
//! `save` are written once and give the same results over every protocol.
//!
//! Ids are stable and opaque to the user: an IMAP backend uses
//! `UIDVALIDITY`-free UIDs scoped by folder (`"INBOX:42"`-style is the backend's
//! choice), JMAP uses Email ids, the Maildir its unique file names. Never
//! sequence numbers.

use async_trait::async_trait;
use serde::Serialize;
use time::OffsetDateTime;

use crate::error::Result;

/// A folder (mailbox) with its counts.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Folder {
    /// Its full name, hierarchy separated by `/`.
    pub name: String,
    /// SPECIAL-USE / JMAP role in lower case (`inbox`, `sent`, `drafts`,
    /// `trash`, `junk`, `archive`), if any.
    pub role: Option<String>,
    /// Messages in it.
    pub total: u64,
    /// Messages without `\Seen`.
    pub unread: u64,
}

/// One line of a listing.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// The stable id to pass to `read`, `move`, `flag`…
    pub id: String,
    /// The folder it is in.
    pub folder: String,
    /// The Date header (or the arrival time when it has none).
    #[serde(with = "time::serde::rfc3339::option")]
    pub date: Option<OffsetDateTime>,
    /// The From header, decoded, as "Name <addr>" or "addr".
    pub from: String,
    /// The Subject, decoded.
    pub subject: String,
    /// Flags in IMAP spelling: `\Seen`, `\Flagged`, `\Answered`, `\Draft`,
    /// `\Deleted`, or keywords such as `$Forwarded`.
    pub flags: Vec<String>,
    /// Size in octets.
    pub size: u64,
}

/// What `list` and `search` select. All given conditions must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// The folder to look in (`None`: INBOX).
    pub folder: Option<String>,
    /// `from:` substring.
    pub from: Option<String>,
    /// `to:` substring.
    pub to: Option<String>,
    /// `subject:` substring.
    pub subject: Option<String>,
    /// Free text (headers and body).
    pub text: Option<String>,
    /// `since:` date (inclusive, by the Date header or arrival).
    pub since: Option<time::Date>,
    /// `before:` date (exclusive).
    pub before: Option<time::Date>,
    /// `is:unread`.
    pub unread: bool,
    /// `is:flagged`.
    pub flagged: bool,
    /// Page size (`None`: all).
    pub limit: Option<usize>,
    /// Page number, from 1, with `limit`.
    pub page: usize,
}

/// A flag change: `+seen`, `-flagged`, `+$Junk`…
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagChange {
    /// Add (true) or remove (false).
    pub add: bool,
    /// The flag in IMAP spelling (`\Seen`, `\Flagged`, `\Answered`, `\Draft`) or a
    /// keyword (`$Forwarded`, `work`).
    pub flag: String,
}

/// Where mail is browsed: the server (IMAP, JMAP) or the fetched Maildir.
#[async_trait]
pub trait MailBackend: Send {
    /// Every folder with its counts, INBOX first.
    async fn folders(&mut self) -> Result<Vec<Folder>>;
    /// Messages matching `query`, newest first, paged by `query.limit`/`page`.
    async fn list(&mut self, query: &Query) -> Result<Vec<Summary>>;
    /// The message as stored, byte for byte. Does not change its flags.
    async fn fetch_raw(&mut self, id: &str) -> Result<Vec<u8>>;
    /// Adds or removes flags on the messages.
    async fn flag(&mut self, ids: &[String], changes: &[FlagChange]) -> Result<()>;
    /// Moves the messages to `folder`; returns their new ids in the same order.
    async fn move_to(&mut self, ids: &[String], folder: &str) -> Result<Vec<String>>;
    /// Removes the messages for good (no Trash).
    async fn expunge(&mut self, ids: &[String]) -> Result<()>;
    /// Stores a message in `folder` with `flags` (a sent copy, a draft).
    async fn append(&mut self, folder: &str, raw: &[u8], flags: &[String]) -> Result<()>;
    /// The folder with `role` (e.g. `sent`, `trash`), if the server has one.
    async fn folder_with_role(&mut self, role: &str) -> Result<Option<String>> {
        Ok(self
            .folders()
            .await?
            .into_iter()
            .find(|f| f.role.as_deref() == Some(role))
            .map(|f| f.name))
    }
    /// Ends the session politely (LOGOUT); dropping without it is allowed.
    async fn close(&mut self) -> Result<()> {
        Ok(())
    }
}
