//! The store's data model: ids, flags, accounts, mailboxes, messages, changes.

use std::fmt;

use pochta_addr::Address;
use pochta_message::MessageMeta;
use serde::{Deserialize, Serialize};

/// Identifies an account; stable for the account's life, never reused.
pub type AccountId = u64;
/// Identifies a mailbox; stable across renames (JMAP Mailbox id, IMAP MAILBOXID).
pub type MailboxId = u64;
/// Identifies a message; stable across flag changes and moves (JMAP Email id, IMAP EMAILID).
pub type MessageId = u64;
/// Identifies stored message bytes, shared by every copy of a message.
pub type BlobId = u64;
/// Identifies a conversation (JMAP Thread id, IMAP THREADID).
pub type ThreadId = u64;
/// An IMAP UID: strictly increasing within a mailbox, never reused (RFC 9051 §2.3.1.1).
pub type Uid = u32;
/// A point in an account's change log. Every committed change gets a larger one;
/// IMAP uses it as MODSEQ (RFC 7162), JMAP as its state string.
pub type ModSeq = u64;

/// The IMAP system flags, as a bit set (keywords are kept apart as strings).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Flags(u8);

impl Flags {
    /// No flags.
    pub const NONE: Flags = Flags(0);
    /// `\Seen` / JMAP `$seen`.
    pub const SEEN: Flags = Flags(1);
    /// `\Answered` / `$answered`.
    pub const ANSWERED: Flags = Flags(2);
    /// `\Flagged` / `$flagged`.
    pub const FLAGGED: Flags = Flags(4);
    /// `\Deleted`: marked for EXPUNGE (IMAP) or for removal on POP3 QUIT.
    pub const DELETED: Flags = Flags(8);
    /// `\Draft` / `$draft`.
    pub const DRAFT: Flags = Flags(16);
    const ALL: u8 = 31;

    /// The raw bits, as stored.
    pub fn bits(self) -> u8 {
        self.0
    }
    /// Rebuilds flags from stored bits, ignoring unknown ones.
    pub fn from_bits(bits: u8) -> Flags {
        Flags(bits & Self::ALL)
    }
    /// True when every flag of `other` is set here.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
    /// The flags set in either.
    pub fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
    /// These flags without those of `other`.
    pub fn difference(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }
    /// True when no flag is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// IMAP names of the set flags, in a fixed order.
    pub fn imap_names(self) -> Vec<&'static str> {
        [
            (Self::SEEN, "\\Seen"),
            (Self::ANSWERED, "\\Answered"),
            (Self::FLAGGED, "\\Flagged"),
            (Self::DELETED, "\\Deleted"),
            (Self::DRAFT, "\\Draft"),
        ]
        .into_iter()
        .filter(|(f, _)| self.contains(*f))
        .map(|(_, n)| n)
        .collect()
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flags({})", self.imap_names().join(" "))
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        self.union(rhs)
    }
}

/// What a mailbox is for (RFC 6154 SPECIAL-USE, RFC 8621 §2 roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Where new mail is delivered.
    Inbox,
    /// Copies of sent mail.
    Sent,
    /// Unfinished messages.
    Drafts,
    /// Deleted messages, before they are expunged.
    Trash,
    /// Spam.
    Junk,
    /// Archived messages.
    Archive,
    /// A virtual view of every message.
    All,
    /// A virtual view of flagged messages.
    Flagged,
    /// Important messages.
    Important,
}

