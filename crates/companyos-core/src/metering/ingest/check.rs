//! The checks of ingestion that need no lock, run in each request's own task: parsing (done
//! when the body was split), the time windows, registered sources and their signatures, and the
//! coverage gate; and the values the writer would otherwise derive (compact key, day).

use std::collections::{BTreeSet, HashMap};

use companyos_domain::metering::{CoverageMode, MeteringDeclaration};
use companyos_domain::time_util::{day_number, utc_day};
use companyos_domain::usage::UsageEvent;
use companyos_domain::{FieldError, TenantId};
use companyos_ledger::usage_event;
use sqlx::Row as _;

use super::{EventResult, EventStatus, RawEvent};
use crate::app::App;
use crate::db::{Placeholders, StoreError, list_placeholders};
use crate::dedupe::event_key;
use crate::error::ServiceError;
use crate::metering::group_commit::Decision;
use crate::settings::{Settings, SignatureRequirement};
use time::OffsetDateTime;

/// Keys per dedupe lookup.
const KEYS_PER_LOOKUP: usize = 256;

/// An event that passed every check that needs no lock, ready for the writer.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub(crate) index: usize,
    pub(crate) event: UsageEvent,
    pub(crate) raw: String,
    pub(crate) late_by_age: bool,
    pub(crate) flags: Vec<&'static str>,
    pub(crate) undeclared: bool,
    // Derived here, in the request's task, so the single writer does not spend time on them.
    pub(crate) key: i64,
    pub(crate) day: i64,
}

impl Checked {
    /// This event, rejected under the lock with `error`.
    pub(crate) fn rejected(&self, error: FieldError) -> Rejected {
        Rejected {
            index: self.index,
            tenant_id: Some(self.event.tenant_id.as_str().to_owned()),
            event_id: Some(self.event.event_id.as_str().to_owned()),
            day: self.day,
            errors: vec![error],
            raw: self.raw.clone(),
        }
    }

