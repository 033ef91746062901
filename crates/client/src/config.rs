//! The client's accounts: `client.toml`, a plain TOML file the user may edit.
//!
//! ```toml
//! default = "home"          # optional: otherwise the first account
//!
//! [[account]]
//! name = "home"
//! email = "alice@example.org"
//! read_via = "imap"
//! smtp = { host = "mail.example.org", port = 587, security = "starttls" }
//! imap = { host = "mail.example.org", port = 993, security = "tls" }
//! password_command = "pass show mail/alice"
//! ```
//!
//! Passwords are never written here unless the user asked for it with
//! `--save-password`; otherwise they come, in this order, from `POCHTA_PASSWORD`,
//! the account's `password_command`, or an interactive prompt.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{ClientError, Result};
use crate::tls::{Endpoint, Login, Security};

/// The environment variable a password may come from (scripts, tests).
pub const PASSWORD_ENV: &str = "POCHTA_PASSWORD";

/// Standard submission port (STARTTLS), used when only `--host` is given.
pub const SMTP_PORT: u16 = 587;
/// Standard IMAPS port, used when only `--host` is given.
pub const IMAP_PORT: u16 = 993;
/// Standard POP3S port, used when only `--host` is given.
pub const POP3_PORT: u16 = 995;

/// The whole client configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The account used without `--account` (else the first one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// The accounts, in the order they were added.
    #[serde(default, rename = "account", skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<Account>,
}

/// Which protocol browsing commands use by default for an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadVia {
    /// Mail stays on the server, browsed over IMAP.
    Imap,
    /// Mail stays on the server, browsed over JMAP (and sent over JMAP too).
    Jmap,
    /// Mail is fetched over POP3 into the local Maildir and browsed there.
    Pop3,
}

impl std::str::FromStr for ReadVia {
    type Err = ClientError;
    fn from_str(s: &str) -> Result<ReadVia> {
        match s.to_ascii_lowercase().as_str() {
            "imap" => Ok(ReadVia::Imap),
            "jmap" => Ok(ReadVia::Jmap),
            "pop3" | "pop" | "local" => Ok(ReadVia::Pop3),
            _ => Err(ClientError::Usage(format!(
                "unknown protocol {s:?}: use imap, jmap or pop3"
            ))),
        }
    }
}

/// A server (SMTP, IMAP or POP3) of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Implicit TLS, STARTTLS or plain (loopback only).
    pub security: Security,
}

/// One account: who the user is and where the servers are.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// The name used with `--account`.
    pub name: String,
    /// The user's address (From of sent mail).
    pub email: String,
    /// The display name for From, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The login name, when it is not the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// SMTP submission server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<Server>,
    /// IMAP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imap: Option<Server>,
    /// POP3 server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pop3: Option<Server>,
    /// JMAP session URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jmap: Option<String>,
    /// Where fetched mail is kept (default under `$XDG_DATA_HOME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maildir: Option<PathBuf>,
    /// How browsing commands read mail by default.
    pub read_via: ReadVia,
    /// Accept any TLS certificate (self-signed test servers).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub accept_invalid_certs: bool,
    /// A shell command whose first output line is the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_command: Option<String>,
    /// The password in clear: only when the user asked (`--save-password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl std::fmt::Debug for Account {
    /// Everything but the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("name", &self.name)
            .field("email", &self.email)
            .field("user", &self.user)
            .field("smtp", &self.smtp)
            .field("imap", &self.imap)
            .field("pop3", &self.pop3)
            .field("jmap", &self.jmap)
            .field("read_via", &self.read_via)
            .field("password_saved", &self.password.is_some())
            .finish_non_exhaustive()
    }
}

/// The protocols an account has servers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// SMTP submission.
    Smtp,
    /// IMAP.
    Imap,
    /// POP3.
    Pop3,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Smtp => "smtp",
            Protocol::Imap => "imap",
            Protocol::Pop3 => "pop3",
        }
    }
}

