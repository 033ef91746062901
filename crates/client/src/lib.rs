//! pochta's user agent as a library: what `pochta mail …` does, usable against any
//! standards-following server, not only pochta.
//!
//! * [`config`]: the client's accounts (`client.toml`), how to reach each server
//!   and with which security, and where the password comes from.
//! * [`compose`]: building messages (mail-builder), replies and forwards.
//! * [`submit`]: handing a message to the transfer agent over SMTP submission.
//! * [`pop3`]: fetching over POP3 into a local Maildir (the mail ends up on the
//!   client).
//! * [`maildir`]: the local Maildir, written durably, also browsable.
//! * [`backend`]: one [`backend::MailBackend`] trait for browsing where the mail
//!   stays on the server (IMAP, JMAP) or on the client (Maildir), so that every
//!   browse command is written once.
//! * [`imap`], [`jmap`]: the server backends.
//! * [`query`]: the search language of `pochta mail search`.
//! * [`render`]: turning a stored message into what a person reads.
//! * [`tls`]: rustls client configurations (verified, or `--accept-invalid-certs`).

#![forbid(unsafe_code)]

pub mod backend;
pub mod compose;
pub mod config;
pub mod error;
pub mod imap;
pub mod jmap;
pub mod maildir;
pub mod pop3;
pub mod query;
pub mod render;
pub mod submit;
pub mod tls;

pub use error::ClientError;
