//! The pochta configuration: one TOML file, typed, validated, documented.
//!
//! Every key is optional and has a default, so a missing file is a working
//! development server ([`Config::default`]). Loading is all-or-nothing: an unknown
//! key, a value of the wrong type or a value out of range is a [`ConfigError`] that
//! names the dotted key path (`limits.message_size`, `domains[2]`), and the server
//! never starts half-configured.
//!
//! The accepted syntax of each key is documented in `docs/CONFIG.md`, whose example
//! is [`example_toml`]; a test keeps the two identical.

mod units;

/// Parses a size as the config file writes it (`"50M"`, `"512k"`, `1048576`), for
/// command-line options that take sizes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    units::parse_size(text)
}

/// Parses a network as `checks.skip` writes it (`"10.0.0.0/8"`, `"::1"`) into its
/// address, with host bits cleared, and prefix length; so that the code matching
/// client addresses against [`Checks::skip`] uses exactly the rules of the file.
pub fn parse_network(text: &str) -> Result<(IpAddr, u8), String> {
    units::parse_network(text)
}

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use pochta_addr::{Domain, Secret};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// Environment variable naming the config file when `--config` is not given; kept
/// here so that the binary and the documentation cannot disagree on its name.
pub const CONFIG_ENV: &str = "POCHTA_CONFIG";

/// Parses a duration written as in the configuration file (`"30d"`, `"90m"`,
/// `"0"`), so that command-line options take the same values.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    units::parse_duration(text)
}

/// A fully commented configuration file that sets every key to its default.
///
/// Exists so that `pochta` can print a starting point for a new installation; the
/// same text is the example in `docs/CONFIG.md`.
pub fn example_toml() -> &'static str {
    include_str!("example.toml")
}

/// The whole server configuration, validated.
///
/// Built by [`Config::load`] / [`Config::from_toml`], which validate, or by
/// [`Config::default`] plus struct updates in tests (call [`Config::validate`] then).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Name of this host (canonical: lower-case A-labels, never an address literal).
    /// Used in the SMTP greeting, Received headers, Message-IDs and the self-signed
    /// certificate. Default: the system host name, or `localhost` if that is unusable.
    pub hostname: String,
    /// Directory holding all server state. Default `./pochta-data` (relative to the
    /// working directory); a relative value in a file is relative to the file.
    pub data_dir: PathBuf,
    /// Local mail domains; the first is the primary one. Non-empty, no duplicates,
    /// no address literals. Default `["localhost"]`.
    pub domains: Vec<Domain>,
    /// Where each protocol listens.
    pub listen: Listen,
    /// The certificate used by every TLS listener and STARTTLS.
    pub tls: Tls,
    /// Resource and protocol limits.
    pub limits: Limits,
    /// Login throttling.
    pub auth: AuthLimits,
    /// Delivery of mail for other domains.
    pub relay: Relay,
    /// Retrying and expiring queued deliveries.
    pub queue: Queue,
    /// Upkeep of the mail store.
    pub store: StoreSettings,
    /// SPF, DKIM and DMARC checks of incoming mail.
    pub checks: Checks,
    /// The HTTP listener (JMAP).
    pub http: Http,
    /// Logging.
    pub log: Log,
}

/// Listening addresses, one per protocol; `None` turns that listener off.
///
/// Kept as one struct (rather than a map) so that each protocol's server asks for
/// exactly its own address and a typo in the file is an unknown key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Listen {
    /// SMTP for mail from other servers (MX). Default `127.0.0.1:2525`; port 25 in production.
    #[serde(deserialize_with = "deserialize_listen")]
    pub smtp: Option<SocketAddr>,
    /// Message submission with STARTTLS (RFC 6409). Default `127.0.0.1:2587`; 587 in production.
    #[serde(deserialize_with = "deserialize_listen")]
    pub submission: Option<SocketAddr>,
    /// Message submission over implicit TLS (RFC 8314). Default `127.0.0.1:2465`; 465 in production.
    #[serde(deserialize_with = "deserialize_listen")]
    pub submissions: Option<SocketAddr>,
    /// IMAP with STARTTLS. Default `127.0.0.1:2143`; 143 in production.
    #[serde(deserialize_with = "deserialize_listen")]
    pub imap: Option<SocketAddr>,
    /// IMAP over implicit TLS. Default `127.0.0.1:2993`; 993 in production.
    #[serde(deserialize_with = "deserialize_listen")]
    pub imaps: Option<SocketAddr>,
    /// POP3 with STLS. Default `127.0.0.1:2110`; 110 in production.
    #[serde(deserialize_with = "deserialize_listen")]
    pub pop3: Option<SocketAddr>,
    /// POP3 over implicit TLS. Default `127.0.0.1:2995`; 995 in production.
    #[serde(deserialize_with = "deserialize_listen")]
    pub pop3s: Option<SocketAddr>,
    /// HTTP: JMAP and the web interface. Default `127.0.0.1:8080`.
    #[serde(deserialize_with = "deserialize_listen")]
    pub http: Option<SocketAddr>,
}

/// TLS certificate files.
///
/// Both `None` (the default) means pochta generates and reuses a self-signed
/// certificate in [`Config::tls_dir`]; otherwise both are set and were readable
/// when the configuration was loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain, leaf first.
    pub cert: Option<PathBuf>,
    /// PEM private key matching `cert`.
    pub key: Option<PathBuf>,
}

/// Limits that keep one client (or all of them) from exhausting the server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest message accepted, in bytes (SMTP SIZE, RFC 1870). Default 50 MiB; at least 1024.
    #[serde(deserialize_with = "units::deserialize_size")]
    pub message_size: u64,
    /// Most recipients of one message. Default 100 (RFC 5321 §4.5.3.1.8 minimum); at least 1.
    pub recipients: usize,
    /// Concurrent connections from one client IP. Default 20; at least 1.
    pub connections_per_ip: u32,
    /// Concurrent connections over all listeners. Default 5000; at least 1.
    pub connections: u32,
    /// Idle time allowed while waiting for a command. Default 5 min (RFC 5321 §4.5.3.2.7).
    #[serde(deserialize_with = "units::deserialize_duration")]
    pub command_timeout: Duration,
    /// Longest time between two reads while receiving a message body. Default 10 min
    /// (RFC 5321 §4.5.3.2.5 asks for at least 3).
    #[serde(deserialize_with = "units::deserialize_duration")]
    pub data_timeout: Duration,
    /// Longest command or message line in octets, CRLF included. Default 1000
    /// (RFC 5321 §4.5.3.1.6); at least 512.
    pub line_length: usize,
    /// Protocol errors tolerated in one session before it is closed (SMTP 421). Default 20; at least 1.
    pub errors: u32,
    /// How long a graceful shutdown waits for sessions still receiving a message.
    /// Default 30 s; 0 closes them at once.
    #[serde(deserialize_with = "units::deserialize_duration")]
    pub shutdown_grace: Duration,
}