/// What `pochta mail account add` was given, before defaults are filled in.
#[derive(Debug, Clone, Default)]
pub struct AccountOptions {
    /// `NAME`.
    pub name: String,
    /// `--email`.
    pub email: String,
    /// `--name` (display name).
    pub display_name: Option<String>,
    /// `--user`.
    pub user: Option<String>,
    /// `--host`: fills in every server not given explicitly.
    pub host: Option<String>,
    /// `--smtp HOST[:PORT]`.
    pub smtp: Option<String>,
    /// `--imap HOST[:PORT]`.
    pub imap: Option<String>,
    /// `--pop3 HOST[:PORT]`.
    pub pop3: Option<String>,
    /// `--jmap URL`.
    pub jmap: Option<String>,
    /// `--maildir DIR`.
    pub maildir: Option<PathBuf>,
    /// `--read-via`.
    pub read_via: Option<ReadVia>,
    /// `--accept-invalid-certs`.
    pub accept_invalid_certs: bool,
    /// `--security-smtp`.
    pub security_smtp: Option<Security>,
    /// `--security-imap`.
    pub security_imap: Option<Security>,
    /// `--security-pop3`.
    pub security_pop3: Option<Security>,
    /// `--password-command`.
    pub password_command: Option<String>,
    /// The password to store in clear (`--save-password` only).
    pub saved_password: Option<String>,
}

/// Parses a security name given on the command line.
pub fn parse_security(s: &str) -> Result<Security> {
    match s.to_ascii_lowercase().as_str() {
        "tls" | "ssl" | "implicit" => Ok(Security::Tls),
        "starttls" | "stls" => Ok(Security::Starttls),
        "plain" | "none" => Ok(Security::Plain),
        _ => Err(ClientError::Usage(format!(
            "unknown security {s:?}: use tls, starttls or plain"
        ))),
    }
}

/// Splits `HOST:PORT`, `[v6]:PORT`, or a bare `HOST` (then `default_port`).
pub fn parse_host_port(s: &str, default_port: u16) -> Result<(String, u16)> {
    let bad = || ClientError::Usage(format!("{s:?} is not HOST:PORT"));
    let s = s.trim();
    if s.is_empty() {
        return Err(bad());
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if after.is_empty() => default_port,
            None => return Err(bad()),
        };
        return Ok((host.to_string(), port));
    }
    match s.rsplit_once(':') {
        // More than one colon without brackets: a bare IPv6 address.
        Some((host, _)) if host.contains(':') => Ok((s.to_string(), default_port)),
        Some((host, port)) if !host.is_empty() => {
            Ok((host.to_string(), port.parse().map_err(|_| bad())?))
        }
        Some(_) => Err(bad()),
        None => Ok((s.to_string(), default_port)),
    }
}

fn server(
    given: Option<&str>,
    host: Option<&str>,
    default_port: u16,
    security: Option<Security>,
) -> Result<Option<Server>> {
    let (host, port) = match (given, host) {
        (Some(g), _) => parse_host_port(g, default_port)?,
        (None, Some(h)) => (h.to_string(), default_port),
        (None, None) => return Ok(None),
    };
    let security = security.unwrap_or_else(|| Security::for_port(port));
    Ok(Some(Server {
        host,
        port,
        security,
    }))
}

