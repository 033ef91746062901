//! The mail store: one API for accounts, aliases, mailboxes, messages and the change
//! log, used by every protocol (SMTP delivery, POP3, IMAP, JMAP) and the CLI.
//!
//! The [`Store`] trait is the whole contract. Protocol code holds an
//! `Arc<dyn Store>` and never sees SQL, so a PostgreSQL backend for several
//! `pochta serve` nodes can slot in beside the embedded [`SqliteStore`].
//!
//! Rules every backend keeps:
//! * A write returns only after it is durable (committed and fsynced); SMTP's 250
//!   rests on this.
//! * A message is stored once ([`BlobId`]) however many mailboxes it is filed into;
//!   delivery to all recipients is one transaction.
//! * UIDs grow strictly per mailbox and are never reused; UIDVALIDITY is unique for
//!   every mailbox ever created; message and mailbox ids are never reused.
//! * Every change bumps the account's [`ModSeq`] and is written to the change log in
//!   the same transaction, so IMAP CONDSTORE/QRESYNC and JMAP `/changes` read one truth.
//! * After each commit the account's new state is published to a
//!   [`ChangeNotifier`], which is what wakes IMAP IDLE and JMAP push.

#![forbid(unsafe_code)]

mod error;
mod notify;
mod sqlite;
mod types;

use async_trait::async_trait;
use pochta_addr::Address;
use tokio::sync::watch;

pub use error::{Result, StoreError};
pub use notify::{ChangeNotifier, LocalNotifier};
pub use sqlite::SqliteStore;
pub use types::*;

