//! Malformed and unknown ids in paths, on every route that takes one: the status, the problem
//! `type`, the fields the answer names and the audit records the request wrote, for an admin and
//! for a role the policies deny, pinned as the server answered them before the routes took typed
//! path ids (issue 15, point 2; ADR 0016), so that the typed extractors change nothing a client
//! sees or the store keeps.

use reqwest::Method;
use serde_json::{Value, json};

use crate::checks::{audit_after, audit_head};
use crate::console::Console;
use crate::support::{Api, BACKENDS, TestServer};

/// What a caller got: status, problem slug, fields named in `errors`, and the audit records the
/// request wrote, each as `action outcome target`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    status: u16,
    problem: String,
    fields: Vec<String>,
    audited: Vec<String>,
}

fn answer(status: u16, problem: &str, fields: &[&str], audited: &[&str]) -> Answer {
    Answer {
        status,
        problem: problem.to_owned(),
        fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        audited: audited.iter().map(|a| (*a).to_owned()).collect(),
    }
}

/// The answer written as the test source writes it, to paste when a case is first measured.
fn source_of(answer: &Answer) -> String {
    format!(
        "answer({}, {:?}, &{:?}, &{:?})",
        answer.status, answer.problem, answer.fields, answer.audited
    )
}

/// A route with malformed ids in its path (upper case and a `_`, which no id accepts), what it
/// answers an admin, and what it answers an operator of the `ingest` role, whom the policies
/// allow nothing but ingestion.
struct Case {
    method: Method,
    path: &'static str,
    /// The body of a write: `{}` unless the case gives one that gets past the body's checks.
    body: &'static str,
    admin: Answer,
    denied: Answer,
}

fn case(method: Method, path: &'static str, admin: Answer, denied: Answer) -> Case {
    Case {
        method,
        path,
        body: "{}",
        admin,
        denied,
    }
}

/// A case whose write sends `body`.
fn with_body(body: &'static str, case: Case) -> Case {
    Case { body, ..case }
}

fn cases() -> Vec<Case> {
    include!("malformed_ids_cases.rs")
}

/// Well-formed ids that name nothing, one route per family, and the admin's answer.
fn unknown_cases() -> Vec<(Method, &'static str, Answer)> {
    include!("malformed_ids_unknown.rs")
}

fn fields_of(body: &Value) -> Vec<String> {
    body.get("errors")
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e.get("field").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn audited_of(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            let text = |key: &str| r[key].as_str().unwrap_or("?").to_owned();
            format!("{} {} {}", text("action"), text("outcome"), text("target"))
        })
        .collect()
}

/// Calls `path` as `caller` (with `body` on a write) and reads what it answered.
async fn answer_of(
    server: &TestServer,
    caller: &Api,
    method: Method,
    path: &str,
    body: &str,
) -> Answer {
    let before = audit_head(server).await;
    let body = (method != Method::GET).then(|| serde_json::from_str(body).unwrap_or(json!({})));
    let (status, answer) = caller.call(method, path, body).await;
    let records = audit_after(server, before).await;
    Answer {
        status: status.as_u16(),
        problem: answer
            .get("type")
            .and_then(Value::as_str)
            .and_then(|t| t.strip_prefix("/problems/"))
            .unwrap_or("")
            .to_owned(),
        fields: fields_of(&answer),
        audited: audited_of(&records),
    }
}

/// Whether `path` (its query aside) is an instance of the route `template`.
fn instance_of(template: &str, path: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path);
    let template: Vec<&str> = template.split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    template.len() == path.len()
        && template
            .iter()
            .zip(&path)
            .all(|(t, p)| t == p || t.starts_with('{'))
}

#[test]
fn every_route_with_a_path_id_has_a_case() {
    let cases = cases();
    for route in companyos_server::openapi::ROUTES {
        if !route.path.contains('{') {
            continue;
        }
        let covered = cases
            .iter()
            .any(|c| c.method.as_str() == route.method && instance_of(route.path, c.path));
        assert!(
            covered,
            "no malformed-id case for {} {}",
            route.method, route.path
        );
    }
}

