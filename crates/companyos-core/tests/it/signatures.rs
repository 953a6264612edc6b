//! Source signatures (CONTRACT §5) with `require_signature = enforce`: unsigned events are
//! rejected naming `source_signature`; only a signature by the registered source's key passes.

use companyos_core::settings::SignatureRequirement;
use serde_json::{Value, json};

use crate::support::{
    BACKENDS, Node, START, error_fields, event, ingest, public_key_base64, sign, source_key,
    statuses,
};

fn sourced(id: &str, seq: u64) -> Value {
    let mut e = event("acme", id, "3", START);
    e["source"] = json!("gw-1");
    e["source_seq"] = json!(seq);
    e
}

#[tokio::test]
async fn enforce_rejects_unsigned_and_foreign_signatures() {
    for backend in BACKENDS {
        let node = Node::open_with(backend, |settings| {
            settings.require_signature = SignatureRequirement::Enforce;
        })
        .await;
        node.tenant("acme").await;
        let meter = node.operator("meter", "ingest").await;
        let key = source_key(1);
        let stranger = source_key(2);
        node.app
            .metering()
            .register_source(&meter, "gw-1", "api", &public_key_base64(&key))
            .await
            .unwrap();

        let unsourced = event("acme", "plain", "3", START);
        let unsigned = sourced("unsigned", 1);
        let mut valid = sourced("valid", 2);
        sign(&mut valid, &key);
        let mut foreign = sourced("foreign", 3);
        sign(&mut foreign, &stranger);
        let mut altered = sourced("altered", 4);
        sign(&mut altered, &key);
        altered["quantity"] = json!("3000");
        let mut malformed = sourced("malformed", 5);
        malformed["source_signature"] = json!("not a signature");
        let mut valid_with_digest = sourced("digest", 6);
        valid_with_digest["digest"] = json!(crate::support::digest_of(&valid_with_digest));
        sign(&mut valid_with_digest, &key);

        let batch = [
            unsourced,
            unsigned,
            valid.clone(),
            foreign,
            altered,
            malformed,
            valid_with_digest,
        ];
        let outcome = ingest(&node.app, &meter, &batch).await;
        assert_eq!(
            statuses(&outcome),
            [
                "rejected", "rejected", "accepted", "rejected", "rejected", "rejected", "accepted"
            ],
            "{backend:?} {outcome:?}"
        );
        for index in [0, 1, 3, 4, 5] {
            assert!(
                error_fields(&outcome, index).contains(&"source_signature".to_owned()),
                "{index}: {:?}",
                outcome.results[index]
            );
        }
        assert!(!outcome.results[2].flags.contains(&"unsigned"));
        // The signature is kept with the event; resending it is a duplicate.
        let mut conn = node.app.db().readers().acquire().await.unwrap();
        let stored = companyos_core::bundles::read_events(&mut conn, "acme", 0, u64::MAX)
            .await
            .unwrap()
            .into_iter()
            .find(|e| e.event_id == "valid")
            .and_then(|e| e.source_signature);
        drop(conn);
        assert_eq!(stored.as_deref(), valid["source_signature"].as_str());
        let again = ingest(&node.app, &meter, &[valid]).await;
        assert_eq!(statuses(&again), ["duplicate"]);

        let row = node.reconciliation_of_start_day("acme").await;
        assert_eq!(
            (row.accepted, row.invalid, row.unsigned, row.duplicates),
            (2, 5, 0, 1)
        );
        // seqs 1, 3, 4, 5 were rejected: they are missing until they arrive validly.
        assert_eq!(row.missing, 4);
        node.close().await;
    }
}
