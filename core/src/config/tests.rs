use super::*;

#[test]
fn the_builtin_config_reproduces_the_guide() {
    let c = Config::builtin();
    let names: Vec<_> = c
        .levels
        .values()
        .map(|l| (l.id.0, l.name.as_str(), format_duration(l.rto)))
        .collect();
    assert_eq!(
        names,
        vec![
            (1, "Service Degradation", "15m".to_string()),
            (2, "Partial System Failure", "30m".to_string()),
            (3, "Complete System Failure", "2h".to_string()),
            (4, "Data Corruption", "4h".to_string()),
            (5, "Security Breach", "8h".to_string()),
        ]
    );
    assert_eq!(
        c.person("sysadmin").unwrap().email.as_deref(),
        Some("admin@company.com")
    );
    for ext in ["hosting", "cloud", "security-consultant", "backup-service"] {
        assert!(c.person(ext).unwrap().external, "{ext}");
    }
    assert_eq!(
        c.rpo.iter().find(|r| r.data == "database").unwrap().target,
        Duration::minutes(15)
    );
    // Level 5: full team + security + external, immediately.
    // Who a tier names, teams expanded (rotations are resolved at page time, in `oncall`).
    let people = |level: u8, tier: usize| -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for n in &c.escalation[&LevelId(level)].tiers[tier].notify {
            match n {
                Target::Person(p) => out.push(p.to_string()),
                Target::Team(m) => out.extend(m.iter().map(|p| p.to_string())),
                Target::Rotation(r) => out.push(r.clone()),
            }
        }
        let mut seen = std::collections::HashSet::new();
        out.retain(|p| seen.insert(p.clone()));
        out
    };
    let l5 = &c.escalation[&LevelId(5)];
    assert_eq!(l5.tiers.len(), 1);
    assert_eq!(l5.tiers[0].after, Duration::zero());
    assert_eq!(people(5, 0).len(), 8);
    // The matrix as rows over unacknowledged time: level 1 climbs rows 1-4 at 0/15/30/60 min,
    // level 2 starts at row 2 (sysadmin + DBA) and climbs at 15 and 30 min.
    let l1 = &c.escalation[&LevelId(1)];
    let afters: Vec<i64> = l1.tiers.iter().map(|t| t.after.num_minutes()).collect();
    assert_eq!(afters, [0, 15, 30, 60]);
    assert_eq!(people(1, 0), ["sysadmin"]);
    assert_eq!(people(1, 1), ["sysadmin", "dba"]);
    assert_eq!(people(1, 3).len(), 8);
    assert_eq!(people(2, 0), ["sysadmin", "dba"]);
    let l2: Vec<i64> = c.escalation[&LevelId(2)]
        .tiers
        .iter()
        .map(|t| t.after.num_minutes())
        .collect();
    assert_eq!(l2, [0, 15, 30]);
    assert_eq!(c.escalation[&LevelId(4)].tiers.len(), 1);
    assert!(l1.repeat > 0);
    assert!(c.roles_of("nobody").allows(Role::Viewer));
    assert!(!c.roles_of("nobody").allows(Role::Responder));
}

fn check(text: &str) -> Vec<String> {
    match Config::from_toml(text, "f.toml") {
        Ok(_) => vec![],
        Err(e) => e.to_string().lines().map(str::to_string).collect(),
    }
}

const BASE: &str = r#"
[[level]]
id = 1
name = "Service Degradation"
rto = "15m"

[[person]]
id = "sysadmin"
name = "Sam"
roles = ["admin"]

[[escalation]]
level = 1
[[escalation.tier]]
after = "0m"
notify = ["sysadmin"]
"#;

#[test]
fn a_minimal_file_is_valid() {
    assert_eq!(check(BASE), Vec::<String>::new());
}

