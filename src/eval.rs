//! `relink eval`: the lists relink would write, scored against the lists the files already hold
//! (or against topic labels), beside simple baselines.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use rayon::prelude::*;

use crate::article::Article;
use crate::engine::Engine;
use crate::index::{recall_at_k, HnswParams, SearchMode, VectorIndex};
use crate::rank::{normalize_title, normalize_url, RankOptions};

/// The reference of one article: one set of corpus positions per distinct reference entry
/// (a set, because duplicate files can share a URL or title; any of them is a hit).
pub type Reference = Vec<HashSet<usize>>;

/// How the reference links resolved.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LinkStats {
    /// Links in the files' related lists.
    pub links: usize,
    /// Links to another article of the corpus (scored).
    pub resolved: usize,
    /// Links to articles not in the corpus (not scored).
    pub outside: usize,
    /// Links from an article to itself (not scored).
    pub to_itself: usize,
}

/// How many articles hold a reference list, by who wrote it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReferenceLists {
    /// Lists relink did not write (an editor's, or another tool's): the ones scored.
    pub human: usize,
    /// Lists equal to what relink last wrote there (see [`crate::state`]): never scored.
    pub written_by_relink: usize,
    /// No list, or an empty one.
    pub empty: usize,
}

/// Builds each article's reference from its `related` list: entries are resolved by webUrl,
/// else by normalised title. `None` for articles with nothing to score, and for articles whose
/// list relink wrote itself (`written_by_relink(position)`): grading relink against its own
/// output would measure nothing.
pub fn references_from_related(
    articles: &[Article],
    written_by_relink: &dyn Fn(usize) -> bool,
) -> (Vec<Option<Reference>>, LinkStats, ReferenceLists) {
    let mut lists = ReferenceLists::default();
    let mut by_url: HashMap<String, Vec<usize>> = HashMap::new();
    let mut by_title: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, a) in articles.iter().enumerate() {
        if let Some(u) = a
            .web_url
            .as_deref()
            .map(normalize_url)
            .filter(|u| !u.is_empty())
        {
            by_url.entry(u).or_default().push(i);
        }
        by_title
            .entry(normalize_title(&a.title))
            .or_default()
            .push(i);
    }
    let mut stats = LinkStats::default();
    let refs = articles
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let list = a.related.as_deref().unwrap_or(&[]);
            if list.is_empty() {
                lists.empty += 1;
                return None;
            }
            if written_by_relink(i) {
                lists.written_by_relink += 1;
                return None;
            }
            lists.human += 1;
            let own_url = a.web_url.as_deref().map(normalize_url);
            let own_title = normalize_title(&a.title);
            let mut seen = HashSet::new();
            let mut reference: Reference = Vec::new();
            for r in list {
                stats.links += 1;
                let url = r
                    .web_url
                    .as_deref()
                    .map(normalize_url)
                    .filter(|u| !u.is_empty());
                let title = normalize_title(&r.title);
                let is_self = match &url {
                    Some(u) => own_url.as_ref() == Some(u),
                    None => title == own_title,
                };
                if is_self {
                    stats.to_itself += 1;
                    continue;
                }
                let targets = url
                    .as_ref()
                    .and_then(|u| by_url.get(u))
                    .or_else(|| by_title.get(&title));
                let set: HashSet<usize> = targets
                    .map(|t| t.iter().copied().filter(|&j| j != i).collect())
                    .unwrap_or_default();
                if set.is_empty() {
                    stats.outside += 1;
                    continue;
                }
                stats.resolved += 1;
                let mut key: Vec<usize> = set.iter().copied().collect();
                key.sort_unstable();
                if seen.insert(key) {
                    reference.push(set);
                }
            }
            (!reference.is_empty()).then_some(reference)
        })
        .collect();
    (refs, stats, lists)
}

