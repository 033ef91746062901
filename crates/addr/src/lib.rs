//! Mail addresses, domains and secrets.
//!
//! Every protocol compares addresses: SMTP decides from them whether a recipient is
//! local, the directory looks accounts up by them, and the relay rules hang on the
//! domain. Doing that on raw strings is how open relays happen (`user@LOCAL.`,
//! `user@xn--…` versus its Unicode form, `"user@remote"@local`), so addresses exist
//! here only in a normalised form that can be compared with `==`:
//!
//! * domains are lower-case A-labels (IDNA, RFC 5890) without a trailing dot, or an
//!   address literal such as `[127.0.0.1]`, which is never a local domain;
//! * local parts keep their spelling for display but compare case-insensitively
//!   (every mail server users meet does, although RFC 5321 §2.4 allows otherwise).

#![forbid(unsafe_code)]

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest local part RFC 5321 §4.5.3.1.1 allows, in octets.
pub const MAX_LOCAL_PART: usize = 64;
/// Longest domain RFC 5321 §4.5.3.1.2 allows, in octets.
pub const MAX_DOMAIN: usize = 255;

/// Why a string is not an address or domain we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    /// No `@` separates a local part from a domain.
    #[error("address has no '@domain' part")]
    MissingDomain,
    /// The local part is empty or too long.
    #[error("local part is empty or longer than 64 octets")]
    BadLocalPart,
    /// The local part holds a character no address may contain (controls, spaces outside quotes).
    #[error("local part contains a forbidden character")]
    ForbiddenChar,
    /// The domain is not a valid host name (or IDNA conversion failed).
    #[error("invalid domain '{0}'")]
    BadDomain(String),
}

/// A mail domain in canonical form: lower-case ASCII (A-labels), no trailing dot.
///
/// Address literals (`[192.0.2.1]`, `[IPv6:…]`) are kept as written so that they can
/// be logged and refused; [`Domain::is_literal`] tells them apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Domain(String);

impl Domain {
    /// Parses and normalises a domain (Unicode is converted to A-labels).
    pub fn parse(input: &str) -> Result<Domain, AddrError> {
        let bad = || AddrError::BadDomain(input.chars().take(80).collect());
        if input.starts_with('[') {
            // RFC 5321 §4.1.3 address literal: accepted as syntax, never local.
            if input.ends_with(']')
                && input.len() <= MAX_DOMAIN
                && input[1..input.len() - 1]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".:-".contains(&b))
            {
                return Ok(Domain(input.to_ascii_lowercase()));
            }
            return Err(bad());
        }
        let trimmed = input.strip_suffix('.').unwrap_or(input);
        if trimmed.is_empty() || trimmed.len() > MAX_DOMAIN {
            return Err(bad());
        }
        let ascii = if trimmed.is_ascii() {
            trimmed.to_ascii_lowercase()
        } else {
            idna::domain_to_ascii(trimmed).map_err(|_| bad())?
        };
        if ascii.is_empty() || ascii.len() > MAX_DOMAIN {
            return Err(bad());
        }
        for label in ascii.split('.') {
            let ok = !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(bad());
            }
        }
        Ok(Domain(ascii))
    }

    /// The canonical text (A-labels, lower case).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for `[…]` address literals, which pochta never treats as local.
    pub fn is_literal(&self) -> bool {
        self.0.starts_with('[')
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Domain {
    type Error = AddrError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Domain::parse(&value)
    }
}

impl From<Domain> for String {
    fn from(d: Domain) -> String {
        d.0
    }
}

impl std::str::FromStr for Domain {
    type Err = AddrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Domain::parse(s)
    }
}

/// A mailbox address `local@domain`.
///
/// Equality and hashing use [`Address::key`], so `Alice@Example.COM` equals
/// `alice@example.com`; the original spelling of the local part is kept for display.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Address {
    local: String,
    domain: Domain,
}

