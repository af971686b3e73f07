//! The host's layering, checked on its source: the modules depend on each other
//! without a cycle, and only `kafka/` talks to librdkafka (the stages and the loop
//! run on interfaces, which is what lets the simulator run them).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Per file under `src/`: its top-level module and its code, without comments and
/// without its tests.
fn code() -> Vec<(String, PathBuf, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let relative = path.strip_prefix(&src).unwrap().to_path_buf();
            let first = relative.components().next().unwrap();
            let module = first
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            let text: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .map(|l| format!("{l}\n"))
                .collect();
            (module, relative, text)
        })
        .collect()
}

/// Top-level module → the top-level modules it names as `crate::...`.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, _, text) in code() {
        if module == "lib" || module == "main" {
            continue;
        }
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name != module {
                edges.entry(module.clone()).or_default().insert(name);
            }
        }
    }
    edges
}

/// A cycle among `edges`, if there is one (depth-first search).
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, edges, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut Vec::new(), &mut done))
}

#[test]
fn the_modules_depend_on_each_other_without_a_cycle() {
    let edges = dependencies();
    assert!(edges.contains_key("stages") && edges.contains_key("kafka"));
    assert_eq!(cycle(&edges), None, "{edges:#?}");
    // The check finds a planted cycle.
    let mut planted = edges.clone();
    planted
        .entry("config".into())
        .or_default()
        .insert("kafka".into());
    assert!(cycle(&planted).is_some());
}

#[test]
fn only_kafka_talks_to_librdkafka() {
    let outside: Vec<PathBuf> = code()
        .into_iter()
        .filter(|(module, _, text)| module != "kafka" && text.contains("rdkafka::"))
        .map(|(_, path, _)| path)
        .collect();
    assert!(
        outside.is_empty(),
        "rdkafka used outside kafka/: {outside:?}"
    );
}
