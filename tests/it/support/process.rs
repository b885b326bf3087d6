//! `paywatch serve` and `paywatch devnet` as separate processes, for tests that kill them or
//! talk to them as a newcomer would.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::{Child, Command};

pub struct ServeProcess {
    child: Child,
    pub base: String,
}

impl ServeProcess {
    /// Starts `paywatch serve` with `config`, listening on `port`, and waits for /healthz.
    pub async fn start(config: &Path, port: u16) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_paywatch"))
            .args(["serve", "--config"])
            .arg(config)
            .env("PAYWATCH__SERVER__LISTEN", format!("127.0.0.1:{port}"))
            // PAYWATCH_SERVE_LOG raises it to follow a soak's processes (e.g. `info`).
            .env("PAYWATCH_LOG", std::env::var("PAYWATCH_SERVE_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("paywatch serve starts");
        let mut p = Self { child, base: format!("http://127.0.0.1:{port}") };
        p.wait_healthy().await;
        p
    }

    async fn wait_healthy(&mut self) {
        let started = Instant::now();
        loop {
            assert!(self.child.try_wait().unwrap().is_none(), "paywatch serve exited at start");
            if self.health().await.is_some() {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "paywatch serve did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn health(&self) -> Option<Value> {
        let r = reqwest::get(format!("{}/healthz", self.base)).await.ok()?;
        r.json().await.ok()
    }

    /// Whether this process currently runs the watcher.
    pub async fn is_watching(&self) -> bool {
        self.health().await.is_some_and(|h| h["watcher"] == "active")
    }

    /// SIGTERM, then waits for the process to exit; returns how long that took.
    pub async fn sigterm(mut self) -> Duration {
        let pid = self.child.id().expect("the process is running") as i32;
        let sent = Instant::now();
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let status = tokio::time::timeout(Duration::from_secs(120), self.child.wait()).await;
        assert!(status.is_ok(), "paywatch serve did not exit within 120 s of SIGTERM");
        sent.elapsed()
    }

    /// SIGKILL: no shutdown, no cleanup.
    pub async fn kill9(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }
}

/// `paywatch devnet` in `dir` (free ports), once its devnet.json is written; returned with it.
pub struct Devnet {
    pub child: Child,
}

pub async fn spawn_devnet(dir: &Path) -> (Devnet, Value) {
    let child = Command::new(env!("CARGO_BIN_EXE_paywatch"))
        .args(["devnet", "--port", "0", "--anvil-port", "0", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("paywatch devnet starts");
    let mut devnet = Devnet { child };
    let info_path = dir.join("devnet.json");
    let info = super::eventually("devnet.json written", Duration::from_secs(120), Duration::from_millis(200), || {
        assert!(devnet.child.try_wait().unwrap().is_none(), "devnet exited before writing devnet.json");
        // Written in one call once the API listens: a partial read is retried.
        let read = std::fs::read_to_string(&info_path).ok().and_then(|t| serde_json::from_str::<Value>(&t).ok());
        async move { read }
    })
    .await;
    (devnet, info)
}

impl Devnet {
    /// SIGTERM (the devnet stops its anvils with it); waits for the exit.
    pub async fn stop(mut self) -> std::process::ExitStatus {
        self.terminate();
        tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await.expect("devnet stops").unwrap()
    }

    fn terminate(&self) {
        if let Some(pid) = self.child.id() {
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
    }
}

impl Drop for Devnet {
    /// A failing test still stops the anvils: SIGTERM, never SIGKILL (which would orphan them).
    fn drop(&mut self) {
        self.terminate();
        let started = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() && started.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