impl Address {
    /// Parses `local@domain`, splitting at the last `@` (a quoted local part may hold one).
    ///
    /// Surrounding quotes of a quoted local part are removed and backslash escapes
    /// undone; the result is what a directory would look up.
    pub fn parse(input: &str) -> Result<Address, AddrError> {
        let at = input.rfind('@').ok_or(AddrError::MissingDomain)?;
        let (local, domain) = (&input[..at], &input[at + 1..]);
        let local = unquote(local);
        Address::new(&local, Domain::parse(domain)?)
    }

    /// Builds an address from an unquoted local part and a domain.
    pub fn new(local: &str, domain: Domain) -> Result<Address, AddrError> {
        if local.is_empty() || local.len() > MAX_LOCAL_PART {
            return Err(AddrError::BadLocalPart);
        }
        if local.chars().any(|c| c.is_control()) {
            return Err(AddrError::ForbiddenChar);
        }
        Ok(Address {
            local: local.to_string(),
            domain,
        })
    }

    /// The local part as given (unquoted).
    pub fn local(&self) -> &str {
        &self.local
    }

    /// The domain.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// The lookup key: lower-cased local part, `@`, canonical domain.
    pub fn key(&self) -> String {
        format!("{}@{}", self.local.to_lowercase(), self.domain)
    }

    /// True when the address needs SMTPUTF8 (RFC 6531) to be transported.
    pub fn is_ascii(&self) -> bool {
        self.local.is_ascii()
    }

    /// The address with `+detail` removed from the local part, if it has one.
    ///
    /// Sub-addressing (RFC 5233) lets `alice+lists@example.com` reach `alice`; the
    /// directory tries the full address first and this one second.
    pub fn without_detail(&self) -> Option<Address> {
        let (base, _) = self.local.split_once('+')?;
        if base.is_empty() {
            return None;
        }
        Some(Address {
            local: base.to_string(),
            domain: self.domain.clone(),
        })
    }

    /// The address as an SMTP path body (`local@domain`), quoting the local part
    /// when it is not a dot-atom (RFC 5321 §4.1.2).
    pub fn to_smtp(&self) -> String {
        if is_dot_atom(&self.local) {
            format!("{}@{}", self.local, self.domain)
        } else {
            let mut q = String::with_capacity(self.local.len() + 2);
            q.push('"');
            for c in self.local.chars() {
                if c == '"' || c == '\\' {
                    q.push('\\');
                }
                q.push(c);
            }
            q.push('"');
            format!("{q}@{}", self.domain)
        }
    }
}

impl PartialEq for Address {
    fn eq(&self, other: &Self) -> bool {
        self.domain == other.domain && self.local.to_lowercase() == other.local.to_lowercase()
    }
}

impl Eq for Address {}

impl std::hash::Hash for Address {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_smtp())
    }
}

impl TryFrom<String> for Address {
    type Error = AddrError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Address::parse(&value)
    }
}

impl From<Address> for String {
    fn from(a: Address) -> String {
        a.to_smtp()
    }
}

impl std::str::FromStr for Address {
    type Err = AddrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s)
    }
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

fn is_dot_atom(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && !s.ends_with('.')
        && !s.contains("..")
        && s.chars().all(|c| c == '.' || is_atext(c))
}

fn unquote(local: &str) -> String {
    match local.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut escaped = false;
            for c in inner.chars() {
                if escaped || c != '\\' {
                    out.push(c);
                    escaped = false;
                } else {
                    escaped = true;
                }
            }
            out
        }
        None => local.to_string(),
    }
}

