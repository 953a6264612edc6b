//! The JSON shapes clients see (CONTRACT §3-§8), one module per area: the service layer returns
//! domain values and each route maps them to one of these `Serialize` structs. A struct's field
//! order is the order of the members on the wire.

pub mod approvals;
pub mod evidence;
pub mod ledger;
pub mod metering;
pub mod operators;
pub mod reports;
pub mod tenants;

use companyos_domain::time_util::{format_rfc3339, from_micros};
use time::OffsetDateTime;

/// An instant as the API writes every instant: RFC 3339 in UTC.
pub fn instant(at: OffsetDateTime) -> String {
    format_rfc3339(at)
}

/// A stored instant (microseconds since the Unix epoch) as the API writes it.
pub fn instant_micros(micros: i64) -> String {
    format_rfc3339(from_micros(micros))
}
