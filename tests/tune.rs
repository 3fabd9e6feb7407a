//! `relink tune` end to end on a generated archive whose lists are its stories (the test
//! embedder): the split, the search, and a written relink.toml that reproduces the printed
//! held-out figures.

mod common;

use std::collections::HashMap;
use std::fs;

use common::{relink_test_embedder as relink, text};
use relink::corpus::{read_corpus, write_related};
use relink::testing::archive;
use serde_json::Value;

/// An archive of `n` articles whose related lists are the other articles of their story.
fn archive_with_lists(dir: &std::path::Path, n: usize) -> std::path::PathBuf {
    let d = dir.join("archive");
    archive::generate(&d, n);
    let stories = archive::stories(n);
    let corpus = read_corpus(&d).unwrap();
    let index_of = |a: &relink::article::Article| -> usize {
        let name = a.source.path().file_stem().unwrap().to_str().unwrap();
        name.trim_start_matches('a').parse().unwrap()
    };
    let mut by_story: HashMap<usize, Vec<usize>> = HashMap::new();
    for (p, a) in corpus.articles.iter().enumerate() {
        by_story.entry(stories[index_of(a)]).or_default().push(p);
    }
    for (p, a) in corpus.articles.iter().enumerate() {
        let list: Vec<_> = by_story[&stories[index_of(a)]]
            .iter()
            .filter(|&&q| q != p)
            .map(|&q| corpus.articles[q].to_related())
            .collect();
        write_related(a, &list).unwrap();
    }
    d
}

fn tune(d: &std::path::Path, extra: &[&str]) -> Value {
    let mut args = vec!["tune", d.to_str().unwrap(), "--json", "--quiet"];
    args.extend_from_slice(extra);
    let out = relink(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn tune_splits_by_time_searches_and_writes_options_that_reproduce_its_figures() {
    let dir = tempfile::tempdir().unwrap();
    let d = archive_with_lists(dir.path(), 600);
    let first = tune(&d, &[]);
    let split = &first["split"];
    assert_eq!(
        split["train"].as_u64().unwrap() + split["test"].as_u64().unwrap(),
        600
    );
    assert!(split["test"].as_u64().unwrap() >= 120);
    assert!(split["train_scored"].as_u64().unwrap() > 300);
    let search = &first["search"];
    assert!(search["evaluations"].as_u64().unwrap() > 10);
    // The search never ends below where it started, on the part it sees.
    assert!(
        search["train_objective"]["tuned"].as_f64().unwrap()
            >= search["train_objective"]["start"].as_f64().unwrap()
    );
    for key in ["defaults", "current", "tuned"] {
        assert!(first[key]["recall@5"].as_f64().is_some(), "{key}");
    }
    assert_eq!(first["defaults"], first["current"], "no relink.toml yet");
    assert!(first["written"].is_null());
    assert!(
        !d.join("relink.toml").exists(),
        "nothing written without --write"
    );

    // --write keeps every searched option; the next run's options in effect give the figures
    // this one printed for the tuned options.
    let written = tune(&d, &["--write"]);
    assert_eq!(written["tuned"], first["tuned"]);
    let toml = fs::read_to_string(d.join("relink.toml")).unwrap();
    for (name, value) in written["options"].as_object().unwrap() {
        assert!(
            toml.contains(&format!("{name} = {}", value.as_str().unwrap())),
            "{toml}"
        );
    }
    let again = tune(&d, &[]);
    assert_eq!(again["current"], first["tuned"]);
    // And eval reads the same file.
    let out = relink(&["eval", d.to_str().unwrap(), "--json", "--quiet"]);
    let eval: Value = serde_json::from_slice(&out.stdout).unwrap();
    for (name, value) in written["options"].as_object().unwrap() {
        let got = &eval["options"][name.as_str()];
        assert_eq!(
            got.as_f64().map(|v| (v as f32).to_string()),
            Some(value.as_str().unwrap().to_string()),
            "{name}"
        );
    }
}
