//! Unit tests of the bundle layouts: round trips, the older layouts, corrupt input.

use super::*;

/// The usage ledger of tenant `acme`.
fn acme_log() -> LogId {
    LogId::Usage(TenantId::parse("acme").expect("a valid tenant id"))
}

#[test]
fn leaves_round_trip() {
    let a = companyos_ledger::leaf_hash(b"a");
    let b = companyos_ledger::leaf_hash(b"bb");
    let mut pending = PendingLeaves::new(LeafLayout::Whole, 7);
    pending.push_whole(a, b"a");
    pending.push_whole(b, b"bb");
    let rows = pending.encode();
    assert_eq!(rows.len(), 1);
    let (first, count, hashes, data) = &rows[0];
    assert_eq!((*first, *count), (7, 2));
    let leaves = decode_leaves(&LogId::Audit, 7, 2, hashes, Some(data)).expect("decodes");
    assert_eq!(leaves[0].index, 7);
    assert_eq!(leaves[1].index, 8);
    assert_eq!(leaves[1].hash, b);
    assert_eq!(leaves[1].data, b"bb");
    assert!(decode_leaves(&LogId::Audit, 7, 3, hashes, Some(data)).is_err());
    assert!(decode_leaves(&LogId::Audit, 7, 2, hashes, Some(&data[..data.len() - 1])).is_err());
}

/// Usage leaves are stored by what varies and read back as the exact text that was hashed;
/// more than a bundle's worth splits into bundles of at most 256.
#[test]
fn usage_leaves_are_stored_compactly_and_rebuilt_whole() {
    let digest = EventDigest::of_canonical(b"{}");
    let mut pending = PendingLeaves::new(LeafLayout::Usage, 250);
    let mut texts = Vec::new();
    for i in 250..520u64 {
        let leaf = companyos_ledger::leaf::UsageLeaf {
            tenant_id: "acme".to_owned(),
            leaf_index: i,
            event_id: format!("e-{i}"),
            digest,
            class: if i % 3 == 0 {
                EventClass::Late
            } else {
                EventClass::OnTime
            },
        };
        let text = leaf.to_bytes();
        pending.push_usage(
            companyos_ledger::leaf_hash(&text),
            &leaf.event_id,
            &digest,
            leaf.class,
        );
        texts.push(text);
    }
    let rows = pending.encode();
    assert_eq!(
        rows.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(),
        vec![(250, 256), (506, 14)]
    );
    let mut decoded = Vec::new();
    for (first, count, hashes, data) in &rows {
        assert_eq!(data[0], USAGE_LEAVES_PACKED_VERSION);
        assert!(data.len() < count * 80, "compact: {} bytes", data.len());
        decoded.extend(
            decode_leaves(&acme_log(), *first, *count, hashes, Some(data)).expect("decodes"),
        );
    }
    for (leaf, text) in decoded.iter().zip(&texts) {
        assert_eq!(&leaf.data, text);
        assert_eq!(leaf.hash, companyos_ledger::leaf_hash(text));
    }
    assert_eq!(decoded.len(), texts.len());
    // Bundles of version 2 (event ids whole, before ADR 0009) are read alike.
    let whole_ids = earlier_layouts::encode_usage_leaves(
        &texts[..2]
            .iter()
            .map(|leaf| companyos_ledger::leaf::UsageLeaf::parse(leaf).expect("parses"))
            .collect::<Vec<_>>(),
    );
    assert_eq!(whole_ids[0], USAGE_LEAVES_VERSION);
    let two =
        decode_leaves(&acme_log(), 250, 2, &rows[0].2[..64], Some(&whole_ids)).expect("decodes");
    assert_eq!(two[1].data, texts[1]);
    let (first, count, hashes, data) = &rows[1];
    assert!(decode_leaves(&LogId::Audit, *first, *count, hashes, Some(data)).is_err());
    assert!(
        decode_leaves(
            &acme_log(),
            *first,
            *count,
            hashes,
            Some(&data[..data.len() - 1])
        )
        .is_err()
    );
}

