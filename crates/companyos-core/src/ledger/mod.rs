//! The tenant-facing side of the usage ledger (CONTRACT §7): signed checkpoints (on an interval
//! and on demand), inclusion and consistency proofs, and `ledger verify`, which checks every
//! stored leaf, node, root, checkpoint and payload against each other.

use std::collections::HashMap;

use companyos_ledger::Hash;
use companyos_ledger::leaf::UsageLeaf;
use companyos_ledger::usage_event::EventDigest;
use sqlx::AnyConnection;

use crate::app::{Actor, App, Ledger};
use crate::db::StoreError;
use crate::error::ServiceError;
use crate::ledger_store::{self, LogProblem, StoredCheckpoint};
use crate::lifecycle::TenantRow;
use companyos_domain::Action;
use companyos_domain::{LogId, TenantId};

mod rollups;

/// Whether the tenant was purged: its payloads are gone, and only its leaves and rollups are
/// kept as records.
async fn tenant_purged(conn: &mut AnyConnection, tenant_id: &str) -> Result<bool, StoreError> {
    // An id that does not parse names no tenant, so none that was purged.
    let Ok(tenant_id) = TenantId::parse(tenant_id) else {
        return Ok(false);
    };
    let status = companyos_store::tenants::status_of(conn, &tenant_id).await?;
    Ok(status == Some(companyos_domain::TenantStatus::Purged))
}

pub(crate) use rollups::{RollupMap, recompute_rollups, stored_rollups};

/// A proof of inclusion, as served.
#[derive(Debug, Clone)]
pub struct InclusionProof {
    pub log_id: String,
    pub origin: String,
    pub event_id: String,
    pub leaf_index: u64,
    pub tree_size: u64,
    pub leaf_data: Vec<u8>,
    pub leaf_hash: Hash,
    pub proof: Vec<Hash>,
    pub checkpoint: Option<String>,
}

/// A proof that the tree of size `to` extends the tree of size `from` (RFC 6962 §2.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    pub proof: Vec<Hash>,
}

/// Where `Ledger::verify_with_progress` is.
#[derive(Debug, Clone, Copy)]
pub enum VerifyProgress<'a> {
    /// Starting the `index`-th (from 0) of `total` tenants.
    Tenant {
        tenant: &'a str,
        index: usize,
        total: usize,
    },
    /// Leaves of the current tenant checked so far.
    Leaves(u64),
}

impl App {
    pub(crate) fn origin_of(&self, log_id: &LogId) -> String {
        match log_id {
            LogId::Usage(tenant) => self.settings().tenant_origin(tenant.as_str()),
            LogId::Audit => self.settings().audit_origin(),
        }
    }

    /// A signed checkpoint of the empty tree (not stored: it commits to nothing).
    fn empty_checkpoint(&self, origin: &str) -> Result<String, ServiceError> {
        let checkpoint =
            companyos_ledger::Checkpoint::new(origin, 0, companyos_ledger::hash::empty_tree_root())
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
        Ok(self
            .keys()
            .checkpoint
            .sign_note(&checkpoint.to_note_text())
            .map_err(|e| ServiceError::Internal(e.to_string()))?
            .to_string())
    }