#[test]
fn the_alert_hold_defaults_to_two_seconds_and_may_be_off_but_not_long() {
    assert_eq!(Config::builtin().outbox.alert_hold, Duration::seconds(2));
    let with = |hold: &str| format!("{BASE}\n[outbox]\nalert_hold = \"{hold}\"\n");
    let off = Config::from_toml(&with("0s"), "f.toml").unwrap();
    assert_eq!(off.outbox.alert_hold, Duration::zero());
    let errs = check(&with("5m"));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].ends_with("alert_hold must be at most 1m"),
        "{errs:?}"
    );
}

#[test]
fn a_tier_naming_an_unknown_person_is_reported_at_its_place() {
    let text = BASE.replace(
        r#"notify = ["sysadmin"]"#,
        r#"notify = ["sysadmin", "bob"]"#,
    );
    let errs = check(&text);
    assert_eq!(
        errs,
        vec!["f.toml:16:23: escalation tier names unknown person, team or rotation `bob`"]
    );
}

#[test]
fn unknown_keys_and_bad_durations_are_reported_with_places() {
    let errs = check(&BASE.replace("rto = \"15m\"", "rto = \"15 minutes-ish\""));
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("f.toml:5:7: bad duration `15 minutes-ish`"),
        "{errs:?}"
    );
    let errs = check(&BASE.replace("name = \"Sam\"", "name = \"Sam\"\nnickname = \"s\""));
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0],
        "f.toml:10:1: [[person]] #1 (id = \"sysadmin\"): unknown key `nickname`; accepted: \
         id, name, email, roles, discord_user_id, phone, external, notify"
    );
}

#[test]
fn type_errors_name_table_and_key_and_every_problem_is_reported_in_one_run() {
    let base = BASE.replace(
        "after = \"0m\"\nnotify = [\"sysadmin\"]",
        "after = 5\nnotify = [\"dba\"]\n[[escalation.tier]]\nafter = \"1h\"\nnotify = [\"bob\"]",
    );
    let text = format!(
        r#"{base}
[[person]]
id = "dba"
name = "Dee"
roles = "responder"
external = "yes"
nick = "d"

[outbox]
max_attempts = "twelve"
retry_base = 2

[[team]]
id = "ops"
name = "Ops"
members = ["dba", "nobody"]
"#
    );
    let errs = check(&text);
    let line = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert_eq!(
        errs,
        vec![
            format!(
                "f.toml:{}:9: [[escalation]] #1 (level = 1): tier #1: after: expected a duration \
                 in quotes, e.g. \"15m\" or \"1h 30m\"; found integer `5`",
                line("after = 5")
            ),
            // The rest of that policy, and the cross-references of everything that could be
            // read, are still checked.
            format!(
                "f.toml:{}:11: escalation tier names unknown person, team or rotation `bob`",
                line("\"bob\"")
            ),
            format!(
                "f.toml:{}:9: [[person]] #2 (id = \"dba\"): roles: expected an array of role \
                 names, e.g. [\"responder\"]; found string \"responder\"",
                line("roles = \"responder\"")
            ),
            format!(
                "f.toml:{}:12: [[person]] #2 (id = \"dba\"): external: expected true or false; \
                 found string \"yes\"",
                line("external = \"yes\"")
            ),
            format!(
                "f.toml:{}:1: [[person]] #2 (id = \"dba\"): unknown key `nick`; accepted: id, \
                 name, email, roles, discord_user_id, phone, external, notify",
                line("nick = ")
            ),
            format!(
                "f.toml:{}:16: [outbox]: max_attempts: expected a whole number, e.g. 8; found \
                 string \"twelve\"",
                line("max_attempts")
            ),
            format!(
                "f.toml:{}:14: [outbox]: retry_base: expected a duration in quotes, e.g. \"15m\" \
                 or \"1h 30m\"; found integer `2`",
                line("retry_base")
            ),
            format!(
                "f.toml:{}:19: team `ops` names unknown person `nobody`",
                line("members = ")
            ),
        ]
        .into_iter()
        .map(|e| e.replace("\n", ""))
        .collect::<Vec<_>>(),
        "{errs:#?}"
    );
}

