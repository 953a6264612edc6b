//! CloudEvents ingestion (`POST /api/v1/events`): each (CloudEvent, meter) pair becomes a
//! native usage event, and the batch goes through [`App::ingest`], the one ingestion path
//! (validation, dedupe, ledger, rollups, quotas, statements). Nothing here writes the store.

use std::collections::{BTreeSet, HashMap};

use companyos_domain::cloudevent::{self, CloudEvent, RefusedCloudEvent};
use companyos_domain::meter::Meter;
use companyos_domain::{FieldError, TenantId};

use crate::app::{Actor, Metering};
use crate::error::ServiceError;
use crate::metering::ingest::{EventStatus, IngestOutcome, RawEvent};

/// The problems of one CloudEvent of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudEventError {
    /// Its position in the request (0 for a single event).
    pub index: usize,
    /// Its `id`, when it had a readable one.
    pub id: Option<String>,
    pub errors: Vec<FieldError>,
}

/// What became of a CloudEvents request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CloudEventsOutcome {
    /// The CloudEvents of the request.
    pub events: usize,
    /// The native outcome of the usage events they became, in order.
    pub usage: IngestOutcome,
    /// Every CloudEvent that was refused (invalid, unmapped, rejected or in conflict).
    pub errors: Vec<CloudEventError>,
}

/// Native field names as a CloudEvents sender knows them.
fn cloudevent_field(field: &str) -> String {
    match field {
        "tenant_id" => "subject".to_owned(),
        "timestamp" => "time".to_owned(),
        other => other.to_owned(),
    }
}

impl Metering<'_> {
    /// Ingests CloudEvents (each its JSON text): maps each to the usage events of its meters,
    /// ingests those as one native batch, and reports per CloudEvent what was refused.
    pub async fn ingest_cloudevents(
        &self,
        actor: &Actor,
        texts: &[&str],
    ) -> Result<CloudEventsOutcome, ServiceError> {
        self.admit_usage_batch(actor, texts.len()).await?;
        let batch_max = self.settings().batch_events_max;
        let parsed: Vec<Result<CloudEvent, RefusedCloudEvent>> = texts
            .iter()
            .map(|text| CloudEvent::parse_text(text))
            .collect();
        let types: BTreeSet<&str> = parsed
            .iter()
            .filter_map(|p| p.as_ref().ok().map(|e| e.event_type.as_str()))
            .collect();
        let subjects: BTreeSet<&str> = parsed
            .iter()
            .filter_map(|p| p.as_ref().ok().map(|e| e.subject.as_str()))
            .collect();
        let meters = self.meters_for_types(&types).await?;
        let mapped = self.subject_tenants(&subjects).await?;
        let MappedBatch {
            origins,
            usage,
            mut errors,
        } = MappedBatch::of(&parsed, &meters, &mapped, self.now());
        if usage.len() > batch_max {
            return Err(ServiceError::TooLarge(format!(
                "the batch maps to {} usage events, more than the {batch_max} a batch holds",
                usage.len()
            )));
        }
        // Authorized above, once for the request.
        let outcome = self.ingest_authorized(actor, usage).await?;
        refused_usage(&outcome, &origins, &parsed, &mut errors);
        errors.sort_by_key(|e| e.index);
        Ok(CloudEventsOutcome {
            events: texts.len(),
            usage: outcome,
            errors,
        })
    }
}

/// A batch of CloudEvents mapped to usage events, and the CloudEvents refused.
struct MappedBatch {
    /// The CloudEvent index of each usage event.
    origins: Vec<usize>,
    usage: Vec<RawEvent>,
    errors: Vec<CloudEventError>,
}

impl MappedBatch {
    fn of(
        parsed: &[Result<CloudEvent, RefusedCloudEvent>],
        meters: &HashMap<String, Vec<Meter>>,
        mapped: &HashMap<String, String>,
        now: time::OffsetDateTime,
    ) -> MappedBatch {
        let mut batch = MappedBatch {
            origins: Vec::new(),
            usage: Vec::new(),
            errors: Vec::new(),
        };
        for (index, parsed) in parsed.iter().enumerate() {
            let (id, problems) = match parsed {
                Ok(event) => match map_event(event, meters.get(&event.event_type), mapped, now) {
                    Ok(texts) => {
                        for text in texts {
                            batch.origins.push(index);
                            // Parsed as a native body's event is: the fast parser applies.
                            batch.usage.push(RawEvent::from_text(text));
                        }
                        continue;
                    }
                    Err(problems) => (Some(event.id.clone()), problems),
                },
                Err(refused) => (refused.id.clone(), refused.errors.clone()),
            };
            batch.errors.push(CloudEventError {
                index,
                id,
                errors: problems,
            });
        }
        batch
    }
}

/// The usage events of one CloudEvent: one per meter of its type.
fn map_event(
    event: &CloudEvent,
    meters: Option<&Vec<Meter>>,
    mapped: &HashMap<String, String>,
    now: time::OffsetDateTime,
) -> Result<Vec<String>, Vec<FieldError>> {
    let Some(meters) = meters.filter(|m| !m.is_empty()) else {
        return Err(vec![FieldError::new(
            "type",
            format!(
                "no meter has eventType {:?}; create one first",
                event.event_type
            ),
        )]);
    };
    let tenant_text = mapped
        .get(&event.subject)
        .map_or(event.subject.as_str(), String::as_str);
    let tenant = TenantId::parse(tenant_text).map_err(|_| {
        vec![FieldError::new(
            "subject",
            "is neither a tenant id nor a subject mapped to a tenant",
        )]
    })?;
    let mut events = Vec::with_capacity(meters.len());
    let mut errors = Vec::new();
    for meter in meters {
        match cloudevent::usage_event(event, meter, &tenant, now) {
            Ok(usage) => events.push(usage),
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() {
        Ok(events)
    } else {
        Err(errors)
    }
}

/// Adds an error for each CloudEvent with a usage event that was rejected or in conflict.
fn refused_usage(
    outcome: &IngestOutcome,
    origins: &[usize],
    parsed: &[Result<CloudEvent, RefusedCloudEvent>],
    errors: &mut Vec<CloudEventError>,
) {
    let mut by_index: HashMap<usize, Vec<FieldError>> = HashMap::new();
    for result in &outcome.results {
        let Some(&origin) = origins.get(result.index) else {
            continue;
        };
        match result.status {
            EventStatus::Rejected => by_index.entry(origin).or_default().extend(
                result
                    .errors
                    .iter()
                    .map(|e| FieldError::new(cloudevent_field(&e.field), e.message.clone())),
            ),
            EventStatus::Conflict => by_index.entry(origin).or_default().push(FieldError::new(
                "id",
                format!(
                    "conflicts with the event already stored for this source and id (usage event {}); the original stands",
                    result.event_id.as_deref().unwrap_or("?")
                ),
            )),
            _ => {}
        }
    }
    for (index, problems) in by_index {
        let id = parsed
            .get(index)
            .and_then(|p| p.as_ref().ok())
            .map(|event| event.id.clone());
        errors.push(CloudEventError {
            index,
            id,
            errors: problems,
        });
    }
}
