//! Plain-text renderings of runbooks, runs and probe results.

use super::time;
use crate::config::Config;
use crate::domain::{LevelId, Role, Run, RunState, StepState};
use crate::runbook::{ApprovalPolicy, Probe, ProbeResult, Runbook, StepKind};
use std::collections::BTreeMap;

/// `3, 4, 5`.
pub fn level_list(levels: &[LevelId]) -> String {
    levels
        .iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `1 approval from an approver`, `2 approvals from admins`.
pub fn approvals_wanted(n: u32, role: Role) -> String {
    let article = if matches!(role, Role::Admin | Role::Approver) {
        "an"
    } else {
        "a"
    };
    match n {
        1 => format!("1 approval from {article} {role}"),
        n => format!("{n} approvals, each from a different {role}"),
    }
}

/// What a policy asks before the first step runs.
pub fn approval_need(p: &ApprovalPolicy) -> String {
    if p.is_auto() {
        "run at once (pre-approved)".into()
    } else {
        format!(
            "wait for {} (never the requester's own)",
            approvals_wanted(p.approvals, p.role)
        )
    }
}

/// ` with recovery_date=20261126` (empty without parameters).
pub fn params(p: &BTreeMap<String, String>) -> String {
    if p.is_empty() {
        return String::new();
    }
    format!(
        " with {}",
        p.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// `1 step`, `3 steps`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

pub fn runbook_list(runbooks: &crate::runbook::Runbooks, active: &[Run]) -> String {
    if runbooks.is_empty() {
        return "No runbooks are loaded.".into();
    }
    let mut out = String::from("Runbooks (/runbook show name:<name> for the steps):");
    for rb in runbooks.iter() {
        let levels = if rb.levels.is_empty() {
            "any level".to_string()
        } else {
            format!("levels {}", level_list(&rb.levels))
        };
        let approval = if rb.approval.is_auto() {
            "pre-approved".to_string()
        } else {
            approvals_wanted(rb.approval.approvals, rb.approval.role)
        };
        out.push_str(&format!(
            "\n  {} — {} [{levels}; {approval}; {}]",
            rb.name,
            rb.description,
            count(rb.steps.len(), "step")
        ));
    }
    if active.is_empty() {
        out.push_str("\nNo run is in progress.");
    } else {
        out.push_str("\nIn progress:");
        for r in active {
            out.push_str(&format!(
                "\n  run #{} {} {}{}",
                r.id,
                r.runbook,
                r.state,
                r.incident.map(|i| format!(" ({i})")).unwrap_or_default()
            ));
        }
    }
    out
}

pub fn runbook(rb: &Runbook) -> String {
    let mut out = format!("{} — {}\n", rb.name, rb.description);
    out.push_str(&format!(
        "levels: {}; approval: {}\n",
        if rb.levels.is_empty() {
            "any".to_string()
        } else {
            level_list(&rb.levels)
        },
        approval_need(&rb.approval)
    ));
    if rb.params.is_empty() {
        out.push_str("parameters: none\n");
    } else {
        out.push_str("parameters:\n");
        for p in &rb.params {
            let kind = match &p.kind {
                crate::runbook::ParamKind::Enum { values } => {
                    format!("one of {}", values.join(", "))
                }
                crate::runbook::ParamKind::Regex { pattern } => {
                    format!("matching {}", pattern.as_str())
                }
                crate::runbook::ParamKind::Date { format } => format!("a date {}", format.as_str()),
                crate::runbook::ParamKind::Integer { min, max } => format!(
                    "a whole number{}{}",
                    min.map(|m| format!(" ≥ {m}")).unwrap_or_default(),
                    max.map(|m| format!(" ≤ {m}")).unwrap_or_default()
                ),
                crate::runbook::ParamKind::Incident => "an incident (INC-n)".into(),
            };
            out.push_str(&format!(
                "  {}: {kind}{} — {}\n",
                p.name,
                p.default
                    .as_deref()
                    .map(|d| format!(" (default {d})"))
                    .unwrap_or_else(|| " (required)".into()),
                p.description
            ));
        }
    }
    out.push_str("steps:");
    for (i, s) in rb.steps.iter().enumerate() {
        let kind = match &s.kind {
            StepKind::Exec(_) => "exec",
            StepKind::Http(_) => "http",
            StepKind::Probe(_) => "probe",
            StepKind::Manual { .. } => "manual",
        };
        let mut flags = vec![kind.to_string()];
        if s.destructive {
            flags.push("destructive".into());
        }
        if let Some(p) = s.approval.filter(|p| !p.is_auto()) {
            flags.push(format!("needs {}", approvals_wanted(p.approvals, p.role)));
        }
        if !s.levels.is_empty() {
            flags.push(format!("levels {}", level_list(&s.levels)));
        }
        out.push_str(&format!(
            "\n  {}. {} [{}] — {}",
            i + 1,
            s.id,
            flags.join(", "),
            s.description
        ));
    }
    out
}

/// `/runbook status`: the run, its approvals, its steps and the tail of each step's output.
pub fn run(r: &Run, config: &Config, tail: usize) -> String {
    let mut out = format!(
        "Run #{} of {}{} — {}\nrequested by {} at {}{}",
        r.id,
        r.runbook,
        r.incident.map(|i| format!(" for {i}")).unwrap_or_default(),
        r.state,
        config.display_name(&r.requested_by),
        time(r.requested_at),
        super::runs::params(&r.params)
    );
    if r.state == RunState::PendingApproval {
        out.push_str(&format!(
            "\nwaits at step {} for {} until {}",
            r.gate + 1,
            approvals_wanted(r.needed, r.role),
            r.expires_at.map(time).unwrap_or_default()
        ));
    }
    for a in &r.approvals {
        out.push_str(&format!(
            "\n{} by {} at {} (step {})",
            a.decision.as_str(),
            config.display_name(&a.person),
            time(a.at),
            a.gate + 1
        ));
    }
    for s in &r.steps {
        out.push_str(&format!(
            "\nstep {} {}: {}{}",
            s.index + 1,
            s.step_id,
            s.state.as_str().replace('_', " "),
            if s.detail.is_empty() || s.state == StepState::Skipped && s.detail.is_empty() {
                String::new()
            } else {
                format!(" ({})", s.detail)
            }
        ));
        let t = last_chars(&s.output, tail);
        if !t.trim().is_empty() {
            out.push_str(&format!(
                "\n```\n{}\n```",
                t.trim_end().replace("```", "'''")
            ));
        }
    }
    if let Some(o) = &r.outcome {
        out.push_str(&format!("\noutcome: {o}"));
    }
    out
}

/// The last `max` characters of `s`, from a line start when one is near.
fn last_chars(s: &str, max: usize) -> &str {
    let n = s.chars().count();
    if n <= max {
        return s;
    }
    let start = s.char_indices().nth(n - max).map(|(i, _)| i).unwrap_or(0);
    let cut = &s[start..];
    match cut.find('\n') {
        Some(i) if i + 1 < cut.len() => &cut[i + 1..],
        _ => cut,
    }
}

/// `/system check`: one line per probe, unhealthy first in the headline.
pub fn system_check(probes: &[Probe], results: &[ProbeResult]) -> String {
    if probes.is_empty() {
        return "System status check: no probes are configured ([[probe]])".into();
    }
    let down: Vec<&str> = probes
        .iter()
        .zip(results)
        .filter(|(_, r)| !r.healthy)
        .map(|(p, _)| p.id.as_str())
        .collect();
    let mut out = if down.is_empty() {
        format!("System status check: all {} probes healthy", probes.len())
    } else {
        format!(
            "System status check: {} of {} probes failing ({})",
            down.len(),
            probes.len(),
            down.join(", ")
        )
    };
    for (p, r) in probes.iter().zip(results) {
        out.push_str(&format!(
            "\n{} {} ({}): {} — {}",
            if r.healthy { "✅" } else { "❌" },
            p.id,
            p.spec.kind(),
            if r.healthy { "ONLINE" } else { "OFFLINE" },
            r.detail
        ));
    }
    out
}

/// `/status show`: the page as users see it now.
pub fn status_page(s: &crate::status::StatusSnapshot) -> String {
    let mut out = format!(
        "{} status: {} (indicator {}) · {}",
        s.page.name,
        s.description,
        s.indicator.as_str(),
        s.page.url
    );
    for c in &s.components {
        out.push_str(&format!("\n  {}: {}", c.name, c.status.title()));
    }
    let open: Vec<_> = s.unresolved().collect();
    if open.is_empty() {
        out.push_str("\nNo public incident is open.");
    }
    for i in open {
        out.push_str(&format!(
            "\n{} “{}” — {}, impact {}",
            i.id,
            i.name,
            i.status.title(),
            i.impact.as_str()
        ));
        if let Some(u) = i.updates.first() {
            out.push_str(&format!("\n  latest ({}): {}", time(u.created_at), u.body));
        }
    }
    out
}
