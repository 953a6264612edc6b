//! Meter queries (`GET /api/v1/meters/{slug}/query`): SUM, COUNT, UNIQUE_COUNT, AVG, MIN, MAX
//! and LATEST per window, subject and group, computed exactly (decimals) from the stored
//! events. SUM, COUNT, MAX and AVG over UTC days or months without group-by attributes are
//! answered from the daily rollups; everything else reads the tenant's event payloads.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use companyos_domain::meter::{
    Meter, MeterAggregation, SUBJECT_ATTRIBUTE, UNIQUE_VALUE_ATTRIBUTE, WindowSize, WindowZone,
    window_end, window_start,
};
use companyos_domain::time_util::{day_from_number, day_number, day_start, utc_day};
use companyos_domain::usage::exact_add;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;
use sqlx::{AnyConnection, Row as _};
use time::{OffsetDateTime, UtcOffset};

use crate::app::Metering;
use crate::app::{Actor, App};
use crate::authz::Resource;
use crate::error::ServiceError;
use crate::lifecycle::placeholder_tenant;
use companyos_domain::Action;

/// At most this many rows in an answer.
pub const ROWS_MAX: usize = 100_000;
/// At most this many stored events read by one query that the rollups cannot answer.
pub const EVENTS_SCANNED_MAX: usize = 10_000_000;
/// Events read from the store at a time.
const SEQ_CHUNK: u64 = 65_536;

/// A meter query, parsed at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterQuery {
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    pub window_size: Option<WindowSize>,
    pub time_zone: WindowZone,
    pub subjects: Vec<String>,
    /// Group-by names of the meter, and `subject`.
    pub group_by: Vec<String>,
    pub filter_group_by: BTreeMap<String, String>,
}

/// One row of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterRow {
    pub value: Decimal,
    pub window_start: OffsetDateTime,
    pub window_end: OffsetDateTime,
    /// `None` unless the query groups by subject or filters by subject.
    pub subject: Option<String>,
    pub group_by: BTreeMap<String, Option<String>>,
}

/// The answer to a meter query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterQueryResult {
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
    pub window_size: Option<WindowSize>,
    pub rows: Vec<MeterRow>,
}

/// Window start, subject, group values.
type RowKey = (OffsetDateTime, Option<String>, Vec<Option<String>>);

/// The running aggregate of one row.
#[derive(Debug, Default)]
struct Aggregate {
    sum: Decimal,
    count: u64,
    min: Option<Decimal>,
    max: Option<Decimal>,
    /// Time, seq and quantity of the latest event.
    latest: Option<(OffsetDateTime, u64, Decimal)>,
    unique: BTreeSet<String>,
}

fn overflow() -> ServiceError {
    ServiceError::invalid(
        "from",
        "the sum leaves the range of exact decimals; narrow the query",
    )
}

impl Aggregate {
    fn add_event(
        &mut self,
        quantity: Decimal,
        at: OffsetDateTime,
        seq: u64,
        unique: Option<&str>,
    ) -> Result<(), ServiceError> {
        self.sum = exact_add(self.sum, quantity).ok_or_else(overflow)?;
        self.count += 1;
        self.min = Some(self.min.map_or(quantity, |m| m.min(quantity)));
        self.max = Some(self.max.map_or(quantity, |m| m.max(quantity)));
        if self.latest.is_none_or(|(t, s, _)| (at, seq) > (t, s)) {
            self.latest = Some((at, seq, quantity));
        }
        if let Some(value) = unique {
            self.unique.insert(value.to_owned());
        }
        Ok(())
    }

    fn add_rollup(&mut self, sum: Decimal, max: Decimal, events: u64) -> Result<(), ServiceError> {
        self.sum = exact_add(self.sum, sum).ok_or_else(overflow)?;
        self.count += events;
        self.max = Some(self.max.map_or(max, |m| m.max(max)));
        Ok(())
    }

    fn value(&self, aggregation: MeterAggregation) -> Decimal {
        match aggregation {
            MeterAggregation::Sum => self.sum,
            MeterAggregation::Count => Decimal::from(self.count),
            MeterAggregation::UniqueCount => Decimal::from(self.unique.len() as u64),
            // Exact when the quotient terminates within 28 digits, else rounded there.
            MeterAggregation::Avg => self
                .sum
                .checked_div(Decimal::from(self.count.max(1)))
                .unwrap_or_default(),
            MeterAggregation::Min => self.min.unwrap_or_default(),
            MeterAggregation::Max => self.max.unwrap_or_default(),
            MeterAggregation::Latest => self.latest.map(|(_, _, q)| q).unwrap_or_default(),
        }
        .normalize()
    }
}

