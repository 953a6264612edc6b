//! Authorization: every decision is made by the Cedar policies in `policies/` (plus a tenant's
//! own baseline policies), through [`Authorizer::authorize`]. Handlers never check roles.

use std::collections::{HashMap, HashSet};
use std::str::FromStr as _;
use std::sync::{Arc, Mutex};

use cedar_policy::{
    Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicySet, Request,
    RestrictedExpression, Schema, ValidationMode, Validator,
};
use companyos_domain::{Action, Role};
use companyos_ledger::hash::sha256;

/// The policy files, in the order they are concatenated.
pub const POLICY_FILES: [(&str, &str); 1] = [(
    "policies/companyos.cedar",
    include_str!("../../../policies/companyos.cedar"),
)];
/// The Cedar schema the policies are validated against.
pub const SCHEMA_TEXT: &str = include_str!("../../../policies/schema.cedarschema");
/// Tenant policy sets kept parsed, by hash.
const TENANT_POLICY_CACHE_MAX: usize = 1024;

/// Why the policies could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy {file} does not parse: {message}")]
    Parse { file: String, message: String },
    #[error("schema does not parse: {0}")]
    Schema(String),
    #[error("policies do not validate against the schema: {0}")]
    Validation(String),
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Operator {
        id: String,
        name: String,
        role: Role,
    },
    TenantKey {
        key_id: String,
        tenant: TenantAttributes,
    },
    System {
        job: String,
    },
}

impl Principal {
    /// The actor name written to audit records.
    pub fn actor_name(&self) -> String {
        match self {
            Principal::Operator { name, .. } => name.clone(),
            Principal::TenantKey { tenant, .. } => format!("tenant:{}", tenant.id),
            Principal::System { job } => format!("system:{job}"),
        }
    }

    /// The role written to audit records.
    pub fn role_name(&self) -> String {
        match self {
            Principal::Operator { role, .. } => role.as_str().to_owned(),
            Principal::TenantKey { .. } => "tenant".to_owned(),
            Principal::System { .. } => "system".to_owned(),
        }
    }

    pub fn operator_id(&self) -> Option<&str> {
        match self {
            Principal::Operator { id, .. } => Some(id),
            _ => None,
        }
    }
}

/// The attributes of a tenant that policies read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantAttributes {
    pub id: String,
    pub status: String,
    pub plan: String,
    pub home_region: String,
    pub allowed_regions: Vec<String>,
    pub entitlements: Vec<String>,
    /// The plan version in force (billing; with `plan` it names the quotas).
    pub plan_version: u32,
    /// Metrics whose hard quota is used up for the current period. Read only where a
    /// decision needs it (forward auth with `metric=`); empty elsewhere.
    pub quotas_used_up: Vec<String>,
    pub legal_hold: bool,
    pub hard_delete_allowed: bool,
    /// The tenant's own baseline policies (Cedar text), evaluated with the global ones.
    pub policy_text: Option<String>,
}

/// What is acted on.
#[derive(Debug, Clone, Copy)]
pub enum Resource<'a> {
    Deployment,
    Tenant(&'a TenantAttributes),
    Approval {
        id: &'a str,
        requester_operator_id: &'a str,
        /// Operators the requester created within the approval's lifetime before the request
        /// or since: one person with two tokens, as far as the two-person rule is concerned.
        created_by_requester: &'a [String],
        action: &'a str,
        tenant: &'a TenantAttributes,
    },
}

/// The outcome of one authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzDecision {
    pub allowed: bool,
    /// The policies that decided: the permits that allowed, or the forbids that denied.
    pub policy_ids: Vec<String>,
    pub errors: Vec<String>,
}

impl AuthzDecision {
    /// A human-readable reason for a denial.
    pub fn denial_reason(&self, action: Action) -> String {
        if self.policy_ids.is_empty() {
            format!("no policy permits {action}")
        } else {
            format!(
                "{action} is forbidden by policy {}",
                self.policy_ids.join(", ")
            )
        }
    }
}

/// The Cedar policy set and schema, loaded once.
#[derive(Debug)]
pub struct Authorizer {
    policies: PolicySet,
    schema: Schema,
    policy_text: String,
    policy_sha256: String,
    tenant_policies: Mutex<HashMap<String, Arc<PolicySet>>>,
}

