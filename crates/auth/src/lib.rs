//! Logins: password hashes, credential checks, and the throttle against guessing.
//!
//! SMTP AUTH, POP3, IMAP and JMAP all log users in through one [`Authenticator`],
//! so a password guesser meets the same limits whichever protocol it tries, and
//! the rules (argon2id, constant work for unknown users, delays, lockouts) live in
//! one place.

#![forbid(unsafe_code)]

mod throttle;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use pochta_addr::{Address, Domain, Secret};
use pochta_sasl::Credentials;
use pochta_store::{Account, Store};
use tokio::sync::Semaphore;

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

/// Checks logins against the store, throttled and with bounded CPU/memory use.
pub struct Authenticator {
    store: Arc<dyn Store>,
    throttle: LoginThrottle,
    /// argon2 needs ~19 MiB and tens of ms per check; this bounds how many run at once
    /// so a login flood cannot exhaust memory or starve other work.
    hashing: Semaphore,
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
        Ok(Authenticator {
            store,
            throttle: LoginThrottle::new(throttle),
            hashing: Semaphore::new(parallel),
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
            tracing::info!(login = %creds.login, "authentication failed: proxy authorization is not offered");
            return Err(AuthError::Failed);
        }
        let result = self.authenticate(ip, &creds.login, &creds.password).await;
        match &result {
            Ok(account) => tracing::info!(user = %account.address.key(), "authenticated"),
            Err(AuthError::Failed) => tracing::info!(login = %creds.login, "authentication failed"),
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
                tracing::warn!(%ip, user = %user_key, "login refused: locked out");
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
        let hash = account
            .as_ref()
            .map(|a| a.password_hash.clone())
            .unwrap_or_else(|| self.dummy_hash.clone());
        let permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| AuthError::Temporary("shutting down".into()))?;
        let password = password.clone();
        let ok = tokio::task::spawn_blocking(move || verify_password(&hash, &password))
            .await
            .map_err(|e| AuthError::Temporary(e.to_string()))?;
        drop(permit);
        match account {
            Some(a) if ok => Ok(a),
            _ => Err(AuthError::Failed),
        }
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
