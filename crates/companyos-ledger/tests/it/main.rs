//! Integration tests of the ledger core: published test vectors (RFC 6962 / C2SP signed notes /
//! RFC 8785), property tests against a naive RFC 9162 reference, the tenant verifier's steps,
//! fuzz regressions and the worked example of `docs/spec/ledger.md`.
#![allow(clippy::unwrap_used)]

mod common;
mod jcs;
mod notes;
mod properties;
mod reference;
mod regressions;
mod spec_example;
mod usage_events;
mod vectors;
mod verify_example;
