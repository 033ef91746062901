//! The IMAP server: executes IMAP commands on the mail store (the selected
//! mailbox view, FETCH, SEARCH, STORE, COPY/MOVE, APPEND, LIST, STATUS, ...) and
//! runs the connection driver around `pochta_proto_imap`'s session.

#![forbid(unsafe_code)]

pub mod names;
