//! The small value syntaxes of the config file: sizes (`"50M"`), durations
//! (`"1h30m"`), next hops (`"smtp.example.net:587"`) and networks (`"10.0.0.0/8"`).
//!
//! They are written by hand rather than pulled from a crate so that the accepted
//! syntax is exactly what `docs/CONFIG.md` documents, and so that every error says
//! what was expected. Sizes and durations also accept a plain TOML integer (bytes,
//! seconds).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use pochta_addr::Domain;
use serde::Deserializer;
use serde::de::{self, Visitor};

/// The longest duration any setting accepts: ten years. Longer values are surely
/// typos, and keeping them bounded means `Instant::now() + d` can never overflow.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(3650 * 24 * 3600);

/// Parses a size: digits, optional spaces, then an optional case-insensitive unit.
///
/// `b` or nothing = bytes; `k`, `kb`, `kib` = 1024; `m`, `mb`, `mib` = 1024²;
/// `g`, `gb`, `gib` = 1024³. `KB`/`MB`/`GB` are deliberately the same binary units:
/// nobody setting a message size limit means 10⁶ and gets surprised by 2²⁰.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err("expected a whole number of bytes with an optional unit, e.g. \"50M\"".into());
    }
    let multiplier: u64 = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown unit \"{other}\" (expected one of: B, k, KB, KiB, M, MB, MiB, G, GB, GiB)"
            ));
        }
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| "too large".to_string())
}

/// Parses a duration: either a bare number of seconds (`"300"`) or one or more
/// `<number><unit>` parts (`"5m"`, `"1h30m"`, `"1h 30m"`, `"250ms"`), summed.
///
/// Units (lower case): `ms`, `s`, `m` (minutes), `h`, `d`. Fractions are not
/// accepted: write `"1500ms"` or `"1m30s"` instead of `"1.5s"` or `"1.5m"`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration (expected e.g. \"30s\", \"5m\", \"1h30m\")".into());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let secs = text.parse::<u64>().map_err(|_| "too large".to_string())?;
        return check_max(u128::from(secs) * 1000);
    }
    let mut millis: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (digits, after) = rest.split_at(digits_end);
        if digits.is_empty() {
            return Err(format!(
                "expected a number at \"{rest}\" (a duration looks like \"30s\", \"5m\", \"1h30m\"; no fractions or signs)"
            ));
        }
        let unit_end = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let per_unit: u128 = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60 * 1000,
            "h" => 3600 * 1000,
            "d" => 24 * 3600 * 1000,
            "" => {
                return Err(format!(
                    "missing unit after \"{digits}\" (ms, s, m, h or d)"
                ));
            }
            other => {
                return Err(format!(
                    "unknown unit \"{other}\" (expected ms, s, m, h or d)"
                ));
            }
        };
        // Digits beyond u64 are "too large" anyway; the sum is bounded by MAX_DURATION.
        let n = digits.parse::<u64>().map_err(|_| "too large".to_string())?;
        millis = millis.saturating_add(u128::from(n) * per_unit);
        rest = after.trim_start();
    }
    check_max(millis)
}

fn check_max(millis: u128) -> Result<Duration, String> {
    let max = MAX_DURATION.as_millis();
    if millis > max {
        return Err("too long (at most 3650d)".into());
    }
    // Bounded by MAX_DURATION above, so the conversion cannot fail.
    u64::try_from(millis)
        .map(Duration::from_millis)
        .map_err(|_| "too long (at most 3650d)".to_string())
}

/// Formats a duration the way the config file writes it (`"5m"`, `"1h30m"`, `"250ms"`),
/// so that error messages and `Display` output can be pasted back into the file.
pub(crate) fn format_duration(d: Duration) -> String {
    let mut millis = d.as_millis();
    if millis == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 24 * 3600 * 1000u128),
        ("h", 3600 * 1000),
        ("m", 60 * 1000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if millis >= size {
            out.push_str(&format!("{}{unit}", millis / size));
            millis %= size;
        }
    }
    out
}

