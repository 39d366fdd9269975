//! Support for tests of Spotter and its adapters that need a real database: the rule for when
//! PostgreSQL tests run or skip, and a fresh database per test.
//!
//! PostgreSQL tests read `SPOTTER_TEST_DATABASE_URL`. Without it they say that they were skipped;
//! with `SPOTTER_TEST_STRICT=1` (set by CI) a skip is a failure, so CI can never pass by skipping.

use anyhow::Context;
use sqlx::{AnyPool, Executor};

/// The PostgreSQL server URL for tests, or `None` (after saying so) when the test should skip.
///
/// # Panics
/// When the variable is unset and `SPOTTER_TEST_STRICT=1`.
pub fn postgres_url(test: &str) -> Option<String> {
    match std::env::var("SPOTTER_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        Some(u) => Some(u),
        None => {
            if std::env::var("SPOTTER_TEST_STRICT").as_deref() == Ok("1") {
                panic!("{test}: SPOTTER_TEST_DATABASE_URL is not set and SPOTTER_TEST_STRICT=1 forbids skipping PostgreSQL tests");
            }
            // Straight to the stderr handle: libtest captures `eprintln!` of passing tests, and a
            // skip must be seen.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED (PostgreSQL) {test}: SPOTTER_TEST_DATABASE_URL is not set"
            );
            None
        }
    }
}

/// A database created for one test on the server of `SPOTTER_TEST_DATABASE_URL`.
pub struct PostgresTestDb {
    admin_url: String,
    name: String,
    url: String,
}

impl PostgresTestDb {
    /// Creates `spotter_t_<random>` on the server of `server_url`.
    pub async fn create(server_url: &str) -> anyhow::Result<PostgresTestDb> {
        sqlx::any::install_default_drivers();
        let name = format!("spotter_t_{}", crate::random_token(8));
        let admin = AnyPool::connect(server_url)
            .await
            .context("connecting to the test PostgreSQL server")?;
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .context("creating a test database")?;
        admin.close().await;
        let url = replace_database(server_url, &name);
        Ok(PostgresTestDb {
            admin_url: server_url.to_string(),
            name,
            url,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops the database (best effort; leftovers are named `spotter_t_*`).
    pub async fn drop_db(self) {
        if let Ok(admin) = AnyPool::connect(&self.admin_url).await {
            let _ = admin
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                )))
                .await;
            admin.close().await;
        }
    }
}

/// `postgres://u@h:5432/x?opt` with the database path replaced by `name`.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..host_end], name);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_database_name_is_replaced() {
        assert_eq!(
            super::replace_database("postgres://p@h:5432/x", "t"),
            "postgres://p@h:5432/t"
        );
        assert_eq!(
            super::replace_database("postgres://p@h", "t"),
            "postgres://p@h/t"
        );
        assert_eq!(
            super::replace_database("postgres://p@h/x?sslmode=disable", "t"),
            "postgres://p@h/t?sslmode=disable"
        );
    }
}