#[test]
fn duplicate_ids_and_levels_without_escalation_are_all_reported() {
    let text = format!(
        "{BASE}\n[[person]]\nid = \"sysadmin\"\nname = \"Twin\"\n\n[[level]]\nid = 2\nname = \"Partial\"\nrto = \"30m\"\n"
    );
    let errs = check(&text);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs.iter().any(|e| e.contains("duplicate id `sysadmin`")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("level 2 has no [[escalation]] policy")),
        "{errs:?}"
    );
}

#[test]
fn syntax_errors_point_at_the_line() {
    let errs = check("[server]\nlisten = \n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("f.toml:2:"), "{errs:?}");
}

#[test]
fn env_overrides_replace_the_database_and_listen_address() {
    let mut c = Config::builtin();
    c.apply_env(|k| match k {
        "SPOTTER_DATABASE_URL" => Some("postgres://u@h/db".into()),
        "SPOTTER_LISTEN" => Some("127.0.0.1:0".into()),
        _ => None,
    });
    assert_eq!(c.database.url, "postgres://u@h/db");
    assert_eq!(c.server.listen, "127.0.0.1:0");
    assert_eq!(c.server.public_url, "http://127.0.0.1:0");
}

#[test]
fn database_passwords_are_redacted_in_messages() {
    assert_eq!(
        redact_url("postgres://u:secret@h/db"),
        "postgres://u:[redacted]@h/db"
    );
    assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
}

#[test]
fn secret_query_parameters_are_redacted_and_the_others_kept() {
    for (url, shown) in [
        (
            "postgres://u@h/db?password=hunter2",
            "postgres://u@h/db?password=[redacted]",
        ),
        (
            "postgres://u@h/db?sslmode=require&sslpassword=hunter2&application_name=spotter",
            "postgres://u@h/db?sslmode=require&sslpassword=[redacted]&application_name=spotter",
        ),
        (
            "postgres://u:p%40ss@h:5432/db?PASSWORD=x&token=y&auth_token=z",
            "postgres://u:[redacted]@h:5432/db?PASSWORD=[redacted]&token=[redacted]&auth_token=[redacted]",
        ),
        // An `@` in the query is no user info.
        (
            "postgres://h/db?user=a@b&password=x",
            "postgres://h/db?user=a@b&password=[redacted]",
        ),
        (
            "sqlite://data/x.db?mode=rwc",
            "sqlite://data/x.db?mode=rwc",
        ),
    ] {
        assert_eq!(redact_url(url), shown, "{url}");
        assert!(!redact_url(url).contains("hunter2"));
    }
}

#[test]
fn discord_ids_beyond_64_bits_or_zero_are_refused() {
    let discord = |guild: &str| {
        format!(
            "{BASE}\n[discord]\nmode = \"gateway\"\napplication_id = \"1300000000000000000\"\nguild_id = \"{guild}\"\n"
        )
    };
    assert_eq!(check(&discord("1290000000000000000")), Vec::<String>::new());
    for bad in ["99999999999999999999", "00000000000000000", "12345"] {
        let errs = check(&discord(bad));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].contains(&format!(
                "guild_id `{bad}` is not a Discord id (a snowflake: 17-20 digits)"
            )),
            "{errs:?}"
        );
    }
}

#[test]
fn an_unreadable_element_is_reported_once_without_echoes_in_the_checks_that_need_it() {
    let text = r#"
[[level]]
id = "one"
name = "Service Degradation"
rto = "15m"

[[person]]
name = "Nameless"

[[escalation]]
level = 1
[[escalation.tier]]
after = "0m"
notify = ["sysadmin"]

[server]
listen = ["127.0.0.1:8080"]

[pager]
x = 1
"#;
    let errs = check(text);
    assert_eq!(
        errs,
        vec![
            "f.toml:3:6: [[level]] #1 (id = \"one\"): id: expected a level number, e.g. 1; found string \"one\"",
            "f.toml:7:1: [[person]] #1: missing key `id` (an id in quotes, e.g. \"dba\")",
            "f.toml:17:10: [server]: listen: expected a string in quotes; found an array",
            "f.toml:19:2: unknown table `pager`; accepted: [server], [database], [api], [outbox], \
             [[level]], [[rpo]], [[component]], [[person]], [[team]], [[rotation]], [[escalation]], [smtp], [paging], [discord], \
             [alerts], [[source]], [[route]], [audit], [jobs], [retention], [limits], [runbooks], [secrets], [[probe]], [status]",
        ],
        "{errs:#?}"
    );
}

