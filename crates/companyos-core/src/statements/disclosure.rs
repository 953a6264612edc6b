//! The disclosure pack (ADM-3, CONTRACT §10): every audit record about a tenant in a range of
//! UTC days, each with its audit-log inclusion proof under a signed audit checkpoint, and a
//! signed MANIFEST. Only auditors and admins may take one (policy `tenant.disclose`); the
//! download is itself audited.

use companyos_domain::Action;
use companyos_domain::TenantId;
use companyos_domain::time_util::{day_start, to_micros};
use serde_json::json;
use time::Date;

use super::Statements;
use super::pack::{PackFiles, sign_and_zip};
use crate::app::Actor;
use crate::error::ServiceError;

/// Days one disclosure pack covers at most.
pub const DISCLOSURE_DAYS_MAX: i64 = 3660;

const README: &str = "CompanyOS disclosure pack\n\n\
audit.ndjson: every audit record about the tenant in the range, one a line: {\"record\", \
\"leaf_index\", \"leaf_data\", \"proof\"}; each proof leads to the root of \
audit-checkpoint.txt (a signed C2SP tlog-checkpoint). MANIFEST lists the SHA-256 of every \
file; MANIFEST.minisig signs it (minisign -V -P <key from GET /v1/evidence/public-key> -m \
MANIFEST). `companyos statement verify PACK` checks all of it. See docs/spec/statement-pack.md.\n";

impl Statements<'_> {
    /// The disclosure pack of a tenant for `from..=to` (UTC days).
    pub async fn disclosure(
        &self,
        actor: &Actor,
        tenant_id: &TenantId,
        from: Date,
        to: Date,
    ) -> Result<Vec<u8>, ServiceError> {
        if to < from {
            return Err(ServiceError::invalid("to", "must not be before from"));
        }
        if (to - from).whole_days() >= DISCLOSURE_DAYS_MAX {
            return Err(ServiceError::invalid(
                "to",
                format!("a disclosure covers at most {DISCLOSURE_DAYS_MAX} days"),
            ));
        }
        let app = self.app;
        let mut conn = app.db().readers().acquire().await?;
        let tenant = app
            .readable_tenant(&mut conn, actor, tenant_id.as_str(), Action::TenantDisclose)
            .await?;
        let end = to.next_day().unwrap_or(to);
        let (lines, note) = app
            .audit_lines(
                &mut conn,
                tenant.id.as_str(),
                to_micros(day_start(from)),
                to_micros(day_start(end)),
            )
            .await?;
        drop(conn);
        let mut files = PackFiles::new();
        files.insert("audit.ndjson".into(), lines.into_bytes());
        files.insert("audit-checkpoint.txt".into(), note.into_bytes());
        files.insert("README.txt".into(), README.as_bytes().to_vec());
        let zip = sign_and_zip(
            app,
            &mut files,
            &format!("disclosure pack {tenant_id} {from} {to}"),
        )?;
        let entry = app
            .entry(actor, "tenant.disclose", &tenant.target())
            .tenant(tenant.id.as_str())
            .details(json!({
                "from": from.to_string(),
                "to": to.to_string(),
                "pack_sha256": companyos_ledger::hash::sha256(&zip).to_hex(),
            }));
        let tx = app.db().begin().await?;
        app.finish(tx, entry, Ok(zip)).await
    }
}
