//! Plans, entitlements and quotas (BILL-1, BILL-2; CONTRACT §9; ADR 0011): the versioned
//! catalog, each tenant's plan history, and (in later modules) quota state, threshold events and
//! forward auth by feature and metric. Reached through [`App::billing`].

mod access;
mod access_cache;
mod assignments;
mod catalog_store;
mod history_cache;
mod plans;
mod quota;
mod quota_seed;
mod quota_usage;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use companyos_domain::catalog::PlanVersion;
use companyos_domain::{PlanName, TenantId};
use time::{Date, OffsetDateTime};

use crate::app::App;

pub use access::{ForwardAuthGrant, ForwardAuthRequest, HARD_QUOTA_POLICY, TopUp};
pub use access_cache::{AccessCache, RefusalCount};
pub use assignments::{Effective, PlanChange, TenantPlan};
pub(crate) use catalog_store::seed;
pub(crate) use history_cache::HistoryCache;
pub use quota::{Entitlements, QuotaEvent, QuotaState};
pub(crate) use quota_usage::GroupUsage;

impl Billing<'_> {
    /// Runs the start-up seed again (version 1 of configured plans without versions, a first
    /// assignment for tenants without a history); idempotent.
    pub async fn seed(&self) -> Result<(), crate::db::StoreError> {
        seed(self.app).await
    }
}

/// The billing capability of an [`App`].
#[derive(Debug, Clone, Copy)]
pub struct Billing<'a> {
    app: &'a App,
}

impl App {
    /// Plans, entitlements and quotas.
    pub fn billing(&self) -> Billing<'_> {
        Billing { app: self }
    }
}

/// A stored plan version with who wrote it and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPlanVersion {
    pub version: PlanVersion,
    /// Lower-case hex SHA-256 of the canonical form.
    pub sha256: String,
    pub created_at: OffsetDateTime,
    pub created_by: String,
}

/// What `PUT /v1/plans/{plan}` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanWrite {
    pub stored: StoredPlanVersion,
    /// False when the body equals the latest version (nothing was written).
    pub created: bool,
}

/// One stretch of days of a tenant under one plan version: `[from, to)` in UTC days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanInForce {
    pub version: PlanVersion,
    pub from: Date,
    /// Exclusive.
    pub to: Date,
}

/// One assignment of a tenant's plan history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignmentRecord {
    pub tenant_id: TenantId,
    pub seq: u64,
    pub plan: PlanName,
    pub version: u32,
    pub effective_from: Date,
    pub assigned_at: OffsetDateTime,
    pub assigned_by: String,
    pub reason: Option<String>,
}

/// Plan versions are immutable, so a version read once is kept for the life of the process
/// (bounded: a catalog is a handful of plans with a few versions each).
#[derive(Debug, Default)]
pub(crate) struct VersionCache {
    versions: Mutex<HashMap<(String, u32), Arc<PlanVersion>>>,
}

/// Versions kept in memory at most; past it the cache starts again.
const VERSION_CACHE_MAX: usize = 4096;

impl VersionCache {
    fn get(&self, plan: &str, version: u32) -> Option<Arc<PlanVersion>> {
        let versions = self.versions.lock().ok()?;
        versions.get(&(plan.to_owned(), version)).cloned()
    }

    fn put(&self, version: Arc<PlanVersion>) {
        if let Ok(mut versions) = self.versions.lock() {
            if versions.len() >= VERSION_CACHE_MAX {
                versions.clear();
            }
            versions.insert((version.plan.as_str().to_owned(), version.version), version);
        }
    }
}
