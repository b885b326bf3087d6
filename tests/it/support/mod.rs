//! Helpers shared by the integration tests.

/// The one way a test runs on both storage backends: each `NAME` (an
/// `async fn NAME(backend: &'static str)`) becomes the tests `NAME::sqlite` and
/// `NAME::postgres`; `TEST => NAME` names the pair `TEST`; `store: NAME, ...` runs
/// `async fn NAME(store: &Store)` on a fresh database of each backend.
macro_rules! on_both_backends {
    (store: $($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let db = crate::support::db::TestDb::by_backend("sqlite").await;
                super::$name(&db.store).await;
                db.cleanup().await;
            }
            #[tokio::test]
            async fn postgres() {
                let db = crate::support::db::TestDb::by_backend("postgres").await;
                super::$name(&db.store).await;
                db.cleanup().await;
            }
        }
    )*};
    ($test:ident => $name:ident) => {
        mod $test {
            #[tokio::test]
            async fn sqlite() {
                super::$name("sqlite").await;
            }
            #[tokio::test]
            async fn postgres() {
                super::$name("postgres").await;
            }
        }
    };
    ($($name:ident),* $(,)?) => {$(on_both_backends!($name => $name);)*};
}

pub mod admin;
pub mod app;
pub mod browser;
pub mod catalog;
pub mod chain;
pub mod db;
pub mod metrics;
pub mod nginx;
pub mod process;
pub mod rpc_proxy;
pub mod sse;
pub mod thirty_payments;
pub mod watch;
pub mod webhook_receiver;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

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

/// Polls `check` every `every` until it answers `Some`, and returns that; past `within`, the
/// test fails naming `what` (the one way the suite waits for something to happen).
pub async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    within: Duration,
    every: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(done) = check().await {
            return done;
        }
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(every).await;
    }
}

/// Every `.rs` file below `dir` (the docs and architecture tests read the sources).
pub fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}
