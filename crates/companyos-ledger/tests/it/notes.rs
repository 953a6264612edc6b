//! C2SP signed-note and tlog-checkpoint vectors: Go's `golang.org/x/mod/sumdb/note` test keys,
//! signatures and malformed notes, two signed sumdb tree notes whose roots are recomputed from
//! their published records, and the examples at the top of the C2SP specs.

use companyos_ledger::checkpoint::{Checkpoint, CheckpointError};
use companyos_ledger::hash::leaf_hash;
use companyos_ledger::merkle::MemoryTree;
use companyos_ledger::note::{
    KeyName, NOTE_SIGNATURES_MAX, NoteError, NoteSigner, NoteVerifier, SignedNote, key_id,
};
use companyos_ledger::{Hash, hash::sha256};

use crate::common::{b64, signer, str_array, str_field, vector_json};

fn go_note() -> serde_json::Value {
    vector_json("notes/go-sumdb-note.json")
}

#[test]
fn go_verifier_key_parses_and_key_id_is_recomputed() {
    let v = go_note();
    let key = str_field(&v, "peter_verifier_key");
    let verifier = NoteVerifier::parse(key).unwrap();
    assert_eq!(verifier.name().as_str(), "PeterNeumann");
    assert_eq!(verifier.key_id(), 0xc74f20a3);
    assert_eq!(verifier.to_string(), key);
    // key ID = SHA-256(name || 0x0A || 0x01 || public key)[:4]
    let mut material = vec![0x01];
    material.extend_from_slice(verifier.verifying_key().as_bytes());
    assert_eq!(key_id(verifier.name(), &material), 0xc74f20a3);
    let mut input = b"PeterNeumann\n".to_vec();
    input.extend_from_slice(&material);
    assert_eq!(&sha256(&input).as_bytes()[..4], &[0xc7, 0x4f, 0x20, 0xa3]);

    let enoch = NoteVerifier::parse(str_field(&v, "enoch_verifier_key")).unwrap();
    assert_eq!(enoch.key_id(), 0xaf0cfe78);
}

#[test]
fn go_verifier_key_manglings_are_rejected() {
    let v = go_note();
    let key = str_field(&v, "peter_verifier_key").as_bytes().to_vec();
    // Every proper substring (TestNewVerifier).
    for i in 0..=key.len() {
        for j in i + 1..=key.len() {
            if i == 0 && j == key.len() {
                continue;
            }
            let sub = String::from_utf8(key[i..j].to_vec()).unwrap();
            assert!(
                NoteVerifier::parse(&sub).is_err(),
                "accepted substring {sub:?}"
            );
        }
    }
    // Every single byte incremented.
    for i in 0..key.len() {
        let mut mangled = key.clone();
        mangled[i] += 1;
        let text = String::from_utf8(mangled).unwrap();
        assert!(NoteVerifier::parse(&text).is_err(), "accepted {text:?}");
    }
    // Wrong-length key and unknown algorithm, each with an adjusted key id.
    let bad = str_array(&v, "bad_verifier_keys");
    assert_eq!(
        NoteVerifier::parse(bad[0]),
        Err(NoteError::MalformedVerifierKey)
    );
    assert_eq!(
        NoteVerifier::parse(bad[1]),
        Err(NoteError::UnsupportedAlgorithm(0x65))
    );
}

#[test]
fn go_signer_key_parses_and_manglings_are_rejected() {
    let v = go_note();
    let skey = str_field(&v, "peter_signer_key");
    let signer = NoteSigner::from_signer_key(skey).unwrap();
    assert_eq!(signer.key_id(), 0xc74f20a3);
    assert_eq!(signer.to_signer_key(), skey);
    assert_eq!(
        signer.verifier().to_string(),
        str_field(&v, "peter_verifier_key")
    );

    let bytes = skey.as_bytes().to_vec();
    for i in 0..=bytes.len() {
        for j in i + 1..=bytes.len() {
            if i == 0 && j == bytes.len() {
                continue;
            }
            let sub = String::from_utf8(bytes[i..j].to_vec()).unwrap();
            assert!(
                NoteSigner::from_signer_key(&sub).is_err(),
                "accepted {sub:?}"
            );
        }
    }
    for i in 0..bytes.len() {
        let mut mangled = bytes.clone();
        mangled[i] += 1;
        let text = String::from_utf8(mangled).unwrap();
        assert!(
            NoteSigner::from_signer_key(&text).is_err(),
            "accepted {text:?}"
        );
    }
}

