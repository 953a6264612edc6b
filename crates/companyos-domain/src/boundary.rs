//! Tenant isolation boundaries as data: what each driver (`directory`, `postgres`, `webhook`)
//! created, in the JSON shape the tenant row, the dossier and the creation answer carry
//! (`{"driver": ..., ...}`). The drivers themselves do I/O and live in the service layer; here
//! the spec is read once, so no driver looks members up by name.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The boundary drivers, by the name settings and stored rows (`tenants.boundary_driver`) give
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BoundaryDriverKind {
    Directory,
    Postgres,
    Webhook,
}

impl BoundaryDriverKind {
    /// The driver's name, as settings and stored documents spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Directory => "directory",
            Self::Postgres => "postgres",
            Self::Webhook => "webhook",
        }
    }

    /// The driver named `text`, if this build has it.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "directory" => Some(Self::Directory),
            "postgres" => Some(Self::Postgres),
            "webhook" => Some(Self::Webhook),
            _ => None,
        }
    }
}

impl fmt::Display for BoundaryDriverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The credentials of a `postgres` boundary's login role: shown once, in the creation answer,
/// never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundaryCredentials {
    pub user: String,
    pub password: String,
}

/// A tenant's boundary. Serialized with the driver's name in `driver` and the members in the
/// order the stored documents have always had; deserialized strictly (every member a driver
/// writes, nothing else), so a stored boundary that reads also writes back byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "driver", rename_all = "lowercase", deny_unknown_fields)]
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
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credentials: Option<BoundaryCredentials>,
    },
    /// An external provisioner, told through the outbox; `state` moves from `requested` to
    /// `ready` or `failed` when it calls back, and `provisioner_details` is then what the
    /// provisioner said (any JSON, kept as it came).
    Webhook {
        provisioner: String,
        state: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provisioner_details: Option<Value>,
    },
}

impl BoundarySpec {
    /// The driver's name, as settings and stored documents spell it.
    pub fn driver(&self) -> &'static str {
        self.kind().as_str()
    }

    /// The driver that created it.
    pub fn kind(&self) -> BoundaryDriverKind {
        match self {
            Self::Directory { .. } => BoundaryDriverKind::Directory,
            Self::Postgres { .. } => BoundaryDriverKind::Postgres,
            Self::Webhook { .. } => BoundaryDriverKind::Webhook,
        }
    }

    /// The login credentials of a `postgres` boundary, taken out: they are shown once and never
    /// stored or logged.
    pub fn take_credentials(&mut self) -> Option<BoundaryCredentials> {
        match self {
            Self::Postgres { credentials, .. } => credentials.take(),
            _ => None,
        }
    }

    /// Reads a stored boundary (`tenants.boundary`). `None` for `{}`, the boundary of a tenant
    /// whose provisioning never finished. Anything else must be a boundary in exactly the form
    /// [`BoundarySpec::stored_text`] writes, so that reading and writing it back loses nothing
    /// and changes no byte; the error says what differs.
    pub fn from_stored(text: &str) -> Result<Option<Self>, StoredBoundaryError> {
        if text == NO_BOUNDARY_TEXT {
            return Ok(None);
        }
        let spec: Self =
            serde_json::from_str(text).map_err(|e| StoredBoundaryError(e.to_string()))?;
        if spec.holds_credentials() {
            return Err(StoredBoundaryError("holds credentials".to_owned()));
        }
        let written = Self::stored_text(Some(&spec));
        if written != text {
            return Err(StoredBoundaryError(format!(
                "would be written back as {written}, not as stored"
            )));
        }
        Ok(Some(spec))
    }

    /// The stored text of a boundary (`{}` for none): compact JSON, the driver first, the
    /// members in the order the drivers have always written them. Credentials are never part
    /// of it.
    pub fn stored_text(spec: Option<&Self>) -> String {
        match spec {
            None => NO_BOUNDARY_TEXT.to_owned(),
            Some(spec) => {
                let mut stored = spec.clone();
                stored.take_credentials();
                match serde_json::to_string(&stored) {
                    Ok(text) => text,
                    // Strings, numbers and JSON values that came from JSON always serialize.
                    Err(error) => unreachable!("a boundary spec serializes: {error}"),
                }
            }
        }
    }

    /// Whether this is a `postgres` boundary carrying credentials.
    fn holds_credentials(&self) -> bool {
        matches!(
            self,
            Self::Postgres {
                credentials: Some(_),
                ..
            }
        )
    }
}

