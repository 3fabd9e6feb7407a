//! relink at archive scale: `make bench-scale N=100000` (or `RELINK_SCALE_N=... cargo bench
//! --bench scale`).
//!
//! Generates a synthetic archive of N articles in the seed format under
//! `target/bench-scale/N/` (titles and excerpts made from a vocabulary, dates over ten years,
//! 500 providers with qualities, stories of 3 to 8 articles a few days apart, so that related
//! lists have a right answer), then runs the release binary on it: a cold refresh, a rerun
//! with nothing changed, and a delta of 1,000 new + 1,000 edited + 100 deleted articles. Each
//! stage is timed with `/usr/bin/time -v` (wall time, peak RSS); the median of `RUNS` runs
//! (default 3; a stage over 5 minutes is run once). The model is not what this measures: the
//! bag-of-words test embedder stands in for it (`--test-embedder`), as the output says; the
//! embed bench measures the model. Prints a table and writes `target/bench-scale/N.json` with
//! the keys `n, cold_s, rerun_s, delta_s, peak_rss_mb, state_mb, recall_at_10, embedder`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use relink::engine::{EmbedderChoice, Engine, EngineSettings, Timings};
use relink::index::{exact_top_k, recall_at_k, HnswParams, SearchMode};

/// Wall seconds and peak RSS (MiB) of one run of the binary.
fn measure(dir: &Path, log: &Path) -> (f64, f64, String) {
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(env!("CARGO_BIN_EXE_relink"))
        .args([
            "refresh",
            dir.to_str().unwrap(),
            "--quiet",
            "--test-embedder",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    fs::write(log, format!("{stdout}\n{stderr}")).unwrap();
    assert!(
        out.status.code() == Some(0),
        "relink failed (see {}): {}",
        log.display(),
        stderr.lines().take(5).collect::<Vec<_>>().join("\n")
    );
    let field = |name: &str| {
        stderr
            .lines()
            .find(|l| l.contains(name))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or("0")
            .to_string()
    };
    let wall = field("Elapsed (wall clock)")
        .split(':')
        .fold(0.0, |acc, p| acc * 60.0 + p.parse::<f64>().unwrap_or(0.0));
    let rss = field("Maximum resident set size")
        .parse::<f64>()
        .unwrap_or(0.0)
        / 1024.0;
    let time_line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("time"))
        .unwrap_or("")
        .trim()
        .to_string();
    (wall, rss, time_line)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn dir_mb(dir: &Path) -> f64 {
    let mut total = 0u64;
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let m = e.metadata().unwrap();
            total += if m.is_dir() { 0 } else { m.len() };
        }
    }
    total as f64 / (1024.0 * 1024.0)
}

/// HNSW recall@10 against exact search on up to 2,000 sampled queries (each query itself left
/// out of both lists), over the vectors and graph the last run left in the state folder;
/// `None` when the corpus is searched exactly.
fn index_recall(dir: &Path) -> Option<f64> {
    let corpus = relink::corpus::read_corpus(dir).unwrap();
    let settings = EngineSettings {
        embedder: EmbedderChoice::Hash { dim: 384 },
        state_dir: dir.join(".relink"),
        search: SearchMode::Auto,
        hnsw: HnswParams::default(),
        show_progress: false,
        rules: Default::default(),
    };
    let engine = Engine::build(corpus, &settings, Timings::default()).unwrap();
    if !engine.index.is_hnsw() {
        return None;
    }
    let n = engine.index.len();
    let step = (n / 2000).max(1);
    let queries: Vec<usize> = (0..n).step_by(step).take(2000).collect();
    let v = engine.index.vectors();
    // 11 found: 10 neighbours besides the query itself.
    let exact: Vec<_> = queries
        .iter()
        .map(|&q| exact_top_k(v, v.row(q), 11))
        .collect();
    let found: Vec<_> = queries
        .iter()
        .map(|&q| engine.index.search(v.row(q), 11))
        .collect();
    Some(recall_at_k(&queries, &exact, &found, 10))
}

fn main() {
    let n: usize = std::env::var("RELINK_SCALE_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-scale");
    let dir = root.join(n.to_string());
    fs::create_dir_all(&root).unwrap();
    let log = root.join(format!("{n}.log"));
    let (mut cold, mut rerun, mut delta) = (Vec::new(), Vec::new(), Vec::new());
    let mut rss: f64 = 0.0;
    let mut lines = Vec::new();
    let mut state_mb = 0.0;
    let mut recall = None;
    for run in 0..runs {
        let t = Instant::now();
        relink::testing::archive::generate(&dir, n);
        eprintln!(
            "bench-scale: generated {n} articles in {:.1}s",
            t.elapsed().as_secs_f64()
        );
        let (s, m, l) = measure(&dir, &log);
        cold.push(s);
        rss = rss.max(m);
        lines.push(format!("cold   {l}"));
        let (s, m, l) = measure(&dir, &log);
        rerun.push(s);
        rss = rss.max(m);
        lines.push(format!("rerun  {l}"));
        relink::testing::archive::apply_delta(&dir, n, 0);
        let (s, m, l) = measure(&dir, &log);
        delta.push(s);
        rss = rss.max(m);
        lines.push(format!("delta  {l}"));
        state_mb = dir_mb(&dir.join(".relink"));
        if run == 0 {
            recall = index_recall(&dir);
        }
        if cold[0] > 300.0 {
            break;
        }
    }
    let (cold_s, rerun_s, delta_s) = (
        median(cold.clone()),
        median(rerun.clone()),
        median(delta.clone()),
    );
    let embedder = "test (bag-of-words, 384-d; the model is not measured here)";
    println!(
        "bench-scale: N = {n}, {} cores, {} run(s), embedder: {embedder}",
        common::cores(),
        cold.len()
    );
    println!("  stage    median wall   articles/s");
    println!("  cold     {cold_s:>9.2} s   {:>10.0}", n as f64 / cold_s);
    println!("  rerun    {rerun_s:>9.2} s   {:>10.0}", n as f64 / rerun_s);
    println!("  delta    {delta_s:>9.2} s   (1,000 new + 1,000 edited + 100 deleted)");
    println!("  peak RSS {rss:.0} MiB; .relink/ {state_mb:.1} MiB");
    match recall {
        Some(r) => println!("  HNSW recall@10 vs exact (2,000 sampled queries): {r:.4}"),
        None => println!("  search: exact (N <= 20,000), recall@10 1.0 by construction"),
    }
    println!("  per-stage times reported by relink (last run):");
    for l in lines.iter().rev().take(3).rev() {
        println!("    {l}");
    }
    let json = serde_json::json!({
        "n": n,
        "cold_s": cold_s,
        "rerun_s": rerun_s,
        "delta_s": delta_s,
        "peak_rss_mb": rss,
        "state_mb": state_mb,
        "recall_at_10": recall.unwrap_or(1.0),
        "embedder": "test",
        "cores": common::cores(),
        "runs": cold.len(),
    });
    let out = root.join(format!("{n}.json"));
    fs::write(&out, serde_json::to_string_pretty(&json).unwrap() + "\n").unwrap();
    println!("  written to {}", out.display());
}
