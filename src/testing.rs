//! Helpers for tests, benches and scale runs, not part of the engine: a bag-of-words embedder
//! that needs no model (behind `relink --test-embedder`), and seeded random unit vectors.

use ndarray::Array2;

use crate::embed::{normalize_rows, EmbedError, TextEmbedder};
use crate::index::splitmix64;

/// A bag-of-words embedder: every lower-cased word is hashed to a few signed coordinates.
/// Texts that share words get a high cosine, which is all the ranking tests need, and it embeds
/// thousands of texts per millisecond with no model on disk.
pub struct HashEmbedder {
    dim: usize,
    id: String,
}

impl HashEmbedder {
    pub fn new(dim: usize) -> HashEmbedder {
        HashEmbedder {
            dim,
            id: format!("hash-bow/{dim}"),
        }
    }
}

impl TextEmbedder for HashEmbedder {
    fn model_id(&self) -> &str {
        &self.id
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed(&mut self, texts: &[&str]) -> Result<Array2<f32>, EmbedError> {
        let mut out = Array2::<f32>::zeros((texts.len(), self.dim));
        for (i, text) in texts.iter().enumerate() {
            for word in crate::lexical::tokenize(text) {
                let h = xxhash_rust::xxh3::xxh3_64(word.as_bytes());
                for j in 0..3 {
                    let bits = h.rotate_left(j * 21);
                    let coord = (bits % self.dim as u64) as usize;
                    let sign = if bits & (1 << 63) == 0 { 1.0 } else { -1.0 };
                    out[[i, coord]] += sign;
                }
            }
        }
        normalize_rows(&mut out);
        Ok(out)
    }
}

/// `n` random unit vectors of dimension `dim` from a fixed seed (for benches and tests).
pub fn random_unit_vectors(n: usize, dim: usize, seed: u64) -> Array2<f32> {
    // splitmix64 then Box-Muller: Gaussian coordinates give directions uniform on the sphere.
    let mut state = seed;
    let mut next = move || (splitmix64(&mut state) >> 11) as f64 / (1u64 << 53) as f64;
    let mut m = Array2::<f32>::zeros((n, dim));
    for x in m.iter_mut() {
        let (u1, u2) = (next().max(1e-300), next());
        *x = ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32;
    }
    normalize_rows(&mut m);
    m
}
