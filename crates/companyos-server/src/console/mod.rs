//! The operator console (issue 18, CONTRACT §12, ADR 0013): server-rendered HTML (maud, escaped
//! by default) that works without JavaScript, a session stored in the database per login, the
//! session's CSRF token on every form, and a CSP that allows no script at all. Every page and
//! action calls the same `App` method as the API, as an actor whose channel is `console`, so
//! the audit log shows which adapter acted; the `/v1` API never reads the session cookie.

mod approvals;
mod audit;
mod billing;
mod chart;
mod forms;
mod layout;
mod session;
mod tenants;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use companyos_core::ServiceError;

use crate::AppState;
use crate::error::AppError;

pub use session::{CSRF_FIELD, ConsoleUser, SESSION_COOKIE};

/// Upper bound of a console form body: reasons and comments are short.
pub const FORM_BYTES_MAX: usize = 64 * 1024;

/// The console's security policy: no script of any origin, styles only from our stylesheet,
/// forms only to ourselves, never framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's routes (not part of the `/v1` route table and its OpenAPI document).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/console", get(home))
        .route(
            "/console/login",
            get(session::login_form).post(session::login),
        )
        .route("/console/logout", post(session::logout))
        .route("/console/assets/console.css", get(layout::stylesheet))
        .route("/console/tenants", get(tenants::list))
        .route("/console/tenants/{id}", get(tenants::show))
        .route(
            "/console/tenants/{id}/integrity-report",
            post(tenants::integrity_report),
        )
        .route("/console/tenants/{id}/actions/{action}", post(tenants::act))
        .route("/console/tenants/{id}/plan", post(billing::change_plan))
        .route(
            "/console/tenants/{id}/statements/{month}",
            get(billing::statement),
        )
        .route(
            "/console/tenants/{id}/statements/{month}/download",
            get(billing::download),
        )
        .route(
            "/console/tenants/{id}/statements/{month}/pack",
            get(billing::pack),
        )
        .route("/console/evidence/{id}", get(tenants::evidence))
        .route("/console/approvals", get(approvals::list))
        .route("/console/approvals/{id}/decision", post(approvals::decide))
        .route("/console/audit", get(audit::list))
        .layer(middleware::from_fn(security_headers))
}

async fn home(_user: ConsoleUser) -> Redirect {
    Redirect::to("/console/tenants")
}

/// CSP, no framing, no sniffing and no referrer on every console response.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// A console failure, answered as an HTML page with the status the API would give.
#[derive(Debug)]
pub enum ConsoleError {
    /// No live session: back to the login form.
    LoggedOut,
    /// Anything else, shown on an error page.
    Page(AppError),
}

impl From<ServiceError> for ConsoleError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Unauthenticated(_) => ConsoleError::LoggedOut,
            other => ConsoleError::Page(AppError::from(other)),
        }
    }
}

impl From<AppError> for ConsoleError {
    fn from(error: AppError) -> Self {
        ConsoleError::Page(error)
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            ConsoleError::LoggedOut => Redirect::to("/console/login").into_response(),
            ConsoleError::Page(error) => {
                let status = error.status;
                let markup = layout::error_page(status, error.title, &error.detail, &error.errors);
                (status, layout::html(markup)).into_response()
            }
        }
    }
}

/// What console handlers return.
pub type ConsoleResult<T = Response> = Result<T, ConsoleError>;

/// 303 to `location` after a successful POST (post/redirect/get).
fn see_other(location: &str) -> Response {
    Redirect::to(location).into_response()
}

/// A query string decoded into `T`; a bad one is a 400 page naming the parameter.
fn parse_query<T: serde::de::DeserializeOwned + Default>(query: Option<&str>) -> ConsoleResult<T> {
    match query {
        None | Some("") => Ok(T::default()),
        Some(query) => serde_urlencoded::from_str(query)
            .map_err(|e| ConsoleError::Page(AppError::invalid("query", e.to_string()))),
    }
}

/// The status of a refused form (stale or forged CSRF token).
const CSRF_REFUSED: StatusCode = StatusCode::FORBIDDEN;