/// A secret (password, token) that never shows up in `Debug` output or logs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that needs it (hashing, verifying).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_normalise_case_trailing_dot_and_idna() {
        assert_eq!(
            Domain::parse("Example.COM.").unwrap().as_str(),
            "example.com"
        );
        assert_eq!(
            Domain::parse("пример.рф").unwrap().as_str(),
            "xn--e1afmkfd.xn--p1ai"
        );
        assert_eq!(
            Domain::parse("XN--E1AFMKFD.xn--p1ai").unwrap(),
            Domain::parse("пример.рф").unwrap()
        );
    }

    #[test]
    fn bad_domains_are_refused() {
        for d in [
            "", ".", "a..b", "-a.com", "a-.com", "a b.com", "a@b", "[1.2.3.4", "x.com..",
        ] {
            assert!(Domain::parse(d).is_err(), "{d:?} accepted");
        }
        let long = format!("{}.com", "a".repeat(64));
        assert!(Domain::parse(&long).is_err());
    }

    #[test]
    fn literals_parse_but_are_marked() {
        let d = Domain::parse("[127.0.0.1]").unwrap();
        assert!(d.is_literal());
        assert!(Domain::parse("[IPv6:::1]").unwrap().is_literal());
    }

    #[test]
    fn addresses_compare_case_insensitively() {
        let a = Address::parse("Alice@Example.com").unwrap();
        let b = Address::parse("alice@example.COM.").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.key(), "alice@example.com");
        assert_eq!(a.local(), "Alice");
    }

    #[test]
    fn quoted_local_parts_are_unquoted_and_requoted() {
        let a = Address::parse("\"john doe\"@example.com").unwrap();
        assert_eq!(a.local(), "john doe");
        assert_eq!(a.to_smtp(), "\"john doe\"@example.com");
        let b = Address::parse("\"a@b\"@example.com").unwrap();
        assert_eq!(b.local(), "a@b");
        assert_eq!(b.domain().as_str(), "example.com");
    }

    #[test]
    fn utf8_local_parts_need_smtputf8() {
        let a = Address::parse("пётр@пример.рф").unwrap();
        assert!(!a.is_ascii());
        assert_eq!(a.domain().as_str(), "xn--e1afmkfd.xn--p1ai");
        assert!(Address::parse("ПЁТР@пример.рф").unwrap() == a);
    }

    #[test]
    fn detail_is_stripped() {
        let a = Address::parse("bob+lists@example.com").unwrap();
        assert_eq!(a.without_detail().unwrap().key(), "bob@example.com");
        assert!(
            Address::parse("+x@example.com")
                .unwrap()
                .without_detail()
                .is_none()
        );
        assert!(
            Address::parse("bob@example.com")
                .unwrap()
                .without_detail()
                .is_none()
        );
    }

    #[test]
    fn bad_addresses_are_refused() {
        assert_eq!(Address::parse("nodomain"), Err(AddrError::MissingDomain));
        assert_eq!(Address::parse("@example.com"), Err(AddrError::BadLocalPart));
        assert!(Address::parse(&format!("{}@x.com", "a".repeat(65))).is_err());
        assert!(Address::parse("a\u{0}b@x.com").is_err());
    }

    /// An address becomes `MAIL FROM:<…>`/`RCPT TO:<…>` in the relay's SMTP
    /// client: whatever a user typed, it must stay one path on one line.
    #[test]
    fn smtp_paths_cannot_carry_commands() {
        for bad in [
            "a@example.com\r\nRCPT TO:<evil@remote.example>",
            "a\r\nRSET@example.com",
            "a\n@example.com",
            "a@example.com>",
            "a@exa mple.com",
            "a@example.com\u{0}",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad:?} accepted");
        }
        for (input, path) in [
            ("\"a>b\"@example.com", "\"a>b\"@example.com"),
            (
                "\"a> RCPT TO:<b\"@example.com",
                "\"a> RCPT TO:<b\"@example.com",
            ),
            ("\"a\\\"b\"@example.com", "\"a\\\"b\"@example.com"),
        ] {
            let a = Address::parse(input).unwrap();
            assert_eq!(a.to_smtp(), path);
            assert_eq!(Address::parse(&a.to_smtp()).unwrap(), a, "round trip");
        }
    }

    #[test]
    fn secrets_do_not_debug_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.expose(), "hunter2");
    }
}