#[test]
fn events_round_trip_and_refuse_truncation() {
    let canonical = "{\"event_id\":\"8e0c1b2a-3f4d-4e5f-8a9b-0c1d2e3f4a5b\",\"quantity\":\"2\",\
                     \"tenant_id\":\"acme\",\"timestamp\":\"2026-12-03T10:20:05Z\"}";
    let events = [
        NewEvent {
            key: -5,
            event_id: "e-1",
            class: EventClass::Late,
            flags: &["unsigned", "tenant_suspended"],
            canonical: "{}",
            source_signature: Some("c2ln"),
        },
        NewEvent {
            key: 9,
            event_id: "8e0c1b2a-3f4d-4e5f-8a9b-0c1d2e3f4a5b",
            class: EventClass::OnTime,
            flags: &["unsigned"],
            canonical,
            source_signature: None,
        },
        NewEvent {
            key: 11,
            event_id: "e-3",
            class: EventClass::OnTime,
            flags: &["unsigned", "not_a_known_flag"],
            canonical: "{\"a\":1}",
            source_signature: None,
        },
    ];
    let (keys, bytes) = encode_events("acme", &events);
    assert!(
        bytes.len() < 1 + 13 + 2 + 5 + 6 + 17 + 1 + 2 + canonical.len() / 3 + 5 + 10,
        "packed: {} bytes",
        bytes.len()
    );
    assert_eq!(decode_keys(&keys).expect("keys"), vec![-5, 9, 11]);
    let decoded = decode_events("acme", 40, 3, 77, &keys, &bytes).expect("decodes");
    assert_eq!(decoded[0].seq, 40);
    assert_eq!(decoded[0].event_id, "e-1");
    assert_eq!(decoded[0].class, EventClass::Late);
    assert_eq!(decoded[0].flags, vec!["unsigned", "tenant_suspended"]);
    assert_eq!(decoded[0].source_signature.as_deref(), Some("c2ln"));
    assert_eq!(decoded[1].seq, 41);
    assert_eq!(decoded[1].key, 9);
    assert_eq!(decoded[1].event_id, "8e0c1b2a-3f4d-4e5f-8a9b-0c1d2e3f4a5b");
    assert_eq!(decoded[1].canonical, canonical);
    assert_eq!(decoded[1].flags, vec!["unsigned"]);
    assert_eq!(decoded[1].source_signature, None);
    assert_eq!(
        decoded[1].digest,
        EventDigest::of_canonical(canonical.as_bytes())
    );
    assert_eq!(decoded[2].canonical, "{\"a\":1}");
    assert_eq!(decoded[2].flags, vec!["unsigned", "not_a_known_flag"]);
    let identities =
        decode_event_identities("acme", 40, 3, &keys, &bytes, &[1, 1]).expect("decodes");
    assert_eq!(
        identities,
        vec![EventIdentity {
            key: 9,
            tenant_id: "acme".to_owned(),
            event_id: "8e0c1b2a-3f4d-4e5f-8a9b-0c1d2e3f4a5b".to_owned(),
            seq: 41,
            digest: EventDigest::of_canonical(canonical.as_bytes()),
        }]
    );
    assert!(decode_event_identities("acme", 40, 3, &keys, &bytes, &[3]).is_err());
    assert!(decode_events("acme", 40, 3, 77, &keys, &bytes[..bytes.len() - 1]).is_err());
    assert!(decode_events("acme", 40, 4, 77, &keys, &bytes).is_err());
    assert!(decode_events("acme", 40, 0, 77, &[], &[9]).is_err());
    assert!(decode_keys(&keys[..7]).is_err());
    // An unknown info bit or flag code is damage, not a default.
    let info_at = 1 + 1 + "e-1".len();
    let mut damaged = bytes.clone();
    damaged[info_at] |= 0x80;
    assert!(decode_events("acme", 40, 3, 77, &keys, &damaged).is_err());
    let mut damaged = bytes.clone();
    damaged[info_at + 2] = 77;
    assert!(decode_events("acme", 40, 3, 77, &keys, &damaged).is_err());
    // The packed canonical form refers to the bundle's tenant: read as another tenant's,
    // it is another text (and its digest no longer matches the leaf).
    let other = decode_events("globex", 40, 3, 77, &keys, &bytes).expect("decodes");
    assert_ne!(other[1].canonical, canonical);
}

/// Bundles written before the packed layout (version 1: ids, digests and canonical forms
/// whole) are still read, digest as stored.
#[test]
fn whole_layout_events_are_still_read() {
    let digest = EventDigest::of_canonical(b"{}");
    let stored =
        |event_id: &str, flags: &[&str], canonical: &str, signature: Option<&str>| StoredEvent {
            tenant_id: "acme".to_owned(),
            seq: 0,
            key: 0,
            event_id: event_id.to_owned(),
            digest,
            class: EventClass::Late,
            flags: flags.iter().map(|f| (*f).to_owned()).collect(),
            canonical: canonical.to_owned(),
            source_signature: signature.map(str::to_owned),
            received_at_micros: 0,
        };
    let bytes = earlier_layouts::encode_events(&[
        stored("e-1", &["unsigned"], "{}", Some("c2ln")),
        stored("e-2", &[], "{\"a\":1}", None),
    ]);
    assert_eq!(bytes[0], FORMAT_VERSION);
    let keys: Vec<u8> = [3i64, 4].iter().flat_map(|k| k.to_be_bytes()).collect();
    let decoded = decode_events("acme", 0, 2, 5, &keys, &bytes).expect("decodes");
    assert_eq!(decoded[0].flags, vec!["unsigned"]);
    assert_eq!(decoded[0].source_signature.as_deref(), Some("c2ln"));
    assert_eq!(decoded[1].canonical, "{\"a\":1}");
    assert_eq!(
        decoded[1].digest, digest,
        "the whole layout's digest is as stored"
    );
    assert_eq!(decoded[1].class, EventClass::Late);
    let identities = decode_event_identities("acme", 0, 2, &keys, &bytes, &[1]).expect("decodes");
    assert_eq!(identities[0].event_id, "e-2");
}
