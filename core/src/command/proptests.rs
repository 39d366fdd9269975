//! Property tests for the grammar: the lexer and the parser never panic, whatever the line;
//! [`quote`] and the lexer are inverses for every string; straight and typographic quotes give
//! the same answer.
//!
//! Cases per property follow proptest's default (256) unless `PROPTEST_CASES` says otherwise; CI
//! runs the default, BENCHMARKS.md records a long run. A failure found here is kept as a plain
//! unit test at the bottom, with the shrunk input.

use super::lexer::{lex, Token};
use super::*;
use proptest::prelude::*;
use std::sync::LazyLock;

/// Parsed once: the TOML parse would otherwise dominate every case.
static CONFIG: LazyLock<Config> = LazyLock::new(Config::builtin);

fn p(line: &str) -> Result<Command, ParseError> {
    parse(line, &CONFIG)
}

/// The same answer: the same command, or the same refusal once the quote characters it echoes
/// from the line are read alike.
fn same_answer(a: &Result<Command, ParseError>, b: &Result<Command, ParseError>) -> bool {
    let plain = |e: &ParseError| e.0.replace(['“', '”'], "\"");
    match (a, b) {
        (Ok(a), Ok(b)) => a == b,
        (Err(a), Err(b)) => plain(a) == plain(b),
        _ => false,
    }
}

/// A refusal is one line of plain text, whatever was typed.
fn assert_one_plain_line(e: &ParseError, line: &str) -> Result<(), TestCaseError> {
    prop_assert!(!e.0.trim().is_empty(), "an empty refusal for {:?}", line);
    prop_assert!(
        !e.0.chars().any(char::is_control),
        "the refusal {:?} for {:?} carries control characters",
        e.0,
        line
    );
    Ok(())
}

// ── Inputs ───────────────────────────────────────────────────────────────────────────────────

/// A character, weighted towards the ones the grammar gives a meaning to (quotes, escapes,
/// colons, separators, Unicode whitespace and controls), so that arbitrary strings reach the
/// quoting paths far more often than uniform Unicode would.
fn grammar_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => any::<char>(),
        3 => prop::sample::select(vec![
            '"', '“', '”', '„', '‟', '«', '\'', '\\', ':', ',', '/', ' ', '\t', '\n', '\r',
            '\u{0}', '\u{7f}', '\u{85}', '\u{a0}', '\u{2028}', '\u{202e}', '\u{3000}', '\u{feff}',
        ]),
        2 => prop::char::range('a', 'z'),
    ]
}

fn grammar_string(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(grammar_char(), 0..max).prop_map(|v| v.into_iter().collect())
}

/// A value for an option of `kind`: mostly the kind's own shape (valid or nearly), sometimes
/// anything at all.
fn value_for(kind: OptionKind) -> BoxedStrategy<String> {
    fn pick(items: Vec<String>) -> BoxedStrategy<String> {
        prop::sample::select(items).boxed()
    }
    let ids = |v: Vec<String>| pick(v.into_iter().chain(["".into(), " ".into()]).collect());
    let shaped: BoxedStrategy<String> = match kind {
        OptionKind::Level => "-?[0-9]{1,4}| ?[1-5] ?".boxed(),
        OptionKind::Text { max } => prop_oneof![
            4 => grammar_string(64),
            1 => (grammar_string(4), max - 2..max + 2)
                .prop_map(|(s, n)| s.chars().cycle().take(n).collect::<String>()),
        ]
        .boxed(),
        OptionKind::Bool => "(?i)true|false|yes|no|1|".boxed(),
        OptionKind::Incident => "(INC-|inc-|Inc-|INC--|)[0-9]{0,25}".boxed(),
        OptionKind::Components => {
            let c: Vec<String> = CONFIG.components.iter().map(|c| c.id.to_string()).collect();
            prop::collection::vec(ids(c), 0..4)
                .prop_map(|v| v.join(","))
                .boxed()
        }
        OptionKind::Person | OptionKind::Target => {
            let mut v: Vec<String> = CONFIG.people.keys().map(|p| p.to_string()).collect();
            v.extend(CONFIG.teams.keys().cloned());
            ids(v)
        }
        OptionKind::Phase => ids(Phase::ALL.iter().map(|p| p.as_str().to_string()).collect()),
        OptionKind::StateFilter => ids(["open", "resolved", "closed", "all", "OPEN"]
            .map(String::from)
            .to_vec()),
        OptionKind::CommandName => ids(COMMANDS
            .iter()
            .flat_map(|c| [c.name(), c.path.join(" "), c.path[0].to_uppercase()])
            .collect()),
        OptionKind::Duration => {
            "[0-9]{1,25} ?(ns|us|ms|s|sec|m|min|h|hour|d|day|w|M|y|)( [0-9]{1,25}(s|m|h|d))?"
                .boxed()
        }
        OptionKind::Number => "[+-]?[0-9]{1,25}".boxed(),
        OptionKind::Rotation => {
            // The built-in configuration has no rotation; "primary" is the commented example's.
            let mut v: Vec<String> = CONFIG.rotations.keys().cloned().collect();
            v.push("primary".into());
            ids(v)
        }
        OptionKind::Runbook => ids(["db-restore", "emergency-response", "DB-Restore", "x y"]
            .map(String::from)
            .to_vec()),
        OptionKind::Params => "([a-z_]{1,8}:[0-9a-z;$() ]{0,10} ?){0,3}".boxed(),
        OptionKind::Time => {
            "(2026-1[0-2]-[0-3][0-9] [0-2][0-9]:[0-5][0-9]|2026-12-02T02:00:00Z|tomorrow)".boxed()
        }
        OptionKind::PublicStatus => ids([
            "investigating",
            "identified",
            "monitoring",
            "resolved",
            "postmortem",
            "Resolved",
        ]
        .map(String::from)
        .to_vec()),
        OptionKind::ComponentStatus => ids(["operational", "major_outage", "auto", "down"]
            .map(String::from)
            .to_vec()),
    };
    prop_oneof![4 => shaped, 1 => grammar_string(24)].boxed()
}