/// Login throttling shared by SMTP AUTH, POP3, IMAP and JMAP, counted per client IP
/// and per user name, so that password guessing is slow from one address and from many.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthLimits {
    /// Failures after which each further attempt is delayed. Default 3.
    pub delay_after: u32,
    /// Failures after which the IP or user is locked out. Default 10; at least 1.
    pub lockout_after: u32,
    /// How long a lockout lasts. Default 15 min; more than zero.
    #[serde(deserialize_with = "units::deserialize_duration")]
    pub lockout: Duration,
    /// Failures older than this are forgotten. Default 15 min; more than zero.
    #[serde(deserialize_with = "units::deserialize_duration")]
    pub window: Duration,
}

/// How mail for other domains leaves: `[relay]`.
///
/// Only mail submitted after AUTH is relayed; it is queued and delivered, for each
/// recipient domain, to the first of: its entry in [`Relay::routes`], the
/// [`Relay::smarthost`], or the domain's MX hosts (RFC 5321 §5.1).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Relay {
    /// DNS servers asked for MX and address records, as `"IP:port"`. Default empty:
    /// the servers of `/etc/resolv.conf`. Tests point it at a local DNS server.
    #[serde(deserialize_with = "deserialize_resolver")]
    pub resolver: Vec<SocketAddr>,
    /// Longest wait for one DNS answer. Default 5 s; more than zero.
    #[serde(deserialize_with = "units::deserialize_duration")]
    pub dns_timeout: Duration,
    /// Port used to reach MX hosts. Default 25, the only port other mail servers
    /// listen on for MX traffic; tests change it. At least 1.
    pub mx_port: u16,
    /// STARTTLS towards MX hosts. Default [`RelayTls::Opportunistic`].
    pub tls: RelayTls,
    /// Honour the MTA-STS policies of destination domains (RFC 8461): where a
    /// domain enforces one, mail goes only to the MX hosts it names, over
    /// STARTTLS with a certificate verified for the host. Default true.
    pub mta_sts: bool,
    /// Longest wait for a TCP connection to a next hop. Default 30 s; more than zero.
    #[serde(deserialize_with = "units::deserialize_duration")]
    pub connect_timeout: Duration,
    /// One server that receives all remote mail instead of the MX hosts (routes
    /// still win), for hosts that may not send to port 25 themselves. Default
    /// `None` (`""` in the file).
    #[serde(deserialize_with = "deserialize_smarthost")]
    pub smarthost: Option<HostPort>,
    /// How to talk TLS to the smarthost. Default [`SmarthostTls::Starttls`].
    pub smarthost_tls: SmarthostTls,
    /// User name for AUTH at the smarthost (RFC 4954). Default `None` (`""`); set
    /// together with `smarthost_password`, and only with a smarthost.
    #[serde(deserialize_with = "deserialize_optional_string")]
    pub smarthost_user: Option<String>,
    /// Password for AUTH at the smarthost. Default `None` (`""`). A [`Secret`], so
    /// that `Debug` output (and logs made from it) never shows it; never allowed with
    /// `smarthost_tls = "none"`, so it is never sent in clear.
    #[serde(deserialize_with = "deserialize_secret")]
    pub smarthost_password: Option<Secret>,
    /// PEM file of the CA certificates that verify the smarthost's certificate.
    /// Default `None`: the system's trusted roots. Was readable when loaded.
    pub smarthost_ca: Option<PathBuf>,
    /// Next hop for particular domains (`[relay.routes]`), ahead of the smarthost
    /// and MX records: for internal servers and tests. Keys are canonical, never
    /// local domains, never address literals.
    #[serde(deserialize_with = "deserialize_routes")]
    pub routes: BTreeMap<Domain, HostPort>,
}

/// STARTTLS policy towards MX hosts (RFC 3207).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayTls {
    /// Use STARTTLS when the host offers it, without verifying its certificate
    /// (most MX hosts have none a client could verify; Postfix's `may`).
    /// Encryption against passive eavesdropping, no protection against an active
    /// attacker (`"opportunistic"`).
    #[default]
    Opportunistic,
    /// A host that does not offer STARTTLS, or fails the handshake, is a temporary
    /// failure, and the mail waits in the queue (`"required"`).
    Required,
    /// Never use STARTTLS (`"none"`).
    None,
}

/// TLS towards the smarthost. Its certificate is always verified: unlike an MX
/// host, a smarthost was chosen by name, and it receives our password.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmarthostTls {
    /// STARTTLS, required (`"starttls"`; usually port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (`"implicit"`; RFC 8314, usually port 465).
    Implicit,
    /// Plain text (`"none"`): for a smarthost on the same machine or network only;
    /// not allowed with credentials.
    None,
}

/// A next hop: a host and a port, written `"host:port"` (`"[2001:db8::1]:25"` for
/// IPv6), both required.
///
/// Built by parsing ([`str::parse`]), which checks the host and puts it in
/// canonical form; [`Config::validate`] rejects a hand-built one that is not.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// A host name (lower-case A-labels, no trailing dot), an IPv4 address, or an
    /// IPv6 address (compressed, without brackets).
    pub host: String,
    /// The TCP port, 1 to 65535.
    pub port: u16,
}

/// Retrying deliveries to other servers: `[queue]`.
///
/// After a temporary failure a delivery waits [`Queue::retry`], then twice as long
/// after each further failure, at most [`Queue::max_retry`], until
/// [`Queue::expire`], when the message is returned to its sender.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Queue {
    /// Wait after the first temporary failure. Default 5 min; more than zero.
    #[serde(deserialize_with = "units::deserialize_duration")]
    pub retry: Duration,
    /// Longest wait between two attempts. Default 4 h; at least `retry`.
    #[serde(deserialize_with = "units::deserialize_duration")]
    pub max_retry: Duration,
    /// How long after it was queued a message is given up and bounced. Default
    /// 5 days (RFC 5321 §4.5.4.1 asks for at least 4-5 days); more than zero.
    #[serde(deserialize_with = "units::deserialize_duration")]
    pub expire: Duration,
    /// How long a message may wait before its sender is told it is delayed (a
    /// "delayed" DSN, RFC 3464). Default 4 h; zero never warns, and so does a value
    /// of `expire` or more.
    #[serde(deserialize_with = "units::deserialize_duration")]
    pub delay_warning: Duration,
    /// Deliveries in progress at once, overall. Default 50; at least 1.
    pub concurrency: u32,
    /// Connections at once to one destination (domain or next hop), so that a
    /// large queue for one domain does not look like an attack. Default 5; at least 1.
    pub per_domain: u32,
}

