//! The CompanyOS store: the database (SQLite or PostgreSQL pools, transactions, migrations), the
//! log storage (heads, leaf and payload bundles, stored subtrees, checkpoints), the dedupe key
//! index, and typed repositories of the rows the services read and write (`tenants`,
//! `approvals`, `operators`, `audit`). It depends on the domain and the ledger maths only; services live in
//! `companyos-core`, which this crate never sees (the crate graph enforces it).

pub mod approvals;
pub mod audit;
pub mod bundles;
pub mod db;
pub mod dedupe;
pub mod key_runs;
pub mod ledger_store;
pub mod operators;
pub mod tenants;
