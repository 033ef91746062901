//! The IMAP server: executes IMAP commands on the mail store (the selected
//! mailbox view, FETCH, SEARCH, STORE, COPY/MOVE, APPEND, LIST, STATUS, ...) and
//! runs the connection driver around `pochta_proto_imap`'s session.

#![forbid(unsafe_code)]

pub mod exec;
pub mod fetch;
pub mod mailboxes;
pub mod messages;
pub mod names;
pub mod search;
pub mod select;
pub mod selected;
pub mod server;
pub mod transport;
