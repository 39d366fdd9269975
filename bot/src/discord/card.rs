//! The incident card: the one message in an incident's channel that always shows the incident as
//! it is now (an embed with level, state, phase, commander, RTO countdown and links, and the
//! Acknowledge / Escalate / Resolve buttons). It is edited in place on every change.

use serenity::all::{ButtonStyle, CreateActionRow, CreateButton, CreateEmbed, CreateEmbedFooter};
use spotter_core::config::Config;
use spotter_core::domain::{Incident, IncidentRef, State};
use spotter_core::render;
use spotter_core::store::AlertSummary;

/// What a card button does; its `custom_id` is `incident:INC-7:ack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardAction {
    Ack,
    Escalate,
    Resolve,
}

impl CardAction {
    pub const ALL: [CardAction; 3] = [CardAction::Ack, CardAction::Escalate, CardAction::Resolve];

    pub fn as_str(self) -> &'static str {
        match self {
            CardAction::Ack => "ack",
            CardAction::Escalate => "escalate",
            CardAction::Resolve => "resolve",
        }
    }

    fn label(self) -> &'static str {
        match self {
            CardAction::Ack => "Acknowledge",
            CardAction::Escalate => "Escalate",
            CardAction::Resolve => "Resolve",
        }
    }

    pub fn custom_id(self, r: IncidentRef) -> String {
        format!("incident:{r}:{}", self.as_str())
    }

    /// Reads a button's `custom_id`.
    pub fn parse(custom_id: &str) -> Option<(IncidentRef, CardAction)> {
        let mut parts = custom_id.split(':');
        let (Some("incident"), Some(r), Some(a), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let r: IncidentRef = r.parse().ok()?;
        let action = CardAction::ALL.into_iter().find(|x| x.as_str() == a)?;
        Some((r, action))
    }

    /// The command line the button stands for; the same words as typing it.
    pub fn line(self, r: IncidentRef) -> String {
        format!("/incident {} incident:{r}", self.as_str())
    }
}

/// One colour per level, from yellow (1) to dark red (5); green once resolved, grey once closed.
pub fn colour(i: &Incident) -> u32 {
    match i.state {
        State::Resolved => 0x2ECC71,
        State::Closed => 0x95A5A6,
        _ => match i.level.0 {
            1 => 0xF1C40F,
            2 => 0xE67E22,
            3 => 0xE74C3C,
            4 => 0x9B59B6,
            5 => 0x992D22,
            _ => 0x3498DB,
        },
    }
}

/// A Discord timestamp, rendered by each reader's client in their own time zone.
fn ts(t: chrono::DateTime<chrono::Utc>, style: char) -> String {
    format!("<t:{}:{style}>", t.timestamp())
}

/// A person for the card: name and id, plus a mention when their Discord id is configured
/// (mentions inside embeds never ping).
fn who(actor: &str, config: &Config) -> String {
    let mut s = config.display_name(actor);
    if let Some(id) = config
        .person(actor)
        .and_then(|p| p.discord_user_id.as_deref())
    {
        s.push_str(&format!(" <@{id}>"));
    }
    s
}

/// How many firing alerts the card lists by name (the store fetches only these; the rest are
/// counted).
pub const ALERTS_SHOWN: i64 = 5;

