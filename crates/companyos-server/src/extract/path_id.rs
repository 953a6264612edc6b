//! Path segments parsed into the domain's newtypes at the edge: a handler that takes
//! `PathId<TenantId>` holds a valid tenant id, and a malformed one is answered 400
//! (problem+json, `validation-error`) naming the field, before any service is called.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use companyos_domain::FieldError;

use crate::error::AppError;

/// A type one path segment parses into; the error names the field.
pub trait PathSegment: Sized {
    fn parse_segment(text: &str) -> Result<Self, FieldError>;
}

/// Text taken as it comes: for a segment a service parses itself.
impl PathSegment for String {
    fn parse_segment(text: &str) -> Result<Self, FieldError> {
        Ok(text.to_owned())
    }
}

macro_rules! newtype_segments {
    ($($name:ty),* $(,)?) => {
        $(impl PathSegment for $name {
            fn parse_segment(text: &str) -> Result<Self, FieldError> {
                <$name>::parse(text)
            }
        })*
    };
}

newtype_segments!(
    companyos_domain::TenantId,
    companyos_domain::OperatorName,
    companyos_domain::WorkloadName,
    companyos_domain::PlanName,
    companyos_domain::ServiceName,
    companyos_domain::MetricName,
);

fn invalid(error: FieldError) -> Response {
    AppError::invalid(&error.field, error.message).into_response()
}

/// One path parameter, parsed. Axum's own rejection (a route without the parameter) is
/// answered as `Path` answers it.
#[derive(Debug, Clone)]
pub struct PathId<T>(pub T);

impl<S: Send + Sync, T: PathSegment> FromRequestParts<S> for PathId<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        T::parse_segment(&text).map(PathId).map_err(invalid)
    }
}

/// Two path parameters, parsed in path order (the first malformed one is named).
#[derive(Debug, Clone)]
pub struct PathIds<A, B>(pub A, pub B);

impl<S: Send + Sync, A: PathSegment, B: PathSegment> FromRequestParts<S> for PathIds<A, B> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let Path((first, second)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let first = A::parse_segment(&first).map_err(invalid)?;
        let second = B::parse_segment(&second).map_err(invalid)?;
        Ok(PathIds(first, second))
    }
}
