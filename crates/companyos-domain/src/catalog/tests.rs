//! Tests of the plan catalog: parsing, hashing, rounding, proration, periods, thresholds.

use super::*;
use crate::ids::{MetricName, PlanName};
use time::Date;
use time::macros::datetime;

fn any_metric(_: &MetricName) -> bool {
    true
}

fn raw(json: &str) -> RawPlanSpec {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_plan_body_parses_and_hashes_stably() {
    let spec = raw(r#"{"name":"Pro","currency":"EUR","base_fee":"49.00","features":["sso","api"],
        "quotas":[{"metric":"requests","period":"month","included":1000,"thresholds_percent":[100,80],
        "enforcement":"hard","overage_unit_price":"0.002"}]}"#)
    .parse(&any_metric)
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.quotas[0].thresholds_percent, vec![80, 100]);
    assert_eq!(spec.base_fee.to_string(), "49");
    let again = raw(
        r#"{"name":"Pro","currency":"EUR","base_fee":49,"features":["api","sso"],
        "quotas":[{"metric":"requests","included":"1000.0","thresholds_percent":[80,100],
        "enforcement":"hard","overage_unit_price":0.002}]}"#,
    )
    .parse(&any_metric)
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.sha256_hex(), again.sha256_hex());
    assert_eq!(spec.sha256_hex().len(), 64);
}

#[test]
fn bad_fields_are_named() {
    let error = raw(r#"{"name":"x","currency":"usd","base_fee":"-1",
        "quotas":[{"metric":"nope","included":"x","enforcement":"strict"}]}"#)
    .parse(&|m: &MetricName| m.as_str() != "nope")
    .err()
    .unwrap_or_else(|| panic!("must fail"));
    let fields: Vec<&str> = error.errors().iter().map(|e| e.field.as_str()).collect();
    for expected in [
        "currency",
        "base_fee",
        "quotas[0].metric",
        "quotas[0].included",
        "quotas[0].enforcement",
    ] {
        assert!(fields.contains(&expected), "{expected} in {fields:?}");
    }
}

#[test]
fn rounding_is_half_even_to_the_minor_unit() {
    let usd = Currency::parse_field("USD", "c").unwrap_or_else(|e| panic!("{e}"));
    let jpy = Currency::parse_field("JPY", "c").unwrap_or_else(|e| panic!("{e}"));
    let kwd = Currency::parse_field("KWD", "c").unwrap_or_else(|e| panic!("{e}"));
    let d = |s: &str| s.parse::<Decimal>().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(usd.round(d("0.125")).to_string(), "0.12");
    assert_eq!(usd.round(d("0.135")).to_string(), "0.14");
    assert_eq!(usd.round(d("49")).to_string(), "49.00");
    assert_eq!(jpy.round(d("2.5")).to_string(), "2");
    assert_eq!(kwd.round(d("1.0005")).to_string(), "1.000");
}

#[test]
fn proration_counts_the_first_day_not_the_last() {
    let d = |s: &str| s.parse::<Decimal>().unwrap_or_else(|e| panic!("{e}"));
    // In force from the 1st to the 16th of a 30-day month: 15 days.
    assert_eq!(prorated_base_fee(d("30"), 15, 30), d("15"));
    assert_eq!(prorated_base_fee(d("49"), 31, 31), d("49"));
}

#[test]
fn periods_are_utc_calendar_days_and_months() {
    let at = datetime!(2026-12-31 23:30 -01:00); // 2027-01-01 00:30 UTC
    let month = QuotaPeriod::Month.bounds(at);
    assert_eq!(month.label(), "2027-01");
    assert_eq!(month.end.to_string(), "2027-02-01");
    let day = QuotaPeriod::Day.bounds(at);
    assert_eq!(day.label(), "2027-01-01");
}

#[test]
fn thresholds_cross_once_between_two_usages() {
    let quota = QuotaSpec {
        metric: MetricName::parse("requests").unwrap_or_else(|e| panic!("{e}")),
        period: QuotaPeriod::Month,
        included: Decimal::from(100),
        thresholds_percent: vec![80, 100, 150],
        enforcement: Enforcement::Hard,
        overage_unit_price: Decimal::ZERO,
    };
    assert_eq!(
        quota.thresholds_crossed(Decimal::from(79), Decimal::from(100)),
        vec![80, 100]
    );
    assert!(
        quota
            .thresholds_crossed(Decimal::from(100), Decimal::from(120))
            .is_empty()
    );
    assert!(quota.is_used_up(Decimal::from(100), Decimal::ZERO));
    assert!(!quota.is_used_up(Decimal::from(100), Decimal::from(10)));
}

#[test]
fn the_amount_bound_is_ten_to_the_fifteenth() {
    assert_eq!(PLAN_AMOUNT_MAX, Decimal::from(1_000_000_000_000_000_i64));
}

#[test]
fn a_later_assignment_overrides_and_cancels_pending_ones() {
    use time::macros::date;
    let plan = |name: &str| PlanName::parse(name).unwrap_or_else(|e| panic!("{e}"));
    let assignments = vec![
        PlanAssignment {
            seq: 1,
            plan: plan("free"),
            version: 1,
            effective_from: date!(2026 - 01 - 10),
        },
        // On the 12th, a change for the next period (February) ...
        PlanAssignment {
            seq: 2,
            plan: plan("standard"),
            version: 1,
            effective_from: date!(2026 - 02 - 01),
        },
        // ... then on the 20th a change now, which cancels the pending one.
        PlanAssignment {
            seq: 3,
            plan: plan("enterprise"),
            version: 2,
            effective_from: date!(2026 - 01 - 20),
        },
    ];
    let intervals =
        assignment_intervals(&assignments, date!(2026 - 01 - 01), date!(2026 - 03 - 01));
    let seen: Vec<(u64, Date, Date)> = intervals.iter().map(|(a, f, t)| (a.seq, *f, *t)).collect();
    assert_eq!(
        seen,
        vec![
            (1, date!(2026 - 01 - 10), date!(2026 - 01 - 20)),
            (3, date!(2026 - 01 - 20), date!(2026 - 03 - 01)),
        ]
    );
    assert_eq!(
        assignment_on(&assignments, date!(2026 - 02 - 05)).map(|a| a.seq),
        Some(3)
    );
    assert!(assignment_on(&assignments, date!(2026 - 01 - 09)).is_none());
}

#[test]
fn a_stored_spec_reads_back_equal() {
    for version in builtin_plan_versions() {
        let back = PlanSpec::from_canonical_json(&version.spec.canonical_json())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, version.spec);
    }
}

#[test]
fn builtin_plans_are_version_one() {
    let plans = builtin_plan_versions();
    assert_eq!(plans.len(), 3);
    assert!(plans.iter().all(|p| p.version == 1));
}
