//! The embedded backend: SQLite in WAL mode, one writer thread with group commit,
//! a pool of reader connections. See `schema.rs` for why bodies live in SQLite.

pub(crate) mod check;
mod ops;
mod pool;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use pochta_addr::Address;
use rusqlite::Connection;
use tokio::sync::watch;

use crate::notify::{ChangeNotifier, LocalNotifier};
use crate::*;
use pool::ReadPool;
use writer::Writer;

/// Change-log entries removed per write transaction when pruning.
const PRUNE_BATCH: usize = 10_000;

/// Name of the database file inside the data directory.
pub const DB_FILE: &str = "store.sqlite3";

/// The embedded store. Cheap to clone; all clones share one writer and one pool.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Writer,
    readers: ReadPool,
    notifier: Arc<dyn ChangeNotifier>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `dir`, with an in-process notifier.
    pub fn open(dir: &Path) -> Result<SqliteStore> {
        Self::open_with_notifier(dir, Arc::new(LocalNotifier::new()))
    }

    /// Opens the store in `dir`, publishing changes through `notifier`.
    pub fn open_with_notifier(
        dir: &Path,
        notifier: Arc<dyn ChangeNotifier>,
    ) -> Result<SqliteStore> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
        let path = dir.join(DB_FILE);
        let conn = Connection::open(&path)?;
        schema::configure(&conn)?;
        schema::migrate(&conn)?;
        let writer = Writer::start(conn, notifier.clone())?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                readers: ReadPool::new(path.clone()),
                path,
                writer,
                notifier,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn read<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = inner.readers.take()?;
            let result = f(&conn);
            inner.readers.put(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("reader task failed: {e}")))?
    }

    async fn write<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut writer::WriteCtx<'_>) -> Result<R> + Send + 'static,
    {
        self.inner.writer.write(f).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_account(&self, new: NewAccount) -> Result<Account> {
        self.write(move |ctx| ops::create_account(ctx, new)).await
    }

    async fn delete_account(&self, address: &Address) -> Result<()> {
        let address = address.clone();
        self.write(move |ctx| ops::delete_account(ctx.conn, &address))
            .await
    }

    async fn set_password(&self, address: &Address, password_hash: String) -> Result<()> {
        let key = address.key();
        self.write(move |ctx| ops::set_password(ctx.conn, &key, &password_hash))
            .await
    }

    async fn account(&self, address: &Address) -> Result<Option<Account>> {
        let key = address.key();
        self.read(move |c| ops::account_by_key(c, &key)).await
    }

    async fn account_by_id(&self, id: AccountId) -> Result<Option<Account>> {
        self.read(move |c| ops::account_by_id(c, id)).await
    }

    async fn accounts(&self) -> Result<Vec<AccountUsage>> {
        self.read(ops::accounts).await
    }

    async fn add_alias(&self, alias: Alias) -> Result<()> {
        self.write(move |ctx| ops::add_alias(ctx.conn, &alias))
            .await
    }

    async fn delete_alias(&self, alias: &Address) -> Result<()> {
        let key = alias.key();
        self.write(move |ctx| ops::delete_alias(ctx.conn, &key))
            .await
    }

    async fn aliases(&self) -> Result<Vec<Alias>> {
        self.read(ops::aliases).await
    }

    async fn resolve(&self, address: &Address) -> Result<Resolution> {
        let address = address.clone();
        self.read(move |c| ops::resolve(c, &address)).await
    }

    async fn mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>> {
        self.read(move |c| ops::mailboxes(c, account)).await
    }

    async fn create_mailbox(
        &self,
        account: AccountId,
        parent: Option<MailboxId>,
        name: &str,
        role: Option<Role>,
    ) -> Result<Mailbox> {
        let name = name.to_string();
        self.write(move |ctx| ops::create_mailbox(ctx, account, parent, &name, role))
            .await
    }

    async fn rename_mailbox(
        &self,
        account: AccountId,
        id: MailboxId,
        parent: Option<MailboxId>,
        name: &str,
    ) -> Result<Mailbox> {
        let name = name.to_string();
        self.write(move |ctx| ops::rename_mailbox(ctx, account, id, parent, &name))
            .await
    }

    async fn delete_mailbox(&self, account: AccountId, id: MailboxId) -> Result<()> {
        self.write(move |ctx| ops::delete_mailbox(ctx, account, id))
            .await
    }

    async fn set_subscribed(
        &self,
        account: AccountId,
        id: MailboxId,
        subscribed: bool,
    ) -> Result<()> {
        self.write(move |ctx| ops::set_subscribed(ctx, account, id, subscribed))
            .await
    }

    async fn deliver(&self, delivery: Delivery) -> Result<Vec<Delivered>> {
        if delivery.targets.is_empty() && delivery.outbound.is_none() {
            return Ok(Vec::new());
        }
        // Serialise outside the writer thread: it is the one resource all share.
        let prepared = ops::PreparedDelivery::new(delivery)?;
        self.write(move |ctx| ops::deliver(ctx, prepared)).await
    }

    async fn messages(
        &self,
        account: AccountId,
        mailbox: MailboxId,
    ) -> Result<Vec<MessageSummary>> {
        self.read(move |c| ops::messages(c, account, mailbox)).await
    }

    async fn message(&self, account: AccountId, id: MessageId) -> Result<Option<MessageRecord>> {
        self.read(move |c| ops::message(c, account, id)).await
    }

    async fn read_blob(&self, account: AccountId, blob: BlobId) -> Result<Vec<u8>> {
        self.read(move |c| ops::read_blob(c, account, blob)).await
    }

    async fn blob_size(&self, account: AccountId, blob: BlobId) -> Result<Option<u64>> {
        self.read(move |c| ops::blob_size(c, account, blob)).await
    }

    async fn update_flags(
        &self,
        account: AccountId,
        ids: &[MessageId],
        change: FlagChange,
    ) -> Result<ModSeq> {
        let ids = ids.to_vec();
        self.write(move |ctx| ops::update_flags(ctx, account, &ids, &change))
            .await
    }

    async fn expunge(&self, account: AccountId, ids: &[MessageId]) -> Result<ModSeq> {
        let ids = ids.to_vec();
        self.write(move |ctx| ops::expunge(ctx, account, &ids))
            .await
    }

    async fn store_flags(
        &self,
        account: AccountId,
        ids: &[MessageId],
        change: FlagChange,
        unchanged_since: Option<ModSeq>,
    ) -> Result<FlagUpdate> {
        let ids = ids.to_vec();
        self.write(move |ctx| ops::store_flags(ctx, account, &ids, &change, unchanged_since))
            .await
    }

    async fn copy_messages(
        &self,
        account: AccountId,
        ids: &[MessageId],
        dest: MailboxId,
    ) -> Result<Vec<Delivered>> {
        let ids = ids.to_vec();
        self.write(move |ctx| ops::copy_messages(ctx, account, &ids, dest))
            .await
    }

    async fn move_messages(
        &self,
        account: AccountId,
        ids: &[MessageId],
        dest: MailboxId,
    ) -> Result<Vec<Moved>> {
        let ids = ids.to_vec();
        self.write(move |ctx| ops::move_messages(ctx, account, &ids, dest))
            .await
    }

    async fn uid_map(
        &self,
        account: AccountId,
        mailbox: MailboxId,
    ) -> Result<Vec<(Uid, MessageId)>> {
        self.read(move |c| ops::uid_map(c, account, mailbox)).await
    }

    async fn messages_by_uid(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        ranges: &[(Uid, Uid)],
    ) -> Result<Vec<MessageSummary>> {
        let ranges = ranges.to_vec();
        self.read(move |c| ops::messages_by_uid(c, account, mailbox, &ranges))
            .await
    }

    async fn records_by_uid(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        ranges: &[(Uid, Uid)],
    ) -> Result<Vec<MessageRecord>> {
        let ranges = ranges.to_vec();
        self.read(move |c| ops::records_by_uid(c, account, mailbox, &ranges))
            .await
    }

    async fn first_unseen(&self, account: AccountId, mailbox: MailboxId) -> Result<Option<Uid>> {
        self.read(move |c| ops::first_unseen(c, account, mailbox))
            .await
    }

    async fn deleted(
        &self,
        account: AccountId,
        mailbox: MailboxId,
    ) -> Result<Vec<(Uid, MessageId)>> {
        self.read(move |c| ops::deleted(c, account, mailbox)).await
    }

    async fn changed_since(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        modseq: ModSeq,
    ) -> Result<Vec<MessageSummary>> {
        self.read(move |c| ops::changed_since(c, account, mailbox, modseq))
            .await
    }

    async fn records(&self, account: AccountId, ids: &[MessageId]) -> Result<Vec<MessageRecord>> {
        let ids = ids.to_vec();
        self.read(move |c| ops::records(c, account, &ids)).await
    }

    async fn light_records(
        &self,
        account: AccountId,
        mailbox: MailboxId,
    ) -> Result<Vec<MessageRecord>> {
        self.read(move |c| ops::light_records(c, account, mailbox))
            .await
    }

    async fn account_light_records(&self, account: AccountId) -> Result<Vec<MessageRecord>> {
        self.read(move |c| ops::account_light_records(c, account))
            .await
    }

    async fn light_records_by_ids(
        &self,
        account: AccountId,
        ids: &[MessageId],
    ) -> Result<Vec<MessageRecord>> {
        let ids = ids.to_vec();
        self.read(move |c| ops::light_records_by_ids(c, account, &ids))
            .await
    }

    async fn thread_messages(
        &self,
        account: AccountId,
        threads: &[ThreadId],
    ) -> Result<Vec<(ThreadId, Vec<MessageId>)>> {
        let threads = threads.to_vec();
        self.read(move |c| ops::thread_messages(c, account, &threads))
            .await
    }

    async fn mailbox_thread_counts(&self, account: AccountId) -> Result<Vec<MailboxCounts>> {
        self.read(move |c| ops::mailbox_thread_counts(c, account))
            .await
    }

    async fn quota(&self, account: AccountId) -> Result<QuotaUsage> {
        self.read(move |c| ops::quota(c, account)).await
    }

    async fn set_quota(&self, address: &Address, limit: Option<u64>) -> Result<()> {
        let key = address.key();
        self.write(move |ctx| ops::set_quota(ctx.conn, &key, limit))
            .await
    }

    async fn queue_due(&self, now: i64, limit: usize, lease: i64) -> Result<Vec<QueuedMessage>> {
        self.write(move |ctx| ops::queue_due(ctx.conn, now, limit, lease))
            .await
    }

    async fn queue_record(
        &self,
        outcomes: Vec<(u64, AttemptOutcome)>,
        dsn: Option<Delivery>,
    ) -> Result<()> {
        let dsn = dsn.map(ops::PreparedDelivery::new).transpose()?;
        self.write(move |ctx| ops::queue_record(ctx, &outcomes, dsn))
            .await
    }

    async fn queue_list(&self) -> Result<Vec<QueuedMessage>> {
        self.read(|c| ops::queue_list(c, None)).await
    }

    async fn queue_get(&self, id: u64) -> Result<Option<QueuedMessage>> {
        self.read(move |c| ops::queue_list(c, Some(id)).map(|mut v| v.pop()))
            .await
    }

    async fn queue_blob(&self, id: u64) -> Result<Vec<u8>> {
        self.read(move |c| ops::queue_blob(c, id)).await
    }

    async fn queue_retry(&self, id: Option<u64>) -> Result<u64> {
        self.write(move |ctx| ops::queue_retry(ctx, id)).await
    }

    async fn queue_delete(&self, id: u64) -> Result<()> {
        self.write(move |ctx| ops::queue_delete(ctx.conn, id)).await
    }

    async fn queue_mark_warned(&self, id: u64) -> Result<()> {
        self.write(move |ctx| {
            ctx.conn
                .execute("UPDATE queue SET warned = 1 WHERE id = ?1", [id as i64])
                .map(|_| ())
                .map_err(StoreError::from)
        })
        .await
    }

    async fn queue_release_leases(&self) -> Result<u64> {
        self.write(|ctx| {
            ctx.conn
                .execute(
                    "UPDATE queue_rcpt SET lease_until = 0 WHERE lease_until != 0",
                    [],
                )
                .map(|n| n as u64)
                .map_err(StoreError::from)
        })
        .await
    }

    async fn queue_next_due(&self) -> Result<Option<i64>> {
        self.read(|c| {
            c.query_row(
                "SELECT MIN(MAX(next_attempt, lease_until)) FROM queue_rcpt WHERE state = 0",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )
            .map_err(StoreError::from)
        })
        .await
    }

    async fn upload(
        &self,
        account: AccountId,
        data: Vec<u8>,
        content_type: &str,
    ) -> Result<UploadedBlob> {
        let content_type = content_type.to_string();
        self.write(move |ctx| ops::upload(ctx.conn, account, &data, &content_type))
            .await
    }

    async fn purge_uploads(&self, older_than: i64) -> Result<u64> {
        self.write(move |ctx| ops::purge_uploads(ctx.conn, older_than))
            .await
    }

    async fn objects(&self, account: AccountId, kind: ObjectKind) -> Result<Vec<StoredObject>> {
        self.read(move |c| ops::objects(c, account, kind)).await
    }

    async fn objects_by_id(
        &self,
        account: AccountId,
        kind: ObjectKind,
        ids: &[u64],
    ) -> Result<Vec<StoredObject>> {
        let ids = ids.to_vec();
        self.read(move |c| ops::objects_by_id(c, account, kind, &ids))
            .await
    }

    async fn set_objects(
        &self,
        account: AccountId,
        kind: ObjectKind,
        ops: Vec<ObjectOp>,
    ) -> Result<ObjectSetResult> {
        self.write(move |ctx| ops::set_objects(ctx, account, kind, ops))
            .await
    }

    async fn create_token(
        &self,
        account: AccountId,
        hash: Vec<u8>,
        name: &str,
    ) -> Result<TokenInfo> {
        let name = name.to_string();
        self.write(move |ctx| ops::create_token(ctx.conn, account, &hash, &name))
            .await
    }

    async fn token_account(&self, hash: &[u8]) -> Result<Option<TokenInfo>> {
        let hash = hash.to_vec();
        self.read(move |c| ops::token_account(c, &hash)).await
    }

    async fn touch_token(&self, id: u64, now: i64) -> Result<()> {
        self.write(move |ctx| ops::touch_token(ctx.conn, id, now))
            .await
    }

    async fn tokens(&self, account: Option<AccountId>) -> Result<Vec<TokenInfo>> {
        self.read(move |c| ops::tokens(c, account)).await
    }

    async fn delete_token(&self, id: u64) -> Result<()> {
        self.write(move |ctx| ops::delete_token(ctx.conn, id)).await
    }

    async fn vacation_should_reply(
        &self,
        account: AccountId,
        sender: &Address,
        now: i64,
        period: i64,
    ) -> Result<bool> {
        let sender = sender.key();
        self.write(move |ctx| ops::vacation_should_reply(ctx.conn, account, &sender, now, period))
            .await
    }

    async fn vacation_reset(&self, account: AccountId) -> Result<()> {
        self.write(move |ctx| ops::vacation_reset(ctx.conn, account))
            .await
    }

    async fn state(&self, account: AccountId) -> Result<ModSeq> {
        self.read(move |c| ops::state(c, account)).await
    }

    async fn kind_state(&self, account: AccountId, kind: ObjectKind) -> Result<ModSeq> {
        self.read(move |c| ops::kind_state(c, account, kind)).await
    }

    async fn changes(
        &self,
        account: AccountId,
        kind: ObjectKind,
        since: ModSeq,
        max: usize,
    ) -> Result<Changes> {
        self.read(move |c| ops::changes(c, account, kind, since, max))
            .await
    }

    async fn sts_policy(&self, domain: &str, now: i64) -> Result<Option<StsPolicy>> {
        let domain = domain.to_ascii_lowercase();
        self.read(move |c| ops::sts_policy(c, &domain, now)).await
    }

    async fn put_sts_policy(&self, domain: &str, policy: StsPolicy, now: i64) -> Result<()> {
        let domain = domain.to_ascii_lowercase();
        self.write(move |ctx| ops::put_sts_policy(ctx.conn, &domain, &policy, now))
            .await
    }

    async fn prune_change_log(&self, cutoff: i64, now: i64) -> Result<u64> {
        self.write(move |ctx| ops::mark_change_log(ctx.conn, now))
            .await?;
        let mut total = 0u64;
        loop {
            // Small transactions, so that deliveries waiting for the writer are
            // not held up behind one large delete.
            let removed = self
                .write(move |ctx| ops::prune_change_log(ctx.conn, cutoff, PRUNE_BATCH))
                .await?;
            total += removed as u64;
            if removed < PRUNE_BATCH {
                return Ok(total);
            }
        }
    }

    async fn change_log(
        &self,
        account: AccountId,
        since: ModSeq,
        limit: usize,
    ) -> Result<Vec<Change>> {
        self.read(move |c| ops::change_log(c, account, since, limit))
            .await
    }

    fn subscribe(&self, account: AccountId) -> watch::Receiver<ModSeq> {
        self.inner.notifier.subscribe(account)
    }
}