#[test]
fn go_sign_reproduces_the_published_signature() {
    let v = go_note();
    let signer = NoteSigner::from_signer_key(str_field(&v, "peter_signer_key")).unwrap();
    let text = str_field(&v, "text");
    let note = signer.sign_note(text).unwrap();
    // Ed25519 is deterministic: the same key and text give the published bytes exactly.
    assert_eq!(note.to_string(), str_field(&v, "signed_note"));
    // TestSign's bad inputs: text without a final newline.
    assert!(matches!(
        signer.sign_note("abc"),
        Err(NoteError::Malformed(_))
    ));
    assert!(matches!(signer.sign_note(""), Err(NoteError::Malformed(_))));
    assert!(matches!(
        signer.sign_note("a\u{1}b\n"),
        Err(NoteError::Malformed(_))
    ));
}

#[test]
fn go_open_with_known_and_unknown_keys() {
    let v = go_note();
    let peter = NoteVerifier::parse(str_field(&v, "peter_verifier_key")).unwrap();
    let enoch = NoteVerifier::parse(str_field(&v, "enoch_verifier_key")).unwrap();
    let text = str_field(&v, "text");
    let peter_sig = str_field(&v, "peter_signature_line");
    let enoch_sig = str_field(&v, "enoch_signature_line");
    let both = format!("{text}\n{peter_sig}{enoch_sig}");

    // One verified, one unknown (ignored).
    let note = SignedNote::parse(both.as_bytes()).unwrap();
    assert_eq!(note.text(), text);
    assert_eq!(note.signatures().len(), 2);
    assert_eq!(note.signatures()[0].key_id, 0xc74f20a3);
    assert_eq!(note.signatures()[1].key_id, 0xaf0cfe78);
    let names = |v: Vec<KeyName>| {
        v.into_iter()
            .map(|n| n.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(note.verify(std::slice::from_ref(&peter)).unwrap()),
        ["PeterNeumann"]
    );
    // Both verified.
    assert_eq!(
        names(note.verify(&[peter.clone(), enoch.clone()]).unwrap()),
        ["PeterNeumann", "EnochRoot"]
    );
    // Neither known.
    assert_eq!(note.verify(&[]), Err(NoteError::NoKnownSignature));
    // The note re-serialises byte for byte.
    assert_eq!(note.to_string(), both);

    // Too many signatures (101 > 100).
    let many = format!("{text}\n{}", peter_sig.repeat(NOTE_SIGNATURES_MAX + 1));
    assert!(matches!(
        SignedNote::parse(many.as_bytes()),
        Err(NoteError::Malformed(_))
    ));
    let max = format!("{text}\n{}", peter_sig.repeat(NOTE_SIGNATURES_MAX));
    assert!(
        SignedNote::parse(max.as_bytes())
            .unwrap()
            .verify(std::slice::from_ref(&peter))
            .is_ok()
    );

    // A known key whose signature does not verify rejects the whole note.
    let corrupted = format!("{text}\n{}ABCD{}", &peter_sig[..60], &peter_sig[60..]);
    let result = SignedNote::parse(corrupted.as_bytes())
        .and_then(|n| n.verify(std::slice::from_ref(&peter)));
    assert!(result.is_err(), "corrupted signature accepted");

    // Duplicated verified signatures and unverified ones (unknown key) are fine.
    let dup = format!(
        "{text}\n{peter_sig}{peter_sig}{enoch_sig}{enoch_sig}{}ABCD{}",
        &enoch_sig[..60],
        &enoch_sig[60..]
    );
    let note = SignedNote::parse(dup.as_bytes()).unwrap();
    assert_eq!(
        names(note.verify(std::slice::from_ref(&peter)).unwrap()),
        ["PeterNeumann"]
    );

    // A signature under another name, or another key id, is from an unknown key.
    let misnamed = peter_sig.replace("PeterNeumann", "CarmenSandiego");
    let note = SignedNote::parse(format!("{text}\n{misnamed}").as_bytes()).unwrap();
    assert_eq!(
        note.verify(std::slice::from_ref(&peter)),
        Err(NoteError::NoKnownSignature)
    );
    let wrong_id = peter_sig.replace("x08g", "xxxx");
    let note = SignedNote::parse(format!("{text}\n{wrong_id}").as_bytes()).unwrap();
    assert_eq!(
        note.verify(std::slice::from_ref(&peter)),
        Err(NoteError::NoKnownSignature)
    );
}

#[test]
fn go_malformed_notes_are_rejected() {
    let v = go_note();
    let text = str_field(&v, "text");
    let peter_sig = str_field(&v, "peter_signature_line");
    for bad in str_array(&v, "malformed_notes") {
        let bytes = if bad == "HEX:ff" {
            let mut b = vec![0xff];
            b.extend_from_slice(format!("{text}\n{peter_sig}").as_bytes());
            b
        } else {
            bad.as_bytes().to_vec()
        };
        assert!(
            matches!(SignedNote::parse(&bytes), Err(NoteError::Malformed(_))),
            "accepted malformed note {:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

#[test]
fn c2sp_signed_note_example_parses() {
    let v = vector_json("notes/c2sp-examples.json");
    let example = str_field(&v, "signed_note_example");
    let note = SignedNote::parse(example.as_bytes()).unwrap();
    // The text keeps its own blank line; the last blank line separates the signatures.
    assert_eq!(
        note.text(),
        "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned \u{e8} subito sera.\n"
    );
    assert_eq!(note.signatures().len(), 1);
    assert_eq!(note.signatures()[0].name, "quasimodo.example/salvatore");
    assert_eq!(note.signatures()[0].signature.len(), 64);
    assert_eq!(note.to_string(), example);
    // Its key is not published: a verifier with that name but another key (so another key id)
    // ignores the signature, which leaves the note with no known signature.
    let other = signer("quasimodo.example/salvatore", 1).verifier();
    assert_eq!(note.verify(&[other]), Err(NoteError::NoKnownSignature));
}

#[test]
fn c2sp_checkpoint_example_parses() {
    let v = vector_json("notes/c2sp-examples.json");
    let example = str_field(&v, "checkpoint_example");
    let note = SignedNote::parse(example.as_bytes()).unwrap();
    let checkpoint = Checkpoint::parse_note_text(note.text()).unwrap();
    assert_eq!(checkpoint.origin(), "example.com/behind-the-sofa");
    assert_eq!(checkpoint.tree_size(), 20_852_163);
    assert_eq!(
        checkpoint.root().to_base64(),
        "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
    );
    assert!(checkpoint.extensions().is_empty());
    assert_eq!(checkpoint.to_note_text(), note.text());
    assert_eq!(note.signatures()[0].key_id, 0x033de0ae);
    // Opening with a key that does not sign it fails.
    let verifier = signer("example.com/behind-the-sofa", 2).verifier();
    assert!(Checkpoint::open(example.as_bytes(), None, &verifier).is_err());
}

fn tree_notes() -> serde_json::Value {
    vector_json("notes/go-sumdb-tree-notes.json")
}

fn records(v: &serde_json::Value, fields: &[&str]) -> Vec<Hash> {
    fields
        .iter()
        .flat_map(|f| str_array(v, f))
        .map(|record| leaf_hash(record.as_bytes()))
        .collect()
}

#[test]
fn go_sumdb_tree_notes_verify_and_roots_recompute() {
    let v = tree_notes();
    let verifier = NoteVerifier::parse(str_field(&v, "verifier_key")).unwrap();
    assert_eq!(verifier.key_id(), 0x0000_0c67);
    let signer = NoteSigner::from_signer_key(str_field(&v, "signer_key")).unwrap();
    assert_eq!(signer.verifier(), verifier);

    // The "new database" tree: three common records, Quote, then fork b's two records.
    let new_note = str_field(&v, "new_tree_note");
    let checkpoint =
        Checkpoint::open(new_note.as_bytes(), Some("go.sum database tree"), &verifier).unwrap();
    assert_eq!(checkpoint.tree_size(), 6);
    let leaves = records(&v, &["common_records", "fork_b_records"]);
    assert_eq!(
        MemoryTree::from_leaf_hashes(leaves).root(),
        *checkpoint.root()
    );
    // Re-signing the same text gives the same signature line.
    assert_eq!(
        signer
            .sign_note(&checkpoint.to_note_text())
            .unwrap()
            .to_string(),
        new_note
    );
    assert!(matches!(
        Checkpoint::open(new_note.as_bytes(), Some("another log"), &verifier),
        Err(CheckpointError::WrongOrigin { .. })
    ));

    // The "old database" tree of the other fork (5 records). The Go test's comment quotes its
    // origin with a stray "!", which the signature shows was not in the signed text.
    let quoted = str_field(&v, "old_tree_note_as_quoted");
    assert!(Checkpoint::open(quoted.as_bytes(), None, &verifier).is_err());
    let fixed = quoted.replacen("go.sum database tree!", "go.sum database tree", 1);
    let old = Checkpoint::open(fixed.as_bytes(), None, &verifier).unwrap();
    assert_eq!(old.tree_size(), 5);
    let leaves = records(&v, &["common_records", "fork_a_records"]);
    assert_eq!(MemoryTree::from_leaf_hashes(leaves).root(), *old.root());
    assert_eq!(
        signer.sign_note(&old.to_note_text()).unwrap().to_string(),
        fixed
    );
}

#[test]
fn go_tlog_tree_text_format() {
    let v = tree_notes();
    let golden = &v["format_tree_golden"];
    let root = leaf_hash(str_field(golden, "record").as_bytes());
    let checkpoint = Checkpoint::new(
        "go.sum database tree",
        golden["size"].as_u64().unwrap(),
        root,
    )
    .unwrap();
    assert_eq!(checkpoint.to_note_text(), str_field(golden, "text"));
    assert_eq!(
        Checkpoint::parse_note_text(str_field(golden, "text")).unwrap(),
        checkpoint
    );
    for bad in str_array(&v, "bad_trees") {
        let parsed = Checkpoint::parse_note_text(bad);
        // The first is well formed for a checkpoint (only its origin differs): the origin check
        // of `Checkpoint::open` is what rejects it.
        if bad.starts_with("not-") {
            assert_ne!(parsed.unwrap().origin(), "go.sum database tree");
        } else {
            assert!(parsed.is_err(), "accepted {bad:?}");
        }
    }
}

#[test]
fn checkpoint_text_edge_cases() {
    let root = Hash::from_bytes([7; 32]);
    let base = Checkpoint::new("example.com/log", 42, root).unwrap();
    let text = base.to_note_text();
    assert_eq!(Checkpoint::parse_note_text(&text).unwrap(), base);
    let r = root.to_base64();
    let bad = [
        String::new(),
        format!("example.com/log\n42\n{r}"), // no final newline
        format!("\n42\n{r}\n"),              // empty origin
        format!("example.com/log\n042\n{r}\n"), // leading zero
        format!("example.com/log\n+42\n{r}\n"), // sign
        format!("example.com/log\n-1\n{r}\n"), // negative
        format!("example.com/log\n18446744073709551616\n{r}\n"), // > u64
        format!("example.com/log\n42\n{}\n", &r[..r.len() - 1]), // short base64
        format!("example.com/log\n42\n{}\n", root.to_hex()), // hex root
        format!("example.com/log\n42\n{r}\n\n"), // empty extension line
        "example.com/log\n42\n".to_owned(),  // no root
        format!("example.com/log\n42\n{r}\r\n"), // CR
        format!("example.com/log\t\n42\n{r}\n"), // control char in origin
    ];
    for text in bad {
        assert!(
            Checkpoint::parse_note_text(&text).is_err(),
            "accepted {text:?}"
        );
    }
    let zero = Checkpoint::parse_note_text(&format!("o\n0\n{r}\n")).unwrap();
    assert_eq!(zero.tree_size(), 0);
    let with_ext = base.clone().with_extension("ext one").unwrap();
    assert_eq!(
        Checkpoint::parse_note_text(&with_ext.to_note_text()).unwrap(),
        with_ext
    );
    assert!(base.clone().with_extension("").is_err());
    assert!(Checkpoint::new(&"x".repeat(257), 1, root).is_err());
}

#[test]
fn signature_line_bytes_are_key_id_then_signature() {
    let v = go_note();
    let line = str_field(&v, "peter_signature_line");
    let encoded = line
        .trim_end()
        .strip_prefix("\u{2014} PeterNeumann ")
        .unwrap();
    let bytes = b64(encoded);
    assert_eq!(bytes.len(), 4 + 64);
    assert_eq!(&bytes[..4], &0xc74f20a3u32.to_be_bytes());
}
