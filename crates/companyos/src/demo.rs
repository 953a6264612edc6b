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
use companyos_domain::time_util::{format_day, format_rfc3339};
use companyos_sdk::{EventBuilder, SourceKey};
use reqwest::Method;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime, Time};

use crate::client::ApiClient;

mod billing;
mod statements;

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

async fn game_day(demo: &mut Demo) -> anyhow::Result<String> {
    let clock = demo.clock.clone();
    let olga = demo.operator("olga", "operator").await?;
    let anna = demo.operator("anna", "approver").await?;
    let meter = demo.operator("meter", "ingest").await?;
    let audrey = demo.operator("audrey", "auditor").await?;

    // Metering declarations (MET-4); `search` stays undeclared to show the warn gate.
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
        meter
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
    let mut keys = Vec::new();
    for (id, service) in sources {
        let key = SourceKey::generate(id);
        meter
            .call(
                Method::POST,
                "/v1/sources",
                Some(&json!({"id": id, "service": service, "public_key": key.public_key_base64()})),
            )
            .await?;
        keys.push((service, key));
    }
    demo.log.step(
        &clock,
        "sources registered",
        "`api-gw-1` (api) and `storage-agent-1` (storage) with Ed25519 keys",
    );

    // LIFE-1: provisioning with dossiers.
    let mut dossiers = Vec::new();
    let mut tenant_keys = Vec::new();
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
        let (status, body) = olga
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
        dossiers.push(dossier);
        tenant_keys.push((id, body["api_key"].as_str().context("api key")?.to_owned()));
    }
    let (status, _) = olga
        .call(
            Method::POST,
            "/v1/tenants/acme/regions",
            Some(&json!({"add": ["us-east-1"]})),
        )
        .await
        .or_else(|e| {
            if e.to_string().contains("403") {
                Ok((403, Value::Null))
            } else {
                Err(e)
            }
        })?;
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

    // MET-1..3: seven days of traffic.
    let mut totals = json!({});
    let mut seqs: std::collections::BTreeMap<(String, String), u64> =
        std::collections::BTreeMap::new();
    let first_day = clock.now().date();
    for day_index in 0..DAYS {
        let day = first_day + Duration::days(day_index);
        clock.set(day.with_time(Time::from_hms(23, 30, 0)?).assume_utc());
        let mut batch = Vec::new();
        for (tenant, _) in &tenant_keys {
            let tenant_start = batch.len();
            let volume = if *tenant == "acme" { 240 } else { 160 };
            for n in 0..volume {
                let at = day
                    .with_time(Time::from_hms(
                        u8::try_from(demo.rng.below(23))?,
                        u8::try_from(demo.rng.below(60))?,
                        u8::try_from(demo.rng.below(60))?,
                    )?)
                    .assume_utc();
                let pick = demo.rng.below(10);
                let (service, metric, unit, quantity) = match pick {
                    0..=5 => (
                        "api",
                        "requests",
                        "request",
                        format!("{}", 1 + demo.rng.below(50)),
                    ),
                    6..=7 => (
                        "storage",
                        "gb_hours",
                        "GiB-hour",
                        format!("{}.{:02}", demo.rng.below(20), demo.rng.below(100)),
                    ),
                    8 => (
                        "compute",
                        "vcpu_seconds",
                        "vCPU-second",
                        format!("{}", 10 + demo.rng.below(600)),
                    ),
                    _ => (
                        "search",
                        "queries",
                        "query",
                        format!("{}", 1 + demo.rng.below(5)),
                    ),
                };
                let event_id = format!("{tenant}-{}-{n}", format_day(day));
                let mut builder = EventBuilder::new(tenant, service, metric, &quantity, unit)
                    .event_id(&event_id)
                    .timestamp(at)
                    .request_id(&format!("req-{event_id}"));
                let signer = keys.iter().find(|(s, _)| *s == service).map(|(_, k)| k);
                let event = match signer {
                    Some(key) => {
                        let counter = seqs
                            .entry((key.id().to_owned(), (*tenant).to_owned()))
                            .or_insert(0);
                        *counter += 1;
                        // A source loses a few events: the gaps are what reconciliation reports.
                        if demo.rng.below(200) == 0 {
                            *counter += 1;
                        }
                        builder = builder.source(key.id(), *counter);
                        builder.sign(key)?.into_value()
                    }
                    None => builder.build()?.into_value(),
                };
                batch.push(event.clone());
                // Retries of a flaky network: about 3% of events are sent twice.
                if demo.rng.below(33) == 0 {
                    batch.push(event);
                }
            }
            // A conflict: the same event id with other content.
            let mut conflict = batch[tenant_start + (batch.len() - tenant_start) / 2].clone();
            conflict["quantity"] = json!("999");
            conflict.as_object_mut().map(|o| o.remove("digest"));
            conflict
                .as_object_mut()
                .map(|o| o.remove("source_signature"));
            conflict.as_object_mut().map(|o| o.remove("source"));
            conflict.as_object_mut().map(|o| o.remove("source_seq"));
            batch.push(conflict);
            // Invalid events, kept with their reasons for reconciliation.
            batch.push(json!({"event_id": format!("{tenant}-bad-{day_index}-1"), "tenant_id": tenant, "service": "api", "metric": "requests", "quantity": "-4", "unit": "request", "timestamp": format_rfc3339(day.midnight().assume_utc() + Duration::hours(12)), "request_id": "r"}));
            batch.push(json!({"event_id": format!("{tenant}-bad-{day_index}-2"), "tenant_id": tenant, "service": "api", "metric": "Requests!", "quantity": "1", "unit": "request", "timestamp": format_rfc3339(day.midnight().assume_utc() + Duration::hours(13)), "request_id": "r"}));
        }
        // Late arrivals: on the fifth day, events from three days before show up.
        if day_index == 4 {
            for n in 0..5 {
                let at = (day - Duration::days(3))
                    .with_time(Time::from_hms(10, n, 0)?)
                    .assume_utc();
                batch.push(
                    EventBuilder::new("acme", "api", "requests", "7", "request")
                        .event_id(&format!("acme-late-{n}"))
                        .timestamp(at)
                        .request_id("late")
                        .build()?
                        .into_value(),
                );
            }
        }
        let mut day_totals =
            json!({"accepted": 0, "duplicates": 0, "late": 0, "rejected": 0, "conflicts": 0});
        for chunk in batch.chunks(500) {
            let (_, body) = meter
                .call(Method::POST, "/v1/events", Some(&json!(chunk)))
                .await?;
            for key in ["accepted", "duplicates", "late", "rejected", "conflicts"] {
                day_totals[key] =
                    json!(day_totals[key].as_u64().unwrap_or(0) + body[key].as_u64().unwrap_or(0));
                totals[key] =
                    json!(totals[key].as_u64().unwrap_or(0) + body[key].as_u64().unwrap_or(0));
            }
        }
        demo.app.run_jobs_once().await;
        demo.log.step(
            &clock,
            "usage ingested",
            &format!("day {}: {day_totals}", format_day(day)),
        );
    }
    // Close every day, then the evidence of metering (MET-3, issue 5).
    clock.set(clock.now() + Duration::days(3));
    demo.app.run_jobs_once().await;
    let from = format_day(first_day);
    let to = format_day(first_day + Duration::days(DAYS - 1));
    let metering_dir = demo.out.join("metering");
    std::fs::create_dir_all(&metering_dir)?;
    let mut integrity = Vec::new();
    for (tenant, _) in &tenant_keys {
        for (kind, path) in [
            ("usage-daily", "usage/daily"),
            ("reconciliation", "reconciliation"),
        ] {
            let (_, json_body) = audrey
                .call_raw(
                    Method::GET,
                    &format!("/v1/tenants/{tenant}/{path}?from={from}&to={to}"),
                    None,
                )
                .await?;
            let (_, csv_body) = audrey
                .call_raw(
                    Method::GET,
                    &format!("/v1/tenants/{tenant}/{path}?from={from}&to={to}&format=csv"),
                    None,
                )
                .await?;
            let pretty: Value = serde_json::from_str(&json_body)?;
            std::fs::write(
                metering_dir.join(format!("{tenant}-{kind}.json")),
                serde_json::to_string_pretty(&pretty)?,
            )?;
            std::fs::write(metering_dir.join(format!("{tenant}-{kind}.csv")), csv_body)?;
        }
        let (_, body) = audrey
            .call(
                Method::POST,
                &format!("/v1/tenants/{tenant}/integrity-report"),
                Some(&json!({"from": from, "to": to})),
            )
            .await?;
        let evidence = body["evidence"]["id"]
            .as_str()
            .context("integrity evidence")?
            .to_owned();
        let file = demo.save_evidence(&evidence).await?;
        demo.log.step(
            &clock,
            "integrity report",
            &format!(
                "`{tenant}` {from}..{to}: **{}**, missing ratio {} → {file}",
                body["report"]["result"],
                body["report"]["checks"]["missing_ratio_below_target"]["missing_ratio"]
            ),
        );
        integrity.push((
            tenant.to_string(),
            evidence,
            body["report"]["result"].clone(),
        ));
    }
    demo.log
        .step(&clock, "metering totals", &totals.to_string());

    // LIFE-2: suspend and reactivate.
    let acme_key = &tenant_keys[0].1;
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
    let after = match acme.call_raw(Method::GET, "/v1/authz/check", None).await {
        Ok((s, _)) => s,
        Err(e) => {
            if e.to_string().contains("403") {
                403
            } else {
                0
            }
        }
    };
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

    // Statement packs of the seed's tenants (issue 17), before the drill below purges them.
    let first_day = demo.first_day;
    statements::statement_packs(demo, &statements::SEED_TENANTS, first_day).await?;

    // LIFE-3: delete with approval, restore, delete again; purge (explicit and timed).
    let mut certificates = Vec::new();
    for tenant in ["globex", "acme"] {
        let (status, body) = olga
            .call(
                Method::POST,
                &format!("/v1/tenants/{tenant}/delete"),
                Some(&json!({"reason": "game day: contract ended", "confirm": tenant})),
            )
            .await?;
        let approval = body["approval"]["id"]
            .as_str()
            .context("approval")?
            .to_owned();
        demo.log.step(
            &clock,
            "delete requested",
            &format!(
                "`{tenant}` → {status}, approval `{approval}`; warnings: {}",
                body["warnings"]
            ),
        );
        let refused = olga
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
        let (_, body) = anna
            .call(
                Method::POST,
                &format!("/v1/approvals/{approval}/approve"),
                Some(&json!({"comment": "verified with finance"})),
            )
            .await?;
        demo.log.step(
            &clock,
            "delete approved",
            &format!("by anna; `{tenant}` is now {}", body["tenant"]["status"]),
        );
    }
    olga.call(
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
    let (_, body) = olga
        .call(
            Method::POST,
            "/v1/tenants/acme/delete",
            Some(&json!({"reason": "game day: final", "confirm": "acme"})),
        )
        .await?;
    let approval = body["approval"]["id"]
        .as_str()
        .context("approval")?
        .to_owned();
    anna.call(
        Method::POST,
        &format!("/v1/approvals/{approval}/approve"),
        Some(&json!({"comment": "final"})),
    )
    .await?;
    let (_, body) = olga
        .call(
            Method::POST,
            "/v1/tenants/globex/purge",
            Some(&json!({"reason": "game day: purge drill", "confirm": "globex"})),
        )
        .await?;
    let approval = body["approval"]["id"]
        .as_str()
        .context("approval")?
        .to_owned();
    demo.log.step(
        &clock,
        "purge requested",
        &format!("`globex`; warnings: {}", body["warnings"]),
    );
    let (_, body) = anna
        .call(
            Method::POST,
            &format!("/v1/approvals/{approval}/approve"),
            Some(&json!({"comment": "irreversible, confirmed"})),
        )
        .await?;
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
    certificates.push(certificate);
    clock.set(clock.now() + Duration::days(31));
    let purged = demo.app.purge_due_tenants().await?;
    let (_, acme_row) = olga.call(Method::GET, "/v1/tenants/acme", None).await?;
    let (_, listing) = audrey
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
        certificates.push(id);
    }
    let (status, _) = olga
        .call(
            Method::POST,
            "/v1/tenants",
            Some(&json!({"id": "globex", "name": "Globex again"})),
        )
        .await
        .or_else(|e| {
            if e.to_string().contains("409") {
                Ok((409, Value::Null))
            } else {
                Err(e)
            }
        })?;
    demo.log.step(
        &clock,
        "id reuse refused",
        &format!("creating `globex` again answered {status}"),
    );

    // Plans, entitlements and quotas (issue 16), on a tenant of their own.
    billing::billing_day(demo).await?;

    // Monthly statements and packs (issue 17): initech's pack, every tenant's disclosure pack.
    statements::statements_day(demo, first_day).await?;

    // Evidence of it all: the ledgers and the audit log verify; an audit excerpt.
    let ledger_problems = demo.app.verify_ledgers(None).await?;
    let audit_problems = demo.app.verify_audit().await?;
    demo.log.step(
        &clock,
        "verification",
        &format!(
            "ledger problems: {}, audit problems: {}",
            ledger_problems.len(),
            audit_problems.len()
        ),
    );
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
    let (_, audit_jsonl) = audrey
        .call_raw(Method::GET, "/v1/audit?format=jsonl", None)
        .await?;
    std::fs::write(demo.out.join("audit.jsonl"), &audit_jsonl)?;
    let (_, audit_csv) = audrey
        .call_raw(Method::GET, "/v1/audit?format=csv", None)
        .await?;
    std::fs::write(demo.out.join("audit.csv"), audit_csv)?;

    let mut summary = String::new();
    writeln!(summary, "## Evidence\n")?;
    writeln!(summary, "- Dossiers: {}", dossiers.join(", "))?;
    for (tenant, id, result) in &integrity {
        writeln!(summary, "- Integrity report of {tenant}: {id} ({result})")?;
    }
    writeln!(
        summary,
        "- Deletion certificates: {}",
        certificates.join(", ")
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
    ensure!(
        ledger_problems.is_empty() && audit_problems.is_empty(),
        "verification found problems"
    );
    Ok(summary)
}
