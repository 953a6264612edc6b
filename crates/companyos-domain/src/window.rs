//! The windows of a meter query (`windowSize`, `windowTimeZone`; CONTRACT §11, ADR 0014): UTC, a
//! fixed offset, or an IANA zone with its daylight-saving rules. DAY and MONTH windows start at
//! local midnight (the first instant of the local day), so on a DST day a window is 23 or 25
//! hours long; MINUTE and HOUR windows are always one minute or one hour. Pure rules: the zone's
//! rules are looked up by the caller (companyos-core reads the system's zoneinfo).

use time::{Duration, OffsetDateTime, UtcOffset};

/// An IANA zone name is at most this many characters (the longest today has 30).
pub const ZONE_NAME_CHARS_MAX: usize = 64;

/// The window of a meter query (OpenMeter's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WindowSize {
    Minute,
    Hour,
    Day,
    Month,
}

impl WindowSize {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "MINUTE",
            Self::Hour => "HOUR",
            Self::Day => "DAY",
            Self::Month => "MONTH",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Minute, Self::Hour, Self::Day, Self::Month]
            .into_iter()
            .find(|w| w.as_str() == text)
    }
}

/// The zone a query's windows are cut in.
#[derive(Debug, Clone)]
pub enum WindowZone {
    /// UTC or a fixed offset such as `+02:00`.
    Fixed(UtcOffset),
    /// An IANA zone (`Europe/Berlin`) and its rules, as the caller looked them up.
    Named {
        name: String,
        zone: jiff::tz::TimeZone,
    },
}

/// Two zones are the same when they have the same name (or offset): rules are looked up by name.
impl PartialEq for WindowZone {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Fixed(a), Self::Fixed(b)) => a == b,
            (Self::Named { name: a, .. }, Self::Named { name: b, .. }) => a == b,
            _ => false,
        }
    }
}

impl Eq for WindowZone {}

impl WindowZone {
    pub const UTC: WindowZone = WindowZone::Fixed(UtcOffset::UTC);

    /// Reads `windowTimeZone`: UTC (by any of its names), a fixed offset such as `+02:00`, or an
    /// IANA name, whose rules `lookup` finds (or explains why not).
    pub fn parse(
        text: &str,
        lookup: impl FnOnce(&str) -> Result<jiff::tz::TimeZone, String>,
    ) -> Result<Self, String> {
        if matches!(
            text,
            "UTC" | "Etc/UTC" | "GMT" | "Etc/GMT" | "Z" | "Universal" | "Zulu"
        ) {
            return Ok(Self::UTC);
        }
        if let Some(first @ (b'+' | b'-')) = text.as_bytes().first() {
            return fixed_offset(*first, &text[1..])
                .map(Self::Fixed)
                .ok_or_else(|| format!("{text:?} is not an offset: write it as +HH:MM or -HH:MM"));
        }
        if !is_zone_name(text) {
            return Err(format!(
                "{text:?} is not a time zone: use UTC, an offset such as +02:00 or an IANA name \
                 such as Europe/Berlin"
            ));
        }
        let zone = lookup(text)?;
        Ok(Self::Named {
            name: text.to_owned(),
            zone,
        })
    }

    pub fn is_utc(&self) -> bool {
        matches!(self, Self::Fixed(offset) if offset.is_utc())
    }
}

fn fixed_offset(sign: u8, rest: &str) -> Option<UtcOffset> {
    let sign = if sign == b'-' { -1i8 } else { 1i8 };
    let (hours, minutes) = rest.split_once(':')?;
    let two_digits = |t: &str| (t.len() == 2).then(|| t.parse::<i8>().ok()).flatten();
    let (hours, minutes) = (two_digits(hours)?, two_digits(minutes)?);
    if hours > 23 || minutes > 59 {
        return None;
    }
    UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok()
}

/// An IANA name's shape (`Area/Location[/More]`, `EST5EDT`, `Etc/GMT+5`): never a path.
fn is_zone_name(text: &str) -> bool {
    text.len() <= ZONE_NAME_CHARS_MAX
        && text.split('/').all(|part| {
            part.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+'))
        })
}

/// The start of the window of `size` that holds `at`, in `zone` (as UTC).
pub fn window_start(at: OffsetDateTime, size: WindowSize, zone: &WindowZone) -> OffsetDateTime {
    match zone {
        WindowZone::Fixed(offset) => fixed_window_start(at, size, *offset),
        // Out of jiff's range (years beyond ±9999): the instant itself, as for fixed offsets.
        WindowZone::Named { zone, .. } => named_window_start(at, size, zone).unwrap_or(at),
    }
}

