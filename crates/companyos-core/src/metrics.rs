//! Prometheus counters of the service layer, with per-tenant labels for usage (LIFE-1
//! observability). Rendered as text exposition by `GET /metrics`. The number of label sets is
//! bounded so a flood of tenants or routes cannot grow memory without limit.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Upper bound on distinct label sets per metric family.
pub const LABEL_SETS_MAX: usize = 10_000;

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<&'static str, BTreeMap<Labels, u64>>>,
}

const HELP: &[(&str, &str)] = &[
    (
        "companyos_http_requests_total",
        "HTTP requests by route and status",
    ),
    (
        "companyos_authorization_decisions_total",
        "Cedar authorization decisions",
    ),
    (
        "companyos_usage_events_total",
        "Usage events by tenant and ingestion status",
    ),
    (
        "companyos_ingest_commits_total",
        "Group commits of the ingestion writer",
    ),
    (
        "companyos_dedupe_merges_total",
        "Merges of SQLite's in-memory dedupe tail into the key index",
    ),
    (
        "companyos_dedupe_merged_rows_total",
        "Event keys merged into SQLite's dedupe key index",
    ),
    (
        "companyos_dedupe_merge_milliseconds_total",
        "Time spent merging SQLite's dedupe tail",
    ),
    (
        "companyos_lifecycle_transitions_total",
        "Tenant lifecycle transitions by action",
    ),
    (
        "companyos_jobs_runs_total",
        "Background job runs by job and outcome",
    ),
];

impl Metrics {
    pub fn increment(&self, name: &'static str, labels: Labels, by: u64) {
        let Ok(mut counters) = self.counters.lock() else {
            return;
        };
        let family = counters.entry(name).or_default();
        if family.len() >= LABEL_SETS_MAX && !family.contains_key(&labels) {
            return;
        }
        *family.entry(labels).or_default() += by;
    }

    /// The sum of a counter over all its label sets (0 when never incremented).
    pub fn total(&self, name: &str) -> u64 {
        let Ok(counters) = self.counters.lock() else {
            return 0;
        };
        counters.get(name).map_or(0, |family| family.values().sum())
    }

    pub fn authorization(&self, allowed: bool) {
        let decision = if allowed { "allow" } else { "deny" };
        self.increment(
            "companyos_authorization_decisions_total",
            vec![("decision", decision.to_owned())],
            1,
        );
    }

    pub fn http_request(&self, route: &str, status: u16) {
        self.increment(
            "companyos_http_requests_total",
            vec![("route", route.to_owned()), ("status", status.to_string())],
            1,
        );
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let Ok(counters) = self.counters.lock() else {
            return out;
        };
        for (name, family) in counters.iter() {
            let help = HELP
                .iter()
                .find(|(n, _)| n == name)
                .map_or("CompanyOS counter", |(_, h)| h);
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (labels, value) in family {
                let rendered: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                if rendered.is_empty() {
                    let _ = writeln!(out, "{name} {value}");
                } else {
                    let _ = writeln!(out, "{name}{{{}}} {value}", rendered.join(","));
                }
            }
        }
        out
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
