//! The pipeline shared by `refresh`, `related`, `eval` and the benches: a corpus, its vectors
//! (from the cache where possible), the vector index and BM25, ready to rank.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use ndarray::Array2;

use crate::cache::{text_key, CacheError, EmbeddingCache, Opened};
use crate::corpus::Corpus;
use crate::embed::{EmbedError, Embedder, Precision, TextEmbedder};
use crate::index::{HnswParams, SearchMode, VectorIndex};
use crate::lexical::Bm25;
use crate::rank::{ArticleKey, RankOptions, Ranker};
use crate::testing::HashEmbedder;

/// The embedding cache is written every this many new vectors, so a killed run keeps its work.
const CHECKPOINT: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("{path} is held by {holder}; not waiting (--no-wait)")]
    Locked { path: PathBuf, holder: String },
}

/// Which embedder to use.
#[derive(Clone, Debug)]
pub enum EmbedderChoice {
    /// A sentence-transformers model folder.
    Model {
        dir: PathBuf,
        precision: Precision,
        batch_size: usize,
    },
    /// The bag-of-words test embedder.
    Hash { dim: usize },
}

impl EmbedderChoice {
    /// The cache identity of the embedder, computed without loading the model.
    pub fn model_id(&self) -> Result<String, EmbedError> {
        match self {
            EmbedderChoice::Model { dir, precision, .. } => crate::embed::model_id(
                dir,
                *precision,
                Some(&user_cache_dir().join("model-ids.tsv")),
            ),
            EmbedderChoice::Hash { dim } => Ok(HashEmbedder::new(*dim).model_id().to_string()),
        }
    }

    /// The width of the vectors, read from the model folder without loading the model.
    pub fn dim(&self) -> Result<usize, EmbedError> {
        match self {
            EmbedderChoice::Model { dir, .. } => crate::embed::model_dim(dir),
            EmbedderChoice::Hash { dim } => Ok(*dim),
        }
    }

    /// Loads the embedder whose identity `model_id` was already computed.
    pub fn load(&self, model_id: &str) -> Result<Box<dyn TextEmbedder>, EmbedError> {
        Ok(match self {
            EmbedderChoice::Model {
                dir,
                precision,
                batch_size,
            } => Box::new(Embedder::load_as(
                dir,
                *precision,
                *batch_size,
                Some(model_id.to_string()),
            )?),
            EmbedderChoice::Hash { dim } => Box::new(HashEmbedder::new(*dim)),
        })
    }
}

/// Where relink keeps its state for the corpus at `path`: `<folder>/.relink` when it exists or,
/// with `create` (refresh, which writes to the folder anyway), when the folder is writable; else
/// a folder of the per-user cache named after the corpus. So `eval` and `related` leave the
/// corpus folder as they found it, and a read-only archive can still be evaluated. Nothing is
/// created here: the folder appears when a run takes its lock ([`lock_state`]), so a run that
/// fails before that leaves no trace.
pub fn default_state_dir(path: &Path, create: bool) -> PathBuf {
    let folder = corpus_folder(path);
    let local = folder.join(".relink");
    if (local.is_dir() && is_writable(&local))
        || (!local.exists() && create && is_writable(&folder))
    {
        return local;
    }
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let name = canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "corpus".into());
    let hash = xxhash_rust::xxh3::xxh3_64(canonical.to_string_lossy().as_bytes());
    user_cache_dir()
        .join("state")
        .join(format!("{name}-{hash:016x}"))
}

fn is_writable(dir: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: a valid C string; access only reads it.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

/// Why the state of the corpus at `path` is kept in `state_dir` rather than in the corpus's
/// own `.relink` folder, when a user should hear it: the folder exists but this user cannot
/// write it, or a writing command found the corpus folder read-only. `None` when the state is
/// where a user would look for it, or when a reading command simply keeps a read-only
/// archive's state in the user's cache.
pub fn moved_state_note(path: &Path, state_dir: &Path, writes: bool) -> Option<String> {
    let folder = corpus_folder(path);
    let local = folder.join(".relink");
    if state_dir == local {
        return None;
    }
    if local.is_dir() {
        Some(format!(
            "{} is not writable by this user; this run keeps the corpus's state in {} instead \
             (its cache starts empty, and its record of written lists is not the folder's)",
            local.display(),
            state_dir.display()
        ))
    } else if writes {
        Some(format!(
            "{} is not writable by this user; the corpus's state is kept in {}",
            folder.display(),
            state_dir.display()
        ))
    } else {
        None
    }
}

/// The folder a corpus lives in: the path itself for a folder, else the JSON Lines file's
/// folder.
pub fn corpus_folder(path: &Path) -> PathBuf {
    let folder = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    if folder.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        folder
    }
}