/// The end of the window that starts at `start` (exclusive): the next window's start.
pub fn window_end(start: OffsetDateTime, size: WindowSize, zone: &WindowZone) -> OffsetDateTime {
    match (size, zone) {
        (WindowSize::Minute, _) => start + Duration::minutes(1),
        (WindowSize::Hour, _) => start + Duration::hours(1),
        (_, WindowZone::Fixed(offset)) => fixed_window_end(start, size, *offset),
        (_, WindowZone::Named { zone, .. }) => named_window_end(start, size, zone)
            .unwrap_or(start + Duration::days(if size == WindowSize::Day { 1 } else { 31 })),
    }
}

fn fixed_window_start(at: OffsetDateTime, size: WindowSize, offset: UtcOffset) -> OffsetDateTime {
    let local = at.to_offset(offset);
    let truncated = match size {
        WindowSize::Minute => local
            .replace_second(0)
            .and_then(|t| t.replace_nanosecond(0)),
        WindowSize::Hour => local
            .replace_minute(0)
            .and_then(|t| t.replace_second(0))
            .and_then(|t| t.replace_nanosecond(0)),
        WindowSize::Day => Ok(local.replace_time(time::Time::MIDNIGHT)),
        WindowSize::Month => local
            .replace_day(1)
            .map(|t| t.replace_time(time::Time::MIDNIGHT)),
    };
    // Every replacement above is in range (second 0, day 1 exist); keep `at` if not.
    truncated.unwrap_or(local).to_offset(UtcOffset::UTC)
}

fn fixed_window_end(start: OffsetDateTime, size: WindowSize, offset: UtcOffset) -> OffsetDateTime {
    match size {
        WindowSize::Minute => start + Duration::minutes(1),
        WindowSize::Hour => start + Duration::hours(1),
        WindowSize::Day => start + Duration::days(1),
        WindowSize::Month => {
            let local = start.to_offset(offset);
            let (year, month) = match local.month() {
                time::Month::December => (local.year() + 1, time::Month::January),
                month => (local.year(), month.next()),
            };
            time::Date::from_calendar_date(year, month, 1)
                .map(|date| date.with_time(time::Time::MIDNIGHT).assume_offset(offset))
                .unwrap_or(start + Duration::days(31))
                .to_offset(UtcOffset::UTC)
        }
    }
}

fn timestamp(at: OffsetDateTime) -> Option<jiff::Timestamp> {
    let nanoseconds = i32::try_from(at.nanosecond()).ok()?;
    jiff::Timestamp::new(at.unix_timestamp(), nanoseconds).ok()
}

fn offset_date_time(at: jiff::Timestamp) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(at.as_nanosecond()).ok()
}

/// The first instant of a local date in `zone`: midnight, or the end of a gap that swallows it.
fn first_instant(date: jiff::civil::Date, zone: &jiff::tz::TimeZone) -> Option<OffsetDateTime> {
    let start = date.to_zoned(zone.clone()).ok()?.start_of_day().ok()?;
    offset_date_time(start.timestamp())
}

fn named_window_start(
    at: OffsetDateTime,
    size: WindowSize,
    zone: &jiff::tz::TimeZone,
) -> Option<OffsetDateTime> {
    let local = timestamp(at)?.to_zoned(zone.clone());
    match size {
        // The offset in force at `at` aligns minutes and hours with the local clock; a DST
        // change moves the clock by whole hours (or halves), never a window's length.
        WindowSize::Minute | WindowSize::Hour => {
            let offset = UtcOffset::from_whole_seconds(local.offset().seconds()).ok()?;
            Some(fixed_window_start(at, size, offset))
        }
        WindowSize::Day => first_instant(local.date(), zone),
        WindowSize::Month => first_instant(local.date().first_of_month(), zone),
    }
}

