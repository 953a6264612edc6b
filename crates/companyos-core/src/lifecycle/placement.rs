//! Where a tenant runs and how long it is kept: deploy regions (within residency), workloads, and the retention policy.

#[allow(unused_imports)]
use super::*;
use companyos_domain::Action;

impl Lifecycle<'_> {
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
        entry = entry.tenant_if_valid(tenant_id);
        let mut tx = self.db().begin().await?;
        let result = async {
            let mut tenant = self.lock_tenant(&mut tx, tenant_id).await?;
            let attributes = self.attributes_of(&tenant);
            // Who may change regions at all is decided before the body is looked at, so an
            // unauthorized caller is denied (and audited) whatever it sent.
            self.require(
                actor,
                Action::TenantRegionsUpdate,
                Resource::Tenant(&attributes),
                &[("region", ""), ("operation", "remove")],
                &mut entry,
            )?;
            let (add, remove) = parse_region_changes(add, remove)?;
            for (regions, operation) in [(&add, "add"), (&remove, "remove")] {
                for region in regions {
                    self.require(
                        actor,
                        Action::TenantRegionsUpdate,
                        Resource::Tenant(&attributes),
                        &[("region", region.as_str()), ("operation", operation)],
                        &mut entry,
                    )?;
                }
            }
            if tenant.status.is_deleted() {
                return Err(ServiceError::Conflict {
                    message: format!("tenant {} is {}", tenant.id, tenant.status),
                    current_status: Some(tenant.status.as_str().to_owned()),
                });
            }
            let mut regions: BTreeSet<RegionName> = tenant.deploy_regions.iter().cloned().collect();
            regions.extend(add);
            for region in &remove {
                regions.remove(region);
            }
            tenant.deploy_regions = regions.into_iter().collect();
            tenant.updated_at = self.now_micros();
            tenants::update(&mut tx, &tenant).await?;
            crate::jobs::outbox::enqueue(
                &mut tx,
                self.now(),
                "tenant.regions",
                Some(tenant.id.as_str()),
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
    ) -> Result<Vec<Workload>, ServiceError> {
        let mut entry = self
            .entry(
                actor,
                "tenant.workloads.update",
                &format!("tenant:{tenant_id}"),
            )
            .details(json!({"workload": name, "replicas": replicas}));
        entry = entry.tenant_if_valid(tenant_id);
        let mut tx = self.db().begin().await?;
        let result = async {
            let tenant = self.lock_tenant(&mut tx, tenant_id).await?;
            let attributes = self.attributes_of(&tenant);
            self.require(
                actor,
                Action::TenantWorkloadsUpdate,
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
            self.check_workload_limit(&mut tx, &tenant, &name).await?;
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
    ) -> Result<Vec<Workload>, ServiceError> {
        let mut conn = self.db().readers().acquire().await?;
        let tenant = self
            .readable_tenant(&mut conn, actor, tenant_id, Action::TenantRead)
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
        entry = entry.tenant_if_valid(tenant_id);
        let mut tx = self.db().begin().await?;
        let result = async {
            let mut tenant = self.lock_tenant(&mut tx, tenant_id).await?;
            let attributes = self.attributes_of(&tenant);
            self.require(
                actor,
                Action::TenantRetentionUpdate,
                Resource::Tenant(&attributes),
                &[],
                &mut entry,
            )?;
            check_retention_change(&tenant, tombstone_days, reason)?;
            refuse_loosening_while_deleting(
                &tenant,
                tombstone_days,
                legal_hold,
                hard_delete_allowed,
            )?;
            apply_retention(&mut tenant, tombstone_days, legal_hold, hard_delete_allowed);
            tenant.updated_at = self.now_micros();
            tenants::update(&mut tx, &tenant).await?;
            Ok(tenant)
        }
        .await;
        self.finish(tx, entry, result).await
    }
}

impl App {
    /// A new workload must fit in the plan's `workloads_max`.
    async fn check_workload_limit(
        &self,
        tx: &mut Tx,
        tenant: &TenantRow,
        name: &WorkloadName,
    ) -> Result<(), ServiceError> {
        let existing = workloads_of(tx, &tenant.id).await?;
        let is_new = !existing.iter().any(|w| w.name == name.as_str());
        let max = self
            .settings()
            .plan(&tenant.plan)
            .map(|p| p.workloads_max)
            .unwrap_or(0);
        if is_new && existing.len() >= max as usize {
            return Err(ServiceError::conflict(format!(
                "plan {} allows at most {max} workloads",
                tenant.plan
            )));
        }
        Ok(())
    }
}

/// The regions to add and remove, each parsed; at least one of either.
fn parse_region_changes(
    add: &[String],
    remove: &[String],
) -> Result<(Vec<RegionName>, Vec<RegionName>), ServiceError> {
    let mut c = Collector::new();
    let mut parse = |field: &str, regions: &[String]| -> Vec<RegionName> {
        regions
            .iter()
            .enumerate()
            .filter_map(|(i, r)| c.take(RegionName::parse_field(r, &format!("{field}[{i}]"))))
            .collect()
    };
    let add = parse("add", add);
    let remove = parse("remove", remove);
    if add.is_empty() && remove.is_empty() && c.is_empty() {
        c.push(FieldError::new(
            "add",
            "name at least one region to add or remove",
        ));
    }
    c.finish()?;
    Ok((add, remove))
}

/// A retention change needs a reason and a tombstone within bounds, and a tenant not purged.
fn check_retention_change(
    tenant: &TenantRow,
    tombstone_days: Option<u32>,
    reason: Option<&str>,
) -> Result<(), ServiceError> {
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
    Ok(())
}

/// Sets the members given; a deleted tenant's purge date follows a new tombstone period.
fn apply_retention(
    tenant: &mut TenantRow,
    tombstone_days: Option<u32>,
    legal_hold: Option<bool>,
    hard_delete_allowed: Option<bool>,
) {
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
}