fn type_name(name: &str) -> EntityTypeName {
    // The names are constants of this module; a failure is a programming error.
    EntityTypeName::from_str(&format!("CompanyOS::{name}"))
        .unwrap_or_else(|e| panic!("invalid entity type name {name}: {e}"))
}

fn uid(kind: &str, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(type_name(kind), EntityId::new(id))
}

fn string(value: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(value.to_owned())
}

fn string_set(values: &[String]) -> RestrictedExpression {
    RestrictedExpression::new_set(values.iter().map(|v| string(v)))
}

fn tenant_entity(tenant: &TenantAttributes) -> Result<Entity, String> {
    let attrs = HashMap::from([
        ("status".to_owned(), string(&tenant.status)),
        ("plan".to_owned(), string(&tenant.plan)),
        ("home_region".to_owned(), string(&tenant.home_region)),
        (
            "allowed_regions".to_owned(),
            string_set(&tenant.allowed_regions),
        ),
        ("entitlements".to_owned(), string_set(&tenant.entitlements)),
        (
            "quotas_used_up".to_owned(),
            string_set(&tenant.quotas_used_up),
        ),
        (
            "legal_hold".to_owned(),
            RestrictedExpression::new_bool(tenant.legal_hold),
        ),
        (
            "hard_delete_allowed".to_owned(),
            RestrictedExpression::new_bool(tenant.hard_delete_allowed),
        ),
    ]);
    Entity::new(uid("Tenant", &tenant.id), attrs, HashSet::new()).map_err(|e| e.to_string())
}

impl Authorizer {
    /// Parses the embedded policies and schema and validates them (strict mode).
    pub fn load() -> Result<Authorizer, PolicyError> {
        let mut policy_text = String::new();
        for (file, text) in POLICY_FILES {
            policy_text.push_str(&format!("// ---- {file}\n"));
            policy_text.push_str(text);
            if !policy_text.ends_with('\n') {
                policy_text.push('\n');
            }
        }
        let policies = named_policies(&policy_text, "").map_err(|message| PolicyError::Parse {
            file: "policies/".to_owned(),
            message,
        })?;
        let (schema, _warnings) = Schema::from_cedarschema_str(SCHEMA_TEXT)
            .map_err(|e| PolicyError::Schema(e.to_string()))?;
        validate_strictly(&schema, &policies)?;
        let policy_sha256 = sha256(policy_text.as_bytes()).to_hex();
        Ok(Authorizer {
            policies,
            schema,
            policy_text,
            policy_sha256,
            tenant_policies: Mutex::new(HashMap::new()),
        })
    }

    /// The text of every policy, as served by `GET /v1/policies`.
    pub fn policy_text(&self) -> &str {
        &self.policy_text
    }

    /// SHA-256 of [`Authorizer::policy_text`]; written into every audit record.
    pub fn policy_sha256(&self) -> &str {
        &self.policy_sha256
    }

    /// Validates a tenant's baseline policy text against the schema.
    pub fn validate_tenant_policies(&self, text: &str) -> Result<(), PolicyError> {
        let policies = named_policies(text, "tenant:").map_err(|message| PolicyError::Parse {
            file: "tenant baseline".to_owned(),
            message,
        })?;
        validate_strictly(&self.schema, &policies)
    }