/// `deserialize_with` for size settings: a TOML integer (bytes) or a size string.
pub(crate) fn deserialize_size<'de, D: Deserializer<'de>>(de: D) -> Result<u64, D::Error> {
    struct SizeVisitor;
    impl Visitor<'_> for SizeVisitor {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number of bytes or a string such as \"50M\"")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v)
                .map_err(|_| E::custom(format!("invalid size {v}: must not be negative")))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
            parse_size(v).map_err(|why| E::custom(format!("invalid size \"{v}\": {why}")))
        }
    }
    de.deserialize_any(SizeVisitor)
}

/// `deserialize_with` for duration settings: a TOML integer (seconds) or a duration string.
pub(crate) fn deserialize_duration<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    struct DurationVisitor;
    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number of seconds or a string such as \"5m\" or \"1h30m\"")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            u128::from(v)
                .checked_mul(1000)
                .ok_or_else(|| "too long (at most 3650d)".to_string())
                .and_then(check_max)
                .map_err(|why| E::custom(format!("invalid duration {v}: {why}")))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            match u64::try_from(v) {
                Ok(v) => self.visit_u64(v),
                Err(_) => Err(E::custom(format!(
                    "invalid duration {v}: must not be negative"
                ))),
            }
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            parse_duration(v).map_err(|why| E::custom(format!("invalid duration \"{v}\": {why}")))
        }
    }
    de.deserialize_any(DurationVisitor)
}

/// What a next hop looks like, appended to every `host:port` error.
const HOST_PORT_EXAMPLES: &str = "expected \"host:port\" such as \"smtp.example.net:587\", \"192.0.2.25:25\" or \"[2001:db8::25]:25\"";

/// Parses a next hop `host:port` into its canonical host and port.
///
/// The host is a domain name (Unicode allowed, stored as lower-case A-labels without
/// a trailing dot), an IPv4 address, or an IPv6 address in brackets (stored without
/// them, in its compressed form). The port is required and is 1 to 65535: a next hop
/// has no sensible default port, since a smarthost may listen on 25, 587 or 465.
pub(crate) fn parse_host_port(text: &str) -> Result<(String, u16), String> {
    let text = text.trim();
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return Err(format!(
                "missing \"]\" after the IPv6 address ({HOST_PORT_EXAMPLES})"
            ));
        };
        let ip = inside
            .parse::<Ipv6Addr>()
            .map_err(|_| format!("\"{inside}\" is not an IPv6 address ({HOST_PORT_EXAMPLES})"))?;
        let port = match after.strip_prefix(':') {
            Some(port) => port,
            None if after.is_empty() => return Err(format!("missing port ({HOST_PORT_EXAMPLES})")),
            None => {
                return Err(format!(
                    "unexpected \"{after}\" after the address ({HOST_PORT_EXAMPLES})"
                ));
            }
        };
        (ip.to_string(), port)
    } else {
        let Some((host, port)) = text.rsplit_once(':') else {
            return Err(format!("missing port ({HOST_PORT_EXAMPLES})"));
        };
        if host.contains(':') {
            return Err(format!(
                "an IPv6 address must be written in brackets ({HOST_PORT_EXAMPLES})"
            ));
        }
        (canonical_host(host)?, port)
    };
    // `u16::from_str` also takes "+25"; a port is digits only.
    let number = if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
        port.parse::<u16>().ok()
    } else {
        None
    };
    match number {
        Some(0) => Err("port 0 is not allowed (1 to 65535)".to_owned()),
        Some(port) => Ok((host, port)),
        None if port.is_empty() => Err(format!("missing port ({HOST_PORT_EXAMPLES})")),
        None => Err(format!("\"{port}\" is not a port number (1 to 65535)")),
    }
}

