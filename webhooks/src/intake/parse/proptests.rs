//! Property tests for the alert parsers: whatever the body — arbitrary bytes, a payload cut
//! short, or JSON shaped like the format with any field of any type — each parser answers with
//! a batch or a refusal, never a panic, and what it accepts keeps the sender's alerts.
//!
//! Cases per property follow proptest's default (256) unless `PROPTEST_CASES` says otherwise;
//! CI runs the default, BENCHMARKS.md records a long run.

use super::*;
use proptest::prelude::*;
use serde_json::{Map, Value};

// ── JSON building blocks ─────────────────────────────────────────────────────────────────────

/// Text weighted towards what breaks parsers: quotes, escapes, NUL, multibyte characters.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9_ .:-]{0,12}",
        2 => any::<String>(),
        1 => "[\"\\\\\u{0}\u{7f}\u{85}\u{2028}\u{feff}é漢😀]{0,8}",
    ]
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("not finite", |f| {
            serde_json::Number::from_f64(f).map(Value::Number)
        }),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Mostly the expected shape, sometimes a value of any type in its place. Rare enough that a
/// body of ten fields is still accepted often: a property about accepted bodies needs some.
fn or_any(expected: impl Strategy<Value = Value>) -> impl Strategy<Value = Value> {
    prop_oneof![30 => expected, 1 => any_json()]
}

/// A field that is usually there.
fn field(s: impl Strategy<Value = Value>) -> impl Strategy<Value = Option<Value>> {
    prop::option::weighted(0.9, or_any(s))
}

fn string(s: impl Strategy<Value = String>) -> impl Strategy<Value = Value> {
    s.prop_map(Value::from)
}

/// One of the accepted values most of the time; near misses and anything now and then.
fn one_of(valid: &[&str], near_misses: &[&str]) -> impl Strategy<Value = Value> {
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    prop_oneof![
        10 => prop::sample::select(owned(valid)).prop_map(Value::from),
        1 => prop::sample::select(owned(near_misses)).prop_map(Value::from),
        1 => string(text()),
    ]
}

/// A field the format requires: absent only now and then.
fn required(s: impl Strategy<Value = Value>) -> impl Strategy<Value = Option<Value>> {
    prop::option::weighted(0.98, or_any(s))
}

/// An object from the fields that are present, plus perhaps one the format does not know.
fn object(fields: Vec<(&str, Option<Value>)>, extra: Option<(String, Value)>) -> Value {
    let mut m: Map<String, Value> = fields
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
        .collect();
    if let Some((k, v)) = extra {
        m.insert(k, v);
    }
    Value::Object(m)
}

fn extra_field() -> impl Strategy<Value = Option<(String, Value)>> {
    prop::option::weighted(0.1, ("[a-zA-Z]{1,10}", any_json()))
}

/// Times as senders write them (and get wrong): RFC 3339 at the edges of the calendar and of
/// the offsets, Alertmanager's zero time, empty, or anything.
fn time() -> impl Strategy<Value = Value> {
    let valid = (
        (0u32..=9999, 1u32..=12, 1u32..=28),
        (
            0u32..24,
            0u32..60,
            0u32..60,
            prop::option::of(0u32..1_000_000_000),
        ),
        prop::option::of((any::<bool>(), 0u32..24, 0u32..60)),
    )
        .prop_map(|((y, mo, d), (h, mi, s, frac), offset)| {
            let frac = frac.map(|f| format!(".{f:09}")).unwrap_or_default();
            let offset = match offset {
                None => "Z".to_string(),
                Some((east, oh, om)) => format!("{}{oh:02}:{om:02}", if east { '+' } else { '-' }),
            };
            Value::from(format!(
                "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{offset}"
            ))
        });
    prop_oneof![
        8 => valid,
        1 => string(
            "[0-9]{4}-[01][0-9]-[0-3][0-9][Tt ][0-2][0-9]:[0-5][0-9]:[0-6][0-9](\\.[0-9]{1,12})?([Zz]|[+-][0-2][0-9]:[0-5][0-9])"
        ),
        1 => string(prop::sample::select(vec![
            "0001-01-01T00:00:00Z".to_string(),
            "9999-12-31T23:59:59-23:59".to_string(),
            "0000-01-01T00:00:00+23:59".to_string(),
            String::new(),
        ])),
        1 => string(text()),
    ]
}

