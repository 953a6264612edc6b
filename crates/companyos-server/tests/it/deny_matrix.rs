//! The deny matrix (issue 3): every role and a tenant API key against every route class, the
//! expectation taken from a hand-written mirror of `policies/companyos.cedar` (not from the
//! authorizer), each denial audited exactly once; 401s, 413s and 400 problem bodies.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::checks::{audit_after, audit_head, request};
use crate::support::{Api, BACKENDS, START, TestServer, event};

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// An operator with this role.
    Role(&'static str),
    /// The API key of tenant `acme`.
    TenantKey,
}

const ROLES: [&str; 7] = [
    "viewer", "operator", "approver", "admin", "auditor", "billing", "ingest",
];

/// The operator name each role's caller has in the matrix.
fn operator_name(role: &str) -> &'static str {
    match role {
        "viewer" => "vera",
        "operator" => "olga",
        "approver" => "anna",
        "admin" => "adam",
        "auditor" => "audrey",
        "billing" => "bill",
        "ingest" => "ian",
        other => panic!("unknown role {other}"),
    }
}

/// What a call acts on, as far as the policies care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Res {
    /// The tenant `acme` (whose API key is the tenant-key caller).
    Own,
    /// Another tenant.
    Other,
    /// A deployment-wide resource (operators, policies, audit, evidence, sources, metering).
    Deployment,
    /// An approval (of another tenant's deletion).
    Approval,
    /// Forward auth: the caller's own tenant, and only a tenant key can ask.
    ForwardAuth,
}

/// `policies/companyos.cedar`, written out by hand: which actions each principal is permitted.
/// (The forbids are not triggered by the matrix: no self-approval, regions inside residency,
/// no legal hold, hard delete allowed, every tenant active.)
fn permits(caller: Caller, action: &str) -> bool {
    // "staff-read-tenants-usage-and-ledgers"
    const STAFF: [&str; 5] = ["viewer", "operator", "approver", "auditor", "billing"];
    const STAFF_READS: [&str; 7] = [
        "tenant.read",
        "usage.read",
        "ledger.read",
        "approval.read",
        "source.read",
        "metering.read",
        "metrics.read",
    ];
    let role = match caller {
        // "tenant-keys-read-their-own-tenant" (and only on their own tenant: see `allowed`).
        Caller::TenantKey => {
            return matches!(
                action,
                "tenant.read" | "usage.read" | "ledger.read" | "authz.check" | "statement.read"
            );
        }
        Caller::Role(role) => role,
    };
    if role == "admin" {
        // "admin-may-do-everything"
        return true;
    }
    if STAFF.contains(&role) && STAFF_READS.contains(&action) {
        return true;
    }
    let granted: &[&str] = match role {
        // "operators-run-the-tenant-lifecycle"
        "operator" => &[
            "tenant.create",
            "tenant.suspend",
            "tenant.reactivate",
            "tenant.delete",
            "tenant.restore",
            "tenant.purge",
            "tenant.retry",
            "tenant.regions.update",
            "tenant.workloads.update",
            "tenant.retention.update",
            "source.create",
            "metering.declare",
            "evidence.create",
            "statement.read",
            "statement.create",
        ],
        // "approvers-decide-approvals"
        "approver" => &["approval.approve", "approval.reject"],
        // "auditors-read-audit-and-evidence"
        "auditor" => &[
            "audit.read",
            "policy.read",
            "operator.read",
            "evidence.read",
            "evidence.create",
            "statement.read",
            "tenant.disclose",
        ],
        // "billing-reads-statements-and-evidence"
        "billing" => &[
            "evidence.read",
            "evidence.create",
            "statement.read",
            "statement.create",
        ],
        // "ingest-accounts-send-usage"
        "ingest" => &[
            "usage.ingest",
            "source.create",
            "source.read",
            "metering.declare",
            "metering.read",
        ],
        _ => &[],
    };
    granted.contains(&action)
}

/// Whether `caller` may do `action` on `resource`.
fn allowed(caller: Caller, action: &str, resource: Res) -> bool {
    match (caller, resource) {
        // Forward auth answers for tenant keys only ("forward auth takes a tenant API key").
        (Caller::Role(_), Res::ForwardAuth) => false,
        // The tenant-key permit is `resource is Tenant` with `principal.tenant == resource`.
        (Caller::TenantKey, Res::Own | Res::ForwardAuth) => permits(caller, action),
        (Caller::TenantKey, _) => false,
        (Caller::Role(_), _) => permits(caller, action),
    }
}

