//! The DNS resolver shared by the checks on arrival and the relay's routing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use mail_auth::common::cache::NoCache;
use mail_auth::hickory_resolver::config::{
    NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::hickory_resolver::system_conf::read_system_conf;
use mail_auth::{IpLookupStrategy, MX, MessageAuthenticator, RecordSet};

use crate::DnsSetupError;

/// Which name servers to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nameservers {
    /// Those of `/etc/resolv.conf`.
    System,
    /// These, and only these (tests run their own server on loopback); the hosts
    /// file is not consulted either.
    Given(Vec<SocketAddr>),
}

/// Why a lookup gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsFailure {
    /// NXDOMAIN: the name does not exist (a permanent failure for mail).
    #[error("{0}: no such domain")]
    NoSuchDomain(String),
    /// The name exists but has no records of the type asked.
    #[error("{0}: no records")]
    NoRecords(String),
    /// Timeout, SERVFAIL, refused...: try again later.
    #[error("{name}: DNS lookup failed: {reason}")]
    Temporary {
        /// The name asked for.
        name: String,
        /// What the resolver said.
        reason: String,
    },
}

/// A DNS client with its cache. Cheap to share behind an `Arc`.
pub struct Dns {
    auth: MessageAuthenticator,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dns")
    }
}

type NoIp4 = NoCache<Box<str>, RecordSet<Ipv4Addr>>;
type NoIp6 = NoCache<Box<str>, RecordSet<Ipv6Addr>>;
type NoMx = NoCache<Box<str>, RecordSet<MX>>;
type NoTxt = NoCache<Box<str>, mail_auth::Txt>;

impl Dns {
    /// A resolver asking `servers`, giving up on a server after `timeout`.
    pub fn new(servers: &Nameservers, timeout: Duration) -> Result<Dns, DnsSetupError> {
        let (config, mut opts) = match servers {
            Nameservers::System => match read_system_conf() {
                Ok(c) => c,
                Err(e) => {
                    // No resolv.conf (a container): a local resolver is the best guess,
                    // and lookups fail temporarily rather than the server refusing to start.
                    tracing::warn!(error = %e, "cannot read the system's DNS configuration; using 127.0.0.1:53");
                    (
                        given(&[SocketAddr::from(([127, 0, 0, 1], 53))]),
                        ResolverOpts::default(),
                    )
                }
            },
            Nameservers::Given(list) => {
                let mut opts = ResolverOpts::default();
                opts.use_hosts_file = ResolveHosts::Never;
                (given(list), opts)
            }
        };
        opts.timeout = timeout;
        opts.attempts = 2;
        let auth =
            MessageAuthenticator::new(config, opts).map_err(|e| DnsSetupError(e.to_string()))?;
        Ok(Dns { auth })
    }

    /// The `mail-auth` view of this resolver, for SPF/DKIM/DMARC.
    pub fn authenticator(&self) -> &MessageAuthenticator {
        &self.auth
    }

    /// MX records of `domain`, by preference. An empty list means there is no MX
    /// record (RFC 5321 §5.1: use the domain itself); a single `.` exchange is a
    /// null MX (RFC 7505).
    pub async fn mx(&self, domain: &str) -> Result<Vec<(u16, String)>, DnsFailure> {
        match self.auth.mx_lookup(domain, None::<&NoMx>).await {
            Ok(set) => Ok(set
                .rrset
                .iter()
                .flat_map(|mx| {
                    mx.exchanges
                        .iter()
                        .map(move |e| (mx.preference, e.trim_end_matches('.').to_string()))
                })
                .map(|(p, e)| (p, if e.is_empty() { ".".into() } else { e }))
                .collect()),
            Err(e) => match classify(domain, e) {
                DnsFailure::NoRecords(_) => Ok(Vec::new()),
                other => Err(other),
            },
        }
    }

    /// The id of `domain`'s MTA-STS policy, from the TXT record at
    /// `_mta-sts.<domain>` (RFC 8461 §3.1); `None` when it publishes none.
    pub async fn mta_sts_id(&self, domain: &str) -> Result<Option<String>, DnsFailure> {
        let name = format!("_mta-sts.{domain}.");
        match self
            .auth
            .txt_lookup::<mail_auth::mta_sts::MtaSts>(name.as_str(), None::<&NoTxt>)
            .await
        {
            Ok(record) => Ok(Some(record.id.clone())),
            // TXT records, but none of them an STSv1 one.
            Err(mail_auth::Error::Dns(mail_auth::DnsError::InvalidRecordType)) => Ok(None),
            Err(e) => match classify(&name, e) {
                DnsFailure::NoRecords(_) | DnsFailure::NoSuchDomain(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Addresses of `host`: IPv4 first, then IPv6, at most `max` of them.
    pub async fn ips(&self, host: &str, max: usize) -> Result<Vec<IpAddr>, DnsFailure> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let mut out = Vec::new();
        let v4 = self
            .auth
            .ip_lookup(
                host,
                IpLookupStrategy::Ipv4Only,
                max,
                None::<&NoIp4>,
                None::<&NoIp6>,
            )
            .await;
        let v6 = self
            .auth
            .ip_lookup(
                host,
                IpLookupStrategy::Ipv6Only,
                max,
                None::<&NoIp4>,
                None::<&NoIp6>,
            )
            .await;
        let mut failure = None;
        for r in [v4, v6] {
            match r {
                Ok(ips) => out.extend(ips),
                Err(e) => {
                    let f = classify(host, e);
                    // A temporary failure on either family outweighs "no records".
                    if failure.is_none() || matches!(f, DnsFailure::Temporary { .. }) {
                        failure = Some(f);
                    }
                }
            }
        }
        out.truncate(max);
        match (out.is_empty(), failure) {
            (false, _) => Ok(out),
            (true, Some(f)) => Err(f),
            (true, None) => Err(DnsFailure::NoRecords(host.to_string())),
        }
    }
}

fn given(list: &[SocketAddr]) -> ResolverConfig {
    let servers = list
        .iter()
        .map(|addr| {
            let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
            for c in &mut ns.connections {
                c.port = addr.port();
            }
            ns
        })
        .collect();
    ResolverConfig::from_name_servers(servers)
}

fn classify(name: &str, e: mail_auth::Error) -> DnsFailure {
    match e {
        mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(ResponseCode::NXDomain)) => {
            DnsFailure::NoSuchDomain(name.to_string())
        }
        mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(ResponseCode::NoError)) => {
            DnsFailure::NoRecords(name.to_string())
        }
        other => DnsFailure::Temporary {
            name: name.to_string(),
            reason: other.to_string(),
        },
    }
}
