//! Applying a `/set` PatchObject to an object (RFC 8620 §5.3, `update`).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::error::SetError;
use crate::methods::PatchObject;
use crate::reference::unescape_token;

/// The reference tokens of every path in `patch`, checked against the
/// RFC 8620 §5.3 rules that do not depend on the object: valid `~` escapes,
/// no empty segment, and no path that is a prefix of another.
fn parsed_paths(patch: &PatchObject) -> Result<Vec<(Vec<String>, &Value)>, SetError> {
    let mut paths = Vec::with_capacity(patch.len());
    for (key, value) in patch {
        // The key is a JSON Pointer with an implicit leading "/".
        let tokens = key
            .split('/')
            .map(unescape_token)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SetError::invalid_patch(format!("{key:?}: {e}")))?;
        if tokens.iter().any(String::is_empty) {
            return Err(SetError::invalid_patch(format!(
                "{key:?}: empty path segment"
            )));
        }
        paths.push((tokens, value));
    }
    // Sorted, a path that is a prefix of others comes right before one of them.
    let mut sorted: Vec<&Vec<String>> = paths.iter().map(|(t, _)| t).collect();
    sorted.sort();
    for pair in sorted.windows(2) {
        if let [a, b] = pair
            && b.starts_with(a)
        {
            return Err(SetError::invalid_patch(format!(
                "{:?} and {:?} overlap",
                a.join("/"),
                b.join("/")
            )));
        }
    }
    Ok(paths)
}

/// The top-level properties a patch touches (the first segment of each
/// path), for checking which properties an update may change and for
/// computing the `updated` response; `invalidPatch` if the patch is malformed.
pub fn patch_properties(patch: &PatchObject) -> Result<BTreeSet<String>, SetError> {
    Ok(parsed_paths(patch)?
        .into_iter()
        .filter_map(|(mut tokens, _)| (!tokens.is_empty()).then(|| tokens.swap_remove(0)))
        .collect())
}

/// Applies `patch` to `object` (RFC 8620 §5.3) and returns the result, for
/// the caller to validate as a whole. Each key is a path below the object
/// (`keywords/$seen`, `~1` for `/`, `~0` for `~`); its value replaces or adds
/// the member, and `null` removes it (a no-op if absent; a property with a
/// default must be reset by the caller's validation).
///
/// `invalidPatch` when a path has a bad escape or an empty segment, when one
/// path is a prefix of another, when a parent of the last segment does not
/// exist, or when a path goes into an array (arrays are replaced whole).
pub fn apply_patch(
    mut object: Map<String, Value>,
    patch: &PatchObject,
) -> Result<Map<String, Value>, SetError> {
    for (tokens, value) in parsed_paths(patch)? {
        let Some((last, parents)) = tokens.split_last() else {
            continue;
        };
        let mut target = &mut object;
        for (depth, token) in parents.iter().enumerate() {
            let shown = || tokens[..=depth].join("/");
            target = match target.get_mut(token.as_str()) {
                Some(Value::Object(inner)) => inner,
                Some(Value::Array(_)) => {
                    return Err(SetError::invalid_patch(format!(
                        "{:?} is an array: patches cannot reach inside arrays",
                        shown()
                    )));
                }
                Some(_) => {
                    return Err(SetError::invalid_patch(format!(
                        "{:?} is not an object",
                        shown()
                    )));
                }
                None => {
                    return Err(SetError::invalid_patch(format!(
                        "{:?} does not exist",
                        shown()
                    )));
                }
            };
        }
        if value.is_null() {
            target.remove(last.as_str());
        } else {
            target.insert(last.clone(), value.clone());
        }
    }
    Ok(object)
}
