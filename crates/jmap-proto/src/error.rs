//! The three levels of JMAP errors (RFC 8620 §3.6): request-level problem
//! details, method-level `error` responses, and per-record `SetError`s.

use std::fmt;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::id::Id;

/// A request limit named in a `urn:ietf:params:jmap:error:limit` problem
/// (RFC 8620 §3.6.1), so the client knows which one it hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The request body was larger than `maxSizeRequest`.
    MaxSizeRequest,
    /// The request had more method calls than `maxCallsInRequest`.
    MaxCallsInRequest,
    /// The client has more requests in flight than `maxConcurrentRequests`.
    MaxConcurrentRequests,
}

impl Limit {
    /// The capability property name, as put in the `limit` property.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::MaxSizeRequest => "maxSizeRequest",
            Limit::MaxCallsInRequest => "maxCallsInRequest",
            Limit::MaxConcurrentRequests => "maxConcurrentRequests",
        }
    }
}

/// Which request-level problem occurred (RFC 8620 §3.6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestErrorKind {
    /// `using` named a capability the server does not support.
    UnknownCapability,
    /// The body was not I-JSON.
    NotJson,
    /// The body was JSON but not a Request object.
    NotRequest,
    /// A request limit was exceeded.
    Limit(Limit),
}

/// A request rejected as a whole, answered with an HTTP error and an RFC 7807
/// problem-details body (RFC 8620 §3.6.1); over WebSocket it becomes a
/// `RequestError` message (RFC 8887 §4.3.4).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", self.type_uri())]
pub struct RequestError {
    /// The problem type.
    pub kind: RequestErrorKind,
    /// A human-readable explanation (RFC 7807 `detail`).
    pub detail: String,
}

impl RequestError {
    /// `using` contained `capability`, which the server does not support.
    pub fn unknown_capability(capability: &str) -> Self {
        let shown: String = capability.chars().take(200).collect();
        RequestError {
            kind: RequestErrorKind::UnknownCapability,
            detail: format!(
                "The request used capability '{shown}', which is not supported by this server."
            ),
        }
    }

    /// The body did not parse as JSON.
    pub fn not_json(detail: impl Into<String>) -> Self {
        RequestError {
            kind: RequestErrorKind::NotJson,
            detail: detail.into(),
        }
    }

    /// The body was JSON but did not match the Request type signature.
    pub fn not_request(detail: impl Into<String>) -> Self {
        RequestError {
            kind: RequestErrorKind::NotRequest,
            detail: detail.into(),
        }
    }

    /// A request limit was exceeded.
    pub fn limit(limit: Limit, detail: impl Into<String>) -> Self {
        RequestError {
            kind: RequestErrorKind::Limit(limit),
            detail: detail.into(),
        }
    }

    /// The problem type URI (`urn:ietf:params:jmap:error:…`).
    pub fn type_uri(&self) -> &'static str {
        match self.kind {
            RequestErrorKind::UnknownCapability => "urn:ietf:params:jmap:error:unknownCapability",
            RequestErrorKind::NotJson => "urn:ietf:params:jmap:error:notJSON",
            RequestErrorKind::NotRequest => "urn:ietf:params:jmap:error:notRequest",
            RequestErrorKind::Limit(_) => "urn:ietf:params:jmap:error:limit",
        }
    }

    /// The HTTP status to answer with: 400 for every type RFC 8620 defines
    /// (the examples in §3.6.1 use 400, including for `limit`).
    pub fn status(&self) -> u16 {
        400
    }

    /// The problem-details object: `type`, `status`, `detail`, and `limit`
    /// for limit errors. Send it as `application/problem+json`.
    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        body.insert("type".into(), Value::from(self.type_uri()));
        body.insert("status".into(), Value::from(self.status()));
        body.insert("detail".into(), Value::from(self.detail.as_str()));
        if let RequestErrorKind::Limit(limit) = self.kind {
            body.insert("limit".into(), Value::from(limit.as_str()));
        }
        Value::Object(body)
    }
}

macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name { $( $(#[$vmeta])* $variant, )* }

        impl $name {
            /// The type string used on the wire.
            pub fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $text, )* }
            }

            /// The variant for a wire type string, if it is one we know.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $( $text => Some($name::$variant), )* _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// The method-level error types of RFC 8620 §3.6.2 and §5.
    pub enum MethodErrorKind {
        /// A server resource was temporarily unavailable; retry later.
        ServerUnavailable = "serverUnavailable",
        /// An unexpected error; the call made no changes.
        ServerFail = "serverFail",
        /// Some but not all changes were made; the client must resync.
        ServerPartialFail = "serverPartialFail",
        /// The method name is unknown, or its capability is not in `using`.
        UnknownMethod = "unknownMethod",
        /// An argument is missing, unknown, of the wrong type or invalid.
        InvalidArguments = "invalidArguments",
        /// A result reference (`#arg`) failed to resolve.
        InvalidResultReference = "invalidResultReference",
        /// The call would violate an ACL or other policy.
        Forbidden = "forbidden",
        /// `accountId` names no account the user can see.
        AccountNotFound = "accountNotFound",
        /// The account does not support this data type.
        AccountNotSupportedByMethod = "accountNotSupportedByMethod",
        /// The call would modify a read-only account.
        AccountReadOnly = "accountReadOnly",
        /// More ids or objects than `maxObjectsInGet`/`maxObjectsInSet`.
        RequestTooLarge = "requestTooLarge",
        /// `/changes` or `/queryChanges` cannot compute from that state.
        CannotCalculateChanges = "cannotCalculateChanges",
        /// `ifInState` (or `ifFromInState`) did not match.
        StateMismatch = "stateMismatch",
        /// The `/query` anchor is not in the results.
        AnchorNotFound = "anchorNotFound",
        /// The sort property or collation is not supported.
        UnsupportedSort = "unsupportedSort",
        /// The filter is valid but cannot be processed.
        UnsupportedFilter = "unsupportedFilter",
        /// More `/queryChanges` changes than `maxChanges`.
        TooManyChanges = "tooManyChanges",
        /// `/copy`'s `fromAccountId` names no account.
        FromAccountNotFound = "fromAccountNotFound",
        /// `/copy`'s from-account does not support this data type.
        FromAccountNotSupportedByMethod = "fromAccountNotSupportedByMethod",
    }
}

/// A method-level error (RFC 8620 §3.6.2), answered as
/// `["error", {"type": …, "description": …}, callId]`; later calls in the
/// request still run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct MethodError {
    /// The error type.
    pub kind: MethodErrorKind,
    /// A non-localised explanation for debugging, if any.
    pub description: Option<String>,
}

impl fmt::Display for MethodError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.description {
            Some(d) => write!(f, "{}: {d}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl From<MethodErrorKind> for MethodError {
    fn from(kind: MethodErrorKind) -> Self {
        MethodError::new(kind)
    }
}

impl MethodError {
    /// An error of `kind` without a description.
    pub fn new(kind: MethodErrorKind) -> Self {
        MethodError {
            kind,
            description: None,
        }
    }

    /// An error of `kind` with a description.
    pub fn with_description(kind: MethodErrorKind, description: impl Into<String>) -> Self {
        MethodError {
            kind,
            description: Some(description.into()),
        }
    }

    /// `invalidArguments`, saying which argument and why.
    pub fn invalid_arguments(description: impl Into<String>) -> Self {
        Self::with_description(MethodErrorKind::InvalidArguments, description)
    }

    /// `invalidResultReference`, saying why the reference failed.
    pub fn invalid_result_reference(description: impl Into<String>) -> Self {
        Self::with_description(MethodErrorKind::InvalidResultReference, description)
    }

