//! What alerts tell an incident's timeline and channel, coalesced: consecutive alerts firing
//! (or resolving) in one notification make one event naming the first few and counting the
//! rest, so a storm of 10,000 alerts is a handful of posts, not 10,000.

use super::Plan;
use crate::domain::{EventKind, Incident};

/// Alert labels one coalesced event lists before "… and N more".
pub(super) const LABELS_SHOWN: usize = 10;

/// What the notification tells an incident's timeline, in order.
pub(super) enum Note {
    Fired(Vec<String>),
    Resolved(Vec<String>),
    Event(EventKind, String),
}

impl Note {
    pub(super) fn copy(&self) -> Note {
        match self {
            Note::Fired(l) => Note::Fired(l.clone()),
            Note::Resolved(l) => Note::Resolved(l.clone()),
            Note::Event(k, t) => Note::Event(*k, t.clone()),
        }
    }
}

pub(super) fn push_fired(notes: &mut Vec<Note>, label: String) {
    match notes.last_mut() {
        Some(Note::Fired(l)) => l.push(label),
        _ => notes.push(Note::Fired(vec![label])),
    }
}

pub(super) fn push_resolved(notes: &mut Vec<Note>, label: String) {
    match notes.last_mut() {
        Some(Note::Resolved(l)) => l.push(label),
        _ => notes.push(Note::Resolved(vec![label])),
    }
}

/// Writes the notes as timeline events (and their chat posts), in order, and clears them.
pub(super) fn flush_notes(plan: &mut Plan<'_>, inc: &Incident, notes: &mut Vec<Note>) {
    for note in notes.drain(..) {
        // What alerts say is posted as alert posts, which the chat lane merges per incident;
        // everything else (a phase change, a reopening) as an event of its own.
        match note {
            Note::Fired(labels) => plan.alert_event(inc, listed("firing", &labels)),
            Note::Resolved(labels) => plan.alert_event(inc, listed("resolved", &labels)),
            Note::Event(EventKind::Alert, text) => plan.alert_event(inc, text),
            Note::Event(kind, text) => plan.event(inc, kind, text, false),
        }
    }
}

/// `alert firing: A`, or `3 alerts firing: A; B; C`, at most [`LABELS_SHOWN`] named.
fn listed(what: &str, labels: &[String]) -> String {
    match labels {
        [one] => format!("alert {what}: {one}"),
        _ => {
            let shown: Vec<&str> = labels
                .iter()
                .take(LABELS_SHOWN)
                .map(String::as_str)
                .collect();
            let more = labels.len().saturating_sub(LABELS_SHOWN);
            let tail = if more > 0 {
                format!(" … and {more} more")
            } else {
                String::new()
            };
            format!("{} alerts {what}: {}{tail}", labels.len(), shown.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::listed;

    #[test]
    fn coalesced_events_name_a_few_and_count_the_rest() {
        assert_eq!(listed("firing", &["A".into()]), "alert firing: A");
        assert_eq!(
            listed("resolved", &["A".into(), "B".into()]),
            "2 alerts resolved: A; B"
        );
        let many: Vec<String> = (0..10_000).map(|i| format!("a{i}")).collect();
        let text = listed("firing", &many);
        assert!(text.starts_with("10000 alerts firing: a0; a1;"), "{text}");
        assert!(text.ends_with("a9 … and 9990 more"), "{text}");
    }
}
