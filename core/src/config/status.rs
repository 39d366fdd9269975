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
    /// `[status.templates.level.N]`: the words for incidents at level N.
    pub by_level: BTreeMap<LevelId, TemplateOverride>,
    /// `[status.templates.component.ID]`: the words for incidents on a component; they win over
    /// the level's, since "the workout database" says more to users than "a major outage".
    pub by_component: BTreeMap<ComponentId, TemplateOverride>,
}

/// Some of the templates, for one level or component; a field left out falls through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateOverride {
    pub title: Option<String>,
    pub investigating: Option<String>,
    pub identified: Option<String>,
    pub monitoring: Option<String>,
    pub resolved: Option<String>,
}

/// One of the templates: the public incident's title or the update of a public status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateField {
    Title,
    Investigating,
    Identified,
    Monitoring,
    Resolved,
}

impl TemplateOverride {
    fn get(&self, field: TemplateField) -> Option<&str> {
        match field {
            TemplateField::Title => self.title.as_deref(),
            TemplateField::Investigating => self.investigating.as_deref(),
            TemplateField::Identified => self.identified.as_deref(),
            TemplateField::Monitoring => self.monitoring.as_deref(),
            TemplateField::Resolved => self.resolved.as_deref(),
        }
    }
}

impl StatusTemplates {
    /// The template of `field` for an incident at `level` on `components`, field by field: the
    /// first of its components with an override for that field, else its level's, else the
    /// default. (`{components}` is left for the caller to fill.)
    pub fn pick(&self, field: TemplateField, level: LevelId, components: &[ComponentId]) -> &str {
        components
            .iter()
            .filter_map(|c| self.by_component.get(c))
            .chain(self.by_level.get(&level))
            .find_map(|o| o.get(field))
            .unwrap_or(match field {
                TemplateField::Title => &self.title,
                TemplateField::Investigating => &self.investigating,
                TemplateField::Identified => &self.identified,
                TemplateField::Monitoring => &self.monitoring,
                TemplateField::Resolved => &self.resolved,
            })
    }
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
                by_level: BTreeMap::new(),
                by_component: BTreeMap::new(),
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
    title: Option<Spanned<String>>,
    investigating: Option<Spanned<String>>,
    identified: Option<Spanned<String>>,
    monitoring: Option<Spanned<String>>,
    resolved: Option<Spanned<String>>,
    #[serde(default)]
    level: BTreeMap<Spanned<String>, RawOverride>,
    #[serde(default)]
    component: BTreeMap<Spanned<String>, RawOverride>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverride {
    title: Option<Spanned<String>>,
    investigating: Option<Spanned<String>>,
    identified: Option<Spanned<String>>,
    monitoring: Option<Spanned<String>>,
    resolved: Option<Spanned<String>>,
}

/// The only placeholder a template may hold.
const PLACEHOLDER: &str = "{components}";

/// A template's text when it is set and every `{…}` in it is `{components}` (a lone brace is
/// plain text); an unknown placeholder is reported, since it would reach the public page as
/// written.
fn template_text(
    v: Option<Spanned<String>>,
    table: &str,
    key: &str,
    err: Report<'_>,
) -> Option<String> {
    let v = v.filter(|v| !v.get_ref().trim().is_empty())?;
    let text = v.get_ref();
    let mut rest = text.as_str();
    let mut ok = true;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find(['{', '}']) {
            Some(close) if after.as_bytes()[close] == b'}' => {
                let found = &rest[open..open + close + 2];
                if found != PLACEHOLDER {
                    err(
                        &v.span(),
                        format!("[{table}] {key}: unknown placeholder `{found}`; accepted: {PLACEHOLDER}"),
                    );
                    ok = false;
                }
                rest = &after[close + 1..];
            }
            Some(close) => rest = &after[close..],
            None => break,
        }
    }
    ok.then(|| v.into_inner())
}

fn parse_override(r: RawOverride, table: &str, err: Report<'_>) -> TemplateOverride {
    TemplateOverride {
        title: template_text(r.title, table, "title", err),
        investigating: template_text(r.investigating, table, "investigating", err),
        identified: template_text(r.identified, table, "identified", err),
        monitoring: template_text(r.monitoring, table, "monitoring", err),
        resolved: template_text(r.resolved, table, "resolved", err),
    }
}

fn parse_templates(
    t: RawTemplates,
    s: &mut StatusTemplates,
    levels: &BTreeMap<LevelId, Level>,
    components: &[Component],
    err: Report<'_>,
) {
    const TABLE: &str = "status.templates";
    let mut set = |slot: &mut String, v: Option<Spanned<String>>, key: &str| {
        if let Some(v) = template_text(v, TABLE, key, err) {
            *slot = v;
        }
    };
    set(&mut s.title, t.title, "title");
    set(&mut s.investigating, t.investigating, "investigating");
    set(&mut s.identified, t.identified, "identified");
    set(&mut s.monitoring, t.monitoring, "monitoring");
    set(&mut s.resolved, t.resolved, "resolved");
    for (key, o) in t.level {
        let id = key.get_ref().parse::<u8>().ok().map(LevelId);
        match id.filter(|id| levels.contains_key(id)) {
            Some(id) => {
                let table = format!("{TABLE}.level.{}", id.0);
                s.by_level.insert(id, parse_override(o, &table, err));
            }
            None => err(
                &key.span(),
                format!(
                    "[{TABLE}.level] `{}` is not a configured [[level]] id; accepted: {}",
                    key.get_ref(),
                    accepted(levels.keys().map(|l| l.0.to_string()))
                ),
            ),
        }
    }
    for (key, o) in t.component {
        match components.iter().find(|c| c.id.as_str() == key.get_ref()) {
            Some(c) => {
                let table = format!("{TABLE}.component.{}", c.id);
                s.by_component
                    .insert(c.id.clone(), parse_override(o, &table, err));
            }
            None => err(
                &key.span(),
                format!(
                    "[{TABLE}.component] `{}` is not a configured [[component]] id; accepted: {}",
                    key.get_ref(),
                    accepted(components.iter().map(|c| c.id.to_string()))
                ),
            ),
        }
    }
}