    fn policies_for(&self, tenant_policy: Option<&str>) -> Result<Arc<PolicySet>, String> {
        let Some(text) = tenant_policy.filter(|t| !t.trim().is_empty()) else {
            return Ok(Arc::new(self.policies.clone()));
        };
        let key = sha256(text.as_bytes()).to_hex();
        let mut cache = self
            .tenant_policies
            .lock()
            .map_err(|_| "policy cache poisoned".to_owned())?;
        if let Some(set) = cache.get(&key) {
            return Ok(set.clone());
        }
        let mut combined = self.policies.clone();
        let tenant_set = named_policies(text, "tenant:")?;
        for policy in tenant_set.policies() {
            combined.add(policy.clone()).map_err(|e| e.to_string())?;
        }
        let combined = Arc::new(combined);
        if cache.len() >= TENANT_POLICY_CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, combined.clone());
        Ok(combined)
    }

    /// Decides whether `principal` may perform `action` on `resource`.
    pub fn authorize(
        &self,
        principal: &Principal,
        action: Action,
        resource: Resource<'_>,
        context: &[(&str, &str)],
    ) -> AuthzDecision {
        match self.try_authorize(principal, action, resource, context) {
            Ok(decision) => decision,
            // Fail closed: an evaluation problem is a denial, with the reason recorded.
            Err(error) => AuthzDecision {
                allowed: false,
                policy_ids: Vec::new(),
                errors: vec![error],
            },
        }
    }

    fn try_authorize(
        &self,
        principal: &Principal,
        action: Action,
        resource: Resource<'_>,
        context: &[(&str, &str)],
    ) -> Result<AuthzDecision, String> {
        let mut entities = RequestEntities::default();
        let principal_uid = entities.principal(principal)?;
        let (resource_uid, tenant_policy) = entities.resource(resource)?;
        let action_uid = uid("Action", action.as_str());
        let context =
            Context::from_pairs(context.iter().map(|(k, v)| ((*k).to_owned(), string(v))))
                .map_err(|e| e.to_string())?;
        let request = Request::new(
            principal_uid,
            action_uid,
            resource_uid,
            context,
            Some(&self.schema),
        )
        .map_err(|e| e.to_string())?;
        let entities =
            Entities::from_entities(entities.entities, None).map_err(|e| e.to_string())?;
        let policies = self.policies_for(tenant_policy)?;
        let response =
            cedar_policy::Authorizer::new().is_authorized(&request, &policies, &entities);
        let errors: Vec<String> = response
            .diagnostics()
            .errors()
            .map(|e| e.to_string())
            .collect();
        Ok(AuthzDecision {
            allowed: response.decision() == Decision::Allow,
            policy_ids: response
                .diagnostics()
                .reason()
                .map(|id| id.to_string())
                .collect(),
            errors,
        })
    }
}

/// The entities of one authorization request: the principal, the resource and the tenants they
/// name, each tenant once.
#[derive(Default)]
struct RequestEntities {
    entities: Vec<Entity>,
    seen_tenants: HashSet<String>,
}

impl RequestEntities {
    fn push_tenant(&mut self, tenant: &TenantAttributes) -> Result<(), String> {
        if self.seen_tenants.insert(tenant.id.clone()) {
            self.entities.push(tenant_entity(tenant)?);
        }
        Ok(())
    }

    fn push(
        &mut self,
        uid: &EntityUid,
        attrs: HashMap<String, RestrictedExpression>,
        parents: HashSet<EntityUid>,
    ) -> Result<(), String> {
        let entity = Entity::new(uid.clone(), attrs, parents).map_err(|e| e.to_string())?;
        self.entities.push(entity);
        Ok(())
    }

    /// Adds the principal (and a tenant key's tenant); its uid.
    fn principal(&mut self, principal: &Principal) -> Result<EntityUid, String> {
        match principal {
            Principal::Operator { id, name, role } => {
                let uid = uid("Operator", id);
                let attrs = HashMap::from([
                    ("name".to_owned(), string(name)),
                    ("role".to_owned(), string(role.as_str())),
                ]);
                self.push(&uid, attrs, HashSet::from([uid_role(*role)]))?;
                Ok(uid)
            }
            Principal::TenantKey { key_id, tenant } => {
                let uid = uid("TenantKey", key_id);
                self.push_tenant(tenant)?;
                let attrs = HashMap::from([("tenant".to_owned(), tenant_ref(&tenant.id))]);
                self.push(&uid, attrs, HashSet::new())?;
                Ok(uid)
            }
            Principal::System { job } => {
                let uid = uid("System", job);
                self.entities.push(Entity::with_uid(uid.clone()));
                Ok(uid)
            }
        }
    }

