//! Meters and subject mappings in the store: create, list, get (audited, by policy), and the
//! lookups ingestion and the coverage gate make.

use std::collections::{BTreeSet, HashMap};

use companyos_domain::meter::{Meter, RawMeter};
use companyos_domain::metering::{MeteringDeclaration, MetricDeclaration};
use companyos_domain::time_util::from_micros;
use companyos_domain::{FieldError, ServiceName, TenantId};
use serde_json::json;
use sqlx::Row as _;
use time::OffsetDateTime;

use crate::app::Metering;
use crate::app::{Actor, App};
use crate::authz::Resource;
use crate::db::{Placeholders, StoreError, list_placeholders};
use crate::error::ServiceError;
use companyos_domain::Action;

/// At most this many meters in a deployment (every ingestion request reads those of its types).
pub const METERS_MAX: i64 = 1000;
/// At most this many subjects mapped to one tenant.
pub const SUBJECTS_PER_TENANT_MAX: usize = 1000;
/// A subject is 1 to this many characters (it is stored as an event attribute).
pub const SUBJECT_CHARS_MAX: usize = 256;

/// A meter and who created it when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMeter {
    pub meter: Meter,
    pub created_at: OffsetDateTime,
    pub created_by: String,
}

/// The subjects mapped to a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSubjects {
    pub tenant_id: TenantId,
    pub subjects: Vec<String>,
}

fn stored_meter(row: &sqlx::any::AnyRow) -> Result<StoredMeter, ServiceError> {
    let text: String = row.try_get("definition")?;
    let raw: RawMeter = serde_json::from_str(&text)
        .map_err(|e| StoreError::corrupt(format!("stored meter: {e}")))?;
    let meter =
        Meter::parse(&raw).map_err(|e| StoreError::corrupt(format!("stored meter: {e}")))?;
    Ok(StoredMeter {
        meter,
        created_at: from_micros(row.try_get("created_at")?),
        created_by: row.try_get("created_by")?,
    })
}

impl App {
    pub(crate) async fn meter_by_slug(
        &self,
        slug: &str,
    ) -> Result<Option<StoredMeter>, ServiceError> {
        let row =
            sqlx::query("SELECT definition, created_at, created_by FROM meters WHERE slug = $1")
                .bind(slug)
                .fetch_optional(self.db().readers())
                .await?;
        row.as_ref().map(stored_meter).transpose()
    }

    /// The meters of each of `event_types`.
    pub(crate) async fn meters_for_types(
        &self,
        event_types: &BTreeSet<&str>,
    ) -> Result<HashMap<String, Vec<Meter>>, ServiceError> {
        let types: Vec<&str> = event_types.iter().copied().collect();
        let mut meters: HashMap<String, Vec<Meter>> = HashMap::new();
        for chunk in crate::db::statement_chunks(&types, 256) {
            let sql = format!(
                "SELECT definition, created_at, created_by FROM meters WHERE event_type IN ({}) \
                 ORDER BY slug",
                list_placeholders(
                    Placeholders::for_backend(self.db().backend()),
                    1,
                    chunk.len()
                )
            );
            let mut query = sqlx::query(&sql);
            for event_type in chunk {
                query = query.bind(*event_type);
            }
            for row in query.fetch_all(self.db().readers()).await? {
                let stored = stored_meter(&row)?;
                meters
                    .entry(stored.meter.event_type.clone())
                    .or_default()
                    .push(stored.meter);
            }
        }
        Ok(meters)
    }

    /// The metrics that meters of `service` declare (a meter is a declared metric, MET-4),
    /// merged into the service's own declaration.
    pub(crate) async fn with_meter_metrics(
        &self,
        service: &str,
        declaration: Option<MeteringDeclaration>,
    ) -> Result<Option<MeteringDeclaration>, ServiceError> {
        let rows = sqlx::query(
            "SELECT definition, created_at, created_by FROM meters WHERE service = $1 ORDER BY slug",
        )
        .bind(service)
        .fetch_all(self.db().readers())
        .await?;
        if rows.is_empty() {
            return Ok(declaration);
        }
        let mut declaration = match declaration {
            Some(declaration) => declaration,
            None => MeteringDeclaration {
                service: ServiceName::parse(service)?,
                metrics: Vec::new(),
            },
        };
        for row in &rows {
            let meter = stored_meter(row)?.meter;
            if declaration.metric(&meter.slug).is_none() {
                declaration.metrics.push(MetricDeclaration {
                    name: meter.slug.clone(),
                    unit: meter.unit.clone(),
                    aggregation: meter.aggregation.declared(),
                    description: meter.description.clone(),
                });
            }
        }
        Ok(Some(declaration))
    }