/// Upkeep of the mail store: `[store]`.
///
/// Clients resynchronise cheaply from the change log (IMAP QRESYNC, JMAP
/// `/changes`); keeping it forever would let it outgrow the mail, so entries
/// older than the retention are removed, as Dovecot rotates its index logs.
/// A client away for longer resynchronises in full.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// How long changes stay in the change log. Default 30 days; zero keeps
    /// them forever; otherwise at least a day.
    #[serde(deserialize_with = "units::deserialize_duration")]
    pub change_log_retention: Duration,
}

/// Sender authentication of mail arriving at the MX: `[checks]`.
///
/// SPF (RFC 7208), DKIM (RFC 6376) and DMARC (RFC 7489) results are recorded in an
/// `Authentication-Results` header (RFC 8601) for the user's mail client and filters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Checks {
    /// Run the checks at all. Default `true`.
    pub enabled: bool,
    /// Refuse (550 5.7.1) mail that fails DMARC when its domain publishes
    /// `p=reject`. Default `false`: such mail is accepted and marked, since
    /// forwarding and mailing lists break DMARC for legitimate mail too.
    pub reject_dmarc: bool,
    /// Clients never checked: local programs handing mail to the MX listener. Each
    /// entry is an IP address or a network; loading stores it in canonical form
    /// (`"127.0.0.0/8"`, `"::1/128"`: a bare address gets `/32` or `/128`, host bits
    /// are cleared), and [`parse_network`] reads it. Default `["127.0.0.0/8", "::1/128"]`.
    #[serde(deserialize_with = "deserialize_networks")]
    pub skip: Vec<String>,
}

/// The HTTP listener (JMAP, RFC 8620): `[http]`.
///
/// The listener speaks HTTPS with the server's certificate; a request in clear
/// text gets `400` and the `https://` URL to use, and credentials are never
/// accepted over it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Http {
    /// Also serve clear-text HTTP, with logins, on the `http` listener: only for
    /// a reverse proxy on the same machine or a trusted network that terminates
    /// TLS for the clients. Default `false`.
    pub plain: bool,
}

/// Logging settings, read once at start-up by the binary's tracing subscriber.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    /// A level (`error`, `warn`, `info`, `debug`, `trace`, `off`) or a tracing
    /// `EnvFilter` directive string such as `info,pochta_store=debug`. Default `info`.
    pub level: String,
    /// Output format. Default [`LogFormat::Text`].
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (`"text"`).
    #[default]
    Text,
    /// One JSON object per line, for log collectors (`"json"`).
    Json,
}

/// Why a configuration could not be loaded. Each variant's message says where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Io {
        /// The file we tried to read.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The text is not valid TOML.
    #[error("config file is not valid TOML: {message}")]
    Parse {
        /// `line L, column C: what is wrong`.
        message: String,
    },
    /// A key that no section has, probably a typo.
    #[error("{}", unknown_key_message(key, expected))]
    UnknownKey {
        /// Full dotted path of the unknown key, e.g. `limits.mesage_size`.
        key: String,
        /// The keys valid at that place.
        expected: Vec<String>,
    },
    /// A value that has the wrong type, does not parse, or is out of range, or
    /// several values that do not fit together.
    #[error("{key}: {message}")]
    Invalid {
        /// Dotted path of the offending key, e.g. `listen.smtp` or `domains[1]`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ConfigError {
    /// The dotted key path the error is about, if it is about one; lets callers and
    /// tests check which setting was rejected without parsing the message.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. } | ConfigError::Invalid { key, .. } => Some(key),
            ConfigError::Io { .. } | ConfigError::Parse { .. } => None,
        }
    }

    fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

fn unknown_key_message(key: &str, expected: &[String]) -> String {
    let mut out = format!("unknown key \"{key}\"");
    if expected.is_empty() {
        out.push_str(" (this section has no keys)");
        return out;
    }
    out.push_str(&format!(" (expected one of: {})", expected.join(", ")));
    let last = key.rsplit('.').next().unwrap_or(key);
    if let Some(near) = expected
        .iter()
        .filter(|e| edit_distance(last, e) <= 2.max(last.len() / 4))
        .min_by_key(|e| edit_distance(last, e))
    {
        out.push_str(&format!("; did you mean \"{near}\"?"));
    }
    out
}

/// Levenshtein distance, for the "did you mean" hint on unknown keys.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev_diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let old = row[j + 1];
            row[j + 1] = (prev_diag + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(old + 1);
            prev_diag = old;
        }
    }
    row[b.len()]
}

// ---------------------------------------------------------------------------
// Defaults

fn localhost() -> Domain {
    static LOCALHOST: LazyLock<Domain> =
        LazyLock::new(|| Domain::parse("localhost").expect("\"localhost\" is a valid domain"));
    LOCALHOST.clone()
}

/// The system host name in canonical form, or `localhost` when it is not a usable
/// domain (empty, a literal, or with characters a host name cannot have).
fn system_hostname() -> String {
    let raw = gethostname::gethostname();
    let raw = raw.to_string_lossy();
    match Domain::parse(raw.trim()) {
        Ok(d) if !d.is_literal() => d.as_str().to_owned(),
        _ => "localhost".to_owned(),
    }
}

fn loopback(port: u16) -> Option<SocketAddr> {
    Some(SocketAddr::from(([127, 0, 0, 1], port)))
}

impl Default for Config {
    fn default() -> Config {
        Config {
            hostname: system_hostname(),
            data_dir: Config::default_data_dir(),
            domains: vec![localhost()],
            listen: Listen::default(),
            tls: Tls::default(),
            limits: Limits::default(),
            auth: AuthLimits::default(),
            relay: Relay::default(),
            queue: Queue::default(),
            store: StoreSettings::default(),
            checks: Checks::default(),
            http: Http::default(),
            log: Log::default(),
        }
    }
}

