//! Fuzzes the usage event parser (`UsageEvent::parse_bytes`) and the strict JSON reader with RFC
//! 8785 canonicalisation: canonicalising a parsed document, re-parsing the result and
//! canonicalising again must give identical bytes, and a parsed event's canonical form and
//! digest must be those of its own canonical text. Differentially, the single-pass fast path
//! (`parse_bytes_fast`) may only answer with exactly the general path's (`parse_bytes_slow`) `Ok`
//! value, and `parse_bytes` must give exactly the general path's result, error or not.
#![no_main]

use companyos_domain::usage::UsageEvent;
use companyos_ledger::jcs::{canonicalize, parse_strict};
use companyos_ledger::usage_event::{EventDigest, canonical_form};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let slow = UsageEvent::parse_bytes_slow(data);
    if let Some(fast) = UsageEvent::parse_bytes_fast(data) {
        assert_eq!(
            Ok(&fast),
            slow.as_ref(),
            "the fast path answered differently from the general path"
        );
    }
    assert_eq!(
        UsageEvent::parse_bytes(data),
        slow,
        "parse_bytes differs from the general path"
    );
    if let Ok(event) = slow {
        assert_eq!(
            event.digest,
            EventDigest::of_canonical(event.canonical.as_bytes())
        );
        let reparsed = parse_strict(event.canonical.as_bytes()).expect("canonical form parses");
        let object = reparsed.as_object().expect("an event is an object");
        assert_eq!(
            canonical_form(object).expect("canonicalises"),
            event.canonical
        );
    }
    if let Ok(value) = parse_strict(data) {
        if let Ok(first) = canonicalize(&value) {
            let reparsed = parse_strict(first.as_bytes()).expect("canonical JSON parses");
            let second = canonicalize(&reparsed).expect("canonical JSON canonicalises");
            assert_eq!(first, second, "canonicalisation is not idempotent");
        }
    }
});
