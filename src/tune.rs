//! `relink tune`: fits the ranking options to an archive's own reference lists (or topic
//! labels), on the older part of the archive, and reports them on the newest part.
//!
//! The split is by publication time: the newest [`HELD_OUT`] of the dated articles are held out,
//! and tuning sees only the others. It ranks them against a corpus made of them alone (BM25
//! statistics and quality percentiles included), and scores them against reference entries
//! that are themselves in the older part: nothing newer than the cut reaches the search. The
//! held-out articles are then ranked against the whole archive, as a refresh would rank them,
//! with the options before and after tuning.
//!
//! The search is coordinate ascent from the options in effect: each option in turn takes each
//! value of its grid ([`GRID`]) with the others fixed, and keeps the best (by the objective, then
//! MRR); passes repeat until one changes nothing. A full grid of the same values would take
//! 11·6·8·6·5·4·4 = 253,440 evaluations; this takes a hundred or so.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::corpus::Corpus;
use crate::engine::{Engine, EngineError, EngineSettings, Timings};
use crate::eval::{bootstrap, lists_for, score, PerArticle, Reference};
use crate::index::SearchMode;
use crate::rank::RankOptions;

/// Share of the dated articles held out: the newest fifth.
pub const HELD_OUT: f64 = 0.2;

/// The options searched, and the values each may take.
pub const GRID: &[(&str, &[&str])] = &[
    (
        "lexical-weight",
        &[
            "0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.75", "0.8", "0.9",
        ],
    ),
    ("lexical-gate", &["0", "0.5", "1", "1.5", "2", "3"]),
    (
        "half-life-after",
        &["0", "3", "7", "14", "20", "30", "60", "120"],
    ),
    ("half-life-before", &["0", "0.5", "1", "2", "4", "8"]),
    ("quality-weight", &["0", "0.05", "0.1", "0.2", "0.4"]),
    ("min-similarity", &["0", "0.1", "0.2", "0.3"]),
    ("undated-factor", &["0.25", "0.5", "0.75", "1"]),
];

/// Passes of the search at most.
const MAX_PASSES: usize = 4;

/// The split of an archive by publication time.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    /// Older articles (corpus positions): what tuning sees.
    pub train: Vec<usize>,
    /// The newest articles: where the result is reported.
    pub test: Vec<usize>,
    /// Publication time of the oldest held-out article.
    pub cut: Option<DateTime<Utc>>,
    /// Articles without a date: in neither part (they cannot be placed in time).
    pub undated: usize,
}

/// Splits `dates` (per article) so that the newest `share` of the dated articles are held out.
/// Articles published at the cut itself are held out too, so every training article is older
/// than every held-out one.
pub fn split(dates: &[Option<DateTime<Utc>>], share: f64) -> Split {
    let mut dated: Vec<(DateTime<Utc>, usize)> = dates
        .iter()
        .enumerate()
        .filter_map(|(i, d)| d.map(|d| (d, i)))
        .collect();
    dated.sort_unstable();
    let held = ((dated.len() as f64) * share).ceil() as usize;
    let first_held = dated.len().saturating_sub(held);
    let cut = dated.get(first_held).map(|(d, _)| *d);
    let mut train = Vec::new();
    let mut test = Vec::new();
    for (d, i) in dated {
        if cut.is_some_and(|c| d >= c) {
            test.push(i);
        } else {
            train.push(i);
        }
    }
    train.sort_unstable();
    test.sort_unstable();
    Split {
        train,
        test,
        cut,
        undated: dates.iter().filter(|d| d.is_none()).count(),
    }
}

/// References kept for the articles `keep` (positions in the whole corpus), renumbered to
/// positions among them, each entry restricted to them; an article left with no entry is not
/// scored.
pub fn restrict(references: &[Option<Reference>], keep: &[usize]) -> Vec<Option<Reference>> {
    let position: std::collections::HashMap<usize, usize> =
        keep.iter().enumerate().map(|(p, &i)| (i, p)).collect();
    keep.iter()
        .map(|&i| {
            let r = references[i].as_ref()?;
            let entries: Reference = r
                .iter()
                .map(|set| {
                    set.iter()
                        .filter_map(|j| position.get(j).copied())
                        .collect()
                })
                .filter(|set: &std::collections::HashSet<usize>| !set.is_empty())
                .collect();
            (!entries.is_empty()).then_some(entries)
        })
        .collect()
}

