//! The layer drawing of docs/ARCHITECTURE.md, checked against the imports: every `crate::`
//! path in `src/` (outside `#[cfg(test)]` code) names a module of a lower layer, or its own
//! top module. A new import against the drawing fails here with the file and the path.

use std::path::Path;

/// Lowest first; a path prefix takes the layer of its longest listed prefix. Leaves import
/// nothing of the crate.
const LAYERS: &[&[&str]] = &[
    &["money", "redact", "telemetry", "webhooks::sign", "catalog::products"],
    &["config"],
    &["store"],
    &["chain"],
    &["payments"],
    &["watcher"],
    &["live", "jobs", "webhooks", "overview", "catalog"],
    &["api"],
    &["startup"],
    &["devnet"],
    &["cli"],
];

fn layer_of(path: &str) -> Option<(usize, &'static str)> {
    let mut best: Option<(usize, &'static str)> = None;
    for (rank, names) in LAYERS.iter().enumerate() {
        for name in names.iter() {
            let matches = path == *name || path.starts_with(&format!("{name}::"));
            if matches && best.is_none_or(|(_, b)| name.len() > b.len()) {
                best = Some((rank, name));
            }
        }
    }
    best
}

fn module_path(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).filter(|p| *p != "mod").collect();
    parts.join("::")
}

/// The `crate::` paths a piece of code names, `crate::{a, b::c}` spelled out.
fn crate_paths(code: &str) -> Vec<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            found.extend(group[..end].split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()));
        } else {
            let end = rest.find(|c: char| !ident(c)).unwrap_or(rest.len());
            found.push(rest[..end].trim_end_matches(':').to_string());
        }
    }
    found
}

#[test]
fn every_import_follows_the_layer_drawing() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    crate::support::rust_files(&src, &mut files);
    let mut against = Vec::new();
    let mut checked = 0;
    for file in &files {
        let module = module_path(&src, file);
        if module == "main" || module == "lib" {
            continue;
        }
        let (rank, own) = layer_of(&module).unwrap_or_else(|| panic!("{module} is in no layer of the drawing"));
        let text = std::fs::read_to_string(file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        let code: String = code.lines().map(|l| l.split("//").next().unwrap()).collect::<Vec<_>>().join("\n");
        for path in crate_paths(&code) {
            checked += 1;
            let top = |p: &str| p.split("::").next().unwrap().to_string();
            if own.split("::").count() == 1 && top(&path) == top(own) {
                continue; // within its own top module
            }
            if path.starts_with(own) {
                continue;
            }
            match layer_of(&path) {
                Some((r, _)) if r < rank => {}
                _ if rank == 0 => against.push(format!("{module} is a leaf and imports crate::{path}")),
                Some((r, name)) => {
                    against.push(format!("{module} (layer {rank}) imports crate::{path} ({name}, layer {r})"))
                }
                None => against.push(format!("{module} imports crate::{path}, which is in no layer")),
            }
        }
    }
    assert!(checked > 200, "the check read only {checked} imports: is it reading src/?");
    assert!(against.is_empty(), "imports against docs/ARCHITECTURE.md's drawing:\n{}", against.join("\n"));
}

#[test]
fn the_import_reader_sees_grouped_and_plain_paths() {
    assert_eq!(crate_paths("use crate::{devnet, startup};"), ["devnet", "startup"]);
    assert_eq!(crate_paths("let x = crate::chain::rpc::describe(e);"), ["chain::rpc::describe"]);
    assert_eq!(layer_of("webhooks::sign").unwrap().0, 0);
    assert_eq!(layer_of("webhooks::deliver").unwrap().0, 6);
    assert!(layer_of("payments::credit").unwrap().0 > layer_of("chain::status").unwrap().0);
}

/// The books' tables and the store module that holds each one's SQL. Only that module writes
/// the table, and only `payments` (the ledger: docs/ARCHITECTURE.md, "One writer of the
/// books") calls the functions that do.
const BOOKS: &[(&str, &str)] = &[("orders", "orders"), ("stray_funds", "stray_funds"), ("refunds", "refunds")];

fn writes_a_book(sql: &str) -> Option<&'static str> {
    let sql = sql.to_ascii_uppercase();
    BOOKS.iter().map(|(table, _)| *table).find(|table| {
        let t = table.to_ascii_uppercase();
        [format!("INSERT INTO {t} "), format!("UPDATE {t} "), format!("DELETE FROM {t} ")]
            .iter()
            .any(|w| sql.contains(w))
    })
}

/// (name, body) of each function of a file, `pub` or not.
fn functions(text: &str) -> Vec<(String, bool, String)> {
    let mut found = Vec::new();
    let starts: Vec<usize> = text
        .match_indices("fn ")
        .map(|(i, _)| i)
        .filter(|&i| i == 0 || !text.as_bytes()[i - 1].is_ascii_alphanumeric() && text.as_bytes()[i - 1] != b'_')
        .collect();
    for (n, &at) in starts.iter().enumerate() {
        let rest = &text[at + 3..];
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        let end = starts.get(n + 1).copied().unwrap_or(text.len());
        let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let public = text[line_start..at].trim_start().starts_with("pub ");
        found.push((name, public, text[at..end].to_string()));
    }
    found
}