/// Builds references from topic labels (`file-name<TAB>label` lines): every other article with
/// the same label is relevant. Articles whose file is not listed are not scored.
pub fn references_from_labels(
    articles: &[Article],
    root: &Path,
    labels_tsv: &str,
) -> Result<Vec<Option<Reference>>, String> {
    let mut labels: HashMap<String, String> = HashMap::new();
    for (n, line) in labels_tsv.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (file, label) = line
            .split_once('\t')
            .ok_or_else(|| format!("line {}: expected `file-name<TAB>label`", n + 1))?;
        labels.insert(file.trim().to_string(), label.trim().to_string());
    }
    let label_of = |a: &Article| -> Option<&String> {
        let crate::article::Source::File(p) = &a.source else {
            return None;
        };
        let rel = p
            .strip_prefix(root)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        labels.get(&rel).or_else(|| labels.get(&name))
    };
    let article_labels: Vec<Option<&String>> = articles.iter().map(label_of).collect();
    let mut groups: HashMap<&String, Vec<usize>> = HashMap::new();
    for (i, l) in article_labels.iter().enumerate() {
        if let Some(l) = l {
            groups.entry(l).or_default().push(i);
        }
    }
    Ok(article_labels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let group = &groups[l.as_ref()?];
            let reference: Reference = group
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| HashSet::from([j]))
                .collect();
            (!reference.is_empty()).then_some(reference)
        })
        .collect())
}

/// Metrics of one ranker.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Metrics {
    /// metric name ("recall@5", "precision@5", "ndcg@5", "mrr", "coverage") -> value
    pub values: BTreeMap<String, f64>,
    /// recall@k for k = 1..=max k (for the report's chart).
    pub recall_curve: Vec<f64>,
}

/// Per-article values of every metric but coverage, for the articles with a reference: what
/// [`score`] averages and [`bootstrap`] resamples.
#[derive(Clone, Debug, Default)]
pub struct PerArticle {
    /// Metric names, in the order of each row.
    pub names: Vec<String>,
    /// One row per scored article.
    pub rows: Vec<Vec<f64>>,
}

impl PerArticle {
    /// Scores ranked lists (corpus positions, best first) against references, at each k of
    /// `ks`; MRR uses the whole list.
    pub fn of(lists: &[Vec<usize>], references: &[Option<Reference>], ks: &[usize]) -> PerArticle {
        let max_k = ks.iter().copied().max().unwrap_or(0);
        let mut names = Vec::new();
        for &k in ks {
            names.push(format!("recall@{k}"));
            names.push(format!("precision@{k}"));
            names.push(format!("ndcg@{k}"));
        }
        names.push("mrr".into());
        for k in 1..=max_k {
            names.push(format!("curve@{k}"));
        }
        let mut rows = Vec::new();
        for (list, reference) in lists.iter().zip(references) {
            let Some(reference) = reference else { continue };
            // Which reference entry each list position hits (each entry counts once).
            let mut used = vec![false; reference.len()];
            let hits: Vec<bool> = list
                .iter()
                .map(|item| {
                    match reference
                        .iter()
                        .enumerate()
                        .position(|(e, set)| !used[e] && set.contains(item))
                    {
                        Some(e) => {
                            used[e] = true;
                            true
                        }
                        None => false,
                    }
                })
                .collect();
            let at = |k: usize| {
                let found = hits.iter().take(k).filter(|&&h| h).count() as f64;
                let dcg: f64 = hits
                    .iter()
                    .take(k)
                    .enumerate()
                    .filter(|(_, &h)| h)
                    .map(|(r, _)| 1.0 / ((r + 2) as f64).log2())
                    .sum();
                let ideal: f64 = (0..k.min(reference.len()))
                    .map(|r| 1.0 / ((r + 2) as f64).log2())
                    .sum();
                (
                    found / reference.len() as f64,
                    found / k as f64,
                    dcg / ideal,
                )
            };
            let mut row = Vec::with_capacity(names.len());
            for &k in ks {
                let (r, p, n) = at(k);
                row.extend([r, p, n]);
            }
            row.push(
                hits.iter()
                    .position(|&h| h)
                    .map_or(0.0, |first| 1.0 / (first + 1) as f64),
            );
            row.extend((1..=max_k).map(|k| at(k).0));
            rows.push(row);
        }
        PerArticle { names, rows }
    }

