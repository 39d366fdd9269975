//! `spotter escalation simulate`: who is paged when, and how, for an incident nobody
//! acknowledges, from the current configuration.
//!
//! Not a second implementation of the rules: it runs the real engine and scheduler on a
//! throw-away SQLite database with a clock that jumps from one due job to the next, and prints
//! what the engine wrote on the timeline. What it prints is what `serve` would do (pages are
//! taken as delivered: a contact method failing at page time would fall through further).
//! Rotation overrides live in the real database and are not part of the simulation.

use anyhow::Context;
use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use spotter_core::clock::{Clock, ManualClock};
use spotter_core::config::{format_duration, Config};
use spotter_core::domain::{Actor, EventKind, LevelId, Source};
use spotter_core::metrics::Metrics;
use spotter_core::scheduler::Scheduler;
use spotter_core::store::{SqlStore, Store};
use spotter_core::Engine;
use std::process::ExitCode;
use std::sync::Arc;

/// Reads `--at`: RFC 3339 with an offset, or a local date-time in `tz`.
pub fn parse_at(s: &str, tz: chrono_tz::Tz) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let naive = ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .ok_or_else(|| {
            format!("--at `{s}`: write a time like 2026-03-29T01:30:00 (local to --tz) or 2026-03-29T01:30:00+01:00")
        })?;
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("--at `{s}` does not exist in {tz} (a daylight-saving gap)"))
}

pub async fn simulate(
    config: Config,
    level: u8,
    at: DateTime<Utc>,
    tz: chrono_tz::Tz,
    hours: i64,
) -> anyhow::Result<ExitCode> {
    let level = LevelId(level);
    let Some(lvl) = config.level(level).cloned() else {
        anyhow::bail!(
            "--level {level}: not a configured level; accepted: {}",
            config.level_choices()
        );
    };
    let dir = tempfile::TempDir::new().context("creating a scratch directory")?;
    let url = format!("sqlite://{}/simulation.db", dir.path().display());
    let key = spotter_core::audit::AuditKey::new(spotter_core::Secret::new(
        spotter_core::random_token(32),
    ));
    let store = SqlStore::connect(&url, 2).await?.with_audit_key(key);
    store.migrate().await?;
    let clock = Arc::new(ManualClock::new(at));
    let engine = Arc::new(Engine::new(
        Arc::new(store.clone()),
        Arc::new(config),
        clock.clone() as Arc<dyn Clock>,
        Arc::new(Metrics::new()),
    ));
    let declared = engine
        .declare(
            &Actor::system("simulation"),
            level,
            "simulated incident nobody acknowledges".into(),
            vec![],
            None,
            Source::Api,
        )
        .await?;
    let r = declared
        .incident
        .map(|i| i.reference)
        .context("the simulated declaration was refused")?;
    let scheduler = Scheduler::new(engine.clone());
    let until = at + Duration::hours(hours);
    loop {
        scheduler.tick().await?;
        let next = store
            .pending_jobs()
            .await?
            .into_iter()
            .map(|j| j.due_at)
            .filter(|d| *d <= until)
            .min();
        match next {
            Some(due) => clock.set(due.max(clock.now())),
            None => break,
        }
    }
    println!(
        "Level {level} {} (RTO {}), declared {} and never acknowledged; {}h shown:",
        lvl.name,
        format_duration(lvl.rto),
        local(at, tz),
        hours
    );
    for e in store.timeline(r).await? {
        let shown = matches!(
            e.kind,
            EventKind::Paged
                | EventKind::PageFailed
                | EventKind::RtoWarning
                | EventKind::RtoBreached
        );
        if shown {
            println!(
                "  +{:<8} {}  {}",
                format_duration(e.at - at),
                local(e.at, tz),
                e.text.replace(&r.to_string(), "the incident")
            );
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

fn local(t: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
}
