//! [`LightCache`]: a mailbox's (or a whole account's) messages with their light
//! metadata, kept in memory and brought up to date from the change log. IMAP
//! SEARCH/SORT/THREAD and JMAP Email/query share it.

use std::collections::HashSet;
use std::sync::Arc;

use crate::{
    AccountId, MailboxId, MessageId, MessageRecord, ModSeq, ObjectKind, Result, Store, StoreError,
};

/// Change-log entries past which a [`LightCache`] is loaded again instead of
/// being brought up to date message by message.
pub const LIGHT_PATCH_LIMIT: usize = 2000;

/// The messages of one mailbox (or of a whole account) with their light
/// metadata, what [`Store::light_records`] (or [`Store::account_light_records`])
/// returns: decoding the metadata of a big mailbox costs far more than a
/// search over it (about 10 µs a message), and clients search the same
/// mailbox again and again.
///
/// [`LightCache::refresh`] brings it up to date from the change log: every
/// message the log names since the last refresh is dropped and read again, so
/// flags, arrivals, expunges and moves are all seen; after more than
/// [`LIGHT_PATCH_LIMIT`] entries the whole scope is read again. Memory: about
/// 1.5 KiB a message.
///
/// The records sit behind an [`Arc`] so that a caller can keep using a
/// snapshot ([`LightCache::snapshot`]) while another brings the cache up to
/// date (which then copies them once).
pub struct LightCache {
    account: AccountId,
    /// `None`: every mailbox of the account.
    mailbox: Option<MailboxId>,
    /// The change log has been applied up to here.
    known: ModSeq,
    /// In UID order for a mailbox, in id order for an account.
    records: Arc<Vec<MessageRecord>>,
}

impl LightCache {
    /// Reads the messages of `mailbox` (`None`: of the whole account).
    pub async fn load(
        store: &dyn Store,
        account: AccountId,
        mailbox: Option<MailboxId>,
    ) -> Result<LightCache> {
        // The state first: changes committed while the records are read are
        // applied again at the next refresh, which is harmless.
        let known = store.state(account).await?;
        let records = match mailbox {
            Some(mailbox) => store.light_records(account, mailbox).await?,
            None => store.account_light_records(account).await?,
        };
        Ok(LightCache {
            account,
            mailbox,
            known,
            records: Arc::new(records),
        })
    }

    /// Brings the records up to date with the change log.
    pub async fn refresh(&mut self, store: &dyn Store) -> Result<()> {
        let log = match store
            .change_log(self.account, self.known, LIGHT_PATCH_LIMIT + 1)
            .await
        {
            Ok(log) if log.len() <= LIGHT_PATCH_LIMIT => log,
            // Too much to patch, or no longer known (pruned): read everything again.
            Ok(_) | Err(StoreError::Pruned { .. }) => {
                *self = LightCache::load(store, self.account, self.mailbox).await?;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let changed: HashSet<MessageId> = log
            .iter()
            .filter(|c| c.kind == ObjectKind::Email)
            .map(|c| c.id)
            .collect();
        if !changed.is_empty() {
            let ids: Vec<MessageId> = changed.iter().copied().collect();
            let fresh = store.light_records_by_ids(self.account, &ids).await?;
            let mailbox = self.mailbox;
            let records = Arc::make_mut(&mut self.records);
            records.retain(|r| !changed.contains(&r.summary.id));
            records.extend(
                fresh
                    .into_iter()
                    .filter(|r| mailbox.is_none_or(|m| r.summary.mailbox_id == m)),
            );
            match mailbox {
                Some(_) => records.sort_unstable_by_key(|r| r.summary.uid),
                None => records.sort_unstable_by_key(|r| r.summary.id),
            }
        }
        if let Some(last) = log.last() {
            self.known = self.known.max(last.modseq);
        }
        Ok(())
    }

    /// The account whose messages these are.
    pub fn account(&self) -> AccountId {
        self.account
    }

    /// The mailbox whose messages these are (`None`: the whole account).
    pub fn mailbox(&self) -> Option<MailboxId> {
        self.mailbox
    }

    /// The state the records are up to date with.
    pub fn known(&self) -> ModSeq {
        self.known
    }

    /// The records as they are now, to use without holding the cache.
    pub fn snapshot(&self) -> Arc<Vec<MessageRecord>> {
        Arc::clone(&self.records)
    }
}

impl std::fmt::Debug for LightCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LightCache")
            .field("account", &self.account)
            .field("mailbox", &self.mailbox)
            .field("known", &self.known)
            .field("messages", &self.records.len())
            .finish()
    }
}