    /// The mean of each metric over `sample` (positions in `rows`, repeats allowed).
    fn means(&self, sample: impl Iterator<Item = usize>) -> Vec<f64> {
        let mut sum = vec![0.0; self.names.len()];
        let mut n = 0usize;
        for i in sample {
            for (s, v) in sum.iter_mut().zip(&self.rows[i]) {
                *s += v;
            }
            n += 1;
        }
        sum.iter().map(|s| s / n.max(1) as f64).collect()
    }
}

/// Scores ranked lists (corpus positions, best first) against references, at each k of `ks`.
/// MRR uses the whole list; coverage is the share of all articles with a non-empty list.
pub fn score(
    lists: &[Vec<usize>],
    references: &[Option<Reference>],
    ks: &[usize],
) -> (Metrics, usize) {
    let per = PerArticle::of(lists, references, ks);
    (per.metrics(lists), per.rows.len())
}

impl PerArticle {
    /// The metrics these per-article values average to; coverage is taken from `lists` (all
    /// of them, scored or not).
    pub fn metrics(&self, lists: &[Vec<usize>]) -> Metrics {
        let means = self.means(0..self.rows.len());
        let mut m = Metrics::default();
        for (name, v) in self.names.iter().zip(&means) {
            if name.starts_with("curve@") {
                m.recall_curve.push(*v);
            } else {
                m.values.insert(name.clone(), *v);
            }
        }
        let covered = lists.iter().filter(|l| !l.is_empty()).count();
        m.values.insert(
            "coverage".into(),
            covered as f64 / lists.len().max(1) as f64,
        );
        m
    }
}

/// Resamples drawn by [`bootstrap`], and the seed of their generator: intervals are the same
/// on every run.
pub const RESAMPLES: usize = 1000;
pub const SEED: u64 = 0x5eed_2026;

/// Bootstrap 95% intervals (2.5th and 97.5th percentiles of the mean over [`RESAMPLES`]
/// resamples of the scored articles, with replacement, seeded) of each metric of `a`, or, with
/// `b` (the same articles scored for another ranker), of the difference `a − b`, resampling
/// the same articles for both (a paired bootstrap).
pub fn bootstrap(a: &PerArticle, b: Option<&PerArticle>) -> BTreeMap<String, [f64; 2]> {
    let n = a.rows.len();
    let mut out = BTreeMap::new();
    if n == 0 || b.is_some_and(|b| b.rows.len() != n) {
        return out;
    }
    let mut state = SEED;
    let mut next = move || {
        // xorshift64*: small, seeded, plenty for resampling indices.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize
    };
    let mut draws: Vec<Vec<f64>> = vec![Vec::with_capacity(RESAMPLES); a.names.len()];
    let mut sample = vec![0usize; n];
    for _ in 0..RESAMPLES {
        for s in sample.iter_mut() {
            *s = next() % n;
        }
        let ma = a.means(sample.iter().copied());
        let mb = b.map(|b| b.means(sample.iter().copied()));
        for (m, d) in draws.iter_mut().enumerate() {
            d.push(ma[m] - mb.as_ref().map_or(0.0, |mb| mb[m]));
        }
    }
    for (name, mut d) in a.names.iter().zip(draws) {
        if name.starts_with("curve@") {
            continue;
        }
        d.sort_by(f64::total_cmp);
        let pick = |q: f64| d[((q * (RESAMPLES - 1) as f64).round() as usize).min(RESAMPLES - 1)];
        out.insert(name.clone(), [pick(0.025), pick(0.975)]);
    }
    out
}

/// The rankers `relink eval` can compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Baseline {
    /// Plain embedding cosine, no time, quality or lexical signal.
    Cosine,
    /// BM25 over titles.
    Lexical,
    /// Random other articles (seeded, so runs repeat).
    Random,
}

