//! Worker commands: JSON Lines in, JSON Lines out, stateless and deterministic, so that a
//! cluster engine (Spark's `RDD.pipe`, say) can run them on any executor:
//!
//! - `relink export FOLDER`: the articles of a corpus as JSON Lines, each with its `key` and
//!   its corpus position `seq`;
//! - `relink embed --stdin`: articles in, `{"key", "vector"}` out;
//! - `relink stats --stdin`: articles in, the corpus-wide statistics a shard ranks with out
//!   (BM25 document frequencies, the quality distribution);
//! - `relink rank --stdin --stats FILE`: a shard of articles with their vectors in, their lists
//!   out, the same as a whole-corpus ranking gives when the shard holds every candidate the
//!   ranking window reaches.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use ndarray::Array2;
use rayon::prelude::*;

use crate::article::{front_matter_json, parse_json_article, Article, Source};
use crate::cache::{text_key, CacheError, EmbeddingCache};
use crate::corpus::Corpus;
use crate::embed::{EmbedError, TextEmbedder};
use crate::engine::EmbedderChoice;
use crate::index::{HnswParams, SearchMode, VectorIndex};
use crate::lexical::{tokenize, Bm25, LexicalStats};
use crate::rank::{ArticleKey, RankOptions, Ranker};

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

/// Base64 (standard alphabet, padding optional) back to bytes; `None` on any other character.
pub fn unbase64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = acc << 6 | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// A vector written by [`vector_base64`], read back.
pub fn vector_from_base64(text: &str) -> Option<Vec<f32>> {
    let bytes = unbase64(text)?;
    if bytes.len() % 4 != 0 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}

/// Writes every article of `corpus` as one JSON line, in corpus order: its front matter (for a
/// JSON Lines corpus, its line) without `related`, with `"key"` (its path relative to the
/// corpus folder; for a JSON Lines corpus, its own `key` field, else `line:N`), `"seq"` (its
/// corpus position: ties between candidates are broken by it, so shards keep the whole's
/// order) and `"epoch"` (its publication time as relink reads it, in seconds since 1970 UTC,
/// null when undated: what a job cuts the timeline by). Returns how many were written, and the files that could no longer be read
/// (`path: reason`), which are left out.
pub fn export_corpus(
    corpus: &Corpus,
    mut out: impl Write,
) -> Result<(usize, Vec<String>), WorkerError> {
    let mut lines_of: HashMap<PathBuf, Vec<String>> = HashMap::new();
    let mut bad = Vec::new();
    let mut written = 0;
    for (seq, a) in corpus.articles.iter().enumerate() {
        let object = match &a.source {
            Source::File(path) => crate::fsutil::read_regular_string(path)
                .map_err(|e| e.to_string())
                .and_then(|text| front_matter_json(&text).map_err(|e| e.to_string()))
                .map(|o| (o, crate::state::article_key(&corpus.root, a))),
            Source::JsonLine { path, line } => {
                if !lines_of.contains_key(path) {
                    let text = crate::fsutil::read_regular_string(path).unwrap_or_default();
                    lines_of.insert(path.clone(), text.lines().map(str::to_string).collect());
                }
                let text = lines_of[path].get(line - 1).map_or("", String::as_str);
                match serde_json::from_str::<serde_json::Value>(text.trim_end_matches('\r')) {
                    Ok(serde_json::Value::Object(o)) => {
                        let key = match o.get("key") {
                            Some(serde_json::Value::String(k)) if !k.is_empty() => k.clone(),
                            _ => format!("line:{line}"),
                        };
                        Ok((o, key))
                    }
                    _ => Err(format!("line {line}: changed since it was read")),
                }
            }
        };
        match object {
            Ok((mut o, key)) => {
                o.remove("related");
                o.insert("key".into(), key.into());
                o.insert("seq".into(), seq.into());
                let epoch = a.published_date_time.map(|d| d.timestamp());
                o.insert("epoch".into(), epoch.into());
                writeln!(out, "{}", serde_json::Value::Object(o))?;
                written += 1;
            }
            Err(e) => bad.push(format!("{}: {e}", a.source.path().display())),
        }
    }
    out.flush()?;
    Ok((written, bad))
}

