//! Test support shared by the integration suites of core, server and the binary, so each
//! suite's `support.rs` keeps only what is its own (an `App` node, a server on port 0, a child
//! process): fresh PostgreSQL databases ([`postgres`]), usage event builders and signatures
//! ([`events`]), and the service layer opened on a temporary store ([`store`]).
//!
//! Test-only by design: it panics on failures a test should stop at, and only the suites'
//! dev-dependencies name it.

pub mod events;
pub mod postgres;
pub mod store;