impl Baseline {
    pub fn name(self) -> &'static str {
        match self {
            Baseline::Cosine => "cosine",
            Baseline::Lexical => "lexical",
            Baseline::Random => "random",
        }
    }
}

/// The lists relink's ranker with `options` gives every article (corpus positions).
pub fn lists_for(engine: &Engine, options: &RankOptions) -> Vec<Vec<usize>> {
    engine
        .ranker(options.clone())
        .rank_all()
        .into_iter()
        .map(|l| l.into_iter().map(|s| s.index).collect())
        .collect()
}

/// The lists a baseline gives every article, `k` long.
pub fn baseline_lists(
    engine: &Engine,
    baseline: Baseline,
    options: &RankOptions,
) -> Vec<Vec<usize>> {
    match baseline {
        Baseline::Cosine => lists_for(engine, &options.cosine_only()),
        Baseline::Lexical => lists_for(engine, &options.lexical_only()),
        Baseline::Random => {
            let n = engine.corpus.articles.len();
            (0..n)
                .into_par_iter()
                .map(|i| {
                    // splitmix64 per article: the same lists on every run.
                    let mut state = i as u64 ^ 0x5eed;
                    let mut out = Vec::with_capacity(options.k);
                    let mut tries = 0;
                    while out.len() < options.k.min(n.saturating_sub(1)) && tries < 100 * options.k
                    {
                        tries += 1;
                        let j = (crate::index::splitmix64(&mut state) % n as u64) as usize;
                        if j != i && !out.contains(&j) {
                            out.push(j);
                        }
                    }
                    out
                })
                .collect()
        }
    }
}

/// The index's recall@k against exact search, over (at most 2,000 of) the scored articles.
pub fn index_recall(
    engine: &Engine,
    scored: &[usize],
    ks: &[usize],
    params: HnswParams,
) -> BTreeMap<String, f64> {
    let vectors = engine.index.vectors().clone();
    let max_k = ks.iter().copied().max().unwrap_or(10);
    let queries: Vec<usize> = scored.iter().copied().take(2000).collect();
    let hnsw = if engine.index.is_hnsw() {
        None
    } else {
        Some(VectorIndex::build(
            vectors.clone(),
            SearchMode::Hnsw,
            params,
        ))
    };
    let hnsw = hnsw.as_ref().unwrap_or(&engine.index);
    let exact: Vec<_> = queries
        .par_iter()
        .map(|&q| crate::index::exact_top_k(&vectors, vectors.row(q), max_k + 1))
        .collect();
    let found: Vec<_> = queries
        .par_iter()
        .map(|&q| hnsw.search(vectors.row(q), max_k + 1))
        .collect();
    ks.iter()
        .map(|&k| {
            let recall = recall_at_k(&queries, &exact, &found, k);
            (format!("recall@{k}"), recall)
        })
        .collect()
}

/// One row of an evaluation table.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RankerResult {
    pub name: String,
    pub metrics: BTreeMap<String, f64>,
    /// Bootstrap 95% interval of each metric ([`bootstrap`]).
    pub ci: BTreeMap<String, [f64; 2]>,
    /// Against the first row (relink, or the best of a sweep): per metric, this row's value
    /// minus the first's, and the paired bootstrap 95% interval of that difference. An interval
    /// that holds 0 is a tie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_first: Option<BTreeMap<String, [f64; 3]>>,
    #[serde(skip)]
    pub recall_curve: Vec<f64>,
    #[serde(skip)]
    pub per_article: PerArticle,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<RankOptions>,
}

impl RankerResult {
    fn new(
        name: String,
        lists: &[Vec<usize>],
        references: &[Option<Reference>],
        ks: &[usize],
        options: Option<RankOptions>,
    ) -> RankerResult {
        let per_article = PerArticle::of(lists, references, ks);
        let m = per_article.metrics(lists);
        RankerResult {
            name,
            metrics: m.values,
            ci: bootstrap(&per_article, None),
            vs_first: None,
            recall_curve: m.recall_curve,
            per_article,
            options,
        }
    }