/// The locks a run holds: its state folder's (`<state>/lock`), and the corpus folder's own, so
/// that two runs with different state folders (two users, one of whom cannot write the
/// corpus's `.relink`, or `--cache`) still never write one corpus at the same time. Taken by
/// every run that reads or writes the state, in that order, so two runs never wait on each
/// other crosswise. `what` says who holds it (shown to a run that finds it taken). Without
/// `wait`, a taken lock is an error naming the holder; with it, `waiting(lock, holder)` hears
/// about each taken lock once and the lock is awaited. Returns the lock and whether it had to
/// be awaited (the corpus may then have changed). Leftover temporary files in the state
/// folder are removed once the lock is held.
pub fn lock_state(
    state_dir: &Path,
    corpus: &Path,
    what: &str,
    wait: bool,
    waiting: &mut dyn FnMut(&Path, &str),
) -> Result<(crate::fsutil::FolderLock, bool), EngineError> {
    let mut waited = false;
    let lock_path = state_dir.join("lock");
    let lock = crate::fsutil::FolderLock::acquire(state_dir, what, wait, &mut |holder| {
        waited = true;
        waiting(&lock_path, holder)
    })
    .map_err(|source| {
        EngineError::Cache(CacheError::Io {
            path: lock_path.clone(),
            source,
        })
    })?
    .map_err(|holder| EngineError::Locked {
        path: lock_path.clone(),
        holder,
    })?;
    let folder = corpus_folder(corpus);
    let lock = lock
        .and_folder(&folder, wait, &mut |holder| {
            waited = true;
            waiting(&folder, holder)
        })
        .map_err(|source| {
            EngineError::Cache(CacheError::Io {
                path: folder.clone(),
                source,
            })
        })?
        .map_err(|holder| EngineError::Locked {
            path: folder.clone(),
            holder,
        })?;
    crate::fsutil::remove_stale_temps(&crate::fsutil::stale_temps_in(state_dir));
    Ok((lock, waited))
}

/// `$RELINK_CACHE`, else `$XDG_CACHE_HOME/relink`, else `~/.cache/relink`.
pub fn user_cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("RELINK_CACHE") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("relink");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("relink")
}

/// How the vectors were obtained.
#[derive(Clone, Debug, Default)]
pub struct EmbedStats {
    /// Texts embedded by the model in this run.
    pub embedded: usize,
    /// Texts whose vectors came from the cache.
    pub cached: usize,
    /// What opening the cache found.
    pub cache_note: Option<String>,
    /// Whether the model was loaded at all.
    pub model_loaded: bool,
    /// The embedder's identity (the cache key's model part).
    pub model_id: String,
}