/// One route class of the matrix.
struct Route {
    name: &'static str,
    method: Method,
    /// The authorization requests the route makes, in order: the first refused one is the
    /// denial (and the action of its audit record).
    checks: &'static [(&'static str, Res)],
    /// The status an allowed caller gets (a 409 still means: authorized, then refused by state).
    allowed_status: u16,
}

const fn route(
    name: &'static str,
    method: Method,
    checks: &'static [(&'static str, Res)],
    allowed_status: u16,
) -> Route {
    Route {
        name,
        method,
        checks,
        allowed_status,
    }
}

fn routes() -> Vec<Route> {
    use Res::*;
    vec![
        route(
            "operators.create",
            Method::POST,
            &[("operator.create", Deployment)],
            201,
        ),
        route(
            "operators.list",
            Method::GET,
            &[("operator.read", Deployment)],
            200,
        ),
        route(
            "operators.revoke",
            Method::POST,
            &[("operator.revoke", Deployment)],
            200,
        ),
        route(
            "policies.read",
            Method::GET,
            &[("policy.read", Deployment)],
            200,
        ),
        route(
            "tenants.create",
            Method::POST,
            &[("tenant.create", Other)],
            201,
        ),
        route("tenants.list", Method::GET, &[("tenant.read", Own)], 200),
        route("tenants.show", Method::GET, &[("tenant.read", Own)], 200),
        route(
            "tenants.show-other",
            Method::GET,
            &[("tenant.read", Other)],
            200,
        ),
        route(
            "tenants.provisioning",
            Method::GET,
            &[("tenant.read", Own)],
            200,
        ),
        route(
            "lifecycle.suspend",
            Method::POST,
            &[("tenant.suspend", Own)],
            200,
        ),
        route(
            "lifecycle.reactivate",
            Method::POST,
            &[("tenant.reactivate", Own)],
            200,
        ),
        route(
            "lifecycle.delete",
            Method::POST,
            &[("tenant.delete", Own)],
            202,
        ),
        route(
            "lifecycle.restore",
            Method::POST,
            &[("tenant.restore", Own)],
            409,
        ),
        route(
            "lifecycle.purge",
            Method::POST,
            &[("tenant.purge", Own)],
            409,
        ),
        route(
            "lifecycle.retry",
            Method::POST,
            &[("tenant.retry", Own)],
            409,
        ),
        route(
            "regions.update",
            Method::POST,
            &[("tenant.regions.update", Own)],
            200,
        ),
        route("workloads.list", Method::GET, &[("tenant.read", Own)], 200),
        route(
            "workloads.update",
            Method::PUT,
            &[("tenant.workloads.update", Own)],
            200,
        ),
        route(
            "retention.update",
            Method::PUT,
            &[("tenant.retention.update", Own)],
            200,
        ),
        route(
            "events.ingest",
            Method::POST,
            &[("usage.ingest", Deployment)],
            200,
        ),
        route(
            "sources.create",
            Method::POST,
            &[("source.create", Deployment)],
            201,
        ),
        route(
            "sources.list",
            Method::GET,
            &[("source.read", Deployment)],
            200,
        ),
        route(
            "metering.declare",
            Method::PUT,
            &[("metering.declare", Deployment)],
            200,
        ),
        route(
            "metering.services",
            Method::GET,
            &[("metering.read", Deployment)],
            200,
        ),
        route(
            "metering.coverage-report",
            Method::GET,
            &[("metering.read", Deployment)],
            200,
        ),
        route(
            "metering.coverage-mode",
            Method::PUT,
            &[("metering.coverage.update", Deployment)],
            200,
        ),
        route(
            "metering.service-coverage-mode",
            Method::PUT,
            &[("metering.coverage.update", Deployment)],
            200,
        ),
        route("usage.daily", Method::GET, &[("usage.read", Own)], 200),
        route(
            "usage.reconciliation",
            Method::GET,
            &[("usage.read", Own)],
            200,
        ),
        route(
            "usage.integrity-report",
            Method::POST,
            &[("usage.read", Own), ("evidence.create", Deployment)],
            201,
        ),
        route(
            "ledger.checkpoint",
            Method::GET,
            &[("ledger.read", Own)],
            200,
        ),
        route("ledger.proof", Method::GET, &[("ledger.read", Own)], 200),
        route(
            "ledger.consistency",
            Method::GET,
            &[("ledger.read", Own)],
            200,
        ),
        route(
            "approvals.list",
            Method::GET,
            &[("approval.read", Deployment)],
            200,
        ),
        route(
            "approvals.show",
            Method::GET,
            &[("approval.read", Deployment)],
            200,
        ),
        route(
            "approvals.approve",
            Method::POST,
            &[("approval.approve", Approval)],
            200,
        ),
        route(
            "approvals.reject",
            Method::POST,
            &[("approval.reject", Approval)],
            200,
        ),
        route(
            "audit.read",
            Method::GET,
            &[("audit.read", Deployment)],
            200,
        ),
        route(
            "audit.checkpoint",
            Method::GET,
            &[("audit.read", Deployment)],
            200,
        ),
        route(
            "evidence.list",
            Method::GET,
            &[("evidence.read", Deployment)],
            200,
        ),
        route(
            "evidence.read",
            Method::GET,
            &[("evidence.read", Deployment)],
            200,
        ),
        route(
            "evidence.signature",
            Method::GET,
            &[("evidence.read", Deployment)],
            200,
        ),
        route(
            "authz.check",
            Method::GET,
            &[("authz.check", ForwardAuth)],
            200,
        ),
        // ---- monthly statements and packs (CONTRACT §10) ----
        route(
            "statements.list",
            Method::GET,
            &[("statement.read", Own)],
            200,
        ),
        route(
            "statements.show",
            Method::GET,
            &[("statement.read", Own)],
            200,
        ),
        route(
            "statements.pack",
            Method::GET,
            &[("statement.read", Own)],
            200,
        ),
        route(
            "statements.disclosure",
            Method::GET,
            &[("tenant.disclose", Own)],
            200,
        ),
    ]
}

