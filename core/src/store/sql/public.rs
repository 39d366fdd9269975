//! The public status page: public incidents and their updates, component overrides, holds.

use super::rows::*;
use super::*;
use crate::domain::ComponentId;
use crate::status::{ComponentStatus, Impact, PublicIncident, PublicStatus, PublicUpdate};

fn components_text(c: &[ComponentId]) -> String {
    c.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(",")
}

/// Writes the public parts of a changeset inside its transaction.
pub(super) async fn write(tx: &mut sqlx::AnyConnection, cs: &Changeset) -> Result<(), StoreError> {
    for w in &cs.public {
        match w {
            PublicWrite::Insert(p) => {
                sqlx::query(
                    "INSERT INTO public_incidents (id, incident, name, impact, status, components, created_at, \
                     updated_at, resolved_at, version) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,1)",
                )
                .bind(&p.id)
                .bind(p.incident.number())
                .bind(&p.name)
                .bind(p.impact.as_str())
                .bind(p.status.as_str())
                .bind(components_text(&p.components))
                .bind(ms(p.created_at))
                .bind(ms(p.updated_at))
                .bind(p.resolved_at.map(ms))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                for u in &p.updates {
                    insert_update(tx, &p.id, u).await?;
                }
            }
            PublicWrite::Update(p) => {
                let res = sqlx::query(
                    "UPDATE public_incidents SET name = $2, impact = $3, status = $4, components = $5, \
                     updated_at = $6, resolved_at = $7, version = version + 1 WHERE id = $1 AND version = $8",
                )
                .bind(&p.id)
                .bind(&p.name)
                .bind(p.impact.as_str())
                .bind(p.status.as_str())
                .bind(components_text(&p.components))
                .bind(ms(p.updated_at))
                .bind(p.resolved_at.map(ms))
                .bind(p.version)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                if res.rows_affected() != 1 {
                    return Err(StoreError::Conflict(format!(
                        "public incident {} changed since it was read",
                        p.id
                    )));
                }
            }
            PublicWrite::AddUpdate {
                public_incident,
                update,
            } => insert_update(tx, public_incident, update).await?,
            PublicWrite::Override {
                component,
                status,
                incident,
                by,
                at,
            } => match status {
                Some(s) => {
                    sqlx::query(
                        "INSERT INTO component_overrides (component, status, incident, set_by, set_at) \
                         VALUES ($1,$2,$3,$4,$5) ON CONFLICT (component) DO UPDATE SET status = excluded.status, \
                         incident = excluded.incident, set_by = excluded.set_by, set_at = excluded.set_at",
                    )
                    .bind(component.as_str())
                    .bind(s.as_str())
                    .bind(incident.map(|r| r.number()))
                    .bind(by)
                    .bind(ms(*at))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                None => {
                    sqlx::query("DELETE FROM component_overrides WHERE component = $1")
                        .bind(component.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                }
            },
            PublicWrite::EndOverrides { incident } => {
                sqlx::query("DELETE FROM component_overrides WHERE incident = $1")
                    .bind(incident.number())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
            }
            PublicWrite::Hold { incident, by, at } => {
                sqlx::query(
                    "INSERT INTO status_holds (incident, held_by, held_at) VALUES ($1,$2,$3) \
                     ON CONFLICT (incident) DO NOTHING",
                )
                .bind(incident.number())
                .bind(by)
                .bind(ms(*at))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            }
        }
    }
    Ok(())
}

async fn insert_update(
    tx: &mut sqlx::AnyConnection,
    public_incident: &str,
    u: &PublicUpdate,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO public_updates (id, public_incident, status, body, position, created_at) VALUES ($1,$2,$3,$4, \
         (SELECT COUNT(*) + 1 FROM public_updates WHERE public_incident = $2), $5)",
    )
    .bind(&u.id)
    .bind(public_incident)
    .bind(u.status.as_str())
    .bind(&u.body)
    .bind(ms(u.created_at))
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// A public incident's columns and one of its updates (none: an incident without updates), as
/// one joined row.
type JoinedRow = (
    String,
    i64,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

/// Incidents and their updates in one statement, newest first and updates newest first: one
/// statement reads one snapshot, so an incident is never seen with updates its own row does not
/// know of yet (two queries could straddle a commit, and the announcer would announce that torn
/// state as a change of its own).
fn joined(filter: &str) -> String {
    format!(
        "SELECT i.id, i.incident, i.name, i.impact, i.status, i.components, i.created_at, i.updated_at, \
         i.resolved_at, i.version, u.id, u.status, u.body, u.created_at \
         FROM public_incidents i LEFT JOIN public_updates u ON u.public_incident = i.id \
         WHERE {filter} ORDER BY i.created_at DESC, i.id DESC, u.position DESC"
    )
}

fn public_from_rows(rows: Vec<JoinedRow>) -> Result<Vec<PublicIncident>, StoreError> {
    let mut out: Vec<PublicIncident> = Vec::new();
    for r in rows {
        if out.last().is_none_or(|p| p.id != r.0) {
            out.push(PublicIncident {
                id: r.0.clone(),
                incident: IncidentRef::new(r.1),
                name: r.2,
                impact: Impact::parse(&r.3).ok_or_else(|| corrupt("impact", &r.3))?,
                status: PublicStatus::parse(&r.4).ok_or_else(|| corrupt("public status", &r.4))?,
                components: r
                    .5
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(|c| c.parse().map_err(|e| corrupt("component", e)))
                    .collect::<Result<_, _>>()?,
                created_at: from_ms(r.6)?,
                updated_at: from_ms(r.7)?,
                resolved_at: r.8.map(from_ms).transpose()?,
                version: r.9,
                updates: Vec::new(),
            });
        }
        if let (Some(id), Some(status), Some(body), Some(at)) = (r.10, r.11, r.12, r.13) {
            let p = out.last_mut().expect("pushed above");
            p.updates.push(PublicUpdate {
                id,
                status: PublicStatus::parse(&status)
                    .ok_or_else(|| corrupt("public status", &status))?,
                body,
                created_at: from_ms(at)?,
            });
        }
    }
    Ok(out)
}

impl SqlStore {
    pub(super) async fn public_incidents_sql(
        &self,
        limit: i64,
    ) -> Result<Vec<PublicIncident>, StoreError> {
        let rows: Vec<JoinedRow> = sqlx::query_as(sqlx::AssertSqlSafe(joined(
            "i.id IN (SELECT id FROM public_incidents ORDER BY created_at DESC, id DESC LIMIT $1)",
        )))
        .bind(limit)
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        public_from_rows(rows)
    }

    pub(super) async fn public_incidents_open_since_sql(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<PublicIncident>, StoreError> {
        let rows: Vec<JoinedRow> = sqlx::query_as(sqlx::AssertSqlSafe(joined(
            "i.resolved_at IS NULL OR i.resolved_at > $1",
        )))
        .bind(ms(since))
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        public_from_rows(rows)
    }

    pub(super) async fn public_incident_of_sql(
        &self,
        incident: IncidentRef,
    ) -> Result<Option<PublicIncident>, StoreError> {
        let rows: Vec<JoinedRow> = sqlx::query_as(sqlx::AssertSqlSafe(joined("i.incident = $1")))
            .bind(incident.number())
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(public_from_rows(rows)?.into_iter().next())
    }

    pub(super) async fn component_overrides_sql(
        &self,
    ) -> Result<Vec<ComponentOverride>, StoreError> {
        let rows: Vec<(String, String, Option<i64>, String, i64)> = sqlx::query_as(
            "SELECT component, status, incident, set_by, set_at FROM component_overrides ORDER BY component",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        rows.into_iter()
            .map(|r| {
                Ok(ComponentOverride {
                    component: r.0.parse().map_err(|e| corrupt("component", e))?,
                    status: ComponentStatus::parse(&r.1)
                        .ok_or_else(|| corrupt("component status", &r.1))?,
                    incident: r.2.map(IncidentRef::new),
                    set_by: r.3,
                    set_at: from_ms(r.4)?,
                })
            })
            .collect()
    }

    pub(super) async fn status_held_sql(&self, incident: IncidentRef) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM status_holds WHERE incident = $1")
            .bind(incident.number())
            .fetch_one(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(n > 0)
    }

    pub(super) async fn status_stamp_sql(&self) -> Result<(i64, i64), StoreError> {
        let a: (Option<i64>, i64) =
            sqlx::query_as("SELECT MAX(updated_at), COUNT(*) FROM public_incidents")
                .fetch_one(&self.reader)
                .await
                .map_err(map_err)?;
        let b: (Option<i64>, i64) =
            sqlx::query_as("SELECT MAX(set_at), COUNT(*) FROM component_overrides")
                .fetch_one(&self.reader)
                .await
                .map_err(map_err)?;
        let u: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM public_updates")
            .fetch_one(&self.reader)
            .await
            .map_err(map_err)?;
        Ok((
            a.0.unwrap_or(0).max(b.0.unwrap_or(0)),
            a.1 * 1_000_000 + b.1 * 1000 + u,
        ))
    }
}
