//! Declaring an incident: the one path for people, alert intake and the dead man's switch.

use super::*;

impl Engine {
    /// Declares an incident. Public so alert intake can declare through the same rules.
    pub async fn declare(
        &self,
        actor: &Actor,
        level: LevelId,
        title: String,
        components: Vec<crate::domain::ComponentId>,
        commander: Option<PersonId>,
        source: Source,
    ) -> Result<Reply, StoreError> {
        self.declare_with(
            actor,
            level,
            title,
            components,
            commander,
            source,
            &|_, _| {},
        )
        .await
    }

    /// Declares an incident; `also` adds what else belongs in the same transaction (the alert
    /// that caused it, a completed job, …), given the numbered incident.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn declare_with(
        &self,
        actor: &Actor,
        level: LevelId,
        title: String,
        components: Vec<crate::domain::ComponentId>,
        commander: Option<PersonId>,
        source: Source,
        also: &(dyn Fn(&mut Plan<'_>, &Incident) + Send + Sync),
    ) -> Result<Reply, StoreError> {
        let Some(lvl) = self.config.level(level) else {
            return Ok(Reply::refused(format!(
                "unknown level {level}; accepted: {}",
                self.config.level_choices()
            )));
        };
        let now = self.clock.now();
        // The guide's immediate response runs at once, in the same transaction: its run id is
        // taken first (a concurrent request taking it makes the commit conflict and retry).
        let auto = self.on_declare_runbook(level);
        let active_locks: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(vec![]);
        // The store picks the number inside its serialised write and asks for the changeset of
        // that incident, so concurrent declares never contend for a number.
        let built: std::sync::Mutex<Option<Incident>> = std::sync::Mutex::new(None);
        let build = |reference: IncidentRef, run_id: i64| {
            let mut inc = Incident::declare(
                reference,
                level,
                lvl.rto,
                title.clone(),
                components.clone(),
                commander.clone(),
                source,
                actor.id.clone(),
                now,
            );
            let mut plan = Plan::new(self, actor, now);
            let text = format!(
                "{} declared at level {} {} by {}: {} (RTO {}, deadline {})",
                inc.reference,
                level,
                lvl.name,
                self.config.display_name(&actor.id),
                inc.title,
                format_duration(lvl.rto),
                render::time(inc.rto_deadline)
            );
            plan.event(&inc, EventKind::Declared, text, false);
            plan.audit("incident.declare", &inc, serde_json::json!({"level": level.0, "title": inc.title, "source": source.as_str()}));
            plan.start_escalation(&mut inc);
            plan.schedule_rto(&inc);
            self.schedule_publish(&mut plan, &inc);
            also(&mut plan, &inc);
            if let Some(rb) = auto {
                let locks = active_locks.lock().unwrap().clone();
                self.request_on_declare(&mut plan, rb, &inc, run_id, &locks);
            }
            *built.lock().unwrap() = Some(inc.clone());
            plan.finish(Some(IncidentWrite::Insert(inc)))
        };
        retry_on_conflict!(async {
            if auto.is_some() {
                let locks = self
                    .store
                    .runs(crate::store::RunFilter {
                        active: true,
                        incident: None,
                        limit: 1000,
                    })
                    .await?
                    .into_iter()
                    .map(|r| r.lock_key)
                    .collect();
                *active_locks.lock().unwrap() = locks;
            }
            self.store.commit_new_incident(&build).await
        })?;
        self.wake_dispatchers();
        // The status follower and announcer: a publication without grace is announced at once.
        self.status_wakeup.notify_one();
        if auto.is_some() {
            self.run_wakeup.notify_one();
        }
        if self.config.status.publish_after <= chrono::Duration::zero()
            && level >= self.config.status.publish_min_level
        {
            self.rebuild_status().await?;
        }
        let mut inc = built
            .into_inner()
            .unwrap()
            .expect("the store built the incident");
        inc.version = 1;
        let reply = render::incident(&inc, &self.config, now);
        Ok(Reply::ok(format!("Declared {reply}"), Some(inc)))
    }
}
