//! MTA-STS (RFC 8461): a domain's published demand that mail to it go over TLS,
//! with a verified certificate, to the MX hosts it names.
//!
//! The TXT record `_mta-sts.<domain>` says that a policy exists and gives its
//! id (looked up and parsed by mail-auth, [`pochta_msgauth::Dns::mta_sts_id`]).
//! The policy itself is fetched over verified HTTPS from
//! `https://mta-sts.<domain>/.well-known/mta-sts.txt` (hyper, no redirects, a
//! deadline and a size cap), parsed by [`pochta_proto_smtp::mta_sts`], and
//! cached for its `max_age`, fetched again when the id changes.
//!
//! Policies are kept in memory and, given a store
//! ([`crate::SmtpTransport::with_policy_store`]), in the store, so that a
//! restart does not open a window for a downgrade (§10.3).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::{Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub use pochta_proto_smtp::mta_sts::{MAX_AGE, Mode, Policy, parse_policy};

/// The largest policy file read (RFC 8461 §3.3 suggests a limit of 64 KiB).
pub const MAX_POLICY: usize = 64 * 1024;

/// Policies cached at most; beyond this the one expiring first is dropped.
const CACHE_ENTRIES: usize = 10_000;

/// Policies by domain, each with the id it was fetched under.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    map: Mutex<HashMap<String, Cached>>,
}

#[derive(Debug, Clone)]
struct Cached {
    id: String,
    policy: Arc<Policy>,
    expires: Instant,
}

impl Cache {
    /// The unexpired policy of `domain` and its id.
    pub fn get(&self, domain: &str) -> Option<(String, Arc<Policy>)> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(domain)
            .filter(|c| c.expires > Instant::now())
            .map(|c| (c.id.clone(), c.policy.clone()))
    }

    /// Remembers `policy` as `domain`'s for `ttl` (its `max_age`, or what is
    /// left of it).
    pub fn put(&self, domain: &str, id: String, policy: Arc<Policy>, ttl: Duration) {
        let now = Instant::now();
        let expires = now + ttl;
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CACHE_ENTRIES && !map.contains_key(domain) {
            map.retain(|_, c| c.expires > now);
            if map.len() >= CACHE_ENTRIES
                && let Some(first) = map
                    .iter()
                    .min_by_key(|(_, c)| c.expires)
                    .map(|(d, _)| d.clone())
            {
                map.remove(&first);
            }
        }
        map.insert(
            domain.to_string(),
            Cached {
                id,
                policy,
                expires,
            },
        );
    }
}

/// Fetches and parses the policy of `domain` from `addr` (an address of
/// `mta-sts.<domain>`), verifying the certificate for that name, within `limit`;
/// the policy and its text.
pub(crate) async fn fetch(
    domain: &str,
    addr: SocketAddr,
    connector: &TlsConnector,
    limit: Duration,
) -> Result<(Policy, String), String> {
    let host = format!("mta-sts.{domain}");
    let work = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {host} [{}]: {e}", addr.ip()))?;
        let name = ServerName::try_from(host.clone()).map_err(|e| format!("{host}: {e}"))?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {host} failed: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP with {host} failed: {e}"))?;
        let task = tokio::spawn(async move {
            // Its errors reach the request waiting on it.
            let _ = connection.await;
        });
        let request = Request::get("/.well-known/mta-sts.txt")
            .header(header::HOST, host.as_str())
            .header(
                header::USER_AGENT,
                concat!("pochta/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let result = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("HTTP with {host} failed: {e}"))?;
            // §3.3: no redirects; anything but 200 is no policy.
            if response.status() != StatusCode::OK {
                return Err(format!("{host} answered {}", response.status()));
            }
            let plain = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| {
                    t.split(';')
                        .next()
                        .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/plain"))
                });
            if !plain {
                return Err(format!(
                    "{host} sent the policy as something else than text/plain"
                ));
            }
            let body = Limited::new(response.into_body(), MAX_POLICY)
                .collect()
                .await
                .map_err(|e| format!("reading the policy from {host}: {e}"))?
                .to_bytes();
            let text = std::str::from_utf8(&body)
                .map_err(|_| format!("the policy from {host} is not UTF-8"))?;
            let policy = parse_policy(text).map_err(|e| format!("the policy from {host}: {e}"))?;
            Ok((policy, text.to_string()))
        }
        .await;
        task.abort();
        result
    };
    match tokio::time::timeout(limit, work).await {
        Ok(r) => r,
        Err(_) => Err(format!("fetching the policy from {host} timed out")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_a_policy_for_its_max_age() {
        let cache = Cache::default();
        let p = |max_age| {
            Arc::new(Policy {
                mode: Mode::Enforce,
                mx: vec!["a.test".into()],
                max_age,
            })
        };
        cache.put("a.test", "1".into(), p(3600), Duration::from_secs(3600));
        cache.put("b.test", "1".into(), p(0), Duration::ZERO);
        assert_eq!(cache.get("a.test").unwrap().0, "1");
        assert!(cache.get("b.test").is_none(), "expired at once");
        assert!(cache.get("c.test").is_none());
    }
}
