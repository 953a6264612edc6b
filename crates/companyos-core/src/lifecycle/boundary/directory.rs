//! The `directory` boundary driver: a directory per tenant, mode 0700, holding the tenant's own
//! SQLite database and its alert rules.

use super::*;

impl BoundaryDriver for DirectoryDriver {
    async fn create(
        &self,
        cx: BoundaryContext<'_>,
        alert_rules: &str,
    ) -> Result<BoundarySpec, StepError> {
        let dir = tenant_dir(cx.data_dir, cx.tenant_id);
        create_directory_boundary(&dir, cx.tenant_id, alert_rules).await?;
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
    ) -> Result<Value, StepError> {
        let marker = tenant_dir(cx.data_dir, cx.tenant_id).join("SUSPENDED");
        if allowed {
            match tokio::fs::remove_file(&marker).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StepError::io("remove the SUSPENDED marker", &e)),
            }
        } else {
            tokio::fs::write(&marker, format!("{reason}\n"))
                .await
                .map_err(|e| StepError::io("write the SUSPENDED marker", &e))?;
        }
        Ok(json!({"marker": marker.display().to_string(), "access": allowed}))
    }

    async fn remove(
        &self,
        _spec: &BoundarySpec,
        cx: BoundaryContext<'_>,
    ) -> Result<Value, StepError> {
        let dir = tenant_dir(cx.data_dir, cx.tenant_id);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StepError::Failed(format!("remove {}: {e}", dir.display())));
            }
        }
        Ok(json!({"removed": dir.display().to_string()}))
    }
}

/// Creates the directory (mode 0700), its alert rules and its SQLite database. A full or
/// failing disk is a temporary failure ([`StepError::io`]); the messages are the step log's.
async fn create_directory_boundary(
    dir: &Path,
    tenant_id: &str,
    alert_rules: &str,
) -> Result<(), StepError> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir_owned = dir.to_owned();
    let rules = alert_rules.to_owned();
    tokio::task::spawn_blocking(move || -> Result<(), StepError> {
        std::fs::create_dir_all(&dir_owned)
            .map_err(|e| StepError::io(&format!("create {}", dir_owned.display()), &e))?;
        std::fs::set_permissions(&dir_owned, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| StepError::io(&format!("protect {}", dir_owned.display()), &e))?;
        std::fs::write(dir_owned.join("alert-rules.yml"), rules)
            .map_err(|e| StepError::io("write alert rules", &e))?;
        Ok(())
    })
    .await
    .map_err(|e| StepError::Failed(e.to_string()))??;
    let url = format!("sqlite://{}?mode=rwc", dir.join("tenant.db").display());
    let mut conn = sqlx::AnyConnection::connect(&url)
        .await
        .map_err(|e| tenant_database_error("open tenant database", e))?;
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
            .map_err(|e| tenant_database_error("initialise tenant database", e))?;
    }
    conn.close()
        .await
        .map_err(|e| StepError::Failed(e.to_string()))?;
    Ok(())
}

/// An error of the tenant's own SQLite database: temporary when its disk is full or failing.
fn tenant_database_error(doing: &str, error: sqlx::Error) -> StepError {
    let message = format!("{doing}: {error}");
    match StepError::database(error) {
        StepError::Unavailable(_) => StepError::Unavailable(message),
        StepError::Failed(_) => StepError::Failed(message),
    }
}
