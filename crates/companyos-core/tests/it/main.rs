//! Integration tests of the service layer's metering (issues 4 and 5, MET-1 to MET-4): the
//! `App` opened on a real SQLite file and on a fresh PostgreSQL database, every test on both.
#![allow(clippy::unwrap_used)]

mod access_cache;
mod billing;
mod concurrency;
mod coverage;
mod day_close;
mod dedupe;
mod integrity;
mod leases;
mod model;
mod properties;
mod signatures;
mod statements_property;
mod support;
