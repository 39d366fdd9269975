//! The changeset one decision builds before it is committed.

use super::*;

/// Messages about one incident on one chat channel go out one at a time, in order.
pub(crate) fn chat_ordering_key(channel: Channel, r: IncidentRef) -> String {
    format!("chat:{channel}:{r}")
}

/// A post's length at most after merging (Discord's limit on a message, the strictest of the
/// chat channels).
const POST_MAX: usize = 2000;

/// One decision's posts to one incident's channel, merged into one post per channel while
/// they fit in [`POST_MAX`] characters, a line each: a declaration that pages two tiers is one
/// post saying so, not three (each a message against the platform's rate limit, and an
/// outbox row written, claimed and marked). Posts keep their order among the channel's other
/// messages; a message of another kind between two posts (an approval request) is a boundary.
fn merge_posts(messages: Vec<NewMessage>) -> Vec<NewMessage> {
    let mut out: Vec<NewMessage> = Vec::with_capacity(messages.len());
    // Per ordering key: where its last message is in `out`.
    let mut last: Vec<(String, usize)> = vec![];
    for m in messages {
        let post = m.kind == MessageKind::ChatPost
            && m.page.is_none()
            && m.approval.is_none()
            && m.broadcast.is_none();
        let at = last.iter().position(|(k, _)| *k == m.ordering_key);
        if let (true, Some(k)) = (post, at) {
            let prev = &mut out[last[k].1];
            let fits = prev.text.chars().count() + 1 + m.text.chars().count() <= POST_MAX;
            if prev.kind == MessageKind::ChatPost
                && prev.approval.is_none()
                && prev.target == m.target
                && fits
            {
                prev.text.push('\n');
                prev.text.push_str(&m.text);
                continue;
            }
        }
        match at {
            Some(k) => last[k].1 = out.len(),
            None => last.push((m.ordering_key.clone(), out.len())),
        }
        out.push(m);
    }
    out
}

/// Collects what one decision writes.
pub(crate) struct Plan<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) actor: &'a Actor,
    pub(crate) at: DateTime<Utc>,
    pub(crate) timeline: Vec<TimelineEntry>,
    pub(crate) audit: Vec<AuditRecord>,
    pub(crate) outbox: Vec<NewMessage>,
    pub(crate) jobs: Vec<JobChange>,
    /// Alert rows, alert groups, maintenance windows, heartbeats, ack links, cancelled pages and
    /// delivery marks this decision writes.
    pub(crate) extra: Changeset,
    /// Rotation overrides in force, for resolving rotations when this decision pages.
    pub(crate) overrides: Vec<crate::oncall::RotationOverride>,
}

impl<'a> Plan<'a> {
    pub(crate) fn new(engine: &'a Engine, actor: &'a Actor, at: DateTime<Utc>) -> Self {
        Plan {
            engine,
            actor,
            at,
            timeline: vec![],
            audit: vec![],
            outbox: vec![],
            jobs: vec![],
            extra: Changeset::default(),
            overrides: vec![],
        }
    }

    pub(crate) fn finish(mut self, incident: Option<IncidentWrite>) -> Changeset {
        self.outbox = merge_posts(std::mem::take(&mut self.outbox));
        // Any write to an incident refreshes its card, ahead of the posts it caused (so on
        // declare the card, and the channel it lives in, come first).
        if let Some(IncidentWrite::Insert(i) | IncidentWrite::Update(i) | IncidentWrite::Guard(i)) =
            &incident
        {
            // A guarded write leaves the version as it is, so its card is told apart by what
            // changed: the first alert it writes, at that alert's new version.
            let version = match &incident {
                Some(IncidentWrite::Guard(_)) => format!(
                    "v{}:{}",
                    i.version,
                    self.extra
                        .alerts
                        .first()
                        .map(|a| format!("{}:{}:{}", a.source, a.fingerprint, a.version + 1))
                        .unwrap_or_default()
                ),
                _ => format!("v{}", i.version + 1),
            };
            let cards: Vec<NewMessage> = self
                .engine
                .config
                .chat_channels()
                .into_iter()
                .map(|channel| NewMessage {
                    channel,
                    kind: MessageKind::CardUpdate,
                    target: format!("incident:{}", i.reference),
                    incident: Some(i.reference),
                    text: format!(
                        "{} is {}, level {}, phase {}",
                        i.reference, i.state, i.level, i.phase
                    ),
                    priority: 0,
                    idempotency_key: format!("card:{channel}:{}:{version}", i.reference),
                    ordering_key: chat_ordering_key(channel, i.reference),
                    page: None,
                    approval: None,
                    broadcast: None,
                })
                .collect();
            self.outbox.splice(0..0, cards);
        }
        Changeset {
            at: Some(self.at),
            incident,
            timeline: self.timeline,
            audit: self.audit,
            outbox: self.outbox,
            jobs: self.jobs,
            ..self.extra
        }
    }