/// The statistics file's first field: what it is, and its layout's version (2: title terms
/// with plurals folded, [`crate::lexical::ANALYZER`]).
pub const STATS_FORMAT: &str = "relink-stats 2";

/// Corpus-wide statistics that a shard ranks with, so that it ranks exactly as the whole
/// corpus would: BM25's document count, average title length and document frequencies, and
/// the distribution of provider qualities (which percentiles are taken in). Written by
/// `relink stats` and refused by `relink rank` when another relink version or another model
/// made it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CorpusStats {
    pub format: String,
    /// The relink version that wrote it.
    pub relink: String,
    /// The embedder's identity: the ranking options (near-duplicates, the similarity floor)
    /// are that model's.
    pub model: String,
    /// Vector width.
    pub dim: usize,
    /// Articles counted.
    pub articles: u64,
    /// Average title length in BM25 terms (at least 1).
    pub avg_len: f32,
    /// Per title term: the number of articles whose title holds it.
    pub df: BTreeMap<String, u32>,
    /// (quality, number of articles with it), by quality.
    pub qualities: Vec<(i64, u64)>,
}

impl CorpusStats {
    /// The statistics of `articles`, for the embedder `model` of width `dim`.
    pub fn of<'a>(articles: impl Iterator<Item = &'a Article>, model: &str, dim: usize) -> Self {
        let mut stats = CorpusStats::empty(model, dim);
        let mut total_len = 0usize;
        let mut qualities: BTreeMap<i64, u64> = BTreeMap::new();
        for a in articles {
            stats.add(a, &mut total_len, &mut qualities);
        }
        stats.finish(total_len, qualities);
        stats
    }

    fn empty(model: &str, dim: usize) -> Self {
        CorpusStats {
            format: STATS_FORMAT.into(),
            relink: env!("CARGO_PKG_VERSION").into(),
            model: model.into(),
            dim,
            articles: 0,
            avg_len: 1.0,
            df: BTreeMap::new(),
            qualities: Vec::new(),
        }
    }

    fn add(&mut self, a: &Article, total_len: &mut usize, qualities: &mut BTreeMap<i64, u64>) {
        let mut terms: Vec<String> = tokenize(&a.title).collect();
        *total_len += terms.len();
        terms.sort_unstable();
        terms.dedup();
        for t in terms {
            *self.df.entry(t).or_default() += 1;
        }
        if let Some(q) = a.quality {
            *qualities.entry(q).or_default() += 1;
        }
        self.articles += 1;
    }

    /// Computed as [`Bm25::new`] computes them, so that the numbers are the same bits.
    fn finish(&mut self, total_len: usize, qualities: BTreeMap<i64, u64>) {
        let avg = total_len as f32 / (self.articles as f32).max(1.0);
        self.avg_len = avg.max(1.0);
        self.qualities = qualities.into_iter().collect();
    }

    /// Reads a statistics file and checks that it was written by this relink for the
    /// embedder `model`.
    /// A file whose vector width is not `dim` (the embedder's) is refused here, once, rather
    /// than every input line being blamed for it.
    pub fn load(path: &Path, model: &str, dim: usize) -> Result<CorpusStats, String> {
        let text = crate::fsutil::read_regular_string(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let stats: CorpusStats = serde_json::from_str(&text).map_err(|e| {
            format!(
                "{}: not a relink statistics file ({e}); write one with `relink stats`",
                path.display()
            )
        })?;
        let version = env!("CARGO_PKG_VERSION");
        if stats.format != STATS_FORMAT || stats.relink != version {
            return Err(format!(
                "{}: written by relink {} ({}); this is relink {version} ({STATS_FORMAT}): run `relink stats` again",
                path.display(),
                stats.relink,
                stats.format
            ));
        }
        if stats.model != model {
            return Err(format!(
                "{}: statistics of the model {}, not of {model}: run `relink stats` with the same model",
                path.display(),
                stats.model
            ));
        }
        if stats.dim != dim {
            return Err(format!(
                "{}: statistics of {}-wide vectors, but the model {model} gives {dim}-wide ones: run `relink stats` again",
                path.display(),
                stats.dim
            ));
        }
        Ok(stats)
    }

    /// BM25's statistics.
    pub fn lexical(&self) -> LexicalStats {
        LexicalStats {
            docs: self.articles,
            avg_len: self.avg_len,
            df: self.df.iter().map(|(t, &n)| (t.clone(), n)).collect(),
        }
    }

    /// Per quality value: how many articles are below it, how many at most it, how many have
    /// one ([`ArticleKey::of_corpus_by`]).
    pub fn quality_counts(&self) -> impl Fn(i64) -> (usize, usize, usize) + '_ {
        let all: u64 = self.qualities.iter().map(|&(_, n)| n).sum();
        move |q| {
            let (mut below, mut upto) = (0u64, 0u64);
            for &(v, n) in &self.qualities {
                if v < q {
                    below += n;
                }
                if v <= q {
                    upto += n;
                }
            }
            (below as usize, upto as usize, all as usize)
        }
    }
}

