//! The tenants repository on both engines: rows as earlier releases stored them, with a
//! boundary of each driver and none, read into typed rows and written back byte for byte.

use companyos_domain::boundary::{BoundaryDriverKind, BoundarySpec};
use companyos_domain::{TenantId, TenantStatus};
use companyos_store::db::{self, Db, PoolOptions};
use companyos_store::tenants;
use sqlx::AnyConnection;

use crate::stores;

/// The stored text of every column but the id, compared before and after a write.
const STORED_TEXT: &str = "SELECT name || '|' || plan || '|' || status || '|' || home_region \
    || '|' || allowed_regions || '|' || deploy_regions || '|' || boundary_driver || '|' \
    || boundary || '|' || COALESCE(entitlements, 'NULL') FROM tenants WHERE id = $1";

/// One tenant per driver (and one whose provisioning never finished), as stored. The
/// provisioner's details are sorted here: alone, without Cedar, serde_json writes objects
/// sorted (the product keeps them in the order received).
const ROWS: [(&str, &str, &str); 4] = [
    (
        "dir-tenant",
        "directory",
        r#"{"driver":"directory","path":"/srv/data/tenants/dir-tenant","mode":"0700","database":"/srv/data/tenants/dir-tenant/tenant.db"}"#,
    ),
    (
        "pg-tenant",
        "postgres",
        r#"{"driver":"postgres","database":"companyos","schema":"tenant_pg_tenant","role":"cos_0a1b2c3d_pg_tenant","connection_limit":5}"#,
    ),
    (
        "hook-tenant",
        "webhook",
        r#"{"driver":"webhook","provisioner":"https://p.example/b","state":"ready","provisioner_details":{"cluster":"eu-1","nodes":[1,2.50]}}"#,
    ),
    ("new-tenant", "webhook", "{}"),
];

async fn insert_raw(conn: &mut AnyConnection, id: &str, driver: &str, boundary: &str) {
    sqlx::query(
        "INSERT INTO tenants (id, name, plan, status, home_region, allowed_regions, \
         deploy_regions, boundary_driver, boundary, policy_text, policy_sha256, tombstone_days, \
         hard_delete_allowed, legal_hold, created_at, updated_at, plan_version, entitlements) \
         VALUES ($1, 'Tenant', 'standard', 'active', 'eu-west', '[\"eu-west\",\"us-east\"]', \
         '[\"eu-west\"]', $2, $3, '', '', 30, 1, 0, 1, 1, 2, '[\"api\",\"sso\"]')",
    )
    .bind(id)
    .bind(driver)
    .bind(boundary)
    .execute(&mut *conn)
    .await
    .expect("insert a stored tenant");
}

async fn stored_text(conn: &mut AnyConnection, id: &str) -> String {
    sqlx::query_scalar(STORED_TEXT)
        .bind(id)
        .fetch_one(&mut *conn)
        .await
        .expect("stored text")
}

#[tokio::test]
async fn stored_tenants_read_typed_and_write_back_byte_identical() {
    let temp = tempfile::tempdir().expect("temp dir");
    for (url, postgres) in stores(temp.path(), "tenants").await {
        let store = Db::connect(&url, PoolOptions::default())
            .await
            .expect("store");
        let mut conn = store.writer().acquire().await.expect("connection");
        for (id, driver, boundary) in ROWS {
            insert_raw(&mut conn, id, driver, boundary).await;
            let before = stored_text(&mut conn, id).await;
            let tenant_id = TenantId::parse(id).expect("id");
            let row = tenants::load(&mut conn, &tenant_id)
                .await
                .expect("read")
                .expect("there");
            assert_eq!(row.id, tenant_id);
            assert_eq!(row.status, TenantStatus::Active);
            assert_eq!(row.boundary_driver.as_str(), driver);
            assert_eq!(
                row.boundary.as_ref().map(BoundarySpec::kind).is_none(),
                boundary == "{}"
            );
            tenants::update(&mut conn, &row).await.expect("write back");
            assert_eq!(stored_text(&mut conn, id).await, before, "{id}");
            assert!(before.contains(boundary), "{before}");
        }
        let all = tenants::list(&mut conn, None).await.expect("list");
        assert_eq!(all.len(), ROWS.len());
        let ids: Vec<String> = tenants::ids(&mut conn)
            .await
            .expect("ids")
            .into_iter()
            .map(TenantId::into_string)
            .collect();
        assert_eq!(
            ids,
            ["dir-tenant", "hook-tenant", "new-tenant", "pg-tenant"]
        );
        let hook = TenantId::parse("hook-tenant").expect("id");
        let status = tenants::status_of(&mut conn, &hook).await.expect("status");
        assert_eq!(status, Some(TenantStatus::Active));
        let row = tenants::load(&mut conn, &hook).await.expect("read");
        assert_eq!(
            row.map(|r| r.boundary_driver),
            Some(BoundaryDriverKind::Webhook)
        );
        drop(conn);
        store.close().await;
        if let Some((server, database)) = postgres {
            db::drop_postgres_database(&server, &database)
                .await
                .expect("drop");
        }
    }
}

#[tokio::test]
async fn a_boundary_not_written_by_this_build_is_corrupt_not_rewritten() {
    let temp = tempfile::tempdir().expect("temp dir");
    let store = Db::connect(&db::sqlite_url_in(temp.path()), PoolOptions::default())
        .await
        .expect("store");
    let mut conn = store.writer().acquire().await.expect("connection");
    insert_raw(
        &mut conn,
        "odd-tenant",
        "directory",
        r#"{"driver":"directory","path":"/p"}"#,
    )
    .await;
    let id = TenantId::parse("odd-tenant").expect("id");
    let error = tenants::load(&mut conn, &id).await.expect_err("refused");
    assert!(error.to_string().contains("tenant boundary"), "{error}");
}
