//! The status follower: keeps the public status page in line with the incidents, on every
//! replica. After a commit that changed an incident (and on a short poll, for other replicas'
//! changes) it lets the engine follow each public incident's internal one, and rebuilds the
//! status board when anything public changed or the day turned (the 90-day bars move).

use crate::Engine;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often other replicas' public changes are looked for.
const POLL: Duration = Duration::from_secs(2);

pub struct StatusWorker {
    engine: Arc<Engine>,
}

impl StatusWorker {
    pub fn new(engine: Arc<Engine>) -> Self {
        StatusWorker { engine }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let wakeup = self.engine.status_wakeup();
        let mut seen: Option<((i64, i64), chrono::NaiveDate)> = None;
        loop {
            if let Err(e) = self.engine.follow_public().await {
                tracing::warn!(error = %e, "cannot follow the public incidents");
            }
            match self.engine.store().status_stamp().await {
                Ok(stamp) => {
                    let key = (stamp, self.engine.clock().now().date_naive());
                    if seen != Some(key) {
                        match self.engine.rebuild_status().await {
                            Ok(_) => seen = Some(key),
                            Err(e) => tracing::warn!(error = %e, "cannot rebuild the status page"),
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the status page's stamp"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = wakeup.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}