    /// The services that have meters (the coverage report lists them as declared).
    pub(crate) async fn metered_services(&self) -> Result<Vec<String>, ServiceError> {
        Ok(
            sqlx::query_scalar("SELECT DISTINCT service FROM meters ORDER BY service")
                .fetch_all(self.db().readers())
                .await?,
        )
    }

    /// The tenant of each mapped subject among `subjects`.
    pub(crate) async fn subject_tenants(
        &self,
        subjects: &BTreeSet<&str>,
    ) -> Result<HashMap<String, String>, ServiceError> {
        let subjects: Vec<&str> = subjects.iter().copied().collect();
        let mut tenants = HashMap::new();
        for chunk in crate::db::statement_chunks(&subjects, 256) {
            let sql = format!(
                "SELECT subject, tenant_id FROM meter_subjects WHERE subject IN ({})",
                list_placeholders(
                    Placeholders::for_backend(self.db().backend()),
                    1,
                    chunk.len()
                )
            );
            let mut query = sqlx::query(&sql);
            for subject in chunk {
                query = query.bind(*subject);
            }
            for row in query.fetch_all(self.db().readers()).await? {
                tenants.insert(row.try_get("subject")?, row.try_get("tenant_id")?);
            }
        }
        Ok(tenants)
    }

    /// Whether any subject is mapped to `tenant_id`.
    pub(crate) async fn has_mapped_subjects(&self, tenant_id: &str) -> Result<bool, ServiceError> {
        let found: Option<String> =
            sqlx::query_scalar("SELECT subject FROM meter_subjects WHERE tenant_id = $1 LIMIT 1")
                .bind(tenant_id)
                .fetch_optional(self.db().readers())
                .await?;
        Ok(found.is_some())
    }

    /// Refuses subjects that belong to another tenant: mapped to it, or its own id.
    async fn check_subjects_free(
        &self,
        tx: &mut crate::db::Tx,
        tenant_id: &TenantId,
        wanted: &BTreeSet<String>,
    ) -> Result<(), ServiceError> {
        for subject in wanted {
            let owner: Option<String> =
                sqlx::query_scalar("SELECT tenant_id FROM meter_subjects WHERE subject = $1")
                    .bind(subject)
                    .fetch_optional(&mut **tx)
                    .await?;
            let other_tenant: Option<String> =
                sqlx::query_scalar("SELECT id FROM tenants WHERE id = $1")
                    .bind(subject)
                    .fetch_optional(&mut **tx)
                    .await?;
            let taken = owner
                .filter(|o| o != tenant_id.as_str())
                .or(other_tenant.filter(|o| o != tenant_id.as_str()));
            if let Some(owner) = taken {
                return Err(ServiceError::conflict(format!(
                    "subject {subject:?} belongs to tenant {owner}"
                )));
            }
        }
        Ok(())
    }
}

