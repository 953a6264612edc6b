//! Building, digesting and signing usage events (CONTRACT §5).

use companyos_domain::usage::UsageEvent;
use companyos_ledger::encoding::{base64_decode, base64_encode, hex_encode};
use companyos_ledger::usage_event::{self, EventDigest};
use ed25519_dalek::SigningKey;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::client::SdkError;

/// A source's Ed25519 signing key and its registered id.
#[derive(Clone)]
pub struct SourceKey {
    id: String,
    signing_key: SigningKey,
}

impl std::fmt::Debug for SourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // No randomness means predictable keys and ids: nothing sensible can continue.
    getrandom::getrandom(&mut bytes).expect("the operating system's random source failed");
    bytes
}

impl SourceKey {
    /// A new random key for source `id`.
    pub fn generate(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            signing_key: SigningKey::from_bytes(&random()),
        }
    }

    /// A key from its base64 32-byte seed (as stored by the service that emits).
    pub fn from_seed_base64(id: &str, seed: &str) -> Result<Self, SdkError> {
        let bytes: [u8; 32] = base64_decode(seed.trim())
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                SdkError::Invalid("source key seed must be base64 of 32 bytes".to_owned())
            })?;
        Ok(Self {
            id: id.to_owned(),
            signing_key: SigningKey::from_bytes(&bytes),
        })
    }

    pub fn seed_base64(&self) -> String {
        base64_encode(&self.signing_key.to_bytes())
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The public key to register with `POST /v1/sources`.
    pub fn public_key_base64(&self) -> String {
        base64_encode(self.signing_key.verifying_key().as_bytes())
    }
}

/// A random event id shaped like a UUID v4.
pub fn random_event_id() -> String {
    let mut bytes: [u8; 16] = random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex_encode(&bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// A random W3C trace id.
pub fn random_trace_id() -> String {
    hex_encode(&random::<16>())
}

/// Builds one event.
#[derive(Debug, Clone)]
pub struct EventBuilder {
    fields: Map<String, Value>,
}

impl EventBuilder {
    /// A new event; `quantity` is a decimal string such as `"12.5"` (never a float).
    pub fn new(tenant_id: &str, service: &str, metric: &str, quantity: &str, unit: &str) -> Self {
        let mut fields = Map::new();
        fields.insert("event_id".into(), json!(random_event_id()));
        fields.insert("tenant_id".into(), json!(tenant_id));
        fields.insert("service".into(), json!(service));
        fields.insert("metric".into(), json!(metric));
        fields.insert("quantity".into(), json!(quantity));
        fields.insert("unit".into(), json!(unit));
        Self { fields }
    }

    pub fn event_id(mut self, id: &str) -> Self {
        self.fields.insert("event_id".into(), json!(id));
        self
    }

    pub fn timestamp(mut self, at: OffsetDateTime) -> Self {
        self.fields.insert(
            "timestamp".into(),
            json!(companyos_domain::time_util::format_rfc3339(at)),
        );
        self
    }

    pub fn request_id(mut self, id: &str) -> Self {
        self.fields.insert("request_id".into(), json!(id));
        self
    }

    pub fn trace_id(mut self, id: &str) -> Self {
        self.fields.insert("trace_id".into(), json!(id));
        self
    }

    /// The source and its gap-free counter for this tenant (from 1).
    pub fn source(mut self, source: &str, seq: u64) -> Self {
        self.fields.insert("source".into(), json!(source));
        self.fields.insert("source_seq".into(), json!(seq));
        self
    }

    pub fn attribute(mut self, key: &str, value: &str) -> Self {
        let attributes = self
            .fields
            .entry("attributes")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(map) = attributes {
            map.insert(key.to_owned(), json!(value));
        }
        self
    }

    /// Validates the event (every rule the server checks without its store) and adds its
    /// digest. A missing timestamp is now; a missing request and trace id is a new trace id.
    pub fn build(mut self) -> Result<Event, SdkError> {
        if !self.fields.contains_key("timestamp") {
            self = self.timestamp(OffsetDateTime::now_utc());
        }
        if !self.fields.contains_key("request_id") && !self.fields.contains_key("trace_id") {
            self = self.trace_id(&random_trace_id());
        }
        Event::from_map(self.fields)
    }

    /// Builds and signs with `key` (which also sets `source` when not set).
    pub fn sign(mut self, key: &SourceKey) -> Result<Event, SdkError> {
        if !self.fields.contains_key("source") {
            self.fields.insert("source".into(), json!(key.id()));
        }
        let mut event = self.build()?;
        event.sign(key)?;
        Ok(event)
    }
}

/// A built, valid event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    fields: Map<String, Value>,
}

impl Event {
    /// Validates an event object and adds its digest.
    pub fn from_map(mut fields: Map<String, Value>) -> Result<Event, SdkError> {
        fields.remove("digest");
        let parsed = UsageEvent::parse(&Value::Object(fields.clone()))
            .map_err(|invalid| SdkError::Invalid(invalid.errors.to_string()))?;
        fields.insert("digest".into(), json!(parsed.digest.to_string()));
        Ok(Event { fields })
    }

    pub fn event_id(&self) -> &str {
        self.fields
            .get("event_id")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// `sha256:` digest of the canonical form.
    pub fn digest(&self) -> Result<EventDigest, SdkError> {
        let canonical = usage_event::canonical_form(&self.fields)
            .map_err(|e| SdkError::Invalid(e.to_string()))?;
        Ok(EventDigest::of_canonical(canonical.as_bytes()))
    }

    /// Adds `source_signature` by `key`.
    pub fn sign(&mut self, key: &SourceKey) -> Result<(), SdkError> {
        let canonical = usage_event::canonical_form(&self.fields)
            .map_err(|e| SdkError::Invalid(e.to_string()))?;
        let signature = usage_event::sign(&key.signing_key, canonical.as_bytes());
        self.fields
            .insert("source_signature".into(), json!(signature));
        Ok(())
    }

    pub fn to_value(&self) -> Value {
        Value::Object(self.fields.clone())
    }

    pub fn into_value(self) -> Value {
        Value::Object(self.fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_events_are_valid_and_signed() {
        let key = SourceKey::generate("api-gw-1");
        let event = EventBuilder::new("acme", "api", "requests", "3", "request")
            .source("api-gw-1", 1)
            .sign(&key)
            .expect("valid");
        let value = event.to_value();
        let parsed = UsageEvent::parse(&value).expect("server accepts it");
        assert_eq!(value["digest"], json!(parsed.digest.to_string()));
        let verifying = usage_event::parse_public_key(&key.public_key_base64()).expect("key");
        assert!(
            usage_event::verify(
                &verifying,
                parsed.canonical.as_bytes(),
                value["source_signature"].as_str().unwrap_or("")
            )
            .is_ok()
        );
        assert!(
            EventBuilder::new("acme", "api", "requests", "-3", "request")
                .build()
                .is_err()
        );
    }
}
