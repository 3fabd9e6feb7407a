//! Embedding throughput on the 1,611 diablo4 title+excerpt texts, by precision and batch size.
//!
//! `cargo bench --bench embed` (add a filter such as `fp32/16` to run one case). Each sample
//! embeds every text once; criterion reports the median time and texts/s ("elem/s").
//! `RELINK_BENCH_TEXTS=N` embeds only the first N texts, for a quicker look.

#[path = "common.rs"]
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
    for precision in [Precision::Fp32, Precision::Bf16] {
        for batch in [8, 16, 32] {
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