#[test]
fn every_syntax_error_is_reported() {
    let errs = check("[server]\nlisten = \n[database]\nurl = 'x\n");
    assert!(errs.len() >= 2, "{errs:?}");
    assert!(errs[0].starts_with("f.toml:2:"), "{errs:?}");
    assert!(errs.iter().any(|e| e.starts_with("f.toml:4:")), "{errs:?}");
}

#[test]
fn contact_methods_rotations_and_smtp_are_checked_with_places() {
    let text = format!(
        "{DEFAULT_TOML}\n{}",
        r#"
[[person]]
id = "pager-a"
name = "A"
notify = [{ kind = "webhook", url = "https://hooks.example/a" }, { kind = "sms" }, { kind = "ntfy", url = "ftp://x" }]

[[rotation]]
id = "night"
members = ["pager-a", "ghost"]
shift = "fortnightly"
handoff = "9am"
timezone = "Europe/Atlantis"
start = "2026-13-01"

[smtp]
host = "smtp.example.com"
tls = "ssl"
from = "nobody"
"#
    );
    let errs = Config::from_toml(&text, "f.toml").unwrap_err().to_string();
    for expected in [
        "a `webhook` contact method needs `hmac_secret_env`",
        "unknown contact method kind `sms`; accepted: discord, webhook, ntfy, email",
        "url `ftp://x` is not an http(s) URL",
        "rotation `night` names unknown person `ghost`",
        "shift `fortnightly`: write daily, weekly, or a duration",
        "handoff `9am`: write a local time like 09:00",
        "timezone `Europe/Atlantis` is not an IANA time zone name",
        "start `2026-13-01`: write the first shift's day like 2026-01-05",
        "tls `ssl`; accepted: starttls, tls, none",
        "from `nobody` is not an email address",
    ] {
        assert!(errs.contains(expected), "missing `{expected}` in:\n{errs}");
    }
    assert!(errs.lines().all(|l| l.starts_with("f.toml:")), "{errs}");
}

#[test]
fn a_rotation_can_stand_in_a_tier_and_people_nobody_can_page_are_warned_about() {
    let text = DEFAULT_TOML.replace(
        "notify = [\"sysadmin\"]\n",
        "notify = [\"primary\"]\n",
    ) + "\n[[rotation]]\nid = \"primary\"\nmembers = [\"sysadmin\", \"dba\"]\nshift = \"weekly\"\ntimezone = \"Europe/Berlin\"\nstart = \"2026-01-05\"\n";
    let c = Config::from_toml(&text, "f.toml").unwrap();
    assert!(
        matches!(&c.escalation[&LevelId(1)].tiers[0].notify[..], [Target::Rotation(r)] if r == "primary")
    );
    let w = c.warnings();
    assert_eq!(w.len(), 8, "as shipped nobody can be paged: {w:#?}");
    assert!(w[0].contains("email needs an [smtp] section"), "{w:#?}");
}

