//! SPF, DKIM and DMARC for mail arriving at the MX.

use std::net::IpAddr;
use std::sync::Arc;

use mail_auth::common::headers::HeaderWriter;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{AuthenticatedMessage, AuthenticationResults, DmarcResult, SpfResult};

use crate::Dns;

/// An IP network (`127.0.0.0/8`, `::1/128`), for the addresses exempt from checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<IpNet, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: bad prefix length"))?,
            None => max,
        };
        Ok(IpNet { addr, prefix })
    }
}

impl IpNet {
    /// Whether `ip` is inside (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// How the checks behave.
#[derive(Debug, Clone)]
pub struct CheckSettings {
    /// Our authserv-id (RFC 8601): the host name.
    pub authserv_id: String,
    /// Refuse mail that fails DMARC when its domain's policy is `p=reject`.
    pub reject_dmarc: bool,
    /// Clients exempt from the checks (by default loopback: local programs).
    pub skip: Vec<IpNet>,
}

/// The outcome for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The `Authentication-Results:` field to prepend, CRLF-terminated.
    pub header: String,
    /// Set when the message must be refused: the reason for the 550 reply.
    pub reject: Option<String>,
    /// Short summary for the log: `spf=pass dkim=pass dmarc=pass`.
    pub summary: String,
}

/// Runs SPF, DKIM and DMARC on arriving mail.
#[derive(Debug, Clone)]
pub struct Checker {
    dns: Arc<Dns>,
    settings: CheckSettings,
}

impl Checker {
    /// A checker asking `dns`.
    pub fn new(dns: Arc<Dns>, settings: CheckSettings) -> Checker {
        Checker { dns, settings }
    }

    /// Whether mail from `ip` is checked at all.
    pub fn applies_to(&self, ip: IpAddr) -> bool {
        !self.settings.skip.iter().any(|n| n.contains(ip))
    }

    /// Our authserv-id.
    pub fn authserv_id(&self) -> &str {
        &self.settings.authserv_id
    }

    /// Checks one message from `ip`, which said `helo` and `MAIL FROM:<mail_from>`
    /// (`None` for the null sender).
    pub async fn check(
        &self,
        ip: IpAddr,
        helo: &str,
        mail_from: Option<&str>,
        raw: &[u8],
    ) -> Verdict {
        let auth = self.dns.authenticator();
        let host = self.settings.authserv_id.as_str();
        let helo_domain = helo.trim_start_matches('[').trim_end_matches(']');
        let sender = mail_from.unwrap_or("");
        // RFC 7208 §2.4: for the null sender, SPF checks postmaster@HELO.
        let spf = if sender.is_empty() {
            auth.verify_spf(SpfParameters::verify_ehlo(ip, helo_domain, host))
                .await
        } else {
            auth.verify_spf(SpfParameters::verify_mail_from(
                ip,
                helo_domain,
                host,
                sender,
            ))
            .await
        };
        let mail_from_domain = sender
            .rsplit_once('@')
            .map(|(_, d)| d)
            .unwrap_or(helo_domain)
            .to_string();
        let mut results = AuthenticationResults::new(host);
        let mut reject = None;
        let mut summary = format!("spf={}", spf_word(&spf.result()));
        match AuthenticatedMessage::parse(raw) {
            Some(msg) => {
                let dkim = auth.verify_dkim(&msg).await;
                let header_from = msg.from.first().cloned().unwrap_or_default();
                let dmarc = auth
                    .verify_dmarc(DmarcParameters::new(&msg, &dkim, &mail_from_domain, &spf))
                    .await;
                let dkim_word = if dkim.is_empty() {
                    "none"
                } else if dkim
                    .iter()
                    .any(|d| matches!(d.result(), mail_auth::DkimResult::Pass))
                {
                    "pass"
                } else {
                    "fail"
                };
                summary.push_str(&format!(
                    " dkim={dkim_word} dmarc={}",
                    dmarc_word(&dmarc.result())
                ));
                results = results
                    .with_dkim_results(&dkim, &header_from)
                    .with_spf_mailfrom_result(&spf, ip, sender, helo_domain)
                    .with_dmarc_result(&dmarc);
                if self.settings.reject_dmarc
                    && matches!(dmarc.result(), DmarcResult::Fail(_))
                    && dmarc.policy() == Policy::Reject
                {
                    reject = Some(format!(
                        "DMARC policy of {} rejects this message",
                        dmarc.domain()
                    ));
                }
            }
            None => {
                summary.push_str(" dkim=none dmarc=none");
                results = results.with_spf_mailfrom_result(&spf, ip, sender, helo_domain);
            }
        }
        Verdict {
            header: results.to_header(),
            reject,
            summary,
        }
    }
}

fn spf_word(r: &SpfResult) -> &'static str {
    match r {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

fn dmarc_word(r: &DmarcResult) -> &'static str {
    match r {
        DmarcResult::Pass => "pass",
        DmarcResult::Fail(_) => "fail",
        DmarcResult::TempError(_) => "temperror",
        DmarcResult::PermError(_) => "permerror",
        DmarcResult::None => "none",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let lo: IpNet = "127.0.0.0/8".parse().unwrap();
        assert!(lo.contains("127.1.2.3".parse().unwrap()));
        assert!(lo.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!lo.contains("128.0.0.1".parse().unwrap()));
        let one: IpNet = "::1".parse().unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("::2".parse().unwrap()));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("nonsense".parse::<IpNet>().is_err());
    }
}
