//! The ranker: from an article's nearest neighbours to its related list.
//!
//! For each article, candidates are its `pool` nearest neighbours by embedding cosine (of title +
//! excerpt) plus its `pool` best BM25 matches (over titles). Each candidate gets
//!
//! ```text
//! score = similarity x time x quality
//! similarity = (1 - lexical_weight) x cosine + lexical_weight x title x cosine ^ lexical_gate
//! title      = bm25 / bm25(article, itself)   (BM25 over titles, 0..1)
//! time       = 0.5 ^ (days after / half_life_after)    for a candidate published after
//!              0.5 ^ (days before / half_life_before)  for one published before
//!              undated_factor                           when either date is missing
//!              0 (dropped) beyond window_after / window_before days, when those are set:
//!              such a window is cut before the pools, which then hold its best candidates
//! quality    = 1 + quality_weight x (percentile of the provider's quality in the corpus - 0.5)
//!              (a candidate without quality counts as the median)
//! ```
//!
//! and never recommended are: the article itself, an article with the same `webUrl`, one with
//! the same normalised title from the same provider, a near-duplicate (cosine >= `duplicate`),
//! and, with `exclude_same_provider`, anything from the same provider. Within one list no two
//! entries are near-duplicates of each other: the better-scored one stays. Ties are broken by
//! corpus position, so the same corpus and options give the same lists on every run.

use chrono::{DateTime, Utc};
use ndarray::ArrayView1;
use rayon::prelude::*;

use crate::article::Article;
use crate::editorial::Editorial;
use crate::index::{Neighbour, VectorIndex};
use crate::lexical::Bm25;

/// Ranking options. `Default` holds the defaults chosen by `relink eval` by the worst case over
/// diablo4's lists and huffpost's labels (see the README's quality section).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RankOptions {
    /// Entries per list.
    pub k: usize,
    /// Candidates taken from the vector index and from BM25, each.
    pub pool: usize,
    /// Candidates below this cosine are never recommended.
    pub min_similarity: f32,
    /// Share of title BM25 in the similarity (0 = embeddings only).
    pub lexical_weight: f32,
    /// How far a title match counts in proportion to the embedding cosine: it is multiplied by
    /// `cosine ^ lexical_gate` (0 = not at all: the two added as they are; 1 = a title match
    /// between articles the embedding finds unrelated counts for little).
    pub lexical_gate: f32,
    /// Days after the article at which a candidate's time factor halves (0 = no time weighting
    /// after).
    pub half_life_after: f32,
    /// Days before the article at which a candidate's time factor halves (0 = no time weighting
    /// before).
    pub half_life_before: f32,
    /// Time factor when the article or the candidate has no date.
    pub undated_factor: f32,
    /// Candidates published more than this many days after the article are dropped (0 = no
    /// limit).
    pub window_after: f32,
    /// Candidates published more than this many days before the article are dropped (0 = no
    /// limit).
    pub window_before: f32,
    /// Weight of the provider's quality (0 = ignored).
    pub quality_weight: f32,
    /// Cosine at or above which two articles are near-duplicates (syndicated copies).
    pub duplicate: f32,
    /// Never recommend an article from the article's own provider.
    pub exclude_same_provider: bool,
    /// Maximal marginal relevance: each next entry is the candidate with the best score minus
    /// this much of its largest cosine to the entries already chosen (0 = off: by score).
    pub diversity: f32,
    /// At most this many entries from one provider (0 = no limit).
    pub max_per_provider: usize,
}

impl Default for RankOptions {
    fn default() -> Self {
        RankOptions {
            k: 5,
            pool: 200,
            min_similarity: 0.2,
            lexical_weight: 0.75,
            lexical_gate: 1.0,
            half_life_after: 20.0,
            half_life_before: 1.0,
            undated_factor: 0.5,
            window_after: 0.0,
            window_before: 0.0,
            quality_weight: 0.1,
            duplicate: 0.99,
            exclude_same_provider: false,
            diversity: 0.0,
            max_per_provider: 0,
        }
    }
}

impl RankOptions {
    /// Plain embedding similarity: no time, quality or lexical signal (the `cosine` baseline).
    pub fn cosine_only(&self) -> RankOptions {
        RankOptions {
            lexical_weight: 0.0,
            half_life_after: 0.0,
            half_life_before: 0.0,
            undated_factor: 1.0,
            window_after: 0.0,
            window_before: 0.0,
            quality_weight: 0.0,
            min_similarity: -1.0,
            ..self.clone()
        }
    }

    /// Whether a time window limits the candidates.
    pub fn has_window(&self) -> bool {
        self.window_after > 0.0 || self.window_before > 0.0
    }

    /// BM25 alone (the `lexical` baseline).
    pub fn lexical_only(&self) -> RankOptions {
        RankOptions {
            lexical_weight: 1.0,
            lexical_gate: 0.0,
            ..self.cosine_only()
        }
    }
}

