//! The vector index: HNSW build time, queries/s and recall@10 against exact search, on 200,000
//! random 384-d unit vectors (the hard case: no cluster structure) and on the diablo4 vectors.
//!
//! `cargo bench --bench index`. A 200,000-vector build takes many minutes on 2 cores, too long
//! for criterion's ten samples, so builds are timed once and printed (the random set is built
//! in parallel only, unless `RELINK_BENCH_SERIAL=1`); queries and exact search are measured by
//! criterion (median, queries/s as "elem/s") over 200 queries. `RELINK_BENCH_VECTORS=N` changes
//! the size of the random set.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::Array2;
use relink::index::{build_hnsw, exact_top_k, recall_at_k, HnswParams, SearchMode, VectorIndex};
use relink::testing::random_unit_vectors;

const QUERIES: usize = 200;

fn report_build_and_recall(name: &str, vectors: &Array2<f32>, serial: bool) -> VectorIndex {
    let params = HnswParams::default();
    let t = Instant::now();
    let parallel = build_hnsw(vectors, params, true);
    let parallel_s = t.elapsed().as_secs_f64();
    let (index, serial_s) = if serial {
        let t = Instant::now();
        let index = VectorIndex::build(vectors.clone(), SearchMode::Hnsw, params);
        (index, format!("{:.1}s", t.elapsed().as_secs_f64()))
    } else {
        (
            VectorIndex::with_hnsw(vectors.clone(), parallel, params),
            "not measured".into(),
        )
    };
    let n = vectors.nrows();
    let step = (n / QUERIES).max(1);
    let queries: Vec<usize> = (0..n).step_by(step).take(QUERIES).collect();
    let exact: Vec<_> = queries
        .iter()
        .map(|&q| exact_top_k(vectors, vectors.row(q), 11))
        .collect::<Vec<_>>();
    let found: Vec<_> = queries
        .iter()
        .map(|&q| index.search(vectors.row(q), 11))
        .collect::<Vec<_>>();
    eprintln!(
        "index/{name}: {n} vectors, {} cores: build {serial_s} serial (deterministic, the default), {parallel_s:.1}s parallel; recall@10 vs exact {:.4} (m={}, ef_construction={}, ef_search={})",
        common::cores(),
        recall_at_k(&queries, &exact, &found, 10),
        params.m,
        params.ef_construction,
        params.ef_search
    );
    index
}

fn bench_queries(c: &mut Criterion, name: &str, vectors: &Array2<f32>, index: &VectorIndex) {
    let mut group = c.benchmark_group(format!("index/{name}"));
    group.sample_size(10);
    group.throughput(Throughput::Elements(QUERIES as u64));
    let step = (vectors.nrows() / QUERIES).max(1);
    group.bench_function("hnsw-query-k11", |b| {
        b.iter(|| {
            for q in (0..vectors.nrows()).step_by(step).take(QUERIES) {
                std::hint::black_box(index.search(vectors.row(q), 11));
            }
        })
    });
    group.bench_function("exact-query-k11", |b| {
        b.iter(|| {
            for q in (0..vectors.nrows()).step_by(step).take(QUERIES) {
                std::hint::black_box(exact_top_k(vectors, vectors.row(q), 11));
            }
        })
    });
    group.finish();
}

fn index(c: &mut Criterion) {
    let n = std::env::var("RELINK_BENCH_VECTORS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let random = random_unit_vectors(n, 384, 42);
    let serial = std::env::var_os("RELINK_BENCH_SERIAL").is_some();
    let idx = report_build_and_recall("random", &random, serial);
    bench_queries(c, "random", &random, &idx);

    // The diablo4 vectors, from the corpus's embedding cache when a refresh or eval made one.
    if let Some(texts) = common::diablo4_texts() {
        let state = tempfile::tempdir().unwrap();
        let choice = relink::engine::EmbedderChoice::Model {
            dir: common::model_dir(),
            precision: relink::embed::Precision::Auto,
            batch_size: 16,
        };
        let dir = std::env::var_os("RELINK_BENCH_STATE")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| state.path().to_path_buf());
        let (vectors, _) =
            relink::engine::embed_with_cache(&texts, &choice, &dir, false).expect("embeddings");
        let idx = report_build_and_recall("diablo4", &vectors, true);
        bench_queries(c, "diablo4", &vectors, &idx);
    }
}

criterion_group!(benches, index);
criterion_main!(benches);