impl Role {
    /// Roles a new account's mailboxes get, with their default names, in display order.
    pub const DEFAULT_MAILBOXES: [(Role, &'static str); 6] = [
        (Role::Inbox, "INBOX"),
        (Role::Drafts, "Drafts"),
        (Role::Sent, "Sent"),
        (Role::Archive, "Archive"),
        (Role::Junk, "Junk"),
        (Role::Trash, "Trash"),
    ];

    /// The JMAP role name (lower case), also the stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Inbox => "inbox",
            Role::Sent => "sent",
            Role::Drafts => "drafts",
            Role::Trash => "trash",
            Role::Junk => "junk",
            Role::Archive => "archive",
            Role::All => "all",
            Role::Flagged => "flagged",
            Role::Important => "important",
        }
    }

    /// Parses a stored or JMAP role name.
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "inbox" => Role::Inbox,
            "sent" => Role::Sent,
            "drafts" => Role::Drafts,
            "trash" => Role::Trash,
            "junk" => Role::Junk,
            "archive" => Role::Archive,
            "all" => Role::All,
            "flagged" => Role::Flagged,
            "important" => Role::Important,
            _ => return None,
        })
    }

    /// The IMAP SPECIAL-USE attribute (RFC 6154), if the role has one.
    pub fn special_use(self) -> Option<&'static str> {
        Some(match self {
            Role::Inbox => return None,
            Role::Sent => "\\Sent",
            Role::Drafts => "\\Drafts",
            Role::Trash => "\\Trash",
            Role::Junk => "\\Junk",
            Role::Archive => "\\Archive",
            Role::All => "\\All",
            Role::Flagged => "\\Flagged",
            Role::Important => "\\Important",
        })
    }
}

/// A mail account: a login with its own mailboxes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Stable id.
    pub id: AccountId,
    /// The account's own address, which is also its login name.
    pub address: Address,
    /// PHC string of the password hash (argon2id); verified by the auth crate.
    pub password_hash: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Storage quota in octets, if one is set.
    pub quota: Option<u64>,
}

/// An account with its usage, for listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountUsage {
    /// The account.
    pub account: Account,
    /// Messages over all mailboxes.
    pub messages: u64,
    /// Octets over all mailboxes.
    pub size: u64,
}

/// Fields of a new account.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// Address and login name; must not exist as an account or alias.
    pub address: Address,
    /// Already-hashed password (never the password itself).
    pub password_hash: String,
    /// Optional quota in octets.
    pub quota: Option<u64>,
}

/// An alias address and the addresses it delivers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    /// The alias.
    pub address: Address,
    /// Where its mail goes (accounts or other aliases).
    pub targets: Vec<Address>,
}

/// A mailbox (IMAP folder, JMAP Mailbox).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// Stable id.
    pub id: MailboxId,
    /// Owner.
    pub account_id: AccountId,
    /// The containing mailbox, or `None` at the top level.
    pub parent_id: Option<MailboxId>,
    /// The name of this level only; the full IMAP name joins ancestors with `/`.
    pub name: String,
    /// Special use, if any.
    pub role: Option<Role>,
    /// RFC 9051 UIDVALIDITY: unique for every mailbox ever created in the store.
    pub uid_validity: u32,
    /// The UID the next message will get.
    pub uid_next: Uid,
    /// The largest MODSEQ of any change in this mailbox (RFC 7162 HIGHESTMODSEQ).
    pub highest_modseq: ModSeq,
    /// Number of messages.
    pub total: u32,
    /// Messages without `\Seen`.
    pub unseen: u32,
    /// Messages with `\Deleted`.
    pub deleted: u32,
    /// Sum of message sizes (RFC 8438 STATUS SIZE).
    pub size: u64,
    /// IMAP subscription.
    pub subscribed: bool,
    /// Display order hint (JMAP sortOrder).
    pub sort_order: u32,
    /// Keywords ever set on a message here (IMAP FLAGS); never shrinks.
    pub keywords: Vec<String>,
}

/// Where a delivered message should go in an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxTarget {
    /// The mailbox with this role (falls back to INBOX when the account has none).
    Role(Role),
    /// A specific mailbox.
    Id(MailboxId),
}

/// One recipient mailbox of a delivery.
#[derive(Debug, Clone)]
pub struct DeliveryTarget {
    /// The receiving account.
    pub account: AccountId,
    /// The mailbox inside it.
    pub mailbox: MailboxTarget,
    /// Initial flags (e.g. `\Seen` for a copy of sent mail).
    pub flags: Flags,
    /// Initial keywords.
    pub keywords: Vec<String>,
}

impl DeliveryTarget {
    /// New mail for an account's INBOX.
    pub fn inbox(account: AccountId) -> DeliveryTarget {
        DeliveryTarget {
            account,
            mailbox: MailboxTarget::Role(Role::Inbox),
            flags: Flags::NONE,
            keywords: Vec::new(),
        }
    }
}