    /// A timeline event, and its post to the incident's chat channels.
    pub(crate) fn event(&mut self, inc: &Incident, kind: EventKind, text: String, public: bool) {
        self.event_posted_as(inc, kind, text, public, MessageKind::ChatPost);
    }

    /// An alert event of the incident (an alert firing, resolved, or flapping): on the timeline
    /// like any event (kind [`EventKind::Alert`], internal), but posted as an
    /// [`MessageKind::AlertPost`], which the chat lane may merge with the alert posts queued
    /// behind it. A storm of alerts becomes a few posts, not one per alert; the timeline keeps
    /// every event.
    pub(crate) fn alert_event(&mut self, inc: &Incident, text: String) {
        self.event_posted_as(inc, EventKind::Alert, text, false, MessageKind::AlertPost);
    }

    fn event_posted_as(
        &mut self,
        inc: &Incident,
        kind: EventKind,
        text: String,
        public: bool,
        post: MessageKind,
    ) {
        let r = inc.reference;
        let n = self.timeline.len();
        for channel in self.engine.config.chat_channels() {
            self.outbox.push(NewMessage {
                channel,
                kind: post,
                target: format!("incident:{r}"),
                incident: Some(r),
                text: text.clone(),
                priority: 0,
                idempotency_key: format!("chat:{channel}:{r}:v{}:{n}", inc.version),
                ordering_key: chat_ordering_key(channel, r),
                page: None,
                approval: None,
                broadcast: None,
            });
        }
        self.timeline.push(TimelineEntry {
            incident: r,
            at: self.at,
            actor: self.actor.id.clone(),
            kind,
            text,
            public,
        });
    }

    /// Records a phase change a transition made by itself (acknowledging moves immediate
    /// response to assessment), so the timeline never skips a phase silently.
    pub(crate) fn phase_moved(&mut self, inc: &Incident, from: crate::domain::Phase, why: &str) {
        if inc.phase != from {
            let text = format!(
                "{} moved from {} to {} ({why})",
                inc.reference,
                from.title(),
                inc.phase.title()
            );
            self.event(inc, EventKind::PhaseChanged, text, false);
        }
    }

    /// A timeline event about something that is not the incident row (a runbook run): its chat
    /// posts are keyed by `key` (unique per decision, e.g. `run3:v4`), since the incident's
    /// version does not move.
    pub(crate) fn note(&mut self, r: IncidentRef, key: &str, kind: EventKind, text: String) {
        // What runs write can carry what a person typed or a process printed: the configured
        // secrets never reach the timeline or a channel.
        let text = self.engine.redactor.redact(&text).into_owned();
        let n = self.timeline.len();
        self.chat(
            r,
            &format!("{key}:{n}"),
            MessageKind::ChatPost,
            text.clone(),
            None,
        );
        self.timeline.push(TimelineEntry {
            incident: r,
            at: self.at,
            actor: self.actor.id.clone(),
            kind,
            text,
            public: false,
        });
    }

    /// A decision about a run: its audit record, and its timeline note (posted to the channel)
    /// when the run is about an incident.
    pub(crate) fn run_event(
        &mut self,
        run: &crate::domain::Run,
        action: &str,
        detail: serde_json::Value,
        kind: EventKind,
        text: String,
    ) {
        self.audit.push(AuditRecord {
            at: self.at,
            actor: self.actor.id.clone(),
            action: action.into(),
            subject: format!("run:{}", run.id),
            detail,
        });
        if let Some(r) = run.incident {
            self.note(r, &format!("run{}:v{}", run.id, run.version), kind, text);
        }
    }