/// What a query groups and filters by, checked against the meter.
struct Plan<'a> {
    meter: &'a Meter,
    from: OffsetDateTime,
    to: OffsetDateTime,
    window_size: Option<WindowSize>,
    zone: WindowZone,
    by_subject: bool,
    subjects: BTreeSet<String>,
    groups: Vec<String>,
    filters: BTreeMap<String, String>,
}

impl Plan<'_> {
    fn window_of(&self, at: OffsetDateTime) -> OffsetDateTime {
        match self.window_size {
            Some(size) => window_start(at, size, &self.zone),
            None => self.from,
        }
    }

    fn window_end_of(&self, start: OffsetDateTime) -> OffsetDateTime {
        match self.window_size {
            Some(size) => window_end(start, size, &self.zone),
            None => self.to,
        }
    }

    /// Whether the daily rollups hold the answer (for a tenant without mapped subjects).
    fn rollups_answer(&self) -> bool {
        let midnight = |t: OffsetDateTime| t.time() == time::Time::MIDNIGHT;
        matches!(
            self.meter.aggregation,
            MeterAggregation::Sum
                | MeterAggregation::Count
                | MeterAggregation::Max
                | MeterAggregation::Avg
        ) && self.groups.is_empty()
            && self.filters.is_empty()
            && self.zone.is_utc()
            && matches!(
                self.window_size,
                None | Some(WindowSize::Day) | Some(WindowSize::Month)
            )
            && midnight(self.from)
            && midnight(self.to)
    }
}

fn plan<'a>(
    meter: &'a Meter,
    query: &MeterQuery,
    now: OffsetDateTime,
) -> Result<Plan<'a>, ServiceError> {
    let to = query.to.unwrap_or(now).to_offset(UtcOffset::UTC);
    let from = query
        .from
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(UtcOffset::UTC);
    if from >= to {
        return Err(ServiceError::invalid("from", "must be before to"));
    }
    let mut groups = Vec::new();
    for name in &query.group_by {
        if name == "subject" {
            continue;
        }
        if !meter.group_by.contains_key(name) {
            return Err(ServiceError::invalid(
                "groupBy",
                format!("{name:?} is not a groupBy of meter {}", meter.slug),
            ));
        }
        if !groups.contains(name) {
            groups.push(name.clone());
        }
    }
    for name in query.filter_group_by.keys() {
        if !meter.group_by.contains_key(name) {
            return Err(ServiceError::invalid(
                &format!("filterGroupBy[{name}]"),
                format!("is not a groupBy of meter {}", meter.slug),
            ));
        }
    }
    Ok(Plan {
        meter,
        from,
        to,
        window_size: query.window_size,
        zone: query.time_zone.clone(),
        by_subject: query.group_by.iter().any(|g| g == "subject") || !query.subjects.is_empty(),
        subjects: query.subjects.iter().cloned().collect(),
        groups,
        filters: query.filter_group_by.clone(),
    })
}

/// A stored decimal (rollup text or a canonical quantity).
fn decimal(text: &str) -> Result<Decimal, ServiceError> {
    Decimal::from_str(text)
        .or_else(|_| Decimal::from_scientific(text))
        .map_err(|_| ServiceError::Internal(format!("stored quantity {text:?}")))
}

