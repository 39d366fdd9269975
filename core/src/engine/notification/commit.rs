//! Writing a notification's decisions: one unit of the incidents it moved, the alert rows that
//! move none, and its declarations, numbered by the store inside its write.

use super::*;

impl<'a> Decide<'a> {
    /// Writes the segment as one unit and answers each alert's outcome.
    pub(super) async fn commit(self, decided: Vec<Decided>) -> Result<Vec<Outcome>, StoreError> {
        let engine = self.engine;
        let mut parts = vec![];
        let mut status_moves = false;
        for mut t in self.touched.into_iter().filter(|t| t.moved) {
            flush_notes(&mut t.plan, &t.inc, &mut t.notes);
            // The status page follows incidents, not their alerts: a join leaves it as it is.
            let write = if t.guard_only() {
                IncidentWrite::Guard(t.inc)
            } else {
                status_moves = true;
                IncidentWrite::Update(t.inc)
            };
            parts.push(Part::Write(t.plan.finish(Some(write))));
        }
        let loose = self.loose.finish(None);
        if !loose.alerts.is_empty() {
            parts.push(Part::Write(loose));
        }
        let news = self.news;
        parts.extend(news.iter().map(|_| Part::Declare));
        let auto = news
            .iter()
            .any(|n| engine.on_declare_runbook(n.routed.level).is_some());
        let locks = engine.active_run_locks(auto).await?;
        let actor = self.actor;
        let now = self.now;
        let source = self.source;
        let specs: Vec<Declaration> = news
            .iter()
            .map(|n| Declaration {
                level: n.routed.level,
                title: n.routed.title.clone(),
                components: n.routed.components.clone(),
                commander: None,
                source: Source::Alert,
            })
            .collect();
        let started: std::sync::Mutex<Vec<Vec<String>>> = std::sync::Mutex::new(vec![]);
        let build = |k: usize, number: IncidentRef, run_id: i64| {
            let n = &news[k];
            let also = |plan: &mut Plan<'_>, inc: &Incident| {
                let mut notes: Vec<Note> = n.notes.iter().map(Note::copy).collect();
                flush_notes(plan, inc, &mut notes);
                for rec in &n.alerts {
                    let mut rec = rec.clone();
                    rec.incident = Some(inc.reference);
                    plan.extra.alerts.push(rec);
                }
                plan.extra.alert_groups.push(GroupWrite {
                    source: source.to_string(),
                    group_key: n.group_key.clone(),
                    incident: inc.reference,
                    previous: n.previous,
                });
            };
            // The runs the notification's earlier declarations start hold their lock keys too
            // (in this pass: the writer builds declarations in order, again if it redoes the
            // batch), so a runbook whose target they share is not started twice.
            let mut active = locks.clone();
            let mut started = started.lock().unwrap();
            started.truncate(k);
            active.extend(started.iter().flatten().cloned());
            let cs = engine
                .declaration(actor, &specs[k], now, number, run_id, &active, &also)
                .1;
            started.push(
                cs.runs
                    .iter()
                    .filter_map(|w| match w {
                        crate::store::RunWrite::Insert(run) => Some(run.lock_key.clone()),
                        _ => None,
                    })
                    .collect(),
            );
            cs
        };
        // Only the lanes with new messages are woken (declarations wake theirs below).
        let kinds: Vec<_> = parts
            .iter()
            .flat_map(|p| match p {
                Part::Write(cs) => cs.outbox.iter().map(|m| m.kind).collect(),
                Part::Declare => vec![],
            })
            .collect();
        let refs = engine.store().commit_unit(parts, &build).await?;
        engine.wake_for(kinds);
        if status_moves {
            engine.status_wakeup.notify_one();
        }
        if !news.is_empty() {
            let levels: Vec<_> = news.iter().map(|n| n.routed.level).collect();
            engine.declared(&levels, auto).await?;
        }
        Ok(decided
            .into_iter()
            .map(|d| match d {
                Decided::Done(o) => o,
                Decided::New(k) => Outcome::Changed(refs.get(k).copied()),
            })
            .collect())
    }
}
