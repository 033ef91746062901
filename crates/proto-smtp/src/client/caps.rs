//! The service extensions a server announces in its EHLO reply (RFC 5321 §4.1.1.1).

use super::ServerReply;

/// What the server offered in its last EHLO reply. After HELO (or before any
/// EHLO) everything is off: no extension may be used (RFC 5321 §4.1.1.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// PIPELINING (RFC 2920): commands may be sent in groups.
    pub pipelining: bool,
    /// SIZE (RFC 1870): `Some(0)` when offered without a limit, `Some(n)` with
    /// a fixed maximum of `n` octets, `None` when not offered.
    pub size: Option<u64>,
    /// 8BITMIME (RFC 6152): `BODY=8BITMIME` is understood.
    pub eight_bit_mime: bool,
    /// SMTPUTF8 (RFC 6531): UTF-8 addresses and headers.
    pub smtputf8: bool,
    /// STARTTLS (RFC 3207).
    pub starttls: bool,
    /// AUTH (RFC 4954): the mechanism names, upper case, in the server's order.
    pub auth: Vec<String>,
    /// CHUNKING (RFC 3030): BDAT.
    pub chunking: bool,
    /// DSN (RFC 3461): RET, ENVID, NOTIFY, ORCPT.
    pub dsn: bool,
    /// ENHANCEDSTATUSCODES (RFC 2034).
    pub enhanced_status_codes: bool,
}

impl Capabilities {
    /// Reads the extension lines of an EHLO reply (all lines but the first,
    /// which holds the server's name). Unknown keywords are ignored.
    pub fn from_ehlo(reply: &ServerReply) -> Capabilities {
        let mut caps = Capabilities::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            let keyword = keyword.to_ascii_uppercase();
            // Old servers announce `AUTH=LOGIN PLAIN` (before RFC 2554 was final).
            let (keyword, first_arg) = match keyword.split_once('=') {
                Some((k, a)) => (k.to_string(), Some(a.to_string())),
                None => (keyword, None),
            };
            match keyword.as_str() {
                "PIPELINING" => caps.pipelining = true,
                "SIZE" => {
                    // A missing or unreadable number means "no fixed limit".
                    let n = words
                        .next()
                        .and_then(|w| w.parse::<u64>().ok())
                        .unwrap_or(0);
                    caps.size = Some(n);
                }
                "8BITMIME" => caps.eight_bit_mime = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "STARTTLS" => caps.starttls = true,
                "AUTH" => {
                    let names = first_arg
                        .into_iter()
                        .chain(words.map(str::to_string))
                        .filter(|w| !w.is_empty())
                        .map(|w| w.to_ascii_uppercase());
                    for name in names {
                        if !caps.auth.contains(&name) {
                            caps.auth.push(name);
                        }
                    }
                }
                "CHUNKING" => caps.chunking = true,
                "DSN" => caps.dsn = true,
                "ENHANCEDSTATUSCODES" => caps.enhanced_status_codes = true,
                _ => {}
            }
        }
        caps
    }

    /// True when the server offers the SASL mechanism `name` (case-insensitive).
    pub fn offers_auth(&self, name: &str) -> bool {
        self.auth.iter().any(|m| m.eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(lines: &[&str]) -> ServerReply {
        ServerReply {
            code: 250,
            esc: None,
            lines: lines.iter().map(|s| s.to_string()).collect(),
            generated: false,
        }
    }

    #[test]
    fn reads_the_usual_extensions() {
        let caps = Capabilities::from_ehlo(&reply(&[
            "mx.example.com hello",
            "pipelining",
            "SIZE 35882577",
            "8BITMIME",
            "SMTPUTF8",
            "STARTTLS",
            "AUTH PLAIN login XOAUTH2",
            "AUTH=LOGIN",
            "CHUNKING",
            "DSN",
            "ENHANCEDSTATUSCODES",
            "X-UNKNOWN foo",
        ]));
        assert!(caps.pipelining && caps.eight_bit_mime && caps.smtputf8 && caps.starttls);
        assert!(caps.chunking && caps.dsn && caps.enhanced_status_codes);
        assert_eq!(caps.size, Some(35882577));
        assert_eq!(caps.auth, ["PLAIN", "LOGIN", "XOAUTH2"]);
        assert!(caps.offers_auth("login"));
    }

    #[test]
    fn size_without_a_number_is_unlimited_and_the_name_line_is_skipped() {
        let caps = Capabilities::from_ehlo(&reply(&["PIPELINING is my name", "SIZE", ""]));
        assert!(!caps.pipelining);
        assert_eq!(caps.size, Some(0));
    }
}