/// Everything the protocols and the CLI may ask of the mail store.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // ---- the directory: accounts and aliases ----

    /// Creates an account with INBOX, Drafts, Sent, Archive, Junk and Trash.
    /// Fails with [`StoreError::AlreadyExists`] if the address is an account or alias.
    async fn create_account(&self, new: NewAccount) -> Result<Account>;
    /// Deletes an account with all its mail, and alias entries pointing at it.
    async fn delete_account(&self, address: &Address) -> Result<()>;
    /// Replaces an account's password hash.
    async fn set_password(&self, address: &Address, password_hash: String) -> Result<()>;
    /// Looks an account up by address (case-insensitive).
    async fn account(&self, address: &Address) -> Result<Option<Account>>;
    /// Looks an account up by id.
    async fn account_by_id(&self, id: AccountId) -> Result<Option<Account>>;
    /// All accounts with their usage, ordered by address.
    async fn accounts(&self) -> Result<Vec<AccountUsage>>;
    /// Adds targets to an alias, creating it if needed. The alias must not be an account.
    async fn add_alias(&self, alias: Alias) -> Result<()>;
    /// Removes an alias entirely.
    async fn delete_alias(&self, alias: &Address) -> Result<()>;
    /// All aliases, ordered by address.
    async fn aliases(&self) -> Result<Vec<Alias>>;
    /// Which accounts mail to `address` reaches: the account itself, aliases expanded
    /// (recursively, loops ignored), and `user+detail` falling back to `user`.
    async fn resolve(&self, address: &Address) -> Result<Resolution>;

    // ---- mailboxes ----

    /// An account's mailboxes, ordered by id.
    async fn mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>>;
    /// Creates a mailbox under `parent` (or at the top).
    async fn create_mailbox(
        &self,
        account: AccountId,
        parent: Option<MailboxId>,
        name: &str,
        role: Option<Role>,
    ) -> Result<Mailbox>;

    /// Renames and/or moves a mailbox (`parent` `None`: to the top level).
    /// Moving a mailbox under itself or a descendant is refused.
    async fn rename_mailbox(
        &self,
        account: AccountId,
        id: MailboxId,
        parent: Option<MailboxId>,
        name: &str,
    ) -> Result<Mailbox>;
    /// Deletes a mailbox and its messages. Fails with [`StoreError::HasChildren`]
    /// when other mailboxes are inside it.
    async fn delete_mailbox(&self, account: AccountId, id: MailboxId) -> Result<()>;
    /// Subscribes or unsubscribes a mailbox (IMAP SUBSCRIBE, JMAP isSubscribed).
    async fn set_subscribed(
        &self,
        account: AccountId,
        id: MailboxId,
        subscribed: bool,
    ) -> Result<()>;

    // ---- messages ----

    /// Stores a message once and files it into every target, in one durable
    /// transaction; returns where each copy landed, in target order.
    async fn deliver(&self, delivery: Delivery) -> Result<Vec<Delivered>>;
    /// A mailbox's messages in UID order.
    async fn messages(&self, account: AccountId, mailbox: MailboxId)
    -> Result<Vec<MessageSummary>>;
    /// One message with its parsed metadata.
    async fn message(&self, account: AccountId, id: MessageId) -> Result<Option<MessageRecord>>;
    /// A message's bytes. Only blobs of the account's own messages are readable.
    async fn read_blob(&self, account: AccountId, blob: BlobId) -> Result<Vec<u8>>;
    /// Changes flags and keywords of messages; returns the account's state afterwards.
    /// Unknown ids are skipped.
    async fn update_flags(
        &self,
        account: AccountId,
        ids: &[MessageId],
        change: FlagChange,
    ) -> Result<ModSeq>;
    /// Removes messages for good; returns the account's state afterwards.
    async fn expunge(&self, account: AccountId, ids: &[MessageId]) -> Result<ModSeq>;
    /// Changes flags and reports each changed message's new flags. With
    /// `unchanged_since`, messages modified after that MODSEQ are left alone and
    /// listed in `skipped` (RFC 7162 UNCHANGEDSINCE).
    async fn store_flags(
        &self,
        account: AccountId,
        ids: &[MessageId],
        change: FlagChange,
        unchanged_since: Option<ModSeq>,
    ) -> Result<FlagUpdate>;
    /// Copies messages into `dest` (new ids and UIDs, the same stored bytes), in
    /// the order given; one durable transaction.
    async fn copy_messages(
        &self,
        account: AccountId,
        ids: &[MessageId],
        dest: MailboxId,
    ) -> Result<Vec<Delivered>>;
    /// Moves messages into `dest`: ids stay, UIDs are new; one durable transaction.
    async fn move_messages(
        &self,
        account: AccountId,
        ids: &[MessageId],
        dest: MailboxId,
    ) -> Result<Vec<Moved>>;
    /// `(UID, id)` of every message in a mailbox, in UID order (the IMAP sequence map).
    async fn uid_map(
        &self,
        account: AccountId,
        mailbox: MailboxId,
    ) -> Result<Vec<(Uid, MessageId)>>;
    /// Messages of a mailbox whose UIDs fall in the given inclusive ranges, in UID order.
    async fn messages_by_uid(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        ranges: &[(Uid, Uid)],
    ) -> Result<Vec<MessageSummary>>;
    /// The lowest UID of a mailbox's messages without `\Seen` (IMAP4rev1's
    /// `[UNSEEN n]`), found without reading every message into memory.
    async fn first_unseen(&self, account: AccountId, mailbox: MailboxId) -> Result<Option<Uid>>;
    /// `(UID, id)` of the messages of a mailbox with `\Deleted`, for EXPUNGE.
    async fn deleted(
        &self,
        account: AccountId,
        mailbox: MailboxId,
    ) -> Result<Vec<(Uid, MessageId)>>;
    /// Messages of a mailbox changed after `modseq`, in UID order (QRESYNC).
    async fn changed_since(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        modseq: ModSeq,
    ) -> Result<Vec<MessageSummary>>;
    /// Several messages with their full metadata (missing ids are skipped).
    async fn records(&self, account: AccountId, ids: &[MessageId]) -> Result<Vec<MessageRecord>>;
    /// Every message of a mailbox with its light metadata (`MessageMeta::light`),
    /// for SEARCH, SORT and THREAD over whole mailboxes.
    async fn light_records(
        &self,
        account: AccountId,
        mailbox: MailboxId,
    ) -> Result<Vec<MessageRecord>>;
    /// Storage use and limit of an account.
    async fn quota(&self, account: AccountId) -> Result<QuotaUsage>;
    /// Sets (or with `None` removes) an account's storage limit in octets.
    async fn set_quota(&self, address: &Address, limit: Option<u64>) -> Result<()>;

    // ---- the outbound queue ----

    /// Leases up to `limit` recipients due at `now` for an attempt lasting at most
    /// `lease` seconds (other workers skip them meanwhile); grouped per message.
    async fn queue_due(&self, now: i64, limit: usize, lease: i64) -> Result<Vec<QueuedMessage>>;
    /// Records the outcomes of an attempt and ends the leases; with `dsn`, the
    /// delivery-status notification is delivered in the same transaction. A
    /// message whose recipients are all final leaves the queue.
    async fn queue_record(
        &self,
        outcomes: Vec<(u64, AttemptOutcome)>,
        dsn: Option<Delivery>,
    ) -> Result<()>;
    /// Every queued message with all its recipients, oldest first.
    async fn queue_list(&self) -> Result<Vec<QueuedMessage>>;
    /// One queued message.
    async fn queue_get(&self, id: u64) -> Result<Option<QueuedMessage>>;
    /// The bytes of a queued message.
    async fn queue_blob(&self, id: u64) -> Result<Vec<u8>>;
    /// Makes the waiting recipients of one message (or of all) due now; returns how many.
    async fn queue_retry(&self, id: Option<u64>) -> Result<u64>;
    /// Removes a message from the queue without delivering it.
    async fn queue_delete(&self, id: u64) -> Result<()>;
    /// Notes that a delay warning was sent for a message.
    async fn queue_mark_warned(&self, id: u64) -> Result<()>;
    /// Ends every lease (at startup: attempts of a previous run are over).
    async fn queue_release_leases(&self) -> Result<u64>;
    /// When the next waiting recipient is due, if any.
    async fn queue_next_due(&self) -> Result<Option<i64>>;

    // ---- the change log ----

    /// The account's current state (its latest [`ModSeq`]).
    async fn state(&self, account: AccountId) -> Result<ModSeq>;
    /// Changes of one kind since `since`, folded per object (JMAP `/changes`), at most
    /// about `max` objects (a single change is never split).
    async fn changes(
        &self,
        account: AccountId,
        kind: ObjectKind,
        since: ModSeq,
        max: usize,
    ) -> Result<Changes>;
    /// Raw change-log entries after `since`, oldest first, at most `limit`.
    async fn change_log(
        &self,
        account: AccountId,
        since: ModSeq,
        limit: usize,
    ) -> Result<Vec<Change>>;
    /// Receives the account's state after every committed change.
    fn subscribe(&self, account: AccountId) -> watch::Receiver<ModSeq>;
    /// Changes whenever mail is queued or made due again, so that the relay's
    /// queue runner wakes without polling. It rides on the account notifier
    /// ([`QUEUE_CHANNEL`]), so it crosses machines whenever that does.
    fn subscribe_queue(&self) -> watch::Receiver<ModSeq> {
        self.subscribe(QUEUE_CHANNEL)
    }
}

/// The notification channel of the outbound queue: no account has id 0.
pub const QUEUE_CHANNEL: AccountId = 0;
