//! Paging: the escalation matrix (tiers over unacknowledged time) and `/page` by hand.

use super::*;

impl Plan<'_> {
    /// Pages the first tier of the incident's level now and schedules the later tiers, which
    /// fire only while the incident stays unacknowledged.
    pub(crate) fn start_escalation(&mut self, inc: &Incident) {
        let Some(tiers) = self.engine.config.escalation.get(&inc.level) else {
            return;
        };
        for (i, tier) in tiers.iter().enumerate() {
            if tier.after <= chrono::Duration::zero() {
                self.page_tier(inc, i);
            } else {
                self.jobs.push(JobChange::Schedule(NewJob {
                    key: format!("esc:{}:v{}:t{i}", inc.reference, inc.version),
                    incident: Some(inc.reference),
                    due_at: self.at + tier.after,
                    payload: crate::store::JobPayload::EscalationTier {
                        tier: i,
                        level: inc.level,
                    },
                }));
            }
        }
    }

    pub(crate) fn cancel_escalation(&mut self, inc: &Incident) {
        self.cancel_jobs(inc.reference, crate::store::JobKind::EscalationTier);
    }

    pub(crate) fn page_tier(&mut self, inc: &Incident, tier: usize) {
        let config = &self.engine.config;
        let Some(t) = config
            .escalation
            .get(&inc.level)
            .and_then(|tiers| tiers.get(tier))
        else {
            return;
        };
        let level = config
            .level(inc.level)
            .map(|l| l.name.as_str())
            .unwrap_or("");
        let r = inc.reference;
        for person in &t.people {
            self.outbox.push(NewMessage {
                channel: Channel::Log,
                kind: MessageKind::Page,
                target: person.to_string(),
                incident: Some(r),
                text: format!(
                    "[PAGE] {r} level {} {level}: {} — acknowledge with /incident ack incident:{r}",
                    inc.level, inc.title
                ),
                priority: 10,
                idempotency_key: format!(
                    "page:{r}:v{}:L{}:t{tier}:{person}",
                    inc.version, inc.level
                ),
                ordering_key: format!("page:{person}"),
            });
        }
        let names: Vec<String> = t
            .people
            .iter()
            .map(|p| config.display_name(p.as_str()))
            .collect();
        let text = format!(
            "paged tier {} of level {} ({}): {}",
            tier + 1,
            inc.level,
            t.targets.join(", "),
            names.join(", ")
        );
        self.event(inc, EventKind::Paged, text, false);
    }
}

/// Paging by hand and maintenance windows: commands that are not about one incident's state.
impl Engine {
    pub(crate) async fn page(
        &self,
        actor: &Actor,
        target: &str,
        text: Option<String>,
        incident: Option<IncidentRef>,
        ctx: &CommandContext,
    ) -> Result<Reply, StoreError> {
        let people: Vec<PersonId> = match self.config.person(target) {
            Some(p) => vec![p.id.clone()],
            None => self
                .config
                .teams
                .get(target)
                .map(|t| t.members.clone())
                .unwrap_or_default(),
        };
        let who = self.config.display_name(&actor.id);
        let about = incident.or(ctx.channel_incident);
        let token = crate::random_token(8);
        retry_on_conflict!(async {
            let now = self.clock.now();
            let mut plan = Plan::new(self, actor, now);
            let mut write = None;
            let subject = match about {
                Some(r) => {
                    let Some(inc) = self.store.incident(r).await? else {
                        return Ok(Reply::refused(no_such(r)));
                    };
                    let names: Vec<String> = people
                        .iter()
                        .map(|p| self.config.display_name(p.as_str()))
                        .collect();
                    let mut line = format!("{who} paged {target}: {}", names.join(", "));
                    if let Some(t) = &text {
                        line.push_str(&format!(" — {t}"));
                    }
                    plan.event(&inc, EventKind::Paged, line, false);
                    write = Some(IncidentWrite::Update(inc));
                    r.to_string()
                }
                None => "page".to_string(),
            };
            for person in &people {
                let mut body = format!("[PAGE] from {who}");
                if let Some(r) = about {
                    body.push_str(&format!(" about {r}"));
                }
                if let Some(t) = &text {
                    body.push_str(&format!(": {t}"));
                }
                plan.outbox.push(NewMessage {
                    channel: Channel::Log,
                    kind: MessageKind::Page,
                    target: person.to_string(),
                    incident: about,
                    text: body,
                    priority: 10,
                    idempotency_key: format!("page:manual:{token}:{person}"),
                    ordering_key: format!("page:{person}"),
                });
            }
            plan.audit.push(AuditRecord {
                at: now,
                actor: actor.id.clone(),
                action: "page".into(),
                subject,
                detail: serde_json::json!({"target": target, "people": people, "text": text}),
            });
            self.commit(plan.finish(write)).await?;
            let names: Vec<String> = people
                .iter()
                .map(|p| self.config.display_name(p.as_str()))
                .collect();
            Ok(Reply::ok(
                format!("Paged {target}: {}", names.join(", ")),
                None,
            ))
        })
    }
}
