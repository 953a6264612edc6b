//! Statement maths against worked examples and an independent recomputation.

use std::collections::BTreeSet;

use proptest::prelude::*;
use rust_decimal::Decimal;
use time::Date;
use time::macros::date;

use super::*;
use crate::catalog::{Currency, Enforcement, PlanSpec, PlanVersion, QuotaPeriod, QuotaSpec};
use crate::ids::{MetricName, PlanName, ServiceName, Unit};
use crate::plan::RetentionPolicy;

fn d(text: &str) -> Decimal {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn key(metric: &str) -> UsageKey {
    UsageKey {
        service: ServiceName::parse("api").unwrap_or_else(|e| panic!("{e}")),
        metric: MetricName::parse(metric).unwrap_or_else(|e| panic!("{e}")),
        unit: Unit::parse("request").unwrap_or_else(|e| panic!("{e}")),
    }
}

fn version(
    n: u32,
    base_fee: &str,
    included: &str,
    price: &str,
    period: QuotaPeriod,
) -> PlanVersion {
    PlanVersion::new(
        PlanName::parse("pro").unwrap_or_else(|e| panic!("{e}")),
        n,
        PlanSpec {
            name: "Pro".to_owned(),
            currency: Currency::parse_field("USD", "currency").unwrap_or_else(|e| panic!("{e}")),
            base_fee: d(base_fee),
            features: BTreeSet::new(),
            quotas: vec![QuotaSpec {
                metric: MetricName::parse("requests").unwrap_or_else(|e| panic!("{e}")),
                period,
                included: d(included),
                thresholds_percent: vec![100],
                enforcement: Enforcement::Soft,
                overage_unit_price: d(price),
            }],
            retention: RetentionPolicy {
                tombstone_days: 30,
                hard_delete_allowed: true,
                legal_hold: false,
            },
            workloads_max: 10,
        },
    )
}

fn month() -> StatementMonth {
    StatementMonth::parse("2026-11").unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_mid_month_change_splits_lines_and_prorates_the_base_fee() {
    // November has 30 days: v1 from the 1st to the 11th (10 days), v2 for the other 20.
    let plans = vec![
        PlanInForce {
            version: version(1, "30", "300", "0.01", QuotaPeriod::Month),
            from: date!(2026 - 11 - 01),
            to: date!(2026 - 11 - 11),
        },
        PlanInForce {
            version: version(2, "60", "600", "0.02", QuotaPeriod::Month),
            from: date!(2026 - 11 - 11),
            to: date!(2026 - 12 - 01),
        },
    ];
    let usage = vec![
        DayUsage {
            day: date!(2026 - 11 - 05),
            key: key("requests"),
            quantity: d("150"),
        },
        DayUsage {
            day: date!(2026 - 11 - 10),
            key: key("requests"),
            quantity: d("0.5"),
        },
        DayUsage {
            day: date!(2026 - 11 - 20),
            key: key("requests"),
            quantity: d("500"),
        },
        DayUsage {
            day: date!(2026 - 11 - 20),
            key: key("other"),
            quantity: d("7"),
        },
    ];
    let money = compute_month(month(), &plans, &usage).unwrap_or_else(|e| panic!("{e}"));
    // 30 * 10/30 + 60 * 20/30 = 10 + 40
    assert_eq!(money.base_fee.to_string(), "50.00");
    let requests: Vec<&ComputedLine> = money
        .lines
        .iter()
        .filter(|l| l.key == key("requests"))
        .collect();
    assert_eq!(requests.len(), 2);
    // v1: included 300 * 10/30 = 100, overage 50.5 at 0.01 = 0.505 -> 0.50 (half-even)
    assert_eq!(requests[0].included, d("100"));
    assert_eq!(requests[0].overage, d("50.5"));
    assert_eq!(requests[0].amount.to_string(), "0.50");
    // v2: included 400, overage 100 at 0.02 = 2.00
    assert_eq!(requests[1].included, d("400"));
    assert_eq!(requests[1].amount.to_string(), "2.00");
    let other = money.lines.iter().find(|l| l.key == key("other"));
    assert_eq!(other.map(|l| l.amount.to_string()), Some("0.00".to_owned()));
    assert_eq!(total(&money, &[]).to_string(), "52.50");
}

#[test]
fn a_tenant_created_mid_month_pays_from_its_first_day() {
    let plans = vec![PlanInForce {
        version: version(1, "30", "0", "0", QuotaPeriod::Month),
        from: date!(2026 - 11 - 21),
        to: date!(2026 - 12 - 01),
    }];
    let money = compute_month(month(), &plans, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(money.base_fee.to_string(), "10.00");
}

#[test]
fn a_daily_quota_applies_to_each_day() {
    let plans = vec![PlanInForce {
        version: version(1, "0", "10", "1", QuotaPeriod::Day),
        from: date!(2026 - 11 - 01),
        to: date!(2026 - 12 - 01),
    }];
    let usage = vec![
        DayUsage {
            day: date!(2026 - 11 - 02),
            key: key("requests"),
            quantity: d("15"),
        },
        DayUsage {
            day: date!(2026 - 11 - 03),
            key: key("requests"),
            quantity: d("4"),
        },
    ];
    let money = compute_month(month(), &plans, &usage).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(money.lines[0].overage, d("5"));
    assert_eq!(money.lines[0].included, d("300"));
}

#[test]
fn adjustments_are_what_changed_since_final() {
    let plans = vec![PlanInForce {
        version: version(1, "0", "100", "0.1", QuotaPeriod::Month),
        from: date!(2026 - 11 - 01),
        to: date!(2026 - 12 - 01),
    }];
    let before = vec![DayUsage {
        day: date!(2026 - 11 - 02),
        key: key("requests"),
        quantity: d("150"),
    }];
    let mut after = before.clone();
    after.push(DayUsage {
        day: date!(2026 - 11 - 30),
        key: key("requests"),
        quantity: d("20"),
    });
    let final_money = compute_month(month(), &plans, &before).unwrap_or_else(|e| panic!("{e}"));
    let final_lines: Vec<_> = final_money
        .lines
        .iter()
        .map(|l| (l.key.clone(), l.quantity, l.amount))
        .collect();
    let now = compute_month(month(), &plans, &after).unwrap_or_else(|e| panic!("{e}"));
    let first = adjustments_for(month(), &final_lines, &now, &[]);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].quantity, d("20"));
    assert_eq!(first[0].amount.to_string(), "2.00");
    // Once carried by a statement, the same change is not carried again.
    assert!(adjustments_for(month(), &final_lines, &now, &first).is_empty());
}

#[test]
fn mixed_currencies_and_bad_periods_are_refused() {
    let mut eur = version(2, "1", "1", "1", QuotaPeriod::Month);
    eur.spec.currency = Currency::parse_field("EUR", "c").unwrap_or_else(|e| panic!("{e}"));
    let plans = vec![
        PlanInForce {
            version: version(1, "1", "1", "1", QuotaPeriod::Month),
            from: date!(2026 - 11 - 01),
            to: date!(2026 - 11 - 05),
        },
        PlanInForce {
            version: eur,
            from: date!(2026 - 11 - 05),
            to: date!(2026 - 12 - 01),
        },
    ];
    assert_eq!(
        compute_month(month(), &plans, &[]),
        Err(StatementMathError::MixedCurrencies)
    );
    let outside = vec![PlanInForce {
        version: version(1, "1", "1", "1", QuotaPeriod::Month),
        from: date!(2026 - 10 - 31),
        to: date!(2026 - 12 - 01),
    }];
    assert_eq!(
        compute_month(month(), &outside, &[]),
        Err(StatementMathError::BadPeriods)
    );
    assert_eq!(
        compute_month(month(), &[], &[]),
        Err(StatementMathError::NoPlan)
    );
}

/// The independent recomputation: walk the month day by day, find the version in force by a
/// linear search, and accumulate in integer thousandths, then price each (version, metric).
fn recompute(
    plans: &[PlanInForce],
    events: &[(u8, u8, i64)],
) -> (Decimal, Vec<(usize, String, Decimal, Decimal)>) {
    let first = month().first_day();
    let mut result = Vec::new();
    for (index, plan) in plans.iter().enumerate() {
        let days = plan.days();
        for metric in ["requests", "other"] {
            let mut thousandths: i64 = 0;
            for (day, metric_index, quantity) in events {
                let day_date = first + time::Duration::days(i64::from(*day));
                let owner = plans.iter().rposition(|p| p.from <= day_date).unwrap_or(0);
                let name = if *metric_index == 0 {
                    "requests"
                } else {
                    "other"
                };
                if owner == index && name == metric {
                    thousandths += quantity;
                }
            }
            let any = events.iter().any(|(day, m, _)| {
                let day_date = first + time::Duration::days(i64::from(*day));
                plans.iter().rposition(|p| p.from <= day_date).unwrap_or(0) == index
                    && (if *m == 0 { "requests" } else { "other" }) == metric
            });
            if !any {
                continue;
            }
            let quantity = Decimal::new(thousandths, 3);
            let amount = if metric == "requests" {
                let quota = &plan.version.spec.quotas[0];
                let included = (quota.included * Decimal::from(days) / Decimal::from(30u32))
                    .round_dp_with_strategy(6, rust_decimal::RoundingStrategy::MidpointNearestEven);
                let over = if quantity > included {
                    quantity - included
                } else {
                    Decimal::ZERO
                };
                (over * quota.overage_unit_price)
                    .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointNearestEven)
            } else {
                Decimal::ZERO
            };
            result.push((index, metric.to_owned(), quantity, amount));
        }
    }
    let base: Decimal = plans
        .iter()
        .map(|p| p.version.spec.base_fee * Decimal::from(p.days()) / Decimal::from(30u32))
        .sum();
    (
        base.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointNearestEven),
        result,
    )
}

