//! Metering declarations and the coverage gate (MET-4), and usage sources: services declare what
//! they meter; undeclared usage is flagged (`warn`) or rejected (`enforce`), for the deployment
//! or per service; mode changes are audited.

use std::collections::{BTreeMap, HashMap};

use companyos_domain::metering::{CoverageMode, MeteringDeclaration, RawDeclaration};
use companyos_domain::time_util::from_micros;
use companyos_domain::{FieldError, MetricName, ServiceName, SourceId, Unit};
use companyos_ledger::usage_event;
use serde_json::{Value, json};
use sqlx::Row as _;
use time::OffsetDateTime;

use crate::app::Metering;
use crate::app::{Actor, App};
use crate::authz::Resource;
use crate::db::StoreError;
use crate::error::ServiceError;
use companyos_domain::Action;

pub mod day_close;
pub(crate) mod group_commit;
pub mod ingest;
pub mod meters;
pub mod reports;

const COVERAGE_SETTING: &str = "coverage_mode";

/// The declared services and the deployment's coverage mode (`GET /v1/metering/services`).
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredServices {
    pub deployment_mode: CoverageMode,
    pub services: Vec<DeclaredService>,
}

/// One declared service, its override of the deployment's mode and its last change.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredService {
    pub declaration: MeteringDeclaration,
    pub mode_override: Option<CoverageMode>,
    pub updated_at: OffsetDateTime,
    pub updated_by: String,
}

impl DeclaredServices {
    /// The mode the coverage gate applies to `service`: its override, else the deployment's.
    pub fn mode_of(&self, service: &DeclaredService) -> CoverageMode {
        service.mode_override.unwrap_or(self.deployment_mode)
    }
}

/// What the coverage gate saw that no declaration matches (`GET /v1/metering/coverage`).
#[derive(Debug, Clone, PartialEq)]
pub struct CoverageReport {
    pub mode: CoverageMode,
    pub services_without_declaration: Vec<UndeclaredService>,
    pub undeclared_metrics: Vec<UndeclaredMetric>,
    pub unit_mismatches: Vec<UnitMismatch>,
    pub declared_metrics_never_seen: Vec<DeclaredMetric>,
}

/// A service seen in usage that has no declaration, with its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndeclaredService {
    pub service: String,
    pub events: i64,
}

/// A metric seen for a declared service that does not declare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndeclaredMetric {
    pub service: String,
    pub metric: String,
    pub events: i64,
}

/// A declared metric seen with another unit than the declared one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitMismatch {
    pub service: String,
    pub metric: String,
    pub unit: String,
    pub declared_unit: Unit,
    pub events: i64,
}

/// A declared metric (of `service`), here one that was never seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredMetric {
    pub service: String,
    pub metric: MetricName,
}

/// A registered usage source and its Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub id: SourceId,
    pub service: ServiceName,
    pub public_key: String,
    pub created_at: OffsetDateTime,
    pub created_by: String,
}

fn source_of(row: &sqlx::any::AnyRow) -> Result<Source, StoreError> {
    let id: String = row.try_get("id")?;
    let service: String = row.try_get("service")?;
    Ok(Source {
        id: SourceId::parse_field(&id, "id").map_err(|_| StoreError::corrupt("source id"))?,
        service: ServiceName::parse(&service).map_err(|_| StoreError::corrupt("source service"))?,
        public_key: row.try_get("public_key")?,
        created_at: from_micros(row.try_get("created_at")?),
        created_by: row.try_get("created_by")?,
    })
}

fn parse_stored(text: &str) -> Result<MeteringDeclaration, StoreError> {
    let raw: RawDeclaration = serde_json::from_str(text)
        .map_err(|e| StoreError::corrupt(format!("stored declaration: {e}")))?;
    MeteringDeclaration::parse(&raw, None)
        .map_err(|e| StoreError::corrupt(format!("stored declaration: {e}")))
}

impl App {
    /// The declaration of a service, if any.
    pub(crate) async fn declaration(
        &self,
        service: &str,
    ) -> Result<Option<MeteringDeclaration>, ServiceError> {
        let text: Option<String> =
            sqlx::query_scalar("SELECT declaration FROM metering_declarations WHERE service = $1")
                .bind(service)
                .fetch_optional(self.db().readers())
                .await?;
        let declared = text.as_deref().map(parse_stored).transpose()?;
        // A meter is a declared metric (CONTRACT §11).
        self.with_meter_metrics(service, declared).await
    }

