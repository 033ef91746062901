//! Per-account concurrency limits (`maxConcurrentRequests`,
//! `maxConcurrentUpload`, RFC 8620 §2).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pochta_store::AccountId;

/// Counts what each account has in flight, up to a maximum. Accounts with
/// nothing in flight take no memory.
pub(crate) struct PerAccount {
    max: u64,
    in_flight: Mutex<HashMap<AccountId, u64>>,
}

/// One unit in flight; given back when dropped.
pub(crate) struct Permit {
    owner: Arc<PerAccount>,
    account: AccountId,
}

impl PerAccount {
    pub(crate) fn new(max: u64) -> Arc<PerAccount> {
        Arc::new(PerAccount {
            max: max.max(1),
            in_flight: Mutex::new(HashMap::new()),
        })
    }

    /// A permit, or `None` when the account is at the maximum.
    pub(crate) fn try_acquire(self: &Arc<Self>, account: AccountId) -> Option<Permit> {
        let mut map = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(account).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Permit {
            owner: self.clone(),
            account,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut map = self
            .owner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.account) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.account);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_account_and_forgets_idle_ones() {
        let limit = PerAccount::new(2);
        let a1 = limit.try_acquire(1).expect("first");
        let a2 = limit.try_acquire(1).expect("second");
        assert!(limit.try_acquire(1).is_none(), "third is over the limit");
        let b = limit.try_acquire(2).expect("another account is separate");
        drop(a1);
        let a3 = limit.try_acquire(1).expect("a slot was given back");
        drop((a2, a3, b));
        assert!(limit.in_flight.lock().expect("lock").is_empty());
    }
}
