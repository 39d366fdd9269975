//! Paging: the escalation matrix walked over unacknowledged time, pages to people through their
//! contact methods (each failure falling through to the next), and `/page` by hand.
//!
//! One escalation is identified by the incident version it started at (its *epoch*): the tiers
//! of a level are scheduled as jobs `esc:INC-7:v3:t<tier>` (and `…:r<n>` for repeats of the last
//! tier) when it starts, and all of them are cancelled together by an acknowledgement, a hold or
//! quiet alerts. Each page of a person is `page:INC-7:v3:t1:a0:dba`; each contact method of that
//! page is one outbox message `…:m<index>`, so a retried decision never pages twice and a
//! method's failure creates exactly one message for the next method.

use super::*;
use crate::config::{ContactMethod, Target};
use crate::oncall::tier_people;
use crate::oncall::RotationOverride;
use crate::store::{AckLink, AckLinkWrite, JobPayload, Page, PageIncident};

/// Why someone is paged, as the page and the timeline say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PageReason {
    Escalation,
    Repeat,
    Manual,
    Rto,
    AckExpired,
}

impl PageReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PageReason::Escalation => "escalation",
            PageReason::Repeat => "repeat",
            PageReason::Manual => "manual",
            PageReason::Rto => "rto",
            PageReason::AckExpired => "ack_expired",
        }
    }
}

/// What a page is: its key (the page across its methods, without the person), why, the tier
/// it belongs to, the job of the next tier (hastened when someone cannot be reached), how late it
/// is, and a note from whoever paged by hand.
pub(crate) struct PageSpec<'a> {
    pub(crate) key: &'a str,
    pub(crate) why: PageReason,
    pub(crate) tier: Option<usize>,
    pub(crate) next_tier_job: Option<String>,
    pub(crate) late: Option<chrono::Duration>,
    pub(crate) note: Option<String>,
}

/// A page by hand (`/page`).
fn manual_page(key: &str, note: Option<String>) -> PageSpec<'_> {
    PageSpec {
        key,
        why: PageReason::Manual,
        tier: None,
        next_tier_job: None,
        late: None,
        note,
    }
}

/// What one call to [`Plan::page_people`] did, for the timeline and replies.
#[derive(Debug, Default)]
pub(crate) struct Paged {
    /// "Database Administrator (dba) by webhook"
    pub(crate) reached: Vec<String>,
    /// "Hosting Provider (hosting): email needs an [smtp] section"
    pub(crate) unreachable: Vec<String>,
}

/// Job key of tier `tier` (repeat `repeat`) of the escalation that started at `epoch`.
fn tier_job_key(r: IncidentRef, epoch: i64, tier: usize, repeat: u32) -> String {
    if repeat == 0 {
        format!("esc:{r}:v{epoch}:t{tier}")
    } else {
        format!("esc:{r}:v{epoch}:t{tier}:r{repeat}")
    }
}

