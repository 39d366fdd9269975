//! The rules of one `[[param]]`: its name, the keys its type takes, an anchored regex that
//! compiles, integer bounds in order, a non-empty enum, and a default that is itself valid.

use super::file::{RawParam, Report};
use super::model::*;
use super::template::{self, BUILTIN_NAMES};

pub(crate) fn check_param(
    label: &str,
    p: RawParam,
    earlier: &[Param],
    err: Report<'_>,
) -> Option<Param> {
    let name = p.name.get_ref().clone();
    let mut ok = true;
    if !template::is_param_name(&name) {
        err(
            &p.name.span(),
            format!("{label}: `{name}` is not a parameter name: use lowercase letters, digits and '_', e.g. \"recovery_date\""),
        );
        ok = false;
    } else if BUILTIN_NAMES.contains(&name.as_str()) {
        err(
            &p.name.span(),
            format!(
                "{label}: `{name}` is a built-in placeholder ({}); give the parameter another name",
                BUILTIN_NAMES.join(", ")
            ),
        );
        ok = false;
    } else if earlier.iter().any(|e| e.name == name) {
        err(
            &p.name.span(),
            format!("{label}: duplicate parameter `{name}`"),
        );
        ok = false;
    }
    let k = p.kind.get_ref().as_str();
    let present = [
        ("format", p.format.as_ref().map(|s| s.span())),
        ("values", p.values.as_ref().map(|s| s.span())),
        ("pattern", p.pattern.as_ref().map(|s| s.span())),
        ("min", p.min.as_ref().map(|s| s.span())),
        ("max", p.max.as_ref().map(|s| s.span())),
    ];
    let allowed: &[&str] = match k {
        "date" => &["format"],
        "enum" => &["values"],
        "regex" => &["pattern"],
        "integer" => &["min", "max"],
        "incident" => &[],
        other => {
            err(
                &p.kind.span(),
                format!("{label}: unknown type `{other}`; accepted: date, enum, regex, integer, incident"),
            );
            return None;
        }
    };
    for (key, span) in &present {
        if let Some(span) = span {
            if !allowed.contains(key) {
                let accepted = if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(", ")
                };
                err(
                    span,
                    format!(
                        "{label}: `{key}` does not belong to {} parameter; its keys: {accepted}",
                        crate::config::runbooks::a_an(k)
                    ),
                );
                ok = false;
            }
        }
    }
    let kind = match k {
        "date" => ParamKind::Date {
            format: match p.format.as_ref().map(|f| f.get_ref().as_str()) {
                None | Some("YYYYMMDD") => DateFormat::Compact,
                Some("YYYY-MM-DD") => DateFormat::Iso,
                Some(other) => {
                    err(
                        &p.format.as_ref().unwrap().span(),
                        format!("{label}: unknown date format `{other}`; accepted: YYYYMMDD, YYYY-MM-DD"),
                    );
                    return None;
                }
            },
        },
        "enum" => {
            let values = p
                .values
                .as_ref()
                .map(|v| v.get_ref().clone())
                .unwrap_or_default();
            let bad = values
                .iter()
                .find(|v| v.is_empty() || v.chars().any(char::is_control));
            if values.is_empty() || bad.is_some() {
                err(
                    &p.values.as_ref().map(|v| v.span()).unwrap_or(p.kind.span()),
                    format!("{label}: an enum parameter needs `values`, a non-empty list of non-empty values, e.g. values = [\"workout-tracker\", \"nginx\"]"),
                );
                return None;
            }
            ParamKind::Enum { values }
        }
        "regex" => {
            let Some(pat) = &p.pattern else {
                err(
                    &p.kind.span(),
                    format!("{label}: a regex parameter needs `pattern`, e.g. pattern = \"[a-z0-9-]{{1,40}}\""),
                );
                return None;
            };
            // Anchored: the pattern decides the whole value, not some part of it.
            match regex::Regex::new(&format!("^(?:{})$", pat.get_ref())) {
                Ok(pattern) => ParamKind::Regex { pattern },
                Err(e) => {
                    let why = e.to_string();
                    let why = why.lines().last().unwrap_or("").trim().to_string();
                    err(
                        &pat.span(),
                        format!("{label}: pattern does not compile ({why}); write a regular expression, e.g. \"[a-z0-9-]{{1,40}}\""),
                    );
                    return None;
                }
            }
        }
        "integer" => {
            let (min, max) = (
                p.min.as_ref().map(|m| *m.get_ref()),
                p.max.as_ref().map(|m| *m.get_ref()),
            );
            if let (Some(a), Some(b)) = (min, max) {
                if a > b {
                    err(
                        &p.min.as_ref().unwrap().span(),
                        format!("{label}: min ({a}) is greater than max ({b})"),
                    );
                    return None;
                }
            }
            ParamKind::Integer { min, max }
        }
        _ => ParamKind::Incident,
    };
    let param = Param {
        name,
        description: p.description,
        kind,
        default: p.default.as_ref().map(|d| d.get_ref().clone()),
    };
    if let Some(d) = &p.default {
        if let Err(m) = super::plan::check_value(&param, d.get_ref()) {
            err(&d.span(), format!("{label}: default: {m}"));
            ok = false;
        }
    }
    ok.then_some(param)
}
