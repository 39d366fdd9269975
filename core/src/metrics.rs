//! Metrics as a port-like registry. Counters are kept in-process; gauges about incidents and the
//! outbox are read from the database at scrape time, so several replicas report the same truth.

use crate::domain::State;
use crate::store::Stats;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Mutex;

type Labels = Vec<(String, String)>;

pub struct Metrics {
    registry: Mutex<Registry>,
    commands: Family<Labels, Counter>,
    outbox_delivered: Counter,
    outbox_failures: Family<Labels, Counter>,
    http: Family<Labels, Histogram>,
    alerts: Family<Labels, Counter>,
    incidents: Family<Labels, Gauge>,
    outbox_depth: Family<Labels, Gauge>,
    jobs_dead: Family<Labels, Counter>,
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
        let jobs_dead = Family::<Labels, Counter>::default();
        registry.register(
            "jobs_dead_lettered",
            "Scheduled jobs given up after their attempt limit, by kind",
            jobs_dead.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            commands,
            outbox_delivered,
            outbox_failures,
            http,
            alerts,
            incidents,
            outbox_depth,
            jobs_dead,
        }
    }

    pub fn command_outcome(&self, outcome: &str) {
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
    pub fn http_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.http
            .get_or_create(&vec![
                ("method".into(), method.into()),
                ("route".into(), route.into()),
                ("status".into(), status.to_string()),
            ])
            .observe(seconds);
    }

    pub fn alerts_received(&self, source: &str, changed: u64, duplicates: u64) {
        for (outcome, n) in [("changed", changed), ("duplicate", duplicates)] {
            if n > 0 {
                self.alerts
                    .get_or_create(&vec![
                        ("source".into(), source.into()),
                        ("outcome".into(), outcome.into()),
                    ])
                    .inc_by(n);
            }
        }
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
        let mut out = String::new();
        encode(&mut out, &self.registry.lock().unwrap()).expect("writing to a String cannot fail");
        out
    }
}
