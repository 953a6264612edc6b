//! OpenMeter-compatible metering (CONTRACT §11, ADR 0014): meters, subject mapping, CloudEvents
//! ingestion through the native ingestion path, and meter queries answered exactly from the
//! stored events (rollups where the window allows).

mod cloudevents;
mod query;
mod store;

pub use cloudevents::{CloudEventError, CloudEventsOutcome};
pub use query::{MeterQuery, MeterQueryResult, MeterRow};
pub use store::{StoredMeter, TenantSubjects};

use companyos_domain::meter::WindowZone;

/// Reads `windowTimeZone` (UTC, `±HH:MM` or an IANA name): an IANA zone's rules come from the
/// system's time zone database (`/usr/share/zoneinfo`, or `TZDIR`), never from the binary, so
/// they follow the host's `tzdata` updates (ADR 0014). The message says what is wrong.
pub fn window_zone(text: &str) -> Result<WindowZone, String> {
    WindowZone::parse(text, |name| {
        let database = jiff::tz::db();
        database.get(name).map_err(|_| {
            if database.is_definitively_empty() {
                format!(
                    "{name:?} needs the IANA time zone database, which this server does not \
                     have (install tzdata); UTC and offsets such as +02:00 work without it"
                )
            } else {
                format!("{name:?} is not a zone of the IANA time zone database")
            }
        })
    })
}
