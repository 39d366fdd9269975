//! Alerts, alert groups, maintenance windows and heartbeats.

use super::rows::*;
use super::*;

/// id, components, starts_at, ends_at, reason, created_by, ended_at, ended_by
type MaintenanceRow = (
    i64,
    String,
    i64,
    i64,
    String,
    String,
    Option<i64>,
    Option<String>,
    i64,
);

/// The counts of a summary and one shown alert (all `None` when none is shown).
#[derive(sqlx::FromRow)]
struct SummaryRow {
    firing: i64,
    suppressed: i64,
    resolved: i64,
    source: Option<String>,
    fingerprint: Option<String>,
    status: Option<String>,
    labels: Option<String>,
    annotations: Option<String>,
    summary: Option<String>,
    group_key: Option<String>,
    incident: Option<i64>,
    starts_at: Option<i64>,
    ends_at: Option<i64>,
    first_seen_at: Option<i64>,
    changed_at: Option<i64>,
    recent_changes: Option<String>,
    flapping: Option<i64>,
    suppressed_by: Option<i64>,
    version: Option<i64>,
}

impl SummaryRow {
    fn alert(self) -> Option<AlertRow> {
        Some(AlertRow {
            source: self.source?,
            fingerprint: self.fingerprint?,
            status: self.status?,
            labels: self.labels?,
            annotations: self.annotations?,
            summary: self.summary?,
            group_key: self.group_key?,
            incident: self.incident,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            first_seen_at: self.first_seen_at?,
            changed_at: self.changed_at?,
            recent_changes: self.recent_changes?,
            flapping: self.flapping?,
            suppressed_by: self.suppressed_by,
            version: self.version?,
        })
    }
}

impl SqlStore {
    pub(super) async fn alert_sql(
        &self,
        source: &str,
        fingerprint: &str,
    ) -> Result<Option<AlertRecord>, StoreError> {
        let sql =
            format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE source = $1 AND fingerprint = $2");
        let row: Option<AlertRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(source)
            .bind(fingerprint)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        row.map(AlertRow::into_record).transpose()
    }

