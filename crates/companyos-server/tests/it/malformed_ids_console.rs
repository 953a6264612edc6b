// The console cases of `malformed_ids.rs`: method, path, the admin's page, a viewer's page
// (status, `Location`, the error page's alert text, audit records written).
vec![
    (Method::GET, "/console/tenants/Bad_Id", page(404, "", "tenant Bad_Id not found", &[]), page(404, "", "tenant Bad_Id not found", &[])),
    (Method::POST, "/console/tenants/Bad_Id/integrity-report", page(404, "", "tenant Bad_Id not found", &[]), page(404, "", "tenant Bad_Id not found", &[])),
    (Method::POST, "/console/tenants/Bad_Id/actions/suspend", page(404, "", "tenant Bad_Id not found", &["tenant.suspend failed tenant:Bad_Id"]), page(404, "", "tenant Bad_Id not found", &["tenant.suspend failed tenant:Bad_Id"])),
    (Method::POST, "/console/tenants/Bad_Id/actions/Bad_Action", page(404, "", "no lifecycle action &quot;Bad_Action&quot;", &[]), page(404, "", "no lifecycle action &quot;Bad_Action&quot;", &[])),
    (Method::POST, "/console/tenants/Bad_Id/plan", page(400, "", "id: must match ^[a-z][a-z0-9-]{2,62}$", &[]), page(400, "", "id: must match ^[a-z][a-z0-9-]{2,62}$", &[])),
    (Method::GET, "/console/tenants/Bad_Id/statements/2026-13", page(400, "", "id: must match ^[a-z][a-z0-9-]{2,62}$", &[]), page(400, "", "id: must match ^[a-z][a-z0-9-]{2,62}$", &[])),
    (Method::GET, "/console/tenants/Bad_Id/statements/2026-13/download", page(400, "", "id: must match ^[a-z][a-z0-9-]{2,62}$", &[]), page(400, "", "id: must match ^[a-z][a-z0-9-]{2,62}$", &[])),
    (Method::GET, "/console/tenants/Bad_Id/statements/2026-13/pack", page(400, "", "id: must match ^[a-z][a-z0-9-]{2,62}$", &[]), page(400, "", "id: must match ^[a-z][a-z0-9-]{2,62}$", &[])),
    (Method::GET, "/console/evidence/Bad_Id", page(404, "", "evidence Bad_Id not found", &[]), page(403, "", "no policy permits evidence.read", &["evidence.read denied evidence:Bad_Id"])),
    (Method::POST, "/console/approvals/Bad_Id/decision", page(404, "", "approval Bad_Id not found", &["approval.approve failed approval:Bad_Id"]), page(404, "", "approval Bad_Id not found", &["approval.approve failed approval:Bad_Id"])),
    (Method::GET, "/console/tenants/nobody", page(404, "", "tenant nobody not found", &[]), page(404, "", "tenant nobody not found", &[])),
    (Method::GET, "/console/evidence/evd_00000000000000000000000000", page(404, "", "evidence evd_00000000000000000000000000 not found", &[]), page(403, "", "no policy permits evidence.read", &["evidence.read denied evidence:evd_00000000000000000000000000"])),
    (Method::POST, "/console/approvals/apr_00000000000000000000000000/decision", page(404, "", "approval apr_00000000000000000000000000 not found", &["approval.approve failed approval:apr_00000000000000000000000000"]), page(404, "", "approval apr_00000000000000000000000000 not found", &["approval.approve failed approval:apr_00000000000000000000000000"])),
]