/// The stored text of a tenant without a boundary.
pub const NO_BOUNDARY_TEXT: &str = "{}";

/// A stored boundary that is not one this build writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored boundary: {0}")]
pub struct StoredBoundaryError(String);

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
            provisioner_details: None,
        };
        assert_eq!(
            serde_json::to_value(&webhook)?,
            json!({"driver": "webhook", "provisioner": "https://p.example", "state": "requested"})
        );
        Ok(())
    }

    /// One stored boundary of each driver, as the drivers and the webhook callback write
    /// them: each reads, and writes back byte for byte. (The provisioner's details keep their
    /// members in the order received only where serde_json's `preserve_order` is on, as in the
    /// product through Cedar; here, alone, its objects are written sorted, so the sample is.)
    const STORED: [&str; 5] = [
        r#"{"driver":"directory","path":"/srv/data/tenants/acme","mode":"0700","database":"/srv/data/tenants/acme/tenant.db"}"#,
        r#"{"driver":"postgres","database":"companyos","schema":"tenant_acme","role":"cos_1a2b3c4d_acme","connection_limit":5}"#,
        r#"{"driver":"webhook","provisioner":"https://provisioner.example/boundaries","state":"requested"}"#,
        r#"{"driver":"webhook","provisioner":"https://p.example","state":"ready","provisioner_details":{"a":{},"cluster":"eu-1","nodes":[3,1.50,"x\u0001"],"z":null}}"#,
        r#"{"driver":"webhook","provisioner":"https://p.example","state":"failed","provisioner_details":"quota exceeded"}"#,
    ];

    #[test]
    fn stored_boundaries_read_and_write_back_byte_identical() -> Result<(), StoredBoundaryError> {
        for text in STORED {
            let spec = BoundarySpec::from_stored(text)?;
            assert!(spec.is_some(), "{text}");
            assert_eq!(BoundarySpec::stored_text(spec.as_ref()), text);
        }
        assert_eq!(BoundarySpec::from_stored("{}")?, None);
        assert_eq!(BoundarySpec::stored_text(None), "{}");
        Ok(())
    }

    #[test]
    fn refuses_stored_boundaries_it_would_not_write_back() {
        for text in [
            r#"{"driver":"postgres","schema":"s"}"#,
            r#"{"driver":"directory","path":"/p","mode":"0700","database":"/p/t.db","extra":1}"#,
            r#"{"path":"/p","driver":"directory","mode":"0700","database":"/p/t.db"}"#,
            r#"{"driver":"directory", "path":"/p","mode":"0700","database":"/p/t.db"}"#,
            r#"{"driver":"postgres","database":"d","schema":"s","role":"r","connection_limit":5,"credentials":{"user":"r","password":"p"}}"#,
            r#"{"driver":"nfs"}"#,
            "null",
        ] {
            assert!(BoundarySpec::from_stored(text).is_err(), "{text}");
        }
    }

    #[test]
    fn stored_text_never_holds_credentials() {
        let spec = BoundarySpec::Postgres {
            database: "d".to_owned(),
            schema: "s".to_owned(),
            role: "r".to_owned(),
            connection_limit: 5,
            credentials: Some(BoundaryCredentials {
                user: "r".to_owned(),
                password: "p".to_owned(),
            }),
        };
        assert_eq!(
            BoundarySpec::stored_text(Some(&spec)),
            r#"{"driver":"postgres","database":"d","schema":"s","role":"r","connection_limit":5}"#
        );
    }
}
