//! The demo's metering part (MET-1..3): seven days of synthetic traffic from a deterministic
//! generator (signed and unsigned events, retries, conflicts, invalid and late events, gaps),
//! then the day close with each seed tenant's rollups, reconciliation and integrity report.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use companyos_core::clock::Clock as _;
use companyos_domain::time_util::{format_day, format_rfc3339};
use companyos_sdk::{EventBuilder, SourceKey};
use reqwest::Method;
use serde_json::{Value, json};
use time::{Duration, Time};

use super::{DAYS, Demo, GameDay, Rng};
use crate::client::ApiClient;

/// What the traffic passes on to the day close: its first day and the counts of every day.
pub(super) struct Traffic {
    first_day: time::Date,
    totals: Value,
}

/// MET-1..3: seven days of traffic.
pub(super) async fn traffic(demo: &mut Demo, game: &GameDay) -> anyhow::Result<Traffic> {
    let clock = demo.clock.clone();
    let mut totals = json!({});
    let mut seqs: BTreeMap<(String, String), u64> = BTreeMap::new();
    let first_day = clock.now().date();
    for day_index in 0..DAYS {
        let day = first_day + Duration::days(day_index);
        clock.set(day.with_time(Time::from_hms(23, 30, 0)?).assume_utc());
        let mut events = EventGenerator {
            rng: &mut demo.rng,
            source_keys: &game.source_keys,
            seqs: &mut seqs,
        };
        let mut batch = Vec::new();
        for (tenant, _) in &game.tenant_keys {
            events.tenant_day(tenant, day, day_index, &mut batch)?;
        }
        // Late arrivals: on the fifth day, events from three days before show up.
        if day_index == 4 {
            batch.extend(late_arrivals(day)?);
        }
        let day_totals = send_day(&game.meter, &batch, &mut totals).await?;
        demo.app.jobs().run_once().await;
        demo.log.step(
            &clock,
            "usage ingested",
            &format!("day {}: {day_totals}", format_day(day)),
        );
    }
    Ok(Traffic { first_day, totals })
}

/// The synthetic events of the traffic: drawn from the demo's generator, signed by the source
/// of their service, numbered per source and tenant.
struct EventGenerator<'a> {
    rng: &'a mut Rng,
    source_keys: &'a [(&'static str, SourceKey)],
    seqs: &'a mut BTreeMap<(String, String), u64>,
}

impl EventGenerator<'_> {
    /// A tenant's events of one day into `batch`: its usage with a few retries, one conflict
    /// and two invalid events.
    fn tenant_day(
        &mut self,
        tenant: &str,
        day: time::Date,
        day_index: i64,
        batch: &mut Vec<Value>,
    ) -> anyhow::Result<()> {
        let tenant_start = batch.len();
        let volume = if tenant == "acme" { 240 } else { 160 };
        for n in 0..volume {
            let event = self.usage_event(tenant, day, n)?;
            batch.push(event.clone());
            // Retries of a flaky network: about 3% of events are sent twice.
            if self.rng.below(33) == 0 {
                batch.push(event);
            }
        }
        // A conflict: the same event id with other content.
        let mut conflict = batch[tenant_start + (batch.len() - tenant_start) / 2].clone();
        conflict["quantity"] = json!("999");
        conflict.as_object_mut().map(|o| o.remove("digest"));
        conflict
            .as_object_mut()
            .map(|o| o.remove("source_signature"));
        conflict.as_object_mut().map(|o| o.remove("source"));
        conflict.as_object_mut().map(|o| o.remove("source_seq"));
        batch.push(conflict);
        // Invalid events, kept with their reasons for reconciliation.
        batch.push(json!({"event_id": format!("{tenant}-bad-{day_index}-1"), "tenant_id": tenant, "service": "api", "metric": "requests", "quantity": "-4", "unit": "request", "timestamp": format_rfc3339(day.midnight().assume_utc() + Duration::hours(12)), "request_id": "r"}));
        batch.push(json!({"event_id": format!("{tenant}-bad-{day_index}-2"), "tenant_id": tenant, "service": "api", "metric": "Requests!", "quantity": "1", "unit": "request", "timestamp": format_rfc3339(day.midnight().assume_utc() + Duration::hours(13)), "request_id": "r"}));
        Ok(())
    }

    /// The `n`th usage event of a tenant's day, at a random time, signed when a source meters
    /// its service.
    fn usage_event(&mut self, tenant: &str, day: time::Date, n: u32) -> anyhow::Result<Value> {
        let at = day
            .with_time(Time::from_hms(
                u8::try_from(self.rng.below(23))?,
                u8::try_from(self.rng.below(60))?,
                u8::try_from(self.rng.below(60))?,
            )?)
            .assume_utc();
        let (service, metric, unit, quantity) = random_usage(self.rng);
        let event_id = format!("{tenant}-{}-{n}", format_day(day));
        let mut builder = EventBuilder::new(tenant, service, metric, &quantity, unit)
            .event_id(&event_id)
            .timestamp(at)
            .request_id(&format!("req-{event_id}"));
        let signer = self
            .source_keys
            .iter()
            .find(|(s, _)| *s == service)
            .map(|(_, k)| k);
        Ok(match signer {
            Some(key) => {
                let counter = self
                    .seqs
                    .entry((key.id().to_owned(), tenant.to_owned()))
                    .or_insert(0);
                *counter += 1;
                // A source loses a few events: the gaps are what reconciliation reports.
                if self.rng.below(200) == 0 {
                    *counter += 1;
                }
                builder = builder.source(key.id(), *counter);
                builder.sign(key)?.into_value()
            }
            None => builder.build()?.into_value(),
        })
    }
}

