//! The chat lane: incident channels' posts and card updates, one ordering key (one incident on
//! one chat channel) at a time, in order.
//!
//! Under an alert storm an incident's key fills with alert posts, each behind the card update its
//! alert caused. Posting them one by one would bury the channel (and queue behind the platform's
//! rate limit for minutes), so the head of a key and the alert posts and card updates queued
//! directly behind it are delivered as one *group*: the card brought up to date once (it shows
//! the incident as it is now, so one edit stands for all), then one post listing the first alert
//! events and "… and N more alert events". Any other message queued behind is a boundary: it
//! keeps its place and goes out on its own, after the group.
//!
//! A post about an alert also waits until `[outbox] alert_hold` after it was written (unless a
//! boundary waits behind it), so one burst of alerts arrives as one post rather than a first post
//! alone and a merged one after it: an incident's channel gets about one alert post per hold
//! while a storm lasts. Card updates, other posts and pages never wait.
//!
//! Merged rows are leased like the head and marked with it in the same fenced batch. A failed
//! group is recorded on its head (retried with backoff, the other rows given back untouched) or,
//! once given up, every row of it fails with the same error: they were all in the message.

use super::*;
use crate::store::MessageKind;

/// Rows one group stands for at most: bounds the lease and mark statements and what a
/// dispatcher holds in memory. A larger storm is a few such posts.
const MERGE_MAX: usize = 1000;
/// Discord's limit on a message's content, the strictest of the chat channels.
const TEXT_MAX: usize = 2000;
/// One alert event's line in a merged post at most, so one long label cannot crowd out the rest.
const LINE_MAX: usize = 300;

/// The kinds a group may merge: only the latest card matters, and alert events are read in bulk.
fn mergeable(kind: MessageKind) -> bool {
    matches!(kind, MessageKind::AlertPost | MessageKind::CardUpdate)
}

/// What the head of a key is delivered as this round.
struct Group {
    /// Every row it stands for: the head first, then those merged behind it (leased), oldest
    /// first.
    ids: Vec<i64>,
    /// What the notifier gets, in order: the head alone, or the card update and then the alert
    /// post (merged when there are several).
    steps: Vec<OutboxMessage>,
}

impl Group {
    fn single(head: &OutboxMessage) -> Group {
        Group {
            ids: vec![head.id],
            steps: vec![head.clone()],
        }
    }

    fn merged(rows: &[&OutboxMessage]) -> Group {
        let mut steps = Vec::new();
        if let Some(card) = rows
            .iter()
            .rev()
            .find(|m| m.kind == MessageKind::CardUpdate)
        {
            steps.push((*card).clone());
        }
        let alerts: Vec<&OutboxMessage> = rows
            .iter()
            .copied()
            .filter(|m| m.kind == MessageKind::AlertPost)
            .collect();
        if let Some(first) = alerts.first() {
            let mut post = (*first).clone();
            if alerts.len() > 1 {
                post.text = merged_text(alerts.iter().map(|m| m.text.as_str()));
            }
            steps.push(post);
        }
        Group {
            ids: rows.iter().map(|m| m.id).collect(),
            steps,
        }
    }
}

/// One post for many alert events: as many of their lines as fit in [`TEXT_MAX`] characters,
/// then "… and N more alert events".
pub(crate) fn merged_text<'a>(texts: impl ExactSizeIterator<Item = &'a str>) -> String {
    let total = texts.len();
    let more = |n: usize| {
        format!(
            "… and {} more alert events",
            crate::render::thousands(n as i64)
        )
    };
    let mut out = String::new();
    let mut used = 0;
    let mut listed = 0;
    for text in texts {
        let line = clip(text.lines().next().unwrap_or(""), LINE_MAX);
        let len = line.chars().count() + usize::from(listed > 0);
        let left = total - listed - 1;
        let tail = if left > 0 {
            more(left).chars().count() + 1
        } else {
            0
        };
        if used + len + tail > TEXT_MAX {
            break;
        }
        if listed > 0 {
            out.push('\n');
        }
        out.push_str(&line);
        used += len;
        listed += 1;
    }
    if listed < total {
        if listed > 0 {
            out.push('\n');
        }
        out.push_str(&more(total - listed));
    }
    out
}

