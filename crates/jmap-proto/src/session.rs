//! The JMAP Session resource (RFC 8620 §2) and capability objects.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::id::Id;

/// The core capability, which every request must be able to use
/// (RFC 8620 §2).
pub const CAPABILITY_CORE: &str = "urn:ietf:params:jmap:core";
/// Mailbox, Thread, Email and SearchSnippet (RFC 8621 §1.3.1).
pub const CAPABILITY_MAIL: &str = "urn:ietf:params:jmap:mail";
/// Identity and EmailSubmission (RFC 8621 §1.3.2).
pub const CAPABILITY_SUBMISSION: &str = "urn:ietf:params:jmap:submission";
/// VacationResponse (RFC 8621 §1.3.3).
pub const CAPABILITY_VACATION_RESPONSE: &str = "urn:ietf:params:jmap:vacationresponse";
/// JMAP over WebSocket (RFC 8887 §4.1).
pub const CAPABILITY_WEBSOCKET: &str = "urn:ietf:params:jmap:websocket";

/// The `urn:ietf:params:jmap:core` capability object: the server's limits
/// (RFC 8620 §2). The defaults are what pochta advertises unless configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CoreCapability {
    /// Largest upload, in octets.
    pub max_size_upload: u64,
    /// Concurrent requests to the upload endpoint.
    pub max_concurrent_upload: u64,
    /// Largest API request body, in octets.
    pub max_size_request: u64,
    /// Concurrent requests to the API endpoint.
    pub max_concurrent_requests: u64,
    /// Method calls in one request.
    pub max_calls_in_request: u64,
    /// Objects one `/get` may fetch.
    pub max_objects_in_get: u64,
    /// Creates + updates + destroys in one `/set`.
    pub max_objects_in_set: u64,
    /// Collations (RFC 4790 registry) usable in `/query` sorts.
    pub collation_algorithms: Vec<String>,
}

impl Default for CoreCapability {
    fn default() -> Self {
        CoreCapability {
            max_size_upload: 50_000_000,
            max_concurrent_upload: 4,
            max_size_request: 10_000_000,
            max_concurrent_requests: 8,
            max_calls_in_request: 64,
            max_objects_in_get: 1000,
            max_objects_in_set: 1000,
            collation_algorithms: vec![
                "i;ascii-numeric".to_owned(),
                "i;ascii-casemap".to_owned(),
                "i;unicode-casemap".to_owned(),
            ],
        }
    }
}

impl CoreCapability {
    /// The capability object as JSON, for [`Session::add_capability`].
    pub fn to_value(&self) -> Value {
        json!({
            "maxSizeUpload": self.max_size_upload,
            "maxConcurrentUpload": self.max_concurrent_upload,
            "maxSizeRequest": self.max_size_request,
            "maxConcurrentRequests": self.max_concurrent_requests,
            "maxCallsInRequest": self.max_calls_in_request,
            "maxObjectsInGet": self.max_objects_in_get,
            "maxObjectsInSet": self.max_objects_in_set,
            "collationAlgorithms": self.collation_algorithms,
        })
    }
}

/// The `urn:ietf:params:jmap:websocket` capability object (RFC 8887 §4.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebSocketCapability {
    /// The `wss://` URL of the WebSocket endpoint.
    pub url: String,
    /// Whether the server pushes StateChange over the WebSocket.
    pub supports_push: bool,
}

impl WebSocketCapability {
    /// The capability object as JSON, for [`Session::add_capability`].
    pub fn to_value(&self) -> Value {
        json!({ "url": self.url, "supportsPush": self.supports_push })
    }
}

/// An account the user can access (RFC 8620 §2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// A user-friendly name, e.g. the owner's address.
    pub name: String,
    /// Whether the account belongs to the user (not shared with them).
    pub is_personal: bool,
    /// Whether the whole account is read-only.
    pub is_read_only: bool,
    /// Capability URI → account-specific capability object, for the
    /// capabilities this account supports.
    pub account_capabilities: BTreeMap<String, Value>,
}

