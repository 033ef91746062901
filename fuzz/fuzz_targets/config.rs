//! Configuration parsing: `pochta_config::Config::from_toml` on arbitrary
//! text (and the unit parsers it uses on their own).
//!
//! Invariants: no panic; an error renders a message; an accepted config
//! passes `validate`, and written back with `to_toml` (less the smarthost
//! password, which it deliberately does not write) it reads back equal.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pochta_config::{Config, parse_network, parse_size};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_size(text);
    let _ = parse_network(text);
    // Relative paths stay relative with an empty base, so the round trip is
    // exact (with another base, a default `data_dir`, relative to the working
    // directory, would come back resolved against the base).
    let base = Path::new("");
    match Config::from_toml(text, base) {
        Err(e) => {
            let _ = (e.to_string(), e.key());
        }
        Ok(mut config) => {
            config.validate().expect("an accepted config validates");
            config.relay.smarthost_user = None;
            config.relay.smarthost_password = None;
            let written = config.to_toml();
            let again = Config::from_toml(&written, base)
                .unwrap_or_else(|e| panic!("to_toml output does not read back: {e}\n{written}"));
            assert_eq!(again, config, "to_toml round trip differs:\n{written}");
        }
    }
});
