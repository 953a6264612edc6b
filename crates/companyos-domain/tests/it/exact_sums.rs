//! `usage::exact_add` never rounds: a sum of quantities is the exact sum or refused, checked
//! against a reference that adds the mantissas at the quantity scale (12) in `i128`.

#![allow(clippy::unwrap_used)]

use std::str::FromStr as _;

use companyos_domain::usage::{QUANTITY_SCALE_MAX, Quantity, exact_add};
use proptest::prelude::*;
use rust_decimal::Decimal;

/// The value of `d` as a mantissa at scale `QUANTITY_SCALE_MAX` (`d` has at most that scale).
fn at_quantity_scale(d: Decimal) -> i128 {
    d.mantissa() * 10_i128.pow(QUANTITY_SCALE_MAX - d.scale())
}

/// Whether a value given as a mantissa at the quantity scale fits a `Decimal` exactly.
fn representable(mut mantissa: i128) -> bool {
    let max = Decimal::MAX.mantissa();
    let mut scale = QUANTITY_SCALE_MAX;
    while mantissa > max && scale > 0 && mantissa % 10 == 0 {
        mantissa /= 10;
        scale -= 1;
    }
    mantissa <= max
}

fn quantity() -> impl Strategy<Value = Decimal> {
    // Large quantities near the 10^15 bound are the ones that overflow the mantissa quickly.
    prop_oneof![
        (
            0_i64..1_000_000_000_000_000,
            0_i64..1_000_000_000_000,
            0_u32..=12
        )
            .prop_map(|(integer, fraction, digits)| {
                let fraction = fraction % 10_i64.pow(digits);
                Decimal::from_str(&format!(
                    "{integer}.{fraction:0>width$}",
                    width = digits as usize
                ))
                .or_else(|_| Decimal::from_str(&integer.to_string()))
                .unwrap()
            }),
        Just(Decimal::from_str("999999999999999.999999999999").unwrap()),
        Just(Decimal::from_str("999999999999999").unwrap()),
    ]
    .prop_map(|d| Quantity::from_decimal(d).unwrap().as_decimal())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn sums_of_quantities_are_exact_or_refused(quantities in prop::collection::vec(quantity(), 1..200)) {
        let mut sum = Some(Decimal::ZERO);
        let mut reference = 0_i128;
        for q in quantities {
            reference += at_quantity_scale(q);
            sum = sum.and_then(|s| exact_add(s, q));
            match sum {
                Some(s) => {
                    prop_assert!(s.scale() <= QUANTITY_SCALE_MAX);
                    prop_assert_eq!(at_quantity_scale(s), reference, "{} is not the exact sum", s);
                }
                None => {
                    prop_assert!(!representable(reference), "an exact sum was refused");
                    break;
                }
            }
        }
    }
}

#[test]
fn the_81_event_day_of_the_issue_is_refused_not_rounded() {
    let q = Decimal::from_str("999999999999999.999999999999").unwrap();
    let mut sum = Decimal::ZERO;
    let mut accepted = 0;
    for _ in 0..81 {
        match exact_add(sum, q) {
            Some(next) => {
                sum = next;
                accepted += 1;
            }
            None => break,
        }
    }
    // 80 of them are exact: 79999999999999999.99999999992 (a trailing zero dropped).
    assert_eq!(accepted, 80, "{sum}");
    assert_eq!(
        sum,
        Decimal::from_str("79999999999999999.99999999992").unwrap()
    );
    // What rust_decimal's own addition makes of the 81st: the rounded total of the issue.
    let rounded = sum.checked_add(q).unwrap();
    assert_eq!(
        rounded,
        Decimal::from_str("80999999999999999.99999999992").unwrap()
    );
    assert_eq!(exact_add(sum, q), None);
    // An operand's trailing zeros do not make an exact sum fail.
    let one_at_scale_28 = Decimal::from_i128_with_scale(10_i128.pow(28), 28);
    assert_eq!(
        exact_add(Decimal::from(10_i128.pow(28)), one_at_scale_28),
        Some(Decimal::from_str("10000000000000000000000000001").unwrap())
    );
    // Trailing zeros are not lost digits.
    let big = Decimal::from_str("79228162514264337593543950330").unwrap();
    assert_eq!(exact_add(big, Decimal::from_str("0.0").unwrap()), Some(big));
}
