//! Helpers shared by the integration tests.

pub mod app;
pub mod browser;
pub mod chain;
pub mod db;
pub mod nginx;
pub mod process;
pub mod rpc_proxy;
pub mod sse;
pub mod webhook_receiver;

use std::path::{Path, PathBuf};
use std::process::Output;

/// Runs the paywatch binary with `args`, with no PAYWATCH__ overrides from the caller's env.
pub fn paywatch(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_paywatch"));
    cmd.args(args);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("PAYWATCH__")) {
        cmd.env_remove(k);
    }
    cmd.envs(envs.iter().copied());
    cmd.output().expect("the paywatch binary runs")
}

/// `paywatch` with `args`, off the test's runtime: an in-process server beside it must go on
/// serving (and finish its transactions) while the command waits on the same database.
pub async fn paywatch_beside_server(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        paywatch(&args, &[])
    })
    .await
    .expect("the command ran")
}

/// A seed for a randomized test: `PAYWATCH_TEST_SEED` when set (to replay a failure), else a
/// fresh one; printed either way, so a failing run names the seed that replays it.
pub fn test_seed(what: &str) -> u64 {
    let seed = std::env::var("PAYWATCH_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("{what} seed: {seed} (replay with PAYWATCH_TEST_SEED={seed})");
    seed
}

pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("temp file is writable");
    path
}
