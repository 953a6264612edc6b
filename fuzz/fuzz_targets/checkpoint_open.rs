//! Fuzzes `Checkpoint::open`: raw input as a signed checkpoint (it may only open with a genuine
//! signature), and input as checkpoint text that is signed and opened again (it must come back
//! equal, and must not open with another key).
#![no_main]

use std::sync::OnceLock;

use companyos_ledger::checkpoint::Checkpoint;
use companyos_ledger::note::{KeyName, NoteSigner, NoteVerifier, SignedNote};
use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;

fn keys() -> &'static (NoteSigner, NoteVerifier, NoteVerifier) {
    static KEYS: OnceLock<(NoteSigner, NoteVerifier, NoteVerifier)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let name = KeyName::parse("companyos.local").expect("valid name");
        let signer = NoteSigner::new(name.clone(), SigningKey::from_bytes(&[1; 32]));
        let other = NoteSigner::new(name, SigningKey::from_bytes(&[2; 32])).verifier();
        let verifier = signer.verifier();
        (signer, verifier, other)
    })
}

fuzz_target!(|data: &[u8]| {
    let (signer, verifier, other) = keys();
    if let Ok(checkpoint) = Checkpoint::open(data, None, verifier) {
        let note = SignedNote::parse(data).expect("an opened note parses");
        assert_eq!(
            Checkpoint::parse_note_text(note.text()).expect("parses"),
            checkpoint
        );
    }
    let _ = Checkpoint::open(data, Some("companyos.local/tenants/acme"), other);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(checkpoint) = Checkpoint::parse_note_text(text) {
            let note = signer
                .sign_note(text)
                .expect("checkpoint text is valid note text");
            let signed = note.to_string();
            let opened = Checkpoint::open(signed.as_bytes(), Some(checkpoint.origin()), verifier)
                .expect("a freshly signed checkpoint opens");
            assert_eq!(opened, checkpoint);
            assert!(Checkpoint::open(signed.as_bytes(), None, other).is_err());
        }
    }
});