impl Default for Listen {
    fn default() -> Listen {
        Listen {
            smtp: loopback(2525),
            submission: loopback(2587),
            submissions: loopback(2465),
            imap: loopback(2143),
            imaps: loopback(2993),
            pop3: loopback(2110),
            pop3s: loopback(2995),
            http: loopback(8080),
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            message_size: 50 << 20,
            recipients: 100,
            connections_per_ip: 50,
            connections: 5000,
            command_timeout: Duration::from_secs(5 * 60),
            data_timeout: Duration::from_secs(10 * 60),
            line_length: 1000,
            errors: 20,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

impl Default for AuthLimits {
    fn default() -> AuthLimits {
        AuthLimits {
            delay_after: 3,
            lockout_after: 10,
            lockout: Duration::from_secs(15 * 60),
            window: Duration::from_secs(15 * 60),
        }
    }
}

impl Default for Relay {
    fn default() -> Relay {
        Relay {
            resolver: Vec::new(),
            dns_timeout: Duration::from_secs(5),
            mx_port: 25,
            tls: RelayTls::Opportunistic,
            mta_sts: true,
            connect_timeout: Duration::from_secs(30),
            smarthost: None,
            smarthost_tls: SmarthostTls::Starttls,
            smarthost_user: None,
            smarthost_password: None,
            smarthost_ca: None,
            routes: BTreeMap::new(),
        }
    }
}

impl Default for Queue {
    fn default() -> Queue {
        Queue {
            retry: Duration::from_secs(5 * 60),
            max_retry: Duration::from_secs(4 * 3600),
            expire: Duration::from_secs(5 * 24 * 3600),
            delay_warning: Duration::from_secs(4 * 3600),
            concurrency: 50,
            per_domain: 5,
        }
    }
}

impl Default for StoreSettings {
    fn default() -> StoreSettings {
        StoreSettings {
            change_log_retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl Default for Checks {
    fn default() -> Checks {
        Checks {
            enabled: true,
            reject_dmarc: false,
            skip: vec!["127.0.0.0/8".to_owned(), "::1/128".to_owned()],
        }
    }
}

impl Default for Log {
    fn default() -> Log {
        Log {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

impl fmt::Display for RelayTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RelayTls::Opportunistic => "opportunistic",
            RelayTls::Required => "required",
            RelayTls::None => "none",
        })
    }
}

impl fmt::Display for SmarthostTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SmarthostTls::Starttls => "starttls",
            SmarthostTls::Implicit => "implicit",
            SmarthostTls::None => "none",
        })
    }
}

impl HostPort {
    /// The host as an IP address, when it is one (no DNS lookup needed).
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

/// `host:port`, or `[IPv6]:port`: the file's syntax, which parses back.
impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Parses `"host:port"`; the error says what is wrong and what was expected.
impl FromStr for HostPort {
    type Err = String;
    fn from_str(text: &str) -> Result<HostPort, String> {
        let (host, port) = units::parse_host_port(text)?;
        Ok(HostPort { host, port })
    }
}

impl<'de> Deserialize<'de> for HostPort {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<HostPort, D::Error> {
        de.deserialize_str(HostPortVisitor)
    }
}

struct HostPortVisitor;

impl Visitor<'_> for HostPortVisitor {
    type Value = HostPort;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a \"host:port\" string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<HostPort, E> {
        v.parse()
            .map_err(|why| E::custom(format!("invalid host:port \"{v}\": {why}")))
    }
}

impl Listen {
    /// Every listener as `(key name, address)`, in the documented order, so that the
    /// server can start them in a loop and messages can name them.
    pub fn all(&self) -> Vec<(&'static str, Option<SocketAddr>)> {
        vec![
            ("smtp", self.smtp),
            ("submission", self.submission),
            ("submissions", self.submissions),
            ("imap", self.imap),
            ("imaps", self.imaps),
            ("pop3", self.pop3),
            ("pop3s", self.pop3s),
            ("http", self.http),
        ]
    }

    /// All listeners off; tests start from this and turn on the one they exercise.
    pub fn disabled() -> Listen {
        Listen {
            smtp: None,
            submission: None,
            submissions: None,
            imap: None,
            imaps: None,
            pop3: None,
            pop3s: None,
            http: None,
        }
    }
}

// ---------------------------------------------------------------------------
// Loading

/// The file as written: only the keys whose absence must be told apart from the
/// default (relative `data_dir`, the machine-dependent `hostname`) are `Option`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    hostname: Option<String>,
    data_dir: Option<PathBuf>,
    domains: Option<Vec<Domain>>,
    #[serde(default)]
    listen: Listen,
    #[serde(default)]
    tls: Tls,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    auth: AuthLimits,
    #[serde(default)]
    relay: Relay,
    #[serde(default)]
    queue: Queue,
    #[serde(default)]
    store: StoreSettings,
    #[serde(default)]
    checks: Checks,
    #[serde(default)]
    http: Http,
    #[serde(default)]
    log: Log,
}

/// A listener address: `"IP:port"`, or `""` for "off".
fn deserialize_listen<'de, D: Deserializer<'de>>(de: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(de)?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    trimmed.parse::<SocketAddr>().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "invalid socket address \"{text}\" (expected \"IP:port\" such as \"0.0.0.0:25\" or \"[::]:25\", or \"\" to turn the listener off)"
        ))
    })
}

/// `relay.resolver`: an array of `"IP:port"` strings. Each element is read on its
/// own so that an error names it (`relay.resolver[1]`).
fn deserialize_resolver<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<SocketAddr>, D::Error> {
    struct Server(SocketAddr);
    impl<'de> Deserialize<'de> for Server {
        fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Server, D::Error> {
            let text = String::deserialize(de)?;
            text.trim().parse().map(Server).map_err(|_| {
                de::Error::custom(format!(
                    "invalid DNS server address \"{text}\" (expected \"IP:port\" such as \"192.0.2.53:53\" or \"[2001:db8::53]:53\")"
                ))
            })
        }
    }
    let servers = Vec::<Server>::deserialize(de)?;
    Ok(servers.into_iter().map(|s| s.0).collect())
}

/// `relay.smarthost`: `"host:port"`, or `""` for none.
fn deserialize_smarthost<'de, D: Deserializer<'de>>(de: D) -> Result<Option<HostPort>, D::Error> {
    let text = String::deserialize(de)?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    HostPortVisitor.visit_str(&text).map(Some)
}

/// A string where `""` means "not set".
fn deserialize_optional_string<'de, D: Deserializer<'de>>(
    de: D,
) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(de)?;
    Ok(Some(text).filter(|t| !t.is_empty()))
}

/// A secret where `""` means "not set".
fn deserialize_secret<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Secret>, D::Error> {
    Ok(deserialize_optional_string(de)?.map(Secret::new))
}

