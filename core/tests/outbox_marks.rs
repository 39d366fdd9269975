//! The chat lane marks its deliveries in batches (one write for a burst), still fenced by the
//! lease: a dispatcher that lost its lease mid-batch records nothing for the messages it no
//! longer owns. SQLite and PostgreSQL alike.

mod common;

use async_trait::async_trait;
use spotter_core::outbox::{DeliveryError, Notifier};
use spotter_core::store::{DeliveryState, MessageKind, OutboxMessage};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Delivers everything, and on its `steal_at`-th delivery hands every leased message to another
/// owner behind the dispatcher's back (as a replica would after the lease ran out).
struct Thief {
    ctx: common::Ctx,
    seen: AtomicUsize,
    steal_at: usize,
}

#[async_trait]
impl Notifier for Thief {
    async fn deliver(&self, _m: &OutboxMessage) -> Result<(), DeliveryError> {
        if self.seen.fetch_add(1, Ordering::SeqCst) == self.steal_at {
            self.ctx
                .raw_sql("UPDATE outbox SET lease_owner = 'thief' WHERE lease_owner IS NOT NULL")
                .await;
        }
        Ok(())
    }
}

fn chat(outbox: Vec<OutboxMessage>) -> Vec<OutboxMessage> {
    outbox
        .into_iter()
        .filter(|m| m.kind != MessageKind::Page)
        .collect()
}

dual_test!(a_burst_is_marked_delivered_together, |ctx| async move {
    for i in 0..3 {
        ctx.declare(2, &format!("outage {i}")).await;
    }
    let n = common::RecordingNotifier::working();
    let d = ctx.dispatcher(n.clone());
    ctx.drain(&d, 50).await;
    let all = chat(ctx.outbox().await);
    assert!(all.len() >= 6, "{all:?}");
    assert!(all.iter().all(|m| m.state == DeliveryState::Delivered
        && m.attempts == 1
        && m.delivered_at.is_some()));
    assert_eq!(n.delivered().len(), all.len());
});

dual_test!(
    a_batch_whose_lease_was_taken_records_nothing,
    |ctx| async move {
        for i in 0..3 {
            ctx.declare(2, &format!("outage {i}")).await;
        }
        let thief = Arc::new(Thief {
            ctx: ctx.clone(),
            seen: AtomicUsize::new(0),
            steal_at: 1,
        });
        let d = ctx.dispatcher(thief.clone());
        d.tick().await.unwrap();
        assert!(thief.seen.load(Ordering::SeqCst) >= 2);
        // Nothing of the stolen batch is recorded as ours: each message is still pending, owned by
        // the thief, with no attempt counted.
        let all = chat(ctx.outbox().await);
        assert!(
            all.iter()
                .all(|m| m.state == DeliveryState::Pending && m.attempts == 0),
            "{all:#?}"
        );
        // The thief holds the whole batch (the oldest message of each ordering key), the delivered
        // ones included; the dispatcher stopped once it found the lease gone.
        assert!(
            ctx.scalar("SELECT COUNT(*) FROM outbox WHERE lease_owner = 'thief'")
                .await
                >= thief.seen.load(Ordering::SeqCst) as i64
        );
    }
);