/// References of the articles `keep` only (the others not scored), positions unchanged.
pub fn only(references: &[Option<Reference>], keep: &[usize]) -> Vec<Option<Reference>> {
    let mut out = vec![None; references.len()];
    for &i in keep {
        out[i] = references[i].clone();
    }
    out
}

/// The corpus of the articles `keep` alone.
pub fn sub_corpus(corpus: &Corpus, keep: &[usize]) -> Corpus {
    Corpus {
        root: corpus.root.clone(),
        format: corpus.format,
        articles: keep.iter().map(|&i| corpus.articles[i].clone()).collect(),
        errors: Vec::new(),
        stale_temps: Vec::new(),
    }
}

/// The engine tuning ranks with: the training articles alone, searched exactly (so the HNSW
/// graph kept for the whole archive is never touched), their vectors from the cache.
pub fn training_engine(
    corpus: &Corpus,
    split: &Split,
    settings: &EngineSettings,
) -> Result<Engine, EngineError> {
    let settings = EngineSettings {
        search: SearchMode::Exact,
        show_progress: false,
        ..settings.clone()
    };
    Engine::build(
        sub_corpus(corpus, &split.train),
        &settings,
        Timings::default(),
    )
}

/// One step of the search, for the record.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Step {
    pub option: String,
    pub from: String,
    pub to: String,
    /// The objective on the training part after the step.
    pub objective: f64,
}

/// What the search found.
#[derive(Clone, Debug)]
pub struct Search {
    pub options: RankOptions,
    pub steps: Vec<Step>,
    pub passes: usize,
    pub evaluations: usize,
    /// The objective of the start and of the result, on the training part.
    pub start: f64,
    pub best: f64,
}

/// The value of ranking option `name` in `o`, as text.
pub fn option_value(o: &RankOptions, name: &str) -> String {
    let json = serde_json::to_value(o).unwrap_or_default();
    match &json[name] {
        serde_json::Value::Number(n) => {
            let v = n.as_f64().unwrap_or(0.0);
            // f32 options print as the shortest text that reads back the same.
            format!("{}", v as f32)
        }
        other => other.to_string(),
    }
}