    /// Whether this row ties the first on `metric`: the interval of the difference holds 0.
    pub fn ties_first(&self, metric: &str) -> Option<bool> {
        let d = self.vs_first.as_ref()?.get(metric)?;
        Some(d[1] <= 0.0 && d[2] >= 0.0)
    }
}

/// Fills every row's difference to the first row.
fn compare_to_first(rows: &mut [RankerResult]) {
    let Some((first, rest)) = rows.split_first_mut() else {
        return;
    };
    for r in rest {
        let interval = bootstrap(&r.per_article, Some(&first.per_article));
        r.vs_first = Some(
            interval
                .into_iter()
                .map(|(name, [lo, hi])| {
                    let d = r.metrics[&name] - first.metrics[&name];
                    (name, [d, lo, hi])
                })
                .collect(),
        );
    }
}

/// Evaluates `options` and the baselines on the engine's corpus.
pub fn evaluate(
    engine: &Engine,
    references: &[Option<Reference>],
    options: &RankOptions,
    baselines: &[Baseline],
    ks: &[usize],
) -> (Vec<RankerResult>, usize, Vec<Vec<usize>>) {
    let max_k = ks.iter().copied().max().unwrap_or(options.k);
    let opts = RankOptions {
        k: max_k,
        ..options.clone()
    };
    let relink_lists = lists_for(engine, &opts);
    let mut rows = vec![RankerResult::new(
        "relink".into(),
        &relink_lists,
        references,
        ks,
        None,
    )];
    for &b in baselines {
        let lists = baseline_lists(engine, b, &opts);
        rows.push(RankerResult::new(
            b.name().into(),
            &lists,
            references,
            ks,
            None,
        ));
    }
    compare_to_first(&mut rows);
    let scored = rows[0].per_article.rows.len();
    (rows, scored, relink_lists)
}

/// Every combination of the `sweep` values (name, values) applied to `base`.
/// Each comes with its label, `name=value ...` of the swept options.
pub fn grid(
    base: &RankOptions,
    sweep: &[(String, Vec<String>)],
) -> Result<Vec<(RankOptions, String)>, String> {
    let mut grid = vec![(base.clone(), String::new())];
    for (name, values) in sweep {
        let mut next = Vec::with_capacity(grid.len() * values.len());
        for (g, label) in &grid {
            for v in values {
                let mut o = g.clone();
                o.set(name, v)?;
                let sep = if label.is_empty() { "" } else { " " };
                next.push((o, format!("{label}{sep}{name}={v}")));
            }
        }
        grid = next;
    }
    Ok(grid)
}

/// Parses `name=v1,v2,...`.
pub fn parse_sweep(arg: &str) -> Result<(String, Vec<String>), String> {
    let (name, values) = arg
        .split_once('=')
        .ok_or_else(|| format!("--sweep {arg}: expected name=v1,v2,..."))?;
    let values: Vec<String> = values
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        return Err(format!("--sweep {arg}: no values"));
    }
    RankOptions::default().set(name.trim(), &values[0])?;
    Ok((name.trim().to_string(), values))
}

/// Evaluates every combination of the grid; rows come back best first (by recall at the
/// first k, then MRR).
pub fn sweep(
    engine: &Engine,
    references: &[Option<Reference>],
    grid: &[(RankOptions, String)],
    ks: &[usize],
) -> Vec<RankerResult> {
    let first = format!("recall@{}", ks.first().copied().unwrap_or(5));
    let max_k = ks.iter().copied().max().unwrap_or(5);
    let mut rows: Vec<RankerResult> = grid
        .iter()
        .map(|(o, label)| {
            let opts = RankOptions {
                k: max_k,
                ..o.clone()
            };
            RankerResult::new(
                label.clone(),
                &lists_for(engine, &opts),
                references,
                ks,
                Some(o.clone()),
            )
        })
        .collect();
    rows.sort_by(|a, b| {
        b.metrics[&first]
            .total_cmp(&a.metrics[&first])
            .then(b.metrics["mrr"].total_cmp(&a.metrics["mrr"]))
    });
    compare_to_first(&mut rows);
    rows
}

