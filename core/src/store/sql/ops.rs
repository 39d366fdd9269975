//! The store's own writes outside changesets: leases of outbox messages, jobs and runs, their
//! outcomes, seen signatures, chat bindings, a token's last use.
//!
//! On SQLite they go through the group-commit writer like changesets do (see
//! [`super::group`]), ahead of the units waiting there, so they share its transactions and
//! fsyncs. Written on their own, each was a transaction with an fsync of its own on SQLite's one
//! writer connection: under a storm of declarations the pages lane's claims alone held that
//! connection for a quarter of the time, and every batch waited for it.
//!
//! On PostgreSQL the pool has many connections: an op runs in a transaction of its own beside
//! the writer's batch. Inside the batch it would add its statements (a claim over a large
//! outbox takes milliseconds) to every waiter's commit; measured, the storm's p99 grew by a
//! quarter.
//!
//! An op is a function of the connection, not a future: the writer may run it twice (a batch
//! written optimistically, rolled back because another unit failed its checks, and written
//! again unit by unit), and only the run that is committed is answered.

use super::*;
use futures::future::BoxFuture;
use std::any::Any;

/// What an op returns, to be downcast by [`SqlStore::write_op`].
pub(super) type OpOut = Box<dyn Any + Send>;

/// Statements run inside the writer's transaction.
pub(super) type Op = Box<
    dyn for<'c> Fn(&'c mut AnyConnection) -> BoxFuture<'c, Result<OpOut, StoreError>> + Send + Sync,
>;

impl SqlStore {
    /// Runs `op` in the group writer's next transaction (PostgreSQL: in one of its own); its
    /// result once that is committed.
    pub(super) async fn write_op<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> Fn(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, StoreError>>
            + Send
            + Sync
            + 'static,
    {
        if self.backend == Backend::Postgres {
            let mut tx = self.begin().await?;
            let out = op(&mut tx).await?;
            tx.commit().await.map_err(map_err)?;
            return Ok(out);
        }
        let erased: Op = Box::new(move |conn| {
            let run = op(conn);
            Box::pin(async move { run.await.map(|t| Box::new(t) as OpOut) })
        });
        let out = self.commit_op(erased).await?;
        out.downcast::<T>()
            .map(|t| *t)
            .map_err(|_| StoreError::Other(anyhow!("an op answered with another type")))
    }

    /// One statement's affected row count, as an op.
    pub(super) async fn write_statement(
        &self,
        sql: &'static str,
        binds: Vec<Bind>,
    ) -> Result<u64, StoreError> {
        self.write_op(move |conn| {
            let binds = binds.clone();
            Box::pin(async move {
                let mut q = sqlx::query(sql);
                for b in binds {
                    q = match b {
                        Bind::Int(v) => q.bind(v),
                        Bind::OptInt(v) => q.bind(v),
                        Bind::Text(v) => q.bind(v),
                        Bind::OptText(v) => q.bind(v),
                    };
                }
                let res = q.execute(conn).await.map_err(map_err)?;
                Ok(res.rows_affected())
            })
        })
        .await
    }
}

/// A bound parameter of [`SqlStore::write_statement`], owned so the op can run again.
#[derive(Debug, Clone)]
pub(super) enum Bind {
    Int(i64),
    OptInt(Option<i64>),
    Text(String),
    OptText(Option<String>),
}

impl From<i64> for Bind {
    fn from(v: i64) -> Self {
        Bind::Int(v)
    }
}

impl From<Option<i64>> for Bind {
    fn from(v: Option<i64>) -> Self {
        Bind::OptInt(v)
    }
}

impl From<&str> for Bind {
    fn from(v: &str) -> Self {
        Bind::Text(v.to_string())
    }
}

impl From<String> for Bind {
    fn from(v: String) -> Self {
        Bind::Text(v)
    }
}

impl From<Option<String>> for Bind {
    fn from(v: Option<String>) -> Self {
        Bind::OptText(v)
    }
}

/// `binds![a, b, c]`: the parameters of [`SqlStore::write_statement`], in order.
macro_rules! binds {
    ($($v:expr),* $(,)?) => { vec![$(super::ops::Bind::from($v)),*] };
}
pub(super) use binds;