/// `name:value`, the value quoted by [`quote`] or written bare (bare values with spaces or
/// quotes in them are how people get it wrong, so they are worth generating too).
fn option_arg(o: &'static OptionSpec) -> impl Strategy<Value = String> {
    (value_for(o.kind), any::<bool>()).prop_map(move |(v, quoted)| {
        let v = if quoted { quote(&v) } else { v };
        format!("{}:{v}", o.name)
    })
}

/// A line that starts with a real command and carries some of its options in any order, maybe
/// with something extra: these get past dispatch into the per-option validation.
fn command_line() -> impl Strategy<Value = (&'static CommandSpec, String)> {
    prop::sample::select(COMMANDS.iter().collect::<Vec<_>>()).prop_flat_map(|spec| {
        let options: Vec<_> = spec
            .options
            .iter()
            .map(|o| prop::option::weighted(0.7, option_arg(o)))
            .collect();
        let extra = prop::option::weighted(0.2, grammar_string(16));
        (options, extra, any::<bool>()).prop_flat_map(move |(options, extra, upper)| {
            let mut parts: Vec<String> = options.into_iter().flatten().collect();
            parts.extend(extra);
            let head = if upper {
                spec.name().to_uppercase()
            } else {
                spec.name()
            };
            (Just(spec), Just(head), Just(parts).prop_shuffle())
                .prop_map(|(spec, head, parts)| (spec, format!("{head} {}", parts.join(" "))))
        })
    })
}

/// Text the parser accepts as it is: no control characters, nothing to trim, not empty.
fn clean_text(max: usize) -> impl Strategy<Value = String> {
    grammar_string(max)
        .prop_map(|s| s.chars().filter(|c| !c.is_control()).collect::<String>())
        .prop_map(|s| s.trim().to_string())
        .prop_filter("empty after trimming", |s| !s.is_empty())
}

/// The quoted value without its outer quotes: what goes between either style of quotes.
fn escaped_body(v: &str) -> String {
    let q = quote(v);
    q[1..q.len() - 1].to_string()
}

// ── Properties ───────────────────────────────────────────────────────────────────────────────

