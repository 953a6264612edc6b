//! Differential tests of `UsageEvent::parse_bytes`: the fast path may answer only with exactly
//! the general path's `Ok` value (fields, canonical form byte for byte, digest), the public
//! function must give exactly the general path's result (the event or the whole `InvalidEvent`),
//! and the fast path must really take the plain events services send, so that a fast path that
//! silently always declined would fail here too.

use companyos_domain::usage::{EVENT_BYTES_MAX, InvalidEvent, SOURCE_SEQ_MAX, UsageEvent};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;

/// A JSON value as the generator writes it.
#[derive(Debug, Clone)]
enum Json {
    /// A string, written with only the escapes JSON requires.
    Text(String),
    /// Bytes written as they are: numbers, literals, escaped strings, malformed text.
    Raw(Vec<u8>),
    /// An object: (name, value) members in writing order.
    Object(Vec<(Json, Json)>),
}

fn text(value: impl Into<String>) -> Json {
    Json::Text(value.into())
}

fn raw(value: impl AsRef<[u8]>) -> Json {
    Json::Raw(value.as_ref().to_vec())
}

fn member(name: &str, value: Json) -> (Json, Json) {
    (text(name), value)
}

/// Writes a JSON string with the escapes JSON requires and no others.
fn write_string(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    for character in value.chars() {
        match character {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if u32::from(c) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", u32::from(c)).as_bytes())
            }
            c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out.push(b'"');
}

/// The same string with its first character written as a `\u` escape (a surrogate pair above
/// the BMP): the same decoded text, which only the general path reads.
fn escaped_first_character(value: &str) -> Json {
    let mut characters = value.chars();
    let Some(first) = characters.next() else {
        return raw("\"\\u0041\"");
    };
    let mut out = b"\"".to_vec();
    for unit in first.encode_utf16(&mut [0; 2]) {
        out.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
    }
    let mut rest = Vec::new();
    write_string(&mut rest, characters.as_str());
    out.extend_from_slice(rest.get(1..).unwrap_or_default());
    Json::Raw(out)
}

/// Renders values, taking the whitespace between tokens from a pool in turn.
struct Writer<'a> {
    out: Vec<u8>,
    whitespace: &'a [String],
    next: usize,
}

impl Writer<'_> {
    fn space(&mut self) {
        if let Some(space) = self
            .whitespace
            .get(self.next % self.whitespace.len().max(1))
        {
            self.out.extend_from_slice(space.as_bytes());
        }
        self.next += 1;
    }

    fn value(&mut self, value: &Json) {
        match value {
            Json::Text(text) => write_string(&mut self.out, text),
            Json::Raw(bytes) => self.out.extend_from_slice(bytes),
            Json::Object(members) => {
                self.out.push(b'{');
                for (index, (name, value)) in members.iter().enumerate() {
                    self.space();
                    if index > 0 {
                        self.out.push(b',');
                        self.space();
                    }
                    self.value(name);
                    self.space();
                    self.out.push(b':');
                    self.space();
                    self.value(value);
                }
                self.space();
                self.out.push(b'}');
            }
        }
    }
}

fn render(members: &[(Json, Json)], whitespace: &[String]) -> Vec<u8> {
    let mut writer = Writer {
        out: Vec::new(),
        whitespace,
        next: 0,
    };
    writer.space();
    writer.value(&Json::Object(members.to_vec()));
    writer.space();
    writer.out
}