/// The longest list relink writes (`--top`'s upper bound).
pub const MAX_K: usize = 1_000;

/// The valid range of each numeric ranking option, inclusive. Counts start at 1 (a list of 0
/// entries or a pool of 0 candidates would silently empty every list), and the pool stops where
/// it would stop being a shortlist.
const RANGES: &[(&str, f64, f64)] = &[
    ("k", 1.0, MAX_K as f64),
    ("pool", 1.0, 100_000.0),
    ("min-similarity", -1.0, 1.0),
    ("lexical-weight", 0.0, 1.0),
    ("lexical-gate", 0.0, 4.0),
    ("half-life-after", 0.0, 36_500.0),
    ("half-life-before", 0.0, 36_500.0),
    ("undated-factor", 0.0, 1.0),
    ("window-after", 0.0, 36_500.0),
    ("window-before", 0.0, 36_500.0),
    ("quality-weight", 0.0, 2.0),
    ("duplicate", 0.0, 1.0),
    ("diversity", 0.0, 1.0),
    ("max-per-provider", 0.0, 1_000.0),
];

/// Checks a value of the ranking option `name` (its kebab-case name) against its range; names
/// without a range (flags) pass.
pub fn check_option(name: &str, value: f64) -> Result<(), String> {
    let Some(&(_, min, max)) = RANGES.iter().find(|(n, _, _)| *n == name) else {
        return Ok(());
    };
    if !value.is_finite() {
        return Err(format!("must be a finite number between {min} and {max}"));
    }
    if value < min || value > max {
        return Err(format!("out of range: must be between {min} and {max}"));
    }
    Ok(())
}

/// Calls `$then!` with every overridable ranking option: its field and its kebab-case name, as
/// used on the command line, in `relink.toml` and by `--sweep`. The one list of them.
macro_rules! with_rank_options {
    ($then:ident) => {
        $then!(
            k: "k",
            pool: "pool",
            min_similarity: "min-similarity",
            lexical_weight: "lexical-weight",
            lexical_gate: "lexical-gate",
            half_life_after: "half-life-after",
            half_life_before: "half-life-before",
            undated_factor: "undated-factor",
            window_after: "window-after",
            window_before: "window-before",
            quality_weight: "quality-weight",
            duplicate: "duplicate",
            exclude_same_provider: "exclude-same-provider",
            diversity: "diversity",
            max_per_provider: "max-per-provider"
        )
    };
}

/// Ranking options given on the command line or in `relink.toml`: each one set replaces the
/// default. The help text's defaults are [`RankOptions::default`]'s (a test checks it).
#[derive(Clone, Debug, Default, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RankOverrides {
    /// Entries per related list [default: 5].
    #[arg(short = 'k', long = "top", value_name = "K")]
    pub k: Option<usize>,
    /// Candidates taken from the vector index and from BM25, each [default: 200].
    #[arg(long)]
    pub pool: Option<usize>,
    /// Never recommend below this embedding cosine [default: 0.2].
    #[arg(long, allow_negative_numbers = true)]
    pub min_similarity: Option<f32>,
    /// Share of title BM25 in the similarity, 0..1 [default: 0.75].
    #[arg(long)]
    pub lexical_weight: Option<f32>,
    /// Title BM25 counts times cosine^X, 0..4: 0 adds it as it is, 1 lets it count only as far
    /// as the embeddings agree [default: 1].
    #[arg(long, value_name = "X")]
    pub lexical_gate: Option<f32>,
    /// Days after an article at which a candidate's weight halves; 0 disables [default: 20].
    #[arg(long, value_name = "DAYS")]
    pub half_life_after: Option<f32>,
    /// Days before an article at which a candidate's weight halves; 0 disables [default: 1].
    #[arg(long, value_name = "DAYS")]
    pub half_life_before: Option<f32>,
    /// Time weight when either article has no date [default: 0.5].
    #[arg(long)]
    pub undated_factor: Option<f32>,
    /// Drop candidates published more than DAYS after the article; 0 = no limit [default: 0].
    #[arg(long, value_name = "DAYS")]
    pub window_after: Option<f32>,
    /// Drop candidates published more than DAYS before the article; 0 = no limit [default: 0].
    #[arg(long, value_name = "DAYS")]
    pub window_before: Option<f32>,
    /// Weight of the provider's quality score, 0 ignores it [default: 0.1].
    #[arg(long)]
    pub quality_weight: Option<f32>,
    /// Cosine at which two articles count as near-duplicates [default: 0.99].
    #[arg(long)]
    pub duplicate: Option<f32>,
    /// Never recommend an article from the same provider.
    #[arg(long, num_args = 0, default_missing_value = "true")]
    pub exclude_same_provider: Option<bool>,
    /// Maximal marginal relevance, 0..1: each next entry is the best score minus this much of
    /// its largest cosine to the entries chosen; 0 = off [default: 0].
    #[arg(long)]
    pub diversity: Option<f32>,
    /// At most N entries from one provider; 0 = no limit [default: 0].
    #[arg(long, value_name = "N")]
    pub max_per_provider: Option<usize>,
}

