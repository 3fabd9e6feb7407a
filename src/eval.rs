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

/// Scores ranked lists (corpus positions, best first) against references, at each k of `ks`.
/// MRR uses the whole list; coverage is the share of all articles with a non-empty list.
pub fn score(
    lists: &[Vec<usize>],
    references: &[Option<Reference>],
    ks: &[usize],
) -> (Metrics, usize) {
    let max_k = ks.iter().copied().max().unwrap_or(0);
    let mut recall = vec![0.0; max_k + 1];
    let mut precision = vec![0.0; max_k + 1];
    let mut ndcg = vec![0.0; max_k + 1];
    let mut mrr = 0.0;
    let mut scored = 0usize;
    for (list, reference) in lists.iter().zip(references) {
        let Some(reference) = reference else { continue };
        scored += 1;
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
        if let Some(first) = hits.iter().position(|&h| h) {
            mrr += 1.0 / (first + 1) as f64;
        }
        for k in 1..=max_k {
            let found = hits.iter().take(k).filter(|&&h| h).count() as f64;
            recall[k] += found / reference.len() as f64;
            precision[k] += found / k as f64;
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
            ndcg[k] += dcg / ideal;
        }
    }
    let n = scored.max(1) as f64;
    let mut m = Metrics::default();
    for &k in ks {
        m.values.insert(format!("recall@{k}"), recall[k] / n);
        m.values.insert(format!("precision@{k}"), precision[k] / n);
        m.values.insert(format!("ndcg@{k}"), ndcg[k] / n);
    }
    m.values.insert("mrr".into(), mrr / n);
    let covered = lists.iter().filter(|l| !l.is_empty()).count();
    m.values.insert(
        "coverage".into(),
        covered as f64 / lists.len().max(1) as f64,
    );
    m.recall_curve = (1..=max_k).map(|k| recall[k] / n).collect();
    (m, scored)
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
    // recall_at_k drops the query itself by position; remap to per-query self ids.
    let strip = |lists: Vec<Vec<crate::index::Neighbour>>| -> Vec<Vec<crate::index::Neighbour>> {
        lists
            .into_iter()
            .zip(&queries)
            .map(|(l, &q)| l.into_iter().filter(|n| n.index != q).collect())
            .collect()
    };
    let (exact, found) = (strip(exact), strip(found));
    ks.iter()
        .map(|&k| (format!("recall@{k}"), recall_at_k(&exact, &found, k)))
        .collect()
}

/// One row of an evaluation table.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RankerResult {
    pub name: String,
    pub metrics: BTreeMap<String, f64>,
    #[serde(skip)]
    pub recall_curve: Vec<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<RankOptions>,
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
    let (m, scored) = score(&relink_lists, references, ks);
    let mut rows = vec![RankerResult {
        name: "relink".into(),
        metrics: m.values,
        recall_curve: m.recall_curve,
        options: None,
    }];
    for &b in baselines {
        let lists = baseline_lists(engine, b, &opts);
        let (m, _) = score(&lists, references, ks);
        rows.push(RankerResult {
            name: b.name().into(),
            metrics: m.values,
            recall_curve: m.recall_curve,
            options: None,
        });
    }
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
            let (m, _) = score(&lists_for(engine, &opts), references, ks);
            RankerResult {
                name: label.clone(),
                metrics: m.values,
                recall_curve: m.recall_curve,
                options: Some(o.clone()),
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        b.metrics[&first]
            .total_cmp(&a.metrics[&first])
            .then(b.metrics["mrr"].total_cmp(&a.metrics["mrr"]))
    });
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

/// An aligned text table of the rows.
pub fn table(rows: &[RankerResult], ks: &[usize]) -> String {
    let cols = columns(ks);
    let name_w = rows.iter().map(|r| r.name.len()).max().unwrap_or(6).max(6);
    let mut out = format!("{:<name_w$}", "ranker");
    for c in &cols {
        out.push_str(&format!("  {:>12}", c));
    }
    out.push('\n');
    for r in rows {
        out.push_str(&format!("{:<name_w$}", r.name));
        for c in &cols {
            out.push_str(&format!(
                "  {:>12.4}",
                r.metrics.get(c).copied().unwrap_or(f64::NAN)
            ));
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
