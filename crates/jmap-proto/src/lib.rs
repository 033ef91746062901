//! JMAP without I/O: the parts of RFC 8620 (JMAP core) that do not depend on
//! the mail store or on HTTP, plus the message shapes of RFC 8887 (JMAP over
//! WebSocket) and the SetError types of RFC 8621 (JMAP mail).
//!
//! The layers, from the wire inwards:
//!
//! * [`Request::parse`] turns a body into a [`Request`] or a [`RequestError`]
//!   (problem details, HTTP 400); [`Response`] serializes the answer.
//! * [`process`] runs a request against a [`MethodHandler`] (the mail
//!   methods, written elsewhere): it checks `using` and limits, resolves
//!   result references ([`resolve_references`]), answers `Core/echo`, turns
//!   [`MethodError`]s into `error` responses, and carries created ids between
//!   calls in a [`CallContext`].
//! * Handlers take their arguments apart with [`Args`] and the standard
//!   request types ([`GetRequest`], [`ChangesRequest`], [`SetRequest`],
//!   [`CopyRequest`], [`QueryRequest`], [`QueryChangesRequest`]), and use
//!   [`query_window`], [`Filter`], [`apply_patch`] and [`SetError`].
//! * [`Session`] and [`CoreCapability`] describe the server;
//!   [`StateChange`], the EventSource helpers and [`WsClientMessage`] /
//!   [`WsServerMessage`] are the push and WebSocket wire formats.
//!
//! Code comments cite the RFC section each rule comes from.

#![forbid(unsafe_code)]

mod args;
mod error;
mod id;
mod methods;
mod patch;
mod process;
mod push;
mod reference;
mod request;
mod session;
mod window;

pub use args::{Args, from_value, method_response};
pub use error::{
    Limit, MethodError, MethodErrorKind, RequestError, RequestErrorKind, SetError, SetErrorKind,
};
pub use id::{Id, IdOrRef, InvalidId, MAX_ID_LEN, creation_ref, is_valid_id};
pub use methods::{
    AddedItem, ChangesRequest, ChangesResponse, Comparator, CopyRequest, CopyResponse, Filter,
    FilterOperator, GetRequest, GetResponse, PatchObject, QueryChangesRequest,
    QueryChangesResponse, QueryRequest, QueryResponse, SetRequest, SetResponse,
};
pub use patch::{apply_patch, patch_properties};
pub use process::{CallContext, MethodHandler, process};
pub use push::{
    EventSourceParams, InvalidParameter, StateChange, WsClientMessage, WsError, WsServerMessage,
    event_source_ping, event_source_state,
};
pub use reference::{
    PointerError, ResultReference, evaluate_pointer, pointer_tokens, resolve_references,
};
pub use request::{Invocation, Request, Response};
pub use session::{
    Account, CAPABILITY_CORE, CAPABILITY_MAIL, CAPABILITY_SUBMISSION, CAPABILITY_VACATION_RESPONSE,
    CAPABILITY_WEBSOCKET, CoreCapability, Session, SessionUrls, WebSocketCapability,
};
pub use window::{QueryWindow, query_window};
