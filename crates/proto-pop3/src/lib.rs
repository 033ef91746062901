//! The POP3 server session (RFC 1939) as a sans-I/O state machine, with CAPA and
//! response codes (RFC 2449, 3206), STLS (RFC 2595), AUTH (RFC 5034) and UTF8
//! (RFC 6856).
//!
//! The driver feeds bytes with [`Session::feed`] and calls [`Session::poll`]
//! until it returns [`Action::NeedInput`]. Other actions are questions the session
//! cannot answer alone (credentials, the maildrop, a message's bytes, the final
//! deletion) or I/O steps (TLS, close); the driver answers with the matching
//! `answer_*` method. Replies accumulate in [`Session::output`] and are written
//! before more input is read (RFC 2449 PIPELINING).
//!
//! The maildrop is a snapshot taken at login: mail that arrives later is not
//! shown until the next session, and deletions happen only at QUIT (the UPDATE
//! state), all together.

#![forbid(unsafe_code)]

mod session;

pub use session::*;