/// Durations of the pipeline's stages, in order.
#[derive(Clone, Debug, Default)]
pub struct Timings(pub Vec<(&'static str, Duration)>);

impl Timings {
    pub fn add(&mut self, stage: &'static str, since: Instant) {
        self.0.push((stage, since.elapsed()));
    }

    pub fn total(&self) -> Duration {
        self.0.iter().map(|(_, d)| *d).sum()
    }
}

/// A progress bar on stderr, hidden when stderr is not a terminal or `show` is false.
pub fn progress_bar(len: usize, message: &'static str, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap()
            .progress_chars("=> "),
    );
    bar.set_message(message);
    bar
}

/// Returns the vector of every text, one row each: from the cache where it has them, from the
/// embedder (loaded only if needed) for the rest, which are added to the cache as they come.
pub fn embed_with_cache(
    texts: &[String],
    choice: &EmbedderChoice,
    state_dir: &Path,
    show_progress: bool,
) -> Result<(Array2<f32>, EmbedStats), EngineError> {
    embed_with_cache_keeping(texts, choice, state_dir, show_progress, &[])
        .map(|(vectors, stats, _)| (vectors, stats))
}

/// Vectors by text key.
pub type OldVectors = HashMap<u128, Vec<f32>>;

/// [`embed_with_cache`], also returning the cached vectors of the texts `old` (texts that were
/// in the corpus and are no more), those the cache still holds, before it drops unused ones.
pub fn embed_with_cache_keeping(
    texts: &[String],
    choice: &EmbedderChoice,
    state_dir: &Path,
    show_progress: bool,
    old: &[u128],
) -> Result<(Array2<f32>, EmbedStats, OldVectors), EngineError> {
    let model_id = choice.model_id()?;
    let dim = choice.dim()?;
    let (mut cache, opened) = EmbeddingCache::open(state_dir, &model_id, dim)?;
    let mut stats = EmbedStats {
        cache_note: match opened {
            Opened::Replaced(what) => Some(format!("discarded the old cache ({what})")),
            Opened::Repaired(n) => Some(format!(
                "repaired a cache cut short by an interrupted run ({n} vectors kept)"
            )),
            _ => None,
        },
        model_id: model_id.clone(),
        ..EmbedStats::default()
    };
    let keys: Vec<u128> = texts.iter().map(|t| text_key(t)).collect();
    // Each distinct missing text once, sorted by length so checkpoints hold batches of similar
    // length.
    let mut seen = HashSet::new();
    let mut missing: Vec<usize> = (0..texts.len())
        .filter(|&i| cache.get(keys[i]).is_none() && seen.insert(keys[i]))
        .collect();
    missing.sort_by_key(|&i| (texts[i].len(), i));
    if !missing.is_empty() {
        // A cache that cannot be written would throw the embedding away: find out first.
        cache.ensure_writable()?;
        cache.reserve(missing.len());
        let mut embedder = choice.load(&model_id)?;
        stats.model_loaded = true;
        let bar = progress_bar(missing.len(), "embed", show_progress);
        for chunk in missing.chunks(CHECKPOINT) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i].as_str()).collect();
            let vectors = embedder.embed(&batch)?;
            for (row, &i) in vectors.rows().into_iter().zip(chunk) {
                cache.insert(keys[i], row)?;
            }
            cache.flush()?;
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        stats.embedded = missing.len();
    }
    let mut out = Array2::<f32>::zeros((texts.len(), dim));
    for (i, key) in keys.iter().enumerate() {
        let v = cache.get(*key).expect("every text was embedded above");
        out.row_mut(i).assign(&ndarray::ArrayView1::from(v));
    }
    stats.cached = texts.len() - stats.embedded;
    let old: HashMap<u128, Vec<f32>> = old
        .iter()
        .filter_map(|k| Some((*k, cache.get(*k)?.to_vec())))
        .collect();
    let live: HashSet<u128> = keys.into_iter().collect();
    cache.compact(&live)?;
    Ok((out, stats, old))
}

/// Everything needed to rank the articles of one corpus.
pub struct Engine {
    pub corpus: Corpus,
    pub keys: Vec<ArticleKey>,
    pub index: VectorIndex,
    pub bm25: Bm25,
    pub embed_stats: EmbedStats,
    /// What became of the HNSW graph kept in the state folder.
    pub graph: crate::index::GraphReuse,
    /// Files parsed when the corpus was read (the others came from their records); set by the
    /// caller that read it.
    pub parsed: usize,
    /// Whether BM25 and quality percentiles were weighed by the kept lists' statistics (else by
    /// the corpus's own).
    pub stats_kept: bool,
    /// Vectors of the texts that left the corpus since the kept lists, those the cache still
    /// held.
    pub old_vectors: HashMap<u128, Vec<f32>>,
    /// The lists kept by the last refresh, matched with this corpus.
    pub kept: Option<crate::selective::Kept>,
    /// Pins, blocks and locks of the corpus's files, and the corpus rules.
    pub editorial: crate::editorial::Editorial,
    pub timings: Timings,
}

/// Settings of the pipeline up to the index.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    pub embedder: EmbedderChoice,
    pub state_dir: PathBuf,
    pub search: SearchMode,
    pub hnsw: HnswParams,
    pub show_progress: bool,
    /// The corpus-wide rules of `relink.toml`.
    pub rules: crate::editorial::Rules,
}

impl Engine {
    /// Embeds (or looks up) every article of `corpus` and builds the indexes.
    pub fn build(
        corpus: Corpus,
        settings: &EngineSettings,
        timings: Timings,
    ) -> Result<Engine, EngineError> {
        Engine::build_with(corpus, settings, timings, None)
    }

