//! The Request and Response objects of the API endpoint (RFC 8620 §3.2–3.4).

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::{Limit, RequestError};
use crate::id::Id;
use crate::session::CoreCapability;

/// One method call: `[name, arguments, callId]` (RFC 8620 §3.2).
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// The method name, e.g. `Email/get`.
    pub name: String,
    /// The named arguments.
    pub arguments: Map<String, Value>,
    /// The client's id for this call, echoed on every response it produces.
    pub call_id: String,
}

impl Invocation {
    /// A call to `name` with `arguments`, identified by `call_id`.
    pub fn new(
        name: impl Into<String>,
        arguments: Map<String, Value>,
        call_id: impl Into<String>,
    ) -> Self {
        Invocation {
            name: name.into(),
            arguments,
            call_id: call_id.into(),
        }
    }
}

impl Serialize for Invocation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(3)?;
        t.serialize_element(&self.name)?;
        t.serialize_element(&self.arguments)?;
        t.serialize_element(&self.call_id)?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for Invocation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Invocation;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an Invocation: [name, arguments object, call id]")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Invocation, A::Error> {
                let name: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let arguments: Map<String, Value> = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                let call_id: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(2, &self))?;
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(4, &self));
                }
                Ok(Invocation {
                    name,
                    arguments,
                    call_id,
                })
            }
        }
        d.deserialize_seq(V)
    }
}

/// An API request (RFC 8620 §3.3). Unknown properties are ignored, as the RFC
/// requires for forward compatibility.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// Capabilities the client wants to use.
    pub using: Vec<String>,
    /// The calls, processed in order.
    pub method_calls: Vec<Invocation>,
    /// Creation id → id map from earlier (proxied) requests; when present the
    /// response returns the final map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_ids: Option<HashMap<String, Id>>,
}

impl Request {
    /// Parses a request body, checking `maxSizeRequest` before parsing
    /// (RFC 8620 §3.6.1: `limit`, `notJSON`, `notRequest`). The HTTP layer
    /// should also stop reading a body once it passes the limit, so an
    /// oversized body is never held in memory.
    pub fn parse(body: &[u8], limits: &CoreCapability) -> Result<Request, RequestError> {
        check_size(body, limits)?;
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            RequestError::not_json(format!("The request did not parse as I-JSON: {e}"))
        })?;
        Request::from_value(value)
    }

    /// Checks an already-parsed JSON value against the Request type
    /// signature (`notRequest`).
    pub fn from_value(value: Value) -> Result<Request, RequestError> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            RequestError::not_request(format!("The request is not a valid JMAP Request: {e}"))
        })
    }
}

pub(crate) fn check_size(body: &[u8], limits: &CoreCapability) -> Result<(), RequestError> {
    if u64::try_from(body.len()).unwrap_or(u64::MAX) > limits.max_size_request {
        return Err(RequestError::limit(
            Limit::MaxSizeRequest,
            format!(
                "The request is larger than the server is willing to process ({} octets at most).",
                limits.max_size_request
            ),
        ));
    }
    Ok(())
}

/// An API response (RFC 8620 §3.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    /// `[name, arguments, callId]` for every response, in processing order.
    pub method_responses: Vec<(String, Value, String)>,
    /// The final creation id map; only present when the request had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_ids: Option<HashMap<String, Id>>,
    /// The Session's current `state`. [`process`](crate::process) leaves it
    /// empty: the caller, who owns the Session, sets it (e.g. with
    /// [`Response::with_session_state`]) before sending.
    pub session_state: String,
}

impl Response {
    /// Sets `sessionState`.
    pub fn with_session_state(mut self, state: impl Into<String>) -> Self {
        self.session_state = state.into();
        self
    }

    /// The response as JSON bytes for the HTTP body.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing Strings, Values and string-keyed maps cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}