    /// The deployment's coverage mode and the per-service overrides.
    pub(crate) async fn coverage_modes(
        &self,
    ) -> Result<(CoverageMode, HashMap<String, CoverageMode>), ServiceError> {
        let deployment: Option<String> =
            sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(COVERAGE_SETTING)
                .fetch_optional(self.db().readers())
                .await?;
        let deployment = deployment
            .as_deref()
            .and_then(CoverageMode::parse)
            .unwrap_or(self.settings().coverage_mode_default);
        let rows = sqlx::query(
            "SELECT service, coverage_mode FROM metering_declarations WHERE coverage_mode IS NOT NULL",
        )
        .fetch_all(self.db().readers())
        .await?;
        let mut overrides = HashMap::new();
        for row in rows {
            let mode: String = row.try_get("coverage_mode")?;
            if let Some(mode) = CoverageMode::parse(&mode) {
                overrides.insert(row.try_get("service")?, mode);
            }
        }
        Ok((deployment, overrides))
    }
}

impl Metering<'_> {
    /// Declares (or replaces) what a service meters.
    pub async fn declare(
        &self,
        actor: &Actor,
        service: &str,
        raw: &RawDeclaration,
    ) -> Result<MeteringDeclaration, ServiceError> {
        let mut entry = self.entry(actor, "metering.declare", &format!("service:{service}"));
        let mut tx = self.db().begin().await?;
        let result = async {
            self.require(actor, Action::MeteringDeclare, Resource::Deployment, &[], &mut entry)?;
            let declaration = MeteringDeclaration::parse(raw, Some(service))?;
            // The declaration's serialized form is what is stored and what the audit record holds.
            let stored = serde_json::to_string(&declaration)
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
            entry.details = json!({"declaration": declaration});
            sqlx::query(
                "INSERT INTO metering_declarations (service, declaration, coverage_mode, updated_at, \
                 updated_by) VALUES ($1, $2, NULL, $3, $4) ON CONFLICT (service) DO UPDATE SET \
                 declaration = excluded.declaration, updated_at = excluded.updated_at, \
                 updated_by = excluded.updated_by",
            )
            .bind(declaration.service.as_str())
            .bind(stored)
            .bind(self.now_micros())
            .bind(actor.principal.actor_name())
            .execute(&mut *tx)
            .await?;
            Ok(declaration)
        }
        .await;
        self.finish(tx, entry, result).await
    }

    /// Declared services, their modes, and what was seen of each.
    pub async fn list_services(&self, actor: &Actor) -> Result<DeclaredServices, ServiceError> {
        self.authorize_read(
            actor,
            Action::MeteringRead,
            Resource::Deployment,
            "services",
            None,
        )
        .await?;
        let (deployment, overrides) = self.coverage_modes().await?;
        let rows = sqlx::query(
            "SELECT service, declaration, coverage_mode, updated_at, updated_by \
             FROM metering_declarations ORDER BY service",
        )
        .fetch_all(self.db().readers())
        .await?;
        let mut services = Vec::new();
        for row in &rows {
            let service: String = row.try_get("service")?;
            let declaration: String = row.try_get("declaration")?;
            services.push(DeclaredService {
                declaration: parse_stored(&declaration)?,
                mode_override: overrides.get(&service).copied(),
                updated_at: from_micros(row.try_get("updated_at")?),
                updated_by: row.try_get("updated_by")?,
            });
        }
        Ok(DeclaredServices {
            deployment_mode: deployment,
            services,
        })
    }

    /// Sets the coverage mode of the deployment (`service` = None) or overrides it for one
    /// service (`mode` = None removes the override).
    pub async fn set_coverage_mode(
        &self,
        actor: &Actor,
        service: Option<&str>,
        mode: Option<&str>,
    ) -> Result<(), ServiceError> {
        let target = service.map_or("deployment".to_owned(), |s| format!("service:{s}"));
        let mut entry = self
            .entry(actor, "metering.coverage.update", &target)
            .details(json!({"service": service, "mode": mode}));
        let mut tx = self.db().begin().await?;
        let result = async {
            self.require(
                actor,
                Action::MeteringCoverageUpdate,
                Resource::Deployment,
                &[],
                &mut entry,
            )?;
            let parsed = match mode {
                Some(text) => Some(
                    CoverageMode::parse(text)
                        .ok_or_else(|| ServiceError::invalid("mode", "must be warn or enforce"))?,
                ),
                None => None,
            };
            let previous = self.coverage_modes().await?;
            match service {
                None => {
                    let mode =
                        parsed.ok_or_else(|| ServiceError::invalid("mode", "is required"))?;
                    note_previous_mode(&mut entry, json!(previous.0.as_str()));
                    self.store_deployment_mode(&mut tx, mode).await?;
                }
                Some(service) => {
                    ServiceName::parse(service)?;
                    note_previous_mode(
                        &mut entry,
                        json!(previous.1.get(service).map(|m| m.as_str())),
                    );
                    self.store_service_mode(&mut tx, service, parsed).await?;
                }
            }
            Ok(())
        }
        .await;
        self.finish(tx, entry, result).await
    }

    /// Stores the deployment's coverage mode.
    async fn store_deployment_mode(
        &self,
        tx: &mut crate::db::Tx,
        mode: CoverageMode,
    ) -> Result<(), ServiceError> {
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at",
        )
        .bind(COVERAGE_SETTING)
        .bind(mode.as_str())
        .bind(self.now_micros())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Stores a declared service's own coverage mode (`None`: the deployment's applies).
    async fn store_service_mode(
        &self,
        tx: &mut crate::db::Tx,
        service: &str,
        mode: Option<CoverageMode>,
    ) -> Result<(), ServiceError> {
        let updated = sqlx::query(
            "UPDATE metering_declarations SET coverage_mode = $1, updated_at = $2 \
             WHERE service = $3",
        )
        .bind(mode.map(|m| m.as_str()))
        .bind(self.now_micros())
        .bind(service)
        .execute(&mut **tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(ServiceError::NotFound(format!(
                "metering declaration of service {service} (declare it first)"
            )));
        }
        Ok(())
    }

    /// The coverage report: services seen without a declaration, declared metrics never seen,
    /// and units that differ from the declaration.
    pub async fn coverage_report(&self, actor: &Actor) -> Result<CoverageReport, ServiceError> {
        self.authorize_read(
            actor,
            Action::MeteringRead,
            Resource::Deployment,
            "services",
            None,
        )
        .await?;
        let declared = self.declarations_with_meters().await?;
        let seen_rows = sqlx::query(
            "SELECT service, metric, unit, events, first_seen, last_seen FROM metering_seen \
             ORDER BY service, metric, unit",
        )
        .fetch_all(self.db().readers())
        .await?;
        let seen = SeenAgainstDeclared::of(&seen_rows, &declared)?;
        let never_seen = never_seen(&declared, &seen.metrics);
        let (mode, _) = self.coverage_modes().await?;
        Ok(CoverageReport {
            mode,
            services_without_declaration: seen
                .undeclared_services
                .into_iter()
                .map(|(service, events)| UndeclaredService { service, events })
                .collect(),
            undeclared_metrics: seen.undeclared_metrics,
            unit_mismatches: seen.unit_mismatches,
            declared_metrics_never_seen: never_seen,
        })
    }

    /// Every stored declaration, with the metrics of the service's OpenMeter meters merged in.
    async fn declarations_with_meters(
        &self,
    ) -> Result<BTreeMap<String, MeteringDeclaration>, ServiceError> {
        let declared_rows = sqlx::query("SELECT service, declaration FROM metering_declarations")
            .fetch_all(self.db().readers())
            .await?;
        let mut declared: BTreeMap<String, MeteringDeclaration> = BTreeMap::new();
        for row in &declared_rows {
            let text: String = row.try_get("declaration")?;
            declared.insert(row.try_get("service")?, parse_stored(&text)?);
        }
        for service in self.metered_services().await? {
            let merged = self
                .with_meter_metrics(&service, declared.remove(&service))
                .await?;
            declared.extend(merged.map(|d| (service, d)));
        }
        Ok(declared)
    }

    /// Registers a usage source and its Ed25519 public key.
    pub async fn register_source(
        &self,
        actor: &Actor,
        id: &str,
        service: &str,
        public_key: &str,
    ) -> Result<Source, ServiceError> {
        let mut entry = self
            .entry(actor, "source.create", &format!("source:{id}"))
            .details(json!({"service": service, "public_key": public_key}));
        let mut tx = self.db().begin().await?;
        let result = async {
            self.require(
                actor,
                Action::SourceCreate,
                Resource::Deployment,
                &[],
                &mut entry,
            )?;
            let mut c = companyos_domain::error::Collector::new();
            let id = c.take(SourceId::parse_field(id, "id"));
            let service = c.take(ServiceName::parse(service));
            if usage_event::parse_public_key(public_key).is_none() {
                c.push(FieldError::new(
                    "public_key",
                    "must be the base64 of a 32-byte Ed25519 public key",
                ));
            }
            c.finish()?;
            let (Some(id), Some(service)) = (id, service) else {
                return Err(ServiceError::invalid("id", "is required"));
            };
            let existing = sqlx::query("SELECT service, public_key FROM sources WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            if existing.is_some() {
                return Err(ServiceError::conflict(format!(
                    "source {id} is already registered; register a new source id to rotate a key"
                )));
            }
            let now = self.now_micros();
            sqlx::query(
                "INSERT INTO sources (id, service, public_key, created_at, created_by) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id.as_str())
            .bind(service.as_str())
            .bind(public_key)
            .bind(now)
            .bind(actor.principal.actor_name())
            .execute(&mut *tx)
            .await?;
            Ok(Source {
                id,
                service,
                public_key: public_key.to_owned(),
                created_at: from_micros(now),
                created_by: actor.principal.actor_name(),
            })
        }
        .await;
        self.finish(tx, entry, result).await
    }

    pub async fn list_sources(&self, actor: &Actor) -> Result<Vec<Source>, ServiceError> {
        self.authorize_read(
            actor,
            Action::SourceRead,
            Resource::Deployment,
            "sources",
            None,
        )
        .await?;
        let rows = sqlx::query(
            "SELECT id, service, public_key, created_at, created_by FROM sources ORDER BY id",
        )
        .fetch_all(self.db().readers())
        .await?;
        Ok(rows.iter().map(source_of).collect::<Result<Vec<_>, _>>()?)
    }
}

