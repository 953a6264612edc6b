//! Fuzzes the signed-note and checkpoint parsers and the verifier-key parser: none may panic, and
//! whatever parses must re-serialise to the same bytes (one text, one encoding).
#![no_main]

use companyos_ledger::checkpoint::Checkpoint;
use companyos_ledger::note::{NoteVerifier, SignedNote};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(note) = SignedNote::parse(data) {
        let text = note.to_string();
        let reparsed = SignedNote::parse(text.as_bytes()).expect("a parsed note re-parses");
        assert_eq!(reparsed, note);
        assert_eq!(
            text.as_bytes(),
            data,
            "a parsed note re-serialises to its input"
        );
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(checkpoint) = Checkpoint::parse_note_text(text) {
            assert_eq!(checkpoint.to_note_text(), text);
        }
        if let Ok(verifier) = NoteVerifier::parse(text) {
            let again = NoteVerifier::parse(&verifier.to_string()).expect("re-parses");
            assert_eq!(again, verifier);
        }
    }
});
