//! Helpers shared by the integration tests.

pub mod app;
pub mod browser;
pub mod chain;
pub mod db;
pub mod process;
pub mod sse;

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

pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("temp file is writable");
    path
}
