//! The docs name what the code exposes and say what works (issue 37): every metric paywatch
//! registers is documented, every config key it reads is in docs/OPERATIONS.md's reference, and
//! the README's five-step walk-through pays an order on a devnet when run as written.

use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The text of `file` from the line starting with `heading` to the next heading of its level.
fn section(file: &str, heading: &str) -> String {
    let text = std::fs::read_to_string(root().join(file)).unwrap();
    let start = text.find(&format!("\n{heading}\n")).unwrap_or_else(|| panic!("{file} has no {heading:?}"));
    let level = heading.split(' ').next().unwrap();
    let body = &text[start + heading.len() + 2..];
    let end = body.find(&format!("\n{level} ")).unwrap_or(body.len());
    body[..end].to_string()
}

/// The metric names in the code: `telemetry.rs` constants and names written straight into a
/// `gauge!`, `counter!` or `histogram!` call.
fn metric_names() -> Vec<String> {
    let mut files = Vec::new();
    crate::support::rust_files(&root().join("src"), &mut files);
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

/// The webhook event types the code emits: string literals `"order.…"`, `"app.…"`, `"funds.…"`,
/// `"payment.…"` and `"refund.…"` in `src/`.
fn event_types() -> Vec<String> {
    let mut files = Vec::new();
    crate::support::rust_files(&root().join("src"), &mut files);
    let mut types = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for piece in text.split('"').skip(1).step_by(2) {
            let Some((kind, name)) = piece.split_once('.') else { continue };
            let known = ["order", "app", "funds", "payment", "refund"].contains(&kind);
            if known && !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                types.push(piece.to_string());
            }
        }
    }
    types.sort();
    types.dedup();
    types
}

#[test]
fn every_event_type_is_in_the_api_doc() {
    let types = event_types();
    assert!(types.len() >= 10 && types.contains(&"order.stock_short".to_string()), "the reader finds them: {types:?}");
    let api = std::fs::read_to_string(root().join("docs/API.md")).unwrap();
    let missing: Vec<&String> = types.iter().filter(|t| !api.contains(&format!("`{t}`"))).collect();
    assert!(missing.is_empty(), "event types the code emits that docs/API.md does not name: {missing:?}");
}

/// Every key the config structs accept (`deny_unknown_fields` structs and enums of
/// `src/config/`), as `(type, key)`; the top-level `Config`'s keys are its sections.
fn config_keys() -> Vec<(String, String)> {
    let mut keys = Vec::new();
    let mut files = Vec::new();
    crate::support::rust_files(&root().join("src/config"), &mut files);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !line.contains("deny_unknown_fields") {
                continue;
            }
            if let Some(tag) = line.split("tag = \"").nth(1) {
                keys.push(("tag".into(), tag.split('"').next().unwrap().to_string()));
            }
            let header = lines[i + 1..].iter().find(|l| l.starts_with("pub ")).unwrap();
            let name = header.split_whitespace().nth(2).unwrap().to_string();
            let mut skip_next = false;
            for body in lines[i + 2..].iter().take_while(|l| **l != "}") {
                let body = body.trim();
                if body.starts_with("#[serde(skip)]") {
                    skip_next = true;
                    continue;
                }
                if body.starts_with("//") || body.starts_with('#') {
                    continue;
                }
                let field = body.rsplit("{ ").next().unwrap().trim_start_matches("pub ");
                let key: String =
                    field.chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
                if !key.is_empty() && field[key.len()..].starts_with(':') && !std::mem::take(&mut skip_next) {
                    keys.push((name.clone(), key));
                }
            }
        }
    }
    keys
}

#[test]
fn every_config_key_is_in_the_reference() {
    let keys = config_keys();
    for (owner, key) in
        [("Config", "chains"), ("ChainConfig", "x402_network"), ("PriceConfig", "usd"), ("tag", "source")]
    {
        assert!(keys.contains(&(owner.into(), key.into())), "the key reader finds {owner}.{key}: {keys:?}");
    }
    assert!(!keys.iter().any(|(_, k)| k == "book"), "a skipped field is no key");
    let reference = section("docs/OPERATIONS.md", "### Configuration reference");
    let missing: Vec<String> = keys
        .iter()
        .filter(|(owner, key)| {
            let named = if owner == "Config" { format!("`[{key}") } else { format!("`{key}`") };
            !reference.contains(&named)
        })
        .map(|(owner, key)| format!("{owner}.{key}"))
        .collect();
    assert!(
        missing.is_empty(),
        "config keys the code reads that docs/OPERATIONS.md's reference does not name: {missing:?}"
    );
}

/// The shell blocks of the README's walk-through, each as a copy-and-paste would give it.
fn walk_through_steps() -> Vec<String> {
    let text = section("README.md", "## Your first payment, on the devnet");
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in text.lines() {
        match (line.trim(), current.as_mut()) {
            ("```sh", None) => current = Some(Vec::new()),
            ("```", Some(_)) => blocks.push(current.take().unwrap().join("\n")),
            (_, Some(block)) => block.push(line.strip_prefix("   ").unwrap_or(line)),
            _ => {}
        }
    }
    blocks
}

/// Step 1 (`make run`) is the devnet this test starts in the folder's `.devnet`; steps 2-5 run
/// in bash as written, from that folder (with the repository's `tools/`). The order and the
/// app are then read back by the test itself.
#[tokio::test]
async fn the_readme_walk_through_pays_an_order_on_the_devnet() {
    let steps = walk_through_steps();
    assert_eq!(steps.len(), 5, "the walk-through has five steps: {steps:?}");
    assert_eq!(steps[0].trim(), "make run");
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(root().join("tools"), dir.path().join("tools")).unwrap();
    let (devnet, info) = crate::support::process::spawn_devnet(&dir.path().join(".devnet")).await;

    let script = format!("set -eo pipefail\n{}\necho \"APP=$APP ORDER_ID=$ORDER_ID\"\n", steps[1..].join("\n"));
    let run = tokio::process::Command::new("bash").arg("-c").arg(&script).current_dir(dir.path()).output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), run)
        .await
        .expect("the walk-through ends within two minutes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the walk-through failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));

    let ids = stdout.lines().last().unwrap();
    let id = |name: &str| ids.split(&format!("{name}=")).nth(1).unwrap().split(' ').next().unwrap().to_string();
    let (app, order) = (id("APP"), id("ORDER_ID"));
    let (api, team, key) =
        (info["api_url"].as_str().unwrap(), info["team_id"].as_str().unwrap(), info["api_key"].as_str().unwrap());
    let client = reqwest::Client::new();
    let read = |path: String| {
        let request = client.get(format!("{api}{path}")).bearer_auth(key);
        async move { request.send().await.unwrap().json::<serde_json::Value>().await.unwrap() }
    };
    let order = read(format!("/v2alpha/teams/{team}/orders/{order}")).await;
    assert_eq!(order["status"], "paid", "{order}");
    assert_eq!(order["pay_method"], "USDT_ERC20", "{order}");
    let app = read(format!("/v2alpha/teams/{team}/apps/{app}")).await;
    assert_eq!(app["status"], "active", "{app}");
    assert!(devnet.stop().await.success());
}