impl App {
    /// The meter, once the actor may read usage at all (a tenant key of an active tenant, or
    /// an operator whose role reads usage): 404 is not an oracle for the unauthorized.
    async fn get_meter_for_query(&self, actor: &Actor, slug: &str) -> Result<Meter, ServiceError> {
        let attributes = match &actor.principal {
            crate::authz::Principal::TenantKey { tenant, .. } => tenant.clone(),
            _ => placeholder_tenant(),
        };
        self.authorize_read(
            actor,
            Action::UsageRead,
            Resource::Tenant(&attributes),
            &format!("meter:{slug}"),
            None,
        )
        .await?;
        Ok(self
            .meter_by_slug(slug)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("meter {slug}")))?
            .meter)
    }

    /// The tenants whose events the query reads, each authorized for `usage.read`.
    async fn query_tenants(
        &self,
        conn: &mut AnyConnection,
        actor: &Actor,
        plan: &Plan<'_>,
    ) -> Result<BTreeSet<String>, ServiceError> {
        let candidates: BTreeSet<String> = if !plan.subjects.is_empty() {
            let subjects: BTreeSet<&str> = plan.subjects.iter().map(String::as_str).collect();
            let mapped = self.subject_tenants(&subjects).await?;
            subjects
                .iter()
                .map(|s| mapped.get(*s).cloned().unwrap_or_else(|| (*s).to_owned()))
                .collect()
        } else if let crate::authz::Principal::TenantKey { tenant, .. } = &actor.principal {
            BTreeSet::from([tenant.id.clone()])
        } else {
            self.tenants_with_usage(conn, plan).await?
        };
        let mut tenants = BTreeSet::new();
        for tenant in candidates {
            match self
                .readable_tenant(conn, actor, &tenant, Action::UsageRead)
                .await
            {
                Ok(_) => {
                    tenants.insert(tenant);
                }
                // A subject that is no tenant (and mapped to none) has no usage.
                Err(ServiceError::NotFound(_)) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(tenants)
    }

    /// Tenants with events of the meter's metric in the query's days.
    async fn tenants_with_usage(
        &self,
        conn: &mut AnyConnection,
        plan: &Plan<'_>,
    ) -> Result<BTreeSet<String>, ServiceError> {
        let mut tenants = BTreeSet::new();
        for table in ["usage_daily", "usage_late"] {
            let found: Vec<String> = sqlx::query_scalar(&format!(
                "SELECT DISTINCT tenant_id FROM {table} WHERE service = $1 AND metric = $2 \
                 AND unit = $3 AND day >= $4 AND day <= $5"
            ))
            .bind(plan.meter.service.as_str())
            .bind(plan.meter.slug.as_str())
            .bind(plan.meter.unit.as_str())
            .bind(day_number(utc_day(plan.from)))
            .bind(day_number(utc_day(plan.to)))
            .fetch_all(&mut *conn)
            .await?;
            tenants.extend(found);
        }
        Ok(tenants)
    }

    /// Adds a tenant's on-time and late daily rollups of the meter's metric.
    async fn add_rollups(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        plan: &Plan<'_>,
        rows: &mut BTreeMap<RowKey, Aggregate>,
    ) -> Result<(), ServiceError> {
        for table in ["usage_daily", "usage_late"] {
            let stored = sqlx::query(&format!(
                "SELECT day, quantity_sum, quantity_max, events FROM {table} WHERE tenant_id = $1 \
                 AND service = $2 AND metric = $3 AND unit = $4 AND day >= $5 AND day < $6"
            ))
            .bind(tenant)
            .bind(plan.meter.service.as_str())
            .bind(plan.meter.slug.as_str())
            .bind(plan.meter.unit.as_str())
            .bind(day_number(utc_day(plan.from)))
            .bind(day_number(utc_day(plan.to)))
            .fetch_all(&mut *conn)
            .await?;
            for row in &stored {
                let day = day_start(day_from_number(row.try_get("day")?));
                let sum = decimal(&row.try_get::<String, _>("quantity_sum")?)?;
                let max = decimal(&row.try_get::<String, _>("quantity_max")?)?;
                let events = u64::try_from(row.try_get::<i64, _>("events")?).unwrap_or(0);
                let subject = plan.by_subject.then(|| tenant.to_owned());
                rows.entry((plan.window_of(day), subject, Vec::new()))
                    .or_default()
                    .add_rollup(sum, max, events)?;
            }
        }
        Ok(())
    }

    /// Reads every stored event of a tenant and adds those of the meter in the query's range.
    async fn scan_events(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        plan: &Plan<'_>,
        rows: &mut BTreeMap<RowKey, Aggregate>,
        scanned: &mut usize,
    ) -> Result<(), ServiceError> {
        let end: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(first_seq + event_count), 0) FROM usage_event_bundles \
             WHERE tenant_id = $1",
        )
        .bind(tenant)
        .fetch_one(&mut *conn)
        .await?;
        let end = u64::try_from(end).unwrap_or(0);
        let needle = format!("\"metric\":\"{}\"", plan.meter.slug);
        let mut from = 0u64;
        while from < end {
            let to = (from + SEQ_CHUNK).min(end);
            let events = crate::bundles::read_canonical_forms(conn, tenant, from, to).await?;
            *scanned += events.len();
            if *scanned > EVENTS_SCANNED_MAX {
                return Err(ServiceError::TooLarge(format!(
                    "the query reads more than {EVENTS_SCANNED_MAX} events; narrow it by subject"
                )));
            }
            for (seq, canonical) in &events {
                // The canonical form (JCS) has no spaces: a cheap test before parsing.
                if !canonical.contains(&needle) {
                    continue;
                }
                add_event(plan, tenant, *seq, &UsageFields::parse(canonical)?, rows)?;
            }
            from = to;
        }
        Ok(())
    }
}

