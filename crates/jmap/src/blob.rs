//! Blob/copy (RFC 8620 §6.3).

use pochta_jmap_proto::{CallContext, MethodError};
use serde_json::{Map, Value};

use crate::Ctx;

/// Not written yet.
pub async fn copy(
    _ctx: &mut Ctx<'_>,
    _args: Map<String, Value>,
    _call: &mut CallContext,
) -> Result<Value, MethodError> {
    Err(MethodError::server_fail("not implemented yet"))
}
