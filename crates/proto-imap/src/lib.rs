//! IMAP4rev2 (RFC 9051) and IMAP4rev1 (RFC 3501) without I/O.
//!
//! * [`types`]: the command syntax tree every other part works on.
//! * [`frame`] and [`parse`]: bytes to [`types::Command`], enforcing line and
//!   literal limits while framing, before anything is buffered.
//! * [`encode`]: the wire forms of strings, lists and responses.
//!
//! The parser is our own rather than imap-codec's: the version that builds here
//! (2.0.0-alpha.10) cannot parse ESEARCH/SEARCHRES (`SEARCH RETURN (...)`,
//! `$`) and lacks typed SPECIAL-USE, LIST-EXTENDED return options and several
//! other extensions we serve, and a second grammar for what it lacks would leave
//! two parsers to keep in step.

#![forbid(unsafe_code)]

pub mod encode;
pub mod fetch;
pub mod frame;
pub mod parse;
pub mod search;
pub mod session;
pub mod sort;
pub mod thread;
pub mod types;
pub mod view;
