//! Email/query and Email/queryChanges (RFC 8621 §4.4, §4.5), and the filter SearchSnippet/get shares.

use pochta_jmap_proto::{CallContext, MethodError};
use serde_json::{Map, Value};

use crate::Ctx;

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
