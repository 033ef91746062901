//! Where mail for a domain goes: a static route, the smarthost, or the
//! domain's MX hosts (RFC 5321 §5.1), each turned into addresses to try in order.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use pochta_msgauth::DnsFailure;
use pochta_proto_smtp::client::TlsPolicy;
use pochta_queue::Failure;
use pochta_store::StsPolicy;
use rand::seq::SliceRandom;

use crate::mta_sts::{self, Mode, Policy};
use crate::{NextHop, SmarthostTls, SmtpTransport};

/// One address to try, with how to talk to it.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The host name (for logs, SNI and reports), or the address.
    pub name: String,
    /// Where to connect.
    pub addr: SocketAddr,
    /// STARTTLS policy.
    pub tls: TlsPolicy,
    /// TLS from the first byte (smarthost on port 465).
    pub implicit_tls: bool,
    /// Whose certificate check applies.
    pub verify: Verify,
    /// Log in (smarthost).
    pub authenticate: bool,
}

impl Target {
    /// `name [ip]`, as logs and reports show it.
    pub fn display(&self) -> String {
        if self.name == self.addr.ip().to_string() {
            format!("[{}]", self.addr.ip())
        } else {
            format!("{} [{}]", self.name, self.addr.ip())
        }
    }
}

/// How a target's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verify {
    /// Not at all (opportunistic TLS to MX hosts, RFC 7435).
    No,
    /// Against the smarthost's CA file or the system bundle.
    Smarthost,
    /// Against the public CAs, for the MX host's name (MTA-STS, RFC 8461 §4.2).
    Public,
}

/// The outcome of routing.
pub(crate) enum Routing {
    /// Try these, in order.
    Targets(Vec<Target>),
    /// Nowhere to go: a permanent failure (`true`) or a temporary one.
    Fail(Failure, bool),
}

