//! The service layer's error: what went wrong, in terms every adapter can map (HTTP status and
//! problem type, CLI message and exit code).

use companyos_domain::ValidationErrors;

use crate::db::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No credential, or one we do not know.
    #[error("authentication required: {0}")]
    Unauthenticated(String),
    /// A known principal that policy does not allow.
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("invalid input: {0}")]
    Validation(ValidationErrors),
    /// The request conflicts with the current state (an illegal transition, a reused id).
    #[error("{message}")]
    Conflict {
        message: String,
        current_status: Option<String>,
    },
    #[error("{0}")]
    TooLarge(String),
    /// Temporarily unable to take the request (a full queue, shutting down): retry later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Too many failed attempts from one source: retry after this many seconds.
    #[error("rate limited: {detail}")]
    RateLimited {
        detail: String,
        retry_after_seconds: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict {
            message: message.into(),
            current_status: None,
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(ValidationErrors::single(field, message))
    }

    /// Whether the store failed the request for now (a full disk, a lost connection).
    pub fn is_store_unavailable(&self) -> bool {
        matches!(self, ServiceError::Store(store) if store.is_unavailable())
    }

    /// The audit outcome of an attempt that ended with this error.
    pub fn audit_outcome(&self) -> companyos_domain::audit::AuditOutcome {
        match self {
            ServiceError::Unauthenticated(_)
            | ServiceError::Forbidden(_)
            | ServiceError::RateLimited { .. } => companyos_domain::audit::AuditOutcome::Denied,
            _ => companyos_domain::audit::AuditOutcome::Failed,
        }
    }
}

impl From<sqlx::Error> for ServiceError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(error))
    }
}

impl From<ValidationErrors> for ServiceError {
    fn from(errors: ValidationErrors) -> Self {
        Self::Validation(errors)
    }
}

impl From<companyos_domain::FieldError> for ServiceError {
    fn from(error: companyos_domain::FieldError) -> Self {
        Self::Validation(error.into())
    }
}