/// Runs both paths and the public function on `bytes` and checks the differential property.
fn assert_paths_agree(bytes: &[u8]) -> (Result<UsageEvent, InvalidEvent>, Option<UsageEvent>) {
    let slow = UsageEvent::parse_bytes_slow(bytes);
    let fast = UsageEvent::parse_bytes_fast(bytes);
    if let Some(event) = &fast {
        assert_eq!(
            Ok(event),
            slow.as_ref(),
            "the fast path answered differently for {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    assert_eq!(
        UsageEvent::parse_bytes(bytes),
        slow,
        "parse_bytes differs from the general path for {:?}",
        String::from_utf8_lossy(bytes)
    );
    (slow, fast)
}

/// A digest member added to the generated event.
#[derive(Debug, Clone)]
enum ClaimedDigest {
    Absent,
    /// The event's own digest (computed by the general path).
    Right,
    /// Well formed but (almost surely) not the event's.
    Wrong(String),
}

/// A change that makes a generated event odd or invalid.
#[derive(Debug, Clone)]
enum Mutation {
    /// Writes a member twice (with its own value or another).
    Duplicate {
        index: usize,
        value: Option<Json>,
    },
    /// A member whose name is not a usage event field.
    Unknown {
        name: String,
        value: Json,
    },
    Remove {
        index: usize,
    },
    /// Another value for the member at `index`.
    Replace {
        index: usize,
        value: Json,
    },
    /// Sets a named field (adding it if absent) to an edge value, valid or not.
    Set {
        name: &'static str,
        value: Json,
    },
    EscapeName {
        index: usize,
    },
    EscapeValue {
        index: usize,
    },
    Truncate {
        at: usize,
    },
    Append {
        bytes: Vec<u8>,
    },
    Prepend {
        bytes: Vec<u8>,
    },
    Overwrite {
        at: usize,
        byte: u8,
    },
    Insert {
        at: usize,
        byte: u8,
    },
    Delete {
        at: usize,
    },
}

#[derive(Debug, Clone)]
struct EventCase {
    /// The event's members without `digest`, in writing order.
    members: Vec<(Json, Json)>,
    quantity_is_number: bool,
    digest: ClaimedDigest,
    digest_position: usize,
    whitespace: Vec<String>,
    mutations: Vec<Mutation>,
}

impl EventCase {
    /// The bytes of the case: members with the claimed digest, member mutations, rendering,
    /// then byte mutations.
    fn bytes(&self) -> Vec<u8> {
        let mut members = self.members.clone();
        let digest = match &self.digest {
            ClaimedDigest::Absent => None,
            ClaimedDigest::Right => {
                let unclaimed = render(&members, &[]);
                let event =
                    UsageEvent::parse_bytes_slow(&unclaimed).expect("the generated event is valid");
                Some(event.digest.to_string())
            }
            ClaimedDigest::Wrong(digest) => Some(digest.clone()),
        };
        if let Some(digest) = digest {
            let position = self.digest_position % (members.len() + 1);
            members.insert(position, member("digest", text(digest)));
        }
        for mutation in &self.mutations {
            apply_to_members(&mut members, mutation);
        }
        let mut bytes = render(&members, &self.whitespace);
        for mutation in &self.mutations {
            apply_to_bytes(&mut bytes, mutation);
        }
        bytes
    }
}

fn apply_to_members(members: &mut Vec<(Json, Json)>, mutation: &Mutation) {
    let count = members.len().max(1);
    match mutation {
        Mutation::Duplicate { index, value } => {
            if let Some((name, own)) = members.get(index % count).cloned() {
                members.push((name, value.clone().unwrap_or(own)));
            }
        }
        Mutation::Unknown { name, value } => members.push(member(name, value.clone())),
        Mutation::Remove { index } if index % count < members.len() => {
            members.remove(index % count);
        }
        Mutation::Replace { index, value } => {
            if let Some(slot) = members.get_mut(index % count) {
                slot.1 = value.clone();
            }
        }
        Mutation::Set { name, value } => {
            let existing = members
                .iter_mut()
                .find(|(member_name, _)| matches!(member_name, Json::Text(n) if n == name));
            match existing {
                Some(slot) => slot.1 = value.clone(),
                None => members.push(member(name, value.clone())),
            }
        }
        Mutation::EscapeName { index } => {
            if let Some(slot) = members.get_mut(index % count) {
                if let Json::Text(name) = &slot.0 {
                    slot.0 = escaped_first_character(name);
                }
            }
        }
        Mutation::EscapeValue { index } => {
            if let Some(slot) = members.get_mut(index % count) {
                match &mut slot.1 {
                    Json::Text(value) => slot.1 = escaped_first_character(value),
                    Json::Object(entries) => {
                        if let Some(entry) = entries.first_mut() {
                            if let Json::Text(value) = &entry.1 {
                                entry.1 = escaped_first_character(value);
                            }
                        }
                    }
                    Json::Raw(_) => {}
                }
            }
        }
        _ => {}
    }
}

fn apply_to_bytes(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let length = bytes.len().max(1);
    match mutation {
        Mutation::Truncate { at } => bytes.truncate(at % length),
        Mutation::Append { bytes: tail } => bytes.extend_from_slice(tail),
        Mutation::Prepend { bytes: head } => {
            let mut joined = head.clone();
            joined.extend_from_slice(bytes);
            *bytes = joined;
        }
        Mutation::Overwrite { at, byte } => {
            if let Some(slot) = bytes.get_mut(at % length) {
                *slot = *byte;
            }
        }
        Mutation::Insert { at, byte } => {
            let at = at % (bytes.len() + 1);
            bytes.insert(at, *byte);
        }
        Mutation::Delete { at } if at % length < bytes.len() => {
            bytes.remove(at % length);
        }
        _ => {}
    }
}

// ---- generators of valid events ----

fn event_id() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "[A-Za-z0-9._:-]{1,40}",
        "[a-z]{128}",
    ]
}

