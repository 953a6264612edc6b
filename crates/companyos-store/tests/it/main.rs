//! The store's integration tests: a real SQLite file and a real PostgreSQL database each (no
//! mocks), through the crate's public surface only, as the service layer uses it.

mod log_storage;
mod tenants;
