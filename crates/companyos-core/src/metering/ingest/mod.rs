//! Usage ingestion (MET-1, MET-2; CONTRACT §5): validation of every rule, dedupe by
//! (tenant_id, event_id) with no expiry, the late window, signatures, the coverage gate, and the
//! append of each accepted or late event to its tenant's ledger — all in one transaction with
//! the rollups, the reconciliation counters and the audit record.
//!
//! Requests are validated in their own tasks, then handed to one writer task per node that
//! commits many requests in one transaction (group commit): one fsync for many batches.
//! Several nodes on one PostgreSQL database serialise per tenant on the ledger head row lock,
//! so each tenant's tree stays gap-free and duplicate-free.

use companyos_domain::FieldError;
use companyos_domain::usage::{InvalidEvent, UsageEvent};
use tokio::sync::oneshot;

use crate::app::{Actor, App};
use crate::authz::Resource;
use crate::error::ServiceError;
use companyos_domain::Action;

mod check;
mod queue;
mod split;
mod writer;

pub(crate) use check::{Checked, Rejected};
pub use queue::IngestQueue;
pub(crate) use queue::Job;
pub use split::split_body;

/// How one event of a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStatus {
    Accepted,
    Duplicate,
    Late,
    Rejected,
    Conflict,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Accepted => "accepted",
            EventStatus::Duplicate => "duplicate",
            EventStatus::Late => "late",
            EventStatus::Rejected => "rejected",
            EventStatus::Conflict => "conflict",
        }
    }
}

/// The result row of one event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventResult {
    pub index: usize,
    pub event_id: Option<String>,
    pub status: EventStatus,
    pub seq: Option<u64>,
    pub digest: Option<String>,
    pub errors: Vec<FieldError>,
    pub flags: Vec<&'static str>,
}

/// The answer to one ingestion request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestOutcome {
    pub results: Vec<EventResult>,
}

impl IngestOutcome {
    pub fn count(&self, status: EventStatus) -> usize {
        self.results.iter().filter(|r| r.status == status).count()
    }
}

/// One event of a request, as read from the body.
#[derive(Debug, Clone)]
pub struct RawEvent {
    /// The event's JSON text (kept, bounded, for rejections and conflicts).
    pub raw: String,
    pub parsed: Result<UsageEvent, InvalidEvent>,
}

impl RawEvent {
    /// Parses one event's JSON text.
    pub fn parse(raw: &str) -> RawEvent {
        RawEvent {
            raw: raw.to_owned(),
            parsed: UsageEvent::parse_bytes(raw.as_bytes()),
        }
    }

    /// Parses one event's JSON text, keeping the text itself.
    pub fn from_text(raw: String) -> RawEvent {
        let parsed = UsageEvent::parse_bytes(raw.as_bytes());
        RawEvent { raw, parsed }
    }
}

/// `raw` cut to at most `bytes_max` bytes (on a character boundary), and whether it was cut.
pub(crate) fn truncate(raw: &str, bytes_max: usize) -> (String, bool) {
    if raw.len() <= bytes_max {
        return (raw.to_owned(), false);
    }
    let mut end = bytes_max;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    (raw[..end].to_owned(), true)
}

impl App {
    /// Ingests a batch of events (`POST /v1/events`, `companyos usage send`).
    pub async fn ingest(
        &self,
        actor: &Actor,
        events: Vec<RawEvent>,
    ) -> Result<IngestOutcome, ServiceError> {
        self.admit_usage_batch(actor, events.len()).await?;
        self.ingest_authorized(actor, events).await
    }

    /// The checks every usage batch passes first, whatever its format: at most
    /// `batch_events_max` events, and a caller the policies let send usage (before any lookup,
    /// so an account that may not send usage learns nothing).
    pub(crate) async fn admit_usage_batch(
        &self,
        actor: &Actor,
        events: usize,
    ) -> Result<(), ServiceError> {
        let batch_max = self.settings().batch_events_max;
        if events > batch_max {
            return Err(ServiceError::TooLarge(format!(
                "a batch holds at most {batch_max} events, this one has {events}"
            )));
        }
        self.authorize_read(
            actor,
            Action::UsageIngest,
            Resource::Deployment,
            "usage",
            None,
        )
        .await
    }

    /// [`Self::ingest`] for a caller that has authorized `usage.ingest` for this request and
    /// checked the batch's size.
    pub(crate) async fn ingest_authorized(
        &self,
        actor: &Actor,
        events: Vec<RawEvent>,
    ) -> Result<IngestOutcome, ServiceError> {
        if events.is_empty() {
            return Ok(IngestOutcome::default());
        }
        let (checked, rejected) = self.check_events(events).await?;
        self.ensure_writer();
        let (reply, answer) = oneshot::channel();
        let job = Job {
            actor: actor.clone(),
            checked,
            rejected,
            reply,
        };
        self.inner.ingest.sender.send(job).await.map_err(|_| {
            ServiceError::Unavailable("the ingestion writer has stopped".to_owned())
        })?;
        let (result, spent) = answer.await.map_err(|_| {
            ServiceError::Unavailable("the ingestion writer has stopped".to_owned())
        })?;
        // The writer noted a failure for want of the store (readiness), where it knew the cause.
        let decisions = result
            .map_err(|e| ServiceError::Unavailable(format!("ingestion failed, retry: {e}")))?;
        Ok(spent.outcome(decisions))
    }
}
