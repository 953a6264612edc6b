//! The console's one layout, its stylesheet, and the small pieces every page shares (status
//! badges, times, the error and login pages).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use companyos_domain::FieldError;
use companyos_domain::TenantStatus;
use companyos_domain::time_util::{format_rfc3339, from_micros};
use maud::{DOCTYPE, Markup, html};

use super::session::{ConsoleUser, csrf_input};

const STYLESHEET: &str = include_str!("../../assets/console.css");

/// The stylesheet (the only one; cached for an hour).
pub async fn stylesheet() -> Response {
    let mut response = STYLESHEET.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

/// An HTML response of a rendered page.
pub fn html(markup: Markup) -> Html<String> {
    Html(markup.into_string())
}

/// Which top-level page is shown (for `aria-current`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Tenants,
    Approvals,
    Audit,
}

fn document(title: &str, header: Markup, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · CompanyOS console" }
                link rel="stylesheet" href="/console/assets/console.css";
            }
            body {
                (header)
                main id="main" { (body) }
            }
        }
    }
}

/// A page of a logged-in operator: the navigation, who is logged in, logout, then `body`.
pub fn page(title: &str, user: &ConsoleUser, nav: Nav, body: Markup) -> Markup {
    let link = |target: Nav, href: &str, label: &str| {
        html! {
            @if target == nav { a href=(href) aria-current="page" { (label) } }
            @else { a href=(href) { (label) } }
        }
    };
    let header = html! {
        header.top {
            span.brand { "CompanyOS" }
            nav aria-label="Console" {
                (link(Nav::Tenants, "/console/tenants", "Tenants")) " "
                (link(Nav::Approvals, "/console/approvals", "Approvals")) " "
                (link(Nav::Audit, "/console/audit", "Audit"))
            }
            span.who {
                (user.name()) " · " span.role { (user.role()) } " "
                form method="post" action="/console/logout" {
                    (csrf_input(user))
                    button type="submit" { "Log out" }
                }
            }
        }
    };
    document(title, header, body)
}

/// The login form, with a message after a failed attempt.
pub fn login_page(message: Option<&str>) -> Markup {
    let header = html! { header.top { span.brand { "CompanyOS" } } };
    let body = html! {
        div.card.login {
            h1 { "Operator console" }
            @if let Some(message) = message { p.notice.bad role="alert" { (message) } }
            form method="post" action="/console/login" {
                label for="token" { "Operator token" }
                input id="token" name="token" type="password" autocomplete="off" required
                    autofocus size="40";
                p.muted { "The token is used once, to open a session; it is never stored in the browser." }
                button type="submit" { "Log in" }
            }
        }
    };
    document("Log in", header, body)
}

/// An error page (no navigation: the session may be gone).
pub fn error_page(status: StatusCode, title: &str, detail: &str, errors: &[FieldError]) -> Markup {
    let header =
        html! { header.top { span.brand { "CompanyOS" } a href="/console/tenants" { "Tenants" } } };
    let body = html! {
        div.card {
            h1 { (status.as_u16()) " " (title) }
            p.notice.bad role="alert" { (detail) }
            @if !errors.is_empty() {
                ul { @for error in errors { li { code { (error.field) } ": " (error.message) } } }
            }
            p { "Go back, correct the form and try again, or return to the " a href="/console/tenants" { "tenants" } "." }
        }
    };
    document(title, header, body)
}

/// A status badge coloured by what the status means for the tenant.
pub fn status_badge(status: TenantStatus) -> Markup {
    let class = match status {
        TenantStatus::Active => "ok",
        TenantStatus::Suspended | TenantStatus::Provisioning => "warn",
        TenantStatus::Deleting => "bad",
        TenantStatus::Purged => "muted",
        _ => "bad",
    };
    html! { span class={ "badge " (class) } { (status.as_str()) } }
}

/// An audit outcome badge.
pub fn outcome_badge(outcome: &str) -> Markup {
    let class = match outcome {
        "success" => "ok",
        "denied" => "bad",
        _ => "warn",
    };
    html! { span class={ "badge " (class) } { (outcome) } }
}

/// A stored time (microseconds since the epoch), shown to the second, in UTC.
pub fn time(micros: i64) -> Markup {
    timestamp(&format_rfc3339(from_micros(micros)))
}

/// An RFC 3339 UTC time (as audit records carry it), shown to the second.
pub fn timestamp(rfc3339: &str) -> Markup {
    let shown = rfc3339.get(..19).unwrap_or(rfc3339).replace('T', " ");
    html! { time datetime=(rfc3339) { (shown) " UTC" } }
}