    /// [`Engine::build`], with the lists kept by the last refresh: their statistics weigh the
    /// scores while they hold ([`crate::selective::Snapshot::stats_hold`]), and the vectors of
    /// the articles that left since are looked up for [`crate::selective::plan`].
    pub fn build_with(
        corpus: Corpus,
        settings: &EngineSettings,
        mut timings: Timings,
        kept: Option<crate::selective::Kept>,
    ) -> Result<Engine, EngineError> {
        let stats = kept
            .as_ref()
            .filter(|k| k.snapshot.stats_hold(&k.matching))
            .map(|k| &k.snapshot.stats);
        let old_texts: Vec<u128> = kept.as_ref().map_or(Vec::new(), |k| {
            k.matching
                .left
                .iter()
                .map(|&e| k.snapshot.entries[e].text_key)
                .collect()
        });
        let t = Instant::now();
        let texts: Vec<String> = corpus.articles.iter().map(|a| a.text()).collect();
        let (vectors, embed_stats, old_vectors) = embed_with_cache_keeping(
            &texts,
            &settings.embedder,
            &settings.state_dir,
            settings.show_progress,
            &old_texts,
        )?;
        timings.add("embed", t);
        let t = Instant::now();
        // A kept graph holds one point per text key, of this model's vectors.
        let text_keys: Vec<u128> = texts.iter().map(|t| text_key(t)).collect();
        let (index, graph) = VectorIndex::build_or_load(
            vectors,
            &text_keys,
            settings.search,
            settings.hnsw,
            &settings.state_dir,
            &embed_stats.model_id,
        );
        // BM25 over titles alone: measured on diablo4, titles carry the names and numbers that
        // tie coverage of one story together, and excerpts mostly add noise (recall@5 0.55
        // with titles, 0.49 with title + excerpt).
        let titles: Vec<&str> = corpus.articles.iter().map(|a| a.title.as_str()).collect();
        let (bm25, keys) = match stats {
            Some(stats) => (
                Bm25::with_stats(&titles, Some(&stats.lexical)),
                ArticleKey::of_corpus_with(&corpus.articles, &stats.qualities),
            ),
            None => (Bm25::new(&titles), ArticleKey::of_corpus(&corpus.articles)),
        };
        timings.add("index", t);
        let editorial =
            crate::editorial::Editorial::resolve(&corpus.root, &corpus.articles, &settings.rules);
        Ok(Engine {
            editorial,
            stats_kept: stats.is_some(),
            old_vectors,
            kept,
            parsed: corpus.articles.len() + corpus.errors.len(),
            corpus,
            keys,
            index,
            bm25,
            embed_stats,
            graph,
            timings,
        })
    }

    /// The related list of free text (a draft headline, say), embedded with `embedder` (loaded
    /// for it). Without a `date`, time is not weighed: there is nothing to weigh it from.
    pub fn rank_text(
        &self,
        text: &str,
        date: Option<chrono::DateTime<chrono::Utc>>,
        options: &RankOptions,
        embedder: &EmbedderChoice,
    ) -> Result<Vec<crate::rank::Scored>, EngineError> {
        let vector = embedder.load(&self.embed_stats.model_id)?.embed(&[text])?;
        Ok(self.rank_vector(vector.row(0), text, date, options))
    }

    /// The related list of a text already embedded as `vector`, whose title (for BM25) is
    /// `title`. Without a `date`, time is not weighed.
    pub fn rank_vector(
        &self,
        vector: ndarray::ArrayView1<f32>,
        title: &str,
        date: Option<chrono::DateTime<chrono::Utc>>,
        options: &RankOptions,
    ) -> Vec<crate::rank::Scored> {
        let ranker = self.ranker(match date {
            Some(_) => options.clone(),
            None => RankOptions {
                half_life_after: 0.0,
                half_life_before: 0.0,
                undated_factor: 1.0,
                ..options.clone()
            },
        });
        let terms = self.bm25.text_terms(title);
        let within = ranker.window(date, None);
        let query = crate::rank::Query {
            vector,
            index: None,
            key: ArticleKey {
                date,
                title: crate::rank::normalize_title(title),
                quality: 0.5,
                ..ArticleKey::default()
            },
            lexical: ranker.lexical_matches_within(&terms, within.as_deref()),
            terms,
            lexical_self: self.bm25.query_self_score(title),
        };
        let neighbours = ranker.neighbours(&query, within.as_deref());
        ranker.rank(&query, &neighbours)
    }

    /// A list as `relink related --json` prints it (and the server answers): the query, whether
    /// the article's list is locked, and per entry its rank, score parts, file and entry.
    pub fn related_json(
        &self,
        title: &str,
        list: &[crate::rank::Scored],
        locked: bool,
    ) -> serde_json::Value {
        let items: Vec<serde_json::Value> = list
            .iter()
            .enumerate()
            .map(|(r, s)| {
                let a = &self.corpus.articles[s.index];
                serde_json::json!({
                    "rank": r + 1,
                    "score": s.score,
                    "cosine": s.cosine,
                    "lexical": s.lexical,
                    "similarity": s.similarity,
                    "time": s.time,
                    "quality": s.quality,
                    "pinned": s.pinned,
                    "file": a.display_path(),
                    "entry": a.to_related(),
                })
            })
            .collect();
        serde_json::json!({ "query": title, "locked": locked, "related": items })
    }

    pub fn ranker(&self, options: RankOptions) -> Ranker<'_> {
        Ranker {
            index: &self.index,
            bm25: &self.bm25,
            keys: &self.keys,
            editorial: &self.editorial,
            options,
        }
    }
}
