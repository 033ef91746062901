//! The mail store: one API for accounts, aliases, mailboxes, messages and the change
//! log (and what JMAP keeps besides: uploads, opaque objects, bearer tokens),
//! used by every protocol (SMTP delivery, POP3, IMAP, JMAP) and the CLI.
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
mod light;
mod notify;
mod sqlite;
mod types;

use async_trait::async_trait;
use pochta_addr::Address;
use tokio::sync::watch;

pub use error::{Result, StoreError};
pub use light::{LIGHT_PATCH_LIMIT, LightCache, LightRegistry, SharedLight};
pub use notify::{ChangeNotifier, LocalNotifier};
pub use sqlite::SqliteStore;
pub use sqlite::check::{CheckOptions, CheckReport, CheckStats, Problem, ProblemKind};
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
    ///
    /// The bytes always become a new blob, also when they were read from an
    /// upload (JMAP Email/import): the upload keeps its own blob until it is
    /// purged, so the two lifetimes stay independent.
    async fn deliver(&self, delivery: Delivery) -> Result<Vec<Delivered>>;
    /// A mailbox's messages in UID order.
    async fn messages(&self, account: AccountId, mailbox: MailboxId)
    -> Result<Vec<MessageSummary>>;
    /// One message with its parsed metadata.
    async fn message(&self, account: AccountId, id: MessageId) -> Result<Option<MessageRecord>>;
    /// A message's bytes. Only blobs of the account's own messages, and blobs the
    /// account uploaded ([`Store::upload`]), are readable.
    async fn read_blob(&self, account: AccountId, blob: BlobId) -> Result<Vec<u8>>;
    /// The size of a blob the account may read ([`Store::read_blob`]'s rule), or
    /// `None` when it may not (or the blob does not exist), without reading it.
    async fn blob_size(&self, account: AccountId, blob: BlobId) -> Result<Option<u64>>;
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
    /// [`Store::messages_by_uid`] with each message's full metadata, read in
    /// one pass (IMAP FETCH of ENVELOPE, BODYSTRUCTURE or sections: one query
    /// for a batch instead of one per message).
    async fn records_by_uid(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        ranges: &[(Uid, Uid)],
    ) -> Result<Vec<MessageRecord>>;
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
    /// Every message of the account with its light metadata, ordered by id
    /// (JMAP Email/query, which searches all mailboxes unless filtered).
    async fn account_light_records(&self, account: AccountId) -> Result<Vec<MessageRecord>>;
    /// Several messages with their light metadata (`MessageMeta::light`),
    /// ordered by id (missing ids skipped, an id asked twice answered once):
    /// JMAP Email/get of properties the light metadata holds, and bringing a
    /// [`LightCache`] up to date. Far cheaper than [`Store::records`] for the
    /// same ids (a few hundred bytes to decode instead of the whole
    /// MIME tree).
    async fn light_records_by_ids(
        &self,
        account: AccountId,
        ids: &[MessageId],
    ) -> Result<Vec<MessageRecord>>;
    /// For each requested thread that has messages in the account, its message
    /// ids sorted by internal date, then id (RFC 8621 §3: a Thread's emails in
    /// receivedAt order). Threads without messages are left out; a thread asked
    /// for twice is answered once.
    async fn thread_messages(
        &self,
        account: AccountId,
        threads: &[ThreadId],
    ) -> Result<Vec<(ThreadId, Vec<MessageId>)>>;
    /// Thread and unread counts of every mailbox of the account (JMAP
    /// totalThreads, unreadThreads, unreadEmails), ordered by mailbox id.
    /// Counted from the messages, so the cost grows with the account.
    async fn mailbox_thread_counts(&self, account: AccountId) -> Result<Vec<MailboxCounts>>;
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

    // ---- the relay's MTA-STS policies ----

    /// The MTA-STS policy kept for `domain` (lower case), unless it expired
    /// before `now` (Unix seconds). Kept in the store so that a restart does not
    /// open a window for a downgrade (RFC 8461 §10.3).
    async fn sts_policy(&self, domain: &str, now: i64) -> Result<Option<StsPolicy>>;
    /// Keeps `policy` for `domain`, replacing the one before, and forgets the
    /// policies that expired before `now`.
    async fn put_sts_policy(&self, domain: &str, policy: StsPolicy, now: i64) -> Result<()>;
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

    // ---- JMAP uploads and objects ----

    /// Stores uploaded bytes (RFC 8620 §6.1) as a blob the account may read until
    /// [`Store::purge_uploads`] removes it. Uploads do not count against the quota.
    async fn upload(
        &self,
        account: AccountId,
        data: Vec<u8>,
        content_type: &str,
    ) -> Result<UploadedBlob>;
    /// Removes uploads made before `older_than` (Unix seconds) and frees their
    /// bytes; returns how many were removed.
    async fn purge_uploads(&self, older_than: i64) -> Result<u64>;
    /// Every object of a JMAP-only kind in the account, ordered by id. Email and
    /// Mailbox are [`StoreError::Invalid`] here.
    async fn objects(&self, account: AccountId, kind: ObjectKind) -> Result<Vec<StoredObject>>;
    /// The objects with these ids (missing ones skipped), in the order asked.
    async fn objects_by_id(
        &self,
        account: AccountId,
        kind: ObjectKind,
        ids: &[u64],
    ) -> Result<Vec<StoredObject>>;
    /// Creates, updates and destroys objects of a JMAP-only kind in order, in one
    /// durable transaction (JMAP `/set`). An update or destroy of an id that does
    /// not exist fails alone with [`ObjectError::NotFound`]; the others apply. All
    /// changes of one call share one new [`ModSeq`] and are in the change log.
    async fn set_objects(
        &self,
        account: AccountId,
        kind: ObjectKind,
        ops: Vec<ObjectOp>,
    ) -> Result<ObjectSetResult>;

    // ---- bearer tokens ----

    /// Records a token for `account` by the hash of its secret (the secret itself
    /// is never stored). A hash already in use is [`StoreError::AlreadyExists`].
    async fn create_token(
        &self,
        account: AccountId,
        hash: Vec<u8>,
        name: &str,
    ) -> Result<TokenInfo>;
    /// The token with this hash, if any. A read only: record the use with
    /// [`Store::touch_token`] when `last_used` is older than
    /// [`TOKEN_TOUCH_INTERVAL`].
    async fn token_account(&self, hash: &[u8]) -> Result<Option<TokenInfo>>;
    /// Sets a token's `last_used` to `now`, unless it was set less than
    /// [`TOKEN_TOUCH_INTERVAL`] before (so a busy client costs one write an hour).
    /// A token deleted meanwhile is ignored.
    async fn touch_token(&self, id: u64, now: i64) -> Result<()>;
    /// The tokens of one account, or of all, ordered by id.
    async fn tokens(&self, account: Option<AccountId>) -> Result<Vec<TokenInfo>>;
    /// Deletes a token; [`StoreError::NotFound`] if there is none with that id.
    async fn delete_token(&self, id: u64) -> Result<()>;

    // ---- vacation replies ----

    /// Whether to send `sender` an automatic reply now: true (and `now` is
    /// recorded) unless one was recorded for that sender less than `period`
    /// seconds before `now` (RFC 5230 §4.1 `:days`). Check and record are atomic.
    async fn vacation_should_reply(
        &self,
        account: AccountId,
        sender: &Address,
        now: i64,
        period: i64,
    ) -> Result<bool>;
    /// Forgets whom the account has answered (a changed VacationResponse answers
    /// everyone again).
    async fn vacation_reset(&self, account: AccountId) -> Result<()>;

    // ---- the change log ----

    /// The account's current state (its latest [`ModSeq`]).
    async fn state(&self, account: AccountId) -> Result<ModSeq>;
    /// The state of one kind of object (the JMAP `state` of `/get`): the [`ModSeq`]
    /// of the account's last change of that kind, 0 if none. Mailbox's counts
    /// change with every message change, so Mailbox's state is also raised by
    /// Email changes. Thread's state is Email's.
    async fn kind_state(&self, account: AccountId, kind: ObjectKind) -> Result<ModSeq>;
    /// Changes of one kind since `since`, folded per object (JMAP `/changes`), at most
    /// about `max` objects (a single change is never split). When all are given,
    /// `new_state` is the kind's state ([`Store::kind_state`]). For Mailbox, the
    /// mailboxes whose messages changed count as updated (their counts did).
    /// `since` may not be past the account's state ([`StoreError::Invalid`]) nor
    /// before the log's floor ([`StoreError::Pruned`]).
    async fn changes(
        &self,
        account: AccountId,
        kind: ObjectKind,
        since: ModSeq,
        max: usize,
    ) -> Result<Changes>;
    /// Raw change-log entries after `since`, oldest first, at most `limit`;
    /// [`StoreError::Pruned`] when some of them are no longer logged.
    async fn change_log(
        &self,
        account: AccountId,
        since: ModSeq,
        limit: usize,
    ) -> Result<Vec<Change>>;
    /// Forgets the change-log entries written before `cutoff` (Unix seconds), so
    /// that the log does not grow with every change ever made; `now` is the
    /// current time, remembered so that a later call can tell the age of what is
    /// logged until then. Meant to be called regularly (the server does hourly).
    /// Afterwards [`Store::change_log`] and [`Store::changes`] answer
    /// [`StoreError::Pruned`] for states from before the entries removed.
    /// Returns how many were removed.
    async fn prune_change_log(&self, cutoff: i64, now: i64) -> Result<u64>;
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

/// Seconds between two recordings of a token's use ([`Store::touch_token`]).
pub const TOKEN_TOUCH_INTERVAL: i64 = 3600;