/// The metric columns shown for `ks`, in display order.
pub fn columns(ks: &[usize]) -> Vec<String> {
    let mut cols = Vec::new();
    for &k in ks {
        cols.push(format!("recall@{k}"));
        cols.push(format!("precision@{k}"));
        cols.push(format!("ndcg@{k}"));
    }
    cols.push("mrr".into());
    cols.push("coverage".into());
    cols
}

/// An aligned text table of the rows, and a last column: each row against the first at the
/// first cut-off's recall, `tie` when the interval of the difference holds 0.
pub fn table(rows: &[RankerResult], ks: &[usize]) -> String {
    let cols = columns(ks);
    let key = format!("recall@{}", ks.first().copied().unwrap_or(5));
    let name_w = rows.iter().map(|r| r.name.len()).max().unwrap_or(6).max(6);
    let mut out = format!("{:<name_w$}", "ranker");
    for c in &cols {
        out.push_str(&format!("  {:>12}", c));
    }
    out.push_str(&format!("  vs first ({key})\n"));
    for r in rows {
        out.push_str(&format!("{:<name_w$}", r.name));
        for c in &cols {
            out.push_str(&format!(
                "  {:>12.4}",
                r.metrics.get(c).copied().unwrap_or(f64::NAN)
            ));
        }
        if let Some(d) = r.vs_first.as_ref().and_then(|v| v.get(&key)) {
            out.push_str(&format!(
                "  {:+.4} [{:+.4}, {:+.4}]{}",
                d[0],
                d[1],
                d[2],
                if r.ties_first(&key) == Some(true) {
                    " tie"
                } else {
                    ""
                }
            ));
        }
        out.push('\n');
    }
    out
}