fn string_map() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(text(), or_any(string(text())), 0..5)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// Some number where a count goes: negative, fractional and beyond u64 included.
fn count() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => any::<u64>().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => Just(serde_json::from_str::<Value>("184467440737095516160").unwrap()),
        1 => Just(Value::from(1.5)),
    ]
}

// ── The formats ──────────────────────────────────────────────────────────────────────────────

fn am_alert() -> impl Strategy<Value = Value> {
    (
        required(one_of(&["firing", "resolved"], &["FIRING", "", "pending"])),
        field(string_map()),
        field(string_map()),
        field(time()),
        field(time()),
        field(string(text())),
        field(string(text())),
        extra_field(),
    )
        .prop_map(
            |(status, labels, annotations, starts, ends, url, fp, extra)| {
                object(
                    vec![
                        ("status", status),
                        ("labels", labels),
                        ("annotations", annotations),
                        ("startsAt", starts),
                        ("endsAt", ends),
                        ("generatorURL", url),
                        ("fingerprint", fp),
                    ],
                    extra,
                )
            },
        )
}

/// Alertmanager's webhook body (version 4) and Grafana's (version 1) share their shape; each is
/// generated mostly with its own `version`, sometimes with the other's.
fn am_payload(version: &'static str) -> impl Strategy<Value = Value> {
    (
        required(one_of(&[version], &["4", "1", "3", ""])),
        field(string(text())),
        field(count()),
        required(prop::collection::vec(or_any(am_alert()), 0..5).prop_map(Value::Array)),
        field(one_of(&["firing", "resolved"], &[""])),
        extra_field(),
    )
        .prop_map(|(version, group_key, truncated, alerts, status, extra)| {
            object(
                vec![
                    ("version", version),
                    ("groupKey", group_key),
                    ("truncatedAlerts", truncated),
                    ("alerts", alerts),
                    ("status", status),
                ],
                extra,
            )
        })
}

/// A PagerDuty summary or dedup key near its length limit, in characters that take several bytes.
fn near_limit(limit: usize) -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!['a', 'é', '漢', '😀']),
        limit - 2..limit + 3,
    )
        .prop_map(|(c, n)| Value::from(std::iter::repeat_n(c, n).collect::<String>()))
}

fn pd_payload() -> impl Strategy<Value = Value> {
    (
        required(prop_oneof![7 => string(text()), 1 => near_limit(1024)]),
        required(string(text())),
        required(one_of(
            &["critical", "error", "warning", "info"],
            &["Critical", ""],
        )),
        field(time()),
        field(string(text())),
        field(string(text())),
        field(string(text())),
        field(any_json()),
    )
        .prop_map(
            |(summary, source, severity, ts, component, group, class, details)| {
                object(
                    vec![
                        ("summary", summary),
                        ("source", source),
                        ("severity", severity),
                        ("timestamp", ts),
                        ("component", component),
                        ("group", group),
                        ("class", class),
                        ("custom_details", details),
                    ],
                    None,
                )
            },
        )
}

fn pd_event() -> impl Strategy<Value = Value> {
    (
        field(string(text())),
        required(one_of(
            &["trigger", "acknowledge", "resolve"],
            &["Trigger", ""],
        )),
        field(prop_oneof![7 => string(text()), 1 => near_limit(255)]),
        required(pd_payload()),
        field(string(text())),
        field(string(text())),
        extra_field(),
    )
        .prop_map(|(key, action, dedup, payload, client, url, extra)| {
            object(
                vec![
                    ("routing_key", key),
                    ("event_action", action),
                    ("dedup_key", dedup),
                    ("payload", payload),
                    ("client", client),
                    ("client_url", url),
                ],
                extra,
            )
        })
}

