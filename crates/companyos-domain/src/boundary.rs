//! Tenant isolation boundaries as data: what each driver (`directory`, `postgres`, `webhook`)
//! created, in the JSON shape the tenant row, the dossier and the creation answer carry
//! (`{"driver": ..., ...}`). The drivers themselves do I/O and live in the service layer; here
//! the spec is read once, so no driver looks members up by name.

use serde::Serialize;
use serde_json::Value;

/// The credentials of a `postgres` boundary's login role: shown once, in the creation answer,
/// never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoundaryCredentials {
    pub user: String,
    pub password: String,
}

/// A tenant's boundary. Serialized with the driver's name in `driver` and the members in the
/// order the stored documents have always had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "driver", rename_all = "lowercase")]
pub enum BoundarySpec {
    /// A directory (mode 0700) with its own SQLite database.
    Directory {
        path: String,
        mode: String,
        database: String,
    },
    /// A schema and a login role that reaches only that schema.
    Postgres {
        database: String,
        schema: String,
        role: String,
        connection_limit: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        credentials: Option<BoundaryCredentials>,
    },
    /// An external provisioner, told through the outbox; `state` moves from `requested` to
    /// `ready` or `failed` when it calls back.
    Webhook { provisioner: String, state: String },
}

impl BoundarySpec {
    /// The driver's name, as settings and stored documents spell it.
    pub fn driver(&self) -> &'static str {
        match self {
            Self::Directory { .. } => "directory",
            Self::Postgres { .. } => "postgres",
            Self::Webhook { .. } => "webhook",
        }
    }

    /// Reads a stored boundary. `None` when it names no driver this build acts on (a tenant
    /// whose provisioning never finished stores `{}`): such a boundary is only told, through
    /// the outbox. A `directory` boundary needs no member (its place follows from the tenant);
    /// a `postgres` one needs its role and schema, and the error names the missing one.
    pub fn from_stored(boundary: &Value) -> Result<Option<Self>, String> {
        let text = |name: &str| boundary.get(name).and_then(Value::as_str);
        let member = |name: &str| text(name).unwrap_or_default().to_owned();
        let required = |name: &str| {
            text(name)
                .map(str::to_owned)
                .ok_or_else(|| format!("boundary has no {name}"))
        };
        Ok(match text("driver") {
            Some("directory") => Some(Self::Directory {
                path: member("path"),
                mode: member("mode"),
                database: member("database"),
            }),
            Some("postgres") => Some(Self::Postgres {
                role: required("role")?,
                schema: required("schema")?,
                database: member("database"),
                connection_limit: boundary
                    .get("connection_limit")
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or_default(),
                credentials: None,
            }),
            Some("webhook") => Some(Self::Webhook {
                provisioner: member("provisioner"),
                state: member("state"),
            }),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serializes_in_the_stored_shape() -> Result<(), serde_json::Error> {
        let postgres = BoundarySpec::Postgres {
            database: "db".to_owned(),
            schema: "tenant_acme".to_owned(),
            role: "cos_x_acme".to_owned(),
            connection_limit: 5,
            credentials: Some(BoundaryCredentials {
                user: "cos_x_acme".to_owned(),
                password: "pw".to_owned(),
            }),
        };
        assert_eq!(
            serde_json::to_value(&postgres)?,
            json!({"driver": "postgres", "database": "db", "schema": "tenant_acme",
                   "role": "cos_x_acme", "connection_limit": 5,
                   "credentials": {"user": "cos_x_acme", "password": "pw"}})
        );
        let webhook = BoundarySpec::Webhook {
            provisioner: "https://p.example".to_owned(),
            state: "requested".to_owned(),
        };
        assert_eq!(
            serde_json::to_value(&webhook)?,
            json!({"driver": "webhook", "provisioner": "https://p.example", "state": "requested"})
        );
        Ok(())
    }

    #[test]
    fn reads_stored_boundaries() {
        assert_eq!(BoundarySpec::from_stored(&json!({})), Ok(None));
        let directory = BoundarySpec::from_stored(&json!({"driver": "directory"}));
        assert_eq!(
            directory.map(|s| s.map(|s| s.driver())),
            Ok(Some("directory"))
        );
        assert_eq!(
            BoundarySpec::from_stored(&json!({"driver": "postgres", "schema": "s"})),
            Err("boundary has no role".to_owned())
        );
    }
}
