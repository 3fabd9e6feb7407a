//! Embedding throughput on the 1,611 diablo4 title+excerpt texts, by precision and batch size.
//!
//! `cargo bench --bench embed`. Each sample embeds every text once; criterion reports the median
//! time and texts/s ("elem/s"). A pass takes ~25 s in fp32 on 2 cores, so by default only batch
//! size 16 is measured; `RELINK_BENCH_BATCHES=8,16,32` measures others, and
//! `RELINK_BENCH_TEXTS=N` embeds only the first N texts. bf16 is measured where the CPU has
//! native bf16, or when `RELINK_BENCH_BF16=1` (elsewhere libtorch emulates it, ~50x slower).

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use relink::embed::{Embedder, Precision, TextEmbedder};

fn embed(c: &mut Criterion) {
    let Some(mut texts) = common::diablo4_texts() else {
        return;
    };
    if let Some(n) = std::env::var("RELINK_BENCH_TEXTS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        texts.truncate(n);
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    eprintln!(
        "embed: {} texts, {} cores, native bf16: {}",
        refs.len(),
        common::cores(),
        relink::embed::cpu_has_native_bf16()
    );
    let mut group = c.benchmark_group("embed");
    group.sample_size(10);
    group.warm_up_time(std::time::Duration::from_millis(1));
    group.measurement_time(std::time::Duration::from_secs(1));
    group.throughput(Throughput::Elements(refs.len() as u64));
    let batches: Vec<usize> = std::env::var("RELINK_BENCH_BATCHES")
        .ok()
        .map(|v| v.split(',').filter_map(|b| b.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![16]);
    let mut precisions = vec![Precision::Fp32];
    if relink::embed::cpu_has_native_bf16() || std::env::var_os("RELINK_BENCH_BF16").is_some() {
        precisions.push(Precision::Bf16);
    }
    for precision in precisions {
        for &batch in &batches {
            let mut e = Embedder::load(&common::model_dir(), precision, batch).expect("model");
            group.bench_function(format!("{}/{batch}", precision.as_str()), |b| {
                b.iter(|| e.embed(&refs).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, embed);
criterion_main!(benches);
