//! Console login, logout, the session extractor and the CSRF-checked form extractor.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use companyos_core::console::CONSOLE_SESSION_SECONDS;
use companyos_core::{Actor, ServiceError};
use maud::html;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{CSRF_REFUSED, ConsoleError, ConsoleResult, FORM_BYTES_MAX, layout, see_other};
use crate::AppState;
use crate::error::AppError;
use crate::extract::RequestId;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "companyos_session";
/// The hidden input of every state-changing form.
pub const CSRF_FIELD: &str = "csrf_token";

/// The operator of the request's session, re-read from the store on every request.
#[derive(Debug, Clone)]
pub struct ConsoleUser {
    pub actor: Actor,
    pub csrf_token: String,
    cookie_value: String,
}

impl ConsoleUser {
    pub fn name(&self) -> String {
        self.actor.principal.actor_name()
    }

    pub fn role(&self) -> String {
        self.actor.principal.role_name()
    }
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

impl FromRequestParts<AppState> for ConsoleUser {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ConsoleResult<Self> {
        let Some(cookie_value) = session_cookie(&parts.headers) else {
            return Err(ConsoleError::LoggedOut);
        };
        let request_id = parts.extensions.get::<RequestId>().map(|r| r.0.clone());
        let session = state
            .app
            .console()
            .session(&cookie_value, request_id.as_deref())
            .await?;
        let Some(session) = session else {
            return Err(ConsoleError::LoggedOut);
        };
        Ok(ConsoleUser {
            actor: session.actor,
            csrf_token: session.csrf_token,
            cookie_value,
        })
    }
}

/// A POSTed console form: the session's operator and the decoded fields, once the form's CSRF
/// token matched the session's. A missing or wrong token is refused (403), audited as
/// `console.csrf` denied, and nothing else happens.
#[derive(Debug)]
pub struct Posted<T> {
    pub user: ConsoleUser,
    pub form: T,
}

/// Whether the browser says the request came from another site (`Sec-Fetch-Site`); browsers
/// that do not send the header rely on the SameSite cookie and the CSRF token.
fn cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|site| site == "cross-site")
}

/// Compares by SHA-256, so the time taken says nothing about how much of a guess was right.
fn same_token(given: &str, expected: &str) -> bool {
    companyos_core::util::token_hash(given) == companyos_core::util::token_hash(expected)
}

async fn form_bytes(request: Request) -> ConsoleResult<axum::body::Bytes> {
    axum::body::to_bytes(request.into_body(), FORM_BYTES_MAX)
        .await
        .map_err(|_| {
            ConsoleError::Page(AppError::too_large(format!(
                "a console form is at most {FORM_BYTES_MAX} bytes"
            )))
        })
}

impl<T: DeserializeOwned> FromRequest<AppState> for Posted<T> {
    type Rejection = ConsoleError;

    async fn from_request(request: Request, state: &AppState) -> ConsoleResult<Self> {
        let (mut parts, body) = request.into_parts();
        let user = ConsoleUser::from_request_parts(&mut parts, state).await?;
        let target = format!("route:{}", parts.uri.path());
        let cross = cross_site(&parts.headers);
        let bytes = form_bytes(Request::from_parts(parts, body)).await?;
        let given = form_urlencoded::parse(&bytes)
            .find(|(name, _)| name == CSRF_FIELD)
            .map(|(_, value)| value.into_owned());
        let refusal = match given {
            _ if cross => Some("a cross-site form post"),
            None => Some("the form has no CSRF token"),
            Some(given) if !same_token(&given, &user.csrf_token) => {
                Some("the form's CSRF token is not this session's")
            }
            Some(_) => None,
        };
        if let Some(reason) = refusal {
            state
                .app
                .console()
                .refused(&user.actor, &target, reason)
                .await?;
            return Err(ConsoleError::Page(AppError::new(
                CSRF_REFUSED,
                "forbidden",
                "Form refused",
                format!("{reason}: reload the page and submit the form again"),
            )));
        }
        let form = serde_urlencoded::from_bytes::<T>(&bytes)
            .map_err(|e| ConsoleError::Page(AppError::invalid("form", e.to_string())))?;
        Ok(Posted { user, form })
    }
}

/// The login form; an operator with a live session goes straight to the tenants.
pub async fn login_form(user: Result<ConsoleUser, ConsoleError>) -> Response {
    if user.is_ok() {
        return see_other("/console/tenants");
    }
    layout::html(layout::login_page(None)).into_response()
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
}

/// Whether the browser reached us over TLS, directly or through a proxy that says so.
fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

fn cookie_header(value: &str, max_age_seconds: i64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/console; HttpOnly; SameSite=Strict; \
         Max-Age={max_age_seconds}{secure}"
    ))
    .ok()
}

/// Takes an operator token once and sets the session cookie.
pub async fn login(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    request: Request,
) -> ConsoleResult {
    let headers = request.headers().clone();
    // The peer address, for counting failed attempts per source (as the API does).
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    if cross_site(&headers) {
        return Err(ConsoleError::Page(AppError::new(
            CSRF_REFUSED,
            "forbidden",
            "Form refused",
            "a cross-site login form post",
        )));
    }
    let bytes = form_bytes(request).await?;
    let form: LoginForm = serde_urlencoded::from_bytes(&bytes)
        .map_err(|e| ConsoleError::Page(AppError::invalid("token", e.to_string())))?;
    let session = state
        .app
        .console()
        .login(&form.token, Some(&request_id), source)
        .await;
    let session = match session {
        Ok(session) => session,
        Err(error) => {
            let (status, message) = match &error {
                ServiceError::Unauthenticated(_) => (
                    StatusCode::UNAUTHORIZED,
                    "That token is unknown or revoked.".to_owned(),
                ),
                ServiceError::Forbidden(_) => (
                    StatusCode::FORBIDDEN,
                    "This operator's role may not use the console.".to_owned(),
                ),
                _ => return Err(ConsoleError::Page(AppError::from(error))),
            };
            let page = layout::login_page(Some(&message));
            return Ok((status, layout::html(page)).into_response());
        }
    };
    let mut response = see_other("/console/tenants");
    if let Some(cookie) = cookie_header(
        &session.cookie_value,
        CONSOLE_SESSION_SECONDS,
        over_tls(&headers),
    ) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct NoFields {}

/// Ends the session in the store (on every node) and clears the cookie.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    posted: Posted<NoFields>,
) -> ConsoleResult {
    state
        .app
        .console()
        .logout(&posted.user.actor, &posted.user.cookie_value)
        .await?;
    let mut response = Redirect::to("/console/login").into_response();
    if let Some(cookie) = cookie_header("", 0, over_tls(&headers)) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The hidden CSRF input of a form.
pub fn csrf_input(user: &ConsoleUser) -> maud::Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(user.csrf_token); }
}
