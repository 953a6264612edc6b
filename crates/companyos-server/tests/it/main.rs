//! Integration tests of the HTTP API: a real server on port 0 over a real SQLite file and a
//! real PostgreSQL database, every suite run on both.
#![allow(clippy::unwrap_used)]

mod foundation;
mod ledger;
mod lifecycle;
mod support;
mod usage;
