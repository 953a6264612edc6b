//! Quota periods (a UTC day or month) and the month arithmetic of statements: a month's days
//! and the proration of a base fee by the days a version is in force.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use crate::error::FieldError;

/// The length of a quota's usage period, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuotaPeriod {
    Day,
    Month,
}

impl QuotaPeriod {
    pub fn parse_field(text: &str, field: &str) -> Result<Self, FieldError> {
        match text {
            "day" => Ok(Self::Day),
            "month" => Ok(Self::Month),
            _ => Err(FieldError::new(field, "must be \"day\" or \"month\"")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Month => "month",
        }
    }

    /// The period that contains `at`: `[start, end)`, both at UTC midnight.
    pub fn bounds(self, at: OffsetDateTime) -> PeriodBounds {
        let date = at.to_offset(time::UtcOffset::UTC).date();
        let (start, end) = match self {
            Self::Day => (date, date.next_day().unwrap_or(Date::MAX)),
            Self::Month => {
                let first = date.replace_day(1).unwrap_or(date);
                (first, first_of_next_month(first))
            }
        };
        PeriodBounds {
            period: self,
            start,
            end,
        }
    }
}

/// One quota period: `[start, end)` in UTC days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeriodBounds {
    pub period: QuotaPeriod,
    pub start: Date,
    pub end: Date,
}

impl PeriodBounds {
    /// The period's name: `YYYY-MM` for a month, `YYYY-MM-DD` for a day.
    pub fn label(&self) -> String {
        match self.period {
            QuotaPeriod::Month => {
                format!("{:04}-{:02}", self.start.year(), self.start.month() as u8)
            }
            QuotaPeriod::Day => format!(
                "{:04}-{:02}-{:02}",
                self.start.year(),
                self.start.month() as u8,
                self.start.day()
            ),
        }
    }

    pub fn start_at(&self) -> OffsetDateTime {
        PrimitiveDateTime::new(self.start, Time::MIDNIGHT).assume_utc()
    }

    pub fn end_at(&self) -> OffsetDateTime {
        PrimitiveDateTime::new(self.end, Time::MIDNIGHT).assume_utc()
    }

    /// Whole seconds from `now` to the period's end, at least 1 (a `Retry-After` value).
    pub fn seconds_to_end(&self, now: OffsetDateTime) -> i64 {
        (self.end_at() - now).whole_seconds().max(1)
    }
}

/// The first day of the month after the one `first` is in.
pub fn first_of_next_month(first: Date) -> Date {
    let (year, month) = match first.month() {
        Month::December => (first.year() + 1, Month::January),
        other => (first.year(), other.next()),
    };
    Date::from_calendar_date(year, month, 1).unwrap_or(Date::MAX)
}

/// The base fee for the days a version was in force, before rounding: `base_fee *
/// days_in_force / days_in_month`. The first day of an interval counts, the last does not.
pub fn prorated_base_fee(base_fee: Decimal, days_in_force: u32, days_in_month: u32) -> Decimal {
    assert!(
        (28..=31).contains(&days_in_month),
        "a month has 28 to 31 days"
    );
    assert!(
        days_in_force <= days_in_month,
        "a version is in force within its month"
    );
    if days_in_force == days_in_month {
        return base_fee;
    }
    base_fee * Decimal::from(days_in_force) / Decimal::from(days_in_month)
}

/// The number of days of the month that starts on `first`.
pub fn days_in_month(first: Date) -> u32 {
    u32::from(first.month().length(first.year()))
}
