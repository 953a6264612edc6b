//! Random usage streams and an independent model of what ingestion must answer and keep
//! (CONTRACT §5, §6): new events, exact resends, conflicting resends, every validation rule
//! broken in turn, late events, `source_seq` gaps, all in random batch splits.

use std::collections::BTreeMap;
use std::str::FromStr as _;

use proptest::prelude::*;
use proptest::sample::Index;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Number, Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, OffsetDateTime, UtcOffset};

use crate::support::{START, day_of, digest_of, sign, source_key};

/// (service, metric, unit) of the events of a key.
pub const TRIPLES: [(&str, &str, &str); 3] = [
    ("api", "requests", "request"),
    ("api", "bytes_out", "byte"),
    ("storage", "gib.hours", "GiB-hours"),
];

/// Registered sources: (id, service, key seed). Events of a service with a source use its
/// source.
pub const SOURCES: [(&str, &str, u8); 3] = [
    ("gw-api", "api", 11),
    ("gw-storage", "storage", 12),
    ("gw-billing", "billing", 13),
];

/// The seed of a key no source is registered with.
pub const STRANGER_SEED: u8 = 99;

/// The late window of the default settings, in minutes.
const LATE_MINUTES: i64 = 48 * 60;

fn source_of(service: &str) -> (&'static str, u8) {
    SOURCES
        .iter()
        .find(|(_, s, _)| *s == service)
        .map(|(id, _, seed)| (*id, *seed))
        .expect("a source for the service")
}

/// How a quantity is sent.
#[derive(Debug, Clone)]
pub enum Quantity {
    /// A decimal string, as written (trailing zeros kept).
    Text(Decimal),
    /// A JSON number (its canonical digits).
    Number(Decimal),
}

impl Quantity {
    fn value(&self) -> Decimal {
        match self {
            Quantity::Text(d) | Quantity::Number(d) => *d,
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Quantity::Text(d) => json!(d.to_string()),
            Quantity::Number(d) => {
                Value::Number(Number::from_str(&d.normalize().to_string()).expect("number"))
            }
        }
    }
}

/// One content of a key (a key with several contents has conflicts).
#[derive(Debug, Clone)]
pub struct VariantSpec {
    pub quantity: Quantity,
    /// Offset of the timestamp from [`START`] (the clock), in minutes.
    pub minutes: i64,
    /// The UTC offset the timestamp is written with, in minutes.
    pub tz_minutes: i32,
    /// 0: request_id, 1: trace_id, 2: both.
    pub ident: u8,
    pub request_n: u8,
    /// Send the (correct) digest.
    pub digest: bool,
    /// Sign with the source's key (when the key has a source).
    pub signed: bool,
}

/// One event id of the stream.
#[derive(Debug, Clone)]
pub struct KeySpec {
    pub triple: usize,
    pub sourced: bool,
    /// How far its `source_seq` is from the previous one of its source (> 1 leaves a gap).
    pub seq_step: u64,
    pub variants: Vec<VariantSpec>,
}

/// A broken §5 rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    EventIdChars,
    EventIdTooLong,
    EventIdEmpty,
    TenantUnknown,
    TenantMalformed,
    Service,
    Metric,
    QuantityNegative,
    QuantityScale,
    QuantityType,
    QuantityTooLarge,
    UnitEmpty,
    UnitTooLong,
    TimestampNoOffset,
    TimestampFuture,
    TimestampTooOld,
    NoRequestOrTrace,
    TraceId,
    SourceSeqWithoutSource,
    SourceSeqZero,
    SourceUnregistered,
    SourceWrongService,
    SignatureWrongKey,
    SignatureWithoutSource,
    Digest,
    UnknownField,
}

