//! Sentence embeddings: text in, unit-length 384-d vectors out.
//!
//! [`Embedder`] wraps all-MiniLM-L6-v2 through rust-bert's sentence-embeddings pipeline, loaded
//! from a local folder (`model.safetensors` is read directly). [`crate::testing::HashEmbedder`] is
//! a small bag-of-words embedder for tests and scale benches, where the real model would only
//! make them slower. Both implement [`TextEmbedder`], so the pipeline does not care which one it
//! holds.

use std::path::{Path, PathBuf};

use ndarray::Array2;
use rust_bert::pipelines::common::ModelType;
use rust_bert::pipelines::sentence_embeddings::{
    SentenceEmbeddingsConfig, SentenceEmbeddingsModel,
};
use rust_bert::resources::LocalResource;
use tch::{Device, Kind};

/// Files a sentence-transformers model folder must hold for relink to load it.
pub const MODEL_FILES: &[&str] = &[
    "config.json",
    "model.safetensors",
    "modules.json",
    "sentence_bert_config.json",
    "tokenizer_config.json",
    "vocab.txt",
    "1_Pooling/config.json",
];

/// The command that fetches the default model into `models/`.
pub const FETCH_MODEL_HINT: &str = "scripts/fetch-deps.sh model (or `make models`)";

/// Default batch size: measured fastest on 2 cores for ~56-token news texts (see README).
pub const DEFAULT_BATCH_SIZE: usize = 16;

/// Errors from loading or running an embedding model.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("model folder {dir}: missing {file}; fetch the model with {FETCH_MODEL_HINT}")]
    MissingFile { dir: PathBuf, file: String },
    #[error("model folder {dir}: {reason}")]
    BadModel { dir: PathBuf, reason: String },
    #[error("embedding failed: {0}")]
    Run(String),
}

/// Numeric precision the model runs in.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats: the reference.
    Fp32,
    /// bfloat16 weights and activations: ~1.8x faster on CPUs with AVX-512 BF16 or AMX, cosine
    /// to fp32 >= 0.9999.
    Bf16,
    /// bf16 where the CPU computes it natively, fp32 elsewhere.
    Auto,
}

impl Precision {
    /// Resolves `Auto` for this machine.
    pub fn resolve(self) -> Precision {
        match self {
            Precision::Auto if cpu_has_native_bf16() => Precision::Bf16,
            Precision::Auto => Precision::Fp32,
            p => p,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Auto => "auto",
        }
    }
}

/// Whether the CPU has bf16 dot-product instructions; without them libtorch emulates bf16 and is
/// slower than fp32.
pub fn cpu_has_native_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Anything that turns texts into unit-length vectors, one row per text, in input order.
pub trait TextEmbedder {
    /// A stable identifier of the model and its settings; cached vectors are keyed by it.
    fn model_id(&self) -> &str;
    /// Vector dimension.
    fn dim(&self) -> usize;
    /// Embeds `texts`; row `i` is the unit vector of `texts[i]`.
    fn embed(&mut self, texts: &[&str]) -> Result<Array2<f32>, EmbedError>;
}

/// all-MiniLM-L6-v2 (or another BERT sentence-transformers model) through rust-bert.
pub struct Embedder {
    model: SentenceEmbeddingsModel,
    model_id: String,
    dim: usize,
    batch_size: usize,
}

impl Embedder {
    /// Loads the model in `dir` at `precision` (resolved for this CPU), batching `batch_size`
    /// texts at a time.
    pub fn load(
        dir: &Path,
        precision: Precision,
        batch_size: usize,
    ) -> Result<Embedder, EmbedError> {
        Self::load_as(dir, precision, batch_size, None)
    }

