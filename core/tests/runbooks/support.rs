//! What the runbook tests share: the built-in configuration, a good runbook file, reading
//! one, and parameter maps.

#![allow(dead_code)] // each test file uses its own part

use spotter_core::config::Config;
use spotter_core::runbook::file::parse_runbook;
use spotter_core::runbook::Runbook;
use std::collections::BTreeMap;
use std::path::Path;

pub fn config() -> Config {
    Config::builtin()
}

/// Every problem of `text` as printed, `rb.toml:LINE:COL: message`.
pub fn problems(text: &str) -> Vec<String> {
    match parse_runbook(text, "rb.toml", Path::new("/rb"), &config()) {
        Ok(_) => vec![],
        Err(e) => e.to_string().lines().map(str::to_string).collect(),
    }
}

pub fn parse(text: &str) -> Runbook {
    parse_runbook(text, "rb.toml", Path::new("/rb"), &config()).unwrap_or_else(|e| panic!("{e}"))
}

pub fn given(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A runbook with a parameter, a destructive exec step and levels.
pub const GOOD: &str = r#"
name = "db-restore"
description = "Restore"
approvals = 1
levels = [3, 4, 5]
target = "{{recovery_date}}"

[[param]]
name = "recovery_date"
type = "date"

[[step]]
id = "restore"
kind = "exec"
argv = ["scripts/db-restore.sh", "{{recovery_date}}"]
env = ["SPOTTER_BACKUP_KEY"]
set_env = { RECOVERY_DATE = "{{recovery_date}}" }
destructive = true
levels = [4, 5]
"#;
