//! Sentence embeddings: text in, unit-length 384-d vectors out.
//!
//! [`Embedder`] wraps all-MiniLM-L6-v2 through rust-bert's sentence-embeddings pipeline, loaded
//! from a local folder (`model.safetensors` is read directly), in the backend library that
//! relink opens only when a text must be embedded ([`backend`]). [`crate::testing::HashEmbedder`] is
//! a small bag-of-words embedder for tests and scale benches, where the real model would only
//! make them slower. Both implement [`TextEmbedder`], so the pipeline does not care which one it
//! holds.

use std::path::{Path, PathBuf};

use ndarray::Array2;

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
    #[error("{0}")]
    Backend(String),
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

/// all-MiniLM-L6-v2 (or another BERT sentence-transformers model) through rust-bert, in the
/// backend library (see [`backend`]).
pub struct Embedder {
    model: backend::Model,
    model_id: String,
    dim: usize,
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
        backend::open().map_err(EmbedError::Backend)?;
        let model = backend::Model::load(dir, precision == Precision::Bf16, batch_size, threads)
            .map_err(|reason| EmbedError::BadModel {
                dir: dir.to_path_buf(),
                reason,
            })?;
        let dim = model.dim();
        Ok(Embedder {
            model,
            model_id,
            dim,
        })
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
        let flat = self.model.embed(texts).map_err(EmbedError::Run)?;
        let mut out = Array2::from_shape_vec((texts.len(), self.dim), flat)
            .map_err(|e| EmbedError::Run(e.to_string()))?;
        // bf16 output is normalised in bf16; normalise again in f32 so every vector is unit length.
        normalize_rows(&mut out);
        Ok(out)
    }
}

/// The embedding backend: the `relink-model` shared library (workspace member `model/`),
/// which links libtorch, opened the first time a model is loaded.
///
/// Loading libtorch costs its static initialisation (about 0.35 s on 2 cores, most of a warm
/// run), so relink does not link it: a run that embeds nothing (a warm refresh, `related` of a
/// corpus article, `eval` on a cached corpus, `--version`) never pays it. The library is looked
/// for at `$RELINK_MODEL_LIB`, else beside the running program (and one folder up, where cargo
/// puts tests and benches), and is never unloaded (libtorch does not support it).
pub mod backend {
    use std::ffi::OsString;
    use std::path::{Path, PathBuf};
    use std::sync::OnceLock;

    /// The library's file name.
    pub const LIBRARY: &str = "librelink_model.so";
    /// The ABI this relink speaks (`relink_model_abi`).
    const ABI: u32 = 1;

    type Load = unsafe extern "C" fn(*const u8, usize, u32, usize, usize) -> *mut Raw;
    type Dim = unsafe extern "C" fn(*const Raw) -> usize;
    type Embed =
        unsafe extern "C" fn(*mut Raw, *const *const u8, *const usize, usize, *mut f32) -> u32;
    type Free = unsafe extern "C" fn(*mut Raw);
    type Error = unsafe extern "C" fn(*mut u8, usize) -> usize;

    /// The library's opaque model.
    #[repr(C)]
    pub struct Raw {
        _private: [u8; 0],
    }

    struct Library {
        load: Load,
        dim: Dim,
        embed: Embed,
        free: Free,
        error: Error,
    }

    impl Library {
        fn last_error(&self) -> String {
            let mut buf = vec![0u8; 4096];
            // SAFETY: the buffer has the room given.
            let n = unsafe { (self.error)(buf.as_mut_ptr(), buf.len()) };
            buf.truncate(n.min(4096));
            String::from_utf8_lossy(&buf).into_owned()
        }
    }

    static LIBRARY_OPENED: OnceLock<Result<Library, String>> = OnceLock::new();

    /// Where the library is looked for, in order.
    pub fn candidates() -> Vec<PathBuf> {
        if let Some(p) = std::env::var_os("RELINK_MODEL_LIB").filter(|p| !p.is_empty()) {
            return vec![PathBuf::from(p)];
        }
        let mut out = Vec::new();
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
        {
            out.push(dir.join(LIBRARY));
            if let Some(up) = dir.parent() {
                out.push(up.join(LIBRARY));
            }
        }
        out
    }

