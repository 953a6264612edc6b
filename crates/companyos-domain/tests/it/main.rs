//! Integration tests of the domain crate: the differential tests of the two paths of usage
//! event parsing (the single-pass fast path against the general `Value` path), and the
//! round trip of the stored (packed) forms of events.

mod audit_channel;
mod event_packing;
mod exact_sums;
mod usage_parse_paths;
