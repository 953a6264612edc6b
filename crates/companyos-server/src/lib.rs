//! The HTTP adapter of CompanyOS (axum): routes over the service layer, wire types, problem+json
//! errors, body limits, request ids, access logs, metrics, OpenAPI and the operator console.
//! Handlers only translate; every decision is made by `companyos_core::App`.

pub mod console;
pub mod csv;
pub mod error;
pub mod extract;
pub mod media;
pub mod openapi;
pub mod routes;
pub mod serve;
pub mod wire;

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use companyos_core::App;
use tokio::net::TcpListener;
use tracing::Instrument as _;

use crate::extract::RequestId;

/// Default upper bound of a request body (CONTRACT §2).
pub const BODY_BYTES_MAX_DEFAULT: usize = 16 * 1024 * 1024;
/// Upper bound on handling one request. A handler cut off here rolls its transaction back (an
/// ingestion already handed to the writer may still commit: a retry is then answered as
/// duplicates, never counted twice).
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// What every handler gets.
#[derive(Debug, Clone)]
pub struct AppState {
    pub app: App,
    pub body_bytes_max: usize,
}

/// The whole router: every documented route, the middleware, and the fallback.
pub fn router(state: AppState) -> Router {
    let mut router: Router<AppState> = Router::new();
    for route in openapi::ROUTES {
        router = router.route(route.path, (route.handler)());
    }
    router
        .merge(console::router())
        .fallback(routes::system::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

fn request_id_of(request: &Request) -> String {
    request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| companyos_domain::RequestId::parse(v).is_ok())
        .map(str::to_owned)
        .unwrap_or_else(|| companyos_core::util::new_id("req", time::OffsetDateTime::now_utc()))
}

/// Request id, access log line and metrics for every request.
async fn observe(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = request_id_of(&request);
    request
        .extensions_mut()
        .insert(RequestId(request_id.clone()));
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let span = tracing::info_span!("request", request_id = %request_id, %method, route = %route);
    let mut response =
        match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request).instrument(span.clone()))
            .await
        {
            Ok(response) => response,
            Err(_) => crate::error::AppError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "Request timed out",
                format!(
                    "the request took longer than {} s; it is safe to retry",
                    REQUEST_TIMEOUT.as_secs()
                ),
            )
            .into_response(),
        };
    let status = response.status().as_u16();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    state.app.metrics().http_request(&route, status);
    let _entered = span.enter();
    tracing::info!(
        request_id = %request_id,
        %method,
        path = %path,
        status,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish; with the header-read
/// timeout, idle timeout and connection limit of the settings (see `serve`).
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = serve::ConnectionLimits::of(state.app.settings());
    serve::serve_connections(router(state), listener, limits, shutdown).await
}
