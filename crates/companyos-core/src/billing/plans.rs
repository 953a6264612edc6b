//! The catalog's service calls: write a plan version (`PUT /v1/plans/{plan}`: a new version only
//! when the content differs), list plans, read the latest or one version.

use std::collections::BTreeSet;

use companyos_domain::catalog::{PlanVersion, RawPlanSpec};
use companyos_domain::{MetricName, PlanName};
use serde_json::json;
use sqlx::AnyConnection;

use super::catalog_store::{self, PLAN_VERSIONS_MAX};
use super::{Billing, PlanWrite, StoredPlanVersion};
use crate::app::Actor;
use crate::authz::Resource;
use crate::error::ServiceError;
use companyos_domain::Action;

/// Metric names a plan may put a quota on: every metric a service declared (MET-4), and every
/// metric a stored plan version already has a quota on (the built-in plans' metrics).
async fn declared_metrics(conn: &mut AnyConnection) -> Result<BTreeSet<String>, ServiceError> {
    let mut metrics = BTreeSet::new();
    let declarations: Vec<String> =
        sqlx::query_scalar("SELECT declaration FROM metering_declarations")
            .fetch_all(&mut *conn)
            .await?;
    for text in declarations {
        let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        for metric in value["metrics"].as_array().into_iter().flatten() {
            if let Some(name) = metric["name"].as_str() {
                metrics.insert(name.to_owned());
            }
        }
    }
    let rows = sqlx::query(
        "SELECT plan, version, sha256, spec, created_at, created_by FROM plan_versions",
    )
    .fetch_all(&mut *conn)
    .await?;
    for row in &rows {
        let stored = catalog_store::stored_version_of(row)?;
        metrics.extend(
            stored
                .version
                .spec
                .quotas
                .iter()
                .map(|q| q.metric.as_str().to_owned()),
        );
    }
    Ok(metrics)
}

impl Billing<'_> {
    /// Writes version n+1 of `plan` when `raw` differs from version n (or the plan is new);
    /// returns the latest version unchanged when it is the same. Audited as `plan.update`.
    pub async fn put_plan(
        &self,
        actor: &Actor,
        plan: &PlanName,
        raw: RawPlanSpec,
    ) -> Result<PlanWrite, ServiceError> {
        let app = self.app;
        let mut entry = app
            .entry(actor, "plan.update", &format!("plan:{plan}"))
            .details(json!({"plan": plan.as_str()}));
        let mut tx = app.db().begin().await?;
        let result = async {
            app.require(
                actor,
                Action::PlanUpdate,
                Resource::Deployment,
                &[],
                &mut entry,
            )?;
            let declared = declared_metrics(&mut tx).await?;
            let spec = raw.parse(&|m: &MetricName| declared.contains(m.as_str()))?;
            let latest = catalog_store::latest_version(&mut tx, plan.as_str()).await?;
            if let Some(latest) = latest.filter(|l| l.version.spec == spec) {
                entry.details["version"] = json!(latest.version.version);
                entry.details["sha256"] = json!(latest.sha256);
                entry.details["unchanged"] = json!(true);
                return Ok(PlanWrite {
                    stored: latest,
                    created: false,
                });
            }
            let previous = catalog_store::latest_version(&mut tx, plan.as_str())
                .await?
                .map_or(0, |l| l.version.version);
            if previous >= PLAN_VERSIONS_MAX {
                return Err(ServiceError::conflict(format!(
                    "plan {plan} has {PLAN_VERSIONS_MAX} versions, the most a plan may have"
                )));
            }
            let version = PlanVersion::new(plan.clone(), previous + 1, spec);
            let now = app.now();
            let by = actor.principal.actor_name();
            if !catalog_store::insert_version(&mut tx, &version, now, &by).await? {
                return Err(ServiceError::conflict(format!(
                    "version {} of plan {plan} was written concurrently; read it and retry",
                    version.version
                )));
            }
            let sha256 = version.sha256_hex();
            entry.details["version"] = json!(version.version);
            entry.details["previous_version"] = json!(previous);
            entry.details["sha256"] = json!(sha256);
            Ok(PlanWrite {
                stored: StoredPlanVersion {
                    version,
                    sha256,
                    created_at: now,
                    created_by: by,
                },
                created: true,
            })
        }
        .await;
        app.finish(tx, entry, result).await
    }

    async fn authorize_catalog_read(&self, actor: &Actor) -> Result<(), ServiceError> {
        self.app
            .authorize_read(actor, Action::PlanRead, Resource::Deployment, "plans", None)
            .await
    }

    /// The latest version of every plan.
    pub async fn list_plans(&self, actor: &Actor) -> Result<Vec<StoredPlanVersion>, ServiceError> {
        self.authorize_catalog_read(actor).await?;
        let mut conn = self.app.db().readers().acquire().await?;
        Ok(catalog_store::latest_versions(&mut conn).await?)
    }

    /// The latest version of a plan, or version `number`.
    pub async fn plan(
        &self,
        actor: &Actor,
        plan: &PlanName,
        number: Option<u32>,
    ) -> Result<StoredPlanVersion, ServiceError> {
        self.authorize_catalog_read(actor).await?;
        let mut conn = self.app.db().readers().acquire().await?;
        let found = match number {
            Some(number) => catalog_store::version(&mut conn, plan.as_str(), number).await?,
            None => catalog_store::latest_version(&mut conn, plan.as_str()).await?,
        };
        found.ok_or_else(|| match number {
            Some(number) => ServiceError::NotFound(format!("version {number} of plan {plan}")),
            None => ServiceError::NotFound(format!("plan {plan}")),
        })
    }
}
