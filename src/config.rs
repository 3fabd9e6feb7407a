//! `relink.toml`: options kept with a corpus. Precedence: command line, then the corpus's
//! `relink.toml`, then the built-in defaults.
//!
//! ```toml
//! # <corpus>/relink.toml
//! k = 5
//! half-life-after = 14
//! exclude-same-provider = true
//! search = "exact"          # auto | exact | hnsw
//! precision = "bf16"        # auto | fp32 | bf16
//! model = "/opt/models/all-MiniLM-L6-v2"
//! cache = "/var/cache/relink/archive"
//! batch-size = 16
//! block-domains = ["spam.example"]   # editorial rules, see crate::editorial::Rules
//! block-urls = ["https://example.com/retracted"]
//! max-age-days = 365
//! ```

use std::path::{Path, PathBuf};

use crate::editorial::Rules;
use crate::embed::Precision;
use crate::index::SearchMode;
use crate::rank::{RankOptions, RankOverrides};

/// Name of the options file looked for in the corpus folder.
pub const FILE_NAME: &str = "relink.toml";

/// Options read from a `relink.toml`; fields it does not set are `None`.
#[derive(Clone, Debug, Default)]
pub struct FileConfig {
    pub path: Option<PathBuf>,
    /// The ranking options the file sets.
    pub rank: RankOverrides,
    pub search: Option<SearchMode>,
    pub precision: Option<Precision>,
    pub model: Option<PathBuf>,
    pub cache: Option<PathBuf>,
    pub batch_size: Option<usize>,
    /// Corpus-wide editorial rules.
    pub rules: Rules,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ConfigError {
    pub path: PathBuf,
    pub reason: String,
}

/// The folder whose `relink.toml` applies to the corpus at `corpus`.
pub fn config_dir(corpus: &Path) -> PathBuf {
    if corpus.is_dir() {
        corpus.to_path_buf()
    } else {
        corpus.parent().map(Path::to_path_buf).unwrap_or_default()
    }
}

impl FileConfig {
    /// Reads `relink.toml` from the corpus's folder, if there is one. Relative paths in it are
    /// taken from that folder.
    pub fn load(corpus: &Path) -> Result<FileConfig, ConfigError> {
        let dir = config_dir(corpus);
        let path = dir.join(FILE_NAME);
        let text = match crate::fsutil::read_regular_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileConfig::default()),
            Err(e) => {
                return Err(ConfigError {
                    path,
                    reason: e.to_string(),
                })
            }
        };
        let err = |reason: String| ConfigError {
            path: path.clone(),
            reason,
        };
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| err(e.to_string().trim().to_string()))?;
        let mut cfg = FileConfig {
            path: Some(path.clone()),
            ..FileConfig::default()
        };
        for (key, value) in table {
            let plain = match &value {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let strings = |value: &toml::Value| -> Result<Vec<String>, ConfigError> {
                let items = match value {
                    toml::Value::String(s) => vec![s.clone()],
                    toml::Value::Array(items) => items
                        .iter()
                        .map(|v| v.as_str().map(str::to_string))
                        .collect::<Option<Vec<String>>>()
                        .ok_or_else(|| err(format!("{key}: expected a list of strings")))?,
                    _ => return Err(err(format!("{key}: expected a list of strings"))),
                };
                Ok(items.into_iter().filter(|s| !s.trim().is_empty()).collect())
            };
            match key.as_str() {
                "block-domains" => cfg.rules.block_domains = strings(&value)?,
                "block-urls" => cfg.rules.block_urls = strings(&value)?,
                "max-age-days" => {
                    let days = value
                        .as_float()
                        .or_else(|| value.as_integer().map(|n| n as f64))
                        .filter(|d| d.is_finite() && *d >= 0.0)
                        .ok_or_else(|| {
                            err(format!(
                                "max-age-days = {plain}: expected a number of days, 0 or more"
                            ))
                        })?;
                    cfg.rules.max_age_days = Some(days);
                }
                "search" => cfg.search = Some(parse_enum(&key, &plain).map_err(err)?),
                "precision" => cfg.precision = Some(parse_enum(&key, &plain).map_err(err)?),
                "model" => cfg.model = Some(dir.join(plain)),
                "cache" => cfg.cache = Some(dir.join(plain)),
                "batch-size" => {
                    let n: usize = plain
                        .parse()
                        .map_err(|e| err(format!("batch-size = {plain}: {e}")))?;
                    check_batch_size(n).map_err(|e| err(format!("batch-size = {plain}: {e}")))?;
                    cfg.batch_size = Some(n);
                }
                _ => {
                    let one = RankOverrides::parse(&key, &plain).map_err(err)?;
                    cfg.rank = cfg.rank.then(&one);
                }
            }
        }
        Ok(cfg)
    }

    /// Applies the file's ranking options to `options`.
    pub fn apply(&self, options: &mut RankOptions) {
        self.rank.apply(options);
    }
}