proptest! {
    #[test]
    fn the_lexer_never_panics_on_any_string(line in any::<String>()) {
        let _ = lex(&line);
    }

    #[test]
    fn the_parser_never_panics_and_refuses_in_one_plain_line(line in grammar_string(96)) {
        if let Err(e) = p(&line) {
            assert_one_plain_line(&e, &line)?;
        }
    }

    #[test]
    fn a_line_naming_a_command_parses_into_that_command_or_a_refusal(
        (spec, line) in command_line()
    ) {
        match p(&line) {
            Ok(cmd) => prop_assert_eq!(cmd.spec(), spec, "{:?} parsed as {:?}", line, cmd),
            Err(e) => assert_one_plain_line(&e, &line)?,
        }
    }

    #[test]
    fn quote_then_lex_gives_back_any_string_as_an_option_value(v in grammar_string(96)) {
        let tokens = lex(&format!("x text:{}", quote(&v)));
        prop_assert_eq!(
            tokens,
            Ok(vec![
                Token::Word("x".into()),
                Token::Option { name: "text".into(), value: v.clone() },
            ])
        );
    }

    #[test]
    fn quote_then_lex_gives_back_any_string_as_a_quoted_word(v in any::<String>()) {
        prop_assert_eq!(lex(&quote(&v)), Ok(vec![Token::Word(v.clone())]));
    }

    #[test]
    fn a_quoted_text_option_parses_back_to_the_text(v in clean_text(120)) {
        let line = format!("/incident update text:{} public:true", quote(&v));
        prop_assert_eq!(
            p(&line),
            Ok(Command::Update { incident: None, text: v.clone(), public: true })
        );
        let line = format!("/incident declare level:3 title:{}", quote(&v));
        prop_assert_eq!(
            p(&line),
            Ok(Command::Declare {
                level: LevelId(3),
                title: v.clone(),
                components: vec![],
                commander: None,
            })
        );
    }

    #[test]
    fn any_quoted_text_parses_to_its_trimmed_self_or_a_refusal_naming_the_option(
        v in grammar_string(96)
    ) {
        match p(&format!("/incident update text:{}", quote(&v))) {
            Ok(Command::Update { text, .. }) => prop_assert_eq!(text, v.trim()),
            Ok(other) => prop_assert!(false, "{v:?} parsed as {other:?}"),
            Err(e) => prop_assert!(e.0.contains("`text`"), "{v:?}: {}", e.0),
        }
    }

    #[test]
    fn straight_and_typographic_quotes_give_the_same_answer_for_quoted_values(
        v in grammar_string(64)
    ) {
        let e = escaped_body(&v);
        let straight = p(&format!("/incident update text:\"{e}\" public:yes"));
        for (open, close) in [('“', '”'), ('”', '“'), ('“', '"'), ('"', '”')] {
            let other = p(&format!("/incident update text:{open}{e}{close} public:yes"));
            prop_assert!(
                same_answer(&other, &straight),
                "{}…{} gives {:?}, \"…\" gives {:?}, for {:?}",
                open, close, other, straight, v
            );
        }
    }

    #[test]
    fn straight_and_typographic_quotes_give_the_same_answer_for_any_body(
        body in grammar_string(64),
        tail in grammar_string(16),
    ) {
        // Not escaped: the body may close the quote early, and must do so the same way.
        for (straight, curly) in [
            (format!("/help \"{body}\" {tail}"), format!("/help “{body}” {tail}")),
            (
                format!("/maintenance start reason:\"{body}\" {tail}"),
                format!("/maintenance start reason:“{body}” {tail}"),
            ),
        ] {
            let (a, b) = (p(&straight), p(&curly));
            prop_assert!(same_answer(&a, &b), "{:?} → {:?}\n{:?} → {:?}", straight, a, curly, b);
        }
    }
}

// ── Cases found by the properties above, kept as plain tests ─────────────────────────────────

#[test]
fn a_refusal_escapes_the_control_characters_it_quotes() {
    // Shrunk by proptest (`body = "\"¡\0¡"`): refusals echo what was typed, and a NUL or a
    // newline in it reached the reply, and the log, as it was.
    let e = p("/help \"¡\u{0}¡\"").unwrap_err();
    assert!(
        e.0.starts_with("bad value for `command`: `¡\\u{0}¡`"),
        "{}",
        e.0
    );
    let e = p("/help \"incident\nforged: line\"").unwrap_err();
    assert!(!e.0.contains('\n'), "{}", e.0);
    assert!(e.0.contains("`incident\\nforged: line`"), "{}", e.0);
}

#[test]
fn a_typographic_quote_inside_a_value_survives_quote_and_parse() {
    let line = format!("/incident update text:{}", quote("a ” b"));
    assert_eq!(
        p(&line),
        Ok(Command::Update {
            incident: None,
            text: "a ” b".into(),
            public: false
        })
    );
}