fn generic_event() -> impl Strategy<Value = Value> {
    (
        required(string(text())),
        field(one_of(
            &["firing", "resolved", "trigger", "resolve"],
            &["open", ""],
        )),
        field(string(text())),
        field(prop_oneof![
            4 => (1u64..=5).prop_map(Value::from),
            1 => (0u64..300).prop_map(Value::from),
            1 => count(),
        ]),
        field(string(text())),
        field(string_map()),
        field(string_map()),
        field(string(text())),
        extra_field(),
    )
        .prop_map(
            |(summary, status, severity, level, component, labels, annotations, dedup, extra)| {
                object(
                    vec![
                        ("summary", summary),
                        ("status", status),
                        ("severity", severity),
                        ("level", level),
                        ("component", component),
                        ("labels", labels),
                        ("annotations", annotations),
                        ("dedup_key", dedup),
                    ],
                    extra,
                )
            },
        )
}

/// A body as sent: the serialized value, one time in four cut short or with a byte changed, the
/// way a broken proxy or a hostile sender would deliver it.
fn body(value: impl Strategy<Value = Value>) -> impl Strategy<Value = Vec<u8>> {
    (value, any::<prop::sample::Index>(), any::<u8>(), 0..8u8).prop_map(|(v, at, byte, damage)| {
        let mut b = serde_json::to_vec(&v).expect("a Value serializes");
        let i = at.index(b.len().max(1)).min(b.len());
        match damage {
            0 => b.truncate(i),
            1 if i < b.len() => b[i] = byte,
            _ => {}
        }
        b
    })
}

// ── What an answer must look like ────────────────────────────────────────────────────────────

fn check_refusal(e: &BadPayload) -> Result<(), TestCaseError> {
    prop_assert!(
        !e.to_string().trim().is_empty(),
        "an empty refusal: {:?}",
        e
    );
    Ok(())
}

/// What the sender sent, read as leniently as the parser reads it: serde_json skips the fields a
/// struct does not name without validating them (invalid UTF-8 included), so a body the parser
/// accepts need not parse as a [`Value`].
#[derive(Deserialize)]
struct Sent {
    version: String,
    alerts: Vec<SentAlert>,
}

#[derive(Deserialize)]
struct SentAlert {
    status: String,
}

/// Alertmanager and Grafana: an accepted body keeps every alert, each with an identity and the
/// action its status says, and only the format's own version is accepted.
fn check_am_like(
    body: &[u8],
    version: &str,
    answer: Result<(AlertBatch, Notes), BadPayload>,
) -> Result<(), TestCaseError> {
    match answer {
        Err(e) => check_refusal(&e),
        Ok((batch, _)) => {
            let sent: Sent = serde_json::from_slice(body).expect("the parser read it");
            prop_assert_eq!(sent.version.as_str(), version);
            prop_assert_eq!(batch.alerts.len(), sent.alerts.len());
            for (a, sent) in batch.alerts.iter().zip(&sent.alerts) {
                prop_assert!(!a.labels.is_empty() || a.fingerprint.is_some());
                let expected = match sent.status.as_str() {
                    "firing" => AlertAction::Fire,
                    _ => AlertAction::Resolve,
                };
                prop_assert_eq!(a.action, expected);
            }
            Ok(())
        }
    }
}

fn pagerduty_from_bytes(body: &[u8]) -> Result<(AlertBatch, String), Vec<String>> {
    let event: PdEvent = json(body).map_err(|e| vec![e.to_string()])?;
    pagerduty(event, "pd", "generated-key")
}

fn check_pagerduty(answer: Result<(AlertBatch, String), Vec<String>>) -> Result<(), TestCaseError> {
    match answer {
        Err(errors) => {
            prop_assert!(!errors.is_empty(), "a refusal without a reason");
            prop_assert!(errors.iter().all(|e| !e.trim().is_empty()));
        }
        Ok((batch, key)) => {
            prop_assert_eq!(batch.alerts.len(), 1);
            prop_assert_eq!(batch.alerts[0].fingerprint.as_deref(), Some(key.as_str()));
        }
    }
    Ok(())
}

