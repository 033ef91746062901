//! Connection limits: a total over all listeners and a per-client-IP count, so one
//! host cannot take every slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    /// The server holds its maximum number of connections.
    #[error("too many connections")]
    Total,
    /// This client address holds its maximum.
    #[error("too many connections from this address")]
    PerIp,
}

#[derive(Default)]
struct Counts {
    total: u32,
    per_ip: HashMap<IpAddr, u32>,
}

/// Counts open connections.
pub struct ConnLimiter {
    max_total: u32,
    max_per_ip: u32,
    counts: Mutex<Counts>,
}

impl ConnLimiter {
    /// A limiter allowing `max_total` connections, `max_per_ip` from one address.
    pub fn new(max_total: u32, max_per_ip: u32) -> Arc<ConnLimiter> {
        Arc::new(ConnLimiter {
            max_total,
            max_per_ip,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// Takes a slot for a connection from `ip`; the slot is freed when the guard drops.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnGuard, LimitExceeded> {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if c.total >= self.max_total {
            return Err(LimitExceeded::Total);
        }
        let n = c.per_ip.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return Err(LimitExceeded::PerIp);
        }
        *n += 1;
        c.total += 1;
        Ok(ConnGuard {
            limiter: self.clone(),
            ip,
        })
    }

    /// Open connections now.
    pub fn open(&self) -> u32 {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

/// A held connection slot.
pub struct ConnGuard {
    limiter: Arc<ConnLimiter>,
    ip: IpAddr,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut c = self
            .limiter
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_ip_and_total() {
        let l = ConnLimiter::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let g1 = l.acquire(a).unwrap();
        let _g2 = l.acquire(a).unwrap();
        assert_eq!(l.acquire(a).err(), Some(LimitExceeded::PerIp));
        let _g3 = l.acquire(b).unwrap();
        assert_eq!(l.acquire(b).err(), Some(LimitExceeded::Total));
        drop(g1);
        let _g4 = l.acquire(a).unwrap();
        assert_eq!(l.open(), 3);
    }

    #[test]
    fn guards_release_everything() {
        let l = ConnLimiter::new(10, 10);
        let ip: IpAddr = "::1".parse().unwrap();
        let gs: Vec<_> = (0..5).map(|_| l.acquire(ip).unwrap()).collect();
        drop(gs);
        assert_eq!(l.open(), 0);
        assert!(l.counts.lock().unwrap().per_ip.is_empty());
    }
}