    async fn verify_payloads(
        &self,
        conn: &mut AnyConnection,
        tenant_id: &str,
    ) -> Result<Vec<LogProblem>, ServiceError> {
        let log_id = LogId::Usage(TenantId::parse(tenant_id)?);
        let purged = tenant_purged(conn, tenant_id).await?;
        let mut problems = Vec::new();
        let problem = |leaf_index: u64, message: String| LogProblem {
            log_id: log_id.to_string(),
            leaf_index: Some(leaf_index),
            message,
        };
        let page = 5_000u64;
        let mut next = 0u64;
        loop {
            let leaves =
                crate::bundles::read_leaves(conn, &log_id, next, next.saturating_add(page), true)
                    .await?;
            let Some(last) = leaves.last().map(|l| l.index) else {
                break;
            };
            let events: HashMap<u64, crate::bundles::StoredEvent> =
                crate::bundles::read_events(conn, tenant_id, next, last + 1)
                    .await?
                    .into_iter()
                    .map(|e| (e.seq, e))
                    .collect();
            next = last + 1;
            for stored in &leaves {
                let Ok(leaf) = UsageLeaf::parse(&stored.data) else {
                    continue;
                };
                let Some(event) = events.get(&stored.index) else {
                    if !purged {
                        problems.push(problem(stored.index, "event payload is missing".to_owned()));
                    }
                    continue;
                };
                if let Some(message) = check_payload(event, &leaf) {
                    problems.push(problem(stored.index, message));
                }
            }
        }
        let events = crate::bundles::count_events(conn, tenant_id).await?;
        let leaves = crate::bundles::count_leaves(conn, &log_id).await?;
        if events > leaves {
            problems.push(LogProblem {
                log_id: log_id.to_string(),
                leaf_index: u64::try_from(leaves).ok(),
                message: format!("{events} stored events but only {leaves} leaves"),
            });
        }
        Ok(problems)
    }

    /// Recomputes the on-time daily rollups of a tenant from its ledger payloads and compares
    /// them with the stored rollups.
    pub(crate) async fn verify_rollups(
        &self,
        conn: &mut AnyConnection,
        tenant_id: &str,
    ) -> Result<Vec<LogProblem>, ServiceError> {
        let log_id = LogId::Usage(TenantId::parse(tenant_id)?);
        if tenant_purged(conn, tenant_id).await? {
            // Payloads are gone; the rollups are retained as records, not recomputable.
            return Ok(Vec::new());
        }
        let recomputed = recompute_rollups(conn, tenant_id, None).await?;
        let stored = stored_rollups(conn, tenant_id, None).await?;
        let mut problems = Vec::new();
        for (key, value) in &stored {
            if recomputed.get(key) != Some(value) {
                problems.push(LogProblem {
                    log_id: log_id.to_string(),
                    leaf_index: None,
                    message: format!(
                        "stored rollup of day {} {}/{}/{} is {} over {} events but the ledger gives {}",
                        companyos_domain::time_util::format_day(companyos_domain::time_util::day_from_number(key.0)),
                        key.1, key.2, key.3, value.0, value.1,
                        recomputed.get(key).map_or("nothing".to_owned(), |v| format!("{} over {} events", v.0, v.1)),
                    ),
                });
            }
        }
        for key in recomputed.keys() {
            if !stored.contains_key(key) {
                problems.push(LogProblem {
                    log_id: log_id.to_string(),
                    leaf_index: None,
                    message: format!(
                        "the ledger has events of day {} {}/{}/{} but no stored rollup",
                        companyos_domain::time_util::format_day(
                            companyos_domain::time_util::day_from_number(key.0)
                        ),
                        key.1,
                        key.2,
                        key.3
                    ),
                });
            }
        }
        Ok(problems)
    }
}

