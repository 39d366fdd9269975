//! Writing alert rows: new ones in multi-row inserts (a storm's notification of 50 new alerts
//! is one statement, not 50 round trips), known ones each updated at the version read.

use super::rows::*;
use super::*;

/// Columns of a new alert row, in the order bound.
const COLUMNS: usize = 15;
/// Rows per insert: 15 parameters each, well under both backends' limits.
const ROWS: usize = 100;

/// Inserts new rows (`version` 0).
pub(super) async fn insert_new(
    tx: &mut AnyConnection,
    new: &[&AlertRecord],
) -> Result<(), StoreError> {
    for chunk in super::write::sized_chunks(tx, new, ROWS, COLUMNS, |a| {
        let map = |m: &std::collections::BTreeMap<String, String>| {
            m.iter().map(|(k, v)| k.len() + v.len() + 6).sum::<usize>()
        };
        map(&a.labels)
            + map(&a.annotations)
            + a.summary.len()
            + a.group_key.len()
            + a.fingerprint.len()
            + 200
    }) {
        // Every new row starts at version 1: the sixteenth value is a constant.
        let sql = super::write::rows_sql(
            "INSERT INTO alerts (source, fingerprint, status, labels, annotations, summary, group_key, incident, \
             starts_at, ends_at, first_seen_at, changed_at, recent_changes, flapping, suppressed_by, version) VALUES ",
            COLUMNS,
            chunk.len(),
            "",
            |sql, n| {
                for c in 1..=COLUMNS {
                    super::write::push_param(sql, n + c);
                    sql.push(',');
                }
                sql.push('1');
            },
        );
        let sql = super::placeholders::positional(tx, sql);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for a in chunk {
            q = bind(q, a);
        }
        // A row that exists already (a concurrent notification inserted it) is a unique
        // violation of a raced key: a conflict, and the engine decides again.
        q.execute(&mut *tx).await.map_err(map_err)?;
    }
    Ok(())
}

/// Updates known rows, each at the version it was read at.
pub(super) async fn update_known(
    tx: &mut AnyConnection,
    known: &[&AlertRecord],
) -> Result<(), StoreError> {
    for a in known {
        let q = sqlx::query(
            "UPDATE alerts SET status = $3, labels = $4, annotations = $5, summary = $6, group_key = $7, \
             incident = $8, starts_at = $9, ends_at = $10, first_seen_at = $11, changed_at = $12, \
             recent_changes = $13, flapping = $14, suppressed_by = $15, version = version + 1 \
             WHERE source = $1 AND fingerprint = $2 AND version = $16",
        );
        let res = bind(q, a)
            .bind(a.version)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if res.rows_affected() != 1 {
            return Err(StoreError::Conflict(format!(
                "alert {}/{} changed since it was read",
                a.source, a.fingerprint
            )));
        }
    }
    Ok(())
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

fn bind<'q>(q: Query<'q>, a: &'q AlertRecord) -> Query<'q> {
    let labels = serde_json::to_string(&a.labels).expect("labels serialise");
    let annotations = serde_json::to_string(&a.annotations).expect("annotations serialise");
    let changes =
        serde_json::to_string(&a.recent_changes.iter().map(|t| ms(*t)).collect::<Vec<_>>())
            .expect("times serialise");
    q.bind(&a.source)
        .bind(&a.fingerprint)
        .bind(a.status.as_str())
        .bind(labels)
        .bind(annotations)
        .bind(&a.summary)
        .bind(&a.group_key)
        .bind(a.incident.map(|r| r.number()))
        .bind(a.starts_at.map(ms))
        .bind(a.ends_at.map(ms))
        .bind(ms(a.first_seen_at))
        .bind(ms(a.changed_at))
        .bind(changes)
        .bind(a.flapping as i64)
        .bind(a.suppressed_by)
}
