//! EmailSubmission/get, /changes, /query, /queryChanges, /set (RFC 8621 §7).

use pochta_jmap_proto::{CallContext, MethodError};
use serde_json::{Map, Value};

use crate::Ctx;

/// Not written yet.
pub async fn get(
    _ctx: &mut Ctx<'_>,
    _args: Map<String, Value>,
    _call: &mut CallContext,
) -> Result<Value, MethodError> {
    Err(MethodError::server_fail("not implemented yet"))
}

/// Not written yet.
pub async fn changes(
    _ctx: &mut Ctx<'_>,
    _args: Map<String, Value>,
    _call: &mut CallContext,
) -> Result<Value, MethodError> {
    Err(MethodError::server_fail("not implemented yet"))
}

/// Not written yet.
pub async fn query(
    _ctx: &mut Ctx<'_>,
    _args: Map<String, Value>,
    _call: &mut CallContext,
) -> Result<Value, MethodError> {
    Err(MethodError::server_fail("not implemented yet"))
}

/// Not written yet.
pub async fn query_changes(
    _ctx: &mut Ctx<'_>,
    _args: Map<String, Value>,
    _call: &mut CallContext,
) -> Result<Value, MethodError> {
    Err(MethodError::server_fail("not implemented yet"))
}

/// Not written yet. Returns the EmailSubmission/set response and, with
/// onSuccessUpdateEmail/onSuccessDestroyEmail, the implicit Email/set.
pub async fn set(
    _ctx: &mut Ctx<'_>,
    _args: Map<String, Value>,
    _call: &mut CallContext,
) -> Result<Vec<(String, Value)>, MethodError> {
    Err(MethodError::server_fail("not implemented yet"))
}
