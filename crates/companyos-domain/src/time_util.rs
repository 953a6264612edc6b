//! UTC time helpers: RFC 3339 parsing and printing, microsecond timestamps (how the store keeps
//! time on every engine) and UTC days.

use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, OffsetDateTime, UtcOffset};

use crate::error::FieldError;

/// Parses an RFC 3339 timestamp with an offset and converts it to UTC.
pub fn parse_rfc3339(text: &str, field: &str) -> Result<OffsetDateTime, FieldError> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map(|t| t.to_offset(UtcOffset::UTC))
        .map_err(|_| FieldError::new(field, "must be an RFC 3339 timestamp with an offset"))
}

/// RFC 3339 in UTC with microseconds, e.g. `2026-03-01T12:00:00.000001Z`.
pub fn format_rfc3339(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    let date = at.date();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        date.year(),
        u8::from(date.month()),
        date.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.microsecond()
    )
}

/// Microseconds since the Unix epoch.
pub fn to_micros(at: OffsetDateTime) -> i64 {
    let micros = at.unix_timestamp_nanos() / 1_000;
    i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX })
}

/// The instant `micros` microseconds after the Unix epoch (clamped to the supported range).
pub fn from_micros(micros: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Parses `YYYY-MM-DD`.
pub fn parse_day(text: &str, field: &str) -> Result<Date, FieldError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    if text.len() != 10 {
        return Err(FieldError::new(field, "must be a date YYYY-MM-DD"));
    }
    Date::parse(text, &format).map_err(|_| FieldError::new(field, "must be a date YYYY-MM-DD"))
}

pub fn format_day(day: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

/// The UTC day of an instant.
pub fn utc_day(at: OffsetDateTime) -> Date {
    at.to_offset(UtcOffset::UTC).date()
}

/// The first instant of a UTC day.
pub fn day_start(day: Date) -> OffsetDateTime {
    day.midnight().assume_utc()
}

/// The first instant after a UTC day.
pub fn day_end(day: Date) -> OffsetDateTime {
    day_start(day) + Duration::days(1)
}

/// Days since 1970-01-01 (how days are stored).
pub fn day_number(day: Date) -> i64 {
    i64::from(
        day.to_julian_day() - Date::from_julian_day(2_440_588).map_or(0, |d| d.to_julian_day()),
    )
}

/// The date `number` days after 1970-01-01.
pub fn day_from_number(number: i64) -> Date {
    let julian = i64::from(2_440_588_i32) + number;
    i32::try_from(julian)
        .ok()
        .and_then(|j| Date::from_julian_day(j).ok())
        .unwrap_or(Date::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip() {
        let day = parse_day("2026-03-01", "from").expect("valid day");
        assert_eq!(format_day(day), "2026-03-01");
        assert_eq!(day_from_number(day_number(day)), day);
        assert_eq!(day_number(parse_day("1970-01-01", "d").expect("valid")), 0);
        assert!(parse_day("2026-3-1", "from").is_err());
        assert!(parse_day("2026-02-30", "from").is_err());
    }

    #[test]
    fn timestamps_normalise_to_utc() {
        let at = parse_rfc3339("2026-03-01T01:30:00+02:00", "timestamp").expect("valid");
        assert_eq!(format_rfc3339(at), "2026-02-28T23:30:00.000000Z");
        assert!(parse_rfc3339("2026-03-01T01:30:00", "timestamp").is_err());
        assert_eq!(from_micros(to_micros(at)), at);
    }
}