fn accepted(ids: impl Iterator<Item = String>) -> String {
    let ids: Vec<String> = ids.collect();
    if ids.is_empty() {
        "none configured".into()
    } else {
        ids.join(", ")
    }
}

pub(super) fn parse_status(
    raw: Option<RawStatus>,
    levels: &BTreeMap<LevelId, Level>,
    components: &[Component],
    err: Report<'_>,
) -> StatusConfig {
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
        parse_templates(t, &mut s.templates, levels, components, err);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::{Config, DEFAULT_TOML};
    use super::*;

    fn with(tables: &str) -> Result<Config, String> {
        Config::from_toml(&format!("{DEFAULT_TOML}\n{tables}"), "t.toml").map_err(|e| e.to_string())
    }

    fn on(ids: &[&str]) -> Vec<ComponentId> {
        ids.iter().map(|c| c.parse().unwrap()).collect()
    }

    #[test]
    fn overrides_are_picked_field_by_field_component_then_level_then_default() {
        let c = with(
            r#"
[status.templates.level.3]
title = "Major outage: {components}"
investigating = "Level 3 on {components}."

[status.templates.component.database]
investigating = "We are investigating problems with the workout database."

[status.templates.component.cache]
resolved = "The cache is back."
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let t = &c.status.templates;
        let pick = |f, level, ids: &[&str]| t.pick(f, LevelId(level), &on(ids)).to_string();
        use TemplateField::*;
        assert_eq!(
            pick(Investigating, 3, &["database"]),
            "We are investigating problems with the workout database."
        );
        assert_eq!(pick(Title, 3, &["database"]), "Major outage: {components}");
        assert_eq!(pick(Identified, 3, &["database"]), t.identified);
        assert_eq!(
            pick(Investigating, 3, &["frontend"]),
            "Level 3 on {components}."
        );
        assert_eq!(pick(Investigating, 2, &["frontend"]), t.investigating);
        assert_eq!(pick(Title, 2, &[]), "Problems with {components}");
        // The first component with an override for that field, in the incident's order.
        assert_eq!(
            pick(Investigating, 2, &["cache", "database"]),
            "We are investigating problems with the workout database."
        );
        assert_eq!(
            pick(Resolved, 2, &["database", "cache"]),
            "The cache is back."
        );
        // The built-in file has none.
        let b = Config::builtin();
        assert!(
            b.status.templates.by_level.is_empty() && b.status.templates.by_component.is_empty()
        );
    }

    #[test]
    fn unknown_levels_components_and_placeholders_are_refused_with_the_accepted_ones() {
        // The tables start after the file and the blank line `with` adds.
        let start = DEFAULT_TOML.lines().count() + 2;
        let e = with(
            r#"
[status.templates.level.7]
title = "x"

[status.templates.level.major]
title = "x"

[status.templates.component.db]
title = "x"

[status.templates.level.2]
investigating = "Trouble with {component} since {started}."
# A lone brace is plain text.
identified = "{components} {"

[status.templates.component.cache]
subject = "x"
"#,
        )
        .unwrap_err();
        let at = |line: usize, col: usize, m: &str| format!("t.toml:{}:{col}: {m}", start + line);
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(
            lines,
            [
                at(1, 25, "[status.templates.level] `7` is not a configured [[level]] id; accepted: 1, 2, 3, 4, 5"),
                at(4, 25, "[status.templates.level] `major` is not a configured [[level]] id; accepted: 1, 2, 3, 4, 5"),
                at(7, 29, "[status.templates.component] `db` is not a configured [[component]] id; accepted: database, application, frontend, cache, proxy"),
                at(11, 17, "[status.templates.level.2] investigating: unknown placeholder `{component}`; accepted: {components}"),
                at(11, 17, "[status.templates.level.2] investigating: unknown placeholder `{started}`; accepted: {components}"),
                at(16, 1, "[status]: templates: component: cache: unknown key `subject`; accepted: title, investigating, identified, monitoring, resolved"),
            ]
        );
        // The defaults are held to the same rule.
        let e = Config::from_toml(
            &DEFAULT_TOML.replace(
                r#"title = "Problems with {components}""#,
                r#"title = "Problems with {component}""#,
            ),
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("[status.templates] title: unknown placeholder `{component}`; accepted: {components}"),
            "{e}"
        );
    }
}
