//! Usage events as clients send them (JSON), their source signatures and digests, computed here
//! from the contract's rules rather than by the code under test.

use companyos_domain::time_util::format_rfc3339;
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use time::OffsetDateTime;

/// A valid usage event at `at` (service api, metric requests, unit request).
pub fn usage_event(tenant: &str, event_id: &str, quantity: &str, at: OffsetDateTime) -> Value {
    json!({
        "event_id": event_id,
        "tenant_id": tenant,
        "service": "api",
        "metric": "requests",
        "quantity": quantity,
        "unit": "request",
        "timestamp": format_rfc3339(at),
        "request_id": format!("req-{event_id}"),
    })
}

/// A deterministic Ed25519 source key.
pub fn source_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// The base64 public key of a source key, as `register_source` takes it.
pub fn public_key_base64(key: &SigningKey) -> String {
    companyos_ledger::encoding::base64_encode(key.verifying_key().as_bytes())
}

/// Signs an event in place: `source_signature` over its canonical form (CONTRACT §5).
pub fn sign(event: &mut Value, key: &SigningKey) {
    let object = event.as_object_mut().expect("event object");
    object.remove("source_signature");
    let canonical = companyos_ledger::usage_event::canonical_form(object).expect("canonical form");
    let signature = companyos_ledger::usage_event::sign(key, canonical.as_bytes());
    object.insert("source_signature".to_owned(), json!(signature));
}

/// `"sha256:" + hex(SHA-256(canonical form))` of an event, computed here.
pub fn digest_of(event: &Value) -> String {
    use sha2::Digest as _;
    let mut object = event.as_object().expect("event object").clone();
    object.remove("source_signature");
    object.remove("digest");
    let canonical = companyos_ledger::jcs::canonicalize(&Value::Object(object)).expect("jcs");
    let hash = sha2::Sha256::digest(canonical.as_bytes());
    format!("sha256:{}", hex(&hash))
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