/// Coordinate ascent over [`GRID`] from `start`, maximising `objective` (a metric of
/// [`score`] at the cut-offs `ks`), then MRR, on `engine`'s articles against `references`.
pub fn search(
    engine: &Engine,
    references: &[Option<Reference>],
    start: &RankOptions,
    ks: &[usize],
    objective: &str,
) -> Search {
    let max_k = ks.iter().copied().max().unwrap_or(start.k).max(start.k);
    let measure = |o: &RankOptions| -> (f64, f64) {
        let opts = RankOptions {
            k: max_k,
            ..o.clone()
        };
        let (m, _) = score(&lists_for(engine, &opts), references, ks);
        (m.values[objective], m.values["mrr"])
    };
    let mut best = start.clone();
    let mut best_value = measure(&best);
    let start_value = best_value.0;
    let mut evaluations = 1;
    let mut steps = Vec::new();
    let mut passes = 0;
    while passes < MAX_PASSES {
        passes += 1;
        let mut changed = false;
        for (name, values) in GRID {
            let current = option_value(&best, name);
            for v in *values {
                if *v == current {
                    continue;
                }
                let mut o = best.clone();
                if o.set(name, v).is_err() {
                    continue;
                }
                let value = measure(&o);
                evaluations += 1;
                let better = value.0 > best_value.0 + 1e-12
                    || (value.0 >= best_value.0 - 1e-12 && value.1 > best_value.1 + 1e-12);
                if better {
                    steps.push(Step {
                        option: name.to_string(),
                        from: option_value(&best, name),
                        to: v.to_string(),
                        objective: value.0,
                    });
                    best = o;
                    best_value = value;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    Search {
        options: best,
        steps,
        passes,
        evaluations,
        start: start_value,
        best: best_value.0,
    }
}

/// Held-out metrics of `options`: the articles `test` ranked against the whole archive
/// (`engine`), scored against their references.
pub fn held_out(
    engine: &Engine,
    references: &[Option<Reference>],
    options: &RankOptions,
    ks: &[usize],
) -> (BTreeMap<String, f64>, PerArticle) {
    let max_k = ks.iter().copied().max().unwrap_or(options.k);
    let opts = RankOptions {
        k: max_k.max(options.k),
        ..options.clone()
    };
    let lists = lists_for(engine, &opts);
    let per = PerArticle::of(&lists, references, ks);
    (per.metrics(&lists).values, per)
}

/// Per metric: `b − a` with its paired bootstrap 95% interval.
pub fn difference(
    a: &(BTreeMap<String, f64>, PerArticle),
    b: &(BTreeMap<String, f64>, PerArticle),
) -> BTreeMap<String, [f64; 3]> {
    bootstrap(&b.1, Some(&a.1))
        .into_iter()
        .map(|(name, [lo, hi])| {
            let d = b.0[&name] - a.0[&name];
            (name, [d, lo, hi])
        })
        .collect()
}

/// `text` (a `relink.toml`) with each `(key, value)` set: a top-level `key = ...` line is
/// replaced in place (comments and other lines kept), a missing key is appended.
pub fn set_toml_keys(text: &str, keys: &[(String, String)]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    // Top-level keys end where the first table starts.
    let tables_at = lines
        .iter()
        .position(|l| l.trim_start().starts_with('['))
        .unwrap_or(lines.len());
    let mut appended = Vec::new();
    for (key, value) in keys {
        let found = lines[..tables_at].iter().position(|l| {
            let t = l.trim_start();
            t.strip_prefix(key.as_str())
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        });
        match found {
            Some(i) => lines[i] = format!("{key} = {value}"),
            None => appended.push(format!("{key} = {value}")),
        }
    }
    if !appended.is_empty() {
        let mut head: Vec<String> = lines[..tables_at].to_vec();
        if !head.is_empty() && !head.last().is_some_and(|l| l.trim().is_empty()) {
            head.push(String::new());
        }
        head.push(
            "# Tuned by `relink tune` on this archive's older 80% (see its held-out figures)."
                .into(),
        );
        head.extend(appended);
        if tables_at < lines.len() {
            head.push(String::new());
        }
        head.extend(lines[tables_at..].iter().cloned());
        lines = head;
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: i64) -> Option<DateTime<Utc>> {
        Some(DateTime::<Utc>::from_timestamp(d * 86_400, 0).unwrap())
    }

    #[test]
    fn no_newer_article_reaches_the_training_part() {
        let dates = vec![
            day(5),
            None,
            day(1),
            day(9),
            day(9),
            day(3),
            day(7),
            day(2),
            day(8),
            day(4),
        ];
        let s = split(&dates, 0.2);
        assert_eq!(s.undated, 1);
        // The two newest share a date with nobody older: both held out.
        assert_eq!(s.test, vec![3, 4]);
        assert_eq!(s.cut, day(9));
        let newest_train = s.train.iter().map(|&i| dates[i]).max().unwrap();
        let oldest_test = s.test.iter().map(|&i| dates[i]).min().unwrap();
        assert!(newest_train < oldest_test);
        assert_eq!(s.train.len() + s.test.len() + s.undated, dates.len());
        // Ties at the cut are all held out.
        let tied = vec![day(1), day(2), day(2), day(2)];
        let s = split(&tied, 0.25);
        assert_eq!(s.test, vec![1, 2, 3]);
        assert_eq!(s.train, vec![0]);
    }

    #[test]
    fn references_are_restricted_to_the_part() {
        let r =
            |sets: &[&[usize]]| Some(sets.iter().map(|s| s.iter().copied().collect()).collect());
        let refs: Vec<Option<Reference>> = vec![r(&[&[1], &[3]]), r(&[&[3]]), None, r(&[&[0, 3]])];
        let kept = restrict(&refs, &[0, 1, 3]);
        // Kept articles 0, 1, 3 are now positions 0, 1, 2.
        assert_eq!(kept[0], r(&[&[1], &[2]]));
        assert_eq!(kept[1], r(&[&[2]]));
        assert_eq!(kept[2], r(&[&[0, 2]]));
        let kept = restrict(&refs, &[0, 1]);
        assert_eq!(kept[0], r(&[&[1]]));
        assert_eq!(kept[1], None, "its only entry is in the other part");
    }

    #[test]
    fn toml_keys_are_set_in_place_or_appended() {
        let text = "# mine\nk = 7\nlexical-weight = 0.6 # fusion\n\n[other]\nx = 1\n";
        let out = set_toml_keys(
            text,
            &[
                ("lexical-weight".into(), "0.4".into()),
                ("half-life-after".into(), "14".into()),
            ],
        );
        assert!(
            out.starts_with("# mine\nk = 7\nlexical-weight = 0.4\n"),
            "{out}"
        );
        assert!(
            out.contains("half-life-after = 14\n\n[other]\nx = 1\n"),
            "{out}"
        );
        assert_eq!(
            set_toml_keys("", &[("k".into(), "3".into())])
                .lines()
                .last(),
            Some("k = 3")
        );
    }
}
