//! Optimistic concurrency: read, decide, commit, and decide again after losing a race.

/// How many times a decision is re-made after losing a write race to another replica before the
/// caller gets a (transient) conflict. Each loss means another writer made progress.
pub(crate) const MAX_CONFLICT_RETRIES: usize = 50;

/// A short, growing, jittered pause before re-deciding, so racing replicas fall out of step.
pub(crate) async fn conflict_pause(attempt: usize) {
    use rand::Rng;
    let max_ms = (1u64 << attempt.min(6)).min(50);
    let ms = rand::thread_rng().gen_range(0..=max_ms);
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}

/// Evaluates `$decide` (an `async { … }` block that reads, decides and commits) until it does
/// not lose a write race: a [`StoreError::Conflict`] means another writer changed what it read,
/// so it reads and decides again, after a pause, up to [`MAX_CONFLICT_RETRIES`] times. Every
/// other outcome, a refusal included, is the value of the whole expression.
///
/// A macro, not a function taking an async closure: the future of an async closure borrowing
/// the engine is not provably `Send` for every lifetime, which spawned tasks need.
macro_rules! retry_on_conflict {
    ($decide:expr) => {{
        let mut attempt = 0;
        loop {
            match $decide.await {
                Err($crate::error::StoreError::Conflict(_))
                    if attempt < $crate::engine::retry::MAX_CONFLICT_RETRIES =>
                {
                    $crate::engine::retry::conflict_pause(attempt).await;
                    attempt += 1;
                }
                other => break other,
            }
        }
    }};
}
pub(crate) use retry_on_conflict;
