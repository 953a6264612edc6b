//! The packed stored forms give back exactly the text they were made from, for any text: event
//! canonical forms made of the contract's members, ids and timestamps, and arbitrary strings
//! (control characters, tokens, unicode, near-misses of every shape the packer looks for).

use companyos_domain::event_packing::{
    PackContext, pack_canonical, pack_event_id, packed_event_id_len, unpack_canonical,
    unpack_event_id,
};
use proptest::prelude::*;

/// Pieces a packer may or may not replace, so generated texts hit every branch and its
/// near-misses.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"event_id\":\"".to_owned()),
        Just("\"tenant_id\":\"".to_owned()),
        Just("\"timestamp\":\"".to_owned()),
        Just("\"quantity\":".to_owned()),
        Just("\"source_seq\":".to_owned()),
        Just("\"unit\":\"".to_owned()),
        Just("\"".to_owned()),
        Just(",".to_owned()),
        Just("{".to_owned()),
        Just("acme".to_owned()),
        Just("e17".to_owned()),
        (
            0u64..253_402_300_799,
            prop_oneof![Just(String::new()), "\\.[0-9]{0,11}"],
            any::<bool>()
        )
            .prop_map(|(s, fraction, quoted)| {
                let at = time::OffsetDateTime::from_unix_timestamp(s as i64).expect("in range");
                format!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{fraction}Z{}",
                    at.year(),
                    u8::from(at.month()),
                    at.day(),
                    at.hour(),
                    at.minute(),
                    at.second(),
                    if quoted { "\"" } else { "" }
                )
            }),
        "[0-9:T\\-Z\"]{0,22}",
        "\\PC{0,6}",
        "[\\x00-\\x1f]{1,3}",
        any::<String>(),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..24).prop_map(|pieces| pieces.concat())
}

fn event_id() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "[0-9a-fA-F\\-]{36}",
        "[A-Za-z0-9._:\\-]{1,128}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn canonical_forms_unpack_to_their_text(
        body in text(),
        tenant_id in prop_oneof![Just("acme".to_owned()), "[a-z0-9-]{1,20}"],
        event_id in prop_oneof![Just("e17".to_owned()), event_id()],
        with_own_members in any::<bool>(),
    ) {
        let canonical = if with_own_members {
            format!("{{\"event_id\":\"{event_id}\",{body},\"tenant_id\":\"{tenant_id}\"}}")
        } else {
            body
        };
        let context = PackContext { tenant_id: &tenant_id, event_id: &event_id };
        let mut packed = Vec::new();
        pack_canonical(&canonical, context, &mut packed);
        prop_assert!(packed.len() <= canonical.len() * 2, "an escape doubles a byte at most");
        let unpacked = unpack_canonical(&packed, context).expect("unpacks");
        prop_assert_eq!(unpacked, canonical);
    }

    #[test]
    fn event_ids_unpack_to_their_text(id in event_id(), tail in prop::collection::vec(any::<u8>(), 0..4)) {
        let mut packed = Vec::new();
        pack_event_id(&id, &mut packed);
        prop_assert!(packed.len() <= id.len() + 1);
        packed.extend_from_slice(&tail);
        let mut unpacked = String::new();
        let rest = unpack_event_id(&packed, &mut unpacked).expect("unpacks");
        prop_assert_eq!(packed.len() - tail.len(), packed_event_id_len(&packed));
        prop_assert_eq!(unpacked, id);
        prop_assert_eq!(rest, &tail[..]);
    }

    /// Whatever the stored bytes, unpacking returns an error or a text, never a panic; and a
    /// text it returns packs to bytes that unpack to it again.
    #[test]
    fn any_stored_bytes_unpack_or_fail_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let context = PackContext { tenant_id: "acme", event_id: "e17" };
        if let Ok(unpacked) = unpack_canonical(&bytes, context) {
            let mut again = Vec::new();
            pack_canonical(&unpacked, context, &mut again);
            let text = unpack_canonical(&again, context).expect("unpacks");
            prop_assert_eq!(text, unpacked);
        }
        let mut id = String::new();
        let _ = unpack_event_id(&bytes, &mut id);
    }
}
