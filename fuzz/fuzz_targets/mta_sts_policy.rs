//! The MTA-STS policy parser (`pochta_proto_smtp::mta_sts`), fed what a remote
//! HTTPS server may send as `/.well-known/mta-sts.txt`, and its MX matching.
//!
//! Input: `[policy bytes] \0 [host name]` (no NUL: all policy, host "mx.test").
//!
//! Invariants: no panic; a parsed policy has `max_age` at most a year, lower-
//! case patterns, at least one unless the mode is `none`; every pattern
//! matches the host it names (a wildcard: with any one label in front), and a
//! host of two more labels never matches a wildcard it does not name exactly.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_proto_smtp::mta_sts::{MAX_AGE, Mode, parse_policy};

fuzz_target!(|data: &[u8]| {
    let (policy, host) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"mx.test"[..]),
    };
    let (Ok(text), Ok(host)) = (std::str::from_utf8(policy), std::str::from_utf8(host)) else {
        return;
    };
    let Ok(p) = parse_policy(text) else {
        return;
    };
    assert!(p.max_age <= MAX_AGE);
    assert!(p.mode == Mode::None || !p.mx.is_empty());
    for m in &p.mx {
        assert_eq!(*m, m.to_ascii_lowercase());
        match m.strip_prefix("*.") {
            Some(suffix) => {
                assert!(p.allows(&format!("any.{suffix}")), "{m}");
                assert!(
                    p.allows(&format!("ANY.{}.", suffix.to_ascii_uppercase())),
                    "{m}"
                );
                let deeper = format!("a.b.{suffix}");
                if p.allows(&deeper) {
                    let one_up = format!("*.b.{suffix}");
                    assert!(p.mx.iter().any(|o| *o == deeper || *o == one_up), "{m}");
                }
            }
            None => assert!(p.allows(m), "{m}"),
        }
    }
    let _ = p.allows(host);
});
