//! Usage events: canonical form, `sha256:` digest and Ed25519 source signature round-trip, and
//! any change to the canonical bytes breaks the signature (CONTRACT §5).

use companyos_ledger::jcs::{canonicalize, parse_strict};
use companyos_ledger::leaf::{AuditLeaf, EventClass, UsageLeaf};
use companyos_ledger::usage_event::{
    self, EventDigest, SIGNATURE_CONTEXT, SignatureError, canonical_form, parse_public_key,
};
use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value, json};

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn event_strategy() -> impl Strategy<Value = Map<String, Value>> {
    (
        "[A-Za-z0-9._:-]{1,40}",
        "[a-z][a-z0-9-]{2,20}",
        "[a-z][a-z0-9_.]{0,20}",
        prop_oneof![
            "[0-9]{1,12}(\\.[0-9]{1,6})?".prop_map(Value::String),
            (0u64..1_000_000_000_000).prop_map(|q| json!(q)),
            (0.0f64..1e9).prop_map(|q| json!(q)),
        ],
        "\\PC{1,16}",
        proptest::option::of("[0-9a-f]{32}"),
        proptest::collection::btree_map("[a-z_]{1,8}", "\\PC{0,12}", 0..4),
        proptest::option::of(1u64..(1 << 53)),
    )
        .prop_map(
            |(event_id, tenant_id, metric, quantity, unit, trace_id, attributes, seq)| {
                let mut event = object(json!({
                    "event_id": event_id,
                    "tenant_id": tenant_id,
                    "service": "api",
                    "metric": metric,
                    "quantity": quantity,
                    "unit": unit,
                    "timestamp": "2026-03-01T12:00:00Z",
                    "request_id": "req-1",
                }));
                if let Some(trace_id) = trace_id {
                    event.insert("trace_id".into(), json!(trace_id));
                }
                if !attributes.is_empty() {
                    event.insert("attributes".into(), json!(attributes));
                }
                if let Some(seq) = seq {
                    event.insert("source".into(), json!("src-1"));
                    event.insert("source_seq".into(), json!(seq));
                }
                event
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn canonical_form_digest_and_signature_round_trip(
        event in event_strategy(),
        seed in any::<[u8; 32]>(),
        position in any::<Index>(),
        xor in 1u8..=255,
    ) {
        let key = SigningKey::from_bytes(&seed);
        let canonical = canonical_form(&event).unwrap();
        let digest = EventDigest::of_canonical(canonical.as_bytes());
        let signature = usage_event::sign(&key, canonical.as_bytes());
        prop_assert!(usage_event::verify(&key.verifying_key(), canonical.as_bytes(), &signature).is_ok());

        // The digest's text form parses back.
        let text = digest.to_string();
        prop_assert!(text.starts_with("sha256:") && text.len() == 71);
        prop_assert_eq!(text.parse::<EventDigest>().unwrap(), digest);
        prop_assert_eq!(digest.hash(), &companyos_ledger::hash::sha256(canonical.as_bytes()));

        // The canonical form is the JCS form of the event without the two unsigned fields, so
        // adding them (as a sender does) changes nothing; nor does member order or whitespace.
        let mut sent = event.clone();
        sent.insert("digest".into(), json!(text));
        sent.insert("source_signature".into(), json!(signature));
        prop_assert_eq!(&canonical_form(&sent).unwrap(), &canonical);
        let pretty = serde_json::to_string_pretty(&Value::Object(sent.clone())).unwrap();
        let reparsed = parse_strict(pretty.as_bytes()).unwrap();
        prop_assert_eq!(&canonical_form(reparsed.as_object().unwrap()).unwrap(), &canonical);
        prop_assert_eq!(&canonicalize(&Value::Object(event.clone())).unwrap(), &canonical);
        // Canonical text is a fixed point.
        let again = parse_strict(canonical.as_bytes()).unwrap();
        prop_assert_eq!(&canonical_form(again.as_object().unwrap()).unwrap(), &canonical);

        // Any byte change in the canonical form breaks the signature and the digest.
        let mut changed = canonical.clone().into_bytes();
        let i = position.index(changed.len());
        changed[i] ^= xor;
        prop_assert_eq!(
            usage_event::verify(&key.verifying_key(), &changed, &signature),
            Err(SignatureError::Invalid)
        );
        prop_assert_ne!(EventDigest::of_canonical(&changed), digest);

        // Another key's signature does not verify; a changed signature does not either.
        let other = SigningKey::from_bytes(&[seed[0] ^ 1; 32]);
        if other.verifying_key() != key.verifying_key() {
            prop_assert!(usage_event::verify(&other.verifying_key(), canonical.as_bytes(), &signature).is_err());
        }
        let mut sig_bytes = companyos_ledger::encoding::base64_decode(&signature).unwrap();
        sig_bytes[i % 64] ^= xor;
        let bad = companyos_ledger::encoding::base64_encode(&sig_bytes);
        prop_assert!(usage_event::verify(&key.verifying_key(), canonical.as_bytes(), &bad).is_err());
    }

    #[test]
    fn usage_leaves_round_trip(
        tenant in "[a-z][a-z0-9-]{2,20}",
        index in any::<u64>(),
        event_id in "[A-Za-z0-9._:-]{1,40}",
        digest in any::<[u8; 32]>(),
        late in any::<bool>(),
    ) {
        let leaf = UsageLeaf {
            tenant_id: tenant,
            leaf_index: index,
            event_id,
            digest: EventDigest::from_hash(companyos_ledger::Hash::from_bytes(digest)),
            class: if late { EventClass::Late } else { EventClass::OnTime },
        };
        let bytes = leaf.to_bytes();
        prop_assert_eq!(&UsageLeaf::parse(&bytes).unwrap(), &leaf);
        prop_assert!(AuditLeaf::parse(&bytes).is_err());
        let audit = AuditLeaf { leaf_index: index, audit_id: leaf.event_id.clone(), digest: leaf.digest };
        prop_assert_eq!(&AuditLeaf::parse(&audit.to_bytes()).unwrap(), &audit);
    }
}

#[test]
fn signing_message_has_the_domain_prefix() {
    assert_eq!(SIGNATURE_CONTEXT, b"companyos/usage-event/v1\n");
    let message = usage_event::signing_message(b"{}");
    assert_eq!(message, b"companyos/usage-event/v1\n{}");
    // A signature over the bare canonical form (no prefix) is refused.
    let key = SigningKey::from_bytes(&[5; 32]);
    use ed25519_dalek::Signer as _;
    let bare = companyos_ledger::encoding::base64_encode(&key.sign(b"{}").to_bytes());
    assert_eq!(
        usage_event::verify(&key.verifying_key(), b"{}", &bare),
        Err(SignatureError::Invalid)
    );
    assert_eq!(
        usage_event::verify(&key.verifying_key(), b"{}", "not base64!"),
        Err(SignatureError::Malformed)
    );
    assert_eq!(
        usage_event::verify(&key.verifying_key(), b"{}", "AAAA"),
        Err(SignatureError::Malformed)
    );
    let public = companyos_ledger::encoding::base64_encode(key.verifying_key().as_bytes());
    assert_eq!(parse_public_key(&public), Some(key.verifying_key()));
    assert_eq!(parse_public_key("AAAA"), None);
}

#[test]
fn digest_text_is_strict() {
    let good = format!("sha256:{}", "ab".repeat(32));
    assert!(good.parse::<EventDigest>().is_ok());
    for bad in [
        format!("sha256:{}", "AB".repeat(32)),
        format!("SHA256:{}", "ab".repeat(32)),
        format!("sha256:{}", "ab".repeat(31)),
        format!("sha256:{}0", "ab".repeat(32)),
        format!("sha512:{}", "ab".repeat(32)),
        "ab".repeat(32),
    ] {
        assert!(bad.parse::<EventDigest>().is_err(), "accepted {bad}");
    }
}

#[test]
fn usage_leaf_parse_refuses_non_canonical_layouts() {
    let digest = format!("sha256:{}", "0f".repeat(32));
    let good = format!(
        "companyos/usage-leaf/v1\ntenant_id:acme\nleaf_index:7\nevent_id:evt-1\ndigest:{digest}\nclass:on_time\n"
    );
    let leaf = UsageLeaf::parse(good.as_bytes()).unwrap();
    assert_eq!(leaf.leaf_index, 7);
    assert_eq!(leaf.to_bytes(), good.as_bytes());
    for bad in [
        good.replace("leaf_index:7", "leaf_index:07"),
        good.replace("leaf_index:7", "leaf_index:+7"),
        good.replace("class:on_time", "class:late\nextra:1"),
        good.replace("class:on_time", "class:ontime"),
        good.replace("usage-leaf/v1", "usage-leaf/v2"),
        good.replace("tenant_id:", "tenant:"),
        good.trim_end().to_owned(),
        good.replace('\n', "\r\n"),
        format!("{good}\n"),
        good.replace(&digest, &digest.to_uppercase()),
    ] {
        assert!(
            UsageLeaf::parse(bad.as_bytes()).is_err(),
            "accepted {bad:?}"
        );
    }
}
