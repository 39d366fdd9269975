//! Metrics as a port-like registry. Counters are kept in-process; gauges about incidents and the
//! outbox are read from the database at scrape time, so several replicas report the same truth.
//!
//! Every label set is bounded here, whatever the caller passes, because several labels come from
//! unauthenticated requests: HTTP methods outside the standard nine are `other`, status codes
//! outside 100-599 are `other`, a source id not registered with [`Metrics::with_sources`] is
//! `unknown`, an outcome outside its fixed list is `other`, and rejection reasons are
//! `&'static str`s named in code. Routes are the router's templates (`unmatched` for the rest).

use crate::domain::State;
use crate::store::Stats;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::BTreeSet;
use std::sync::Mutex;

type Labels = Vec<(String, String)>;

/// Seconds, from half a minute to a day: acknowledgements within minutes, resolutions in hours.
const RESPONSE_BUCKETS: [f64; 12] = [
    30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0,
];

pub struct Metrics {
    registry: Mutex<Registry>,
    commands: Family<Labels, Counter>,
    outbox_delivered: Counter,
    outbox_failures: Family<Labels, Counter>,
    http: Family<Labels, Histogram>,
    alerts: Family<Labels, Counter>,
    incidents: Family<Labels, Gauge>,
    outbox_depth: Family<Labels, Gauge>,
    transactions: Counter,
    transaction_units: Counter,
    jobs_dead: Family<Labels, Counter>,
    webhook_rejections: Family<Labels, Counter>,
    pages: Family<Labels, Counter>,
    mtta: Family<Labels, Histogram>,
    mttr: Family<Labels, Histogram>,
    runs: Family<Labels, Counter>,
    broadcasts_dead: Family<Labels, Counter>,
    /// The configured alert source ids: the only values the `source` labels take (else
    /// `unknown`).
    sources: BTreeSet<String>,
}

/// The HTTP methods that get a label of their own; any other token is `other`.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
];

fn method_label(method: &str) -> &'static str {
    METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

fn status_label(status: u16) -> String {
    if (100..=599).contains(&status) {
        status.to_string()
    } else {
        "other".into()
    }
}

