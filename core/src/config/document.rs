//! Reading the file so that one run reports every problem.
//!
//! serde stops at the first error, so the file is not deserialized in one piece. It is parsed
//! into toml's spanned tree first (every syntax error at once), then each top-level table and each
//! element of a `[[table]]` array is deserialized on its own. When a value has the wrong type (or
//! a key is unknown), the problem is reported with its place, table and key, the offending key is
//! taken out, and the element is read again: the rest of it is still checked, and with it the
//! cross-references that need it. An element that cannot be read at all (a required key missing
//! or unusable) is dropped and its table marked incomplete, so later checks that would only
//! repeat the problem ("unknown person") can stand down.

use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

/// One problem, at a byte range of the file.
pub(crate) type Problem = (Range<usize>, String);

/// The parsed file: its top-level tables, each with the span of its key.
pub(crate) struct Document<'t> {
    pub tables: Vec<(String, Range<usize>, Spanned<DeValue<'t>>)>,
}

impl<'t> Document<'t> {
    /// Parses the TOML; every syntax error is reported (and then nothing else: a broken tree
    /// would only add noise).
    ///
    /// # Errors
    /// The syntax errors, each at its place, with toml's first line of explanation.
    pub fn parse(text: &'t str) -> Result<Document<'t>, Vec<Problem>> {
        let root = parse_root(text)?;
        let tables = root
            .into_iter()
            .map(|(k, v)| (k.get_ref().to_string(), k.span(), v))
            .collect();
        Ok(Document { tables })
    }
}

/// The file's root table, keys with their places (for files read as one table, like a
/// runbook); every syntax error is reported.
///
/// # Errors
/// The syntax errors, each at its place.
pub(crate) fn parse_root(text: &str) -> Result<DeTable<'_>, Vec<Problem>> {
    {
        let (root, errors) = DeTable::parse_recoverable(text);
        if !errors.is_empty() {
            return Err(errors
                .into_iter()
                .map(|e| {
                    let at = e.span().unwrap_or(0..0);
                    let msg = e
                        .message()
                        .lines()
                        .next()
                        .unwrap_or("invalid TOML")
                        .trim()
                        .to_string();
                    (at, msg)
                })
                .collect());
        }
        Ok(root.into_inner())
    }
}

/// Reads tables and elements leniently, collecting problems.
#[derive(Default)]
pub(crate) struct Reader {
    pub problems: Vec<Problem>,
    /// Tables with an element that could not be read at all.
    pub incomplete: BTreeSet<String>,
}

/// A step of a path inside a table: a key, or the index of an array element.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Key(String),
    Index(usize),
}

impl Reader {
    /// A single table, `[name]`.
    pub fn table<T: DeserializeOwned>(&mut self, name: &str, value: Spanned<DeValue>) -> Option<T> {
        if !matches!(value.get_ref(), DeValue::Table(_)) {
            self.problems.push((
                value.span(),
                format!(
                    "`{name}` must be a table: write it as [{name}] with its keys below, found {}",
                    value.get_ref().type_str()
                ),
            ));
            self.incomplete.insert(name.to_string());
            return None;
        }
        let read = self.read(&format!("[{name}]"), name, value);
        if read.is_none() {
            self.incomplete.insert(name.to_string());
        }
        read
    }

    /// An array of tables, `[[name]]`; elements are labelled `[[name]] #2 (id = "dba")` by their
    /// `id_key` when they have one.
    pub fn array<T: DeserializeOwned>(
        &mut self,
        name: &str,
        value: Spanned<DeValue>,
        id_key: Option<&str>,
    ) -> Vec<T> {
        self.array_checked(name, value, id_key)
            .into_iter()
            .map(|(t, _)| t)
            .collect()
    }

