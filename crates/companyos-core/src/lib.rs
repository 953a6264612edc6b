//! The CompanyOS service layer: the one place where tenants are provisioned, metered, suspended,
//! deleted and purged, with Cedar authorization, an audit record and evidence for every step.
//! HTTP, CLI and console are thin adapters over [`App`].

pub mod app;
pub mod approvals;
pub mod audit;
pub mod authz;
pub mod billing;
pub mod clock;
pub mod console;
pub mod error;
pub mod evidence;
pub mod jobs;
pub mod ledger;
pub mod lifecycle;
pub mod metering;
pub mod metrics;
pub mod operators;
pub mod settings;
pub mod statements;
pub mod util;

// The store is its own crate (issue 15); its modules keep their old paths here so that the
// services read `crate::db`, `crate::bundles` as before.
pub use companyos_store::{bundles, db, dedupe, key_runs, ledger_store};

pub use app::{Actor, App, InitReport};
pub use error::ServiceError;
pub use settings::Settings;
