//! OpenMeter-compatible metering (CONTRACT §11, ADR 0014): meters, subject mapping, CloudEvents
//! ingestion through the native ingestion path, and meter queries answered exactly from the
//! stored events (rollups where the window allows).

mod cloudevents;
mod query;
mod store;

pub use cloudevents::{CloudEventError, CloudEventsOutcome};
pub use query::{MeterQuery, MeterQueryResult, MeterRow};
pub use store::{StoredMeter, TenantSubjects};
