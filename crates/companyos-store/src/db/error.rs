//! The store's errors, and which of sqlx's errors mean the store is unavailable for now.

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The store's disk or connection failed outside a database call (a boundary file).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("invalid database url: {0}")]
    InvalidUrl(String),
    #[error("migration {version} failed: {source}")]
    Migration {
        version: i64,
        #[source]
        source: sqlx::Error,
    },
}

impl StoreError {
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::Corrupt(message.into())
    }

    /// Whether the store cannot serve the request for now, through no fault of the request: a
    /// full disk, an I/O error, a lost or refused connection, a pool that timed out. The
    /// adapters answer 503 (retry later), not 500, and the store recovers by itself once the
    /// cause is gone (see [`discard_connection_in_transaction`]).
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(error) => sqlx_error_is_unavailable(error),
            StoreError::Unavailable(_) => true,
            _ => false,
        }
    }

    /// Whether the error is a unique-constraint violation (a lost race on an insert).
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(e)) => {
                e.kind() == sqlx::error::ErrorKind::UniqueViolation
            }
            _ => false,
        }
    }
}

fn sqlx_error_is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(database) => {
            if let Some(sqlite) = database.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                // Primary result codes (the low byte of an extended code): BUSY, NOMEM,
                // READONLY, IOERR, FULL, CANTOPEN.
                let code = sqlx::error::DatabaseError::code(sqlite)
                    .and_then(|code| code.parse::<i32>().ok())
                    .unwrap_or(0);
                matches!(code & 0xff, 5 | 7 | 8 | 10 | 13 | 14)
            } else {
                // SQLSTATE classes: 08 connection exception, 53 insufficient resources (disk
                // full, out of memory, too many connections), 57P0x shutdown and restart, 58
                // system (I/O) error.
                database.code().is_some_and(|state| {
                    state.starts_with("08")
                        || state.starts_with("53")
                        || state.starts_with("57P0")
                        || state.starts_with("58")
                })
            }
        }
        _ => false,
    }
}