impl SmtpTransport {
    /// Routes mail for `domain` (lower case; `[192.0.2.1]` for a literal).
    pub(crate) async fn route(&self, domain: &str) -> Routing {
        let s = &self.settings;
        if let Some(hop) = s.routes.get(domain) {
            return self.hop_targets(hop, s.tls, false, Verify::No, false).await;
        }
        if let Some(sm) = &s.smarthost {
            let (tls, implicit) = match sm.tls {
                SmarthostTls::Starttls => (TlsPolicy::Required, false),
                SmarthostTls::Implicit => (TlsPolicy::Disabled, true),
                SmarthostTls::None => (TlsPolicy::Disabled, false),
            };
            let verify = if sm.tls == SmarthostTls::None {
                Verify::No
            } else {
                Verify::Smarthost
            };
            return self
                .hop_targets(&sm.hop, tls, implicit, verify, sm.credentials.is_some())
                .await;
        }
        if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
            let ip = literal.strip_prefix("IPv6:").unwrap_or(literal);
            return match ip.parse::<IpAddr>() {
                Ok(ip) => Routing::Targets(vec![Target {
                    name: ip.to_string(),
                    addr: SocketAddr::new(ip, s.mx_port),
                    tls: s.tls,
                    implicit_tls: false,
                    verify: Verify::No,
                    authenticate: false,
                }]),
                Err(_) => Routing::Fail(
                    failure("5.1.2", format!("{domain} is not a valid address literal")),
                    true,
                ),
            };
        }
        self.mx_targets(domain).await
    }

    async fn hop_targets(
        &self,
        hop: &NextHop,
        tls: TlsPolicy,
        implicit_tls: bool,
        verify: Verify,
        authenticate: bool,
    ) -> Routing {
        match self.dns.ips(&hop.host, self.settings.max_addresses).await {
            Ok(ips) => Routing::Targets(
                ips.into_iter()
                    .map(|ip| Target {
                        name: hop.host.clone(),
                        addr: SocketAddr::new(ip, hop.port),
                        tls,
                        implicit_tls,
                        verify,
                        authenticate,
                    })
                    .collect(),
            ),
            // A configured next hop that does not resolve is our problem, not
            // the sender's: keep the mail and retry.
            Err(e) => Routing::Fail(
                failure("4.4.3", format!("next hop {}: {e}", hop.host)),
                false,
            ),
        }
    }

    async fn mx_targets(&self, domain: &str) -> Routing {
        let s = &self.settings;
        let mut hosts = match self.dns.mx(domain).await {
            Ok(list) => list,
            Err(DnsFailure::NoSuchDomain(_)) => {
                return Routing::Fail(
                    failure("5.1.2", format!("domain {domain} does not exist")),
                    true,
                );
            }
            Err(e) => return Routing::Fail(failure("4.4.3", e.to_string()), false),
        };
        // RFC 7505: a single MX of "." says the domain takes no mail.
        if hosts.iter().any(|(_, h)| h == ".") {
            return Routing::Fail(
                failure(
                    "5.1.10",
                    format!("domain {domain} accepts no mail (null MX, RFC 7505)"),
                ),
                true,
            );
        }
        if hosts.is_empty() {
            // RFC 5321 §5.1: no MX, so the domain itself is the host.
            hosts.push((0, domain.to_string()));
        }
        // RFC 8461 §4: under an enforced MTA-STS policy only the MX hosts it
        // names, over STARTTLS with a certificate valid for the host's name.
        let policy = self.sts_policy(domain).await;
        let mut enforce = false;
        if let Some(p) = policy.as_deref() {
            let (named, other): (Vec<_>, Vec<_>) =
                hosts.iter().cloned().partition(|(_, h)| p.allows(h));
            match p.mode {
                Mode::Enforce => {
                    enforce = true;
                    if named.is_empty() {
                        let list: Vec<&str> = other.iter().map(|(_, h)| h.as_str()).collect();
                        return Routing::Fail(
                            failure(
                                "4.7.5",
                                format!(
                                    "the MTA-STS policy of {domain} names none of its mail hosts ({})",
                                    list.join(", ")
                                ),
                            ),
                            false,
                        );
                    }
                    hosts = named;
                }
                Mode::Testing if !other.is_empty() => {
                    let list: Vec<&str> = other.iter().map(|(_, h)| h.as_str()).collect();
                    tracing::warn!(domain, hosts = %list.join(", "), "MX hosts not named by the domain's MTA-STS policy (testing mode: delivering anyway)");
                }
                _ => {}
            }
        }
        // §5.1: when we are one of the MX hosts (but not the final destination),
        // only hosts strictly preferred to us may take the mail; those of equal
        // or greater preference are dropped. None left: we are the best, a loop.
        let ours = hosts
            .iter()
            .filter(|(_, h)| h.eq_ignore_ascii_case(&s.helo))
            .map(|(p, _)| *p)
            .min();
        if let Some(ours) = ours {
            hosts.retain(|(p, _)| *p < ours);
            if hosts.is_empty() {
                return Routing::Fail(
                    failure("5.4.6", format!("mail for {domain} loops back to myself")),
                    true,
                );
            }
        }
        // Lowest preference first; equal preferences in random order (§5.1).
        hosts.shuffle(&mut rand::rng());
        hosts.sort_by_key(|(p, _)| *p);
        let mut targets = Vec::new();
        let mut last = None;
        for (_, host) in hosts {
            match self.dns.ips(&host, 2).await {
                Ok(ips) => {
                    for ip in ips {
                        targets.push(Target {
                            name: host.clone(),
                            addr: SocketAddr::new(ip, s.mx_port),
                            tls: if enforce { TlsPolicy::Required } else { s.tls },
                            implicit_tls: false,
                            verify: if enforce { Verify::Public } else { Verify::No },
                            authenticate: false,
                        });
                    }
                }
                Err(e) => last = Some(e),
            }
            if targets.len() >= s.max_addresses {
                break;
            }
        }
        targets.truncate(s.max_addresses);
        if targets.is_empty() {
            let text = match last {
                Some(e) => format!("no address for the mail hosts of {domain}: {e}"),
                None => format!("no address for the mail hosts of {domain}"),
            };
            return Routing::Fail(failure("4.4.3", text), false);
        }
        Routing::Targets(targets)
    }
}