/// A value that can be checked against an option's range.
trait OptionValue: Copy + std::fmt::Display {
    fn as_f64(self) -> Option<f64>;
}

impl OptionValue for usize {
    fn as_f64(self) -> Option<f64> {
        Some(self as f64)
    }
}

impl OptionValue for f32 {
    fn as_f64(self) -> Option<f64> {
        Some(self.into())
    }
}

impl OptionValue for bool {
    fn as_f64(self) -> Option<f64> {
        None
    }
}

impl RankOverrides {
    /// One option from its name and text value (`--sweep name=v`, or a `relink.toml` key).
    pub fn parse(name: &str, value: &str) -> Result<RankOverrides, String> {
        let value = value.trim();
        // Through TOML, so that names, types and messages are the ones relink.toml gets.
        let bare = value.parse::<f64>().is_ok() || value == "true" || value == "false";
        let line = if bare {
            format!("{name} = {value}")
        } else {
            format!("{name} = {value:?}")
        };
        let o: RankOverrides = toml::from_str(&line).map_err(|e| {
            let msg = e.message().to_string();
            if msg.contains("unknown field") {
                format!("unknown ranking option `{name}`")
            } else {
                format!("{name}={value}: {msg}")
            }
        })?;
        o.validate(|n| format!("{n} ="))?;
        Ok(o)
    }

    /// Checks every option set against its range; `label(name)` says how the option was given
    /// (`--top`, `relink.toml: k`), for the message.
    pub fn validate(&self, label: impl Fn(&str) -> String) -> Result<(), String> {
        macro_rules! check {
            ($($field:ident: $name:literal),*) => { $(
                if let Some(v) = self.$field {
                    if let Some(x) = OptionValue::as_f64(v) {
                        check_option($name, x).map_err(|e| format!("{} {v}: {e}", label($name)))?;
                    }
                }
            )* };
        }
        with_rank_options!(check);
        Ok(())
    }

    /// Sets in `options` every option set here.
    pub fn apply(&self, options: &mut RankOptions) {
        macro_rules! take {
            ($($field:ident: $name:literal),*) => { $(
                if let Some(v) = self.$field {
                    options.$field = v;
                }
            )* };
        }
        with_rank_options!(take);
    }

    /// These options, with those set in `over` replacing them.
    pub fn then(&self, over: &RankOverrides) -> RankOverrides {
        let mut out = self.clone();
        macro_rules! merge {
            ($($field:ident: $name:literal),*) => { $(
                if over.$field.is_some() {
                    out.$field = over.$field;
                }
            )* };
        }
        with_rank_options!(merge);
        out
    }
}

impl RankOptions {
    /// Sets one option from its name (as in `--sweep name=v1,v2`); a value out of the option's
    /// range is refused.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        RankOverrides::parse(name, value)?.apply(self);
        Ok(())
    }

    /// Checks every option against its range.
    pub fn validate(&self) -> Result<(), String> {
        let mut all = RankOverrides::default();
        macro_rules! every {
            ($($field:ident: $name:literal),*) => { $( all.$field = Some(self.$field); )* };
        }
        with_rank_options!(every);
        all.validate(|n| n.to_string())
    }
}

/// What the ranker needs of each article.
#[derive(Clone, Debug, Default)]
pub struct ArticleKey {
    pub date: Option<DateTime<Utc>>,
    /// Percentile of the article's quality in the corpus, 0..1 (0.5 when it has none).
    pub quality: f32,
    pub url: Option<String>,
    pub title: String,
    pub provider: Option<String>,
}

impl ArticleKey {
    /// Keys of a whole corpus (quality percentiles are relative to it).
    pub fn of_corpus(articles: &[Article]) -> Vec<ArticleKey> {
        ArticleKey::of_corpus_with(articles, &quality_distribution(articles))
    }

    /// Keys of a corpus, with quality percentiles relative to `qualities` (sorted): the
    /// corpus's own ([`quality_distribution`]) or one kept from an earlier run.
    pub fn of_corpus_with(articles: &[Article], qualities: &[i64]) -> Vec<ArticleKey> {
        ArticleKey::of_corpus_by(articles, |q| {
            let below = qualities.partition_point(|&x| x < q);
            let upto = qualities.partition_point(|&x| x <= q);
            (below, upto, qualities.len())
        })
    }