pub const RULES: [Rule; 26] = [
    Rule::EventIdChars,
    Rule::EventIdTooLong,
    Rule::EventIdEmpty,
    Rule::TenantUnknown,
    Rule::TenantMalformed,
    Rule::Service,
    Rule::Metric,
    Rule::QuantityNegative,
    Rule::QuantityScale,
    Rule::QuantityType,
    Rule::QuantityTooLarge,
    Rule::UnitEmpty,
    Rule::UnitTooLong,
    Rule::TimestampNoOffset,
    Rule::TimestampFuture,
    Rule::TimestampTooOld,
    Rule::NoRequestOrTrace,
    Rule::TraceId,
    Rule::SourceSeqWithoutSource,
    Rule::SourceSeqZero,
    Rule::SourceUnregistered,
    Rule::SourceWrongService,
    Rule::SignatureWrongKey,
    Rule::SignatureWithoutSource,
    Rule::Digest,
    Rule::UnknownField,
];

impl Rule {
    /// The field the rejection must name.
    pub fn field(self) -> &'static str {
        match self {
            Rule::EventIdChars | Rule::EventIdTooLong | Rule::EventIdEmpty => "event_id",
            Rule::TenantUnknown | Rule::TenantMalformed => "tenant_id",
            Rule::Service => "service",
            Rule::Metric => "metric",
            Rule::QuantityNegative
            | Rule::QuantityScale
            | Rule::QuantityType
            | Rule::QuantityTooLarge => "quantity",
            Rule::UnitEmpty | Rule::UnitTooLong => "unit",
            Rule::TimestampNoOffset | Rule::TimestampFuture | Rule::TimestampTooOld => "timestamp",
            Rule::NoRequestOrTrace => "request_id",
            Rule::TraceId => "trace_id",
            Rule::SourceSeqWithoutSource | Rule::SourceSeqZero => "source_seq",
            Rule::SourceUnregistered | Rule::SourceWrongService => "source",
            Rule::SignatureWrongKey | Rule::SignatureWithoutSource => "source_signature",
            Rule::Digest => "digest",
            Rule::UnknownField => "colour",
        }
    }
}

/// What one item of the stream sends.
#[derive(Debug, Clone)]
pub enum Action {
    /// A key's content (sending the same one again is an exact duplicate).
    Send { key: Index, variant: Index },
    /// A key's first content with one rule broken.
    Invalid { rule: Rule, key: Index },
}

#[derive(Debug, Clone)]
pub struct Item {
    pub action: Action,
    /// End the batch after this item.
    pub cut_after: bool,
}

#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub keys: Vec<KeySpec>,
    pub items: Vec<Item>,
}

fn quantity() -> impl Strategy<Value = Quantity> {
    prop_oneof![
        3 => (0i64..1_000_000_000_000, 0u32..=12)
            .prop_map(|(m, scale)| Quantity::Text(Decimal::new(m, scale))),
        1 => (0i64..1_000_000_000).prop_map(|m| Quantity::Number(Decimal::from(m))),
        1 => (0i64..1_000_000_000, 1u32..=6)
            .prop_map(|(m, scale)| Quantity::Number(Decimal::new(m, scale))),
    ]
}

fn variant() -> impl Strategy<Value = VariantSpec> {
    let minutes = prop_oneof![
        // On time: up to 4 minutes ahead (tolerance 5) and less than 48 hours old.
        3 => -(LATE_MINUTES - 1)..=4i64,
        // Late: older than 48 hours, younger than the 35-day backdate limit.
        1 => -(34 * 24 * 60)..=-(LATE_MINUTES + 1),
    ];
    let tz = prop::sample::select(vec![0i32, 120, -300, 330, -600]);
    (
        quantity(),
        minutes,
        tz,
        0u8..3,
        0u8..3,
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.5),
    )
        .prop_map(
            |(quantity, minutes, tz_minutes, ident, request_n, digest, signed)| VariantSpec {
                quantity,
                minutes,
                tz_minutes,
                ident,
                request_n,
                digest,
                signed,
            },
        )
}

