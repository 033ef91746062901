//! Logins: password hashes, credential checks, and the throttle against guessing.
//!
//! SMTP AUTH, POP3, IMAP and JMAP all log users in through one [`Authenticator`],
//! so a password guesser meets the same limits whichever protocol it tries, and
//! the rules (argon2id, constant work for unknown users, delays, lockouts) live in
//! one place.

#![forbid(unsafe_code)]

mod hasher;
mod throttle;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use pochta_addr::{Address, Domain, Secret};
use pochta_sasl::Credentials;
use pochta_store::{Account, Store};
use ring::hmac;

pub use throttle::{LoginThrottle, ThrottleConfig, Verdict};

/// Why a login did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong login name or password (the two are never told apart).
    #[error("invalid credentials")]
    Failed,
    /// Too many failures from this client or for this user; try again later.
    #[error("too many failed logins; try again in {} s", retry_after.as_secs())]
    Throttled {
        /// How long the lockout lasts from now.
        retry_after: Duration,
    },
    /// The check itself could not be done (store unavailable); the client may retry.
    #[error("authentication temporarily unavailable: {0}")]
    Temporary(String),
}

/// Hashes a password for storage: argon2id with the crate's default (OWASP) parameters
/// and a random salt, as a PHC string.
pub fn hash_password(password: &Secret) -> Result<String, AuthError> {
    Argon2::default()
        .hash_password(password.expose().as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Temporary(format!("cannot hash password: {e}")))
}

/// Checks a password against a stored PHC hash. Any malformed hash fails closed.
pub fn verify_password(hash: &str, password: &Secret) -> bool {
    Argon2::default()
        .verify_password(password.expose().as_bytes(), hash)
        .is_ok()
}

/// How long a verified password is remembered (Dovecot's auth_cache_ttl default).
const CACHE_TTL: Duration = Duration::from_secs(3600);
/// Most remembered logins; beyond this the oldest are forgotten.
const CACHE_MAX: usize = 10_000;

/// A verified login: the stored hash it was checked against and an HMAC of the
/// password under a per-process key (never the password itself).
struct Verified {
    phc: String,
    mac: hmac::Tag,
    at: Instant,
}

/// Checks logins against the store, throttled and with bounded CPU/memory use.
pub struct Authenticator {
    store: Arc<dyn Store>,
    throttle: LoginThrottle,
    /// argon2 runs on a few dedicated threads with reused memory (see `hasher`):
    /// a login flood cannot exhaust memory or starve other work.
    hasher: hasher::Hasher,
    /// Logins verified recently, so that clients that poll (POP3 every minute,
    /// IMAP reconnecting) do not cost an argon2 check each time. An entry is
    /// valid only while the stored hash is unchanged, so a password change (or
    /// a deleted account) invalidates it at once.
    cache: Mutex<HashMap<String, Verified>>,
    cache_key: hmac::Key,
    /// Verified against when the user does not exist, so that the answer takes as
    /// long as for a real user (no user enumeration by timing).
    dummy_hash: String,
    default_domain: Option<Domain>,
}

impl Authenticator {
    /// An authenticator over `store`. Logins without `@domain` get `default_domain`.
    pub fn new(
        store: Arc<dyn Store>,
        throttle: ThrottleConfig,
        default_domain: Option<Domain>,
    ) -> Result<Authenticator, AuthError> {
        let parallel = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .max(2);
        let rng = ring::rand::SystemRandom::new();
        let cache_key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .map_err(|_| AuthError::Temporary("no randomness for the login cache key".into()))?;
        Ok(Authenticator {
            store,
            throttle: LoginThrottle::new(throttle),
            hasher: hasher::Hasher::new(parallel)
                .map_err(|e| AuthError::Temporary(format!("cannot start hashing threads: {e}")))?,
            cache: Mutex::new(HashMap::new()),
            cache_key,
            dummy_hash: hash_password(&Secret::new("pochta-dummy-password"))?,
            default_domain,
        })
    }

    /// The throttle, for protocols that want to record other failures (e.g. bad SASL).
    pub fn throttle(&self) -> &LoginThrottle {
        &self.throttle
    }