impl SmtpTransport {
    /// The MTA-STS policy of `domain` (RFC 8461 §5.1): the cached one while its
    /// id is still published (or no record can be read), else a fresh one; none
    /// when the domain has none or it cannot be fetched and nothing is cached,
    /// and then mail goes as without MTA-STS (§3.3).
    async fn sts_policy(&self, domain: &str) -> Option<Arc<Policy>> {
        if !self.settings.mta_sts {
            return None;
        }
        let cached = match self.sts.get(domain) {
            Some(c) => Some(c),
            None => self.kept_policy(domain).await,
        };
        let id = match self.dns.mta_sts_id(domain).await {
            Ok(Some(id)) => id,
            Ok(None) => return cached.map(|(_, p)| p),
            Err(e) => {
                tracing::info!(domain, error = %e, "cannot look up the MTA-STS record");
                return cached.map(|(_, p)| p);
            }
        };
        if let Some((known, p)) = &cached
            && *known == id
        {
            return Some(p.clone());
        }
        let host = format!("mta-sts.{domain}");
        let fetched = match self.dns.ips(&host, 1).await {
            Ok(ips) => match ips.first() {
                Some(&ip) => {
                    let addr = SocketAddr::new(ip, self.settings.mta_sts_port);
                    mta_sts::fetch(
                        domain,
                        addr,
                        &self.tls_public,
                        self.settings.connect_timeout,
                    )
                    .await
                }
                None => Err(format!("{host} has no address")),
            },
            Err(e) => Err(e.to_string()),
        };
        match fetched {
            Ok((policy, text)) => {
                tracing::info!(domain, id = %id, mode = ?policy.mode, "MTA-STS policy fetched");
                let policy = Arc::new(policy);
                let ttl = Duration::from_secs(policy.max_age);
                self.sts.put(domain, id.clone(), policy.clone(), ttl);
                if let Some(store) = &self.policies {
                    let kept = StsPolicy {
                        id,
                        text,
                        expires: unix_now().saturating_add(policy.max_age as i64),
                    };
                    if let Err(e) = store.put_sts_policy(domain, kept, unix_now()).await {
                        tracing::warn!(domain, error = %e, "cannot keep the MTA-STS policy");
                    }
                }
                Some(policy)
            }
            Err(e) => {
                tracing::warn!(domain, error = %e, "cannot fetch the MTA-STS policy");
                cached.map(|(_, p)| p)
            }
        }
    }

    /// The policy kept in the store for `domain`, if unexpired and still
    /// parsable; loaded into the memory cache for what is left of its age.
    async fn kept_policy(&self, domain: &str) -> Option<(String, Arc<Policy>)> {
        let store = self.policies.as_ref()?;
        let now = unix_now();
        let kept = match store.sts_policy(domain, now).await {
            Ok(k) => k?,
            Err(e) => {
                tracing::warn!(domain, error = %e, "cannot read the kept MTA-STS policy");
                return None;
            }
        };
        let policy = Arc::new(mta_sts::parse_policy(&kept.text).ok()?);
        let ttl = Duration::from_secs(kept.expires.saturating_sub(now).max(0) as u64);
        self.sts.put(domain, kept.id.clone(), policy.clone(), ttl);
        Some((kept.id, policy))
    }
}

/// Seconds since the Unix epoch.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn failure(status: &str, text: String) -> Failure {
    Failure {
        status: status.into(),
        reply: None,
        remote: None,
        text,
    }
}