/// Reads articles (JSON Lines) from `input` and returns their statistics, and the lines that
/// could not be read (`stdin:N: reason`), which are not counted.
pub fn stats_lines(
    input: impl BufRead,
    model: &str,
    dim: usize,
) -> Result<(CorpusStats, Vec<String>), WorkerError> {
    let mut stats = CorpusStats::empty(model, dim);
    let mut total_len = 0usize;
    let mut qualities = BTreeMap::new();
    let mut bad = Vec::new();
    for (n, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let source = Source::JsonLine {
            path: PathBuf::from("<stdin>"),
            line: n + 1,
        };
        match parse_json_article(line.trim_end_matches('\r'), source) {
            Ok(a) => stats.add(&a, &mut total_len, &mut qualities),
            Err(e) => bad.push(format!("stdin:{}: {}", n + 1, e.reason)),
        }
    }
    stats.finish(total_len, qualities);
    Ok((stats, bad))
}

/// What [`rank_lines`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RankSummary {
    /// Articles read (queries and candidates).
    pub articles: usize,
    /// Lists written.
    pub lists: usize,
    /// Lines that could not be read, as `stdin:N: reason`.
    pub bad: Vec<String>,
}

/// One article of a shard, as [`rank_lines`] reads it.
struct ShardArticle {
    article: Article,
    key: String,
    vector: Vec<f32>,
    /// Its corpus position, else its input line.
    seq: u64,
    query: bool,
}

/// Reads one line of a shard: an article with `"vector"` (base64, [`vector_base64`]), and
/// optionally `"key"`, `"seq"` (corpus position) and `"query"` (false: a candidate only).
fn shard_article(line: &str, n: usize, dim: usize) -> Result<ShardArticle, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let serde_json::Value::Object(mut o) = value else {
        return Err("not a JSON object".into());
    };
    let vector = match o.remove("vector") {
        Some(serde_json::Value::String(v)) => vector_from_base64(&v)
            .filter(|v| v.len() == dim)
            .ok_or(format!("`vector` is not {dim} base64 little-endian f32s"))
            .and_then(|v| match v.iter().position(|x| !x.is_finite()) {
                // A NaN would compare as no score at all and float to the top of every list.
                Some(i) => Err(format!(
                    "`vector` holds a non-finite value ({}) at position {i}",
                    v[i]
                )),
                None => Ok(v),
            })?,
        _ => return Err("`vector` is missing (base64 of little-endian f32s)".into()),
    };
    let seq = match o.remove("seq") {
        None => n as u64,
        Some(v) => v
            .as_u64()
            .ok_or("`seq` must be a whole number (the corpus position)")?,
    };
    let query = match o.remove("query") {
        None => true,
        Some(v) => v.as_bool().ok_or("`query` must be true or false")?,
    };
    let source = Source::JsonLine {
        path: PathBuf::from("<stdin>"),
        line: n,
    };
    let text = serde_json::Value::Object(o).to_string();
    let article = parse_json_article(&text, source).map_err(|e| e.reason)?;
    let key = key_of(&article, n);
    Ok(ShardArticle {
        article,
        key,
        vector,
        seq,
        query,
    })
}