    /// The stored alerts of `source` among `fingerprints` (a notification's), in chunks well
    /// under the backends' parameter limits.
    pub(super) async fn alerts_of_sql(
        &self,
        source: &str,
        fingerprints: &[String],
    ) -> Result<Vec<AlertRecord>, StoreError> {
        let mut out = Vec::with_capacity(fingerprints.len());
        for chunk in fingerprints.chunks(500) {
            let params: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT {ALERT_COLUMNS} FROM alerts WHERE source = $1 AND fingerprint IN ({})",
                params.join(",")
            );
            // Not a prepared statement kept per connection: PostgreSQL plans a kept statement
            // once for any values, and a plan made while the table was small filtered every row
            // against the whole list (measured: 26 ms a lookup, PostgreSQL's CPU saturated, in
            // the storm benchmark). An unnamed statement is planned for the values it carries.
            // SQLite plans it the same either way, and there an unkept statement was parsed
            // anew on every notification: the duplicate path's profile showed SQLite's parser,
            // and its throughput was a fifth below the pre-storm-work binary's.
            let mut q = sqlx::query_as::<_, AlertRow>(sqlx::AssertSqlSafe(sql))
                .persistent(self.backend == Backend::Sqlite)
                .bind(source);
            for f in chunk {
                q = q.bind(f);
            }
            for row in q.fetch_all(&self.reader).await.map_err(map_err)? {
                out.push(row.into_record()?);
            }
        }
        Ok(out)
    }

    pub(super) async fn firing_alert_count_sql(
        &self,
        incident: IncidentRef,
    ) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT COUNT(*) FROM alerts WHERE incident = $1 AND status = 'firing'")
            .bind(incident.number())
            .fetch_one(&self.reader)
            .await
            .map_err(map_err)
    }

    pub(super) async fn incident_alerts_sql(
        &self,
        incident: IncidentRef,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        let sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE incident = $1 ORDER BY first_seen_at, fingerprint");
        let rows: Vec<AlertRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(incident.number())
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.into_iter().map(AlertRow::into_record).collect()
    }

    /// Counts and the first `shown` firing alerts in one statement (one snapshot), so the card
    /// never lists alerts its own count does not know of.
    pub(super) async fn incident_alert_summary_sql(
        &self,
        incident: IncidentRef,
        shown: i64,
    ) -> Result<AlertSummary, StoreError> {
        let cols = ALERT_COLUMNS
            .split(',')
            .map(|c| format!("a.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        // The counts are one row; the shown alerts join it (none: one row of NULLs), so both come
        // from the same statement. The `(incident, status)` index serves both halves.
        let sql = format!(
            "SELECT c.firing, c.suppressed, c.resolved, {cols} FROM \
               (SELECT COUNT(CASE WHEN status = 'firing' AND suppressed_by IS NULL THEN 1 END) AS firing, \
                       COUNT(CASE WHEN status = 'firing' AND suppressed_by IS NOT NULL THEN 1 END) AS suppressed, \
                       COUNT(CASE WHEN status = 'resolved' THEN 1 END) AS resolved \
                FROM alerts WHERE incident = $1) c \
             LEFT JOIN (SELECT {ALERT_COLUMNS} FROM alerts \
                        WHERE incident = $1 AND status = 'firing' AND suppressed_by IS NULL \
                        ORDER BY first_seen_at, fingerprint LIMIT $2) a ON 1 = 1 \
             ORDER BY a.first_seen_at, a.fingerprint"
        );
        let rows: Vec<SummaryRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(incident.number())
            .bind(shown.max(0))
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        let mut out = AlertSummary::default();
        for r in rows {
            out.firing = r.firing;
            out.suppressed = r.suppressed;
            out.resolved = r.resolved;
            if let Some(a) = r.alert() {
                out.shown.push(a.into_record()?);
            }
        }
        Ok(out)
    }

    pub(super) async fn alerts_sql(
        &self,
        status: Option<AlertStatus>,
        limit: i64,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        let (cond, st) = match status {
            Some(s) => ("WHERE status = $2", s.as_str()),
            None => ("WHERE $2 = $2", ""),
        };
        let sql = format!("SELECT {ALERT_COLUMNS} FROM alerts {cond} ORDER BY changed_at DESC, fingerprint LIMIT $1");
        let rows: Vec<AlertRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .bind(st)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.into_iter().map(AlertRow::into_record).collect()
    }

    pub(super) async fn group_incident_sql(
        &self,
        source: &str,
        group_key: &str,
    ) -> Result<Option<IncidentRef>, StoreError> {
        let n: Option<i64> = sqlx::query_scalar(
            "SELECT incident FROM alert_groups WHERE source = $1 AND group_key = $2",
        )
        .bind(source)
        .bind(group_key)
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?;
        Ok(n.map(IncidentRef::new))
    }

    pub(super) async fn maintenance_windows_sql(
        &self,
        active_at: Option<DateTime<Utc>>,
    ) -> Result<Vec<Maintenance>, StoreError> {
        let cols =
            "id, components, starts_at, ends_at, reason, created_by, ended_at, ended_by, public";
        let rows: Vec<MaintenanceRow> = match active_at {
            Some(at) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {cols} FROM maintenance WHERE ended_at IS NULL AND starts_at <= $1 AND ends_at > $1 ORDER BY id"
            )))
            .bind(ms(at))
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?,
            None => sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {cols} FROM maintenance ORDER BY id")))
                .fetch_all(&self.reader)
                .await
                .map_err(map_err)?,
        };
        rows.into_iter()
            .map(
                |(id, comps, starts, ends, reason, created_by, ended_at, ended_by, public)| {
                    Ok(Maintenance {
                        id,
                        components: comps
                            .split(',')
                            .filter(|c| !c.is_empty())
                            .map(|c| c.parse().map_err(|e| corrupt("component", e)))
                            .collect::<Result<_, _>>()?,
                        starts_at: from_ms(starts)?,
                        ends_at: from_ms(ends)?,
                        reason,
                        created_by,
                        ended_at: ended_at.map(from_ms).transpose()?,
                        ended_by,
                        public: public != 0,
                    })
                },
            )
            .collect()
    }

    pub(super) async fn next_maintenance_id_sql(&self) -> Result<i64, StoreError> {
        let n: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM maintenance")
            .fetch_one(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(n.unwrap_or(0) + 1)
    }

    pub(super) async fn heartbeat_sql(&self, name: &str) -> Result<Option<Heartbeat>, StoreError> {
        let row: Option<(String, i64, Option<i64>)> =
            sqlx::query_as("SELECT name, last_seen, incident FROM heartbeats WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.reader)
                .await
                .map_err(map_err)?;
        row.map(|(name, last_seen, incident)| {
            Ok(Heartbeat {
                name,
                last_seen: from_ms(last_seen)?,
                incident: incident.map(IncidentRef::new),
            })
        })
        .transpose()
    }
}
