//! Who gets paged: `[[person]]` (their contact methods are read in [`super::delivery`]),
//! `[[team]]`, `[[rotation]]` (on-call schedules) and `[[escalation]]` (tiers over
//! unacknowledged time).
//!
//! People, teams and rotations share one namespace: a tier's `notify` names any of them. Teams
//! expand to their members when the file is read; rotations are resolved when a page goes out
//! (who is on call *then*, overrides included), see [`crate::oncall`].

use super::delivery::ContactMethod;
use super::*;
use chrono::NaiveTime;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use toml::Spanned;

type Report<'a> = &'a mut dyn FnMut(&std::ops::Range<usize>, String);

#[derive(Debug, Clone)]
pub struct Person {
    pub id: PersonId,
    pub name: String,
    pub email: Option<String>,
    pub roles: RoleSet,
    pub discord_user_id: Option<String>,
    pub phone: Option<String>,
    pub external: bool,
    /// How to reach them, tried in order; each failure falls through to the next. Without a
    /// `notify` list: Discord when they have a `discord_user_id`, then email when they have an
    /// `email`.
    pub notify: Vec<ContactMethod>,
}

#[derive(Debug, Clone)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub members: Vec<PersonId>,
}

/// An on-call rotation: members take turns, one shift each, handing over at a local time.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub id: String,
    pub name: String,
    pub members: Vec<PersonId>,
    pub shift: Shift,
    /// The local time of the hand-off (daily and weekly shifts).
    pub handoff: NaiveTime,
    pub timezone: chrono_tz::Tz,
    /// The day the first shift starts (at `handoff`, local time), with the first member.
    pub start: chrono::NaiveDate,
}

/// How long one shift lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shift {
    /// From `handoff` to `handoff` the next local day (23 or 25 hours across a DST change).
    Daily,
    /// From `handoff` to `handoff` seven local days later.
    Weekly,
    /// A fixed length of real time.
    Every(Duration),
}

/// What a tier's `notify` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Person(PersonId),
    /// A team, expanded to its members.
    Team(Vec<PersonId>),
    /// A rotation id: whoever is on call when the page goes out.
    Rotation(String),
}

/// One tier of a level's escalation policy: page `notify` `after` the escalation started, unless
/// the incident was acknowledged first.
#[derive(Debug, Clone)]
pub struct EscalationTier {
    pub after: Duration,
    /// What the config named (people, teams, rotations), for display.
    pub targets: Vec<String>,
    /// The same, resolved: rotations are looked up at page time.
    pub notify: Vec<Target>,
}

