//! Operator roles (CONTRACT §3). What each role may do is decided by the Cedar policies in
//! `policies/`, never here: this is only the closed list of names.

use std::fmt;

use crate::error::FieldError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Operator,
    Approver,
    Admin,
    Auditor,
    Billing,
    Ingest,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Viewer,
        Role::Operator,
        Role::Approver,
        Role::Admin,
        Role::Auditor,
        Role::Billing,
        Role::Ingest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Approver => "approver",
            Role::Admin => "admin",
            Role::Auditor => "auditor",
            Role::Billing => "billing",
            Role::Ingest => "ingest",
        }
    }

    pub fn parse(text: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| {
                FieldError::new(
                    "role",
                    "must be one of viewer, operator, approver, admin, auditor, billing, ingest",
                )
            })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