/// Texts per model batch: at least one, and no more than a batch's memory stays reasonable.
pub fn check_batch_size(n: usize) -> Result<(), String> {
    if (1..=4096).contains(&n) {
        Ok(())
    } else {
        Err("out of range: must be between 1 and 4096".into())
    }
}

fn parse_enum<T: clap::ValueEnum>(key: &str, value: &str) -> Result<T, String> {
    T::from_str(value, true).map_err(|_| {
        let names: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_string()))
            .collect();
        format!("{key} = {value:?}: expected one of {}", names.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_options_and_resolves_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE_NAME),
            "k = 7\nhalf-life-after = 3.5\nexclude-same-provider = true\nsearch = \"hnsw\"\nmodel = \"m\"\n",
        )
        .unwrap();
        let cfg = FileConfig::load(dir.path()).unwrap();
        let mut o = RankOptions::default();
        cfg.apply(&mut o);
        assert_eq!(o.k, 7);
        assert_eq!(o.half_life_after, 3.5);
        assert!(o.exclude_same_provider);
        assert_eq!(cfg.search, Some(SearchMode::Hnsw));
        assert_eq!(cfg.model, Some(dir.path().join("m")));
    }

    #[test]
    fn bad_files_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "k = \"many\"\n").unwrap();
        let e = FileConfig::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("relink.toml") && e.contains("k=many"), "{e}");
        std::fs::write(dir.path().join(FILE_NAME), "search = \"fast\"\n").unwrap();
        let e = FileConfig::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("auto, exact, hnsw"), "{e}");
        std::fs::write(dir.path().join(FILE_NAME), "k = \n").unwrap();
        assert!(FileConfig::load(dir.path()).is_err());
    }

    #[test]
    fn reads_editorial_rules() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE_NAME),
            "block-domains = [\"a.example\", \"b.example\"]\nblock-urls = \"https://c.example/x\"\nmax-age-days = 90\n",
        )
        .unwrap();
        let cfg = FileConfig::load(dir.path()).unwrap();
        assert_eq!(cfg.rules.block_domains, ["a.example", "b.example"]);
        assert_eq!(cfg.rules.block_urls, ["https://c.example/x"]);
        assert_eq!(cfg.rules.max_age_days, Some(90.0));
        for bad in [
            "max-age-days = -1\n",
            "max-age-days = \"old\"\n",
            "block-domains = [1]\n",
        ] {
            std::fs::write(dir.path().join(FILE_NAME), bad).unwrap();
            let e = FileConfig::load(dir.path()).unwrap_err().to_string();
            assert!(e.contains("relink.toml"), "{e}");
        }
    }

    #[test]
    fn no_file_is_no_options() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = FileConfig::load(dir.path()).unwrap();
        assert!(cfg.path.is_none() && cfg.rank.k.is_none() && cfg.rank.pool.is_none());
    }
}