impl Account {
    /// Builds an account from `account add`'s options: `--host` fills the
    /// standard ports, security follows the port unless overridden, `plain`
    /// is refused except to loopback, and the read protocol defaults to the
    /// first of IMAP, JMAP, POP3 that has a server.
    pub fn from_options(o: AccountOptions) -> Result<Account> {
        if o.name.is_empty() || o.name.chars().any(|c| c.is_control() || c == '/') {
            return Err(ClientError::Usage(format!(
                "{:?} is not a valid account name",
                o.name
            )));
        }
        if !valid_address(&o.email) {
            return Err(ClientError::Usage(format!(
                "{:?} is not an e-mail address",
                o.email
            )));
        }
        let host = o.host.as_deref();
        let smtp = server(o.smtp.as_deref(), host, SMTP_PORT, o.security_smtp)?;
        let imap = server(o.imap.as_deref(), host, IMAP_PORT, o.security_imap)?;
        let pop3 = server(o.pop3.as_deref(), host, POP3_PORT, o.security_pop3)?;
        let jmap = match (o.jmap, host) {
            (Some(url), _) => Some(url),
            (None, Some(h)) => Some(format!("https://{h}/.well-known/jmap")),
            (None, None) => None,
        };
        if let Some(url) = &jmap
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ClientError::Usage(format!(
                "--jmap {url:?}: give the session URL, https://…"
            )));
        }
        for (proto, s) in [("smtp", &smtp), ("imap", &imap), ("pop3", &pop3)] {
            if let Some(s) = s {
                check_plain(proto, s)?;
            }
        }
        let read_via = match o.read_via {
            Some(v) => v,
            None if imap.is_some() => ReadVia::Imap,
            None if jmap.is_some() => ReadVia::Jmap,
            None if pop3.is_some() => ReadVia::Pop3,
            None => ReadVia::Imap,
        };
        let missing = match read_via {
            ReadVia::Imap => imap.is_none().then_some("--imap"),
            ReadVia::Jmap => jmap.is_none().then_some("--jmap"),
            ReadVia::Pop3 => pop3.is_none().then_some("--pop3"),
        };
        if let Some(flag) = missing
            && o.read_via.is_some()
        {
            return Err(ClientError::Usage(format!(
                "--read-via {}: the account has no server for it; add {flag} (or --host)",
                format!("{read_via:?}").to_ascii_lowercase()
            )));
        }
        Ok(Account {
            name: o.name,
            email: o.email,
            display_name: o.display_name,
            user: o.user,
            smtp,
            imap,
            pop3,
            jmap,
            maildir: o.maildir,
            read_via,
            accept_invalid_certs: o.accept_invalid_certs,
            password_command: o.password_command,
            password: o.saved_password,
        })
    }

    /// The login name: `user`, else the address.
    pub fn login_name(&self) -> &str {
        self.user.as_deref().unwrap_or(&self.email)
    }

    /// How to reach the account's server for `proto`.
    pub fn endpoint(&self, proto: Protocol) -> Result<Endpoint> {
        let s = match proto {
            Protocol::Smtp => &self.smtp,
            Protocol::Imap => &self.imap,
            Protocol::Pop3 => &self.pop3,
        }
        .as_ref()
        .ok_or_else(|| {
            ClientError::Usage(format!(
                "account {:?} has no {} server: add it again with --{} HOST:PORT (or --host HOST)",
                self.name,
                proto.name(),
                proto.name()
            ))
        })?;
        check_plain(proto.name(), s)?;
        Ok(Endpoint {
            host: s.host.clone(),
            port: s.port,
            security: s.security,
            accept_invalid_certs: self.accept_invalid_certs,
        })
    }

    /// The JMAP session URL.
    pub fn jmap_url(&self) -> Result<&str> {
        self.jmap.as_deref().ok_or_else(|| {
            ClientError::Usage(format!(
                "account {:?} has no JMAP server: add it again with --jmap URL",
                self.name
            ))
        })
    }

    /// The local Maildir: `maildir`, else `$XDG_DATA_HOME/pochta/mail/NAME`
    /// (`~/.local/share/…` without it).
    pub fn maildir_path(&self) -> Result<PathBuf> {
        if let Some(dir) = &self.maildir {
            return Ok(dir.clone());
        }
        Ok(data_home()?.join("pochta").join("mail").join(&self.name))
    }

    /// The login with its password, from (in order) `env_password` (the
    /// caller passes `POCHTA_PASSWORD`), the saved password, the
    /// `password_command`, or `prompt`.
    pub fn login(
        &self,
        env_password: Option<String>,
        prompt: &mut dyn FnMut(&str) -> Result<String>,
    ) -> Result<Login> {
        let password = if let Some(p) = env_password.filter(|p| !p.is_empty()) {
            p
        } else if let Some(p) = &self.password {
            p.clone()
        } else if let Some(cmd) = &self.password_command {
            run_password_command(cmd)?
        } else {
            prompt(&format!(
                "Password for {} ({}): ",
                self.login_name(),
                self.name
            ))?
        };
        Ok(Login {
            user: self.login_name().to_string(),
            password,
        })
    }
}