/// At most `max` characters, ending in `…` when cut.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

impl Dispatcher {
    /// The chat lane's round: claim the heads of up to [`BATCH`] keys, deliver each (merged with
    /// what may join it), record outcomes. Returns how many rows were handled; heads held back
    /// for more alert events are not counted.
    pub(super) async fn tick_chat(&self) -> Result<usize, StoreError> {
        let lease = self.lease();
        let claimed = std::time::Instant::now();
        let now = self.clock.now();
        let lease_for = Duration::from_std(lease).unwrap_or(Duration::seconds(600));
        let batch = self
            .store
            .claim_outbox(now, lease_for, &self.owner, BATCH as i64, Lane::Chat)
            .await?;
        // Delivered messages are marked together: one write (one fsync) for a burst of chat
        // posts. A mark waits at most MARK_DELAY before the next delivery starts, or that one
        // delivery's time; a crash meanwhile re-delivers them (at least once, as ever).
        let mut unmarked: Vec<i64> = Vec::new();
        let mut unmarked_since = std::time::Instant::now();
        let mut handled = 0;
        for (i, head) in batch.iter().enumerate() {
            // Before this head's merge is read, so the wait is measured as it always was: from
            // the previous delivery.
            if !unmarked.is_empty()
                && unmarked_since.elapsed() > MARK_DELAY
                && self.flush_marks(&mut unmarked).await?
            {
                self.lease_lost(head.id);
                return Ok(handled);
            }
            let Some(group) = self.group(head, now + lease_for).await? else {
                continue;
            };
            let timeout = self
                .notifiers
                .get(&head.channel)
                .map(|n| n.timeout())
                .unwrap_or_default()
                * group.steps.len() as u32;
            // Never start a delivery the lease might not cover: give the rest back instead.
            if claimed.elapsed() + timeout + LEASE_MARGIN / 2 > lease {
                let lost = self.flush_marks(&mut unmarked).await?;
                let mut rest = group.ids.clone();
                rest.extend(batch[i + 1..].iter().map(|m| m.id));
                self.store.outbox_release(&rest, &self.owner).await?;
                if lost {
                    self.lease_lost(head.id);
                }
                return Ok(handled);
            }
            let mut failed = None;
            for step in &group.steps {
                if let Err(e) = self.deliver(step).await {
                    failed = Some((step, e));
                    break;
                }
            }
            handled += group.ids.len();
            let fenced = match failed {
                None => {
                    if unmarked.is_empty() {
                        unmarked_since = std::time::Instant::now();
                    }
                    unmarked.extend(&group.ids);
                    true
                }
                Some((step, e)) => {
                    let lost = self.flush_marks(&mut unmarked).await?;
                    self.group_failed(head, &group, step, &e).await? && !lost
                }
            };
            if !fenced {
                // Our lease ran out: another replica may own these messages now, so record
                // nothing more for this batch.
                self.lease_lost(head.id);
                return Ok(handled);
            }
        }
        if self.flush_marks(&mut unmarked).await? {
            self.lease_lost(batch.last().map(|m| m.id).unwrap_or_default());
        }
        Ok(handled)
    }

