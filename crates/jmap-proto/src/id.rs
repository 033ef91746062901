//! Ids (RFC 8620 §1.2) and creation-id references (RFC 8620 §3.3, §5.3).

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest Id, in octets (RFC 8620 §1.2).
pub const MAX_ID_LEN: usize = 255;

/// Whether `s` is a valid JMAP Id: 1 to 255 characters of `A-Za-z0-9`, `-`
/// and `_` (the base64url alphabet without padding, RFC 8620 §1.2).
pub fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The creation id in a `#creationId` reference, or `None` when `s` is not a
/// reference (RFC 8620 §5.3: a client may use `#` + creation id wherever an
/// id of a record created earlier in the same request is expected).
pub fn creation_ref(s: &str) -> Option<&str> {
    s.strip_prefix('#')
}

/// A string that is not a valid JMAP Id; its `Display` shows at most 64
/// characters so that error descriptions echoed to clients stay short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidId(pub String);

impl fmt::Display for InvalidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: String = self.0.chars().take(64).collect();
        let more = if shown.len() < self.0.len() {
            "…"
        } else {
            ""
        };
        write!(
            f,
            "{shown:?}{more} is not a valid id (1-255 characters of A-Za-z0-9-_)"
        )
    }
}

impl std::error::Error for InvalidId {}

/// A JMAP Id (RFC 8620 §1.2), valid by construction so that handlers never
/// see an id that could not have come from the server.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(String);

impl Id {
    /// Checks `s` and wraps it.
    pub fn new(s: impl Into<String>) -> Result<Self, InvalidId> {
        let s = s.into();
        if is_valid_id(&s) {
            Ok(Id(s))
        } else {
            Err(InvalidId(s))
        }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Id {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Id {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl FromStr for Id {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        Id::new(s)
    }
}

impl TryFrom<String> for Id {
    type Error = InvalidId;
    fn try_from(s: String) -> Result<Self, InvalidId> {
        Id::new(s)
    }
}

impl TryFrom<&str> for Id {
    type Error = InvalidId;
    fn try_from(s: &str) -> Result<Self, InvalidId> {
        Id::new(s)
    }
}

impl From<Id> for String {
    fn from(id: Id) -> String {
        id.0
    }
}

impl PartialEq<str> for Id {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Id {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Id::new(s).map_err(serde::de::Error::custom)
    }
}

/// An id or a `#creationId` reference to a record created earlier in the
/// request, or earlier in the same `/set` call (RFC 8620 §5.3). `/set`
/// arguments keep these unresolved because a reference may name a record the
/// same call creates; resolve them with
/// [`CallContext::resolve`](crate::CallContext::resolve) when processing.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdOrRef {
    /// A real id.
    Id(Id),
    /// A creation id, without its `#`.
    Ref(String),
}

impl IdOrRef {
    /// Parses an id or `#` followed by a creation id (which has Id syntax:
    /// `create` is `Id[Foo]`).
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        match creation_ref(s) {
            Some(cid) if is_valid_id(cid) => Ok(IdOrRef::Ref(cid.to_owned())),
            Some(_) => Err(InvalidId(s.to_owned())),
            None => Id::new(s).map(IdOrRef::Id),
        }
    }
}

impl From<Id> for IdOrRef {
    fn from(id: Id) -> Self {
        IdOrRef::Id(id)
    }
}

impl fmt::Display for IdOrRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdOrRef::Id(id) => f.write_str(id.as_str()),
            IdOrRef::Ref(cid) => write!(f, "#{cid}"),
        }
    }
}

impl Serialize for IdOrRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IdOrRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        IdOrRef::parse(&s).map_err(serde::de::Error::custom)
    }
}
