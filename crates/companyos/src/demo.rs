//! `companyos demo`: the sprint's game day on a fresh embedded store, through the same HTTP API
//! operators use. Two tenants are provisioned, metered for 7 days with realistic traffic
//! (several services, signed and unsigned events, duplicates, conflicts, late events, gaps,
//! invalid events), given daily rollups and signed integrity reports, then suspended,
//! reactivated, deleted (with approvals) and purged. Everything it produces goes into a folder:
//! the lifecycle log, the metering evidence and every signed artifact with its `.minisig`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail, ensure};
use companyos_core::clock::{Clock as _, ManualClock};
use companyos_core::{App, Settings};
use companyos_domain::time_util::format_rfc3339;
use companyos_sdk::SourceKey;
use reqwest::Method;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime, Time};

use crate::client::ApiClient;

mod billing;
mod lifecycle;
mod statements;
mod traffic;

/// Days of synthetic traffic.
const DAYS: i64 = 7;

/// A small deterministic generator, so the demo's numbers are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The lifecycle log: timestamped steps, written as Markdown.
struct Log {
    text: String,
    started: Instant,
}

impl Log {
    fn step(&mut self, clock: &ManualClock, title: &str, detail: &str) {
        let line = format!(
            "- `{}` (+{:.3}s) **{title}** {detail}\n",
            format_rfc3339(clock.now()),
            self.started.elapsed().as_secs_f64()
        );
        print!("{line}");
        self.text.push_str(&line);
    }
}

struct Demo {
    out: PathBuf,
    app: App,
    clock: Arc<ManualClock>,
    admin: ApiClient,
    url: String,
    log: Log,
    rng: Rng,
    /// The first day of the seed's traffic.
    first_day: time::Date,
}

impl Demo {
    fn client(&self, token: &str) -> anyhow::Result<ApiClient> {
        ApiClient::new(&self.url, Some(token.to_owned()))
    }

    async fn operator(&mut self, name: &str, role: &str) -> anyhow::Result<ApiClient> {
        let (_, body) = self
            .admin
            .call(
                Method::POST,
                "/v1/operators",
                Some(&json!({"name": name, "role": role})),
            )
            .await?;
        let token = body["token"].as_str().context("operator token")?.to_owned();
        self.log.step(
            &self.clock,
            "operator created",
            &format!("`{name}` with role `{role}`"),
        );
        self.client(&token)
    }

