//! `spotter escalation simulate` and the paging warnings of `spotter config check`.

use crate::common::binary::spotter;

/// The default file with sysadmin and dba reachable by webhook (nobody else).
fn reachable_config(dir: &std::path::Path) -> std::path::PathBuf {
    let hook = |id: &str| {
        format!("id = \"{id}\"\nnotify = [{{ kind = \"webhook\", url = \"https://sms-gw.example/{id}\", hmac_secret_env = \"SPOTTER_SMS_SECRET\" }}]\n")
    };
    let text = spotter_core::config::DEFAULT_TOML
        .replace("id = \"sysadmin\"\n", &hook("sysadmin"))
        .replace("id = \"dba\"\n", &hook("dba"));
    let path = dir.join("pager.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn config_check_names_every_person_nobody_can_page_and_unset_secret_variables() {
    let dir = tempfile::tempdir().unwrap();
    let path = reachable_config(dir.path());
    let out = spotter(dir.path(), None)
        .args(["config", "check"])
        .arg(&path)
        .env_remove("SPOTTER_SMS_SECRET")
        .output()
        .unwrap();
    assert!(out.status.success(), "warnings do not fail the check");
    let err = String::from_utf8(out.stderr).unwrap();
    let warned: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("has no usable contact method"))
        .collect();
    assert_eq!(warned.len(), 6, "{err}");
    assert!(
        err.contains(
            "person `security` has no usable contact method (email needs an [smtp] section)"
        ),
        "{err}"
    );
    assert!(!err.contains("person `dba`"), "{err}");
    assert!(
        err.contains("warning: `SPOTTER_SMS_SECRET` is not set"),
        "{err}"
    );
}

#[test]
fn simulate_prints_who_is_paged_when_across_a_dst_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = reachable_config(dir.path());
    let out = spotter(dir.path(), None)
        .arg("--config")
        .arg(&path)
        .args([
            "escalation",
            "simulate",
            "--level",
            "1",
            "--at",
            "2026-03-29T01:30:00",
            "--tz",
            "Europe/Berlin",
            "--hours",
            "2",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix) && l.contains("paged tier"))
            .unwrap_or_else(|| panic!("no `{prefix}` page in:\n{text}"))
            .to_string()
    };
    let first = line("+0m ");
    assert!(
        first.contains("2026-03-29 01:30 CET")
            && first.contains("tier 1")
            && first.contains("System Administrator (sysadmin) by webhook"),
        "{first}"
    );
    let second = line("+15m ");
    assert!(
        second.contains("tier 2") && second.contains("Database Administrator (dba) by webhook"),
        "{second}"
    );
    // 30 minutes after 01:30 CET is 03:00 CEST: the clocks went forward at 02:00.
    let third = line("+30m ");
    assert!(
        third.contains("03:00 CEST") && third.contains("tier 3"),
        "{third}"
    );
    // Row 3 is the full team: those nobody can page are named, and row 4 follows at once.
    assert!(
        third.contains("cannot page") && third.contains("tier 4 is paged now"),
        "{third}"
    );
    assert!(
        text.contains("RTO"),
        "the RTO watch is part of what happens: {text}"
    );
}

#[test]
fn simulate_refuses_an_unknown_level_or_zone_naming_the_accepted_form() {
    let dir = tempfile::tempdir().unwrap();
    let out = spotter(dir.path(), None)
        .args(["escalation", "simulate", "--level", "9"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("--level 9") && err.contains("1 Service Degradation"),
        "{err}"
    );
    let out = spotter(dir.path(), None)
        .args([
            "escalation",
            "simulate",
            "--level",
            "2",
            "--tz",
            "Mars/Olympus",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("IANA time zone"));
}
