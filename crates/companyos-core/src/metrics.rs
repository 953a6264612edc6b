//! Prometheus counters of the service layer, with per-tenant labels for usage (LIFE-1
//! observability). Rendered as text exposition by `GET /metrics`. The number of label sets is
//! bounded so a flood of tenants or routes cannot grow memory without limit.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Upper bound on distinct label sets per metric family. Past it, new label sets are counted
/// under one series whose every label value is [`OVERFLOW`], so nothing goes uncounted and a
/// full family shows plainly. Per-tenant labels are given only to tenants that exist.
pub const LABEL_SETS_MAX: usize = 10_000;
/// The label value of the overflow series (never a valid tenant id, route or status).
pub const OVERFLOW: &str = "_overflow";
/// The `tenant` label of events that name no existing tenant (never a valid tenant id).
pub const UNKNOWN_TENANT: &str = "_unknown";

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<&'static str, BTreeMap<Labels, u64>>>,
    /// Gauges (billing): the last value seen, as its exposition text.
    gauges: Mutex<BTreeMap<&'static str, BTreeMap<Labels, String>>>,
}

/// The gauge of a quota's use: usage over allowance in the current period, this node's view.
pub const QUOTA_USED_RATIO: &str = "companyos_quota_used_ratio";

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
        let labels = if family.len() >= LABEL_SETS_MAX && !family.contains_key(&labels) {
            labels
                .into_iter()
                .map(|(key, _)| (key, OVERFLOW.to_owned()))
                .collect()
        } else {
            labels
        };
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

    /// Sets a gauge (bounded like the counters: past [`LABEL_SETS_MAX`] label sets, new ones
    /// are dropped rather than overflowed, since a gauge cannot be summed).
    pub fn set_gauge(&self, name: &'static str, labels: Labels, value: String) {
        let Ok(mut gauges) = self.gauges.lock() else {
            return;
        };
        let family = gauges.entry(name).or_default();
        if family.len() >= LABEL_SETS_MAX && !family.contains_key(&labels) {
            return;
        }
        family.insert(labels, value);
    }

    /// `companyos_quota_used_ratio{tenant,metric}` from a quota's current period.
    pub fn set_quota_ratio(&self, tenant_id: &str, state: &crate::billing::QuotaState) {
        let ratio = (state.percent_used() / rust_decimal::Decimal::ONE_HUNDRED).normalize();
        self.set_gauge(
            QUOTA_USED_RATIO,
            vec![
                ("tenant", tenant_id.to_owned()),
                ("metric", state.quota.metric.as_str().to_owned()),
            ],
            ratio.to_string(),
        );
    }

    fn render_gauges(&self, out: &mut String) {
        let Ok(gauges) = self.gauges.lock() else {
            return;
        };
        for (name, family) in gauges.iter() {
            let _ = writeln!(
                out,
                "# HELP {name} Quota usage over its allowance in the current period"
            );
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (labels, value) in family {
                let rendered: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                let _ = writeln!(out, "{name}{{{}}} {value}", rendered.join(","));
            }
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_gauges(&mut out);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_family_counts_new_label_sets_under_the_overflow_series() {
        let metrics = Metrics::default();
        for i in 0..LABEL_SETS_MAX + 3 {
            metrics.increment("t", vec![("tenant", format!("t{i}"))], 1);
        }
        metrics.increment("t", vec![("tenant", "t0".to_owned())], 1);
        let text = metrics.render();
        assert!(text.contains("t{tenant=\"_overflow\"} 3"), "three new ones");
        assert!(
            text.contains("t{tenant=\"t0\"} 2"),
            "known ones still count"
        );
        assert_eq!(metrics.total("t"), LABEL_SETS_MAX as u64 + 4);
    }
}
