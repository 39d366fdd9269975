//! The rules of each command that changes one incident.

use super::*;

impl Engine {
    /// Read, decide, commit; again on a lost race.
    pub(crate) async fn mutate(
        &self,
        actor: &Actor,
        r: IncidentRef,
        cmd: &Command,
    ) -> Result<Reply, StoreError> {
        // One decision per incident at a time in this process, so local writers never race;
        // other replicas can still, and lose to optimistic versioning and retry below.
        let _turn = self.incident_lock(r).lock().await;
        retry_on_conflict!(async {
            let Some(current) = self.store.incident(r).await? else {
                return Ok(Reply::refused(no_such(r)));
            };
            let spec = cmd.spec();
            let is_commander = actor.person.is_some() && actor.person == current.commander;
            if !permitted(actor, spec.role, is_commander) {
                return Ok(Reply::refused(self.denied(actor, spec.role, &spec.name())));
            }
            let now = self.clock.now();
            let mut next = current.clone();
            let mut plan = Plan::new(self, actor, now);
            let done = match self.decide(&mut next, &mut plan, cmd) {
                Ok(text) => text,
                Err(e) => return Ok(Reply::refused(e.to_string())),
            };
            // A public update is also the users' news: on the status page, in the same commit.
            if let Command::Update {
                text, public: true, ..
            } = cmd
            {
                let published = self.store.public_incident_of(r).await?;
                self.public_post_in(&mut plan, &next, published.as_ref(), text, None);
            }
            // A person's change to an acknowledged incident is activity: the acknowledgement's
            // expiry starts again.
            if actor.person.is_some() {
                plan.touch_ack(&next);
            }
            let public = !plan.extra.public.is_empty();
            let cs = plan.finish(Some(IncidentWrite::Update(next.clone())));
            self.commit(cs).await?;
            if public {
                self.rebuild_status().await?;
            }
            self.observe_transition(&current, &next, now);
            next.version += 1;
            Ok(Reply::ok(done, Some(next)))
        })
    }