    fn open_library() -> Result<Library, String> {
        let paths = candidates();
        let Some(path) = paths.iter().find(|p| p.is_file()) else {
            let looked: Vec<OsString> = paths.iter().map(|p| p.clone().into_os_string()).collect();
            return Err(format!(
                "the model backend {LIBRARY} was not found (looked at {}): it is built with relink by `cargo build --release` at the top of the repository; set RELINK_MODEL_LIB to its path if it lives elsewhere",
                looked
                    .iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        let bad = |e: libloading::Error| format!("{}: {e}", path.display());
        // SAFETY: the library is relink's own backend; its initialisers are libtorch's.
        let lib = unsafe { libloading::Library::new(path) }.map_err(bad)?;
        // SAFETY: the symbols are looked up with the types the backend defines for ABI 1,
        // after checking that it speaks ABI 1.
        let library = unsafe {
            let abi: libloading::Symbol<unsafe extern "C" fn() -> u32> =
                lib.get(b"relink_model_abi").map_err(bad)?;
            let abi = abi();
            if abi != ABI {
                return Err(format!(
                    "{}: model backend ABI {abi}, this relink needs {ABI}: rebuild both together",
                    path.display()
                ));
            }
            Library {
                load: *lib.get::<Load>(b"relink_model_load").map_err(bad)?,
                dim: *lib.get::<Dim>(b"relink_model_dim").map_err(bad)?,
                embed: *lib.get::<Embed>(b"relink_model_embed").map_err(bad)?,
                free: *lib.get::<Free>(b"relink_model_free").map_err(bad)?,
                error: *lib.get::<Error>(b"relink_model_error").map_err(bad)?,
            }
        };
        // Never unloaded: the function pointers above stay valid for the process's life.
        std::mem::forget(lib);
        Ok(library)
    }

    fn library() -> Result<&'static Library, String> {
        LIBRARY_OPENED
            .get_or_init(open_library)
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Opens the backend library (loading libtorch), once per process.
    pub fn open() -> Result<(), String> {
        library().map(|_| ())
    }

    /// A model loaded by the backend.
    pub struct Model {
        raw: *mut Raw,
        lib: &'static Library,
    }

    // SAFETY: a model is used by one thread at a time (`&mut self` to embed) and the backend
    // keeps no thread-bound state in it.
    unsafe impl Send for Model {}

    impl Model {
        /// Loads the model folder `dir`.
        pub fn load(
            dir: &Path,
            bf16: bool,
            batch_size: usize,
            threads: usize,
        ) -> Result<Model, String> {
            let lib = library()?;
            let dir = dir
                .to_str()
                .ok_or_else(|| "the folder's path is not UTF-8".to_string())?;
            // SAFETY: `dir` is valid for its length.
            let raw = unsafe {
                (lib.load)(
                    dir.as_ptr(),
                    dir.len(),
                    u32::from(bf16),
                    batch_size.max(1),
                    threads,
                )
            };
            if raw.is_null() {
                return Err(lib.last_error());
            }
            Ok(Model { raw, lib })
        }

        pub fn dim(&self) -> usize {
            // SAFETY: `raw` is a live model.
            unsafe { (self.lib.dim)(self.raw) }
        }

        /// Embeds `texts`: `texts.len()` rows of [`Model::dim`] floats, in order.
        pub fn embed(&mut self, texts: &[&str]) -> Result<Vec<f32>, String> {
            let ptrs: Vec<*const u8> = texts.iter().map(|t| t.as_ptr()).collect();
            let lens: Vec<usize> = texts.iter().map(|t| t.len()).collect();
            let mut out = vec![0f32; texts.len() * self.dim()];
            // SAFETY: the pointers and lengths describe live strings, `out` has room for
            // every row.
            let ok = unsafe {
                (self.lib.embed)(
                    self.raw,
                    ptrs.as_ptr(),
                    lens.as_ptr(),
                    texts.len(),
                    out.as_mut_ptr(),
                )
            };
            if ok == 1 {
                Ok(out)
            } else {
                Err(self.lib.last_error())
            }
        }
    }

    impl Drop for Model {
        fn drop(&mut self) {
            // SAFETY: `raw` came from the backend's load and is freed once.
            unsafe { (self.lib.free)(self.raw) }
        }
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

/// Scales every row to unit length (rows of zeros stay zero).
pub fn normalize_rows(m: &mut Array2<f32>) {
    for mut row in m.rows_mut() {
        let norm = row.dot(&row).sqrt();
        if norm > 0.0 {
            row /= norm;
        }
    }
}