/// A quantity and whether it is written as a JSON number (which the fast path leaves alone).
fn quantity() -> impl Strategy<Value = (Json, bool)> {
    prop_oneof![
        4 => "[0-9]{1,15}".prop_map(|q| (text(q), false)),
        4 => "[0-9]{1,15}\\.[0-9]{1,12}".prop_map(|q| (text(q), false)),
        1 => "0{1,20}[1-9][0-9]{0,14}".prop_map(|q| (text(q), false)),
        1 => "[0-9]{1,3}\\.[0-9]{1,12}0{1,8}".prop_map(|q| (text(q), false)),
        1 => "[1-9][0-9]{0,5}(\\.[0-9]{1,3})?".prop_map(|q| (raw(q), true)),
    ]
}

fn unit() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
            "request",
            "GiB-hours",
            "byte",
            "ms",
            "é",
            "€/month",
            "𝄞 notes"
        ])
        .prop_map(str::to_owned),
        "[a-zA-Z][a-zA-Z/ -]{0,20}[a-z]",
        "[a-z\u{e9}\u{20ac}\u{1d11e}]{1,32}",
    ]
}

fn timestamp() -> impl Strategy<Value = String> {
    let offset = prop_oneof![
        3 => Just("Z".to_owned()),
        1 => (select(vec!['+', '-']), 0..24_u8, 0..60_u8).prop_map(|(sign, hours, minutes)| {
            // -00:00 is RFC 3339's "offset unknown"; keep the valid generator to known offsets.
            let sign = if hours == 0 && minutes == 0 { '+' } else { sign };
            format!("{sign}{hours:02}:{minutes:02}")
        }),
    ];
    (
        (1970..2100_i32, 1..=12_u8, 1..=28_u8),
        (0..24_u8, 0..60_u8, 0..60_u8),
        option::of("[0-9]{1,9}"),
        offset,
    )
        .prop_map(|((year, month, day), (hour, minute, second), fraction, offset)| {
            let fraction = fraction.map(|f| format!(".{f}")).unwrap_or_default();
            format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}{offset}")
        })
}

fn request_id() -> impl Strategy<Value = String> {
    prop_oneof!["[!#-\\[\\]-~]{1,40}", "r[0-9]{6}", "[a-z]{128}",]
}

fn trace_id() -> impl Strategy<Value = String> {
    "[0-9a-f]{32}".prop_filter("not all zero", |t| t.bytes().any(|b| b != b'0'))
}

fn source_seq() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(1),
        Just(SOURCE_SEQ_MAX),
        1..=SOURCE_SEQ_MAX,
        1_u64..1000
    ]
}

fn attributes() -> impl Strategy<Value = Json> {
    let key = prop_oneof![
        4 => "[a-z_.]{1,12}",
        2 => "[a-zA-Z\u{e9}\u{e000}\u{ffff}\u{10000}\u{1f600}]{1,6}",
        1 => "[a-z]{64}",
        1 => Just("$serde_json::private::Number".to_owned()),
    ];
    let value = prop_oneof![
        4 => "[ -!#-\\[\\]-~]{0,20}",
        2 => "[a\u{e9}\u{1f600}/]{0,8}",
        1 => "[a\u{e9}]{256}",
    ];
    btree_map(key, value, 0..=16)
        .prop_map(|entries| {
            entries
                .into_iter()
                .map(|(key, value)| (text(key), text(value)))
                .collect::<Vec<_>>()
        })
        .prop_shuffle()
        .prop_map(Json::Object)
}

