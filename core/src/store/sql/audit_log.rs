//! Reading the audit log (appending happens in `write`).

use super::rows::*;
use super::*;

impl SqlStore {
    pub(super) async fn audit_log_sql(&self) -> Result<AuditLog, StoreError> {
        // Read the head and the rows in one snapshot so a concurrent append cannot look like
        // tampering: REPEATABLE READ on PostgreSQL (its default READ COMMITTED gives each
        // statement its own snapshot); a SQLite read transaction is one snapshot already.
        let begin = match self.backend {
            Backend::Sqlite => "BEGIN",
            Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        };
        let mut tx = self.reader.begin_with(begin).await.map_err(map_err)?;
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit_log ORDER BY seq",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(AuditLog {
            head_seq: head.try_get(0).map_err(map_err)?,
            head_hash: head.try_get(1).map_err(map_err)?,
            entries: rows
                .into_iter()
                .map(|r| {
                    Ok(AuditEntry {
                        seq: r.seq,
                        at: from_ms(r.at)?,
                        actor: r.actor,
                        action: r.action,
                        subject: r.subject,
                        detail: r.detail,
                        prev_hash: r.prev_hash,
                        hash: r.hash,
                    })
                })
                .collect::<Result<_, StoreError>>()?,
        })
    }
}
