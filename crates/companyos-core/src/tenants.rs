//! Tenants (CONTRACT §4): provisioning with a recorded step log and a signed dossier (LIFE-1),
//! suspend and reactivate on every access path (LIFE-2), delete with retention, restore and
//! purge with a signed deletion certificate (LIFE-3), regions, workloads and forward auth.

use std::collections::BTreeSet;

use companyos_domain::error::Collector;
use companyos_domain::plan::{RetentionPolicy, TOMBSTONE_DAYS_MAX};
use companyos_domain::tenant::{IllegalTransition, transition};
use companyos_domain::time_util::{format_rfc3339, from_micros, to_micros};
use companyos_domain::{
    FieldError, LifecycleAction, PlanName, Reason, RegionName, TenantId, TenantStatus, WorkloadName,
};
use companyos_ledger::hash::sha256;
use serde_json::{Value, json};
use sqlx::{AnyConnection, Row as _};
use time::Duration;

use crate::app::{Actor, App, TENANT_KEY_PREFIX};
use crate::approvals::ApprovalView;
use crate::audit::NewAudit;
use crate::authz::{Principal, Resource, TenantAttributes, tenant_baseline_policies};
use crate::db::{StoreError, Tx};
use crate::error::ServiceError;
use crate::evidence::{EvidenceRecord, NewArtifact};
use crate::ledger_store;
use crate::outbound::OutboundPolicy;
use crate::provisioning::{self, StepLog};
use crate::settings::BoundaryDriverSettings;
use crate::util::{new_id, new_token, token_fingerprint, token_hash};

/// Upper bound on a tenant's display name.
pub const TENANT_NAME_CHARS_MAX: usize = 200;
/// Upper bound on replicas of one workload.
pub const WORKLOAD_REPLICAS_MAX: i64 = 1000;

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub plan: String,
    pub status: TenantStatus,
    pub status_before_delete: Option<TenantStatus>,
    pub home_region: String,
    pub allowed_regions: Vec<String>,
    pub deploy_regions: Vec<String>,
    pub boundary_driver: String,
    pub boundary: Value,
    pub policy_text: String,
    pub policy_sha256: String,
    pub retention: RetentionPolicy,
    pub audit_webhook_url: Option<String>,
    pub dossier_evidence_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub suspended_at: Option<i64>,
    pub deleted_at: Option<i64>,
    pub purge_after: Option<i64>,
    pub purged_at: Option<i64>,
}

const TENANT_COLUMNS: &str = "id, name, plan, status, status_before_delete, home_region, \
    allowed_regions, deploy_regions, boundary_driver, boundary, policy_text, policy_sha256, \
    tombstone_days, hard_delete_allowed, legal_hold, audit_webhook_url, dossier_evidence_id, \
    created_at, updated_at, suspended_at, deleted_at, purge_after, purged_at";

fn parse_status(text: &str) -> Result<TenantStatus, StoreError> {
    TenantStatus::parse(text).ok_or_else(|| StoreError::corrupt(format!("tenant status {text:?}")))
}

fn json_list(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::corrupt(format!("tenant regions: {e}")))
}

fn row_to_tenant(row: &sqlx::any::AnyRow) -> Result<TenantRow, StoreError> {
    let status: String = row.try_get("status")?;
    let before: Option<String> = row.try_get("status_before_delete")?;
    let boundary: String = row.try_get("boundary")?;
    Ok(TenantRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        plan: row.try_get("plan")?,
        status: parse_status(&status)?,
        status_before_delete: before.as_deref().map(parse_status).transpose()?,
        home_region: row.try_get("home_region")?,
        allowed_regions: json_list(&row.try_get::<String, _>("allowed_regions")?)?,
        deploy_regions: json_list(&row.try_get::<String, _>("deploy_regions")?)?,
        boundary_driver: row.try_get("boundary_driver")?,
        boundary: serde_json::from_str(&boundary)
            .map_err(|e| StoreError::corrupt(format!("tenant boundary: {e}")))?,
        policy_text: row.try_get("policy_text")?,
        policy_sha256: row.try_get("policy_sha256")?,
        retention: RetentionPolicy {
            tombstone_days: u32::try_from(row.try_get::<i64, _>("tombstone_days")?)
                .map_err(|_| StoreError::corrupt("tombstone days"))?,
            hard_delete_allowed: row.try_get::<i64, _>("hard_delete_allowed")? != 0,
            legal_hold: row.try_get::<i64, _>("legal_hold")? != 0,
        },
        audit_webhook_url: row.try_get("audit_webhook_url")?,
        dossier_evidence_id: row.try_get("dossier_evidence_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        suspended_at: row.try_get("suspended_at")?,
        deleted_at: row.try_get("deleted_at")?,
        purge_after: row.try_get("purge_after")?,
        purged_at: row.try_get("purged_at")?,
    })
}

fn time_or_null(micros: Option<i64>) -> Value {
    micros.map_or(Value::Null, |m| json!(format_rfc3339(from_micros(m))))
}

/// Who a tenant object is shown to: operators see the boundary's server-side details (paths,
/// database names, the provisioner URL); the tenant itself (its API key) and outside callers
/// (the provisioner's callback) see only what names their own boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantView {
    Operator,
    Tenant,
}

impl TenantView {
    pub fn of(principal: &crate::authz::Principal) -> Self {
        match principal {
            crate::authz::Principal::Operator { .. } => TenantView::Operator,
            _ => TenantView::Tenant,
        }
    }
}

/// The boundary members a tenant may see: an allow-list, so a member a driver adds later stays
/// hidden from tenants until someone decides it is theirs to see.
const TENANT_VISIBLE_BOUNDARY: [&str; 5] = ["driver", "state", "mode", "schema", "role"];

fn boundary_for(view: TenantView, boundary: &Value) -> Value {
    match (view, boundary) {
        (TenantView::Operator, _) => boundary.clone(),
        (TenantView::Tenant, Value::Object(map)) => Value::Object(
            map.iter()
                .filter(|(key, _)| TENANT_VISIBLE_BOUNDARY.contains(&key.as_str()))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
        ),
        (TenantView::Tenant, _) => json!({}),
    }
}

impl TenantRow {
    /// The API view of a tenant (CONTRACT §4), without secrets; the boundary as `view` may see it.
    pub fn to_json(&self, view: TenantView) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "status": self.status.as_str(),
            "plan": self.plan,
            "home_region": self.home_region,
            "allowed_regions": self.allowed_regions,
            "deploy_regions": self.deploy_regions,
            "created_at": format_rfc3339(from_micros(self.created_at)),
            "updated_at": format_rfc3339(from_micros(self.updated_at)),
            "suspended_at": time_or_null(self.suspended_at),
            "deleted_at": time_or_null(self.deleted_at),
            "purge_after": time_or_null(self.purge_after),
            "purged_at": time_or_null(self.purged_at),
            "boundary": boundary_for(view, &self.boundary),
            "policy_sha256": self.policy_sha256,
            "retention": {
                "tombstone_days": self.retention.tombstone_days,
                "hard_delete_allowed": self.retention.hard_delete_allowed,
                "legal_hold": self.retention.legal_hold,
            },
            "audit_webhook_url": self.audit_webhook_url,
            "dossier_evidence_id": self.dossier_evidence_id,
        })
    }

    pub fn target(&self) -> String {
        format!("tenant:{}", self.id)
    }
}

/// Input of tenant creation, as received.
#[derive(Debug, Clone, Default)]
pub struct NewTenant {
    pub id: String,
    pub name: String,
    pub plan: Option<String>,
    pub home_region: Option<String>,
    pub allowed_regions: Option<Vec<String>>,
    pub deploy_regions: Option<Vec<String>>,
    pub audit_webhook_url: Option<String>,
    pub tombstone_days: Option<u32>,
    pub hard_delete_allowed: Option<bool>,
    pub legal_hold: Option<bool>,
}

/// A created tenant: its API key and any boundary credentials are shown only here.
#[derive(Debug, Clone)]
pub struct CreatedTenant {
    pub tenant: TenantRow,
    pub api_key: String,
    pub provisioning: Value,
    pub dossier: Option<EvidenceRecord>,
    pub boundary_credentials: Option<Value>,
}

/// A lifecycle action's request body.
#[derive(Debug, Clone, Default)]
pub struct LifecycleRequest {
    pub reason: Option<String>,
    pub confirm: Option<String>,
}

/// What a lifecycle request did.
#[derive(Debug, Clone)]
pub enum LifecycleOutcome {
    Done {
        tenant: Box<TenantRow>,
        /// False when the tenant was already in the target state.
        changed: bool,
        warnings: Vec<String>,
        evidence: Option<EvidenceRecord>,
    },
    PendingApproval(ApprovalView),
}

struct ValidTenant {
    id: TenantId,
    name: String,
    plan: PlanName,
    home_region: RegionName,
    allowed_regions: Vec<RegionName>,
    deploy_regions: Vec<RegionName>,
    audit_webhook_url: Option<String>,
    retention: RetentionPolicy,
}

fn parse_region_list(
    c: &mut Collector,
    field: &str,
    values: &[String],
    catalog: &[RegionName],
) -> Vec<RegionName> {
    let mut out: Vec<RegionName> = Vec::new();
    for (i, value) in values.iter().enumerate() {
        let item_field = format!("{field}[{i}]");
        if let Some(region) = c.take(RegionName::parse_field(value, &item_field)) {
            if !catalog.contains(&region) {
                c.push(FieldError::new(
                    item_field,
                    format!("{region} is not in the region catalog"),
                ));
            } else if out.contains(&region) {
                c.push(FieldError::new(item_field, "is listed twice"));
            } else {
                out.push(region);
            }
        }
    }
    out
}