/// A level's escalation policy.
#[derive(Debug, Clone)]
pub struct Escalation {
    pub tiers: Vec<EscalationTier>,
    /// How many more times the last tier is paged while nobody acknowledges.
    pub repeat: u32,
    /// The pause between those repeats.
    pub repeat_every: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPerson {
    id: Spanned<String>,
    name: String,
    email: Option<String>,
    #[serde(default)]
    roles: Vec<Spanned<String>>,
    discord_user_id: Option<Spanned<String>>,
    phone: Option<String>,
    #[serde(default)]
    external: bool,
    notify: Option<Vec<Spanned<super::delivery::RawMethod>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTeam {
    id: Spanned<String>,
    name: String,
    members: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRotation {
    id: Spanned<String>,
    #[serde(default)]
    name: Option<String>,
    members: Spanned<Vec<Spanned<String>>>,
    shift: Spanned<String>,
    #[serde(default)]
    handoff: Option<Spanned<String>>,
    #[serde(default)]
    timezone: Option<Spanned<String>>,
    start: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEscalation {
    level: Spanned<u8>,
    #[serde(default)]
    tier: Vec<RawTier>,
    repeat: Option<u32>,
    repeat_every: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    after: Spanned<String>,
    notify: Spanned<Vec<Spanned<String>>>,
}

/// Everything this module reads, checked together (tiers name people, teams and rotations).
pub(super) struct Tables {
    pub person: Vec<RawPerson>,
    pub team: Vec<RawTeam>,
    pub rotation: Vec<RawRotation>,
    pub escalation: Vec<RawEscalation>,
    pub smtp: Option<super::delivery::RawSmtp>,
    pub paging: Option<super::delivery::RawPaging>,
}

pub(super) struct Parsed {
    pub people: BTreeMap<PersonId, Person>,
    pub teams: BTreeMap<String, Team>,
    pub rotations: BTreeMap<String, Rotation>,
    pub escalation: BTreeMap<LevelId, Escalation>,
    pub smtp: Option<SmtpConfig>,
    pub paging: PagingConfig,
}

/// Reads people, teams, rotations, escalation, `[smtp]` and `[paging]`.
pub(super) fn parse(
    raw: Tables,
    levels: &BTreeMap<LevelId, Level>,
    level_spans: &BTreeMap<LevelId, std::ops::Range<usize>>,
    incomplete: &dyn Fn(&str) -> bool,
    err: Report<'_>,
) -> Parsed {
    let mut people = BTreeMap::new();
    let mut names: HashMap<String, &'static str> = HashMap::new();
    let mut discord_ids = HashSet::new();
    for p in raw.person {
        let id = match p.id.get_ref().parse::<PersonId>() {
            Ok(id) => id,
            Err(m) => {
                err(&p.id.span(), m);
                continue;
            }
        };
        if names.insert(id.to_string(), "person").is_some() {
            err(
                &p.id.span(),
                format!("duplicate id `{id}`: person, team and rotation ids must be unique"),
            );
            continue;
        }
        let mut roles = Vec::new();
        for r in &p.roles {
            match r.get_ref().parse::<Role>() {
                Ok(role) => roles.push(role),
                Err(m) => err(&r.span(), m),
            }
        }
        if let Some(d) = &p.discord_user_id {
            let s = d.get_ref();
            if !super::discord::is_snowflake(s) {
                err(&d.span(), format!("discord_user_id `{s}` is not a Discord user id (a snowflake: 17-20 digits)"));
            } else if !discord_ids.insert(s.clone()) {
                err(
                    &d.span(),
                    format!("discord_user_id `{s}` is given to two people"),
                );
            }
        }
        if roles.is_empty() {
            roles.push(Role::Viewer);
        }
        let notify = match p.notify {
            Some(list) => list
                .into_iter()
                .filter_map(|m| super::delivery::parse_method(m, err))
                .collect(),
            None => {
                let mut d = Vec::new();
                if p.discord_user_id.is_some() {
                    d.push(ContactMethod::Discord);
                }
                if p.email.is_some() {
                    d.push(ContactMethod::Email);
                }
                d
            }
        };
        people.insert(
            id.clone(),
            Person {
                id,
                name: p.name,
                email: p.email,
                roles: RoleSet::new(roles),
                discord_user_id: p.discord_user_id.map(Spanned::into_inner),
                phone: p.phone,
                external: p.external,
                notify,
            },
        );
    }
    let members_of = |list: &[Spanned<String>], whose: &str, err: Report<'_>| {
        let mut members = Vec::new();
        for m in list {
            match m
                .get_ref()
                .parse::<PersonId>()
                .ok()
                .filter(|p| people.contains_key(p))
            {
                Some(p) => members.push(p),
                None if incomplete("person") => {}
                None => err(
                    &m.span(),
                    format!("{whose} names unknown person `{}`", m.get_ref()),
                ),
            }
        }
        members
    };
    let mut teams = BTreeMap::new();
    for t in raw.team {
        let id = t.id.get_ref().clone();
        if let Err(m) = id.parse::<PersonId>() {
            err(&t.id.span(), m.replace("person id", "team id"));
            continue;
        }
        if names.insert(id.clone(), "team").is_some() {
            err(
                &t.id.span(),
                format!("duplicate id `{id}`: person, team and rotation ids must be unique"),
            );
            continue;
        }
        let members = members_of(&t.members, &format!("team `{id}`"), err);
        teams.insert(
            id.clone(),
            Team {
                id,
                name: t.name,
                members,
            },
        );
    }
    let mut rotations = BTreeMap::new();
    for r in raw.rotation {
        let id = r.id.get_ref().clone();
        if let Err(m) = id.parse::<PersonId>() {
            err(&r.id.span(), m.replace("person id", "rotation id"));
            continue;
        }
        if names.insert(id.clone(), "rotation").is_some() {
            err(
                &r.id.span(),
                format!("duplicate id `{id}`: person, team and rotation ids must be unique"),
            );
            continue;
        }
        let members = members_of(r.members.get_ref(), &format!("rotation `{id}`"), err);
        if r.members.get_ref().is_empty() {
            err(&r.members.span(), format!("rotation `{id}` has no members"));
        }
        let shift = match r.shift.get_ref().as_str() {
            "daily" => Shift::Daily,
            "weekly" => Shift::Weekly,
            other => match parse_duration(other) {
                Ok(d) if d >= Duration::minutes(1) => Shift::Every(d),
                _ => {
                    err(&r.shift.span(), format!("shift `{other}`: write daily, weekly, or a duration of at least 1m like 12h"));
                    Shift::Daily
                }
            },
        };
        let handoff = match &r.handoff {
            Some(h) => NaiveTime::parse_from_str(h.get_ref(), "%H:%M").unwrap_or_else(|_| {
                err(
                    &h.span(),
                    format!("handoff `{}`: write a local time like 09:00", h.get_ref()),
                );
                NaiveTime::MIN
            }),
            None => NaiveTime::from_hms_opt(9, 0, 0).expect("09:00"),
        };
        let timezone = match &r.timezone {
            Some(tz) => tz.get_ref().parse::<chrono_tz::Tz>().unwrap_or_else(|_| {
                err(
                    &tz.span(),
                    format!(
                        "timezone `{}` is not an IANA time zone name (like Europe/Berlin or UTC)",
                        tz.get_ref()
                    ),
                );
                chrono_tz::UTC
            }),
            None => chrono_tz::UTC,
        };
        let start = chrono::NaiveDate::parse_from_str(r.start.get_ref(), "%Y-%m-%d")
            .unwrap_or_else(|_| {
                err(
                    &r.start.span(),
                    format!(
                        "start `{}`: write the first shift's day like 2026-01-05",
                        r.start.get_ref()
                    ),
                );
                chrono::NaiveDate::MIN
            });
        rotations.insert(
            id.clone(),
            Rotation {
                name: r.name.unwrap_or_else(|| id.clone()),
                id,
                members,
                shift,
                handoff,
                timezone,
                start,
            },
        );
    }

    // Escalation: one policy per level, tiers in increasing `after`, every name known.
    let mut escalation = BTreeMap::new();
    for e in raw.escalation {
        let level = LevelId(*e.level.get_ref());
        if !levels.contains_key(&level) {
            if incomplete("level") {
                continue;
            }
            err(
                &e.level.span(),
                format!("escalation for level {level}, which is not a configured [[level]]"),
            );
            continue;
        }
        if escalation.contains_key(&level) {
            err(
                &e.level.span(),
                format!("duplicate escalation for level {level}"),
            );
            continue;
        }
        if e.tier.is_empty() {
            err(
                &e.level.span(),
                format!("escalation for level {level} has no [[escalation.tier]]"),
            );
        }
        let mut tiers: Vec<EscalationTier> = Vec::new();
        for t in e.tier {
            let Some(after) = super::delivery::duration_of(&t.after, err) else {
                continue;
            };
            if let Some(prev) = tiers.last() {
                if after < prev.after {
                    err(&t.after.span(), format!("tier after `{}` comes before the previous tier's; order tiers by `after`", t.after.get_ref()));
                }
            }
            let notify_span = t.notify.span();
            let notify = t.notify.into_inner();
            if notify.is_empty() {
                err(
                    &notify_span,
                    "notify is empty: name at least one person, team or rotation".into(),
                );
            }
            let mut targets = Vec::new();
            let mut resolved = Vec::new();
            for n in notify {
                let name = n.get_ref();
                match names.get(name.as_str()) {
                    Some(&"person") => {
                        resolved.push(Target::Person(name.parse().expect("validated above")))
                    }
                    Some(&"team") => resolved.push(Target::Team(teams[name].members.clone())),
                    Some(_) => resolved.push(Target::Rotation(name.clone())),
                    None => {
                        if !incomplete("person") && !incomplete("team") && !incomplete("rotation") {
                            err(
                                &n.span(),
                                format!("escalation tier names unknown person, team or rotation `{name}`"),
                            );
                        }
                        continue;
                    }
                }
                targets.push(name.clone());
            }
            tiers.push(EscalationTier {
                after,
                targets,
                notify: resolved,
            });
        }
        let repeat_every = e
            .repeat_every
            .as_ref()
            .and_then(|d| super::delivery::duration_of(d, err))
            .unwrap_or(Duration::minutes(30));
        if repeat_every < Duration::minutes(1) {
            if let Some(d) = &e.repeat_every {
                err(&d.span(), "repeat_every must be at least 1m".into());
            }
        }
        escalation.insert(
            level,
            Escalation {
                tiers,
                repeat: e.repeat.unwrap_or(0),
                repeat_every,
            },
        );
    }
    for (id, span) in level_spans {
        if !escalation.contains_key(id) && !incomplete("escalation") {
            err(
                span,
                format!("level {id} has no [[escalation]] policy; add one with level = {id}"),
            );
        }
    }

    let smtp = super::delivery::parse_smtp(raw.smtp, err);
    let paging = super::delivery::parse_paging(raw.paging, err);

    Parsed {
        people,
        teams,
        rotations,
        escalation,
        smtp,
        paging,
    }
}