impl Metering<'_> {
    /// Answers a meter query for the subjects the actor may read.
    pub async fn query_meter(
        &self,
        actor: &Actor,
        slug: &str,
        query: &MeterQuery,
    ) -> Result<MeterQueryResult, ServiceError> {
        let meter = self.get_meter_for_query(actor, slug).await?;
        let plan = plan(&meter, query, self.now())?;
        let mut conn = self.db().readers().acquire().await?;
        let tenants = self.query_tenants(&mut conn, actor, &plan).await?;
        let mut rows: BTreeMap<RowKey, Aggregate> = BTreeMap::new();
        let mut scanned = 0usize;
        for tenant in &tenants {
            if plan.rollups_answer() && !self.has_mapped_subjects(tenant).await? {
                self.add_rollups(&mut conn, tenant, &plan, &mut rows)
                    .await?;
            } else {
                self.scan_events(&mut conn, tenant, &plan, &mut rows, &mut scanned)
                    .await?;
            }
            if rows.len() > ROWS_MAX {
                return Err(ServiceError::TooLarge(format!(
                    "the answer has more than {ROWS_MAX} rows; narrow the query or widen the window"
                )));
            }
        }
        let rows = rows
            .into_iter()
            .map(|((start, subject, values), aggregate)| MeterRow {
                value: aggregate.value(meter.aggregation),
                window_start: start,
                window_end: plan.window_end_of(start),
                subject,
                group_by: plan.groups.iter().cloned().zip(values).collect(),
            })
            .collect();
        Ok(MeterQueryResult {
            from: plan.from,
            to: plan.to,
            window_size: plan.window_size,
            rows,
        })
    }
}

/// What a meter query reads of a stored event, borrowed from its canonical form.
#[derive(Deserialize)]
struct UsageFields<'a> {
    #[serde(borrow)]
    service: Cow<'a, str>,
    #[serde(borrow)]
    metric: Cow<'a, str>,
    #[serde(borrow)]
    unit: Cow<'a, str>,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
    #[serde(borrow)]
    quantity: &'a RawValue,
    /// Attribute values are strings (CONTRACT §5).
    #[serde(borrow, default)]
    attributes: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
}

impl<'a> UsageFields<'a> {
    /// Reads a stored canonical form (a valid usage event: anything else is a corrupt store).
    fn parse(canonical: &'a str) -> Result<Self, ServiceError> {
        serde_json::from_str(canonical)
            .map_err(|e| ServiceError::Internal(format!("stored event: {e}")))
    }

    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(|value| value.as_ref())
    }

    /// The quantity: a JSON string or number, exactly.
    fn quantity(&self) -> Result<Decimal, ServiceError> {
        match serde_json::from_str::<Cow<'_, str>>(self.quantity.get()) {
            Ok(text) => decimal(&text),
            Err(_) => decimal(self.quantity.get()),
        }
    }
}

/// Adds one stored event when it is the meter's and in the query.
fn add_event(
    plan: &Plan<'_>,
    tenant: &str,
    seq: u64,
    event: &UsageFields<'_>,
    rows: &mut BTreeMap<RowKey, Aggregate>,
) -> Result<(), ServiceError> {
    if event.metric != plan.meter.slug.as_str()
        || event.service != plan.meter.service.as_str()
        || event.unit != plan.meter.unit.as_str()
    {
        return Ok(());
    }
    let Ok(at) = companyos_domain::time_util::parse_rfc3339(&event.timestamp, "timestamp") else {
        return Ok(());
    };
    if at < plan.from || at >= plan.to {
        return Ok(());
    }
    let subject = event.attribute(SUBJECT_ATTRIBUTE).unwrap_or(tenant);
    if !plan.subjects.is_empty() && !plan.subjects.contains(subject) {
        return Ok(());
    }
    if plan
        .filters
        .iter()
        .any(|(name, wanted)| event.attribute(name) != Some(wanted.as_str()))
    {
        return Ok(());
    }
    let quantity = event.quantity()?;
    let key = (
        plan.window_of(at),
        plan.by_subject.then(|| subject.to_owned()),
        plan.groups
            .iter()
            .map(|g| event.attribute(g).map(str::to_owned))
            .collect(),
    );
    rows.entry(key).or_default().add_event(
        quantity,
        at,
        seq,
        event.attribute(UNIQUE_VALUE_ATTRIBUTE),
    )
}