/// What the matrix works on.
struct Fixture<'a> {
    server: &'a TestServer,
    /// Operator `rita` (role operator): requests the approvals the matrix decides.
    requester: Api,
    /// The dossier of `acme`.
    dossier: String,
    /// A pending approval that denied callers try to decide.
    standing_approval: String,
    /// An operator that denied callers try to revoke.
    standing_victim: String,
}

impl Fixture<'_> {
    /// The path and body of one call of `route`; an allowed call gets fresh resources where it
    /// consumes them (an operator to revoke, an approval to decide).
    async fn call_for(&self, route: &str, allowed: bool, n: usize) -> (String, Option<Value>) {
        let server = self.server;
        let lifecycle = |action: &str, confirm: bool| {
            let mut body = json!({"reason": format!("matrix {action}")});
            if confirm {
                body["confirm"] = json!("acme");
            }
            (format!("/v1/tenants/acme/{action}"), Some(body))
        };
        match route {
            "operators.create" => (
                "/v1/operators".to_owned(),
                Some(json!({"name": format!("new-op-{n}"), "role": "viewer"})),
            ),
            "operators.list" => ("/v1/operators".to_owned(), None),
            "operators.revoke" => {
                let victim = if allowed {
                    let (status, body) = server
                        .admin()
                        .post(
                            "/v1/operators",
                            json!({"name": format!("victim-{n}"), "role": "viewer"}),
                        )
                        .await;
                    assert_eq!(status, StatusCode::CREATED, "{body}");
                    body["id"].as_str().unwrap().to_owned()
                } else {
                    self.standing_victim.clone()
                };
                (format!("/v1/operators/{victim}/revoke"), None)
            }
            "policies.read" => ("/v1/policies".to_owned(), None),
            "tenants.create" => (
                "/v1/tenants".to_owned(),
                Some(
                    json!({"id": format!("new-{n}"), "name": "New", "plan": "standard",
                            "home_region": "eu-west-1", "allowed_regions": ["eu-west-1"]}),
                ),
            ),
            "tenants.list" => ("/v1/tenants".to_owned(), None),
            "tenants.show" => ("/v1/tenants/acme".to_owned(), None),
            "tenants.show-other" => ("/v1/tenants/other".to_owned(), None),
            "tenants.provisioning" => ("/v1/tenants/acme/provisioning".to_owned(), None),
            "lifecycle.suspend" => lifecycle("suspend", false),
            "lifecycle.reactivate" => lifecycle("reactivate", false),
            "lifecycle.delete" => lifecycle("delete", true),
            "lifecycle.restore" => lifecycle("restore", false),
            "lifecycle.purge" => lifecycle("purge", true),
            "lifecycle.retry" => ("/v1/tenants/acme/retry".to_owned(), None),
            "regions.update" => (
                "/v1/tenants/acme/regions".to_owned(),
                Some(json!({"add": ["eu-central-1"]})),
            ),
            "workloads.list" => ("/v1/tenants/acme/workloads".to_owned(), None),
            "workloads.update" => (
                "/v1/tenants/acme/workloads/web".to_owned(),
                Some(json!({"replicas": 2})),
            ),
            "retention.update" => (
                "/v1/tenants/acme/retention".to_owned(),
                Some(json!({"tombstone_days": 30, "reason": "matrix"})),
            ),
            "events.ingest" => (
                "/v1/events".to_owned(),
                Some(json!([event("acme", &format!("m-{n}"), "1", START)])),
            ),
            "sources.create" => (
                "/v1/sources".to_owned(),
                Some(json!({"id": format!("src-{n}"), "service": "api",
                            "public_key": companyos_sdk::SourceKey::generate("x").public_key_base64()})),
            ),
            "sources.list" => ("/v1/sources".to_owned(), None),
            "metering.declare" => (
                "/v1/services/api/metering".to_owned(),
                Some(json!({"metrics": [{"name": "requests", "unit": "request",
                                         "aggregation": "sum", "description": "API requests"}]})),
            ),
            "metering.services" => ("/v1/services".to_owned(), None),
            "metering.coverage-report" => ("/v1/metering/coverage".to_owned(), None),
            "metering.coverage-mode" => (
                "/v1/metering/coverage".to_owned(),
                Some(json!({"mode": "warn"})),
            ),
            "metering.service-coverage-mode" => (
                "/v1/services/api/coverage".to_owned(),
                Some(json!({"mode": "warn"})),
            ),
            "usage.daily" => (
                "/v1/tenants/acme/usage/daily?from=2026-03-01&to=2026-03-02".to_owned(),
                None,
            ),
            "usage.reconciliation" => (
                "/v1/tenants/acme/reconciliation?from=2026-03-01&to=2026-03-02".to_owned(),
                None,
            ),
            "usage.integrity-report" => (
                "/v1/tenants/acme/integrity-report".to_owned(),
                Some(json!({"from": "2026-03-01", "to": "2026-03-02"})),
            ),
            "statements.list" => ("/v1/tenants/acme/statements".to_owned(), None),
            "statements.show" => ("/v1/tenants/acme/statements/2026-03".to_owned(), None),
            "statements.pack" => ("/v1/tenants/acme/statements/2026-03/pack".to_owned(), None),
            "statements.disclosure" => (
                "/v1/tenants/acme/disclosure?from=2026-03-01&to=2026-03-02".to_owned(),
                None,
            ),
            "ledger.checkpoint" => ("/v1/tenants/acme/ledger/checkpoint".to_owned(), None),
            "ledger.proof" => ("/v1/tenants/acme/ledger/proof?event_id=e0".to_owned(), None),
            "ledger.consistency" => (
                "/v1/tenants/acme/ledger/consistency?from=1&to=1".to_owned(),
                None,
            ),
            "approvals.list" => ("/v1/approvals".to_owned(), None),
            "approvals.show" => (format!("/v1/approvals/{}", self.standing_approval), None),
            "approvals.approve" | "approvals.reject" => {
                let approval = if allowed {
                    let tenant = format!("apv-{n}");
                    server.create_tenant(&tenant).await;
                    request(&self.requester, &tenant, "delete").await
                } else {
                    self.standing_approval.clone()
                };
                let verb = route.trim_start_matches("approvals.");
                (
                    format!("/v1/approvals/{approval}/{verb}"),
                    Some(json!({"comment": "matrix"})),
                )
            }
            "audit.read" => ("/v1/audit?limit=1".to_owned(), None),
            "audit.checkpoint" => ("/v1/audit/checkpoint".to_owned(), None),
            "evidence.list" => ("/v1/evidence".to_owned(), None),
            "evidence.read" => (format!("/v1/evidence/{}", self.dossier), None),
            "evidence.signature" => (format!("/v1/evidence/{}/signature", self.dossier), None),
            "authz.check" => ("/v1/authz/check".to_owned(), None),
            other => panic!("no call for route {other}"),
        }
    }

    /// Puts `acme` back after an allowed call changed it.
    async fn reset(&self, route: &str, body: &Value) {
        match route {
            "lifecycle.suspend" => {
                let (status, body) = self
                    .server
                    .admin()
                    .post("/v1/tenants/acme/reactivate", json!({"reason": "reset"}))
                    .await;
                assert_eq!(status, StatusCode::OK, "{body}");
            }
            "lifecycle.delete" => {
                let approval = body["approval"]["id"].as_str().unwrap();
                let (status, body) = self
                    .server
                    .admin()
                    .post(
                        &format!("/v1/approvals/{approval}/reject"),
                        json!({"comment": "reset"}),
                    )
                    .await;
                assert_eq!(status, StatusCode::OK, "{body}");
            }
            _ => {}
        }
    }
}

