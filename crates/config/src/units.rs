//! The two small value syntaxes of the config file: sizes (`"50M"`) and durations
//! (`"1h30m"`).
//!
//! Both are written by hand rather than pulled from a crate so that the accepted
//! syntax is exactly what `docs/CONFIG.md` documents, and so that every error says
//! what was expected. Both also accept a plain TOML integer (bytes, seconds).

use std::fmt;
use std::time::Duration;

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
}