    /// Logs in with credentials from a SASL exchange (or USER/PASS, LOGIN), logging
    /// the outcome. A request to act as another identity (SASL authzid) fails:
    /// proxy authorization is not offered.
    pub async fn login(&self, ip: IpAddr, creds: &Credentials) -> Result<Account, AuthError> {
        if creds.authzid.is_some() {
            self.throttle
                .record_failure(ip, &creds.login.trim().to_lowercase());
            // `?`: a login name is the client's text and may hold line breaks
            // that would forge log lines; Debug escapes them.
            tracing::info!(login = ?creds.login, "authentication failed: proxy authorization is not offered");
            return Err(AuthError::Failed);
        }
        let result = self.authenticate(ip, &creds.login, &creds.password).await;
        match &result {
            Ok(account) => tracing::info!(user = %account.address.key(), "authenticated"),
            Err(AuthError::Failed) => tracing::info!(login = ?creds.login, "authentication failed"),
            Err(AuthError::Throttled { .. }) => {}
            Err(AuthError::Temporary(e)) => {
                tracing::warn!(error = %e, "authentication unavailable")
            }
        }
        result
    }

    /// Logs `login` in from `ip`. Delays failures that follow earlier failures and
    /// refuses outright during a lockout, without looking at the password.
    pub async fn authenticate(
        &self,
        ip: IpAddr,
        login: &str,
        password: &Secret,
    ) -> Result<Account, AuthError> {
        let user_key = login.trim().to_lowercase();
        let delay = match self.throttle.check(ip, &user_key) {
            Verdict::Allow { delay } => delay,
            Verdict::Locked { retry_after } => {
                tracing::warn!(%ip, user = ?user_key, "login refused: locked out");
                return Err(AuthError::Throttled { retry_after });
            }
        };
        let result = self.check(login, password).await;
        match &result {
            Ok(account) => self.throttle.record_success(ip, &account.address.key()),
            Err(AuthError::Failed) => {
                self.throttle.record_failure(ip, &user_key);
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
            }
            Err(_) => {}
        }
        result
    }

    async fn check(&self, login: &str, password: &Secret) -> Result<Account, AuthError> {
        let address = self.login_address(login);
        let account = match &address {
            Some(a) => self
                .store
                .account(a)
                .await
                .map_err(|e| AuthError::Temporary(e.to_string()))?,
            None => None,
        };
        let Some(account) = account else {
            // Unknown user: the same work as a real check, so timing tells nothing.
            self.hasher
                .verify(self.dummy_hash.clone(), password.clone())
                .await;
            return Err(AuthError::Failed);
        };
        let key = account.address.key();
        if self.cached(&key, &account.password_hash, password) {
            return Ok(account);
        }
        if !self
            .hasher
            .verify(account.password_hash.clone(), password.clone())
            .await
        {
            return Err(AuthError::Failed);
        }
        self.remember(key, &account.password_hash, password);
        Ok(account)
    }

    fn cached(&self, key: &str, phc: &str, password: &Secret) -> bool {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match cache.get(key) {
            Some(v) if v.phc == phc && v.at.elapsed() < CACHE_TTL => hmac::verify(
                &self.cache_key,
                password.expose().as_bytes(),
                v.mac.as_ref(),
            )
            .is_ok(),
            _ => false,
        }
    }