/// The metrics seen (rows of `metering_seen`) against the declarations.
#[derive(Debug, Default)]
struct SeenAgainstDeclared {
    undeclared_services: BTreeMap<String, i64>,
    undeclared_metrics: Vec<UndeclaredMetric>,
    unit_mismatches: Vec<UnitMismatch>,
    /// Events seen per (service, metric).
    metrics: BTreeMap<(String, String), i64>,
}

impl SeenAgainstDeclared {
    fn of(
        seen_rows: &[sqlx::any::AnyRow],
        declared: &BTreeMap<String, MeteringDeclaration>,
    ) -> Result<Self, ServiceError> {
        let mut seen = SeenAgainstDeclared::default();
        for row in seen_rows {
            let service: String = row.try_get("service")?;
            let metric: String = row.try_get("metric")?;
            let unit: String = row.try_get("unit")?;
            let events: i64 = row.try_get("events")?;
            *seen
                .metrics
                .entry((service.clone(), metric.clone()))
                .or_default() += events;
            let Some(declaration) = declared.get(&service) else {
                *seen.undeclared_services.entry(service).or_default() += events;
                continue;
            };
            match declaration
                .metrics
                .iter()
                .find(|m| m.name.as_str() == metric)
            {
                None => seen.undeclared_metrics.push(UndeclaredMetric {
                    service,
                    metric,
                    events,
                }),
                Some(m) if m.unit.as_str() != unit => seen.unit_mismatches.push(UnitMismatch {
                    service,
                    metric,
                    unit,
                    declared_unit: m.unit.clone(),
                    events,
                }),
                Some(_) => {}
            }
        }
        Ok(seen)
    }
}

/// The declared metrics no event was seen for.
fn never_seen(
    declared: &BTreeMap<String, MeteringDeclaration>,
    seen_metrics: &BTreeMap<(String, String), i64>,
) -> Vec<DeclaredMetric> {
    let mut never_seen = Vec::new();
    for (service, declaration) in declared {
        for metric in &declaration.metrics {
            if !seen_metrics.contains_key(&(service.clone(), metric.name.as_str().to_owned())) {
                never_seen.push(DeclaredMetric {
                    service: service.clone(),
                    metric: metric.name.clone(),
                });
            }
        }
    }
    never_seen
}

/// Names the coverage mode a change replaced in its audit record.
fn note_previous_mode(entry: &mut crate::audit::NewAudit, previous: Value) {
    if let Value::Object(details) = &mut entry.details {
        details.insert("previous".to_owned(), previous);
    }
}