fn key() -> impl Strategy<Value = KeySpec> {
    (
        0usize..TRIPLES.len(),
        prop::bool::weighted(0.6),
        prop_oneof![4 => Just(1u64), 1 => 2u64..=4],
        prop::collection::vec(variant(), 1..=3),
    )
        .prop_map(|(triple, sourced, seq_step, variants)| KeySpec {
            triple,
            sourced,
            seq_step,
            variants,
        })
}

fn item() -> impl Strategy<Value = Item> {
    let action = prop_oneof![
        4 => (any::<Index>(), any::<Index>())
            .prop_map(|(key, variant)| Action::Send { key, variant }),
        1 => (prop::sample::select(RULES.to_vec()), any::<Index>())
            .prop_map(|(rule, key)| Action::Invalid { rule, key }),
    ];
    (action, prop::bool::weighted(0.2)).prop_map(|(action, cut_after)| Item { action, cut_after })
}

/// Random streams: up to 14 keys, up to 60 items.
pub fn stream() -> impl Strategy<Value = StreamSpec> {
    (
        prop::collection::vec(key(), 1..=14),
        prop::collection::vec(item(), 1..=60),
    )
        .prop_map(|(keys, items)| StreamSpec { keys, items })
}

/// What the model knows of one event it generated.
#[derive(Debug, Clone)]
pub enum Meta {
    Valid {
        event_id: String,
        /// The event without `digest` and `source_signature`: what identifies its content.
        content: Value,
        day: Date,
        late: bool,
        signed: bool,
        triple: usize,
        quantity: Decimal,
        source: Option<(&'static str, u64)>,
    },
    Invalid {
        rule: Rule,
        event_id: Option<String>,
        /// The day the rejection counts on, when it counts for the stream's tenant.
        counted_day: Option<Date>,
    },
}

/// One event to send, with what the model knows of it.
#[derive(Debug, Clone)]
pub struct Generated {
    pub json: Value,
    pub meta: Meta,
}

/// The stream, built for a tenant: events and their batches.
#[derive(Debug, Clone)]
pub struct Stream {
    pub batches: Vec<Vec<Generated>>,
}

fn timestamp(at: OffsetDateTime, tz_minutes: i32) -> String {
    let offset = UtcOffset::from_whole_seconds(tz_minutes * 60).expect("offset");
    at.to_offset(offset).format(&Rfc3339).expect("rfc 3339")
}

fn event_id(key: usize) -> String {
    format!("evt:{key}.u_{}-x", key * 7 % 5)
}

/// The source_seq of each key that has a source, per source: steps accumulate from 0.
fn seqs(keys: &[KeySpec]) -> Vec<Option<u64>> {
    let mut next: BTreeMap<&str, u64> = BTreeMap::new();
    keys.iter()
        .map(|k| {
            if !k.sourced {
                return None;
            }
            let (source, _) = source_of(TRIPLES[k.triple].0);
            let seq = next.entry(source).or_insert(0);
            *seq += k.seq_step;
            Some(*seq)
        })
        .collect()
}

fn without_unsigned_fields(event: &Value) -> Value {
    let mut object = event.as_object().expect("object").clone();
    object.remove("digest");
    object.remove("source_signature");
    Value::Object(object)
}

/// The JSON of a key's variant; `signed` only applies to keys with a source.
fn variant_json(
    tenant: &str,
    index: usize,
    key: &KeySpec,
    variant: &VariantSpec,
    seq: Option<u64>,
) -> Value {
    let (service, metric, unit) = TRIPLES[key.triple];
    let at = START + Duration::minutes(variant.minutes);
    let mut event = json!({
        "event_id": event_id(index),
        "tenant_id": tenant,
        "service": service,
        "metric": metric,
        "unit": unit,
        "quantity": variant.quantity.to_json(),
        "timestamp": timestamp(at, variant.tz_minutes),
    });
    let object = event.as_object_mut().expect("object");
    if variant.ident != 1 {
        object.insert(
            "request_id".to_owned(),
            json!(format!("req-{index}-{}", variant.request_n)),
        );
    }
    if variant.ident != 0 {
        let trace = (index as u128 + 1) * 0x9e37_79b9_7f4a_7c15 + u128::from(variant.request_n);
        object.insert("trace_id".to_owned(), json!(format!("{trace:032x}")));
    }
    if let Some(seq) = seq {
        object.insert("source".to_owned(), json!(source_of(service).0));
        object.insert("source_seq".to_owned(), json!(seq));
    }
    if variant.digest {
        let digest = digest_of(&event);
        event["digest"] = json!(digest);
    }
    if variant.signed && seq.is_some() {
        sign(&mut event, &source_key(source_of(service).1));
    }
    event
}

/// Breaks `rule` in a valid base event (without digest and signature).
/// Returns the event and the day its rejection counts on, when it counts for the stream's
/// tenant.
fn break_rule(base: &Value, rule: Rule, seq: Option<u64>) -> (Value, Option<Date>) {
    let mut event = base.clone();
    let base_day = day_of(
        OffsetDateTime::parse(event["timestamp"].as_str().expect("timestamp"), &Rfc3339)
            .expect("base timestamp"),
    );
    let object = event.as_object_mut().expect("object");
    let service = object["service"].as_str().expect("service").to_owned();
    // Whether the rejection counts for the stream's tenant, and on which day.
    let mut day = Some(base_day);
    let mut ours = true;
    let mut sign_with: Option<u8> = None;
    match rule {
        Rule::EventIdChars => {
            object.insert("event_id".to_owned(), json!("bad id!"));
        }
        Rule::EventIdTooLong => {
            object.insert("event_id".to_owned(), json!("x".repeat(129)));
        }
        Rule::EventIdEmpty => {
            object.insert("event_id".to_owned(), json!(""));
        }
        Rule::TenantUnknown => {
            object.insert("tenant_id".to_owned(), json!("ghost-tenant"));
            ours = false;
        }
        Rule::TenantMalformed => {
            object.insert("tenant_id".to_owned(), json!("Not A Tenant"));
            ours = false;
        }
        Rule::Service => {
            object.insert("service".to_owned(), json!("Api"));
        }
        Rule::Metric => {
            object.insert("metric".to_owned(), json!("9metric"));
        }
        Rule::QuantityNegative => {
            object.insert("quantity".to_owned(), json!("-1"));
        }
        Rule::QuantityScale => {
            object.insert("quantity".to_owned(), json!("1.0000000000001"));
        }
        Rule::QuantityType => {
            object.insert("quantity".to_owned(), json!(true));
        }
        Rule::QuantityTooLarge => {
            object.insert("quantity".to_owned(), json!("1000000000000000"));
        }
        Rule::UnitEmpty => {
            object.insert("unit".to_owned(), json!(""));
        }
        Rule::UnitTooLong => {
            object.insert("unit".to_owned(), json!("u".repeat(33)));
        }
        Rule::TimestampNoOffset => {
            object.insert("timestamp".to_owned(), json!("2026-03-01T10:00:00"));
            // An unreadable timestamp counts on the day it was received.
            day = Some(day_of(START));
        }
        Rule::TimestampFuture => {
            let at = START + Duration::hours(13);
            object.insert("timestamp".to_owned(), json!(timestamp(at, 0)));
            day = Some(day_of(at));
        }
        Rule::TimestampTooOld => {
            let at = START - Duration::days(36);
            object.insert("timestamp".to_owned(), json!(timestamp(at, 60)));
            day = Some(day_of(at));
        }
        Rule::NoRequestOrTrace => {
            object.remove("request_id");
            object.remove("trace_id");
        }
        Rule::TraceId => {
            object.insert("trace_id".to_owned(), json!("ABC"));
        }
        Rule::SourceSeqWithoutSource => {
            object.remove("source");
            object.insert("source_seq".to_owned(), json!(seq.unwrap_or(1)));
        }
        Rule::SourceSeqZero => {
            object.insert("source".to_owned(), json!(source_of(&service).0));
            object.insert("source_seq".to_owned(), json!(0));
        }
        Rule::SourceUnregistered => {
            object.insert("source".to_owned(), json!("gw-nowhere"));
            object.insert("source_seq".to_owned(), json!(seq.unwrap_or(1)));
        }
        Rule::SourceWrongService => {
            object.insert("source".to_owned(), json!("gw-billing"));
            object.insert("source_seq".to_owned(), json!(seq.unwrap_or(1)));
        }
        Rule::SignatureWrongKey => {
            object.insert("source".to_owned(), json!(source_of(&service).0));
            object.insert("source_seq".to_owned(), json!(seq.unwrap_or(1)));
            sign_with = Some(STRANGER_SEED);
        }
        Rule::SignatureWithoutSource => {
            object.remove("source");
            object.remove("source_seq");
            object.insert("source_signature".to_owned(), json!("AAAA"));
        }
        Rule::Digest => {
            object.insert(
                "digest".to_owned(),
                json!(format!("sha256:{}", "0".repeat(64))),
            );
        }
        Rule::UnknownField => {
            object.insert("colour".to_owned(), json!("red"));
        }
    }
    if let Some(seed) = sign_with {
        sign(&mut event, &source_key(seed));
    }
    (event, day.filter(|_| ours))
}

impl StreamSpec {
    /// The stream's events for `tenant`, split into batches.
    pub fn build(&self, tenant: &str) -> Stream {
        let seqs = seqs(&self.keys);
        let mut batches = vec![Vec::new()];
        for item in &self.items {
            let generated = match &item.action {
                Action::Send { key, variant } => {
                    let index = key.index(self.keys.len());
                    let spec = &self.keys[index];
                    let v = &spec.variants[variant.index(spec.variants.len())];
                    let json = variant_json(tenant, index, spec, v, seqs[index]);
                    let at = START + Duration::minutes(v.minutes);
                    Generated {
                        meta: Meta::Valid {
                            event_id: event_id(index),
                            content: without_unsigned_fields(&json),
                            day: day_of(at),
                            late: v.minutes < -LATE_MINUTES,
                            signed: v.signed && seqs[index].is_some(),
                            triple: spec.triple,
                            quantity: v.quantity.value(),
                            source: seqs[index].map(|s| (source_of(TRIPLES[spec.triple].0).0, s)),
                        },
                        json,
                    }
                }
                Action::Invalid { rule, key } => {
                    let index = key.index(self.keys.len());
                    let spec = &self.keys[index];
                    let base = without_unsigned_fields(&variant_json(
                        tenant,
                        index,
                        spec,
                        &spec.variants[0],
                        seqs[index],
                    ));
                    let (json, counted_day) = break_rule(&base, *rule, seqs[index]);
                    let event_id = match rule {
                        Rule::EventIdChars | Rule::EventIdTooLong | Rule::EventIdEmpty => None,
                        _ => Some(event_id(index)),
                    };
                    Generated {
                        json,
                        meta: Meta::Invalid {
                            rule: *rule,
                            event_id,
                            counted_day,
                        },
                    }
                }
            };
            batches.last_mut().expect("a batch").push(generated);
            if item.cut_after {
                batches.push(Vec::new());
            }
        }
        batches.retain(|b| !b.is_empty());
        Stream { batches }
    }
}

/// What the model expects of one result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub status: &'static str,
    pub seq: Option<u64>,
    /// For rejections: a field the errors must name.
    pub field: Option<&'static str>,
    /// For kept, duplicate and conflicting events: the event id.
    pub event_id: Option<String>,
}