/// The public functions of a store module that write a book, directly or through its own
/// private helpers.
fn writers_in(text: &str) -> Vec<String> {
    let fns = functions(text);
    let mut writing: Vec<String> =
        fns.iter().filter(|(_, _, body)| writes_a_book(body).is_some()).map(|f| f.0.clone()).collect();
    loop {
        let more: Vec<String> = fns
            .iter()
            .filter(|(name, _, body)| {
                !writing.contains(name) && writing.iter().any(|w| body.contains(&format!("{w}(")))
            })
            .map(|f| f.0.clone())
            .collect();
        if more.is_empty() {
            break;
        }
        writing.extend(more);
    }
    fns.iter().filter(|(name, public, _)| *public && writing.contains(name)).map(|f| f.0.clone()).collect()
}

/// The names under which `code` can call store module `module`'s functions.
fn aliases_of(code: &str, module: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("store::") {
        rest = &rest[at + "store::".len()..];
        let items: Vec<String> = if let Some(group) = rest.strip_prefix('{') {
            group[..group.find('}').unwrap_or(group.len())].split(',').map(|p| p.trim().to_string()).collect()
        } else {
            vec![rest[..rest.find([';', '\n', '(']).unwrap_or(rest.len())].trim().to_string()]
        };
        for item in items {
            if item == module || item.starts_with(&format!("{module}::{{self")) {
                names.push(module.to_string());
            } else if let Some(alias) = item.strip_prefix(&format!("{module} as ")) {
                names.push(alias.trim().to_string());
            }
        }
    }
    names
}

/// The names `code` imports from store module `module` by `store::module::{a, b}` or
/// `store::module::a`.
fn imported_from(code: &str, module: &str) -> Vec<String> {
    let prefix = format!("store::{module}::");
    let mut names = Vec::new();
    for (at, _) in code.match_indices(&prefix) {
        let rest = &code[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            names.extend(group.split(',').map(|p| p.trim().split(" as ").next().unwrap().to_string()));
        } else if code[..at].trim_end().ends_with("use crate::") {
            names.push(rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect());
        }
    }
    names
}

#[test]
fn only_the_ledger_writes_the_books() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut writers = Vec::new();
    for (_, module) in BOOKS {
        let text = std::fs::read_to_string(src.join("store").join(format!("{module}.rs"))).unwrap();
        let names = writers_in(&text);
        assert!(names.len() >= 3, "store::{module} has only {names:?} as writers: is the reader broken?");
        writers.push((*module, names));
    }
    let mut files = Vec::new();
    crate::support::rust_files(&src, &mut files);
    let mut against = Vec::new();
    for file in &files {
        let module = module_path(&src, file);
        let text = std::fs::read_to_string(file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        let code: String = code.lines().map(|l| l.split("//").next().unwrap()).collect::<Vec<_>>().join("\n");
        let store_module = module.strip_prefix("store::");
        for (name, _, body) in functions(&code) {
            if let Some(table) = writes_a_book(&body)
                && store_module != BOOKS.iter().find(|b| b.0 == table).map(|b| b.1)
            {
                against.push(format!("{module}::{name} writes table {table} (its SQL belongs in store::{table})"));
            }
        }
        if module.starts_with("payments") || module.starts_with("store") {
            continue;
        }
        for (book, names) in &writers {
            let mut calls: Vec<String> = aliases_of(&code, book).iter().map(|a| format!("{a}::")).collect();
            calls.push(format!("store::{book}::"));
            for name in names {
                let imported = imported_from(&code, book).contains(name);
                if imported || calls.iter().any(|c| code.contains(&format!("{c}{name}("))) {
                    against.push(format!(
                        "{module} calls store::{book}::{name}, a writer of the books: go through payments"
                    ));
                }
            }
        }
    }
    assert!(
        against.is_empty(),
        "writes to the books outside the ledger (docs/ARCHITECTURE.md):\n{}",
        against.join("\n")
    );
}

#[test]
fn the_writer_reader_finds_writers_and_their_callers() {
    let store = "pub async fn a() { sqlx::query(\"UPDATE refunds SET status = 'x'\") }\n\
                 async fn helper() { sqlx::query(\"DELETE FROM stray_funds WHERE x\") }\n\
                 pub async fn b() { helper().await }\npub async fn c() { sqlx::query(\"SELECT 1 FROM refunds\") }\n";
    assert_eq!(writers_in(store), ["a", "b"]);
    assert_eq!(aliases_of("use crate::store::{Store, refunds as rows};", "refunds"), ["rows"]);
    assert_eq!(aliases_of("use crate::store::{refunds, orders};", "orders"), ["orders"]);
    assert_eq!(aliases_of("use crate::store::refunds::{self, Intent};", "refunds"), ["refunds"]);
    assert!(aliases_of("use crate::payments::refunds;", "refunds").is_empty());
    assert_eq!(imported_from("use crate::store::refunds::{Intent, approve as ok};", "refunds"), ["Intent", "approve"]);
}
