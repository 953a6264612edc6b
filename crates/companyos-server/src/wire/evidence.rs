//! The evidence depot's index entries (CONTRACT §8).

use companyos_core::evidence::EvidenceRecord;
use serde::Serialize;
use serde_json::Value;

use super::instant;

/// An artifact's index entry; `metadata` is the artifact kind's own stored document.
#[derive(Debug, Serialize)]
pub struct EvidenceBody<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub tenant_id: Option<&'a str>,
    pub sha256: &'a str,
    pub size_bytes: i64,
    pub content_type: &'a str,
    pub file_name: &'a str,
    pub created_at: String,
    pub created_by: &'a str,
    pub metadata: &'a Value,
}

impl<'a> EvidenceBody<'a> {
    pub fn of(record: &'a EvidenceRecord) -> Self {
        Self {
            id: &record.id,
            kind: &record.kind,
            tenant_id: record.tenant_id.as_deref(),
            sha256: &record.sha256,
            size_bytes: record.size_bytes,
            content_type: &record.content_type,
            file_name: &record.file_name,
            created_at: instant(record.created_at),
            created_by: &record.created_by,
            metadata: &record.metadata,
        }
    }
}
