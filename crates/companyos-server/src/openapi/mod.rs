//! The route table: the one list from which both the router and the OpenAPI 3 document
//! (`GET /openapi.json`) are built, so the document cannot drift from the routes.
//!
//! The parts: the route table in four groups (`routes_*`, concatenated here in their order,
//! which is the order of the paths in the document), the component `schemas`, and the
//! `document` assembled from both.

use axum::routing::MethodRouter;

use crate::AppState;

/// One documented route.
#[derive(Clone, Copy)]
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub tag: &'static str,
    /// Whether a bearer token is needed.
    pub auth: bool,
    /// The component schema of the JSON body, if any.
    pub body: Option<&'static str>,
    /// The success status.
    pub success: u16,
    pub handler: fn() -> MethodRouter<AppState>,
}

macro_rules! route {
    ($method:literal, $path:literal, $tag:literal, $auth:expr, $body:expr, $success:literal, $summary:literal, $handler:expr) => {
        RouteDoc {
            method: $method,
            path: $path,
            summary: $summary,
            tag: $tag,
            auth: $auth,
            body: $body,
            success: $success,
            handler: $handler,
        }
    };
}

mod document;
mod routes_billing_and_statements;
mod routes_openmeter_audit_evidence;
mod routes_system_and_tenants;
mod routes_usage_and_metering;
mod schemas;

pub use document::document;

/// The route groups in the table's order.
const ROUTE_GROUPS: [&[RouteDoc]; 4] = [
    routes_system_and_tenants::SYSTEM_AND_TENANT_ROUTES,
    routes_usage_and_metering::USAGE_AND_METERING_ROUTES,
    routes_openmeter_audit_evidence::OPENMETER_AUDIT_AND_EVIDENCE_ROUTES,
    routes_billing_and_statements::BILLING_AND_STATEMENT_ROUTES,
];

const ROUTE_COUNT: usize = route_count(&ROUTE_GROUPS);

const ROUTE_TABLE: [RouteDoc; ROUTE_COUNT] = concatenate(&ROUTE_GROUPS);

/// Every route of the API.
pub const ROUTES: &[RouteDoc] = &ROUTE_TABLE;

const fn route_count(groups: &[&[RouteDoc]]) -> usize {
    let mut count = 0;
    let mut group = 0;
    while group < groups.len() {
        count += groups[group].len();
        group += 1;
    }
    count
}

/// The groups one after the other in one array: a const slice cannot be joined otherwise, and
/// the table must stay one `&[RouteDoc]` in the groups' order.
const fn concatenate<const COUNT: usize>(groups: &[&[RouteDoc]]) -> [RouteDoc; COUNT] {
    assert!(
        !groups.is_empty() && !groups[0].is_empty(),
        "the first route group has a route"
    );
    let mut table = [groups[0][0]; COUNT];
    let mut filled = 0;
    let mut group = 0;
    while group < groups.len() {
        let mut index = 0;
        while index < groups[group].len() {
            table[filled] = groups[group][index];
            filled += 1;
            index += 1;
        }
        group += 1;
    }
    assert!(
        filled == COUNT,
        "every route of every group is in the table"
    );
    table
}
