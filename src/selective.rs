//! Selective re-ranking: after a change to the corpus, re-rank only the lists the change can
//! reach, and keep the others as they are, with the same result as re-ranking every list.
//!
//! A refresh keeps, in `lists.bin` in the state folder, every article's list with its bounds
//! ([`ListBounds`]) and the statistics the scores were computed with ([`RankStats`]: BM25's
//! document frequencies and average title length, the corpus's quality distribution). The next
//! refresh weighs scores by the same statistics, so an article's score for a candidate depends
//! on the two articles alone, and a list can change only through candidates that enter or leave
//! the pools it was picked from. Against every article that entered (new or changed) and every
//! one that left (removed, or the old version of a changed one), each kept list is checked:
//!
//! - a list holding an article that left is re-ranked;
//! - an article that entered its neighbour or lexical zone (pool + reserve, by cosine or BM25)
//!   and scores at least the list's last entry (or the list is short) re-ranks it;
//! - entries are counted out of the pools by the articles that entered above them: an entry
//!   that could have been pushed out of both re-ranks its list;
//! - articles that left the zones let candidates of the reserve into the pools, in order, one
//!   for each that left: the list stands while the reserve's first candidates that many could
//!   not enter it ([`ListBounds::tolerance`], at most [`crate::rank::RESERVE`]); otherwise it is re-ranked.
//!
//! Counts add up across refreshes until a list is re-ranked. The statistics are taken afresh,
//! and every list re-ranked, once the articles changed since they were taken exceed
//! [`RENEW_SHARE`] of the corpus, when the settings change, or with `refresh --full`... which
//! keeps the statistics, so that it computes what the kept lists must equal. With exact search
//! the kept lists equal a full re-ranking (tests/incremental.rs); with HNSW, as full re-rankings
//! themselves do, they agree with exact search at the graph's recall.

use std::collections::HashMap;
use std::path::Path;

use rayon::prelude::*;

use crate::article::Article;
use crate::cache::text_key;
use crate::coarse::{Coarse, Columns};
use crate::engine::Engine;
use crate::lexical::{LexicalStats, TextDoc};
use crate::rank::{ListBounds, Ranker};

/// Name of the kept lists in the state folder.
pub const SNAPSHOT: &str = "lists.bin";

/// Share of the corpus (articles added, changed or removed since the statistics were taken) past
/// which a refresh takes the statistics afresh and re-ranks every list.
pub const RENEW_SHARE: f64 = 0.10;

const MAGIC: &[u8] = b"relink lists\n";
/// 3: title terms with plurals folded ([`crate::lexical::ANALYZER`]): the document frequencies
/// kept by an earlier version count other terms.
const VERSION: u32 = 3;

/// The corpus-wide statistics scores are computed with.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RankStats {
    pub lexical: LexicalStats,
    /// Every article's quality, sorted.
    pub qualities: Vec<i64>,
}

impl RankStats {
    /// The statistics of the engine's own corpus.
    pub fn of(engine: &Engine) -> RankStats {
        RankStats {
            lexical: engine.bm25.stats(),
            qualities: crate::rank::quality_distribution(&engine.corpus.articles),
        }
    }
}

/// One article's kept list.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The article's key ([`keys`]).
    pub key: String,
    /// What other lists see of the article ([`fingerprint`]).
    pub fingerprint: u64,
    pub text_key: u128,
    /// Its title, for BM25 once it has left.
    pub title: String,
    /// The list: positions of entries of this snapshot.
    pub list: Vec<u32>,
    /// [`crate::state::list_hash`] of its entries.
    pub list_hash: u64,
    pub bounds: ListBounds,
    pub counts: Counts,
}

/// Articles that entered and left a list's neighbour and lexical zones (pool + reserve, by
/// cosine and by BM25) since the list was ranked.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    pub entered: (u32, u32),
    pub left: (u32, u32),
}

/// The lists of the last refresh, with what they were computed with.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// What the lists depend on besides the files (relink's version, model, search, options).
    pub settings: String,
    pub stats: RankStats,
    /// Articles added, changed or removed since the statistics were taken.
    pub changed_since_stats: u64,
    pub entries: Vec<Entry>,
}