    /// `serverFail`, with the internal reason (keep secrets out of it).
    pub fn server_fail(description: impl Into<String>) -> Self {
        Self::with_description(MethodErrorKind::ServerFail, description)
    }

    /// `unknownMethod`.
    pub fn unknown_method(description: impl Into<String>) -> Self {
        Self::with_description(MethodErrorKind::UnknownMethod, description)
    }

    /// `requestTooLarge`.
    pub fn request_too_large(description: impl Into<String>) -> Self {
        Self::with_description(MethodErrorKind::RequestTooLarge, description)
    }

    /// The error's arguments object: `{"type": …, "description": …}`.
    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        body.insert("type".into(), Value::from(self.kind.as_str()));
        if let Some(d) = &self.description {
            body.insert("description".into(), Value::from(d.as_str()));
        }
        Value::Object(body)
    }

    /// The `("error", arguments)` pair a handler can put among its responses,
    /// e.g. for a failed implicit call after a successful one.
    pub fn to_response(&self) -> (String, Value) {
        ("error".to_owned(), self.to_json())
    }
}

string_enum! {
    /// SetError types of RFC 8620 §5.3/§5.4 and RFC 8621 (Mailbox, Email,
    /// EmailSubmission, VacationResponse).
    pub enum SetErrorKind {
        /// (create, update, destroy) Would violate an ACL or policy.
        Forbidden = "forbidden",
        /// (create, update) Would exceed a quota.
        OverQuota = "overQuota",
        /// (create, update) The object would be too large.
        TooLarge = "tooLarge",
        /// (create) Too many objects created recently.
        RateLimit = "rateLimit",
        /// (update, destroy) No record with that id.
        NotFound = "notFound",
        /// (update) The PatchObject is not valid.
        InvalidPatch = "invalidPatch",
        /// (update) The record is destroyed in the same call.
        WillDestroy = "willDestroy",
        /// (create, update) Invalid properties, listed in `properties`.
        InvalidProperties = "invalidProperties",
        /// (create, destroy) A singleton type.
        Singleton = "singleton",
        /// (copy, import) A duplicate; `existingId` names the existing one.
        AlreadyExists = "alreadyExists",
        /// (Mailbox destroy) The mailbox has children.
        MailboxHasChild = "mailboxHasChild",
        /// (Mailbox destroy) The mailbox has emails and
        /// `onDestroyRemoveEmails` was false.
        MailboxHasEmail = "mailboxHasEmail",
        /// (Email create/import) Blobs not found, listed in `notFound`.
        BlobNotFound = "blobNotFound",
        /// (Email) More keywords than the server allows.
        TooManyKeywords = "tooManyKeywords",
        /// (Email) In more mailboxes than the server allows.
        TooManyMailboxes = "tooManyMailboxes",
        /// (Email import, EmailSubmission) The email is invalid.
        InvalidEmail = "invalidEmail",
        /// (EmailSubmission) More than `maxRecipients` recipients.
        TooManyRecipients = "tooManyRecipients",
        /// (EmailSubmission) No recipients.
        NoRecipients = "noRecipients",
        /// (EmailSubmission) Invalid recipients, listed in `invalidRecipients`.
        InvalidRecipients = "invalidRecipients",
        /// (EmailSubmission) The user may not use the envelope MAIL FROM.
        ForbiddenMailFrom = "forbiddenMailFrom",
        /// (EmailSubmission) The user may not use the From header address.
        ForbiddenFrom = "forbiddenFrom",
        /// (EmailSubmission) The user may not send at all now.
        ForbiddenToSend = "forbiddenToSend",
        /// (EmailSubmission update) Too late to cancel sending.
        CannotUnsend = "cannotUnsend",
    }
}

/// A per-record failure in a `/set`, `/copy` or import response
/// (RFC 8620 §5.3): `{"type": …, "description": …, …extra}`. Use the
/// constructors for types whose extra properties the RFCs name, so the
/// property names are right.
#[derive(Debug, Clone, PartialEq)]
pub struct SetError {
    /// The error type.
    pub kind: SetErrorKind,
    /// A non-localised explanation for debugging, if any.
    pub description: Option<String>,
    /// Further properties (`properties`, `existingId`, `notFound`, …).
    pub extra: Map<String, Value>,
}