    async fn save_evidence(&mut self, id: &str) -> anyhow::Result<String> {
        let (_, listing) = self.admin.call(Method::GET, "/v1/evidence", None).await?;
        let name = listing
            .as_array()
            .and_then(|items| items.iter().find(|i| i["id"] == json!(id)))
            .and_then(|i| i["file_name"].as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{id}.json"));
        let (_, bytes) = self
            .admin
            .call_raw(Method::GET, &format!("/v1/evidence/{id}"), None)
            .await?;
        let (_, signature) = self
            .admin
            .call_raw(Method::GET, &format!("/v1/evidence/{id}/signature"), None)
            .await?;
        let dir = self.out.join("evidence");
        std::fs::create_dir_all(&dir)?;
        let file = format!("{id}-{name}");
        std::fs::write(dir.join(&file), bytes)?;
        std::fs::write(dir.join(format!("{file}.minisig")), signature)?;
        Ok(format!("evidence/{file}"))
    }
}

/// Runs the demo into `out` (which must not hold a previous demo's store).
pub async fn run(out: &Path) -> anyhow::Result<u8> {
    let store = out.join("store");
    if store.exists() {
        bail!(
            "{} already holds a demo store; pass another --out or remove it",
            store.display()
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("failed to create {}", out.display()))?;
    let today = OffsetDateTime::now_utc().date();
    let first_day = today - Duration::days(DAYS + 1);
    let clock = Arc::new(ManualClock::new(
        first_day.with_time(Time::from_hms(8, 0, 0)?).assume_utc(),
    ));
    let mut settings = Settings::new(store.clone());
    settings.log_name = "demo.companyos.local".to_owned();
    let (app, report) = App::open(settings, clock.clone()).await?;
    let admin_token = report
        .admin_token
        .context("a fresh store creates the admin")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server_state = companyos_server::AppState {
        app: app.clone(),
        body_bytes_max: companyos_server::BODY_BYTES_MAX_DEFAULT,
    };
    let server = tokio::spawn(async move {
        companyos_server::serve(server_state, listener, async {
            let _ = stopped.await;
        })
        .await
    });
    let mut demo = Demo {
        out: out.to_owned(),
        app,
        clock,
        admin: ApiClient::new(&url, Some(admin_token))?,
        url,
        log: Log {
            text: String::new(),
            started: Instant::now(),
        },
        rng: Rng(0x5eed_c0de_2026_0302),
        first_day,
    };
    let result = game_day(&mut demo).await;
    let _ = stop.send(());
    let _ = server.await;
    demo.app.db().close().await;
    let summary = result?;
    let mut log = String::new();
    writeln!(log, "# CompanyOS game day\n")?;
    writeln!(
        log,
        "Generated by `companyos demo` on a fresh embedded store ({}). Times are the service clock \
         (moved through {} days of traffic) and, in brackets, the seconds since the demo started.\n",
        store.display(),
        DAYS
    )?;
    log.push_str(&demo.log.text);
    log.push('\n');
    log.push_str(&summary);
    std::fs::write(out.join("lifecycle-log.md"), log)?;
    println!("\nwrote {}", out.join("lifecycle-log.md").display());
    Ok(0)
}

/// What the game day's sections pass on to the later ones: the operators, the seed tenants'
/// keys and the evidence the summary lists.
struct GameDay {
    olga: ApiClient,
    anna: ApiClient,
    meter: ApiClient,
    audrey: ApiClient,
    /// The signing key of each registered source, by the service it meters.
    source_keys: Vec<(&'static str, SourceKey)>,
    /// The seed tenants and their API keys, in the order they were provisioned.
    tenant_keys: Vec<(&'static str, String)>,
    dossiers: Vec<String>,
    /// Each seed tenant's integrity report: the tenant, the evidence id and the result.
    integrity: Vec<(String, String, Value)>,
    certificates: Vec<String>,
}

/// The game day, section by section; returns the summary that ends the lifecycle log.
async fn game_day(demo: &mut Demo) -> anyhow::Result<String> {
    let mut game = GameDay {
        olga: demo.operator("olga", "operator").await?,
        anna: demo.operator("anna", "approver").await?,
        meter: demo.operator("meter", "ingest").await?,
        audrey: demo.operator("audrey", "auditor").await?,
        source_keys: Vec::new(),
        tenant_keys: Vec::new(),
        dossiers: Vec::new(),
        integrity: Vec::new(),
        certificates: Vec::new(),
    };
    declarations(demo, &mut game).await?;
    provisioning(demo, &mut game).await?;
    placement(demo, &game).await?;
    let traffic = traffic::traffic(demo, &game).await?;
    traffic::day_close(demo, &mut game, &traffic).await?;
    lifecycle::suspend_and_reactivate(demo, &game).await?;
    // Statement packs of the seed's tenants (issue 17), before the drill below purges them.
    let first_day = demo.first_day;
    statements::statement_packs(demo, &statements::SEED_TENANTS, first_day).await?;
    lifecycle::deletion_drill(demo, &mut game).await?;
    // Plans, entitlements and quotas (issue 16), on a tenant of their own.
    billing::billing_day(demo).await?;
    // Monthly statements and packs (issue 17): initech's pack, every tenant's disclosure pack.
    statements::statements_day(demo, first_day).await?;
    evidence(demo, &game).await
}

/// Metering declarations (MET-4), with `search` left undeclared to show the warn gate, and the
/// sources that sign their services' events.
async fn declarations(demo: &mut Demo, game: &mut GameDay) -> anyhow::Result<()> {
    let clock = demo.clock.clone();
    for (service, metrics) in [
        (
            "api",
            json!([{"name": "requests", "unit": "request", "aggregation": "sum", "description": "HTTP requests served"}]),
        ),
        (
            "storage",
            json!([{"name": "gb_hours", "unit": "GiB-hour", "aggregation": "sum", "description": "GiB stored for one hour"}]),
        ),
        (
            "compute",
            json!([{"name": "vcpu_seconds", "unit": "vCPU-second", "aggregation": "sum", "description": "vCPU time used"}]),
        ),
    ] {
        game.meter
            .call(
                Method::PUT,
                &format!("/v1/services/{service}/metering"),
                Some(&json!({"service": service, "metrics": metrics})),
            )
            .await?;
    }
    demo.log.step(
        &clock,
        "metering declared",
        "services `api`, `storage`, `compute` (`search` left undeclared)",
    );
    let sources = [("api-gw-1", "api"), ("storage-agent-1", "storage")];
    for (id, service) in sources {
        let key = SourceKey::generate(id);
        game.meter
            .call(
                Method::POST,
                "/v1/sources",
                Some(&json!({"id": id, "service": service, "public_key": key.public_key_base64()})),
            )
            .await?;
        game.source_keys.push((service, key));
    }
    demo.log.step(
        &clock,
        "sources registered",
        "`api-gw-1` (api) and `storage-agent-1` (storage) with Ed25519 keys",
    );
    Ok(())
}

/// LIFE-1: provisioning with dossiers.
async fn provisioning(demo: &mut Demo, game: &mut GameDay) -> anyhow::Result<()> {
    let clock = demo.clock.clone();
    for (id, name, plan, home, allowed) in [
        (
            "acme",
            "Acme Corporation",
            "standard",
            "eu-west-1",
            json!(["eu-west-1", "eu-central-1"]),
        ),
        (
            "globex",
            "Globex Inc",
            "enterprise",
            "us-east-1",
            json!(["us-east-1", "us-west-2"]),
        ),
    ] {
        let started = Instant::now();
        let (status, body) = game
            .olga
            .call(Method::POST, "/v1/tenants", Some(&json!({"id": id, "name": name, "plan": plan, "home_region": home, "allowed_regions": allowed})))
            .await?;
        ensure!(status == 201, "tenant {id} was not created");
        let dossier = body["dossier_evidence_id"]
            .as_str()
            .context("dossier")?
            .to_owned();
        let file = demo.save_evidence(&dossier).await?;
        demo.log.step(
            &clock,
            "tenant provisioned",
            &format!(
                "`{id}` ({plan}, home {home}) in {:.1} ms, steps: {}; dossier `{dossier}` → {file}",
                started.elapsed().as_secs_f64() * 1000.0,
                body["provisioning"]["steps"].as_array().map_or(0, Vec::len)
            ),
        );
        game.dossiers.push(dossier);
        game.tenant_keys
            .push((id, body["api_key"].as_str().context("api key")?.to_owned()));
    }
    Ok(())
}

/// The provisioned tenants' regions (residency refuses a region outside the allowed ones) and
/// workloads.
async fn placement(demo: &mut Demo, game: &GameDay) -> anyhow::Result<()> {
    let clock = demo.clock.clone();
    let olga = &game.olga;
    let status = status_or_refusal(
        olga.call(
            Method::POST,
            "/v1/tenants/acme/regions",
            Some(&json!({"add": ["us-east-1"]})),
        )
        .await,
        403,
    )?;
    demo.log.step(
        &clock,
        "residency enforced",
        &format!("adding us-east-1 to acme (allowed: eu-*) answered {status}"),
    );
    olga.call(
        Method::POST,
        "/v1/tenants/acme/regions",
        Some(&json!({"add": ["eu-central-1"]})),
    )
    .await?;
    for (tenant, workload, replicas) in [
        ("acme", "web", 3),
        ("acme", "worker", 2),
        ("globex", "web", 4),
    ] {
        olga.call(
            Method::PUT,
            &format!("/v1/tenants/{tenant}/workloads/{workload}"),
            Some(&json!({"replicas": replicas})),
        )
        .await?;
    }
    demo.log.step(
        &clock,
        "workloads registered",
        "acme: web ×3, worker ×2; globex: web ×4",
    );
    Ok(())
}

/// The status of an answer, or `refused` when the call failed with that status: the refusals
/// the demo shows are answers, not failures.
fn status_or_refusal<T>(
    answer: Result<(u16, T), crate::client::ClientError>,
    refused: u16,
) -> Result<u16, crate::client::ClientError> {
    match answer {
        Ok((status, _)) => Ok(status),
        Err(e) if e.to_string().contains(&refused.to_string()) => Ok(refused),
        Err(e) => Err(e),
    }
}

/// Evidence of it all: the ledgers and the audit log verify; the keys that check the
/// artifacts, the full audit log, and the summary with an audit excerpt.
async fn evidence(demo: &mut Demo, game: &GameDay) -> anyhow::Result<String> {
    let ledger_problems = demo.app.ledger().verify(None).await?;
    let audit_problems = demo.app.audit().verify().await?;
    demo.log.step(
        &demo.clock,
        "verification",
        &format!(
            "ledger problems: {}, audit problems: {}",
            ledger_problems.len(),
            audit_problems.len()
        ),
    );
    write_verification_keys(demo).await?;
    let (_, audit_jsonl) = game
        .audrey
        .call_raw(Method::GET, "/v1/audit?format=jsonl", None)
        .await?;
    std::fs::write(demo.out.join("audit.jsonl"), &audit_jsonl)?;
    let (_, audit_csv) = game
        .audrey
        .call_raw(Method::GET, "/v1/audit?format=csv", None)
        .await?;
    std::fs::write(demo.out.join("audit.csv"), audit_csv)?;
    let mut summary = evidence_list(game)?;
    audit_excerpt(&mut summary, &audit_jsonl)?;
    ensure!(
        ledger_problems.is_empty() && audit_problems.is_empty(),
        "verification found problems"
    );
    Ok(summary)
}

/// The evidence signer's public key and the ledgers' verifier key, as files.
async fn write_verification_keys(demo: &Demo) -> anyhow::Result<()> {
    let (_, public_key) = demo
        .admin
        .call_raw(Method::GET, "/v1/evidence/public-key", None)
        .await?;
    // minisign's public key file format (`minisign -V -p FILE` reads it): an untrusted comment
    // line, then the base64 key.
    std::fs::write(
        demo.out.join("evidence/minisign.pub"),
        format!(
            "untrusted comment: minisign public key of the CompanyOS evidence signer\n{}\n",
            public_key.trim()
        ),
    )?;
    let (_, verifier) = demo
        .admin
        .call_raw(Method::GET, "/v1/ledger/verifier-key", None)
        .await?;
    std::fs::write(demo.out.join("ledger-verifier-key.txt"), verifier)?;
    Ok(())
}

/// The summary's list of evidence and how to verify it.
fn evidence_list(game: &GameDay) -> anyhow::Result<String> {
    let mut summary = String::new();
    writeln!(summary, "## Evidence\n")?;
    writeln!(summary, "- Dossiers: {}", game.dossiers.join(", "))?;
    for (tenant, id, result) in &game.integrity {
        writeln!(summary, "- Integrity report of {tenant}: {id} ({result})")?;
    }
    writeln!(
        summary,
        "- Deletion certificates: {}",
        game.certificates.join(", ")
    )?;
    writeln!(
        summary,
        "- Daily rollups and reconciliation (JSON and CSV): `metering/`"
    )?;
    writeln!(summary, "- Full audit log: `audit.jsonl`, `audit.csv`\n")?;
    writeln!(summary, "Verify any artifact without trusting CompanyOS:\n")?;
    writeln!(
        summary,
        "```\nminisign -V -p evidence/minisign.pub -m evidence/<file> -x evidence/<file>.minisig\n```\n"
    )?;
    Ok(summary)
}

/// A table of the audit log's lifecycle actions and denials.
fn audit_excerpt(summary: &mut String, audit_jsonl: &str) -> anyhow::Result<()> {
    writeln!(
        summary,
        "## Audit excerpt (lifecycle actions and denials)\n"
    )?;
    writeln!(
        summary,
        "| time | actor | role | action | target | outcome |"
    )?;
    writeln!(summary, "|---|---|---|---|---|---|")?;
    for line in audit_jsonl.lines() {
        let record: Value = serde_json::from_str(line)?;
        let action = record["action"].as_str().unwrap_or("");
        if action.starts_with("tenant.")
            || action.starts_with("approval.")
            || record["outcome"] != json!("success")
        {
            writeln!(
                summary,
                "| {} | {} | {} | {} | {} | {} |",
                record["occurred_at"].as_str().unwrap_or(""),
                record["actor"].as_str().unwrap_or(""),
                record["role"].as_str().unwrap_or(""),
                action,
                record["target"].as_str().unwrap_or(""),
                record["outcome"].as_str().unwrap_or("")
            )?;
        }
    }
    Ok(())
}
