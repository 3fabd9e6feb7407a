//! The stages around the model: reading and writing article files (files/s over
//! `../shared/corpora`) and ranking a whole corpus given its vectors.
//!
//! `cargo bench --bench pipeline`. Ranking uses the bag-of-words test embedder's vectors, so it
//! measures the ranker (search, BM25, scoring, diversity), not the model.

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use relink::engine::{EmbedderChoice, Engine, EngineSettings, Timings};
use relink::index::{HnswParams, SearchMode};
use relink::rank::RankOptions;

fn pipeline(c: &mut Criterion) {
    let Some(shared) = common::shared() else {
        return;
    };
    let corpora = shared.join("corpora");
    let files: usize = ["diablo4", "powerapps", "power-apps-crlf"]
        .iter()
        .map(|d| {
            relink::corpus::read_corpus(&corpora.join(d))
                .unwrap()
                .articles
                .len()
        })
        .sum();
    eprintln!("pipeline: {files} corpus files, {} cores", common::cores());

    let mut group = c.benchmark_group("files");
    group.sample_size(10);
    group.throughput(Throughput::Elements(files as u64));
    group.bench_function("read-all-corpora", |b| {
        b.iter(|| {
            for d in ["diablo4", "powerapps", "power-apps-crlf"] {
                std::hint::black_box(relink::corpus::read_corpus(&corpora.join(d)).unwrap());
            }
        })
    });
    // Writing: a copy of the corpora, each file given a new list (its own list reversed, or
    // one entry), then given its old list back, so every iteration really writes.
    let tmp = tempfile::tempdir().unwrap();
    for d in ["diablo4", "powerapps", "power-apps-crlf"] {
        let to = tmp.path().join(d);
        std::fs::create_dir_all(&to).unwrap();
        for e in std::fs::read_dir(corpora.join(d)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
    group.throughput(Throughput::Elements(2 * files as u64));
    group.bench_function("write-all-corpora-twice", |b| {
        b.iter(|| {
            let corpus = relink::corpus::read_corpus(tmp.path()).unwrap();
            let first = corpus.articles.first().unwrap().to_related();
            for a in &corpus.articles {
                let old = a.related.clone().unwrap_or_default();
                let mut new = old.clone();
                new.reverse();
                if new == old {
                    new = vec![first.clone()];
                }
                relink::corpus::write_related(a, &new).unwrap();
                let reread = relink::corpus::read_article(match &a.source {
                    relink::article::Source::File(p) => p,
                    _ => unreachable!(),
                })
                .unwrap();
                relink::corpus::write_related(&reread, &old).unwrap();
            }
        })
    });
    group.finish();

    let corpus = relink::corpus::read_corpus(&corpora.join("diablo4")).unwrap();
    let n = corpus.articles.len();
    let state = tempfile::tempdir().unwrap();
    let settings = EngineSettings {
        embedder: EmbedderChoice::Hash { dim: 384 },
        state_dir: state.path().to_path_buf(),
        search: SearchMode::Exact,
        hnsw: HnswParams::default(),
        show_progress: false,
        rules: Default::default(),
    };
    let engine = Engine::build(corpus, &settings, Timings::default()).unwrap();
    let mut group = c.benchmark_group("rank");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("diablo4-all-lists-exact", |b| {
        b.iter(|| std::hint::black_box(engine.ranker(RankOptions::default()).rank_all()))
    });
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