fn check_plain(proto: &str, s: &Server) -> Result<()> {
    if s.security != Security::Plain {
        return Ok(());
    }
    let e = Endpoint {
        host: s.host.clone(),
        port: s.port,
        security: s.security,
        accept_invalid_certs: false,
    };
    if e.is_loopback() {
        Ok(())
    } else {
        Err(ClientError::Usage(format!(
            "{proto} {}: security `plain` is only allowed to loopback addresses (the password would cross the network in clear); use tls or starttls",
            e.display()
        )))
    }
}

/// Runs `cmd` with `sh -c` and returns the first line it prints.
fn run_password_command(cmd: &str) -> Result<String> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| ClientError::io("sh", e))?;
    if !out.status.success() {
        return Err(ClientError::Usage(format!(
            "password_command {cmd:?} failed ({})",
            out.status
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next().unwrap_or("").to_string();
    if line.is_empty() {
        return Err(ClientError::Usage(format!(
            "password_command {cmd:?} printed no password"
        )));
    }
    Ok(line)
}

/// A plausible `local@domain` (no spaces, no angle brackets).
pub fn valid_address(s: &str) -> bool {
    match s.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !s.chars().any(|c| c.is_whitespace() || c.is_control())
                && !s.contains(['<', '>', ',', '(', ')'])
        }
        None => false,
    }
}

fn home() -> Result<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| ClientError::Usage("HOME is not set: give --client-config PATH".to_string()))
}

fn xdg(var: &str, fallback: &[&str]) -> Result<PathBuf> {
    match std::env::var_os(var).filter(|v| Path::new(v).is_absolute()) {
        Some(v) => Ok(PathBuf::from(v)),
        None => Ok(fallback.iter().fold(home()?, |p, c| p.join(c))),
    }
}

fn data_home() -> Result<PathBuf> {
    xdg("XDG_DATA_HOME", &[".local", "share"])
}

/// `$XDG_CONFIG_HOME/pochta/client.toml` (`~/.config/…` without it).
pub fn default_path() -> Result<PathBuf> {
    Ok(xdg("XDG_CONFIG_HOME", &[".config"])?
        .join("pochta")
        .join("client.toml"))
}

