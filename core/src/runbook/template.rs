//! `{{name}}` placeholders: finding them (to check them when a file is read) and filling them in
//! (when a run is planned), with the escaping each place needs.

use super::model::Template;
use std::collections::BTreeMap;

/// The placeholders every runbook may use without declaring them.
pub const BUILTIN_NAMES: [&str; 4] = ["incident", "level", "run", "runbook"];

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

/// `[a-z_][a-z0-9_]*`: a parameter's name.
pub(crate) fn is_param_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// Splits a template into text and placeholders.
///
/// # Errors
/// A `{{` without its `}}`, or a placeholder that is not a name: the offending text.
pub(crate) fn pieces(s: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            out.push(Piece::Text(&rest[..open]));
        }
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(format!(
                "`{{{{` without its `}}}}` in `{s}`: write a placeholder as {{{{name}}}}"
            ));
        };
        let name = after[..close].trim();
        if !is_param_name(name) {
            return Err(format!(
                "`{{{{{}}}}}` is not a placeholder: write {{{{name}}}} with a parameter's name (lowercase letters, digits, '_')",
                &after[..close]
            ));
        }
        out.push(Piece::Placeholder(name));
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

/// The placeholder names in `s` (empty when it is malformed: reading it reports that).
pub(crate) fn names(s: &str) -> Vec<&str> {
    pieces(s)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| match p {
            Piece::Placeholder(n) => Some(n),
            Piece::Text(_) => None,
        })
        .collect()
}

/// Whether `s` is exactly one placeholder, or holds none: what an argv entry may be.
pub(crate) fn is_whole_or_literal(s: &str) -> bool {
    match pieces(s) {
        Ok(p) => {
            p.iter().all(|p| matches!(p, Piece::Text(_)))
                || (p.len() == 1 && matches!(p[0], Piece::Placeholder(_)))
        }
        Err(_) => true,
    }
}

impl Template {
    /// Fills in each placeholder with `escape(value)`; literal text is kept as written. An
    /// unknown name (impossible once the file was checked) becomes the empty string.
    pub fn render(
        &self,
        values: &BTreeMap<String, String>,
        escape: impl Fn(&str) -> String,
    ) -> String {
        let Ok(pieces) = pieces(&self.0) else {
            return self.0.clone();
        };
        let mut out = String::new();
        for p in pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Placeholder(n) => {
                    out.push_str(&escape(values.get(n).map(String::as_str).unwrap_or("")))
                }
            }
        }
        out
    }

    /// Fills in values as they are.
    pub fn render_plain(&self, values: &BTreeMap<String, String>) -> String {
        self.render(values, str::to_string)
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters: a value in a URL cannot
/// add a path segment, a query parameter or a host.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The inside of a JSON string: a value in a JSON body cannot end its string.
pub(crate) fn json_escape(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted[1..quoted.len() - 1].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_found_and_checked() {
        assert_eq!(names("a {{x}} b {{ y }}"), vec!["x", "y"]);
        assert!(pieces("{{x").is_err());
        assert!(pieces("{{X}}").is_err());
        assert!(is_whole_or_literal("{{x}}"));
        assert!(is_whole_or_literal("plain"));
        assert!(!is_whole_or_literal("--date={{x}}"));
    }

    #[test]
    fn values_are_escaped_for_their_place() {
        let v: BTreeMap<String, String> = [("x".to_string(), "a/b?c=d&e f".to_string())].into();
        let t = Template("http://h/{{x}}".into());
        assert_eq!(
            t.render(&v, percent_encode),
            "http://h/a%2Fb%3Fc%3Dd%26e%20f"
        );
        let v: BTreeMap<String, String> = [("x".to_string(), "\"}\n".to_string())].into();
        let t = Template("{\"a\": \"{{x}}\"}".into());
        assert_eq!(t.render(&v, json_escape), "{\"a\": \"\\\"}\\n\"}");
    }
}