fn day(n: u8) -> Date {
    month().first_day() + time::Duration::days(i64::from(n))
}

proptest! {
    #[test]
    fn lines_equal_an_independent_recomputation(
        cuts in proptest::collection::btree_set(1u8..30, 0..3),
        start in 0u8..5,
        prices in proptest::collection::vec((0u32..5000, 0u32..2000, 0u32..1000), 3),
        events in proptest::collection::vec((0u8..30, 0u8..2, 0i64..100_000), 0..60),
    ) {
        let mut bounds: Vec<u8> = std::iter::once(start).chain(cuts.into_iter().filter(|c| *c > start)).collect();
        bounds.push(30);
        let plans: Vec<PlanInForce> = bounds
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                let (fee, included, price) = prices[i % 3];
                PlanInForce {
                    version: version(
                        u32::try_from(i + 1).unwrap_or(1),
                        &Decimal::new(i64::from(fee), 1).to_string(),
                        &included.to_string(),
                        &Decimal::new(i64::from(price), 4).to_string(),
                        QuotaPeriod::Month,
                    ),
                    from: day(w[0]),
                    to: day(w[1]),
                }
            })
            .collect();
        let usage: Vec<DayUsage> = events
            .iter()
            .map(|(n, m, q)| DayUsage {
                day: day(*n),
                key: key(if *m == 0 { "requests" } else { "other" }),
                quantity: Decimal::new(*q, 3),
            })
            .collect();
        let money = compute_month(month(), &plans, &usage).unwrap_or_else(|e| panic!("{e}"));
        let (base, expected) = recompute(&plans, &events);
        prop_assert_eq!(money.base_fee, base);
        let got: Vec<(usize, String, Decimal, Decimal)> = money
            .lines
            .iter()
            .map(|l| (l.plan_index, l.key.metric.as_str().to_owned(), l.quantity, l.amount))
            .collect();
        let mut got_sorted = got.clone();
        got_sorted.sort();
        let mut expected_sorted = expected;
        expected_sorted.sort();
        prop_assert_eq!(got_sorted, expected_sorted);
        let sum: Decimal = money.lines.iter().map(|l| l.amount).sum::<Decimal>() + money.base_fee;
        prop_assert_eq!(total(&money, &[]), sum);
    }
}
