//! Integration tests of the `companyos` binary: the CLI surface (init, serve, exit codes,
//! client commands, store verifications), crash recovery with the SDK (kill -9 mid-send), and
//! forward auth behind a real nginx `auth_request`.
#![allow(clippy::unwrap_used)]

mod cli;
mod crash;
mod help;
mod log_sink;
mod nginx;
mod plans;
mod readme;
mod statements;
mod store_safety;
mod support;
