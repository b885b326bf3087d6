//! Reading the layers and turning figment's errors into one line that names the key.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};

use super::Config;

/// A configuration problem, one line long, naming the key at fault.
#[derive(Debug, thiserror::Error)]
#[error("config: {0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    pub fn key(key: &str, problem: impl std::fmt::Display) -> Self {
        Self(format!("`{key}`: {problem}"))
    }
}

/// The file, then `PAYWATCH__SECTION__KEY` variables (`__` separates levels).
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    if !path.is_file() {
        return Err(ConfigError(format!("file {} not found", path.display())));
    }
    Figment::new()
        .merge(Toml::file_exact(path))
        .merge(Env::prefixed("PAYWATCH__").split("__"))
        .extract::<Config>()
        .map_err(|e| one_line(e, path))
}

fn one_line(err: figment::Error, path: &Path) -> ConfigError {
    // figment may carry several errors; the first is enough to act on.
    let Some(e) = err.into_iter().next() else {
        return ConfigError(format!("{} could not be read", path.display()));
    };
    // For an unknown field the path already ends with the field's name.
    let key = e.path.join(".");
    let from_env = e.metadata.as_ref().is_some_and(|md| md.name.contains("PAYWATCH"));
    let origin = if from_env {
        let var = e.path.iter().map(|k| k.to_ascii_uppercase()).collect::<Vec<_>>().join("__");
        format!(" (from env PAYWATCH__{var})")
    } else {
        format!(" (in {})", path.display())
    };
    let kind = e.kind.to_string().replace('\n', " ");
    if key.is_empty() {
        ConfigError(format!("{kind}{origin}"))
    } else {
        ConfigError(format!("`{key}`: {kind}{origin}"))
    }
}