/// The callers of the matrix, with their clients.
async fn callers(server: &TestServer, acme_key: &str) -> Vec<(Caller, Api)> {
    let mut callers = Vec::new();
    for role in ROLES {
        callers.push((
            Caller::Role(role),
            server.operator(operator_name(role), role).await,
        ));
    }
    callers.push((Caller::TenantKey, server.api(acme_key)));
    callers
}

#[tokio::test]
async fn every_role_and_a_tenant_key_against_every_route_class() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let acme = server.create_tenant("acme").await;
        let acme_key = acme["api_key"].as_str().unwrap().to_owned();
        let dossier = acme["dossier_evidence_id"].as_str().unwrap().to_owned();
        server.create_tenant("other").await;
        server.create_tenant("held").await;
        let admin = server.admin();
        let (status, body) = admin
            .post("/v1/events", json!([event("acme", "e0", "1", START)]))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["accepted"], json!(1), "{body}");
        let (status, body) = admin
            .put(
                "/v1/services/api/metering",
                json!({"metrics": [{"name": "requests", "unit": "request", "aggregation": "sum",
                                  "description": "one API request"}]}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let requester = server.operator("rita", "operator").await;
        let standing_approval = request(&requester, "held", "delete").await;
        let (status, body) = admin
            .post(
                "/v1/operators",
                json!({"name": "standing-victim", "role": "viewer"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let fixture = Fixture {
            server: &server,
            requester,
            dossier,
            standing_approval,
            standing_victim: body["id"].as_str().unwrap().to_owned(),
        };
        let callers = callers(&server, &acme_key).await;
        let mut n = 0;
        let mut denials = 0;
        for route in routes() {
            for (caller, api) in &callers {
                n += 1;
                let refused = route
                    .checks
                    .iter()
                    .find(|(action, resource)| !allowed(*caller, action, *resource))
                    .map(|(action, _)| *action);
                let (path, body) = fixture.call_for(route.name, refused.is_none(), n).await;
                let before = audit_head(&server).await;
                let (status, response) = api.call(route.method.clone(), &path, body).await;
                let written = audit_after(&server, before).await;
                let what = format!("{backend:?} {caller:?} {} {path}", route.name);
                match refused {
                    None => {
                        assert_eq!(
                            status.as_u16(),
                            route.allowed_status,
                            "{what}: allowed, expected {}: {response}",
                            route.allowed_status
                        );
                        assert!(
                            written.iter().all(|r| r["outcome"] != json!("denied")),
                            "{what}: an allowed call wrote a denial: {written:?}"
                        );
                        fixture.reset(route.name, &response).await;
                    }
                    Some(action) => {
                        denials += 1;
                        assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {response}");
                        assert_eq!(response["status"], json!(403), "{what}: {response}");
                        assert_eq!(
                            response["type"],
                            json!("/problems/forbidden"),
                            "{what}: {response}"
                        );
                        assert_eq!(
                            written.len(),
                            1,
                            "{what}: one audit record per denial: {written:#?}"
                        );
                        let record = &written[0];
                        let (actor, role) = match caller {
                            Caller::Role(role) => (operator_name(role).to_owned(), *role),
                            Caller::TenantKey => ("tenant:acme".to_owned(), "tenant"),
                        };
                        assert_eq!(record["outcome"], json!("denied"), "{what}: {record}");
                        assert_eq!(record["actor"], json!(actor), "{what}: {record}");
                        assert_eq!(record["role"], json!(role), "{what}: {record}");
                        assert_eq!(record["action"], json!(action), "{what}: {record}");
                        assert!(
                            !record["target"].as_str().unwrap_or("").is_empty(),
                            "{what}: {record}"
                        );
                        // Forward auth refuses operators by the policy
                        // `forward-auth-is-for-tenant-keys`; the reason names the action.
                        assert!(
                            record["reason"].as_str().unwrap_or("").contains(action),
                            "{what}: the reason names {action}: {record}"
                        );
                    }
                }
            }
        }
        // The matrix is not vacuous: most cells are denials, and every route allows someone.
        assert!(denials > 150, "{denials} denials");
        for route in routes() {
            assert!(
                callers
                    .iter()
                    .any(|(caller, _)| route.checks.iter().all(|(a, r)| allowed(*caller, a, *r))),
                "{} allows nobody",
                route.name
            );
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn no_or_unknown_credentials_get_401_on_every_route_and_each_is_audited() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let acme = server.create_tenant("acme").await;
        let dossier = acme["dossier_evidence_id"].as_str().unwrap().to_owned();
        let requester = server.operator("rita", "operator").await;
        server.create_tenant("held").await;
        let fixture = Fixture {
            server: &server,
            standing_approval: request(&requester, "held", "delete").await,
            requester,
            dossier,
            standing_victim: "op_nobody".to_owned(),
        };
        let strangers = [
            ("no token", server.anonymous(), "no credential"),
            (
                "unknown operator token",
                server.api("cos_op_0000000000000000"),
                "unknown",
            ),
            (
                "unknown tenant key",
                server.api("cos_tk_0000000000000000"),
                "unknown",
            ),
            ("garbage", server.api("Basic dXNlcjpwYXNz"), "unknown"),
        ];
        let mut n = 0;
        for route in routes() {
            for (who, api, reason) in &strangers {
                n += 1;
                let (path, body) = fixture.call_for(route.name, false, n).await;
                let before = audit_head(&server).await;
                // Each in a minute of its own, so each is its source's first failure of the
                // minute and audited alone (repeated ones are aggregated: see edge.rs).
                server.clock.advance(time::Duration::seconds(60));
                let (status, headers, text) = api
                    .raw(
                        route.method.clone(),
                        &path,
                        body.map(|b| ("application/json", b.to_string().into_bytes())),
                    )
                    .await;
                let what = format!("{backend:?} {who} {} {path}", route.name);
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {text}");
                assert_eq!(
                    headers["content-type"], "application/problem+json",
                    "{what}"
                );
                assert_eq!(headers["www-authenticate"], "Bearer", "{what}");
                let written = audit_after(&server, before).await;
                assert_eq!(written.len(), 1, "{what}: {written:#?}");
                let record = &written[0];
                assert_eq!(record["action"], json!("auth.authenticate"), "{what}");
                assert_eq!(record["outcome"], json!("denied"), "{what}");
                assert_eq!(record["actor"], json!("anonymous"), "{what}");
                assert!(
                    record["target"].as_str().unwrap().starts_with("route:/v1/"),
                    "{what}: {record}"
                );
                assert!(
                    record["reason"].as_str().unwrap().contains(reason),
                    "{what}: {record}"
                );
            }
        }
        // Nothing was changed by any of them.
        let (_, tenants) = server.admin().get("/v1/tenants").await;
        assert_eq!(tenants.as_array().unwrap().len(), 2, "{tenants}");
        assert_eq!(crate::checks::status_of(&server, "acme").await, "active");
        server.stop().await;
    }
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_problem_bodies_and_change_nothing() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.create_tenant("acme").await;
        let admin = server.admin();
        let before = audit_head(&server).await;
        // The test server's limit is 1 MiB.
        let mut padded = json!({"reason": "x"}).to_string().into_bytes();
        padded.truncate(padded.len() - 1);
        padded.extend(std::iter::repeat_n(b' ', 1024 * 1024 + 1));
        padded.push(b'}');
        for (method, path) in [
            (Method::POST, "/v1/operators"),
            (Method::POST, "/v1/tenants"),
            (Method::POST, "/v1/tenants/acme/suspend"),
            (Method::POST, "/v1/tenants/acme/regions"),
            (Method::PUT, "/v1/tenants/acme/retention"),
            (Method::PUT, "/v1/tenants/acme/workloads/web"),
            (Method::POST, "/v1/events"),
            (Method::POST, "/v1/sources"),
            (Method::PUT, "/v1/metering/coverage"),
        ] {
            let (status, headers, text) = admin
                .raw(
                    method.clone(),
                    path,
                    Some(("application/json", padded.clone())),
                )
                .await;
            assert_eq!(
                status,
                StatusCode::PAYLOAD_TOO_LARGE,
                "{backend:?} {method} {path}: {text}"
            );
            assert_eq!(headers["content-type"], "application/problem+json");
            let problem: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(problem["status"], json!(413), "{problem}");
            assert_eq!(problem["type"], json!("/problems/payload-too-large"));
            assert!(problem["detail"].as_str().unwrap().contains("limit"));
        }
        // A chunked body (no Content-Length) is bounded while it is read.
        let status = chunked_post(&server, "/v1/tenants/acme/suspend", &padded).await;
        assert_eq!(status, 413, "{backend:?} chunked");
        assert_eq!(crate::checks::status_of(&server, "acme").await, "active");
        let written = audit_after(&server, before).await;
        assert!(written.is_empty(), "{written:#?}");
        server.stop().await;
    }
}

/// POSTs `body` with `Transfer-Encoding: chunked` over a raw connection; returns the status.
async fn chunked_post(server: &TestServer, path: &str, body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let address = server.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        server.admin_token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer and close before the whole body is sent.
    for chunk in body.chunks(64 * 1024) {
        let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
        frame.extend_from_slice(chunk);
        frame.extend_from_slice(b"\r\n");
        if stream.write_all(&frame).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    while !response.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&buffer[..n]),
        }
    }
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"))
}

#[tokio::test]
async fn malformed_json_wrong_types_and_unknown_fields_get_400_problems_naming_the_field() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        server.create_tenant("acme").await;
        let requester = server.operator("rita", "operator").await;
        server.create_tenant("held").await;
        let approval = request(&requester, "held", "delete").await;
        let admin = server.admin();
        let approve = format!("/v1/approvals/{approval}/approve");
        let cases: Vec<(Method, &str, &str, Option<&str>)> = vec![
            // (method, path, body, the field named; None: malformed JSON)
            (Method::POST, "/v1/tenants", "{\"id\": \"x", None),
            (
                Method::POST,
                "/v1/tenants",
                r#"{"id": 5, "name": "x"}"#,
                Some("id"),
            ),
            (
                Method::POST,
                "/v1/tenants",
                r#"{"id": "abc", "name": "x", "colour": "red"}"#,
                Some("colour"),
            ),
            (
                Method::POST,
                "/v1/tenants",
                r#"{"id": "abc", "name": "x", "allowed_regions": "eu-west-1"}"#,
                Some("allowed_regions"),
            ),
            (Method::POST, "/v1/tenants/acme/suspend", "[", None),
            (
                Method::POST,
                "/v1/tenants/acme/suspend",
                r#"{"reason": 5}"#,
                Some("reason"),
            ),
            (
                Method::POST,
                "/v1/tenants/acme/delete",
                r#"{"reason": "x", "confirm": "acme", "force": true}"#,
                Some("force"),
            ),
            (
                Method::POST,
                "/v1/tenants/acme/regions",
                r#"{"add": "eu-central-1"}"#,
                Some("add"),
            ),
            (
                Method::POST,
                "/v1/tenants/acme/regions",
                r#"{"add": [], "replace": ["eu-west-1"]}"#,
                Some("replace"),
            ),
            (
                Method::PUT,
                "/v1/tenants/acme/workloads/web",
                r#"{"replicas": "three"}"#,
                Some("replicas"),
            ),
            (
                Method::PUT,
                "/v1/tenants/acme/workloads/web",
                r#"{"replicas": 3, "image": "nginx"}"#,
                Some("image"),
            ),
            (
                Method::PUT,
                "/v1/tenants/acme/retention",
                r#"{"legal_hold": "yes", "reason": "x"}"#,
                Some("legal_hold"),
            ),
            (Method::POST, &approve, r#"{"comment": 5}"#, Some("comment")),
            (
                Method::POST,
                &approve,
                r#"{"comment": "ok", "as": "admin"}"#,
                Some("as"),
            ),
            (
                Method::PUT,
                "/v1/metering/coverage",
                r#"{"mode": 1}"#,
                Some("mode"),
            ),
            (
                Method::POST,
                "/v1/sources",
                r#"{"id": 1, "service": "api", "public_key": "x"}"#,
                Some("id"),
            ),
            (
                Method::POST,
                "/v1/operators",
                r#"{"name": "x", "role": "viewer", "admin": true}"#,
                Some("admin"),
            ),
            (Method::POST, "/v1/operators", "", None),
        ];
        let before = audit_head(&server).await;
        for (method, path, body, field) in cases {
            let (status, headers, text) = admin
                .raw(
                    method.clone(),
                    path,
                    Some(("application/json", body.as_bytes().to_vec())),
                )
                .await;
            let what = format!("{backend:?} {method} {path} {body}");
            assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {text}");
            assert_eq!(
                headers["content-type"], "application/problem+json",
                "{what}"
            );
            let problem: Value = serde_json::from_str(&text).unwrap();
            for key in ["type", "title", "status", "detail"] {
                assert!(!problem[key].is_null(), "{what}: no {key} in {problem}");
            }
            assert_eq!(problem["status"], json!(400), "{what}");
            match field {
                None => assert_eq!(
                    problem["type"],
                    json!("/problems/malformed-request"),
                    "{what}: {problem}"
                ),
                Some(field) => {
                    assert_eq!(
                        problem["type"],
                        json!("/problems/validation-error"),
                        "{what}: {problem}"
                    );
                    assert_eq!(
                        problem["errors"][0]["field"],
                        json!(field),
                        "{what}: {problem}"
                    );
                    assert!(
                        problem["errors"][0]["message"].is_string(),
                        "{what}: {problem}"
                    );
                }
            }
        }
        // None of the refused bodies changed anything.
        let written = audit_after(&server, before).await;
        assert!(written.is_empty(), "{written:#?}");
        assert_eq!(crate::checks::status_of(&server, "acme").await, "active");
        assert_eq!(crate::checks::status_of(&server, "held").await, "active");
        server.stop().await;
    }
}

