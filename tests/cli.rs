//! The `relink` binary end to end, with the real model.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs of the binary load the model; one at a time keeps 2 cores from being oversubscribed.
static MODEL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn relink(args: &[&str]) -> Output {
    let _model = MODEL.lock().unwrap_or_else(|e| e.into_inner());
    Command::new(env!("CARGO_BIN_EXE_relink"))
        .args(args)
        .env("RELINK_MODEL", common::model_dir())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn seeds_copy(dir: &Path) -> PathBuf {
    common::copy_tree(&common::seeds(), &dir.join("seeds"))
}

#[test]
fn refresh_then_a_warm_rerun_that_neither_loads_the_model_nor_writes() {
    let dir = tempfile::tempdir().unwrap();
    let d = seeds_copy(dir.path());
    let p = d.to_str().unwrap();
    let out = relink(&["refresh", p, "--quiet"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("35 read, 0 skipped"), "{stdout}");
    assert!(stdout.contains("35 embedded, 0 from the cache"), "{stdout}");
    let after_first = common::snapshot(&d);
    // Nothing changed: answered from the files' stamps, nothing read.
    let out = relink(&["refresh", p, "--quiet"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success());
    assert!(
        stdout.contains("35 files as the last refresh left them: none read"),
        "{stdout}"
    );
    assert!(stdout.contains("0 changed, 35 unchanged"), "{stdout}");
    assert_eq!(common::snapshot(&d), after_first);
    // A file touched but not changed: read again, every vector from the cache, nothing written.
    let first = d.join("000_6487b44b07e2c8c7.txt");
    let f = std::fs::File::options().append(true).open(&first).unwrap();
    f.set_modified(std::time::SystemTime::now()).unwrap();
    drop(f);
    let out = relink(&["refresh", p, "--quiet"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success());
    assert!(
        stdout.contains("0 embedded, 35 from the cache (model not loaded)"),
        "{stdout}"
    );
    assert!(stdout.contains("0 changed, 35 unchanged"), "{stdout}");
    assert_eq!(common::snapshot(&d), after_first);
    // Other ranking options: the stamps alone do not answer.
    let out = relink(&["refresh", p, "--quiet", "--top", "3"]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("34 changed, 1 unchanged"), "{stdout}");
}

#[test]
fn bad_files_are_reported_left_alone_and_set_the_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let d = seeds_copy(dir.path());
    let broken = "---\ntitle: \"ok\"\nexcerpt: [unclosed\n---\nbody\n";
    std::fs::write(d.join("zz_broken.md"), broken).unwrap();
    std::fs::write(d.join("zz_empty.md"), "").unwrap();
    let out = relink(&["refresh", d.to_str().unwrap(), "--quiet"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("zz_broken.md:4: invalid YAML"), "{stderr}");
    assert!(stderr.contains("zz_empty.md"), "{stderr}");
    assert!(text(&out.stdout).contains("35 read, 2 skipped"));
    assert_eq!(
        std::fs::read_to_string(d.join("zz_broken.md")).unwrap(),
        broken
    );
    assert_eq!(std::fs::read(d.join("zz_empty.md")).unwrap(), b"");
}

/// The model backend (libtorch) is opened only when a text must be embedded: with the backend
/// made unreachable, everything that embeds nothing still works, and what must embed says what
/// is missing.
#[test]
fn nothing_loads_libtorch_unless_a_text_is_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let d = seeds_copy(dir.path());
    let p = d.to_str().unwrap();
    let out = relink(&["refresh", p, "--quiet"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let without = |args: &[&str]| {
        let _model = MODEL.lock().unwrap_or_else(|e| e.into_inner());
        Command::new(env!("CARGO_BIN_EXE_relink"))
            .args(args)
            .env("RELINK_MODEL", common::model_dir())
            .env("RELINK_MODEL_LIB", dir.path().join("no-backend.so"))
            .output()
            .unwrap()
    };
    let seed = d.join("000_6487b44b07e2c8c7.txt");
    let touched = std::fs::File::options().append(true).open(&seed).unwrap();
    touched.set_modified(std::time::SystemTime::now()).unwrap();
    drop(touched);
    for args in [
        vec!["--version"],
        vec!["refresh", p, "--quiet"],
        vec!["refresh", p, "--full", "--dry-run", "--quiet"],
        vec!["related", seed.to_str().unwrap()],
        vec![
            "pin",
            seed.to_str().unwrap(),
            "008_eb84aafa2b746257.txt",
            "--quiet",
        ],
    ] {
        let out = without(&args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }
    // A new text needs the model: a clear error naming the backend, and no file changed.
    let before = common::snapshot(&d);
    let edited = text(&std::fs::read(&seed).unwrap()).replacen("title: \"", "title: \"New: ", 1);
    std::fs::write(&seed, edited).unwrap();
    let changed = common::snapshot(&d);
    assert_ne!(before, changed);
    let out = without(&["refresh", p, "--quiet"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("librelink_model.so was not found"),
        "{stderr}"
    );
    assert!(stderr.contains("no-backend.so"), "{stderr}");
    assert_eq!(common::snapshot(&d), changed);
}

#[test]
fn only_and_dry_run_touch_what_they_say() {
    let dir = tempfile::tempdir().unwrap();
    let d = seeds_copy(dir.path());
    let p = d.to_str().unwrap();
    let before = common::snapshot(&d);
    let out = relink(&["refresh", p, "--dry-run", "--quiet"]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("would change") && stdout.contains("  + "),
        "{stdout}"
    );
    assert_eq!(common::snapshot(&d), before);

    let seed = d.join("000_6487b44b07e2c8c7.txt");
    let out = relink(&["refresh", p, "--only", seed.to_str().unwrap(), "--quiet"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let after = common::snapshot(&d);
    let changed: Vec<&String> = before
        .iter()
        .zip(&after)
        .filter(|(a, b)| a.1 != b.1)
        .map(|(a, _)| &a.0)
        .collect();
    assert_eq!(changed, ["000_6487b44b07e2c8c7.txt"]);
    // Only the related block changed: the text before it and from `secured:` on is the same.
    let old = text(&before[0].1);
    let new = text(&after[0].1);
    assert_eq!(old.split("related:").next(), new.split("related:").next());
    assert_eq!(old.split("secured:").nth(1), new.split("secured:").nth(1));
    // A URL selects an article as well; an unknown one is reported.
    let out = relink(&[
        "refresh",
        p,
        "--only",
        "https://example.com/none",
        "--quiet",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no article"));
}

#[test]
fn related_prints_a_table_json_and_lists_for_free_text() {
    let dir = tempfile::tempdir().unwrap();
    let d = seeds_copy(dir.path());
    let seed = d.join("000_6487b44b07e2c8c7.txt");
    let out = relink(&["related", seed.to_str().unwrap(), "--quiet"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.starts_with("related to: Civil liberty groups"),
        "{stdout}"
    );
    assert!(
        stdout.to_lowercase().contains("facial recognition"),
        "{stdout}"
    );

    let out = relink(&["related", seed.to_str().unwrap(), "--json", "--quiet"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = json["related"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    assert_eq!(items[0]["rank"], 1);
    assert!(items[0]["entry"]["title"].is_string());
    assert!(items[0]["score"].as_f64().unwrap() >= items[1]["score"].as_f64().unwrap());

    let out = relink(&[
        "related",
        "Wildfires spread across Greek islands as heatwave continues",
        "--corpus",
        d.to_str().unwrap(),
        "--json",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = json["related"][0]["entry"]["title"]
        .as_str()
        .unwrap()
        .to_lowercase();
    assert!(first.contains("fire") || first.contains("heat"), "{first}");
}

/// A damaged config.json is one line naming the file, not a panic with a backtrace.
#[test]
fn a_damaged_model_config_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = seeds_copy(dir.path());
    let model = dir.path().join("model");
    let real = common::model_dir();
    for file in relink::embed::MODEL_FILES {
        let to = model.join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        if *file == "config.json" {
            std::fs::write(&to, "{\"hidden_size\": 384,").unwrap();
        } else {
            std::os::unix::fs::symlink(real.join(file), &to).unwrap();
        }
    }
    let out = relink(&[
        "refresh",
        d.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("config.json: invalid JSON") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn a_missing_model_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = seeds_copy(dir.path());
    let out = relink(&[
        "refresh",
        d.to_str().unwrap(),
        "--model",
        dir.path().join("nope").to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("missing config.json") && stderr.contains("fetch-deps.sh"),
        "{stderr}"
    );
    assert!(
        common::snapshot(&d) == common::snapshot(&common::seeds()),
        "nothing written"
    );
}

#[test]
fn a_killed_refresh_leaves_files_whole_and_the_next_run_finishes_the_job() {
    let Some(shared) = common::shared() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = common::copy_tree(&shared.join("corpora/diablo4"), &dir.path().join("diablo4"));
    let _model = MODEL.lock().unwrap_or_else(|e| e.into_inner());
    let mut child = Command::new(env!("CARGO_BIN_EXE_relink"))
        .args(["refresh", d.to_str().unwrap(), "--quiet"])
        .env("RELINK_MODEL", common::model_dir())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once the first checkpoint of vectors is on disk (256 of 1,611), well before the
    // embedding is done: polling rather than sleeping keeps the test meaningful on any machine.
    let cache = d.join(".relink/embeddings.bin");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while std::fs::metadata(&cache).map_or(0, |m| m.len()) < 100 * 1024 {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint written"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(_model);
    // Every file is still a whole, readable article.
    let corpus = relink::corpus::read_corpus(&d).unwrap();
    assert_eq!(corpus.errors.len(), 0, "{:?}", corpus.errors.first());
    assert_eq!(corpus.articles.len(), 1611);
    // The next run reuses what was embedded before the kill, and completes.
    let out = relink(&["refresh", d.to_str().unwrap(), "--quiet"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let cached: usize = stdout
        .split(" embedded, ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    eprintln!("after the kill: {stdout}");
    assert!(cached > 0, "nothing was kept from the killed run: {stdout}");
    let out = relink(&["refresh", d.to_str().unwrap(), "--quiet"]);
    assert!(
        text(&out.stdout).contains("0 changed, 1611 unchanged"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn eval_on_diablo4_beats_every_baseline_and_meets_the_targets() {
    let Some(shared) = common::shared() else {
        return;
    };
    let corpus = shared.join("corpora/diablo4");
    let out = relink(&[
        "eval",
        corpus.to_str().unwrap(),
        "--baseline",
        "cosine",
        "lexical",
        "random",
        "--json",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["articles_scored"], 967);
    let rankers = json["rankers"].as_array().unwrap();
    let names: Vec<&str> = rankers
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["relink", "cosine", "lexical", "random"]);
    let metric = |i: usize, m: &str| rankers[i]["metrics"][m].as_f64().unwrap();
    eprintln!(
        "relink: recall@5 {:.4} recall@10 {:.4} mrr {:.4}",
        metric(0, "recall@5"),
        metric(0, "recall@10"),
        metric(0, "mrr")
    );
    for (b, name) in names.iter().enumerate().skip(1) {
        assert!(metric(0, "recall@5") > metric(b, "recall@5"), "{name}");
        assert!(metric(0, "mrr") > metric(b, "mrr"), "{name}");
    }
    assert!(metric(0, "recall@5") >= 0.50);
    assert!(metric(0, "recall@10") >= 0.65);
    for key in ["precision@5", "ndcg@5", "ndcg@10", "coverage"] {
        assert!(rankers[0]["metrics"][key].is_f64(), "{key}");
    }
    let index_recall = json["index"]["hnsw_recall_vs_exact"]["recall@10"]
        .as_f64()
        .unwrap();
    assert!(index_recall >= 0.99, "{index_recall}");
    // eval leaves the corpus folder as it found it.
    assert!(!corpus.join(".relink").exists());
}

#[test]
fn eval_by_labels_and_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let d = seeds_copy(dir.path());
    // The five stories of seeds/: files 000-007, 008-014, 015-021, 022-028, 029-034.
    let mut tsv = String::from("# file\tstory\n");
    for n in 0..35 {
        let story = [
            "facial-recognition",
            "chips",
            "wildfires",
            "takeover",
            "mars",
        ][match n {
            0..=7 => 0,
            8..=14 => 1,
            15..=21 => 2,
            22..=28 => 3,
            _ => 4,
        }];
        let name = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .find(|f| f.starts_with(&format!("{n:03}_")))
            .unwrap();
        tsv.push_str(&format!("{name}\t{story}\n"));
    }
    let labels = dir.path().join("labels.tsv");
    std::fs::write(&labels, tsv).unwrap();
    let report = dir.path().join("report.html");
    let out = relink(&[
        "eval",
        d.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        "--baseline",
        "random",
        "--k",
        "3",
        "--report",
        report.to_str().unwrap(),
        "--quiet",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("35 scored"), "{stdout}");
    let row = stdout
        .lines()
        .find(|l| l.starts_with("relink ") && !l.starts_with("relink eval"))
        .unwrap();
    let precision: f64 = row.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(
        precision >= 0.9,
        "precision@3 by story label: {precision}\n{stdout}"
    );
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("<svg") && html.contains("<table"));
    assert!(!html.contains("<script"), "the report needs no script");
}
