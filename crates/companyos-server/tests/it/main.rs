//! Integration tests of the HTTP API: a real server on port 0 over a real SQLite file and a
//! real PostgreSQL database, every suite run on both.
#![allow(clippy::unwrap_used)]

mod audit_coverage;
mod billing;
mod billing_quotas;
mod boundaries;
mod checks;
mod console;
mod console_browser;
mod deny_matrix;
mod disclosure;
mod edge;
mod exports;
mod foundation;
mod hooks;
mod ledger;
mod lifecycle;
mod lifecycle_deny;
mod lifecycle_full;
mod malformed_ids;
mod openmeter;
mod statement_pack;
mod statements;
mod store_faults;
mod support;
mod usage;