    /// Keys of a corpus, with the quality percentile of a value `q` from `counts(q)`: how many
    /// of the qualities it is relative to are below `q`, how many at most `q`, and how many in
    /// all.
    pub fn of_corpus_by(
        articles: &[Article],
        counts: impl Fn(i64) -> (usize, usize, usize),
    ) -> Vec<ArticleKey> {
        let percentile = |q: Option<i64>| match q.map(&counts) {
            Some((below, upto, all)) if all > 0 => ((below + upto) as f32 / 2.0) / all as f32,
            _ => 0.5,
        };
        articles
            .iter()
            .map(|a| ArticleKey {
                date: a.published_date_time,
                quality: percentile(a.quality),
                url: a
                    .web_url
                    .as_deref()
                    .map(normalize_url)
                    .filter(|u| !u.is_empty()),
                title: normalize_title(&a.title),
                provider: a
                    .provider
                    .as_ref()
                    .and_then(|p| p.domain.clone().or_else(|| p.name.clone()))
                    .map(|p| p.to_lowercase()),
            })
            .collect()
    }
}

/// The qualities of a corpus's articles, sorted: what quality percentiles are relative to.
pub fn quality_distribution(articles: &[Article]) -> Vec<i64> {
    let mut qualities: Vec<i64> = articles.iter().filter_map(|a| a.quality).collect();
    qualities.sort_unstable();
    qualities
}

/// A URL compared without scheme, `www.`, query, fragment or trailing slash.
pub fn normalize_url(url: &str) -> String {
    let u = url.trim();
    let u = u.split(['#', '?']).next().unwrap_or("");
    let u = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .unwrap_or(u);
    let u = u.strip_prefix("www.").unwrap_or(u);
    u.trim_end_matches('/').to_lowercase()
}

pub use crate::article::normalize_title;

/// One recommended article and why.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Scored {
    /// Position of the recommended article in the corpus.
    pub index: usize,
    pub score: f32,
    /// Embedding cosine.
    pub cosine: f32,
    /// BM25 score relative to the article's own (0..1).
    pub lexical: f32,
    /// The blended similarity.
    pub similarity: f32,
    /// Time factor (0..1).
    pub time: f32,
    /// Quality factor.
    pub quality: f32,
    /// Pinned by an editor: in the list whatever its score.
    pub pinned: bool,
}

/// What a list is computed for: an article of the corpus, or free text.
pub struct Query<'a> {
    pub vector: ArrayView1<'a, f32>,
    /// The corpus position of the article, if it is one.
    pub index: Option<usize>,
    pub key: ArticleKey,
    /// The query's BM25 terms (sorted term ids).
    pub terms: Vec<u32>,
    /// Its best BM25 matches (document, raw score), as many as the pool, sorted by document
    /// (empty when BM25 has no weight), and its own BM25 score.
    pub lexical: Vec<(usize, f32)>,
    pub lexical_self: f32,
}

/// Candidates searched beyond the pool, by cosine and by BM25 each. They never enter a list;
/// how many of them, in order, could not enter the list is kept with it
/// ([`ListBounds::tolerance`]), so that a refresh can tell that a list stays the same when up to
/// that many candidates leave its pools.
pub const RESERVE: usize = 32;

/// With an HNSW graph, a time window of up to this many articles is searched exactly.
pub const WINDOW_EXACT: usize = 50_000;

/// What a refresh keeps of how a list was found, to tell later whether a change of the corpus
/// can change it (see [`crate::selective`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ListBounds {
    /// Score of the list's last entry; minus infinity when the list is shorter than `k`.
    pub last: f32,
    /// Cosine of the last neighbour searched (pool + reserve); minus infinity when the search
    /// found fewer.
    pub cos_edge: f32,
    /// BM25 score of the last lexical match searched (pool + reserve); 0 when fewer matched,
    /// infinity when BM25 has no weight.
    pub lex_edge: f32,
    /// Per pool (neighbours, lexical matches): how many of the reserve's candidates, taken in
    /// order, could not enter the list (already a candidate through the other pool, not
    /// allowed, or scoring below the last entry). As many candidates can leave the pool
    /// without changing the list: those that take their places are these.
    pub tolerance: (u32, u32),
    /// Per entry: its position among the neighbours and among the lexical matches, best first
    /// (`u32::MAX` when it is not in that pool).
    pub ranks: Vec<(u32, u32)>,
}

/// Ranks candidates for articles of one corpus.
pub struct Ranker<'a> {
    pub index: &'a VectorIndex,
    pub bm25: &'a Bm25,
    pub keys: &'a [ArticleKey],
    /// Pins, blocks and the corpus rules.
    pub editorial: &'a Editorial,
    pub options: RankOptions,
}

/// A corpus's dated articles in date order, and its undated ones: what a time window is cut
/// from ([`Ranker::window`]).
pub struct DateOrder {
    by_date: Vec<(DateTime<Utc>, usize)>,
    undated: Vec<usize>,
}

impl DateOrder {
    pub fn of(keys: &[ArticleKey]) -> DateOrder {
        let mut by_date: Vec<(DateTime<Utc>, usize)> = keys
            .iter()
            .enumerate()
            .filter_map(|(i, k)| Some((k.date?, i)))
            .collect();
        by_date.sort_unstable();
        let undated = (0..keys.len())
            .filter(|&i| keys[i].date.is_none())
            .collect();
        DateOrder { by_date, undated }
    }
}