    /// What the claimed `head` goes out as: alone, or merged with the mergeable rows queued
    /// directly behind it (leased until `until`). `None`: it is an alert post held back for more
    /// (deferred in the store, so no round claims it again before its hold is over).
    async fn group(
        &self,
        head: &OutboxMessage,
        until: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Group>, StoreError> {
        if !mergeable(head.kind) {
            return Ok(Some(Group::single(head)));
        }
        // One row more than a group may take, to see whether anything waits beyond it.
        let queued = self.store.outbox_queued(head.id, MERGE_MAX as i64).await?;
        let fits = queued
            .iter()
            .take(MERGE_MAX - 1)
            .take_while(|m| {
                mergeable(m.kind) && m.channel == head.channel && m.incident == head.incident
            })
            .count();
        let mut run = &queued[..fits];
        // A boundary (or a full group) waiting behind the run: holding it gains nothing.
        let waiting_behind = fits < queued.len();
        let now = self.clock.now();
        let hold = self.config.alert_hold;
        if !waiting_behind && hold > Duration::zero() {
            let first_alert = std::iter::once(head)
                .chain(run)
                .position(|m| m.kind == MessageKind::AlertPost);
            if let Some(pos) = first_alert {
                let written = if pos == 0 {
                    head.created_at
                } else {
                    run[pos - 1].created_at
                };
                let ready = written + hold;
                if ready > now {
                    if pos == 0 {
                        if !self.store.outbox_defer(head.id, &self.owner, ready).await? {
                            self.lease_lost(head.id);
                        }
                        return Ok(None);
                    }
                    // The card updates before it go now; the alert posts wait for their hold.
                    run = &run[..pos - 1];
                }
            }
        }
        let Some(last) = run.last() else {
            return Ok(Some(Group::single(head)));
        };
        let leased = self
            .store
            .outbox_lease_queued(head.id, last.id, &self.owner, now, until)
            .await?;
        // Only the rows read are merged, in order; anything else leased meanwhile (a row whose
        // transaction committed late with a lower id) is given back at once.
        let kept = run
            .iter()
            .zip(&leased)
            .take_while(|(read, got)| read.id == got.id)
            .count();
        if kept < leased.len() {
            let back: Vec<i64> = leased[kept..].iter().map(|m| m.id).collect();
            self.store.outbox_release(&back, &self.owner).await?;
        }
        let rows: Vec<&OutboxMessage> = std::iter::once(head).chain(&leased[..kept]).collect();
        Ok(Some(Group::merged(&rows)))
    }

    /// Records a group's failed `step`: on its head, which the key waits behind (so the backoff
    /// holds the whole key). Retried: the other rows are given back as they were. Given up: they
    /// fail with it. `Ok(false)` when a lease was lost.
    async fn group_failed(
        &self,
        head: &OutboxMessage,
        group: &Group,
        step: &OutboxMessage,
        e: &DeliveryError,
    ) -> Result<bool, StoreError> {
        let as_head = OutboxMessage {
            id: head.id,
            attempts: head.attempts,
            ..step.clone()
        };
        let others = &group.ids[1..];
        match self.record_failure(&as_head, e).await? {
            Recorded::LeaseLost => Ok(false),
            Recorded::Retry => {
                if !others.is_empty() {
                    self.store.outbox_release(others, &self.owner).await?;
                }
                Ok(true)
            }
            Recorded::Dead => {
                let held = self.mark(others, Some(&e.to_string())).await?;
                Ok(held.into_iter().all(|h| h))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merged_post_fits_a_discord_message_and_counts_the_rest() {
        let texts: Vec<String> = (0..500)
            .map(|n| format!("alert firing: DiskFull host-{n:03}"))
            .collect();
        let text = merged_text(texts.iter().map(String::as_str));
        assert!(text.chars().count() <= TEXT_MAX, "{}", text.len());
        let lines: Vec<&str> = text.lines().collect();
        let listed = lines.len() - 1;
        assert!(listed > 10, "{text}");
        assert_eq!(lines[0], "alert firing: DiskFull host-000");
        assert_eq!(lines[listed - 1], texts[listed - 1]);
        assert_eq!(
            lines[listed],
            format!("… and {} more alert events", 500 - listed)
        );
    }

    #[test]
    fn few_events_are_listed_whole_and_long_ones_are_clipped() {
        let two = merged_text(["alert firing: a", "alert resolved: a"].into_iter());
        assert_eq!(two, "alert firing: a\nalert resolved: a");
        let long = "x".repeat(5000);
        let texts = vec![long.as_str(); 10_000];
        let text = merged_text(texts.into_iter());
        assert!(text.chars().count() <= TEXT_MAX);
        assert!(text.lines().next().unwrap().chars().count() == LINE_MAX);
        assert!(text.ends_with("more alert events"), "{text}");
        assert!(text.contains(&format!(
            "… and {} more",
            crate::render::thousands(10_000 - (text.lines().count() as i64 - 1))
        )));
    }
}
