//! Incidents, their timelines, the counts behind `/metrics`, and readiness.

use super::rows::*;
use super::*;

impl SqlStore {
    pub(super) async fn next_incident_number_sql(&self) -> Result<i64, StoreError> {
        let n: Option<i64> = sqlx::query_scalar("SELECT MAX(number) FROM incidents")
            .fetch_one(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(n.unwrap_or(0) + 1)
    }

    pub(super) async fn incident_sql(
        &self,
        r: IncidentRef,
    ) -> Result<Option<Incident>, StoreError> {
        let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE number = $1");
        let row: Option<IncidentRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(r.number())
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        row.map(IncidentRow::into_incident).transpose()
    }

    pub(super) async fn incidents_sql(
        &self,
        filter: StateFilter,
    ) -> Result<Vec<Incident>, StoreError> {
        let condition = match filter {
            StateFilter::Open => "WHERE state IN ('declared', 'acknowledged')",
            StateFilter::Resolved => "WHERE state = 'resolved'",
            StateFilter::Closed => "WHERE state = 'closed'",
            StateFilter::All => "",
        };
        let sql =
            format!("SELECT {INCIDENT_COLUMNS} FROM incidents {condition} ORDER BY number DESC");
        let rows: Vec<IncidentRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.into_iter().map(IncidentRow::into_incident).collect()
    }

    pub(super) async fn timeline_sql(
        &self,
        r: IncidentRef,
    ) -> Result<Vec<TimelineEntry>, StoreError> {
        let rows: Vec<TimelineRow> = sqlx::query_as(
            "SELECT incident, at, actor, kind, text, public FROM timeline WHERE incident = $1 ORDER BY id",
        )
        .bind(r.number())
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        rows.into_iter()
            .map(|t| {
                Ok(TimelineEntry {
                    incident: IncidentRef::new(t.incident),
                    at: from_ms(t.at)?,
                    actor: t.actor,
                    kind: t.kind.parse().map_err(|e| corrupt("timeline kind", e))?,
                    text: t.text,
                    public: t.public != 0,
                })
            })
            .collect()
    }

    pub(super) async fn stats_sql(&self) -> Result<Stats, StoreError> {
        let rows =
            sqlx::query("SELECT level, state, COUNT(*) FROM incidents GROUP BY level, state")
                .fetch_all(&self.reader)
                .await
                .map_err(map_err)?;
        let mut incidents = Vec::new();
        for r in rows {
            let level: i64 = r.try_get(0).map_err(map_err)?;
            let state: String = r.try_get(1).map_err(map_err)?;
            let n: i64 = r.try_get(2).map_err(map_err)?;
            incidents.push((
                LevelId(u8::try_from(level).map_err(|e| corrupt("level", e))?),
                state.parse().map_err(|e| corrupt("state", e))?,
                n,
            ));
        }
        // Two counts, each over its own partial index (schema v14 on SQLite, v12 on PostgreSQL):
        // a count over both states would read the whole outbox, delivered rows included.
        let (pending, failed): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM outbox WHERE state = 'pending'), \
                    (SELECT COUNT(*) FROM outbox WHERE state = 'failed')",
        )
        .fetch_one(&self.reader)
        .await
        .map_err(map_err)?;
        let group = self.group_commit_stats();
        Ok(Stats {
            incidents,
            outbox_pending: pending,
            outbox_failed: failed,
            transactions: group.batches,
            transaction_units: group.units,
        })
    }

    pub(super) async fn ready_sql(&self) -> Result<(), StoreError> {
        let expected = self
            .migrator()
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .map(|m| m.version)
            .max()
            .unwrap_or(0);
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_one(&self.reader)
                .await
                .map_err(|e| match map_err(e) {
                    StoreError::Other(e) => {
                        StoreError::Unavailable(e.context("migrations have not been applied"))
                    }
                    other => other,
                })?;
        if applied.unwrap_or(0) < expected {
            return Err(StoreError::Unavailable(anyhow!(
                "schema at version {} but this build needs {expected}; run `spotter migrate`",
                applied.unwrap_or(0)
            )));
        }
        Ok(())
    }
}