/// The 95% intervals of each row's metrics at the cut-offs `ks`, one line a row.
pub fn intervals(rows: &[RankerResult], ks: &[usize]) -> String {
    let name_w = rows.iter().map(|r| r.name.len()).max().unwrap_or(6).max(6);
    let mut out = format!(
        "95% intervals (bootstrap over the scored articles, {RESAMPLES} resamples, seeded):\n"
    );
    for r in rows {
        out.push_str(&format!("{:<name_w$}", r.name));
        for c in columns(ks).iter().filter(|c| *c != "coverage") {
            if let Some([lo, hi]) = r.ci.get(c) {
                out.push_str(&format!("  {c} [{lo:.3}, {hi:.3}]"));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(sets: &[&[usize]]) -> Option<Reference> {
        Some(sets.iter().map(|s| s.iter().copied().collect()).collect())
    }

    fn val(m: &Metrics, name: &str) -> f64 {
        m.values[name]
    }

    #[test]
    fn perfect_ranking_scores_one() {
        let (m, n) = score(&[vec![1, 2, 3]], &[refs(&[&[1], &[2], &[3]])], &[3]);
        assert_eq!(n, 1);
        assert!((val(&m, "recall@3") - 1.0).abs() < 1e-12);
        assert!((val(&m, "precision@3") - 1.0).abs() < 1e-12);
        assert!((val(&m, "ndcg@3") - 1.0).abs() < 1e-12);
        assert!((val(&m, "mrr") - 1.0).abs() < 1e-12);
    }

    #[test]
    fn no_hit_scores_zero() {
        let (m, _) = score(&[vec![4, 5]], &[refs(&[&[1]])], &[2]);
        for name in ["recall@2", "precision@2", "ndcg@2", "mrr"] {
            assert_eq!(val(&m, name), 0.0, "{name}");
        }
        assert_eq!(val(&m, "coverage"), 1.0);
    }

    #[test]
    fn one_hit_at_rank_three() {
        let (m, _) = score(&[vec![7, 8, 1, 9, 10]], &[refs(&[&[1], &[2]])], &[1, 3, 5]);
        assert_eq!(val(&m, "recall@1"), 0.0);
        assert!((val(&m, "recall@3") - 0.5).abs() < 1e-12);
        assert!((val(&m, "precision@3") - 1.0 / 3.0).abs() < 1e-12);
        assert!((val(&m, "precision@5") - 0.2).abs() < 1e-12);
        assert!((val(&m, "mrr") - 1.0 / 3.0).abs() < 1e-12);
        // DCG = 1/log2(4) = 0.5; ideal for 2 relevant items at k=3: 1 + 1/log2(3).
        let ideal = 1.0 + 1.0 / 3f64.log2();
        assert!((val(&m, "ndcg@3") - 0.5 / ideal).abs() < 1e-12);
    }

    #[test]
    fn duplicates_of_one_reference_count_once_and_unscored_articles_are_skipped() {
        // Articles 1 and 2 are copies (one reference entry resolving to both): recommending
        // both is one hit, not two.
        let lists = vec![vec![1, 2], vec![0], vec![]];
        let references = vec![refs(&[&[1, 2]]), None, None];
        let (m, n) = score(&lists, &references, &[2]);
        assert_eq!(n, 1);
        assert!((val(&m, "recall@2") - 1.0).abs() < 1e-12);
        assert!((val(&m, "precision@2") - 0.5).abs() < 1e-12);
        assert!((val(&m, "coverage") - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn averages_over_articles() {
        let lists = vec![vec![1], vec![5]];
        let references = vec![refs(&[&[1]]), refs(&[&[0]])];
        let (m, n) = score(&lists, &references, &[1]);
        assert_eq!(n, 2);
        assert!((val(&m, "recall@1") - 0.5).abs() < 1e-12);
        assert!((val(&m, "mrr") - 0.5).abs() < 1e-12);
    }

    #[test]
    fn the_bootstrap_is_seeded_holds_the_estimate_and_ties_a_ranker_with_itself() {
        let references: Vec<Option<Reference>> =
            (0..60).map(|i| refs(&[&[i + 1000], &[i + 2000]])).collect();
        // Half the articles find one of two references first, a third find none.
        let lists: Vec<Vec<usize>> = (0..60)
            .map(|i| match i % 3 {
                0 => vec![i + 1000, 7],
                1 => vec![7, i + 2000],
                _ => vec![7, 8],
            })
            .collect();
        let per = PerArticle::of(&lists, &references, &[1, 2]);
        let (m, scored) = score(&lists, &references, &[1, 2]);
        assert_eq!(scored, 60);
        let ci = bootstrap(&per, None);
        assert_eq!(ci, bootstrap(&per, None), "seeded: the same every run");
        for (name, [lo, hi]) in &ci {
            let v = m.values[name];
            assert!(*lo <= v && v <= *hi, "{name}: {v} outside [{lo}, {hi}]");
            assert!(lo < hi, "{name}: an interval, not a point");
        }
        let same = bootstrap(&per, Some(&per));
        assert!(same.values().all(|[lo, hi]| *lo == 0.0 && *hi == 0.0));
        // A ranker that finds one more reference for every article is better, not tied.
        let better: Vec<Vec<usize>> = (0..60).map(|i| vec![i + 1000, i + 2000]).collect();
        let b = PerArticle::of(&better, &references, &[1, 2]);
        let d = bootstrap(&b, Some(&per));
        assert!(d["recall@2"][0] > 0.0, "{:?}", d["recall@2"]);
    }

    #[test]
    fn sweep_arguments_parse_and_multiply() {
        let a = parse_sweep("half-life-after=7,14").unwrap();
        let b = parse_sweep("quality-weight=0,0.5,1").unwrap();
        assert!(parse_sweep("nope=1").is_err());
        assert!(parse_sweep("k").is_err());
        let g = grid(&RankOptions::default(), &[a, b]).unwrap();
        assert_eq!(g.len(), 6);
        assert_eq!(g[5].0.half_life_after, 14.0);
        assert_eq!(g[5].0.quality_weight, 1.0);
        assert_eq!(g[5].1, "half-life-after=14 quality-weight=1");
    }
}