/// A mailbox of an account, or (`None`) the whole account.
type Scope = (AccountId, Option<MailboxId>);

/// One [`LightCache`] shared by every session working on the same scope
/// (IMAP sessions with the mailbox selected, JMAP requests): a user's mail
/// program often keeps several connections on one mailbox, and a copy of
/// 1.5 KiB a message for each of them is what made a 1 000-session soak grow
/// by half a gigabyte. Get one from a [`LightRegistry`].
pub struct SharedLight {
    scope: Scope,
    cache: tokio::sync::Mutex<Option<LightCache>>,
}

impl SharedLight {
    /// The scope's records, loaded on first use and otherwise brought up to
    /// date from the change log, unless `notified` (the latest state the
    /// caller heard of from the change notifier) says nothing happened since.
    /// Concurrent callers load or refresh once; the others wait for it.
    ///
    /// Hold the snapshot only for the command or request at hand: while one
    /// is held, the next refresh copies the records.
    pub async fn records(
        &self,
        store: &dyn Store,
        notified: Option<ModSeq>,
    ) -> Result<Arc<Vec<MessageRecord>>> {
        let mut guard = self.cache.lock().await;
        match guard.as_mut() {
            Some(c) if notified.is_some_and(|n| n <= c.known()) => {}
            Some(c) => c.refresh(store).await?,
            None => *guard = Some(LightCache::load(store, self.scope.0, self.scope.1).await?),
        }
        Ok(guard.as_ref().map(LightCache::snapshot).unwrap_or_default())
    }

    /// The account and mailbox (`None`: every mailbox) of the records.
    pub fn scope(&self) -> (AccountId, Option<MailboxId>) {
        self.scope
    }
}

impl std::fmt::Debug for SharedLight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLight")
            .field("scope", &self.scope)
            .finish()
    }
}

/// Hands out the [`SharedLight`] of a scope: the same one to everybody while
/// anybody holds it, dropped (memory returned) when the last holder lets go.
#[derive(Default)]
pub struct LightRegistry {
    scopes: std::sync::Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    map: std::collections::HashMap<Scope, std::sync::Weak<SharedLight>>,
    /// Entries after the last sweep of dead ones: the next sweep is due at twice that.
    swept_at: usize,
}

impl LightRegistry {
    /// An empty registry.
    pub fn new() -> LightRegistry {
        LightRegistry::default()
    }

    /// The shared cache of `mailbox` of `account` (`None`: the whole account).
    pub fn get(&self, account: AccountId, mailbox: Option<MailboxId>) -> Arc<SharedLight> {
        let scope = (account, mailbox);
        let mut r = self.scopes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(live) = r.map.get(&scope).and_then(std::sync::Weak::upgrade) {
            return live;
        }
        if r.map.len() >= 2 * r.swept_at.max(32) {
            r.map.retain(|_, w| w.strong_count() > 0);
            r.swept_at = r.map.len();
        }
        let fresh = Arc::new(SharedLight {
            scope,
            cache: tokio::sync::Mutex::new(None),
        });
        r.map.insert(scope, Arc::downgrade(&fresh));
        fresh
    }

    /// Scopes with a live cache (for tests and diagnostics).
    pub fn live(&self) -> usize {
        let r = self.scopes.lock().unwrap_or_else(|p| p.into_inner());
        r.map.values().filter(|w| w.strong_count() > 0).count()
    }
}

impl std::fmt::Debug for LightRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LightRegistry")
            .field("live", &self.live())
            .finish()
    }
}
