//! Typed access to a parsed line's raw option values: each option kind's validation, and every
//! failure naming the option and the accepted form.

use super::spec::{self, CommandSpec, OptionKind, COMMANDS};
use super::ParseError;
use crate::config::Config;
use crate::domain::{ComponentId, IncidentRef, LevelId, PersonId, Phase, StateFilter};
use std::collections::BTreeMap;

/// Typed access to the raw option values, each failure naming the option and the accepted form.
pub(super) struct Values<'a> {
    pub(super) spec: &'static CommandSpec,
    pub(super) config: &'a Config,
    pub(super) args: BTreeMap<&'static str, String>,
}

impl Values<'_> {
    fn bad(&self, name: &str, value: &str, accepted: impl std::fmt::Display) -> ParseError {
        ParseError(format!(
            "bad value for `{name}`: `{value}`; accepted: {accepted}"
        ))
    }

    fn raw(&self, name: &str) -> Option<&str> {
        self.args.get(name).map(String::as_str)
    }

    pub(super) fn level(&self, name: &str) -> Result<Option<LevelId>, ParseError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        v.trim()
            .parse::<u8>()
            .ok()
            .map(LevelId)
            .filter(|l| self.config.levels.contains_key(l))
            .map(Some)
            .ok_or_else(|| {
                self.bad(
                    name,
                    v,
                    format!(
                        "{} ({})",
                        self.config.level_range(),
                        self.config.level_choices()
                    ),
                )
            })
    }

    pub(super) fn text(&self, name: &str) -> Result<Option<String>, ParseError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        let max = match self.spec.option(name).map(|o| o.kind) {
            Some(OptionKind::Text { max }) => max,
            _ => spec::TEXT_MAX,
        };
        let t = v.trim();
        if t.is_empty() {
            return Err(ParseError(format!(
                "option `{name}` is empty; write it like {name}:\"some text\""
            )));
        }
        if t.chars().count() > max {
            return Err(ParseError(format!(
                "option `{name}` is too long: at most {max} characters"
            )));
        }
        // Control characters would let text rewrite terminals and logs; newlines and tabs are fine
        // in long text, never in a title.
        let allow_newlines = max > spec::TITLE_MAX;
        if t.chars()
            .any(|c| c.is_control() && !(allow_newlines && (c == '\n' || c == '\t')))
        {
            return Err(ParseError(format!(
                "option `{name}` contains control characters; use plain text"
            )));
        }
        Ok(Some(t.to_string()))
    }

    pub(super) fn bool(&self, name: &str) -> Result<Option<bool>, ParseError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        match v.to_ascii_lowercase().as_str() {
            "true" | "yes" => Ok(Some(true)),
            "false" | "no" => Ok(Some(false)),
            _ => Err(self.bad(name, v, "true or false")),
        }
    }

    pub(super) fn incident(&self) -> Result<Option<IncidentRef>, ParseError> {
        let Some(v) = self.raw("incident") else {
            return Ok(None);
        };
        v.parse()
            .map(Some)
            .map_err(|_| self.bad("incident", v, IncidentRef::FORM))
    }

    pub(super) fn components(&self, name: &str) -> Result<Option<Vec<ComponentId>>, ParseError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        let accepted = || {
            self.config
                .components
                .iter()
                .map(|c| c.id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut out: Vec<ComponentId> = Vec::new();
        for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match self.config.component(part) {
                Some(c) if !out.contains(&c.id) => out.push(c.id.clone()),
                Some(_) => {}
                None => return Err(self.bad(name, part, accepted())),
            }
        }
        if out.is_empty() {
            return Err(self.bad(name, v, accepted()));
        }
        Ok(Some(out))
    }

    pub(super) fn person(&self, name: &str) -> Result<Option<PersonId>, ParseError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        match self.config.person(v.trim()) {
            Some(p) => Ok(Some(p.id.clone())),
            None => Err(self.bad(
                name,
                v,
                format!(
                    "a configured person id ({})",
                    self.config
                        .people
                        .keys()
                        .map(|p| p.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    pub(super) fn duration(&self, name: &str) -> Result<Option<chrono::Duration>, ParseError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        match crate::config::parse_duration(v) {
            Ok(d) if d > chrono::Duration::zero() && d <= chrono::Duration::days(30) => Ok(Some(d)),
            _ => Err(self.bad(name, v, "a duration from 1m to 30d, like 30m, 2h or 1h 30m")),
        }
    }

    pub(super) fn number(&self, name: &str) -> Result<Option<i64>, ParseError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        v.trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| self.bad(name, v, "a positive whole number"))
    }

    pub(super) fn target(&self, name: &str) -> Result<Option<String>, ParseError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        let t = v.trim();
        if self.config.person(t).is_some() || self.config.teams.contains_key(t) {
            return Ok(Some(t.to_string()));
        }
        let mut ids: Vec<&str> = self.config.people.keys().map(|p| p.as_str()).collect();
        ids.extend(self.config.teams.keys().map(String::as_str));
        Err(self.bad(
            name,
            v,
            format!("a configured person or team id ({})", ids.join(", ")),
        ))
    }

    /// A runbook's name, by form only: which runbooks exist is the engine's to say (they are
    /// loaded beside the configuration, not in it).
    pub(super) fn runbook(&self, name: &str) -> Result<Option<String>, ParseError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        let t = v.trim().to_ascii_lowercase();
        let ok = !t.is_empty()
            && t.len() <= 64
            && t.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(Some(t))
        } else {
            Err(self.bad(
                name,
                v,
                "a runbook name (letters, digits, - and _), e.g. db-restore; /runbook list shows them",
            ))
        }
    }

    /// `name:value` pairs in one option (`params:"recovery_date:20261126 mode:full"`), read by
    /// the same lexer as a whole line, so quoting works the same way.
    pub(super) fn params(&self, name: &str) -> Result<Vec<(String, String)>, ParseError> {
        let Some(v) = self.raw(name) else {
            return Ok(vec![]);
        };
        let tokens = super::lexer::lex(v).map_err(|e| {
            ParseError(format!("bad value for `{name}`: {e}; accepted: name:value pairs, e.g. \"recovery_date:20261126\""))
        })?;
        tokens
            .into_iter()
            .map(|t| match t {
                super::lexer::Token::Option { name, value } => Ok((name, value)),
                super::lexer::Token::Word(w) => Err(self.bad(
                    name,
                    &w,
                    "name:value pairs, e.g. \"recovery_date:20261126\"",
                )),
            })
            .collect()
    }

    /// RFC 3339 (`2026-12-02T02:00:00Z`) or `2026-12-02 02:00` (UTC).
    pub(super) fn time(
        &self,
        name: &str,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, ParseError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        let t = v.trim();
        chrono::DateTime::parse_from_rfc3339(t)
            .map(|d| d.with_timezone(&chrono::Utc))
            .or_else(|_| {
                chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M").map(|d| d.and_utc())
            })
            .map(Some)
            .map_err(|_| {
                self.bad(
                    name,
                    v,
                    "a time in UTC, e.g. \"2026-12-02 02:00\" or 2026-12-02T02:00:00Z",
                )
            })
    }

    pub(super) fn public_status(
        &self,
        name: &str,
    ) -> Result<Option<crate::status::PublicStatus>, ParseError> {
        use crate::status::PublicStatus;
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        PublicStatus::parse(&v.trim().to_ascii_lowercase())
            .filter(|s| *s != PublicStatus::Postmortem)
            .map(Some)
            .ok_or_else(|| self.bad(name, v, "investigating, identified, monitoring or resolved"))
    }

    /// `Some(None)` for `auto`.
    pub(super) fn component_status(
        &self,
        name: &str,
    ) -> Result<Option<Option<crate::status::ComponentStatus>>, ParseError> {
        use crate::status::ComponentStatus;
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        let t = v.trim().to_ascii_lowercase();
        if t == "auto" {
            return Ok(Some(None));
        }
        ComponentStatus::parse(&t).map(|s| Some(Some(s))).ok_or_else(|| {
            self.bad(
                name,
                v,
                "operational, degraded_performance, partial_outage, major_outage, under_maintenance or auto",
            )
        })
    }

    pub(super) fn rotation(&self, name: &str) -> Result<Option<String>, ParseError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        let t = v.trim();
        if let Some(r) = self.config.rotation(t) {
            return Ok(Some(r.id.clone()));
        }
        let accepted = if self.config.rotations.is_empty() {
            "a configured rotation id (none is configured: add a [[rotation]] table)".to_string()
        } else {
            format!(
                "a configured rotation id ({})",
                self.config
                    .rotations
                    .keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        Err(self.bad(name, v, accepted))
    }

    pub(super) fn phase(&self, name: &str) -> Result<Option<Phase>, ParseError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        v.parse()
            .map(Some)
            .map_err(|_| self.bad(name, v, Phase::FORM))
    }

    pub(super) fn state_filter(&self, name: &str) -> Result<Option<StateFilter>, ParseError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        v.parse()
            .map(Some)
            .map_err(|_| self.bad(name, v, StateFilter::FORM))
    }

    pub(super) fn command_name(
        &self,
        name: &str,
    ) -> Result<Option<&'static CommandSpec>, ParseError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        let words: Vec<String> = v
            .split_whitespace()
            .map(|w| w.trim_start_matches('/').to_ascii_lowercase())
            .collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        // `/help incident` shows the first incident command's group listing via None-topic rules;
        // an exact path shows one command.
        spec::find(&words)
            .or_else(|| {
                if words.len() == 1 {
                    COMMANDS.iter().find(|c| c.path[0] == words[0])
                } else {
                    None
                }
            })
            .map(Some)
            .ok_or_else(|| {
                self.bad(
                    name,
                    v,
                    COMMANDS
                        .iter()
                        .map(|c| c.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            })
    }
}
