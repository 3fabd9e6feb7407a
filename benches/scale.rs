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
use relink::index::{exact_top_k, recall_at_k, splitmix64, HnswParams, SearchMode};

const WORDS: &str = "council vote budget river flood bridge school teacher strike hospital \
nurse vaccine virus trial court judge verdict police arrest fire forest drought harvest farmer \
price market shares merger bank rate inflation housing rent tenant mayor election campaign \
senate bill reform tax energy solar wind grid outage storm hurricane coast port ship cargo \
airline airport flight pilot union wage factory plant closure jobs startup funding app phone \
chip software hack breach privacy data museum exhibit artist concert festival film award \
novel author library stadium coach league final match goal record player transfer injury \
marathon mountain rescue climber volcano earthquake quake tsunami satellite rocket launch \
moon telescope galaxy climate summit treaty border migrant refugee embassy minister protest \
rally parliament coalition scandal resign inquiry report audit railway train tram metro road \
crash safety recall vehicle electric battery charging mine copper lithium oil gas pipeline \
leak spill wildlife whale reef species zoo park garden bakery restaurant chef recipe wine \
vineyard tourism hotel cruise island beach heatwave snow glacier avalanche";

const VERBS: [&str; 12] = [
    "approves", "rejects", "delays", "faces", "plans", "reports", "warns of", "confirms",
    "launches", "ends", "expands", "reviews",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        splitmix64(&mut self.0)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One generated article: its story, and the text of its file.
fn article_text(i: usize, story: usize, words: &[&str], edited: bool) -> String {
    let mut r = Rng(story as u64 * 7919 + 17);
    let topic: Vec<&str> = (0..3).map(|_| words[r.below(words.len())]).collect();
    let place = words[r.below(words.len())];
    let story_day = r.below(3650) as i64;
    let mut a = Rng(i as u64 * 104_729 + 3);
    let verb = VERBS[a.below(VERBS.len())];
    let extra = words[a.below(words.len())];
    let day = story_day + a.below(6) as i64;
    let date =
        chrono::DateTime::from_timestamp(1_420_070_400 + day * 86_400 + a.below(86_400) as i64, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ");
    let provider = a.below(500);
    let quality = (provider * 37 % 100) as i64;
    let title = format!(
        "{}{} {} {} {} in {} story {story}",
        if edited { "Update: " } else { "" },
        capitalise(topic[0]),
        verb,
        topic[1],
        topic[2],
        place
    );
    let excerpt = format!(
        "The {} {} {} affects {} and {} as {} {} continues; part {} of the {} coverage.",
        topic[0], topic[1], topic[2], place, extra, topic[1], verb, i, topic[0]
    );
    format!(
        "---\ncategory: news\ntitle: \"{title}\"\nexcerpt: \"{excerpt}\"\npublishedDateTime: {date}\nwebUrl: \"https://news{provider}.example/{i}\"\ntype: article\nquality: {quality}\nprovider:\n  name: Provider {provider}\n  domain: news{provider}.example\n---\nBody of article {i}.\n"
    )
}

fn capitalise(w: &str) -> String {
    let mut c = w.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// Story of article `i`: stories of 3 to 8 consecutive articles.
fn stories(n: usize) -> Vec<usize> {
    let mut r = Rng(42);
    let mut out = Vec::with_capacity(n);
    let mut story = 0;
    while out.len() < n {
        let len = 3 + r.below(6);
        for _ in 0..len.min(n - out.len()) {
            out.push(story);
        }
        story += 1;
    }
    out
}

fn file_of(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("{:04}", i / 1000))
        .join(format!("a{i:08}.md"))
}

fn generate(dir: &Path, n: usize, words: &[&str]) {
    let _ = fs::remove_dir_all(dir);
    for (i, story) in stories(n).into_iter().enumerate() {
        let path = file_of(dir, i);
        if i % 1000 == 0 {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
        }
        fs::write(path, article_text(i, story, words, false)).unwrap();
    }
}

/// 1,000 new articles (new stories), 1,000 edited titles, 100 deleted files.
fn apply_delta(dir: &Path, n: usize, words: &[&str], round: usize) {
    let story = stories(n);
    let last_story = story[n - 1] + 1;
    for j in 0..1000 {
        let i = n + round * 1000 + j;
        let path = file_of(dir, i);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(
            path,
            article_text(i, last_story + round * 400 + j / 3, words, false),
        )
        .unwrap();
    }
    let mut r = Rng(round as u64 + 99);
    for _ in 0..1000 {
        let i = r.below(n);
        let path = file_of(dir, i);
        if path.exists() {
            fs::write(&path, article_text(i, story[i], words, true)).unwrap();
        }
    }
    for _ in 0..100 {
        let _ = fs::remove_file(file_of(dir, r.below(n)));
    }
}

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

/// HNSW recall@10 against exact search on up to 2,000 sampled queries, over the vectors and
/// graph the last run left in the state folder; `None` when the corpus is searched exactly.
fn index_recall(dir: &Path) -> Option<f64> {
    let corpus = relink::corpus::read_corpus(dir).unwrap();
    let settings = EngineSettings {
        embedder: EmbedderChoice::Hash { dim: 384 },
        state_dir: dir.join(".relink"),
        search: SearchMode::Auto,
        hnsw: HnswParams::default(),
        show_progress: false,
    };
    let engine = Engine::build(corpus, &settings, Timings::default()).unwrap();
    if !engine.index.is_hnsw() {
        return None;
    }
    let n = engine.index.len();
    let step = (n / 2000).max(1);
    let queries: Vec<usize> = (0..n).step_by(step).take(2000).collect();
    let v = engine.index.vectors();
    let exact: Vec<_> = queries
        .iter()
        .map(|&q| exact_top_k(v, v.row(q), 10))
        .collect();
    let found: Vec<_> = queries
        .iter()
        .map(|&q| engine.index.search(v.row(q), 10))
        .collect();
    Some(recall_at_k(&exact, &found, 10))
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
    let words: Vec<&str> = WORDS.split_whitespace().collect();
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
        generate(&dir, n, &words);
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
        apply_delta(&dir, n, &words, 0);
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
