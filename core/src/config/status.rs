//! `[status]`: the public status page: its name, when an incident is published, and the words
//! of the automatic updates.

use super::delivery::duration_of;
use super::*;
use serde::Deserialize;
use toml::Spanned;

type Report<'a> = &'a mut dyn FnMut(&std::ops::Range<usize>, String);

#[derive(Debug, Clone)]
pub struct StatusConfig {
    /// The page's name (Statuspage's `page.name`).
    pub page_name: String,
    /// Where the status page is (default: `<server.public_url>/status`).
    pub page_url: Option<String>,
    /// An IANA zone for the page (Statuspage's `page.time_zone`).
    pub time_zone: String,
    /// Incidents at this level or above are published (after `publish_after`).
    pub publish_min_level: LevelId,
    /// A second listen address serving only the public surfaces (the status page, its API,
    /// feeds and badge), so they can face the internet while the rest stays internal.
    pub listen: Option<String>,
    /// The grace before an incident is published, so a blip resolved at once never reaches users.
    pub publish_after: Duration,
    /// A templated update on a phase change is skipped when a person posted a public update
    /// within this long.
    pub quiet_after_update: Duration,
    pub templates: StatusTemplates,
    /// The Discord channel that announces public incidents to users (opening and resolution
    /// posts, published to followers when it is an announcement channel).
    pub discord_channel_id: Option<String>,
    /// Subscription requests a source address may make per hour on the page's form.
    pub subscribe_per_hour: u32,
}

/// The words of automatic public updates; `{components}` is the affected components' names.
#[derive(Debug, Clone)]
pub struct StatusTemplates {
    pub title: String,
    pub investigating: String,
    pub identified: String,
    pub monitoring: String,
    pub resolved: String,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            page_name: "Workout Tracker".into(),
            page_url: None,
            listen: None,
            time_zone: "Etc/UTC".into(),
            publish_min_level: LevelId(2),
            publish_after: Duration::minutes(5),
            quiet_after_update: Duration::minutes(10),
            discord_channel_id: None,
            subscribe_per_hour: 10,
            templates: StatusTemplates {
                title: "Problems with {components}".into(),
                investigating: "We are investigating problems with {components}.".into(),
                identified: "The cause of the problems with {components} has been identified and a fix is being applied.".into(),
                monitoring: "A fix has been applied to {components} and we are monitoring the results.".into(),
                resolved: "This incident has been resolved: {components} are working normally again.".into(),
            },
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStatus {
    page_name: Option<String>,
    page_url: Option<String>,
    listen: Option<Spanned<String>>,
    time_zone: Option<Spanned<String>>,
    publish_min_level: Option<u8>,
    publish_after: Option<Spanned<String>>,
    quiet_after_update: Option<Spanned<String>>,
    templates: Option<RawTemplates>,
    discord_channel_id: Option<Spanned<String>>,
    subscribe_per_hour: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplates {
    title: Option<String>,
    investigating: Option<String>,
    identified: Option<String>,
    monitoring: Option<String>,
    resolved: Option<String>,
}

pub(super) fn parse_status(raw: Option<RawStatus>, err: Report<'_>) -> StatusConfig {
    let mut s = StatusConfig::default();
    let Some(r) = raw else { return s };
    if let Some(n) = r.page_name.filter(|n| !n.trim().is_empty()) {
        s.page_name = n;
    }
    s.page_url = r.page_url.filter(|u| !u.trim().is_empty());
    if let Some(l) = r.listen {
        if l.get_ref().parse::<std::net::SocketAddr>().is_err() {
            err(
                &l.span(),
                format!(
                    "[status]: listen `{}` is not an address and port; e.g. \"0.0.0.0:8081\"",
                    l.get_ref()
                ),
            );
        } else {
            s.listen = Some(l.into_inner());
        }
    }
    if let Some(tz) = r.time_zone {
        if tz.get_ref().parse::<chrono_tz::Tz>().is_err() {
            err(
                &tz.span(),
                format!(
                    "[status]: time_zone `{}` is not an IANA time zone; e.g. \"Europe/Berlin\" or \"Etc/UTC\"",
                    tz.get_ref()
                ),
            );
        } else {
            s.time_zone = tz.into_inner();
        }
    }
    if let Some(l) = r.publish_min_level {
        s.publish_min_level = LevelId(l);
    }
    if let Some(d) = r.publish_after.as_ref().and_then(|d| duration_of(d, err)) {
        s.publish_after = d;
    }
    if let Some(d) = r
        .quiet_after_update
        .as_ref()
        .and_then(|d| duration_of(d, err))
    {
        s.quiet_after_update = d;
    }
    if let Some(c) = &r.discord_channel_id {
        s.discord_channel_id = Some(super::discord::snowflake(
            c,
            "[status]: discord_channel_id",
            err,
        ));
    }
    if let Some(n) = r.subscribe_per_hour {
        s.subscribe_per_hour = n;
    }
    if let Some(t) = r.templates {
        let set = |slot: &mut String, v: Option<String>| {
            if let Some(v) = v.filter(|v| !v.trim().is_empty()) {
                *slot = v;
            }
        };
        set(&mut s.templates.title, t.title);
        set(&mut s.templates.investigating, t.investigating);
        set(&mut s.templates.identified, t.identified);
        set(&mut s.templates.monitoring, t.monitoring);
        set(&mut s.templates.resolved, t.resolved);
    }
    s
}
