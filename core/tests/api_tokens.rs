//! The store's per-person API tokens, on SQLite and on PostgreSQL: what is kept (a hash, never a
//! token), in what order they list, and how revocation and use are recorded.

#[macro_use]
mod common;

use chrono::Duration;
use spotter_core::clock::Clock;
use spotter_core::store::{ApiToken, Store};
use spotter_core::StoreError;

fn token(id: &str, person: &str, at: chrono::DateTime<chrono::Utc>) -> ApiToken {
    ApiToken {
        id: id.into(),
        person: person.into(),
        hash: format!("{:0>64}", id),
        created_at: at,
        revoked_at: None,
        last_used_at: None,
    }
}

dual_test!(
    a_token_is_kept_as_given_and_listed_newest_first,
    |ctx| async move {
        let t0 = ctx.clock.now();
        let a = token("aaaaaaaaaaaa", "dba", t0);
        let b = token("bbbbbbbbbbbb", "sysadmin", t0 + Duration::minutes(1));
        ctx.store.insert_api_token(&a).await.unwrap();
        ctx.store.insert_api_token(&b).await.unwrap();
        assert_eq!(
            ctx.store.api_token("aaaaaaaaaaaa").await.unwrap(),
            Some(a.clone())
        );
        assert_eq!(ctx.store.api_token("cccccccccccc").await.unwrap(), None);
        assert_eq!(ctx.store.api_tokens().await.unwrap(), vec![b, a]);
        // The same id twice is a conflict, and changes nothing.
        let dup = token("aaaaaaaaaaaa", "dev", t0);
        assert!(matches!(
            ctx.store.insert_api_token(&dup).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(
            ctx.store
                .api_token("aaaaaaaaaaaa")
                .await
                .unwrap()
                .unwrap()
                .person,
            "dba"
        );
    }
);

dual_test!(
    revoking_keeps_the_first_time_and_an_unknown_id_is_none,
    |ctx| async move {
        let t0 = ctx.clock.now();
        ctx.store
            .insert_api_token(&token("aaaaaaaaaaaa", "dba", t0))
            .await
            .unwrap();
        let first = t0 + Duration::minutes(5);
        let r = ctx
            .store
            .revoke_api_token("aaaaaaaaaaaa", first)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.revoked_at, Some(first));
        let again = ctx
            .store
            .revoke_api_token("aaaaaaaaaaaa", first + Duration::hours(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.revoked_at, Some(first));
        assert_eq!(
            ctx.store
                .revoke_api_token("zzzzzzzzzzzz", first)
                .await
                .unwrap(),
            None
        );
        // A fresh connection (another replica) sees the revocation.
        let other = ctx.reconnect().await;
        assert_eq!(
            other
                .api_token("aaaaaaaaaaaa")
                .await
                .unwrap()
                .unwrap()
                .revoked_at,
            Some(first)
        );
        other.close().await;
    }
);

dual_test!(last_use_only_moves_forward, |ctx| async move {
    let t0 = ctx.clock.now();
    ctx.store
        .insert_api_token(&token("aaaaaaaaaaaa", "dba", t0))
        .await
        .unwrap();
    let later = t0 + Duration::minutes(10);
    ctx.store
        .api_token_used("aaaaaaaaaaaa", later)
        .await
        .unwrap();
    ctx.store
        .api_token_used("aaaaaaaaaaaa", t0 + Duration::minutes(1))
        .await
        .unwrap();
    let t = ctx.store.api_token("aaaaaaaaaaaa").await.unwrap().unwrap();
    assert_eq!(t.last_used_at, Some(later));
    // Using an unknown id is no error and creates nothing.
    ctx.store
        .api_token_used("zzzzzzzzzzzz", later)
        .await
        .unwrap();
    assert_eq!(ctx.store.api_tokens().await.unwrap().len(), 1);
});
