//! relink's embedding backend: all-MiniLM-L6-v2 (or another BERT sentence-transformers model)
//! through rust-bert and libtorch, behind a small C ABI.
//!
//! relink itself does not link libtorch: loading libtorch runs its static initialisation (the
//! operator registry), about a third of a second, which every command would pay even when no
//! text needs embedding. relink opens this library with `dlopen` the first time a text must be
//! embedded (see `relink::embed`), and only then.
//!
//! The ABI, version [`ABI_VERSION`]: every function catches panics (none unwinds into the
//! caller); a failure returns null or 0 and leaves a message for [`relink_model_error`].
//!
//! ```c
//! uint32_t relink_model_abi(void);
//! Model   *relink_model_load(const uint8_t *dir, size_t dir_len, uint32_t bf16,
//!                            size_t batch_size, size_t threads);
//! size_t   relink_model_dim(const Model *m);
//! uint32_t relink_model_embed(Model *m, const uint8_t *const *texts, const size_t *lens,
//!                             size_t n, float *out /* n * dim */);
//! void     relink_model_free(Model *m);
//! size_t   relink_model_error(uint8_t *buf, size_t cap); /* the last error's length */
//! ```

use std::cell::RefCell;
use std::path::Path;

use rust_bert::pipelines::common::ModelType;
use rust_bert::pipelines::sentence_embeddings::{
    SentenceEmbeddingsConfig, SentenceEmbeddingsModel,
};
use rust_bert::resources::LocalResource;
use tch::{Device, Kind};

/// Changes whenever a function's signature or meaning changes; relink refuses another.
pub const ABI_VERSION: u32 = 1;

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

fn fail(message: String) {
    LAST_ERROR.with(|e| *e.borrow_mut() = message);
}

/// Runs `f`, turning a panic into the error `on_panic`, without printing it (rust-bert panics on
/// some malformed model files, which relink reports as one line of its own).
fn guarded<T>(on_panic: &str, f: impl FnOnce() -> Result<T, String>) -> Option<T> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    match result {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            fail(e);
            None
        }
        Err(_) => {
            fail(on_panic.to_string());
            None
        }
    }
}

/// A loaded model.
pub struct Model {
    model: SentenceEmbeddingsModel,
    dim: usize,
    batch_size: usize,
}

#[no_mangle]
pub extern "C" fn relink_model_abi() -> u32 {
    ABI_VERSION
}

/// Loads the model in the folder `dir` (UTF-8, `dir_len` bytes), in bf16 when `bf16` is 1,
/// batching `batch_size` texts, on `threads` threads.
///
/// # Safety
/// `dir` must point at `dir_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn relink_model_load(
    dir: *const u8,
    dir_len: usize,
    bf16: u32,
    batch_size: usize,
    threads: usize,
) -> *mut Model {
    let dir = match std::str::from_utf8(std::slice::from_raw_parts(dir, dir_len)) {
        Ok(d) => Path::new(d).to_path_buf(),
        Err(_) => {
            fail("the model folder's path is not UTF-8".into());
            return std::ptr::null_mut();
        }
    };
    guarded(
        "the model's files could not be read (damaged or not a BERT sentence-transformers model)",
        || load(&dir, bf16 == 1, batch_size, threads),
    )
    .map_or(std::ptr::null_mut(), |m| Box::into_raw(Box::new(m)))
}

fn load(dir: &Path, bf16: bool, batch_size: usize, threads: usize) -> Result<Model, String> {
    tch::set_num_threads(threads.max(1) as i32);
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
        kind: Some(if bf16 { Kind::BFloat16 } else { Kind::Float }),
    };
    let model = SentenceEmbeddingsModel::new(config).map_err(|e| e.to_string())?;
    let dim = model.get_embedding_dim().map_err(|e| e.to_string())? as usize;
    Ok(Model {
        model,
        dim,
        batch_size: batch_size.max(1),
    })
}

/// The width of the model's vectors.
///
/// # Safety
/// `m` must come from [`relink_model_load`] and not be freed.
#[no_mangle]
pub unsafe extern "C" fn relink_model_dim(m: *const Model) -> usize {
    (*m).dim
}

/// Embeds `n` texts (`texts[i]` points at `lens[i]` bytes of UTF-8) into `out`, `n` rows of
/// [`relink_model_dim`] floats, row `i` for text `i`. Batches hold texts of similar token
/// counts (little padding), and each row comes back at its text's position. Rows are as the
/// model pools them (unit length up to the precision's rounding). Returns 1, or 0 on failure.
///
/// # Safety
/// `m` must come from [`relink_model_load`]; `texts` and `lens` must hold `n` entries, each
/// text its length's bytes; `out` must have room for `n * dim` floats.
#[no_mangle]
pub unsafe extern "C" fn relink_model_embed(
    m: *mut Model,
    texts: *const *const u8,
    lens: *const usize,
    n: usize,
    out: *mut f32,
) -> u32 {
    let m = &mut *m;
    let mut owned = Vec::with_capacity(n);
    for i in 0..n {
        let bytes = std::slice::from_raw_parts(*texts.add(i), *lens.add(i));
        match std::str::from_utf8(bytes) {
            Ok(t) => owned.push(t),
            Err(_) => {
                fail(format!("text {} is not UTF-8", i + 1));
                return 0;
            }
        }
    }
    let out = std::slice::from_raw_parts_mut(out, n * m.dim);
    guarded("the model failed while embedding", || embed(m, &owned, out)).map_or(0, |()| 1)
}

fn embed(m: &Model, texts: &[&str], out: &mut [f32]) -> Result<(), String> {
    let tokenizer = m.model.get_tokenizer();
    let lengths: Vec<usize> = texts.iter().map(|t| tokenizer.tokenize(t).len()).collect();
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| (lengths[i], i));
    for chunk in order.chunks(m.batch_size) {
        let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
        let embedded = m
            .model
            .encode_as_tensor(&batch)
            .map_err(|e| e.to_string())?;
        let t = embedded.embeddings.to_kind(Kind::Float).contiguous();
        let mut flat = vec![0f32; t.numel()];
        t.copy_data(&mut flat, t.numel());
        if flat.len() != chunk.len() * m.dim {
            return Err(format!(
                "the model gave {} values for {} texts of {} dimensions",
                flat.len(),
                chunk.len(),
                m.dim
            ));
        }
        for (row, &i) in flat.chunks_exact(m.dim).zip(chunk) {
            out[i * m.dim..(i + 1) * m.dim].copy_from_slice(row);
        }
    }
    Ok(())
}

/// Frees a model.
///
/// # Safety
/// `m` must come from [`relink_model_load`] (or be null) and not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn relink_model_free(m: *mut Model) {
    if !m.is_null() {
        drop(Box::from_raw(m));
    }
}

/// Copies the calling thread's last error message into `buf` (up to `cap` bytes) and returns
/// its whole length.
///
/// # Safety
/// `buf` must have room for `cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn relink_model_error(buf: *mut u8, cap: usize) -> usize {
    LAST_ERROR.with(|e| {
        let e = e.borrow();
        let n = e.len().min(cap);
        std::ptr::copy_nonoverlapping(e.as_ptr(), buf, n);
        e.len()
    })
}
