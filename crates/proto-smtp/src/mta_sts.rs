//! MTA-STS policies (RFC 8461 §3.2, §4.1): the policy file a domain serves at
//! `https://mta-sts.<domain>/.well-known/mta-sts.txt`, parsed, and the MX host
//! patterns matched. Sans-I/O: fetching and caching are the relay's
//! (`pochta-smtp-out`). Written here because no crate parses the policy file
//! (mail-auth reads only the `_mta-sts` TXT record).

/// The longest `max_age` honoured (RFC 8461 §3.2: 31 557 600 s, about a year).
pub const MAX_AGE: u64 = 31_557_600;

/// What the domain asks of senders that fail its policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Do not deliver except to a matching MX over verified TLS.
    Enforce,
    /// Deliver as usual; failures are only reported (logged here).
    Testing,
    /// No policy (a domain withdrawing one publishes this).
    None,
}

/// A parsed policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `mode`.
    pub mode: Mode,
    /// `mx` patterns, lower case: `mx.example.com` or `*.example.com`.
    pub mx: Vec<String>,
    /// `max_age` in seconds, at most [`MAX_AGE`].
    pub max_age: u64,
}

impl Policy {
    /// True when `host` matches one of the `mx` patterns (RFC 8461 §4.1: a
    /// wildcard stands for exactly one leftmost label).
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|p| match p.strip_prefix("*.") {
            Some(suffix) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
            None => host == *p,
        })
    }
}

/// Parses a policy file (RFC 8461 §3.2): `key: value` lines, CRLF or LF;
/// `version: STSv1`, `mode`, `max_age` and (unless the mode is `none`) at least
/// one `mx` are required; other keys are ignored; of a repeated key other than
/// `mx` the first counts.
pub fn parse_policy(text: &str) -> Result<Policy, String> {
    let (mut version, mut mode, mut max_age) = (None, None, None);
    let mut mx = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(format!("not a `key: value` line: {:?}", clip(line)));
        };
        let value = value.trim_matches([' ', '\t']);
        match key {
            "version" => {
                version.get_or_insert(value);
            }
            "mode" => {
                mode.get_or_insert(value);
            }
            "max_age" => {
                max_age.get_or_insert(value);
            }
            "mx" => mx.push(mx_pattern(value)?),
            _ => {}
        }
    }
    if version != Some("STSv1") {
        return Err(format!("version is {:?}, not STSv1", version.map(clip)));
    }
    let mode = match mode {
        Some("enforce") => Mode::Enforce,
        Some("testing") => Mode::Testing,
        Some("none") => Mode::None,
        other => return Err(format!("unknown mode {:?}", other.map(clip))),
    };
    let max_age = match max_age {
        Some(v) if !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()) => {
            v.parse::<u64>().map_err(|e| e.to_string())?.min(MAX_AGE)
        }
        other => return Err(format!("max_age {:?} is not a number", other.map(clip))),
    };
    if mx.is_empty() && mode != Mode::None {
        return Err("no mx".into());
    }
    Ok(Policy { mode, mx, max_age })
}

/// One `mx` value as a lower-case pattern: a host name, or `*.` and one.
fn mx_pattern(value: &str) -> Result<String, String> {
    let name = value.strip_prefix("*.").unwrap_or(value);
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !ok {
        return Err(format!("mx {:?} is not a host name", clip(value)));
    }
    Ok(value.to_ascii_lowercase())
}

/// At most 64 characters of untrusted text, for an error message.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_as_rfc_8461_writes_them() {
        let p = parse_policy(
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.Example.NET\r\nmax_age: 86400\r\n",
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.mx, ["mail.example.com", "*.example.net"]);
        assert_eq!(p.max_age, 86400);
        // LF only, spaces, unknown keys, a repeated key, a huge max_age.
        let p = parse_policy(
            "version:STSv1\nmode:   testing  \nextension: x\nmode: enforce\nmx: a.test\nmax_age: 9999999999\n",
        )
        .unwrap();
        assert_eq!((p.mode, p.max_age), (Mode::Testing, MAX_AGE));
        assert_eq!(
            parse_policy("version: STSv1\nmode: none\nmax_age: 1\n")
                .unwrap()
                .mode,
            Mode::None
        );
        for bad in [
            "",
            "mode: enforce\nmx: a.test\nmax_age: 1\n",
            "version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1\n",
            "version: STSv1\nmode: strict\nmx: a.test\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: -1\n",
            "version: STSv1\nmode: enforce\nmx: a.test\n",
            "version: STSv1\nmode: enforce\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmx: a..test\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmx: *.*.test\nmax_age: 1\n",
            "version: STSv1\nmode enforce\nmx: a.test\nmax_age: 1\n",
        ] {
            assert!(parse_policy(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn wildcards_stand_for_one_label() {
        let p = Policy {
            mode: Mode::Enforce,
            mx: vec!["mail.example.com".into(), "*.example.net".into()],
            max_age: 1,
        };
        assert!(p.allows("mail.example.com"));
        assert!(p.allows("MAIL.Example.com."));
        assert!(p.allows("mx1.example.net"));
        assert!(!p.allows("example.net"));
        assert!(!p.allows("a.mx1.example.net"));
        assert!(!p.allows("other.example.com"));
        assert!(!p.allows(".example.net"));
    }
}
