//! Push: the StateChange object (RFC 8620 §7.1), EventSource framing
//! (RFC 8620 §7.3) and the JMAP-over-WebSocket messages (RFC 8887 §4.3).

use std::collections::BTreeMap;

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::RequestError;
use crate::id::Id;
use crate::request::{Request, Response, check_size};
use crate::session::CoreCapability;

/// "These types changed in these accounts" (RFC 8620 §7.1): account id →
/// type name (`Email`, `Mailbox`, …) → the state `Foo/get` would now return.
/// Serializes with `"@type": "StateChange"`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateChange {
    /// Account id → type name → new state.
    pub changed: BTreeMap<Id, BTreeMap<String, String>>,
    /// RFC 8887 §4.3.5.2 `pushState` (WebSocket only): lets a reconnecting
    /// client ask for the changes it missed.
    pub push_state: Option<String>,
}

impl StateChange {
    /// An empty StateChange.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `type_name` in `account` is now in `state`.
    pub fn add(&mut self, account: Id, type_name: impl Into<String>, state: impl Into<String>) {
        self.changed
            .entry(account)
            .or_default()
            .insert(type_name.into(), state.into());
    }

    /// Whether nothing changed (an empty StateChange need not be sent).
    pub fn is_empty(&self) -> bool {
        self.changed.values().all(BTreeMap::is_empty)
    }

    /// Only the types in `types` (`None`: all), dropping accounts left
    /// empty: for EventSource `types` and WebSocket `dataTypes`.
    pub fn only_types(&self, types: Option<&[String]>) -> StateChange {
        let Some(types) = types else {
            return self.clone();
        };
        let changed = self
            .changed
            .iter()
            .filter_map(|(account, states)| {
                let kept: BTreeMap<String, String> = states
                    .iter()
                    .filter(|(t, _)| types.contains(t))
                    .map(|(t, s)| (t.clone(), s.clone()))
                    .collect();
                (!kept.is_empty()).then(|| (account.clone(), kept))
            })
            .collect();
        StateChange {
            changed,
            push_state: self.push_state.clone(),
        }
    }

    /// The JSON text.
    pub fn to_json_string(&self) -> String {
        // Strings and string-keyed maps always serialize.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Serialize for StateChange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("@type", "StateChange")?;
        map.serialize_entry("changed", &self.changed)?;
        if let Some(p) = &self.push_state {
            map.serialize_entry("pushState", p)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for StateChange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Raw {
            #[serde(rename = "@type")]
            kind: String,
            changed: BTreeMap<Id, BTreeMap<String, String>>,
            #[serde(default)]
            push_state: Option<String>,
        }
        let raw = Raw::deserialize(d)?;
        if raw.kind != "StateChange" {
            return Err(serde::de::Error::custom("@type is not \"StateChange\""));
        }
        Ok(StateChange {
            changed: raw.changed,
            push_state: raw.push_state,
        })
    }
}

// ---------------------------------------------------------------- EventSource

/// A malformed query parameter of the EventSource URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidParameter(pub String);

/// The query parameters of the `eventSourceUrl` (RFC 8620 §7.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventSourceParams {
    /// Types to report; `None` for all (`*`).
    pub types: Option<Vec<String>>,
    /// `closeafter=state`: end the response after the first `state` event.
    pub close_after_state: bool,
    /// Requested ping interval in seconds; 0 for no pings.
    pub ping: u32,
}

impl EventSourceParams {
    /// Reads already percent-decoded query pairs. A missing parameter takes
    /// its neutral value (all types, `closeafter=no`, `ping=0`); unknown
    /// parameters are ignored.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, InvalidParameter> {
        let mut params = EventSourceParams::default();
        for (name, value) in pairs {
            match name {
                "types" if value == "*" => params.types = None,
                "types" => {
                    params.types = Some(
                        value
                            .split(',')
                            .map(str::trim)
                            .filter(|t| !t.is_empty())
                            .map(str::to_owned)
                            .collect(),
                    );
                }
                "closeafter" => {
                    params.close_after_state = match value {
                        "state" => true,
                        "no" => false,
                        _ => {
                            return Err(InvalidParameter(
                                "closeafter must be \"state\" or \"no\"".into(),
                            ));
                        }
                    };
                }
                "ping" => {
                    params.ping = value.parse().map_err(|_| {
                        InvalidParameter("ping must be a non-negative number of seconds".into())
                    })?;
                }
                _ => {}
            }
        }
        Ok(params)
    }

    /// The ping interval the server will use: `None` for no pings, else the
    /// request clamped to `min..=max` seconds (RFC 8620 §7.3 allows a
    /// minimum of at most 30 and a maximum of at least 300).
    pub fn ping_interval(&self, min: u32, max: u32) -> Option<u32> {
        (self.ping > 0).then(|| self.ping.clamp(min, max.max(min)))
    }
}

/// A `state` event: `event: state`, an optional `id:` line (RFC 8620 §7.3:
/// an id encoding the state, for `Last-Event-ID` on reconnect), and the
/// StateChange as `data`. `pushState` is a WebSocket property and is left out.
pub fn event_source_state(change: &StateChange, id: Option<&str>) -> String {
    let mut body = change.clone();
    body.push_state = None;
    let mut frame = String::from("event: state\n");
    if let Some(id) = id {
        // A newline would end the field early; ids are ours, but be safe.
        let id: String = id.chars().filter(|c| *c != '\n' && *c != '\r').collect();
        frame.push_str(&format!("id: {id}\n"));
    }
    frame.push_str(&format!("data: {}\n\n", body.to_json_string()));
    frame
}