fn check_generic(answer: Result<AlertBatch, BadPayload>) -> Result<(), TestCaseError> {
    match answer {
        Err(e) => check_refusal(&e),
        Ok(batch) => {
            prop_assert_eq!(batch.alerts.len(), 1);
            let a = &batch.alerts[0];
            prop_assert!(!a.annotations["summary"].trim().is_empty());
            prop_assert!(a.labels.contains_key("alertname"));
            Ok(())
        }
    }
}

// ── Properties ───────────────────────────────────────────────────────────────────────────────

proptest! {
    #[test]
    fn no_parser_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_am_like(&bytes, "4", alertmanager(&bytes, "am"))?;
        check_am_like(&bytes, "1", grafana(&bytes, "grafana"))?;
        check_pagerduty(pagerduty_from_bytes(&bytes))?;
        check_generic(generic(&bytes, "generic"))?;
    }

    #[test]
    fn the_alertmanager_parser_takes_or_refuses_any_alertmanager_shaped_body(
        bytes in body(am_payload("4"))
    ) {
        check_am_like(&bytes, "4", alertmanager(&bytes, "am"))?;
    }

    #[test]
    fn the_grafana_parser_takes_or_refuses_any_grafana_shaped_body(
        bytes in body(am_payload("1"))
    ) {
        check_am_like(&bytes, "1", grafana(&bytes, "grafana"))?;
    }

    #[test]
    fn the_pagerduty_parser_takes_or_refuses_any_pagerduty_shaped_body(
        bytes in body(pd_event())
    ) {
        check_pagerduty(pagerduty_from_bytes(&bytes))?;
    }

    #[test]
    fn the_generic_parser_takes_or_refuses_any_generic_shaped_body(
        bytes in body(generic_event())
    ) {
        check_generic(generic(&bytes, "generic"))?;
    }

    #[test]
    fn the_parsers_take_or_refuse_any_json_value(v in any_json()) {
        let bytes = serde_json::to_vec(&v).unwrap();
        check_am_like(&bytes, "4", alertmanager(&bytes, "am"))?;
        check_am_like(&bytes, "1", grafana(&bytes, "grafana"))?;
        check_pagerduty(pagerduty_from_bytes(&bytes))?;
        check_generic(generic(&bytes, "generic"))?;
    }
}

// ── Hostile shapes too rare for random generation ────────────────────────────────────────────

#[test]
fn deeply_nested_json_is_refused_without_exhausting_the_stack() {
    // serde_json's recursion limit (128) is what stands between this and a stack overflow, which
    // would take the whole process down rather than fail one request.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let am = format!(r#"{{"version":"4","alerts":[{{"status":"firing","labels":{deep}}}]}}"#);
    assert!(alertmanager(am.as_bytes(), "am").is_err());
    let pd = format!(
        r#"{{"event_action":"trigger","payload":{{"summary":"s","source":"x","severity":"info","custom_details":{deep}}}}}"#
    );
    let errors = pagerduty_from_bytes(pd.as_bytes()).unwrap_err();
    assert!(errors[0].contains("recursion limit"), "{errors:?}");
    assert!(generic(deep.as_bytes(), "g").is_err());
}

#[test]
fn invalid_utf8_in_a_field_the_format_ignores_does_not_cost_the_alerts() {
    // Found by the long run (a damaged byte in the top-level `status`, which the parser does not
    // read): serde_json skips unread fields unvalidated. Only what the parser takes must be text.
    let ignored = b"{\"version\":\"4\",\"status\":\"\xffiring\",\"alerts\":[{\"status\":\"firing\",\"labels\":{\"a\":\"b\"}}]}";
    let (batch, _) = alertmanager(ignored, "am").unwrap();
    assert_eq!(batch.alerts.len(), 1);
    assert!(serde_json::from_slice::<Value>(ignored).is_err());
    let read =
        b"{\"version\":\"4\",\"alerts\":[{\"status\":\"firing\",\"labels\":{\"a\":\"\xff\"}}]}";
    let e = alertmanager(read, "am").unwrap_err();
    assert!(
        e.to_string().starts_with("the body is not valid JSON"),
        "{e}"
    );
}
