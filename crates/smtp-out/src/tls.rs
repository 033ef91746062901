//! TLS client configurations, shared with the user agent (see `pochta_net::client_tls`).

pub use pochta_net::client_tls::*;
