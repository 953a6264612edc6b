//! Validation of a new tenant as received (`NewTenant`): its name, plan, regions (within the
//! region catalog and residency), audit webhook and retention, every problem named by field.

use companyos_domain::catalog::PlanSpec;
use companyos_domain::error::Collector;
use companyos_domain::plan::{RetentionPolicy, TOMBSTONE_DAYS_MAX};
use companyos_domain::{FieldError, PlanName, RegionName, TenantId};

use super::{NewTenant, TENANT_NAME_CHARS_MAX};
use crate::app::App;
use crate::error::ServiceError;
use crate::jobs::outbound::OutboundPolicy;

/// A new tenant whose every field is valid.
pub(super) struct ValidTenant {
    pub(super) id: TenantId,
    pub(super) name: String,
    pub(super) plan: PlanName,
    pub(super) home_region: RegionName,
    pub(super) allowed_regions: Vec<RegionName>,
    pub(super) deploy_regions: Vec<RegionName>,
    pub(super) audit_webhook_url: Option<String>,
    pub(super) retention: RetentionPolicy,
}

/// The regions of a new tenant, as far as they parsed.
struct Placement {
    home: Option<RegionName>,
    allowed: Vec<RegionName>,
    deploy: Vec<RegionName>,
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

fn validate_name(c: &mut Collector, name: &str) -> String {
    let name = name.trim().to_owned();
    if name.is_empty() || name.chars().count() > TENANT_NAME_CHARS_MAX {
        c.push(FieldError::new(
            "name",
            format!("must be 1 to {TENANT_NAME_CHARS_MAX} characters"),
        ));
    }
    name
}

/// The allowed regions (none given: the home region alone), the home region (none given: the
/// first allowed one, else the catalog's first), and the deploy regions (none given: home).
fn validate_placement(c: &mut Collector, input: &NewTenant, catalog: &[RegionName]) -> Placement {
    let allowed = match &input.allowed_regions {
        Some(list) if list.is_empty() => {
            c.push(FieldError::new("allowed_regions", "must not be empty"));
            Vec::new()
        }
        Some(list) => parse_region_list(c, "allowed_regions", list, catalog),
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
        Some(list) => validate_deploy_regions(c, list, catalog, &allowed),
        None => home.iter().cloned().collect(),
    };
    Placement {
        home,
        allowed,
        deploy,
    }
}

/// Deploy regions must be in the catalog and among the allowed ones (residency).
fn validate_deploy_regions(
    c: &mut Collector,
    list: &[String],
    catalog: &[RegionName],
    allowed: &[RegionName],
) -> Vec<RegionName> {
    let parsed = parse_region_list(c, "deploy_regions", list, catalog);
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

impl App {
    /// Validates a new tenant; `catalog_plan` is the latest catalog version of the plan it
    /// names (`None`: not in the catalog, or not looked up on a failure path, where the
    /// configured plans stand in).
    pub(super) fn validate_new_tenant(
        &self,
        input: &NewTenant,
        catalog_plan: Option<&PlanSpec>,
    ) -> Result<ValidTenant, ServiceError> {
        let settings = self.settings();
        let mut c = Collector::new();
        let id = c.take(TenantId::parse(&input.id));
        let name = validate_name(&mut c, &input.name);
        let plan = self.validate_plan(&mut c, input, catalog_plan);
        let placement = validate_placement(&mut c, input, &settings.regions);
        if let Some(url) = &input.audit_webhook_url {
            c.take(check_webhook_url(url, &settings.outbound));
        }
        let retention = self.validate_retention(&mut c, input, plan.as_ref(), catalog_plan);
        c.finish()?;
        match (id, plan, placement.home) {
            (Some(id), Some(plan), Some(home_region)) => Ok(ValidTenant {
                id,
                name,
                plan,
                home_region,
                allowed_regions: placement.allowed,
                deploy_regions: placement.deploy,
                audit_webhook_url: input.audit_webhook_url.clone(),
                retention,
            }),
            _ => Err(ServiceError::invalid("id", "is required")),
        }
    }

    /// The plan named (`standard` when none is), which must be in the catalog or configured.
    fn validate_plan(
        &self,
        c: &mut Collector,
        input: &NewTenant,
        catalog_plan: Option<&PlanSpec>,
    ) -> Option<PlanName> {
        let settings = self.settings();
        let plan_text = input.plan.clone().unwrap_or_else(|| "standard".to_owned());
        let plan = c.take(PlanName::parse(&plan_text));
        if let Some(plan) = &plan {
            if catalog_plan.is_none() && settings.plan(plan).is_none() {
                let names: Vec<&str> = settings.plans.iter().map(|p| p.name.as_str()).collect();
                c.push(FieldError::new(
                    "plan",
                    format!("must be one of the catalog's plans: {}", names.join(", ")),
                ));
            }
        }
        plan
    }

    /// The retention asked for, each member defaulting to the plan's (no legal hold).
    fn validate_retention(
        &self,
        c: &mut Collector,
        input: &NewTenant,
        plan: Option<&PlanName>,
        catalog_plan: Option<&PlanSpec>,
    ) -> RetentionPolicy {
        let plan_retention = match catalog_plan {
            Some(spec) => spec.retention.clone(),
            None => plan
                .and_then(|p| self.settings().plan(p))
                .map(|p| p.retention.clone())
                .unwrap_or_default(),
        };
        let tombstone_days = input
            .tombstone_days
            .unwrap_or(plan_retention.tombstone_days);
        if tombstone_days > TOMBSTONE_DAYS_MAX {
            c.push(FieldError::new(
                "tombstone_days",
                format!("must be at most {TOMBSTONE_DAYS_MAX}"),
            ));
        }
        RetentionPolicy {
            tombstone_days,
            hard_delete_allowed: input
                .hard_delete_allowed
                .unwrap_or(plan_retention.hard_delete_allowed),
            legal_hold: input.legal_hold.unwrap_or(false),
        }
    }
}
