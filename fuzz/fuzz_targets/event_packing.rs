//! Fuzzes the stored (packed) forms of usage events: unpacking any bytes as a canonical form or
//! an event id must return an error or a text, never panic; a text it returns must pack to bytes
//! that unpack to it again; and any UTF-8 text must survive pack then unpack exactly.
#![no_main]

use companyos_domain::event_packing::{
    PackContext, pack_canonical, pack_event_id, unpack_canonical, unpack_event_id,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let context = PackContext {
        tenant_id: "acme",
        event_id: "8e0c1b2a-3f4d-4e5f-8a9b-0c1d2e3f4a5b",
    };
    if let Ok(unpacked) = unpack_canonical(data, context) {
        let mut packed = Vec::new();
        pack_canonical(&unpacked, context, &mut packed);
        let again = unpack_canonical(&packed, context).expect("packed bytes unpack");
        assert_eq!(again, unpacked);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let mut packed = Vec::new();
        pack_canonical(text, context, &mut packed);
        let again = unpack_canonical(&packed, context).expect("packed bytes unpack");
        assert_eq!(again, text);
        if (1..=128).contains(&text.len()) {
            let mut id = Vec::new();
            pack_event_id(text, &mut id);
            let mut again = String::new();
            let rest = unpack_event_id(&id, &mut again).expect("a packed id unpacks");
            assert!(rest.is_empty());
            assert_eq!(again, text);
        }
    }
    let mut id = String::new();
    let _ = unpack_event_id(data, &mut id);
});