impl<'a> Ranker<'a> {
    /// The query for corpus article `i`.
    pub fn article_query(&self, i: usize) -> Query<'a> {
        self.article_query_within(i, None)
    }

    /// The query for corpus article `i`, its lexical matches drawn from `within` (sorted corpus
    /// positions; `None`: every article).
    fn article_query_within(&self, i: usize, within: Option<&[usize]>) -> Query<'a> {
        let mut q = self.light_query(i);
        q.lexical = self.lexical_matches_within(&q.terms, within);
        q
    }

    /// The articles a query dated `date` may draw candidates from when the options set a time
    /// window: those inside it and the undated ones (whose time factor is `undated_factor`),
    /// sorted by corpus position. `None` when every article may: no window, or no date to
    /// place one. The window is cut before the pools are, so a pool holds the best candidates
    /// of the window, whatever lies outside it (and a shard holding the window ranks as the
    /// whole corpus does). `order` is the corpus's [`DateOrder`], when one was made.
    pub fn window(
        &self,
        date: Option<DateTime<Utc>>,
        order: Option<&DateOrder>,
    ) -> Option<Vec<usize>> {
        let o = &self.options;
        let date = date.filter(|_| o.has_window())?;
        let mut within: Vec<usize> = match order {
            Some(order) => {
                let from = order
                    .by_date
                    .partition_point(|&(c, _)| outside_before(date, c, o));
                let to = from
                    + order.by_date[from..].partition_point(|&(c, _)| !outside_after(date, c, o));
                order.by_date[from..to]
                    .iter()
                    .map(|&(_, i)| i)
                    .chain(order.undated.iter().copied())
                    .collect()
            }
            None => (0..self.keys.len())
                .filter(|&c| {
                    self.keys[c]
                        .date
                        .is_none_or(|c| !outside_before(date, c, o) && !outside_after(date, c, o))
                })
                .collect(),
        };
        within.sort_unstable();
        Some(within)
    }

    /// The nearest neighbours of `q` that its pool is cut from (as many as
    /// [`Ranker::search_depth`]), among `within` when a window gives it: an exact search of
    /// the window, or with an HNSW graph and a window of more than [`WINDOW_EXACT`] articles, a
    /// deeper search of the graph with the rest dropped.
    pub fn neighbours(&self, q: &Query, within: Option<&[usize]>) -> Vec<Neighbour> {
        let depth = self.search_depth(q);
        match within {
            None => self.index.search(q.vector, depth),
            Some(rows) if !self.index.is_hnsw() || rows.len() <= WINDOW_EXACT => {
                self.index.search_among(q.vector, depth, rows)
            }
            Some(rows) => {
                let deeper = depth.saturating_mul(4).min(self.index.len());
                let mut found = self.index.search(q.vector, deeper);
                found.retain(|n| rows.binary_search(&n.index).is_ok());
                found.truncate(depth);
                found
            }
        }
    }

    /// The query for corpus article `i` without its lexical matches: enough to score a given
    /// candidate ([`Ranker::score`]).
    pub fn light_query(&self, i: usize) -> Query<'a> {
        Query {
            vector: self.index.vectors().row(i),
            index: Some(i),
            key: self.keys[i].clone(),
            lexical: Vec::new(),
            terms: self.bm25.doc_terms(i),
            lexical_self: self.bm25.self_score(i),
        }
    }

    /// The best BM25 matches a query brings into the candidates, the reserve included (none
    /// when BM25 has no weight).
    pub fn lexical_matches(&self, terms: &[u32]) -> Vec<(usize, f32)> {
        self.lexical_matches_within(terms, None)
    }

    /// [`Ranker::lexical_matches`] among `within` (sorted corpus positions; `None`: all).
    pub fn lexical_matches_within(
        &self,
        terms: &[u32],
        within: Option<&[usize]>,
    ) -> Vec<(usize, f32)> {
        if self.options.lexical_weight <= 0.0 {
            return Vec::new();
        }
        let k = self.options.pool.saturating_add(RESERVE);
        match within {
            None => self.bm25.top_k(terms, k),
            Some(rows) => self
                .bm25
                .top_k_where(terms, k, |d| rows.binary_search(&d).is_ok()),
        }
    }

    /// How many neighbours to search for a query: its pool (the article itself included, for
    /// a corpus article) and the reserve.
    pub fn search_depth(&self, q: &Query) -> usize {
        cos_pool(&self.options, q)
            .saturating_add(RESERVE)
            .min(self.index.len())
    }

    /// The related list of corpus article `i`.
    pub fn rank_article(&self, i: usize) -> Vec<Scored> {
        self.rank_article_bounded(i).0
    }

    /// The related list of corpus article `i`, with its bounds.
    pub fn rank_article_bounded(&self, i: usize) -> (Vec<Scored>, ListBounds) {
        let within = self.window(self.keys[i].date, None);
        let q = self.article_query_within(i, within.as_deref());
        let neighbours = self.neighbours(&q, within.as_deref());
        self.rank_bounded(&q, &neighbours)
    }

    /// Related lists of every article, in parallel. With exact search the neighbours of all
    /// articles come from one blocked matrix product.
    pub fn rank_all(&self) -> Vec<Vec<Scored>> {
        self.rank_all_bounded()
            .into_iter()
            .map(|(list, _)| list)
            .collect()
    }

    /// Related lists of every article with their bounds.
    pub fn rank_all_bounded(&self) -> Vec<(Vec<Scored>, ListBounds)> {
        if self.options.has_window() {
            let all: Vec<usize> = (0..self.keys.len()).collect();
            return self.rank_articles_bounded(&all);
        }
        let depth = self
            .options
            .pool
            .saturating_add(1 + RESERVE)
            .min(self.index.len());
        self.index.map_all(depth, |i, nb| {
            self.rank_bounded(&self.article_query(i), &nb)
        })
    }

    /// The lists of the corpus articles `which`, with their bounds, in parallel; with a time
    /// window, each is cut from one date order of the corpus.
    pub fn rank_articles_bounded(&self, which: &[usize]) -> Vec<(Vec<Scored>, ListBounds)> {
        let order = self.options.has_window().then(|| DateOrder::of(self.keys));
        which
            .par_iter()
            .map(|&i| {
                let within = self.window(self.keys[i].date, order.as_ref());
                let q = self.article_query_within(i, within.as_deref());
                let neighbours = self.neighbours(&q, within.as_deref());
                self.rank_bounded(&q, &neighbours)
            })
            .collect()
    }

    /// Scores `neighbours` (and the query's lexical matches) and picks the list.
    pub fn rank(&self, q: &Query, neighbours: &[Neighbour]) -> Vec<Scored> {
        self.rank_bounded(q, neighbours).0
    }

    /// The list of `q` from its `neighbours` (best first, as many as [`Ranker::search_depth`])
    /// and lexical matches, with its bounds.
    pub fn rank_bounded(&self, q: &Query, neighbours: &[Neighbour]) -> (Vec<Scored>, ListBounds) {
        let o = &self.options;
        let wanted = cos_pool(o, q);
        let cos_pool = wanted.min(neighbours.len());
        let mut lexical: Vec<(usize, f32)> = q.lexical.clone();
        lexical.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let lex_pool = o.pool.min(lexical.len());
        let mut pool: Vec<usize> = neighbours[..cos_pool].iter().map(|n| n.index).collect();
        pool.extend(lexical[..lex_pool].iter().map(|&(d, _)| d));
        pool.sort_unstable();
        pool.dedup();
        let pins = q.index.map_or(&[][..], |i| self.editorial.pins_of(i));
        let mut scored: Vec<Scored> = pool
            .iter()
            .filter(|c| !pins.contains(c))
            .filter_map(|&c| self.score(q, c))
            .collect();
        sort_scored(&mut scored);
        let pinned = pins
            .iter()
            .map(|&c| Scored {
                pinned: true,
                ..self.score_parts(q, c)
            })
            .collect();
        let list = self.select(pinned, scored);
        let position = |found: Option<usize>| found.map_or(u32::MAX, |p| p as u32);
        let last = if list.len() >= o.k {
            list[list.len() - 1].score
        } else {
            f32::NEG_INFINITY
        };
        let bounds = ListBounds {
            last,
            cos_edge: if neighbours.len() >= wanted.saturating_add(RESERVE) {
                neighbours
                    .last()
                    .map_or(f32::NEG_INFINITY, |n| n.similarity)
            } else {
                f32::NEG_INFINITY
            },
            lex_edge: if o.lexical_weight <= 0.0 {
                f32::INFINITY
            } else if lexical.len() >= o.pool.saturating_add(RESERVE) {
                lexical.last().map_or(0.0, |l| l.1)
            } else {
                0.0
            },
            tolerance: (
                self.harmless(
                    q,
                    &pool,
                    neighbours[cos_pool..].iter().map(|n| n.index),
                    last,
                ),
                self.harmless(q, &pool, lexical[lex_pool..].iter().map(|l| l.0), last),
            ),
            ranks: list
                .iter()
                .map(|s| {
                    (
                        position(
                            neighbours[..cos_pool]
                                .iter()
                                .position(|n| n.index == s.index),
                        ),
                        position(lexical[..lex_pool].iter().position(|l| l.0 == s.index)),
                    )
                })
                .collect(),
        };
        (list, bounds)
    }

    /// How many of `reserve`'s candidates, in order, could not enter a list whose candidates
    /// are `pool` (sorted) and whose last entry scores `last`.
    fn harmless(
        &self,
        q: &Query,
        pool: &[usize],
        reserve: impl Iterator<Item = usize>,
        last: f32,
    ) -> u32 {
        let mut n = 0;
        for c in reserve {
            let enters = pool.binary_search(&c).is_err()
                && self.score(q, c).is_some_and(|s| s.score >= last);
            if enters {
                break;
            }
            n += 1;
        }
        n
    }

    /// Scores candidate `c` for `q`; `None` when it may not be recommended.
    pub fn score(&self, q: &Query, c: usize) -> Option<Scored> {
        let o = &self.options;
        if !self.allowed(q, c) {
            return None;
        }
        let s = self.score_parts(q, c);
        if s.cosine < o.min_similarity || s.cosine >= o.duplicate || s.time == 0.0 {
            return None;
        }
        Some(s)
    }

    /// The score of candidate `c` for `q` and its parts, whether or not it may be recommended
    /// (a pinned article is shown with its score, whatever it is).
    pub fn score_parts(&self, q: &Query, c: usize) -> Scored {
        let o = &self.options;
        let cosine = self.index.cosine_to(c, q.vector);
        let raw = self.bm25.score(&q.terms, c);
        let lexical = if q.lexical_self > 0.0 {
            (raw / q.lexical_self).min(1.0)
        } else {
            0.0
        };
        let similarity = (1.0 - o.lexical_weight) * cosine
            + o.lexical_weight * lexical * gate(cosine, o.lexical_gate);
        let time = time_factor(q.key.date, self.keys[c].date, o);
        let quality = 1.0 + o.quality_weight * (self.keys[c].quality - 0.5);
        Scored {
            index: c,
            score: similarity * time * quality,
            cosine,
            lexical,
            similarity,
            time,
            quality,
            pinned: false,
        }
    }

    /// The list: the `pinned` articles, in order, then the diverse top of the scored
    /// candidates (best first) up to k entries: a candidate that duplicates one already chosen
    /// is skipped. Pins beyond k are all kept (an editor asked for them).
    fn select(&self, pinned: Vec<Scored>, scored: Vec<Scored>) -> Vec<Scored> {
        let o = &self.options;
        let mut chosen: Vec<Scored> = pinned;
        chosen.reserve(o.k);
        let fits = |chosen: &[Scored], s: &Scored| {
            let dup = chosen.iter().any(|c| {
                self.index.similarity(c.index, s.index) >= o.duplicate
                    || same_story_copy(&self.keys[c.index], &self.keys[s.index])
            });
            let crowded = o.max_per_provider > 0
                && self.keys[s.index].provider.is_some()
                && chosen
                    .iter()
                    .filter(|c| self.keys[c.index].provider == self.keys[s.index].provider)
                    .count()
                    >= o.max_per_provider;
            !dup && !crowded
        };
        if o.diversity <= 0.0 {
            for s in scored {
                if chosen.len() >= o.k {
                    break;
                }
                if fits(&chosen, &s) {
                    chosen.push(s);
                }
            }
            return chosen;
        }
        // Maximal marginal relevance over the best candidates (the list is drawn from the top
        // few times k: far below, no candidate's diversity can make up for its score).
        let mut left: Vec<Scored> = scored.into_iter().take(o.k.saturating_mul(10)).collect();
        while chosen.len() < o.k {
            let mut best: Option<(usize, f32)> = None;
            for (j, s) in left.iter().enumerate() {
                if !fits(&chosen, s) {
                    continue;
                }
                let redundancy = chosen
                    .iter()
                    .map(|c| self.index.similarity(c.index, s.index))
                    .fold(0.0f32, f32::max);
                let value = s.score - o.diversity * redundancy;
                if best.is_none_or(|(_, v)| value > v) {
                    best = Some((j, value));
                }
            }
            let Some((j, _)) = best else { break };
            chosen.push(left.remove(j));
        }
        chosen
    }

    /// Whether candidate `c` may appear in the list of `q` at all.
    fn allowed(&self, q: &Query, c: usize) -> bool {
        if q.index == Some(c) {
            return false;
        }
        let ck = &self.keys[c];
        if !self.editorial.allows(q.index, q.key.date, c, ck.date) {
            return false;
        }
        if same_story_copy(&q.key, ck) {
            return false;
        }
        if self.options.exclude_same_provider
            && q.key.provider.is_some()
            && q.key.provider == ck.provider
        {
            return false;
        }
        true
    }
}

