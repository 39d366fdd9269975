use super::*;

fn cfg() -> Config {
    Config::builtin()
}

fn p(line: &str) -> Result<Command, String> {
    parse(line, &cfg()).map_err(|e| e.0)
}

#[test]
fn declare_parses_into_a_typed_command() {
    let c =
        p(r#"/incident declare level:3 title:"Database down" component:database,cache"#).unwrap();
    assert_eq!(
        c,
        Command::Declare {
            level: LevelId(3),
            title: "Database down".into(),
            components: vec!["database".parse().unwrap(), "cache".parse().unwrap()],
            commander: None,
        }
    );
}

#[test]
fn every_incident_subcommand_parses() {
    assert_eq!(p("/incident ack").unwrap(), Command::Ack { incident: None });
    assert_eq!(
        p("/incident ack incident:INC-7").unwrap(),
        Command::Ack {
            incident: Some(IncidentRef::new(7))
        }
    );
    assert_eq!(
        p(r#"/incident update text:"restarting mysql" public:true"#).unwrap(),
        Command::Update {
            incident: None,
            text: "restarting mysql".into(),
            public: true
        }
    );
    assert_eq!(
        p("/incident escalate level:4").unwrap(),
        Command::Escalate {
            incident: None,
            level: Some(LevelId(4))
        }
    );
    assert_eq!(
        p("/incident escalate").unwrap(),
        Command::Escalate {
            incident: None,
            level: None
        }
    );
    assert_eq!(
        p(r#"/incident resolve summary:"restored from backup""#).unwrap(),
        Command::Resolve {
            incident: None,
            summary: Some("restored from backup".into())
        }
    );
    assert_eq!(
        p("/incident list state:all").unwrap(),
        Command::List {
            filter: StateFilter::All
        }
    );
    assert_eq!(
        p("/incident list").unwrap(),
        Command::List {
            filter: StateFilter::Open
        }
    );
    assert_eq!(
        p("/incident timeline incident:inc-2").unwrap(),
        Command::Timeline {
            incident: Some(IncidentRef::new(2))
        }
    );
    assert_eq!(
        p("/incident phase phase:recovery_execution").unwrap(),
        Command::Phase {
            incident: None,
            phase: Phase::RecoveryExecution
        }
    );
    assert_eq!(
        p("/incident commander user:dba").unwrap(),
        Command::Commander {
            incident: None,
            user: "dba".parse().unwrap()
        }
    );
    assert!(matches!(p("/help").unwrap(), Command::Help { topic: None }));
    assert!(
        matches!(p("/help incident declare").unwrap(), Command::Help { topic: Some(s) } if s.path == ["incident", "declare"])
    );
    assert!(
        matches!(p(r#"/help command:"incident ack""#).unwrap(), Command::Help { topic: Some(s) } if s.path == ["incident", "ack"])
    );
}

#[test]
fn errors_name_the_problem_and_the_accepted_form() {
    let e = p("/incident declare level:9 title:x").unwrap_err();
    assert_eq!(
        e,
        "bad value for `level`: `9`; accepted: 1-5 (1 Service Degradation, 2 Partial System Failure, 3 Complete System Failure, 4 Data Corruption, 5 Security Breach)"
    );
    let e = p("/incident declare title:x").unwrap_err();
    assert!(
        e.starts_with(
            "missing option `level`; usage: /incident declare level:<1-5> title:\"<text>\""
        ),
        "{e}"
    );
    let e = p("/incident declare level:3 title:x colour:red").unwrap_err();
    assert!(
        e.starts_with("unknown option `colour` for /incident declare; usage:"),
        "{e}"
    );
    let e = p("/incident explode").unwrap_err();
    assert!(
        e.starts_with("unknown subcommand `/incident explode`; accepted: declare, ack"),
        "{e}"
    );
    let e = p("/deploy now").unwrap_err();
    assert_eq!(
        e,
        "unknown command `/deploy`; accepted: /incident, /page, /oncall, /maintenance, /runbook, /system, /status, /help"
    );
    let e = p("/incident").unwrap_err();
    assert!(e.starts_with("missing subcommand for /incident"), "{e}");
    let e = p("/incident ack INC-3").unwrap_err();
    assert!(
        e.starts_with("unexpected `INC-3`: options are written name:value"),
        "{e}"
    );
    let e = p("/incident ack incident:seven").unwrap_err();
    assert!(e.contains("accepted: INC-<number>"), "{e}");
    let e = p("/incident declare level:3 title:x component:mainframe").unwrap_err();
    assert!(
        e.contains("bad value for `component`: `mainframe`; accepted: database, application"),
        "{e}"
    );
    let e = p("/incident declare level:3 level:4 title:x").unwrap_err();
    assert!(e.starts_with("option `level` is given twice"), "{e}");
    let e = p(r#"/incident declare level:3 title:"""#).unwrap_err();
    assert!(e.starts_with("option `title` is empty"), "{e}");
    let e = p("/incident update text:x public:maybe").unwrap_err();
    assert_eq!(
        e,
        "bad value for `public`: `maybe`; accepted: true or false"
    );
    let e = p("/incident commander user:mallory").unwrap_err();
    assert!(e.contains("accepted: a configured person id"), "{e}");
    assert!(p("").unwrap_err().contains("empty command"));
}

#[test]
fn maintenance_page_oncall_and_hold_parse() {
    assert_eq!(
        p(r#"/maintenance start component:database duration:2h reason:"minor upgrade""#).unwrap(),
        Command::MaintenanceStart {
            components: vec!["database".parse().unwrap()],
            duration: chrono::Duration::hours(2),
            reason: "minor upgrade".into()
        }
    );
    assert_eq!(
        p("/maintenance end id:3").unwrap(),
        Command::MaintenanceEnd { id: Some(3) }
    );
    assert_eq!(p("/maintenance list").unwrap(), Command::MaintenanceList);
    assert_eq!(
        p("/page user:full-team").unwrap(),
        Command::Page {
            target: "full-team".into(),
            text: None,
            incident: None
        }
    );
    assert_eq!(
        p("/oncall level:2").unwrap(),
        Command::Oncall {
            level: Some(LevelId(2))
        }
    );
    assert_eq!(
        p("/incident hold incident:INC-4").unwrap(),
        Command::Hold {
            incident: Some(IncidentRef::new(4))
        }
    );
    let e = p("/maintenance start component:database duration:forever reason:x").unwrap_err();
    assert!(
        e.starts_with("bad value for `duration`: `forever`; accepted: a duration"),
        "{e}"
    );
    let e = p("/maintenance end id:-1").unwrap_err();
    assert!(e.contains("a positive whole number"), "{e}");
    let e = p("/page user:nobody").unwrap_err();
    assert!(e.contains("a configured person or team id"), "{e}");
}

#[test]
fn hostile_text_is_refused() {
    let e = p("/incident declare level:1 title:\"a\u{1b}[2Jb\"").unwrap_err();
    assert!(e.contains("control characters"), "{e}");
    let long = "x".repeat(spec::TITLE_MAX + 1);
    assert!(p(&format!("/incident declare level:1 title:{long}"))
        .unwrap_err()
        .contains("too long"));
    // Shell metacharacters are only text: they are stored, never interpreted.
    assert!(p(r#"/incident declare level:1 title:"$(rm -rf /); `id`""#).is_ok());
}

#[test]
fn usage_and_help_come_from_the_spec() {
    let c = cfg();
    let declare = spec::find(&["incident", "declare"]).unwrap();
    assert_eq!(
        usage(declare, &c),
        "/incident declare level:<1-5> title:\"<text>\" [component:<component,…>] [commander:<person>]"
    );
    let h = help(None, &c);
    for spec in COMMANDS {
        assert!(h.contains(&spec.name()), "help lists {}", spec.name());
    }
    assert!(help(Some(declare), &c).contains("needs role responder"));
}

#[test]
fn quoted_values_round_trip_through_the_parser() {
    let hostile = r#"a "quoted" \ value; $(rm -rf /)"#;
    let line = format!("/incident update text:{}", quote(hostile));
    assert_eq!(
        p(&line).unwrap(),
        Command::Update {
            incident: None,
            text: hostile.into(),
            public: false
        }
    );
}

fn with_rotation() -> Config {
    let toml = format!(
        "{}\n[[rotation]]\nid = \"primary\"\nname = \"Primary on-call\"\nmembers = [\"sysadmin\", \"dba\"]\nshift = \"weekly\"\nhandoff = \"09:00\"\ntimezone = \"Europe/Berlin\"\nstart = \"2026-01-05\"\n",
        crate::config::DEFAULT_TOML
    );
    Config::from_toml(&toml, "<test>").unwrap()
}

#[test]
fn oncall_alone_still_shows_and_override_is_validated() {
    let c = with_rotation();
    let p = |line: &str| parse(line, &c).map_err(|e| e.0);
    assert_eq!(p("/oncall").unwrap(), Command::Oncall { level: None });
    assert_eq!(
        p("/oncall show level:2").unwrap(),
        Command::Oncall {
            level: Some(LevelId(2))
        }
    );
    assert_eq!(
        p("/oncall override rotation:primary user:dev duration:4h").unwrap(),
        Command::OncallOverride {
            rotation: "primary".into(),
            user: "dev".parse().unwrap(),
            duration: chrono::Duration::hours(4)
        }
    );
    assert_eq!(
        p("/oncall override rotation:secondary user:dev duration:4h").unwrap_err(),
        "bad value for `rotation`: `secondary`; accepted: a configured rotation id (primary)"
    );
    let e = p("/oncall override rotation:primary user:mallory duration:4h").unwrap_err();
    assert!(
        e.starts_with("bad value for `user`: `mallory`; accepted: a configured person id"),
        "{e}"
    );
    for bad in ["0m", "31d", "forever", "-2h"] {
        let e = p(&format!(
            "/oncall override rotation:primary user:dev duration:{bad}"
        ))
        .unwrap_err();
        assert_eq!(
            e,
            format!("bad value for `duration`: `{bad}`; accepted: a duration from 1m to 30d, like 30m, 2h or 1h 30m")
        );
    }
    assert_eq!(
        p("/oncall override rotation:primary user:dev duration:30d").unwrap(),
        Command::OncallOverride {
            rotation: "primary".into(),
            user: "dev".parse().unwrap(),
            duration: chrono::Duration::days(30)
        }
    );
    let e = p("/oncall override user:dev duration:4h").unwrap_err();
    assert!(
        e.starts_with("missing option `rotation`; usage: /oncall override rotation:<rotation> user:<person> duration:<duration>"),
        "{e}"
    );
    let e = p("/oncall swap").unwrap_err();
    assert_eq!(
        e,
        "unknown subcommand `/oncall swap`; accepted: show, override"
    );
    // Without rotations the refusal says how to get one.
    let e = parse(
        "/oncall override rotation:primary user:dev duration:4h",
        &cfg(),
    )
    .unwrap_err()
    .0;
    assert!(
        e.contains("none is configured: add a [[rotation]] table"),
        "{e}"
    );
    assert_eq!(
        Command::OncallOverride {
            rotation: "primary".into(),
            user: "dev".parse().unwrap(),
            duration: chrono::Duration::hours(1)
        }
        .spec()
        .role,
        crate::domain::Role::Commander
    );
}