impl SetError {
    /// A SetError of `kind` with no description or extra properties.
    pub fn new(kind: SetErrorKind) -> Self {
        SetError {
            kind,
            description: None,
            extra: Map::new(),
        }
    }

    /// Adds a description.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Adds an extra property.
    pub fn with_property(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(name.into(), value.into());
        self
    }

    /// `notFound`.
    pub fn not_found() -> Self {
        Self::new(SetErrorKind::NotFound)
    }

    /// `forbidden`.
    pub fn forbidden() -> Self {
        Self::new(SetErrorKind::Forbidden)
    }

    /// `invalidPatch` with the reason.
    pub fn invalid_patch(description: impl Into<String>) -> Self {
        Self::new(SetErrorKind::InvalidPatch).with_description(description)
    }

    /// `invalidProperties` listing every invalid property (RFC 8620 §5.3).
    pub fn invalid_properties<I, S>(properties: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::new(SetErrorKind::InvalidProperties)
            .with_property("properties", string_list(properties))
    }

    /// `alreadyExists` with the `existingId` (RFC 8620 §5.4, RFC 8621 §4.8).
    pub fn already_exists(existing_id: &Id) -> Self {
        Self::new(SetErrorKind::AlreadyExists).with_property("existingId", existing_id.as_str())
    }

    /// `blobNotFound` listing the missing blob ids in `notFound`
    /// (RFC 8621 §4.6, §4.8).
    pub fn blob_not_found<'a>(blob_ids: impl IntoIterator<Item = &'a Id>) -> Self {
        Self::new(SetErrorKind::BlobNotFound).with_property(
            "notFound",
            Value::Array(blob_ids.into_iter().map(|i| i.as_str().into()).collect()),
        )
    }

    /// `invalidEmail` listing the invalid email properties (RFC 8621 §7.5).
    pub fn invalid_email<I, S>(properties: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::new(SetErrorKind::InvalidEmail).with_property("properties", string_list(properties))
    }

    /// `tooManyRecipients` with `maxRecipients` (RFC 8621 §7.5).
    pub fn too_many_recipients(max_recipients: u64) -> Self {
        Self::new(SetErrorKind::TooManyRecipients).with_property("maxRecipients", max_recipients)
    }

    /// `invalidRecipients` listing the bad addresses (RFC 8621 §7.5).
    pub fn invalid_recipients<I, S>(addresses: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::new(SetErrorKind::InvalidRecipients)
            .with_property("invalidRecipients", string_list(addresses))
    }

    /// `tooLarge` with the `maxSize` in octets (RFC 8621 §7.5 for
    /// EmailSubmission; harmless elsewhere).
    pub fn too_large(max_size: Option<u64>) -> Self {
        let e = Self::new(SetErrorKind::TooLarge);
        match max_size {
            Some(n) => e.with_property("maxSize", n),
            None => e,
        }
    }

    /// The SetError object as JSON.
    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        body.insert("type".into(), Value::from(self.kind.as_str()));
        if let Some(d) = &self.description {
            body.insert("description".into(), Value::from(d.as_str()));
        }
        for (k, v) in &self.extra {
            if k != "type" && k != "description" {
                body.insert(k.clone(), v.clone());
            }
        }
        Value::Object(body)
    }
}

impl Serialize for SetError {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("type", self.kind.as_str())?;
        if let Some(d) = &self.description {
            map.serialize_entry("description", d)?;
        }
        for (k, v) in &self.extra {
            if k != "type" && k != "description" {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

fn string_list<I, S>(items: I) -> Value
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    Value::Array(items.into_iter().map(|s| Value::String(s.into())).collect())
}
