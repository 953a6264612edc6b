//! The names a plan is written with: feature names and ISO 4217 currencies (with the rounding
//! of an amount to the currency's minor unit).

use std::fmt;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;

use crate::error::FieldError;

/// A feature a plan grants (a boolean entitlement): `^[a-z][a-z0-9_.-]{0,63}$`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct FeatureName(String);

impl FeatureName {
    pub fn parse_field(text: &str, field: &str) -> Result<Self, FieldError> {
        let bytes = text.as_bytes();
        let first_ok = bytes.first().is_some_and(u8::is_ascii_lowercase);
        let rest_ok = bytes.iter().skip(1).all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        });
        if !first_ok || !rest_ok || bytes.len() > 64 {
            return Err(FieldError::new(
                field,
                "must match ^[a-z][a-z0-9_.-]{0,63}$",
            ));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn parse(text: &str) -> Result<Self, FieldError> {
        Self::parse_field(text, "feature")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FeatureName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for FeatureName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FeatureName({:?})", self.0)
    }
}

/// An ISO 4217 currency code with the number of digits of its minor unit.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Currency(String);

impl Currency {
    pub fn parse_field(text: &str, field: &str) -> Result<Self, FieldError> {
        if text.len() != 3 || !text.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(FieldError::new(
                field,
                "must be an ISO 4217 code of three upper-case letters",
            ));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Digits after the decimal point of the currency's minor unit (ISO 4217): 0 for the
    /// currencies without one, 3 for the dinars and rials that have mils, 2 otherwise.
    pub fn minor_unit_digits(&self) -> u32 {
        match self.0.as_str() {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF"
            | "UGX" | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            _ => 2,
        }
    }

    /// Rounds once, half to even (banker's rounding), to the minor unit, and writes the
    /// result with exactly that many digits (`49` in USD is `49.00`).
    pub fn round(&self, amount: Decimal) -> Decimal {
        let digits = self.minor_unit_digits();
        let mut rounded =
            amount.round_dp_with_strategy(digits, RoundingStrategy::MidpointNearestEven);
        rounded.rescale(digits);
        rounded
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({:?})", self.0)
    }
}