/// The card's embed; `alerts` summarises the alerts feeding the incident (the firing ones are
/// counted, the first [`ALERTS_SHOWN`] listed).
pub fn embed(i: &Incident, config: &Config, alerts: &AlertSummary) -> CreateEmbed {
    let level = config
        .level(i.level)
        .map(|l| format!("{} · {}", l.id, l.name))
        .unwrap_or_else(|| format!("{}", i.level));
    let mut state = format!("**{}**", i.state.as_str().to_uppercase());
    if let (Some(at), Some(by)) = (i.acknowledged_at, &i.acknowledged_by) {
        state.push_str(&format!(
            "\nacknowledged by {} {}",
            who(by, config),
            ts(at, 'R')
        ));
    }
    if let Some(at) = i.resolved_at {
        state.push_str(&format!("\nresolved {}", ts(at, 'R')));
    }
    let rto = match (i.state.is_open(), i.resolved_at) {
        (true, _) => format!("{} ({})", ts(i.rto_deadline, 'R'), ts(i.rto_deadline, 'f')),
        (false, Some(at)) if at <= i.rto_deadline => {
            format!(
                "met: restored within {}",
                render::duration_between(i.declared_at, at)
            )
        }
        (false, Some(at)) => format!(
            "missed by {} ({})",
            render::duration_between(i.rto_deadline, at),
            ts(i.rto_deadline, 'f')
        ),
        (false, None) => ts(i.rto_deadline, 'f'),
    };
    let commander = i
        .commander
        .as_ref()
        .map(|c| who(c.as_str(), config))
        .unwrap_or_else(|| "none yet: `/incident commander user:<person>`".into());
    let components = if i.components.is_empty() {
        "none named".to_string()
    } else {
        i.components
            .iter()
            .map(|c| {
                config
                    .component(c.as_str())
                    .map(|x| format!("{} (`{}`)", x.name, x.id))
                    .unwrap_or_else(|| c.to_string())
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let base = config.server.public_url.trim_end_matches('/');
    let mut e = CreateEmbed::new()
        .title(crate::discord::commands::truncate(
            &format!("{} · {}", i.reference, i.title),
            256,
        ))
        .colour(colour(i))
        .field("Level", level, true)
        .field("State", state, true)
        .field("Phase", i.phase.title(), true)
        .field("Commander", commander, true)
        .field("RTO deadline", rto, true)
        .field("Components", components, true)
        .field(
            "Declared",
            format!(
                "{} by {} via {}",
                ts(i.declared_at, 'f'),
                who(&i.declared_by, config),
                i.source.as_str()
            ),
            false,
        );
    // The count and the list come from one snapshot; `max` keeps a torn pair sensible anyway.
    let firing = alerts.firing.max(alerts.shown.len() as i64);
    if firing > 0 {
        let mut lines: Vec<String> = alerts
            .shown
            .iter()
            .take(ALERTS_SHOWN as usize)
            .map(|a| {
                let since = a.starts_at.unwrap_or(a.first_seen_at);
                let flapping = if a.flapping { " (flapping)" } else { "" };
                format!(
                    "• {} `{}` since {}{flapping}",
                    crate::discord::commands::truncate(&a.summary, 120),
                    a.source,
                    ts(since, 'R')
                )
            })
            .collect();
        let more = firing - lines.len() as i64;
        if more > 0 {
            lines.push(format!("… and {} more", render::thousands(more)));
        }
        e = e.field(
            format!("Firing alerts ({})", render::thousands(firing)),
            crate::discord::commands::truncate(&lines.join("\n"), 1024),
            false,
        );
    }
    if let Some(s) = &i.summary {
        e = e.field(
            "Summary",
            crate::discord::commands::truncate(s, 1024),
            false,
        );
    }
    e.field(
        "Links",
        format!(
            "[incident]({base}/api/v1/incidents/{r}) · `/incident timeline incident:{r}`",
            r = i.reference
        ),
        false,
    )
    .footer(CreateEmbedFooter::new(format!(
        "Spotter · {} v{}",
        i.reference, i.version
    )))
}

/// The card's buttons, enabled only where the state machine allows the action.
pub fn buttons(i: &Incident) -> Vec<CreateActionRow> {
    let button = |a: CardAction, style: ButtonStyle, enabled: bool| {
        CreateButton::new(a.custom_id(i.reference))
            .label(a.label())
            .style(style)
            .disabled(!enabled)
    };
    vec![CreateActionRow::Buttons(vec![
        button(
            CardAction::Ack,
            ButtonStyle::Primary,
            i.state == State::Declared,
        ),
        button(CardAction::Escalate, ButtonStyle::Danger, i.state.is_open()),
        button(CardAction::Resolve, ButtonStyle::Success, i.state.is_open()),
    ])]
}

/// The incident channel's name: `inc-7-mysql-down` (lowercase, dashes, at most 100 characters).
pub fn channel_name(i: &Incident) -> String {
    let mut slug = String::new();
    for c in i.title.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug: String = slug.chars().take(60).collect();
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        format!("inc-{}", i.reference.number())
    } else {
        format!("inc-{}-{slug}", i.reference.number())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spotter_core::domain::{LevelId, Source};

    fn incident(title: &str) -> Incident {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z")
            .unwrap()
            .to_utc();
        Incident::declare(
            IncidentRef::new(7),
            LevelId(3),
            chrono::Duration::hours(2),
            title.into(),
            vec![],
            None,
            Source::Chat,
            "sysadmin".into(),
            at,
        )
    }

    #[test]
    fn channel_names_are_slugs_of_the_title() {
        assert_eq!(channel_name(&incident("MySQL down")), "inc-7-mysql-down");
        assert_eq!(
            channel_name(&incident("  Redis: OOM!! (again) ")),
            "inc-7-redis-oom-again"
        );
        assert_eq!(channel_name(&incident("!!!")), "inc-7");
        assert!(channel_name(&incident(&"x".repeat(300))).len() <= 100);
    }

    #[test]
    fn button_ids_round_trip() {
        for a in CardAction::ALL {
            assert_eq!(
                CardAction::parse(&a.custom_id(IncidentRef::new(12))),
                Some((IncidentRef::new(12), a))
            );
        }
        assert_eq!(CardAction::parse("incident:INC-1:delete"), None);
        assert_eq!(CardAction::parse("incident:nope:ack"), None);
        assert_eq!(CardAction::parse("incident:INC-1:ack:x"), None);
    }

    #[test]
    fn the_card_shows_level_state_phase_and_a_countdown() {
        let i = incident("MySQL down");
        let v =
            serde_json::to_value(embed(&i, &Config::builtin(), &AlertSummary::default())).unwrap();
        assert_eq!(v["title"], "INC-7 · MySQL down");
        assert_eq!(v["color"], 0xE74C3C);
        let text = v.to_string();
        assert!(text.contains("3 · Complete System Failure"), "{text}");
        assert!(text.contains("DECLARED"), "{text}");
        assert!(text.contains("Immediate Response"), "{text}");
        assert!(
            text.contains(&format!("<t:{}:R>", i.rto_deadline.timestamp())),
            "{text}"
        );
        let b = serde_json::to_value(buttons(&i)).unwrap();
        assert_eq!(b[0]["components"][0]["custom_id"], "incident:INC-7:ack");
        assert_eq!(b[0]["components"][0]["disabled"], false);
    }

    #[test]
    fn a_storm_is_counted_and_only_the_first_alerts_are_listed() {
        let i = incident("Storm");
        let at = i.declared_at;
        let alert = |n: usize| spotter_core::store::AlertRecord {
            source: "alertmanager".into(),
            fingerprint: format!("fp{n}"),
            status: spotter_core::domain::AlertStatus::Firing,
            labels: Default::default(),
            annotations: Default::default(),
            summary: format!("disk full on host-{n}"),
            group_key: "g".into(),
            incident: Some(i.reference),
            starts_at: None,
            ends_at: None,
            first_seen_at: at,
            changed_at: at,
            recent_changes: vec![],
            flapping: false,
            suppressed_by: None,
            version: 1,
        };
        let summary = AlertSummary {
            firing: 10_000,
            suppressed: 3,
            resolved: 7,
            shown: (0..ALERTS_SHOWN as usize).map(alert).collect(),
        };
        let text = serde_json::to_value(embed(&i, &Config::builtin(), &summary))
            .unwrap()
            .to_string();
        assert!(text.contains("Firing alerts (10,000)"), "{text}");
        assert!(text.contains("… and 9,995 more"), "{text}");
        assert!(text.contains("disk full on host-4"), "{text}");
        assert!(!text.contains("host-5"), "{text}");
    }
}