/// A host that is not in brackets: an IPv4 address or a host name, canonical.
fn canonical_host(host: &str) -> Result<String, String> {
    if host.is_empty() {
        return Err(format!("missing host ({HOST_PORT_EXAMPLES})"));
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(ip.to_string());
    }
    let bad = || format!("\"{host}\" is neither a host name nor an IP address");
    let domain = Domain::parse(host).map_err(|_| bad())?;
    // A name whose last label is all digits ("192.0.2.300", "010.0.0.1") is a
    // mistyped address, not a host name (RFC 1123 §2.1: top-level names are alphabetic).
    let last = domain.as_str().rsplit('.').next().unwrap_or_default();
    if domain.is_literal() || last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    Ok(domain.as_str().to_owned())
}

/// Parses a network: an IP address, optionally followed by `/` and a prefix length
/// (0-32 for IPv4, 0-128 for IPv6). A bare address is the network of that one
/// address (`/32` or `/128`). Host bits below the prefix are cleared, so
/// `"10.1.2.3/8"` is the network `10.0.0.0/8`.
pub(crate) fn parse_network(text: &str) -> Result<(IpAddr, u8), String> {
    const EXAMPLES: &str = "expected an IP address or a network such as \"192.0.2.0/24\", \"192.0.2.1\" or \"2001:db8::/32\"";
    let trimmed = text.trim();
    let (addr, prefix) = match trimmed.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (trimmed, None),
    };
    let ip = addr
        .parse::<IpAddr>()
        .map_err(|_| format!("\"{addr}\" is not an IP address ({EXAMPLES})"))?;
    let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
    let len = match prefix {
        None => max,
        Some(p) => {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "\"{p}\" is not a prefix length (0 to {max}; {EXAMPLES})"
                ));
            }
            match p.parse::<u8>() {
                Ok(len) if len <= max => len,
                _ => {
                    return Err(format!(
                        "prefix length {p} is too long for an {} address (at most {max})",
                        if ip.is_ipv4() { "IPv4" } else { "IPv6" }
                    ));
                }
            }
        }
    };
    let ip = match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(u32::from(32 - len)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(u32::from(128 - len)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    };
    Ok((ip, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("512k"), Ok(512 * 1024));
        assert_eq!(parse_size("512K"), Ok(512 * 1024));
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("512KB"), Ok(512 * 1024));
        assert_eq!(parse_size("50M"), Ok(50 << 20));
        assert_eq!(parse_size("50MiB"), Ok(50 << 20));
        assert_eq!(parse_size("50 MB"), Ok(50 << 20));
        assert_eq!(parse_size(" 50mb "), Ok(50 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1gb"), Ok(1 << 30));
        assert_eq!(parse_size("100B"), Ok(100));
    }

    #[test]
    fn bad_sizes() {
        for bad in [
            "",
            "M",
            "50X",
            "50 MBs",
            "5.5M",
            "-5M",
            "50M extra",
            "1T",
            "99999999999999999999",
            "18446744073709551615G",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(
            parse_size("50X")
                .expect_err("rejected")
                .contains("unknown unit \"x\"")
        );
    }

    #[test]
    fn durations() {
        let s = Duration::from_secs;
        assert_eq!(parse_duration("300"), Ok(s(300)));
        assert_eq!(parse_duration("300s"), Ok(s(300)));
        assert_eq!(parse_duration("5m"), Ok(s(300)));
        assert_eq!(parse_duration("1h"), Ok(s(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(s(5400)));
        assert_eq!(parse_duration("1h 30m"), Ok(s(5400)));
        assert_eq!(parse_duration("2d"), Ok(s(2 * 86400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(
            parse_duration("1m30s500ms"),
            Ok(Duration::from_millis(90_500))
        );
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("3650d"), Ok(MAX_DURATION));
    }

    #[test]
    fn bad_durations() {
        for bad in [
            "",
            "s",
            "5x",
            "5M",
            "1.5h",
            "-5s",
            "5 s",
            "1h30",
            "3651d",
            "99999999999999999999999s",
            "18446744073709551615d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(
            parse_duration("1h30")
                .expect_err("rejected")
                .contains("missing unit")
        );
    }

    #[test]
    fn format_round_trips() {
        for text in [
            "0s",
            "250ms",
            "30s",
            "5m",
            "1h30m",
            "15m",
            "2d1h",
            "1m30s500ms",
        ] {
            let d = parse_duration(text).expect("valid");
            assert_eq!(format_duration(d), text);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }

    #[test]
    fn host_ports() {
        let hp = parse_host_port;
        let ok = |h: &str, p: u16| Ok((h.to_owned(), p));
        assert_eq!(hp("smtp.example.net:587"), ok("smtp.example.net", 587));
        assert_eq!(hp(" SMTP.Example.NET.:25 "), ok("smtp.example.net", 25));
        assert_eq!(hp("mx_1.example:25"), ok("mx_1.example", 25));
        assert_eq!(hp("bücher.example:25"), ok("xn--bcher-kva.example", 25));
        assert_eq!(hp("localhost:2526"), ok("localhost", 2526));
        assert_eq!(hp("192.0.2.25:25"), ok("192.0.2.25", 25));
        assert_eq!(hp("[2001:DB8:0::25]:465"), ok("2001:db8::25", 465));
        assert_eq!(hp("[::1]:65535"), ok("::1", 65535));
    }

    #[test]
    fn bad_host_ports() {
        for (bad, why) in [
            ("host", "missing port"),
            ("host:", "missing port"),
            ("[::1]", "missing port"),
            ("[::1]:", "missing port"),
            ("[::1", "missing \"]\""),
            ("[::1]25", "unexpected \"25\""),
            ("[192.0.2.1]:25", "not an IPv6 address"),
            ("[nonsense]:25", "not an IPv6 address"),
            ("::1:25", "brackets"),
            ("2001:db8::1", "brackets"),
            (":25", "missing host"),
            ("", "missing port"),
            ("host:0", "port 0"),
            ("host:65536", "not a port number"),
            ("host:+25", "not a port number"),
            ("host:smtp", "not a port number"),
            ("exa mple:25", "neither a host name nor an IP address"),
            ("-bad.example:25", "neither"),
            ("192.0.2.300:25", "neither"),
            ("010.0.0.1:25", "neither"),
            ("1234:25", "neither"),
        ] {
            let err = parse_host_port(bad).expect_err(bad);
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn networks() {
        let net = |s: &str| parse_network(s).map(|(ip, len)| format!("{ip}/{len}"));
        assert_eq!(net("127.0.0.0/8"), Ok("127.0.0.0/8".into()));
        assert_eq!(net("127.0.0.1"), Ok("127.0.0.1/32".into()));
        assert_eq!(net(" 10.1.2.3/8 "), Ok("10.0.0.0/8".into()));
        assert_eq!(net("192.0.2.129/25"), Ok("192.0.2.128/25".into()));
        assert_eq!(net("0.0.0.0/0"), Ok("0.0.0.0/0".into()));
        assert_eq!(net("1.2.3.4/0"), Ok("0.0.0.0/0".into()));
        assert_eq!(net("::1"), Ok("::1/128".into()));
        assert_eq!(net("::1/128"), Ok("::1/128".into()));
        assert_eq!(net("2001:DB8:1::5/32"), Ok("2001:db8::/32".into()));
        assert_eq!(net("::/0"), Ok("::/0".into()));
    }

    #[test]
    fn bad_networks() {
        for (bad, why) in [
            ("10.0.0.0/33", "too long for an IPv4 address (at most 32)"),
            ("::1/129", "too long for an IPv6 address (at most 128)"),
            ("10.0.0.0/999", "too long"),
            ("nonsense", "\"nonsense\" is not an IP address"),
            ("", "not an IP address"),
            ("10.0.0.0/", "not a prefix length"),
            ("10.0.0.0/-1", "not a prefix length"),
            ("10.0.0.0/+8", "not a prefix length"),
            ("10.0.0.0/8/8", "not a prefix length"),
            ("10.0.0/8", "not an IP address"),
            ("[::1]/128", "not an IP address"),
            ("localhost", "not an IP address"),
        ] {
            let err = parse_network(bad).expect_err(bad);
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }
}
