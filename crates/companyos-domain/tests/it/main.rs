//! Integration tests of the domain crate: the differential tests of the two paths of usage
//! event parsing (the single-pass fast path against the general `Value` path).

mod usage_parse_paths;