    /// [`load`](Self::load), with the identity already computed by [`model_id`].
    pub fn load_as(
        dir: &Path,
        precision: Precision,
        batch_size: usize,
        model_id: Option<String>,
    ) -> Result<Embedder, EmbedError> {
        let model_id = match model_id {
            Some(id) => id,
            None => self::model_id(dir, precision, None)?,
        };
        let precision = precision.resolve();
        crate::alloc::keep_freed_memory();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        tch::set_num_threads(threads as i32);
        let file = |name: &str| -> Box<LocalResource> {
            Box::new(LocalResource {
                local_path: dir.join(name),
            })
        };
        let config = SentenceEmbeddingsConfig {
            modules_config_resource: file("modules.json"),
            transformer_type: ModelType::Bert,
            transformer_config_resource: file("config.json"),
            transformer_weights_resource: file("model.safetensors"),
            pooling_config_resource: file("1_Pooling/config.json"),
            dense_config_resource: None,
            dense_weights_resource: None,
            sentence_bert_config_resource: file("sentence_bert_config.json"),
            tokenizer_config_resource: file("tokenizer_config.json"),
            tokenizer_vocab_resource: file("vocab.txt"),
            tokenizer_merges_resource: None,
            device: Device::Cpu,
            kind: Some(match precision {
                Precision::Bf16 => Kind::BFloat16,
                _ => Kind::Float,
            }),
        };
        // rust-bert panics on some malformed configs instead of returning an error.
        let model = catch_quietly(|| SentenceEmbeddingsModel::new(config)).ok_or_else(|| EmbedError::BadModel {
            dir: dir.to_path_buf(),
            reason: "the model's files could not be read (damaged or not a BERT sentence-transformers model)".into(),
        })?
        .map_err(|e| EmbedError::BadModel {
            dir: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let dim = model
            .get_embedding_dim()
            .map_err(|e| EmbedError::BadModel {
                dir: dir.to_path_buf(),
                reason: e.to_string(),
            })? as usize;
        Ok(Embedder {
            model,
            model_id,
            dim,
            batch_size: batch_size.max(1),
        })
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<f32>, EmbedError> {
        let out = self
            .model
            .encode_as_tensor(texts)
            .map_err(|e| EmbedError::Run(e.to_string()))?;
        let t = out.embeddings.to_kind(Kind::Float).contiguous();
        let mut v = vec![0f32; t.numel()];
        t.copy_data(&mut v, t.numel());
        Ok(v)
    }
}

impl TextEmbedder for Embedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed(&mut self, texts: &[&str]) -> Result<Array2<f32>, EmbedError> {
        let mut out = Array2::<f32>::zeros((texts.len(), self.dim));
        // Batches of similar length carry little padding: sort by token count, embed, and put
        // every row back at its input position.
        let tokenizer = self.model.get_tokenizer();
        let lengths: Vec<usize> = texts.iter().map(|t| tokenizer.tokenize(t).len()).collect();
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| (lengths[i], i));
        for chunk in order.chunks(self.batch_size) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
            let flat = self.embed_batch(&batch)?;
            for (row, &i) in flat.chunks_exact(self.dim).zip(chunk) {
                out.row_mut(i).assign(&ndarray::ArrayView1::from(row));
            }
        }
        // bf16 output is normalised in bf16; normalise again in f32 so every vector is unit length.
        normalize_rows(&mut out);
        Ok(out)
    }
}

/// Files whose content makes up a model's identity.
const IDENTITY_FILES: &[&str] = &[
    "config.json",
    "modules.json",
    "1_Pooling/config.json",
    "vocab.txt",
    "model.safetensors",
];

