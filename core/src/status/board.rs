//! The status board: the current [`StatusSnapshot`], held in memory so the public surfaces
//! answer without touching the database. The engine rebuilds it after every public change it
//! commits; a background refresh picks up other replicas' changes and the turn of the day.

use super::model::StatusSnapshot;
use std::sync::{Arc, RwLock};

pub struct StatusBoard {
    current: RwLock<Arc<StatusSnapshot>>,
    /// Rung whenever the snapshot changed (subscribers of the public surfaces may wait on it).
    changed: tokio::sync::Notify,
}

impl StatusBoard {
    pub fn new(initial: StatusSnapshot) -> StatusBoard {
        StatusBoard {
            current: RwLock::new(Arc::new(initial)),
            changed: tokio::sync::Notify::new(),
        }
    }

    /// The snapshot now: cheap (an `Arc` clone), never blocks on the database.
    pub fn current(&self) -> Arc<StatusSnapshot> {
        self.current.read().expect("status board lock").clone()
    }

    /// Replaces the snapshot when it differs (its `generation` is then one more than the old
    /// one's, so it doubles as the `ETag`); returns whether it changed.
    pub fn set(&self, mut next: StatusSnapshot) -> bool {
        let mut cur = self.current.write().expect("status board lock");
        next.generation = cur.generation;
        if **cur == next {
            return false;
        }
        next.generation = cur.generation + 1;
        *cur = Arc::new(next);
        drop(cur);
        self.changed.notify_waiters();
        true
    }

    /// Resolves when the snapshot next changes.
    pub async fn changed(&self) {
        self.changed.notified().await
    }
}
