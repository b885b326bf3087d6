//! Finding and running anvil, for `paywatch devnet` and the tests. The child dies with us:
//! it is killed on drop, and on Linux also when this process dies (parent-death signal).
//! Each anvil gets its own `HOME` in a temporary folder removed on drop: anvil writes states it
//! pushes out of memory under `$HOME/.foundry/anvil/tmp` and a killed anvil leaves them there
//! (17 GB after one catch-up bench, a full disk after a few).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// The version `make` pins into tools/ (npm `@foundry-rs/anvil`).
pub const PINNED_VERSION: &str = "1.7.1";

/// `$ANVIL_BIN` when set, then `anvil` on PATH, then the project's pinned tools folder.
pub fn find() -> anyhow::Result<PathBuf> {
    find_candidate().map(|found| native_binary(&found).unwrap_or(found))
}

fn find_candidate() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("ANVIL_BIN") {
        let bin = PathBuf::from(bin);
        if bin.is_file() {
            return Ok(bin);
        }
        bail!("ANVIL_BIN={} is not a file", bin.display());
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("anvil");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    let pinned =
        ["tools/node_modules/.bin/anvil", concat!(env!("CARGO_MANIFEST_DIR"), "/tools/node_modules/.bin/anvil")];
    for p in pinned {
        if Path::new(p).is_file() {
            return Ok(PathBuf::from(p));
        }
    }
    bail!(
        "anvil not found: set ANVIL_BIN, put anvil on PATH, or run `make tools` (npm @foundry-rs/anvil@{PINNED_VERSION})"
    )
}

/// npm's `anvil` is a Node launcher that starts the native binary of a platform package
/// beside it; killing the launcher would orphan that binary, so run the binary itself.
/// None when `launcher` is not npm's (a native anvil already).
fn native_binary(launcher: &Path) -> Option<PathBuf> {
    let head = std::fs::read(launcher).ok()?;
    if !head.starts_with(b"#!") {
        return None;
    }
    let real = std::fs::canonicalize(launcher).ok()?; // node_modules/@foundry-rs/anvil/bin.mjs
    let scope = real.parent()?.parent()?; // node_modules/@foundry-rs
    std::fs::read_dir(scope)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("anvil-"))
        .map(|e| e.path().join("bin").join("anvil"))
        .find(|bin| bin.is_file())
}

pub struct Anvil {
    child: Child,
    /// The child's `HOME`; declared after `child`, so removed after the kill is sent.
    home: tempfile::TempDir,
    port: u16,
    chain_id: u64,
    options: AnvilOptions,
}

#[derive(Debug, Clone)]
pub struct AnvilOptions {
    /// 0 picks a free port.
    pub port: u16,
    pub chain_id: u64,
    /// Milliseconds between blocks; `None` mines one block per transaction.
    pub block_time_ms: Option<u64>,
    /// Load and dump state here (survives an anvil restart).
    pub state: Option<PathBuf>,
}

impl Default for AnvilOptions {
    fn default() -> Self {
        Self { port: 0, chain_id: 31337, block_time_ms: None, state: None }
    }
}

impl Anvil {
    pub async fn spawn(mut options: AnvilOptions) -> anyhow::Result<Self> {
        let port = if options.port == 0 { free_port()? } else { options.port };
        options.port = port;
        let home = tempfile::Builder::new().prefix("paywatch-anvil-home-").tempdir().context("anvil's HOME")?;
        let child = Self::start_child(&options, home.path())?;
        let mut anvil = Self { child, home, port, chain_id: options.chain_id, options };
        anvil.wait_ready().await?;
        Ok(anvil)
    }

    /// The anvil process's id while it runs (tests pause it with SIGSTOP).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    fn start_child(options: &AnvilOptions, home: &Path) -> anyhow::Result<Child> {
        let bin = find()?;
        let port = options.port;
        let mut cmd = Command::new(&bin);
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string(), "--chain-id", &options.chain_id.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env("HOME", home)
            .kill_on_drop(true);
        if let Some(ms) = options.block_time_ms {
            cmd.args(["--block-time", &format!("{}.{:03}", ms / 1000, ms % 1000)]);
        }
        if let Some(state) = &options.state {
            cmd.arg("--state").arg(state);
        }
        #[cfg(target_os = "linux")]
        // SAFETY: prctl is async-signal-safe and touches only the child being set up.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        cmd.spawn().with_context(|| format!("starting {}", bin.display()))
    }

    /// Stops anvil (dumping `--state`) and starts it again on the same port: an RPC outage.
    pub async fn restart_after(&mut self, down_for: Duration) -> anyhow::Result<()> {
        self.pause().await?;
        tokio::time::sleep(down_for).await;
        self.resume().await
    }

    /// Stops anvil (dumping `--state`) until [`Anvil::resume`]: an RPC outage of any length.
    pub async fn pause(&mut self) -> anyhow::Result<()> {
        self.terminate().await
    }

    /// Starts a paused anvil again on the same port, from its state.
    pub async fn resume(&mut self) -> anyhow::Result<()> {
        self.child = Self::start_child(&self.options, self.home.path())?;
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let provider = crate::chain::rpc::http_provider(&self.rpc_url())?;
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait()? {
                bail!("anvil exited at start ({status}); is port {} taken?", self.port);
            }
            if alloy::providers::Provider::get_chain_id(&provider).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("anvil did not answer on port {} within 30 s", self.port)
    }

    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// Stops anvil with SIGTERM (so `--state` is dumped) and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.terminate().await
    }

    async fn terminate(&mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            // SAFETY: sending a signal to our own child's pid.
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM);
            }
        }
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => self.child.kill().await?,
        }
        Ok(())
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// anvil's well-known development accounts (mnemonic "test test … junk"): public test keys.
pub mod accounts {
    pub const DEPLOYER_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    pub const PAYER_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
    pub const TREASURY_KEY: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";
    pub const OTHER_PAYER_KEY: &str = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";
    /// The relayer of gasless payments (account 4).
    pub const RELAYER_KEY: &str = "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a";
}
