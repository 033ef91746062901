//! Change notifications: how an IMAP IDLE session or a JMAP push stream learns,
//! within a moment, that an account changed.
//!
//! The store publishes the account's new state (its change counter) after every
//! committed write. Subscribers hold a `watch` receiver, so a slow subscriber only
//! ever sees the latest state and can never make the publisher wait or buffer.
//! Today the notifier is in-process; with several `pochta serve` nodes on one
//! PostgreSQL database a notifier that relays through the database (LISTEN/NOTIFY)
//! implements the same trait and nothing above it changes.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

use crate::{AccountId, ModSeq};

/// Publishes and subscribes to per-account state changes.
pub trait ChangeNotifier: Send + Sync {
    /// Receives the account's latest state each time it changes.
    fn subscribe(&self, account: AccountId) -> watch::Receiver<ModSeq>;
    /// Announces that `account` reached `state`. Never blocks.
    fn publish(&self, account: AccountId, state: ModSeq);
}

/// The in-process notifier: one `watch` channel per account with live subscribers.
#[derive(Default)]
pub struct LocalNotifier {
    channels: Mutex<HashMap<AccountId, watch::Sender<ModSeq>>>,
}

impl LocalNotifier {
    /// Creates a notifier with no subscribers.
    pub fn new() -> Self {
        Self::default()
    }
}

impl ChangeNotifier for LocalNotifier {
    fn subscribe(&self, account: AccountId) -> watch::Receiver<ModSeq> {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(account)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    fn publish(&self, account: AccountId, state: ModSeq) {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = map.get(&account) {
            if tx.receiver_count() == 0 {
                // Nobody listens any more: drop the channel so the map stays small.
                map.remove(&account);
            } else {
                tx.send_replace(state);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_see_the_latest_state() {
        let n = LocalNotifier::new();
        let mut rx = n.subscribe(7);
        n.publish(7, 3);
        n.publish(7, 5);
        n.publish(8, 9);
        rx.changed().await.unwrap();
        assert_eq!(*rx.borrow_and_update(), 5);
    }

    #[test]
    fn channels_without_subscribers_are_dropped() {
        let n = LocalNotifier::new();
        drop(n.subscribe(1));
        n.publish(1, 1);
        assert!(n.channels.lock().unwrap().is_empty());
    }
}
