//! The demo's lifecycle part (LIFE-2, LIFE-3): a suspension and reactivation seen through
//! forward auth, then deletions with approvals, a restore, an explicit and a timed purge, and
//! the refusal to give a purged tenant's id again.

use anyhow::Context as _;
use companyos_core::clock::Clock as _;
use reqwest::Method;
use serde_json::{Value, json};
use time::Duration;

use super::{Demo, GameDay, status_or_refusal};
use crate::client::ApiClient;

/// LIFE-2: suspend and reactivate.
pub(super) async fn suspend_and_reactivate(demo: &mut Demo, game: &GameDay) -> anyhow::Result<()> {
    let clock = demo.clock.clone();
    let olga = &game.olga;
    let acme_key = &game.tenant_keys[0].1;
    let acme = demo.client(acme_key)?;
    let before = acme
        .call_raw(Method::GET, "/v1/authz/check", None)
        .await
        .map(|(s, _)| s)
        .unwrap_or(0);
    let (_, body) = olga
        .call(
            Method::POST,
            "/v1/tenants/acme/suspend",
            Some(&json!({"reason": "game day: payment overdue"})),
        )
        .await?;
    let after = status_or_refusal(
        acme.call_raw(Method::GET, "/v1/authz/check", None).await,
        403,
    )
    .unwrap_or(0);
    let (_, workloads) = olga
        .call(Method::GET, "/v1/tenants/acme/workloads", None)
        .await?;
    demo.log.step(
        &clock,
        "acme suspended",
        &format!(
            "status {}; forward auth {before} → {after}; workloads {}",
            body["status"], workloads
        ),
    );
    olga.call(
        Method::POST,
        "/v1/tenants/acme/reactivate",
        Some(&json!({"reason": "game day: paid"})),
    )
    .await?;
    let (_, workloads) = olga
        .call(Method::GET, "/v1/tenants/acme/workloads", None)
        .await?;
    let again = acme
        .call_raw(Method::GET, "/v1/authz/check", None)
        .await
        .map(|(s, _)| s)
        .unwrap_or(0);
    demo.log.step(
        &clock,
        "acme reactivated",
        &format!("forward auth {again}; workloads restored {workloads}"),
    );
    Ok(())
}

/// LIFE-3: delete with approval, restore, delete again; purge (explicit and timed).
pub(super) async fn deletion_drill(demo: &mut Demo, game: &mut GameDay) -> anyhow::Result<()> {
    for tenant in ["globex", "acme"] {
        delete_with_approval(demo, game, tenant).await?;
    }
    restore_and_delete_again(demo, game).await?;
    explicit_purge(demo, game).await?;
    timed_purge(demo, game).await?;
    id_reuse_refused(demo, game).await
}

/// The approval id of a lifecycle answer that needs one.
fn approval_id(body: &Value) -> anyhow::Result<String> {
    Ok(body["approval"]["id"]
        .as_str()
        .context("approval")?
        .to_owned())
}

/// Approves `approval` with a comment; returns the decision's answer.
async fn approve(approver: &ApiClient, approval: &str, comment: &str) -> anyhow::Result<Value> {
    let (_, body) = approver
        .call(
            Method::POST,
            &format!("/v1/approvals/{approval}/approve"),
            Some(&json!({"comment": comment})),
        )
        .await?;
    Ok(body)
}

/// A deletion requested by olga, refused to her own approval, and approved by anna.
async fn delete_with_approval(demo: &mut Demo, game: &GameDay, tenant: &str) -> anyhow::Result<()> {
    let clock = demo.clock.clone();
    let (status, body) = game
        .olga
        .call(
            Method::POST,
            &format!("/v1/tenants/{tenant}/delete"),
            Some(&json!({"reason": "game day: contract ended", "confirm": tenant})),
        )
        .await?;
    let approval = approval_id(&body)?;
    demo.log.step(
        &clock,
        "delete requested",
        &format!(
            "`{tenant}` → {status}, approval `{approval}`; warnings: {}",
            body["warnings"]
        ),
    );
    let refused = game
        .olga
        .call(
            Method::POST,
            &format!("/v1/approvals/{approval}/approve"),
            Some(&json!({})),
        )
        .await
        .is_err();
    demo.log.step(
        &clock,
        "self-approval refused",
        &format!("olga approving her own request refused: {refused}"),
    );
    let body = approve(&game.anna, &approval, "verified with finance").await?;
    demo.log.step(
        &clock,
        "delete approved",
        &format!("by anna; `{tenant}` is now {}", body["tenant"]["status"]),
    );
    Ok(())
}

