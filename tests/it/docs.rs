//! The docs name what the code exposes: every metric paywatch registers is documented in
//! README.md or docs/*.md (issue 37).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The metric names in the code: `telemetry.rs` constants and names written straight into a
/// `gauge!`, `counter!` or `histogram!` call.
fn metric_names() -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut names = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines() {
            let is_metric = line.contains("gauge!(\"paywatch_")
                || line.contains("counter!(\"paywatch_")
                || line.contains("histogram!(\"paywatch_")
                || (file.ends_with("telemetry.rs") && line.trim_start().starts_with("pub const"));
            if !is_metric {
                continue;
            }
            if let Some(start) = line.find("\"paywatch_") {
                let rest = &line[start + 1..];
                let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                names.push(name);
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

#[test]
fn every_metric_is_documented() {
    let names = metric_names();
    assert!(names.len() >= 20, "the metric reader finds the metrics: {names:?}");
    let mut docs = std::fs::read_to_string(root().join("README.md")).unwrap();
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push_str(&std::fs::read_to_string(path).unwrap());
        }
    }
    let missing: Vec<&String> = names.iter().filter(|n| !docs.contains(n.as_str())).collect();
    assert!(missing.is_empty(), "metrics in the code that no doc names: {missing:?}");
}