/// How many of a query's nearest neighbours are candidates: the pool, and the article itself
/// for a corpus article (it comes back first and is never recommended).
pub fn cos_pool(o: &RankOptions, q: &Query) -> usize {
    o.pool.saturating_add(usize::from(q.index.is_some()))
}

fn sort_scored(v: &mut [Scored]) {
    v.sort_unstable_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
}

/// Same URL, or same normalised title from the same provider: one article filed twice.
fn same_story_copy(a: &ArticleKey, b: &ArticleKey) -> bool {
    (a.url.is_some() && a.url == b.url)
        || (!a.title.is_empty() && a.title == b.title && a.provider == b.provider)
}

/// Days from `a` to `c` (negative when `c` is earlier), as every time rule here counts them.
fn days_between(a: DateTime<Utc>, c: DateTime<Utc>) -> f32 {
    (c - a).num_seconds() as f32 / 86_400.0
}

/// Whether `c` lies more than `window_before` days before `a` (never, without that window).
/// True for every date up to some point and false after: a window's start is a binary search.
fn outside_before(a: DateTime<Utc>, c: DateTime<Utc>, o: &RankOptions) -> bool {
    o.window_before > 0.0 && -days_between(a, c) > o.window_before
}

/// Whether `c` lies more than `window_after` days after `a` (never, without that window).
fn outside_after(a: DateTime<Utc>, c: DateTime<Utc>, o: &RankOptions) -> bool {
    o.window_after > 0.0 && days_between(a, c) > o.window_after
}