    /// Adds the resource (and its tenant); its uid and the tenant's own policy, if any.
    fn resource<'r>(
        &mut self,
        resource: Resource<'r>,
    ) -> Result<(EntityUid, Option<&'r str>), String> {
        match resource {
            Resource::Deployment => {
                let uid = uid("Deployment", "global");
                self.entities.push(Entity::with_uid(uid.clone()));
                Ok((uid, None))
            }
            Resource::Tenant(tenant) => {
                self.push_tenant(tenant)?;
                Ok((uid("Tenant", &tenant.id), tenant.policy_text.as_deref()))
            }
            Resource::Approval {
                id,
                requester_operator_id,
                created_by_requester,
                action,
                tenant,
            } => {
                self.push_tenant(tenant)?;
                let uid = uid("Approval", id);
                let operator =
                    |id: &str| RestrictedExpression::new_entity_uid(self::uid("Operator", id));
                let attrs = HashMap::from([
                    ("requester".to_owned(), operator(requester_operator_id)),
                    (
                        "created_by_requester".to_owned(),
                        RestrictedExpression::new_set(
                            created_by_requester.iter().map(|id| operator(id)),
                        ),
                    ),
                    ("action".to_owned(), string(action)),
                    ("tenant".to_owned(), tenant_ref(&tenant.id)),
                ]);
                self.push(&uid, attrs, HashSet::new())?;
                Ok((uid, None))
            }
        }
    }
}

/// A reference to the tenant entity `id`, as an attribute value.
fn tenant_ref(id: &str) -> RestrictedExpression {
    RestrictedExpression::new_entity_uid(uid("Tenant", id))
}

/// Validates `policies` against `schema` in strict mode; the error lists every problem found.
fn validate_strictly(schema: &Schema, policies: &PolicySet) -> Result<(), PolicyError> {
    let validation = Validator::new(schema.clone()).validate(policies, ValidationMode::Strict);
    if validation.validation_passed() {
        return Ok(());
    }
    let messages: Vec<String> = validation
        .validation_errors()
        .map(|e| e.to_string())
        .collect();
    Err(PolicyError::Validation(messages.join("; ")))
}

/// Parses policies and names each by its `@id` annotation (with `prefix`), so decisions and
/// audit records cite readable policy ids and two sets can be combined without id clashes.
fn named_policies(text: &str, prefix: &str) -> Result<PolicySet, String> {
    let parsed = PolicySet::from_str(text).map_err(|e| e.to_string())?;
    let mut named = PolicySet::new();
    for policy in parsed.policies() {
        let id = policy
            .annotation("id")
            .map_or_else(|| policy.id().to_string(), str::to_owned);
        let policy = policy.new_id(cedar_policy::PolicyId::new(format!("{prefix}{id}")));
        named.add(policy).map_err(|e| e.to_string())?;
    }
    Ok(named)
}

fn uid_role(role: Role) -> EntityUid {
    uid("Role", role.as_str())
}

/// The baseline Cedar policies of one tenant (LIFE-1): residency pinned to its allowed regions
/// at provisioning, and its plan's entitlements recorded for review.
pub fn tenant_baseline_policies(tenant: &TenantAttributes) -> String {
    let regions: Vec<String> = tenant
        .allowed_regions
        .iter()
        .map(|r| format!("\"{r}\""))
        .collect();
    format!(
        "// Baseline policies of tenant {id} (plan {plan}), generated at provisioning.\n\
         // Entitlements of the plan: {entitlements}.\n\
         @id(\"tenant-{id}-residency\")\n\
         forbid (\n  principal,\n  action == CompanyOS::Action::\"tenant.regions.update\",\n  \
         resource == CompanyOS::Tenant::\"{id}\"\n)\n\
         when {{\n  context.operation == \"add\" && ![{regions}].contains(context.region)\n}};\n",
        id = tenant.id,
        plan = tenant.plan,
        entitlements = tenant.entitlements.join(", "),
        regions = regions.join(", "),
    )
}

#[cfg(test)]
mod tests {
    use cedar_policy::Schema;
    use companyos_domain::Action;

    use super::SCHEMA_TEXT;

    /// The `Action` enum and the Cedar schema name the same actions: an action the schema
    /// lacks would be denied at run time, one the enum lacks could not be asked for.
    #[test]
    fn action_enum_matches_schema() {
        let (schema, _warnings) = Schema::from_cedarschema_str(SCHEMA_TEXT).expect("schema");
        let mut in_schema: Vec<String> = schema
            .actions()
            .map(|uid| uid.id().unescaped().to_owned())
            .collect();
        in_schema.sort();
        let in_enum: Vec<String> = Action::ALL.iter().map(|a| a.as_str().to_owned()).collect();
        assert_eq!(in_enum, in_schema);
    }
}