/// An article's key: its path below the corpus folder (a JSON Lines article: its URL, else its
/// title), with `#2`, `#3`... on repeats, so that every article has its own.
pub fn keys(root: &Path, articles: &[Article]) -> Vec<String> {
    let mut seen: HashMap<String, u32> = HashMap::new();
    articles
        .iter()
        .map(|a| {
            let key = crate::state::article_key(root, a);
            let n = seen.entry(key.clone()).or_default();
            *n += 1;
            if *n == 1 {
                key
            } else {
                format!("{key}#{n}")
            }
        })
        .collect()
}

/// What the lists of other articles see of an article: its text (through its vector and
/// title) and every field of its related entry (date, provider, quality, URL...); and what its
/// own list depends on besides: its `relink:` map.
pub fn fingerprint(article: &Article) -> u64 {
    let mut bytes = text_key(&article.text()).to_le_bytes().to_vec();
    bytes.extend(serde_json::to_vec(&article.to_related()).unwrap_or_default());
    if !article.control.is_empty() {
        bytes.extend(serde_json::to_vec(&article.control).unwrap_or_default());
    }
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

/// How the corpus read now differs from a snapshot.
#[derive(Debug, Default)]
pub struct Matching {
    /// Per current article: the snapshot entry of the same key and fingerprint.
    pub entry_of: Vec<Option<u32>>,
    /// Per snapshot entry: the current article it still is.
    pub article_of: Vec<Option<u32>>,
    /// Current articles new or changed since the snapshot.
    pub entered: Vec<usize>,
    /// Snapshot entries removed or changed since.
    pub left: Vec<usize>,
    /// Articles added, changed or removed (a changed article counts once).
    pub changed: u64,
}

impl Snapshot {
    /// Reads the snapshot in `state_dir`; none, a damaged or another version's is `None`.
    pub fn load(state_dir: &Path) -> Option<Snapshot> {
        let bytes = crate::fsutil::read_regular(&state_dir.join(SNAPSHOT)).ok()?;
        let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(8)?)?;
        if xxhash_rust::xxh3::xxh3_64(body).to_le_bytes() != sum {
            return None;
        }
        let mut r = Reader(body.strip_prefix(MAGIC)?);
        if r.u32()? != VERSION {
            return None;
        }
        let settings = r.str()?;
        let docs = r.u64()?;
        let avg_len = r.f32()?;
        let terms = r.u64()? as usize;
        let mut df = HashMap::with_capacity(terms.min(body.len()));
        for _ in 0..terms {
            let word = r.str()?;
            df.insert(word, r.u32()?);
        }
        let n = r.u64()? as usize;
        let mut qualities = Vec::with_capacity(n.min(body.len()));
        for _ in 0..n {
            qualities.push(r.u64()? as i64);
        }
        let changed_since_stats = r.u64()?;
        let n = r.u64()? as usize;
        let mut entries = Vec::with_capacity(n.min(body.len()));
        for _ in 0..n {
            let key = r.str()?;
            let fingerprint = r.u64()?;
            let text_key = u128::from(r.u64()?) | (u128::from(r.u64()?) << 64);
            let title = r.str()?;
            let list_hash = r.u64()?;
            let len = r.u32()? as usize;
            let mut list = Vec::with_capacity(len.min(1000));
            let mut ranks = Vec::with_capacity(len.min(1000));
            for _ in 0..len {
                let at = r.u32()?;
                if at as usize >= n {
                    return None;
                }
                list.push(at);
                ranks.push((r.u32()?, r.u32()?));
            }
            let bounds = ListBounds {
                last: r.f32()?,
                cos_edge: r.f32()?,
                lex_edge: r.f32()?,
                tolerance: (r.u32()?, r.u32()?),
                ranks,
            };
            entries.push(Entry {
                key,
                fingerprint,
                text_key,
                title,
                list,
                list_hash,
                bounds,
                counts: Counts {
                    entered: (r.u32()?, r.u32()?),
                    left: (r.u32()?, r.u32()?),
                },
            });
        }
        if !r.0.is_empty() {
            return None;
        }
        Some(Snapshot {
            settings,
            stats: RankStats {
                lexical: LexicalStats { docs, avg_len, df },
                qualities,
            },
            changed_since_stats,
            entries,
        })
    }

    /// Writes the snapshot into `state_dir` (atomically).
    pub fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        let mut w = MAGIC.to_vec();
        let put_str = |w: &mut Vec<u8>, s: &str| {
            w.extend((s.len() as u32).to_le_bytes());
            w.extend(s.as_bytes());
        };
        w.extend(VERSION.to_le_bytes());
        put_str(&mut w, &self.settings);
        let lex = &self.stats.lexical;
        w.extend(lex.docs.to_le_bytes());
        w.extend(lex.avg_len.to_le_bytes());
        w.extend((lex.df.len() as u64).to_le_bytes());
        let mut df: Vec<(&String, &u32)> = lex.df.iter().collect();
        df.sort_unstable();
        for (word, n) in df {
            put_str(&mut w, word);
            w.extend(n.to_le_bytes());
        }
        w.extend((self.stats.qualities.len() as u64).to_le_bytes());
        for q in &self.stats.qualities {
            w.extend(q.to_le_bytes());
        }
        w.extend(self.changed_since_stats.to_le_bytes());
        w.extend((self.entries.len() as u64).to_le_bytes());
        for e in &self.entries {
            put_str(&mut w, &e.key);
            w.extend(e.fingerprint.to_le_bytes());
            w.extend((e.text_key as u64).to_le_bytes());
            w.extend(((e.text_key >> 64) as u64).to_le_bytes());
            put_str(&mut w, &e.title);
            w.extend(e.list_hash.to_le_bytes());
            w.extend((e.list.len() as u32).to_le_bytes());
            for (at, (rc, rl)) in e.list.iter().zip(&e.bounds.ranks) {
                w.extend(at.to_le_bytes());
                w.extend(rc.to_le_bytes());
                w.extend(rl.to_le_bytes());
            }
            let b = &e.bounds;
            for x in [b.last, b.cos_edge, b.lex_edge] {
                w.extend(x.to_le_bytes());
            }
            w.extend(b.tolerance.0.to_le_bytes());
            w.extend(b.tolerance.1.to_le_bytes());
            let c = &e.counts;
            for x in [c.entered.0, c.entered.1, c.left.0, c.left.1] {
                w.extend(x.to_le_bytes());
            }
        }
        let sum = xxhash_rust::xxh3::xxh3_64(&w);
        w.extend(sum.to_le_bytes());
        crate::fsutil::write_new(&state_dir.join(SNAPSHOT), &w)
    }

    /// Matches the articles read now (`keys` and `fingerprints`, in corpus order) with the
    /// snapshot's.
    pub fn matching(&self, keys: &[String], fingerprints: &[u64]) -> Matching {
        let by_key: HashMap<&str, u32> = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.key.as_str(), i as u32))
            .collect();
        let mut m = Matching {
            entry_of: vec![None; keys.len()],
            article_of: vec![None; self.entries.len()],
            ..Matching::default()
        };
        let mut edited = 0u64;
        for (i, (key, fp)) in keys.iter().zip(fingerprints).enumerate() {
            match by_key.get(key.as_str()) {
                Some(&e) if self.entries[e as usize].fingerprint == *fp => {
                    m.entry_of[i] = Some(e);
                    m.article_of[e as usize] = Some(i as u32);
                }
                Some(_) => {
                    edited += 1;
                    m.entered.push(i);
                }
                None => m.entered.push(i),
            }
        }
        m.left = (0..self.entries.len())
            .filter(|&e| m.article_of[e].is_none())
            .collect();
        m.changed = (m.entered.len() + m.left.len()) as u64 - edited;
        m
    }

    /// Whether the statistics still stand for the corpus matched by `m`: the articles changed
    /// since they were taken are at most [`RENEW_SHARE`] of it.
    pub fn stats_hold(&self, m: &Matching) -> bool {
        let changed = self.changed_since_stats + m.changed;
        let size = self.stats.lexical.docs.max(m.entry_of.len() as u64);
        (changed as f64) <= RENEW_SHARE * size as f64
    }
}

