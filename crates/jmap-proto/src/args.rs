//! Taking method arguments apart with `invalidArguments` errors that name the
//! argument (RFC 8620 §3.6.2: "of the wrong type or otherwise invalid, or a
//! required argument is missing"). Unknown arguments are rejected too, as the
//! JMAP specification's security advice asks ("unknown/insufficient/wrong
//! type for data"): a client misspelling `limit` should learn of it.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::MethodError;

/// A method's arguments, consumed one by one. The standard request types
/// take their arguments out of an `Args`; a method with extra arguments
/// (e.g. `Email/get`'s `bodyProperties`) takes those too, then calls
/// [`Args::finish`], which rejects whatever is left.
///
/// `null` counts as absent: for nullable arguments it is the default
/// (RFC 8620 §3.3), and for arguments with a non-null default we accept it
/// rather than reject clients that send `null` for "default".
#[derive(Debug, Clone, Default)]
pub struct Args {
    map: Map<String, Value>,
}

impl Args {
    /// Wraps a method call's arguments.
    pub fn new(map: Map<String, Value>) -> Self {
        Args { map }
    }

    /// Removes and returns the raw value of `name`, if present and not null.
    pub fn take_raw(&mut self, name: &str) -> Option<Value> {
        match self.map.remove(name) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// Removes `name` and deserializes it; `None` if absent or null.
    pub fn take<T: DeserializeOwned>(&mut self, name: &str) -> Result<Option<T>, MethodError> {
        match self.take_raw(name) {
            None => Ok(None),
            Some(v) => from_value(name, v).map(Some),
        }
    }

    /// Removes `name` and deserializes it; the default if absent or null.
    pub fn take_or_default<T: DeserializeOwned + Default>(
        &mut self,
        name: &str,
    ) -> Result<T, MethodError> {
        Ok(self.take(name)?.unwrap_or_default())
    }

    /// Removes a required argument; `invalidArguments` if absent or null.
    pub fn require<T: DeserializeOwned>(&mut self, name: &str) -> Result<T, MethodError> {
        self.take(name)?
            .ok_or_else(|| MethodError::invalid_arguments(format!("missing argument {name:?}")))
    }

    /// Whether `name` is still present (even as null).
    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// Fails with `invalidArguments` naming any argument not taken yet.
    pub fn finish(self) -> Result<(), MethodError> {
        if self.map.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = self.map.keys().map(|k| format!("{k:?}")).take(10).collect();
        Err(MethodError::invalid_arguments(format!(
            "unknown argument{} {}",
            if self.map.len() == 1 { "" } else { "s" },
            names.join(", ")
        )))
    }

    /// The arguments not taken yet, for a method that wants to handle the
    /// rest itself.
    pub fn into_inner(self) -> Map<String, Value> {
        self.map
    }
}

/// Deserializes an argument value, with an `invalidArguments` error naming
/// the argument and the path inside it.
pub fn from_value<T: DeserializeOwned>(name: &str, value: Value) -> Result<T, MethodError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            MethodError::invalid_arguments(format!("{name}: {inner}"))
        } else if path.starts_with('[') {
            MethodError::invalid_arguments(format!("{name}{path}: {inner}"))
        } else {
            MethodError::invalid_arguments(format!("{name}.{path}: {inner}"))
        }
    })
}

/// Builds one `(name, arguments)` response for
/// [`MethodHandler::call`](crate::MethodHandler::call) from a typed response.
pub fn method_response(name: &str, body: &impl Serialize) -> Result<(String, Value), MethodError> {
    serde_json::to_value(body)
        .map(|v| (name.to_owned(), v))
        .map_err(|e| MethodError::server_fail(format!("cannot serialize the {name} response: {e}")))
}