    /// The rules for each mutating command: change `inc`, record in `plan`, return the reply.
    pub(crate) fn decide(
        &self,
        inc: &mut Incident,
        plan: &mut Plan<'_>,
        cmd: &Command,
    ) -> Result<String, DomainError> {
        let who = self.config.display_name(&plan.actor.id);
        let r = inc.reference;
        match cmd {
            Command::Ack { .. } => {
                let from = inc.phase;
                inc.acknowledge(&plan.actor.id, plan.at)?;
                plan.cancel_escalation(inc);
                plan.touch_ack(inc);
                plan.event(
                    inc,
                    EventKind::Acknowledged,
                    format!("{r} acknowledged by {who}; paging stopped"),
                    false,
                );
                plan.phase_moved(inc, from, "acknowledged");
                plan.audit("incident.ack", inc, serde_json::json!({}));
                Ok(format!("{r} acknowledged by {who}; paging stopped"))
            }
            Command::Update { text, public, .. } => {
                inc.ensure_not_closed("updated")?;
                plan.event(inc, EventKind::Update, text.clone(), *public);
                plan.audit(
                    "incident.update",
                    inc,
                    serde_json::json!({"public": public}),
                );
                Ok(format!(
                    "{r}: {} update posted",
                    if *public { "public" } else { "internal" }
                ))
            }
            Command::Escalate { level, .. } => {
                let from = inc.level;
                let to = match level {
                    Some(l) => *l,
                    None => self
                        .config
                        .levels
                        .keys()
                        .find(|l| **l > from)
                        .copied()
                        .ok_or_else(|| {
                            DomainError::refused(format!(
                                "{r} is already at the highest level {from}"
                            ))
                        })?,
                };
                let lvl = self.config.level(to).expect("parser checked the level");
                inc.change_level(to, lvl.rto)?;
                let verb = if to > from {
                    "escalated"
                } else {
                    "de-escalated"
                };
                let text = format!(
                    "{r} {verb} from level {from} to {to} {} by {who}; RTO deadline now {}",
                    lvl.name,
                    render::time(inc.rto_deadline)
                );
                plan.event(inc, EventKind::LevelChanged, text.clone(), false);
                plan.audit(
                    "incident.escalate",
                    inc,
                    serde_json::json!({"from": from.0, "to": to.0}),
                );
                plan.cancel_escalation(inc);
                if to > from {
                    plan.start_escalation(inc);
                }
                plan.schedule_rto(inc);
                Ok(text)
            }
            Command::Resolve { summary, .. } => {
                inc.resolve(summary.clone(), plan.at)?;
                plan.cancel_escalation(inc);
                plan.cancel_rto(r);
                let took = render::duration_between(inc.declared_at, plan.at);
                let mut text = format!("{r} resolved by {who} after {took}");
                if let Some(s) = summary {
                    text.push_str(&format!(": {s}"));
                }
                let rto_met = plan.at <= inc.rto_deadline;
                text.push_str(if rto_met {
                    " (within RTO)"
                } else {
                    " (RTO missed)"
                });
                plan.event(inc, EventKind::Resolved, text.clone(), false);
                plan.audit(
                    "incident.resolve",
                    inc,
                    serde_json::json!({"summary": summary, "rto_met": rto_met}),
                );
                Ok(text)
            }
            Command::Reopen { reason, .. } => {
                inc.reopen()?;
                let mut text = format!("{r} reopened by {who}");
                if let Some(reason) = reason {
                    text.push_str(&format!(": {reason}"));
                }
                plan.event(inc, EventKind::Reopened, text.clone(), false);
                plan.audit(
                    "incident.reopen",
                    inc,
                    serde_json::json!({"reason": reason}),
                );
                plan.start_escalation(inc);
                plan.schedule_rto(inc);
                Ok(text)
            }
            Command::Close { .. } => {
                inc.close(plan.at)?;
                let text = format!("{r} closed by {who}");
                plan.event(inc, EventKind::Closed, text.clone(), false);
                plan.audit("incident.close", inc, serde_json::json!({}));
                Ok(text)
            }
            Command::Commander { user, .. } => {
                inc.set_commander(user.clone())?;
                let text = format!(
                    "{r}: {} is now the incident commander (set by {who})",
                    self.config.display_name(user.as_str())
                );
                plan.event(inc, EventKind::CommanderChanged, text.clone(), false);
                plan.audit(
                    "incident.commander",
                    inc,
                    serde_json::json!({"commander": user}),
                );
                Ok(text)
            }
            Command::Phase { phase, .. } => {
                let from = inc.phase;
                inc.set_phase(*phase)?;
                let text = format!(
                    "{r} moved from {} to {} by {who}",
                    from.title(),
                    phase.title()
                );
                plan.event(inc, EventKind::PhaseChanged, text.clone(), false);
                plan.audit(
                    "incident.phase",
                    inc,
                    serde_json::json!({"from": from, "to": phase}),
                );
                Ok(text)
            }
            Command::Hold { .. } => {
                if !inc.state.is_open() {
                    return Err(DomainError::wrong_state(
                        inc.state,
                        format!(
                            "{r} is {}; only an open incident can be held open",
                            inc.state
                        ),
                    ));
                }
                plan.jobs.push(JobChange::Cancel {
                    incident: r,
                    kind: JobKind::Autoresolve,
                });
                // A hold keeps the incident for people to finish: paging stops.
                plan.cancel_escalation(inc);
                let text = format!("{r} held open by {who}: it will not resolve by itself, and its pending pages are stopped");
                plan.event(inc, EventKind::Held, text.clone(), false);
                plan.audit("incident.hold", inc, serde_json::json!({}));
                Ok(text)
            }
            Command::Declare { .. }
            | Command::Show { .. }
            | Command::Timeline { .. }
            | Command::List { .. }
            | Command::Help { .. }
            | Command::Page { .. }
            | Command::Oncall { .. }
            | Command::OncallOverride { .. }
            | Command::MaintenanceStart { .. }
            | Command::MaintenanceList
            | Command::MaintenanceSchedule { .. }
            | Command::RunbookList
            | Command::RunbookShow { .. }
            | Command::RunbookRun { .. }
            | Command::RunbookApprove { .. }
            | Command::RunbookDeny { .. }
            | Command::RunbookCancel { .. }
            | Command::RunbookConfirm { .. }
            | Command::RunbookStatus { .. }
            | Command::SystemCheck { .. }
            | Command::StatusShow
            | Command::StatusPublish { .. }
            | Command::StatusHold { .. }
            | Command::StatusPost { .. }
            | Command::StatusComponent { .. }
            | Command::MaintenanceEnd { .. } => {
                unreachable!("not a mutation of one incident")
            }
        }
    }
}
