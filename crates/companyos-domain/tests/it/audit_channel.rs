//! The audit record's channel: a record without one keeps the canonical form (and so the leaf
//! digest) it had before channels existed; a record with one commits to it.

#![allow(clippy::unwrap_used)]

use companyos_domain::audit::{AuditChannel, AuditOutcome, AuditRecord};
use serde_json::json;

fn record(channel: Option<AuditChannel>) -> AuditRecord {
    AuditRecord {
        id: "aud_1".to_owned(),
        seq: 7,
        occurred_at: "2026-03-02T12:00:00.000000Z".to_owned(),
        actor: "olga".to_owned(),
        role: "operator".to_owned(),
        action: "tenant.suspend".to_owned(),
        target: "tenant:acme".to_owned(),
        tenant_id: Some("acme".to_owned()),
        outcome: AuditOutcome::Success,
        reason: Some("unpaid".to_owned()),
        request_id: None,
        policy_sha256: "00".to_owned(),
        details: json!({}),
        channel,
    }
}

#[test]
fn a_record_without_a_channel_keeps_its_pre_channel_canonical_form() {
    // The canonical form as written by every release before channels (thirteen members).
    let before = concat!(
        r#"{"action":"tenant.suspend","actor":"olga","details":{},"id":"aud_1","#,
        r#""occurred_at":"2026-03-02T12:00:00.000000Z","outcome":"success","#,
        r#""policy_sha256":"00","reason":"unpaid","request_id":null,"role":"operator","#,
        r#""seq":7,"target":"tenant:acme","tenant_id":"acme"}"#
    );
    assert_eq!(record(None).canonical().unwrap(), before);
    assert!(record(None).to_json().get("channel").is_none());
}

#[test]
fn a_record_with_a_channel_commits_to_it() {
    let console = record(Some(AuditChannel::Console)).canonical().unwrap();
    assert!(console.contains(r#""channel":"console""#), "{console}");
    assert_ne!(
        console,
        record(Some(AuditChannel::Api)).canonical().unwrap()
    );
    assert_ne!(console, record(None).canonical().unwrap());
    for channel in AuditChannel::ALL {
        assert_eq!(AuditChannel::parse(channel.as_str()), Some(channel));
    }
    assert_eq!(AuditChannel::parse("telegraph"), None);
}
