//! Builds the relay from the configuration: the DNS resolver, the DKIM keys,
//! the checks on arriving mail, the SMTP transport and the queue runner.

use std::sync::Arc;

use anyhow::Context;
use pochta_config::{Config, RelayTls, SmarthostTls};
use pochta_msgauth::{CheckSettings, Checker, DkimKeys, Dns, IpNet, Nameservers};
use pochta_proto_smtp::client::TlsPolicy;
use pochta_queue::{Queue, QueueSettings};
use pochta_sasl::Credentials;
use pochta_smtp_out::{NextHop, RelaySettings, Smarthost, SmtpTransport};
use pochta_store::Store;

/// The relay's parts the server holds on to.
pub struct Relay {
    /// SPF/DKIM/DMARC on the MX, when enabled.
    pub checker: Option<Arc<Checker>>,
    /// The queue runner, to be started.
    pub queue: Arc<Queue>,
}

/// Where DKIM keys live.
pub fn dkim_dir(config: &Config) -> std::path::PathBuf {
    config.data_dir.join("dkim")
}

impl Relay {
    /// Everything from `config`; fails only on settings that cannot work.
    pub fn new(config: &Config, store: Arc<dyn Store>) -> anyhow::Result<Relay> {
        let r = &config.relay;
        let servers = if r.resolver.is_empty() {
            Nameservers::System
        } else {
            Nameservers::Given(r.resolver.clone())
        };
        let dns = Arc::new(Dns::new(&servers, r.dns_timeout).context("relay.resolver")?);
        let checker = if config.checks.enabled {
            let mut skip = Vec::new();
            for (i, net) in config.checks.skip.iter().enumerate() {
                skip.push(
                    net.parse::<IpNet>()
                        .map_err(|e| anyhow::anyhow!("checks.skip[{i}]: {e}"))?,
                );
            }
            Some(Arc::new(Checker::new(
                dns.clone(),
                CheckSettings {
                    authserv_id: config.hostname.clone(),
                    reject_dmarc: config.checks.reject_dmarc,
                    skip,
                },
            )))
        } else {
            None
        };
        let keys = Arc::new(DkimKeys::open(&dkim_dir(config)));
        let mut settings = RelaySettings::new(config.hostname.clone());
        settings.mx_port = r.mx_port;
        settings.mta_sts = r.mta_sts;
        settings.connect_timeout = r.connect_timeout;
        settings.tls = match r.tls {
            RelayTls::Opportunistic => TlsPolicy::Opportunistic,
            RelayTls::Required => TlsPolicy::Required,
            RelayTls::None => TlsPolicy::Disabled,
        };
        settings.routes = r
            .routes
            .iter()
            .map(|(d, hop)| {
                (
                    d.as_str().to_string(),
                    NextHop {
                        host: hop.host.clone(),
                        port: hop.port,
                    },
                )
            })
            .collect();
        settings.smarthost = r.smarthost.as_ref().map(|hop| Smarthost {
            hop: NextHop {
                host: hop.host.clone(),
                port: hop.port,
            },
            tls: match r.smarthost_tls {
                SmarthostTls::Starttls => pochta_smtp_out::SmarthostTls::Starttls,
                SmarthostTls::Implicit => pochta_smtp_out::SmarthostTls::Implicit,
                SmarthostTls::None => pochta_smtp_out::SmarthostTls::None,
            },
            credentials: match (&r.smarthost_user, &r.smarthost_password) {
                (Some(user), Some(password)) => Some(Credentials {
                    authzid: None,
                    login: user.clone(),
                    password: password.clone(),
                }),
                _ => None,
            },
            ca_file: r.smarthost_ca.clone(),
        });
        let transport = SmtpTransport::new(settings, dns, Some(keys))
            .context("relay TLS")?
            .with_policy_store(store.clone());
        let q = &config.queue;
        let mut qs = QueueSettings::new(config.hostname.clone(), config.domains.clone());
        qs.retry = q.retry;
        qs.max_retry = q.max_retry;
        qs.delay_warning = q.delay_warning;
        qs.concurrency = usize::try_from(q.concurrency).unwrap_or(usize::MAX).max(1);
        qs.per_domain = usize::try_from(q.per_domain).unwrap_or(usize::MAX).max(1);
        let queue = Queue::new(store, Arc::new(transport), qs);
        Ok(Relay { checker, queue })
    }
}