impl Metering<'_> {
    /// Creates a meter (`POST /api/v1/meters`); a slug is never redefined.
    pub async fn create_meter(
        &self,
        actor: &Actor,
        raw: &RawMeter,
    ) -> Result<StoredMeter, ServiceError> {
        let slug = raw.slug.clone().unwrap_or_default();
        let mut entry = self.entry(actor, "meter.create", &format!("meter:{slug}"));
        let mut tx = self.db().begin().await?;
        let result = async {
            self.require(actor, Action::MeterCreate, Resource::Deployment, &[], &mut entry)?;
            let meter = Meter::parse(raw)?;
            let definition = serde_json::to_string(&meter.to_raw())
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
            entry.details = json!({"meter": serde_json::from_str::<serde_json::Value>(&definition).unwrap_or_default()});
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM meters")
                .fetch_one(&mut *tx)
                .await?;
            if count >= METERS_MAX {
                return Err(ServiceError::TooLarge(format!(
                    "a deployment holds at most {METERS_MAX} meters"
                )));
            }
            let existing: Option<String> =
                sqlx::query_scalar("SELECT slug FROM meters WHERE slug = $1")
                    .bind(meter.slug.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            if existing.is_some() {
                return Err(ServiceError::conflict(format!(
                    "meter {} already exists; a meter is never redefined (its events would change meaning)",
                    meter.slug
                )));
            }
            let now = self.now_micros();
            sqlx::query(
                "INSERT INTO meters (slug, event_type, service, definition, created_at, created_by) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(meter.slug.as_str())
            .bind(&meter.event_type)
            .bind(meter.service.as_str())
            .bind(&definition)
            .bind(now)
            .bind(actor.principal.actor_name())
            .execute(&mut *tx)
            .await?;
            Ok(StoredMeter {
                meter,
                created_at: from_micros(now),
                created_by: actor.principal.actor_name(),
            })
        }
        .await;
        self.finish(tx, entry, result).await
    }

    /// Every meter, by slug.
    pub async fn list_meters(&self, actor: &Actor) -> Result<Vec<StoredMeter>, ServiceError> {
        self.authorize_read(
            actor,
            Action::MeteringRead,
            Resource::Deployment,
            "meters",
            None,
        )
        .await?;
        let rows = sqlx::query(
            "SELECT definition, created_at, created_by FROM meters ORDER BY slug LIMIT 1000",
        )
        .fetch_all(self.db().readers())
        .await?;
        rows.iter().map(stored_meter).collect()
    }

    /// One meter.
    pub async fn get_meter(&self, actor: &Actor, slug: &str) -> Result<StoredMeter, ServiceError> {
        self.authorize_read(
            actor,
            Action::MeteringRead,
            Resource::Deployment,
            &format!("meter:{slug}"),
            None,
        )
        .await?;
        self.meter_by_slug(slug)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("meter {slug}")))
    }

    /// The subjects mapped to a tenant.
    pub async fn tenant_subjects(
        &self,
        actor: &Actor,
        tenant_id: &TenantId,
    ) -> Result<TenantSubjects, ServiceError> {
        let mut conn = self.db().readers().acquire().await?;
        self.readable_tenant(&mut conn, actor, tenant_id.as_str(), Action::UsageRead)
            .await?;
        let subjects: Vec<String> = sqlx::query_scalar(
            "SELECT subject FROM meter_subjects WHERE tenant_id = $1 ORDER BY subject",
        )
        .bind(tenant_id.as_str())
        .fetch_all(&mut *conn)
        .await?;
        Ok(TenantSubjects {
            tenant_id: tenant_id.clone(),
            subjects,
        })
    }

    /// Replaces the subjects mapped to a tenant (`PUT /v1/tenants/{id}/subjects`).
    pub async fn set_tenant_subjects(
        &self,
        actor: &Actor,
        tenant_id: &TenantId,
        subjects: &[String],
    ) -> Result<TenantSubjects, ServiceError> {
        let mut entry = self
            .entry(
                actor,
                "tenant.subjects.update",
                &format!("tenant:{tenant_id}"),
            )
            .details(json!({"subjects": subjects}));
        entry.tenant_id = Some(tenant_id.as_str().to_owned());
        let mut tx = self.db().begin().await?;
        let result = async {
            let tenant = self.lock_tenant(&mut tx, tenant_id.as_str()).await?;
            let attributes = self.attributes_of(&tenant);
            self.require(
                actor,
                Action::TenantSubjectsUpdate,
                Resource::Tenant(&attributes),
                &[],
                &mut entry,
            )?;
            let wanted = check_subjects(subjects)?;
            let previous: Vec<String> = sqlx::query_scalar(
                "SELECT subject FROM meter_subjects WHERE tenant_id = $1 ORDER BY subject",
            )
            .bind(tenant_id.as_str())
            .fetch_all(&mut *tx)
            .await?;
            if let serde_json::Value::Object(details) = &mut entry.details {
                details.insert("previous".to_owned(), json!(previous));
            }
            self.check_subjects_free(&mut tx, tenant_id, &wanted).await?;
            sqlx::query("DELETE FROM meter_subjects WHERE tenant_id = $1")
                .bind(tenant_id.as_str())
                .execute(&mut *tx)
                .await?;
            let now = self.now_micros();
            for subject in &wanted {
                sqlx::query(
                    "INSERT INTO meter_subjects (subject, tenant_id, updated_at) VALUES ($1, $2, $3)",
                )
                .bind(subject)
                .bind(tenant_id.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            Ok(TenantSubjects {
                tenant_id: tenant_id.clone(),
                subjects: wanted.into_iter().collect(),
            })
        }
        .await;
        self.finish(tx, entry, result).await
    }
}

/// Validates the subjects of a mapping, naming each bad one.
fn check_subjects(subjects: &[String]) -> Result<BTreeSet<String>, ServiceError> {
    if subjects.len() > SUBJECTS_PER_TENANT_MAX {
        return Err(ServiceError::TooLarge(format!(
            "a tenant has at most {SUBJECTS_PER_TENANT_MAX} mapped subjects"
        )));
    }
    let mut c = companyos_domain::error::Collector::new();
    let mut wanted = BTreeSet::new();
    for (index, subject) in subjects.iter().enumerate() {
        let count = subject.chars().count();
        if count == 0 || count > SUBJECT_CHARS_MAX || subject.chars().any(char::is_control) {
            c.push(FieldError::new(
                format!("subjects[{index}]"),
                format!("must be 1 to {SUBJECT_CHARS_MAX} characters without control characters"),
            ));
        } else {
            wanted.insert(subject.clone());
        }
    }
    c.finish()?;
    Ok(wanted)
}
