//! Worker commands: JSON Lines in, JSON Lines out, stateless and deterministic, so that a
//! cluster engine (Spark's `RDD.pipe`, say) can run them on any executor. The first of them:
//! `relink embed --stdin`, articles in, `{"key", "vector"}` out.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use crate::article::{parse_json_article, Source};
use crate::cache::{text_key, CacheError, EmbeddingCache};
use crate::embed::{EmbedError, TextEmbedder};
use crate::engine::EmbedderChoice;

/// Why a worker stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// Writing the output failed (a closed pipe, a full disk).
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
}

/// Lines embedded per model call and written out together: bounded memory whatever the input.
const CHUNK: usize = 256;

/// What [`embed_lines`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EmbedSummary {
    pub articles: usize,
    pub embedded: usize,
    pub cached: usize,
    /// Lines that could not be read, as `stdin:N: reason`.
    pub bad: Vec<String>,
}

/// Base64 (standard alphabet, padded) of `bytes`.
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A vector as the workers write it: base64 of its little-endian f32s.
pub fn vector_base64(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64(&bytes)
}

/// An article's key in worker output: its `key` field when it has one (a string), else its
/// `webUrl`, else `line:N`.
fn key_of(article: &crate::article::Article, line: usize) -> String {
    match article.extra.get("key") {
        Some(serde_yaml::Value::String(k)) if !k.is_empty() => k.clone(),
        _ => article
            .web_url
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| format!("line:{line}")),
    }
}