/// What a title match is multiplied by at embedding cosine `cosine`: `cosine ^ exponent`
/// (a negative cosine counts as 0; an exponent of 0 gives 1).
fn gate(cosine: f32, exponent: f32) -> f32 {
    if exponent == 0.0 {
        1.0
    } else if exponent == 1.0 {
        cosine.max(0.0)
    } else {
        cosine.max(0.0).powf(exponent)
    }
}

/// The time factor of a candidate published at `cand` for an article published at `article`.
pub fn time_factor(
    article: Option<DateTime<Utc>>,
    cand: Option<DateTime<Utc>>,
    o: &RankOptions,
) -> f32 {
    let (Some(a), Some(c)) = (article, cand) else {
        return o.undated_factor;
    };
    if outside_before(a, c, o) || outside_after(a, c, o) {
        return 0.0;
    }
    let days = days_between(a, c);
    let half_life = if days >= 0.0 {
        o.half_life_after
    } else {
        o.half_life_before
    };
    if half_life <= 0.0 {
        1.0
    } else {
        0.5f32.powf(days.abs() / half_life)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn day(d: u32) -> Option<DateTime<Utc>> {
        Some(Utc.with_ymd_and_hms(2023, 6, d, 12, 0, 0).unwrap())
    }

    #[test]
    fn time_factor_halves_at_the_half_life_and_favours_later_coverage() {
        let o = RankOptions {
            half_life_after: 10.0,
            half_life_before: 2.0,
            undated_factor: 0.4,
            ..RankOptions::default()
        };
        assert!((time_factor(day(1), day(11), &o) - 0.5).abs() < 1e-6);
        assert!((time_factor(day(11), day(9), &o) - 0.5).abs() < 1e-6);
        assert!(time_factor(day(5), day(8), &o) > time_factor(day(5), day(2), &o));
        assert_eq!(time_factor(None, day(3), &o), 0.4);
        assert_eq!(time_factor(day(3), None, &o), 0.4);
        let flat = o.cosine_only();
        assert_eq!(time_factor(day(1), day(30), &flat), 1.0);
    }

    #[test]
    fn the_lexical_gate_scales_a_title_match_by_the_cosine() {
        assert_eq!(gate(0.3, 0.0), 1.0);
        assert_eq!(gate(-0.3, 0.0), 1.0);
        assert_eq!(gate(0.3, 1.0), 0.3);
        assert_eq!(gate(-0.3, 1.0), 0.0);
        assert!((gate(0.5, 2.0) - 0.25).abs() < 1e-7);
        // The lexical baseline is BM25 alone, whatever the default gate.
        let lexical = RankOptions::default().lexical_only();
        assert_eq!((lexical.lexical_weight, lexical.lexical_gate), (1.0, 0.0));
        assert!(RankOptions::default().validate().is_ok());
        let mut o = RankOptions::default();
        assert!(o.set("lexical-gate", "4.5").is_err());
        o.set("lexical-gate", "0").unwrap();
        assert_eq!(o.lexical_gate, 0.0);
    }

    #[test]
    fn urls_and_titles_normalise() {
        assert_eq!(
            normalize_url("https://www.Example.com/a/b/?utm=1#x"),
            normalize_url("http://example.com/a/b")
        );
        assert_eq!(
            normalize_title("Diablo IV: Season 2 — Out Now!"),
            "diablo iv season 2 out now"
        );
    }

    #[test]
    fn options_set_by_name() {
        let mut o = RankOptions::default();
        o.set("half-life-after", "7").unwrap();
        o.set("exclude-same-provider", "true").unwrap();
        assert_eq!(o.half_life_after, 7.0);
        assert!(o.exclude_same_provider);
        assert!(o.set("nonsense", "1").is_err());
        assert!(o.set("k", "x").is_err());
    }
}