/// The members of a valid event (without `digest`), shuffled, and whether `quantity` is a number.
fn valid_members() -> impl Strategy<Value = (Vec<(Json, Json)>, bool)> {
    let identity = (
        event_id(),
        "[a-z][a-z0-9-]{2,20}",
        "[a-z][a-z0-9-]{0,10}",
        "[a-z][a-z0-9_.]{0,12}",
    );
    let measure = (quantity(), unit(), timestamp());
    let correlation = prop_oneof![
        request_id().prop_map(|r| (Some(r), None)),
        trace_id().prop_map(|t| (None, Some(t))),
        (request_id(), trace_id()).prop_map(|(r, t)| (Some(r), Some(t))),
    ];
    let source = option::of((
        "[A-Za-z0-9._:-]{1,64}",
        option::of(source_seq()),
        option::of("[A-Za-z0-9+/]{0,86}={0,2}"),
    ));
    (
        identity,
        measure,
        correlation,
        source,
        option::of(attributes()),
    )
        .prop_map(
            |(
                (event_id, tenant_id, service, metric),
                ((quantity, quantity_is_number), unit, timestamp),
                (request_id, trace_id),
                source,
                attributes,
            )| {
                let mut members = vec![
                    member("event_id", text(event_id)),
                    member("tenant_id", text(tenant_id)),
                    member("service", text(service)),
                    member("metric", text(metric)),
                    member("quantity", quantity),
                    member("unit", text(unit)),
                    member("timestamp", text(timestamp)),
                ];
                if let Some(request_id) = request_id {
                    members.push(member("request_id", text(request_id)));
                }
                if let Some(trace_id) = trace_id {
                    members.push(member("trace_id", text(trace_id)));
                }
                if let Some((source, seq, signature)) = source {
                    members.push(member("source", text(source)));
                    if let Some(seq) = seq {
                        members.push(member("source_seq", raw(seq.to_string())));
                    }
                    if let Some(signature) = signature {
                        members.push(member("source_signature", text(signature)));
                    }
                }
                if let Some(attributes) = attributes {
                    members.push(member("attributes", attributes));
                }
                (members, quantity_is_number)
            },
        )
        .prop_flat_map(|(members, quantity_is_number)| {
            (Just(members).prop_shuffle(), Just(quantity_is_number))
        })
}

fn claimed_digest() -> impl Strategy<Value = ClaimedDigest> {
    prop_oneof![
        2 => Just(ClaimedDigest::Absent),
        1 => Just(ClaimedDigest::Right),
        1 => "[0-9a-f]{64}".prop_map(|hex| ClaimedDigest::Wrong(format!("sha256:{hex}"))),
    ]
}

/// JSON whitespace only: the plain events are written with it.
fn whitespace() -> impl Strategy<Value = Vec<String>> {
    vec(
        select(vec!["", " ", "\t", "\n", "\r", "  ", "\r\n", " \t "]).prop_map(str::to_owned),
        0..12,
    )
}

// ---- generators of odd and invalid input ----

/// Values of the wrong kind or malformed, for any member.
fn odd_value() -> impl Strategy<Value = Json> {
    prop_oneof![
        select(vec![
            "null",
            "true",
            "false",
            "0",
            "-1",
            "1.5",
            "1e3",
            "[]",
            "[\"a\"]",
            "{}",
            "{\"a\":\"b\"}",
            "\"\"",
            "\"a\\/b\"",
            "\"a\tb\"",
            "\"\\ud800\"",
            "\"abc",
            "\"a\\\"b\"",
            "nul",
            "\"\\u0000\"",
            "{\"a\":{\"b\":\"c\"}}",
            "[1,2",
            "1 2",
        ])
        .prop_map(raw),
        Just(Json::Raw(b"\"a\xffb\"".to_vec())),
        Just(Json::Raw(b"\"\xc3\"".to_vec())),
        "[ -~]{0,8}".prop_map(text),
        Just(text("x".repeat(200))),
    ]
}