/// A message to store once and file into one or more mailboxes and/or the
/// outbound queue, all in one transaction.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The complete message as it will be served (trace headers included).
    pub raw: Vec<u8>,
    /// Its parsed metadata (see [`pochta_message::parse`]).
    pub meta: MessageMeta,
    /// Unix seconds; IMAP INTERNALDATE / JMAP receivedAt.
    pub internal_date: i64,
    /// Where it goes. Duplicate accounts are the caller's business.
    pub targets: Vec<DeliveryTarget>,
    /// Remote recipients, to be relayed by the queue.
    pub outbound: Option<Outbound>,
}

/// DSN notification conditions (RFC 3461 NOTIFY), as bits.
pub mod dsn_notify {
    /// NOTIFY=SUCCESS.
    pub const SUCCESS: u8 = 1;
    /// NOTIFY=FAILURE.
    pub const FAILURE: u8 = 2;
    /// NOTIFY=DELAY.
    pub const DELAY: u8 = 4;
    /// NOTIFY=NEVER.
    pub const NEVER: u8 = 8;
}

/// The outbound part of a delivery: who it is relayed to, and how.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// The envelope sender (`None` for `<>`).
    pub mail_from: Option<Address>,
    /// Remote recipients.
    pub recipients: Vec<OutboundRecipient>,
    /// RFC 3461 ENVID.
    pub envid: Option<String>,
    /// RET=FULL (true) or HDRS.
    pub ret_full: bool,
    /// The submitting account, if any.
    pub account: Option<AccountId>,
    /// When to give up (Unix seconds).
    pub expires_at: i64,
    /// The message needs SMTPUTF8 from the next hop.
    pub smtputf8: bool,
    /// The message has 8-bit content.
    pub eightbit: bool,
}

/// One remote recipient of a queued message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRecipient {
    /// The address.
    pub address: Address,
    /// RFC 3461 ORCPT (`rfc822;addr`), if given.
    pub orcpt: Option<String>,
    /// [`dsn_notify`] bits; 0 when not given.
    pub notify: u8,
}

/// Where a queued recipient stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueState {
    /// Waiting for (another) attempt.
    Queued,
    /// Accepted by the next hop.
    Delivered,
    /// Failed for good (permanent error or expired).
    Failed,
}

/// A queued recipient, for delivery and administration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRecipient {
    /// Its id.
    pub id: u64,
    /// The address.
    pub address: Address,
    /// RFC 3461 ORCPT.
    pub orcpt: Option<String>,
    /// [`dsn_notify`] bits.
    pub notify: u8,
    /// State.
    pub state: QueueState,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due (Unix seconds).
    pub next_attempt: i64,
    /// What went wrong last time.
    pub last_error: Option<String>,
    /// The remote MTA of the last attempt.
    pub remote: Option<String>,
}

/// A queued message with its recipients (all, or those of one job).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    /// Queue id.
    pub id: u64,
    /// Its bytes.
    pub blob_id: BlobId,
    /// Envelope sender (`None` for `<>`).
    pub mail_from: Option<Address>,
    /// RFC 3461 ENVID.
    pub envid: Option<String>,
    /// RET=FULL.
    pub ret_full: bool,
    /// The submitting account.
    pub account: Option<AccountId>,
    /// When it was queued.
    pub created_at: i64,
    /// When it expires.
    pub expires_at: i64,
    /// A delay warning was sent.
    pub warned: bool,
    /// Octets.
    pub size: u64,
    /// Needs SMTPUTF8.
    pub smtputf8: bool,
    /// Has 8-bit content.
    pub eightbit: bool,
    /// The recipients in question.
    pub recipients: Vec<QueuedRecipient>,
}

/// The outcome of one attempt for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The next hop accepted it.
    Delivered {
        /// Who.
        remote: Option<String>,
        /// Its reply.
        reply: String,
    },
    /// Try again at `retry_at`.
    Deferred {
        /// When.
        retry_at: i64,
        /// Why.
        error: String,
        /// Who answered, if anyone.
        remote: Option<String>,
    },
    /// Failed for good.
    Failed {
        /// Why.
        error: String,
        /// Who answered, if anyone.
        remote: Option<String>,
    },
}

