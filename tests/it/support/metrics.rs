//! `/metrics` read as Prometheus text.

use prometheus_parse::{Sample, Scrape, Value};

use super::app::TestApp;

/// `/metrics` of `app`, parsed (200 and Prometheus text asserted).
pub async fn scrape(app: &TestApp) -> Scrape {
    let r = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = r.text().await.unwrap();
    if std::env::var("SHOW_METRICS").is_ok() {
        eprintln!("{text}");
    }
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("the exposition parses")
}

/// The sample of `name` with `labels`, if any.
pub fn find<'a>(scrape: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    scrape.samples.iter().find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
}

/// A counter's or gauge's value; 0 for a counter that has not been created yet.
pub fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    match find(scrape, name, labels).map(|s| &s.value) {
        Some(Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v)) => *v,
        Some(other) => panic!("{name} is not a number: {other:?}"),
        None => 0.0,
    }
}
