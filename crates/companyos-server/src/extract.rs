//! Extractors: the authenticated actor, JSON bodies and query strings that answer problem+json
//! naming the field on bad input, and the request id.

use axum::body::Bytes;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use companyos_core::Actor;
use companyos_domain::audit::AuditChannel;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::AppError;

mod path_id;

pub use path_id::{PathId, PathIds, PathLookup, PathLookups, PathSegment};

/// The request id: the caller's `x-request-id` when valid, else one we generate.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId("unknown".to_owned())))
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The authenticated caller. A missing or unknown credential is answered 401 (and audited).
#[derive(Debug, Clone)]
pub struct Authed(pub Actor);

impl FromRequestParts<AppState> for Authed {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let credentials = Credentials::from_request_parts(parts, state).await?;
        let principal = state
            .app
            .authenticate_from(
                credentials.token.as_deref(),
                Some(&credentials.request_id),
                &credentials.route,
                credentials.source,
            )
            .await?;
        Ok(Authed(Actor {
            principal,
            request_id: Some(credentials.request_id),
            channel: Some(credentials.channel),
        }))
    }
}

/// What a request brings to be authenticated, not yet looked up: for the routes that
/// authenticate through a service call of their own (forward auth, answered from a cache).
#[derive(Debug, Clone)]
pub struct Credentials {
    pub token: Option<String>,
    pub request_id: String,
    /// `route:<matched path>`, the target of a failed authentication's audit record.
    pub route: String,
    /// The peer address, for counting failed attempts per source (never a forwarded header,
    /// which the caller could set to anything).
    pub source: Option<IpAddr>,
    pub channel: AuditChannel,
}

impl FromRequestParts<AppState> for Credentials {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let request_id = RequestId::from_request_parts(parts, state).await?.0;
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map_or_else(|| parts.uri.path(), |p| p.as_str());
        let source = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip());
        Ok(Credentials {
            token: bearer(&parts.headers).map(str::to_owned),
            request_id,
            route: format!("route:{route}"),
            source,
            channel: api_channel(&parts.headers),
        })
    }
}

/// The `User-Agent` prefix of the `companyos` CLI.
pub const CLI_USER_AGENT_PREFIX: &str = "companyos-cli/";

/// The channel of a `/v1` request: `cli` when the CLI says it is the caller, else `api`. A
/// client could claim to be the CLI, but never the console: that channel is given only by the
/// console's own routes, which authenticate by session.
pub fn api_channel(headers: &HeaderMap) -> AuditChannel {
    let cli = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|agent| agent.starts_with(CLI_USER_AGENT_PREFIX));
    if cli {
        AuditChannel::Cli
    } else {
        AuditChannel::Api
    }
}

/// Reads the whole body within the configured limit; over it is 413 with a problem body.
pub async fn read_body(request: Request, limit: usize) -> Result<Bytes, AppError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(AppError::too_large(format!(
            "the body is larger than the limit of {limit} bytes"
        )));
    }
    axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|_| {
            AppError::too_large(format!(
                "the body is larger than the limit of {limit} bytes"
            ))
        })
}

/// 415 with a problem body saying what to send.
pub fn unsupported_media_type(detail: &str) -> AppError {
    AppError::new(
        axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
        "Unsupported media type",
        detail,
    )
}

/// A JSON body decoded into `T` (which refuses unknown fields); errors name the field.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, AppError> {
        let json = match crate::media::body_type(request.headers()) {
            crate::media::BodyType::Absent => true,
            crate::media::BodyType::Given(essence) => crate::media::is_json(&essence),
            crate::media::BodyType::Malformed => false,
        };
        if !json {
            return Err(unsupported_media_type("send the body as application/json"));
        }
        let bytes = read_body(request, state.body_bytes_max).await?;
        decode_json(&bytes).map(JsonBody)
    }
}

/// Decodes JSON, naming the field of a type error or an unknown field.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(AppError::malformed("the body is empty; send a JSON object"));
    }
    // Parse first, so that malformed JSON and a wrong shape are told apart.
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| AppError::malformed(format!("the body is not valid JSON: {e}")))?;
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner().to_string();
        if let Some(field) = unknown_field(&inner) {
            // The path already ends with the unknown key.
            let field = if path == "." || path.is_empty() {
                field
            } else {
                path
            };
            return AppError::invalid(&field, "is not a known field");
        }
        if let Some(field) = missing_field(&inner) {
            let field = if path == "." || path.is_empty() {
                field
            } else {
                format!("{path}.{field}")
            };
            return AppError::invalid(&field, "is required");
        }
        let field = if path == "." || path.is_empty() {
            "body".to_owned()
        } else {
            path
        };
        AppError::invalid(&field, inner)
    })
}

fn quoted_name(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?;
    let rest = rest.strip_prefix('`')?;
    let end = rest.find('`')?;
    Some(rest[..end].to_owned())
}

fn unknown_field(message: &str) -> Option<String> {
    quoted_name(message, "unknown field ")
}

fn missing_field(message: &str) -> Option<String> {
    quoted_name(message, "missing field ")
}

/// A query string decoded into `T`; errors name the parameter.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        let query = parts.uri.query().unwrap_or("");
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(QueryParams)
            .map_err(|error| {
                let path = error.path().to_string();
                let inner = error.into_inner().to_string();
                if let Some(field) = unknown_field(&inner) {
                    return AppError::invalid(&field, "is not a known query parameter");
                }
                if let Some(field) = missing_field(&inner) {
                    return AppError::invalid(&field, "is required");
                }
                let field = if path == "." {
                    "query".to_owned()
                } else {
                    path
                };
                AppError::invalid(&field, inner)
            })
    }
}
