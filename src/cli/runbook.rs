//! `spotter runbook default DIR` (the guide's runbooks and scripts, to start a directory from)
//! and `spotter runbook check DIR` (every problem of every file, FILE:LINE:COL, before a
//! deployment or in CI).

use super::{load_config, RunbookCommand};
use spotter_core::runbook::{load::write_defaults_to, Runbooks};
use std::path::Path;
use std::process::ExitCode;

pub(super) fn run(command: &RunbookCommand, config: Option<&Path>) -> ExitCode {
    match command {
        RunbookCommand::Default { dir, force } => match write_defaults_to(dir, *force) {
            Ok(paths) => {
                for p in &paths {
                    println!("wrote {}", p.display());
                }
                println!(
                    "{} files; use them with [runbooks] dir = \"{}\"",
                    paths.len(),
                    dir.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        RunbookCommand::Check { dir } => {
            let config = match load_config(config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            match Runbooks::load_dir(dir, &config) {
                Ok(runbooks) => {
                    for rb in runbooks.iter() {
                        let approvals = if rb.approval.is_auto() {
                            "auto (no approval)".to_string()
                        } else {
                            format!(
                                "{} approval(s) by {}",
                                rb.approval.approvals, rb.approval.role
                            )
                        };
                        println!("{}: {} steps, {approvals}", rb.name, rb.steps.len());
                    }
                    if let Some(name) = &config.runbooks.on_declare {
                        if runbooks.get(name).is_none() {
                            eprintln!(
                                "{}: warning: [runbooks] on_declare names `{name}`, which is not among these runbooks; set it to one of them or \"\" before using this directory",
                                dir.display()
                            );
                        }
                    }
                    println!("{}: {} runbooks ok", dir.display(), runbooks.len());
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    for e in errors {
                        eprintln!("{e}");
                    }
                    ExitCode::FAILURE
                }
            }
        }
    }
}
