//! Email/get, /changes, /query, /queryChanges, /set, /copy, /import, /parse
//! (RFC 8621 §4), one file per concern: [`get`] (get and changes), [`query`]
//! (query, queryChanges and the filter shared with SearchSnippet), [`set`]
//! (set and copy), [`import`] (import and parse).

pub mod get;
pub mod import;
pub mod query;
pub mod set;

pub use get::{changes, get};
pub use import::{import, parse};
pub use query::{query, query_changes};
pub use set::{copy, set};

/// The sort properties Email/query supports (the session advertises them).
pub const SORT_PROPERTIES: [&str; 9] = [
    "receivedAt",
    "size",
    "from",
    "to",
    "subject",
    "sentAt",
    "hasKeyword",
    "allInThreadHaveKeyword",
    "someInThreadHaveKeyword",
];