#[test]
fn runbooks_secrets_and_probes_default_to_the_guide() {
    let c = Config::from_toml(BASE, "f.toml").unwrap();
    assert_eq!(c.runbooks.dir, None);
    assert_eq!(c.runbooks.approval_ttl, Duration::minutes(15));
    assert_eq!(c.runbooks.on_declare.as_deref(), Some("emergency-response"));
    assert_eq!(c.runbooks.output_tail, 1500);
    assert!(c.secrets.env.is_empty());
    // No [[probe]]: the guide's four (without components this file does not define).
    let ids: Vec<&str> = c.probes.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["application", "frontend", "database", "cache"]);
    assert!(c.probes.iter().all(|p| p.component.is_none()));
    let b = Config::builtin();
    assert_eq!(b.probes.len(), 4);
    let db = b.probes.iter().find(|p| p.id == "database").unwrap();
    assert_eq!(db.component.as_ref().map(|c| c.as_str()), Some("database"));
    assert_eq!(
        db.spec,
        ProbeSpec::Mysql {
            url: Some("mysql://workout_user@localhost:3306/workout_tracker".into()),
            url_env: Some("WORKOUT_DB_URL".into()),
        }
    );
    assert_eq!(db.timeout, Duration::seconds(5));
    let names = b.secret_env_names();
    for n in [
        "SPOTTER_BACKUP_KEY",
        "WORKOUT_DB_PASSWORD",
        "WORKOUT_DB_URL",
    ] {
        assert!(names.contains(&n.to_string()), "{n}: {names:?}");
    }
}

#[test]
fn runbooks_and_probe_problems_are_reported_together() {
    let text = format!(
        r#"{BASE}
[runbooks]
dir = "/etc/spotter/runbooks"
approval_ttl = "soon"
on_declare = ""
output_tail = 200

[secrets]
env = ["GOOD_NAME", "bad-name"]

[[probe]]
id = "db"
kind = "mysql"
address = "localhost:3306"

[[probe]]
id = "db"
kind = "tcp"
address = "localhost:1"

[[probe]]
id = "web"
kind = "gopher"

[[probe]]
id = "cache"
kind = "redis"
component = "cache"
password_env = "REDIS_PASSWORD"
timeout = "2s"

[[probe]]
id = "ok"
kind = "tcp"
address = "localhost:6379"
"#
    );
    let start = BASE.lines().count();
    let at = |line: usize, col: usize, m: &str| format!("f.toml:{}:{col}: {m}", start + line);
    assert_eq!(
        check(&text),
        vec![
            at(4, 16, "[runbooks] approval_ttl: bad duration `soon`: write it like 30s, 15m, 2h or 1h 30m"),
            at(9, 21, "`bad-name` is not an environment variable name (A-Z, 0-9, _)"),
            at(13, 8, "[[probe]] `db`: a mysql probe needs `url or url_env`, e.g. url or url_env = \"WORKOUT_DB_URL\""),
            at(14, 11, "[[probe]] `db`: `address` is not used by a mysql probe; accepted: url, url_env"),
            at(17, 6, "duplicate [[probe]] id `db`"),
            at(23, 8, "[[probe]] `web`: unknown probe kind `gopher`; accepted: http, tcp, mysql, postgres, redis"),
            at(27, 8, "[[probe]] `cache`: a redis probe needs `address`, e.g. address = \"localhost:6379\""),
            at(28, 13, "[[probe]] `cache`: component `cache` is not a configured [[component]]; accepted: none configured"),
        ]
    );
    let ok = text
        .replace("approval_ttl = \"soon\"", "approval_ttl = \"5m\"")
        .replace("\"bad-name\"", "\"OTHER\"");
    let ok = ok[..ok.find("[[probe]]").unwrap()].to_string()
        + "[[probe]]\nid = \"cache\"\nkind = \"redis\"\naddress = \"localhost:6379\"\npassword_env = \"REDIS_PASSWORD\"\ntimeout = \"2s\"\n";
    let c = Config::from_toml(&ok, "f.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.runbooks.dir.as_deref(),
        Some(std::path::Path::new("/etc/spotter/runbooks"))
    );
    assert_eq!(c.runbooks.on_declare, None);
    assert_eq!(c.runbooks.approval_ttl, Duration::minutes(5));
    assert_eq!(c.runbooks.output_tail, 200);
    assert_eq!(c.probes.len(), 1);
    assert_eq!(c.probes[0].timeout, Duration::seconds(2));
    assert_eq!(
        c.secret_env_names(),
        ["GOOD_NAME", "OTHER", "REDIS_PASSWORD"]
    );
}