fn one_of(value: &str, accepted: &[&'static str]) -> &'static str {
    accepted
        .iter()
        .find(|a| **a == value)
        .copied()
        .unwrap_or("other")
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("spotter");
        let commands = Family::<Labels, Counter>::default();
        registry.register(
            "commands",
            "Commands executed, by outcome (ok, refused, error)",
            commands.clone(),
        );
        let outbox_delivered = Counter::default();
        registry.register(
            "outbox_delivered",
            "Outbound messages delivered",
            outbox_delivered.clone(),
        );
        let outbox_failures = Family::<Labels, Counter>::default();
        registry.register(
            "outbox_failures",
            "Failed delivery attempts, by outcome (retry, dead, lease_lost)",
            outbox_failures.clone(),
        );
        let http = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ])
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            http.clone(),
        );
        let alerts = Family::<Labels, Counter>::default();
        registry.register(
            "alerts_received",
            "Alerts received, by source and outcome (changed, duplicate)",
            alerts.clone(),
        );
        let incidents = Family::<Labels, Gauge>::default();
        registry.register(
            "incidents",
            "Incidents by level and state",
            incidents.clone(),
        );
        let outbox_depth = Family::<Labels, Gauge>::default();
        registry.register(
            "outbox_messages",
            "Outbox messages not delivered, by state (pending, failed)",
            outbox_depth.clone(),
        );
        let transactions = Counter::default();
        registry.register(
            "store_transactions",
            "Write transactions of this replica's group-commit writer",
            transactions.clone(),
        );
        let transaction_units = Counter::default();
        registry.register(
            "store_transaction_units",
            "Requests' writes those transactions held (units / transactions: requests per fsync)",
            transaction_units.clone(),
        );
        let jobs_dead = Family::<Labels, Counter>::default();
        registry.register(
            "jobs_dead_lettered",
            "Scheduled jobs given up after their attempt limit, by kind",
            jobs_dead.clone(),
        );
        let webhook_rejections = Family::<Labels, Counter>::default();
        registry.register(
            "webhook_rejections",
            "Alert intake requests refused, by source and reason",
            webhook_rejections.clone(),
        );
        let pages = Family::<Labels, Counter>::default();
        registry.register(
            "pages",
            "Pages to people, by contact method (discord, webhook, ntfy, email; none when a person has no usable method) and outcome (sent, failed, fell_through)",
            pages.clone(),
        );
        let mtta =
            Family::<Labels, Histogram>::new_with_constructor(|| Histogram::new(RESPONSE_BUCKETS));
        registry.register(
            "time_to_acknowledge_seconds",
            "Declaration to first acknowledgement, by level (MTTA is its mean)",
            mtta.clone(),
        );
        let mttr =
            Family::<Labels, Histogram>::new_with_constructor(|| Histogram::new(RESPONSE_BUCKETS));
        registry.register(
            "time_to_resolve_seconds",
            "Declaration to resolution, by level (MTTR is its mean)",
            mttr.clone(),
        );
        let runs = Family::<Labels, Counter>::default();
        registry.register(
            "runbook_runs",
            "Runbook runs that ended, by runbook and final state (succeeded, failed, timed_out, cancelled, interrupted)",
            runs.clone(),
        );
        let broadcasts_dead = Family::<Labels, Counter>::default();
        registry.register(
            "broadcasts_dead",
            "Status broadcasts given up after their attempt limit (dead letters), by channel (webhook, email, discord)",
            broadcasts_dead.clone(),
        );
        Metrics {
            transactions,
            transaction_units,
            runs,
            broadcasts_dead,
            registry: Mutex::new(registry),
            pages,
            mtta,
            mttr,
            commands,
            outbox_delivered,
            outbox_failures,
            http,
            alerts,
            incidents,
            outbox_depth,
            jobs_dead,
            webhook_rejections,
            sources: BTreeSet::new(),
        }
    }

    /// Registers the configured alert source ids as the accepted `source` label values.
    pub fn with_sources(mut self, ids: impl IntoIterator<Item = String>) -> Self {
        self.sources = ids.into_iter().collect();
        self
    }

    fn source_label(&self, source: &str) -> String {
        if self.sources.contains(source) {
            source.to_string()
        } else {
            "unknown".into()
        }
    }

    pub fn command_outcome(&self, outcome: &str) {
        let outcome = one_of(outcome, &["ok", "refused", "error"]);
        self.commands
            .get_or_create(&vec![("outcome".into(), outcome.into())])
            .inc();
    }
    pub fn outbox_delivered(&self) {
        self.outbox_delivered.inc();
    }
    pub fn outbox_failure(&self, dead: bool) {
        let outcome = if dead { "dead" } else { "retry" };
        self.outbox_failures
            .get_or_create(&vec![("outcome".into(), outcome.into())])
            .inc();
    }
    /// A status broadcast was given up (`channel` is one of the fixed channel names).
    pub fn broadcast_dead(&self, channel: &'static str) {
        self.broadcasts_dead
            .get_or_create(&vec![("channel".into(), channel.into())])
            .inc();
    }
    /// A dispatcher's lease ran out before it could record an outcome.
    pub fn outbox_lease_lost(&self) {
        self.outbox_failures
            .get_or_create(&vec![("outcome".into(), "lease_lost".into())])
            .inc();
    }
    /// A job was given up after its attempt limit (`kind` is one of the fixed job kinds).
    pub fn job_dead_lettered(&self, kind: &'static str) {
        self.jobs_dead
            .get_or_create(&vec![("kind".into(), kind.into())])
            .inc();
    }
    /// A run ended. Runbook names come from the operator's own files, so the label set is
    /// bounded by them.
    pub fn run_finished(&self, runbook: &str, state: &str) {
        let state = one_of(
            state,
            &[
                "succeeded",
                "failed",
                "timed_out",
                "cancelled",
                "interrupted",
            ],
        );
        self.runs
            .get_or_create(&vec![
                ("runbook".into(), runbook.to_string()),
                ("state".into(), state.into()),
            ])
            .inc();
    }
    /// A page's outcome by method (fixed label sets).
    pub fn page_outcome(&self, method: &str, outcome: &str) {
        let method = one_of(
            method,
            &["discord", "webhook", "ntfy", "email", "log", "none"],
        );
        let outcome = one_of(outcome, &["sent", "failed", "fell_through"]);
        self.pages
            .get_or_create(&vec![
                ("method".into(), method.into()),
                ("outcome".into(), outcome.into()),
            ])
            .inc();
    }
    /// Declaration to first acknowledgement.
    pub fn acknowledged_after(&self, level: u8, seconds: f64) {
        self.mtta
            .get_or_create(&vec![("level".into(), level.to_string())])
            .observe(seconds.max(0.0));
    }
    /// Declaration to resolution.
    pub fn resolved_after(&self, level: u8, seconds: f64) {
        self.mttr
            .get_or_create(&vec![("level".into(), level.to_string())])
            .observe(seconds.max(0.0));
    }
    pub fn http_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.http
            .get_or_create(&vec![
                ("method".into(), method_label(method).into()),
                ("route".into(), route.into()),
                ("status".into(), status_label(status)),
            ])
            .observe(seconds);
    }

    /// Alerts received: `changed` moved an alert's state (and may have opened or joined an
    /// incident), `suppressed` changed state inside a maintenance window (recorded, no incident),
    /// `duplicates` repeated a known state.
    pub fn alerts_received(&self, source: &str, changed: u64, suppressed: u64, duplicates: u64) {
        let source = self.source_label(source);
        for (outcome, n) in [
            ("changed", changed),
            ("suppressed", suppressed),
            ("duplicate", duplicates),
        ] {
            if n > 0 {
                self.alerts
                    .get_or_create(&vec![
                        ("source".into(), source.clone()),
                        ("outcome".into(), outcome.into()),
                    ])
                    .inc_by(n);
            }
        }
    }

    /// One alert intake request refused, for `reason` (a fixed word from the intake's code).
    pub fn webhook_rejection(&self, source: &str, reason: &'static str) {
        self.webhook_rejections
            .get_or_create(&vec![
                ("source".into(), self.source_label(source)),
                ("reason".into(), reason.into()),
            ])
            .inc();
    }

    /// Prometheus text exposition, with the database-derived gauges set from `stats`.
    pub fn render(
        &self,
        stats: &Stats,
        levels: impl Iterator<Item = crate::domain::LevelId>,
    ) -> String {
        // Every level × state is written, zeros included, so a series drops to 0 rather than
        // vanishing when its last incident closes.
        for level in levels {
            for state in State::ALL {
                let n = stats
                    .incidents
                    .iter()
                    .find(|(l, s, _)| *l == level && *s == state)
                    .map(|x| x.2)
                    .unwrap_or(0);
                self.incidents
                    .get_or_create(&vec![
                        ("level".into(), level.to_string()),
                        ("state".into(), state.as_str().into()),
                    ])
                    .set(n);
            }
        }
        self.outbox_depth
            .get_or_create(&vec![("state".into(), "pending".into())])
            .set(stats.outbox_pending);
        self.outbox_depth
            .get_or_create(&vec![("state".into(), "failed".into())])
            .set(stats.outbox_failed);
        // The store counts; the counters follow (never backwards).
        self.transactions
            .inc_by(stats.transactions.saturating_sub(self.transactions.get()));
        self.transaction_units.inc_by(
            stats
                .transaction_units
                .saturating_sub(self.transaction_units.get()),
        );
        let mut out = String::new();
        encode(&mut out, &self.registry.lock().unwrap()).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(m: &Metrics) -> String {
        m.render(&Stats::default(), std::iter::empty())
    }

    #[test]
    fn invented_methods_and_odd_statuses_share_one_label() {
        let m = Metrics::new();
        for n in 0..300 {
            m.http_request(&format!("FOO{n}"), "unmatched", 405, 0.001);
        }
        m.http_request("GET", "/healthz", 1000, 0.001);
        let out = rendered(&m);
        let series = out
            .lines()
            .filter(|l| l.starts_with("spotter_http_request_duration_seconds_count"))
            .collect::<Vec<_>>();
        assert_eq!(series.len(), 2, "{series:#?}");
        assert!(
            out.contains(r#"method="other",route="unmatched",status="405"} 300"#),
            "{out}"
        );
        assert!(
            out.contains(r#"method="GET",route="/healthz",status="other"} 1"#),
            "{out}"
        );
        assert!(!out.contains("FOO"));
    }

    #[test]
    fn unknown_sources_and_outcomes_are_labelled_as_such() {
        let m = Metrics::new().with_sources(["alertmanager".to_string()]);
        m.alerts_received("alertmanager", 1, 0, 0);
        for n in 0..50 {
            m.alerts_received(&format!("made-up-{n}"), 1, 0, 0);
            m.webhook_rejection(&format!("made-up-{n}"), "unknown_source");
            m.command_outcome(&format!("weird-{n}"));
        }
        let out = rendered(&m);
        assert!(
            out.contains(
                r#"spotter_alerts_received_total{source="alertmanager",outcome="changed"} 1"#
            ),
            "{out}"
        );
        assert!(
            out.contains(r#"spotter_alerts_received_total{source="unknown",outcome="changed"} 50"#),
            "{out}"
        );
        assert!(
            out.contains(
                r#"spotter_webhook_rejections_total{source="unknown",reason="unknown_source"} 50"#
            ),
            "{out}"
        );
        assert!(
            out.contains(r#"spotter_commands_total{outcome="other"} 50"#),
            "{out}"
        );
        assert!(!out.contains("made-up") && !out.contains("weird"));
    }
}