/// `[relay.routes]`: `"domain" = "host:port"` entries. Keys are parsed as domains
/// while reading the value (see [`RouteSeed`]), so that errors about a key name it
/// (`relay.routes.example.net`); two spellings of one domain are an error rather
/// than one silently replacing the other.
fn deserialize_routes<'de, D: Deserializer<'de>>(
    de: D,
) -> Result<BTreeMap<Domain, HostPort>, D::Error> {
    struct RoutesVisitor;
    impl<'de> Visitor<'de> for RoutesVisitor {
        type Value = BTreeMap<Domain, HostPort>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a table of \"domain\" = \"host:port\" entries")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut routes = BTreeMap::new();
            let mut written: BTreeMap<Domain, String> = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                let (domain, hop) = map.next_value_seed(RouteSeed {
                    key: &key,
                    written: &written,
                })?;
                written.insert(domain.clone(), key);
                routes.insert(domain, hop);
            }
            Ok(routes)
        }
    }
    de.deserialize_map(RoutesVisitor)
}

/// Reads one route's value, checking its key first: an error raised while the
/// value is read is attributed to `relay.routes.<key>`, one raised between
/// entries only to `relay.routes`.
struct RouteSeed<'a> {
    key: &'a str,
    /// Routes read so far, with the key as written.
    written: &'a BTreeMap<Domain, String>,
}

impl<'de> DeserializeSeed<'de> for RouteSeed<'_> {
    type Value = (Domain, HostPort);
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        let key = self.key;
        let domain = Domain::parse(key.trim())
            .map_err(|_| de::Error::custom(format!("\"{key}\" is not a domain name")))?;
        if let Some(first) = self.written.get(&domain) {
            return Err(de::Error::custom(format!(
                "\"{key}\" is the same domain as \"{first}\", which already has a route"
            )));
        }
        Ok((domain, de.deserialize_str(RouteVisitor)?))
    }
}

/// [`HostPortVisitor`] with a hint for the likely mistake of an unquoted domain
/// key, which TOML reads as nested tables (`example.net = …` is `example.net`).
struct RouteVisitor;

impl Visitor<'_> for RouteVisitor {
    type Value = HostPort;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a \"host:port\" string, with the domain in quotes: \"example.net\" = \"192.0.2.25:25\"",
        )
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<HostPort, E> {
        HostPortVisitor.visit_str(v)
    }
}

/// `checks.skip`: networks, each stored in canonical form and named by its index
/// in errors (`checks.skip[1]`).
fn deserialize_networks<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    struct Network(String);
    impl<'de> Deserialize<'de> for Network {
        fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Network, D::Error> {
            let text = String::deserialize(de)?;
            canonical_network(&text)
                .map(Network)
                .map_err(de::Error::custom)
        }
    }
    struct Networks;
    impl<'de> Visitor<'de> for Networks {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of networks such as [\"127.0.0.0/8\", \"::1/128\"]")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while let Some(Network(net)) = seq.next_element()? {
                out.push(net);
            }
            Ok(out)
        }
    }
    de.deserialize_seq(Networks)
}

/// A network in the canonical text `checks.skip` holds, or why it is not one.
fn canonical_network(text: &str) -> Result<String, String> {
    match units::parse_network(text) {
        Ok((ip, len)) => Ok(format!("{ip}/{len}")),
        Err(why) => Err(format!("invalid network \"{text}\": {why}")),
    }
}