/// An audit webhook must be an http(s) URL the outbound policy lets deliveries reach (no
/// loopback, private or metadata address, in any spelling, unless allowed).
fn check_webhook_url(url: &str, policy: &OutboundPolicy) -> Result<(), FieldError> {
    policy
        .check_url(url)
        .map(|_| ())
        .map_err(|why| FieldError::new("audit_webhook_url", why))
}

impl App {
    fn validate_new_tenant(&self, input: &NewTenant) -> Result<ValidTenant, ServiceError> {
        let settings = self.settings();
        let mut c = Collector::new();
        let id = c.take(TenantId::parse(&input.id));
        let name = input.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > TENANT_NAME_CHARS_MAX {
            c.push(FieldError::new(
                "name",
                format!("must be 1 to {TENANT_NAME_CHARS_MAX} characters"),
            ));
        }
        let plan_text = input.plan.clone().unwrap_or_else(|| "standard".to_owned());
        let plan = c.take(PlanName::parse(&plan_text));
        if let Some(plan) = &plan {
            if settings.plan(plan).is_none() {
                let names: Vec<&str> = settings.plans.iter().map(|p| p.name.as_str()).collect();
                c.push(FieldError::new(
                    "plan",
                    format!("must be one of the catalog's plans: {}", names.join(", ")),
                ));
            }
        }
        let catalog = &settings.regions;
        let allowed = match &input.allowed_regions {
            Some(list) if list.is_empty() => {
                c.push(FieldError::new("allowed_regions", "must not be empty"));
                Vec::new()
            }
            Some(list) => parse_region_list(&mut c, "allowed_regions", list, catalog),
            None => Vec::new(),
        };
        let home = match &input.home_region {
            Some(text) => c.take(RegionName::parse_field(text, "home_region")),
            None => allowed
                .first()
                .cloned()
                .or_else(|| catalog.first().cloned()),
        };
        let allowed = if input.allowed_regions.is_none() {
            home.iter().cloned().collect()
        } else {
            allowed
        };
        if let Some(home) = &home {
            if !catalog.contains(home) {
                c.push(FieldError::new(
                    "home_region",
                    format!("{home} is not in the region catalog"),
                ));
            } else if !allowed.contains(home) && input.allowed_regions.is_some() {
                c.push(FieldError::new(
                    "home_region",
                    "must be one of allowed_regions",
                ));
            }
        }
        let deploy = match &input.deploy_regions {
            Some(list) => {
                let parsed = parse_region_list(&mut c, "deploy_regions", list, catalog);
                for (i, region) in parsed.iter().enumerate() {
                    if !allowed.contains(region) {
                        c.push(FieldError::new(
                            format!("deploy_regions[{i}]"),
                            "must be one of allowed_regions (residency)",
                        ));
                    }
                }
                parsed
            }
            None => home.iter().cloned().collect(),
        };
        if let Some(url) = &input.audit_webhook_url {
            c.take(check_webhook_url(url, &settings.outbound));
        }
        let plan_retention = plan
            .as_ref()
            .and_then(|p| settings.plan(p))
            .map(|p| p.retention.clone())
            .unwrap_or_default();
        let tombstone_days = input
            .tombstone_days
            .unwrap_or(plan_retention.tombstone_days);
        if tombstone_days > TOMBSTONE_DAYS_MAX {
            c.push(FieldError::new(
                "tombstone_days",
                format!("must be at most {TOMBSTONE_DAYS_MAX}"),
            ));
        }
        c.finish()?;
        match (id, plan, home) {
            (Some(id), Some(plan), Some(home_region)) => Ok(ValidTenant {
                id,
                name,
                plan,
                home_region,
                allowed_regions: allowed,
                deploy_regions: deploy,
                audit_webhook_url: input.audit_webhook_url.clone(),
                retention: RetentionPolicy {
                    tombstone_days,
                    hard_delete_allowed: input
                        .hard_delete_allowed
                        .unwrap_or(plan_retention.hard_delete_allowed),
                    legal_hold: input.legal_hold.unwrap_or(false),
                },
            }),
            _ => Err(ServiceError::invalid("id", "is required")),
        }
    }

    /// The policy attributes of a tenant row.
    pub(crate) fn attributes_of(&self, tenant: &TenantRow) -> TenantAttributes {
        let entitlements = PlanName::parse(&tenant.plan)
            .ok()
            .and_then(|p| self.settings().plan(&p).map(|p| p.entitlements.clone()))
            .unwrap_or_default();
        TenantAttributes {
            id: tenant.id.clone(),
            status: tenant.status.as_str().to_owned(),
            plan: tenant.plan.clone(),
            home_region: tenant.home_region.clone(),
            allowed_regions: tenant.allowed_regions.clone(),
            entitlements,
            legal_hold: tenant.retention.legal_hold,
            hard_delete_allowed: tenant.retention.hard_delete_allowed,
            policy_text: Some(tenant.policy_text.clone()),
        }
    }

    /// The policy attributes of a tenant, read now.
    pub(crate) async fn tenant_attributes(
        &self,
        conn: &mut AnyConnection,
        tenant_id: &str,
    ) -> Result<Option<TenantAttributes>, StoreError> {
        Ok(load_tenant(conn, tenant_id, "")
            .await?
            .map(|t| self.attributes_of(&t)))
    }

    /// Creates and provisions a tenant (LIFE-1). The steps run in one transaction with the
    /// tenant row and its audit record; when a step fails, nothing of it stays but the tenant
    /// row in `provisioning_failed` with the step log, so the id is reserved and `retry` works.
    pub async fn create_tenant(
        &self,
        actor: &Actor,
        input: NewTenant,
    ) -> Result<CreatedTenant, ServiceError> {
        let now = self.now();
        let mut entry = self
            .entry(actor, "tenant.create", &format!("tenant:{}", input.id))
            .details(json!({"plan": input.plan, "home_region": input.home_region}));
        if TenantId::parse(&input.id).is_ok() {
            entry.tenant_id = Some(input.id.clone());
        }
        let audit_id = new_id("aud", now);
        entry.id = Some(audit_id.clone());
        let mut tx = self.db().begin().await?;
        let mut steps = StepLog::default();
        let result = self
            .create_tenant_in(&mut tx, actor, &input, &audit_id, &mut steps, &mut entry)
            .await;
        match result {
            Ok(created) => self.finish(tx, entry, Ok(created)).await,
            Err(error) => {
                tx.rollback().await?;
                let provisioning_failed = !steps.steps.is_empty();
                if provisioning_failed {
                    if let Ok(valid) = self.validate_new_tenant(&input) {
                        let _ = provisioning::remove_boundary(
                            &json!({"driver": self.settings().boundary_driver.name()}),
                            self.db(),
                            &mut *self.db().readers().acquire().await?,
                            self.data_dir(),
                            valid.id.as_str(),
                        )
                        .await;
                        self.record_failed_provisioning(&valid, &steps).await?;
                    }
                }
                entry.id = None;
                if let Value::Object(details) = &mut entry.details {
                    details.insert("steps".to_owned(), steps.to_json());
                }
                self.audit_failure(entry, &error).await?;
                Err(error)
            }
        }
    }