    /// A message to the incident's chat channels only (no timeline entry): an approval request,
    /// the tail of a running step's output.
    pub(crate) fn chat(
        &mut self,
        r: IncidentRef,
        key: &str,
        kind: MessageKind,
        text: String,
        approval: Option<crate::store::ApprovalAsk>,
    ) {
        let text = self.engine.redactor.redact(&text).into_owned();
        for channel in self.engine.config.chat_channels() {
            self.outbox.push(NewMessage {
                channel,
                kind,
                target: format!("incident:{r}"),
                incident: Some(r),
                text: text.clone(),
                priority: 0,
                idempotency_key: format!("chat:{channel}:{r}:{key}"),
                ordering_key: chat_ordering_key(channel, r),
                page: None,
                approval,
                broadcast: None,
            });
        }
    }

    pub(crate) fn audit(&mut self, action: &str, inc: &Incident, mut detail: serde_json::Value) {
        if let Some(map) = detail.as_object_mut() {
            map.insert("state".into(), inc.state.as_str().into());
        }
        self.audit.push(AuditRecord {
            at: self.at,
            actor: self.actor.id.clone(),
            action: action.into(),
            subject: inc.reference.to_string(),
            detail,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(channel: Channel, kind: MessageKind, text: &str, key: &str) -> NewMessage {
        let r = IncidentRef::new(1);
        NewMessage {
            channel,
            kind,
            target: format!("incident:{r}"),
            incident: Some(r),
            text: text.into(),
            priority: 0,
            idempotency_key: key.into(),
            ordering_key: chat_ordering_key(channel, r),
            page: None,
            approval: None,
            broadcast: None,
        }
    }

    fn shape(out: &[NewMessage]) -> Vec<(Channel, MessageKind, &str, &str)> {
        out.iter()
            .map(|m| {
                (
                    m.channel,
                    m.kind,
                    m.text.as_str(),
                    m.idempotency_key.as_str(),
                )
            })
            .collect()
    }

    #[test]
    fn one_decisions_posts_become_one_post_per_channel_in_order() {
        use Channel::{Discord, Log};
        use MessageKind::{CardUpdate, ChatPost};
        let out = merge_posts(vec![
            msg(Log, CardUpdate, "card", "c1"),
            msg(Discord, CardUpdate, "card", "c2"),
            msg(Log, ChatPost, "declared", "k1"),
            msg(Discord, ChatPost, "declared", "k2"),
            msg(Log, ChatPost, "paged tier 1", "k3"),
            msg(Discord, ChatPost, "paged tier 1", "k4"),
            msg(Log, ChatPost, "paged tier 2", "k5"),
            msg(Discord, ChatPost, "paged tier 2", "k6"),
        ]);
        let joined = "declared\npaged tier 1\npaged tier 2";
        assert_eq!(
            shape(&out),
            [
                (Log, CardUpdate, "card", "c1"),
                (Discord, CardUpdate, "card", "c2"),
                (Log, ChatPost, joined, "k1"),
                (Discord, ChatPost, joined, "k2"),
            ]
        );
    }

    #[test]
    fn a_post_that_would_pass_the_limit_and_an_approval_request_start_new_posts() {
        use Channel::Log;
        use MessageKind::{ApprovalRequest, ChatPost};
        let long = "x".repeat(POST_MAX - 5);
        let out = merge_posts(vec![
            msg(Log, ChatPost, &long, "k1"),
            msg(Log, ChatPost, "12345", "k2"),
            msg(Log, ChatPost, "a", "k3"),
            msg(Log, ApprovalRequest, "approve?", "k4"),
            msg(Log, ChatPost, "b", "k5"),
        ]);
        assert_eq!(
            shape(&out),
            [
                (Log, ChatPost, long.as_str(), "k1"),
                (Log, ChatPost, "12345\na", "k2"),
                (Log, ApprovalRequest, "approve?", "k4"),
                (Log, ChatPost, "b", "k5"),
            ]
        );
        assert!(out.iter().all(|m| m.text.chars().count() <= POST_MAX));
    }
}
