//! All runbooks by name: read from a directory (`[runbooks] dir`), or the built-in ones — the
//! guide's procedures, compiled in (`defaults/`) and written out with their scripts at every
//! start, so what runs always matches the binary.

use super::file::parse_runbook;
use super::model::Runbook;
use crate::config::{Config, ConfigErrors, ConfigIssue};
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// The built-in runbooks and their scripts, as (path under the directory, text).
const DEFAULTS: &[(&str, &str)] = &[
    (
        "emergency-response.toml",
        include_str!("defaults/emergency-response.toml"),
    ),
    (
        "system-status-check.toml",
        include_str!("defaults/system-status-check.toml"),
    ),
    (
        "level-1-recovery.toml",
        include_str!("defaults/level-1-recovery.toml"),
    ),
    (
        "level-2-recovery.toml",
        include_str!("defaults/level-2-recovery.toml"),
    ),
    (
        "level-3-recovery.toml",
        include_str!("defaults/level-3-recovery.toml"),
    ),
    (
        "level-4-recovery.toml",
        include_str!("defaults/level-4-recovery.toml"),
    ),
    (
        "level-5-recovery.toml",
        include_str!("defaults/level-5-recovery.toml"),
    ),
    ("db-restore.toml", include_str!("defaults/db-restore.toml")),
    (
        "app-restore.toml",
        include_str!("defaults/app-restore.toml"),
    ),
    (
        "credential-rotation.toml",
        include_str!("defaults/credential-rotation.toml"),
    ),
    (
        "security-hardening.toml",
        include_str!("defaults/security-hardening.toml"),
    ),
    (
        "scripts/common.sh",
        include_str!("defaults/scripts/common.sh"),
    ),
    (
        "scripts/service.sh",
        include_str!("defaults/scripts/service.sh"),
    ),
    ("scripts/note.sh", include_str!("defaults/scripts/note.sh")),
    (
        "scripts/system-resources.sh",
        include_str!("defaults/scripts/system-resources.sh"),
    ),
    (
        "scripts/redis-flush.sh",
        include_str!("defaults/scripts/redis-flush.sh"),
    ),
    (
        "scripts/db-optimize.sh",
        include_str!("defaults/scripts/db-optimize.sh"),
    ),
    (
        "scripts/db-backup-current.sh",
        include_str!("defaults/scripts/db-backup-current.sh"),
    ),
    (
        "scripts/db-restore.sh",
        include_str!("defaults/scripts/db-restore.sh"),
    ),
    (
        "scripts/db-verify.sh",
        include_str!("defaults/scripts/db-verify.sh"),
    ),
    (
        "scripts/app-backup-current.sh",
        include_str!("defaults/scripts/app-backup-current.sh"),
    ),
    (
        "scripts/app-restore.sh",
        include_str!("defaults/scripts/app-restore.sh"),
    ),
    (
        "scripts/db-rotate-password.sh",
        include_str!("defaults/scripts/db-rotate-password.sh"),
    ),
    (
        "scripts/env-file-set.sh",
        include_str!("defaults/scripts/env-file-set.sh"),
    ),
    (
        "scripts/evidence.sh",
        include_str!("defaults/scripts/evidence.sh"),
    ),
    (
        "scripts/harden-mysql.sh",
        include_str!("defaults/scripts/harden-mysql.sh"),
    ),
    (
        "scripts/harden-files.sh",
        include_str!("defaults/scripts/harden-files.sh"),
    ),
    (
        "scripts/firewall.sh",
        include_str!("defaults/scripts/firewall.sh"),
    ),
];

/// The runbooks in use, by name.
#[derive(Debug, Clone, Default)]
pub struct Runbooks {
    by_name: BTreeMap<String, Runbook>,
}

impl Runbooks {
    pub fn get(&self, name: &str) -> Option<&Runbook> {
        self.by_name.get(name)
    }
    /// In name order.
    pub fn iter(&self) -> impl Iterator<Item = &Runbook> {
        self.by_name.values()
    }
    pub fn len(&self) -> usize {
        self.by_name.len()
    }
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
    pub fn names(&self) -> Vec<&str> {
        self.by_name.keys().map(String::as_str).collect()
    }

    /// Every `*.toml` in `dir`, each checked against `config` (its levels and probes).
    ///
    /// # Errors
    /// Every problem of every file (an unreadable directory or file is reported at 1:1), and
    /// names used by two files.
    pub fn load_dir(dir: &Path, config: &Config) -> Result<Runbooks, Vec<ConfigErrors>> {
        Runbooks::load(dir, config, |p| p.display().to_string())
    }

