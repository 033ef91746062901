//! Result references: arguments taken from earlier responses in the same
//! request (RFC 8620 §3.7).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::MethodError;

/// The value of a `#argument`: which earlier response to read, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultReference {
    /// The call id of the earlier call.
    pub result_of: String,
    /// The response name expected (e.g. `Email/query`).
    pub name: String,
    /// A JSON Pointer (RFC 6901) into the response arguments, where `*`
    /// maps over an array.
    pub path: String,
}

/// Why a pointer did not resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointerError(pub String);

impl fmt::Display for PointerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PointerError {}

/// Splits a JSON Pointer into unescaped reference tokens (RFC 6901 §3–4:
/// `~1` is `/`, `~0` is `~`, any other `~` is an error). The empty pointer
/// has no tokens.
pub fn pointer_tokens(pointer: &str) -> Result<Vec<String>, PointerError> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(PointerError(format!(
            "pointer {pointer:?} does not start with '/'"
        )));
    };
    rest.split('/').map(unescape_token).collect()
}

pub(crate) fn unescape_token(raw: &str) -> Result<String, PointerError> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return Err(PointerError(format!("bad '~' escape in {raw:?}"))),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Evaluates a JSON Pointer with JMAP's `*` extension (RFC 8620 §3.7): on an
/// array, `*` applies the rest of the pointer to every item and collects the
/// results in order, adding the items of any result that is itself an array
/// rather than the array (one level of flattening per `*`). On an object,
/// `*` is an ordinary key.
pub fn evaluate_pointer(value: &Value, pointer: &str) -> Result<Value, PointerError> {
    let tokens = pointer_tokens(pointer)?;
    evaluate_tokens(value, &tokens)
}

fn evaluate_tokens(value: &Value, tokens: &[String]) -> Result<Value, PointerError> {
    let Some((token, rest)) = tokens.split_first() else {
        return Ok(value.clone());
    };
    match value {
        Value::Object(map) => match map.get(token.as_str()) {
            Some(v) => evaluate_tokens(v, rest),
            None => Err(PointerError(format!("no property {token:?}"))),
        },
        Value::Array(items) if token == "*" => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match evaluate_tokens(item, rest)? {
                    Value::Array(inner) => out.extend(inner),
                    other => out.push(other),
                }
            }
            Ok(Value::Array(out))
        }
        Value::Array(items) => {
            let index = array_index(token)?;
            match items.get(index) {
                Some(v) => evaluate_tokens(v, rest),
                None => Err(PointerError(format!(
                    "index {index} is past the end of the array"
                ))),
            }
        }
        _ => Err(PointerError(format!("cannot apply {token:?} to a scalar"))),
    }
}

/// RFC 6901 §4: an array index is `0` or digits without a leading zero;
/// `-` (past the end) never exists when reading.
fn array_index(token: &str) -> Result<usize, PointerError> {
    let digits = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    if !digits || (token.len() > 1 && token.starts_with('0')) {
        return Err(PointerError(format!("{token:?} is not an array index")));
    }
    token
        .parse()
        .map_err(|_| PointerError(format!("{token:?} is too large an index")))
}

/// Replaces every `#name` argument by the value its [`ResultReference`]
/// points to in `responses` (the responses so far: `[name, arguments,
/// callId]`), giving the arguments the method should see (RFC 8620 §3.7).
///
/// Errors: `invalidArguments` when both `name` and `#name` are present;
/// `invalidResultReference` when a reference is malformed, no earlier
/// response has that call id and name, or the path does not resolve.
///
/// A response is found by call id *and* name, so a reference can reach the
/// second response of a call that produced two (e.g. the implicit `Email/set`
/// after `EmailSubmission/set`, RFC 8621 §7.5). RFC 8620 §3.7 looks only at
/// the first response with the call id; the two agree whenever the RFC's
/// lookup succeeds.
pub fn resolve_references(
    mut args: Map<String, Value>,
    responses: &[(String, Value, String)],
) -> Result<Map<String, Value>, MethodError> {
    if !args.keys().any(|k| k.starts_with('#')) {
        return Ok(args);
    }
    if let Some(key) = args.keys().find(|k| {
        k.strip_prefix('#')
            .is_some_and(|plain| args.contains_key(plain))
    }) {
        return Err(MethodError::invalid_arguments(format!(
            "argument {:?} given both directly and as the result reference {key:?}",
            &key[1..]
        )));
    }
    let refs: Vec<String> = args
        .keys()
        .filter(|k| k.starts_with('#'))
        .cloned()
        .collect();
    let mut resolved = Vec::with_capacity(refs.len());
    for key in refs {
        let raw = args.remove(&key).unwrap_or(Value::Null);
        let reference: ResultReference = serde_json::from_value(raw).map_err(|e| {
            MethodError::invalid_result_reference(format!("{key}: not a ResultReference: {e}"))
        })?;
        let response = responses
            .iter()
            .find(|(name, _, call_id)| *call_id == reference.result_of && *name == reference.name)
            .ok_or_else(|| {
                MethodError::invalid_result_reference(format!(
                    "{key}: no earlier {:?} response with call id {:?}",
                    reference.name, reference.result_of
                ))
            })?;
        let value = evaluate_pointer(&response.1, &reference.path).map_err(|e| {
            MethodError::invalid_result_reference(format!("{key}: path {:?}: {e}", reference.path))
        })?;
        resolved.push((key[1..].to_owned(), value));
    }
    args.extend(resolved);
    Ok(args)
}