/// The runbooks say which role runs each step (issue 21): every step's action must be one the
/// policies (as mirrored by `permits`) grant that role, so a runbook never sends an operator
/// into a 403.
#[test]
fn every_runbook_step_runs_as_a_role_the_policies_permit() {
    const RUNBOOKS: [(&str, &str); 5] = [
        (
            "provision",
            include_str!("../../../../docs/runbooks/provision.md"),
        ),
        (
            "suspend",
            include_str!("../../../../docs/runbooks/suspend.md"),
        ),
        (
            "reactivate",
            include_str!("../../../../docs/runbooks/reactivate.md"),
        ),
        (
            "delete",
            include_str!("../../../../docs/runbooks/delete.md"),
        ),
        ("purge", include_str!("../../../../docs/runbooks/purge.md")),
    ];
    let mut checked = 0;
    for (runbook, text) in RUNBOOKS {
        for line in text.lines() {
            let (role, command) =
                if let Some(rest) = line.strip_prefix("COMPANYOS_TOKEN=$AUDITOR_TOKEN ") {
                    ("auditor", rest)
                } else if let Some(rest) = line.strip_prefix("COMPANYOS_TOKEN=$APPROVER_TOKEN ") {
                    ("approver", rest)
                } else {
                    // The runbooks' default: "your operator token".
                    ("operator", line)
                };
            let Some(command) = command.strip_prefix("companyos ") else {
                continue;
            };
            let words: Vec<&str> = command.split_whitespace().take(2).collect();
            let action = match words.as_slice() {
                ["audit", "export"] => "audit.read".to_owned(),
                ["evidence", "list" | "get"] => "evidence.read".to_owned(),
                ["approval", "list"] => "approval.read".to_owned(),
                ["approval", verb @ ("approve" | "reject")] => format!("approval.{verb}"),
                ["tenant", "show" | "list" | "workload"] => "tenant.read".to_owned(),
                [
                    "tenant",
                    verb @ ("create" | "suspend" | "reactivate" | "delete" | "restore" | "purge"
                    | "retry"),
                ] => format!("tenant.{verb}"),
                // A store command: it reads the data dir, no token and no policy.
                ["ledger", "verify"] => continue,
                other => panic!("{runbook}.md: map {other:?} to its action in this test"),
            };
            assert!(
                permits(Caller::Role(role), &action),
                "{runbook}.md: the {role} role may not {action}: {line}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} runbook steps checked");
    // Least privilege: the operator does not read the audit log or evidence, which is why the
    // runbooks hand those verify steps to the auditor.
    for action in ["audit.read", "evidence.read"] {
        assert!(!permits(Caller::Role("operator"), action), "{action}");
        assert!(permits(Caller::Role("auditor"), action), "{action}");
    }
}