impl Plan<'_> {
    /// Starts the escalation of the incident's level: tier 0 now (or at its `after`), the later
    /// tiers and the repeats of the last one scheduled, each firing only while nobody has
    /// acknowledged.
    pub(crate) fn start_escalation(&mut self, inc: &mut Incident) {
        self.continue_escalation(inc, 0, PageReason::Escalation);
    }

    /// Pages tier `from` now and schedules the tiers after it relative to now (an expired
    /// acknowledgement resumes at the tier the incident had reached).
    pub(crate) fn continue_escalation(&mut self, inc: &mut Incident, from: usize, why: PageReason) {
        let Some(policy) = self.engine.config.escalation.get(&inc.level) else {
            return;
        };
        if from >= policy.tiers.len() {
            return;
        }
        // Tiers are timed from the escalation's start; a resumed one re-times from `from`.
        let base = if from == 0 {
            chrono::Duration::zero()
        } else {
            policy.tiers[from].after
        };
        let epoch = inc.version;
        let r = inc.reference;
        let level = inc.level;
        let last = policy.tiers.len() - 1;
        let schedule = |plan: &mut Self, tier: usize, repeat: u32, offset: chrono::Duration| {
            plan.jobs.push(JobChange::Schedule(NewJob {
                key: tier_job_key(r, epoch, tier, repeat),
                incident: Some(r),
                due_at: plan.at + offset,
                payload: JobPayload::EscalationTier {
                    tier,
                    level,
                    repeat,
                    epoch,
                },
            }));
        };
        for (i, tier) in policy.tiers.iter().enumerate().skip(from) {
            let offset = tier.after - base;
            if i == from && offset <= chrono::Duration::zero() {
                continue; // paged now, below
            }
            schedule(self, i, 0, offset);
        }
        let last_offset = policy.tiers[last].after - base;
        for n in 1..=policy.repeat {
            schedule(self, last, n, last_offset + policy.repeat_every * n as i32);
        }
        if policy.tiers[from].after - base <= chrono::Duration::zero() {
            self.page_tier(inc, epoch, from, 0, why, None);
        }
    }

    /// Stops the escalation: its scheduled tiers, and every page of the incident not yet sent.
    pub(crate) fn cancel_escalation(&mut self, inc: &Incident) {
        self.cancel_jobs(inc.reference, JobKind::EscalationTier);
        self.extra.cancel_pages.push(inc.reference);
    }

    /// Pages one tier of the escalation that started at `epoch`. `late` is how long after its
    /// due time it runs (Spotter was down), which the page and the timeline say.
    pub(crate) fn page_tier(
        &mut self,
        inc: &mut Incident,
        epoch: i64,
        tier: usize,
        repeat: u32,
        why: PageReason,
        late: Option<chrono::Duration>,
    ) {
        let config = self.engine.config.clone();
        let Some(policy) = config.escalation.get(&inc.level) else {
            return;
        };
        let Some(t) = policy.tiers.get(tier) else {
            return;
        };
        inc.escalation_tier = Some(tier as u32);
        let people = tier_people(&config, &t.notify, self.at, &self.overrides);
        let next_job = (tier + 1 < policy.tiers.len())
            .then(|| tier_job_key(inc.reference, epoch, tier + 1, 0));
        let key = format!("page:{}:v{epoch}:t{tier}:a{repeat}", inc.reference);
        let paged = self.page_people(
            Some(inc),
            &people,
            PageSpec {
                key: &key,
                why,
                tier: Some(tier),
                next_tier_job: next_job.clone(),
                late,
                note: None,
            },
        );
        let what = match why {
            PageReason::Repeat => format!(
                "paged tier {} of level {} again (repeat {repeat})",
                tier + 1,
                inc.level
            ),
            PageReason::AckExpired => {
                format!("paged tier {} of level {} again", tier + 1, inc.level)
            }
            _ => format!("paged tier {} of level {}", tier + 1, inc.level),
        };
        let mut text = format!("{what} ({}): ", t.targets.join(", "));
        text.push_str(&if paged.reached.is_empty() {
            "nobody could be paged".to_string()
        } else {
            paged.reached.join(", ")
        });
        if let Some(l) = late {
            text.push_str(&format!(
                " — late by {}: it fell due while Spotter was not running",
                render::duration_between(self.at - l, self.at)
            ));
        }
        // The next tier, when it is paged now in this changeset (below).
        let mut cascade = false;
        if !paged.unreachable.is_empty() {
            let then = match &next_job {
                Some(job) => {
                    cascade = self.unschedule(job);
                    if !cascade {
                        self.jobs.push(JobChange::Hasten {
                            key: job.clone(),
                            due_at: self.at,
                        });
                    }
                    format!(
                        "tier {} counts as unanswered: tier {} is paged now",
                        tier + 1,
                        tier + 2
                    )
                }
                None => format!("tier {} is the last tier: nobody further to page", tier + 1),
            };
            text.push_str(&format!(
                "; cannot page {}; {then}",
                paged.unreachable.join("; ")
            ));
            for _ in &paged.unreachable {
                self.engine.metrics.page_outcome("none", "fell_through");
            }
        }
        // One entry per tier paged: who was reached, who could not be, and what follows.
        self.event(inc, EventKind::Paged, text, false);
        if cascade {
            self.page_tier(inc, epoch, tier + 1, 0, PageReason::Escalation, None);
        }
    }

    /// Takes the job `key` out of this changeset's schedules; `false` when it is not among
    /// them (it was written before, and is hastened instead).
    ///
    /// A tier that counts as unanswered as soon as it is paged (nobody in it can be reached)
    /// has its next tier paged in the same changeset when that tier's job is scheduled there
    /// too, as when an escalation starts: nobody can have acknowledged in between, and the page
    /// does not wait for the scheduler, nor cost a transaction of its own (in a storm of
    /// declarations with unreachable first tiers, that was every other write). A job already
    /// written may be running: it is hastened, and the scheduler pages its tier once.
    fn unschedule(&mut self, key: &str) -> bool {
        let before = self.jobs.len();
        self.jobs
            .retain(|j| !matches!(j, JobChange::Schedule(n) if n.key == key));
        self.jobs.len() != before
    }

    /// Pages each person by their first usable contact method; a page about an incident
    /// carries a fresh acknowledgement link. Returns who was paged and who cannot be.
    pub(crate) fn page_people(
        &mut self,
        inc: Option<&Incident>,
        people: &[PersonId],
        what: PageSpec<'_>,
    ) -> Paged {
        let mut paged = Paged::default();
        let config = self.engine.config.clone();
        for id in people {
            let Some(person) = config.people.get(id) else {
                continue;
            };
            // Paged by an earlier tier of this same decision (that tier counted as unanswered
            // at once): their page is on its way, and a second one now would only repeat it.
            if let (Some(i), Some(_)) = (inc, what.tier) {
                let earlier = self.outbox.iter().find_map(|m| {
                    let p = m.page.as_ref()?;
                    (m.incident == Some(i.reference) && p.person == id.as_str())
                        .then_some(p.tier)
                        .flatten()
                });
                if let Some(t) = earlier {
                    paged.reached.push(format!(
                        "{} (paged with tier {} just now)",
                        config.display_name(id.as_str()),
                        t + 1
                    ));
                    continue;
                }
            }
            let Some((method, m)) = config.usable_methods(person).into_iter().next() else {
                paged.unreachable.push(format!(
                    "{}: {}",
                    config.display_name(id.as_str()),
                    config.unreachable_reason(person)
                ));
                continue;
            };
            let page = Page {
                person: id.to_string(),
                person_name: person.name.clone(),
                method,
                reason: what.why.as_str().into(),
                tier: what.tier,
                incident: inc.map(|i| self.page_incident(i)),
                ack_link: inc.map(|i| self.ack_link(i.reference, id)),
                key: format!("{}:{id}", what.key),
                late_by_seconds: what.late.map(|l| l.num_seconds()),
                next_tier_job: None,
            };
            let text = match inc {
                Some(i) => self.page_text(i, &page, what.note.as_deref()),
                None => format!("[PAGE] {}", what.note.as_deref().unwrap_or("")),
            };
            self.outbox.push(page_message(
                m,
                inc.map(|i| i.reference),
                text,
                page,
                what.next_tier_job.clone(),
            ));
            paged.reached.push(format!(
                "{} by {}",
                config.display_name(id.as_str()),
                m.kind()
            ));
        }
        paged
    }

    /// A new acknowledgement link for `person` on `r`; returns its id.
    fn ack_link(&mut self, r: IncidentRef, person: &PersonId) -> String {
        let id = crate::random_token(16);
        self.extra.ack_links.push(AckLinkWrite::Insert(AckLink {
            id: id.clone(),
            incident: r,
            person: person.to_string(),
            created_at: self.at,
            expires_at: self.at + self.engine.config.paging.ack_link_ttl,
            used_at: None,
        }));
        id
    }

    pub(crate) fn page_incident(&self, inc: &Incident) -> PageIncident {
        let config = &self.engine.config;
        PageIncident {
            reference: inc.reference.to_string(),
            title: inc.title.clone(),
            level: inc.level.0,
            level_name: config
                .level(inc.level)
                .map(|l| l.name.clone())
                .unwrap_or_default(),
            state: inc.state.as_str().into(),
            url: format!(
                "{}/api/v1/incidents/{}",
                config.server.public_url.trim_end_matches('/'),
                inc.reference
            ),
        }
    }

    /// The text of a page: what, how bad, and how to acknowledge.
    pub(crate) fn page_text(&self, inc: &Incident, page: &Page, extra: Option<&str>) -> String {
        let i = self.page_incident(inc);
        let mut text = format!(
            "[PAGE] {} level {} {}: {}",
            i.reference, i.level, i.level_name, i.title
        );
        match page.reason.as_str() {
            "ack_expired" => text.push_str(" — the acknowledgement expired without activity"),
            "rto" => text.push_str(" — RTO watch"),
            "repeat" => text.push_str(" — still unacknowledged"),
            _ => {}
        }
        if let Some(t) = page.tier {
            text.push_str(&format!(" (tier {})", t + 1));
        }
        if let Some(e) = extra {
            text.push_str(&format!(": {e}"));
        }
        if let Some(s) = page.late_by_seconds {
            text.push_str(&format!(" [late by {s} s: Spotter was not running]"));
        }
        text.push_str(&format!(
            " — acknowledge with /incident ack incident:{} or the link in this page",
            i.reference
        ));
        text
    }
}