    fn remember(&self, key: String, phc: &str, password: &Secret) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, v| v.at.elapsed() < CACHE_TTL);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Verified {
                phc: phc.to_string(),
                mac: hmac::sign(&self.cache_key, password.expose().as_bytes()),
                at: Instant::now(),
            },
        );
    }

    fn login_address(&self, login: &str) -> Option<Address> {
        let login = login.trim();
        if login.contains('@') {
            Address::parse(login).ok()
        } else {
            let domain = self.default_domain.clone()?;
            Address::new(login, domain).ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pochta_store::{NewAccount, SqliteStore};

    #[test]
    fn hashes_verify_and_are_salted() {
        let pw = Secret::new("correct horse");
        let h1 = hash_password(&pw).unwrap();
        let h2 = hash_password(&pw).unwrap();
        assert!(h1.starts_with("$argon2id$"));
        assert_ne!(h1, h2);
        assert!(verify_password(&h1, &pw));
        assert!(!verify_password(&h1, &Secret::new("wrong")));
        assert!(!verify_password("not a hash", &pw));
    }

    async fn setup() -> (tempfile::TempDir, Authenticator) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        store
            .create_account(NewAccount {
                address: Address::parse("alice@example.com").unwrap(),
                password_hash: hash_password(&Secret::new("pw")).unwrap(),
                quota: None,
            })
            .await
            .unwrap();
        let cfg = ThrottleConfig {
            delay_after: 2,
            lockout_after: 4,
            lockout: Duration::from_secs(60),
            window: Duration::from_secs(60),
            max_delay: Duration::from_millis(10),
        };
        let auth = Authenticator::new(
            Arc::new(store),
            cfg,
            Some(Domain::parse("example.com").unwrap()),
        )
        .unwrap();
        (dir, auth)
    }

    #[tokio::test]
    async fn logins_succeed_fail_and_lock_out() {
        let (_dir, auth) = setup().await;
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let ok = auth
            .authenticate(ip, "Alice@Example.com", &Secret::new("pw"))
            .await;
        assert_eq!(ok.unwrap().address.key(), "alice@example.com");
        let bare = auth.authenticate(ip, "alice", &Secret::new("pw")).await;
        assert!(bare.is_ok(), "login without domain uses the default domain");
        for _ in 0..4 {
            let r = auth
                .authenticate(ip, "alice@example.com", &Secret::new("no"))
                .await;
            assert!(matches!(r, Err(AuthError::Failed)));
        }
        let r = auth
            .authenticate(ip, "alice@example.com", &Secret::new("pw"))
            .await;
        assert!(
            matches!(r, Err(AuthError::Throttled { .. })),
            "locked out even with the right password"
        );
        let other_ip: IpAddr = "192.0.2.2".parse().unwrap();
        let r = auth
            .authenticate(other_ip, "alice@example.com", &Secret::new("pw"))
            .await;
        assert!(
            matches!(r, Err(AuthError::Throttled { .. })),
            "the user is locked from every IP"
        );
    }

    #[tokio::test]
    async fn remembered_logins_end_with_a_password_change() {
        let (_dir, auth) = setup().await;
        let ip: IpAddr = "192.0.2.5".parse().unwrap();
        assert!(
            auth.authenticate(ip, "alice@example.com", &Secret::new("pw"))
                .await
                .is_ok()
        );
        let key = "alice@example.com";
        let phc = auth
            .store
            .account(&Address::parse(key).unwrap())
            .await
            .unwrap()
            .unwrap()
            .password_hash;
        assert!(auth.cached(key, &phc, &Secret::new("pw")), "remembered");
        assert!(
            !auth.cached(key, &phc, &Secret::new("other")),
            "only for the same password"
        );
        // A new password: the remembered one no longer counts.
        auth.store
            .set_password(
                &Address::parse(key).unwrap(),
                hash_password(&Secret::new("new")).unwrap(),
            )
            .await
            .unwrap();
        let r = auth.authenticate(ip, key, &Secret::new("pw")).await;
        assert!(
            matches!(r, Err(AuthError::Failed)),
            "the old password fails at once"
        );
        assert!(
            auth.authenticate(ip, key, &Secret::new("new"))
                .await
                .is_ok()
        );
    }

    /// No user enumeration by timing: an unknown user, a login that is not
    /// even an address, and a wrong password each cost exactly one argon2
    /// verification, like a right password the first time. (Counted, not
    /// timed: a timing test would be flaky on a shared machine.)
    #[tokio::test]
    async fn every_failed_login_costs_one_argon2_verification() {
        let (_dir, auth) = setup().await;
        let before = auth.hasher.requested();
        for (i, (login, password)) in [
            ("nobody@example.com", "pw"),
            ("nobody@elsewhere.example", "pw"),
            ("not an address@@", "pw"),
            ("nobody", "pw"),
            ("alice@example.com", "wrong"),
        ]
        .into_iter()
        .enumerate()
        {
            // One client each: the throttle (lockout after 4) stays out of it.
            let ip = IpAddr::from([192, 0, 2, 10 + i as u8]);
            let n = auth.hasher.requested();
            let r = auth.authenticate(ip, login, &Secret::new(password)).await;
            assert!(matches!(r, Err(AuthError::Failed)), "{login}");
            assert_eq!(auth.hasher.requested(), n + 1, "{login}: no argon2 check");
        }
        let ip = IpAddr::from([192, 0, 2, 20]);
        assert!(
            auth.authenticate(ip, "alice@example.com", &Secret::new("pw"))
                .await
                .is_ok()
        );
        assert_eq!(auth.hasher.requested(), before + 6);
        // The dummy hash has the same (default) argon2 parameters as real ones.
        let real = auth
            .store
            .account(&Address::parse("alice@example.com").unwrap())
            .await
            .unwrap()
            .unwrap()
            .password_hash;
        let params = |phc: &str| phc.rsplitn(3, '$').nth(2).unwrap().to_string();
        assert_eq!(params(&auth.dummy_hash), params(&real));
    }

    #[tokio::test]
    async fn unknown_users_fail_like_wrong_passwords() {
        let (_dir, auth) = setup().await;
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let r = auth
            .authenticate(ip, "nobody@example.com", &Secret::new("pw"))
            .await;
        assert!(matches!(r, Err(AuthError::Failed)));
        let r = auth
            .authenticate(ip, "not an address@@", &Secret::new("pw"))
            .await;
        assert!(matches!(r, Err(AuthError::Failed)));
    }
}