/// Checks that `dir` holds a loadable model and returns its cache identity: the folder's name,
/// a hash of its configuration, vocabulary and weights, and the precision.
///
/// Hashing the 90 MB of weights costs ~0.15 s, a good part of a warm rerun, so with `memo` the
/// hash is remembered in that file, keyed by each identity file's path, size and modification
/// time: a model changed in place gets a new key and is hashed again.
pub fn model_id(
    dir: &Path,
    precision: Precision,
    memo: Option<&Path>,
) -> Result<String, EmbedError> {
    check_model_dir(dir)?;
    let bad = |name: &str, e: std::io::Error| EmbedError::BadModel {
        dir: dir.to_path_buf(),
        reason: format!("{name}: {e}"),
    };
    let canonical = dir.canonicalize().map_err(|e| bad(".", e))?;
    let mut key = xxhash_rust::xxh3::Xxh3::new();
    for name in IDENTITY_FILES {
        let path = canonical.join(name);
        let meta = std::fs::metadata(&path).map_err(|e| bad(name, e))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        key.update(path.to_string_lossy().as_bytes());
        key.update(&meta.len().to_le_bytes());
        key.update(&mtime.to_le_bytes());
    }
    let key = format!("{:032x}", key.digest128());
    let remembered = memo
        .and_then(|m| std::fs::read_to_string(m).ok())
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.strip_prefix(&key)
                    .and_then(|rest| rest.strip_prefix('\t'))
                    .map(str::to_string)
            })
        });
    let digest = match remembered {
        Some(d) => d,
        None => {
            let mut hasher = xxhash_rust::xxh3::Xxh3::new();
            for name in IDENTITY_FILES {
                hasher.update(
                    &crate::fsutil::read_regular(&canonical.join(name))
                        .map_err(|e| bad(name, e))?,
                );
            }
            let d = format!("{:016x}", hasher.digest());
            if let Some(m) = memo {
                // Best effort: without the memo the next run only hashes again.
                let _ = m.parent().map(std::fs::create_dir_all);
                if let Ok(mut f) = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(m)
                {
                    use std::io::Write;
                    let _ = writeln!(f, "{key}\t{d}");
                }
            }
            d
        }
    };
    let name = canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    Ok(format!("{name}/{digest}/{}", precision.resolve().as_str()))
}

/// Reports the first missing file of a model folder, naming the command that fetches it, and
/// the first JSON file of it that does not parse (with its line), so that a damaged folder is
/// one clear line rather than a panic inside the model loader.
pub fn check_model_dir(dir: &Path) -> Result<(), EmbedError> {
    for file in MODEL_FILES {
        if !dir.join(file).is_file() {
            return Err(EmbedError::MissingFile {
                dir: dir.to_path_buf(),
                file: (*file).to_string(),
            });
        }
    }
    for file in MODEL_FILES.iter().filter(|f| f.ends_with(".json")) {
        read_json(dir, file)?;
    }
    Ok(())
}

/// A JSON file of the model folder, parsed.
fn read_json(dir: &Path, file: &str) -> Result<serde_json::Value, EmbedError> {
    let bad = |reason: String| EmbedError::BadModel {
        dir: dir.to_path_buf(),
        reason: format!("{file}: {reason}"),
    };
    let bytes = crate::fsutil::read_regular(&dir.join(file)).map_err(|e| bad(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid JSON: {e}")))
}

/// The width of the model's vectors, from its pooling configuration (so the cache can be
/// opened before the model is loaded).
pub fn model_dim(dir: &Path) -> Result<usize, EmbedError> {
    check_model_dir(dir)?;
    read_json(dir, "1_Pooling/config.json")?
        .get("word_embedding_dimension")
        .and_then(serde_json::Value::as_u64)
        .filter(|&d| d > 0 && d <= 65_536)
        .map(|d| d as usize)
        .ok_or_else(|| EmbedError::BadModel {
            dir: dir.to_path_buf(),
            reason: "1_Pooling/config.json: no valid word_embedding_dimension".into(),
        })
}

/// Runs `f`, turning a panic into `None` without printing it: for libraries that panic on
/// damaged input files (rust-bert on a bad config, hnsw_rs on a bad dump), where a damaged file
/// is expected and gets its own message.
pub fn catch_quietly<T>(f: impl FnOnce() -> T) -> Option<T> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    result.ok()
}

/// Scales every row to unit length (rows of zeros stay zero).
pub fn normalize_rows(m: &mut Array2<f32>) {
    for mut row in m.rows_mut() {
        let norm = row.dot(&row).sqrt();
        if norm > 0.0 {
            row /= norm;
        }
    }
}
