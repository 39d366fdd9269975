//! The audit log against someone who can write the database: append-only by trigger, keyed so
//! a recomputed chain is caught, pinned by an exported head so a rollback is caught, and read in
//! one snapshot so concurrent writers never look like tampering. Both backends.

#[macro_use]
mod common;

use spotter_core::audit::{self, AuditKey};
use spotter_core::store::Store;
use spotter_core::Secret;

async fn four_audited_commands(ctx: &common::Ctx) {
    ctx.declare(3, "MySQL down").await;
    ctx.ok("dev", "/incident ack").await;
    ctx.ok("dev", r#"/incident update text:"restarting""#).await;
    ctx.ok("dba", "/incident resolve").await;
    assert_eq!(ctx.audit_verifies().await, 4);
}

dual_test!(
    the_audit_log_refuses_updates_deletes_and_truncation,
    |ctx| async move {
        four_audited_commands(&ctx).await;
        for sql in [
            "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2",
            "DELETE FROM audit_log WHERE seq = 4",
            "DELETE FROM audit_log",
        ] {
            let e = ctx.try_raw_sql(sql).await.expect_err(sql);
            assert!(e.contains("append-only"), "{sql}: {e}");
        }
        if !ctx.url.starts_with("sqlite:") {
            let e = ctx
                .try_raw_sql("TRUNCATE audit_log")
                .await
                .expect_err("TRUNCATE");
            assert!(e.contains("append-only"), "{e}");
            let e = ctx
                .try_raw_sql("TRUNCATE timeline CASCADE")
                .await
                .expect_err("TRUNCATE timeline");
            assert!(e.contains("append-only"), "{e}");
        }
        assert_eq!(ctx.audit_verifies().await, 4);
    }
);

dual_test!(
    a_chain_recomputed_without_the_key_is_caught_at_the_edited_row,
    |ctx| async move {
        four_audited_commands(&ctx).await;
        // The attacker edits row 2 and rehashes rows 2..4 and the head with a key of their own.
        let log = ctx.store.audit_log().await.unwrap();
        let theirs = AuditKey::new(Secret::new("not-the-key"));
        let mut prev = log.entries[0].hash.clone();
        let mut sql = String::new();
        for e in &log.entries[1..] {
            let actor = if e.seq == 2 {
                "mallory"
            } else {
                e.actor.as_str()
            };
            let hash = audit::entry_hash(
                &theirs, &prev, e.seq, e.at, actor, &e.action, &e.subject, &e.detail,
            );
            sql.push_str(&format!(
                "UPDATE audit_log SET actor = '{actor}', prev_hash = '{prev}', hash = '{hash}' WHERE seq = {};",
                e.seq
            ));
            prev = hash;
        }
        sql.push_str(&format!(
            "UPDATE audit_head SET hash = '{prev}' WHERE id = 1;"
        ));
        ctx.tamper(&sql).await;
        let log = ctx.store.audit_log().await.unwrap();
        assert_eq!(log.entries[1].actor, "mallory");
        let v = audit::verify(
            &common::audit_key(),
            &log.entries,
            log.head_seq,
            &log.head_hash,
        )
        .expect_err("a chain recomputed without the key must not verify");
        assert_eq!(v.seq, 2, "{v}");
        assert!(v.problem.contains("edited"), "{v}");
    }
);

dual_test!(
    a_database_rolled_back_to_an_older_copy_fails_against_the_exported_head,
    |ctx| async move {
        four_audited_commands(&ctx).await;
        let log = ctx.store.audit_log().await.unwrap();
        let older = log.entries[1].clone();
        let exported = audit::head_of(&log.entries);
        assert_eq!(audit::verify_head(&log.entries, &exported), Ok(()));
        // Back to the copy taken after row 2: rows and head agree, so the chain verifies…
        ctx.tamper(&format!(
            "DELETE FROM audit_log WHERE seq > 2; UPDATE audit_head SET seq = 2, hash = '{}' WHERE id = 1;",
            older.hash
        ))
        .await;
        let log = ctx.store.audit_log().await.unwrap();
        assert_eq!(
            audit::verify(
                &common::audit_key(),
                &log.entries,
                log.head_seq,
                &log.head_hash
            ),
            Ok(2)
        );
        // …but the head kept elsewhere says there was a row 4.
        let v = audit::verify_head(&log.entries, &exported).unwrap_err();
        assert_eq!(v.seq, 4, "{v}");
        assert!(v.problem.contains("rolled back"), "{v}");
    }
);

dual_test!(
    multi_thread verification_during_concurrent_writes_never_reports_tampering,
    |ctx| async move {
        ctx.declare(2, "Busy").await;
        let writer = {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                for i in 0..40 {
                    ctx.ok("dev", &format!(r#"/incident update text:"step {i}""#)).await;
                }
            })
        };
        let mut checks = 0;
        while !writer.is_finished() {
            let log = ctx.store.audit_log().await.unwrap();
            audit::verify(&common::audit_key(), &log.entries, log.head_seq, &log.head_hash)
                .unwrap_or_else(|v| panic!("a concurrent append looked like tampering: {v}"));
            checks += 1;
        }
        writer.await.unwrap();
        assert!(checks > 0);
        assert_eq!(ctx.audit_verifies().await, 41);
    }
);

// A second writer on the same database: the CLI beside a running server on SQLite (whose
// writer carries the next incident number and the audit head from one transaction to the
// next), or another replica on PostgreSQL. Each store's declarations take the next free
// number and extend the one chain, however the two interleave.
dual_test!(
    a_second_writer_between_two_declarations_leaves_numbers_and_chain_whole,
    |ctx| async move {
        let first = ctx.declare(3, "MySQL down").await;
        assert_eq!(first.reference.number(), 1);
        let other = common::Ctx::new(ctx.backend, &ctx.url).await;
        let between = other.declare(3, "Redis down").await;
        assert_eq!(between.reference.number(), 2);
        // The first store's writer carried "next is INC-2" and the head after one entry.
        let third = ctx.declare(3, "nginx down").await;
        assert_eq!(third.reference.number(), 3);
        let fourth = ctx.declare(3, "frontend down").await;
        assert_eq!(fourth.reference.number(), 4);
        assert_eq!(ctx.audit_verifies().await, 4);
        assert_eq!(other.audit_verifies().await, 4);
    }
);