/// A kept event.
#[derive(Debug, Clone)]
pub struct Kept {
    pub seq: u64,
    pub content: Value,
}

/// Counters of one day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayCounts {
    pub accepted: i64,
    pub duplicates: i64,
    pub late: i64,
    pub invalid: i64,
    pub conflicts: i64,
    pub missing: i64,
    pub unsigned: i64,
    pub undeclared: i64,
    /// (source, from_seq, to_seq)
    pub gaps: Vec<(String, u64, u64)>,
}

impl DayCounts {
    /// missing / (accepted + late + missing), rounded half away from zero to 6 places.
    pub fn missing_ratio(&self) -> Decimal {
        let expected = self.accepted + self.late + self.missing;
        if expected == 0 {
            return Decimal::ZERO;
        }
        (Decimal::from(self.missing) / Decimal::from(expected))
            .round_dp_with_strategy(6, RoundingStrategy::MidpointAwayFromZero)
            .normalize()
    }
}

/// The model of one tenant's ingestion.
#[derive(Debug, Default)]
pub struct Model {
    pub kept: BTreeMap<String, Kept>,
    pub days: BTreeMap<Date, DayCounts>,
    /// On-time rollups: (day, service, metric, unit) -> (sum, events).
    pub rollups: BTreeMap<(Date, String, String, String), (Decimal, i64)>,
    /// Per source: seq -> event day, of kept events.
    pub seqs: BTreeMap<&'static str, BTreeMap<u64, Date>>,
}

