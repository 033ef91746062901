//! Failed-login accounting per client IP and per login name.
//!
//! After `delay_after` failures within `window`, each further failure is answered
//! only after a growing delay; after `lockout_after` failures the IP or user is
//! refused outright for `lockout`, without the password being checked (so a
//! guesser learns nothing and costs no argon2 work). A success clears the user's
//! record. Entries are pruned as they age, so memory stays bounded.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Throttle settings (mirrors the config file's `[auth]` section).
#[derive(Debug, Clone)]
pub struct ThrottleConfig {
    /// Failures after which further attempts are delayed.
    pub delay_after: u32,
    /// Failures after which the IP or user is locked out.
    pub lockout_after: u32,
    /// How long a lockout lasts.
    pub lockout: Duration,
    /// Failures older than this are forgotten.
    pub window: Duration,
    /// The longest delay before a failure is answered.
    pub max_delay: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            delay_after: 3,
            lockout_after: 10,
            lockout: Duration::from_secs(15 * 60),
            window: Duration::from_secs(15 * 60),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// The throttle's answer before a login is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Check the credentials; if they are wrong, wait `delay` before answering.
    Allow {
        /// Delay to apply to a failure.
        delay: Duration,
    },
    /// Refuse without checking.
    Locked {
        /// Time left in the lockout.
        retry_after: Duration,
    },
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    first: Instant,
    locked_until: Option<Instant>,
}

/// Entries kept per map before old ones are pruned.
const PRUNE_AT: usize = 10_000;

/// Counts failed logins per IP and per user.
pub struct LoginThrottle {
    cfg: ThrottleConfig,
    by_ip: Mutex<HashMap<IpAddr, Entry>>,
    by_user: Mutex<HashMap<String, Entry>>,
}

impl LoginThrottle {
    /// A throttle with these settings.
    pub fn new(cfg: ThrottleConfig) -> LoginThrottle {
        LoginThrottle {
            cfg,
            by_ip: Mutex::new(HashMap::new()),
            by_user: Mutex::new(HashMap::new()),
        }
    }

    /// What to do with a login attempt by `user` from `ip`.
    pub fn check(&self, ip: IpAddr, user: &str) -> Verdict {
        let now = Instant::now();
        let a = self.verdict(&self.by_ip, &ip, now);
        let b = self.verdict(&self.by_user, &user.to_string(), now);
        match (a, b) {
            (Verdict::Locked { retry_after: x }, Verdict::Locked { retry_after: y }) => {
                Verdict::Locked {
                    retry_after: x.max(y),
                }
            }
            (l @ Verdict::Locked { .. }, _) | (_, l @ Verdict::Locked { .. }) => l,
            (Verdict::Allow { delay: x }, Verdict::Allow { delay: y }) => {
                Verdict::Allow { delay: x.max(y) }
            }
        }
    }

    /// Records a failed login.
    pub fn record_failure(&self, ip: IpAddr, user: &str) {
        let now = Instant::now();
        self.bump(&self.by_ip, ip, now);
        self.bump(&self.by_user, user.to_string(), now);
    }

    /// Records a successful login: the user's count starts over (the IP's does not,
    /// so one valid account cannot launder guesses against others).
    pub fn record_success(&self, _ip: IpAddr, user: &str) {
        self.by_user
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(user);
    }

    fn verdict<K: Eq + Hash>(
        &self,
        map: &Mutex<HashMap<K, Entry>>,
        key: &K,
        now: Instant,
    ) -> Verdict {
        let map = map.lock().unwrap_or_else(|p| p.into_inner());
        let Some(e) = map.get(key) else {
            return Verdict::Allow {
                delay: Duration::ZERO,
            };
        };
        if let Some(until) = e.locked_until
            && until > now
        {
            return Verdict::Locked {
                retry_after: until - now,
            };
        }
        if now.duration_since(e.first) > self.cfg.window || e.failures < self.cfg.delay_after {
            return Verdict::Allow {
                delay: Duration::ZERO,
            };
        }
        let steps = e.failures + 1 - self.cfg.delay_after;
        Verdict::Allow {
            delay: (Duration::from_secs(1) * steps).min(self.cfg.max_delay),
        }
    }

    fn bump<K: Eq + Hash>(&self, map: &Mutex<HashMap<K, Entry>>, key: K, now: Instant) {
        let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= PRUNE_AT {
            let window = self.cfg.window.max(self.cfg.lockout);
            map.retain(|_, e| {
                now.duration_since(e.first) <= window || e.locked_until.is_some_and(|u| u > now)
            });
        }
        let e = map.entry(key).or_insert(Entry {
            failures: 0,
            first: now,
            locked_until: None,
        });
        let expired_lock = e.locked_until.is_some_and(|u| u <= now);
        if now.duration_since(e.first) > self.cfg.window || expired_lock {
            *e = Entry {
                failures: 0,
                first: now,
                locked_until: None,
            };
        }
        e.failures += 1;
        if e.failures >= self.cfg.lockout_after {
            e.locked_until = Some(now + self.cfg.lockout);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ThrottleConfig {
        ThrottleConfig {
            delay_after: 2,
            lockout_after: 4,
            lockout: Duration::from_secs(60),
            window: Duration::from_secs(60),
            max_delay: Duration::from_secs(3),
        }
    }

    #[test]
    fn delays_grow_then_lock() {
        let t = LoginThrottle::new(cfg());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            t.check(ip, "u"),
            Verdict::Allow {
                delay: Duration::ZERO
            }
        );
        t.record_failure(ip, "u");
        assert_eq!(
            t.check(ip, "u"),
            Verdict::Allow {
                delay: Duration::ZERO
            }
        );
        t.record_failure(ip, "u");
        assert_eq!(
            t.check(ip, "u"),
            Verdict::Allow {
                delay: Duration::from_secs(1)
            }
        );
        t.record_failure(ip, "u");
        assert_eq!(
            t.check(ip, "u"),
            Verdict::Allow {
                delay: Duration::from_secs(2)
            }
        );
        t.record_failure(ip, "u");
        assert!(matches!(t.check(ip, "u"), Verdict::Locked { .. }));
        // Another user from the same IP is locked too; the same user from elsewhere too.
        assert!(matches!(t.check(ip, "v"), Verdict::Locked { .. }));
        assert!(matches!(
            t.check("10.0.0.2".parse().unwrap(), "u"),
            Verdict::Locked { .. }
        ));
        // An unrelated user from an unrelated IP is not.
        assert_eq!(
            t.check("10.0.0.3".parse().unwrap(), "w"),
            Verdict::Allow {
                delay: Duration::ZERO
            }
        );
    }

    #[test]
    fn success_clears_the_user() {
        let t = LoginThrottle::new(cfg());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        t.record_failure(ip, "u");
        t.record_failure(ip, "u");
        t.record_success(ip, "u");
        let other: IpAddr = "10.0.0.9".parse().unwrap();
        assert_eq!(
            t.check(other, "u"),
            Verdict::Allow {
                delay: Duration::ZERO
            }
        );
    }

    #[test]
    fn maps_stay_bounded() {
        let t = LoginThrottle::new(ThrottleConfig {
            window: Duration::ZERO,
            lockout: Duration::ZERO,
            ..cfg()
        });
        for i in 0..PRUNE_AT as u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            t.record_failure(ip, &format!("user{i}"));
        }
        std::thread::sleep(Duration::from_millis(2));
        t.record_failure("10.9.9.9".parse().unwrap(), "last");
        assert_eq!(
            t.by_ip.lock().unwrap().len(),
            1,
            "expired entries are pruned"
        );
    }
}