/// Ranks a shard: reads articles with their vectors from `input` (every candidate the queries'
/// ranking window reaches, and the queries, marked by `"query"`, true when absent), ranks each
/// query among the shard with the corpus-wide `stats`, by exact search, and writes one line per
/// query, in corpus order: `{"key", "seq", "locked", "related": [{"key", "score", "cosine", "lexical",
/// "time", "quality", "pinned", "entry"}]}`. The shard is ordered by `seq`, so ties fall as in
/// the whole corpus. A line that cannot be read is reported and left out.
pub fn rank_lines(
    input: impl BufRead,
    mut output: impl Write,
    stats: &CorpusStats,
    options: &RankOptions,
) -> Result<RankSummary, WorkerError> {
    let mut summary = RankSummary::default();
    let mut shard: Vec<ShardArticle> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for (n, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match shard_article(line.trim_end_matches('\r'), n + 1, stats.dim) {
            Ok(a) if !seen.insert(a.key.clone()) => {
                summary
                    .bad
                    .push(format!("stdin:{}: the key {} came before", n + 1, a.key))
            }
            Ok(a) => shard.push(a),
            Err(e) => summary.bad.push(format!("stdin:{}: {e}", n + 1)),
        }
    }
    shard.sort_by_key(|a| a.seq);
    summary.articles = shard.len();
    if shard.is_empty() {
        output.flush()?;
        return Ok(summary);
    }
    let mut vectors = Array2::<f32>::zeros((shard.len(), stats.dim));
    for (i, a) in shard.iter().enumerate() {
        vectors
            .row_mut(i)
            .assign(&ndarray::ArrayView1::from(&a.vector[..]));
    }
    let articles: Vec<Article> = shard.iter().map(|a| a.article.clone()).collect();
    let index = VectorIndex::build(vectors, SearchMode::Exact, HnswParams::default());
    let titles: Vec<&str> = articles.iter().map(|a| a.title.as_str()).collect();
    let bm25 = Bm25::with_stats(&titles, Some(&stats.lexical()));
    let keys = ArticleKey::of_corpus_by(&articles, stats.quality_counts());
    let editorial = crate::editorial::Editorial::resolve(
        Path::new(""),
        &articles,
        &crate::editorial::Rules::default(),
    );
    let ranker = Ranker {
        index: &index,
        bm25: &bm25,
        keys: &keys,
        editorial: &editorial,
        options: options.clone(),
    };
    let queries: Vec<usize> = (0..shard.len()).filter(|&i| shard[i].query).collect();
    let lists = ranker.rank_articles_bounded(&queries);
    let lines: Vec<String> = queries
        .par_iter()
        .zip(lists)
        .map(|(&i, (list, _))| {
            let related: Vec<serde_json::Value> = list
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "key": shard[s.index].key,
                        "score": s.score,
                        "cosine": s.cosine,
                        "lexical": s.lexical,
                        "time": s.time,
                        "quality": s.quality,
                        "pinned": s.pinned,
                        "entry": articles[s.index].to_related(),
                    })
                })
                .collect();
            serde_json::json!({
                "key": shard[i].key,
                "seq": shard[i].seq,
                "locked": editorial.is_locked(i),
                "related": related,
            })
            .to_string()
        })
        .collect();
    for line in &lines {
        writeln!(output, "{line}")?;
    }
    summary.lists = lines.len();
    output.flush()?;
    Ok(summary)
}

