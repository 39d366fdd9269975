//! Keeping the installation healthy over time: `[audit]` (the key of the audit chain),
//! `[jobs]` (how often a failing job is retried before it is dead-lettered) and `[retention]`
//! (how long finished rows are kept).

use super::*;
use serde::Deserialize;
use toml::Spanned;

type Report<'a> = &'a mut dyn FnMut(&std::ops::Range<usize>, String);

#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// The environment variable holding the audit chain's HMAC key. Unset: the key is generated
    /// on first start into `<data_dir>/audit-key` (mode 0600). Never stored in the database, so
    /// someone who can write the database cannot recompute the chain.
    pub key_env: String,
}

#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// Attempts before a failing job is given up (a dead letter: timeline entry and metric).
    pub max_attempts: u32,
}

#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// Delivered outbox messages older than this are deleted.
    pub delivered_messages: Duration,
    /// Done, cancelled and dead jobs older than this are deleted.
    pub finished_jobs: Duration,
    /// Resolved alerts not changed for this long, whose incident is no longer open, are deleted.
    pub resolved_alerts: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    key_env: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJobs {
    max_attempts: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetention {
    delivered_messages: Option<Spanned<String>>,
    finished_jobs: Option<Spanned<String>>,
    resolved_alerts: Option<Spanned<String>>,
}

pub(super) fn parse_audit(raw: Option<RawAudit>, err: Report<'_>) -> AuditConfig {
    AuditConfig {
        key_env: match raw.and_then(|a| a.key_env) {
            Some(k) => super::raw::env_var_name(&k, err),
            None => "SPOTTER_AUDIT_KEY".into(),
        },
    }
}

pub(super) fn parse_jobs(raw: Option<RawJobs>, err: Report<'_>) -> JobsConfig {
    JobsConfig {
        max_attempts: match raw.and_then(|j| j.max_attempts) {
            Some(m) if *m.get_ref() == 0 => {
                err(
                    &m.span(),
                    "[jobs] max_attempts must be at least 1, e.g. 10".into(),
                );
                1
            }
            Some(m) => m.into_inner(),
            None => 10,
        },
    }
}

pub(super) fn parse_retention(raw: Option<RawRetention>, err: Report<'_>) -> RetentionConfig {
    let raw = raw.unwrap_or(RawRetention {
        delivered_messages: None,
        finished_jobs: None,
        resolved_alerts: None,
    });
    let mut days = |sp: Option<Spanned<String>>, default_days: i64| match sp {
        Some(s) => match parse_duration(s.get_ref()) {
            Ok(d) if d >= Duration::hours(1) => d,
            Ok(_) => {
                err(
                    &s.span(),
                    "[retention] keeps rows at least 1h; use e.g. \"30d\"".into(),
                );
                Duration::days(default_days)
            }
            Err(m) => {
                err(&s.span(), format!("[retention] {m}"));
                Duration::days(default_days)
            }
        },
        None => Duration::days(default_days),
    };
    RetentionConfig {
        delivered_messages: days(raw.delivered_messages, 30),
        finished_jobs: days(raw.finished_jobs, 30),
        resolved_alerts: days(raw.resolved_alerts, 90),
    }
}
