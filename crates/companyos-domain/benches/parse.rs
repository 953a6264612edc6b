//! Parsing one usage event: the single-pass fast path beside the general path (strict JSON
//! reader into a `Value`, field rules, RFC 8785 form, digest) on the same bytes in the same run.
//!
//! `cargo bench -p companyos-domain` (results in docs/BENCHMARKS.md).

use std::hint::black_box;

use companyos_domain::usage::UsageEvent;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// The event a service typically sends (210 bytes).
const TYPICAL: &str = r#"{"event_id":"6f1c2a9e-3b4d-4c5e-8f60-718293a4b5c6","tenant_id":"tenant-0001","service":"api","metric":"requests","quantity":"3","unit":"request","timestamp":"2026-12-02T17:40:00.123456Z","request_id":"r123456"}"#;

/// An event with a source, a sequence number, a signature and attributes.
const FULL: &str = r#"{"event_id":"6f1c2a9e-3b4d-4c5e-8f60-718293a4b5c6","tenant_id":"tenant-0001","service":"api","metric":"requests","quantity":"12.5","unit":"request","timestamp":"2026-12-02T17:40:00.123456+01:00","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","source":"api-gateway","source_seq":918273,"source_signature":"c2lnbmF0dXJlIG9mIHRoZSBjYW5vbmljYWwgZm9ybQ==","attributes":{"region":"eu-west-1","plan":"standard"}}"#;

fn parse(c: &mut Criterion) {
    for (name, text) in [("typical", TYPICAL), ("full", FULL)] {
        assert!(
            UsageEvent::parse_bytes_fast(text.as_bytes()).is_some(),
            "the {name} event takes the fast path"
        );
        let mut group = c.benchmark_group(format!("usage event parse ({name})"));
        group.throughput(Throughput::Elements(1));
        group.bench_function("general path", |b| {
            b.iter(|| UsageEvent::parse_bytes_slow(black_box(text.as_bytes())))
        });
        group.bench_function("fast path", |b| {
            b.iter(|| UsageEvent::parse_bytes_fast(black_box(text.as_bytes())))
        });
        group.finish();
    }
}

criterion_group!(benches, parse);
criterion_main!(benches);