impl Config {
    /// Reads and validates a config file. Relative paths inside the file
    /// (`data_dir`, `tls.cert`, `tls.key`, `relay.smarthost_ca`) are resolved against
    /// the directory containing the file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        Config::from_toml(&text, base)
    }

    /// [`Config::load`] for an optional path: `None` means the built-in defaults,
    /// which is what the binary does when neither `--config` nor `POCHTA_CONFIG` is set.
    pub fn load_or_default(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            Some(path) => Config::load(path),
            None => Ok(Config::default()),
        }
    }

    /// Parses and validates TOML text; relative paths are resolved against `base_dir`.
    /// Keys that are absent keep their defaults (a default `data_dir` stays relative
    /// to the working directory).
    pub fn from_toml(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let de = toml::Deserializer::parse(text).map_err(|e| syntax_error(text, &e))?;
        let file: FileConfig =
            serde_path_to_error::deserialize(de).map_err(|e| value_error(text, e))?;

        let hostname = match file.hostname {
            None => system_hostname(),
            Some(name) => match Domain::parse(name.trim()) {
                Ok(d) if d.is_literal() => {
                    return Err(ConfigError::invalid(
                        "hostname",
                        format!("\"{name}\" is an address literal; a host name is needed"),
                    ));
                }
                Ok(d) => d.as_str().to_owned(),
                Err(e) => return Err(ConfigError::invalid("hostname", e.to_string())),
            },
        };
        let mut tls = file.tls;
        tls.cert = tls.cert.map(|p| resolve(base_dir, p));
        tls.key = tls.key.map(|p| resolve(base_dir, p));
        let mut relay = file.relay;
        relay.smarthost_ca = relay.smarthost_ca.map(|p| resolve(base_dir, p));
        let config = Config {
            hostname,
            data_dir: match file.data_dir {
                Some(dir) => resolve(base_dir, dir),
                None => Config::default_data_dir(),
            },
            domains: file.domains.unwrap_or_else(|| vec![localhost()]),
            listen: file.listen,
            tls,
            limits: file.limits,
            auth: file.auth,
            relay,
            queue: file.queue,
            store: file.store,
            checks: file.checks,
            http: file.http,
            log: file.log,
        };
        config.validate()?;
        Ok(config)
    }

    fn default_data_dir() -> PathBuf {
        PathBuf::from("./pochta-data")
    }

    /// Checks every rule a loaded configuration obeys. [`Config::from_toml`] calls it;
    /// code that builds a `Config` by hand (tests, the quick-start) can call it too.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match Domain::parse(&self.hostname) {
            Ok(d) if d.is_literal() => {
                return Err(ConfigError::invalid(
                    "hostname",
                    format!(
                        "\"{}\" is an address literal; a host name is needed",
                        self.hostname
                    ),
                ));
            }
            Ok(_) => {}
            Err(e) => return Err(ConfigError::invalid("hostname", e.to_string())),
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::invalid("data_dir", "must not be empty"));
        }
        self.validate_domains()?;
        self.validate_listen()?;
        self.validate_tls()?;
        self.validate_limits()?;
        self.validate_relay()?;
        self.validate_queue()?;
        let retention = self.store.change_log_retention;
        if !retention.is_zero() && retention < Duration::from_secs(24 * 3600) {
            return Err(ConfigError::invalid(
                "store.change_log_retention",
                format!(
                    "\"{}\" is shorter than a day; clients away longer would have to fetch everything again (0 keeps the log forever)",
                    units::format_duration(retention)
                ),
            ));
        }
        self.validate_checks()?;
        validate_log_level(&self.log.level)?;
        Ok(())
    }

    fn validate_domains(&self) -> Result<(), ConfigError> {
        if self.domains.is_empty() {
            return Err(ConfigError::invalid(
                "domains",
                "must list at least one local domain",
            ));
        }
        for (i, d) in self.domains.iter().enumerate() {
            if d.is_literal() {
                return Err(ConfigError::invalid(
                    format!("domains[{i}]"),
                    format!("\"{d}\" is an address literal, which can never be a local domain"),
                ));
            }
            if let Some(first) = self.domains[..i].iter().position(|e| e == d) {
                return Err(ConfigError::invalid(
                    format!("domains[{i}]"),
                    format!("\"{d}\" is listed twice (also domains[{first}])"),
                ));
            }
        }
        Ok(())
    }

    fn validate_listen(&self) -> Result<(), ConfigError> {
        let all = self.listen.all();
        for (i, (name, addr)) in all.iter().enumerate() {
            let Some(addr) = addr else { continue };
            for (other_name, other) in &all[..i] {
                let Some(other) = other else { continue };
                if listeners_clash(*addr, *other) {
                    return Err(ConfigError::invalid(
                        format!("listen.{name}"),
                        format!(
                            "address {addr} clashes with listen.{other_name} ({other}); each listener needs its own address"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_tls(&self) -> Result<(), ConfigError> {
        match (&self.tls.cert, &self.tls.key) {
            (None, None) => Ok(()),
            (Some(_), None) => Err(ConfigError::invalid(
                "tls.key",
                "not set, but tls.cert is: give both the certificate and its PEM private key, or neither for a self-signed certificate",
            )),
            (None, Some(_)) => Err(ConfigError::invalid(
                "tls.cert",
                "not set, but tls.key is: give both the PEM certificate chain and its key, or neither for a self-signed certificate",
            )),
            (Some(cert), Some(key)) => {
                check_readable("tls.cert", cert)?;
                check_readable("tls.key", key)
            }
        }
    }

    fn validate_limits(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        let usize_u64 = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        at_least("limits.message_size", l.message_size, 1024)?;
        at_least("limits.recipients", usize_u64(l.recipients), 1)?;
        at_least("limits.connections_per_ip", l.connections_per_ip.into(), 1)?;
        at_least("limits.connections", l.connections.into(), 1)?;
        positive("limits.command_timeout", l.command_timeout)?;
        positive("limits.data_timeout", l.data_timeout)?;
        at_least("limits.line_length", usize_u64(l.line_length), 512)?;
        at_least("limits.errors", l.errors.into(), 1)?;
        let a = &self.auth;
        at_least("auth.lockout_after", a.lockout_after.into(), 1)?;
        positive("auth.lockout", a.lockout)?;
        positive("auth.window", a.window)?;
        Ok(())
    }

    fn validate_relay(&self) -> Result<(), ConfigError> {
        let r = &self.relay;
        for (i, server) in r.resolver.iter().enumerate() {
            if server.port() == 0 || server.ip().is_unspecified() {
                return Err(ConfigError::invalid(
                    format!("relay.resolver[{i}]"),
                    format!(
                        "{server} is not a DNS server address (a real IP and a port from 1 to 65535, usually 53)"
                    ),
                ));
            }
        }
        positive("relay.dns_timeout", r.dns_timeout)?;
        at_least("relay.mx_port", r.mx_port.into(), 1)?;
        positive("relay.connect_timeout", r.connect_timeout)?;
        if let Some(hop) = &r.smarthost {
            check_host_port("relay.smarthost", hop)?;
        }
        match (&r.smarthost_user, &r.smarthost_password) {
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    "relay.smarthost_password",
                    "not set, but relay.smarthost_user is: give both the user name and the password for the smarthost, or neither",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "relay.smarthost_user",
                    "not set, but relay.smarthost_password is: give both the user name and the password for the smarthost, or neither",
                ));
            }
            (Some(user), Some(password)) => {
                if user.chars().any(char::is_control) {
                    return Err(ConfigError::invalid(
                        "relay.smarthost_user",
                        "must not contain control characters",
                    ));
                }
                // NUL separates the fields of AUTH PLAIN (RFC 4616 §2).
                if password.expose().contains('\0') {
                    return Err(ConfigError::invalid(
                        "relay.smarthost_password",
                        "must not contain a NUL character",
                    ));
                }
            }
            (None, None) => {}
        }
        // Settings that only make sense with a smarthost are errors without one, as
        // everywhere in this file: nothing written in it is silently ignored.
        if r.smarthost.is_none() {
            if r.smarthost_user.is_some() {
                return Err(ConfigError::invalid(
                    "relay.smarthost_user",
                    "set, but relay.smarthost is not: credentials are only used with a smarthost",
                ));
            }
            if r.smarthost_ca.is_some() {
                return Err(ConfigError::invalid(
                    "relay.smarthost_ca",
                    "set, but relay.smarthost is not: the CA file only verifies a smarthost",
                ));
            }
        }
        if r.smarthost_tls == SmarthostTls::None {
            if r.smarthost_user.is_some() {
                return Err(ConfigError::invalid(
                    "relay.smarthost_tls",
                    "\"none\" would send relay.smarthost_password in clear: use \"starttls\" or \"implicit\" with credentials",
                ));
            }
            if r.smarthost_ca.is_some() {
                return Err(ConfigError::invalid(
                    "relay.smarthost_ca",
                    "set, but relay.smarthost_tls is \"none\": without TLS there is no certificate to verify",
                ));
            }
        }
        if let Some(ca) = &r.smarthost_ca {
            check_readable("relay.smarthost_ca", ca)?;
        }
        for (domain, hop) in &r.routes {
            let key = format!("relay.routes.{domain}");
            if domain.is_literal() {
                return Err(ConfigError::invalid(
                    key,
                    format!("\"{domain}\" is an address literal; routes are for domain names"),
                ));
            }
            if let Some(i) = self.domains.iter().position(|d| d == domain) {
                return Err(ConfigError::invalid(
                    key,
                    format!(
                        "\"{domain}\" is a local domain (domains[{i}]): its mail is delivered here, so it cannot have a route"
                    ),
                ));
            }
            check_host_port(&key, hop)?;
        }
        Ok(())
    }

    fn validate_queue(&self) -> Result<(), ConfigError> {
        let q = &self.queue;
        positive("queue.retry", q.retry)?;
        if q.max_retry < q.retry {
            return Err(ConfigError::invalid(
                "queue.max_retry",
                format!(
                    "\"{}\" is shorter than queue.retry (\"{}\"); it is the longest wait between two attempts",
                    units::format_duration(q.max_retry),
                    units::format_duration(q.retry)
                ),
            ));
        }
        positive("queue.expire", q.expire)?;
        at_least("queue.concurrency", q.concurrency.into(), 1)?;
        at_least("queue.per_domain", q.per_domain.into(), 1)?;
        Ok(())
    }

    fn validate_checks(&self) -> Result<(), ConfigError> {
        for (i, net) in self.checks.skip.iter().enumerate() {
            canonical_network(net)
                .map_err(|why| ConfigError::invalid(format!("checks.skip[{i}]"), why))?;
        }
        Ok(())
    }

    /// Directory of the generated self-signed certificate (`<data_dir>/tls`).
    pub fn tls_dir(&self) -> PathBuf {
        self.data_dir.join("tls")
    }

    /// True if mail for `d` is delivered here. Address literals never are, so that
    /// `user@[127.0.0.1]` cannot be used to reach local mailboxes or relay.
    pub fn is_local_domain(&self, d: &Domain) -> bool {
        !d.is_literal() && self.domains.contains(d)
    }

    /// The first local domain: the default domain for bare user names and the
    /// domain of postmaster and bounce addresses.
    pub fn primary_domain(&self) -> &Domain {
        static FALLBACK: LazyLock<Domain> = LazyLock::new(localhost);
        // `domains` is never empty after validation; a hand-built Config that skipped
        // validation gets `localhost` rather than a panic.
        self.domains.first().unwrap_or(&FALLBACK)
    }

    /// The effective configuration as TOML, every key written out; `pochta` prints it
    /// so operators can see what the server actually uses. Paths are written as held
    /// (non-UTF-8 parts lossily), so relative ones resolve against the file's directory
    /// when read back.
    ///
    /// A set `relay.smarthost_password` is not written: the output is for reading,
    /// and goes to terminals, logs and bug reports. Its line becomes a comment
    /// (`# smarthost_password = (set, not shown)`) rather than a masked value such as
    /// `"********"`, which would read back as a wrong password and fail only at the
    /// smarthost; without the password, reading the output back fails at once,
    /// naming `relay.smarthost_password`. Every other configuration reads back equal.
    pub fn to_toml(&self) -> String {
        use std::fmt::Write as _;
        let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let p = |path: &Path| q(&path.to_string_lossy());
        let d = |d: Duration| q(&units::format_duration(d));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = writeln!(out, "hostname = {}", q(&self.hostname));
        let _ = writeln!(out, "data_dir = {}", p(&self.data_dir));
        let domains: Vec<String> = self.domains.iter().map(|d| q(d.as_str())).collect();
        let _ = writeln!(out, "domains = [{}]", domains.join(", "));
        let _ = writeln!(out, "\n[listen]");
        for (name, addr) in self.listen.all() {
            let value = addr.map(|a| a.to_string()).unwrap_or_default();
            let _ = writeln!(out, "{name} = {}", q(&value));
        }
        let _ = writeln!(out, "\n[tls]");
        if let Some(cert) = &self.tls.cert {
            let _ = writeln!(out, "cert = {}", p(cert));
        }
        if let Some(key) = &self.tls.key {
            let _ = writeln!(out, "key = {}", p(key));
        }
        let l = &self.limits;
        let _ = writeln!(out, "\n[limits]");
        let _ = writeln!(out, "message_size = {}", format_size(l.message_size));
        let _ = writeln!(out, "recipients = {}", l.recipients);
        let _ = writeln!(out, "connections_per_ip = {}", l.connections_per_ip);
        let _ = writeln!(out, "connections = {}", l.connections);
        let _ = writeln!(out, "command_timeout = {}", d(l.command_timeout));
        let _ = writeln!(out, "data_timeout = {}", d(l.data_timeout));
        let _ = writeln!(out, "line_length = {}", l.line_length);
        let _ = writeln!(out, "errors = {}", l.errors);
        let _ = writeln!(out, "shutdown_grace = {}", d(l.shutdown_grace));
        let a = &self.auth;
        let _ = writeln!(out, "\n[auth]");
        let _ = writeln!(out, "delay_after = {}", a.delay_after);
        let _ = writeln!(out, "lockout_after = {}", a.lockout_after);
        let _ = writeln!(out, "lockout = {}", d(a.lockout));
        let _ = writeln!(out, "window = {}", d(a.window));
        let r = &self.relay;
        let _ = writeln!(out, "\n[relay]");
        let resolver: Vec<String> = r.resolver.iter().map(|a| q(&a.to_string())).collect();
        let _ = writeln!(out, "resolver = [{}]", resolver.join(", "));
        let _ = writeln!(out, "dns_timeout = {}", d(r.dns_timeout));
        let _ = writeln!(out, "mx_port = {}", r.mx_port);
        let _ = writeln!(out, "tls = {}", q(&r.tls.to_string()));
        let _ = writeln!(out, "mta_sts = {}", r.mta_sts);
        let _ = writeln!(out, "connect_timeout = {}", d(r.connect_timeout));
        let smarthost = r.smarthost.as_ref().map(HostPort::to_string);
        let _ = writeln!(out, "smarthost = {}", q(&smarthost.unwrap_or_default()));
        let _ = writeln!(out, "smarthost_tls = {}", q(&r.smarthost_tls.to_string()));
        let user = r.smarthost_user.as_deref().unwrap_or_default();
        let _ = writeln!(out, "smarthost_user = {}", q(user));
        match r.smarthost_password {
            None => {
                let _ = writeln!(out, "smarthost_password = \"\"");
            }
            Some(_) => {
                let _ = writeln!(out, "# smarthost_password = (set, not shown)");
            }
        }
        if let Some(ca) = &r.smarthost_ca {
            let _ = writeln!(out, "smarthost_ca = {}", p(ca));
        }
        let _ = writeln!(out, "\n[relay.routes]");
        for (domain, hop) in &r.routes {
            let _ = writeln!(out, "{} = {}", q(domain.as_str()), q(&hop.to_string()));
        }
        let qu = &self.queue;
        let _ = writeln!(out, "\n[queue]");
        let _ = writeln!(out, "retry = {}", d(qu.retry));
        let _ = writeln!(out, "max_retry = {}", d(qu.max_retry));
        let _ = writeln!(out, "expire = {}", d(qu.expire));
        let _ = writeln!(out, "delay_warning = {}", d(qu.delay_warning));
        let _ = writeln!(out, "concurrency = {}", qu.concurrency);
        let _ = writeln!(out, "per_domain = {}", qu.per_domain);
        let _ = writeln!(out, "\n[store]");
        let _ = writeln!(
            out,
            "change_log_retention = {}",
            d(self.store.change_log_retention)
        );
        let c = &self.checks;
        let _ = writeln!(out, "\n[checks]");
        let _ = writeln!(out, "enabled = {}", c.enabled);
        let _ = writeln!(out, "reject_dmarc = {}", c.reject_dmarc);
        let skip: Vec<String> = c.skip.iter().map(|n| q(n)).collect();
        let _ = writeln!(out, "skip = [{}]", skip.join(", "));
        let _ = writeln!(out, "\n[http]");
        let _ = writeln!(out, "plain = {}", self.http.plain);
        let _ = writeln!(out, "\n[log]");
        let _ = writeln!(out, "level = {}", q(&self.log.level));
        let _ = writeln!(out, "format = {}", q(&self.log.format.to_string()));
        out
    }
}

/// A size in the file's syntax: the largest binary unit that divides it exactly.
fn format_size(bytes: u64) -> String {
    for (unit, size) in [("G", 1u64 << 30), ("M", 1 << 20), ("k", 1 << 10)] {
        if bytes != 0 && bytes.is_multiple_of(size) {
            return format!("\"{}{unit}\"", bytes / size);
        }
    }
    bytes.to_string()
}

/// Two listeners clash when binding both would fail: the same port (0 = "any free
/// port" never clashes) on the same IP, or on the same family where one is the
/// wildcard address.
fn listeners_clash(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() != b.port() || a.port() == 0 {
        return false;
    }
    a.ip() == b.ip()
        || (a.is_ipv4() == b.is_ipv4() && (a.ip().is_unspecified() || b.ip().is_unspecified()))
}

fn at_least(key: &str, value: u64, min: u64) -> Result<(), ConfigError> {
    if value < min {
        return Err(ConfigError::invalid(
            key,
            format!("{value} is too small (at least {min})"),
        ));
    }
    Ok(())
}

fn positive(key: &str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(ConfigError::invalid(key, "must be longer than zero"));
    }
    Ok(())
}

/// A hand-built [`HostPort`] must be what parsing its text gives: a valid host in
/// canonical form and a port other than 0.
fn check_host_port(key: &str, hop: &HostPort) -> Result<(), ConfigError> {
    match hop.to_string().parse::<HostPort>() {
        Ok(parsed) if parsed == *hop => Ok(()),
        Ok(parsed) => Err(ConfigError::invalid(
            key,
            format!("\"{hop}\" is not in canonical form (\"{parsed}\")"),
        )),
        Err(why) => Err(ConfigError::invalid(
            key,
            format!("invalid host:port \"{hop}\": {why}"),
        )),
    }
}

fn check_readable(key: &str, path: &Path) -> Result<(), ConfigError> {
    if path.as_os_str().is_empty() {
        return Err(ConfigError::invalid(key, "empty path"));
    }
    let fail = |why: String| {
        ConfigError::invalid(key, format!("cannot read \"{}\": {why}", path.display()))
    };
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".to_owned()));
    }
    Ok(())
}

/// Only plain level names are checked strictly: anything with `=` or `,` is an
/// `EnvFilter` directive that the binary's subscriber parses (and reports) itself.
fn validate_log_level(level: &str) -> Result<(), ConfigError> {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    let trimmed = level.trim();
    if trimmed.contains('=') || trimmed.contains(',') {
        return Ok(());
    }
    if LEVELS.iter().any(|l| l.eq_ignore_ascii_case(trimmed)) {
        return Ok(());
    }
    Err(ConfigError::invalid(
        "log.level",
        format!(
            "unknown level \"{level}\" (expected one of: {}, or a filter such as \"info,pochta_store=debug\")",
            LEVELS.join(", ")
        ),
    ))
}

fn resolve(base: &Path, path: PathBuf) -> PathBuf {
    if path.is_absolute() || path.as_os_str().is_empty() {
        path
    } else {
        // Collecting components drops interior "." ("/etc/pochta/./data" -> "/etc/pochta/data").
        base.join(path).components().collect()
    }
}

/// `line L, column C` (both 1-based) of a byte offset, for syntax errors.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn syntax_error(text: &str, err: &toml::de::Error) -> ConfigError {
    let message = err.message().trim().to_owned();
    let message = match err.span() {
        Some(span) => {
            let (line, column) = position(text, span.start);
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    };
    ConfigError::Parse { message }
}

fn value_error(text: &str, err: serde_path_to_error::Error<toml::de::Error>) -> ConfigError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    let message = inner.message().trim();
    if let Some((field, expected)) = parse_unknown_field(message) {
        // serde_path_to_error records the key it was reading when the error came, so
        // the path usually already ends with the unknown key.
        let key = if path == "." {
            field.clone()
        } else if path == field || path.ends_with(&format!(".{field}")) {
            path
        } else {
            format!("{path}.{field}")
        };
        return ConfigError::UnknownKey { key, expected };
    }
    if path == "." {
        // Not attributable to a key (should not happen with a table at the top):
        // report it like a syntax error, with its position.
        return syntax_error(text, &inner);
    }
    ConfigError::Invalid {
        key: path,
        message: humanize(message),
    }
}