/// The Session resource returned by `GET /.well-known/jmap` (RFC 8620 §2).
/// Maps are ordered so the serialized form, and [`Session::compute_state`],
/// are deterministic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// Capability URI → server-wide capability object.
    pub capabilities: BTreeMap<String, Value>,
    /// Account id → account.
    pub accounts: BTreeMap<Id, Account>,
    /// Capability URI → the account id the client should use by default.
    pub primary_accounts: BTreeMap<String, Id>,
    /// The username the credentials belong to.
    pub username: String,
    /// URL for API requests (POST).
    pub api_url: String,
    /// RFC 6570 level-1 template with `{accountId}`, `{blobId}`, `{type}`
    /// and `{name}`.
    pub download_url: String,
    /// RFC 6570 level-1 template with `{accountId}`.
    pub upload_url: String,
    /// RFC 6570 level-1 template with `{types}`, `{closeafter}`, `{ping}`.
    pub event_source_url: String,
    /// Changes whenever anything else here changes (see
    /// [`Session::compute_state`]).
    pub state: String,
}

/// The four URLs of a Session, as templates under one base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUrls {
    /// `{base}/jmap/api/`
    pub api_url: String,
    /// `{base}/jmap/download/{accountId}/{blobId}/{name}?type={type}`
    pub download_url: String,
    /// `{base}/jmap/upload/{accountId}/`
    pub upload_url: String,
    /// `{base}/jmap/eventsource/?types={types}&closeafter={closeafter}&ping={ping}`
    pub event_source_url: String,
}

impl SessionUrls {
    /// Templates under `base` (scheme and authority, e.g.
    /// `https://mail.example.com`; a trailing `/` is ignored). The HTTP layer
    /// should route these paths.
    pub fn under(base: &str) -> Self {
        let base = base.trim_end_matches('/');
        SessionUrls {
            api_url: format!("{base}/jmap/api/"),
            download_url: format!(
                "{base}/jmap/download/{{accountId}}/{{blobId}}/{{name}}?type={{type}}"
            ),
            upload_url: format!("{base}/jmap/upload/{{accountId}}/"),
            event_source_url: format!(
                "{base}/jmap/eventsource/?types={{types}}&closeafter={{closeafter}}&ping={{ping}}"
            ),
        }
    }
}

impl Session {
    /// A session for `username` with the given URLs, advertising the core
    /// capability `core` and no accounts yet; the state is computed.
    pub fn new(username: impl Into<String>, urls: SessionUrls, core: &CoreCapability) -> Self {
        let mut session = Session {
            capabilities: BTreeMap::new(),
            accounts: BTreeMap::new(),
            primary_accounts: BTreeMap::new(),
            username: username.into(),
            api_url: urls.api_url,
            download_url: urls.download_url,
            upload_url: urls.upload_url,
            event_source_url: urls.event_source_url,
            state: String::new(),
        };
        session.add_capability(CAPABILITY_CORE, core.to_value());
        session.state = session.compute_state();
        session
    }

    /// Advertises a capability with its server-wide object (`{}` for the
    /// mail capabilities that have none). Recompute `state` after the last
    /// change.
    pub fn add_capability(&mut self, uri: &str, object: Value) {
        self.capabilities.insert(uri.to_owned(), object);
    }

    /// Adds an account, and makes it primary for `primary_for` capabilities.
    pub fn add_account(&mut self, id: Id, account: Account, primary_for: &[&str]) {
        for cap in primary_for {
            self.primary_accounts.insert((*cap).to_owned(), id.clone());
        }
        self.accounts.insert(id, account);
    }

    /// A state string derived from everything but `state` itself, so it
    /// changes exactly when the session does (a 64-bit FNV-1a hash of the
    /// JSON, in hex; stable across builds).
    pub fn compute_state(&self) -> String {
        let mut copy = self.clone();
        copy.state.clear();
        let bytes = serde_json::to_vec(&copy).unwrap_or_default();
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{hash:016x}")
    }
}