/// Edge values for each field, some valid and some not.
fn field_edge() -> impl Strategy<Value = (&'static str, Json)> {
    fn texts(name: &'static str, values: Vec<&'static str>) -> BoxedStrategy<(&'static str, Json)> {
        select(values).prop_map(move |v| (name, text(v))).boxed()
    }
    fn raws(name: &'static str, values: Vec<&'static str>) -> BoxedStrategy<(&'static str, Json)> {
        select(values).prop_map(move |v| (name, raw(v))).boxed()
    }
    let long_key = "k".repeat(65);
    let many_attributes: Vec<(Json, Json)> = (0..17)
        .map(|i| (text(format!("k{i:02}")), text("v")))
        .collect();
    let long_value = "v".repeat(257);
    prop_oneof![
        raws(
            "source_seq",
            vec![
                "1",
                "9007199254740991",
                "9007199254740992",
                "0",
                "01",
                "1.0",
                "1e3",
                "-1",
                "18446744073709551616",
                "100000000000000000000",
                "12 ",
                "\"5\"",
                "5 5",
                "-0",
                "1E2",
                "42",
            ]
        ),
        texts(
            "quantity",
            vec![
                "0",
                "000",
                "1.",
                ".5",
                "1e3",
                "-1",
                "999999999999999",
                "1000000000000000",
                "0000000000000000001",
                "1.0000000000000",
                "1.1234567890123",
                " 1",
                "1.5",
                "",
                "999999999999999.999999999999",
                "1,5",
                "+1",
                "٣",
            ]
        ),
        raws(
            "quantity",
            vec![
                "12.5",
                "3",
                "1e2",
                "0.1",
                "123456789.123456789",
                "-0",
                "1E400",
                "0",
                "1.50",
            ]
        ),
        texts(
            "timestamp",
            vec![
                "2026-03-01T12:00:00z",
                "2026-03-01t12:00:00Z",
                "2026-03-01T12:00:00",
                "2026-02-30T00:00:00Z",
                "2026-03-01T12:00:60Z",
                "2026-03-01T12:00:00.Z",
                "2026-03-01T12:00:00.1234567891Z",
                "2026-03-01 12:00:00Z",
                "2026-03-01T12:00:00+24:00",
                "2026-03-01T12:00:00-00:00",
                "2026-12-31T23:59:60Z",
                "2026-03-01T12:00:00.123456+05:30",
            ]
        ),
        texts(
            "digest",
            vec![
                "sha256:0000000000000000000000000000000000000000000000000000000000000000",
                "sha256:ABCDEF0000000000000000000000000000000000000000000000000000000000",
                "md5:00",
                "",
                "sha256:",
            ]
        ),
        texts("source", vec!["", "a b", "src-1", "é"]),
        texts("source_signature", vec!["", "c2ln", "a\u{7f}b"]),
        // Raw control characters and escapes where no validator would refuse them.
        raws(
            "source_signature",
            vec!["\"a\tb\"", "\"\u{1}\"", "\"a\\tb\"", "\"\\/\"", "\"a\nb\""]
        ),
        texts("request_id", vec!["", "a b", "r-1", "é", "a\u{7f}"]),
        texts(
            "trace_id",
            vec![
                "00000000000000000000000000000000",
                "4BF92F3577B34DA6A3CE929D0E0E4736",
                "4bf92f3577b34da6a3ce929d0e0e4736",
            ]
        ),
        texts("event_id", vec!["", "a b", "evt-1", "é"]),
        texts("tenant_id", vec!["", "X", "ab", "acme", "acme "]),
        texts("service", vec!["", "Api", "api", "api_gw"]),
        texts(
            "metric",
            vec!["", "9x", "requests.count_total", "requests-count"]
        ),
        texts(
            "unit",
            vec![
                "", " request", "request ", "a\u{85}b", "a\u{7f}b", "\u{2028}"
            ]
        ),
        raws(
            "attributes",
            vec![
                "{}",
                "[]",
                "\"x\"",
                "{\"a\":1}",
                "{\"a\":null}",
                "{\"\":\"v\"}",
                "{\"a\":\"1\",\"a\":\"2\"}",
                "{\"a\":{\"b\":\"c\"}}",
                "{\"a\\u0062\":\"c\"}",
                "{\"a\":\"b\",}",
                "{,}",
                "{\"$serde_json::private::Number\":\"1\"}",
                "{\"b\":\"1\",\"a\":\"2\"}",
                "{\"\u{e000}\":\"1\",\"\u{10000}\":\"2\"}",
                "{\"k\":\"a\tb\"}",
                "{\"k\n\":\"v\"}",
                "{\"k\":\"a\\nb\"}",
            ]
        ),
        Just((
            "attributes",
            Json::Object(vec![(text(long_key), text("v"))])
        )),
        Just((
            "attributes",
            Json::Object(vec![(text("k"), text(long_value))])
        )),
        Just(("attributes", Json::Object(many_attributes))),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let index = any::<usize>();
    prop_oneof![
        1 => (index, option::of(odd_value())).prop_map(|(index, value)| Mutation::Duplicate { index, value }),
        1 => (
            select(vec!["colour", "Event_id", "event_id ", "$serde_json::private::Number", ""]),
            odd_value(),
        )
            .prop_map(|(name, value)| Mutation::Unknown { name: name.to_owned(), value }),
        1 => index.prop_map(|index| Mutation::Remove { index }),
        1 => (index, odd_value()).prop_map(|(index, value)| Mutation::Replace { index, value }),
        3 => field_edge().prop_map(|(name, value)| Mutation::Set { name, value }),
        1 => index.prop_map(|index| Mutation::EscapeName { index }),
        1 => index.prop_map(|index| Mutation::EscapeValue { index }),
        1 => index.prop_map(|at| Mutation::Truncate { at }),
        1 => select(vec![
            &b"x"[..], b",", b"}", b"{}", b"\x0c", b"\xc2\xa0", b"\x0b", b"\0", b"\xff", b" \n",
        ])
        .prop_map(|bytes| Mutation::Append { bytes: bytes.to_vec() }),
        1 => select(vec![&b"\xef\xbb\xbf"[..], b"\x0c", b"\xc2\xa0", b"[", b" \r\n\t"])
            .prop_map(|bytes| Mutation::Prepend { bytes: bytes.to_vec() }),
        1 => (index, any::<u8>()).prop_map(|(at, byte)| Mutation::Overwrite { at, byte }),
        1 => (index, select(vec![b'"', b'\\', b',', b'}', b'{', b':', b' ', b'0', b'\t', 0x80]))
            .prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        1 => index.prop_map(|at| Mutation::Delete { at }),
    ]
}

fn event_case() -> impl Strategy<Value = EventCase> {
    (
        valid_members(),
        claimed_digest(),
        any::<usize>(),
        whitespace(),
        prop_oneof![1 => Just(Vec::new()), 2 => vec(mutation(), 1..4)],
    )
        .prop_map(
            |((members, quantity_is_number), digest, digest_position, whitespace, mutations)| {
                EventCase {
                    members,
                    quantity_is_number,
                    digest,
                    digest_position,
                    whitespace,
                    mutations,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    /// The differential property on generated events, valid and mutated; and coverage: every
    /// unmutated event is accepted by the general path unless its claimed digest is wrong, and
    /// the fast path takes every such event whose quantity is a string.
    #[test]
    fn fast_path_agrees_with_the_general_path(case in event_case()) {
        let bytes = case.bytes();
        let (slow, fast) = assert_paths_agree(&bytes);
        if case.mutations.is_empty() {
            let digest_wrong = matches!(case.digest, ClaimedDigest::Wrong(_));
            prop_assert_eq!(slow.is_ok(), !digest_wrong, "{:?}: {:?}", String::from_utf8_lossy(&bytes), slow);
            let expect_fast = !digest_wrong && !case.quantity_is_number;
            prop_assert_eq!(fast.is_some(), expect_fast, "fast path coverage for {:?}", String::from_utf8_lossy(&bytes));
        }
    }

    /// The differential property on a valid event with a source and one field set to an edge
    /// value (valid or not), so that each edge value is tried many times.
    #[test]
    fn field_edges_agree(
        (members, _) in valid_members(),
        edge in field_edge(),
        whitespace in whitespace(),
    ) {
        let mut members = members;
        apply_to_members(&mut members, &Mutation::Set { name: "source", value: text("src-1") });
        let (name, value) = edge;
        apply_to_members(&mut members, &Mutation::Set { name, value });
        let _ = assert_paths_agree(&render(&members, &whitespace));
    }

    /// The differential property on arbitrary bytes (mostly not JSON at all).
    #[test]
    fn fast_path_agrees_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..300)) {
        let _ = assert_paths_agree(&bytes);
    }
}

const TYPICAL: &str = r#"{"event_id":"6f1c2a3e-9b7d-4c1a-8e2f-0a1b2c3d4e5f","tenant_id":"tenant-0001","service":"api","metric":"requests","quantity":"3","unit":"request","timestamp":"2026-12-02T17:40:00.123456Z","request_id":"r123456"}"#;

#[test]
fn the_typical_event_takes_the_fast_path() {
    let (slow, fast) = assert_paths_agree(TYPICAL.as_bytes());
    let fast = fast.expect("the fast path handles the typical event");
    assert_eq!(Ok(&fast), slow.as_ref());
    assert_eq!(
        fast.canonical,
        r#"{"event_id":"6f1c2a3e-9b7d-4c1a-8e2f-0a1b2c3d4e5f","metric":"requests","quantity":"3","request_id":"r123456","service":"api","tenant_id":"tenant-0001","timestamp":"2026-12-02T17:40:00.123456Z","unit":"request"}"#
    );
}

#[test]
fn a_full_event_with_attributes_takes_the_fast_path() {
    let valid = r#" {
        "unit": "GiB-hours", "quantity": "0.000000000001", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "attributes": {"region": "eu-west", "SUPPLEMENTARY": "a", "PRIVATE_USE": "b", "tier": ""},
        "source_signature": "c2lnbmF0dXJl", "source_seq": 9007199254740991, "source": "billing-1",
        "timestamp": "2026-03-01T01:30:00.5+02:00", "metric": "storage.bytes", "service": "store",
        "tenant_id": "acme", "event_id": "evt:1"
    } "#
    .replace("SUPPLEMENTARY", "\u{10000}")
    .replace("PRIVATE_USE", "\u{e000}");
    let (slow, fast) = assert_paths_agree(valid.as_bytes());
    let event = slow.expect("valid");
    assert!(
        fast.is_some(),
        "the fast path handles attributes and sources"
    );
    // RFC 8785 sorts by UTF-16 code units: U+10000 (0xD800 0xDC00) before U+E000.
    assert!(
        event.canonical.contains(
            "{\"region\":\"eu-west\",\"tier\":\"\",\"\u{10000}\":\"a\",\"\u{e000}\":\"b\"}"
        ),
        "{}",
        event.canonical
    );
    // A digest claimed right is taken by the fast path; claimed wrong, the general path reports it.
    let claimed = valid.replacen('{', &format!("{{\"digest\":\"{}\",", event.digest), 1);
    assert!(assert_paths_agree(claimed.as_bytes()).1.is_some());
    let wrong = valid.replacen(
        '{',
        &format!("{{\"digest\":\"sha256:{}\",", "0".repeat(64)),
        1,
    );
    let (slow, fast) = assert_paths_agree(wrong.as_bytes());
    assert!(slow.is_err() && fast.is_none());
}

#[test]
fn shapes_the_fast_path_declines() {
    let typical = TYPICAL.to_owned();
    // (input, whether the general path accepts it)
    let declined = [
        (
            typical.replace(
                r#""request_id":"r123456""#,
                r#""request_id":"r123456","trace_id":null"#,
            ),
            true,
        ),
        (
            typical.replace(r#""quantity":"3""#, r#""quantity":3"#),
            true,
        ),
        (
            typical.replace(r#""service":"api""#, r#""service":"\u0061pi""#),
            true,
        ),
        (
            typical.replace(r#""service":"api""#, r#""servic\u0065":"api""#),
            true,
        ),
        (
            typical.replace(r#""service":"api""#, r#""service":"api","service":"api""#),
            false,
        ),
        (
            typical.replace(r#""service":"api""#, r#""service":"api","colour":"red""#),
            false,
        ),
        (
            typical.replace(r#""service":"api""#, r#""service":"Api""#),
            false,
        ),
        (typical.replace(r#","request_id":"r123456""#, ""), false),
        (
            typical.replace(
                r#""request_id":"r123456""#,
                r#""request_id":"r1","source_seq":3"#,
            ),
            false,
        ),
        (
            typical.replace(
                r#""request_id":"r123456""#,
                r#""request_id":"r1","source":"s","source_seq":01"#,
            ),
            false,
        ),
        (
            typical.replace(
                r#""request_id":"r123456""#,
                r#""request_id":"r1","source":"s","source_seq":1.0"#,
            ),
            false,
        ),
        (
            typical.replace(r#""quantity":"3""#, "\"quantity\":\"3\t\""),
            false,
        ),
        (
            typical.replace(r#""quantity":"3""#, "\"quantity\":\"\u{7f}3\""),
            false,
        ),
        (format!("{typical}x"), false),
        (format!("{typical},"), false),
        (format!("\u{feff}{typical}"), false),
        (typical[..typical.len() - 1].to_owned(), false),
        (format!("{typical}{}", " ".repeat(EVENT_BYTES_MAX)), false),
    ];
    for (input, accepted) in declined {
        let (slow, fast) = assert_paths_agree(input.as_bytes());
        assert!(fast.is_none(), "declined: {input:?}");
        assert_eq!(slow.is_ok(), accepted, "{input:?}: {slow:?}");
    }
}