/// Replaces Rust type names in serde's type errors with what a user would write,
/// and words serde's "unknown variant" like the file's other messages.
fn humanize(message: &str) -> String {
    if let Some((value, expected)) = parse_unknown("variant", message) {
        let quoted: Vec<String> = expected.iter().map(|e| format!("\"{e}\"")).collect();
        return format!(
            "unknown value \"{value}\" (expected one of: {})",
            quoted.join(", ")
        );
    }
    let Some((head, expected)) = message.rsplit_once(", expected ") else {
        return message.to_owned();
    };
    let plain = match expected {
        "usize" | "u64" => "a whole number",
        "u32" => "a whole number from 0 to 4294967295",
        "a sequence" => "an array",
        e if e.starts_with("struct ") => "a table",
        _ => return message.to_owned(),
    };
    format!("{head}, expected {plain}")
}

/// Picks apart serde's standard `unknown field` message (see
/// `serde::de::Error::unknown_field`): ``unknown field `x`, `` followed by
/// ``expected one of `a`, `b` ``, ``expected `a` or `b` ``, ``expected `a` `` or
/// `there are no fields`.
fn parse_unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    parse_unknown("field", message)
}

/// [`parse_unknown_field`] for `what` = `field` or `variant` (an enum's unknown
/// value, see `serde::de::Error::unknown_variant`).
fn parse_unknown(what: &str, message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix(&format!("unknown {what} `"))?;
    let end = rest
        .find("`, expected ")
        .or_else(|| rest.find(&format!("`, there are no {what}s")))?;
    let field = rest[..end].to_owned();
    let tail = &rest[end + 2..];
    let expected = tail
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    Some((field, expected))
}

#[cfg(test)]
mod tests;