fn named_window_end(
    start: OffsetDateTime,
    size: WindowSize,
    zone: &jiff::tz::TimeZone,
) -> Option<OffsetDateTime> {
    let date = timestamp(start)?.to_zoned(zone.clone()).date();
    let next = match size {
        WindowSize::Month => date
            .first_of_month()
            .checked_add(jiff::Span::new().months(1))
            .ok()?,
        _ => date.tomorrow().ok()?,
    };
    first_instant(next, zone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// Europe/Berlin's rules as a POSIX TZ string (what its TZif file ends with): no file read.
    fn berlin() -> WindowZone {
        let zone = jiff::tz::TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").expect("valid rule");
        WindowZone::parse("Europe/Berlin", |_| Ok(zone)).expect("a zone name")
    }

    #[test]
    fn windows_in_utc_and_fixed_offsets() {
        let at = datetime!(2026-03-31 23:30:10 UTC);
        let plus_two = WindowZone::parse("+02:00", |_| Err("no lookup".into())).expect("offset");
        let start = window_start(at, WindowSize::Day, &plus_two);
        assert_eq!(start, datetime!(2026-03-31 22:00 UTC));
        assert_eq!(
            window_end(start, WindowSize::Day, &plus_two),
            datetime!(2026-04-01 22:00 UTC)
        );
        let month = window_start(at, WindowSize::Month, &plus_two);
        assert_eq!(month, datetime!(2026-03-31 22:00 UTC));
        assert_eq!(
            window_end(month, WindowSize::Month, &plus_two),
            datetime!(2026-04-30 22:00 UTC)
        );
        let utc = WindowZone::UTC;
        assert_eq!(
            window_start(at, WindowSize::Month, &utc),
            datetime!(2026-03-01 0:00 UTC)
        );
        assert_eq!(
            window_start(at, WindowSize::Hour, &utc),
            datetime!(2026-03-31 23:00 UTC)
        );
        assert_eq!(
            window_start(at, WindowSize::Minute, &utc),
            datetime!(2026-03-31 23:30 UTC)
        );
        assert!(WindowZone::parse("UTC", |_| Err("no lookup".into())).is_ok_and(|z| z.is_utc()));
        for bad in [
            "+2:00",
            "+24:00",
            "../etc/passwd",
            "/etc/localtime",
            "Europe//Berlin",
            "",
        ] {
            assert!(
                WindowZone::parse(bad, |_| Ok(jiff::tz::TimeZone::UTC)).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn berlin_days_are_23_and_25_hours_on_dst_days() {
        let berlin = berlin();
        // 2026-03-29: 02:00 CET becomes 03:00 CEST. Local midnight is 23:00 UTC the day before.
        let spring = window_start(datetime!(2026-03-29 12:00 UTC), WindowSize::Day, &berlin);
        assert_eq!(spring, datetime!(2026-03-28 23:00 UTC));
        let spring_end = window_end(spring, WindowSize::Day, &berlin);
        assert_eq!(spring_end, datetime!(2026-03-29 22:00 UTC));
        assert_eq!(spring_end - spring, Duration::hours(23));
        // 2026-10-25: 03:00 CEST becomes 02:00 CET.
        let autumn = window_start(datetime!(2026-10-25 22:30 UTC), WindowSize::Day, &berlin);
        assert_eq!(autumn, datetime!(2026-10-24 22:00 UTC));
        assert_eq!(
            window_end(autumn, WindowSize::Day, &berlin) - autumn,
            Duration::hours(25)
        );
        // A month window runs from local midnight of the 1st to local midnight of the next 1st.
        let march = window_start(datetime!(2026-03-15 12:00 UTC), WindowSize::Month, &berlin);
        assert_eq!(march, datetime!(2026-02-28 23:00 UTC));
        assert_eq!(
            window_end(march, WindowSize::Month, &berlin),
            datetime!(2026-03-31 22:00 UTC)
        );
    }

    #[test]
    fn hours_and_minutes_stay_one_hour_and_one_minute_across_dst() {
        let berlin = berlin();
        // 00:30 UTC is 01:30 CET, 01:30 UTC is 03:30 CEST: consecutive hours of the local clock.
        for (at, start) in [
            (
                datetime!(2026-03-29 00:30 UTC),
                datetime!(2026-03-29 00:00 UTC),
            ),
            (
                datetime!(2026-03-29 01:30 UTC),
                datetime!(2026-03-29 01:00 UTC),
            ),
            // 02:30 local happens twice on 2026-10-25: once in CEST, once in CET.
            (
                datetime!(2026-10-25 00:30 UTC),
                datetime!(2026-10-25 00:00 UTC),
            ),
            (
                datetime!(2026-10-25 01:30 UTC),
                datetime!(2026-10-25 01:00 UTC),
            ),
        ] {
            let hour = window_start(at, WindowSize::Hour, &berlin);
            assert_eq!(hour, start, "{at}");
            assert_eq!(
                window_end(hour, WindowSize::Hour, &berlin),
                start + Duration::hours(1)
            );
        }
        let minute = window_start(
            datetime!(2026-03-29 01:00:59 UTC),
            WindowSize::Minute,
            &berlin,
        );
        assert_eq!(minute, datetime!(2026-03-29 01:00 UTC));
    }

    #[test]
    fn a_day_without_local_midnight_starts_at_the_end_of_the_gap() {
        // A zone that springs forward at midnight (as America/Santiago and others have done):
        // 2026-09-06 has no 00:00; its first instant is 01:00 local, 04:00 UTC.
        let zone = jiff::tz::TimeZone::posix("<-04>4<-03>,M9.1.0/0,M4.1.0/0").expect("valid rule");
        let santiago = WindowZone::parse("America/Santiago", |_| Ok(zone)).expect("a zone name");
        let day = window_start(datetime!(2026-09-06 12:00 UTC), WindowSize::Day, &santiago);
        assert_eq!(day, datetime!(2026-09-06 04:00 UTC));
        assert_eq!(
            window_end(datetime!(2026-09-05 04:00 UTC), WindowSize::Day, &santiago),
            day
        );
    }
}
