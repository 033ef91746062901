//! The SMTP server session (RFC 5321) as a sans-I/O state machine.
//!
//! The driver feeds received bytes with [`Session::feed`] and calls
//! [`Session::poll`] until it returns [`Action::NeedInput`]; every other action
//! is a decision the session cannot make alone (is this recipient local? are
//! these credentials right? store this message) or an I/O step (upgrade to TLS,
//! close). The driver answers with the matching `answer_*` method and polls
//! again. Replies accumulate in [`Session::output`]; the driver writes them before
//! it reads more input, which is exactly the PIPELINING rule of RFC 2920 §3.
//!
//! Because nothing here touches a socket, every command, limit and attack
//! (pipelining, smuggling, STARTTLS injection) is tested as a transcript in memory.

#![forbid(unsafe_code)]

pub mod client;
pub mod data;
pub mod mta_sts;
mod reply;
mod session;

pub use data::{BdatReceiver, BodyFaults, DataReceiver};
pub use reply::Reply;
pub use session::*;
