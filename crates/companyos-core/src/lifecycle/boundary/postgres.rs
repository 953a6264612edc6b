//! The `postgres` boundary driver: a schema and a login role per tenant that reaches only that
//! schema, on the PostgreSQL store.

use super::*;

impl BoundaryDriver for PostgresDriver {
    async fn create(
        &self,
        cx: BoundaryContext<'_>,
        _alert_rules: &str,
    ) -> Result<BoundarySpec, StepError> {
        needs_postgres(cx.db)?;
        let conn = cx.conn;
        let database: String = sqlx::query_scalar("SELECT CAST(current_database() AS TEXT)")
            .fetch_one(&mut *conn)
            .await
            .map_err(failed)?;
        let (schema, role) = postgres_names(&database, cx.tenant_id);
        let password = new_token("pw");
        // Identifiers come from a validated tenant id ([a-z0-9_] after mapping) and the
        // password is hex: nothing here can break out of the quoting.
        for statement in [
            format!(
                "CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}' CONNECTION LIMIT 5 \
                 NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT"
            ),
            format!("CREATE SCHEMA \"{schema}\" AUTHORIZATION \"{role}\""),
            format!("REVOKE ALL ON SCHEMA \"{schema}\" FROM PUBLIC"),
            format!("ALTER ROLE \"{role}\" SET search_path = \"{schema}\""),
            format!(
                "CREATE TABLE \"{schema}\".boundary (tenant_id TEXT PRIMARY KEY, created_at TEXT)"
            ),
            format!("ALTER TABLE \"{schema}\".boundary OWNER TO \"{role}\""),
            format!(
                "INSERT INTO \"{schema}\".boundary VALUES ('{}', '{}')",
                cx.tenant_id,
                format_rfc3339(OffsetDateTime::now_utc())
            ),
        ] {
            conn.execute(statement.as_str()).await.map_err(failed)?;
        }
        Ok(BoundarySpec::Postgres {
            database,
            schema,
            credentials: Some(BoundaryCredentials {
                user: role.clone(),
                password,
            }),
            role,
            connection_limit: 5,
        })
    }

    /// The role loses LOGIN and its open sessions end, or gets LOGIN back.
    async fn set_access(
        &self,
        spec: &BoundarySpec,
        cx: BoundaryContext<'_>,
        allowed: bool,
        _reason: &str,
    ) -> Result<Value, StepError> {
        let (role, _) = postgres_boundary(spec, cx.db)?;
        let login = if allowed { "LOGIN" } else { "NOLOGIN" };
        cx.conn
            .execute(format!("ALTER ROLE \"{role}\" {login}").as_str())
            .await?;
        let mut terminated = 0i64;
        if !allowed {
            terminated = sqlx::query_scalar(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE usename = $1",
            )
            .bind(role)
            .fetch_one(&mut *cx.conn)
            .await?;
        }
        Ok(json!({"role": role, "login": allowed, "sessions_terminated": terminated}))
    }

    async fn remove(
        &self,
        spec: &BoundarySpec,
        cx: BoundaryContext<'_>,
    ) -> Result<Value, StepError> {
        let (role, schema) = postgres_boundary(spec, cx.db)?;
        let conn = cx.conn;
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1")
            .bind(role)
            .execute(&mut *conn)
            .await
            .map_err(failed)?;
        for statement in [
            format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"),
            format!("DROP ROLE IF EXISTS \"{role}\""),
        ] {
            conn.execute(statement.as_str()).await.map_err(failed)?;
        }
        Ok(json!({"dropped_schema": schema, "dropped_role": role}))
    }
}

fn needs_postgres(db: &Db) -> Result<(), StepError> {
    if db.backend() != Backend::Postgres {
        return Err(StepError::Failed(
            "the postgres driver needs the PostgreSQL store".to_owned(),
        ));
    }
    Ok(())
}

/// The role and schema of a `postgres` boundary, on a PostgreSQL store.
fn postgres_boundary<'a>(spec: &'a BoundarySpec, db: &Db) -> Result<(&'a str, &'a str), StepError> {
    needs_postgres(db)?;
    match spec {
        BoundarySpec::Postgres { role, schema, .. } => Ok((role, schema)),
        other => Err(StepError::Failed(format!(
            "a {} boundary is no postgres boundary",
            other.driver()
        ))),
    }
}
