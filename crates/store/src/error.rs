//! The store's one error type. It names no driver: each backend turns its
//! driver's errors into these, so the engine and the API can tell a full
//! disk or a lost database (try again later) from a damaged record.

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database refused a statement.
    #[error("database error: {0}")]
    Database(String),
    /// The database cannot be reached (connection refused or lost); the
    /// request may succeed later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// Two transactions conflicted (a deadlock or serialization failure);
    /// running the same work again succeeds.
    #[error("the database aborted a conflicting transaction: {0}")]
    Conflict(String),
    /// No space left to write.
    #[error("the storage is full: {0}")]
    Full(String),
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error("commit failed: {0}")]
    Commit(String),
    #[error("the store is shut down")]
    Closed,
    #[error("invalid cursor {0:?}")]
    BadCursor(String),
}

impl StoreError {
    /// Whether the same call may succeed later without any change to it.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_) | Self::Full(_) | Self::Closed | Self::Conflict(_)
        )
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