#[tokio::test]
async fn malformed_path_ids_answer_as_before() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let admin = server.admin();
        let denied = server.operator("ivan", "ingest").await;
        let anonymous = server.anonymous();
        // Every case is called before any is judged, so that one run shows every difference,
        // each written as the case's source line.
        let mut differences = Vec::new();
        for case in cases() {
            let as_admin =
                answer_of(&server, &admin, case.method.clone(), case.path, case.body).await;
            let as_denied =
                answer_of(&server, &denied, case.method.clone(), case.path, case.body).await;
            if as_admin != case.admin || as_denied != case.denied {
                differences.push(format!(
                    "case(Method::{}, {:?}, {}, {}), body {}",
                    case.method,
                    case.path,
                    source_of(&as_admin),
                    source_of(&as_denied),
                    case.body
                ));
            }
            // Authentication comes before the path: no id is judged for an unknown caller. The
            // provisioning callback authenticates by signature and problem types are public, so
            // those answer anyone as they answer the admin.
            let body = (case.method != Method::GET).then(|| json!({}));
            let (status, _) = anonymous.call(case.method.clone(), case.path, body).await;
            let public = case.path.ends_with("/provisioning/callback")
                || case.path.starts_with("/problems/");
            let expected = if public { as_admin.status } else { 401 };
            assert_eq!(
                status.as_u16(),
                expected,
                "{backend:?} {} {} anonymous",
                case.method,
                case.path
            );
        }
        assert!(
            differences.is_empty(),
            "{backend:?}, answered:\n{}",
            differences.join("\n")
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn unknown_well_formed_ids_are_not_found() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let admin = server.admin();
        let mut differences = Vec::new();
        for (method, path, expected) in unknown_cases() {
            let got = answer_of(&server, &admin, method.clone(), path, "{}").await;
            if got != expected {
                differences.push(format!(
                    "(Method::{method}, {path:?}, {}),",
                    source_of(&got)
                ));
            }
        }
        assert!(
            differences.is_empty(),
            "{backend:?}, answered:\n{}",
            differences.join("\n")
        );
        server.stop().await;
    }
}

/// What the console answered: status, `Location`, the error page's alert text and the audit
/// records the request wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Page {
    status: u16,
    location: String,
    alert: String,
    audited: Vec<String>,
}

fn page(status: u16, location: &str, alert: &str, audited: &[&str]) -> Page {
    Page {
        status,
        location: location.to_owned(),
        alert: alert.to_owned(),
        audited: audited.iter().map(|a| (*a).to_owned()).collect(),
    }
}

fn source_of_page(page: &Page) -> String {
    format!(
        "page({}, {:?}, {:?}, &{:?})",
        page.status, page.location, page.alert, page.audited
    )
}

/// The text of the error page's alert, empty on any other page.
fn alert_of(body: &str) -> String {
    let marker = "role=\"alert\">";
    body.find(marker)
        .map(|start| &body[start + marker.len()..])
        .and_then(|rest| rest.find("</p>").map(|end| rest[..end].to_owned()))
        .unwrap_or_default()
}

/// A form the route takes, so that the answer is about the path's ids.
fn form_of(path: &str) -> &'static [(&'static str, &'static str)] {
    if path.ends_with("/decision") {
        &[("decision", "approve")]
    } else if path.ends_with("/plan") {
        &[("plan", "standard"), ("effective", "now")]
    } else {
        &[]
    }
}

/// Calls a console route as `console`'s operator (a write with the session's CSRF token).
async fn page_of(server: &TestServer, console: &Console, method: Method, path: &str) -> Page {
    // The token is read first: reading the page may write an audit record of its own.
    let csrf = if method == Method::GET {
        String::new()
    } else {
        console.get("/console/tenants").await.csrf()
    };
    let before = audit_head(server).await;
    let page = if method == Method::GET {
        console.get(path).await
    } else {
        let mut form = vec![("csrf_token", csrf.as_str())];
        form.extend_from_slice(form_of(path));
        console.post(path, &form).await
    };
    let records = audit_after(server, before).await;
    Page {
        status: page.status.as_u16(),
        location: page.location().to_owned(),
        alert: alert_of(&page.body),
        audited: audited_of(&records),
    }
}

/// The console's routes with malformed ids: method, path, the admin's page, a viewer's page.
fn console_cases() -> Vec<(Method, &'static str, Page, Page)> {
    include!("malformed_ids_console.rs")
}

#[tokio::test]
async fn console_pages_answer_malformed_ids_as_before() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let mut admin = Console::new(&server);
        let token = server.admin().token.unwrap_or_default();
        admin.login(&token).await;
        let viewer = Console::operator(&server, "vera", "viewer").await;
        let mut differences = Vec::new();
        for (method, path, as_admin, as_viewer) in console_cases() {
            let got_admin = page_of(&server, &admin, method.clone(), path).await;
            let got_viewer = page_of(&server, &viewer, method.clone(), path).await;
            if got_admin != as_admin || got_viewer != as_viewer {
                differences.push(format!(
                    "(Method::{method}, {path:?}, {}, {}),",
                    source_of_page(&got_admin),
                    source_of_page(&got_viewer)
                ));
            }
            // Without a session every page sends the caller to the login form.
            let form = (method != Method::GET).then_some(form_of(path));
            let logged_out = Console::new(&server).send(method.clone(), path, form).await;
            assert_eq!(
                logged_out.status.as_u16(),
                303,
                "{backend:?} {method} {path} logged out"
            );
            assert_eq!(
                logged_out.location(),
                "/console/login",
                "{backend:?} {method} {path}"
            );
        }
        assert!(
            differences.is_empty(),
            "{backend:?}, answered:\n{}",
            differences.join("\n")
        );
        server.stop().await;
    }
}