/// Reads articles (one JSON object a line, the front matter's field names) from `input` and
/// writes `{"key": .., "vector": ..}` for each to `output`, in input order. A line that is not
/// an article is reported in the summary and skipped; the others go on. With `cache` (a state
/// folder), vectors are looked up and added there, and nothing is ever dropped from it (shards
/// of one archive can share it).
pub fn embed_lines(
    input: impl BufRead,
    mut output: impl Write,
    choice: &EmbedderChoice,
    cache: Option<&Path>,
) -> Result<EmbedSummary, WorkerError> {
    let model_id = choice.model_id()?;
    let dim = choice.dim()?;
    let mut cache = match cache {
        Some(dir) => Some(EmbeddingCache::open(dir, &model_id, dim)?.0),
        None => None,
    };
    let mut embedder: Option<Box<dyn TextEmbedder>> = None;
    let mut summary = EmbedSummary::default();
    let mut pending: Vec<(String, String)> = Vec::with_capacity(CHUNK);
    let mut lines = input.lines().enumerate();
    loop {
        let next = lines.next();
        match &next {
            Some((n, Ok(line))) if !line.trim().is_empty() => {
                let source = Source::JsonLine {
                    path: PathBuf::from("<stdin>"),
                    line: n + 1,
                };
                match parse_json_article(line.trim_end_matches('\r'), source) {
                    Ok(a) => pending.push((key_of(&a, n + 1), a.text())),
                    Err(e) => summary.bad.push(format!("stdin:{}: {}", n + 1, e.reason)),
                }
            }
            Some((n, Err(e))) => summary.bad.push(format!("stdin:{}: {e}", n + 1)),
            _ => {}
        }
        if pending.len() < CHUNK && next.is_some() {
            continue;
        }
        let texts: Vec<&str> = pending.iter().map(|(_, t)| t.as_str()).collect();
        let keys: Vec<u128> = texts.iter().map(|t| text_key(t)).collect();
        let missing: Vec<usize> = (0..texts.len())
            .filter(|&i| cache.as_ref().is_none_or(|c| c.get(keys[i]).is_none()))
            .collect();
        let mut fresh = Vec::new();
        if !missing.is_empty() {
            if embedder.is_none() {
                embedder = Some(choice.load(&model_id)?);
            }
            let batch: Vec<&str> = missing.iter().map(|&i| texts[i]).collect();
            fresh = embedder
                .as_mut()
                .expect("loaded above")
                .embed(&batch)?
                .rows()
                .into_iter()
                .map(|r| r.to_vec())
                .collect();
            if let Some(c) = cache.as_mut() {
                c.ensure_writable()?;
                for (&i, v) in missing.iter().zip(&fresh) {
                    c.insert(keys[i], ndarray::ArrayView1::from(&v[..]))?;
                }
                c.flush()?;
            }
        }
        // Where each text's vector is: among those just embedded, else in the cache.
        let mut fresh_at = vec![None; pending.len()];
        for (j, &i) in missing.iter().enumerate() {
            fresh_at[i] = Some(j);
        }
        for (i, (key, _)) in pending.iter().enumerate() {
            let vector: &[f32] = match fresh_at[i] {
                Some(j) => &fresh[j],
                None => cache
                    .as_ref()
                    .and_then(|c| c.get(keys[i]))
                    .expect("a text not embedded is cached"),
            };
            let line = serde_json::json!({ "key": key, "vector": vector_base64(vector) });
            writeln!(output, "{line}")?;
        }
        summary.embedded += missing.len();
        summary.cached += pending.len() - missing.len();
        summary.articles += pending.len();
        pending.clear();
        if next.is_none() {
            break;
        }
    }
    output.flush()?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_the_standard_one() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(vector_base64(&[1.0]), "AACAPw==");
    }

    #[test]
    fn lines_in_vectors_out_and_bad_lines_named() {
        let input = "{\"title\": \"Storm hits coast\", \"key\": \"a\"}\n\n{not json\n{\"title\": \"Storm hits coast\", \"webUrl\": \"https://x/b\"}\n[1]\n{\"excerpt\": \"no title\"}\n{\"title\": \"Quiet day\"}\n";
        let mut out = Vec::new();
        let s = embed_lines(
            input.as_bytes(),
            &mut out,
            &EmbedderChoice::Hash { dim: 8 },
            None,
        )
        .unwrap();
        assert_eq!(s.articles, 3);
        assert_eq!(s.bad.len(), 3);
        assert!(s.bad[0].starts_with("stdin:3: invalid JSON"), "{:?}", s.bad);
        assert!(s.bad[1].starts_with("stdin:5:"), "{:?}", s.bad);
        assert!(s.bad[2].contains("`title` is missing"), "{:?}", s.bad);
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let keys: Vec<&str> = lines.iter().map(|l| l["key"].as_str().unwrap()).collect();
        assert_eq!(keys, ["a", "https://x/b", "line:7"]);
        assert_eq!(
            lines[0]["vector"], lines[1]["vector"],
            "same text, same vector"
        );
        assert_eq!(lines[0]["vector"].as_str().unwrap().len(), 44, "8 floats");
        // Empty input: empty output.
        let mut out = Vec::new();
        let s = embed_lines(&b""[..], &mut out, &EmbedderChoice::Hash { dim: 8 }, None).unwrap();
        assert_eq!(s, EmbedSummary::default());
        assert!(out.is_empty());
    }

    #[test]
    fn a_cache_is_used_and_never_dropped_from() {
        let dir = tempfile::tempdir().unwrap();
        let choice = EmbedderChoice::Hash { dim: 8 };
        let run = |input: &str| {
            let mut out = Vec::new();
            let s = embed_lines(input.as_bytes(), &mut out, &choice, Some(dir.path())).unwrap();
            (s, String::from_utf8(out).unwrap())
        };
        let (first, a) = run("{\"title\": \"One\"}\n{\"title\": \"Two\"}\n");
        assert_eq!((first.embedded, first.cached), (2, 0));
        let (second, _) = run("{\"title\": \"Three\"}\n");
        assert_eq!((second.embedded, second.cached), (1, 0));
        // The first shard's vectors are still there, and the same.
        let (third, b) = run("{\"title\": \"One\"}\n{\"title\": \"Two\"}\n");
        assert_eq!((third.embedded, third.cached), (0, 2));
        assert_eq!(a, b);
    }
}