    /// The flags an event is stored and answered with: its own, and `tenant_suspended` when
    /// the writer found its tenant suspended.
    pub(crate) fn stored_flags(&self, suspended: bool) -> std::borrow::Cow<'_, [&'static str]> {
        if suspended {
            let mut flags = self.flags.clone();
            flags.push("tenant_suspended");
            std::borrow::Cow::Owned(flags)
        } else {
            std::borrow::Cow::Borrowed(&self.flags)
        }
    }

    /// The result row of this event, as the writer decided.
    pub(super) fn result(&self, decision: Decision) -> EventResult {
        let status = decision.status();
        let (seq, digest, errors, flags) = match decision {
            Decision::Stored { seq, suspended, .. } => (
                Some(seq),
                Some(self.event.digest),
                Vec::new(),
                self.stored_flags(suspended).into_owned(),
            ),
            Decision::Existing { seq, digest, .. } => {
                (Some(seq), Some(digest), Vec::new(), Vec::new())
            }
            Decision::Rejected(error) => (None, None, vec![error], Vec::new()),
        };
        EventResult {
            index: self.index,
            event_id: Some(self.event.event_id.as_str().to_owned()),
            status,
            seq,
            digest: digest.map(|d| d.to_string()),
            errors,
            flags,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Rejected {
    pub(crate) index: usize,
    pub(crate) tenant_id: Option<String>,
    pub(crate) event_id: Option<String>,
    pub(crate) day: i64,
    pub(crate) errors: Vec<FieldError>,
    pub(crate) raw: String,
}

impl Rejected {
    pub(super) fn result(&self) -> EventResult {
        EventResult {
            index: self.index,
            event_id: self.event_id.clone(),
            status: EventStatus::Rejected,
            seq: None,
            digest: None,
            errors: self.errors.clone(),
            flags: Vec::new(),
        }
    }
}

/// A registered source.
#[derive(Debug, Clone)]
struct SourceKey {
    service: String,
    key: ed25519_dalek::VerifyingKey,
}

impl App {
    /// Checks that need no lock: parsing, windows, sources and signatures, coverage.
    pub(super) async fn check_events(
        &self,
        events: Vec<RawEvent>,
    ) -> Result<(Vec<Checked>, Vec<Rejected>), ServiceError> {
        let now = self.now();
        let sources = self.load_sources(&events).await?;
        let declarations = self.load_declarations(&events).await?;
        let (deployment_mode, service_modes) = self.coverage_modes().await?;
        let checker = Checker {
            settings: self.settings(),
            now,
            received_day: day_number(utc_day(now)),
            sources,
            declarations,
            deployment_mode,
            service_modes,
        };
        let mut checked = Vec::with_capacity(events.len());
        let mut rejected = Vec::new();
        for (index, raw_event) in events.into_iter().enumerate() {
            match checker.check(index, raw_event) {
                Ok(event) => checked.push(event),
                Err(event) => rejected.push(event),
            }
        }
        Ok((checked, rejected))
    }

    async fn load_sources(
        &self,
        events: &[RawEvent],
    ) -> Result<HashMap<String, SourceKey>, ServiceError> {
        let ids: BTreeSet<&str> = events
            .iter()
            .filter_map(|e| e.parsed.as_ref().ok())
            .filter_map(|e| e.source.as_ref().map(|s| s.as_str()))
            .collect();
        let mut sources = HashMap::new();
        let ids: Vec<&str> = ids.into_iter().collect();
        for chunk in crate::db::statement_chunks(&ids, KEYS_PER_LOOKUP) {
            let sql = format!(
                "SELECT id, service, public_key FROM sources WHERE id IN ({})",
                list_placeholders(
                    Placeholders::for_backend(self.db().backend()),
                    1,
                    chunk.len()
                )
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(self.db().readers()).await? {
                let key: String = row.try_get("public_key")?;
                let key = usage_event::parse_public_key(&key)
                    .ok_or_else(|| StoreError::corrupt("stored source key"))?;
                sources.insert(
                    row.try_get("id")?,
                    SourceKey {
                        service: row.try_get("service")?,
                        key,
                    },
                );
            }
        }
        Ok(sources)
    }

    async fn load_declarations(
        &self,
        events: &[RawEvent],
    ) -> Result<HashMap<String, MeteringDeclaration>, ServiceError> {
        let services: BTreeSet<&str> = events
            .iter()
            .filter_map(|e| e.parsed.as_ref().ok())
            .map(|e| e.service.as_str())
            .collect();
        let mut declarations = HashMap::new();
        for service in services {
            if let Some(declaration) = self.declaration(service).await? {
                declarations.insert(service.to_owned(), declaration);
            }
        }
        Ok(declarations)
    }
}

/// What the checks of one request need, loaded once for all its events.
struct Checker<'a> {
    settings: &'a Settings,
    now: OffsetDateTime,
    received_day: i64,
    sources: HashMap<String, SourceKey>,
    declarations: HashMap<String, MeteringDeclaration>,
    deployment_mode: CoverageMode,
    service_modes: HashMap<String, CoverageMode>,
}

impl Checker<'_> {
    /// One event: ready for the writer, or rejected with every error found.
    fn check(&self, index: usize, raw_event: RawEvent) -> Result<Checked, Rejected> {
        let RawEvent { raw, parsed } = raw_event;
        let event = match parsed {
            Ok(event) => event,
            Err(invalid) => {
                return Err(Rejected {
                    index,
                    tenant_id: invalid.tenant_id.map(TenantId::into_string),
                    event_id: invalid.event_id,
                    day: invalid
                        .timestamp
                        .map_or(self.received_day, |t| day_number(utc_day(t))),
                    errors: invalid.errors.into_vec(),
                    raw,
                });
            }
        };
        let mut errors = Vec::new();
        let mut flags = Vec::new();
        self.check_window(&event, &mut errors);
        self.check_source(&event, &mut errors, &mut flags);
        let undeclared = self.check_coverage(&event, &mut errors, &mut flags);
        if errors.is_empty() {
            Ok(Checked {
                index,
                late_by_age: event.timestamp < self.now - self.settings.late_window,
                key: event_key(event.tenant_id.as_str(), event.event_id.as_str()),
                day: day_number(utc_day(event.timestamp)),
                event,
                raw,
                flags,
                undeclared,
            })
        } else {
            Err(Rejected {
                index,
                tenant_id: Some(event.tenant_id.as_str().to_owned()),
                event_id: Some(event.event_id.as_str().to_owned()),
                day: day_number(utc_day(event.timestamp)),
                errors,
                raw,
            })
        }
    }

    /// The timestamp is neither too far in the future nor older than the backdate limit.
    fn check_window(&self, event: &UsageEvent, errors: &mut Vec<FieldError>) {
        let settings = self.settings;
        if event.timestamp > self.now + settings.future_tolerance {
            errors.push(FieldError::new(
                "timestamp",
                format!(
                    "is more than {} minutes in the future",
                    settings.future_tolerance.whole_minutes()
                ),
            ));
        }
        if event.timestamp < self.now - settings.backdate_max {
            errors.push(FieldError::new(
                "timestamp",
                format!(
                    "is older than the maximum backdate of {} days",
                    settings.backdate_max.whole_days()
                ),
            ));
        }
    }

    /// The source is registered for the event's service and its signature verifies; an
    /// unsigned event is flagged, and refused when signatures are enforced.
    fn check_source(
        &self,
        event: &UsageEvent,
        errors: &mut Vec<FieldError>,
        flags: &mut Vec<&'static str>,
    ) {
        match (&event.source, &event.source_signature) {
            (Some(source), signature) => match self.sources.get(source.as_str()) {
                None => errors.push(FieldError::new("source", "is not a registered source")),
                Some(registered) => {
                    if registered.service != event.service.as_str() {
                        errors.push(FieldError::new(
                            "source",
                            format!("is registered for service {:?}", registered.service),
                        ));
                    }
                    match signature {
                        Some(signature) => {
                            if let Err(e) = usage_event::verify(
                                &registered.key,
                                event.canonical.as_bytes(),
                                signature,
                            ) {
                                errors.push(FieldError::new("source_signature", e.to_string()));
                            }
                        }
                        None => flags.push("unsigned"),
                    }
                }
            },
            (None, _) => flags.push("unsigned"),
        }
        if flags.contains(&"unsigned")
            && self.settings.require_signature == SignatureRequirement::Enforce
        {
            errors.push(FieldError::new(
                "source_signature",
                "is required (require_signature = enforce)",
            ));
        }
    }

    /// The coverage gate: an undeclared metric or unit is refused in `enforce` mode, flagged
    /// in `warn` mode. Returns whether the event is undeclared (and kept).
    fn check_coverage(
        &self,
        event: &UsageEvent,
        errors: &mut Vec<FieldError>,
        flags: &mut Vec<&'static str>,
    ) -> bool {
        let coverage = companyos_domain::metering::Coverage::of(
            self.declarations.get(event.service.as_str()),
            &event.metric,
            &event.unit,
        );
        let mode = self
            .service_modes
            .get(event.service.as_str())
            .copied()
            .unwrap_or(self.deployment_mode);
        let mut undeclared = false;
        if let Some(problem) = coverage.problem() {
            match mode {
                CoverageMode::Enforce => errors.push(FieldError::new(
                    problem.field,
                    format!("{} (coverage mode enforce)", problem.message),
                )),
                CoverageMode::Warn => {
                    undeclared = true;
                    if let Some(flag) = coverage.flag() {
                        flags.push(flag);
                    }
                }
            }
        }
        undeclared
    }
}