    /// [`Reader::array`], each element with whether it read without any problem (a key taken
    /// out for its type is gone from it: later checks should not report it missing).
    pub fn array_checked<T: DeserializeOwned>(
        &mut self,
        name: &str,
        value: Spanned<DeValue>,
        id_key: Option<&str>,
    ) -> Vec<(T, bool)> {
        let span = value.span();
        let DeValue::Array(items) = value.into_inner() else {
            self.problems.push((
                span,
                format!("`{name}` must be a list of tables: write each as [[{name}]] with its keys below"),
            ));
            self.incomplete.insert(name.to_string());
            return vec![];
        };
        let mut out = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let id = id_key.and_then(|k| match item.get_ref() {
                DeValue::Table(t) => t.get(k).map(|v| match v.get_ref() {
                    DeValue::String(s) => format!(" ({k} = \"{s}\")"),
                    DeValue::Integer(n) => format!(" ({k} = {})", n.as_str()),
                    _ => String::new(),
                }),
                _ => None,
            });
            let label = format!("[[{name}]] #{}{}", i + 1, id.unwrap_or_default());
            if !matches!(item.get_ref(), DeValue::Table(_)) {
                self.problems.push((
                    item.span(),
                    format!(
                        "{label}: expected a table, found {}",
                        item.get_ref().type_str()
                    ),
                ));
                self.incomplete.insert(name.to_string());
                continue;
            }
            let before = self.problems.len();
            match self.read(&label, name, item) {
                Some(t) => out.push((t, self.problems.len() == before)),
                None => {
                    self.incomplete.insert(name.to_string());
                }
            }
        }
        out
    }

    /// Deserializes `value`, reporting and removing each offending key until it reads or cannot.
    /// Each problem is prefixed by `label`; `table` picks the examples of accepted forms.
    pub(crate) fn read<T: DeserializeOwned>(
        &mut self,
        label: &str,
        table: &str,
        value: Spanned<DeValue>,
    ) -> Option<T> {
        let whole = value.span();
        let mut value = value;
        let mut removed: BTreeSet<Vec<Step>> = BTreeSet::new();
        // Array elements taken out so far, by the array's path: later indices are shown as
        // written in the file.
        let mut dropped: BTreeMap<Vec<Step>, Vec<usize>> = BTreeMap::new();
        // Each round removes something, so this ends; the bound is a guard against a loop.
        for _ in 0..256 {
            let e = match T::deserialize(ValueDeserializer::from(value.clone())) {
                Ok(t) => return Some(t),
                Err(e) => e,
            };
            let message = e.message().to_string();
            let at = e.span().unwrap_or(whole.clone());
            let path = locate(&value, at.start);
            let missing = missing_field(&message);
            let shown = as_written(&path, &dropped);
            let suppressed = missing.is_some_and(|m| {
                let mut p = path.clone();
                p.push(Step::Key(m.to_string()));
                removed.contains(&p)
            });
            if !suppressed {
                self.problems
                    .push((at, format!("{label}: {}", explain(table, &shown, &message))));
            }
            if path.is_empty() || !remove(&mut value, &path, &mut dropped) {
                return None;
            }
            removed.insert(path);
        }
        None
    }
}