/// The outbox message of one contact method of a page. Its idempotency key is the page's key
/// and the method, so deciding again never duplicates it and each method is tried once.
pub(crate) fn page_message(
    method: &ContactMethod,
    incident: Option<IncidentRef>,
    text: String,
    mut page: Page,
    next_tier_job: Option<String>,
) -> NewMessage {
    page.next_tier_job = next_tier_job;
    NewMessage {
        channel: method.channel(),
        kind: MessageKind::Page,
        target: page.person.clone(),
        incident,
        text,
        priority: 10,
        idempotency_key: format!("{}:m{}", page.key, page.method),
        // Unique per message: pages never queue behind each other.
        ordering_key: format!("{}:m{}", page.key, page.method),
        page: Some(page),
        approval: None,
        broadcast: None,
    }
}

/// Paging by hand.
impl Engine {
    pub(crate) async fn page(
        &self,
        actor: &Actor,
        target: &str,
        text: Option<String>,
        incident: Option<IncidentRef>,
        ctx: &CommandContext,
    ) -> Result<Reply, StoreError> {
        let overrides = self.current_overrides().await?;
        let now = self.clock.now();
        let people: Vec<PersonId> = if let Some(p) = self.config.person(target) {
            vec![p.id.clone()]
        } else if let Some(t) = self.config.teams.get(target) {
            t.members.clone()
        } else if self.config.rotation(target).is_some() {
            tier_people(
                &self.config,
                &[Target::Rotation(target.into())],
                now,
                &overrides,
            )
        } else {
            vec![]
        };
        let who = self.config.display_name(&actor.id);
        let about = incident.or(ctx.channel_incident);
        let token = crate::random_token(8);
        // The page says who paged, and what they wrote.
        let note = Some(match &text {
            Some(t) => format!("from {who}: {t}"),
            None => format!("from {who}"),
        });

        retry_on_conflict!(async {
            let now = self.clock.now();
            let mut plan = Plan::new(self, actor, now);
            plan.overrides = overrides.clone();
            let key = format!("page:manual:{token}");
            let (paged, write, subject) = match about {
                Some(r) => {
                    let Some(inc) = self.store.incident(r).await? else {
                        return Ok(Reply::refused(no_such(r)));
                    };
                    let paged =
                        plan.page_people(Some(&inc), &people, manual_page(&key, note.clone()));
                    let mut line = format!("{who} paged {target}: ");
                    line.push_str(&if paged.reached.is_empty() {
                        "nobody could be paged".into()
                    } else {
                        paged.reached.join(", ")
                    });
                    if let Some(t) = &text {
                        line.push_str(&format!(" — {t}"));
                    }
                    if !paged.unreachable.is_empty() {
                        line.push_str(&format!("; cannot page {}", paged.unreachable.join("; ")));
                    }
                    plan.event(&inc, EventKind::Paged, line, false);
                    (paged, Some(IncidentWrite::Update(inc)), r.to_string())
                }
                None => (
                    plan.page_people(None, &people, manual_page(&key, note.clone())),
                    None,
                    "page".to_string(),
                ),
            };
            plan.audit.push(AuditRecord {
                at: now,
                actor: actor.id.clone(),
                action: "page".into(),
                subject,
                detail: serde_json::json!({"target": target, "people": people, "text": text}),
            });
            self.commit(plan.finish(write)).await?;
            let mut reply = format!("Paged {target}: ");
            reply.push_str(&if paged.reached.is_empty() {
                "nobody could be paged".into()
            } else {
                paged.reached.join(", ")
            });
            if !paged.unreachable.is_empty() {
                reply.push_str(&format!("; cannot page {}", paged.unreachable.join("; ")));
            }
            Ok(Reply::ok(reply, None))
        })
    }

    /// The rotation overrides that matter now (not ended), when any rotation is configured.
    pub(crate) async fn current_overrides(&self) -> Result<Vec<RotationOverride>, StoreError> {
        if self.config.rotations.is_empty() {
            return Ok(vec![]);
        }
        self.store.rotation_overrides(self.clock.now()).await
    }
}