/// A `ping` event with the interval in use: `event: ping` and
/// `data: {"interval":N}` (RFC 8620 §7.3).
pub fn event_source_ping(interval: u32) -> String {
    format!("event: ping\ndata: {{\"interval\":{interval}}}\n\n")
}

// ---------------------------------------------------------------- WebSocket

/// A message from the client on a JMAP WebSocket (RFC 8887 §4.3).
#[derive(Debug, Clone, PartialEq)]
pub enum WsClientMessage {
    /// `@type: Request`: an API request, with the client's optional id.
    Request {
        /// The `id` to echo as `requestId`.
        id: Option<String>,
        /// The request.
        request: Request,
    },
    /// `@type: WebSocketPushEnable` (RFC 8887 §4.3.5.2).
    PushEnable {
        /// Types to push; `None` for all.
        data_types: Option<Vec<String>>,
        /// The last `pushState` the client saw, to catch up from.
        push_state: Option<String>,
    },
    /// `@type: WebSocketPushDisable` (RFC 8887 §4.3.5.3).
    PushDisable,
}

/// A message the server could not accept: answered with a `RequestError`
/// message carrying the request id when known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct WsError {
    /// The `id` of the offending Request, if it had one.
    pub request_id: Option<String>,
    /// The problem.
    pub error: RequestError,
}

impl WsClientMessage {
    /// Parses one text message, enforcing `maxSizeRequest` first.
    pub fn parse(text: &[u8], limits: &CoreCapability) -> Result<Self, WsError> {
        let fail = |request_id: Option<String>, error: RequestError| WsError { request_id, error };
        check_size(text, limits).map_err(|e| fail(None, e))?;
        let value: Value = serde_json::from_slice(text).map_err(|e| {
            fail(
                None,
                RequestError::not_json(format!("The message did not parse as I-JSON: {e}")),
            )
        })?;
        let Value::Object(map) = &value else {
            return Err(fail(
                None,
                RequestError::not_request("The message is not a JSON object."),
            ));
        };
        let request_id = match map.get("id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(fail(
                    None,
                    RequestError::not_request("\"id\" must be a string."),
                ));
            }
        };
        match map.get("@type").and_then(Value::as_str) {
            Some("Request") => {
                let request =
                    Request::from_value(value.clone()).map_err(|e| fail(request_id.clone(), e))?;
                Ok(WsClientMessage::Request {
                    id: request_id,
                    request,
                })
            }
            Some("WebSocketPushEnable") => {
                let data_types = match map.get("dataTypes") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(serde_json::from_value::<Vec<String>>(v.clone()).map_err(
                        |_| {
                            fail(
                                None,
                                RequestError::not_request(
                                    "\"dataTypes\" must be a list of type names or null.",
                                ),
                            )
                        },
                    )?),
                };
                let push_state = match map.get("pushState") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(_) => {
                        return Err(fail(
                            None,
                            RequestError::not_request("\"pushState\" must be a string."),
                        ));
                    }
                };
                Ok(WsClientMessage::PushEnable {
                    data_types,
                    push_state,
                })
            }
            Some("WebSocketPushDisable") => Ok(WsClientMessage::PushDisable),
            _ => Err(fail(
                request_id,
                RequestError::not_request(
                    "\"@type\" must be \"Request\", \"WebSocketPushEnable\" or \"WebSocketPushDisable\".",
                ),
            )),
        }
    }
}

/// A message from the server on a JMAP WebSocket (RFC 8887 §4.3).
#[derive(Debug, Clone, PartialEq)]
pub enum WsServerMessage {
    /// `@type: Response`, with `requestId` when the request had an `id`.
    Response {
        /// The request's `id`.
        request_id: Option<String>,
        /// The response.
        response: Response,
    },
    /// `@type: RequestError`: the problem details plus `requestId` (`null`
    /// when unknown, as in RFC 8887's example).
    RequestError {
        /// The request's `id`, if known.
        request_id: Option<String>,
        /// The problem.
        error: RequestError,
    },
    /// `@type: StateChange`, with `pushState` when push is enabled.
    StateChange(StateChange),
}

impl From<WsError> for WsServerMessage {
    fn from(e: WsError) -> Self {
        WsServerMessage::RequestError {
            request_id: e.request_id,
            error: e.error,
        }
    }
}

impl WsServerMessage {
    /// The message as JSON.
    pub fn to_json(&self) -> Value {
        match self {
            WsServerMessage::Response {
                request_id,
                response,
            } => {
                let mut map = Map::new();
                map.insert("@type".into(), "Response".into());
                if let Some(id) = request_id {
                    map.insert("requestId".into(), id.as_str().into());
                }
                if let Ok(Value::Object(body)) = serde_json::to_value(response) {
                    map.extend(body);
                }
                Value::Object(map)
            }
            WsServerMessage::RequestError { request_id, error } => {
                let mut map = Map::new();
                map.insert("@type".into(), "RequestError".into());
                map.insert(
                    "requestId".into(),
                    request_id.as_deref().map_or(Value::Null, Value::from),
                );
                if let Value::Object(body) = error.to_json() {
                    map.extend(body);
                }
                Value::Object(map)
            }
            WsServerMessage::StateChange(change) => {
                serde_json::to_value(change).unwrap_or(Value::Null)
            }
        }
    }

    /// The text to send in one WebSocket text frame.
    pub fn to_text(&self) -> String {
        self.to_json().to_string()
    }
}