/// The deepest key or element whose place (key, value or table header) holds `at`.
fn locate(value: &Spanned<DeValue>, at: usize) -> Vec<Step> {
    fn walk(v: &DeValue, at: usize, path: &mut Vec<Step>, best: &mut Vec<Step>) {
        match v {
            DeValue::Table(t) => {
                for (k, val) in t.iter() {
                    path.push(Step::Key(k.get_ref().to_string()));
                    if (k.span().contains(&at) || val.span().contains(&at))
                        && path.len() > best.len()
                    {
                        *best = path.clone();
                    }
                    walk(val.get_ref(), at, path, best);
                    path.pop();
                }
            }
            DeValue::Array(a) => {
                for (i, item) in a.iter().enumerate() {
                    path.push(Step::Index(i));
                    if item.span().contains(&at) && path.len() > best.len() {
                        *best = path.clone();
                    }
                    walk(item.get_ref(), at, path, best);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut best = Vec::new();
    walk(value.get_ref(), at, &mut Vec::new(), &mut best);
    // Inside an array of plain values (`roles = ["a", 3]`) the key holds the problem: the whole
    // array is what gets dropped and explained.
    if let Some(i) = best.iter().rposition(|s| matches!(s, Step::Key(_))) {
        if best[i + 1..].iter().all(|s| matches!(s, Step::Index(_))) && best.len() > i + 1 {
            let parent = lookup(value.get_ref(), &best[..=i]);
            if parent.is_some_and(|v| !is_table_array(v)) {
                best.truncate(i + 1);
            }
        }
    }
    best
}

fn lookup<'a, 'i>(v: &'a DeValue<'i>, path: &[Step]) -> Option<&'a DeValue<'i>> {
    let mut cur = v;
    for s in path {
        cur = match (s, cur) {
            (Step::Key(k), DeValue::Table(t)) => t.get(k.as_str())?.get_ref(),
            (Step::Index(i), DeValue::Array(a)) => a.get(*i)?.get_ref(),
            _ => return None,
        };
    }
    Some(cur)
}

fn is_table_array(v: &DeValue) -> bool {
    matches!(v, DeValue::Array(a) if !a.is_empty() && a.iter().all(|i| matches!(i.get_ref(), DeValue::Table(_))))
}

/// Takes the key or element at `path` out; `false` when there is nothing to take.
fn remove(
    value: &mut Spanned<DeValue>,
    path: &[Step],
    dropped: &mut BTreeMap<Vec<Step>, Vec<usize>>,
) -> bool {
    let Some((last, parent_path)) = path.split_last() else {
        return false;
    };
    let mut cur = value.get_mut();
    for s in parent_path {
        cur = match (s, cur) {
            (Step::Key(k), DeValue::Table(t)) => match t.get_mut(k.as_str()) {
                Some(v) => v.get_mut(),
                None => return false,
            },
            (Step::Index(i), DeValue::Array(a)) => match a.get_mut(*i) {
                Some(v) => v.get_mut(),
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, cur) {
        (Step::Key(k), DeValue::Table(t)) => t.remove(k.as_str()).is_some(),
        (Step::Index(i), DeValue::Array(a)) if *i < a.len() => {
            let original = as_written(path, dropped);
            if let Some(Step::Index(o)) = original.last() {
                dropped.entry(parent_path.to_vec()).or_default().push(*o);
            }
            *a = a
                .iter()
                .enumerate()
                .filter(|(j, _)| j != i)
                .map(|(_, v)| v.clone())
                .collect();
            true
        }
        _ => false,
    }
}

/// `path` with each array index as written in the file (elements taken out before it counted).
fn as_written(path: &[Step], dropped: &BTreeMap<Vec<Step>, Vec<usize>>) -> Vec<Step> {
    let mut out = path.to_vec();
    for (i, s) in path.iter().enumerate() {
        if let Step::Index(cur) = s {
            if let Some(gone) = dropped.get(&path[..i]) {
                let mut gone = gone.clone();
                gone.sort_unstable();
                let mut orig = *cur;
                for g in gone {
                    if g <= orig {
                        orig += 1;
                    }
                }
                out[i] = Step::Index(orig);
            }
        }
    }
    out
}

fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .and_then(|r| r.split('`').next())
}

/// "tier #2: after".
fn show(path: &[Step]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push_str(": ");
                }
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!(" #{}", i + 1)),
        }
    }
    out
}

/// serde's message in the file's words: where, what was expected (with an example for Spotter's
/// own keys), and what was found.
fn explain(table: &str, path: &[Step], message: &str) -> String {
    let key = path.iter().rev().find_map(|s| match s {
        Step::Key(k) => Some(k.as_str()),
        Step::Index(_) => None,
    });
    let prefix = |p: &[Step]| {
        let s = show(p);
        if s.is_empty() {
            s
        } else {
            format!("{s}: ")
        }
    };
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (name, accepted) = rest.split_once('`').unwrap_or((rest, ""));
        let accepted = accepted
            .trim_start_matches(", expected one of ")
            .trim_start_matches(", expected ")
            .replace('`', "");
        let parent = &path[..path.len().saturating_sub(1)];
        return if accepted.is_empty() || accepted.starts_with("there are no fields") {
            format!("{}unknown key `{name}`", prefix(parent))
        } else {
            format!(
                "{}unknown key `{name}`; accepted: {accepted}",
                prefix(parent)
            )
        };
    }
    if let Some(name) = missing_field(message) {
        let hint = hint(table, name)
            .map(|h| format!(" ({h})"))
            .unwrap_or_default();
        return format!("{}missing key `{name}`{hint}", prefix(path));
    }
    let rest = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "));
    if let Some((found, expected)) = rest.and_then(|r| r.rsplit_once(", expected ")) {
        let want = key
            .and_then(|k| hint(table, k))
            .unwrap_or_else(|| plain(expected));
        let found = match found {
            "sequence" => "an array",
            "map" => "a table",
            other => other,
        };
        return format!("{}expected {want}; found {found}", prefix(path));
    }
    format!("{}{message}", prefix(path))
}

