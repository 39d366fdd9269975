//! Per-person API tokens: only their hashes, with who they belong to and when they were
//! created, last used and revoked.

use super::ops::binds;
use super::rows::*;
use super::*;

const COLUMNS: &str = "id, person, hash, created_at, revoked_at, last_used_at";

type TokenRow = (String, String, String, i64, Option<i64>, Option<i64>);

fn token_from_row(r: TokenRow) -> Result<ApiToken, StoreError> {
    Ok(ApiToken {
        id: r.0,
        person: r.1,
        hash: r.2,
        created_at: from_ms(r.3)?,
        revoked_at: r.4.map(from_ms).transpose()?,
        last_used_at: r.5.map(from_ms).transpose()?,
    })
}

/// Writes one token change inside a changeset's transaction.
pub(super) async fn write(
    tx: &mut sqlx::AnyConnection,
    t: &ApiTokenWrite,
) -> Result<(), StoreError> {
    match t {
        ApiTokenWrite::Insert(t) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO api_tokens ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
            )))
            .bind(&t.id)
            .bind(&t.person)
            .bind(&t.hash)
            .bind(ms(t.created_at))
            .bind(t.revoked_at.map(ms))
            .bind(t.last_used_at.map(ms))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        // A second revocation keeps the first time.
        ApiTokenWrite::Revoke { id, at } => {
            sqlx::query(
                "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            )
            .bind(id)
            .bind(ms(*at))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
    }
    Ok(())
}

impl SqlStore {
    pub(super) async fn insert_api_token(&self, t: &ApiToken) -> Result<(), StoreError> {
        self.commit_sql(Changeset {
            api_tokens: vec![ApiTokenWrite::Insert(t.clone())],
            ..Changeset::default()
        })
        .await
    }

    pub(super) async fn api_token(&self, id: &str) -> Result<Option<ApiToken>, StoreError> {
        let row: Option<TokenRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_tokens WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?;
        row.map(token_from_row).transpose()
    }

    pub(super) async fn api_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let rows: Vec<TokenRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_tokens ORDER BY created_at DESC, id"
        )))
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        rows.into_iter().map(token_from_row).collect()
    }

    pub(super) async fn revoke_api_token(
        &self,
        id: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<ApiToken>, StoreError> {
        self.commit_sql(Changeset {
            api_tokens: vec![ApiTokenWrite::Revoke {
                id: id.to_string(),
                at,
            }],
            ..Changeset::default()
        })
        .await?;
        self.api_token(id).await
    }

    pub(super) async fn api_token_used(
        &self,
        id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.write_statement(
            "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1 \
             AND (last_used_at IS NULL OR last_used_at < $2)",
            binds![id, ms(at)],
        )
        .await?;
        Ok(())
    }
}
