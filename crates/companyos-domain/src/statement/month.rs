//! A statement's UTC calendar month (`YYYY-MM`): parsing at the edge, its days, its neighbours.

use std::fmt;

use time::{Date, Month};

use crate::catalog::{days_in_month, first_of_next_month};
use crate::error::FieldError;

/// One UTC calendar month, held as its first day.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatementMonth(Date);

impl StatementMonth {
    /// Parses `YYYY-MM` (years 1970 to 9999), naming `field` on error.
    pub fn parse_field(text: &str, field: &str) -> Result<Self, FieldError> {
        let bad = || FieldError::new(field, "must be a month as YYYY-MM");
        let bytes = text.as_bytes();
        if bytes.len() != 7 || bytes[4] != b'-' {
            return Err(bad());
        }
        let year: i32 = text[..4].parse().map_err(|_| bad())?;
        let month: u8 = text[5..].parse().map_err(|_| bad())?;
        if !(1970..=9999).contains(&year) || !text[..4].bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let month = Month::try_from(month).map_err(|_| bad())?;
        let first = Date::from_calendar_date(year, month, 1).map_err(|_| bad())?;
        Ok(Self(first))
    }

    pub fn parse(text: &str) -> Result<Self, FieldError> {
        Self::parse_field(text, "month")
    }

    /// The month that contains `day`.
    pub fn of(day: Date) -> Self {
        Self(day.replace_day(1).unwrap_or(day))
    }

    pub fn first_day(self) -> Date {
        self.0
    }

    /// The first day after the month (the month is `[first_day, end)`).
    pub fn end(self) -> Date {
        first_of_next_month(self.0)
    }

    /// The last day of the month.
    pub fn last_day(self) -> Date {
        self.end().previous_day().unwrap_or(self.0)
    }

    pub fn days(self) -> u32 {
        days_in_month(self.0)
    }

    pub fn next(self) -> Self {
        Self(self.end())
    }

    pub fn previous(self) -> Self {
        Self::of(self.0.previous_day().unwrap_or(self.0))
    }

    pub fn contains(self, day: Date) -> bool {
        day >= self.0 && day < self.end()
    }

    pub fn label(self) -> String {
        format!("{:04}-{:02}", self.0.year(), self.0.month() as u8)
    }
}

impl fmt::Display for StatementMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

impl fmt::Debug for StatementMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StatementMonth({})", self.label())
    }
}

impl serde::Serialize for StatementMonth {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.label())
    }
}

impl<'de> serde::Deserialize<'de> for StatementMonth {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(|e| serde::de::Error::custom(e.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_and_step() {
        let month = StatementMonth::parse("2026-12").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(month.days(), 31);
        assert_eq!(month.next().label(), "2027-01");
        assert_eq!(month.previous().label(), "2026-11");
        assert_eq!(month.last_day().day(), 31);
        for bad in [
            "2026-13", "2026-1", "26-01", "2026/01", "+026-01", "2026-00",
        ] {
            assert!(StatementMonth::parse(bad).is_err(), "{bad}");
        }
    }
}
