//! The light metadata Email/query searches and sorts on, kept between requests.
//!
//! Every Email/query reads its candidates from here: a header condition
//! (`from`, `subject`, `text`…) or a header sort needs the light metadata of
//! every candidate, reading and decoding it for a 100 000-message mailbox
//! takes seconds, and even a plain "newest first" in a mailbox that size
//! costs more from the store than from a cache kept up to date, while
//! clients run their queries again and again. [`LightCaches`] keeps a [`SharedLight`] (the same one IMAP
//! SEARCH keeps per selected mailbox) for the few scopes (a mailbox, or a
//! whole account) queried last, shared by all requests and brought up to
//! date from the change log at each use.
//!
//! Bounded: at most [`MAX_SCOPES`] scopes and, beyond the most recently used
//! one, [`MAX_MESSAGES`] messages in all (about 1.5 KiB each); the least
//! recently used go first. Each scope has its own async lock, so concurrent
//! requests on one scope load it once, and requests on others do not wait.

use std::sync::{Arc, Mutex as SyncMutex};

use pochta_store::{
    AccountId, LightRegistry, MailboxId, MessageRecord, Result, SharedLight, Store,
};

/// Scopes kept at most.
pub const MAX_SCOPES: usize = 8;

/// Messages kept at most over all scopes but the most recently used.
pub const MAX_MESSAGES: usize = 300_000;

/// A mailbox of an account, or (`None`) the whole account.
type Scope = (AccountId, Option<MailboxId>);

struct Slot {
    scope: Scope,
    cache: Arc<SharedLight>,
    /// Messages in the cache after its last use.
    messages: usize,
}

/// The light-metadata caches of the JMAP service; see the module documentation.
pub struct LightCaches {
    /// Most recently used last.
    slots: SyncMutex<Vec<Slot>>,
    /// Where the caches come from: the same one as IMAP's, so that a mailbox
    /// both search is kept once.
    registry: Arc<LightRegistry>,
}

impl std::fmt::Debug for LightCaches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let slots = self.slots.lock().map(|s| s.len()).unwrap_or_default();
        f.debug_struct("LightCaches")
            .field("scopes", &slots)
            .finish()
    }
}

impl LightCaches {
    /// Caches taken from `registry`.
    pub fn new(registry: Arc<LightRegistry>) -> LightCaches {
        LightCaches {
            slots: SyncMutex::default(),
            registry,
        }
    }

    /// The messages of `mailbox` (`None`: of the whole account) with their
    /// light metadata, up to date with the change log: what
    /// [`Store::light_records`] (or [`Store::account_light_records`]) returns,
    /// in the same order, without reading it again when it was read before.
    pub async fn records(
        &self,
        store: &dyn Store,
        account: AccountId,
        mailbox: Option<MailboxId>,
    ) -> Result<Arc<Vec<MessageRecord>>> {
        let scope = (account, mailbox);
        let cache = self.slot(scope);
        let snapshot = cache.records(store, None).await?;
        self.used(scope, &cache, snapshot.len());
        Ok(snapshot)
    }

    /// The slot of `scope`, made the most recently used (created if needed).
    fn slot(&self, scope: Scope) -> Arc<SharedLight> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let slot = match slots.iter().position(|s| s.scope == scope) {
            Some(i) => slots.remove(i),
            None => Slot {
                scope,
                cache: self.registry.get(scope.0, scope.1),
                messages: 0,
            },
        };
        let cache = Arc::clone(&slot.cache);
        slots.push(slot);
        cache
    }

    /// Records the size of `scope`'s cache after a use and drops the least
    /// recently used scopes beyond the bounds.
    fn used(&self, scope: Scope, cache: &Arc<SharedLight>, messages: usize) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots
            .iter_mut()
            .find(|s| s.scope == scope && Arc::ptr_eq(&s.cache, cache))
        {
            slot.messages = messages;
        }
        // The most recently used slot (the last) always stays.
        while slots.len() > MAX_SCOPES
            || (slots.len() > 1
                && slots
                    .iter()
                    .rev()
                    .skip(1)
                    .map(|s| s.messages)
                    .sum::<usize>()
                    > MAX_MESSAGES)
        {
            slots.remove(0);
        }
    }

    /// How many scopes are cached (for tests).
    pub fn scopes(&self) -> usize {
        self.slots.lock().map(|s| s.len()).unwrap_or_default()
    }
}