    async fn create_tenant_in(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        input: &NewTenant,
        audit_id: &str,
        steps: &mut StepLog,
        entry: &mut NewAudit,
    ) -> Result<CreatedTenant, ServiceError> {
        let valid = self.validate_new_tenant(input)?;
        let now = self.now();
        let mut tenant = TenantRow {
            id: valid.id.as_str().to_owned(),
            name: valid.name.clone(),
            plan: valid.plan.as_str().to_owned(),
            status: TenantStatus::Provisioning,
            status_before_delete: None,
            home_region: valid.home_region.as_str().to_owned(),
            allowed_regions: valid
                .allowed_regions
                .iter()
                .map(|r| r.to_string())
                .collect(),
            deploy_regions: valid.deploy_regions.iter().map(|r| r.to_string()).collect(),
            boundary_driver: self.settings().boundary_driver.name().to_owned(),
            boundary: json!({}),
            policy_text: String::new(),
            policy_sha256: String::new(),
            retention: valid.retention.clone(),
            audit_webhook_url: valid.audit_webhook_url.clone(),
            dossier_evidence_id: None,
            created_at: to_micros(now),
            updated_at: to_micros(now),
            suspended_at: None,
            deleted_at: None,
            purge_after: None,
            purged_at: None,
        };
        let attributes = self.attributes_of(&tenant);
        self.require(
            actor,
            "tenant.create",
            Resource::Tenant(&attributes),
            &[],
            entry,
        )?;
        let taken: Option<String> = sqlx::query_scalar("SELECT status FROM tenants WHERE id = $1")
            .bind(tenant.id.as_str())
            .fetch_optional(&mut **tx)
            .await?;
        if let Some(status) = taken {
            return Err(ServiceError::Conflict {
                message: format!(
                    "tenant id {} is taken (it is {status}); ids are never reused, not even after purge",
                    tenant.id
                ),
                current_status: Some(status),
            });
        }
        // A concurrent creation of the same id can pass the check above; the loser of the
        // insert race gets the same conflict, not a store error.
        insert_tenant(tx, &tenant).await.map_err(|e| {
            if e.is_unique_violation() {
                ServiceError::Conflict {
                    message: format!(
                        "tenant id {} is taken; ids are never reused, not even after purge",
                        tenant.id
                    ),
                    current_status: None,
                }
            } else {
                e.into()
            }
        })?;
        let output = self
            .provision(tx, actor, &mut tenant, steps, audit_id)
            .await?;
        let run_id = new_id("prv", now);
        sqlx::query(
            "INSERT INTO provisioning_runs (id, tenant_id, status, started_at, finished_at, steps) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(run_id.as_str())
        .bind(tenant.id.as_str())
        .bind("succeeded")
        .bind(to_micros(now))
        .bind(self.now_micros())
        .bind(steps.to_json().to_string())
        .execute(&mut **tx)
        .await?;
        let provisioning = json!({
            "id": run_id,
            "status": "succeeded",
            "total_ms": steps.total_ms(),
            "steps": steps.to_json(),
        });
        if let Value::Object(details) = &mut entry.details {
            details.insert("provisioning_run".to_owned(), json!(run_id));
            details.insert("total_ms".to_owned(), json!(steps.total_ms()));
            details.insert(
                "dossier_evidence_id".to_owned(),
                json!(tenant.dossier_evidence_id),
            );
        }
        self.metrics().increment(
            "companyos_lifecycle_transitions_total",
            vec![("action", "create".to_owned())],
            1,
        );
        Ok(CreatedTenant {
            tenant,
            api_key: output.api_key,
            provisioning,
            dossier: output.dossier,
            boundary_credentials: output.credentials,
        })
    }

    async fn record_failed_provisioning(
        &self,
        valid: &ValidTenant,
        steps: &StepLog,
    ) -> Result<(), ServiceError> {
        let now = self.now_micros();
        let tenant = TenantRow {
            id: valid.id.as_str().to_owned(),
            name: valid.name.clone(),
            plan: valid.plan.as_str().to_owned(),
            status: TenantStatus::ProvisioningFailed,
            status_before_delete: None,
            home_region: valid.home_region.as_str().to_owned(),
            allowed_regions: valid
                .allowed_regions
                .iter()
                .map(|r| r.to_string())
                .collect(),
            deploy_regions: valid.deploy_regions.iter().map(|r| r.to_string()).collect(),
            boundary_driver: self.settings().boundary_driver.name().to_owned(),
            boundary: json!({}),
            policy_text: String::new(),
            policy_sha256: String::new(),
            retention: valid.retention.clone(),
            audit_webhook_url: valid.audit_webhook_url.clone(),
            dossier_evidence_id: None,
            created_at: now,
            updated_at: now,
            suspended_at: None,
            deleted_at: None,
            purge_after: None,
            purged_at: None,
        };
        let mut tx = self.db().begin().await?;
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM tenants WHERE id = $1")
            .bind(tenant.id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            insert_tenant(&mut tx, &tenant).await?;
        }
        sqlx::query(
            "INSERT INTO provisioning_runs (id, tenant_id, status, started_at, finished_at, steps) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(new_id("prv", self.now()))
        .bind(tenant.id.as_str())
        .bind("failed")
        .bind(now)
        .bind(now)
        .bind(steps.to_json().to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The provisioning steps proper (boundary, policies, observability, audit hooks, key,
    /// dossier), on a tenant row already inserted in `tx`.
    async fn provision(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        tenant: &mut TenantRow,
        steps: &mut StepLog,
        audit_id: &str,
    ) -> Result<ProvisionOutput, ServiceError> {
        let now = self.now();
        let driver = self.settings().boundary_driver.clone();
        let rules = provisioning::alert_rules(&tenant.id);
        let db = self.db().clone();
        let data_dir = self.data_dir().to_owned();
        let tenant_id = tenant.id.clone();
        let boundary = steps
            .run("boundary", now, async {
                let details =
                    provisioning::create_boundary(&driver, &db, tx, &data_dir, &tenant_id, &rules)
                        .await?;
                // The step log is stored and shown later: never with the credentials.
                let mut logged = details.clone();
                if let Value::Object(map) = &mut logged {
                    map.remove("credentials");
                }
                Ok((details, logged))
            })
            .await
            .map_err(ServiceError::Internal)?;
        let credentials = boundary.get("credentials").cloned();
        let mut stored_boundary = boundary.clone();
        if let Value::Object(map) = &mut stored_boundary {
            // Credentials are shown once, in the creation response, and never stored.
            map.remove("credentials");
        }
        tenant.boundary = stored_boundary;

        let attributes = self.attributes_of(tenant);
        let policy_text = tenant_baseline_policies(&attributes);
        let authz = self.authorizer();
        let policy_hash = steps
            .run("baseline-policies", now, async {
                authz
                    .validate_tenant_policies(&policy_text)
                    .map_err(|e| e.to_string())?;
                let hash = sha256(policy_text.as_bytes()).to_hex();
                Ok((
                    hash.clone(),
                    json!({"tenant_policy_sha256": hash, "global_policy_sha256": authz.policy_sha256()}),
                ))
            })
            .await
            .map_err(ServiceError::Internal)?;
        tenant.policy_text = policy_text;
        tenant.policy_sha256 = policy_hash;

        let labels =
            json!({"tenant": tenant.id, "plan": tenant.plan, "home_region": tenant.home_region});
        let rules_hash = sha256(rules.as_bytes()).to_hex();
        steps
            .run("observability", now, async {
                Ok((
                    (),
                    json!({"metric_labels": labels, "alert_rules_sha256": rules_hash}),
                ))
            })
            .await
            .map_err(ServiceError::Internal)?;

        let stream = format!("/v1/audit?tenant_id={}", tenant.id);
        let webhook = tenant.audit_webhook_url.clone();
        steps
            .run("audit-hooks", now, async {
                Ok(((), json!({"audit_stream": stream, "webhook": webhook})))
            })
            .await
            .map_err(ServiceError::Internal)?;

        let api_key = new_token(TENANT_KEY_PREFIX);
        let key_id = new_id("tk", now);
        let fingerprint = token_fingerprint(&api_key);
        steps
            .run("api-key", now, async {
                sqlx::query(
                    "INSERT INTO tenant_keys (id, tenant_id, token_sha256, fingerprint, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(key_id.as_str())
                .bind(tenant_id.as_str())
                .bind(token_hash(&api_key))
                .bind(fingerprint.as_str())
                .bind(to_micros(now))
                .execute(&mut **tx)
                .await
                .map_err(|e| e.to_string())?;
                Ok(((), json!({"key_id": key_id, "fingerprint": fingerprint})))
            })
            .await
            .map_err(ServiceError::Internal)?;

        let confirmed_by_driver = !matches!(driver, BoundaryDriverSettings::Webhook { .. });
        if confirmed_by_driver {
            tenant.status = TenantStatus::Active;
        } else {
            let attempt = open_provisioning_attempt(tx, &tenant.id, self.now()).await?;
            crate::outbox::enqueue(
                tx,
                self.now(),
                "boundary.create",
                Some(&tenant.id),
                "driver",
                json!({"tenant_id": tenant.id, "plan": tenant.plan, "home_region": tenant.home_region,
                       "attempt": attempt,
                       "callback": format!("/v1/tenants/{}/provisioning/callback", tenant.id)}),
            )
            .await?;
        }
        tenant.updated_at = self.now_micros();
        update_tenant(tx, tenant).await?;

        let mut dossier = None;
        if confirmed_by_driver {
            let record = self
                .write_dossier(tx, actor, tenant, steps, &fingerprint, audit_id)
                .await?;
            tenant.dossier_evidence_id = Some(record.id.clone());
            update_tenant(tx, tenant).await?;
            dossier = Some(record);
        }
        Ok(ProvisionOutput {
            api_key,
            dossier,
            credentials,
        })
    }

    async fn write_dossier(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        tenant: &TenantRow,
        steps: &mut StepLog,
        key_fingerprint: &str,
        audit_id: &str,
    ) -> Result<EvidenceRecord, ServiceError> {
        let now = self.now();
        let started = std::time::Instant::now();
        let earlier_audit: Vec<String> =
            sqlx::query_scalar("SELECT id FROM audit_events WHERE tenant_id = $1 ORDER BY seq")
                .bind(tenant.id.as_str())
                .fetch_all(&mut **tx)
                .await?;
        let mut audit_ids = earlier_audit;
        audit_ids.push(audit_id.to_owned());
        let plan = PlanName::parse(&tenant.plan)
            .ok()
            .and_then(|p| self.settings().plan(&p).cloned());
        let rules = provisioning::alert_rules(&tenant.id);
        let mut document = json!({
            "kind": "tenant-dossier",
            "version": 1,
            "generated_at": format_rfc3339(now),
            "generated_by": actor.principal.actor_name(),
            "tenant": tenant.to_json(TenantView::Operator),
            "plan": plan.map(|p| json!({
                "name": p.name,
                "entitlements": p.entitlements,
                "monthly_quotas": p.monthly_quotas,
                "retention": p.retention,
                "workloads_max": p.workloads_max,
            })),
            "boundary": tenant.boundary,
            "policies": {
                "global_policy_sha256": self.authorizer().policy_sha256(),
                "tenant_policy_sha256": tenant.policy_sha256,
                "tenant_policy_text": tenant.policy_text,
            },
            "keys": {
                "api_key_fingerprint": key_fingerprint,
                "ledger_verifier_key": self.ledger_verifier_key(),
                "evidence_public_key": self.evidence_public_key(),
            },
            "observability": {
                "metric_labels": {"tenant": tenant.id, "plan": tenant.plan, "home_region": tenant.home_region},
                "alert_rules": rules,
                "alert_rules_sha256": sha256(rules.as_bytes()).to_hex(),
            },
            "audit_hooks": {
                "audit_stream": format!("/v1/audit?tenant_id={}", tenant.id),
                "webhook": tenant.audit_webhook_url,
            },
            "ledger": {
                "log_id": usage_log_id(&tenant.id),
                "origin": self.settings().tenant_origin(&tenant.id),
            },
            "audit_event_ids": audit_ids,
        });
        let dossier_ms = started.elapsed().as_secs_f64() * 1000.0;
        steps.steps.push(provisioning::Step {
            name: "dossier".to_owned(),
            ok: true,
            started_at: now,
            duration_ms: dossier_ms,
            details: json!({}),
        });
        if let Value::Object(map) = &mut document {
            map.insert(
                "provisioning_run".to_owned(),
                json!({"steps": steps.to_json(), "total_ms": steps.total_ms()}),
            );
        }
        let bytes = serde_json::to_vec_pretty(&document)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        self.store_evidence_in(
            tx,
            actor,
            NewArtifact {
                kind: "tenant-dossier",
                tenant_id: Some(tenant.id.clone()),
                file_name: format!("tenant-dossier-{}.json", tenant.id),
                content_type: "application/json",
                bytes,
                metadata: json!({"tenant_status": tenant.status.as_str()}),
            },
        )
        .await
    }

    /// Lists tenants, optionally by status.
    pub async fn list_tenants(
        &self,
        actor: &Actor,
        status: Option<&str>,
    ) -> Result<Vec<TenantRow>, ServiceError> {
        let status = match status {
            Some(text) => Some(TenantStatus::parse(text).ok_or_else(|| {
                ServiceError::invalid(
                    "status",
                    "must be one of provisioning, provisioning_failed, active, suspended, deleting, purge_failed, purged",
                )
            })?),
            None => None,
        };
        let mut conn = self.db().readers().acquire().await?;
        if let Principal::TenantKey { tenant, .. } = &actor.principal {
            // A tenant key lists exactly its own tenant.
            self.authorize_read(
                actor,
                "tenant.read",
                Resource::Tenant(tenant),
                &format!("tenant:{}", tenant.id),
                Some(&tenant.id),
            )
            .await?;
            let row = load_tenant(&mut conn, &tenant.id, "").await?;
            return Ok(row
                .into_iter()
                .filter(|t| status.is_none_or(|s| t.status == s))
                .collect());
        }
        self.authorize_read(
            actor,
            "tenant.read",
            Resource::Tenant(&placeholder_tenant()),
            "tenants",
            None,
        )
        .await?;
        let rows = match status {
            Some(status) => {
                sqlx::query(&format!(
                    "SELECT {TENANT_COLUMNS} FROM tenants WHERE status = $1 ORDER BY id"
                ))
                .bind(status.as_str())
                .fetch_all(&mut *conn)
                .await?
            }
            None => {
                sqlx::query(&format!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY id"))
                    .fetch_all(&mut *conn)
                    .await?
            }
        };
        Ok(rows
            .iter()
            .map(row_to_tenant)
            .collect::<Result<Vec<_>, _>>()?)
    }

    /// One tenant; a tenant key reads only its own.
    pub async fn get_tenant(&self, actor: &Actor, id: &str) -> Result<TenantRow, ServiceError> {
        let mut conn = self.db().readers().acquire().await?;
        let tenant = self
            .readable_tenant(&mut conn, actor, id, "tenant.read")
            .await?;
        Ok(tenant)
    }

    /// Loads a tenant and authorizes `action` on it; an unknown tenant is 404 for operators and
    /// 403 for a tenant key (which must not learn which other tenants exist).
    pub(crate) async fn readable_tenant(
        &self,
        conn: &mut AnyConnection,
        actor: &Actor,
        id: &str,
        action: &str,
    ) -> Result<TenantRow, ServiceError> {
        let tenant = load_tenant(conn, id, "").await?;
        match tenant {
            Some(tenant) => {
                let attributes = self.attributes_of(&tenant);
                self.authorize_read(
                    actor,
                    action,
                    Resource::Tenant(&attributes),
                    &tenant.target(),
                    Some(&tenant.id),
                )
                .await?;
                Ok(tenant)
            }
            None => {
                let attributes = TenantAttributes {
                    id: id.to_owned(),
                    ..placeholder_tenant()
                };
                self.authorize_read(
                    actor,
                    action,
                    Resource::Tenant(&attributes),
                    &format!("tenant:{id}"),
                    None,
                )
                .await?;
                Err(ServiceError::NotFound(format!("tenant {id}")))
            }
        }
    }

    /// Suspend, reactivate, delete, restore or purge a tenant, through an approval when the
    /// settings require one for the action.
    pub async fn lifecycle(
        &self,
        actor: &Actor,
        tenant_id: &str,
        action: LifecycleAction,
        request: LifecycleRequest,
    ) -> Result<LifecycleOutcome, ServiceError> {
        let policy_action = format!("tenant.{action}");
        let mut entry = self
            .entry(actor, &policy_action, &format!("tenant:{tenant_id}"))
            .reason(request.reason.as_deref());
        if TenantId::parse(tenant_id).is_ok() {
            entry.tenant_id = Some(tenant_id.to_owned());
        }
        let mut tx = self.db().begin().await?;
        let result = self
            .lifecycle_in(&mut tx, actor, tenant_id, action, &request, &mut entry)
            .await;
        self.finish(tx, entry, result).await
    }

    async fn lifecycle_in(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        tenant_id: &str,
        action: LifecycleAction,
        request: &LifecycleRequest,
        entry: &mut NewAudit,
    ) -> Result<LifecycleOutcome, ServiceError> {
        let policy_action = format!("tenant.{action}");
        let mut tenant = self.lock_tenant(tx, tenant_id).await?;
        let attributes = self.attributes_of(&tenant);
        self.require(
            actor,
            &policy_action,
            Resource::Tenant(&attributes),
            &[],
            entry,
        )?;
        let reason = validate_lifecycle_request(&tenant.id, action, request)?;
        let transition =
            transition(tenant.status, action, tenant.status_before_delete).map_err(illegal)?;
        if !transition.changes() {
            if let Value::Object(details) = &mut entry.details {
                details.insert("changed".to_owned(), json!(false));
            }
            return Ok(LifecycleOutcome::Done {
                tenant: Box::new(tenant),
                changed: false,
                warnings: Vec::new(),
                evidence: None,
            });
        }
        let system = matches!(actor.principal, Principal::System { .. });
        if self.settings().needs_approval(action) && !system {
            let warnings = self.warnings(tx, &tenant, action).await?;
            let approval = self
                .create_approval(tx, actor, &tenant, action, reason.as_str(), warnings)
                .await?;
            entry.action = "approval.request".to_owned();
            if let Value::Object(details) = &mut entry.details {
                details.insert("action".to_owned(), json!(policy_action));
                details.insert("approval_id".to_owned(), json!(approval.id));
                details.insert("warnings".to_owned(), json!(approval.warnings));
            }
            return Ok(LifecycleOutcome::PendingApproval(approval));
        }
        let (warnings, evidence) = self
            .execute_lifecycle(tx, actor, &mut tenant, action, reason.as_str(), None, entry)
            .await?;
        Ok(LifecycleOutcome::Done {
            tenant: Box::new(tenant),
            changed: true,
            warnings,
            evidence,
        })
    }

    pub(crate) async fn lock_tenant(
        &self,
        tx: &mut Tx,
        tenant_id: &str,
    ) -> Result<TenantRow, ServiceError> {
        load_tenant(tx, tenant_id, self.db().for_update())
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("tenant {tenant_id}")))
    }

    /// What an action will do that cannot be undone, named before it happens.
    pub(crate) async fn warnings(
        &self,
        conn: &mut AnyConnection,
        tenant: &TenantRow,
        action: LifecycleAction,
    ) -> Result<Vec<String>, ServiceError> {
        let payloads = crate::bundles::count_events(conn, tenant.id.as_str()).await?;
        let keys: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM tenant_keys WHERE tenant_id = $1 AND revoked_at IS NULL",
        )
        .bind(tenant.id.as_str())
        .fetch_one(&mut *conn)
        .await?;
        let boundary = boundary_summary(&tenant.boundary);
        Ok(match action {
            LifecycleAction::Delete => {
                let purge_at =
                    self.now() + Duration::days(i64::from(tenant.retention.tombstone_days));
                let mut warnings = vec![format!(
                    "tenant {} becomes inaccessible at once (API keys, forward auth, boundary); it stays restorable until {}",
                    tenant.id,
                    format_rfc3339(purge_at)
                )];
                if tenant.retention.legal_hold {
                    warnings.push(
                        "a legal hold is set: nothing will be purged until it is lifted".to_owned(),
                    );
                } else if tenant.retention.hard_delete_allowed {
                    warnings.push(format!(
                        "IRREVERSIBLE after {}: the purge job deletes {boundary}, {payloads} usage event payloads and {keys} API keys",
                        format_rfc3339(purge_at)
                    ));
                } else {
                    warnings.push("hard delete is not allowed for this tenant: the tombstone is kept for ever".to_owned());
                }
                warnings
            }
            LifecycleAction::Purge => vec![format!(
                "IRREVERSIBLE: purge deletes {boundary}, {payloads} usage event payloads and {keys} API keys of tenant {}; ledger leaves and checkpoints, daily rollups and audit records are retained, and the id is never reused",
                tenant.id
            )],
            _ => Vec::new(),
        })
    }

    /// Applies a lifecycle action whose authorization (and approval) is settled.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn execute_lifecycle(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        tenant: &mut TenantRow,
        action: LifecycleAction,
        reason: &str,
        approval_id: Option<&str>,
        entry: &mut NewAudit,
    ) -> Result<(Vec<String>, Option<EvidenceRecord>), ServiceError> {
        let transition =
            transition(tenant.status, action, tenant.status_before_delete).map_err(illegal)?;
        let now = self.now();
        let now_micros = to_micros(now);
        let mut warnings = Vec::new();
        let mut evidence = None;
        let mut details = json!({"from": transition.from.as_str(), "to": transition.to.as_str()});
        if let Some(id) = approval_id {
            details["approval_id"] = json!(id);
        }
        match action {
            LifecycleAction::Suspend => {
                let boundary = provisioning::set_boundary_access(
                    &tenant.boundary,
                    self.db(),
                    tx,
                    self.data_dir(),
                    &tenant.id,
                    false,
                    reason,
                )
                .await
                .map_err(ServiceError::from)?;
                let scaled = self.scale_workloads_to_zero(tx, &tenant.id).await?;
                tenant.suspended_at = Some(now_micros);
                details["boundary"] = boundary;
                details["workloads_scaled_to_zero"] = json!(scaled);
            }
            LifecycleAction::Reactivate => {
                let boundary = provisioning::set_boundary_access(
                    &tenant.boundary,
                    self.db(),
                    tx,
                    self.data_dir(),
                    &tenant.id,
                    true,
                    reason,
                )
                .await
                .map_err(ServiceError::from)?;
                let restored = self.restore_workloads(tx, &tenant.id).await?;
                tenant.suspended_at = None;
                details["boundary"] = boundary;
                details["workloads_restored"] = json!(restored);
            }
            LifecycleAction::Delete => {
                warnings = self.warnings(tx, tenant, action).await?;
                if tenant.status == TenantStatus::Active {
                    provisioning::set_boundary_access(
                        &tenant.boundary,
                        self.db(),
                        tx,
                        self.data_dir(),
                        &tenant.id,
                        false,
                        reason,
                    )
                    .await
                    .map_err(ServiceError::from)?;
                    self.scale_workloads_to_zero(tx, &tenant.id).await?;
                }
                tenant.status_before_delete = Some(tenant.status);
                tenant.deleted_at = Some(now_micros);
                tenant.purge_after = Some(to_micros(
                    now + Duration::days(i64::from(tenant.retention.tombstone_days)),
                ));
                details["purge_after"] = time_or_null(tenant.purge_after);
                details["warnings"] = json!(warnings);
            }
            LifecycleAction::Restore => {
                if transition.to == TenantStatus::Active {
                    provisioning::set_boundary_access(
                        &tenant.boundary,
                        self.db(),
                        tx,
                        self.data_dir(),
                        &tenant.id,
                        true,
                        reason,
                    )
                    .await
                    .map_err(ServiceError::from)?;
                    self.restore_workloads(tx, &tenant.id).await?;
                }
                tenant.status_before_delete = None;
                tenant.deleted_at = None;
                tenant.purge_after = None;
            }
            LifecycleAction::Purge => {
                warnings = self.warnings(tx, tenant, action).await?;
                let record = self
                    .purge(tx, actor, tenant, reason, approval_id, &warnings)
                    .await?;
                details["deletion_certificate"] = json!(record.id);
                evidence = Some(record);
            }
        }
        tenant.status = transition.to;
        tenant.updated_at = now_micros;
        update_tenant(tx, tenant).await?;
        crate::outbox::enqueue(
            tx,
            now,
            &format!("tenant.{action}"),
            Some(&tenant.id),
            "driver",
            json!({"tenant_id": tenant.id, "status": tenant.status.as_str(), "reason": reason}),
        )
        .await?;
        entry.action = format!("tenant.{action}");
        if let (Value::Object(existing), Value::Object(new)) = (&mut entry.details, details) {
            existing.extend(new);
        }
        self.metrics().increment(
            "companyos_lifecycle_transitions_total",
            vec![("action", action.as_str().to_owned())],
            1,
        );
        Ok((warnings, evidence))
    }

    async fn purge(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        tenant: &mut TenantRow,
        reason: &str,
        approval_id: Option<&str>,
        warnings: &[String],
    ) -> Result<EvidenceRecord, ServiceError> {
        let now = self.now();
        let mut steps = StepLog::default();
        let db = self.db().clone();
        let data_dir = self.data_dir().to_owned();
        let boundary = tenant.boundary.clone();
        let tenant_id = tenant.id.clone();
        let removed = steps
            .run("remove-boundary", now, async {
                let details =
                    provisioning::remove_boundary(&boundary, &db, tx, &data_dir, &tenant_id)
                        .await?;
                Ok((details.clone(), details))
            })
            .await
            .map_err(ServiceError::Internal)?;
        let payloads = steps
            .run("delete-usage-payloads", now, async {
                let deleted =
                    crate::dedupe::delete_tenant_events(tx, db.backend(), tenant_id.as_str())
                        .await
                        .map_err(|e| e.to_string())?;
                sqlx::query("DELETE FROM usage_conflicts WHERE tenant_id = $1")
                    .bind(tenant_id.as_str())
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query("DELETE FROM usage_rejections WHERE tenant_id = $1")
                    .bind(tenant_id.as_str())
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok((deleted, json!({"usage_event_payloads_deleted": deleted})))
            })
            .await
            .map_err(ServiceError::Internal)?;
        let now_micros = to_micros(now);
        let keys = steps
            .run("revoke-keys", now, async {
                let revoked = sqlx::query(
                    "UPDATE tenant_keys SET revoked_at = $1 WHERE tenant_id = $2 AND revoked_at IS NULL",
                )
                .bind(now_micros)
                .bind(tenant_id.as_str())
                .execute(&mut **tx)
                .await
                .map_err(|e| e.to_string())?
                .rows_affected();
                Ok((revoked, json!({"api_keys_revoked": revoked})))
            })
            .await
            .map_err(ServiceError::Internal)?;
        let workloads = steps
            .run("delete-workloads", now, async {
                let deleted = sqlx::query("DELETE FROM workloads WHERE tenant_id = $1")
                    .bind(tenant_id.as_str())
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| e.to_string())?
                    .rows_affected();
                Ok((deleted, json!({"workloads_deleted": deleted})))
            })
            .await
            .map_err(ServiceError::Internal)?;
        // The final checkpoint is signed in the purge transaction's view of the tree; signing
        // needs its own transaction on the head, so it reads the committed head instead.
        let log_id = usage_log_id(&tenant.id);
        let head = ledger_store::read_head(tx, &log_id).await?;
        let final_checkpoint = match head {
            Some((size, root)) => {
                let latest = ledger_store::latest_checkpoint(tx, &log_id).await?;
                match latest {
                    Some(c) if c.tree_size == size => Some(c.note),
                    _ => {
                        let note = sign_in_tx(
                            self,
                            tx,
                            &log_id,
                            &self.settings().tenant_origin(&tenant.id),
                            size,
                            root,
                            latest,
                        )
                        .await?;
                        Some(note)
                    }
                }
            }
            None => None,
        };
        // The approvals behind the deletion: the executed ones, and the one running now.
        let approvals: Vec<Value> = sqlx::query(
            "SELECT id, action, requested_by_name, requested_at, decided_by_name, decided_at, comment \
             FROM approvals WHERE tenant_id = $1 AND (status = 'executed' OR id = $2) \
             ORDER BY requested_at, id",
        )
        .bind(tenant.id.as_str())
        .bind(approval_id.unwrap_or(""))
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|row| -> Result<Value, sqlx::Error> {
            let id: String = row.try_get("id")?;
            let running = Some(id.as_str()) == approval_id;
            Ok(json!({
                "action": row.try_get::<String, _>("action")?,
                "requested_by": row.try_get::<String, _>("requested_by_name")?,
                "requested_at": format_rfc3339(from_micros(row.try_get("requested_at")?)),
                "approved_by": if running { json!(actor.principal.actor_name()) } else { json!(row.try_get::<Option<String>, _>("decided_by_name")?) },
                "approved_at": if running { json!(format_rfc3339(now)) } else { time_or_null(row.try_get("decided_at")?) },
                "comment": row.try_get::<Option<String>, _>("comment")?,
                "id": id,
            }))
        })
        .collect::<Result<_, _>>()?;
        let certificate = json!({
            "kind": "deletion-certificate",
            "version": 1,
            "tenant": {
                "id": tenant.id,
                "name": tenant.name,
                "plan": tenant.plan,
                "created_at": format_rfc3339(from_micros(tenant.created_at)),
                "deleted_at": time_or_null(tenant.deleted_at),
                "purged_at": format_rfc3339(now),
            },
            "reason": reason,
            "purged_by": actor.principal.actor_name(),
            "approval_id": approval_id,
            "approvals": approvals,
            "warnings_given": warnings,
            "deleted": {
                "boundary": removed,
                "usage_event_payloads": payloads,
                "api_keys_revoked": keys,
                "workloads": workloads,
            },
            "retained": [
                {"what": "ledger leaves (event ids and digests) and signed checkpoints",
                 "why": "every past checkpoint and inclusion proof given to the tenant stays verifiable"},
                {"what": "daily usage rollups and reconciliation counters",
                 "why": "financial records retention for issued statements"},
                {"what": "audit records", "why": "the audit log is append-only and verifiable"},
                {"what": "the tenant id and its tombstone row", "why": "ids are never reused"},
            ],
            "final_checkpoint": final_checkpoint,
            "ledger_verifier_key": self.ledger_verifier_key(),
            "steps": steps.to_json(),
        });
        let bytes = serde_json::to_vec_pretty(&certificate)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        tenant.purged_at = Some(now_micros);
        self.store_evidence_in(
            tx,
            actor,
            NewArtifact {
                kind: "deletion-certificate",
                tenant_id: Some(tenant.id.clone()),
                file_name: format!("deletion-certificate-{}.json", tenant.id),
                content_type: "application/json",
                bytes,
                metadata: json!({"usage_event_payloads_deleted": payloads}),
            },
        )
        .await
    }

    async fn scale_workloads_to_zero(
        &self,
        tx: &mut Tx,
        tenant_id: &str,
    ) -> Result<i64, ServiceError> {
        let updated = sqlx::query(
            "UPDATE workloads SET suspended_replicas = replicas, replicas = 0, updated_at = $1 \
             WHERE tenant_id = $2 AND suspended_replicas IS NULL",
        )
        .bind(self.now_micros())
        .bind(tenant_id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        self.notify_workloads(tx, tenant_id).await?;
        Ok(i64::try_from(updated).unwrap_or(i64::MAX))
    }

    async fn restore_workloads(&self, tx: &mut Tx, tenant_id: &str) -> Result<i64, ServiceError> {
        let updated = sqlx::query(
            "UPDATE workloads SET replicas = suspended_replicas, suspended_replicas = NULL, \
             updated_at = $1 WHERE tenant_id = $2 AND suspended_replicas IS NOT NULL",
        )
        .bind(self.now_micros())
        .bind(tenant_id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        self.notify_workloads(tx, tenant_id).await?;
        Ok(i64::try_from(updated).unwrap_or(i64::MAX))
    }

    async fn notify_workloads(&self, tx: &mut Tx, tenant_id: &str) -> Result<(), ServiceError> {
        let workloads = workloads_of(tx, tenant_id).await?;
        if workloads.is_empty() {
            return Ok(());
        }
        crate::outbox::enqueue(
            tx,
            self.now(),
            "workloads.scale",
            Some(tenant_id),
            "driver",
            json!({"tenant_id": tenant_id, "workloads": workloads}),
        )
        .await?;
        Ok(())
    }

    /// Adds or removes deploy regions; each addition must be within the allowed regions
    /// (residency, decided by policy).
    pub async fn update_regions(
        &self,
        actor: &Actor,
        tenant_id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<TenantRow, ServiceError> {
        let mut entry = self
            .entry(
                actor,
                "tenant.regions.update",
                &format!("tenant:{tenant_id}"),
            )
            .details(json!({"add": add, "remove": remove}));
        if TenantId::parse(tenant_id).is_ok() {
            entry.tenant_id = Some(tenant_id.to_owned());
        }
        let mut tx = self.db().begin().await?;
        let result = async {
            let mut tenant = self.lock_tenant(&mut tx, tenant_id).await?;
            let attributes = self.attributes_of(&tenant);
            // Who may change regions at all is decided before the body is looked at, so an
            // unauthorized caller is denied (and audited) whatever it sent.
            self.require(
                actor,
                "tenant.regions.update",
                Resource::Tenant(&attributes),
                &[("region", ""), ("operation", "remove")],
                &mut entry,
            )?;
            let mut c = Collector::new();
            let add: Vec<RegionName> = add
                .iter()
                .enumerate()
                .filter_map(|(i, r)| c.take(RegionName::parse_field(r, &format!("add[{i}]"))))
                .collect();
            let remove: Vec<RegionName> = remove
                .iter()
                .enumerate()
                .filter_map(|(i, r)| c.take(RegionName::parse_field(r, &format!("remove[{i}]"))))
                .collect();
            if add.is_empty() && remove.is_empty() && c.is_empty() {
                c.push(FieldError::new(
                    "add",
                    "name at least one region to add or remove",
                ));
            }
            c.finish()?;
            for region in &add {
                self.require(
                    actor,
                    "tenant.regions.update",
                    Resource::Tenant(&attributes),
                    &[("region", region.as_str()), ("operation", "add")],
                    &mut entry,
                )?;
            }
            for region in &remove {
                self.require(
                    actor,
                    "tenant.regions.update",
                    Resource::Tenant(&attributes),
                    &[("region", region.as_str()), ("operation", "remove")],
                    &mut entry,
                )?;
            }
            if tenant.status.is_deleted() {
                return Err(ServiceError::Conflict {
                    message: format!("tenant {} is {}", tenant.id, tenant.status),
                    current_status: Some(tenant.status.as_str().to_owned()),
                });
            }
            let mut regions: BTreeSet<String> = tenant.deploy_regions.iter().cloned().collect();
            for region in add {
                regions.insert(region.into_string());
            }
            for region in remove {
                regions.remove(region.as_str());
            }
            tenant.deploy_regions = regions.into_iter().collect();
            tenant.updated_at = self.now_micros();
            update_tenant(&mut tx, &tenant).await?;
            crate::outbox::enqueue(
                &mut tx,
                self.now(),
                "tenant.regions",
                Some(&tenant.id),
                "driver",
                json!({"tenant_id": tenant.id, "deploy_regions": tenant.deploy_regions}),
            )
            .await?;
            Ok(tenant)
        }
        .await;
        self.finish(tx, entry, result).await
    }

    /// Sets a workload's replicas (registering it when new).
    pub async fn set_workload(
        &self,
        actor: &Actor,
        tenant_id: &str,
        name: &str,
        replicas: i64,
    ) -> Result<Vec<Value>, ServiceError> {
        let mut entry = self
            .entry(
                actor,
                "tenant.workloads.update",
                &format!("tenant:{tenant_id}"),
            )
            .details(json!({"workload": name, "replicas": replicas}));
        if TenantId::parse(tenant_id).is_ok() {
            entry.tenant_id = Some(tenant_id.to_owned());
        }
        let mut tx = self.db().begin().await?;
        let result = async {
            let tenant = self.lock_tenant(&mut tx, tenant_id).await?;
            let attributes = self.attributes_of(&tenant);
            self.require(
                actor,
                "tenant.workloads.update",
                Resource::Tenant(&attributes),
                &[],
                &mut entry,
            )?;
            let name = WorkloadName::parse(name)?;
            if !(0..=WORKLOAD_REPLICAS_MAX).contains(&replicas) {
                return Err(ServiceError::invalid(
                    "replicas",
                    format!("must be from 0 to {WORKLOAD_REPLICAS_MAX}"),
                ));
            }
            if tenant.status != TenantStatus::Active {
                return Err(ServiceError::Conflict {
                    message: format!(
                        "tenant {} is {}: its workloads stay at zero until it is active",
                        tenant.id, tenant.status
                    ),
                    current_status: Some(tenant.status.as_str().to_owned()),
                });
            }
            let existing = workloads_of(&mut tx, &tenant.id).await?;
            let is_new = !existing
                .iter()
                .any(|w| w.get("name").and_then(Value::as_str) == Some(name.as_str()));
            let max = PlanName::parse(&tenant.plan)
                .ok()
                .and_then(|p| self.settings().plan(&p).map(|p| p.workloads_max))
                .unwrap_or(0);
            if is_new && existing.len() >= max as usize {
                return Err(ServiceError::conflict(format!(
                    "plan {} allows at most {max} workloads",
                    tenant.plan
                )));
            }
            sqlx::query(
                "INSERT INTO workloads (tenant_id, name, replicas, suspended_replicas, updated_at) \
                 VALUES ($1, $2, $3, NULL, $4) ON CONFLICT (tenant_id, name) \
                 DO UPDATE SET replicas = excluded.replicas, updated_at = excluded.updated_at",
            )
            .bind(tenant.id.as_str())
            .bind(name.as_str())
            .bind(replicas)
            .bind(self.now_micros())
            .execute(&mut *tx)
            .await?;
            self.notify_workloads(&mut tx, &tenant.id).await?;
            Ok(workloads_of(&mut tx, &tenant.id).await?)
        }
        .await;
        self.finish(tx, entry, result).await
    }

    pub async fn list_workloads(
        &self,
        actor: &Actor,
        tenant_id: &str,
    ) -> Result<Vec<Value>, ServiceError> {
        let mut conn = self.db().readers().acquire().await?;
        let tenant = self
            .readable_tenant(&mut conn, actor, tenant_id, "tenant.read")
            .await?;
        Ok(workloads_of(&mut conn, &tenant.id).await?)
    }

    /// Changes a tenant's retention policy (tombstone days, legal hold, hard delete allowed).
    pub async fn update_retention(
        &self,
        actor: &Actor,
        tenant_id: &str,
        tombstone_days: Option<u32>,
        legal_hold: Option<bool>,
        hard_delete_allowed: Option<bool>,
        reason: Option<&str>,
    ) -> Result<TenantRow, ServiceError> {
        let mut entry = self
            .entry(
                actor,
                "tenant.retention.update",
                &format!("tenant:{tenant_id}"),
            )
            .reason(reason)
            .details(
                json!({"tombstone_days": tombstone_days, "legal_hold": legal_hold,
                            "hard_delete_allowed": hard_delete_allowed}),
            );
        if TenantId::parse(tenant_id).is_ok() {
            entry.tenant_id = Some(tenant_id.to_owned());
        }
        let mut tx = self.db().begin().await?;
        let result = async {
            let mut tenant = self.lock_tenant(&mut tx, tenant_id).await?;
            let attributes = self.attributes_of(&tenant);
            self.require(
                actor,
                "tenant.retention.update",
                Resource::Tenant(&attributes),
                &[],
                &mut entry,
            )?;
            if let Some(days) = tombstone_days {
                if days > TOMBSTONE_DAYS_MAX {
                    return Err(ServiceError::invalid(
                        "tombstone_days",
                        format!("must be at most {TOMBSTONE_DAYS_MAX}"),
                    ));
                }
            }
            let reason = reason.map(Reason::parse).transpose()?;
            if reason.is_none() {
                return Err(ServiceError::invalid("reason", "is required"));
            }

            if tenant.status == TenantStatus::Purged {
                return Err(ServiceError::Conflict {
                    message: format!("tenant {} is purged", tenant.id),
                    current_status: Some("purged".to_owned()),
                });
            }
            refuse_loosening_while_deleting(
                &tenant,
                tombstone_days,
                legal_hold,
                hard_delete_allowed,
            )?;
            if let Some(days) = tombstone_days {
                tenant.retention.tombstone_days = days;
                if let Some(deleted_at) = tenant.deleted_at {
                    tenant.purge_after = Some(to_micros(
                        from_micros(deleted_at) + Duration::days(i64::from(days)),
                    ));
                }
            }
            if let Some(hold) = legal_hold {
                tenant.retention.legal_hold = hold;
            }
            if let Some(allowed) = hard_delete_allowed {
                tenant.retention.hard_delete_allowed = allowed;
            }
            tenant.updated_at = self.now_micros();
            update_tenant(&mut tx, &tenant).await?;
            Ok(tenant)
        }
        .await;
        self.finish(tx, entry, result).await
    }

    /// Forward auth (CONTRACT §4): the tenant of an active tenant key; 403 otherwise.
    pub async fn forward_auth(&self, actor: &Actor) -> Result<String, ServiceError> {
        let Principal::TenantKey { tenant, .. } = &actor.principal else {
            // Decided by policy like everything else (`forward-auth-is-for-tenant-keys`).
            self.authorize_read(
                actor,
                "authz.check",
                Resource::Tenant(&placeholder_tenant()),
                "forward-auth",
                None,
            )
            .await?;
            return Err(ServiceError::Internal(
                "policy admitted forward auth without a tenant key".to_owned(),
            ));
        };
        self.authorize_read(
            actor,
            "authz.check",
            Resource::Tenant(tenant),
            &format!("tenant:{}", tenant.id),
            Some(&tenant.id),
        )
        .await?;
        Ok(tenant.id.clone())
    }

    /// Retries a failed (or stuck) provisioning.
    pub async fn retry_provisioning(
        &self,
        actor: &Actor,
        tenant_id: &str,
    ) -> Result<CreatedTenant, ServiceError> {
        let now = self.now();
        let mut entry = self.entry(actor, "tenant.retry", &format!("tenant:{tenant_id}"));
        if TenantId::parse(tenant_id).is_ok() {
            entry.tenant_id = Some(tenant_id.to_owned());
        }
        let audit_id = new_id("aud", now);
        entry.id = Some(audit_id.clone());
        let mut tx = self.db().begin().await?;
        let mut steps = StepLog::default();
        let result = async {
            let mut tenant = self.lock_tenant(&mut tx, tenant_id).await?;
            let attributes = self.attributes_of(&tenant);
            self.require(actor, "tenant.retry", Resource::Tenant(&attributes), &[], &mut entry)?;
            if !matches!(
                tenant.status,
                TenantStatus::ProvisioningFailed | TenantStatus::Provisioning
            ) {
                return Err(ServiceError::Conflict {
                    message: format!("tenant {} is {}: nothing to retry", tenant.id, tenant.status),
                    current_status: Some(tenant.status.as_str().to_owned()),
                });
            }
            sqlx::query("UPDATE tenant_keys SET revoked_at = $1 WHERE tenant_id = $2 AND revoked_at IS NULL")
                .bind(to_micros(now))
                .bind(tenant.id.as_str())
                .execute(&mut *tx)
                .await?;
            tenant.status = TenantStatus::Provisioning;
            let output = self.provision(&mut tx, actor, &mut tenant, &mut steps, &audit_id).await?;
            sqlx::query(
                "INSERT INTO provisioning_runs (id, tenant_id, status, started_at, finished_at, steps) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(new_id("prv", now))
            .bind(tenant.id.as_str())
            .bind("succeeded")
            .bind(to_micros(now))
            .bind(self.now_micros())
            .bind(steps.to_json().to_string())
            .execute(&mut *tx)
            .await?;
            Ok(CreatedTenant {
                provisioning: json!({"status": "succeeded", "steps": steps.to_json(), "total_ms": steps.total_ms()}),
                tenant,
                api_key: output.api_key,
                dossier: output.dossier,
                boundary_credentials: output.credentials,
            })
        }
        .await;
        if result.is_err() {
            entry.id = None;
        }
        self.finish(tx, entry, result).await
    }

    /// The webhook driver's callback: the external provisioner confirms (or fails) a tenant's
    /// boundary. Authenticated by the HMAC of the driver secret over
    /// `<tenant_id>.<attempt>.<timestamp>.<body>` ([`provisioning::callback_signature`]), and
    /// accepted once: the attempt it answers must be this tenant's open attempt, and is closed
    /// in the same transaction.
    pub async fn provisioning_callback(
        &self,
        tenant_id: &str,
        callback: ProvisioningCallback<'_>,
    ) -> Result<Value, ServiceError> {
        let ProvisioningCallback {
            attempt,
            timestamp,
            signature,
            body,
        } = callback;
        let system = Actor::system("webhook-driver");
        let mut entry = self.entry(
            &system,
            "tenant.provision.confirm",
            &format!("tenant:{tenant_id}"),
        );
        let BoundaryDriverSettings::Webhook { secret, .. } = &self.settings().boundary_driver
        else {
            return Err(ServiceError::NotFound(
                "provisioning callbacks (the boundary driver is not webhook)".to_owned(),
            ));
        };
        // Refused callbacks are audited against the tenant they targeted.
        if TenantId::parse(tenant_id).is_ok() {
            entry.tenant_id = Some(tenant_id.to_owned());
        }
        let verified = match (
            attempt,
            timestamp.and_then(|t| t.parse::<i64>().ok()),
            signature,
        ) {
            (Some(attempt), Some(ts), Some(sig)) => provisioning::verify_callback_signature(
                secret,
                tenant_id,
                attempt,
                ts,
                self.now().unix_timestamp(),
                body,
                sig,
            ),
            _ => false,
        };
        if !verified {
            let error = ServiceError::Unauthenticated(
                "missing, stale or wrong x-companyos-signature (or x-companyos-attempt)".to_owned(),
            );
            self.audit_failure(entry, &error).await?;
            return Err(error);
        }
        let parsed: Value = serde_json::from_slice(body)
            .map_err(|e| ServiceError::invalid("body", format!("is not JSON: {e}")))?;
        let succeeded = match parsed.get("status").and_then(Value::as_str) {
            Some("succeeded") => true,
            Some("failed") => false,
            _ => {
                return Err(ServiceError::invalid(
                    "status",
                    "must be succeeded or failed",
                ));
            }
        };
        let details = parsed.get("details").cloned().unwrap_or(json!({}));
        let audit_id = new_id("aud", self.now());
        entry.id = Some(audit_id.clone());
        let mut tx = self.db().begin().await?;
        let result = async {
            let mut tenant = self.lock_tenant(&mut tx, tenant_id).await?;
            let attributes = self.attributes_of(&tenant);
            self.require(&system, "tenant.create", Resource::Tenant(&attributes), &[], &mut entry)?;
            // Closing the attempt is what makes the callback count once: a replay, a callback of
            // a superseded attempt, or another tenant's attempt finds no open row and is refused.
            let closed = sqlx::query(
                "UPDATE provisioning_attempts SET answered_at = $1, outcome = $2 \
                 WHERE id = $3 AND tenant_id = $4 AND answered_at IS NULL",
            )
            .bind(self.now_micros())
            .bind(if succeeded { "succeeded" } else { "failed" })
            .bind(attempt.unwrap_or_default())
            .bind(tenant.id.as_str())
            .execute(&mut *tx)
            .await?;
            if closed.rows_affected() != 1 {
                return Err(ServiceError::Unauthenticated(format!(
                    "provisioning attempt {:?} of tenant {} is unknown, superseded or already answered",
                    attempt.unwrap_or_default(),
                    tenant.id
                )));
            }
            if tenant.status != TenantStatus::Provisioning {
                return Err(ServiceError::Conflict {
                    message: format!("tenant {} is {}, not provisioning", tenant.id, tenant.status),
                    current_status: Some(tenant.status.as_str().to_owned()),
                });
            }
            let mut steps = StepLog::default();
            steps.steps.push(provisioning::Step {
                name: "boundary-confirmed".to_owned(),
                ok: succeeded,
                started_at: self.now(),
                duration_ms: 0.0,
                details: details.clone(),
            });
            if let Value::Object(boundary) = &mut tenant.boundary {
                boundary.insert("state".to_owned(), json!(if succeeded { "ready" } else { "failed" }));
                boundary.insert("provisioner_details".to_owned(), details.clone());
            }
            if succeeded {
                tenant.status = TenantStatus::Active;
                let fingerprint: String = sqlx::query_scalar(
                    "SELECT fingerprint FROM tenant_keys WHERE tenant_id = $1 AND revoked_at IS NULL \
                     ORDER BY created_at DESC LIMIT 1",
                )
                .bind(tenant.id.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .unwrap_or_default();
                let dossier = self
                    .write_dossier(&mut tx, &system, &tenant, &mut steps, &fingerprint, &audit_id)
                    .await?;
                tenant.dossier_evidence_id = Some(dossier.id);
            } else {
                tenant.status = TenantStatus::ProvisioningFailed;
            }
            tenant.updated_at = self.now_micros();
            update_tenant(&mut tx, &tenant).await?;
            sqlx::query(
                "INSERT INTO provisioning_runs (id, tenant_id, status, started_at, finished_at, steps) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(new_id("prv", self.now()))
            .bind(tenant.id.as_str())
            .bind(if succeeded { "succeeded" } else { "failed" })
            .bind(self.now_micros())
            .bind(self.now_micros())
            .bind(steps.to_json().to_string())
            .execute(&mut *tx)
            .await?;
            Ok(tenant.to_json(TenantView::Tenant))
        }
        .await;
        self.finish(tx, entry, result).await
    }

    /// The provisioning runs of a tenant, newest first.
    pub async fn provisioning_runs(
        &self,
        actor: &Actor,
        tenant_id: &str,
    ) -> Result<Vec<Value>, ServiceError> {
        let mut conn = self.db().readers().acquire().await?;
        let tenant = self
            .readable_tenant(&mut conn, actor, tenant_id, "tenant.read")
            .await?;
        let rows = sqlx::query(
            "SELECT id, status, started_at, finished_at, steps FROM provisioning_runs \
             WHERE tenant_id = $1 ORDER BY started_at DESC, id DESC",
        )
        .bind(tenant.id.as_str())
        .fetch_all(&mut *conn)
        .await?;
        let view = TenantView::of(&actor.principal);
        rows.iter()
            .map(|row| {
                let steps: String = row.try_get("steps")?;
                let mut steps = serde_json::from_str::<Value>(&steps).unwrap_or(Value::Null);
                if view == TenantView::Tenant {
                    // Step details are the server's (paths, database names, errors): a tenant
                    // sees each step's name, result and duration.
                    for step in steps.as_array_mut().into_iter().flatten() {
                        if let Value::Object(map) = step {
                            map.remove("details");
                        }
                    }
                }
                Ok(json!({
                    "id": row.try_get::<String, _>("id")?,
                    "status": row.try_get::<String, _>("status")?,
                    "started_at": format_rfc3339(from_micros(row.try_get("started_at")?)),
                    "finished_at": time_or_null(row.try_get("finished_at")?),
                    "steps": steps,
                }))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(ServiceError::from)
    }
}

/// A provisioning callback as received: the attempt it answers (`x-companyos-attempt`), its
/// timestamp and signature headers, and the raw body the signature covers.
#[derive(Debug, Clone, Copy)]
pub struct ProvisioningCallback<'a> {
    pub attempt: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub body: &'a [u8],
}

/// Opens a new provisioning attempt of the webhook driver for `tenant_id` and returns its id;
/// earlier attempts still open are superseded, so only the newest request can be answered.
async fn open_provisioning_attempt(
    tx: &mut Tx,
    tenant_id: &str,
    now: time::OffsetDateTime,
) -> Result<String, ServiceError> {
    let now_micros = to_micros(now);
    sqlx::query(
        "UPDATE provisioning_attempts SET answered_at = $1, outcome = 'superseded' \
         WHERE tenant_id = $2 AND answered_at IS NULL",
    )
    .bind(now_micros)
    .bind(tenant_id)
    .execute(&mut **tx)
    .await?;
    let id = new_id("pat", now);
    sqlx::query(
        "INSERT INTO provisioning_attempts (id, tenant_id, requested_at) VALUES ($1, $2, $3)",
    )
    .bind(id.as_str())
    .bind(tenant_id)
    .bind(now_micros)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

struct ProvisionOutput {
    api_key: String,
    dossier: Option<EvidenceRecord>,
    credentials: Option<Value>,
}

async fn sign_in_tx(
    app: &App,
    tx: &mut Tx,
    log_id: &str,
    origin: &str,
    size: u64,
    root: companyos_ledger::Hash,
    latest: Option<ledger_store::StoredCheckpoint>,
) -> Result<String, ServiceError> {
    let proof = match &latest {
        Some(last) => ledger_store::consistency_proof(tx, log_id, last.tree_size, size).await?,
        None => Vec::new(),
    };
    let mut signer = companyos_ledger::CheckpointSigner::new(
        app.keys().checkpoint.clone(),
        origin,
        latest.as_ref().map(|c| (c.tree_size, c.root)),
    );
    let checkpoint = companyos_ledger::Checkpoint::new(origin, size, root)
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    let note = signer
        .sign(&checkpoint, &proof)
        .map_err(|e| ServiceError::Internal(e.to_string()))?
        .to_string();
    sqlx::query(
        "INSERT INTO ledger_checkpoints (log_id, tree_size, root, note, signed_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(log_id)
    .bind(i64::try_from(size).map_err(|_| ServiceError::Internal("size".to_owned()))?)
    .bind(root.as_bytes().to_vec())
    .bind(note.as_str())
    .bind(app.now_micros())
    .execute(&mut **tx)
    .await?;
    Ok(note)
}

fn validate_lifecycle_request(
    tenant_id: &str,
    action: LifecycleAction,
    request: &LifecycleRequest,
) -> Result<Reason, ServiceError> {
    let mut c = Collector::new();
    let reason = match request.reason.as_deref() {
        Some(text) => c.take(Reason::parse(text)),
        None => {
            c.push(FieldError::new("reason", "is required"));
            None
        }
    };
    if action.needs_confirmation() {
        match request.confirm.as_deref() {
            Some(confirm) if confirm == tenant_id => {}
            Some(_) => c.push(FieldError::new(
                "confirm",
                format!("must equal the tenant id {tenant_id:?}"),
            )),
            None => c.push(FieldError::new(
                "confirm",
                format!("is required: repeat the tenant id {tenant_id:?} to confirm"),
            )),
        }
    }
    c.finish()?;
    reason.ok_or_else(|| ServiceError::invalid("reason", "is required"))
}

/// A deleted tenant is purged by the purge timer, without a purge approval, once its tombstone
/// period is over, unless a legal hold is set or hard delete is not allowed: the approver of
/// the delete was told which of these applied. So while the tenant is deleting, a retention
/// change that would let the timer purge sooner than that approver was told (lifting the
/// hold, shortening the tombstone, allowing hard delete) is refused: restore the tenant and
/// delete it again, or request a purge, each of which goes through its approvals with the
/// new facts in front of the approver. Tightening is always allowed.
fn refuse_loosening_while_deleting(
    tenant: &TenantRow,
    tombstone_days: Option<u32>,
    legal_hold: Option<bool>,
    hard_delete_allowed: Option<bool>,
) -> Result<(), ServiceError> {
    if !matches!(
        tenant.status,
        TenantStatus::Deleting | TenantStatus::PurgeFailed
    ) {
        return Ok(());
    }
    let current = &tenant.retention;
    let loosened = if tombstone_days.is_some_and(|days| days < current.tombstone_days) {
        Some("shortening the tombstone period")
    } else if legal_hold == Some(false) && current.legal_hold {
        Some("lifting the legal hold")
    } else if hard_delete_allowed == Some(true) && !current.hard_delete_allowed {
        Some("allowing hard delete")
    } else {
        None
    };
    match loosened {
        None => Ok(()),
        Some(change) => Err(ServiceError::Conflict {
            message: format!(
                "tenant {} is {}: {change} would let the purge timer purge it without the \
                 approval a purge needs; restore the tenant and delete it again, or request \
                 a purge, so that an approver sees the new retention",
                tenant.id, tenant.status
            ),
            current_status: Some(tenant.status.as_str().to_owned()),
        }),
    }
}

fn illegal(error: IllegalTransition) -> ServiceError {
    ServiceError::Conflict {
        message: error.to_string(),
        current_status: Some(error.current.as_str().to_owned()),
    }
}

fn boundary_summary(boundary: &Value) -> String {
    match boundary.get("driver").and_then(Value::as_str) {
        Some("directory") => format!(
            "the boundary directory {}",
            boundary.get("path").and_then(Value::as_str).unwrap_or("?")
        ),
        Some("postgres") => format!(
            "the PostgreSQL schema {} and role {}",
            boundary
                .get("schema")
                .and_then(Value::as_str)
                .unwrap_or("?"),
            boundary.get("role").and_then(Value::as_str).unwrap_or("?")
        ),
        Some(driver) => format!("the {driver} boundary"),
        None => "the boundary".to_owned(),
    }
}

/// Attributes used to authorize listing (no particular tenant).
fn placeholder_tenant() -> TenantAttributes {
    TenantAttributes {
        id: "*".to_owned(),
        status: "active".to_owned(),
        plan: String::new(),
        home_region: String::new(),
        allowed_regions: Vec::new(),
        entitlements: Vec::new(),
        legal_hold: false,
        hard_delete_allowed: true,
        policy_text: None,
    }
}

pub use companyos_domain::log_id::{usage_log_id, usage_log_tenant};

pub(crate) async fn load_tenant(
    conn: &mut AnyConnection,
    id: &str,
    for_update: &str,
) -> Result<Option<TenantRow>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1{for_update}"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(row_to_tenant).transpose()
}

/// Binds every column of a tenant, in `TENANT_COLUMNS` order.
fn bind_tenant<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    t: &'q TenantRow,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(t.id.as_str())
        .bind(t.name.as_str())
        .bind(t.plan.as_str())
        .bind(t.status.as_str())
        .bind(t.status_before_delete.map(|s| s.as_str()))
        .bind(t.home_region.as_str())
        .bind(json!(t.allowed_regions).to_string())
        .bind(json!(t.deploy_regions).to_string())
        .bind(t.boundary_driver.as_str())
        .bind(t.boundary.to_string())
        .bind(t.policy_text.as_str())
        .bind(t.policy_sha256.as_str())
        .bind(i64::from(t.retention.tombstone_days))
        .bind(i64::from(t.retention.hard_delete_allowed))
        .bind(i64::from(t.retention.legal_hold))
        .bind(t.audit_webhook_url.as_deref())
        .bind(t.dossier_evidence_id.as_deref())
        .bind(t.created_at)
        .bind(t.updated_at)
        .bind(t.suspended_at)
        .bind(t.deleted_at)
        .bind(t.purge_after)
        .bind(t.purged_at)
}

fn tenant_placeholders() -> String {
    (1..=23)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn insert_tenant(conn: &mut AnyConnection, t: &TenantRow) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO tenants ({TENANT_COLUMNS}) VALUES ({})",
        tenant_placeholders()
    );
    bind_tenant(sqlx::query(&sql), t)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(crate) async fn update_tenant(
    conn: &mut AnyConnection,
    t: &TenantRow,
) -> Result<(), StoreError> {
    // The same columns and binds as the insert (`id` first, matched, not changed).
    let columns = TENANT_COLUMNS.trim_start_matches("id, ");
    let values: Vec<String> = (2..=23).map(|i| format!("${i}")).collect();
    let sql = format!(
        "UPDATE tenants SET ({columns}) = ({}) WHERE id = $1",
        values.join(", ")
    );
    bind_tenant(sqlx::query(&sql), t)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(crate) async fn workloads_of(
    conn: &mut AnyConnection,
    tenant_id: &str,
) -> Result<Vec<Value>, StoreError> {
    let rows = sqlx::query(
        "SELECT name, replicas, suspended_replicas, updated_at FROM workloads \
         WHERE tenant_id = $1 ORDER BY name",
    )
    .bind(tenant_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(json!({
                "name": row.try_get::<String, _>("name")?,
                "replicas": row.try_get::<i64, _>("replicas")?,
                "suspended_replicas": row.try_get::<Option<i64>, _>("suspended_replicas")?,
                "updated_at": format_rfc3339(from_micros(row.try_get("updated_at")?)),
            }))
        })
        .collect()
}
