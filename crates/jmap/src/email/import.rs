//! Email/import and Email/parse (RFC 8621 §4.8, §4.9).

use pochta_jmap_proto::{CallContext, MethodError};
use serde_json::{Map, Value};

use crate::Ctx;

/// Not written yet.
pub async fn import(
    _ctx: &mut Ctx<'_>,
    _args: Map<String, Value>,
    _call: &mut CallContext,
) -> Result<Value, MethodError> {
    Err(MethodError::server_fail("not implemented yet"))
}

/// Not written yet.
pub async fn parse(
    _ctx: &mut Ctx<'_>,
    _args: Map<String, Value>,
    _call: &mut CallContext,
) -> Result<Value, MethodError> {
    Err(MethodError::server_fail("not implemented yet"))
}
