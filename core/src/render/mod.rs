//! Plain-text renderings of incidents for chat replies. Adapters may render richer forms (a
//! Discord embed) from the same data; these are the shared text.

mod runs;
pub use runs::*;

use crate::config::Config;
use crate::domain::{Incident, StateFilter, TimelineEntry};
use chrono::{DateTime, Utc};

/// `9950` → `9,950`: a storm's counts stay readable at a glance.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let groups: Vec<&str> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|g| std::str::from_utf8(g).expect("ASCII digits"))
        .collect();
    let sign = if n < 0 { "-" } else { "" };
    format!("{sign}{}", groups.join(","))
}

pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `1h 5m`, `42s`: coarse and readable.
pub fn duration_between(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let secs = (to - from).num_seconds().unsigned_abs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m {s}s"),
        (h, m) => format!("{h}h {m}m"),
    }
}

fn deadline(i: &Incident, now: DateTime<Utc>) -> String {
    if !i.state.is_open() {
        return time(i.rto_deadline);
    }
    if now <= i.rto_deadline {
        format!(
            "{} (in {})",
            time(i.rto_deadline),
            duration_between(now, i.rto_deadline)
        )
    } else {
        format!(
            "{} (exceeded by {})",
            time(i.rto_deadline),
            duration_between(i.rto_deadline, now)
        )
    }
}

pub fn level_name(i: &Incident, config: &Config) -> String {
    config
        .level(i.level)
        .map(|l| l.name.clone())
        .unwrap_or_else(|| format!("level {}", i.level))
}

pub fn incident(i: &Incident, config: &Config, now: DateTime<Utc>) -> String {
    let comps = if i.components.is_empty() {
        "none".to_string()
    } else {
        i.components
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let commander = i
        .commander
        .as_ref()
        .map(|c| config.display_name(c.as_str()))
        .unwrap_or_else(|| "none yet".into());
    let mut out = format!(
        "{} · level {} {} · {} · phase {}\n{}\ncomponents: {comps} · commander: {commander} · source: {}\ndeclared {} by {} · RTO deadline {}",
        i.reference,
        i.level,
        level_name(i, config),
        i.state,
        i.phase,
        i.title,
        i.source.as_str(),
        time(i.declared_at),
        config.display_name(&i.declared_by),
        deadline(i, now),
    );
    if let (Some(at), Some(by)) = (i.acknowledged_at, &i.acknowledged_by) {
        out.push_str(&format!(
            "\nacknowledged {} by {}",
            time(at),
            config.display_name(by)
        ));
    }
    if let Some(at) = i.resolved_at {
        out.push_str(&format!("\nresolved {}", time(at)));
        if let Some(s) = &i.summary {
            out.push_str(&format!(": {s}"));
        }
    }
    out
}

pub fn list(list: &[Incident], filter: StateFilter, config: &Config, now: DateTime<Utc>) -> String {
    if list.is_empty() {
        return match filter {
            StateFilter::Open => "No open incidents.".into(),
            _ => "No incidents.".into(),
        };
    }
    let mut out = String::new();
    for (n, i) in list.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "{} · L{} {} · {} · {} · RTO {}",
            i.reference,
            i.level,
            level_name(i, config),
            i.state,
            i.title,
            deadline(i, now)
        ));
    }
    out
}

pub fn timeline(i: &Incident, entries: &[TimelineEntry], config: &Config) -> String {
    let mut out = format!("{} timeline — {}", i.reference, i.title);
    for e in entries {
        out.push_str(&format!(
            "\n{} [{}{}] {}: {}",
            e.at.format("%Y-%m-%d %H:%M:%S"),
            e.kind.as_str(),
            if e.public { ", public" } else { "" },
            config.display_name(&e.actor),
            e.text
        ));
    }
    out
}

pub fn components(c: &[crate::domain::ComponentId]) -> String {
    if c.is_empty() {
        "no component".into()
    } else {
        c.iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Who each level's escalation tiers page, and who each rotation has on call now and next.
pub fn oncall(
    config: &Config,
    level: Option<crate::domain::LevelId>,
    at: chrono::DateTime<chrono::Utc>,
    overrides: &[crate::oncall::RotationOverride],
) -> String {
    let mut out = String::new();
    if level.is_none() && !config.rotations.is_empty() {
        out.push_str("On call:");
        for r in config.rotations.values() {
            match crate::oncall::now_and_next(r, at, overrides) {
                Some((now, next)) => out.push_str(&format!(
                    "\n  {} ({}): {} until {}{}; next {} until {}",
                    r.name,
                    r.id,
                    config.display_name(now.person.as_str()),
                    time(now.until),
                    if now.override_id.is_some() {
                        " (override)"
                    } else {
                        ""
                    },
                    config.display_name(next.person.as_str()),
                    time(next.until),
                )),
                None => out.push_str(&format!("\n  {} ({}): nobody (no members)", r.name, r.id)),
            }
        }
        out.push('\n');
    }
    out.push_str("Escalation matrix:");
    for (id, policy) in &config.escalation {
        if level.is_some_and(|l| l != *id) {
            continue;
        }
        let name = config.level(*id).map(|l| l.name.as_str()).unwrap_or("");
        out.push_str(&format!("\nLevel {id} {name}:"));
        for (n, t) in policy.tiers.iter().enumerate() {
            let when = if t.after <= chrono::Duration::zero() {
                "at once".to_string()
            } else {
                format!(
                    "after {} unacknowledged",
                    crate::config::format_duration(t.after)
                )
            };
            let people: Vec<String> = crate::oncall::tier_people(config, &t.notify, at, overrides)
                .iter()
                .map(|p| config.display_name(p.as_str()))
                .collect();
            out.push_str(&format!(
                "\n  tier {} ({when}): {}",
                n + 1,
                people.join(", ")
            ));
        }
        if policy.repeat > 0 {
            out.push_str(&format!(
                "\n  then tier {} again every {}, {} more times",
                policy.tiers.len(),
                crate::config::format_duration(policy.repeat_every),
                policy.repeat
            ));
        }
    }
    out
}

pub fn maintenance(windows: &[crate::store::Maintenance], now: DateTime<Utc>) -> String {
    if windows.is_empty() {
        return "No active maintenance windows.".into();
    }
    let mut out = String::new();
    for (n, w) in windows.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "#{} · {} · until {} (in {}) · {} · by {}",
            w.id,
            components(&w.components),
            time(w.ends_at),
            duration_between(now, w.ends_at),
            w.reason,
            w.created_by
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_are_separated_by_commas() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(9_950), "9,950");
        assert_eq!(super::thousands(1_234_567), "1,234,567");
        assert_eq!(super::thousands(-1_000), "-1,000");
    }
}
