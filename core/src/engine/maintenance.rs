//! Maintenance windows: alerts on a component under maintenance are recorded, page nobody.

use super::*;

impl Engine {
    pub(crate) async fn maintenance_start(
        &self,
        actor: &Actor,
        components: Vec<crate::domain::ComponentId>,
        duration: chrono::Duration,
        reason: String,
    ) -> Result<Reply, StoreError> {
        self.maintenance_insert(actor, components, None, duration, reason, false)
            .await
    }

    /// `/maintenance schedule`: a window that starts later (at most 90 days ahead); announced on
    /// the status page when `public`. Alert suppression applies while it runs, as for any window.
    pub(crate) async fn maintenance_schedule(
        &self,
        actor: &Actor,
        components: Vec<crate::domain::ComponentId>,
        start: DateTime<Utc>,
        duration: chrono::Duration,
        reason: String,
        public: bool,
    ) -> Result<Reply, StoreError> {
        let now = self.clock.now();
        if start <= now {
            return Ok(Reply::refused(format!(
                "bad value for `start`: {} is not in the future (now is {}); /maintenance start begins one now",
                render::time(start),
                render::time(now)
            )));
        }
        if start > now + chrono::Duration::days(90) {
            return Ok(Reply::refused(
                "bad value for `start`: at most 90 days ahead".to_string(),
            ));
        }
        self.maintenance_insert(actor, components, Some(start), duration, reason, public)
            .await
    }

    async fn maintenance_insert(
        &self,
        actor: &Actor,
        components: Vec<crate::domain::ComponentId>,
        start: Option<DateTime<Utc>>,
        duration: chrono::Duration,
        reason: String,
        public: bool,
    ) -> Result<Reply, StoreError> {
        let reply = retry_on_conflict!(async {
            let now = self.clock.now();
            let starts_at = start.unwrap_or(now);
            let id = self.store.next_maintenance_id().await?;
            let window = crate::store::Maintenance {
                id,
                components: components.clone(),
                starts_at,
                ends_at: starts_at + duration,
                reason: reason.clone(),
                created_by: actor.id.clone(),
                ended_at: None,
                ended_by: None,
                public,
            };
            let mut plan = Plan::new(self, actor, now);
            plan.audit.push(AuditRecord {
                at: now,
                actor: actor.id.clone(),
                action: "maintenance.start".into(),
                subject: format!("maintenance:{id}"),
                detail: serde_json::json!({"components": components, "starts_at": window.starts_at, "ends_at": window.ends_at, "reason": reason, "public": public}),
            });
            plan.extra
                .maintenance
                .push(crate::store::MaintenanceWrite::Insert(window.clone()));
            self.commit(plan.finish(None)).await?;
            let when = if start.is_some() {
                format!(
                    "scheduled on {} from {} until {}",
                    render::components(&window.components),
                    render::time(window.starts_at),
                    render::time(window.ends_at)
                )
            } else {
                format!(
                    "started on {} until {}",
                    render::components(&window.components),
                    render::time(window.ends_at)
                )
            };
            Ok(Reply::ok(
                format!(
                    "Maintenance #{id} {when}: {reason}. Matching alerts are recorded but open no incident{}.",
                    if public { "; it is announced on the status page" } else { "" }
                ),
                None,
            ))
        })?;
        if public {
            self.rebuild_status().await?;
        }
        Ok(reply)
    }

    pub(crate) async fn maintenance_end(
        &self,
        actor: &Actor,
        id: Option<i64>,
    ) -> Result<Reply, StoreError> {
        let now = self.clock.now();
        let active = self.store.maintenance_windows(Some(now)).await?;
        let window = match id {
            Some(id) => match active.iter().find(|w| w.id == id) {
                Some(w) => w,
                None => {
                    return Ok(Reply::refused(format!(
                        "maintenance #{id} is not active; /maintenance list shows the active ones"
                    )))
                }
            },
            None => match active.as_slice() {
                [one] => one,
                [] => return Ok(Reply::refused("no maintenance window is active")),
                many => {
                    let ids: Vec<String> = many.iter().map(|w| format!("#{}", w.id)).collect();
                    return Ok(Reply::refused(format!(
                        "{} maintenance windows are active ({}); name one with id:<n>",
                        many.len(),
                        ids.join(", ")
                    )));
                }
            },
        };
        let mut plan = Plan::new(self, actor, now);
        plan.audit.push(AuditRecord {
            at: now,
            actor: actor.id.clone(),
            action: "maintenance.end".into(),
            subject: format!("maintenance:{}", window.id),
            detail: serde_json::json!({}),
        });
        plan.extra
            .maintenance
            .push(crate::store::MaintenanceWrite::End {
                id: window.id,
                at: now,
                by: actor.id.clone(),
            });
        self.commit(plan.finish(None)).await?;
        Ok(Reply::ok(
            format!(
                "Maintenance #{} on {} ended",
                window.id,
                render::components(&window.components)
            ),
            None,
        ))
    }
}