/// Where one delivery target's copy landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// The account.
    pub account: AccountId,
    /// The mailbox.
    pub mailbox: MailboxId,
    /// Its UID there.
    pub uid: Uid,
    /// The message id.
    pub id: MessageId,
    /// The change that created it.
    pub modseq: ModSeq,
}

/// A message's index entry: everything but its bytes and parsed metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSummary {
    /// Stable id.
    pub id: MessageId,
    /// The mailbox it is in.
    pub mailbox_id: MailboxId,
    /// UID in that mailbox.
    pub uid: Uid,
    /// Its bytes.
    pub blob_id: BlobId,
    /// Its conversation.
    pub thread_id: ThreadId,
    /// System flags.
    pub flags: Flags,
    /// Keywords (`$Forwarded`, `$Junk`, user words), in the spelling first stored.
    pub keywords: Vec<String>,
    /// Unix seconds.
    pub internal_date: i64,
    /// Octets.
    pub size: u64,
    /// The last change to this message.
    pub modseq: ModSeq,
}

/// A message with its parsed metadata.
#[derive(Debug, Clone)]
pub struct MessageRecord {
    /// The index entry.
    pub summary: MessageSummary,
    /// The metadata stored at delivery.
    pub meta: MessageMeta,
}

/// How to change a set of messages' flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagChange {
    /// Replace flags and keywords.
    Set(Flags, Vec<String>),
    /// Add these.
    Add(Flags, Vec<String>),
    /// Remove these.
    Remove(Flags, Vec<String>),
}

/// What kind of object a change-log entry is about. Each kind has its own JMAP
/// state ([`crate::Store::kind_state`]); JMAP Thread shares Email's, since
/// threads change only when their emails do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// A message (JMAP Email).
    Email,
    /// A mailbox.
    Mailbox,
    /// A JMAP Identity (RFC 8621 §6), kept as an opaque [`StoredObject`].
    Identity,
    /// A JMAP EmailSubmission (RFC 8621 §7), kept as an opaque [`StoredObject`].
    EmailSubmission,
    /// A JMAP VacationResponse (RFC 8621 §8), kept as an opaque [`StoredObject`].
    VacationResponse,
}

impl ObjectKind {
    /// True for the kinds that live only in JMAP and are stored as opaque
    /// [`StoredObject`]s (everything but Email and Mailbox).
    pub fn is_stored_object(self) -> bool {
        !matches!(self, ObjectKind::Email | ObjectKind::Mailbox)
    }
}

/// What happened to the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeOp {
    /// It came into being.
    Created,
    /// Its flags, keywords, name or location changed. For a message that moved,
    /// `mailbox_id`/`uid` are its new place.
    Updated,
    /// It is gone (expunged, deleted).
    Destroyed,
    /// A message left `mailbox_id` (where it had `uid`) for another mailbox: an
    /// expunge for IMAP sessions on that mailbox, invisible to JMAP (which sees
    /// the accompanying `Updated`).
    LeftMailbox,
}

/// One entry of an account's change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// When.
    pub modseq: ModSeq,
    /// About what.
    pub kind: ObjectKind,
    /// What happened.
    pub op: ChangeOp,
    /// Which object.
    pub id: u64,
    /// For messages: the mailbox it was in when the change happened.
    pub mailbox_id: Option<MailboxId>,
    /// For messages: its UID in that mailbox (for QRESYNC VANISHED).
    pub uid: Option<Uid>,
    /// For messages: its thread.
    pub thread_id: Option<ThreadId>,
}

/// Changes of one kind since a state, folded per object as JMAP `/changes` wants them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The state these changes lead to.
    pub new_state: ModSeq,
    /// True when more changes exist past `new_state` (the caller asked for fewer).
    pub has_more: bool,
    /// Objects created since (and not destroyed again).
    pub created: Vec<u64>,
    /// Objects that existed before and changed.
    pub updated: Vec<u64>,
    /// Objects that existed before and are gone.
    pub destroyed: Vec<u64>,
}

/// Result of looking up where an address delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The address reaches these accounts (deduplicated, never empty).
    Accounts(Vec<AccountId>),
    /// No account or alias has this address.
    Unknown,
}