impl Ledger<'_> {
    /// Signs a checkpoint of a log if it grew since the last one; returns the latest.
    pub async fn sign_checkpoint(
        &self,
        log_id: &LogId,
        origin: &str,
    ) -> Result<Option<StoredCheckpoint>, ServiceError> {
        ledger_store::sign_checkpoint(
            self.db(),
            &self.keys().checkpoint,
            log_id,
            origin,
            self.now_micros(),
        )
        .await
        .map_err(|e| match e {
            ledger_store::SignError::Store(s) => ServiceError::Store(s),
            refused => ServiceError::Internal(refused.to_string()),
        })
    }

    /// Signs checkpoints of every log that grew (the checkpoint job).
    pub async fn sign_all_checkpoints(&self) -> Result<usize, ServiceError> {
        let mut conn = self.db().readers().acquire().await?;
        let ids = ledger_store::log_ids(&mut conn).await?;
        drop(conn);
        let mut signed = 0;
        for log_id in ids {
            let origin = self.origin_of(&log_id);
            let before = {
                let mut conn = self.db().readers().acquire().await?;
                ledger_store::latest_checkpoint(&mut conn, &log_id)
                    .await?
                    .map(|c| c.tree_size)
            };
            let after = self
                .ledger()
                .sign_checkpoint(&log_id, &origin)
                .await?
                .map(|c| c.tree_size);
            if after != before {
                signed += 1;
            }
        }
        Ok(signed)
    }

    /// The latest signed checkpoint of a tenant's ledger (signed now if the tree grew).
    pub async fn tenant_checkpoint(
        &self,
        actor: &Actor,
        tenant_id: &str,
    ) -> Result<String, ServiceError> {
        let mut conn = self.db().readers().acquire().await?;
        let tenant = self
            .readable_tenant(&mut conn, actor, tenant_id, Action::LedgerRead)
            .await?;
        drop(conn);
        let origin = self.settings().tenant_origin(tenant.id.as_str());
        let log_id = LogId::Usage(tenant.id.clone());
        match self.sign_checkpoint(&log_id, &origin).await? {
            Some(checkpoint) => Ok(checkpoint.note),
            None => Ok(self.empty_checkpoint(&origin)?),
        }
    }

    /// The latest checkpoint of the audit log (signed now if it grew).
    pub async fn audit_checkpoint(&self, actor: &Actor) -> Result<String, ServiceError> {
        self.authorize_read(
            actor,
            Action::AuditRead,
            crate::authz::Resource::Deployment,
            "audit",
            None,
        )
        .await?;
        let origin = self.settings().audit_origin();
        match self.sign_checkpoint(&LogId::Audit, &origin).await? {
            Some(checkpoint) => Ok(checkpoint.note),
            None => self.empty_checkpoint(&origin),
        }
    }

    /// The inclusion proof of one event, in the latest checkpoint or at `tree_size`.
    pub async fn inclusion_proof(
        &self,
        actor: &Actor,
        tenant_id: &str,
        event_id: &str,
        tree_size: Option<u64>,
    ) -> Result<InclusionProof, ServiceError> {
        let event_id = companyos_domain::EventId::parse(event_id)?;
        let mut conn = self.db().readers().acquire().await?;
        let tenant = self
            .readable_tenant(&mut conn, actor, tenant_id, Action::LedgerRead)
            .await?;
        let log_id = LogId::Usage(tenant.id.clone());
        let seq = self
            .event_leaf(&mut conn, &tenant, &log_id, &event_id)
            .await?;
        let leaf_index = u64::try_from(seq).map_err(|_| StoreError::corrupt("negative seq"))?;
        drop(conn);
        let origin = self.settings().tenant_origin(tenant.id.as_str());
        let latest = self.sign_checkpoint(&log_id, &origin).await?;
        let mut conn = self.db().readers().acquire().await?;
        let head_size = ledger_store::read_head(&mut conn, &log_id)
            .await?
            .map_or(0, |(size, _)| size);
        let (tree_size, checkpoint) = match tree_size {
            None => match latest {
                Some(c) => (c.tree_size, Some(c.note)),
                None => (head_size, None),
            },
            Some(size) => {
                let checkpoint =
                    proof_checkpoint_at(&mut conn, &log_id, leaf_index, size, head_size).await?;
                (size, checkpoint)
            }
        };
        let (leaf_hash, leaf_data) = ledger_store::read_leaf(&mut conn, &log_id, leaf_index)
            .await?
            .ok_or_else(|| {
                StoreError::corrupt(format!("leaf {leaf_index} of {log_id} is missing"))
            })?;
        let proof =
            ledger_store::inclusion_proof(&mut conn, &log_id, leaf_index, tree_size).await?;
        Ok(InclusionProof {
            log_id: log_id.to_string(),
            origin,
            event_id: event_id.into_string(),
            leaf_index,
            tree_size,
            leaf_data,
            leaf_hash,
            proof,
            checkpoint,
        })
    }

    /// The leaf index of `event_id` in a tenant's ledger. After purge the event rows are gone
    /// but the leaves (which name the event id) stay: the leaf is then looked up in the tree
    /// itself, so proofs keep working for purged tenants.
    async fn event_leaf(
        &self,
        conn: &mut AnyConnection,
        tenant: &TenantRow,
        log_id: &LogId,
        event_id: &companyos_domain::EventId,
    ) -> Result<i64, ServiceError> {
        let seq = self
            .find_event_seq(conn, tenant.id.as_str(), event_id.as_str())
            .await?;
        let seq = match seq {
            Some(seq) => Some(seq),
            None if tenant.status == companyos_domain::TenantStatus::Purged => {
                find_leaf_by_event_id(conn, log_id, event_id.as_str()).await?
            }
            None => None,
        };
        seq.ok_or_else(|| {
            ServiceError::NotFound(format!(
                "event {event_id} in the ledger of tenant {}",
                tenant.id
            ))
        })
    }

    /// The consistency proof between two sizes of a tenant's ledger.
    pub async fn consistency_proof(
        &self,
        actor: &Actor,
        tenant_id: &str,
        from: u64,
        to: u64,
    ) -> Result<ConsistencyProof, ServiceError> {
        let mut conn = self.db().readers().acquire().await?;
        let tenant = self
            .readable_tenant(&mut conn, actor, tenant_id, Action::LedgerRead)
            .await?;
        let log_id = LogId::Usage(tenant.id.clone());
        let head_size = ledger_store::read_head(&mut conn, &log_id)
            .await?
            .map_or(0, |(size, _)| size);
        if from > to {
            return Err(ServiceError::invalid("from", "must not be larger than to"));
        }
        if to > head_size {
            return Err(ServiceError::invalid(
                "to",
                format!("must be at most the tree size {head_size}"),
            ));
        }
        let proof = ledger_store::consistency_proof(&mut conn, &log_id, from, to).await?;
        Ok(ConsistencyProof { from, to, proof })
    }

    /// Verifies tenant ledgers from the store (`companyos ledger verify`): the tree, its
    /// checkpoints, each payload against its leaf, the payload's columns against the payload,
    /// and the daily rollups against a recomputation from the ledger.
    pub async fn verify(&self, tenant_id: Option<&str>) -> Result<Vec<LogProblem>, ServiceError> {
        self.verify_with_progress(tenant_id, &mut |_| {}).await
    }

    /// `verify`, telling `progress` where it is (a long verification shows a bar).
    pub async fn verify_with_progress(
        &self,
        tenant_id: Option<&str>,
        progress: &mut (dyn FnMut(VerifyProgress<'_>) + Send),
    ) -> Result<Vec<LogProblem>, ServiceError> {
        let mut conn = self.db().readers().acquire().await?;
        let tenants: Vec<String> = match tenant_id {
            Some(id) => vec![id.to_owned()],
            None => companyos_store::tenants::ids(&mut conn)
                .await?
                .into_iter()
                .map(TenantId::into_string)
                .collect(),
        };
        drop(conn);
        let verifier = self.keys().checkpoint_verifier();
        let mut problems = Vec::new();
        let total = tenants.len();
        for (index, tenant) in tenants.into_iter().enumerate() {
            progress(VerifyProgress::Tenant {
                tenant: &tenant,
                index,
                total,
            });
            // Each tenant is verified in one snapshot: a head read before a concurrent group
            // commit and leaves read after it would be a false alarm, and a check of fewer
            // leaves than the head names could miss a tampered one.
            // A name that is no tenant id (asked for by hand) has no ledger, rows or problems.
            let Ok(parsed) = TenantId::parse(&tenant) else {
                continue;
            };
            let log_id = LogId::Usage(parsed);
            let mut snapshot = self.db().begin_snapshot().await?;
            let conn = &mut *snapshot;
            let origin = self.settings().tenant_origin(&tenant);
            let tenant_for_leaf = tenant.clone();
            problems.extend(
                ledger_store::verify_log(conn, &log_id, &verifier, &origin, |index, data| {
                    progress(VerifyProgress::Leaves(index + 1));
                    match UsageLeaf::parse(data) {
                        Err(e) => Some(format!("leaf data is not a usage leaf: {e}")),
                        Ok(leaf)
                            if leaf.tenant_id != tenant_for_leaf || leaf.leaf_index != index =>
                        {
                            Some("leaf names another tenant or position".to_owned())
                        }
                        Ok(_) => None,
                    }
                })
                .await?,
            );
            problems.extend(self.verify_payloads(conn, &tenant).await?);
            problems.extend(self.verify_rollups(conn, &tenant).await?);
            snapshot.rollback().await?;
        }
        Ok(problems)
    }
}

fn check_payload(event: &crate::bundles::StoredEvent, leaf: &UsageLeaf) -> Option<String> {
    let digest = EventDigest::of_canonical(event.canonical.as_bytes());
    if digest != leaf.digest {
        return Some(format!(
            "event payload does not match its leaf digest (payload {digest}, leaf {})",
            leaf.digest
        ));
    }
    if event.event_id != leaf.event_id || event.digest != leaf.digest {
        return Some("stored event id or digest differs from the leaf".to_owned());
    }
    if event.class != leaf.class {
        return Some("stored event class differs from the leaf".to_owned());
    }
    if event.key != crate::dedupe::event_key(&leaf.tenant_id, &leaf.event_id) {
        return Some("stored dedupe key differs from the leaf".to_owned());
    }
    match companyos_domain::usage::UsageEvent::parse_bytes(event.canonical.as_bytes()) {
        Ok(parsed) if parsed.event_id.as_str() == leaf.event_id => None,
        Ok(_) => Some("event payload names another event id than its leaf".to_owned()),
        Err(_) => Some("event payload no longer parses".to_owned()),
    }
}

/// Scans a usage log's leaves for an event id (purged tenants only: O(n) reads in pages).
async fn find_leaf_by_event_id(
    conn: &mut AnyConnection,
    log_id: &LogId,
    event_id: &str,
) -> Result<Option<i64>, ServiceError> {
    let page = 10_000u64;
    let mut next = 0u64;
    loop {
        let leaves =
            crate::bundles::read_leaves(conn, log_id, next, next.saturating_add(page), true)
                .await?;
        let Some(last) = leaves.last().map(|l| l.index) else {
            return Ok(None);
        };
        next = last + 1;
        for leaf in &leaves {
            if UsageLeaf::parse(&leaf.data).is_ok_and(|parsed| parsed.event_id == event_id) {
                return Ok(Some(i64::try_from(leaf.index).unwrap_or(i64::MAX)));
            }
        }
    }
}

impl Ledger<'_> {
    /// The C2SP note verifier key of every checkpoint (public).
    pub fn verifier_key(&self) -> String {
        self.inner.keys.checkpoint_verifier().to_string()
    }
}

/// The checkpoint of a proof asked at `size` leaves: `size` must hold the leaf and be at most
/// the tree's size; the checkpoint signed at that size, if one was.
async fn proof_checkpoint_at(
    conn: &mut AnyConnection,
    log_id: &LogId,
    leaf_index: u64,
    size: u64,
    head_size: u64,
) -> Result<Option<String>, ServiceError> {
    if size <= leaf_index || size > head_size {
        return Err(ServiceError::invalid(
            "tree_size",
            format!(
                "must be above the leaf index {leaf_index} and at most the tree size {head_size}"
            ),
        ));
    }
    let checkpoint = ledger_store::checkpoint_at(conn, log_id, size).await?;
    Ok(checkpoint.map(|c| c.note))
}
