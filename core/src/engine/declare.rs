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
        if self.config.level(level).is_none() {
            return Ok(Reply::refused(format!(
                "unknown level {level}; accepted: {}",
                self.config.level_choices()
            )));
        }
        let now = self.clock.now();
        let spec = Declaration {
            level,
            title,
            components,
            commander,
            source,
        };
        let auto = self.on_declare_runbook(level).is_some();
        // The store picks the number inside its serialised write and asks for the changeset of
        // that incident, so concurrent declares never contend for a number.
        let built: std::sync::Mutex<Option<Incident>> = std::sync::Mutex::new(None);
        let locks: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(vec![]);
        let build = |reference: IncidentRef, run_id: i64| {
            let locks = locks.lock().unwrap().clone();
            let (inc, cs) = self.declaration(actor, &spec, now, reference, run_id, &locks, also);
            *built.lock().unwrap() = Some(inc);
            cs
        };
        retry_on_conflict!(async {
            *locks.lock().unwrap() = self.active_run_locks(auto).await?;
            self.store.commit_new_incident(&build).await
        })?;
        self.declared(&[level], auto).await?;
        let mut inc = built
            .into_inner()
            .unwrap()
            .expect("the store built the incident");
        inc.version = 1;
        let reply = render::incident(&inc, &self.config, now);
        Ok(Reply::ok(format!("Declared {reply}"), Some(inc)))
    }

    /// The lock keys of active runs, read before a declaration that starts the guide's
    /// immediate response (a concurrent request taking one makes the commit conflict and
    /// retry); none when no run starts.
    pub(crate) async fn active_run_locks(&self, auto: bool) -> Result<Vec<String>, StoreError> {
        if !auto {
            return Ok(vec![]);
        }
        Ok(self
            .store
            .runs(crate::store::RunFilter {
                active: true,
                incident: None,
                limit: 1000,
            })
            .await?
            .into_iter()
            .map(|r| r.lock_key)
            .collect())
    }

    /// The incident `spec` declares as `reference`, and its changeset: the declaration event
    /// and audit record, the escalation, the RTO clock, the publication, what `also` adds, and
    /// the guide's immediate response (run `run_id`) when one is configured. Pure: the store
    /// calls it inside its write, with the number it read there.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn declaration(
        &self,
        actor: &Actor,
        spec: &Declaration,
        now: DateTime<Utc>,
        reference: IncidentRef,
        run_id: i64,
        active_locks: &[String],
        also: &(dyn Fn(&mut Plan<'_>, &Incident) + Send + Sync),
    ) -> (Incident, Changeset) {
        let level = spec.level;
        let lvl = self.config.level(level).expect("the level was checked");
        let mut inc = Incident::declare(
            reference,
            level,
            lvl.rto,
            spec.title.clone(),
            spec.components.clone(),
            spec.commander.clone(),
            spec.source,
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
        plan.audit("incident.declare", &inc, serde_json::json!({"level": level.0, "title": inc.title, "source": spec.source.as_str()}));
        plan.start_escalation(&mut inc);
        plan.schedule_rto(&inc);
        self.schedule_publish(&mut plan, &inc);
        also(&mut plan, &inc);
        if let Some(rb) = self.on_declare_runbook(level) {
            self.request_on_declare(&mut plan, rb, &inc, run_id, active_locks);
        }
        let cs = plan.finish(Some(IncidentWrite::Insert(inc.clone())));
        (inc, cs)
    }

    /// After declarations at `levels` were committed: the dispatchers, the status follower and
    /// announcer (a publication without grace is announced at once), and the run worker.
    pub(crate) async fn declared(&self, levels: &[LevelId], auto: bool) -> Result<(), StoreError> {
        self.wake_dispatchers();
        self.status_wakeup.notify_one();
        if auto {
            self.run_wakeup.notify_one();
        }
        if self.config.status.publish_after <= chrono::Duration::zero()
            && levels
                .iter()
                .any(|l| *l >= self.config.status.publish_min_level)
        {
            self.rebuild_status().await?;
        }
        Ok(())
    }
}

/// What a declaration asks for, before it has a number.
pub(crate) struct Declaration {
    pub(crate) level: LevelId,
    pub(crate) title: String,
    pub(crate) components: Vec<crate::domain::ComponentId>,
    pub(crate) commander: Option<PersonId>,
    pub(crate) source: Source,
}