/// Reads lists as `relink rank` writes them (`{"key", "related": [{"key"}, ..]}` a line; an
/// entry may also be the key alone), resolving keys with `position`. Returns the lists (article
/// and its entries, as positions) and the bad lines (`N: reason`): a key not in `position`, a
/// list given twice, a line that is not a list, and a list `relink refresh` could never write:
/// longer than [`crate::rank::MAX_K`] entries, holding its own article, or an entry twice.
pub fn read_lists(
    text: &str,
    position: &HashMap<String, usize>,
) -> (Vec<(usize, Vec<usize>)>, Vec<String>) {
    let mut lists = Vec::new();
    let mut bad = Vec::new();
    let mut seen = HashSet::new();
    let find = |v: &serde_json::Value| -> Result<usize, String> {
        let key = v
            .as_str()
            .or_else(|| v.get("key").and_then(|k| k.as_str()))
            .ok_or("an entry without a key")?;
        position
            .get(key)
            .copied()
            .ok_or(format!("no article {key} in the folder"))
    };
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<serde_json::Value>(line)
            .map_err(|e| format!("invalid JSON: {e}"))
            .and_then(|v| {
                let article = find(&v)?;
                let entries = v
                    .get("related")
                    .and_then(|r| r.as_array())
                    .ok_or("no `related` list")?
                    .iter()
                    .map(find)
                    .collect::<Result<Vec<usize>, String>>()?;
                check_list(article, &entries)?;
                Ok((article, entries))
            });
        match parsed {
            Ok((a, _)) if !seen.insert(a) => {
                bad.push(format!("{}: a second list for one article", n + 1))
            }
            Ok(list) => lists.push(list),
            Err(e) => bad.push(format!("{}: {e}", n + 1)),
        }
    }
    (lists, bad)
}

/// The rules every list refresh writes keeps, checked on a list ranked elsewhere.
fn check_list(article: usize, entries: &[usize]) -> Result<(), String> {
    let max = crate::rank::MAX_K;
    if entries.len() > max {
        return Err(format!(
            "{} entries; a list holds at most {max} (the largest --top)",
            entries.len()
        ));
    }
    if entries.contains(&article) {
        return Err("the article is in its own list".into());
    }
    let mut seen = HashSet::with_capacity(entries.len());
    if let Some(twice) = entries.iter().position(|e| !seen.insert(*e)) {
        return Err(format!("entry {} repeats an earlier entry", twice + 1));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_the_whole_corpus_s_to_the_bit() {
        let titles = [
            "Storm hits the coast",
            "Storm: the coast, again",
            "",
            "Harbour reopens after the storm",
        ];
        let articles: Vec<Article> = titles
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let q = [Some(3), None, Some(7), Some(3)][i];
                let mut a = parse_json_article(
                    &serde_json::json!({ "title": if t.is_empty() { "x" } else { t } }).to_string(),
                    Source::JsonLine {
                        path: "c.jsonl".into(),
                        line: i + 1,
                    },
                )
                .unwrap();
                a.title = t.to_string();
                a.quality = q;
                a
            })
            .collect();
        let stats = CorpusStats::of(articles.iter(), "m", 4);
        let bm25 = Bm25::new(&titles);
        assert_eq!(stats.lexical(), bm25.stats());
        assert_eq!(
            ArticleKey::of_corpus_by(&articles, stats.quality_counts())
                .iter()
                .map(|k| k.quality)
                .collect::<Vec<_>>(),
            ArticleKey::of_corpus(&articles)
                .iter()
                .map(|k| k.quality)
                .collect::<Vec<_>>()
        );
        // Through JSON and back: the same numbers.
        let back: CorpusStats =
            serde_json::from_str(&serde_json::to_string(&stats).unwrap()).unwrap();
        assert_eq!(back, stats);
        assert_eq!(
            vector_from_base64(&vector_base64(&[1.5, -0.25, 3e-9])),
            Some(vec![1.5, -0.25, 3e-9])
        );
        assert_eq!(vector_from_base64("AAA*"), None);
    }

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