impl ClientConfig {
    /// Reads the file; a missing file is an empty configuration.
    pub fn load(path: &Path) -> Result<ClientConfig> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ClientConfig::default());
            }
            Err(e) => return Err(ClientError::io(path, e)),
        };
        toml::from_str(&text)
            .map_err(|e| ClientError::Usage(format!("{}: {}", path.display(), e.message())))
    }

    /// Writes the file (created with mode 0600, replaced atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = toml::to_string(self)
            .map_err(|e| ClientError::Usage(format!("cannot write the configuration: {e}")))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| ClientError::io(dir, e))?;
        }
        let tmp = path.with_extension("toml.tmp");
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(|e| ClientError::io(&tmp, e))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| ClientError::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| ClientError::io(path, e))
    }

    /// Adds an account; the name must be new.
    pub fn add(&mut self, account: Account) -> Result<()> {
        if self.accounts.iter().any(|a| a.name == account.name) {
            return Err(ClientError::Usage(format!(
                "an account named {:?} exists already (remove it with `pochta mail account del {}`)",
                account.name, account.name
            )));
        }
        self.accounts.push(account);
        Ok(())
    }

    /// Removes an account; returns it.
    pub fn remove(&mut self, name: &str) -> Result<Account> {
        let pos = self
            .accounts
            .iter()
            .position(|a| a.name == name)
            .ok_or_else(|| self.unknown(name))?;
        if self.default.as_deref() == Some(name) {
            self.default = None;
        }
        Ok(self.accounts.remove(pos))
    }

    /// The name of the default account.
    pub fn default_name(&self) -> Option<&str> {
        self.default
            .as_deref()
            .filter(|d| self.accounts.iter().any(|a| a.name == *d))
            .or_else(|| self.accounts.first().map(|a| a.name.as_str()))
    }

    /// The account `name`, or the default one.
    pub fn account(&self, name: Option<&str>) -> Result<&Account> {
        let name = match name.or_else(|| self.default_name()) {
            Some(n) => n,
            None => {
                return Err(ClientError::Usage(
                    "no account configured yet: add one with `pochta mail account add NAME --email ADDR --host HOST`".into(),
                ));
            }
        };
        self.accounts
            .iter()
            .find(|a| a.name == name)
            .ok_or_else(|| self.unknown(name))
    }

    fn unknown(&self, name: &str) -> ClientError {
        let names: Vec<&str> = self.accounts.iter().map(|a| a.name.as_str()).collect();
        ClientError::Usage(format!(
            "no account named {name:?} (configured: {})",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn opts(name: &str) -> AccountOptions {
        AccountOptions {
            name: name.into(),
            email: "alice@example.org".into(),
            ..AccountOptions::default()
        }
    }

    #[test]
    fn host_alone_fills_standard_ports_and_security() {
        let mut o = opts("home");
        o.host = Some("mail.example.org".into());
        let a = Account::from_options(o).unwrap();
        let smtp = a.endpoint(Protocol::Smtp).unwrap();
        assert_eq!((smtp.port, smtp.security), (587, Security::Starttls));
        let imap = a.endpoint(Protocol::Imap).unwrap();
        assert_eq!((imap.port, imap.security), (993, Security::Tls));
        let pop3 = a.endpoint(Protocol::Pop3).unwrap();
        assert_eq!((pop3.port, pop3.security), (995, Security::Tls));
        assert_eq!(
            a.jmap.as_deref(),
            Some("https://mail.example.org/.well-known/jmap")
        );
        assert_eq!(a.read_via, ReadVia::Imap);
    }

    #[test]
    fn security_follows_the_port_unless_overridden() {
        let mut o = opts("x");
        o.smtp = Some("mail.example.org:465".into());
        o.imap = Some("mail.example.org:143".into());
        o.pop3 = Some("mail.example.org:110".into());
        o.security_pop3 = Some(Security::Tls);
        let a = Account::from_options(o).unwrap();
        assert_eq!(a.smtp.as_ref().unwrap().security, Security::Tls);
        assert_eq!(a.imap.as_ref().unwrap().security, Security::Starttls);
        assert_eq!(a.pop3.as_ref().unwrap().security, Security::Tls);
    }

    #[test]
    fn plain_is_refused_except_to_loopback() {
        let mut o = opts("x");
        o.imap = Some("mail.example.org:143".into());
        o.security_imap = Some(Security::Plain);
        let e = Account::from_options(o).unwrap_err();
        assert!(e.is_usage() && e.to_string().contains("loopback"), "{e}");
        let mut o = opts("x");
        o.imap = Some("127.0.0.1:1143".into());
        o.security_imap = Some(Security::Plain);
        assert!(Account::from_options(o).is_ok());
        let mut o = opts("x");
        o.smtp = Some("[::1]:2525".into());
        o.security_smtp = Some(Security::Plain);
        let a = Account::from_options(o).unwrap();
        assert_eq!(a.smtp.as_ref().unwrap().host, "::1");
    }

    #[test]
    fn host_port_parsing() {
        assert_eq!(
            parse_host_port("h.example:25", 1).unwrap(),
            ("h.example".into(), 25)
        );
        assert_eq!(
            parse_host_port("h.example", 587).unwrap(),
            ("h.example".into(), 587)
        );
        assert_eq!(
            parse_host_port("[::1]:993", 1).unwrap(),
            ("::1".into(), 993)
        );
        assert!(parse_host_port("h:notaport", 1).is_err());
        assert!(parse_host_port(":25", 1).is_err());
        assert!(parse_host_port("", 1).is_err());
    }

    #[test]
    fn read_via_needs_its_server() {
        let mut o = opts("x");
        o.smtp = Some("mail.example.org:587".into());
        o.read_via = Some(ReadVia::Pop3);
        assert!(Account::from_options(o).unwrap_err().is_usage());
        let mut o = opts("x");
        o.pop3 = Some("mail.example.org:995".into());
        assert_eq!(Account::from_options(o).unwrap().read_via, ReadVia::Pop3);
    }

    #[test]
    fn round_trip_never_stores_the_password_unless_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/client.toml");
        let mut cfg = ClientConfig::default();
        let mut o = opts("home");
        o.host = Some("mail.example.org".into());
        o.password_command = Some("echo s3cret-from-command".into());
        cfg.add(Account::from_options(o).unwrap()).unwrap();
        let mut o = opts("work");
        o.email = "bob@example.com".into();
        o.imap = Some("127.0.0.1:1143".into());
        o.security_imap = Some(Security::Plain);
        cfg.add(Account::from_options(o).unwrap()).unwrap();
        cfg.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("password ="), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "config readable by others: {mode:o}");
        }
        let back = ClientConfig::load(&path).unwrap();
        assert_eq!(back, cfg);
        assert_eq!(back.account(None).unwrap().name, "home");
        assert_eq!(back.account(Some("work")).unwrap().email, "bob@example.com");
        assert!(back.account(Some("nope")).unwrap_err().is_usage());
        assert!(cfg.add(back.accounts[0].clone()).is_err());

        // Explicitly saved: then (and only then) it is in the file.
        let mut o = opts("saved");
        o.host = Some("h.example".into());
        o.saved_password = Some("hunter2".into());
        cfg.add(Account::from_options(o).unwrap()).unwrap();
        cfg.save(&path).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("hunter2"));
        let removed = cfg.remove("home").unwrap();
        assert_eq!(removed.name, "home");
        assert_eq!(cfg.default_name(), Some("work"));
        assert!(!format!("{:?}", cfg).contains("hunter2"));
    }

    #[test]
    fn missing_file_is_empty_and_bad_file_is_a_usage_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.toml");
        let cfg = ClientConfig::load(&path).unwrap();
        assert!(cfg.accounts.is_empty());
        assert!(cfg.account(None).unwrap_err().is_usage());
        std::fs::write(&path, "[[account]]\nname = 1\n").unwrap();
        assert!(ClientConfig::load(&path).unwrap_err().is_usage());
    }

    #[test]
    fn password_sources_in_order() {
        let mut o = opts("x");
        o.host = Some("h.example".into());
        o.password_command = Some("printf 'from-command\\nsecond line\\n'".into());
        let a = Account::from_options(o).unwrap();
        let mut no_prompt = |_: &str| -> Result<String> { panic!("prompted") };
        assert_eq!(
            a.login(Some("from-env".into()), &mut no_prompt)
                .unwrap()
                .password,
            "from-env"
        );
        let login = a.login(None, &mut no_prompt).unwrap();
        assert_eq!(login.password, "from-command");
        assert_eq!(login.user, "alice@example.org");
        let mut o = opts("y");
        o.host = Some("h.example".into());
        o.user = Some("alice".into());
        let b = Account::from_options(o).unwrap();
        let mut prompt = |_: &str| -> Result<String> { Ok("typed".into()) };
        let login = b.login(None, &mut prompt).unwrap();
        assert_eq!(
            (login.user.as_str(), login.password.as_str()),
            ("alice", "typed")
        );
        let mut o = opts("z");
        o.host = Some("h.example".into());
        o.password_command = Some("exit 3".into());
        let c = Account::from_options(o).unwrap();
        assert!(c.login(None, &mut no_prompt).is_err());
    }
}