/// What Spotter's own keys take, with an example.
fn hint(table: &str, key: &str) -> Option<String> {
    let h = match (table, key) {
        // Runbook files (read with this Reader too).
        ("runbook", "target") => r#"a lock target in quotes, e.g. "database" or "{{param}}""#,
        (_, "levels") => "an array of level numbers, e.g. [3, 4, 5]",
        (_, "approvals" | "bytes") => "a whole number, e.g. 1",
        ("step", "argv") => {
            r#"an array of strings, the program first, e.g. ["scripts/db-restore.sh", "{{recovery_date}}"]"#
        }
        ("step", "env") => r#"an array of environment variable names, e.g. ["SPOTTER_BACKUP_KEY"]"#,
        ("step", "set_env") => {
            r#"a table of NAME = "value", e.g. { RECOVERY_DATE = "{{recovery_date}}" }"#
        }
        ("step", "headers") => {
            r#"a table of header = "value", e.g. { "Content-Type" = "application/json" }"#
        }
        ("param", "default") => r#"a value in quotes, e.g. "20261126""#,
        ("param", "values") => r#"an array of values in quotes, e.g. ["nginx", "workout-tracker"]"#,
        ("param", "min" | "max") => "a whole number, e.g. 1",
        (_, "destructive") => "true or false",
        ("step", "id") => r#"a step id in quotes, e.g. "restore""#,
        ("step", "kind") => r#"the step's kind in quotes: "exec", "http", "probe" or "manual""#,
        ("param", "name") => r#"a parameter name in quotes, e.g. "recovery_date""#,
        ("param", "type") => {
            r#"the parameter's type in quotes: "date", "enum", "regex", "integer" or "incident""#
        }
        ("generate", "name") => r#"an environment variable name in quotes, e.g. "NEW_DB_PASSWORD""#,
        ("runbook", "name") => r#"the runbook's name in quotes, e.g. "db-restore""#,
        (_, "roles") => r#"an array of role names, e.g. ["responder"]"#,
        ("team", "members") => r#"an array of person ids, e.g. ["dba", "sysadmin"]"#,
        (_, "notify") => r#"an array of person or team ids, e.g. ["dba", "management"]"#,
        (
            _,
            "rto" | "after" | "target" | "retry_base" | "retry_max" | "alert_hold" | "timeout"
            | "quiet_period" | "reopen_window" | "flap_window",
        ) => r#"a duration in quotes, e.g. "15m" or "1h 30m""#,
        ("level", "id") | (_, "level") => "a level number, e.g. 1",
        (_, "max_connections" | "max_attempts" | "flap_changes" | "burst") => {
            "a whole number, e.g. 8"
        }
        (_, "external") => "true or false",
        (_, "match" | "match_re") => r#"a table of label = value, e.g. { service = "db" }"#,
        (_, "components") => r#"an array of component ids, e.g. ["database"]"#,
        (_, "group_by") => r#"an array of label names, e.g. ["alertname"]"#,
        (_, "rate") => r#"a rate in quotes, e.g. "50/s""#,
        (_, "max_body") => r#"a size in quotes, e.g. "1MiB""#,
        (_, k) if k.ends_with("_env") => {
            r#"the name of an environment variable in quotes, e.g. "SPOTTER_API_TOKEN""#
        }
        ("discord", _) | (_, "discord_user_id" | "discord_role_id") => {
            r#"a Discord id in quotes, e.g. "1290000000000000000""#
        }
        (_, k) if k.ends_with("_id") || k == "id" => r#"an id in quotes, e.g. "dba""#,
        _ => return None,
    };
    Some(h.to_string())
}

/// serde's expectation in plain words.
fn plain(expected: &str) -> String {
    match expected {
        "a string" => "a string in quotes".into(),
        "a boolean" => "true or false".into(),
        "a sequence" => "an array, e.g. [\"a\", \"b\"]".into(),
        "a map" => "a table".into(),
        "u8" => "a whole number from 0 to 255".into(),
        "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more".into(),
        "i64" | "i32" => "a whole number".into(),
        other => other.trim_start_matches("struct ").to_string(),
    }
}