/// The kept lists, matched with the corpus read now.
#[derive(Debug)]
pub struct Kept {
    pub snapshot: Snapshot,
    pub matching: Matching,
}

impl Kept {
    /// The snapshot in `state_dir` matched with `articles` (of the folder `root`); `None` when
    /// there is none or it cannot be read.
    pub fn load(state_dir: &Path, root: &Path, articles: &[Article]) -> Option<Kept> {
        let snapshot = Snapshot::load(state_dir)?;
        let fingerprints: Vec<u64> = articles.par_iter().map(fingerprint).collect();
        let matching = snapshot.matching(&keys(root, articles), &fingerprints);
        Some(Kept { snapshot, matching })
    }
}

/// Which lists a refresh re-ranks and which it keeps.
#[derive(Debug, Default)]
pub struct Plan {
    /// Current articles whose list is ranked: the new and changed ones, and those a change
    /// can reach.
    pub rerank: Vec<usize>,
    /// Current articles whose list is kept, with their entry's counts after this change.
    pub kept: Vec<(usize, Counts)>,
}

/// An article that entered or left, as the lists see it.
struct Moved<'a> {
    vector: &'a [f32],
    doc: TextDoc,
    /// The current article, for one that entered.
    article: Option<usize>,
}

/// Works out which lists the change from `snapshot` to the engine's corpus (`m`) can reach.
/// `None` when it cannot be told (the vector of an article that left is no longer cached):
/// then every list is ranked.
pub fn plan(snapshot: &Snapshot, m: &Matching, engine: &Engine, ranker: &Ranker) -> Option<Plan> {
    let o = &ranker.options;
    // With diversity or a per-provider cap, an entry depends on the others chosen, not on its
    // score alone: a candidate below the last entry can still enter. Every list is ranked.
    // With a time window, a pool is cut from the window: its bounds are the window's.
    if o.diversity > 0.0 || o.max_per_provider > 0 || o.has_window() {
        return None;
    }
    let mut moved: Vec<Moved> = Vec::with_capacity(m.entered.len() + m.left.len());
    for &a in &m.entered {
        moved.push(Moved {
            vector: engine.index.vectors().row(a).to_slice()?,
            doc: engine.bm25.doc(a),
            article: Some(a),
        });
    }
    for &e in &m.left {
        let entry = &snapshot.entries[e];
        moved.push(Moved {
            vector: engine.old_vectors.get(&entry.text_key)?.as_slice(),
            doc: engine.bm25.doc_of_text(&entry.title),
            article: None,
        });
    }
    let kept_candidates: Vec<usize> = (0..m.entry_of.len())
        .filter(|&a| m.entry_of[a].is_some())
        .collect();
    let changes = Columns::of(moved.iter().map(|mv| mv.vector));
    let entry = |a: usize| &snapshot.entries[m.entry_of[a].expect("a kept article") as usize];

    // Lexical: the moved articles as documents, scored against each kept article's terms.
    let mut lexical_hits: Vec<(u32, u32)> = if o.lexical_weight > 0.0 {
        // A kept list's lexical zone is entered (or left) by a document scoring at least its
        // edge; below the lowest edge a document holding only a moved article's lightest terms
        // cannot, which leaves out the postings of words in half the titles. A list whose
        // zone held every match (edge 0) counts any shared term: those are looked up apart.
        let floor = kept_candidates
            .par_iter()
            .map(|&a| entry(a).bounds.lex_edge)
            .filter(|&e| e > 0.0 && e.is_finite())
            .reduce(|| f32::INFINITY, f32::min);
        let mut every_match: HashMap<u32, Vec<usize>> = HashMap::new();
        for &a in &kept_candidates {
            if entry(a).bounds.lex_edge <= 0.0 {
                for t in engine.bm25.doc_terms(a) {
                    every_match.entry(t).or_default().push(a);
                }
            }
        }
        moved
            .par_iter()
            .enumerate()
            .flat_map_iter(|(j, mv)| {
                let bm25 = &engine.bm25;
                // In document order, each once.
                let mut found = bm25.docs_holding(&bm25.essential_terms(&mv.doc, floor));
                let held = found.len();
                found.extend(
                    mv.doc
                        .terms
                        .iter()
                        .filter_map(|(t, _)| every_match.get(t))
                        .flatten(),
                );
                if found.len() > held {
                    found.sort_unstable();
                    found.dedup();
                }
                found
                    .into_iter()
                    .filter(|&a| m.entry_of[a].is_some())
                    .filter(move |&a| {
                        let s = bm25.doc_score_against(a, &mv.doc);
                        s > 0.0 && s >= entry(a).bounds.lex_edge
                    })
                    .map(move |a| (a as u32, j as u32))
                    .collect::<Vec<_>>()
            })
            .collect()
    } else {
        Vec::new()
    };
    lexical_hits.par_sort_unstable();

    // Neighbours: a block of kept articles at a time, the moved articles that can come near
    // each told by bounds from 8-bit vectors ([`Coarse::reaching`]); with a matrix product in
    // `f32` instead, the whole plan took 41.5 s at a million articles, 17.9 s with the bounds.
    const BLOCK: usize = 512;
    let rounding = crate::index::product_rounding(engine.index.vectors().ncols());
    let verdicts: Vec<Option<Counts>> = kept_candidates
        .par_chunks(BLOCK)
        .flat_map_iter(|block| {
            let vectors = engine.index.vectors();
            let rows = Coarse::of(
                block
                    .iter()
                    .map(|&a| vectors.row(a).to_slice().expect("rows are contiguous")),
            );
            let near = rows.reaching(&changes, |i| entry(block[i]).bounds.cos_edge - rounding);
            block
                .iter()
                .zip(near)
                .map(|(&a, near)| {
                    let from = lexical_hits.partition_point(|h| h.0 < a as u32);
                    let to = lexical_hits.partition_point(|h| h.0 <= a as u32);
                    let lexical: Vec<u32> = lexical_hits[from..to].iter().map(|h| h.1).collect();
                    verdict(a, entry(a), &near, &lexical, &moved, m, ranker)
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let mut plan = Plan {
        rerank: m.entered.clone(),
        kept: Vec::new(),
    };
    for (&a, v) in kept_candidates.iter().zip(verdicts) {
        match v {
            // A list that names other articles (pins, blocks) can change whenever one of them
            // appears or goes, whatever its score: ranked every time (editors pin few).
            Some(counts) if !engine.editorial.names_targets(a) => plan.kept.push((a, counts)),
            _ => plan.rerank.push(a),
        }
    }
    plan.rerank.sort_unstable();
    Some(plan)
}

/// Whether kept article `a`'s list stands after the change (`Some`, with its new counts) or
/// must be re-ranked (`None`). `near`: the moved articles whose cosine with `a` can reach its
/// edge (a superset: each is compared here exactly); `lexical`: the moved articles that entered
/// or left its lexical zone.
fn verdict(
    a: usize,
    e: &Entry,
    near: &[u32],
    lexical: &[u32],
    moved: &[Moved],
    m: &Matching,
    ranker: &Ranker,
) -> Option<Counts> {
    let o = &ranker.options;
    let b = &e.bounds;
    // An entry that left (removed or changed).
    if e.list.iter().any(|&t| m.article_of[t as usize].is_none()) {
        return None;
    }
    let Counts {
        mut entered,
        mut left,
    } = e.counts;
    let mut newcomers: Vec<usize> = Vec::new();
    let row = ranker.index.vectors().row(a);
    let row = row.to_slice().expect("rows are contiguous");
    for &j in near {
        // The cosine the search compared (through `dot`, as every cosine the ranker uses).
        let j = j as usize;
        if crate::index::dot(row, moved[j].vector) >= b.cos_edge {
            match moved[j].article {
                Some(x) => {
                    entered.0 += 1;
                    newcomers.push(x);
                }
                None => left.0 += 1,
            }
        }
    }
    for &j in lexical {
        match moved[j as usize].article {
            Some(x) => {
                entered.1 += 1;
                newcomers.push(x);
            }
            None => left.1 += 1,
        }
    }
    // A newcomer that would enter the list.
    if !newcomers.is_empty() {
        let q = ranker.light_query(a);
        newcomers.sort_unstable();
        newcomers.dedup();
        if newcomers
            .iter()
            .any(|&x| ranker.score(&q, x).is_some_and(|s| s.score >= b.last))
        {
            return None;
        }
    }
    // An entry pushed out of both pools by newcomers above it.
    let cos_pool = o.pool.saturating_add(1);
    let survives = |&(rc, rl): &(u32, u32)| {
        (rc as usize).saturating_add(entered.0 as usize) < cos_pool
            || (rl as usize).saturating_add(entered.1 as usize) < o.pool
    };
    if !b.ranks.iter().all(survives) {
        return None;
    }
    // Candidates of the reserve let into the pools by the ones that left: no more than left
    // each pool's zone, the first ones of its reserve.
    if left.0 > b.tolerance.0 || left.1 > b.tolerance.1 {
        return None;
    }
    Some(Counts { entered, left })
}

/// Reads little-endian fields off a byte slice.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn f32(&mut self) -> Option<f32> {
        Some(f32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn str(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        let entry = |key: &str, list: Vec<u32>| Entry {
            key: key.to_string(),
            fingerprint: 7,
            text_key: u128::MAX - 3,
            title: format!("Title of {key}"),
            list_hash: 11,
            bounds: ListBounds {
                last: 0.25,
                cos_edge: f32::NEG_INFINITY,
                lex_edge: f32::INFINITY,
                tolerance: (3, 32),
                ranks: list.iter().map(|&t| (t, u32::MAX)).collect(),
            },
            list,
            counts: Counts {
                entered: (1, 2),
                left: (3, 4),
            },
        };
        Snapshot {
            settings: "{\"k\":5}".to_string(),
            stats: RankStats {
                lexical: LexicalStats {
                    docs: 2,
                    avg_len: 3.5,
                    df: [("storm".to_string(), 2), ("bridge".to_string(), 1)].into(),
                },
                qualities: vec![-1, 40, 90],
            },
            changed_since_stats: 9,
            entries: vec![entry("a.md", vec![1]), entry("b é.md", vec![0])],
        }
    }

    #[test]
    fn a_snapshot_reads_back_as_written_and_a_damaged_one_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let s = snapshot();
        s.save(dir.path()).unwrap();
        assert_eq!(Snapshot::load(dir.path()), Some(s));
        let path = dir.path().join(SNAPSHOT);
        let bytes = std::fs::read(&path).unwrap();
        for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            assert_eq!(Snapshot::load(dir.path()), None, "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[bytes.len() / 2] ^= 1;
        std::fs::write(&path, flipped).unwrap();
        assert_eq!(Snapshot::load(dir.path()), None);
    }

    #[test]
    fn matching_tells_new_changed_and_removed_articles_apart() {
        let s = snapshot();
        // a.md unchanged, b é.md changed, c.md new.
        let keys = ["a.md", "b é.md", "c.md"].map(String::from);
        let m = s.matching(&keys, &[7, 8, 7]);
        assert_eq!(m.entry_of, vec![Some(0), None, None]);
        assert_eq!(m.article_of, vec![Some(0), None]);
        assert_eq!(m.entered, vec![1, 2]);
        assert_eq!(m.left, vec![1]);
        assert_eq!(m.changed, 2);
        // Statistics of 2 documents with 9 changes since: renewed.
        assert!(!s.stats_hold(&m));
    }

    #[test]
    fn repeated_keys_are_told_apart() {
        let source = |line| crate::article::Source::JsonLine {
            path: "x.jsonl".into(),
            line,
        };
        let a = crate::article::parse_json_article(r#"{"title": "One"}"#, source(1));
        let b = crate::article::parse_json_article(r#"{"title": "One"}"#, source(2));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(keys(Path::new("."), &[a, b]), vec!["One", "One#2"]);
    }
}
