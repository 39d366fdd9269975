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
        retry_on_conflict!(async {
            let now = self.clock.now();
            let id = self.store.next_maintenance_id().await?;
            let window = crate::store::Maintenance {
                id,
                components: components.clone(),
                starts_at: now,
                ends_at: now + duration,
                reason: reason.clone(),
                created_by: actor.id.clone(),
                ended_at: None,
                ended_by: None,
            };
            let mut plan = Plan::new(self, actor, now);
            plan.audit.push(AuditRecord {
                at: now,
                actor: actor.id.clone(),
                action: "maintenance.start".into(),
                subject: format!("maintenance:{id}"),
                detail: serde_json::json!({"components": components, "ends_at": window.ends_at, "reason": reason}),
            });
            plan.extra
                .maintenance
                .push(crate::store::MaintenanceWrite::Insert(window.clone()));
            self.commit(plan.finish(None)).await?;
            Ok(Reply::ok(
                    format!(
                        "Maintenance #{id} started on {} until {}: {reason}. Matching alerts are recorded but open no incident.",
                        render::components(&window.components),
                        render::time(window.ends_at)
                    ),
                    None,
                ))
        })
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
