//! Identity/get, /changes, /set (RFC 8621 §6).

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
pub async fn set(
    _ctx: &mut Ctx<'_>,
    _args: Map<String, Value>,
    _call: &mut CallContext,
) -> Result<Value, MethodError> {
    Err(MethodError::server_fail("not implemented yet"))
}
