//! The demo's statement part (issue 17): the statement packs of the two seed tenants for the
//! sample month (the month the seed's traffic starts in), taken before the lifecycle drill
//! purges them, and at the end the month-close job, initech's pack and the disclosure packs of
//! every demo tenant; each verified offline with keys fetched from the server.

use anyhow::{Context as _, ensure};
use companyos_core::statements::verify::{TrustedKeys, verify_disclosure, verify_pack};
use companyos_domain::time_util::format_day;
use reqwest::Method;

use super::Demo;

/// The seed's tenants: their packs are written before the drill purges their events.
pub(super) const SEED_TENANTS: [&str; 2] = ["acme", "globex"];
const DISCLOSURE_TENANTS: [&str; 3] = ["acme", "globex", "initech"];

async fn trusted_keys(demo: &Demo) -> anyhow::Result<TrustedKeys> {
    let (_, public_key) = demo
        .admin
        .call_raw(Method::GET, "/v1/evidence/public-key", None)
        .await?;
    let (_, verifier) = demo
        .admin
        .call_raw(Method::GET, "/v1/ledger/verifier-key", None)
        .await?;
    Ok(TrustedKeys {
        minisign_public_key: public_key.trim().to_owned(),
        note_verifier: companyos_ledger::note::NoteVerifier::parse(verifier.trim())
            .map_err(|e| anyhow::anyhow!("verifier key: {e}"))?,
    })
}

/// Writes and verifies the statement packs of `tenants` for the sample month (or a tenant's
/// first month, when it was created later) under `statements/`.
pub(super) async fn statement_packs(
    demo: &mut Demo,
    tenants: &[&str],
    first_day: time::Date,
) -> anyhow::Result<()> {
    let clock = demo.clock.clone();
    for job in ["checkpoints", "day-close", "month-close"] {
        demo.app.jobs().run_job(job).await?;
    }
    let dir = demo.out.join("statements");
    std::fs::create_dir_all(&dir)?;
    let keys = trusted_keys(demo).await?;
    let month = format!("{:04}-{:02}", first_day.year(), first_day.month() as u8);
    for tenant in tenants {
        let (_, list) = demo
            .admin
            .call(
                Method::GET,
                &format!("/v1/tenants/{tenant}/statements"),
                None,
            )
            .await?;
        let sample = list
            .as_array()
            .and_then(|months| {
                months
                    .iter()
                    .filter_map(|m| m["month"].as_str())
                    .filter(|m| *m >= month.as_str())
                    .min()
                    .map(str::to_owned)
            })
            .context("a statement month")?;
        let pack = demo
            .admin
            .get_bytes(&format!("/v1/tenants/{tenant}/statements/{sample}/pack"))
            .await?;
        let file = format!("statement-pack-{tenant}-{sample}.zip");
        std::fs::write(dir.join(&file), &pack)?;
        let summary = verify_pack(&pack, &keys).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
        demo.log.step(
            &clock,
            "statement pack verified",
            &format!(
                "{tenant} {sample} ({}): total {} {}, {} events, {} audit records → statements/{file}",
                summary.status, summary.total, summary.currency, summary.events, summary.audit_records
            ),
        );
    }
    Ok(())
}

/// Initech's statement pack and every demo tenant's disclosure pack, at the end of the day.
pub(super) async fn statements_day(demo: &mut Demo, first_day: time::Date) -> anyhow::Result<()> {
    statement_packs(demo, &["initech"], first_day).await?;
    let clock = demo.clock.clone();
    let dir = demo.out.join("statements");
    let keys = trusted_keys(demo).await?;
    let today = clock_day(demo);
    for tenant in DISCLOSURE_TENANTS {
        let path = format!(
            "/v1/tenants/{tenant}/disclosure?from={}&to={}",
            format_day(first_day),
            format_day(today)
        );
        let pack = demo.admin.get_bytes(&path).await?;
        let file = format!("disclosure-{tenant}.zip");
        std::fs::write(dir.join(&file), &pack)?;
        let summary =
            verify_disclosure(&pack, &keys).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
        ensure!(summary.audit_records > 0, "{file} has no audit records");
        demo.log.step(
            &clock,
            "disclosure pack verified",
            &format!(
                "{tenant}: {} audit records → statements/{file}",
                summary.audit_records
            ),
        );
    }
    Ok(())
}

fn clock_day(demo: &Demo) -> time::Date {
    use companyos_core::clock::Clock as _;
    demo.clock.now().date()
}
