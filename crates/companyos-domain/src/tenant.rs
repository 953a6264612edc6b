//! The tenant lifecycle state machine (CONTRACT §4): provisioning -> active <-> suspended;
//! active or suspended -> deleting (a restorable tombstone) -> purged; `*_failed` states where a
//! step failed, with retry. Every transition is idempotent; an illegal one names the state.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TenantStatus {
    Provisioning,
    ProvisioningFailed,
    Active,
    Suspended,
    Deleting,
    PurgeFailed,
    Purged,
}

impl TenantStatus {
    pub const ALL: [TenantStatus; 7] = [
        TenantStatus::Provisioning,
        TenantStatus::ProvisioningFailed,
        TenantStatus::Active,
        TenantStatus::Suspended,
        TenantStatus::Deleting,
        TenantStatus::PurgeFailed,
        TenantStatus::Purged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Provisioning => "provisioning",
            TenantStatus::ProvisioningFailed => "provisioning_failed",
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
            TenantStatus::Deleting => "deleting",
            TenantStatus::PurgeFailed => "purge_failed",
            TenantStatus::Purged => "purged",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the tenant's own credentials may be used (API keys, forward auth, sessions).
    pub fn allows_tenant_access(self) -> bool {
        self == TenantStatus::Active
    }

    /// Whether the tenant is tombstoned or gone: its usage is no longer accepted.
    pub fn is_deleted(self) -> bool {
        matches!(
            self,
            TenantStatus::Deleting | TenantStatus::PurgeFailed | TenantStatus::Purged
        )
    }
}

impl fmt::Display for TenantStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operator-initiated lifecycle action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LifecycleAction {
    Suspend,
    Reactivate,
    Delete,
    Restore,
    Purge,
}

impl LifecycleAction {
    pub const ALL: [LifecycleAction; 5] = [
        LifecycleAction::Suspend,
        LifecycleAction::Reactivate,
        LifecycleAction::Delete,
        LifecycleAction::Restore,
        LifecycleAction::Purge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleAction::Suspend => "suspend",
            LifecycleAction::Reactivate => "reactivate",
            LifecycleAction::Delete => "delete",
            LifecycleAction::Restore => "restore",
            LifecycleAction::Purge => "purge",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == text)
    }

    /// The Cedar action that decides this transition (`tenant.suspend`, ...).
    pub fn cedar_action(self) -> crate::Action {
        match self {
            LifecycleAction::Suspend => crate::Action::TenantSuspend,
            LifecycleAction::Reactivate => crate::Action::TenantReactivate,
            LifecycleAction::Delete => crate::Action::TenantDelete,
            LifecycleAction::Restore => crate::Action::TenantRestore,
            LifecycleAction::Purge => crate::Action::TenantPurge,
        }
    }

    /// Whether the action needs `confirm` equal to the tenant id.
    pub fn needs_confirmation(self) -> bool {
        matches!(self, LifecycleAction::Delete | LifecycleAction::Purge)
    }

    /// Whether the action cannot be undone.
    pub fn is_irreversible(self) -> bool {
        self == LifecycleAction::Purge
    }
}

impl fmt::Display for LifecycleAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of applying an action to a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: TenantStatus,
    pub to: TenantStatus,
}

impl Transition {
    /// False when the tenant was already in the target state (an idempotent repeat).
    pub fn changes(&self) -> bool {
        self.from != self.to
    }
}

/// The action is not allowed from the tenant's current status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} a tenant that is {current}")]
pub struct IllegalTransition {
    pub action: LifecycleAction,
    pub current: TenantStatus,
}

/// Applies `action` to `current`. `status_before_delete` is where `restore` returns to.
pub fn transition(
    current: TenantStatus,
    action: LifecycleAction,
    status_before_delete: Option<TenantStatus>,
) -> Result<Transition, IllegalTransition> {
    use LifecycleAction as A;
    use TenantStatus as S;
    let to = match (action, current) {
        (A::Suspend, S::Active | S::Suspended) => S::Suspended,
        (A::Reactivate, S::Suspended | S::Active) => S::Active,
        (A::Delete, S::Active | S::Suspended | S::Deleting) => S::Deleting,
        (A::Restore, S::Deleting) => match status_before_delete {
            Some(S::Suspended) => S::Suspended,
            _ => S::Active,
        },
        (A::Purge, S::Deleting | S::PurgeFailed | S::Purged) => S::Purged,
        _ => return Err(IllegalTransition { action, current }),
    };
    Ok(Transition { from: current, to })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_transitions() {
        use LifecycleAction as A;
        use TenantStatus as S;
        assert_eq!(
            transition(S::Active, A::Suspend, None).map(|t| t.to),
            Ok(S::Suspended)
        );
        assert!(
            !transition(S::Suspended, A::Suspend, None)
                .map(|t| t.changes())
                .unwrap_or(true)
        );
        assert!(transition(S::Provisioning, A::Suspend, None).is_err());
        assert_eq!(
            transition(S::Suspended, A::Delete, None).map(|t| t.to),
            Ok(S::Deleting)
        );
        assert_eq!(
            transition(S::Deleting, A::Restore, Some(S::Suspended)).map(|t| t.to),
            Ok(S::Suspended)
        );
        assert!(transition(S::Active, A::Restore, None).is_err());
        assert!(transition(S::Active, A::Purge, None).is_err());
        assert!(transition(S::Purged, A::Reactivate, None).is_err());
        assert_eq!(
            transition(S::Purged, A::Purge, None).map(|t| t.changes()),
            Ok(false)
        );
    }
}
