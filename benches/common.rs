//! Data for the benches: `../shared` beside the repository (or `$RELINK_SHARED`).
#![allow(dead_code)]

use std::path::PathBuf;

pub fn shared() -> Option<PathBuf> {
    let dir = std::env::var_os("RELINK_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared")));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: ../shared not found");
        None
    }
}

/// title + ". " + excerpt of every diablo4 article.
pub fn diablo4_texts() -> Option<Vec<String>> {
    let corpus = relink::corpus::read_corpus(&shared()?.join("corpora/diablo4")).ok()?;
    Some(corpus.articles.iter().map(|a| a.text()).collect())
}

pub fn model_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/all-MiniLM-L6-v2"
    ))
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
