//! Headless Chromium driven over WebDriver (chromedriver + fantoccini), for the checkout page.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use super::app::{ADMIN_TOKEN, TestApp};

pub struct Browser {
    pub client: Client,
    driver: Child,
}

fn binary(env: &str, default: &str) -> String {
    let path = std::env::var(env).unwrap_or_else(|_| default.to_string());
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is needed for this test and is missing: run `make chromium` (Debian packages chromium and \
         chromium-driver) or set {env}"
    );
    path
}

impl Browser {
    pub async fn start(width: u32, height: u32) -> Browser {
        let chromium = binary("CHROMIUM_BIN", "/usr/bin/chromium");
        let chromedriver = binary("CHROMEDRIVER_BIN", "/usr/bin/chromedriver");
        let port = paywatch::devnet::anvil::free_port().expect("a free port for chromedriver");
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                         "--disable-dev-shm-usage", format!("--window-size={width},{height}")],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            match ClientBuilder::rustls().expect("a TLS setup").capabilities(caps.clone()).connect(&url).await {
                Ok(client) => break client,
                Err(e) if started.elapsed() < Duration::from_secs(20) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("chromedriver on {url} gave no session: {e}"),
            }
        };
        Browser { client, driver }
    }

    /// Saves a PNG of the window under target/screenshots/ and returns its path.
    pub async fn screenshot(&self, name: &str) -> std::path::PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Runs axe-core inside the page; fails listing every serious or critical violation.
pub async fn accessible(browser: &Browser, what: &str) {
    let axe = std::env::var("AXE_JS")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/tools/node_modules/axe-core/axe.min.js").to_string());
    let source = std::fs::read_to_string(&axe)
        .unwrap_or_else(|e| panic!("{axe}: {e}: axe-core is needed for this test (run `make tools`)"));
    browser.client.execute(&source, vec![]).await.expect("axe-core loads in the page");
    let found = browser
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { resultTypes: ['violations'] })
               .then(r => done({ ran: r.passes !== undefined, bad: r.violations
                 .filter(v => v.impact === 'serious' || v.impact === 'critical')
                 .map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at ' + v.nodes.map(n => n.target.join(' ')).join(', ')) }))
               .catch(e => done({ ran: false, bad: [String(e)] }));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(found["ran"], Value::Bool(true), "axe-core ran on {what}: {found}");
    assert_eq!(found["bad"], Value::Array(vec![]), "serious or critical accessibility violations on {what}");
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

pub async fn find(browser: &Browser, css: &str) -> fantoccini::elements::Element {
    match browser.client.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css(css)).await {
        Ok(el) => el,
        Err(e) => panic!("{css} on {}: {e}", path(browser).await),
    }
}

/// Signs in with the admin token and waits for the session cookie (the form's answer sets it;
/// a page opened before that would be sent back to sign-in).
pub async fn signed_in(browser: &Browser, app: &TestApp) {
    sign_in(browser, app, ADMIN_TOKEN).await;
    let started = Instant::now();
    while browser.client.get_named_cookie("paywatch_console").await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "no session after signing in");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn sign_in(browser: &Browser, app: &TestApp, token: &str) {
    browser.client.goto(&format!("{}/console/sign-in", app.base)).await.unwrap();
    find(browser, "#token").await.send_keys(token).await.unwrap();
    find(browser, "form.sign-in button").await.click().await.unwrap();
}

/// The page's path and query.
pub async fn path(browser: &Browser) -> String {
    let url = browser.client.current_url().await.unwrap();
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}