/// acme restored from its tombstone, then deleted again for good.
async fn restore_and_delete_again(demo: &mut Demo, game: &GameDay) -> anyhow::Result<()> {
    let clock = demo.clock.clone();
    game.olga
        .call(
            Method::POST,
            "/v1/tenants/acme/restore",
            Some(&json!({"reason": "game day: restore drill"})),
        )
        .await?;
    demo.log.step(
        &clock,
        "acme restored",
        "tombstone undone; the tenant is back as it was",
    );
    let (_, body) = game
        .olga
        .call(
            Method::POST,
            "/v1/tenants/acme/delete",
            Some(&json!({"reason": "game day: final", "confirm": "acme"})),
        )
        .await?;
    let approval = approval_id(&body)?;
    approve(&game.anna, &approval, "final").await?;
    Ok(())
}

/// globex purged at once, with approval; its deletion certificate saved.
async fn explicit_purge(demo: &mut Demo, game: &mut GameDay) -> anyhow::Result<()> {
    let clock = demo.clock.clone();
    let (_, body) = game
        .olga
        .call(
            Method::POST,
            "/v1/tenants/globex/purge",
            Some(&json!({"reason": "game day: purge drill", "confirm": "globex"})),
        )
        .await?;
    let approval = approval_id(&body)?;
    demo.log.step(
        &clock,
        "purge requested",
        &format!("`globex`; warnings: {}", body["warnings"]),
    );
    let body = approve(&game.anna, &approval, "irreversible, confirmed").await?;
    let certificate = body["evidence_id"]
        .as_str()
        .context("certificate")?
        .to_owned();
    let file = demo.save_evidence(&certificate).await?;
    demo.log.step(
        &clock,
        "globex purged",
        &format!("deletion certificate `{certificate}` → {file}"),
    );
    game.certificates.push(certificate);
    Ok(())
}

/// A month later, the purge job purges acme past its tombstone; its certificate saved.
async fn timed_purge(demo: &mut Demo, game: &mut GameDay) -> anyhow::Result<()> {
    let clock = demo.clock.clone();
    clock.set(clock.now() + Duration::days(31));
    let purged = demo.app.jobs().purge_due_tenants().await?;
    let (_, acme_row) = game
        .olga
        .call(Method::GET, "/v1/tenants/acme", None)
        .await?;
    let (_, listing) = game
        .audrey
        .call(
            Method::GET,
            "/v1/evidence?tenant_id=acme&kind=deletion-certificate",
            None,
        )
        .await?;
    if let Some(id) = listing
        .as_array()
        .and_then(|l| l.first())
        .and_then(|e| e["id"].as_str())
    {
        let id = id.to_owned();
        let file = demo.save_evidence(&id).await?;
        demo.log.step(&clock, "timed purge", &format!("{purged} tenant(s) past their 30-day tombstone purged; acme is {}; certificate `{id}` → {file}", acme_row["status"]));
        game.certificates.push(id);
    }
    Ok(())
}

/// A purged tenant's id is never given again.
async fn id_reuse_refused(demo: &mut Demo, game: &GameDay) -> anyhow::Result<()> {
    let status = status_or_refusal(
        game.olga
            .call(
                Method::POST,
                "/v1/tenants",
                Some(&json!({"id": "globex", "name": "Globex again"})),
            )
            .await,
        409,
    )?;
    demo.log.step(
        &demo.clock,
        "id reuse refused",
        &format!("creating `globex` again answered {status}"),
    );
    Ok(())
}