impl Model {
    /// Applies one event in the order the service sees it.
    pub fn apply(&mut self, generated: &Generated) -> Expected {
        match &generated.meta {
            Meta::Invalid {
                rule,
                event_id,
                counted_day,
            } => {
                if let Some(day) = counted_day {
                    self.days.entry(*day).or_default().invalid += 1;
                }
                Expected {
                    status: "rejected",
                    seq: None,
                    field: Some(rule.field()),
                    event_id: event_id.clone(),
                }
            }
            Meta::Valid {
                event_id,
                content,
                day,
                late,
                signed,
                triple,
                quantity,
                source,
            } => {
                if let Some(kept) = self.kept.get(event_id) {
                    let counts = self.days.entry(*day).or_default();
                    let status = if kept.content == *content {
                        counts.duplicates += 1;
                        "duplicate"
                    } else {
                        counts.conflicts += 1;
                        "conflict"
                    };
                    return Expected {
                        status,
                        seq: Some(kept.seq),
                        field: None,
                        event_id: Some(event_id.clone()),
                    };
                }
                let seq = self.kept.len() as u64;
                self.kept.insert(
                    event_id.clone(),
                    Kept {
                        seq,
                        content: content.clone(),
                    },
                );
                let counts = self.days.entry(*day).or_default();
                if *late {
                    counts.late += 1;
                } else {
                    counts.accepted += 1;
                }
                if !signed {
                    counts.unsigned += 1;
                }
                // Nothing is declared in these streams: every kept event is undeclared.
                counts.undeclared += 1;
                if !late {
                    let (service, metric, unit) = TRIPLES[*triple];
                    let entry = self
                        .rollups
                        .entry((*day, service.to_owned(), metric.to_owned(), unit.to_owned()))
                        .or_insert((Decimal::ZERO, 0));
                    entry.0 += *quantity;
                    entry.1 += 1;
                }
                if let Some((source, seq)) = source {
                    self.seqs.entry(source).or_default().insert(*seq, *day);
                }
                Expected {
                    status: if *late { "late" } else { "accepted" },
                    seq: Some(seq),
                    field: None,
                    event_id: Some(event_id.clone()),
                }
            }
        }
    }

    /// Adds the missing events of `source_seq` gaps: each hole counts on the day of the kept
    /// event right after it.
    pub fn finish(&mut self) {
        for (source, seqs) in &self.seqs {
            let mut expected_next = 1u64;
            let mut previous: Option<u64> = None;
            for (seq, day) in seqs {
                let starts_range = previous.is_none_or(|p| *seq != p + 1);
                if starts_range && *seq > expected_next {
                    let counts = self.days.entry(*day).or_default();
                    counts.missing += i64::try_from(*seq - expected_next).expect("small");
                    counts
                        .gaps
                        .push(((*source).to_owned(), expected_next, seq - 1));
                }
                previous = Some(*seq);
                expected_next = seq + 1;
            }
        }
        for counts in self.days.values_mut() {
            counts.gaps.sort();
        }
    }
}
