//! The processing loop of an API request (RFC 8620 §3.3–3.7): capability
//! checks, result references, method dispatch, created ids.

use std::collections::HashMap;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::error::{Limit, MethodError, RequestError};
use crate::id::{Id, IdOrRef, creation_ref};
use crate::reference::resolve_references;
use crate::request::{Request, Response};
use crate::session::{CAPABILITY_CORE, CoreCapability};

/// What a method call can see of the request around it, and the request-wide
/// creation id map it shares with later calls (RFC 8620 §5.3).
#[derive(Debug, Clone)]
pub struct CallContext {
    /// Creation id (without `#`) → the id the server assigned. `/set` and
    /// `/copy` handlers insert every record they create, so later calls (and
    /// later creates in the same call) can refer to it as `#creationId`.
    pub created_ids: HashMap<String, Id>,
    call_id: String,
    using: Vec<String>,
    limits: CoreCapability,
}

impl Default for CallContext {
    /// A context using only the core capability with default limits, for
    /// tests and tools.
    fn default() -> Self {
        CallContext::new(
            vec![CAPABILITY_CORE.to_owned()],
            CoreCapability::default(),
            HashMap::new(),
        )
    }
}

impl CallContext {
    /// A context for a request that uses `using`, under `limits`, starting
    /// from the request's `createdIds` (empty if it had none).
    pub fn new(
        using: Vec<String>,
        limits: CoreCapability,
        created_ids: HashMap<String, Id>,
    ) -> Self {
        CallContext {
            created_ids,
            call_id: String::new(),
            using,
            limits,
        }
    }

    /// The call id of the method call being processed.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// Sets the call id (done by [`process`] before each call).
    pub fn set_call_id(&mut self, call_id: impl Into<String>) {
        self.call_id = call_id.into();
    }

    /// The capabilities the request uses.
    pub fn using(&self) -> &[String] {
        &self.using
    }

    /// Whether the request put `capability` in `using` (e.g. to decide
    /// whether to return properties defined by an extension).
    pub fn is_using(&self, capability: &str) -> bool {
        self.using.iter().any(|c| c == capability)
    }

    /// The server limits in force.
    pub fn limits(&self) -> &CoreCapability {
        &self.limits
    }

    /// Records that `creation_id` created the record `id`. A reused
    /// creation id maps to the most recent record (RFC 8620 §5.3).
    pub fn add_created(&mut self, creation_id: impl Into<String>, id: Id) {
        self.created_ids.insert(creation_id.into(), id);
    }

    /// The real id for an id or `#creationId` reference; `None` if the
    /// reference names nothing created so far.
    pub fn resolve(&self, id: &IdOrRef) -> Option<Id> {
        match id {
            IdOrRef::Id(id) => Some(id.clone()),
            IdOrRef::Ref(cid) => self.created_ids.get(cid).cloned(),
        }
    }

    /// Like [`CallContext::resolve`] for a string from an object property
    /// (e.g. a `mailboxIds` key or `parentId`): `#cid` is looked up, anything
    /// else must be a valid id. `None` if it is neither.
    pub fn resolve_str(&self, s: &str) -> Option<Id> {
        match creation_ref(s) {
            Some(cid) => self.created_ids.get(cid).cloned(),
            None => Id::new(s).ok(),
        }
    }
}

/// The methods a server implements on top of this crate: the mail methods,
/// and anything else beyond `Core/echo` (which [`process`] answers itself).
#[async_trait]
pub trait MethodHandler: Send {
    /// The capability a method needs in `using`, or `None` for a method
    /// this handler does not know (answered with `unknownMethod`).
    fn capability(&self, method: &str) -> Option<&'static str>;

    /// Runs one method with result references already resolved. Returns the
    /// responses `(name, arguments)` in order: usually one named like the
    /// method, more when the method makes implicit calls (e.g. `Email/set`
    /// after `EmailSubmission/set`, RFC 8621 §7.5); all get this call's id.
    /// An `Err` becomes one `error` response.
    async fn call(
        &mut self,
        method: &str,
        args: Map<String, Value>,
        ctx: &mut CallContext,
    ) -> Result<Vec<(String, Value)>, MethodError>;
}

/// Processes a request (RFC 8620 §3.3): rejects it as a whole when `using`
/// names a capability not in `supported` or it has more than
/// `maxCallsInRequest` calls; otherwise runs the calls in order and collects
/// their responses. A call whose method is unknown to `handler`, or whose
/// capability is not in `using`, gets `unknownMethod`; a call whose result
/// references fail gets `invalidResultReference` (or `invalidArguments`).
///
/// `Core/echo` (RFC 8620 §4) is answered here. The response's
/// `sessionState` is left empty for the caller to fill in.
pub async fn process(
    request: Request,
    handler: &mut impl MethodHandler,
    limits: &CoreCapability,
    supported: &[&str],
) -> Result<Response, RequestError> {
    if let Some(unknown) = request
        .using
        .iter()
        .find(|c| !supported.contains(&c.as_str()))
    {
        return Err(RequestError::unknown_capability(unknown));
    }
    let calls = u64::try_from(request.method_calls.len()).unwrap_or(u64::MAX);
    if calls > limits.max_calls_in_request {
        return Err(RequestError::limit(
            Limit::MaxCallsInRequest,
            format!(
                "The request has {calls} method calls; the limit is {}.",
                limits.max_calls_in_request
            ),
        ));
    }

    let echo_created_ids = request.created_ids.is_some();
    let mut ctx = CallContext::new(
        request.using,
        limits.clone(),
        request.created_ids.unwrap_or_default(),
    );
    let mut responses: Vec<(String, Value, String)> = Vec::new();
    for call in request.method_calls {
        ctx.set_call_id(call.call_id.clone());
        match run_call(&call.name, call.arguments, handler, &mut ctx, &responses).await {
            Ok(outputs) => {
                for (name, args) in outputs {
                    responses.push((name, args, call.call_id.clone()));
                }
            }
            Err(e) => {
                let (name, args) = e.to_response();
                responses.push((name, args, call.call_id));
            }
        }
    }
    Ok(Response {
        method_responses: responses,
        created_ids: echo_created_ids.then_some(ctx.created_ids),
        session_state: String::new(),
    })
}

const CORE_ECHO: &str = "Core/echo";

async fn run_call(
    method: &str,
    args: Map<String, Value>,
    handler: &mut impl MethodHandler,
    ctx: &mut CallContext,
    responses: &[(String, Value, String)],
) -> Result<Vec<(String, Value)>, MethodError> {
    let capability = if method == CORE_ECHO {
        Some(CAPABILITY_CORE)
    } else {
        handler.capability(method)
    };
    let Some(capability) = capability else {
        return Err(MethodError::unknown_method(format!(
            "unknown method {:?}",
            short(method)
        )));
    };
    if !ctx.is_using(capability) {
        return Err(MethodError::unknown_method(format!(
            "{method} needs {capability:?} in \"using\""
        )));
    }
    let args = resolve_references(args, responses)?;
    if method == CORE_ECHO {
        return Ok(vec![(CORE_ECHO.to_owned(), Value::Object(args))]);
    }
    handler.call(method, args, ctx).await
}

fn short(s: &str) -> String {
    s.chars().take(100).collect()
}
