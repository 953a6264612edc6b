// The cases of `malformed_ids.rs` with well-formed ids that name nothing: method, path, the
// admin's answer.
vec![
    (Method::GET, "/v1/tenants/nobody", answer(404, "not-found", &[], &[])),
    (Method::POST, "/v1/tenants/nobody/suspend", answer(404, "not-found", &[], &["tenant.suspend failed tenant:nobody"])),
    (Method::GET, "/v1/tenants/nobody/ledger/checkpoint", answer(404, "not-found", &[], &[])),
    (Method::GET, "/v1/tenants/nobody/subjects", answer(404, "not-found", &[], &[])),
    (Method::GET, "/v1/tenants/nobody/plan", answer(404, "not-found", &[], &[])),
    (Method::GET, "/v1/tenants/nobody/statements/2026-03", answer(404, "not-found", &[], &[])),
    (Method::POST, "/v1/operators/op_00000000000000000000000000/revoke", answer(404, "not-found", &[], &["operator.revoke failed operator:op_00000000000000000000000000"])),
    (Method::GET, "/v1/approvals/apr_00000000000000000000000000", answer(404, "not-found", &[], &[])),
    (Method::POST, "/v1/approvals/apr_00000000000000000000000000/approve", answer(404, "not-found", &[], &["approval.approve failed approval:apr_00000000000000000000000000"])),
    (Method::GET, "/v1/evidence/evd_00000000000000000000000000", answer(404, "not-found", &[], &[])),
    (Method::GET, "/api/v1/meters/nothing", answer(404, "not-found", &[], &[])),
    (Method::GET, "/v1/plans/nothing", answer(404, "not-found", &[], &[])),
    (Method::GET, "/problems/nothing", answer(404, "not-found", &[], &[])),
]
