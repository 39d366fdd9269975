//! The status follower: keeps the public status page in line with the incidents, on every
//! replica. After a commit that changed an incident (and on a short poll, for other replicas'
//! changes) it lets the engine follow each public incident's internal one, and rebuilds the
//! status board when anything public changed or the day turned (the 90-day bars move). Then the
//! announcer queues a broadcast for each change to subscribers (see `engine::announce`).

use crate::Engine;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often other replicas' public changes are looked for.
const POLL: Duration = Duration::from_secs(2);
/// Rounds start at least this far apart: under an alert storm every commit wakes the follower,
/// and wake-ups that arrive during a round and the spacing after it are taken as one round.
const MIN_ROUND: Duration = Duration::from_millis(25);

pub struct StatusWorker {
    engine: Arc<Engine>,
}

impl StatusWorker {
    pub fn new(engine: Arc<Engine>) -> Self {
        StatusWorker { engine }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let wakeup = self.engine.status_wakeup();
        type Key = (
            (i64, i64),
            chrono::NaiveDate,
            Vec<(i64, crate::status::MaintenanceStatus)>,
        );
        let mut seen: Option<Key> = None;
        loop {
            let round = tokio::time::Instant::now();
            if let Err(e) = self.engine.follow_public().await {
                tracing::warn!(error = %e, "cannot follow the public incidents");
            }
            let now = self.engine.clock().now();
            // Maintenance windows start and end with time, not with a write: their phases are
            // part of what the page shows.
            let phases: Vec<(i64, crate::status::MaintenanceStatus)> =
                match self.engine.store().maintenance_windows(None).await {
                    Ok(w) => w
                        .iter()
                        .map(|w| {
                            (
                                w.id,
                                crate::status::snapshot::maintenance_status(
                                    w.starts_at,
                                    w.ends_at,
                                    w.ended_at,
                                    now,
                                ),
                            )
                        })
                        .collect(),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the maintenance windows");
                        vec![]
                    }
                };
            match self.engine.store().status_stamp().await {
                Ok(stamp) => {
                    let key = (stamp, now.date_naive(), phases);
                    if seen.as_ref() != Some(&key) {
                        match self.engine.rebuild_status().await {
                            Ok(_) => seen = Some(key),
                            Err(e) => tracing::warn!(error = %e, "cannot rebuild the status page"),
                        }
                    }
                    // Every round, not only after a rebuild here: what was announced is in the
                    // database, so a change another replica rebuilt for, or one a crash left
                    // unannounced, is found all the same.
                    if let Err(e) = self.engine.announce().await {
                        tracing::warn!(error = %e, "cannot announce the status page's changes");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the status page's stamp"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = wakeup.notified() => {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep_until(round + MIN_ROUND) => {}
                    }
                }
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}