/// The outcome of a flag change (IMAP STORE, JMAP Email/set keywords).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagUpdate {
    /// The account's state afterwards.
    pub state: ModSeq,
    /// Messages whose flags changed, with their new flags.
    pub changed: Vec<FlagState>,
    /// Messages not changed because they were modified after `unchanged_since`
    /// (RFC 7162 CONDSTORE: the MODIFIED set).
    pub skipped: Vec<MessageId>,
}

/// A message's flags after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagState {
    /// The message.
    pub id: MessageId,
    /// Its mailbox.
    pub mailbox_id: MailboxId,
    /// Its UID.
    pub uid: Uid,
    /// System flags now.
    pub flags: Flags,
    /// Keywords now.
    pub keywords: Vec<String>,
    /// The change's MODSEQ.
    pub modseq: ModSeq,
}

/// A message moved by [`crate::Store::move_messages`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    /// The message (same id before and after).
    pub id: MessageId,
    /// Its UID in the source mailbox.
    pub old_uid: Uid,
    /// Its UID in the destination.
    pub new_uid: Uid,
    /// The change's MODSEQ.
    pub modseq: ModSeq,
}

/// Storage use of an account (RFC 9208 STORAGE and MESSAGE resources).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaUsage {
    /// Octets stored, over all mailboxes.
    pub used: u64,
    /// Messages stored.
    pub messages: u64,
    /// The limit in octets, if any.
    pub limit: Option<u64>,
}

/// A destination domain's MTA-STS policy as the relay fetched it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsPolicy {
    /// The id of the `_mta-sts` TXT record it was fetched under.
    pub id: String,
    /// The policy file, as fetched (the relay parses it).
    pub text: String,
    /// When it expires (its `max_age` after the fetch), Unix seconds.
    pub expires: i64,
}

/// A blob uploaded through JMAP (RFC 8620 §6.1), readable by its account until
/// purged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedBlob {
    /// The stored bytes' id (the JMAP blobId).
    pub blob_id: BlobId,
    /// Octets.
    pub size: u64,
    /// The media type the client gave.
    pub content_type: String,
}

/// A JMAP object the store keeps without looking inside (Identity,
/// EmailSubmission, VacationResponse): the JMAP layer stores JSON in `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Its id, unique over all kinds and accounts and never reused.
    pub id: u64,
    /// Its content, opaque to the store.
    pub data: String,
}

/// One step of [`crate::Store::set_objects`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectOp {
    /// Creates an object with this content.
    Create(String),
    /// Replaces an object's content.
    Update(u64, String),
    /// Removes an object.
    Destroy(u64),
}

/// Why one step of [`crate::Store::set_objects`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// No object of that kind with that id in the account.
    #[error("object not found")]
    NotFound,
}

/// The outcome of [`crate::Store::set_objects`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSetResult {
    /// Per operation, in order: the object's id, or why it failed.
    pub results: Vec<Result<u64, ObjectError>>,
    /// The kind's state afterwards ([`crate::Store::kind_state`]).
    pub state: ModSeq,
}

/// Thread and unread counts of one mailbox, as JMAP Mailbox reports them
/// (RFC 8621 §2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MailboxCounts {
    /// The mailbox.
    pub mailbox_id: MailboxId,
    /// Threads with at least one message in this mailbox (totalThreads).
    pub total_threads: u32,
    /// Threads with at least one message in this mailbox that has neither
    /// `\Seen` nor `\Draft` (unreadThreads, the "simplest solution" of §2).
    pub unread_threads: u32,
    /// Messages in this mailbox with neither `\Seen` nor `\Draft`
    /// (unreadEmails; [`Mailbox::unseen`] counts drafts too, as IMAP wants).
    pub unread_emails: u32,
}

/// An HTTP bearer token. The store keeps only a hash of the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Its id (to list and delete it).
    pub id: u64,
    /// The account it logs in as.
    pub account_id: AccountId,
    /// A label chosen by whoever created it.
    pub name: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last recorded use, at most about an hour old
    /// (see [`crate::Store::touch_token`]).
    pub last_used: Option<i64>,
}
