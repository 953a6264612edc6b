//! Path segments parsed into the domain's newtypes at the edge. A handler that takes
//! `PathId<TenantId>` holds a valid tenant id, and a malformed one is answered 400
//! (problem+json, `validation-error`) naming the field, before any service is called. A handler
//! that takes `PathLookup<TenantId>` holds the parsed id or why it did not parse, and answers a
//! malformed one at the step, and in the way, it always did (ADR 0016).

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use companyos_domain::statement::StatementMonth;
use companyos_domain::{FieldError, LifecycleAction};

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
    companyos_domain::OperatorId,
    companyos_domain::WorkloadName,
    companyos_domain::PlanName,
    companyos_domain::ServiceName,
    companyos_domain::MetricName,
    companyos_domain::ApprovalId,
    companyos_domain::EvidenceId,
);

impl PathSegment for StatementMonth {
    fn parse_segment(text: &str) -> Result<Self, FieldError> {
        StatementMonth::parse_field(text, "month")
    }
}

impl PathSegment for LifecycleAction {
    fn parse_segment(text: &str) -> Result<Self, FieldError> {
        LifecycleAction::parse(text)
            .ok_or_else(|| FieldError::new("action", "is not a lifecycle action"))
    }
}

fn invalid(error: FieldError) -> Response {
    AppError::invalid(&error.field, error.message).into_response()
}

/// The route's one path parameter as text. Axum's own rejection (a route without the parameter)
/// is answered as `Path` answers it.
async fn one_segment<S: Send + Sync>(parts: &mut Parts, state: &S) -> Result<String, Response> {
    let Path(text) = Path::<String>::from_request_parts(parts, state)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(text)
}

/// The route's two path parameters as text, in path order.
async fn two_segments<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
) -> Result<(String, String), Response> {
    let Path(pair) = Path::<(String, String)>::from_request_parts(parts, state)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(pair)
}

/// One path parameter, parsed.
#[derive(Debug, Clone)]
pub struct PathId<T>(pub T);

impl<S: Send + Sync, T: PathSegment> FromRequestParts<S> for PathId<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let text = one_segment(parts, state).await?;
        T::parse_segment(&text).map(PathId).map_err(invalid)
    }
}

/// Two path parameters, parsed in path order (the first malformed one is named).
#[derive(Debug, Clone)]
pub struct PathIds<A, B>(pub A, pub B);

impl<S: Send + Sync, A: PathSegment, B: PathSegment> FromRequestParts<S> for PathIds<A, B> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let (first, second) = two_segments(parts, state).await?;
        let first = A::parse_segment(&first).map_err(invalid)?;
        let second = B::parse_segment(&second).map_err(invalid)?;
        Ok(PathIds(first, second))
    }
}

/// One path parameter parsed into `T` without rejecting the request: the handler answers a
/// malformed segment where it always judged it. Most routes hand the id to a service that looks
/// it up (`as_str`): a malformed id names no record, so the service answers it as it answers an
/// unknown id, after its own authorization and with its audit record of the failure; rejecting
/// it here would drop those records and turn a denied caller's 403 into a 404. Routes that
/// parsed the id after reading their query or body call `or_invalid` or `or_not_found` there.
#[derive(Debug, Clone)]
pub struct PathLookup<T> {
    text: String,
    parsed: Result<T, FieldError>,
}

impl<T: PathSegment> PathLookup<T> {
    fn of(text: String) -> Self {
        let parsed = T::parse_segment(&text);
        PathLookup { text, parsed }
    }
}

impl<T> PathLookup<T> {
    /// The segment as sent (for a valid id, the id's own text: parsing never rewrites it).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed id, `None` for a malformed segment.
    pub fn parsed(&self) -> Option<&T> {
        self.parsed.as_ref().ok()
    }

    /// The id, or 400 (`validation-error`) naming the field, as `PathId` answers.
    pub fn or_invalid(self) -> Result<T, AppError> {
        self.parsed
            .map_err(|error| AppError::invalid(&error.field, error.message))
    }

    /// The id, or 404 (`not-found`) saying `<what> <segment> (<why>)`.
    pub fn or_not_found(self, what: &str) -> Result<T, AppError> {
        let text = self.text;
        self.parsed
            .map_err(|error| AppError::not_found(format!("{what} {text} ({})", error.message)))
    }
}

impl<S: Send + Sync, T: PathSegment> FromRequestParts<S> for PathLookup<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let text = one_segment(parts, state).await?;
        Ok(PathLookup::of(text))
    }
}

/// Two path parameters, each a `PathLookup`, in path order.
#[derive(Debug, Clone)]
pub struct PathLookups<A, B>(pub PathLookup<A>, pub PathLookup<B>);

impl<S: Send + Sync, A: PathSegment, B: PathSegment> FromRequestParts<S> for PathLookups<A, B> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let (first, second) = two_segments(parts, state).await?;
        Ok(PathLookups(PathLookup::of(first), PathLookup::of(second)))
    }
}
