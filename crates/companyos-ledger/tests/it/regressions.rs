//! Replays every input under `tests/vectors/fuzz-regressions/<target>/` through the checks of the
//! fuzz target of that name (`fuzz/fuzz_targets/<target>.rs`): inputs that once crashed a target
//! or broke one of its invariants, and seeds worth keeping.

use companyos_ledger::checkpoint::Checkpoint;
use companyos_ledger::jcs::{canonicalize, parse_strict};
use companyos_ledger::note::{NoteVerifier, SignedNote};

use crate::common::{signer, vector_path};

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = vector_path(&format!("fuzz-regressions/{target}"));
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<u8>)> = entries
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .filter(|(name, _)| name != "README.md")
        .collect();
    out.sort();
    out
}

/// The invariants of `fuzz/fuzz_targets/note_parse.rs`.
pub fn note_parse(data: &[u8]) {
    if let Ok(note) = SignedNote::parse(data) {
        let text = note.to_string();
        assert_eq!(SignedNote::parse(text.as_bytes()).unwrap(), note);
        // Canonical signature encodings: re-serialising gives the input back.
        assert_eq!(text.as_bytes(), data);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(checkpoint) = Checkpoint::parse_note_text(text) {
            assert_eq!(checkpoint.to_note_text(), text);
        }
        if let Ok(verifier) = NoteVerifier::parse(text) {
            assert_eq!(
                NoteVerifier::parse(&verifier.to_string()).unwrap(),
                verifier
            );
        }
    }
}

/// The invariants of `fuzz/fuzz_targets/checkpoint_open.rs`.
pub fn checkpoint_open(data: &[u8]) {
    let key = signer("companyos.local", 1);
    let verifier = key.verifier();
    // Raw input as a signed note: it can only open if it carries a genuine signature.
    if let Ok(checkpoint) = Checkpoint::open(data, None, &verifier) {
        let note = SignedNote::parse(data).unwrap();
        assert_eq!(
            Checkpoint::parse_note_text(note.text()).unwrap(),
            checkpoint
        );
    }
    // Input as checkpoint text: whatever parses, signs and opens to the same checkpoint.
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(checkpoint) = Checkpoint::parse_note_text(text) {
            let note = key.sign_note(text).unwrap().to_string();
            let opened =
                Checkpoint::open(note.as_bytes(), Some(checkpoint.origin()), &verifier).unwrap();
            assert_eq!(opened, checkpoint);
            let other = signer("companyos.local", 2).verifier();
            assert!(Checkpoint::open(note.as_bytes(), None, &other).is_err());
        }
    }
}

/// The invariants of `fuzz/fuzz_targets/usage_event_parse.rs` (without the domain parser, which
/// this crate does not depend on).
pub fn usage_event_parse(data: &[u8]) {
    if let Ok(value) = parse_strict(data) {
        if let Ok(first) = canonicalize(&value) {
            let reparsed = parse_strict(first.as_bytes()).unwrap();
            let second = canonicalize(&reparsed).unwrap();
            assert_eq!(first, second);
        }
    }
}

#[test]
fn fuzz_regressions_replay() {
    let mut replayed = 0;
    for (target, check) in [
        ("note_parse", note_parse as fn(&[u8])),
        ("checkpoint_open", checkpoint_open),
        ("usage_event_parse", usage_event_parse),
    ] {
        for (name, data) in inputs(target) {
            eprintln!("replaying {target}/{name}");
            check(&data);
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no regression inputs found");
}
