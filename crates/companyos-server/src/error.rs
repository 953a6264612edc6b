//! The HTTP edge's one error type: every failure becomes an RFC 9457 `application/problem+json`
//! body with `type`, `title`, `status`, `detail` (and `errors` naming fields for bad input).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use companyos_core::ServiceError;
use companyos_domain::FieldError;
use serde_json::{Value, json};

/// Every problem type this server answers with, and what it means: `GET /problems/{slug}`
/// documents these and answers 404 for any other slug.
pub const PROBLEM_TYPES: &[(&str, &str)] = &[
    (
        "validation-error",
        "The request had invalid fields; `errors` names each field and what is wrong with it.",
    ),
    (
        "malformed-request",
        "The body is not valid JSON (or is empty).",
    ),
    (
        "unauthenticated",
        "No credential, or an unknown or revoked one. Send Authorization: Bearer <token>.",
    ),
    (
        "forbidden",
        "The credential is known but policy does not allow this action. The attempt is audited.",
    ),
    (
        "conflict",
        "The request conflicts with the current state; `current_status` gives it.",
    ),
    (
        "payload-too-large",
        "The body or the batch is over its limit.",
    ),
    ("not-found", "No such resource."),
    (
        "unavailable",
        "Temporarily unable to take the request; retry after a moment.",
    ),
    (
        "not-ready",
        "The store does not answer, or cannot take writes (a full disk, a lost connection).",
    ),
    (
        "store-unavailable",
        "The store cannot take the request now (a full disk, a lost database connection); \
         nothing was changed: retry later. /readyz says not ready meanwhile.",
    ),
    (
        "timeout",
        "The request took longer than the server's limit; it is safe to retry.",
    ),
    (
        "unsupported-media-type",
        "The body's Content-Type is not one this route takes.",
    ),
    (
        "too-many-requests",
        "Too many failed attempts from this address; wait for `Retry-After` seconds.",
    ),
    (
        "internal-error",
        "The server failed; nothing was changed by this request.",
    ),
];

/// The description of a problem type, `None` for a slug we never answer with.
pub fn problem_description(slug: &str) -> Option<&'static str> {
    PROBLEM_TYPES
        .iter()
        .find(|(known, _)| *known == slug)
        .map(|(_, text)| *text)
}

/// An error answered as problem+json (boxed: it travels through every `Result`).
#[derive(Debug)]
pub struct AppError(Box<Problem>);

/// The fields of a problem+json body.
#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub slug: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub extra: Option<(&'static str, Value)>,
    /// `Retry-After` of a 429.
    pub retry_after_seconds: Option<u64>,
}

impl std::ops::Deref for AppError {
    type Target = Problem;
    fn deref(&self) -> &Problem {
        &self.0
    }
}

impl std::ops::DerefMut for AppError {
    fn deref_mut(&mut self) -> &mut Problem {
        &mut self.0
    }
}

impl AppError {
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self(Box::new(Problem {
            status,
            slug,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            extra: None,
            retry_after_seconds: None,
        }))
    }

    /// Bad input: 400 naming the field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut error = Self::new(
            StatusCode::BAD_REQUEST,
            "validation-error",
            "Invalid request",
            format!("{field}: {message}"),
        );
        error.errors.push(FieldError::new(field, message));
        error
    }

    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "malformed-request",
            "Malformed request",
            detail,
        )
    }

    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
            detail,
        )
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }
}

impl From<ServiceError> for AppError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Unauthenticated(detail) => Self::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Authentication required",
                format!("send Authorization: Bearer <operator token or tenant API key> ({detail})"),
            ),
            ServiceError::Forbidden(detail) => Self::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Forbidden by policy",
                detail,
            ),
            ServiceError::NotFound(what) => Self::not_found(format!("{what} not found")),
            ServiceError::Validation(errors) => {
                let mut error = Self::new(
                    StatusCode::BAD_REQUEST,
                    "validation-error",
                    "Invalid request",
                    errors.to_string(),
                );
                error.errors = errors.into_vec();
                error
            }
            ServiceError::Conflict {
                message,
                current_status,
            } => Self::conflict(message, current_status),
            ServiceError::TooLarge(detail) => Self::too_large(detail),
            ServiceError::Unavailable(detail) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Temporarily unavailable",
                detail,
            ),
            ServiceError::RateLimited {
                detail,
                retry_after_seconds,
            } => Self::rate_limited(detail, retry_after_seconds),
            ServiceError::Store(store) => Self::store_failed(&store),
            ServiceError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal-error",
                    "Internal error",
                    detail,
                )
            }
        }
    }
}

impl AppError {
    /// 409, with the tenant's current status when the conflict is about it.
    fn conflict(message: String, current_status: Option<String>) -> Self {
        let mut error = Self::new(
            StatusCode::CONFLICT,
            "conflict",
            "Conflict with the current state",
            message,
        );
        if let Some(status) = current_status {
            error.extra = Some(("current_status", json!(status)));
        }
        error
    }

    /// 429 with `Retry-After`.
    fn rate_limited(detail: String, retry_after_seconds: u64) -> Self {
        let mut error = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-requests",
            "Too many requests",
            detail,
        );
        error.retry_after_seconds = Some(retry_after_seconds);
        error
    }

    /// 503 when the store cannot take requests now (the client may retry), 500 otherwise; the
    /// store's own message goes to the log only.
    fn store_failed(store: &companyos_core::db::StoreError) -> Self {
        if store.is_unavailable() {
            tracing::error!(error = %store, "store unavailable");
            Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
                "Store unavailable",
                "the store cannot take this request now (full disk, lost connection); \
                 nothing was changed by it: retry later",
            )
        } else {
            tracing::error!(error = %store, "store error");
            Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal-error",
                "Internal error",
                "the store failed; nothing was changed by this request (see the server log)",
            )
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let problem = *self.0;
        problem.into_response()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        debug_assert!(
            problem_description(self.slug).is_some(),
            "problem type {} is missing from PROBLEM_TYPES",
            self.slug
        );
        let mut body = json!({
            "type": format!("/problems/{}", self.slug),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if !self.errors.is_empty() {
            body["errors"] = json!(self.errors);
        }
        if let Some((key, value)) = self.extra {
            body[key] = value;
        }
        let mut response = (self.status, body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after_seconds
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, AppError>;