    fn load(
        dir: &Path,
        config: &Config,
        label: impl Fn(&Path) -> String,
    ) -> Result<Runbooks, Vec<ConfigErrors>> {
        let at_start = |file: String, message: String| ConfigErrors {
            file,
            issues: vec![ConfigIssue {
                line: 1,
                col: 1,
                message,
            }],
        };
        let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
                .collect(),
            Err(e) => {
                return Err(vec![at_start(
                    dir.display().to_string(),
                    format!("cannot read the runbook directory: {e}"),
                )])
            }
        };
        files.sort();
        // Steps resolve argv[0] and their working directory against the runbook's directory;
        // made absolute here, a relative one (`data/builtin-runbooks` under the default
        // data_dir) would be resolved twice.
        let dir = &std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let mut errors = Vec::new();
        let mut out = Runbooks::default();
        let mut first_file: BTreeMap<String, String> = BTreeMap::new();
        for path in files {
            let name = label(&path);
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(at_start(name, format!("cannot read the file: {e}")));
                    continue;
                }
            };
            match parse_runbook(&text, &name, dir, config) {
                Ok(rb) => {
                    if let Some(other) = first_file.get(&rb.name) {
                        let line = text
                            .lines()
                            .position(|l| {
                                l.trim_start()
                                    .strip_prefix("name")
                                    .is_some_and(|r| r.trim_start().starts_with('='))
                            })
                            .map(|i| i + 1)
                            .unwrap_or(1);
                        errors.push(ConfigErrors {
                            file: name,
                            issues: vec![ConfigIssue {
                                line,
                                col: 1,
                                message: format!(
                                    "duplicate runbook name `{}`: {other} has it too; names must be unique",
                                    rb.name
                                ),
                            }],
                        });
                        continue;
                    }
                    first_file.insert(rb.name.clone(), name);
                    out.by_name.insert(rb.name.clone(), rb);
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    /// The built-in runbooks: written with their scripts into `dir` (scripts mode 0755,
    /// replaced so they match this binary, files it no longer has taken out), then read from
    /// there. `dir` is Spotter's own: do not keep other runbooks in it. Messages name them
    /// `<built-in>/NAME.toml`.
    ///
    /// # Errors
    /// When `dir` cannot be written, or the configuration lacks what they use (a probe id, a
    /// level).
    pub fn builtin(config: &Config, dir: &Path) -> anyhow::Result<Runbooks> {
        write_files(dir, true)
            .and_then(|_| remove_stale(dir))
            .with_context(|| format!("writing the built-in runbooks to {}", dir.display()))?;
        Runbooks::load(dir, config, |p| {
            format!(
                "<built-in>/{}",
                p.file_name().map(|f| f.to_string_lossy()).unwrap_or_default()
            )
        })
        .map_err(|errs| {
            anyhow::anyhow!(
                "the built-in runbooks do not fit this configuration (give it the guide's [[probe]]s and levels, or set [runbooks] dir):\n{}",
                join(&errs)
            )
        })
    }

    /// The runbooks `config` asks for: `[runbooks] dir`, else the built-in ones in
    /// `<data_dir>/builtin-runbooks`; `[runbooks] on_declare` must name one of them.
    ///
    /// # Errors
    /// Every problem of the files, or an `on_declare` naming no runbook.
    pub fn for_config(config: &Config) -> anyhow::Result<Runbooks> {
        let runbooks = match &config.runbooks.dir {
            Some(dir) => {
                Runbooks::load_dir(dir, config).map_err(|e| anyhow::anyhow!("{}", join(&e)))?
            }
            None => Runbooks::builtin(config, &config.server.data_dir.join("builtin-runbooks"))?,
        };
        if let Some(name) = &config.runbooks.on_declare {
            if runbooks.get(name).is_none() {
                anyhow::bail!(
                    "[runbooks] on_declare names `{name}`, which is not a runbook; accepted: {} (or \"\" for none)",
                    runbooks.names().join(", ")
                );
            }
        }
        Ok(runbooks)
    }
}

fn join(errs: &[ConfigErrors]) -> String {
    errs.iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Writes the guide's runbooks and their scripts into `dir` for `spotter runbook default DIR`.
/// Refuses to overwrite an existing file (nothing is written then); see [`write_defaults_to`].
///
/// # Errors
/// A file that exists already (`AlreadyExists`, naming it), or one that cannot be written.
pub fn write_defaults(dir: &Path) -> io::Result<Vec<PathBuf>> {
    write_files(dir, false)
}

/// [`write_defaults`], overwriting existing files when `overwrite`.
///
/// # Errors
/// As [`write_defaults`].
pub fn write_defaults_to(dir: &Path, overwrite: bool) -> io::Result<Vec<PathBuf>> {
    write_files(dir, overwrite)
}

fn write_files(dir: &Path, overwrite: bool) -> io::Result<Vec<PathBuf>> {
    if !overwrite {
        if let Some((p, _)) = DEFAULTS.iter().find(|(p, _)| dir.join(p).exists()) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists already; nothing was written (remove it, or pass --force to overwrite the defaults)",
                    dir.join(p).display()
                ),
            ));
        }
    }
    std::fs::create_dir_all(dir.join("scripts"))?;
    let mut out = Vec::new();
    for (p, text) in DEFAULTS {
        let path = dir.join(p);
        let same = std::fs::read(&path).is_ok_and(|old| old == text.as_bytes());
        if !same {
            // A new file renamed over the old one, never rewritten in place: bash reads a
            // script as it runs, so a run in progress (another replica's, or ours before a
            // restart) keeps reading the file it started with.
            let tmp = dir.join(format!("{p}.{}.tmp", std::process::id()));
            std::fs::write(&tmp, text)?;
            #[cfg(unix)]
            if p.ends_with(".sh") {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
            }
            std::fs::rename(&tmp, &path)?;
        }
        #[cfg(unix)]
        if p.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
        out.push(path);
    }
    Ok(out)
}

/// Takes out of the built-in directory the runbooks and scripts this binary no longer has, so
/// a runbook dropped in a new version does not linger from an old one.
fn remove_stale(dir: &Path) -> io::Result<()> {
    for (sub, ext) in [("", "toml"), ("scripts", "sh")] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let rel = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .to_string();
            let ours = DEFAULTS.iter().any(|(p, _)| *p == rel);
            if !ours && path.extension().is_some_and(|x| x == ext) && path.is_file() {
                std::fs::remove_file(&path)?;
            }
        }
    }
    Ok(())
}
