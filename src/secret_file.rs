//! Secrets kept in files of the data folder: the API token and the alert sources' credentials.
//!
//! A secret that no environment variable supplies is generated once and written with mode 0600
//! through `create_new`, so two processes starting at once never overwrite each other: the loser
//! of the race reads the winner's file. Values are only ever handled as [`Secret`]s.

use anyhow::Context;
use spotter_core::Secret;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where a secret came from, for the start-up log (which names the place, never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The environment variable of that name.
    Env(String),
    /// A file written by an earlier start.
    File(PathBuf),
    /// Generated just now into this file.
    Generated(PathBuf),
}

impl Origin {
    pub fn generated(&self) -> bool {
        matches!(self, Origin::Generated(_))
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Env(var) => write!(f, "taken from ${var}"),
            Origin::File(p) => write!(f, "read from {} (mode 0600)", p.display()),
            Origin::Generated(p) => write!(f, "generated into {} (mode 0600)", p.display()),
        }
    }
}

/// The trimmed, non-empty value of `var` through `env`, if any.
pub fn from_env(env: &dyn Fn(&str) -> Option<String>, var: &str) -> Option<Secret> {
    env(var)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .map(Secret::new)
}

/// The secret stored at `path`; `None` when the file is missing or empty.
pub fn read(path: &Path) -> anyhow::Result<Option<Secret>> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Ok(Some(Secret::new(s.trim()))),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The secret stored at `path`, or a new one from `generate` written there (mode 0600, parent
/// folders created).
pub fn load_or_create(
    path: &Path,
    generate: impl FnOnce() -> String,
) -> anyhow::Result<(Secret, Origin)> {
    if let Some(s) = read(path)? {
        return Ok((s, Origin::File(path.to_path_buf())));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let value = generate();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    match opts.open(path) {
        Ok(mut f) => {
            f.write_all(value.as_bytes())
                .and_then(|_| f.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok((Secret::new(value), Origin::Generated(path.to_path_buf())))
        }
        // Another process created it first (or left an empty file): use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let s = read(path)?.with_context(|| {
                format!(
                    "{} exists but is empty: delete it to have a new secret generated",
                    path.display()
                )
            })?;
            Ok((s, Origin::File(path.to_path_buf())))
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_is_private_and_read_back_on_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sources/x.secret");
        let (first, origin) = load_or_create(&path, || "s3cret".into()).unwrap();
        assert_eq!(origin, Origin::Generated(path.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, origin) =
            load_or_create(&path, || unreachable!("not generated twice")).unwrap();
        assert_eq!(origin, Origin::File(path));
        assert_eq!(again.expose(), first.expose());
    }

    #[test]
    fn an_unset_or_blank_variable_supplies_nothing() {
        let env = |v: &str| match v {
            "SET" => Some(" tok ".to_string()),
            "BLANK" => Some("  ".to_string()),
            _ => None,
        };
        assert_eq!(from_env(&env, "SET").unwrap().expose(), "tok");
        assert!(from_env(&env, "BLANK").is_none());
        assert!(from_env(&env, "UNSET").is_none());
    }
}
