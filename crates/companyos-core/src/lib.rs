//! The CompanyOS service layer: the one place where tenants are provisioned, metered, suspended,
//! deleted and purged, with Cedar authorization, an audit record and evidence for every step.
//! HTTP, CLI and console are thin adapters over [`App`].

pub mod app;
pub mod approvals;
pub mod audit;
pub mod auth_failures;
pub mod authz;
pub mod billing;
pub mod bundles;
pub mod clock;
pub mod console;
pub mod day_close;
pub mod db;
pub mod dedupe;
pub mod error;
pub mod evidence;
mod group_commit;
pub mod ingest;
pub mod jobs;
pub mod key_runs;
pub mod keys;
pub mod ledger;
pub mod ledger_store;
pub mod metering;
pub mod metrics;
pub mod minisign;
pub mod outbound;
pub mod outbox;
pub mod provisioning;
pub mod reports;
pub mod secret_files;
pub mod settings;
pub mod statements;
pub mod tenants;
pub mod util;

pub use app::{Actor, App, InitReport};
pub use error::ServiceError;
pub use settings::Settings;
