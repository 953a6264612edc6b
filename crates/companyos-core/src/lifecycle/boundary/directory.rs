//! The `directory` boundary driver: a directory per tenant, mode 0700, holding the tenant's own
//! SQLite database and its alert rules.

use super::*;

impl BoundaryDriver for DirectoryDriver {
    async fn create(
        &self,
        cx: BoundaryContext<'_>,
        alert_rules: &str,
    ) -> Result<BoundarySpec, BoundaryError> {
        let dir = tenant_dir(cx.data_dir, cx.tenant_id);
        create_directory_boundary(&dir, cx.tenant_id, alert_rules)
            .await
            .map_err(BoundaryError::Failed)?;
        Ok(BoundarySpec::Directory {
            path: dir.display().to_string(),
            mode: "0700".to_owned(),
            database: dir.join("tenant.db").display().to_string(),
        })
    }

    /// A `SUSPENDED` marker the tenant's workloads check.
    async fn set_access(
        &self,
        _spec: &BoundarySpec,
        cx: BoundaryContext<'_>,
        allowed: bool,
        reason: &str,
    ) -> Result<Value, BoundaryError> {
        let marker = tenant_dir(cx.data_dir, cx.tenant_id).join("SUSPENDED");
        if allowed {
            match tokio::fs::remove_file(&marker).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(BoundaryError::io("remove the SUSPENDED marker", &e)),
            }
        } else {
            tokio::fs::write(&marker, format!("{reason}\n"))
                .await
                .map_err(|e| BoundaryError::io("write the SUSPENDED marker", &e))?;
        }
        Ok(json!({"marker": marker.display().to_string(), "access": allowed}))
    }

    async fn remove(
        &self,
        _spec: &BoundarySpec,
        cx: BoundaryContext<'_>,
    ) -> Result<Value, BoundaryError> {
        let dir = tenant_dir(cx.data_dir, cx.tenant_id);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(BoundaryError::Failed(format!(
                    "remove {}: {e}",
                    dir.display()
                )));
            }
        }
        Ok(json!({"removed": dir.display().to_string()}))
    }
}

async fn create_directory_boundary(
    dir: &Path,
    tenant_id: &str,
    alert_rules: &str,
) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir_owned = dir.to_owned();
    let rules = alert_rules.to_owned();
    tokio::task::spawn_blocking(move || -> Result<(), String> {
        std::fs::create_dir_all(&dir_owned)
            .map_err(|e| format!("create {}: {e}", dir_owned.display()))?;
        std::fs::set_permissions(&dir_owned, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("protect {}: {e}", dir_owned.display()))?;
        std::fs::write(dir_owned.join("alert-rules.yml"), rules)
            .map_err(|e| format!("write alert rules: {e}"))?;
        Ok(())
    })
    .await
    .map_err(|e| e.to_string())??;
    let url = format!("sqlite://{}?mode=rwc", dir.join("tenant.db").display());
    let mut conn = sqlx::AnyConnection::connect(&url)
        .await
        .map_err(|e| format!("open tenant database: {e}"))?;
    for statement in [
        "PRAGMA journal_mode = WAL".to_owned(),
        "CREATE TABLE IF NOT EXISTS boundary (tenant_id TEXT PRIMARY KEY, created_at TEXT)"
            .to_owned(),
        format!(
            "INSERT INTO boundary (tenant_id, created_at) VALUES ('{tenant_id}', '{}') \
             ON CONFLICT (tenant_id) DO NOTHING",
            format_rfc3339(OffsetDateTime::now_utc())
        ),
    ] {
        conn.execute(statement.as_str())
            .await
            .map_err(|e| format!("initialise tenant database: {e}"))?;
    }
    conn.close().await.map_err(|e| e.to_string())?;
    Ok(())
}