/// A random metric and quantity: mostly API requests, then storage, compute, and the
/// undeclared `search`.
fn random_usage(rng: &mut Rng) -> (&'static str, &'static str, &'static str, String) {
    match rng.below(10) {
        0..=5 => (
            "api",
            "requests",
            "request",
            format!("{}", 1 + rng.below(50)),
        ),
        6..=7 => (
            "storage",
            "gb_hours",
            "GiB-hour",
            format!("{}.{:02}", rng.below(20), rng.below(100)),
        ),
        8 => (
            "compute",
            "vcpu_seconds",
            "vCPU-second",
            format!("{}", 10 + rng.below(600)),
        ),
        _ => (
            "search",
            "queries",
            "query",
            format!("{}", 1 + rng.below(5)),
        ),
    }
}

/// Five events of acme from three days before `day`, arriving late.
fn late_arrivals(day: time::Date) -> anyhow::Result<Vec<Value>> {
    let mut events = Vec::new();
    for n in 0..5 {
        let at = (day - Duration::days(3))
            .with_time(Time::from_hms(10, n, 0)?)
            .assume_utc();
        events.push(
            EventBuilder::new("acme", "api", "requests", "7", "request")
                .event_id(&format!("acme-late-{n}"))
                .timestamp(at)
                .request_id("late")
                .build()?
                .into_value(),
        );
    }
    Ok(events)
}

/// Sends a day's events in requests of 500; returns the day's counts, also added to `totals`.
async fn send_day(meter: &ApiClient, batch: &[Value], totals: &mut Value) -> anyhow::Result<Value> {
    let mut day_totals =
        json!({"accepted": 0, "duplicates": 0, "late": 0, "rejected": 0, "conflicts": 0});
    for chunk in batch.chunks(500) {
        let (_, body) = meter
            .call(Method::POST, "/v1/events", Some(&json!(chunk)))
            .await?;
        for key in ["accepted", "duplicates", "late", "rejected", "conflicts"] {
            day_totals[key] =
                json!(day_totals[key].as_u64().unwrap_or(0) + body[key].as_u64().unwrap_or(0));
            totals[key] =
                json!(totals[key].as_u64().unwrap_or(0) + body[key].as_u64().unwrap_or(0));
        }
    }
    Ok(day_totals)
}

/// Closes every day, then writes the evidence of metering (MET-3, issue 5): each seed tenant's
/// daily rollups and reconciliation, and its signed integrity report.
pub(super) async fn day_close(
    demo: &mut Demo,
    game: &mut GameDay,
    traffic: &Traffic,
) -> anyhow::Result<()> {
    let clock = demo.clock.clone();
    clock.set(clock.now() + Duration::days(3));
    demo.app.jobs().run_once().await;
    let from = format_day(traffic.first_day);
    let to = format_day(traffic.first_day + Duration::days(DAYS - 1));
    let metering_dir = demo.out.join("metering");
    std::fs::create_dir_all(&metering_dir)?;
    for (tenant, _) in &game.tenant_keys {
        write_metering_reports(&game.audrey, &metering_dir, tenant, &from, &to).await?;
        let (_, body) = game
            .audrey
            .call(
                Method::POST,
                &format!("/v1/tenants/{tenant}/integrity-report"),
                Some(&json!({"from": from, "to": to})),
            )
            .await?;
        let evidence = body["evidence"]["id"]
            .as_str()
            .context("integrity evidence")?
            .to_owned();
        let file = demo.save_evidence(&evidence).await?;
        demo.log.step(
            &clock,
            "integrity report",
            &format!(
                "`{tenant}` {from}..{to}: **{}**, missing ratio {} → {file}",
                body["report"]["result"],
                body["report"]["checks"]["missing_ratio_below_target"]["missing_ratio"]
            ),
        );
        game.integrity.push((
            tenant.to_string(),
            evidence,
            body["report"]["result"].clone(),
        ));
    }
    demo.log
        .step(&clock, "metering totals", &traffic.totals.to_string());
    Ok(())
}

/// A tenant's daily usage and reconciliation of `from..=to`, each as pretty JSON and as CSV,
/// into `metering_dir`.
async fn write_metering_reports(
    auditor: &ApiClient,
    metering_dir: &Path,
    tenant: &str,
    from: &str,
    to: &str,
) -> anyhow::Result<()> {
    for (kind, path) in [
        ("usage-daily", "usage/daily"),
        ("reconciliation", "reconciliation"),
    ] {
        let (_, json_body) = auditor
            .call_raw(
                Method::GET,
                &format!("/v1/tenants/{tenant}/{path}?from={from}&to={to}"),
                None,
            )
            .await?;
        let (_, csv_body) = auditor
            .call_raw(
                Method::GET,
                &format!("/v1/tenants/{tenant}/{path}?from={from}&to={to}&format=csv"),
                None,
            )
            .await?;
        let pretty: Value = serde_json::from_str(&json_body)?;
        std::fs::write(
            metering_dir.join(format!("{tenant}-{kind}.json")),
            serde_json::to_string_pretty(&pretty)?,
        )?;
        std::fs::write(metering_dir.join(format!("{tenant}-{kind}.csv")), csv_body)?;
    }
    Ok(())
}
