//! The house drawn from the imports: no cycle between core's top-level modules, config and the
//! store below the engine, and no transport or adapter crate anywhere in core.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules its files name through `crate::`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let single = regex::Regex::new(r"crate::(\w+)").unwrap();
    let group = regex::Regex::new(r"crate::\{([^}]*)\}").unwrap();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap();
            let top = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            if top == "lib" {
                continue;
            }
            let text: String = std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .map(|l| l.split("//").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n");
            let deps = out.entry(top.clone()).or_default();
            for c in single.captures_iter(&text) {
                deps.insert(c[1].to_string());
            }
            for c in group.captures_iter(&text) {
                for item in c[1].split(',') {
                    if let Some(name) = item.trim().split("::").next().filter(|n| !n.is_empty()) {
                        deps.insert(name.to_string());
                    }
                }
            }
            deps.remove(&top);
        }
    }
    let known: BTreeSet<String> = out.keys().cloned().collect();
    for deps in out.values_mut() {
        deps.retain(|d| known.contains(d));
    }
    out
}

#[test]
fn core_modules_import_each_other_without_a_cycle() {
    let graph = imports();
    for start in graph.keys() {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&String> = graph[start].iter().collect();
        while let Some(m) = todo.pop() {
            assert_ne!(m, start, "a cycle runs through `{start}`: {graph:#?}");
            if seen.insert(m.clone()) {
                todo.extend(graph.get(m).into_iter().flatten());
            }
        }
    }
}

#[test]
fn config_store_and_domain_never_reach_up_into_the_engine() {
    let graph = imports();
    for (low, forbidden) in [
        (
            "config",
            &["engine", "store", "command", "alerts", "runbook", "runs"][..],
        ),
        // The public model and its snapshot are data: below the store and the engine.
        (
            "status",
            &["engine", "store", "runs", "scheduler", "outbox", "command"][..],
        ),
        // Runbook files, plans and redaction decide nothing about incidents: below the engine.
        (
            "runbook",
            &["engine", "store", "runs", "scheduler", "outbox", "command"][..],
        ),
        (
            "store",
            &["engine", "alerts", "command", "outbox", "scheduler"][..],
        ),
        ("domain", &["engine", "store", "config", "error"][..]),
    ] {
        for f in forbidden {
            assert!(
                !graph[low].contains(*f),
                "`{low}` imports `{f}`: {:?}",
                graph[low]
            );
        }
    }
}

#[test]
fn core_names_no_transport_and_no_adapter() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    for crate_name in [
        "axum",
        "serenity",
        "reqwest",
        "spotter-webhooks",
        "spotter-bot",
        "lettre",
    ] {
        assert!(
            !manifest.contains(&format!("\n{crate_name}")),
            "core depends on {crate_name}"
        );
    }
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for name in ["axum::", "serenity::", "spotter_webhooks", "spotter_bot"] {
                    assert!(!text.contains(name), "{} names {name}", path.display());
                }
            }
        }
    }
}
