//! Store errors, classified by what a protocol should answer.

/// A store failure. Protocols map these to replies: [`StoreError::is_temporary`]
/// failures become 4xx / `NO [UNAVAILABLE]` (the client retries), the rest are permanent.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The named object (account, mailbox, message, blob) does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// An object with that name or address exists already.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The request itself is wrong (bad name, moving a mailbox under itself, ...).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The account's quota would be exceeded.
    #[error("over quota")]
    OverQuota,
    /// A mailbox with children cannot be deleted (IMAP `[HASCHILDREN]`, RFC 5530).
    #[error("mailbox has children")]
    HasChildren,
    /// The disk holding the store is full; retrying after space is freed works.
    #[error("storage full")]
    Full,
    /// The store is busy, closed or otherwise temporarily unable to answer.
    #[error("storage temporarily unavailable: {0}")]
    Unavailable(String),
    /// Stored data failed a consistency check.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The change log no longer reaches back to the state asked about: its older
    /// entries were pruned ([`crate::Store::prune_change_log`]). Not a failure of
    /// the store; the caller resynchronises in full (JMAP `cannotCalculateChanges`,
    /// IMAP compares UIDs instead of reading the log).
    #[error("changes since {since} are no longer logged (the log begins after {floor})")]
    Pruned {
        /// The state the caller asked from.
        since: u64,
        /// Every change after this one is still logged.
        floor: u64,
    },
    /// Any other backend failure.
    #[error("storage error: {0}")]
    Backend(String),
}

impl StoreError {
    /// True when the same request may succeed later (disk space, lock contention, restart).
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            StoreError::Full | StoreError::Unavailable(_) | StoreError::Backend(_)
        )
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::Full,
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                StoreError::Unavailable(e.to_string())
            }
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                StoreError::Corrupt(e.to_string())
            }
            _ => StoreError::Backend(e.to_string()),
        }
    }
}

impl From<pochta_message::MetaDecodeError> for StoreError {
    fn from(e: pochta_message::MetaDecodeError) -> Self {
        StoreError::Corrupt(format!("metadata does not decode: {e}"))
    }
}

/// Result alias for store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
