//! The Cedar actions, one variant each: the service layer names an action by type, so a typo is
//! a compile error rather than a request that no policy permits. `policies/schema.cedarschema`
//! declares the same list; a test in `companyos-core` checks that the two agree.

use std::fmt;

/// One action of the Cedar schema (`CompanyOS::Action::"<name>"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    ApprovalApprove,
    ApprovalExpire,
    ApprovalRead,
    ApprovalReject,
    AuditRead,
    AuthzCheck,
    ConsoleLogin,
    EvidenceCreate,
    EvidenceRead,
    LedgerRead,
    MeterCreate,
    MeteringCoverageUpdate,
    MeteringDeclare,
    MeteringRead,
    MetricsRead,
    OperatorCreate,
    OperatorRead,
    OperatorRevoke,
    PlanRead,
    PlanUpdate,
    PolicyRead,
    QuotaTopUp,
    SourceCreate,
    SourceRead,
    StatementCreate,
    StatementRead,
    TenantCreate,
    TenantDelete,
    TenantDisclose,
    TenantPlanChange,
    TenantPurge,
    TenantReactivate,
    TenantRead,
    TenantRegionsUpdate,
    TenantRestore,
    TenantRetentionUpdate,
    TenantRetry,
    TenantSubjectsUpdate,
    TenantSuspend,
    TenantWorkloadsUpdate,
    UsageIngest,
    UsageRead,
}

impl Action {
    /// Every action, in the schema's alphabetical order.
    pub const ALL: [Action; 42] = [
        Action::ApprovalApprove,
        Action::ApprovalExpire,
        Action::ApprovalRead,
        Action::ApprovalReject,
        Action::AuditRead,
        Action::AuthzCheck,
        Action::ConsoleLogin,
        Action::EvidenceCreate,
        Action::EvidenceRead,
        Action::LedgerRead,
        Action::MeterCreate,
        Action::MeteringCoverageUpdate,
        Action::MeteringDeclare,
        Action::MeteringRead,
        Action::MetricsRead,
        Action::OperatorCreate,
        Action::OperatorRead,
        Action::OperatorRevoke,
        Action::PlanRead,
        Action::PlanUpdate,
        Action::PolicyRead,
        Action::QuotaTopUp,
        Action::SourceCreate,
        Action::SourceRead,
        Action::StatementCreate,
        Action::StatementRead,
        Action::TenantCreate,
        Action::TenantDelete,
        Action::TenantDisclose,
        Action::TenantPlanChange,
        Action::TenantPurge,
        Action::TenantReactivate,
        Action::TenantRead,
        Action::TenantRegionsUpdate,
        Action::TenantRestore,
        Action::TenantRetentionUpdate,
        Action::TenantRetry,
        Action::TenantSubjectsUpdate,
        Action::TenantSuspend,
        Action::TenantWorkloadsUpdate,
        Action::UsageIngest,
        Action::UsageRead,
    ];

    /// The action's name in the schema and in audit records, e.g. `tenant.suspend`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::ApprovalApprove => "approval.approve",
            Action::ApprovalExpire => "approval.expire",
            Action::ApprovalRead => "approval.read",
            Action::ApprovalReject => "approval.reject",
            Action::AuditRead => "audit.read",
            Action::AuthzCheck => "authz.check",
            Action::ConsoleLogin => "console.login",
            Action::EvidenceCreate => "evidence.create",
            Action::EvidenceRead => "evidence.read",
            Action::LedgerRead => "ledger.read",
            Action::MeterCreate => "meter.create",
            Action::MeteringCoverageUpdate => "metering.coverage.update",
            Action::MeteringDeclare => "metering.declare",
            Action::MeteringRead => "metering.read",
            Action::MetricsRead => "metrics.read",
            Action::OperatorCreate => "operator.create",
            Action::OperatorRead => "operator.read",
            Action::OperatorRevoke => "operator.revoke",
            Action::PlanRead => "plan.read",
            Action::PlanUpdate => "plan.update",
            Action::PolicyRead => "policy.read",
            Action::QuotaTopUp => "quota.top_up",
            Action::SourceCreate => "source.create",
            Action::SourceRead => "source.read",
            Action::StatementCreate => "statement.create",
            Action::StatementRead => "statement.read",
            Action::TenantCreate => "tenant.create",
            Action::TenantDelete => "tenant.delete",
            Action::TenantDisclose => "tenant.disclose",
            Action::TenantPlanChange => "tenant.plan_change",
            Action::TenantPurge => "tenant.purge",
            Action::TenantReactivate => "tenant.reactivate",
            Action::TenantRead => "tenant.read",
            Action::TenantRegionsUpdate => "tenant.regions.update",
            Action::TenantRestore => "tenant.restore",
            Action::TenantRetentionUpdate => "tenant.retention.update",
            Action::TenantRetry => "tenant.retry",
            Action::TenantSubjectsUpdate => "tenant.subjects.update",
            Action::TenantSuspend => "tenant.suspend",
            Action::TenantWorkloadsUpdate => "tenant.workloads.update",
            Action::UsageIngest => "usage.ingest",
            Action::UsageRead => "usage.read",
        }
    }

    /// The action named `name`, if the schema has one.
    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL
            .into_iter()
            .find(|action| action.as_str() == name)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Action;

    #[test]
    fn names_are_distinct_and_parse_back() {
        let mut names: Vec<&str> = Action::ALL.iter().map(|action| action.as_str()).collect();
        for action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Some(action));
        }
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "two actions share a name");
        assert_eq!(Action::parse("tenant.fly"), None);
        assert_eq!(Action::parse(""), None);
    }
}
